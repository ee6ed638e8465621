// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rbd_direct.c - the rbd engine's object path (see rbd_direct.h).
 *
 * An RBD image is a row of RADOS objects, PREFIX.%016x, each 1 << order
 * bytes (without fancy striping). A read or write that lies in one object is
 * one librados call on that object, which is what krbd does in the kernel;
 * through librbd it passes its image and object dispatch layers and a hop
 * to librbd's own thread first. Measured in tests/bench-rbd-host.sh
 * (azbuse-rbd-objects beside azbuse-rbd): about the same guest CPU per
 * request as the librbd path, and no gain in IOPS beyond the noise, on a
 * 2-core host under emulation.
 *
 * When the object path may be taken, read again at each header change:
 * - reads: standard striping, the image not migrating and without a
 *   persistent write-back cache (dirty-cache). A read of an object that
 *   does not exist is zeros, or, in a clone, is handed back to librbd,
 *   which reads the parent.
 * - writes: as reads, and no parent (a clone's first write to an object
 *   copies the parent's data up first), and none of the features that make
 *   a writer do more than write the object: exclusive-lock (and with it
 *   object-map, fast-diff, journaling), non-primary.
 * A write carries the image's snapshot context, read from its header
 * (cls_rbd get_snapcontext), so the OSD clones an object for a snapshot
 * before the write changes it. Snapshots stay exact: this path watches the
 * header itself and acknowledges a notification (snapshot created, resize,
 * feature change) only after marking itself stale, and librbd's snapshot
 * command returns after every watcher acknowledged; a stale path reads the
 * header again before its next request (and one that could not read it
 * sends everything through librbd, and tries again 5 s later).
 *
 * librbd's cache is off (rbd_cluster_connect), so what librbd wrote is in
 * RADOS when it completes, and a flush has nothing of this path's to wait
 * for: a write completes here when every replica has it.
 * Completions come on a librados thread, which pushes them on a lock-free
 * stack and wakes the worker's eventfd (once per batch: see
 * rbd_direct_ended); the worker completes them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rbd/features.h>

#include "osd_wire.h"
#include "rbd_cluster.h"
#include "rbd_direct.h"

#define RBD_DIRECT_MAX_SNAPS 8192
#define RBD_DIRECT_RETRY_NS (5 * 1000000000ULL) /* after a refresh that failed */

struct rbd_direct;

/* One request on its way to an object. */
struct rbd_direct_op {
	struct rbd_direct *d;
	struct azbuse_io *io;
	rados_completion_t c;	    /* (NULL on the own path) */
	bool has_parent;	    /* the image was a clone when the request left */
	struct rbd_direct_op *next; /* on the done stack, or the free list */
};

struct rbd_direct {
	rbd_image_t image;	 /* the worker's handle */
	rados_ioctx_t header_io; /* the image's pool (the handle's) */
	rados_ioctx_t data_io;	 /* its data pool: ours, with the write snapshot context */
	char header_oid[128];	 /* rbd_header.ID */
	char prefix[128];	 /* objects are PREFIX.%016x */
	unsigned order;		 /* log2 of the object size */
	const char *name;	 /* POOL/IMAGE, for messages */
	int event_fd;
	rbd_direct_fallback_fn fallback;
	void *fallback_arg;

	uint64_t size; /* the image's size at the last refresh */
	bool reads;    /* what may take this path */
	bool writes;
	bool has_parent;    /* a read of a missing object goes to librbd */
	uint64_t watch;	    /* our watch on the header */
	bool watching;	    /* (re-established at refresh if it broke) */
	_Atomic bool stale; /* the header changed since the last refresh */
	uint64_t retry_at;  /* a refresh failed: read again from then (CLOCK_MONOTONIC ns) */

	unsigned inflight;
	struct rbd_direct_op *free_ops;
	_Atomic(struct rbd_direct_op *) done;
	uint64_t snap_seq; /* the write snapshot context, for the own path */
	uint32_t nr_snaps;
	uint64_t snaps[RBD_DIRECT_MAX_SNAPS];
	uint64_t nr_reads, nr_writes, nr_handed_back;

	/* -o direct=wire: the objects' OSDs over our own messenger (osd_wire.c) */
	struct osdw *wire;
	rados_t wire_cluster; /* a connection for its global id and monitor commands */
	rados_ioctx_t wire_ioctx;
};

