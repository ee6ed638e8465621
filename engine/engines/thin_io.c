// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_io.c - the thin engine's data path. A request is cut into pieces,
 * one per thin chunk. A worker serves a piece of any shard's chunk that the
 * published map knows (a read, or an overwrite of a chunk the volume owns
 * alone in the current epoch) from that shard's data file itself; anything
 * else goes to the chunk's owner (azbuse_complete_redirect), which looks it
 * up (read) or plans it (write) in its shard's metadata, publishes what it
 * learned (thin_pub.c) and serves it. Data moves with pread/pwrite: through O_DIRECT
 * when 4 KiB aligned (the usual case), so that the data goes straight to
 * the backing disk and a FLUSH or snapshot has little to write back; the
 * rare unaligned piece goes through the page cache (the kernel keeps the
 * two coherent).
 *
 * Writes: a chunk this volume owns alone is overwritten in place; a new
 * chunk (unmapped, or shared with a snapshot or a clone's origin) gets a
 * fresh physical chunk, which is a hole in the data file and so reads as
 * zeros: a partial write to an unmapped chunk writes only its bytes, a
 * partial write to a shared chunk copies the old chunk first. On a data
 * device a fresh chunk is not zeroed: its mapping says which sub-blocks
 * hold data (metadata/meta.h, AZB_VALID_ALL), reads zero the rest, and such a
 * chunk is only served by its owner until all of it is written. The mapping
 * is committed (RocksDB, not synced) after the data is written; the
 * batch's commits reach the WAL file in one write at its end, before any of
 * its requests is acknowledged (thin_batch_end).
 *
 * Durability: FLUSH and FUA fdatasync the data file, then sync the shard's
 * WAL, so every write acknowledged before a completed FLUSH is durable with
 * its mapping. A write not covered by one may, after a power loss, read as
 * zeros or half written (RocksDB may persist its mapping first), never as
 * another volume's data: metadata/ punches chunks before reusing them and
 * cuts the data file back to its high water on open; on a data device, the
 * data that makes a sub-block valid is synced before the mapping that says
 * so is committed (thin_commit_waiting).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../internal.h"
#include "thin.h"

/* One piece of a request: the part that falls in one thin chunk. */
struct thin_piece {
	uint64_t chunk;	 /* logical chunk */
	uint32_t within; /* byte offset in the chunk */
	uint32_t len;
	uint8_t *buf;
};

#define THIN_ENOSPC_LOG_MS 10000

/* A write refused for lack of space: counted, and logged (at most one line per 10 s). */
static void thin_note_enospc(struct thin_queue *tq, const struct azbuse_io *io)
{
	uint64_t now = azb_clock_ms();

	thin_owned.enospc++;
	if (thin_owned.enospc_log_ms && now - thin_owned.enospc_log_ms < THIN_ENOSPC_LOG_MS) {
		thin_owned.enospc_unlogged++;
		return;
	}
	azb_err("pool %s is out of space: %s of volume %s, %u bytes at %llu, failed (ENOSPC; "
		"%llu more since the last such line, %llu on shard %u since its worker started)",
		tq->engine->pool_dir, azbuse_op_name(io->op), tq->engine->volume, io->len,
		(unsigned long long)io->offset, (unsigned long long)thin_owned.enospc_unlogged,
		(unsigned long long)thin_owned.enospc, azb_shard_index(tq->shard));
	thin_owned.enospc_log_ms = now;
	thin_owned.enospc_unlogged = 0;
}

/* Complete a request; a failure is logged (a full pool's, counted, in its own words). */
static void thin_complete(struct thin_queue *tq, struct azbuse_io *io, int ret)
{
	if (ret == -ENOSPC)
		thin_note_enospc(tq, io);
	else if (ret)
		azb_err("shard %u: %s of %u bytes at %llu failed: %s", azb_shard_index(tq->shard),
			azbuse_op_name(io->op), io->len, (unsigned long long)io->offset,
			strerror(-ret));
	azbuse_complete(io, ret);
}

static bool thin_next_piece(const struct thin_queue *tq, const struct azbuse_io *io, uint64_t *done,
			    struct thin_piece *p)
{
	uint64_t off = io->offset + *done;

	if (*done >= io->len)
		return false;
	p->chunk = off / tq->chunk_size;
	p->within = (uint32_t)(off % tq->chunk_size);
	p->len = (uint32_t)(tq->chunk_size - p->within);
	if (p->len > io->len - *done)
		p->len = (uint32_t)(io->len - *done);
	p->buf = io->buf ? (uint8_t *)io->buf + *done : NULL;
	*done += p->len;
	return true;
}

/* The shard that owns a logical chunk. */
static uint32_t thin_shard_of(const struct thin_queue *tq, uint64_t chunk)
{
	return azb_chunk_shard(&tq->engine->settings, chunk);
}

static uint64_t thin_phys_offset(const struct thin_queue *tq, uint64_t phys, uint32_t within)
{
	return phys * tq->chunk_size + within;
}

static bool thin_aligned(const struct thin_queue *tq, const void *buf, size_t len, uint64_t off)
{
	return !((uintptr_t)buf % tq->direct_align) && !(len % tq->direct_align) &&
	       !(off % tq->direct_align);
}

/* The descriptor of shard's data file for this transfer: O_DIRECT if it is aligned. */
static int thin_data_fd(const struct thin_queue *tq, uint32_t shard, const void *buf, size_t len,
			uint64_t off)
{
	if (tq->direct_fds[shard] >= 0 && thin_aligned(tq, buf, len, off))
		return tq->direct_fds[shard];
	return tq->data_fds[shard];
}

static int thin_pread_at(const struct thin_queue *tq, uint32_t shard, uint8_t *buf, size_t len,
			 uint64_t off);
static int thin_pwrite_at(const struct thin_queue *tq, uint32_t shard, const uint8_t *buf,
			  size_t len, uint64_t off);

/*
 * A raw pool's transfer whose buffer is not aligned for O_DIRECT goes
 * through an aligned copy (never the page cache: see thin_check_raw); one
 * whose offset or length is not is refused.
 */
static int thin_raw_bounce(const struct thin_queue *tq, uint32_t shard, uint8_t *buf, size_t len,
			   uint64_t off, bool write)
{
	void *tmp;
	int ret;

	if (len % tq->direct_align || off % tq->direct_align)
		return -EINVAL;
	if (posix_memalign(&tmp, tq->direct_align, len))
		return -ENOMEM;
	if (write) {
		memcpy(tmp, buf, len);
		ret = thin_pwrite_at(tq, shard, tmp, len, off);
	} else {
		ret = thin_pread_at(tq, shard, tmp, len, off);
		if (!ret)
			memcpy(buf, tmp, len);
	}
	free(tmp);
	return ret;
}

static int thin_pread_at(const struct thin_queue *tq, uint32_t shard, uint8_t *buf, size_t len,
			 uint64_t off)
{
	int fd = thin_data_fd(tq, shard, buf, len, off);

	if (tq->raw && fd != tq->direct_fds[shard])
		return thin_raw_bounce(tq, shard, buf, len, off, false);
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) { /* past the end of the sparse file: zeros */
			memset(buf, 0, len);
			return 0;
		}
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int thin_pwrite_at(const struct thin_queue *tq, uint32_t shard, const uint8_t *buf,
			  size_t len, uint64_t off)
{
	int fd = thin_data_fd(tq, shard, buf, len, off);

	if (tq->raw && fd != tq->direct_fds[shard])
		return thin_raw_bounce(tq, shard, (uint8_t *)buf, len, off, true);
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* The same in the shard this worker owns. */
static int thin_pwrite_all(const struct thin_queue *tq, const uint8_t *buf, size_t len,
			   uint64_t off)
{
	return thin_pwrite_at(tq, tq->index, buf, len, off);
}

/* Does [buf, buf + len) lie within the ring's buffers registered with the io_uring? */
static bool thin_in_fixed(const struct thin_queue *tq, const uint8_t *buf, size_t len)
{
	uintptr_t base = (uintptr_t)tq->fixed_base, at = (uintptr_t)buf;

	return tq->fixed_base && at >= base && at - base < tq->fixed_bytes &&
	       len <= tq->fixed_bytes - (at - base);
}

/*
 * Queue a write of the own shard's data file on the worker's io_uring
 * (submitted every few, and at the latest by thin_data_wait): 0, or 1 if it
 * must be written now instead (no io_uring, or not aligned for O_DIRECT).
 */
static int thin_write_async(struct thin_queue *tq, const uint8_t *buf, size_t len, uint64_t off)
{
	struct io_uring_sqe *sqe;

	if (!tq->uring_ok || tq->direct_fd < 0 || !thin_aligned(tq, buf, len, off) ||
	    len > UINT32_MAX)
		return 1;
	sqe = io_uring_get_sqe(&tq->uring);
	if (!sqe) {
		io_uring_submit(&tq->uring);
		tq->data_unsubmitted = 0;
		sqe = io_uring_get_sqe(&tq->uring);
		if (!sqe)
			return 1;
	}
	if (thin_in_fixed(tq, buf, len)) {
		io_uring_prep_write_fixed(sqe, tq->direct_fd, buf, (unsigned)len, off, 0);
		tq->data_fixed++;
	} else {
		io_uring_prep_write(sqe, tq->direct_fd, buf, (unsigned)len, off);
	}
	io_uring_sqe_set_data64(sqe, len);
	tq->data_inflight++;
	tq->data_async++;
	if (++tq->data_unsubmitted >= THIN_URING_SUBMIT_EVERY) {
		io_uring_submit(&tq->uring);
		tq->data_unsubmitted = 0;
	}
	return 0;
}

/* A completion: a short write or an error is the batch's failure. */
static void thin_data_reaped(struct thin_queue *tq, const struct io_uring_cqe *cqe)
{
	int res = cqe->res;

	if (res >= 0 && (uint64_t)res != io_uring_cqe_get_data64(cqe))
		res = -EIO;
	if (res < 0 && !tq->data_err) {
		azb_log("shard %u: new chunk's data write failed: %s", azb_shard_index(tq->shard),
			strerror(-res));
		tq->data_err = res;
	}
	tq->data_inflight--;
}

int thin_data_wait(struct thin_queue *tq)
{
	struct io_uring_cqe *cqe;
	int ret;

	while (tq->data_inflight) {
		ret = io_uring_submit_and_wait(&tq->uring, 1);
		tq->data_unsubmitted = 0;
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			/* writes of unknown fate: nothing of the batch may be acknowledged */
			azb_log("shard %u: io_uring: %s: exiting without acknowledging the batch",
				azb_shard_index(tq->shard), strerror(-ret));
			_exit(EXIT_FAILURE);
		}
		while (!io_uring_peek_cqe(&tq->uring, &cqe)) {
			thin_data_reaped(tq, cqe);
			io_uring_cqe_seen(&tq->uring, cqe);
		}
	}
	ret = tq->data_err;
	tq->data_err = 0;
	return ret;
}

/* A metadata error as a request result: keep ENOSPC/EROFS, the rest is EIO (and logged). */
static int thin_meta_error(struct thin_queue *tq, int ret)
{
	if (!ret || ret == -ENOSPC || ret == -EROFS)
		return ret;
	azb_log("shard %u: %s (%s)", azb_shard_index(tq->shard), azb_shard_error(tq->shard),
		strerror(-ret));
	return -EIO;
}

/* Zeros over the part of buf (bytes [within, within + len) of a chunk) that
 * lies in sub-blocks holding no data. */
static void thin_zero_invalid(const struct thin_queue *tq, uint8_t *buf, uint32_t within,
			      uint32_t len, uint64_t valid)
{
	uint32_t unit, pos, end;

	if (valid == AZB_VALID_ALL)
		return;
	unit = azb_valid_unit(tq->shard);
	for (pos = within; pos < within + len; pos = end) {
		end = (pos / unit + 1) * unit;
		if (end > within + len)
			end = within + len;
		if (!(valid & (1ULL << (pos / unit))))
			memset(buf + (pos - within), 0, end - pos);
	}
}

/* One layer's bytes [within, within + len) of a chunk: phys's valid
 * sub-blocks, zeros elsewhere (all zeros for AZB_PHYS_NONE). */
static int thin_read_layer(const struct thin_queue *tq, uint32_t shard, uint8_t *buf,
			   uint32_t within, uint32_t len, uint64_t phys, uint64_t valid)
{
	int ret;

	if (phys == AZB_PHYS_NONE || !valid) {
		memset(buf, 0, len);
		return 0;
	}
	ret = thin_pread_at(tq, shard, buf, len, thin_phys_offset(tq, phys, within));
	if (!ret)
		thin_zero_invalid(tq, buf, within, len, valid);
	return ret;
}

/* What a chunk mapped as m reads at [within, within + len): each run of
 * sub-blocks from the layer that holds it. */
static int thin_read_mapped(const struct thin_queue *tq, uint32_t shard, uint8_t *buf,
			    uint32_t within, uint32_t len, const struct azb_chunk_map *m)
{
	uint32_t unit = azb_valid_unit(tq->shard), pos, end;
	int ret = 0;

	if (m->valid == AZB_VALID_ALL || m->base == AZB_PHYS_NONE)
		return thin_read_layer(tq, shard, buf, within, len, m->phys, m->valid);
	for (pos = within; !ret && pos < within + len; pos = end) {
		bool top = m->valid & (1ULL << (pos / unit));

		for (end = pos; end < within + len && !!(m->valid & (1ULL << (end / unit))) == top;)
			end = (end / unit + 1) * unit;
		if (end > within + len)
			end = within + len;
		ret = thin_read_layer(tq, shard, buf + (pos - within), pos, end - pos,
				      top ? m->phys : m->base, top ? AZB_VALID_ALL : m->base_valid);
	}
	return ret;
}

/* Bytes [off, off + len) of a sub-block the plan's chunk does not hold: what
 * the layer beneath it has there (zeros for a chunk that is not layered). */
static int thin_fill_edge(struct thin_queue *tq, const struct azb_write_plan *plan, uint32_t off,
			  uint32_t len)
{
	uint64_t phys = AZB_PHYS_NONE, valid = AZB_VALID_ALL;
	int ret;

	if (plan->layered) {
		phys = plan->in_place ? plan->old_base : plan->old_phys;
		valid = plan->in_place ? plan->old_base_valid : plan->old_valid;
	}
	ret = thin_read_layer(tq, tq->index, tq->edge_buf, off, len, phys, valid);
	if (!ret)
		ret = thin_pwrite_all(tq, tq->edge_buf, len, thin_phys_offset(tq, plan->phys, off));
	return ret;
}

/* Fill the parts of the first and last sub-blocks that a write of [within,
 * within + len) touches but leaves out, where the chunk does not hold them. */
static int thin_fill_edges(struct thin_queue *tq, const struct azb_write_plan *plan,
			   uint32_t within, uint32_t len)
{
	uint32_t unit = azb_valid_unit(tq->shard), end = within + len;
	uint32_t head = within % unit, tail = end % unit;
	int ret = 0;

	if (plan->valid == AZB_VALID_ALL || (!head && !tail))
		return 0;
	if (!tq->edge_buf && posix_memalign((void **)&tq->edge_buf, 4096, unit))
		return -ENOMEM;
	if (head && !(plan->valid & (1ULL << (within / unit))))
		ret = thin_fill_edge(tq, plan, within - head, head);
	if (!ret && tail && !(plan->valid & (1ULL << (end / unit))))
		ret = thin_fill_edge(tq, plan, end, unit - tail);
	return ret;
}

/* Note what the owner learned for the other workers and the module: a chunk
 * whose sub-blocks do not all hold data is not published (they read it
 * whole), and goes on reaching its owner. */
static void thin_pub_learned(struct thin_queue *tq, uint64_t chunk, uint64_t phys, uint64_t valid,
			     bool in_place)
{
	if (valid == AZB_VALID_ALL)
		thin_pub_note(tq, chunk, phys, in_place);
	else
		thin_pub_forget(tq, chunk);
}

/*
 * Where a piece's data is: from the published map, or (own shard) from the
 * metadata, noting it for publication. *owner is set instead when only the
 * chunk's owner, another worker, can tell.
 */
static int thin_find_piece(struct thin_queue *tq, const struct thin_piece *p, uint32_t shard,
			   struct azb_chunk_map *m, int *owner)
{
	struct azb_pub_entry e = thin_pub_lookup(tq, p->chunk);
	int in_place, ret;

	m->phys = m->base = AZB_PHYS_NONE;
	m->valid = m->base_valid = AZB_VALID_ALL;
	if (e.kind == AZB_PUB_ZERO || e.kind == AZB_PUB_SHARED || e.kind == AZB_PUB_OWNED) {
		if (e.kind != AZB_PUB_ZERO)
			m->phys = e.phys;
		return 0;
	}
	if (shard != tq->index) {
		*owner = (int)shard;
		return 0;
	}
	ret = azb_shard_resolve(tq->shard, &tq->engine->view, p->chunk, m, &in_place);
	if (ret)
		return thin_meta_error(tq, ret);
	thin_pub_learned(tq, p->chunk, m->phys, m->valid, in_place);
	return 0;
}

static int thin_read_piece(struct thin_queue *tq, const struct thin_piece *p, int *owner)
{
	uint32_t shard = thin_shard_of(tq, p->chunk);
	struct azb_chunk_map m;
	int ret = thin_find_piece(tq, p, shard, &m, owner);

	if (ret || *owner >= 0)
		return ret;
	return thin_read_mapped(tq, shard, p->buf, p->within, p->len, &m);
}

/* Hand a request to the worker that owns its chunk. */
static void thin_redirect(struct thin_queue *tq, struct azbuse_io *io, int owner)
{
	tq->redirected++;
	azbuse_complete_redirect(io, (uint16_t)owner);
}

void thin_read(void *queue, struct azbuse_io *io)
{
	struct thin_queue *tq = queue;
	struct thin_piece p;
	uint64_t done = 0;
	int ret = 0, owner = -1;

	thin_pub_enter(tq);
	while (!ret && owner < 0 && thin_next_piece(tq, io, &done, &p))
		ret = thin_read_piece(tq, &p, &owner);
	if (!ret && owner >= 0) {
		thin_redirect(tq, io, owner);
		return;
	}
	if (thin_shard_of(tq, io->offset / tq->chunk_size) != tq->index)
		tq->foreign++;
	thin_complete(tq, io, ret);
}

/*
 * Write a piece into the own chunk at phys whose valid sub-blocks are
 * plan->valid, and make the sub-blocks it touches valid: the parts of them
 * the piece leaves out that held no data get zeros first.
 */
static int thin_write_sub_blocks(struct thin_queue *tq, struct azb_write_plan *plan,
				 const struct thin_piece *p, const uint8_t *data)
{
	uint64_t valid = azb_valid_add(tq->shard, plan->valid, p->within, p->len);
	uint64_t off = thin_phys_offset(tq, plan->phys, p->within);
	int ret = thin_fill_edges(tq, plan, p->within, p->len);

	/* a piece of a new chunk, or one that makes sub-blocks valid, waits for
	 * the batch's commit: its data may be in flight until then
	 * (thin_commit_waiting waits) */
	if (!ret && ((plan->in_place && valid == plan->cur_valid) ||
		     thin_write_async(tq, data, p->len, off)))
		ret = thin_pwrite_all(tq, data, p->len, off);
	if (!ret)
		plan->valid = valid;
	return ret;
}

/*
 * Write into plan->phys, whole, what the chunk read before (the plan's old
 * layers) with the piece (or zeros, data == NULL; nothing, p == NULL) over
 * it. Sets plan->valid.
 */
static int thin_copy_chunk(struct thin_queue *tq, struct azb_write_plan *plan,
			   const struct thin_piece *p, const uint8_t *data)
{
	struct azb_chunk_map old = { plan->old_phys, plan->old_valid, plan->old_base,
				     plan->old_base_valid };
	int ret = 0;

	if (!p || p->len != tq->chunk_size)
		ret = thin_read_mapped(tq, tq->index, tq->chunk_buf, 0, (uint32_t)tq->chunk_size,
				       &old);
	if (ret)
		return ret;
	if (p && data)
		memcpy(tq->chunk_buf + p->within, data, p->len);
	else if (p)
		memset(tq->chunk_buf + p->within, 0, p->len);
	plan->valid = AZB_VALID_ALL;
	return thin_pwrite_all(tq, tq->chunk_buf, tq->chunk_size,
			       thin_phys_offset(tq, plan->phys, 0));
}

/*
 * Put a piece into a chunk that is not yet this volume's (plan.phys: a
 * fresh hole, or on a data device a chunk with no valid sub-block): over
 * zeros, just the piece; over data, just the piece too when the plan is
 * layered (the rest reads through to the old chunk), else a copy of the
 * old chunk's content with the piece (or zeros, data == NULL) laid over it.
 * Sets plan->valid.
 */
static int thin_fill_new_chunk(struct thin_queue *tq, struct azb_write_plan *plan,
			       const struct thin_piece *p, const uint8_t *data)
{
	uint64_t base = thin_phys_offset(tq, plan->phys, 0);

	if (plan->old_phys == AZB_PHYS_NONE) {
		/* the rest of the fresh chunk already reads as zeros */
		if (data)
			return thin_write_sub_blocks(tq, plan, p, data);
		if (plan->valid != AZB_VALID_ALL)
			return 0; /* zeros that stay allocated (NOUNMAP): what it reads already */
		return fallocate(tq->data_fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
				 (off_t)(base + p->within), (off_t)p->len)
			       ? -errno
			       : 0;
	}
	if (plan->layered && data && !tq->engine->copy_whole)
		return thin_write_sub_blocks(tq, plan, p, data);
	return thin_copy_chunk(tq, plan, p, data);
}

static uint64_t thin_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A chunk given back unused must read as zeros when it is handed out again
 * (and no write of the batch may land in it after it is punched). */
static void thin_abort_plan(struct thin_queue *tq, const struct azb_write_plan *plan)
{
	int err = thin_data_wait(tq);

	if (err && !tq->data_err)
		tq->data_err = err; /* still the batch's failure */
	if (!plan->in_place)
		fallocate(tq->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)thin_phys_offset(tq, plan->phys, 0), (off_t)tq->chunk_size);
	azb_shard_abort_write(tq->shard, plan);
}

