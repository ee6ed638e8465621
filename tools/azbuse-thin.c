// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * azbuse-thin.c - the command line of thin pools: create a pool, and create,
 * list, describe, snapshot, clone, roll back, delete and resize its volumes;
 * show space use, check the metadata, reclaim space. This file parses the
 * command line and runs the commands that change a pool; thin_show.c (list,
 * info, usage) and thin_check.c read it, thin_pool.c and thin_daemon.c deal
 * with the lock and the daemon serving a pool. Changes go to pool.db directly,
 * or through the daemon where they would otherwise race with it. Tables for
 * people, --json for scripts; exit 0 on success, 1 on failure, 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <azbuse/azbuse.h>

#include "thin_tool.h"

struct command {
	const char *name;
	int (*run)(struct thin_ctx *c, const struct thin_args *a);
	int nr_pos;	      /* at least this many positionals ... */
	const char *options;  /* "--size= --mapped": '=' means it takes a value */
	const char *synopsis; /* what follows the command name */
	const char *summary;  /* one line for the command list */
	const char *help;     /* the rest of --help */
	int max_pos;	      /* ... and at most this many (0: nr_pos) */
};

/* ---- argument helpers ---- */

const char *thin_arg(const struct thin_args *a, const char *name)
{
	const char *v = NULL;

	for (int i = 0; i < a->nr_opts; i++)
		if (a->opt_len[i] == strlen(name) && !strncmp(a->opt_name[i], name, a->opt_len[i]))
			v = a->opt_value[i];
	return v;
}

int thin_check_name(const struct thin_ctx *c, const char *what, const char *name)
{
	if (!azb_name_check(name))
		return 0;
	return thin_bad_usage(c,
			      "invalid %s name \"%s\": 1 to %d characters of A-Z a-z 0-9 . _ -, "
			      "not starting with . or -",
			      what, name, AZB_NAME_MAX);
}

static int parse_size_opt(const struct thin_ctx *c, const char *opt, const char *text,
			  uint64_t *bytes)
{
	if (azbuse_parse_size(text, bytes))
		return thin_bad_usage(c,
				      "%s %s: not a size (a number of bytes, or of k, M, G or T "
				      "units, such as 1.5G)",
				      opt, text);
	return 0;
}

static int parse_volume_size(const struct thin_ctx *c, const struct thin_args *a, uint64_t *bytes)
{
	const char *text = thin_arg(a, "--size");

	if (!text)
		return thin_bad_usage(c, "--size SIZE is required");
	if (parse_size_opt(c, "--size", text, bytes))
		return EXIT_USAGE;
	if (!*bytes || *bytes % AZB_VOLUME_SIZE_ALIGN || *bytes > AZB_VOLUME_SIZE_MAX)
		return thin_bad_usage(c,
				      "--size %s: must be a non-zero multiple of 4 KiB, at "
				      "most 1 EiB",
				      text);
	return 0;
}

