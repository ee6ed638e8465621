// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rbd_engine.c - the rbd engine: a Ceph RBD image as an azbuse device,
 * through librbd's C API (a faster rbd-nbd, with every request flag intact).
 *
 *   azbuse-engine-rbd ID --image POOL/IMAGE [-o id=CLIENT] [-o conf=FILE]
 *                     [-o direct=wire|on|off]
 *   (azbusectl add ID --engine=rbd --image POOL/IMAGE runs it)
 *
 * Its own program, not one of azbusectl's built-in engines: librbd and
 * librados are large C++ libraries that every azbusectl command would
 * otherwise load.
 *
 * Each worker process opens its own cluster connection and image handle (in
 * open_queue: librados' threads do not survive a fork, so the supervisor
 * never connects; setup() asks a short-lived child for the image's size and
 * features). Requests go out asynchronously (rbd_aio_*), many in flight per
 * queue; librbd signals their ends on an eventfd, which the worker loop
 * waits on beside new requests (azbuse_queue_watch), and rbd_ready()
 * completes them on the worker's thread with rbd_poll_io_events: no
 * completion crosses a thread.
 *
 * A read or write that lies in one of the image's RADOS objects goes to
 * that object directly (rbd_direct.c: the object path, what krbd does in
 * the kernel), where the image's features allow. By default (-o
 * direct=wire) over azbuse's own messenger: osd_wire.c sends it to the
 * object's primary OSD over Ceph's msgr2 protocol (cephx or no auth) from
 * the worker's own thread (its sockets are waited on with the ring, through
 * the fd rbd_direct_wait_fd gives), which removes the client's cost, its
 * objecter and messenger threads: in tests/bench-rbd-host.sh about krbd's
 * CPU per request and IOPS, 2-3x rbd-nbd's. Where it cannot (the log says
 * why) the object path goes through librados. -o direct=on takes librados
 * from the start (measured beside the librbd path it gained nothing beyond
 * the host's noise: librados' threads, which both share, are the cost);
 * -o direct=off leaves everything to librbd, the reference client.
 *
 * librbd's cache is off (see rbd_cluster_connect): a write completes once RADOS has
 * it, and a worker that dies loses nothing it acknowledged. An image or pool
 * whose configuration turns it back on (librbd applies that over ours) is
 * refused, with how to turn it off.
 * flush -> rbd_aio_flush;
 * discard -> rbd_aio_discard; write-zeroes -> rbd_aio_write_zeroes (NOUNMAP:
 * thick-provisioned). FUA is not advertised: the block layer sends such a
 * write followed by a flush, which is what librbd could do with it anyway.
 *
 * A resize of the image (azbuse-rbd resize, which resizes the device too)
 * reaches every worker's handle through librbd's header watch
 * (rbd_update_watch): the worker refreshes its handle before its next
 * request, since librbd checks a request against the size it last read.
 * Whoever grew the image (azbuse-rbd, rbd resize), queue 0's worker then
 * grows the device to it (at its next request, or idle within 500 ms); a shrink is azbuse-rbd's to
 * make (the devices first), so one made behind the device's back is only warned about.
 * The other queues' handles take the change through watches of their own,
 * maybe later than queue 0's: a request past the end their handle knows
 * waits for it (rbd_within_image), since librbd would clip it and report
 * success.
 *
 * Several queues share an image only if it lacks the exclusive-lock
 * feature: with it, librbd hands the lock from handle to handle on every
 * write of another queue. Such an image is served from one queue (--queues
 * 1) or has the feature disabled (rbd feature disable IMAGE fast-diff
 * object-map exclusive-lock); setup() refuses it otherwise and says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/features.h>
#include <rbd/librbd.h>

#include <azbuse/azbuse.h>

#include "rbd_cluster.h"
#include "rbd_direct.h"

struct rbd_engine {
	struct rbd_target t;
	char name[sizeof(((struct rbd_target *)0)->pool) * 2 + 2]; /* POOL/IMAGE */
	uint64_t size;
	bool object_path; /* -o direct=wire (the default) or on */
	bool wire;	  /* -o direct=wire: the object path over our own messenger */
};

