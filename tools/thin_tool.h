/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * thin_tool.h - what the parts of azbuse-thin (the thin pool command line)
 * share: the command context and arguments (azbuse-thin.c), the reading
 * commands (thin_show.c, thin_check.c), output helpers (thin_out.c), pool and
 * shard access with the daemon lock (thin_pool.c), and talking to the daemon
 * that serves a pool (thin_daemon.c).
 */
#ifndef AZBUSE_THIN_TOOL_H
#define AZBUSE_THIN_TOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "meta.h"
#include "tool_json.h"

#define EXIT_USAGE 2
#define THIN_MAX_SERVED 64 /* as many as a pool's daemon serves (engine/engines/thin.h) */

/* One invocation: which command, on which pool, how to print. */
struct thin_ctx {
	const char *cmd; /* "delete", for messages */
	const char *dir; /* the pool directory */
	bool json;
};

/* ---- azbuse-thin.c: arguments; the commands of other files ---- */

#define THIN_MAX_POS 2
#define THIN_MAX_OPTS 16

/* A command's arguments after parsing: positionals and --option values. */
struct thin_args {
	const char *pos[THIN_MAX_POS];
	int nr_pos;
	const char *opt_name[THIN_MAX_OPTS];
	size_t opt_len[THIN_MAX_OPTS];
	const char *opt_value[THIN_MAX_OPTS]; /* "" for a flag */
	int nr_opts;
};

/* The value of --name (the last one given; "" for a flag), or NULL. */
const char *thin_arg(const struct thin_args *a, const char *name);
/* 0, or EXIT_USAGE (printed) if `name` is not a valid volume name. */
int thin_check_name(const struct thin_ctx *c, const char *what, const char *name);

int thin_cmd_list(struct thin_ctx *c, const struct thin_args *a);  /* thin_show.c */
int thin_cmd_info(struct thin_ctx *c, const struct thin_args *a);  /* thin_show.c */
int thin_cmd_usage(struct thin_ctx *c, const struct thin_args *a); /* thin_show.c */
int thin_cmd_check(struct thin_ctx *c, const struct thin_args *a); /* thin_check.c */
/* thin_activate.c */
int thin_cmd_activate(struct thin_ctx *c, const struct thin_args *a);
int thin_cmd_deactivate(struct thin_ctx *c, const struct thin_args *a);
/* Record NAME active and serve it (create --activate): 0, or 1 (printed). */
int thin_activate_one(const struct thin_ctx *c, const char *name);

/* ---- thin_out.c: printing ---- */

