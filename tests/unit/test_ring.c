// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_ring.c - the worker's side of the ring protocol (engine/worker.c:
 * azbuse_queue_map, azbuse_queue_turn, azbuse_complete) against a userspace
 * model of the kernel side (ring_model.c), with a tiny recording engine:
 * data slots, batching (requests per COMMIT), what reaches the engine,
 * requests the worker must refuse, index wrap-around, completions from
 * other threads and the KICK, when a turn stops or skips the COMMIT, and an
 * engine that has the loop watch an fd of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ring_model.h"

#define NR_SLOTS 8
#define SLOT_BYTES 4096
#define IOPRIO_VALUE(class, level) (((class) << 13) | (level))

/* What the engine saw of one request. */
struct seen {
	uint8_t op;
	uint16_t ioprio;
	uint64_t flags;
	uint64_t offset;
	uint32_t len;
	uint32_t tag;
	void *buf;
	unsigned char data[SLOT_BYTES]; /* WRITE: the data it was given */
};

struct test_engine {
	struct seen seen[4 * NR_SLOTS];
	unsigned nr_seen;
	int result;	 /* for synchronous completions */
	int redirect_to; /* >= 0: hand every request to that queue instead */
	bool defer;	 /* stash requests instead of completing them */
	struct azbuse_io *stash[4 * NR_SLOTS];
	unsigned nr_stash;
	void (*hook)(struct test_engine *te); /* run at the start of every callback */
	struct ring_model *m;
};

struct fixture {
	struct ring_model m;
	struct test_engine te;
};

/* READ data: a byte that depends on the device offset. */
static unsigned char pattern(uint64_t offset, size_t i)
{
	return (unsigned char)((offset >> 9) * 31 + i * 7 + 1);
}

static void engine_request(void *queue, struct azbuse_io *io)
{
	struct test_engine *te = queue;
	struct seen *s;

	if (te->hook)
		te->hook(te);
	assert_true(te->nr_seen < sizeof(te->seen) / sizeof(te->seen[0]));
	s = &te->seen[te->nr_seen++];
	s->op = io->op;
	s->ioprio = io->ioprio;
	s->flags = io->flags;
	s->offset = io->offset;
	s->len = io->len;
	s->tag = io->tag;
	s->buf = io->buf;
	if (io->op == AZBUSE_OP_WRITE && io->len <= SLOT_BYTES)
		memcpy(s->data, io->buf, io->len);
	if (io->op == AZBUSE_OP_READ && io->len <= SLOT_BYTES) {
		for (size_t i = 0; i < io->len; i++)
			((unsigned char *)io->buf)[i] = pattern(io->offset, i);
	}
	if (te->defer) {
		te->stash[te->nr_stash++] = io;
		return;
	}
	if (te->redirect_to >= 0) {
		azbuse_complete_redirect(io, (uint16_t)te->redirect_to);
		return;
	}
	azbuse_complete(io, te->result);
}

/* Every op but SECURE_ERASE, which the engine does not support. */
static const struct azbuse_engine_ops test_ops = {
	AZBUSE_ENGINE_INIT,
	.name = "test",
	.read = engine_request,
	.write = engine_request,
	.flush = engine_request,
	.discard = engine_request,
	.write_zeroes = engine_request,
};

static int setup_at(void **state, uint32_t start_index)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	model_init(&f->m, NR_SLOTS, SLOT_BYTES, start_index);
	model_attach(&f->m, &test_ops, &f->te);
	f->te.m = &f->m;
	f->te.redirect_to = -1;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_at(state, 0);
}

/* Every index starts just below 2^32 and wraps during the test. */
static int setup_near_wrap(void **state)
{
	return setup_at(state, UINT32_MAX - 5);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	model_fini(&f->m);
	free(f);
	return 0;
}