struct rbd_queue {
	struct rbd_engine *engine;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	struct rbd_direct *direct; /* the object path; NULL: all through librbd */
	char header_oid[128];	   /* rbd_header.ID */
	int event_fd;
	unsigned inflight;
	uint64_t size;		     /* the image's size as this handle last read it */
	uint64_t update_handle;	     /* rbd_update_watch */
	_Atomic bool header_changed; /* since the handle last read it */
	uint32_t dev_id;
	bool follows_size; /* queue 0's worker: the device follows the image's size */
};

static const char *const rbd_option_keys[] = { "image", "id", "conf", "direct", NULL };

/* What the probe child tells the supervisor. */
struct rbd_probe {
	int error; /* 0, or -errno of the step that failed */
	char step[64];
	uint64_t size;
	uint64_t features;
	bool cached; /* rbd_cache is on in the image's or pool's configuration */
};

/* In a child: connect, read the image's size and features, report, exit. */
static void rbd_probe_child(const struct rbd_engine *e, int fd)
{
	struct rbd_probe p = { 0 };
	rados_ioctx_t ioctx;
	rados_t cluster;
	rbd_image_t image;
	const char *step;

	p.error = rbd_cluster_connect(&e->t, &cluster, &ioctx, &step);
	if (!p.error) {
		step = "opening the image";
		p.error = rbd_open_read_only(ioctx, e->t.image, &image, NULL);
		if (!p.error) {
			step = "reading its size";
			p.error = rbd_get_size(image, &p.size);
			if (!p.error)
				p.error = rbd_get_features(image, &p.features);
			if (!p.error) {
				step = "reading its configuration";
				p.error = rbd_cache_enabled(image, &p.cached);
			}
			rbd_close(image);
		}
		rbd_cluster_disconnect(cluster, ioctx);
	}
	snprintf(p.step, sizeof(p.step), "%s", step);
	if (write(fd, &p, sizeof(p)) != (ssize_t)sizeof(p))
		_exit(1);
	_exit(0);
}

/* Run the probe in a child process: librados must not start its threads in the supervisor. */
static int rbd_probe(const struct rbd_engine *e, struct rbd_probe *p)
{
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	if (!pid) {
		close(pipefd[0]);
		rbd_probe_child(e, pipefd[1]);
	}
	close(pipefd[1]);
	do
		n = read(pipefd[0], p, sizeof(*p));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(*p)) {
		p->error = -EIO;
		snprintf(p->step, sizeof(p->step), "asking librados (the probe died)");
	}
	return 0;
}

/* --image POOL/IMAGE (or IMAGE, in pool "rbd"), -o id=, -o conf= into e. */
static int rbd_parse(struct azbuse_engine_config *cfg, struct rbd_engine *e)
{
	char why[200];
	const char *direct = azbuse_config_option(cfg, "direct");
	int ret = rbd_target_parse(&e->t, azbuse_config_option(cfg, "image"), false,
				   azbuse_config_option(cfg, "id"),
				   azbuse_config_option(cfg, "conf"), why, sizeof(why));

	if (ret) {
		snprintf(cfg->error, cfg->error_size, "engine rbd: --image: %s", why);
		return ret;
	}
	if (!direct)
		direct = "wire";
	if (strcmp(direct, "on") && strcmp(direct, "wire") && strcmp(direct, "off")) {
		snprintf(cfg->error, cfg->error_size,
			 "engine rbd: -o direct=%s: give wire (the object path over azbuse's own "
			 "RADOS messenger, the default), on (the object path through librados) or "
			 "off (everything through librbd)",
			 direct);
		return -EINVAL;
	}
	e->object_path = strcmp(direct, "off");
	e->wire = !strcmp(direct, "wire");
	snprintf(e->name, sizeof(e->name), "%s/%s", e->t.pool, e->t.image);
	return 0;
}

/*
 * Why an image whose configuration turns librbd's cache on is not served:
 * librbd applies the image's and pool's settings over the connection's
 * (rbd_cluster_connect turns it off), and a cached handle per queue would
 * acknowledge writes that another queue's handle does not see and that a
 * dead worker loses.
 */
static void rbd_explain_cached(char *why, size_t size, const char *name)
{
	snprintf(why, size,
		 "engine rbd: %s has rbd_cache on in its image or pool configuration: "
		 "azbuse serves an image uncached (each queue has a handle of its own, and a "
		 "write completes when RADOS has it); turn it off for this image: rbd config "
		 "image set %s rbd_cache false",
		 name, name);
}

