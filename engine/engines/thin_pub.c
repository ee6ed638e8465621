// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_pub.c - the thin engine's use of the published map (metadata/
 * pubmap.h): the owner of a shard publishes what its chunks map to, every
 * worker reads it to serve reads and in-place overwrites of any chunk.
 *
 * Rules that keep it exact:
 * - An owner publishes what it learned (a lookup, a write plan, a commit)
 *   only once the batch's metadata is in the WAL file (thin_pub_apply after
 *   azb_shard_flush_wal): a worker that dies before that loses the changes,
 *   and no reader may have acted on them.
 * - Before a chunk's mapping changes or goes (discard, unmap), the owner
 *   unpublishes it at once (thin_pub_forget), and drops what it noted of the
 *   chunk earlier in the batch.
 * - Chunks freed by a discard or GC are reused (the allocator punches them
 *   first) only after every worker has passed a request boundary since:
 *   a worker that looked up the old mapping may still be writing to it.
 *   Workers mark each request's start (thin_pub_enter) and the end of each
 *   batch (thin_pub_idle), and serve synchronously, so the wait is short.
 * - A snapshot starts a new epoch of the map while every worker is paused
 *   (thin_control.c): entries published before it are read-only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "thin.h"

#define THIN_GRACE_PAUSE_NS 20000
#define THIN_GRACE_WARN_MS 2000

int thin_pub_open(struct thin_queue *tq, void *map, uint64_t map_bytes)
{
	struct thin_engine *e = tq->engine;
	int ret;

	if (!map)
		return 0; /* route chunk: every request reaches its owner */
	ret = azb_pubmap_attach(map, (size_t)map_bytes, tq->nr_shards, &e->pubmap);
	if (ret) {
		azb_log("shard %u: the device's direct map does not fit: %s", tq->index,
			strerror(-ret));
		return ret;
	}
	tq->pubs = calloc(THIN_PUBS_MAX, sizeof(*tq->pubs));
	if (!tq->pubs) {
		azb_pubmap_destroy(e->pubmap);
		e->pubmap = NULL;
		return -ENOMEM;
	}
	/* a worker restarted in place of one that died mid-request holds nothing */
	azb_pubmap_idle(e->pubmap, tq->index);
	/*
	 * The shard's previous owner (dead, or replaced when a device joined
	 * the pool) may have freed chunks that other workers or the module
	 * still write through: its wait before reusing them died with it.
	 */
	thin_pub_freed(tq);
	return 0;
}

int thin_pub_set_backing(struct thin_queue *tq)
{
	int ret;

	if (!tq->engine->pubmap)
		return 0;
	ret = azbuse_set_backing(tq->data_fd);
	if (ret)
		azb_log("shard %u: the module does not take the data file: %s", tq->index,
			strerror(-ret));
	return ret;
}

void thin_pub_close(struct thin_queue *tq)
{
	struct thin_engine *e = tq->engine;

	if (e->pubmap) {
		azb_pubmap_idle(e->pubmap, tq->index);
		azb_pubmap_destroy(e->pubmap);
		e->pubmap = NULL;
	}
	free(tq->pubs);
	tq->pubs = NULL;
}

void thin_pub_enter(struct thin_queue *tq)
{
	if (tq->engine->pubmap)
		azb_pubmap_quiescent(tq->engine->pubmap, tq->index);
}

void thin_pub_idle(struct thin_queue *tq)
{
	if (tq->engine->pubmap)
		azb_pubmap_idle(tq->engine->pubmap, tq->index);
}

struct azb_pub_entry thin_pub_lookup(const struct thin_queue *tq, uint64_t chunk)
{
	struct azb_pub_entry e = { .kind = AZB_PUB_UNKNOWN };

	if (tq->engine->pubmap)
		e = azb_pubmap_lookup(tq->engine->pubmap, chunk);
	return e;
}

void thin_pub_apply(struct thin_queue *tq)
{
	struct azb_pubmap *pm = tq->engine->pubmap;
	uint32_t i;

	for (i = 0; i < tq->nr_pubs; i++)
		if (azb_pubmap_publish(pm, tq->pubs[i].chunk, tq->pubs[i].kind, tq->pubs[i].phys))
			azb_pubmap_forget(pm, tq->pubs[i].chunk); /* (a phys out of range) */
	tq->nr_pubs = 0;
}