static uint32_t post(struct fixture *f, uint8_t op, uint32_t tag, uint64_t sector, uint32_t len,
		     void *buf)
{
	struct model_rq rq = { .op = op, .sector = sector, .len = len, .tag = tag, .buf = buf };

	return model_post(&f->m, &rq);
}

static void test_read_round_trip(void **state)
{
	struct fixture *f = *state;
	unsigned char out[2048];

	memset(out, 0, sizeof(out));
	post(f, AZBUSE_OP_READ, 3, 40, sizeof(out), out);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 1);
	assert_ptr_equal(f->te.seen[0].buf, model_slot_data(&f->m, 3));
	assert_int_equal(f->m.slots[3].completions, 1);
	assert_int_equal(f->m.slots[3].result, 0);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], pattern(40 << 9, i));
	assert_int_equal(f->m.rejected, 0);
}

static void test_write_round_trip(void **state)
{
	struct fixture *f = *state;
	unsigned char in[SLOT_BYTES];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 13 + 5);
	post(f, AZBUSE_OP_WRITE, 5, 8, sizeof(in), in);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 1);
	assert_ptr_equal(f->te.seen[0].buf, model_slot_data(&f->m, 5));
	assert_memory_equal(f->te.seen[0].data, in, sizeof(in));
	assert_int_equal(f->m.slots[5].completions, 1);
	assert_int_equal(f->m.slots[5].result, 0);
	assert_int_equal(f->m.rejected, 0);
}

static void test_batch_is_committed_with_one_commit(void **state)
{
	struct fixture *f = *state;

	for (uint32_t tag = 0; tag < NR_SLOTS; tag++)
		post(f, tag % 2 ? AZBUSE_OP_WRITE : AZBUSE_OP_READ, tag, tag * 8, 4096, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, NR_SLOTS);
	assert_int_equal(f->m.commits, 1);
	assert_int_equal(f->m.completed, NR_SLOTS);
	assert_int_equal(f->m.rejected, 0);
	assert_int_equal(f->m.hdr->sq_head, f->m.sq_tail);
	assert_int_equal(f->m.hdr->cq_tail, f->m.cq_head);
}

static void test_request_fields_reach_engine_unchanged(void **state)
{
	struct fixture *f = *state;
	struct model_rq rq = {
		.op = AZBUSE_OP_WRITE,
		.flags = AZBUSE_RQ_FUA | AZBUSE_RQ_SYNC,
		.ioprio = IOPRIO_VALUE(2, 4),
		.sector = 0x123456789ULL,
		.len = 3072,
		.tag = 6,
	};
	struct seen *s = &f->te.seen[0];

	model_post(&f->m, &rq);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 1);
	assert_int_equal(s->op, AZBUSE_OP_WRITE);
	assert_int_equal(s->flags, AZBUSE_RQ_FUA | AZBUSE_RQ_SYNC);
	assert_int_equal(s->ioprio, IOPRIO_VALUE(2, 4));
	assert_int_equal(s->offset, 0x123456789ULL << 9);
	assert_int_equal(s->len, 3072);
	assert_int_equal(s->tag, 6);
}

static void test_every_op_reaches_its_callback(void **state)
{
	struct fixture *f = *state;
	const uint8_t ops[] = { AZBUSE_OP_READ, AZBUSE_OP_WRITE, AZBUSE_OP_FLUSH, AZBUSE_OP_DISCARD,
				AZBUSE_OP_WRITE_ZEROES };
	struct model_rq rq = { .flags = AZBUSE_RQ_NOUNMAP | AZBUSE_RQ_PREFLUSH, .len = 512 };

	for (uint32_t i = 0; i < sizeof(ops); i++) {
		rq.op = ops[i];
		rq.tag = i;
		model_post(&f->m, &rq);
	}
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, sizeof(ops));
	for (uint32_t i = 0; i < sizeof(ops); i++) {
		assert_int_equal(f->te.seen[i].op, ops[i]);
		assert_int_equal(f->te.seen[i].flags, AZBUSE_RQ_NOUNMAP | AZBUSE_RQ_PREFLUSH);
		assert_int_equal(f->m.slots[i].result, 0);
	}
}

