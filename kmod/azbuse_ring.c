// SPDX-License-Identifier: GPL-2.0
/*
 * azbuse_ring.c - the rings between the block layer and worker processes:
 * posting requests (queue_rq's side), the worker's char device (ATTACH,
 * mmap, COMMIT, KICK), completing, re-posting after a worker dies, and
 * failing requests when no worker comes back or the device goes away.
 *
 * Locking: ring->lock (spinlock) serialises the submission side: queue_rq,
 * re-posting at attach, and the state changes that queue_rq must observe.
 * ring->commit_mutex serialises COMMIT. ring->state_mutex serialises
 * attach, detach and the recovery timer. Each slot's 64-bit word decides,
 * by cmpxchg, who ends its request.
 */
#define pr_fmt(fmt) "azbuse: " fmt

#include <linux/fs.h>
#include <linux/llist.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>

#include "azbuse_compat.h"
#include "azbuse_int.h"

/* What a worker's open file of /dev/azbusec<N> refers to. */
struct azbuse_cfile {
	struct azbuse_dev *dev;
	struct azbuse_ring *ring; /* set by ATTACH */
};

static void azbuse_recovery_work(struct work_struct *work);
static void azbuse_slot_finish(struct azbuse_ring *ring, struct azbuse_slot *slot, u32 seq,
			       blk_status_t status);

/*
 * vzalloc_node() whose pages are charged to the memory cgroup of the caller
 * (the process that issues ADD): __vmalloc_node(), which would take
 * GFP_KERNEL_ACCOUNT, is not exported to modules. The pages are mapped with
 * VM_MAP_PUT_PAGES, so vfree() frees them and their array as for vzalloc.
 */
static void *azbuse_vzalloc_account(size_t bytes, int node)
{
	const gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_ZERO;
	unsigned int nr = PAGE_ALIGN(bytes) >> PAGE_SHIFT, i;
	struct page **pages;
	void *p;

	pages = kvmalloc_array(nr, sizeof(*pages), GFP_KERNEL_ACCOUNT);
	if (!pages)
		return NULL;
	for (i = 0; i < nr; i++) {
		pages[i] = node == NUMA_NO_NODE ? alloc_page(gfp) : alloc_pages_node(node, gfp, 0);
		if (!pages[i])
			goto out_free;
		cond_resched();
	}
	p = vmap(pages, nr, VM_MAP | VM_MAP_PUT_PAGES, PAGE_KERNEL);
	if (p)
		return p;
out_free:
	while (i--)
		__free_page(pages[i]);
	kvfree(pages);
	return NULL;
}

int azbuse_table_init(struct azbuse_slot_table *table, u32 nr, u32 slot_bytes, int node)
{
	table->nr = nr;
	table->slot_bytes = slot_bytes;
	table->data_bytes = (u64)nr * slot_bytes;
	table->slots =
		kvzalloc_node(array_size(nr, sizeof(*table->slots)), GFP_KERNEL_ACCOUNT, node);
	if (!table->slots)
		return -ENOMEM;
	table->data = azbuse_vzalloc_account(table->data_bytes, node);
	if (!table->data) {
		kvfree(table->slots);
		table->slots = NULL;
		return -ENOMEM;
	}
	return 0;
}

void azbuse_table_free(struct azbuse_slot_table *table)
{
	vfree(table->data);
	kvfree(table->slots);
	table->data = NULL;
	table->slots = NULL;
}

int azbuse_ring_init(struct azbuse_ring *ring, struct azbuse_dev *dev, u16 index,
		     struct azbuse_slot_table *table, int node, u8 *cpus, u32 cpus_bytes)
{
	u32 entries = roundup_pow_of_two(table->nr);

	ring->dev = dev;
	ring->index = index;
	ring->node = node;
	ring->table = table;
	ring->sq_entries = entries;
	ring->cq_entries = entries;
	ring->sq_offset = PAGE_SIZE;
	ring->cq_offset = PAGE_ALIGN(ring->sq_offset + entries * sizeof(struct azbuse_sqe));
	ring->region_bytes = PAGE_ALIGN(ring->cq_offset + entries * sizeof(struct azbuse_cqe));
	ring->region = azbuse_vzalloc_account(ring->region_bytes, ring->node);
	if (!ring->region)
		return -ENOMEM;
	ring->cpus = cpus; /* ours from here on */
	ring->cpus_bytes = cpus_bytes;
	ring->hdr = ring->region;
	ring->sq = ring->region + ring->sq_offset;
	ring->cq = ring->region + ring->cq_offset;

	spin_lock_init(&ring->lock);
	mutex_init(&ring->commit_mutex);
	mutex_init(&ring->state_mutex);
	ring->state = AZBUSE_QUEUE_NO_WORKER;
	INIT_DELAYED_WORK(&ring->recovery_work, azbuse_recovery_work);
	atomic_set(&ring->inflight, 0);
	atomic_set(&ring->kicked, 0);
	atomic64_set(&ring->failed, 0);
	atomic64_set(&ring->wakeups, 0);
	atomic64_set(&ring->waits, 0);
	init_waitqueue_head(&ring->wq);
	init_llist_head(&ring->pending);
	return 0;
}

void azbuse_ring_free(struct azbuse_ring *ring)
{
	if (!ring->region)
		return;
	cancel_delayed_work_sync(&ring->recovery_work);
	vfree(ring->region);
	ring->region = NULL;
	kfree(ring->cpus);
	ring->cpus = NULL;
	mutex_destroy(&ring->commit_mutex);
	mutex_destroy(&ring->state_mutex);
}

static int azbuse_rq_op(struct request *rq)
{
	switch (req_op(rq)) {
	case REQ_OP_READ:
		return AZBUSE_OP_READ;
	case REQ_OP_WRITE:
		return AZBUSE_OP_WRITE;
	case REQ_OP_FLUSH:
		return AZBUSE_OP_FLUSH;
	case REQ_OP_DISCARD:
		return AZBUSE_OP_DISCARD;
	case REQ_OP_WRITE_ZEROES:
		return AZBUSE_OP_WRITE_ZEROES;
	case REQ_OP_SECURE_ERASE:
		return AZBUSE_OP_SECURE_ERASE;
	default:
		return -EOPNOTSUPP;
	}
}

