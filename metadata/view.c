// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * view.c - what pool.db implies for the shards: the view of a volume or
 * snapshot (its chain of (ns, max_epoch) links) and the holds on every
 * namespace (snapshots, live children, live heads) that GC and the write path
 * decisions use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta_internal.h"

struct ns_epoch {
	uint64_t ns;
	uint64_t epoch;
};

static int cmp_ns_epoch(const void *a, const void *b)
{
	const struct ns_epoch *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	if (x->epoch != y->epoch)
		return x->epoch < y->epoch ? -1 : 1;
	return 0;
}

/* needed[i]: namespace i has a hold: a live head, a snapshot, or a needed child. */
static void mark_needed(const struct azb_ns_rec *recs, uint32_t nr, const struct azb_volume *vols,
			uint32_t nv, uint8_t *needed)
{
	int changed = 1;

	for (uint32_t i = 0; i < nr; i++)
		needed[i] = recs[i].ns.head_alive;
	for (uint32_t v = 0; v < nv; v++) {
		const struct azb_ns_rec *r = azb_ns_recs_find(recs, nr, vols[v].ns);

		if (r && vols[v].kind == AZB_VOL_SNAPSHOT)
			needed[r - recs] = 1;
	}
	while (changed) {
		changed = 0;
		for (uint32_t i = 0; i < nr; i++) {
			const struct azb_ns_rec *p;

			if (!needed[i] || !recs[i].ns.parent_ns)
				continue;
			p = azb_ns_recs_find(recs, nr, recs[i].ns.parent_ns);
			if (p && !needed[p - recs]) {
				needed[p - recs] = 1;
				changed = 1;
			}
		}
	}
}

/* Every non-head hold as (ns, epoch), sorted and unique. */
static int collect_holds(const struct azb_ns_rec *recs, uint32_t nr, const struct azb_volume *vols,
			 uint32_t nv, const uint8_t *needed, struct ns_epoch **out, uint32_t *nout)
{
	struct ns_epoch *h = calloc((size_t)nr + nv + 1, sizeof(*h));
	uint32_t n = 0, u = 0;

	if (!h)
		return -ENOMEM;
	for (uint32_t v = 0; v < nv; v++)
		if (vols[v].kind == AZB_VOL_SNAPSHOT)
			h[n++] = (struct ns_epoch){ vols[v].ns, vols[v].epoch };
	for (uint32_t i = 0; i < nr; i++)
		if (needed[i] && recs[i].ns.parent_ns)
			h[n++] = (struct ns_epoch){ recs[i].ns.parent_ns, recs[i].ns.parent_epoch };
	qsort(h, n, sizeof(*h), cmp_ns_epoch);
	for (uint32_t i = 0; i < n; i++)
		if (!u || cmp_ns_epoch(&h[u - 1], &h[i]))
			h[u++] = h[i];
	*out = h;
	*nout = u;
	return 0;
}

/* Fill holds from the loaded pool; takes over the recs' truncations. */
static int build_holds(struct azb_ns_rec *recs, uint32_t nr, const struct azb_volume *vols,
		       uint32_t nv, struct azb_holds *holds)
{
	uint8_t *needed = calloc((size_t)nr + 1, 1);
	struct ns_epoch *h = NULL;
	uint32_t nh = 0, j = 0;
	int ret = needed ? 0 : -ENOMEM;

	memset(holds, 0, sizeof(*holds));
	if (!ret) {
		mark_needed(recs, nr, vols, nv, needed);
		ret = collect_holds(recs, nr, vols, nv, needed, &h, &nh);
	}
	if (!ret && nr) {
		holds->ns = calloc(nr, sizeof(*holds->ns));
		ret = holds->ns ? 0 : -ENOMEM;
	}
	for (uint32_t i = 0; !ret && i < nr; i++) {
		struct azb_ns_holds *nh_i = &holds->ns[i];
		uint32_t first;

		holds->nr++;
		nh_i->ns = recs[i].ns.id;
		nh_i->head_alive = recs[i].ns.head_alive;
		nh_i->parent_ns = recs[i].ns.parent_ns;
		nh_i->truncs = recs[i].truncs;
		nh_i->nr_truncs = recs[i].ns.nr_truncs;
		recs[i].truncs = NULL;
		while (j < nh && h[j].ns < nh_i->ns)
			j++;
		for (first = j; j < nh && h[j].ns == nh_i->ns; j++)
			;
		if (j == first)
			continue;
		nh_i->epochs = malloc((j - first) * sizeof(uint64_t));
		if (!nh_i->epochs) {
			ret = -ENOMEM;
			break;
		}
		for (uint32_t k = first; k < j; k++)
			nh_i->epochs[nh_i->nr_epochs++] = h[k].epoch;
		nh_i->max_snapshot_hold = nh_i->epochs[nh_i->nr_epochs - 1];
	}
	free(h);
	free(needed);
	if (ret)
		azb_holds_free(holds);
	return ret;
}

void azb_holds_free(struct azb_holds *holds)
{
	for (uint32_t i = 0; holds->ns && i < holds->nr; i++) {
		free(holds->ns[i].epochs);
		free(holds->ns[i].truncs);
	}
	free(holds->ns);
	memset(holds, 0, sizeof(*holds));
}