static void test_engine_error_is_passed_on(void **state)
{
	struct fixture *f = *state;

	f->te.result = -ENOSPC;
	post(f, AZBUSE_OP_WRITE, 0, 0, 512, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->m.slots[0].result, -ENOSPC);
}

/* azbuse_complete_redirect(): a REDIRECT completion naming the queue, nothing else. */
static void test_redirect_names_the_queue(void **state)
{
	struct fixture *f = *state;
	uint32_t tail;
	struct azbuse_cqe *cqe;

	f->te.redirect_to = 3;
	tail = f->m.hdr->cq_tail;
	post(f, AZBUSE_OP_WRITE, 5, 8, 4096, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 1);
	assert_int_equal(f->m.slots[5].redirects, 1);
	assert_int_equal(f->m.slots[5].redirect_to, 3);
	assert_int_equal(f->m.slots[5].result, 0);
	assert_int_equal(f->m.rejected, 0);
	cqe = &f->m.cq[tail & (f->m.geo.cq_entries - 1)];
	assert_int_equal(cqe->tag, 5);
	assert_int_equal(cqe->flags, AZBUSE_CQE_F_REDIRECT);
	assert_int_equal(cqe->addr, 3);
	assert_int_equal(cqe->result, 0);
}

static void test_op_without_callback_is_not_supported(void **state)
{
	struct fixture *f = *state;

	post(f, AZBUSE_OP_SECURE_ERASE, 2, 0, 4096, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 0);
	assert_int_equal(f->m.slots[2].completions, 1);
	assert_int_equal(f->m.slots[2].result, -EOPNOTSUPP);
}

static void test_unknown_op_is_not_supported(void **state)
{
	struct fixture *f = *state;

	post(f, AZBUSE_OP_NR, 0, 0, 0, NULL);
	post(f, 0xff, 1, 0, 0, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 0);
	assert_int_equal(f->m.slots[0].result, -EOPNOTSUPP);
	assert_int_equal(f->m.slots[1].result, -EOPNOTSUPP);
}

static void test_oversized_read_and_write_fail_without_engine(void **state)
{
	struct fixture *f = *state;

	post(f, AZBUSE_OP_READ, 0, 0, SLOT_BYTES + 512, NULL);
	post(f, AZBUSE_OP_WRITE, 1, 0, SLOT_BYTES + 512, NULL);
	post(f, AZBUSE_OP_READ, 2, 0, SLOT_BYTES, NULL); /* exactly a slot is fine */
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 1);
	assert_int_equal(f->te.seen[0].tag, 2);
	assert_int_equal(f->m.slots[0].result, -EIO);
	assert_int_equal(f->m.slots[1].result, -EIO);
	assert_int_equal(f->m.slots[2].result, 0);
}

/* DISCARD and friends carry no data, so their length is not bounded by the slot. */
static void test_large_discard_reaches_engine(void **state)
{
	struct fixture *f = *state;

	post(f, AZBUSE_OP_DISCARD, 0, 0, 64u << 20, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 1);
	assert_int_equal(f->te.seen[0].len, 64u << 20);
	assert_int_equal(f->m.slots[0].result, 0);
}

static void test_impossible_tag_is_ignored(void **state)
{
	struct fixture *f = *state;
	struct azbuse_sqe bad = { .op = AZBUSE_OP_READ, .len = 512, .tag = NR_SLOTS, .seq = 1 };
	struct azbuse_sqe worse = { .op = AZBUSE_OP_WRITE, .len = 512, .tag = UINT32_MAX };

	model_post_raw(&f->m, &bad);
	model_post_raw(&f->m, &worse);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

	assert_int_equal(f->te.nr_seen, 0);
	assert_int_equal(f->m.completed, 0);
	assert_int_equal(f->m.rejected, 0);
	assert_int_equal(f->m.hdr->cq_tail, f->m.cq_head);
	assert_int_equal(f->m.hdr->sq_head, f->m.sq_tail); /* consumed all the same */

	/* and the queue still works */
	post(f, AZBUSE_OP_READ, 0, 0, 512, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->m.completed, 1);
}

