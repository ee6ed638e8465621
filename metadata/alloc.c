// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * alloc.c - physical chunk allocation in a shard: a high-water mark plus a
 * free set ('f' keys), lowest free chunk first, a quota, chunks reserved in
 * memory between plan and commit of a write, freeing with a punched hole, and
 * no reuse of a chunk a discard freed before that freeing is durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta_internal.h"

int azb_alloc_is_inflight(const struct azb_shard *sh, uint64_t phys)
{
	for (uint32_t i = 0; i < sh->nr_inflight; i++)
		if (sh->inflight[i].phys == phys)
			return 1;
	return 0;
}

static struct azb_inflight *inflight_find(struct azb_shard *sh, uint64_t phys)
{
	for (uint32_t i = 0; i < sh->nr_inflight; i++)
		if (sh->inflight[i].phys == phys)
			return &sh->inflight[i];
	return NULL;
}

static void inflight_remove(struct azb_shard *sh, uint64_t phys)
{
	struct azb_inflight *f = inflight_find(sh, phys);

	if (f)
		*f = sh->inflight[--sh->nr_inflight];
}

static int inflight_add(struct azb_shard *sh, uint64_t phys, uint32_t from_free)
{
	if (sh->nr_inflight == sh->cap_inflight) {
		uint32_t cap = sh->cap_inflight ? sh->cap_inflight * 2 : 64;
		struct azb_inflight *q = realloc(sh->inflight, cap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		sh->inflight = q;
		sh->cap_inflight = cap;
	}
	sh->inflight[sh->nr_inflight++] = (struct azb_inflight){ phys, from_free, 0 };
	return 0;
}

static uint32_t inflight_from_free(const struct azb_shard *sh)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < sh->nr_inflight; i++)
		n += sh->inflight[i].from_free;
	return n;
}

static int is_unsynced(const struct azb_shard *sh, uint64_t phys)
{
	for (uint32_t i = 0; i < sh->nr_unsynced; i++)
		if (sh->unsynced[i] == phys)
			return 1;
	return 0;
}

/* Lowest chunk of the free set that is neither reserved nor waiting for a
 * sync: 0, or -ENOENT. */