void thin_pub_note(struct thin_queue *tq, uint64_t chunk, uint64_t phys, bool in_place)
{
	struct thin_pub *p;

	if (!tq->engine->pubmap)
		return;
	if (tq->nr_pubs == THIN_PUBS_MAX) {
		/* publish early: what was noted must be in the WAL file first */
		if (azb_shard_flush_wal(tq->shard)) {
			azb_log("shard %u: %s: exiting", tq->index, azb_shard_error(tq->shard));
			_exit(EXIT_FAILURE);
		}
		thin_pub_apply(tq);
	}
	p = &tq->pubs[tq->nr_pubs++];
	p->chunk = chunk;
	p->phys = phys;
	if (phys == AZB_PHYS_NONE)
		p->kind = AZB_PUB_ZERO;
	else
		p->kind = in_place ? AZB_PUB_OWNED : AZB_PUB_SHARED;
}

void thin_pub_forget(struct thin_queue *tq, uint64_t chunk)
{
	uint32_t i, kept = 0;

	if (!tq->engine->pubmap)
		return;
	azb_pubmap_forget(tq->engine->pubmap, chunk);
	for (i = 0; i < tq->nr_pubs; i++)
		if (tq->pubs[i].chunk != chunk)
			tq->pubs[kept++] = tq->pubs[i];
	tq->nr_pubs = kept;
}

void thin_pub_freed(struct thin_queue *tq)
{
	if (!tq->engine->pubmap)
		return;
	tq->reuse_ticket = azb_pubmap_retire(tq->engine->pubmap);
	tq->reuse_wait = true;
}

/* Wait until no reader of tq's device can still be using a chunk it freed. */
static void thin_pub_reuse_wait(struct thin_queue *tq)
{
	struct timespec pause = { .tv_nsec = THIN_GRACE_PAUSE_NS };
	struct azb_pubmap *pm = tq->engine->pubmap;
	uint64_t waited_ns = 0;
	bool warned = false;

	if (!tq->reuse_wait)
		return;
	while (!azb_pubmap_passed(pm, tq->reuse_ticket)) {
		nanosleep(&pause, NULL);
		waited_ns += THIN_GRACE_PAUSE_NS;
		if (!warned && waited_ns > THIN_GRACE_WARN_MS * 1000000ULL) {
			azb_log("shard %u: waiting for the other workers to pass a request "
				"boundary before reusing freed chunks",
				tq->index);
			warned = true;
		}
	}
	/* and the module's own I/O through entries as they were */
	while (azb_direct_map_sync_of(tq->ring))
		nanosleep(&pause, NULL);
	tq->reuse_wait = false;
}

/*
 * Before it waits, an owner holds no entry it looked up (it serves one
 * request at a time, and finds its own chunks in its shard): it has passed
 * a request boundary in the map of the device whose request it serves, and
 * is idle in the others'. Another owner may be waiting for it there; a mark
 * left in a device's map that no request of this worker comes to clear
 * would hold every later wait of the others for ever.
 */
static void thin_pub_quiescent_all(struct thin_queue *tq)
{
	unsigned i;

	for (i = 0; i < thin_owned.nr_queues; i++) {
		struct thin_queue *q = thin_owned.queues[i];

		if (q != tq && q->engine->pubmap)
			azb_pubmap_idle(q->engine->pubmap, q->index);
	}
	if (tq->engine->pubmap)
		azb_pubmap_quiescent(tq->engine->pubmap, tq->index);
}

void thin_pub_before_alloc(struct thin_queue *tq)
{
	bool waits = tq->reuse_wait;
	unsigned i;

	/* the shard is shared by this worker's queue of every device of the pool */
	for (i = 0; i < thin_owned.nr_queues; i++)
		waits |= thin_owned.queues[i]->reuse_wait;
	if (!waits)
		return;
	thin_pub_quiescent_all(tq);
	for (i = 0; i < thin_owned.nr_queues; i++)
		thin_pub_reuse_wait(thin_owned.queues[i]);
	if (!thin_owned.nr_queues)
		thin_pub_reuse_wait(tq);
}
