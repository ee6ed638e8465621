// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_engines.c - the built-in engines (engine/engines/mem.c and null.c)
 * through their ops tables, with requests going through a real worker queue
 * on the kernel model of ring_model.c: mem's setup and caps, data round
 * trips, sharing between queues, discard/write-zeroes (whole pages punched
 * out, unaligned edges zeroed, neighbours untouched), range checks; null's
 * zeros.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engines/engines.h"
#include "ring_model.h"

#define DEV_SIZE (1u << 20)
#define SLOT_BYTES (64u << 10)
#define NR_SLOTS 4

/* One engine instance and a worker queue on it. */
struct engine_fixture {
	const struct azbuse_engine_ops *ops;
	void *engine;
	void *queue;
	struct ring_model m;
	uint32_t caps; /* what setup() declared */
	char error[128];
};

static void engine_open(struct engine_fixture *f, const struct azbuse_engine_ops *ops,
			uint64_t size)
{
	struct azbuse_engine_config cfg = {
		.size_bytes = size,
		.logical_block_size = 512,
		.nr_queues = 1,
		.error = f->error,
		.error_size = sizeof(f->error),
	};

	f->ops = ops;
	assert_int_equal(ops->setup(&cfg, &f->engine), 0);
	f->caps = cfg.caps;
}

/* A worker queue of engine `e` (which may be another fixture's). */
static void queue_open(struct engine_fixture *f, const struct azbuse_engine_ops *ops, void *e)
{
	const struct azbuse_queue_params p = {
		.nr_queues = 1,
		.nr_slots = NR_SLOTS,
		.size_bytes = DEV_SIZE,
		.numa_node = -1,
	};

	f->ops = ops;
	f->queue = NULL;
	if (ops->open_queue)
		assert_int_equal(ops->open_queue(e, &p, &f->queue), 0);
	model_init(&f->m, NR_SLOTS, SLOT_BYTES, 0);
	/* as the supervisor turns caps into device features */
	if (f->caps & AZBUSE_CAP_USER_COPY)
		f->m.geo.features |= AZBUSE_F_USER_COPY;
	model_attach(&f->m, ops, f->queue);
}

static void queue_close(struct engine_fixture *f)
{
	model_fini(&f->m);
	if (f->ops->close_queue)
		f->ops->close_queue(f->queue);
}

static int setup_mem(void **state)
{
	struct engine_fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	engine_open(f, &azbuse_mem_engine, DEV_SIZE);
	queue_open(f, &azbuse_mem_engine, f->engine);
	*state = f;
	return 0;
}

static int setup_null(void **state)
{
	struct engine_fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	engine_open(f, &azbuse_null_engine, DEV_SIZE);
	queue_open(f, &azbuse_null_engine, f->engine);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct engine_fixture *f = *state;

	queue_close(f);
	if (f->ops->teardown)
		f->ops->teardown(f->engine);
	free(f);
	return 0;
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + seed * 31 + 1) | 1; /* never zero */
}

static int io(struct engine_fixture *f, uint8_t op, uint64_t offset, uint32_t len, uint64_t flags,
	      void *buf)
{
	return model_io(&f->m, op, offset, len, flags, buf);
}

/* Fill the first `len` bytes of the device with a known pattern. */
static void write_pattern(struct engine_fixture *f, unsigned char *expect, uint32_t len)
{
	fill(expect, len, 3);
	assert_int_equal(io(f, AZBUSE_OP_WRITE, 0, len, 0, expect), 0);
}

static void assert_zero(const unsigned char *buf, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (buf[i])
			fail_msg("byte %zu is %#x, not zero", i, buf[i]);
}

static void test_mem_setup_needs_size(void **state)
{
	char error[128] = "";
	struct azbuse_engine_config cfg = { .error = error, .error_size = sizeof(error) };
	void *engine = NULL;

	(void)state;
	assert_int_equal(azbuse_mem_engine.setup(&cfg, &engine), -EINVAL);
	assert_null(engine);
	assert_non_null(strstr(error, "--size"));
}

static void test_mem_setup_sets_caps(void **state)
{
	const uint32_t want = AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA | AZBUSE_CAP_DISCARD |
			      AZBUSE_CAP_WRITE_ZEROES | AZBUSE_CAP_USER_COPY;
	char error[128] = "";
	struct azbuse_engine_config cfg = {
		.size_bytes = DEV_SIZE,
		.error = error,
		.error_size = sizeof(error),
	};
	void *engine = NULL;

	(void)state;
	assert_int_equal(azbuse_mem_engine.setup(&cfg, &engine), 0);
	assert_non_null(engine);
	assert_int_equal(cfg.caps & want, want);
	assert_false(cfg.caps & AZBUSE_CAP_READ_ONLY);
	assert_int_equal(cfg.size_bytes, DEV_SIZE);
	azbuse_mem_engine.teardown(engine);
}

