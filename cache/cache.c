/*
 * cache.c - the RAM cache tier's shared region (see cache.h): partitions of
 * slots, each with a hash index, its eviction queues, a ghost table and a
 * robust lock; S3-FIFO and LRU eviction; the cleaner's walk over dirty
 * blocks; the rebuild of a partition whose lock a dead worker held.
 */
#include <errno.h>
#include <numa.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache.h"

#define AZC_MAGIC 0x415a424341434845ULL /* "AZBCACHE" */
#define NIL UINT32_MAX
#define PARTS_MAX 256
#define BLOCKS_PER_PART 4096
#define FREQ_MAX 3
#define SMALL_SHARE 10	    /* the small FIFO holds 1/10 of a partition's slots */
#define STAMP_BUCKETS 65536 /* write stamps: buckets of block numbers */

enum slot_state { SLOT_FREE = 0, SLOT_BUSY = 1, SLOT_CLEAN = 2, SLOT_DIRTY = 3 };
enum slot_queue { Q_NONE = 0, Q_SMALL = 1, Q_MAIN = 2, Q_COUNT = 3 };

struct azc_slot {
	uint64_t blk;
	uint64_t seq;  /* when its data was put: the newest of two copies wins */
	uint32_t prev; /* queue links, slot indexes in the partition */
	uint32_t next; /* (also the free list's link) */
	uint32_t hnext;
	uint8_t state;
	uint8_t queue;
	uint8_t freq;
	uint8_t pad0;
};

struct azc_queue {
	uint32_t head, tail, len, pad0;
};

struct azc_part {
	pthread_mutex_t lock;
	uint64_t slot_off, bucket_off, ghost_off, data_off; /* from the region's start */
	uint32_t nr_slots, nr_buckets;			    /* buckets: a power of two */
	uint32_t free_head, used, dirty, pad0;
	struct azc_queue q[Q_COUNT];
	uint64_t seq;
	uint64_t hits, misses, inserts, evictions, cleaned, recoveries;
} __attribute__((aligned(64)));

struct azc_stamp {
	_Atomic uint64_t last;	  /* the global counter at the last write's start or end */
	_Atomic uint32_t writing; /* writes in flight */
	uint32_t pad0;
};

/* A write in flight: what azc_queue_reset ends if its worker dies. */
struct azc_inflight {
	uint64_t first;
	_Atomic uint32_t n; /* 0: none */
	uint32_t pad0;
};

struct azc_cache {
	uint64_t magic;
	uint64_t region_bytes;
	uint32_t block_size;
	uint32_t nr_parts;
	_Atomic uint32_t policy;
	_Atomic uint32_t mode;
	uint64_t part_off;
	uint64_t stamp_off;
	_Atomic uint64_t clock; /* the global write counter */
	uint64_t inflight_off;
	uint32_t queues, tags; /* of the inflight records */
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
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
	return (uint32_t)(mix64(blk ^ 0x9e3779b97f4a7c15ULL) & (p->nr_buckets - 1));
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
		if (s[i].state == SLOT_DIRTY)
			p->dirty--;
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
	uint32_t small_share = p->nr_slots / SMALL_SHARE ? p->nr_slots / SMALL_SHARE : 1;
	uint32_t main_dirty = 0; /* dirty blocks passed over in a row in the main FIFO */

