// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * settings.c - pool settings (defaults, validation, the metadata RAM bound),
 * the default pool directory, the chunk-to-shard rule and volume name rules;
 * and the error text helper every file uses (here, free of RocksDB, for
 * tools that link no more than this).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_internal.h"

#define STRIPE_DEFAULT (1ULL << 20)

void azb_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

void azb_pool_settings_default(struct azb_pool_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->chunk_size = AZB_CHUNK_DEFAULT;
	s->stripe_size = STRIPE_DEFAULT;
	s->nr_shards = AZB_SHARDS_DEFAULT;
	s->low_space_percent = AZB_LOW_SPACE_DEFAULT;
	s->meta_cache_bytes = AZB_META_CACHE_DEFAULT;
	s->map_cache_bytes = AZB_MAP_CACHE_DEFAULT;
}

int azb_pool_settings_check(struct azb_pool_settings *s, char *err, size_t errlen)
{
	if (!is_pow2(s->chunk_size) || s->chunk_size < AZB_CHUNK_MIN ||
	    s->chunk_size > AZB_CHUNK_MAX) {
		azb_seterr(err, errlen, "chunk size %llu is not a power of two from 4K to 1M",
			   (unsigned long long)s->chunk_size);
		return -EINVAL;
	}
	if (!s->stripe_size)
		s->stripe_size = s->chunk_size > STRIPE_DEFAULT ? s->chunk_size : STRIPE_DEFAULT;
	if (!is_pow2(s->stripe_size) || s->stripe_size < s->chunk_size ||
	    s->stripe_size > (1ULL << 40)) {
		azb_seterr(err, errlen,
			   "stripe size %llu is not a power of two multiple of the chunk size",
			   (unsigned long long)s->stripe_size);
		return -EINVAL;
	}
	if (s->nr_shards < 1 || s->nr_shards > AZB_SHARDS_MAX) {
		azb_seterr(err, errlen, "%u shards: must be 1 to %d", s->nr_shards, AZB_SHARDS_MAX);
		return -EINVAL;
	}
	if (s->low_space_percent < 1 || s->low_space_percent > 100) {
		azb_seterr(err, errlen, "low space threshold %u%%: must be 1 to 100",
			   s->low_space_percent);
		return -EINVAL;
	}
	if (s->meta_cache_bytes < (1ULL << 20)) {
		azb_seterr(err, errlen, "metadata cache must be at least 1M");
		return -EINVAL;
	}
	if (s->map_cache_bytes &&
	    (s->map_cache_bytes < AZB_MAP_CACHE_MIN || s->map_cache_bytes > AZB_MAP_CACHE_MAX)) {
		azb_seterr(err, errlen, "map cache of %llu bytes: must be 0 or 64K to 64G",
			   (unsigned long long)s->map_cache_bytes);
		return -EINVAL;
	}
	if (s->limit_bytes && s->limit_bytes / s->nr_shards < s->chunk_size) {
		azb_seterr(err, errlen, "limit %llu is less than one chunk per shard",
			   (unsigned long long)s->limit_bytes);
		return -EINVAL;
	}
	return 0;
}

uint64_t azb_meta_ram_bound(const struct azb_pool_settings *s)
{
	uint64_t memtables = AZB_META_MEMTABLE_BYTES * AZB_META_MEMTABLES;

	/* + one memtable per shard that its lookup iterator may pin */
	return s->nr_shards * (s->meta_cache_bytes + s->map_cache_bytes + memtables +
			       AZB_META_MEMTABLE_BYTES) +
	       AZB_POOL_DB_CACHE_BYTES + memtables;
}

const char *azb_pool_default_dir(void)
{
	const char *dir = getenv("AZBUSE_THIN_POOL");

	return dir && *dir ? dir : AZB_POOL_DIR_DEFAULT;
}

uint32_t azb_chunk_shard(const struct azb_pool_settings *s, uint64_t chunk)
{
	uint64_t per_stripe = s->stripe_size / s->chunk_size;

	return (uint32_t)((chunk / per_stripe) % s->nr_shards);
}

static int name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int azb_name_check(const char *name)
{
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	if (n < 1 || n > AZB_NAME_MAX || name[0] == '.' || name[0] == '-')
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!name_char_ok(name[i]))
			return -EINVAL;
	return 0;
}

const char *azb_vol_kind_name(uint32_t kind)
{
	switch (kind) {
	case AZB_VOL_VOLUME:
		return "volume";
	case AZB_VOL_SNAPSHOT:
		return "snapshot";
	case AZB_VOL_CLONE:
		return "clone";
	default:
		return "unknown";
	}
}
