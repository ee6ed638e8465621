// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pool_ops.c - volume management in pool.db: create, snapshot, clone,
 * rollback, delete, resize. Each is one synced WriteBatch (-EROFS on a pool
 * opened read-only).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta_internal.h"

#define LINEAGE_MAX 100000

static int check_new_name(struct azb_pool *p, const char *name, char *err, size_t errlen)
{
	struct azb_volume vol;
	int ret;

	if (azb_name_check(name)) {
		azb_seterr(err, errlen,
			   "invalid name \"%s\": 1 to %d characters of A-Z a-z 0-9 . _ -, not "
			   "starting with . or -",
			   name ? name : "", AZB_NAME_MAX);
		return -EINVAL;
	}
	ret = azb_pool_read_volume(p, name, &vol, err, errlen);
	if (ret == -ENOENT)
		return 0;
	if (!ret) {
		azb_seterr(err, errlen, "\"%s\" already exists in pool %s", name, p->dir);
		return -EEXIST;
	}
	return ret;
}

static int check_size(uint64_t size, char *err, size_t errlen)
{
	if (!size || size % AZB_VOLUME_SIZE_ALIGN || size > AZB_VOLUME_SIZE_MAX) {
		azb_seterr(err, errlen,
			   "size %llu: must be a non-zero multiple of 4096, at most 2^60",
			   (unsigned long long)size);
		return -EINVAL;
	}
	return 0;
}

static void volume_fill(struct azb_volume *v, const char *name, uint32_t kind, uint64_t size,
			uint64_t ns, uint64_t epoch, const char *parent)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(v->parent, sizeof(v->parent), "%s", parent ? parent : "");
	v->kind = kind;
	v->size_bytes = size;
	v->ns = ns;
	v->epoch = epoch;
	v->created = (int64_t)time(NULL);
}

/* Add a new namespace to the batch; *id is its id. */
static int batch_new_ns(struct azb_pool *p, rocksdb_writebatch_t *b, uint64_t parent,
			uint64_t parent_epoch, uint64_t *id)
{
	struct azb_ns_rec r = { 0 };

	r.ns.id = p->next_ns;
	r.ns.parent_ns = parent;
	r.ns.parent_epoch = parent_epoch;
	r.ns.epoch = 1;
	r.ns.head_alive = 1;
	*id = r.ns.id;
	azb_batch_put_counter(b, AZB_PC_NEXT_NS, r.ns.id + 1);
	return azb_batch_put_ns(b, &r);
}

/* Write the batch; on success apply the counters it carried. */
static int commit(struct azb_pool *p, rocksdb_writebatch_t *b, int new_ns, int gc_bump, char *err,
		  size_t errlen)
{
	int ret;

	if (gc_bump)
		azb_batch_put_counter(b, AZB_PC_GC_GEN, p->gc_generation + 1);
	ret = azb_pool_write(p, b, err, errlen);
	rocksdb_writebatch_destroy(b);
	if (ret)
		return ret;
	p->next_ns += new_ns;
	p->gc_generation += gc_bump;
	return 0;
}

int azb_pool_create_volume(struct azb_pool *pool, const char *name, uint64_t size_bytes, char *err,
			   size_t errlen)
{
	rocksdb_writebatch_t *b;
	struct azb_volume vol;
	uint64_t ns;
	int ret = azb_pool_writable(pool, err, errlen);

	if (!ret)
		ret = check_new_name(pool, name, err, errlen);
	if (!ret)
		ret = check_size(size_bytes, err, errlen);
	if (ret)
		return ret;
	b = rocksdb_writebatch_create();
	ret = batch_new_ns(pool, b, 0, 0, &ns);
	if (ret) {
		rocksdb_writebatch_destroy(b);
		return ret;
	}
	volume_fill(&vol, name, AZB_VOL_VOLUME, size_bytes, ns, 0, NULL);
	azb_batch_put_volume(b, &vol);
	return commit(pool, b, 1, 0, err, errlen);
}

/* Snapshot of a snapshot: same (ns, epoch). */
static int snapshot_of_snapshot(struct azb_pool *p, const struct azb_volume *src, const char *name,
				char *err, size_t errlen)
{
	rocksdb_writebatch_t *b = rocksdb_writebatch_create();
	struct azb_volume snap;

	volume_fill(&snap, name, AZB_VOL_SNAPSHOT, src->size_bytes, src->ns, src->epoch, src->name);
	azb_batch_put_volume(b, &snap);
	return commit(p, b, 0, 0, err, errlen);
}

