/*
 * test_meta.c - metadata/: the thin-provisioning metadata store on a real
 * RocksDB in a temporary directory: pool init/open/settings, names, volume
 * management, lookups through views (volume, snapshot, snapshot of snapshot,
 * clone), write-path decisions, allocation, quota, free reuse, GC after
 * delete/rollback/shrink, accounting, check (clean and with an injected
 * inconsistency), sync, locking, missing and corrupt pools.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "meta.h"
#include "meta_internal.h"

#define CS 4096ULL /* chunk size of the test pools */

struct fixture {
	char tmp[64];
	char dir[128];
	struct azb_pool *pool;
	struct azb_shard *sh[2];
	char err[256];
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void settings_small(struct azb_pool_settings *s, uint32_t shards, uint64_t limit)
{
	azb_pool_settings_default(s);
	s->chunk_size = CS;
	s->stripe_size = CS;
	s->nr_shards = shards;
	s->limit_bytes = limit;
	s->meta_cache_bytes = 1 << 20;
}

static void open_all(struct fixture *f)
{
	const struct azb_pool_settings *s;

	assert_int_equal(azb_pool_open(f->dir, &f->pool, f->err, sizeof(f->err)), 0);
	s = azb_pool_get_settings(f->pool);
	for (uint32_t k = 0; k < s->nr_shards; k++)
		assert_int_equal(azb_shard_open(f->dir, s, k, &f->sh[k], f->err, sizeof(f->err)),
				 0);
}

static void close_all(struct fixture *f)
{
	for (int k = 0; k < 2; k++) {
		azb_shard_close(f->sh[k]);
		f->sh[k] = NULL;
	}
	azb_pool_close(f->pool);
	f->pool = NULL;
}

static struct fixture *fixture_new(uint32_t shards, uint64_t limit)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct azb_pool_settings s;

	assert_non_null(f);
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/azb-meta-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->dir, sizeof(f->dir), "%s/pool", f->tmp);
	settings_small(&s, shards, limit);
	assert_int_equal(azb_pool_init(f->dir, &s, f->err, sizeof(f->err)), 0);
	open_all(f);
	return f;
}

static int setup1(void **state)
{
	*state = fixture_new(1, 0);
	return 0;
}

static int setup2(void **state)
{
	*state = fixture_new(2, 0);
	return 0;
}

static int setup_quota(void **state)
{
	*state = fixture_new(1, 4 * CS);
	return 0;
}

/* A bare temporary directory, no pool. */
static int setup_empty(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/azb-meta-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->dir, sizeof(f->dir), "%s/pool", f->tmp);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	close_all(f);
	nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers: chunk I/O through the store, a marker per chunk ---- */

static struct azb_shard *shard_of(struct fixture *f, uint64_t chunk)
{
	return f->sh[azb_chunk_shard(azb_pool_get_settings(f->pool), chunk)];
}

static void view_of(struct fixture *f, const char *name, struct azb_view *v)
{
	int ret = azb_pool_get_view(f->pool, name, v, f->err, sizeof(f->err));

	if (ret)
		fail_msg("view of %s: %d %s", name, ret, f->err);
}

/* Write `marker` to chunk L of `name`; returns the plan. */
static struct azb_write_plan write_chunk(struct fixture *f, const char *name, uint64_t chunk,
					 uint64_t marker)
{
	struct azb_shard *sh = shard_of(f, chunk);
	struct azb_write_plan plan;
	struct azb_view v;
	int ret;

	view_of(f, name, &v);
	ret = azb_shard_plan_write(sh, &v, chunk, &plan);
	if (ret)
		fail_msg("plan %s:%llu: %d %s", name, (unsigned long long)chunk, ret,
			 azb_shard_error(sh));
	assert_int_equal(
		pwrite(azb_shard_data_fd(sh), &marker, sizeof(marker), (off_t)(plan.phys * CS)),
		sizeof(marker));
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	azb_view_free(&v);
	return plan;
}

static int try_write(struct fixture *f, const char *name, uint64_t chunk)
{
	struct azb_shard *sh = shard_of(f, chunk);
	struct azb_write_plan plan;
	struct azb_view v;
	int ret;

	view_of(f, name, &v);
	ret = azb_shard_plan_write(sh, &v, chunk, &plan);
	if (!ret)
		ret = azb_shard_commit_write(sh, &plan);
	azb_view_free(&v);
	return ret;
}

static uint64_t phys_of(struct fixture *f, const char *name, uint64_t chunk)
{
	struct azb_view v;
	uint64_t p;

	view_of(f, name, &v);
	assert_int_equal(azb_shard_lookup(shard_of(f, chunk), &v, chunk, &p), 0);
	azb_view_free(&v);
	return p;
}

