// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_show.c - the commands that only read a pool: list, info and usage.
 * They open pool.db and the shards read-only, so they work the same whether
 * or not a daemon serves the pool, and show which device serves what.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <libsmartcols.h>

#include <azbuse/azbuse.h>

#include "thin_tool.h"

/* ---- list, info: volumes and their space ---- */

struct vol_list {
	struct azb_volume *v;
	uint32_t nr, cap;
};

static int collect_volume(const struct azb_volume *vol, void *arg)
{
	struct vol_list *l = arg;

	if (l->nr == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 32;
		struct azb_volume *q = realloc(l->v, cap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		l->v = q;
		l->cap = cap;
	}
	l->v[l->nr++] = *vol;
	return 0;
}

static int load_volumes(const struct thin_ctx *c, struct azb_pool *pool, struct vol_list *l)
{
	char err[512] = "out of memory";

	if (azb_pool_list(pool, collect_volume, l, err, sizeof(err)))
		return thin_fail(c, "cannot list the volumes: %s", err);
	return 0;
}

static void free_views(struct azb_view *views, uint32_t nr)
{
	for (uint32_t i = 0; views && i < nr; i++)
		azb_view_free(&views[i]);
	free(views);
}

/* The view of every volume of the list (what GC and accounting see). */
static int load_views(const struct thin_ctx *c, struct azb_pool *pool, const struct vol_list *l,
		      struct azb_view **views)
{
	char err[512];

	*views = calloc(l->nr ? l->nr : 1, sizeof(**views));
	if (!*views)
		return thin_fail(c, "out of memory");
	for (uint32_t i = 0; i < l->nr; i++) {
		if (azb_pool_get_view(pool, l->v[i].name, &(*views)[i], err, sizeof(err))) {
			free_views(*views, i);
			*views = NULL;
			return thin_fail(c, "cannot read the view of %s: %s", l->v[i].name, err);
		}
	}
	return 0;
}

/* Chunks each view maps, summed over shards; exclusivity is relative to all views. */
static int measure_views(const struct thin_ctx *c, const struct azb_pool_settings *s,
			 const struct azb_view *views, uint32_t nr, struct azb_view_usage *total)
{
	struct azb_shard *shards[AZB_SHARDS_MAX];
	struct azb_view_usage *u = calloc(nr ? nr : 1, sizeof(*u));
	int ret = 0;

	memset(total, 0, nr * sizeof(*total));
	if (!u)
		return thin_fail(c, "out of memory");
	if (thin_shards_open(c, s, true, shards)) {
		free(u);
		return 1;
	}
	for (uint32_t k = 0; k < s->nr_shards && !ret; k++) {
		if (azb_shard_view_usage(shards[k], views, nr, u)) {
			ret = thin_fail(c, "cannot measure space use: %s",
					azb_shard_error(shards[k]));
			break;
		}
		for (uint32_t i = 0; i < nr; i++) {
			total[i].mapped += u[i].mapped;
			total[i].exclusive += u[i].exclusive;
			total[i].shared += u[i].shared;
		}
	}
	thin_shards_close(shards, s->nr_shards);
	free(u);
	return ret;
}

/*
 * Volumes of the pool, which of them are served, and with `measure` what each
 * maps. Read-only opens: it works alongside a daemon serving the pool and
 * shows the state of the moment.
 */
struct pool_listing {
	struct thin_claim cl;
	struct vol_list vols;
	struct azb_pool_settings s;
	struct azb_view_usage *usage; /* per volume, in chunks; NULL: not measured */
};

static void listing_free(struct pool_listing *pl)
{
	free(pl->vols.v);
	free(pl->usage);
}

static int listing_load(const struct thin_ctx *c, bool measure, struct pool_listing *pl)
{
	struct azb_view *views = NULL;
	struct azb_pool *pool;
	int ret;

	memset(pl, 0, sizeof(*pl));
	thin_probe(c, &pl->cl);
	ret = thin_pool_open_ro(c, &pool);
	if (!ret) {
		pl->s = *azb_pool_get_settings(pool);
		ret = load_volumes(c, pool, &pl->vols);
		if (!ret && measure)
			ret = load_views(c, pool, &pl->vols, &views);
		azb_pool_close(pool);
	}
	if (!ret && measure) {
		pl->usage = calloc(pl->vols.nr ? pl->vols.nr : 1, sizeof(*pl->usage));
		ret = pl->usage ? measure_views(c, &pl->s, views, pl->vols.nr, pl->usage)
				: thin_fail(c, "out of memory");
	}
	free_views(views, pl->vols.nr);
	if (ret)
		listing_free(pl);
	return ret;
}

static int list_json(const struct pool_listing *pl)
{
	json_object *list = tj_array();

	for (uint32_t i = 0; i < pl->vols.nr; i++) {
		const struct azb_volume *v = &pl->vols.v[i];
		json_object *one = tj_object();

		thin_json_volume(one, v);
		if (pl->usage) {
			tj_u64(one, "mapped_bytes", pl->usage[i].mapped * pl->s.chunk_size);
			tj_u64(one, "exclusive_bytes", pl->usage[i].exclusive * pl->s.chunk_size);
		} else {
			tj_add(one, "mapped_bytes", NULL);
			tj_add(one, "exclusive_bytes", NULL);
		}
		thin_json_served_by(one, &pl->cl, v->name);
		tj_append(list, one);
	}
	return tj_print(list, "azbuse-thin");
}

/* ---- list -o: columns as lvs shows them ---- */

enum list_col {
	COL_NAME,
	COL_KIND,
	COL_SIZE,
	COL_PARENT,
	COL_CREATED,
	COL_ACTIVE,
	COL_DEVICE,
	COL_MAPPED,
	COL_EXCLUSIVE,
	COL_COUNT
};

static const char *const list_col_names[COL_COUNT] = {
	"name", "kind", "size", "parent", "created", "active", "device", "mapped", "exclusive",
};

struct list_format {
	enum list_col cols[COL_COUNT * 2];
	unsigned nr;
	char units; /* 'h' (human), or b, k, m, g, t */
	bool headings;
	const char *separator; /* NULL: aligned columns */
};

/* "name,size,device" into f->cols: 0, or EXIT_USAGE (printed). */
static int list_parse_columns(const struct thin_ctx *c, const char *text, struct list_format *f)
{
	char buf[256], *tok, *save = NULL;
	unsigned k;

	snprintf(buf, sizeof(buf), "%s", text);
	f->nr = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (k = 0; k < COL_COUNT && strcmp(tok, list_col_names[k]); k++)
			;
		if (k == COL_COUNT)
			return thin_bad_usage(c,
					      "-o: no column \"%s\" (name, kind, size, parent, "
					      "created, active, device, mapped, exclusive)",
					      tok);
		if (f->nr == sizeof(f->cols) / sizeof(f->cols[0]))
			return thin_bad_usage(c, "-o: too many columns");
		f->cols[f->nr++] = (enum list_col)k;
	}
	return f->nr ? 0 : thin_bad_usage(c, "-o: no columns");
}

