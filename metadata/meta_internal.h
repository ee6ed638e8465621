/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meta_internal.h - what the metadata store's files share: the RocksDB handle
 * wrapper, key and value encodings, the pool and shard structs. Not for users
 * of the library (tests include it to inject inconsistencies).
 *
 * Shard DB keys (big-endian numbers):
 *   'm' ns(8) L(8) epoch(8) -> v1 P(8) [V(8) [F(1)]]  mapping entry (P =
 *                                                AZB_TOMBSTONE: a discard tombstone,
 *                                                owns no chunk; V: the sub-blocks of P
 *                                                that hold data, when not all do; F:
 *                                                AZB_MAP_F_LAYERED, the others read
 *                                                what lies beneath the entry, not zeros)
 *   'f' P(8)                -> v1                free chunk below high water
 *   'n' ns(8)               -> v1 count(8)       entries of ns in this shard
 *   'c' 'S'                 -> v1 allocated(8) high_water(8) free(8) entries(8)
 *                              tombstones(8)   shard counters, one record so a
 *                                                commit writes one key for them
 *   'c' id(1)               -> v1 value(8)       other counters (AZB_SC_GC_GEN)
 *   's'                     -> v1 settings       shard index and pool geometry
 * Pool DB keys:
 *   's'                     -> v1 settings
 *   'v' name                -> v1 volume record
 *   'n' ns(8)               -> v1 namespace record (with its truncations)
 *   'c' id(1)               -> v1 value(8)       counters (AZB_PC_*)
 */
#ifndef AZBUSE_META_INTERNAL_H
#define AZBUSE_META_INTERNAL_H

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <rocksdb/c.h>

#include "meta.h"

#define AZB_VALUE_V1 1
#define AZB_VALID_UNIT_MIN 4096U /* the smallest sub-block of AZB_VALID_ALL's bits */

#define AZB_K_MAP 'm'
#define AZB_K_FREE 'f'
#define AZB_K_NSCOUNT 'n'
#define AZB_K_COUNTER 'c'
#define AZB_K_SETTINGS 's'
#define AZB_K_VOLUME 'v'
#define AZB_K_NS 'n'
#define AZB_K_DATADEV 'D' /* a raw pool shard's region of the data device */

/* Shard counters. */
#define AZB_SC_STATE 'S'
#define AZB_SC_STATE_LEN (1 + 8 * 5)
#define AZB_SC_GC_GEN 'g'
/* Before AZB_SC_STATE (read and removed by the first read-write open). */
#define AZB_SC_OLD_ALLOCATED 'a'
#define AZB_SC_OLD_HIGH_WATER 'h'
#define AZB_SC_OLD_FREE 'f'
#define AZB_SC_OLD_ENTRIES 'e'
/* Pool counters. */
#define AZB_PC_NEXT_NS 'n'
#define AZB_PC_GC_GEN 'g'

#define AZB_MAP_KEY_LEN 25
#define AZB_FREE_KEY_LEN 9
#define AZB_NS_KEY_LEN 9
#define AZB_ERR_LEN 256

/* P of a tombstone entry: reads as zeros, hides older entries and parents. */
#define AZB_TOMBSTONE UINT64_MAX

/* ---- error messages ---- */

void azb_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- RocksDB handle: every object in one struct, one destroy path ---- */

struct azb_rdb {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *table;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wopts;
	rocksdb_readoptions_t *ropts;
	char path[PATH_MAX];
};

/* azb_rdb_open flags */
#define AZB_RDB_SYNC 1	       /* every write synced */
#define AZB_RDB_BUFFERED_WAL 2 /* writes reach the WAL file only on a flush (manual_wal_flush) */

/* Open (create: must not exist yet) the DB at path, with AZB_RDB_* flags.
 * `what` names it in messages ("pool /x", "shard 3 of /x"). */
int azb_rdb_open(struct azb_rdb *r, const char *path, const char *what, uint64_t cache_bytes,
		 int create, unsigned flags, char *err, size_t errlen);
/* Open the existing DB at path read-only, without its lock (a writer may have
 * it open): the state as of now, WAL included. All its files stay open. */