/* Snapshot of a head: record (ns, epoch), then the head moves to epoch + 1. */
static int snapshot_of_head(struct azb_pool *p, const struct azb_volume *src, const char *name,
			    char *err, size_t errlen)
{
	rocksdb_writebatch_t *b;
	struct azb_volume snap;
	struct azb_ns_rec r;
	int ret = azb_pool_read_ns(p, src->ns, &r, err, errlen);

	if (ret)
		return ret;
	volume_fill(&snap, name, AZB_VOL_SNAPSHOT, src->size_bytes, src->ns, r.ns.epoch, src->name);
	r.ns.epoch++;
	b = rocksdb_writebatch_create();
	azb_batch_put_volume(b, &snap);
	ret = azb_batch_put_ns(b, &r);
	free(r.truncs);
	if (ret) {
		rocksdb_writebatch_destroy(b);
		return ret;
	}
	return commit(p, b, 0, 0, err, errlen);
}

int azb_pool_snapshot(struct azb_pool *pool, const char *src, const char *name, char *err,
		      size_t errlen)
{
	struct azb_volume s;
	int ret = azb_pool_writable(pool, err, errlen);

	if (!ret)
		ret = azb_pool_read_volume(pool, src, &s, err, errlen);
	if (!ret)
		ret = check_new_name(pool, name, err, errlen);
	if (ret)
		return ret;
	if (s.kind == AZB_VOL_SNAPSHOT)
		return snapshot_of_snapshot(pool, &s, name, err, errlen);
	return snapshot_of_head(pool, &s, name, err, errlen);
}

static int read_snapshot(struct azb_pool *p, const char *name, struct azb_volume *s, char *err,
			 size_t errlen)
{
	int ret = azb_pool_read_volume(p, name, s, err, errlen);

	if (!ret && s->kind != AZB_VOL_SNAPSHOT) {
		azb_seterr(err, errlen, "\"%s\" is a %s, not a snapshot", name,
			   azb_vol_kind_name(s->kind));
		return -EINVAL;
	}
	return ret;
}

static int read_writable(struct azb_pool *p, const char *name, struct azb_volume *v, char *err,
			 size_t errlen)
{
	int ret = azb_pool_read_volume(p, name, v, err, errlen);

	if (!ret && v->kind == AZB_VOL_SNAPSHOT) {
		azb_seterr(err, errlen, "\"%s\" is a snapshot (read-only)", name);
		return -EROFS;
	}
	return ret;
}

int azb_pool_clone(struct azb_pool *pool, const char *snap, const char *name, char *err,
		   size_t errlen)
{
	rocksdb_writebatch_t *b;
	struct azb_volume s, clone;
	uint64_t ns;
	int ret = azb_pool_writable(pool, err, errlen);

	if (!ret)
		ret = read_snapshot(pool, snap, &s, err, errlen);
	if (!ret)
		ret = check_new_name(pool, name, err, errlen);
	if (ret)
		return ret;
	b = rocksdb_writebatch_create();
	ret = batch_new_ns(pool, b, s.ns, s.epoch, &ns);
	if (ret) {
		rocksdb_writebatch_destroy(b);
		return ret;
	}
	volume_fill(&clone, name, AZB_VOL_CLONE, s.size_bytes, ns, 0, s.name);
	azb_batch_put_volume(b, &clone);
	return commit(pool, b, 1, 0, err, errlen);
}

/* 0 if namespace `want` is `ns` or one of its ancestors, -EINVAL if not. */
static int check_lineage(struct azb_pool *p, uint64_t ns, uint64_t want, char *err, size_t errlen)
{
	for (int depth = 0; ns && depth < LINEAGE_MAX; depth++) {
		struct azb_ns_rec r;
		int ret;

		if (ns == want)
			return 0;
		ret = azb_pool_read_ns(p, ns, &r, err, errlen);
		if (ret)
			return ret;
		free(r.truncs);
		ns = r.ns.parent_ns;
	}
	return -EINVAL;
}

/* Mark the head of `ns` dead in the batch. */
static int batch_kill_head(struct azb_pool *p, rocksdb_writebatch_t *b, uint64_t ns, char *err,
			   size_t errlen)
{
	struct azb_ns_rec r;
	int ret = azb_pool_read_ns(p, ns, &r, err, errlen);

	if (ret)
		return ret;
	r.ns.head_alive = 0;
	ret = azb_batch_put_ns(b, &r);
	free(r.truncs);
	return ret;
}

