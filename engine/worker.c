/*
 * worker.c - the queue worker: one process per hardware queue, pinned to
 * the queue's CPUs and NUMA node. It takes requests from the mmaped
 * submission ring, hands them to the engine, posts completions to the
 * completion ring, and makes one COMMIT syscall per batch, which also
 * sleeps when there is nothing to do. An engine with I/O of its own in
 * flight (azbuse_queue_watch) has the worker wait in poll(2) for new
 * requests and for its completions at once instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define AZB_OUTSTANDING_WAIT_MS 30000

static _Thread_local struct azbuse_queue *azb_current_queue;

struct azc_cache *azb_device_cache;

static void azb_post_cqe(struct azbuse_queue *q, struct azbuse_io *io)
{
	struct azbuse_cqe *cqe = &q->cq[q->cq_tail & (q->geo.cq_entries - 1)];

	if (io->tag >= q->geo.nr_slots && azb_cache_clean_done(q, io))
		return; /* the cache's own write-back */
	cqe->tag = io->tag;
	cqe->seq = io->seq;
	cqe->result = io->result;
	cqe->flags = io->result ? 0 : io->cqe_flags;
	cqe->addr = io->cqe_flags == AZBUSE_CQE_F_REDIRECT ? io->redirect_queue
							   : (uintptr_t)io->copy_buf;
	cqe->reserved = 0;
	q->cq_tail++;
	q->requests++;
	q->outstanding--;
}

/* Post a completion now (the worker's thread) or hand it to the worker. */
static void azb_complete(struct azbuse_io *io, int result)
{
	struct azbuse_queue *q = io->queue;
	struct azbuse_io *head;

	io->result = result;
	azb_cache_done(io);
	if (azb_current_queue == q) {
		azb_post_cqe(q, io);
		return;
	}
	/* another thread: hand it to the worker, and wake the worker if it sleeps */
	head = atomic_load_explicit(&q->remote_done, memory_order_relaxed);
	do {
		io->next_done = head;
	} while (!atomic_compare_exchange_weak(&q->remote_done, &head, io));
	/* seq_cst on both sides: either the worker sees our io before it sleeps, or we see it
	 * asleep */
	if (atomic_load(&q->sleeping))
		q->kick(q);
}

void azbuse_complete(struct azbuse_io *io, int result)
{
	io->cqe_flags = 0;
	azb_complete(io, result);
}

void azbuse_complete_copy(struct azbuse_io *io, void *buf)
{
	io->cqe_flags = AZBUSE_CQE_F_COPY;
	io->copy_buf = buf;
	azb_complete(io, 0);
}

void azbuse_complete_zeroes(struct azbuse_io *io)
{
	io->cqe_flags = AZBUSE_CQE_F_ZERO;
	azb_complete(io, 0);
}

void azbuse_complete_redirect(struct azbuse_io *io, uint16_t queue)
{
	io->cqe_flags = AZBUSE_CQE_F_REDIRECT;
	io->redirect_queue = queue;
	azb_complete(io, 0);
}

uint32_t azbuse_queue_drain_remote(struct azbuse_queue *q)
{
	struct azbuse_io *io =
		atomic_exchange_explicit(&q->remote_done, NULL, memory_order_acquire);
	uint32_t n = 0;

	for (; io; io = io->next_done, n++)
		azb_post_cqe(q, io);
	return n;
}

static void (*azb_op_handler(const struct azbuse_engine_ops *ops, uint8_t op))(void *,
									       struct azbuse_io *)
{
	switch (op) {
	case AZBUSE_OP_READ:
		return ops->read;
	case AZBUSE_OP_WRITE:
		return ops->write;
	case AZBUSE_OP_FLUSH:
		return ops->flush;
	case AZBUSE_OP_DISCARD:
		return ops->discard;
	case AZBUSE_OP_WRITE_ZEROES:
		return ops->write_zeroes;
	case AZBUSE_OP_SECURE_ERASE:
		return ops->secure_erase;
	default:
		return NULL;
	}
}

