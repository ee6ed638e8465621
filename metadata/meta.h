/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * meta.h - the thin-provisioning metadata store: pools, volumes, snapshots,
 * clones and the per-shard chunk mappings, kept in RocksDB (C API).
 *
 * A pool is a directory:
 *   DIR/pool.db/          pool RocksDB: settings, volumes by name, namespaces
 *   DIR/shard-K/meta.db/  shard RocksDB: mappings, free chunks, counters
 *   DIR/shard-K/data      sparse file holding shard K's physical chunks, or
 *                         (a raw pool) a symbolic link to the data device,
 *                         where shard K has a region (datadev.c)
 *   DIR/daemon.lock       flock held by the process serving the pool
 * (azb_pool_default_dir(): $AZBUSE_THIN_POOL, else /var/lib/azbuse/pool).
 *
 * Logical chunk L (byte offset / chunk_size) of any volume lives in shard
 * ((L * chunk_size) / stripe_size) % nr_shards. Physical chunk P of shard K
 * is at byte offset P * chunk_size of DIR/shard-K/data (on a data device,
 * shard K's chunk numbers start at its region's first chunk).
 *
 * Snapshots are O(1) by epochs. Every writable volume or clone owns a
 * namespace (ns); a mapping entry (ns, L, epoch) -> P owns P exclusively and
 * is stamped with the ns's epoch at write time. Taking a snapshot records
 * (ns, epoch) and bumps the ns's epoch. A view is a chain of (ns, max_epoch)
 * links; a lookup takes, in the first link that has one, the entry with the
 * largest epoch <= max_epoch. A shrink records a truncation in the ns that
 * hides older entries beyond the new end (see struct azb_trunc). A discard
 * that must hide something older writes a tombstone: an entry that owns no
 * chunk and reads as zeros (the lookup stops there).
 *
 * Served volumes: snapshot, rollback, resize and delete change what a volume's
 * view is (epoch, namespace, truncations, holds). The process serving it must
 * make the change itself, or refresh its view (azb_pool_get_view) before its
 * next write; a write with a stale view may land where a snapshot sees it or
 * where a shrink hides it. Holds given to GC must likewise be current.
 *
 * Conventions: functions return 0 or -errno. Functions taking `char *err,
 * size_t errlen` write a one-line message there on failure (err may be NULL).
 * Shard functions without it keep the message in the shard handle
 * (azb_shard_error()). A pool or shard handle is used by one thread at a time.
 *
 * Read-only handles (azb_pool_open_readonly, azb_shard_open_readonly) are for
 * tools while a daemon serves the pool: they take no lock, see the state as of
 * their open (WAL included), and every mutating call on them returns -EROFS.
 *
 * Metadata RAM bound (see azb_meta_ram_bound()):
 *   nr_shards * (meta_cache_bytes + map_cache_bytes
 *                + AZB_META_MEMTABLE_BYTES * (AZB_META_MEMTABLES + 1))
 *   + AZB_POOL_DB_CACHE_BYTES + AZB_META_MEMTABLE_BYTES * AZB_META_MEMTABLES
 * i.e. with the defaults (2 shards, 8 MiB block cache, 16 MiB map cache):
 * 2 * (8 + 16 + 2*3) + 1 + 2*2 = 65 MiB, plus RocksDB's fixed per-process
 * overhead (threads, a few hundred KiB per DB). Index and filter blocks are
 * charged to the block cache, open files are limited (AZB_META_MAX_OPEN_FILES
 * per DB). The extra memtable per shard is a flushed one that the shard's
 * lookup iterator may keep alive until its next use.
 */
#ifndef AZBUSE_META_H
#define AZBUSE_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits and defaults ---- */

