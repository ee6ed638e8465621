// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_control.c - managing a pool while one of its volumes is served.
 * The supervisor gets requests on the device's control socket (from
 * azbuse-thin): "thin snapshot SRC NAME" pauses every worker at a request
 * boundary, makes what they acknowledged durable, records the snapshot in
 * pool.db, hands the workers the volume's new epoch and resumes them, so
 * the snapshot holds exactly the writes completed before it on every
 * shard. "thin gc" makes every worker collect its shard's garbage after a
 * delete. Workers get messages (struct thin_msg) through queue_control.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../internal.h"
#include "thin.h"

enum thin_msg_type {
	THIN_MSG_SYNC = 1,   /* make acknowledged writes durable */
	THIN_MSG_EPOCH = 2,  /* the volume's write epoch and snapshot hold changed */
	THIN_MSG_GC = 3,     /* collect garbage up to the pool's generation */
	THIN_MSG_STATUS = 4, /* reply: struct thin_status */
	THIN_MSG_SEAL = 5, /* a snapshot comes: no more overwrites in place of what was published */
	THIN_MSG_SETTINGS = 6, /* the pool's settings changed (azbuse-thin set) */
};

/* A worker's answer to THIN_MSG_STATUS. */
struct thin_status {
	uint32_t shard;
	uint32_t pad0;
	struct azb_shard_mem mem;
	uint64_t redirected;	   /* requests handed to their chunk's owner */
	uint64_t foreign;	   /* requests of other shards' chunks served here */
	uint64_t data_async;	   /* new chunks' data writes through the io_uring */
	uint64_t layered_filled;   /* layered chunks completed while the device was quiet */
	uint64_t layered_waiting;  /* layered chunks waiting for that */
	uint64_t layered_scanning; /* 1: still looking for them in the metadata */
	uint64_t enospc;	   /* writes refused for lack of space (this worker) */
	uint64_t low_space;	   /* 1: the pool is at or over its low-space threshold */
	uint64_t broken;	   /* 1: a metadata write failed (restart the worker, check) */
	uint64_t data_fixed;	   /* of data_async: from the ring's registered buffers */
};

struct thin_msg {
	uint32_t type;
	uint32_t pad0;
	uint64_t write_epoch;
	uint64_t write_max_hold;
	struct azb_pool_settings settings; /* THIN_MSG_SETTINGS */
};

int thin_queue_gc(struct thin_queue *tq, const struct azb_holds *holds)
{
	struct azb_gc_stats st;
	int ret;

	if (azb_shard_gc_generation(tq->shard) >= holds->gc_generation)
		return 0;
	ret = azb_shard_gc(tq->shard, holds, &st);
	/* what it freed may still be read or written through the published map */
	thin_pub_freed(tq);
	if (ret)
		fprintf(stderr, "engine thin: shard %u: gc: %s\n", azb_shard_index(tq->shard),
			azb_shard_error(tq->shard));
	return ret;
}

/* In a worker: read the pool's current holds (read-only) and collect. */
static int thin_queue_gc_now(struct thin_queue *tq)
{
	struct azb_holds holds;
	struct azb_pool *pool;
	char err[256];
	int ret;

	ret = azb_pool_open_readonly(tq->engine->pool_dir, &pool, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "engine thin: gc: %s\n", err);
		return ret;
	}
	ret = azb_pool_get_holds(pool, &holds, err, sizeof(err));
	azb_pool_close(pool);
	if (ret)
		return ret;
	ret = thin_queue_gc(tq, &holds);
	azb_holds_free(&holds);
	return ret;
}

