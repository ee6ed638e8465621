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
	if (dec_le(&d, 2) != CRYPTO_AES)
		return -EINVAL;
	dec_mem(&d, 8); /* created */
	if (dec_le(&d, 2) != CEPHX_KEY_LEN || d.end - d.p != CEPHX_KEY_LEN)
		return -EINVAL;
	memcpy(key->secret, d.p, CEPHX_KEY_LEN);
	return 0;
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

void cephx_hmac_sha256(const struct cephx_key *key, const void *data, size_t len,
		       unsigned char out[CEPHX_HMAC_LEN])
{
	unsigned int n = CEPHX_HMAC_LEN;

	if (!HMAC(EVP_sha256(), key->secret, CEPHX_KEY_LEN, data, len, out, &n))
		memset(out, 0, CEPHX_HMAC_LEN); /* (only out of memory: the peer refuses it) */
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
	free(t->blob);
	memset(t, 0, sizeof(*t));
}

/* One ticket of a reply, whose session key secret decrypts. */
static int ticket_one(struct cx_dec *d, const struct cephx_key *secret, struct cephx_ticket *auth,
		      struct cephx_ticket *osd)
{
	uint32_t type = (uint32_t)dec_le(d, 4), len;
	struct cephx_ticket *t = type == CEPHX_SERVICE_AUTH  ? auth
				 : type == CEPHX_SERVICE_OSD ? osd
							     : NULL;
	unsigned char plain[128], *opened = NULL, *blob;
	struct cx_dec p = { .p = plain, .end = plain }, b;
	struct cephx_key session;
	uint32_t validity;
	uint64_t secret_id;
	ssize_t n;

	dec_le(d, 1); /* struct_v */
	len = (uint32_t)dec_le(d, 4);
	b.p = dec_mem(d, len);
	if (!b.p)
		return -EPROTO;
	n = cephx_decrypt(secret, b.p, len, plain, sizeof(plain));
	if (n < 0)
		return -EPROTO;
	p.end = plain + n;
	dec_le(&p, 1); /* struct_v */
	if (dec_le(&p, 2) != CRYPTO_AES)
		return -EPROTO;
	dec_mem(&p, 8); /* created */
	if (dec_le(&p, 2) != CEPHX_KEY_LEN || !dec_mem(&p, 0))
		return -EPROTO;
	memcpy(session.secret, p.p, CEPHX_KEY_LEN);
	dec_mem(&p, CEPHX_KEY_LEN);
	validity = (uint32_t)dec_le(&p, 4);
	if (p.bad)
		return -EPROTO;

	/* the blob for the service: in the clear, or sealed under the ticket's last key */
	if (dec_le(d, 1)) {
		len = (uint32_t)dec_le(d, 4);
		b.p = dec_mem(d, len);
		opened = b.p && t && t->service ? malloc((size_t)len + 16) : NULL;
		n = opened ? cephx_decrypt(&t->session_key, b.p, len, opened, (size_t)len + 16)
			   : -EPROTO;
		if (n < 0) {
			free(opened);
			return -EPROTO;
		}
		b = (struct cx_dec){ .p = opened, .end = opened + n };
	} else {
		b = *d;
	}
	len = (uint32_t)dec_le(&b, 4);
	dec_le(&b, 1); /* struct_v */
	secret_id = dec_le(&b, 8);
	len = (uint32_t)dec_le(&b, 4);
	blob = (unsigned char *)dec_mem(&b, len);
	if (!opened)
		*d = b;
	if (b.bad || d->bad) {
		free(opened);
		return -EPROTO;
	}
	if (t) {
		unsigned char *copy = malloc(len ? len : 1);

		if (!copy) {
			free(opened);
			return -ENOMEM;
		}
		memcpy(copy, blob, len);
		free(t->blob);
		t->blob = copy;
		t->blob_len = len;
		t->service = type;
		t->session_key = session;
		t->secret_id = secret_id;
		t->validity_s = validity;
	}
	free(opened);
	return 0;
}

/* A list of tickets (CephXServiceTicketReply), under secret. */
static int ticket_list(struct cx_dec *d, const struct cephx_key *secret, struct cephx_ticket *auth,
		       struct cephx_ticket *osd)
{
	uint32_t n;
	int ret;

	dec_le(d, 1); /* struct_v */
	n = (uint32_t)dec_le(d, 4);
	if (d->bad || n > 64)
		return -EPROTO;
	while (n--) {
		ret = ticket_one(d, secret, auth, osd);
		if (ret)
			return ret;
	}
	return 0;
}

int cephx_tickets(const struct cephx_key *key, const unsigned char *p, size_t len,
		  struct cephx_ticket *auth, struct cephx_ticket *osd)
{
	struct cx_dec d = { .p = p, .end = p + len }, extra;
	uint32_t op, n;
	int32_t result;
	int ret;

	op = (uint32_t)dec_le(&d, 2);
	result = (int32_t)dec_le(&d, 4);
	if (d.bad || op != CEPHX_GET_AUTH_SESSION_KEY)
		return -EPROTO;
	if (result < 0)
		return -EACCES;
	ret = ticket_list(&d, key, auth, osd);
	if (ret)
		return ret;
	/* then the connection secret (for secure mode: not ours), then the service tickets */
	n = (uint32_t)dec_le(&d, 4);
	dec_mem(&d, n);
	n = (uint32_t)dec_le(&d, 4);
	extra.p = dec_mem(&d, n);
	extra.end = extra.p + n;
	extra.bad = false;
	if (d.bad || auth->service != CEPHX_SERVICE_AUTH)
		return -EPROTO;
	ret = ticket_list(&extra, &auth->session_key, auth, osd);
	if (ret)
		return ret;
	return osd->service == CEPHX_SERVICE_OSD ? 0 : -EPROTO;
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
