// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * ring_model.c - the kernel side of one azbuse queue, modelled in userspace
 * for the unit tests (see ring_model.h). Layout and checks follow
 * kmod/azbuse_ring.c: azbuse_ring_init(), azbuse_ring_push(), azbuse_reap(),
 * azbuse_complete_one() and azbuse_commit().
 */
#include <errno.h>
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

static uint32_t page_align(uint32_t bytes, uint32_t page)
{
	return (bytes + page - 1) & ~(page - 1);
}

static uint32_t roundup_pow_of_two(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static struct ring_model *model_of(struct azbuse_queue *q)
{
	return (struct ring_model *)((char *)q - offsetof(struct ring_model, q));
}

void model_init(struct ring_model *m, uint32_t nr_slots, uint32_t slot_bytes, uint32_t start_index)
{
	uint32_t page = (uint32_t)sysconf(_SC_PAGESIZE);
	uint32_t entries = roundup_pow_of_two(nr_slots);
	pthread_condattr_t attr;

	assert_true(nr_slots > 0 && nr_slots <= MODEL_MAX_SLOTS);
	memset(m, 0, sizeof(*m));

	/* as azbuse_ring_init(): header page, then the SQ, then the CQ, page-aligned */
	m->geo.nr_queues = 1;
	m->geo.sq_entries = entries;
	m->geo.cq_entries = entries;
	m->geo.sq_offset = page;
	m->geo.cq_offset = page_align(page + entries * sizeof(struct azbuse_sqe), page);
	m->geo.ring_bytes =
		page_align(m->geo.cq_offset + entries * sizeof(struct azbuse_cqe), page);
	m->geo.slot_bytes = slot_bytes;
	m->geo.nr_slots = nr_slots;
	m->geo.logical_block_size = 512;
	m->geo.data_bytes = (uint64_t)nr_slots * slot_bytes;
	m->geo.numa_node = -1;

	m->ring = aligned_alloc(page, m->geo.ring_bytes);
	m->data = calloc(nr_slots, slot_bytes);
	assert_non_null(m->ring);
	assert_non_null(m->data);
	memset(m->ring, 0, m->geo.ring_bytes);
	m->hdr = m->ring;
	m->sq = (struct azbuse_sqe *)((char *)m->ring + m->geo.sq_offset);
	m->cq = (struct azbuse_cqe *)((char *)m->ring + m->geo.cq_offset);

	m->hdr->sq_tail = m->hdr->sq_head = start_index;
	m->hdr->cq_head = m->hdr->cq_tail = start_index;
	m->sq_tail = m->cq_head = start_index;

	atomic_init(&m->kicks, 0);
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->wake, &attr);
	pthread_condattr_destroy(&attr);
}

/*
 * azbuse_complete_data(): a READ's data from the slot, from or to the
 * worker's buffer (COPY), or zeros (ZERO). False if the flags do not fit.
 */
static bool model_complete_data(struct ring_model *m, struct model_slot *s, uint32_t tag,
				uint32_t flags, uint64_t addr)
{
	bool read = s->rq.op == AZBUSE_OP_READ, data = read || s->rq.op == AZBUSE_OP_WRITE;

	switch (flags) {
	case 0:
		if (read && s->rq.buf && s->rq.len <= m->geo.slot_bytes)
			memcpy(s->rq.buf, model_slot_data(m, tag), s->rq.len);
		return true;
	case AZBUSE_CQE_F_COPY:
		if (!data || !addr)
			return false;
		if (s->rq.buf && read)
			memcpy(s->rq.buf, (void *)(uintptr_t)addr, s->rq.len);
		else if (s->rq.buf)
			memcpy((void *)(uintptr_t)addr, s->rq.buf, s->rq.len);
		return true;
	case AZBUSE_CQE_F_ZERO:
		if (!read)
			return false;
		if (s->rq.buf)
			memset(s->rq.buf, 0, s->rq.len);
		return true;
	default:
		return false;
	}
}

/* azbuse_complete_one(): accept a completion only for a tag in flight with that seq. */
static bool model_complete_one(struct ring_model *m, const struct azbuse_cqe *cqe)
{
	uint32_t tag = cqe->tag;
	struct model_slot *s;

	if (tag >= m->geo.nr_slots || (cqe->flags & ~AZBUSE_CQE_F_ALL) || cqe->reserved)
		return false;
	s = &m->slots[tag];
	if (!s->inflight || s->seq != cqe->seq)
		return false;
	s->inflight = false;
	s->result = cqe->result;
	s->completions++;
	/* as on a sharded device: the request goes to another ring, not back */
	if (!cqe->result && cqe->flags == AZBUSE_CQE_F_REDIRECT) {
		s->redirects++;
		s->redirect_to = cqe->addr;
		m->completed++;
		return true;
	}
	if (!cqe->result && !model_complete_data(m, s, tag, cqe->flags, cqe->addr)) {
		s->result = -EIO; /* the kernel fails the request and counts the completion */
		m->rejected++;
	}
	m->completed++;
	return true;
}

