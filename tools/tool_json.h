/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tool_json.h - the tools' --json output, through json-c: a command builds one
 * document and prints it once, indented as `jq .` would. Adding to a NULL
 * object does nothing and a failed allocation is remembered, so a command
 * builds its document without checking each step and tj_print() says "out of
 * memory" instead of printing half of it.
 */
#ifndef AZBUSE_TOOL_JSON_H
#define AZBUSE_TOOL_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

json_object *tj_object(void);
json_object *tj_array(void);

/* Members of object o; value NULL (or s NULL in tj_str) is JSON null. */
void tj_add(json_object *o, const char *key, json_object *value);
void tj_str(json_object *o, const char *key, const char *s);
void tj_u64(json_object *o, const char *key, uint64_t v);
void tj_i64(json_object *o, const char *key, int64_t v);
void tj_bool(json_object *o, const char *key, bool v);
/* A number with `decimals` digits after the point (1.5, not 1.5000000000000002). */
void tj_real(json_object *o, const char *key, double v, int decimals);

/* Append value to array a. */
void tj_append(json_object *a, json_object *value);
json_object *tj_string(const char *s);
json_object *tj_number(uint64_t v);
/* The lines of text (NULL: none) as an array of strings. */
json_object *tj_lines(const char *text);

/* Print doc and a newline on stdout and free it: 0, or 1 after saying on
 * stderr (as `tool`) that memory ran out while building it. */
int tj_print(json_object *doc, const char *tool);

#endif
