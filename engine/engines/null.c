// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * null.c - the null engine: completes every request at once; reads return
 * zeros, writes are dropped. The floor of azbuse's own overhead.
 */
#include <errno.h>
#include <string.h>

#include <azbuse/engine.h>

#include "engines.h"

static int null_setup(struct azbuse_engine_config *cfg, void **engine)
{
	*engine = NULL;
	/* user copy: write data is never copied anywhere, reads are zeroed by the module */
	cfg->caps = AZBUSE_CAP_FLUSH | AZBUSE_CAP_FUA | AZBUSE_CAP_DISCARD |
		    AZBUSE_CAP_WRITE_ZEROES | AZBUSE_CAP_SECURE_ERASE | AZBUSE_CAP_USER_COPY;
	return 0;
}

static void null_read(void *queue, struct azbuse_io *io)
{
	(void)queue;
	azbuse_complete_zeroes(io);
}

static void null_done(void *queue, struct azbuse_io *io)
{
	(void)queue;
	azbuse_complete(io, 0);
}

const struct azbuse_engine_ops azbuse_null_engine = {
	AZBUSE_ENGINE_INIT,
	.name = "null",
	.description = "completes at once, reads zeros, drops writes",
	.setup = null_setup,
	.read = null_read,
	.write = null_done,
	.flush = null_done,
	.discard = null_done,
	.write_zeroes = null_done,
	.secure_erase = null_done,
};
