// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_parse.c - engine/parse.c: azbuse_parse_size (plain numbers and
 * power-of-1024 units, what it rejects, overflow) and azbuse_config_option.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <azbuse/engine.h>

/* The parsed value, failing the test if text does not parse. */
static uint64_t size_of(const char *text)
{
	uint64_t bytes = 0xdeadbeef;

	assert_int_equal(azbuse_parse_size(text, &bytes), 0);
	return bytes;
}

/* The error for text, checking that the output is left alone. */
static int size_error(const char *text)
{
	uint64_t bytes = 0xdeadbeef;
	int ret = azbuse_parse_size(text, &bytes);

	assert_int_equal(bytes, 0xdeadbeef);
	return ret;
}

static void test_size_plain_bytes(void **state)
{
	(void)state;
	assert_int_equal(size_of("512"), 512);
	assert_int_equal(size_of("0"), 0);
	assert_int_equal(size_of("512b"), 512);
}

static void test_size_units(void **state)
{
	(void)state;
	assert_int_equal(size_of("4k"), 4096);
	assert_int_equal(size_of("4K"), 4096);
	assert_int_equal(size_of("1M"), 1ULL << 20);
	assert_int_equal(size_of("1G"), 1ULL << 30);
	assert_int_equal(size_of("1T"), 1ULL << 40);
	assert_int_equal(size_of("1P"), 1ULL << 50);
}

/* Decimal fractions of a unit, as lvcreate -L 1.5G takes them: a whole number of bytes. */
static void test_size_fractions(void **state)
{
	char buf[32];

	(void)state;
	assert_int_equal(size_of("1.5G"), 3ULL << 29);
	assert_int_equal(size_of("0.5k"), 512);
	assert_int_equal(size_of("2.25M"), 9ULL << 18);
	assert_int_equal(size_of("1.000G"), 1ULL << 30);
	assert_int_equal(size_of("16383.75P"), (16383ULL << 50) + (3ULL << 48));
	assert_int_equal(size_error("16384P"), -ERANGE);
	assert_string_equal(azbuse_format_size(512, buf, sizeof(buf)), "512 B");
	assert_string_equal(azbuse_format_size(3ULL << 29, buf, sizeof(buf)), "1.5 GiB");
	assert_string_equal(azbuse_format_size(UINT64_MAX, buf, sizeof(buf)), "16.0 EiB");
}

static void test_size_long_units(void **state)
{
	(void)state;
	assert_int_equal(size_of("1GiB"), 1ULL << 30);
	assert_int_equal(size_of("1gb"), 1ULL << 30);
	assert_int_equal(size_of("4KiB"), 4096);
	assert_int_equal(size_of("3mb"), 3ULL << 20);
}

static void test_size_rejects_malformed(void **state)
{
	(void)state;
	assert_int_equal(size_error(""), -EINVAL);
	assert_int_equal(size_error("-1"), -EINVAL);
	assert_int_equal(size_error("1X"), -EINVAL);
	assert_int_equal(size_error("G"), -EINVAL);
	assert_int_equal(size_error("1."), -EINVAL);
	assert_int_equal(size_error("1.5"), -EINVAL);  /* half a byte */
	assert_int_equal(size_error("0.1k"), -EINVAL); /* 102.4 bytes */
	assert_int_equal(size_error(".5G"), -EINVAL);
	assert_int_equal(size_error("1.5.5G"), -EINVAL);
	assert_int_equal(size_error(" 1G"), -EINVAL);
	assert_int_equal(size_error("1G "), -EINVAL);
	assert_int_equal(size_error("+1"), -EINVAL);
	assert_int_equal(size_error(NULL), -EINVAL);
}

static void test_size_overflow_is_erange(void **state)
{
	(void)state;
	assert_int_equal(size_error("99999999999T"), -ERANGE);
	assert_int_equal(size_error("18446744073709551616"), -ERANGE);
	assert_int_equal(size_error("16384P"), -ERANGE);
}

static void test_size_largest_values(void **state)
{
	(void)state;
	assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);
	assert_int_equal(size_of("16383P"), 16383ULL << 50);
}

static void test_option_last_value_wins(void **state)
{
	const struct azbuse_option options[] = {
		{ "path", "/a" },
		{ "mode", "sync" },
		{ "path", "/b" },
	};
	const struct azbuse_engine_config cfg = { .options = options, .nr_options = 3 };

	(void)state;
	assert_string_equal(azbuse_config_option(&cfg, "path"), "/b");
	assert_string_equal(azbuse_config_option(&cfg, "mode"), "sync");
}

static void test_option_missing_key_is_null(void **state)
{
	const struct azbuse_option options[] = { { "path", "/a" } };
	const struct azbuse_engine_config cfg = { .options = options, .nr_options = 1 };
	const struct azbuse_engine_config none = { 0 };

	(void)state;
	assert_null(azbuse_config_option(&cfg, "size"));
	assert_null(azbuse_config_option(&cfg, "pat"));
	assert_null(azbuse_config_option(&none, "path"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_plain_bytes),
		cmocka_unit_test(test_size_units),
		cmocka_unit_test(test_size_long_units),
		cmocka_unit_test(test_size_fractions),
		cmocka_unit_test(test_size_rejects_malformed),
		cmocka_unit_test(test_size_overflow_is_erange),
		cmocka_unit_test(test_size_largest_values),
		cmocka_unit_test(test_option_last_value_wins),
		cmocka_unit_test(test_option_missing_key_is_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
