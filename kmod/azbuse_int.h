/* SPDX-License-Identifier: GPL-2.0 */
/*
 * azbuse_int.h - the module's internal types: devices, their rings and the
 * per-tag slot state that the block layer, the workers and teardown share.
 */
#ifndef AZBUSE_INT_H
#define AZBUSE_INT_H

#include <linux/atomic.h>
#include <linux/blk-mq.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/llist.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "azbuse/uapi.h"

/*
 * One slot per tag. Its 64-bit word packs the tag's state with the ring it
 * was posted to and a sequence number, so that one cmpxchg decides who owns
 * the request: the worker completing it, the recovery path failing it, or
 * teardown aborting it. A completion must name the current sequence number.
 */
enum azbuse_slot_state {
	AZBUSE_SLOT_FREE = 0,	    /* no request, or being ended */
	AZBUSE_SLOT_INFLIGHT = 1,   /* in the submission ring, owned by its worker */
	AZBUSE_SLOT_COMPLETING = 2, /* claimed by whoever ends the request */
	AZBUSE_SLOT_PENDING = 3,    /* on the ring's pending list, not yet fetched */
};

#define AZBUSE_SLOT_WORD(seq, ring, state) (((u64)(seq) << 32) | ((u64)(ring) << 8) | (u64)(state))
#define AZBUSE_SLOT_STATE(w) ((u32)((w)&0xff))
#define AZBUSE_SLOT_RING(w) ((u32)(((w) >> 8) & 0xffff))
#define AZBUSE_SLOT_SEQ(w) ((u32)((w) >> 32))

struct azbuse_slot {
	atomic64_t word;
	struct request *rq;	/* valid while PENDING, INFLIGHT or COMPLETING */
	struct llist_node node; /* on the ring's pending list while PENDING */
	/* what the ring's worker is asked to do: the request, or one shard's part of it */
	u64 sector;
	u32 bytes;
	bool part;
	u8 redirects;  /* times a worker handed it to another ring (AZBUSE_CQE_F_REDIRECT) */
	u64 posted_ns; /* when it went on the pending list (ktime_get_ns) */
	/* a submitter waiting in queue_rq to end the request itself (AZBUSE_HANDOFF_*) */
	atomic_t handoff;
	blk_status_t handoff_status; /* set before handoff becomes DONE */
};

/*
 * Completion in the submitter's context: queue_rq may wait a little for the
 * worker to complete the request it just posted. While the slot says
 * WAITING, whoever ends the request stores its status and moves the slot to
 * DONE instead, and the waiting submitter ends it. A submitter that stops
 * waiting moves WAITING back to NONE first, so exactly one side ends it.
 */
enum azbuse_handoff {
	AZBUSE_HANDOFF_NONE = 0,
	AZBUSE_HANDOFF_WAITING = 1,
	AZBUSE_HANDOFF_DONE = 2,
};

/* Tags and their data: one table per ring, or one per device when tags are shared. */
struct azbuse_slot_table {
	struct azbuse_slot *slots;
	void *data; /* nr * slot_bytes, vmalloc'ed, mapped by workers */
	u32 nr;
	u32 slot_bytes;
	u64 data_bytes;
};

struct azbuse_dev;
struct azbuse_cfile;

struct azbuse_ring {
	struct azbuse_dev *dev;
	u16 index;
	int node;
	u8 *cpus; /* CPUs mapped to this queue: bit n%8 of byte n/8 */
	u32 cpus_bytes;

	/* shared with the worker (vmalloc'ed, mmaped) */
	void *region;
	u32 region_bytes;
	struct azbuse_ring_header *hdr;
	struct azbuse_sqe *sq;
	struct azbuse_cqe *cq;
	u32 sq_entries;
	u32 cq_entries;
	u32 sq_offset;
	u32 cq_offset;

	struct azbuse_slot_table *table;

	/* queue_rq's side: requests wait here for the worker's next COMMIT */
	spinlock_t lock; /* orders posting against marking the ring failed or dead */
	struct llist_head pending;
	u32 posted; /* the kernel's own copies of what it shows in the header */
	u32 kflags;
	atomic64_t wakeups; /* queue_rq on any CPU, and COMMIT (shard parts) */