static void azb_dispatch(struct azbuse_queue *q, const struct azbuse_sqe *sqe)
{
	struct azbuse_io *io;

	if (sqe->tag >= q->geo.nr_slots) {
		azb_log("queue %u: submission with impossible tag %u ignored", q->geo.queue,
			sqe->tag);
		return;
	}
	io = &q->ios[sqe->tag];
	io->op = sqe->op;
	io->ioprio = sqe->ioprio;
	io->flags = sqe->flags;
	io->offset = sqe->sector << 9;
	io->len = sqe->len;
	io->tag = sqe->tag;
	io->seq = sqe->seq;
	io->queue = q;
	io->buf = (char *)q->data_map + (size_t)sqe->tag * q->geo.slot_bytes;
	/* user copy: a write's data reaches the engine only through azbuse_complete_copy() */
	if (io->op == AZBUSE_OP_WRITE && (q->geo.features & AZBUSE_F_USER_COPY))
		io->buf = NULL;
	io->engine_data[0] = io->engine_data[1] = NULL;
	io->cqe_flags = 0;
	io->copy_buf = NULL;
	io->cache_flags = 0;
	q->outstanding++;

	if ((io->op == AZBUSE_OP_READ || io->op == AZBUSE_OP_WRITE) &&
	    io->len > q->geo.slot_bytes) {
		azbuse_complete(io, -EIO);
		return;
	}
	if (q->trace_fd >= 0)
		azbuse_trace_request(q->trace_fd, q->geo.queue, io);
	azb_serve(q, io);
}

void azb_engine_serve(struct azbuse_queue *q, struct azbuse_io *io)
{
	void (*handler)(void *, struct azbuse_io *) = azb_op_handler(q->ops, io->op);

	if (!handler) {
		azbuse_complete(io, -EOPNOTSUPP);
		return;
	}
	handler(q->engine_queue, io);
}

void azb_serve(struct azbuse_queue *q, struct azbuse_io *io)
{
	if (!azb_cache_dispatch(q, io))
		azb_engine_serve(q, io);
}

uint32_t azbuse_queue_consume(struct azbuse_queue *q)
{
	/* pairs with the kernel's store-release of sq_tail in azbuse_ring_push() */
	uint32_t tail = azb_load_acquire(&q->hdr->sq_tail);
	uint32_t mask = q->geo.sq_entries - 1;
	uint32_t n = 0;

	while (q->sq_head != tail) {
		struct azbuse_sqe sqe = q->sq[q->sq_head & mask];

		q->sq_head++;
		azb_dispatch(q, &sqe);
		n++;
	}
	/* pairs with the kernel's READ_ONCE of sq_head in azbuse_should_wake() */
	azb_store_release(&q->hdr->sq_head, q->sq_head);
	return n;
}

/* An engine built against an older, shorter ops table has no batch_end. */
static bool azb_has_batch_end(const struct azbuse_engine_ops *ops)
{
	return ops->struct_size >=
		       offsetof(struct azbuse_engine_ops, batch_end) + sizeof(ops->batch_end) &&
	       ops->batch_end;
}

void azb_engine_batch_end(struct azbuse_queue *q)
{
	if (azb_has_batch_end(q->ops))
		q->ops->batch_end(q->engine_queue);
}

static bool azb_has_idle(const struct azbuse_engine_ops *ops)
{
	return ops->struct_size >= offsetof(struct azbuse_engine_ops, idle) + sizeof(ops->idle) &&
	       ops->idle;
}

/* Work this thread can do without a syscall: fetched submissions, handed-over completions. */
static bool azb_local_work(struct azbuse_queue *q)
{
	return azb_load_acquire(&q->hdr->sq_tail) != q->sq_head ||
	       atomic_load_explicit(&q->remote_done, memory_order_relaxed);
}

/* What the engine's own I/O finished: completed on this thread. */
static void azb_watch_ready(struct azbuse_queue *q)
{
	if (q->watch_ready)
		q->watch_inflight = q->watch_ready(q->engine_queue);
}