/* The marker chunk L of `name` reads (0: unmapped). */
static uint64_t read_chunk(struct fixture *f, const char *name, uint64_t chunk)
{
	uint64_t p = phys_of(f, name, chunk), marker = 0;

	if (p == AZB_PHYS_NONE)
		return 0;
	assert_int_equal(pread(azb_shard_data_fd(shard_of(f, chunk)), &marker, sizeof(marker),
			       (off_t)(p * CS)),
			 sizeof(marker));
	return marker;
}

static void create(struct fixture *f, const char *name, uint64_t chunks)
{
	int ret = azb_pool_create_volume(f->pool, name, chunks * CS, f->err, sizeof(f->err));

	if (ret)
		fail_msg("create %s: %d %s", name, ret, f->err);
}

static void snapshot(struct fixture *f, const char *src, const char *name)
{
	int ret = azb_pool_snapshot(f->pool, src, name, f->err, sizeof(f->err));

	if (ret)
		fail_msg("snapshot %s: %d %s", name, ret, f->err);
}

static void del(struct fixture *f, const char *name)
{
	int ret = azb_pool_delete(f->pool, name, f->err, sizeof(f->err));

	if (ret)
		fail_msg("delete %s: %d %s", name, ret, f->err);
}

/* GC every shard with fresh holds. */
static uint64_t gc_all(struct fixture *f)
{
	struct azb_holds holds;
	uint64_t deleted = 0;

	assert_int_equal(azb_pool_get_holds(f->pool, &holds, f->err, sizeof(f->err)), 0);
	for (int k = 0; k < 2 && f->sh[k]; k++) {
		struct azb_gc_stats st;

		assert_int_equal(azb_shard_gc(f->sh[k], &holds, &st), 0);
		deleted += st.entries_deleted;
		assert_int_equal(st.leaked_freed, 0);
	}
	azb_holds_free(&holds);
	return deleted;
}

static void collect_line(const char *line, void *arg)
{
	char *buf = arg;

	snprintf(buf + strlen(buf), 4096 - strlen(buf), "%s\n", line);
}

/* Problems found by check on every shard; lines appended to buf (4096). */
static int check_all(struct fixture *f, char *buf)
{
	struct azb_holds holds;
	int problems = 0;

	buf[0] = 0;
	assert_int_equal(azb_pool_get_holds(f->pool, &holds, f->err, sizeof(f->err)), 0);
	for (int k = 0; k < 2 && f->sh[k]; k++) {
		int n = azb_shard_check(f->sh[k], &holds, collect_line, buf);

		assert_true(n >= 0);
		problems += n;
	}
	problems += azb_pool_check(f->pool, collect_line, buf, f->err, sizeof(f->err));
	azb_holds_free(&holds);
	return problems;
}

static void assert_clean(struct fixture *f)
{
	char buf[4096];

	if (check_all(f, buf))
		fail_msg("check found problems:\n%s", buf);
}

static uint64_t allocated(struct fixture *f)
{
	struct azb_shard_usage u;
	uint64_t n = 0;

	for (int k = 0; k < 2 && f->sh[k]; k++) {
		assert_int_equal(azb_shard_usage(f->sh[k], &u), 0);
		n += u.allocated_chunks;
	}
	return n;
}

/* ---- pool, settings, names ---- */

static void test_init_open_settings(void **state)
{
	struct fixture *f = *state;
	const struct azb_pool_settings *s = azb_pool_get_settings(f->pool);

	assert_int_equal(s->chunk_size, CS);
	assert_int_equal(s->stripe_size, CS);
	assert_int_equal(s->nr_shards, 1);
	assert_int_equal(s->limit_bytes, 0);
	assert_int_equal(s->low_space_percent, AZB_LOW_SPACE_DEFAULT);
	assert_int_equal(s->meta_cache_bytes, 1 << 20);
	assert_string_equal(azb_pool_dir(f->pool), f->dir);
	assert_int_equal(azb_pool_gc_generation(f->pool), 0);
	close_all(f);
	open_all(f);
	assert_int_equal(azb_pool_get_settings(f->pool)->chunk_size, CS);
	assert_int_equal(azb_shard_index(f->sh[0]), 0);
}

static void test_init_twice_is_eexist(void **state)
{
	struct fixture *f = *state;
	struct azb_pool_settings s;

	settings_small(&s, 1, 0);
	assert_int_equal(azb_pool_init(f->dir, &s, f->err, sizeof(f->err)), -EEXIST);
	assert_non_null(strstr(f->err, "already a pool"));
}