	/* the worker's COMMIT (and reset, abort), under commit_mutex */
	struct mutex commit_mutex;
	u32 sq_tail;
	u32 cq_head;
	u32 fetched;
	u64 requests;
	u64 bytes;
	u64 commits;
	atomic64_t waits; /* counted outside commit_mutex */
	u64 rejected;
	u64 redirected;
	u64 errors; /* requests the worker completed with an error */
	u64 wait_ns;	  /* summed time requests were pending before a fetch */
	u64 poll_ns;	  /* time spent polling in COMMIT */
	u64 poll_hits;	  /* polls that found a request */
	u64 poll_max_ns;  /* the worker's poll limit (ATTACH), 0: never poll */
	u64 idle_ewma_ns; /* moving average of how long COMMIT waited for work */
	u32 poll_skips;	  /* waits that did not poll: one in AZBUSE_POLL_PROBE polls anyway */
	bool polling;	  /* COMMIT is polling: a submitter may wait for its request */
	u32 sync_backoff; /* lone posts left that are not waited for (racy: a hint) */
	u32 sync_tries;	  /* lone posts that could be waited for (racy: a hint) */
	/* the task of the last probe (compared, never dereferenced) and its nvcsw then */
	struct task_struct *probe_task;
	unsigned long probe_nvcsw;

	/* attachment: under state_mutex; state is also read under lock */
	struct mutex state_mutex;
	int state; /* AZBUSE_QUEUE_* */
	struct azbuse_cfile *worker;
	pid_t worker_pid;
	struct delayed_work recovery_work;
	u64 requeued;
	atomic64_t failed;

	atomic64_t timeouts;
	atomic64_t sync_ends; /* requests ended by their submitter in queue_rq */
	atomic64_t direct;    /* requests of this queue served from the direct map */
	atomic_t inflight;
	atomic_t kicked;
	wait_queue_head_t wq;
};

struct azbuse_dev {
	u32 id;
	struct azbuse_dev_info info; /* validated parameters, defaults filled */

	/* lifetime: the char device's struct device; release frees the rest */
	struct device cdev_dev;
	struct cdev cdev;

	struct mutex lock; /* state, disk */
	int state;	   /* AZBUSE_DEV_*; written under lock, read locklessly */
	bool removing;	   /* a removal has claimed the device */
	bool dead;	   /* no more I/O: queue_rq fails, workers are told */
	struct file *owner_file;

	struct blk_mq_tag_set tag_set;
	bool tag_set_ready;
	struct gendisk *disk;

	struct azbuse_ring *rings;
	u32 nr_rings;
	bool sharded;	  /* rings are shards: route by chunk, tags shared */
	bool route_queue; /* sharded: reads and writes go to their hardware queue's ring */
	u32 chunk_shift;  /* sharded: log2(chunk_sectors) */
	struct azbuse_slot_table *tables;
	u32 nr_tables;

	struct delayed_work remove_watchdog;
	u64 remove_progress;

	/* the direct map (azbuse_direct.c), if AZBUSE_F_DIRECT_MAP */
	bool direct_map;
	u32 map_chunk_shift;
	u32 map_entries_offset;
	u64 map_nr_chunks;
	u64 map_bytes;
	struct xarray map_pages;  /* page index in the map -> its page */
	struct file **backing;	  /* per ring (sharded) or [0]; set once, put at free */
	spinlock_t backing_lock;  /* setting a backing file */
	unsigned int map_phase;	  /* the grace counter that new I/O takes (bit 0) */
	atomic_t map_users[2];	  /* I/O in flight that looked up entries, by phase */
	wait_queue_head_t map_wq; /* MAP_SYNC waits for a phase to drain */
	struct mutex map_sync_mutex;
	struct workqueue_struct *direct_wq;
	struct azbuse_direct_queue *direct_queues; /* one per hardware queue */
	struct bio_set direct_bioset;		   /* remapped bios of block-device backings */

	/* the RAM cache the module serves hits from (azbuse_cache.c), or NULL */
	struct azbuse_kcache __rcu *kcache;
	struct mutex cache_mutex; /* replacing kcache */
};

/* Requests of one hardware queue waiting for their direct I/O to start. */
struct azbuse_direct_queue {
	spinlock_t lock;
	struct list_head list;
	struct work_struct work;
};