int rbd_snapc_decode(const void *buf, size_t len, uint64_t *seq, uint64_t *snaps, size_t max,
		     size_t *count)
{
	const unsigned char *p = buf;
	uint64_t n = 0;
	size_t i, j;

	if (len < 12)
		return -EINVAL;
	*seq = 0;
	for (i = 0; i < 8; i++)
		*seq |= (uint64_t)p[i] << (8 * i);
	for (i = 0; i < 4; i++)
		n |= (uint64_t)p[8 + i] << (8 * i);
	if (n > max || len != 12 + 8 * n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		snaps[i] = 0;
		for (j = 0; j < 8; j++)
			snaps[i] |= (uint64_t)p[12 + 8 * i + j] << (8 * j);
		/* newest first, none above seq: what the OSD requires */
		if (snaps[i] > *seq || (i && snaps[i] >= snaps[i - 1]))
			return -EINVAL;
	}
	*count = n;
	return 0;
}

/* A librados thread: the header was notified. Mark stale first, then acknowledge. */
static void rbd_direct_notified(void *arg, uint64_t notify_id, uint64_t cookie, uint64_t notifier,
				void *data, size_t len)
{
	struct rbd_direct *d = arg;
	int ret;

	(void)notifier;
	(void)data;
	(void)len;
	atomic_store(&d->stale, true);
	ret = rados_notify_ack(d->header_io, d->header_oid, notify_id, cookie, NULL, 0);
	if (ret < 0)
		azbuse_log(AZBUSE_LOG_WARN,
			   "engine rbd: %s: acknowledging a header notification: %s", d->name,
			   strerror(-ret));
}

/* A librados thread: the watch broke; what was notified meanwhile is lost. */
static void rbd_direct_watch_broke(void *arg, uint64_t cookie, int err)
{
	struct rbd_direct *d = arg;

	(void)cookie;
	(void)err;
	atomic_store(&d->stale, true);
}

static int rbd_direct_watch(struct rbd_direct *d)
{
	int ret;

	if (d->watching) {
		ret = rados_watch_check(d->header_io, d->watch);
		if (ret >= 0)
			return 0;
		rados_unwatch2(d->header_io, d->watch);
		d->watching = false;
	}
	ret = rados_watch2(d->header_io, d->header_oid, &d->watch, rbd_direct_notified,
			   rbd_direct_watch_broke, d);
	d->watching = ret >= 0;
	return ret;
}

/* The image's snapshot context into data_io's writes. */
static int rbd_direct_load_snapc(struct rbd_direct *d)
{
	size_t len = 12 + 8 * RBD_DIRECT_MAX_SNAPS, count;
	char *buf = malloc(len);
	uint64_t seq;
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = rados_exec(d->header_io, d->header_oid, "rbd", "get_snapcontext", NULL, 0, buf, len);
	if (ret >= 0)
		ret = rbd_snapc_decode(buf, (size_t)ret, &seq, d->snaps, RBD_DIRECT_MAX_SNAPS,
				       &count);
	free(buf);
	if (!ret)
		ret = rados_ioctx_selfmanaged_snap_set_write_ctx(d->data_io, seq, d->snaps,
								 (int)count);
	if (!ret) {
		d->snap_seq = seq;
		d->nr_snaps = (uint32_t)count;
	}
	return ret;
}

/* Does the image keep the standard layout (one object after another)? */
static bool rbd_direct_standard(rbd_image_t image, unsigned order)
{
	uint64_t unit, count;

	return rbd_get_stripe_unit(image, &unit) >= 0 && rbd_get_stripe_count(image, &count) >= 0 &&
	       unit == 1ULL << order && count == 1;
}

/* 1 if the image is a clone, 0 if not, -errno if that cannot be told. */
static int rbd_direct_is_clone(rbd_image_t image)
{
	rbd_linked_image_spec_t parent;
	rbd_snap_spec_t snap;
	int ret = rbd_get_parent(image, &parent, &snap);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	rbd_linked_image_spec_cleanup(&parent);
	rbd_snap_spec_cleanup(&snap);
	return 1;
}

static uint64_t rbd_direct_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void rbd_direct_mark_stale(struct rbd_direct *d)
{
	if (d)
		atomic_store(&d->stale, true);
}

