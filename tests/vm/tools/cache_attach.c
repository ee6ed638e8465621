// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cache_attach.c - the module serving reads from a device's RAM cache
 * (AZBUSE_CTL_CACHE_ATTACH), checked from outside (77-cache-module-hits.sh).
 *
 *   azbuse-cache-attach torn DEV SECONDS BLOCKS
 *       Two writers overwrite 4 KiB blocks [0, BLOCKS) of DEV, each block
 *       filled with one 64-bit word naming the block, the writer and a
 *       generation, while two readers read 4-64 KiB at random and check that
 *       every block they get is one whole write of that block (the module
 *       copies a block from the cache while the workers replace it: a torn
 *       copy would mix two writes). The blocks are written once first. DEV
 *       should have one queue: its one worker serves the engine's reads and
 *       writes one after another, so only the module's copies can race.
 *
 *   azbuse-cache-attach hostile ID DEV ROUNDS SEED
 *       Malformed attaches (bad flags, alignment, lengths, magic, geometry,
 *       unmapped memory, unknown devices) are refused with the right errno.
 *       Then a region that is well formed at the top and garbage below it
 *       (offsets, bucket heads, slot indexes, hash chains that loop, states,
 *       seqcounts), which a child keeps rewriting, is attached to device ID
 *       and ROUNDS random reads of DEV must each complete (with whatever
 *       data). After a detach, the device reads back what was written before
 *       the attach. A last region is left attached when the program exits:
 *       removing the device must unpin it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/uapi.h>

#include "testlib.h"

#define BLOCK 4096
#define WORDS (BLOCK / 8)
#define REGION (4UL << 20)
#define PATTERN_BYTES (4UL << 20)

static uint64_t word_of(uint64_t blk, unsigned writer, uint32_t gen)
{
	return blk << 40 | (uint64_t)writer << 32 | gen;
}

static void fill(uint64_t *buf, uint64_t w)
{
	for (unsigned i = 0; i < WORDS; i++)
		buf[i] = w;
}

static int open_direct(const char *dev, int flags)
{
	int fd = open(dev, flags | O_DIRECT);

	if (fd < 0) {
		perror(dev);
		exit(2);
	}
	return fd;
}

static void *aligned_buf(size_t bytes)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, bytes)) {
		perror("posix_memalign");
		exit(2);
	}
	return p;
}

/* ---- torn ---- */

static void torn_writer(const char *dev, unsigned writer, uint64_t blocks, time_t end)
{
	uint64_t *buf = aligned_buf(BLOCK);
	int fd = open_direct(dev, O_WRONLY);
	uint32_t gen = 0;

	rng_state = writer * 7919 + 1;
	while (time(NULL) < end) {
		uint64_t blk = below(blocks);

		fill(buf, word_of(blk, writer, ++gen));
		if (pwrite(fd, buf, BLOCK, (off_t)(blk * BLOCK)) != BLOCK) {
			perror("pwrite");
			exit(2);
		}
	}
	exit(0);
}

/* A block as read: one word throughout, naming this block. */
static bool block_whole(const uint64_t *b, uint64_t blk)
{
	for (unsigned i = 1; i < WORDS; i++)
		if (b[i] != b[0])
			return false;
	return b[0] >> 40 == blk;
}

static void torn_reader(const char *dev, unsigned reader, uint64_t blocks, time_t end)
{
	uint64_t *buf = aligned_buf(16 * BLOCK), reads = 0, bad = 0;
	int fd = open_direct(dev, O_RDONLY);

	rng_state = reader * 104729 + 3;
	while (time(NULL) < end) {
		uint64_t n = 1 + (chance(50) ? 0 : below(16)), blk = below(blocks - n + 1);

		if (pread(fd, buf, n * BLOCK, (off_t)(blk * BLOCK)) != (ssize_t)(n * BLOCK)) {
			perror("pread");
			exit(2);
		}
		for (uint64_t k = 0; k < n; k++)
			if (!block_whole(buf + k * WORDS, blk + k) && bad++ < 5)
				printf("block %llu read as %016llx ... %016llx\n",
				       (unsigned long long)(blk + k),
				       (unsigned long long)buf[k * WORDS],
				       (unsigned long long)buf[k * WORDS + WORDS - 1]);
		reads++;
	}
	printf("reader %u: %llu reads, %llu torn or wrong blocks\n", reader,
	       (unsigned long long)reads, (unsigned long long)bad);
	exit(bad ? 1 : 0);
}