#define AZB_CHUNK_MIN (4ULL << 10)
#define AZB_CHUNK_MAX (1ULL << 20)
#define AZB_CHUNK_DEFAULT (64ULL << 10)
#define AZB_SHARDS_MAX 64
#define AZB_SHARDS_DEFAULT 2
#define AZB_LOW_SPACE_DEFAULT 90
#define AZB_META_CACHE_DEFAULT (8ULL << 20)
#define AZB_MAP_CACHE_DEFAULT (16ULL << 20) /* map_cache_bytes */
#define AZB_MAP_CACHE_MIN (64ULL << 10)	    /* unless 0 (no map cache) */
#define AZB_MAP_CACHE_MAX (64ULL << 30)
#define AZB_META_MEMTABLE_BYTES (2ULL << 20) /* write_buffer_size of every DB */
#define AZB_META_MEMTABLES 2		     /* max_write_buffer_number of every DB */
/*
 * New chunks fail with ENOSPC while the pool's filesystem has less than this
 * free, so that RocksDB always has room to record what was written (a
 * metadata write failing on a full disk would stop the shard); `usage`
 * counts it as used.
 */
#define AZB_DISK_RESERVE (64ULL << 20)
#define AZB_POOL_DB_CACHE_BYTES (1ULL << 20) /* block cache of pool.db */
#define AZB_META_MAX_OPEN_FILES 64
#define AZB_UNSYNCED_FREES_MAX 64 /* chunks freed by discards before a shard syncs itself */
#define AZB_VOLUME_SIZE_ALIGN 4096ULL
#define AZB_VOLUME_SIZE_MAX (1ULL << 60)
#define AZB_NAME_MAX 63
#define AZB_POOL_DIR_DEFAULT "/var/lib/azbuse/pool"

#define AZB_EPOCH_HEAD UINT64_MAX /* max_epoch of a writable head's link */
#define AZB_PHYS_NONE UINT64_MAX  /* "no physical chunk" (unmapped) */
/*
 * Which sub-blocks of a physical chunk hold written data, one bit each
 * (azb_valid_unit bytes, at most 64 per chunk); the rest reads as zeros.
 * On a raw data device a new chunk is not zeroed: it starts with none and
 * gains the sub-blocks written to it. AZB_VALID_ALL: the whole chunk (always
 * so with data files, whose new chunks are holes).
 */
#define AZB_VALID_ALL UINT64_MAX

/* ---- pool settings (fixed at init, stored in pool.db) ---- */

struct azb_pool_settings {
	uint64_t chunk_size;  /* power of two, AZB_CHUNK_MIN..AZB_CHUNK_MAX */
	uint64_t stripe_size; /* power-of-two multiple of chunk_size */
	uint64_t limit_bytes; /* 0: only the filesystem limits; else quota/nr_shards per shard */
	uint64_t meta_cache_bytes;  /* RocksDB block cache of each shard DB */
	uint32_t nr_shards;	    /* 1..AZB_SHARDS_MAX */
	uint32_t low_space_percent; /* 1..100: warn when a shard's quota use reaches it */
	/* In-memory cache of each shard's newest mapping entries (what lookups and
	 * write plans read): 0 (none) or AZB_MAP_CACHE_MIN..AZB_MAP_CACHE_MAX. A
	 * tool may pass a copy with a smaller value to azb_shard_open*(); pools
	 * made before this field read it as AZB_MAP_CACHE_DEFAULT. */
	uint64_t map_cache_bytes;
};
_Static_assert(sizeof(struct azb_pool_settings) == 48, "settings layout");

/* Defaults: 64 KiB chunks, 2 shards, 1 MiB stripes, no limit, 90%, 8 MiB
 * block cache, 16 MiB map cache. */
void azb_pool_settings_default(struct azb_pool_settings *s);
/* 0 or -EINVAL with the reason in err. stripe_size 0 means max(chunk_size, 1 MiB). */
int azb_pool_settings_check(struct azb_pool_settings *s, char *err, size_t errlen);
/*
 * Change what may change after init: limit_bytes, low_space_percent,
 * meta_cache_bytes, map_cache_bytes (the rest must be as they are). A
 * served pool's shards take them with azb_shard_apply_settings().
 */
struct azb_pool;
int azb_pool_set_settings(struct azb_pool *pool, const struct azb_pool_settings *s, char *err,
			  size_t errlen);
/* The metadata RAM bound above, in bytes, for these settings. */
uint64_t azb_meta_ram_bound(const struct azb_pool_settings *s);
/* Shard of logical chunk `chunk`. */
uint32_t azb_chunk_shard(const struct azb_pool_settings *s, uint64_t chunk);

/* ---- volumes and namespaces ---- */