/* The wait of azbuse_commit(): until a new submission, a KICK or the timeout. */
static void model_sleep(struct ring_model *m, unsigned long timeout_ms)
{
	unsigned long ms = timeout_ms < MODEL_SLEEP_LIMIT_MS ? timeout_ms : MODEL_SLEEP_LIMIT_MS;
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m->lock);
	for (;;) {
		if (azb_load_relaxed(&m->hdr->sq_head) != m->sq_tail)
			break;
		if (m->kicked) {
			m->kicked = false;
			break;
		}
		if (pthread_cond_timedwait(&m->wake, &m->lock, &deadline) == ETIMEDOUT) {
			if (timeout_ms > MODEL_SLEEP_LIMIT_MS)
				m->timed_out = true;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

/* azbuse_commit() with azbuse_reap(). */
static int model_commit(struct azbuse_queue *q, unsigned long timeout_ms)
{
	struct ring_model *m = model_of(q);
	uint32_t mask = m->geo.cq_entries - 1;
	uint32_t tail;

	m->commits++;
	m->last_timeout = timeout_ms;
	/* pairs with the worker's store-release of cq_tail */
	tail = azb_load_acquire(&m->hdr->cq_tail);
	if (tail - m->cq_head > m->geo.cq_entries) {
		m->rejected++;
		return -EINVAL;
	}
	while (m->cq_head != tail) {
		if (!model_complete_one(m, &m->cq[m->cq_head & mask]))
			m->rejected++;
		m->cq_head++;
	}
	azb_store_release(&m->hdr->cq_head, m->cq_head);
	if (m->commit_ret)
		return m->commit_ret;
	if (timeout_ms && m->blocking)
		model_sleep(m, timeout_ms);
	return 0;
}

/* AZBUSE_IOC_KICK: callable from any thread. */
static void model_kick(struct azbuse_queue *q)
{
	struct ring_model *m = model_of(q);

	atomic_fetch_add(&m->kicks, 1);
	pthread_mutex_lock(&m->lock);
	m->kicked = true;
	pthread_cond_broadcast(&m->wake);
	pthread_mutex_unlock(&m->lock);
}

void model_attach(struct ring_model *m, const struct azbuse_engine_ops *ops, void *engine_queue)
{
	assert_int_equal(azbuse_queue_map(&m->q, -1, &m->geo, m->ring, m->data), 0);
	m->q.ops = ops;
	m->q.engine_queue = engine_queue;
	m->q.commit = model_commit;
	m->q.kick = model_kick;
}

void model_fini(struct ring_model *m)
{
	azbuse_queue_unmap(&m->q);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m->data);
	free(m->ring);
}

void *model_slot_data(struct ring_model *m, uint32_t tag)
{
	return (char *)m->data + (size_t)tag * m->geo.slot_bytes;
}

/* Fill the next entry and publish it; the caller holds m->lock. */
static void model_push(struct ring_model *m, const struct azbuse_sqe *sqe)
{
	m->sq[m->sq_tail & (m->geo.sq_entries - 1)] = *sqe;
	m->sq_tail++;
	/* pairs with the worker's load-acquire of sq_tail */
	azb_store_release(&m->hdr->sq_tail, m->sq_tail);
	pthread_cond_broadcast(&m->wake);
}

uint32_t model_post(struct ring_model *m, const struct model_rq *rq)
{
	struct model_slot *s;
	struct azbuse_sqe sqe;

	assert_true(rq->tag < m->geo.nr_slots);
	s = &m->slots[rq->tag];
	assert_false(s->inflight);
	if (rq->op == AZBUSE_OP_WRITE && rq->buf && rq->len <= m->geo.slot_bytes &&
	    !(m->geo.features & AZBUSE_F_USER_COPY))
		memcpy(model_slot_data(m, rq->tag), rq->buf, rq->len);

	pthread_mutex_lock(&m->lock);
	s->seq++;
	s->inflight = true;
	s->rq = *rq;
	memset(&sqe, 0, sizeof(sqe));
	sqe.sector = rq->sector;
	sqe.flags = rq->flags;
	sqe.len = rq->len;
	sqe.tag = rq->tag;
	sqe.seq = s->seq;
	sqe.op = rq->op;
	sqe.ioprio = rq->ioprio;
	model_push(m, &sqe);
	pthread_mutex_unlock(&m->lock);
	return s->seq;
}

void model_post_raw(struct ring_model *m, const struct azbuse_sqe *sqe)
{
	pthread_mutex_lock(&m->lock);
	model_push(m, sqe);
	pthread_mutex_unlock(&m->lock);
}

int model_io(struct ring_model *m, uint8_t op, uint64_t offset, uint32_t len, uint64_t flags,
	     void *buf)
{
	struct model_rq rq = {
		.op = op,
		.flags = flags,
		.sector = offset >> 9,
		.len = len,
		.tag = 0,
		.buf = buf,
	};
	unsigned before = m->slots[0].completions;

	assert_int_equal(offset & 511, 0);
	model_post(m, &rq);
	assert_int_equal(azbuse_queue_turn(&m->q), 0);
	assert_int_equal(m->slots[0].completions, before + 1);
	assert_int_equal(m->rejected, 0);
	return m->slots[0].result;
}