static u64 azbuse_rq_flags(struct request *rq)
{
	static const struct {
		blk_opf_t req;
		u64 azbuse;
	} map[] = {
		{ REQ_FUA, AZBUSE_RQ_FUA },
		{ REQ_PREFLUSH, AZBUSE_RQ_PREFLUSH },
		{ REQ_NOUNMAP, AZBUSE_RQ_NOUNMAP },
		{ REQ_SYNC, AZBUSE_RQ_SYNC },
		{ REQ_META, AZBUSE_RQ_META },
		{ REQ_PRIO, AZBUSE_RQ_PRIO },
		{ REQ_RAHEAD, AZBUSE_RQ_RAHEAD },
		{ REQ_BACKGROUND, AZBUSE_RQ_BACKGROUND },
		{ REQ_NOWAIT, AZBUSE_RQ_NOWAIT },
		{ REQ_IDLE, AZBUSE_RQ_IDLE },
		{ REQ_FAILFAST_DEV, AZBUSE_RQ_FAILFAST_DEV },
		{ REQ_FAILFAST_TRANSPORT, AZBUSE_RQ_FAILFAST_TRANSPORT },
		{ REQ_FAILFAST_DRIVER, AZBUSE_RQ_FAILFAST_DRIVER },
		{ REQ_NOMERGE, AZBUSE_RQ_NOMERGE },
		{ REQ_INTEGRITY, AZBUSE_RQ_INTEGRITY },
		{ REQ_POLLED, AZBUSE_RQ_POLLED },
		{ REQ_SWAP, AZBUSE_RQ_SWAP },
#ifdef REQ_ATOMIC
		{ REQ_ATOMIC, AZBUSE_RQ_ATOMIC },
#endif
	};
	blk_opf_t opf = rq->cmd_flags;
	u64 flags = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(map); i++)
		if (opf & map[i].req)
			flags |= map[i].azbuse;
	return flags;
}

static void *azbuse_slot_data(struct azbuse_slot_table *table, u32 tag)
{
	return table->data + (size_t)tag * table->slot_bytes;
}

static void azbuse_copy_from_rq(void *dst, struct request *rq)
{
	struct req_iterator iter;
	struct bio_vec bv;

	rq_for_each_segment (bv, rq, iter) {
		memcpy_from_bvec(dst, &bv);
		dst += bv.bv_len;
	}
}

static void azbuse_copy_to_rq(struct request *rq, const void *src)
{
	struct req_iterator iter;
	struct bio_vec bv;

	rq_for_each_segment (bv, rq, iter) {
		memcpy_to_bvec(&bv, src);
		src += bv.bv_len;
	}
}

/*
 * AZBUSE_CQE_F_COPY: copy between the request's pages and a buffer of the
 * worker's (READ: from it; WRITE: into it). Runs in the worker's COMMIT, so
 * the address is the worker's; it is not trusted: a fault is -EFAULT. The
 * page-wise iov_iter copies are what the page cache uses: a request's pages
 * may be slab memory (a filesystem's small metadata buffers), which
 * copy_{to,from}_user's hardened object checks would refuse when one segment
 * spans two slab objects.
 */
static int azbuse_copy_user(struct request *rq, u64 addr)
{
	bool read = req_op(rq) == REQ_OP_READ;
	struct req_iterator iter;
	struct iov_iter uiter;
	struct bio_vec bv;

	iov_iter_ubuf(&uiter, read ? ITER_SOURCE : ITER_DEST, u64_to_user_ptr(addr),
		      blk_rq_bytes(rq));
	rq_for_each_segment (bv, rq, iter) {
		size_t done =
			read ? copy_page_from_iter(bv.bv_page, bv.bv_offset, bv.bv_len, &uiter)
			     : copy_page_to_iter(bv.bv_page, bv.bv_offset, bv.bv_len, &uiter);

		if (done != bv.bv_len)
			return -EFAULT;
		if (read)
			flush_dcache_page(bv.bv_page);
	}
	return 0;
}

void azbuse_zero_rq(struct request *rq)
{
	struct req_iterator iter;
	struct bio_vec bv;

	rq_for_each_segment (bv, rq, iter)
		memzero_bvec(&bv);
}

static bool azbuse_rq_has_data(struct request *rq)
{
	return req_op(rq) == REQ_OP_READ || req_op(rq) == REQ_OP_WRITE;
}

/*
 * Fill the next submission entry for a slot's request (or its part); the
 * caller holds commit_mutex, which makes it the ring's only producer. The
 * caller publishes sq_tail.
 */
static void azbuse_ring_push(struct azbuse_ring *ring, struct azbuse_slot *slot, u32 seq,
			     u64 extra_flags)
{
	struct azbuse_sqe *sqe = &ring->sq[ring->sq_tail & (ring->sq_entries - 1)];
	struct request *rq = slot->rq;

	if (slot->part)
		extra_flags |= AZBUSE_RQ_SHARD_PART;
	WRITE_ONCE(sqe->sector, slot->sector);
	WRITE_ONCE(sqe->flags, azbuse_rq_flags(rq) | extra_flags);
	WRITE_ONCE(sqe->len, slot->bytes);
	WRITE_ONCE(sqe->tag, rq->tag);
	WRITE_ONCE(sqe->seq, seq);
	WRITE_ONCE(sqe->op, azbuse_rq_op(rq));
	WRITE_ONCE(sqe->reserved0, 0);
	WRITE_ONCE(sqe->ioprio, req_get_ioprio(rq));
	ring->sq_tail++;
}

static void azbuse_ring_publish(struct azbuse_ring *ring)
{
	/* pairs with the worker's load-acquire of sq_tail */
	smp_store_release(&ring->hdr->sq_tail, ring->sq_tail);
}

void azbuse_ring_wake(struct azbuse_ring *ring)
{
	/* wq_has_sleeper() orders the llist_add before the check */
	if (wq_has_sleeper(&ring->wq)) {
		atomic64_inc(&ring->wakeups);
		wake_up(&ring->wq);
	}
}

/*
 * Put a slot on the ring's pending list for the worker's next COMMIT.
 * False if the ring takes no more requests (failed, or the device is dead):
 * then the slot is left as it was.
 */
static bool azbuse_slot_post(struct azbuse_ring *ring, struct azbuse_slot *slot, struct request *rq)
{
	u32 seq;

	/* under ring->lock: a ring marked failed or dead has no request added after */
	spin_lock(&ring->lock);
	if (unlikely(ring->state == AZBUSE_QUEUE_FAILED || READ_ONCE(ring->dev->dead))) {
		spin_unlock(&ring->lock);
		atomic64_inc(&ring->failed);
		return false;
	}
	seq = AZBUSE_SLOT_SEQ(atomic64_read(&slot->word)) + 1;
	slot->rq = rq;
	slot->posted_ns = ktime_get_ns();
	atomic_inc(&ring->inflight);
	atomic64_set_release(&slot->word, AZBUSE_SLOT_WORD(seq, ring->index, AZBUSE_SLOT_PENDING));
	llist_add(&slot->node, &ring->pending);
	WRITE_ONCE(ring->hdr->posted, ++ring->posted);
	spin_unlock(&ring->lock);
	return true;
}

/* The request's slot in a table, or NULL (with a warning) if its tag is not one of ours. */
static struct azbuse_slot *azbuse_rq_slot(struct azbuse_slot_table *table, struct request *rq)
{
	if (unlikely(rq->tag < 0 || rq->tag >= table->nr)) {
		WARN_ON_ONCE(1);
		return NULL;
	}
	return &table->slots[rq->tag];
}

/* lone posts that are not waited for once a submitter showed it keeps a queue */
#define AZBUSE_SYNC_BACKOFF 256
/* of the lone posts that could be waited for, one in this many is a probe */
#define AZBUSE_SYNC_PROBE 8

