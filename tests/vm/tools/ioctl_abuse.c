// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * ioctl_abuse.c - feeds the azbuse module malformed, misdirected and
 * unprivileged requests through /dev/azbusectl and /dev/azbusec<N>, and acts
 * as a worker that writes garbage into its rings, checking that every one
 * gets the documented error (and the garbage is counted as rejected) while
 * the module keeps serving. Run as root inside the test VM (40-ioctl-abuse.sh).
 *
 *   azbuse-ioctl-abuse [DEV_ID]     (default 900: an id the suite never uses)
 *
 * Prints one line per check ("ok" or "FAIL"), a summary, and exits 1 if any
 * check failed. The device it adds is removed before it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>

#include <azbuse/uapi.h>

#include "testlib.h"

#define STATIC_CHECK(cond) _Static_assert(cond, #cond)
AZBUSE_ABI_CHECKS(STATIC_CHECK);

#define TEST_SIZE (16ULL << 20)
#define TEST_DEPTH 4
#define IO_BYTES 4096
#define SQE_WAIT_MS 5000
#define CHILD_WAIT_MS 20000

/* Addresses no ioctl may read or write through. */
static const struct {
	void *ptr;
	const char *name;
} bad_ptrs[] = {
	{ NULL, "NULL" },
	{ (void *)1, "(void *)1" },
	{ (void *)0xffff888000000000ULL, "a kernel address (direct map)" },
	{ (void *)0xffffffffff600000ULL, "the vsyscall page" },
};
#define NR_BAD_PTRS (sizeof(bad_ptrs) / sizeof(bad_ptrs[0]))

static uint32_t test_id = 900;

static const char *err_name(int err)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ 0, "0" },	      { EINVAL, "EINVAL" },	    { EEXIST, "EEXIST" },
		{ ENOENT, "ENOENT" }, { ENOTTY, "ENOTTY" },	    { EFAULT, "EFAULT" },
		{ ENXIO, "ENXIO" },   { EBUSY, "EBUSY" },	    { EPERM, "EPERM" },
		{ EIO, "EIO" },	      { ENODEV, "ENODEV" },	    { EALREADY, "EALREADY" },
		{ ENOSPC, "ENOSPC" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	};
	static char buf[32];
	size_t k;

	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (names[k].err == err)
			return names[k].name;
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}

/* 0 or the errno of the failed ioctl. */
static int xioctl(int fd, unsigned long cmd, unsigned long arg)
{
	return ioctl(fd, cmd, arg) < 0 ? errno : 0;
}

static int ioctl_ptr(int fd, unsigned long cmd, const void *arg)
{
	return xioctl(fd, cmd, (unsigned long)arg);
}