enum azb_vol_kind {
	AZB_VOL_VOLUME = 1,   /* writable, created empty */
	AZB_VOL_SNAPSHOT = 2, /* read-only (ns, epoch) */
	AZB_VOL_CLONE = 3,    /* writable, created from a snapshot */
};

struct azb_volume {
	char name[AZB_NAME_MAX + 1];
	char parent[AZB_NAME_MAX + 1]; /* for display: snapshot's source, clone's snapshot */
	uint32_t kind;		       /* enum azb_vol_kind */
	uint32_t flags;		       /* AZB_VOL_F_* */
	uint64_t size_bytes;
	uint64_t ns;
	uint64_t epoch;	 /* snapshots: the epoch they see; 0 for volumes and clones */
	int64_t created; /* seconds since the epoch */
};

/* Served as a device whenever the pool is (azbuse-thin activate; at boot). */
#define AZB_VOL_F_ACTIVE (1u << 0)

/* A shrink of ns at epoch E to `chunks`: entries with epoch < `epoch` and
 * L >= `chunks` are hidden from every view of the ns with max_epoch >= `epoch`
 * (and so is anything behind them in parent namespaces). */
struct azb_trunc {
	uint64_t epoch;
	uint64_t chunks;
};

struct azb_ns {
	uint64_t id;
	uint64_t parent_ns; /* 0: none */
	uint64_t parent_epoch;
	uint64_t epoch; /* current head epoch, starts at 1 */
	uint32_t head_alive;
	uint32_t nr_truncs;
};

/* 0 if `name` is a valid volume name (1..63 chars of [A-Za-z0-9._-], not
 * starting with '.' or '-'), else -EINVAL. */
int azb_name_check(const char *name);
const char *azb_vol_kind_name(uint32_t kind);

/* ---- views: what a volume or snapshot reads (and where a volume writes) ---- */

struct azb_view_link {
	uint64_t ns;
	uint64_t max_epoch;   /* AZB_EPOCH_HEAD for a writable head */
	uint32_t trunc_first; /* this link's truncations: view->truncs[trunc_first..+nr_truncs) */
	uint32_t nr_truncs;   /* (only those with epoch <= max_epoch) */
};

struct azb_view {
	uint64_t size_bytes;
	uint64_t write_ns;	 /* 0 for a snapshot (read-only) */
	uint64_t write_epoch;	 /* epoch that new entries of write_ns get */
	uint64_t write_max_hold; /* highest non-head hold on write_ns (0: none) */
	uint32_t nr_links;
	uint32_t nr_truncs;
	struct azb_view_link *links; /* links[0] is the volume's own ns */
	struct azb_trunc *truncs;
};

void azb_view_free(struct azb_view *view);

/* ---- holds: what GC must keep, derived from the pool ---- */

struct azb_ns_holds {
	uint64_t ns;
	uint64_t max_snapshot_hold; /* highest non-head hold (0: none) */
	uint32_t head_alive;	    /* the head (AZB_EPOCH_HEAD) holds it */
	uint32_t nr_epochs;	    /* non-head holds: snapshots and live children */
	uint64_t *epochs;	    /* sorted ascending, unique */
	uint32_t nr_truncs;
	uint32_t pad0;
	struct azb_trunc *truncs; /* the ns's truncations, by epoch */
	uint64_t parent_ns;	  /* 0: none (a tombstone can hide nothing older) */
};

struct azb_holds {
	uint64_t gc_generation; /* pool's generation when these holds were read */
	uint32_t nr;
	uint32_t pad0;
	struct azb_ns_holds *ns; /* every namespace of the pool, sorted by ns */
};

void azb_holds_free(struct azb_holds *holds);
/* The holds of `ns`, or NULL if the pool has no such namespace. */
const struct azb_ns_holds *azb_holds_find(const struct azb_holds *holds, uint64_t ns);

/* ---- pool ---- */

struct azb_pool;

/* $AZBUSE_THIN_POOL if set and non-empty, else AZB_POOL_DIR_DEFAULT. */
const char *azb_pool_default_dir(void);

/* Create a pool in `dir` (created if missing, must hold no pool): pool.db,
 * shard DBs and data files. -EEXIST if it is already a pool. */