static int azb_commit_result(struct azbuse_queue *q, int ret)
{
	q->cq_committed = q->cq_tail;
	q->commits++;
	if (ret == -ENODEV || (azb_load_acquire(&q->hdr->kflags) & AZBUSE_KF_DEAD))
		return 1;
	if (ret == -EINTR)
		return 0;
	return ret;
}

/*
 * The rest of a turn of a worker whose engine has I/O in flight on the fd it
 * watches: COMMIT without sleeping, then, with nothing to do, sleep in
 * poll(2) until a request comes (the module wakes the ring's poll as it
 * would a sleeping COMMIT), the engine's fd is readable, or another thread
 * hands over a completion (KICK).
 */
static int azb_turn_watched(struct azbuse_queue *q)
{
	struct pollfd fds[2] = { { .fd = q->fd, .events = POLLIN },
				 { .fd = q->watch_fd, .events = POLLIN } };
	int ret = azb_commit_result(q, q->commit(q, 0));

	if (ret || azb_local_work(q))
		return ret;
	/* what ended meanwhile goes back first; with nothing in flight, COMMIT sleeps */
	azb_watch_ready(q);
	if (q->cq_tail != q->cq_committed || !q->watch_inflight)
		return 0;
	atomic_store(&q->sleeping, 1);
	/* seq_cst as in azb_complete: a hand-over either is seen here or kicks */
	if (!atomic_load(&q->remote_done) && poll(fds, 2, q->idle_ms ? (int)q->idle_ms : -1) < 0 &&
	    errno != EINTR)
		ret = -errno;
	atomic_store(&q->sleeping, 0);
	return ret;
}

