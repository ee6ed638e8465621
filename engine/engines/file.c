// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * file.c - the file engine: passthrough to a file or block device
 * (--path PATH). Each worker keeps its queue's requests in flight through
 * io_uring: the worker prepares a submission per request and submits the
 * whole batch with one io_uring_enter at the end of the batch. The worker
 * loop itself waits for the io_uring's completions beside new requests
 * (azbuse_queue_watch on the ring's fd) and the engine completes them on
 * the worker's thread (file_ready): no reaper thread, no hand-over, and the
 * completions go back to the module with the next COMMIT. io_uring rather
 * than a thread pool: one syscall per batch instead of a thread wake-up per
 * request, and the kernel's own workers for buffered I/O that would block.
 *
 * flush -> fdatasync; FUA -> a RWF_DSYNC write; discard -> punch a hole
 * (BLKDISCARD on a block device); write-zeroes -> zero the range keeping it
 * allocated under NOUNMAP, else punch a hole (BLKZEROOUT on a block device).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <azbuse/engine.h>

#include "engines.h"

struct file_engine {
	char *path;
	uint64_t size;
	bool blockdev;
	bool direct;
};

struct file_queue {
	struct file_engine *engine;
	int fd;
	struct io_uring ring;
	unsigned inflight; /* submissions prepared whose completion was not seen */
	unsigned prepared; /* submissions prepared since the last io_uring_submit */
};

static const char *const file_option_keys[] = { "path", "direct", NULL };

/* The size of an open file or block device. */
static int file_size_of(int fd, bool *blockdev, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	*blockdev = S_ISBLK(st.st_mode);
	if (*blockdev)
		return ioctl(fd, BLKGETSIZE64, size) ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Open (creating a sparse file of --size if needed) and settle the device size. */
static int file_settle_size(struct file_engine *f, struct azbuse_engine_config *cfg)
{
	uint64_t have;
	int fd, ret;

	fd = open(f->path, O_RDWR | O_CLOEXEC | (cfg->size_bytes ? O_CREAT : 0), 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(cfg->error, cfg->error_size, "engine file: cannot open %s: %s%s", f->path,
			 strerror(errno), errno == ENOENT ? " (give --size to create it)" : "");
		return ret;
	}
	ret = file_size_of(fd, &f->blockdev, &have);
	if (ret) {
		snprintf(cfg->error, cfg->error_size,
			 "engine file: %s is neither a regular file nor a block device", f->path);
		goto out;
	}
	f->size = cfg->size_bytes ? cfg->size_bytes : have;
	if (!f->blockdev && f->size > have && ftruncate(fd, (off_t)f->size)) {
		ret = -errno;
		snprintf(cfg->error, cfg->error_size, "engine file: cannot grow %s: %s", f->path,
			 strerror(errno));
		goto out;
	}
	if (f->blockdev && f->size > have) {
		ret = -EINVAL;
		snprintf(cfg->error, cfg->error_size, "engine file: %s has only %llu bytes",
			 f->path, (unsigned long long)have);
		goto out;
	}
	f->size &= ~(uint64_t)(cfg->logical_block_size - 1);
	if (!f->size) {
		ret = -EINVAL;
		snprintf(cfg->error, cfg->error_size, "engine file: %s is empty (give --size)",
			 f->path);
	}
out:
	close(fd);
	return ret;
}

static int file_setup(struct azbuse_engine_config *cfg, void **engine)
{
	const char *path = azbuse_config_option(cfg, "path");
	const char *direct = azbuse_config_option(cfg, "direct");
	struct file_engine *f;
	int ret;

	if (!path || !*path) {
		snprintf(cfg->error, cfg->error_size, "engine file needs --path FILE");
		return -EINVAL;
	}
	if (direct && strcmp(direct, "0") && strcmp(direct, "1")) {
		snprintf(cfg->error, cfg->error_size, "engine file: direct is 0 or 1");
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return -ENOMEM;
	}
	f->direct = direct && !strcmp(direct, "1");
	ret = file_settle_size(f, cfg);
	if (ret) {
		free(f->path);
		free(f);
		return ret;
	}
	cfg->size_bytes = f->size;
	cfg->caps =
		AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA | AZBUSE_CAP_DISCARD | AZBUSE_CAP_WRITE_ZEROES;
	*engine = f;
	return 0;
}

static void file_teardown(void *engine)
{
	struct file_engine *f = engine;

	if (!f)
		return;
	free(f->path);
	free(f);
}

/* Complete every request whose io_uring completion is there (the worker
 * loop calls it on its thread, without waiting); how many are still out. */
static unsigned file_ready(void *queue)
{
	struct file_queue *q = queue;
	struct io_uring_cqe *cqe;

	while (!io_uring_peek_cqe(&q->ring, &cqe)) {
		struct azbuse_io *io = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&q->ring, cqe);
		q->inflight--;
		if (res >= 0 && (io->op == AZBUSE_OP_READ || io->op == AZBUSE_OP_WRITE)) {
			if ((uint32_t)res < io->len && io->op == AZBUSE_OP_READ)
				memset((char *)io->buf + res, 0, io->len - res); /* past EOF */
			else if ((uint32_t)res < io->len)
				res = -EIO; /* a short write: the file system ran out */
		}
		azbuse_complete(io, res < 0 ? res : 0);
	}
	return q->inflight;
}

static int file_open_queue(void *engine, const struct azbuse_queue_params *p, void **queue)
{
	struct file_engine *f = engine;
	struct file_queue *q;
	int ret;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->engine = f;
	q->fd = open(f->path, O_RDWR | O_CLOEXEC | (f->direct ? O_DIRECT : 0));
	if (q->fd < 0) {
		ret = -errno;
		goto out_free;
	}
	/* one submission per tag: the ring can never be full */
	ret = io_uring_queue_init(p->nr_slots + 1, &q->ring, 0);
	if (ret)
		goto out_close;
	ret = azbuse_queue_watch(q->ring.ring_fd, file_ready);
	if (ret)
		goto out_exit;
	*queue = q;
	return 0;

out_exit:
	io_uring_queue_exit(&q->ring);
out_close:
	close(q->fd);
out_free:
	free(q);
	return ret;
}

static struct io_uring_sqe *file_sqe(struct file_queue *q, struct azbuse_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) {
		io_uring_submit(&q->ring);
		q->prepared = 0;
		sqe = io_uring_get_sqe(&q->ring);
	}
	if (sqe) {
		io_uring_sqe_set_data(sqe, io);
		q->prepared++;
		q->inflight++;
	}
	return sqe;
}

