// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * shard.c - one shard: its meta.db and data file. Create (pool init), open
 * (read-write or read-only) with the pool geometry checked, close, sync, the
 * per-namespace entry counts, and the lookup of a logical chunk through a view.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta_internal.h"

#define SHARD_SETTINGS_LEN (1 + 4 + AZB_SETTINGS_VALUE_LEN)
#define SHARD_SETTINGS_LEN_V0 (1 + 4 + AZB_SETTINGS_VALUE_LEN_V0)

static void shard_paths(const char *dir, uint32_t index, char *db, char *data, size_t len)
{
	snprintf(db, len, "%s/shard-%u/meta.db", dir, index);
	snprintf(data, len, "%s/shard-%u/data", dir, index);
}

static int shard_write_initial(struct azb_rdb *r, const struct azb_pool_settings *s, uint32_t index,
			       const struct azb_datadev *dd, char *err, size_t errlen)
{
	char k = AZB_K_SETTINGS, v[SHARD_SETTINGS_LEN], sk[2], sv[AZB_SC_STATE_LEN] = { 0 };
	rocksdb_writebatch_t *b = rocksdb_writebatch_create();
	int ret;

	v[0] = AZB_VALUE_V1;
	azb_put_be32(v + 1, index);
	azb_settings_encode(v + 5, s);
	rocksdb_writebatch_put(b, &k, 1, v, sizeof(v));
	azb_counter_key_encode(sk, AZB_SC_STATE);
	sv[0] = AZB_VALUE_V1; /* all counters 0, but high water at the region's start */
	if (dd) {
		char dk = AZB_K_DATADEV, dv[AZB_DATADEV_RECORD_LEN];

		azb_put_be64(sv + 9, dd->first_chunk);
		azb_datadev_encode(dv, dd);
		rocksdb_writebatch_put(b, &dk, 1, dv, sizeof(dv));
	}
	rocksdb_writebatch_put(b, sk, sizeof(sk), sv, sizeof(sv));
	azb_batch_put_counter(b, AZB_SC_GC_GEN, 0);
	ret = azb_rdb_write(r, b, err, errlen);
	rocksdb_writebatch_destroy(b);
	if (!ret) {
		char *rerr = NULL;

		rocksdb_flush_wal(r->db, 1, &rerr);
		if (rerr)
			ret = azb_rdb_error(rerr, r->path, "sync", err, errlen);
	}
	return ret;
}

int azb_shard_create(const char *dir, const struct azb_pool_settings *s, uint32_t index,
		     const char *data_dev, char *err, size_t errlen)
{
	char path[PATH_MAX], db[PATH_MAX], data[PATH_MAX], what[PATH_MAX + 32];
	struct azb_datadev dd;
	struct azb_rdb r;
	int fd, ret;

	if (data_dev && (ret = azb_datadev_layout(data_dev, index, &dd, err, errlen)))
		return ret;
	snprintf(path, sizeof(path), "%s/shard-%u", dir, index);
	if (mkdir(path, 0700) != 0) {
		ret = errno == EEXIST ? -EEXIST : -errno;
		azb_seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return ret;
	}
	shard_paths(dir, index, db, data, sizeof(db));
	snprintf(what, sizeof(what), "pool %s shard %u", dir, index);
	ret = azb_rdb_open(&r, db, what, s->meta_cache_bytes, 1, 0, err, errlen);
	if (ret)
		return ret;
	ret = shard_write_initial(&r, s, index, data_dev ? &dd : NULL, err, errlen);
	azb_rdb_close(&r);
	if (ret)
		return ret;
	if (data_dev) {
		if (symlink(data_dev, data) == 0)
			return 0;
		ret = -errno;
		azb_seterr(err, errlen, "cannot link %s to %s: %s", data, data_dev,
			   strerror(errno));
		return ret;
	}
	fd = open(data, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		azb_seterr(err, errlen, "cannot create %s: %s", data, strerror(errno));
		return ret;
	}
	close(fd);
	return 0;
}

