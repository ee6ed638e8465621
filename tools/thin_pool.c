// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_pool.c - how azbuse-thin gets at a pool: the daemon lock (taken for
 * the length of a command so that no daemon starts serving meanwhile, or
 * found held by the daemon that serves the pool), pool.db opened briefly and
 * retried while another process has it, the shard DBs, and GC after a change
 * (here, or by the serving daemon).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/azbuse.h>

#include "thin_tool.h"

#define POOL_OPEN_WAIT_MS 5000
/*
 * A holder with no device is waited for: another azbuse-thin (done within
 * seconds), or a daemon starting (its device not added yet) or stopping.
 */
#define CLAIM_WAIT_TOOL_MS 5000
#define CLAIM_WAIT_OTHER_MS 2000
#define RETRY_SLEEP_MS 50
#define RELEASE_AGAIN_MS 1000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* 0 if DIR holds a pool, else 1 (printed). */
static int pool_exists(const struct thin_ctx *c)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/pool.db", c->dir);
	if (!stat(path, &st))
		return 0;
	if (errno == ENOENT)
		return thin_fail(c, "no pool at %s (%s does not exist; see azbuse-thin init)",
				 c->dir, path);
	return thin_fail(c, "cannot access %s: %s", path, strerror(errno));
}

/* Is `pid` another azbuse-thin (which holds the pool only briefly)? */
static bool is_thin_tool(pid_t pid)
{
	char path[64], comm[32] = "";
	FILE *f;

	if (pid <= 0 || pid == getpid())
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	return !strcmp(comm, "azbuse-thin");
}

int thin_claim(const struct thin_ctx *c, struct thin_claim *cl)
{
	int64_t start = now_ms();
	char err[512];
	pid_t holder;

	memset(cl, 0, sizeof(*cl));
	cl->lock_fd = -1;
	if (pool_exists(c))
		return 1;
	for (;;) {
		int ret = azb_pool_hold(c->dir, getpid(), &cl->lock_fd, &holder, err, sizeof(err));

		if (!ret)
			return 0;
		if (ret != -EBUSY)
			return thin_fail(c, "%s", err);
		thin_find_served(c->dir, holder, &cl->served);
		if (cl->served.nr ||
		    now_ms() - start >
			    (is_thin_tool(holder) ? CLAIM_WAIT_TOOL_MS : CLAIM_WAIT_OTHER_MS))
			break;
		sleep_ms(RETRY_SLEEP_MS);
	}
	cl->held = true;
	return 0;
}

void thin_probe(const struct thin_ctx *c, struct thin_claim *cl)
{
	pid_t holder = 0;

	memset(cl, 0, sizeof(*cl));
	cl->lock_fd = -1;
	if (azb_pool_held_by(c->dir, &holder) == -EBUSY) {
		cl->held = true;
		thin_find_served(c->dir, holder, &cl->served);
	}
}

void thin_unclaim(struct thin_claim *cl)
{
	if (cl->lock_fd >= 0)
		azb_pool_release(cl->lock_fd);
	cl->lock_fd = -1;
}

void thin_holder_text(const struct thin_claim *cl, char *buf, size_t len)
{
	const struct thin_served *s = &cl->served;
	size_t n = 0;

	if (!s->nr) {
		if (s->holder)
			snprintf(buf, len, "process %d (no azbuse device of it was found)",
				 (int)s->holder);
		else
			snprintf(buf, len, "another process (daemon.lock is locked, no pid in it)");
		return;
	}
	n += snprintf(buf, len, "azbuse device%s", s->nr > 1 ? "s" : "");
	for (uint32_t i = 0; i < s->nr && n < len; i++)
		n += snprintf(buf + n, len - n, "%s" AZBUSE_BLOCK_PREFIX "%u", i ? ", " : " ",
			      s->dev[i].id);
	if (n < len && s->dev[0].pid)
		snprintf(buf + n, len - n, " (pid %d)", (int)s->dev[0].pid);
	else if (n < len && s->holder)
		snprintf(buf + n, len - n, " (pid %d)", (int)s->holder);
}

