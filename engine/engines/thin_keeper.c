// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_keeper.c - the keeper: a child of the thin engine's supervisor that
 * keeps pool.db open for writing between requests, so that a live snapshot
 * is a write to an open DB rather than a RocksDB open in a fresh child
 * (thin_pool.c), which was nearly all of a snapshot's time in the daemon
 * (about 220 of 240 ms under emulation). Forked at setup, before the
 * supervisor has opened anything (it never opens a RocksDB itself; see
 * thin_pool.c), it dies with the supervisor (PR_SET_PDEATHSIG) or when the
 * supervisor closes its end.
 *
 * pool.db has one writer at a time: azbuse-thin, which also writes it while
 * a volume is served, first asks the daemon to let go ("thin release"); the
 * keeper then closes it and opens it again only for the next snapshot. If
 * the keeper is gone, snapshots take the child-per-request path.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../internal.h"
#include "thin.h"

#define KEEPER_REPLY_MS 30000 /* a snapshot waits up to 5 s for pool.db, then writes */
#define KEEPER_EXIT_MS 5000

enum thin_keep_type {
	THIN_KEEP_SNAPSHOT = 1,
	THIN_KEEP_RELEASE = 2,
};

struct thin_keep_req {
	uint32_t type;
	char src[AZB_NAME_MAX + 1];
	char name[AZB_NAME_MAX + 1];
	char volume[AZB_NAME_MAX + 1]; /* the device's volume, whose facts are the answer */
};

/* In the keeper: one request, answered in f. */
static void thin_keeper_serve(const struct thin_engine *e, struct azb_pool **pool,
			      struct thin_keep_req *r, struct thin_pool_facts *f)
{
	struct thin_engine dev = *e; /* (forked from the first device's; any device asks) */

	memset(f, 0, sizeof(*f));
	r->src[sizeof(r->src) - 1] = r->name[sizeof(r->name) - 1] = '\0';
	r->volume[sizeof(r->volume) - 1] = '\0';
	snprintf(dev.volume, sizeof(dev.volume), "%s", r->volume);
	switch (r->type) {
	case THIN_KEEP_RELEASE:
		if (*pool)
			azb_pool_close(*pool);
		*pool = NULL;
		return;
	case THIN_KEEP_SNAPSHOT:
		if (!*pool)
			f->ret = thin_pool_open(e->pool_dir, pool, f->msg, sizeof(f->msg));
		if (!f->ret)
			thin_pool_facts_from(*pool, &dev, r->src, r->name, f);
		return;
	default:
		f->ret = -EINVAL;
		snprintf(f->msg, sizeof(f->msg), "keeper: unknown request %u", r->type);
	}
}

