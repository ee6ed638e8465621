// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fuzz_ioctl.c - a seeded fuzzer for the ioctls and mmaps of /dev/azbusectl
 * and /dev/azbusec<N>. Run as root inside the test VM (60-ioctl-fuzz.sh).
 *
 *   azbuse-fuzz-ioctl [--seed N] [--calls N] [--timeout SECONDS]
 *
 * Makes N (default 100000) calls: azbuse's real commands with random
 * payloads (fields biased to boundaries: 0, 1, max, powers of two +- 1,
 * negatives as unsigned, the ABI's limits +- 1), misencoded commands with
 * azbuse's magic, foreign commands, worker commands on a device it created
 * (ATTACH, COMMIT with 0..10 ms timeouts, KICK), random mmaps of its char
 * device, garbage written into mapped rings, closing and reopening files,
 * and removal of the device under its open files. Arguments are valid
 * buffers, NULL, small integers, inaccessible, non-canonical and kernel
 * addresses, a read-only page, or a buffer running into a PROT_NONE page.
 *
 * ADDs that succeed are recorded and removed again (at most MAX_LIVE live at
 * once, each with few small data slots); nothing may START. Every outcome is
 * checked against the errnos the command can give, devices are compared with
 * LIST, and at the end every device is removed and LIST must be as before.
 *
 * The calls run in a child process: the parent reports the call a crash or
 * hang happened in, then checks that no device is left and that Slab and
 * VmallocUsed did not grow. The seed is printed: --seed replays the same
 * sequence of calls (the kernel's timing may still differ). Exits 1 on any
 * unexpected outcome.
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
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/uapi.h>

#include "testlib.h"

#define STATIC_CHECK(cond) _Static_assert(cond, #cond)
AZBUSE_ABI_CHECKS(STATIC_CHECK);

#define FUZZ_ID_BASE 960 /* ids the fuzzer's ADDs prefer: 960..975 */
#define FUZZ_ID_SPAN 16
#define MAX_LIVE 4		  /* fuzz devices alive at once */
#define ADD_DATA_CAP (8ULL << 20) /* data slots of one fuzz ADD, at most */
#define NR_CTL 3		  /* control fds; ctl[0] owns the target, never closed */
#define NR_CFD 3		  /* fds open on the target's char device */
#define MAX_MAPS 8		  /* live mmaps of the char device */
#define FIXED_AREA (64ULL << 20)  /* reserved VA for MAP_FIXED attempts */
#define SCRATCH_BYTES (64U << 10) /* valid argument buffer */
#define CHECK_EVERY 2000	  /* calls between LIST consistency checks */
#define MAX_ERRNO 140
#define MAX_REPORTED 40 /* unexpected outcomes printed in full */

/* ---- random numbers ---------------------------------------------------------- */

/* A value of a `bits`-wide field, biased to the boundaries. */
static uint64_t boundary(unsigned bits)
{
	uint64_t max = bits >= 64 ? UINT64_MAX : (1ULL << bits) - 1;
	unsigned k = (unsigned)below(bits);

	switch (below(12)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return max;
	case 3:
		return max - 1;
	case 4:
		return (1ULL << k) & max;
	case 5:
		return ((1ULL << k) - 1) & max;
	case 6:
		return ((1ULL << k) + 1) & max;
	case 7: /* a small negative number, as unsigned */
		return (0 - (below(4096) + 1)) & max;
	case 8:
		return max >> 1;
	case 9:
		return (max >> 1) + 1;
	case 10:
		return below(64);
	default:
		return rnd() & max;
	}
}

/* A field value: one of the field's own limits +- 1 (specials), or boundary(). */
static uint64_t field(unsigned bits, const uint64_t *specials, size_t n)
{
	uint64_t max = bits >= 64 ? UINT64_MAX : (1ULL << bits) - 1;

	if (n && chance(50))
		return (specials[below(n)] + below(3) - 1) & max;
	return boundary(bits);
}

#define FIELD(bits, ...)                                                                           \
	field(bits, (const uint64_t[]){ __VA_ARGS__ },                                             \
	      sizeof((const uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t))

/* ---- bookkeeping --------------------------------------------------------------- */

enum kind {
	K_VERSION,
	K_ADD,
	K_START,
	K_REMOVE,
	K_INFO,
	K_LIST,
	K_QINFO,
	K_TAKEOVER,
	K_CACHE_ATTACH,
	K_RESIZE,
	K_CTL_OTHER, /* anything else on the control device */
	K_ATTACH,
	K_COMMIT,
	K_KICK,
	K_SET_BACKING,
	K_MAP_SYNC,
	K_CDEV_OTHER, /* anything else on the char device */
	K_MMAP_CTL,
	K_MMAP,
	K_OPEN,
	NR_KINDS
};

static const char *const kind_names[NR_KINDS] = {
	"ctl VERSION",	 "ctl ADD",	   "ctl START",	   "ctl REMOVE",       "ctl INFO",
	"ctl LIST",	 "ctl QUEUE_INFO", "ctl TAKEOVER", "ctl CACHE_ATTACH", "ctl RESIZE",
	"ctl other cmd", "cdev ATTACH",	   "cdev COMMIT",  "cdev KICK",	       "cdev SET_BACKING",
	"cdev MAP_SYNC", "cdev other cmd", "ctl mmap",	   "cdev mmap",	       "cdev open",
};

/* The errnos each kind may give (0: success), terminated by -1. */
static const int allowed[NR_KINDS][10] = {
	[K_VERSION] = { 0, EFAULT, -1 },
	[K_ADD] = { 0, EFAULT, EINVAL, EEXIST, ENOSPC, EOPNOTSUPP, -1 },
	/* no device may start: no queue of a fuzz device has a worker */
	[K_START] = { EFAULT, EINVAL, ENOENT, EBUSY, EALREADY, ENODEV, -1 },
	[K_REMOVE] = { 0, EFAULT, EINVAL, ENOENT, EBUSY, -1 },
	[K_INFO] = { 0, EFAULT, ENOENT, -1 },
	[K_LIST] = { 0, EFAULT, EINVAL, -1 },
	[K_QINFO] = { 0, EFAULT, EINVAL, ENOENT, -1 },
	/* only a LIVE device can be taken over, and no fuzz device is live */
	[K_TAKEOVER] = { EFAULT, EINVAL, ENOENT, ENODEV, -1 },
	/* a region that passes every check is attached (the fuzzer owns none) */
	[K_CACHE_ATTACH] = { 0, EFAULT, EINVAL, ENOENT, ENODEV, ENOMEM, EINTR, -1 },
	/* EOPNOTSUPP: a direct-mapped device; EAGAIN: one not live whose lock is held */
	[K_RESIZE] = { 0, EFAULT, EINVAL, ENOENT, ENODEV, EOPNOTSUPP, EAGAIN, -1 },
	[K_CTL_OTHER] = { ENOTTY, -1 },
	[K_ATTACH] = { 0, EFAULT, EINVAL, ENOSPC, EBUSY, ENODEV, -1 },
	[K_COMMIT] = { 0, ENXIO, EINVAL, ENODEV, EINTR, -1 },
	[K_KICK] = { 0, ENXIO, -1 },
	/* the only regular file offered is the fuzzer's own unlinked scratch file */
	[K_SET_BACKING] = { 0, EFAULT, EINVAL, EBADF, ENXIO, EOPNOTSUPP, EBUSY, -1 },
	[K_MAP_SYNC] = { 0, ENXIO, EOPNOTSUPP, EINTR, -1 },
	[K_CDEV_OTHER] = { ENOTTY, -1 },
	[K_MMAP_CTL] = { ENODEV, EINVAL, ENOMEM, EOVERFLOW, EACCES, EEXIST, -1 },
	[K_MMAP] = { 0, EINVAL, ENXIO, ENOMEM, EOVERFLOW, EACCES, EEXIST, -1 },
	[K_OPEN] = { 0, -1 }, /* only the live target is opened */
};

static unsigned long counts[NR_KINDS][MAX_ERRNO + 1];
static char start_desc[256];	 /* what the kernel said before the last START */
static unsigned long unexpected; /* outcomes the ABI does not allow */

/* Shared with the parent: where the child is, for crash and hang reports. */
struct progress {
	uint64_t call;
	char what[400];
};
static struct progress *progress;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (++unexpected > MAX_REPORTED)
		return;
	printf("FAIL call %" PRIu64 " (%s): ", progress->call, progress->what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Count an outcome and check that the kind may give it. */
static void outcome(enum kind k, int err)
{
	const int *a;

	counts[k][err >= 0 && err <= MAX_ERRNO ? err : MAX_ERRNO]++;
	for (a = allowed[k]; *a != -1; a++)
		if (*a == err)
			return;
	fail("%s gave %s (%d), which it must not", kind_names[k], err ? strerror(err) : "success",
	     err);
}

/* ---- state ------------------------------------------------------------------------ */

struct live_dev {
	uint32_t id;
	int owner; /* index into ctl[] */
};

struct cfile {
	int fd;
	bool attached;
	uint16_t queue;
	struct azbuse_attach geo; /* from its last successful ATTACH */
};

struct map {
	void *addr;
	size_t len;
	int prot;
	int cfd;    /* the cfile it came from (it may have been closed since) */
	bool ring;  /* the ring region (else the data area) */
	bool fixed; /* at fixed_area */
	/* a mapping keeps its file, and so the file's attachment, alive after close() */
	uint64_t target_gen;
	uint16_t queue;
};

static int ctl[NR_CTL];
static struct live_dev live[MAX_LIVE + 1];
static unsigned nr_live;
static uint32_t preexisting[AZBUSE_MAX_DEVICES];
static uint32_t nr_preexisting;

static struct {
	bool alive;
	uint32_t id;
	uint16_t nr_queues;
	uint64_t dead_since; /* call at which it was removed */
	uint64_t gen;	     /* bumped by each (re)creation */
} target;
static struct cfile cfd[NR_CFD];
static struct map maps[MAX_MAPS];
static unsigned nr_maps;

static long page;
static unsigned ncpus;
static unsigned char *scratch;	/* SCRATCH_BYTES, valid */
static unsigned char *edge_end; /* followed by a PROT_NONE page */
static unsigned char *ro_page;	/* read-only, refilled before use */
/* PROT_NONE, kept reserved so that nothing is ever mapped there: every access faults */
static unsigned char *noaccess;
static unsigned char *fixed_area; /* reserved PROT_NONE; at most one mapping in it */
static bool fixed_in_use;
static unsigned long nr_adds_ok, nr_removes_ok, nr_target_removed, nr_maps_ok, nr_eintr;

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

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(progress->what, sizeof(progress->what), fmt, ap);
	va_end(ap);
}

static void die(const char *what)
{
	printf("FAIL %s: %s (cannot continue)\n", what, strerror(errno));
	exit(1);
}

static bool is_live(uint32_t id)
{
	unsigned i;

	for (i = 0; i < nr_live; i++)
		if (live[i].id == id)
			return true;
	return false;
}

static void forget_live(unsigned i)
{
	live[i] = live[--nr_live];
}

/*
 * Every queue of the target may have a worker among our files (open ones,
 * and closed ones a mapping keeps alive): START would wait in add_disk for
 * the partition table, which nobody serves.
 */
static bool target_all_attached(void)
{
	unsigned q, i;

	for (q = 0; q < target.nr_queues; q++) {
		bool found = false;

		for (i = 0; i < NR_CFD && !found; i++)
			found = cfd[i].fd >= 0 && cfd[i].attached && cfd[i].queue == q;
		for (i = 0; i < nr_maps && !found; i++)
			found = maps[i].target_gen == target.gen && maps[i].queue == q;
		if (!found)
			return false;
	}
	return true;
}

/* What the kernel says: every queue of device `id` has a worker (so START would read through them).
 */
static bool kernel_all_attached(uint32_t id, char *desc, size_t len)
{
	struct azbuse_dev_info info = { .dev_id = id };
	struct azbuse_queue_info qi;
	unsigned q, n = 0;

	int ret = xioctl(ctl[0], AZBUSE_CTL_INFO, (unsigned long)&info);

	n = (unsigned)snprintf(desc, len, " INFO %d state %u queues %u;", ret, info.state,
			       info.nr_queues);
	if (ret || info.state != AZBUSE_DEV_CREATED)
		return false;
	for (q = 0; q < info.nr_queues; q++) {
		memset(&qi, 0, sizeof(qi));
		qi.dev_id = id;
		qi.queue = (uint16_t)q;
		if (xioctl(ctl[0], AZBUSE_CTL_QUEUE_INFO, (unsigned long)&qi))
			return false;
		n += (unsigned)snprintf(desc + n, n < len ? len - n : 0,
					" queue %u: state %u pid %d;", q, qi.state, qi.worker_pid);
		if (qi.state != AZBUSE_QUEUE_ATTACHED)
			return false;
	}
	return true;
}

static void remove_or_fail(uint32_t id, const char *what)
{
	struct azbuse_dev_cmd c = { .dev_id = id };
	int ret = xioctl(ctl[0], AZBUSE_CTL_REMOVE, (unsigned long)&c);

	if (ret)
		fail("REMOVE of %s %u: %s", what, id, strerror(ret));
}

/* ---- the target device, whose char device is fuzzed ---------------------------- */

static void close_cfile(struct cfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

static void open_cfile(struct cfile *f)
{
	char path[64];

	close_cfile(f);
	/*
	 * Once the target is removed a fuzz ADD may take its id: its node would
	 * be another device, whose queues START must never find all attached.
	 */
	if (!target.alive)
		return;
	snprintf(path, sizeof(path), AZBUSE_CHAR_PREFIX "%u", target.id);
	f->fd = open(path, O_RDWR | O_CLOEXEC);
	/* a removed target has no node: ENOENT */
	outcome(K_OPEN, f->fd < 0 ? errno : 0);
}

/* (Re)create the target: one or two queues, a few small slots, often a short recovery window. */
static void target_create(void)
{
	struct azbuse_dev_info info;
	unsigned i;
	int ret;

	for (i = 0; i < NR_CFD; i++)
		close_cfile(&cfd[i]);
	memset(&info, 0, sizeof(info));
	info.dev_id = AZBUSE_DEV_ID_ANY;
	info.nr_queues = (uint16_t)(1 + below(ncpus < 2 ? 1 : 2));
	info.queue_depth = (uint16_t)(1U << below(5));
	info.max_io_bytes = 4096U << below(3);
	info.size_bytes = (1 + below(64)) << 20;
	info.features = rnd() & AZBUSE_F_ALL;
	if (info.features & AZBUSE_F_SHARDED)
		info.chunk_sectors = 8U << below(8);
	else
		info.features &= ~AZBUSE_F_ROUTE_QUEUE; /* only a sharded device routes by queue */
	if (info.features & AZBUSE_F_DIRECT_MAP) {
		info.map_chunk_bytes = 4096; /* no bigger than a shard's chunk */
		info.map_user_bytes = (uint32_t)below(8192);
	}
	/* the recovery timer then fires between the fuzzer's calls */
	info.recovery_timeout_ms = chance(70) ? (uint32_t)(1 + below(100)) : 0;
	ret = xioctl(ctl[0], AZBUSE_CTL_ADD, (unsigned long)&info);
	if (ret) {
		errno = ret;
		die("ADD of the target device");
	}
	target.alive = true;
	target.gen++;
	target.id = info.dev_id;
	target.nr_queues = info.nr_queues;
	for (i = 0; i < NR_CFD; i++)
		open_cfile(&cfd[i]);
}

/* ---- arguments ------------------------------------------------------------------------ */

/* Kernel-looking and otherwise impossible user addresses. */
static const uint64_t bad_addrs[] = {
	0xffff888000000000ULL, /* direct map */
	0xffffffff81000000ULL, /* kernel text */
	0xffffffffff600000ULL, /* vsyscall page */
	0xffffc90000000000ULL, /* vmalloc */
	0xfffffffffffff000ULL, /* last page */
	0x0000800000000000ULL, /* just past user space (non-canonical on 4-level) */
	0x00007ffffffff000ULL, /* last user page */
	0x8000000000000000ULL, /* non-canonical */
	0xdead000000000000ULL, /* poison */
};

/*
 * Put `len` bytes of `src` somewhere and return the address to pass: mostly a
 * valid buffer, else a hostile address (some with the payload partly there).
 */
static unsigned long place(const void *src, size_t len)
{
	unsigned r = (unsigned)below(100);
	size_t n;

	if (len > SCRATCH_BYTES / 2)
		len = SCRATCH_BYTES / 2;
	if (r < 62) {
		size_t off = chance(80) ? 0 : below(64);

		memcpy(scratch + off, src, len);
		return (unsigned long)(scratch + off);
	}
	if (r < 72) { /* running into the PROT_NONE page after edge_end */
		n = 1 + below(len ? len : 1);
		memcpy(edge_end - n, src, n);
		return (unsigned long)(edge_end - n);
	}
	if (r < 77) { /* readable, not writable: copy_to_user fails */
		mprotect(ro_page, page, PROT_READ | PROT_WRITE);
		memcpy(ro_page, src, len < (size_t)page ? len : (size_t)page);
		mprotect(ro_page, page, PROT_READ);
		return (unsigned long)ro_page;
	}
	if (r < 81)
		return 0;
	if (r < 85)
		return 1 + below(chance(50) ? 4095 : 65535);
	if (r < 89)
		return (unsigned long)(noaccess + below(4 * page));
	if (r < 96)
		return bad_addrs[below(sizeof(bad_addrs) / sizeof(bad_addrs[0]))] + below(2) * 8;
	return (unsigned long)edge_end; /* exactly at the guard page */
}

/* A user pointer field inside a struct: the same kinds of address, minus payload. */
static uint64_t user_ptr_field(void)
{
	unsigned r = (unsigned)below(100);

	if (r < 50)
		return (uint64_t)(uintptr_t)(scratch + SCRATCH_BYTES / 2);
	if (r < 60)
		return (uint64_t)(uintptr_t)(edge_end - 1 - below(64));
	if (r < 65)
		return (uint64_t)(uintptr_t)ro_page;
	if (r < 75)
		return 0;
	if (r < 80)
		return 1 + below(4095);
	if (r < 85)
		return (uint64_t)(uintptr_t)noaccess;
	return bad_addrs[below(sizeof(bad_addrs) / sizeof(bad_addrs[0]))];
}

static uint32_t pick_dev_id(void)
{
	unsigned r = (unsigned)below(100);

	if (r < 35 && nr_live)
		return live[below(nr_live)].id;
	if (r < 37 && target.alive)
		return target.id;
	if (r < 75)
		return FUZZ_ID_BASE + (uint32_t)below(FUZZ_ID_SPAN);
	return (uint32_t)FIELD(32, 0, AZBUSE_MAX_DEVICES - 1, AZBUSE_MAX_DEVICES, AZBUSE_DEV_ID_ANY,
			       FUZZ_ID_BASE);
}

static void gen_reserved(__u64 *r, size_t n)
{
	memset(r, 0, n * sizeof(*r));
	if (chance(15))
		r[below(n)] = boundary(64) | 1;
}

static void gen_dev_info(struct azbuse_dev_info *i)
{
	memset(i, 0, sizeof(*i));
	i->dev_id = chance(40) ? AZBUSE_DEV_ID_ANY : pick_dev_id();
	if (chance(45)) {
		/* a valid small device, with at most two fields fuzzed below */
		i->nr_queues = (uint16_t)(below(3) ? 1 + below(ncpus) : 0);
		i->queue_depth = (uint16_t)(1 + below(32));
		i->max_io_bytes = 4096U << below(3);
		i->logical_block_size = 512U << below(4);
		i->size_bytes = (1 + below(1024)) * i->logical_block_size * 8;
		i->features = rnd() & AZBUSE_F_ALL;
		if (i->features & AZBUSE_F_SHARDED)
			i->chunk_sectors = 8U << below(8);
		if (i->features & AZBUSE_F_DIRECT_MAP)
			i->map_chunk_bytes = 4096U << below(9);
		if (chance(30))
			i->io_timeout_ms = (uint32_t)(100 + below(100000));
		if (chance(30))
			i->recovery_timeout_ms = (uint32_t)below(100000);
		if (chance(70))
			return;
	} else {
		i->nr_queues = (uint16_t)FIELD(16, 1, 2, ncpus, AZBUSE_MAX_QUEUES);
		i->queue_depth =
			(uint16_t)FIELD(16, 1, AZBUSE_DEF_QUEUE_DEPTH, AZBUSE_MAX_QUEUE_DEPTH);
		i->max_io_bytes = (uint32_t)FIELD(32, AZBUSE_MIN_IO_BYTES, AZBUSE_MAX_IO_BYTES,
						  AZBUSE_DEF_IO_BYTES, 6144);
		i->size_bytes = FIELD(64, 512, 4096, 1ULL << 20, UINT64_MAX >> 1);
		i->features = FIELD(64, AZBUSE_F_ALL, AZBUSE_F_SHARDED, AZBUSE_F_READ_ONLY,
				    AZBUSE_F_WRITE_CACHE | AZBUSE_F_FUA);
		i->logical_block_size = (uint32_t)FIELD(32, 512, 4096, 8192, 256);
		i->physical_block_size = (uint32_t)FIELD(32, 512, 4096, 65536, 131072);
		i->chunk_sectors = chance(80) ? 0 : (uint32_t)boundary(32);
		i->discard_granularity = (uint32_t)FIELD(32, 512, 4096);
		i->max_discard_sectors = (uint32_t)boundary(32);
		i->max_write_zeroes_sectors = (uint32_t)boundary(32);
		i->io_timeout_ms = (uint32_t)FIELD(32, 100, 3600U * 1000U, 30000);
		i->recovery_timeout_ms = (uint32_t)FIELD(32, 3600U * 1000U, 30000);
		i->map_chunk_bytes = (uint32_t)FIELD(32, 4096, 65536, 1U << 30, 3000);
		i->map_user_bytes = (uint32_t)FIELD(32, 64, 1U << 20, (1U << 20) + 1);
	}
	i->state = chance(90) ? 0 : (uint32_t)boundary(32);
	i->owner_pid = chance(90) ? 0 : (int32_t)boundary(32);
	i->nr_hw_queues = chance(90) ? 0 : (uint32_t)boundary(32);
	gen_reserved(i->reserved, 6);
}

static void gen_dev_cmd(struct azbuse_dev_cmd *c)
{
	memset(c, 0, sizeof(*c));
	c->dev_id = pick_dev_id();
	c->flags = chance(85) ? 0 : (uint32_t)boundary(32);
	gen_reserved(c->reserved, 3);
}

static void gen_list(struct azbuse_dev_list *l)
{
	memset(l, 0, sizeof(*l));
	l->ids_ptr = user_ptr_field();
	l->capacity = (uint32_t)FIELD(32, 0, 1, 4, AZBUSE_MAX_DEVICES);
	/* LIST writes at most AZBUSE_MAX_DEVICES ids: 4 KiB, which every buffer has */
	l->count = (uint32_t)boundary(32);
	gen_reserved(l->reserved, 2);
}

static void gen_queue_info(struct azbuse_queue_info *q)
{
	memset(q, 0, sizeof(*q));
	q->dev_id = pick_dev_id();
	q->queue = (uint16_t)FIELD(16, 0, 1, 2, AZBUSE_MAX_QUEUES);
	if (chance(10))
		q->requests = rnd();
	if (chance(10))
		q->wait_ns = rnd(); /* out fields: ignored on input */
}

/* An unlinked file of the fuzzer's own: the only regular file it offers as backing. */
static int scratch_fd = -1;

static void gen_backing(struct azbuse_backing *b)
{
	memset(b, 0, sizeof(*b));
	b->fd = (int32_t)FIELD(32, scratch_fd, -1, 0, 0x7fffffff);
	if (chance(10))
		b->flags = (uint32_t)boundary(32);
	gen_reserved(b->reserved, 3);
}

static void gen_attach(struct azbuse_attach *a)
{
	memset(a, 0, sizeof(*a));
	a->queue = (uint16_t)(chance(70) ? below(target.nr_queues + 1) : FIELD(16, 0, 1, 2));
	a->flags = chance(85) ? 0 : (uint16_t)boundary(16);
	if (chance(40)) {
		a->cpus_ptr = user_ptr_field();
		a->cpus_bytes = (uint32_t)FIELD(32, 0, 1, (ncpus + 7) / 8, 8, 128);
		/* what the kernel may write there fits in the buffers (<= 1 page) */
	}
	if (chance(10))
		a->sq_entries = (uint32_t)boundary(32); /* out fields: ignored on input */
	if (chance(20))
		a->poll_us =
			(uint32_t)FIELD(32, 0, 1, 50, AZBUSE_MAX_POLL_US, AZBUSE_MAX_POLL_US + 1);
	a->reserved0 = chance(90) ? 0 : (uint32_t)boundary(32);
	gen_reserved(a->reserved, 1);
}

/*
 * Make a payload harmless to the machine (not to the module): START must not
 * reach a device all of whose queues we serve (add_disk would wait for our
 * own worker for ever), and an ADD must not pin much memory.
 */
static void sanitize(unsigned long cmd, void *buf)
{
	if (cmd == AZBUSE_CTL_START) {
		struct azbuse_dev_cmd *c = buf;
		bool ours = target.alive && c->dev_id == target.id && target_all_attached();
		char desc[200] = "";
		bool all = c->dev_id < AZBUSE_MAX_DEVICES &&
			   kernel_all_attached(c->dev_id, desc, sizeof(desc));

		snprintf(start_desc, sizeof(start_desc), "START of %u flags %u:%s", c->dev_id,
			 c->flags, desc);
		/* the kernel has the last word; our own bookkeeping must agree with it */
		if (all) {
			unsigned i;

			if (!ours) {
				fail("device %u has every queue attached (%s) but the fuzzer holds "
				     "no such files (target %u%s, gen %" PRIu64 ")",
				     c->dev_id, desc, target.id, target.alive ? "" : " removed",
				     target.gen);
				for (i = 0; i < NR_CFD; i++)
					printf("  cfd %u: fd %d attached %d queue %u\n", i,
					       cfd[i].fd, cfd[i].attached, cfd[i].queue);
				for (i = 0; i < nr_maps; i++)
					printf("  map %u: %s gen %" PRIu64 " queue %u cfd %d\n", i,
					       maps[i].ring ? "ring" : "data", maps[i].target_gen,
					       maps[i].queue, maps[i].cfd);
			}
			ours = true;
		}
		if (ours)
			c->dev_id = AZBUSE_MAX_DEVICES + 1;
	} else if (cmd == AZBUSE_CTL_ADD) {
		struct azbuse_dev_info *i = buf;
		uint64_t q = i->nr_queues ? i->nr_queues : ncpus;
		uint64_t d = i->queue_depth ? i->queue_depth : AZBUSE_DEF_QUEUE_DEPTH;
		uint64_t io = i->max_io_bytes ? i->max_io_bytes : AZBUSE_DEF_IO_BYTES;

		if (q * d * io > ADD_DATA_CAP) {
			i->max_io_bytes = chance(50) ? AZBUSE_MIN_IO_BYTES : 0x7fffffff;
			if (q * d * AZBUSE_MIN_IO_BYTES > ADD_DATA_CAP)
				i->queue_depth = chance(50) ? 4 : 0xffff;
		}
	}
}

/* ---- the calls --------------------------------------------------------------------- */

static const unsigned long ctl_cmds[] = {
	AZBUSE_CTL_VERSION,	 AZBUSE_CTL_ADD,    AZBUSE_CTL_START,	   AZBUSE_CTL_REMOVE,
	AZBUSE_CTL_INFO,	 AZBUSE_CTL_LIST,   AZBUSE_CTL_QUEUE_INFO, AZBUSE_CTL_TAKEOVER,
	AZBUSE_CTL_CACHE_ATTACH, AZBUSE_CTL_RESIZE,
};
#define NR_CTL_CMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))
static const unsigned long cdev_cmds[] = { AZBUSE_IOC_ATTACH, AZBUSE_IOC_COMMIT, AZBUSE_IOC_KICK,
					   AZBUSE_IOC_SET_BACKING, AZBUSE_IOC_MAP_SYNC };
#define NR_CDEV_CMDS (sizeof(cdev_cmds) / sizeof(cdev_cmds[0]))

static enum kind classify(bool on_ctl, unsigned long cmd)
{
	static const enum kind ctl_kinds[NR_CTL_CMDS] = { K_VERSION, K_ADD,	 K_START,
							  K_REMOVE,  K_INFO,	 K_LIST,
							  K_QINFO,   K_TAKEOVER, K_CACHE_ATTACH,
							  K_RESIZE };
	size_t k;

	if (on_ctl) {
		for (k = 0; k < NR_CTL_CMDS; k++)
			if (cmd == ctl_cmds[k])
				return ctl_kinds[k];
		return K_CTL_OTHER;
	}
	if (cmd == AZBUSE_IOC_ATTACH)
		return K_ATTACH;
	if (cmd == AZBUSE_IOC_COMMIT)
		return K_COMMIT;
	if (cmd == AZBUSE_IOC_KICK)
		return K_KICK;
	if (cmd == AZBUSE_IOC_SET_BACKING)
		return K_SET_BACKING;
	if (cmd == AZBUSE_IOC_MAP_SYNC)
		return K_MAP_SYNC;
	return K_CDEV_OTHER;
}

/*
 * Ioctl types the VFS handles itself before the driver sees them: FIFREEZE
 * on devtmpfs would freeze /dev, FIOCLEX & co. change the fd. Never sent.
 */
static bool vfs_type(unsigned type)
{
	return type == 0x00 || type == 'T' || type == 'X' || type == 'f' || type == 0x94 ||
	       type == 0x15;
}

/* A command number: a real one, a misencoded one with azbuse's magic, or a foreign one. */
static unsigned long pick_cmd(bool on_ctl)
{
	unsigned r = (unsigned)below(100);
	unsigned long cmd;

	if (r < 55)
		return on_ctl ? ctl_cmds[below(NR_CTL_CMDS)] : cdev_cmds[below(NR_CDEV_CMDS)];
	if (r < 62) /* the other device's commands */
		return on_ctl ? cdev_cmds[below(NR_CDEV_CMDS)] : ctl_cmds[below(NR_CTL_CMDS)];
	if (r < 92) {
		unsigned nr = (unsigned)(chance(60) ? (chance(50) ? below(8) : 0x1e + below(8))
						    : below(256));
		unsigned size = (unsigned)(chance(50) ? FIELD(14, 0, 32, 64, 96, 112, 128)
						      : below(1U << 14));

		return _IOC(below(4), AZBUSE_IOC_MAGIC, nr, size);
	}
	do
		cmd = (unsigned long)(uint32_t)rnd();
	while (vfs_type(_IOC_TYPE(cmd)) || _IOC_TYPE(cmd) == AZBUSE_IOC_MAGIC);
	return cmd;
}

/* A COMMIT timeout: mostly 0, sometimes up to 10 ms. */
static unsigned long commit_timeout(void)
{
	return chance(97) ? 0 : 1 + below(10);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* After a successful call, what it tells us about the devices. */
static void after_ctl_ok(enum kind k, int which_ctl, unsigned long arg)
{
	if (k == K_ADD) {
		struct azbuse_dev_info *i = (void *)arg;

		nr_adds_ok++;
		if (i->dev_id >= AZBUSE_MAX_DEVICES || i->state != AZBUSE_DEV_CREATED ||
		    i->owner_pid != getpid())
			fail("ADD succeeded with id %u state %u owner %d", i->dev_id, i->state,
			     i->owner_pid);
		if (is_live(i->dev_id) || (target.alive && i->dev_id == target.id))
			fail("ADD gave id %u, which is taken", i->dev_id);
		live[nr_live].id = i->dev_id;
		live[nr_live].owner = which_ctl;
		nr_live++;
		if (nr_live > MAX_LIVE) {
			remove_or_fail(live[0].id, "the oldest fuzz device");
			forget_live(0);
		}
	} else if (k == K_REMOVE) {
		uint32_t id = ((struct azbuse_dev_cmd *)arg)->dev_id;
		unsigned i;

		nr_removes_ok++;
		for (i = 0; i < nr_live; i++)
			if (live[i].id == id)
				break;
		if (i < nr_live) {
			forget_live(i);
		} else if (target.alive && id == target.id) {
			target.alive = false;
			target.dead_since = progress->call;
			nr_target_removed++;
		} else {
			fail("REMOVE removed device %u, which the fuzzer does not know of", id);
		}
	} else if (k == K_START || k == K_TAKEOVER) {
		fail("%s of device %u succeeded", kind_names[k],
		     ((struct azbuse_dev_cmd *)arg)->dev_id);
	} else if (k == K_VERSION) {
		struct azbuse_version *v = (void *)arg;

		if (v->abi_version != AZBUSE_ABI_VERSION)
			fail("VERSION says ABI %u", v->abi_version);
	}
}

/* One ioctl on the control device (on_ctl) or on a target file. */
static void fuzz_ioctl(bool on_ctl)
{
	union {
		struct azbuse_dev_info info;
		struct azbuse_dev_cmd cmd;
		struct azbuse_dev_list list;
		struct azbuse_queue_info qi;
		struct azbuse_version v;
		struct azbuse_attach a;
		struct azbuse_backing b;
		unsigned char bytes[512];
	} buf;
	int which = (int)below(NR_CTL), fd, ret;
	struct cfile *f = NULL;
	unsigned long cmd = pick_cmd(on_ctl), arg;
	bool is_ptr = true, forever = false;
	enum kind k = classify(on_ctl, cmd);
	size_t i;

	if (on_ctl) {
		fd = ctl[which];
	} else {
		f = &cfd[below(NR_CFD)];
		fd = f->fd;
		if (fd < 0)
			return;
	}

	for (i = 0; i < sizeof(buf.bytes); i++)
		buf.bytes[i] = (unsigned char)rnd();
	if (chance(85)) {
		if (cmd == AZBUSE_CTL_ADD || cmd == AZBUSE_CTL_INFO)
			gen_dev_info(&buf.info);
		else if (cmd == AZBUSE_CTL_START || cmd == AZBUSE_CTL_REMOVE ||
			 cmd == AZBUSE_CTL_TAKEOVER)
			gen_dev_cmd(&buf.cmd);
		else if (cmd == AZBUSE_CTL_LIST)
			gen_list(&buf.list);
		else if (cmd == AZBUSE_CTL_QUEUE_INFO)
			gen_queue_info(&buf.qi);
		else if (cmd == AZBUSE_IOC_ATTACH)
			gen_attach(&buf.a);
		else if (cmd == AZBUSE_IOC_SET_BACKING)
			gen_backing(&buf.b);
	}
	sanitize(cmd, &buf);

	if (cmd == AZBUSE_IOC_COMMIT || cmd == AZBUSE_IOC_KICK || cmd == AZBUSE_IOC_MAP_SYNC) {
		is_ptr = false;
		arg = cmd == AZBUSE_IOC_COMMIT ? commit_timeout() : rnd();
		/* rarely: wait for ever, interrupted by a signal 3 ms later */
		if (cmd == AZBUSE_IOC_COMMIT && !on_ctl && chance(1) && chance(20))
			forever = true;
	} else {
		arg = place(&buf, sizeof(buf));
	}
	note("%s: ioctl(%s %d, 0x%08lx, %s0x%lx)%s%s", kind_names[k], on_ctl ? "ctl" : "cdev", fd,
	     cmd, is_ptr ? "ptr " : "", forever ? AZBUSE_WAIT_FOREVER : arg,
	     k == K_START ? " " : "", k == K_START ? start_desc : "");
	if (forever) {
		struct itimerval it = { .it_value = { .tv_usec = 3000 } };

		setitimer(ITIMER_REAL, &it, NULL);
		ret = xioctl(fd, cmd, AZBUSE_WAIT_FOREVER);
		memset(&it, 0, sizeof(it));
		setitimer(ITIMER_REAL, &it, NULL);
		nr_eintr += ret == EINTR;
	} else {
		ret = xioctl(fd, cmd, arg);
	}
	outcome(k, ret);

	if (f && ret == 0 && k == K_ATTACH) {
		if (f->attached)
			fail("a second ATTACH on the same file succeeded");
		f->attached = true;
		f->geo = *(struct azbuse_attach *)arg;
		f->queue = f->geo.queue;
		if (!target.alive || f->geo.queue >= target.nr_queues ||
		    f->geo.nr_queues != target.nr_queues)
			fail("ATTACH succeeded: queue %u of %u on %s device", f->geo.queue,
			     f->geo.nr_queues, target.alive ? "the" : "a removed");
	}
	if (on_ctl && ret == 0)
		after_ctl_ok(k, which, arg);
}

/*
 * Reserve (again) the area MAP_FIXED aims at, so that nothing else is ever
 * placed there for a later MAP_FIXED to clobber.
 */
static void reserve_fixed_area(void)
{
	if (mmap(fixed_area, FIXED_AREA, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		die("mmap the reserved area");
	fixed_in_use = false;
}

static void unmap_one(unsigned i)
{
	if (maps[i].fixed)
		reserve_fixed_area();
	else
		munmap(maps[i].addr, maps[i].len);
	maps[i] = maps[--nr_maps];
}

/* Read every page of a mapping and, if writable, scribble on it. */
static void touch_map(struct map *m)
{
	volatile unsigned char *p = m->addr;
	unsigned sum = 0;
	size_t off;

	note("touch %s map %p + %zu (prot %d)", m->ring ? "ring" : "data", m->addr, m->len,
	     m->prot);
	if (!(m->prot & (PROT_READ | PROT_WRITE)))
		return;
	for (off = 0; off < m->len; off += (size_t)page)
		sum += p[off];
	(void)sum;
	if (!(m->prot & PROT_WRITE))
		return;
	if (m->ring && chance(70)) {
		/* header words, both sides', then CQEs and SQEs */
		volatile uint32_t *w = m->addr;
		unsigned n = 1 + (unsigned)below(8);

		while (n--)
			w[below(32)] = (uint32_t)boundary(32);
		n = (unsigned)below(16);
		while (n--)
			w[below(m->len / 4)] = (uint32_t)boundary(32);
	} else {
		unsigned n = 1 + (unsigned)below(16);

		while (n--)
			p[below(m->len)] = (unsigned char)rnd();
	}
}

static void fuzz_mmap(bool on_ctl)
{
	struct cfile *f = &cfd[below(NR_CFD)];
	int fd = on_ctl ? ctl[below(NR_CTL)] : f->fd;
	uint64_t ring = f->attached ? f->geo.ring_bytes : 3 * 4096;
	uint64_t data = f->attached ? f->geo.data_bytes : 4 * 4096;
	size_t len;
	off_t off;
	int prot, flags, err;
	void *want = NULL, *p;

	if (fd < 0)
		return;
	switch (below(7)) {
	case 6:
		off = (off_t)AZBUSE_MMAP_MAP_OFF;
		len = (size_t)page * (1 + below(4));
		break;
	case 0:
	case 1:
		off = AZBUSE_MMAP_RING_OFF;
		len = (size_t)ring;
		break;
	case 2:
	case 3:
		off = (off_t)AZBUSE_MMAP_DATA_OFF;
		len = (size_t)data;
		break;
	default:
		off = (off_t)FIELD(64, AZBUSE_MMAP_DATA_OFF, 4096, 2ULL << 32, 1ULL << 63);
		len = (size_t)FIELD(64, ring, data, 4096);
	}
	/* a page or a few bytes more or less */
	if (chance(30))
		off += (off_t)((below(3) - 1) * (chance(80) ? (uint64_t)page : 1 + below(page)));
	if (chance(30))
		len += (size_t)((below(3) - 1) * (chance(80) ? (uint64_t)page : 1 + below(page)));
	if (chance(5))
		len = (size_t)boundary(64);
	if (len > (1ULL << 46))
		len = (size_t)(1ULL << 46);

	prot = chance(75) ? PROT_READ | PROT_WRITE
			  : (int)(const int[]){ PROT_READ, PROT_WRITE, PROT_NONE,
						PROT_READ | PROT_WRITE | PROT_EXEC }[below(4)];
	flags = chance(80) ? MAP_SHARED
			   : (int)(const int[]){ MAP_PRIVATE, MAP_SHARED_VALIDATE }[below(2)];
	if (chance(10))
		flags |= MAP_POPULATE;
	if (chance(5))
		flags |= MAP_NORESERVE;
	if (chance(10) && len <= FIXED_AREA && !fixed_in_use) {
		/* over our reserved area, which nothing else uses */
		want = fixed_area;
		flags |= MAP_FIXED;
	} else if (chance(3)) {
		/* where something is mapped already: EEXIST */
		want = chance(50) ? (void *)scratch : (void *)noaccess;
		flags |= MAP_FIXED_NOREPLACE;
	}
	note("%s mmap(%p, 0x%zx, %d, 0x%x, fd %d, 0x%llx)", on_ctl ? "ctl" : "cdev", want, len,
	     prot, flags, fd, (unsigned long long)off);
	p = mmap(want, len, prot, flags, fd, off);
	err = p == MAP_FAILED ? errno : 0;
	outcome(on_ctl ? K_MMAP_CTL : K_MMAP, err);
	if (p == MAP_FAILED) {
		/* a failed MAP_FIXED may have unmapped part of the reservation */
		if (flags & MAP_FIXED)
			reserve_fixed_area();
		return;
	}
	if (want && p != want)
		fail("mmap at %p went to %p", want, p);
	if (on_ctl || !f->attached) {
		fail("mmap of %s succeeded", on_ctl ? "the control device" : "an unattached file");
		if (flags & MAP_FIXED)
			reserve_fixed_area();
		else
			munmap(p, len);
		return;
	}
	nr_maps_ok++;
	if (flags & MAP_FIXED)
		fixed_in_use = true;
	if (nr_maps == MAX_MAPS)
		unmap_one((unsigned)below(nr_maps));
	maps[nr_maps].addr = p;
	maps[nr_maps].len = len;
	maps[nr_maps].prot = prot;
	maps[nr_maps].cfd = (int)(f - cfd);
	maps[nr_maps].ring = off == (off_t)AZBUSE_MMAP_RING_OFF;
	maps[nr_maps].fixed = (flags & MAP_FIXED) != 0;
	maps[nr_maps].target_gen = target.alive ? target.gen : 0;
	maps[nr_maps].queue = f->queue;
	touch_map(&maps[nr_maps]);
	nr_maps++;
}

/* Scribble on a mapped ring, then COMMIT on its file: the kernel must trust nothing there. */
static void fuzz_ring_garbage(void)
{
	struct cfile *f;
	struct map *m;
	unsigned i;
	int ret;

	for (i = 0; i < nr_maps; i++)
		if (maps[i].ring && (maps[i].prot & PROT_WRITE))
			break;
	if (i == nr_maps)
		return;
	m = &maps[i];
	f = &cfd[m->cfd];
	touch_map(m);
	if (f->fd < 0)
		return;
	note("COMMIT after ring garbage on fd %d", f->fd);
	ret = xioctl(f->fd, AZBUSE_IOC_COMMIT, commit_timeout());
	outcome(K_COMMIT, ret);
}

static void fuzz_mremap(void)
{
	struct map *m;
	size_t len;
	void *p;

	if (!nr_maps)
		return;
	m = &maps[below(nr_maps)];
	if (m->fixed)
		return;
	len = chance(50) ? m->len + (size_t)page : m->len - (size_t)page;
	note("mremap(%p, %zu, %zu, MAYMOVE)", m->addr, m->len, len);
	if (!len)
		return;
	p = mremap(m->addr, m->len, len, chance(50) ? MREMAP_MAYMOVE : 0);
	if (p == MAP_FAILED)
		return;
	if (len > m->len)
		fail("mremap grew a VM_DONTEXPAND mapping from %zu to %zu", m->len, len);
	m->addr = p;
	m->len = len;
	touch_map(m);
}

/* Compare LIST with what the fuzzer believes exists; resync if they differ. */
static void check_list(const char *when)
{
	static uint32_t ids[AZBUSE_MAX_DEVICES];
	struct azbuse_dev_list l = { .ids_ptr = (uintptr_t)ids, .capacity = AZBUSE_MAX_DEVICES };
	unsigned want = nr_preexisting + nr_live + target.alive, k, j;
	int ret;

	note("LIST check %s", when);
	ret = xioctl(ctl[0], AZBUSE_CTL_LIST, (unsigned long)&l);
	if (ret) {
		fail("LIST (%s): %s", when, strerror(ret));
		return;
	}
	for (k = 0; k < l.count && k < AZBUSE_MAX_DEVICES; k++) {
		uint32_t id = ids[k];
		bool known = is_live(id) || (target.alive && id == target.id);

		for (j = 0; j < nr_preexisting && !known; j++)
			known = preexisting[j] == id;
		if (!known) {
			fail("LIST (%s) shows device %u, which the fuzzer does not know of", when,
			     id);
			remove_or_fail(id, "an unknown device");
		}
	}
	if (l.count != want)
		fail("LIST (%s) counts %u devices, want %u", when, l.count, want);
}

/* Close and reopen a control fd: the devices it added (never started) must go with it. */
static void reopen_ctl(void)
{
	int which = 1 + (int)below(NR_CTL - 1);
	struct azbuse_dev_info info;
	unsigned i;
	int ret;

	note("close and reopen ctl[%d]", which);
	close(ctl[which]);
	ctl[which] = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctl[which] < 0)
		die("reopen " AZBUSE_CTL_DEVICE);
	for (i = 0; i < nr_live;) {
		if (live[i].owner != which) {
			i++;
			continue;
		}
		memset(&info, 0, sizeof(info));
		info.dev_id = live[i].id;
		ret = xioctl(ctl[0], AZBUSE_CTL_INFO, (unsigned long)&info);
		if (ret != ENOENT)
			fail("device %u outlived the control fd that added it (INFO: %s)",
			     live[i].id, ret ? strerror(ret) : "success");
		forget_live(i);
	}
}

static void one_call(void)
{
	unsigned r = (unsigned)below(1000);

	if (!target.alive && progress->call - target.dead_since > 200) {
		note("recreate the target");
		target_create();
		return;
	}
	if (r < 480) {
		fuzz_ioctl(true);
	} else if (r < 880) {
		fuzz_ioctl(false);
	} else if (r < 930) {
		fuzz_mmap(below(10) == 0);
	} else if (r < 950) {
		fuzz_ring_garbage();
	} else if (r < 965) {
		if (nr_maps)
			touch_map(&maps[below(nr_maps)]);
	} else if (r < 975) {
		if (nr_maps) {
			note("munmap");
			unmap_one((unsigned)below(nr_maps));
		}
	} else if (r < 980) {
		fuzz_mremap();
	} else if (r < 995) {
		struct cfile *f = &cfd[below(NR_CFD)];

		note("close and reopen cdev fd %d", f->fd);
		open_cfile(f);
	} else if (r < 997) {
		reopen_ctl();
	} else {
		/* remove the target under its open files and mappings */
		if (target.alive) {
			note("REMOVE the target %u", target.id);
			remove_or_fail(target.id, "the target");
			target.alive = false;
			target.dead_since = progress->call;
			nr_target_removed++;
		}
	}
}

static void setup_memory(void)
{
	unsigned char *p;

	page = sysconf(_SC_PAGESIZE);
	scratch = mmap(NULL, SCRATCH_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro_page = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	noaccess = mmap(NULL, 4 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fixed_area = mmap(NULL, FIXED_AREA, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	if (scratch == MAP_FAILED || p == MAP_FAILED || ro_page == MAP_FAILED ||
	    noaccess == MAP_FAILED || fixed_area == MAP_FAILED)
		die("mmap");
	if (mprotect(p + 2 * page, page, PROT_NONE))
		die("mprotect");
	edge_end = p + 2 * page;
}

static void print_counts(void)
{
	unsigned k, e;

	printf("outcomes per call kind (errno: count):\n");
	for (k = 0; k < NR_KINDS; k++) {
		unsigned long total = 0;

		for (e = 0; e <= MAX_ERRNO; e++)
			total += counts[k][e];
		if (!total)
			continue;
		printf("  %-16s %7lu:", kind_names[k], total);
		for (e = 0; e <= MAX_ERRNO; e++)
			if (counts[k][e])
				printf(" %s %lu", e ? strerrorname_np((int)e) : "ok", counts[k][e]);
		printf("\n");
	}
}

/* The fuzzing itself, in the child. */
static int run(uint64_t seed, uint64_t calls)
{
	uint64_t start = now_ms();
	unsigned i;

	rng_state = seed;
	setup_memory();
	ncpus = (unsigned)sysconf(_SC_NPROCESSORS_CONF);
	{
		/* no SA_RESTART: the COMMIT returns EINTR */
		struct sigaction sa = { .sa_handler = on_alarm };

		sigaction(SIGALRM, &sa, NULL);
	}
	for (i = 0; i < NR_CTL; i++) {
		ctl[i] = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
		if (ctl[i] < 0)
			die("open " AZBUSE_CTL_DEVICE);
	}
	{
		struct azbuse_dev_list l = { .ids_ptr = (uintptr_t)preexisting,
					     .capacity = AZBUSE_MAX_DEVICES };

		if (xioctl(ctl[0], AZBUSE_CTL_LIST, (unsigned long)&l))
			die("LIST");
		nr_preexisting = l.count;
	}
	for (i = 0; i < NR_CFD; i++)
		cfd[i].fd = -1;
	target_create();

	for (progress->call = 0; progress->call < calls; progress->call++) {
		one_call();
		if (progress->call % CHECK_EVERY == CHECK_EVERY - 1)
			check_list("periodic");
		if (progress->call % 20000 == 19999)
			printf("%" PRIu64 " calls, %.1f s\n", progress->call + 1,
			       (double)(now_ms() - start) / 1000);
	}

	note("cleanup");
	while (nr_maps)
		unmap_one(0);
	for (i = 0; i < NR_CFD; i++)
		close_cfile(&cfd[i]);
	while (nr_live) {
		remove_or_fail(live[0].id, "a fuzz device");
		forget_live(0);
	}
	if (target.alive)
		remove_or_fail(target.id, "the target");
	target.alive = false;
	check_list("at the end");

	print_counts();
	printf("%" PRIu64 " calls in %.1f s: %lu ADDs and %lu REMOVEs succeeded, target removed "
	       "%lu times, %lu mmaps, %lu interrupted waits\n",
	       calls, (double)(now_ms() - start) / 1000, nr_adds_ok, nr_removes_ok,
	       nr_target_removed, nr_maps_ok, nr_eintr);
	printf("%lu unexpected outcomes\n", unexpected);
	fflush(stdout);
	return unexpected ? 1 : 0;
}

/* ---- the parent: crash and hang reports, leaks -------------------------------------- */

static long meminfo_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	sync();
	if (fd >= 0) {
		if (write(fd, "3", 1) < 0) {
			/* not fatal: the numbers are just noisier */
		}
		close(fd);
	}
}

static int list_count(void)
{
	struct azbuse_dev_list l = { 0 };
	int fd = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC), ret;

	if (fd < 0)
		return -1;
	ret = xioctl(fd, AZBUSE_CTL_LIST, (unsigned long)&l);
	close(fd);
	return ret ? -1 : (int)l.count;
}

/* What a hung fuzzer is doing: its kernel stack, the syscall and its payload, the devices. */
static void dump_hang(pid_t pid)
{
	char path[64], line[256];
	unsigned long nr = 0, a0 = 0, a1 = 0, a2 = 0;
	uint32_t ids[AZBUSE_MAX_DEVICES];
	struct azbuse_dev_list l = { .ids_ptr = (uintptr_t)ids, .capacity = AZBUSE_MAX_DEVICES };
	unsigned char payload[32];
	unsigned k, q;
	FILE *f;
	int fd, ctlfd;

	snprintf(path, sizeof(path), "/proc/%d/stack", pid);
	f = fopen(path, "r");
	if (f) {
		printf("kernel stack of the fuzzer:\n");
		while (fgets(line, sizeof(line), f))
			printf("  %s", line);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
	f = fopen(path, "r");
	if (f && fscanf(f, "%lu %lx %lx %lx", &nr, &a0, &a1, &a2) == 4) {
		printf("in syscall %lu (%#lx, %#lx, %#lx)\n", nr, a0, a1, a2);
		snprintf(path, sizeof(path), "/proc/%d/mem", pid);
		fd = open(path, O_RDONLY);
		if (fd >= 0 && pread(fd, payload, sizeof(payload), (off_t)a2) == sizeof(payload)) {
			printf("  payload:");
			for (k = 0; k < sizeof(payload); k++)
				printf(" %02x", payload[k]);
			printf("\n");
		}
		if (fd >= 0)
			close(fd);
	}
	if (f)
		fclose(f);
	ctlfd = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctlfd < 0 || xioctl(ctlfd, AZBUSE_CTL_LIST, (unsigned long)&l))
		return;
	for (k = 0; k < l.count && k < AZBUSE_MAX_DEVICES; k++) {
		struct azbuse_dev_info info = { .dev_id = ids[k] };
		int ret = xioctl(ctlfd, AZBUSE_CTL_INFO, (unsigned long)&info);

		printf("  device %u: INFO %d state %u queues %u owner %d:", ids[k], ret, info.state,
		       info.nr_queues, info.owner_pid);
		for (q = 0; !ret && q < info.nr_queues; q++) {
			struct azbuse_queue_info qi = { .dev_id = ids[k], .queue = (uint16_t)q };

			if (!xioctl(ctlfd, AZBUSE_CTL_QUEUE_INFO, (unsigned long)&qi))
				printf(" q%u state %u pid %d", q, qi.state, qi.worker_pid);
		}
		printf("\n");
	}
	close(ctlfd);
}

static void usage(void)
{
	fprintf(stderr, "usage: azbuse-fuzz-ioctl [--seed N] [--calls N] [--timeout SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t seed = 0, calls = 100000;
	unsigned timeout_s = 150;
	long slab0, vm0, slab1, vm1;
	bool have_seed = false;
	int i, status, before, after, bad = 0;
	uint64_t deadline;
	pid_t pid;

	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--seed")) {
			seed = strtoull(argv[++i], NULL, 0);
			have_seed = true;
		} else if (!strcmp(argv[i], "--calls")) {
			calls = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--timeout")) {
			timeout_s = (unsigned)strtoul(argv[++i], NULL, 0);
		} else {
			usage();
		}
	}
	if (!have_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("seed %" PRIu64 ", %" PRIu64 " calls (replay: azbuse-fuzz-ioctl --seed %" PRIu64
	       " --calls %" PRIu64 ")\n",
	       seed, calls, seed, calls);

	/* SET_BACKING may be given it: a file of nobody else's, gone when we are */
	scratch_fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	progress = mmap(NULL, sizeof(*progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	if (progress == MAP_FAILED)
		die("mmap");
	before = list_count();
	if (before < 0)
		die("LIST before the fuzzing");
	drop_caches();
	slab0 = meminfo_kb("Slab");
	vm0 = meminfo_kb("VmallocUsed");

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(run(seed, calls));
	}
	deadline = now_ms() + (uint64_t)timeout_s * 1000;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (now_ms() > deadline) {
			printf("FAIL the fuzzer hangs at call %" PRIu64 ": %s\n", progress->call,
			       progress->what);
			dump_hang(pid);
			kill(pid, SIGKILL);
			printf("replay: azbuse-fuzz-ioctl --seed %" PRIu64 " --calls %" PRIu64 "\n",
			       seed, progress->call + 1);
			return 1;
		}
		usleep(100000);
	}
	if (WIFSIGNALED(status)) {
		printf("FAIL the fuzzer died from signal %d (%s) at call %" PRIu64 ": %s\n",
		       WTERMSIG(status), strsignal(WTERMSIG(status)), progress->call,
		       progress->what);
		printf("replay: azbuse-fuzz-ioctl --seed %" PRIu64 " --calls %" PRIu64 "\n", seed,
		       progress->call + 1);
		bad = 1;
	} else if (WEXITSTATUS(status)) {
		printf("FAIL the fuzzer reported unexpected outcomes (exit %d)\n",
		       WEXITSTATUS(status));
		bad = 1;
	}

	/* the child's control fds are closed: nothing it added may remain */
	after = list_count();
	if (after != before) {
		printf("FAIL %d devices after the fuzzing, %d before\n", after, before);
		bad = 1;
	}
	drop_caches();
	slab1 = meminfo_kb("Slab");
	vm1 = meminfo_kb("VmallocUsed");
	printf("Slab %ld -> %ld kB, VmallocUsed %ld -> %ld kB\n", slab0, slab1, vm0, vm1);
	/* each leaked device would hold >= 20 kB of slab and its vmalloc'ed slots and rings */
	if (slab1 - slab0 > 16 * 1024) {
		printf("FAIL Slab grew by %ld kB\n", slab1 - slab0);
		bad = 1;
	}
	if (vm1 - vm0 > 8 * 1024) {
		printf("FAIL VmallocUsed grew by %ld kB\n", vm1 - vm0);
		bad = 1;
	}
	if (bad)
		printf("replay: azbuse-fuzz-ioctl --seed %" PRIu64 " --calls %" PRIu64 "\n", seed,
		       calls);
	else
		printf("ok   %" PRIu64 " calls, no device left, no growth of Slab or VmallocUsed\n",
		       calls);
	return bad;
}