/* "azbuse-thin CMD: MESSAGE" on stderr, naming the pool if MESSAGE does not; returns 1. */
int thin_fail(const struct thin_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for bad usage; returns EXIT_USAGE. */
int thin_bad_usage(const struct thin_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "warning: ..." on stderr (the command still succeeds). */
void thin_warn(const struct thin_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Local time "YYYY-MM-DD HH:MM:SS". */
const char *thin_time(int64_t t, char *buf, size_t len);

/* Print daemon output lines (for --json: tj_lines). */
void thin_print_lines(FILE *out, const char *text);

/* ---- thin_daemon.c: the daemon serving a pool ---- */

/* An azbuse device served by the thin engine from our pool. */
struct thin_device {
	uint32_t id;
	pid_t pid; /* its supervisor, 0 if unknown */
	char volume[AZB_NAME_MAX + 1];
};

struct thin_served {
	pid_t holder;	 /* pid in DIR/daemon.lock, 0 if unknown */
	uint32_t nr;	 /* 0: the pool is held but no device of it was found */
	bool incomplete; /* more serve it than dev[] holds: who serves a name is unknown */
	struct thin_device dev[THIN_MAX_SERVED];
};

/* Directory of saved configs and control sockets: $AZBUSE_RUN_DIR or AZBUSE_CONTROL_DIR. */
const char *thin_run_dir(void);
/* The devices serving pool `dir`, whose holder is `holder` if any match it. */
void thin_find_served(const char *dir, pid_t holder, struct thin_served *s);
/* The device serving volume `name`, or NULL. */
const struct thin_device *thin_served_volume(const struct thin_served *s, const char *name);
/*
 * Send one request line to device `id`'s control socket and read the reply.
 * 0 on OK, 1 on ERR (the message in err), -errno if the daemon could not be
 * asked (the reason in err). *output: the lines before OK/ERR (free it).
 */
int thin_control(uint32_t id, const char *request, char **output, char *err, size_t errlen);
/* Have device d, which serves src, take snapshot snap: 0 and the daemon's
 * output lines in *output (to free), or 1 (printed). */
int thin_snapshot_by_daemon(const struct thin_ctx *c, const struct thin_device *d, const char *src,
			    const char *snap, char **output);
/* The same, and print what was made (azbuse-thin snapshot of a served volume). */
int thin_snapshot_served(const struct thin_ctx *c, const struct thin_device *dev, const char *src,
			 const char *snap);

/* ---- thin_pool.c: pool.db, the daemon lock, shards ---- */

/* Whether we hold DIR/daemon.lock, or who does. */
struct thin_claim {
	int lock_fd; /* >= 0: we hold the pool, nobody serves it */
	bool held;   /* a daemon (or another process) holds it: see served */
	struct thin_served served;
};

/*
 * Take DIR/daemon.lock for the length of a command, so that no daemon starts
 * serving the pool meanwhile. 0: taken, or held by someone else (cl->held,
 * cl->served); 1 on failure (printed). A holder with no device found is
 * waited for a few seconds (another azbuse-thin, a daemon starting).
 */
int thin_claim(const struct thin_ctx *c, struct thin_claim *cl);
/* Only look whether the pool is held (and by whom), without taking it. */
void thin_probe(const struct thin_ctx *c, struct thin_claim *cl);
void thin_unclaim(struct thin_claim *cl);
/* Describe who holds the pool: "azbuse device /dev/azbuse3 (pid 12)" or "pid 12". */
void thin_holder_text(const struct thin_claim *cl, char *buf, size_t len);

/* thin_out.c: volumes for people and scripts. */
/* "/dev/azbuseN" if a device serves `name`, else "-". */
const char *thin_served_device(const struct thin_claim *cl, const char *name, char *buf,
			       size_t len);
/* A --json document: {"pool": DIR}, for the command to add to and tj_print. */
json_object *thin_json_doc(const struct thin_ctx *c);
/* "name", "kind", "size_bytes", "parent", "created", "active" of v, added to o. */
void thin_json_volume(json_object *o, const struct azb_volume *v);
/* "served_by": {"device", "id", "pid"}, or null, added to o. */
void thin_json_served_by(json_object *o, const struct thin_claim *cl, const char *name);

/* azb_pool_open, retried for a few seconds while pool.db is busy; 0 or 1 (printed). */
int thin_pool_open(const struct thin_ctx *c, struct azb_pool **pool);
/* azb_pool_open_readonly (for what only reads, served or not); 0 or 1 (printed). */
int thin_pool_open_ro(const struct thin_ctx *c, struct azb_pool **pool);
/* The same, 0 or -errno with the message in err. */
int thin_pool_open_err(const struct thin_ctx *c, struct azb_pool **pool, char *err, size_t errlen);

/* Open every shard (read-only: alongside a daemon, for reading); 0 or 1
 * (printed, nothing left open). The tool opens them without a map cache. */
int thin_shards_open(const struct thin_ctx *c, const struct azb_pool_settings *s, bool readonly,
		     struct azb_shard **shards);
void thin_shards_close(struct azb_shard **shards, uint32_t nr);

/* Outcome of reclaiming space after a delete, rollback or shrink. */
enum thin_gc_how {
	THIN_GC_NONE,	  /* nothing to reclaim */
	THIN_GC_DONE,	  /* ran here: freed_bytes is exact */
	THIN_GC_DAEMON,	  /* the serving daemon ran it */
	THIN_GC_DEFERRED, /* not now: at the next open of the pool */
	THIN_GC_FAILED,
};

struct thin_gc_result {
	enum thin_gc_how how;
	uint64_t freed_bytes;
	uint32_t dev_id;     /* THIN_GC_DAEMON: the device asked */
	char *daemon_output; /* THIN_GC_DAEMON: what the daemon said */
	char message[1536];  /* DEFERRED/FAILED: why */
};

const char *thin_gc_how_name(enum thin_gc_how how);
/* GC every shard with `holds` (read after the change); we must hold the pool. */
void thin_gc_here(const struct thin_ctx *c, const struct azb_pool_settings *s,
		  const struct azb_holds *holds, struct thin_gc_result *r);
/* Ask the daemon of a held pool to GC. */
void thin_gc_daemon(const struct thin_claim *cl, struct thin_gc_result *r);
/* Print the outcome (a line; under --json, members "gc", "freed_bytes", ... of doc). */
void thin_gc_print(const struct thin_ctx *c, const struct thin_gc_result *r, json_object *doc);
void thin_gc_result_free(struct thin_gc_result *r);

#endif /* AZBUSE_THIN_TOOL_H */
