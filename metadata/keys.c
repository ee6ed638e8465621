// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * keys.c - encodings of the metadata store's keys and values: big-endian
 * numbers so RocksDB's bytewise order is numeric order, a one-byte kind
 * prefix per key, a version byte at the start of every value.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "meta_internal.h"

void azb_put_be64(void *p, uint64_t v)
{
	unsigned char *b = p;

	for (int i = 7; i >= 0; i--) {
		b[i] = v & 0xff;
		v >>= 8;
	}
}

uint64_t azb_get_be64(const void *p)
{
	const unsigned char *b = p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

void azb_put_be32(void *p, uint32_t v)
{
	unsigned char *b = p;

	for (int i = 3; i >= 0; i--) {
		b[i] = v & 0xff;
		v >>= 8;
	}
}

uint32_t azb_get_be32(const void *p)
{
	const unsigned char *b = p;
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = (v << 8) | b[i];
	return v;
}

void azb_map_key_encode(char *k, uint64_t ns, uint64_t chunk, uint64_t epoch)
{
	k[0] = AZB_K_MAP;
	azb_put_be64(k + 1, ns);
	azb_put_be64(k + 9, chunk);
	azb_put_be64(k + 17, epoch);
}

int azb_map_key_decode(const char *k, size_t klen, struct azb_map_key *mk)
{
	if (klen != AZB_MAP_KEY_LEN || k[0] != AZB_K_MAP)
		return -EINVAL;
	mk->ns = azb_get_be64(k + 1);
	mk->chunk = azb_get_be64(k + 9);
	mk->epoch = azb_get_be64(k + 17);
	return 0;
}

void azb_phys_value_encode(char *v, uint64_t phys)
{
	v[0] = AZB_VALUE_V1;
	azb_put_be64(v + 1, phys);
}

int azb_phys_value_decode(const char *v, size_t vlen, uint64_t *phys)
{
	if (vlen != 9 || v[0] != AZB_VALUE_V1)
		return -EINVAL;
	*phys = azb_get_be64(v + 1);
	return 0;
}

size_t azb_map_value_encode(char *v, uint64_t phys, uint64_t valid, int layered)
{
	azb_phys_value_encode(v, phys);
	if (valid == AZB_VALID_ALL)
		return 9;
	azb_put_be64(v + 9, valid);
	if (!layered)
		return 17;
	v[17] = AZB_MAP_F_LAYERED;
	return AZB_MAP_VALUE_MAX;
}

int azb_map_value_decode(const char *v, size_t vlen, struct azb_map_ent *e)
{
	e->valid = AZB_VALID_ALL;
	e->layered = 0;
	if (vlen == 9)
		return azb_phys_value_decode(v, vlen, &e->phys);
	if ((vlen != 17 && vlen != AZB_MAP_VALUE_MAX) ||
	    (vlen == AZB_MAP_VALUE_MAX && v[17] != AZB_MAP_F_LAYERED))
		return -EINVAL;
	e->valid = azb_get_be64(v + 9);
	e->layered = vlen == AZB_MAP_VALUE_MAX;
	return azb_phys_value_decode(v, 9, &e->phys);
}

void azb_free_key_encode(char *k, uint64_t phys)
{
	k[0] = AZB_K_FREE;
	azb_put_be64(k + 1, phys);
}

void azb_ns_key_encode(char *k, char kind, uint64_t ns)
{
	k[0] = kind;
	azb_put_be64(k + 1, ns);
}

void azb_counter_key_encode(char *k, char id)
{
	k[0] = AZB_K_COUNTER;
	k[1] = id;
}

void azb_u64_value_encode(char *v, uint64_t x)
{
	v[0] = AZB_VALUE_V1;
	azb_put_be64(v + 1, x);
}

int azb_u64_value_decode(const char *v, size_t vlen, uint64_t *x)
{
	return azb_phys_value_decode(v, vlen, x);
}

void azb_batch_put_u64(rocksdb_writebatch_t *b, const char *key, size_t klen, uint64_t x)
{
	char v[9];

	azb_u64_value_encode(v, x);
	rocksdb_writebatch_put(b, key, klen, v, sizeof(v));
}

void azb_batch_put_counter(rocksdb_writebatch_t *b, char id, uint64_t x)
{
	char k[2];

	azb_counter_key_encode(k, id);
	azb_batch_put_u64(b, k, sizeof(k), x);
}

void azb_settings_encode(char *v, const struct azb_pool_settings *s)
{
	v[0] = AZB_VALUE_V1;
	azb_put_be64(v + 1, s->chunk_size);
	azb_put_be64(v + 9, s->stripe_size);
	azb_put_be64(v + 17, s->limit_bytes);
	azb_put_be64(v + 25, s->meta_cache_bytes);
	azb_put_be32(v + 33, s->nr_shards);
	azb_put_be32(v + 37, s->low_space_percent);
	azb_put_be64(v + 41, s->map_cache_bytes);
}

int azb_settings_decode(const char *v, size_t vlen, struct azb_pool_settings *s)
{
	if ((vlen != AZB_SETTINGS_VALUE_LEN && vlen != AZB_SETTINGS_VALUE_LEN_V0) ||
	    v[0] != AZB_VALUE_V1)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->chunk_size = azb_get_be64(v + 1);
	s->stripe_size = azb_get_be64(v + 9);
	s->limit_bytes = azb_get_be64(v + 17);
	s->meta_cache_bytes = azb_get_be64(v + 25);
	s->nr_shards = azb_get_be32(v + 33);
	s->low_space_percent = azb_get_be32(v + 37);
	s->map_cache_bytes =
		vlen == AZB_SETTINGS_VALUE_LEN ? azb_get_be64(v + 41) : AZB_MAP_CACHE_DEFAULT;
	return 0;
}

size_t azb_volume_encode(char *v, const struct azb_volume *vol)
{
	size_t plen = strnlen(vol->parent, AZB_NAME_MAX);

	v[0] = AZB_VALUE_V1;
	v[1] = (char)vol->kind;
	azb_put_be64(v + 2, vol->size_bytes);
	azb_put_be64(v + 10, vol->ns);
	azb_put_be64(v + 18, vol->epoch);
	azb_put_be64(v + 26, (uint64_t)vol->created);
	v[34] = (char)plen;
	memcpy(v + 35, vol->parent, plen);
	/* flags, only when set: a pool that never used them reads as before */
	if (!vol->flags)
		return 35 + plen;
	v[35 + plen] = (char)vol->flags;
	return 36 + plen;
}

int azb_volume_decode(const char *name, size_t namelen, const char *v, size_t vlen,
		      struct azb_volume *vol)
{
	size_t plen;

	if (namelen > AZB_NAME_MAX || vlen < 35 || v[0] != AZB_VALUE_V1)
		return -EINVAL;
	plen = (unsigned char)v[34];
	if (plen > AZB_NAME_MAX || (vlen != 35 + plen && vlen != 36 + plen))
		return -EINVAL;
	memset(vol, 0, sizeof(*vol));
	memcpy(vol->name, name, namelen);
	vol->kind = (unsigned char)v[1];
	vol->size_bytes = azb_get_be64(v + 2);
	vol->ns = azb_get_be64(v + 10);
	vol->epoch = azb_get_be64(v + 18);
	vol->created = (int64_t)azb_get_be64(v + 26);
	memcpy(vol->parent, v + 35, plen);
	if (vlen == 36 + plen)
		vol->flags = (unsigned char)v[35 + plen];
	if (vol->flags & ~AZB_VOL_F_ACTIVE)
		return -EINVAL;
	if (vol->kind < AZB_VOL_VOLUME || vol->kind > AZB_VOL_CLONE)
		return -EINVAL;
	return 0;
}

/* v1 parent_ns parent_epoch epoch head_alive(1) nr_truncs(4) {epoch chunks}... */
#define NS_FIXED_LEN (1 + 8 * 3 + 1 + 4)

char *azb_ns_encode(const struct azb_ns_rec *r, size_t *len)
{
	size_t n = NS_FIXED_LEN + (size_t)r->ns.nr_truncs * 16;
	char *v = malloc(n);

	if (!v)
		return NULL;
	v[0] = AZB_VALUE_V1;
	azb_put_be64(v + 1, r->ns.parent_ns);
	azb_put_be64(v + 9, r->ns.parent_epoch);
	azb_put_be64(v + 17, r->ns.epoch);
	v[25] = r->ns.head_alive ? 1 : 0;
	azb_put_be32(v + 26, r->ns.nr_truncs);
	for (uint32_t i = 0; i < r->ns.nr_truncs; i++) {
		azb_put_be64(v + NS_FIXED_LEN + i * 16, r->truncs[i].epoch);
		azb_put_be64(v + NS_FIXED_LEN + i * 16 + 8, r->truncs[i].chunks);
	}
	*len = n;
	return v;
}

int azb_ns_decode(uint64_t id, const char *v, size_t vlen, struct azb_ns_rec *r)
{
	uint32_t nr;

	memset(r, 0, sizeof(*r));
	if (vlen < NS_FIXED_LEN || v[0] != AZB_VALUE_V1)
		return -EINVAL;
	nr = azb_get_be32(v + 26);
	if (vlen != NS_FIXED_LEN + (size_t)nr * 16)
		return -EINVAL;
	r->ns.id = id;
	r->ns.parent_ns = azb_get_be64(v + 1);
	r->ns.parent_epoch = azb_get_be64(v + 9);
	r->ns.epoch = azb_get_be64(v + 17);
	r->ns.head_alive = v[25] ? 1 : 0;
	r->ns.nr_truncs = nr;
	if (!nr)
		return 0;
	r->truncs = calloc(nr, sizeof(*r->truncs));
	if (!r->truncs)
		return -ENOMEM;
	for (uint32_t i = 0; i < nr; i++) {
		r->truncs[i].epoch = azb_get_be64(v + NS_FIXED_LEN + i * 16);
		r->truncs[i].chunks = azb_get_be64(v + NS_FIXED_LEN + i * 16 + 8);
	}
	return 0;
}
