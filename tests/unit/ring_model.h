/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ring_model.h - a userspace model of the kernel side of one azbuse queue,
 * for the unit tests: a ring region and data area in ordinary memory laid
 * out as kmod/azbuse_ring.c lays them out, a struct azbuse_queue mapped on
 * them with azbuse_queue_map(), and commit/kick replaced by model functions
 * that reap completions and validate them as the kernel does (the tag must
 * be in flight with that sequence number).
 */
#ifndef AZBUSE_TESTS_RING_MODEL_H
#define AZBUSE_TESTS_RING_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define MODEL_MAX_SLOTS 64
/* How long a "sleeping" commit waits for a wake-up before giving up. */
#define MODEL_SLEEP_LIMIT_MS 5000

/* One request as the block layer would hand it to the module. */
struct model_rq {
	uint8_t op;
	uint16_t ioprio;
	uint64_t flags;
	uint64_t sector;
	uint32_t len;
	uint32_t tag;
	void *buf; /* WRITE: copied into the slot when posted; READ: filled at completion */
};

/* The kernel's view of one tag. */
struct model_slot {
	bool inflight;
	uint32_t seq;
	struct model_rq rq;
	int32_t result;	      /* of the last accepted completion */
	unsigned completions; /* accepted completions */
	unsigned redirects;   /* completions that handed it to another queue */
	uint64_t redirect_to; /* the queue of the last of those */
};

struct ring_model {
	struct azbuse_queue q; /* the worker's side: the code under test */

	struct azbuse_attach geo;
	void *ring;
	void *data;
	struct azbuse_ring_header *hdr;
	struct azbuse_sqe *sq;
	struct azbuse_cqe *cq;
	uint32_t sq_tail; /* the kernel's private indices */
	uint32_t cq_head;
	struct model_slot slots[MODEL_MAX_SLOTS];

	/* what the worker did */
	unsigned commits;   /* COMMIT calls */
	unsigned completed; /* completions accepted */
	unsigned rejected;  /* completions rejected (bad tag or seq, impossible tail) */
	unsigned long last_timeout;
	atomic_uint kicks;

	/* how the model behaves */
	int commit_ret; /* COMMIT's return value after reaping (e.g. -ENODEV) */
	bool blocking;	/* a COMMIT with a timeout sleeps until a new SQE or a KICK */
	bool timed_out; /* a blocking COMMIT waited MODEL_SLEEP_LIMIT_MS in vain */

	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool kicked;
};

/* Lay out a ring for nr_slots tags, every index starting at start_index. */
void model_init(struct ring_model *m, uint32_t nr_slots, uint32_t slot_bytes, uint32_t start_index);
/* azbuse_queue_map() the worker's side and install the model's commit and kick. */
void model_attach(struct ring_model *m, const struct azbuse_engine_ops *ops, void *engine_queue);
void model_fini(struct ring_model *m);

/* The data slot of tag. */
void *model_slot_data(struct ring_model *m, uint32_t tag);
/* Post a request as azbuse_ring_post() does; returns its seq. */
uint32_t model_post(struct ring_model *m, const struct model_rq *rq);
/* Post a raw entry, with none of the kernel's bookkeeping. */
void model_post_raw(struct ring_model *m, const struct azbuse_sqe *sqe);

/* Post one request on tag 0, run one turn, check it completed; its result. */
int model_io(struct ring_model *m, uint8_t op, uint64_t offset, uint32_t len, uint64_t flags,
	     void *buf);

#endif /* AZBUSE_TESTS_RING_MODEL_H */
