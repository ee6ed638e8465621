// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * lock.c - DIR/daemon.lock: an flock held by the process serving a pool, with
 * its pid written in the file, so a second daemon refuses the pool and tools
 * refuse to delete or roll back what is being served.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "meta_internal.h"

static void lock_path(char *path, size_t len, const char *dir)
{
	snprintf(path, len, "%s/daemon.lock", dir);
}

static pid_t read_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = 0;
	return (pid_t)strtol(buf, NULL, 10);
}

static int write_pid(int fd, pid_t pid)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);

	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, n, 0) != n)
		return -errno;
	return 0;
}

int azb_pool_hold(const char *dir, pid_t pid, int *lock_fd, pid_t *holder, char *err, size_t errlen)
{
	char path[PATH_MAX];
	pid_t other;
	int fd, ret;

	*lock_fd = -1;
	if (holder)
		*holder = 0;
	lock_path(path, sizeof(path), dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		azb_seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		other = read_pid(fd);
		if (holder)
			*holder = other;
		azb_seterr(err, errlen, "pool %s is in use by another process (pid %d)", dir,
			   (int)other);
		close(fd);
		return ret;
	}
	ret = write_pid(fd, pid);
	if (ret) {
		azb_seterr(err, errlen, "cannot write %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	*lock_fd = fd;
	return 0;
}

void azb_pool_release(int lock_fd)
{
	if (lock_fd < 0)
		return;
	if (ftruncate(lock_fd, 0) != 0) {
		/* The pid stays in the file; the lock itself goes with close. */
	}
	close(lock_fd);
}

int azb_pool_held_by(const char *dir, pid_t *holder)
{
	char path[PATH_MAX];
	int fd, ret = 0;

	if (holder)
		*holder = 0;
	lock_path(path, sizeof(path), dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (holder)
			*holder = read_pid(fd);
	}
	close(fd);
	return ret;
}