int azb_rdb_open_readonly(struct azb_rdb *r, const char *path, const char *what,
			  uint64_t cache_bytes, char *err, size_t errlen);
void azb_rdb_close(struct azb_rdb *r);
/* Write the batch (destroyed by the caller). */
int azb_rdb_write(struct azb_rdb *r, rocksdb_writebatch_t *b, char *err, size_t errlen);
/* *val (free with rocksdb_free) or -ENOENT. */
int azb_rdb_get(struct azb_rdb *r, const void *key, size_t klen, char **val, size_t *vlen,
		char *err, size_t errlen);
/* Get a v1 u64 value (counters); missing -> *v = 0. */
int azb_rdb_get_u64(struct azb_rdb *r, const void *key, size_t klen, uint64_t *v, char *err,
		    size_t errlen);
/* Turn a RocksDB error string into -errno and a message, then free it. */
int azb_rdb_error(char *rerr, const char *what, const char *doing, char *err, size_t errlen);

/* An iterator over [lo, hi) with its read options. The C API keeps only a
 * pointer to the bounds, so they live here, as long as the iterator. */
#define AZB_BOUND_MAX 32
struct azb_iter {
	rocksdb_iterator_t *it;
	rocksdb_readoptions_t *ro;
	char lo[AZB_BOUND_MAX];
	char hi[AZB_BOUND_MAX];
};

/* Bounds of at most AZB_BOUND_MAX bytes each. */
void azb_iter_open(struct azb_iter *i, struct azb_rdb *r, const void *lo, size_t lolen,
		   const void *hi, size_t hilen);
/* Check rocksdb_iter_get_error, then destroy: 0 or -EIO. */
int azb_iter_close(struct azb_iter *i, const char *what, char *err, size_t errlen);
/* Iterate all keys starting with one byte `prefix`. */
void azb_iter_prefix(struct azb_iter *i, struct azb_rdb *r, char prefix);

/* ---- encodings (keys.c) ---- */

void azb_put_be64(void *p, uint64_t v);
uint64_t azb_get_be64(const void *p);
void azb_put_be32(void *p, uint32_t v);
uint32_t azb_get_be32(const void *p);

struct azb_map_key {
	uint64_t ns;
	uint64_t chunk;
	uint64_t epoch;
};

void azb_map_key_encode(char *k, uint64_t ns, uint64_t chunk, uint64_t epoch);
int azb_map_key_decode(const char *k, size_t klen, struct azb_map_key *mk);
/* value of a mapping entry: v1 P */
void azb_phys_value_encode(char *v, uint64_t phys);
int azb_phys_value_decode(const char *v, size_t vlen, uint64_t *phys);

/*
 * A mapping entry as read. A layered entry is a copy-on-write that copied
 * nothing: its chunk holds only the sub-blocks written since (valid), and
 * the others read what the view reads beneath the entry (its older entry or
 * its parent's), which is never itself layered.
 */
struct azb_map_ent {
	uint64_t epoch;
	uint64_t phys;	  /* AZB_TOMBSTONE: a discard tombstone */
	uint64_t valid;	  /* the sub-blocks of phys that hold data */
	uint32_t layered; /* the others read what lies beneath (else zeros) */
	uint32_t pad0;
};

#define AZB_MAP_F_LAYERED 1
/* A mapping's value: v1 P(8), then V(8) when only some sub-blocks of the
 * chunk hold data (valid != AZB_VALID_ALL), then F(1) when the entry is
 * layered. Returns its length. */
#define AZB_MAP_VALUE_MAX 18
size_t azb_map_value_encode(char *v, uint64_t phys, uint64_t valid, int layered);
/* Fills e's phys, valid and layered (not its epoch). */
int azb_map_value_decode(const char *v, size_t vlen, struct azb_map_ent *e);
void azb_free_key_encode(char *k, uint64_t phys);
void azb_ns_key_encode(char *k, char kind, uint64_t ns);
void azb_counter_key_encode(char *k, char id);
void azb_u64_value_encode(char *v, uint64_t x);
int azb_u64_value_decode(const char *v, size_t vlen, uint64_t *x);
void azb_batch_put_u64(rocksdb_writebatch_t *b, const char *key, size_t klen, uint64_t x);
void azb_batch_put_counter(rocksdb_writebatch_t *b, char id, uint64_t x);