/*
 * The pool's use against its low-space threshold, as azbuse-thin usage
 * computes it (used / (used + free); free: what the limit leaves, or the
 * filesystem's free space less the reserve, whichever is less), from this
 * shard's figures (the shards fill alike: chunks are striped): a crossing
 * either way is logged.
 */
static void thin_check_low_space(struct thin_queue *tq, const struct statvfs *st)
{
	const struct azb_pool_settings *s = &tq->engine->settings;
	struct azb_shard_usage u;
	uint64_t used, room = UINT64_MAX, fs_free;
	bool low;

	if (azb_shard_usage(tq->shard, &u))
		return;
	used = u.allocated_chunks * tq->chunk_size * tq->nr_shards;
	if (u.quota_chunks)
		room = u.quota_chunks > u.allocated_chunks ? (u.quota_chunks - u.allocated_chunks) *
								     tq->chunk_size * tq->nr_shards
							   : 0;
	if (st) {
		fs_free = (uint64_t)st->f_bavail * st->f_frsize;
		fs_free = fs_free > AZB_DISK_RESERVE ? fs_free - AZB_DISK_RESERVE : 0;
		room = fs_free < room ? fs_free : room;
	}
	if (room == UINT64_MAX)
		return;
	low = used + room && used * 100 >= (used + room) * s->low_space_percent;
	if (low == thin_owned.low_space)
		return;
	thin_owned.low_space = low;
	if (low)
		azb_warn("pool %s is low on space: %llu%% used, threshold %u%% (azbuse-thin usage)",
			 tq->engine->pool_dir, (unsigned long long)(used * 100 / (used + room)),
			 s->low_space_percent);
	else
		azb_log("pool %s is below its low-space threshold (%u%%) again",
			tq->engine->pool_dir, s->low_space_percent);
}

