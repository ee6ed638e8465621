/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * thin.h - the thin engine's shared types: the engine (set up in the
 * supervisor, inherited by every worker it forks) and a worker's queue.
 * Worker q owns shard q of the pool: it alone changes that shard's
 * metadata. With route queue (the default) reads and writes reach the
 * worker of the queue they were submitted on, which serves them from the
 * published map (metadata/pubmap.h) where it can and hands the rest to the
 * chunk's owner; with route chunk every request reaches its owner.
 */
#ifndef AZBUSE_THIN_H
#define AZBUSE_THIN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <azbuse/engine.h>
#include <liburing.h>

#include "meta.h"
#include "pubmap.h"

/*
 * The pool a daemon serves, shared by every device of it in the supervisor
 * (a device added later joins the daemon: libazbuse's group, the pool's
 * real path): its lock and the keeper, let go with the last device.
 */
struct thin_hold {
	char dir[512]; /* the pool's real path (the group) */
	int lock_fd;   /* DIR/daemon.lock */
	int keeper_fd; /* the supervisor's end of the keeper's socket, -1: none */
	pid_t keeper_pid;
	unsigned devices; /* thin engines set up on it */
	struct thin_engine *engines[64];
};

/* thin.c: every device of the pool takes new settings (in the supervisor). */
void thin_hold_settings(struct thin_hold *hold, const struct azb_pool_settings *s);

struct thin_engine {
	char pool_dir[PATH_MAX];
	char volume[AZB_NAME_MAX + 1];
	struct azb_pool_settings settings;
	/*
	 * What the device reads and writes, kept current by control. A worker
	 * reads it whole from pool.db when it opens its queue; the supervisor
	 * has only its size, write_epoch and write_max_hold (thin_pool.c).
	 */
	struct azb_view view;
	bool read_only; /* a snapshot */
	bool direct;	/* data I/O with O_DIRECT where aligned (option direct, default 1) */
	/* Option cow=copy: a first write into a chunk a snapshot shares copies
	 * the whole chunk (as dm-thin does), not only what it writes (cow=layer,
	 * the default: the new chunk is layered over the old one, azb_write_plan) */
	bool copy_whole;
	struct thin_hold *hold; /* the pool's lock and keeper (the daemon's, shared) */
	/*
	 * What each chunk of the volume maps to, published by its owner for
	 * every worker and the module: the device's direct map, attached in
	 * each worker (open_queue); NULL with route chunk, where no worker
	 * reads another's chunks.
	 */
	struct azb_pubmap *pubmap;
};

/* A map entry the owner publishes once its batch's metadata is in the WAL file. */
struct thin_pub {
	uint64_t chunk;
	uint64_t phys;
	enum azb_pub_kind kind;
};

