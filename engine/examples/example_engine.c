// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * example_engine.c - a complete azbuse engine: a RAM disk.
 *
 * One process per queue: each worker is a process of its own, forked by the
 * supervisor, and a worker that crashes is replaced by a new one forked the
 * same way. So state an engine keeps must live where every worker sees it:
 * setup() runs in the supervisor before any worker is forked, and memory it
 * maps there with MAP_SHARED is the same memory in every worker, the
 * replacements included. (Memory a worker allocates itself, in open_queue,
 * is that worker's alone: a RAM disk kept there would show each queue its
 * own disk, and lose it when the worker dies.) The RAM does not outlive the
 * supervisor: this engine refuses --recover (the mem engine keeps its RAM
 * in /dev/shm for that).
 *
 * Build it against the installed library:
 *   cc example_engine.c $(pkg-config --cflags --libs azbuse)
 * and run it (any number of queues):
 *   ./a.out 7 --size 64M
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <azbuse/azbuse.h>

struct ram {
	char *bytes;
	uint64_t size;
};

/* In the supervisor: the disk's memory, shared with every worker forked after. */
static int ram_setup(struct azbuse_engine_config *cfg, void **engine)
{
	struct ram *r;

	if (cfg->recovering) {
		snprintf(cfg->error, cfg->error_size,
			 "example-ram: the RAM went with the supervisor; nothing to recover");
		return -EINVAL;
	}
	if (!cfg->size_bytes) {
		snprintf(cfg->error, cfg->error_size, "example-ram: give --size");
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->size = cfg->size_bytes;
	r->bytes = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->bytes == MAP_FAILED) {
		free(r);
		return -ENOMEM;
	}
	*engine = r;
	return 0;
}

static void ram_teardown(void *engine)
{
	struct ram *r = engine;

	munmap(r->bytes, r->size);
	free(r);
}

/* In each worker: its queue works on the shared disk (nothing of its own). */
static int ram_open(void *engine, const struct azbuse_queue_params *p, void **queue)
{
	(void)p;
	*queue = engine;
	return 0;
}

static void ram_read(void *queue, struct azbuse_io *io)
{
	memcpy(io->buf, ((struct ram *)queue)->bytes + io->offset, io->len);
	azbuse_complete(io, 0);
}

static void ram_write(void *queue, struct azbuse_io *io)
{
	memcpy(((struct ram *)queue)->bytes + io->offset, io->buf, io->len);
	azbuse_complete(io, 0);
}

static const struct azbuse_engine_ops ram_engine = {
	AZBUSE_ENGINE_INIT,
	.name = "example-ram",
	.description = "a RAM disk shared by every queue's worker",
	.setup = ram_setup,
	.teardown = ram_teardown,
	.open_queue = ram_open,
	.read = ram_read,
	.write = ram_write,
};

int main(int argc, char **argv)
{
	return azbuse_main(argc, argv, &ram_engine);
}
