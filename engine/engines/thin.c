// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin.c - the thin engine: serves a volume, snapshot (read-only) or clone
 * of a thin pool (metadata/: RocksDB, sparse backing files per shard).
 *
 *   azbusectl add 1 --engine=thin --volume vol1 [--pool DIR] [--direct 0|1]
 *                                   [--cow layer|copy]
 *
 * setup() runs in the supervisor: it takes the pool's daemon lock (one
 * serving process per pool), learns the pool's settings and the volume's
 * size from pool.db (through a child process: thin_pool.c), and asks for
 * sharded mode with one worker per pool shard and the pool's stripe as
 * chunk, reads and writes routed to the queue they were submitted on
 * (unless --route chunk), and a direct map: the module's map of where each
 * chunk is, which the owners publish (thin_pub.c) and the module and every
 * worker serve reads and overwrites from. Each worker then reads the volume's view and the GC
 * holds from pool.db (read-only, closed again, so that azbuse-thin can
 * still manage the pool), opens its own shard's RocksDB and every shard's
 * data file (open_queue).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "../internal.h"
#include "engines.h"
#include "thin.h"

#define THIN_POOL_OPEN_WAIT_MS 5000

static const char *const thin_option_keys[] = { "pool", "volume", "direct", "cow", NULL };

int thin_pool_open(const char *dir, struct azb_pool **pool, char *err, size_t errlen)
{
	struct timespec pause = { .tv_nsec = 20 * 1000000 };
	int ret, waited;

	for (waited = 0;; waited += 20) {
		ret = azb_pool_open(dir, pool, err, errlen);
		if (ret != -EBUSY || waited >= THIN_POOL_OPEN_WAIT_MS)
			return ret;
		nanosleep(&pause, NULL);
	}
}

/* Read what the supervisor needs from pool.db (in a child: see thin_pool.c). */
static int thin_read_pool(struct thin_engine *e, char *err, size_t errlen)
{
	struct thin_pool_facts f;
	int ret = thin_pool_query(e, NULL, NULL, &f);

	if (ret) {
		snprintf(err, errlen, "engine thin: %s", f.msg);
		return ret;
	}
	e->settings = f.settings;
	e->view.size_bytes = f.size_bytes;
	e->view.write_epoch = f.write_epoch;
	e->view.write_max_hold = f.write_max_hold;
	e->read_only = f.read_only;
	return 0;
}

/* The pool this process serves, if any (one per daemon: libazbuse's group). */
static struct thin_hold thin_held = { .lock_fd = -1, .keeper_fd = -1 };

void thin_hold_settings(struct thin_hold *hold, const struct azb_pool_settings *s)
{
	unsigned i;

	for (i = 0; i < hold->devices; i++)
		hold->engines[i]->settings = *s;
}

/* The last device of the pool lets the keeper and the pool's lock go. */
static void thin_let_go(struct thin_engine *e)
{
	unsigned i;

	if (!e->hold)
		return;
	for (i = 0; i < e->hold->devices; i++)
		if (e->hold->engines[i] == e)
			e->hold->engines[i] = e->hold->engines[e->hold->devices - 1];
	if (--e->hold->devices)
		return;
	thin_keeper_stop(e); /* pool.db closed before the pool is let go */
	if (e->hold->lock_fd >= 0)
		azb_pool_release(e->hold->lock_fd);
	e->hold->lock_fd = -1;
	e->hold->dir[0] = '\0';
}

static void thin_free(struct thin_engine *e)
{
	thin_let_go(e);
	azb_view_free(&e->view);
	free(e);
}

static int thin_take_options(struct thin_engine *e, struct azbuse_engine_config *cfg)
{
	const char *pool = azbuse_config_option(cfg, "pool");
	const char *volume = azbuse_config_option(cfg, "volume");
	const char *direct = azbuse_config_option(cfg, "direct");
	const char *cow = azbuse_config_option(cfg, "cow");

	if (!volume || azb_name_check(volume)) {
		snprintf(cfg->error, cfg->error_size,
			 volume ? "engine thin: bad volume name '%s'"
				: "engine thin: which volume? (--volume NAME)",
			 volume);
		return -EINVAL;
	}
	if (direct && strcmp(direct, "0") && strcmp(direct, "1")) {
		snprintf(cfg->error, cfg->error_size, "engine thin: direct is 0 or 1");
		return -EINVAL;
	}
	e->direct = !direct || !strcmp(direct, "1");
	if (cow && strcmp(cow, "layer") && strcmp(cow, "copy")) {
		snprintf(cfg->error, cfg->error_size, "engine thin: cow is layer or copy");
		return -EINVAL;
	}
	e->copy_whole = cow && !strcmp(cow, "copy");
	if (!pool)
		pool = azb_pool_default_dir();
	if (strlen(pool) >= sizeof(e->pool_dir)) {
		snprintf(cfg->error, cfg->error_size, "engine thin: pool path too long");
		return -ENAMETOOLONG;
	}
	snprintf(e->pool_dir, sizeof(e->pool_dir), "%s", pool);
	snprintf(e->volume, sizeof(e->volume), "%s", volume);
	return 0;
}

