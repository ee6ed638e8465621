/*
 * thin.h - the thin engine's shared types: the engine (set up in the
 * supervisor, inherited by every worker it forks) and a worker's queue,
 * which owns one shard of the pool (sharded mode: worker q serves exactly
 * the chunks that metadata/ places in shard q).
 */
#ifndef AZBUSE_THIN_H
#define AZBUSE_THIN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <azbuse/engine.h>

#include "meta.h"

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
	int lock_fd;	/* DIR/daemon.lock, held while the device lives */
};

struct thin_queue {
	struct thin_engine *engine;
	struct azb_shard *shard;
	int data_fd;
	int direct_fd; /* the data file again, O_DIRECT (-1: none): aligned I/O bypasses the page
			  cache */
	uint64_t chunk_size;
	uint8_t *chunk_buf; /* one chunk, for copy-on-write of a partial write */
	/*
	 * Copy-on-write mappings wait here until their chunks' data is on disk
	 * (one fdatasync per batch): a mapping RocksDB persisted first would,
	 * after a power loss, point at a chunk that lost the old data it copied.
	 * Their requests complete when they are committed.
	 */
	struct azb_write_plan *cow_plans;
	uint32_t nr_cow_plans;
	struct azbuse_io **cow_ios;
	uint32_t nr_cow_ios;
	uint32_t max_cow_ios;	   /* the queue's slots */
	uint32_t allocs_unchecked; /* new chunks since the backing filesystem's space was checked */
	bool disk_low;		   /* it had less than AZB_DISK_RESERVE free then */
};

#define THIN_DISK_CHECK_EVERY 16
#define THIN_COW_PLANS_MAX 256
/* O_DIRECT is used for offsets, lengths and buffers aligned to this */
#define THIN_DIRECT_ALIGN 4096

/* What the supervisor learns of pool.db, from a child process (plain data). */
struct thin_pool_facts {
	struct azb_pool_settings settings;
	uint64_t size_bytes; /* of the volume served */
	uint64_t write_epoch;
	uint64_t write_max_hold;
	int32_t read_only; /* the volume is a snapshot */
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
/* thin_pool.c, in a worker: read the volume's whole view into e and the pool's GC holds. */
int thin_read_view(struct thin_engine *e, struct azb_holds *holds, char *err, size_t errlen);

/* thin_io.c: commit the waiting copy-on-write mappings (data synced first), end their requests */
int thin_commit_cow(struct thin_queue *tq);
void thin_batch_end(void *queue);

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
