/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * testlib.h - what the VM suite's C test programs share: one line per check
 * ("ok   ..." / "FAIL ...") with a running count, and a small seeded random
 * number generator (splitmix64) so that a failing run can be replayed.
 */
#ifndef AZBUSE_TESTLIB_H
#define AZBUSE_TESTLIB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

static unsigned checks, failures;

static inline void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void check(bool ok, const char *fmt, ...)
{
	va_list ap;

	checks++;
	if (!ok)
		failures++;
	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static uint64_t rng_state;

/* splitmix64: tiny, and good enough to pick cases */
static inline uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static inline bool chance(unsigned pct)
{
	return below(100) < pct;
}

#endif /* AZBUSE_TESTLIB_H */