/* Whether a device of this daemon serves VOLUME. */
static bool thin_volume_held(const char *volume)
{
	unsigned i;

	for (i = 0; i < thin_held.devices; i++)
		if (!strcmp(thin_held.engines[i]->volume, volume))
			return true;
	return false;
}

/*
 * One daemon per pool: the pool is libazbuse's group, named by its real
 * path. The first device of a pool takes the pool's lock; the next ones
 * share it (this process is the pool's daemon), or, if another process
 * holds it, are handed to that daemon (-EALREADY: libazbuse tries again
 * while the holder is azbuse-thin, which holds it only for a moment).
 */
static int thin_hold_pool(struct thin_engine *e, struct azbuse_engine_config *cfg)
{
	char real[PATH_MAX];
	pid_t holder = 0;
	size_t len;
	int ret;

	if (!realpath(e->pool_dir, real)) {
		ret = -errno;
		snprintf(cfg->error, cfg->error_size, "engine thin: no pool at %s: %s", e->pool_dir,
			 strerror(-ret));
		return ret;
	}
	len = strlen(real);
	if (len >= sizeof(cfg->group) || len >= sizeof(thin_held.dir)) {
		snprintf(cfg->error, cfg->error_size, "engine thin: pool path %s is too long",
			 e->pool_dir);
		return -ENAMETOOLONG;
	}
	memcpy(cfg->group, real, len + 1);
	if (thin_held.devices) {
		if (strcmp(thin_held.dir, real)) {
			snprintf(cfg->error, cfg->error_size,
				 "engine thin: this daemon serves pool %s, not %s", thin_held.dir,
				 real);
			return -EXDEV;
		}
		if (thin_volume_held(e->volume)) {
			/* two devices of one volume would each keep a map of its chunks */
			snprintf(cfg->error, cfg->error_size,
				 "engine thin: volume %s is served already, by another device of "
				 "this pool's daemon (azbuse-thin list shows its device)",
				 e->volume);
			return -EBUSY;
		}
		if (thin_held.devices == sizeof(thin_held.engines) / sizeof(thin_held.engines[0])) {
			snprintf(cfg->error, cfg->error_size,
				 "engine thin: this daemon serves %u devices already",
				 thin_held.devices);
			return -ENOSPC;
		}
		thin_held.engines[thin_held.devices++] = e;
		e->hold = &thin_held;
		return 0;
	}
	ret = azb_pool_hold(e->pool_dir, getpid(), &thin_held.lock_fd, &holder, cfg->error,
			    cfg->error_size);
	if (ret == -EBUSY) {
		snprintf(cfg->error, cfg->error_size, "engine thin: pool %s is held by pid %d",
			 e->pool_dir, (int)holder);
		return -EALREADY;
	}
	if (ret)
		return ret;
	memcpy(thin_held.dir, real, len + 1);
	thin_held.devices = 1;
	thin_held.engines[0] = e;
	e->hold = &thin_held;
	return 0;
}

/* What direct I/O to a shard's data file or device must be aligned to (0: unknown). */
static uint32_t thin_data_dio_align(const char *path)
{
	struct statx stx;
	uint32_t align = 0;
	int fd, lbs;

	if (statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_DIOALIGN, &stx))
		return 0;
	if (S_ISBLK(stx.stx_mode)) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && !ioctl(fd, BLKSSZGET, &lbs) && lbs > 0)
			align = (uint32_t)lbs;
		if (fd >= 0)
			close(fd);
	} else if (stx.stx_mask & STATX_DIOALIGN) {
		align = stx.stx_dio_offset_align;
	}
	return align;
}

/*
 * The device's logical block is at least what direct I/O to every shard's
 * data needs (a filesystem or a data device on a disk of 4 KiB sectors), as
 * a loop device's with direct I/O is: the module's direct I/O takes the
 * device's requests as they come, and refuses a backing that needs more.
 */