/*
 * Completion in the submitter's context. When a request is the only one on
 * its ring and the worker is polling in COMMIT for the next (the pattern of
 * depth-1 I/O), the worker will complete it within about the time it takes
 * to serve it: the submitter then waits for that, up to the worker's poll
 * limit, and ends the request itself. Neither side sleeps, so no wake-up
 * (an IPI to an idle CPU) is paid at either end. It gives up at once when
 * another task wants this CPU; the request then completes as usual.
 *
 * That is only worth it for a submitter that would otherwise sleep until
 * the request completes. One that keeps a queue (fio at depth 32 submits
 * one request at a time too, and a fast worker keeps its ring empty) would
 * post its next request later, losing the overlap of submitting and
 * serving. So one lone post in AZBUSE_SYNC_PROBE is a probe, not waited
 * for: if its task posts again without having slept in between (its
 * voluntary context switch count unchanged), or any post finds others in
 * flight, the next AZBUSE_SYNC_BACKOFF lone posts are not waited for. The
 * fields are updated racily from several CPUs: they are hints.
 */
static bool azbuse_sync_worth_it(struct azbuse_ring *ring)
{
	u32 backoff;

	if (READ_ONCE(ring->probe_task) == current) {
		if (current->nvcsw == READ_ONCE(ring->probe_nvcsw))
			WRITE_ONCE(ring->sync_backoff, AZBUSE_SYNC_BACKOFF);
		WRITE_ONCE(ring->probe_task, NULL);
	}
	if (atomic_read(&ring->inflight)) {
		WRITE_ONCE(ring->sync_backoff, AZBUSE_SYNC_BACKOFF);
		return false;
	}
	backoff = READ_ONCE(ring->sync_backoff);
	if (backoff) {
		WRITE_ONCE(ring->sync_backoff, backoff - 1);
		return false;
	}
	if (!READ_ONCE(ring->polling))
		return false;
	if (++ring->sync_tries % AZBUSE_SYNC_PROBE)
		return true;
	WRITE_ONCE(ring->probe_nvcsw, current->nvcsw);
	WRITE_ONCE(ring->probe_task, current);
	return false;
}

static void azbuse_sync_wait(struct azbuse_ring *ring, struct azbuse_slot *slot)
{
	u64 limit = READ_ONCE(ring->poll_max_ns), start = ktime_get_ns();
	int state;

	for (;;) {
		state = atomic_read_acquire(&slot->handoff);
		if (state != AZBUSE_HANDOFF_WAITING)
			break;
		if (need_resched() || ktime_get_ns() - start >= limit) {
			state = atomic_cmpxchg_acquire(&slot->handoff, AZBUSE_HANDOFF_WAITING,
						       AZBUSE_HANDOFF_NONE);
			if (state == AZBUSE_HANDOFF_WAITING)
				return; /* the request completes the usual way */
			break;
		}
		cpu_relax();
	}
	if (WARN_ON_ONCE(state != AZBUSE_HANDOFF_DONE))
		return;
	atomic_set(&slot->handoff, AZBUSE_HANDOFF_NONE);
	atomic64_inc(&ring->sync_ends);
	azbuse_slot_finish(ring, slot, AZBUSE_SLOT_SEQ(atomic64_read(&slot->word)),
			   slot->handoff_status);
}

/*
 * queue_rq's side: hand the request to the ring's pending list and wake the
 * worker if it sleeps. Nothing is copied here: the worker's COMMIT copies
 * write data into the slot on its own CPU (azbuse_ring_fetch), so the
 * submitting CPU pays only for a list insertion.
 */
blk_status_t azbuse_ring_post(struct azbuse_ring *ring, struct request *rq, bool last)
{
	struct azbuse_slot *slot;
	bool sync;

	if (unlikely(azbuse_rq_op(rq) < 0))
		return BLK_STS_NOTSUPP;
	slot = azbuse_rq_slot(ring->table, rq);
	if (!slot)
		return BLK_STS_IOERR;
	/* a flush has no position (blk-mq leaves it at -1): say 0 */
	slot->sector = req_op(rq) == REQ_OP_FLUSH ? 0 : blk_rq_pos(rq);
	slot->bytes = blk_rq_bytes(rq);
	slot->part = false;
	slot->redirects = 0;

	/* decided before posting: once posted, the worker may end it at once */
	sync = last && azbuse_sync_worth_it(ring);
	atomic_set(&slot->handoff, sync ? AZBUSE_HANDOFF_WAITING : AZBUSE_HANDOFF_NONE);
	blk_mq_start_request(rq);
	if (!azbuse_slot_post(ring, slot, rq)) {
		atomic_set(&slot->handoff, AZBUSE_HANDOFF_NONE);
		return BLK_STS_IOERR;
	}
	if (last)
		azbuse_ring_wake(ring);
	if (sync)
		azbuse_sync_wait(ring, slot);
	return BLK_STS_OK;
}

/* Sharded mode: the ring (shard) that owns a sector. */
static struct azbuse_ring *azbuse_shard_of(struct azbuse_dev *dev, u64 sector)
{
	u32 shard;

	div_u64_rem(sector >> dev->chunk_shift, dev->nr_rings, &shard);
	return &dev->rings[shard];
}

/* Sharded mode: the first sector past the chunk that holds this one. */
static u64 azbuse_chunk_end(struct azbuse_dev *dev, u64 sector)
{
	return ((sector >> dev->chunk_shift) + 1) << dev->chunk_shift;
}

/*
 * Sharded mode: set the slot to the part of its request that starts at
 * `sector` and ends at the chunk boundary or the request's end; returns
 * the ring that owns it. A FLUSH has one part per ring, `sector` being the
 * ring's index.
 */
static struct azbuse_ring *azbuse_shard_part(struct azbuse_dev *dev, struct azbuse_slot *slot,
					     struct request *rq, u64 sector)
{
	u64 end;

	if (req_op(rq) == REQ_OP_FLUSH) {
		slot->sector = 0;
		slot->bytes = 0;
		slot->part = dev->nr_rings > 1;
		return &dev->rings[sector];
	}
	end = min_t(u64, blk_rq_pos(rq) + blk_rq_sectors(rq), azbuse_chunk_end(dev, sector));
	slot->sector = sector;
	slot->bytes = (end - sector) << SECTOR_SHIFT;
	slot->part = slot->bytes != blk_rq_bytes(rq);
	return azbuse_shard_of(dev, sector);
}

/*
 * Route by queue: a read or write, whole, to the ring of the hardware queue
 * it came through.
 */
static struct azbuse_ring *azbuse_queue_part(struct azbuse_dev *dev, struct azbuse_slot *slot,
					     struct request *rq)
{
	slot->sector = blk_rq_pos(rq);
	slot->bytes = blk_rq_bytes(rq);
	slot->part = false;
	return &dev->rings[rq->mq_hctx->queue_num % dev->nr_rings];
}

/*
 * Sharded mode, after one part completed: move the slot to the next part
 * and return its ring, or NULL when the request is done.
 */
