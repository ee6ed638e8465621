// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cache.c - the RAM cache tier's shared region (see cache.h): partitions of
 * slots, each with a hash index, its eviction queues, a ghost table and a
 * robust lock; S3-FIFO and LRU eviction; the cleaner's walk over dirty
 * blocks; the rebuild of a partition whose lock a dead worker held.
 */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <azbuse/uapi.h>

#include "cache.h"

/* The module reads the region too (AZBUSE_CTL_CACHE_ATTACH): its layout,
 * slot states, modes and hashes are the ones uapi.h describes. */
#define AZC_MAGIC AZBUSE_CACHE_MAGIC
#define NIL AZBUSE_CACHE_NIL
#define PARTS_MAX AZBUSE_CACHE_MAX_PARTS
#define BLOCKS_PER_PART 4096
#define FREQ_MAX AZBUSE_CACHE_FREQ_MAX
#define SMALL_SHARE 10	    /* the small FIFO holds 1/10 of a partition's slots */
#define STAMP_BUCKETS 65536 /* write stamps: buckets of block numbers */
#define NO_OWNER UINT16_MAX
#define DIRTY_LOW_PCT 10
#define DIRTY_HIGH_PCT 40
#define DIRTY_MAX_PCT 90		/* the room reads keep: past it, new dirty blocks wait */
#define DIRTY_URGENT_PCT 80		/* past it, write-backs no longer wait for a quiet turn */
#define SEQ_CUTOFF_DEFAULT (4ULL << 20) /* as bcache's sequential_cutoff */

enum slot_state { SLOT_FREE = 0, SLOT_BUSY = 1, SLOT_CLEAN = 2, SLOT_DIRTY = 3 };
enum slot_queue { Q_NONE = 0, Q_SMALL = 1, Q_MAIN = 2, Q_COUNT = 3 };

struct azc_slot {
	uint64_t blk;
	uint64_t seq;	/* the global clock when its data was put: the newest of two copies wins */
	uint64_t since; /* dirty: no write before this clock value is missing from the store */
	uint32_t prev;	/* queue links, slot indexes in the partition */
	uint32_t next;	/* (also the free list's link) */
	uint32_t hnext;
	uint16_t owner;	   /* dirty: the queue the engine sent its write-back to, or NO_OWNER */
	uint16_t fail_gen; /* dirty: its write-back failed in this retry generation */
	uint8_t state;
	uint8_t queue;
	uint8_t freq;
	uint8_t written; /* dirty: written again since the cleaner last passed it */
};

struct azc_queue {
	uint32_t head, tail, len, pad0;
};

struct azc_part {
	union {
		pthread_mutex_t lock;
		uint8_t lock_space[AZBUSE_CACHE_LOCK_BYTES];
	};
	uint64_t slot_off, bucket_off, ghost_off, data_off; /* from the region's start */
	uint32_t nr_slots, nr_buckets;			    /* buckets: a power of two */
	uint32_t limit;		 /* slots in use: [0, limit) (azc_resize) */
	_Atomic uint32_t change; /* odd while the lock is held: the module's seqcount */
	uint32_t free_head, used, dirty, pad0;
	struct azc_queue q[Q_COUNT];
	uint64_t seq;
	uint64_t hits, misses, inserts, evictions, cleaned, recoveries;
} __attribute__((aligned(64)));

struct azc_stamp {
	_Atomic uint64_t last;	   /* the global counter at the last write's start or end */
	_Atomic uint32_t writing;  /* writes to the store in flight */
	_Atomic uint32_t reading;  /* reads that must see the dirty blocks (azc_read_begin) */
	_Atomic uint32_t cleaning; /* 1: a write-back of one of its blocks is in flight */
	uint32_t pad0;
};

enum inflight_kind { IN_WRITE = 1, IN_READ = 2, IN_CLEAN = 3 };

/* A request in flight: what azc_queue_reset ends if its worker dies. */
struct azc_inflight {
	uint64_t first;
	_Atomic uint32_t n; /* 0: none */
	uint32_t kind;
};

struct azc_cache {
	/* what the module reads: struct azbuse_cache_region */
	uint64_t magic;
	uint64_t region_bytes;
	uint32_t block_size;
	uint32_t nr_parts;
	_Atomic uint32_t policy;
	_Atomic uint32_t mode;
	uint64_t part_off;
	uint32_t part_stride, slot_stride;
	uint64_t qstat_off; /* per queue: struct azc_qstat */
	uint32_t queues;    /* (also of the inflight records) */
	uint32_t qstat_stride;
	/* userspace's own */
	uint32_t tags; /* of the inflight records */
	uint64_t stamp_off;
	_Atomic uint64_t clock; /* the global write counter */
	uint64_t inflight_off;
	uint64_t pid_off;	       /* the workers' pids, one per queue (azc_set_worker) */
	uint64_t nr_slots;	       /* allocated */
	_Atomic uint64_t capacity;     /* in use: the partitions' limits */
	_Atomic uint64_t dirty;	       /* dirty blocks in all partitions */
	_Atomic uint64_t clean_target; /* write back every block dirty since this or before */
	_Atomic uint32_t hold;	       /* > 0: writes are not kept dirty (azc_drain_begin) */
	_Atomic uint32_t low_pct, high_pct;
	_Atomic uint32_t cleaning;   /* dirty went above high and not yet back to low */
	_Atomic uint32_t retry_gen;  /* failed write-backs are tried again once it moves */
	_Atomic uint64_t seq_cutoff; /* bytes: a longer sequential stream bypasses (0: never) */
	_Atomic uint32_t pinned;     /* the module holds the pages (azc_set_pinned) */
};

/* One queue's counters (its worker adds to them, and the module to module_*). */
struct azc_qstat {
	_Atomic uint64_t read_hits, read_misses, absorbed, through, bypassed, writebacks,
		writeback_errors, module_hits, module_blocks;
} __attribute__((aligned(64)));

