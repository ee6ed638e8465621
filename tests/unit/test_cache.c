// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_cache.c - the RAM cache tier's region (cache/cache.c, compiled in
 * here to reach a partition's lock): hits and misses, S3-FIFO keeping a hot
 * set through a scan twice the cache's size where LRU loses it, dirty
 * blocks never evicted and the cleaner's walk, several processes at once,
 * and a partition whose lock a dead process held.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache.c"

#define BS 512U

/* A block's content: its number and a version in every word. */
static void stamp(uint64_t *buf, uint64_t blk, uint64_t version)
{
	for (uint32_t i = 0; i < BS / 8; i += 2) {
		buf[i] = blk;
		buf[i + 1] = version;
	}
}

/* The version a block holds, or UINT64_MAX if it is not one block's whole. */
static uint64_t stamped(const uint64_t *buf, uint64_t blk)
{
	for (uint32_t i = 0; i < BS / 8; i += 2)
		if (buf[i] != blk || buf[i + 1] != buf[1])
			return UINT64_MAX;
	return buf[1];
}

static struct azc_cache *make(uint64_t blocks, uint32_t parts, enum azc_policy policy)
{
	struct azc_params p = { .bytes = blocks * BS,
				.block_size = BS,
				.partitions = parts,
				.policy = policy,
				.numa_node = -1,
				.queues = 2,
				.tags = 4 };
	struct azc_cache *c = NULL;

	assert_int_equal(azc_create(&p, &c), 0);
	return c;
}

static void test_hit_miss_drop(void **state)
{
	struct azc_cache *c = make(64, 1, AZC_POLICY_S3FIFO);
	uint64_t buf[BS / 8];
	struct azc_stats st;

	(void)state;
	assert_int_equal(azc_read(c, 7, buf), 0);
	stamp(buf, 7, 1);
	assert_int_equal(azc_put(c, 7, buf, false), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(azc_read(c, 7, buf), 1);
	assert_int_equal(stamped(buf, 7), 1);
	stamp(buf, 7, 2);
	assert_int_equal(azc_put(c, 7, buf, false), 0); /* replaced, not added */
	assert_int_equal(azc_read(c, 7, buf), 1);
	assert_int_equal(stamped(buf, 7), 2);
	azc_get_stats(c, &st);
	assert_int_equal(st.used, 1);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.misses, 1);
	azc_drop(c, 7);
	assert_int_equal(azc_read(c, 7, buf), 0);
	azc_get_stats(c, &st);
	assert_int_equal(st.used, 0);
	/* what it refuses */
	struct azc_params bad = { .bytes = 1 << 20, .block_size = 1000, .numa_node = -1 };
	struct azc_cache *none = NULL;

	assert_int_equal(azc_create(&bad, &none), -EINVAL);
	bad.block_size = 4096;
	bad.bytes = 100;
	assert_int_equal(azc_create(&bad, &none), -EINVAL);
	azc_destroy(c);
}

/* A read through the cache: a miss fills it (clean). */
static void read_through(struct azc_cache *c, uint64_t blk)
{
	uint64_t buf[BS / 8];

	if (azc_read(c, blk, buf)) {
		assert_int_equal(stamped(buf, blk), 0);
		return;
	}
	stamp(buf, blk, 0);
	assert_int_equal(azc_put(c, blk, buf, false), 0);
}

/* Of a hot set of half the cache, read often, how much is still cached
 * after a scan (blocks read once) of twice the cache's size. */
static double hot_kept_after_scan(enum azc_policy policy)
{
	const uint64_t slots = 1024, hot = slots / 2, scan = 2 * slots;
	struct azc_cache *c = make(slots, 1, policy);
	uint64_t buf[BS / 8], kept = 0;

	for (int round = 0; round < 4; round++)
		for (uint64_t b = 0; b < hot; b++)
			read_through(c, b);
	for (uint64_t b = 0; b < scan; b++)
		read_through(c, 1000000 + b);
	for (uint64_t b = 0; b < hot; b++)
		kept += azc_read(c, b, buf);
	azc_destroy(c);
	return (double)kept / (double)hot;
}

static void test_scan_resistance(void **state)
{
	double s3 = hot_kept_after_scan(AZC_POLICY_S3FIFO);
	double lru = hot_kept_after_scan(AZC_POLICY_LRU);

	(void)state;
	print_message("hot set kept through a scan of 2x the cache: S3-FIFO %.1f%%, LRU %.1f%%\n",
		      s3 * 100, lru * 100);
	assert_true(s3 >= 0.9);
	assert_true(lru < 0.1);
}

