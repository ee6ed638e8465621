// SPDX-License-Identifier: GPL-2.0
/*
 * azbuse_cache.c - reads served from the device's RAM cache by the module
 * itself (AZBUSE_CTL_CACHE_ATTACH). The cache (cache/ in userspace) lives in
 * a region that the device's supervisor shares with its workers. The module
 * pins that region's pages, maps them contiguously (vmap) and, in queue_rq,
 * looks each block of a READ up in the region's hash index. A read whose
 * blocks are all there is copied into the request and ended at once: no
 * ring, no worker, no wake-up, as dm-cache serves a hit. Anything else (a
 * miss, a partition being changed, a read that is not whole blocks, the
 * pass-through mode, LRU, whose hits must move blocks under the lock) goes to
 * the rings as before, and the worker serves it.
 *
 * Nothing in the region is trusted: it is userspace's memory. Its header is
 * copied and checked once, at attach. A partition's offsets and every slot
 * index are checked against the region's length at each lookup, and a hash
 * chain is followed at most AZBUSE_CACHE_CHAIN_MAX steps. A bad value can
 * make a read miss, or (from a supervisor that lies) return wrong data that
 * its workers could return anyway; it cannot make the module touch memory
 * outside the region.
 *
 * Consistency: a partition's change counter is odd while userspace holds the
 * partition's lock (cache.c, part_lock). A lookup reads it (even), then the
 * index and the block's data, then the counter again; the same value means
 * that nothing in the partition changed meanwhile (a seqcount). Every change
 * to the index and to an indexed block's data is made under that lock, so
 * what was copied is the block as it was at one moment. Blocks of one read
 * are checked one by one, as the workers read them one by one under their
 * partitions' locks.
 *
 * S3-FIFO needs only a hit count per block, which the module raises without
 * the lock: a hint, as in the policy's own lock-free design (a racing change
 * may lose one increment or give it to the slot's next block). LRU must move
 * a block on every hit, under the lock, so its hits stay with the workers.
 *
 * Lifetime: queue_rq reads the attachment under RCU; detaching unpublishes
 * it, waits for a grace period, then unmaps and unpins the pages.
 */
#define pr_fmt(fmt) "azbuse: " fmt

#include <linux/blk-mq.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "azbuse_int.h"

#define AZBUSE_CACHE_CHAIN_MAX 64	    /* a longer hash chain: a miss */
#define AZBUSE_CACHE_MAX_BYTES (1ULL << 40) /* regions are smaller (azbuse_cache_map) */
#define AZBUSE_CACHE_PIN_BATCH 65536	    /* pages pinned per call */

static bool serve_cache_hits = true;
module_param(serve_cache_hits, bool, 0644);
MODULE_PARM_DESC(
	serve_cache_hits,
	"Serve reads that a device's attached RAM cache holds without a worker (default: on)");

/* An attached region: its pages and what its header said at attach. */
struct azbuse_kcache {
	struct page **pages;
	unsigned long nr_pages;
	u8 *base; /* vmap of pages */
	u64 len;
	u32 block_shift;
	u32 nr_parts;
	u64 part_off;
	u32 part_stride;
	u32 slot_stride;
	u64 qstat_off;
	u32 queues;
	u32 qstat_stride;
};

/* One block found: where its data is, and the partition state it was found in. */
struct azbuse_cache_hit {
	const u8 *data;
	struct azbuse_cache_part *part;
	struct azbuse_cache_slot *slot;
	u32 change;
};

/* Does [off, off + count * size) lie within the region? */
static bool azbuse_cache_within(const struct azbuse_kcache *kc, u64 off, u64 count, u64 size)
{
	return off <= kc->len && count <= div64_u64(kc->len - off, size);
}

static bool azbuse_cache_stride_ok(u32 stride, size_t least)
{
	return stride >= least && IS_ALIGNED(stride, 8);
}

