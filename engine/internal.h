/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * internal.h - libazbuse's private declarations: the worker's view of one
 * queue, logging, the shared-ring memory-ordering helpers and the device
 * argument parser shared by azbuse_main() and azbusectl.
 */
#ifndef AZBUSE_INTERNAL_H
#define AZBUSE_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <azbuse/azbuse.h>
#include <azbuse/engine.h>

#include "cache.h"

/* Shared-ring loads and stores; each use names the kernel side it pairs with. */
#define azb_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define azb_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define azb_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* A request as libazbuse keeps it: what the engine sees, then libazbuse's own. */
struct azb_io {
	struct azbuse_io io; /* first: an engine's io is an azb_io */
	struct azbuse_queue *queue;
	struct azbuse_io *next_done; /* completions handed over from other threads */
	uint32_t seq;
	int32_t result;
	uint32_t cqe_flags;	 /* AZBUSE_CQE_F_* */
	void *copy_buf;		 /* AZBUSE_CQE_F_COPY */
	uint16_t redirect_queue; /* AZBUSE_CQE_F_REDIRECT */
	uint8_t cache_flags;	 /* the cache's part in it (cache_io.c) */
	uint64_t cache_stamp;	 /* the cache's write stamp when it was dispatched */
};

static inline struct azb_io *azb_io(struct azbuse_io *io)
{
	return (struct azb_io *)io;
}

/* The worker's side of one attached queue. */
struct azbuse_queue {
	int fd;
	uint32_t dev_id;
	struct azbuse_attach geo;
	void *ring_map;
	void *data_map;
	struct azbuse_ring_header *hdr;
	struct azbuse_sqe *sq;
	struct azbuse_cqe *cq;
	uint32_t sq_head;      /* private copy of what we consumed */
	uint32_t cq_tail;      /* private copy of what we posted */
	uint32_t cq_committed; /* cq_tail at the last COMMIT */
	uint32_t outstanding;  /* dispatched to the engine, not yet completed */
	bool device_gone;      /* COMMIT said the device is dead (removed) */
	struct azb_io *ios;    /* one per tag */

	const struct azbuse_engine_ops *ops;
	void *engine_queue;

	_Atomic(struct azbuse_io *) remote_done; /* completions from other threads */
	atomic_int sleeping;

	/* azbuse_queue_watch: the engine's own fd, waited for beside the ring */
	int watch_fd;				     /* -1: none, the loop sleeps in COMMIT */
	unsigned (*watch_ready)(void *engine_queue); /* returns the engine's I/Os in flight */
	unsigned watch_inflight;

	/* COMMIT: the ioctl, or a model of the kernel in unit tests */
	int (*commit)(struct azbuse_queue *q, unsigned long timeout_ms);
	void (*kick)(struct azbuse_queue *q);

	int trace_fd; /* -1, or where each request is described (--trace) */

	uint64_t requests;
	uint64_t commits;
	unsigned idle_ms;	 /* the engine's idle(): 0, or call again within this many ms */
	struct azc_cache *cache; /* the device's RAM cache (shared by its workers), or NULL */
	struct azb_cache_worker *cache_worker; /* this worker's part in it (cache_io.c) */
};

/* Write-backs a worker has in flight at most (internal requests, tags after the kernel's). */
#define AZB_CLEAN_IOS 16

/* The device's RAM cache, made by the supervisor before it forks the
 * workers (--cache), or NULL. */
extern struct azc_cache *azb_device_cache;

/* worker.c */
int azbuse_queue_map(struct azbuse_queue *q, int fd, const struct azbuse_attach *geo, void *ring,
		     void *data);
