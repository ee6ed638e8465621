// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * check.c - consistency checks: a shard (entries and tombstones, free set,
 * counters, data file size against a recount) and pool.db (volumes and
 * namespace chains), one human-readable line per problem.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meta_internal.h"

#define CHECK_LINES_MAX 100
#define CHECK_BITMAP_MAX (1ULL << 31)

struct checker {
	void (*report)(const char *line, void *arg);
	void *arg;
	uint64_t problems;
};

static void problem(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct checker *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	c->problems++;
	if (!c->report || c->problems > CHECK_LINES_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (c->problems == CHECK_LINES_MAX)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 " (further problems are counted, not listed)");
	c->report(line, c->arg);
}

struct ns_count {
	uint64_t ns;
	uint64_t count;
};

struct shard_recount {
	struct azb_bitmap mapped;
	struct azb_bitmap free;
	uint64_t entries, tombstones, mapped_chunks, free_chunks;
	struct ns_count *ns; /* entries per namespace, by ns */
	uint32_t nr_ns, cap_ns;
};

#define ULL(x) ((unsigned long long)(x))

static int count_ns_entry(struct shard_recount *r, uint64_t ns)
{
	if (r->nr_ns && r->ns[r->nr_ns - 1].ns == ns) {
		r->ns[r->nr_ns - 1].count++;
		return 0;
	}
	if (r->nr_ns == r->cap_ns) {
		uint32_t cap = r->cap_ns ? r->cap_ns * 2 : 16;
		struct ns_count *q = realloc(r->ns, cap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		r->ns = q;
		r->cap_ns = cap;
	}
	r->ns[r->nr_ns++] = (struct ns_count){ ns, 1 };
	return 0;
}

/* Merge the stored per-namespace entry counts with the recount. */
static int check_ns_counts(struct azb_shard *sh, struct checker *c, struct shard_recount *r)
{
	uint32_t j = 0;
	struct azb_iter i;

	azb_iter_prefix(&i, &sh->rdb, AZB_K_NSCOUNT);
	for (; rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen), *v = rocksdb_iter_value(i.it, &vlen);
		uint64_t ns, n, want;

		if (klen != AZB_NS_KEY_LEN || azb_u64_value_decode(v, vlen, &n)) {
			problem(c, "shard %u: bad entry count record", sh->index);
			continue;
		}
		ns = azb_get_be64(k + 1);
		for (; j < r->nr_ns && r->ns[j].ns < ns; j++)
			problem(c, "shard %u: namespace %llu: entry count missing, recount %llu",
				sh->index, ULL(r->ns[j].ns), ULL(r->ns[j].count));
		want = j < r->nr_ns && r->ns[j].ns == ns ? r->ns[j++].count : 0;
		if (n != want)
			problem(c, "shard %u: namespace %llu: entry count %llu, recount %llu",
				sh->index, ULL(ns), ULL(n), ULL(want));
	}
	for (; j < r->nr_ns; j++)
		problem(c, "shard %u: namespace %llu: entry count missing, recount %llu", sh->index,
			ULL(r->ns[j].ns), ULL(r->ns[j].count));
	return azb_iter_close(&i, sh->what, sh->err, sizeof(sh->err));
}

static int check_entry(struct azb_shard *sh, const struct azb_holds *holds, struct checker *c,
		       struct shard_recount *r, const struct azb_map_key *mk, uint64_t p)
{
	r->entries++;
	if (count_ns_entry(r, mk->ns))
		return -ENOMEM;
	if (!azb_holds_find(holds, mk->ns))
		problem(c, "shard %u: entry (ns %llu, chunk %llu, epoch %llu): no such namespace",
			sh->index, ULL(mk->ns), ULL(mk->chunk), ULL(mk->epoch));
	if (p == AZB_TOMBSTONE) {
		r->tombstones++; /* owns no chunk */
		return 0;
	}
	if (p >= sh->high_water || p < sh->dd.first_chunk) {
		problem(c,
			"shard %u: entry (ns %llu, chunk %llu, epoch %llu) -> %llu is outside its "
			"chunks (high water %llu)",
			sh->index, ULL(mk->ns), ULL(mk->chunk), ULL(mk->epoch), ULL(p),
			ULL(sh->high_water));
		return 0;
	}
	if (!r->mapped.w)
		return 0;
	if (azb_bitmap_set(&r->mapped, p))
		problem(c,
			"shard %u: chunk %llu is owned by more than one entry (one is ns %llu, "
			"chunk %llu, epoch %llu)",
			sh->index, ULL(p), ULL(mk->ns), ULL(mk->chunk), ULL(mk->epoch));
	else
		r->mapped_chunks++;
	return 0;
}

/* A layered entry reads through to the entry beneath it: one of its own
 * namespace (the previous one of the same chunk) must hold data and not be
 * layered itself. (Beneath the first entry of a chunk is its parent's.) */