struct thin_queue {
	struct thin_engine *engine;
	struct azbuse_queue *ring; /* libazbuse's queue (a worker serves one per device) */
	/* the shard this worker owns (index: queue), shared by its queues of every
	 * device of the pool (thin_owned) */
	struct azb_shard *shard;
	uint32_t index;
	uint32_t nr_shards;
	int data_fd;		/* the own shard's data file (data_fds[index]) */
	int direct_fd;		/* direct_fds[index] */
	int *data_fds;		/* every shard's data file, by shard */
	int *direct_fds;	/* each again, O_DIRECT (-1: none): aligned I/O bypasses the
				   page cache */
	bool raw;		/* the pool's data is on a block device: all of it O_DIRECT */
	uint32_t direct_align;	/* what O_DIRECT needs aligned (THIN_DIRECT_ALIGN; raw: the
				   device's logical block) */
	uint64_t foreign_dirty; /* bit s: wrote to shard s's data file (s != index) since the
				   last FLUSH */
	uint64_t chunk_size;
	/* publishing (thin_pub.c) */
	struct thin_pub *pubs; /* waiting for the batch's WAL write */
	uint32_t nr_pubs;
	bool reuse_wait; /* freed chunks: no new chunk until reuse_ticket has passed */
	uint64_t reuse_ticket;
	uint64_t redirected; /* requests handed to their chunk's owner */
	uint64_t foreign;    /* requests of other shards served here */
	uint8_t *chunk_buf;  /* one chunk, for copy-on-write of a partial write */
	uint8_t *edge_buf; /* one sub-block (azb_valid_unit), for what a write leaves out of one */
	/*
	 * New chunks' mappings wait here for the batch's end, to be committed
	 * in one RocksDB write; copies (copy-on-write) also until their data is
	 * on disk (one fdatasync per batch): a mapping RocksDB persisted first
	 * would, after a power loss, point at a chunk that lost the old data it
	 * copied. Their requests complete when they are committed.
	 */
	struct azb_write_plan *wait_plans;
	uint32_t nr_wait_plans;
	uint32_t nr_wait_copies; /* of them, copy-on-write */
	struct azbuse_io **wait_ios;
	uint32_t nr_wait_ios;
	uint32_t max_wait_ios;	   /* the queue's slots */
	uint32_t allocs_unchecked; /* new chunks since the backing filesystem's space was checked */
	bool disk_low;		   /* it had less than AZB_DISK_RESERVE free then */
	/*
	 * New chunks' data goes out through this io_uring (O_DIRECT, aligned
	 * writes), many at once; the batch waits for all of it before its
	 * mappings are committed (thin_data_wait), and a request completes
	 * only after that. Without it (no io_uring), data is written at once.
	 */
	struct io_uring uring;
	bool uring_ok;
	uint32_t data_unsubmitted; /* writes prepared since the last submit */
	uint32_t data_inflight;	   /* writes submitted or prepared, not yet reaped */
	int data_err;		   /* the first failure among them since the last wait */
	uint64_t data_async;	   /* writes that went through the io_uring (stats) */
	/* the ring's data buffers, registered with it (fixed buffer 0), or NULL */
	const uint8_t *fixed_base;
	uint64_t fixed_bytes;
	uint64_t data_fixed; /* of data_async: from the fixed buffer (stats) */
	/*
	 * Layered chunks (copies-on-write that copied only what was written)
	 * to complete when the device is quiet: the rest of the old chunk is
	 * copied in, after which the chunk is whole again (published, served by
	 * every worker and the module) and the old one may be freed. A ring of
	 * chunk numbers; what does not fit stays layered until it is written.
	 */
	uint64_t *fills;
	uint32_t fill_head, fill_tail; /* [head, tail) wait, mod THIN_FILLS_MAX */
	uint64_t filled;	       /* layered chunks completed (stats) */
	uint64_t scan_cursor;	       /* the next chunk to look at for layered ones ... */
	bool scan_done;		       /* ... in the metadata, once after the queue opens */
	uint64_t last_batch_ms;	       /* CLOCK_MONOTONIC_COARSE at the last batch's end */
};

#define THIN_URING_ENTRIES 256 /* >= THIN_WAIT_PLANS_MAX: a batch's new chunks at once */
#define THIN_URING_SUBMIT_EVERY 8

#define THIN_FILLS_MAX 4096   /* a power of 2 */
#define THIN_FILLS_PER_TURN 8 /* layered chunks completed per idle call */
#define THIN_FILL_QUIET_MS 50 /* the device has had no request that long */
#define THIN_SCAN_KEYS 4096   /* entries read per idle call looking for layered chunks */

#define THIN_DISK_CHECK_EVERY 16
#define THIN_PUBS_MAX 1024
#define THIN_WAIT_PLANS_MAX 256
/* O_DIRECT is used for offsets, lengths and buffers aligned to this */
#define THIN_DIRECT_ALIGN 4096

/* What the supervisor learns of pool.db, from a child process (plain data). */
struct thin_pool_facts {
	struct azb_pool_settings settings;
	uint64_t size_bytes; /* of the volume served */
	uint64_t write_epoch;
	uint64_t write_max_hold;
	int32_t read_only; /* the volume is a snapshot */
	int32_t have_view; /* the fields above were read (even if ret says an error) */
	int32_t ret;
	char msg[512]; /* the error, if ret */
};

/*
 * thin_pool.c: in a child process, take snapshot SNAP_NAME of SNAP_SRC (if
 * SNAP_SRC is not NULL), then read the served volume's facts. 0 or -errno,
 * with the reason in f->msg.
 */
int thin_pool_query(const struct thin_engine *e, const char *snap_src, const char *snap_name,
		    struct thin_pool_facts *f);
/* The same in this process, with pool.db open (for writing if SNAP_SRC). */
void thin_pool_facts_from(struct azb_pool *pool, const struct thin_engine *e, const char *snap_src,
			  const char *snap_name, struct thin_pool_facts *f);
/* thin_pool.c, in a worker: read the volume's whole view into e and the pool's GC holds. */
int thin_read_view(struct thin_engine *e, struct azb_holds *holds, char *err, size_t errlen);

