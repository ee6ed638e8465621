// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_rbd.c - the rbd engine's parts that need no cluster: image names
 * (rbd_target_parse) and the snapshot context its object path reads from an
 * image's header (rbd_snapc_decode), which every write then carries: a
 * wrong one loses a snapshot's data, so a reply that is not exactly one is
 * refused; and the own RADOS path's pure parts: crc32c, placement, and
 * cephx (keys, sealing, the monitor's tickets, authorizers).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cephx.h"
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

/* cephx: Ceph's own AES vector (src/test/crypto.cc: key 00..0f, one block) */
static void test_cephx_aes(void **state)
{
	static const unsigned char plain[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
						 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	static const unsigned char want[32] = { 0xb3, 0x8f, 0x5b, 0xc9, 0x35, 0x4c, 0xf8, 0xc6,
						0x13, 0x15, 0x66, 0x6f, 0x37, 0xd7, 0x79, 0x3a,
						0x11, 0x90, 0x7b, 0xe9, 0xd8, 0x3c, 0x35, 0x70,
						0x58, 0x7b, 0x97, 0x9b, 0x03, 0xd2, 0xa5, 0x01 };
	struct cephx_key key, other;
	unsigned char out[64], back[64];
	int i;

	(void)state;
	for (i = 0; i < CEPHX_KEY_LEN; i++) {
		key.secret[i] = (unsigned char)i;
		other.secret[i] = (unsigned char)(i + 1);
	}
	assert_int_equal(cephx_aes_cbc(&key, true, plain, sizeof(plain), out, sizeof(out)), 32);
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(cephx_aes_cbc(&key, false, want, sizeof(want), back, sizeof(back)), 16);
	assert_memory_equal(back, plain, sizeof(plain));
	/* sealed (header and magic): opens with its key only */
	assert_int_equal(cephx_encrypt(&key, plain, 6, out, sizeof(out)), 16);
	assert_int_equal(cephx_decrypt(&key, out, 16, back, sizeof(back)), 6);
	assert_memory_equal(back, plain, 6);
	assert_int_equal(cephx_encrypt(&key, plain, 7, out, sizeof(out)),
			 32); /* (a padding block) */
	assert_int_equal(cephx_decrypt(&key, out, 32, back, sizeof(back)), 7);
	assert_true(cephx_decrypt(&other, out, 32, back, sizeof(back)) < 0);
	assert_int_equal(cephx_decrypt(&key, out, 31, back, sizeof(back)), -EPROTO);
	assert_int_equal(cephx_encrypt(&key, plain, 16, out, 30), -ENOSPC);
}

/* cephx keys: base64 of type 1, created, length 16, secret 00..0f */
static void test_cephx_keys(void **state)
{
	static const char text[] = "AQAAAAAAAAAAABAAAAECAwQFBgcICQoLDA0ODw==";
	char path[] = "/tmp/test_rbd.keyring.XXXXXX";
	struct cephx_key key;
	FILE *f;
	int fd, i;

	(void)state;
	assert_int_equal(cephx_key_parse(text, &key), 0);
	for (i = 0; i < CEPHX_KEY_LEN; i++)
		assert_int_equal(key.secret[i], i);
	assert_int_equal(cephx_key_parse("AQAAAAAAAAAAABAAAAECAwQFBgcICQoLDA0O", &key), -EINVAL);
	assert_int_equal(cephx_key_parse("not base64!", &key), -EINVAL);
	assert_int_equal(cephx_key_parse("", &key), -EINVAL);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f,
		"[client.other]\n\tkey = garbage\n[client.admin]\n\tcaps mon = \"allow *\"\n"
		"\tkey = %s\n",
		text);
	fclose(f);
	memset(&key, 0, sizeof(key));
	assert_int_equal(cephx_key_from_keyring(path, "client.admin", &key), 0);
	assert_int_equal(key.secret[15], 15);
	assert_int_equal(cephx_key_from_keyring(path, "client.other", &key), -EINVAL);
	assert_int_equal(cephx_key_from_keyring(path, "client.none", &key), -ENOENT);
	unlink(path);
	assert_int_equal(cephx_key_from_keyring(path, "client.admin", &key), -ENOENT);
}

static void put_le(unsigned char **p, uint64_t v, int bytes)
{
	while (bytes--) {
		*(*p)++ = (unsigned char)v;
		v >>= 8;
	}
}

/*
 * One ticket as a monitor encodes it: the session key sealed under secret,
 * then the service's blob (secret_id, bytes), in the clear or, with
 * blob_key, sealed under it.
 */
static void put_ticket(unsigned char **p, const struct cephx_key *secret, uint32_t service,
		       unsigned char session_byte, uint32_t validity, uint64_t secret_id,
		       const char *blob, const struct cephx_key *blob_key)
{
	unsigned char plain[64], *q = plain, inner[64], *r = inner;
	ssize_t n;

	put_le(p, service, 4);
	put_le(p, 1, 1);
	put_le(&q, 1, 1);
	put_le(&q, 1, 2); /* an AES key */
	put_le(&q, 0, 8);
	put_le(&q, CEPHX_KEY_LEN, 2);
	memset(q, session_byte, CEPHX_KEY_LEN);
	q += CEPHX_KEY_LEN;
	put_le(&q, validity, 4);
	put_le(&q, 0, 4);
	n = cephx_encrypt(secret, plain, (size_t)(q - plain), *p + 4, 128);
	assert_true(n > 0);
	put_le(p, (uint64_t)n, 4);
	*p += n;

	put_le(&r, 1 + 8 + 4 + strlen(blob), 4);
	put_le(&r, 1, 1);
	put_le(&r, secret_id, 8);
	put_le(&r, strlen(blob), 4);
	memcpy(r, blob, strlen(blob));
	r += strlen(blob);
	put_le(p, blob_key != NULL, 1);
	if (!blob_key) {
		memcpy(*p, inner, (size_t)(r - inner));
		*p += r - inner;
		return;
	}
	n = cephx_encrypt(blob_key, inner, (size_t)(r - inner), *p + 4, 128);
	assert_true(n > 0);
	put_le(p, (uint64_t)n, 4);
	*p += n;
}

/* A monitor's answer: the auth ticket under key, no connection secret, the OSD ticket. */
static size_t put_reply(unsigned char *buf, const struct cephx_key *key, unsigned char auth_byte,
			const char *auth_blob, const struct cephx_key *old_auth)
{
	unsigned char *p = buf, *extra_len, *extra;
	struct cephx_key session;

	memset(session.secret, auth_byte, CEPHX_KEY_LEN);
	put_le(&p, 0x0100, 2);
	put_le(&p, 0, 4);
	put_le(&p, 1, 1);
	put_le(&p, 1, 4);
	put_ticket(&p, key, CEPHX_SERVICE_AUTH, auth_byte, 3600, 7, auth_blob, old_auth);
	put_le(&p, 0, 4);
	extra_len = p;
	p += 4;
	extra = p;
	put_le(&p, 1, 1);
	put_le(&p, 1, 4);
	put_ticket(&p, &session, CEPHX_SERVICE_OSD, 0x55, 120, 9, "xy", NULL);
	put_le(&extra_len, (uint64_t)(p - extra), 4);
	return (size_t)(p - buf);
}

/*
 * The monitor's tickets: read as they are written, the auth ticket's blob
 * sealed under the old session key when renewed, and any truncation refused.
 */
static void test_cephx_tickets(void **state)
{
	struct cephx_ticket none = { 0 }, auth, osd, auth2, osd2;
	struct cephx_key key, old;
	unsigned char buf[1024];
	size_t len, cut;

	(void)state;
	memset(key.secret, 0x11, CEPHX_KEY_LEN);
	len = put_reply(buf, &key, 0x22, "abc", NULL);
	assert_int_equal(cephx_tickets(&key, buf, len, &none, &none, &auth, &osd), 0);
	assert_int_equal(auth.service, CEPHX_SERVICE_AUTH);
	assert_int_equal(auth.secret_id, 7);
	assert_int_equal(auth.blob_len, 3);
	assert_memory_equal(auth.blob, "abc", 3);
	assert_int_equal(auth.session_key.secret[0], 0x22);
	assert_int_equal(auth.validity_s, 3600);
	assert_int_equal(osd.service, CEPHX_SERVICE_OSD);
	assert_int_equal(osd.secret_id, 9);
	assert_memory_equal(osd.blob, "xy", 2);
	assert_int_equal(osd.session_key.secret[0], 0x55);
	assert_int_equal(osd.validity_s, 120);

	/* renewed: the new auth blob sealed under the session key held */
	len = put_reply(buf, &key, 0x33, "defg", &auth.session_key);
	assert_int_equal(cephx_tickets(&key, buf, len, &none, &none, &auth2, &osd2), -EPROTO);
	assert_int_equal(auth2.service, 0);
	assert_null(auth2.blob);
	assert_int_equal(cephx_tickets(&key, buf, len, &auth, &osd, &auth2, &osd2), 0);
	assert_int_equal(auth2.session_key.secret[0], 0x33);
	assert_memory_equal(auth2.blob, "defg", 4);
	assert_int_equal(osd2.secret_id, 9);
	cephx_ticket_clear(&auth2);
	cephx_ticket_clear(&osd2);

	/* every truncation, a refusal that grants nothing (and no read past it: ASan) */
	for (cut = 0; cut < len; cut++) {
		struct cephx_ticket a, o;
		unsigned char *copy = malloc(cut ? cut : 1);

		memcpy(copy, buf, cut);
		assert_true(cephx_tickets(&key, copy, cut, &auth, &osd, &a, &o) < 0);
		assert_true(!a.service && !a.blob && !o.service && !o.blob);
		free(copy);
	}
	/* another key; a refusal from the monitor */
	memset(old.secret, 0x12, CEPHX_KEY_LEN);
	assert_true(cephx_tickets(&old, buf, len, &auth, &osd, &auth2, &osd2) < 0);
	buf[2] = 0xf3; /* result -13 */
	buf[3] = buf[4] = buf[5] = 0xff;
	assert_int_equal(cephx_tickets(&key, buf, len, &auth, &osd, &auth2, &osd2), -EACCES);
	cephx_ticket_clear(&auth);
	cephx_ticket_clear(&osd);
}

/* An authorizer: the ticket in the clear, then nonce and challenge + 1 sealed. */
static void test_cephx_authorizer(void **state)
{
	struct cephx_ticket t = { .service = CEPHX_SERVICE_OSD, .secret_id = 5, .blob_len = 2 };
	unsigned char out[256], plain[64], reply[64], *p;
	uint64_t challenge = 41, got;
	ssize_t n, m;

	(void)state;
	t.blob = (unsigned char *)"zz";
	memset(t.session_key.secret, 0x44, CEPHX_KEY_LEN);
	n = cephx_authorizer(&t, 4242, 1000, &challenge, out, sizeof(out));
	assert_int_equal(n, 1 + 8 + 4 + 1 + 8 + 4 + 2 + 4 + 32);
	assert_int_equal(out[1], 4242 & 0xff);
	assert_int_equal(out[9], CEPHX_SERVICE_OSD);
	assert_memory_equal(out + 26, "zz", 2);
	m = cephx_decrypt(&t.session_key, out + 32, 32, plain, sizeof(plain));
	assert_int_equal(m, 18);
	assert_int_equal(plain[0], 2);
	assert_int_equal(plain[1] | plain[2] << 8, 1000);
	assert_int_equal(plain[9], 1);
	assert_int_equal(plain[10], 42);
	assert_int_equal(cephx_authorizer(&t, 4242, 1000, NULL, out, 40), -ENOSPC);

	/* the challenge (sealed, no length) and the answer (length, sealed: nonce + 1) */
	p = plain;
	put_le(&p, 1, 1);
	put_le(&p, 77, 8);
	n = cephx_encrypt(&t.session_key, plain, 9, reply, sizeof(reply));
	assert_int_equal(cephx_authorizer_challenge(&t, reply, (size_t)n, &got), 0);
	assert_int_equal(got, 77);
	p = plain;
	put_le(&p, 2, 1);
	put_le(&p, 1001, 8);
	put_le(&p, 0, 4);
	n = cephx_encrypt(&t.session_key, plain, 13, reply + 4, sizeof(reply) - 4);
	p = reply;
	put_le(&p, (uint64_t)n, 4);
	assert_int_equal(cephx_authorizer_reply(&t, reply, (size_t)n + 4, 1000), 0);
	assert_int_equal(cephx_authorizer_reply(&t, reply, (size_t)n + 4, 1001), -EPROTO);
	assert_int_equal(cephx_authorizer_reply(&t, reply, (size_t)n + 3, 1000), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_crc32c),	 cmocka_unit_test(test_wire_placement),
		cmocka_unit_test(test_snapc_decodes),	 cmocka_unit_test(test_snapc_refuses),
		cmocka_unit_test(test_target_names),	 cmocka_unit_test(test_cephx_aes),
		cmocka_unit_test(test_cephx_keys),	 cmocka_unit_test(test_cephx_tickets),
		cmocka_unit_test(test_cephx_authorizer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