const struct azb_ns_holds *azb_holds_find(const struct azb_holds *holds, uint64_t ns)
{
	uint32_t lo = 0, hi = holds->nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (holds->ns[mid].ns == ns)
			return &holds->ns[mid];
		if (holds->ns[mid].ns < ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct pool_state {
	struct azb_ns_rec *recs;
	uint32_t nr;
	struct azb_volume *vols;
	uint32_t nv;
};

static int load_state(struct azb_pool *p, struct pool_state *st, char *err, size_t errlen)
{
	int ret;

	memset(st, 0, sizeof(*st));
	ret = azb_pool_load_ns(p, &st->recs, &st->nr, err, errlen);
	if (ret)
		return ret;
	ret = azb_pool_load_volumes(p, &st->vols, &st->nv, err, errlen);
	if (ret) {
		azb_ns_recs_free(st->recs, st->nr);
		st->recs = NULL;
	}
	return ret;
}

static void free_state(struct pool_state *st)
{
	azb_ns_recs_free(st->recs, st->nr);
	free(st->vols);
}

int azb_pool_get_holds(struct azb_pool *pool, struct azb_holds *holds, char *err, size_t errlen)
{
	struct pool_state st;
	int ret = load_state(pool, &st, err, errlen);

	memset(holds, 0, sizeof(*holds));
	if (ret)
		return ret;
	ret = build_holds(st.recs, st.nr, st.vols, st.nv, holds);
	holds->gc_generation = pool->gc_generation;
	free_state(&st);
	return ret;
}

void azb_view_free(struct azb_view *view)
{
	free(view->links);
	free(view->truncs);
	memset(view, 0, sizeof(*view));
}

/* Append a link for (rec, max_epoch) with the truncations it sees. */
static int view_add_link(struct azb_view *v, const struct azb_ns_rec *r, uint64_t max_epoch)
{
	struct azb_view_link *l;
	struct azb_trunc *t;

	l = realloc(v->links, (v->nr_links + 1) * sizeof(*l));
	if (!l)
		return -ENOMEM;
	v->links = l;
	l = &v->links[v->nr_links++];
	memset(l, 0, sizeof(*l));
	l->ns = r->ns.id;
	l->max_epoch = max_epoch;
	l->trunc_first = v->nr_truncs;
	if (!r->ns.nr_truncs)
		return 0;
	t = realloc(v->truncs, (v->nr_truncs + r->ns.nr_truncs) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	v->truncs = t;
	for (uint32_t i = 0; i < r->ns.nr_truncs; i++) {
		if (r->truncs[i].epoch > max_epoch)
			continue;
		v->truncs[v->nr_truncs++] = r->truncs[i];
		l->nr_truncs++;
	}
	return 0;
}

static int view_build_links(struct azb_pool *p, const struct pool_state *st,
			    const struct azb_volume *vol, struct azb_view *v, char *err,
			    size_t errlen)
{
	uint64_t ns = vol->ns;
	uint64_t max = vol->kind == AZB_VOL_SNAPSHOT ? vol->epoch : AZB_EPOCH_HEAD;

	while (ns) {
		const struct azb_ns_rec *r = azb_ns_recs_find(st->recs, st->nr, ns);
		int ret;

		if (!r || v->nr_links > st->nr) {
			azb_seterr(err, errlen,
				   "pool %s: namespace chain of \"%s\" is broken at %llu "
				   "(corrupt metadata)",
				   p->dir, vol->name, (unsigned long long)ns);
			return -EIO;
		}
		ret = view_add_link(v, r, max);
		if (ret)
			return ret;
		ns = r->ns.parent_ns;
		max = r->ns.parent_epoch;
	}
	return 0;
}

static int view_set_write(struct pool_state *st, const struct azb_volume *vol, struct azb_view *v)
{
	const struct azb_ns_rec *r = azb_ns_recs_find(st->recs, st->nr, vol->ns);
	const struct azb_ns_holds *h;
	struct azb_holds holds;
	int ret;

	if (vol->kind == AZB_VOL_SNAPSHOT)
		return 0;
	v->write_ns = vol->ns;
	v->write_epoch = r->ns.epoch;
	ret = build_holds(st->recs, st->nr, st->vols, st->nv, &holds);
	if (ret)
		return ret;
	h = azb_holds_find(&holds, vol->ns);
	v->write_max_hold = h ? h->max_snapshot_hold : 0;
	azb_holds_free(&holds);
	return 0;
}

int azb_pool_get_view(struct azb_pool *pool, const char *name, struct azb_view *view, char *err,
		      size_t errlen)
{
	struct azb_volume vol;
	struct pool_state st;
	int ret;

	memset(view, 0, sizeof(*view));
	ret = azb_pool_read_volume(pool, name, &vol, err, errlen);
	if (ret)
		return ret;
	ret = load_state(pool, &st, err, errlen);
	if (ret)
		return ret;
	view->size_bytes = vol.size_bytes;
	ret = view_build_links(pool, &st, &vol, view, err, errlen);
	if (!ret)
		ret = view_set_write(&st, &vol, view);
	free_state(&st);
	if (ret)
		azb_view_free(view);
	return ret;
}
