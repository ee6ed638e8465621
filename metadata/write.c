// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * write.c - the write path decision for one logical chunk: overwrite the
 * volume's own chunk in place when no snapshot or clone can see it, else
 * allocate a new chunk (also over a tombstone), and record its mapping once
 * the data is written.
 */
#include <errno.h>
#include <string.h>

#include "meta_internal.h"

/* The volume's own newest entry for `chunk`, if it may be overwritten in place. */
static int own_entry_in_place(struct azb_shard *sh, const struct azb_view *view, uint64_t chunk,
			      struct azb_map_ent *e)
{
	const struct azb_view_link *l = &view->links[0];
	int ret = azb_map_find_ent(sh, view->write_ns, chunk, AZB_EPOCH_HEAD, e);

	if (ret)
		return ret;
	if (e->phys == AZB_TOMBSTONE || e->epoch < azb_link_cut(view, l, chunk) ||
	    e->epoch <= view->write_max_hold)
		return -ENOENT;
	return 0;
}

/* The volume's own chunk as it reads, in m (with the layer beneath it). */
static int own_chunk_map(struct azb_shard *sh, const struct azb_view *view, uint64_t chunk,
			 const struct azb_map_ent *e, struct azb_chunk_map *m)
{
	struct azb_chunk_map beneath;
	int ret = 0;

	m->phys = e->phys;
	m->valid = e->valid;
	m->base = AZB_PHYS_NONE;
	m->base_valid = AZB_VALID_ALL;
	if (!e->layered || e->valid == AZB_VALID_ALL)
		return 0;
	ret = azb_view_lookup_beneath(sh, view, 0, e->epoch, chunk, &beneath);
	m->base = beneath.phys;
	m->base_valid = beneath.valid;
	return ret;
}

static int plan_check(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk)
{
	if (!view->write_ns || !view->nr_links || view->links[0].ns != view->write_ns) {
		azb_seterr(shard->err, sizeof(shard->err), "%s: write to a read-only view",
			   shard->what);
		return -EROFS;
	}
	if (chunk >= azb_view_chunks(view, shard->s.chunk_size)) {
		azb_seterr(shard->err, sizeof(shard->err), "%s: chunk %llu is beyond the end",
			   shard->what, (unsigned long long)chunk);
		return -EINVAL;
	}
	return 0;
}

int azb_shard_plan_write(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
			 struct azb_write_plan *plan)
{
	struct azb_chunk_map m;
	struct azb_map_ent e;
	int ret = azb_shard_writable(shard);

	memset(plan, 0, sizeof(*plan));
	if (!ret)
		ret = plan_check(shard, view, chunk);
	if (ret)
		return ret;
	plan->chunk = chunk;
	plan->ns = view->write_ns;
	ret = own_entry_in_place(shard, view, chunk, &e);
	if (!ret) {
		ret = own_chunk_map(shard, view, chunk, &e, &m);
		plan->phys = plan->old_phys = m.phys;
		plan->old_valid = plan->valid = plan->cur_valid = m.valid;
		plan->old_base = m.base;
		plan->old_base_valid = m.base_valid;
		plan->layered = e.layered && e.valid != AZB_VALID_ALL;
		plan->epoch = e.epoch;
		plan->in_place = 1;
		return ret;
	}
	if (ret != -ENOENT)
		return ret;
	ret = azb_shard_lookup_map(shard, view, chunk, &m);
	plan->old_phys = m.phys;
	plan->old_valid = m.valid;
	plan->old_base = m.base;
	plan->old_base_valid = m.base_valid;
	/* at most two layers: over a layered chunk, the writer copies */
	plan->layered = m.phys != AZB_PHYS_NONE && m.base == AZB_PHYS_NONE;
	if (!ret)
		ret = azb_alloc_reserve(shard, &plan->phys);
	plan->cur_valid = plan->valid =
		azb_shard_tracks_valid(shard) || plan->layered ? 0 : AZB_VALID_ALL;
	plan->epoch = view->write_epoch;
	return ret;
}

int azb_shard_resolve(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
		      struct azb_chunk_map *m, int *in_place)
{
	struct azb_map_ent e;
	int ret;

	*in_place = 0;
	if (view->write_ns && view->nr_links && view->links[0].ns == view->write_ns &&
	    chunk < azb_view_chunks(view, shard->s.chunk_size)) {
		ret = own_entry_in_place(shard, view, chunk, &e);
		if (!ret) {
			*in_place = 1;
			return own_chunk_map(shard, view, chunk, &e, m);
		}
		if (ret != -ENOENT)
			return ret;
	}
	return azb_shard_lookup_map(shard, view, chunk, m);
}

/* Add the entry to the batch: a new one, or replacing a tombstone or (and
 * freeing) a stale entry of the same epoch. *counted: the entry count of
 * plan->ns changed (in memory; the caller puts it in the batch). */