#define AZC_SAME(ours, field, theirs)                                                              \
	_Static_assert(offsetof(struct ours, field) == offsetof(struct theirs, field) &&           \
			       sizeof(((struct ours *)0)->field) ==                                \
				       sizeof(((struct theirs *)0)->field),                        \
		       #ours "." #field " is not where the module reads it")
AZC_SAME(azc_cache, magic, azbuse_cache_region);
AZC_SAME(azc_cache, region_bytes, azbuse_cache_region);
AZC_SAME(azc_cache, block_size, azbuse_cache_region);
AZC_SAME(azc_cache, nr_parts, azbuse_cache_region);
AZC_SAME(azc_cache, policy, azbuse_cache_region);
AZC_SAME(azc_cache, mode, azbuse_cache_region);
AZC_SAME(azc_cache, part_off, azbuse_cache_region);
AZC_SAME(azc_cache, part_stride, azbuse_cache_region);
AZC_SAME(azc_cache, slot_stride, azbuse_cache_region);
AZC_SAME(azc_cache, qstat_off, azbuse_cache_region);
AZC_SAME(azc_cache, queues, azbuse_cache_region);
AZC_SAME(azc_cache, qstat_stride, azbuse_cache_region);
AZC_SAME(azc_part, slot_off, azbuse_cache_part);
AZC_SAME(azc_part, bucket_off, azbuse_cache_part);
AZC_SAME(azc_part, data_off, azbuse_cache_part);
AZC_SAME(azc_part, nr_slots, azbuse_cache_part);
AZC_SAME(azc_part, nr_buckets, azbuse_cache_part);
AZC_SAME(azc_part, change, azbuse_cache_part);
AZC_SAME(azc_slot, blk, azbuse_cache_slot);
AZC_SAME(azc_slot, hnext, azbuse_cache_slot);
AZC_SAME(azc_slot, state, azbuse_cache_slot);
AZC_SAME(azc_slot, freq, azbuse_cache_slot);
AZC_SAME(azc_qstat, read_hits, azbuse_cache_qstat);
AZC_SAME(azc_qstat, module_hits, azbuse_cache_qstat);
AZC_SAME(azc_qstat, module_blocks, azbuse_cache_qstat);
_Static_assert(SLOT_CLEAN == AZBUSE_CACHE_SLOT_CLEAN && SLOT_DIRTY == AZBUSE_CACHE_SLOT_DIRTY,
	       "slot states differ from the module's");
_Static_assert(sizeof(pthread_mutex_t) <= AZBUSE_CACHE_LOCK_BYTES, "the lock does not fit");

static uint64_t mix64(uint64_t x)
{
	return azbuse_cache_mix64(x);
}

static struct azc_part *part_at(struct azc_cache *c, uint32_t i)
{
	return (struct azc_part *)((char *)c + c->part_off) + i;
}

static struct azc_part *part_of(struct azc_cache *c, uint64_t blk)
{
	return part_at(c, (uint32_t)(mix64(blk) % c->nr_parts));
}

static struct azc_slot *slots(struct azc_cache *c, struct azc_part *p)
{
	return (struct azc_slot *)((char *)c + p->slot_off);
}

static uint32_t *buckets(struct azc_cache *c, struct azc_part *p)
{
	return (uint32_t *)((char *)c + p->bucket_off);
}

static uint64_t *ghosts(struct azc_cache *c, struct azc_part *p)
{
	return (uint64_t *)((char *)c + p->ghost_off);
}

static uint8_t *slot_data(struct azc_cache *c, struct azc_part *p, uint32_t i)
{
	return (uint8_t *)c + p->data_off + (uint64_t)i * c->block_size;
}

static uint32_t bucket_of(const struct azc_part *p, uint64_t blk)
{
	return (uint32_t)(azbuse_cache_bucket_hash(blk) & (p->nr_buckets - 1));
}

/* ---- queues ---- */

static void q_unlink(struct azc_slot *s, struct azc_part *p, uint32_t i)
{
	struct azc_queue *q = &p->q[s[i].queue];

	if (s[i].prev != NIL)
		s[s[i].prev].next = s[i].next;
	else
		q->head = s[i].next;
	if (s[i].next != NIL)
		s[s[i].next].prev = s[i].prev;
	else
		q->tail = s[i].prev;
	q->len--;
	s[i].queue = Q_NONE;
	s[i].prev = s[i].next = NIL;
}

static void q_push_head(struct azc_slot *s, struct azc_part *p, uint32_t i, enum slot_queue which)
{
	struct azc_queue *q = &p->q[which];

	s[i].queue = (uint8_t)which;
	s[i].prev = NIL;
	s[i].next = q->head;
	if (q->head != NIL)
		s[q->head].prev = i;
	else
		q->tail = i;
	q->head = i;
	q->len++;
}

/* ---- index ---- */

static uint32_t index_find(struct azc_cache *c, struct azc_part *p, uint64_t blk)
{
	struct azc_slot *s = slots(c, p);
	uint32_t i = buckets(c, p)[bucket_of(p, blk)];

	while (i != NIL && s[i].blk != blk)
		i = s[i].hnext;
	return i;
}

static void index_add(struct azc_cache *c, struct azc_part *p, uint32_t i)
{
	struct azc_slot *s = slots(c, p);
	uint32_t *b = &buckets(c, p)[bucket_of(p, s[i].blk)];

	s[i].hnext = *b;
	*b = i;
}

static void index_remove(struct azc_cache *c, struct azc_part *p, uint32_t i)
{
	struct azc_slot *s = slots(c, p);
	uint32_t *link = &buckets(c, p)[bucket_of(p, s[i].blk)];

	while (*link != NIL && *link != i)
		link = &s[*link].hnext;
	if (*link == i)
		*link = s[i].hnext;
	s[i].hnext = NIL;
}

/* The ghost table: block numbers evicted from the small FIFO lately, one
 * per entry of a direct-mapped table as big as the partition. */
static void ghost_add(struct azc_cache *c, struct azc_part *p, uint64_t blk)
{
	ghosts(c, p)[mix64(blk) % p->nr_slots] = blk + 1;
}

static bool ghost_take(struct azc_cache *c, struct azc_part *p, uint64_t blk)
{
	uint64_t *g = &ghosts(c, p)[mix64(blk) % p->nr_slots];

	if (*g != blk + 1)
		return false;
	*g = 0;
	return true;
}

/* ---- slots ---- */

/* Take slot i out of the index and its queue, onto the free list. */
static void slot_free(struct azc_cache *c, struct azc_part *p, uint32_t i)
{
	struct azc_slot *s = slots(c, p);

	if (s[i].queue != Q_NONE)
		q_unlink(s, p, i);
	if (s[i].state == SLOT_CLEAN || s[i].state == SLOT_DIRTY) {
		index_remove(c, p, i);
		p->used--;
		if (s[i].state == SLOT_DIRTY) {
			p->dirty--;
			atomic_fetch_sub(&c->dirty, 1);
		}
	}
	s[i].state = SLOT_FREE;
	s[i].next = p->free_head;
	p->free_head = i;
}

/* S3-FIFO: from the small FIFO while it holds its share (what was hit
 * twice moves on to the main FIFO), else from the main FIFO (what was hit
 * since goes round again, one hit fewer). Dirty blocks are passed over. */
static uint32_t evict_s3fifo(struct azc_cache *c, struct azc_part *p)
{
	struct azc_slot *s = slots(c, p);
	uint32_t small_share = p->limit / SMALL_SHARE ? p->limit / SMALL_SHARE : 1;
	uint32_t main_dirty = 0; /* dirty blocks passed over in a row in the main FIFO */

	/* (every block loses its hits in FREQ_MAX passes; one more finds it) */
	for (uint64_t tries = 0; tries < (FREQ_MAX + 3ULL) * p->limit + 4; tries++) {
		struct azc_queue *sq = &p->q[Q_SMALL], *mq = &p->q[Q_MAIN];
		uint32_t t;

		if (sq->len && (sq->len >= small_share || !mq->len || main_dirty >= mq->len)) {
			t = sq->tail;
			q_unlink(s, p, t);
			/* (what was hit twice moves on, unless the main FIFO is all dirty) */
			if (s[t].state == SLOT_DIRTY ||
			    (s[t].freq > 1 && (!mq->len || main_dirty < mq->len))) {
				q_push_head(s, p, t, Q_MAIN);
				continue;
			}
			ghost_add(c, p, s[t].blk);
			return t;
		}
		if (!mq->len)
			return NIL;
		if (main_dirty >= mq->len)
			return NIL; /* all of it dirty */
		t = mq->tail;
		q_unlink(s, p, t);
		if (s[t].freq > 0 || s[t].state == SLOT_DIRTY) {
			main_dirty = s[t].freq ? 0 : main_dirty + 1;
			if (s[t].freq > 0)
				s[t].freq--;
			q_push_head(s, p, t, Q_MAIN);
			continue;
		}
		return t;
	}
	return NIL;
}

/* LRU: the least recently used clean block. */
static uint32_t evict_lru(struct azc_part *p, struct azc_slot *s)
{
	for (uint32_t tries = 0; tries <= p->limit; tries++) {
		uint32_t t = p->q[Q_MAIN].tail;

		if (t == NIL)
			return NIL;
		q_unlink(s, p, t);
		if (s[t].state != SLOT_DIRTY)
			return t;
		q_push_head(s, p, t, Q_MAIN);
	}
	return NIL;
}

/* A free slot, evicting a clean block if there is none (NIL: all dirty). */
static uint32_t slot_alloc(struct azc_cache *c, struct azc_part *p)
{
	struct azc_slot *s = slots(c, p);
	uint32_t i = p->free_head;

	if (i == NIL) {
		i = atomic_load(&c->policy) == AZC_POLICY_LRU ? evict_lru(p, s)
							      : evict_s3fifo(c, p);
		if (i == NIL)
			return NIL;
		slot_free(c, p, i);
		p->evictions++;
		i = p->free_head;
	}
	p->free_head = s[i].next;
	s[i].state = SLOT_BUSY;
	s[i].queue = Q_NONE;
	s[i].prev = s[i].next = s[i].hnext = NIL;
	s[i].freq = 0;
	s[i].since = 0;
	s[i].owner = NO_OWNER;
	s[i].fail_gen = 0;
	s[i].written = 0;
	return i;
}

/* ---- partitions: layout, rebuild, lock ---- */

static void part_reset_lists(struct azc_cache *c, struct azc_part *p)
{
	uint32_t *b = buckets(c, p);

	for (uint32_t k = 0; k < p->nr_buckets; k++)
		b[k] = NIL;
	for (int q = 0; q < Q_COUNT; q++)
		p->q[q] = (struct azc_queue){ NIL, NIL, 0, 0 };
	p->free_head = NIL;
	p->used = p->dirty = 0;
}

/*
 * Make the partition's index, queues and free list again from its slots'
 * headers: a slot being filled is free; of two slots of one block the one
 * with the newer data stays. Every block goes into the main queue.
 */
static void part_rebuild(struct azc_cache *c, struct azc_part *p)
{
	struct azc_slot *s = slots(c, p);

	atomic_fetch_sub(&c->dirty, p->dirty);
	part_reset_lists(c, p);
	for (uint32_t i = p->nr_slots; i-- > 0;) {
		uint32_t other;

		s[i].queue = Q_NONE;
		s[i].prev = s[i].next = s[i].hnext = NIL;
		if (i >= p->limit) { /* (out of use since a resize) */
			s[i].state = SLOT_FREE;
			continue;
		}
		if (s[i].state != SLOT_CLEAN && s[i].state != SLOT_DIRTY) {
			s[i].state = SLOT_FREE;
			s[i].next = p->free_head;
			p->free_head = i;
			continue;
		}
		other = index_find(c, p, s[i].blk);
		if (other != NIL && s[other].seq > s[i].seq) {
			s[i].state = SLOT_FREE;
			s[i].next = p->free_head;
			p->free_head = i;
			continue;
		}
		if (other != NIL)
			slot_free(c, p, other);
		index_add(c, p, i);
		q_push_head(s, p, i, Q_MAIN);
		p->used++;
		if (s[i].state == SLOT_DIRTY) {
			p->dirty++;
			atomic_fetch_add(&c->dirty, 1);
		}
		if (s[i].seq > p->seq)
			p->seq = s[i].seq;
	}
}

/*
 * The lock, and around it the seqcount that the module's lookups check:
 * odd from the moment it is taken (still odd if its last holder died) until
 * every change is written.
 */
static void part_lock(struct azc_cache *c, struct azc_part *p)
{
	int ret = pthread_mutex_lock(&p->lock);
	uint32_t change = atomic_load_explicit(&p->change, memory_order_relaxed);

	if (!(change & 1))
		atomic_store_explicit(&p->change, change + 1, memory_order_relaxed);
	/* (the odd count is seen before any change) */
	atomic_thread_fence(memory_order_release);
	if (ret == EOWNERDEAD) {
		/* its holder died mid-change: what the slots say is the truth */
		part_rebuild(c, p);
		p->recoveries++;
		pthread_mutex_consistent(&p->lock);
	}
}

static void part_unlock(struct azc_part *p)
{
	atomic_fetch_add_explicit(&p->change, 1, memory_order_release);
	pthread_mutex_unlock(&p->lock);
}

static int part_init(struct azc_part *p)
{
	pthread_mutexattr_t a;
	int ret = pthread_mutexattr_init(&a);

	if (ret)
		return -ret;
	ret = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!ret)
		ret = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!ret)
		ret = pthread_mutex_init(&p->lock, &a);
	pthread_mutexattr_destroy(&a);
	return -ret;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static int params_check(const struct azc_params *pr, uint32_t *parts, uint64_t *per_part)
{
	uint64_t blocks;

	if (pr->block_size < 512 || pr->block_size > (1U << 20) ||
	    (pr->block_size & (pr->block_size - 1)) ||
	    (pr->policy != AZC_POLICY_S3FIFO && pr->policy != AZC_POLICY_LRU) ||
	    pr->mode > AZC_MODE_WRITEBACK || pr->dirty_low_pct > pr->dirty_high_pct ||
	    pr->dirty_high_pct > 100)
		return -EINVAL;
	blocks = pr->bytes / pr->block_size;
	*parts = pr->partitions ? pr->partitions : (uint32_t)(blocks / BLOCKS_PER_PART);
	if (*parts > PARTS_MAX)
		*parts = PARTS_MAX;
	if (!*parts)
		*parts = 1;
	*per_part = blocks / *parts;
	if (pr->queues > 4096 || pr->tags > 65536 + 256)
		return -EINVAL;
	return *per_part && *per_part < NIL / 2 && pr->partitions <= PARTS_MAX ? 0 : -EINVAL;
}