int azb_pool_rollback(struct azb_pool *pool, const char *vol, const char *snap, char *err,
		      size_t errlen)
{
	rocksdb_writebatch_t *b;
	struct azb_volume v, s;
	uint64_t ns;
	int ret = azb_pool_writable(pool, err, errlen);

	if (!ret)
		ret = read_writable(pool, vol, &v, err, errlen);
	if (!ret)
		ret = read_snapshot(pool, snap, &s, err, errlen);
	if (!ret)
		ret = check_lineage(pool, v.ns, s.ns, err, errlen);
	if (ret == -EINVAL)
		azb_seterr(err, errlen, "snapshot \"%s\" is not of the lineage of \"%s\"", snap,
			   vol);
	if (ret)
		return ret;
	b = rocksdb_writebatch_create();
	ret = batch_kill_head(pool, b, v.ns, err, errlen);
	if (!ret)
		ret = batch_new_ns(pool, b, s.ns, s.epoch, &ns);
	if (ret) {
		rocksdb_writebatch_destroy(b);
		return ret;
	}
	v.ns = ns;
	v.size_bytes = s.size_bytes;
	azb_batch_put_volume(b, &v);
	return commit(pool, b, 1, 1, err, errlen);
}

int azb_pool_delete(struct azb_pool *pool, const char *name, char *err, size_t errlen)
{
	rocksdb_writebatch_t *b;
	struct azb_volume v;
	char k[AZB_NAME_MAX + 1];
	int ret = azb_pool_writable(pool, err, errlen);

	if (!ret)
		ret = azb_pool_read_volume(pool, name, &v, err, errlen);
	if (ret)
		return ret;
	b = rocksdb_writebatch_create();
	if (v.kind != AZB_VOL_SNAPSHOT) {
		ret = batch_kill_head(pool, b, v.ns, err, errlen);
		if (ret) {
			rocksdb_writebatch_destroy(b);
			return ret;
		}
	}
	k[0] = AZB_K_VOLUME;
	memcpy(k + 1, v.name, strlen(v.name));
	rocksdb_writebatch_delete(b, k, 1 + strlen(v.name));
	return commit(pool, b, 0, 1, err, errlen);
}

/* Shrink: hide the head's entries beyond the new end, then move to a new epoch. */
static int batch_truncate(struct azb_pool *p, rocksdb_writebatch_t *b, uint64_t ns, uint64_t chunks,
			  char *err, size_t errlen)
{
	struct azb_ns_rec r;
	struct azb_trunc *t;
	int ret = azb_pool_read_ns(p, ns, &r, err, errlen);

	if (ret)
		return ret;
	t = realloc(r.truncs, (r.ns.nr_truncs + 1) * sizeof(*t));
	if (!t) {
		free(r.truncs);
		return -ENOMEM;
	}
	r.truncs = t;
	r.ns.epoch++;
	t[r.ns.nr_truncs].epoch = r.ns.epoch;
	t[r.ns.nr_truncs].chunks = chunks;
	r.ns.nr_truncs++;
	ret = azb_batch_put_ns(b, &r);
	free(r.truncs);
	return ret;
}

int azb_pool_set_active(struct azb_pool *pool, const char *name, bool active, char *err,
			size_t errlen)
{
	rocksdb_writebatch_t *b;
	struct azb_volume v;
	int ret = azb_pool_writable(pool, err, errlen);

	if (!ret)
		ret = azb_pool_read_volume(pool, name, &v, err, errlen);
	if (ret)
		return ret;
	if (!!(v.flags & AZB_VOL_F_ACTIVE) == active)
		return 0;
	v.flags = active ? v.flags | AZB_VOL_F_ACTIVE : v.flags & ~AZB_VOL_F_ACTIVE;
	b = rocksdb_writebatch_create();
	azb_batch_put_volume(b, &v);
	return commit(pool, b, 0, 0, err, errlen);
}

int azb_pool_resize(struct azb_pool *pool, const char *name, uint64_t size_bytes, char *err,
		    size_t errlen)
{
	uint64_t cs = pool->s.chunk_size, old_chunks, new_chunks;
	rocksdb_writebatch_t *b;
	struct azb_volume v;
	int ret = azb_pool_writable(pool, err, errlen), shrink;

	if (!ret)
		ret = read_writable(pool, name, &v, err, errlen);
	if (!ret)
		ret = check_size(size_bytes, err, errlen);
	if (ret)
		return ret;
	old_chunks = (v.size_bytes + cs - 1) / cs;
	new_chunks = (size_bytes + cs - 1) / cs;
	shrink = new_chunks < old_chunks;
	b = rocksdb_writebatch_create();
	if (shrink) {
		ret = batch_truncate(pool, b, v.ns, new_chunks, err, errlen);
		if (ret) {
			rocksdb_writebatch_destroy(b);
			return ret;
		}
	}
	v.size_bytes = size_bytes;
	azb_batch_put_volume(b, &v);
	return commit(pool, b, 0, shrink, err, errlen);
}
