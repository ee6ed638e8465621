// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * supervisor.c - runs one device: sets the engine up, adds the device,
 * forks a worker process per queue, starts the device once every queue is
 * served, restarts workers that crash, and on SIGTERM/SIGINT (or an
 * external `azbusectl remove`) removes the device, waits for the workers
 * to flush and exit, and tears the engine down.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <numa.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define AZB_ATTACH_WAIT_MS 10000
#define AZB_NODE_WAIT_MS 5000
#define AZB_MAX_RESTARTS 100	      /* worker restarts in one window ... */
#define AZB_RESTART_WINDOW_MS 60000   /* ... beyond which the device is given up */
#define AZB_QUICK_DEATH_MS 2000	      /* a worker that dies this soon is restarted later, */
#define AZB_RESTART_DELAY_MAX_MS 2000 /* up to this much later, doubling each time */
#define AZB_ORPHAN_EXIT_MS 10000      /* --recover: a dead supervisor's worker lets go */
#define AZB_WORKER_EXIT_MS 5000

/* What the watchdog last saw of a queue. */
struct azb_progress {
	uint64_t requests; /* completed requests at the last progress */
	uint64_t timeouts; /* the queue's timeouts counter then */
	uint64_t since_ms; /* when requests last moved */
};

/* One device the supervisor serves. */
struct azb_member {
	const struct azbuse_engine_ops *ops;
	const struct azbuse_device_opts *opts; /* azbuse_run's, or a joined device's in args */
	struct azbuse_args *args;	       /* a joined device's own options (else NULL) */
	void *engine;
	uint32_t dev_id;
	uint16_t nr_queues;
	struct azbuse_control control; /* what an engine's control() works on */
	int control_fd;		       /* the listening control socket, or -1 */
	struct azb_progress *progress; /* per queue: is its worker getting anywhere? */
	struct azc_cache *cache;       /* its RAM cache (--cache), or NULL */
	uint32_t io_timeout_ms;
	bool removed;		   /* the device is gone (its workers let it go) */
	bool finished;		   /* ... and its engine torn down, its files removed */
	char recover_options[512]; /* what the engine needs to find its state again */
};

/*
 * A supervisor serves one device, or every device of a group (a thin pool):
 * then worker q serves queue q of each of them, and a device added to the
 * group joins this daemon (over the group's socket) instead of starting one.
 */
/* When a queue's worker started, and when it is due to start again. */
struct azb_restart {
	uint64_t started_ms;
	uint64_t due_ms; /* 0: not waiting to start */
	unsigned delay_ms;
};

struct azb_supervisor {
	struct azb_member *members[AZB_WORKER_DEVS_MAX];
	unsigned nr_members;
	const struct azbuse_device_opts *opts; /* the first device's (ready_fd) */
	int ctl;
	uint16_t nr_queues;
	pid_t *workers;		     /* per queue; 0 when not running */
	struct azb_restart *restart; /* per queue */
	int *chans;		     /* per queue: our end of its worker's channel, or -1 */
	char group[512];	     /* "" unless the devices form a group */
	int group_fd;		     /* the group's listening socket, or -1 */
	int join_fd;		     /* a joining device's connection, while it is served, or -1 */
	unsigned restarts;	     /* in the window that began at restarts_since_ms */
	uint64_t restarts_since_ms;
	unsigned long restarts_total;
	bool stopping;
	bool ready_closed;
};

static void azb_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void azb_report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void azb_report(int fd, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	ssize_t n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = write(fd, line, strlen(line));
	(void)n;
}

static uint64_t azb_caps_to_features(uint32_t caps)
{
	uint64_t f = 0;

	if (caps & AZBUSE_CAP_FLUSH)
		f |= AZBUSE_F_WRITE_CACHE;
	if (caps & AZBUSE_CAP_FUA)
		f |= AZBUSE_F_FUA;
	if (caps & AZBUSE_CAP_DISCARD)
		f |= AZBUSE_F_DISCARD;
	if (caps & AZBUSE_CAP_WRITE_ZEROES)
		f |= AZBUSE_F_WRITE_ZEROES;
	if (caps & AZBUSE_CAP_SECURE_ERASE)
		f |= AZBUSE_F_SECURE_ERASE;
	if (caps & AZBUSE_CAP_READ_ONLY)
		f |= AZBUSE_F_READ_ONLY;
	if (caps & AZBUSE_CAP_ROTATIONAL)
		f |= AZBUSE_F_ROTATIONAL;
	if (caps & AZBUSE_CAP_USER_COPY)
		f |= AZBUSE_F_USER_COPY;
	return f;
}

/*
 * What the device offers: what a callback can say, its presence says (flush,
 * discard, write-zeroes, secure erase; no write callback: read-only); the
 * flags say only the rest (FUA, read-only, rotational, user copy). A
 * read-only device offers nothing that writes.
 */
uint32_t azb_engine_caps(const struct azbuse_engine_ops *ops, uint32_t flags)
{
	uint32_t caps = flags & (AZBUSE_CAP_FUA | AZBUSE_CAP_READ_ONLY | AZBUSE_CAP_ROTATIONAL |
				 AZBUSE_CAP_USER_COPY);

	if (ops->flush)
		caps |= AZBUSE_CAP_FLUSH;
	else
		caps &= ~AZBUSE_CAP_FUA;
	if (!ops->write)
		caps |= AZBUSE_CAP_READ_ONLY;
	if (caps & AZBUSE_CAP_READ_ONLY)
		return caps;
	if (ops->discard)
		caps |= AZBUSE_CAP_DISCARD;
	if (ops->write_zeroes)
		caps |= AZBUSE_CAP_WRITE_ZEROES;
	if (ops->secure_erase)
		caps |= AZBUSE_CAP_SECURE_ERASE;
	return caps;
}

/*
 * The engine was set up but the device cannot be added: tear it down again,
 * except when recovering, where its state belongs to the live device.
 */
static int azb_setup_undo(struct azb_member *m, int ret)
{
	if (m->ops->teardown && !m->opts->recover)
		m->ops->teardown(m->engine);
	m->engine = NULL;
	return ret;
}

/*
 * Set the engine up for member m and fill in the device to add. group gets
 * the engine's group ("" for none); -EALREADY: another daemon serves it.
 */
