// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * control.c - talking to a running device: the supervisor's control socket
 * (AZBUSE_CONTROL_DIR/azbuse<N>.sock: one request line in, output lines and
 * "OK" or "ERR <message>" out), and the channel from the supervisor to each
 * worker (a SOCK_SEQPACKET pair plus SIGUSR1) that pauses workers at a
 * request boundary and runs an engine's queue_control in them.
 *
 * Worker channel messages: one type byte, then the payload. Replies: an
 * int32 result, then the payload.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define AZB_CHAN_PAUSE 'P'
#define AZB_CHAN_RESUME 'R'
#define AZB_CHAN_ENGINE 'E'
#define AZB_CHAN_EXIT 'X' /* finish what is in flight and exit (the daemon replaces the worker) */
#define AZB_CHAN_HEAD (1 + sizeof(uint32_t)) /* type, device id */
#define AZB_CHAN_REPLY_MS 10000 /* a worker that does not answer in this long has failed */
#define AZB_CHAN_RESIGNAL_MS 50 /* the signal may land just before the worker sleeps */
#define AZB_REQUEST_MS 2000	/* a client has this long to send its request line */

/* ---- the supervisor's side of the worker channels ---- */

uint64_t azb_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool azb_chan_live(const struct azbuse_control *c, uint16_t q)
{
	return c->workers[q] > 0 && c->chans[q] >= 0;
}

/*
 * A message to queue q's worker: its type, the device it is about (a worker
 * of a pool's daemon serves that queue of every device of the pool), then
 * what the engine sends.
 */
