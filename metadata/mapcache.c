// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * mapcache.c - the map cache: per (ns, L), the newest mapping entries a
 * shard's DB holds, so lookups and write plans seldom read RocksDB, and the
 * reused iterator that reads the DB on a miss (see struct azb_map_node).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta_internal.h"

#define NODE_BYTES (sizeof(struct azb_map_node) + sizeof(uint32_t)) /* node + bucket */
#define NODES_MIN 16

static void map_iter_drop(struct azb_shard *sh);

static uint32_t map_hash(uint64_t ns, uint64_t chunk)
{
	uint64_t x = chunk * 0x9E3779B97F4A7C15ULL + ns * 0xC2B2AE3D27D4EB4FULL;

	x ^= x >> 31;
	x *= 0xD6E8FEB86659FD93ULL;
	x ^= x >> 32;
	return (uint32_t)x;
}

int azb_map_cache_init(struct azb_shard *sh, uint64_t bytes)
{
	struct azb_map_cache *mc = &sh->mc;
	uint64_t nodes, buckets = 1;

	azb_map_cache_destroy(sh);
	if (!bytes)
		return 0;
	nodes = bytes / NODE_BYTES;
	if (nodes < NODES_MIN)
		nodes = NODES_MIN;
	if (nodes > UINT32_MAX - 1)
		nodes = UINT32_MAX - 1;
	while (buckets * 2 <= nodes)
		buckets *= 2; /* chains of 2 nodes at most on average */
	/* calloc: pages are touched only as the cache fills */
	mc->nodes = calloc(nodes, sizeof(*mc->nodes));
	mc->buckets = calloc(buckets, sizeof(*mc->buckets));
	if (!mc->nodes || !mc->buckets) {
		azb_map_cache_destroy(sh);
		return -ENOMEM;
	}
	mc->cap = (uint32_t)nodes;
	mc->mask = (uint32_t)(buckets - 1);
	return 0;
}

uint64_t azb_map_cache_bytes(const struct azb_shard *sh)
{
	if (!sh->mc.nodes)
		return 0;
	return (uint64_t)sh->mc.cap * sizeof(*sh->mc.nodes) +
	       ((uint64_t)sh->mc.mask + 1) * sizeof(*sh->mc.buckets);
}

static void map_iter_drop(struct azb_shard *sh)
{
	if (!sh->lit_open)
		return;
	/* An error it met was returned by the read that met it. */
	azb_iter_close(&sh->lit, sh->what, NULL, 0);
	sh->lit_open = 0;
}

void azb_map_cache_destroy(struct azb_shard *sh)
{
	map_iter_drop(sh);
	azb_seen_clear(sh);
	free(sh->mc.nodes);
	free(sh->mc.buckets);
	memset(&sh->mc, 0, sizeof(sh->mc));
}

void azb_map_cache_clear(struct azb_shard *sh)
{
	struct azb_map_cache *mc = &sh->mc;

	map_iter_drop(sh);
	azb_seen_clear(sh);
	if (!mc->nodes)
		return;
	memset(mc->buckets, 0, ((size_t)mc->mask + 1) * sizeof(*mc->buckets));
	mc->used = 0;
	mc->hand = 0;
	mc->free_head = 0;
}

static struct azb_map_node *node_get(struct azb_map_cache *mc, uint64_t ns, uint64_t chunk)
{
	uint32_t i = mc->buckets[map_hash(ns, chunk) & mc->mask];

	while (i) {
		struct azb_map_node *n = &mc->nodes[i - 1];

		if (n->ns == ns && n->chunk == chunk)
			return n;
		i = n->next;
	}
	return NULL;
}

static void node_link(struct azb_map_cache *mc, struct azb_map_node *n)
{
	uint32_t *head = &mc->buckets[map_hash(n->ns, n->chunk) & mc->mask];

	n->next = *head;
	*head = (uint32_t)(n - mc->nodes) + 1;
}

static void node_unlink(struct azb_map_cache *mc, struct azb_map_node *n)
{
	uint32_t *link = &mc->buckets[map_hash(n->ns, n->chunk) & mc->mask];
	uint32_t idx = (uint32_t)(n - mc->nodes) + 1;

	while (*link && *link != idx)
		link = &mc->nodes[*link - 1].next;
	if (*link)
		*link = n->next;
}

/* A blank, unlinked node: a free one, an unused one, or the CLOCK's victim. */
static struct azb_map_node *node_alloc(struct azb_map_cache *mc)
{
	struct azb_map_node *n;

