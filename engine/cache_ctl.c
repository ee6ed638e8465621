// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cache_ctl.c - the supervisor's side of the RAM cache: the control
 * socket's "cache ..." requests (state and counters, mode, policy, dirty
 * thresholds, write everything back) and drains, which wait for the
 * workers' cleaners to write back every block dirty when they began.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

_Static_assert(AZBUSE_CACHE_WRITEBACK == (int)AZC_MODE_WRITEBACK &&
		       AZBUSE_CACHE_PASSTHROUGH == (int)AZC_MODE_PASSTHROUGH &&
		       AZBUSE_CACHE_WRITEAROUND == (int)AZC_MODE_WRITEAROUND,
	       "the public cache modes are the cache's own");

#define AZB_DRAIN_POLL_MS 5
#define AZB_DRAIN_WAKE_MS 100	 /* the workers are woken again this often */
#define AZB_DRAIN_STALL_MS 15000 /* no block written back for this long: give up */

static void azb_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

int azb_cache_drain(bool hold, unsigned timeout_ms, char *err, size_t err_size)
{
	struct azc_cache *c = azb_device_cache;
	uint64_t start = azb_clock_ms(), last_wake = start, progress = start, target, left;
	uint64_t least = UINT64_MAX;
	struct azc_stats before, after;

	if (!c)
		return 0;
	azc_get_stats(c, &before);
	azc_clean_retry(c);
	target = azc_drain_begin(c, hold);
	while ((left = azc_dirty_before(c, target)) != 0) {
		uint64_t now = azb_clock_ms();

		if (left < least) { /* progress */
			least = left;
			progress = now;
		}
		/* (a worker that died cannot write its blocks back until the
		 * supervisor, which waits here, starts another: give up early) */
		if (now - start > timeout_ms || now - progress > AZB_DRAIN_STALL_MS) {
			azc_get_stats(c, &after);
			snprintf(err, err_size,
				 "%llu dirty cache block(s) not written back after %llu ms, none "
				 "for the last %llu ms (%llu write-back error(s))",
				 (unsigned long long)left, (unsigned long long)(now - start),
				 (unsigned long long)(now - progress),
				 (unsigned long long)(after.writeback_errors -
						      before.writeback_errors));
			return after.writeback_errors != before.writeback_errors ? -EIO
										 : -ETIMEDOUT;
		}
		if (now - last_wake >= AZB_DRAIN_WAKE_MS) {
			azc_wake_workers(c);
			last_wake = now;
		}
		azb_sleep_ms(AZB_DRAIN_POLL_MS);
	}
	return 0;
}

void azb_cache_drain_end(bool hold)
{
	if (azb_device_cache)
		azc_drain_end(azb_device_cache, hold);
}

/* "dirty LOW,HIGH" (percent of the cache). */
static int azb_cache_set_dirty(struct azc_cache *c, const char *arg, char *out, size_t out_size)
{
	unsigned low, high;
	char tail;

	if (sscanf(arg, "%u%%,%u%%%c", &low, &high, &tail) != 2 &&
	    sscanf(arg, "%u,%u%c", &low, &high, &tail) != 2) {
		snprintf(out, out_size, "cache dirty LOW,HIGH: percentages, such as 10,40");
		return -EINVAL;
	}
	if (low > high || high > 100) {
		snprintf(out, out_size, "cache dirty %u,%u: need LOW <= HIGH <= 100", low, high);
		return -EINVAL;
	}
	azc_set_dirty_limits(c, low, high);
	azc_wake_workers(c);
	return 0;
}

/*
 * "size SIZE": what it gives up is written back first (new writes are kept
 * clean meanwhile); it grows back up to the size it was made with.
 */
static int azb_cache_set_size(struct azc_cache *c, const char *arg, char *out, size_t out_size)
{
	uint64_t bytes;
	int ret = -EBUSY;

	if (azbuse_parse_size(arg, &bytes) || bytes > azc_max_bytes(c)) {
		snprintf(out, out_size,
			 "cache size SIZE: at most %llu MiB (what it was added with)",
			 (unsigned long long)(azc_max_bytes(c) >> 20));
		return -EINVAL;
	}
	for (int round = 0; round < 3 && ret == -EBUSY; round++) {
		ret = azb_cache_drain(true, AZB_CACHE_DRAIN_MS, out, out_size);
		if (!ret)
			ret = azc_resize(c, bytes);
		azb_cache_drain_end(true);
	}
	if (ret == -EINVAL)
		snprintf(out, out_size, "cache size %s: too small", arg);
	else if (ret == -EBUSY)
		snprintf(out, out_size, "cache size %s: blocks to give up stayed dirty", arg);
	return ret;
}