/* Pool settings value (the first length: before map_cache_bytes). */
#define AZB_SETTINGS_VALUE_LEN_V0 (1 + 8 * 4 + 4 * 2)
#define AZB_SETTINGS_VALUE_LEN (AZB_SETTINGS_VALUE_LEN_V0 + 8)
void azb_settings_encode(char *v, const struct azb_pool_settings *s);
int azb_settings_decode(const char *v, size_t vlen, struct azb_pool_settings *s);

/* Volume record. */
#define AZB_VOLUME_VALUE_MAX (1 + 1 + 8 * 4 + 1 + AZB_NAME_MAX + 1) /* ... flags */
size_t azb_volume_encode(char *v, const struct azb_volume *vol);
int azb_volume_decode(const char *name, size_t namelen, const char *v, size_t vlen,
		      struct azb_volume *vol);

/* Namespace record with its truncations (truncs malloc'ed, free()). */
struct azb_ns_rec {
	struct azb_ns ns;
	struct azb_trunc *truncs;
};

/* *len set, returns malloc'ed value or NULL. */
char *azb_ns_encode(const struct azb_ns_rec *r, size_t *len);
int azb_ns_decode(uint64_t id, const char *v, size_t vlen, struct azb_ns_rec *r);

/* ---- pool ---- */

struct azb_pool {
	struct azb_rdb rdb;
	struct azb_pool_settings s;
	uint64_t next_ns;
	uint64_t gc_generation;
	int readonly;
	int pad0;
	char dir[PATH_MAX];
};

/* 0, or -EROFS with a message if the pool is open read-only. */
int azb_pool_writable(struct azb_pool *p, char *err, size_t errlen);

int azb_pool_read_volume(struct azb_pool *p, const char *name, struct azb_volume *vol, char *err,
			 size_t errlen);
void azb_batch_put_volume(rocksdb_writebatch_t *b, const struct azb_volume *vol);
int azb_pool_read_ns(struct azb_pool *p, uint64_t id, struct azb_ns_rec *r, char *err,
		     size_t errlen);
int azb_batch_put_ns(rocksdb_writebatch_t *b, const struct azb_ns_rec *r);
/* Every namespace (sorted by id) / volume of the pool; free with the helpers. */
int azb_pool_load_ns(struct azb_pool *p, struct azb_ns_rec **recs, uint32_t *nr, char *err,
		     size_t errlen);
void azb_ns_recs_free(struct azb_ns_rec *recs, uint32_t nr);
const struct azb_ns_rec *azb_ns_recs_find(const struct azb_ns_rec *recs, uint32_t nr, uint64_t id);
int azb_pool_load_volumes(struct azb_pool *p, struct azb_volume **vols, uint32_t *nr, char *err,
			  size_t errlen);
int azb_pool_write(struct azb_pool *p, rocksdb_writebatch_t *b, char *err, size_t errlen);

/* ---- shard ---- */

/* A chunk handed out by plan_write and not yet committed or aborted. */
struct azb_inflight {
	uint64_t phys;
	uint32_t from_free; /* 1: its 'f' key is still in the DB */
	uint32_t pad0;
};

/* Entries of one namespace in the shard (the 'n' records, kept in memory),
 * and a bound on their chunks: no entry has L >= top (read at open, raised by
 * every new entry), so a write beyond it needs no DB read. */
struct azb_ns_count {
	uint64_t ns;
	uint64_t count;
	uint64_t top;
};

/*
 * The map cache (mapcache.c): per (ns, L), what the shard's DB holds for it,
 * as facts independent of any view: its newest entries (epoch, P or
 * AZB_TOMBSTONE), newest first, and whether those are all of them (n == 0 and
 * complete: no entry). Kept exact by the shard's own writes (commit, discard,
 * GC): the handle is the only writer of its DB. Views are applied to the
 * facts on every call, so a view whose epochs moved is answered right.
 * Fixed-size nodes, chained hash buckets, CLOCK eviction. Misses are read
 * through one reused tailing iterator (sh->lit), which sees every write made
 * before each of its seeks.
 */
