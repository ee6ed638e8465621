/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR MIT */
/*
 * azbuse/uapi.h - the kernel/userspace ABI of azbuse, block devices served from
 * userspace. This one header is compiled by kmod/azbuse.ko and by libazbuse;
 * both sides check every struct's size and field offsets at compile time
 * (AZBUSE_ABI_CHECKS below).
 *
 * Control: /dev/azbusectl (root only) adds, starts, removes and describes
 * devices. Data: a worker process opens /dev/azbusec<N>, ATTACHes to one
 * queue, mmaps the queue's ring region (AZBUSE_MMAP_RING_OFF) and data area
 * (AZBUSE_MMAP_DATA_OFF), then loops:
 *
 *   1. consume submission entries between sq_head and sq_tail
 *      (load sq_tail with acquire; store sq_head with release);
 *   2. serve them; the data of request `tag` is at tag * slot_bytes in the
 *      data area (write data is there when the entry is posted; read data
 *      must be there when the completion is committed);
 *   3. post completions at cq_tail (store cq_tail with release);
 *   4. ioctl(AZBUSE_IOC_COMMIT, timeout_ms): the kernel completes every
 *      posted completion, moves waiting requests into the submission ring
 *      and, if there were none and timeout_ms != 0, sleeps until one
 *      arrives, the timeout passes, a KICK, or the device goes away
 *      (-ENODEV).
 *
 * A worker that also waits for I/O of its own can instead COMMIT with
 * timeout_ms 0 and poll(2) the fd: it is readable when COMMIT would hand
 * the worker requests (or after a KICK), and reports POLLHUP once the
 * device is dead.
 *
 * Requests reach the submission ring in COMMIT: queue_rq only queues them
 * in the kernel (posted), and COMMIT moves them into the ring (fetched),
 * copying write data into their slots on the worker's CPU.
 *
 * Nothing the worker writes is trusted: the kernel keeps its own copy of
 * every index and rejects (and counts) completions for tags the worker does
 * not hold or with a stale sequence number.
 *
 * Op codes and flag bits are azbuse's own and stable: the kernel's REQ_*
 * bit numbers change between versions, so the module translates.
 */
#ifndef _UAPI_AZBUSE_H
#define _UAPI_AZBUSE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define AZBUSE_ABI_VERSION 4

#define AZBUSE_CTL_DEVICE "/dev/azbusectl"
#define AZBUSE_BLOCK_PREFIX "/dev/azbuse"
#define AZBUSE_CHAR_PREFIX "/dev/azbusec"

/* Largest device id (and so device count). */
#define AZBUSE_MAX_DEVICES 1024
/* ADD with this id takes the lowest free one. */
#define AZBUSE_DEV_ID_ANY 0xffffffffU

/* Limits that ADD enforces (-EINVAL outside them). */
#define AZBUSE_MAX_QUEUES 256
#define AZBUSE_MAX_QUEUE_DEPTH 4096
#define AZBUSE_MIN_IO_BYTES 4096
#define AZBUSE_MAX_IO_BYTES (4U << 20)
/* sharded mode: queues x depth, the device-wide tags (blk-mq allows at most 10240) */
#define AZBUSE_MAX_SHARED_TAGS 8192
#define AZBUSE_DEF_QUEUE_DEPTH 128
#define AZBUSE_DEF_IO_BYTES (256U << 10)
#define AZBUSE_DEF_IO_TIMEOUT_MS 30000
#define AZBUSE_DEF_RECOVERY_TIMEOUT_MS 30000

/* Device features (azbuse_dev_info.features). */
#define AZBUSE_F_WRITE_CACHE (1ULL << 0) /* volatile cache: FLUSH reaches the engine */
#define AZBUSE_F_FUA (1ULL << 1)	 /* FUA reaches the engine as a flag */
#define AZBUSE_F_DISCARD (1ULL << 2)
#define AZBUSE_F_WRITE_ZEROES (1ULL << 3)
#define AZBUSE_F_SECURE_ERASE (1ULL << 4)
#define AZBUSE_F_ROTATIONAL (1ULL << 5)
#define AZBUSE_F_READ_ONLY (1ULL << 6)
/*
 * Sharded: nr_queues rings (shards), each request goes to ring
 * (sector / chunk_sectors) % nr_queues, whatever CPU sent it. No request
 * reaches two rings: reads and writes are kept inside a chunk by the block
 * layer; the module cuts discard, write-zeroes and secure erase at chunk
 * boundaries and hands the parts to their shards one after the other, and
 * sends a FLUSH to every shard in turn. Tags (and data slots) are shared by
 * the whole device: queue_depth * nr_queues of them.
 */