static int shard_check_settings(struct azb_shard *sh, char *err, size_t errlen)
{
	struct azb_pool_settings s;
	char k = AZB_K_SETTINGS, *v;
	size_t vlen;
	int ret = azb_rdb_get(&sh->rdb, &k, 1, &v, &vlen, err, errlen);

	if (ret == -ENOENT)
		goto corrupt;
	if (ret)
		return ret;
	ret = (vlen == SHARD_SETTINGS_LEN || vlen == SHARD_SETTINGS_LEN_V0) && v[0] == AZB_VALUE_V1
		      ? 0
		      : -EINVAL;
	if (!ret)
		ret = azb_settings_decode(v + 5, vlen - 5, &s);
	if (!ret && (azb_get_be32(v + 1) != sh->index || s.chunk_size != sh->s.chunk_size ||
		     s.stripe_size != sh->s.stripe_size || s.nr_shards != sh->s.nr_shards))
		ret = -EINVAL;
	rocksdb_free(v);
	if (!ret)
		return 0;
corrupt:
	azb_seterr(err, errlen, "%s: settings record missing or not matching the pool", sh->what);
	return -EIO;
}

/* A shard made before the AZB_SC_STATE record: its counters one key each.
 * A read-write open moves them into the record. */
static int shard_read_old_counters(struct azb_shard *sh, char *err, size_t errlen)
{
	static const char ids[] = { AZB_SC_OLD_ALLOCATED, AZB_SC_OLD_HIGH_WATER, AZB_SC_OLD_FREE,
				    AZB_SC_OLD_ENTRIES };
	uint64_t *dst[] = { &sh->allocated, &sh->high_water, &sh->free_count, &sh->entries };
	rocksdb_writebatch_t *b;
	int ret;

	for (size_t i = 0; i < sizeof(ids); i++) {
		char k[2];

		azb_counter_key_encode(k, ids[i]);
		ret = azb_rdb_get_u64(&sh->rdb, k, 2, dst[i], err, errlen);
		if (ret)
			return ret;
	}
	sh->tombstones = 0;
	if (sh->readonly)
		return 0;
	b = rocksdb_writebatch_create();
	azb_batch_put_alloc_counters(sh, b);
	for (size_t i = 0; i < sizeof(ids); i++) {
		char k[2];

		azb_counter_key_encode(k, ids[i]);
		rocksdb_writebatch_delete(b, k, sizeof(k));
	}
	ret = azb_rdb_write(&sh->rdb, b, err, errlen);
	rocksdb_writebatch_destroy(b);
	return ret;
}

static int shard_read_counters(struct azb_shard *sh, char *err, size_t errlen)
{
	char k[2], *v;
	size_t vlen;
	int ret;

	azb_counter_key_encode(k, AZB_SC_GC_GEN);
	ret = azb_rdb_get_u64(&sh->rdb, k, sizeof(k), &sh->gc_generation, err, errlen);
	if (ret)
		return ret;
	azb_counter_key_encode(k, AZB_SC_STATE);
	ret = azb_rdb_get(&sh->rdb, k, sizeof(k), &v, &vlen, err, errlen);
	if (ret == -ENOENT)
		ret = shard_read_old_counters(sh, err, errlen);
	if (ret)
		return ret;
	if (v && vlen == AZB_SC_STATE_LEN && v[0] == AZB_VALUE_V1) {
		sh->allocated = azb_get_be64(v + 1);
		sh->high_water = azb_get_be64(v + 9);
		sh->free_count = azb_get_be64(v + 17);
		sh->entries = azb_get_be64(v + 25);
		sh->tombstones = azb_get_be64(v + 33);
	} else if (v) {
		azb_seterr(err, errlen, "%s: bad counters record (corrupt metadata)", sh->what);
		ret = -EIO;
	}
	rocksdb_free(v);
	sh->next_high_water = sh->high_water;
	return ret;
}