/* Hot and scan interleaved: one hot read per scan block. */
static void test_scan_interleaved(void **state)
{
	const uint64_t slots = 1024, hot = slots / 2;
	struct azc_cache *c = make(slots, 4, AZC_POLICY_S3FIFO);
	struct azc_stats before, after;

	(void)state;
	for (int round = 0; round < 4; round++)
		for (uint64_t b = 0; b < hot; b++)
			read_through(c, b);
	azc_get_stats(c, &before);
	for (uint64_t b = 0; b < 4 * slots; b++) {
		read_through(c, 1000000 + b);
		read_through(c, b % hot);
	}
	azc_get_stats(c, &after);
	/* nearly every hot read hits: at least 90% of them */
	assert_true(after.hits - before.hits >= 4 * slots * 9 / 10);
	azc_destroy(c);
}

/* The next block due for queue's cleaner (everything dirty is due), tag 0. */
static int clean_one(struct azc_cache *c, uint32_t queue, uint64_t *blk, uint64_t *seq,
		     uint64_t *buf)
{
	static uint64_t cursor;
	struct azc_clean_want w = { .target = UINT64_MAX };
	struct azc_clean_pass pass = { 0 };

	return azc_clean_next(c, queue, 0, &cursor, &w, &pass, blk, seq, buf);
}

static void test_dirty_blocks(void **state)
{
	const uint64_t slots = 64;
	struct azc_cache *c = make(slots, 1, AZC_POLICY_S3FIFO);
	uint64_t buf[BS / 8], blk, seq, seen = 0, seqs[64];
	struct azc_stats st;

	(void)state;
	for (uint64_t b = 0; b < slots - 1; b++) {
		stamp(buf, b, 5);
		assert_int_equal(azc_put(c, b, buf, true), 0);
	}
	/* one slot stays clean or free: no more dirty blocks ... */
	stamp(buf, 63, 5);
	assert_int_equal(azc_put(c, 63, buf, true), -ENOSPC);
	/* ... but a clean one fits, and takes it */
	stamp(buf, 999, 1);
	assert_int_equal(azc_put(c, 999, buf, false), 0);
	stamp(buf, 998, 1);
	assert_int_equal(azc_put(c, 998, buf, false), 0);
	assert_int_equal(azc_read(c, 999, buf), 0);
	/* a clean copy never replaces a dirty one */
	stamp(buf, 3, 1);
	assert_int_equal(azc_put(c, 3, buf, false), 0);
	assert_int_equal(azc_read(c, 3, buf), 1);
	assert_int_equal(stamped(buf, 3), 5);
	/* the cleaner's walk sees each dirty block once per pass */
	while (seen < slots - 1 && clean_one(c, 0, &blk, &seq, buf)) {
		assert_true(blk < slots);
		assert_int_equal(stamped(buf, blk), 5);
		seqs[blk] = seq;
		seen++;
	}
	assert_int_equal(seen, slots - 1);
	/* written again since the copy (a dirty block can always be): stays
	 * dirty; the others turn clean */
	stamp(buf, 0, 6);
	assert_int_equal(azc_put(c, 0, buf, true), 0);
	for (uint64_t b = 0; b < slots - 1; b++)
		azc_clean_end(c, 0, 0, b, seqs[b], 0, -1);
	azc_get_stats(c, &st);
	assert_int_equal(st.dirty, 1);
	assert_int_equal(st.cleaned, slots - 2);
	assert_int_equal(clean_one(c, 0, &blk, &seq, buf), 1);
	assert_int_equal(blk, 0);
	assert_int_equal(stamped(buf, 0), 6);
	azc_clean_end(c, 0, 0, blk, seq, 0, -1);
	/* clean blocks make room again */
	stamp(buf, 999, 1);
	assert_int_equal(azc_put(c, 999, buf, false), 0);
	assert_int_equal(azc_read(c, 0, buf), 1); /* the dirty one stayed */
	azc_destroy(c);
}

/* Several processes: puts (clean and dirty), reads and drops on a shared
 * cache; every block read is one block's whole content. */