#define AZBUSE_F_SHARDED (1ULL << 7)
/*
 * User copy: COMMIT does not copy write data into the data slot. The worker
 * completes each WRITE with AZBUSE_CQE_F_COPY naming its own buffer, and
 * the kernel copies the data there (once, straight from the request's
 * pages), or without it to drop the data. Reads may use either way.
 */
#define AZBUSE_F_USER_COPY (1ULL << 8)
/*
 * Route by queue (with SHARDED only): a READ or WRITE goes to the ring of
 * the hardware queue it came through (hardware queue i: ring i % nr_queues),
 * not to its chunk's shard, so it is served where it was submitted; its
 * worker serves it or hands it to another ring with AZBUSE_CQE_F_REDIRECT
 * (to the shard that must change metadata for it). FLUSH, discard,
 * write-zeroes and secure erase still go to the shards, in parts.
 */
#define AZBUSE_F_ROUTE_QUEUE (1ULL << 9)
/*
 * Direct map: the engine publishes, in a map the module shares with it
 * (struct azbuse_map_hdr, mmap at AZBUSE_MMAP_MAP_OFF), where each chunk of
 * map_chunk_bytes lives in a backing file or block device
 * (AZBUSE_IOC_SET_BACKING), and the module serves a READ, or a WRITE without
 * FUA, that lies within one published chunk itself, no worker involved: a
 * block device gets the request's bio remapped in the submitter's context, a
 * file direct I/O from a kworker. A READ needs a ZERO, SHARED or
 * OWNED entry, a WRITE an OWNED one stamped with the map's current epoch.
 * Everything else goes to the rings as before. Before it reuses a chunk
 * that it unpublished, the engine waits for the module's I/O that may still
 * use the old entry (AZBUSE_IOC_MAP_SYNC).
 */
#define AZBUSE_F_DIRECT_MAP (1ULL << 10)
#define AZBUSE_F_ALL ((1ULL << 11) - 1)

/* Request op codes (azbuse_sqe.op). */
#define AZBUSE_OP_READ 0
#define AZBUSE_OP_WRITE 1
#define AZBUSE_OP_FLUSH 2
#define AZBUSE_OP_DISCARD 3
#define AZBUSE_OP_WRITE_ZEROES 4
#define AZBUSE_OP_SECURE_ERASE 5
#define AZBUSE_OP_NR 6

/* Request flags (azbuse_sqe.flags): the kernel's request flags, renumbered. */
#define AZBUSE_RQ_FUA (1ULL << 0)
#define AZBUSE_RQ_PREFLUSH (1ULL << 1)
#define AZBUSE_RQ_NOUNMAP (1ULL << 2)
#define AZBUSE_RQ_SYNC (1ULL << 3)
#define AZBUSE_RQ_META (1ULL << 4)
#define AZBUSE_RQ_PRIO (1ULL << 5)
#define AZBUSE_RQ_RAHEAD (1ULL << 6)
#define AZBUSE_RQ_BACKGROUND (1ULL << 7)
#define AZBUSE_RQ_NOWAIT (1ULL << 8)
#define AZBUSE_RQ_IDLE (1ULL << 9)
#define AZBUSE_RQ_FAILFAST_DEV (1ULL << 10)
#define AZBUSE_RQ_FAILFAST_TRANSPORT (1ULL << 11)
#define AZBUSE_RQ_FAILFAST_DRIVER (1ULL << 12)
#define AZBUSE_RQ_NOMERGE (1ULL << 13)
#define AZBUSE_RQ_INTEGRITY (1ULL << 14)
#define AZBUSE_RQ_POLLED (1ULL << 15)
#define AZBUSE_RQ_SWAP (1ULL << 16)
#define AZBUSE_RQ_ATOMIC (1ULL << 17)
/* Set by the module, not the kernel: the request was re-posted after its worker died. */
#define AZBUSE_RQ_REQUEUED (1ULL << 63)
/* Set by the module: one part of a request it cut at a shard's chunk boundary (or a FLUSH sent to
 * each shard). */