int azb_pool_init(const char *dir, const struct azb_pool_settings *s, char *err, size_t errlen);
/* The same with the chunks on the block device at data_dev (an absolute
 * path; opened exclusively, cut into a region per shard, its first MiB a
 * header naming the pool) instead of sparse files. */
int azb_pool_init_on(const char *dir, const struct azb_pool_settings *s, const char *data_dev,
		     char *err, size_t errlen);
/* 0 if each shard's data is there: its data file, or a block device with
 * the pool's header (the same pool for every shard); else -EIO with why. */
int azb_pool_check_data(const char *dir, const struct azb_pool_settings *s, char *err,
			size_t errlen);
/* Open pool.db only (shards are opened with azb_shard_open). -ENOENT if no
 * pool, -EIO if corrupt, -EBUSY if another process has it open. */
int azb_pool_open(const char *dir, struct azb_pool **pool, char *err, size_t errlen);
/* Open pool.db read-only, alongside a process that has it open: no lock is
 * taken, what was written before the open is seen (later changes are not).
 * Volume management calls on it return -EROFS. -ENOENT, -EIO as above. */
int azb_pool_open_readonly(const char *dir, struct azb_pool **pool, char *err, size_t errlen);
void azb_pool_close(struct azb_pool *pool);
const struct azb_pool_settings *azb_pool_get_settings(const struct azb_pool *pool);
const char *azb_pool_dir(const struct azb_pool *pool);
uint64_t azb_pool_gc_generation(const struct azb_pool *pool);

/* Volume management; each is one synced pool.db write. */
int azb_pool_create_volume(struct azb_pool *pool, const char *name, uint64_t size_bytes, char *err,
			   size_t errlen);
/* Snapshot of a volume, clone or snapshot `src`. */
int azb_pool_snapshot(struct azb_pool *pool, const char *src, const char *name, char *err,
		      size_t errlen);
/* Writable clone of snapshot `snap`. */
int azb_pool_clone(struct azb_pool *pool, const char *snap, const char *name, char *err,
		   size_t errlen);
/* Volume/clone `vol` takes the content and size of snapshot `snap`, which
 * must be of its lineage (snap's ns is vol's ns or one of its ancestors). */
int azb_pool_rollback(struct azb_pool *pool, const char *vol, const char *snap, char *err,
		      size_t errlen);
int azb_pool_delete(struct azb_pool *pool, const char *name, char *err, size_t errlen);
/* Record whether NAME is active (AZB_VOL_F_ACTIVE): served whenever the pool is. */
int azb_pool_set_active(struct azb_pool *pool, const char *name, bool active, char *err,
			size_t errlen);
/* Volumes and clones only; shrinking hides (then GC frees) what lies beyond. */
int azb_pool_resize(struct azb_pool *pool, const char *name, uint64_t size_bytes, char *err,
		    size_t errlen);

/* -ENOENT if there is no such name. */
int azb_pool_get_volume(struct azb_pool *pool, const char *name, struct azb_volume *vol, char *err,
			size_t errlen);
/* Calls fn for every volume, by name; a non-zero return of fn stops and is returned. */
int azb_pool_list(struct azb_pool *pool, int (*fn)(const struct azb_volume *vol, void *arg),
		  void *arg, char *err, size_t errlen);
/* Namespace `id` (truncations not included). */
int azb_pool_get_ns(struct azb_pool *pool, uint64_t id, struct azb_ns *ns, char *err,
		    size_t errlen);
/* The view of `name`; free with azb_view_free. */
int azb_pool_get_view(struct azb_pool *pool, const char *name, struct azb_view *view, char *err,
		      size_t errlen);
/* Holds of every namespace; free with azb_holds_free. */
int azb_pool_get_holds(struct azb_pool *pool, struct azb_holds *holds, char *err, size_t errlen);
/* Checks pool.db itself (volumes point to namespaces, parents exist, epochs
 * sane); calls report once per problem; returns the number of problems or -errno. */
int azb_pool_check(struct azb_pool *pool, void (*report)(const char *line, void *arg), void *arg,
		   char *err, size_t errlen);

/* Daemon lock: flock DIR/daemon.lock and write `pid` in it. -EBUSY (and
 * *holder = its pid, if known, else 0) if another open file holds it. On
 * success *lock_fd is the fd to pass to azb_pool_release. */
