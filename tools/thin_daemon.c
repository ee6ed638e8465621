// SPDX-License-Identifier: LGPL-2.1-or-later
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/azbuse.h>

#include "control_client.h"
#include "thin_tool.h"

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

	if (conf_read(id, &sc) || !sc.thin || !sc.volume[0] ||
	    !serves_pool(&sc, dir, pid, s->holder))
		return;
	if (s->nr >= THIN_MAX_SERVED) {
		s->incomplete = true;
		return;
	}
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

int thin_control(uint32_t id, const char *request, char **output, char *err, size_t errlen)
{
	return control_call(thin_run_dir(), id, request, output, err, errlen);
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
		json_object *doc = thin_json_doc(c);
		char taken_by[32];

		snprintf(taken_by, sizeof(taken_by), AZBUSE_BLOCK_PREFIX "%u", dev->id);
		tj_str(doc, "name", snap);
		tj_str(doc, "kind", "snapshot");
		tj_str(doc, "parent", src);
		tj_str(doc, "taken_by", taken_by);
		tj_add(doc, "daemon_output", tj_lines(output));
		ret = tj_print(doc, "azbuse-thin");
	} else {
		thin_print_lines(stdout, output);
		printf("created snapshot %s of %s in pool %s\n", snap, src, c->dir);
		printf("(taken by " AZBUSE_BLOCK_PREFIX "%u, which serves %s)\n", dev->id, src);
	}
	free(output);
	return ret;
}
