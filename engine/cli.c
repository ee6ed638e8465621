// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cli.c - azbuse_main(): the whole command line of an engine program, so
 * that an engine author writes the ops table and a one-line main().
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static void azb_usage(const char *prog, const struct azbuse_engine_ops *ops)
{
	size_t k;

	printf("usage: %s [ID|any] --size SIZE [options]\n\n"
	       "Serves " AZBUSE_BLOCK_PREFIX "ID from the %s engine%s%s.\n\n",
	       prog, ops->name, ops->description ? ": " : "",
	       ops->description ? ops->description : "");
	azbuse_print_device_options(stdout);
	if (ops->option_keys && ops->option_keys[0]) {
		printf("\nengine options:");
		for (k = 0; ops->option_keys[k]; k++)
			printf(" %s", ops->option_keys[k]);
		printf("\n");
	}
}

int azbuse_main(int argc, char **argv, const struct azbuse_engine_ops *ops)
{
	struct azbuse_args a;
	char err[256];
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			azb_usage(argv[0], ops);
			return 0;
		}
	}
	if (azbuse_parse_device_args(argc - 1, argv + 1, &a)) {
		fprintf(stderr, "%s: %s (see --help)\n", argv[0], a.error);
		return 2;
	}
	if (a.opts.recover && azbuse_load_recover_args(&a)) {
		fprintf(stderr, "%s: %s\n", argv[0], a.error);
		return 1;
	}
	if (a.opts.recover && strcmp(a.engine, ops->name)) {
		fprintf(stderr, "%s: the device was added with engine %s\n", argv[0], a.engine);
		return 1;
	}
	if (azbuse_check_engine_options(ops, &a, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", argv[0], err);
		return 2;
	}
	return azbuse_launch(ops, &a);
}