static int azb_setup_engine(struct azb_member *m, struct azbuse_dev_info *info, char *group,
			    size_t group_size, char *err, size_t err_size)
{
	const struct azbuse_device_opts *o = m->opts;
	struct azbuse_engine_config cfg;
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	int ret;

	memset(&cfg, 0, sizeof(cfg));
	cfg.size_bytes = o->size_bytes;
	cfg.logical_block_size = o->logical_block_size ? o->logical_block_size : 512;
	cfg.nr_queues = o->nr_queues ? o->nr_queues : (ncpu > 0 ? (uint32_t)ncpu : 1);
	if (o->nr_shards) {
		if (o->nr_queues && o->nr_queues != o->nr_shards) {
			snprintf(err, err_size,
				 "--queues and --shards disagree (sharded: a worker per shard)");
			return -EINVAL;
		}
		cfg.nr_queues = o->nr_shards;
		cfg.shard_chunk_bytes =
			o->shard_chunk_bytes ? o->shard_chunk_bytes : AZBUSE_DEF_SHARD_CHUNK_BYTES;
	} else if (o->shard_chunk_bytes) {
		snprintf(err, err_size, "--shard-chunk needs --shards");
		return -EINVAL;
	}
	cfg.route_queue = o->route_queue;
	cfg.route_chosen = o->route_chosen;
	cfg.options = o->options;
	cfg.nr_options = o->nr_options;
	cfg.error = err;
	cfg.error_size = err_size;
	cfg.recovering = o->recover;
	cfg.recover_options = m->recover_options;
	cfg.recover_options_size = sizeof(m->recover_options);
	ret = m->ops->setup ? m->ops->setup(&cfg, &m->engine) : 0;
	cfg.group[sizeof(cfg.group) - 1] = '\0';
	snprintf(group, group_size, "%s", cfg.group);
	if (ret) {
		if (!err[0])
			snprintf(err, err_size, "engine %s: %s", m->ops->name, strerror(-ret));
		return ret;
	}
	if (!cfg.size_bytes) {
		snprintf(err, err_size, "engine %s: no device size (give --size)", m->ops->name);
		return azb_setup_undo(m, -EINVAL);
	}

	memset(info, 0, sizeof(*info));
	info->dev_id = o->dev_id;
	info->nr_queues = cfg.nr_queues;
	info->queue_depth = o->queue_depth;
	info->max_io_bytes = o->max_io_bytes;
	info->size_bytes = cfg.size_bytes;
	info->logical_block_size = cfg.logical_block_size;
	info->io_timeout_ms = o->io_timeout_ms;
	info->recovery_timeout_ms = o->recovery_timeout_ms;
	/* (the cache needs a write's data in the worker: no user copy with one) */
	info->features = azb_caps_to_features(azb_engine_caps(m->ops, cfg.caps) &
					      ~(o->cache_bytes ? AZBUSE_CAP_USER_COPY : 0));
	if (o->read_only)
		info->features |= AZBUSE_F_READ_ONLY;
	/* a cache may hold writes back (write-back, also when switched to at run
	 * time): the device has a volatile write cache, and honours FUA */
	if (o->cache_bytes)
		info->features |= AZBUSE_F_WRITE_CACHE | AZBUSE_F_FUA;
	if (cfg.route_queue && !cfg.shard_chunk_bytes) {
		snprintf(err, err_size, "--route queue needs a sharded device (--shards)");
		return azb_setup_undo(m, -EINVAL);
	}
	if (cfg.shard_chunk_bytes) {
		if (cfg.shard_chunk_bytes < 4096 ||
		    (cfg.shard_chunk_bytes & (cfg.shard_chunk_bytes - 1)) || !cfg.nr_queues ||
		    cfg.nr_queues > AZBUSE_MAX_QUEUES) {
			snprintf(err, err_size, "engine %s: bad shard chunk %u or shard count %u",
				 m->ops->name, cfg.shard_chunk_bytes, cfg.nr_queues);
			return azb_setup_undo(m, -EINVAL);
		}
		info->features |= AZBUSE_F_SHARDED;
		if (cfg.route_queue)
			info->features |= AZBUSE_F_ROUTE_QUEUE;
		info->nr_queues = cfg.nr_queues;
		info->chunk_sectors = cfg.shard_chunk_bytes >> 9;
	}
	/* with a cache, every request passes through the workers (and the cache) */
	if (cfg.direct_map_chunk_bytes && o->cache_bytes)
		azb_log("the module's direct map is off: the cache sees every request");
	if (cfg.direct_map_chunk_bytes && !o->cache_bytes) {
		info->features |= AZBUSE_F_DIRECT_MAP;
		info->map_chunk_bytes = cfg.direct_map_chunk_bytes;
		info->map_user_bytes = cfg.direct_map_user_bytes;
	}
	return 0;
}

/* Our end of a worker's channel, when it has gone. */
static void azb_close_chan(struct azb_supervisor *s, uint16_t queue)
{
	if (s->chans[queue] >= 0)
		close(s->chans[queue]);
	s->chans[queue] = -1;
}

/* In a new worker: close what is the supervisor's and serve queue `queue` of every device. */
static void azb_worker_child(struct azb_supervisor *s, uint16_t queue, int chan_fd)
{
	struct azb_serve_dev devs[AZB_WORKER_DEVS_MAX];
	unsigned i, nr = 0;
	sigset_t none;
	uint16_t q;

	for (q = 0; q < s->nr_queues; q++)
		if (s->chans[q] >= 0)
			close(s->chans[q]);
	for (i = 0; i < s->nr_members; i++) {
		struct azb_member *m = s->members[i];

		if (m->control_fd >= 0)
			close(m->control_fd);
		if (!m->removed)
			devs[nr++] = (struct azb_serve_dev){ .ops = m->ops,
							     .engine = m->engine,
							     .dev_id = m->dev_id,
							     .opts = m->opts,
							     .cache = m->cache };
	}
	if (s->group_fd >= 0)
		close(s->group_fd);
	if (s->join_fd >= 0)
		close(s->join_fd);
	sigemptyset(&none);
	/* a control message's signal before the worker handles them must not kill it
	 * (the supervisor signals again while it waits for the answer) */
	signal(SIGUSR1, SIG_IGN);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN); /* a terminal's ^C goes to the supervisor, which drains */
	close(s->ctl);
	if (!s->ready_closed && s->opts->ready_fd >= 0)
		close(s->opts->ready_fd);
	_exit(azbuse_worker_main(devs, nr, queue, chan_fd) ? 1 : 0);
}

static pid_t azb_spawn_worker(struct azb_supervisor *s, uint16_t queue)
{
	int sv[2] = { -1, -1 };
	pid_t pid;

	azb_close_chan(s, queue);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		azb_warn("queue %u: no control channel: %s", queue, strerror(errno));
	pid = fork();
	if (pid) {
		if (sv[1] >= 0)
			close(sv[1]);
		if (pid < 0) {
			if (sv[0] >= 0)
				close(sv[0]);
			return -errno;
		}
		s->chans[queue] = sv[0];
		s->restart[queue].started_ms = azb_clock_ms();
		return pid;
	}
	if (sv[0] >= 0)
		close(sv[0]);
	azb_worker_child(s, queue, sv[1]);
	return 0; /* (not reached) */
}

