// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rdb.c - the RocksDB handle used by pool.db and the shard DBs: options that
 * keep metadata RAM bounded, open (read-write or read-only)/close with one
 * destroy path, and turning RocksDB error strings into -errno plus a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "meta_internal.h"

#define WAL_TOTAL_MAX (16ULL << 20)
/* A read-only open races with the writer's flushes and compactions (a file
 * it lists may be gone when it opens it): it is retried. */
#define RO_OPEN_TRIES 5
#define RO_OPEN_RETRY_NS 20000000L

static int rdb_errno_of(const char *msg)
{
	if (strstr(msg, "Corruption"))
		return -EIO;
	if (strstr(msg, "/LOCK") || strstr(msg, "lock hold"))
		return -EBUSY;
	if (strstr(msg, "does not exist") || strstr(msg, "No such file"))
		return -ENOENT;
	if (strstr(msg, "No space"))
		return -ENOSPC;
	return -EIO;
}

int azb_rdb_error(char *rerr, const char *what, const char *doing, char *err, size_t errlen)
{
	int ret = rdb_errno_of(rerr);

	switch (ret) {
	case -EBUSY:
		azb_seterr(err, errlen, "%s is in use by another process (%s)", what, rerr);
		break;
	case -ENOENT:
		azb_seterr(err, errlen, "%s does not exist (%s)", what, rerr);
		break;
	default:
		azb_seterr(err, errlen, "%s: %s failed%s: %s", what, doing,
			   strstr(rerr, "Corruption") ? " (corrupt metadata)" : "", rerr);
		break;
	}
	rocksdb_free(rerr);
	return ret;
}

static void rdb_set_options(struct azb_rdb *r, uint64_t cache_bytes, int create, unsigned flags)
{
	rocksdb_options_t *o = r->opts;

	r->cache = rocksdb_cache_create_lru(cache_bytes);
	r->table = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(r->table, r->cache);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(r->table, 1);
	rocksdb_options_set_block_based_table_factory(o, r->table);
	rocksdb_options_set_create_if_missing(o, create);
	rocksdb_options_set_error_if_exists(o, create);
	rocksdb_options_set_paranoid_checks(o, 1);
	rocksdb_options_set_write_buffer_size(o, AZB_META_MEMTABLE_BYTES);
	rocksdb_options_set_max_write_buffer_number(o, AZB_META_MEMTABLES);
	rocksdb_options_set_max_open_files(o, AZB_META_MAX_OPEN_FILES);
	rocksdb_options_set_max_total_wal_size(o, WAL_TOTAL_MAX);
	rocksdb_options_set_info_log_level(o, 2 /* WARN */);
	rocksdb_options_set_keep_log_file_num(o, 2);
	rocksdb_options_set_max_log_file_size(o, 1 << 20);
	rocksdb_options_set_manual_wal_flush(o, !!(flags & AZB_RDB_BUFFERED_WAL));
}

static int rdb_prepare(struct azb_rdb *r, const char *path, const char *what, uint64_t cache_bytes,
		       int create, unsigned flags, char *err, size_t errlen)
{
	struct stat st;

	memset(r, 0, sizeof(*r));
	snprintf(r->path, sizeof(r->path), "%s", path);
	if (!create && stat(path, &st) != 0) {
		int ret = errno == ENOENT ? -ENOENT : -errno;

		azb_seterr(err, errlen, "%s does not exist (%s: %s)", what, path, strerror(errno));
		return ret;
	}
	r->opts = rocksdb_options_create();
	rdb_set_options(r, cache_bytes, create, flags);
	r->wopts = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(r->wopts, !!(flags & AZB_RDB_SYNC));
	r->ropts = rocksdb_readoptions_create();
	return 0;
}

int azb_rdb_open(struct azb_rdb *r, const char *path, const char *what, uint64_t cache_bytes,
		 int create, unsigned flags, char *err, size_t errlen)
{
	char *rerr = NULL;
	int ret = rdb_prepare(r, path, what, cache_bytes, create, flags, err, errlen);

	if (ret)
		return ret;
	r->db = rocksdb_open(r->opts, path, &rerr);
	if (rerr) {
		ret = azb_rdb_error(rerr, what, "open", err, errlen);
		azb_rdb_close(r);
		return ret;
	}
	return 0;
}