static bool list_wants(const struct list_format *f, enum list_col col)
{
	for (unsigned i = 0; i < f->nr; i++)
		if (f->cols[i] == col)
			return true;
	return false;
}

/* A size in the chosen units: "1.5 GiB" (h), "1610612736B" (b), "1.50g". */
static void list_size(const struct list_format *f, uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "bkmgt";
	const char *u = strchr(units, f->units);

	if (f->units == 'h' || !u)
		azbuse_format_size(bytes, buf, len);
	else if (f->units == 'b')
		snprintf(buf, len, "%lluB", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.2f%c", (double)bytes / (double)(1ULL << (10 * (u - units))),
			 f->units);
}

static void list_cell(const struct pool_listing *pl, const struct list_format *f, uint32_t i,
		      enum list_col col, char *buf, size_t len)
{
	const struct azb_volume *v = &pl->vols.v[i];

	switch (col) {
	case COL_NAME:
		snprintf(buf, len, "%s", v->name);
		break;
	case COL_KIND:
		snprintf(buf, len, "%s", azb_vol_kind_name(v->kind));
		break;
	case COL_SIZE:
		list_size(f, v->size_bytes, buf, len);
		break;
	case COL_PARENT:
		snprintf(buf, len, "%s", v->parent[0] ? v->parent : "-");
		break;
	case COL_CREATED:
		thin_time(v->created, buf, len);
		break;
	case COL_ACTIVE:
		snprintf(buf, len, "%s", v->flags & AZB_VOL_F_ACTIVE ? "yes" : "no");
		break;
	case COL_DEVICE:
		thin_served_device(&pl->cl, v->name, buf, len);
		break;
	case COL_MAPPED:
	case COL_EXCLUSIVE:
		if (!pl->usage)
			snprintf(buf, len, "-");
		else
			list_size(
				f,
				(col == COL_MAPPED ? pl->usage[i].mapped : pl->usage[i].exclusive) *
					pl->s.chunk_size,
				buf, len);
		break;
	default:
		buf[0] = '\0';
	}
}

