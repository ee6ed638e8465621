// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_args.c - engine/args.c: azbuse_parse_device_args (the device command
 * line, given without the program/command name) into device options and
 * engine options, its error messages, and azbuse_check_engine_options.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engines/engines.h"
#include "internal.h"

#define MAX_WORDS 16

/* Writable copies of the words (the parser may cut "-o key=value" in two). */
static char words[MAX_WORDS][64];

static int parse_words(struct azbuse_args *a, const char *const *list)
{
	char *argv[MAX_WORDS];
	int argc;

	for (argc = 0; list[argc]; argc++) {
		assert_true(argc < MAX_WORDS);
		snprintf(words[argc], sizeof(words[argc]), "%s", list[argc]);
		argv[argc] = words[argc];
	}
	return azbuse_parse_device_args(argc, argv, a);
}

#define PARSE(a, ...) parse_words((a), (const char *const[]){ __VA_ARGS__, NULL })

/* Parsing `list` must fail with a message that contains `needle`. */
static void check_parse_error(const char *needle, const char *const *list)
{
	struct azbuse_args a;
	char line[256] = "";

	for (size_t i = 0; list[i]; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s", i ? " " : "",
			 list[i]);
	if (parse_words(&a, list) == 0)
		fail_msg("\"%s\" was accepted", line);
	if (!strstr(a.error, needle))
		fail_msg("error for \"%s\" is \"%s\", which does not mention \"%s\"", line, a.error,
			 needle);
}

#define assert_parse_error(needle, ...)                                                            \
	check_parse_error((needle), (const char *const[]){ __VA_ARGS__, NULL })

static void test_id_engine_and_size(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "1", "--engine=mem", "--size", "1G"), 0);
	assert_int_equal(a.opts.dev_id, 1);
	assert_string_equal(a.engine, "mem");
	assert_int_equal(a.opts.size_bytes, 1ULL << 30);
	assert_int_equal(a.nr_options, 0);
	assert_string_equal(a.error, "");
}

static void test_any_id(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "any", "--size", "1M"), 0);
	assert_int_equal(a.opts.dev_id, AZBUSE_DEV_ID_ANY);
	assert_int_equal(PARSE(&a, "--size", "1M"), 0);
	assert_int_equal(a.opts.dev_id, AZBUSE_DEV_ID_ANY);
	assert_int_equal(PARSE(&a, "1023"), 0);
	assert_int_equal(a.opts.dev_id, 1023);
}

static void test_no_arguments_gives_defaults(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(azbuse_parse_device_args(0, NULL, &a), 0);
	assert_int_equal(a.opts.dev_id, AZBUSE_DEV_ID_ANY);
	assert_int_equal(a.opts.size_bytes, 0);
	assert_int_equal(a.opts.ready_fd, -1);
	assert_null(a.engine);
	assert_false(a.foreground);
}

static void test_size_with_equals(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "--size=512M"), 0);
	assert_int_equal(a.opts.size_bytes, 512ULL << 20);
}

static void test_device_limits_and_flags(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "--queues", "4", "--depth", "64", "--max-io", "1M",
			       "--block-size", "4096", "--read-only", "--foreground", "--json",
			       "--poll-us", "10"),
			 0);
	assert_int_equal(a.opts.nr_queues, 4);
	assert_int_equal(a.opts.queue_depth, 64);
	assert_int_equal(a.opts.max_io_bytes, 1U << 20);
	assert_int_equal(a.opts.logical_block_size, 4096);
	assert_true(a.opts.read_only);
	assert_true(a.foreground);
	assert_true(a.json);
	assert_int_equal(a.opts.poll_us, 10);
	assert_int_equal(a.nr_options, 0);
}

static void test_timeouts(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "--io-timeout=5000", "--recovery-timeout", "1000"), 0);
	assert_int_equal(a.opts.io_timeout_ms, 5000);
	assert_int_equal(a.opts.recovery_timeout_ms, 1000);
}

static void test_dash_o_is_engine_option(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "-o", "path=/x", "-o", "mode=a=b"), 0);
	assert_int_equal(a.nr_options, 2);
	assert_string_equal(a.options[0].key, "path");
	assert_string_equal(a.options[0].value, "/x");
	assert_string_equal(a.options[1].key, "mode");
	assert_string_equal(a.options[1].value, "a=b");
	assert_ptr_equal(a.opts.options, a.options);
	assert_int_equal(a.opts.nr_options, 2);
}

static void test_unknown_long_option_is_engine_option(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "--path", "/x", "--mode=sync", "--size", "1G"), 0);
	assert_int_equal(a.nr_options, 2);
	assert_string_equal(a.options[0].key, "path");
	assert_string_equal(a.options[0].value, "/x");
	assert_string_equal(a.options[1].key, "mode");
	assert_string_equal(a.options[1].value, "sync");
	assert_int_equal(a.opts.size_bytes, 1ULL << 30);
}

static void test_bad_device_id(void **state)
{
	(void)state;
	assert_parse_error("1024", "1024");
	assert_parse_error("'x'", "x");
	assert_parse_error("-3", "-3");
	assert_parse_error("'2'", "1", "2");
}

static void test_bad_size(void **state)
{
	(void)state;
	assert_parse_error("--size", "--size", "0");
	assert_parse_error("--size", "--size", "1Q");
	assert_parse_error("--size", "--size=-1");
}