static int torn(const char *dev, unsigned seconds, uint64_t blocks)
{
	uint64_t *buf = aligned_buf(BLOCK);
	int fd = open_direct(dev, O_WRONLY), status, failed = 0;
	time_t end;

	if (blocks < 16)
		blocks = 16;
	for (uint64_t blk = 0; blk < blocks; blk++) {
		fill(buf, word_of(blk, 0, 0));
		if (pwrite(fd, buf, BLOCK, (off_t)(blk * BLOCK)) != BLOCK) {
			perror("pwrite");
			return 2;
		}
	}
	close(fd);
	end = time(NULL) + seconds;
	for (unsigned k = 0; k < 4; k++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (!pid) {
			if (k < 2)
				torn_writer(dev, k + 1, blocks, end);
			torn_reader(dev, k - 1, blocks, end);
		}
	}
	while (wait(&status) > 0)
		failed |= !WIFEXITED(status) || WEXITSTATUS(status);
	check(!failed,
	      "%u s of 4 KiB overwrites beside 4-64 KiB reads of %llu blocks: every block "
	      "read whole",
	      seconds, (unsigned long long)blocks);
	return failures ? 1 : 0;
}

/* ---- hostile ---- */

static int attach(int ctl, uint32_t id, const void *addr, uint64_t len, uint32_t flags)
{
	struct azbuse_cache_attach a = {
		.dev_id = id, .flags = flags, .addr = (uintptr_t)addr, .len = len
	};

	return ioctl(ctl, AZBUSE_CTL_CACHE_ATTACH, &a) ? -errno : 0;
}