int thin_queue_control(void *queue, const void *msg, size_t len, void *reply, size_t *reply_len)
{
	struct thin_queue *tq = queue;
	struct thin_msg m;

	size_t reply_room = *reply_len;

	*reply_len = 0;
	if (len != sizeof(m))
		return -EINVAL;
	memcpy(&m, msg, sizeof(m));
	switch (m.type) {
	case THIN_MSG_SYNC:
		if (fdatasync(tq->data_fd))
			return -errno;
		return azb_shard_sync(tq->shard) ? -EIO : 0;
	case THIN_MSG_EPOCH:
		tq->engine->view.write_epoch = m.write_epoch;
		tq->engine->view.write_max_hold = m.write_max_hold;
		return 0;
	case THIN_MSG_GC:
		return thin_queue_gc_now(tq);
	case THIN_MSG_SETTINGS:
		/* (the shard is this worker's for every device of the pool: once is enough) */
		azb_shard_apply_settings(tq->shard, &m.settings);
		tq->engine->settings = m.settings;
		return 0;
	case THIN_MSG_SEAL:
		/*
		 * Every worker starts a new epoch of the map (one would do; each
		 * makes sure, a dead one's successor included) and waits for the
		 * module's overwrites that saw the old one.
		 */
		if (!tq->engine->pubmap)
			return 0;
		azb_pubmap_new_epoch(tq->engine->pubmap);
		return azbuse_direct_map_sync();
	case THIN_MSG_STATUS: {
		struct thin_status st = {
			.shard = azb_shard_index(tq->shard),
			.redirected = tq->redirected,
			.foreign = tq->foreign,
			.data_async = tq->data_async,
			.layered_filled = tq->filled,
			.layered_waiting = tq->fill_tail - tq->fill_head,
			.layered_scanning = !tq->scan_done,
			.enospc = thin_owned.enospc,
			.low_space = thin_owned.low_space,
			.broken = azb_shard_broken(tq->shard),
			.data_fixed = tq->data_fixed,
		};

		if (reply_room < sizeof(st))
			return -ENOSPC;
		azb_shard_mem(tq->shard, &st.mem);
		memcpy(reply, &st, sizeof(st));
		*reply_len = sizeof(st);
		return 0;
	}
	default:
		return -EINVAL;
	}
}

static int thin_broadcast(struct azbuse_control *ctl, const struct thin_engine *e, uint32_t type)
{
	struct thin_msg m = {
		.type = type,
		.write_epoch = e->view.write_epoch,
		.write_max_hold = e->view.write_max_hold,
	};

	return azbuse_control_broadcast(ctl, &m, sizeof(m), NULL, NULL);
}

static void thin_count_reply(uint16_t queue, int result, const void *reply, size_t len, void *arg)
{
	(void)queue;
	(void)reply;
	(void)len;
	if (!result)
		++*(uint32_t *)arg;
}

/* THIN_MSG_SEAL, which at least one worker must have done (-EAGAIN if none could). */
static int thin_seal(struct azbuse_control *ctl)
{
	struct thin_msg m = { .type = THIN_MSG_SEAL };
	uint32_t sealed = 0;
	int ret = azbuse_control_broadcast(ctl, &m, sizeof(m), thin_count_reply, &sealed);

	return ret ? ret : sealed ? 0 : -EAGAIN;
}

/*
 * Record the snapshot (by the keeper, or in a child process: see
 * thin_pool.c) and, if it is of the served volume, take its new write epoch
 * (workers paused). *epoch_moved: the served volume's epoch changed, which
 * the workers must take even if recording it reported an error.
 */
static int thin_record_snapshot(struct thin_engine *e, const char *src, const char *name,
				char *reply, size_t reply_size, bool *epoch_moved)
{
	struct thin_pool_facts f = { 0 };
	int ret = thin_keeper_snapshot(e, src, name, &f);

	if (ret == -ENOTCONN)
		ret = thin_pool_query(e, src, name, &f);
	/*
	 * pool.db can hold the snapshot although recording it failed (an error
	 * after the commit, or a keeper that committed and died, whose retry
	 * here found the name taken): writes from now on must not land in it.
	 */
	*epoch_moved = f.have_view && !strcmp(src, e->volume) &&
		       (f.write_epoch != e->view.write_epoch ||
			f.write_max_hold != e->view.write_max_hold);
	if (*epoch_moved) {
		e->view.write_epoch = f.write_epoch;
		e->view.write_max_hold = f.write_max_hold;
	}
	if (ret) {
		snprintf(reply, reply_size, "%s%s", f.msg,
			 *epoch_moved ? " (the snapshot is recorded all the same, exact to "
					"the writes completed before it)"
				      : "");
		return ret;
	}
	return 0;
}

