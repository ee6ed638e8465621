/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * azbuse/engine.h - the API a storage engine implements: one ops table of
 * callbacks, called in worker processes with requests exactly as the block
 * layer gave them (op, flags, priority), completed with azbuse_complete()
 * either inside the callback or later, from any thread.
 */
#ifndef AZBUSE_ENGINE_H
#define AZBUSE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <azbuse/uapi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AZBUSE_ENGINE_API_VERSION 1

/* The supervisor's side of an engine control request (see ops->control). */
struct azbuse_control;

/*
 * What an engine can do is said once. Its callbacks say the ops: a flush
 * callback gives the device a volatile write cache (FLUSH requests arrive),
 * discard, write_zeroes and secure_erase callbacks advertise those, no
 * write callback makes it read-only. setup() sets in cfg->caps only what a
 * callback cannot say: FUA, read-only, rotational, user copy. (FLUSH,
 * DISCARD, WRITE_ZEROES and SECURE_ERASE bits there change nothing: they
 * are kept for engines written when they did.)
 */
#define AZBUSE_CAP_FLUSH (1u << 0)   /* (implied by ops->flush) */
#define AZBUSE_CAP_FUA (1u << 1)     /* writes may carry AZBUSE_RQ_FUA (needs a flush callback) */
#define AZBUSE_CAP_DISCARD (1u << 2) /* (implied by ops->discard) */
#define AZBUSE_CAP_WRITE_ZEROES (1u << 3) /* (implied by ops->write_zeroes) */
#define AZBUSE_CAP_SECURE_ERASE (1u << 4) /* (implied by ops->secure_erase) */
#define AZBUSE_CAP_READ_ONLY (1u << 5)	  /* also without a write callback; no discard then */
#define AZBUSE_CAP_ROTATIONAL (1u << 6)
/*
 * User copy: a WRITE's data is not in io->buf (it is NULL). The engine
 * completes each write with azbuse_complete_copy(io, where_it_goes), and the
 * module copies the data there straight from the request, once: for an
 * engine whose data lives in its own memory (mem), that halves the copying.
 * azbuse_complete(io, 0) on such a write drops its data.
 */
#define AZBUSE_CAP_USER_COPY (1u << 7)

/*
 * One request. The engine reads these fields and must not change them
 * (engine_data is its own); libazbuse keeps its own state about the
 * request elsewhere.
 */
struct azbuse_io {
	uint8_t op;	      /* AZBUSE_OP_* */
	uint16_t ioprio;      /* IOPRIO_PRIO_VALUE(class, level) */
	uint32_t tag;	      /* the request's tag in its queue (for tracing) */
	uint64_t flags;	      /* AZBUSE_RQ_* */
	uint64_t offset;      /* bytes */
	uint32_t len;	      /* bytes */
	void *buf;	      /* READ: fill len bytes; WRITE: len bytes to store */
	void *engine_data[2]; /* free for the engine while the request is in flight */
};

/* Key/value options given to the engine (--size, --path, -o key=value). */
struct azbuse_option {
	const char *key;
	const char *value;
};

/* What the engine's setup() is told and decides, in the supervisor. */
struct azbuse_engine_config {
	uint64_t size_bytes;	     /* in: --size, 0 if not given; out: device size */
	uint32_t logical_block_size; /* in/out */
	uint32_t nr_queues;	     /* in: number of worker processes */
	uint32_t caps;		     /* out: AZBUSE_CAP_* */
	uint32_t reserved0;
	const struct azbuse_option *options;
	size_t nr_options;
	char *error; /* out: setup() may write a message here */
	size_t error_size;

	/*
	 * Taking over a live device whose supervisor died (azbusectl add --recover):
	 * setup() must reopen the state it made before (named by the options it
	 * recorded in recover_options) and create nothing.
	 */
	int recovering;
	/* out: "KEY=VALUE" lines to add to the options when recovering */
	char *recover_options;
	size_t recover_options_size;

	/*
	 * in/out: sharded mode's chunk (--shards), 0 if not sharded. An engine
	 * that needs each worker to own a fixed part of the address space sets
	 * it (a power of two, >= 4 KiB) and nr_queues (the shard count); the
	 * worker of queue q then gets exactly the chunks c with c % nr_queues == q.
	 */
	uint32_t shard_chunk_bytes;
	/*
	 * in/out, sharded only: reads and writes go to the worker of the queue
	 * they were submitted on, not to their chunk's shard (--route queue);
	 * that worker serves them or hands them on (azbuse_complete_redirect).
	 * An engine that cannot serve chunks of other shards clears it; one
	 * that serves best that way sets it unless route_chosen.
	 */
	bool route_queue;
	bool route_chosen; /* in: the user gave --route */
	uint8_t reserved1[2];
	/*
	 * out: ask for a direct map (AZBUSE_F_DIRECT_MAP) of chunks of this
	 * many bytes (a power of two, 4 KiB up to shard_chunk_bytes; 0: none),
	 * with direct_map_user_bytes for the engine's own use in it. Each
	 * worker gets it mapped (azbuse_queue_params.direct_map) and sets its
	 * queue's backing file (azbuse_set_backing); the module then serves
	 * reads and overwrites of the chunks published in it by itself.
	 */
	uint32_t direct_map_chunk_bytes;
	uint32_t direct_map_user_bytes;
	/*
	 * out, optional: the device belongs to a group of devices that one
	 * daemon serves together, each worker serving its queue of every
	 * device of the group (a thin pool, whose shards each have one writer
	 * process: the pool's directory). setup() returns -EALREADY with group
	 * set when another daemon serves the group: the device is then handed
	 * to that daemon, which runs setup() for it in its own process.
	 */
	char group[512];
};