static int azb_queue_of(const struct azb_supervisor *s, pid_t pid)
{
	int q;

	for (q = 0; q < s->nr_queues; q++)
		if (s->workers[q] == pid)
			return q;
	return -1;
}

static unsigned azb_live_members(const struct azb_supervisor *s)
{
	unsigned i, n = 0;

	for (i = 0; i < s->nr_members; i++)
		n += !s->members[i]->removed;
	return n;
}

/*
 * A queue's worker died: it starts again at once, or, if it died soon after
 * it started (an engine that cannot open its queue for now), after a delay
 * that doubles each time, so that a failure for a while does not use up the
 * restarts and give the device up.
 */
static void azb_schedule_restart(struct azb_supervisor *s, uint16_t q)
{
	struct azb_restart *r = &s->restart[q];
	uint64_t now = azb_clock_ms();

	if (now - r->started_ms < AZB_QUICK_DEATH_MS)
		r->delay_ms = r->delay_ms ? r->delay_ms * 2 : 50;
	else
		r->delay_ms = 0;
	if (r->delay_ms > AZB_RESTART_DELAY_MAX_MS)
		r->delay_ms = AZB_RESTART_DELAY_MAX_MS;
	if (r->delay_ms)
		azb_log("worker for queue %u died %llu ms after it started: starting another "
			"in %u ms",
			q, (unsigned long long)(now - r->started_ms), r->delay_ms);
	r->due_ms = now + r->delay_ms;
}

/* Start the workers that are due (again, 1 s later, if one cannot be forked). */
static void azb_restart_due(struct azb_supervisor *s)
{
	uint64_t now = azb_clock_ms();
	pid_t pid;
	int q;

	for (q = 0; q < s->nr_queues; q++) {
		struct azb_restart *r = &s->restart[q];

		if (!r->due_ms || now < r->due_ms || s->workers[q])
			continue;
		r->due_ms = 0;
		if (s->stopping || !azb_live_members(s))
			continue;
		pid = azb_spawn_worker(s, (uint16_t)q);
		if (pid < 0) {
			azb_err("cannot restart worker for queue %d: %s", q, strerror(-pid));
			r->due_ms = now + 1000;
			continue;
		}
		s->workers[q] = pid;
		azb_log("restarted worker for queue %d as pid %d", q, pid);
	}
}

/* Reap exited workers; restart the ones that crashed unless we are stopping. */
static void azb_reap_workers(struct azb_supervisor *s)
{
	int status, q;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		q = azb_queue_of(s, pid);
		if (q < 0)
			continue;
		s->workers[q] = 0;
		azb_close_chan(s, (uint16_t)q);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			continue; /* its devices went away and the worker finished cleanly */
		if (WIFSIGNALED(status))
			azb_err("worker %d (queue %d) killed by signal %d", pid, q,
				WTERMSIG(status));
		else
			azb_err("worker %d (queue %d) exited with status %d", pid, q,
				WEXITSTATUS(status));
		if (s->stopping || !azb_live_members(s))
			continue;
		if (azb_clock_ms() - s->restarts_since_ms > AZB_RESTART_WINDOW_MS) {
			s->restarts = 0;
			s->restarts_since_ms = azb_clock_ms();
		}
		s->restarts_total++;
		if (++s->restarts > AZB_MAX_RESTARTS) {
			azb_err("%u worker restarts within %u s; removing the device",
				AZB_MAX_RESTARTS, AZB_RESTART_WINDOW_MS / 1000);
			s->stopping = true;
			continue;
		}
		azb_schedule_restart(s, (uint16_t)q);
	}
	azb_restart_due(s);
}

static int azb_running_workers(const struct azb_supervisor *s)
{
	int q, n = 0;

	for (q = 0; q < s->nr_queues; q++)
		n += s->workers[q] > 0;
	return n;
}

static int azb_wait_attached(struct azb_supervisor *s, uint32_t dev_id, char *err, size_t err_size)
{
	struct azbuse_queue_info qi;
	unsigned long restarts = s->restarts_total;
	unsigned waited;
	int q, ret;

	for (waited = 0; waited < AZB_ATTACH_WAIT_MS; waited += 10) {
		int attached = 0;

		azb_reap_workers(s);
		for (q = 0; q < s->nr_queues; q++) {
			ret = azbuse_ctl_queue_info(s->ctl, dev_id, q, &qi);
			if (ret) {
				snprintf(err, err_size, "queue info: %s", strerror(-ret));
				return ret;
			}
			attached += qi.state == AZBUSE_QUEUE_ATTACHED;
		}
		if (attached == s->nr_queues)
			return 0;
		if (s->restarts_total != restarts) {
			snprintf(err, err_size, "a worker failed to start (see the log)");
			return -EIO;
		}
		azb_sleep_ms(10);
	}
	snprintf(err, err_size, "workers did not attach within %u ms", AZB_ATTACH_WAIT_MS);
	return -ETIMEDOUT;
}

/* The block device node appears through devtmpfs/udev shortly after START. */
static void azb_wait_node(uint32_t dev_id)
{
	char path[64];
	struct stat st;
	unsigned waited;

	snprintf(path, sizeof(path), AZBUSE_BLOCK_PREFIX "%u", dev_id);
	for (waited = 0; waited < AZB_NODE_WAIT_MS; waited += 10) {
		if (!stat(path, &st) && S_ISBLK(st.st_mode))
			return;
		azb_sleep_ms(10);
	}
	if (!stat(path, &st))
		azb_log("%s is in the way: it exists and is not a block device", path);
	else
		azb_warn("%s did not appear within %u ms", path, AZB_NODE_WAIT_MS);
}

static void azb_stop_workers(struct azb_supervisor *s)
{
	int q;

	for (q = 0; q < s->nr_queues; q++)
		if (s->workers[q] > 0)
			kill(s->workers[q], SIGKILL);
	while (azb_running_workers(s)) {
		azb_reap_workers(s);
		if (azb_running_workers(s))
			azb_sleep_ms(10);
	}
}

/*
 * A new device joined: every worker is replaced, one queue at a time, by
 * one forked from the state that now includes it. The old worker finishes
 * what it holds and exits; the module re-posts what was waiting in its
 * ring to the new one, as after a crash.
 */