static void test_settings_defaults_and_checks(void **state)
{
	struct azb_pool_settings s;
	char err[128];

	(void)state;
	azb_pool_settings_default(&s);
	assert_int_equal(s.chunk_size, 64 << 10);
	assert_int_equal(s.nr_shards, 2);
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), 0);
	assert_int_equal(s.stripe_size, 1 << 20);
	assert_int_equal(s.map_cache_bytes, 16 << 20);
	/* 2 * (8 + 16 + 2 * 3) + 1 + 2 * 2 MiB */
	assert_int_equal(azb_meta_ram_bound(&s), 65ULL << 20);
	s.map_cache_bytes = 0;
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), 0);
	assert_int_equal(azb_meta_ram_bound(&s), 33ULL << 20);
	s.map_cache_bytes = 1000;
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "map cache"));
	s.chunk_size = 3000;
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "chunk size"));
	azb_pool_settings_default(&s);
	s.chunk_size = 2 << 20;
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), -EINVAL);
	azb_pool_settings_default(&s);
	s.nr_shards = 65;
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), -EINVAL);
	azb_pool_settings_default(&s);
	s.stripe_size = 32 << 10;
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), -EINVAL);
	azb_pool_settings_default(&s);
	s.chunk_size = 1 << 20;
	s.stripe_size = 0;
	assert_int_equal(azb_pool_settings_check(&s, err, sizeof(err)), 0);
	assert_int_equal(s.stripe_size, 1 << 20);
	/* stripes of 16 chunks over 2 shards */
	azb_pool_settings_default(&s);
	assert_int_equal(azb_chunk_shard(&s, 0), 0);
	assert_int_equal(azb_chunk_shard(&s, 15), 0);
	assert_int_equal(azb_chunk_shard(&s, 16), 1);
	assert_int_equal(azb_chunk_shard(&s, 32), 0);
}

static void test_name_validation(void **state)
{
	char long_name[80];

	(void)state;
	assert_int_equal(azb_name_check("vol-1.a_b"), 0);
	assert_int_equal(azb_name_check("A"), 0);
	assert_int_equal(azb_name_check(""), -EINVAL);
	assert_int_equal(azb_name_check(".hidden"), -EINVAL);
	assert_int_equal(azb_name_check("-opt"), -EINVAL);
	assert_int_equal(azb_name_check("a/b"), -EINVAL);
	assert_int_equal(azb_name_check("a b"), -EINVAL);
	assert_int_equal(azb_name_check(NULL), -EINVAL);
	memset(long_name, 'x', 63);
	long_name[63] = 0;
	assert_int_equal(azb_name_check(long_name), 0);
	long_name[63] = 'x';
	long_name[64] = 0;
	assert_int_equal(azb_name_check(long_name), -EINVAL);
}

static int count_volume(const struct azb_volume *v, void *arg)
{
	(void)v;
	(*(int *)arg)++;
	return 0;
}

