// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * persist.c - a device's configuration, saved by its supervisor in
 * /run/azbuse/azbuse<ID>.conf, so that `azbusectl add ID --recover` can
 * start a new supervisor that takes the live device over with the same
 * engine and options (e.g. after the old one was killed, or to upgrade it
 * without unmounting). One KEY=VALUE per line; options as option=KEY=VALUE.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define AZB_CONF_DIR "/run/azbuse"

static void azb_conf_path(uint32_t dev_id, char *path, size_t len)
{
	snprintf(path, len, AZB_CONF_DIR "/azbuse%u.conf", dev_id);
}

void azbuse_conf_write(FILE *f, const char *engine, const struct azbuse_device_opts *o,
		       const char *recover_options)
{
	size_t i;

	fprintf(f, "engine=%s\n", engine);
	fprintf(f, "size=%" PRIu64 "\n", o->size_bytes);
	fprintf(f, "queues=%u\ndepth=%u\nmax_io=%u\nblock_size=%u\n", o->nr_queues, o->queue_depth,
		o->max_io_bytes, o->logical_block_size);
	fprintf(f, "shards=%u\nshard_chunk=%u\nroute_queue=%d\nroute_chosen=%d\n", o->nr_shards,
		o->shard_chunk_bytes, (int)o->route_queue, (int)o->route_chosen);
	fprintf(f,
		"io_timeout=%u\nrecovery_timeout=%u\npoll_us=%u\npin=%d\nsched=%d\nread_only=%d\n",
		o->io_timeout_ms, o->recovery_timeout_ms, o->poll_us, (int)o->pin, (int)o->sched,
		o->read_only);
	fprintf(f, "cache=%" PRIu64 "\ncache_mode=%u\ncache_policy=%u\n", o->cache_bytes,
		o->cache_mode, o->cache_policy);
	if (o->trace_path)
		fprintf(f, "trace=%s\n", o->trace_path);
	for (i = 0; i < o->nr_options; i++)
		fprintf(f, "option=%s=%s\n", o->options[i].key, o->options[i].value);
	if (recover_options && *recover_options) {
		const char *line = recover_options;

		while (*line) {
			size_t n = strcspn(line, "\n");

			fprintf(f, "option=%.*s\n", (int)n, line);
			line += n + (line[n] == '\n');
		}
	}
}