static int parse_uint(const char *text, unsigned long max, const char *suffix, uint32_t *out)
{
	unsigned long v;
	char *end;

	if (!text || text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || v > max || (*end && (!suffix || strcmp(end, suffix))))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Fail with a library message, prefixed with `name` unless it names it. */
static int fail_on(const struct thin_ctx *c, const char *name, const char *err)
{
	char quoted[AZB_NAME_MAX + 3];

	snprintf(quoted, sizeof(quoted), "\"%s\"", name);
	if (strstr(err, quoted))
		return thin_fail(c, "%s", err);
	return thin_fail(c, "%s: %s", name, err);
}

/* ---- printing ---- */

/* "created snapshot s1 of vol1 (1.0 GiB) in pool DIR", or its JSON. */
static int print_created(const struct thin_ctx *c, const struct azb_volume *v)
{
	char size[32];

	if (c->json) {
		json_object *doc = thin_json_doc(c);

		thin_json_volume(doc, v);
		return tj_print(doc, "azbuse-thin");
	}
	printf("created %s %s%s%s (%s) in pool %s\n", azb_vol_kind_name(v->kind), v->name,
	       v->parent[0] ? " of " : "", v->parent,
	       azbuse_format_size(v->size_bytes, size, sizeof(size)), c->dir);
	return 0;
}

/* ---- init ---- */

/* The settings that may change after init, from the arguments, over s. */
static int set_settings(const struct thin_ctx *c, const struct thin_args *a,
			struct azb_pool_settings *s)
{
	const char *v;

	if ((v = thin_arg(a, "--limit")) && strcmp(v, "none") &&
	    parse_size_opt(c, "--limit", v, &s->limit_bytes))
		return EXIT_USAGE;
	if (v && !strcmp(v, "none"))
		s->limit_bytes = 0;
	if ((v = thin_arg(a, "--meta-cache")) &&
	    parse_size_opt(c, "--meta-cache", v, &s->meta_cache_bytes))
		return EXIT_USAGE;
	if ((v = thin_arg(a, "--map-cache")) &&
	    parse_size_opt(c, "--map-cache", v, &s->map_cache_bytes))
		return EXIT_USAGE;
	if ((v = thin_arg(a, "--low-space")) && parse_uint(v, 100, "%", &s->low_space_percent))
		return thin_bad_usage(c, "--low-space %s: must be a percentage from 1 to 100", v);
	return 0;
}

static int init_settings(const struct thin_ctx *c, const struct thin_args *a,
			 struct azb_pool_settings *s)
{
	const char *v;

	azb_pool_settings_default(s);
	if ((v = thin_arg(a, "--chunk-size")) &&
	    parse_size_opt(c, "--chunk-size", v, &s->chunk_size))
		return EXIT_USAGE;
	if ((v = thin_arg(a, "--stripe")) && parse_size_opt(c, "--stripe", v, &s->stripe_size))
		return EXIT_USAGE;
	if ((v = thin_arg(a, "--shards")) && parse_uint(v, AZB_SHARDS_MAX, NULL, &s->nr_shards))
		return thin_bad_usage(c, "--shards %s: must be 1 to %d", v, AZB_SHARDS_MAX);
	/* and what may change later too (azbuse-thin set) */
	return set_settings(c, a, s);
}

static int print_settings(const struct thin_ctx *c, const char *head,
			  const struct azb_pool_settings *s, const char *data_dev)
{
	char chunk[32], stripe[32], limit[32], cache[32], map[32], ram[32];
	uint64_t bound = azb_meta_ram_bound(s);

	if (c->json) {
		json_object *doc = thin_json_doc(c);

		tj_str(doc, "data_device", data_dev);
		tj_u64(doc, "chunk_size", s->chunk_size);
		tj_u64(doc, "stripe_size", s->stripe_size);
		tj_u64(doc, "shards", s->nr_shards);
		tj_u64(doc, "limit_bytes", s->limit_bytes);
		tj_u64(doc, "low_space_percent", s->low_space_percent);
		tj_u64(doc, "meta_cache_bytes", s->meta_cache_bytes);
		tj_u64(doc, "map_cache_bytes", s->map_cache_bytes);
		tj_u64(doc, "meta_ram_bound_bytes", bound);
		return tj_print(doc, "azbuse-thin");
	}
	printf("%s %s\n", head, c->dir);
	if (!strcmp(head, "created pool")) /* (set: where the data is does not change) */
		printf("data            %s\n", data_dev ? data_dev : "a sparse file per shard");
	printf("chunk size      %s\n", azbuse_format_size(s->chunk_size, chunk, sizeof(chunk)));
	printf("stripe size     %s\n", azbuse_format_size(s->stripe_size, stripe, sizeof(stripe)));
	printf("shards          %u\n", s->nr_shards);
	printf("limit           %s\n",
	       s->limit_bytes ? azbuse_format_size(s->limit_bytes, limit, sizeof(limit))
			      : "none (the filesystem's free space)");
	printf("low space       warn at %u%% use\n", s->low_space_percent);
	printf("metadata cache  %s per shard\n",
	       azbuse_format_size(s->meta_cache_bytes, cache, sizeof(cache)));
	printf("map cache       %s%s\n",
	       s->map_cache_bytes ? azbuse_format_size(s->map_cache_bytes, map, sizeof(map))
				  : "none",
	       s->map_cache_bytes ? " per shard" : "");
	printf("metadata RAM    at most %s (plus RocksDB's fixed per-process overhead)\n",
	       azbuse_format_size(bound, ram, sizeof(ram)));
	return 0;
}

static int cmd_init(struct thin_ctx *c, const struct thin_args *a)
{
	struct azb_pool_settings s;
	const char *data_dev;
	char err[512];
	int ret = init_settings(c, a, &s);

	if (ret)
		return ret;
	if (azb_pool_settings_check(&s, err, sizeof(err)))
		return thin_bad_usage(c, "%s", err);
	data_dev = thin_arg(a, "--data");
	if (data_dev && data_dev[0] != '/')
		return thin_bad_usage(c, "--data %s: give the device's absolute path", data_dev);
	ret = azb_pool_init_on(c->dir, &s, data_dev, err, sizeof(err));
	if (ret == -EEXIST && strstr(err, "is already a pool"))
		return thin_fail(c, "%s already holds a pool; not touched", c->dir);
	if (ret)
		return thin_fail(c, "cannot create a pool in %s: %s", c->dir, err);
	return print_settings(c, "created pool", &s, data_dev);
}

/* ---- set ---- */

/* A served pool's daemon takes the new settings at once. */
static int set_tell_daemon(const struct thin_ctx *c)
{
	struct thin_claim cl;
	char *out = NULL, err[512];
	int ret;

	thin_probe(c, &cl);
	if (!cl.held || !cl.served.nr)
		return 0;
	ret = thin_control(cl.served.dev[0].id, "thin settings", &out, err, sizeof(err));
	free(out);
	if (ret)
		return thin_fail(c,
				 "the settings are saved, but the daemon serving the pool did not "
				 "take them (%s): they apply when it next starts",
				 err);
	return 0;
}

static int cmd_set(struct thin_ctx *c, const struct thin_args *a)
{
	struct azb_pool_settings s;
	struct azb_pool *pool;
	char err[512];
	int ret;

	if (!thin_arg(a, "--limit") && !thin_arg(a, "--low-space") &&
	    !thin_arg(a, "--meta-cache") && !thin_arg(a, "--map-cache"))
		return thin_bad_usage(c, "nothing to set (--limit, --low-space, --meta-cache, "
					 "--map-cache)");
	if (thin_pool_open(c, &pool))
		return 1;
	s = *azb_pool_get_settings(pool);
	ret = set_settings(c, a, &s);
	if (!ret && azb_pool_set_settings(pool, &s, err, sizeof(err)))
		ret = thin_fail(c, "%s", err);
	azb_pool_close(pool);
	if (ret)
		return ret;
	ret = set_tell_daemon(c);
	if (ret)
		return ret;
	return print_settings(c, "settings of pool", &s, NULL);
}

/* ---- create, clone ---- */

static int cmd_create(struct thin_ctx *c, const struct thin_args *a)
{
	const char *name = a->pos[0];
	struct azb_pool *pool;
	struct azb_volume vol;
	uint64_t size;
	char err[512];
	int ret = thin_check_name(c, "volume", name);

	if (!ret)
		ret = parse_volume_size(c, a, &size);
	if (ret)
		return ret;
	if (thin_pool_open(c, &pool))
		return 1;
	ret = azb_pool_create_volume(pool, name, size, err, sizeof(err));
	if (!ret)
		ret = azb_pool_get_volume(pool, name, &vol, err, sizeof(err));
	azb_pool_close(pool);
	if (ret)
		return thin_fail(c, "cannot create %s: %s", name, err);
	if (thin_arg(a, "--activate"))
		return thin_activate_one(c, name);
	return print_created(c, &vol);
}

static int cmd_clone(struct thin_ctx *c, const struct thin_args *a)
{
	const char *snap = a->pos[0], *name = a->pos[1];
	struct azb_pool *pool;
	struct azb_volume vol;
	char err[512];
	int ret = thin_check_name(c, "snapshot", snap);

	if (!ret)
		ret = thin_check_name(c, "clone", name);
	if (ret)
		return ret;
	if (thin_pool_open(c, &pool))
		return 1;
	ret = azb_pool_clone(pool, snap, name, err, sizeof(err));
	if (!ret)
		ret = azb_pool_get_volume(pool, name, &vol, err, sizeof(err));
	azb_pool_close(pool);
	if (ret)
		return thin_fail(c, "cannot clone %s as %s: %s", snap, name, err);
	return print_created(c, &vol);
}

/* ---- snapshot ---- */

/* 0 if `name` is free in the pool, else 1 (printed). */
static int check_free_name(const struct thin_ctx *c, struct azb_pool *pool, const char *name)
{
	struct azb_volume v;
	char err[512];
	int ret = azb_pool_get_volume(pool, name, &v, err, sizeof(err));

	if (ret == -ENOENT)
		return 0;
	if (!ret)
		return thin_fail(c, "\"%s\" already exists in pool %s", name, c->dir);
	return thin_fail(c, "%s", err);
}

/* Ask device `d` (serving src) for the snapshot, so that it quiesces the volume. */
/* Decide how to take the snapshot: 0 and *dev (NULL: directly), or 1 (printed). */
static int snapshot_route(const struct thin_ctx *c, const struct thin_claim *cl,
			  const struct azb_volume *src, const struct thin_device **dev)
{
	char holder[256];

	*dev = NULL;
	if (!cl->held || src->kind == AZB_VOL_SNAPSHOT)
		return 0;
	*dev = thin_served_volume(&cl->served, src->name);
	if (*dev || (cl->served.nr && !cl->served.incomplete))
		return 0;
	thin_holder_text(cl, holder, sizeof(holder));
	return thin_fail(c,
			 "pool %s is in use by %s, so it cannot be told whether %s is being "
			 "served and a snapshot taken now could be inconsistent; stop it first",
			 c->dir, holder, src->name);
}

static int snapshot_print(const struct thin_ctx *c, const char *snap, const struct thin_device *dev,
			  char *output)
{
	struct azb_pool *pool;
	struct azb_volume v;
	char err[512], taken_by[32];
	int ret;

	if (thin_pool_open_ro(c, &pool))
		return 1;
	ret = azb_pool_get_volume(pool, snap, &v, err, sizeof(err));
	azb_pool_close(pool);
	if (ret)
		return thin_fail(c, "the snapshot was reported taken, but: %s", err);
	if (!dev)
		return print_created(c, &v);
	if (c->json) {
		json_object *doc = thin_json_doc(c);

		snprintf(taken_by, sizeof(taken_by), AZBUSE_BLOCK_PREFIX "%u", dev->id);
		thin_json_volume(doc, &v);
		tj_str(doc, "taken_by", taken_by);
		tj_add(doc, "daemon_output", tj_lines(output));
		return tj_print(doc, "azbuse-thin");
	}
	thin_print_lines(stdout, output);
	print_created(c, &v);
	printf("(taken by " AZBUSE_BLOCK_PREFIX "%u, which serves %s)\n", dev->id, v.parent);
	return 0;
}

/*
 * The served volume's snapshot: its daemon checks the names, quiesces the
 * device and records it; pool.db is not opened here at all (each RocksDB
 * open costs a lot on a slow machine, and the daemon opens it anyway).
 */
static int cmd_snapshot(struct thin_ctx *c, const struct thin_args *a)
{
	const char *src = a->pos[0], *snap = a->pos[1];
	const struct thin_device *dev = NULL;
	struct thin_claim cl;
	struct azb_pool *pool = NULL;
	struct azb_volume v;
	char err[512], *output = NULL;
	int ret = thin_check_name(c, "source", src);

	if (!ret)
		ret = thin_check_name(c, "snapshot", snap);
	if (ret)
		return ret;
	if (thin_claim(c, &cl))
		return 1;
	dev = cl.held ? thin_served_volume(&cl.served, src) : NULL;
	if (dev) {
		ret = thin_snapshot_served(c, dev, src, snap);
		thin_unclaim(&cl);
		return ret;
	}
	/* a served pool, another volume: look with a cheaper read-only open first */
	ret = cl.held ? thin_pool_open_ro(c, &pool) : thin_pool_open(c, &pool);
	if (!ret && (ret = azb_pool_get_volume(pool, src, &v, err, sizeof(err))))
		ret = thin_fail(c, "%s", err);
	if (!ret)
		ret = check_free_name(c, pool, snap);
	if (!ret)
		ret = snapshot_route(c, &cl, &v, &dev);
	if (!ret && !dev && cl.held) {
		azb_pool_close(pool);
		pool = NULL;
		ret = thin_pool_open(c, &pool);
	}
	if (!ret && !dev && azb_pool_snapshot(pool, src, snap, err, sizeof(err)))
		ret = thin_fail(c, "cannot snapshot %s as %s: %s", src, snap, err);
	if (pool)
		azb_pool_close(pool);
	if (!ret && dev)
		ret = thin_snapshot_by_daemon(c, dev, src, snap, &output);
	thin_unclaim(&cl);
	if (!ret)
		ret = snapshot_print(c, snap, dev, output);
	free(output);
	return ret;
}

/* ---- delete, rollback, resize: changes that free space ---- */

/* 0 if `name` may be changed (nobody serves it), else 1 (printed). */
static int refuse_if_served(const struct thin_ctx *c, const struct thin_claim *cl, const char *name)
{
	const struct thin_device *d;
	char holder[256];

	if (!cl->held)
		return 0;
	d = thin_served_volume(&cl->served, name);
	if (d)
		return thin_fail(c,
				 "%s is being served by azbuse device " AZBUSE_BLOCK_PREFIX
				 "%u (pid %d); remove the device first",
				 name, d->id, (int)(d->pid ? d->pid : cl->served.holder));
	if (cl->served.nr && !cl->served.incomplete)
		return 0;
	thin_holder_text(cl, holder, sizeof(holder));
	return thin_fail(c,
			 "pool %s is in use by %s, so it cannot be told whether %s is being "
			 "served; stop it first",
			 c->dir, holder, name);
}

/* What a change did, for printing. */
struct change {
	const char *name;
	const char *snap;
	uint64_t size;
	struct azb_volume before, after;
	bool frees; /* may have left garbage for GC */
};

typedef int (*change_fn)(struct azb_pool *pool, struct change *ch, char *err, size_t errlen);

static int do_delete(struct azb_pool *pool, struct change *ch, char *err, size_t errlen)
{
	int ret = azb_pool_get_volume(pool, ch->name, &ch->before, err, errlen);

	if (!ret)
		ret = azb_pool_delete(pool, ch->name, err, errlen);
	ch->frees = true;
	return ret;
}

static int do_rollback(struct azb_pool *pool, struct change *ch, char *err, size_t errlen)
{
	int ret = azb_pool_get_volume(pool, ch->name, &ch->before, err, errlen);

	if (!ret)
		ret = azb_pool_rollback(pool, ch->name, ch->snap, err, errlen);
	if (!ret)
		ret = azb_pool_get_volume(pool, ch->name, &ch->after, err, errlen);
	ch->frees = true;
	return ret;
}

static uint64_t chunks_of(uint64_t bytes, uint64_t chunk_size)
{
	return (bytes + chunk_size - 1) / chunk_size;
}

static int do_resize(struct azb_pool *pool, struct change *ch, char *err, size_t errlen)
{
	uint64_t cs = azb_pool_get_settings(pool)->chunk_size;
	int ret = azb_pool_get_volume(pool, ch->name, &ch->before, err, errlen);

	if (!ret)
		ret = azb_pool_resize(pool, ch->name, ch->size, err, errlen);
	if (!ret)
		ret = azb_pool_get_volume(pool, ch->name, &ch->after, err, errlen);
	ch->frees = !ret && chunks_of(ch->size, cs) < chunks_of(ch->before.size_bytes, cs);
	return ret;
}

/*
 * Refuse if the volume is served, apply the change to pool.db, then reclaim
 * what it freed: here if we hold the pool, else by the serving daemon.
 */
static int change_and_reclaim(const struct thin_ctx *c, change_fn fn, struct change *ch,
			      struct thin_gc_result *gc)
{
	struct azb_pool_settings s;
	struct azb_holds holds = { 0 };
	struct thin_claim cl;
	struct azb_pool *pool;
	char err[512];
	int ret, hret = -1;

	memset(gc, 0, sizeof(*gc));
	if (thin_claim(c, &cl))
		return 1;
	ret = refuse_if_served(c, &cl, ch->name);
	if (!ret)
		ret = thin_pool_open(c, &pool);
	if (ret) {
		thin_unclaim(&cl);
		return ret;
	}
	s = *azb_pool_get_settings(pool);
	ret = fn(pool, ch, err, sizeof(err));
	if (ret)
		ret = fail_on(c, ch->name, err);
	if (!ret && ch->frees && !cl.held)
		hret = azb_pool_get_holds(pool, &holds, err, sizeof(err));
	azb_pool_close(pool);
	if (!ret && ch->frees && cl.held) {
		thin_gc_daemon(&cl, gc);
	} else if (!ret && ch->frees && !hret) {
		thin_gc_here(c, &s, &holds, gc);
	} else if (!ret && ch->frees) {
		gc->how = THIN_GC_FAILED;
		snprintf(gc->message, sizeof(gc->message), "GC not done (%s); run azbuse-thin gc",
			 err);
	}
	azb_holds_free(&holds);
	thin_unclaim(&cl);
	return ret;
}

/*
 * A change that loses data goes ahead with --yes, or when the user answers
 * yes on a terminal; otherwise it is refused (1, printed) before anything is
 * opened for writing: a script must say --yes.
 */
static int confirm(const struct thin_ctx *c, const struct thin_args *a, const char *what)
{
	char line[64];

	if (thin_arg(a, "--yes"))
		return 0;
	if (!isatty(STDIN_FILENO))
		return thin_fail(c, "%s: not confirmed (no terminal to ask on); add --yes", what);
	fprintf(stderr, "%s? [y/N] ", what);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (!strcasecmp(line, "y") || !strcasecmp(line, "yes"))
		return 0;
	return thin_fail(c, "%s: not confirmed", what);
}

/* The volume as pool.db has it now (read-only), for the question; 0 or 1 (printed). */
static int volume_now(const struct thin_ctx *c, const char *name, struct azb_volume *v)
{
	struct azb_pool *pool;
	char err[512];
	int ret;

	if (thin_pool_open_ro(c, &pool))
		return 1;
	ret = azb_pool_get_volume(pool, name, v, err, sizeof(err));
	azb_pool_close(pool);
	return ret ? fail_on(c, name, err) : 0;
}

/* print the outcome of a change: its JSON document, or a line and GC's */
static int print_change(const struct thin_ctx *c, json_object *doc, const struct thin_gc_result *gc)
{
	thin_gc_print(c, gc, doc);
	return c->json ? tj_print(doc, "azbuse-thin") : 0;
}

static int cmd_delete(struct thin_ctx *c, const struct thin_args *a)
{
	json_object *doc = NULL;
	struct change ch = { .name = a->pos[0] };
	struct thin_gc_result gc;
	struct azb_volume v;
	char what[256], size[32];
	int ret = thin_check_name(c, "volume", ch.name);

	if (!ret && !thin_arg(a, "--yes") && !(ret = volume_now(c, ch.name, &v))) {
		snprintf(what, sizeof(what), "delete %s %s (%s) and what only it holds",
			 azb_vol_kind_name(v.kind), ch.name,
			 azbuse_format_size(v.size_bytes, size, sizeof(size)));
		ret = confirm(c, a, what);
	}
	if (ret || (ret = change_and_reclaim(c, do_delete, &ch, &gc)))
		return ret;
	if (c->json) {
		doc = thin_json_doc(c);
		tj_str(doc, "deleted", ch.name);
		tj_str(doc, "kind", azb_vol_kind_name(ch.before.kind));
	} else {
		printf("deleted %s %s from pool %s\n", azb_vol_kind_name(ch.before.kind), ch.name,
		       c->dir);
	}
	ret = print_change(c, doc, &gc);
	thin_gc_result_free(&gc);
	return ret;
}

static int cmd_rollback(struct thin_ctx *c, const struct thin_args *a)
{
	json_object *doc = NULL;
	struct change ch = { .name = a->pos[0], .snap = a->pos[1] };
	struct thin_gc_result gc;
	char size[32];
	char what[256];
	int ret = thin_check_name(c, "volume", ch.name);

	if (!ret)
		ret = thin_check_name(c, "snapshot", ch.snap);
	if (!ret) {
		snprintf(what, sizeof(what),
			 "roll %s back to snapshot %s, losing what was written "
			 "to it since",
			 ch.name, ch.snap);
		ret = confirm(c, a, what);
	}
	if (ret || (ret = change_and_reclaim(c, do_rollback, &ch, &gc)))
		return ret;
	if (c->json) {
		doc = thin_json_doc(c);
		tj_str(doc, "name", ch.name);
		tj_str(doc, "snapshot", ch.snap);
		tj_u64(doc, "size_bytes", ch.after.size_bytes);
	} else {
		printf("rolled %s back to snapshot %s (%s) in pool %s\n", ch.name, ch.snap,
		       azbuse_format_size(ch.after.size_bytes, size, sizeof(size)), c->dir);
	}
	ret = print_change(c, doc, &gc);
	thin_gc_result_free(&gc);
	return ret;
}

static int cmd_resize(struct thin_ctx *c, const struct thin_args *a)
{
	json_object *doc = NULL;
	struct change ch = { .name = a->pos[0] };
	struct thin_gc_result gc;
	struct azb_volume v;
	char from[32], to[32], what[256];
	int ret = thin_check_name(c, "volume", ch.name);

	if (!ret)
		ret = parse_volume_size(c, a, &ch.size);
	/* growing loses nothing; shrinking drops what lies beyond the new end */
	if (!ret && !thin_arg(a, "--yes") && !(ret = volume_now(c, ch.name, &v)) &&
	    ch.size < v.size_bytes) {
		snprintf(what, sizeof(what), "shrink %s from %s to %s, dropping its data beyond",
			 ch.name, azbuse_format_size(v.size_bytes, from, sizeof(from)),
			 azbuse_format_size(ch.size, to, sizeof(to)));
		ret = confirm(c, a, what);
	}
	if (ret || (ret = change_and_reclaim(c, do_resize, &ch, &gc)))
		return ret;
	if (c->json) {
		doc = thin_json_doc(c);
		tj_str(doc, "name", ch.name);
		tj_u64(doc, "old_size_bytes", ch.before.size_bytes);
		tj_u64(doc, "size_bytes", ch.after.size_bytes);
	} else {
		printf("resized %s from %s to %s in pool %s\n", ch.name,
		       azbuse_format_size(ch.before.size_bytes, from, sizeof(from)),
		       azbuse_format_size(ch.after.size_bytes, to, sizeof(to)), c->dir);
	}
	ret = print_change(c, doc, &gc);
	thin_gc_result_free(&gc);
	return ret;
}

/* ---- gc ---- */

static int cmd_gc(struct thin_ctx *c, const struct thin_args *a)
{
	json_object *doc = NULL;
	struct azb_pool_settings s;
	struct azb_holds holds;
	struct thin_gc_result gc;
	struct thin_claim cl;
	struct azb_pool *pool;
	char err[512];
	int ret;

	(void)a;
	if (thin_claim(c, &cl))
		return 1;
	if (cl.held) {
		thin_gc_daemon(&cl, &gc);
	} else {
		if (thin_pool_open(c, &pool)) {
			thin_unclaim(&cl);
			return 1;
		}
		s = *azb_pool_get_settings(pool);
		ret = azb_pool_get_holds(pool, &holds, err, sizeof(err));
		azb_pool_close(pool);
		if (ret) {
			thin_unclaim(&cl);
			return thin_fail(c, "cannot read what the volumes hold: %s", err);
		}
		thin_gc_here(c, &s, &holds, &gc);
		azb_holds_free(&holds);
	}
	thin_unclaim(&cl);
	if (gc.how == THIN_GC_DEFERRED || gc.how == THIN_GC_FAILED) {
		ret = thin_fail(c, "%s", gc.message);
	} else {
		if (c->json)
			doc = thin_json_doc(c);
		tj_str(doc, "action", "gc");
		ret = print_change(c, doc, &gc);
	}
	thin_gc_result_free(&gc);
	return ret;
}

/* ---- command table, usage, main ---- */

static const struct command commands[] = {
	{ "init", cmd_init, 0,
	  "--data= --chunk-size= --shards= --stripe= --limit= --low-space= --meta-cache= "
	  "--map-cache=",
	  "[OPTIONS]", "create a pool",
	  "Creates the pool directory (if missing) with pool.db and the shards.\n"
	  "  --data DEVICE        keep the data on this block device (a partition or LV,\n"
	  "                       absolute path; not mounted), cut into a region per\n"
	  "                       shard, instead of a sparse file per shard\n"
	  "  --chunk-size SIZE    allocation unit, a power of two from 4k to 1M (64k)\n"
	  "  --shards N           shards, each with its own metadata DB and data file (2)\n"
	  "  --stripe SIZE        consecutive bytes of a volume in one shard (1M)\n"
	  "  --limit SIZE         most data the pool may hold (default: no limit)\n"
	  "  --low-space PERCENT  warn when this much is used (90)\n"
	  "  --meta-cache SIZE    RocksDB block cache per shard (8M)\n"
	  "  --map-cache SIZE     cache of the newest mappings per shard, 0 for none (16M)\n"
	  "Prints the settings and the bound on metadata RAM they give.\n",
	  0 },
	{ "set", cmd_set, 0, "--limit= --low-space= --meta-cache= --map-cache=", "[OPTIONS]",
	  "change a pool's limit, threshold or caches",
	  "Changes what init set and may change; a served pool takes it at once.\n"
	  "  --limit SIZE|none    most data the pool may hold\n"
	  "  --low-space PERCENT  warn when this much is used\n"
	  "  --meta-cache SIZE    RocksDB block cache per shard\n"
	  "  --map-cache SIZE     cache of the newest mappings per shard, 0 for none\n",
	  0 },
	{ "create", cmd_create, 1, "--size= --activate", "NAME --size SIZE [--activate]",
	  "a new empty volume",
	  "Creates volume NAME of SIZE (a multiple of 4k; k, M, G, T suffixes).\n"
	  "--activate also serves it (see activate), as lvcreate does.\n",
	  0 },
	{ "activate", thin_cmd_activate, 0, "--all --foreground", "NAME|--all [--foreground]",
	  "serve a volume as a device, now and at boot",
	  "Records NAME as active in the pool and serves it as a device (the pool's\n"
	  "daemon starts with its first device; the next ones join it), named\n"
	  "/dev/azbuse/POOL/NAME by udev, POOL being the pool directory's last\n"
	  "component. --all serves every volume the pool records as active: what\n"
	  "azbuse-pool@.service runs at boot, with --foreground (the command becomes\n"
	  "the daemon and tells systemd when every volume is served).\n",
	  1 },
	{ "deactivate", thin_cmd_deactivate, 0, "--all --force", "NAME|--all [--force]",
	  "stop serving a volume",
	  "Removes the device serving NAME (refused while it is mounted or open, as\n"
	  "azbusectl remove; --force removes it anyway) and records it as inactive, so\n"
	  "that a boot does not bring it back. --all: every device of the pool.\n",
	  1 },
	{ "list", thin_cmd_list, 0, "--mapped -o= --units= --noheadings --separator=",
	  "[--mapped] [-o COLS] [--units U]", "volumes, snapshots and clones",
	  "Lists NAME KIND SIZE PARENT CREATED, and a DEVICE column when the pool is\n"
	  "served. --mapped adds the space each maps (scans the shards).\n"
	  "As lvs does:\n"
	  "  -o COLS          columns, from name, kind, size, parent, created, active,\n"
	  "                   device, mapped, exclusive (the last two scan the shards)\n"
	  "  --units U        sizes in h (human, the default), b, k, m, g or t\n"
	  "  --noheadings     no header line\n"
	  "  --separator S    columns separated by S instead of aligned\n",
	  0 },
	{ "info", thin_cmd_info, 1, "", "NAME", "size, lineage and space of one volume",
	  "Shows NAME's size, kind, parent, creation time, namespace and epoch, and the\n"
	  "space it maps: exclusive (seen by no other volume or snapshot) and shared,\n"
	  "and the device serving it if any.\n",
	  0 },
	{ "snapshot", cmd_snapshot, 2, "", "SRC SNAP", "read-only snapshot of a volume",
	  "Takes snapshot SNAP of volume, clone or snapshot SRC. If SRC is being served,\n"
	  "its daemon takes it, quiescing the device so that the snapshot is consistent.\n",
	  0 },
	{ "clone", cmd_clone, 2, "", "SNAP NAME", "writable clone of a snapshot",
	  "Creates NAME, a writable volume that starts as snapshot SNAP.\n", 0 },
	{ "rollback", cmd_rollback, 2, "--yes", "NAME SNAP [--yes]", "NAME goes back to a snapshot",
	  "Volume or clone NAME takes the content and size of SNAP, a snapshot of its\n"
	  "lineage; what only NAME held is freed. Refused while NAME is served. Asks\n"
	  "first on a terminal; without one, needs --yes.\n",
	  0 },
	{ "delete", cmd_delete, 1, "--yes", "NAME [--yes]", "delete a volume, clone or snapshot",
	  "Deletes NAME and frees what nothing else holds. Refused while NAME is served;\n"
	  "while another volume of the pool is served, its daemon reclaims the space.\n"
	  "Asks first on a terminal; without one, needs --yes.\n",
	  0 },
	{ "resize", cmd_resize, 1, "--size= --yes", "NAME --size SIZE [--yes]",
	  "grow or shrink a volume",
	  "Sets the size of volume or clone NAME; shrinking frees what lies beyond.\n"
	  "Refused while NAME is served. A shrink asks first on a terminal; without\n"
	  "one, it needs --yes.\n",
	  0 },
	{ "usage", thin_cmd_usage, 0, "", "", "space used and free",
	  "Shows the space the pool uses (allocated chunks) and has free (the limit's\n"
	  "remainder or the filesystem's free space, whichever is less), and warns when\n"
	  "use reaches the low-space threshold.\n",
	  0 },
	{ "check", thin_cmd_check, 0, "", "", "verify the metadata",
	  "Checks pool.db and every shard. Exit 0 if clean, 1 with the problems listed.\n"
	  "The pool must not be served.\n",
	  0 },
	{ "gc", cmd_gc, 0, "", "", "reclaim unused space now",
	  "Frees the chunks that no volume or snapshot holds any more (delete, rollback\n"
	  "and resize do it themselves). While the pool is served, asks its daemon.\n",
	  0 },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out, "usage: azbuse-thin [--pool DIR] [--json] COMMAND [ARGS]\n\n"
		     "Thin-provisioned volumes with snapshots and clones, in a pool directory\n"
		     "served by azbuse devices with the thin engine.\n\n");
	for (size_t i = 0; i < NR_COMMANDS; i++) {
		char head[64];

		snprintf(head, sizeof(head), "%s %s", commands[i].name, commands[i].synopsis);
		fprintf(out, "  %-36s %s\n", head, commands[i].summary);
	}
	fprintf(out, "\nThe pool is --pool DIR, else $AZBUSE_THIN_POOL, else " AZB_POOL_DIR_DEFAULT
		     ".\nSizes take k, M, G, T suffixes (powers of 1024) and fractions (1.5G).\n"
		     "Every command takes --json and --help. Exit status: 0 ok, 1 failed,\n"
		     "2 bad usage.\n"
		     "Devices serving a pool are found from /dev/azbusectl and their saved\n"
		     "configs and control sockets in $AZBUSE_RUN_DIR (default " AZBUSE_CONTROL_DIR
		     ").\n");
}

