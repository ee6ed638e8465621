// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * stuck_write.c - REMOVE gives up on a write its worker never completes,
 * even while the worker completes everything else.
 *
 * Adds a device through the ioctls (1 queue) and serves it with a raw
 * worker (a child process) that swallows every WRITE of one block. A child
 * writes that block through the page cache (no O_DIRECT, no fsync): the
 * write stays dirty in the block device's page cache. Another child reads
 * another block with O_DIRECT in a loop, so the worker keeps completing
 * requests. REMOVE then writes the dirty block back (del_gendisk syncs the
 * device before it stops taking I/O) and waits for it: the module must fail
 * the stuck write once it is older than remove_stuck_ms (the case sets it
 * low) although the workers make progress, and REMOVE must return while the
 * reader still reads.
 *
 *   azbuse-stuck-write [--dev-id N] [--stuck-ms MS]
 *
 * Prints one line per check ("ok" or "FAIL") and exits 1 if any failed. Run
 * as root inside the test VM (52-remove-stuck-write.sh).
 */
#include <errno.h>
#include <fcntl.h>
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

#define DEV_SIZE (4ULL << 20)
#define BLK 4096U
#define STUCK_OFF (1ULL << 20) /* writes of this block are never completed */
#define READ_OFF 0ULL	       /* the reader's block */
#define WAIT_MS 30000

static uint32_t dev_id = 922;
static unsigned char *store;

/* Shared with the children: what the reader and the worker did. */
struct shared {
	volatile unsigned long reads; /* the reader's reads that completed */
	volatile unsigned swallowed;  /* writes of STUCK_OFF the worker kept */
};
static struct shared *sh;

static bool swallow_stuck_write(struct worker *w, const struct azbuse_sqe *s)
{
	(void)w;
	if (s->op != AZBUSE_OP_WRITE || s->sector * 512 + s->len <= STUCK_OFF ||
	    s->sector * 512 >= STUCK_OFF + BLK)
		return false;
	sh->swallowed++;
	return true; /* never completed */
}

static void worker(void)
{
	struct worker w;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	worker_attach(&w, dev_id);
	while (serve(&w, store, DEV_SIZE, swallow_stuck_write))
		;
	_exit(0);
}

static void block_path(char *path, size_t len)
{
	snprintf(path, len, AZBUSE_BLOCK_PREFIX "%u", dev_id);
}

/* The dirty block: a buffered write, left for the page cache to write back. */
static int write_buffered(void)
{
	unsigned char buf[BLK];
	char path[64];
	int fd;

	block_path(path, sizeof(path));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return 10;
	memset(buf, 0x5a, sizeof(buf));
	if (pwrite(fd, buf, BLK, (off_t)STUCK_OFF) != BLK)
		return 11;
	close(fd);
	return 0;
}

/* Read READ_OFF with O_DIRECT until the device goes away (or is killed). */
static void read_loop(void)
{
	unsigned char *buf;
	char path[64];
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	block_path(path, sizeof(path));
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || posix_memalign((void **)&buf, BLK, BLK))
		_exit(10);
	while (pread(fd, buf, BLK, (off_t)READ_OFF) == BLK) {
		sh->reads++;
		usleep(20000);
	}
	_exit(0);
}

static pid_t spawn(void (*fn)(void))
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		fn();
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
	unsigned long stuck_ms = 3000, reads_at_remove;
	struct azbuse_dev_info info;
	pid_t wpid, rpid, child;
	uint64_t t0, took;
	int ctl, i, ret, st;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dev-id"))
			dev_id = (uint32_t)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--stuck-ms"))
			stuck_ms = strtoul(argv[i + 1], NULL, 0);
		else
			break;
	}
	if (i != argc) {
		fprintf(stderr, "usage: azbuse-stuck-write [--dev-id N] [--stuck-ms MS]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	store = mmap(NULL, DEV_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (store == MAP_FAILED || sh == MAP_FAILED)
		die("mmap");
	ctl = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		die("open " AZBUSE_CTL_DEVICE);
	memset(&info, 0, sizeof(info));
	info.dev_id = dev_id;
	info.nr_queues = 1;
	info.queue_depth = 8;
	info.max_io_bytes = 64 << 10;
	info.size_bytes = DEV_SIZE;
	ret = ioctl(ctl, AZBUSE_CTL_ADD, &info) ? errno : 0;
	check(ret == 0, "ADD device %u: %s", dev_id, ret ? strerror(ret) : "ok");
	if (ret)
		return 1;
	wpid = fork_worker(ctl, dev_id, worker, WAIT_MS);
	ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_START);
	check(ret == 0, "START: %s", ret ? strerror(ret) : "ok");
	if (ret) {
		ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_REMOVE);
		reap(wpid);
		return 1;
	}

	rpid = spawn(read_loop);
	t0 = now_ms();
	while (sh->reads < 5 && now_ms() < t0 + WAIT_MS)
		usleep(10000);
	check(sh->reads >= 5, "the reader reads (%lu reads)", sh->reads);

	/* the reader holds the device open: the writer's close is not the last (which syncs) */
	fflush(stdout);
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0)
		_exit(write_buffered());
	waitpid(child, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "a buffered write of the block at %llu (status %d)", (unsigned long long)STUCK_OFF,
	      st);

	/* REMOVE writes the dirty block back first: the worker keeps that write */
	t0 = now_ms();
	ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_REMOVE);
	took = now_ms() - t0;
	reads_at_remove = sh->reads;
	check(ret == 0, "REMOVE: %s", ret ? strerror(ret) : "ok");
	check(sh->swallowed > 0, "the worker kept the block's write back (%u writes)",
	      sh->swallowed);
	/* the watchdog looks every 5 s: the stuck write is failed within one look of its age */
	check(took < stuck_ms + 12000,
	      "REMOVE returned in %llu ms, failing a write stuck for over %lu ms while the "
	      "reader went on",
	      (unsigned long long)took, stuck_ms);
	check(reads_at_remove > 5 + (stuck_ms / 1000) * 5,
	      "the reader's reads completed during the removal (%lu)", reads_at_remove);
	t0 = now_ms();
	while (waitpid(rpid, &st, WNOHANG) != rpid && now_ms() < t0 + 5000)
		usleep(10000);
	check(now_ms() < t0 + 5000, "the reader stopped with the device");
	reap(wpid);
	printf("%u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
