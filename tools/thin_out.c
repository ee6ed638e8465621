// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_out.c - printing for azbuse-thin: sizes for people, JSON strings, and
 * the one-line error messages on stderr that always name the pool.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <azbuse/azbuse.h>

#include "thin_tool.h"

void thin_json_str(FILE *out, const char *s)
{
	if (!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", out);
		else if (ch == '\t')
			fputs("\\t", out);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

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

void thin_json_lines(FILE *out, const char *text)
{
	bool first = true;

	fputc('[', out);
	while (text && *text) {
		size_t n = strcspn(text, "\n");
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1),
			 text);
		fputs(first ? "" : ", ", out);
		thin_json_str(out, line);
		first = false;
		text += n + (text[n] == '\n');
	}
	fputc(']', out);
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

void thin_json_volume_fields(const struct azb_volume *v)
{
	printf("\"name\": ");
	thin_json_str(stdout, v->name);
	printf(", \"kind\": \"%s\", \"size_bytes\": %llu, \"parent\": ", azb_vol_kind_name(v->kind),
	       (unsigned long long)v->size_bytes);
	thin_json_str(stdout, v->parent[0] ? v->parent : NULL);
	printf(", \"created\": %lld, \"active\": %s", (long long)v->created,
	       v->flags & AZB_VOL_F_ACTIVE ? "true" : "false");
}

void thin_json_served_by(const struct thin_claim *cl, const char *name)
{
	const struct thin_device *d = cl->held ? thin_served_volume(&cl->served, name) : NULL;

	printf("\"served_by\": ");
	if (!d) {
		printf("null");
		return;
	}
	printf("{\"device\": \"" AZBUSE_BLOCK_PREFIX "%u\", \"id\": %u, \"pid\": %d}", d->id, d->id,
	       (int)(d->pid ? d->pid : cl->served.holder));
}
