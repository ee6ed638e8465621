// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_rbd.c - the rbd engine's parts that need no cluster: image names
 * (rbd_target_parse) and the snapshot context its object path reads from an
 * image's header (rbd_snapc_decode), which every write then carries: a
 * wrong one loses a snapshot's data, so a reply that is not exactly one is
 * refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rbd_cluster.h"
#include "osd_wire.h"
#include "rbd_direct.h"

/* Encode seq and n ids as cls_rbd does (little-endian); its length. */
static size_t encode_snapc(unsigned char *buf, uint64_t seq, const uint64_t *ids, uint32_t n)
{
	size_t len = 0;
	uint32_t i;
	int b;

	for (b = 0; b < 8; b++)
		buf[len++] = (unsigned char)(seq >> (8 * b));
	for (b = 0; b < 4; b++)
		buf[len++] = (unsigned char)(n >> (8 * b));
	for (i = 0; i < n; i++)
		for (b = 0; b < 8; b++)
			buf[len++] = (unsigned char)(ids[i] >> (8 * b));
	return len;
}

static void test_snapc_decodes(void **state)
{
	const uint64_t ids[] = { 0x1122334455667788ULL >> 8, 9, 4 };
	unsigned char buf[64];
	uint64_t seq, snaps[8];
	size_t n, len = encode_snapc(buf, 0x0011223344556677ULL, ids, 3);

	(void)state;
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 8, &n), 0);
	assert_true(seq == 0x0011223344556677ULL);
	assert_int_equal(n, 3);
	assert_memory_equal(snaps, ids, sizeof(ids));

	len = encode_snapc(buf, 0, NULL, 0); /* a new image: no snapshots */
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 8, &n), 0);
	assert_true(seq == 0 && n == 0);
}

static void test_snapc_refuses(void **state)
{
	const uint64_t rising[] = { 3, 5 }, above_seq[] = { 9 }, twice[] = { 4, 4 };
	const uint64_t many[] = { 9, 8, 7 };
	unsigned char buf[64];
	uint64_t seq, snaps[8];
	size_t n, len;

	(void)state;
	len = encode_snapc(buf, 6, rising, 2); /* the OSD wants the newest first */
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 8, &n), -EINVAL);
	len = encode_snapc(buf, 6, above_seq, 1);
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 8, &n), -EINVAL);
	len = encode_snapc(buf, 6, twice, 2);
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 8, &n), -EINVAL);
	len = encode_snapc(buf, 9, many, 3); /* more than the caller holds */
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 2, &n), -EINVAL);
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 3, &n), 0);
	assert_int_equal(rbd_snapc_decode(buf, len - 1, &seq, snaps, 8, &n), -EINVAL);
	assert_int_equal(rbd_snapc_decode(buf, len + 8, &seq, snaps, 8, &n), -EINVAL);
	assert_int_equal(rbd_snapc_decode(buf, 11, &seq, snaps, 8, &n), -EINVAL);
	buf[8] = 0xff; /* a count far beyond the reply */
	assert_int_equal(rbd_snapc_decode(buf, len, &seq, snaps, 8, &n), -EINVAL);
}

static void test_target_names(void **state)
{
	struct rbd_target t;
	char why[200];

	(void)state;
	assert_int_equal(rbd_target_parse(&t, "fast/vol1", false, NULL, NULL, why, sizeof(why)), 0);
	assert_string_equal(t.pool, "fast");
	assert_string_equal(t.image, "vol1");
	assert_string_equal(t.client, "admin");
	assert_int_equal(rbd_target_parse(&t, "vol1", false, "client.bench", "/etc/c.conf", why,
					  sizeof(why)),
			 0);
	assert_string_equal(t.pool, "rbd");
	assert_string_equal(t.client, "bench");
	assert_string_equal(t.conf, "/etc/c.conf");
	assert_int_equal(rbd_target_parse(&t, "p/v@s", true, NULL, NULL, why, sizeof(why)), 0);
	assert_string_equal(t.snap, "s");
	assert_int_equal(rbd_target_parse(&t, "p/v@s", false, NULL, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_int_equal(rbd_target_parse(&t, "/v", false, NULL, NULL, why, sizeof(why)), -EINVAL);
	assert_int_equal(rbd_target_parse(&t, "p/", false, NULL, NULL, why, sizeof(why)), -EINVAL);
	assert_int_equal(rbd_target_parse(&t, "p/a/b", false, NULL, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_int_equal(rbd_target_parse(&t, "", false, NULL, NULL, why, sizeof(why)), -EINVAL);
}

/* crc32c as Ceph uses it (raw): the check value of "123456789" is ~0xe3069283 */
static void test_wire_crc32c(void **state)
{
	static const char digits[] = "123456789";
	char big[1000];
	uint32_t split;
	size_t i;

	(void)state;
	assert_int_equal(osdw_crc32c(0xffffffff, digits, 9), ~0xe3069283u);
	assert_int_equal(osdw_crc32c(0xffffffff, digits, 0), 0xffffffffu);
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	/* in pieces, at odd places, as the whole (the hardware and table paths agree) */
	split = osdw_crc32c(0xffffffff, big, 333);
	split = osdw_crc32c(split, big + 333, sizeof(big) - 333);
	assert_int_equal(split, osdw_crc32c(0xffffffff, big, sizeof(big)));
}

/*
 * An object's placement: `ceph osd map rbd rbd_data.abc.0000000000000001`
 * on a pool of 8 PGs said raw_pgid 2.3601b467, pgid 2.7.
 */
static void test_wire_placement(void **state)
{
	static const char oid[] = "rbd_data.abc.0000000000000001";
	uint32_t hash = osdw_str_hash(oid, sizeof(oid) - 1);

	(void)state;
	assert_int_equal(hash, 0x3601b467);
	assert_int_equal(osdw_stable_mod(hash, 8, 7), 7);
	/* pg_num 12 (mask 15): a seed past the PGs folds into the lower half */
	assert_int_equal(osdw_stable_mod(0x0d, 12, 15), 5);
	assert_int_equal(osdw_stable_mod(0x0b, 12, 15), 11);
	assert_int_equal(osdw_str_hash("", 0), osdw_str_hash("", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_crc32c),   cmocka_unit_test(test_wire_placement),
		cmocka_unit_test(test_snapc_decodes), cmocka_unit_test(test_snapc_refuses),
		cmocka_unit_test(test_target_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