static void test_create_list_get(void **state)
{
	struct fixture *f = *state;
	struct azb_volume v;
	int n = 0;

	create(f, "a", 16);
	create(f, "b", 1);
	assert_int_equal(azb_pool_create_volume(f->pool, "a", CS, f->err, sizeof(f->err)), -EEXIST);
	assert_int_equal(azb_pool_create_volume(f->pool, "c", 0, f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(azb_pool_create_volume(f->pool, "c", 1000, f->err, sizeof(f->err)),
			 -EINVAL);
	assert_int_equal(
		azb_pool_create_volume(f->pool, "c", (1ULL << 60) + 4096, f->err, sizeof(f->err)),
		-EINVAL);
	assert_int_equal(azb_pool_create_volume(f->pool, ".c", CS, f->err, sizeof(f->err)),
			 -EINVAL);
	snapshot(f, "a", "a-snap");
	assert_int_equal(azb_pool_list(f->pool, count_volume, &n, f->err, sizeof(f->err)), 0);
	assert_int_equal(n, 3);
	assert_int_equal(azb_pool_get_volume(f->pool, "a", &v, f->err, sizeof(f->err)), 0);
	assert_string_equal(v.name, "a");
	assert_int_equal(v.kind, AZB_VOL_VOLUME);
	assert_int_equal(v.size_bytes, 16 * CS);
	assert_true(v.created > 0);
	assert_int_equal(azb_pool_get_volume(f->pool, "a-snap", &v, f->err, sizeof(f->err)), 0);
	assert_int_equal(v.kind, AZB_VOL_SNAPSHOT);
	assert_string_equal(v.parent, "a");
	assert_int_equal(v.epoch, 1);
	assert_int_equal(azb_pool_get_volume(f->pool, "nope", &v, f->err, sizeof(f->err)), -ENOENT);
	assert_non_null(strstr(f->err, "nope"));
	assert_clean(f);
}

/* ---- views ---- */

static void test_snapshot_sees_old_data(void **state)
{
	struct fixture *f = *state;

	create(f, "v", 8);
	assert_int_equal(read_chunk(f, "v", 0), 0);
	write_chunk(f, "v", 0, 0xA);
	write_chunk(f, "v", 1, 0xA1);
	snapshot(f, "v", "s1");
	write_chunk(f, "v", 0, 0xB);
	assert_int_equal(read_chunk(f, "v", 0), 0xB);
	assert_int_equal(read_chunk(f, "s1", 0), 0xA);
	assert_int_equal(read_chunk(f, "s1", 1), 0xA1);
	assert_int_equal(read_chunk(f, "s1", 2), 0);
	/* snapshot of a snapshot sees what s1 sees, even after more writes */
	snapshot(f, "s1", "s2");
	write_chunk(f, "v", 1, 0xB1);
	assert_int_equal(read_chunk(f, "s2", 0), 0xA);
	assert_int_equal(read_chunk(f, "s2", 1), 0xA1);
	assert_int_equal(read_chunk(f, "v", 1), 0xB1);
	assert_int_equal(try_write(f, "s1", 0), -EROFS);
	assert_int_equal(try_write(f, "v", 8), -EINVAL); /* beyond the end */
	assert_int_equal(phys_of(f, "v", 8), AZB_PHYS_NONE);
	assert_clean(f);
}

static void test_clone_falls_back_then_diverges(void **state)
{
	struct fixture *f = *state;
	struct azb_volume c;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 0xA);
	write_chunk(f, "v", 1, 0xA1);
	snapshot(f, "v", "s");
	assert_int_equal(azb_pool_clone(f->pool, "v", "bad", f->err, sizeof(f->err)), -EINVAL);
	assert_int_equal(azb_pool_clone(f->pool, "s", "c", f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_get_volume(f->pool, "c", &c, f->err, sizeof(f->err)), 0);
	assert_int_equal(c.kind, AZB_VOL_CLONE);
	assert_string_equal(c.parent, "s");
	assert_int_equal(read_chunk(f, "c", 0), 0xA);
	write_chunk(f, "v", 1, 0xB1); /* after the snapshot: not seen by the clone */
	assert_int_equal(read_chunk(f, "c", 1), 0xA1);
	write_chunk(f, "c", 0, 0xC);
	assert_int_equal(read_chunk(f, "c", 0), 0xC);
	assert_int_equal(read_chunk(f, "s", 0), 0xA);
	assert_int_equal(read_chunk(f, "v", 0), 0xA);
	assert_int_equal(read_chunk(f, "c", 2), 0);
	/* snapshot of the clone, then a clone of that: three levels */
	snapshot(f, "c", "cs");
	assert_int_equal(azb_pool_clone(f->pool, "cs", "cc", f->err, sizeof(f->err)), 0);
	assert_int_equal(read_chunk(f, "cc", 0), 0xC);
	assert_int_equal(read_chunk(f, "cc", 1), 0xA1);
	assert_clean(f);
}

/* ---- write path ---- */

static void test_write_in_place_or_new(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan p1, p2, p3, p4;

	create(f, "v", 8);
	p1 = write_chunk(f, "v", 0, 1);
	assert_false(p1.in_place);
	assert_int_equal(p1.old_phys, AZB_PHYS_NONE);
	p2 = write_chunk(f, "v", 0, 2);
	assert_true(p2.in_place);
	assert_int_equal(p2.phys, p1.phys);
	write_chunk(f, "v", 1, 10);
	snapshot(f, "v", "s");
	p3 = write_chunk(f, "v", 0, 3); /* shared with s: new chunk, copy from old */
	assert_false(p3.in_place);
	assert_int_equal(p3.old_phys, p1.phys);
	assert_int_not_equal(p3.phys, p1.phys);
	p4 = write_chunk(f, "v", 0, 4); /* now its own */
	assert_true(p4.in_place);
	assert_int_equal(p4.phys, p3.phys);
	/* chunk 1 (epoch 1) is held by s; once s is gone it is rewritten in place */
	del(f, "s");
	p4 = write_chunk(f, "v", 1, 11);
	assert_true(p4.in_place);
	assert_int_equal(read_chunk(f, "v", 1), 11);
	assert_clean(f);
}

static void test_abort_and_out_of_order_commit(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan a, b;
	struct azb_view v;

	create(f, "v", 8);
	view_of(f, "v", &v);
	assert_int_equal(azb_shard_plan_write(f->sh[0], &v, 0, &a), 0);
	assert_int_equal(azb_shard_plan_write(f->sh[0], &v, 1, &b), 0);
	assert_int_not_equal(a.phys, b.phys);
	assert_int_equal(allocated(f), 2);
	assert_int_equal(azb_shard_commit_write(f->sh[0], &b), 0);
	assert_int_equal(azb_shard_abort_write(f->sh[0], &a), 0);
	assert_int_equal(allocated(f), 1);
	assert_clean(f);
	/* the aborted chunk is reused first */
	assert_int_equal(azb_shard_plan_write(f->sh[0], &v, 2, &a), 0);
	assert_int_equal(a.phys, 0);
	assert_int_equal(azb_shard_abort_write(f->sh[0], &a), 0);
	azb_view_free(&v);
	assert_clean(f);
}

static void test_quota_enospc_keeps_mappings(void **state)
{
	struct fixture *f = *state;
	struct azb_shard_usage u;

	create(f, "v", 16);
	for (uint64_t l = 0; l < 4; l++)
		write_chunk(f, "v", l, 100 + l);
	assert_int_equal(try_write(f, "v", 4), -ENOSPC);
	assert_non_null(strstr(azb_shard_error(f->sh[0]), "out of space"));
	for (uint64_t l = 0; l < 4; l++)
		assert_int_equal(read_chunk(f, "v", l), 100 + l);
	write_chunk(f, "v", 2, 202); /* in place: no allocation needed */
	assert_int_equal(read_chunk(f, "v", 2), 202);
	assert_int_equal(azb_shard_usage(f->sh[0], &u), 0);
	assert_int_equal(u.quota_chunks, 4);
	assert_int_equal(u.allocated_chunks, 4);
	assert_true(u.low_space);
	snapshot(f, "v", "s");
	assert_int_equal(try_write(f, "v", 0), -ENOSPC); /* shared: needs a new chunk */
	assert_int_equal(read_chunk(f, "v", 0), 100);
	del(f, "s");
	assert_clean(f);
}

static void test_free_reuse_lowest_first(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan p;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1); /* P0 */
	write_chunk(f, "v", 1, 2); /* P1 */
	snapshot(f, "v", "s");
	write_chunk(f, "v", 0, 3); /* P2 */
	write_chunk(f, "v", 1, 4); /* P3 */
	del(f, "s");
	assert_int_equal(gc_all(f), 2);
	assert_int_equal(allocated(f), 2);
	p = write_chunk(f, "v", 5, 5);
	assert_int_equal(p.phys, 0);
	p = write_chunk(f, "v", 6, 6);
	assert_int_equal(p.phys, 1);
	p = write_chunk(f, "v", 7, 7);
	assert_int_equal(p.phys, 4);
	assert_clean(f);
}

/* ---- GC ---- */

static int chunk_is_hole(struct fixture *f, uint64_t phys)
{
	char buf[CS], zero[CS] = { 0 };

	assert_int_equal(pread(azb_shard_data_fd(f->sh[0]), buf, CS, (off_t)(phys * CS)), CS);
	return !memcmp(buf, zero, CS);
}

static void test_gc_after_snapshot_delete(void **state)
{
	struct fixture *f = *state;
	uint64_t old0, old1;

	create(f, "v", 8);
	for (uint64_t l = 0; l < 4; l++)
		write_chunk(f, "v", l, 10 + l);
	old0 = phys_of(f, "v", 0);
	old1 = phys_of(f, "v", 1);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 0, 20);
	write_chunk(f, "v", 1, 21);
	assert_int_equal(gc_all(f), 0); /* s still holds the old chunks */
	assert_int_equal(allocated(f), 6);
	del(f, "s");
	assert_int_equal(azb_pool_gc_generation(f->pool), 1);
	assert_int_equal(gc_all(f), 2);
	assert_int_equal(azb_shard_gc_generation(f->sh[0]), 1);
	assert_int_equal(allocated(f), 4);
	assert_true(chunk_is_hole(f, old0));
	assert_true(chunk_is_hole(f, old1));
	assert_int_equal(read_chunk(f, "v", 0), 20);
	assert_int_equal(read_chunk(f, "v", 1), 21);
	assert_int_equal(read_chunk(f, "v", 2), 12);
	assert_int_equal(read_chunk(f, "v", 3), 13);
	assert_int_equal(gc_all(f), 0);
	assert_clean(f);
	/* the GC generation survives a reopen */
	close_all(f);
	open_all(f);
	assert_int_equal(azb_shard_gc_generation(f->sh[0]), 1);
}

