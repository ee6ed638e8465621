// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * usage.c - accounting: a shard's allocation counters, and per view (volume
 * or snapshot) how many of the shard's chunks it sees (a tombstone is no
 * chunk), and of those how many no other given view sees.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta_internal.h"

int azb_shard_usage(struct azb_shard *shard, struct azb_shard_usage *u)
{
	memset(u, 0, sizeof(*u));
	u->allocated_chunks = shard->allocated + shard->nr_inflight;
	u->high_water = shard->next_high_water;
	u->free_chunks = shard->free_count;
	u->entries = shard->entries;
	u->tombstones = shard->tombstones;
	u->quota_chunks = shard->quota_chunks;
	if (u->quota_chunks)
		u->low_space =
			u->allocated_chunks * 100 >= u->quota_chunks * shard->s.low_space_percent;
	return 0;
}

struct cand {
	uint64_t chunk;
	uint32_t link;
	uint32_t layered; /* the entry reads what lies beneath it where it holds nothing */
	uint64_t epoch;
	uint64_t phys;
	uint64_t base; /* a layered entry's: the link's entry beneath it (AZB_PHYS_NONE: none) */
};

struct vec {
	void *a;
	size_t n, cap, size;
};

static int vec_push(struct vec *v, const void *x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		void *q = realloc(v->a, cap * v->size);

		if (!q)
			return -ENOMEM;
		v->a = q;
		v->cap = cap;
	}
	memcpy((char *)v->a + v->n++ * v->size, x, v->size);
	return 0;
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->chunk != y->chunk)
		return x->chunk < y->chunk ? -1 : 1;
	return x->link < y->link ? -1 : x->link > y->link;
}

/* For every L of link `j`'s ns: its newest entry with epoch <= max_epoch. */
static int link_candidates(struct azb_shard *sh, const struct azb_view_link *l, uint32_t j,
			   struct vec *cands)
{
	char lo[AZB_MAP_KEY_LEN], hi[AZB_MAP_KEY_LEN + 1];
	struct cand cur = { .chunk = UINT64_MAX, .link = j };
	int have = 0, ret = 0, iret;
	struct azb_iter i;

	azb_map_key_encode(lo, l->ns, 0, 0);
	azb_map_key_encode(hi, l->ns, UINT64_MAX, UINT64_MAX);
	hi[AZB_MAP_KEY_LEN] = 0;
	azb_iter_open(&i, &sh->rdb, lo, sizeof(lo), hi, sizeof(hi));
	rocksdb_iter_seek_to_first(i.it);
	for (; !ret && rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen), *v = rocksdb_iter_value(i.it, &vlen);
		struct azb_map_key mk;
		struct azb_map_ent e;

		if (azb_map_key_decode(k, klen, &mk) || azb_map_value_decode(v, vlen, &e) ||
		    mk.epoch > l->max_epoch)
			continue;
		if (have && mk.chunk != cur.chunk)
			ret = vec_push(cands, &cur);
		/* (entries of a chunk come oldest first) */
		cur.base = have && mk.chunk == cur.chunk && e.layered && cur.phys != AZB_TOMBSTONE
				   ? cur.phys
				   : AZB_PHYS_NONE;
		cur.chunk = mk.chunk;
		cur.epoch = mk.epoch;
		cur.phys = e.phys;
		cur.layered = e.layered;
		have = 1;
	}
	if (!ret && have)
		ret = vec_push(cands, &cur);
	iret = azb_iter_close(&i, sh->what, sh->err, sizeof(sh->err));
	return ret ? ret : iret;
}

/* Is the first candidate of a chunk, from link c->link, what the view reads? */
static int cand_visible(const struct azb_view *v, const struct cand *c)
{
	for (uint32_t i = 0; i < c->link; i++)
		if (azb_link_cut(v, &v->links[i], c->chunk))
			return 0;
	return c->epoch >= azb_link_cut(v, &v->links[c->link], c->chunk);
}

struct phys_view {
	uint64_t phys;
	uint32_t view;
	uint32_t pad0;
};