int azb_pool_hold(const char *dir, pid_t pid, int *lock_fd, pid_t *holder, char *err,
		  size_t errlen);
void azb_pool_release(int lock_fd);
/* 0 if nobody holds DIR/daemon.lock, -EBUSY (*holder set) if a process does. */
int azb_pool_held_by(const char *dir, pid_t *holder);

/* ---- shards ---- */

struct azb_shard;

/* Open shard `index` of the pool at `dir` (settings from azb_pool_get_settings).
 * -ENOENT missing, -EIO corrupt or settings mismatch, -EBUSY in use. */
int azb_shard_open(const char *dir, const struct azb_pool_settings *s, uint32_t index,
		   struct azb_shard **shard, char *err, size_t errlen);
/* Open shard `index` read-only, alongside the process serving it (see
 * azb_pool_open_readonly): it sees the mappings as of the open, including
 * those not yet synced, and its data fd is O_RDONLY. Lookups, usage, view
 * usage and check work; plan/commit/abort/discard/GC/sync return -EROFS. It
 * keeps all of its DB's files open (the writer may delete those it compacts);
 * a tool that reads once may pass settings with map_cache_bytes 0. */
int azb_shard_open_readonly(const char *dir, const struct azb_pool_settings *s, uint32_t index,
			    struct azb_shard **shard, char *err, size_t errlen);
/* Open shard `index` read-write with its mapping changes kept in memory (and
 * seen by this process) until azb_shard_flush_wal, azb_shard_sync or close
 * writes them to the WAL file: one write per batch of requests instead of
 * one per change. For the worker serving the shard, which flushes before it
 * acknowledges the batch's requests; a process killed before that loses the
 * batch, and the kernel gives its requests to the next worker. */
int azb_shard_open_buffered(const char *dir, const struct azb_pool_settings *s, uint32_t index,
			    struct azb_shard **shard, char *err, size_t errlen);
/* A served shard takes the settings that may change (azb_pool_set_settings). */
void azb_shard_apply_settings(struct azb_shard *shard, const struct azb_pool_settings *s);
void azb_shard_close(struct azb_shard *shard);
/* A buffered shard: write the mapping changes made so far to the WAL file
 * (not synced: they survive this process, not a power loss). A failure
 * leaves the shard broken (every later change fails with -EIO). */
int azb_shard_flush_wal(struct azb_shard *shard);
/* Last error message of a shard call. */
const char *azb_shard_error(const struct azb_shard *shard);
/* A metadata write failed: the shard serves no more changes until it is reopened. */
bool azb_shard_broken(const struct azb_shard *shard);
/* fd of DIR/shard-K/data (O_RDWR; O_RDONLY for a read-only shard), owned by the shard. */
int azb_shard_data_fd(const struct azb_shard *shard);
uint32_t azb_shard_index(const struct azb_shard *shard);
/* Make every mapping change made before it durable (fsyncs the WAL). Sync
 * the data file before calling it: on a FLUSH, fdatasync(data fd), then this.
 * Chunks freed by discards are reused only once a sync made their freeing
 * durable (the shard syncs itself after AZB_UNSYNCED_FREES_MAX of them). */
int azb_shard_sync(struct azb_shard *shard);

/* Physical chunk that `view` reads for logical chunk `chunk` (which must be in
 * this shard: azb_chunk_shard), or AZB_PHYS_NONE (reads zeros; also beyond the
 * view's size). */
int azb_shard_lookup(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
		     uint64_t *phys);

/*
 * All that a view reads for a logical chunk: phys's valid sub-blocks, and the
 * others from base's base_valid sub-blocks when phys is a layered chunk (a
 * copy-on-write that copied nothing: it holds only what was written since,
 * over the chunk it replaced), else zeros. A sub-block in neither reads as
 * zeros. base is never layered itself.
 */
struct azb_chunk_map {
	uint64_t phys;	     /* AZB_PHYS_NONE: all zeros */
	uint64_t valid;	     /* AZB_VALID_ALL for AZB_PHYS_NONE */
	uint64_t base;	     /* AZB_PHYS_NONE unless phys is layered */
	uint64_t base_valid; /* AZB_VALID_ALL for AZB_PHYS_NONE */
};
int azb_shard_lookup_map(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
			 struct azb_chunk_map *m);