static void test_delete_volume_keeps_snapshot(void **state)
{
	struct fixture *f = *state;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	write_chunk(f, "v", 1, 2);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 0, 3);
	write_chunk(f, "v", 2, 4);
	del(f, "v");
	assert_int_equal(gc_all(f), 2); /* v's own chunks 0 (new) and 2 */
	assert_int_equal(allocated(f), 2);
	assert_int_equal(read_chunk(f, "s", 0), 1);
	assert_int_equal(read_chunk(f, "s", 1), 2);
	assert_int_equal(read_chunk(f, "s", 2), 0);
	assert_clean(f);
	del(f, "s");
	assert_int_equal(gc_all(f), 2);
	assert_int_equal(allocated(f), 0);
	assert_clean(f);
}

static void test_clone_keeps_parent_data(void **state)
{
	struct fixture *f = *state;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	snapshot(f, "v", "s");
	assert_int_equal(azb_pool_clone(f->pool, "s", "c", f->err, sizeof(f->err)), 0);
	del(f, "s");
	del(f, "v");
	assert_int_equal(gc_all(f), 0);
	assert_int_equal(read_chunk(f, "c", 0), 1);
	del(f, "c");
	assert_int_equal(gc_all(f), 1);
	assert_int_equal(allocated(f), 0);
	assert_clean(f);
}