static int cmp_phys_view(const void *a, const void *b)
{
	const struct phys_view *x = a, *y = b;

	if (x->phys != y->phys)
		return x->phys < y->phys ? -1 : 1;
	return x->view < y->view ? -1 : x->view > y->view;
}

/*
 * The chunk a visible layered entry (candidate i) reads through: the entry
 * beneath it in its own namespace, or else the chunk's first visible entry
 * of a later link (the parent's).
 */
static int push_beneath(const struct azb_view *v, const struct cand *cands, size_t n, size_t i,
			uint32_t vi, struct vec *seen)
{
	struct phys_view pv = { cands[i].base, vi, 0 };

	if (cands[i].base != AZB_PHYS_NONE)
		return vec_push(seen, &pv);
	for (size_t j = i + 1; j < n && cands[j].chunk == cands[i].chunk; j++) {
		if (!cand_visible(v, &cands[j]))
			continue;
		if (cands[j].phys == AZB_TOMBSTONE)
			return 0;
		pv.phys = cands[j].phys;
		return vec_push(seen, &pv);
	}
	return 0;
}

/* Append (P, view) for every chunk view `vi` sees in this shard. */
static int view_visible(struct azb_shard *sh, const struct azb_view *v, uint32_t vi,
			struct vec *seen)
{
	struct vec cands = { .size = sizeof(struct cand) };
	int ret = 0;

	for (uint32_t j = 0; !ret && j < v->nr_links; j++)
		ret = link_candidates(sh, &v->links[j], j, &cands);
	if (!ret && cands.n)
		qsort(cands.a, cands.n, sizeof(struct cand), cmp_cand);
	for (size_t i = 0; !ret && i < cands.n; i++) {
		const struct cand *c = (const struct cand *)cands.a + i;
		struct phys_view pv = { c->phys, vi, 0 };

		if (i && c->chunk == ((const struct cand *)cands.a)[i - 1].chunk)
			continue;
		if (c->phys == AZB_TOMBSTONE || !cand_visible(v, c))
			continue;
		ret = vec_push(seen, &pv);
		if (!ret && c->layered)
			ret = push_beneath(v, cands.a, cands.n, i, vi, seen);
	}
	free(cands.a);
	return ret;
}

static void count_usage(const struct phys_view *pv, size_t n, struct azb_view_usage *usage)
{
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		int distinct = 1;

		for (; j < n && pv[j].phys == pv[i].phys; j++)
			distinct += pv[j].view != pv[j - 1].view;
		for (size_t k = i; k < j; k++) {
			if (k > i && pv[k].view == pv[k - 1].view)
				continue;
			usage[pv[k].view].mapped++;
			if (distinct == 1)
				usage[pv[k].view].exclusive++;
			else
				usage[pv[k].view].shared++;
		}
		i = j;
	}
}

int azb_shard_view_usage(struct azb_shard *shard, const struct azb_view *views, uint32_t nr,
			 struct azb_view_usage *usage)
{
	struct vec seen = { .size = sizeof(struct phys_view) };
	int ret = 0;

	memset(usage, 0, nr * sizeof(*usage));
	for (uint32_t i = 0; !ret && i < nr; i++)
		ret = view_visible(shard, &views[i], i, &seen);
	if (!ret && seen.n) {
		qsort(seen.a, seen.n, sizeof(struct phys_view), cmp_phys_view);
		count_usage(seen.a, seen.n, usage);
	}
	free(seen.a);
	return ret;
}

static uint64_t rdb_property(struct azb_shard *sh, const char *name)
{
	uint64_t v = 0;

	return rocksdb_property_int(sh->rdb.db, name, &v) ? 0 : v;
}

int azb_shard_mem(struct azb_shard *sh, struct azb_shard_mem *m)
{
	memset(m, 0, sizeof(*m));
	m->block_cache = rdb_property(sh, "rocksdb.block-cache-usage");
	m->block_cache_pinned = rdb_property(sh, "rocksdb.block-cache-pinned-usage");
	m->memtables = rdb_property(sh, "rocksdb.cur-size-all-mem-tables");
	m->table_readers = rdb_property(sh, "rocksdb.estimate-table-readers-mem");
	m->map_cache = azb_map_cache_bytes(sh);
	return 0;
}
