/*
 * thin_daemon.c - azbuse-thin's side of a served pool: which azbuse devices
 * serve which volumes of it (from /dev/azbusectl and the supervisors' saved
 * configs), and requests to a device's control socket
 * (RUN_DIR/azbuse<N>.sock: one request line, then output lines and a last
 * line "OK" or "ERR message").
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/azbuse.h>

#include "thin_tool.h"

#define CONTROL_TIMEOUT_MS 30000
#define CONTROL_REPLY_MAX (1 << 20)

/* What a device's saved config says about the thin engine. */
struct saved_conf {
	bool thin;
	char volume[AZB_NAME_MAX + 1];
	char pool[PATH_MAX]; /* "" if not given: the daemon's default */
};

const char *thin_run_dir(void)
{
	const char *dir = getenv("AZBUSE_RUN_DIR");

	return dir && *dir ? dir : AZBUSE_CONTROL_DIR;
}

static void conf_line(struct saved_conf *sc, const char *line)
{
	if (!strcmp(line, "engine=thin"))
		sc->thin = true;
	else if (!strncmp(line, "option=volume=", 14))
		snprintf(sc->volume, sizeof(sc->volume), "%.*s", AZB_NAME_MAX, line + 14);
	else if (!strncmp(line, "option=pool=", 12))
		snprintf(sc->pool, sizeof(sc->pool), "%.*s", PATH_MAX - 1, line + 12);
}

/* 0 if device `id` has a saved config (read into sc), else -errno. */
static int conf_read(uint32_t id, struct saved_conf *sc)
{
	char path[PATH_MAX], line[PATH_MAX + 64];
	FILE *f;

	memset(sc, 0, sizeof(*sc));
	snprintf(path, sizeof(path), "%s/azbuse%u.conf", thin_run_dir(), id);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		conf_line(sc, line);
	}
	fclose(f);
	return 0;
}

static bool same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	if (!realpath(a, ra))
		snprintf(ra, sizeof(ra), "%s", a);
	if (!realpath(b, rb))
		snprintf(rb, sizeof(rb), "%s", b);
	return !strcmp(ra, rb);
}

/*
 * Does a device with this config (supervisor `pid`) serve pool `dir`? Its
 * supervisor holding the pool's lock says so whatever the config; else the
 * config's pool option, or when it has none, the default pool (the built-in
 * one, or ours from $AZBUSE_THIN_POOL: we cannot see the daemon's).
 */
static bool serves_pool(const struct saved_conf *sc, const char *dir, pid_t pid, pid_t holder)
{
	if (pid && pid == holder)
		return true;
	if (sc->pool[0])
		return same_dir(dir, sc->pool);
	return same_dir(dir, AZB_POOL_DIR_DEFAULT) || same_dir(dir, azb_pool_default_dir());
}

/* Add device `id` (supervisor `pid`, 0 if unknown) if it serves pool `dir`. */
static void consider_device(const char *dir, uint32_t id, pid_t pid, struct thin_served *s)
{
	struct saved_conf sc;
	struct thin_device *d;

	if (s->nr >= THIN_MAX_SERVED || conf_read(id, &sc) || !sc.thin || !sc.volume[0] ||
	    !serves_pool(&sc, dir, pid, s->holder))
		return;
	d = &s->dev[s->nr++];
	d->id = id;
	d->pid = pid;
	snprintf(d->volume, sizeof(d->volume), "%s", sc.volume);
}

static void devices_from_ctl(int ctl, const char *dir, struct thin_served *s)
{
	static uint32_t ids[AZBUSE_MAX_DEVICES];
	struct azbuse_dev_info info;
	int n = azbuse_ctl_list(ctl, ids, AZBUSE_MAX_DEVICES);

	for (int i = 0; i < n && i < AZBUSE_MAX_DEVICES; i++)
		if (!azbuse_ctl_info(ctl, ids[i], &info))
			consider_device(dir, ids[i], info.owner_pid, s);
}

/* 0 if `name` is "azbuse<ID>.conf" (*id set), else -EINVAL. */
static int conf_name_id(const char *name, uint32_t *id)
{
	unsigned long v;
	char *end;

	if (strncmp(name, "azbuse", 6) || name[6] < '0' || name[6] > '9')
		return -EINVAL;
	v = strtoul(name + 6, &end, 10);
	if (strcmp(end, ".conf") || v >= AZBUSE_MAX_DEVICES)
		return -EINVAL;
	*id = (uint32_t)v;
	return 0;
}

/* Without the module: every saved config of the run directory. */
static void devices_from_confs(const char *dir, struct thin_served *s)
{
	DIR *d = opendir(thin_run_dir());
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		uint32_t id;

		if (!conf_name_id(e->d_name, &id))
			consider_device(dir, id, 0, s);
	}
	closedir(d);
}

/* Keep only the devices whose supervisor is the holder, if any is. */
static void keep_holder_devices(struct thin_served *s)
{
	uint32_t i, n = 0;

	for (i = 0; s->holder && i < s->nr; i++)
		if (s->dev[i].pid == s->holder)
			s->dev[n++] = s->dev[i];
	if (n)
		s->nr = n;
}

void thin_find_served(const char *dir, pid_t holder, struct thin_served *s)
{
	int ctl = azbuse_ctl_open();

	memset(s, 0, sizeof(*s));
	s->holder = holder;
	if (ctl >= 0) {
		devices_from_ctl(ctl, dir, s);
		close(ctl);
	} else {
		devices_from_confs(dir, s);
	}
	keep_holder_devices(s);
}

