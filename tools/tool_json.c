// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tool_json.c - building and printing the tools' --json documents with json-c
 * (see tool_json.h).
 */
#include <stdio.h>
#include <string.h>

#include "tool_json.h"

/* set when json-c could not allocate a value: the document is incomplete */
static bool tj_incomplete;

static json_object *tj_made(json_object *value)
{
	if (!value)
		tj_incomplete = true;
	return value;
}

json_object *tj_object(void)
{
	return tj_made(json_object_new_object());
}

json_object *tj_array(void)
{
	return tj_made(json_object_new_array());
}

void tj_add(json_object *o, const char *key, json_object *value)
{
	if (!o || json_object_object_add(o, key, value)) {
		if (o)
			tj_incomplete = true;
		json_object_put(value);
	}
}

json_object *tj_string(const char *s)
{
	return s ? tj_made(json_object_new_string(s)) : NULL;
}

json_object *tj_number(uint64_t v)
{
	return tj_made(json_object_new_uint64(v));
}

void tj_str(json_object *o, const char *key, const char *s)
{
	tj_add(o, key, tj_string(s));
}

void tj_u64(json_object *o, const char *key, uint64_t v)
{
	tj_add(o, key, tj_number(v));
}

void tj_i64(json_object *o, const char *key, int64_t v)
{
	tj_add(o, key, tj_made(json_object_new_int64(v)));
}

void tj_bool(json_object *o, const char *key, bool v)
{
	tj_add(o, key, tj_made(json_object_new_boolean(v)));
}

void tj_real(json_object *o, const char *key, double v, int decimals)
{
	char text[64];

	snprintf(text, sizeof(text), "%.*f", decimals, v);
	tj_add(o, key, tj_made(json_object_new_double_s(v, text)));
}

void tj_append(json_object *a, json_object *value)
{
	if (!a || json_object_array_add(a, value)) {
		if (a)
			tj_incomplete = true;
		json_object_put(value);
	}
}

json_object *tj_lines(const char *text)
{
	json_object *a = tj_array();

	while (a && text && *text) {
		size_t n = strcspn(text, "\n");

		tj_append(a, tj_made(json_object_new_string_len(text, (int)n)));
		text += n + (text[n] == '\n');
	}
	return a;
}

int tj_print(json_object *doc, const char *tool)
{
	const char *text = NULL;

	if (doc && !tj_incomplete)
		text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_SPACED |
								   JSON_C_TO_STRING_NOSLASHESCAPE);
	if (text)
		puts(text);
	else
		fprintf(stderr, "%s: out of memory building the JSON output\n", tool);
	json_object_put(doc);
	return text ? 0 : 1;
}