int azb_rdb_open_readonly(struct azb_rdb *r, const char *path, const char *what,
			  uint64_t cache_bytes, char *err, size_t errlen)
{
	const struct timespec pause = { 0, RO_OPEN_RETRY_NS };
	int ret = rdb_prepare(r, path, what, cache_bytes, 0, 0, err, errlen);

	if (ret)
		return ret;
	/* Keep every table file open: the writer may delete those it compacted. */
	rocksdb_options_set_max_open_files(r->opts, -1);
	for (int i = 0; i < RO_OPEN_TRIES; i++) {
		char *rerr = NULL;

		if (i)
			nanosleep(&pause, NULL);
		r->db = rocksdb_open_for_read_only(r->opts, path, 0, &rerr);
		if (!rerr)
			return 0;
		ret = azb_rdb_error(rerr, what, "read-only open", err, errlen);
		r->db = NULL;
	}
	azb_rdb_close(r);
	return ret;
}

void azb_rdb_close(struct azb_rdb *r)
{
	if (r->db)
		rocksdb_close(r->db);
	if (r->ropts)
		rocksdb_readoptions_destroy(r->ropts);
	if (r->wopts)
		rocksdb_writeoptions_destroy(r->wopts);
	if (r->opts)
		rocksdb_options_destroy(r->opts);
	if (r->table)
		rocksdb_block_based_options_destroy(r->table);
	if (r->cache)
		rocksdb_cache_destroy(r->cache);
	memset(r, 0, sizeof(*r));
}

int azb_rdb_write(struct azb_rdb *r, rocksdb_writebatch_t *b, char *err, size_t errlen)
{
	char *rerr = NULL;

	rocksdb_write(r->db, r->wopts, b, &rerr);
	if (rerr)
		return azb_rdb_error(rerr, r->path, "write", err, errlen);
	return 0;
}

int azb_rdb_get(struct azb_rdb *r, const void *key, size_t klen, char **val, size_t *vlen,
		char *err, size_t errlen)
{
	char *rerr = NULL;

	*val = rocksdb_get(r->db, r->ropts, key, klen, vlen, &rerr);
	if (rerr)
		return azb_rdb_error(rerr, r->path, "read", err, errlen);
	return *val ? 0 : -ENOENT;
}

int azb_rdb_get_u64(struct azb_rdb *r, const void *key, size_t klen, uint64_t *v, char *err,
		    size_t errlen)
{
	char *val;
	size_t vlen;
	int ret = azb_rdb_get(r, key, klen, &val, &vlen, err, errlen);

	*v = 0;
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	ret = azb_u64_value_decode(val, vlen, v);
	rocksdb_free(val);
	if (ret) {
		azb_seterr(err, errlen, "%s: bad counter value (corrupt metadata)", r->path);
		return -EIO;
	}
	return 0;
}

void azb_iter_open(struct azb_iter *i, struct azb_rdb *r, const void *lo, size_t lolen,
		   const void *hi, size_t hilen)
{
	memcpy(i->lo, lo, lolen);
	memcpy(i->hi, hi, hilen);
	i->ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_lower_bound(i->ro, i->lo, lolen);
	rocksdb_readoptions_set_iterate_upper_bound(i->ro, i->hi, hilen);
	i->it = rocksdb_create_iterator(r->db, i->ro);
}

void azb_iter_prefix(struct azb_iter *i, struct azb_rdb *r, char prefix)
{
	char lo = prefix, hi = (char)(prefix + 1);

	azb_iter_open(i, r, &lo, 1, &hi, 1);
	rocksdb_iter_seek_to_first(i->it);
}

int azb_iter_close(struct azb_iter *i, const char *what, char *err, size_t errlen)
{
	char *rerr = NULL;
	int ret = 0;

	rocksdb_iter_get_error(i->it, &rerr);
	if (rerr)
		ret = azb_rdb_error(rerr, what, "iterate", err, errlen);
	rocksdb_iter_destroy(i->it);
	rocksdb_readoptions_destroy(i->ro);
	i->it = NULL;
	i->ro = NULL;
	return ret;
}