static struct azbuse_ring *azbuse_shard_next_part(struct azbuse_dev *dev, struct azbuse_slot *slot,
						  struct request *rq, struct azbuse_ring *done)
{
	u64 next;

	if (!dev->sharded)
		return NULL;
	if (req_op(rq) == REQ_OP_FLUSH)
		return done->index + 1 < dev->nr_rings
			       ? azbuse_shard_part(dev, slot, rq, done->index + 1)
			       : NULL;
	next = slot->sector + (slot->bytes >> SECTOR_SHIFT);
	if (next >= blk_rq_pos(rq) + blk_rq_sectors(rq))
		return NULL;
	return azbuse_shard_part(dev, slot, rq, next);
}

/* Sharded mode: wake the shards a hardware queue posted to since it last did. */
void azbuse_shard_wake(struct azbuse_dev *dev, unsigned long *posted)
{
	unsigned int i;

	for_each_set_bit (i, posted, dev->nr_rings)
		if (test_and_clear_bit(i, posted))
			azbuse_ring_wake(&dev->rings[i]);
}

/*
 * Sharded mode's queue_rq: the request goes to the shard that owns its
 * first sector, whichever hardware queue it came through (with route_queue,
 * a READ or WRITE goes to its hardware queue's ring unless to_owner: a
 * direct map said the owner must serve it). Reads and writes
 * never cross a chunk (chunk_sectors); discard, write-zeroes and secure
 * erase may, and then go to each shard in turn, one part at a time.
 * Shards are woken once per batch (`last`, or commit_rqs), as in the
 * unsharded case: a worker woken for a batch's first request would
 * otherwise often take it alone.
 */
blk_status_t azbuse_shard_post(struct azbuse_dev *dev, unsigned long *posted, struct request *rq,
			       bool last, bool to_owner)
{
	struct azbuse_slot *slot;
	struct azbuse_ring *ring;

	if (unlikely(azbuse_rq_op(rq) < 0))
		return BLK_STS_NOTSUPP;
	slot = azbuse_rq_slot(&dev->tables[0], rq);
	if (!slot)
		return BLK_STS_IOERR;
	slot->redirects = 0;
	if (dev->route_queue && azbuse_rq_has_data(rq) && !to_owner)
		ring = azbuse_queue_part(dev, slot, rq);
	else
		ring = azbuse_shard_part(dev, slot, rq,
					 req_op(rq) == REQ_OP_FLUSH ? 0 : blk_rq_pos(rq));
	if (unlikely(azbuse_rq_has_data(rq) && slot->part)) {
		/* chunk_sectors should have prevented this */
		WARN_ON_ONCE(1);
		return BLK_STS_IOERR;
	}

	blk_mq_start_request(rq);
	if (!azbuse_slot_post(ring, slot, rq))
		return BLK_STS_IOERR;
	/* after the post: whoever clears the bit wakes a ring that has the request */
	set_bit(ring->index, posted);
	if (last)
		azbuse_shard_wake(dev, posted);
	return BLK_STS_OK;
}

/* The ring a started request was posted to (for the timeout handler). */
struct azbuse_ring *azbuse_rq_ring(struct azbuse_dev *dev, struct request *rq)
{
	struct azbuse_slot_table *table;
	u32 ring;

	if (!dev->sharded)
		return rq->mq_hctx->driver_data;
	table = &dev->tables[0];
	if (rq->tag < 0 || rq->tag >= table->nr)
		return &dev->rings[0];
	ring = AZBUSE_SLOT_RING(atomic64_read(&table->slots[rq->tag].word));
	return &dev->rings[ring < dev->nr_rings ? ring : 0];
}

/*
 * Move pending requests into the submission ring, copying write data into
 * their slots, in the worker's COMMIT (commit_mutex held). Returns how many.
 */
static u32 azbuse_ring_fetch(struct azbuse_ring *ring)
{
	struct azbuse_slot_table *table = ring->table;
	struct llist_node *list = llist_del_all(&ring->pending);
	bool user_copy = ring->dev->info.features & AZBUSE_F_USER_COPY;
	struct azbuse_slot *slot, *next;
	u32 n = 0;
	u64 now;

	if (!list)
		return 0;
	now = ktime_get_ns();
	llist_for_each_entry_safe (slot, next, llist_reverse_order(list), node) {
		u64 w = atomic64_read_acquire(&slot->word);
		struct request *rq = slot->rq;
		u32 tag = slot - table->slots;

		if (WARN_ON_ONCE(AZBUSE_SLOT_STATE(w) != AZBUSE_SLOT_PENDING))
			continue;
		ring->wait_ns += now - slot->posted_ns;
		/* user copy: the worker names where the data goes when it completes */
		if (req_op(rq) == REQ_OP_WRITE && !user_copy)
			azbuse_copy_from_rq(azbuse_slot_data(table, tag), rq);
		azbuse_ring_push(ring, slot, AZBUSE_SLOT_SEQ(w), 0);
		/* only this path and abort (also under commit_mutex) move a PENDING slot */
		atomic64_set_release(&slot->word, AZBUSE_SLOT_WORD(AZBUSE_SLOT_SEQ(w), ring->index,
								   AZBUSE_SLOT_INFLIGHT));
		n++;
		cond_resched();
	}
	if (n) {
		azbuse_ring_publish(ring);
		ring->fetched += n;
		WRITE_ONCE(ring->hdr->fetched, ring->fetched);
	}
	return n;
}

/* End a request whose slot is COMPLETING, in whichever context finishes it. */
static void azbuse_slot_finish(struct azbuse_ring *ring, struct azbuse_slot *slot, u32 seq,
			       blk_status_t status)
{
	struct request *rq = slot->rq;

	slot->rq = NULL;
	atomic64_set_release(&slot->word, AZBUSE_SLOT_WORD(seq, ring->index, AZBUSE_SLOT_FREE));
	atomic_dec(&ring->inflight);
	blk_mq_end_request(rq, status);
}

/*
 * End a request whose slot the caller has moved to COMPLETING, or hand it to
 * its submitter if that is still waiting in queue_rq (azbuse_sync_wait).
 */
static void azbuse_slot_end(struct azbuse_ring *ring, struct azbuse_slot *slot, u32 seq,
			    blk_status_t status)
{
	if (atomic_read(&slot->handoff) == AZBUSE_HANDOFF_WAITING) {
		slot->handoff_status = status;
		/* release: the waiter reads handoff_status after it sees DONE */
		if (atomic_cmpxchg_release(&slot->handoff, AZBUSE_HANDOFF_WAITING,
					   AZBUSE_HANDOFF_DONE) == AZBUSE_HANDOFF_WAITING)
			return;
	}
	azbuse_slot_finish(ring, slot, seq, status);
}

/* Claim a slot of this ring in this state for ending; false if it is not so. */
static bool azbuse_slot_claim(struct azbuse_ring *ring, struct azbuse_slot *slot, u32 seq,
			      u32 state)
{
	s64 expected = AZBUSE_SLOT_WORD(seq, ring->index, state);

	return atomic64_try_cmpxchg(&slot->word, &expected,
				    AZBUSE_SLOT_WORD(seq, ring->index, AZBUSE_SLOT_COMPLETING));
}