/* What a worker is told when it opens its queue. */
struct azbuse_queue_params {
	uint16_t queue;
	uint16_t nr_queues;
	uint32_t nr_slots;
	uint64_t size_bytes;
	int numa_node;
	/*
	 * A direct-map device (direct_map_chunk_bytes in the config): the map
	 * the module serves from, mapped into this worker (struct
	 * azbuse_map_hdr first; uapi.h says the rest). NULL otherwise.
	 */
	void *direct_map;
	uint64_t direct_map_bytes;
	uint32_t dev_id; /* the device: /dev/azbuse<dev_id> (azbuse_ctl_* calls) */
	/*
	 * The ring's data buffers as mapped into this worker: the buf of every
	 * request the module hands over lies within (an engine may register
	 * them once, e.g. as an io_uring fixed buffer, instead of having the
	 * kernel pin them for each direct I/O).
	 */
	void *data_area;
	uint64_t data_area_bytes;
};

/*
 * The ops table. Set struct_size to sizeof(struct azbuse_engine_ops) and
 * api_version to AZBUSE_ENGINE_API_VERSION (AZBUSE_ENGINE_INIT does both);
 * new callbacks only ever go at the end, so an engine built against an
 * older libazbuse (a smaller api_version and struct_size) still runs. Each
 * request callback must lead to exactly one azbuse_complete() of its io. A
 * NULL request callback means the op is not supported (and, for
 * flush/discard/write_zeroes/secure_erase, that the device does not
 * advertise it).
 */
struct azbuse_engine_ops {
	uint32_t struct_size;
	uint32_t api_version;
	const char *name;
	const char *description;
	const char *const *option_keys; /* NULL-terminated keys the engine accepts */

	/*
	 * In the supervisor, before workers start: parse options, decide size
	 * and caps, and make the state every queue must see. One process per
	 * queue: each worker is forked from the supervisor (a crashed one is
	 * replaced by a new fork), so memory set up here with MAP_SHARED (or a
	 * file every worker opens) is one state for all of them and survives a
	 * worker's death; what a worker allocates in open_queue is its alone.
	 * Plain memory of the engine struct is each worker's copy as it was at
	 * the fork. engine/examples/example_engine.c shows the pattern.
	 */
	int (*setup)(struct azbuse_engine_config *cfg, void **engine);
	/* In the supervisor, after every worker has exited. */
	void (*teardown)(void *engine);
	/* In each worker process. close_queue should make acknowledged writes durable. */
	int (*open_queue)(void *engine, const struct azbuse_queue_params *p, void **queue);
	void (*close_queue)(void *queue);

	void (*read)(void *queue, struct azbuse_io *io);
	void (*write)(void *queue, struct azbuse_io *io);
	void (*flush)(void *queue, struct azbuse_io *io);
	void (*discard)(void *queue, struct azbuse_io *io);
	void (*write_zeroes)(void *queue, struct azbuse_io *io);
	void (*secure_erase)(void *queue, struct azbuse_io *io);

	/*
	 * Optional: after the worker has handed over a batch of requests, before
	 * it commits and maybe sleeps: the place to submit what the callbacks
	 * only prepared (one io_uring_enter for the batch).
	 */
	void (*batch_end)(void *queue);

	/*
	 * Optional, in the supervisor: a request that arrived on the device's
	 * control socket (AZBUSE_CONTROL_DIR/azbuse<N>.sock, one line, see
	 * azbusectl's `control` command) whose first word is the engine's
	 * name; `request` is the rest of the line. Write any output (lines) to
	 * `reply`; return 0 or -errno (then `reply` holds the message). Within
	 * it, azbuse_control_pause() stops every worker at a request boundary
	 * and azbuse_control_broadcast() runs queue_control in each. The
	 * supervisor's memory is what restarted workers are forked from: keep
	 * the engine's state there up to date too.
	 */
	int (*control)(void *engine, struct azbuse_control *ctl, const char *request, char *reply,
		       size_t reply_size);
	/*
	 * Optional, in each worker: a message from the supervisor's control()
	 * (azbuse_control_broadcast). May write up to *reply_len bytes to
	 * `reply` and set *reply_len. Returns 0 or -errno.
	 */
	int (*queue_control)(void *queue, const void *msg, size_t len, void *reply,
			     size_t *reply_len);
	/*
	 * Optional, in each worker: background work (a cleaner, a copy put
	 * off), called when the worker has no request to serve. Do a bounded
	 * piece and return within a millisecond or so; return 0 when nothing is
	 * left, else how many milliseconds the worker may wait for requests
	 * before it calls again (it calls at once when a turn ends with none).
	 */
	unsigned (*idle)(void *queue);
};

