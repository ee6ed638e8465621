// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * registry.c - looking up the built-in engines by name.
 */
#include <string.h>

#include <azbuse/azbuse.h>

#include "engines.h"

static const struct azbuse_engine_ops *const azb_builtin[] = {
	&azbuse_null_engine,
	&azbuse_mem_engine,
	&azbuse_file_engine,
	&azbuse_thin_engine,
	NULL,
};

const struct azbuse_engine_ops *const *azbuse_builtin_engines(void)
{
	return azb_builtin;
}

const struct azbuse_engine_ops *azbuse_find_engine(const char *name)
{
	size_t i;

	for (i = 0; azb_builtin[i]; i++)
		if (!strcmp(azb_builtin[i]->name, name))
			return azb_builtin[i];
	return NULL;
}
