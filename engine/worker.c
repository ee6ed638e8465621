// SPDX-License-Identifier: LGPL-2.1-or-later
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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define AZB_OUTSTANDING_WAIT_MS 30000
#define AZB_CLOSE_WRITE_BACK_MS 30000

/* Engines built against an earlier libazbuse read these fields where they were. */
_Static_assert(offsetof(struct azbuse_io, flags) == 8 && offsetof(struct azbuse_io, offset) == 16 &&
		       offsetof(struct azbuse_io, len) == 24 &&
		       offsetof(struct azbuse_io, buf) == 32 &&
		       offsetof(struct azbuse_io, engine_data) == 40,
	       "struct azbuse_io's public fields moved");

static _Thread_local struct azbuse_queue *azb_current_queue;

struct azc_cache *azb_device_cache;

static void azb_post_cqe(struct azbuse_queue *q, struct azbuse_io *io)
{
	struct azbuse_cqe *cqe = &q->cq[q->cq_tail & (q->geo.cq_entries - 1)];

	if (io->tag >= q->geo.nr_slots && azb_cache_clean_done(q, io))
		return; /* the cache's own write-back */
	cqe->tag = io->tag;
	cqe->seq = azb_io(io)->seq;
	cqe->result = azb_io(io)->result;
	cqe->flags = azb_io(io)->result ? 0 : azb_io(io)->cqe_flags;
	cqe->addr = azb_io(io)->cqe_flags == AZBUSE_CQE_F_REDIRECT
			    ? azb_io(io)->redirect_queue
			    : (uintptr_t)azb_io(io)->copy_buf;
	cqe->reserved = 0;
	q->cq_tail++;
	q->requests++;
	q->outstanding--;
}

/* Post a completion now (the worker's thread) or hand it to the worker. */
static void azb_complete(struct azbuse_io *io, int result)
{
	struct azbuse_queue *q = azb_io(io)->queue;
	struct azbuse_io *head;

	azb_io(io)->result = result;
	azb_cache_done(io);
	if (azb_current_queue == q) {
		azb_post_cqe(q, io);
		return;
	}
	/* another thread: hand it to the worker, and wake the worker if it sleeps */
	head = atomic_load_explicit(&q->remote_done, memory_order_relaxed);
	do {
		azb_io(io)->next_done = head;
	} while (!atomic_compare_exchange_weak(&q->remote_done, &head, io));
	/* seq_cst on both sides: either the worker sees our io before it sleeps, or we see it
	 * asleep */
	if (atomic_load(&q->sleeping))
		q->kick(q);
}

void azbuse_complete(struct azbuse_io *io, int result)
{
	azb_io(io)->cqe_flags = 0;
	azb_complete(io, result);
}

void azbuse_complete_copy(struct azbuse_io *io, void *buf)
{
	azb_io(io)->cqe_flags = AZBUSE_CQE_F_COPY;
	azb_io(io)->copy_buf = buf;
	azb_complete(io, 0);
}

void azbuse_complete_zeroes(struct azbuse_io *io)
{
	azb_io(io)->cqe_flags = AZBUSE_CQE_F_ZERO;
	azb_complete(io, 0);
}

void azbuse_complete_redirect(struct azbuse_io *io, uint16_t queue)
{
	azb_io(io)->cqe_flags = AZBUSE_CQE_F_REDIRECT;
	azb_io(io)->redirect_queue = queue;
	azb_complete(io, 0);
}

