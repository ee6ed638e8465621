// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pool.c - the pool directory and its pool.db: init, open (read-write or
 * read-only), close, settings, counters, and reading/writing volume and
 * namespace records.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta_internal.h"

static int path_exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

/*
 * Make every missing parent of `dir` (like mkdir -p; they get 0755, as
 * /var/lib/azbuse would from a package), then `dir` itself with 0700: a pool
 * holds every volume's data, which is for root alone. An existing directory
 * keeps its mode.
 */
static int pool_dir_make(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		azb_seterr(err, errlen, "bad pool directory '%s'", dir);
		return -EINVAL;
	}
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			int ret = -errno;

			azb_seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
			return ret;
		}
		*p = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		int ret = -errno;

		azb_seterr(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return ret;
	}
	return 0;
}

static int pool_dir_prepare(const char *dir, char *err, size_t errlen)
{
	int ret = pool_dir_make(dir, err, errlen);

	if (ret)
		return ret;
	if (path_exists(dir, "pool.db")) {
		azb_seterr(err, errlen, "%s is already a pool", dir);
		return -EEXIST;
	}
	/* (not removed here: they may be a pool's whose pool.db was lost) */
	if (path_exists(dir, "shard-0")) {
		azb_seterr(err, errlen,
			   "%s holds shards but no pool.db: an init that did not finish, or a "
			   "pool whose pool.db is gone; remove %s/shard-* to make a new pool "
			   "there",
			   dir, dir);
		return -ENOTEMPTY;
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* An init that failed: what it made goes (nothing else can have used it). */
static void pool_init_undo(const char *dir, uint32_t shards_made, bool pool_db_made)
{
	char path[PATH_MAX + 32];

	if (pool_db_made) {
		snprintf(path, sizeof(path), "%s/pool.db", dir);
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	for (uint32_t k = 0; k < shards_made; k++) {
		snprintf(path, sizeof(path), "%s/shard-%u", dir, k);
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
}

static int pool_db_create(const char *dir, const struct azb_pool_settings *s, char *err,
			  size_t errlen)
{
	char path[PATH_MAX], what[PATH_MAX + 8], v[AZB_SETTINGS_VALUE_LEN], k = AZB_K_SETTINGS;
	struct azb_rdb r;
	rocksdb_writebatch_t *b;
	int ret;

	snprintf(path, sizeof(path), "%s/pool.db", dir);
	snprintf(what, sizeof(what), "pool %s", dir);
	ret = azb_rdb_open(&r, path, what, AZB_POOL_DB_CACHE_BYTES, 1, AZB_RDB_SYNC, err, errlen);
	if (ret)
		return ret;
	b = rocksdb_writebatch_create();
	azb_settings_encode(v, s);
	rocksdb_writebatch_put(b, &k, 1, v, sizeof(v));
	azb_batch_put_counter(b, AZB_PC_NEXT_NS, 1);
	azb_batch_put_counter(b, AZB_PC_GC_GEN, 0);
	ret = azb_rdb_write(&r, b, err, errlen);
	rocksdb_writebatch_destroy(b);
	azb_rdb_close(&r);
	return ret;
}

int azb_pool_init(const char *dir, const struct azb_pool_settings *settings, char *err,
		  size_t errlen)
{
	return azb_pool_init_on(dir, settings, NULL, err, errlen);
}

int azb_pool_init_on(const char *dir, const struct azb_pool_settings *settings,
		     const char *data_dev, char *err, size_t errlen)
{
	struct azb_pool_settings s = *settings;
	uint32_t made = 0; /* shards */
	uint64_t pool_id;
	int ret = azb_pool_settings_check(&s, err, errlen);

	if (ret)
		return ret;
	if (data_dev && data_dev[0] != '/') {
		azb_seterr(err, errlen, "the data device must be an absolute path, not %s",
			   data_dev);
		return -EINVAL;
	}
	ret = pool_dir_prepare(dir, err, errlen);
	if (ret)
		return ret;
	if (data_dev && (ret = azb_datadev_claim(data_dev, &s, &pool_id, err, errlen)))
		return ret;
	for (; !ret && made < s.nr_shards; made++)
		ret = azb_shard_create(dir, &s, made, data_dev, err, errlen);
	if (ret)
		made--; /* (the one that failed is not known to be ours) */
	/* pool.db last: a directory is a pool once pool.db exists. */
	if (!ret)
		ret = pool_db_create(dir, &s, err, errlen);
	if (ret && data_dev)
		azb_datadev_unclaim(data_dev); /* a new init may take it */
	if (ret)
		pool_init_undo(dir, made, made == s.nr_shards);
	return ret;
}

static int pool_read_settings(struct azb_pool *p, char *err, size_t errlen)
{
	char k = AZB_K_SETTINGS, *v;
	size_t vlen;
	int ret = azb_rdb_get(&p->rdb, &k, 1, &v, &vlen, err, errlen);

	if (ret == -ENOENT) {
		azb_seterr(err, errlen, "pool %s has no settings (corrupt metadata)", p->dir);
		return -EIO;
	}
	if (ret)
		return ret;
	ret = azb_settings_decode(v, vlen, &p->s);
	rocksdb_free(v);
	if (ret || azb_pool_settings_check(&p->s, NULL, 0)) {
		azb_seterr(err, errlen, "pool %s: bad settings record (corrupt metadata)", p->dir);
		return -EIO;
	}
	return 0;
}

int azb_pool_set_settings(struct azb_pool *p, const struct azb_pool_settings *want, char *err,
			  size_t errlen)
{
	char k = AZB_K_SETTINGS, v[AZB_SETTINGS_VALUE_LEN];
	struct azb_pool_settings s = *want;
	rocksdb_writebatch_t *b;
	int ret = azb_pool_writable(p, err, errlen);

	if (ret)
		return ret;
	if (s.chunk_size != p->s.chunk_size || s.stripe_size != p->s.stripe_size ||
	    s.nr_shards != p->s.nr_shards) {
		azb_seterr(err, errlen, "chunk size, stripe and shards are fixed at init");
		return -EINVAL;
	}
	ret = azb_pool_settings_check(&s, err, errlen);
	if (ret)
		return ret;
	azb_settings_encode(v, &s);
	b = rocksdb_writebatch_create();
	rocksdb_writebatch_put(b, &k, 1, v, sizeof(v));
	ret = azb_pool_write(p, b, err, errlen);
	rocksdb_writebatch_destroy(b);
	if (!ret)
		p->s = s;
	return ret;
}

static int pool_read_counters(struct azb_pool *p, char *err, size_t errlen)
{
	char k[2];
	int ret;

	azb_counter_key_encode(k, AZB_PC_NEXT_NS);
	ret = azb_rdb_get_u64(&p->rdb, k, 2, &p->next_ns, err, errlen);
	if (ret)
		return ret;
	azb_counter_key_encode(k, AZB_PC_GC_GEN);
	ret = azb_rdb_get_u64(&p->rdb, k, 2, &p->gc_generation, err, errlen);
	if (!ret && !p->next_ns) {
		azb_seterr(err, errlen, "pool %s has no namespace counter (corrupt metadata)",
			   p->dir);
		return -EIO;
	}
	return ret;
}

static int pool_open(const char *dir, int readonly, struct azb_pool **pool, char *err,
		     size_t errlen)
{
	char path[PATH_MAX], what[PATH_MAX + 8];
	struct azb_pool *p;
	int ret;

	*pool = NULL;
	if (!path_exists(dir, "pool.db")) {
		azb_seterr(err, errlen, "no pool at %s (%s/pool.db does not exist)", dir, dir);
		return -ENOENT;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(path, sizeof(path), "%s/pool.db", dir);
	snprintf(what, sizeof(what), "pool %s", dir);
	p->readonly = readonly;
	if (readonly)
		ret = azb_rdb_open_readonly(&p->rdb, path, what, AZB_POOL_DB_CACHE_BYTES, err,
					    errlen);
	else
		ret = azb_rdb_open(&p->rdb, path, what, AZB_POOL_DB_CACHE_BYTES, 0, AZB_RDB_SYNC,
				   err, errlen);
	if (!ret)
		ret = pool_read_settings(p, err, errlen);
	if (!ret)
		ret = pool_read_counters(p, err, errlen);
	if (ret) {
		azb_pool_close(p);
		return ret;
	}
	*pool = p;
	return 0;
}

int azb_pool_open(const char *dir, struct azb_pool **pool, char *err, size_t errlen)
{
	return pool_open(dir, 0, pool, err, errlen);
}

int azb_pool_open_readonly(const char *dir, struct azb_pool **pool, char *err, size_t errlen)
{
	return pool_open(dir, 1, pool, err, errlen);
}

int azb_pool_writable(struct azb_pool *p, char *err, size_t errlen)
{
	if (!p->readonly)
		return 0;
	azb_seterr(err, errlen, "pool %s is open read-only (a daemon may be serving it)", p->dir);
	return -EROFS;
}

void azb_pool_close(struct azb_pool *pool)
{
	if (!pool)
		return;
	azb_rdb_close(&pool->rdb);
	free(pool);
}

const struct azb_pool_settings *azb_pool_get_settings(const struct azb_pool *pool)
{
	return &pool->s;
}

const char *azb_pool_dir(const struct azb_pool *pool)
{
	return pool->dir;
}

uint64_t azb_pool_gc_generation(const struct azb_pool *pool)
{
	return pool->gc_generation;
}

int azb_pool_write(struct azb_pool *p, rocksdb_writebatch_t *b, char *err, size_t errlen)
{
	return azb_rdb_write(&p->rdb, b, err, errlen);
}

static size_t volume_key(char *k, const char *name)
{
	size_t n = strnlen(name, AZB_NAME_MAX);

	k[0] = AZB_K_VOLUME;
	memcpy(k + 1, name, n);
	return n + 1;
}

int azb_pool_read_volume(struct azb_pool *p, const char *name, struct azb_volume *vol, char *err,
			 size_t errlen)
{
	char k[AZB_NAME_MAX + 1], *v;
	size_t klen, vlen;
	int ret;

	if (azb_name_check(name)) {
		azb_seterr(err, errlen, "invalid name \"%s\"", name ? name : "");
		return -EINVAL;
	}
	klen = volume_key(k, name);
	ret = azb_rdb_get(&p->rdb, k, klen, &v, &vlen, err, errlen);
	if (ret == -ENOENT)
		azb_seterr(err, errlen, "no volume or snapshot named \"%s\" in pool %s", name,
			   p->dir);
	if (ret)
		return ret;
	ret = azb_volume_decode(name, klen - 1, v, vlen, vol);
	rocksdb_free(v);
	if (ret) {
		azb_seterr(err, errlen, "pool %s: bad record of \"%s\" (corrupt metadata)", p->dir,
			   name);
		return -EIO;
	}
	return 0;
}

void azb_batch_put_volume(rocksdb_writebatch_t *b, const struct azb_volume *vol)
{
	char k[AZB_NAME_MAX + 1], v[AZB_VOLUME_VALUE_MAX];
	size_t klen = volume_key(k, vol->name), vlen = azb_volume_encode(v, vol);

	rocksdb_writebatch_put(b, k, klen, v, vlen);
}

int azb_pool_read_ns(struct azb_pool *p, uint64_t id, struct azb_ns_rec *r, char *err,
		     size_t errlen)
{
	char k[AZB_NS_KEY_LEN], *v;
	size_t vlen;
	int ret;

	memset(r, 0, sizeof(*r));
	azb_ns_key_encode(k, AZB_K_NS, id);
	ret = azb_rdb_get(&p->rdb, k, sizeof(k), &v, &vlen, err, errlen);
	if (ret == -ENOENT)
		azb_seterr(err, errlen, "pool %s has no namespace %llu", p->dir,
			   (unsigned long long)id);
	if (ret)
		return ret;
	ret = azb_ns_decode(id, v, vlen, r);
	rocksdb_free(v);
	if (ret == -EINVAL) {
		azb_seterr(err, errlen, "pool %s: bad record of namespace %llu (corrupt metadata)",
			   p->dir, (unsigned long long)id);
		return -EIO;
	}
	return ret;
}

int azb_batch_put_ns(rocksdb_writebatch_t *b, const struct azb_ns_rec *r)
{
	char k[AZB_NS_KEY_LEN], *v;
	size_t vlen;

	v = azb_ns_encode(r, &vlen);
	if (!v)
		return -ENOMEM;
	azb_ns_key_encode(k, AZB_K_NS, r->ns.id);
	rocksdb_writebatch_put(b, k, sizeof(k), v, vlen);
	free(v);
	return 0;
}

void azb_ns_recs_free(struct azb_ns_rec *recs, uint32_t nr)
{
	for (uint32_t i = 0; recs && i < nr; i++)
		free(recs[i].truncs);
	free(recs);
}

const struct azb_ns_rec *azb_ns_recs_find(const struct azb_ns_rec *recs, uint32_t nr, uint64_t id)
{
	uint32_t lo = 0, hi = nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (recs[mid].ns.id == id)
			return &recs[mid];
		if (recs[mid].ns.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Grow *arr (of `size`-byte elements) to hold at least n + 1. */
static int grow(void **arr, uint32_t *cap, uint32_t n, size_t size)
{
	void *q;
	uint32_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	q = realloc(*arr, ncap * size);
	if (!q)
		return -ENOMEM;
	*arr = q;
	*cap = ncap;
	return 0;
}

static int ns_rec_from_iter(rocksdb_iterator_t *it, struct azb_ns_rec *r)
{
	size_t klen, vlen;
	const char *k = rocksdb_iter_key(it, &klen), *v = rocksdb_iter_value(it, &vlen);

	if (klen != AZB_NS_KEY_LEN)
		return -EINVAL;
	return azb_ns_decode(azb_get_be64(k + 1), v, vlen, r);
}

int azb_pool_load_ns(struct azb_pool *p, struct azb_ns_rec **recs, uint32_t *nr, char *err,
		     size_t errlen)
{
	struct azb_ns_rec *arr = NULL;
	uint32_t n = 0, cap = 0;
	struct azb_iter i;
	int ret = 0, iret;

	azb_iter_prefix(&i, &p->rdb, AZB_K_NS);
	for (; rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		ret = grow((void **)&arr, &cap, n, sizeof(*arr));
		if (ret)
			break;
		ret = ns_rec_from_iter(i.it, &arr[n]);
		if (ret) {
			azb_seterr(err, errlen, "pool %s: bad namespace record (corrupt metadata)",
				   p->dir);
			ret = ret == -EINVAL ? -EIO : ret;
			break;
		}
		n++;
	}
	iret = azb_iter_close(&i, p->dir, err, errlen);
	if (!ret)
		ret = iret;
	if (ret) {
		azb_ns_recs_free(arr, n);
		return ret;
	}
	*recs = arr;
	*nr = n;
	return 0;
}

int azb_pool_load_volumes(struct azb_pool *p, struct azb_volume **vols, uint32_t *nr, char *err,
			  size_t errlen)
{
	struct azb_volume *arr = NULL;
	uint32_t n = 0, cap = 0;
	struct azb_iter i;
	int ret = 0, iret;

	azb_iter_prefix(&i, &p->rdb, AZB_K_VOLUME);
	for (; rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(i.it, &klen);
		const char *v = rocksdb_iter_value(i.it, &vlen);

		ret = grow((void **)&arr, &cap, n, sizeof(*arr));
		if (ret)
			break;
		if (klen < 2 || azb_volume_decode(k + 1, klen - 1, v, vlen, &arr[n])) {
			azb_seterr(err, errlen, "pool %s: bad volume record (corrupt metadata)",
				   p->dir);
			ret = -EIO;
			break;
		}
		n++;
	}
	iret = azb_iter_close(&i, p->dir, err, errlen);
	if (!ret)
		ret = iret;
	if (ret) {
		free(arr);
		return ret;
	}
	*vols = arr;
	*nr = n;
	return 0;
}

int azb_pool_get_volume(struct azb_pool *pool, const char *name, struct azb_volume *vol, char *err,
			size_t errlen)
{
	return azb_pool_read_volume(pool, name, vol, err, errlen);
}

int azb_pool_list(struct azb_pool *pool, int (*fn)(const struct azb_volume *vol, void *arg),
		  void *arg, char *err, size_t errlen)
{
	struct azb_volume *vols = NULL;
	uint32_t nr = 0;
	int ret = azb_pool_load_volumes(pool, &vols, &nr, err, errlen);

	for (uint32_t i = 0; !ret && i < nr; i++)
		ret = fn(&vols[i], arg);
	free(vols);
	return ret;
}

int azb_pool_get_ns(struct azb_pool *pool, uint64_t id, struct azb_ns *ns, char *err, size_t errlen)
{
	struct azb_ns_rec r;
	int ret = azb_pool_read_ns(pool, id, &r, err, errlen);

	if (ret)
		return ret;
	*ns = r.ns;
	free(r.truncs);
	return 0;
}