static void test_rollback(void **state)
{
	struct fixture *f = *state;
	struct azb_volume v1, v2;

	create(f, "v", 8);
	create(f, "other", 8);
	write_chunk(f, "v", 0, 0xA);
	snapshot(f, "v", "s");
	snapshot(f, "other", "os");
	write_chunk(f, "v", 0, 0xB);
	write_chunk(f, "v", 1, 0xB1);
	assert_int_equal(azb_pool_rollback(f->pool, "v", "os", f->err, sizeof(f->err)), -EINVAL);
	assert_non_null(strstr(f->err, "lineage"));
	assert_int_equal(azb_pool_rollback(f->pool, "s", "s", f->err, sizeof(f->err)), -EROFS);
	assert_int_equal(azb_pool_get_volume(f->pool, "v", &v1, f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_rollback(f->pool, "v", "s", f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_get_volume(f->pool, "v", &v2, f->err, sizeof(f->err)), 0);
	assert_int_not_equal(v1.ns, v2.ns);
	assert_int_equal(read_chunk(f, "v", 0), 0xA);
	assert_int_equal(read_chunk(f, "v", 1), 0);
	assert_int_equal(gc_all(f), 2); /* the B writes */
	write_chunk(f, "v", 0, 0xC);
	assert_int_equal(read_chunk(f, "v", 0), 0xC);
	assert_int_equal(read_chunk(f, "s", 0), 0xA);
	/* rolling back again to s (an ancestor's snapshot) works too */
	assert_int_equal(azb_pool_rollback(f->pool, "v", "s", f->err, sizeof(f->err)), 0);
	assert_int_equal(read_chunk(f, "v", 0), 0xA);
	assert_int_equal(gc_all(f), 1);
	assert_clean(f);
}

static void test_resize_shrink_and_gc(void **state)
{
	struct fixture *f = *state;
	struct azb_volume v;

	create(f, "v", 8);
	for (uint64_t l = 0; l < 8; l++)
		write_chunk(f, "v", l, 1 + l);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 7, 100);
	assert_int_equal(azb_pool_resize(f->pool, "s", 4 * CS, f->err, sizeof(f->err)), -EROFS);
	assert_int_equal(azb_pool_resize(f->pool, "v", 4 * CS, f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_get_volume(f->pool, "v", &v, f->err, sizeof(f->err)), 0);
	assert_int_equal(v.size_bytes, 4 * CS);
	assert_int_equal(read_chunk(f, "v", 3), 4);
	assert_int_equal(gc_all(f), 1); /* chunk 7's new data; s keeps 4..7 */
	assert_int_equal(read_chunk(f, "s", 5), 6);
	/* grow again: the region beyond the old end reads zeros */
	assert_int_equal(azb_pool_resize(f->pool, "v", 8 * CS, f->err, sizeof(f->err)), 0);
	assert_int_equal(read_chunk(f, "v", 5), 0);
	assert_int_equal(read_chunk(f, "v", 7), 0);
	assert_int_equal(read_chunk(f, "v", 3), 4);
	write_chunk(f, "v", 6, 66);
	assert_int_equal(read_chunk(f, "v", 6), 66);
	assert_int_equal(read_chunk(f, "s", 6), 7);
	del(f, "s");
	assert_int_equal(gc_all(f), 4); /* s's chunks 4..7 */
	assert_int_equal(allocated(f), 5);
	assert_int_equal(read_chunk(f, "v", 6), 66);
	assert_int_equal(read_chunk(f, "v", 0), 1);
	assert_clean(f);
}

/* ---- accounting, check ---- */

static void test_accounting(void **state)
{
	struct fixture *f = *state;
	struct azb_view views[3];
	struct azb_view_usage u[3];
	struct azb_shard_usage su;

	create(f, "v", 8);
	create(f, "w", 8);
	for (uint64_t l = 0; l < 4; l++)
		write_chunk(f, "v", l, l);
	write_chunk(f, "w", 0, 9);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 0, 10);
	view_of(f, "v", &views[0]);
	view_of(f, "s", &views[1]);
	view_of(f, "w", &views[2]);
	assert_int_equal(azb_shard_view_usage(f->sh[0], views, 3, u), 0);
	assert_int_equal(u[0].mapped, 4);
	assert_int_equal(u[0].exclusive, 1);
	assert_int_equal(u[0].shared, 3);
	assert_int_equal(u[1].mapped, 4);
	assert_int_equal(u[1].exclusive, 1);
	assert_int_equal(u[1].shared, 3);
	assert_int_equal(u[2].mapped, 1);
	assert_int_equal(u[2].exclusive, 1);
	for (int i = 0; i < 3; i++)
		azb_view_free(&views[i]);
	assert_int_equal(azb_shard_usage(f->sh[0], &su), 0);
	assert_int_equal(su.allocated_chunks, 6);
	assert_int_equal(su.high_water, 6);
	assert_int_equal(su.free_chunks, 0);
	assert_int_equal(su.entries, 6);
	assert_int_equal(su.quota_chunks, 0);
	assert_false(su.low_space);
}

/* Put a raw entry into shard 0's DB (the shard must be closed). */
static void inject_entry(struct fixture *f, uint64_t ns, uint64_t chunk, uint64_t epoch,
			 uint64_t phys)
{
	char path[256], k[AZB_MAP_KEY_LEN], v[9], *rerr = NULL;
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_t *db;

	snprintf(path, sizeof(path), "%s/shard-0/meta.db", f->dir);
	db = rocksdb_open(o, path, &rerr);
	assert_null(rerr);
	azb_map_key_encode(k, ns, chunk, epoch);
	azb_phys_value_encode(v, phys);
	rocksdb_put(db, wo, k, sizeof(k), v, sizeof(v), &rerr);
	assert_null(rerr);
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(o);
}

static void test_check_finds_injected_problem(void **state)
{
	struct fixture *f = *state;
	char buf[4096];

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	write_chunk(f, "v", 1, 2);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 1, 3);
	assert_clean(f);
	azb_shard_close(f->sh[0]);
	f->sh[0] = NULL;
	inject_entry(f, 999, 5, 1, 0); /* unknown ns, chunk 0 owned twice, counts off */
	assert_int_equal(azb_shard_open(f->dir, azb_pool_get_settings(f->pool), 0, &f->sh[0],
					f->err, sizeof(f->err)),
			 0);
	assert_true(check_all(f, buf) >= 4);
	assert_non_null(strstr(buf, "no such namespace"));
	assert_non_null(strstr(buf, "more than one entry"));
	assert_non_null(strstr(buf, "entry counter"));
	assert_non_null(strstr(buf, "namespace 999: entry count missing"));
}

