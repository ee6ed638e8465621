/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * azbuse/azbuse.h - for programs that create and manage azbuse devices:
 * the control-device calls, and running a device served by an engine
 * (a supervisor with one worker process per queue).
 * Every function returns 0 (or a count) on success and -errno on failure.
 */
#ifndef AZBUSE_AZBUSE_H
#define AZBUSE_AZBUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <azbuse/engine.h>
#include <azbuse/uapi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* /dev/azbusectl */
int azbuse_ctl_open(void); /* a file descriptor, or -errno */
int azbuse_ctl_version(int ctl, struct azbuse_version *v);
int azbuse_ctl_add(int ctl, struct azbuse_dev_info *info);
int azbuse_ctl_start(int ctl, uint32_t dev_id);
int azbuse_ctl_takeover(int ctl, uint32_t dev_id);
/* The module serves reads that the cache region [addr, addr + len) holds
 * (len 0: no longer); -ENOTTY from a module without it. */
int azbuse_ctl_cache_attach(int ctl, uint32_t dev_id, void *addr, uint64_t len);
/* The device's size becomes size_bytes (the engine serves the new range). */
int azbuse_ctl_resize(int ctl, uint32_t dev_id, uint64_t size_bytes);
/* Removes the device even if it is open (its openers' I/O fails from then on). */
int azbuse_ctl_remove(int ctl, uint32_t dev_id);
/* Removes it only if nothing has it open or mounted: -EBUSY otherwise
 * (-EINVAL from a module older than this check). */
int azbuse_ctl_remove_unused(int ctl, uint32_t dev_id);
int azbuse_ctl_info(int ctl, uint32_t dev_id, struct azbuse_dev_info *info);
int azbuse_ctl_queue_info(int ctl, uint32_t dev_id, uint16_t queue, struct azbuse_queue_info *qi);
/* Fills ids[0..min(count, capacity)) and returns the number of devices. */
int azbuse_ctl_list(int ctl, uint32_t *ids, uint32_t capacity);

/* Where a worker runs (see worker.c). */
enum azbuse_pin {
	AZBUSE_PIN_NODE = 0, /* any CPU of the queue's NUMA node; memory from that node */
	AZBUSE_PIN_CPUS = 1, /* only the CPUs that submit to the queue */
	AZBUSE_PIN_NONE = 2, /* anywhere */
};

/* How a worker is scheduled (see worker.c). */
enum azbuse_sched {
	AZBUSE_SCHED_BATCH = 0,	 /* SCHED_BATCH: a new request never preempts its submitter */
	AZBUSE_SCHED_NORMAL = 1, /* SCHED_OTHER: woken workers may preempt at once */
};

/*
 * The default poll limit: long enough for a worker to serve a small request
 * and come back, so that depth-1 I/O completes without a wake-up at either
 * end (measured under emulation, where a round trip takes 30-80 us).
 */
#define AZBUSE_DEF_POLL_US 100

/*
 * How to run a device. Zero means "default" for every numeric field but
 * poll_us; start from azbuse_device_opts_init().
 */
struct azbuse_device_opts {
	uint32_t dev_id; /* AZBUSE_DEV_ID_ANY for the lowest free id */
	uint64_t size_bytes;
	uint16_t nr_queues;
	uint16_t queue_depth;
	uint32_t max_io_bytes;
	uint32_t logical_block_size;
	uint32_t io_timeout_ms;
	uint32_t recovery_timeout_ms;
	/*
	 * Poll this long in COMMIT for the next request before sleeping, while
	 * requests come that fast, and let a depth-1 submitter wait as long for
	 * its completion (azbuse_device_opts_init: AZBUSE_DEF_POLL_US; 0: never).
	 */
	uint32_t poll_us;
	bool read_only;
	enum azbuse_pin pin;
	const char *trace_path; /* NULL, or a file that gets one line per request */
	bool recover;		/* take over the live device dev_id instead of adding one */
	const struct azbuse_option *options;
	size_t nr_options;
	int ready_fd; /* -1, or a pipe that gets "OK <id>\n" or "ERR <message>\n", then is closed */
	/*
	 * Sharded mode: nr_shards workers, each owning every nr_shards-th chunk
	 * of shard_chunk_bytes (0: AZBUSE_DEF_SHARD_CHUNK_BYTES) whatever CPU
	 * submits; 0 for one worker per CPU queue. An engine may ask for it.
	 */
	uint16_t nr_shards;
	uint32_t shard_chunk_bytes;
	/*
	 * Sharded: reads and writes go to the worker of the queue they were
	 * submitted on (--route queue), not to their chunk's shard (--route
	 * chunk, the default), if the engine can serve them there.
	 */
	bool route_queue;
	bool route_chosen; /* --route was given: the engine keeps that choice */
	enum azbuse_sched sched;
	/*
	 * A RAM cache of the device's blocks in front of the engine, shared by
	 * all its workers (cache/, --cache SIZE): 0 for none. cache_mode is
	 * AZBUSE_CACHE_WRITETHROUGH, _WRITEAROUND, _PASSTHROUGH or _WRITEBACK; cache_policy
	 * AZBUSE_CACHE_S3FIFO or _LRU.
	 */
	uint64_t cache_bytes;
	uint8_t cache_mode;
	uint8_t cache_policy;
};

#define AZBUSE_CACHE_WRITETHROUGH 0
#define AZBUSE_CACHE_WRITEAROUND 1
#define AZBUSE_CACHE_PASSTHROUGH 2
#define AZBUSE_CACHE_WRITEBACK 3
#define AZBUSE_CACHE_S3FIFO 0
#define AZBUSE_CACHE_LRU 1
#define AZBUSE_CACHE_BLOCK 4096 /* the cache's block: reads and writes aligned to it use it */

#define AZBUSE_DEF_SHARD_CHUNK_BYTES (1U << 20)

void azbuse_device_opts_init(struct azbuse_device_opts *o);

/*
 * Set the engine up, add the device, start a worker per queue, start the
 * device, and supervise (restarting crashed workers) until the device is
 * removed or SIGTERM/SIGINT arrives, which removes it after draining.
 */
int azbuse_run(const struct azbuse_engine_ops *ops, const struct azbuse_device_opts *o);

/*
 * A complete command line for an engine program:
 *   PROG [ID] --size SIZE [--queues N] [--depth N] [--foreground] [-o KEY=VALUE] ...
 * Returns the process exit code.
 */
int azbuse_main(int argc, char **argv, const struct azbuse_engine_ops *ops);

#ifdef __cplusplus
}
#endif

#endif /* AZBUSE_AZBUSE_H */