void rbd_direct_refresh(struct rbd_direct *d)
{
	rbd_image_t image = d->image;
	const uint64_t no_reads = RBD_FEATURE_MIGRATING | RBD_FEATURE_DIRTY_CACHE;
	const uint64_t no_writes = RBD_FEATURE_EXCLUSIVE_LOCK | RBD_FEATURE_OBJECT_MAP |
				   RBD_FEATURE_FAST_DIFF | RBD_FEATURE_JOURNALING |
				   RBD_FEATURE_NON_PRIMARY;
	bool reads = d->reads, writes = d->writes;
	const char *step = "watching its header";
	uint64_t features = 0;
	int ret, clone = 0;

	atomic_store(&d->stale, false); /* (before reading: a change meanwhile marks it again) */
	d->reads = d->writes = false;
	ret = rbd_direct_watch(d);
	if (ret >= 0) {
		step = "reading it";
		ret = rbd_get_size(image, &d->size); /* (refreshes the handle) */
	}
	if (ret >= 0)
		ret = rbd_get_features(image, &features);
	if (ret >= 0)
		ret = clone = rbd_direct_is_clone(image);
	if (ret >= 0 && !(features & no_reads) && rbd_direct_standard(image, d->order)) {
		d->has_parent = clone;
		d->reads = true;
		if (!clone && !(features & no_writes)) {
			step = "reading its snapshot context";
			ret = rbd_direct_load_snapc(d);
			d->writes = ret >= 0;
		}
	}
	d->retry_at = 0;
	if (ret < 0) {
		d->retry_at = rbd_direct_now() + RBD_DIRECT_RETRY_NS; /* (not at every request) */
		azbuse_log(AZBUSE_LOG_WARN,
			   "engine rbd: %s: object path: %s: %s; %s through librbd", d->name, step,
			   strerror(-ret), d->reads ? "writes go" : "requests go");
	} else if (reads != d->reads || writes != d->writes) {
		azbuse_log(
			AZBUSE_LOG_INFO, "engine rbd: %s: object path for %s", d->name,
			d->writes ? "reads and writes"
			: d->reads
				? "reads (writes through librbd: the image's features)"
				: "nothing (the image's layout or features): all through librbd");
	}
}

static void rbd_direct_wire_done(void *cookie, int result);

/*
 * The own path: a connection of its own (for a global id that no librados
 * objecter uses, and for the monitor commands that place objects), and the
 * client. Without it the object path goes through librados.
 */
static void rbd_direct_wire_open(struct rbd_direct *d, const struct rbd_target *t, int64_t pool,
				 rados_ioctx_t ioctx)
{
	const char *step = "the image is in a namespace";
	uint64_t gid;
	char ns[256];
	int ret;

	ret = rados_ioctx_get_namespace(ioctx, ns, sizeof(ns));
	if (ret) {
		ret = ret > 0 ? -EOPNOTSUPP : ret;
		goto fail; /* (osd_wire.c places objects of no namespace) */
	}
	ret = rbd_cluster_connect(t, &d->wire_cluster, &d->wire_ioctx, &step);
	if (ret < 0)
		goto fail;
	/*
	 * The worker asks the monitors where a PG went after a map change:
	 * with no monitor to answer, it gives up after 5 s (its ops wait and
	 * ask again) rather than stop serving its ring for good.
	 */
	ret = rados_conf_set(d->wire_cluster, "rados_mon_op_timeout", "5");
	if (ret < 0) {
		step = "setting rados_mon_op_timeout";
		rbd_cluster_disconnect(d->wire_cluster, d->wire_ioctx);
		goto fail;
	}
	gid = rados_get_instance_id(d->wire_cluster);
	d->wire = osdw_open(d->wire_cluster, pool, t->client, gid, rbd_direct_wire_done, d->name,
			    &ret);
	if (d->wire) {
		/* (the global id is also the nonce of its address: what a blocklist names) */
		azbuse_log(AZBUSE_LOG_INFO,
			   "engine rbd: %s: object path over azbuse's own RADOS messenger "
			   "(client.%s, global id %" PRIu64 ")",
			   d->name, t->client, osdw_gid(d->wire));
		return;
	}
	rbd_cluster_disconnect(d->wire_cluster, d->wire_ioctx);
	step = "setting it up";
fail:
	azbuse_log(AZBUSE_LOG_WARN,
		   "engine rbd: %s: no own RADOS path (%s: %s): object path through librados",
		   d->name, step, strerror(-ret));
}