static void file_batch_end(void *queue)
{
	struct file_queue *q = queue;

	if (q->prepared) {
		io_uring_submit(&q->ring);
		q->prepared = 0;
	}
}

static void file_close_queue(void *queue)
{
	struct file_queue *q = queue;

	/* every request has completed (libazbuse waited, calling file_ready) */
	if (fdatasync(q->fd))
		fprintf(stderr, "engine file: fdatasync %s: %s\n", q->engine->path,
			strerror(errno));
	io_uring_queue_exit(&q->ring);
	close(q->fd);
	free(q);
}

static bool file_in_range(const struct file_queue *q, const struct azbuse_io *io)
{
	return io->offset <= q->engine->size && io->len <= q->engine->size - io->offset;
}

/*
 * Buffered I/O that need not wait is cheaper done right here than handed to
 * io_uring, which sends buffered writes (and uncached reads) to its worker
 * threads: a read the page cache holds (RWF_NOWAIT), and a plain buffered
 * write, which only copies into the page cache (and may be throttled, as a
 * loop device's would). True if the request was completed here.
 */
static bool file_try_inline(struct file_queue *q, struct azbuse_io *io)
{
	struct iovec iov = { .iov_base = io->buf, .iov_len = io->len };
	ssize_t n;

	if (q->engine->direct || (io->flags & AZBUSE_RQ_FUA))
		return false;
	if (io->op == AZBUSE_OP_READ)
		n = preadv2(q->fd, &iov, 1, (off_t)io->offset, RWF_NOWAIT);
	else
		n = pwritev2(q->fd, &iov, 1, (off_t)io->offset, 0);
	if (n < 0 && (errno == EAGAIN || errno == EOPNOTSUPP))
		return false;
	if (n >= 0 && (size_t)n < io->len)
		return false; /* partly cached: io_uring does it whole */
	azbuse_complete(io, n < 0 ? -errno : 0);
	return true;
}

static void file_rw(void *queue, struct azbuse_io *io)
{
	struct file_queue *q = queue;
	struct io_uring_sqe *sqe;

	if (!file_in_range(q, io)) {
		azbuse_complete(io, -EIO);
		return;
	}
	if (file_try_inline(q, io))
		return;
	sqe = file_sqe(q, io);
	if (!sqe) {
		azbuse_complete(io, -EAGAIN);
		return;
	}
	if (io->op == AZBUSE_OP_READ) {
		io_uring_prep_read(sqe, q->fd, io->buf, io->len, io->offset);
	} else {
		io_uring_prep_write(sqe, q->fd, io->buf, io->len, io->offset);
		if (io->flags & AZBUSE_RQ_FUA)
			sqe->rw_flags = RWF_DSYNC;
	}
}

static void file_flush(void *queue, struct azbuse_io *io)
{
	struct file_queue *q = queue;
	struct io_uring_sqe *sqe = file_sqe(q, io);

	if (!sqe) {
		azbuse_complete(io, -EAGAIN);
		return;
	}
	io_uring_prep_fsync(sqe, q->fd, IORING_FSYNC_DATASYNC);
}

/* A block device range ioctl (BLKDISCARD, BLKZEROOUT), synchronously. */
static int file_blk_range(struct file_queue *q, unsigned long cmd, const struct azbuse_io *io)
{
	uint64_t range[2] = { io->offset, io->len };

	return ioctl(q->fd, cmd, range) ? -errno : 0;
}

static void file_unmap(void *queue, struct azbuse_io *io)
{
	struct file_queue *q = queue;
	bool keep = io->op == AZBUSE_OP_WRITE_ZEROES && (io->flags & AZBUSE_RQ_NOUNMAP);
	struct io_uring_sqe *sqe;

	if (!file_in_range(q, io)) {
		azbuse_complete(io, -EIO);
		return;
	}
	if (q->engine->blockdev) {
		azbuse_complete(
			io, file_blk_range(q, io->op == AZBUSE_OP_DISCARD ? BLKDISCARD : BLKZEROOUT,
					   io));
		return;
	}
	sqe = file_sqe(q, io);
	if (!sqe) {
		azbuse_complete(io, -EAGAIN);
		return;
	}
	io_uring_prep_fallocate(sqe, q->fd,
				(keep ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE) |
					FALLOC_FL_KEEP_SIZE,
				io->offset, io->len);
}

const struct azbuse_engine_ops azbuse_file_engine = {
	AZBUSE_ENGINE_INIT,
	.name = "file",
	.description = "passthrough to a file or block device (--path), io_uring",
	.option_keys = file_option_keys,
	.setup = file_setup,
	.teardown = file_teardown,
	.open_queue = file_open_queue,
	.close_queue = file_close_queue,
	.read = file_rw,
	.write = file_rw,
	.flush = file_flush,
	.discard = file_unmap,
	.write_zeroes = file_unmap,
	.batch_end = file_batch_end,
};