/*
 * Fail every request on this ring: pending ones and those the worker holds.
 * Callers have stopped new posts first (ring failed, or device dead).
 */
void azbuse_ring_abort(struct azbuse_ring *ring, blk_status_t status)
{
	struct azbuse_slot_table *table = ring->table;
	struct llist_node *list;
	struct azbuse_slot *slot, *next;
	u32 i;

	mutex_lock(&ring->commit_mutex);
	list = llist_del_all(&ring->pending);
	llist_for_each_entry_safe (slot, next, list, node) {
		u64 w = atomic64_read_acquire(&slot->word);

		if (!azbuse_slot_claim(ring, slot, AZBUSE_SLOT_SEQ(w), AZBUSE_SLOT_PENDING))
			continue;
		atomic64_inc(&ring->failed);
		azbuse_slot_end(ring, slot, AZBUSE_SLOT_SEQ(w), status);
	}
	for (i = 0; i < table->nr; i++) {
		u64 w;

		slot = &table->slots[i];
		w = atomic64_read_acquire(&slot->word);
		if (AZBUSE_SLOT_STATE(w) != AZBUSE_SLOT_INFLIGHT ||
		    AZBUSE_SLOT_RING(w) != ring->index)
			continue;
		if (!azbuse_slot_claim(ring, slot, AZBUSE_SLOT_SEQ(w), AZBUSE_SLOT_INFLIGHT))
			continue;
		atomic64_inc(&ring->failed);
		azbuse_slot_end(ring, slot, AZBUSE_SLOT_SEQ(w), status);
	}
	mutex_unlock(&ring->commit_mutex);
}

/* The device is dead (dev->dead is set): tell the worker, stop the timer. */
void azbuse_ring_mark_dead(struct azbuse_ring *ring)
{
	mutex_lock(&ring->state_mutex);
	/* after this, queue_rq sees dev->dead and posts nothing more */
	spin_lock(&ring->lock);
	ring->kflags |= AZBUSE_KF_DEAD;
	WRITE_ONCE(ring->hdr->kflags, ring->kflags);
	spin_unlock(&ring->lock);
	mutex_unlock(&ring->state_mutex);
	cancel_delayed_work_sync(&ring->recovery_work);
	wake_up_all(&ring->wq);
}

static void azbuse_recovery_work(struct work_struct *work)
{
	struct azbuse_ring *ring =
		container_of(to_delayed_work(work), struct azbuse_ring, recovery_work);

	mutex_lock(&ring->state_mutex);
	if (!ring->worker && ring->state != AZBUSE_QUEUE_FAILED) {
		spin_lock(&ring->lock);
		WRITE_ONCE(ring->state, AZBUSE_QUEUE_FAILED);
		spin_unlock(&ring->lock);
		pr_warn("azbuse%u: queue %u has had no worker for %u ms: failing its I/O\n",
			ring->dev->id, ring->index, ring->dev->info.recovery_timeout_ms);
		azbuse_ring_abort(ring, BLK_STS_IOERR);
	}
	mutex_unlock(&ring->state_mutex);
}

void azbuse_ring_fill_info(struct azbuse_ring *ring, struct azbuse_queue_info *qi)
{
	qi->state = READ_ONCE(ring->state);
	qi->worker_pid = READ_ONCE(ring->worker_pid);
	qi->inflight = atomic_read(&ring->inflight);
	qi->requests = READ_ONCE(ring->requests);
	qi->bytes = READ_ONCE(ring->bytes);
	qi->commits = READ_ONCE(ring->commits);
	qi->waits = atomic64_read(&ring->waits);
	qi->wakeups = atomic64_read(&ring->wakeups);
	qi->rejected = READ_ONCE(ring->rejected);
	qi->requeued = READ_ONCE(ring->requeued);
	qi->failed = atomic64_read(&ring->failed);
	qi->timeouts = atomic64_read(&ring->timeouts);
	qi->wait_ns = READ_ONCE(ring->wait_ns);
	qi->poll_ns = READ_ONCE(ring->poll_ns);
	qi->poll_hits = READ_ONCE(ring->poll_hits);
	qi->sync_ends = atomic64_read(&ring->sync_ends);
	qi->redirected = READ_ONCE(ring->redirected);
	qi->direct = atomic64_read(&ring->direct);
	qi->errors = READ_ONCE(ring->errors);
}

/*
 * A new worker takes the ring: start it afresh and post again every request
 * the last worker took but never completed; pending ones stay pending for
 * the next fetch. The last worker may have written anything into the data
 * slots it held, so a write's data is copied from the request again. Called
 * with state_mutex held and no worker attached.
 */
static void azbuse_ring_reset_and_repost(struct azbuse_ring *ring)
{
	struct azbuse_slot_table *table = ring->table;
	u32 i;

	/* no COMMIT may run on the old indices while they are reset */
	mutex_lock(&ring->commit_mutex);
	ring->sq_tail = 0;
	ring->cq_head = 0;
	WRITE_ONCE(ring->hdr->sq_tail, 0);
	WRITE_ONCE(ring->hdr->cq_head, 0);
	WRITE_ONCE(ring->hdr->sq_head, 0);
	WRITE_ONCE(ring->hdr->cq_tail, 0);
	for (i = 0; i < table->nr; i++) {
		struct azbuse_slot *slot = &table->slots[i];
		s64 w = atomic64_read_acquire(&slot->word);
		u32 seq = AZBUSE_SLOT_SEQ(w) + 1;

		if (AZBUSE_SLOT_STATE(w) != AZBUSE_SLOT_INFLIGHT ||
		    AZBUSE_SLOT_RING(w) != ring->index)
			continue;
		/* a new sequence number voids anything the old worker left behind */
		if (!atomic64_try_cmpxchg(&slot->word, &w,
					  AZBUSE_SLOT_WORD(seq, ring->index, AZBUSE_SLOT_INFLIGHT)))
			continue;
		/* as a fetch does: the dead worker may have written over the slot */
		if (req_op(slot->rq) == REQ_OP_WRITE &&
		    !(ring->dev->info.features & AZBUSE_F_USER_COPY))
			azbuse_copy_from_rq(azbuse_slot_data(table, i), slot->rq);
		azbuse_ring_push(ring, slot, seq, AZBUSE_RQ_REQUEUED);
		ring->requeued++;
		cond_resched();
	}
	azbuse_ring_publish(ring);
	WRITE_ONCE(ring->hdr->fetched, ring->fetched);
	spin_lock(&ring->lock);
	/* whatever the last worker scribbled over the kernel's fields */
	WRITE_ONCE(ring->hdr->posted, ring->posted);
	WRITE_ONCE(ring->hdr->kflags, ring->kflags);
	WRITE_ONCE(ring->state, AZBUSE_QUEUE_ATTACHED);
	spin_unlock(&ring->lock);
	mutex_unlock(&ring->commit_mutex);
}