/* Check that an ioctl gave the wanted errno (0: success). */
static void expect(int got, int want, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void expect(int got, int want, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (got == want)
		check(true, "%s: %s", what, err_name(got));
	else
		check(false, "%s: got %s, want %s", what, err_name(got), err_name(want));
}

static void die(const char *what)
{
	printf("FAIL %s: %s (cannot continue)\n", what, strerror(errno));
	printf("%u checks, %u failed\n", checks, failures + 1);
	exit(1);
}

static int open_ctl(void)
{
	int fd = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open " AZBUSE_CTL_DEVICE);
	return fd;
}

static void cdev_path(char *buf, size_t len, uint32_t id)
{
	snprintf(buf, len, AZBUSE_CHAR_PREFIX "%u", id);
}

static void bdev_path(char *buf, size_t len, uint32_t id)
{
	snprintf(buf, len, AZBUSE_BLOCK_PREFIX "%u", id);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- control device --------------------------------------------------------- */

static struct azbuse_dev_info valid_info(uint32_t id)
{
	struct azbuse_dev_info info;

	memset(&info, 0, sizeof(info));
	info.dev_id = id;
	info.size_bytes = TEST_SIZE;
	info.nr_queues = 1;
	info.queue_depth = TEST_DEPTH;
	return info;
}

static int dev_cmd(int ctl, unsigned long cmd, uint32_t id)
{
	struct azbuse_dev_cmd c;

	memset(&c, 0, sizeof(c));
	c.dev_id = id;
	return ioctl_ptr(ctl, cmd, &c);
}

static int queue_info(int ctl, uint32_t id, uint16_t queue, struct azbuse_queue_info *qi)
{
	memset(qi, 0, sizeof(*qi));
	qi->dev_id = id;
	qi->queue = queue;
	return ioctl_ptr(ctl, AZBUSE_CTL_QUEUE_INFO, qi);
}

static uint64_t rejected(int ctl)
{
	struct azbuse_queue_info qi;

	if (queue_info(ctl, test_id, 0, &qi))
		return UINT64_MAX;
	return qi.rejected;
}

/* Device count per LIST with capacity 0. */
static int list_count(int ctl, uint32_t *count)
{
	struct azbuse_dev_list l;
	int ret;

	memset(&l, 0, sizeof(l));
	ret = ioctl_ptr(ctl, AZBUSE_CTL_LIST, &l);
	*count = l.count;
	return ret;
}

/* An ADD that must fail; if it succeeds anyway, remove what it made. */
static void expect_add_fails(int ctl, struct azbuse_dev_info info, int want, const char *what)
{
	int got = ioctl_ptr(ctl, AZBUSE_CTL_ADD, &info);

	expect(got, want, "ADD with %s", what);
	if (!got)
		dev_cmd(ctl, AZBUSE_CTL_REMOVE, info.dev_id);
}

static void test_add_validation(int ctl)
{
	const uint32_t id = test_id + 1;
	struct azbuse_dev_info i;
	int ret;

#define BAD_ADD(field_setup, want, what)                                                           \
	do {                                                                                       \
		i = valid_info(id);                                                                \
		field_setup;                                                                       \
		expect_add_fails(ctl, i, want, what);                                              \
	} while (0)

	BAD_ADD(i.size_bytes = 0, EINVAL, "size 0");
	BAD_ADD(i.size_bytes = 1000, EINVAL, "size 1000 (not a multiple of 512)");
	BAD_ADD((i.logical_block_size = 4096, i.size_bytes = TEST_SIZE + 512), EINVAL,
		"size 16M+512 with 4k blocks");
	BAD_ADD(i.logical_block_size = 1000, EINVAL, "block size 1000");
	BAD_ADD(i.logical_block_size = 8192, EINVAL, "block size 8192");
	BAD_ADD(i.logical_block_size = 256, EINVAL, "block size 256");
	BAD_ADD((i.logical_block_size = 4096, i.physical_block_size = 512), EINVAL,
		"physical block size below logical");
	BAD_ADD(i.nr_queues = AZBUSE_MAX_QUEUES + 1, EINVAL, "nr_queues 257");
	BAD_ADD(i.nr_queues = 65535, EINVAL, "nr_queues 65535");
	BAD_ADD(i.queue_depth = 5000, EINVAL, "queue_depth 5000");
	BAD_ADD(i.queue_depth = 65535, EINVAL, "queue_depth 65535");
	BAD_ADD(i.max_io_bytes = 1000, EINVAL, "max_io_bytes 1000");
	BAD_ADD(i.max_io_bytes = 6144, EINVAL, "max_io_bytes 6144 (not page aligned)");
	BAD_ADD(i.max_io_bytes = 8U << 20, EINVAL, "max_io_bytes 8 MiB");
	BAD_ADD(i.features = 1ULL << 11, EINVAL, "unknown feature bit 11");
	BAD_ADD(i.features = AZBUSE_F_ROUTE_QUEUE, EINVAL, "route by queue without sharding");
	BAD_ADD(i.features = AZBUSE_F_DIRECT_MAP, EINVAL, "direct map without map_chunk_bytes");
	BAD_ADD((i.features = AZBUSE_F_DIRECT_MAP, i.map_chunk_bytes = 3000), EINVAL,
		"direct map, map_chunk_bytes 3000");
	BAD_ADD((i.features = AZBUSE_F_DIRECT_MAP, i.map_chunk_bytes = 2048), EINVAL,
		"direct map, map_chunk_bytes 2048 (below a page)");
	BAD_ADD((i.features = AZBUSE_F_DIRECT_MAP, i.map_chunk_bytes = 65536,
		 i.map_user_bytes = 2U << 20),
		EINVAL, "direct map, map_user_bytes 2 MiB");
	BAD_ADD((i.features = AZBUSE_F_DIRECT_MAP | AZBUSE_F_SHARDED, i.chunk_sectors = 64,
		 i.map_chunk_bytes = 65536),
		EINVAL, "direct map chunk 64 KiB over a 32 KiB shard chunk");
	BAD_ADD(i.map_chunk_bytes = 65536, EINVAL, "map_chunk_bytes without the direct map");
	BAD_ADD(i.map_user_bytes = 64, EINVAL, "map_user_bytes without the direct map");
	BAD_ADD(i.features = 1ULL << 63, EINVAL, "unknown feature bit 63");
	BAD_ADD(i.features = AZBUSE_F_SHARDED, EINVAL, "sharded without chunk_sectors");
	BAD_ADD((i.features = AZBUSE_F_SHARDED, i.chunk_sectors = 24), EINVAL,
		"sharded, chunk_sectors 24 (not a power of 2)");
	BAD_ADD((i.features = AZBUSE_F_SHARDED, i.chunk_sectors = 4), EINVAL,
		"sharded, chunk_sectors 4 (below 4 KiB)");
	BAD_ADD((i.features = AZBUSE_F_SHARDED, i.chunk_sectors = 1U << 23), EINVAL,
		"sharded, chunk_sectors 2^23 (4 GiB)");
	BAD_ADD((i.features = AZBUSE_F_SHARDED, i.chunk_sectors = 8, i.nr_queues = 64,
		 i.queue_depth = 256),
		EINVAL, "sharded, 64 shards x depth 256 (over 8192 shared tags)");
	BAD_ADD(i.chunk_sectors = 8, EINVAL, "chunk_sectors without sharding");
	BAD_ADD(i.reserved[0] = 1, EINVAL, "reserved[0] != 0");
	BAD_ADD(i.reserved[5] = 1ULL << 63, EINVAL, "reserved[5] != 0");
	BAD_ADD(i.dev_id = 5000, EINVAL, "dev_id 5000");
	BAD_ADD(i.dev_id = AZBUSE_MAX_DEVICES, EINVAL, "dev_id 1024");
	BAD_ADD(i.io_timeout_ms = 50, EINVAL, "io_timeout_ms 50");
	BAD_ADD((i.nr_queues = AZBUSE_MAX_QUEUES, i.queue_depth = AZBUSE_MAX_QUEUE_DEPTH,
		 i.max_io_bytes = AZBUSE_MAX_IO_BYTES),
		EINVAL, "256 queues x depth 4096 x 4 MiB (4 TiB of slots)");
#undef BAD_ADD

	/* sharded: more shards than CPUs is fine, and the device says what it got */
	i = valid_info(id);
	i.features = AZBUSE_F_SHARDED | AZBUSE_F_DISCARD;
	i.chunk_sectors = 128;
	i.nr_queues = 4;
	ret = ioctl_ptr(ctl, AZBUSE_CTL_ADD, &i);
	expect(ret, 0, "ADD sharded, 4 shards of 64 KiB");
	if (!ret) {
		check(i.nr_queues == 4 && i.chunk_sectors == 128 && (i.features & AZBUSE_F_SHARDED),
		      "sharded ADD returns 4 shards of 128 sectors (got %u, %u)", i.nr_queues,
		      i.chunk_sectors);
		check(i.max_discard_sectors == 128, "sharded discards capped at a chunk (got %u)",
		      i.max_discard_sectors);
		dev_cmd(ctl, AZBUSE_CTL_REMOVE, i.dev_id);
	}
}

static void test_unknown_ids(int ctl)
{
	const uint32_t ids[] = { test_id + 2, AZBUSE_MAX_DEVICES, 5000, AZBUSE_DEV_ID_ANY };
	struct azbuse_queue_info qi;
	struct azbuse_dev_info info;
	size_t k;

	for (k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
		uint32_t id = ids[k];

		expect(dev_cmd(ctl, AZBUSE_CTL_START, id), ENOENT, "START of unknown id %u", id);
		expect(dev_cmd(ctl, AZBUSE_CTL_REMOVE, id), ENOENT, "REMOVE of unknown id %u", id);
		memset(&info, 0, sizeof(info));
		info.dev_id = id;
		expect(ioctl_ptr(ctl, AZBUSE_CTL_INFO, &info), ENOENT, "INFO of unknown id %u", id);
		expect(queue_info(ctl, id, 0, &qi), ENOENT, "QUEUE_INFO of unknown id %u", id);
	}
}

static void test_dev_cmd_fields(int ctl)
{
	struct azbuse_dev_cmd c;

	memset(&c, 0, sizeof(c));
	c.dev_id = test_id;
	c.flags = 1;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_START, &c), EINVAL, "START with flags 1");
	c.flags = ~AZBUSE_REMOVE_IF_UNUSED;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_REMOVE, &c), EINVAL, "REMOVE with unknown flags");
	c.flags = AZBUSE_REMOVE_IF_UNUSED << 1;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_REMOVE, &c), EINVAL, "REMOVE with flag 2");
	c.flags = AZBUSE_REMOVE_IF_UNUSED;
	c.dev_id = AZBUSE_MAX_DEVICES;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_REMOVE, &c), ENOENT,
	       "REMOVE if unused of an id out of range");
	c.dev_id = test_id;
	c.flags = 0;
	c.reserved[2] = 1;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_REMOVE, &c), EINVAL, "REMOVE with reserved != 0");
}