/* The shorter of two "call again within" delays (0: no need). */
static unsigned azb_sooner(unsigned a, unsigned b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

int azbuse_queue_turn(struct azbuse_queue *q)
{
	unsigned long timeout;
	unsigned cache_ms;
	uint32_t consumed;
	int ret;

	azb_current_queue = q;
	if (azb_worker_control_pending())
		azb_worker_control(q);
	consumed = azbuse_queue_consume(q);
	if (consumed) {
		azb_engine_batch_end(q);
		/* the batch may have left background work: ask once the ring is empty */
		if (azb_has_idle(q->ops))
			q->idle_ms = 1;
	} else if (azb_has_idle(q->ops) && !azb_local_work(q)) {
		q->idle_ms = q->ops->idle(q->engine_queue);
	}
	cache_ms = azb_cache_work(q, consumed != 0);
	azb_watch_ready(q);
	azbuse_queue_drain_remote(q);

	/* nothing to commit and more work already here: go on without a syscall */
	if (q->cq_tail == q->cq_committed && azb_local_work(q))
		return 0;

	/* pairs with the kernel's load-acquire of cq_tail in azbuse_reap() */
	azb_store_release(&q->hdr->cq_tail, q->cq_tail);
	if (q->watch_inflight) {
		unsigned engine_ms = q->idle_ms;

		q->idle_ms = azb_sooner(q->idle_ms, cache_ms);
		ret = azb_turn_watched(q);
		q->idle_ms = engine_ms;
		return ret;
	}
	atomic_store(&q->sleeping, 1);
	/*
	 * One syscall completes the batch and fetches new requests; it polls
	 * (--poll-us, in the kernel) and then sleeps only if there are none. A
	 * completion handed over after the drain above must not wait for the
	 * next request.
	 */
	timeout = azb_sooner(q->idle_ms, cache_ms);
	timeout = atomic_load(&q->remote_done) ? 0 : timeout ? timeout : AZBUSE_WAIT_FOREVER;
	ret = q->commit(q, timeout);
	atomic_store(&q->sleeping, 0);
	return azb_commit_result(q, ret);
}

/* Before the engine closes or pauses: let requests it still holds finish (bounded). */
static void azb_wait_outstanding(struct azbuse_queue *q)
{
	struct timespec ms = { .tv_nsec = 1000000 };
	unsigned waited;

	/* (what the cache holds back is not with the engine: the kernel posts it again) */
	for (waited = 0; q->outstanding > azb_cache_held(q) && waited < AZB_OUTSTANDING_WAIT_MS;
	     waited++) {
		azb_watch_ready(q);
		azbuse_queue_drain_remote(q);
		if (q->outstanding > azb_cache_held(q))
			nanosleep(&ms, NULL);
	}
	if (q->outstanding > azb_cache_held(q))
		azb_log("%u request(s) still held by the engine at exit",
			q->outstanding - azb_cache_held(q));
}

void azbuse_queue_quiesce(struct azbuse_queue *q)
{
	int ret;

	azb_current_queue = q;
	azb_engine_batch_end(q);
	azb_wait_outstanding(q);
	azbuse_queue_drain_remote(q);
	if (q->cq_tail == q->cq_committed)
		return;
	azb_store_release(&q->hdr->cq_tail, q->cq_tail);
	ret = q->commit(q, 0);
	if (ret && ret != -EINTR)
		azb_log("commit while pausing: %s", strerror(-ret));
	q->cq_committed = q->cq_tail;
	q->commits++;
}

static int azb_ioctl_commit(struct azbuse_queue *q, unsigned long timeout_ms)
{
	return ioctl(q->fd, AZBUSE_IOC_COMMIT, timeout_ms) < 0 ? -errno : 0;
}

static void azb_ioctl_kick(struct azbuse_queue *q)
{
	ioctl(q->fd, AZBUSE_IOC_KICK, 0);
}

int azbuse_queue_map(struct azbuse_queue *q, int fd, const struct azbuse_attach *geo, void *ring,
		     void *data)
{
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->geo = *geo;
	if (!geo->sq_entries || (geo->sq_entries & (geo->sq_entries - 1)) || !geo->cq_entries ||
	    (geo->cq_entries & (geo->cq_entries - 1)) || geo->cq_entries < geo->nr_slots)
		return -EPROTO;
	q->ring_map = ring;
	q->data_map = data;
	q->hdr = ring;
	q->sq = (struct azbuse_sqe *)((char *)ring + geo->sq_offset);
	q->cq = (struct azbuse_cqe *)((char *)ring + geo->cq_offset);
	q->sq_head = azb_load_acquire(&q->hdr->sq_head);
	q->cq_tail = azb_load_acquire(&q->hdr->cq_tail);
	q->cq_committed = q->cq_tail;
	q->ios = calloc(geo->nr_slots, sizeof(*q->ios));
	if (!q->ios)
		return -ENOMEM;
	atomic_init(&q->remote_done, NULL);
	atomic_init(&q->sleeping, 0);
	q->trace_fd = -1;
	q->chan_fd = -1;
	q->watch_fd = -1;
	q->commit = azb_ioctl_commit;
	q->kick = azb_ioctl_kick;
	return 0;
}

void azbuse_queue_unmap(struct azbuse_queue *q)
{
	free(q->ios);
	q->ios = NULL;
}

/*
 * Place the worker near its queue. AZBUSE_PIN_NODE (the default) lets it run
 * on any CPU of the queue's NUMA node and takes memory from that node: the
 * scheduler can then put it beside the submitting CPU rather than on it, which
 * measured several times faster than AZBUSE_PIN_CPUS (only the queue's own
 * CPUs, where the worker and the submitter take turns on one CPU).
 */
static void azb_pin(const struct azbuse_attach *geo, const uint8_t *cpus, uint16_t queue,
		    enum azbuse_pin pin)
{
	bool numa = numa_available() >= 0 && geo->numa_node >= 0;
	cpu_set_t set;
	uint32_t cpu, n = 0;

	if (pin == AZBUSE_PIN_NONE)
		return;
	if (numa)
		numa_set_preferred(geo->numa_node);
	if (pin == AZBUSE_PIN_NODE) {
		if (numa && numa_run_on_node(geo->numa_node))
			azb_log("queue %u: cannot run on node %d: %s", queue, geo->numa_node,
				strerror(errno));
		return;
	}
	CPU_ZERO(&set);
	for (cpu = 0; cpu < geo->cpus_bytes * 8 && cpu < CPU_SETSIZE; cpu++) {
		if (cpus[cpu / 8] & (1u << (cpu % 8))) {
			CPU_SET(cpu, &set);
			n++;
		}
	}
	if (n && sched_setaffinity(0, sizeof(set), &set))
		azb_log("queue %u: cannot pin to its CPUs: %s", queue, strerror(errno));
}

/*
 * SCHED_BATCH (the default) keeps a worker woken by a new request from
 * preempting the task that submitted it: the submitter goes on queueing
 * until it waits, and the worker then takes the whole batch in one COMMIT
 * (on a busy CPU, instead of one or two requests per context switch). An
 * idle CPU still runs the worker at once.
 */
static void azb_set_sched(uint16_t queue, enum azbuse_sched sched)
{
	struct sched_param sp = { .sched_priority = 0 };

	if (sched == AZBUSE_SCHED_BATCH && sched_setscheduler(0, SCHED_BATCH, &sp))
		azb_log("queue %u: cannot use SCHED_BATCH: %s", queue, strerror(errno));
}

static int azb_attach(int fd, uint16_t queue, struct azbuse_attach *geo, uint8_t *cpus,
		      size_t cpus_bytes, uint32_t poll_us)
{
	memset(geo, 0, sizeof(*geo));
	geo->queue = queue;
	geo->cpus_ptr = (uintptr_t)cpus;
	geo->cpus_bytes = cpus_bytes;
	geo->poll_us = poll_us;
	return ioctl(fd, AZBUSE_IOC_ATTACH, geo) < 0 ? -errno : 0;
}

/*
 * A direct-map device's map (AZBUSE_MMAP_MAP_OFF): its header says how big
 * it is. Returns the mapping and its length, or MAP_FAILED.
 */
static void *azb_map_direct(int fd, size_t *bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	struct azbuse_map_hdr hdr;
	void *map;

	map = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, AZBUSE_MMAP_MAP_OFF);
	if (map == MAP_FAILED)
		return MAP_FAILED;
	memcpy(&hdr, map, sizeof(hdr));
	munmap(map, (size_t)page);
	if (!hdr.region_bytes || hdr.region_bytes > SIZE_MAX) {
		errno = EPROTO;
		return MAP_FAILED;
	}
	*bytes = (size_t)hdr.region_bytes;
	return mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, AZBUSE_MMAP_MAP_OFF);
}

