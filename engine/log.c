// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * log.c - one-line messages on stderr, prefixed with who says them
 * (e.g. "azbuse1 worker 0: ") and how much they matter. Under systemd
 * (stderr is the journal: $JOURNAL_STREAM names it) each line starts with
 * its syslog level as "<N>", which journald takes as the priority and
 * stamps itself; anywhere else (a daemon's log file, a terminal) it starts
 * with the time and the level's name.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static char azb_prefix[64] = "azbuse";

void azb_log_set_prefix(const char *prefix)
{
	snprintf(azb_prefix, sizeof(azb_prefix), "%s", prefix);
}

/* Is stderr the journal's stream (systemd sets JOURNAL_STREAM=DEV:INODE)? */
static bool azb_log_to_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && !fstat(STDERR_FILENO, &st) &&
	       (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static const char *azb_level_name(int level)
{
	return level <= AZB_LOG_ERR ? "ERROR" : level == AZB_LOG_WARN ? "WARN" : "INFO";
}

void azb_logv(int level, const char *fmt, va_list ap)
{
	char line[600];
	struct timespec now;
	struct tm tm;
	int n;

	if (azb_log_to_journal()) {
		n = snprintf(line, sizeof(line), "<%d>%s: ", level, azb_prefix);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		localtime_r(&now.tv_sec, &tm);
		n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      ".%03ld %-5s %s: ", now.tv_nsec / 1000000, azb_level_name(level),
			      azb_prefix);
	}
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

void azbuse_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	azb_logv(level <= AZB_LOG_ERR	 ? AZB_LOG_ERR
		 : level == AZB_LOG_WARN ? AZB_LOG_WARN
					 : AZB_LOG_INFO,
		 fmt, ap);
	va_end(ap);
}

void azb_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	azb_logv(AZB_LOG_INFO, fmt, ap);
	va_end(ap);
}

void azb_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	azb_logv(AZB_LOG_WARN, fmt, ap);
	va_end(ap);
}

void azb_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	azb_logv(AZB_LOG_ERR, fmt, ap);
	va_end(ap);
}
