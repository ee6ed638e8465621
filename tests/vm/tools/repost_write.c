// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * repost_write.c - a WRITE re-posted after its worker died carries the
 * writer's data, not what the dead worker left in the data slot.
 *
 * Adds a device through the ioctls (1 queue), starts it with a first worker
 * (a child process) and writes one 4 KiB block with O_DIRECT. The first
 * worker takes the WRITE, checks that the slot holds the writer's data,
 * scribbles over the slot and exits without completing it. A second worker
 * then attaches: the re-posted WRITE (AZBUSE_RQ_REQUEUED) must find the
 * writer's data in its slot again. The second worker stores it and serves a
 * read of the block back: what reached the device, and what the reader
 * gets, must be what the writer wrote. Last, REMOVE while serving.
 *
 *   azbuse-repost-write [--dev-id N]
 *
 * Prints one line per check ("ok" or "FAIL") and exits 1 if any failed. Run
 * as root inside the test VM (62-repost-write-data.sh).
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
#define TARGET_OFF (1ULL << 20) /* the block the writer writes */
#define SCRIBBLE 0xee
#define WAIT_MS 30000

static uint32_t dev_id = 920;
static int ctl;

/* Shared with the first worker (a child): the device's content and what it saw. */
struct shared {
	unsigned char store[DEV_SIZE];
	volatile int first_saw_write;  /* the first worker took the target WRITE */
	volatile int first_slot_right; /* ... and its slot held the writer's data */
};
static struct shared *sh;

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + 0x3c) ^ (unsigned char)(i >> 8);
}

static bool is_pattern(const unsigned char *p)
{
	size_t i;

	for (i = 0; i < BLK; i++)
		if (p[i] != pattern(i))
			return false;
	return true;
}

static bool is_target_write(const struct azbuse_sqe *s)
{
	return s->op == AZBUSE_OP_WRITE && s->sector * 512 == TARGET_OFF && s->len == BLK;
}

/* The first worker: the target WRITE is checked, scribbled over and never completed. */
static bool first_take(struct worker *w, const struct azbuse_sqe *s)
{
	if (!is_target_write(s))
		return false;
	sh->first_slot_right = is_pattern(slot(w, s->tag));
	memset(slot(w, s->tag), SCRIBBLE, s->len);
	sh->first_saw_write = 1;
	_exit(0);
}

static void first_worker(void)
{
	struct worker w;
	uint64_t deadline = now_ms() + 2 * WAIT_MS;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	worker_attach(&w, dev_id);
	while (now_ms() < deadline && serve(&w, sh->store, DEV_SIZE, first_take))
		;
	_exit(2);
}

/* The second worker: the re-posted WRITE must carry the writer's data. */
static int requeued_seen, requeued_right;

static bool second_take(struct worker *w, const struct azbuse_sqe *s)
{
	if (!is_target_write(s))
		return false;
	requeued_seen++;
	if ((s->flags & AZBUSE_RQ_REQUEUED) && is_pattern(slot(w, s->tag)))
		requeued_right++;
	check(s->flags & AZBUSE_RQ_REQUEUED, "the WRITE comes back flagged REQUEUED (flags 0x%llx)",
	      (unsigned long long)s->flags);
	check(is_pattern(slot(w, s->tag)),
	      "the re-posted WRITE's slot holds the writer's data (first byte 0x%02x, the dead "
	      "worker scribbled 0x%02x)",
	      slot(w, s->tag)[0], SCRIBBLE);
	return false; /* and serve it: store what the slot holds */
}

/* Run fn in a child; serve (with w, if any) until it exits; its exit status or -1. */
static int run_child(int (*fn)(void), struct worker *w)
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
		_exit(fn());
	}
	while (now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (w)
			serve(w, sh->store, DEV_SIZE, second_take);
		else
			usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static int start_device(void)
{
	return ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_START);
}

static int remove_device(void)
{
	return ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_REMOVE);
}

static int open_bdev(void)
{
	char path[64];

	snprintf(path, sizeof(path), AZBUSE_BLOCK_PREFIX "%u", dev_id);
	return open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
}