/* Does the shard hand out chunks that are not zeroed (a raw data device)? */
int azb_shard_tracks_valid(const struct azb_shard *shard);
/* Bytes of a sub-block: 4 KiB, or chunk size / 64 for chunks over 256 KiB. */
uint32_t azb_valid_unit(const struct azb_shard *shard);
/* valid with the sub-blocks that [off, off + len) of the chunk touches, as
 * AZB_VALID_ALL once all are: the caller has written the whole of each (the
 * bytes the range leaves out of a sub-block that held no data: zeros). */
uint64_t azb_valid_add(const struct azb_shard *shard, uint64_t valid, uint64_t off, uint64_t len);
/* Is valid a mask the shard could have written (bits within its chunk size)? */
int azb_valid_ok(const struct azb_shard *shard, uint64_t valid);
/* Is every byte of [off, off + len) of the chunk in a valid sub-block? */
int azb_valid_covers(const struct azb_shard *shard, uint64_t valid, uint64_t off, uint64_t len);

/* What azb_shard_lookup_map says, and whether a write of the chunk would go
 * in place (*in_place 1: phys is the view's own chunk, which no snapshot or
 * clone sees), without planning one. */
int azb_shard_resolve(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
		      struct azb_chunk_map *m, int *in_place);

/*
 * Chunks of namespace `ns` whose newest entry is layered (candidates to
 * complete), from chunk *cursor on: at most `cap` into chunks (*n of them),
 * reading at most max_keys entries; *cursor moves past what was read.
 * Returns 1 when the namespace's end was reached, 0 if there is more, or
 * -errno.
 */
int azb_shard_find_layered(struct azb_shard *shard, uint64_t ns, uint64_t *cursor,
			   uint32_t max_keys, uint64_t *chunks, uint32_t cap, uint32_t *n);

/*
 * Writing a chunk: plan, write the data at plan.phys, set plan.valid, then
 * commit (or abort). A new chunk (!in_place) in a data file reads as zeros:
 * chunks are punched when freed, aborted or reused from the free set, and a
 * read-write open cuts the data file back to high water, so what a plan
 * wrote before a crash lost its commit is gone. On a data device only its
 * valid sub-blocks hold data (a sub-block's data must be durable before a
 * commit that makes it valid is). The caller serializes writes and discards
 * of the same chunk. A tombstoned chunk is written like an unmapped one (a
 * new chunk, old_phys AZB_PHYS_NONE).
 *
 * What the chunk read before the write is the two layers old_phys (old_valid)
 * over old_base (old_base_valid). A new chunk over data (old_phys not
 * AZB_PHYS_NONE) is planned layered when old_phys is not layered itself:
 * the writer puts only its own sub-blocks into plan.phys (the parts of them
 * it leaves out filled from old_phys), and the rest keeps reading old_phys.
 * Over a layered old_phys (two layers) the writer copies the whole chunk
 * (both layers, then its data) and sets valid AZB_VALID_ALL; so may it in
 * any case. An in-place plan of a layered chunk has layered set and the
 * layer beneath it in old_base.
 */
struct azb_write_plan {
	uint64_t chunk;		 /* logical chunk */
	uint64_t phys;		 /* where the data goes */
	uint64_t old_phys;	 /* what the view read before (AZB_PHYS_NONE: zeros); in
				    place: phys */
	uint64_t old_valid;	 /* old_phys's sub-blocks that hold data */
	uint64_t old_base;	 /* beneath old_phys when it is layered, else AZB_PHYS_NONE */
	uint64_t old_base_valid; /* old_base's sub-blocks that hold data */
	uint64_t ns;		 /* entry being written: (ns, chunk, epoch) */
	uint64_t epoch;
	uint64_t cur_valid; /* phys's before the write (a new chunk's: none, or all of a hole) */
	uint64_t valid;	    /* phys's after it: set by the writer (azb_valid_add), committed */
	uint32_t in_place;  /* 1: phys is already this volume's own chunk, nothing to commit
			       unless valid grew */
	uint32_t layered;   /* 1: phys's sub-blocks outside valid read the layer beneath it
			       (old_phys for a new chunk, old_base in place), not zeros */
};