void azbuse_queue_unmap(struct azbuse_queue *q);
/* Consume new submissions and dispatch them; returns how many. */
uint32_t azbuse_queue_consume(struct azbuse_queue *q);
/* Move completions made on other threads into the completion ring. */
uint32_t azbuse_queue_drain_remote(struct azbuse_queue *q);
/* One turn of the loop: consume, then commit (sleeping if idle). 0, 1 (stop) or -errno. */
int azbuse_queue_turn(struct azbuse_queue *q);
/* Serve a request: through the cache (which may hold it back), then the engine. */
void azb_serve(struct azbuse_queue *q, struct azbuse_io *io);
/* ... the engine only. */
void azb_engine_serve(struct azbuse_queue *q, struct azbuse_io *io);
/* The engine's batch_end, if it has one (what it got since may complete now). */
void azb_engine_batch_end(struct azbuse_queue *q);

/* cache_io.c: the worker's side of the cache */
int azb_cache_worker_open(struct azbuse_queue *q);
void azb_cache_worker_close(struct azbuse_queue *q);
/* true: the cache took the request (completed it or holds it for later) */
bool azb_cache_dispatch(struct azbuse_queue *q, struct azbuse_io *io);
/* A request ends (any thread): what the cache learns from it. */
void azb_cache_done(struct azbuse_io *io);
/* An internal write-back ended (the worker's thread): true if io was one. */
bool azb_cache_clean_done(struct azbuse_queue *q, struct azbuse_io *io);
/* Between batches: requests held back, write-backs, waiting FLUSHes (busy:
 * the turn had requests, and background write-backs give way to them).
 * Returns 0, or within how many ms the worker should call again. */
unsigned azb_cache_work(struct azbuse_queue *q, bool busy);
/* Requests the cache holds back (dispatched, not with the engine). */
uint32_t azb_cache_held(const struct azbuse_queue *q);
/* Whether this worker wrote back every block dirty at drain target (or none is due). */
bool azb_cache_written_back(struct azbuse_queue *q, uint64_t target);
/* Supervisor: write every dirty block back (hold: and keep none dirty until
 * azb_cache_drain_end, which a caller with hold calls whatever this returned),
 * waiting at most timeout_ms. 0, -ETIMEDOUT or -EIO (and a message in err). */
#define AZB_CACHE_DRAIN_MS 100000
int azb_cache_drain(bool hold, unsigned timeout_ms, char *err, size_t err_size);
void azb_cache_drain_end(bool hold);

/* One device a worker serves: what the supervisor set up for it before the fork. */
struct azb_serve_dev {
	const struct azbuse_engine_ops *ops;
	void *engine;
	uint32_t dev_id;
	const struct azbuse_device_opts *opts;
	struct azc_cache *cache; /* the device's RAM cache, or NULL */
};
/* The devices a pool's daemon serves at most (a worker serves one queue of each). */
#define AZB_WORKER_DEVS_MAX 64
/* A worker process: queue `queue` of each of devs[0..nr). 0 when they are gone. */
int azbuse_worker_main(const struct azb_serve_dev *devs, unsigned nr, uint16_t queue, int chan_fd);
/* One turn over several devices' queues (stopped[i]: device i is gone); see worker.c. */
int azbuse_worker_turn(struct azbuse_queue **qs, unsigned n, bool *stopped);

/* The queue being served now (from open_queue on), and azbuse_direct_map_sync for
 * a given one: a worker that serves several devices names the device. */
struct azbuse_queue *azb_queue_now(void);
int azb_direct_map_sync_of(struct azbuse_queue *q);

/* supervisor.c: what the device offers, from the engine's callbacks and flags (cfg.caps). */
uint32_t azb_engine_caps(const struct azbuse_engine_ops *ops, uint32_t flags);

/* Finish what the engine holds and commit every completion (without taking new requests). */
void azbuse_queue_quiesce(struct azbuse_queue *q);

