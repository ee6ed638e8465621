// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * control_client.c - the tools' side of a device's control socket
 * (RUN_DIR/azbuse<N>.sock): one request line, then output lines and a last
 * line "OK" or "ERR message".
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_client.h"

#define CONTROL_TIMEOUT_MS 120000 /* (a cache drain or a snapshot may write a lot back) */
#define CONTROL_REPLY_MAX (1 << 20)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int control_connect(const char *run_dir, uint32_t id, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/azbuse%u.sock", run_dir, id) >=
	    sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path of azbuse%u is too long", id);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		snprintf(err, errlen, "cannot connect to %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

static int control_send(int fd, const char *request)
{
	size_t len = strlen(request), done = 0;

	while (done < len) {
		ssize_t n = send(fd, request + done, len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/* Read until EOF or the deadline into a NUL-terminated *reply. */
static int control_read(int fd, int64_t deadline, char **reply)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			free(buf);
			return -ETIMEDOUT;
		}
		if (len + 1 >= cap) {
			char *q = cap < CONTROL_REPLY_MAX ? realloc(buf, cap * 2) : NULL;

			if (!q) {
				free(buf);
				return -E2BIG;
			}
			buf = q;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			int ret = -errno;

			free(buf);
			return ret;
		}
		if (!n)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*reply = buf;
	return 0;
}

/* The last line of reply that starts with "ERR" (a message may span lines), or NULL. */
static char *last_err_line(char *reply)
{
	char *line = reply, *found = NULL;

	while (line && *line) {
		if (!strncmp(line, "ERR", 3) && (line[3] == ' ' || line[3] == '\n' || !line[3]))
			found = line;
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	return found;
}

static void one_line(char *text)
{
	for (char *p = strchr(text, '\n'); p; p = strchr(p, '\n'))
		*p = ';';
}

/* Split off the last line of reply: 0 for OK, 1 for ERR (message in err), -EPROTO. */
static int control_status(char *reply, char *err, size_t errlen)
{
	size_t len = strlen(reply);
	char *last;

	while (len && (reply[len - 1] == '\n' || reply[len - 1] == '\r'))
		reply[--len] = '\0';
	last = strrchr(reply, '\n');
	last = last ? last + 1 : reply;
	if (!strcmp(last, "OK")) {
		*last = '\0';
		return 0;
	}
	last = last_err_line(reply);
	if (last) {
		snprintf(err, errlen, "%s", last[3] ? last + 4 : "failed (no reason given)");
		one_line(err);
		*last = '\0';
		return 1;
	}
	snprintf(err, errlen, "the daemon's reply does not end with OK or ERR");
	return -EPROTO;
}

int control_call(const char *run_dir, uint32_t id, const char *request, char **output, char *err,
		 size_t errlen)
{
	return control_call_within(run_dir, id, request, output, err, errlen, CONTROL_TIMEOUT_MS);
}

int control_call_within(const char *run_dir, uint32_t id, const char *request, char **output,
			char *err, size_t errlen, unsigned timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	char line[1024], *reply = NULL;
	int fd, ret;

	*output = NULL;
	fd = control_connect(run_dir, id, err, errlen);
	if (fd < 0)
		return fd;
	snprintf(line, sizeof(line), "%s\n", request);
	ret = control_send(fd, line);
	if (!ret)
		ret = control_read(fd, deadline, &reply);
	close(fd);
	if (ret) {
		if (ret == -ETIMEDOUT)
			snprintf(err, errlen,
				 "azbuse%u's control socket: no complete reply within %u ms", id,
				 timeout_ms);
		else
			snprintf(err, errlen, "azbuse%u's control socket: %s", id, strerror(-ret));
		return ret;
	}
	ret = control_status(reply, err, errlen);
	if (ret < 0) {
		free(reply);
		return ret;
	}
	*output = reply;
	return ret;
}
