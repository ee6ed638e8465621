/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * engines.h - the built-in engines (null, mem, file, thin): not part of
 * libazbuse, which an engine links, but a library of their own beside it
 * that azbusectl links (with RocksDB and liburing, which only they need).
 */
#ifndef AZBUSE_ENGINES_H
#define AZBUSE_ENGINES_H

#include <azbuse/engine.h>

extern const struct azbuse_engine_ops azbuse_null_engine;
extern const struct azbuse_engine_ops azbuse_mem_engine;
extern const struct azbuse_engine_ops azbuse_file_engine;
extern const struct azbuse_engine_ops azbuse_thin_engine;

/* The built-in engines: a NULL-terminated array; one by name, or NULL. */
const struct azbuse_engine_ops *const *azbuse_builtin_engines(void);
const struct azbuse_engine_ops *azbuse_find_engine(const char *name);

#endif /* AZBUSE_ENGINES_H */