struct rbd_direct *rbd_direct_open(rados_t cluster, rados_ioctx_t ioctx, rbd_image_t image,
				   const char *header_oid, int event_fd,
				   rbd_direct_fallback_fn fallback, void *arg, const char *name,
				   const struct rbd_target *wire)
{
	struct rbd_direct *d = calloc(1, sizeof(*d));
	rbd_image_info_t info;
	const char *step = "out of memory";
	char ns[256];
	int64_t data_pool;
	uint8_t old = 1;
	int ret = -ENOMEM;

	if (!d)
		goto fail;
	step = "reading the image";
	ret = rbd_get_old_format(image, &old);
	if (ret >= 0 && old)
		ret = -EOPNOTSUPP; /* (format 1: names its objects otherwise) */
	if (ret >= 0)
		ret = rbd_stat(image, &info, sizeof(info));
	if (ret >= 0)
		ret = rbd_get_block_name_prefix(image, d->prefix, sizeof(d->prefix));
	if (ret >= 0 && (info.order < 12 || info.order > 30))
		ret = -EOPNOTSUPP;
	if (ret < 0)
		goto fail_free;
	step = "opening its data pool";
	data_pool = rbd_get_data_pool_id(image);
	ret = data_pool < 0 ? (int)data_pool : rados_ioctx_create2(cluster, data_pool, &d->data_io);
	if (ret < 0)
		goto fail_free;
	/* an image in a namespace keeps its data objects there */
	ret = rados_ioctx_get_namespace(ioctx, ns, sizeof(ns));
	if (ret >= 0)
		rados_ioctx_set_namespace(d->data_io, ret ? ns : NULL);
	if (ret < 0) {
		rados_ioctx_destroy(d->data_io);
		goto fail_free;
	}
	snprintf(d->header_oid, sizeof(d->header_oid), "%s", header_oid);
	d->image = image;
	d->header_io = ioctx;
	d->order = info.order;
	d->name = name;
	d->event_fd = event_fd;
	d->fallback = fallback;
	d->fallback_arg = arg;
	atomic_init(&d->done, NULL);
	if (wire)
		rbd_direct_wire_open(d, wire, data_pool, ioctx);
	rbd_direct_refresh(d);
	return d;

fail_free:
	free(d);
fail:
	azbuse_log(AZBUSE_LOG_WARN, "engine rbd: %s: no object path (%s: %s): all through librbd",
		   name, step, strerror(-ret));
	return NULL;
}

void rbd_direct_close(struct rbd_direct *d)
{
	struct rbd_direct_op *op;

	if (!d)
		return;
	if (d->watching)
		rados_unwatch2(d->header_io, d->watch);
	/* (also a callback of a watch that broke and was dropped) */
	rados_watch_flush(rados_ioctx_get_cluster(d->header_io));
	azbuse_log(AZBUSE_LOG_INFO,
		   "engine rbd: %s: object path: %" PRIu64 " reads, %" PRIu64 " writes, %" PRIu64
		   " reads handed to librbd",
		   d->name, d->nr_reads, d->nr_writes, d->nr_handed_back);
	/*
	 * libazbuse waits for requests in flight before it closes a queue, but
	 * not forever (a cluster that stopped answering): the completions of
	 * what is left still come to d and its pool, so both stay, for the
	 * exiting process to drop.
	 */
	if (d->inflight) {
		azbuse_log(AZBUSE_LOG_WARN,
			   "engine rbd: %s: object path: %u requests still in flight at close",
			   d->name, d->inflight);
		return;
	}
	while ((op = d->free_ops)) {
		d->free_ops = op->next;
		free(op);
	}
	if (d->wire) {
		osdw_close(d->wire);
		rbd_cluster_disconnect(d->wire_cluster, d->wire_ioctx);
	}
	rados_ioctx_destroy(d->data_io);
	free(d);
}

unsigned rbd_direct_inflight(const struct rbd_direct *d)
{
	return d ? d->inflight : 0;
}