/* A request's private data on a direct-map device: its direct I/O. */
struct azbuse_direct_cmd {
	struct kiocb iocb;
	struct file *file; /* where, for the kworker */
	loff_t pos;
	atomic_t ref; /* the submission and the completion */
	long result;
	unsigned int phase;
	bool active; /* served from the map (the timeout handler looks) */
};

/* azbuse_dev.c */
int azbuse_dev_add(struct azbuse_dev_info *info, struct file *owner);
int azbuse_dev_start(u32 id);
int azbuse_dev_takeover(u32 id, struct file *owner);
int azbuse_dev_resize(u32 id, u64 size_bytes);
int azbuse_dev_remove(u32 id);
/* The same, unless the block device is open: -EBUSY then. */
int azbuse_dev_remove_unused(u32 id);
int azbuse_dev_get_info(struct azbuse_dev_info *info);
int azbuse_dev_queue_info(struct azbuse_queue_info *qi);
int azbuse_dev_list(struct azbuse_dev_list *list);
void azbuse_dev_owner_gone(struct file *owner);
void azbuse_dev_remove_all(void);
struct azbuse_dev *azbuse_dev_get(u32 id);
void azbuse_dev_put(struct azbuse_dev *dev);
int azbuse_dev_init(void);
void azbuse_dev_exit(void);

/* azbuse_direct.c */
int azbuse_direct_validate(const struct azbuse_dev_info *info);
int azbuse_direct_init(struct azbuse_dev *dev);
void azbuse_direct_free(struct azbuse_dev *dev);
int azbuse_direct_mmap(struct azbuse_dev *dev, struct vm_area_struct *vma);
long azbuse_direct_set_backing(struct azbuse_ring *ring, struct azbuse_backing __user *uarg);
long azbuse_direct_sync(struct azbuse_dev *dev);
enum azbuse_direct_verdict {
	AZBUSE_DIRECT_NO,    /* not for the map: the rings as usual */
	AZBUSE_DIRECT_TAKEN, /* served from the map */
	AZBUSE_DIRECT_OWNER, /* the map says only the chunk's owner can serve it */
};
enum azbuse_direct_verdict azbuse_direct_try(struct azbuse_dev *dev, struct blk_mq_hw_ctx *hctx,
					     struct request *rq);
void azbuse_direct_kick(struct azbuse_dev *dev, struct blk_mq_hw_ctx *hctx);
bool azbuse_direct_active(struct azbuse_dev *dev, struct request *rq);

/* azbuse_cache.c */
int azbuse_cache_attach(const struct azbuse_cache_attach *a);
void azbuse_cache_detach(struct azbuse_dev *dev);
void azbuse_cache_free(struct azbuse_dev *dev);
bool azbuse_cache_try(struct azbuse_dev *dev, struct blk_mq_hw_ctx *hctx, struct request *rq);

/* azbuse_ring.c */
void azbuse_zero_rq(struct request *rq);
int azbuse_ring_init(struct azbuse_ring *ring, struct azbuse_dev *dev, u16 index,
		     struct azbuse_slot_table *table, int node, u8 *cpus, u32 cpus_bytes);
void azbuse_ring_free(struct azbuse_ring *ring);
int azbuse_table_init(struct azbuse_slot_table *table, u32 nr, u32 slot_bytes, int node);
void azbuse_table_free(struct azbuse_slot_table *table);
blk_status_t azbuse_ring_post(struct azbuse_ring *ring, struct request *rq, bool last);
blk_status_t azbuse_shard_post(struct azbuse_dev *dev, unsigned long *posted, struct request *rq,
			       bool last, bool to_owner);
void azbuse_shard_wake(struct azbuse_dev *dev, unsigned long *posted);
struct azbuse_ring *azbuse_rq_ring(struct azbuse_dev *dev, struct request *rq);
void azbuse_ring_wake(struct azbuse_ring *ring);
void azbuse_ring_mark_dead(struct azbuse_ring *ring);
void azbuse_ring_abort(struct azbuse_ring *ring, blk_status_t status);
void azbuse_ring_fill_info(struct azbuse_ring *ring, struct azbuse_queue_info *qi);
extern const struct file_operations azbuse_cdev_fops;

#endif /* AZBUSE_INT_H */