static void test_queue_info(int ctl)
{
	struct azbuse_queue_info qi;

	expect(queue_info(ctl, test_id, 1, &qi), EINVAL, "QUEUE_INFO queue 1 of a 1-queue device");
	expect(queue_info(ctl, test_id, 0xffff, &qi), EINVAL, "QUEUE_INFO queue 65535");
	expect(queue_info(ctl, test_id, 0, &qi), 0, "QUEUE_INFO queue 0");
	check(qi.state == AZBUSE_QUEUE_NO_WORKER && qi.worker_pid == 0,
	      "queue 0 has no worker before ATTACH (state %u, pid %d)", qi.state, qi.worker_pid);
	expect(dev_cmd(ctl, AZBUSE_CTL_START, test_id), EBUSY,
	       "START before every queue has a worker");
}

static void test_list(int ctl)
{
	uint32_t ids[AZBUSE_MAX_DEVICES], count = 0, k;
	struct azbuse_dev_list l;
	bool found = false;
	int ret;

	memset(&l, 0, sizeof(l));
	l.count = 12345;
	ret = ioctl_ptr(ctl, AZBUSE_CTL_LIST, &l);
	expect(ret, 0, "LIST with capacity 0 and no buffer");
	count = l.count;
	check(count >= 1 && count < AZBUSE_MAX_DEVICES,
	      "LIST with capacity 0 returns the count (%u)", count);

	memset(&l, 0, sizeof(l));
	l.ids_ptr = (uintptr_t)ids;
	l.capacity = AZBUSE_MAX_DEVICES;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_LIST, &l), 0, "LIST with room for every id");
	for (k = 0; k < l.count && k < AZBUSE_MAX_DEVICES; k++)
		found |= ids[k] == test_id;
	check(l.count == count && found, "LIST shows %u ids, among them %u", l.count, test_id);

	memset(&l, 0, sizeof(l));
	l.ids_ptr = (uintptr_t)ids;
	l.capacity = 0xffffffff;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_LIST, &l), 0, "LIST with capacity 0xffffffff (clamped)");

	memset(&l, 0, sizeof(l));
	l.reserved[1] = 1;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_LIST, &l), EINVAL, "LIST with reserved != 0");
}

static const struct {
	unsigned long cmd;
	const char *name;
} ctl_cmds[] = {
	{ AZBUSE_CTL_VERSION, "VERSION" },
	{ AZBUSE_CTL_ADD, "ADD" },
	{ AZBUSE_CTL_START, "START" },
	{ AZBUSE_CTL_REMOVE, "REMOVE" },
	{ AZBUSE_CTL_INFO, "INFO" },
	{ AZBUSE_CTL_LIST, "LIST" },
	{ AZBUSE_CTL_QUEUE_INFO, "QUEUE_INFO" },
};
#define NR_CTL_CMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static void test_encodings(int ctl)
{
	/* a buffer that holds a valid ADD, so that a lax decoder would act on it */
	union {
		struct azbuse_dev_info info;
		unsigned char bytes[512];
	} buf;
	const unsigned long unknown[] = {
		_IO(AZBUSE_IOC_MAGIC, 0x07),
		_IOWR(AZBUSE_IOC_MAGIC, 0x1f, struct azbuse_dev_info),
		_IOWR(AZBUSE_IOC_MAGIC, 0xff, struct azbuse_dev_info),
		AZBUSE_IOC_ATTACH, /* worker ioctls mean nothing on the control device */
		AZBUSE_IOC_COMMIT,
		_IOWR(0x42, 0x01, struct azbuse_dev_info),
		0x5401, /* TCGETS */
	};
	size_t k;

	for (k = 0; k < sizeof(unknown) / sizeof(unknown[0]); k++) {
		memset(&buf, 0, sizeof(buf));
		buf.info = valid_info(test_id + 3);
		expect(ioctl_ptr(ctl, unknown[k], &buf), ENOTTY,
		       "unknown ioctl 0x%08lx on the control device", unknown[k]);
	}
	for (k = 0; k < NR_CTL_CMDS; k++) {
		unsigned long cmd = ctl_cmds[k].cmd, size = _IOC_SIZE(cmd);
		unsigned long variants[] = {
			_IOC(_IOC_DIR(cmd), AZBUSE_IOC_MAGIC, _IOC_NR(cmd), size - 8),
			_IOC(_IOC_DIR(cmd), AZBUSE_IOC_MAGIC, _IOC_NR(cmd), size + 8),
			_IOC(_IOC_DIR(cmd), AZBUSE_IOC_MAGIC, _IOC_NR(cmd), 0),
			_IOC(_IOC_DIR(cmd) ^ _IOC_WRITE, AZBUSE_IOC_MAGIC, _IOC_NR(cmd), size),
		};
		static const char *const vnames[] = { "size - 8", "size + 8", "size 0",
						      "flipped write direction" };
		size_t v;

		for (v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
			memset(&buf, 0, sizeof(buf));
			buf.info = valid_info(test_id + 3);
			expect(ioctl_ptr(ctl, variants[v], &buf), ENOTTY, "%s encoded with %s",
			       ctl_cmds[k].name, vnames[v]);
		}
	}
	/* if any of those was taken for an ADD, a device test_id + 3 exists now */
	expect(dev_cmd(ctl, AZBUSE_CTL_REMOVE, test_id + 3), ENOENT,
	       "none of the misencoded ioctls added a device");
}

