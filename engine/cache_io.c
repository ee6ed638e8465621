// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cache_io.c - the worker's side of the RAM cache (cache/): what each
 * request does with it on the way to the engine and back, and the
 * write-back work a worker does between batches.
 *
 * Reads the cache holds whole are copied from it; a read that misses fills
 * it (and, while dirty blocks exist, gets them copied over what the store
 * gave). In write-back mode an aligned write without FUA is kept dirty and
 * completes at once; anything else that writes goes to the engine and
 * updates or drops what it covers when it ends.
 *
 * The cleaner: internal write requests (tags after the kernel's) through
 * the engine's own write callback, so an engine writes a block back as it
 * writes a request, and one whose engine hands it to another queue
 * (AZBUSE_CQE_F_REDIRECT) is left to that queue's worker. A FLUSH waits
 * here until every block dirty before it that this worker can write back is
 * in the store, then goes to the engine, which makes the store durable (a
 * sharded device's FLUSH visits every queue in turn, so each owner writes
 * its own). A request the cache cannot take now (a write-back of its
 * blocks is in flight) waits in a list and is tried again every turn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* azb_io(io)->cache_flags */
#define AZB_CACHE_FILL 1   /* a read that missed: fill the cache with what it got */
#define AZB_CACHE_WRITE 2  /* a write (or discard...): azc_write_begin was called */
#define AZB_CACHE_ALONE 4  /* ... and no other write to its blocks was in flight */
#define AZB_CACHE_KEEP 8   /* ... whose data the cache may keep */
#define AZB_CACHE_READ 16  /* a read registered with azc_read_begin: dirty blocks go over it */
#define AZB_CACHE_CLEAN 32 /* the cleaner's own write-back (not the kernel's) */

#define AZB_CACHE_RESCAN_MS 10 /* a background pass that found nothing: the next one */
#define AZB_STREAMS 16	       /* sequential streams a worker follows */
/* Background write-backs started in a turn that had requests, once dirty
 * blocks are near the most the cache takes (before, they wait for a turn
 * without requests: an engine that writes synchronously holds the worker for
 * each one). */
#define AZB_CLEAN_BUSY_TURN 2

/* A sequential stream: where its next request would start, and its length so far. */
struct azb_stream {
	uint64_t next;
	uint64_t run;
	uint64_t used; /* (the least recently continued one makes room) */
};

struct azb_cache_worker {
	struct azb_io ios[AZB_CLEAN_IOS];
	uint8_t *bufs; /* AZB_CLEAN_IOS blocks, page aligned (O_DIRECT engines) */
	uint64_t blk[AZB_CLEAN_IOS], seq[AZB_CLEAN_IOS];
	uint32_t busy_mask; /* ios in flight */
	uint64_t cursor;
	bool pass_ended;       /* a pass found nothing more: see again once ios are back */
	uint64_t done_target;  /* every block dirty before this that we can do is clean */
	uint64_t next_pass_ms; /* background passes wait until then after an empty one */

	/* requests the cache cannot take yet, and FLUSHes waiting for write-backs */
	struct azbuse_io *deferred, *deferred_tail;
	struct azbuse_io *flushes, *flushes_tail;
	uint64_t flush_target; /* every block dirty before this, for the waiting FLUSHes */
	uint32_t held;	       /* requests in those two lists */

	struct azb_stream streams[AZB_STREAMS];
	uint64_t stream_clock;
};

/* The cache blocks a request covers: false if it is not aligned to them
 * (*first and *n then cover every block it touches). */
static bool azb_cache_span(const struct azbuse_io *io, uint64_t *first, uint32_t *n)
{
	uint64_t end = io->offset + io->len;

	*first = io->offset / AZBUSE_CACHE_BLOCK;
	*n = (uint32_t)((end + AZBUSE_CACHE_BLOCK - 1) / AZBUSE_CACHE_BLOCK - *first);
	return !(io->offset % AZBUSE_CACHE_BLOCK) && !(io->len % AZBUSE_CACHE_BLOCK);
}

static void azb_list_push(struct azbuse_io **head, struct azbuse_io **tail, struct azbuse_io *io)
{
	azb_io(io)->next_done = NULL;
	if (*tail)
		azb_io(*tail)->next_done = io;
	else
		*head = io;
	*tail = io;
}

/* Not now: the request is tried again next turn. */
static bool azb_cache_defer(struct azbuse_queue *q, struct azbuse_io *io)
{
	struct azb_cache_worker *cw = q->cache_worker;

	azb_list_push(&cw->deferred, &cw->deferred_tail, io);
	cw->held++;
	return true;
}

/*
 * A write to the store whose first or last block is cut by it while that
 * block is dirty: the block's other bytes exist only in the cache, so it
 * goes back to the store first (a drain, which is rare: file systems write
 * whole blocks).
 */
static bool azb_cache_cuts_dirty(struct azc_cache *c, const struct azbuse_io *io)
{
	uint64_t first = io->offset / AZBUSE_CACHE_BLOCK;
	uint64_t last = (io->offset + io->len - 1) / AZBUSE_CACHE_BLOCK;

	if (io->offset % AZBUSE_CACHE_BLOCK && azc_is_dirty(c, first))
		return true;
	return (io->offset + io->len) % AZBUSE_CACHE_BLOCK && azc_is_dirty(c, last);
}

/*
 * The sequential cutoff: does this request continue a stream (one of the
 * last AZB_STREAMS this worker saw) that is now longer than the cutoff?
 * Such requests bypass the cache, as large scans and copies should.
 */
static bool azb_cache_sequential(struct azbuse_queue *q, const struct azbuse_io *io)
{
	struct azb_cache_worker *cw = q->cache_worker;
	uint64_t cutoff = azc_get_seq_cutoff(q->cache);
	struct azb_stream *s, *oldest = &cw->streams[0];

	if (!cutoff)
		return false;
	for (s = cw->streams; s < cw->streams + AZB_STREAMS; s++) {
		if (s->run && s->next == io->offset)
			break;
		if (s->used < oldest->used)
			oldest = s;
	}
	if (s == cw->streams + AZB_STREAMS) {
		s = oldest;
		s->run = 0;
	}
	s->next = io->offset + io->len;
	s->run += io->len;
	s->used = ++cw->stream_clock;
	if (s->run <= cutoff)
		return false;
	azc_note_bypass(q->cache, q->geo.queue);
	return true;
}

static bool azb_cache_read(struct azbuse_queue *q, struct azbuse_io *io)
{
	struct azc_cache *c = q->cache;
	uint64_t first;
	uint32_t n;
	bool aligned = azb_cache_span(io, &first, &n);
	bool sequential = azb_cache_sequential(q, io); /* (followed through hits too) */
	int reg;

	if (aligned && azc_read_all(c, first, n, io->buf)) {
		azc_note_read(c, q->geo.queue, true);
		azbuse_complete(io, 0);
		return true;
	}
	reg = azc_read_begin(c, q->geo.queue, io->tag, first, n, &azb_io(io)->cache_stamp);
	if (reg == -EBUSY)
		return azb_cache_defer(q, io);
	azc_note_read(c, q->geo.queue, false);
	azb_io(io)->cache_flags =
		(aligned && !sequential ? AZB_CACHE_FILL : 0) | (reg == 1 ? AZB_CACHE_READ : 0);
	return false;
}

static bool azb_cache_write(struct azbuse_queue *q, struct azbuse_io *io)
{
	struct azc_cache *c = q->cache;
	uint64_t first;
	uint32_t n;
	bool aligned = azb_cache_span(io, &first, &n), alone;
	bool keep = aligned && io->op == AZBUSE_OP_WRITE && io->buf && !azb_cache_sequential(q, io);

	if (keep && !(io->flags & AZBUSE_RQ_FUA) &&
	    !azc_write_dirty(c, q->geo.queue, first, n, io->buf)) {
		azbuse_complete(io, 0);
		return true;
	}
	if (!aligned && azb_cache_cuts_dirty(c, io)) {
		azc_drain_begin(c, false);
		return azb_cache_defer(q, io);
	}
	if (azc_write_begin(c, q->geo.queue, io->tag, first, n, &azb_io(io)->cache_stamp, &alone))
		return azb_cache_defer(q, io);
	/*
	 * Again now that the write is stamped: a block another queue made dirty
	 * between the check above and the stamp would be taken for older than
	 * this write and dropped when it ends, its other bytes never stored.
	 */
	if (!aligned && azb_cache_cuts_dirty(c, io)) {
		azc_write_end(c, q->geo.queue, io->tag, first, n, azb_io(io)->cache_stamp, alone,
			      -EAGAIN, NULL);
		azc_drain_begin(c, false);
		return azb_cache_defer(q, io);
	}
	azb_io(io)->cache_flags =
		AZB_CACHE_WRITE | (alone ? AZB_CACHE_ALONE : 0) | (keep ? AZB_CACHE_KEEP : 0);
	return false;
}

/* A FLUSH with dirty blocks about: it waits for their write-back. */
static bool azb_cache_flush(struct azbuse_queue *q, struct azbuse_io *io)
{
	struct azb_cache_worker *cw = q->cache_worker;

	if (!azc_dirty_count(q->cache) && !cw->flushes) {
		if (q->ops->flush)
			return false;
		azbuse_complete(io, 0); /* (the engine has no write cache of its own) */
		return true;
	}
	if (!cw->flushes)
		azc_clean_retry(q->cache); /* what failed before is tried once more */
	cw->flush_target = azc_stamp_now(q->cache) + 1;
	azb_list_push(&cw->flushes, &cw->flushes_tail, io);
	cw->held++;
	return true;
}

bool azb_cache_dispatch(struct azbuse_queue *q, struct azbuse_io *io)
{
	azb_io(io)->cache_flags = 0;
	if (!q->cache)
		return false;
	if (io->op == AZBUSE_OP_FLUSH)
		return azb_cache_flush(q, io);
	if (!io->len)
		return false;
	if (io->op == AZBUSE_OP_READ)
		return azb_cache_read(q, io);
	return azb_cache_write(q, io);
}

/* A read that went to the engine ended: what it got, as the kernel will see it. */
static void *azb_cache_read_data(struct azbuse_io *io)
{
	if (azb_io(io)->result)
		return NULL;
	if (!azb_io(io)->cqe_flags)
		return io->buf;
	if (azb_io(io)->cqe_flags == AZBUSE_CQE_F_ZERO && io->buf) {
		memset(io->buf, 0, io->len);
		azb_io(io)->cqe_flags = 0;
		return io->buf;
	}
	return azb_io(io)->cqe_flags == AZBUSE_CQE_F_COPY ? azb_io(io)->copy_buf : NULL;
}

static void azb_cache_read_done(struct azbuse_io *io, uint8_t flags)
{
	struct azc_cache *c = azb_io(io)->queue->cache;
	uint32_t queue = azb_io(io)->queue->geo.queue;
	void *data = azb_cache_read_data(io);
	uint64_t first;
	uint32_t n;

	azb_cache_span(io, &first, &n);
	if ((flags & AZB_CACHE_READ) && data && data == azb_io(io)->copy_buf && io->buf) {
		/* the engine's buffer is its own: the dirty blocks go over a copy */
		memcpy(io->buf, data, io->len);
		azb_io(io)->cqe_flags = 0;
		data = io->buf;
	}
	if (flags & AZB_CACHE_READ)
		azc_read_end(c, queue, io->tag, io->offset, io->len, 1,
			     azb_io(io)->cqe_flags == AZBUSE_CQE_F_REDIRECT ? NULL : data);
	if ((flags & AZB_CACHE_FILL) && data)
		azc_fill(c, first, n, azb_io(io)->cache_stamp, data);
}

void azb_cache_done(struct azbuse_io *io)
{
	struct azc_cache *c = azb_io(io)->queue->cache;
	uint8_t flags = azb_io(io)->cache_flags;
	const void *data = NULL;
	uint64_t first;
	uint32_t n;

	if (!c || !flags || (flags & AZB_CACHE_CLEAN))
		return;
	azb_io(io)->cache_flags = 0;
	if (flags & (AZB_CACHE_FILL | AZB_CACHE_READ)) {
		azb_cache_read_done(io, flags);
		return;
	}
	azb_cache_span(io, &first, &n);
	/* handed to another queue: it comes back through that one */
	if (azb_io(io)->cqe_flags == AZBUSE_CQE_F_REDIRECT && !azb_io(io)->result) {
		azc_write_cancel(c, azb_io(io)->queue->geo.queue, io->tag, first, n);
		return;
	}
	if ((flags & AZB_CACHE_KEEP) && !azb_io(io)->result && !azb_io(io)->cqe_flags)
		data = io->buf;
	azc_write_end(c, azb_io(io)->queue->geo.queue, io->tag, first, n, azb_io(io)->cache_stamp,
		      flags & AZB_CACHE_ALONE, azb_io(io)->result, data);
}

/* ---- the cleaner ---- */

/* The cache's record of write-back k of this queue (after the kernel's tags). */
static uint32_t azb_clean_tag(const struct azbuse_queue *q, unsigned k)
{
	return azc_tags(q->cache) - AZB_CLEAN_IOS + k;
}

bool azb_cache_clean_done(struct azbuse_queue *q, struct azbuse_io *io)
{
	struct azb_cache_worker *cw = q->cache_worker;
	unsigned k;
	int redirect = -1;

	if (!cw || azb_io(io) < cw->ios || azb_io(io) >= cw->ios + AZB_CLEAN_IOS)
		return false;
	k = (unsigned)(azb_io(io) - cw->ios);
	/* what the module does for the kernel's writes: the engine named its buffer */
	if (azb_io(io)->cqe_flags == AZBUSE_CQE_F_COPY && !azb_io(io)->result &&
	    azb_io(io)->copy_buf)
		memcpy(azb_io(io)->copy_buf, io->buf, io->len);
	if (azb_io(io)->cqe_flags == AZBUSE_CQE_F_REDIRECT && !azb_io(io)->result)
		redirect = azb_io(io)->redirect_queue;
	if (azb_io(io)->result && azb_io(io)->result != -ENOSPC)
		azb_log("cache: write-back of block %llu failed: %s",
			(unsigned long long)cw->blk[k], strerror(-azb_io(io)->result));
	azc_clean_end(q->cache, q->geo.queue, azb_clean_tag(q, k), cw->blk[k], cw->seq[k],
		      azb_io(io)->result, redirect);
	cw->busy_mask &= ~(1U << k);
	q->outstanding--;
	return true;
}

/* Write block k back through the engine's write callback. */
static void azb_clean_submit(struct azbuse_queue *q, unsigned k)
{
	struct azb_cache_worker *cw = q->cache_worker;
	struct azbuse_io *io = &cw->ios[k].io;

	memset(io, 0, sizeof(*io));
	io->op = AZBUSE_OP_WRITE;
	io->offset = cw->blk[k] * AZBUSE_CACHE_BLOCK;
	io->len = AZBUSE_CACHE_BLOCK;
	io->buf = cw->bufs + (size_t)k * AZBUSE_CACHE_BLOCK;
	azb_io(io)->queue = q;
	io->tag = q->geo.nr_slots + k; /* (beyond the kernel's: never posted to it) */
	azb_io(io)->cache_flags = AZB_CACHE_CLEAN;
	cw->busy_mask |= 1U << k;
	q->outstanding++;
	q->ops->write(q->engine_queue, io);
}

/*
 * Start write-backs while ios are free; true when a pass ended: a whole
 * round of the cache found nothing more to do (*pass: what it passed over).
 */
static bool azb_clean_run(struct azbuse_queue *q, const struct azc_clean_want *w, unsigned budget,
			  struct azc_clean_pass *pass)
{
	struct azb_cache_worker *cw = q->cache_worker;
	unsigned k, started = 0;
	bool ended = false;

	for (k = 0; k < AZB_CLEAN_IOS && !ended && started < budget; k++) {
		if (cw->busy_mask & (1U << k))
			continue;
		memset(pass, 0, sizeof(*pass));
		if (!azc_clean_next(q->cache, q->geo.queue, azb_clean_tag(q, k), &cw->cursor, w,
				    pass, &cw->blk[k], &cw->seq[k],
				    cw->bufs + (size_t)k * AZBUSE_CACHE_BLOCK)) {
			ended = true;
			break;
		}
		azb_clean_submit(q, k);
		started++;
	}
	if (started)
		azb_engine_batch_end(q);
	return ended;
}

/* Every waiting FLUSH goes on to the engine (or fails: blocks it needed failed). */
static void azb_flushes_release(struct azbuse_queue *q, bool failed)
{
	struct azb_cache_worker *cw = q->cache_worker;
	struct azbuse_io *io = cw->flushes, *next;

	cw->flushes = cw->flushes_tail = NULL;
	for (; io; io = next) {
		next = azb_io(io)->next_done;
		cw->held--;
		if (failed || !q->ops->flush)
			azbuse_complete(io, failed ? -EIO : 0);
		else
			azb_engine_serve(q, io);
	}
}

/* Requests that waited: dispatched again (they may wait again). */
static void azb_deferred_retry(struct azbuse_queue *q)
{
	struct azb_cache_worker *cw = q->cache_worker;
	struct azbuse_io *io = cw->deferred, *next;

	cw->deferred = cw->deferred_tail = NULL;
	for (; io; io = next) {
		next = azb_io(io)->next_done;
		cw->held--;
		azb_serve(q, io);
	}
	/* (an engine may complete what it got only at the end of a batch) */
	azb_engine_batch_end(q);
}

unsigned azb_cache_work(struct azbuse_queue *q, bool busy)
{
	struct azb_cache_worker *cw = q->cache_worker;
	struct azc_clean_pass pass = { 0 };
	struct azc_clean_want w;
	unsigned budget;
	uint64_t now;

	if (!cw)
		return 0;
	if (cw->deferred)
		azb_deferred_retry(q);
	w = azc_clean_demand(q->cache);
	if (w.target <= cw->done_target)
		w.target = 0;
	if (cw->flushes && cw->flush_target > w.target)
		w.target = cw->flush_target;
	if (!w.target && w.background == AZC_CLEAN_NONE)
		return cw->busy_mask || cw->held ? 1 : 0;
	if (cw->pass_ended && cw->busy_mask)
		return 1; /* what is in flight may fail: look again once it ended */
	cw->pass_ended = false;
	now = azb_clock_ms();
	/* (after a mode change the target is everything: it may remain for a
	 * while where the rest is other queues' to write back) */
	if ((!w.target || w.target == UINT64_MAX) && !cw->flushes && now < cw->next_pass_ms)
		return AZB_CACHE_RESCAN_MS;
	/* (a FLUSH or a drain waits for its write-backs: they do not give way) */
	budget = !busy || w.target ? AZB_CLEAN_IOS : w.urgent ? AZB_CLEAN_BUSY_TURN : 0;
	if (!budget)
		return 1;
	if (!azb_clean_run(q, &w, budget, &pass))
		return 1;
	cw->pass_ended = true;
	if (cw->busy_mask || pass.busy)
		return 1;
	/* every block due is written back, or failed, or another queue's */
	if (w.target > cw->done_target && w.target != UINT64_MAX && !pass.failed)
		cw->done_target = w.target;
	if (cw->flushes)
		azb_flushes_release(q, pass.failed != 0);
	cw->next_pass_ms = now + AZB_CACHE_RESCAN_MS;
	return cw->held ? 1 : w.background != AZC_CLEAN_NONE ? AZB_CACHE_RESCAN_MS : 0;
}

bool azb_cache_written_back(struct azbuse_queue *q, uint64_t target)
{
	struct azb_cache_worker *cw = q->cache_worker;

	return !cw || cw->done_target >= target || !azc_clean_demand(q->cache).target;
}

uint32_t azb_cache_held(const struct azbuse_queue *q)
{
	return q->cache_worker ? q->cache_worker->held : 0;
}

int azb_cache_worker_open(struct azbuse_queue *q)
{
	struct azb_cache_worker *cw;

	if (!q->cache)
		return 0;
	cw = calloc(1, sizeof(*cw));
	if (!cw)
		return -ENOMEM;
	cw->bufs = aligned_alloc(4096, (size_t)AZB_CLEAN_IOS * AZBUSE_CACHE_BLOCK);
	if (!cw->bufs) {
		free(cw);
		return -ENOMEM;
	}
	q->cache_worker = cw;
	/* what a dead predecessor had in flight comes again */
	azc_queue_reset(q->cache, q->geo.queue);
	return 0;
}

void azb_cache_worker_close(struct azbuse_queue *q)
{
	struct azb_cache_worker *cw = q->cache_worker;

	if (!cw)
		return;
	free(cw->bufs);
	free(cw);
	q->cache_worker = NULL;
}