static void thin_block_size(const struct thin_engine *e, struct azbuse_engine_config *cfg)
{
	char path[PATH_MAX + 32];
	uint32_t s, align;

	for (s = 0; s < e->settings.nr_shards; s++) {
		snprintf(path, sizeof(path), "%s/shard-%u/data", e->pool_dir, s);
		align = thin_data_dio_align(path);
		if (align <= cfg->logical_block_size || align > 4096 || (align & (align - 1)))
			continue;
		azb_log("pool %s: shard %u's data takes direct I/O in blocks of %u bytes: so "
			"does the device",
			e->pool_dir, s, align);
		cfg->logical_block_size = align;
	}
}

static int thin_setup(struct azbuse_engine_config *cfg, void **engine)
{
	struct thin_engine *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	ret = thin_take_options(e, cfg);
	if (!ret)
		ret = thin_hold_pool(e, cfg);
	if (!ret)
		ret = thin_read_pool(e, cfg->error, cfg->error_size);
	if (ret) {
		thin_free(e);
		return ret;
	}
	if (cfg->size_bytes && cfg->size_bytes != e->view.size_bytes) {
		snprintf(cfg->error, cfg->error_size,
			 "engine thin: volume %s is %llu bytes; --size says %llu (resize it with "
			 "azbuse-thin resize)",
			 e->volume, (unsigned long long)e->view.size_bytes,
			 (unsigned long long)cfg->size_bytes);
		thin_free(e);
		return -EINVAL;
	}
	if (!cfg->route_chosen)
		cfg->route_queue = true;
	if (cfg->route_queue) {
		/* the module serves published chunks itself; workers serve them too */
		cfg->direct_map_chunk_bytes = (uint32_t)e->settings.chunk_size;
		cfg->direct_map_user_bytes = (uint32_t)azb_pubmap_user_bytes(e->settings.nr_shards);
	}
	if (e->hold->devices == 1) {
		ret = thin_keeper_start(e);
		if (ret)
			azb_log("no pool.db keeper (%s): each snapshot opens pool.db",
				strerror(-ret));
	}
	thin_block_size(e, cfg);
	cfg->size_bytes = e->view.size_bytes;
	cfg->nr_queues = e->settings.nr_shards;
	cfg->shard_chunk_bytes = (uint32_t)e->settings.stripe_size;
	cfg->caps = AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA;
	if (e->read_only)
		cfg->caps |= AZBUSE_CAP_READ_ONLY;
	else
		cfg->caps |= AZBUSE_CAP_DISCARD | AZBUSE_CAP_WRITE_ZEROES;
	/* --recover must find the same pool even if the default moves */
	if (cfg->recover_options)
		snprintf(cfg->recover_options, cfg->recover_options_size, "pool=%s\n", e->pool_dir);
	*engine = e;
	return 0;
}

static void thin_teardown(void *engine)
{
	thin_free(engine);
}

/*
 * The shard's data file opened again with O_DIRECT, or -1 (logged) where the
 * backing filesystem does not support it: then all data goes through the
 * page cache.
 */
static int thin_open_direct(int data_fd, uint32_t queue)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", data_fd);
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		azb_log("shard %u: no O_DIRECT on the backing filesystem (%s): data goes "
			"through the page cache",
			queue, strerror(errno));
	return fd;
}

static void thin_close_data(struct thin_queue *tq)
{
	uint32_t s;

	for (s = 0; tq->direct_fds && s < tq->nr_shards; s++) {
		if (tq->direct_fds[s] >= 0)
			close(tq->direct_fds[s]);
		/* the own shard's data fd belongs to the shard */
		if (s != tq->index && tq->data_fds[s] >= 0)
			close(tq->data_fds[s]);
	}
	free(tq->data_fds);
	free(tq->direct_fds);
	tq->data_fds = tq->direct_fds = NULL;
}

/*
 * A raw pool (data on a block device) is read and written only with
 * O_DIRECT, aligned to the device's logical block: the module's remapped
 * bios bypass the device's page cache, which would otherwise serve stale
 * reads and write back stale pages over newer data.
 */
static void thin_check_raw(struct thin_queue *tq)
{
	struct stat st;
	int lbs;

	tq->raw = !fstat(azb_shard_data_fd(tq->shard), &st) && S_ISBLK(st.st_mode);
	tq->direct_align = THIN_DIRECT_ALIGN;
	if (tq->raw && !ioctl(azb_shard_data_fd(tq->shard), BLKSSZGET, &lbs) && lbs > 0)
		tq->direct_align = (uint32_t)lbs;
}