static void test_bad_pointers(int ctl)
{
	long page = sysconf(_SC_PAGESIZE);
	struct azbuse_dev_info info;
	struct azbuse_dev_list l;
	unsigned char *two;
	size_t k, p;
	uint32_t ids[4];

	for (k = 0; k < NR_CTL_CMDS; k++)
		for (p = 0; p < NR_BAD_PTRS; p++)
			expect(ioctl_ptr(ctl, ctl_cmds[k].cmd, bad_ptrs[p].ptr), EFAULT,
			       "%s with %s", ctl_cmds[k].name, bad_ptrs[p].name);

	/* a struct running off the end of the mapping into an unmapped page */
	two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (two == MAP_FAILED)
		die("mmap");
	munmap(two + page, page);
	info = valid_info(test_id + 4);
	memcpy(two + page - 64, &info, 64);
	expect(ioctl_ptr(ctl, AZBUSE_CTL_ADD, two + page - 64), EFAULT,
	       "ADD with a struct straddling an unmapped page");

	/* a valid ADD the kernel cannot write back: it must undo the device */
	memcpy(two, &info, sizeof(info));
	mprotect(two, page, PROT_READ);
	expect(ioctl_ptr(ctl, AZBUSE_CTL_ADD, two), EFAULT, "ADD from a read-only page");
	info.dev_id = test_id + 4;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_INFO, &info), ENOENT,
	       "the ADD that could not report back left no device");
	munmap(two, page);

	for (p = 0; p < NR_BAD_PTRS; p++) {
		memset(&l, 0, sizeof(l));
		l.ids_ptr = (uintptr_t)bad_ptrs[p].ptr;
		l.capacity = 4;
		expect(ioctl_ptr(ctl, AZBUSE_CTL_LIST, &l), EFAULT, "LIST into %s",
		       bad_ptrs[p].name);
	}
	memset(&l, 0, sizeof(l));
	l.ids_ptr = (uintptr_t)ids;
	l.capacity = 4;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_LIST, &l), 0, "LIST still works after the faults");
}

/* ---- worker side -------------------------------------------------------------- */

struct worker {
	int fd;
	struct azbuse_attach geo;
	void *ring;
	unsigned char *data;
	struct azbuse_ring_header *hdr;
	struct azbuse_sqe *sq;
	struct azbuse_cqe *cq;
	uint32_t sq_head; /* our copies */
	uint32_t cq_tail;
};

static uint8_t pattern_byte(uint64_t sector, size_t i)
{
	return (uint8_t)((sector + i / 512) * 31) ^ (uint8_t)(i % 251);
}

static void fill_pattern(unsigned char *buf, uint64_t sector, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = pattern_byte(sector, i);
}

static bool has_pattern(const unsigned char *buf, uint64_t sector, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (buf[i] != pattern_byte(sector, i))
			return false;
	return true;
}

/* Take the next submission, sleeping in COMMIT up to timeout_ms for one. */
static bool next_sqe(struct worker *w, struct azbuse_sqe *out, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		uint32_t tail = __atomic_load_n(&w->hdr->sq_tail, __ATOMIC_ACQUIRE);

		if (tail != w->sq_head) {
			*out = w->sq[w->sq_head & (w->geo.sq_entries - 1)];
			w->sq_head++;
			__atomic_store_n(&w->hdr->sq_head, w->sq_head, __ATOMIC_RELEASE);
			return true;
		}
		if (now_ms() >= deadline)
			return false;
		if (xioctl(w->fd, AZBUSE_IOC_COMMIT, 50) == ENODEV)
			return false;
	}
}

static void post_cqe(struct worker *w, uint32_t tag, uint32_t seq, int32_t result)
{
	struct azbuse_cqe *cqe = &w->cq[w->cq_tail & (w->geo.cq_entries - 1)];

	cqe->tag = tag;
	cqe->seq = seq;
	cqe->result = result;
	cqe->flags = 0;
	cqe->addr = 0;
	cqe->reserved = 0;
	w->cq_tail++;
	__atomic_store_n(&w->hdr->cq_tail, w->cq_tail, __ATOMIC_RELEASE);
}

/* Serve a request like a mem device that holds the pattern everywhere. */
static int serve(struct worker *w, const struct azbuse_sqe *sqe)
{
	if (sqe->op == AZBUSE_OP_READ && sqe->tag < w->geo.nr_slots &&
	    sqe->len <= w->geo.slot_bytes)
		fill_pattern(w->data + (size_t)sqe->tag * w->geo.slot_bytes, sqe->sector, sqe->len);
	post_cqe(w, sqe->tag, sqe->seq, 0);
	return xioctl(w->fd, AZBUSE_IOC_COMMIT, 0);
}