static int thin_snapshot(struct thin_engine *e, struct azbuse_control *ctl, const char *src,
			 const char *name, char *reply, size_t reply_size)
{
	bool live = !strcmp(src, e->volume) && !e->read_only, epoch_moved = false;
	uint64_t t0 = azb_clock_ms(), t_paused = 0, t_synced = 0, t_recorded = 0;
	int ret;

	if (!live)
		return thin_record_snapshot(e, src, name, reply, reply_size, &epoch_moved);
	/* what a write-back cache holds goes into the volume first (and no more is kept) */
	ret = azb_cache_drain(true, AZB_CACHE_DRAIN_MS, reply, reply_size);
	if (!ret)
		ret = azbuse_control_pause(ctl);
	if (ret) {
		if (!reply[0])
			snprintf(reply, reply_size, "cannot pause the workers: %s", strerror(-ret));
		azb_cache_drain_end(true);
		return ret;
	}
	t_paused = azb_clock_ms();
	/*
	 * The module goes on serving overwrites of published chunks while the
	 * workers are paused: first make every chunk published as the volume's
	 * own read-only (from now on a write to it waits for its owner, which
	 * copies it after the snapshot), then sync what was written before.
	 */
	ret = thin_seal(ctl);
	if (ret)
		snprintf(reply, reply_size, "cannot seal the published map: %s", strerror(-ret));
	if (!ret) {
		ret = thin_broadcast(ctl, e, THIN_MSG_SYNC);
		if (ret)
			snprintf(reply, reply_size, "cannot make the volume durable: %s",
				 strerror(-ret));
	}
	t_synced = azb_clock_ms();
	if (!ret)
		ret = thin_record_snapshot(e, src, name, reply, reply_size, &epoch_moved);
	t_recorded = azb_clock_ms();
	/* our view is updated first: a worker restarted from now on has the new epoch */
	if (!ret || epoch_moved) {
		int epoch_ret = thin_broadcast(ctl, e, THIN_MSG_EPOCH);

		if (!ret)
			ret = epoch_ret;
	}
	azbuse_control_resume(ctl);
	azb_cache_drain_end(true);
	/* where the time went */
	if (!ret)
		azb_log("snapshot %s of %s: pause %llu ms, seal+sync %llu ms, pool.db %llu ms, "
			"epoch+resume %llu ms",
			name, src, (unsigned long long)(t_paused - t0),
			(unsigned long long)(t_synced - t_paused),
			(unsigned long long)(t_recorded - t_synced),
			(unsigned long long)(azb_clock_ms() - t_recorded));
	if (!ret)
		snprintf(reply, reply_size, "snapshot %s of %s taken (live, epoch %llu)\n", name,
			 src, (unsigned long long)e->view.write_epoch - 1);
	return ret;
}

struct thin_status_out {
	char *buf;
	size_t size, used;
};

/* One line per shard: where its metadata memory is, in KiB. */
static void thin_status_line(uint16_t queue, int result, const void *reply, size_t len, void *arg)
{
	struct thin_status_out *out = arg;
	struct thin_status st;
	int n;

	if (out->used >= out->size)
		return;
	if (result || len != sizeof(st)) {
		n = snprintf(out->buf + out->used, out->size - out->used,
			     "shard %u: no status (%d)\n", queue, result);
	} else {
		memcpy(&st, reply, sizeof(st));
		n = snprintf(out->buf + out->used, out->size - out->used,
			     "shard %u: block_cache_kib %llu pinned_kib %llu memtables_kib %llu "
			     "table_readers_kib %llu map_cache_kib %llu other_shards_served %llu "
			     "handed_to_owner %llu data_writes_async %llu data_writes_fixed %llu "
			     "layered_filled %llu "
			     "layered_waiting %llu layered_scanning %llu enospc %llu low_space "
			     "%llu broken %llu\n",
			     st.shard, (unsigned long long)st.mem.block_cache >> 10,
			     (unsigned long long)st.mem.block_cache_pinned >> 10,
			     (unsigned long long)st.mem.memtables >> 10,
			     (unsigned long long)st.mem.table_readers >> 10,
			     (unsigned long long)st.mem.map_cache >> 10,
			     (unsigned long long)st.foreign, (unsigned long long)st.redirected,
			     (unsigned long long)st.data_async, (unsigned long long)st.data_fixed,
			     (unsigned long long)st.layered_filled,
			     (unsigned long long)st.layered_waiting,
			     (unsigned long long)st.layered_scanning, (unsigned long long)st.enospc,
			     (unsigned long long)st.low_space, (unsigned long long)st.broken);
	}
	if (n > 0)
		out->used += (size_t)n;
}

