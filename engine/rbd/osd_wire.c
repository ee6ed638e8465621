// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * osd_wire.c - the rbd engine's own RADOS data path (see osd_wire.h).
 *
 * The wire format is Ceph's msgr2 revision 1 in crc mode (src/msg/async/
 * ProtocolV2.cc and frames_v2.h in Ceph; net/ceph/messenger_v2.c in Linux):
 *   banner    "ceph v2\n", le16 16, le64 supported, le64 required features
 *   frame     preamble (32 bytes: tag, segment count, 4 x (le32 length,
 *             le16 alignment), 2 bytes, le32 crc32c(0) of the 28 before),
 *             segment 0 and its le32 crc32c(-1), then, if any of segments
 *             1-3 has bytes, those and an epilogue (u8 0x0e, 3 x le32 crc:
 *             crc32c(-1) of each segment the frame counts, 0 past them)
 *   handshake HELLO both ways, AUTH_REQUEST (auth none: our name and
 *             global id; cephx: an authorizer with the OSD ticket, answered
 *             by a challenge, AUTH_REQUEST_MORE with its answer) ->
 *             AUTH_DONE, AUTH_SIGNATURE both ways (HMAC-SHA256 under the
 *             session key of every byte the other end sent until then;
 *             zeros without a key), CLIENT_IDENT -> SERVER_IDENT
 *   cephx     tickets from a monitor: the same handshake to its msgr2
 *             address, AUTH_REQUEST in mode "mon" (our name, global id 0
 *             or the one to keep), its challenge, AUTH_REQUEST_MORE with
 *             the proof of our key (cephx.c), AUTH_DONE with the tickets;
 *             then the connection ends
 *   message   a MESSAGE frame: ceph_msg_header2 in segment 0, then front,
 *             middle, data
 * An op is an MOSDOp (v8) with one READ or WRITE; its MOSDOpReply names it
 * by the transaction id in the header.
 *
 * Placement: an object's placement group is its name's rjenkins hash,
 * stable_mod the pool's pg_num; the PG's primary and the OSDs' addresses
 * come from the monitors (`pg map`, `osd dump`, through librados), kept
 * per map epoch. A reply or a map from an OSD that names a newer epoch,
 * a broken connection, or an op unanswered for OSDW_OP_TIMEOUT_NS, makes
 * the client read the map again and send again what moved.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include <azbuse/engine.h>

#include "cephx.h"
#include "osd_wire.h"

/* frame tags */
enum {
	TAG_HELLO = 1,
	TAG_AUTH_REQUEST = 2,
	TAG_AUTH_BAD_METHOD = 3,
	TAG_AUTH_REPLY_MORE = 4,
	TAG_AUTH_REQUEST_MORE = 5,
	TAG_AUTH_DONE = 6,
	TAG_AUTH_SIGNATURE = 7,
	TAG_CLIENT_IDENT = 8,
	TAG_SERVER_IDENT = 9,
	TAG_IDENT_MISSING_FEATURES = 10,
	TAG_WAIT = 16,
	TAG_MESSAGE = 17,
	TAG_KEEPALIVE2 = 18,
	TAG_KEEPALIVE2_ACK = 19,
	TAG_ACK = 20,
};

#define PREAMBLE_LEN 32
#define EPILOGUE_LEN 13
#define HEADER2_LEN 41
#define LATE_STATUS_COMPLETE 0x0e
#define MSGR2_FEATURE_REVISION_1 1ULL

#define ENTITY_TYPE_MON 1
#define ENTITY_TYPE_OSD 4
#define ENTITY_TYPE_CLIENT 8
#define ADDR_TYPE_MSGR2 2
#define ADDR_TYPE_ANY 3
#define AUTH_NONE 1
#define AUTH_CEPHX 2
#define AUTH_MODE_MON 10
#define CON_MODE_CRC 1

#define MSG_OSD_MAP 41
#define MSG_OSD_OP 42
#define MSG_OSD_OPREPLY 43
#define MSG_OSD_BACKOFF 61

#define OSD_OP_READ 0x1201
#define OSD_OP_WRITE 0x2201
#define OSD_FLAG_ONDISK 0x0004
#define OSD_FLAG_RETRY 0x0008
#define OSD_FLAG_READ 0x0010
#define OSD_FLAG_WRITE 0x0020
#define OSD_FLAG_KNOWN_REDIR 0x400000
#define NOSNAP ((uint64_t)-2)

/*
 * What we tell the OSD we understand: the kernel client's set
 * (CEPH_FEATURES_SUPPORTED_DEFAULT of include/linux/ceph/ceph_features.h
 * in Linux 6.12), which decides how the OSD encodes its replies. It
 * implies RADOS_BACKOFF (bit 21, shared with SERVER_LUMINOUS): an OSD
 * that asks the client to hold a PG's ops (MOSDBackoff) may drop what
 * came meanwhile; this client does not take part, and sends such ops
 * again when they time out (OSDW_OP_TIMEOUT_NS), reading the map first.
 */
#define OSDW_FEATURES 0x2f018fb87aa4aafeULL

#define OSDW_OP_TIMEOUT_NS (10 * 1000000000ULL)
#define OSDW_TICK_NS (200 * 1000000ULL)
#define OSDW_UNSERVED_NS (500 * 1000000ULL)
#define OSDW_IO_TIMEOUT_MS 5000 /* a handshake step */
#define OSDW_MAX_OIDS 256
#define OSDW_MAX_OSDS 65536
#define OSDW_MAX_MONS 16
#define OSDW_MIN_TICKET_S 10		    /* renew no more often than at 3/4 of this */
#define OSDW_RELOGIN_NS (5 * 1000000000ULL) /* after an OSD refused a ticket */

struct osdw_op {
	uint64_t tid;
	bool write;
	char oid[OSDW_MAX_OIDS];
	uint32_t oid_len;
	uint32_t hash; /* rjenkins of the name: the raw PG */
	uint64_t off;
	uint32_t len;
	void *buf;
	uint64_t snap_seq;
	uint64_t *snaps;
	uint32_t nr_snaps;
	int osd;	   /* where it was last sent, or -1 */
	unsigned attempts; /* sends so far */
	uint64_t sent_at;
	void *cookie;
	struct osdw_op *prev, *next; /* on its OSD's list, or the waiting list */
};

/* bytes p[off, len) of a buffer of cap */
struct osdw_bytes {
	char *p;
	size_t off, len, cap;
};

struct osdw_osd {
	bool up;
	struct sockaddr_in addr;
	uint32_t nonce;
	int fd; /* -1: not connected */
	uint64_t out_seq, in_seq;
	uint64_t peer_features;
	uint64_t retry_at; /* no connect before (after a failure) */
	unsigned failures;
	bool wants_out;	       /* EPOLLOUT on */
	bool corked;	       /* on the corked list: out has messages to send */
	struct osdw_bytes in;  /* received, not yet taken */
	struct osdw_bytes out; /* not yet sent */
	struct osdw_op *ops;   /* sent to it, unanswered */
};

struct osdw {
	rados_t cluster;
	int64_t pool;
	char pool_name[128];
	uint32_t pg_num, pg_mask;
	char entity[64];
	uint64_t gid;
	bool cephx;			 /* authenticate: with osd_ticket */
	struct cephx_key key;		 /* client.ENTITY's */
	struct cephx_ticket auth_ticket; /* the monitors', for new tickets */
	struct cephx_ticket osd_ticket;
	uint64_t renew_at; /* get new tickets from then (CLOCK_MONOTONIC ns) */
	uint64_t auth_expires_at;
	uint64_t login_tried_at;
	unsigned renew_failures;
	struct sockaddr_in mons[OSDW_MAX_MONS]; /* from the last `mon dump` */
	uint32_t mon_nonces[OSDW_MAX_MONS];
	unsigned nr_mons;
	unsigned nr_logins;
	osdw_done_fn done;
	const char *name;

	uint32_t epoch;
	bool map_stale;	       /* read the map again at the next service */
	uint64_t map_read_at;  /* not before then (CLOCK_MONOTONIC ns) */
	unsigned map_failures; /* reads of the map that failed in a row */
	bool broken;  /* our placement is not the cluster's, or an OSD refuses us: no more ops */
	int *primary; /* per PG: its primary OSD, -1 unknown (this epoch), -2 none */
	uint64_t unserved_until; /* a PG had no primary: ask again from then */
	unsigned unreachable;	 /* OSDs up in the map that we cannot address */
	struct osdw_osd *osds;
	unsigned nr_osds;

	int epoll_fd, timer_fd;
	bool watched_fired; /* the fd of osdw_watch_fd() was readable */
	unsigned *corked;   /* OSDs whose out waits for osdw_service's flush */
	unsigned nr_corked;
	uint64_t next_tid;
	uint64_t global_seq;
	unsigned inflight;
	struct osdw_op *waiting; /* to be sent (no connection, or no map yet) */
	struct osdw_op *free_ops;
	uint64_t nr_ops, nr_resent;
};

/* crc32c (Castagnoli), raw: no inversion on either side, as Ceph uses it */

static uint32_t crc_table[8][256];