/* -EROFS for a read-only view, -EINVAL beyond its size, -ENOSPC when the
 * shard's quota is used up. */
int azb_shard_plan_write(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk,
			 struct azb_write_plan *plan);
/* Record the mapping of a new chunk (no-op when in_place). */
int azb_shard_commit_write(struct azb_shard *shard, const struct azb_write_plan *plan);
/* The same for n plans of distinct chunks, in one RocksDB write. */
int azb_shard_commit_writes(struct azb_shard *shard, const struct azb_write_plan *plans,
			    uint32_t n);
/* Give back the chunk of a plan that will not be committed (no-op when in_place). */
int azb_shard_abort_write(struct azb_shard *shard, const struct azb_write_plan *plan);

/* Discard (unmap) chunk `chunk` of the writable head `view`: afterwards it
 * reads as zeros there, while every snapshot and clone still sees what it saw.
 * The view's own chunk, if no snapshot or clone sees it, is punched and freed;
 * a tombstone entry is written when something older (a snapshot's entry, a
 * parent's mapping) would otherwise show through. Nothing is done when the
 * chunk already reads as zeros. -EROFS for a read-only view, -EINVAL beyond
 * its size. Only whole chunks: a partial discard is the caller's (zeros). */
int azb_shard_discard(struct azb_shard *shard, const struct azb_view *view, uint64_t chunk);

/* ---- GC, accounting, check ---- */

struct azb_gc_stats {
	uint64_t entries_scanned;
	uint64_t entries_deleted; /* garbage entries (tombstones included), their chunks freed */
	uint64_t leaked_freed;	  /* chunks allocated but neither mapped, free nor in flight */
};

/* Delete the entries no hold can see and free (punch, then record) their
 * chunks; records holds->gc_generation as done. `holds` must be read after the
 * last resize of any volume. */
int azb_shard_gc(struct azb_shard *shard, const struct azb_holds *holds, struct azb_gc_stats *st);
/* Generation of the last completed GC (0: never). */
uint64_t azb_shard_gc_generation(const struct azb_shard *shard);

struct azb_shard_usage {
	uint64_t allocated_chunks; /* mapped or in flight */
	uint64_t high_water;	   /* chunks 0..high_water-1 have been handed out */
	uint64_t free_chunks;	   /* below high water and free */
	uint64_t entries;	   /* mapping entries, tombstones included */
	uint64_t quota_chunks;	   /* 0: no limit */
	uint32_t low_space;	   /* 1: allocated >= low_space_percent of quota */
	uint32_t pad0;
	uint64_t tombstones; /* entries that are discard tombstones (own no chunk) */
};

int azb_shard_usage(struct azb_shard *shard, struct azb_shard_usage *u);

/* Where a shard's metadata memory is (bytes), by RocksDB's own count. */
struct azb_shard_mem {
	uint64_t block_cache;	     /* block cache in use (capacity: meta_cache_bytes) */
	uint64_t block_cache_pinned; /* of it, pinned by iterators */
	uint64_t memtables;	     /* active and immutable, not yet flushed */
	uint64_t table_readers;	     /* table readers outside the block cache */
	uint64_t map_cache;	     /* the map cache's arena (map_cache_bytes) */
};

int azb_shard_mem(struct azb_shard *shard, struct azb_shard_mem *m);

struct azb_view_usage {
	uint64_t mapped;    /* chunks of this shard visible in the view (tombstones are not) */
	uint64_t exclusive; /* of those, seen by no other of the given views */
	uint64_t shared;    /* mapped - exclusive */
};

/* Usage of each of `nr` views in this shard (add over shards for a volume);
 * `exclusive` is relative to the given set, so pass every volume's view. */
int azb_shard_view_usage(struct azb_shard *shard, const struct azb_view *views, uint32_t nr,
			 struct azb_view_usage *usage);

/* Verify the shard: every entry's P < high water (tombstones own none), no P
 * owned twice or both mapped and free, counters equal a recount, every entry's
 * ns exists in `holds`, the data file covers high water, no leaked chunk.
 * Calls report once per problem; returns the number of problems or -errno. */
int azb_shard_check(struct azb_shard *shard, const struct azb_holds *holds,
		    void (*report)(const char *line, void *arg), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* AZBUSE_META_H */