/* Serve requests until child `pid` exits; its wait status, or -1 on timeout. */
static int serve_until_exit(struct worker *w, pid_t pid, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct azbuse_sqe sqe;
	int status;

	while (now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		if (next_sqe(w, &sqe, 20))
			serve(w, &sqe);
		else if (__atomic_load_n(&w->hdr->kflags, __ATOMIC_RELAXED) & AZBUSE_KF_DEAD)
			sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* Child exit codes of do_io(). */
enum { IO_OK = 0, IO_BAD_DATA = 10, IO_OPEN_FAILED = 11, IO_ERRNO_BASE = 20 };

/* Fork a child that reads (checking the pattern) or writes one 4k block at byte `off`. */
static pid_t spawn_io(bool write, uint64_t off)
{
	char path[64];
	void *buf;
	pid_t pid;
	ssize_t n;
	int fd;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid)
		return pid;
	bdev_path(path, sizeof(path), test_id);
	fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0 || posix_memalign(&buf, 4096, IO_BYTES))
		_exit(IO_OPEN_FAILED);
	if (write) {
		fill_pattern(buf, off / 512, IO_BYTES);
		n = pwrite(fd, buf, IO_BYTES, (off_t)off);
	} else {
		memset(buf, 0, IO_BYTES);
		n = pread(fd, buf, IO_BYTES, (off_t)off);
	}
	if (n < 0)
		_exit(IO_ERRNO_BASE + (errno < 100 ? errno : 99));
	if (n != IO_BYTES || (!write && !has_pattern(buf, off / 512, IO_BYTES)))
		_exit(IO_BAD_DATA);
	_exit(IO_OK);
}

static int io_result(int status)
{
	if (status == -1)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Wait for the child's request at byte `off` (serving any other) and take it. */
static bool take_request(struct worker *w, uint64_t off, struct azbuse_sqe *sqe)
{
	uint64_t deadline = now_ms() + SQE_WAIT_MS;

	while (now_ms() < deadline) {
		if (!next_sqe(w, sqe, SQE_WAIT_MS))
			return false;
		if (sqe->sector == off / 512 &&
		    (sqe->op == AZBUSE_OP_READ || sqe->op == AZBUSE_OP_WRITE))
			return true;
		serve(w, sqe);
	}
	return false;
}

static void test_cdev_before_attach(const char *cpath)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open(cpath, O_RDWR | O_CLOEXEC);
	void *p;

	if (fd < 0)
		die("open the char device");
	expect(xioctl(fd, AZBUSE_IOC_COMMIT, 0), ENXIO, "COMMIT before ATTACH");
	expect(xioctl(fd, AZBUSE_IOC_COMMIT, 10), ENXIO, "COMMIT(10 ms) before ATTACH");
	expect(xioctl(fd, AZBUSE_IOC_KICK, 0), ENXIO, "KICK before ATTACH");
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, AZBUSE_MMAP_RING_OFF);
	expect(p == MAP_FAILED ? errno : 0, ENXIO, "mmap of the ring before ATTACH");
	if (p != MAP_FAILED)
		munmap(p, page);
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, AZBUSE_MMAP_DATA_OFF);
	expect(p == MAP_FAILED ? errno : 0, ENXIO, "mmap of the data before ATTACH");
	if (p != MAP_FAILED)
		munmap(p, page);
	close(fd);
}

static void test_attach_errors(int fd)
{
	struct azbuse_attach a;
	size_t p;

	memset(&a, 0, sizeof(a));
	a.queue = 1;
	expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, &a), EINVAL, "ATTACH queue 1 of a 1-queue device");
	a.queue = 0xffff;
	expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, &a), EINVAL, "ATTACH queue 65535");
	memset(&a, 0, sizeof(a));
	a.flags = 1;
	expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, &a), EINVAL, "ATTACH with flags 1");
	a.flags = 0x8000;
	expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, &a), EINVAL, "ATTACH with flags 0x8000");
	memset(&a, 0, sizeof(a));
	a.reserved[0] = 1;
	expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, &a), EINVAL, "ATTACH with reserved != 0");
	memset(&a, 0, sizeof(a));
	a.reserved0 = 1;
	expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, &a), EINVAL, "ATTACH with reserved0 != 0");
	memset(&a, 0, sizeof(a));
	a.poll_us = AZBUSE_MAX_POLL_US + 1;
	expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, &a), EINVAL, "ATTACH with poll_us over the limit");
	for (p = 0; p < NR_BAD_PTRS; p++)
		expect(ioctl_ptr(fd, AZBUSE_IOC_ATTACH, bad_ptrs[p].ptr), EFAULT, "ATTACH with %s",
		       bad_ptrs[p].name);
	expect(ioctl_ptr(fd, _IOC(_IOC_READ | _IOC_WRITE, AZBUSE_IOC_MAGIC, 0x20, 88), &a), ENOTTY,
	       "ATTACH encoded with size 88");
	expect(xioctl(fd, _IOW(AZBUSE_IOC_MAGIC, 0x21, __u32), 0), ENOTTY,
	       "COMMIT encoded as _IOW(u32)");
	expect(xioctl(fd, _IO(AZBUSE_IOC_MAGIC, 0x23), 0), ENOTTY, "unknown worker ioctl 0x23");
	expect(ioctl_ptr(fd, AZBUSE_CTL_VERSION, &a), ENOTTY, "VERSION on the char device");
}

static void test_mmap_errors(struct worker *w)
{
	const struct {
		size_t len;
		off_t off;
		int flags;
		const char *what;
	} bad[] = {
		{ w->geo.ring_bytes + 4096, AZBUSE_MMAP_RING_OFF, MAP_SHARED,
		  "ring, one page too long" },
		{ 4096, AZBUSE_MMAP_RING_OFF + 4096, MAP_SHARED, "ring at offset 4096" },
		{ w->geo.ring_bytes, AZBUSE_MMAP_RING_OFF, MAP_PRIVATE, "ring, MAP_PRIVATE" },
		{ w->geo.data_bytes - 4096, AZBUSE_MMAP_DATA_OFF, MAP_SHARED,
		  "data, one page short" },
		{ w->geo.data_bytes + 4096, AZBUSE_MMAP_DATA_OFF, MAP_SHARED,
		  "data, one page too long" },
		{ w->geo.data_bytes, AZBUSE_MMAP_DATA_OFF + 4096, MAP_SHARED,
		  "data at offset 4G+4096" },
		{ w->geo.data_bytes, AZBUSE_MMAP_DATA_OFF, MAP_PRIVATE, "data, MAP_PRIVATE" },
		{ w->geo.ring_bytes, (off_t)(2ULL << 32), MAP_SHARED, "offset 8G" },
	};
	size_t k;

	if (w->geo.ring_bytes > 4096)
		expect(mmap(NULL, w->geo.ring_bytes - 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
			    w->fd, AZBUSE_MMAP_RING_OFF) == MAP_FAILED
			       ? errno
			       : 0,
		       EINVAL, "mmap ring, one page short");
	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		void *p = mmap(NULL, bad[k].len, PROT_READ | PROT_WRITE, bad[k].flags, w->fd,
			       bad[k].off);

		expect(p == MAP_FAILED ? errno : 0, EINVAL, "mmap %s", bad[k].what);
		if (p != MAP_FAILED)
			munmap(p, bad[k].len);
	}
}