static int azb_chan_send(struct azbuse_control *c, uint16_t q, char type, const void *msg,
			 size_t len)
{
	char head[1 + sizeof(uint32_t)] = { type };
	struct iovec iov[2] = { { head, sizeof(head) }, { (void *)msg, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = msg ? 2 : 1 };

	memcpy(head + 1, &c->dev_id, sizeof(c->dev_id));

	if (sendmsg(c->chans[q], &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	kill(c->workers[q], SIGUSR1);
	return 0;
}

/*
 * A worker that did not answer (in time, or at all): replaced, since a late
 * reply would be taken for the answer to the next message.
 */
static void azb_chan_failed(struct azbuse_control *c, uint16_t q, const char *what, int err)
{
	azb_log("queue %u: %s: %s; restarting its worker", q, what, strerror(-err));
	kill(c->workers[q], SIGKILL);
}

/* Wait for queue q's reply, signalling the worker again while it does not come. */
static int azb_chan_reply(struct azbuse_control *c, uint16_t q, int *result, void *reply,
			  size_t *len)
{
	uint64_t deadline = azb_clock_ms() + AZB_CHAN_REPLY_MS;
	char buf[sizeof(int32_t) + AZBUSE_CONTROL_MSG_MAX];
	struct pollfd pfd = { .fd = c->chans[q], .events = POLLIN };
	int32_t res;
	ssize_t n;

	while (poll(&pfd, 1, AZB_CHAN_RESIGNAL_MS) == 0) {
		if (azb_clock_ms() > deadline)
			return -ETIMEDOUT;
		kill(c->workers[q], SIGUSR1);
	}
	n = recv(c->chans[q], buf, sizeof(buf), 0);
	if (n < (ssize_t)sizeof(res))
		return n < 0 ? -errno : -EPIPE; /* the worker died */
	memcpy(&res, buf, sizeof(res));
	*result = res;
	if (reply && len) {
		size_t got = (size_t)n - sizeof(res);

		if (got > *len)
			got = *len;
		memcpy(reply, buf + sizeof(res), got);
		*len = got;
	}
	return 0;
}

int azbuse_control_pause(struct azbuse_control *c)
{
	int ret = 0, result;
	uint16_t q;

	if (c->paused)
		return 0;
	for (q = 0; q < c->nr_queues && !ret; q++)
		if (azb_chan_live(c, q))
			ret = azb_chan_send(c, q, AZB_CHAN_PAUSE, NULL, 0);
	for (q = 0; q < c->nr_queues; q++) {
		int err;

		if (!azb_chan_live(c, q))
			continue;
		err = azb_chan_reply(c, q, &result, NULL, NULL);
		/* a worker that died meanwhile is not running: the restarted one starts afresh */
		if (err && err != -EPIPE) {
			azb_chan_failed(c, q, "did not pause", err);
			if (!ret)
				ret = err;
		}
	}
	c->paused = true;
	if (ret)
		azbuse_control_resume(c);
	return ret;
}

void azbuse_control_resume(struct azbuse_control *c)
{
	int result;
	uint16_t q;

	if (!c->paused)
		return;
	for (q = 0; q < c->nr_queues; q++) {
		int err;

		if (!azb_chan_live(c, q) || azb_chan_send(c, q, AZB_CHAN_RESUME, NULL, 0))
			continue;
		err = azb_chan_reply(c, q, &result, NULL, NULL);
		if (err && err != -EPIPE)
			azb_chan_failed(c, q, "did not resume", err);
	}
	c->paused = false;
}

/* One worker's answer to a broadcast: *ret takes the first failure. */
static void azb_broadcast_reply(struct azbuse_control *c, uint16_t q, int err,
				void (*reply_fn)(uint16_t queue, int result, const void *reply,
						 size_t len, void *arg),
				void *arg, int *ret)
{
	static char reply[AZBUSE_CONTROL_MSG_MAX];
	size_t rlen = sizeof(reply);
	int result = 0;

	if (!err)
		err = azb_chan_reply(c, q, &result, reply, &rlen);
	if (err == -EPIPE)
		return; /* died: its successor is forked from the supervisor's state */
	if (err) {
		/* it would go on with stale state: replace it (the engine updated ours first) */
		azb_chan_failed(c, q, "control message", err);
		return;
	}
	if (reply_fn)
		reply_fn(q, result, reply, rlen, arg);
	if (result && !*ret)
		*ret = result;
}

/*
 * Every worker gets the message before any reply is awaited, so that they
 * work on it at once (a sync of every shard takes as long as the slowest,
 * not the sum); replies are then taken in queue order.
 */
int azbuse_control_broadcast(struct azbuse_control *c, const void *msg, size_t len,
			     void (*reply_fn)(uint16_t queue, int result, const void *reply,
					      size_t len, void *arg),
			     void *arg)
{
	int sent[AZBUSE_MAX_QUEUES];
	int ret = 0;
	uint16_t q;

	if (len > AZBUSE_CONTROL_MSG_MAX - AZB_CHAN_HEAD)
		return -EMSGSIZE;
	for (q = 0; q < c->nr_queues; q++)
		sent[q] = azb_chan_live(c, q) ? azb_chan_send(c, q, AZB_CHAN_ENGINE, msg, len)
					      : -ENODEV;
	for (q = 0; q < c->nr_queues; q++)
		if (sent[q] != -ENODEV)
			azb_broadcast_reply(c, q, sent[q], reply_fn, arg, &ret);
	return ret;
}

/* ---- the control socket ---- */

void azb_control_path(uint32_t dev_id, char *path, size_t len)
{
	snprintf(path, len, AZBUSE_CONTROL_DIR "/azbuse%u.sock", dev_id);
}

/* Listen on a Unix socket at path; a connecting client raises SIGIO. */
static int azb_listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	mkdir(AZBUSE_CONTROL_DIR, 0755);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	/* a connecting client raises SIGIO, which wakes the supervisor's sigtimedwait */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(sa.sun_path, 0600) ||
	    listen(fd, 8) || fcntl(fd, F_SETOWN, getpid()) ||
	    fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int azb_control_listen(uint32_t dev_id)
{
	char path[108];

	azb_control_path(dev_id, path, sizeof(path));
	return azb_listen_at(path);
}

/* A group's socket: named by a hash of its key (a pool's path may be long). */
void azb_group_path(const char *group, char *path, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *group; group++)
		h = (h ^ (uint8_t)*group) * 0x100000001b3ULL;
	snprintf(path, len, AZBUSE_CONTROL_DIR "/group-%016llx.sock", (unsigned long long)h);
}

int azb_group_listen(const char *group)
{
	char path[108];

	azb_group_path(group, path, sizeof(path));
	return azb_listen_at(path);
}

void azb_group_close(const char *group, int fd)
{
	char path[108];

	if (fd < 0)
		return;
	close(fd);
	azb_group_path(group, path, sizeof(path));
	unlink(path);
}

/* Connect to the daemon serving group: the fd, or -errno (-ENOENT: none listens). */
int azb_group_connect(const char *group)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	azb_group_path(group, sa.sun_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = errno == ECONNREFUSED ? -ENOENT : -errno;
		close(fd);
		return ret;
	}
	return fd;
}

void azb_control_close(uint32_t dev_id, int fd)
{
	char path[108];

	if (fd < 0)
		return;
	close(fd);
	azb_control_path(dev_id, path, sizeof(path));
	unlink(path);
}

/* Read one request line (without its newline) within AZB_REQUEST_MS. */
static int azb_read_request(int fd, char *line, size_t size)
{
	uint64_t deadline = azb_clock_ms() + AZB_REQUEST_MS;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t used = 0;
	ssize_t n;

	while (used + 1 < size) {
		uint64_t now = azb_clock_ms();

		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
			return -ETIMEDOUT;
		n = read(fd, line + used, size - 1 - used);
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		used += (size_t)n;
		line[used] = '\0';
		if (strchr(line, '\n')) {
			*strchr(line, '\n') = '\0';
			return 0;
		}
	}
	return -E2BIG;
}

static void azb_write_all(int fd, const char *text)
{
	size_t len = strlen(text);
	ssize_t n;

	while (len) {
		n = write(fd, text, len);
		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

static bool azb_has_control(const struct azbuse_engine_ops *ops)
{
	return ops->struct_size >=
		       offsetof(struct azbuse_engine_ops, control) + sizeof(ops->control) &&
	       ops->control;
}

/* Run one request: "cache ..." is libazbuse's; "<engine> <args>" goes to the
 * engine's control(). */
static int azb_dispatch(const struct azbuse_engine_ops *ops, void *engine, struct azbuse_control *c,
			const char *line, char *out, size_t out_size)
{
	size_t n = strcspn(line, " ");

	if (n == 5 && !strncmp(line, "cache", 5))
		return azb_cache_request(line + n + (line[n] == ' '), out, out_size);
	if (n == strlen(ops->name) && !strncmp(line, ops->name, n) && azb_has_control(ops)) {
		line += n + (line[n] == ' ');
		return ops->control(engine, c, line, out, out_size);
	}
	snprintf(out, out_size, "this device (engine %s) has no control command '%.*s'", ops->name,
		 (int)n, line);
	return -EOPNOTSUPP;
}

void azb_control_serve(int listen_fd, const struct azbuse_engine_ops *ops, void *engine,
		       struct azbuse_control *c)
{
	static char out[AZBUSE_CONTROL_MSG_MAX];
	char line[4096];
	int fd, ret;

	while ((fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		uint64_t start = azb_clock_ms();

		out[0] = '\0';
		line[0] = '\0'; /* (a client that sent nothing) */
		ret = azb_read_request(fd, line, sizeof(line));
		if (ret)
			snprintf(out, sizeof(out), "bad request: %s", strerror(-ret));
		else
			ret = azb_dispatch(ops, engine, c, line, out, sizeof(out));
		azbuse_control_resume(c); /* an engine that forgot leaves no worker paused */
		if (ret) {
			char *nl;

			/* the message is one line */
			while ((nl = strchr(out, '\n')))
				*nl = nl[1] ? ' ' : '\0';
			azb_write_all(fd, "ERR ");
			azb_write_all(fd, out[0] ? out : strerror(-ret));
			azb_write_all(fd, "\n");
		} else {
			azb_write_all(fd, out);
			if (out[0] && out[strlen(out) - 1] != '\n')
				azb_write_all(fd, "\n");
			azb_write_all(fd, "OK\n");
		}
		close(fd);
		/* (not the cache's state, which every azbusectl info asks for) */
		if (strcmp(line, "cache"))
			azb_log("control '%s': %s (%llu ms)", line, ret ? out : "ok",
				(unsigned long long)(azb_clock_ms() - start));
	}
}

/* ---- the worker's side ---- */

static volatile sig_atomic_t azb_control_signalled;

static void azb_on_sigusr1(int sig)
{
	(void)sig;
	azb_control_signalled = 1;
}

/* SIGUSR1 interrupts a COMMIT that sleeps (no SA_RESTART), so the worker looks. */
int azb_worker_control_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = azb_on_sigusr1;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGUSR1, &sa, NULL) ? -errno : 0;
}

bool azb_worker_control_pending(void)
{
	return azb_control_signalled;
}

static void azb_chan_answer(int fd, int32_t result, const void *payload, size_t len)
{
	static char buf[sizeof(int32_t) + AZBUSE_CONTROL_MSG_MAX];

	memcpy(buf, &result, sizeof(result));
	if (len)
		memcpy(buf + sizeof(result), payload, len);
	if (send(fd, buf, sizeof(result) + len, MSG_NOSIGNAL) < 0)
		azb_warn("cannot answer the supervisor: %s", strerror(errno));
}

/* The queues this worker serves (one per device; set by azbuse_worker_main). */
static struct azbuse_queue **azb_chan_queues;
static unsigned azb_chan_nr_queues;
static int azb_chan_fd = -1;

void azb_worker_control_queues(struct azbuse_queue **queues, unsigned nr, int chan_fd)
{
	azb_chan_queues = queues;
	azb_chan_nr_queues = nr;
	azb_chan_fd = chan_fd;
}

static struct azbuse_queue *azb_chan_queue(const char *msg, size_t len)
{
	uint32_t dev_id;
	unsigned i;

	if (len < AZB_CHAN_HEAD)
		return NULL;
	memcpy(&dev_id, msg + 1, sizeof(dev_id));
	for (i = 0; i < azb_chan_nr_queues; i++)
		if (azb_chan_queues[i] && azb_chan_queues[i]->dev_id == dev_id)
			return azb_chan_queues[i];
	return NULL;
}

static bool azb_has_queue_control(const struct azbuse_engine_ops *ops)
{
	return ops->struct_size >= offsetof(struct azbuse_engine_ops, queue_control) +
					   sizeof(ops->queue_control) &&
	       ops->queue_control;
}

static void azb_run_queue_control(const char *msg, size_t len)
{
	static char reply[AZBUSE_CONTROL_MSG_MAX - 8];
	struct azbuse_queue *q = azb_chan_queue(msg, len);
	size_t rlen = sizeof(reply);
	int ret = q ? -EOPNOTSUPP : -ENODEV;

	if (q && azb_has_queue_control(q->ops))
		ret = q->ops->queue_control(q->engine_queue, msg + AZB_CHAN_HEAD,
					    len - AZB_CHAN_HEAD, reply, &rlen);
	else
		rlen = 0;
	azb_chan_answer(azb_chan_fd, ret, reply, ret ? 0 : rlen);
}

static void azb_quiesce_all(void)
{
	unsigned i;

	for (i = 0; i < azb_chan_nr_queues; i++)
		if (azb_chan_queues[i])
			azbuse_queue_quiesce(azb_chan_queues[i]);
}

/* Paused: answer messages until RESUME (or the supervisor is gone). */
static void azb_paused(void)
{
	static char msg[AZBUSE_CONTROL_MSG_MAX];
	ssize_t n;

	azb_quiesce_all();
	azb_chan_answer(azb_chan_fd, 0, NULL, 0);
	for (;;) {
		n = recv(azb_chan_fd, msg, sizeof(msg), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if (msg[0] == AZB_CHAN_RESUME) {
			azb_chan_answer(azb_chan_fd, 0, NULL, 0);
			return;
		}
		if (msg[0] == AZB_CHAN_ENGINE)
			azb_run_queue_control(msg, (size_t)n);
		else
			azb_chan_answer(azb_chan_fd, msg[0] == AZB_CHAN_PAUSE ? 0 : -EINVAL, NULL,
					0);
	}
}

bool azb_worker_control(void)
{
	static char msg[AZBUSE_CONTROL_MSG_MAX];
	ssize_t n;

	azb_control_signalled = 0;
	if (azb_chan_fd < 0)
		return false;
	while ((n = recv(azb_chan_fd, msg, sizeof(msg), MSG_DONTWAIT)) > 0) {
		if (msg[0] == AZB_CHAN_PAUSE) {
			azb_paused();
		} else if (msg[0] == AZB_CHAN_ENGINE) {
			azb_run_queue_control(msg, (size_t)n);
		} else if (msg[0] == AZB_CHAN_EXIT) {
			azb_quiesce_all();
			return true;
		} else {
			azb_chan_answer(azb_chan_fd, msg[0] == AZB_CHAN_RESUME ? 0 : -EINVAL, NULL,
					0);
		}
	}
	return false;
}

/* Supervisor: ask queue q's worker to finish and exit (it does not answer). */
int azb_control_ask_exit(struct azbuse_control *c, uint16_t q)
{
	return azb_chan_live(c, q) ? azb_chan_send(c, q, AZB_CHAN_EXIT, NULL, 0) : -ENODEV;
}
