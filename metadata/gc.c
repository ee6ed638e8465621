// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gc.c - garbage collection of a shard: an entry (ns, L, e) is kept while a
 * hold h of ns sees it (e <= h < the next newer entry's epoch, not hidden by
 * a shrink), and so is the entry beneath a kept layered one (whose chunk
 * reads through to it); the others are deleted and their chunks punched and
 * freed. A tombstone is also deleted when it hides nothing (no older entry of (ns, L)
 * is kept and ns has no parent); it never has a chunk to free. Chunks
 * allocated but neither mapped, free nor in flight are freed too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta_internal.h"

#define GC_BATCH 256
#define GC_LEAK_SCAN_MAX (1ULL << 31) /* chunks: 256 MiB of bitmap */

struct gc_entry {
	uint64_t epoch;
	uint64_t phys;
	uint32_t layered;
	uint32_t keep;
};

struct gc_ctx {
	struct azb_shard *sh;
	const struct azb_holds *holds;
	struct azb_gc_stats *st;
	rocksdb_writebatch_t *b;
	uint32_t pending;
	struct azb_bitmap mapped; /* kept entries' chunks (leak scan), w NULL if skipped */
	/* the (ns, L) group being read */
	uint64_t ns, chunk;
	struct gc_entry *ent;
	uint32_t nr, cap;
};

/* Does a hold of `h` see entry epoch e, the next newer one being e_next (0: none)? */
static int entry_visible(const struct azb_ns_holds *h, uint64_t chunk, uint64_t e, uint64_t e_next)
{
	uint32_t lo = 0, hi = h->nr_epochs;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (h->epochs[mid] < e)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint32_t i = lo; i < h->nr_epochs && (!e_next || h->epochs[i] < e_next); i++)
		if (e >= azb_truncs_cut(h->truncs, h->nr_truncs, h->epochs[i], chunk))
			return 1;
	return h->head_alive && !e_next &&
	       e >= azb_truncs_cut(h->truncs, h->nr_truncs, AZB_EPOCH_HEAD, chunk);
}

static int gc_flush(struct gc_ctx *c)
{
	int ret;

	if (!c->pending)
		return 0;
	azb_batch_put_alloc_counters(c->sh, c->b);
	ret = azb_shard_write(c->sh, c->b);
	rocksdb_writebatch_clear(c->b);
	c->pending = 0;
	return ret;
}

static int gc_delete(struct gc_ctx *c, uint64_t epoch, uint64_t phys)
{
	char k[AZB_MAP_KEY_LEN];
	int ret;

	if (phys == AZB_TOMBSTONE) {
		if (c->sh->tombstones)
			c->sh->tombstones--;
	} else {
		ret = azb_alloc_free(c->sh, c->b, phys);
		if (ret)
			return ret;
	}
	ret = azb_shard_ns_count_add(c->sh, c->b, c->ns, c->chunk, -1);
	if (ret)
		return ret;
	azb_map_key_encode(k, c->ns, c->chunk, epoch);
	rocksdb_writebatch_delete(c->b, k, sizeof(k));
	azb_map_note_delete(c->sh, c->ns, c->chunk, epoch);
	if (c->sh->entries)
		c->sh->entries--;
	c->st->entries_deleted++;
	if (++c->pending >= GC_BATCH)
		return gc_flush(c);
	return 0;
}

/* Which entries of the group a hold sees, with those beneath the layered
 * ones among them (newest first: what a kept one reads through is kept). */
static void gc_group_visible(struct gc_ctx *c, const struct azb_ns_holds *h)
{
	for (uint32_t i = 0; i < c->nr; i++) {
		uint64_t e_next = i + 1 < c->nr ? c->ent[i + 1].epoch : 0;

		/* An ns unknown to the holds is newer than them: keep it. */
		c->ent[i].keep = !h || entry_visible(h, c->chunk, c->ent[i].epoch, e_next);
	}
	for (uint32_t i = c->nr; i-- > 1;)
		if (c->ent[i].keep && c->ent[i].layered)
			c->ent[i - 1].keep = 1;
}

/* Decide for the entries of one (ns, L), oldest first. Deleting one that no
 * hold sees changes what no hold sees; a tombstone that hides nothing (no
 * older entry kept, no parent namespace) is deleted even if seen. */
static int gc_group_done(struct gc_ctx *c)
{
	const struct azb_ns_holds *h = azb_holds_find(c->holds, c->ns);
	int below = h && h->parent_ns; /* something older may show through */
	int ret = 0;

	gc_group_visible(c, h);
	for (uint32_t i = 0; !ret && i < c->nr; i++) {
		uint64_t p = c->ent[i].phys;
		int keep = c->ent[i].keep;

		if (p == AZB_TOMBSTONE)
			keep = keep && (!h || below);
		if (!keep) {
			ret = gc_delete(c, c->ent[i].epoch, p);
			continue;
		}
		if (p == AZB_TOMBSTONE)
			continue;
		below = 1;
		if (c->mapped.w && p < c->mapped.n)
			azb_bitmap_set(&c->mapped, p);
	}
	c->nr = 0;
	return ret;
}

