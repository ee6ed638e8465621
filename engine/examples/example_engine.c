/*
 * example_engine.c - a complete azbuse engine: a RAM disk private to each
 * worker, served with one worker (--queues 1). Build it against the
 * installed library:  cc example_engine.c $(pkg-config --cflags --libs azbuse)
 * and run it:         ./a.out 7 --size 64M --queues 1
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <azbuse/azbuse.h>

struct ram {
	char *bytes;
	uint64_t size;
};

static int ram_open(void *engine, const struct azbuse_queue_params *p, void **queue)
{
	struct ram *r = calloc(1, sizeof(*r));

	(void)engine;
	if (!r || !(r->bytes = calloc(1, p->size_bytes))) {
		free(r);
		return -ENOMEM;
	}
	r->size = p->size_bytes;
	*queue = r;
	return 0;
}

static void ram_close(void *queue)
{
	struct ram *r = queue;

	free(r->bytes);
	free(r);
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
	.description = "a private RAM disk (use --queues 1)",
	.open_queue = ram_open,
	.close_queue = ram_close,
	.read = ram_read,
	.write = ram_write,
};

int main(int argc, char **argv)
{
	return azbuse_main(argc, argv, &ram_engine);
}