#define AZBUSE_RQ_SHARD_PART (1ULL << 62)

/* Device states (azbuse_dev_info.state). */
#define AZBUSE_DEV_CREATED 0 /* added; workers attach, then START */
#define AZBUSE_DEV_LIVE 1    /* /dev/azbuse<N> exists */
#define AZBUSE_DEV_DYING 2   /* being removed */

/* Queue states (azbuse_queue_info.state). */
#define AZBUSE_QUEUE_NO_WORKER 0  /* never attached */
#define AZBUSE_QUEUE_ATTACHED 1	  /* a worker serves it */
#define AZBUSE_QUEUE_RECOVERING 2 /* worker gone, requests kept for a new one */
#define AZBUSE_QUEUE_FAILED 3	  /* recovery window passed: requests fail fast */

/*
 * ADD (in: everything but state/owner_pid; 0 means "default" for every
 * optional field), INFO (out). Reserved fields must be zero.
 */
struct azbuse_dev_info {
	__u32 dev_id;		   /* in: id or AZBUSE_DEV_ID_ANY; out: the id */
	__u32 state;		   /* out: AZBUSE_DEV_* */
	__u16 nr_queues;	   /* worker rings (sharded: shards); 0: one per possible CPU */
	__u16 queue_depth;	   /* per queue; 0: AZBUSE_DEF_QUEUE_DEPTH */
	__u32 max_io_bytes;	   /* multiple of 4096; 0: AZBUSE_DEF_IO_BYTES */
	__u64 size_bytes;	   /* multiple of logical_block_size, > 0 */
	__u64 features;		   /* AZBUSE_F_*; out: what the device has */
	__u32 logical_block_size;  /* 512..4096, power of 2; 0: 512 */
	__u32 physical_block_size; /* >= logical, power of 2; 0: logical */
	__u32 chunk_sectors;	   /* sharded: power of 2, >= 8 (4 KiB); else 0 */
	__u32 discard_granularity; /* bytes; 0: logical block */
	__u32 max_discard_sectors; /* 0: chunk (sharded) or UINT_MAX >> 9 */
	__u32 max_write_zeroes_sectors; /* as above */
	__u32 io_timeout_ms;		/* 0: AZBUSE_DEF_IO_TIMEOUT_MS */
	__u32 recovery_timeout_ms;	/* 0: AZBUSE_DEF_RECOVERY_TIMEOUT_MS */
	__s32 owner_pid;		/* out: process that added the device */
	__u32 nr_hw_queues;		/* out: blk-mq hardware queues (sharded: per CPU) */
	__u32 map_chunk_bytes; /* DIRECT_MAP: bytes per map entry (power of 2, 4 KiB..chunk) */
	__u32 map_user_bytes;  /* DIRECT_MAP: bytes for the engine between header and entries */
	__u64 reserved[6];
};

/* START, REMOVE. */
struct azbuse_dev_cmd {
	__u32 dev_id;
	__u32 flags; /* START: 0; REMOVE: AZBUSE_REMOVE_* */
	__u64 reserved[3];
};

/*
 * RESIZE: the device's size becomes size_bytes (a multiple of its logical
 * block size), and the kernel is told (a uevent; openers see the new size).
 * The engine must serve the new range before a device grows. After a
 * shrink, requests already on their way, or through a partition reaching
 * past the new end, may still come past it: the engine fails them, and must
 * not free what lay there while the device is served. The engine's own tool
 * calls it (azbuse-rbd resize), not azbusectl. -EAGAIN: the device is
 * starting (its partition scan may wait on the caller's worker): try again
 * once it is live. -EOPNOTSUPP: the device has a direct map.
 */
struct azbuse_dev_resize {
	__u32 dev_id;
	__u32 flags; /* must be 0 */
	__u64 size_bytes;
	__u64 reserved[2];
};