static void test_reused_tag_echoes_its_new_seq(void **state)
{
	struct fixture *f = *state;

	for (unsigned round = 1; round <= 3; round++) {
		uint32_t seq = post(f, AZBUSE_OP_READ, 4, round, 512, NULL);

		assert_int_equal(seq, round);
		assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
		assert_int_equal(f->m.slots[4].completions, round);
	}
	assert_int_equal(f->m.rejected, 0);
}

static void test_indices_wrap_around(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->m.q.sq_head, UINT32_MAX - 5);
	assert_int_equal(f->m.q.cq_tail, UINT32_MAX - 5);
	for (unsigned batch = 0; batch < 3; batch++) {
		for (uint32_t tag = 0; tag < NR_SLOTS; tag++)
			post(f, AZBUSE_OP_READ, tag, batch * 64 + tag, 512, NULL);
		assert_int_equal(azbuse_queue_turn(&f->m.q), 0);

		assert_int_equal(f->m.completed, (batch + 1) * NR_SLOTS);
		assert_int_equal(f->m.hdr->sq_head, f->m.sq_tail);
		assert_int_equal(f->m.hdr->cq_tail, f->m.cq_head);
	}
	assert_int_equal(f->m.rejected, 0);
	assert_int_equal(f->m.sq_tail, (uint32_t)(UINT32_MAX - 5 + 3 * NR_SLOTS));
	for (uint32_t tag = 0; tag < NR_SLOTS; tag++) {
		assert_int_equal(f->m.slots[tag].completions, 3);
		assert_int_equal(f->te.seen[2 * NR_SLOTS + tag].offset, (128ULL + tag) << 9);
	}
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/* Another thread: wait until the worker sleeps in COMMIT, then complete the stash. */
static void *complete_once_asleep(void *arg)
{
	struct fixture *f = arg;

	for (int i = 0; i < 50000 && !atomic_load(&f->m.q.sleeping); i++)
		sleep_us(100);
	azbuse_complete(f->te.stash[0], 0);
	return NULL;
}

static void *complete_stash(void *arg)
{
	struct fixture *f = arg;

	azbuse_complete(f->te.stash[0], 0);
	return NULL;
}

static void test_remote_completion_wakes_sleeping_worker(void **state)
{
	struct fixture *f = *state;
	pthread_t thread;

	f->te.defer = true;
	f->m.blocking = true;
	post(f, AZBUSE_OP_READ, 1, 0, 512, NULL);
	assert_int_equal(pthread_create(&thread, NULL, complete_once_asleep, f), 0);
	/* consumes the request, then sleeps in COMMIT until the KICK */
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);

	assert_false(f->m.timed_out);
	assert_int_equal(atomic_load(&f->m.kicks), 1);
	assert_int_equal(f->m.completed, 0);

	/* the next turn posts the completion and commits it */
	f->m.blocking = false;
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->m.completed, 1);
	assert_int_equal(f->m.slots[1].result, 0);
	assert_int_equal(f->m.rejected, 0);
}

static void test_remote_completion_of_awake_worker_does_not_kick(void **state)
{
	struct fixture *f = *state;
	pthread_t thread;

	f->te.defer = true;
	post(f, AZBUSE_OP_WRITE, 2, 0, 512, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->te.nr_stash, 1);

	assert_int_equal(pthread_create(&thread, NULL, complete_stash, f), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(atomic_load(&f->m.kicks), 0);

	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->m.completed, 1);
	assert_int_equal(f->m.slots[2].result, 0);
}