static void check_layered(struct checker *c, uint32_t shard, const struct azb_map_key *mk,
			  const struct azb_map_ent *e, const struct azb_map_key *pk,
			  const struct azb_map_ent *pe)
{
	if (!e->layered || pk->ns != mk->ns || pk->chunk != mk->chunk)
		return;
	if (pe->phys == AZB_TOMBSTONE || pe->layered)
		problem(c, "shard %u: layered entry (%llu, %llu, %llu) lies over a %s", shard,
			ULL(mk->ns), ULL(mk->chunk), ULL(mk->epoch),
			pe->phys == AZB_TOMBSTONE ? "tombstone" : "layered entry");
}

static int check_entries(struct azb_shard *sh, const struct azb_holds *holds, struct checker *c,
			 struct shard_recount *r)
{
	struct azb_map_key prev_k = { 0, 0, 0 };
	struct azb_map_ent prev = { 0 };
	struct azb_iter i;
	int ret = 0, iret;

	azb_iter_prefix(&i, &sh->rdb, AZB_K_MAP);
	for (; !ret && rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen), *v = rocksdb_iter_value(i.it, &vlen);
		struct azb_map_key mk;
		struct azb_map_ent e;

		if (azb_map_key_decode(k, klen, &mk) || azb_map_value_decode(v, vlen, &e)) {
			problem(c, "shard %u: undecodable mapping entry", sh->index);
			continue;
		}
		if (e.valid != AZB_VALID_ALL &&
		    (e.phys == AZB_TOMBSTONE || (!azb_shard_tracks_valid(sh) && !e.layered) ||
		     !azb_valid_ok(sh, e.valid)))
			problem(c, "shard %u: entry (%llu, %llu, %llu) has a bad valid mask %#llx",
				sh->index, ULL(mk.ns), ULL(mk.chunk), ULL(mk.epoch), ULL(e.valid));
		else
			ret = check_entry(sh, holds, c, r, &mk, e.phys);
		check_layered(c, sh->index, &mk, &e, &prev_k, &prev);
		prev_k = mk;
		prev = e;
	}
	iret = azb_iter_close(&i, sh->what, sh->err, sizeof(sh->err));
	if (!ret)
		ret = iret;
	return ret ? ret : check_ns_counts(sh, c, r);
}

static int check_free(struct azb_shard *sh, struct checker *c, struct shard_recount *r)
{
	struct azb_iter i;

	azb_iter_prefix(&i, &sh->rdb, AZB_K_FREE);
	for (; rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(i.it, &klen);
		uint64_t p = klen == AZB_FREE_KEY_LEN ? azb_get_be64(k + 1) : UINT64_MAX;

		r->free_chunks++;
		if (p >= sh->high_water) {
			problem(c, "shard %u: free chunk %llu is beyond high water %llu", sh->index,
				ULL(p), ULL(sh->high_water));
			continue;
		}
		if (!r->mapped.w)
			continue;
		azb_bitmap_set(&r->free, p);
		if (azb_bitmap_test(&r->mapped, p))
			problem(c, "shard %u: chunk %llu is both mapped and free", sh->index,
				ULL(p));
	}
	return azb_iter_close(&i, sh->what, sh->err, sizeof(sh->err));
}

static void check_leaks(struct azb_shard *sh, struct checker *c, struct shard_recount *r)
{
	for (uint64_t p = sh->dd.first_chunk; r->mapped.w && p < sh->high_water; p++)
		if (!azb_bitmap_test(&r->mapped, p) && !azb_bitmap_test(&r->free, p) &&
		    !azb_alloc_is_inflight(sh, p))
			problem(c, "shard %u: chunk %llu is neither mapped nor free (leaked)",
				sh->index, ULL(p));
}

static void check_counters(struct azb_shard *sh, struct checker *c, struct shard_recount *r)
{
	if (sh->entries != r->entries)
		problem(c, "shard %u: entry counter %llu, recount %llu", sh->index,
			ULL(sh->entries), ULL(r->entries));
	if (sh->tombstones != r->tombstones)
		problem(c, "shard %u: tombstone counter %llu, recount %llu", sh->index,
			ULL(sh->tombstones), ULL(r->tombstones));
	if (sh->free_count != r->free_chunks)
		problem(c, "shard %u: free counter %llu, recount %llu", sh->index,
			ULL(sh->free_count), ULL(r->free_chunks));
	if (r->mapped.w && sh->allocated != r->mapped_chunks)
		problem(c, "shard %u: allocated counter %llu, recount of mapped chunks %llu",
			sh->index, ULL(sh->allocated), ULL(r->mapped_chunks));
	if (sh->allocated + sh->free_count + sh->dd.first_chunk != sh->high_water)
		problem(c, "shard %u: allocated %llu + free %llu != high water %llu%s", sh->index,
			ULL(sh->allocated), ULL(sh->free_count),
			ULL(sh->high_water - sh->dd.first_chunk),
			sh->raw ? " (in its region of the data device)" : "");
}