static void test_check_finds_leak_and_beyond_high_water(void **state)
{
	struct fixture *f = *state;
	struct azb_volume v;
	char buf[4096];

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	assert_int_equal(azb_pool_get_volume(f->pool, "v", &v, f->err, sizeof(f->err)), 0);
	azb_shard_close(f->sh[0]);
	f->sh[0] = NULL;
	inject_entry(f, v.ns, 0, 1, 7); /* replaces chunk 0's mapping: P0 leaked, P7 bogus */
	assert_int_equal(azb_shard_open(f->dir, azb_pool_get_settings(f->pool), 0, &f->sh[0],
					f->err, sizeof(f->err)),
			 0);
	assert_true(check_all(f, buf) >= 2);
	assert_non_null(strstr(buf, "beyond high water"));
	assert_non_null(strstr(buf, "leaked"));
}

/* ---- durability, locking, errors ---- */

static void test_sync_and_reopen(void **state)
{
	struct fixture *f = *state;

	create(f, "v", 8);
	write_chunk(f, "v", 3, 33);
	assert_int_equal(azb_shard_sync(f->sh[0]), 0);
	close_all(f);
	open_all(f);
	assert_int_equal(read_chunk(f, "v", 3), 33);
	assert_int_equal(allocated(f), 1);
	assert_clean(f);
}

static void test_second_open_is_ebusy(void **state)
{
	struct fixture *f = *state;
	struct azb_shard *sh2 = NULL;
	struct azb_pool *p2 = NULL;

	assert_int_equal(azb_shard_open(f->dir, azb_pool_get_settings(f->pool), 0, &sh2, f->err,
					sizeof(f->err)),
			 -EBUSY);
	assert_null(sh2);
	assert_non_null(strstr(f->err, "is in use by another process"));
	assert_int_equal(azb_pool_open(f->dir, &p2, f->err, sizeof(f->err)), -EBUSY);
	assert_non_null(strstr(f->err, "pool"));
	assert_non_null(strstr(f->err, "is in use by another process"));
}

static void test_daemon_hold(void **state)
{
	struct fixture *f = *state;
	pid_t holder = 0;
	int fd, fd2;

	assert_int_equal(azb_pool_held_by(f->dir, &holder), 0);
	assert_int_equal(azb_pool_hold(f->dir, getpid(), &fd, &holder, f->err, sizeof(f->err)), 0);
	assert_true(fd >= 0);
	assert_int_equal(azb_pool_hold(f->dir, 1234, &fd2, &holder, f->err, sizeof(f->err)),
			 -EBUSY);
	assert_int_equal(holder, getpid());
	assert_int_equal(fd2, -1);
	assert_non_null(strstr(f->err, "in use by another process"));
	holder = 0;
	assert_int_equal(azb_pool_held_by(f->dir, &holder), -EBUSY);
	assert_int_equal(holder, getpid());
	azb_pool_release(fd);
	assert_int_equal(azb_pool_held_by(f->dir, &holder), 0);
}

