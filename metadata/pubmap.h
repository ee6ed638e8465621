/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pubmap.h - the published map of a served thin volume: for each logical
 * chunk, what the owner of its shard knows of it, in shared memory that
 * every queue worker of the device reads. A worker serves a read or an
 * in-place overwrite of any chunk from it, without asking the owner; all
 * the rest (first writes, copy-on-write, discards, snapshots) goes to the
 * owner, which alone writes its shard's RocksDB and publishes the result.
 *
 * An entry is one 64-bit word, read and written atomically, so a reader
 * never sees a torn one: UNKNOWN (ask the owner), ZERO (reads as zeros, a
 * write needs the owner), SHARED (physical chunk P, read-only: a write
 * needs copy-on-write) or OWNED (physical chunk P, which this volume owns
 * alone, stamped with the write epoch it was published in). An OWNED entry
 * may be overwritten in place only while its epoch is the map's current
 * one: a snapshot starts a new epoch (azb_pubmap_new_epoch), which makes
 * every entry published before it read-only at once.
 *
 * Grace periods, so that no worker writes through a mapping that has
 * changed: each reader (worker) marks the points where it holds nothing it
 * looked up before (azb_pubmap_quiescent: no data I/O in flight that an
 * earlier lookup chose), or that it is idle (azb_pubmap_idle). An owner that
 * changes what a chunk maps to, or frees a physical chunk, takes a ticket
 * (azb_pubmap_retire) after unpublishing, and reuses the chunk (or, after a
 * new epoch, lets the snapshot complete) only once azb_pubmap_passed says
 * every reader has been quiescent or idle since.
 *
 * The map lives in a shared anonymous mapping made before the workers are
 * forked (azb_pubmap_create), so every worker, and every worker restarted
 * later, shares it; or in a device's direct map (azb_pubmap_attach), which
 * the module serves reads and overwrites from as well (its layout and word
 * format are the module's: uapi.h, struct azbuse_map_hdr).
 */
#ifndef AZBUSE_PUBMAP_H
#define AZBUSE_PUBMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AZB_PUBMAP_MAX_READERS 1024
#define AZB_PUBMAP_PHYS_BITS 40 /* physical chunks: up to 2^40 per shard */
#define AZB_PUBMAP_EPOCH_BITS 22

enum azb_pub_kind {
	AZB_PUB_UNKNOWN = 0,
	AZB_PUB_ZERO = 1,
	AZB_PUB_SHARED = 2,
	AZB_PUB_OWNED = 3,
};

/* What a reader finds for a chunk. */
struct azb_pub_entry {
	enum azb_pub_kind kind;
	uint64_t phys; /* SHARED, OWNED: the physical chunk in the chunk's shard */
	bool writable; /* OWNED in the current epoch: overwrite in place */
};

struct azb_pubmap;

/*
 * A map of nr_chunks entries, all UNKNOWN, for nr_readers readers (0 to
 * nr_readers - 1), in shared memory that children forked later share.
 * -EINVAL for 0 chunks or readers, or more than AZB_PUBMAP_MAX_READERS;
 * -ENOMEM.
 */
int azb_pubmap_create(uint64_t nr_chunks, uint32_t nr_readers, struct azb_pubmap **pm);
/* The user bytes a device's direct map needs for nr_readers readers. */
size_t azb_pubmap_user_bytes(uint32_t nr_readers);
/*
 * Use a device's direct map (map, bytes long: what the worker was given),
 * whose user bytes hold the clock and nr_readers reader lines. -EINVAL for
 * bad arguments, -EPROTO for a header that does not fit, -ENOMEM.
 */
int azb_pubmap_attach(void *map, size_t bytes, uint32_t nr_readers, struct azb_pubmap **pm);
/* Unmap it (in this process: others keep their mapping); an attached map only lets go. */
void azb_pubmap_destroy(struct azb_pubmap *pm);
uint64_t azb_pubmap_nr_chunks(const struct azb_pubmap *pm);

/* --- the owner's side ---------------------------------------------------- */

/*
 * Publish what chunk maps to. ZERO ignores phys; OWNED is stamped with the
 * current epoch (if a new epoch starts while it is published, it is left
 * SHARED: the owner decided before the snapshot). -EINVAL for a chunk out of
 * range or a bad kind, -ERANGE for a phys of more than AZB_PUBMAP_PHYS_BITS
 * bits.
 */
int azb_pubmap_publish(struct azb_pubmap *pm, uint64_t chunk, enum azb_pub_kind kind,
		       uint64_t phys);
/* Make chunk UNKNOWN again (readers then ask the owner). */
void azb_pubmap_forget(struct azb_pubmap *pm, uint64_t chunk);
/*
 * Start a new write epoch (a snapshot): every OWNED entry published before
 * is read-only from now on. Returns a ticket for azb_pubmap_passed: once it
 * has passed, no reader is still writing through an entry of the old epoch.
 * Every 2^AZB_PUBMAP_EPOCH_BITS epochs the stamps wrap: then every OWNED
 * entry is made SHARED, so an old stamp can never look current.
 */
uint64_t azb_pubmap_new_epoch(struct azb_pubmap *pm);
/* A ticket taken after unpublishing or changing entries (see the top). */
uint64_t azb_pubmap_retire(struct azb_pubmap *pm);
/* Whether every reader has been quiescent or idle since ticket was taken. */
bool azb_pubmap_passed(const struct azb_pubmap *pm, uint64_t ticket);

/* --- a reader's side (a queue worker) ------------------------------------ */

/* What chunk maps to; an out-of-range chunk is UNKNOWN. */
struct azb_pub_entry azb_pubmap_lookup(const struct azb_pubmap *pm, uint64_t chunk);
/* Reader r holds nothing it looked up before this call. */
void azb_pubmap_quiescent(struct azb_pubmap *pm, uint32_t reader);
/* Reader r holds nothing and will call azb_pubmap_quiescent before its next lookup. */
void azb_pubmap_idle(struct azb_pubmap *pm, uint32_t reader);

#endif /* AZBUSE_PUBMAP_H */