/* The table, by libsmartcols: aligned columns, or raw with --separator. */
static int list_columns(const struct thin_ctx *c, const struct pool_listing *pl,
			const struct list_format *f)
{
	struct libscols_table *tb = scols_new_table();
	char cell[128], head[16];
	unsigned k;
	int ret = 0;

	if (!tb)
		return thin_fail(c, "out of memory");
	scols_table_enable_noheadings(tb, !f->headings);
	if (f->separator)
		scols_table_enable_raw(tb, 1);
	scols_table_set_column_separator(tb, f->separator ? f->separator : "  ");
	for (k = 0; k < f->nr && !ret; k++) {
		enum list_col col = f->cols[k];
		bool right = col == COL_SIZE || col == COL_MAPPED || col == COL_EXCLUSIVE;
		size_t j;

		snprintf(head, sizeof(head), "%s", list_col_names[col]);
		for (j = 0; head[j]; j++)
			head[j] = (char)toupper((unsigned char)head[j]);
		if (!scols_table_new_column(tb, head, 0, right ? SCOLS_FL_RIGHT : 0))
			ret = -ENOMEM;
	}
	for (uint32_t i = 0; i < pl->vols.nr && !ret; i++) {
		struct libscols_line *ln = scols_table_new_line(tb, NULL);

		for (k = 0; ln && k < f->nr && !ret; k++) {
			list_cell(pl, f, i, f->cols[k], cell, sizeof(cell));
			ret = scols_line_set_data(ln, k, cell);
		}
		if (!ln)
			ret = -ENOMEM;
	}
	if (!ret)
		ret = scols_print_table(tb);
	scols_unref_table(tb);
	return ret ? thin_fail(c, "cannot print the table: %s", strerror(-ret)) : 0;
}

/* -o, --units, --noheadings, --separator into f: 0, or EXIT_USAGE (printed). */
static int list_format_from(const struct thin_ctx *c, const struct thin_args *a, bool mapped,
			    bool served, struct list_format *f)
{
	const char *cols = thin_arg(a, "-o"), *units = thin_arg(a, "--units");

	memset(f, 0, sizeof(*f));
	f->units = 'h';
	f->headings = !thin_arg(a, "--noheadings");
	f->separator = thin_arg(a, "--separator");
	if (units && (strlen(units) != 1 || !strchr("hbkmgt", units[0])))
		return thin_bad_usage(c, "--units %s: one of h, b, k, m, g, t", units);
	if (units)
		f->units = units[0];
	if (!cols) /* the default: DEVICE while the pool is served */
		cols = mapped	? served ? "name,kind,size,parent,created,mapped,device"
					 : "name,kind,size,parent,created,mapped"
		       : served ? "name,kind,size,parent,created,device"
				: "name,kind,size,parent,created";
	return list_parse_columns(c, cols, f);
}