/* "mode M": leaving write-back writes every dirty block back first. */
static int azb_cache_set_mode(struct azc_cache *c, const char *arg, char *out, size_t out_size)
{
	enum azc_mode mode;
	int ret = 0, rounds;

	if (azc_mode_parse(arg, &mode)) {
		snprintf(out, out_size,
			 "cache mode: writethrough, writeback, writearound or passthrough");
		return -EINVAL;
	}
	azc_set_mode(c, mode);
	if (mode == AZC_MODE_WRITEBACK)
		return 0;
	/*
	 * No write is kept dirty now, and the cleaners write back what is. A
	 * write that saw the old mode may still be kept dirty after a drain
	 * began, past its target: drain again while any block is dirty.
	 */
	for (rounds = 0; !ret && rounds < 3 && (!rounds || azc_dirty_count(c)); rounds++)
		ret = azb_cache_drain(false, AZB_CACHE_DRAIN_MS, out, out_size);
	return ret;
}

/* The state and totals on one line, then one line per queue ("queue N ..."). */
static void azb_cache_format(struct azc_cache *c, char *out, size_t out_size)
{
	struct azc_stats st;
	uint32_t low, high;

	azc_get_stats(c, &st);
	azc_get_dirty_limits(c, &low, &high);
	snprintf(out, out_size,
		 "cache mode %s policy %s block %u slots %llu max_bytes %llu used %llu dirty %llu "
		 "dirty_low %u "
		 "dirty_high %u seq_cutoff %llu hits %llu misses %llu inserts %llu evictions %llu "
		 "absorbed %llu through %llu writebacks %llu writeback_errors %llu bypassed %llu "
		 "recoveries %llu module_hits %llu\n",
		 azc_mode_name(azc_get_mode(c)), azc_policy_name(azc_get_policy(c)),
		 azc_block_size(c), (unsigned long long)st.slots,
		 (unsigned long long)azc_max_bytes(c), (unsigned long long)st.used,
		 (unsigned long long)st.dirty, low, high, (unsigned long long)azc_get_seq_cutoff(c),
		 (unsigned long long)st.hits, (unsigned long long)st.misses,
		 (unsigned long long)st.inserts, (unsigned long long)st.evictions,
		 (unsigned long long)st.absorbed, (unsigned long long)st.through,
		 (unsigned long long)st.writebacks, (unsigned long long)st.writeback_errors,
		 (unsigned long long)st.bypassed, (unsigned long long)st.recoveries,
		 (unsigned long long)st.module_hits);
	for (uint32_t q = 0; q < azc_queues(c); q++) {
		struct azc_queue_stats qs;
		size_t used = strlen(out);

		azc_get_queue_stats(c, q, &qs);
		snprintf(out + used, out_size - used,
			 "queue %u read_hits %llu read_misses %llu absorbed %llu through %llu "
			 "bypassed %llu writebacks %llu writeback_errors %llu module_hits %llu\n",
			 q, (unsigned long long)qs.read_hits, (unsigned long long)qs.read_misses,
			 (unsigned long long)qs.absorbed, (unsigned long long)qs.through,
			 (unsigned long long)qs.bypassed, (unsigned long long)qs.writebacks,
			 (unsigned long long)qs.writeback_errors,
			 (unsigned long long)qs.module_hits);
	}
}

int azb_cache_request(const char *args, char *out, size_t out_size)
{
	struct azc_cache *c = azb_device_cache;
	enum azc_policy policy;
	int ret = 0;

	if (!c) {
		snprintf(out, out_size, "this device has no cache (azbusectl add --cache SIZE)");
		return -ENOENT;
	}
	if (!strncmp(args, "mode ", 5)) {
		ret = azb_cache_set_mode(c, args + 5, out, out_size);
	} else if (!strncmp(args, "policy ", 7)) {
		if (azc_policy_parse(args + 7, &policy)) {
			snprintf(out, out_size, "cache policy: s3fifo or lru");
			return -EINVAL;
		}
		azc_set_policy(c, policy);
	} else if (!strncmp(args, "dirty ", 6)) {
		ret = azb_cache_set_dirty(c, args + 6, out, out_size);
	} else if (!strncmp(args, "seq-cutoff ", 11)) {
		uint64_t bytes;

		if (azbuse_parse_size(args + 11, &bytes)) {
			snprintf(out, out_size,
				 "cache seq-cutoff SIZE: bytes (K, M, G), 0 for none");
			return -EINVAL;
		}
		azc_set_seq_cutoff(c, bytes);
	} else if (!strncmp(args, "size ", 5)) {
		ret = azb_cache_set_size(c, args + 5, out, out_size);
	} else if (!strcmp(args, "flush")) {
		ret = azb_cache_drain(false, AZB_CACHE_DRAIN_MS, out, out_size);
	} else if (*args) {
		snprintf(
			out, out_size,
			"cache [mode M | policy P | dirty LOW,HIGH | seq-cutoff SIZE | size SIZE | "
			"flush]");
		return -EINVAL;
	}
	if (!ret)
		azb_cache_format(c, out, out_size);
	return ret;
}
