// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test_pubmap.c - the published map (metadata/pubmap.c): what a reader
 * finds for each kind of entry, write epochs (a snapshot makes every owned
 * entry read-only, also when the stamps wrap), grace tickets against busy,
 * quiescent and idle readers, sharing with a forked child, bad arguments,
 * and a reader that never sees a torn entry while an owner republishes.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pubmap.h"

#define NR_CHUNKS 1024
#define NR_READERS 3

static int setup(void **state)
{
	struct azb_pubmap *pm;

	assert_int_equal(azb_pubmap_create(NR_CHUNKS, NR_READERS, &pm), 0);
	*state = pm;
	return 0;
}

static int teardown(void **state)
{
	azb_pubmap_destroy(*state);
	return 0;
}

static void test_new_map_is_unknown(void **state)
{
	struct azb_pubmap *pm = *state;
	struct azb_pub_entry e;

	assert_int_equal(azb_pubmap_nr_chunks(pm), NR_CHUNKS);
	e = azb_pubmap_lookup(pm, 0);
	assert_int_equal(e.kind, AZB_PUB_UNKNOWN);
	assert_false(e.writable);
	e = azb_pubmap_lookup(pm, NR_CHUNKS - 1);
	assert_int_equal(e.kind, AZB_PUB_UNKNOWN);
}

static void test_each_kind_reads_back(void **state)
{
	struct azb_pubmap *pm = *state;
	const uint64_t big = (1ULL << AZB_PUBMAP_PHYS_BITS) - 1;
	struct azb_pub_entry e;

	assert_int_equal(azb_pubmap_publish(pm, 1, AZB_PUB_ZERO, 77), 0);
	assert_int_equal(azb_pubmap_publish(pm, 2, AZB_PUB_SHARED, 12345), 0);
	assert_int_equal(azb_pubmap_publish(pm, 3, AZB_PUB_OWNED, big), 0);

	e = azb_pubmap_lookup(pm, 1);
	assert_int_equal(e.kind, AZB_PUB_ZERO);
	assert_int_equal(e.phys, 0);
	assert_false(e.writable);
	e = azb_pubmap_lookup(pm, 2);
	assert_int_equal(e.kind, AZB_PUB_SHARED);
	assert_int_equal(e.phys, 12345);
	assert_false(e.writable);
	e = azb_pubmap_lookup(pm, 3);
	assert_int_equal(e.kind, AZB_PUB_OWNED);
	assert_int_equal(e.phys, big);
	assert_true(e.writable);

	azb_pubmap_forget(pm, 3);
	assert_int_equal(azb_pubmap_lookup(pm, 3).kind, AZB_PUB_UNKNOWN);
	assert_int_equal(azb_pubmap_lookup(pm, 4).kind, AZB_PUB_UNKNOWN);
}

static void test_bad_arguments(void **state)
{
	struct azb_pubmap *pm = *state, *other;

	assert_int_equal(azb_pubmap_publish(pm, NR_CHUNKS, AZB_PUB_OWNED, 1), -EINVAL);
	assert_int_equal(azb_pubmap_publish(pm, 0, (enum azb_pub_kind)4, 1), -EINVAL);
	assert_int_equal(azb_pubmap_publish(pm, 0, AZB_PUB_OWNED, 1ULL << AZB_PUBMAP_PHYS_BITS),
			 -ERANGE);
	assert_int_equal(azb_pubmap_lookup(pm, NR_CHUNKS).kind, AZB_PUB_UNKNOWN);
	assert_int_equal(azb_pubmap_lookup(pm, UINT64_MAX).kind, AZB_PUB_UNKNOWN);
	azb_pubmap_forget(pm, NR_CHUNKS); /* ignored */
	azb_pubmap_quiescent(pm, NR_READERS);
	azb_pubmap_idle(pm, NR_READERS);

	assert_int_equal(azb_pubmap_create(0, 1, &other), -EINVAL);
	assert_null(other);
	assert_int_equal(azb_pubmap_create(1, 0, &other), -EINVAL);
	assert_int_equal(azb_pubmap_create(1, AZB_PUBMAP_MAX_READERS + 1, &other), -EINVAL);
	assert_int_equal(azb_pubmap_create(UINT64_MAX, 1, &other), -EINVAL);
}

static void test_new_epoch_makes_owned_read_only(void **state)
{
	struct azb_pubmap *pm = *state;
	struct azb_pub_entry e;

	assert_int_equal(azb_pubmap_publish(pm, 5, AZB_PUB_OWNED, 500), 0);
	assert_true(azb_pubmap_lookup(pm, 5).writable);
	azb_pubmap_new_epoch(pm);
	e = azb_pubmap_lookup(pm, 5);
	assert_int_equal(e.kind, AZB_PUB_OWNED);
	assert_int_equal(e.phys, 500);
	assert_false(e.writable);
	/* the owner copied it on write: the new chunk is owned in the new epoch */
	assert_int_equal(azb_pubmap_publish(pm, 5, AZB_PUB_OWNED, 501), 0);
	e = azb_pubmap_lookup(pm, 5);
	assert_true(e.writable);
	assert_int_equal(e.phys, 501);
}

