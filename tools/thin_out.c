// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_out.c - printing for azbuse-thin: sizes for people, JSON documents, and
 * the one-line error messages on stderr that always name the pool.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <azbuse/azbuse.h>

#include "thin_tool.h"

static void vmessage(const struct thin_ctx *c, const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (c->dir && !strstr(msg, c->dir))
		fprintf(stderr, "azbuse-thin %s: %spool %s: %s\n", c->cmd, prefix, c->dir, msg);
	else
		fprintf(stderr, "azbuse-thin %s: %s%s\n", c->cmd, prefix, msg);
}

int thin_fail(const struct thin_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(c, "", fmt, ap);
	va_end(ap);
	return 1;
}

int thin_bad_usage(const struct thin_ctx *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "azbuse-thin %s: %s (see azbuse-thin %s --help)\n", c->cmd, msg, c->cmd);
	return EXIT_USAGE;
}

void thin_warn(const struct thin_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage(c, "warning: ", fmt, ap);
	va_end(ap);
}

const char *thin_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "%lld", (long long)t);
	return buf;
}

void thin_print_lines(FILE *out, const char *text)
{
	size_t n;

	if (!text || !*text)
		return;
	n = strlen(text);
	fputs(text, out);
	if (text[n - 1] != '\n')
		fputc('\n', out);
}

const char *thin_served_device(const struct thin_claim *cl, const char *name, char *buf, size_t len)
{
	const struct thin_device *d = cl->held ? thin_served_volume(&cl->served, name) : NULL;

	if (!d)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, AZBUSE_BLOCK_PREFIX "%u", d->id);
	return buf;
}

json_object *thin_json_doc(const struct thin_ctx *c)
{
	json_object *doc = tj_object();

	tj_str(doc, "pool", c->dir);
	return doc;
}

void thin_json_volume(json_object *o, const struct azb_volume *v)
{
	tj_str(o, "name", v->name);
	tj_str(o, "kind", azb_vol_kind_name(v->kind));
	tj_u64(o, "size_bytes", v->size_bytes);
	tj_str(o, "parent", v->parent[0] ? v->parent : NULL);
	tj_i64(o, "created", v->created);
	tj_bool(o, "active", v->flags & AZB_VOL_F_ACTIVE);
}

void thin_json_served_by(json_object *o, const struct thin_claim *cl, const char *name)
{
	const struct thin_device *d = cl->held ? thin_served_volume(&cl->served, name) : NULL;
	json_object *by = NULL;
	char dev[32];

	if (d) {
		snprintf(dev, sizeof(dev), AZBUSE_BLOCK_PREFIX "%u", d->id);
		by = tj_object();
		tj_str(by, "device", dev);
		tj_u64(by, "id", d->id);
		tj_i64(by, "pid", d->pid ? d->pid : cl->served.holder);
	}
	tj_add(o, "served_by", by);
}