/*
 * Every shard's data file (the own one is the shard's), each also O_DIRECT
 * if asked (always on a raw pool): a worker serves published chunks of any
 * shard.
 */
static int thin_open_data(struct thin_queue *tq)
{
	const struct thin_engine *e = tq->engine;
	char path[PATH_MAX + 32];
	uint32_t s;

	tq->data_fds = malloc(tq->nr_shards * sizeof(int));
	tq->direct_fds = malloc(tq->nr_shards * sizeof(int));
	if (!tq->data_fds || !tq->direct_fds) {
		free(tq->data_fds);
		free(tq->direct_fds);
		tq->data_fds = tq->direct_fds = NULL;
		return -ENOMEM;
	}
	for (s = 0; s < tq->nr_shards; s++)
		tq->data_fds[s] = tq->direct_fds[s] = -1;
	thin_check_raw(tq);
	for (s = 0; s < tq->nr_shards; s++) {
		if (s == tq->index) {
			tq->data_fds[s] = azb_shard_data_fd(tq->shard);
		} else if (e->pubmap) {
			snprintf(path, sizeof(path), "%s/shard-%u/data", e->pool_dir, s);
			tq->data_fds[s] = open(path, O_RDWR | O_CLOEXEC);
			if (tq->data_fds[s] < 0) {
				int ret = -errno;

				fprintf(stderr, "engine thin: cannot open %s: %s\n", path,
					strerror(errno));
				thin_close_data(tq);
				return ret;
			}
		} else {
			continue; /* route chunk: only the own shard's chunks come here */
		}
		if (e->direct || tq->raw)
			tq->direct_fds[s] = thin_open_direct(tq->data_fds[s], s);
		if (tq->raw && tq->direct_fds[s] < 0) {
			thin_close_data(tq);
			return -EINVAL;
		}
	}
	tq->data_fd = tq->data_fds[tq->index];
	tq->direct_fd = tq->direct_fds[tq->index];
	return 0;
}

struct thin_owned thin_owned;

/* The worker's shard: opened by its first queue, shared by the next ones. */
static int thin_own_shard(struct thin_queue *tq, const struct azbuse_queue_params *p, char *err,
			  size_t errlen)
{
	struct thin_engine *e = tq->engine;
	int ret = 0;

	if (thin_owned.nr_queues >= sizeof(thin_owned.queues) / sizeof(thin_owned.queues[0])) {
		snprintf(err, errlen, "shard %u serves too many devices", p->queue);
		return -ENOSPC;
	}
	if (!thin_owned.nr_queues)
		ret = azb_shard_open_buffered(e->pool_dir, &e->settings, p->queue,
					      &thin_owned.shard, err, errlen);
	else if (azb_shard_index(thin_owned.shard) != p->queue)
		ret = -EINVAL;
	if (ret)
		return ret;
	tq->shard = thin_owned.shard;
	thin_owned.queues[thin_owned.nr_queues++] = tq;
	return 0;
}

/* A queue lets the shard go; the last one closes it. */
static void thin_disown_shard(struct thin_queue *tq)
{
	unsigned i;

	for (i = 0; i < thin_owned.nr_queues; i++)
		if (thin_owned.queues[i] == tq)
			thin_owned.queues[i] = thin_owned.queues[--thin_owned.nr_queues];
	if (!thin_owned.nr_queues) {
		azb_shard_close(thin_owned.shard);
		thin_owned.shard = NULL;
	}
	tq->shard = NULL;
}

/*
 * Register the ring's data buffers with the io_uring once: a new chunk's
 * data written from a request's buffer then goes out as a fixed-buffer
 * write, which the kernel does not pin and unpin for each write. Not fatal:
 * without it, writes pin their buffers as before.
 */
static void thin_register_data_area(struct thin_queue *tq, const struct azbuse_queue_params *p)
{
	struct iovec iov = { .iov_base = p->data_area, .iov_len = (size_t)p->data_area_bytes };
	int ret;

	if (!p->data_area || !p->data_area_bytes)
		return;
	ret = io_uring_register_buffers(&tq->uring, &iov, 1);
	if (ret) {
		azb_log("shard %u: the ring's buffers are not registered with io_uring (%s)",
			p->queue, strerror(-ret));
		return;
	}
	tq->fixed_base = p->data_area;
	tq->fixed_bytes = p->data_area_bytes;
}

