// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * parse.c - parsing of what users type: sizes in human units and engine
 * options.
 */
#include <ctype.h>
#include <stdio.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <azbuse/engine.h>

static int azb_unit_shift(const char *unit, unsigned *shift)
{
	static const struct {
		const char *name;
		unsigned shift;
	} units[] = {
		{ "", 0 },    { "b", 0 },    { "k", 10 }, { "kb", 10 }, { "kib", 10 }, { "m", 20 },
		{ "mb", 20 }, { "mib", 20 }, { "g", 30 }, { "gb", 30 }, { "gib", 30 }, { "t", 40 },
		{ "tb", 40 }, { "tib", 40 }, { "p", 50 }, { "pb", 50 }, { "pib", 50 },
	};
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcasecmp(unit, units[i].name)) {
			*shift = units[i].shift;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * "4096", "64k", "1.5G", "2TiB": a number, maybe with a decimal fraction,
 * and a binary unit; the result must be a whole number of bytes.
 */
int azbuse_parse_size(const char *text, uint64_t *bytes)
{
	unsigned __int128 value, frac = 0, scale = 1;
	unsigned long long whole;
	unsigned shift;
	char *end;

	if (!text || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	whole = strtoull(text, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end == '.') {
		for (end++; isdigit((unsigned char)*end); end++) {
			if (scale > 1000000000000000000ULL)
				return -EINVAL; /* more digits than any size needs */
			frac = frac * 10 + (unsigned)(*end - '0');
			scale *= 10;
		}
		if (scale == 1)
			return -EINVAL; /* "1." */
	}
	if (azb_unit_shift(end, &shift))
		return -EINVAL;
	value = ((unsigned __int128)whole << shift) + ((frac << shift) / scale);
	if ((frac << shift) % scale)
		return -EINVAL; /* not a whole number of bytes */
	if (value > UINT64_MAX)
		return -ERANGE;
	*bytes = (uint64_t)value;
	return 0;
}

const char *azbuse_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

const char *azbuse_config_option(const struct azbuse_engine_config *cfg, const char *key)
{
	size_t i;

	for (i = cfg->nr_options; i-- > 0;)
		if (!strcmp(cfg->options[i].key, key))
			return cfg->options[i].value;
	return NULL;
}