static void check_data_file(struct azb_shard *sh, struct checker *c)
{
	struct stat st;

	if (sh->raw) {
		if (sh->high_water > sh->dd.end_chunk)
			problem(c, "shard %u: high water %llu past the end of its region (%llu)",
				sh->index, ULL(sh->high_water), ULL(sh->dd.end_chunk));
	} else if (fstat(sh->data_fd, &st) != 0)
		problem(c, "shard %u: cannot stat the data file: %s", sh->index, strerror(errno));
	else if ((uint64_t)st.st_size < sh->high_water * sh->s.chunk_size)
		problem(c, "shard %u: data file is %llu bytes, high water needs %llu", sh->index,
			ULL(st.st_size), ULL(sh->high_water * sh->s.chunk_size));
}

int azb_shard_check(struct azb_shard *shard, const struct azb_holds *holds,
		    void (*report)(const char *line, void *arg), void *arg)
{
	struct checker c = { report, arg, 0 };
	struct shard_recount r;
	int ret = 0;

	memset(&r, 0, sizeof(r));
	if (shard->high_water <= CHECK_BITMAP_MAX) {
		ret = azb_bitmap_init(&r.mapped, shard->high_water);
		if (!ret)
			ret = azb_bitmap_init(&r.free, shard->high_water);
	}
	if (!ret)
		ret = check_entries(shard, holds, &c, &r);
	if (!ret)
		ret = check_free(shard, &c, &r);
	if (!ret) {
		check_leaks(shard, &c, &r);
		check_counters(shard, &c, &r);
		check_data_file(shard, &c);
	}
	azb_bitmap_free(&r.mapped);
	azb_bitmap_free(&r.free);
	free(r.ns);
	if (ret)
		return ret;
	return c.problems > INT32_MAX ? INT32_MAX : (int)c.problems;
}

static void check_volume(struct checker *c, const struct azb_ns_rec *recs, uint32_t nr,
			 const struct azb_volume *v)
{
	const struct azb_ns_rec *r = azb_ns_recs_find(recs, nr, v->ns);

	if (!r) {
		problem(c, "pool: \"%s\" refers to namespace %llu, which does not exist", v->name,
			ULL(v->ns));
		return;
	}
	if (v->kind == AZB_VOL_SNAPSHOT && (v->epoch < 1 || v->epoch >= r->ns.epoch))
		problem(c, "pool: snapshot \"%s\" has epoch %llu, namespace %llu is at %llu",
			v->name, ULL(v->epoch), ULL(v->ns), ULL(r->ns.epoch));
	if (v->kind != AZB_VOL_SNAPSHOT && !r->ns.head_alive)
		problem(c, "pool: \"%s\" uses namespace %llu whose head is dead", v->name,
			ULL(v->ns));
	if (v->size_bytes == 0 || v->size_bytes % AZB_VOLUME_SIZE_ALIGN)
		problem(c, "pool: \"%s\" has size %llu", v->name, ULL(v->size_bytes));
}

static void check_ns_chain(struct checker *c, const struct azb_ns_rec *recs, uint32_t nr,
			   uint32_t i)
{
	const struct azb_ns_rec *r = &recs[i];
	uint32_t depth = 0;

	if (r->ns.id >= UINT64_MAX || !r->ns.epoch)
		problem(c, "pool: namespace %llu has epoch 0", ULL(r->ns.id));
	while (r && r->ns.parent_ns && depth++ <= nr) {
		const struct azb_ns_rec *parent = azb_ns_recs_find(recs, nr, r->ns.parent_ns);

		if (!parent) {
			problem(c, "pool: namespace %llu has missing parent %llu", ULL(r->ns.id),
				ULL(r->ns.parent_ns));
			return;
		}
		r = parent;
	}
	if (depth > nr)
		problem(c, "pool: namespace %llu has a parent loop", ULL(recs[i].ns.id));
}

int azb_pool_check(struct azb_pool *pool, void (*report)(const char *line, void *arg), void *arg,
		   char *err, size_t errlen)
{
	struct checker c = { report, arg, 0 };
	struct azb_ns_rec *recs = NULL;
	struct azb_volume *vols = NULL;
	uint32_t nr = 0, nv = 0;
	int ret = azb_pool_load_ns(pool, &recs, &nr, err, errlen);

	if (!ret)
		ret = azb_pool_load_volumes(pool, &vols, &nv, err, errlen);
	for (uint32_t i = 0; !ret && i < nv; i++)
		check_volume(&c, recs, nr, &vols[i]);
	for (uint32_t i = 0; !ret && i < nr; i++) {
		check_ns_chain(&c, recs, nr, i);
		if (recs[i].ns.id >= pool->next_ns)
			problem(&c, "pool: namespace %llu is not below the next id %llu",
				ULL(recs[i].ns.id), ULL(pool->next_ns));
	}
	azb_ns_recs_free(recs, nr);
	free(vols);
	if (ret)
		return ret;
	return c.problems > INT32_MAX ? INT32_MAX : (int)c.problems;
}