static int writer(void)
{
	unsigned char *buf;
	size_t i;
	ssize_t n;
	int fd = open_bdev();

	if (fd < 0 || posix_memalign((void **)&buf, BLK, BLK))
		return 10;
	for (i = 0; i < BLK; i++)
		buf[i] = pattern(i);
	n = pwrite(fd, buf, BLK, TARGET_OFF);
	if (n != BLK)
		printf("     writer: pwrite: %zd (%s)\n", n, n < 0 ? strerror(errno) : "short");
	return n == BLK ? 0 : 11;
}

static int reader(void)
{
	unsigned char *buf;
	ssize_t n;
	int fd = open_bdev();

	if (fd < 0 || posix_memalign((void **)&buf, BLK, BLK))
		return 10;
	memset(buf, 0, BLK);
	n = pread(fd, buf, BLK, TARGET_OFF);
	if (n != BLK)
		return 11;
	return is_pattern(buf) ? 0 : 12;
}

int main(int argc, char **argv)
{
	struct azbuse_dev_info info;
	struct worker w2;
	bool have_w2 = false;
	uint64_t deadline;
	pid_t first, wr;
	int st, ret;

	if (argc == 3 && !strcmp(argv[1], "--dev-id"))
		dev_id = (uint32_t)strtoul(argv[2], NULL, 0);
	else if (argc != 1) {
		fprintf(stderr, "usage: azbuse-repost-write [--dev-id N]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap shared");

	ctl = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		die("open " AZBUSE_CTL_DEVICE);
	memset(&info, 0, sizeof(info));
	info.dev_id = dev_id;
	info.nr_queues = 1;
	info.queue_depth = 4;
	info.max_io_bytes = 64 << 10;
	info.size_bytes = DEV_SIZE;
	info.recovery_timeout_ms = 20000;
	ret = ioctl(ctl, AZBUSE_CTL_ADD, &info) ? errno : 0;
	check(ret == 0, "ADD device %u: %s", dev_id, ret ? strerror(ret) : "ok");
	if (ret)
		return 1;

	/* the first worker serves START's partition scan, then dies on the WRITE */
	first = fork_worker(ctl, dev_id, first_worker, WAIT_MS);
	ret = start_device();
	check(ret == 0, "START with the first worker serving: %s", ret ? strerror(ret) : "ok");
	if (ret) {
		kill(first, SIGKILL);
		waitpid(first, NULL, 0);
		goto out_remove;
	}

	fflush(stdout);
	wr = fork();
	if (wr < 0)
		die("fork");
	if (wr == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(writer());
	}
	st = -1;
	if (waitpid(first, &st, 0) == first)
		st = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	check(st == 0 && sh->first_saw_write,
	      "the first worker took the WRITE and exited without completing it (status %d)", st);
	check(sh->first_slot_right, "on first post, the slot held the writer's data");

	/* the second worker: the WRITE comes back */
	worker_attach(&w2, dev_id);
	have_w2 = true;
	deadline = now_ms() + WAIT_MS;
	st = -1;
	while (now_ms() < deadline && serve(&w2, sh->store, DEV_SIZE, second_take)) {
		if (waitpid(wr, &st, WNOHANG) == wr) {
			st = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		st = -1;
	}
	if (st == -1) {
		kill(wr, SIGKILL);
		waitpid(wr, NULL, 0);
	}
	check(requeued_seen == 1, "the second worker got the WRITE once (%d times)", requeued_seen);
	check(st == 0, "the writer's pwrite succeeded (status %d)", st);
	check(is_pattern(sh->store + TARGET_OFF),
	      "what reached the device is what the writer wrote (first byte 0x%02x)",
	      sh->store[TARGET_OFF]);
	st = run_child(reader, &w2);
	check(st == 0, "an O_DIRECT read of the block returns what the writer wrote (status %d)",
	      st);

out_remove:
	st = run_child(remove_device, have_w2 ? &w2 : NULL);
	check(st == 0, "REMOVE (status %d)", st);
	printf("%u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