/* Is the backing filesystem about to fill up? Checked every few new chunks.
 * (A data device's region fills up in the allocator, with its own error.) */
static bool thin_disk_low(struct thin_queue *tq)
{
	struct statvfs st;
	struct stat sb;

	if (tq->allocs_unchecked++ % THIN_DISK_CHECK_EVERY)
		return tq->disk_low;
	if (!fstat(tq->data_fd, &sb) && S_ISBLK(sb.st_mode)) {
		tq->disk_low = false;
		thin_check_low_space(tq, NULL);
	} else if (!fstatvfs(tq->data_fd, &st)) {
		tq->disk_low = (uint64_t)st.f_bavail * st.f_frsize <
			       AZB_DISK_RESERVE + THIN_DISK_CHECK_EVERY * tq->chunk_size;
		thin_check_low_space(tq, &st);
	}
	return tq->disk_low;
}

/* A layered chunk to complete later (dropped when the ring is full). */
static void thin_fill_note(struct thin_queue *tq, uint64_t chunk)
{
	if (tq->fill_tail - tq->fill_head < THIN_FILLS_MAX)
		tq->fills[tq->fill_tail++ % THIN_FILLS_MAX] = chunk;
}

int thin_commit_waiting(struct thin_queue *tq)
{
	/* first every data write: none may outlive the batch (their buffers are
	 * the requests', given back when the batch's completions are) */
	int ret = thin_data_wait(tq), err;
	uint32_t i;

	if (!tq->nr_wait_plans && !tq->nr_wait_ios)
		return ret;
	if (!ret && tq->nr_wait_copies && fdatasync(tq->data_fd))
		ret = -errno;
	if (ret) {
		for (i = 0; i < tq->nr_wait_plans; i++)
			thin_abort_plan(tq, &tq->wait_plans[i]);
	} else if (tq->nr_wait_plans) {
		err = azb_shard_commit_writes(tq->shard, tq->wait_plans, tq->nr_wait_plans);
		if (err)
			ret = thin_meta_error(tq, err);
		for (i = 0; !err && i < tq->nr_wait_plans; i++) {
			const struct azb_write_plan *plan = &tq->wait_plans[i];

			thin_pub_learned(tq, plan->chunk, plan->phys, plan->valid, true);
			if (plan->layered && plan->valid != AZB_VALID_ALL)
				thin_fill_note(tq, plan->chunk);
		}
	}
	tq->nr_wait_plans = tq->nr_wait_copies = 0;
	for (i = 0; i < tq->nr_wait_ios; i++)
		thin_complete(tq, tq->wait_ios[i], ret ? -EIO : 0);
	tq->nr_wait_ios = 0;
	return ret;
}

