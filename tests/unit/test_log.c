// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_log.c - engine/log.c: each line says who, how much it matters and
 * (outside the journal) when; under systemd (stderr is $JOURNAL_STREAM) the
 * level is journald's "<N>" prefix instead. azbuse_log is the engines' call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <regex.h>

#include "internal.h"

/* Run fn with stderr going to a file; its contents into out. */
static void capture(void (*fn)(void), char *out, size_t len)
{
	char path[] = "/tmp/azbuse-test-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, out, len - 1, 0);
	assert_true(n >= 0);
	out[n] = '\0';
	close(fd);
	unlink(path);
}

static void log_warning(void)
{
	azb_log_set_prefix("azbuse7 worker 1");
	azbuse_log(AZBUSE_LOG_WARN, "shard %d is %s", 1, "slow");
}

static void log_error_in_journal(void)
{
	struct stat st;
	char js[64];

	azb_log_set_prefix("azbuse7 worker 1");
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	azb_err("pool %s is out of space", "p");
	unsetenv("JOURNAL_STREAM");
}

static void test_log_line_has_time_and_level(void **state)
{
	char out[256];
	regex_t re;

	(void)state;
	capture(log_warning, out, sizeof(out));
	assert_int_equal(
		regcomp(&re,
			"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} "
			"WARN  azbuse7 worker 1: shard 1 is slow\n$",
			REG_EXTENDED),
		0);
	if (regexec(&re, out, 0, NULL, 0))
		fail_msg("log line: '%s'", out);
	regfree(&re);
}

static void test_log_line_in_the_journal(void **state)
{
	char out[256];

	(void)state;
	capture(log_error_in_journal, out, sizeof(out));
	assert_string_equal(out, "<3>azbuse7 worker 1: pool p is out of space\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_line_has_time_and_level),
		cmocka_unit_test(test_log_line_in_the_journal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