/*
 * A daemon serving the pool keeps pool.db open between snapshots: ask each
 * device of the pool to let go of it (an older daemon says it does not know
 * the request, and holds pool.db only while it takes a snapshot anyway).
 */
static void ask_release(const struct thin_ctx *c)
{
	struct thin_served s;
	char err[256], *output;
	pid_t holder = 0;

	if (azb_pool_held_by(c->dir, &holder) != -EBUSY)
		return;
	thin_find_served(c->dir, holder, &s);
	for (uint32_t i = 0; i < s.nr; i++) {
		thin_control(s.dev[i].id, "thin release", &output, err, sizeof(err));
		free(output);
	}
}

int thin_pool_open_err(const struct thin_ctx *c, struct azb_pool **pool, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + POOL_OPEN_WAIT_MS, asked = 0;
	int ret;

	for (;;) {
		ret = azb_pool_open(c->dir, pool, err, errlen);
		if (ret != -EBUSY || now_ms() > deadline)
			break;
		/* at once, then again if a snapshot took it back meanwhile */
		if (now_ms() - asked >= RELEASE_AGAIN_MS) {
			ask_release(c);
			asked = now_ms();
			continue;
		}
		sleep_ms(RETRY_SLEEP_MS);
	}
	if (ret == -EBUSY)
		snprintf(err + strlen(err), errlen - strlen(err), " (tried for %d s)",
			 POOL_OPEN_WAIT_MS / 1000);
	return ret;
}

int thin_pool_open_ro(const struct thin_ctx *c, struct azb_pool **pool)
{
	char err[512];

	if (pool_exists(c))
		return 1;
	if (azb_pool_open_readonly(c->dir, pool, err, sizeof(err)))
		return thin_fail(c, "%s", err);
	return 0;
}

int thin_pool_open(const struct thin_ctx *c, struct azb_pool **pool)
{
	char err[512];

	if (thin_pool_open_err(c, pool, err, sizeof(err)))
		return thin_fail(c, "%s", err);
	return 0;
}

static int shards_open(const char *dir, const struct azb_pool_settings *pool_settings,
		       bool readonly, struct azb_shard **shards, char *err, size_t errlen)
{
	struct azb_pool_settings s = *pool_settings;

	s.map_cache_bytes = 0; /* what a tool reads once gains nothing from it */
	for (uint32_t k = 0; k < s.nr_shards; k++) {
		int ret = readonly ? azb_shard_open_readonly(dir, &s, k, &shards[k], err, errlen)
				   : azb_shard_open(dir, &s, k, &shards[k], err, errlen);

		if (ret) {
			thin_shards_close(shards, k);
			return ret;
		}
	}
	return 0;
}

int thin_shards_open(const struct thin_ctx *c, const struct azb_pool_settings *s, bool readonly,
		     struct azb_shard **shards)
{
	char err[512];

	if (shards_open(c->dir, s, readonly, shards, err, sizeof(err)))
		return thin_fail(c, "%s", err);
	return 0;
}

void thin_shards_close(struct azb_shard **shards, uint32_t nr)
{
	for (uint32_t k = 0; k < nr; k++) {
		azb_shard_close(shards[k]);
		shards[k] = NULL;
	}
}

const char *thin_gc_how_name(enum thin_gc_how how)
{
	static const char *const names[] = { "none", "done", "daemon", "deferred", "failed" };

	return how <= THIN_GC_FAILED ? names[how] : "?";
}