static void azb_replace_workers(struct azb_supervisor *s)
{
	struct azbuse_control *c = &s->members[0]->control;
	uint16_t q;

	for (q = 0; q < s->nr_queues; q++) {
		pid_t old = s->workers[q];
		uint64_t deadline = azb_clock_ms() + AZB_WORKER_EXIT_MS;
		int status;

		if (old > 0 && !azb_control_ask_exit(c, q)) {
			while (waitpid(old, &status, WNOHANG) == 0 && azb_clock_ms() < deadline)
				azb_sleep_ms(1);
		}
		if (old > 0 && waitpid(old, &status, WNOHANG) == 0) {
			azb_warn("worker %d (queue %u) did not exit: killing it", old, q);
			kill(old, SIGKILL);
			waitpid(old, &status, 0);
		}
		s->workers[q] = azb_spawn_worker(s, q);
		if (s->workers[q] < 0) {
			azb_err("cannot fork a worker for queue %u: %s", q,
				strerror(-s->workers[q]));
			s->workers[q] = 0;
			s->restart[q].due_ms = azb_clock_ms() + 1000; /* (tried again) */
		}
	}
}

/* Is member m's device gone (removed, or its id now names someone else's device)? */
static bool azb_device_gone(struct azb_supervisor *s, struct azb_member *m)
{
	struct azbuse_dev_info info;
	int ret = azbuse_ctl_info(s->ctl, m->dev_id, &info);

	return ret == -ENOENT || (!ret && info.owner_pid != getpid());
}

/*
 * A worker that holds requests, completes none for io_timeout and has let a
 * request time out meanwhile is wedged (an engine deadlock, a hung backend):
 * kill it. The module re-posts its requests to the worker started in its
 * place, exactly as after a crash. A slow worker that still completes
 * requests is left alone.
 */
static void azb_watch_progress(struct azb_supervisor *s, struct azb_member *m, uint64_t now)
{
	struct azbuse_queue_info qi;
	int q;

	for (q = 0; q < s->nr_queues; q++) {
		struct azb_progress *p = &m->progress[q];

		if (azbuse_ctl_queue_info(s->ctl, m->dev_id, q, &qi))
			return;
		if (qi.requests != p->requests || !qi.inflight || !p->since_ms) {
			p->requests = qi.requests;
			p->timeouts = qi.timeouts;
			p->since_ms = now;
			continue;
		}
		if (now - p->since_ms < m->io_timeout_ms || qi.timeouts == p->timeouts ||
		    s->workers[q] <= 0)
			continue;
		azb_log("worker %d (queue %d) completed nothing on azbuse%u in %u ms with %u "
			"request(s) waiting: killing it",
			s->workers[q], q, m->dev_id, (unsigned)(now - p->since_ms), qi.inflight);
		kill(s->workers[q], SIGKILL);
		p->timeouts = qi.timeouts;
		p->since_ms = now;
	}
}

/*
 * A member whose device is gone and no worker serves any more: its cache,
 * control socket and saved configuration go, and its engine is torn down.
 */
static void azb_finish_member(struct azb_member *m)
{
	if (m->finished)
		return;
	m->finished = true;
	azbuse_conf_remove(m->dev_id);
	azb_control_close(m->dev_id, m->control_fd);
	m->control_fd = -1;
	if (m->ops->teardown && m->engine)
		m->ops->teardown(m->engine);
	m->engine = NULL;
	azc_destroy(m->cache);
	m->cache = NULL;
	azb_log("azbuse%u removed", m->dev_id);
}

static void azb_join_serve(struct azb_supervisor *s);

/* Wait for signals, dead workers and joining devices until every device is gone. */
static void azb_supervise(struct azb_supervisor *s, const sigset_t *signals)
{
	struct timespec tick = { .tv_nsec = 200 * 1000000 };
	uint64_t removed_at = 0;
	siginfo_t si;
	unsigned i;
	int sig;

	for (;;) {
		sig = sigtimedwait(signals, &si, &tick);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			if (!s->stopping)
				azb_log("signal %d: draining and removing the device%s", sig,
					s->nr_members > 1 ? "s" : "");
			s->stopping = true;
		}
		azb_reap_workers(s);
		for (i = 0; i < s->nr_members; i++) {
			struct azb_member *m = s->members[i];

			if (m->removed)
				continue;
			if (m->control_fd >= 0 && !s->stopping) {
				azb_device_cache =
					m->cache; /* what "cache ..." and drains work on */
				azb_control_serve(m->control_fd, m->ops, m->engine, &m->control);
			}
			if (azb_device_gone(s, m))
				m->removed = true;
			else if (!s->stopping)
				azb_watch_progress(s, m, azb_clock_ms());
			if (s->stopping && !m->removed) {
				int ret = azbuse_ctl_remove(s->ctl, m->dev_id);

				if (ret && ret != -ENOENT)
					azb_log("remove azbuse%u: %s", m->dev_id, strerror(-ret));
				m->removed = true;
			}
			/* the others still serve: this one's workers have let it go */
			if (m->removed && azb_live_members(s))
				azb_finish_member(m);
		}
		if (s->group_fd >= 0 && !s->stopping && azb_live_members(s))
			azb_join_serve(s);
		if (azb_live_members(s))
			continue;
		if (!azb_running_workers(s))
			return;
		/* every device is gone; a worker that does not follow is stuck (or stopped) */
		if (!removed_at)
			removed_at = azb_clock_ms();
		else if (azb_clock_ms() - removed_at > AZB_WORKER_EXIT_MS) {
			azb_err("workers did not exit %u ms after removal: killing them",
				AZB_WORKER_EXIT_MS);
			azb_stop_workers(s);
		}
	}
}

/*
 * --recover when only the supervisor died: its workers may still serve the
 * queues, and a new worker cannot attach until they let go. They are
 * stopped (the module posts what they held to the new workers).
 */
static int azb_stop_orphan_workers(struct azb_supervisor *s, uint32_t dev_id, uint32_t nr_queues,
				   char *err, size_t err_size)
{
	struct azbuse_queue_info qi;
	uint64_t deadline = azb_clock_ms() + AZB_ORPHAN_EXIT_MS;
	uint32_t q;
	int ret;

	for (q = 0; q < nr_queues; q++) {
		ret = azbuse_ctl_queue_info(s->ctl, dev_id, q, &qi);
		if (ret) {
			snprintf(err, err_size, "queue info: %s", strerror(-ret));
			return ret;
		}
		if (qi.state != AZBUSE_QUEUE_ATTACHED || qi.worker_pid <= 1)
			continue;
		azb_log("queue %u: worker %d of the dead supervisor still serves it: stopping it",
			q, qi.worker_pid);
		kill(qi.worker_pid, SIGKILL);
		while (!(ret = azbuse_ctl_queue_info(s->ctl, dev_id, q, &qi)) &&
		       qi.state == AZBUSE_QUEUE_ATTACHED && azb_clock_ms() < deadline)
			azb_sleep_ms(10);
		if (!ret && qi.state == AZBUSE_QUEUE_ATTACHED) {
			snprintf(err, err_size, "queue %u: worker %d did not let go", q,
				 qi.worker_pid);
			return -EBUSY;
		}
	}
	return 0;
}