static int azbuse_cdev_open(struct inode *inode, struct file *file)
{
	struct azbuse_dev *dev = container_of(inode->i_cdev, struct azbuse_dev, cdev);
	struct azbuse_cfile *cf;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	cf = kzalloc(sizeof(*cf), GFP_KERNEL);
	if (!cf)
		return -ENOMEM;
	get_device(&dev->cdev_dev);
	cf->dev = dev;
	file->private_data = cf;
	return 0;
}

/* The worker is gone: keep its requests for the next one, within the recovery window. */
static void azbuse_detach(struct azbuse_cfile *cf)
{
	struct azbuse_ring *ring = cf->ring;
	struct azbuse_dev *dev = cf->dev;

	mutex_lock(&ring->state_mutex);
	spin_lock(&ring->lock);
	WRITE_ONCE(ring->worker, NULL);
	WRITE_ONCE(ring->worker_pid, 0);
	if (ring->state == AZBUSE_QUEUE_ATTACHED)
		WRITE_ONCE(ring->state, AZBUSE_QUEUE_RECOVERING);
	spin_unlock(&ring->lock);
	if (!READ_ONCE(dev->dead))
		schedule_delayed_work(&ring->recovery_work,
				      msecs_to_jiffies(dev->info.recovery_timeout_ms));
	mutex_unlock(&ring->state_mutex);
	WRITE_ONCE(cf->ring, NULL);
}

static int azbuse_cdev_release(struct inode *inode, struct file *file)
{
	struct azbuse_cfile *cf = file->private_data;
	struct azbuse_ring *ring = cf->ring;
	struct azbuse_dev *dev = cf->dev;

	if (ring)
		azbuse_detach(cf);
	kfree(cf);
	put_device(&dev->cdev_dev);
	return 0;
}

static long azbuse_attach(struct azbuse_cfile *cf, struct azbuse_attach __user *uarg)
{
	struct azbuse_dev *dev = cf->dev;
	struct azbuse_attach a;
	struct azbuse_ring *ring;
	bool attached = false;
	u64 cpus_ptr;
	u32 cpus_bytes;
	int ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.reserved0 || memchr_inv(a.reserved, 0, sizeof(a.reserved)))
		return -EINVAL;
	if (a.poll_us > AZBUSE_MAX_POLL_US)
		return -EINVAL;
	cpus_ptr = a.cpus_ptr;
	cpus_bytes = a.cpus_bytes;
	if (a.queue >= dev->nr_rings)
		return -EINVAL;
	if (cpus_ptr && cpus_bytes < dev->rings[a.queue].cpus_bytes)
		return -ENOSPC;
	ring = &dev->rings[a.queue];
	/* one queue per file, claimed atomically against a racing ATTACH */
	if (cmpxchg(&cf->ring, NULL, ring))
		return -EBUSY;

	mutex_lock(&ring->state_mutex);
	if (READ_ONCE(dev->dead)) {
		ret = -ENODEV;
		goto out_unlock;
	}
	if (ring->worker) {
		ret = -EBUSY;
		goto out_unlock;
	}
	cancel_delayed_work(&ring->recovery_work);
	azbuse_ring_reset_and_repost(ring);
	WRITE_ONCE(ring->poll_max_ns, (u64)a.poll_us * NSEC_PER_USEC);
	ring->idle_ewma_ns = 0;
	WRITE_ONCE(ring->polling, false);
	WRITE_ONCE(ring->worker, cf);
	WRITE_ONCE(ring->worker_pid, task_tgid_vnr(current));
	attached = true;

	memset(&a, 0, sizeof(a));
	a.queue = ring->index;
	a.nr_queues = dev->nr_rings;
	a.sq_entries = ring->sq_entries;
	a.cq_entries = ring->cq_entries;
	a.sq_offset = ring->sq_offset;
	a.cq_offset = ring->cq_offset;
	a.ring_bytes = ring->region_bytes;
	a.slot_bytes = ring->table->slot_bytes;
	a.nr_slots = ring->table->nr;
	a.logical_block_size = dev->info.logical_block_size;
	a.data_bytes = ring->table->data_bytes;
	a.size_bytes = dev->info.size_bytes;
	a.features = dev->info.features;
	a.numa_node = ring->node;
	a.cpus_bytes = ring->cpus_bytes;
out_unlock:
	mutex_unlock(&ring->state_mutex);
	if (!ret && cpus_ptr &&
	    copy_to_user(u64_to_user_ptr(cpus_ptr), ring->cpus, ring->cpus_bytes))
		ret = -EFAULT;
	if (!ret && copy_to_user(uarg, &a, sizeof(a)))
		ret = -EFAULT;
	if (ret && attached)
		azbuse_detach(cf);
	else if (ret)
		WRITE_ONCE(cf->ring, NULL);
	/* this ring may have been waiting for a worker to post its requests to */
	if (!ret)
		azbuse_ring_wake(ring);
	return ret;
}

/*
 * A worker's -errno as a block status. Only statuses that mean "this request
 * failed" are passed on; upper layers treat others (AGAIN, RESOURCE, ...) as
 * instructions, so anything unexpected becomes an I/O error.
 */
static blk_status_t azbuse_result_status(struct request *rq, s32 result)
{
	switch (result) {
	case -ENOSPC:
		return BLK_STS_NOSPC;
	case -EOPNOTSUPP:
		return BLK_STS_NOTSUPP;
	case -ETIMEDOUT:
		return BLK_STS_TIMEOUT;
	case -ENODATA:
	case -EILSEQ:
	case -EBADMSG:
		return BLK_STS_MEDIUM;
	case -EAGAIN:
		return (rq->cmd_flags & REQ_NOWAIT) ? BLK_STS_AGAIN : BLK_STS_IOERR;
	default:
		return BLK_STS_IOERR;
	}
}

/* The ring this file serves, once its ATTACH has completed. */
static struct azbuse_ring *azbuse_attached_ring(struct azbuse_cfile *cf)
{
	struct azbuse_ring *ring = READ_ONCE(cf->ring);

	return ring && READ_ONCE(ring->worker) == cf ? ring : NULL;
}

/*
 * Sharded mode: one part of a request is done (its slot is COMPLETING on
 * this ring); post the next part to its shard. False if there is none, or
 * its shard takes no more requests (then *status is set to an I/O error:
 * the part was not done, so neither is the request): either way the caller
 * ends the request.
 */
static bool azbuse_shard_continue(struct azbuse_ring *ring, struct azbuse_slot *slot,
				  struct request *rq, blk_status_t *status)
{
	struct azbuse_ring *next = azbuse_shard_next_part(ring->dev, slot, rq, ring);

	if (!next)
		return false;
	atomic_dec(&ring->inflight);
	if (!azbuse_slot_post(next, slot, rq)) {
		atomic_inc(&ring->inflight); /* azbuse_slot_end() takes it back */
		*status = BLK_STS_IOERR;
		return false;
	}
	azbuse_ring_wake(next);
	return true;
}