static void test_mem_write_then_read(void **state)
{
	struct engine_fixture *f = *state;
	static unsigned char in[SLOT_BYTES], out[SLOT_BYTES];

	fill(in, sizeof(in), 1);
	assert_int_equal(io(f, AZBUSE_OP_WRITE, 128 << 10, sizeof(in), AZBUSE_RQ_FUA, in), 0);
	memset(out, 0, sizeof(out));
	assert_int_equal(io(f, AZBUSE_OP_READ, 128 << 10, sizeof(out), 0, out), 0);
	assert_memory_equal(out, in, sizeof(in));

	/* a part of it, at an offset inside */
	memset(out, 0, sizeof(out));
	assert_int_equal(io(f, AZBUSE_OP_READ, (128 << 10) + 1024, 512, 0, out), 0);
	assert_memory_equal(out, in + 1024, 512);
}

static void test_mem_flush_succeeds(void **state)
{
	struct engine_fixture *f = *state;

	assert_int_equal(io(f, AZBUSE_OP_FLUSH, 0, 0, AZBUSE_RQ_PREFLUSH, NULL), 0);
}

static void test_mem_is_shared_between_queues(void **state)
{
	struct engine_fixture *f = *state;
	struct engine_fixture *g = calloc(1, sizeof(*g));
	static unsigned char a[8192], b[8192], out[8192];

	assert_non_null(g);
	g->caps = f->caps;
	queue_open(g, &azbuse_mem_engine, f->engine);
	fill(a, sizeof(a), 5);
	fill(b, sizeof(b), 9);

	assert_int_equal(io(f, AZBUSE_OP_WRITE, 0, sizeof(a), 0, a), 0);
	assert_int_equal(io(g, AZBUSE_OP_READ, 0, sizeof(out), 0, out), 0);
	assert_memory_equal(out, a, sizeof(a));

	assert_int_equal(io(g, AZBUSE_OP_WRITE, DEV_SIZE - sizeof(b), sizeof(b), 0, b), 0);
	assert_int_equal(io(f, AZBUSE_OP_READ, DEV_SIZE - sizeof(out), sizeof(out), 0, out), 0);
	assert_memory_equal(out, b, sizeof(b));

	queue_close(g);
	free(g);
}

/* Zero [offset, offset + len) with op, then check it and its neighbours. */
static void check_zeroing(struct engine_fixture *f, uint8_t op, uint64_t flags, uint32_t offset,
			  uint32_t len)
{
	static unsigned char expect[SLOT_BYTES], out[SLOT_BYTES];

	assert_true(offset + len <= SLOT_BYTES);
	write_pattern(f, expect, SLOT_BYTES);
	assert_int_equal(io(f, op, offset, len, flags, NULL), 0);
	memset(expect + offset, 0, len);

	memset(out, 0xee, sizeof(out));
	assert_int_equal(io(f, AZBUSE_OP_READ, 0, SLOT_BYTES, 0, out), 0);
	assert_zero(out, offset, offset + len);
	assert_memory_equal(out, expect, SLOT_BYTES);
}

static void test_mem_discard_unaligned_range(void **state)
{
	check_zeroing(*state, AZBUSE_OP_DISCARD, 0, 512, 8192 + 1024);
}

static void test_mem_discard_aligned_range(void **state)
{
	check_zeroing(*state, AZBUSE_OP_DISCARD, 0, 8192, 16384);
}

static void test_mem_discard_inside_one_page(void **state)
{
	check_zeroing(*state, AZBUSE_OP_DISCARD, 0, 4096 + 1024, 1536);
}

static void test_mem_write_zeroes_unaligned_range(void **state)
{
	check_zeroing(*state, AZBUSE_OP_WRITE_ZEROES, 0, 512, 8192 + 1024);
}

static void test_mem_write_zeroes_nounmap(void **state)
{
	check_zeroing(*state, AZBUSE_OP_WRITE_ZEROES, AZBUSE_RQ_NOUNMAP, 512, 8192 + 1024);
	check_zeroing(*state, AZBUSE_OP_WRITE_ZEROES, AZBUSE_RQ_NOUNMAP, 4096, 4096);
}

static void test_mem_secure_erase_zeroes(void **state)
{
	check_zeroing(*state, AZBUSE_OP_SECURE_ERASE, 0, 1024, 12288);
}

static void test_mem_discard_whole_device(void **state)
{
	struct engine_fixture *f = *state;
	static unsigned char expect[SLOT_BYTES], out[SLOT_BYTES];

	write_pattern(f, expect, SLOT_BYTES);
	assert_int_equal(io(f, AZBUSE_OP_DISCARD, 0, DEV_SIZE, 0, NULL), 0);
	assert_int_equal(io(f, AZBUSE_OP_READ, 0, SLOT_BYTES, 0, out), 0);
	assert_zero(out, 0, SLOT_BYTES);
}