/* --recover: the device must be live; we become its supervisor. */
static int azb_take_over(struct azb_supervisor *s, struct azbuse_dev_info *want, char *err,
			 size_t err_size)
{
	struct azbuse_dev_info info;
	int ret = azbuse_ctl_info(s->ctl, want->dev_id, &info);

	if (ret) {
		snprintf(err, err_size, "no device azbuse%u to recover: %s", want->dev_id,
			 strerror(-ret));
		return ret;
	}
	if (info.state != AZBUSE_DEV_LIVE || info.size_bytes != want->size_bytes) {
		snprintf(err, err_size, "azbuse%u is not the live %llu-byte device that was saved",
			 want->dev_id, (unsigned long long)want->size_bytes);
		return -EINVAL;
	}
	if (info.owner_pid > 0 && info.owner_pid != getpid() && !kill(info.owner_pid, 0)) {
		snprintf(err, err_size, "azbuse%u is still served by supervisor %d", want->dev_id,
			 info.owner_pid);
		return -EBUSY;
	}
	ret = azbuse_ctl_takeover(s->ctl, want->dev_id);
	if (ret) {
		snprintf(err, err_size, "cannot take azbuse%u over: %s", want->dev_id,
			 strerror(-ret));
		return ret;
	}
	ret = azb_stop_orphan_workers(s, want->dev_id, info.nr_queues, err, err_size);
	if (ret)
		return ret;
	*want = info;
	return 0;
}

/* A SIGIO left pending by a late control client must not reach the caller. */
static void azb_discard_sigio(void)
{
	struct timespec zero = { 0 };
	sigset_t sigio;

	sigemptyset(&sigio);
	sigaddset(&sigio, SIGIO);
	while (sigtimedwait(&sigio, NULL, &zero) > 0)
		;
}

/*
 * The NUMA nodes of the CPUs that submit to the device's queues (blk-mq's
 * map in sysfs), as a mask; 0 if unknown.
 */
static uint64_t azb_queue_nodes(uint32_t dev_id, uint32_t nr_queues)
{
	uint64_t nodes = 0;
	char path[96], list[4096];

	if (numa_available() < 0)
		return 0;
	for (uint32_t q = 0; q < nr_queues; q++) {
		struct bitmask *cpus;
		FILE *f;

		snprintf(path, sizeof(path), "/sys/block/azbuse%u/mq/%u/cpu_list", dev_id, q);
		f = fopen(path, "re");
		if (!f) {
			azb_log("cache: no %s: %s", path, strerror(errno));
			continue;
		}
		if (!fgets(list, sizeof(list), f))
			list[0] = '\0';
		fclose(f);
		list[strcspn(list, "\n")] = '\0';
		cpus = list[0] ? numa_parse_cpustring_all(list) : NULL;
		for (unsigned c = 0; cpus && c < cpus->size; c++) {
			int node = numa_bitmask_isbitset(cpus, c) ? numa_node_of_cpu((int)c) : -1;

			if (node >= 0 && node < 64)
				nodes |= 1ULL << node;
		}
		if (cpus)
			numa_bitmask_free(cpus);
	}
	return nodes;
}

/*
 * The cache's pages come from its queues' NUMA node, or interleaved over
 * their nodes (blk-mq's map is in sysfs once the disk is started; the cache
 * was made before the workers, and its data pages are not touched yet).
 */
static void azb_place_cache(struct azc_cache *cache, uint32_t dev_id, uint32_t nr_queues)
{
	uint64_t nodes;

	if (!cache)
		return;
	nodes = azb_queue_nodes(dev_id, nr_queues);
	if (nodes && azc_place(cache, nodes))
		azb_warn("cache: cannot place it on NUMA nodes %#llx: %s",
			 (unsigned long long)nodes, strerror(errno));
	else if (nodes)
		azb_log("cache: on NUMA nodes %#llx", (unsigned long long)nodes);
}

/*
 * Let the module serve the cache's hits itself (after azb_place_cache: the
 * module pins the region's pages, so they must be where they belong first).
 * Without that (an older module), the workers serve every hit.
 */
static void azb_attach_cache(struct azb_supervisor *s, struct azb_member *m)
{
	uint64_t len;
	void *addr;
	int ret;

	if (!m->cache)
		return;
	azc_region(m->cache, &addr, &len);
	/* (first: a shrink meanwhile must not give back pages the module holds) */
	azc_set_pinned(m->cache, true);
	ret = azbuse_ctl_cache_attach(s->ctl, m->dev_id, addr, len);
	if (!ret)
		return;
	azc_set_pinned(m->cache, false);
	azb_warn("cache: the module cannot serve its hits (%s): the workers serve them",
		 strerror(-ret));
}

/* The device's RAM cache (--cache), shared by the workers forked after it. */
static int azb_make_cache(const struct azbuse_device_opts *o, const struct azbuse_dev_info *info,
			  struct azc_cache **cache, char *err, size_t err_size)
{
	/* (a sharded device's ring may hold every shard's requests) */
	uint32_t tags =
		info->queue_depth * (info->features & AZBUSE_F_SHARDED ? info->nr_queues : 1);
	struct azc_params p = { .queues = info->nr_queues,
				.tags = (tags > 65536 ? 65536 : tags) + AZB_CLEAN_IOS,
				.seq_cutoff = AZC_SEQ_CUTOFF_DEFAULT,
				.bytes = o->cache_bytes,
				.block_size = AZBUSE_CACHE_BLOCK,
				.policy = (enum azc_policy)o->cache_policy,
				.mode = (enum azc_mode)o->cache_mode,
				.numa_node = -1 };
	int ret;

	*cache = NULL;
	if (!o->cache_bytes)
		return 0;
	ret = azc_create(&p, cache);
	if (ret) {
		snprintf(err, err_size, "cannot make a %llu-byte cache: %s",
			 (unsigned long long)o->cache_bytes, strerror(-ret));
		return ret;
	}
	azb_log("cache: %llu MiB, %s, %s", (unsigned long long)(o->cache_bytes >> 20),
		azc_mode_name(p.mode), azc_policy_name(p.policy));
	return 0;
}

