// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * seen.c - which chunks of a namespace have ever had a mapping entry in a
 * shard, by segments of AZB_SEEN_SEG_CHUNKS chunks, so that a first write
 * to a chunk that was never mapped (or a read of one) needs no RocksDB Seek.
 *
 * A segment is learned once, after a lookup in it found nothing: one scan of
 * its keys sets a bit per chunk that has an entry. From then on the shard's
 * own puts set bits as they are added to a batch (azb_map_note_put), and
 * nothing clears one (a deleted entry leaves its bit: a bit means "may have
 * an entry", a clear bit "has none"). That holds because the shard's handle
 * is the only writer of its DB, and because no segment is learned while a
 * batch holds puts the DB does not show yet (azb_seen_hold). Segments are
 * kept up to AZB_SEEN_MAX_SEGS per shard; beyond that, lookups Seek as before.
 */
#include <stdlib.h>
#include <string.h>

#include "meta_internal.h"

#define SEG_WORDS (AZB_SEEN_SEG_CHUNKS / 64)

struct azb_seen_seg {
	uint64_t ns; /* 0: a free slot (namespaces start at 1) */
	uint64_t seg;
	uint64_t bits[SEG_WORDS];
};

static uint64_t seen_hash(uint64_t ns, uint64_t seg)
{
	uint64_t x = seg * 0x9E3779B97F4A7C15ULL + ns * 0xC2B2AE3D27D4EB4FULL;

	return x ^ (x >> 29);
}

/* The slot of (ns, seg), or the free slot where it would go. */
static struct azb_seen_seg **seen_slot(const struct azb_seen *s, uint64_t ns, uint64_t seg)
{
	uint64_t i = seen_hash(ns, seg) & (s->cap - 1);

	for (;; i = (i + 1) & (s->cap - 1)) {
		struct azb_seen_seg *g = s->slots[i];

		if (!g || (g->ns == ns && g->seg == seg))
			return &s->slots[i];
	}
}

static const struct azb_seen_seg *seen_get(const struct azb_seen *s, uint64_t ns, uint64_t chunk)
{
	if (!s->nr)
		return NULL;
	return *seen_slot(s, ns, chunk / AZB_SEEN_SEG_CHUNKS);
}

int azb_seen_never(const struct azb_shard *sh, uint64_t ns, uint64_t chunk)
{
	const struct azb_seen_seg *g = seen_get(&sh->seen, ns, chunk);
	uint64_t bit = chunk % AZB_SEEN_SEG_CHUNKS;

	if (!g || sh->broken)
		return 0;
	return !(g->bits[bit / 64] & (1ULL << (bit % 64)));
}

void azb_seen_note(struct azb_shard *sh, uint64_t ns, uint64_t chunk)
{
	struct azb_seen_seg *g = (struct azb_seen_seg *)seen_get(&sh->seen, ns, chunk);
	uint64_t bit = chunk % AZB_SEEN_SEG_CHUNKS;

	if (g)
		g->bits[bit / 64] |= 1ULL << (bit % 64);
}

/* Room for one more segment: 0, or -1 (at the limit, or out of memory). */
static int seen_grow(struct azb_seen *s)
{
	struct azb_seen_seg **old = s->slots;
	uint64_t old_cap = s->cap, cap = old_cap ? old_cap * 2 : 64;

	if (s->nr >= AZB_SEEN_MAX_SEGS)
		return -1;
	if ((s->nr + 1) * 4 <= old_cap * 3)
		return 0; /* at most 3/4 full */
	s->slots = calloc(cap, sizeof(*s->slots));
	if (!s->slots) {
		s->slots = old;
		return -1;
	}
	s->cap = cap;
	for (uint64_t i = 0; i < old_cap; i++)
		if (old[i])
			*seen_slot(s, old[i]->ns, old[i]->seg) = old[i];
	free(old);
	return 0;
}

/* Set a bit for every chunk of the segment with a key in the DB: 0, or -1
 * (the DB could not be read: the segment is not kept). */
static int seen_scan(struct azb_shard *sh, struct azb_seen_seg *g)
{
	uint64_t first = g->seg * AZB_SEEN_SEG_CHUNKS;
	rocksdb_iterator_t *it = azb_map_iter(sh);
	char target[AZB_MAP_KEY_LEN], *rerr = NULL;

	if (!it)
		return -1;
	azb_map_key_encode(target, g->ns, first, 0);
	for (rocksdb_iter_seek(it, target, sizeof(target)); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(it, &klen);
		struct azb_map_key mk;
		uint64_t bit;

		if (!klen || k[0] != AZB_K_MAP || azb_map_key_decode(k, klen, &mk))
			break;
		if (mk.ns != g->ns || mk.chunk >= first + AZB_SEEN_SEG_CHUNKS)
			break;
		bit = mk.chunk - first;
		g->bits[bit / 64] |= 1ULL << (bit % 64);
	}
	rocksdb_iter_get_error(it, &rerr);
	if (rerr) {
		free(rerr);
		azb_map_cache_clear(sh); /* drops the iterator that failed */
		return -1;
	}
	return 0;
}

void azb_seen_learn(struct azb_shard *sh, uint64_t ns, uint64_t chunk)
{
	struct azb_seen *s = &sh->seen;
	struct azb_seen_seg *g, **slot;
	uint64_t seg = chunk / AZB_SEEN_SEG_CHUNKS;

	if (s->hold || sh->broken || (s->nr && *seen_slot(s, ns, seg)) || seen_grow(s))
		return;
	g = calloc(1, sizeof(*g));
	if (!g)
		return;
	g->ns = ns;
	g->seg = seg;
	if (seen_scan(sh, g)) {
		free(g);
		return;
	}
	slot = seen_slot(s, ns, seg);
	*slot = g;
	s->nr++;
	s->learned++;
}

void azb_seen_clear(struct azb_shard *sh)
{
	struct azb_seen *s = &sh->seen;

	for (uint64_t i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	s->slots = NULL;
	s->cap = 0;
	s->nr = 0;
}