int thin_cmd_list(struct thin_ctx *c, const struct thin_args *a)
{
	bool mapped = thin_arg(a, "--mapped") != NULL;
	const char *cols = thin_arg(a, "-o");
	struct pool_listing pl;
	struct list_format f;
	int ret;

	/* (the columns are checked before the pool is read; mapped and exclusive measure) */
	ret = list_format_from(c, a, mapped, false, &f);
	if (ret)
		return ret;
	if (list_wants(&f, COL_MAPPED) || list_wants(&f, COL_EXCLUSIVE))
		mapped = true;
	if (listing_load(c, mapped, &pl))
		return 1;
	if (!cols)
		list_format_from(c, a, mapped, pl.cl.held && pl.cl.served.nr, &f);
	if (c->json)
		ret = list_json(&pl);
	else
		ret = list_columns(c, &pl, &f);
	listing_free(&pl);
	return ret;
}

/* The epoch shown for a volume: a snapshot's own, a head's current one. */
static int volume_epoch(const struct thin_ctx *c, const struct azb_volume *v, uint64_t *epoch)
{
	struct azb_pool *pool;
	struct azb_ns ns;
	char err[512];
	int ret;

	if (v->kind == AZB_VOL_SNAPSHOT) {
		*epoch = v->epoch;
		return 0;
	}
	if (thin_pool_open_ro(c, &pool))
		return 1;
	ret = azb_pool_get_ns(pool, v->ns, &ns, err, sizeof(err));
	azb_pool_close(pool);
	if (ret)
		return thin_fail(c, "cannot read %s's namespace: %s", v->name, err);
	*epoch = ns.epoch;
	return 0;
}

static void info_space_text(const char *what, const struct pool_listing *pl, uint64_t chunks)
{
	char size[32], chunk[32];

	printf("%-12s %s (%llu chunks of %s)\n", what,
	       azbuse_format_size(chunks * pl->s.chunk_size, size, sizeof(size)),
	       (unsigned long long)chunks,
	       azbuse_format_size(pl->s.chunk_size, chunk, sizeof(chunk)));
}

static void info_text(const struct thin_ctx *c, const struct pool_listing *pl, uint32_t i,
		      uint64_t epoch)
{
	const struct azb_volume *v = &pl->vols.v[i];
	const struct azb_view_usage *u = &pl->usage[i];
	const struct thin_device *d =
		pl->cl.held ? thin_served_volume(&pl->cl.served, v->name) : NULL;
	char size[32], when[32];

	printf("%-12s %s\n%-12s %s\n%-12s %s\n", "name", v->name, "pool", c->dir, "kind",
	       azb_vol_kind_name(v->kind));
	printf("%-12s %s (%llu bytes)\n", "size",
	       azbuse_format_size(v->size_bytes, size, sizeof(size)),
	       (unsigned long long)v->size_bytes);
	printf("%-12s %s\n%-12s %s\n", "parent", v->parent[0] ? v->parent : "-", "created",
	       thin_time(v->created, when, sizeof(when)));
	printf("%-12s %llu, %s %llu\n", "namespace", (unsigned long long)v->ns,
	       v->kind == AZB_VOL_SNAPSHOT ? "epoch" : "head epoch", (unsigned long long)epoch);
	info_space_text("mapped", pl, u->mapped);
	info_space_text("exclusive", pl, u->exclusive);
	info_space_text("shared", pl, u->shared);
	if (d)
		printf("%-12s " AZBUSE_BLOCK_PREFIX "%u (pid %d)\n", "served by", d->id,
		       (int)(d->pid ? d->pid : pl->cl.served.holder));
}

