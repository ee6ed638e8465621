// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * discard.c - unmapping a logical chunk of a writable head: the volume's own
 * chunk that no snapshot or clone sees is punched and freed; a tombstone is
 * written where something older (a snapshot's entry, a parent's mapping)
 * would otherwise show through.
 */
#include <errno.h>

#include "meta_internal.h"

static int discard_check(struct azb_shard *sh, const struct azb_view *view, uint64_t chunk)
{
	int ret = azb_shard_writable(sh);

	if (ret)
		return ret;
	if (!view->write_ns || !view->nr_links || view->links[0].ns != view->write_ns) {
		azb_seterr(sh->err, sizeof(sh->err), "%s: discard on a read-only view", sh->what);
		return -EROFS;
	}
	if (chunk >= azb_view_chunks(view, sh->s.chunk_size)) {
		azb_seterr(sh->err, sizeof(sh->err), "%s: discard of chunk %llu beyond the end",
			   sh->what, (unsigned long long)chunk);
		return -EINVAL;
	}
	return 0;
}

/* *shows: the head would read data (not zeros) for `chunk` were its own entry
 * at `epoch` gone; `cut` is its link's truncation for the chunk. */
static int shows_through(struct azb_shard *sh, const struct azb_view *view, uint64_t chunk,
			 uint64_t epoch, uint64_t cut, int *shows)
{
	struct azb_chunk_map m;
	uint64_t e, p;
	int ret;

	*shows = 0;
	ret = epoch ? azb_map_find(sh, view->write_ns, chunk, epoch - 1, &e, &p) : -ENOENT;
	if (!ret) {
		*shows = e >= cut && p != AZB_TOMBSTONE;
		return 0;
	}
	if (ret != -ENOENT || cut)
		return ret == -ENOENT ? 0 : ret;
	ret = azb_view_lookup_from(sh, view, 1, chunk, &m);
	*shows = !ret && m.phys != AZB_PHYS_NONE;
	return ret;
}

static void batch_put_tombstone(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t ns,
				uint64_t chunk, uint64_t epoch, int was_empty)
{
	struct azb_map_ent e = { epoch, AZB_TOMBSTONE, AZB_VALID_ALL, 0, 0 };
	char k[AZB_MAP_KEY_LEN], v[9];

	azb_map_key_encode(k, ns, chunk, epoch);
	azb_phys_value_encode(v, AZB_TOMBSTONE);
	rocksdb_writebatch_put(b, k, sizeof(k), v, sizeof(v));
	sh->tombstones++;
	azb_map_note_put(sh, ns, chunk, &e, was_empty);
}

/* The head's own entry (epoch, phys) is seen by nothing else: free its chunk;
 * delete the entry, or make it a tombstone if something would show through. */
static int discard_own(struct azb_shard *sh, const struct azb_view *view, uint64_t chunk,
		       uint64_t epoch, uint64_t phys, uint64_t cut)
{
	uint64_t ns = view->write_ns;
	rocksdb_writebatch_t *b;
	int shows, ret = shows_through(sh, view, chunk, epoch, cut, &shows);

	if (ret)
		return ret;
	b = rocksdb_writebatch_create();
	ret = azb_alloc_free_unsynced(sh, b, phys); /* punches the hole first */
	if (!ret && shows) {
		batch_put_tombstone(sh, b, ns, chunk, epoch, 0);
	} else if (!ret) {
		char k[AZB_MAP_KEY_LEN];

		ret = azb_shard_ns_count_add(sh, b, ns, chunk, -1);
		azb_map_key_encode(k, ns, chunk, epoch);
		rocksdb_writebatch_delete(b, k, sizeof(k));
		if (sh->entries)
			sh->entries--;
		azb_map_note_delete(sh, ns, chunk, epoch);
	}
	if (!ret) {
		azb_batch_put_alloc_counters(sh, b);
		ret = azb_shard_write(sh, b);
	}
	rocksdb_writebatch_destroy(b);
	return ret;
}

/* A new tombstone at the head's epoch hides what it saw. */
static int discard_hide(struct azb_shard *sh, const struct azb_view *view, uint64_t chunk)
{
	int was_empty = azb_shard_ns_empty(sh, view->write_ns, chunk);
	rocksdb_writebatch_t *b = rocksdb_writebatch_create();
	int ret = azb_shard_ns_count_add(sh, b, view->write_ns, chunk, 1);

	if (!ret) {
		sh->entries++;
		batch_put_tombstone(sh, b, view->write_ns, chunk, view->write_epoch, was_empty);
		azb_batch_put_alloc_counters(sh, b);
		ret = azb_shard_write(sh, b);
	}
	rocksdb_writebatch_destroy(b);
	return ret;
}

int azb_shard_discard(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk)
{
	struct azb_chunk_map m;
	uint64_t cut, e, p;
	int ret = discard_check(shard, view, chunk);

	if (ret)
		return ret;
	cut = azb_link_cut(view, &view->links[0], chunk);
	ret = azb_map_find(shard, view->write_ns, chunk, AZB_EPOCH_HEAD, &e, &p);
	if (ret && ret != -ENOENT)
		return ret;
	if (!ret) {
		if (e < cut || p == AZB_TOMBSTONE)
			return 0; /* reads zeros already */
		if (e > view->write_max_hold)
			return discard_own(shard, view, chunk, e, p, cut);
		if (e >= view->write_epoch) {
			/* held at or after the head's epoch: the view is out of date */
			azb_seterr(shard->err, sizeof(shard->err),
				   "%s: stale view (entry epoch %llu, head epoch %llu)",
				   shard->what, (unsigned long long)e,
				   (unsigned long long)view->write_epoch);
			return -ESTALE;
		}
		return discard_hide(shard, view, chunk); /* a snapshot or clone sees it */
	}
	if (cut)
		return 0;
	ret = azb_view_lookup_from(shard, view, 1, chunk, &m);
	if (ret || m.phys == AZB_PHYS_NONE)
		return ret; /* nothing to hide */
	return discard_hide(shard, view, chunk);
}