static void attach_worker(int ctl, const char *cpath, struct worker *w)
{
	struct azbuse_queue_info qi;
	struct azbuse_attach a;
	int fd2;

	memset(w, 0, sizeof(*w));
	w->fd = open(cpath, O_RDWR | O_CLOEXEC);
	if (w->fd < 0)
		die("open the char device");
	test_attach_errors(w->fd);

	memset(&w->geo, 0, sizeof(w->geo));
	expect(ioctl_ptr(w->fd, AZBUSE_IOC_ATTACH, &w->geo), 0, "ATTACH queue 0");
	check(w->geo.nr_queues == 1 && w->geo.nr_slots == TEST_DEPTH &&
		      w->geo.sq_entries >= TEST_DEPTH &&
		      !(w->geo.sq_entries & (w->geo.sq_entries - 1)) &&
		      w->geo.cq_entries >= TEST_DEPTH &&
		      !(w->geo.cq_entries & (w->geo.cq_entries - 1)) &&
		      w->geo.slot_bytes == AZBUSE_DEF_IO_BYTES &&
		      w->geo.data_bytes == (uint64_t)TEST_DEPTH * AZBUSE_DEF_IO_BYTES &&
		      w->geo.size_bytes == TEST_SIZE && w->geo.ring_bytes % 4096 == 0,
	      "ATTACH geometry: %u slots of %u bytes, sq %u cq %u, ring %u bytes", w->geo.nr_slots,
	      w->geo.slot_bytes, w->geo.sq_entries, w->geo.cq_entries, w->geo.ring_bytes);

	memset(&a, 0, sizeof(a));
	expect(ioctl_ptr(w->fd, AZBUSE_IOC_ATTACH, &a), EBUSY, "second ATTACH on the same fd");
	a.queue = 0;
	fd2 = open(cpath, O_RDWR | O_CLOEXEC);
	if (fd2 < 0)
		die("open the char device again");
	expect(ioctl_ptr(fd2, AZBUSE_IOC_ATTACH, &a), EBUSY,
	       "ATTACH of a taken queue from another fd");
	expect(xioctl(fd2, AZBUSE_IOC_COMMIT, 0), ENXIO, "COMMIT on the fd whose ATTACH failed");
	close(fd2);

	expect(queue_info(ctl, test_id, 0, &qi), 0, "QUEUE_INFO after ATTACH");
	check(qi.state == AZBUSE_QUEUE_ATTACHED && qi.worker_pid == getpid(),
	      "queue 0 is attached to this process (state %u, pid %d)", qi.state, qi.worker_pid);

	test_mmap_errors(w);
	w->ring = mmap(NULL, w->geo.ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd,
		       AZBUSE_MMAP_RING_OFF);
	expect(w->ring == MAP_FAILED ? errno : 0, 0, "mmap of the ring");
	w->data = mmap(NULL, w->geo.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd,
		       AZBUSE_MMAP_DATA_OFF);
	expect(w->data == MAP_FAILED ? errno : 0, 0, "mmap of the data area");
	if (w->ring == MAP_FAILED || w->data == MAP_FAILED)
		die("mmap");
	w->hdr = w->ring;
	w->sq = (struct azbuse_sqe *)((char *)w->ring + w->geo.sq_offset);
	w->cq = (struct azbuse_cqe *)((char *)w->ring + w->geo.cq_offset);
	w->sq_head = w->hdr->sq_head;
	w->cq_tail = w->hdr->cq_tail;
	expect(xioctl(w->fd, AZBUSE_IOC_KICK, 0), 0, "KICK after ATTACH");
	expect(xioctl(w->fd, AZBUSE_IOC_COMMIT, 0), 0, "COMMIT with nothing posted");
}

/* Without CAP_SYS_ADMIN (still uid 0): no access to either device. */
static void test_unprivileged(int ctl, const char *cpath)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
	struct azbuse_version v;
	int status, fd, i;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		failures = 0;
		if (syscall(SYS_capget, &hdr, caps))
			die("capget");
		for (i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
			caps[i].effective = caps[i].permitted = caps[i].inheritable = 0;
		if (syscall(SYS_capset, &hdr, caps))
			die("capset");
		check(getuid() == 0, "dropped every capability, still uid 0");
		fd = open(AZBUSE_CTL_DEVICE, O_RDWR);
		expect(fd < 0 ? errno : 0, EPERM,
		       "open " AZBUSE_CTL_DEVICE " without CAP_SYS_ADMIN");
		if (fd >= 0)
			close(fd);
		fd = open(cpath, O_RDWR);
		expect(fd < 0 ? errno : 0, EPERM, "open %s without CAP_SYS_ADMIN", cpath);
		if (fd >= 0)
			close(fd);
		expect(ioctl_ptr(ctl, AZBUSE_CTL_VERSION, &v), EPERM,
		       "VERSION without CAP_SYS_ADMIN on a control fd opened with it");
		expect(dev_cmd(ctl, AZBUSE_CTL_REMOVE, test_id), EPERM,
		       "REMOVE without CAP_SYS_ADMIN on a control fd opened with it");
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		failures++;
		checks++;
		printf("FAIL unprivileged checks (child status 0x%x)\n", status);
	}
}

