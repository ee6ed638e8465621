// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * mem.c - the mem engine: a RAM disk of --size bytes in one shared memory
 * file that the supervisor creates and every worker process maps, so any
 * queue reads what another wrote and a restarted worker (or supervisor)
 * finds the data. Flush is a no-op;
 * discard and write-zeroes give the pages back (punch a hole), or zero them
 * in place when NOUNMAP asks to keep them allocated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/engine.h>

#include "engines.h"

struct mem_engine {
	int fd;
	uint64_t size;
	char path[256]; /* the shared memory file, removed with the device */
};

/* A worker maps the shared file into its page tables this much at a time. */
#define MEM_REGION_SHIFT 21
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

struct mem_queue {
	struct mem_engine *engine;
	char *base;
	uint64_t *mapped; /* one bit per 2 MiB region this worker has mapped */
};

static const char *const mem_option_keys[] = { "shm", NULL };

/*
 * The RAM lives in a file in /dev/shm (tmpfs), not in any process: every
 * worker maps it, and it outlives the supervisor, so `azbusectl add --recover`
 * finds the data of a device whose daemon was killed. Its path is recorded
 * for that (recover_options); it is removed when the device is.
 */
static int mem_open_shm(struct mem_engine *m, struct azbuse_engine_config *cfg)
{
	const char *path = azbuse_config_option(cfg, "shm");
	struct stat st;

	if (path)
		snprintf(m->path, sizeof(m->path), "%s", path);
	else
		snprintf(m->path, sizeof(m->path), "/dev/shm/azbuse-mem-%d-%lx", (int)getpid(),
			 (unsigned long)time(NULL));
	if (cfg->recovering) {
		m->fd = open(m->path, O_RDWR | O_CLOEXEC);
		if (m->fd < 0)
			return -errno;
		if (fstat(m->fd, &st) || (uint64_t)st.st_size != m->size) {
			close(m->fd);
			return -EINVAL;
		}
		return 0;
	}
	m->fd = open(m->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (m->fd < 0)
		return -errno;
	if (ftruncate(m->fd, (off_t)m->size)) {
		int err = -errno;

		close(m->fd);
		unlink(m->path);
		return err;
	}
	snprintf(cfg->recover_options, cfg->recover_options_size, "shm=%s\n", m->path);
	return 0;
}

static int mem_setup(struct azbuse_engine_config *cfg, void **engine)
{
	struct mem_engine *m;
	int ret;

	if (!cfg->size_bytes) {
		snprintf(cfg->error, cfg->error_size, "engine mem needs --size");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->size = cfg->size_bytes;
	ret = mem_open_shm(m, cfg);
	if (ret) {
		snprintf(cfg->error, cfg->error_size, "engine mem: cannot %s %llu bytes at %s: %s",
			 cfg->recovering ? "reopen" : "create", (unsigned long long)m->size,
			 m->path, strerror(-ret));
		free(m);
		return ret;
	}
	/* user copy: the module copies straight between requests and the memfd */
	cfg->caps = AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA | AZBUSE_CAP_DISCARD |
		    AZBUSE_CAP_WRITE_ZEROES | AZBUSE_CAP_SECURE_ERASE | AZBUSE_CAP_USER_COPY;
	*engine = m;
	return 0;
}

static void mem_teardown(void *engine)
{
	struct mem_engine *m = engine;

	if (!m)
		return;
	close(m->fd);
	unlink(m->path);
	free(m);
}

static int mem_open_queue(void *engine, const struct azbuse_queue_params *p, void **queue)
{
	struct mem_engine *m = engine;
	struct mem_queue *q;

	(void)p;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->engine = m;
	q->mapped = calloc(((m->size >> MEM_REGION_SHIFT) + 64) / 64, sizeof(uint64_t));
	if (!q->mapped) {
		free(q);
		return -ENOMEM;
	}
	q->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (q->base == MAP_FAILED) {
		int err = -errno;

		free(q->mapped);
		free(q);
		return err;
	}
	*queue = q;
	return 0;
}

static void mem_close_queue(void *queue)
{
	struct mem_queue *q = queue;

	munmap(q->base, q->engine->size);
	free(q->mapped);
	free(q);
}

static bool mem_in_range(const struct mem_queue *q, const struct azbuse_io *io)
{
	return io->offset <= q->engine->size && io->len <= q->engine->size - io->offset;
}

/*
 * Map [off, off + len) into this worker's page tables before the module
 * copies through it, a 2 MiB region at a time. Each worker process has page
 * tables of its own for the shared file, and filling them one page fault at
 * a time, inside the module's copy, cost more than the copy: 4k random
 * reads spread over two workers went from 72 to 53 us of CPU per request
 * with the file mapped up front, and a 1M read through a worker that had
 * not written the data faulted 256 times. The region's pages are allocated
 * if they were not (a read of a hole allocated its page before too). A
 * failed madvise leaves it to the page faults.
 */
static void mem_map_range(struct mem_queue *q, uint64_t off, uint64_t len)
{
	uint64_t size = q->engine->size, r, last;

	if (!len)
		return;
	last = (off + len - 1) >> MEM_REGION_SHIFT;
	for (r = off >> MEM_REGION_SHIFT; r <= last; r++) {
		uint64_t start = r << MEM_REGION_SHIFT, bit = 1ULL << (r % 64);
		uint64_t bytes = size - start < (1ULL << MEM_REGION_SHIFT)
					 ? size - start
					 : 1ULL << MEM_REGION_SHIFT;

		if (q->mapped[r / 64] & bit)
			continue;
		q->mapped[r / 64] |= bit;
		madvise(q->base + start, bytes, MADV_POPULATE_WRITE);
	}
}

/* Reads and writes alike: the module copies between the request and the file. */
static void mem_read_write(void *queue, struct azbuse_io *io)
{
	struct mem_queue *q = queue;

	if (!mem_in_range(q, io)) {
		azbuse_complete(io, -EIO);
		return;
	}
	mem_map_range(q, io->offset, io->len);
	azbuse_complete_copy(io, q->base + io->offset);
}

static void mem_flush(void *queue, struct azbuse_io *io)
{
	(void)queue;
	azbuse_complete(io, 0);
}

/* Zero a range: punch whole pages out of the memfd, memset the edges. */
static int mem_zero(struct mem_queue *q, uint64_t off, uint64_t len, bool keep_allocated)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = (off + page - 1) & ~(page - 1);
	uint64_t end = (off + len) & ~(page - 1);

	if (keep_allocated || end <= start) {
		memset(q->base + off, 0, len);
		return 0;
	}
	memset(q->base + off, 0, start - off);
	memset(q->base + end, 0, off + len - end);
	if (fallocate(q->engine->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)start,
		      (off_t)(end - start)))
		return -errno;
	return 0;
}

static void mem_discard(void *queue, struct azbuse_io *io)
{
	struct mem_queue *q = queue;

	if (!mem_in_range(q, io)) {
		azbuse_complete(io, -EIO);
		return;
	}
	azbuse_complete(
		io, mem_zero(q, io->offset, io->len,
			     io->op == AZBUSE_OP_WRITE_ZEROES && (io->flags & AZBUSE_RQ_NOUNMAP)));
}

const struct azbuse_engine_ops azbuse_mem_engine = {
	AZBUSE_ENGINE_INIT,
	.name = "mem",
	.description = "RAM disk shared by all workers (in /dev/shm)",
	.option_keys = mem_option_keys,
	.setup = mem_setup,
	.teardown = mem_teardown,
	.open_queue = mem_open_queue,
	.close_queue = mem_close_queue,
	.read = mem_read_write,
	.write = mem_read_write,
	.flush = mem_flush,
	.discard = mem_discard,
	.write_zeroes = mem_discard,
	.secure_erase = mem_discard,
};