static int info_json(const struct thin_ctx *c, const struct pool_listing *pl, uint32_t i,
		     uint64_t epoch)
{
	const struct azb_volume *v = &pl->vols.v[i];
	const struct azb_view_usage *u = &pl->usage[i];
	json_object *doc = thin_json_doc(c);
	uint64_t cs = pl->s.chunk_size;

	thin_json_volume(doc, v);
	tj_u64(doc, "ns", v->ns);
	tj_u64(doc, "epoch", epoch);
	tj_u64(doc, "chunk_size", cs);
	tj_u64(doc, "mapped_bytes", u->mapped * cs);
	tj_u64(doc, "exclusive_bytes", u->exclusive * cs);
	tj_u64(doc, "shared_bytes", u->shared * cs);
	thin_json_served_by(doc, &pl->cl, v->name);
	return tj_print(doc, "azbuse-thin");
}

int thin_cmd_info(struct thin_ctx *c, const struct thin_args *a)
{
	const char *name = a->pos[0];
	struct pool_listing pl;
	uint64_t epoch = 0;
	uint32_t i;
	int ret = thin_check_name(c, "volume", name);

	if (ret)
		return ret;
	if (listing_load(c, true, &pl))
		return 1;
	for (i = 0; i < pl.vols.nr && strcmp(pl.vols.v[i].name, name); i++)
		;
	if (i == pl.vols.nr)
		ret = thin_fail(c, "no volume or snapshot named \"%s\" in pool %s", name, c->dir);
	if (!ret)
		ret = volume_epoch(c, &pl.vols.v[i], &epoch);
	if (!ret && c->json)
		ret = info_json(c, &pl, i, epoch);
	else if (!ret)
		info_text(c, &pl, i, epoch);
	listing_free(&pl);
	return ret;
}

/* ---- usage ---- */

/* The pool's space, read alongside a daemon if one serves it. */
struct pool_space {
	struct azb_pool_settings s;
	uint64_t used_chunks; /* allocated (mapped or in flight) over all shards */
	uint64_t used_bytes;
	uint64_t quota_bytes; /* 0: no limit */
	uint64_t fs_free_bytes;
	bool shard_low; /* a shard reached the threshold of its quota */
	bool gc_pending;
	struct thin_claim cl;
	int64_t enospc;	     /* writes the daemon refused for lack of space; -1: not served */
	bool broken;	     /* the daemon's shard had a metadata write fail */
	bool fs_readonly;    /* the pool's filesystem is mounted read-only */
	uint64_t meta_bytes; /* RocksDB files on disk: pool.db and every shard's */
};

/* The sum of " KEY N" over a served pool's "thin status" lines. */
static int64_t status_sum(const char *out, const char *key)
{
	size_t klen = strlen(key);
	int64_t total = 0;
	const char *p;

	for (p = out; (p = strstr(p, key)); p += klen)
		total += strtoll(p + klen, NULL, 10);
	return total;
}

/* From a served pool's daemon: refused writes, and whether a shard is broken. */
static void served_status(struct pool_space *ps)
{
	char *out = NULL, err[256];

	ps->enospc = -1;
	if (!ps->cl.held || !ps->cl.served.nr ||
	    thin_control(ps->cl.served.dev[0].id, "thin status", &out, err, sizeof(err))) {
		free(out);
		return;
	}
	ps->enospc = status_sum(out, " enospc ");
	ps->broken = status_sum(out, " broken ") > 0;
	free(out);
}

/* Bytes of the files under dir (one level of subdirectories: RocksDB's). */
static uint64_t dir_bytes(const char *dir)
{
	char path[PATH_MAX + 300];
	struct dirent *de;
	struct stat st;
	uint64_t total = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.' && !stat(path, &st) && S_ISREG(st.st_mode))
			total += (uint64_t)st.st_blocks * 512;
	}
	closedir(d);
	return total;
}