static int take_free(struct azb_shard *sh, uint64_t *phys)
{
	struct azb_iter i;
	int ret = -ENOENT, iret;

	azb_iter_prefix(&i, &sh->rdb, AZB_K_FREE);
	for (; rocksdb_iter_valid(i.it); rocksdb_iter_next(i.it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(i.it, &klen);
		uint64_t p;

		if (klen != AZB_FREE_KEY_LEN)
			continue;
		p = azb_get_be64(k + 1);
		if (!azb_alloc_is_inflight(sh, p) && !is_unsynced(sh, p)) {
			*phys = p;
			ret = 0;
			break;
		}
	}
	iret = azb_iter_close(&i, sh->what, sh->err, sizeof(sh->err));
	return iret ? iret : ret;
}

/* Make the data file cover chunks 0..chunks-1, growing it by DATA_GROW
 * (sparse) so that not every new chunk costs an ftruncate; a data device's
 * region only has to hold them. */
#define DATA_GROW (64ULL << 20) /* a multiple of every chunk size */

static int data_cover(struct azb_shard *sh, uint64_t chunks)
{
	uint64_t need = chunks * sh->s.chunk_size;

	if (need <= sh->data_size)
		return 0;
	if (sh->raw)
		return azb_datadev_cover(sh, chunks);
	need = (need + DATA_GROW - 1) / DATA_GROW * DATA_GROW;
	if (ftruncate(sh->data_fd, (off_t)need) != 0) {
		int ret = -errno;

		azb_seterr(sh->err, sizeof(sh->err), "%s: cannot extend data file: %s", sh->what,
			   strerror(errno));
		return ret;
	}
	sh->data_size = need;
	return 0;
}

int azb_alloc_reserve(struct azb_shard *sh, uint64_t *phys)
{
	int ret;

	if (sh->quota_chunks && sh->allocated + sh->nr_inflight >= sh->quota_chunks) {
		azb_seterr(sh->err, sizeof(sh->err), "%s: out of space (quota of %llu chunks used)",
			   sh->what, (unsigned long long)sh->quota_chunks);
		return -ENOSPC;
	}
	ret = -ENOENT;
	if (sh->free_count > inflight_from_free(sh) + sh->nr_unsynced)
		ret = take_free(sh, phys);
	/* A free chunk was punched when freed, but one written by a plan whose
	 * commit a crash lost was not: punch it again, a new chunk reads zeros.
	 * (A data device's new chunk has no valid sub-block instead.) */
	if (!ret && !sh->raw)
		ret = azb_punch_chunk(sh, *phys);
	if (!ret)
		return inflight_add(sh, *phys, 1);
	if (ret != -ENOENT)
		return ret;
	ret = data_cover(sh, sh->next_high_water + 1);
	if (ret)
		return ret;
	ret = inflight_add(sh, sh->next_high_water, 0);
	if (ret)
		return ret;
	*phys = sh->next_high_water++;
	return 0;
}

void azb_batch_put_alloc_counters(struct azb_shard *sh, rocksdb_writebatch_t *b)
{
	char k[2], v[AZB_SC_STATE_LEN];

	azb_counter_key_encode(k, AZB_SC_STATE);
	v[0] = AZB_VALUE_V1;
	azb_put_be64(v + 1, sh->allocated);
	azb_put_be64(v + 9, sh->high_water);
	azb_put_be64(v + 17, sh->free_count);
	azb_put_be64(v + 25, sh->entries);
	azb_put_be64(v + 33, sh->tombstones);
	rocksdb_writebatch_put(b, k, sizeof(k), v, sizeof(v));
}

static void batch_put_free(rocksdb_writebatch_t *b, uint64_t phys)
{
	char k[AZB_FREE_KEY_LEN], v = AZB_VALUE_V1;

	azb_free_key_encode(k, phys);
	rocksdb_writebatch_put(b, k, sizeof(k), &v, 1);
}

/* Record high water as `top` + 1; chunks between the old high water and
 * `top` go to the free set (those still reserved now come from it). */
static void raise_high_water(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t top)
{
	for (uint64_t q = sh->high_water; q < top; q++) {
		struct azb_inflight *f = inflight_find(sh, q);

		if (f && f->from_free)
			continue;
		batch_put_free(b, q);
		sh->free_count++;
		if (f)
			f->from_free = 1;
	}
	if (top + 1 > sh->high_water)
		sh->high_water = top + 1;
}

void azb_alloc_commit(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t phys)
{
	struct azb_inflight *f = inflight_find(sh, phys);

	if (f && f->from_free) {
		char k[AZB_FREE_KEY_LEN];

		azb_free_key_encode(k, phys);
		rocksdb_writebatch_delete(b, k, sizeof(k));
		sh->free_count--;
	} else {
		raise_high_water(sh, b, phys);
	}
	sh->allocated++;
	inflight_remove(sh, phys);
}

int azb_punch_chunk(struct azb_shard *sh, uint64_t phys)
{
	off_t off = (off_t)(phys * sh->s.chunk_size), len = (off_t)sh->s.chunk_size;

	if (fallocate(sh->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0)
		return 0;
	/* a data device: unmapped where it can, else left as it is (a new
	 * chunk's data is only what its mapping says is valid) */
	if (sh->raw)
		return 0;
	/* (never through a data device's page cache: the module writes around it) */
	if (errno == EOPNOTSUPP && !sh->raw) {
		void *zero = calloc(1, (size_t)len);
		ssize_t n = zero ? pwrite(sh->data_fd, zero, (size_t)len, off) : -1;

		free(zero);
		if (n == len)
			return 0;
	}
	azb_seterr(sh->err, sizeof(sh->err), "%s: cannot free chunk %llu: %s", sh->what,
		   (unsigned long long)phys, strerror(errno));
	return errno ? -errno : -EIO;
}

int azb_alloc_free(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t phys)
{
	int ret = azb_punch_chunk(sh, phys);

	if (ret)
		return ret;
	batch_put_free(b, phys);
	sh->free_count++;
	if (sh->allocated)
		sh->allocated--;
	return 0;
}

int azb_alloc_free_unsynced(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t phys)
{
	int ret;

	/* Were the batch lost in a crash, the entry would own the chunk again:
	 * it must not hold another chunk's data by then. */
	if (sh->nr_unsynced == AZB_UNSYNCED_FREES_MAX) {
		ret = azb_shard_sync_wal(sh);
		if (ret)
			return ret;
	}
	ret = azb_alloc_free(sh, b, phys);
	if (!ret)
		sh->unsynced[sh->nr_unsynced++] = phys;
	return ret;
}

int azb_alloc_abort(struct azb_shard *sh, uint64_t phys)
{
	struct azb_inflight *f = inflight_find(sh, phys);
	rocksdb_writebatch_t *b;
	int ret;

	if (!f)
		return -EINVAL;
	if (f->from_free) {
		inflight_remove(sh, phys); /* (punched when next taken) */
		return 0;
	}
	/* It may hold data: the next plan to get it must find zeros. */
	ret = azb_punch_chunk(sh, phys);
	if (ret)
		return ret;
	if (phys + 1 == sh->next_high_water) {
		sh->next_high_water--;
		inflight_remove(sh, phys);
		return 0;
	}
	/* A reserved chunk in the middle: record it (and those below) as free. */
	inflight_remove(sh, phys);
	b = rocksdb_writebatch_create();
	raise_high_water(sh, b, phys);
	batch_put_free(b, phys);
	sh->free_count++;
	azb_batch_put_alloc_counters(sh, b);
	ret = azb_shard_write(sh, b);
	rocksdb_writebatch_destroy(b);
	return ret;
}

int azb_bitmap_init(struct azb_bitmap *bm, uint64_t n)
{
	bm->n = n;
	bm->w = calloc(n / 64 + 1, sizeof(uint64_t));
	return bm->w ? 0 : -ENOMEM;
}

void azb_bitmap_free(struct azb_bitmap *bm)
{
	free(bm->w);
	bm->w = NULL;
}

int azb_bitmap_set(struct azb_bitmap *bm, uint64_t i)
{
	uint64_t m = 1ULL << (i % 64);
	int old = !!(bm->w[i / 64] & m);

	bm->w[i / 64] |= m;
	return old;
}

int azb_bitmap_test(const struct azb_bitmap *bm, uint64_t i)
{
	return !!(bm->w[i / 64] & (1ULL << (i % 64)));
}