/* Lay the partitions out after the header; returns the region's size. */
static uint64_t layout(struct azc_cache *c, uint32_t parts, uint64_t per_part, int apply)
{
	uint64_t off = align_up(sizeof(*c), 64), nb = 1;

	while (nb < per_part)
		nb *= 2;
	if (apply)
		c->stamp_off = off;
	off = align_up(off + STAMP_BUCKETS * sizeof(struct azc_stamp), 64);
	if (apply)
		c->inflight_off = off;
	off = align_up(off + (uint64_t)c->queues * c->tags * sizeof(struct azc_inflight), 64);
	if (apply)
		c->pid_off = off;
	off = align_up(off + (uint64_t)c->queues * sizeof(_Atomic int32_t), 64);
	if (apply)
		c->qstat_off = off;
	off = align_up(off + (uint64_t)c->queues * sizeof(struct azc_qstat), 64);
	if (apply)
		c->part_off = off;
	off += (uint64_t)parts * sizeof(struct azc_part);
	for (uint32_t k = 0; k < parts; k++) {
		struct azc_part *p = apply ? part_at(c, k) : NULL;

		off = align_up(off, 64);
		if (p) {
			p->nr_slots = p->limit = (uint32_t)per_part;
			p->nr_buckets = (uint32_t)nb;
			p->slot_off = off;
		}
		off += per_part * sizeof(struct azc_slot);
		if (p)
			p->bucket_off = off;
		off = align_up(off + nb * sizeof(uint32_t), 8);
		if (p)
			p->ghost_off = off;
		off += per_part * sizeof(uint64_t);
	}
	off = align_up(off, 4096);
	for (uint32_t k = 0; apply && k < parts; k++) {
		part_at(c, k)->data_off = off;
		off += per_part * c->block_size;
	}
	if (!apply)
		off += (uint64_t)parts * per_part * c->block_size;
	return off;
}