/*
 * The batch's mapping changes reach the WAL file before its requests are
 * acknowledged (the worker publishes completions after batch_end) and
 * before what the owner learned is published to the other workers. If they
 * cannot be written, the worker must not acknowledge them: it exits, and
 * the kernel gives every request it held to the restarted worker.
 */
void thin_batch_end(void *queue)
{
	struct thin_queue *tq = queue;

	thin_commit_waiting(tq);
	if (azb_shard_flush_wal(tq->shard)) {
		azb_log("shard %u: %s: exiting without acknowledging the batch",
			azb_shard_index(tq->shard), azb_shard_error(tq->shard));
		_exit(EXIT_FAILURE);
	}
	thin_pub_apply(tq);
	thin_pub_idle(tq);
	tq->last_batch_ms = thin_now_ms();
}

/* A chunk with a new mapping still waiting: commit it before touching the chunk again. */
static int thin_settle_chunk(struct thin_queue *tq, uint64_t chunk)
{
	uint32_t i;

	for (i = 0; i < tq->nr_wait_plans; i++)
		if (tq->wait_plans[i].chunk == chunk)
			return thin_commit_waiting(tq);
	return 0;
}

/*
 * Record a new chunk's mapping with the batch's others, at its end (a copy's
 * after the batch's fdatasync): *deferred set, the request completes then.
 */