uint32_t azbuse_queue_drain_remote(struct azbuse_queue *q)
{
	struct azbuse_io *io =
		atomic_exchange_explicit(&q->remote_done, NULL, memory_order_acquire);
	uint32_t n = 0;

	for (; io; io = azb_io(io)->next_done, n++)
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
	io = &q->ios[sqe->tag].io;
	io->op = sqe->op;
	io->ioprio = sqe->ioprio;
	io->flags = sqe->flags;
	io->offset = sqe->sector << 9;
	io->len = sqe->len;
	io->tag = sqe->tag;
	azb_io(io)->seq = sqe->seq;
	azb_io(io)->queue = q;
	io->buf = (char *)q->data_map + (size_t)sqe->tag * q->geo.slot_bytes;
	/* user copy: a write's data reaches the engine only through azbuse_complete_copy() */
	if (io->op == AZBUSE_OP_WRITE && (q->geo.features & AZBUSE_F_USER_COPY))
		io->buf = NULL;
	io->engine_data[0] = io->engine_data[1] = NULL;
	azb_io(io)->cqe_flags = 0;
	azb_io(io)->copy_buf = NULL;
	azb_io(io)->cache_flags = 0;
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
	if (ret == -ENODEV || (azb_load_acquire(&q->hdr->kflags) & AZBUSE_KF_DEAD)) {
		q->device_gone = true;
		return 1;
	}
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

/*
 * The part of a turn before COMMIT: take new requests, end the batch, give
 * the engine and the cache their background work. *consumed gets how many
 * requests came; returns within how many ms the cache wants to be called
 * again (0: no need).
 */
static unsigned azb_turn_work(struct azbuse_queue *q, uint32_t *consumed)
{
	unsigned cache_ms;

	azb_current_queue = q;
	*consumed = azbuse_queue_consume(q);
	if (*consumed) {
		azb_engine_batch_end(q);
		/* the batch may have left background work: ask once the ring is empty */
		if (azb_has_idle(q->ops))
			q->idle_ms = 1;
	} else if (azb_has_idle(q->ops) && !azb_local_work(q)) {
		q->idle_ms = q->ops->idle(q->engine_queue);
	}
	cache_ms = azb_cache_work(q, *consumed != 0);
	azb_watch_ready(q);
	azbuse_queue_drain_remote(q);
	return cache_ms;
}

int azbuse_queue_turn(struct azbuse_queue *q)
{
	unsigned long timeout;
	unsigned cache_ms;
	uint32_t consumed;
	int ret;

	if (azb_worker_control_pending() && azb_worker_control())
		return 1; /* the supervisor replaces this worker */
	cache_ms = azb_turn_work(q, &consumed);

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

/*
 * Sleep until one of the queues has a request, its engine's fd is readable,
 * a completion is handed over, or timeout_ms (0: no limit) passes.
 */
static int azb_multi_sleep(struct azbuse_queue **qs, unsigned n, unsigned timeout_ms)
{
	struct pollfd fds[2 * AZB_WORKER_DEVS_MAX];
	unsigned i, nfds = 0;
	bool handed = false;
	int ret = 0;

	for (i = 0; i < n; i++) {
		if (!qs[i])
			continue;
		atomic_store(&qs[i]->sleeping, 1);
		fds[nfds++] = (struct pollfd){ .fd = qs[i]->fd, .events = POLLIN };
		if (qs[i]->watch_fd >= 0 && qs[i]->watch_inflight)
			fds[nfds++] = (struct pollfd){ .fd = qs[i]->watch_fd, .events = POLLIN };
	}
	/* seq_cst as in azb_complete: a hand-over either is seen here or kicks */
	for (i = 0; i < n; i++)
		handed |= qs[i] && atomic_load(&qs[i]->remote_done);
	if (!handed && poll(fds, nfds, timeout_ms ? (int)timeout_ms : -1) < 0 && errno != EINTR)
		ret = -errno;
	for (i = 0; i < n; i++)
		if (qs[i])
			atomic_store(&qs[i]->sleeping, 0);
	return ret;
}

/*
 * One turn of a worker that serves queue q of several devices (a pool's
 * daemon): every queue takes its requests and commits without sleeping;
 * with nothing to do anywhere, the worker sleeps in poll(2) on all of them
 * (the module wakes a ring's poll as it would a sleeping COMMIT). stopped[i]
 * is set for a queue whose device is gone. Returns 0, 1 (the supervisor
 * asked the worker to exit) or -errno.
 */
int azbuse_worker_turn(struct azbuse_queue **qs, unsigned n, bool *stopped)
{
	unsigned i, timeout = 0;
	bool busy = false;

	if (azb_worker_control_pending() && azb_worker_control())
		return 1;
	for (i = 0; i < n; i++) {
		struct azbuse_queue *q = qs[i];
		uint32_t consumed;
		unsigned cache_ms;
		int ret;

		if (!q)
			continue;
		cache_ms = azb_turn_work(q, &consumed);
		timeout = azb_sooner(timeout, azb_sooner(cache_ms, q->idle_ms));
		azb_store_release(&q->hdr->cq_tail, q->cq_tail);
		ret = azb_commit_result(q, q->commit(q, 0));
		if (ret == 1) {
			stopped[i] = true;
			continue;
		}
		if (ret < 0)
			return ret;
		azb_watch_ready(q);
		busy |= consumed || azb_local_work(q) || q->cq_tail != q->cq_committed;
	}
	return busy ? 0 : azb_multi_sleep(qs, n, timeout);
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
		azb_warn("%u request(s) still held by the engine at exit",
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
			azb_warn("queue %u: cannot run on node %d: %s", queue, geo->numa_node,
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
		azb_warn("queue %u: cannot pin to its CPUs: %s", queue, strerror(errno));
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
		azb_warn("queue %u: cannot use SCHED_BATCH: %s", queue, strerror(errno));
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

struct azbuse_queue *azb_queue_now(void)
{
	return azb_current_queue;
}

int azb_direct_map_sync_of(struct azbuse_queue *q)
{
	if (!q)
		return -EINVAL;
	while (ioctl(q->fd, AZBUSE_IOC_MAP_SYNC, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int azbuse_direct_map_sync(void)
{
	return azb_direct_map_sync_of(azb_current_queue);
}

/* What a worker keeps of one device's queue. */
struct azb_worker_queue {
	struct azbuse_queue q;
	struct azbuse_attach geo;
	void *ring, *data, *map;
	size_t map_bytes;
	bool engine_open;
};

/*
 * The device is gone, and a removal sends no FLUSH to a disk that nothing
 * mounted: what this queue holds dirty in a write-back cache goes to the
 * engine before it closes (which makes it durable), or it would be lost
 * with the cache.
 */
static void azb_write_back_before_close(struct azbuse_queue *q)
{
	struct timespec pause = { .tv_nsec = 2000000 };
	uint64_t start = azb_clock_ms(), target;

	if (!q->cache_worker || !q->device_gone)
		return;
	target = azc_drain_begin(q->cache, false);
	while (!azb_cache_written_back(q, target)) {
		if (azb_clock_ms() - start > AZB_CLOSE_WRITE_BACK_MS) {
			azb_warn("the device is gone and dirty cache blocks could not be written "
				 "back in %u ms: they are lost",
				 AZB_CLOSE_WRITE_BACK_MS);
			return;
		}
		azb_cache_work(q, false);
		azb_wait_outstanding(q);
		if (!azb_cache_written_back(q, target))
			nanosleep(&pause, NULL);
	}
}

/* Close what azb_worker_open opened (the engine's queue first, once it has finished). */
static void azb_worker_close(struct azb_worker_queue *w, uint16_t queue)
{
	struct azbuse_queue *q = &w->q;

	if (w->engine_open) {
		azb_current_queue = q;
		azb_write_back_before_close(q);
		azb_wait_outstanding(q);
		if (q->ops->close_queue)
			q->ops->close_queue(q->engine_queue);
		w->engine_open = false;
	}
	if (q->trace_fd >= 0)
		close(q->trace_fd);
	q->trace_fd = -1;
	if (q->cache)
		azc_set_worker(q->cache, queue, 0);
	azb_cache_worker_close(q);
	azbuse_queue_unmap(q);
	azb_current_queue = NULL;
	if (w->map != MAP_FAILED)
		munmap(w->map, w->map_bytes);
	if (w->data != MAP_FAILED)
		munmap(w->data, w->geo.data_bytes);
	if (w->ring != MAP_FAILED)
		munmap(w->ring, w->geo.ring_bytes);
	w->map = w->data = w->ring = MAP_FAILED;
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

/* Attach to queue `queue` of dev, map its rings and open the engine's queue. */
static int azb_worker_open(struct azb_worker_queue *w, const struct azb_serve_dev *dev,
			   uint16_t queue)
{
	const struct azbuse_device_opts *o = dev->opts;
	struct azbuse_queue_params params;
	uint8_t cpus[1024];
	char path[64];
	int fd, ret;

	memset(w, 0, sizeof(*w));
	w->ring = w->data = w->map = MAP_FAILED;
	w->q.fd = -1;
	w->q.trace_fd = -1;
	snprintf(path, sizeof(path), AZBUSE_CHAR_PREFIX "%u", dev->dev_id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		azb_err("cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	w->q.fd = fd;
	memset(cpus, 0, sizeof(cpus));
	ret = azb_attach(fd, queue, &w->geo, cpus, sizeof(cpus), o->poll_us);
	if (ret) {
		azb_err("azbuse%u: cannot attach to queue %u: %s", dev->dev_id, queue,
			strerror(-ret));
		goto fail;
	}
	azb_pin(&w->geo, cpus, queue, o->pin);
	azb_set_sched(queue, o->sched);
	w->ring = mmap(NULL, w->geo.ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       AZBUSE_MMAP_RING_OFF);
	w->data = mmap(NULL, w->geo.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       AZBUSE_MMAP_DATA_OFF);
	if (w->ring == MAP_FAILED || w->data == MAP_FAILED) {
		ret = -errno;
		azb_err("cannot map the rings: %s", strerror(errno));
		goto fail;
	}
	if (w->geo.features & AZBUSE_F_DIRECT_MAP) {
		w->map = azb_map_direct(fd, &w->map_bytes);
		if (w->map == MAP_FAILED) {
			ret = -errno;
			azb_err("cannot map the direct map: %s", strerror(errno));
			goto fail;
		}
	}
	ret = azbuse_queue_map(&w->q, fd, &w->geo, w->ring, w->data);
	if (ret)
		goto fail;
	w->q.dev_id = dev->dev_id;
	w->q.ops = dev->ops;
	w->q.cache = dev->cache;
	ret = azb_cache_worker_open(&w->q);
	if (ret) {
		azb_err("cannot use the cache: %s", strerror(-ret));
		goto fail;
	}
	if (o->trace_path) {
		w->q.trace_fd = azbuse_trace_open(o->trace_path);
		if (w->q.trace_fd < 0) {
			ret = w->q.trace_fd;
			azb_err("cannot open trace file %s: %s", o->trace_path, strerror(-ret));
			goto fail;
		}
	}

	memset(&params, 0, sizeof(params));
	params.queue = queue;
	params.nr_queues = w->geo.nr_queues;
	/* (the cache's write-backs are requests too) */
	params.nr_slots = w->geo.nr_slots + (w->q.cache ? AZB_CLEAN_IOS : 0);
	params.size_bytes = w->geo.size_bytes;
	params.numa_node = w->geo.numa_node;
	params.direct_map = w->map != MAP_FAILED ? w->map : NULL;
	params.direct_map_bytes = w->map_bytes;
	params.dev_id = dev->dev_id;
	params.data_area = w->data;
	params.data_area_bytes = w->geo.data_bytes;
	azb_current_queue = &w->q; /* the engine may set its backing file (azbuse_set_backing) */
	ret = dev->ops->open_queue ? dev->ops->open_queue(dev->engine, &params, &w->q.engine_queue)
				   : 0;
	if (ret) {
		azb_err("engine %s cannot open queue %u of azbuse%u: %s", dev->ops->name, queue,
			dev->dev_id, strerror(-ret));
		goto fail;
	}
	w->engine_open = true;
	return 0;
fail:
	azb_worker_close(w, queue);
	return ret;
}

/* A worker serving one device: COMMIT sleeps (and polls) on its ring. */
static int azb_worker_serve_one(struct azb_worker_queue *w)
{
	int ret;

	while ((ret = azbuse_queue_turn(&w->q)) == 0)
		;
	return ret;
}

/* A worker serving queue q of several devices: each gone device's queue is closed. */
static int azb_worker_serve_many(struct azb_worker_queue *ws, struct azbuse_queue **qs, unsigned n,
				 uint16_t queue)
{
	bool stopped[AZB_WORKER_DEVS_MAX] = { false };
	unsigned i, live = 0;
	int ret;

	for (i = 0; i < n; i++)
		live += qs[i] != NULL;
	while (live) {
		ret = azbuse_worker_turn(qs, n, stopped);
		if (ret)
			return ret;
		for (i = 0; i < n; i++) {
			if (!stopped[i] || !qs[i])
				continue;
			azb_log("azbuse%u is gone: serving the others", qs[i]->dev_id);
			qs[i] = NULL;
			azb_worker_close(&ws[i], queue);
			live--;
		}
	}
	return 1;
}

int azbuse_worker_main(const struct azb_serve_dev *devs, unsigned nr, uint16_t queue, int chan_fd)
{
	struct azb_worker_queue ws[AZB_WORKER_DEVS_MAX];
	struct azbuse_queue *qs[AZB_WORKER_DEVS_MAX];
	unsigned i, opened = 0;
	char prefix[64];
	int ret = 0;

	if (!nr || nr > AZB_WORKER_DEVS_MAX)
		return -EINVAL;
	if (nr == 1)
		snprintf(prefix, sizeof(prefix), "azbuse%u worker %u", devs[0].dev_id, queue);
	else
		snprintf(prefix, sizeof(prefix), "azbuse%u+%u worker %u", devs[0].dev_id, nr - 1,
			 queue);
	azb_log_set_prefix(prefix);
	for (i = 0; i < nr; i++) {
		qs[i] = NULL;
		ret = azb_worker_open(&ws[i], &devs[i], queue);
		if (ret && nr == 1)
			return ret;
		if (ret) /* (a device removed meanwhile: serve the others) */
			continue;
		qs[i] = &ws[i].q;
		opened++;
	}
	if (!opened)
		return ret;
	azb_worker_control_queues(qs, nr, chan_fd);
	if (chan_fd >= 0 && azb_worker_control_init())
		azb_warn("no control channel: %s", strerror(errno));
	else if (chan_fd >= 0) /* (SIGUSR1 is handled now) */
		for (i = 0; i < nr; i++)
			if (qs[i] && qs[i]->cache)
				azc_set_worker(qs[i]->cache, queue, getpid());
	ret = nr == 1 ? azb_worker_serve_one(&ws[0]) : azb_worker_serve_many(ws, qs, nr, queue);
	if (ret == 1)
		ret = 0;
	else
		azb_err("stopping: %s", strerror(-ret));
	for (i = 0; i < nr; i++)
		if (qs[i])
			azb_worker_close(&ws[i], queue);
	azb_worker_control_queues(NULL, 0, -1);
	return ret;
}