#define AZB_MAP_NODE_ENTRIES 2

struct azb_map_node {
	uint64_t ns; /* 0: unused (namespaces start at 1) */
	uint64_t chunk;
	uint64_t epoch[AZB_MAP_NODE_ENTRIES]; /* newest first */
	uint64_t phys[AZB_MAP_NODE_ENTRIES];
	uint64_t valid[AZB_MAP_NODE_ENTRIES];
	uint32_t next;	  /* next node of the bucket or free list, 1-based; 0: none */
	uint8_t n;	  /* newest entries known, 0..AZB_MAP_NODE_ENTRIES */
	uint8_t complete; /* they are all the entries of (ns, chunk) */
	uint8_t ref;	  /* CLOCK: used since the hand last passed */
	uint8_t layered;  /* bit i: entry i is layered */
};
_Static_assert(sizeof(struct azb_map_node) == 72, "map cache node");

struct azb_map_cache {
	struct azb_map_node *nodes; /* cap nodes; NULL: no cache */
	uint32_t *buckets;	    /* heads, 1-based node indexes */
	uint32_t cap;
	uint32_t used; /* nodes handed out so far (0..used-1) */
	uint32_t mask; /* buckets - 1 */
	uint32_t hand; /* CLOCK hand */
	uint32_t free_head;
	uint32_t pad0;
	uint64_t hits, misses, evictions, db_reads;
};

/* Chunks of a namespace known to have never had an entry (seen.c). */
#define AZB_SEEN_SEG_CHUNKS 4096 /* chunks per segment: a 512-byte bitmap */
#define AZB_SEEN_MAX_SEGS 16384	 /* per shard: about 8.5 MiB */

struct azb_seen_seg;
struct azb_seen {
	struct azb_seen_seg **slots; /* open addressing, cap slots (a power of 2) */
	uint64_t cap;
	uint64_t nr;
	uint32_t hold; /* > 0: a batch holds puts the DB does not show: learn nothing */
	uint32_t pad0;
	uint64_t learned;
};

/* A shard's region of a raw data device (datadev.c), in chunks of the device. */
struct azb_datadev {
	uint64_t pool_id;
	uint64_t first_chunk;
	uint64_t end_chunk;
	uint64_t zeroed_chunk; /* (pools before valid masks: how far they zeroed; unused) */
};

/* Bytes at the start of a data device for its header. */
#define AZB_DATADEV_HEAD (1ULL << 20)

struct azb_shard {
	struct azb_rdb rdb;
	struct azb_pool_settings s;
	uint32_t index;
	int data_fd;
	/* Committed counters, as in the DB. */
	uint64_t allocated;
	uint64_t high_water;
	uint64_t free_count;
	uint64_t entries;
	uint64_t gc_generation;
	uint64_t tombstones;
	/* In memory only. */
	uint64_t next_high_water; /* >= high_water: includes in-flight chunks */
	uint64_t data_size; /* bytes of the data file (raw: region) chunks may be given from */
	uint64_t quota_chunks;
	int raw; /* data on a block device, in region dd */
	struct azb_datadev dd;
	int broken; /* a write failed: the in-memory counters may be ahead of the DB */
	int readonly;
	int wal_buffered; /* azb_shard_open_buffered: writes wait in memory for a WAL flush */
	int wal_dirty;	  /* ... and some do */
	struct azb_inflight *inflight;
	uint32_t nr_inflight;
	uint32_t cap_inflight;
	struct azb_ns_count *nsc; /* by ns */
	uint32_t nr_nsc;
	uint32_t cap_nsc;
	/* Chunks freed by the write path (discard) since the last WAL sync: not
	 * reused before it, lest an entry that a crash brings back see new data. */
	uint64_t unsynced[AZB_UNSYNCED_FREES_MAX];
	uint32_t nr_unsynced;
	/* The lookup iterator (see the map cache). */
	int lit_open;
	int nsc_suspect; /* the counts do not add up to `entries`: not used to skip reads */
	struct azb_iter lit;
	struct azb_map_cache mc;
	struct azb_seen seen;
	char what[PATH_MAX + 32];
	char err[AZB_ERR_LEN];
};