/*
 * Move a successful request's data as its completion says: from the data
 * slot (a READ, by default), from or to the worker's buffer (COPY), or
 * zeros (ZERO, reads only). BLK_STS_IOERR if the flags make no sense for
 * the request (counted as rejected) or the worker's buffer faults.
 */
static blk_status_t azbuse_complete_data(struct azbuse_ring *ring, struct request *rq, u32 tag,
					 u32 flags, u64 addr)
{
	bool read = req_op(rq) == REQ_OP_READ;

	switch (flags) {
	case 0:
		if (read)
			azbuse_copy_to_rq(rq, azbuse_slot_data(ring->table, tag));
		return BLK_STS_OK;
	case AZBUSE_CQE_F_COPY:
		if (!azbuse_rq_has_data(rq))
			break;
		if (azbuse_copy_user(rq, addr)) {
			pr_warn_ratelimited("azbuse%u: queue %u: worker buffer %llx faulted\n",
					    ring->dev->id, ring->index, addr);
			return BLK_STS_IOERR;
		}
		return BLK_STS_OK;
	case AZBUSE_CQE_F_ZERO:
		if (!read)
			break;
		azbuse_zero_rq(rq);
		return BLK_STS_OK;
	}
	ring->rejected++;
	pr_warn_ratelimited("azbuse%u: queue %u: completion flags %x do not fit op %u\n",
			    ring->dev->id, ring->index, flags, req_op(rq));
	return BLK_STS_IOERR;
}

/*
 * AZBUSE_CQE_F_REDIRECT: post the request (or shard part) again, unchanged,
 * to another ring, as shard parts are passed on. BLK_STS_OK if it was;
 * otherwise the status to end it with: IOERR for a redirect that makes no
 * sense (counted as rejected: not sharded, other flags or a result with
 * it, no such ring, its own ring, too many hops, a FLUSH, whose parts go to
 * every ring in turn) or a ring that takes no more requests.
 */
static blk_status_t azbuse_redirect(struct azbuse_ring *ring, struct azbuse_slot *slot,
				    struct request *rq, s32 result, u32 flags, u64 target)
{
	struct azbuse_dev *dev = ring->dev;
	struct azbuse_ring *to;

	if (!dev->sharded || result || flags != AZBUSE_CQE_F_REDIRECT || target >= dev->nr_rings ||
	    target == ring->index || slot->redirects >= AZBUSE_MAX_REDIRECTS ||
	    req_op(rq) == REQ_OP_FLUSH) {
		ring->rejected++;
		pr_warn_ratelimited("azbuse%u: queue %u: cannot redirect tag %d to ring %llu\n",
				    dev->id, ring->index, rq->tag, target);
		return BLK_STS_IOERR;
	}
	to = &dev->rings[target];
	slot->redirects++;
	atomic_dec(&ring->inflight);
	if (!azbuse_slot_post(to, slot, rq)) {
		atomic_inc(&ring->inflight); /* azbuse_slot_end() takes it back */
		return BLK_STS_IOERR;
	}
	ring->redirected++;
	azbuse_ring_wake(to);
	return BLK_STS_OK;
}

/* Complete one request the worker says is done; false if the completion is invalid. */
static bool azbuse_complete_one(struct azbuse_ring *ring, const struct azbuse_cqe *cqe)
{
	struct azbuse_slot_table *table = ring->table;
	u32 tag = READ_ONCE(cqe->tag), seq = READ_ONCE(cqe->seq), flags = READ_ONCE(cqe->flags);
	s32 result = READ_ONCE(cqe->result);
	struct azbuse_slot *slot;
	struct request *rq;
	blk_status_t status = BLK_STS_OK;

	if (tag >= table->nr || (flags & ~AZBUSE_CQE_F_ALL) || READ_ONCE(cqe->reserved))
		return false;
	slot = &table->slots[tag];
	if (!azbuse_slot_claim(ring, slot, seq, AZBUSE_SLOT_INFLIGHT))
		return false;
	rq = slot->rq;
	if (flags & AZBUSE_CQE_F_REDIRECT) {
		status = azbuse_redirect(ring, slot, rq, result, flags, READ_ONCE(cqe->addr));
		if (!status)
			return true;
		azbuse_slot_end(ring, slot, seq, status);
		return true;
	}
	ring->requests++;
	if (result) {
		ring->errors++;
		status = azbuse_result_status(rq, result);
	}
	else
		status = azbuse_complete_data(ring, rq, tag, flags, READ_ONCE(cqe->addr));
	if (azbuse_rq_has_data(rq))
		ring->bytes += blk_rq_bytes(rq);
	else if (!status && azbuse_shard_continue(ring, slot, rq, &status))
		return true;
	azbuse_slot_end(ring, slot, seq, status);
	return true;
}

/* Consume every completion the worker has posted. */
static int azbuse_reap(struct azbuse_ring *ring)
{
	u32 mask = ring->cq_entries - 1;
	u32 tail;

	/* pairs with the worker's store-release of cq_tail */
	tail = smp_load_acquire(&ring->hdr->cq_tail);
	if (tail - ring->cq_head > ring->cq_entries) {
		ring->rejected++;
		pr_warn_ratelimited("azbuse%u: queue %u: worker posted an impossible cq_tail\n",
				    ring->dev->id, ring->index);
		return -EINVAL;
	}
	while (ring->cq_head != tail) {
		if (!azbuse_complete_one(ring, &ring->cq[ring->cq_head & mask]))
			ring->rejected++;
		ring->cq_head++;
		cond_resched();
	}
	/* pairs with the worker's load-acquire of cq_head */
	smp_store_release(&ring->hdr->cq_head, ring->cq_head);
	ring->commits++;
	return 0;
}

static bool azbuse_should_wake(struct azbuse_ring *ring)
{
	return !llist_empty(&ring->pending) ||
	       READ_ONCE(ring->hdr->sq_head) != READ_ONCE(ring->sq_tail) ||
	       atomic_xchg(&ring->kicked, 0) || READ_ONCE(ring->dev->dead);
}

/*
 * Adaptive polling, before COMMIT sleeps: spin for a new request while the
 * waits for work seen lately (idle_ewma_ns) are shorter than the worker's
 * poll limit, giving up at once when another task wants this CPU, a signal
 * or KICK arrives, or the device dies. Saves the sleep and the wake-up
 * (an IPI when the worker's CPU went idle) when requests come back to back.
 *
 * Polling changes what it measures: while the worker polls, depth-1
 * submitters end their requests themselves (azbuse_sync_wait) and come back
 * sooner than when both sides sleep. So once the average says "too slow",
 * one wait in AZBUSE_POLL_PROBE still polls, and a hit restarts polling
 * (azbuse_poll_account). An idle device pays one poll limit per that many
 * requests. Returns true if a request came; *spent gets the time polled.
 */
#define AZBUSE_POLL_PROBE 8