/*
 * The module refused an ADD (-EINVAL): which field and which limit, as far
 * as userspace can tell (the options' own ranges are checked when parsed).
 */
static void azb_explain_add(const struct azbuse_dev_info *info, char *buf, size_t len)
{
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	uint32_t depth = info->queue_depth ? info->queue_depth : AZBUSE_DEF_QUEUE_DEPTH;
	uint32_t io = info->max_io_bytes ? info->max_io_bytes : AZBUSE_DEF_IO_BYTES;
	uint32_t lbs = info->logical_block_size ? info->logical_block_size : 512;
	uint64_t slots = (uint64_t)info->nr_queues * depth * io;
	char a[32], b[32], c[32];

	if (!(info->features & AZBUSE_F_SHARDED) && cpus > 0 && info->nr_queues > cpus)
		snprintf(buf, len,
			 "%u queues: the module takes at most one per CPU (%ld here) unless the "
			 "device is sharded",
			 info->nr_queues, cpus);
	else if ((info->features & AZBUSE_F_SHARDED) &&
		 (uint64_t)depth * info->nr_queues > AZBUSE_MAX_SHARED_TAGS)
		snprintf(
			buf, len,
			"%u shards x depth %u = %llu tags: a sharded device has at most %u (give a "
			"smaller --depth)",
			info->nr_queues, depth, (unsigned long long)depth * info->nr_queues,
			AZBUSE_MAX_SHARED_TAGS);
	else if (info->size_bytes % lbs)
		snprintf(buf, len, "size %llu: not a multiple of the %u-byte logical block",
			 (unsigned long long)info->size_bytes, lbs);
	else if (ram && slots > ram / 2)
		snprintf(buf, len,
			 "data slots of %u queues x depth %u x %s max I/O = %s: more than half of "
			 "RAM (%s); give a smaller --depth or --max-io",
			 info->nr_queues, depth, azbuse_format_size(io, a, sizeof(a)),
			 azbuse_format_size(slots, b, sizeof(b)),
			 azbuse_format_size(ram, c, sizeof(c)));
	else
		snprintf(buf, len,
			 "a parameter is outside what the module accepts (its limits "
			 "are in azbuse/uapi.h)");
}

/* Add (or, recovering, take over) member m's device; its id and queue count into m. */
static int azb_add_device(struct azb_supervisor *s, struct azb_member *m,
			  struct azbuse_dev_info *info, char *err, size_t err_size)
{
	int ret;

	if (m->opts->recover) {
		ret = azb_take_over(s, info, err, err_size);
	} else {
		ret = azbuse_ctl_add(s->ctl, info);
		if (ret == -EINVAL) {
			char why[256];

			azb_explain_add(info, why, sizeof(why));
			snprintf(err, err_size, "the module refused the device: %s", why);
		} else if (ret) {
			snprintf(err, err_size, "cannot add device: %s", strerror(-ret));
		}
	}
	if (ret)
		return ret;
	m->dev_id = info->dev_id;
	m->nr_queues = info->nr_queues;
	m->io_timeout_ms = info->io_timeout_ms;
	m->progress = calloc(info->nr_queues, sizeof(*m->progress));
	if (!m->progress) {
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	return azb_make_cache(m->opts, info, &m->cache, err, err_size);
}

/*
 * udev sees the device before its configuration is saved: a "change" event
 * once it is lets rules name it from that (60-azbuse.rules: /dev/azbuse/POOL/VOLUME).
 */
static void azb_uevent_change(uint32_t dev_id)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/sys/block/azbuse%u/uevent", dev_id);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "change", 6) != 6)
		azb_warn("cannot send a change event for azbuse%u: %s", dev_id, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* Member m's queues are served: start its disk, listen for control, save its config. */
static int azb_start_member(struct azb_supervisor *s, struct azb_member *m, char *err,
			    size_t err_size)
{
	int ret = azb_wait_attached(s, m->dev_id, err, err_size);

	if (ret)
		return ret;
	if (!m->opts->recover) {
		ret = azbuse_ctl_start(s->ctl, m->dev_id);
		if (ret) {
			snprintf(err, err_size, "cannot start device: %s", strerror(-ret));
			return ret;
		}
	}
	azb_wait_node(m->dev_id);
	azb_place_cache(m->cache, m->dev_id, m->nr_queues);
	azb_attach_cache(s, m);
	m->control = (struct azbuse_control){ .dev_id = m->dev_id,
					      .nr_queues = s->nr_queues,
					      .workers = s->workers,
					      .chans = s->chans };
	m->control_fd = azb_control_listen(m->dev_id);
	if (m->control_fd < 0)
		azb_warn("no control socket for azbuse%u: %s", m->dev_id, strerror(-m->control_fd));
	ret = azbuse_conf_save(m->dev_id, m->ops->name, m->opts, m->recover_options);
	if (!ret)
		azb_uevent_change(m->dev_id);
	if (ret)
		azb_warn("cannot save the configuration of azbuse%u for --recover: %s", m->dev_id,
			 strerror(-ret));
	azb_log("%s " AZBUSE_BLOCK_PREFIX "%u with engine %s, %u queue(s)",
		m->opts->recover ? "recovered" : "serving", m->dev_id, m->ops->name, m->nr_queues);
	return 0;
}

/* ---- devices joining the group ---- */

#define AZB_JOIN_READ_MS 2000
#define AZB_JOIN_REPLY_MS 120000

/* Read a joining device's request (until the client shuts its end) into a. */
static int azb_join_read(int fd, struct azbuse_args *a)
{
	char buf[8192];
	size_t used = 0;
	uint64_t deadline = azb_clock_ms() + AZB_JOIN_READ_MS;
	unsigned dev_id, recover;
	FILE *f;
	int ret;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = azb_clock_ms();
		ssize_t n;

		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + used, sizeof(buf) - 1 - used);
		if (n < 0)
			return -errno;
		if (!n)
			break;
		used += (size_t)n;
		if (used == sizeof(buf) - 1)
			return -E2BIG;
	}
	buf[used] = '\0';
	if (sscanf(buf, "join %u %u\n", &dev_id, &recover) != 2)
		return -EPROTO;
	f = fmemopen(buf + strcspn(buf, "\n") + 1, strlen(buf + strcspn(buf, "\n") + 1), "r");
	if (!f)
		return -errno;
	azbuse_device_opts_init(&a->opts);
	ret = azbuse_conf_parse(f, "join request", a);
	fclose(f);
	a->opts.dev_id = dev_id;
	a->opts.recover = recover != 0;
	return ret;
}