	if (mc->free_head) {
		n = &mc->nodes[mc->free_head - 1];
		mc->free_head = n->next;
	} else if (mc->used < mc->cap) {
		n = &mc->nodes[mc->used++];
	} else {
		/* Every node is in use: the loop ends within two turns. */
		for (;;) {
			n = &mc->nodes[mc->hand];
			mc->hand = mc->hand + 1 == mc->cap ? 0 : mc->hand + 1;
			if (!n->ns)
				continue;
			if (!n->ref)
				break;
			n->ref = 0;
		}
		node_unlink(mc, n);
		mc->evictions++;
	}
	memset(n, 0, sizeof(*n));
	return n;
}

static void node_free(struct azb_map_cache *mc, struct azb_map_node *n)
{
	memset(n, 0, sizeof(*n));
	n->next = mc->free_head;
	mc->free_head = (uint32_t)(n - mc->nodes) + 1;
}

/* 0: the entry with the largest epoch <= max_epoch; -ENOENT: none; 1: unknown. */
static int node_answer(const struct azb_map_node *n, uint64_t max_epoch, struct azb_map_ent *e)
{
	for (uint32_t i = 0; i < n->n; i++) {
		if (n->epoch[i] <= max_epoch) {
			e->epoch = n->epoch[i];
			e->phys = n->phys[i];
			e->valid = n->valid[i];
			e->layered = (n->layered >> i) & 1;
			return 0;
		}
	}
	return n->complete ? -ENOENT : 1;
}

/* Entry i of the node := e. */
static void node_set(struct azb_map_node *n, uint32_t i, const struct azb_map_ent *e)
{
	n->epoch[i] = e->epoch;
	n->phys[i] = e->phys;
	n->valid[i] = e->valid;
	n->layered = (uint8_t)((n->layered & ~(1U << i)) | (!!e->layered << i));
}

/* Entry i of the node := entry j. */
static void node_move(struct azb_map_node *n, uint32_t i, uint32_t j)
{
	struct azb_map_ent e = { n->epoch[j], n->phys[j], n->valid[j], (n->layered >> j) & 1, 0 };

	node_set(n, i, &e);
}

/* A tailing iterator sees what was written before each seek; a read-only DB
 * does not change (and RocksDB has no tailing iterator for it). */
static void lit_ensure(struct azb_shard *sh)
{
	if (sh->lit_open)
		return;
	/* No bounds (lit_read stops at the first key not of its (ns, L)). */
	sh->lit.ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_tailing(sh->lit.ro, !sh->readonly);
	sh->lit.it = rocksdb_create_iterator(sh->rdb.db, sh->lit.ro);
	sh->lit_open = 1;
}

rocksdb_iterator_t *azb_map_iter(struct azb_shard *sh)
{
	lit_ensure(sh);
	return sh->lit.it;
}

/* The newest `want` entries of (ns, chunk) with epoch <= max_epoch, newest
 * first, into n; n->complete if there are no others. */
static int lit_read(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
		    uint32_t want, struct azb_map_node *n)
{
	char target[AZB_MAP_KEY_LEN], *rerr = NULL;
	struct azb_map_ent ring[AZB_MAP_NODE_ENTRIES];
	uint64_t found = 0;
	rocksdb_iterator_t *it;

	lit_ensure(sh);
	it = sh->lit.it;
	sh->mc.db_reads++;
	azb_map_key_encode(target, ns, chunk, 0);
	for (rocksdb_iter_seek(it, target, sizeof(target)); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen), *v = rocksdb_iter_value(it, &vlen);
		struct azb_map_key mk;
		struct azb_map_ent e;

		if (!klen || k[0] != AZB_K_MAP)
			break;
		if (azb_map_key_decode(k, klen, &mk) || azb_map_value_decode(v, vlen, &e)) {
			azb_seterr(sh->err, sizeof(sh->err), "%s: bad mapping entry (run check)",
				   sh->what);
			return -EIO;
		}
		if (mk.ns != ns || mk.chunk != chunk || mk.epoch > max_epoch)
			break;
		e.epoch = mk.epoch;
		ring[found % want] = e;
		found++;
	}
	rocksdb_iter_get_error(it, &rerr);
	if (rerr) {
		map_iter_drop(sh);
		return azb_rdb_error(rerr, sh->what, "read mappings", sh->err, sizeof(sh->err));
	}
	n->n = (uint8_t)(found < want ? found : want);
	n->complete = found <= want;
	for (uint32_t i = 0; i < n->n; i++)
		node_set(n, i, &ring[(found - 1 - i) % want]);
	return 0;
}