static void *region_new(void)
{
	void *r = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (r == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return r;
}

#define NPARTS 4
#define PART_STRIDE 128
#define SLOTS 64
#define NBUCKETS 16

/* A header that passes the attach checks; what lies under it, garbage. */
static void region_header(struct azbuse_cache_region *h)
{
	*h = (struct azbuse_cache_region){ .magic = AZBUSE_CACHE_MAGIC,
					   .region_bytes = REGION,
					   .block_size = BLOCK,
					   .nr_parts = NPARTS,
					   .policy = AZBUSE_CACHE_POLICY_S3FIFO,
					   .mode = 0,
					   .part_off = 4096,
					   .part_stride = PART_STRIDE,
					   .slot_stride = sizeof(struct azbuse_cache_slot),
					   .qstat_off = 8192,
					   .queues = 2,
					   .qstat_stride = 128 };
}

/* Offsets near and past the region's end, unaligned ones, and plausible ones. */
static uint64_t hostile_off(uint64_t plausible)
{
	switch (below(6)) {
	case 0:
		return rnd();
	case 1:
		return REGION - below(64);
	case 2:
		return plausible + 1 + below(7);
	default:
		return plausible;
	}
}

static void scramble(uint8_t *r)
{
	for (unsigned k = 0; k < NPARTS; k++) {
		struct azbuse_cache_part *p = (void *)(r + 4096 + k * PART_STRIDE);
		uint64_t slot_off = 65536 + k * 65536, data_off = (1UL << 20) + k * SLOTS * BLOCK;
		uint32_t *buckets;
		struct azbuse_cache_slot *s;

		p->slot_off = hostile_off(slot_off);
		p->bucket_off = hostile_off(slot_off + 32768);
		p->data_off = hostile_off(data_off);
		p->nr_slots = chance(80) ? SLOTS : (uint32_t)rnd();
		p->nr_buckets = chance(80) ? NBUCKETS : (uint32_t)rnd();
		p->change = (uint32_t)(chance(70) ? below(1000) * 2 : rnd());
		buckets = (uint32_t *)(r + slot_off + 32768);
		for (unsigned b = 0; b < NBUCKETS; b++)
			buckets[b] = chance(20) ? AZBUSE_CACHE_NIL : (uint32_t)below(SLOTS + 8);
		s = (void *)(r + slot_off);
		for (unsigned i = 0; i < SLOTS; i++) {
			s[i].blk = below(PATTERN_BYTES / BLOCK);
			/* chains that end, loop on themselves, or leave the slots */
			s[i].hnext = chance(30)	  ? AZBUSE_CACHE_NIL
				     : chance(30) ? i
						  : (uint32_t)below(SLOTS + 8);
			s[i].state = (uint8_t)below(5);
			s[i].freq = (uint8_t)rnd();
		}
		for (unsigned i = 0; i < 16; i++)
			r[data_off + below(SLOTS * BLOCK)] = (uint8_t)rnd();
	}
}

/* Attaches the malformed ones and checks each refusal; dev: a block device to map. */
static void bad_attaches(int ctl, uint32_t id, const char *dev)
{
	uint8_t *r = region_new();
	void *gone = region_new();
	int fd = open(dev, O_RDWR);
	void *file_backed =
		fd < 0 ? MAP_FAILED : mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int ret;

	region_header((void *)r);
	check(attach(ctl, id, r, REGION, 1) == -EINVAL, "flags 1: EINVAL");
	check(attach(ctl, id, r + 512, REGION - 4096, 0) == -EINVAL, "unaligned address: EINVAL");
	check(attach(ctl, id, r, REGION - 100, 0) == -EINVAL, "length not whole pages: EINVAL");
	check(attach(ctl, AZBUSE_MAX_DEVICES + 5, r, REGION, 0) == -ENOENT, "device id past the "
									    "limit: ENOENT");
	check(attach(ctl, id + 1, r, REGION, 0) == -ENOENT, "no such device: ENOENT");
	check(attach(ctl, id, (void *)(uintptr_t)-4096, 8192, 0) == -EINVAL, "address wrapping: "
									     "EINVAL");
	munmap(gone, REGION);
	check(attach(ctl, id, gone, REGION, 0) == -EFAULT, "unmapped memory: EFAULT");
	((struct azbuse_cache_region *)r)->magic ^= 1;
	check(attach(ctl, id, r, REGION, 0) == -EINVAL, "bad magic: EINVAL");
	region_header((void *)r);
	check(attach(ctl, id, r, 4096, 0) == -EINVAL, "region_bytes past the length: EINVAL");
	((struct azbuse_cache_region *)r)->block_size = 4097;
	check(attach(ctl, id, r, REGION, 0) == -EINVAL, "block size not a power of two: EINVAL");
	region_header((void *)r);
	((struct azbuse_cache_region *)r)->nr_parts = 100000;
	check(attach(ctl, id, r, REGION, 0) == -EINVAL, "100000 partitions: EINVAL");
	region_header((void *)r);
	((struct azbuse_cache_region *)r)->part_off = REGION - 64;
	check(attach(ctl, id, r, REGION, 0) == -EINVAL, "partitions past the end: EINVAL");
	region_header((void *)r);
	((struct azbuse_cache_region *)r)->slot_stride = 12;
	check(attach(ctl, id, r, REGION, 0) == -EINVAL, "slots smaller than a slot: EINVAL");
	region_header((void *)r);
	((struct azbuse_cache_region *)r)->qstat_off = REGION - 8;
	check(attach(ctl, id, r, REGION, 0) == -EINVAL, "counters past the end: EINVAL");
	/* (checked before anything is pinned: 2^28 pages would be a 2 GiB page array) */
	check(attach(ctl, id, r, 1ULL << 40, 0) == -EINVAL, "1 TiB: EINVAL");
	/* a file's page cache (6.1: the module refuses it; 6.5 on: GUP does) */
	check(file_backed != MAP_FAILED, "mapping %s", dev);
	if (file_backed != MAP_FAILED) {
		ret = attach(ctl, id, file_backed, REGION, 0);
		check(ret == -EINVAL || ret == -EFAULT, "a block device's page cache: %s",
		      strerror(-ret));
		munmap(file_backed, REGION);
	}
	if (fd >= 0)
		close(fd);
	munmap(r, REGION);
}

static bool read_pattern(int fd, uint8_t *buf, const uint8_t *want)
{
	return pread(fd, buf, PATTERN_BYTES, 0) == (ssize_t)PATTERN_BYTES &&
	       !memcmp(buf, want, PATTERN_BYTES);
}

static int hostile(uint32_t id, const char *dev, unsigned rounds, uint64_t seed)
{
	uint8_t *want = aligned_buf(PATTERN_BYTES), *buf = aligned_buf(PATTERN_BYTES), *r;
	int ctl = open(AZBUSE_CTL_DEVICE, O_RDWR), fd = open_direct(dev, O_RDWR), status;
	unsigned failed_reads = 0;
	pid_t child;

	if (ctl < 0) {
		perror(AZBUSE_CTL_DEVICE);
		return 2;
	}
	rng_state = seed;
	printf("seed %llu\n", (unsigned long long)seed);
	for (size_t i = 0; i < PATTERN_BYTES / 8; i++)
		((uint64_t *)want)[i] = rnd();
	if (pwrite(fd, want, PATTERN_BYTES, 0) != (ssize_t)PATTERN_BYTES || fsync(fd)) {
		perror("pwrite");
		return 2;
	}
	bad_attaches(ctl, id, dev);

	r = region_new();
	region_header((void *)r);
	scramble(r);
	check(attach(ctl, id, r, REGION, 0) == 0, "a well-formed header over garbage: attached");
	child = fork();
	if (!child) {
		for (;;) {
			scramble(r);
			((struct azbuse_cache_region *)r)->mode = (uint32_t)below(4);
			((struct azbuse_cache_region *)r)->block_size =
				chance(50) ? BLOCK : (uint32_t)rnd();
		}
	}
	for (unsigned k = 0; k < rounds; k++) {
		uint64_t n = 1 + below(16), blk = below(PATTERN_BYTES / BLOCK - n + 1);

		if (pread(fd, buf, n * BLOCK, (off_t)(blk * BLOCK)) != (ssize_t)(n * BLOCK))
			failed_reads++;
	}
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	check(!failed_reads, "%u reads of 4-64 KiB against the garbage: %u failed", rounds,
	      failed_reads);
	check(attach(ctl, id, NULL, 0, 0) == 0, "detached");
	check(read_pattern(fd, buf, want), "after the detach: the device's own data");
	munmap(r, REGION); /* (the module's pin kept its pages until the detach) */

	r = region_new();
	region_header((void *)r);
	scramble(r);
	check(attach(ctl, id, r, REGION, 0) == 0, "a region left attached at exit");
	printf("%u checks, %u failed\n", checks, failures);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "torn"))
		return torn(argv[2], (unsigned)atoi(argv[3]), strtoull(argv[4], NULL, 0));
	if (argc == 6 && !strcmp(argv[1], "hostile"))
		return hostile((uint32_t)atoi(argv[2]), argv[3], (unsigned)atoi(argv[4]),
			       strtoull(argv[5], NULL, 0));
	fprintf(stderr,
		"usage: %s torn DEV SECONDS BLOCKS\n"
		"       %s hostile ID DEV ROUNDS SEED\n",
		argv[0], argv[0]);
	return 2;
}