static void command_help(const struct command *cmd)
{
	printf("usage: azbuse-thin [--pool DIR] [--json] %s%s%s\n\n%s", cmd->name,
	       cmd->synopsis[0] ? " " : "", cmd->synopsis, cmd->help);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NR_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* Is option `name` (of length len) in spec; *takes_value set. */
static bool option_known(const char *spec, const char *name, size_t len, bool *takes_value)
{
	const char *p = spec;

	while (*p) {
		size_t n = strcspn(p, " ");
		bool value = n && p[n - 1] == '=';

		if ((value ? n - 1 : n) == len && !strncmp(p, name, len)) {
			*takes_value = value;
			return true;
		}
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

/* --pool and --json, accepted before or after the command; 1 if it was one, -1 on error. */
static int global_option(struct thin_ctx *c, int argc, char **argv, int *i, const char **pool)
{
	const char *arg = argv[*i];

	if (!strcmp(arg, "--json")) {
		c->json = true;
		return 1;
	}
	if (!strncmp(arg, "--pool=", 7)) {
		*pool = arg + 7;
		return 1;
	}
	if (strcmp(arg, "--pool"))
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*pool = argv[++*i];
	return 1;
}

static int parse_option(struct thin_ctx *c, const struct command *cmd, int argc, char **argv,
			int *i, struct thin_args *a)
{
	const char *arg = argv[*i], *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	bool value;

	if (!option_known(cmd->options, arg, len, &value))
		return thin_bad_usage(c, "unknown option %.*s", (int)len, arg);
	if (a->nr_opts == THIN_MAX_OPTS)
		return thin_bad_usage(c, "too many options");
	if (!value && eq)
		return thin_bad_usage(c, "%.*s takes no value", (int)len, arg);
	if (value && !eq && *i + 1 >= argc)
		return thin_bad_usage(c, "%s needs a value", arg);
	a->opt_name[a->nr_opts] = arg;
	a->opt_len[a->nr_opts] = len;
	a->opt_value[a->nr_opts] = !value ? "" : eq ? eq + 1 : argv[++*i];
	a->nr_opts++;
	return 0;
}

static int parse_args(struct thin_ctx *c, const struct command *cmd, int argc, char **argv,
		      const char **pool, struct thin_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		int g = global_option(c, argc, argv, &i, pool), ret;

		if (g < 0)
			return thin_bad_usage(c, "--pool needs a directory");
		if (g)
			continue;
		if (argv[i][0] == '-' && argv[i][1]) {
			ret = parse_option(c, cmd, argc, argv, &i, a);
			if (ret)
				return ret;
			continue;
		}
		if (a->nr_pos == (cmd->max_pos ? cmd->max_pos : cmd->nr_pos))
			return thin_bad_usage(c, "unexpected argument \"%s\"", argv[i]);
		a->pos[a->nr_pos++] = argv[i];
	}
	if (a->nr_pos < cmd->nr_pos)
		return thin_bad_usage(c, "missing arguments: %s %s", cmd->name, cmd->synopsis);
	return 0;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

static const char *pool_dir(const char *pool)
{
	return pool ? pool : azb_pool_default_dir();
}

int main(int argc, char **argv)
{
	struct thin_ctx c = { .cmd = "" };
	const struct command *cmd;
	const char *pool = NULL;
	struct thin_args a;
	int i, ret;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		ret = global_option(&c, argc, argv, &i, &pool);
		if (ret < 0) {
			fprintf(stderr, "azbuse-thin: --pool needs a directory\n");
			return EXIT_USAGE;
		}
		if (!ret) {
			fprintf(stderr,
				"azbuse-thin: unknown option '%s' (before the command: "
				"--pool DIR, --json)\n",
				argv[i]);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = find_command(argv[i]);
	if (!cmd) {
		fprintf(stderr, "azbuse-thin: unknown command '%s'\n", argv[i]);
		usage(stderr);
		return EXIT_USAGE;
	}
	c.cmd = cmd->name;
	if (wants_help(argc - i - 1, argv + i + 1)) {
		command_help(cmd);
		return 0;
	}
	ret = parse_args(&c, cmd, argc - i - 1, argv + i + 1, &pool, &a);
	if (ret)
		return ret;
	c.dir = pool_dir(pool);
	if (!*c.dir)
		return thin_bad_usage(&c, "--pool needs a directory");
	return cmd->run(&c, &a);
}