static void test_missing_pool_is_enoent(void **state)
{
	struct fixture *f = *state;
	struct azb_pool_settings s;
	struct azb_shard *sh = NULL;
	struct azb_pool *p = NULL;

	assert_int_equal(azb_pool_open(f->dir, &p, f->err, sizeof(f->err)), -ENOENT);
	assert_null(p);
	assert_non_null(strstr(f->err, "no pool at"));
	settings_small(&s, 1, 0);
	assert_int_equal(azb_pool_init(f->dir, &s, f->err, sizeof(f->err)), 0);
	/* a missing shard DB */
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/shard-0/meta.db", f->dir);
		assert_int_equal(nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
	}
	assert_int_equal(azb_shard_open(f->dir, &s, 0, &sh, f->err, sizeof(f->err)), -ENOENT);
	assert_null(sh);
	assert_non_null(strstr(f->err, "does not exist"));
	assert_int_equal(azb_shard_open(f->dir, &s, 1, &sh, f->err, sizeof(f->err)), -EINVAL);
}

static void garble(const char *path)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage!", 8), 8);
	close(fd);
}

/* Garble the MANIFEST-* files of a DB directory. */
static void garble_manifest(const char *db)
{
	char path[512];
	struct dirent *d;
	DIR *dir = opendir(db);
	int n = 0;

	assert_non_null(dir);
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, "MANIFEST-", 9))
			continue;
		snprintf(path, sizeof(path), "%.200s/%.200s", db, d->d_name);
		garble(path);
		n++;
	}
	closedir(dir);
	assert_true(n > 0);
}

static void test_corrupt_db_is_an_error(void **state)
{
	struct fixture *f = *state;
	struct azb_pool_settings s = *azb_pool_get_settings(f->pool);
	char path[256];
	int ret;

	close_all(f);
	snprintf(path, sizeof(path), "%s/pool.db/CURRENT", f->dir);
	garble(path);
	f->err[0] = 0;
	ret = azb_pool_open(f->dir, &f->pool, f->err, sizeof(f->err));
	assert_true(ret == -EIO || ret == -ENOENT);
	assert_null(f->pool);
	assert_true(strlen(f->err) > 0);
	snprintf(path, sizeof(path), "%s/shard-0/meta.db", f->dir);
	garble_manifest(path);
	f->err[0] = 0;
	ret = azb_shard_open(f->dir, &s, 0, &f->sh[0], f->err, sizeof(f->err));
	assert_true(ret == -EIO || ret == -ENOENT);
	assert_null(f->sh[0]);
	assert_true(strlen(f->err) > 0);
}

/* ---- shards ---- */

static void test_two_shards(void **state)
{
	struct fixture *f = *state;
	struct azb_shard_usage u0, u1;
	struct azb_view views[2];
	struct azb_view_usage u[2];

	create(f, "v", 8);
	for (uint64_t l = 0; l < 8; l++)
		write_chunk(f, "v", l, 50 + l);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 3, 99);
	for (uint64_t l = 0; l < 8; l++)
		assert_int_equal(read_chunk(f, "s", l), 50 + l);
	assert_int_equal(read_chunk(f, "v", 3), 99);
	assert_int_equal(azb_shard_usage(f->sh[0], &u0), 0);
	assert_int_equal(azb_shard_usage(f->sh[1], &u1), 0);
	assert_int_equal(u0.allocated_chunks, 4);
	assert_int_equal(u1.allocated_chunks, 5); /* chunk 3 is odd: shard 1 */
	view_of(f, "v", &views[0]);
	view_of(f, "s", &views[1]);
	assert_int_equal(azb_shard_view_usage(f->sh[1], views, 2, u), 0);
	assert_int_equal(u[0].mapped, 4);
	assert_int_equal(u[0].exclusive, 1);
	assert_int_equal(u[1].exclusive, 1);
	azb_view_free(&views[0]);
	azb_view_free(&views[1]);
	del(f, "s");
	assert_int_equal(gc_all(f), 1);
	assert_clean(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_open_settings, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_init_twice_is_eexist, setup1, teardown),
		cmocka_unit_test(test_settings_defaults_and_checks),
		cmocka_unit_test(test_name_validation),
		cmocka_unit_test_setup_teardown(test_create_list_get, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_sees_old_data, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_clone_falls_back_then_diverges, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_in_place_or_new, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_out_of_order_commit, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_quota_enospc_keeps_mappings, setup_quota,
						teardown),
		cmocka_unit_test_setup_teardown(test_free_reuse_lowest_first, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_gc_after_snapshot_delete, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_delete_volume_keeps_snapshot, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_clone_keeps_parent_data, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_resize_shrink_and_gc, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_accounting, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_check_finds_injected_problem, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_check_finds_leak_and_beyond_high_water, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_and_reopen, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_is_ebusy, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_hold, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_missing_pool_is_enoent, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_db_is_an_error, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_two_shards, setup2, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
