// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * trace.c - one line per request as the engine receives it, a small
 * blktrace of the engine's side (--trace FILE): queue, tag, op, offset,
 * length, every flag by name and the I/O priority. Lines from all workers
 * go to one file opened O_APPEND, each written with a single write().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static const char *const azb_op_names[AZBUSE_OP_NR] = {
	"READ", "WRITE", "FLUSH", "DISCARD", "WRITE_ZEROES", "SECURE_ERASE",
};

static const struct {
	uint64_t bit;
	const char *name;
} azb_flag_names[] = {
	{ AZBUSE_RQ_FUA, "FUA" },
	{ AZBUSE_RQ_PREFLUSH, "PREFLUSH" },
	{ AZBUSE_RQ_NOUNMAP, "NOUNMAP" },
	{ AZBUSE_RQ_SYNC, "SYNC" },
	{ AZBUSE_RQ_META, "META" },
	{ AZBUSE_RQ_PRIO, "PRIO" },
	{ AZBUSE_RQ_RAHEAD, "RAHEAD" },
	{ AZBUSE_RQ_BACKGROUND, "BACKGROUND" },
	{ AZBUSE_RQ_NOWAIT, "NOWAIT" },
	{ AZBUSE_RQ_IDLE, "IDLE" },
	{ AZBUSE_RQ_FAILFAST_DEV, "FAILFAST_DEV" },
	{ AZBUSE_RQ_FAILFAST_TRANSPORT, "FAILFAST_TRANSPORT" },
	{ AZBUSE_RQ_FAILFAST_DRIVER, "FAILFAST_DRIVER" },
	{ AZBUSE_RQ_NOMERGE, "NOMERGE" },
	{ AZBUSE_RQ_INTEGRITY, "INTEGRITY" },
	{ AZBUSE_RQ_POLLED, "POLLED" },
	{ AZBUSE_RQ_SWAP, "SWAP" },
	{ AZBUSE_RQ_ATOMIC, "ATOMIC" },
	{ AZBUSE_RQ_REQUEUED, "REQUEUED" },
	{ AZBUSE_RQ_SHARD_PART, "SHARD_PART" },
};

const char *azbuse_op_name(uint8_t op)
{
	return op < AZBUSE_OP_NR ? azb_op_names[op] : "UNKNOWN";
}

size_t azbuse_format_flags(uint64_t flags, char *buf, size_t len)
{
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(azb_flag_names) / sizeof(azb_flag_names[0]); i++) {
		if (!(flags & azb_flag_names[i].bit))
			continue;
		n += snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "|" : "",
			      azb_flag_names[i].name);
		flags &= ~azb_flag_names[i].bit;
	}
	if (flags)
		n += snprintf(buf + n, n < len ? len - n : 0, "%s0x%llx", n ? "|" : "",
			      (unsigned long long)flags);
	if (!n)
		n = snprintf(buf, len, "-");
	return n;
}

/* IOPRIO_PRIO_VALUE(class, level): class in bits 13-15, level in 0-2. */
static void azb_format_ioprio(uint16_t ioprio, char *buf, size_t len)
{
	static const char *const classes[] = { "none", "rt", "be", "idle" };
	unsigned cls = ioprio >> 13, level = ioprio & 7;

	if (cls < 4)
		snprintf(buf, len, "%s/%u", classes[cls], level);
	else
		snprintf(buf, len, "0x%x", ioprio);
}

int azbuse_trace_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	return fd < 0 ? -errno : fd;
}

void azbuse_trace_request(int fd, uint16_t queue, const struct azbuse_io *io)
{
	char flags[256], prio[16], line[400];
	struct timespec ts;
	ssize_t n;
	int len;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	azbuse_format_flags(io->flags, flags, sizeof(flags));
	azb_format_ioprio(io->ioprio, prio, sizeof(prio));
	len = snprintf(line, sizeof(line),
		       "%lld.%06ld q=%u tag=%u op=%s offset=%llu len=%u flags=%s ioprio=%s\n",
		       (long long)ts.tv_sec, ts.tv_nsec / 1000, queue, io->tag,
		       azbuse_op_name(io->op), (unsigned long long)io->offset, io->len, flags,
		       prio);
	if (len > (int)sizeof(line) - 1)
		len = sizeof(line) - 1;
	n = write(fd, line, (size_t)len);
	(void)n;
}