static void test_epoch_wrap_never_revives_an_old_stamp(void **state)
{
	struct azb_pubmap *pm = *state;
	uint64_t i, n = 1ULL << AZB_PUBMAP_EPOCH_BITS;
	struct azb_pub_entry e;

	/* published in epoch 1, then exactly one stamp period of snapshots */
	assert_int_equal(azb_pubmap_publish(pm, 7, AZB_PUB_OWNED, 700), 0);
	for (i = 0; i < n; i++) {
		azb_pubmap_new_epoch(pm);
		if ((i & 0xffff) == 0)
			assert_false(azb_pubmap_lookup(pm, 7).writable);
	}
	e = azb_pubmap_lookup(pm, 7);
	assert_false(e.writable);
	assert_int_equal(e.kind, AZB_PUB_SHARED);
	assert_int_equal(e.phys, 700);
	/* and stamps still work after the wrap */
	assert_int_equal(azb_pubmap_publish(pm, 8, AZB_PUB_OWNED, 800), 0);
	assert_true(azb_pubmap_lookup(pm, 8).writable);
}

static void test_grace_waits_for_busy_readers(void **state)
{
	struct azb_pubmap *pm = *state;
	uint64_t t;

	/* readers start idle: nothing to wait for */
	t = azb_pubmap_retire(pm);
	assert_true(azb_pubmap_passed(pm, t));

	azb_pubmap_quiescent(pm, 0); /* reader 0 starts looking things up */
	azb_pubmap_quiescent(pm, 2);
	t = azb_pubmap_retire(pm);
	assert_false(azb_pubmap_passed(pm, t));
	azb_pubmap_quiescent(pm, 0);
	assert_false(azb_pubmap_passed(pm, t)); /* reader 2 still holds an old lookup */
	azb_pubmap_idle(pm, 2);
	assert_true(azb_pubmap_passed(pm, t));

	/* a later ticket waits again; a snapshot's ticket too */
	t = azb_pubmap_new_epoch(pm);
	assert_false(azb_pubmap_passed(pm, t));
	azb_pubmap_quiescent(pm, 0);
	assert_true(azb_pubmap_passed(pm, t));
}

static void test_forked_child_shares_the_map(void **state)
{
	struct azb_pubmap *pm = *state;
	int status;
	pid_t pid;

	assert_int_equal(azb_pubmap_publish(pm, 9, AZB_PUB_SHARED, 900), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* a worker: sees what the owner published, and publishes for the parent */
		struct azb_pub_entry e = azb_pubmap_lookup(pm, 9);

		if (e.kind != AZB_PUB_SHARED || e.phys != 900)
			_exit(1);
		azb_pubmap_publish(pm, 10, AZB_PUB_OWNED, 1000);
		azb_pubmap_quiescent(pm, 1);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(azb_pubmap_lookup(pm, 10).kind, AZB_PUB_OWNED);
	assert_int_equal(azb_pubmap_lookup(pm, 10).phys, 1000);
	/* the child's quiescent mark is in the shared header too */
	azb_pubmap_quiescent(pm, 0);
	azb_pubmap_quiescent(pm, 2);
	assert_true(azb_pubmap_passed(pm, 0));
}

/* An owner republishes chunk c as phys c * K + round; a reader checks every word it sees. */
#define TORN_ROUNDS 2000
#define TORN_K 1000003ULL

struct torn_arg {
	struct azb_pubmap *pm;
	atomic_int done;
	unsigned bad;
};

static void *torn_reader(void *p)
{
	struct torn_arg *a = p;
	uint64_t c;

	while (!atomic_load(&a->done)) {
		for (c = 0; c < NR_CHUNKS; c++) {
			struct azb_pub_entry e = azb_pubmap_lookup(a->pm, c);

			if (e.kind == AZB_PUB_UNKNOWN)
				continue;
			if (e.kind != AZB_PUB_OWNED || e.phys / TORN_K != c ||
			    e.phys % TORN_K >= TORN_ROUNDS)
				a->bad++;
		}
	}
	return NULL;
}

static void test_no_torn_entries(void **state)
{
	struct torn_arg a = { .pm = *state };
	pthread_t th;
	uint64_t c;
	unsigned round;

	atomic_init(&a.done, 0);
	assert_int_equal(pthread_create(&th, NULL, torn_reader, &a), 0);
	for (round = 0; round < TORN_ROUNDS; round++)
		for (c = 0; c < NR_CHUNKS; c++)
			assert_int_equal(
				azb_pubmap_publish(a.pm, c, AZB_PUB_OWNED, c * TORN_K + round), 0);
	atomic_store(&a.done, 1);
	pthread_join(th, NULL);
	assert_int_equal(a.bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_map_is_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each_kind_reads_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_epoch_makes_owned_read_only, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_epoch_wrap_never_revives_an_old_stamp, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_grace_waits_for_busy_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forked_child_shares_the_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_torn_entries, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
