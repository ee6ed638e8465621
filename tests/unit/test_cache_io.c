// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_cache_io.c - the worker's side of the RAM cache (engine/cache_io.c)
 * in write-back mode, on the kernel model of ring_model.c and a RAM store
 * engine that logs what reaches it: writes kept dirty without touching the
 * store, reads that see dirty blocks (whole hits and misses with dirty
 * blocks over the store's data), a FLUSH that reaches the engine only after
 * every dirty block was written back, an unaligned write into a dirty block
 * held back until that block is in the store, FUA written through, failed
 * write-backs failing the FLUSH, a write-back the engine hands to another
 * queue left to that queue, and the sequential cutoff.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ring_model.h"

#define DEV_SIZE (1u << 20)
#define SLOT_BYTES (64u << 10)
#define NR_SLOTS 8
#define BLK AZBUSE_CACHE_BLOCK

/* A RAM store that logs the ops reaching it. */
struct store {
	uint8_t data[DEV_SIZE];
	uint8_t log[256]; /* ops, in order */
	unsigned nr_log;
	unsigned writes, flushes;
	int64_t redirect_blk; /* a write of this block goes to queue 1 (-1: none) */
	int64_t fail_blk;     /* a write of this block fails with -EIO (-1: none) */
};

static void store_request(void *queue, struct azbuse_io *io)
{
	struct store *st = queue;

	if (st->nr_log < sizeof(st->log))
		st->log[st->nr_log++] = io->op;
	switch (io->op) {
	case AZBUSE_OP_READ:
		memcpy(io->buf, st->data + io->offset, io->len);
		break;
	case AZBUSE_OP_WRITE:
		if ((int64_t)(io->offset / BLK) == st->redirect_blk) {
			azbuse_complete_redirect(io, 1);
			return;
		}
		if ((int64_t)(io->offset / BLK) == st->fail_blk) {
			azbuse_complete(io, -EIO);
			return;
		}
		memcpy(st->data + io->offset, io->buf, io->len);
		st->writes++;
		break;
	case AZBUSE_OP_FLUSH:
		st->flushes++;
		break;
	default:
		break;
	}
	azbuse_complete(io, 0);
}

static const struct azbuse_engine_ops store_ops = {
	AZBUSE_ENGINE_INIT,	.name = "store",	.read = store_request,
	.write = store_request, .flush = store_request,
};

struct fixture {
	struct ring_model m;
	struct store st;
	struct azc_cache *c;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct azc_params p = { .bytes = 256 * BLK,
				.block_size = BLK,
				.policy = AZC_POLICY_S3FIFO,
				.mode = AZC_MODE_WRITEBACK,
				.numa_node = -1,
				.queues = 2,
				.tags = NR_SLOTS + AZB_CLEAN_IOS,
				.dirty_low_pct = 40,
				.dirty_high_pct = 90 };

	assert_non_null(f);
	f->st.redirect_blk = f->st.fail_blk = -1;
	assert_int_equal(azc_create(&p, &f->c), 0);
	model_init(&f->m, NR_SLOTS, SLOT_BYTES, 0);
	model_attach(&f->m, &store_ops, &f->st);
	f->m.q.cache = f->c;
	assert_int_equal(azb_cache_worker_open(&f->m.q), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	azb_cache_worker_close(&f->m.q);
	model_fini(&f->m);
	azc_destroy(f->c);
	free(f);
	return 0;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed * 31 + 1);
}

/* Post one request on tag 0 and turn until it completes (at most 5 turns); its result. */
static int run(struct fixture *f, uint8_t op, uint64_t offset, uint32_t len, uint64_t flags,
	       void *buf)
{
	struct model_rq rq = {
		.op = op, .flags = flags, .sector = offset >> 9, .len = len, .tag = 0, .buf = buf
	};
	unsigned before = f->m.slots[0].completions;

	model_post(&f->m, &rq);
	for (int turn = 0; turn < 5 && f->m.slots[0].completions == before; turn++)
		assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->m.slots[0].completions, before + 1);
	assert_int_equal(f->m.rejected, 0);
	return f->m.slots[0].result;
}