static int nsc_grow(struct azb_shard *sh)
{
	uint32_t cap = sh->cap_nsc ? sh->cap_nsc * 2 : 16;
	struct azb_ns_count *q;

	if (sh->nr_nsc < sh->cap_nsc)
		return 0;
	q = realloc(sh->nsc, cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	sh->nsc = q;
	sh->cap_nsc = cap;
	return 0;
}

/* The 'n' records, in ns order, into sh->nsc. */
static int shard_load_ns_counts(struct azb_shard *sh, char *err, size_t errlen)
{
	struct azb_iter i;
	int ret = 0, iret;

	azb_iter_prefix(&i, &sh->rdb, AZB_K_NSCOUNT);
	for (; !ret && rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen), *v = rocksdb_iter_value(i.it, &vlen);
		uint64_t n;

		if (klen != AZB_NS_KEY_LEN || azb_u64_value_decode(v, vlen, &n))
			continue; /* check reports it */
		ret = nsc_grow(sh);
		if (!ret)
			sh->nsc[sh->nr_nsc++] =
				(struct azb_ns_count){ azb_get_be64(k + 1), n, UINT64_MAX };
	}
	iret = azb_iter_close(&i, sh->what, err, errlen);
	return ret ? ret : iret;
}

/* Each namespace's top: 1 + its last entry's chunk. */
static int shard_load_ns_tops(struct azb_shard *sh, char *err, size_t errlen)
{
	uint64_t sum = 0;
	struct azb_iter i;

	for (uint32_t j = 0; j < sh->nr_nsc; j++)
		sum += sh->nsc[j].count;
	sh->nsc_suspect = sum != sh->entries;
	azb_iter_prefix(&i, &sh->rdb, AZB_K_MAP);
	for (uint32_t j = 0; j < sh->nr_nsc; j++) {
		char target[AZB_MAP_KEY_LEN];
		struct azb_map_key mk;
		size_t klen;

		azb_map_key_encode(target, sh->nsc[j].ns, UINT64_MAX, UINT64_MAX);
		rocksdb_iter_seek_for_prev(i.it, target, sizeof(target));
		if (!rocksdb_iter_valid(i.it))
			continue; /* (UINT64_MAX: no bound) */
		if (!azb_map_key_decode(rocksdb_iter_key(i.it, &klen), klen, &mk) &&
		    mk.ns == sh->nsc[j].ns && mk.chunk < UINT64_MAX)
			sh->nsc[j].top = mk.chunk + 1;
	}
	return azb_iter_close(&i, sh->what, err, errlen);
}

/* Whether the shard has a region of a data device (AZB_K_DATADEV). */
static int shard_has_datadev(struct azb_shard *sh)
{
	char k = AZB_K_DATADEV, *v, err[AZB_ERR_LEN];
	size_t vlen;

	if (azb_rdb_get(&sh->rdb, &k, 1, &v, &vlen, err, sizeof(err)))
		return 0;
	rocksdb_free(v);
	return 1;
}

/* Open the data file. Read-write: cut it back to high water, so that chunks
 * beyond it (the file grows ahead of it, and plans whose commit a crash lost
 * wrote there) are holes again when they are handed out. (A data device's
 * new chunks have no valid sub-block instead: datadev.c.) */