static int gc_add(struct gc_ctx *c, const struct azb_map_key *mk, const struct azb_map_ent *e)
{
	if (c->nr && (mk->ns != c->ns || mk->chunk != c->chunk)) {
		int ret = gc_group_done(c);

		if (ret)
			return ret;
	}
	if (c->nr == c->cap) {
		uint32_t cap = c->cap ? c->cap * 2 : 8;
		struct gc_entry *q = realloc(c->ent, cap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		c->ent = q;
		c->cap = cap;
	}
	c->ns = mk->ns;
	c->chunk = mk->chunk;
	c->ent[c->nr++] = (struct gc_entry){ mk->epoch, e->phys, e->layered, 0 };
	return 0;
}

static int gc_scan_entries(struct gc_ctx *c)
{
	struct azb_shard *sh = c->sh;
	struct azb_iter i;
	int ret = 0, iret;

	azb_iter_prefix(&i, &sh->rdb, AZB_K_MAP);
	for (; !ret && rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen);
		const char *v = rocksdb_iter_value(i.it, &vlen);
		struct azb_map_key mk;
		struct azb_map_ent e;

		c->st->entries_scanned++;
		if (azb_map_key_decode(k, klen, &mk) || azb_map_value_decode(v, vlen, &e)) {
			azb_seterr(sh->err, sizeof(sh->err), "%s: bad mapping entry (run check)",
				   sh->what);
			ret = -EIO;
			break;
		}
		ret = gc_add(c, &mk, &e);
	}
	iret = azb_iter_close(&i, sh->what, sh->err, sizeof(sh->err));
	if (!ret)
		ret = iret;
	if (!ret && c->nr)
		ret = gc_group_done(c);
	return ret;
}

static int gc_mark_free(struct gc_ctx *c)
{
	struct azb_iter i;

	azb_iter_prefix(&i, &c->sh->rdb, AZB_K_FREE);
	for (; rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(i.it, &klen);
		uint64_t p = klen == AZB_FREE_KEY_LEN ? azb_get_be64(k + 1) : UINT64_MAX;

		if (p < c->mapped.n)
			azb_bitmap_set(&c->mapped, p);
	}
	return azb_iter_close(&i, c->sh->what, c->sh->err, sizeof(c->sh->err));
}

/* Free chunks below high water that are neither kept, free nor in flight. */
static int gc_free_leaked(struct gc_ctx *c)
{
	int ret = gc_mark_free(c);

	for (uint64_t p = c->sh->dd.first_chunk; !ret && p < c->mapped.n; p++) {
		if (azb_bitmap_test(&c->mapped, p) || azb_alloc_is_inflight(c->sh, p))
			continue;
		ret = azb_alloc_free(c->sh, c->b, p);
		c->st->leaked_freed++;
		if (!ret && ++c->pending >= GC_BATCH)
			ret = gc_flush(c);
	}
	return ret;
}

static int gc_record_generation(struct azb_shard *sh, uint64_t gen)
{
	rocksdb_writebatch_t *b;
	int ret;

	if (gen <= sh->gc_generation)
		return 0;
	b = rocksdb_writebatch_create();
	azb_batch_put_counter(b, AZB_SC_GC_GEN, gen);
	ret = azb_shard_write(sh, b);
	rocksdb_writebatch_destroy(b);
	if (!ret)
		sh->gc_generation = gen;
	return ret;
}

int azb_shard_gc(struct azb_shard *shard, const struct azb_holds *holds, struct azb_gc_stats *st)
{
	struct azb_gc_stats dummy;
	struct gc_ctx c = { .sh = shard, .holds = holds, .st = st ? st : &dummy };
	int ret = 0;

	memset(c.st, 0, sizeof(*c.st));
	ret = azb_shard_writable(shard);
	/* What GC sees as unseen must stay unseen after a crash: make the
	 * writes it decides on (tombstones, deletions) durable first. */
	if (!ret)
		ret = azb_shard_sync_wal(shard);
	if (ret)
		return ret;
	if (shard->high_water <= GC_LEAK_SCAN_MAX)
		ret = azb_bitmap_init(&c.mapped, shard->high_water);
	if (ret)
		return ret;
	c.b = rocksdb_writebatch_create();
	ret = gc_scan_entries(&c);
	if (!ret)
		ret = gc_flush(&c);
	if (!ret && c.mapped.w)
		ret = gc_free_leaked(&c);
	if (!ret)
		ret = gc_flush(&c);
	rocksdb_writebatch_destroy(c.b);
	azb_bitmap_free(&c.mapped);
	free(c.ent);
	if (!ret)
		ret = gc_record_generation(shard, holds->gc_generation);
	return ret;
}

uint64_t azb_shard_gc_generation(const struct azb_shard *shard)
{
	return shard->gc_generation;
}
