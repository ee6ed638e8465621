// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_meta.c - metadata/: the thin-provisioning metadata store on a real
 * RocksDB in a temporary directory: pool init/open/settings, names, volume
 * management, lookups through views (volume, snapshot, snapshot of snapshot,
 * clone), write-path decisions, allocation, quota, free reuse, GC after
 * delete/rollback/shrink, accounting, check (clean and with an injected
 * inconsistency), sync, locking, missing and corrupt pools; discard and its
 * tombstones, read-only opens beside a writer, the map cache (against a model
 * of every volume's content, with and without evictions), old on-disk formats.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "meta.h"
#include "meta_internal.h"

#define CS 4096ULL  /* chunk size of the test pools */
#define SUB 4096ULL /* the pools' valid unit */

struct fixture {
	char tmp[64];
	char dir[128];
	struct azb_pool *pool;
	struct azb_shard *sh[2];
	char err[256];
	int map_cache_set; /* open_all gives the shards map_cache_bytes */
	uint64_t map_cache_bytes;
	uint64_t evictions; /* map cache evictions of the shards closed so far */
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
	for (uint32_t k = 0; k < s->nr_shards; k++) {
		assert_int_equal(azb_shard_open(f->dir, s, k, &f->sh[k], f->err, sizeof(f->err)),
				 0);
		if (f->map_cache_set)
			assert_int_equal(azb_map_cache_init(f->sh[k], f->map_cache_bytes), 0);
	}
}

/* Reopen shard 0 (closed by the caller) with the fixture's cache size. */
static void open_all_shards(struct fixture *f)
{
	assert_int_equal(azb_shard_open(f->dir, azb_pool_get_settings(f->pool), 0, &f->sh[0],
					f->err, sizeof(f->err)),
			 0);
	if (f->map_cache_set)
		assert_int_equal(azb_map_cache_init(f->sh[0], f->map_cache_bytes), 0);
}

static void close_all(struct fixture *f)
{
	for (int k = 0; k < 2; k++) {
		if (f->sh[k])
			f->evictions += f->sh[k]->mc.evictions;
		azb_shard_close(f->sh[k]);
		f->sh[k] = NULL;
	}
	azb_pool_close(f->pool);
	f->pool = NULL;
}

/* A pool of `shards` shards and chunks of chunk_size bytes (0: CS). */
static struct fixture *fixture_new_cs(uint32_t shards, uint64_t limit, uint64_t chunk_size)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct azb_pool_settings s;

	assert_non_null(f);
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/azb-meta-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	snprintf(f->dir, sizeof(f->dir), "%s/pool", f->tmp);
	settings_small(&s, shards, limit);
	if (chunk_size)
		s.chunk_size = s.stripe_size = chunk_size;
	assert_int_equal(azb_pool_init(f->dir, &s, f->err, sizeof(f->err)), 0);
	open_all(f);
	return f;
}

static struct fixture *fixture_new(uint32_t shards, uint64_t limit)
{
	return fixture_new_cs(shards, limit, 0);
}

