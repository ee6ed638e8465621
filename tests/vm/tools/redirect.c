// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * redirect.c - route by queue and AZBUSE_CQE_F_REDIRECT on a sharded device.
 *
 * Adds a device of two shards with AZBUSE_F_ROUTE_QUEUE through the ioctls
 * and serves it with two raw workers (child processes): the worker of ring
 * 0 hands every READ and WRITE to ring 1 (REDIRECT), whose worker serves
 * them from a shared store. I/O from a process pinned to CPU 0 must then
 * arrive at ring 0 whatever shard owns its chunk (route by queue), be
 * redirected, and read back intact; blocks whose requests ring 0 redirects
 * to itself or to a ring that does not exist, or that the two workers pass
 * back and forth, must fail with EIO (and count as rejected) while the
 * device goes on serving. A FLUSH reaches both rings; one that ring 0
 * redirects fails with EIO (its parts go to every ring in turn: a redirect
 * would let it complete without ring 0's). Also: ROUTE_QUEUE without
 * SHARDED is refused, and a REDIRECT on an unsharded device fails its
 * request.
 *
 *   azbuse-redirect [--dev-id N]
 *
 * Prints one line per check ("ok" or "FAIL") and exits 1 if any failed. Run
 * as root inside the test VM, with at least 2 CPUs (67-redirect.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
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

#include "rawworker.h"
#include "testlib.h"

#define STATIC_CHECK(cond) _Static_assert(cond, #cond)
AZBUSE_ABI_CHECKS(STATIC_CHECK);

#define DEV_SIZE (8ULL << 20)
#define CHUNK (64U << 10)
#define BLK 4096U
#define NR_BLOCKS 64			    /* blocks written and read back, one per chunk */
#define OFF_SELF (7ULL << 20)		    /* ring 0 redirects these to itself */
#define OFF_NOWHERE (OFF_SELF + CHUNK)	    /* ... to ring 7, which does not exist */
#define OFF_PINGPONG (OFF_SELF + 2 * CHUNK) /* both workers pass these on */
#define WAIT_MS 30000

static uint32_t dev_id = 921;
static int ctl;

/* Shared with the workers: the device's content and what they saw. */
struct shared {
	unsigned char store[DEV_SIZE];
	volatile unsigned redirected[2]; /* READ/WRITEs each worker passed on */
	volatile unsigned served[2];	 /* requests each worker served */
	volatile unsigned flushes[2];	 /* FLUSHes each worker served */
	volatile bool redirect_flush;	 /* ring 0 passes FLUSHes on to ring 1 */
};
static struct shared *sh;

static bool has_data(const struct azbuse_sqe *s)
{
	return s->op == AZBUSE_OP_READ || s->op == AZBUSE_OP_WRITE;
}

static bool in_chunk(const struct azbuse_sqe *s, uint64_t off)
{
	return s->sector * 512 >= off && s->sector * 512 < off + CHUNK;
}

/* Ring 0's worker: every READ and WRITE goes to ring 1, the marked ones astray. */
static bool take_ring0(struct worker *w, const struct azbuse_sqe *s)
{
	uint64_t to = 1;

	if (s->op == AZBUSE_OP_FLUSH && sh->redirect_flush) {
		post_completion(w, s, 0, AZBUSE_CQE_F_REDIRECT, 1);
		return true;
	}
	if (!has_data(s)) {
		sh->flushes[0] += s->op == AZBUSE_OP_FLUSH;
		sh->served[0]++;
		return false;
	}
	if (in_chunk(s, OFF_SELF))
		to = 0;
	else if (in_chunk(s, OFF_NOWHERE))
		to = 7;
	post_completion(w, s, 0, AZBUSE_CQE_F_REDIRECT, to);
	sh->redirected[0]++;
	return true;
}

/* Ring 1's worker: serves everything, but passes the ping-pong chunk back. */
static bool take_ring1(struct worker *w, const struct azbuse_sqe *s)
{
	if (has_data(s) && in_chunk(s, OFF_PINGPONG)) {
		post_completion(w, s, 0, AZBUSE_CQE_F_REDIRECT, 0);
		sh->redirected[1]++;
		return true;
	}
	sh->flushes[1] += s->op == AZBUSE_OP_FLUSH;
	sh->served[1]++;
	return false;
}

static pid_t spawn_worker(uint16_t queue)
{
	struct worker w;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	worker_attach_queue(&w, dev_id, queue);
	while (serve(&w, sh->store, DEV_SIZE, queue ? take_ring1 : take_ring0))
		;
	_exit(0);
}

static bool ring_attached(uint16_t queue, struct azbuse_queue_info *qi)
{
	memset(qi, 0, sizeof(*qi));
	qi->dev_id = dev_id;
	qi->queue = queue;
	return !ioctl(ctl, AZBUSE_CTL_QUEUE_INFO, qi) && qi->state == AZBUSE_QUEUE_ATTACHED;
}

static unsigned char pattern(uint64_t off, size_t i)
{
	return (unsigned char)((off >> 12) * 31 + i * 7 + 1);
}

/* In a child pinned to CPU 0: write, then read back, one block at off. 0 if intact. */
static int block_io(uint64_t off)
{
	unsigned char *buf;
	char path[64];
	cpu_set_t cpu0;
	size_t i;
	int fd;

	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	if (sched_setaffinity(0, sizeof(cpu0), &cpu0))
		return 20;
	snprintf(path, sizeof(path), AZBUSE_BLOCK_PREFIX "%u", dev_id);
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || posix_memalign((void **)&buf, BLK, BLK))
		return 10;
	for (i = 0; i < BLK; i++)
		buf[i] = pattern(off, i);
	if (pwrite(fd, buf, BLK, (off_t)off) != BLK)
		return errno == EIO ? 5 : 11;
	memset(buf, 0, BLK);
	if (pread(fd, buf, BLK, (off_t)off) != BLK)
		return errno == EIO ? 6 : 12;
	for (i = 0; i < BLK; i++)
		if (buf[i] != pattern(off, i))
			return 13;
	return 0;
}

/* In a child pinned to CPU 0: fsync the device (a FLUSH). 0, or 5 for EIO. */
static int flush_io(uint64_t unused)
{
	char path[64];
	cpu_set_t cpu0;
	int fd;

	(void)unused;
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	if (sched_setaffinity(0, sizeof(cpu0), &cpu0))
		return 20;
	snprintf(path, sizeof(path), AZBUSE_BLOCK_PREFIX "%u", dev_id);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 10;
	if (fsync(fd))
		return errno == EIO ? 5 : 11;
	return 0;
}

/* Run fn(arg) in a child; its exit status, or -1 if it hung. */
static int run_child(int (*fn)(uint64_t), uint64_t arg)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg));
	}
	while (now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static int run_block_io(uint64_t off)
{
	return run_child(block_io, off);
}

static int add_device(uint64_t features, uint32_t queues, uint32_t chunk_sectors)
{
	struct azbuse_dev_info info;

	memset(&info, 0, sizeof(info));
	info.dev_id = dev_id;
	info.nr_queues = queues;
	info.queue_depth = 8;
	info.max_io_bytes = 64 << 10;
	info.size_bytes = DEV_SIZE;
	info.features = features;
	info.chunk_sectors = chunk_sectors;
	return ioctl(ctl, AZBUSE_CTL_ADD, &info) ? errno : 0;
}

int main(int argc, char **argv)
{
	struct azbuse_queue_info qi0, qi1;
	uint64_t deadline, rejected;
	pid_t workers[2];
	unsigned i, bad = 0, chunk1 = 0;
	int ret, st;

	if (argc == 3 && !strcmp(argv[1], "--dev-id"))
		dev_id = (uint32_t)strtoul(argv[2], NULL, 0);
	else if (argc != 1) {
		fprintf(stderr, "usage: azbuse-redirect [--dev-id N]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("SKIP fewer than 2 CPUs: no second hardware queue\n");
		return 77;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap shared");
	ctl = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		die("open " AZBUSE_CTL_DEVICE);

	ret = add_device(AZBUSE_F_ROUTE_QUEUE, 2, 0);
	check(ret == EINVAL, "ADD with ROUTE_QUEUE but not SHARDED is refused: %s",
	      ret ? strerror(ret) : "accepted");
	if (!ret)
		ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_REMOVE);

	ret = add_device(AZBUSE_F_SHARDED | AZBUSE_F_ROUTE_QUEUE | AZBUSE_F_WRITE_CACHE, 2,
			 CHUNK >> 9);
	check(ret == 0, "ADD sharded, routed by queue, 2 shards: %s", ret ? strerror(ret) : "ok");
	if (ret)
		return 1;
	workers[0] = spawn_worker(0);
	workers[1] = spawn_worker(1);
	deadline = now_ms() + WAIT_MS;
	while (!(ring_attached(0, &qi0) && ring_attached(1, &qi1)) && now_ms() < deadline)
		usleep(10000);
	ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_START);
	check(ret == 0, "START with both workers serving: %s", ret ? strerror(ret) : "ok");
	if (ret)
		goto out_remove;

	/* one block in each of the first NR_BLOCKS chunks: shard 0's and shard 1's */
	for (i = 0; i < NR_BLOCKS; i++) {
		uint64_t off = (uint64_t)i * CHUNK + (i % 4) * BLK;

		st = run_block_io(off);
		if (st) {
			bad++;
			printf("     block at %llu: status %d\n", (unsigned long long)off, st);
		}
		chunk1 += i % 2;
	}
	check(bad == 0, "%u blocks written on CPU 0 and read back intact (%u failed)", NR_BLOCKS,
	      bad);
	ring_attached(0, &qi0);
	ring_attached(1, &qi1);
	check(qi0.redirected >= 2 * NR_BLOCKS && sh->redirected[0] >= 2 * NR_BLOCKS,
	      "ring 0 got every read and write submitted on CPU 0, shard 1's %u chunks too, and "
	      "redirected them (module %llu, worker %u)",
	      chunk1, (unsigned long long)qi0.redirected, sh->redirected[0]);
	check(qi1.requests >= 2 * NR_BLOCKS, "ring 1 served them (%llu requests)",
	      (unsigned long long)qi1.requests);
	rejected = qi0.rejected + qi1.rejected;
	check(rejected == 0, "no completion rejected (%llu)", (unsigned long long)rejected);

	st = run_block_io(OFF_SELF);
	check(st == 5, "a redirect to the worker's own ring fails the write with EIO (status %d)",
	      st);
	st = run_block_io(OFF_NOWHERE);
	check(st == 5, "a redirect to ring 7 of 2 fails the write with EIO (status %d)", st);
	st = run_block_io(OFF_PINGPONG);
	check(st == 5, "a request passed back and forth fails with EIO after %u hops (status %d)",
	      AZBUSE_MAX_REDIRECTS, st);
	ring_attached(0, &qi0);
	ring_attached(1, &qi1);
	check(qi0.rejected + qi1.rejected >= 3, "the bad redirects count as rejected (%llu)",
	      (unsigned long long)(qi0.rejected + qi1.rejected));
	st = run_block_io(0);
	check(st == 0, "and the device goes on serving (status %d)", st);

	st = run_child(flush_io, 0);
	check(st == 0 && sh->flushes[0] && sh->flushes[1],
	      "an fsync on CPU 0 flushes both rings (status %d, flushes %u and %u)", st,
	      sh->flushes[0], sh->flushes[1]);
	sh->redirect_flush = true;
	rejected = qi0.rejected + qi1.rejected;
	st = run_child(flush_io, 0);
	ring_attached(0, &qi0);
	ring_attached(1, &qi1);
	check(st == 5 && qi0.rejected + qi1.rejected > rejected,
	      "a FLUSH that ring 0 redirects fails with EIO and counts as rejected (status %d)",
	      st);
	sh->redirect_flush = false;

out_remove:
	ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_REMOVE);
	check(ret == 0, "REMOVE: %s", ret ? strerror(ret) : "ok");
	for (i = 0; i < 2; i++) {
		kill(workers[i], SIGKILL);
		waitpid(workers[i], NULL, 0);
	}

	/* unsharded: there is no other ring to hand a request to */
	ret = add_device(0, 1, 0);
	check(ret == 0, "ADD unsharded: %s", ret ? strerror(ret) : "ok");
	if (!ret) {
		sh->redirected[0] = 0;
		workers[0] = spawn_worker(0); /* redirects all reads and writes to ring 1 */
		deadline = now_ms() + WAIT_MS;
		while (!ring_attached(0, &qi0) && now_ms() < deadline)
			usleep(10000);
		/* START's partition scan reads: each fails, and START must still finish */
		ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_START);
		check(ret == 0, "START: %s", ret ? strerror(ret) : "ok");
		st = ret ? -1 : run_block_io(0);
		check(st == 5, "a REDIRECT on an unsharded device fails the request (status %d)",
		      st);
		ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_REMOVE);
		check(ret == 0, "REMOVE: %s", ret ? strerror(ret) : "ok");
		kill(workers[0], SIGKILL);
		waitpid(workers[0], NULL, 0);
	}
	printf("%u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
