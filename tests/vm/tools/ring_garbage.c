// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * ring_garbage.c - a malicious worker. Adds a device through the ioctls
 * (1 queue, depth 16), attaches, mmaps and starts it, and serves it from a
 * memory store while child processes run verified O_DIRECT I/O on it. Between
 * correct completions it writes garbage into its rings: cq_tail far ahead,
 * behind or half the u32 space away, CQEs with random tags, tags >= nr_slots,
 * stale and future seqs, duplicates in one batch and across batches, tags it
 * never took, random results; it scribbles sq_head and the kernel-owned
 * header fields (sq_tail, cq_head, kflags, posted, fetched) before COMMITs,
 * completes some requests with error results of every sign and size, and
 * never completes two requests at all.
 *
 * The worker predicts every COMMIT exactly (the kernel accepts a completion
 * iff it names a tag the worker holds with its current seq, which the worker
 * can simulate because it drains the submission ring before each COMMIT) and
 * checks the queue's rejected, requests and bytes counters after each one.
 * The I/O children check the data they read and the errno of every failed
 * request. At the end the device is removed with two requests still held:
 * removal must finish in bounded time and fail them with EIO.
 *
 *   azbuse-ring-garbage [--seed N] [--seconds N] [--dev-id N]
 *
 * Prints one line per check ("ok" or "FAIL"), a summary, and exits 1 if any
 * check failed. Run as root inside the test VM (61-ring-garbage.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/uapi.h>

#include "testlib.h"

#define STATIC_CHECK(cond) _Static_assert(cond, #cond)
AZBUSE_ABI_CHECKS(STATIC_CHECK);

#define DEV_SIZE (16ULL << 20)
#define DEPTH 16
#define SLOT_BYTES (16U << 10)
#define BLK 4096ULL
#define IO_TIMEOUT_MS 2000 /* the held requests outlive it: counted as timeouts */

/* Layout of the device: NR_IO regions of verified I/O, then the black hole. */
#define NR_IO 3
#define REGION_BYTES (4ULL << 20)
#define POISON_BLOCKS 16 /* the last blocks of each region fail with poison results */
#define NORMAL_BLOCKS (REGION_BYTES / BLK - POISON_BLOCKS)
#define HOLE_OFF (NR_IO * REGION_BYTES) /* requests here are never completed */
#define HOLE_BYTES (64ULL << 10)
#define NR_HOLE 2 /* children stuck in the hole: one read, one write */

#define CHILD_EXIT_MS 20000
#define REMOVE_MAX_MS 30000

/* ---- reporting --------------------------------------------------------------- */

/* A failed check inside a loop: reported (the first few times) and counted. */
static unsigned loop_failures;
static void loop_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void loop_fail(const char *fmt, ...)
{
	va_list ap;

	if (++loop_failures > 20)
		return;
	printf("FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void die(const char *what)
{
	printf("FAIL %s: %s (cannot continue)\n", what, strerror(errno));
	exit(1);
}

static int xioctl(int fd, unsigned long cmd, unsigned long arg)
{
	return ioctl(fd, cmd, arg) < 0 ? errno : 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- data and poison: what the store holds, what the children expect ------------- */

/* Byte i of 4k block `blk` written in generation `gen` (0: the store's initial content). */
static uint8_t pattern_byte(uint64_t blk, uint32_t gen, size_t i)
{
	uint32_t h = (uint32_t)(blk * 2654435761U) ^ (gen * 40503U + 0x5bd1e995U);

	return (uint8_t)(h + i * 131 + (i >> 8) + (h >> 13));
}

static void fill_block(unsigned char *buf, uint64_t blk, uint32_t gen)
{
	size_t i;

	for (i = 0; i < BLK; i++)
		buf[i] = pattern_byte(blk, gen, i);
}

static bool block_matches(const unsigned char *buf, uint64_t blk, uint32_t gen)
{
	size_t i;

	for (i = 0; i < BLK; i++)
		if (buf[i] != pattern_byte(blk, gen, i))
			return false;
	return true;
}

/* Results the worker gives requests to poison blocks, and the errno a reader gets. */
static const struct {
	int32_t result;
	int err;
} poison[] = {
	{ -EIO, EIO },
	{ -ENOSPC, ENOSPC },
	{ -EOPNOTSUPP, EOPNOTSUPP },
	{ -ETIMEDOUT, ETIMEDOUT },
	{ -ENODATA, ENODATA },
	{ -EILSEQ, ENODATA },
	{ -EBADMSG, ENODATA },
	{ -EAGAIN, EIO }, /* only a REQ_NOWAIT request may see EAGAIN */
	{ -EPERM, EIO },
	{ -ENOMEM, EIO },
	{ -512, EIO }, /* -ERESTARTSYS must not leak out */
	{ -4095, EIO },
	{ -4096, EIO },
	{ 1, EIO },
	{ 12345, EIO },
	{ INT32_MAX, EIO },
	{ INT32_MIN, EIO },
};
#define NR_POISON (sizeof(poison) / sizeof(poison[0]))

static bool is_poison(uint64_t off)
{
	return off < HOLE_OFF && off % REGION_BYTES >= NORMAL_BLOCKS * BLK;
}

static bool is_hole(uint64_t off)
{
	return off >= HOLE_OFF && off < HOLE_OFF + HOLE_BYTES;
}

/* ---- the I/O children -------------------------------------------------------------- */

struct io_stats {
	uint64_t reads, writes, poisoned;
	uint64_t bad_data, bad_errors;
	char first_error[160];
};

struct shared {
	volatile int stop;
	struct io_stats io[NR_IO];
	volatile int hole_errno[NR_HOLE]; /* -1 until the stuck request returns */
};

static struct shared *shared;
static uint32_t dev_id = 910;
static uint64_t seed;

static void child_error(struct io_stats *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void child_error(struct io_stats *st, const char *fmt, ...)
{
	va_list ap;

	if (st->first_error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(st->first_error, sizeof(st->first_error), fmt, ap);
	va_end(ap);
}

static int open_bdev(int flags)
{
	char path[64];

	snprintf(path, sizeof(path), AZBUSE_BLOCK_PREFIX "%u", dev_id);
	return open(path, flags | O_DIRECT | O_CLOEXEC);
}

/* Random verified 4k reads and writes in region `c` until told to stop. */
static void io_child(unsigned c)
{
	struct io_stats *st = &shared->io[c];
	static uint32_t gen[NORMAL_BLOCKS]; /* UINT32_MAX: unknown after a failed write */
	const uint64_t base = c * REGION_BYTES;
	unsigned char *buf;
	int fd = open_bdev(O_RDWR);

	rng_state = seed ^ (0x1000 + c);
	if (fd < 0 || posix_memalign((void **)&buf, BLK, BLK)) {
		child_error(st, "open: %s", strerror(errno));
		st->bad_errors++;
		_exit(1);
	}
	while (!shared->stop) {
		unsigned r = (unsigned)below(100);
		bool write = chance(50);
		uint64_t b, off;
		ssize_t n;

		if (r < 12) {
			/* a poison block: the worker fails it with a known result */
			b = NORMAL_BLOCKS + below(POISON_BLOCKS);
			off = base + b * BLK;
			if (write)
				fill_block(buf, off / BLK, 1);
			n = write ? pwrite(fd, buf, BLK, (off_t)off)
				  : pread(fd, buf, BLK, (off_t)off);
			if (n >= 0 || errno != poison[(off / BLK) % NR_POISON].err) {
				st->bad_errors++;
				child_error(st, "%s of poison block at %llu: %zd (%s), want %s",
					    write ? "write" : "read", (unsigned long long)off, n,
					    n < 0 ? strerror(errno) : "no error",
					    strerror(poison[(off / BLK) % NR_POISON].err));
			} else {
				st->poisoned++;
			}
			continue;
		}
		b = below(NORMAL_BLOCKS);
		off = base + b * BLK;
		if (write) {
			fill_block(buf, off / BLK, gen[b] + 1);
			n = pwrite(fd, buf, BLK, (off_t)off);
			if (n == BLK) {
				gen[b]++;
				st->writes++;
				continue;
			}
			gen[b] = UINT32_MAX;
		} else {
			memset(buf, 0, BLK);
			n = pread(fd, buf, BLK, (off_t)off);
			if (n == BLK) {
				st->reads++;
				if (gen[b] != UINT32_MAX &&
				    !block_matches(buf, off / BLK, gen[b])) {
					st->bad_data++;
					child_error(st, "read at %llu: wrong data (generation %u)",
						    (unsigned long long)off, gen[b]);
				}
				continue;
			}
		}
		st->bad_errors++;
		child_error(st, "%s at %llu: %zd (%s)", write ? "write" : "read",
			    (unsigned long long)off, n, n < 0 ? strerror(errno) : "short");
	}
	_exit(0);
}

/* One request into the black hole; it returns only when the device goes away. */
static void hole_child(unsigned k)
{
	unsigned char *buf;
	int fd = open_bdev(O_RDWR);
	ssize_t n;

	if (fd < 0 || posix_memalign((void **)&buf, BLK, BLK))
		_exit(1);
	fill_block(buf, HOLE_OFF / BLK + k, 1);
	n = k ? pwrite(fd, buf, BLK, (off_t)(HOLE_OFF + k * BLK))
	      : pread(fd, buf, BLK, (off_t)HOLE_OFF);
	shared->hole_errno[k] = n < 0 ? errno : 0;
	_exit(0);
}

static pid_t spawn(void (*fn)(unsigned), unsigned arg)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fn(arg);
		_exit(0);
	}
	return pid;
}

/* Wait for a child up to ms; its exit status, or -1 if it is still running. */
static int wait_child(pid_t pid, unsigned ms, void (*serve_fn)(void))
{
	uint64_t deadline = now_ms() + ms;
	int status;

	while (now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (serve_fn)
			serve_fn();
		else
			sleep_ms(10);
	}
	return -1;
}

/* ---- the worker ------------------------------------------------------------------- */

enum fate { NORMAL, POISONED, HOLD };

struct held {
	bool active;
	uint32_t seq;
	struct azbuse_sqe sqe;
	enum fate fate;
	uint64_t due; /* batch at which to complete it */
};

/* Kinds of bad completion, with how many were sent. */
enum garbage {
	G_RANDOM,	 /* random tag and seq */
	G_BIG_TAG,	 /* tag >= nr_slots */
	G_STALE_SEQ,	 /* a held tag, wrong seq */
	G_DUP_BATCH,	 /* a valid completion again in the same batch */
	G_DUP_EARLIER,	 /* a completion already accepted in an earlier batch */
	G_NEVER_TAKEN,	 /* a tag the worker does not hold */
	G_BAD_TAIL,	 /* cq_tail too far ahead or behind (one rejection per COMMIT) */
	G_STALE_ENTRIES, /* cq_tail a whole ring ahead: old entries replayed */
	NR_GARBAGE
};
static const char *const garbage_names[NR_GARBAGE] = {
	"random tag and seq",	"tag >= nr_slots", "held tag, wrong seq", "duplicate in batch",
	"duplicate of earlier", "tag not held",	   "impossible cq_tail",  "stale ring entries",
};
static uint64_t garbage_sent[NR_GARBAGE];

static struct {
	int ctl, fd;
	struct azbuse_attach geo;
	struct azbuse_ring_header *hdr;
	struct azbuse_sqe *sq;
	struct azbuse_cqe *cq;
	unsigned char *data;
	unsigned char *store;	 /* the device's content */
	uint32_t sq_head, khead; /* ours, and the kernel's cq_head as we know it */
	struct held held[DEPTH];
	uint32_t last_seq[DEPTH];
	bool seen[DEPTH];
	struct {
		uint32_t tag, seq;
	} history[64]; /* accepted completions */
	unsigned nr_history;
	uint64_t batch;
	uint64_t exp_rejected, exp_requests, exp_bytes; /* the queue's counters, predicted */
	uint64_t commits, scribbles, completed, poisoned_done;
	bool garbage; /* in the garbage phase */
	bool dead;    /* COMMIT said ENODEV */
} w;

static int queue_info(struct azbuse_queue_info *qi)
{
	memset(qi, 0, sizeof(*qi));
	qi->dev_id = dev_id;
	return xioctl(w.ctl, AZBUSE_CTL_QUEUE_INFO, (unsigned long)qi);
}

static unsigned char *slot(uint32_t tag)
{
	return w.data + (size_t)tag * w.geo.slot_bytes;
}

/* Move every submission into `held`, checking it and preparing its data. */
static void drain(void)
{
	uint32_t tail = __atomic_load_n(&w.hdr->sq_tail, __ATOMIC_ACQUIRE);

	if (tail - w.sq_head > w.geo.sq_entries) {
		loop_fail("the kernel's sq_tail %u is %u entries past our sq_head %u", tail,
			  tail - w.sq_head, w.sq_head);
		return;
	}
	while (w.sq_head != tail) {
		struct azbuse_sqe sqe = w.sq[w.sq_head & (w.geo.sq_entries - 1)];
		uint64_t off = sqe.sector * 512;
		struct held *h;

		w.sq_head++;
		if (sqe.tag >= DEPTH || w.held[sqe.tag].active || sqe.len > w.geo.slot_bytes ||
		    off + sqe.len > DEV_SIZE ||
		    (sqe.op != AZBUSE_OP_READ && sqe.op != AZBUSE_OP_WRITE) ||
		    (sqe.flags & AZBUSE_RQ_REQUEUED)) {
			loop_fail(
				"bad submission: tag %u (%s) op %u sector %llu len %u flags 0x%llx",
				sqe.tag,
				sqe.tag < DEPTH && w.held[sqe.tag].active ? "held already" : "free",
				sqe.op, (unsigned long long)sqe.sector, sqe.len,
				(unsigned long long)sqe.flags);
			continue;
		}
		if (w.seen[sqe.tag] && sqe.seq != w.last_seq[sqe.tag] + 1)
			loop_fail("tag %u came back with seq %u after %u", sqe.tag, sqe.seq,
				  w.last_seq[sqe.tag]);
		h = &w.held[sqe.tag];
		h->active = true;
		h->seq = sqe.seq;
		h->sqe = sqe;
		h->fate = is_hole(off) ? HOLD : is_poison(off) ? POISONED : NORMAL;
		h->due = w.batch + (w.garbage ? below(3) : 0);
		w.last_seq[sqe.tag] = sqe.seq;
		w.seen[sqe.tag] = true;
		if (sqe.op == AZBUSE_OP_WRITE && h->fate == NORMAL)
			memcpy(w.store + off, slot(sqe.tag), sqe.len);
		else if (sqe.op == AZBUSE_OP_READ)
			/* garbage until completed: a wrongly accepted completion shows */
			memset(slot(sqe.tag), 0xa5, sqe.len);
	}
	__atomic_store_n(&w.hdr->sq_head, w.sq_head, __ATOMIC_RELEASE);
}

/* One CQE the worker writes, with whether it means it to be accepted. */
struct entry {
	uint32_t tag, seq;
	int32_t result;
	bool valid;
	enum garbage kind;
};

static int32_t random_result(void)
{
	static const int32_t r[] = { 0, 1, -1, -EIO, INT32_MIN, INT32_MAX, -4096, 4096 };

	return chance(50) ? r[below(sizeof(r) / sizeof(r[0]))] : (int32_t)rnd();
}

/* A completion the kernel must reject. */
static bool garbage_entry(struct entry *e, enum garbage kind, const struct entry *batch, unsigned n)
{
	uint32_t t = (uint32_t)below(DEPTH);
	unsigned i, k;

	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->result = random_result();
	switch (kind) {
	case G_RANDOM:
		e->tag = (uint32_t)(chance(50) ? below(DEPTH) : rnd());
		e->seq = (uint32_t)rnd();
		return true;
	case G_BIG_TAG: {
		const uint32_t tags[] = { DEPTH,      DEPTH + 1,	0xffffffff, 0x80000000 | t,
					  0x7fffffff, w.geo.sq_entries, 1U << 16 };

		e->tag = tags[below(sizeof(tags) / sizeof(tags[0]))];
		e->seq = w.held[t].active ? w.held[t].seq : (uint32_t)rnd();
		return true;
	}
	case G_STALE_SEQ:
		for (k = 0; k < DEPTH && !w.held[(t + k) % DEPTH].active; k++)
			;
		if (k == DEPTH)
			return false;
		t = (t + k) % DEPTH;
		e->tag = t;
		switch (below(5)) {
		case 0:
			e->seq = w.held[t].seq - 1;
			break;
		case 1:
			e->seq = w.held[t].seq + 1;
			break;
		case 2:
			e->seq = w.held[t].seq ^ 0x80000000;
			break;
		case 3:
			e->seq = w.held[t].seq - 1000;
			break;
		default:
			e->seq = (uint32_t)rnd();
		}
		return e->seq != w.held[t].seq;
	case G_DUP_BATCH:
		for (i = 0; i < n; i++)
			if (batch[i].valid) {
				e->tag = batch[i].tag;
				e->seq = batch[i].seq;
				e->result = chance(50) ? batch[i].result : random_result();
				return true;
			}
		return false;
	case G_DUP_EARLIER:
		if (!w.nr_history)
			return false;
		i = (unsigned)below(w.nr_history < 64 ? w.nr_history : 64);
		e->tag = w.history[i].tag;
		e->seq = w.history[i].seq;
		return true;
	case G_NEVER_TAKEN:
		for (k = 0; k < DEPTH && w.held[(t + k) % DEPTH].active; k++)
			;
		if (k == DEPTH)
			return false;
		t = (t + k) % DEPTH;
		e->tag = t;
		/* the seq it had, the one it will get next (pending: not fetched), or any */
		e->seq = below(3) == 0	 ? w.last_seq[t]
			 : below(2) == 0 ? w.last_seq[t] + 1
					 : (uint32_t)rnd();
		return true;
	default:
		return false;
	}
}

static void put_cqe(uint32_t pos, uint32_t tag, uint32_t seq, int32_t result)
{
	struct azbuse_cqe *c = &w.cq[pos & (w.geo.cq_entries - 1)];

	c->tag = tag;
	c->seq = seq;
	c->result = result;
	c->flags = 0;
	c->addr = 0;
	c->reserved = 0;
}

/* Check the queue's counters against the prediction; resync after a mismatch. */
static void check_counters(const char *when)
{
	struct azbuse_queue_info qi;
	int ret = queue_info(&qi);

	if (ret) {
		loop_fail("QUEUE_INFO %s: %s", when, strerror(ret));
		return;
	}
	if (qi.rejected != w.exp_rejected || qi.requests != w.exp_requests ||
	    qi.bytes != w.exp_bytes)
		loop_fail("%s (batch %llu): rejected %llu, want %llu; requests %llu, want %llu; "
			  "bytes %llu, want %llu",
			  when, (unsigned long long)w.batch, (unsigned long long)qi.rejected,
			  (unsigned long long)w.exp_rejected, (unsigned long long)qi.requests,
			  (unsigned long long)w.exp_requests, (unsigned long long)qi.bytes,
			  (unsigned long long)w.exp_bytes);
	w.exp_rejected = qi.rejected;
	w.exp_requests = qi.requests;
	w.exp_bytes = qi.bytes;
}

/* A COMMIT with an impossible cq_tail: EINVAL, one rejection, nothing consumed. */
static void bad_tail_commit(void)
{
	uint32_t e = w.geo.cq_entries, tail;
	int ret;

	switch (below(5)) {
	case 0:
		tail = w.khead + e + 1;
		break;
	case 1:
		tail = w.khead + e + 1 + (uint32_t)below(0x7fff0000);
		break;
	case 2:
		tail = w.khead - 1 - (uint32_t)below(2 * e);
		break;
	case 3:
		tail = w.khead + 0x80000000U;
		break;
	default:
		tail = w.khead - e - (uint32_t)below(0x10000);
	}
	__atomic_store_n(&w.hdr->cq_tail, tail, __ATOMIC_RELEASE);
	ret = xioctl(w.fd, AZBUSE_IOC_COMMIT, 0);
	if (ret == ENODEV) {
		w.dead = true;
		return;
	}
	garbage_sent[G_BAD_TAIL]++;
	w.exp_rejected++;
	w.commits++;
	if (ret != EINVAL)
		loop_fail("COMMIT with cq_tail %u (kernel cq_head %u): %s, want EINVAL", tail,
			  w.khead, ret ? strerror(ret) : "success");
	if (__atomic_load_n(&w.hdr->cq_head, __ATOMIC_ACQUIRE) != w.khead)
		loop_fail("COMMIT with a bad cq_tail moved cq_head to %u (was %u)", w.hdr->cq_head,
			  w.khead);
	check_counters("after a bad cq_tail");
}

/*
 * One batch: correct completions of due requests, garbage if in the garbage
 * phase, perhaps a bad cq_tail first and scribbled header fields; then COMMIT
 * and check the counters against the simulation.
 */
static void batch(void)
{
	struct entry e[64];
	unsigned n = 0, i, ng, rejected = 0;
	uint32_t cqn = w.geo.cq_entries, tail, pos;
	uint32_t saved_sq_tail = 0, fake_sq_tail = 0, saved_kflags = 0;
	bool scribble = false, work = false;
	unsigned long timeout;
	int ret;

	if (w.dead) { /* removed: nothing to serve, and COMMIT returns at once */
		sleep_ms(10);
		return;
	}
	w.batch++;
	drain();
	for (i = 0; i < DEPTH && n < cqn / 2; i++) {
		struct held *h = &w.held[i];

		if (!h->active || h->fate == HOLD || h->due > w.batch)
			continue;
		memset(&e[n], 0, sizeof(e[n]));
		e[n].tag = i;
		e[n].seq = h->seq;
		e[n].valid = true;
		e[n].result = h->fate == POISONED
				      ? poison[(h->sqe.sector * 512 / BLK) % NR_POISON].result
				      : 0;
		n++;
	}
	if (w.garbage && chance(60)) {
		ng = 1 + (unsigned)below(4);
		while (ng-- && n < cqn) {
			struct entry g;
			enum garbage kind = (enum garbage)below(G_NEVER_TAKEN + 1);

			if (!garbage_entry(&g, kind, e, n))
				continue;
			garbage_sent[kind]++;
			if (kind == G_DUP_BATCH) {
				e[n++] = g; /* after the valid one it repeats */
			} else {
				/* anywhere in the batch */
				unsigned at = (unsigned)below(n + 1);

				memmove(&e[at + 1], &e[at], (n - at) * sizeof(e[0]));
				e[at] = g;
				n++;
			}
		}
	}
	for (i = 0; i < n; i++)
		put_cqe(w.khead + i, e[i].tag, e[i].seq, e[i].result);

	if (w.garbage && chance(20)) {
		bad_tail_commit();
		if (w.dead)
			return;
		drain(); /* that COMMIT fetched too: held changes before the next reap */
	}

	/* how far the kernel will read: our entries, or a whole ring of them and old ones */
	tail = w.khead + n;
	if (w.garbage && chance(8)) {
		tail = w.khead + cqn;
		garbage_sent[G_STALE_ENTRIES]++;
	}
	/*
	 * Simulate the kernel's reap over what the ring now holds: an entry is
	 * accepted iff its tag is held with that seq (once). Old entries that
	 * would match by accident are made invalid; an intended one that would
	 * not is a bug in this program.
	 */
	{
		bool done[DEPTH] = { false };

		for (pos = w.khead; pos != tail; pos++) {
			struct azbuse_cqe *c = &w.cq[pos & (cqn - 1)];
			unsigned idx = pos - w.khead;
			bool intended = idx < n && e[idx].valid;
			bool ok = c->tag < DEPTH && w.held[c->tag].active && !done[c->tag] &&
				  w.held[c->tag].seq == c->seq;

			if (ok && !intended) {
				c->tag = 0xfffffff0;
				ok = false;
			}
			if (!ok && intended)
				loop_fail("worker bookkeeping: entry %u (tag %u) would be rejected",
					  idx, c->tag);
			if (ok) {
				struct held *h = &w.held[c->tag];

				done[c->tag] = true;
				/* the read's data goes into its slot only now */
				if (h->sqe.op == AZBUSE_OP_READ && c->result == 0)
					memcpy(slot(c->tag), w.store + h->sqe.sector * 512,
					       h->sqe.len);
			} else {
				rejected++;
			}
		}
	}

	/* the kernel must not trust the fields it owns, nor our sq_head */
	if (w.garbage && chance(25)) {
		scribble = true;
		w.scribbles++;
		saved_sq_tail = __atomic_load_n(&w.hdr->sq_tail, __ATOMIC_ACQUIRE);
		saved_kflags = w.hdr->kflags;
		/* impossible as a real sq_tail, so a fetch (which rewrites it) shows */
		fake_sq_tail = saved_sq_tail + w.geo.sq_entries + 1 + (uint32_t)below(0x7fff0000);
		w.hdr->sq_tail = fake_sq_tail;
		w.hdr->cq_head = (uint32_t)rnd();
		w.hdr->kflags = (uint32_t)rnd();
		w.hdr->posted = (uint32_t)rnd();
		w.hdr->fetched = (uint32_t)rnd();
		w.hdr->wflags = (uint32_t)rnd();
		switch (below(3)) {
		case 0: /* ahead of sq_tail */
			w.hdr->sq_head = saved_sq_tail + 1 + (uint32_t)below(1000);
			break;
		case 1: /* far behind */
			w.hdr->sq_head = w.sq_head - 0x40000000;
			break;
		default:
			w.hdr->sq_head = (uint32_t)rnd();
		}
	}

	work = n || rejected;
	__atomic_store_n(&w.hdr->cq_tail, tail, __ATOMIC_RELEASE);
	timeout = work ? 0 : 1 + below(5);
	ret = xioctl(w.fd, AZBUSE_IOC_COMMIT, timeout);
	w.commits++;

	if (scribble) {
		uint32_t st = __atomic_load_n(&w.hdr->sq_tail, __ATOMIC_ACQUIRE);

		/* no fetch: the fake value is still there; else the kernel's own, a bit ahead */
		if (st == fake_sq_tail)
			__atomic_store_n(&w.hdr->sq_tail, saved_sq_tail, __ATOMIC_RELEASE);
		else if (st - saved_sq_tail > w.geo.sq_entries)
			loop_fail("after a scribbled sq_tail the kernel published sq_tail %u (was "
				  "%u)",
				  st, saved_sq_tail);
		w.hdr->kflags = saved_kflags;
		__atomic_store_n(&w.hdr->sq_head, w.sq_head, __ATOMIC_RELEASE);
	}
	if (ret == ENODEV) {
		w.dead = true;
		return;
	}
	if (ret)
		loop_fail("COMMIT of a batch of %u (%u rejected): %s", tail - w.khead, rejected,
			  strerror(ret));
	if (__atomic_load_n(&w.hdr->cq_head, __ATOMIC_ACQUIRE) != tail)
		loop_fail("after COMMIT cq_head is %u, want %u", w.hdr->cq_head, tail);

	/* apply the simulation */
	for (pos = w.khead; pos != tail; pos++) {
		struct azbuse_cqe *c = &w.cq[pos & (cqn - 1)];
		struct held *h;

		if (c->tag >= DEPTH || !w.held[c->tag].active || w.held[c->tag].seq != c->seq)
			continue;
		h = &w.held[c->tag];
		h->active = false;
		w.exp_requests++;
		w.exp_bytes += h->sqe.len;
		w.completed++;
		w.poisoned_done += h->fate == POISONED;
		w.history[w.nr_history % 64].tag = c->tag;
		w.history[w.nr_history % 64].seq = c->seq;
		w.nr_history++;
	}
	w.exp_rejected += rejected;
	w.khead = tail;
	check_counters("after a batch");
}

static void serve(void)
{
	batch();
}

/* ---- setup and the phases ------------------------------------------------------------ */

static void add_and_attach(void)
{
	struct azbuse_dev_info info;
	char path[64];
	void *ring;
	int ret;

	w.ctl = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (w.ctl < 0)
		die("open " AZBUSE_CTL_DEVICE);
	memset(&info, 0, sizeof(info));
	info.dev_id = dev_id;
	info.nr_queues = 1;
	info.queue_depth = DEPTH;
	info.max_io_bytes = SLOT_BYTES;
	info.size_bytes = DEV_SIZE;
	info.io_timeout_ms = IO_TIMEOUT_MS;
	info.recovery_timeout_ms = 5000;
	ret = xioctl(w.ctl, AZBUSE_CTL_ADD, (unsigned long)&info);
	check(ret == 0, "ADD device %u (1 queue, depth %u): %s", dev_id, DEPTH,
	      ret ? strerror(ret) : "ok");
	if (ret)
		exit(1);

	snprintf(path, sizeof(path), AZBUSE_CHAR_PREFIX "%u", dev_id);
	w.fd = open(path, O_RDWR | O_CLOEXEC);
	if (w.fd < 0)
		die("open the char device");
	memset(&w.geo, 0, sizeof(w.geo));
	ret = xioctl(w.fd, AZBUSE_IOC_ATTACH, (unsigned long)&w.geo);
	check(ret == 0 && w.geo.nr_slots == DEPTH && w.geo.slot_bytes == SLOT_BYTES,
	      "ATTACH: %u slots of %u bytes, cq %u entries (%s)", w.geo.nr_slots, w.geo.slot_bytes,
	      w.geo.cq_entries, ret ? strerror(ret) : "ok");
	if (ret)
		exit(1);
	ring = mmap(NULL, w.geo.ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w.fd,
		    AZBUSE_MMAP_RING_OFF);
	w.data = mmap(NULL, w.geo.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w.fd,
		      AZBUSE_MMAP_DATA_OFF);
	if (ring == MAP_FAILED || w.data == MAP_FAILED)
		die("mmap");
	w.hdr = ring;
	w.sq = (struct azbuse_sqe *)((char *)ring + w.geo.sq_offset);
	w.cq = (struct azbuse_cqe *)((char *)ring + w.geo.cq_offset);
	w.sq_head = w.hdr->sq_head;
	w.khead = w.hdr->cq_tail;
}

static void start_device(void)
{
	struct azbuse_dev_cmd c = { .dev_id = dev_id };
	struct azbuse_queue_info qi;
	int status;
	pid_t pid;

	/* START reads the partition table: serve it while a child starts the device */
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(xioctl(w.ctl, AZBUSE_CTL_START, (unsigned long)&c));
	status = wait_child(pid, CHILD_EXIT_MS, serve);
	check(status == 0, "START with the worker serving (status %d)", status);
	if (status)
		exit(1);
	queue_info(&qi);
	w.exp_rejected = qi.rejected;
	w.exp_requests = qi.requests;
	w.exp_bytes = qi.bytes;
}

static void usage(void)
{
	fprintf(stderr, "usage: azbuse-ring-garbage [--seed N] [--seconds N] [--dev-id N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	pid_t io[NR_IO], hole[NR_HOLE], rm;
	struct azbuse_queue_info qi;
	struct azbuse_dev_info info;
	unsigned seconds = 15, i, held_now;
	uint64_t t0, deadline, total_reads = 0, total_writes = 0, total_poison = 0;
	bool have_seed = false;
	int st, ret;
	size_t b;

	for (i = 1; i < (unsigned)argc; i++) {
		if (i + 1 >= (unsigned)argc)
			usage();
		if (!strcmp(argv[i], "--seed")) {
			seed = strtoull(argv[++i], NULL, 0);
			have_seed = true;
		} else if (!strcmp(argv[i], "--seconds")) {
			seconds = (unsigned)strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--dev-id")) {
			dev_id = (uint32_t)strtoul(argv[++i], NULL, 0);
		} else {
			usage();
		}
	}
	if (!have_seed)
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("seed %" PRIu64 " (replay: azbuse-ring-garbage --seed %" PRIu64 " --seconds %u)\n",
	       seed, seed, seconds);
	rng_state = seed;
	signal(SIGPIPE, SIG_IGN);

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	w.store = malloc(DEV_SIZE);
	if (shared == MAP_FAILED || !w.store)
		die("memory");
	for (b = 0; b < DEV_SIZE / BLK; b++)
		fill_block(w.store + b * BLK, b, 0);
	for (i = 0; i < NR_HOLE; i++)
		shared->hole_errno[i] = -1;

	add_and_attach();
	start_device();

	/* I/O in every region, and two requests into the hole */
	for (i = 0; i < NR_IO; i++)
		io[i] = spawn(io_child, i);
	for (i = 0; i < NR_HOLE; i++)
		hole[i] = spawn(hole_child, i);

	w.garbage = true;
	t0 = now_ms();
	while (now_ms() - t0 < seconds * 1000ULL && !w.dead)
		batch();
	w.garbage = false;
	printf("garbage phase: %llu batches, %llu COMMITs, %llu completions (%llu with poison "
	       "results), %llu header scribbles\n",
	       (unsigned long long)w.batch, (unsigned long long)w.commits,
	       (unsigned long long)w.completed, (unsigned long long)w.poisoned_done,
	       (unsigned long long)w.scribbles);
	for (i = 0; i < NR_GARBAGE; i++)
		printf("  bad completions of kind '%s': %llu\n", garbage_names[i],
		       (unsigned long long)garbage_sent[i]);
	check(loop_failures == 0,
	      "every COMMIT rejected exactly the predicted completions and accepted the rest "
	      "(%u mismatches)",
	      loop_failures);
	check(!w.dead, "the device stayed alive through the garbage");
	for (i = 0; i < NR_GARBAGE; i++)
		if (i != G_STALE_ENTRIES)
			check(garbage_sent[i] > 0, "bad completions of kind '%s' were tried",
			      garbage_names[i]);

	/* stop the verified I/O, serving correctly until it is done */
	shared->stop = 1;
	for (i = 0; i < NR_IO; i++) {
		st = wait_child(io[i], CHILD_EXIT_MS, serve);
		check(st == 0, "I/O child %u exits (status %d)", i, st);
	}
	for (i = 0; i < NR_IO; i++) {
		struct io_stats *s = &shared->io[i];

		total_reads += s->reads;
		total_writes += s->writes;
		total_poison += s->poisoned;
		check(s->bad_data == 0 && s->bad_errors == 0,
		      "I/O child %u: %llu reads verified, %llu writes, %llu poisoned requests "
		      "failed "
		      "as told; %llu bad data, %llu wrong results%s%s",
		      i, (unsigned long long)s->reads, (unsigned long long)s->writes,
		      (unsigned long long)s->poisoned, (unsigned long long)s->bad_data,
		      (unsigned long long)s->bad_errors, s->first_error[0] ? ": " : "",
		      s->first_error);
	}
	check(total_reads >= 50 && total_writes >= 50 && total_poison >= 5,
	      "I/O kept making progress through the garbage (%llu reads, %llu writes, %llu "
	      "poisoned)",
	      (unsigned long long)total_reads, (unsigned long long)total_writes,
	      (unsigned long long)total_poison);

	/* what is left in flight: the two requests in the hole */
	serve();
	for (held_now = 0, i = 0; i < DEPTH; i++)
		held_now += w.held[i].active;
	ret = queue_info(&qi);
	check(ret == 0 && qi.inflight == NR_HOLE && held_now == NR_HOLE,
	      "%u requests held for ever, the kernel counts %u in flight", held_now, qi.inflight);
	if (seconds * 1000ULL > 2 * IO_TIMEOUT_MS)
		check(qi.timeouts > 0, "the held requests are counted as timed out (%llu)",
		      (unsigned long long)qi.timeouts);
	for (i = 0; i < NR_HOLE; i++)
		check(shared->hole_errno[i] == -1 && waitpid(hole[i], &st, WNOHANG) == 0,
		      "the %s in the hole is still waiting", i ? "write" : "read");

	/* REMOVE with the held requests: bounded by the module's stall watchdog */
	fflush(stdout);
	rm = fork();
	if (rm < 0)
		die("fork");
	if (rm == 0) {
		struct azbuse_dev_cmd c = { .dev_id = dev_id };

		_exit(xioctl(w.ctl, AZBUSE_CTL_REMOVE, (unsigned long)&c));
	}
	t0 = now_ms();
	st = wait_child(rm, REMOVE_MAX_MS, serve);
	check(st == 0, "REMOVE with %u requests never completed: status %d after %llu ms", NR_HOLE,
	      st, (unsigned long long)(now_ms() - t0));
	if (st == -1) {
		printf("FAIL REMOVE hangs: giving up\n");
		return 1;
	}
	check(__atomic_load_n(&w.hdr->kflags, __ATOMIC_ACQUIRE) & AZBUSE_KF_DEAD,
	      "the ring header says AZBUSE_KF_DEAD");
	ret = xioctl(w.fd, AZBUSE_IOC_COMMIT, 0);
	check(ret == ENODEV, "COMMIT after REMOVE: %s", ret ? strerror(ret) : "success");

	deadline = now_ms() + 10000;
	for (i = 0; i < NR_HOLE; i++) {
		int s = -1;

		while (now_ms() < deadline && waitpid(hole[i], &s, WNOHANG) == 0)
			sleep_ms(10);
		check(shared->hole_errno[i] == EIO, "the %s in the hole failed with %s",
		      i ? "write" : "read",
		      shared->hole_errno[i] < 0 ? "nothing (still waiting)"
						: strerror(shared->hole_errno[i]));
		if (s == -1) {
			kill(hole[i], SIGKILL);
			waitpid(hole[i], NULL, 0);
		}
	}
	munmap(w.hdr, w.geo.ring_bytes);
	munmap(w.data, w.geo.data_bytes);
	close(w.fd);
	memset(&info, 0, sizeof(info));
	info.dev_id = dev_id;
	ret = xioctl(w.ctl, AZBUSE_CTL_INFO, (unsigned long)&info);
	check(ret == ENOENT, "INFO after REMOVE: %s", ret ? strerror(ret) : "success");
	close(w.ctl);

	printf("%u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