static void test_start(int ctl, struct worker *w)
{
	char bpath[64];
	struct stat st;
	pid_t pid;
	int status, ret;

	/* START reads the partition table: serve it from here while a child starts */
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(dev_cmd(ctl, AZBUSE_CTL_START, test_id));
	status = serve_until_exit(w, pid, CHILD_WAIT_MS);
	ret = io_result(status);
	expect(ret, 0, "START with the worker serving");
	bdev_path(bpath, sizeof(bpath), test_id);
	check(stat(bpath, &st) == 0 && S_ISBLK(st.st_mode), "%s exists after START", bpath);
	expect(dev_cmd(ctl, AZBUSE_CTL_START, test_id), EALREADY, "START of a live device");
}

/* One read or write by a child, served correctly. */
static void good_io(struct worker *w, bool write, uint64_t off, const char *what)
{
	pid_t pid = spawn_io(write, off);

	expect(io_result(serve_until_exit(w, pid, CHILD_WAIT_MS)), IO_OK, "%s", what);
}

/* Completions naming the wrong tag or seq for the pending request (tag, seq). */
static void reject_bad_completions(int ctl, struct worker *w, uint32_t tag, uint32_t seq)
{
	const struct {
		uint32_t tag, seq;
		const char *what;
	} bad[] = {
		{ w->geo.nr_slots, seq, "tag nr_slots" },
		{ 0xffffffff, seq, "tag 0xffffffff" },
		{ 0x80000000 | tag, seq, "tag 0x80000000 | tag" },
		{ tag, seq + 1, "seq + 1" },
		{ tag, seq - 1, "seq - 1" },
		{ tag, seq ^ 0x80000000, "seq ^ 0x80000000" },
		{ (tag + 1) % w->geo.nr_slots, seq, "a tag with no request" },
	};
	uint64_t before, r;
	size_t k;
	int ret;

	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		before = rejected(ctl);
		post_cqe(w, bad[k].tag, bad[k].seq, 0);
		ret = xioctl(w->fd, AZBUSE_IOC_COMMIT, 0);
		r = rejected(ctl);
		check(ret == 0 && r == before + 1,
		      "completion with %s is rejected (COMMIT %s, rejected %llu -> %llu)",
		      bad[k].what, err_name(ret), (unsigned long long)before,
		      (unsigned long long)r);
	}
}