/* The header, copied once: -EINVAL unless it describes a region within len. */
static int azbuse_cache_read_header(struct azbuse_kcache *kc)
{
	const struct azbuse_cache_region *hdr = (const void *)kc->base;
	u32 block_size = READ_ONCE(hdr->block_size);

	if (READ_ONCE(hdr->magic) != AZBUSE_CACHE_MAGIC || READ_ONCE(hdr->region_bytes) > kc->len)
		return -EINVAL;
	if (!is_power_of_2(block_size) || block_size < SECTOR_SIZE || block_size > SZ_1M)
		return -EINVAL;
	kc->block_shift = ilog2(block_size);
	kc->nr_parts = READ_ONCE(hdr->nr_parts);
	kc->part_off = READ_ONCE(hdr->part_off);
	kc->part_stride = READ_ONCE(hdr->part_stride);
	kc->slot_stride = READ_ONCE(hdr->slot_stride);
	kc->qstat_off = READ_ONCE(hdr->qstat_off);
	kc->queues = READ_ONCE(hdr->queues);
	kc->qstat_stride = READ_ONCE(hdr->qstat_stride);
	if (!kc->nr_parts || kc->nr_parts > AZBUSE_CACHE_MAX_PARTS || kc->queues > U16_MAX + 1)
		return -EINVAL;
	if (!azbuse_cache_stride_ok(kc->part_stride, sizeof(struct azbuse_cache_part)) ||
	    !azbuse_cache_stride_ok(kc->slot_stride, sizeof(struct azbuse_cache_slot)) ||
	    !azbuse_cache_stride_ok(kc->qstat_stride, sizeof(struct azbuse_cache_qstat)))
		return -EINVAL;
	if (!IS_ALIGNED(kc->part_off, 8) || !IS_ALIGNED(kc->qstat_off, 8) ||
	    !azbuse_cache_within(kc, kc->part_off, kc->nr_parts, kc->part_stride) ||
	    !azbuse_cache_within(kc, kc->qstat_off, kc->queues, kc->qstat_stride))
		return -EINVAL;
	return 0;
}

static void azbuse_cache_unmap(struct azbuse_kcache *kc, unsigned long pinned)
{
	if (kc->base)
		vunmap(kc->base);
	/* the module wrote hit counts and counters into them */
	unpin_user_pages_dirty_lock(kc->pages, pinned, true);
	kvfree(kc->pages);
	kfree(kc);
}

/*
 * Anonymous or shmem memory only. A long-term pin of a file's page cache,
 * which 6.1's GUP still allows (6.5 and later refuse it themselves), would
 * have the module write to pages behind the filesystem's back. Checked on
 * the pinned pages, which cannot change under the check.
 */
static int azbuse_cache_check_pages(const struct azbuse_kcache *kc)
{
	struct folio *folio;
	unsigned long i;

	for (i = 0; i < kc->nr_pages; i++) {
		folio = page_folio(kc->pages[i]);
		/* (anon also when MADV_FREE cleared swapbacked; shmem is swapbacked) */
		if (!folio_test_anon(folio) && !folio_test_swapbacked(folio))
			return -EINVAL;
	}
	return 0;
}

/* Pin and map the caller's region [addr, addr + len), and check its header. */
static struct azbuse_kcache *azbuse_cache_map(u64 addr, u64 len)
{
	unsigned long pinned = 0;
	struct azbuse_kcache *kc;
	int ret;

	/* (below 1 TiB: a page array of 2^31 bytes would pass kvmalloc's INT_MAX and WARN) */
	if (!PAGE_ALIGNED(addr) || !PAGE_ALIGNED(len) || len < PAGE_SIZE ||
	    len >= AZBUSE_CACHE_MAX_BYTES || addr + len < addr)
		return ERR_PTR(-EINVAL);
	kc = kzalloc(sizeof(*kc), GFP_KERNEL);
	if (!kc)
		return ERR_PTR(-ENOMEM);
	kc->len = len;
	kc->nr_pages = len >> PAGE_SHIFT;
	kc->pages = kvmalloc_array(kc->nr_pages, sizeof(*kc->pages), GFP_KERNEL);
	if (!kc->pages) {
		kfree(kc);
		return ERR_PTR(-ENOMEM);
	}
	while (pinned < kc->nr_pages) {
		int want = min_t(unsigned long, kc->nr_pages - pinned, AZBUSE_CACHE_PIN_BATCH);

		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			goto fail;
		}
		ret = pin_user_pages_fast(addr + ((u64)pinned << PAGE_SHIFT), want,
					  FOLL_WRITE | FOLL_LONGTERM, kc->pages + pinned);
		if (ret <= 0) {
			ret = ret ? ret : -EFAULT;
			goto fail;
		}
		pinned += ret;
		cond_resched();
	}
	ret = azbuse_cache_check_pages(kc);
	if (ret) {
		unpin_user_pages(kc->pages, pinned); /* (untouched: not dirtied) */
		kvfree(kc->pages);
		kfree(kc);
		return ERR_PTR(ret);
	}
	kc->base = vmap(kc->pages, kc->nr_pages, VM_MAP, PAGE_KERNEL);
	if (!kc->base) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = azbuse_cache_read_header(kc);
	if (ret)
		goto fail;
	return kc;