static void test_commit_enodev_stops(void **state)
{
	struct fixture *f = *state;

	f->m.commit_ret = -ENODEV;
	post(f, AZBUSE_OP_READ, 0, 0, 512, NULL);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 1);
	assert_int_equal(f->m.completed, 1); /* what was posted is still committed */
}

static void test_dead_flag_stops(void **state)
{
	struct fixture *f = *state;

	f->m.hdr->kflags |= AZBUSE_KF_DEAD;
	assert_int_equal(azbuse_queue_turn(&f->m.q), 1);
}

static void test_commit_eintr_goes_on(void **state)
{
	struct fixture *f = *state;

	f->m.commit_ret = -EINTR;
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
}

static void test_commit_error_is_returned(void **state)
{
	struct fixture *f = *state;

	f->m.commit_ret = -EINVAL;
	assert_int_equal(azbuse_queue_turn(&f->m.q), -EINVAL);
}

static void test_idle_turn_sleeps_without_timeout(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->m.commits, 1);
	assert_int_equal(f->m.last_timeout, AZBUSE_WAIT_FOREVER);
}

/* azbuse_queue_watch's ready(): complete the stash once the watched pipe has a byte. */
static int watch_pipe[2];

static unsigned watch_ready(void *queue)
{
	struct test_engine *te = queue;
	char byte;

	if (te->nr_stash && read(watch_pipe[0], &byte, 1) == 1) {
		while (te->nr_stash)
			azbuse_complete(te->stash[--te->nr_stash], 0);
	}
	return te->nr_stash;
}

/*
 * An engine with I/O in flight on a watched fd: the turn commits without
 * sleeping, sleeps in poll until the fd is readable, and the next turn
 * completes on the worker's thread (no KICK) and commits; with nothing in
 * flight, a turn sleeps in COMMIT as before. A second fd is refused.
 */
static void *watch_write_later(void *arg)
{
	struct timespec pause = { .tv_nsec = 50 * 1000 * 1000 };

	nanosleep(&pause, NULL);
	if (write(watch_pipe[1], "x", 1) != 1)
		abort();
	return arg;
}

static void test_watched_engine_io(void **state)
{
	struct fixture *f = *state;
	pthread_t writer;

	assert_int_equal(pipe2(watch_pipe, O_NONBLOCK), 0); /* ready() must not wait */
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0); /* an idle turn: now this queue's thread */
	assert_int_equal(azbuse_queue_watch(watch_pipe[0], watch_ready), 0);
	assert_int_equal(azbuse_queue_watch(watch_pipe[0], watch_ready), -EINVAL); /* one fd */
	f->m.commits = 0;
	f->te.defer = true;
	post(f, AZBUSE_OP_READ, 1, 0, 512, NULL);
	post(f, AZBUSE_OP_READ, 2, 8, 512, NULL);
	assert_int_equal(pthread_create(&writer, NULL, watch_write_later, NULL), 0);
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0); /* sleeps in poll until the byte */
	assert_int_equal(pthread_join(writer, NULL), 0);
	assert_int_equal(f->m.commits, 1);
	assert_int_equal(f->m.last_timeout, 0);
	assert_int_equal(f->m.completed, 0);
	assert_int_equal(f->te.nr_stash, 2);

	assert_int_equal(azbuse_queue_turn(&f->m.q), 0); /* ready() completes both */
	assert_int_equal(f->m.completed, 2);
	assert_int_equal(atomic_load(&f->m.kicks), 0);
	assert_int_equal(f->m.last_timeout, AZBUSE_WAIT_FOREVER); /* nothing left in flight */
	assert_int_equal(f->m.rejected, 0);
	close(watch_pipe[0]);
	close(watch_pipe[1]);
}

/* The "kernel" posts another request while the engine handles the first. */
static void post_next_once(struct test_engine *te)
{
	struct model_rq rq = { .op = AZBUSE_OP_READ, .len = 512, .tag = 7 };

	te->hook = NULL;
	model_post(te->m, &rq);
}

