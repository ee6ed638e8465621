// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cephx.c - the client side of Ceph's cephx authentication (see cephx.h):
 * keys, the encryption every cephx body uses, the monitor exchange that
 * grants tickets, and authorizers for the OSDs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cephx.h"

#define CEPHX_ENC_MAGIC 0xff009cad8826aa55ULL
#define CEPHX_ENC_HEADER_LEN 9 /* u8 1, le64 magic */
#define CEPHX_GET_AUTH_SESSION_KEY 0x0100
#define CRYPTO_AES 1

static const unsigned char cephx_iv[16] = "cephsageyudagreg";

/* little-endian encoding into a bounded buffer */

struct cx_enc {
	unsigned char *p, *end;
	bool full;
};

static void enc_mem(struct cx_enc *e, const void *p, size_t n)
{
	if ((size_t)(e->end - e->p) < n) {
		e->full = true;
		return;
	}
	memcpy(e->p, p, n);
	e->p += n;
}

static void enc_le(struct cx_enc *e, uint64_t v, unsigned bytes)
{
	unsigned char b[8];
	unsigned i;

	for (i = 0; i < bytes; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	enc_mem(e, b, bytes);
}

/* and decoding from one: a short buffer sets bad and yields zeros */

struct cx_dec {
	const unsigned char *p, *end;
	bool bad;
};

static const unsigned char *dec_mem(struct cx_dec *d, size_t n)
{
	const unsigned char *p = d->p;

	if (d->bad || (size_t)(d->end - d->p) < n) {
		d->bad = true;
		return NULL;
	}
	d->p += n;
	return p;
}

static uint64_t dec_le(struct cx_dec *d, unsigned bytes)
{
	const unsigned char *p = dec_mem(d, bytes);
	uint64_t v = 0;

	while (p && bytes--)
		v = v << 8 | p[bytes];
	return v;
}

/* keys */

int cephx_key_parse(const char *base64, struct cephx_key *key)
{
	unsigned char raw[96];
	size_t len = strlen(base64), pad = 0;
	struct cx_dec d = { .p = raw, .end = raw };
	int n;

	if (!len || len % 4 || len > 4 * sizeof(raw) / 3)
		return -EINVAL;
	while (pad < 2 && base64[len - 1 - pad] == '=')
		pad++;
	n = EVP_DecodeBlock(raw, (const unsigned char *)base64, (int)len);
	if (n < 0 || (size_t)n < pad)
		return -EINVAL;
	d.end = raw + (size_t)n - pad;
	dec_le(&d, 2) == CRYPTO_AES ? (void)dec_mem(&d, 8) : (void)(d.bad = true); /* created */
	if (!d.bad && dec_le(&d, 2) == CEPHX_KEY_LEN && d.end - d.p == CEPHX_KEY_LEN)
		memcpy(key->secret, d.p, CEPHX_KEY_LEN);
	else
		d.bad = true;
	explicit_bzero(raw, sizeof(raw));
	return d.bad ? -EINVAL : 0;
}

static char *trim(char *s)
{
	char *end = s + strlen(s);

	while (isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = 0;
	return s;
}

int cephx_key_from_keyring(const char *path, const char *entity, struct cephx_key *key)
{
	FILE *f = fopen(path, "r");
	char line[512], *s, *eq;
	bool ours = false;
	int ret = -ENOENT;

	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		s = trim(line);
		if (*s == '[') {
			char *close = strchr(s, ']');

			if (close)
				*close = 0;
			ours = !strcmp(trim(s + 1), entity);
			continue;
		}
		eq = strchr(s, '=');
		if (!ours || !eq)
			continue;
		*eq = 0;
		if (strcmp(trim(s), "key"))
			continue;
		ret = cephx_key_parse(trim(eq + 1), key);
		break;
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return ret;
}

/* encryption */

ssize_t cephx_aes_cbc(const struct cephx_key *key, bool encrypt, const void *in, size_t len,
		      unsigned char *out, size_t cap)
{
	EVP_CIPHER_CTX *ctx;
	int n = 0, last = 0;
	bool ok;

	/* (room for a block more, as EVP asks; the padding adds one when encrypting) */
	if (len > (size_t)1 << 30 || len + 16 > cap)
		return -ENOSPC;
	if (!encrypt && (!len || len % 16))
		return -EPROTO;
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_CipherInit_ex(ctx, EVP_aes_128_cbc(), NULL, key->secret, cephx_iv, encrypt) &&
	     EVP_CipherUpdate(ctx, out, &n, in, (int)len) &&
	     EVP_CipherFinal_ex(ctx, out + n, &last); /* (fails on bad padding: another key) */
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		return encrypt ? -ENOMEM : -EPROTO;
	return n + last;
}

ssize_t cephx_encrypt(const struct cephx_key *key, const void *plain, size_t len,
		      unsigned char *out, size_t cap)
{
	size_t total = CEPHX_ENC_HEADER_LEN + len;
	unsigned char *in;
	struct cx_enc e;
	ssize_t n;

	if (len > (size_t)1 << 30)
		return -ENOSPC;
	in = malloc(total);
	if (!in)
		return -ENOMEM;
	e = (struct cx_enc){ .p = in, .end = in + total };
	enc_le(&e, 1, 1);
	enc_le(&e, CEPHX_ENC_MAGIC, 8);
	enc_mem(&e, plain, len);
	n = cephx_aes_cbc(key, true, in, total, out, cap);
	free(in);
	return n;
}

ssize_t cephx_decrypt(const struct cephx_key *key, const unsigned char *in, size_t len,
		      unsigned char *out, size_t cap)
{
	struct cx_dec d = { .p = out, .end = out };
	ssize_t n = cephx_aes_cbc(key, false, in, len, out, cap);

	if (n < 0)
		return n;
	d.end = out + n;
	if (dec_le(&d, 1) != 1 || dec_le(&d, 8) != CEPHX_ENC_MAGIC || d.bad)
		return -EPROTO;
	memmove(out, d.p, (size_t)(d.end - d.p));
	return d.end - d.p;
}

int cephx_hmac_sha256(const struct cephx_key *key, const void *data, size_t len,
		      unsigned char out[CEPHX_HMAC_LEN])
{
	unsigned int n = CEPHX_HMAC_LEN;

	return HMAC(EVP_sha256(), key->secret, CEPHX_KEY_LEN, data, len, out, &n) ? 0 : -ENOMEM;
}

/* the monitor exchange */

int cephx_server_challenge(const unsigned char *p, size_t len, uint64_t *challenge)
{
	struct cx_dec d = { .p = p, .end = p + len };

	dec_le(&d, 1); /* struct_v */
	*challenge = dec_le(&d, 8);
	return d.bad || d.p != d.end ? -EPROTO : 0;
}

ssize_t cephx_authenticate(const struct cephx_key *key, uint64_t server_challenge,
			   const struct cephx_ticket *auth, uint32_t services, unsigned char *out,
			   size_t cap)
{
	unsigned char blob[16], sealed[4 + 64];
	struct cx_enc e = { .p = blob, .end = blob + sizeof(blob) };
	uint64_t client_challenge, proof = 0, word;
	ssize_t n;
	size_t i;

	if (getrandom(&client_challenge, sizeof(client_challenge), 0) != sizeof(client_challenge))
		return -EIO;
	enc_le(&e, server_challenge, 8);
	enc_le(&e, client_challenge, 8);
	/* the proof: the challenges encrypted, length first, xored as le64 words */
	n = cephx_encrypt(key, blob, sizeof(blob), sealed + 4, sizeof(sealed) - 4);
	if (n < 0)
		return n;
	e = (struct cx_enc){ .p = sealed, .end = sealed + 4 };
	enc_le(&e, (uint64_t)n, 4);
	for (i = 0; i + 8 <= 4 + (size_t)n; i += 8) {
		memcpy(&word, sealed + i, 8);
		proof ^= word;
	}

	e = (struct cx_enc){ .p = out, .end = out + cap };
	enc_le(&e, CEPHX_GET_AUTH_SESSION_KEY, 2);
	enc_le(&e, 3, 1); /* CephXAuthenticate v3: asks for service tickets too */
	enc_le(&e, client_challenge, 8);
	enc_mem(&e, &proof, 8); /* (already the le64 bytes) */
	enc_le(&e, 1, 1);	/* the old ticket, if any */
	enc_le(&e, auth->service ? auth->secret_id : 0, 8);
	enc_le(&e, auth->service ? auth->blob_len : 0, 4);
	if (auth->service)
		enc_mem(&e, auth->blob, auth->blob_len);
	enc_le(&e, services, 4);
	return e.full ? -ENOSPC : e.p - out;
}

void cephx_ticket_clear(struct cephx_ticket *t)
{
	if (t->blob)
		explicit_bzero(t->blob, t->blob_len);
	free(t->blob);
	explicit_bzero(t, sizeof(*t));
}

/* The service's blob of a ticket, at b: its secret id and bytes into t. */
static int ticket_blob(struct cx_dec *b, struct cephx_ticket *t)
{
	const unsigned char *blob;
	uint32_t len;

	dec_le(b, 4);	       /* (the bufferlist's length: what follows) */
	if (dec_le(b, 1) != 1) /* struct_v */
		return -EPROTO;
	t->secret_id = dec_le(b, 8);
	len = (uint32_t)dec_le(b, 4);
	blob = dec_mem(b, len);
	if (!blob)
		return -EPROTO;
	t->blob = malloc(len ? len : 1);
	if (!t->blob)
		return -ENOMEM;
	if (len)
		memcpy(t->blob, blob, len);
	t->blob_len = len;
	return 0;
}

/*
 * One ticket of a reply, its session key sealed under secret, into got[0]
 * (auth) or got[1] (OSD), by its service; a blob sealed under the session
 * key of the ticket held for that service (held[0], held[1]) is opened.
 */
static int ticket_one(struct cx_dec *d, const struct cephx_key *secret,
		      const struct cephx_ticket *held, struct cephx_ticket *got)
{
	uint32_t type = (uint32_t)dec_le(d, 4), len;
	int which = type == CEPHX_SERVICE_AUTH ? 0 : type == CEPHX_SERVICE_OSD ? 1 : -1;
	struct cephx_ticket t = { .service = type };
	unsigned char plain[128], *opened = NULL;
	struct cx_dec p = { .p = plain, .end = plain }, b;
	const unsigned char *sealed, *key;
	ssize_t n;
	int ret = -EPROTO;

	if (dec_le(d, 1) != 1) /* struct_v */
		return -EPROTO;
	len = (uint32_t)dec_le(d, 4);
	sealed = dec_mem(d, len);
	n = sealed ? cephx_decrypt(secret, sealed, len, plain, sizeof(plain)) : -EPROTO;
	if (n < 0)
		return -EPROTO;
	p.end = plain + n;
	if (dec_le(&p, 1) != 1 || dec_le(&p, 2) != CRYPTO_AES) /* struct_v, key type */
		goto out;
	dec_mem(&p, 8); /* created */
	key = dec_le(&p, 2) == CEPHX_KEY_LEN ? dec_mem(&p, CEPHX_KEY_LEN) : NULL;
	if (!key)
		goto out;
	memcpy(t.session_key.secret, key, CEPHX_KEY_LEN);
	t.validity_s = (uint32_t)dec_le(&p, 4);
	if (p.bad)
		goto out;

	/* the blob for the service: in the clear, or sealed under the ticket's last key */
	if (dec_le(d, 1)) {
		len = (uint32_t)dec_le(d, 4);
		sealed = dec_mem(d, len);
		if (!sealed || which < 0 || !held[which].service)
			goto out;
		opened = malloc((size_t)len + 16);
		ret = -ENOMEM;
		if (!opened)
			goto out;
		ret = -EPROTO;
		n = cephx_decrypt(&held[which].session_key, sealed, len, opened, (size_t)len + 16);
		if (n < 0)
			goto out;
		b = (struct cx_dec){ .p = opened, .end = opened + n };
		ret = ticket_blob(&b, &t);
	} else {
		ret = ticket_blob(d, &t);
	}
	if (!ret && which >= 0) {
		cephx_ticket_clear(&got[which]);
		got[which] = t;
		t.blob = NULL;
	}
out:
	if (opened)
		explicit_bzero(opened, (size_t)len + 16);
	free(opened);
	cephx_ticket_clear(&t);
	explicit_bzero(plain, sizeof(plain));
	return ret;
}

/* A list of tickets (CephXServiceTicketReply), under secret. */
static int ticket_list(struct cx_dec *d, const struct cephx_key *secret,
		       const struct cephx_ticket *held, struct cephx_ticket *got)
{
	uint32_t n;
	int ret;

	if (dec_le(d, 1) != 1) /* struct_v */
		return -EPROTO;
	n = (uint32_t)dec_le(d, 4);
	if (d->bad || n > 64)
		return -EPROTO;
	while (n--) {
		ret = ticket_one(d, secret, held, got);
		if (ret)
			return ret;
	}
	return 0;
}

static int tickets_decode(const struct cephx_key *key, const unsigned char *p, size_t len,
			  const struct cephx_ticket *held, struct cephx_ticket *got)
{
	struct cx_dec d = { .p = p, .end = p + len }, extra = { 0 };
	uint32_t op, n;
	int32_t result;
	int ret;

	op = (uint32_t)dec_le(&d, 2);
	result = (int32_t)dec_le(&d, 4);
	if (d.bad || op != CEPHX_GET_AUTH_SESSION_KEY)
		return -EPROTO;
	if (result < 0)
		return -EACCES;
	ret = ticket_list(&d, key, held, got);
	if (ret)
		return ret;
	/* then the connection secret (for secure mode: not ours), then the service tickets */
	n = (uint32_t)dec_le(&d, 4);
	dec_mem(&d, n);
	n = (uint32_t)dec_le(&d, 4);
	extra.p = dec_mem(&d, n);
	if (!extra.p || !got[0].service)
		return -EPROTO;
	extra.end = extra.p + n;
	/* (sealed under the new auth ticket's session key) */
	ret = ticket_list(&extra, &got[0].session_key, held, got);
	if (ret)
		return ret;
	return got[1].service ? 0 : -EPROTO;
}

int cephx_tickets(const struct cephx_key *key, const unsigned char *p, size_t len,
		  const struct cephx_ticket *held_auth, const struct cephx_ticket *held_osd,
		  struct cephx_ticket *auth, struct cephx_ticket *osd)
{
	struct cephx_ticket held[2] = { *held_auth, *held_osd }, got[2] = { { 0 } };
	int ret = tickets_decode(key, p, len, held, got);

	explicit_bzero(held, sizeof(held));
	if (ret) {
		cephx_ticket_clear(&got[0]);
		cephx_ticket_clear(&got[1]);
	}
	*auth = got[0];
	*osd = got[1];
	return ret;
}

/* authorizers */

ssize_t cephx_authorizer(const struct cephx_ticket *t, uint64_t global_id, uint64_t nonce,
			 const uint64_t *challenge, unsigned char *out, size_t cap)
{
	unsigned char secret[18];
	struct cx_enc e = { .p = secret, .end = secret + sizeof(secret) };
	ssize_t n;

	enc_le(&e, 2, 1); /* struct_v: with the challenge */
	enc_le(&e, nonce, 8);
	enc_le(&e, challenge != NULL, 1);
	enc_le(&e, challenge ? *challenge + 1 : 0, 8);

	e = (struct cx_enc){ .p = out, .end = out + cap };
	enc_le(&e, 1, 1);
	enc_le(&e, global_id, 8);
	enc_le(&e, t->service, 4);
	enc_le(&e, 1, 1);
	enc_le(&e, t->secret_id, 8);
	enc_le(&e, t->blob_len, 4);
	enc_mem(&e, t->blob, t->blob_len);
	if (e.full || e.end - e.p < 4)
		return -ENOSPC;
	n = cephx_encrypt(&t->session_key, secret, sizeof(secret), e.p + 4,
			  (size_t)(e.end - e.p - 4));
	if (n < 0)
		return n;
	enc_le(&e, (uint64_t)n, 4);
	return e.p + n - out;
}

int cephx_authorizer_challenge(const struct cephx_ticket *t, const unsigned char *p, size_t len,
			       uint64_t *challenge)
{
	unsigned char plain[64];
	struct cx_dec d = { .p = plain, .end = plain };
	ssize_t n = cephx_decrypt(&t->session_key, p, len, plain, sizeof(plain));

	if (n < 0)
		return -EPROTO;
	d.end = plain + n;
	dec_le(&d, 1); /* struct_v */
	*challenge = dec_le(&d, 8);
	return d.bad ? -EPROTO : 0;
}

int cephx_authorizer_reply(const struct cephx_ticket *t, const unsigned char *p, size_t len,
			   uint64_t nonce)
{
	unsigned char plain[256];
	struct cx_dec d = { .p = p, .end = p + len };
	uint32_t n = (uint32_t)dec_le(&d, 4);
	const unsigned char *sealed = dec_mem(&d, n);
	ssize_t got;

	if (!sealed)
		return -EPROTO;
	got = cephx_decrypt(&t->session_key, sealed, n, plain, sizeof(plain));
	if (got < 0)
		return -EPROTO;
	d = (struct cx_dec){ .p = plain, .end = plain + got };
	dec_le(&d, 1); /* struct_v */
	return !d.bad && dec_le(&d, 8) == nonce + 1 && !d.bad ? 0 : -EPROTO;
}