fail:
	azbuse_cache_unmap(kc, pinned);
	return ERR_PTR(ret);
}

/* Replace dev's attachment with kc (NULL: none); the old one goes once no reader has it. */
static int azbuse_cache_swap(struct azbuse_dev *dev, struct azbuse_kcache *kc)
{
	struct azbuse_kcache *old;

	mutex_lock(&dev->cache_mutex);
	/* a removal claimed the device before its teardown detaches: none after that */
	if (kc && (READ_ONCE(dev->removing) || READ_ONCE(dev->dead))) {
		mutex_unlock(&dev->cache_mutex);
		return -ENODEV;
	}
	old = rcu_replace_pointer(dev->kcache, kc, lockdep_is_held(&dev->cache_mutex));
	mutex_unlock(&dev->cache_mutex);
	if (old) {
		synchronize_rcu();
		azbuse_cache_unmap(old, old->nr_pages);
	}
	return 0;
}

int azbuse_cache_attach(const struct azbuse_cache_attach *a)
{
	struct azbuse_kcache *kc = NULL;
	struct azbuse_dev *dev;
	u32 block_shift = 0;
	int ret;

	if (a->flags || memchr_inv(a->reserved, 0, sizeof(a->reserved)))
		return -EINVAL;
	if (a->dev_id >= AZBUSE_MAX_DEVICES)
		return -ENOENT;
	dev = azbuse_dev_get(a->dev_id);
	if (!dev)
		return -ENOENT;
	if (a->len) {
		kc = azbuse_cache_map(a->addr, a->len);
		if (IS_ERR(kc)) {
			azbuse_dev_put(dev);
			return PTR_ERR(kc);
		}
		block_shift = kc->block_shift;
	}
	/* (once swapped in, kc is another detach's to free: not read after) */
	ret = azbuse_cache_swap(dev, kc);
	if (ret)
		azbuse_cache_unmap(kc, kc->nr_pages);
	else if (kc)
		pr_info("azbuse%u: serving reads from its cache (%llu MiB region, %u-byte "
			"blocks)\n",
			dev->id, a->len >> 20, 1U << block_shift);
	azbuse_dev_put(dev);
	return ret;
}

/* Teardown, a takeover, the owner gone: no more hits from this region. */
void azbuse_cache_detach(struct azbuse_dev *dev)
{
	azbuse_cache_swap(dev, NULL);
}

/* The device is being freed: nothing can read its attachment any more. */
void azbuse_cache_free(struct azbuse_dev *dev)
{
	struct azbuse_kcache *kc = rcu_dereference_protected(dev->kcache, true);

	if (kc)
		azbuse_cache_unmap(kc, kc->nr_pages);
	RCU_INIT_POINTER(dev->kcache, NULL);
	mutex_destroy(&dev->cache_mutex);
}

/* Find block blk in the index: false if it is not there whole (or the partition is changing). */
static bool azbuse_cache_lookup(const struct azbuse_kcache *kc, u64 blk,
				struct azbuse_cache_hit *hit)
{
	u64 slot_off, bucket_off, data_off;
	u32 part, nr_slots, nr_buckets, i, steps;
	struct azbuse_cache_slot *slot = NULL;
	struct azbuse_cache_part *p;
	const u32 *buckets;
	u8 state;

	div_u64_rem(azbuse_cache_mix64(blk), kc->nr_parts, &part);
	p = (void *)(kc->base + kc->part_off + (u64)part * kc->part_stride);
	hit->change = READ_ONCE(p->change);
	if (hit->change & 1)
		return false;
	smp_rmb(); /* the counter before what it guards */
	slot_off = READ_ONCE(p->slot_off);
	bucket_off = READ_ONCE(p->bucket_off);
	data_off = READ_ONCE(p->data_off);
	nr_slots = READ_ONCE(p->nr_slots);
	nr_buckets = READ_ONCE(p->nr_buckets);
	if (!is_power_of_2(nr_buckets) || !IS_ALIGNED(bucket_off, 4) || !IS_ALIGNED(slot_off, 8) ||
	    !azbuse_cache_within(kc, bucket_off, nr_buckets, sizeof(u32)) ||
	    !azbuse_cache_within(kc, slot_off, nr_slots, kc->slot_stride) ||
	    !azbuse_cache_within(kc, data_off, nr_slots, 1ULL << kc->block_shift))
		return false;
	buckets = (const u32 *)(kc->base + bucket_off);
	i = READ_ONCE(buckets[azbuse_cache_bucket_hash(blk) & (nr_buckets - 1)]);
	for (steps = 0; i != AZBUSE_CACHE_NIL; steps++) {
		if (i >= nr_slots || steps == AZBUSE_CACHE_CHAIN_MAX)
			return false;
		slot = (void *)(kc->base + slot_off + (u64)i * kc->slot_stride);
		if (READ_ONCE(slot->blk) == blk)
			break;
		i = READ_ONCE(slot->hnext);
	}
	if (i == AZBUSE_CACHE_NIL)
		return false;
	state = READ_ONCE(slot->state);
	if (state != AZBUSE_CACHE_SLOT_CLEAN && state != AZBUSE_CACHE_SLOT_DIRTY)
		return false;
	hit->part = p;
	hit->slot = slot;
	hit->data = kc->base + data_off + ((u64)i << kc->block_shift);
	return true;
}