/*
 * REMOVE only if nothing has the block device open (no mount, no process;
 * partitions count): else EBUSY and the device stays. Without it, REMOVE
 * takes the device away from its openers (their I/O fails from then on).
 */
#define AZBUSE_REMOVE_IF_UNUSED (1U << 0)

/* LIST: ids of existing devices, in ascending order. */
struct azbuse_dev_list {
	__u64 ids_ptr;	/* in: user pointer to __u32[capacity] */
	__u32 capacity; /* in */
	__u32 count;	/* out: number of devices (may exceed capacity) */
	__u64 reserved[2];
};

/* QUEUE_INFO: per-queue state and counters. */
struct azbuse_queue_info {
	__u32 dev_id; /* in */
	__u16 queue;  /* in */
	__u16 state;  /* out: AZBUSE_QUEUE_* */
	__s32 worker_pid;
	__u32 inflight;	  /* requests posted and not yet completed */
	__u64 requests;	  /* requests completed through this queue */
	__u64 bytes;	  /* data bytes of those requests */
	__u64 commits;	  /* COMMIT syscalls */
	__u64 waits;	  /* COMMIT syscalls that slept */
	__u64 wakeups;	  /* wake-ups sent by the submission path */
	__u64 rejected;	  /* completions rejected as invalid */
	__u64 requeued;	  /* requests re-posted after a worker died */
	__u64 failed;	  /* requests failed by the module (no worker, removal) */
	__u64 timeouts;	  /* times a request outlived io_timeout_ms */
	__u64 wait_ns;	  /* summed over requests: time from queue_rq until a COMMIT fetched it */
	__u64 poll_ns;	  /* time COMMIT spent polling for new requests instead of sleeping */
	__u64 poll_hits;  /* polls that found a request (each saved a sleep and a wake-up) */
	__u64 sync_ends;  /* requests the submitter ended itself: no wake-up at either end */
	__u64 redirected; /* requests this queue's worker handed to another ring */
	__u64 direct;	  /* DIRECT_MAP: requests of this queue the module served itself */
	__u64 errors;	  /* requests the worker completed with an error (the engine's) */
};

/* VERSION. */
struct azbuse_version {
	__u32 abi_version; /* AZBUSE_ABI_VERSION */
	__u32 max_devices;
	__u64 features; /* AZBUSE_F_* this module supports */
	__u64 reserved[6];
};

/* ATTACH (on /dev/azbusec<N>): in queue; out the ring geometry. */
struct azbuse_attach {
	__u16 queue; /* in */
	__u16 flags; /* in: must be 0 */
	__u32 nr_queues;
	__u32 sq_entries; /* power of 2 */
	__u32 cq_entries; /* power of 2 */
	__u32 sq_offset;  /* byte offset of the SQ in the ring region */
	__u32 cq_offset;  /* byte offset of the CQ in the ring region */
	__u32 ring_bytes; /* mmap length at AZBUSE_MMAP_RING_OFF */
	__u32 slot_bytes; /* data bytes per tag */
	__u32 nr_slots;	  /* tags: 0 <= tag < nr_slots */
	__u32 logical_block_size;
	__u64 data_bytes; /* mmap length at AZBUSE_MMAP_DATA_OFF */
	__u64 size_bytes;
	__u64 features;
	__u64 cpus_ptr;	  /* in: buffer for the queue's CPUs (bit n%8 of byte n/8 = CPU n), or 0 */
	__u32 cpus_bytes; /* in: its size; out: bytes the full map needs */
	__s32 numa_node;  /* out: NUMA node of the queue's CPUs, -1 if none */
	/*
	 * in: before sleeping, COMMIT polls up to this long for new requests
	 * (at most AZBUSE_MAX_POLL_US), while the idle gaps it has seen are that
	 * short and no other task wants the CPU; 0: never poll. While it polls,
	 * a request posted alone to the ring is waited for (as long) and ended
	 * by its submitter in queue_rq: QUEUE_INFO's sync_ends.
	 */
	__u32 poll_us;
	__u32 reserved0;
	__u64 reserved[1];
};