/* GC one shard; the chunks it freed are added to *freed. */
static int gc_shard(struct azb_shard *sh, const struct azb_holds *holds, uint64_t *freed)
{
	struct azb_shard_usage before, after;
	struct azb_gc_stats st;
	int ret = azb_shard_usage(sh, &before);

	if (!ret)
		ret = azb_shard_gc(sh, holds, &st);
	if (!ret)
		ret = azb_shard_usage(sh, &after);
	if (!ret && before.allocated_chunks > after.allocated_chunks)
		*freed += before.allocated_chunks - after.allocated_chunks;
	return ret;
}

void thin_gc_here(const struct thin_ctx *c, const struct azb_pool_settings *s,
		  const struct azb_holds *holds, struct thin_gc_result *r)
{
	struct azb_shard *shards[AZB_SHARDS_MAX];
	uint64_t freed = 0;
	uint32_t k;
	char err[512];

	memset(r, 0, sizeof(*r));
	if (shards_open(c->dir, s, false, shards, err, sizeof(err))) {
		r->how = THIN_GC_FAILED;
		snprintf(r->message, sizeof(r->message),
			 "GC not done (%s); space will be reclaimed when the pool is next opened",
			 err);
		return;
	}
	r->how = THIN_GC_DONE;
	for (k = 0; k < s->nr_shards; k++) {
		if (gc_shard(shards[k], holds, &freed)) {
			r->how = THIN_GC_FAILED;
			snprintf(r->message, sizeof(r->message),
				 "GC failed: %s; space will be reclaimed by a later GC",
				 azb_shard_error(shards[k]));
			break;
		}
	}
	thin_shards_close(shards, s->nr_shards);
	r->freed_bytes = freed * s->chunk_size;
}

void thin_gc_daemon(const struct thin_claim *cl, struct thin_gc_result *r)
{
	char holder[256], err[512];
	int ret;

	memset(r, 0, sizeof(*r));
	thin_holder_text(cl, holder, sizeof(holder));
	r->how = THIN_GC_DEFERRED;
	if (!cl->served.nr) {
		snprintf(r->message, sizeof(r->message),
			 "the pool is in use by %s; space will be reclaimed when the pool is "
			 "next opened",
			 holder);
		return;
	}
	r->dev_id = cl->served.dev[0].id;
	ret = thin_control(r->dev_id, "thin gc", &r->daemon_output, err, sizeof(err));
	if (!ret) {
		r->how = THIN_GC_DAEMON;
		return;
	}
	free(r->daemon_output);
	r->daemon_output = NULL;
	snprintf(r->message, sizeof(r->message),
		 "%s could not GC (%s); space will be reclaimed when the pool is next opened",
		 holder, err);
}

void thin_gc_print(const struct thin_ctx *c, const struct thin_gc_result *r, json_object *doc)
{
	char size[32];

	if (r->how == THIN_GC_DEFERRED || r->how == THIN_GC_FAILED)
		thin_warn(c, "%s", r->message);
	if (c->json) {
		tj_str(doc, "gc", thin_gc_how_name(r->how));
		if (r->how == THIN_GC_DONE || r->how == THIN_GC_NONE)
			tj_u64(doc, "freed_bytes", r->freed_bytes);
		else
			tj_add(doc, "freed_bytes", NULL);
		if (r->how == THIN_GC_DAEMON)
			tj_add(doc, "daemon_output", tj_lines(r->daemon_output));
		if (r->message[0])
			tj_str(doc, "gc_message", r->message);
		return;
	}
	if (r->how == THIN_GC_DONE)
		printf("freed %s (%llu bytes) in pool %s\n",
		       azbuse_format_size(r->freed_bytes, size, sizeof(size)),
		       (unsigned long long)r->freed_bytes, c->dir);
	if (r->how == THIN_GC_DAEMON) {
		thin_print_lines(stdout, r->daemon_output);
		printf("space reclaimed by " AZBUSE_BLOCK_PREFIX "%u\n", r->dev_id);
	}
}

void thin_gc_result_free(struct thin_gc_result *r)
{
	free(r->daemon_output);
	r->daemon_output = NULL;
}