/* Create shard `index`'s directory, DB and data file (pool init). */
int azb_shard_create(const char *dir, const struct azb_pool_settings *s, uint32_t index,
		     const char *data_dev, char *err, size_t errlen);
/* Entry of `ns` for `chunk` with the largest epoch <= max_epoch: 0, or
 * -ENOENT; e->phys may be AZB_TOMBSTONE. Read from the DB (a new iterator). */
int azb_shard_find_entry(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
			 struct azb_map_ent *e);
/* What `view` reads for `chunk` from its link `first` on (m->phys
 * AZB_PHYS_NONE: zeros). */
int azb_view_lookup_from(struct azb_shard *sh, const struct azb_view *view, uint32_t first,
			 uint64_t chunk, struct azb_chunk_map *m);
/* What `view` reads beneath the entry of epoch `epoch` in its link `link`
 * (older entries of that link's namespace, then the later links): m->phys
 * AZB_PHYS_NONE for zeros. m->base is always AZB_PHYS_NONE. */
int azb_view_lookup_beneath(struct azb_shard *sh, const struct azb_view *view, uint32_t link,
			    uint64_t epoch, uint64_t chunk, struct azb_chunk_map *m);
/* 0, or -EROFS / -EIO with the message set: the shard may be written. */
int azb_shard_writable(struct azb_shard *sh);
/* Chunks covered by the view's size (the last one may be partial). */
uint64_t azb_view_chunks(const struct azb_view *v, uint64_t chunk_size);
/* Largest truncation epoch of a view link hiding `chunk` (0: none). */
uint64_t azb_link_cut(const struct azb_view *v, const struct azb_view_link *l, uint64_t chunk);
/* Same over a truncation list, counting those with epoch <= max_epoch. */
uint64_t azb_truncs_cut(const struct azb_trunc *t, uint32_t nr, uint64_t max_epoch, uint64_t chunk);
/* Write the batch; on failure the shard is broken and its map cache emptied. */
int azb_shard_write(struct azb_shard *sh, rocksdb_writebatch_t *b);

/* datadev.c: a pool's data on a raw block device */
/* Write the pool header on the device at path (opened exclusively; refused
 * if it holds one already or is too small); its new pool id in *pool_id. */
int azb_datadev_claim(const char *path, const struct azb_pool_settings *s, uint64_t *pool_id,
		      char *err, size_t errlen);
/* Clear the header again (a pool init that failed after claiming it). */
void azb_datadev_unclaim(const char *path);
/* Shard index's region of the claimed device at path (nothing zeroed yet). */
int azb_datadev_layout(const char *path, uint32_t index, struct azb_datadev *d, char *err,
		       size_t errlen);
#define AZB_DATADEV_RECORD_LEN (1 + 4 * 8)
void azb_datadev_encode(char *v, const struct azb_datadev *d);
/* A shard whose data_fd is a block device: its region checked against the
 * device's header. */
int azb_datadev_open(struct azb_shard *sh, const char *path, char *err, size_t errlen);
/* 0 if chunks below `chunks` are in the shard's region, else -ENOSPC. */
int azb_datadev_cover(struct azb_shard *sh, uint64_t chunks);
/* 1 if the shard surely has no entry of (ns, chunk) (from the counts). */
int azb_shard_ns_empty(const struct azb_shard *sh, uint64_t ns, uint64_t chunk);
/* Add `delta` (+1: an entry for `chunk`, -1) to ns's entry count, in memory
 * and in the batch. */
/* The same in memory only; azb_shard_ns_count_put adds ns's count to a batch
 * (a batch of many entries of one ns writes it once). */
int azb_shard_ns_count_change(struct azb_shard *sh, uint64_t ns, uint64_t chunk, int64_t delta);
void azb_shard_ns_count_put(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t ns);
int azb_shard_ns_count_add(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t ns,
			   uint64_t chunk, int64_t delta);