int azc_place(struct azc_cache *c, uint64_t nodes)
{
	struct bitmask *mask;
	int ret;

	if (numa_available() < 0 || !nodes)
		return 0;
	mask = numa_allocate_nodemask();
	if (!mask)
		return -1;
	for (int n = 0; n < 64; n++)
		if (nodes & (1ULL << n))
			numa_bitmask_setbit(mask, (unsigned)n);
	/* one node: its pages, preferred; several: interleaved over them */
	ret = mbind(c, c->region_bytes,
		    __builtin_popcountll(nodes) > 1 ? MPOL_INTERLEAVE : MPOL_BIND, mask->maskp,
		    mask->size + 1, 0);
	numa_bitmask_free(mask);
	return ret;
}

int azc_create(const struct azc_params *pr, struct azc_cache **out)
{
	struct azc_cache probe = { .block_size = pr->block_size,
				   .queues = pr->queues,
				   .tags = pr->tags },
			 *c;
	uint64_t per_part, bytes;
	uint32_t parts;
	int ret = params_check(pr, &parts, &per_part);

	if (ret)
		return ret;
	bytes = layout(&probe, parts, per_part, 0);
	c = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED)
		return -errno;
	if (pr->numa_node >= 0 && numa_available() >= 0)
		numa_tonode_memory(c, bytes, pr->numa_node);
	c->region_bytes = bytes;
	c->block_size = pr->block_size;
	c->queues = pr->queues;
	c->tags = pr->tags;
	c->nr_parts = parts;
	c->part_stride = sizeof(struct azc_part);
	c->slot_stride = sizeof(struct azc_slot);
	c->qstat_stride = sizeof(struct azc_qstat);
	atomic_store(&c->policy, (uint32_t)pr->policy);
	atomic_store(&c->mode, (uint32_t)pr->mode);
	atomic_store(&c->low_pct, pr->dirty_high_pct ? pr->dirty_low_pct : DIRTY_LOW_PCT);
	atomic_store(&c->high_pct, pr->dirty_high_pct ? pr->dirty_high_pct : DIRTY_HIGH_PCT);
	atomic_store(&c->retry_gen, 1);
	atomic_store(&c->seq_cutoff, pr->seq_cutoff == AZC_SEQ_CUTOFF_DEFAULT ? SEQ_CUTOFF_DEFAULT
									      : pr->seq_cutoff);
	c->nr_slots = (uint64_t)parts * per_part;
	atomic_store(&c->capacity, c->nr_slots);
	layout(c, parts, per_part, 1);
	for (uint32_t k = 0; k < parts; k++) {
		struct azc_part *p = part_at(c, k);
		struct azc_slot *s = slots(c, p);

		ret = part_init(p);
		if (ret) {
			munmap(c, bytes);
			return ret;
		}
		part_reset_lists(c, p);
		for (uint32_t i = p->nr_slots; i-- > 0;) {
			s[i] = (struct azc_slot){ .prev = NIL, .next = p->free_head, .hnext = NIL };
			p->free_head = i;
		}
	}
	c->magic = AZC_MAGIC;
	*out = c;
	return 0;
}

void azc_destroy(struct azc_cache *c)
{
	if (c)
		munmap(c, c->region_bytes);
}

uint32_t azc_block_size(const struct azc_cache *c)
{
	return c->block_size;
}

enum azc_policy azc_get_policy(const struct azc_cache *c)
{
	return (enum azc_policy)atomic_load(&((struct azc_cache *)c)->policy);
}

void azc_set_policy(struct azc_cache *c, enum azc_policy policy)
{
	atomic_store(&c->policy, (uint32_t)policy);
	for (uint32_t k = 0; k < c->nr_parts; k++) {
		struct azc_part *p = part_at(c, k);

		part_lock(c, p);
		part_rebuild(c, p);
		part_unlock(p);
	}
}

/* ---- size ---- */

/* Partition p uses slots [0, limit) from now on: -EBUSY if one it gives up is dirty. */
static int part_resize(struct azc_cache *c, struct azc_part *p, uint32_t limit)
{
	struct azc_slot *s = slots(c, p);
	uint32_t i, *link;

	if (limit >= p->limit) {
		for (i = p->limit; i < limit; i++) {
			s[i].state = SLOT_FREE;
			s[i].next = p->free_head;
			p->free_head = i;
		}
		p->limit = limit;
		return 0;
	}
	for (i = limit; i < p->limit; i++)
		if (s[i].state == SLOT_DIRTY)
			return -EBUSY;
	for (i = limit; i < p->limit; i++)
		if (s[i].state == SLOT_CLEAN)
			slot_free(c, p, i);
	p->limit = limit;
	for (link = &p->free_head; *link != NIL;) /* the free list keeps what stays */
		if (*link >= limit)
			*link = s[*link].next;
		else
			link = &s[*link].next;
	/* the memory of what went goes back, unless the module holds it: the
	 * pages it reads would no longer be the ones the workers write */
	if (!atomic_load(&c->pinned))
		madvise(slot_data(c, p, limit), (size_t)(p->nr_slots - limit) * c->block_size, MADV_REMOVE);
	return 0;
}

int azc_resize(struct azc_cache *c, uint64_t bytes)
{
	uint64_t per_part = bytes / c->block_size / c->nr_parts, total = 0;
	int ret = 0;

	if (per_part < 2 || per_part > part_at(c, 0)->nr_slots)
		return -EINVAL;
	for (uint32_t k = 0; k < c->nr_parts; k++) {
		struct azc_part *p = part_at(c, k);

		part_lock(c, p);
		if (!ret)
			ret = part_resize(c, p, (uint32_t)per_part);
		total += p->limit;
		part_unlock(p);
	}
	atomic_store(&c->capacity, total);
	return ret;
}

uint64_t azc_max_bytes(const struct azc_cache *c)
{
	return c->nr_slots * c->block_size;
}

void azc_set_pinned(struct azc_cache *c, bool pinned)
{
	atomic_store(&c->pinned, pinned);
}

void azc_region(const struct azc_cache *c, void **addr, uint64_t *len)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	*addr = (void *)c;
	*len = align_up(c->region_bytes, page);
}