/* The block was copied: did its partition stay as it was? Then count the hit. */
static bool azbuse_cache_hit_end(const struct azbuse_cache_hit *hit)
{
	u8 freq;

	smp_rmb(); /* what was copied before the counter */
	if (READ_ONCE(hit->part->change) != hit->change)
		return false;
	freq = READ_ONCE(hit->slot->freq);
	if (freq < AZBUSE_CACHE_FREQ_MAX)
		WRITE_ONCE(hit->slot->freq, freq + 1);
	return true;
}

/* Copy every block of rq from the cache: false at the first one it does not hold. */
static bool azbuse_cache_copy(const struct azbuse_kcache *kc, struct request *rq, u64 first)
{
	u32 mask = (1U << kc->block_shift) - 1;
	struct azbuse_cache_hit hit;
	struct req_iterator iter;
	struct bio_vec bv;
	u64 done = 0;

	rq_for_each_segment (bv, rq, iter) {
		u32 off = 0;

		while (off < bv.bv_len) {
			u32 in = done & mask, n = min(bv.bv_len - off, mask + 1 - in);

			if (!in &&
			    !azbuse_cache_lookup(kc, first + (done >> kc->block_shift), &hit))
				return false;
			memcpy_to_page(bv.bv_page, bv.bv_offset + off, hit.data + in, n);
			off += n;
			done += n;
			if (!(done & mask) && !azbuse_cache_hit_end(&hit))
				return false;
		}
	}
	return true;
}

static void azbuse_cache_count(const struct azbuse_kcache *kc, u32 queue, u64 blocks)
{
	struct azbuse_cache_qstat *qs;

	if (queue >= kc->queues)
		return;
	qs = (void *)(kc->base + kc->qstat_off + (u64)queue * kc->qstat_stride);
	atomic64_inc((atomic64_t *)&qs->module_hits);
	atomic64_add(blocks, (atomic64_t *)&qs->module_blocks);
}

/*
 * queue_rq: a READ of whole blocks that the attached cache holds is copied
 * from it and ended here (true). false: the rings serve rq; whatever was
 * copied into it is overwritten then.
 */
bool azbuse_cache_try(struct azbuse_dev *dev, struct blk_mq_hw_ctx *hctx, struct request *rq)
{
	const struct azbuse_cache_region *hdr;
	u64 pos = blk_rq_pos(rq) << SECTOR_SHIFT;
	u32 len = blk_rq_bytes(rq);
	struct azbuse_kcache *kc;
	bool served = false;

	if (req_op(rq) != REQ_OP_READ || !len || !READ_ONCE(serve_cache_hits))
		return false;
	rcu_read_lock();
	kc = rcu_dereference(dev->kcache);
	if (!kc || !IS_ALIGNED(pos | len, 1U << kc->block_shift))
		goto out;
	hdr = (const void *)kc->base;
	if (READ_ONCE(hdr->mode) == AZBUSE_CACHE_MODE_PASSTHROUGH ||
	    READ_ONCE(hdr->policy) != AZBUSE_CACHE_POLICY_S3FIFO)
		goto out;
	served = azbuse_cache_copy(kc, rq, pos >> kc->block_shift);
	if (served)
		azbuse_cache_count(kc, hctx->queue_num, len >> kc->block_shift);
out:
	rcu_read_unlock();
	if (served) {
		blk_mq_start_request(rq);
		blk_mq_end_request(rq, BLK_STS_OK);
	}
	return served;
}