static int thin_record_new_chunk(struct thin_queue *tq, const struct azb_write_plan *plan,
				 bool *deferred)
{
	int ret;

	if (tq->nr_wait_plans == THIN_WAIT_PLANS_MAX) {
		ret = thin_commit_waiting(tq);
		if (ret)
			return ret;
	}
	tq->wait_plans[tq->nr_wait_plans++] = *plan;
	/* a copy, or data a data device's chunk did not hold before */
	if (plan->old_phys != AZB_PHYS_NONE || (plan->valid && azb_shard_tracks_valid(tq->shard)))
		tq->nr_wait_copies++;
	*deferred = true;
	return 0;
}

/* Write a piece (data, or zeros when data is NULL) through copy-on-write. */
static int thin_write_piece(struct thin_queue *tq, const struct thin_piece *p, const uint8_t *data,
			    bool *deferred)
{
	struct azb_write_plan plan;
	int ret;

	ret = thin_settle_chunk(tq, p->chunk);
	if (ret)
		return ret;
	thin_pub_before_alloc(tq);
	ret = azb_shard_plan_write(tq->shard, &tq->engine->view, p->chunk, &plan);
	if (ret)
		return thin_meta_error(tq, ret);
	if (plan.in_place) {
		bool whole = plan.valid == AZB_VALID_ALL;

		if (whole)
			thin_pub_note(tq, p->chunk, plan.phys, true);
		if (!data && plan.layered) {
			/* zeros, not what lies beneath: the whole chunk becomes its own */
			ret = thin_copy_chunk(tq, &plan, p, NULL);
			return ret ? ret : thin_record_new_chunk(tq, &plan, deferred);
		}
		if (!data) /* (in a partly written chunk, zeros are what the rest reads already) */
			return fallocate(tq->data_fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					 (off_t)thin_phys_offset(tq, plan.phys, p->within),
					 (off_t)p->len)
				       ? -errno
				       : 0;
		if (whole)
			return thin_pwrite_all(tq, data, p->len,
					       thin_phys_offset(tq, plan.phys, p->within));
		ret = thin_write_sub_blocks(tq, &plan, p, data);
		if (ret || plan.valid == plan.cur_valid)
			return ret;
		return thin_record_new_chunk(tq, &plan, deferred);
	}
	if (thin_disk_low(tq)) {
		thin_abort_plan(tq, &plan);
		return -ENOSPC;
	}
	ret = thin_fill_new_chunk(tq, &plan, p, data);
	if (!ret)
		ret = thin_record_new_chunk(tq, &plan, deferred);
	else
		thin_abort_plan(tq, &plan);
	return ret;
}

