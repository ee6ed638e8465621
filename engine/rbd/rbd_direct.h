/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rbd_direct.h - the rbd engine's object path: reads and writes that lie in
 * one RADOS object go to that object through librados, past librbd's
 * dispatch layers, as krbd does in the kernel; everything else, and every
 * image whose features ask more of a writer, stays with librbd. The rbd
 * engine takes it unless -o direct=off (see rbd_engine.c).
 */
#ifndef AZBUSE_RBD_DIRECT_H
#define AZBUSE_RBD_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include <azbuse/azbuse.h>

struct rbd_direct;

/* What takes a request the object path gave back (a read of a clone's unwritten object). */
typedef void (*rbd_direct_fallback_fn)(void *arg, struct azbuse_io *io);

/*
 * The object path of an open image (its header object header_oid, as the
 * engine named it), sharing the handle's cluster connection; its
 * completions wake event_fd. NULL (with a warning) if it cannot be set up:
 * every request then goes through librbd.
 */
struct rbd_target;
/*
 * With wire (the image's target, -o direct=wire), the objects' OSDs are
 * reached over azbuse's own messenger (osd_wire.h) instead of librados,
 * where the cluster allows (no authentication, no namespace).
 */
struct rbd_direct *rbd_direct_open(rados_t cluster, rados_ioctx_t ioctx, rbd_image_t image,
				   const char *header_oid, int event_fd,
				   rbd_direct_fallback_fn fallback, void *arg, const char *name,
				   const struct rbd_target *wire);

/*
 * The fd the worker waits on: event_fd, or, on the own path, one that
 * also wakes for its sockets and timers (event_fd among them). -errno.
 */
int rbd_direct_wait_fd(struct rbd_direct *d, int event_fd);
/*
 * After every request it took has completed (rbd_direct_inflight() == 0);
 * one with requests left in flight is kept (their completions use it), for
 * the exiting process to drop.
 */
void rbd_direct_close(struct rbd_direct *d);

/*
 * Any thread: read the image again before the next request. For librbd's
 * header callback, which runs once the worker's handle has taken the change
 * (the path's own watch may fire before that, and read the handle's old
 * view of the features and size).
 */
void rbd_direct_mark_stale(struct rbd_direct *d);

/*
 * Read the image again (its header changed: a resize, a snapshot, a
 * feature, a flatten): which requests may go directly, and the snapshot
 * context the object writes carry. rbd_direct_submit() does it when the
 * path's own watch on the header saw a change.
 */
void rbd_direct_refresh(struct rbd_direct *d);

/* Take io (a read or write) if it may go directly: true if it was taken. */
bool rbd_direct_submit(struct rbd_direct *d, struct azbuse_io *io);

/* On the worker's thread: complete what ended (or hand it to the fallback). */
void rbd_direct_reap(struct rbd_direct *d);

/*
 * On the worker's thread, first in its turn: serve the own path (read,
 * complete, send). Whether the engine's eventfd may have fired (always
 * true without the own path): if not, it need not be read, nor librbd asked.
 */
bool rbd_direct_serve(struct rbd_direct *d);

unsigned rbd_direct_inflight(const struct rbd_direct *d);

/*
 * Decode cls_rbd's get_snapcontext reply: le64 seq, le32 count, count
 * le64 ids (newest first). 0, or -EINVAL if buf is not that or holds more
 * than max ids.
 */
int rbd_snapc_decode(const void *buf, size_t len, uint64_t *seq, uint64_t *snaps, size_t max,
		     size_t *count);

#endif