static int batch_put_entry(struct azb_shard *sh, rocksdb_writebatch_t *b,
			   const struct azb_write_plan *plan, int *counted)
{
	char k[AZB_MAP_KEY_LEN], v[AZB_MAP_VALUE_MAX];
	struct azb_map_ent ent = { 0 };
	size_t vlen;
	int was_empty = azb_shard_ns_empty(sh, plan->ns, plan->chunk);
	uint64_t e, old;
	int ret = azb_map_find(sh, plan->ns, plan->chunk, plan->epoch, &e, &old);

	if (!ret && e == plan->epoch) {
		if (old == AZB_TOMBSTONE) {
			sh->tombstones--; /* (the counters go in the batch later) */
		} else if (old != plan->phys) {
			/* Two plans for one chunk were not serialized: keep the last. */
			ret = azb_alloc_free_unsynced(sh, b, old);
		}
	} else if (!ret || ret == -ENOENT) {
		ret = azb_shard_ns_count_change(sh, plan->ns, plan->chunk, 1);
		if (!ret) {
			sh->entries++;
			*counted = 1;
		}
	}
	if (ret)
		return ret;
	azb_map_key_encode(k, plan->ns, plan->chunk, plan->epoch);
	ent.epoch = plan->epoch;
	ent.phys = plan->phys;
	ent.valid = plan->valid;
	ent.layered = plan->layered && plan->valid != AZB_VALID_ALL;
	vlen = azb_map_value_encode(v, ent.phys, ent.valid, (int)ent.layered);
	rocksdb_writebatch_put(b, k, sizeof(k), v, vlen);
	azb_map_note_put(sh, plan->ns, plan->chunk, &ent, was_empty);
	return 0;
}

int azb_shard_commit_writes(struct azb_shard *shard, const struct azb_write_plan *plans, uint32_t n)
{
	rocksdb_writebatch_t *b;
	uint64_t counted_ns = 0; /* an ns whose count the batch does not hold yet */
	uint32_t i;
	int ret = azb_shard_writable(shard);

	for (i = 0; !ret && i < n; i++)
		if ((!plans[i].in_place && !azb_alloc_is_inflight(shard, plans[i].phys)) ||
		    !azb_valid_ok(shard, plans[i].valid) ||
		    (plans[i].valid != AZB_VALID_ALL && !azb_shard_tracks_valid(shard) &&
		     !plans[i].layered)) {
			azb_seterr(shard->err, sizeof(shard->err), "%s: chunk %llu was not planned",
				   shard->what, (unsigned long long)plans[i].phys);
			ret = -EINVAL;
		}
	if (ret)
		return ret;
	b = rocksdb_writebatch_create();
	shard->seen.hold++; /* the batch's puts are not in the DB until it is written */
	for (i = 0; !ret && i < n; i++) {
		int counted = 0;

		if (plans[i].in_place && plans[i].valid == plans[i].cur_valid)
			continue;
		ret = batch_put_entry(shard, b, &plans[i], &counted);
		if (!ret && !plans[i].in_place)
			azb_alloc_commit(shard, b, plans[i].phys);
		if (counted && counted_ns != plans[i].ns) {
			if (counted_ns)
				azb_shard_ns_count_put(shard, b, counted_ns);
			counted_ns = plans[i].ns;
		}
	}
	if (!ret && counted_ns)
		azb_shard_ns_count_put(shard, b, counted_ns);
	if (!ret) {
		azb_batch_put_alloc_counters(shard, b);
		ret = azb_shard_write(shard, b);
	} else if (i > 1) {
		/* earlier plans of the batch changed the counters and cache in memory */
		shard->broken = 1;
		azb_map_cache_clear(shard);
	}
	shard->seen.hold--;
	rocksdb_writebatch_destroy(b);
	return ret;
}

int azb_shard_commit_write(struct azb_shard *shard, const struct azb_write_plan *plan)
{
	return azb_shard_commit_writes(shard, plan, 1);
}

int azb_shard_abort_write(struct azb_shard *shard, const struct azb_write_plan *plan)
{
	int ret = azb_shard_writable(shard);

	if (ret || plan->in_place)
		return ret;
	return azb_alloc_abort(shard, plan->phys);
}

/* The group (ns, chunk) read so far ends: note its chunk if its newest entry is layered. */
static void layered_group_end(uint64_t chunk, int layered, uint64_t *chunks, uint32_t *n)
{
	if (layered)
		chunks[(*n)++] = chunk;
}

int azb_shard_find_layered(struct azb_shard *shard, uint64_t ns, uint64_t *cursor,
			   uint32_t max_keys, uint64_t *chunks, uint32_t cap, uint32_t *n)
{
	char lo[AZB_MAP_KEY_LEN], hi[AZB_MAP_KEY_LEN + 1];
	uint64_t cur = 0;
	uint32_t keys = 0;
	int have = 0, layered = 0, done = 1, ret, iret;
	struct azb_iter i;

	*n = 0;
	if (!cap)
		return 0;
	azb_map_key_encode(lo, ns, *cursor, 0);
	azb_map_key_encode(hi, ns, UINT64_MAX, UINT64_MAX);
	hi[AZB_MAP_KEY_LEN] = 0;
	azb_iter_open(&i, &shard->rdb, lo, sizeof(lo), hi, sizeof(hi));
	ret = 0;
	for (rocksdb_iter_seek_to_first(i.it); rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen), *v = rocksdb_iter_value(i.it, &vlen);
		struct azb_map_key mk;
		struct azb_map_ent e;

		if (azb_map_key_decode(k, klen, &mk) || azb_map_value_decode(v, vlen, &e)) {
			azb_seterr(shard->err, sizeof(shard->err),
				   "%s: bad mapping entry (run check)", shard->what);
			ret = -EIO;
			break;
		}
		if (have && mk.chunk != cur) {
			layered_group_end(cur, layered, chunks, n);
			*cursor = mk.chunk; /* (the last chunk wholly read is behind it) */
			if (*n == cap || keys >= max_keys) {
				done = 0;
				break;
			}
		}
		have = 1;
		cur = mk.chunk;
		layered = e.layered && e.valid != AZB_VALID_ALL; /* the newest so far */
		keys++;
	}
	if (!ret && done && have) {
		layered_group_end(cur, layered, chunks, n);
		*cursor = cur + 1;
	}
	iret = azb_iter_close(&i, shard->what, shard->err, sizeof(shard->err));
	return ret ? ret : iret ? iret : done;
}