static int rbd_setup(struct azbuse_engine_config *cfg, void **engine)
{
	struct rbd_engine *e = calloc(1, sizeof(*e));
	struct rbd_probe p;
	int ret;

	if (!e)
		return -ENOMEM;
	ret = rbd_parse(cfg, e);
	if (!ret)
		ret = rbd_probe(e, &p);
	if (!ret && p.error) {
		ret = p.error;
		snprintf(cfg->error, cfg->error_size, "engine rbd: %s/%s as client.%s: %s: %s",
			 e->t.pool, e->t.image, e->t.client, p.step, strerror(-p.error));
	}
	if (!ret && cfg->size_bytes && cfg->size_bytes != p.size) {
		ret = -EINVAL;
		snprintf(cfg->error, cfg->error_size,
			 "engine rbd: %s/%s has %" PRIu64 " bytes, not --size %" PRIu64
			 " (resize the image with rbd resize)",
			 e->t.pool, e->t.image, p.size, cfg->size_bytes);
	}
	if (!ret && p.cached) {
		ret = -EINVAL;
		rbd_explain_cached(cfg->error, cfg->error_size, e->name);
	}
	if (!ret && (p.features & RBD_FEATURE_EXCLUSIVE_LOCK) && cfg->nr_queues > 1) {
		ret = -EINVAL;
		snprintf(cfg->error, cfg->error_size,
			 "engine rbd: %s/%s has the exclusive-lock feature, which lets one handle "
			 "write at a time: serve it with --queues 1, or disable it to serve it "
			 "from %u queues (rbd feature disable %s/%s fast-diff object-map "
			 "exclusive-lock)",
			 e->t.pool, e->t.image, cfg->nr_queues, e->t.pool, e->t.image);
	}
	if (!ret && (p.size < cfg->logical_block_size || p.size % cfg->logical_block_size)) {
		ret = -EINVAL;
		snprintf(cfg->error, cfg->error_size,
			 "engine rbd: %s/%s has %" PRIu64 " bytes, not a whole number of %u-byte "
			 "blocks",
			 e->t.pool, e->t.image, p.size, cfg->logical_block_size);
	}
	if (ret) {
		free(e);
		return ret;
	}
	e->size = p.size;
	cfg->size_bytes = p.size;
	*engine = e;
	return 0;
}

static void rbd_teardown(void *engine)
{
	free(engine);
}

/* End one librbd request: its result into the request, then complete it. */
static void rbd_end(struct rbd_queue *q, rbd_completion_t c)
{
	struct azbuse_io *io = rbd_aio_get_arg(c);
	ssize_t ret = rbd_aio_get_return_value(c);

	rbd_aio_release(c);
	q->inflight--;
	if (ret >= 0 && io->op == AZBUSE_OP_READ && (uint64_t)ret < io->len)
		memset((char *)io->buf + ret, 0, io->len - (size_t)ret); /* (past the end) */
	azbuse_complete(io, ret < 0 ? (int)ret : 0);
}

/*
 * A thread of librbd's: the image's header changed (a resize, a snapshot).
 * librbd checks a request's range against the size it knows before it
 * refreshes the image, so the worker refreshes it before its next request.
 */