/* A librados thread: op's object I/O ended. */
static void rbd_direct_ended(rados_completion_t c, void *arg)
{
	struct rbd_direct_op *op = arg, *head;
	struct rbd_direct *d = op->d;
	int event_fd = d->event_fd; /* (once op is pushed, the worker may close d) */
	uint64_t one = 1;

	(void)c;
	head = atomic_load_explicit(&d->done, memory_order_relaxed);
	do
		op->next = head;
	while (!atomic_compare_exchange_weak_explicit(&d->done, &head, op, memory_order_release,
						      memory_order_relaxed));
	/*
	 * Only the op that makes the stack non-empty wakes the worker: the
	 * worker reads the eventfd before it takes the stack, so the ones
	 * pushed after that wake are taken with it.
	 */
	if (!head && write(event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		azbuse_log(AZBUSE_LOG_WARN, "engine rbd: waking the worker: %s", strerror(errno));
}

static void rbd_direct_put(struct rbd_direct *d, struct rbd_direct_op *op)
{
	if (op->c)
		rados_aio_release(op->c);
	op->next = d->free_ops;
	d->free_ops = op;
	d->inflight--;
}

/* The whole of io lies in one object of the image as last read. */
static bool rbd_direct_fits(const struct rbd_direct *d, const struct azbuse_io *io)
{
	return io->len && io->offset < d->size && io->len <= d->size - io->offset &&
	       io->offset >> d->order == (io->offset + io->len - 1) >> d->order;
}

bool rbd_direct_submit(struct rbd_direct *d, struct azbuse_io *io)
{
	struct rbd_direct_op *op;
	char oid[sizeof(d->prefix) + 24];
	bool read = io->op == AZBUSE_OP_READ;
	uint64_t within; /* the offset in the object */
	int ret;

	if (!d)
		return false;
	if (atomic_load_explicit(&d->stale, memory_order_acquire) ||
	    (d->retry_at && rbd_direct_now() >= d->retry_at))
		rbd_direct_refresh(d);
	if (!(read ? d->reads : d->writes) || !rbd_direct_fits(d, io))
		return false;
	op = d->free_ops;
	if (op)
		d->free_ops = op->next;
	else if (!(op = malloc(sizeof(*op))))
		return false;
	op->d = d;
	op->io = io;
	op->has_parent = d->has_parent;
	op->c = NULL;
	snprintf(oid, sizeof(oid), "%s.%016" PRIx64, d->prefix, io->offset >> d->order);
	within = io->offset & ((1ULL << d->order) - 1);
	d->inflight++; /* (first: an op of the own path may end within its call) */
	if (d->wire && !osdw_broken(d->wire)) {
		if (read)
			ret = osdw_read(d->wire, oid, within, io->len, io->buf, op);
		else
			ret = osdw_write(d->wire, oid, within, io->len, io->buf, d->snap_seq,
					 d->snaps, d->nr_snaps, op);
	} else if (rados_aio_create_completion2(op, rbd_direct_ended, &op->c) < 0) {
		ret = -ENOMEM;
	} else if (read) {
		ret = rados_aio_read(d->data_io, oid, op->c, io->buf, io->len, within);
	} else {
		ret = rados_aio_write(d->data_io, oid, op->c, io->buf, io->len, within);
	}
	if (ret < 0) {
		rbd_direct_put(d, op);
		return false;
	}
	if (read)
		d->nr_reads++;
	else
		d->nr_writes++;
	return true;
}

/* Complete (or hand back) one op that ended with ret (bytes read, or -errno). */
static void rbd_direct_finish(struct rbd_direct *d, struct rbd_direct_op *op, int ret)
{
	struct azbuse_io *io = op->io;
	bool has_parent = op->has_parent;

	rbd_direct_put(d, op);
	/* (a clone when the read left: a flatten since then may have copied it up) */
	if (ret == -ENOENT && io->op == AZBUSE_OP_READ && has_parent) {
		d->nr_handed_back++;
		d->fallback(d->fallback_arg, io); /* (librbd reads the parent) */
		return;
	}
	if (ret == -ENOENT && io->op == AZBUSE_OP_READ)
		ret = 0; /* never written: zeros */
	if (ret >= 0 && io->op == AZBUSE_OP_READ && (uint32_t)ret < io->len)
		memset((char *)io->buf + ret, 0, io->len - (uint32_t)ret);
	azbuse_complete(io, ret < 0 ? ret : 0);
}

void rbd_direct_reap(struct rbd_direct *d)
{
	struct rbd_direct_op *op, *next, *fifo = NULL;

	if (!d)
		return;
	op = atomic_exchange_explicit(&d->done, NULL, memory_order_acquire);
	for (; op; op = next) { /* (the stack is newest first: complete in order) */
		next = op->next;
		op->next = fifo;
		fifo = op;
	}
	for (op = fifo; op; op = next) {
		next = op->next;
		rbd_direct_finish(d, op, rados_aio_get_return_value(op->c));
	}
}

bool rbd_direct_serve(struct rbd_direct *d)
{
	if (!d || !d->wire)
		return true;
	osdw_service(d->wire); /* (completes through rbd_direct_wire_done) */
	return osdw_take_watched(d->wire);
}

/* The worker's thread, in osdw_service: an op of the own path ended. */
static void rbd_direct_wire_done(void *cookie, int result)
{
	struct rbd_direct_op *op = cookie;
	struct rbd_direct *d = op->d;
	struct azbuse_io *io = op->io;

	if (result == -EPROTO) { /* (not sent: it could not place it) librbd takes it */
		rbd_direct_put(d, op);
		d->nr_handed_back++;
		d->fallback(d->fallback_arg, io);
		return;
	}
	rbd_direct_finish(d, op, result);
}

int rbd_direct_wait_fd(struct rbd_direct *d, int event_fd)
{
	int ret;

	if (!d || !d->wire)
		return event_fd;
	ret = osdw_watch_fd(d->wire, event_fd);
	return ret < 0 ? ret : osdw_fd(d->wire);
}