static void crc_init(void)
{
	uint32_t i, j, c;

	if (crc_table[0][1])
		return;
	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
		crc_table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (j = 1; j < 8; j++)
			crc_table[j][i] = (crc_table[j - 1][i] >> 8) ^
					  crc_table[0][crc_table[j - 1][i] & 0xff];
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
							 size_t len)
{
	uint64_t c = crc, v;

	for (; len >= 8; len -= 8, p += 8) {
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	for (; len; len--, p++)
		crc = __builtin_ia32_crc32qi(crc, *p);
	return crc;
}

#endif

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t v;

	crc_init();
	for (; len >= 8; len -= 8, p += 8) {
		memcpy(&v, p, 8);
		v ^= crc;
		crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
		      crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
		      crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
		      crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
	}
	for (; len; len--, p++)
		crc = crc_table[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t osdw_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
	static int hw = -1;

	if (hw < 0)
		hw = __builtin_cpu_supports("sse4.2");
	if (hw)
		return crc_hw(crc, data, len);
#endif
	return crc_sw(crc, data, len);
}

/* Bob Jenkins' hash, Ceph's CEPH_STR_HASH_RJENKINS (public domain) */

#define RJ_MIX(a, b, c)                                                                            \
	do {                                                                                       \
		a -= b, a -= c, a ^= c >> 13;                                                      \
		b -= c, b -= a, b ^= a << 8;                                                       \
		c -= a, c -= b, c ^= b >> 13;                                                      \
		a -= b, a -= c, a ^= c >> 12;                                                      \
		b -= c, b -= a, b ^= a << 16;                                                      \
		c -= a, c -= b, c ^= b >> 5;                                                       \
		a -= b, a -= c, a ^= c >> 3;                                                       \
		b -= c, b -= a, b ^= a << 10;                                                      \
		c -= a, c -= b, c ^= b >> 15;                                                      \
	} while (0)

static uint32_t le32_at(const unsigned char *k)
{
	return k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
}

uint32_t osdw_str_hash(const char *s, size_t length)
{
	const unsigned char *k = (const unsigned char *)s;
	uint32_t a = 0x9e3779b9, b = a, c = 0;
	size_t len = length;

	for (; len >= 12; len -= 12, k += 12) {
		a += le32_at(k);
		b += le32_at(k + 4);
		c += le32_at(k + 8);
		RJ_MIX(a, b, c);
	}
	c += (uint32_t)length;
	switch (len) { /* the last 11 bytes; c's low byte is the length's */
	case 11:
		c += (uint32_t)k[10] << 24; /* fall through */
	case 10:
		c += (uint32_t)k[9] << 16; /* fall through */
	case 9:
		c += (uint32_t)k[8] << 8; /* fall through */
	case 8:
		b += (uint32_t)k[7] << 24; /* fall through */
	case 7:
		b += (uint32_t)k[6] << 16; /* fall through */
	case 6:
		b += (uint32_t)k[5] << 8; /* fall through */
	case 5:
		b += k[4]; /* fall through */
	case 4:
		a += (uint32_t)k[3] << 24; /* fall through */
	case 3:
		a += (uint32_t)k[2] << 16; /* fall through */
	case 2:
		a += (uint32_t)k[1] << 8; /* fall through */
	case 1:
		a += k[0];
	}
	RJ_MIX(a, b, c);
	return c;
}

uint32_t osdw_stable_mod(uint32_t x, uint32_t b, uint32_t bmask)
{
	return (x & bmask) < b ? x & bmask : x & (bmask >> 1);
}

/* little-endian encoding into a byte cursor */

struct enc {
	unsigned char *p;
};

static void put8(struct enc *e, uint8_t v)
{
	*e->p++ = v;
}
static void put16(struct enc *e, uint16_t v)
{
	put8(e, v & 0xff);
	put8(e, v >> 8);
}
static void put32(struct enc *e, uint32_t v)
{
	put16(e, v & 0xffff);
	put16(e, v >> 16);
}
static void put64(struct enc *e, uint64_t v)
{
	put32(e, (uint32_t)v);
	put32(e, (uint32_t)(v >> 32));
}
static void putmem(struct enc *e, const void *p, size_t n)
{
	memcpy(e->p, p, n);
	e->p += n;
}
static uint16_t get16(const unsigned char *p)
{
	return p[0] | (uint16_t)(p[1] << 8);
}
static uint64_t get64(const unsigned char *p)
{
	return le32_at(p) | (uint64_t)le32_at(p + 4) << 32;
}

/* An entity_addr_t, IPv4: marker 1, encoding v1 of 28 bytes. */
static void put_addr(struct enc *e, uint32_t type, uint32_t nonce, const struct sockaddr_in *sin)
{
	put8(e, 1);
	put8(e, 1);
	put8(e, 1);
	put32(e, 4 + 4 + 4 + 16);
	put32(e, type);
	put32(e, nonce);
	put32(e, 16);
	put16(e, AF_INET);
	putmem(e, &sin->sin_port, 2); /* network order, as sockaddr keeps them */
	putmem(e, &sin->sin_addr, 4);
	memset(e->p, 0, 8);
	e->p += 8;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* byte buffers */

/* Room for more bytes after the last (what was taken moves to the front first). */
static int bytes_reserve(struct osdw_bytes *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 65536;
	char *p;

	if (b->len + more <= b->cap)
		return 0;
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->len + more <= b->cap)
			return 0;
	}
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int bytes_append(struct osdw_bytes *b, const void *p, size_t n)
{
	int ret = bytes_reserve(b, n);

	if (ret)
		return ret;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static unsigned char *bytes_data(const struct osdw_bytes *b)
{
	return (unsigned char *)b->p + b->off;
}

static size_t bytes_size(const struct osdw_bytes *b)
{
	return b->len - b->off;
}

/* Take n bytes from the front (no copy: the next bytes_reserve compacts). */
static void bytes_consume(struct osdw_bytes *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

static void bytes_clear(struct osdw_bytes *b)
{
	b->off = b->len = 0;
}

/* frames */

struct frame {
	unsigned tag;
	unsigned nr_segs;
	uint32_t len[4];
	const unsigned char *seg[4];
	size_t size; /* on the wire */
};

/*
 * Parse the frame at the start of buf: its size if it is whole (and checks),
 * 0 if more bytes are needed, -EBADMSG if it is corrupt.
 */
static ssize_t frame_parse(const unsigned char *buf, size_t have, struct frame *f)
{
	const unsigned char *p;
	size_t size, tail = 0;
	unsigned i;

	if (have < PREAMBLE_LEN)
		return 0;
	if (osdw_crc32c(0, buf, 28) != le32_at(buf + 28))
		return -EBADMSG;
	f->tag = buf[0];
	f->nr_segs = buf[1];
	if (f->nr_segs < 1 || f->nr_segs > 4)
		return -EBADMSG;
	for (i = 0; i < 4; i++)
		f->len[i] = i < f->nr_segs ? le32_at(buf + 2 + 6 * i) : 0;
	if (f->len[0] > (1u << 20) || f->len[1] > (16u << 20) || f->len[2] > (16u << 20) ||
	    f->len[3] > (64u << 20))
		return -EBADMSG;
	size = PREAMBLE_LEN + f->len[0] + 4;
	if (f->len[1] || f->len[2] || f->len[3])
		tail = (size_t)f->len[1] + f->len[2] + f->len[3] + EPILOGUE_LEN;
	if (have < size + tail)
		return 0;
	p = buf + PREAMBLE_LEN;
	f->seg[0] = p;
	if (osdw_crc32c(0xffffffff, p, f->len[0]) != le32_at(p + f->len[0]))
		return -EBADMSG;
	p += f->len[0] + 4;
	for (i = 1; i < 4; i++) {
		f->seg[i] = p;
		p += f->len[i];
	}
	if (tail) {
		if ((p[0] & 0x0f) != LATE_STATUS_COMPLETE)
			return -EBADMSG;
		for (i = 1; i < 4; i++) {
			uint32_t want =
				i < f->nr_segs ? osdw_crc32c(0xffffffff, f->seg[i], f->len[i]) : 0;

			if (le32_at(p + 1 + 4 * (i - 1)) != want)
				return -EBADMSG;
		}
	}
	f->size = size + tail;
	return (ssize_t)f->size;
}

/*
 * Lay out a frame's head: preamble, segment 0 (copied in) and its crc,
 * into out (PREAMBLE_LEN + len[0] + 4 bytes). Segments 1-3 and the
 * epilogue are the caller's.
 */
static size_t frame_head(unsigned char *out, unsigned tag, const uint32_t len[4], const void *seg0)
{
	static const uint16_t align[4] = { 8, 8, 8, 4096 };
	unsigned nr = 4, i;
	struct enc e = { out };

	while (nr > 1 && !len[nr - 1])
		nr--;
	memset(out, 0, PREAMBLE_LEN);
	put8(&e, (uint8_t)tag);
	put8(&e, (uint8_t)nr);
	for (i = 0; i < nr; i++) {
		put32(&e, len[i]);
		put16(&e, align[i]);
	}
	e.p = out + 28;
	put32(&e, osdw_crc32c(0, out, 28));
	memcpy(out + PREAMBLE_LEN, seg0, len[0]);
	e.p = out + PREAMBLE_LEN + len[0];
	put32(&e, osdw_crc32c(0xffffffff, seg0, len[0]));
	return PREAMBLE_LEN + len[0] + 4;
}

static void frame_epilogue(unsigned char *out, const uint32_t len[4], const uint32_t crc[4])
{
	unsigned nr = 4, i;
	struct enc e = { out };

	while (nr > 1 && !len[nr - 1])
		nr--;
	put8(&e, LATE_STATUS_COMPLETE);
	for (i = 1; i < 4; i++)
		put32(&e, i < nr ? crc[i] : 0);
}

/* blocking I/O for the handshake */

static int io_wait(int fd, short events)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret;

	do
		ret = poll(&pfd, 1, OSDW_IO_TIMEOUT_MS);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	return ret ? 0 : -ETIMEDOUT;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int ret;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			ret = io_wait(fd, POLLOUT);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Receive into o->in until it holds need bytes. */
static int recv_until(struct osdw_osd *o, size_t need)
{
	ssize_t n;
	int ret;

	ret = bytes_reserve(&o->in, need > bytes_size(&o->in) ? need - bytes_size(&o->in) : 0);
	if (ret)
		return ret;
	while (bytes_size(&o->in) < need) {
		n = recv(o->fd, o->in.p + o->in.len, o->in.cap - o->in.len, 0);
		if (n < 0 && errno == EAGAIN) {
			ret = io_wait(o->fd, POLLIN);
			if (ret)
				return ret;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -ECONNRESET;
		o->in.len += (size_t)n;
	}
	return 0;
}

/* Wait for the next whole frame (handshake): its size in o->in, or -errno. */
static ssize_t recv_frame(struct osdw_osd *o, struct frame *f)
{
	ssize_t n;
	int ret;

	for (;;) {
		n = frame_parse(bytes_data(&o->in), bytes_size(&o->in), f);
		if (n)
			return n;
		ret = recv_until(o, bytes_size(&o->in) + 1);
		if (ret)
			return ret;
	}
}

/*
 * A handshake in progress on o: until AUTH_DONE, every byte each way is
 * kept, for the AUTH_SIGNATURE frames that prove both ends saw the same.
 */
struct handshake {
	struct osdw_osd *o;
	bool signing;
	struct osdw_bytes sent, got;
};

static void hs_free(struct handshake *h)
{
	free(h->sent.p);
	free(h->got.p);
}

static int hs_send(struct handshake *h, const void *buf, size_t len)
{
	int ret = send_all(h->o->fd, buf, len);

	if (!ret && h->signing)
		ret = bytes_append(&h->sent, buf, len);
	return ret;
}

static int hs_control(struct handshake *h, unsigned tag, const void *body, uint32_t len)
{
	uint32_t lens[4] = { len, 0, 0, 0 };
	unsigned char *buf = malloc(PREAMBLE_LEN + len + 4);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = hs_send(h, buf, frame_head(buf, tag, lens, body));
	free(buf);
	return ret;
}

/* Take the first n bytes of what came (a frame, or the banner). */
static int hs_take(struct handshake *h, size_t n)
{
	int ret = h->signing ? bytes_append(&h->got, bytes_data(&h->o->in), n) : 0;

	bytes_consume(&h->o->in, n);
	return ret;
}

/* Send a control frame and wait for the answer, left at the start of o->in. */
static ssize_t hs_ask(struct handshake *h, unsigned tag, const void *body, uint32_t len,
		      struct frame *f)
{
	int ret = hs_control(h, tag, body, len);

	return ret ? ret : recv_frame(h->o, f);
}

static int hs_banner(struct handshake *h)
{
	unsigned char buf[26];
	struct enc e = { buf };
	uint64_t server_features, server_required;
	size_t n;
	int ret;

	memcpy(e.p, "ceph v2\n", 8);
	e.p += 8;
	put16(&e, 16);
	put64(&e, MSGR2_FEATURE_REVISION_1);
	put64(&e, MSGR2_FEATURE_REVISION_1);
	ret = hs_send(h, buf, (size_t)(e.p - buf));
	if (!ret)
		ret = recv_until(h->o, 10);
	if (ret)
		return ret;
	if (memcmp(bytes_data(&h->o->in), "ceph v2\n", 8))
		return -EPROTO;
	n = get16(bytes_data(&h->o->in) + 8);
	if (n < 16)
		return -EPROTO;
	ret = recv_until(h->o, 10 + n);
	if (ret)
		return ret;
	server_features = get64(bytes_data(&h->o->in) + 10);
	server_required = get64(bytes_data(&h->o->in) + 18);
	ret = hs_take(h, 10 + n);
	if (ret)
		return ret;
	if (!(server_features & MSGR2_FEATURE_REVISION_1) ||
	    (server_required & ~MSGR2_FEATURE_REVISION_1))
		return -EPROTONOSUPPORT;
	return 0;
}

/* HELLO both ways: the peer is of peer_type, and says where it sees us (*my_addr). */
static int hs_hello(struct handshake *h, unsigned peer_type, struct sockaddr_in *my_addr)
{
	unsigned char buf[64];
	struct enc e = { buf };
	struct frame f;
	ssize_t n;

	put8(&e, ENTITY_TYPE_CLIENT);
	put_addr(&e, ADDR_TYPE_MSGR2, h->o->nonce, &h->o->addr);
	n = hs_ask(h, TAG_HELLO, buf, (uint32_t)(e.p - buf), &f);
	if (n < 0)
		return (int)n;
	/*
	 * entity type, then the address the peer sees us at (ours, with port 0):
	 * marker 1, v1 encoding (3 + 4 bytes), type, nonce, sockaddr length,
	 * family, port, IPv4 address at offset 24
	 */
	if (f.tag != TAG_HELLO || f.len[0] < 1 + 1 + 6 + 28 || f.seg[0][0] != peer_type ||
	    f.seg[0][1] != 1 || get16(f.seg[0] + 20) != AF_INET)
		return -EPROTO;
	memset(my_addr, 0, sizeof(*my_addr));
	my_addr->sin_family = AF_INET;
	memcpy(&my_addr->sin_addr, f.seg[0] + 24, 4);
	return hs_take(h, (size_t)n);
}

/*
 * What an AUTH_BAD_METHOD frame (le32 method, le32 result, the methods
 * and modes the peer allows) says, as -errno: -EACCES for a refused key
 * or ticket, -EPROTONOSUPPORT for a method or mode the peer does not
 * allow (cephx or crc mode), -EAGAIN for a peer that cannot serve now
 * (another monitor may); 0 for any other frame.
 */
static int bad_method(const struct frame *f)
{
	int32_t result;

	if (f->tag != TAG_AUTH_BAD_METHOD)
		return 0;
	if (f->len[0] < 8)
		return -EPROTO;
	result = (int32_t)le32_at(f->seg[0] + 4);
	if (result == -EACCES || result == -EPERM)
		return -EACCES;
	if (result == -EOPNOTSUPP)
		return -EPROTONOSUPPORT;
	return -EAGAIN;
}

/* Auth none: our name and global id. */
static int hs_auth_none(struct osdw *w, struct handshake *h)
{
	unsigned char buf[128];
	struct enc e = { buf };
	struct frame f;
	ssize_t n;

	put32(&e, AUTH_NONE);
	put32(&e, 1);
	put32(&e, CON_MODE_CRC);
	put32(&e, (uint32_t)(1 + 4 + 4 + strlen(w->entity) + 8));
	put8(&e, 1);
	put32(&e, ENTITY_TYPE_CLIENT);
	put32(&e, (uint32_t)strlen(w->entity));
	putmem(&e, w->entity, strlen(w->entity));
	put64(&e, w->gid);
	n = hs_ask(h, TAG_AUTH_REQUEST, buf, (uint32_t)(e.p - buf), &f);
	if (n < 0)
		return (int)n;
	if (f.tag == TAG_AUTH_BAD_METHOD || f.tag == TAG_AUTH_REPLY_MORE)
		return -EACCES; /* the cluster wants cephx (EOPNOTSUPP: auth none not allowed) */
	if (f.tag != TAG_AUTH_DONE || f.len[0] < 12 || le32_at(f.seg[0] + 8) != CON_MODE_CRC)
		return -EPROTO;
	return hs_take(h, (size_t)n);
}

/* The body of an AUTH_REQUEST (method cephx, crc mode) or, with more, an AUTH_REQUEST_MORE. */
static uint32_t auth_request(unsigned char *buf, bool more, const void *payload, size_t len)
{
	struct enc e = { buf };

	if (!more) {
		put32(&e, AUTH_CEPHX);
		put32(&e, 1);
		put32(&e, CON_MODE_CRC);
	}
	put32(&e, (uint32_t)len);
	putmem(&e, payload, len);
	return (uint32_t)(e.p - buf);
}

/* A frame's auth payload (le32 length, then it) at p of the frame's segment 0. */
static int auth_payload(const struct frame *f, size_t at, const unsigned char **p, size_t *len)
{
	if (f->len[0] < at + 4 || f->len[0] - at - 4 < le32_at(f->seg[0] + at))
		return -EPROTO;
	*len = le32_at(f->seg[0] + at);
	*p = f->seg[0] + at + 4;
	return 0;
}

/*
 * Cephx to an OSD: the authorizer with the OSD ticket, answered with a
 * challenge, then again with the challenge's answer; the OSD proves it
 * could read it (our nonce + 1).
 */
static int hs_auth_cephx(struct osdw *w, struct handshake *h)
{
	size_t cap = (size_t)w->osd_ticket.blob_len + 256;
	unsigned char *authorizer = malloc(cap), *buf = malloc(cap + 16);
	const unsigned char *payload;
	uint64_t nonce, challenge;
	struct frame f;
	size_t len;
	ssize_t n;
	int ret = -ENOMEM;

	if (!authorizer || !buf)
		goto out;
	ret = -EIO;
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		goto out;
	n = cephx_authorizer(&w->osd_ticket, w->gid, nonce, NULL, authorizer, cap);
	if (n >= 0)
		n = hs_ask(h, TAG_AUTH_REQUEST, buf,
			   auth_request(buf, false, authorizer, (size_t)n), &f);
	if (n >= 0 && f.tag == TAG_AUTH_REPLY_MORE) {
		ret = auth_payload(&f, 0, &payload, &len);
		if (!ret)
			ret = cephx_authorizer_challenge(&w->osd_ticket, payload, len, &challenge);
		if (!ret)
			ret = hs_take(h, (size_t)n);
		if (ret)
			goto out;
		n = cephx_authorizer(&w->osd_ticket, w->gid, nonce, &challenge, authorizer, cap);
		if (n >= 0)
			n = hs_ask(h, TAG_AUTH_REQUEST_MORE, buf,
				   auth_request(buf, true, authorizer, (size_t)n), &f);
	}
	ret = (int)n;
	if (n < 0)
		goto out;
	ret = bad_method(&f); /* (-EACCES: a ticket the OSD cannot read, too old) */
	if (ret)
		goto out;
	ret = -EPROTO;
	if (f.tag != TAG_AUTH_DONE || f.len[0] < 12 || le32_at(f.seg[0] + 8) != CON_MODE_CRC)
		goto out;
	ret = auth_payload(&f, 12, &payload, &len);
	if (!ret)
		ret = cephx_authorizer_reply(&w->osd_ticket, payload, len, nonce);
	if (!ret)
		ret = hs_take(h, (size_t)n);
out:
	free(authorizer);
	free(buf);
	return ret;
}

/*
 * AUTH_SIGNATURE both ways: an HMAC under the session key of what we got,
 * and the peer's of what we sent (zeros for both without a key).
 */
static int hs_signature(struct handshake *h, const struct cephx_key *key)
{
	unsigned char mine[CEPHX_HMAC_LEN] = { 0 }, theirs[CEPHX_HMAC_LEN] = { 0 };
	struct frame f;
	ssize_t n;

	h->signing = false;
	if (key && (cephx_hmac_sha256(key, bytes_data(&h->got), bytes_size(&h->got), mine) ||
		    cephx_hmac_sha256(key, bytes_data(&h->sent), bytes_size(&h->sent), theirs)))
		return -ENOMEM;
	n = hs_ask(h, TAG_AUTH_SIGNATURE, mine, sizeof(mine), &f);
	if (n < 0)
		return (int)n;
	if (f.tag != TAG_AUTH_SIGNATURE || f.len[0] != CEPHX_HMAC_LEN ||
	    CRYPTO_memcmp(f.seg[0], theirs, CEPHX_HMAC_LEN))
		return -EPROTO;
	return hs_take(h, (size_t)n);
}

static int hs_ident(struct osdw *w, struct handshake *h, const struct sockaddr_in *my_addr)
{
	unsigned char buf[256], me[64];
	struct enc e = { me };
	struct frame f;
	ssize_t n;

	put_addr(&e, ADDR_TYPE_ANY, (uint32_t)w->gid, my_addr);
	e.p = buf;
	put8(&e, 2); /* an addrvec of one */
	put32(&e, 1);
	putmem(&e, me, 1 + 6 + 28);
	put_addr(&e, ADDR_TYPE_MSGR2, h->o->nonce, &h->o->addr);
	put64(&e, w->gid);
	put64(&e, ++w->global_seq);
	put64(&e, OSDW_FEATURES);
	put64(&e, 0);	       /* required */
	put64(&e, 0);	       /* flags */
	put64(&e, w->gid | 1); /* cookie, not 0 */
	n = hs_ask(h, TAG_CLIENT_IDENT, buf, (uint32_t)(e.p - buf), &f);
	if (n < 0)
		return (int)n;
	if (f.tag == TAG_IDENT_MISSING_FEATURES)
		return -EPROTONOSUPPORT;
	if (f.tag != TAG_SERVER_IDENT || f.len[0] < 6 * 8)
		return -EPROTO;
	/* addrvec, gid, global_seq, features, required, flags, cookie: the features */
	h->o->peer_features = get64(f.seg[0] + f.len[0] - 4 * 8);
	return hs_take(h, (size_t)n);
}

/* The msgr2 handshake with an OSD on a connected socket (O_NONBLOCK). */
static int osd_handshake(struct osdw *w, struct osdw_osd *o, const char **step)
{
	struct handshake h = { .o = o, .signing = w->cephx };
	struct sockaddr_in my_addr;
	int ret;

	*step = "the banner";
	ret = hs_banner(&h);
	if (!ret) {
		*step = "hello";
		ret = hs_hello(&h, ENTITY_TYPE_OSD, &my_addr);
	}
	if (!ret) {
		*step = w->cephx ? "authenticating (cephx)" : "authenticating (auth none)";
		ret = w->cephx ? hs_auth_cephx(w, &h) : hs_auth_none(w, &h);
	}
	if (!ret) {
		*step = "signing the handshake";
		ret = hs_signature(&h, w->cephx ? &w->osd_ticket.session_key : NULL);
	}
	if (!ret) {
		*step = "identifying";
		ret = hs_ident(w, &h, &my_addr);
	}
	hs_free(&h);
	return ret;
}

static int tcp_connect(const struct sockaddr_in *addr)
{
	int fd, one = 1, ret;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	if (ret < 0 && errno == EINPROGRESS) {
		socklen_t len = sizeof(int);
		int soerr = 0;

		ret = io_wait(fd, POLLOUT);
		if (!ret && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (!ret)
			ret = -soerr;
	} else if (ret < 0) {
		ret = -errno;
	}
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* the cluster map, through the monitors */

static int mon_json(struct osdw *w, const char *cmd, json_object **out)
{
	const char *cmds[1] = { cmd };
	char *outbuf = NULL, *outs = NULL;
	size_t outlen = 0, outslen = 0;
	int ret;

	ret = rados_mon_command(w->cluster, cmds, 1, "", 0, &outbuf, &outlen, &outs, &outslen);
	if (ret >= 0) {
		/* (outbuf has outlen bytes and no terminating NUL) */
		json_tokener *tok = json_tokener_new();

		*out = tok && outbuf ? json_tokener_parse_ex(tok, outbuf, (int)outlen) : NULL;
		if (tok)
			json_tokener_free(tok);
		if (!*out)
			ret = -EBADMSG;
	}
	rados_buffer_free(outbuf);
	rados_buffer_free(outs);
	return ret;
}

static int64_t json_int(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

/* An OSD's or a monitor's msgr2 address, from its public_addrs. */
static int msgr2_addr_from_json(json_object *osd, struct sockaddr_in *sin, uint32_t *nonce)
{
	json_object *addrs, *vec, *a, *v;
	char host[64], *colon;
	size_t i;

	if (!json_object_object_get_ex(osd, "public_addrs", &addrs) ||
	    !json_object_object_get_ex(addrs, "addrvec", &vec))
		return -ENOENT;
	for (i = 0; i < json_object_array_length(vec); i++) {
		a = json_object_array_get_idx(vec, i);
		if (!json_object_object_get_ex(a, "type", &v) ||
		    strcmp(json_object_get_string(v), "v2"))
			continue;
		if (!json_object_object_get_ex(a, "addr", &v))
			continue;
		snprintf(host, sizeof(host), "%s", json_object_get_string(v));
		colon = strrchr(host, ':');
		if (!colon)
			continue;
		*colon = 0;
		memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			continue; /* (IPv6: not yet) */
		*nonce = (uint32_t)json_int(a, "nonce");
		return 0;
	}
	return -ENOENT;
}

static void osd_disconnect(struct osdw *w, struct osdw_osd *o);

/* cephx: tickets from the monitors */

/* client.ENTITY's key, from the configuration's key, keyfile or keyring. */
static int cephx_load_key(struct osdw *w)
{
	char val[4096], name[96], *path, *save = NULL;
	int ret = -ENOENT;
	FILE *f;

	snprintf(name, sizeof(name), "client.%s", w->entity);
	if (!rados_conf_get(w->cluster, "key", val, sizeof(val)) && *val) {
		ret = cephx_key_parse(val, &w->key);
	} else if (!rados_conf_get(w->cluster, "keyfile", val, sizeof(val)) && *val) {
		f = fopen(val, "r");
		ret = f ? 0 : -errno;
		if (f && !fgets(val, sizeof(val), f))
			ret = -EINVAL;
		if (f)
			fclose(f);
		val[strcspn(val, " \t\r\n")] = 0;
		if (!ret)
			ret = cephx_key_parse(val, &w->key);
	} else if (!rados_conf_get(w->cluster, "keyring", val, sizeof(val))) {
		for (path = strtok_r(val, ",; \t", &save); path && ret == -ENOENT;
		     path = strtok_r(NULL, ",; \t", &save))
			ret = cephx_key_from_keyring(path, name, &w->key);
	}
	explicit_bzero(val, sizeof(val));
	return ret;
}

/*
 * Authenticate to the monitor at addr (msgr2, cephx, as client.ENTITY) and
 * take its tickets: the auth ticket (kept to renew them under the same
 * global id) and the OSD ticket. The connection ends there, without the
 * AUTH_SIGNATURE exchange: the tickets are sealed under our key, and only
 * the global id in AUTH_DONE goes unproven. 0 or -errno (-EACCES: the
 * monitor refused our key or our auth ticket).
 */
static int mon_auth(struct osdw *w, const struct sockaddr_in *addr, uint32_t nonce,
		    const char **step)
{
	struct osdw_osd mon = { .fd = -1, .addr = *addr, .nonce = nonce };
	struct handshake h = { .o = &mon };
	size_t cap = (size_t)w->auth_ticket.blob_len + 256;
	unsigned char *req = malloc(cap), *buf = malloc(cap + 16);
	struct cephx_ticket auth, osd;
	struct sockaddr_in my_addr;
	const unsigned char *payload;
	uint64_t challenge, gid;
	struct enc e = { req };
	struct frame f;
	size_t len;
	ssize_t n;
	int ret;

	*step = "connecting";
	ret = req && buf ? tcp_connect(addr) : -ENOMEM;
	if (ret < 0)
		goto out;
	mon.fd = ret;
	*step = "the banner";
	ret = hs_banner(&h);
	if (!ret) {
		*step = "hello";
		ret = hs_hello(&h, ENTITY_TYPE_MON, &my_addr);
	}
	if (ret)
		goto out;

	*step = "authenticating";
	put8(&e, AUTH_MODE_MON);
	put32(&e, ENTITY_TYPE_CLIENT);
	put32(&e, (uint32_t)strlen(w->entity));
	putmem(&e, w->entity, strlen(w->entity));
	put64(&e, w->auth_ticket.service ? w->gid : 0); /* (0: a new one) */
	n = hs_ask(&h, TAG_AUTH_REQUEST, buf, auth_request(buf, false, req, (size_t)(e.p - req)),
		   &f);
	ret = n < 0 ? (int)n : bad_method(&f);
	if (!ret && f.tag != TAG_AUTH_REPLY_MORE)
		ret = -EPROTO;
	if (!ret)
		ret = auth_payload(&f, 0, &payload, &len);
	if (!ret)
		ret = cephx_server_challenge(payload, len, &challenge);
	if (!ret)
		ret = hs_take(&h, (size_t)n);
	if (ret)
		goto out;
	n = cephx_authenticate(&w->key, challenge, &w->auth_ticket, CEPHX_SERVICE_OSD, req, cap);
	if (n >= 0)
		n = hs_ask(&h, TAG_AUTH_REQUEST_MORE, buf, auth_request(buf, true, req, (size_t)n),
			   &f);
	ret = n < 0 ? (int)n
		    : bad_method(&f); /* (-EACCES: a wrong key, or an auth ticket refused) */
	if (!ret && (f.tag != TAG_AUTH_DONE || f.len[0] < 12))
		ret = -EPROTO;
	if (ret)
		goto out;

	*step = "reading the tickets";
	gid = get64(f.seg[0]);
	ret = auth_payload(&f, 12, &payload, &len);
	if (!ret)
		ret = cephx_tickets(&w->key, payload, len, &w->auth_ticket, &w->osd_ticket, &auth,
				    &osd);
	if (ret)
		goto out;
	if (w->gid && gid != w->gid) {
		unsigned i;

		/* (its auth ticket had expired: the OSDs must see one name per connection) */
		azbuse_log(AZBUSE_LOG_WARN,
			   "engine rbd: %s: own RADOS path: the monitors gave a new global id "
			   "%" PRIu64 " (was %" PRIu64 ")",
			   w->name, gid, w->gid);
		for (i = 0; i < w->nr_osds; i++)
			osd_disconnect(w, &w->osds[i]);
	}
	cephx_ticket_clear(&w->auth_ticket);
	cephx_ticket_clear(&w->osd_ticket);
	w->auth_ticket = auth;
	w->osd_ticket = osd;
	w->gid = gid;
out:
	if (mon.fd >= 0)
		close(mon.fd);
	free(mon.in.p);
	free(mon.out.p);
	hs_free(&h);
	free(req);
	free(buf);
	return ret;
}

/* Whether a monitor's answer ends the search: granted, or refused for good. */
static bool mon_final(int ret)
{
	return !ret || ret == -EACCES || ret == -EPROTONOSUPPORT;
}

/*
 * Tickets from the first monitor that answers: those known from the last
 * `mon dump` first (no monitor command while the monitors are away), then
 * those of a new one.
 */
static int mon_auth_any(struct osdw *w, const char **step)
{
	json_object *dump, *mons;
	unsigned i;
	int ret = -ENOENT;

	for (i = 0; i < w->nr_mons && !mon_final(ret); i++)
		ret = mon_auth(w, &w->mons[i], w->mon_nonces[i], step);
	if (mon_final(ret))
		return ret;
	*step = "listing the monitors (mon dump)";
	ret = mon_json(w, "{\"prefix\": \"mon dump\", \"format\": \"json\"}", &dump);
	if (ret < 0)
		return ret;
	w->nr_mons = 0;
	if (json_object_object_get_ex(dump, "mons", &mons))
		for (i = 0; i < json_object_array_length(mons) && w->nr_mons < OSDW_MAX_MONS; i++)
			if (!msgr2_addr_from_json(json_object_array_get_idx(mons, i),
						  &w->mons[w->nr_mons], &w->mon_nonces[w->nr_mons]))
				w->nr_mons++;
	json_object_put(dump);
	*step = "no monitor with an IPv4 msgr2 address";
	ret = -ENOENT;
	for (i = 0; i < w->nr_mons && !mon_final(ret); i++)
		ret = mon_auth(w, &w->mons[i], w->mon_nonces[i], step);
	return ret;
}

/*
 * Get tickets, or new ones: renewed at three quarters of their life (sooner
 * after an OSD refused one), under the same global id while the auth ticket
 * lives and the monitors take it, else afresh. 0 or -errno (logged).
 */
static int cephx_login(struct osdw *w)
{
	const char *step = "no monitor with an IPv4 msgr2 address";
	uint64_t now = now_ns();
	uint32_t life;
	int ret;

	w->login_tried_at = now;
	if (w->auth_ticket.service && now >= w->auth_expires_at)
		cephx_ticket_clear(&w->auth_ticket); /* (expired: a new global id) */
	ret = mon_auth_any(w, &step);
	if (ret == -EACCES && w->auth_ticket.service) {
		/* the monitors no longer take the auth ticket (its key retired): afresh */
		cephx_ticket_clear(&w->auth_ticket);
		ret = mon_auth_any(w, &step);
	}
	if (ret) {
		/* (each try holds the worker's thread: fewer while the monitors are away) */
		w->renew_at = now + (w->renew_failures < 4 ? 5ULL << w->renew_failures : 60) *
					    1000000000ULL;
		if (!w->renew_failures++ || w->renew_failures % 20 == 0)
			azbuse_log(
				AZBUSE_LOG_WARN,
				"engine rbd: %s: own RADOS path: cephx tickets from the monitors: "
				"%s: %s",
				w->name, step, strerror(-ret));
		return ret;
	}
	life = w->auth_ticket.validity_s < w->osd_ticket.validity_s ? w->auth_ticket.validity_s
								    : w->osd_ticket.validity_s;
	if (life < OSDW_MIN_TICKET_S)
		life = OSDW_MIN_TICKET_S;
	w->renew_at = now + (uint64_t)life * 750000000ULL;
	w->auth_expires_at = now + (uint64_t)w->auth_ticket.validity_s * 1000000000ULL;
	w->renew_failures = 0;
	azbuse_log(AZBUSE_LOG_INFO,
		   "engine rbd: %s: own RADOS path: cephx tickets %s for %u s (global id %" PRIu64
		   ")",
		   w->name, w->nr_logins++ ? "renewed" : "from the monitors", life, w->gid);
	return 0;
}

/*
 * Read the OSD map (epoch, pool, OSDs' addresses); a new epoch forgets the
 * PGs' primaries. 1 if the epoch changed, 0 if not, or -errno.
 */
static int map_refresh(struct osdw *w)
{
	json_object *map, *pools, *osds, *p;
	uint32_t epoch, pg_num = 0;
	size_t i;
	int ret;

	ret = mon_json(w, "{\"prefix\": \"osd dump\", \"format\": \"json\"}", &map);
	if (ret < 0)
		return ret;
	w->unreachable = 0;
	ret = -ENOENT;
	epoch = (uint32_t)json_int(map, "epoch");
	if (json_object_object_get_ex(map, "pools", &pools))
		for (i = 0; i < json_object_array_length(pools); i++) {
			p = json_object_array_get_idx(pools, i);
			if (json_int(p, "pool") == w->pool) {
				pg_num = (uint32_t)json_int(p, "pg_num");
				snprintf(w->pool_name, sizeof(w->pool_name), "%s",
					 json_object_get_string(
						 json_object_object_get(p, "pool_name")));
			}
		}
	if (!pg_num || !json_object_object_get_ex(map, "osds", &osds))
		goto out;
	if (pg_num != w->pg_num) {
		int *primary = realloc(w->primary, pg_num * sizeof(*primary));

		ret = -ENOMEM;
		if (!primary)
			goto out;
		w->primary = primary;
		w->pg_num = pg_num;
		w->pg_mask = 1;
		while (w->pg_mask < pg_num)
			w->pg_mask <<= 1;
		w->pg_mask--;
		w->epoch = 0; /* (forget every primary below) */
	}
	for (i = 0; i < json_object_array_length(osds); i++) {
		json_object *osd = json_object_array_get_idx(osds, i);
		int64_t id = json_int(osd, "osd");
		struct osdw_osd *o;
		struct sockaddr_in sin;
		uint32_t nonce = 0;

		if (id < 0 || id >= OSDW_MAX_OSDS)
			continue;
		if ((unsigned)id >= w->nr_osds) {
			struct osdw_osd *more = realloc(w->osds, (size_t)(id + 1) * sizeof(*more));
			unsigned *corked, j;

			ret = -ENOMEM;
			if (!more)
				goto out;
			for (j = w->nr_osds; j <= id; j++) {
				memset(&more[j], 0, sizeof(more[j]));
				more[j].fd = -1;
			}
			w->osds = more;
			corked = realloc(w->corked, (size_t)(id + 1) * sizeof(*corked));
			if (!corked)
				goto out;
			w->corked = corked;
			w->nr_osds = (unsigned)id + 1;
		}
		o = &w->osds[id];
		o->up = json_int(osd, "up") == 1 && !msgr2_addr_from_json(osd, &sin, &nonce);
		if (json_int(osd, "up") == 1 && !o->up)
			w->unreachable++; /* (up, without an IPv4 msgr2 address) */
		if (o->up && (memcmp(&sin, &o->addr, sizeof(sin)) || nonce != o->nonce)) {
			osd_disconnect(w, o); /* (restarted: a new address) */
			o->addr = sin;
			o->nonce = nonce;
		}
	}
	ret = epoch != w->epoch;
	if (ret)
		for (i = 0; i < w->pg_num; i++)
			w->primary[i] = -1;
	w->epoch = epoch;
	w->map_stale = false;
out:
	json_object_put(map);
	return ret;
}

/*
 * The acting primary of PG pg, which holds oid (asked of the monitors,
 * `osd map POOL OID`, once per PG and epoch), or -errno: -EAGAIN while the
 * PG has none (asked again after OSDW_UNSERVED_NS, not at every turn).
 */
static int pg_primary(struct osdw *w, uint32_t pg, const char *oid)
{
	json_object *reply, *v;
	char cmd[600], want[40];
	uint64_t now;
	int ret;

	if (w->primary[pg] >= 0)
		return w->primary[pg];
	now = now_ns();
	if (w->primary[pg] == -2 && now < w->unserved_until)
		return -EAGAIN;
	snprintf(cmd, sizeof(cmd),
		 "{\"prefix\": \"osd map\", \"pool\": \"%s\", \"object\": \"%s\", "
		 "\"format\": \"json\"}",
		 w->pool_name, oid);
	ret = mon_json(w, cmd, &reply);
	if (ret < 0)
		return ret;
	/* (our placement must be the cluster's: a PG we name wrongly is never served) */
	snprintf(want, sizeof(want), "%" PRId64 ".%" PRIx32, w->pool, pg);
	if (!json_object_object_get_ex(reply, "pgid", &v) ||
	    strcmp(json_object_get_string(v), want)) {
		w->broken = true;
		azbuse_log(
			AZBUSE_LOG_ERR,
			"engine rbd: %s: own RADOS path: %s placed in PG %s, the cluster says %s",
			w->name, oid, want, v ? json_object_get_string(v) : "nothing");
		ret = -EPROTO;
	} else {
		ret = (int)json_int(reply, "acting_primary");
		if (ret < 0 || (unsigned)ret >= w->nr_osds)
			ret = -EAGAIN;
	}
	if ((uint32_t)json_int(reply, "epoch") > w->epoch)
		w->map_stale = true; /* (the map moved meanwhile: read it again) */
	json_object_put(reply);
	if (ret >= 0)
		w->primary[pg] = ret;
	else if (ret == -EAGAIN) {
		w->primary[pg] = -2;
		w->unserved_until = now + OSDW_UNSERVED_NS;
	}
	return ret;
}

/* ops lists */

static void op_unlink(struct osdw_op **list, struct osdw_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		*list = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static void op_push(struct osdw_op **list, struct osdw_op *op)
{
	op->prev = NULL;
	op->next = *list;
	if (*list)
		(*list)->prev = op;
	*list = op;
}

/* connections */

static int epoll_mod(struct osdw *w, struct osdw_osd *o, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0),
				  .data.u64 = (uint64_t)(o - w->osds) + 2 };

	if (o->wants_out == out)
		return 0;
	o->wants_out = out;
	return epoll_ctl(w->epoll_fd, EPOLL_CTL_MOD, o->fd, &ev) ? -errno : 0;
}

/* Close o's connection: what it had in flight waits to be sent again. */
static void osd_disconnect(struct osdw *w, struct osdw_osd *o)
{
	struct osdw_op *op;

	if (o->fd >= 0) {
		epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, o->fd, NULL);
		close(o->fd);
		o->fd = -1;
	}
	bytes_clear(&o->in);
	bytes_clear(&o->out);
	o->wants_out = false;
	while ((op = o->ops)) {
		op_unlink(&o->ops, op);
		op->osd = -1;
		op_push(&w->waiting, op);
	}
}

static void osd_failed(struct osdw *w, struct osdw_osd *o, const char *step, int err)
{
	unsigned id = (unsigned)(o - w->osds);

	if (!o->failures++ || o->failures % 50 == 0)
		azbuse_log(AZBUSE_LOG_WARN, "engine rbd: %s: osd.%u: %s: %s (ops go again)",
			   w->name, id, step, strerror(-err));
	osd_disconnect(w, o);
	o->retry_at = now_ns() + (o->failures > 10 ? 1000 : 100 * o->failures) * 1000000ULL;
	w->map_stale = true;
}

static int osd_connect(struct osdw *w, struct osdw_osd *o)
{
	const char *step = "connecting";
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)(o - w->osds) + 2 };
	int ret;

	ret = tcp_connect(&o->addr);
	o->fd = ret < 0 ? -1 : ret;
	ret = ret < 0 ? ret : 0;
	o->out_seq = o->in_seq = 0;
	bytes_clear(&o->in);
	bytes_clear(&o->out);
	if (!ret)
		ret = osd_handshake(w, o, &step);
	if (!ret) {
		o->wants_out = false;
		ret = epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, o->fd, &ev) ? -errno : 0;
	}
	if (ret) {
		if (ret == -EACCES && w->cephx && !w->renew_failures &&
		    w->renew_at > w->login_tried_at + OSDW_RELOGIN_NS)
			/* (a ticket it no longer takes: new ones first, not more than every 5 s) */
			w->renew_at = w->login_tried_at + OSDW_RELOGIN_NS;
		if (ret == -EPROTONOSUPPORT || (ret == -EACCES && !w->cephx)) {
			if (!w->broken)
				azbuse_log(AZBUSE_LOG_WARN,
					   "engine rbd: %s: osd.%u refuses what the own RADOS path "
					   "speaks (%s: %s): objects through librados from now",
					   w->name, (unsigned)(o - w->osds), step, strerror(-ret));
			w->broken = true;
		}
		osd_failed(w, o, step, ret);
		return ret;
	}
	o->failures = 0;
	return 0;
}

/*
 * Queue a message's pieces in o->out, to go out with the others of this
 * turn in one send at the end of osdw_service (fewer system calls and
 * fewer, fuller segments than one send per op).
 */
static int osd_queue(struct osdw *w, struct osdw_osd *o, const struct iovec *iov, int nr)
{
	int i, ret;

	for (i = 0; i < nr; i++) {
		ret = bytes_append(&o->out, iov[i].iov_base, iov[i].iov_len);
		if (ret)
			return ret;
	}
	if (!o->corked && !o->wants_out) {
		o->corked = true;
		w->corked[w->nr_corked++] = (unsigned)(o - w->osds);
	}
	return 0;
}

/* Queue bytes: send what the socket takes now, keep the rest for EPOLLOUT. */
static int osd_send(struct osdw *w, struct osdw_osd *o, struct iovec *iov, int nr)
{
	size_t total = 0, sent;
	ssize_t n = 0;
	int i, ret;

	for (i = 0; i < nr; i++)
		total += iov[i].iov_len;
	if (!bytes_size(&o->out)) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)nr };

		do
			n = sendmsg(o->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (n < 0)
			n = 0;
	}
	if ((size_t)n == total)
		return 0;
	sent = (size_t)n;
	for (i = 0; i < nr; i++) { /* the rest, copied */
		if (sent >= iov[i].iov_len) {
			sent -= iov[i].iov_len;
			continue;
		}
		ret = bytes_append(&o->out, (char *)iov[i].iov_base + sent, iov[i].iov_len - sent);
		if (ret)
			return ret;
		sent = 0;
	}
	return epoll_mod(w, o, true);
}

