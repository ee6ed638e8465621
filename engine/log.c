/*
 * log.c - one-line messages on stderr, prefixed with who says them
 * (e.g. "azbuse1 worker 0: "), so a daemon's log reads clearly.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static char azb_prefix[64] = "azbuse";

void azb_log_set_prefix(const char *prefix)
{
	snprintf(azb_prefix, sizeof(azb_prefix), "%s", prefix);
}

void azb_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%s: ", azb_prefix);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