static void test_processes(void **state)
{
	struct azc_cache *c = make(512, 8, AZC_POLICY_S3FIFO);
	struct azc_stats st;
	pid_t pids[4];

	(void)state;
	for (int k = 0; k < 4; k++) {
		pids[k] = fork();
		assert_true(pids[k] >= 0);
		if (pids[k])
			continue;
		unsigned seed = (unsigned)k + 1;
		uint64_t buf[BS / 8];

		for (int op = 0; op < 20000; op++) {
			uint64_t blk = (uint64_t)(rand_r(&seed) % 2048);
			int what = rand_r(&seed) % 10;

			if (what < 5) {
				if (azc_read(c, blk, buf) && stamped(buf, blk) == UINT64_MAX)
					_exit(1);
			} else if (what < 9) {
				stamp(buf, blk, (uint64_t)op);
				if (azc_put(c, blk, buf, what == 8) && what != 8)
					_exit(2); /* only a new dirty block may be refused */
			} else {
				azc_drop(c, blk);
			}
		}
		_exit(0);
	}
	for (int k = 0; k < 4; k++) {
		int status;

		assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	azc_get_stats(c, &st);
	assert_true(st.used <= st.slots);
	assert_true(st.dirty <= st.used);
	assert_int_equal(st.recoveries, 0);
	azc_destroy(c);
}

/*
 * A process dies holding a partition's lock, in the middle of a put (a
 * slot taken, its data half copied): the next taker rebuilds the
 * partition; the dirty blocks put before are all there, the half-put one
 * is not, and the cache goes on working.
 */
static void test_dead_lock_holder(void **state)
{
	struct azc_cache *c = make(128, 1, AZC_POLICY_S3FIFO);
	uint64_t buf[BS / 8];
	struct azc_stats st;
	pid_t pid;
	int status;

	(void)state;
	for (uint64_t b = 0; b < 100; b++) {
		stamp(buf, b, 7);
		assert_int_equal(azc_put(c, b, buf, b % 2 == 0), 0);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct azc_part *p = part_of(c, 5);
		uint32_t n;

		part_lock(c, p);
		n = slot_alloc(c, p); /* a new copy of block 5, never finished */
		slots(c, p)[n].blk = 5;
		memset(slot_data(c, p, n), 0xee, BS / 2);
		_exit(0); /* holding the lock */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (uint64_t b = 0; b < 100; b++) {
		assert_int_equal(azc_read(c, b, buf), 1);
		assert_int_equal(stamped(buf, b), 7);
	}
	azc_get_stats(c, &st);
	assert_int_equal(st.recoveries, 1);
	assert_int_equal(st.used, 100);
	assert_int_equal(st.dirty, 50);
	stamp(buf, 500, 1);
	assert_int_equal(azc_put(c, 500, buf, true), 0);
	assert_int_equal(azc_read(c, 500, buf), 1);
	azc_destroy(c);
}

static void test_policy_switch(void **state)
{
	struct azc_cache *c = make(256, 2, AZC_POLICY_S3FIFO);
	uint64_t buf[BS / 8];
	struct azc_stats st;

	(void)state;
	for (uint64_t b = 0; b < 200; b++) {
		stamp(buf, b, 3);
		assert_int_equal(azc_put(c, b, buf, b < 10), 0);
	}
	azc_set_policy(c, AZC_POLICY_LRU);
	assert_int_equal(azc_get_policy(c), AZC_POLICY_LRU);
	for (uint64_t b = 0; b < 1000; b++)
		read_through(c, 5000 + b);
	for (uint64_t b = 0; b < 10; b++) { /* dirty: never evicted */
		assert_int_equal(azc_read(c, b, buf), 1);
		assert_int_equal(stamped(buf, b), 3);
	}
	azc_set_policy(c, AZC_POLICY_S3FIFO);
	azc_get_stats(c, &st);
	assert_int_equal(st.dirty, 10);
	assert_true(st.used <= st.slots);
	azc_destroy(c);
}

/* Reads and writes the cache sees out of order never leave old data in it. */
static void test_stamps(void **state)
{
	struct azc_cache *c = make(256, 2, AZC_POLICY_S3FIFO);
	uint64_t buf[2 * BS / 8], got[2 * BS / 8], r, w, w2;
	bool alone, alone2;

	(void)state;
	/* a read misses, a write to its block begins: the read's data is not kept */
	r = azc_stamp_now(c);
	assert_int_equal(azc_write_begin(c, 0, 1, 10, 2, &w, &alone), 0);
	assert_true(alone);
	stamp(buf, 10, 1);
	stamp(buf + BS / 8, 11, 1);
	azc_fill(c, 10, 2, r, buf);
	assert_false(azc_read_all(c, 10, 2, got));
	/* the write ends alone: its data is kept (write-through) */
	stamp(buf, 10, 2);
	stamp(buf + BS / 8, 11, 2);
	azc_write_end(c, 0, 1, 10, 2, w, alone, 0, buf);
	assert_true(azc_read_all(c, 10, 2, got));
	assert_int_equal(stamped(got, 10), 2);
	assert_int_equal(stamped(got + BS / 8, 11), 2);
	/* a read dispatched before that write ended fills nothing */
	stamp(buf, 10, 1);
	azc_fill(c, 10, 1, r, buf);
	assert_true(azc_read_all(c, 10, 1, got));
	assert_int_equal(stamped(got, 10), 2);
	/* two writes at once: neither is kept */
	assert_int_equal(azc_write_begin(c, 0, 1, 10, 1, &w, &alone), 0);
	assert_int_equal(azc_write_begin(c, 0, 2, 10, 1, &w2, &alone2), 0);
	assert_true(alone);
	assert_false(alone2);
	stamp(buf, 10, 3);
	azc_write_end(c, 0, 2, 10, 1, w2, alone2, 0, buf);
	stamp(buf, 10, 4);
	azc_write_end(c, 0, 1, 10, 1, w, alone, 0, buf);
	assert_false(azc_read_all(c, 10, 1, got));
	/* a read after them fills; write-around drops what a write covers */
	r = azc_stamp_now(c);
	stamp(buf, 10, 4);
	azc_fill(c, 10, 1, r, buf);
	assert_true(azc_read_all(c, 10, 1, got));
	azc_set_mode(c, AZC_MODE_WRITEAROUND);
	assert_int_equal(azc_write_begin(c, 0, 1, 10, 1, &w, &alone), 0);
	stamp(buf, 10, 5);
	azc_write_end(c, 0, 1, 10, 1, w, alone, 0, buf);
	assert_false(azc_read_all(c, 10, 1, got));
	/* a worker dies with a write in flight: its successor's reset ends it */
	azc_set_mode(c, AZC_MODE_WRITETHROUGH);
	r = azc_stamp_now(c);
	stamp(buf, 30, 1);
	azc_fill(c, 30, 1, r, buf);
	assert_true(azc_read_all(c, 30, 1, got));
	assert_int_equal(azc_write_begin(c, 1, 3, 30, 1, &w, &alone), 0);
	r = azc_stamp_now(c);
	azc_fill(c, 30, 1, r, buf); /* (a write is in flight: nothing filled) */
	azc_queue_reset(c, 1);
	assert_false(azc_read_all(c, 30, 1, got));
	r = azc_stamp_now(c);
	stamp(buf, 30, 2);
	azc_fill(c, 30, 1, r, buf); /* the bucket is free again */
	assert_true(azc_read_all(c, 30, 1, got));
	assert_int_equal(stamped(got, 30), 2);
	(void)w;
	/* pass-through: no hits, no fills */
	azc_set_mode(c, AZC_MODE_PASSTHROUGH);
	r = azc_stamp_now(c);
	azc_fill(c, 20, 1, r, buf);
	assert_false(azc_read_all(c, 20, 1, got));
	azc_destroy(c);
}

/* A write-back holds its bucket: writes to the store and reads that must see
 * dirty blocks wait; and a write or read in flight keeps the cleaner off. */
static void test_write_back_exclusion(void **state)
{
	struct azc_cache *c = make(64, 1, AZC_POLICY_S3FIFO);
	struct azc_clean_want w = { .target = UINT64_MAX };
	struct azc_clean_pass pass = { 0 };
	uint64_t buf[BS / 8], cursor = 0, blk, seq, st;
	bool alone;

	(void)state;
	azc_set_mode(c, AZC_MODE_WRITEBACK);
	stamp(buf, 5, 1);
	assert_int_equal(azc_write_dirty(c, 0, 5, 1, buf), 0);
	/* a read in flight: the cleaner passes the block over */
	assert_int_equal(azc_read_begin(c, 0, 1, 5, 1, &st), 1);
	assert_int_equal(azc_clean_next(c, 0, 3, &cursor, &w, &pass, &blk, &seq, buf), 0);
	assert_int_equal(pass.busy, 1);
	azc_read_end(c, 0, 1, 5 * BS, BS, 1, buf);
	assert_int_equal(stamped(buf, 5), 1);
	/* now it takes it, and writes and reads of it wait */
	memset(&pass, 0, sizeof(pass));
	assert_int_equal(azc_clean_next(c, 0, 3, &cursor, &w, &pass, &blk, &seq, buf), 1);
	assert_int_equal(blk, 5);
	assert_int_equal(azc_write_begin(c, 1, 0, 5, 1, &st, &alone), -EBUSY);
	assert_int_equal(azc_read_begin(c, 1, 0, 5, 1, &st), -EBUSY);
	/* its worker dies: the successor's reset frees the bucket, the block stays dirty */
	azc_queue_reset(c, 0);
	assert_true(azc_is_dirty(c, 5));
	assert_int_equal(azc_write_begin(c, 1, 0, 5, 1, &st, &alone), 0);
	/* a write in flight keeps the cleaner off too */
	memset(&pass, 0, sizeof(pass));
	assert_int_equal(azc_clean_next(c, 0, 3, &cursor, &w, &pass, &blk, &seq, buf), 0);
	assert_int_equal(pass.busy, 1);
	stamp(buf, 5, 2);
	azc_write_end(c, 1, 0, 5, 1, st, alone, 0, buf);
	/* that write replaced the older dirty copy, clean */
	assert_false(azc_is_dirty(c, 5));
	assert_int_equal(azc_read(c, 5, buf), 1);
	assert_int_equal(stamped(buf, 5), 2);
	azc_destroy(c);
}

/* What a write to the store leaves: a dirty copy put while it was in flight
 * stays (newer); one from before goes; a failed write keeps dirty copies. */
static void test_write_settle(void **state)
{
	struct azc_cache *c = make(64, 1, AZC_POLICY_S3FIFO);
	uint64_t buf[BS / 8], st;
	bool alone;

	(void)state;
	azc_set_mode(c, AZC_MODE_WRITEBACK);
	assert_int_equal(azc_write_begin(c, 0, 0, 7, 1, &st, &alone), 0);
	stamp(buf, 7, 9);
	assert_int_equal(azc_write_dirty(c, 0, 7, 1, buf), 0); /* a newer write, kept dirty */
	stamp(buf, 7, 8);
	azc_write_end(c, 0, 0, 7, 1, st, alone, 0, buf);
	assert_true(azc_is_dirty(c, 7));
	assert_int_equal(azc_read(c, 7, buf), 1);
	assert_int_equal(stamped(buf, 7), 9);
	/* a failed write: the dirty copy stays */
	assert_int_equal(azc_write_begin(c, 0, 0, 7, 1, &st, &alone), 0);
	azc_write_end(c, 0, 0, 7, 1, st, alone, -EIO, NULL);
	assert_true(azc_is_dirty(c, 7));
	/* a discard (no data): the older dirty copy goes */
	assert_int_equal(azc_write_begin(c, 0, 0, 7, 1, &st, &alone), 0);
	azc_write_end(c, 0, 0, 7, 1, st, alone, 0, NULL);
	assert_false(azc_is_dirty(c, 7));
	assert_int_equal(azc_read(c, 7, buf), 0);
	assert_int_equal(azc_dirty_count(c), 0);
	azc_destroy(c);
}

/*
 * A read of the store that began before a write the cache absorbed (dirty),
 * ending after that write was written back and became clean, does not fill
 * its older data in over it.
 */
static void test_fill_after_write_back(void **state)
{
	struct azc_cache *c = make(64, 1, AZC_POLICY_S3FIFO);
	struct azc_clean_want w = { .target = UINT64_MAX };
	struct azc_clean_pass pass = { 0 };
	uint64_t buf[BS / 8], cursor = 0, blk, seq, st;

	(void)state;
	azc_set_mode(c, AZC_MODE_WRITEBACK);
	/* no dirty block: the read is not registered, only stamped */
	assert_int_equal(azc_read_begin(c, 0, 1, 5, 1, &st), 0);
	stamp(buf, 5, 2);
	assert_int_equal(azc_write_dirty(c, 1, 5, 1, buf), 0);
	assert_int_equal(azc_clean_next(c, 1, 3, &cursor, &w, &pass, &blk, &seq, buf), 1);
	assert_int_equal(blk, 5);
	azc_clean_end(c, 1, 3, blk, seq, 0, -1);
	assert_false(azc_is_dirty(c, 5));
	stamp(buf, 5, 1); /* what the store gave the read, before the write */
	azc_fill(c, 5, 1, st, buf);
	assert_int_equal(azc_read(c, 5, buf), 1);
	assert_int_equal(stamped(buf, 5), 2);
	azc_destroy(c);
}

/*
 * The thresholds and the cleaner's choice: dirty blocks past the high mark
 * wake the cleaning (past 90%, only blocks dirty already are kept dirty), which writes back blocks
 * not written again since its last pass, down to the low mark; a hot set written over and over is
 * written back once per cleaning, not at every write (a 70/30 trace:
 * cleaner writes stay under 1.5x the blocks written, and under 1x).
 */
static void test_thresholds_and_hot_blocks(void **state)
{
	const uint64_t slots = 1000;
	struct azc_params p = { .bytes = slots * BS,
				.block_size = BS,
				.partitions = 4,
				.mode = AZC_MODE_WRITEBACK,
				.numa_node = -1,
				.queues = 1,
				.tags = 4,
				.dirty_low_pct = 10,
				.dirty_high_pct = 40 };
	struct azc_cache *c = NULL;
	uint64_t buf[BS / 8], cursor = 0, blk, seq, writes = 0, cleaner = 0, rnd = 12345;
	struct azc_clean_want w;
	struct azc_stats st;

	(void)state;
	assert_int_equal(azc_create(&p, &c), 0);
	w = azc_clean_demand(c);
	assert_int_equal(w.background, AZC_CLEAN_NONE);
	/* 40%: the cleaning starts; 90%: a write of a block not dirty goes to
	 * the store instead (a block dirty already is written again: that adds
	 * no dirty block) */
	for (uint64_t b = 0; b < 399; b++) {
		stamp(buf, b, 1);
		assert_int_equal(azc_write_dirty(c, 0, b, 1, buf), 0);
	}
	assert_int_equal(azc_clean_demand(c).background, AZC_CLEAN_NONE);
	for (uint64_t b = 399; b < 899; b++) {
		stamp(buf, b, 1);
		assert_int_equal(azc_write_dirty(c, 0, b, 1, buf), 0);
	}
	stamp(buf, 899, 1);
	assert_int_equal(azc_write_dirty(c, 0, 899, 1, buf), -EAGAIN);
	stamp(buf, 5, 2);
	assert_int_equal(azc_write_dirty(c, 0, 5, 1, buf), 0);
	w = azc_clean_demand(c);
	assert_int_equal(w.background, AZC_CLEAN_COLD);
	assert_int_equal(w.target, 0);
	/* a pass marks them all seen (all were just written), the next writes them back */
	for (int round = 0; round < 4 && azc_dirty_count(c) * 10 > slots; round++) {
		struct azc_clean_pass pass = { 0 };

		while (azc_dirty_count(c) * 10 > slots &&
		       azc_clean_next(c, 0, 0, &cursor, &w, &pass, &blk, &seq, buf)) {
			azc_clean_end(c, 0, 0, blk, seq, 0, -1);
			w = azc_clean_demand(c);
		}
	}
	assert_true(azc_dirty_count(c) * 10 <= slots);
	assert_int_equal(azc_clean_demand(c).background, AZC_CLEAN_NONE);
	/* a 70/30 mix on a hot set of 600 blocks, the cleaner running every 50 requests */
	for (uint64_t b = 0; b < 1000; b++)
		if (azc_is_dirty(c, b)) { /* (start from clean) */
			struct azc_clean_want all = { .target = UINT64_MAX };
			struct azc_clean_pass pass = { 0 };

			while (azc_clean_next(c, 0, 0, &cursor, &all, &pass, &blk, &seq, buf))
				azc_clean_end(c, 0, 0, blk, seq, 0, -1);
			break;
		}
	azc_get_stats(c, &st);
	cleaner = st.writebacks;
	for (int i = 0; i < 20000; i++) {
		uint64_t b;

		rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		b = (rnd >> 33) % 600;
		if ((rnd >> 20) % 10 < 3) {
			stamp(buf, b, (uint64_t)i);
			if (azc_write_dirty(c, 0, b, 1, buf)) {
				/* (through: as the worker does, to the store, then kept clean) */
				uint64_t s;
				bool alone;

				assert_int_equal(azc_write_begin(c, 0, 1, b, 1, &s, &alone), 0);
				azc_write_end(c, 0, 1, b, 1, s, alone, 0, buf);
			}
			writes++;
		} else {
			(void)azc_read(c, b, buf);
		}
		if (i % 50 == 0) {
			struct azc_clean_pass pass = { 0 };

			w = azc_clean_demand(c);
			for (int k = 0;
			     k < 16 && (w.target || w.background) &&
			     azc_clean_next(c, 0, 0, &cursor, &w, &pass, &blk, &seq, buf);
			     k++)
				azc_clean_end(c, 0, 0, blk, seq, 0, -1);
		}
	}
	azc_get_stats(c, &st);
	print_message("70/30 on a hot set: %llu writes, %llu written back, %llu through\n",
		      (unsigned long long)writes, (unsigned long long)(st.writebacks - cleaner),
		      (unsigned long long)st.through);
	assert_true((st.writebacks - cleaner) * 2 <= writes * 3);
	assert_true(st.writebacks - cleaner < writes);
	azc_destroy(c);
}

/* Resizing: a smaller cache drops what lay beyond (never a dirty block),
 * keeps the rest, and grows back up to what it was made with. */
static void test_resize(void **state)
{
	struct azc_cache *c = make(256, 2, AZC_POLICY_S3FIFO);
	uint64_t buf[BS / 8];
	struct azc_stats st;
	uint64_t kept = 0;

	(void)state;
	for (uint64_t b = 0; b < 200; b++) {
		stamp(buf, b, 1);
		assert_int_equal(azc_put(c, b, buf, false), 0);
	}
	assert_int_equal(azc_resize(c, 512 * BS), -EINVAL); /* more than it has */
	assert_int_equal(azc_resize(c, 2 * BS), -EINVAL);   /* less than a slot per partition */
	assert_int_equal(azc_resize(c, 64 * BS), 0);
	azc_get_stats(c, &st);
	assert_int_equal(st.slots, 64);
	assert_true(st.used <= 64);
	for (uint64_t b = 0; b < 200; b++)
		if (azc_read(c, b, buf)) {
			assert_int_equal(stamped(buf, b), 1);
			kept++;
		}
	assert_int_equal(kept, st.used);
	/* it fills only its new size */
	for (uint64_t b = 300; b < 500; b++) {
		stamp(buf, b, 2);
		assert_int_equal(azc_put(c, b, buf, false), 0);
	}
	azc_get_stats(c, &st);
	assert_true(st.used <= 64);
	/* grows back, and takes more */
	assert_int_equal(azc_resize(c, 256 * BS), 0);
	for (uint64_t b = 600; b < 800; b++) {
		stamp(buf, b, 3);
		assert_int_equal(azc_put(c, b, buf, false), 0);
	}
	azc_get_stats(c, &st);
	assert_int_equal(st.slots, 256);
	assert_true(st.used > 128);
	/* a dirty block where the cache would shrink: refused, nothing lost */
	azc_set_mode(c, AZC_MODE_WRITEBACK);
	for (uint64_t b = 900; b < 1000; b++) {
		stamp(buf, b, 4);
		(void)azc_write_dirty(c, 0, b, 1, buf);
	}
	assert_int_equal(azc_resize(c, 16 * BS), -EBUSY);
	for (uint64_t b = 900; b < 1000; b++)
		if (azc_is_dirty(c, b)) {
			assert_int_equal(azc_read(c, b, buf), 1);
			assert_int_equal(stamped(buf, b), 4);
		}
	azc_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss_drop),
		cmocka_unit_test(test_scan_resistance),
		cmocka_unit_test(test_scan_interleaved),
		cmocka_unit_test(test_dirty_blocks),
		cmocka_unit_test(test_processes),
		cmocka_unit_test(test_dead_lock_holder),
		cmocka_unit_test(test_policy_switch),
		cmocka_unit_test(test_stamps),
		cmocka_unit_test(test_write_back_exclusion),
		cmocka_unit_test(test_write_settle),
		cmocka_unit_test(test_fill_after_write_back),
		cmocka_unit_test(test_thresholds_and_hot_blocks),
		cmocka_unit_test(test_resize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