#define AZBUSE_MAX_POLL_US 1000000

/* mmap offsets on /dev/azbusec<N> after ATTACH. */
#define AZBUSE_MMAP_RING_OFF 0ULL
#define AZBUSE_MMAP_DATA_OFF (1ULL << 32)
#define AZBUSE_MMAP_MAP_OFF (2ULL << 32) /* DIRECT_MAP: length azbuse_map_hdr.region_bytes */

/*
 * The direct map region: this header (the module writes all but epoch),
 * the engine's own bytes (map_user_bytes, zeroed at ADD), then one __u64
 * entry per chunk at entries_offset (page aligned), all zero (UNKNOWN) at
 * ADD. Pages cost memory once touched. The module reads entries and epoch
 * with single 64-bit loads; the engine writes each with one 64-bit store.
 */
struct azbuse_map_hdr {
	__u64 epoch; /* the engine's current write epoch */
	__u64 nr_chunks;
	__u32 chunk_bytes;
	__u32 entries_offset;
	__u64 region_bytes;
	__u32 user_offset; /* where the engine's bytes start */
	__u32 user_bytes;
	__u64 reserved[3];
};

/* Map entry: kind in bits 62-63, epoch stamp in 40-61, chunk in its backing file in 0-39. */
#define AZBUSE_MAP_KIND_SHIFT 62
#define AZBUSE_MAP_UNKNOWN 0ULL /* the module does not serve it */
#define AZBUSE_MAP_ZERO 1ULL	/* reads as zeros */
#define AZBUSE_MAP_SHARED 2ULL	/* read-only at the chunk given */
#define AZBUSE_MAP_OWNED 3ULL	/* writable while its stamp is the epoch's low bits */
#define AZBUSE_MAP_EPOCH_SHIFT 40
#define AZBUSE_MAP_EPOCH_BITS 22
#define AZBUSE_MAP_PHYS_BITS 40

/*
 * SET_BACKING: the backing file of the chunks this queue's ring owns
 * (sharded: its shard's; else every chunk's, on any queue); set once per
 * ring (the same file again is accepted), kept until the device is freed.
 * A regular file that takes O_DIRECT, or a block device other than this one
 * whose logical block is no larger than this device's; open for reading,
 * and for writing unless the device is read-only.
 */
struct azbuse_backing {
	__s32 fd;
	__u32 flags; /* must be 0 */
	__u64 reserved[3];
};

/*
 * The ring header at offset 0 of the ring region. Each side writes only its
 * own cache line and keeps a private copy of everything it reads.
 */
struct azbuse_ring_header {
	/* written by the kernel */
	__u32 sq_tail; /* next submission slot the kernel fills */
	__u32 cq_head; /* next completion the kernel consumes */
	__u32 kflags;  /* AZBUSE_KF_* */
	__u32 posted;  /* requests queued for this ring so far (mod 2^32) */
	__u32 fetched; /* of those, moved into the submission ring by COMMIT */
	__u32 kpad[11];
	/* written by the worker */
	__u32 sq_head; /* next submission the worker consumes */
	__u32 cq_tail; /* next completion slot the worker fills */
	__u32 wflags;  /* reserved for the worker, ignored by the kernel */
	__u32 wpad[13];
};

#define AZBUSE_KF_DEAD (1U << 0) /* device is going away: finish and exit */

struct azbuse_sqe {
	__u64 sector; /* 512-byte units */
	__u64 flags;  /* AZBUSE_RQ_* */
	__u32 len;    /* bytes (0 for FLUSH) */
	__u32 tag;    /* data slot: tag * slot_bytes in the data area */
	__u32 seq;    /* echo in the completion */
	__u8 op;      /* AZBUSE_OP_* */
	__u8 reserved0;
	__u16 ioprio; /* IOPRIO_PRIO_VALUE(class, level) */
};

struct azbuse_cqe {
	__u32 tag;
	__u32 seq;
	__s32 result;	/* 0 or -errno */
	__u32 flags;	/* AZBUSE_CQE_F_*, with result 0 only */
	__u64 addr;	/* COPY: a buffer of the request's length in the worker; REDIRECT: a ring */
	__u64 reserved; /* must be 0 */
};

