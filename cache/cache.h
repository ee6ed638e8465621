/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
 * the main one, the hot set, alone; LRU gives the scan everything.
 *
 * Write-back: a write is kept as a dirty block and completes at once
 * (azc_write_dirty); dirty blocks are never evicted. The workers' cleaners
 * write them back (azc_clean_next, azc_clean_end): once dirty blocks pass
 * the high threshold, those not written again since the cleaner last
 * passed (so a hot block is written back once, not at every write) until
 * they are down to the low one, and for a FLUSH or a drain every block
 * dirty since a point of the global clock. A write-back holds its block's
 * bucket: writes to the store and reads that must see dirty blocks wait
 * for it (-EBUSY), so the store never gets an old copy after a newer one.
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
	AZC_MODE_WRITEBACK = 3,	   /* reads fill it; a write is kept dirty, stored later */
};

struct azc_params {
	uint64_t bytes;	     /* data bytes (rounded down to whole blocks per partition) */
	uint32_t block_size; /* a power of two, 512..1 MiB */
	uint32_t partitions; /* 0: one per 4096 blocks, at most 256 */
	enum azc_policy policy;
	enum azc_mode mode;
	int numa_node;	 /* -1: wherever the memory comes from (see azc_place) */
	uint32_t queues; /* writes in flight are recorded for queues 0..queues-1 ... */
	uint32_t tags;	 /* ... with tags 0..tags-1 */
	uint32_t dirty_low_pct, dirty_high_pct; /* write-back thresholds (0, 0: 10%, 40%) */
	uint64_t seq_cutoff; /* sequential streams longer than this bypass (0: none; default 4 MiB)
			      */
};
#define AZC_SEQ_CUTOFF_DEFAULT UINT64_MAX /* (in azc_params.seq_cutoff) */

struct azc_cache; /* the shared region */

struct azc_stats {
	uint64_t hits, misses, inserts, evictions, cleaned;
	uint64_t slots, used, dirty;
	uint64_t recoveries;	   /* partitions rebuilt after a worker died holding their lock */
	uint64_t absorbed;	   /* writes kept dirty (write-back) */
	uint64_t through;	   /* write-back writes sent to the store: too many dirty */
	uint64_t writebacks;	   /* blocks the cleaners wrote back */
	uint64_t writeback_errors; /* ... and failed to */
	uint64_t bypassed;	   /* requests of sequential streams past the cutoff */
	uint64_t module_hits;	   /* reads the module served from the cache (azc_region) */
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
/* A write to the store of blocks [first, first + n), request `tag` of queue
 * `queue`, is dispatched: 0 and its *stamp; *alone: no other write to their
 * buckets is in flight. It is recorded until it ends (azc_queue_reset).
 * -EBUSY: a write-back of one of them is in flight; try again later. */
int azc_write_begin(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		    uint64_t *stamp, bool *alone);
/* It completed: with result 0, buf (its n blocks) is kept if it was alone,
 * else (or with buf NULL) what it covers is dropped, a dirty copy put after
 * it began excepted; with an error, what it covers is dropped but dirty
 * copies (the store may have any part of the write). */
void azc_write_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		   uint64_t stamp, bool alone, int result, const void *buf);
/* It did not happen here (handed to another queue): nothing changes. */
void azc_write_cancel(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first,
		      uint32_t n);
/* How many requests per queue can be recorded in flight (azc_params.tags). */
uint32_t azc_tags(const struct azc_cache *c);
/* A new worker of `queue` starts: the writes its dead predecessor had in
 * flight end (what they cover is dropped; the kernel hands them over again). */
void azc_queue_reset(struct azc_cache *c, uint32_t queue);
/*
 * A read of blocks [first, first + n) that the cache does not hold whole
 * goes to the store: *stamp for azc_fill. 0: nothing else to do; 1: dirty
 * blocks exist, so the read holds off write-backs of its buckets and its
 * end (azc_read_end) copies what the cache has over what the store gave;
 * -EBUSY: a write-back of one is in flight, try again later.
 */
int azc_read_begin(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t first, uint32_t n,
		   uint64_t *stamp);
/* The read of bytes [offset, offset + len) ended (buf: what it got, or NULL). */
void azc_read_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t offset, uint32_t len,
		  int registered, void *buf);
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
/* Its pages from now on: from the one node in the mask, or interleaved
 * over several. 0 or -1 (errno). */
int azc_place(struct azc_cache *c, uint64_t nodes);
/* Unmap it (in every process that has it, the last one frees it). */
void azc_destroy(struct azc_cache *c);

uint32_t azc_block_size(const struct azc_cache *c);
enum azc_policy azc_get_policy(const struct azc_cache *c);
/* Switch the policy at once (the queues are rebuilt). */
void azc_set_policy(struct azc_cache *c, enum azc_policy policy);

/*
 * Use `bytes` of the region from now on (at most what it was made with; the
 * memory of slots given up goes back to the system): 0, -EINVAL, or -EBUSY
 * when a block to give up is dirty (write back first; what was resized
 * stays so).
 */
