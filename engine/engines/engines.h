/*
 * engines.h - the engines built into libazbuse.
 */
#ifndef AZBUSE_ENGINES_H
#define AZBUSE_ENGINES_H

#include <azbuse/engine.h>

extern const struct azbuse_engine_ops azbuse_null_engine;
extern const struct azbuse_engine_ops azbuse_mem_engine;
extern const struct azbuse_engine_ops azbuse_file_engine;
extern const struct azbuse_engine_ops azbuse_thin_engine;

#endif /* AZBUSE_ENGINES_H */
