/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rawworker.h - a minimal azbuse worker for the VM suite's C test programs
 * that drive the ioctls themselves: attach to queue 0 of a device, map its
 * ring and data area, and serve requests from an in-memory store, one
 * COMMIT at a time.
 */
#ifndef AZBUSE_RAWWORKER_H
#define AZBUSE_RAWWORKER_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <azbuse/uapi.h>

struct worker {
	int fd;
	struct azbuse_attach geo;
	struct azbuse_ring_header *hdr;
	struct azbuse_sqe *sq;
	struct azbuse_cqe *cq;
	unsigned char *data;
	uint32_t sq_head, cq_tail;
};

static inline void die(const char *what)
{
	printf("FAIL %s: %s (cannot continue)\n", what, strerror(errno));
	exit(1);
}

static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A device command (START, REMOVE, ...) on /dev/azbusectl: 0 or the errno. */
static inline int ctl_dev_cmd(int ctl, uint32_t dev_id, unsigned long cmd)
{
	struct azbuse_dev_cmd c = { .dev_id = dev_id };

	return ioctl(ctl, cmd, &c) ? errno : 0;
}

/* Whether queue 0 of device dev_id has a worker attached (ctl: /dev/azbusectl). */
static inline bool queue_attached(int ctl, uint32_t dev_id)
{
	struct azbuse_queue_info qi = { .dev_id = dev_id };

	return !ioctl(ctl, AZBUSE_CTL_QUEUE_INFO, &qi) && qi.state == AZBUSE_QUEUE_ATTACHED;
}

/*
 * Fork a child that runs serve_fn (which never returns) and wait up to
 * wait_ms for it to attach to queue 0. Returns the child's pid.
 */
static inline pid_t fork_worker(int ctl, uint32_t dev_id, void (*serve_fn)(void), uint64_t wait_ms)
{
	uint64_t deadline;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		serve_fn();
	deadline = now_ms() + wait_ms;
	while (!queue_attached(ctl, dev_id) && now_ms() < deadline)
		usleep(10000);
	return pid;
}

/* Open /dev/azbusec<dev_id>, ATTACH to a queue and map the ring and data area. */
static inline void worker_attach_queue(struct worker *w, uint32_t dev_id, uint16_t queue)
{
	char path[64];
	void *ring;

	snprintf(path, sizeof(path), AZBUSE_CHAR_PREFIX "%u", dev_id);
	w->fd = open(path, O_RDWR | O_CLOEXEC);
	if (w->fd < 0)
		die("open the char device");
	memset(&w->geo, 0, sizeof(w->geo));
	w->geo.queue = queue;
	if (ioctl(w->fd, AZBUSE_IOC_ATTACH, &w->geo))
		die("ATTACH");
	ring = mmap(NULL, w->geo.ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd,
		    AZBUSE_MMAP_RING_OFF);
	w->data = mmap(NULL, w->geo.data_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd,
		       AZBUSE_MMAP_DATA_OFF);
	if (ring == MAP_FAILED || w->data == MAP_FAILED)
		die("mmap");
	w->hdr = ring;
	w->sq = (struct azbuse_sqe *)((char *)ring + w->geo.sq_offset);
	w->cq = (struct azbuse_cqe *)((char *)ring + w->geo.cq_offset);
	w->sq_head = w->hdr->sq_head;
	w->cq_tail = w->hdr->cq_tail;
}

static inline void worker_attach(struct worker *w, uint32_t dev_id)
{
	worker_attach_queue(w, dev_id, 0);
}

static inline unsigned char *slot(struct worker *w, uint32_t tag)
{
	return w->data + (size_t)tag * w->geo.slot_bytes;
}

/* Post a completion for submission s. */
static inline void post_completion(struct worker *w, const struct azbuse_sqe *s, int32_t result,
				   uint32_t flags, uint64_t addr)
{
	w->cq[w->cq_tail & (w->geo.cq_entries - 1)] = (struct azbuse_cqe){
		.tag = s->tag, .seq = s->seq, .result = result, .flags = flags, .addr = addr
	};
	w->cq_tail++;
	__atomic_store_n(&w->hdr->cq_tail, w->cq_tail, __ATOMIC_RELEASE);
}

/* Serve a request from store (size bytes) and post its completion. */
static inline void serve_one(struct worker *w, unsigned char *store, uint64_t size,
			     const struct azbuse_sqe *s)
{
	uint64_t off = s->sector * 512;
	int32_t result = 0;

	if (s->tag >= w->geo.nr_slots || s->len > w->geo.slot_bytes || off + s->len > size)
		result = -EIO;
	else if (s->op == AZBUSE_OP_READ)
		memcpy(slot(w, s->tag), store + off, s->len);
	else if (s->op == AZBUSE_OP_WRITE)
		memcpy(store + off, slot(w, s->tag), s->len);
	post_completion(w, s, result, 0, 0);
}

/*
 * One COMMIT (waiting up to 100 ms), then every new submission: `take` (if
 * any) gets each first and returns true if it dealt with it, else it is
 * served from store. Returns false once the device is gone.
 */
static inline bool serve(struct worker *w, unsigned char *store, uint64_t size,
			 bool (*take)(struct worker *, const struct azbuse_sqe *))
{
	uint32_t tail;

	if (ioctl(w->fd, AZBUSE_IOC_COMMIT, 100UL) && errno == ENODEV)
		return false;
	tail = __atomic_load_n(&w->hdr->sq_tail, __ATOMIC_ACQUIRE);
	while (w->sq_head != tail) {
		struct azbuse_sqe s = w->sq[w->sq_head & (w->geo.sq_entries - 1)];

		w->sq_head++;
		if (!take || !take(w, &s))
			serve_one(w, store, size, &s);
	}
	__atomic_store_n(&w->hdr->sq_head, w->sq_head, __ATOMIC_RELEASE);
	return true;
}

#endif /* AZBUSE_RAWWORKER_H */