int azbuse_conf_save(uint32_t dev_id, const char *engine, const struct azbuse_device_opts *o,
		     const char *recover_options)
{
	char path[128], tmp[160];
	FILE *f;

	mkdir(AZB_CONF_DIR, 0755);
	azb_conf_path(dev_id, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "# azbuse%u: what `azbusectl add %u --recover` needs\n", dev_id, dev_id);
	azbuse_conf_write(f, engine, o, recover_options);
	if (fclose(f) || rename(tmp, path)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

bool azbuse_conf_exists(uint32_t dev_id)
{
	char path[128];

	azb_conf_path(dev_id, path, sizeof(path));
	return !access(path, F_OK);
}

void azbuse_conf_remove(uint32_t dev_id)
{
	char path[128];

	azb_conf_path(dev_id, path, sizeof(path));
	unlink(path);
}

/* Keep a copy of text in the args' own storage. */
static const char *azb_keep(struct azbuse_args *a, const char *text)
{
	size_t n = strlen(text) + 1;
	char *copy;

	if (a->strings_used + n > sizeof(a->strings))
		return NULL;
	copy = a->strings + a->strings_used;
	memcpy(copy, text, n);
	a->strings_used += n;
	return copy;
}

static int azb_conf_number(const char *value, uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(value, &end, 10);
	return errno || *end || *out > max ? -EINVAL : 0;
}

/* One KEY=VALUE line into the device options. */
static int azb_conf_apply(struct azbuse_args *a, const char *key, const char *value)
{
	struct azbuse_device_opts *o = &a->opts;
	uint64_t v = 0;
	char *eq;

	if (!strcmp(key, "engine"))
		return (a->engine = azb_keep(a, value)) ? 0 : -E2BIG;
	if (!strcmp(key, "trace"))
		return (o->trace_path = azb_keep(a, value)) ? 0 : -E2BIG;
	if (!strcmp(key, "option")) {
		const char *kv = azb_keep(a, value);

		if (!kv || !(eq = strchr(kv, '=')) || eq == kv ||
		    a->nr_options >= sizeof(a->options) / sizeof(a->options[0]))
			return -EINVAL;
		*eq = '\0';
		a->options[a->nr_options].key = kv;
		a->options[a->nr_options].value = eq + 1;
		a->nr_options++;
		return 0;
	}
	if (azb_conf_number(value, UINT64_MAX, &v))
		return -EINVAL;
	if (!strcmp(key, "size"))
		o->size_bytes = v;
	else if (!strcmp(key, "queues") && v <= AZBUSE_MAX_QUEUES)
		o->nr_queues = (uint16_t)v;
	else if (!strcmp(key, "shards") && v <= AZBUSE_MAX_QUEUES)
		o->nr_shards = (uint16_t)v;
	else if (!strcmp(key, "shard_chunk") && v <= (1ULL << 31))
		o->shard_chunk_bytes = (uint32_t)v;
	else if (!strcmp(key, "route_queue") && v <= 1)
		o->route_queue = v;
	else if (!strcmp(key, "route_chosen") && v <= 1)
		o->route_chosen = v;
	else if (!strcmp(key, "depth") && v <= AZBUSE_MAX_QUEUE_DEPTH)
		o->queue_depth = (uint16_t)v;
	else if (!strcmp(key, "max_io") && v <= AZBUSE_MAX_IO_BYTES)
		o->max_io_bytes = (uint32_t)v;
	else if (!strcmp(key, "block_size") && v <= 4096)
		o->logical_block_size = (uint32_t)v;
	else if (!strcmp(key, "io_timeout") && v <= UINT32_MAX)
		o->io_timeout_ms = (uint32_t)v;
	else if (!strcmp(key, "recovery_timeout") && v <= UINT32_MAX)
		o->recovery_timeout_ms = (uint32_t)v;
	else if (!strcmp(key, "poll_us") && v <= UINT32_MAX)
		o->poll_us = (uint32_t)v;
	else if (!strcmp(key, "pin") && v <= AZBUSE_PIN_NONE)
		o->pin = (enum azbuse_pin)v;
	else if (!strcmp(key, "sched") && v <= AZBUSE_SCHED_NORMAL)
		o->sched = (enum azbuse_sched)v;
	else if (!strcmp(key, "read_only") && v <= 1)
		o->read_only = v;
	else if (!strcmp(key, "cache"))
		o->cache_bytes = v;
	else if (!strcmp(key, "cache_mode") && v <= AZBUSE_CACHE_WRITEBACK)
		o->cache_mode = (uint8_t)v;
	else if (!strcmp(key, "cache_policy") && v <= AZBUSE_CACHE_LRU)
		o->cache_policy = (uint8_t)v;
	else
		return -EINVAL;
	return 0;
}

int azbuse_conf_parse(FILE *f, const char *what, struct azbuse_args *a)
{
	char line[1024];
	unsigned lineno = 0;
	int ret = 0;

	while (fgets(line, sizeof(line), f)) {
		char *eq;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		eq = strchr(line, '=');
		if (eq)
			*eq = '\0';
		if (!eq || azb_conf_apply(a, line, eq + 1)) {
			snprintf(a->error, sizeof(a->error), "%s:%u: bad line", what, lineno);
			ret = -EINVAL;
			break;
		}
	}
	if (!ret && !a->engine) {
		snprintf(a->error, sizeof(a->error), "%s names no engine", what);
		ret = -EINVAL;
	}
	a->opts.options = a->options;
	a->opts.nr_options = a->nr_options;
	return ret;
}

/* Fill a->opts (keeping what the command line set: foreground, json) from the file. */
int azbuse_conf_load(uint32_t dev_id, struct azbuse_args *a)
{
	char path[128];
	FILE *f;
	int ret;

	azb_conf_path(dev_id, path, sizeof(path));
	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		snprintf(a->error, sizeof(a->error), "cannot read %s: %s", path, strerror(errno));
		return ret;
	}
	ret = azbuse_conf_parse(f, path, a);
	fclose(f);
	a->opts.dev_id = dev_id;
	a->opts.recover = true;
	return ret;
}
