// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_front.c - azbuse-thin as the user runs it. A live snapshot of a
 * served volume it takes itself: one request to the serving daemon's control
 * socket, with no metadata opened, so that the command never loads RocksDB
 * (under emulation, loading librocksdb alone takes about as long as
 * dm-thin's whole suspend, message and resume). Every other command, and a
 * snapshot of a volume nobody serves, it hands to the full tool
 * (libexec/azbuse-thin beside it in a build tree, else the installed one)
 * with the same arguments.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thin_tool.h"

#ifndef AZBUSE_THIN_FULL
#define AZBUSE_THIN_FULL "/usr/local/libexec/azbuse/azbuse-thin"
#endif

/* Run the full tool in this process's place; returns only on failure. */
static int run_full(char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		snprintf(path, sizeof(path), "%s/libexec/azbuse-thin", dirname(self));
		if (!access(path, X_OK))
			execv(path, argv);
	}
	execv(AZBUSE_THIN_FULL, argv);
	fprintf(stderr, "azbuse-thin: cannot run %s: %s\n", AZBUSE_THIN_FULL, strerror(errno));
	return 1;
}

/* [--pool DIR | --pool=DIR | --json]... before the command; false for anything else. */
static bool global_options(struct thin_ctx *c, int argc, char **argv, int *i)
{
	for (; *i < argc && argv[*i][0] == '-'; ++*i) {
		if (!strcmp(argv[*i], "--json"))
			c->json = true;
		else if (!strncmp(argv[*i], "--pool=", 7) && argv[*i][7])
			c->dir = argv[*i] + 7;
		else if (!strcmp(argv[*i], "--pool") && *i + 1 < argc && argv[*i + 1][0])
			c->dir = argv[++*i];
		else
			return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct thin_ctx c = { .cmd = "snapshot" };
	const struct thin_device *dev;
	struct thin_served served;
	pid_t holder = 0;
	int i = 1;

	if (!global_options(&c, argc, argv, &i) || argc - i != 3 || strcmp(argv[i], "snapshot") ||
	    azb_name_check(argv[i + 1]) || azb_name_check(argv[i + 2]))
		return run_full(argv);
	if (!c.dir)
		c.dir = azb_pool_default_dir();
	if (azb_pool_held_by(c.dir, &holder) != -EBUSY)
		return run_full(argv);
	thin_find_served(c.dir, holder, &served);
	dev = thin_served_volume(&served, argv[i + 1]);
	if (!dev)
		return run_full(argv);
	return thin_snapshot_served(&c, dev, argv[i + 1], argv[i + 2]);
}
