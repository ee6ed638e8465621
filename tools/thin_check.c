// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_check.c - `azbuse-thin check`: pool.db's own check, then every shard
 * against the pool's holds, one line per problem; the pool must not be served.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thin_tool.h"

/* ---- check ---- */

struct check_report {
	const struct thin_ctx *c;
	char **lines; /* for --json */
	uint32_t nr, cap;
	uint64_t problems;
};

static void check_line(const char *line, void *arg)
{
	struct check_report *r = arg;

	if (!r->c->json) {
		printf("pool %s: %s\n", r->c->dir, line);
		return;
	}
	if (r->nr == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 16;
		char **q = realloc(r->lines, cap * sizeof(*q));

		if (!q)
			return;
		r->lines = q;
		r->cap = cap;
	}
	if ((r->lines[r->nr] = strdup(line)))
		r->nr++;
}

/* A problem found by the tool itself (a shard that cannot be opened or checked). */
static void check_problem(struct check_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void check_problem(struct check_report *r, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->problems++;
	check_line(line, r);
}

static int count_volume(const struct azb_volume *vol, void *arg)
{
	(void)vol;
	(*(uint64_t *)arg)++;
	return 0;
}

/*
 * pool.db: its own check, the volume count, the holds the shards are checked
 * against. 0, or -1 if the shards cannot be checked (reported as a problem).
 */
static int check_pool_db(const struct thin_ctx *c, struct check_report *r,
			 struct azb_pool_settings *s, struct azb_holds *holds, uint64_t *nr_vols)
{
	struct azb_pool *pool;
	char err[512];
	int ret;

	if (thin_pool_open_err(c, &pool, err, sizeof(err))) {
		check_problem(r, "pool.db: %s", err);
		return -1;
	}
	*s = *azb_pool_get_settings(pool);
	ret = azb_pool_check(pool, check_line, r, err, sizeof(err));
	if (ret >= 0) {
		r->problems += (uint64_t)ret;
		ret = azb_pool_list(pool, count_volume, nr_vols, err, sizeof(err));
	}
	if (ret >= 0)
		ret = azb_pool_get_holds(pool, holds, err, sizeof(err));
	azb_pool_close(pool);
	if (ret < 0) {
		check_problem(r, "pool.db: cannot be checked: %s", err);
		return -1;
	}
	return 0;
}

static void check_shards(const struct azb_pool_settings *pool_settings,
			 const struct azb_holds *holds, struct check_report *r, uint64_t *mapped)
{
	struct azb_pool_settings s = *pool_settings;

	s.map_cache_bytes = 0;
	for (uint32_t k = 0; k < s.nr_shards; k++) {
		struct azb_shard_usage u;
		struct azb_shard *sh;
		char err[512];
		int ret = azb_shard_open(r->c->dir, &s, k, &sh, err, sizeof(err));

		if (ret) {
			check_problem(r, "shard %u: cannot open: %s", k, err);
			continue;
		}
		ret = azb_shard_check(sh, holds, check_line, r);
		if (ret < 0)
			check_problem(r, "shard %u: check failed: %s", k, azb_shard_error(sh));
		else
			r->problems += (uint64_t)ret;
		azb_shard_usage(sh, &u);
		*mapped += u.allocated_chunks;
		azb_shard_close(sh);
	}
}

static int check_print(const struct thin_ctx *c, const struct check_report *r, uint64_t nr_vols,
		       uint64_t mapped)
{
	int failed = 0;

	if (c->json) {
		json_object *doc = thin_json_doc(c), *problems = tj_array();

		tj_bool(doc, "clean", !r->problems);
		tj_u64(doc, "volumes", nr_vols);
		tj_u64(doc, "chunks_mapped", mapped);
		tj_u64(doc, "problem_count", r->problems);
		for (uint32_t i = 0; i < r->nr; i++)
			tj_append(problems, tj_string(r->lines[i]));
		tj_add(doc, "problems", problems);
		failed = tj_print(doc, "azbuse-thin");
	} else if (!r->problems) {
		printf("pool %s: clean, %llu volumes, %llu chunks mapped\n", c->dir,
		       (unsigned long long)nr_vols, (unsigned long long)mapped);
	} else {
		printf("pool %s: %llu problem%s, %llu volumes, %llu chunks mapped\n", c->dir,
		       (unsigned long long)r->problems, r->problems == 1 ? "" : "s",
		       (unsigned long long)nr_vols, (unsigned long long)mapped);
	}
	if (r->problems)
		failed = thin_fail(c, "%llu problem%s found in pool %s",
				   (unsigned long long)r->problems, r->problems == 1 ? "" : "s",
				   c->dir);
	return failed;
}

int thin_cmd_check(struct thin_ctx *c, const struct thin_args *a)
{
	struct check_report r = { .c = c };
	struct azb_pool_settings s;
	struct azb_holds holds = { 0 };
	struct thin_claim cl;
	uint64_t nr_vols = 0, mapped = 0;
	char holder[256];
	int ret;

	(void)a;
	if (thin_claim(c, &cl))
		return 1;
	if (cl.held) {
		thin_holder_text(&cl, holder, sizeof(holder));
		return thin_fail(c, "pool %s is in use by %s; stop it to check", c->dir, holder);
	}
	if (!check_pool_db(c, &r, &s, &holds, &nr_vols))
		check_shards(&s, &holds, &r, &mapped);
	azb_holds_free(&holds);
	thin_unclaim(&cl);
	ret = check_print(c, &r, nr_vols, mapped);
	for (uint32_t i = 0; i < r.nr; i++)
		free(r.lines[i]);
	free(r.lines);
	return ret;
}