/* The metadata's space: pool.db and shard-K/meta.db. */
static uint64_t meta_bytes(const struct thin_ctx *c, uint32_t nr_shards)
{
	char path[PATH_MAX + 32];
	uint64_t total;

	snprintf(path, sizeof(path), "%s/pool.db", c->dir);
	total = dir_bytes(path);
	for (uint32_t k = 0; k < nr_shards; k++) {
		snprintf(path, sizeof(path), "%s/shard-%u/meta.db", c->dir, k);
		total += dir_bytes(path);
	}
	return total;
}

static int space_from_shards(const struct thin_ctx *c, struct pool_space *ps,
			     uint64_t pool_gc_generation)
{
	struct azb_shard *shards[AZB_SHARDS_MAX];
	struct azb_shard_usage u;
	int ret = 0;

	if (thin_shards_open(c, &ps->s, true, shards))
		return 1;
	for (uint32_t k = 0; k < ps->s.nr_shards && !ret; k++) {
		if (azb_shard_usage(shards[k], &u)) {
			ret = thin_fail(c, "%s", azb_shard_error(shards[k]));
			break;
		}
		ps->used_chunks += u.allocated_chunks;
		ps->quota_bytes += u.quota_chunks * ps->s.chunk_size;
		ps->shard_low |= u.low_space;
		ps->gc_pending |= azb_shard_gc_generation(shards[k]) < pool_gc_generation;
	}
	thin_shards_close(shards, ps->s.nr_shards);
	ps->used_bytes = ps->used_chunks * ps->s.chunk_size;
	return ret;
}

static int space_load(const struct thin_ctx *c, struct pool_space *ps)
{
	struct azb_pool *pool;
	struct statvfs fs;
	uint64_t gen;

	memset(ps, 0, sizeof(*ps));
	thin_probe(c, &ps->cl);
	if (thin_pool_open_ro(c, &pool))
		return 1;
	ps->s = *azb_pool_get_settings(pool);
	gen = azb_pool_gc_generation(pool);
	azb_pool_close(pool);
	if (space_from_shards(c, ps, gen))
		return 1;
	if (statvfs(c->dir, &fs))
		return thin_fail(c, "statvfs %s: %s", c->dir, strerror(errno));
	ps->fs_free_bytes = (uint64_t)fs.f_bavail * fs.f_frsize;
	ps->fs_readonly = fs.f_flag & ST_RDONLY;
	ps->meta_bytes = meta_bytes(c, ps->s.nr_shards);
	served_status(ps);
	return 0;
}

/* Room for new chunks: the filesystem's free space less the reserve, within any limit. */
static uint64_t space_free(const struct pool_space *ps)
{
	uint64_t fs_room =
		ps->fs_free_bytes > AZB_DISK_RESERVE ? ps->fs_free_bytes - AZB_DISK_RESERVE : 0;
	uint64_t quota_left;

	if (!ps->quota_bytes)
		return fs_room;
	quota_left = ps->quota_bytes > ps->used_bytes ? ps->quota_bytes - ps->used_bytes : 0;
	return quota_left < fs_room ? quota_left : fs_room;
}

/* Use in percent of what the pool could hold: used / (used + free). */
static double space_use_percent(const struct pool_space *ps)
{
	uint64_t total = ps->used_bytes + space_free(ps);

	return total ? 100.0 * (double)ps->used_bytes / (double)total : 0.0;
}

static bool space_low(const struct pool_space *ps)
{
	return ps->shard_low || space_use_percent(ps) >= ps->s.low_space_percent;
}

/*
 * The pool's mode, as dm-thin's status gives it: needs-check when a
 * served shard had a metadata write fail (its worker must be restarted,
 * then azbuse-thin check), read-only when its filesystem is, out-of-space
 * when not one more chunk fits (new writes fail with ENOSPC; overwrites of
 * what is mapped go on), low-space at the threshold, else ok.
 */
static const char *space_mode(const struct pool_space *ps)
{
	if (ps->broken)
		return "needs-check";
	if (ps->fs_readonly)
		return "read-only";
	if (space_free(ps) < ps->s.chunk_size)
		return "out-of-space";
	return space_low(ps) ? "low-space" : "ok";
}