/* Entry <= max_epoch that the node is too short to know. */
static int find_deep(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
		     struct azb_map_ent *e)
{
	struct azb_map_node deep = { 0 };
	int ret = lit_read(sh, ns, chunk, max_epoch, 1, &deep);

	if (ret)
		return ret;
	return node_answer(&deep, max_epoch, e) ? -ENOENT : 0;
}

int azb_map_find(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
		 uint64_t *epoch, uint64_t *phys)
{
	struct azb_map_ent e;
	int ret = azb_map_find_ent(sh, ns, chunk, max_epoch, &e);

	*epoch = e.epoch;
	*phys = e.phys;
	return ret;
}

int azb_map_find_ent(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
		     struct azb_map_ent *e)
{
	struct azb_map_cache *mc = &sh->mc;
	struct azb_map_node *n;
	int ret, fresh = 0;

	memset(e, 0, sizeof(*e));
	if (azb_shard_ns_empty(sh, ns, chunk) || azb_seen_never(sh, ns, chunk))
		return -ENOENT;
	if (!mc->nodes) {
		ret = azb_shard_find_entry(sh, ns, chunk, max_epoch, e);
		if (ret == -ENOENT)
			azb_seen_learn(sh, ns, chunk);
		return ret;
	}
	n = node_get(mc, ns, chunk);
	if (n) {
		n->ref = 1;
		ret = node_answer(n, max_epoch, e);
		if (ret <= 0) {
			mc->hits++;
			return ret;
		}
		mc->misses++;
		if (n->n)
			return find_deep(sh, ns, chunk, max_epoch, e);
		/* it knows nothing (a deletion took what it knew): refill it */
	} else {
		mc->misses++;
		n = node_alloc(mc);
		fresh = 1;
	}
	ret = lit_read(sh, ns, chunk, UINT64_MAX, AZB_MAP_NODE_ENTRIES, n);
	if (ret) {
		if (fresh)
			node_free(mc, n);
		else
			n->n = n->complete = 0;
		return ret;
	}
	if (fresh) {
		n->ns = ns;
		n->chunk = chunk;
		n->ref = 1;
		node_link(mc, n);
	}
	if (!n->n && n->complete)
		azb_seen_learn(sh, ns, chunk); /* a chunk never mapped: maybe its neighbours too */
	ret = node_answer(n, max_epoch, e);
	return ret <= 0 ? ret : find_deep(sh, ns, chunk, max_epoch, e);
}

void azb_map_note_put(struct azb_shard *sh, uint64_t ns, uint64_t chunk,
		      const struct azb_map_ent *e, int was_empty)
{
	struct azb_map_cache *mc = &sh->mc;
	struct azb_map_node *n = mc->nodes ? node_get(mc, ns, chunk) : NULL;
	uint32_t pos = 0;

	azb_seen_note(sh, ns, chunk);
	if (!n && was_empty && mc->nodes) {
		/* all there is: what a read after the write will want */
		n = node_alloc(mc);
		n->ns = ns;
		n->chunk = chunk;
		n->complete = 1;
		node_link(mc, n);
	}
	if (!n)
		return; /* a later miss reads it from the DB */
	for (uint32_t i = 0; i < n->n; i++) {
		if (n->epoch[i] == e->epoch) {
			node_set(n, i, e);
			return;
		}
	}
	while (pos < n->n && n->epoch[pos] > e->epoch)
		pos++;
	if (pos == n->n && !n->complete)
		return; /* older than all it knows, among those it does not know */
	if (pos == AZB_MAP_NODE_ENTRIES) {
		n->complete = 0; /* an older one it has no room for */
		return;
	}
	if (n->n == AZB_MAP_NODE_ENTRIES)
		n->complete = 0; /* the oldest it knew falls off */
	else
		n->n++;
	for (uint32_t i = n->n - 1; i > pos; i--)
		node_move(n, i, i - 1);
	node_set(n, pos, e);
}

void azb_map_note_delete(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t epoch)
{
	struct azb_map_node *n = sh->mc.nodes ? node_get(&sh->mc, ns, chunk) : NULL;

	if (!n)
		return;
	for (uint32_t i = 0; i < n->n; i++) {
		if (n->epoch[i] != epoch)
			continue;
		for (; i + 1 < n->n; i++)
			node_move(n, i, i + 1);
		n->n--;
		return;
	}
}