static void test_pending_submissions_skip_commit(void **state)
{
	struct fixture *f = *state;

	f->te.defer = true;
	f->te.hook = post_next_once;
	post(f, AZBUSE_OP_READ, 0, 0, 512, NULL);

	/* nothing to commit, and a new request is already waiting: no syscall */
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->te.nr_seen, 1);
	assert_int_equal(f->m.commits, 0);

	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->te.nr_seen, 2);
	assert_int_equal(f->te.seen[1].tag, 7);
	assert_int_equal(f->m.commits, 1);
}

/*
 * Requests the kernel still holds (posted, not yet fetched) can only be had
 * through COMMIT: with nothing to commit the turn must still make the call,
 * and must not spin without one.
 */
static void test_kernel_pending_requests_are_fetched_by_commit(void **state)
{
	struct fixture *f = *state;

	f->m.hdr->posted = f->m.hdr->fetched + 3;
	assert_int_equal(azbuse_queue_turn(&f->m.q), 0);
	assert_int_equal(f->m.commits, 1);
}

/*
 * A worker serving queue q of two devices (a pool's daemon): one turn serves
 * both rings and commits each without sleeping; a device that goes away is
 * reported stopped while the other is still served.
 */
static void test_worker_turn_two_devices(void **state)
{
	struct fixture *f = *state;
	struct ring_model *m2 = calloc(1, sizeof(*m2));
	struct test_engine te2 = { .redirect_to = -1 };
	struct azbuse_queue *qs[2] = { &f->m.q, NULL };
	bool stopped[2] = { false, false };
	unsigned char out1[512], out2[512];
	struct model_rq rq = { .op = AZBUSE_OP_READ, .sector = 8, .len = 512, .tag = 2 };

	assert_non_null(m2);
	model_init(m2, NR_SLOTS, SLOT_BYTES, 0);
	model_attach(m2, &test_ops, &te2);
	te2.m = m2;
	qs[1] = &m2->q;
	post(f, AZBUSE_OP_READ, 1, 4, sizeof(out1), out1);
	rq.buf = out2;
	model_post(m2, &rq);
	assert_int_equal(azbuse_worker_turn(qs, 2, stopped), 0);
	assert_int_equal(f->m.slots[1].completions, 1);
	assert_int_equal(m2->slots[2].completions, 1);
	assert_int_equal(out1[0], pattern(4 << 9, 0));
	assert_int_equal(out2[0], pattern(8 << 9, 0));
	assert_false(stopped[0] || stopped[1]);

	/* the second device goes; the first still serves */
	m2->commit_ret = -ENODEV;
	post(f, AZBUSE_OP_READ, 3, 12, sizeof(out1), out1);
	assert_int_equal(azbuse_worker_turn(qs, 2, stopped), 0);
	assert_true(stopped[1]);
	assert_false(stopped[0]);
	assert_int_equal(f->m.slots[3].completions, 1);
	assert_int_equal(f->m.rejected + m2->rejected, 0);
	model_fini(m2);
	free(m2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_is_committed_with_one_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_request_fields_reach_engine_unchanged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_every_op_reaches_its_callback, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_engine_error_is_passed_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redirect_names_the_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_op_without_callback_is_not_supported, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unknown_op_is_not_supported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_read_and_write_fail_without_engine,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_discard_reaches_engine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_impossible_tag_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reused_tag_echoes_its_new_seq, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_indices_wrap_around, setup_near_wrap,
						teardown),
		cmocka_unit_test_setup_teardown(test_remote_completion_wakes_sleeping_worker, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_remote_completion_of_awake_worker_does_not_kick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_enodev_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_flag_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_eintr_goes_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_error_is_returned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_turn_sleeps_without_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pending_submissions_skip_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_kernel_pending_requests_are_fetched_by_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_watched_engine_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_turn_two_devices, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