static int usage_json(const struct thin_ctx *c, const struct pool_space *ps)
{
	json_object *doc = thin_json_doc(c), *served = tj_array();
	char dev[32];

	tj_u64(doc, "chunk_size", ps->s.chunk_size);
	tj_u64(doc, "used_bytes", ps->used_bytes);
	tj_u64(doc, "used_chunks", ps->used_chunks);
	tj_u64(doc, "free_bytes", space_free(ps));
	tj_u64(doc, "limit_bytes", ps->s.limit_bytes);
	tj_u64(doc, "fs_free_bytes", ps->fs_free_bytes);
	tj_real(doc, "use_percent", space_use_percent(ps), 1);
	tj_u64(doc, "low_space_percent", ps->s.low_space_percent);
	tj_bool(doc, "low_space", space_low(ps));
	tj_bool(doc, "gc_pending", ps->gc_pending);
	tj_str(doc, "mode", space_mode(ps));
	tj_i64(doc, "enospc", ps->enospc);
	tj_u64(doc, "metadata_bytes", ps->meta_bytes);
	for (uint32_t i = 0; ps->cl.held && i < ps->cl.served.nr; i++) {
		snprintf(dev, sizeof(dev), AZBUSE_BLOCK_PREFIX "%u", ps->cl.served.dev[i].id);
		tj_append(served, tj_string(dev));
	}
	tj_add(doc, "served_by", served);
	return tj_print(doc, "azbuse-thin");
}

static void usage_text(const struct thin_ctx *c, const struct pool_space *ps)
{
	char used[32], chunk[32], avail[32], quota[32], holder[256];

	printf("%-12s %s\n", "pool", c->dir);
	printf("%-12s %s\n", "mode", space_mode(ps));
	printf("%-12s %s (%llu chunks of %s)\n", "used",
	       azbuse_format_size(ps->used_bytes, used, sizeof(used)),
	       (unsigned long long)ps->used_chunks,
	       azbuse_format_size(ps->s.chunk_size, chunk, sizeof(chunk)));
	azbuse_format_size(space_free(ps), avail, sizeof(avail));
	if (ps->s.limit_bytes)
		printf("%-12s %s (limit %s, or the filesystem's free space less 64 MiB kept "
		       "for metadata, if less)\n",
		       "free", avail, azbuse_format_size(ps->s.limit_bytes, quota, sizeof(quota)));
	else
		printf("%-12s %s (no limit: the filesystem's free space less 64 MiB kept for "
		       "metadata)\n",
		       "free", avail);
	printf("%-12s warn at %u%% use (now %.1f%%)\n", "low space", ps->s.low_space_percent,
	       space_use_percent(ps));
	printf("%-12s %s on disk (RocksDB: pool.db and %u shard(s); 64 MiB of the filesystem "
	       "kept for it)\n",
	       "metadata", azbuse_format_size(ps->meta_bytes, used, sizeof(used)), ps->s.nr_shards);
	if (ps->gc_pending)
		printf("%-12s pending: freed space is not reclaimed yet (azbuse-thin gc)\n", "gc");
	if (ps->cl.held) {
		thin_holder_text(&ps->cl, holder, sizeof(holder));
		printf("%-12s %s (figures as of now)\n", "served by", holder);
	}
	if (ps->enospc >= 0)
		printf("%-12s %lld write(s) refused for lack of space since the workers started\n",
		       "ENOSPC", (long long)ps->enospc);
	if (space_low(ps))
		printf("WARNING: pool %s is low on space: %.1f%% used, threshold %u%%; %s left\n",
		       c->dir, space_use_percent(ps), ps->s.low_space_percent, avail);
}

int thin_cmd_usage(struct thin_ctx *c, const struct thin_args *a)
{
	struct pool_space ps;

	(void)a;
	if (space_load(c, &ps))
		return 1;
	if (c->json)
		return usage_json(c, &ps);
	usage_text(c, &ps);
	return 0;
}
