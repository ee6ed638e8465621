/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * osd_wire.h - the rbd engine's own RADOS data path: reads and writes of
 * one object sent straight to the object's primary OSD over Ceph's msgr2
 * protocol (crc mode), from the worker's own thread, as krbd does in the
 * kernel. librados stays for everything else (the image, its header, its
 * watch, the cluster maps through monitor commands); what it costs per
 * request, its objecter and messenger threads, is what this path removes.
 *
 * One client per worker process, on one thread: no locks. Its sockets are
 * gathered in one epoll fd (osdw_fd) that the worker waits on beside its
 * ring; osdw_service() reads what came, completes what is done through the
 * callback, and sends what waits.
 *
 * Each op keeps its transaction id for life: an op sent again (its OSD's
 * connection broke, or it got no answer) carries the same request id, so
 * an OSD that already applied it answers from its log instead of applying
 * it twice, the rule every RADOS client follows.
 *
 * Authentication: cephx (with the client's key from its configuration:
 * tickets from the monitors, renewed as they age, shown to each OSD) or
 * none, as the client's auth_client_required says; crc mode, not secure
 * mode (msgr2's encryption on the wire).
 */
#ifndef AZBUSE_OSD_WIRE_H
#define AZBUSE_OSD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rados/librados.h>

struct osdw;

/*
 * An op ended: result is the bytes read, 0 for a write, or -errno
 * (-EPROTO: not sent, see osdw_broken). May come from within osdw_read or
 * osdw_write.
 */
typedef void (*osdw_done_fn)(void *cookie, int result);

/*
 * A client for the objects of pool pool_id (no namespace), of the cluster
 * that cluster is connected to (for its monitor commands), speaking as
 * client.ENTITY with global id gid (one no other client uses: a librados
 * handle's rados_get_instance_id() that sends no OSD ops of its own);
 * with cephx, the one the monitors give it instead (osdw_gid).
 * NULL and *err (-errno) if it cannot be set up; why is logged.
 */
struct osdw *osdw_open(rados_t cluster, int64_t pool_id, const char *entity, uint64_t gid,
		       osdw_done_fn done, const char *name, int *err);
void osdw_close(struct osdw *w);

/* The fd to wait on (POLLIN): one of the client's sockets or timers needs service. */
int osdw_fd(const struct osdw *w);

/* Add fd to what osdw_fd() waits on (the engine's eventfd). */
int osdw_watch_fd(struct osdw *w, int fd);

/* Read len bytes at off of object oid into buf. 0 or -errno (nothing sent). */
int osdw_read(struct osdw *w, const char *oid, uint64_t off, uint32_t len, void *buf, void *cookie);

/*
 * Write len bytes of buf at off of object oid, under the snapshot context
 * (seq, snaps newest first). buf must stay until the op ends.
 */
int osdw_write(struct osdw *w, const char *oid, uint64_t off, uint32_t len, const void *buf,
	       uint64_t snap_seq, const uint64_t *snaps, uint32_t nr_snaps, void *cookie);

/*
 * Read, complete, send and retry what is due; returns the ops in flight.
 * What osdw_read/osdw_write queued leaves at its end (or osdw_flush).
 */
unsigned osdw_service(struct osdw *w);
void osdw_flush(struct osdw *w);

/* Whether the fd given to osdw_watch_fd() was readable at the last osdw_service (once). */
bool osdw_take_watched(struct osdw *w);

unsigned osdw_inflight(const struct osdw *w);

/* The global id it speaks as. */
uint64_t osdw_gid(const struct osdw *w);

/*
 * The client found its placement of an object differs from the cluster's
 * (a pool or hash it does not know): it ends such ops with -EPROTO, for
 * the caller to send another way, and should be given no more.
 */
bool osdw_broken(const struct osdw *w);

/* Exposed for the unit tests. */
uint32_t osdw_crc32c(uint32_t crc, const void *data, size_t len);
uint32_t osdw_str_hash(const char *s, size_t len);
uint32_t osdw_stable_mod(uint32_t x, uint32_t b, uint32_t bmask);

#endif
