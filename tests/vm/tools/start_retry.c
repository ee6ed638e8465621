// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * start_retry.c - START after a failed add_disk. Adds a device through the
 * ioctls (1 queue) whose disk name the caller has made collide with another
 * block device's, so that START's add_disk fails; runs a command that
 * removes the collision; then STARTs again: the second START must succeed
 * on a fresh gendisk (a gendisk whose add_disk failed cannot be added again)
 * and the disk must serve I/O. A worker child serves the queue throughout.
 *
 *   azbuse-start-retry --dev-id N --between 'COMMAND'
 *
 * Prints one line per check ("ok" or "FAIL") and exits 1 if any failed. Run
 * as root inside the test VM (65-start-retry.sh).
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <azbuse/uapi.h>

#include "rawworker.h"
#include "testlib.h"

#define STATIC_CHECK(cond) _Static_assert(cond, #cond)
AZBUSE_ABI_CHECKS(STATIC_CHECK);

#define DEV_SIZE (4ULL << 20)
#define IO_BYTES (64U << 10)
#define WAIT_MS 30000

static uint32_t dev_id;
static int ctl;
static unsigned char *store;

/* The worker: serves from the shared store until the device goes away. */
static void worker(void)
{
	uint64_t deadline = now_ms() + 6 * WAIT_MS;
	struct worker w;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	worker_attach(&w, dev_id);
	while (now_ms() < deadline && serve(&w, store, DEV_SIZE, NULL))
		;
	_exit(0);
}

/* Write IO_BYTES of a pattern with O_DIRECT and read them back. */
static bool io_round_trip(void)
{
	unsigned char *out, *in;
	char path[64];
	bool ok;
	size_t i;
	int fd;

	snprintf(path, sizeof(path), AZBUSE_BLOCK_PREFIX "%u", dev_id);
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || posix_memalign((void **)&out, 4096, IO_BYTES) ||
	    posix_memalign((void **)&in, 4096, IO_BYTES)) {
		printf("     open %s: %s\n", path, strerror(errno));
		return false;
	}
	for (i = 0; i < IO_BYTES; i++)
		out[i] = (unsigned char)(i * 13 + (i >> 9));
	memset(in, 0, IO_BYTES);
	ok = pwrite(fd, out, IO_BYTES, 1 << 20) == IO_BYTES &&
	     pread(fd, in, IO_BYTES, 1 << 20) == IO_BYTES && !memcmp(in, out, IO_BYTES) &&
	     !memcmp(store + (1 << 20), out, IO_BYTES);
	close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	const char *between = NULL;
	struct azbuse_dev_info info;
	struct stat stb;
	char path[64];
	uint64_t deadline;
	int i, ret, st;
	pid_t wpid;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dev-id"))
			dev_id = (uint32_t)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--between"))
			between = argv[i + 1];
		else
			break;
	}
	if (i != argc || !between) {
		fprintf(stderr, "usage: azbuse-start-retry --dev-id N --between 'COMMAND'\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	store = mmap(NULL, DEV_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (store == MAP_FAILED)
		die("mmap");

	ctl = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		die("open " AZBUSE_CTL_DEVICE);
	memset(&info, 0, sizeof(info));
	info.dev_id = dev_id;
	info.nr_queues = 1;
	info.queue_depth = 4;
	info.max_io_bytes = IO_BYTES;
	info.size_bytes = DEV_SIZE;
	ret = ioctl(ctl, AZBUSE_CTL_ADD, &info) ? errno : 0;
	check(ret == 0, "ADD device %u: %s", dev_id, ret ? strerror(ret) : "ok");
	if (ret)
		return 1;
	wpid = fork_worker(ctl, dev_id, worker, WAIT_MS);

	ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_START);
	check(ret != 0, "START with the disk name taken fails (add_disk): %s",
	      ret ? strerror(ret) : "it succeeded");
	if (!ret)
		goto out_remove;
	memset(&info, 0, sizeof(info));
	info.dev_id = dev_id;
	ret = ioctl(ctl, AZBUSE_CTL_INFO, &info) ? errno : 0;
	check(ret == 0 && info.state == AZBUSE_DEV_CREATED,
	      "the device is still created (state %u)", info.state);

	fflush(stdout);
	st = system(between);
	check(st == 0, "'%s' (status %d)", between, st);
	if (st)
		goto out_remove;

	ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_START);
	check(ret == 0, "START again, with the name free: %s", ret ? strerror(ret) : "ok");
	snprintf(path, sizeof(path), AZBUSE_BLOCK_PREFIX "%u", dev_id);
	deadline = now_ms() + 10000;
	while (stat(path, &stb) && now_ms() < deadline)
		usleep(10000);
	if (!ret)
		check(io_round_trip(), "%s takes O_DIRECT writes and reads them back", path);

out_remove:
	ret = ctl_dev_cmd(ctl, dev_id, AZBUSE_CTL_REMOVE);
	check(ret == 0, "REMOVE: %s", ret ? strerror(ret) : "ok");
	st = -1;
	deadline = now_ms() + WAIT_MS;
	while (now_ms() < deadline && waitpid(wpid, &st, WNOHANG) != wpid)
		usleep(10000);
	if (now_ms() >= deadline) {
		kill(wpid, SIGKILL);
		waitpid(wpid, NULL, 0);
	}
	check(st == 0, "the worker saw the device go away (status %d)", st);
	printf("%u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}
