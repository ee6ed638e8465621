/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cephx.h - the client side of Ceph's cephx authentication, as the rbd
 * engine's own RADOS path (osd_wire.c) needs it: a client's secret key,
 * the exchange with a monitor that proves the client knows it and hands
 * back tickets (its auth ticket and an OSD service ticket), and the
 * authorizer that shows an OSD the service ticket. Only message bodies
 * here; the msgr2 frames that carry them are osd_wire.c's.
 *
 * The formats are Ceph's src/auth/cephx/CephxProtocol.{h,cc} (and Linux's
 * net/ceph/auth_x.c, its kernel client):
 *   encrypted  AES-128-CBC, PKCS#7 padding, IV "cephsageyudagreg", of
 *              u8 1, le64 CEPHX_ENC_MAGIC, then the plaintext
 *   key        base64 of le16 type (1: AES), le32 + le32 created, le16
 *              length, the 16 secret bytes
 *   ticket     what a monitor grants: a session key (encrypted to the
 *              client) and a blob (encrypted to the service, opaque here)
 */
#ifndef AZBUSE_CEPHX_H
#define AZBUSE_CEPHX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CEPHX_KEY_LEN 16
#define CEPHX_HMAC_LEN 32

/* entity types a ticket is for (CEPH_ENTITY_TYPE_*) */
#define CEPHX_SERVICE_OSD 4
#define CEPHX_SERVICE_AUTH 32

struct cephx_key {
	unsigned char secret[CEPHX_KEY_LEN];
};

struct cephx_ticket {
	uint32_t service; /* 0: none yet */
	struct cephx_key session_key;
	uint64_t secret_id;
	unsigned char *blob;
	uint32_t blob_len;
	uint32_t validity_s; /* seconds it was granted for */
};

/* A key in its base64 text form (a keyring's "key = ..."). 0 or -EINVAL. */
int cephx_key_parse(const char *base64, struct cephx_key *key);

/*
 * The key of entity (e.g. "client.admin") from the keyring file at path:
 * 0, -ENOENT (no such file or no such entity) or -EINVAL.
 */
int cephx_key_from_keyring(const char *path, const char *entity, struct cephx_key *key);

/*
 * AES-128-CBC with cephx's IV and PKCS#7 padding, len bytes of in into out
 * (cap: len + 16 at least): the bytes out, or -errno (-EPROTO: a ciphertext
 * whose padding is wrong, as another key makes it).
 */
ssize_t cephx_aes_cbc(const struct cephx_key *key, bool encrypt, const void *in, size_t len,
		      unsigned char *out, size_t cap);

/* Encrypt len bytes (with the header) into out: its length, or -errno. */
ssize_t cephx_encrypt(const struct cephx_key *key, const void *plain, size_t len,
		      unsigned char *out, size_t cap);

/* Decrypt and check the header: the plaintext's length (after it), or -errno. */
ssize_t cephx_decrypt(const struct cephx_key *key, const unsigned char *in, size_t len,
		      unsigned char *out, size_t cap);

/* HMAC-SHA256 of data under key (msgr2's AUTH_SIGNATURE): 0 or -ENOMEM. */
int cephx_hmac_sha256(const struct cephx_key *key, const void *data, size_t len,
		      unsigned char out[CEPHX_HMAC_LEN]);

/* The monitor's first answer, its challenge: 0 or -EPROTO. */
int cephx_server_challenge(const unsigned char *p, size_t len, uint64_t *challenge);

/*
 * The request for tickets: proof of the key against the server's challenge,
 * the auth ticket held (renewal keeps the global id), and the services
 * (CEPHX_SERVICE_* bits) to get tickets for. Its length, or -ENOSPC.
 */
ssize_t cephx_authenticate(const struct cephx_key *key, uint64_t server_challenge,
			   const struct cephx_ticket *auth, uint32_t services, unsigned char *out,
			   size_t cap);

/*
 * The monitor's last answer (the payload of its AUTH_DONE): new tickets
 * into *auth and *osd, both required. held_auth, held_osd: the tickets
 * held so far (empty at first), whose session keys open what a renewal
 * seals under them. On failure *auth and *osd are empty. 0, -EACCES (the
 * monitor refused: its result), -EPROTO or -ENOMEM.
 */
int cephx_tickets(const struct cephx_key *key, const unsigned char *p, size_t len,
		  const struct cephx_ticket *held_auth, const struct cephx_ticket *held_osd,
		  struct cephx_ticket *auth, struct cephx_ticket *osd);

/* Free and wipe a ticket. */
void cephx_ticket_clear(struct cephx_ticket *t);

/*
 * An authorizer for the ticket's service: global id, the ticket, and
 * (encrypted) nonce and server_challenge + 1 if challenge is given.
 * Its length, or -ENOSPC.
 */
ssize_t cephx_authorizer(const struct cephx_ticket *t, uint64_t global_id, uint64_t nonce,
			 const uint64_t *challenge, unsigned char *out, size_t cap);

/* A service's challenge to an authorizer: 0 or -EPROTO. */
int cephx_authorizer_challenge(const struct cephx_ticket *t, const unsigned char *p, size_t len,
			       uint64_t *challenge);

/* A service's answer to an authorizer: 0 if it proves it knew nonce, or -EPROTO. */
int cephx_authorizer_reply(const struct cephx_ticket *t, const unsigned char *p, size_t len,
			   uint64_t nonce);

#endif