static void test_mem_out_of_range_is_eio(void **state)
{
	struct engine_fixture *f = *state;
	static unsigned char buf[8192];

	assert_int_equal(io(f, AZBUSE_OP_READ, DEV_SIZE, 512, 0, buf), -EIO);
	assert_int_equal(io(f, AZBUSE_OP_WRITE, DEV_SIZE - 512, 1024, 0, buf), -EIO);
	assert_int_equal(io(f, AZBUSE_OP_READ, 1ULL << 40, 512, 0, buf), -EIO);
	assert_int_equal(io(f, AZBUSE_OP_DISCARD, DEV_SIZE - 4096, 8192, 0, NULL), -EIO);
	assert_int_equal(io(f, AZBUSE_OP_WRITE_ZEROES, DEV_SIZE + 4096, 4096, 0, NULL), -EIO);
	/* the last block itself is fine */
	assert_int_equal(io(f, AZBUSE_OP_WRITE, DEV_SIZE - 512, 512, 0, buf), 0);
	assert_int_equal(io(f, AZBUSE_OP_READ, DEV_SIZE - 512, 512, 0, buf), 0);
}

static void test_null_reads_zeros_after_write(void **state)
{
	struct engine_fixture *f = *state;
	static unsigned char in[8192], out[8192];

	fill(in, sizeof(in), 2);
	assert_int_equal(io(f, AZBUSE_OP_WRITE, 4096, sizeof(in), 0, in), 0);
	memset(model_slot_data(&f->m, 0), 0xff, SLOT_BYTES); /* stale slot data */
	memset(out, 0xff, sizeof(out));
	assert_int_equal(io(f, AZBUSE_OP_READ, 4096, sizeof(out), 0, out), 0);
	assert_zero(out, 0, sizeof(out));
}

static void test_null_completes_every_op(void **state)
{
	struct engine_fixture *f = *state;

	assert_int_equal(io(f, AZBUSE_OP_FLUSH, 0, 0, 0, NULL), 0);
	assert_int_equal(io(f, AZBUSE_OP_DISCARD, 0, 4096, 0, NULL), 0);
	assert_int_equal(io(f, AZBUSE_OP_WRITE_ZEROES, 0, 4096, AZBUSE_RQ_NOUNMAP, NULL), 0);
	assert_int_equal(io(f, AZBUSE_OP_SECURE_ERASE, 0, 4096, 0, NULL), 0);
}

static void any_request(void *queue, struct azbuse_io *io)
{
	(void)queue;
	azbuse_complete(io, 0);
}

/* The callbacks say what the device offers; the flags only what they cannot. */
static void test_caps_from_callbacks(void **state)
{
	struct azbuse_engine_ops ops = { AZBUSE_ENGINE_INIT, .name = "t", .read = any_request,
					 .write = any_request };

	(void)state;
	/* bits without callbacks offer nothing; FUA needs a flush callback */
	assert_int_equal(
		azb_engine_caps(&ops, AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA | AZBUSE_CAP_DISCARD), 0);
	/* a flush callback without the FLUSH bit gives a write cache (it was never called) */
	ops.flush = any_request;
	assert_int_equal(azb_engine_caps(&ops, 0), AZBUSE_CAP_FLUSH);
	assert_int_equal(azb_engine_caps(&ops, AZBUSE_CAP_FUA), AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA);
	ops.discard = ops.write_zeroes = any_request;
	assert_int_equal(azb_engine_caps(&ops, AZBUSE_CAP_ROTATIONAL),
			 AZBUSE_CAP_FLUSH | AZBUSE_CAP_DISCARD | AZBUSE_CAP_WRITE_ZEROES |
				 AZBUSE_CAP_ROTATIONAL);
	/* read-only (a flag, or no write callback): nothing that writes */
	assert_int_equal(azb_engine_caps(&ops, AZBUSE_CAP_READ_ONLY),
			 AZBUSE_CAP_FLUSH | AZBUSE_CAP_READ_ONLY);
	ops.write = NULL;
	assert_int_equal(azb_engine_caps(&ops, 0), AZBUSE_CAP_FLUSH | AZBUSE_CAP_READ_ONLY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mem_setup_needs_size),
		cmocka_unit_test(test_mem_setup_sets_caps),
		cmocka_unit_test(test_caps_from_callbacks),
		cmocka_unit_test_setup_teardown(test_mem_write_then_read, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_mem_flush_succeeds, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_mem_is_shared_between_queues, setup_mem,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_discard_unaligned_range, setup_mem,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_discard_aligned_range, setup_mem,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_discard_inside_one_page, setup_mem,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_write_zeroes_unaligned_range, setup_mem,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_write_zeroes_nounmap, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_mem_secure_erase_zeroes, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_mem_discard_whole_device, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_mem_out_of_range_is_eio, setup_mem, teardown),
		cmocka_unit_test_setup_teardown(test_null_reads_zeros_after_write, setup_null,
						teardown),
		cmocka_unit_test_setup_teardown(test_null_completes_every_op, setup_null, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