void azb_batch_put_ns_count(rocksdb_writebatch_t *b, uint64_t ns, uint64_t count);
/* WAL sync without the read-only check (GC, discard). */
int azb_shard_sync_wal(struct azb_shard *sh);

/* mapcache.c */
/* (Re)make the cache of about `bytes` (0: none; at least 16 nodes otherwise,
 * which tests use to force evictions). */
int azb_map_cache_init(struct azb_shard *sh, uint64_t bytes);
/* Bytes the map cache's arena takes (nodes and buckets). */
uint64_t azb_map_cache_bytes(const struct azb_shard *sh);
void azb_map_cache_destroy(struct azb_shard *sh);
/* Forget every node and drop the iterator: the cache then knows nothing. */
void azb_map_cache_clear(struct azb_shard *sh);
/* Like azb_shard_find_entry, through the cache. */
int azb_map_find(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
		 uint64_t *epoch, uint64_t *phys);
/* The same, the whole entry. */
int azb_map_find_ent(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t max_epoch,
		     struct azb_map_ent *e);
/* The shard wrote entry (ns, chunk, e->epoch) -> e (was_empty: the first
 * entry of (ns, chunk), the cache may learn it) / deleted it. */
void azb_map_note_put(struct azb_shard *sh, uint64_t ns, uint64_t chunk,
		      const struct azb_map_ent *e, int was_empty);
void azb_map_note_delete(struct azb_shard *sh, uint64_t ns, uint64_t chunk, uint64_t epoch);
/* The lookup iterator (tailing: it sees every write made before each seek). */
rocksdb_iterator_t *azb_map_iter(struct azb_shard *sh);

/* seen.c */
/* 1 if (ns, chunk) surely never had an entry in the shard (its segment was
 * learned and no put since has named it). */
int azb_seen_never(const struct azb_shard *sh, uint64_t ns, uint64_t chunk);
/* A put of (ns, chunk) was added to a batch. */
void azb_seen_note(struct azb_shard *sh, uint64_t ns, uint64_t chunk);
/* A lookup of (ns, chunk) found no entry: learn its segment, if there is room
 * and no batch is held (best effort: nothing is learned on an error). */
void azb_seen_learn(struct azb_shard *sh, uint64_t ns, uint64_t chunk);
/* Forget every segment. */
void azb_seen_clear(struct azb_shard *sh);

/* alloc.c */
int azb_alloc_reserve(struct azb_shard *sh, uint64_t *phys);
int azb_alloc_is_inflight(const struct azb_shard *sh, uint64_t phys);
/* Add to the batch what makes a reserved chunk allocated (and forget it). */
void azb_alloc_commit(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t phys);
/* Give back a reserved chunk (writes the DB if needed). */
int azb_alloc_abort(struct azb_shard *sh, uint64_t phys);
/* Put the shard counters (allocated, high water, free, entries, tombstones). */
void azb_batch_put_alloc_counters(struct azb_shard *sh, rocksdb_writebatch_t *b);
/* Punch the chunk's hole and add its freeing to the batch. */
int azb_alloc_free(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t phys);
/* Same for a chunk that a visible entry owned: not reused before the next WAL
 * sync (syncs first when AZB_UNSYNCED_FREES_MAX are waiting). */
int azb_alloc_free_unsynced(struct azb_shard *sh, rocksdb_writebatch_t *b, uint64_t phys);
int azb_punch_chunk(struct azb_shard *sh, uint64_t phys);

/* A bitmap of chunks 0..n-1. */
struct azb_bitmap {
	uint64_t n;
	uint64_t *w;
};

int azb_bitmap_init(struct azb_bitmap *bm, uint64_t n);
void azb_bitmap_free(struct azb_bitmap *bm);
/* Sets bit i; returns its previous value. */
int azb_bitmap_set(struct azb_bitmap *bm, uint64_t i);
int azb_bitmap_test(const struct azb_bitmap *bm, uint64_t i);

#endif /* AZBUSE_META_INTERNAL_H */
