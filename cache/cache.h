/*
 * cache.h - the RAM cache tier: data blocks of one device in one shared
 * memory region that every queue worker of the device uses, whichever
 * worker filled a block. The region is made by the supervisor before it
 * forks the workers (a shared mapping, bound to the workers' NUMA node), so
 * a restarted worker finds it as it was, dirty blocks included.
 *
 * The region is cut into partitions by block number, each with its own
 * index, eviction state and lock. The locks are robust process-shared
 * mutexes: a worker that dies holding one leaves it to the next taker,
 * which rebuilds the partition from its slots' headers. A block's data is
 * never rewritten in place: a write fills a free slot and then replaces the
 * old one in the index (slots carry a sequence number, so a rebuild keeps
 * the newest of two), so a worker dying mid-copy loses only the write it
 * had not acknowledged.
 *
 * Eviction: S3-FIFO (Yang et al., "FIFO queues are all you need for cache
 * eviction", SOSP 2023) or plain LRU, per cache, switchable at run time.
 * S3-FIFO puts new blocks into a small FIFO (a tenth of the slots) and moves
 * only those hit twice there into the main FIFO; a ghost list of recently
 * evicted block numbers sends a block missed again straight to the main
 * FIFO. A scan (blocks read once) passes through the small FIFO and leaves
 * the main one, the hot set, alone; LRU gives the scan everything. Dirty
 * blocks are never evicted: the cleaner (azc_dirty_next, azc_mark_clean)
 * writes them back.
 */
#ifndef AZBUSE_CACHE_H
#define AZBUSE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum azc_policy {
	AZC_POLICY_S3FIFO = 0,
	AZC_POLICY_LRU = 1,
};

/* What the cache does with a device's requests (azc_mode_name). */
enum azc_mode {
	AZC_MODE_WRITETHROUGH = 0, /* reads fill it; a write is kept once it is stored */
	AZC_MODE_WRITEAROUND = 1,  /* reads fill it; a write drops what it covers */
	AZC_MODE_PASSTHROUGH = 2,  /* neither: it only drops what writes cover */
};

struct azc_params {
	uint64_t bytes;	     /* data bytes (rounded down to whole blocks per partition) */
	uint32_t block_size; /* a power of two, 512..1 MiB */
	uint32_t partitions; /* 0: one per 4096 blocks, at most 256 */
	enum azc_policy policy;
	enum azc_mode mode;
	int numa_node;	 /* -1: wherever the memory comes from */
	uint32_t queues; /* writes in flight are recorded for queues 0..queues-1 ... */
	uint32_t tags;	 /* ... with tags 0..tags-1 */
};

struct azc_cache; /* the shared region */

struct azc_stats {
	uint64_t hits, misses, inserts, evictions, cleaned;
	uint64_t slots, used, dirty;
	uint64_t recoveries; /* partitions rebuilt after a worker died holding their lock */
};

/*
 * Keeping up with writes the cache does not see in order. A global counter
 * stamps a table of block-number buckets whenever a write to one of their
 * blocks is dispatched or completes. A read that missed fills the cache only
 * if no write touched its blocks' buckets since it was dispatched
 * (azc_fill); a write's data is kept only if no other write touched them
 * while it was in flight, else what it covers is dropped (azc_write_end).
 */
uint64_t azc_stamp_now(struct azc_cache *c);
/* A write of blocks [first, first + n), request `tag` of queue `queue`, is
 * dispatched: returns its stamp; *alone: no other write to their buckets is
 * in flight. It is recorded until it ends (azc_queue_reset). */
uint64_t azc_write_begin(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first,
			 uint32_t n, bool *alone);
/* It completed: buf (its n blocks) is kept if it was alone, else (or with
 * buf NULL: it failed) what it covers is dropped. */
void azc_write_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		   uint64_t stamp, bool alone, const void *buf);
/* A new worker of `queue` starts: the writes its dead predecessor had in
 * flight end (what they cover is dropped; the kernel hands them over again). */
void azc_queue_reset(struct azc_cache *c, uint32_t queue);
/* A read of blocks [first, first + n) dispatched at `stamp` got buf: keep
 * what no write touched since. */
void azc_fill(struct azc_cache *c, uint64_t first, uint32_t n, uint64_t stamp, const void *buf);
/* All n blocks from first into buf: true, or false (nothing copied that
 * counts: some block is not cached). */
bool azc_read_all(struct azc_cache *c, uint64_t first, uint32_t n, void *buf);

enum azc_mode azc_get_mode(const struct azc_cache *c);
void azc_set_mode(struct azc_cache *c, enum azc_mode mode);
const char *azc_mode_name(enum azc_mode mode);
const char *azc_policy_name(enum azc_policy policy);
/* 0 and *mode / *policy, or -EINVAL for an unknown name. */
int azc_mode_parse(const char *name, enum azc_mode *mode);
int azc_policy_parse(const char *name, enum azc_policy *policy);

/* Make a region (MAP_SHARED, inherited by children forked later): 0 or -errno. */
int azc_create(const struct azc_params *p, struct azc_cache **c);
/* Unmap it (in every process that has it, the last one frees it). */
void azc_destroy(struct azc_cache *c);

uint32_t azc_block_size(const struct azc_cache *c);
enum azc_policy azc_get_policy(const struct azc_cache *c);
/* Switch the policy at once (the queues are rebuilt). */
void azc_set_policy(struct azc_cache *c, enum azc_policy policy);

/* Copy block `blk` into buf: 1 (a hit) or 0 (not cached). */
int azc_read(struct azc_cache *c, uint64_t blk, void *buf);
/*
 * Put block `blk` (clean: as the backing store has it; dirty: newer than
 * the backing store, to be written back). Evicts clean blocks as needed.
 * 0, or -ENOSPC (nothing changed) when a new dirty block would leave its
 * partition without a clean or free slot: write it through instead, then
 * put it clean. (A dirty block can always be written again.)
 */
int azc_put(struct azc_cache *c, uint64_t blk, const void *buf, bool dirty);
/* Drop block `blk` if cached (discards; a dirty block is lost with it). */
void azc_drop(struct azc_cache *c, uint64_t blk);

/*
 * The cleaner: the next dirty block from *cursor on (a position, start at
 * 0), copied into buf with its block number and the sequence number of its
 * data: 1, or 0 when a whole pass found none (the cursor wraps). Once the
 * copy is written back, azc_mark_clean(blk, seq) makes it clean unless it
 * was written again meanwhile.
 */
int azc_dirty_next(struct azc_cache *c, uint64_t *cursor, uint64_t *blk, uint64_t *seq, void *buf);
void azc_mark_clean(struct azc_cache *c, uint64_t blk, uint64_t seq);

void azc_get_stats(struct azc_cache *c, struct azc_stats *st);

#endif