	/* (every block loses its hits in FREQ_MAX passes; one more finds it) */
	for (uint64_t tries = 0; tries < (FREQ_MAX + 3ULL) * p->nr_slots + 4; tries++) {
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
	for (uint32_t tries = 0; tries <= p->nr_slots; tries++) {
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

	part_reset_lists(c, p);
	for (uint32_t i = p->nr_slots; i-- > 0;) {
		uint32_t other;

		s[i].queue = Q_NONE;
		s[i].prev = s[i].next = s[i].hnext = NIL;
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
		if (s[i].state == SLOT_DIRTY)
			p->dirty++;
		if (s[i].seq > p->seq)
			p->seq = s[i].seq;
	}
}

static void part_lock(struct azc_cache *c, struct azc_part *p)
{
	if (pthread_mutex_lock(&p->lock) == EOWNERDEAD) {
		/* its holder died mid-change: what the slots say is the truth */
		part_rebuild(c, p);
		p->recoveries++;
		pthread_mutex_consistent(&p->lock);
	}
}

static void part_unlock(struct azc_part *p)
{
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
	    pr->mode > AZC_MODE_PASSTHROUGH)
		return -EINVAL;
	blocks = pr->bytes / pr->block_size;
	*parts = pr->partitions ? pr->partitions : (uint32_t)(blocks / BLOCKS_PER_PART);
	if (*parts > PARTS_MAX)
		*parts = PARTS_MAX;
	if (!*parts)
		*parts = 1;
	*per_part = blocks / *parts;
	if (pr->queues > 4096 || pr->tags > 65536)
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
		c->part_off = off;
	off += (uint64_t)parts * sizeof(struct azc_part);
	for (uint32_t k = 0; k < parts; k++) {
		struct azc_part *p = apply ? part_at(c, k) : NULL;

		off = align_up(off, 64);
		if (p) {
			p->nr_slots = (uint32_t)per_part;
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
	atomic_store(&c->policy, (uint32_t)pr->policy);
	atomic_store(&c->mode, (uint32_t)pr->mode);
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
	if (s[n].state == SLOT_DIRTY)
		p->dirty++;
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
	if (dirty && (old == NIL || s[old].state != SLOT_DIRTY) && p->dirty + 1 >= p->nr_slots)
		return -ENOSPC;
	n = slot_alloc(c, p);
	if (n == NIL)
		return -ENOSPC;
	old = index_find(c, p, blk); /* (the eviction may have taken a clean old copy) */
	/* a new slot, never the old one rewritten: a rebuild keeps the newest */
	memcpy(slot_data(c, p, n), buf, c->block_size);
	s[n].blk = blk;
	s[n].seq = ++p->seq;
	s[n].state = dirty ? SLOT_DIRTY : SLOT_CLEAN;
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

int azc_dirty_next(struct azc_cache *c, uint64_t *cursor, uint64_t *blk, uint64_t *seq, void *buf)
{
	uint64_t total = 0;

	for (uint32_t k = 0; k < c->nr_parts; k++)
		total += part_at(c, k)->nr_slots;
	for (uint64_t n = 0; n < total; n++, (*cursor)++) {
		uint64_t pos = *cursor % total, base = 0;
		struct azc_part *p = NULL;
		struct azc_slot *s;
		uint32_t k;

		for (k = 0; k < c->nr_parts; k++) {
			p = part_at(c, k);
			if (pos < base + p->nr_slots)
				break;
			base += p->nr_slots;
		}
		s = slots(c, p);
		if (s[pos - base].state != SLOT_DIRTY)
			continue; /* (a peek without the lock: checked again under it) */
		part_lock(c, p);
		if (s[pos - base].state == SLOT_DIRTY) {
			*blk = s[pos - base].blk;
			*seq = s[pos - base].seq;
			memcpy(buf, slot_data(c, p, (uint32_t)(pos - base)), c->block_size);
			part_unlock(p);
			(*cursor)++;
			return 1;
		}
		part_unlock(p);
	}
	return 0;
}

void azc_mark_clean(struct azc_cache *c, uint64_t blk, uint64_t seq)
{
	struct azc_part *p = part_of(c, blk);
	struct azc_slot *s = slots(c, p);
	uint32_t i;

	part_lock(c, p);
	i = index_find(c, p, blk);
	if (i != NIL && s[i].seq == seq && s[i].state == SLOT_DIRTY) {
		s[i].state = SLOT_CLEAN;
		p->dirty--;
		p->cleaned++;
	}
	part_unlock(p);
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
		st->slots += p->nr_slots;
		st->used += p->used;
		st->dirty += p->dirty;
		part_unlock(p);
	}
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

uint64_t azc_write_begin(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first,
			 uint32_t n, bool *alone)
{
	struct azc_inflight *in = inflight_of(c, queue, tag);
	uint64_t v = atomic_fetch_add(&c->clock, 1) + 1;

	*alone = true;
	for (uint32_t k = 0; k < n; k++) {
		struct azc_stamp *st = stamp_of(c, first + k);

		if (atomic_fetch_add(&st->writing, 1))
			*alone = false;
		stamp_set(st, v);
	}
	if (in) {
		in->first = first;
		atomic_store(&in->n, n);
	}
	return v;
}

/* The write of [first, first + n) ends: buf kept (if keep) or what it covers dropped. */
static void write_done(struct azc_cache *c, uint64_t first, uint32_t n, uint64_t stamp, bool keep,
		       const void *buf)
{
	uint64_t v = atomic_fetch_add(&c->clock, 1) + 1;

	for (uint32_t k = 0; k < n; k++) {
		struct azc_stamp *st = stamp_of(c, first + k);
		uint64_t last = atomic_load(&st->last);
		/* nobody else began or ended a write on its bucket meanwhile (v: a
		 * block of this write before it, in the same bucket) */
		bool kept = keep && buf && (last == stamp || last == v) &&
			    atomic_load(&c->mode) == AZC_MODE_WRITETHROUGH;

		stamp_set(st, v);
		if (!kept || azc_put(c, first + k,
				     (const uint8_t *)buf + (uint64_t)k * c->block_size, false))
			azc_drop(c, first + k);
		if (atomic_load(&st->writing))
			atomic_fetch_sub(&st->writing, 1);
	}
}

void azc_write_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		   uint64_t stamp, bool alone, const void *buf)
{
	struct azc_inflight *in = inflight_of(c, queue, tag);

	/* (cleared first: a death from here on leaks a count, never frees one twice) */
	if (in)
		atomic_store(&in->n, 0);
	write_done(c, first, n, stamp, alone, buf);
}

void azc_queue_reset(struct azc_cache *c, uint32_t queue)
{
	for (uint32_t tag = 0; tag < c->tags; tag++) {
		struct azc_inflight *in = inflight_of(c, queue, tag);
		uint32_t n = in ? atomic_exchange(&in->n, 0) : 0;

		if (n)
			write_done(c, in->first, n, 0, false, NULL);
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

static const char *const azc_mode_names[] = { "writethrough", "writearound", "passthrough" };
static const char *const azc_policy_names[] = { "s3fifo", "lru" };

const char *azc_mode_name(enum azc_mode mode)
{
	return (unsigned)mode < 3 ? azc_mode_names[mode] : "?";
}

const char *azc_policy_name(enum azc_policy policy)
{
	return (unsigned)policy < 2 ? azc_policy_names[policy] : "?";
}

int azc_mode_parse(const char *name, enum azc_mode *mode)
{
	for (unsigned k = 0; k < 3; k++)
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