/* control.c */
struct azbuse_control {
	uint32_t dev_id; /* the device whose queues the messages are about */
	uint16_t nr_queues;
	pid_t *workers; /* per queue; 0 when not running */
	int *chans;	/* per queue: the supervisor's end of the worker channel, or -1 */
	bool paused;
};
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t azb_clock_ms(void);
void azb_control_path(uint32_t dev_id, char *path, size_t len);
int azb_control_listen(uint32_t dev_id);
void azb_control_close(uint32_t dev_id, int fd);
/* A group's socket (azbuse_engine_config.group), where devices join its daemon. */
void azb_group_path(const char *group, char *path, size_t len);
int azb_group_listen(const char *group);
void azb_group_close(const char *group, int fd);
int azb_group_connect(const char *group);
/* Answer every client waiting on the control socket (non-blocking accept). */
void azb_control_serve(int listen_fd, const struct azbuse_engine_ops *ops, void *engine,
		       struct azbuse_control *c);
/* cache_ctl.c: the control socket's "cache ..." requests */
int azb_cache_request(const char *args, char *out, size_t out_size);
int azb_worker_control_init(void);
bool azb_worker_control_pending(void);
/* The worker's queues (one per device it serves) and its channel. */
void azb_worker_control_queues(struct azbuse_queue **queues, unsigned nr, int chan_fd);
/* In the worker loop when signalled: handle the supervisor's messages.
 * true: the supervisor asked the worker to exit (its queues are quiesced). */
bool azb_worker_control(void);
/* Supervisor: ask queue q's worker to finish what it holds and exit. */
int azb_control_ask_exit(struct azbuse_control *c, uint16_t q);

/* trace.c */
const char *azbuse_op_name(uint8_t op);
size_t azbuse_format_flags(uint64_t flags, char *buf, size_t len);
int azbuse_trace_open(const char *path);
void azbuse_trace_request(int fd, uint16_t queue, const struct azbuse_io *io);

/* log.c */
void azb_log_set_prefix(const char *prefix);
/* syslog's levels: what the journal files a line under */
#define AZB_LOG_ERR 3
#define AZB_LOG_WARN 4
#define AZB_LOG_INFO 6
void azb_logv(int level, const char *fmt, va_list ap);
void azb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* info */
void azb_warn(const char *fmt, ...)
	__attribute__((format(printf, 1, 2))); /* something went wrong, handled */
void azb_err(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* something failed */

/* args.c: parse device options (argv without the program/command name). */
struct azbuse_args {
	struct azbuse_device_opts opts;
	struct azbuse_option options[32];
	size_t nr_options;
	const char *engine; /* --engine */
	bool foreground;
	bool json;
	char error[256];
	char strings[4096]; /* storage for what a saved configuration supplies */
	size_t strings_used;
};
int azbuse_parse_device_args(int argc, char **argv, struct azbuse_args *a);
void azbuse_print_device_options(FILE *out);
int azbuse_load_recover_args(struct azbuse_args *a);
int azbuse_check_engine_options(const struct azbuse_engine_ops *ops, const struct azbuse_args *a,
				char *err, size_t err_size);
/* persist.c: what --recover needs, in /run/azbuse/azbuse<ID>.conf */
int azbuse_conf_save(uint32_t dev_id, const char *engine, const struct azbuse_device_opts *o,
		     const char *recover_options);
int azbuse_conf_load(uint32_t dev_id, struct azbuse_args *a);
/* The same KEY=VALUE lines, to and from any stream (a device joining a group's daemon). */
void azbuse_conf_write(FILE *f, const char *engine, const struct azbuse_device_opts *o,
		       const char *recover_options);
int azbuse_conf_parse(FILE *f, const char *what, struct azbuse_args *a);
void azbuse_conf_remove(uint32_t dev_id);
/* Is a configuration saved for the device (its supervisor still serves it)? */
bool azbuse_conf_exists(uint32_t dev_id);

/* Run in the background (fork; the parent waits for readiness) or the foreground. */
int azbuse_launch(const struct azbuse_engine_ops *ops, struct azbuse_args *a);

#endif /* AZBUSE_INTERNAL_H */