int azbuse_set_backing(int fd)
{
	struct azbuse_backing b = { .fd = fd };

	if (!azb_current_queue)
		return -EINVAL;
	return ioctl(azb_current_queue->fd, AZBUSE_IOC_SET_BACKING, &b) < 0 ? -errno : 0;
}

int azbuse_queue_watch(int fd, unsigned (*ready)(void *queue))
{
	struct azbuse_queue *q = azb_current_queue;

	if (!q || fd < 0 || !ready || q->watch_fd >= 0)
		return -EINVAL;
	q->watch_fd = fd;
	q->watch_ready = ready;
	return 0;
}

int azbuse_direct_map_sync(void)
{
	if (!azb_current_queue)
		return -EINVAL;
	while (ioctl(azb_current_queue->fd, AZBUSE_IOC_MAP_SYNC, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int azbuse_worker_main(const struct azbuse_engine_ops *ops, void *engine, uint32_t dev_id,
		       uint16_t queue, const struct azbuse_device_opts *o, int chan_fd)
{
	struct azbuse_queue_params params;
	struct azbuse_queue q;
	struct azbuse_attach geo;
	uint8_t cpus[1024];
	void *ring = MAP_FAILED, *data = MAP_FAILED, *map = MAP_FAILED;
	size_t map_bytes = 0;
	char path[64], prefix[64];
	int fd, ret;

	snprintf(prefix, sizeof(prefix), "azbuse%u worker %u", dev_id, queue);
	azb_log_set_prefix(prefix);
	snprintf(path, sizeof(path), AZBUSE_CHAR_PREFIX "%u", dev_id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		azb_log("cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	memset(cpus, 0, sizeof(cpus));
	ret = azb_attach(fd, queue, &geo, cpus, sizeof(cpus), o->poll_us);
	if (ret) {
		azb_log("cannot attach to queue %u: %s", queue, strerror(-ret));
		goto out_close;
	}
	azb_pin(&geo, cpus, queue, o->pin);
	azb_set_sched(queue, o->sched);
	ring = mmap(NULL, geo.ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    AZBUSE_MMAP_RING_OFF);
	data = mmap(NULL, geo.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    AZBUSE_MMAP_DATA_OFF);
	if (ring == MAP_FAILED || data == MAP_FAILED) {
		ret = -errno;
		azb_log("cannot map the rings: %s", strerror(errno));
		goto out_unmap;
	}
	if (geo.features & AZBUSE_F_DIRECT_MAP) {
		map = azb_map_direct(fd, &map_bytes);
		if (map == MAP_FAILED) {
			ret = -errno;
			azb_log("cannot map the direct map: %s", strerror(errno));
			goto out_unmap;
		}
	}
	ret = azbuse_queue_map(&q, fd, &geo, ring, data);
	if (ret)
		goto out_unmap;
	q.ops = ops;
	q.chan_fd = chan_fd;
	q.cache = azb_device_cache;
	ret = azb_cache_worker_open(&q);
	if (ret) {
		azb_log("cannot use the cache: %s", strerror(-ret));
		goto out_queue;
	}
	if (o->trace_path) {
		q.trace_fd = azbuse_trace_open(o->trace_path);
		if (q.trace_fd < 0) {
			ret = q.trace_fd;
			azb_log("cannot open trace file %s: %s", o->trace_path, strerror(-ret));
			goto out_queue;
		}
	}

	memset(&params, 0, sizeof(params));
	params.queue = queue;
	params.nr_queues = geo.nr_queues;
	/* (the cache's write-backs are requests too) */
	params.nr_slots = geo.nr_slots + (q.cache ? AZB_CLEAN_IOS : 0);
	params.size_bytes = geo.size_bytes;
	params.numa_node = geo.numa_node;
	params.direct_map = map != MAP_FAILED ? map : NULL;
	params.direct_map_bytes = map_bytes;
	azb_current_queue = &q; /* the engine may set its backing file (azbuse_set_backing) */
	ret = ops->open_queue ? ops->open_queue(engine, &params, &q.engine_queue) : 0;
	if (ret) {
		azb_log("engine %s cannot open queue %u: %s", ops->name, queue, strerror(-ret));
		goto out_queue;
	}
	if (chan_fd >= 0 && azb_worker_control_init())
		azb_log("no control channel: %s", strerror(errno));
	else if (chan_fd >= 0 && q.cache) /* (SIGUSR1 is handled now) */
		azc_set_worker(q.cache, queue, getpid());
	while ((ret = azbuse_queue_turn(&q)) == 0)
		;
	if (ret == 1)
		ret = 0;
	else
		azb_log("stopping: %s", strerror(-ret));
	azb_wait_outstanding(&q);
	if (ops->close_queue)
		ops->close_queue(q.engine_queue);
out_queue:
	if (q.trace_fd >= 0)
		close(q.trace_fd);
	if (q.cache)
		azc_set_worker(q.cache, queue, 0);
	azb_cache_worker_close(&q);
	azbuse_queue_unmap(&q);
out_unmap:
	azb_current_queue = NULL;
	if (map != MAP_FAILED)
		munmap(map, map_bytes);
	if (data != MAP_FAILED)
		munmap(data, geo.data_bytes);
	if (ring != MAP_FAILED)
		munmap(ring, geo.ring_bytes);
out_close:
	close(fd);
	return ret;
}