/* ---- blocks ---- */

int azc_read(struct azc_cache *c, uint64_t blk, void *buf)
{
	struct azc_part *p = part_of(c, blk);
	struct azc_slot *s = slots(c, p);
	uint32_t i;

	part_lock(c, p);
	i = index_find(c, p, blk);
	if (i == NIL) {
		p->misses++;
		part_unlock(p);
		return 0;
	}
	memcpy(buf, slot_data(c, p, i), c->block_size);
	if (atomic_load(&c->policy) == AZC_POLICY_LRU) {
		q_unlink(s, p, i);
		q_push_head(s, p, i, Q_MAIN);
	} else if (s[i].freq < FREQ_MAX) {
		s[i].freq++;
	}
	p->hits++;
	part_unlock(p);
	return 1;
}

/* Slot n takes old's place (queue position, hits) or goes where a new block goes. */
static void put_link(struct azc_cache *c, struct azc_part *p, uint32_t n, uint32_t old)
{
	struct azc_slot *s = slots(c, p);
	enum slot_queue where = Q_MAIN;

	if (old != NIL) {
		where = (enum slot_queue)s[old].queue;
		s[n].freq = s[old].freq < FREQ_MAX ? s[old].freq + 1 : FREQ_MAX;
		slot_free(c, p, old);
	} else if (atomic_load(&c->policy) == AZC_POLICY_S3FIFO && !ghost_take(c, p, s[n].blk)) {
		where = Q_SMALL;
	}
	index_add(c, p, n);
	q_push_head(s, p, n, where == Q_NONE ? Q_MAIN : where);
	p->used++;
	if (s[n].state == SLOT_DIRTY) {
		p->dirty++;
		atomic_fetch_add(&c->dirty, 1);
	}
}

/* azc_put with the partition's lock held. */
static int put_locked(struct azc_cache *c, struct azc_part *p, uint64_t blk, const void *buf,
		      bool dirty)
{
	struct azc_slot *s = slots(c, p);
	uint32_t old = index_find(c, p, blk), n;

	if (old != NIL && !dirty && s[old].state == SLOT_DIRTY)
		return 0; /* the cache's copy is newer than the store's */
	/* one slot stays clean or free, so that a dirty block can always be
	 * written again (into a new slot) */
	if (dirty && (old == NIL || s[old].state != SLOT_DIRTY) && p->dirty + 1 >= p->limit)
		return -ENOSPC;
	n = slot_alloc(c, p);
	if (n == NIL)
		return -ENOSPC;
	old = index_find(c, p, blk); /* (the eviction may have taken a clean old copy) */
	/* a new slot, never the old one rewritten: a rebuild keeps the newest */
	memcpy(slot_data(c, p, n), buf, c->block_size);
	s[n].blk = blk;
	s[n].seq = atomic_fetch_add(&c->clock, 1) + 1;
	if (s[n].seq > p->seq)
		p->seq = s[n].seq;
	s[n].state = dirty ? SLOT_DIRTY : SLOT_CLEAN;
	if (dirty) {
		bool was_dirty = old != NIL && s[old].state == SLOT_DIRTY;

		/* still missing from the store: what the old copy was missing */
		s[n].since = was_dirty ? s[old].since : s[n].seq;
		s[n].owner = was_dirty ? s[old].owner : NO_OWNER;
		s[n].written = 1;
	}
	put_link(c, p, n, old);
	p->inserts++;
	return 0;
}

int azc_put(struct azc_cache *c, uint64_t blk, const void *buf, bool dirty)
{
	struct azc_part *p = part_of(c, blk);
	int ret;

	part_lock(c, p);
	ret = put_locked(c, p, blk, buf, dirty);
	part_unlock(p);
	return ret;
}

void azc_drop(struct azc_cache *c, uint64_t blk)
{
	struct azc_part *p = part_of(c, blk);
	uint32_t i;

	part_lock(c, p);
	i = index_find(c, p, blk);
	if (i != NIL)
		slot_free(c, p, i);
	part_unlock(p);
}

/* ---- counters ---- */

static struct azc_qstat *qstat_of(struct azc_cache *c, uint32_t queue)
{
	return (struct azc_qstat *)((char *)c + c->qstat_off) + (queue < c->queues ? queue : 0);
}

void azc_note_read(struct azc_cache *c, uint32_t queue, bool hit)
{
	struct azc_qstat *q = qstat_of(c, queue);

	atomic_fetch_add_explicit(hit ? &q->read_hits : &q->read_misses, 1, memory_order_relaxed);
}

void azc_note_bypass(struct azc_cache *c, uint32_t queue)
{
	atomic_fetch_add_explicit(&qstat_of(c, queue)->bypassed, 1, memory_order_relaxed);
}

void azc_get_queue_stats(struct azc_cache *c, uint32_t queue, struct azc_queue_stats *st)
{
	struct azc_qstat *q = qstat_of(c, queue);

	st->read_hits = atomic_load(&q->read_hits);
	st->read_misses = atomic_load(&q->read_misses);
	st->absorbed = atomic_load(&q->absorbed);
	st->through = atomic_load(&q->through);
	st->bypassed = atomic_load(&q->bypassed);
	st->writebacks = atomic_load(&q->writebacks);
	st->writeback_errors = atomic_load(&q->writeback_errors);
	st->module_hits = atomic_load(&q->module_hits);
	st->module_blocks = atomic_load(&q->module_blocks);
	st->read_hits += st->module_hits;
}

uint32_t azc_queues(const struct azc_cache *c)
{
	return c->queues;
}

/* ---- the cleaner ---- */

/* Take the write-back of the bucket's blocks: no write or read of them in flight. */
static bool bucket_claim(struct azc_stamp *st)
{
	uint32_t free = 0;

	if (!atomic_compare_exchange_strong(&st->cleaning, &free, 1))
		return false;
	/* seq_cst, as azc_write_begin and azc_read_begin raise theirs and then look here */
	if (!atomic_load(&st->writing) && !atomic_load(&st->reading))
		return true;
	atomic_store(&st->cleaning, 0);
	return false;
}

static struct azc_stamp *stamp_of(struct azc_cache *c, uint64_t blk);
static void stamp_set(struct azc_stamp *st, uint64_t v);
static struct azc_inflight *inflight_of(struct azc_cache *c, uint32_t queue, uint32_t tag);

/* Does slot i qualify for this pass of queue's cleaner? (Lock held.) */
static bool clean_wanted(struct azc_cache *c, struct azc_slot *sl, uint32_t queue,
			 const struct azc_clean_want *w, struct azc_clean_pass *pass)
{
	bool due;

	if (sl->state != SLOT_DIRTY)
		return false;
	due = sl->since <= w->target;
	if (sl->fail_gen == (uint16_t)atomic_load(&c->retry_gen)) {
		pass->failed += due;
		return false;
	}
	if (sl->owner != NO_OWNER && sl->owner != queue) {
		pass->foreign += due;
		return false;
	}
	if (due || w->background == AZC_CLEAN_ALL)
		return true;
	if (w->background == AZC_CLEAN_COLD) {
		/* a block written since the last pass is hot: its turn comes later */
		if (!sl->written)
			return true;
		sl->written = 0;
		pass->hot++;
	}
	return false;
}