/*
 * thin_keeper.c: the keeper, a child of the supervisor that keeps pool.db
 * open for writing between snapshots. start: 0 or -errno (then requests take
 * the child-per-request path above). snapshot: like thin_pool_query with a
 * SNAP_SRC, -ENOTCONN if there is no keeper. release: pool.db is closed
 * until the next snapshot (azbuse-thin wants to write it). stop: closed and
 * waited for (before the pool's lock is let go). close_in_worker: a worker
 * forgets the supervisor's end.
 */
int thin_keeper_start(struct thin_engine *e);
int thin_keeper_snapshot(struct thin_engine *e, const char *snap_src, const char *snap_name,
			 struct thin_pool_facts *f);
int thin_keeper_release(struct thin_engine *e);
void thin_keeper_stop(struct thin_engine *e);
void thin_keeper_close_in_worker(struct thin_engine *e);

/*
 * thin.c: the shard this worker process owns and its queues, one per device
 * of the pool it serves (a chunk one device freed may be handed out to
 * another: thin_pub_before_alloc waits for the readers of each).
 */
struct thin_owned {
	struct azb_shard *shard;
	unsigned nr_queues;
	struct thin_queue *queues[64];
	uint64_t enospc;	  /* writes refused for lack of space (since this worker started) */
	uint64_t enospc_log_ms;	  /* when the last was logged (one line per 10 s) */
	uint64_t enospc_unlogged; /* refused since */
	bool low_space;		  /* the pool's use is at or over its low-space threshold */
};
extern struct thin_owned thin_owned;

/* thin_pub.c: the owner's side of the published map, and a reader's marks */
int thin_pub_open(struct thin_queue *tq, void *map, uint64_t map_bytes);
/* The own shard's data file becomes the module's backing file of the shard's chunks. */
int thin_pub_set_backing(struct thin_queue *tq);
void thin_pub_close(struct thin_queue *tq);
/* A request begins: nothing looked up before is still in use. */
void thin_pub_enter(struct thin_queue *tq);
/* The batch is over: this worker holds no lookup (after thin_pub_apply). */
void thin_pub_idle(struct thin_queue *tq);
/* What the owner learned of a chunk (phys AZB_PHYS_NONE: zeros), published by thin_pub_apply. */
void thin_pub_note(struct thin_queue *tq, uint64_t chunk, uint64_t phys, bool in_place);
/* The chunk's mapping is about to change or go: unpublish it now. */
void thin_pub_forget(struct thin_queue *tq, uint64_t chunk);
/* Chunks were freed: a new chunk is handed out only after the readers moved on. */
void thin_pub_freed(struct thin_queue *tq);
/* Before planning a write: wait for the readers if chunks were freed. */
void thin_pub_before_alloc(struct thin_queue *tq);
/* Publish what was noted (the notes' metadata is in the WAL file). */
void thin_pub_apply(struct thin_queue *tq);
/* The published entry of a chunk (UNKNOWN without a map). */
struct azb_pub_entry thin_pub_lookup(const struct thin_queue *tq, uint64_t chunk);

/* thin_io.c: commit the waiting copy-on-write mappings (data synced first), end their requests */
int thin_commit_waiting(struct thin_queue *tq);
/* Wait for every data write in flight on the io_uring: 0, or the first failure. */
int thin_data_wait(struct thin_queue *tq);
void thin_batch_end(void *queue);
/* Complete a few layered chunks once the device is quiet (engine idle()). */
unsigned thin_idle(void *queue);
/* thin_io.c: sync the other shards' data files this worker wrote since its last FLUSH */
int thin_sync_foreign(struct thin_queue *tq);

/* thin_io.c: the request callbacks */
void thin_read(void *queue, struct azbuse_io *io);
void thin_write(void *queue, struct azbuse_io *io);
void thin_flush(void *queue, struct azbuse_io *io);
void thin_discard(void *queue, struct azbuse_io *io);
void thin_write_zeroes(void *queue, struct azbuse_io *io);

/* thin_control.c: live snapshots and GC while the device is served */
int thin_control(void *engine, struct azbuse_control *ctl, const char *request, char *reply,
		 size_t reply_size);
int thin_queue_control(void *queue, const void *msg, size_t len, void *reply, size_t *reply_len);
/* Run GC on the queue's shard if the pool's generation is ahead of it. */
int thin_queue_gc(struct thin_queue *tq, const struct azb_holds *holds);
/* Open pool.db, retrying for a while if another process has it open. */
int thin_pool_open(const char *dir, struct azb_pool **pool, char *err, size_t errlen);

#endif /* AZBUSE_THIN_H */