static void rbd_header_changed(void *arg)
{
	struct rbd_queue *q = arg;
	uint64_t one = 1;

	atomic_store(&q->header_changed, true);
	/* (the object path read this handle before it took the change: again) */
	rbd_direct_mark_stale(q->direct);
	/* (wakes the worker, which refreshes in rbd_ready: a grown image grows the device) */
	if (write(q->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		azbuse_log(AZBUSE_LOG_WARN, "engine rbd: waking the worker: %s", strerror(errno));
}

/*
 * Queue 0's worker: the image went from `old` to `size` bytes. A device
 * smaller than an image that grew grows to it (whoever grew the image:
 * azbuse-rbd, rbd resize). Only a growth does: azbuse-rbd shrinks the
 * devices before the image, and a header change in between (a snapshot)
 * must not grow them back. A device larger than the image is left alone,
 * with a warning: I/O past the image's end fails, and a shrink is
 * azbuse-rbd's to make (devices first, refused under a cache, which would
 * keep blocks past the end). False if the device is still starting (its
 * partition scan may be waiting on this worker): again later.
 */
static bool rbd_follow_size(struct rbd_queue *q, uint64_t old, uint64_t size)
{
	struct azbuse_dev_info info;
	int ctl = azbuse_ctl_open(), ret;

	if (ctl < 0)
		return true;
	ret = azbuse_ctl_info(ctl, q->dev_id, &info);
	if (!ret && size > old && size > info.size_bytes && !(size % info.logical_block_size)) {
		ret = azbuse_ctl_resize(ctl, q->dev_id, size);
		if (ret == -EAGAIN) {
			close(ctl);
			return false;
		}
		azbuse_log(ret ? AZBUSE_LOG_WARN : AZBUSE_LOG_INFO,
			   "engine rbd: %s/%s grew to %" PRIu64 " bytes: azbuse%u %s",
			   q->engine->t.pool, q->engine->t.image, size, q->dev_id,
			   ret ? strerror(-ret) : "follows");
	} else if (!ret && size < info.size_bytes) {
		azbuse_log(AZBUSE_LOG_WARN,
			   "engine rbd: %s/%s shrank to %" PRIu64 " bytes under azbuse%u (%" PRIu64
			   "): I/O past its end fails (azbuse-rbd resize shrinks both)",
			   q->engine->t.pool, q->engine->t.image, size, q->dev_id,
			   (uint64_t)info.size_bytes);
	}
	close(ctl);
	return true;
}

static void rbd_refresh(struct rbd_queue *q)
{
	uint64_t size;
	int ret;

	if (!atomic_exchange(&q->header_changed, false))
		return;
	ret = rbd_get_size(q->image, &size); /* (refreshes the handle) */
	if (ret < 0) {
		azbuse_log(AZBUSE_LOG_WARN,
			   "engine rbd: %s/%s changed, and cannot be read again: %s",
			   q->engine->t.pool, q->engine->t.image, strerror(-ret));
		return;
	}
	if (q->follows_size && size != q->size && !rbd_follow_size(q, q->size, size)) {
		atomic_store(&q->header_changed, true); /* (at the next request, or idle) */
		return;
	}
	q->size = size;
}

/*
 * With no request to serve: a header change that came meanwhile is taken
 * (an idle worker sleeps in the module, not on the eventfd). Queue 0's
 * worker looks twice a second, so that a grown image grows the device
 * without waiting for I/O; the others at their next request.
 */
#define RBD_IDLE_CHECK_MS 500

static unsigned rbd_idle(void *queue)
{
	struct rbd_queue *q = queue;

	rbd_refresh(q);
	return q->follows_size ? RBD_IDLE_CHECK_MS : 0;
}

/* The worker loop's call when the eventfd fired (or at each turn): complete what ended. */
static unsigned rbd_ready(void *queue)
{
	struct rbd_queue *q = queue;
	rbd_completion_t done[64];
	uint64_t count;
	int n, i;

	bool fired = rbd_direct_serve(q->direct); /* (the own path's sockets, first) */

	if (fired && read(q->event_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		azbuse_log(AZBUSE_LOG_WARN, "engine rbd: reading the eventfd: %s", strerror(errno));
	rbd_refresh(q);
	while (fired) {
		n = rbd_poll_io_events(q->image, done, 64);
		for (i = 0; i < n; i++)
			rbd_end(q, done[i]);
		fired = n == 64;
	}
	rbd_direct_reap(q->direct);
	return q->inflight + rbd_direct_inflight(q->direct);
}

static void rbd_librbd_rw(void *queue, struct azbuse_io *io);

/*
 * The image as this queue's handle opened it: its size, its header's name
 * ("" for a format 1 image, whose header cls_rbd does not serve), and
 * librbd's cache still off (the image's configuration may have turned it
 * on since setup() looked). 0 or -errno, logged.
 */
static int rbd_open_check(struct rbd_queue *q)
{
	const char *name = q->engine->name;
	char id[96] = "", why[1400];
	bool cached = false;
	uint8_t old = 0;
	int ret;

	ret = rbd_get_size(q->image, &q->size);
	if (!ret)
		ret = rbd_get_old_format(q->image, &old);
	if (!ret && !old)
		ret = rbd_get_id(q->image, id, sizeof(id));
	if (!ret)
		ret = rbd_cache_enabled(q->image, &cached);
	if (ret < 0) {
		azbuse_log(AZBUSE_LOG_ERR, "engine rbd: %s: reading it: %s", name, strerror(-ret));
		return ret;
	}
	if (cached) {
		rbd_explain_cached(why, sizeof(why), name);
		azbuse_log(AZBUSE_LOG_ERR, "%s", why);
		return -EINVAL;
	}
	if (!old)
		snprintf(q->header_oid, sizeof(q->header_oid), "rbd_header.%s", id);
	return 0;
}

static int rbd_open_queue(void *engine, const struct azbuse_queue_params *p, void **queue)
{
	struct rbd_engine *e = engine;
	struct rbd_queue *q = calloc(1, sizeof(*q));
	const char *step;
	int ret;

	if (!q)
		return -ENOMEM;
	q->engine = e;
	q->dev_id = p->dev_id;
	q->follows_size = p->queue == 0;
	q->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->event_fd < 0) {
		ret = -errno;
		goto out_free;
	}
	ret = rbd_cluster_connect(&e->t, &q->cluster, &q->ioctx, &step);
	if (ret < 0) {
		azbuse_log(AZBUSE_LOG_ERR, "engine rbd: %s/%s: %s: %s", e->t.pool, e->t.image, step,
			   strerror(-ret));
		goto out_close;
	}
	ret = rbd_open(q->ioctx, e->t.image, &q->image, NULL);
	if (ret < 0) {
		azbuse_log(AZBUSE_LOG_ERR, "engine rbd: opening %s/%s: %s", e->t.pool, e->t.image,
			   strerror(-ret));
		goto out_disconnect;
	}
	ret = rbd_open_check(q);
	if (!ret)
		ret = rbd_set_image_notification(q->image, q->event_fd, EVENT_TYPE_EVENTFD);
	if (ret < 0)
		goto out_image;
	/* (before the header watch, whose callback marks the object path stale) */
	if (e->object_path)
		q->direct =
			rbd_direct_open(q->cluster, q->ioctx, q->image, q->header_oid, q->event_fd,
					rbd_librbd_rw, q, e->name, e->wire ? &e->t : NULL);
	ret = rbd_direct_wait_fd(q->direct, q->event_fd);
	if (ret >= 0)
		ret = azbuse_queue_watch(ret, rbd_ready);
	if (!ret)
		ret = rbd_update_watch(q->image, &q->update_handle, rbd_header_changed, q);
	if (ret < 0)
		goto out_direct;
	*queue = q;
	return 0;

out_direct:
	rbd_direct_close(q->direct);
out_image:
	rbd_close(q->image);
out_disconnect:
	rbd_cluster_disconnect(q->cluster, q->ioctx);
out_close:
	close(q->event_fd);
out_free:
	free(q);
	return ret;
}

static void rbd_close_queue(void *queue)
{
	struct rbd_queue *q = queue;
	int ret;

	/* every request has completed (libazbuse waited, calling rbd_ready) */
	rbd_update_unwatch(q->image, q->update_handle); /* (its callback uses q->direct) */
	rbd_direct_close(q->direct);
	ret = rbd_flush(q->image);
	if (ret < 0)
		azbuse_log(AZBUSE_LOG_ERR, "engine rbd: flushing %s/%s: %s", q->engine->t.pool,
			   q->engine->t.image, strerror(-ret));
	rbd_close(q->image);
	rbd_cluster_disconnect(q->cluster, q->ioctx);
	close(q->event_fd);
	free(q);
}

/*
 * Another queue's handle may take a resize before this one: each has a
 * watch of its own on the header. Queue 0's worker may then have grown the
 * device on a change that this handle has not taken yet, and librbd clips a
 * request to the size it knows and reports success: a write's tail would be
 * lost, a read's left unread. Such a request waits here for the handle to
 * take the change (the header says the image is larger: the notification
 * is on its way), at most RBD_CATCH_UP_MS; one past the end of the image
 * itself (shrunk behind the device's back) fails at once.
 */
#define RBD_CATCH_UP_MS 5000

static bool rbd_within_image(struct rbd_queue *q, const struct azbuse_io *io)
{
	const struct timespec ms = { 0, 1000000 };
	uint64_t header = 0, size;
	unsigned waited;

	if (io->offset <= q->size && io->len <= q->size - io->offset)
		return true;
	for (waited = 0; waited < RBD_CATCH_UP_MS; waited++) {
		if (!waited &&
		    (!q->header_oid[0] || rbd_header_size(q->ioctx, q->header_oid, &header) < 0))
			break;
		if (rbd_get_size(q->image, &size) >= 0) /* (takes a change it was told of) */
			q->size = size;
		if (io->offset <= q->size && io->len <= q->size - io->offset)
			return true;
		if (header <= q->size)
			break;
		nanosleep(&ms, NULL);
	}
	azbuse_log(AZBUSE_LOG_WARN,
		   "engine rbd: %s: %u bytes at %" PRIu64 " lie past the image's end (%" PRIu64
		   " bytes%s): I/O error",
		   q->engine->name, io->len, io->offset, q->size,
		   header > q->size ? ", and this queue's handle has not taken a resize" : "");
	return false;
}

/*
 * A completion for io, counted in flight; NULL if none: io lies past the
 * image's end (completed -EIO) or there is no memory (-ENOMEM).
 */
static rbd_completion_t rbd_completion(struct rbd_queue *q, struct azbuse_io *io)
{
	rbd_completion_t c;

	rbd_refresh(q);
	if (io->op != AZBUSE_OP_FLUSH && !rbd_within_image(q, io)) {
		azbuse_complete(io, -EIO);
		return NULL;
	}
	if (rbd_aio_create_completion(io, NULL, &c) < 0) {
		azbuse_complete(io, -ENOMEM);
		return NULL;
	}
	q->inflight++;
	return c;
}

/* What librbd refused to start: no completion will come for it. */
static void rbd_not_started(struct rbd_queue *q, struct azbuse_io *io, rbd_completion_t c, int ret)
{
	rbd_aio_release(c);
	q->inflight--;
	azbuse_complete(io, ret);
}

/* A read or write through librbd. */
static void rbd_librbd_rw(void *queue, struct azbuse_io *io)
{
	struct rbd_queue *q = queue;
	rbd_completion_t c = rbd_completion(q, io);
	int ret;

	if (!c)
		return;
	if (io->op == AZBUSE_OP_READ)
		ret = rbd_aio_read(q->image, io->offset, io->len, io->buf, c);
	else
		ret = rbd_aio_write(q->image, io->offset, io->len, io->buf, c);
	if (ret < 0)
		rbd_not_started(q, io, c, ret);
}

/* A read or write: to its object directly if it may go so, else through librbd. */
static void rbd_rw(void *queue, struct azbuse_io *io)
{
	struct rbd_queue *q = queue;

	if (!rbd_direct_submit(q->direct, io))
		rbd_librbd_rw(q, io);
}

static void rbd_flush_io(void *queue, struct azbuse_io *io)
{
	struct rbd_queue *q = queue;
	rbd_completion_t c = rbd_completion(q, io);
	int ret;

	if (c && (ret = rbd_aio_flush(q->image, c)) < 0)
		rbd_not_started(q, io, c, ret);
}

static void rbd_unmap(void *queue, struct azbuse_io *io)
{
	struct rbd_queue *q = queue;
	rbd_completion_t c = rbd_completion(q, io);
	int ret;

	if (!c)
		return;
	if (io->op == AZBUSE_OP_DISCARD)
		ret = rbd_aio_discard(q->image, io->offset, io->len, c);
	else
		ret = rbd_aio_write_zeroes(
			q->image, io->offset, io->len, c,
			io->flags & AZBUSE_RQ_NOUNMAP ? RBD_WRITE_ZEROES_FLAG_THICK_PROVISION : 0,
			0);
	if (ret < 0)
		rbd_not_started(q, io, c, ret);
}

static const struct azbuse_engine_ops rbd_engine_ops = {
	AZBUSE_ENGINE_INIT,
	.name = "rbd",
	.description =
		"a Ceph RBD image (--image POOL/IMAGE, -o id=CLIENT, -o conf=FILE, "
		"-o direct=wire|on|off: the object path over azbuse's own messenger, through "
		"librados, or none), librbd",
	.option_keys = rbd_option_keys,
	.setup = rbd_setup,
	.teardown = rbd_teardown,
	.open_queue = rbd_open_queue,
	.close_queue = rbd_close_queue,
	.read = rbd_rw,
	.write = rbd_rw,
	.flush = rbd_flush_io,
	.discard = rbd_unmap,
	.write_zeroes = rbd_unmap,
	.idle = rbd_idle,
};

int main(int argc, char **argv)
{
	return azbuse_main(argc, argv, &rbd_engine_ops);
}