static void test_size_without_value(void **state)
{
	(void)state;
	assert_parse_error("--size", "--size");
}

static void test_bad_queues(void **state)
{
	(void)state;
	assert_parse_error("--queues", "--queues", "0");
	assert_parse_error("--queues", "--queues", "100000");
	assert_parse_error("--queues", "--queues", "4x");
}

static void test_shards(void **state)
{
	struct azbuse_args a;

	(void)state;
	assert_int_equal(PARSE(&a, "3", "--shards", "4", "--shard-chunk", "64k"), 0);
	assert_int_equal(a.opts.nr_shards, 4);
	assert_int_equal(a.opts.shard_chunk_bytes, 64 << 10);
	assert_int_equal(a.opts.nr_queues, 0);
	assert_int_equal(PARSE(&a, "--shards=2"), 0);
	assert_int_equal(a.opts.nr_shards, 2);
	assert_int_equal(a.opts.shard_chunk_bytes, 0); /* the default, chosen later */
}

static void test_bad_shards(void **state)
{
	(void)state;
	assert_parse_error("--shards", "--shards", "0");
	assert_parse_error("--shards", "--shards", "300");
	assert_parse_error("--shard-chunk", "--shard-chunk", "48k");
	assert_parse_error("--shard-chunk", "--shard-chunk", "2k");
	assert_parse_error("--shard-chunk", "--shard-chunk", "4G");
}

static void test_bad_depth(void **state)
{
	(void)state;
	assert_parse_error("--depth", "--depth", "0");
	assert_parse_error("--depth", "--depth", "5000");
}

static void test_bad_max_io(void **state)
{
	(void)state;
	assert_parse_error("--max-io", "--max-io", "3000");
	assert_parse_error("--max-io", "--max-io", "6k");
	assert_parse_error("--max-io", "--max-io", "8M");
}

static void test_block_size_out_of_range(void **state)
{
	(void)state;
	assert_parse_error("--block-size", "--block-size", "256");
	assert_parse_error("--block-size", "--block-size", "8192");
}

/* The kernel takes only powers of two; say so here rather than fail at ADD. */
static void test_block_size_not_power_of_two_is_rejected(void **state)
{
	(void)state;
	assert_parse_error("--block-size", "--block-size", "1000");
	assert_parse_error("--block-size", "--block-size", "1536");
}

static void test_dash_o_without_value(void **state)
{
	(void)state;
	assert_parse_error("novalue", "-o", "novalue");
	assert_parse_error("=x", "-o", "=x");
}

static void test_check_engine_options_accepts_known_keys(void **state)
{
	static const char *const keys[] = { "path", "mode", NULL };
	const struct azbuse_engine_ops ops = { AZBUSE_ENGINE_INIT, .name = "t",
					       .option_keys = keys };
	struct azbuse_args a;
	char err[128] = "";

	(void)state;
	assert_int_equal(PARSE(&a, "--path", "/x", "-o", "mode=sync"), 0);
	assert_int_equal(azbuse_check_engine_options(&ops, &a, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void test_check_engine_options_rejects_unknown_key(void **state)
{
	static const char *const keys[] = { "path", NULL };
	const struct azbuse_engine_ops ops = { AZBUSE_ENGINE_INIT, .name = "t",
					       .option_keys = keys };
	struct azbuse_args a;
	char err[128] = "";

	(void)state;
	assert_int_equal(PARSE(&a, "--path", "/x", "-o", "colour=red"), 0);
	assert_int_not_equal(azbuse_check_engine_options(&ops, &a, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "'colour'"));
}

static void test_check_engine_options_without_keys(void **state)
{
	struct azbuse_args a;
	char err[128] = "";

	(void)state;
	assert_int_equal(PARSE(&a, "--size", "1G"), 0);
	assert_int_equal(azbuse_check_engine_options(&azbuse_mem_engine, &a, err, sizeof(err)), 0);

	assert_int_equal(PARSE(&a, "--size", "1G", "--path", "/x"), 0);
	assert_int_not_equal(azbuse_check_engine_options(&azbuse_mem_engine, &a, err, sizeof(err)),
			     0);
	assert_non_null(strstr(err, "'path'"));
	assert_non_null(strstr(err, "mem"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_engine_and_size),
		cmocka_unit_test(test_any_id),
		cmocka_unit_test(test_no_arguments_gives_defaults),
		cmocka_unit_test(test_size_with_equals),
		cmocka_unit_test(test_device_limits_and_flags),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_dash_o_is_engine_option),
		cmocka_unit_test(test_unknown_long_option_is_engine_option),
		cmocka_unit_test(test_bad_device_id),
		cmocka_unit_test(test_bad_size),
		cmocka_unit_test(test_size_without_value),
		cmocka_unit_test(test_bad_queues),
		cmocka_unit_test(test_shards),
		cmocka_unit_test(test_bad_shards),
		cmocka_unit_test(test_bad_depth),
		cmocka_unit_test(test_bad_max_io),
		cmocka_unit_test(test_block_size_out_of_range),
		cmocka_unit_test(test_block_size_not_power_of_two_is_rejected),
		cmocka_unit_test(test_dash_o_without_value),
		cmocka_unit_test(test_check_engine_options_accepts_known_keys),
		cmocka_unit_test(test_check_engine_options_rejects_unknown_key),
		cmocka_unit_test(test_check_engine_options_without_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
