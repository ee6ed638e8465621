// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_pool.c - pool.db for the thin engine's supervisor, read and written
 * in a short-lived child process. Opening any RocksDB starts its
 * process-wide background threads; a worker forked from a process that has
 * them inherits the thread pool's bookkeeping without its threads, and its
 * shard's flushes and compactions would never run (it stalls once its
 * memtables fill). So the supervisor never opens a RocksDB itself: a child
 * does, and sends back what the supervisor needs as plain data. Workers
 * read the view and GC holds themselves (thin_read_view, in the worker).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "thin.h"

void thin_pool_facts_from(struct azb_pool *pool, const struct thin_engine *e, const char *snap_src,
			  const char *snap_name, struct thin_pool_facts *f)
{
	char view_msg[sizeof(f->msg)];
	struct azb_volume vol;
	struct azb_view view;
	int ret = 0, view_ret;

	if (snap_src)
		ret = azb_pool_snapshot(pool, snap_src, snap_name, f->msg, sizeof(f->msg));
	/*
	 * The facts are read even if the snapshot failed: pool.db may hold it
	 * all the same (taken by a keeper that died before it replied), and
	 * the served volume's new epoch must then be taken.
	 */
	view_ret = azb_pool_get_volume(pool, e->volume, &vol, view_msg, sizeof(view_msg));
	if (!view_ret)
		view_ret = azb_pool_get_view(pool, e->volume, &view, view_msg, sizeof(view_msg));
	if (!view_ret) {
		f->settings = *azb_pool_get_settings(pool);
		f->size_bytes = view.size_bytes;
		f->write_epoch = view.write_epoch;
		f->write_max_hold = view.write_max_hold;
		f->read_only = vol.kind == AZB_VOL_SNAPSHOT;
		f->have_view = 1;
		azb_view_free(&view);
	} else if (!ret) {
		ret = view_ret;
		snprintf(f->msg, sizeof(f->msg), "%s", view_msg);
	}
	/* a data device gone or swapped: said here, not by workers that cannot start */
	if (!ret)
		ret = azb_pool_check_data(e->pool_dir, azb_pool_get_settings(pool), f->msg,
					  sizeof(f->msg));
	f->ret = ret;
}

/* In the child: take the snapshot (if asked), then read the facts. */
static void thin_pool_facts_read(const struct thin_engine *e, const char *snap_src,
				 const char *snap_name, struct thin_pool_facts *f)
{
	struct azb_pool *pool;
	int ret;

	if (snap_src)
		ret = thin_pool_open(e->pool_dir, &pool, f->msg, sizeof(f->msg));
	else
		ret = azb_pool_open_readonly(e->pool_dir, &pool, f->msg, sizeof(f->msg));
	if (ret) {
		f->ret = ret;
		return;
	}
	thin_pool_facts_from(pool, e, snap_src, snap_name, f);
	azb_pool_close(pool);
}

static int thin_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int thin_pool_query(const struct thin_engine *e, const char *snap_src, const char *snap_name,
		    struct thin_pool_facts *f)
{
	int pipefd[2], status, ret;
	pid_t pid;

	memset(f, 0, sizeof(*f));
	if (pipe2(pipefd, O_CLOEXEC)) {
		ret = -errno;
		snprintf(f->msg, sizeof(f->msg), "cannot make a pipe: %s", strerror(-ret));
		return ret;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		snprintf(f->msg, sizeof(f->msg), "cannot fork: %s", strerror(-ret));
		return ret;
	}
	if (pid == 0) {
		close(pipefd[0]);
		thin_pool_facts_read(e, snap_src, snap_name, f);
		_exit(write(pipefd[1], f, sizeof(*f)) == sizeof(*f) ? 0 : 1);
	}
	close(pipefd[1]);
	ret = thin_read_full(pipefd[0], f, sizeof(*f));
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret) {
		memset(f, 0, sizeof(*f));
		snprintf(f->msg, sizeof(f->msg), "the process reading pool %.200s died",
			 e->pool_dir);
		return ret;
	}
	f->msg[sizeof(f->msg) - 1] = '\0';
	return f->ret;
}

int thin_read_view(struct thin_engine *e, struct azb_holds *holds, char *err, size_t errlen)
{
	struct azb_pool *pool;
	struct azb_view view;
	int ret;

	ret = azb_pool_open_readonly(e->pool_dir, &pool, err, errlen);
	if (ret)
		return ret;
	ret = azb_pool_get_view(pool, e->volume, &view, err, errlen);
	if (!ret) {
		ret = azb_pool_get_holds(pool, holds, err, errlen);
		if (ret)
			azb_view_free(&view);
	}
	azb_pool_close(pool);
	if (ret)
		return ret;
	azb_view_free(&e->view);
	e->view = view;
	return 0;
}