static void thin_keeper_main(const struct thin_engine *e, int fd, pid_t parent)
{
	struct azb_pool *pool = NULL;
	struct thin_pool_facts f;
	struct thin_keep_req r;
	char err[256];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	/* nothing of the supervisor's but stdio (its log): not the pool's lock,
	 * nor the pipe azbusectl add reads until the supervisor is gone */
	if (fd != 3 && dup2(fd, 3) == 3)
		fd = 3;
	if (fd == 3)
		close_range(4, ~0U, 0);
	/*
	 * Open now (the first snapshot should not pay for it either), and say
	 * when done: the supervisor starts its workers only then. A read-only
	 * open of pool.db (each worker's, at its start) beside a read-write one
	 * that is still recovering (flushing the old WAL, deleting it) can miss
	 * what that WAL held: a worker then did not find its volume.
	 */
	memset(&f, 0, sizeof(f));
	f.ret = thin_pool_open(e->pool_dir, &pool, err, sizeof(err));
	if (f.ret)
		pool = NULL; /* (tried again at the first snapshot, which reports it) */
	if (send(fd, &f, sizeof(f), MSG_NOSIGNAL) != (ssize_t)sizeof(f))
		goto out;
	for (;;) {
		ssize_t n = recv(fd, &r, sizeof(r), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the supervisor closed its end */
		if (n != (ssize_t)sizeof(r))
			r.type = 0;
		thin_keeper_serve(e, &pool, &r, &f);
		if (send(fd, &f, sizeof(f), MSG_NOSIGNAL) != (ssize_t)sizeof(f))
			break;
	}
out:
	if (pool)
		azb_pool_close(pool);
	_exit(0);
}

static int thin_keeper_reply(struct thin_engine *e, struct thin_pool_facts *f);

/* Fork the keeper and wait until it has pool.db open (or could not open it). */
int thin_keeper_start(struct thin_engine *e)
{
	struct thin_pool_facts ready;
	pid_t parent = getpid(), pid;
	int sv[2];

	e->hold->keeper_fd = -1;
	e->hold->keeper_pid = 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int ret = -errno;

		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	if (pid == 0) {
		close(sv[0]);
		thin_keeper_main(e, sv[1], parent);
	}
	close(sv[1]);
	e->hold->keeper_fd = sv[0];
	e->hold->keeper_pid = pid;
	return thin_keeper_reply(e, &ready) == -ENOTCONN ? -EIO : 0;
}

/* The keeper is gone or wedged: requests take the other path from now on. */
static void thin_keeper_lost(struct thin_engine *e, const char *why)
{
	azb_log("pool.db keeper (pid %d): %s; snapshots open pool.db each time from now on",
		(int)e->hold->keeper_pid, why);
	thin_keeper_stop(e);
}

/* The keeper's next message: its f->ret, or -ENOTCONN (then it is dropped). */
static int thin_keeper_reply(struct thin_engine *e, struct thin_pool_facts *f)
{
	struct pollfd pfd = { .fd = e->hold->keeper_fd, .events = POLLIN };
	ssize_t n;
	int ready;

	do
		ready = poll(&pfd, 1, KEEPER_REPLY_MS);
	while (ready < 0 && errno == EINTR);
	if (ready <= 0) {
		thin_keeper_lost(e, ready ? strerror(errno) : "no reply within 30 s");
		return -ENOTCONN;
	}
	do
		n = recv(e->hold->keeper_fd, f, sizeof(*f), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*f)) {
		thin_keeper_lost(e, n < 0 ? strerror(errno) : "it died");
		return -ENOTCONN;
	}
	f->msg[sizeof(f->msg) - 1] = '\0';
	return f->ret;
}

static int thin_keeper_ask(struct thin_engine *e, struct thin_keep_req *r,
			   struct thin_pool_facts *f)
{
	if (e->hold->keeper_fd < 0)
		return -ENOTCONN;
	if (send(e->hold->keeper_fd, r, sizeof(*r), MSG_NOSIGNAL) != (ssize_t)sizeof(*r)) {
		thin_keeper_lost(e, strerror(errno));
		return -ENOTCONN;
	}
	return thin_keeper_reply(e, f);
}

int thin_keeper_snapshot(struct thin_engine *e, const char *snap_src, const char *snap_name,
			 struct thin_pool_facts *f)
{
	struct thin_keep_req r = { .type = THIN_KEEP_SNAPSHOT };

	snprintf(r.src, sizeof(r.src), "%s", snap_src);
	snprintf(r.name, sizeof(r.name), "%s", snap_name);
	snprintf(r.volume, sizeof(r.volume), "%s", e->volume);
	return thin_keeper_ask(e, &r, f);
}

int thin_keeper_release(struct thin_engine *e)
{
	struct thin_keep_req r = { .type = THIN_KEEP_RELEASE };
	struct thin_pool_facts f;
	int ret = thin_keeper_ask(e, &r, &f);

	return ret == -ENOTCONN ? 0 : ret; /* no keeper: nothing held */
}

void thin_keeper_stop(struct thin_engine *e)
{
	uint64_t deadline = azb_clock_ms() + KEEPER_EXIT_MS;
	pid_t pid = e->hold->keeper_pid;

	if (e->hold->keeper_fd >= 0)
		close(e->hold->keeper_fd); /* it closes pool.db and exits */
	e->hold->keeper_fd = -1;
	e->hold->keeper_pid = 0;
	if (pid <= 0)
		return;
	/* (the supervisor may have reaped it already: ECHILD) */
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		if (azb_clock_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			break;
		}
		usleep(10000);
	}
}

void thin_keeper_close_in_worker(struct thin_engine *e)
{
	if (e->hold->keeper_fd >= 0)
		close(e->hold->keeper_fd);
	e->hold->keeper_fd = -1;
	e->hold->keeper_pid = 0;
}