static int thin_make_durable(struct thin_queue *tq)
{
	int ret = thin_commit_waiting(tq);

	if (ret)
		return ret;
	if (fdatasync(tq->data_fd))
		return -errno;
	return azb_shard_sync(tq->shard) ? -EIO : 0;
}

/*
 * Data this worker wrote in place to other shards' chunks. A FLUSH reaches
 * every worker in turn; each owner syncs its metadata, and each worker the
 * data files it wrote (the owners cannot know of those writes).
 */
int thin_sync_foreign(struct thin_queue *tq)
{
	uint32_t s;

	for (s = 0; s < tq->nr_shards; s++) {
		if (!(tq->foreign_dirty & (1ULL << s)))
			continue;
		if (fdatasync(tq->data_fds[s]))
			return -errno;
		tq->foreign_dirty &= ~(1ULL << s);
	}
	return 0;
}

/* End a write: now, or with its new chunks' mappings at the batch's end. */
static void thin_end_write(struct thin_queue *tq, struct azbuse_io *io, int ret, bool deferred)
{
	if (!ret && (io->flags & AZBUSE_RQ_FUA))
		ret = thin_make_durable(tq);
	else if (deferred && !ret) {
		tq->wait_ios[tq->nr_wait_ios++] = io;
		return;
	}
	thin_complete(tq, io, ret);
}