/* Set up, add and serve a device that joined; 0 or -errno with a message in err. */
/*
 * A joining device failed after its engine was set up: tear it down, also
 * when it was to be taken over (unlike the first device's, its state is in
 * this daemon's own engine: a thin device's share of the pool's hold).
 */
static int azb_member_undo(struct azb_member *m, int ret)
{
	if (m->ops->teardown && m->engine)
		m->ops->teardown(m->engine);
	m->engine = NULL;
	return ret;
}

static int azb_join_member(struct azb_supervisor *s, struct azb_member *m, char *err,
			   size_t err_size)
{
	struct azbuse_dev_info info;
	char group[sizeof(s->group)];
	int ret;

	ret = azbuse_check_engine_options(m->ops, m->args, err, err_size);
	if (ret)
		return ret;
	ret = azb_setup_engine(m, &info, group, sizeof(group), err, err_size);
	if (!ret && strcmp(group, s->group)) {
		snprintf(err, err_size, "the device is not of this daemon's group");
		return azb_member_undo(m, -EINVAL);
	}
	if (ret)
		return ret == -EALREADY ? -EDEADLK : ret;
	if (info.nr_queues != s->nr_queues) {
		snprintf(err, err_size, "the device has %u queues; this daemon's have %u",
			 info.nr_queues, s->nr_queues);
		return azb_member_undo(m, -EINVAL);
	}
	ret = azb_add_device(s, m, &info, err, err_size);
	if (ret) {
		if (m->dev_id != AZBUSE_DEV_ID_ANY && !m->opts->recover) /* added, then no cache */
			azbuse_ctl_remove(s->ctl, m->dev_id);
		return azb_member_undo(m, ret);
	}
	s->members[s->nr_members++] = m;
	azb_replace_workers(s);
	ret = azb_start_member(s, m, err, err_size);
	if (ret) {
		/* its workers let it go once it is removed; a failed takeover leaves it */
		if (!m->opts->recover)
			azbuse_ctl_remove(s->ctl, m->dev_id);
		m->removed = true;
		azb_finish_member(m);
	}
	return ret;
}

static bool azb_is_member(const struct azb_supervisor *s, const struct azb_member *m)
{
	unsigned i;

	for (i = 0; i < s->nr_members; i++)
		if (s->members[i] == m)
			return true;
	return false;
}

/* One device asking to join on fd: served, or refused with the reason in err. */
static int azb_join_one(struct azb_supervisor *s, int fd, struct azb_member *m, char *err,
			size_t err_size)
{
	struct azbuse_args *a = m->args;
	int ret = azb_join_read(fd, a);

	if (ret) {
		snprintf(err, err_size, "bad join request: %s",
			 a->error[0] ? a->error : strerror(-ret));
		return ret;
	}
	if (s->nr_members >= AZB_WORKER_DEVS_MAX) {
		snprintf(err, err_size, "this daemon serves %u devices already", s->nr_members);
		return -ENOSPC;
	}
	/* (the daemon's engine: the joining device names it, the daemon has it) */
	m->ops = s->members[0]->ops;
	if (strcmp(a->engine, m->ops->name)) {
		snprintf(err, err_size, "engine %s cannot join a daemon of engine %s", a->engine,
			 s->members[0]->ops->name);
		return -EINVAL;
	}
	m->opts = &a->opts;
	return azb_join_member(s, m, err, err_size);
}