/* The smallest ops table libazbuse accepts; fields past it may be absent. */
#define AZBUSE_ENGINE_OPS_MIN_SIZE offsetof(struct azbuse_engine_ops, batch_end)

#define AZBUSE_ENGINE_INIT                                                                         \
	.struct_size = sizeof(struct azbuse_engine_ops), .api_version = AZBUSE_ENGINE_API_VERSION

#define AZBUSE_CONTROL_DIR "/run/azbuse"
#define AZBUSE_CONTROL_MSG_MAX 65536

/*
 * Every running worker finishes and completes the requests its engine
 * holds, then takes no new ones until azbuse_control_resume(): nothing is
 * acknowledged in between, so whatever the engine does meanwhile sits at
 * one point in the order of completions on every queue. 0 or -errno (then
 * nothing is paused).
 */
int azbuse_control_pause(struct azbuse_control *ctl);
/*
 * Run queue_control(msg) in every running worker (paused or not). reply_fn,
 * if given, gets each worker's reply. Returns 0 or the first -errno a worker
 * returned. A worker that does not answer at all is killed, and its
 * successor is forked from the supervisor's memory: update the engine's
 * state there before broadcasting.
 */
int azbuse_control_broadcast(struct azbuse_control *ctl, const void *msg, size_t len,
			     void (*reply_fn)(uint16_t queue, int result, const void *reply,
					      size_t len, void *arg),
			     void *arg);
void azbuse_control_resume(struct azbuse_control *ctl);

/* Complete a request: result 0 or -errno. Thread-safe; call once per io. */
void azbuse_complete(struct azbuse_io *io, int result);
/*
 * Complete a READ or WRITE successfully, the module moving its data between
 * the request and buf, the engine's own memory (READ: len bytes from buf;
 * WRITE: len bytes into buf), instead of through io->buf: one copy fewer.
 * buf must stay valid, and for a READ unchanged, until the worker's next
 * COMMIT, which happens after the current batch. Thread-safe.
 */
void azbuse_complete_copy(struct azbuse_io *io, void *buf);
/* Complete a READ successfully as zeros, filled by the module. Thread-safe. */
void azbuse_complete_zeroes(struct azbuse_io *io);
/*
 * Sharded devices: this worker does not serve the request; the module posts
 * it again, unchanged, to queue `queue` (another worker's), whose worker
 * gets it as a new request. With route_queue, reads and writes arrive at the
 * worker of the queue they were submitted on, whatever shard owns them:
 * this hands those that need the owner (say, to change metadata) to it.
 * A request can be handed on AZBUSE_MAX_REDIRECTS times; once more fails it
 * with EIO. Thread-safe.
 */
void azbuse_complete_redirect(struct azbuse_io *io, uint16_t queue);

/*
 * A line in the daemon's log (stderr: the journal under systemd, which
 * files it under the level; else a file in /run/azbuse with the time and
 * level), prefixed with who says it ("azbuse1 worker 0"). From any process
 * of the device, any thread.
 */
#define AZBUSE_LOG_ERR 3
#define AZBUSE_LOG_WARN 4
#define AZBUSE_LOG_INFO 6
void azbuse_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * In a worker of a direct-map device, from open_queue on: the backing file
 * of the chunks its queue owns (all chunks if not sharded), which the module
 * reads and writes with direct I/O where the map says. Once per queue (the
 * same file again is fine). 0 or -errno.
 */
int azbuse_set_backing(int fd);
/*
 * In a worker of a direct-map device: return once every I/O the module
 * started before the call (from map entries as they were) has ended. Call
 * it after unpublishing entries, before reusing what they pointed to.
 */
int azbuse_direct_map_sync(void);

/*
 * From open_queue: an engine with I/O of its own in flight (an io_uring's
 * reads and writes) hands the worker loop the fd that becomes readable when
 * some of it ends (the io_uring's ring fd). The loop calls ready(queue) on
 * the worker's own thread at every turn: there the engine completes what
 * has ended (azbuse_complete there needs no hand-over to the worker, and no
 * reaper thread is needed) and returns how much of its I/O is still in
 * flight. While some is, the worker waits in one place, a poll(2), for new
 * requests and for that fd; with none, it sleeps in COMMIT as usual (with
 * its polling, --poll-us). One fd per queue. 0 or -errno.
 */
int azbuse_queue_watch(int fd, unsigned (*ready)(void *queue));

/* The value of option key, or NULL. */
const char *azbuse_config_option(const struct azbuse_engine_config *cfg, const char *key);

/* Parse "512", "4k", "1.5G", "1T" (powers of 1024; a whole number of bytes): 0 or -EINVAL/-ERANGE.
 */
int azbuse_parse_size(const char *text, uint64_t *bytes);
/* bytes for people: "512 B", "64.0 KiB", "1.5 GiB" (into buf; returns buf). */
const char *azbuse_format_size(uint64_t bytes, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* AZBUSE_ENGINE_H */