/*
 * A write to another shard's chunks: overwritten in place if the published
 * map says the volume owns every one alone in the current epoch, else (or
 * for FUA, which needs the owner's metadata durable too) handed to the
 * owner. A piece written before the owner takes over is written again.
 */
static void thin_write_foreign(struct thin_queue *tq, struct azbuse_io *io, uint32_t shard)
{
	struct azb_pub_entry e;
	struct thin_piece p;
	uint64_t done = 0;
	int ret = 0;

	if (io->flags & AZBUSE_RQ_FUA) {
		thin_redirect(tq, io, (int)shard);
		return;
	}
	while (!ret && thin_next_piece(tq, io, &done, &p)) {
		e = thin_pub_lookup(tq, p.chunk);
		if (!e.writable || thin_shard_of(tq, p.chunk) != shard) {
			thin_redirect(tq, io, (int)shard);
			return;
		}
		ret = thin_pwrite_at(tq, shard, p.buf, p.len,
				     thin_phys_offset(tq, e.phys, p.within));
	}
	tq->foreign_dirty |= 1ULL << shard;
	tq->foreign++;
	thin_complete(tq, io, ret);
}

/* A piece of the own shard: in place at once if published so, else planned. */
static int thin_write_own_piece(struct thin_queue *tq, const struct thin_piece *p, bool *deferred)
{
	struct azb_pub_entry e = thin_pub_lookup(tq, p->chunk);

	if (thin_shard_of(tq, p->chunk) != tq->index)
		return -EIO; /* the module keeps a request within one shard's stripe */
	if (e.writable)
		return thin_pwrite_all(tq, p->buf, p->len, thin_phys_offset(tq, e.phys, p->within));
	return thin_write_piece(tq, p, p->buf, deferred);
}

void thin_write(void *queue, struct azbuse_io *io)
{
	struct thin_queue *tq = queue;
	uint32_t shard = thin_shard_of(tq, io->offset / tq->chunk_size);
	bool deferred = false;
	struct thin_piece p;
	uint64_t done = 0;
	int ret = 0;

	thin_pub_enter(tq);
	if (shard != tq->index) {
		thin_write_foreign(tq, io, shard);
		return;
	}
	while (!ret && thin_next_piece(tq, io, &done, &p))
		ret = thin_write_own_piece(tq, &p, &deferred);
	thin_end_write(tq, io, ret, deferred);
}

void thin_flush(void *queue, struct azbuse_io *io)
{
	struct thin_queue *tq = queue;
	int ret = thin_make_durable(tq);

	if (!ret)
		ret = thin_sync_foreign(tq);
	thin_complete(tq, io, ret);
}

/* Is anything mapped at this chunk in the view? (Zeroing an unmapped part is free.) */
static int thin_mapped(struct thin_queue *tq, uint64_t chunk, bool *mapped)
{
	uint64_t phys;
	int ret = azb_shard_lookup(tq->shard, &tq->engine->view, chunk, &phys);

	*mapped = !ret && phys != AZB_PHYS_NONE;
	return ret;
}

/*
 * Unmap a whole chunk (after committing any copy of it still waiting). It is
 * unpublished first; its old chunk, if freed, is reused only once no worker
 * can still be writing to it.
 */
static int thin_unmap_chunk(struct thin_queue *tq, uint64_t chunk)
{
	int ret = thin_settle_chunk(tq, chunk);

	if (ret)
		return ret;
	thin_pub_forget(tq, chunk);
	ret = thin_meta_error(tq, azb_shard_discard(tq->shard, &tq->engine->view, chunk));
	thin_pub_freed(tq);
	if (!ret)
		thin_pub_note(tq, chunk, AZB_PHYS_NONE, false);
	return ret;
}