static int thin_open_queue(void *engine, const struct azbuse_queue_params *p, void **queue)
{
	struct thin_engine *e = engine;
	struct thin_queue *tq = calloc(1, sizeof(*tq));
	struct azb_holds holds;
	char err[256];
	int ret;

	thin_keeper_close_in_worker(e); /* the supervisor's to talk to */
	if (!tq)
		return -ENOMEM;
	tq->engine = e;
	tq->ring = azb_queue_now();
	tq->index = p->queue;
	tq->nr_shards = e->settings.nr_shards;
	tq->direct_fd = -1;
	tq->chunk_size = e->settings.chunk_size;
	if (p->queue >= e->settings.nr_shards) {
		free(tq);
		return -EINVAL;
	}
	tq->max_wait_ios = p->nr_slots;
	tq->wait_plans = calloc(THIN_WAIT_PLANS_MAX, sizeof(*tq->wait_plans));
	tq->wait_ios = calloc(p->nr_slots ? p->nr_slots : 1, sizeof(*tq->wait_ios));
	tq->fills = calloc(THIN_FILLS_MAX, sizeof(*tq->fills));
	if (!tq->wait_plans || !tq->wait_ios || !tq->fills ||
	    posix_memalign((void **)&tq->chunk_buf, 4096, tq->chunk_size)) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = thin_read_view(e, &holds, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "engine thin: %s\n", err);
		goto out_free;
	}
	ret = thin_own_shard(tq, p, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "engine thin: %s\n", err);
		goto out_holds;
	}
	ret = thin_pub_open(tq, p->direct_map, p->direct_map_bytes);
	if (ret)
		goto out_shard;
	ret = thin_open_data(tq);
	if (ret)
		goto out_pub;
	ret = thin_pub_set_backing(tq);
	if (ret)
		goto out_data;
	ret = io_uring_queue_init(THIN_URING_ENTRIES, &tq->uring, 0);
	tq->uring_ok = !ret;
	if (ret) /* (not fatal: new chunks' data is then written one request at a time) */
		azb_log("shard %u: no io_uring (%s): new chunks' data is written synchronously",
			p->queue, strerror(-ret));
	else
		thin_register_data_area(tq, p);
	/* a shard whose GC is behind the pool's (a delete while it was closed) catches up */
	ret = thin_queue_gc(tq, &holds);
	if (ret)
		goto out_uring;
	azb_holds_free(&holds);
	tq->scan_done = !e->view.write_ns; /* layered chunks are found in the head only */
	*queue = tq;
	return 0;

out_uring:
	if (tq->uring_ok)
		io_uring_queue_exit(&tq->uring);
out_data:
	thin_close_data(tq);
out_pub:
	thin_pub_close(tq);
out_shard:
	thin_disown_shard(tq);
out_holds:
	azb_holds_free(&holds);
out_free:
	free(tq->fills);
	free(tq->wait_ios);
	free(tq->wait_plans);
	free(tq->chunk_buf);
	free(tq->edge_buf);
	free(tq);
	return ret;
}

/*
 * Acknowledged writes become durable: the data files this worker wrote,
 * then the mapping's WAL.
 */
static void thin_close_queue(void *queue)
{
	struct thin_queue *tq = queue;

	if (thin_commit_waiting(tq) || thin_sync_foreign(tq) || fdatasync(tq->data_fd) ||
	    azb_shard_sync(tq->shard))
		fprintf(stderr, "engine thin: shard %u: final sync failed\n",
			azb_shard_index(tq->shard));
	thin_data_wait(tq); /* (nothing is left in flight after the commit: to be sure) */
	if (tq->uring_ok)
		io_uring_queue_exit(&tq->uring);
	thin_close_data(tq);
	thin_pub_close(tq);
	thin_disown_shard(tq);
	free(tq->fills);
	free(tq->wait_ios);
	free(tq->wait_plans);
	free(tq->chunk_buf);
	free(tq->edge_buf);
	free(tq);
}

const struct azbuse_engine_ops azbuse_thin_engine = {
	AZBUSE_ENGINE_INIT,
	.name = "thin",
	.description =
		"thin-provisioned volumes, snapshots and clones of a pool "
		"(--volume NAME [--pool DIR] [--direct 0|1] [--cow layer|copy]; see azbuse-thin)",
	.option_keys = thin_option_keys,
	.setup = thin_setup,
	.teardown = thin_teardown,
	.open_queue = thin_open_queue,
	.close_queue = thin_close_queue,
	.read = thin_read,
	.write = thin_write,
	.flush = thin_flush,
	.discard = thin_discard,
	.write_zeroes = thin_write_zeroes,
	.batch_end = thin_batch_end,
	.idle = thin_idle,
	.control = thin_control,
	.queue_control = thin_queue_control,
};