/*
 * Completion flags. COPY: the kernel copies between the request's pages and
 * the worker's buffer at addr (READ: from it; WRITE: into it), in the
 * COMMIT that consumes the completion (so in the worker's address space); a
 * fault fails the request with EIO. ZERO (READ): the kernel zero-fills the
 * request. Either saves the copy through the data slot.
 */
#define AZBUSE_CQE_F_COPY (1U << 0)
#define AZBUSE_CQE_F_ZERO (1U << 1)
/*
 * REDIRECT (sharded devices): the request is not done; post it again,
 * unchanged, to ring addr (not this one), whose worker gets it as a new
 * submission. A request may be redirected AZBUSE_MAX_REDIRECTS times; one
 * more fails it with EIO (and counts as rejected), so two workers cannot
 * pass it back and forth for ever. A FLUSH is not redirected (EIO,
 * rejected): it goes to every shard's ring in turn, and each must do its
 * own part.
 */
#define AZBUSE_CQE_F_REDIRECT (1U << 2)
#define AZBUSE_CQE_F_ALL ((1U << 3) - 1)
#define AZBUSE_MAX_REDIRECTS 4

/*
 * CACHE_ATTACH (on /dev/azbusectl): the module serves a read that the
 * device's RAM cache (cache/, --cache) holds whole by itself, in queue_rq,
 * without a round trip through a worker. The supervisor names the cache's
 * shared region in its own address space; the module pins its pages for as
 * long as it stays attached. Nothing in the region is trusted: every offset
 * and index is checked against the region's length before use, and a lookup
 * counts only if its partition's change counter was even and the same before
 * and after it (a seqcount that userspace makes odd while it holds the
 * partition's lock). len 0 detaches; so do a TAKEOVER, the close of the
 * owner's /dev/azbusectl and removal.
 */
struct azbuse_cache_attach {
	__u32 dev_id;
	__u32 flags; /* must be 0 */
	__u64 addr;  /* the region's start, page aligned */
	__u64 len;   /* a multiple of the page size, at least region_bytes; 0: detach */
	__u64 reserved[2];
};

/* The cache region as the module reads it (cache/cache.c lays it out). */
#define AZBUSE_CACHE_MAGIC 0x415a424341434845ULL /* "AZBCACHE" */
#define AZBUSE_CACHE_NIL 0xffffffffU		 /* no slot */
#define AZBUSE_CACHE_LOCK_BYTES 64		 /* a partition's lock: userspace's */
#define AZBUSE_CACHE_SLOT_CLEAN 2
#define AZBUSE_CACHE_SLOT_DIRTY 3
#define AZBUSE_CACHE_FREQ_MAX 3
#define AZBUSE_CACHE_MODE_PASSTHROUGH 2 /* no hits served */
#define AZBUSE_CACHE_POLICY_S3FIFO 0	/* the module serves hits only under it */
#define AZBUSE_CACHE_MAX_PARTS 256
#define AZBUSE_CACHE_BUCKET_SALT 0x9e3779b97f4a7c15ULL

/* At the region's start. */
struct azbuse_cache_region {
	__u64 magic;
	__u64 region_bytes;
	__u32 block_size; /* a power of two, 512..1 MiB */
	__u32 nr_parts;
	__u32 policy; /* may change at any time */
	__u32 mode;   /* may change at any time */
	__u64 part_off;
	__u32 part_stride; /* partition k at part_off + k * part_stride */
	__u32 slot_stride;
	__u64 qstat_off;
	__u32 queues; /* per-queue counters: qstat_off + q * qstat_stride */
	__u32 qstat_stride;
};

/* A partition: blocks whose azbuse_cache_mix64(block) % nr_parts is its index. */
struct azbuse_cache_part {
	__u8 lock[AZBUSE_CACHE_LOCK_BYTES];
	__u64 slot_off;	  /* nr_slots slots of slot_stride bytes */
	__u64 bucket_off; /* nr_buckets __u32 slot indexes: hash chains' heads */
	__u64 ghost_off;
	__u64 data_off; /* nr_slots blocks of data */
	__u32 nr_slots;
	__u32 nr_buckets; /* a power of two; block b's chain: hash_bucket(b) & (nr_buckets - 1) */
	__u32 limit;
	__u32 change; /* odd while userspace changes the partition */
};