/*
 * Discard: whole chunks are unmapped (their space returns unless a snapshot
 * still sees them); the partial chunks at either end are left as they are,
 * which a discard allows.
 */
void thin_discard(void *queue, struct azbuse_io *io)
{
	struct thin_queue *tq = queue;
	struct thin_piece p;
	uint64_t done = 0;
	int ret = 0;

	thin_pub_enter(tq);
	while (!ret && thin_next_piece(tq, io, &done, &p))
		if (p.len == tq->chunk_size)
			ret = thin_unmap_chunk(tq, p.chunk);
	thin_complete(tq, io, ret);
}

/*
 * Write-zeroes: whole chunks are unmapped, or under NOUNMAP zeroed in
 * place and kept allocated; partial chunks are zeroed if mapped.
 */
void thin_write_zeroes(void *queue, struct azbuse_io *io)
{
	struct thin_queue *tq = queue;
	bool unmap = !(io->flags & AZBUSE_RQ_NOUNMAP);
	bool mapped, deferred = false;
	struct thin_piece p;
	uint64_t done = 0;
	int ret = 0;

	thin_pub_enter(tq);
	while (!ret && thin_next_piece(tq, io, &done, &p)) {
		if (p.len == tq->chunk_size && unmap) {
			ret = thin_unmap_chunk(tq, p.chunk);
			continue;
		}
		ret = thin_settle_chunk(tq, p.chunk);
		if (!ret)
			ret = thin_mapped(tq, p.chunk, &mapped);
		if (ret)
			ret = thin_meta_error(tq, ret);
		else if (mapped || !unmap)
			ret = thin_write_piece(tq, &p, NULL, &deferred);
	}
	thin_end_write(tq, io, ret, deferred);
}

/*
 * Complete a layered chunk: copy what it still reads through to the chunk
 * beneath into it, whole, and commit it as the volume's own (with the
 * batch's others). Nothing to do if it is no longer layered or no longer
 * the volume's own (a snapshot has it now: a write will copy it).
 */
static int thin_fill_layered(struct thin_queue *tq, uint64_t chunk)
{
	struct azb_write_plan plan;
	struct azb_chunk_map m;
	bool deferred;
	int in_place, ret = thin_settle_chunk(tq, chunk);

	if (!ret)
		ret = azb_shard_resolve(tq->shard, &tq->engine->view, chunk, &m, &in_place);
	if (ret || !in_place || m.base == AZB_PHYS_NONE)
		return ret ? thin_meta_error(tq, ret) : 0;
	ret = azb_shard_plan_write(tq->shard, &tq->engine->view, chunk, &plan);
	if (ret)
		return thin_meta_error(tq, ret);
	if (!plan.in_place || !plan.layered)
		return thin_meta_error(tq, azb_shard_abort_write(tq->shard, &plan));
	ret = thin_copy_chunk(tq, &plan, NULL, NULL);
	if (!ret)
		ret = thin_record_new_chunk(tq, &plan, &deferred);
	if (!ret)
		tq->filled++;
	return ret;
}

/* Queue the head's layered chunks that a scan of the metadata finds next
 * (those of an earlier run of the worker). */
static void thin_fill_scan(struct thin_queue *tq)
{
	uint64_t chunks[THIN_FILLS_PER_TURN * 8];
	uint32_t n, i;
	int ret = azb_shard_find_layered(tq->shard, tq->engine->view.write_ns, &tq->scan_cursor,
					 THIN_SCAN_KEYS, chunks, THIN_FILLS_PER_TURN * 8, &n);

	if (ret < 0)
		azb_log("shard %u: looking for layered chunks: %s", azb_shard_index(tq->shard),
			azb_shard_error(tq->shard));
	if (ret)
		tq->scan_done = true;
	for (i = 0; i < n; i++)
		thin_fill_note(tq, chunks[i]);
}

unsigned thin_idle(void *queue)
{
	struct thin_queue *tq = queue;
	uint64_t quiet = thin_now_ms() - tq->last_batch_ms;
	uint32_t n;

	if (tq->fill_head == tq->fill_tail && tq->scan_done)
		return 0;
	if (quiet < THIN_FILL_QUIET_MS)
		return (unsigned)(THIN_FILL_QUIET_MS - quiet);
	thin_pub_enter(tq);
	if (tq->fill_head == tq->fill_tail)
		thin_fill_scan(tq);
	for (n = 0; n < THIN_FILLS_PER_TURN && tq->fill_head != tq->fill_tail; n++)
		if (thin_fill_layered(tq, tq->fills[tq->fill_head++ % THIN_FILLS_MAX]))
			break; /* (left layered: it still reads right) */
	thin_commit_waiting(tq);
	if (azb_shard_flush_wal(tq->shard)) {
		azb_log("shard %u: %s: exiting", azb_shard_index(tq->shard),
			azb_shard_error(tq->shard));
		_exit(EXIT_FAILURE);
	}
	thin_pub_apply(tq);
	thin_pub_idle(tq);
	return tq->fill_head == tq->fill_tail && tq->scan_done ? 0 : 1;
}