/*
 * "thin settings": azbuse-thin set changed the pool's settings in pool.db;
 * every device of the pool's daemon takes them (restarted workers are forked
 * from the supervisor's engines), and every worker's shard.
 */
static int thin_settings(struct thin_engine *e, struct azbuse_control *ctl, char *reply,
			 size_t reply_size)
{
	struct thin_msg m = { .type = THIN_MSG_SETTINGS };
	struct thin_pool_facts f;
	int ret = thin_pool_query(e, NULL, NULL, &f);

	if (ret) {
		snprintf(reply, reply_size, "cannot read the pool's settings: %s", f.msg);
		return ret;
	}
	thin_hold_settings(e->hold, &f.settings);
	m.settings = f.settings;
	ret = azbuse_control_broadcast(ctl, &m, sizeof(m), NULL, NULL);
	if (!ret)
		azb_log("pool %s: settings now limit %llu, low space %u%%, meta cache %llu, map "
			"cache %llu",
			e->pool_dir, (unsigned long long)f.settings.limit_bytes,
			f.settings.low_space_percent,
			(unsigned long long)f.settings.meta_cache_bytes,
			(unsigned long long)f.settings.map_cache_bytes);
	return ret;
}

/* "thin status": the served volume, then each shard's metadata memory. */
static int thin_status(struct thin_engine *e, struct azbuse_control *ctl, char *reply,
		       size_t reply_size)
{
	struct thin_msg m = { .type = THIN_MSG_STATUS };
	struct thin_status_out out = { .buf = reply, .size = reply_size };
	int n = snprintf(reply, reply_size, "pool %s\nvolume %s\nepoch %llu\n", e->pool_dir,
			 e->volume, (unsigned long long)e->view.write_epoch);

	out.used = n > 0 && (size_t)n < reply_size ? (size_t)n : 0;
	return azbuse_control_broadcast(ctl, &m, sizeof(m), thin_status_line, &out);
}

int thin_control(void *engine, struct azbuse_control *ctl, const char *request, char *reply,
		 size_t reply_size)
{
	struct thin_engine *e = engine;
	char src[AZB_NAME_MAX + 2], name[AZB_NAME_MAX + 2], extra[2];
	int n = sscanf(request, "snapshot %64s %64s %1s", src, name, extra);

	if (n == 2) {
		if (azb_name_check(src) || azb_name_check(name)) {
			snprintf(reply, reply_size, "bad volume name");
			return -EINVAL;
		}
		return thin_snapshot(e, ctl, src, name, reply, reply_size);
	}
	if (!strcmp(request, "gc"))
		return thin_broadcast(ctl, e, THIN_MSG_GC);
	if (!strcmp(request, "status"))
		return thin_status(e, ctl, reply, reply_size);
	if (!strcmp(request, "settings"))
		return thin_settings(e, ctl, reply, reply_size);
	if (!strcmp(request, "release")) {
		/* azbuse-thin is about to write pool.db */
		int ret = thin_keeper_release(e);

		if (ret)
			snprintf(reply, reply_size, "cannot release pool.db: %s", strerror(-ret));
		return ret;
	}
	snprintf(reply, reply_size,
		 "unknown thin request '%s' (snapshot SRC NAME, gc, status, settings, release)",
		 request);
	return -EINVAL;
}