static void test_write_kept_dirty_and_read_back(void **state)
{
	struct fixture *f = *state;
	uint8_t in[2 * BLK], out[3 * BLK];

	fill(in, sizeof(in), 1);
	assert_int_equal(run(f, AZBUSE_OP_WRITE, 4 * BLK, sizeof(in), 0, in), 0);
	assert_int_equal(f->st.nr_log, 0); /* the store saw nothing */
	assert_int_equal(azc_dirty_count(f->c), 2);
	/* a whole hit */
	assert_int_equal(run(f, AZBUSE_OP_READ, 4 * BLK, 2 * BLK, 0, out), 0);
	assert_memory_equal(out, in, 2 * BLK);
	assert_int_equal(f->st.nr_log, 0);
	/* a miss (block 6 is not cached): the dirty blocks go over the store's data */
	fill(f->st.data + 6 * BLK, BLK, 9);
	assert_int_equal(run(f, AZBUSE_OP_READ, 4 * BLK, 3 * BLK, 0, out), 0);
	assert_int_equal(f->st.nr_log, 1);
	assert_memory_equal(out, in, 2 * BLK);
	assert_memory_equal(out + 2 * BLK, f->st.data + 6 * BLK, BLK);
	/* an unaligned read sees them too */
	assert_int_equal(run(f, AZBUSE_OP_READ, 4 * BLK + 512, 1024, 0, out), 0);
	assert_memory_equal(out, in + 512, 1024);
}

static void test_flush_writes_back_first(void **state)
{
	struct fixture *f = *state;
	uint8_t in[BLK];

	for (unsigned b = 0; b < 5; b++) {
		fill(in, sizeof(in), b + 20);
		assert_int_equal(run(f, AZBUSE_OP_WRITE, (10 + b) * BLK, BLK, 0, in), 0);
	}
	assert_int_equal(f->st.writes, 0);
	assert_int_equal(run(f, AZBUSE_OP_FLUSH, 0, 0, 0, NULL), 0);
	/* five write-backs, then the engine's flush */
	assert_int_equal(f->st.writes, 5);
	assert_int_equal(f->st.flushes, 1);
	assert_int_equal(f->st.nr_log, 6);
	assert_int_equal(f->st.log[5], AZBUSE_OP_FLUSH);
	for (unsigned b = 0; b < 5; b++) {
		fill(in, sizeof(in), b + 20);
		assert_memory_equal(f->st.data + (10 + b) * BLK, in, BLK);
	}
	assert_int_equal(azc_dirty_count(f->c), 0);
	/* nothing dirty: a FLUSH goes straight on */
	assert_int_equal(run(f, AZBUSE_OP_FLUSH, 0, 0, 0, NULL), 0);
	assert_int_equal(f->st.nr_log, 7);
}

static void test_unaligned_write_into_dirty_block(void **state)
{
	struct fixture *f = *state;
	uint8_t in[BLK], part[512], want[BLK];

	fill(in, sizeof(in), 3);
	assert_int_equal(run(f, AZBUSE_OP_WRITE, 20 * BLK, BLK, 0, in), 0);
	fill(part, sizeof(part), 4);
	/* the block's other bytes are only in the cache: it goes back first */
	assert_int_equal(run(f, AZBUSE_OP_WRITE, 20 * BLK + 1024, sizeof(part), 0, part), 0);
	memcpy(want, in, BLK);
	memcpy(want + 1024, part, sizeof(part));
	assert_memory_equal(f->st.data + 20 * BLK, want, BLK);
	assert_int_equal(f->st.writes, 2);
	assert_int_equal(azc_dirty_count(f->c), 0);
	uint8_t out[BLK];
	assert_int_equal(run(f, AZBUSE_OP_READ, 20 * BLK, BLK, 0, out), 0);
	assert_memory_equal(out, want, BLK);
}

static void test_fua_goes_through_and_replaces_dirty_copy(void **state)
{
	struct fixture *f = *state;
	uint8_t old[BLK], fua[BLK], out[BLK];

	fill(old, sizeof(old), 5);
	fill(fua, sizeof(fua), 6);
	assert_int_equal(run(f, AZBUSE_OP_WRITE, 30 * BLK, BLK, 0, old), 0);
	assert_int_equal(run(f, AZBUSE_OP_WRITE, 30 * BLK, BLK, AZBUSE_RQ_FUA, fua), 0);
	assert_int_equal(f->st.writes, 1);
	assert_memory_equal(f->st.data + 30 * BLK, fua, BLK);
	/* the older dirty copy is gone: a FLUSH writes nothing back over it */
	assert_int_equal(azc_dirty_count(f->c), 0);
	assert_int_equal(run(f, AZBUSE_OP_FLUSH, 0, 0, 0, NULL), 0);
	assert_int_equal(f->st.writes, 1);
	assert_memory_equal(f->st.data + 30 * BLK, fua, BLK);
	assert_int_equal(run(f, AZBUSE_OP_READ, 30 * BLK, BLK, 0, out), 0);
	assert_memory_equal(out, fua, BLK);
}