/* Bad completions for a pending request; each must be rejected and counted. */
static void test_bad_completions(int ctl, struct worker *w)
{
	const uint64_t off = 1 << 20;
	struct azbuse_sqe sqe;
	uint64_t before, r;
	uint32_t tag, seq;
	pid_t pid;
	int ret;

	pid = spawn_io(false, off);
	if (!take_request(w, off, &sqe)) {
		check(false, "no READ request at sector %llu arrived",
		      (unsigned long long)(off / 512));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	tag = sqe.tag;
	seq = sqe.seq;
	check(sqe.op == AZBUSE_OP_READ && sqe.len == IO_BYTES && tag < w->geo.nr_slots,
	      "the child's read arrives (tag %u, seq %u, len %u)", tag, seq, sqe.len);

	reject_bad_completions(ctl, w, tag, seq);
	check(waitpid(pid, NULL, WNOHANG) == 0,
	      "the read is still pending after the bad completions");

	/* cq_tail far ahead of (or behind) what the kernel consumed */
	before = rejected(ctl);
	srandom((unsigned)now_ms());
	__atomic_store_n(&w->hdr->cq_tail,
			 w->cq_tail + w->geo.cq_entries + 1 + (uint32_t)(random() % 0x7fff0000),
			 __ATOMIC_RELEASE);
	ret = xioctl(w->fd, AZBUSE_IOC_COMMIT, 0);
	r = rejected(ctl);
	expect(ret, EINVAL, "COMMIT with a random cq_tail far ahead");
	check(r == before + 1, "the impossible cq_tail is counted (rejected %llu -> %llu)",
	      (unsigned long long)before, (unsigned long long)r);
	__atomic_store_n(&w->hdr->cq_tail, w->cq_tail - 1, __ATOMIC_RELEASE);
	expect(xioctl(w->fd, AZBUSE_IOC_COMMIT, 0), EINVAL, "COMMIT with cq_tail behind cq_head");
	__atomic_store_n(&w->hdr->cq_tail, w->cq_tail + w->geo.cq_entries + 1, __ATOMIC_RELEASE);
	expect(xioctl(w->fd, AZBUSE_IOC_COMMIT, 10), EINVAL,
	       "COMMIT(10 ms) with cq_tail cq_entries + 1 ahead");
	__atomic_store_n(&w->hdr->cq_tail, w->cq_tail, __ATOMIC_RELEASE);
	check(w->hdr->cq_head == w->cq_tail, "the kernel's cq_head is unchanged (%u)",
	      w->hdr->cq_head);
	expect(xioctl(w->fd, AZBUSE_IOC_COMMIT, 0), 0, "COMMIT with cq_tail restored");

	/* the right completion, then the same one again in the same batch */
	fill_pattern(w->data + (size_t)tag * w->geo.slot_bytes, sqe.sector, sqe.len);
	before = rejected(ctl);
	post_cqe(w, tag, seq, 0);
	post_cqe(w, tag, seq, 0);
	ret = xioctl(w->fd, AZBUSE_IOC_COMMIT, 0);
	r = rejected(ctl);
	check(ret == 0 && r == before + 1,
	      "a duplicate completion in the same batch is rejected (rejected %llu -> %llu)",
	      (unsigned long long)before, (unsigned long long)r);
	expect(io_result(serve_until_exit(w, pid, CHILD_WAIT_MS)), IO_OK,
	       "the read completes with the worker's data");

	/* and once more, after the request has ended */
	before = rejected(ctl);
	post_cqe(w, tag, seq, 0);
	ret = xioctl(w->fd, AZBUSE_IOC_COMMIT, 0);
	r = rejected(ctl);
	check(ret == 0 && r == before + 1,
	      "a completion for an ended request is rejected (rejected %llu -> %llu)",
	      (unsigned long long)before, (unsigned long long)r);
}

/* A request completed with an error result: the reader gets `want_errno`. */
static void test_error_result(struct worker *w, int32_t result, int want_errno)
{
	const uint64_t off = 2 << 20;
	struct azbuse_sqe sqe;
	pid_t pid = spawn_io(false, off);

	if (!take_request(w, off, &sqe)) {
		check(false, "no READ request arrived for the error test");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	post_cqe(w, sqe.tag, sqe.seq, result);
	expect(xioctl(w->fd, AZBUSE_IOC_COMMIT, 0), 0, "COMMIT of a completion with result %d",
	       result);
	expect(io_result(serve_until_exit(w, pid, CHILD_WAIT_MS)), IO_ERRNO_BASE + want_errno,
	       "result %d fails the read (exit code 20 + errno)", result);
}

/* A write's data is in the slot when the request is posted. */
static void test_write_data(struct worker *w)
{
	const uint64_t off = 3 << 20;
	struct azbuse_sqe sqe;
	pid_t pid = spawn_io(true, off);

	if (!take_request(w, off, &sqe)) {
		check(false, "no WRITE request arrived");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	check(sqe.op == AZBUSE_OP_WRITE && sqe.len == IO_BYTES &&
		      has_pattern(w->data + (size_t)sqe.tag * w->geo.slot_bytes, off / 512,
				  IO_BYTES),
	      "the write's data is in its slot");
	post_cqe(w, sqe.tag, sqe.seq, 0);
	xioctl(w->fd, AZBUSE_IOC_COMMIT, 0);
	expect(io_result(serve_until_exit(w, pid, CHILD_WAIT_MS)), IO_OK, "the write completes");
}

static void test_remove(int ctl, struct worker *w, uint32_t count_before)
{
	struct azbuse_dev_info info;
	char bpath[64], cpath[64];
	uint32_t count;
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		_exit(dev_cmd(ctl, AZBUSE_CTL_REMOVE, test_id));
	status = serve_until_exit(w, pid, CHILD_WAIT_MS);
	expect(io_result(status), 0, "REMOVE with the worker attached");
	check(__atomic_load_n(&w->hdr->kflags, __ATOMIC_ACQUIRE) & AZBUSE_KF_DEAD,
	      "the ring header says AZBUSE_KF_DEAD");
	expect(xioctl(w->fd, AZBUSE_IOC_COMMIT, 0), ENODEV, "COMMIT after REMOVE");
	expect(xioctl(w->fd, AZBUSE_IOC_COMMIT, AZBUSE_WAIT_FOREVER), ENODEV,
	       "COMMIT(forever) after REMOVE returns at once");
	munmap(w->ring, w->geo.ring_bytes);
	munmap(w->data, w->geo.data_bytes);
	close(w->fd);

	memset(&info, 0, sizeof(info));
	info.dev_id = test_id;
	expect(ioctl_ptr(ctl, AZBUSE_CTL_INFO, &info), ENOENT, "INFO after REMOVE");
	expect(dev_cmd(ctl, AZBUSE_CTL_REMOVE, test_id), ENOENT, "second REMOVE");
	bdev_path(bpath, sizeof(bpath), test_id);
	cdev_path(cpath, sizeof(cpath), test_id);
	check(access(bpath, F_OK) && access(cpath, F_OK), "%s and %s are gone", bpath, cpath);
	expect(list_count(ctl, &count), 0, "LIST after REMOVE");
	check(count == count_before, "LIST counts %u devices, as before the test", count);
}

int main(int argc, char **argv)
{
	struct azbuse_dev_info info;
	struct azbuse_version v;
	struct worker w;
	char cpath[64];
	uint32_t count_before;
	int ctl;

	if (argc > 1)
		test_id = (uint32_t)strtoul(argv[1], NULL, 10);
	if (argc > 2 || test_id + 4 >= AZBUSE_MAX_DEVICES) {
		fprintf(stderr, "usage: azbuse-ioctl-abuse [DEV_ID < %u]\n",
			AZBUSE_MAX_DEVICES - 4);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);

	ctl = open_ctl();
	expect(ioctl_ptr(ctl, AZBUSE_CTL_VERSION, &v), 0, "VERSION");
	check(v.abi_version == AZBUSE_ABI_VERSION && v.max_devices == AZBUSE_MAX_DEVICES,
	      "ABI version %u, %u devices", v.abi_version, v.max_devices);
	expect(list_count(ctl, &count_before), 0, "LIST before the test");

	test_add_validation(ctl);

	info = valid_info(test_id);
	expect(ioctl_ptr(ctl, AZBUSE_CTL_ADD, &info), 0, "ADD of device %u", test_id);
	if (info.dev_id != test_id)
		die("ADD");
	check(info.state == AZBUSE_DEV_CREATED && info.owner_pid == getpid() &&
		      info.logical_block_size == 512 && info.max_io_bytes == AZBUSE_DEF_IO_BYTES,
	      "ADD fills in state, owner and defaults");
	info = valid_info(test_id);
	expect(ioctl_ptr(ctl, AZBUSE_CTL_ADD, &info), EEXIST, "ADD of a taken id");

	test_unknown_ids(ctl);
	test_dev_cmd_fields(ctl);
	test_queue_info(ctl);
	test_list(ctl);
	test_encodings(ctl);
	test_bad_pointers(ctl);

	cdev_path(cpath, sizeof(cpath), test_id);
	test_cdev_before_attach(cpath);
	attach_worker(ctl, cpath, &w);
	test_unprivileged(ctl, cpath);
	test_start(ctl, &w);

	good_io(&w, false, 0, "a 4k read served by this worker");
	test_bad_completions(ctl, &w);
	test_error_result(&w, -EIO, EIO);
	test_error_result(&w, -ENOSPC, ENOSPC);
	test_error_result(&w, 12345, EIO);
	test_error_result(&w, -4096, EIO);
	test_error_result(&w, INT32_MIN, EIO);
	test_write_data(&w);
	good_io(&w, false, 5 << 20, "a read after all the garbage still works");

	test_remove(ctl, &w, count_before);
	close(ctl);

	printf("%u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