int azc_clean_next(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t *cursor,
		   const struct azc_clean_want *w, struct azc_clean_pass *pass, uint64_t *blk,
		   uint64_t *seq, void *buf)
{
	/* (a round that starts within a partition ends in it) */
	uint32_t rounds = c->nr_parts + ((uint32_t)*cursor != 0);

	for (uint32_t n = 0; n < rounds; n++) {
		uint32_t k = (uint32_t)(*cursor >> 32) % c->nr_parts, i;
		struct azc_part *p = part_at(c, k);
		struct azc_slot *s = slots(c, p);

		if (!p->dirty) { /* (a peek: a block dirtied meanwhile is newer than the pass) */
			*cursor = (uint64_t)(k + 1) << 32;
			continue;
		}
		part_lock(c, p);
		for (i = (uint32_t)*cursor; i < p->nr_slots; i++) {
			struct azc_stamp *st;
			struct azc_inflight *in;

			if (!clean_wanted(c, &s[i], queue, w, pass))
				continue;
			st = stamp_of(c, s[i].blk);
			if (!bucket_claim(st)) {
				pass->busy++;
				continue;
			}
			in = inflight_of(c, queue, tag);
			if (in) {
				in->first = s[i].blk;
				in->kind = IN_CLEAN;
				atomic_store(&in->n, 1);
			}
			*blk = s[i].blk;
			*seq = s[i].seq;
			memcpy(buf, slot_data(c, p, i), c->block_size);
			part_unlock(p);
			*cursor = ((uint64_t)k << 32) | (i + 1);
			return 1;
		}
		part_unlock(p);
		*cursor = (uint64_t)(k + 1) << 32;
	}
	return 0;
}

/* The write-back of blk's copy `seq` ended (lock not held). */
static void clean_settle(struct azc_cache *c, uint64_t blk, uint64_t seq, int result, int redirect)
{
	struct azc_part *p = part_of(c, blk);
	struct azc_slot *s = slots(c, p);
	uint32_t i;

	part_lock(c, p);
	i = index_find(c, p, blk);
	if (i != NIL && s[i].state == SLOT_DIRTY) {
		if (redirect >= 0) {
			s[i].owner = (uint16_t)redirect;
		} else if (result) {
			s[i].fail_gen = (uint16_t)atomic_load(&c->retry_gen);
		} else if (s[i].seq == seq) {
			s[i].state = SLOT_CLEAN;
			p->dirty--;
			atomic_fetch_sub(&c->dirty, 1);
			p->cleaned++;
		} else if (s[i].since <= seq) {
			s[i].since = seq + 1; /* what it was written over is in the store now */
		}
	}
	part_unlock(p);
}

void azc_clean_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t blk, uint64_t seq,
		   int result, int redirect)
{
	struct azc_inflight *in = inflight_of(c, queue, tag);

	clean_settle(c, blk, seq, result, redirect);
	if (redirect < 0)
		atomic_fetch_add(result ? &qstat_of(c, queue)->writeback_errors
					: &qstat_of(c, queue)->writebacks,
				 1);
	if (in)
		atomic_store(&in->n, 0);
	atomic_store(&stamp_of(c, blk)->cleaning, 0);
}

void azc_clean_retry(struct azc_cache *c)
{
	uint32_t gen = atomic_fetch_add(&c->retry_gen, 1) + 1;

	if (!(uint16_t)gen) /* (0 means "never failed") */
		atomic_fetch_add(&c->retry_gen, 1);
}

struct azc_clean_want azc_clean_demand(struct azc_cache *c)
{
	struct azc_clean_want w = { .target = atomic_load(&c->clean_target) };
	uint64_t dirty = atomic_load(&c->dirty);

	if (!dirty)
		return (struct azc_clean_want){ 0 };
	if (atomic_load(&c->mode) != AZC_MODE_WRITEBACK)
		w.target = UINT64_MAX; /* what is left from write-back goes */
	if (dirty * 100 >= (uint64_t)atomic_load(&c->high_pct) * atomic_load(&c->capacity))
		atomic_store(&c->cleaning, 1);
	else if (dirty * 100 <= (uint64_t)atomic_load(&c->low_pct) * atomic_load(&c->capacity))
		atomic_store(&c->cleaning, 0);
	if (atomic_load(&c->cleaning))
		w.background = AZC_CLEAN_COLD;
	w.urgent = dirty * 100 >= (uint64_t)DIRTY_URGENT_PCT * atomic_load(&c->capacity);
	return w;
}

uint64_t azc_dirty_before(struct azc_cache *c, uint64_t target)
{
	uint64_t n = 0;

	for (uint32_t k = 0; k < c->nr_parts; k++) {
		struct azc_part *p = part_at(c, k);
		struct azc_slot *s = slots(c, p);

		if (!p->dirty)
			continue;
		part_lock(c, p);
		for (uint32_t i = 0; i < p->nr_slots; i++)
			n += s[i].state == SLOT_DIRTY && s[i].since <= target;
		part_unlock(p);
	}
	return n;
}

uint64_t azc_drain_begin(struct azc_cache *c, bool hold)
{
	uint64_t target, cur;

	if (hold)
		atomic_fetch_add(&c->hold, 1);
	target = atomic_fetch_add(&c->clock, 1) + 1;
	cur = atomic_load(&c->clean_target);
	while (cur < target && !atomic_compare_exchange_weak(&c->clean_target, &cur, target))
		;
	azc_wake_workers(c);
	return target;
}

void azc_drain_end(struct azc_cache *c, bool hold)
{
	if (hold)
		atomic_fetch_sub(&c->hold, 1);
}

static _Atomic int32_t *pid_of(struct azc_cache *c, uint32_t queue)
{
	return (_Atomic int32_t *)((char *)c + c->pid_off) + queue;
}

void azc_set_worker(struct azc_cache *c, uint32_t queue, int pid)
{
	if (queue < c->queues)
		atomic_store(pid_of(c, queue), pid);
}

void azc_wake_workers(struct azc_cache *c)
{
	pid_t self = getpid();

	for (uint32_t q = 0; q < c->queues; q++) {
		int32_t pid = atomic_load(pid_of(c, q));

		if (pid > 0 && pid != self)
			kill(pid, SIGUSR1);
	}
}

void azc_set_dirty_limits(struct azc_cache *c, uint32_t low_pct, uint32_t high_pct)
{
	atomic_store(&c->low_pct, low_pct);
	atomic_store(&c->high_pct, high_pct);
}

void azc_get_dirty_limits(struct azc_cache *c, uint32_t *low_pct, uint32_t *high_pct)
{
	*low_pct = atomic_load(&c->low_pct);
	*high_pct = atomic_load(&c->high_pct);
}

/* Put blk dirty if it is dirty already (a rewrite adds no dirty block): 0 or -EAGAIN. */
static int put_redirty(struct azc_cache *c, uint64_t blk, const void *buf)
{
	struct azc_part *p = part_of(c, blk);
	uint32_t old;
	int ret = -EAGAIN;

	part_lock(c, p);
	old = index_find(c, p, blk);
	if (old != NIL && slots(c, p)[old].state == SLOT_DIRTY)
		ret = put_locked(c, p, blk, buf, true);
	part_unlock(p);
	return ret;
}