struct azbuse_cache_slot {
	__u64 blk;
	__u64 seq;
	__u64 since;
	__u32 prev, next;
	__u32 hnext; /* the hash chain's next slot, or AZBUSE_CACHE_NIL */
	__u16 owner, fail_gen;
	__u8 state; /* AZBUSE_CACHE_SLOT_*: only CLEAN and DIRTY slots hold data */
	__u8 queue;
	__u8 freq; /* S3-FIFO's hit count, up to AZBUSE_CACHE_FREQ_MAX (a hint) */
	__u8 written;
	__u32 pad;
};

/* One queue's counters; the module adds to module_hits and module_blocks. */
struct azbuse_cache_qstat {
	__u64 read_hits, read_misses, absorbed, through, bypassed, writebacks, writeback_errors;
	__u64 module_hits;   /* reads the module served whole from the cache */
	__u64 module_blocks; /* ... and their blocks */
};

static inline __u64 azbuse_cache_mix64(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline __u64 azbuse_cache_bucket_hash(__u64 blk)
{
	return azbuse_cache_mix64(blk ^ AZBUSE_CACHE_BUCKET_SALT);
}

#define AZBUSE_IOC_MAGIC 0xB7

/* /dev/azbusectl */
#define AZBUSE_CTL_VERSION _IOR(AZBUSE_IOC_MAGIC, 0x00, struct azbuse_version)
#define AZBUSE_CTL_ADD _IOWR(AZBUSE_IOC_MAGIC, 0x01, struct azbuse_dev_info)
#define AZBUSE_CTL_START _IOW(AZBUSE_IOC_MAGIC, 0x02, struct azbuse_dev_cmd)
#define AZBUSE_CTL_REMOVE _IOW(AZBUSE_IOC_MAGIC, 0x03, struct azbuse_dev_cmd)
#define AZBUSE_CTL_INFO _IOWR(AZBUSE_IOC_MAGIC, 0x04, struct azbuse_dev_info)
#define AZBUSE_CTL_LIST _IOWR(AZBUSE_IOC_MAGIC, 0x05, struct azbuse_dev_list)
#define AZBUSE_CTL_QUEUE_INFO _IOWR(AZBUSE_IOC_MAGIC, 0x06, struct azbuse_queue_info)
/* a new supervisor takes over a live device whose supervisor died (owner_pid := caller) */
#define AZBUSE_CTL_TAKEOVER _IOW(AZBUSE_IOC_MAGIC, 0x07, struct azbuse_dev_cmd)
#define AZBUSE_CTL_CACHE_ATTACH _IOW(AZBUSE_IOC_MAGIC, 0x08, struct azbuse_cache_attach)
#define AZBUSE_CTL_RESIZE _IOW(AZBUSE_IOC_MAGIC, 0x09, struct azbuse_dev_resize)

/* /dev/azbusec<N> */
#define AZBUSE_IOC_ATTACH _IOWR(AZBUSE_IOC_MAGIC, 0x20, struct azbuse_attach)
/* argument: timeout in ms (0: do not sleep; AZBUSE_WAIT_FOREVER) */
#define AZBUSE_IOC_COMMIT _IO(AZBUSE_IOC_MAGIC, 0x21)
/* wake the worker sleeping in COMMIT on this file's queue */
#define AZBUSE_IOC_KICK _IO(AZBUSE_IOC_MAGIC, 0x22)
#define AZBUSE_IOC_SET_BACKING _IOW(AZBUSE_IOC_MAGIC, 0x23, struct azbuse_backing)
/* DIRECT_MAP: return once every I/O the module started before the call has ended */
#define AZBUSE_IOC_MAP_SYNC _IO(AZBUSE_IOC_MAGIC, 0x24)
#define AZBUSE_WAIT_FOREVER 0xffffffffUL

/*
 * Layout checks, expanded by both sides: the kernel inside a function with
 * BUILD_BUG_ON, userspace at file scope with _Static_assert.
 */
#define AZBUSE_ABI_CHECKS(check)                                                                   \
	check(sizeof(struct azbuse_dev_info) == 128);                                              \
	check(__builtin_offsetof(struct azbuse_dev_info, size_bytes) == 16);                       \
	check(__builtin_offsetof(struct azbuse_dev_info, features) == 24);                         \
	check(__builtin_offsetof(struct azbuse_dev_info, logical_block_size) == 32);               \
	check(__builtin_offsetof(struct azbuse_dev_info, recovery_timeout_ms) == 60);              \
	check(__builtin_offsetof(struct azbuse_dev_info, nr_hw_queues) == 68);                     \
	check(__builtin_offsetof(struct azbuse_dev_info, map_user_bytes) == 76);                   \
	check(__builtin_offsetof(struct azbuse_dev_info, reserved) == 80);                         \
	check(sizeof(struct azbuse_map_hdr) == 64);                                                \
	check(__builtin_offsetof(struct azbuse_map_hdr, entries_offset) == 20);                    \
	check(sizeof(struct azbuse_backing) == 32);                                                \
	check(sizeof(struct azbuse_dev_cmd) == 32);                                                \
	check(sizeof(struct azbuse_dev_list) == 32);                                               \
	check(__builtin_offsetof(struct azbuse_dev_list, count) == 12);                            \
	check(sizeof(struct azbuse_queue_info) == 144);                                            \
	check(__builtin_offsetof(struct azbuse_queue_info, requests) == 16);                       \
	check(__builtin_offsetof(struct azbuse_queue_info, failed) == 72);                         \
	check(__builtin_offsetof(struct azbuse_queue_info, wait_ns) == 88);                        \
	check(__builtin_offsetof(struct azbuse_queue_info, errors) == 136);                        \
	check(sizeof(struct azbuse_version) == 64);                                                \
	check(sizeof(struct azbuse_attach) == 96);                                                 \
	check(__builtin_offsetof(struct azbuse_attach, poll_us) == 80);                            \
	check(__builtin_offsetof(struct azbuse_attach, logical_block_size) == 36);                 \
	check(__builtin_offsetof(struct azbuse_attach, data_bytes) == 40);                         \
	check(__builtin_offsetof(struct azbuse_attach, features) == 56);                           \
	check(__builtin_offsetof(struct azbuse_attach, cpus_ptr) == 64);                           \
	check(__builtin_offsetof(struct azbuse_attach, numa_node) == 76);                          \
	check(sizeof(struct azbuse_ring_header) == 128);                                           \
	check(__builtin_offsetof(struct azbuse_ring_header, sq_head) == 64);                       \
	check(__builtin_offsetof(struct azbuse_ring_header, cq_tail) == 68);                       \
	check(sizeof(struct azbuse_sqe) == 32);                                                    \
	check(__builtin_offsetof(struct azbuse_sqe, len) == 16);                                   \
	check(__builtin_offsetof(struct azbuse_sqe, seq) == 24);                                   \
	check(__builtin_offsetof(struct azbuse_sqe, op) == 28);                                    \
	check(__builtin_offsetof(struct azbuse_sqe, ioprio) == 30);                                \
	check(sizeof(struct azbuse_cqe) == 32);                                                    \
	check(sizeof(struct azbuse_cache_attach) == 40);                                           \
	check(sizeof(struct azbuse_dev_resize) == 32);                                             \
	check(sizeof(struct azbuse_cache_region) == 64);                                           \
	check(sizeof(struct azbuse_cache_part) == 112);                                            \
	check(__builtin_offsetof(struct azbuse_cache_part, change) == 108);                        \
	check(sizeof(struct azbuse_cache_slot) == 48);                                             \
	check(__builtin_offsetof(struct azbuse_cache_slot, state) == 40);                          \
	check(sizeof(struct azbuse_cache_qstat) == 72);                                            \
	check(__builtin_offsetof(struct azbuse_cqe, result) == 8);                                 \
	check(__builtin_offsetof(struct azbuse_cqe, flags) == 12);                                 \
	check(__builtin_offsetof(struct azbuse_cqe, addr) == 16)

#endif /* _UAPI_AZBUSE_H */