static void test_failed_write_back_fails_flush(void **state)
{
	struct fixture *f = *state;
	uint8_t in[BLK], out[BLK];

	fill(in, sizeof(in), 7);
	assert_int_equal(run(f, AZBUSE_OP_WRITE, 40 * BLK, BLK, 0, in), 0);
	f->st.fail_blk = 40;
	assert_int_equal(run(f, AZBUSE_OP_FLUSH, 0, 0, 0, NULL), -EIO);
	assert_int_equal(f->st.flushes, 0);
	/* the data stays in the cache, readable, and the next FLUSH tries again */
	assert_int_equal(azc_dirty_count(f->c), 1);
	assert_int_equal(run(f, AZBUSE_OP_READ, 40 * BLK, BLK, 0, out), 0);
	assert_memory_equal(out, in, BLK);
	f->st.fail_blk = -1;
	assert_int_equal(run(f, AZBUSE_OP_FLUSH, 0, 0, 0, NULL), 0);
	assert_memory_equal(f->st.data + 40 * BLK, in, BLK);
	assert_int_equal(azc_dirty_count(f->c), 0);
}

static void test_write_back_left_to_owner(void **state)
{
	struct fixture *f = *state;
	uint8_t in[BLK];
	struct azc_clean_want w = { .target = UINT64_MAX };
	struct azc_clean_pass pass = { 0 };
	uint64_t cursor = 0, blk, seq;

	fill(in, sizeof(in), 8);
	assert_int_equal(run(f, AZBUSE_OP_WRITE, 50 * BLK, BLK, 0, in), 0);
	f->st.redirect_blk = 50;
	/* queue 0 cannot write it back: its FLUSH goes on without it */
	assert_int_equal(run(f, AZBUSE_OP_FLUSH, 0, 0, 0, NULL), 0);
	assert_int_equal(f->st.writes, 0);
	assert_int_equal(azc_dirty_count(f->c), 1);
	/* queue 1 (the owner) gets it */
	assert_int_equal(azc_clean_next(f->c, 1, NR_SLOTS, &cursor, &w, &pass, &blk, &seq,
					f->st.data + 50 * BLK),
			 1);
	assert_int_equal(blk, 50);
	azc_clean_end(f->c, 1, NR_SLOTS, blk, seq, 0, -1);
	assert_int_equal(azc_dirty_count(f->c), 0);
	assert_memory_equal(f->st.data + 50 * BLK, in, BLK);
}

static void test_sequential_cutoff(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[16384], one[BLK];

	azc_set_seq_cutoff(f->c, 64 << 10);
	/* a stream of 16 KiB reads: the first 64 KiB fill the cache, the rest not */
	for (unsigned k = 0; k < 8; k++)
		assert_int_equal(
			run(f, AZBUSE_OP_READ, 64 * BLK + k * sizeof(buf), sizeof(buf), 0, buf), 0);
	for (uint64_t b = 64; b < 80; b++)
		assert_int_equal(azc_read(f->c, b, one), 1);
	for (uint64_t b = 80; b < 96; b++)
		assert_int_equal(azc_read(f->c, b, one), 0);
	/* a request elsewhere starts a stream of its own, and fills */
	assert_int_equal(run(f, AZBUSE_OP_READ, 200 * BLK, BLK, 0, one), 0);
	assert_int_equal(azc_read(f->c, 200, one), 1);
	/* a stream of writes: kept dirty up to the cutoff, then written through */
	for (unsigned k = 0; k < 8; k++) {
		fill(buf, sizeof(buf), k);
		assert_int_equal(
			run(f, AZBUSE_OP_WRITE, 128 * BLK + k * sizeof(buf), sizeof(buf), 0, buf),
			0);
	}
	assert_int_equal(f->st.writes, 4);
	assert_int_equal(azc_dirty_count(f->c), 16);
	fill(buf, sizeof(buf), 7);
	assert_memory_equal(f->st.data + 128 * BLK + 7 * sizeof(buf), buf, sizeof(buf));
	/* no cutoff: a stream fills all the way */
	azc_set_seq_cutoff(f->c, 0);
	for (unsigned k = 0; k < 8; k++)
		assert_int_equal(
			run(f, AZBUSE_OP_READ, 160 * BLK + k * sizeof(buf), sizeof(buf), 0, buf),
			0);
	assert_int_equal(azc_read(f->c, 191, one), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_kept_dirty_and_read_back, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flush_writes_back_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unaligned_write_into_dirty_block, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fua_goes_through_and_replaces_dirty_copy,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_back_fails_flush, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_back_left_to_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequential_cutoff, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