static bool azbuse_poll_pending(struct azbuse_ring *ring, u64 start, u64 *spent)
{
	u64 limit = READ_ONCE(ring->poll_max_ns), now = start;
	bool found = false;

	*spent = 0;
	if (!limit)
		return false;
	if (READ_ONCE(ring->idle_ewma_ns) > limit && ++ring->poll_skips % AZBUSE_POLL_PROBE)
		return false;
	WRITE_ONCE(ring->polling, true);
	do {
		if (!llist_empty(&ring->pending)) {
			found = true;
			break;
		}
		if (need_resched() || signal_pending(current) || atomic_read(&ring->kicked) ||
		    READ_ONCE(ring->dev->dead))
			break;
		cpu_relax();
		now = ktime_get_ns();
	} while (now - start < limit);
	WRITE_ONCE(ring->polling, false);
	*spent = now - start;
	return found;
}

/* After a wait for work (polled or slept): the poll counters and the idle average. */
static void azbuse_poll_account(struct azbuse_ring *ring, u64 start, u64 polled_ns, bool hit)
{
	u64 waited = ktime_get_ns() - start;
	/* one long idle spell must not keep polling off for long once work is back */
	u64 sample = min(waited, 2 * ring->poll_max_ns);

	ring->poll_ns += polled_ns;
	if (hit) {
		ring->poll_hits++;
		/* a hit is proof enough: poll again from the next wait on */
		WRITE_ONCE(ring->idle_ewma_ns, min(ring->idle_ewma_ns, sample));
		return;
	}
	WRITE_ONCE(ring->idle_ewma_ns,
		   ring->idle_ewma_ns - (ring->idle_ewma_ns >> 3) + (sample >> 3));
}

/*
 * COMMIT: complete what the worker posted, hand it what is pending, and if
 * there is nothing for it and it asked to wait, poll a little (see
 * azbuse_poll_pending), then sleep until there is.
 */
static long azbuse_commit(struct azbuse_cfile *cf, unsigned long timeout_ms)
{
	struct azbuse_ring *ring = azbuse_attached_ring(cf);
	u64 start = 0, polled_ns = 0;
	bool polled = false;
	u32 fetched;
	long left;
	int ret;

	if (!ring)
		return -ENXIO;
	mutex_lock(&ring->commit_mutex);
	ret = azbuse_reap(ring);
	fetched = azbuse_ring_fetch(ring);
	mutex_unlock(&ring->commit_mutex);
	if (ret)
		return ret;
	if (READ_ONCE(cf->dev->dead))
		return -ENODEV;
	if (!timeout_ms || fetched)
		return 0;

	if (READ_ONCE(ring->poll_max_ns)) {
		start = ktime_get_ns();
		polled = azbuse_poll_pending(ring, start, &polled_ns);
	}
	if (!polled) {
		atomic64_inc(&ring->waits);
		left = wait_event_interruptible_timeout(ring->wq, azbuse_should_wake(ring),
							timeout_ms == AZBUSE_WAIT_FOREVER
								? MAX_SCHEDULE_TIMEOUT
								: msecs_to_jiffies(timeout_ms));
		if (left < 0)
			return -EINTR;
	}
	mutex_lock(&ring->commit_mutex);
	azbuse_ring_fetch(ring);
	if (start)
		azbuse_poll_account(ring, start, polled_ns, polled);
	mutex_unlock(&ring->commit_mutex);
	if (READ_ONCE(cf->dev->dead))
		return -ENODEV;
	return 0;
}

static long azbuse_cdev_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct azbuse_cfile *cf = file->private_data;
	struct azbuse_ring *ring;

	switch (cmd) {
	case AZBUSE_IOC_COMMIT:
		return azbuse_commit(cf, arg);
	case AZBUSE_IOC_KICK:
		ring = azbuse_attached_ring(cf);
		if (!ring)
			return -ENXIO;
		atomic_set(&ring->kicked, 1);
		wake_up(&ring->wq);
		return 0;
	case AZBUSE_IOC_ATTACH:
		return azbuse_attach(cf, (struct azbuse_attach __user *)arg);
	case AZBUSE_IOC_SET_BACKING:
		ring = azbuse_attached_ring(cf);
		if (!ring)
			return -ENXIO;
		return azbuse_direct_set_backing(ring, (struct azbuse_backing __user *)arg);
	case AZBUSE_IOC_MAP_SYNC:
		ring = azbuse_attached_ring(cf);
		if (!ring)
			return -ENXIO;
		return azbuse_direct_sync(ring->dev);
	default:
		return -ENOTTY;
	}
}

/*
 * poll: readable when COMMIT has something to hand the attached worker (a
 * pending request, or submissions it has not consumed) or it was kicked;
 * hung up once the device is dead. A worker that also waits for its own
 * I/O (an io_uring's completions) waits for both in one poll(2) and then
 * calls COMMIT without a timeout. The kick is consumed here, as COMMIT's
 * wait consumes it.
 */
static __poll_t azbuse_cdev_poll(struct file *file, poll_table *wait)
{
	struct azbuse_cfile *cf = file->private_data;
	struct azbuse_ring *ring = azbuse_attached_ring(cf);

	if (!ring)
		return EPOLLERR;
	poll_wait(file, &ring->wq, wait);
	if (READ_ONCE(ring->dev->dead))
		return EPOLLIN | EPOLLRDNORM | EPOLLHUP;
	if (!llist_empty(&ring->pending) ||
	    READ_ONCE(ring->hdr->sq_head) != READ_ONCE(ring->sq_tail) ||
	    atomic_xchg(&ring->kicked, 0))
		return EPOLLIN | EPOLLRDNORM;
	return 0;
}

/* Map a vmalloc'ed area into the worker, page by page. */
static int azbuse_map_vmalloc(struct vm_area_struct *vma, void *base, size_t len)
{
	unsigned long addr = vma->vm_start;
	size_t off;
	int ret;

	for (off = 0; off < len; off += PAGE_SIZE, addr += PAGE_SIZE) {
		ret = vm_insert_page(vma, addr, vmalloc_to_page(base + off));
		if (ret)
			return ret;
		cond_resched();
	}
	return 0;
}

static int azbuse_cdev_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct azbuse_cfile *cf = file->private_data;
	struct azbuse_ring *ring = azbuse_attached_ring(cf);
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	size_t len = vma->vm_end - vma->vm_start;
	void *base;

	if (!ring)
		return -ENXIO;
	if (off == AZBUSE_MMAP_MAP_OFF)
		return azbuse_direct_mmap(ring->dev, vma);
	if (off == AZBUSE_MMAP_RING_OFF && len == ring->region_bytes)
		base = ring->region;
	else if (off == AZBUSE_MMAP_DATA_OFF && len == PAGE_ALIGN(ring->table->data_bytes))
		base = ring->table->data;
	else
		return -EINVAL;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	azbuse_vma_set_flags(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY);
	return azbuse_map_vmalloc(vma, base, len);
}

const struct file_operations azbuse_cdev_fops = {
	.owner = THIS_MODULE,
	.open = azbuse_cdev_open,
	.release = azbuse_cdev_release,
	.unlocked_ioctl = azbuse_cdev_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = azbuse_cdev_mmap,
	.poll = azbuse_cdev_poll,
	.llseek = noop_llseek,
};