int azc_write_dirty(struct azc_cache *c, uint32_t queue, uint64_t first, uint32_t n,
		    const void *buf)
{
	struct azc_qstat *qs = qstat_of(c, queue);
	uint64_t dirty = atomic_load(&c->dirty), v;
	bool full;

	if (atomic_load(&c->mode) != AZC_MODE_WRITEBACK || atomic_load(&c->hold))
		return -EAGAIN;
	/* past the high mark the cleaners start; past DIRTY_MAX_PCT only blocks
	 * dirty already are written again, the rest goes to the store while the
	 * cleaners catch up */
	if ((dirty + n) * 100 >= (uint64_t)atomic_load(&c->high_pct) * atomic_load(&c->capacity) &&
	    !atomic_exchange(&c->cleaning, 1))
		azc_wake_workers(c);
	full = (dirty + n) * 100 >= (uint64_t)DIRTY_MAX_PCT * atomic_load(&c->capacity);
	/*
	 * A read of the store that began before this write must not fill its
	 * older data in later, when the dirty copy may have been written back
	 * and become clean (put_locked refuses a fill only over a dirty copy).
	 */
	v = atomic_fetch_add(&c->clock, 1) + 1;
	for (uint32_t k = 0; k < n; k++)
		stamp_set(stamp_of(c, first + k), v);
	for (uint32_t k = 0; k < n; k++) {
		const uint8_t *data = (const uint8_t *)buf + (uint64_t)k * c->block_size;
		int ret =
			full ? put_redirty(c, first + k, data) : azc_put(c, first + k, data, true);

		if (ret) {
			atomic_fetch_add(&qs->through, 1);
			return ret; /* (those put already are replaced by the write's end) */
		}
	}
	atomic_fetch_add(&qs->absorbed, 1);
	return 0;
}

void azc_get_stats(struct azc_cache *c, struct azc_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (uint32_t k = 0; k < c->nr_parts; k++) {
		struct azc_part *p = part_at(c, k);

		part_lock(c, p);
		st->hits += p->hits;
		st->misses += p->misses;
		st->inserts += p->inserts;
		st->evictions += p->evictions;
		st->cleaned += p->cleaned;
		st->recoveries += p->recoveries;
		st->slots += p->limit;
		st->used += p->used;
		st->dirty += p->dirty;
		part_unlock(p);
	}
	for (uint32_t q = 0; q < c->queues; q++) {
		struct azc_queue_stats qs;

		azc_get_queue_stats(c, q, &qs);
		st->absorbed += qs.absorbed;
		st->through += qs.through;
		st->writebacks += qs.writebacks;
		st->writeback_errors += qs.writeback_errors;
		st->bypassed += qs.bypassed;
		st->hits += qs.module_blocks;
		st->module_hits += qs.module_hits;
	}
}

uint64_t azc_get_seq_cutoff(struct azc_cache *c)
{
	return atomic_load(&c->seq_cutoff);
}

void azc_set_seq_cutoff(struct azc_cache *c, uint64_t bytes)
{
	atomic_store(&c->seq_cutoff, bytes);
}

/* ---- keeping up with writes ---- */

static struct azc_stamp *stamp_of(struct azc_cache *c, uint64_t blk)
{
	return (struct azc_stamp *)((char *)c + c->stamp_off) + mix64(blk) % STAMP_BUCKETS;
}

/* The bucket's last stamp := v, unless a later one is there already. */
static void stamp_set(struct azc_stamp *st, uint64_t v)
{
	uint64_t cur = atomic_load(&st->last);

	while (cur < v && !atomic_compare_exchange_weak(&st->last, &cur, v))
		;
}

uint64_t azc_stamp_now(struct azc_cache *c)
{
	return atomic_load(&c->clock);
}

static struct azc_inflight *inflight_of(struct azc_cache *c, uint32_t queue, uint32_t tag)
{
	if (queue >= c->queues || tag >= c->tags)
		return NULL;
	return (struct azc_inflight *)((char *)c + c->inflight_off) + (uint64_t)queue * c->tags +
	       tag;
}

static void inflight_record(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first,
			    uint32_t n, enum inflight_kind kind)
{
	struct azc_inflight *in = inflight_of(c, queue, tag);

	if (in) {
		in->first = first;
		in->kind = kind;
		atomic_store(&in->n, n);
	}
}

/* Undo the first n raises of a counter of the buckets from `first` on. */
static void buckets_lower(struct azc_cache *c, uint64_t first, uint32_t n, bool reading)
{
	for (uint32_t k = 0; k < n; k++) {
		struct azc_stamp *st = stamp_of(c, first + k);
		_Atomic uint32_t *cnt = reading ? &st->reading : &st->writing;

		if (atomic_load(cnt))
			atomic_fetch_sub(cnt, 1);
	}
}

/* Raise the buckets' writing (or reading) counts unless a write-back of one
 * is in flight: then nothing is raised and false. Either this sees the
 * write-back's claim or the claim sees the raise (seq_cst both ways). */
static bool buckets_raise(struct azc_cache *c, uint64_t first, uint32_t n, bool reading,
			  bool *alone)
{
	for (uint32_t k = 0; k < n; k++) {
		struct azc_stamp *st = stamp_of(c, first + k);

		if (atomic_fetch_add(reading ? &st->reading : &st->writing, 1) && alone)
			*alone = false;
		if (atomic_load(&st->cleaning)) {
			buckets_lower(c, first, k + 1, reading);
			return false;
		}
	}
	return true;
}

int azc_write_begin(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		    uint64_t *stamp, bool *alone)
{
	uint64_t v;

	*alone = true;
	if (!buckets_raise(c, first, n, false, alone))
		return -EBUSY;
	v = atomic_fetch_add(&c->clock, 1) + 1;
	for (uint32_t k = 0; k < n; k++)
		stamp_set(stamp_of(c, first + k), v);
	inflight_record(c, queue, tag, first, n, IN_WRITE);
	*stamp = v;
	return 0;
}

/*
 * What the cache holds of blk once a write to the store that began at
 * `stamp` ended: a dirty copy put since stays (it is newer); else the
 * write's data if given, clean, or nothing.
 */
static void write_settle(struct azc_cache *c, uint64_t blk, uint64_t stamp, const void *data)
{
	struct azc_part *p = part_of(c, blk);
	struct azc_slot *s = slots(c, p);
	uint32_t i;

	part_lock(c, p);
	i = index_find(c, p, blk);
	if (i != NIL && s[i].state == SLOT_DIRTY) {
		if (s[i].seq > stamp) {
			part_unlock(p);
			return;
		}
		/* older than the write, which has replaced it in the store */
		s[i].state = SLOT_CLEAN;
		p->dirty--;
		atomic_fetch_sub(&c->dirty, 1);
	}
	if (data && put_locked(c, p, blk, data, false))
		i = index_find(c, p, blk); /* (no room: the old copy goes) */
	else if (data)
		i = NIL;
	if (i != NIL)
		slot_free(c, p, i);
	part_unlock(p);
}