/* Answer every device waiting to join (one at a time; each replaces the workers). */
static void azb_join_serve(struct azb_supervisor *s)
{
	char err[512], reply[600];
	int fd, ret;

	while ((fd = accept4(s->group_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		struct azb_member *m = calloc(1, sizeof(*m));

		s->join_fd = fd; /* (not for the workers forked meanwhile) */
		err[0] = '\0';
		ret = -ENOMEM;
		if (m && (m->args = calloc(1, sizeof(*m->args)))) {
			m->control_fd = -1;
			m->dev_id = AZBUSE_DEV_ID_ANY;
			ret = azb_join_one(s, fd, m, err, sizeof(err));
		}
		if (ret) {
			azb_err("a device could not join: %s", err[0] ? err : strerror(-ret));
			snprintf(reply, sizeof(reply), "ERR %s\n", err[0] ? err : strerror(-ret));
		} else {
			snprintf(reply, sizeof(reply), "OK %u\n", m->dev_id);
		}
		if (write(fd, reply, strlen(reply)) < 0)
			azb_warn("cannot answer the joining device: %s", strerror(errno));
		close(fd);
		s->join_fd = -1;
		/* (a member, even one that failed to start, is freed with the others) */
		if (m && !azb_is_member(s, m)) {
			free(m->progress);
			free(m->args);
			free(m);
		}
	}
}

/*
 * This device's group has a daemon: hand the device to it. 0 and the
 * device's id, or -errno (-ENOENT: no daemon listens) with a message.
 */
static int azb_join(const char *group, const char *engine, const struct azbuse_device_opts *o,
		    uint32_t *dev_id, char *err, size_t err_size)
{
	uint64_t deadline = azb_clock_ms() + AZB_JOIN_REPLY_MS;
	struct pollfd pfd;
	char reply[600];
	size_t used = 0;
	FILE *f;
	int fd = azb_group_connect(group), ret = 0;

	if (fd < 0)
		return fd;
	f = fdopen(fd, "w");
	if (!f) {
		ret = -errno;
		close(fd);
		return ret;
	}
	fprintf(f, "join %u %d\n", o->dev_id, o->recover ? 1 : 0);
	azbuse_conf_write(f, engine, o, NULL);
	if (fflush(f) || shutdown(fd, SHUT_WR))
		ret = -errno;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	while (!ret && used + 1 < sizeof(reply)) {
		uint64_t now = azb_clock_ms();
		ssize_t n;

		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0) {
			ret = -ETIMEDOUT;
			break;
		}
		n = read(fd, reply + used, sizeof(reply) - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
		if (memchr(reply, '\n', used))
			break; /* the answer is one line */
	}
	fclose(f);
	reply[used] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	if (ret) {
		snprintf(err, err_size, "the daemon serving this device's group did not answer: %s",
			 strerror(-ret));
		return ret;
	}
	if (sscanf(reply, "OK %u", dev_id) == 1)
		return 0;
	snprintf(err, err_size, "%.400s", !strncmp(reply, "ERR ", 4) ? reply + 4 : "no answer");
	return -EIO;
}

/*
 * Set the first device up. -EALREADY: its group has a daemon, which took
 * it (*joined then has its id).
 */
static int azb_first_device(struct azb_supervisor *s, struct azb_member *m,
			    struct azbuse_dev_info *info, uint32_t *joined, char *err,
			    size_t err_size)
{
	uint64_t deadline = azb_clock_ms() + AZB_ATTACH_WAIT_MS;
	int ret;

	for (;;) {
		err[0] = '\0';
		ret = azb_setup_engine(m, info, s->group, sizeof(s->group), err, err_size);
		if (ret != -EALREADY || !s->group[0])
			return ret;
		ret = azb_join(s->group, m->ops->name, m->opts, joined, err, err_size);
		if (ret != -ENOENT)
			return ret ? ret : -EALREADY;
		/* the group's holder is starting, or was only passing: try again */
		if (azb_clock_ms() > deadline) {
			snprintf(err, err_size, "the group %.400s is held, and no daemon serves it",
				 s->group);
			return -EBUSY;
		}
		azb_sleep_ms(50);
	}
}

static void azb_free_members(struct azb_supervisor *s)
{
	unsigned i;

	for (i = 0; i < s->nr_members; i++) {
		struct azb_member *m = s->members[i];

		free(m->progress);
		free(m->args);
		if (i)
			free(m);
	}
	s->nr_members = 0;
}

int azbuse_run(const struct azbuse_engine_ops *ops, const struct azbuse_device_opts *o)
{
	struct azb_member first = {
		.ops = ops, .opts = o, .control_fd = -1, .dev_id = AZBUSE_DEV_ID_ANY
	};
	struct azb_supervisor s = { .opts = o, .ctl = -1, .group_fd = -1, .join_fd = -1 };
	struct azbuse_dev_info info;
	sigset_t signals, old;
	uint32_t joined = 0;
	char err[512] = "";
	char prefix[64];
	unsigned i;
	int q, ret;

	/* an engine built against an older API works: callbacks past its struct_size are absent */
	if (ops->struct_size < AZBUSE_ENGINE_OPS_MIN_SIZE || !ops->api_version ||
	    ops->api_version > AZBUSE_ENGINE_API_VERSION) {
		azb_report(
			o->ready_fd,
			"ERR engine %s was built for engine API %u; this libazbuse has 1 to %u\n",
			ops->name, ops->api_version, AZBUSE_ENGINE_API_VERSION);
		return -EINVAL;
	}
	sigemptyset(&signals);
	sigaddset(&signals, SIGCHLD);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	sigaddset(&signals, SIGIO); /* a client on the control socket */
	sigprocmask(SIG_BLOCK, &signals, &old);

	ret = azb_first_device(&s, &first, &info, &joined, err, sizeof(err));
	if (ret == -EALREADY) {
		azb_log("azbuse%u joined the daemon of %s", joined, s.group);
		azb_report(o->ready_fd, "OK %u\n", joined);
		ret = 0;
		goto out_signals;
	}
	if (ret)
		goto out_report;
	s.ctl = azbuse_ctl_open();
	if (s.ctl < 0) {
		ret = s.ctl;
		snprintf(err, sizeof(err), "cannot open %s: %s%s", AZBUSE_CTL_DEVICE,
			 strerror(-ret), ret == -ENOENT ? " (is azbuse.ko loaded?)" : "");
		goto out_teardown;
	}
	s.members[s.nr_members++] = &first;
	ret = azb_add_device(&s, &first, &info, err, sizeof(err));
	if (ret) {
		if (first.dev_id != AZBUSE_DEV_ID_ANY)
			goto out_remove; /* added, then no memory or cache */
		goto out_close;
	}
	s.nr_queues = first.nr_queues;
	snprintf(prefix, sizeof(prefix), "azbuse%u", first.dev_id);
	azb_log_set_prefix(prefix);
	s.workers = calloc(s.nr_queues, sizeof(*s.workers));
	s.chans = malloc(s.nr_queues * sizeof(*s.chans));
	s.restart = calloc(s.nr_queues, sizeof(*s.restart));
	if (!s.workers || !s.chans || !s.restart) {
		ret = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto out_remove;
	}
	for (q = 0; q < s.nr_queues; q++)
		s.chans[q] = -1;
	for (q = 0; q < s.nr_queues; q++) {
		s.workers[q] = azb_spawn_worker(&s, q);
		if (s.workers[q] < 0) {
			ret = s.workers[q];
			s.workers[q] = 0;
			snprintf(err, sizeof(err), "cannot fork a worker: %s", strerror(-ret));
			goto out_remove;
		}
	}
	ret = azb_start_member(&s, &first, err, sizeof(err));
	if (ret)
		goto out_remove;
	if (s.group[0]) {
		s.group_fd = azb_group_listen(s.group);
		if (s.group_fd < 0)
			azb_warn("devices of %s cannot join: no socket: %s", s.group,
				 strerror(-s.group_fd));
	}
	azb_report(o->ready_fd, "OK %u\n", first.dev_id);
	if (o->ready_fd >= 0)
		close(o->ready_fd);
	s.ready_closed = true;

	azb_supervise(&s, &signals);
	azb_group_close(s.group, s.group_fd);
	for (i = 0; i < s.nr_members; i++)
		azb_finish_member(s.members[i]);
	ret = 0;
	goto out_free;

out_remove:
	/* a failed takeover leaves the device for another try; a failed add removes it */
	if (!o->recover)
		azbuse_ctl_remove(s.ctl, first.dev_id);
	if (s.workers)
		azb_stop_workers(&s);
	azc_destroy(first.cache);
	first.cache = NULL;
	azb_control_close(first.dev_id, first.control_fd);
out_free:
	if (s.chans)
		for (q = 0; q < s.nr_queues; q++)
			azb_close_chan(&s, (uint16_t)q);
	free(s.chans);
	free(s.workers);
	free(s.restart);
out_close:
	close(s.ctl);
out_teardown:
	/*
	 * Teardown destroys the engine's state (the mem engine's RAM): only
	 * for a device that is gone, never after a failed --recover, whose
	 * device is left live and needs that state for the next try.
	 */
	if (!first.finished && ops->teardown && (!o->recover || !ret))
		ops->teardown(first.engine);
	azb_free_members(&s);
out_report:
	if (ret) {
		azb_err("%s", err);
		if (!s.ready_closed)
			azb_report(o->ready_fd, "ERR %s\n", err);
	}
out_signals:
	azb_discard_sigio();
	sigprocmask(SIG_SETMASK, &old, NULL);
	return ret;
}

void azbuse_device_opts_init(struct azbuse_device_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->dev_id = AZBUSE_DEV_ID_ANY;
	o->ready_fd = -1;
	o->poll_us = AZBUSE_DEF_POLL_US;
}