/* Chunks of four 4 KiB sub-blocks: layered copies-on-write. */
static int setup_subs(void **state)
{
	*state = fixture_new_cs(2, 0, 4 * CS);
	return 0;
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
	plan.valid = AZB_VALID_ALL; /* (the chunk is one sub-block, written) */
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

/* The active flag: recorded, kept across resize and rollback, not inherited by snapshots. */
static void test_active_flag(void **state)
{
	struct fixture *f = *state;
	struct azb_volume v;

	create(f, "a", 4);
	assert_int_equal(azb_pool_get_volume(f->pool, "a", &v, f->err, sizeof(f->err)), 0);
	assert_int_equal(v.flags, 0);
	assert_int_equal(azb_pool_set_active(f->pool, "a", true, f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_get_volume(f->pool, "a", &v, f->err, sizeof(f->err)), 0);
	assert_int_equal(v.flags, AZB_VOL_F_ACTIVE);
	snapshot(f, "a", "a-snap");
	assert_int_equal(azb_pool_get_volume(f->pool, "a-snap", &v, f->err, sizeof(f->err)), 0);
	assert_int_equal(v.flags, 0);
	assert_int_equal(azb_pool_resize(f->pool, "a", 8 * CS, f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_rollback(f->pool, "a", "a-snap", f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_get_volume(f->pool, "a", &v, f->err, sizeof(f->err)), 0);
	assert_int_equal(v.flags, AZB_VOL_F_ACTIVE);
	assert_int_equal(azb_pool_set_active(f->pool, "a", false, f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_get_volume(f->pool, "a", &v, f->err, sizeof(f->err)), 0);
	assert_int_equal(v.flags, 0);
	assert_int_equal(azb_pool_set_active(f->pool, "nope", true, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_clean(f);
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

/*
 * Valid masks (a data device's chunks are not zeroed): a new chunk starts
 * with no valid sub-block, gains those written, in place, and is whole
 * (AZB_VALID_ALL) once all are; the mask survives the map cache and a
 * snapshot's copy-on-write sees it as the old chunk's. (A file-backed shard
 * stands in for a data device: only the flag differs.)
 */
/* What view v reads for chunk 0 of shard sh is exactly these two layers. */
static void expect_map(struct azb_shard *sh, const struct azb_view *v, uint64_t phys,
		       uint64_t valid, uint64_t base, uint64_t base_valid)
{
	struct azb_chunk_map m;

	assert_int_equal(azb_shard_lookup_map(sh, v, 0, &m), 0);
	assert_int_equal(m.phys, phys);
	assert_int_equal(m.valid, valid);
	assert_int_equal(m.base, base);
	assert_int_equal(m.base_valid, base_valid);
}

/* Snapshot "v" as `snap`, then plan a write of its chunk 0 (a new chunk):
 * v's new view in *v. */
static void plan_after_snapshot(struct fixture *f, struct azb_shard *sh, const char *snap,
				struct azb_view *v, struct azb_write_plan *plan)
{
	snapshot(f, "v", snap);
	view_of(f, "v", v);
	assert_int_equal(azb_shard_plan_write(sh, v, 0, plan), 0);
	assert_false(plan->in_place);
}

static void test_valid_masks(void **state)
{
	struct fixture *f = *state;
	struct azb_pool_settings s;
	struct azb_view_usage u[2];
	struct azb_write_plan plan;
	struct azb_view v, views[2];
	struct azb_shard *sh;
	uint64_t phys, layered;

	settings_small(&s, 1, 0);
	s.chunk_size = s.stripe_size = 64 << 10;
	assert_int_equal(azb_pool_init(f->dir, &s, f->err, sizeof(f->err)), 0);
	open_all(f);
	sh = f->sh[0];
	assert_int_equal(azb_valid_unit(sh), 4096);
	assert_int_equal(azb_valid_add(sh, 0, 0, 4096), 1);
	assert_int_equal(azb_valid_add(sh, 1, 4095, 2), 3);
	assert_int_equal(azb_valid_add(sh, 0xfffe, 0, 512), AZB_VALID_ALL);
	assert_int_equal(azb_valid_add(sh, 0, 0, 64 << 10), AZB_VALID_ALL);
	assert_true(azb_valid_covers(sh, 6, 4096, 8192));
	assert_false(azb_valid_covers(sh, 6, 0, 8192));
	assert_false(azb_valid_ok(sh, 0x10000));
	assert_false(azb_valid_ok(sh, 0xffff));
	assert_true(azb_valid_ok(sh, 0x8001));

	assert_int_equal(azb_pool_create_volume(f->pool, "v", 1 << 20, f->err, sizeof(f->err)), 0);
	view_of(f, "v", &v);
	/* a file's new chunk is a hole: whole; a partial mask is refused there */
	assert_int_equal(azb_shard_plan_write(sh, &v, 0, &plan), 0);
	assert_int_equal(plan.valid, AZB_VALID_ALL);
	plan.valid = 4;
	assert_int_equal(azb_shard_commit_write(sh, &plan), -EINVAL);
	assert_int_equal(azb_shard_abort_write(sh, &plan), 0);

	sh->raw = 1;
	sh->dd.end_chunk = UINT64_MAX;
	assert_int_equal(azb_shard_plan_write(sh, &v, 0, &plan), 0);
	assert_false(plan.in_place);
	assert_int_equal(plan.cur_valid, 0);
	plan.valid = azb_valid_add(sh, plan.cur_valid, 8192, 4096);
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	phys = plan.phys;
	expect_map(sh, &v, phys, 4, AZB_PHYS_NONE, AZB_VALID_ALL);

	assert_int_equal(azb_shard_plan_write(sh, &v, 0, &plan), 0);
	assert_true(plan.in_place);
	assert_false(plan.layered);
	assert_int_equal(plan.cur_valid, 4);
	plan.valid = azb_valid_add(sh, plan.cur_valid, 0, 512);
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	azb_map_cache_clear(sh); /* from the DB again */
	expect_map(sh, &v, phys, 5, AZB_PHYS_NONE, AZB_VALID_ALL);
	azb_view_free(&v);

	/* a write into the chunk a snapshot shares: a layered chunk over it */
	plan_after_snapshot(f, sh, "s", &v, &plan);
	assert_true(plan.layered);
	assert_int_equal(plan.cur_valid, 0);
	assert_int_equal(plan.old_phys, phys);
	assert_int_equal(plan.old_valid, 5);
	assert_int_equal(plan.old_base, AZB_PHYS_NONE);
	plan.valid = azb_valid_add(sh, plan.cur_valid, 4096, 4096);
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	layered = plan.phys;
	for (int pass = 0; pass < 2; pass++) {
		expect_map(sh, &v, layered, 2, phys, 5);
		azb_map_cache_clear(sh);
	}
	/* in place it stays layered, over the same chunk */
	assert_int_equal(azb_shard_plan_write(sh, &v, 0, &plan), 0);
	assert_true(plan.in_place);
	assert_true(plan.layered);
	assert_int_equal(plan.cur_valid, 2);
	assert_int_equal(plan.old_base, phys);
	assert_int_equal(plan.old_base_valid, 5);
	plan.valid = azb_valid_add(sh, plan.cur_valid, 15 * 4096, 4096);
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	azb_view_free(&v);
	view_of(f, "s", &v);
	expect_map(sh, &v, phys, 5, AZB_PHYS_NONE, AZB_VALID_ALL);
	azb_view_free(&v);
	/* the head maps the layered chunk and, beneath it, the snapshot's: shared */
	view_of(f, "v", &views[0]);
	view_of(f, "s", &views[1]);
	assert_int_equal(azb_shard_view_usage(sh, views, 2, u), 0);
	assert_int_equal(u[0].mapped, 2);
	assert_int_equal(u[0].exclusive, 1);
	assert_int_equal(u[0].shared, 1);
	assert_int_equal(u[1].mapped, 1);
	assert_int_equal(u[1].exclusive, 0);
	azb_view_free(&views[0]);
	azb_view_free(&views[1]);

	/* no snapshot sees the old chunk any more: GC keeps it, the layered one reads it */
	del(f, "s");
	gc_all(f);
	assert_clean(f);
	view_of(f, "v", &v);
	expect_map(sh, &v, layered, 0x8002, phys, 5);
	assert_int_equal(allocated(f), 2);
	azb_view_free(&v);

	/* two layers at most: a write over a layered shared chunk copies */
	plan_after_snapshot(f, sh, "s2", &v, &plan);
	assert_false(plan.layered);
	assert_int_equal(plan.old_phys, layered);
	assert_int_equal(plan.old_base, phys);
	plan.valid = AZB_VALID_ALL;
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	expect_map(sh, &v, plan.phys, AZB_VALID_ALL, AZB_PHYS_NONE, AZB_VALID_ALL);
	azb_view_free(&v);
	del(f, "s2");
	gc_all(f);
	assert_int_equal(allocated(f), 1);
	assert_clean(f);

	/* a discard of a layered chunk hides what lies beneath it */
	plan_after_snapshot(f, sh, "s3", &v, &plan);
	assert_true(plan.layered);
	plan.valid = azb_valid_add(sh, plan.cur_valid, 0, 4096);
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	assert_int_equal(azb_shard_discard(sh, &v, 0), 0);
	expect_map(sh, &v, AZB_PHYS_NONE, AZB_VALID_ALL, AZB_PHYS_NONE, AZB_VALID_ALL);
	azb_view_free(&v);
	assert_clean(f);
}

/* The head's layered chunks are found by a scan in small steps, each once. */
static void test_find_layered(void **state)
{
	struct fixture *f = *state;
	uint64_t found[32], chunks[3], cursor = 0;
	uint32_t nfound = 0, n;
	struct azb_write_plan plan;
	struct azb_view v;
	int ret = 0;

	assert_int_equal(azb_pool_create_volume(f->pool, "v", 32 * 4 * CS, f->err, sizeof(f->err)),
			 0);
	for (uint64_t l = 0; l < 32; l++)
		write_chunk(f, "v", l, l + 1);
	snapshot(f, "v", "s");
	view_of(f, "v", &v);
	for (uint64_t l = 0; l < 32; l += 2) { /* shard 0's */
		assert_int_equal(azb_shard_plan_write(f->sh[0], &v, l, &plan), 0);
		assert_true(plan.layered);
		plan.valid = l % 4 ? AZB_VALID_ALL : azb_valid_add(f->sh[0], 0, SUB, SUB);
		assert_int_equal(azb_shard_commit_write(f->sh[0], &plan), 0);
	}
	for (int calls = 0; ret == 0 && calls < 100; calls++) {
		ret = azb_shard_find_layered(f->sh[0], v.write_ns, &cursor, calls % 2 ? 1 : 5,
					     chunks, 3, &n);
		assert_true(ret >= 0);
		for (uint32_t i = 0; i < n; i++)
			found[nfound++] = chunks[i];
	}
	assert_int_equal(ret, 1);
	assert_int_equal(nfound, 8);
	for (uint32_t i = 0; i < nfound; i++)
		assert_int_equal(found[i], i * 4);
	azb_view_free(&v);
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

/* Plans of one batch committed in one write: new chunks and a copy over a snapshot. */
static void test_commit_writes_batch(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan plans[4];
	struct azb_view v;
	uint64_t chunk;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	snapshot(f, "v", "s");
	view_of(f, "v", &v);
	for (chunk = 0; chunk < 4; chunk++) {
		uint64_t marker = 100 + chunk;

		assert_int_equal(azb_shard_plan_write(f->sh[0], &v, chunk, &plans[chunk]), 0);
		assert_false(plans[chunk].in_place);
		assert_int_equal(pwrite(azb_shard_data_fd(f->sh[0]), &marker, sizeof(marker),
					(off_t)(plans[chunk].phys * CS)),
				 sizeof(marker));
	}
	assert_int_equal(plans[0].old_phys, phys_of(f, "s", 0)); /* a copy */
	assert_int_equal(azb_shard_commit_writes(f->sh[0], plans, 4), 0);
	azb_view_free(&v);
	for (chunk = 0; chunk < 4; chunk++)
		assert_int_equal(read_chunk(f, "v", chunk), 100 + chunk);
	assert_int_equal(read_chunk(f, "s", 0), 1);
	assert_int_equal(allocated(f), 5);
	assert_clean(f);
	/* a plan the shard did not make is refused, and nothing of the batch is kept */
	view_of(f, "v", &v);
	assert_int_equal(azb_shard_plan_write(f->sh[0], &v, 5, &plans[0]), 0);
	plans[1] = plans[0];
	plans[1].chunk = 6;
	plans[1].phys = 999;
	assert_int_equal(azb_shard_commit_writes(f->sh[0], plans, 2), -EINVAL);
	assert_int_equal(azb_shard_abort_write(f->sh[0], &plans[0]), 0);
	azb_view_free(&v);
	assert_int_equal(allocated(f), 5);
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
	assert_non_null(strstr(buf, "outside its chunks"));
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

/*
 * In a child process: open shard 0 buffered, map chunk 0 of "v" to a new
 * chunk holding `marker`, flush the WAL or not, and die without closing.
 */
static void buffered_write_and_die(struct fixture *f, uint64_t marker, int flush)
{
	struct azb_write_plan plan;
	struct azb_shard *sh = NULL;
	struct azb_view v;
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (azb_shard_open_buffered(f->dir, azb_pool_get_settings(f->pool), 0, &sh, f->err,
					    sizeof(f->err)) ||
		    azb_pool_get_view(f->pool, "v", &v, f->err, sizeof(f->err)) ||
		    azb_shard_plan_write(sh, &v, 0, &plan) ||
		    pwrite(azb_shard_data_fd(sh), &marker, sizeof(marker),
			   (off_t)(plan.phys * CS)) != sizeof(marker) ||
		    azb_shard_commit_write(sh, &plan))
			_exit(2);
		/* the change is there for this process before any flush */
		if (azb_shard_lookup(sh, &v, 0, &plan.old_phys) || plan.old_phys != plan.phys)
			_exit(3);
		if (flush && azb_shard_flush_wal(sh))
			_exit(4);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A buffered shard's changes survive its process only once flushed. */
static void test_buffered_wal_flush(void **state)
{
	struct fixture *f = *state;

	create(f, "v", 8);
	for (int flush = 0; flush < 2; flush++) {
		azb_shard_close(f->sh[0]);
		f->sh[0] = NULL;
		buffered_write_and_die(f, 42, flush);
		open_all_shards(f);
		assert_int_equal(read_chunk(f, "v", 0), flush ? 42 : 0);
		assert_int_equal(allocated(f), flush);
		assert_clean(f);
	}
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

/* ---- discard and tombstones ---- */

static int discard(struct fixture *f, const char *name, uint64_t chunk)
{
	struct azb_view v;
	int ret;

	view_of(f, name, &v);
	ret = azb_shard_discard(shard_of(f, chunk), &v, chunk);
	azb_view_free(&v);
	return ret;
}

static struct azb_shard_usage usage0(struct fixture *f)
{
	struct azb_shard_usage u;

	assert_int_equal(azb_shard_usage(f->sh[0], &u), 0);
	return u;
}

static void test_discard_own_chunk_frees_it(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan p;
	uint64_t p0;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	write_chunk(f, "v", 1, 2);
	p0 = phys_of(f, "v", 0);
	assert_int_equal(discard(f, "v", 0), 0);
	assert_int_equal(read_chunk(f, "v", 0), 0);
	assert_int_equal(read_chunk(f, "v", 1), 2);
	assert_true(chunk_is_hole(f, p0));
	assert_int_equal(usage0(f).allocated_chunks, 1);
	assert_int_equal(usage0(f).entries, 1);
	assert_int_equal(usage0(f).tombstones, 0);
	assert_clean(f);
	/* already zeros, never written, beyond the end, read-only view */
	assert_int_equal(discard(f, "v", 0), 0);
	assert_int_equal(discard(f, "v", 5), 0);
	assert_int_equal(usage0(f).entries, 1);
	assert_int_equal(discard(f, "v", 8), -EINVAL);
	assert_non_null(strstr(azb_shard_error(f->sh[0]), "beyond the end"));
	snapshot(f, "v", "s");
	assert_int_equal(discard(f, "s", 1), -EROFS);
	assert_int_equal(read_chunk(f, "s", 1), 2);
	/* the freed chunk is not reused before a sync made its freeing durable */
	p = write_chunk(f, "v", 2, 3);
	assert_int_not_equal(p.phys, p0);
	assert_int_equal(azb_shard_sync(f->sh[0]), 0);
	p = write_chunk(f, "v", 3, 4);
	assert_int_equal(p.phys, p0);
	assert_int_equal(read_chunk(f, "v", 3), 4);
	assert_clean(f);
}

static void test_discard_many_syncs_itself(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan p;
	const uint64_t n = AZB_UNSYNCED_FREES_MAX + 1;

	create(f, "v", n + 1);
	for (uint64_t l = 0; l < n; l++)
		write_chunk(f, "v", l, 100 + l);
	for (uint64_t l = 0; l < n; l++)
		assert_int_equal(discard(f, "v", l), 0);
	/* the 65th freeing synced the first 64: chunk 0 is free to reuse */
	assert_int_equal(f->sh[0]->nr_unsynced, 1);
	p = write_chunk(f, "v", n, 7);
	assert_int_equal(p.phys, 0);
	assert_int_equal(usage0(f).allocated_chunks, 1);
	assert_clean(f);
	/* (the close syncs what waits; a reopen reuses lowest first) */
	close_all(f);
	open_all(f);
	p = write_chunk(f, "v", 0, 8);
	assert_int_equal(p.phys, 1);
	assert_clean(f);
}

static void test_discard_shared_writes_tombstone(void **state)
{
	struct fixture *f = *state;
	struct azb_view views[2];
	struct azb_view_usage vu[2];
	struct azb_write_plan p;
	uint64_t p0, p1;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	p0 = phys_of(f, "v", 0);
	snapshot(f, "v", "s");
	assert_int_equal(discard(f, "v", 0), 0);
	assert_int_equal(read_chunk(f, "v", 0), 0);
	assert_int_equal(read_chunk(f, "s", 0), 1);
	assert_int_equal(usage0(f).entries, 2);
	assert_int_equal(usage0(f).tombstones, 1);
	assert_int_equal(usage0(f).allocated_chunks, 1);
	view_of(f, "v", &views[0]);
	view_of(f, "s", &views[1]);
	assert_int_equal(azb_shard_view_usage(f->sh[0], views, 2, vu), 0);
	assert_int_equal(vu[0].mapped, 0);
	assert_int_equal(vu[1].mapped, 1);
	assert_int_equal(vu[1].exclusive, 1);
	azb_view_free(&views[0]);
	azb_view_free(&views[1]);
	assert_int_equal(discard(f, "v", 0), 0); /* a tombstone reads zeros: nothing to do */
	assert_int_equal(usage0(f).entries, 2);
	assert_int_equal(gc_all(f), 0);
	assert_clean(f);
	/* writing over the tombstone: a new chunk, nothing to copy; it replaces it */
	p = write_chunk(f, "v", 0, 2);
	assert_false(p.in_place);
	assert_int_equal(p.old_phys, AZB_PHYS_NONE);
	p1 = p.phys;
	assert_int_equal(read_chunk(f, "v", 0), 2);
	assert_int_equal(usage0(f).tombstones, 0);
	assert_int_equal(usage0(f).entries, 2);
	/* that chunk is the head's own: freed, and a tombstone keeps s's hidden */
	assert_int_equal(discard(f, "v", 0), 0);
	assert_true(chunk_is_hole(f, p1));
	assert_int_equal(read_chunk(f, "v", 0), 0);
	assert_int_equal(read_chunk(f, "s", 0), 1);
	assert_int_equal(usage0(f).tombstones, 1);
	assert_int_equal(usage0(f).allocated_chunks, 1);
	assert_clean(f);
	/* without s, its entry is garbage, and so is the tombstone that hid it */
	del(f, "s");
	assert_int_equal(gc_all(f), 2);
	assert_true(chunk_is_hole(f, p0));
	assert_int_equal(usage0(f).entries, 0);
	assert_int_equal(usage0(f).tombstones, 0);
	assert_int_equal(usage0(f).allocated_chunks, 0);
	assert_int_equal(read_chunk(f, "v", 0), 0);
	assert_clean(f);
}

static void test_discard_in_clone_hides_parent(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan p;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	write_chunk(f, "v", 1, 2);
	snapshot(f, "v", "s");
	assert_int_equal(azb_pool_clone(f->pool, "s", "c", f->err, sizeof(f->err)), 0);
	assert_int_equal(discard(f, "c", 0), 0);
	assert_int_equal(discard(f, "c", 2), 0); /* nothing there */
	assert_int_equal(usage0(f).tombstones, 1);
	assert_int_equal(read_chunk(f, "c", 0), 0);
	assert_int_equal(read_chunk(f, "c", 1), 2);
	assert_int_equal(read_chunk(f, "s", 0), 1);
	assert_int_equal(read_chunk(f, "v", 0), 1);
	/* the parent's data stays, the tombstone stays (it hides the parent's) */
	assert_int_equal(gc_all(f), 0);
	del(f, "s");
	del(f, "v");
	assert_int_equal(gc_all(f), 0);
	assert_int_equal(read_chunk(f, "c", 0), 0);
	assert_int_equal(read_chunk(f, "c", 1), 2);
	assert_int_equal(usage0(f).tombstones, 1);
	assert_clean(f);
	p = write_chunk(f, "c", 0, 3);
	assert_int_equal(p.old_phys, AZB_PHYS_NONE);
	assert_int_equal(read_chunk(f, "c", 0), 3);
	/* the clone's own chunk over a parent's: freed, a tombstone in its place */
	assert_int_equal(discard(f, "c", 0), 0);
	assert_int_equal(read_chunk(f, "c", 0), 0);
	assert_int_equal(usage0(f).tombstones, 1);
	assert_int_equal(usage0(f).allocated_chunks, 2);
	assert_clean(f);
	del(f, "c");
	assert_int_equal(gc_all(f), 3);
	assert_int_equal(usage0(f).entries, 0);
	assert_int_equal(usage0(f).allocated_chunks, 0);
	assert_clean(f);
}

static void test_discard_own_over_snapshot_entry(void **state)
{
	struct fixture *f = *state;
	uint64_t p1;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 0, 2);
	p1 = phys_of(f, "v", 0);
	assert_int_equal(discard(f, "v", 0), 0);
	assert_true(chunk_is_hole(f, p1));
	assert_int_equal(read_chunk(f, "v", 0), 0);
	assert_int_equal(read_chunk(f, "s", 0), 1);
	assert_int_equal(usage0(f).entries, 2); /* s's, and the tombstone that replaced v's */
	assert_int_equal(usage0(f).tombstones, 1);
	assert_int_equal(usage0(f).allocated_chunks, 1);
	assert_clean(f);
}

static void test_discard_after_shrink_is_noop(void **state)
{
	struct fixture *f = *state;

	create(f, "v", 8);
	write_chunk(f, "v", 6, 1);
	snapshot(f, "v", "s");
	assert_int_equal(azb_pool_resize(f->pool, "v", 4 * CS, f->err, sizeof(f->err)), 0);
	assert_int_equal(azb_pool_resize(f->pool, "v", 8 * CS, f->err, sizeof(f->err)), 0);
	assert_int_equal(read_chunk(f, "v", 6), 0);
	assert_int_equal(discard(f, "v", 6), 0);
	assert_int_equal(usage0(f).entries, 1);
	assert_int_equal(usage0(f).tombstones, 0);
	assert_int_equal(read_chunk(f, "s", 6), 1);
	assert_clean(f);
}

static void test_gc_deletes_unseen_tombstone(void **state)
{
	struct fixture *f = *state;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	snapshot(f, "v", "s1");
	assert_int_equal(discard(f, "v", 0), 0); /* tombstone at epoch 2 */
	snapshot(f, "v", "s2");			 /* sees it */
	write_chunk(f, "v", 0, 2);		 /* epoch 3 */
	assert_int_equal(usage0(f).tombstones, 1);
	assert_int_equal(gc_all(f), 0);
	assert_int_equal(read_chunk(f, "s2", 0), 0);
	del(f, "s2");
	assert_int_equal(gc_all(f), 1);
	assert_int_equal(usage0(f).tombstones, 0);
	assert_int_equal(usage0(f).entries, 2);
	assert_int_equal(usage0(f).allocated_chunks, 2);
	assert_int_equal(read_chunk(f, "s1", 0), 1);
	assert_int_equal(read_chunk(f, "v", 0), 2);
	assert_clean(f);
}

static void test_check_counts_tombstones(void **state)
{
	struct fixture *f = *state;
	struct azb_volume v;
	char buf[4096];

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	assert_int_equal(azb_pool_get_volume(f->pool, "v", &v, f->err, sizeof(f->err)), 0);
	azb_shard_close(f->sh[0]);
	f->sh[0] = NULL;
	inject_entry(f, v.ns, 3, 1, AZB_TOMBSTONE);
	open_all_shards(f);
	assert_int_equal(check_all(f, buf), 3);
	assert_non_null(strstr(buf, "tombstone counter 0, recount 1"));
	assert_non_null(strstr(buf, "entry counter 1, recount 2"));
	assert_null(strstr(buf, "high water"));
}

/* A view kept across calls whose epochs move under it (as a daemon keeps
 * its volume's view): the cache holds facts, the view makes the decisions. */
static void test_live_view_epochs_move(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan p;
	struct azb_view live, fresh;
	uint64_t p0, p1, phys;

	create(f, "v", 8);
	view_of(f, "v", &live);
	assert_int_equal(azb_shard_plan_write(f->sh[0], &live, 0, &p), 0);
	assert_int_equal(azb_shard_commit_write(f->sh[0], &p), 0);
	p0 = p.phys;
	assert_int_equal(azb_shard_plan_write(f->sh[0], &live, 0, &p), 0);
	assert_true(p.in_place);
	snapshot(f, "v", "s");
	view_of(f, "v", &fresh);
	live.write_epoch = fresh.write_epoch; /* what the daemon does on a snapshot */
	live.write_max_hold = fresh.write_max_hold;
	azb_view_free(&fresh);
	assert_int_equal(azb_shard_plan_write(f->sh[0], &live, 0, &p), 0);
	assert_false(p.in_place);
	assert_int_equal(p.old_phys, p0);
	assert_int_equal(azb_shard_commit_write(f->sh[0], &p), 0);
	p1 = p.phys;
	assert_int_equal(azb_shard_lookup(f->sh[0], &live, 0, &phys), 0);
	assert_int_equal(phys, p1);
	assert_int_equal(phys_of(f, "s", 0), p0);
	/* the snapshot goes: its entry is no hold's, the head's is its own */
	del(f, "s");
	live.write_max_hold = 0;
	assert_int_equal(azb_shard_plan_write(f->sh[0], &live, 1, &p), 0);
	assert_int_equal(azb_shard_abort_write(f->sh[0], &p), 0);
	assert_int_equal(azb_shard_discard(f->sh[0], &live, 0), 0);
	/* p0's entry (epoch 1) shows through if nothing hides it: a tombstone */
	assert_int_equal(azb_shard_lookup(f->sh[0], &live, 0, &phys), 0);
	assert_int_equal(phys, AZB_PHYS_NONE);
	assert_int_equal(usage0(f).tombstones, 1);
	assert_int_equal(gc_all(f), 2);
	assert_int_equal(usage0(f).entries, 0);
	assert_int_equal(usage0(f).allocated_chunks, 0);
	azb_view_free(&live);
	assert_clean(f);
}

/* Plan `name`:`chunk`, scribble over the whole new chunk, return the plan. */
static struct azb_write_plan plan_and_scribble(struct fixture *f, const char *name, uint64_t chunk)
{
	static char junk[CS];
	struct azb_write_plan plan;
	struct azb_view v;

	memset(junk, 0xEE, sizeof(junk));
	view_of(f, name, &v);
	assert_int_equal(azb_shard_plan_write(f->sh[0], &v, chunk, &plan), 0);
	assert_false(plan.in_place);
	assert_true(chunk_is_hole(f, plan.phys));
	assert_int_equal(pwrite(azb_shard_data_fd(f->sh[0]), junk, CS, (off_t)(plan.phys * CS)),
			 CS);
	azb_view_free(&v);
	return plan;
}

/* What the engine relies on: a new chunk reads as zeros, even one that a plan
 * wrote before its commit was lost (a crash: the handle closes without it). */
static void test_new_chunks_read_zeros(void **state)
{
	struct fixture *f = *state;
	struct azb_write_plan p, q;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	/* from high water, given back by abort */
	p = plan_and_scribble(f, "v", 1);
	assert_int_equal(azb_shard_abort_write(f->sh[0], &p), 0);
	q = plan_and_scribble(f, "v", 1);
	assert_int_equal(q.phys, p.phys);
	/* from high water, the commit lost */
	close_all(f);
	open_all(f);
	q = plan_and_scribble(f, "v", 1);
	assert_int_equal(q.phys, p.phys);
	close_all(f);
	open_all(f);
	/* from the free set, the commit lost */
	assert_int_equal(discard(f, "v", 0), 0);
	assert_int_equal(azb_shard_sync(f->sh[0]), 0);
	p = plan_and_scribble(f, "v", 2);
	assert_int_equal(p.phys, 0);
	close_all(f);
	open_all(f);
	q = plan_and_scribble(f, "v", 2);
	assert_int_equal(q.phys, 0);
	assert_int_equal(azb_shard_commit_write(f->sh[0], &q), 0);
	assert_clean(f);
}

/* ---- read-only opens beside a writer ---- */

static void test_readonly_beside_writer(void **state)
{
	struct fixture *f = *state;
	struct azb_pool *rp = NULL;
	struct azb_shard *rs = NULL;
	struct azb_shard_usage wu, ru;
	struct azb_view rv[2];
	struct azb_view_usage vu[2];
	struct azb_write_plan p;
	struct azb_holds holds;
	struct azb_gc_stats st;
	uint64_t phys, marker;
	char err[256];

	create(f, "v", 8);
	write_chunk(f, "v", 0, 0xA);
	write_chunk(f, "v", 1, 0xB);
	snapshot(f, "v", "s");
	write_chunk(f, "v", 0, 0xC);
	assert_int_equal(azb_shard_sync(f->sh[0]), 0);
	assert_int_equal(azb_pool_open_readonly(f->dir, &rp, err, sizeof(err)), 0);
	assert_int_equal(azb_shard_open_readonly(f->dir, azb_pool_get_settings(rp), 0, &rs, err,
						 sizeof(err)),
			 0);
	/* it sees what the writer wrote */
	assert_int_equal(azb_pool_get_view(rp, "v", &rv[0], err, sizeof(err)), 0);
	assert_int_equal(azb_pool_get_view(rp, "s", &rv[1], err, sizeof(err)), 0);
	assert_int_equal(azb_shard_lookup(rs, &rv[0], 0, &phys), 0);
	assert_int_equal(phys, phys_of(f, "v", 0));
	assert_int_equal(pread(azb_shard_data_fd(rs), &marker, sizeof(marker), (off_t)(phys * CS)),
			 sizeof(marker));
	assert_int_equal(marker, 0xC);
	assert_int_equal(azb_shard_lookup(rs, &rv[1], 0, &phys), 0);
	assert_int_equal(phys, phys_of(f, "s", 0));
	assert_int_equal(azb_shard_usage(rs, &ru), 0);
	assert_int_equal(azb_shard_usage(f->sh[0], &wu), 0);
	assert_memory_equal(&ru, &wu, sizeof(ru));
	assert_int_equal(azb_shard_view_usage(rs, rv, 2, vu), 0);
	assert_int_equal(vu[0].mapped, 2);
	assert_int_equal(vu[0].exclusive, 1);
	assert_int_equal(vu[1].mapped, 2);
	assert_int_equal(azb_pool_get_holds(rp, &holds, err, sizeof(err)), 0);
	assert_int_equal(azb_shard_check(rs, &holds, NULL, NULL), 0);
	/* nothing on it writes */
	assert_int_equal(azb_shard_plan_write(rs, &rv[0], 2, &p), -EROFS);
	assert_non_null(strstr(azb_shard_error(rs), "read-only"));
	assert_int_equal(azb_shard_discard(rs, &rv[0], 0), -EROFS);
	assert_int_equal(azb_shard_gc(rs, &holds, &st), -EROFS);
	assert_int_equal(azb_shard_sync(rs), -EROFS);
	memset(&p, 0, sizeof(p));
	assert_int_equal(azb_shard_commit_write(rs, &p), -EROFS);
	assert_int_equal(azb_shard_abort_write(rs, &p), -EROFS);
	assert_int_equal(azb_pool_create_volume(rp, "w", CS, err, sizeof(err)), -EROFS);
	assert_non_null(strstr(err, "read-only"));
	assert_int_equal(azb_pool_snapshot(rp, "v", "s2", err, sizeof(err)), -EROFS);
	assert_int_equal(azb_pool_clone(rp, "s", "c", err, sizeof(err)), -EROFS);
	assert_int_equal(azb_pool_rollback(rp, "v", "s", err, sizeof(err)), -EROFS);
	assert_int_equal(azb_pool_resize(rp, "v", 16 * CS, err, sizeof(err)), -EROFS);
	assert_int_equal(azb_pool_delete(rp, "s", err, sizeof(err)), -EROFS);
	azb_holds_free(&holds);
	/* what the writer does later is not seen: the state is as of the open */
	write_chunk(f, "v", 2, 0xD);
	assert_int_equal(azb_shard_lookup(rs, &rv[0], 2, &phys), 0);
	assert_int_equal(phys, AZB_PHYS_NONE);
	azb_view_free(&rv[0]);
	azb_view_free(&rv[1]);
	azb_shard_close(rs);
	azb_pool_close(rp);
	/* the writer goes on; a new read-only open sees its latest (synced) state */
	write_chunk(f, "v", 3, 0xE);
	assert_int_equal(azb_shard_sync(f->sh[0]), 0);
	assert_int_equal(azb_pool_open_readonly(f->dir, &rp, err, sizeof(err)), 0);
	assert_int_equal(azb_shard_open_readonly(f->dir, azb_pool_get_settings(rp), 0, &rs, err,
						 sizeof(err)),
			 0);
	assert_int_equal(azb_pool_get_view(rp, "v", &rv[0], err, sizeof(err)), 0);
	assert_int_equal(azb_shard_lookup(rs, &rv[0], 3, &phys), 0);
	assert_int_equal(phys, phys_of(f, "v", 3));
	azb_view_free(&rv[0]);
	azb_shard_close(rs);
	azb_pool_close(rp);
	assert_clean(f);
	close_all(f);
	open_all(f);
	assert_int_equal(read_chunk(f, "v", 3), 0xE);
}

static void test_readonly_missing_pool(void **state)
{
	struct fixture *f = *state;
	struct azb_pool_settings s;
	struct azb_shard *sh = NULL;
	struct azb_pool *p = NULL;

	assert_int_equal(azb_pool_open_readonly(f->dir, &p, f->err, sizeof(f->err)), -ENOENT);
	assert_null(p);
	settings_small(&s, 1, 0);
	assert_int_equal(azb_shard_open_readonly(f->dir, &s, 0, &sh, f->err, sizeof(f->err)),
			 -ENOENT);
	assert_null(sh);
}

static void test_default_dir(void **state)
{
	(void)state;
	unsetenv("AZBUSE_THIN_POOL");
	assert_string_equal(azb_pool_default_dir(), "/var/lib/azbuse/pool");
	setenv("AZBUSE_THIN_POOL", "", 1);
	assert_string_equal(azb_pool_default_dir(), "/var/lib/azbuse/pool");
	setenv("AZBUSE_THIN_POOL", "/srv/thin", 1);
	assert_string_equal(azb_pool_default_dir(), "/srv/thin");
	unsetenv("AZBUSE_THIN_POOL");
}

/* ---- the map cache ---- */

static void test_map_cache_hits_and_db_changes(void **state)
{
	struct fixture *f = *state;
	struct azb_map_cache *mc;
	struct azb_view v;
	uint64_t phys, reads;
	char *rerr = NULL;

	create(f, "v", 64);
	for (uint64_t l = 0; l < 64; l++)
		write_chunk(f, "v", l, 1000 + l);
	mc = &f->sh[0]->mc;
	reads = mc->db_reads;
	view_of(f, "v", &v);
	for (uint64_t l = 0; l < 64; l++)
		assert_int_equal(azb_shard_lookup(f->sh[0], &v, l, &phys), 0);
	assert_int_equal(mc->db_reads, reads); /* the writes left what the reads want */
	azb_view_free(&v);
	/* the DB flushes and compacts under the iterator; a small cache evicts */
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_flush(f->sh[0]->rdb.db, fo, &rerr);
	rocksdb_flushoptions_destroy(fo);
	assert_null(rerr);
	snapshot(f, "v", "s");
	for (uint64_t l = 0; l < 64; l += 2)
		write_chunk(f, "v", l, 2000 + l);
	rocksdb_compact_range(f->sh[0]->rdb.db, NULL, 0, NULL, 0);
	assert_int_equal(azb_map_cache_init(f->sh[0], 1), 0); /* 16 nodes */
	for (int round = 0; round < 2; round++) {
		for (uint64_t l = 0; l < 64; l++) {
			assert_int_equal(read_chunk(f, "v", l), (l % 2 ? 1000 : 2000) + l);
			assert_int_equal(read_chunk(f, "s", l), 1000 + l);
		}
	}
	assert_true(f->sh[0]->mc.evictions > 0);
	assert_clean(f);
}

/* A model of every volume's content (two words per sub-block of each chunk:
 * the last marker written and the one before, as a partial write would
 * keep) checked after random writes, discards, snapshots, clones, deletes,
 * rollbacks, resizes, GCs and reopens. A write into a shared chunk either
 * copies it or, as the thin engine does, writes only its sub-block into a
 * layered chunk. */
#define MODEL_CHUNKS 24
#define MODEL_OBJS 24
#define MODEL_SUBS 4

struct model_obj {
	char name[16];
	int alive, snap;
	uint64_t chunks;
	uint64_t cur[MODEL_CHUNKS][MODEL_SUBS], prev[MODEL_CHUNKS][MODEL_SUBS];
};

struct model {
	struct model_obj o[MODEL_OBJS];
	uint32_t nr;
	uint32_t subs; /* sub-blocks per chunk: chunk size / SUB */
	uint64_t cs;
	uint64_t marker;
	unsigned seed;
};

/* The two words at the start of sub-block `sub` of a chunk mapped as m. */
static void read_sub_words(int fd, uint64_t cs, const struct azb_chunk_map *m, uint32_t sub,
			   uint64_t words[2])
{
	uint64_t p = AZB_PHYS_NONE;

	if (m->valid == AZB_VALID_ALL || ((m->valid >> sub) & 1))
		p = m->phys;
	else if (m->base != AZB_PHYS_NONE &&
		 (m->base_valid == AZB_VALID_ALL || ((m->base_valid >> sub) & 1)))
		p = m->base;
	words[0] = words[1] = 0;
	if (p != AZB_PHYS_NONE)
		assert_int_equal(
			pread(fd, words, 2 * sizeof(uint64_t), (off_t)(p * cs + sub * SUB)),
			2 * sizeof(uint64_t));
}

static void write_sub_words(int fd, uint64_t cs, uint64_t phys, uint32_t sub,
			    const uint64_t words[2])
{
	assert_int_equal(pwrite(fd, words, 2 * sizeof(uint64_t), (off_t)(phys * cs + sub * SUB)),
			 2 * sizeof(uint64_t));
}

static void model_write(struct fixture *f, struct model *m, struct model_obj *o, uint64_t chunk)
{
	struct azb_shard *sh = shard_of(f, chunk);
	uint32_t sub = (uint32_t)(rand_r(&m->seed) % m->subs);
	uint64_t words[2], marker = ++m->marker;
	struct azb_write_plan plan;
	struct azb_chunk_map old;
	struct azb_view v;
	int fd = azb_shard_data_fd(sh), copy;

	view_of(f, o->name, &v);
	if (azb_shard_plan_write(sh, &v, chunk, &plan))
		fail_msg("plan %s:%llu: %s", o->name, (unsigned long long)chunk,
			 azb_shard_error(sh));
	old = (struct azb_chunk_map){ plan.old_phys, plan.old_valid, plan.old_base,
				      plan.old_base_valid };
	/* over data, a plan that is not layered must copy; a layered one may */
	copy = !plan.in_place && plan.old_phys != AZB_PHYS_NONE &&
	       (!plan.layered || rand_r(&m->seed) % 4 == 0);
	for (uint32_t t = 0; copy && t < m->subs; t++) {
		read_sub_words(fd, m->cs, &old, t, words);
		write_sub_words(fd, m->cs, plan.phys, t, words);
	}
	read_sub_words(fd, m->cs, &old, sub, words);
	words[1] = words[0];
	words[0] = marker;
	write_sub_words(fd, m->cs, plan.phys, sub, words);
	plan.valid = copy ? AZB_VALID_ALL : azb_valid_add(sh, plan.valid, sub * SUB, SUB);
	assert_int_equal(azb_shard_commit_write(sh, &plan), 0);
	azb_view_free(&v);
	o->prev[chunk][sub] = o->cur[chunk][sub];
	o->cur[chunk][sub] = marker;
}

static void model_verify(struct fixture *f, struct model *m)
{
	for (uint32_t i = 0; i < m->nr; i++) {
		struct model_obj *o = &m->o[i];
		struct azb_view v;

		if (!o->alive)
			continue;
		view_of(f, o->name, &v);
		for (uint64_t l = 0; l < o->chunks; l++) {
			struct azb_shard *sh = shard_of(f, l);
			struct azb_chunk_map cm;

			assert_int_equal(azb_shard_lookup_map(sh, &v, l, &cm), 0);
			for (uint32_t t = 0; t < m->subs; t++) {
				uint64_t words[2];

				read_sub_words(azb_shard_data_fd(sh), m->cs, &cm, t, words);
				if (words[0] != o->cur[l][t] || words[1] != o->prev[l][t])
					fail_msg("%s chunk %llu sub-block %u: reads %llu/%llu, "
						 "model %llu/%llu",
						 o->name, (unsigned long long)l, t,
						 (unsigned long long)words[0],
						 (unsigned long long)words[1],
						 (unsigned long long)o->cur[l][t],
						 (unsigned long long)o->prev[l][t]);
			}
		}
		azb_view_free(&v);
	}
}

static struct model_obj *model_pick(struct model *m, int want_snap)
{
	for (int tries = 0; tries < 64; tries++) {
		struct model_obj *o = &m->o[rand_r(&m->seed) % m->nr];

		if (o->alive && (want_snap < 0 || o->snap == want_snap))
			return o;
	}
	return NULL;
}

static struct model_obj *model_new(struct model *m, const struct model_obj *from, int snap)
{
	struct model_obj *o;

	if (m->nr == MODEL_OBJS)
		return NULL;
	o = &m->o[m->nr];
	if (from)
		*o = *from;
	else
		memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "o%u", m->nr);
	o->alive = 1;
	o->snap = snap;
	m->nr++;
	return o;
}

static void model_step(struct fixture *f, struct model *m)
{
	int op = rand_r(&m->seed) % 100;
	struct model_obj *o = model_pick(m, 0), *s;
	uint64_t l, size;

	if (!o)
		return;
	l = rand_r(&m->seed) % o->chunks;
	if (op < 45) {
		model_write(f, m, o, l);
	} else if (op < 65) {
		assert_int_equal(discard(f, o->name, l), 0);
		memset(o->cur[l], 0, sizeof(o->cur[l]));
		memset(o->prev[l], 0, sizeof(o->prev[l]));
	} else if (op < 72) {
		s = model_new(m, o, 1);
		if (s)
			snapshot(f, o->name, s->name);
	} else if (op < 77) {
		s = model_pick(m, 1);
		o = s ? model_new(m, s, 0) : NULL;
		if (o)
			assert_int_equal(
				azb_pool_clone(f->pool, s->name, o->name, f->err, sizeof(f->err)),
				0);
	} else if (op < 83) {
		s = model_pick(m, 1);
		if (s && rand_r(&m->seed) % 2) {
			del(f, s->name);
			s->alive = 0;
		} else if (o != &m->o[0]) {
			del(f, o->name);
			o->alive = 0;
		}
	} else if (op < 87) {
		s = model_pick(m, 1);
		if (s && !azb_pool_rollback(f->pool, o->name, s->name, f->err, sizeof(f->err))) {
			memcpy(o->cur, s->cur, sizeof(o->cur));
			memcpy(o->prev, s->prev, sizeof(o->prev));
			o->chunks = s->chunks;
		}
	} else if (op < 92) {
		size = 4 + rand_r(&m->seed) % (MODEL_CHUNKS - 3);
		assert_int_equal(
			azb_pool_resize(f->pool, o->name, size * m->cs, f->err, sizeof(f->err)), 0);
		for (l = size; l < MODEL_CHUNKS; l++) {
			memset(o->cur[l], 0, sizeof(o->cur[l]));
			memset(o->prev[l], 0, sizeof(o->prev[l]));
		}
		o->chunks = size;
	} else if (op < 96) {
		gc_all(f);
		assert_clean(f);
	} else if (op < 99) {
		model_write(f, m, o, l);
	} else {
		if (rand_r(&m->seed) % 2)
			assert_int_equal(azb_shard_sync(f->sh[0]), 0);
		close_all(f);
		open_all(f);
	}
}

static void run_model(struct fixture *f, unsigned seed, int steps)
{
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->seed = seed;
	m->cs = azb_pool_get_settings(f->pool)->chunk_size;
	m->subs = (uint32_t)(m->cs / SUB);
	assert_true(m->subs >= 1 && m->subs <= MODEL_SUBS);
	model_new(m, NULL, 0)->chunks = MODEL_CHUNKS;
	assert_int_equal(azb_pool_create_volume(f->pool, m->o[0].name, MODEL_CHUNKS * m->cs, f->err,
						sizeof(f->err)),
			 0);
	for (int i = 0; i < steps; i++) {
		model_step(f, m);
		if (i % 25 == 24)
			model_verify(f, m);
	}
	model_verify(f, m);
	gc_all(f);
	assert_clean(f);
	model_verify(f, m);
	free(m);
}

static void test_model_default_cache(void **state)
{
	run_model(*state, 1, 800);
}

/* Reopen the shards with a map cache of `bytes` (1: 16 nodes, evictions
 * all the time; 0: none). */
static void reopen_with_map_cache(struct fixture *f, uint64_t bytes)
{
	f->map_cache_set = 1;
	f->map_cache_bytes = bytes;
	close_all(f);
	open_all(f);
}

static void test_model_tiny_cache(void **state)
{
	struct fixture *f = *state;

	reopen_with_map_cache(f, 1);
	run_model(f, 2, 800);
	assert_true(f->evictions > 0);
}

/* Chunks of four sub-blocks: writes into shared chunks mostly layered. */
static void test_model_layered(void **state)
{
	run_model(*state, 4, 800);
}

static void test_model_layered_tiny_cache(void **state)
{
	struct fixture *f = *state;

	reopen_with_map_cache(f, 1);
	run_model(f, 5, 800);
	assert_true(f->evictions > 0);
}

static void test_model_no_cache(void **state)
{
	struct fixture *f = *state;

	reopen_with_map_cache(f, 0);
	run_model(f, 3, 400);
}

/* ---- older on-disk formats ---- */

static rocksdb_t *raw_open(struct fixture *f, const char *db)
{
	char path[256], *rerr = NULL;
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_t *r;

	snprintf(path, sizeof(path), "%s/%s", f->dir, db);
	r = rocksdb_open(o, path, &rerr);
	assert_null(rerr);
	rocksdb_options_destroy(o);
	return r;
}

static void raw_put(rocksdb_t *db, const char *k, size_t klen, const char *v, size_t vlen)
{
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *rerr = NULL;

	if (v)
		rocksdb_put(db, wo, k, klen, v, vlen, &rerr);
	else
		rocksdb_delete(db, wo, k, klen, &rerr);
	assert_null(rerr);
	rocksdb_writeoptions_destroy(wo);
}

static void test_old_formats_are_read(void **state)
{
	struct fixture *f = *state;
	struct azb_pool_settings s = *azb_pool_get_settings(f->pool);
	char k[2], v[AZB_SETTINGS_VALUE_LEN];
	rocksdb_t *db;
	struct azb_shard_usage u;

	create(f, "v", 8);
	write_chunk(f, "v", 0, 1);
	write_chunk(f, "v", 1, 2);
	assert_int_equal(discard(f, "v", 1), 0);
	close_all(f);
	/* pool settings without map_cache_bytes */
	db = raw_open(f, "pool.db");
	k[0] = AZB_K_SETTINGS;
	azb_settings_encode(v, &s);
	raw_put(db, k, 1, v, AZB_SETTINGS_VALUE_LEN_V0);
	rocksdb_close(db);
	/* shard counters one key each: allocated 1, high water 2, free 1, entries 1 */
	db = raw_open(f, "shard-0/meta.db");
	azb_counter_key_encode(k, AZB_SC_STATE);
	raw_put(db, k, 2, NULL, 0);
	{
		static const char ids[] = { AZB_SC_OLD_ALLOCATED, AZB_SC_OLD_HIGH_WATER,
					    AZB_SC_OLD_FREE, AZB_SC_OLD_ENTRIES };
		static const uint64_t vals[] = { 1, 2, 1, 1 };

		for (int i = 0; i < 4; i++) {
			char cv[9];

			azb_counter_key_encode(k, ids[i]);
			azb_u64_value_encode(cv, vals[i]);
			raw_put(db, k, 2, cv, sizeof(cv));
		}
	}
	rocksdb_close(db);
	open_all(f);
	assert_int_equal(azb_pool_get_settings(f->pool)->map_cache_bytes, AZB_MAP_CACHE_DEFAULT);
	assert_int_equal(azb_shard_usage(f->sh[0], &u), 0);
	assert_int_equal(u.allocated_chunks, 1);
	assert_int_equal(u.high_water, 2);
	assert_int_equal(u.free_chunks, 1);
	assert_int_equal(u.entries, 1);
	assert_int_equal(read_chunk(f, "v", 0), 1);
	assert_clean(f);
	/* the counters moved into their record: a second open reads that */
	write_chunk(f, "v", 2, 3);
	close_all(f);
	open_all(f);
	assert_int_equal(azb_shard_usage(f->sh[0], &u), 0);
	assert_int_equal(u.allocated_chunks, 2);
	assert_int_equal(u.entries, 2);
	assert_clean(f);
}

/* A chunk never mapped is known without a read once its segment was
 * learned, and what a batch puts is never hidden by a segment learned
 * while the batch was being built (azb_seen_hold). */
static void test_seen_never_mapped_chunks(void **state)
{
	struct fixture *f = *state;
	struct azb_shard *sh = f->sh[0];
	struct azb_write_plan plans[2];
	struct azb_view v;
	uint64_t phys, reads;

	create(f, "v", 64);
	view_of(f, "v", &v);
	/* an empty namespace: neither plan reads the DB or learns anything */
	assert_int_equal(azb_shard_plan_write(sh, &v, 10, &plans[0]), 0);
	assert_int_equal(azb_shard_plan_write(sh, &v, 5, &plans[1]), 0);
	/* chunk 5 < 10: its put's lookup reads the DB while 10 is only in the batch */
	azb_map_cache_clear(sh);
	assert_int_equal(azb_shard_commit_writes(sh, plans, 2), 0);
	assert_int_equal(phys_of(f, "v", 10), plans[0].phys);
	assert_int_equal(phys_of(f, "v", 5), plans[1].phys);
	assert_int_equal(sh->seen.learned, 0);
	/* the first miss below the namespace's top learns the segment; later
	 * ones read nothing */
	assert_int_equal(azb_shard_lookup(sh, &v, 7, &phys), 0);
	assert_int_equal(phys, AZB_PHYS_NONE);
	assert_int_equal(sh->seen.learned, 1);
	reads = sh->mc.db_reads;
	for (uint64_t l = 0; l < 10; l++) {
		assert_int_equal(azb_shard_lookup(sh, &v, l, &phys), 0);
		assert_true(l == 5 ? phys == plans[1].phys : phys == AZB_PHYS_NONE);
	}
	assert_int_equal(sh->mc.db_reads, reads);
	azb_view_free(&v);
	/* new entries in a learned segment are found, without the cache too */
	write_chunk(f, "v", 30, 3030);
	azb_map_cache_clear(sh);
	assert_int_equal(read_chunk(f, "v", 30), 3030);
	assert_int_equal(phys_of(f, "v", 10), plans[0].phys);
	assert_int_equal(phys_of(f, "v", 5), plans[1].phys);
	assert_int_equal(phys_of(f, "v", 29), AZB_PHYS_NONE);
	close_all(f);
	open_all(f);
	assert_int_equal(read_chunk(f, "v", 30), 3030);
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
		cmocka_unit_test_setup_teardown(test_active_flag, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_commit_writes_batch, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_sees_old_data, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_clone_falls_back_then_diverges, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_in_place_or_new, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_valid_masks, setup_empty, teardown),
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
		cmocka_unit_test_setup_teardown(test_buffered_wal_flush, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_is_ebusy, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_hold, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_missing_pool_is_enoent, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_db_is_an_error, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_two_shards, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_discard_own_chunk_frees_it, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_discard_many_syncs_itself, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_discard_shared_writes_tombstone, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_discard_in_clone_hides_parent, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_discard_own_over_snapshot_entry, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_discard_after_shrink_is_noop, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_gc_deletes_unseen_tombstone, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_check_counts_tombstones, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_live_view_epochs_move, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_new_chunks_read_zeros, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_beside_writer, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_missing_pool, setup_empty, teardown),
		cmocka_unit_test(test_default_dir),
		cmocka_unit_test_setup_teardown(test_map_cache_hits_and_db_changes, setup1,
						teardown),
		cmocka_unit_test_setup_teardown(test_seen_never_mapped_chunks, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_model_default_cache, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_model_tiny_cache, setup2, teardown),
		cmocka_unit_test_setup_teardown(test_model_no_cache, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_model_layered, setup_subs, teardown),
		cmocka_unit_test_setup_teardown(test_find_layered, setup_subs, teardown),
		cmocka_unit_test_setup_teardown(test_model_layered_tiny_cache, setup_subs,
						teardown),
		cmocka_unit_test_setup_teardown(test_old_formats_are_read, setup1, teardown),
	};

	if (getenv("AZB_TEST_FILTER")) /* e.g. AZB_TEST_FILTER='test_discard*' */
		cmocka_set_test_filter(getenv("AZB_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