/* The write of [first, first + n) ends: buf kept (if keep) or what it covers dropped. */
static void write_done(struct azc_cache *c, uint64_t first, uint32_t n, uint64_t stamp, bool keep,
		       const void *buf)
{
	uint64_t v = atomic_fetch_add(&c->clock, 1) + 1;
	enum azc_mode mode = (enum azc_mode)atomic_load(&c->mode);

	for (uint32_t k = 0; k < n; k++) {
		struct azc_stamp *st = stamp_of(c, first + k);
		uint64_t last = atomic_load(&st->last);
		/* nobody else began or ended a write on its bucket meanwhile (v: a
		 * block of this write before it, in the same bucket) */
		bool kept = keep && buf && (last == stamp || last == v) &&
			    (mode == AZC_MODE_WRITETHROUGH || mode == AZC_MODE_WRITEBACK);

		stamp_set(st, v);
		write_settle(c, first + k, stamp,
			     kept ? (const uint8_t *)buf + (uint64_t)k * c->block_size : NULL);
		if (atomic_load(&st->writing))
			atomic_fetch_sub(&st->writing, 1);
	}
}

void azc_write_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		   uint64_t stamp, bool alone, int result, const void *buf)
{
	struct azc_inflight *in = inflight_of(c, queue, tag);

	/* (cleared first: a death from here on leaks a count, never frees one twice) */
	if (in)
		atomic_store(&in->n, 0);
	write_done(c, first, n, result ? 0 : stamp, alone && !result, result ? NULL : buf);
}

int azc_read_begin(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		   uint64_t *stamp)
{
	*stamp = atomic_load(&c->clock);
	/* with no dirty block, the store has every write that completed */
	if (!atomic_load(&c->dirty))
		return 0;
	if (!buckets_raise(c, first, n, true, NULL))
		return -EBUSY;
	inflight_record(c, queue, tag, first, n, IN_READ);
	return 1;
}

/* Copy what the cache holds of the bytes [offset, offset + len) over buf. */
static void read_overlay(struct azc_cache *c, uint64_t offset, uint32_t len, uint8_t *buf)
{
	uint64_t end = offset + len, blk;

	for (blk = offset / c->block_size; blk * c->block_size < end; blk++) {
		struct azc_part *p = part_of(c, blk);
		uint64_t from = blk * c->block_size > offset ? blk * c->block_size : offset;
		uint64_t to = (blk + 1) * c->block_size < end ? (blk + 1) * c->block_size : end;
		uint32_t i;

		part_lock(c, p);
		i = index_find(c, p, blk);
		if (i != NIL)
			memcpy(buf + (from - offset),
			       slot_data(c, p, i) + (from - blk * c->block_size), to - from);
		part_unlock(p);
	}
}

void azc_read_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t offset, uint32_t len,
		  int registered, void *buf)
{
	struct azc_inflight *in = inflight_of(c, queue, tag);
	uint64_t first = offset / c->block_size;
	uint32_t n = (uint32_t)((offset + len + c->block_size - 1) / c->block_size - first);

	if (registered != 1)
		return;
	if (buf)
		read_overlay(c, offset, len, buf);
	if (in)
		atomic_store(&in->n, 0);
	buckets_lower(c, first, n, true);
}

void azc_write_cancel(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n)
{
	struct azc_inflight *in = inflight_of(c, queue, tag);

	if (in)
		atomic_store(&in->n, 0);
	buckets_lower(c, first, n, false);
}

bool azc_is_dirty(struct azc_cache *c, uint64_t blk)
{
	struct azc_part *p = part_of(c, blk);
	uint32_t i;
	bool dirty;

	part_lock(c, p);
	i = index_find(c, p, blk);
	dirty = i != NIL && slots(c, p)[i].state == SLOT_DIRTY;
	part_unlock(p);
	return dirty;
}

uint64_t azc_dirty_count(struct azc_cache *c)
{
	return atomic_load(&c->dirty);
}

uint32_t azc_tags(const struct azc_cache *c)
{
	return c->tags;
}

void azc_queue_reset(struct azc_cache *c, uint32_t queue)
{
	for (uint32_t tag = 0; tag < c->tags; tag++) {
		struct azc_inflight *in = inflight_of(c, queue, tag);
		uint32_t n = in ? atomic_exchange(&in->n, 0) : 0;

		if (!n)
			continue;
		if (in->kind == IN_WRITE)
			write_done(c, in->first, n, 0, false, NULL);
		else if (in->kind == IN_READ)
			buckets_lower(c, in->first, n, true);
		else if (in->kind == IN_CLEAN) /* (the block stays dirty: written back later) */
			atomic_store(&stamp_of(c, in->first)->cleaning, 0);
	}
}

void azc_fill(struct azc_cache *c, uint64_t first, uint32_t n, uint64_t stamp, const void *buf)
{
	if (atomic_load(&c->mode) == AZC_MODE_PASSTHROUGH)
		return;
	for (uint32_t k = 0; k < n; k++) {
		struct azc_part *p = part_of(c, first + k);
		struct azc_stamp *st = stamp_of(c, first + k);

		/* under the partition's lock, which a write's put or drop takes after
		 * its stamp: either this sees the stamp or the write replaces this */
		part_lock(c, p);
		if (atomic_load(&st->last) <= stamp && !atomic_load(&st->writing))
			put_locked(c, p, first + k,
				   (const uint8_t *)buf + (uint64_t)k * c->block_size, false);
		part_unlock(p);
	}
}

bool azc_read_all(struct azc_cache *c, uint64_t first, uint32_t n, void *buf)
{
	if (atomic_load(&c->mode) == AZC_MODE_PASSTHROUGH)
		return false;
	for (uint32_t k = 0; k < n; k++)
		if (!azc_read(c, first + k, (uint8_t *)buf + (uint64_t)k * c->block_size))
			return false;
	return true;
}

enum azc_mode azc_get_mode(const struct azc_cache *c)
{
	return (enum azc_mode)atomic_load(&((struct azc_cache *)c)->mode);
}

void azc_set_mode(struct azc_cache *c, enum azc_mode mode)
{
	atomic_store(&c->mode, (uint32_t)mode);
}

static const char *const azc_mode_names[] = { "writethrough", "writearound", "passthrough",
					      "writeback" };
static const char *const azc_policy_names[] = { "s3fifo", "lru" };

const char *azc_mode_name(enum azc_mode mode)
{
	return (unsigned)mode < 4 ? azc_mode_names[mode] : "?";
}

const char *azc_policy_name(enum azc_policy policy)
{
	return (unsigned)policy < 2 ? azc_policy_names[policy] : "?";
}

int azc_mode_parse(const char *name, enum azc_mode *mode)
{
	for (unsigned k = 0; k < 4; k++)
		if (!strcmp(name, azc_mode_names[k])) {
			*mode = (enum azc_mode)k;
			return 0;
		}
	return -EINVAL;
}

int azc_policy_parse(const char *name, enum azc_policy *policy)
{
	for (unsigned k = 0; k < 2; k++)
		if (!strcmp(name, azc_policy_names[k])) {
			*policy = (enum azc_policy)k;
			return 0;
		}
	return -EINVAL;
}