static int shard_open_data(struct azb_shard *sh, const char *path, char *err, size_t errlen)
{
	uint64_t used = sh->high_water * sh->s.chunk_size;
	struct stat st;
	int ret;

	sh->data_fd = open(path, (sh->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (sh->data_fd < 0 || fstat(sh->data_fd, &st) != 0) {
		ret = -errno;
		azb_seterr(err, errlen, "%s: cannot open %s: %s", sh->what, path, strerror(errno));
		return ret;
	}
	if (S_ISBLK(st.st_mode))
		return azb_datadev_open(sh, path, err, errlen);
	if (shard_has_datadev(sh)) {
		azb_seterr(err, errlen, "%s: %s should lead to the pool's data device", sh->what,
			   path);
		return -EIO;
	}
	sh->data_size = (uint64_t)st.st_size;
	if (sh->readonly || sh->data_size <= used)
		return 0;
	if (ftruncate(sh->data_fd, (off_t)used) != 0) {
		ret = -errno;
		azb_seterr(err, errlen, "%s: cannot cut %s back to high water: %s", sh->what, path,
			   strerror(errno));
		return ret;
	}
	sh->data_size = used;
	return 0;
}

/* shard_open modes */
enum shard_mode { SHARD_RW, SHARD_READONLY, SHARD_RW_BUFFERED };

void azb_shard_apply_settings(struct azb_shard *sh, const struct azb_pool_settings *s)
{
	sh->quota_chunks = s->limit_bytes ? s->limit_bytes / s->nr_shards / s->chunk_size : 0;
	sh->s.limit_bytes = s->limit_bytes;
	sh->s.low_space_percent = s->low_space_percent;
	if (sh->rdb.cache && s->meta_cache_bytes != sh->s.meta_cache_bytes)
		rocksdb_cache_set_capacity(sh->rdb.cache, s->meta_cache_bytes);
	sh->s.meta_cache_bytes = s->meta_cache_bytes;
	/* (a new map cache starts empty: it fills again from the DB) */
	if (s->map_cache_bytes != sh->s.map_cache_bytes &&
	    !azb_map_cache_init(sh, s->map_cache_bytes))
		sh->s.map_cache_bytes = s->map_cache_bytes;
}

static int shard_open(const char *dir, const struct azb_pool_settings *s, uint32_t index,
		      enum shard_mode mode, struct azb_shard **shard, char *err, size_t errlen)
{
	char db[PATH_MAX], data[PATH_MAX];
	struct azb_shard *sh;
	int ret;

	*shard = NULL;
	if (index >= s->nr_shards) {
		azb_seterr(err, errlen, "pool %s has no shard %u", dir, index);
		return -EINVAL;
	}
	sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	sh->s = *s;
	sh->index = index;
	sh->readonly = mode == SHARD_READONLY;
	sh->wal_buffered = mode == SHARD_RW_BUFFERED;
	sh->data_fd = -1;
	if (s->limit_bytes)
		sh->quota_chunks = s->limit_bytes / s->nr_shards / s->chunk_size;
	snprintf(sh->what, sizeof(sh->what), "pool %s shard %u", dir, index);
	shard_paths(dir, index, db, data, sizeof(db));
	if (sh->readonly)
		ret = azb_rdb_open_readonly(&sh->rdb, db, sh->what, s->meta_cache_bytes, err,
					    errlen);
	else
		ret = azb_rdb_open(&sh->rdb, db, sh->what, s->meta_cache_bytes, 0,
				   sh->wal_buffered ? AZB_RDB_BUFFERED_WAL : 0, err, errlen);
	if (!ret)
		ret = shard_check_settings(sh, err, errlen);
	if (!ret)
		ret = shard_read_counters(sh, err, errlen);
	if (!ret)
		ret = shard_load_ns_counts(sh, err, errlen);
	if (!ret)
		ret = shard_load_ns_tops(sh, err, errlen);
	if (!ret)
		ret = shard_open_data(sh, data, err, errlen);
	if (!ret)
		ret = azb_map_cache_init(sh, s->map_cache_bytes);
	if (ret) {
		if (ret == -ENOMEM)
			azb_seterr(err, errlen, "%s: out of memory", sh->what);
		azb_shard_close(sh);
		return ret;
	}
	*shard = sh;
	return 0;
}

int azb_shard_open(const char *dir, const struct azb_pool_settings *s, uint32_t index,
		   struct azb_shard **shard, char *err, size_t errlen)
{
	return shard_open(dir, s, index, SHARD_RW, shard, err, errlen);
}

int azb_shard_open_buffered(const char *dir, const struct azb_pool_settings *s, uint32_t index,
			    struct azb_shard **shard, char *err, size_t errlen)
{
	return shard_open(dir, s, index, SHARD_RW_BUFFERED, shard, err, errlen);
}

int azb_shard_open_readonly(const char *dir, const struct azb_pool_settings *s, uint32_t index,
			    struct azb_shard **shard, char *err, size_t errlen)
{
	return shard_open(dir, s, index, SHARD_READONLY, shard, err, errlen);
}

void azb_shard_close(struct azb_shard *shard)
{
	if (!shard)
		return;
	/* Make what discards freed durable before a later open may reuse it. */
	if (shard->nr_unsynced && !shard->broken && !shard->readonly)
		azb_shard_sync_wal(shard);
	else if (shard->wal_dirty && !shard->broken)
		azb_shard_flush_wal(shard);
	azb_map_cache_destroy(shard); /* its iterator first, then the DB */
	azb_rdb_close(&shard->rdb);
	if (shard->data_fd >= 0)
		close(shard->data_fd);
	free(shard->inflight);
	free(shard->nsc);
	free(shard);
}

bool azb_shard_broken(const struct azb_shard *shard)
{
	return shard->broken;
}

const char *azb_shard_error(const struct azb_shard *shard)
{
	return shard->err;
}

int azb_shard_data_fd(const struct azb_shard *shard)
{
	return shard->data_fd;
}

uint32_t azb_shard_index(const struct azb_shard *shard)
{
	return shard->index;
}

int azb_shard_writable(struct azb_shard *sh)
{
	if (sh->readonly) {
		azb_seterr(sh->err, sizeof(sh->err),
			   "%s is open read-only (a daemon may be serving it)", sh->what);
		return -EROFS;
	}
	if (sh->broken) {
		azb_seterr(sh->err, sizeof(sh->err),
			   "%s: a metadata write failed earlier; reopen the shard", sh->what);
		return -EIO;
	}
	return 0;
}

int azb_shard_sync_wal(struct azb_shard *sh)
{
	char *rerr = NULL;

	/* A data device's data on media before any mapping that makes it valid
	 * is (a mapping durable before its data would show old bytes). */
	if (sh->raw && fdatasync(sh->data_fd)) {
		azb_seterr(sh->err, sizeof(sh->err), "%s: cannot sync the data device: %s",
			   sh->what, strerror(errno));
		return -EIO;
	}
	rocksdb_flush_wal(sh->rdb.db, 1, &rerr);
	if (rerr)
		return azb_rdb_error(rerr, sh->what, "sync", sh->err, sizeof(sh->err));
	sh->nr_unsynced = 0; /* their freeing is durable: they may be reused */
	sh->wal_dirty = 0;
	return 0;
}

int azb_shard_flush_wal(struct azb_shard *sh)
{
	char *rerr = NULL;

	if (!sh->wal_dirty)
		return 0;
	rocksdb_flush_wal(sh->rdb.db, 0, &rerr);
	if (rerr) {
		sh->broken = 1;
		azb_map_cache_clear(sh);
		return azb_rdb_error(rerr, sh->what, "WAL write", sh->err, sizeof(sh->err));
	}
	sh->wal_dirty = 0;
	return 0;
}

int azb_shard_sync(struct azb_shard *shard)
{
	if (shard->readonly) {
		azb_seterr(shard->err, sizeof(shard->err), "%s is open read-only", shard->what);
		return -EROFS;
	}
	return azb_shard_sync_wal(shard);
}

int azb_shard_write(struct azb_shard *sh, rocksdb_writebatch_t *b)
{
	int ret = azb_rdb_write(&sh->rdb, b, sh->err, sizeof(sh->err));

	sh->wal_dirty = sh->wal_buffered;
	if (ret) {
		/* The cache may hold what the DB does not: forget it all. */
		sh->broken = 1;
		azb_map_cache_clear(sh);
	}
	return ret;
}

static struct azb_ns_count *nsc_find(const struct azb_shard *sh, uint64_t ns, uint32_t *pos)
{
	uint32_t lo = 0, hi = sh->nr_nsc;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (sh->nsc[mid].ns == ns) {
			*pos = mid;
			return &sh->nsc[mid];
		}
		if (sh->nsc[mid].ns < ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

int azb_shard_ns_empty(const struct azb_shard *sh, uint64_t ns, uint64_t chunk)
{
	uint32_t pos;
	const struct azb_ns_count *c;

	if (sh->broken || sh->nsc_suspect)
		return 0; /* its counts may be ahead of its DB / wrong (check says) */
	c = nsc_find(sh, ns, &pos);
	return !c || !c->count || chunk >= c->top;
}

int azb_shard_ns_count_add(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t ns,
			   uint64_t chunk, int64_t delta)
{
	int ret = azb_shard_ns_count_change(sh, ns, chunk, delta);

	if (!ret)
		azb_shard_ns_count_put(sh, b, ns);
	return ret;
}

void azb_shard_ns_count_put(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t ns)
{
	uint32_t pos;
	const struct azb_ns_count *c = nsc_find(sh, ns, &pos);

	azb_batch_put_ns_count(b, ns, c ? c->count : 0);
}

int azb_shard_ns_count_change(struct azb_shard *sh, uint64_t ns, uint64_t chunk, int64_t delta)
{
	uint32_t pos;
	struct azb_ns_count *c = nsc_find(sh, ns, &pos);
	uint64_t count;

	if (!c) {
		if (nsc_grow(sh))
			return -ENOMEM;
		memmove(&sh->nsc[pos + 1], &sh->nsc[pos], (sh->nr_nsc - pos) * sizeof(*c));
		sh->nr_nsc++;
		c = &sh->nsc[pos];
		*c = (struct azb_ns_count){ ns, 0, 0 };
	}
	if (delta < 0 && c->count < (uint64_t)-delta)
		count = 0;
	else
		count = c->count + (uint64_t)delta;
	if (delta > 0 && chunk >= c->top)
		c->top = chunk + 1;
	if (!count)
		c->top = 0;
	c->count = count;
	return 0;
}

void azb_batch_put_ns_count(rocksdb_writebatch_t *b, uint64_t ns, uint64_t count)
{
	char k[AZB_NS_KEY_LEN];

	azb_ns_key_encode(k, AZB_K_NSCOUNT, ns);
	if (count)
		azb_batch_put_u64(b, k, sizeof(k), count);
	else
		rocksdb_writebatch_delete(b, k, sizeof(k));
}

int azb_shard_find_entry(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
			 struct azb_map_ent *e)
{
	char lo[AZB_MAP_KEY_LEN], hi[AZB_MAP_KEY_LEN + 1], target[AZB_MAP_KEY_LEN];
	struct azb_map_key mk;
	struct azb_iter i;
	int ret = -ENOENT, iret;

	azb_map_key_encode(lo, ns, chunk, 0);
	azb_map_key_encode(hi, ns, chunk, UINT64_MAX);
	hi[AZB_MAP_KEY_LEN] = 0;
	azb_map_key_encode(target, ns, chunk, max_epoch);
	azb_iter_open(&i, &sh->rdb, lo, sizeof(lo), hi, sizeof(hi));
	rocksdb_iter_seek_for_prev(i.it, target, sizeof(target));
	if (rocksdb_iter_valid(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen);
		const char *v = rocksdb_iter_value(i.it, &vlen);

		ret = azb_map_key_decode(k, klen, &mk) || azb_map_value_decode(v, vlen, e) ? -EIO
											   : 0;
		e->epoch = mk.epoch;
		if (ret)
			azb_seterr(sh->err, sizeof(sh->err), "%s: bad mapping entry", sh->what);
	}
	iret = azb_iter_close(&i, sh->what, sh->err, sizeof(sh->err));
	return iret ? iret : ret;
}

uint64_t azb_view_chunks(const struct azb_view *v, uint64_t chunk_size)
{
	return v->size_bytes / chunk_size + !!(v->size_bytes % chunk_size);
}

uint64_t azb_truncs_cut(const struct azb_trunc *t, uint32_t nr, uint64_t max_epoch, uint64_t chunk)
{
	uint64_t cut = 0;

	for (uint32_t i = 0; i < nr; i++)
		if (t[i].epoch <= max_epoch && chunk >= t[i].chunks && t[i].epoch > cut)
			cut = t[i].epoch;
	return cut;
}

uint64_t azb_link_cut(const struct azb_view *v, const struct azb_view_link *l, uint64_t chunk)
{
	return azb_truncs_cut(v->truncs + l->trunc_first, l->nr_truncs, l->max_epoch, chunk);
}

static void map_zeros(struct azb_chunk_map *m)
{
	m->phys = m->base = AZB_PHYS_NONE;
	m->valid = m->base_valid = AZB_VALID_ALL;
}

/*
 * The entry the view reads for `chunk`, searching its links from `link` on,
 * the first of them only below epoch `below` (0: from its top): *found 0
 * when it reads zeros (nothing, a tombstone, or a shrink hides what is
 * older), else the entry and, in *at, its link.
 */
static int view_find(struct azb_shard *sh, const struct azb_view *view, uint32_t link,
		     uint64_t below, uint64_t chunk, struct azb_map_ent *e, uint32_t *at,
		     int *found)
{
	*found = 0;
	for (uint32_t i = link; i < view->nr_links; i++) {
		const struct azb_view_link *l = &view->links[i];
		uint64_t cut = azb_link_cut(view, l, chunk);
		uint64_t max = i == link && below ? below - 1 : l->max_epoch;
		int ret = azb_map_find_ent(sh, l->ns, chunk, max, e);

		if (ret && ret != -ENOENT)
			return ret;
		if (!ret && e->epoch >= cut) {
			*found = e->phys != AZB_TOMBSTONE; /* a tombstone: zeros */
			*at = i;
			return 0;
		}
		if (cut)
			return 0; /* hidden by a shrink: zeros */
	}
	return 0;
}

int azb_view_lookup_beneath(struct azb_shard *sh, const struct azb_view *view, uint32_t link,
			    uint64_t epoch, uint64_t chunk, struct azb_chunk_map *m)
{
	struct azb_map_ent e;
	uint32_t at;
	int found, ret;

	map_zeros(m);
	/* epoch 0: nothing older in the link itself */
	ret = epoch ? view_find(sh, view, link, epoch, chunk, &e, &at, &found)
		    : view_find(sh, view, link + 1, 0, chunk, &e, &at, &found);
	if (!ret && found) {
		m->phys = e.phys;
		m->valid = e.valid;
	}
	return ret;
}

int azb_view_lookup_from(struct azb_shard *sh, const struct azb_view *view, uint32_t first,
			 uint64_t chunk, struct azb_chunk_map *m)
{
	struct azb_chunk_map beneath;
	struct azb_map_ent e;
	uint32_t at;
	int found, ret = view_find(sh, view, first, 0, chunk, &e, &at, &found);

	map_zeros(m);
	if (ret || !found)
		return ret;
	m->phys = e.phys;
	m->valid = e.valid;
	if (!e.layered || e.valid == AZB_VALID_ALL)
		return 0;
	ret = azb_view_lookup_beneath(sh, view, at, e.epoch, chunk, &beneath);
	m->base = beneath.phys;
	m->base_valid = beneath.valid;
	return ret;
}

int azb_shard_lookup(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
		     uint64_t *phys)
{
	struct azb_chunk_map m;
	int ret = azb_shard_lookup_map(shard, view, chunk, &m);

	*phys = m.phys;
	return ret;
}

int azb_shard_lookup_map(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
			 struct azb_chunk_map *m)
{
	map_zeros(m);
	if (chunk >= azb_view_chunks(view, shard->s.chunk_size))
		return 0;
	return azb_view_lookup_from(shard, view, 0, chunk, m);
}

int azb_shard_tracks_valid(const struct azb_shard *shard)
{
	return shard->raw;
}

uint32_t azb_valid_unit(const struct azb_shard *shard)
{
	uint64_t unit = shard->s.chunk_size / 64;

	return (uint32_t)(unit < AZB_VALID_UNIT_MIN ? AZB_VALID_UNIT_MIN : unit);
}

/* The bits of the sub-blocks [off, off + len) touches. */
static uint64_t valid_bits(const struct azb_shard *shard, uint64_t off, uint64_t len)
{
	uint32_t unit = azb_valid_unit(shard);
	uint64_t first = off / unit, last = (off + len - 1) / unit;

	if (!len)
		return 0;
	return (last - first == 63 ? UINT64_MAX : ((1ULL << (last - first + 1)) - 1)) << first;
}

static uint64_t valid_full(const struct azb_shard *shard)
{
	uint64_t subs = shard->s.chunk_size / azb_valid_unit(shard);

	return subs == 64 ? UINT64_MAX : (1ULL << subs) - 1;
}

uint64_t azb_valid_add(const struct azb_shard *shard, uint64_t valid, uint64_t off, uint64_t len)
{
	if (valid == AZB_VALID_ALL)
		return valid;
	valid |= valid_bits(shard, off, len);
	return (valid & valid_full(shard)) == valid_full(shard) ? AZB_VALID_ALL : valid;
}

int azb_valid_ok(const struct azb_shard *shard, uint64_t valid)
{
	return valid == AZB_VALID_ALL ||
	       (!(valid & ~valid_full(shard)) && valid != valid_full(shard));
}

int azb_valid_covers(const struct azb_shard *shard, uint64_t valid, uint64_t off, uint64_t len)
{
	uint64_t bits = valid_bits(shard, off, len);

	return valid == AZB_VALID_ALL || (valid & bits) == bits;
}