int azc_resize(struct azc_cache *c, uint64_t bytes);
uint64_t azc_max_bytes(const struct azc_cache *c);

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
/* Drop block `blk` if cached (a dirty block is lost with it). */
void azc_drop(struct azc_cache *c, uint64_t blk);

/*
 * Write-back mode: keep n whole blocks from first as dirty blocks (dirty
 * blocks reaching the high mark wake the cleaners). 0, or -EAGAIN (not
 * write-back, a drain holds dirty writes, or 90% of the cache is dirty and
 * a block is not dirty already) or -ENOSPC (no room): write it through to
 * the store instead.
 */
int azc_write_dirty(struct azc_cache *c, uint32_t queue, uint64_t first, uint32_t n,
		    const void *buf);

/* What the cleaners are to write back now. */
enum azc_background {
	AZC_CLEAN_NONE = 0, /* nothing on their own */
	AZC_CLEAN_COLD = 1, /* blocks not written again since the last pass */
	AZC_CLEAN_ALL = 2,  /* any dirty block */
};
struct azc_clean_want {
	uint64_t target; /* every block dirty since this or before (0: none) */
	enum azc_background background;
	bool urgent; /* dirty blocks near the most the cache takes: no waiting for quiet */
};
/* What a pass passed over: blocks another queue writes back (the engine
 * said so), blocks held by a request in flight, failed blocks, hot ones. */
struct azc_clean_pass {
	uint64_t foreign, busy, failed, hot;
};
/* What the thresholds, mode and drains ask for now (target 0 and NONE: nothing). */
struct azc_clean_want azc_clean_demand(struct azc_cache *c);
/*
 * The next block for queue's cleaner from *cursor on (start at 0): 1, its
 * number, the clock of its copy (*seq) and its data in buf, the write-back
 * recorded as request `tag` of `queue`; or 0 when a whole pass found none.
 */
int azc_clean_next(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t *cursor,
		   const struct azc_clean_want *w, struct azc_clean_pass *pass, uint64_t *blk,
		   uint64_t *seq, void *buf);
/* The write-back ended: result 0 (clean, unless written again since),
 * -errno (stays dirty, passed over until azc_clean_retry), or redirect >= 0:
 * only that queue can write it back. */
void azc_clean_end(struct azc_cache *c, uint32_t queue, uint32_t tag, uint64_t blk, uint64_t seq,
		   int result, int redirect);
/* Is blk cached dirty? How many blocks are? */
bool azc_is_dirty(struct azc_cache *c, uint64_t blk);
uint64_t azc_dirty_count(struct azc_cache *c);
/* Failed write-backs are tried again (a new FLUSH). */
void azc_clean_retry(struct azc_cache *c);
/* Dirty blocks with data older than `target` not in the store. */
uint64_t azc_dirty_before(struct azc_cache *c, uint64_t target);
/*
 * A drain: every block dirty now is to be written back (and, with hold,
 * no write is kept dirty until azc_drain_end); returns the target to wait
 * for with azc_dirty_before. The workers are woken.
 */
uint64_t azc_drain_begin(struct azc_cache *c, bool hold);
void azc_drain_end(struct azc_cache *c, bool hold);
/* Queue `queue`'s worker is process pid (woken with SIGUSR1 for cleaning). */
void azc_set_worker(struct azc_cache *c, uint32_t queue, int pid);
void azc_wake_workers(struct azc_cache *c);
void azc_set_dirty_limits(struct azc_cache *c, uint32_t low_pct, uint32_t high_pct);
void azc_get_dirty_limits(struct azc_cache *c, uint32_t *low_pct, uint32_t *high_pct);

void azc_get_stats(struct azc_cache *c, struct azc_stats *st);

/* The sequential cutoff: requests of a sequential stream past this many
 * bytes neither fill the cache nor are kept in it (0: no cutoff). */
uint64_t azc_get_seq_cutoff(struct azc_cache *c);
void azc_set_seq_cutoff(struct azc_cache *c, uint64_t bytes);

/* One queue's part: its requests (read_hits: served whole by the cache, by
 * the worker or by the module, which module_hits counts alone; read_misses:
 * sent on to the engine) and write-backs. */
struct azc_queue_stats {
	uint64_t read_hits, read_misses, absorbed, through, bypassed, writebacks, writeback_errors;
	uint64_t module_hits, module_blocks;
};
/* The region's start and length (whole pages), for the module to serve
 * hits from (AZBUSE_CTL_CACHE_ATTACH). */
void azc_region(const struct azc_cache *c, void **addr, uint64_t *len);
/* The module holds the region's pages (pinned): a shrink keeps its memory,
 * since the module would go on reading the pages given back. */
void azc_set_pinned(struct azc_cache *c, bool pinned);
void azc_note_read(struct azc_cache *c, uint32_t queue, bool hit);
void azc_note_bypass(struct azc_cache *c, uint32_t queue);
void azc_get_queue_stats(struct azc_cache *c, uint32_t queue, struct azc_queue_stats *st);
uint32_t azc_queues(const struct azc_cache *c);

#endif