static int osd_flush_out(struct osdw *w, struct osdw_osd *o)
{
	ssize_t n;

	while (bytes_size(&o->out)) {
		n = send(o->fd, bytes_data(&o->out), bytes_size(&o->out),
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -errno;
		bytes_consume(&o->out, (size_t)n);
	}
	return epoll_mod(w, o, false);
}

/* MOSDOp */

static size_t op_front(struct osdw *w, struct osdw_osd *o, struct osdw_op *op, uint32_t pg,
		       unsigned char *out)
{
	struct enc e = { out };
	struct timespec mtime;
	uint32_t i, flags;

	flags = (op->write ? OSD_FLAG_WRITE : OSD_FLAG_READ) | OSD_FLAG_ONDISK |
		OSD_FLAG_KNOWN_REDIR | (op->attempts ? OSD_FLAG_RETRY : 0);
	/* spg_t: pg_t (v1: pool, seed, preferred -1) and shard (none) */
	put8(&e, 1);
	put8(&e, 1);
	put32(&e, 18);
	put8(&e, 1);
	put64(&e, (uint64_t)w->pool);
	put32(&e, pg);
	put32(&e, 0xffffffff);
	put8(&e, 0xff);
	put32(&e, op->hash); /* the raw PG */
	put32(&e, w->epoch);
	put32(&e, flags);
	put8(&e, 2); /* osd_reqid_t: zeros, the OSD takes ours (name, tid) */
	put8(&e, 2);
	put32(&e, 21);
	memset(e.p, 0, 21 + 24); /* and a blkin trace of zeros */
	e.p += 21 + 24;
	put32(&e, 0); /* client_inc */
	clock_gettime(CLOCK_REALTIME, &mtime);
	put32(&e, op->write ? (uint32_t)mtime.tv_sec : 0);
	put32(&e, op->write ? (uint32_t)mtime.tv_nsec : 0);
	put8(&e, 5); /* object_locator_t v5: pool, preferred, key, namespace */
	put8(&e, 4);
	put32(&e, 20);
	put64(&e, (uint64_t)w->pool);
	put32(&e, 0xffffffff);
	put32(&e, 0);
	put32(&e, 0);
	put32(&e, op->oid_len);
	putmem(&e, op->oid, op->oid_len);
	put16(&e, 1); /* one op */
	put16(&e, op->write ? OSD_OP_WRITE : OSD_OP_READ);
	put32(&e, 0);
	put64(&e, op->off);
	put64(&e, op->len);
	put64(&e, 0); /* truncate size, seq */
	put32(&e, 0);
	put32(&e, op->write ? op->len : 0);
	put64(&e, NOSNAP);
	put64(&e, op->write ? op->snap_seq : 0);
	put32(&e, op->write ? op->nr_snaps : 0);
	for (i = 0; op->write && i < op->nr_snaps; i++)
		put64(&e, op->snaps[i]);
	put32(&e, op->attempts);
	put64(&e, o->peer_features);
	return (size_t)(e.p - out);
}

static size_t op_front_max(const struct osdw_op *op)
{
	return 256 + op->oid_len + 8 * (size_t)op->nr_snaps;
}

static void op_end(struct osdw *w, struct osdw_op *op, int result);

/* Send op to its PG's primary (connecting first); on failure it waits. */
static void op_send(struct osdw *w, struct osdw_op *op)
{
	uint32_t pg = osdw_stable_mod(op->hash, w->pg_num, w->pg_mask);
	unsigned char head[PREAMBLE_LEN + HEADER2_LEN + 4], epi[EPILOGUE_LEN], hdr[HEADER2_LEN];
	uint32_t lens[4], crcs[4] = { 0 };
	struct osdw_osd *o;
	struct iovec iov[4];
	unsigned char *front;
	struct enc e = { hdr };
	size_t front_len;
	int osd, ret;

	osd = w->broken ? -EPROTO : pg_primary(w, pg, op->oid);
	if (osd == -EPROTO) {
		op_end(w, op, -EPROTO); /* (for the caller to take elsewhere) */
		return;
	}
	if (osd < 0 || !w->osds[osd].up)
		goto wait;
	o = &w->osds[osd];
	if (o->fd < 0 && (now_ns() < o->retry_at || osd_connect(w, o)))
		goto wait;
	front = malloc(op_front_max(op));
	if (!front)
		goto wait;
	front_len = op_front(w, o, op, pg, front);
	lens[0] = HEADER2_LEN;
	lens[1] = (uint32_t)front_len;
	lens[2] = 0;
	lens[3] = op->write ? op->len : 0;
	put64(&e, ++o->out_seq);
	put64(&e, op->tid);
	put16(&e, MSG_OSD_OP);
	put16(&e, 127); /* priority */
	put16(&e, 8);	/* MOSDOp v8 */
	put32(&e, 0);
	put16(&e, (uint16_t)op->off);
	put64(&e, o->in_seq);
	put8(&e, 0);
	put16(&e, 3); /* compat version */
	put16(&e, 0);
	frame_head(head, TAG_MESSAGE, lens, hdr);
	crcs[1] = osdw_crc32c(0xffffffff, front, front_len);
	crcs[2] = 0xffffffff;
	crcs[3] = op->write ? osdw_crc32c(0xffffffff, op->buf, op->len) : 0;
	frame_epilogue(epi, lens, crcs);
	iov[0] = (struct iovec){ head, sizeof(head) };
	iov[1] = (struct iovec){ front, front_len };
	iov[2] = (struct iovec){ op->buf, op->write ? op->len : 0 };
	iov[3] = (struct iovec){ epi, sizeof(epi) };
	op->osd = osd;
	op->sent_at = now_ns();
	if (op->attempts++)
		w->nr_resent++;
	op_push(&o->ops, op);
	ret = osd_queue(w, o, iov, 4);
	free(front);
	if (ret)
		osd_failed(w, o, "sending", ret); /* (op waits again) */
	return;
wait:
	op->osd = -1;
	op->sent_at = now_ns();
	op_push(&w->waiting, op);
}

/* replies */

static struct osdw_op *find_op(struct osdw_osd *o, uint64_t tid)
{
	struct osdw_op *op;

	for (op = o->ops; op; op = op->next)
		if (op->tid == tid)
			return op;
	return NULL;
}

static void op_end(struct osdw *w, struct osdw_op *op, int result)
{
	void *cookie = op->cookie;

	free(op->snaps);
	op->snaps = NULL;
	op->next = w->free_ops;
	w->free_ops = op;
	w->inflight--;
	w->done(cookie, result);
}

/* An MOSDOpReply: complete its op. -EBADMSG if it cannot be read. */
static int handle_reply(struct osdw *w, struct osdw_osd *o, const struct frame *f)
{
	const unsigned char *p = f->seg[1], *end = p + f->len[1];
	struct osdw_op *op = find_op(o, get64(f->seg[0] + 8));
	uint32_t len, epoch, nr_ops, outdata;
	int32_t result;

	if (end - p < 4)
		return -EBADMSG;
	len = le32_at(p);
	p += 4;
	if ((size_t)(end - p) < (size_t)len + 17 + 8 + 4 + 12 + 4 + 4)
		return -EBADMSG;
	p += len + 17 + 8; /* oid, pgid, flags */
	result = (int32_t)le32_at(p);
	p += 4 + 12; /* result, bad replay version */
	epoch = le32_at(p);
	p += 4;
	nr_ops = le32_at(p);
	p += 4;
	if (nr_ops != 1 || end - p < 38)
		return -EBADMSG;
	outdata = le32_at(p + 34);
	if (epoch > w->epoch)
		w->map_stale = true;
	if (!op)
		return 0; /* (a reply to an earlier send of an op that ended) */
	if (result >= 0 && !op->write && (outdata > f->len[3] || outdata > op->len))
		return -EBADMSG; /* (the op stays on o: sent again with o's others) */
	op_unlink(&o->ops, op);
	if (result == -EAGAIN || result == -ESTALE) { /* (not here: the map moved) */
		op->osd = -1;
		op_push(&w->waiting, op);
		w->map_stale = true;
		return 0;
	}
	if (result >= 0 && !op->write) {
		memcpy(op->buf, f->seg[3], outdata);
		result = (int32_t)outdata;
	} else if (result >= 0) {
		result = 0;
	}
	op_end(w, op, result);
	return 0;
}

static int handle_frame(struct osdw *w, struct osdw_osd *o, const struct frame *f)
{
	unsigned type;

	switch (f->tag) {
	case TAG_MESSAGE:
		if (f->len[0] < HEADER2_LEN)
			return -EBADMSG;
		o->in_seq = get64(f->seg[0]);
		type = get16(f->seg[0] + 16);
		if (type == MSG_OSD_OPREPLY)
			return handle_reply(w, o, f);
		if (type == MSG_OSD_MAP || type == MSG_OSD_BACKOFF)
			w->map_stale = true;
		return 0; /* (nothing else is for us) */
	case TAG_KEEPALIVE2: {
		unsigned char buf[PREAMBLE_LEN + 8 + 4];
		uint32_t lens[4] = { 8, 0, 0, 0 };
		struct iovec iov;

		if (f->len[0] < 8)
			return -EBADMSG;
		iov.iov_base = buf;
		iov.iov_len = frame_head(buf, TAG_KEEPALIVE2_ACK, lens, f->seg[0]);
		return osd_send(w, o, &iov, 1);
	}
	case TAG_KEEPALIVE2_ACK:
	case TAG_ACK:
		return 0;
	default:
		return -EPROTO;
	}
}

/* Take what o's socket has: every whole frame in it. */
static int osd_receive(struct osdw *w, struct osdw_osd *o)
{
	struct frame f;
	bool more;
	ssize_t n;
	int ret;

	for (;;) {
		ret = bytes_reserve(&o->in, 65536);
		if (ret)
			return ret;
		n = recv(o->fd, o->in.p + o->in.len, o->in.cap - o->in.len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return -errno;
		if (!n)
			return -ECONNRESET;
		o->in.len += (size_t)n;
		more = o->in.len == o->in.cap; /* (a short read emptied the socket) */
		for (;;) {
			n = frame_parse(bytes_data(&o->in), bytes_size(&o->in), &f);
			if (n < 0)
				return (int)n;
			if (!n)
				break;
			ret = handle_frame(w, o, &f);
			if (ret)
				return ret;
			if (o->fd < 0)
				return 0;
			bytes_consume(&o->in, (size_t)n);
		}
		if (!more)
			return 0;
	}
}

/*
 * After reading the map: send again what waits, and each op whose PG's
 * primary moved or, with all (a new epoch), every op in flight. An OSD
 * drops without a word an op that names an epoch older than its PG's last
 * change of primary or split (this client says it resends on a split), so
 * after a new epoch nothing is left to its first send; an OSD that got
 * both answers the second from its log.
 */
static void resend_moved(struct osdw *w, bool all)
{
	struct osdw_op *op, *next, *list = w->waiting;
	unsigned i;

	w->waiting = NULL;
	for (i = 0; i < w->nr_osds; i++)
		for (op = w->osds[i].ops; op; op = next) {
			uint32_t pg = osdw_stable_mod(op->hash, w->pg_num, w->pg_mask);

			next = op->next;
			if (!all && pg_primary(w, pg, op->oid) == (int)i)
				continue;
			op_unlink(&w->osds[i].ops, op);
			op_push(&list, op);
		}
	for (op = list; op; op = next) {
		next = op->next;
		op->prev = op->next = NULL;
		op_send(w, op);
	}
}

/*
 * Every tick: an OSD that left an op unanswered for OSDW_OP_TIMEOUT_NS
 * loses its connection (half-open, or its ops dropped), and its ops go
 * again, same tids, on a new one after a map read. (Not again on the same
 * connection: ops still queued there would be queued twice.)
 */
static void check_timeouts(struct osdw *w)
{
	uint64_t now = now_ns();
	struct osdw_op *op;
	unsigned i;

	for (i = 0; i < w->nr_osds; i++)
		for (op = w->osds[i].ops; op; op = op->next)
			if (now - op->sent_at >= OSDW_OP_TIMEOUT_NS) {
				osd_failed(w, &w->osds[i], "no reply in 10 s", -ETIMEDOUT);
				break;
			}
}

unsigned osdw_service(struct osdw *w)
{
	struct epoll_event ev[16];
	uint64_t ticks;
	int n, i, ret;

	n = epoll_wait(w->epoll_fd, ev, 16, 0);
	for (i = 0; i < n; i++) {
		struct osdw_osd *o;

		if (ev[i].data.u64 == 0) { /* the timer */
			if (read(w->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				azbuse_log(AZBUSE_LOG_WARN, "engine rbd: reading a timerfd: %s",
					   strerror(errno));
			check_timeouts(w);
			if (w->cephx && now_ns() >= w->renew_at)
				cephx_login(w);
			continue;
		}
		if (ev[i].data.u64 == 1) {
			w->watched_fired = true; /* (the engine's fd: its own to read) */
			continue;
		}
		o = &w->osds[ev[i].data.u64 - 2];
		if (o->fd < 0)
			continue;
		ret = 0;
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			ret = osd_receive(w, o);
		if (!ret && o->fd >= 0 && (ev[i].events & EPOLLOUT))
			ret = osd_flush_out(w, o);
		if (ret)
			osd_failed(w, o, "receiving", ret);
	}
	if (w->map_stale && now_ns() >= w->map_read_at) {
		/* (at most once a tick: an OSD that stays down sets it at each try) */
		w->map_read_at = now_ns() + OSDW_TICK_NS;
		ret = map_refresh(w);
		if (ret < 0 && !w->map_failures++)
			azbuse_log(AZBUSE_LOG_WARN,
				   "engine rbd: %s: reading the OSD map: %s (ops go with the map "
				   "they have; tried again)",
				   w->name, strerror(-ret));
		if (ret >= 0)
			w->map_failures = 0;
		resend_moved(w, ret > 0);
	} else if (w->waiting) {
		struct osdw_op *op, *next, *list = w->waiting;

		w->waiting = NULL;
		for (op = list; op; op = next) {
			next = op->next;
			op->prev = op->next = NULL;
			op_send(w, op);
		}
	}
	osdw_flush(w);
	return w->inflight;
}

void osdw_flush(struct osdw *w)
{
	struct osdw_osd *o;
	int ret;

	while (w->nr_corked) {
		o = &w->osds[w->corked[--w->nr_corked]];
		o->corked = false;
		if (o->fd < 0 || o->wants_out)
			continue; /* (gone, or EPOLLOUT sends it) */
		ret = osd_flush_out(w, o);
		if (!ret && bytes_size(&o->out))
			ret = epoll_mod(w, o, true);
		if (ret)
			osd_failed(w, o, "sending", ret);
	}
}

bool osdw_take_watched(struct osdw *w)
{
	bool fired = w->watched_fired;

	w->watched_fired = false;
	return fired;
}

static struct osdw_op *op_new(struct osdw *w, const char *oid, void *cookie)
{
	size_t len = strlen(oid);
	struct osdw_op *op;

	if (len >= OSDW_MAX_OIDS)
		return NULL;
	op = w->free_ops;
	if (op)
		w->free_ops = op->next;
	else if (!(op = malloc(sizeof(*op))))
		return NULL;
	memset(op, 0, sizeof(*op));
	memcpy(op->oid, oid, len);
	op->oid_len = (uint32_t)len;
	op->hash = osdw_str_hash(oid, len);
	op->tid = ++w->next_tid;
	op->cookie = cookie;
	op->osd = -1;
	return op;
}

static void op_start(struct osdw *w, struct osdw_op *op)
{
	w->inflight++;
	w->nr_ops++;
	if (w->waiting)
		op_push(&w->waiting, op); /* (after what waits) */
	else
		op_send(w, op);
}

int osdw_read(struct osdw *w, const char *oid, uint64_t off, uint32_t len, void *buf, void *cookie)
{
	struct osdw_op *op = op_new(w, oid, cookie);

	if (!op)
		return -ENOMEM;
	op->off = off;
	op->len = len;
	op->buf = buf;
	op_start(w, op);
	return 0;
}

int osdw_write(struct osdw *w, const char *oid, uint64_t off, uint32_t len, const void *buf,
	       uint64_t snap_seq, const uint64_t *snaps, uint32_t nr_snaps, void *cookie)
{
	struct osdw_op *op = op_new(w, oid, cookie);

	if (!op)
		return -ENOMEM;
	if (nr_snaps) {
		op->snaps = malloc(nr_snaps * sizeof(*snaps));
		if (!op->snaps) {
			op->next = w->free_ops;
			w->free_ops = op;
			return -ENOMEM;
		}
		memcpy(op->snaps, snaps, nr_snaps * sizeof(*snaps));
	}
	op->write = true;
	op->off = off;
	op->len = len;
	op->buf = (void *)buf;
	op->snap_seq = snap_seq;
	op->nr_snaps = nr_snaps;
	op_start(w, op);
	return 0;
}

bool osdw_broken(const struct osdw *w)
{
	return w->broken;
}

unsigned osdw_inflight(const struct osdw *w)
{
	return w ? w->inflight : 0;
}

int osdw_fd(const struct osdw *w)
{
	return w->epoll_fd;
}

int osdw_watch_fd(struct osdw *w, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };

	return epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* How the client's configuration has it authenticate (cephx if it may): 0 or -EACCES. */
static int osdw_auth_method(struct osdw *w)
{
	char val[256];

	if (rados_conf_get(w->cluster, "auth_client_required", val, sizeof(val)) < 0)
		return -EACCES;
	w->cephx = strstr(val, "cephx") != NULL;
	return w->cephx || strstr(val, "none") ? 0 : -EACCES;
}

/*
 * Shake hands with one OSD (the first that is up): a cluster that wants
 * what this client does not speak (cephx, msgr1 only) says so now, not by
 * leaving every op waiting. 0 also when no OSD can be reached now (they
 * are tried again with the ops).
 */
static int osdw_try_osd(struct osdw *w)
{
	int osd, ret;

	for (osd = 0; (unsigned)osd < w->nr_osds && !w->osds[osd].up; osd++)
		;
	if ((unsigned)osd == w->nr_osds)
		return 0;
	ret = osd_connect(w, &w->osds[osd]);
	if (ret == -EACCES || ret == -EPROTONOSUPPORT || ret == -EPROTO)
		return ret;
	return 0;
}

struct osdw *osdw_open(rados_t cluster, int64_t pool_id, const char *entity, uint64_t gid,
		       osdw_done_fn done, const char *name, int *err)
{
	struct itimerspec tick = { { 0, OSDW_TICK_NS }, { 0, OSDW_TICK_NS } };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
	struct osdw *w = calloc(1, sizeof(*w));
	const char *step = "out of memory";
	int ret = -ENOMEM;

	if (!w)
		goto fail;
	w->cluster = cluster;
	w->pool = pool_id;
	w->gid = gid;
	w->done = done;
	w->name = name;
	w->epoll_fd = w->timer_fd = -1;
	snprintf(w->entity, sizeof(w->entity), "%s", entity);
	step = "an epoll fd";
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->epoll_fd < 0 || w->timer_fd < 0 || timerfd_settime(w->timer_fd, 0, &tick, NULL) ||
	    epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->timer_fd, &ev)) {
		ret = -errno;
		goto fail_close;
	}
	step = "auth_client_required names neither cephx nor none";
	ret = osdw_auth_method(w);
	if (ret < 0)
		goto fail_close;
	step = "reading the key of the client (key, keyfile or keyring)";
	if (w->cephx) {
		ret = cephx_load_key(w);
		if (ret < 0)
			goto fail_close;
	}
	step = "reading the OSD map";
	ret = map_refresh(w);
	if (ret < 0)
		goto fail_close;
	step = "getting cephx tickets from the monitors";
	if (w->cephx) {
		w->gid = 0; /* (the monitors give one) */
		ret = cephx_login(w);
		if (ret < 0)
			goto fail_close;
	}
	step = "an OSD has no IPv4 msgr2 address";
	ret = -EAFNOSUPPORT;
	if (w->unreachable)
		goto fail_close;
	step = "trying an OSD";
	ret = osdw_try_osd(w);
	if (ret < 0)
		goto fail_close;
	*err = 0;
	return w;

fail_close:
	osdw_close(w);
fail:
	azbuse_log(AZBUSE_LOG_WARN, "engine rbd: %s: own RADOS path: %s: %s", name, step,
		   strerror(-ret));
	*err = ret;
	return NULL;
}

void osdw_close(struct osdw *w)
{
	struct osdw_op *op;
	unsigned i;

	if (!w)
		return;
	if (w->inflight)
		azbuse_log(AZBUSE_LOG_WARN,
			   "engine rbd: %s: own RADOS path: %u ops still in flight", w->name,
			   w->inflight);
	else
		azbuse_log(AZBUSE_LOG_INFO,
			   "engine rbd: %s: own RADOS path: %" PRIu64 " ops, %" PRIu64
			   " sent again",
			   w->name, w->nr_ops, w->nr_resent);
	for (i = 0; i < w->nr_osds; i++) {
		osd_disconnect(w, &w->osds[i]);
		free(w->osds[i].in.p);
		free(w->osds[i].out.p);
	}
	while ((op = w->waiting)) {
		op_unlink(&w->waiting, op);
		free(op->snaps);
		free(op);
	}
	while ((op = w->free_ops)) {
		w->free_ops = op->next;
		free(op);
	}
	if (w->epoll_fd >= 0)
		close(w->epoll_fd);
	if (w->timer_fd >= 0)
		close(w->timer_fd);
	free(w->osds);
	free(w->corked);
	free(w->primary);
	cephx_ticket_clear(&w->auth_ticket);
	cephx_ticket_clear(&w->osd_ticket);
	explicit_bzero(&w->key, sizeof(w->key));
	free(w);
}

uint64_t osdw_gid(const struct osdw *w)
{
	return w->gid;
}
