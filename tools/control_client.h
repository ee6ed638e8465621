/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * control_client.h - a request to a device's control socket, for the tools.
 */
#ifndef AZBUSE_CONTROL_CLIENT_H
#define AZBUSE_CONTROL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Send `request` (one line) to RUN_DIR/azbuse<id>.sock and wait up to 120 s
 * (a cache drain or a snapshot may write much back) for the reply: 0 with its output lines in
 * *output (malloc'ed), 1 when the daemon answered ERR (the message in err; *output has the lines
 * before it), or -errno with a message in err.
 */
int control_call(const char *run_dir, uint32_t id, const char *request, char **output, char *err,
		 size_t errlen);
/* The same, waiting at most timeout_ms. */
int control_call_within(const char *run_dir, uint32_t id, const char *request, char **output,
			char *err, size_t errlen, unsigned timeout_ms);

#endif