const struct thin_device *thin_served_volume(const struct thin_served *s, const char *name)
{
	for (uint32_t i = 0; i < s->nr; i++)
		if (!strcmp(s->dev[i].volume, name))
			return &s->dev[i];
	return NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int control_connect(uint32_t id, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/azbuse%u.sock", thin_run_dir(),
			     id) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path of azbuse%u is too long", id);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		snprintf(err, errlen, "cannot connect to %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

static int control_send(int fd, const char *request)
{
	size_t len = strlen(request), done = 0;

	while (done < len) {
		ssize_t n = send(fd, request + done, len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/* Read until EOF or the deadline into a NUL-terminated *reply. */
static int control_read(int fd, int64_t deadline, char **reply)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			free(buf);
			return -ETIMEDOUT;
		}
		if (len + 1 >= cap) {
			char *q = cap < CONTROL_REPLY_MAX ? realloc(buf, cap * 2) : NULL;

			if (!q) {
				free(buf);
				return -E2BIG;
			}
			buf = q;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			int ret = -errno;

			free(buf);
			return ret;
		}
		if (!n)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*reply = buf;
	return 0;
}

/* The last line of reply that starts with "ERR" (a message may span lines), or NULL. */
static char *last_err_line(char *reply)
{
	char *line = reply, *found = NULL;

	while (line && *line) {
		if (!strncmp(line, "ERR", 3) && (line[3] == ' ' || line[3] == '\n' || !line[3]))
			found = line;
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	return found;
}

static void one_line(char *text)
{
	for (char *p = strchr(text, '\n'); p; p = strchr(p, '\n'))
		*p = ';';
}

/* Split off the last line of reply: 0 for OK, 1 for ERR (message in err), -EPROTO. */
static int control_status(char *reply, char *err, size_t errlen)
{
	size_t len = strlen(reply);
	char *last;

	while (len && (reply[len - 1] == '\n' || reply[len - 1] == '\r'))
		reply[--len] = '\0';
	last = strrchr(reply, '\n');
	last = last ? last + 1 : reply;
	if (!strcmp(last, "OK")) {
		*last = '\0';
		return 0;
	}
	last = last_err_line(reply);
	if (last) {
		snprintf(err, errlen, "%s", last[3] ? last + 4 : "failed (no reason given)");
		one_line(err);
		*last = '\0';
		return 1;
	}
	snprintf(err, errlen, "the daemon's reply does not end with OK or ERR");
	return -EPROTO;
}

int thin_control(uint32_t id, const char *request, char **output, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + CONTROL_TIMEOUT_MS;
	char line[1024], *reply = NULL;
	int fd, ret;

	*output = NULL;
	fd = control_connect(id, err, errlen);
	if (fd < 0)
		return fd;
	snprintf(line, sizeof(line), "%s\n", request);
	ret = control_send(fd, line);
	if (!ret)
		ret = control_read(fd, deadline, &reply);
	close(fd);
	if (ret) {
		snprintf(err, errlen, "azbuse%u's control socket: %s", id,
			 ret == -ETIMEDOUT ? "no complete reply within 30 s" : strerror(-ret));
		return ret;
	}
	ret = control_status(reply, err, errlen);
	if (ret < 0) {
		free(reply);
		return ret;
	}
	*output = reply;
	return ret;
}

/* ---- snapshots of served volumes ---- */

int thin_snapshot_by_daemon(const struct thin_ctx *c, const struct thin_device *d, const char *src,
			    const char *snap, char **output)
{
	char req[256], err[512];
	int ret;

	snprintf(req, sizeof(req), "thin snapshot %s %s", src, snap);
	ret = thin_control(d->id, req, output, err, sizeof(err));
	if (ret > 0)
		return thin_fail(c, AZBUSE_BLOCK_PREFIX "%u (serving %s) could not snapshot it: %s",
				 d->id, src, err);
	if (ret < 0)
		return thin_fail(c,
				 "%s is being served by " AZBUSE_BLOCK_PREFIX "%u, which "
				 "cannot be asked for the snapshot: %s",
				 src, d->id, err);
	return 0;
}

int thin_snapshot_served(const struct thin_ctx *c, const struct thin_device *dev, const char *src,
			 const char *snap)
{
	char *output = NULL;
	int ret = thin_snapshot_by_daemon(c, dev, src, snap, &output);

	if (ret) {
		free(output);
		return ret;
	}
	if (c->json) {
		printf("{\"pool\": ");
		thin_json_str(stdout, c->dir);
		printf(", \"name\": ");
		thin_json_str(stdout, snap);
		printf(", \"kind\": \"snapshot\", \"parent\": ");
		thin_json_str(stdout, src);
		printf(", \"taken_by\": \"" AZBUSE_BLOCK_PREFIX "%u\", \"daemon_output\": ",
		       dev->id);
		thin_json_lines(stdout, output);
		printf("}\n");
	} else {
		thin_print_lines(stdout, output);
		printf("created snapshot %s of %s in pool %s\n", snap, src, c->dir);
		printf("(taken by " AZBUSE_BLOCK_PREFIX "%u, which serves %s)\n", dev->id, src);
	}
	free(output);
	return 0;
}
