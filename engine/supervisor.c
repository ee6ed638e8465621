/*
 * supervisor.c - runs one device: sets the engine up, adds the device,
 * forks a worker process per queue, starts the device once every queue is
 * served, restarts workers that crash, and on SIGTERM/SIGINT (or an
 * external `azbusectl remove`) removes the device, waits for the workers
 * to flush and exit, and tears the engine down.
 */
#include <errno.h>
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
#define AZB_MAX_RESTARTS 100
#define AZB_WORKER_EXIT_MS 5000

/* What the watchdog last saw of a queue. */
struct azb_progress {
	uint64_t requests; /* completed requests at the last progress */
	uint64_t timeouts; /* the queue's timeouts counter then */
	uint64_t since_ms; /* when requests last moved */
};

struct azb_supervisor {
	const struct azbuse_engine_ops *ops;
	const struct azbuse_device_opts *opts;
	void *engine;
	int ctl;
	uint32_t dev_id;
	uint16_t nr_queues;
	pid_t *workers;		       /* per queue; 0 when not running */
	int *chans;		       /* per queue: our end of its worker's channel, or -1 */
	struct azbuse_control control; /* what an engine's control() works on */
	int control_fd;		       /* the listening control socket, or -1 */
	struct azb_progress *progress; /* per queue: is its worker getting anywhere? */
	uint32_t io_timeout_ms;
	unsigned restarts;
	bool stopping;
	bool removed;
	bool ready_closed;
	char recover_options[512]; /* what the engine needs to find its state again */
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

/* A capability is real only if the engine also has the callback for it. */
static uint32_t azb_effective_caps(const struct azbuse_engine_ops *ops, uint32_t caps)
{
	if (!ops->flush)
		caps &= ~(AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA);
	if (!ops->discard)
		caps &= ~AZBUSE_CAP_DISCARD;
	if (!ops->write_zeroes)
		caps &= ~AZBUSE_CAP_WRITE_ZEROES;
	if (!ops->secure_erase)
		caps &= ~AZBUSE_CAP_SECURE_ERASE;
	if (!ops->write)
		caps |= AZBUSE_CAP_READ_ONLY;
	return caps;
}

/*
 * The engine was set up but the device cannot be added: tear it down again,
 * except when recovering, where its state belongs to the live device.
 */
static int azb_setup_undo(struct azb_supervisor *s, int ret)
{
	if (s->ops->teardown && !s->opts->recover)
		s->ops->teardown(s->engine);
	s->engine = NULL;
	return ret;
}

static int azb_setup_engine(struct azb_supervisor *s, struct azbuse_dev_info *info, char *err,
			    size_t err_size)
{
	const struct azbuse_device_opts *o = s->opts;
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
	cfg.recover_options = s->recover_options;
	cfg.recover_options_size = sizeof(s->recover_options);
	ret = s->ops->setup ? s->ops->setup(&cfg, &s->engine) : 0;
	if (ret) {
		if (!err[0])
			snprintf(err, err_size, "engine %s: %s", s->ops->name, strerror(-ret));
		return ret;
	}
	if (!cfg.size_bytes) {
		snprintf(err, err_size, "engine %s: no device size (give --size)", s->ops->name);
		return azb_setup_undo(s, -EINVAL);
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
	info->features = azb_caps_to_features(azb_effective_caps(s->ops, cfg.caps) &
					      ~(o->cache_bytes ? AZBUSE_CAP_USER_COPY : 0));
	if (o->read_only)
		info->features |= AZBUSE_F_READ_ONLY;
	/* a cache may hold writes back (write-back, also when switched to at run
	 * time): the device has a volatile write cache, and honours FUA */
	if (o->cache_bytes)
		info->features |= AZBUSE_F_WRITE_CACHE | AZBUSE_F_FUA;
	if (cfg.route_queue && !cfg.shard_chunk_bytes) {
		snprintf(err, err_size, "--route queue needs a sharded device (--shards)");
		return azb_setup_undo(s, -EINVAL);
	}
	if (cfg.shard_chunk_bytes) {
		if (cfg.shard_chunk_bytes < 4096 ||
		    (cfg.shard_chunk_bytes & (cfg.shard_chunk_bytes - 1)) || !cfg.nr_queues ||
		    cfg.nr_queues > AZBUSE_MAX_QUEUES) {
			snprintf(err, err_size, "engine %s: bad shard chunk %u or shard count %u",
				 s->ops->name, cfg.shard_chunk_bytes, cfg.nr_queues);
			return azb_setup_undo(s, -EINVAL);
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

static pid_t azb_spawn_worker(struct azb_supervisor *s, uint16_t queue)
{
	int sv[2] = { -1, -1 };
	sigset_t none;
	pid_t pid;
	uint16_t q;

	azb_close_chan(s, queue);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		azb_log("queue %u: no control channel: %s", queue, strerror(errno));
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
		return pid;
	}
	if (sv[0] >= 0)
		close(sv[0]);
	for (q = 0; q < s->nr_queues; q++)
		if (s->chans[q] >= 0)
			close(s->chans[q]);
	if (s->control_fd >= 0)
		close(s->control_fd);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_IGN); /* a terminal's ^C goes to the supervisor, which drains */
	close(s->ctl);
	if (s->opts->ready_fd >= 0)
		close(s->opts->ready_fd);
	_exit(azbuse_worker_main(s->ops, s->engine, s->dev_id, queue, s->opts, sv[1]) ? 1 : 0);
}

static int azb_queue_of(const struct azb_supervisor *s, pid_t pid)
{
	int q;

	for (q = 0; q < s->nr_queues; q++)
		if (s->workers[q] == pid)
			return q;
	return -1;
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
			continue; /* the device went away and the worker finished cleanly */
		if (WIFSIGNALED(status))
			azb_log("worker %d (queue %d) killed by signal %d", pid, q,
				WTERMSIG(status));
		else
			azb_log("worker %d (queue %d) exited with status %d", pid, q,
				WEXITSTATUS(status));
		if (s->stopping || s->removed)
			continue;
		if (++s->restarts > AZB_MAX_RESTARTS) {
			azb_log("too many worker restarts; removing the device");
			s->stopping = true;
			continue;
		}
		s->workers[q] = azb_spawn_worker(s, q);
		if (s->workers[q] < 0) {
			azb_log("cannot restart worker for queue %d: %s", q,
				strerror(-s->workers[q]));
			s->workers[q] = 0;
		} else {
			azb_log("restarted worker for queue %d as pid %d", q, s->workers[q]);
		}
	}
}

static int azb_running_workers(const struct azb_supervisor *s)
{
	int q, n = 0;

	for (q = 0; q < s->nr_queues; q++)
		n += s->workers[q] > 0;
	return n;
}

static int azb_wait_attached(struct azb_supervisor *s, char *err, size_t err_size)
{
	struct azbuse_queue_info qi;
	unsigned waited;
	int q, ret;

	for (waited = 0; waited < AZB_ATTACH_WAIT_MS; waited += 10) {
		int attached = 0;

		azb_reap_workers(s);
		for (q = 0; q < s->nr_queues; q++) {
			ret = azbuse_ctl_queue_info(s->ctl, s->dev_id, q, &qi);
			if (ret) {
				snprintf(err, err_size, "queue info: %s", strerror(-ret));
				return ret;
			}
			attached += qi.state == AZBUSE_QUEUE_ATTACHED;
		}
		if (attached == s->nr_queues)
			return 0;
		if (s->restarts) {
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
		azb_log("%s did not appear within %u ms", path, AZB_NODE_WAIT_MS);
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

/* Is our device gone (removed, or its id now names someone else's device)? */
static bool azb_device_gone(struct azb_supervisor *s)
{
	struct azbuse_dev_info info;
	int ret = azbuse_ctl_info(s->ctl, s->dev_id, &info);

	return ret == -ENOENT || (!ret && info.owner_pid != getpid());
}

/*
 * A worker that holds requests, completes none for io_timeout and has let a
 * request time out meanwhile is wedged (an engine deadlock, a hung backend):
 * kill it. The module re-posts its requests to the worker started in its
 * place, exactly as after a crash. A slow worker that still completes
 * requests is left alone.
 */
static void azb_watch_progress(struct azb_supervisor *s, uint64_t now)
{
	struct azbuse_queue_info qi;
	int q;

	for (q = 0; q < s->nr_queues; q++) {
		struct azb_progress *p = &s->progress[q];

		if (azbuse_ctl_queue_info(s->ctl, s->dev_id, q, &qi))
			return;
		if (qi.requests != p->requests || !qi.inflight || !p->since_ms) {
			p->requests = qi.requests;
			p->timeouts = qi.timeouts;
			p->since_ms = now;
			continue;
		}
		if (now - p->since_ms < s->io_timeout_ms || qi.timeouts == p->timeouts ||
		    s->workers[q] <= 0)
			continue;
		azb_log("worker %d (queue %d) completed nothing in %u ms with %u request(s) "
			"waiting: killing it",
			s->workers[q], q, (unsigned)(now - p->since_ms), qi.inflight);
		kill(s->workers[q], SIGKILL);
		p->timeouts = qi.timeouts;
		p->since_ms = now;
	}
}

/* Wait for signals and dead workers until the device is gone. */
static void azb_supervise(struct azb_supervisor *s, const sigset_t *signals)
{
	struct timespec tick = { .tv_nsec = 200 * 1000000 };
	uint64_t removed_at = 0;
	siginfo_t si;
	int sig;

	for (;;) {
		sig = sigtimedwait(signals, &si, &tick);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			if (!s->stopping)
				azb_log("signal %d: draining and removing the device", sig);
			s->stopping = true;
		}
		azb_reap_workers(s);
		if (s->control_fd >= 0 && !s->stopping && !s->removed)
			azb_control_serve(s->control_fd, s->ops, s->engine, &s->control);
		if (!s->removed && azb_device_gone(s))
			s->removed = true;
		if (!s->removed && !s->stopping)
			azb_watch_progress(s, azb_clock_ms());
		if (s->stopping && !s->removed) {
			int ret = azbuse_ctl_remove(s->ctl, s->dev_id);

			if (ret && ret != -ENOENT)
				azb_log("remove: %s", strerror(-ret));
			s->removed = true;
		}
		if (!s->removed)
			continue;
		if (!azb_running_workers(s))
			return;
		/* the device is gone; a worker that does not follow is stuck (or stopped) */
		if (!removed_at)
			removed_at = azb_clock_ms();
		else if (azb_clock_ms() - removed_at > AZB_WORKER_EXIT_MS) {
			azb_log("workers did not exit %u ms after removal: killing them",
				AZB_WORKER_EXIT_MS);
			azb_stop_workers(s);
		}
	}
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
static void azb_place_cache(uint32_t dev_id, uint32_t nr_queues)
{
	uint64_t nodes;

	if (!azb_device_cache)
		return;
	nodes = azb_queue_nodes(dev_id, nr_queues);
	if (nodes && azc_place(azb_device_cache, nodes))
		azb_log("cache: cannot place it on NUMA nodes %#llx: %s", (unsigned long long)nodes,
			strerror(errno));
	else if (nodes)
		azb_log("cache: on NUMA nodes %#llx", (unsigned long long)nodes);
}

/* The device's RAM cache (--cache), shared by the workers forked after it. */
static int azb_make_cache(const struct azbuse_device_opts *o, const struct azbuse_dev_info *info,
			  char *err, size_t err_size)
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

	if (!o->cache_bytes)
		return 0;
	ret = azc_create(&p, &azb_device_cache);
	if (ret) {
		snprintf(err, err_size, "cannot make a %llu-byte cache: %s",
			 (unsigned long long)o->cache_bytes, strerror(-ret));
		return ret;
	}
	azb_log("cache: %llu MiB, %s, %s", (unsigned long long)(o->cache_bytes >> 20),
		azc_mode_name(p.mode), azc_policy_name(p.policy));
	return 0;
}

int azbuse_run(const struct azbuse_engine_ops *ops, const struct azbuse_device_opts *o)
{
	struct azb_supervisor s = { .ops = ops, .opts = o, .ctl = -1, .control_fd = -1 };
	struct azbuse_dev_info info;
	sigset_t signals, old;
	char err[256] = "";
	char prefix[64];
	int q, ret;

	if (ops->struct_size < AZBUSE_ENGINE_OPS_MIN_SIZE ||
	    ops->api_version != AZBUSE_ENGINE_API_VERSION) {
		azb_report(o->ready_fd, "ERR engine %s was built for another libazbuse\n",
			   ops->name);
		return -EINVAL;
	}
	sigemptyset(&signals);
	sigaddset(&signals, SIGCHLD);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	sigaddset(&signals, SIGIO); /* a client on the control socket */
	sigprocmask(SIG_BLOCK, &signals, &old);

	ret = azb_setup_engine(&s, &info, err, sizeof(err));
	if (ret)
		goto out_report;
	s.ctl = azbuse_ctl_open();
	if (s.ctl < 0) {
		ret = s.ctl;
		snprintf(err, sizeof(err), "cannot open %s: %s%s", AZBUSE_CTL_DEVICE,
			 strerror(-ret), ret == -ENOENT ? " (is azbuse.ko loaded?)" : "");
		goto out_teardown;
	}
	if (o->recover) {
		ret = azb_take_over(&s, &info, err, sizeof(err));
		if (ret)
			goto out_close;
	} else {
		ret = azbuse_ctl_add(s.ctl, &info);
		if (ret) {
			snprintf(err, sizeof(err), "cannot add device: %s", strerror(-ret));
			goto out_close;
		}
	}
	s.dev_id = info.dev_id;
	s.nr_queues = info.nr_queues;
	s.io_timeout_ms = info.io_timeout_ms;
	snprintf(prefix, sizeof(prefix), "azbuse%u", s.dev_id);
	azb_log_set_prefix(prefix);
	s.workers = calloc(s.nr_queues, sizeof(*s.workers));
	s.progress = calloc(s.nr_queues, sizeof(*s.progress));
	s.chans = malloc(s.nr_queues * sizeof(*s.chans));
	if (!s.workers || !s.progress || !s.chans) {
		ret = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto out_remove;
	}
	for (q = 0; q < s.nr_queues; q++)
		s.chans[q] = -1;
	ret = azb_make_cache(o, &info, err, sizeof(err));
	if (ret)
		goto out_remove;
	s.control = (struct azbuse_control){ .nr_queues = s.nr_queues,
					     .workers = s.workers,
					     .chans = s.chans };
	for (q = 0; q < s.nr_queues; q++) {
		s.workers[q] = azb_spawn_worker(&s, q);
		if (s.workers[q] < 0) {
			ret = s.workers[q];
			s.workers[q] = 0;
			snprintf(err, sizeof(err), "cannot fork a worker: %s", strerror(-ret));
			goto out_remove;
		}
	}
	ret = azb_wait_attached(&s, err, sizeof(err));
	if (ret)
		goto out_remove;
	if (!o->recover) {
		ret = azbuse_ctl_start(s.ctl, s.dev_id);
		if (ret) {
			snprintf(err, sizeof(err), "cannot start device: %s", strerror(-ret));
			goto out_remove;
		}
	}
	azb_wait_node(s.dev_id);
	azb_place_cache(s.dev_id, s.nr_queues);
	s.control_fd = azb_control_listen(s.dev_id);
	if (s.control_fd < 0)
		azb_log("no control socket: %s", strerror(-s.control_fd));
	ret = azbuse_conf_save(s.dev_id, ops->name, o, s.recover_options);
	if (ret)
		azb_log("cannot save the configuration for --recover: %s", strerror(-ret));
	azb_log("%s " AZBUSE_BLOCK_PREFIX "%u with engine %s, %u queue(s)",
		o->recover ? "recovered" : "serving", s.dev_id, ops->name, s.nr_queues);
	azb_report(o->ready_fd, "OK %u\n", s.dev_id);
	if (o->ready_fd >= 0)
		close(o->ready_fd);
	s.ready_closed = true;

	azb_supervise(&s, &signals);
	azbuse_conf_remove(s.dev_id);
	ret = 0;
	goto out_free;

out_remove:
	/* a failed takeover leaves the device for another try; a failed add removes it */
	if (!o->recover)
		azbuse_ctl_remove(s.ctl, s.dev_id);
	if (s.workers)
		azb_stop_workers(&s);
out_free:
	azc_destroy(azb_device_cache);
	azb_device_cache = NULL;
	azb_control_close(s.dev_id, s.control_fd);
	if (s.chans)
		for (q = 0; q < s.nr_queues; q++)
			azb_close_chan(&s, (uint16_t)q);
	free(s.chans);
	free(s.progress);
	free(s.workers);
out_close:
	close(s.ctl);
out_teardown:
	/*
	 * Teardown destroys the engine's state (the mem engine's RAM): only
	 * for a device that is gone, never after a failed --recover, whose
	 * device is left live and needs that state for the next try.
	 */
	if (ops->teardown && (!o->recover || !ret))
		ops->teardown(s.engine);
out_report:
	if (ret) {
		azb_log("%s", err);
		if (!s.ready_closed)
			azb_report(o->ready_fd, "ERR %s\n", err);
	}
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
