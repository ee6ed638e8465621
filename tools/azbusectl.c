// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * azbusectl.c - the azbuse command line: add a device served by a built-in
 * engine, remove, list and describe devices. Tables for people, --json for
 * scripts; exit 0 on success, 1 on failure, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libsmartcols.h>

#include <azbuse/azbuse.h>

#include "../engine/internal.h"
#include "engines.h"
#include "control_client.h"
#include "tool_json.h"

/*
 * jemalloc (linked in): give freed pages back to the system at once instead
 * of keeping them for 10 s, so that a daemon's resident memory follows what
 * it holds. Measured on the thin engine: 4 MiB less resident per 2 workers
 * with 24 GiB mapped, no change in IOPS.
 */
const char *malloc_conf = "dirty_decay_ms:0,muzzy_decay_ms:0";

#define EXIT_USAGE 2
#define REMOVE_WAIT_MS 15000
#define REMOVE_BUSY_WAIT_MS 2000 /* an opener that may be passing (udev) */

/* ---- tables, by libsmartcols ---- */

#define TABLE_CELL 136 /* a thin volume's name and more */

/* A table whose columns are heads[0..n); bit i of right: column i right-aligned. */
static struct libscols_table *table_start(const char *const *heads, unsigned n, unsigned long right)
{
	struct libscols_table *tb = scols_new_table();
	unsigned i;

	for (i = 0; tb && i < n; i++) {
		if (!scols_table_new_column(tb, heads[i], 0,
					    (right >> i) & 1 ? SCOLS_FL_RIGHT : 0)) {
			scols_unref_table(tb);
			tb = NULL;
		}
	}
	return tb;
}

/* One line of n cells. */
static int table_add(struct libscols_table *tb, char cells[][TABLE_CELL], unsigned n)
{
	struct libscols_line *ln = scols_table_new_line(tb, NULL);
	unsigned i;

	for (i = 0; ln && i < n; i++)
		if (scols_line_set_data(ln, i, cells[i]))
			return -ENOMEM;
	return ln ? 0 : -ENOMEM;
}

/* Print the table and free it: 0, or 1 (printed). */
static int table_end(struct libscols_table *tb, const char *cmd)
{
	int ret = tb ? scols_print_table(tb) : -ENOMEM;

	scols_unref_table(tb);
	if (ret)
		fprintf(stderr, "azbusectl %s: cannot print the table: %s\n", cmd, strerror(-ret));
	return ret ? 1 : 0;
}

static const char *const state_names[] = { "created", "live", "dying" };
static const char *const queue_state_names[] = { "no-worker", "attached", "recovering", "failed" };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: azbusectl COMMAND [ARGS]\n\n"
		"  add [ID|any] --engine=NAME [--size SIZE] [options]  create /dev/azbuseID\n"
		"  remove ID|--all [--force]     drain and remove a device (refused if in use)\n"
		"  list                          list devices\n"
		"  info ID                       parameters, state, workers, counters\n"
		"  cache ID [--mode M] [--policy P] [--dirty L,H] [--flush]  its RAM cache\n"
		"  engines                       list the built-in engines\n"
		"  version                       module ABI version\n\n"
		"Every command takes --json and --help. 'azbusectl add --help' lists the\n"
		"device options.\n");
}

static void add_usage(void)
{
	const struct azbuse_engine_ops *const *e;

	printf("usage: azbusectl add [ID|any] --engine=NAME [--size SIZE] [options]\n\n"
	       "Adds /dev/azbuseID served by engine NAME and returns once it is ready; the\n"
	       "supervisor stays in the background (--foreground keeps it attached).\n\n");
	azbuse_print_device_options(stdout);
	printf("\nengines:");
	for (e = azbuse_builtin_engines(); *e; e++)
		printf(" %s", (*e)->name);
	printf("\n");
}

static bool has_flag(int argc, char **argv, const char *flag)
{
	int i;

	for (i = 0; i < argc; i++)
		if (!strcmp(argv[i], flag))
			return true;
	return false;
}

/* What a command other than add was given (getopt_long). */
struct cmd_opts {
	bool json, help, force, all, flush;
	const char *mode, *policy, *dirty, *cutoff, *size;
	const char *pos[2];
	int nr_pos;
};

/*
 * Parse a command's arguments (argv[0] is its first) with getopt_long,
 * accepting only the long options named in `allowed` (e.g. "json help
 * force") and at most max_pos positionals: 0, or EXIT_USAGE (printed).
 */
static int cmd_parse(const char *cmd, int argc, char **argv, const char *allowed, int max_pos,
		     struct cmd_opts *o)
{
	static const struct option longs[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "force", no_argument, NULL, 'f' },
		{ "all", no_argument, NULL, 'a' },
		{ "flush", no_argument, NULL, 'F' },
		{ "mode", required_argument, NULL, 'm' },
		{ "policy", required_argument, NULL, 'p' },
		{ "dirty", required_argument, NULL, 'd' },
		{ "seq-cutoff", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	char **args = argv - 1; /* getopt wants the program's name first: the command's */
	int c, idx;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc + 1, args, ":h", longs, &idx)) != -1) {
		const char *name = c == '?' || c == ':' ? args[optind - 1] : NULL;

		if (c == '?') {
			fprintf(stderr,
				"azbusectl %s: unknown option %s (see azbusectl %s --help)\n", cmd,
				name, cmd);
			return EXIT_USAGE;
		}
		if (c == ':') {
			fprintf(stderr, "azbusectl %s: %s needs a value\n", cmd, name);
			return EXIT_USAGE;
		}
		if (c != 'h' && !strstr(allowed, longs[idx].name)) {
			fprintf(stderr,
				"azbusectl %s: --%s is not an option of %s (see azbusectl %s "
				"--help)\n",
				cmd, longs[idx].name, cmd, cmd);
			return EXIT_USAGE;
		}
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 'h':
			o->help = true;
			break;
		case 'f':
			o->force = true;
			break;
		case 'a':
			o->all = true;
			break;
		case 'F':
			o->flush = true;
			break;
		case 'm':
			o->mode = optarg;
			break;
		case 'p':
			o->policy = optarg;
			break;
		case 'd':
			o->dirty = optarg;
			break;
		case 's':
			o->cutoff = optarg;
			break;
		case 'S':
			o->size = optarg;
			break;
		}
	}
	for (; optind < argc + 1; optind++) {
		if (o->nr_pos == max_pos) {
			fprintf(stderr, "azbusectl %s: unexpected argument \"%s\"\n", cmd,
				args[optind]);
			return EXIT_USAGE;
		}
		o->pos[o->nr_pos++] = args[optind];
	}
	return 0;
}

static int open_ctl(void)
{
	int fd = azbuse_ctl_open();

	if (fd < 0)
		fprintf(stderr, "azbusectl: cannot open %s: %s%s\n", AZBUSE_CTL_DEVICE,
			strerror(-fd),
			fd == -ENOENT ? " (is the azbuse module loaded? modprobe azbuse)" : "");
	return fd;
}

static int parse_id(const char *text, uint32_t *id)
{
	char *end;
	unsigned long v;

	if (!text || !*text || text[0] == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || v >= AZBUSE_MAX_DEVICES)
		return -EINVAL;
	*id = (uint32_t)v;
	return 0;
}

static void feature_names(uint64_t f, char *buf, size_t len)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} names[] = {
		{ AZBUSE_F_WRITE_CACHE, "write-cache" },
		{ AZBUSE_F_FUA, "fua" },
		{ AZBUSE_F_DISCARD, "discard" },
		{ AZBUSE_F_WRITE_ZEROES, "write-zeroes" },
		{ AZBUSE_F_SECURE_ERASE, "secure-erase" },
		{ AZBUSE_F_ROTATIONAL, "rotational" },
		{ AZBUSE_F_READ_ONLY, "read-only" },
		{ AZBUSE_F_SHARDED, "sharded" },
		{ AZBUSE_F_ROUTE_QUEUE, "route-queue" },
		{ AZBUSE_F_DIRECT_MAP, "direct-map" },
		{ AZBUSE_F_USER_COPY, "user-copy" },
	};
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f & names[i].bit)
			n += snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? " " : "",
				      names[i].name);
	if (!n)
		snprintf(buf, len, "none");
}

static const char *state_name(uint32_t s)
{
	return s < 3 ? state_names[s] : "unknown";
}

/*
 * An engine that is a program of its own, azbuse-engine-NAME (rbd: its
 * libraries are too large for every azbusectl command to load): in
 * engines/ beside azbusectl (a build tree), else in AZBUSE_ENGINE_DIR. Its
 * path into path; false if there is none.
 */
static bool external_engine(const char *name, char *path, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;

	if (!*name || strchr(name, '/') || name[0] == '.')
		return false;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		if (strrchr(self, '/'))
			*strrchr(self, '/') = '\0';
		if (snprintf(path, len, "%s/engines/azbuse-engine-%s", self, name) < (int)len &&
		    !access(path, X_OK))
			return true;
	}
	return snprintf(path, len, "%s/azbuse-engine-%s", AZBUSE_ENGINE_DIR, name) < (int)len &&
	       !access(path, X_OK);
}

/* Hand `azbusectl add ARGS` to the engine's program: PROGRAM ARGS (it parses them as we do). */
static int run_external_engine(const char *path, int argc, char **argv)
{
	char **args = calloc((size_t)argc + 2, sizeof(*args));

	if (!args)
		return 1;
	args[0] = (char *)path;
	memcpy(args + 1, argv, (size_t)argc * sizeof(*args));
	fflush(stdout);
	execv(path, args);
	fprintf(stderr, "azbusectl add: cannot run %s: %s\n", path, strerror(errno));
	free(args);
	return 1;
}

/* add, with argv as given (given: a copy, for an engine program) */
static int add_device(int argc, char **argv, char **given)
{
	char engine_path[PATH_MAX];
	const struct azbuse_engine_ops *ops;
	struct azbuse_args a;
	char err[256];

	if (has_flag(argc, argv, "--help") || has_flag(argc, argv, "-h")) {
		add_usage();
		return 0;
	}
	if (azbuse_parse_device_args(argc, argv, &a)) {
		fprintf(stderr, "azbusectl add: %s (see azbusectl add --help)\n", a.error);
		return EXIT_USAGE;
	}
	if (a.opts.recover && azbuse_load_recover_args(&a)) {
		fprintf(stderr, "azbusectl add --recover: %s\n", a.error);
		return 1;
	}
	if (!a.engine) {
		fprintf(stderr,
			"azbusectl add: --engine=NAME is required (see azbusectl engines)\n");
		return EXIT_USAGE;
	}
	ops = azbuse_find_engine(a.engine);
	if (!ops && external_engine(a.engine, engine_path, sizeof(engine_path)))
		return run_external_engine(engine_path, argc, given);
	if (!ops) {
		fprintf(stderr, "azbusectl add: no engine '%s' (see azbusectl engines)\n",
			a.engine);
		return EXIT_USAGE;
	}
	if (azbuse_check_engine_options(ops, &a, err, sizeof(err))) {
		fprintf(stderr, "azbusectl add: %s\n", err);
		return EXIT_USAGE;
	}
	return azbuse_launch(ops, &a);
}

static int cmd_add(int argc, char **argv)
{
	char **given = calloc((size_t)argc + 1, sizeof(*given));
	int i, ret = given ? 0 : 1;

	/* parsing changes argv: an engine program gets it as it was given */
	for (i = 0; !ret && i < argc; i++)
		if (!(given[i] = strdup(argv[i])))
			ret = 1;
	if (!ret)
		ret = add_device(argc, argv, given);
	for (i = 0; given && i < argc; i++)
		free(given[i]);
	free(given);
	return ret;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * The device's supervisor is dead (killed, never recovered): let the engine
 * clean up what it left for a recovery (e.g. the mem engine's shared memory
 * file) by setting it up in recovery mode and tearing it down.
 */
static void clean_up_after_dead_supervisor(uint32_t id)
{
	const struct azbuse_engine_ops *ops;
	struct azbuse_engine_config cfg;
	struct azbuse_args a;
	char err[256] = "", recover_options[512];
	void *engine = NULL;

	memset(&a, 0, sizeof(a));
	a.opts.dev_id = id;
	if (azbuse_load_recover_args(&a))
		return; /* nothing saved */
	ops = azbuse_find_engine(a.engine);
	if (ops && ops->setup) {
		memset(&cfg, 0, sizeof(cfg));
		cfg.size_bytes = a.opts.size_bytes;
		cfg.logical_block_size =
			a.opts.logical_block_size ? a.opts.logical_block_size : 512;
		cfg.nr_queues = a.opts.nr_queues;
		cfg.options = a.options;
		cfg.nr_options = a.nr_options;
		cfg.error = err;
		cfg.error_size = sizeof(err);
		cfg.recovering = 1;
		cfg.recover_options = recover_options;
		cfg.recover_options_size = sizeof(recover_options);
		if (!ops->setup(&cfg, &engine) && ops->teardown)
			ops->teardown(engine);
	}
	azbuse_conf_remove(id);
}

/* Where /dev/azbuse<id> (or a partition of it) is mounted, into buf ("" if nowhere). */
static void mount_point_of(uint32_t id, char *buf, size_t len)
{
	char dev[64], line[4096], what[4096], where[4096];
	size_t n = (size_t)snprintf(dev, sizeof(dev), AZBUSE_BLOCK_PREFIX "%u", id);
	FILE *f = fopen("/proc/self/mounts", "r");

	buf[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%4095s %4095s", what, where) != 2 || strncmp(what, dev, n))
			continue;
		if (what[n] == '\0' || what[n] == 'p') {
			snprintf(buf, len, "%.64s on %.400s", what, where);
			break;
		}
	}
	fclose(f);
}

/* Remove device id (unless open, without force): 0, or 1 (printed). */
static int remove_one(int ctl, uint32_t id, bool force)
{
	struct azbuse_dev_info info;
	char mounted[512];
	unsigned waited;
	int ret = azbuse_ctl_info(ctl, id, &info);

	/* an opener may be a passing one (udev probing a new device): wait a little */
	for (waited = 0; !ret; waited += 50) {
		ret = force ? azbuse_ctl_remove(ctl, id) : azbuse_ctl_remove_unused(ctl, id);
		if (ret != -EBUSY || force || waited >= REMOVE_BUSY_WAIT_MS)
			break;
		sleep_ms(50);
	}
	if (ret == -EBUSY && !force) {
		mount_point_of(id, mounted, sizeof(mounted));
		fprintf(stderr,
			"azbusectl remove: azbuse%u is in use (%s): unmount it and stop what has "
			"it "
			"open, or remove it anyway with --force (its users' I/O then fails)\n",
			id, mounted[0] ? mounted : "open by a process or a mount");
		return 1;
	}
	if (ret == -EINVAL && !force) {
		fprintf(stderr,
			"azbusectl remove: azbuse%u: the loaded azbuse module cannot tell whether "
			"the device is in use (it is older than this azbusectl); once nothing uses "
			"it, remove it with --force\n",
			id);
		return 1;
	}
	if (ret) {
		fprintf(stderr, "azbusectl remove: azbuse%u: %s\n", id,
			ret == -ENOENT ? "no such device" : strerror(-ret));
		return 1;
	}
	/*
	 * The supervisor flushes the engine and exits once its workers are
	 * done; a pool's daemon that serves other devices too goes on, and
	 * drops the device's saved configuration once it has let it go.
	 */
	if (info.owner_pid > 0 && kill(info.owner_pid, 0) && errno == ESRCH)
		clean_up_after_dead_supervisor(id);
	for (waited = 0; info.owner_pid > 0 && waited < REMOVE_WAIT_MS; waited += 10) {
		if ((kill(info.owner_pid, 0) && errno == ESRCH) || !azbuse_conf_exists(id))
			break;
		sleep_ms(10);
	}
	return 0;
}

static int cmd_remove(int argc, char **argv)
{
	uint32_t ids[AZBUSE_MAX_DEVICES], id;
	struct cmd_opts o;
	int ctl, n, failed = 0, ret = cmd_parse("remove", argc, argv, "json help force all", 1, &o);
	bool json = o.json, force = o.force, all = o.all;
	json_object *removed;

	if (ret)
		return ret;
	if (o.help) {
		printf("usage: azbusectl remove ID|--all [--force] [--json]\n\n"
		       "Removes /dev/azbuseID (--all: every azbuse device): requests in flight "
		       "are\n"
		       "finished by the workers (or fail after a short drain), new ones fail, the\n"
		       "supervisor flushes the engine and exits. A device that is mounted or open "
		       "is\n"
		       "refused, as dmsetup remove does; --force removes it anyway, and what "
		       "still\n"
		       "uses it gets I/O errors from then on.\n");
		return 0;
	}
	if (all == (o.nr_pos == 1) || (!all && parse_id(o.pos[0], &id))) {
		fprintf(stderr, "azbusectl remove: give a device id (0 to %u) or --all\n",
			AZBUSE_MAX_DEVICES - 1);
		return EXIT_USAGE;
	}
	ctl = open_ctl();
	if (ctl < 0)
		return 1;
	if (all) {
		n = azbuse_ctl_list(ctl, ids, AZBUSE_MAX_DEVICES);
		if (n < 0) {
			fprintf(stderr, "azbusectl remove: cannot list devices: %s\n",
				strerror(-n));
			close(ctl);
			return 1;
		}
	} else {
		ids[0] = id;
		n = 1;
	}
	removed = json ? tj_array() : NULL;
	for (int i = 0; i < n && i < AZBUSE_MAX_DEVICES; i++) {
		if (remove_one(ctl, ids[i], force))
			failed++;
		else if (json)
			tj_append(removed, tj_number(ids[i]));
	}
	close(ctl);
	if (json) {
		json_object *doc = tj_object();

		tj_add(doc, "removed", removed);
		tj_i64(doc, "failed", failed);
		if (tj_print(doc, "azbusectl"))
			return 1;
	}
	return failed ? 1 : 0;
}

/* What a device serves, from its saved configuration: engine, and a thin volume ("" if none). */
static void device_serves(uint32_t id, char *engine, size_t elen, char *volume, size_t vlen)
{
	struct azbuse_args *a = calloc(1, sizeof(*a));
	size_t i;

	snprintf(engine, elen, "-");
	snprintf(volume, vlen, "-");
	if (!a)
		return;
	if (!azbuse_conf_load(id, a) && a->engine) {
		snprintf(engine, elen, "%s", a->engine);
		for (i = 0; i < a->nr_options; i++)
			if (!strcmp(a->options[i].key, "volume"))
				snprintf(volume, vlen, "%s", a->options[i].value);
	}
	free(a);
}

/* "id", "device", "state", "size_bytes", "queues", "supervisor_pid" of a device, added to o. */
static void list_json_device(json_object *o, uint32_t id, const struct azbuse_dev_info *info)
{
	char dev[32];

	snprintf(dev, sizeof(dev), AZBUSE_BLOCK_PREFIX "%u", id);
	tj_u64(o, "id", id);
	tj_str(o, "device", dev);
	tj_str(o, "state", state_name(info->state));
	tj_u64(o, "size_bytes", info->size_bytes);
	tj_u64(o, "queues", info->nr_queues);
	tj_i64(o, "supervisor_pid", info->owner_pid);
}

static int cmd_list(int argc, char **argv)
{
	static const char *const heads[] = { "DEVICE", "STATE",	 "SIZE",      "QUEUES",
					     "ENGINE", "VOLUME", "SUPERVISOR" };
	char cells[7][TABLE_CELL];
	struct libscols_table *tb = NULL;
	uint32_t ids[AZBUSE_MAX_DEVICES];
	struct azbuse_dev_info info;
	char size[32], engine[64], volume[128];
	struct cmd_opts o;
	int ctl, n, i, ret = cmd_parse("list", argc, argv, "json help", 0, &o);
	json_object *list = NULL;
	bool json = o.json;

	if (ret)
		return ret;
	if (o.help) {
		printf("usage: azbusectl list [--json]\n\nEach device: its state, size, queues, "
		       "engine, volume (thin),\nand the supervisor that serves it.\n");
		return 0;
	}
	ctl = open_ctl();
	if (ctl < 0)
		return 1;
	n = azbuse_ctl_list(ctl, ids, AZBUSE_MAX_DEVICES);
	if (n < 0) {
		fprintf(stderr, "azbusectl list: %s\n", strerror(-n));
		close(ctl);
		return 1;
	}
	if (json)
		list = tj_array();
	else if (!(tb = table_start(heads, 7, 1UL << 2 | 1UL << 3 | 1UL << 6)))
		ret = -ENOMEM;
	for (i = 0; !ret && i < n && i < AZBUSE_MAX_DEVICES; i++) {
		if (azbuse_ctl_info(ctl, ids[i], &info))
			continue;
		device_serves(ids[i], engine, sizeof(engine), volume, sizeof(volume));
		if (json) {
			json_object *one = tj_object();

			list_json_device(one, ids[i], &info);
			tj_str(one, "engine", engine);
			tj_str(one, "volume", volume);
			tj_append(list, one);
			continue;
		}
		snprintf(cells[0], TABLE_CELL, "azbuse%u", ids[i]);
		snprintf(cells[1], TABLE_CELL, "%s", state_name(info.state));
		snprintf(cells[2], TABLE_CELL, "%s",
			 azbuse_format_size(info.size_bytes, size, sizeof(size)));
		snprintf(cells[3], TABLE_CELL, "%u", info.nr_queues);
		snprintf(cells[4], TABLE_CELL, "%s", engine);
		snprintf(cells[5], TABLE_CELL, "%s", volume);
		snprintf(cells[6], TABLE_CELL, "%d", info.owner_pid);
		ret = table_add(tb, cells, 7);
	}
	close(ctl);
	if (json)
		return tj_print(list, "azbusectl");
	return table_end(tb, "list");
}

static double per_syscall(const struct azbuse_queue_info *qi)
{
	return qi->commits ? (double)qi->requests / (double)qi->commits : 0.0;
}

/* How long a request waited in the ring before a worker took it, on average. */
static double wait_us(const struct azbuse_queue_info *qi)
{
	return qi->requests ? (double)qi->wait_ns / 1000.0 / (double)qi->requests : 0.0;
}

/* Wake-ups the submission side sent, per request. */
static double wakeups_per_request(const struct azbuse_queue_info *qi)
{
	return qi->requests ? (double)qi->wakeups / (double)qi->requests : 0.0;
}

static void print_info_text(uint32_t id, const struct azbuse_dev_info *info,
			    const struct azbuse_queue_info *qis, int nq)
{
	static const char *const heads[] = {
		"QUEUE",     "WORKER",	   "STATE",    "INFLIGHT", "REQUESTS", "BYTES",
		"SYSCALLS",  "REQ/CALL",   "WAKE/REQ", "WAIT_US",  "POLL_MS",  "POLL_HITS",
		"SYNC_ENDS", "REDIRECTED", "DIRECT",   "REJECTED", "FAILED",   "ERRORS",
	};
	char size[32], io[32], features[256], cells[18][TABLE_CELL];
	struct libscols_table *tb;
	int q;

	feature_names(info->features, features, sizeof(features));
	printf("device       " AZBUSE_BLOCK_PREFIX "%u\n", id);
	printf("state        %s\n", state_name(info->state));
	printf("size         %s (%llu bytes)\n",
	       azbuse_format_size(info->size_bytes, size, sizeof(size)),
	       (unsigned long long)info->size_bytes);
	printf("queues       %u, depth %u, max I/O %s\n", info->nr_queues, info->queue_depth,
	       azbuse_format_size(info->max_io_bytes, io, sizeof(io)));
	if (info->features & AZBUSE_F_SHARDED) {
		char chunk[32];

		printf("shards       %u, chunk %s, over %u hardware queues\n", info->nr_queues,
		       azbuse_format_size((uint64_t)info->chunk_sectors << 9, chunk, sizeof(chunk)),
		       info->nr_hw_queues);
	}
	printf("block size   %u logical, %u physical\n", info->logical_block_size,
	       info->physical_block_size);
	printf("features     %s\n", features);
	printf("timeouts     I/O %u ms, recovery %u ms\n", info->io_timeout_ms,
	       info->recovery_timeout_ms);
	printf("supervisor   pid %d\n\n", info->owner_pid);
	tb = table_start(heads, 18, ~3UL & ((1UL << 18) - 1) & ~(1UL << 2));
	for (q = 0; tb && q < nq; q++) {
		const struct azbuse_queue_info *qi = &qis[q];
		const unsigned long long v[] = {
			qi->requests,  qi->bytes,     qi->commits,    qi->poll_ns / 1000000,
			qi->poll_hits, qi->sync_ends, qi->redirected, qi->direct,
			qi->rejected,  qi->failed,    qi->errors,
		};
		unsigned k;

		snprintf(cells[0], TABLE_CELL, "%d", q);
		snprintf(cells[1], TABLE_CELL, "%d", qi->worker_pid);
		snprintf(cells[2], TABLE_CELL, "%s",
			 qi->state < 4 ? queue_state_names[qi->state] : "?");
		snprintf(cells[3], TABLE_CELL, "%u", qi->inflight);
		snprintf(cells[4], TABLE_CELL, "%llu", v[0]);
		snprintf(cells[5], TABLE_CELL, "%llu", v[1]);
		snprintf(cells[6], TABLE_CELL, "%llu", v[2]);
		snprintf(cells[7], TABLE_CELL, "%.1f", per_syscall(qi));
		snprintf(cells[8], TABLE_CELL, "%.2f", wakeups_per_request(qi));
		snprintf(cells[9], TABLE_CELL, "%.1f", wait_us(qi));
		for (k = 3; k < 11; k++)
			snprintf(cells[10 + k - 3], TABLE_CELL, "%llu", v[k]);
		if (table_add(tb, cells, 18))
			break;
	}
	table_end(tb, "info");
}

static void cache_json(json_object *o, char *reply);

/* One queue's counters, as `info --json` shows them. */
static json_object *queue_json(int q, const struct azbuse_queue_info *qi)
{
	json_object *o = tj_object();

	tj_i64(o, "queue", q);
	tj_i64(o, "worker_pid", qi->worker_pid);
	tj_str(o, "state", qi->state < 4 ? queue_state_names[qi->state] : "?");
	tj_u64(o, "inflight", qi->inflight);
	tj_u64(o, "requests", qi->requests);
	tj_u64(o, "bytes", qi->bytes);
	tj_u64(o, "syscalls", qi->commits);
	tj_real(o, "requests_per_syscall", per_syscall(qi), 2);
	tj_u64(o, "waits", qi->waits);
	tj_u64(o, "wakeups", qi->wakeups);
	tj_real(o, "wakeups_per_request", wakeups_per_request(qi), 3);
	tj_u64(o, "wait_ns", qi->wait_ns);
	tj_real(o, "wait_us_per_request", wait_us(qi), 2);
	tj_u64(o, "poll_ns", qi->poll_ns);
	tj_u64(o, "poll_hits", qi->poll_hits);
	tj_u64(o, "sync_ends", qi->sync_ends);
	tj_u64(o, "redirected", qi->redirected);
	tj_u64(o, "direct", qi->direct);
	tj_u64(o, "rejected", qi->rejected);
	tj_u64(o, "requeued", qi->requeued);
	tj_u64(o, "failed", qi->failed);
	tj_u64(o, "timeouts", qi->timeouts);
	tj_u64(o, "errors", qi->errors);
	return o;
}

/* cache: the daemon's cache reply, or NULL (no cache). */
static int print_info_json(uint32_t id, const struct azbuse_dev_info *info,
			   const struct azbuse_queue_info *qis, int nq, char *cache)
{
	json_object *doc = tj_object(), *queues = tj_array(), *c;
	char features[256];
	int q;

	feature_names(info->features, features, sizeof(features));
	list_json_device(doc, id, info);
	tj_u64(doc, "queue_depth", info->queue_depth);
	tj_u64(doc, "max_io_bytes", info->max_io_bytes);
	tj_u64(doc, "logical_block_size", info->logical_block_size);
	tj_u64(doc, "physical_block_size", info->physical_block_size);
	tj_str(doc, "features", features);
	tj_u64(doc, "io_timeout_ms", info->io_timeout_ms);
	tj_u64(doc, "recovery_timeout_ms", info->recovery_timeout_ms);
	tj_u64(doc, "chunk_bytes", (uint64_t)info->chunk_sectors << 9);
	tj_u64(doc, "hw_queues", info->nr_hw_queues);
	for (q = 0; q < nq; q++)
		tj_append(queues, queue_json(q, &qis[q]));
	tj_add(doc, "queue_info", queues);
	if (cache) {
		c = tj_object();
		cache_json(c, cache);
		tj_add(doc, "cache", c);
	}
	return tj_print(doc, "azbusectl");
}

static int cmd_info(int argc, char **argv)
{
	struct azbuse_queue_info qis[AZBUSE_MAX_QUEUES];
	struct azbuse_dev_info info;
	char *cache = NULL, err[256];
	struct cmd_opts o;
	uint32_t id;
	int ctl, q, ret = cmd_parse("info", argc, argv, "json help", 1, &o);
	bool json = o.json;

	if (ret)
		return ret;
	if (o.help) {
		printf("usage: azbusectl info ID [--json]\n");
		return 0;
	}
	if (o.nr_pos < 1 || parse_id(o.pos[0], &id)) {
		fprintf(stderr, "azbusectl info: give a device id (0 to %u)\n",
			AZBUSE_MAX_DEVICES - 1);
		return EXIT_USAGE;
	}
	ctl = open_ctl();
	if (ctl < 0)
		return 1;
	ret = azbuse_ctl_info(ctl, id, &info);
	for (q = 0; !ret && q < info.nr_queues && q < AZBUSE_MAX_QUEUES; q++)
		ret = azbuse_ctl_queue_info(ctl, id, q, &qis[q]);
	close(ctl);
	if (ret) {
		fprintf(stderr, "azbusectl info: azbuse%u: %s\n", id,
			ret == -ENOENT ? "no such device" : strerror(-ret));
		return 1;
	}
	/* a device with a RAM cache: its state and counters, from the daemon */
	if (control_call_within(AZBUSE_CONTROL_DIR, id, "cache", &cache, err, sizeof(err), 2000)) {
		free(cache);
		cache = NULL;
	}
	if (json) {
		ret = print_info_json(id, &info, qis, q, cache);
	} else {
		print_info_text(id, &info, qis, q);
		if (cache)
			printf("\n%s", cache);
	}
	free(cache);
	return ret;
}

/* One request to device id's control socket; prints why it failed. */
static int cache_request(uint32_t id, const char *request, char **out)
{
	char err[512] = "";
	int ret = control_call(AZBUSE_CONTROL_DIR, id, request, out, err, sizeof(err));

	if (!ret)
		return 0;
	fprintf(stderr, "azbusectl cache: azbuse%u: %s\n", id, err[0] ? err : strerror(-ret));
	free(*out);
	*out = NULL;
	return 1;
}

/* "key value ..." pairs of one line as members of o (numbers as numbers). */
static void pairs_json(json_object *o, char *line)
{
	char *save = NULL, *key = strtok_r(line, " \n", &save);

	while (key) {
		char *value = strtok_r(NULL, " \n", &save), *end;
		unsigned long long n;

		if (!value)
			break;
		errno = 0;
		n = strtoull(value, &end, 10);
		if (*end || errno || value[0] == '-')
			tj_str(o, key, value);
		else
			tj_u64(o, key, n);
		key = strtok_r(NULL, " \n", &save);
	}
}

/* The daemon's cache reply ("cache key value ..." and a "queue N key value
 * ..." line per queue) as members of o, the queues' in an array "queues". */
static void cache_json(json_object *o, char *reply)
{
	char *save = NULL, *line = strtok_r(reply, "\n", &save);
	json_object *queues = tj_array(), *one;

	if (line && !strncmp(line, "cache ", 6))
		pairs_json(o, line + 6);
	while ((line = strtok_r(NULL, "\n", &save))) {
		one = tj_object();
		pairs_json(one, line);
		tj_append(queues, one);
	}
	tj_add(o, "queues", queues);
}

static int cmd_cache(int argc, char **argv)
{
	char request[128], *out = NULL;
	struct cmd_opts o;
	uint32_t id;
	int ret = cmd_parse("cache", argc, argv,
			    "json help mode policy dirty seq-cutoff size flush", 1, &o);

	if (ret)
		return ret;
	if (o.help) {
		printf("usage: azbusectl cache ID [--mode M] [--policy P] [--dirty LOW,HIGH]\n"
		       "                          [--seq-cutoff SIZE] [--size SIZE] [--flush] "
		       "[--json]\n\n"
		       "Shows the RAM cache of a device added with --cache (mode, policy, slots,\n"
		       "used, dirty, thresholds, hits, misses, inserts, evictions, write-backs),\n"
		       "after changing it if asked, while the device serves I/O.\n"
		       "  --mode M          writethrough, writeback, writearound or passthrough;\n"
		       "                    leaving writeback writes every dirty block back first\n"
		       "  --policy P        s3fifo (scan-resistant) or lru\n"
		       "  --dirty LOW,HIGH  write-back thresholds, percent of the cache: the\n"
		       "                    cleaner starts at HIGH, stops at LOW (default 10,40)\n"
		       "  --seq-cutoff SIZE sequential streams longer than SIZE bypass the cache\n"
		       "                    (default 4M; 0: none)\n"
		       "  --size SIZE       use SIZE of it (up to what it was added with; what it\n"
		       "                    gives up is written back first, its memory freed)\n"
		       "  --flush           write every dirty block back before returning\n");
		return 0;
	}
	if (o.nr_pos < 1 || parse_id(o.pos[0], &id)) {
		fprintf(stderr, "azbusectl cache: give a device id (0 to %u)\n",
			AZBUSE_MAX_DEVICES - 1);
		return EXIT_USAGE;
	}
	const char *const requests[][2] = {
		{ "mode", o.mode },   { "policy", o.policy },
		{ "dirty", o.dirty }, { "seq-cutoff", o.cutoff },
		{ "size", o.size },   { "flush", o.flush ? "" : NULL },
	};
	for (size_t k = 0; k < sizeof(requests) / sizeof(requests[0]); k++) {
		if (!requests[k][1])
			continue;
		snprintf(request, sizeof(request), "cache %s%s%s", requests[k][0],
			 *requests[k][1] ? " " : "", requests[k][1]);
		if (cache_request(id, request, &out))
			return 1;
		free(out);
	}
	if (cache_request(id, "cache", &out))
		return 1;
	if (o.json) {
		json_object *doc = tj_object();

		tj_u64(doc, "id", id);
		cache_json(doc, out);
		ret = tj_print(doc, "azbusectl");
	} else {
		printf("%s", out);
	}
	free(out);
	return ret;
}

/* One line of `engines` (or its JSON, into list). */
static void show_engine(json_object *list, const char *name, const char *description)
{
	json_object *one;

	if (!list) {
		printf("%-8s %s\n", name, description);
		return;
	}
	one = tj_object();
	tj_str(one, "name", name);
	tj_str(one, "description", description);
	tj_append(list, one);
}

static int cmd_engines(int argc, char **argv)
{
	/* engines that are programs of their own, listed when installed */
	static const char *const external_engines[][2] = {
		{ "rbd", "a Ceph RBD image (--image POOL/IMAGE), librbd (azbuse-engine-rbd)" },
	};
	const struct azbuse_engine_ops *const *e;
	char path[PATH_MAX];
	struct cmd_opts o;
	int ret = cmd_parse("engines", argc, argv, "json help", 0, &o);
	json_object *list = NULL;
	bool json = o.json;

	if (ret)
		return ret;
	if (o.help) {
		printf("usage: azbusectl engines [--json]\n\nLists the engines built into "
		       "azbusectl, and those installed as programs of their own.\n");
		return 0;
	}
	if (json)
		list = tj_array();
	for (e = azbuse_builtin_engines(); *e; e++)
		show_engine(list, (*e)->name, (*e)->description);
	for (size_t k = 0; k < sizeof(external_engines) / sizeof(external_engines[0]); k++)
		if (external_engine(external_engines[k][0], path, sizeof(path)))
			show_engine(list, external_engines[k][0], external_engines[k][1]);
	return json ? tj_print(list, "azbusectl") : 0;
}

static int cmd_version(int argc, char **argv)
{
	struct azbuse_version v;
	const char *why = NULL;
	struct cmd_opts o;
	int ctl, ret = cmd_parse("version", argc, argv, "json help", 0, &o);
	bool json = o.json;

	if (ret)
		return ret;
	if (o.help) {
		printf("usage: azbusectl version [--json]\n\nPrints azbusectl's version and ABI, "
		       "and the loaded module's ABI;\nexits 1 if the module is not loaded or "
		       "speaks another ABI.\n");
		return 0;
	}
	memset(&v, 0, sizeof(v));
	ctl = azbuse_ctl_open();
	if (ctl < 0)
		why = ctl == -ENOENT ? "not loaded (modprobe azbuse)" : strerror(-ctl);
	else if ((ret = azbuse_ctl_version(ctl, &v)))
		why = strerror(-ret);
	else if (v.abi_version != AZBUSE_ABI_VERSION)
		why = "another ABI: rebuild and reload the module, or use its azbusectl";
	if (ctl >= 0)
		close(ctl);
	if (json) {
		json_object *doc = tj_object();

		tj_str(doc, "version", AZBUSE_VERSION);
		tj_u64(doc, "tool_abi_version", AZBUSE_ABI_VERSION);
		tj_u64(doc, "abi_version", v.abi_version);
		tj_u64(doc, "max_devices", v.max_devices);
		tj_bool(doc, "module_ok", !why);
		if (tj_print(doc, "azbusectl"))
			return 1;
	} else {
		printf("azbusectl %s, ABI %u\n", AZBUSE_VERSION, AZBUSE_ABI_VERSION);
		if (v.abi_version)
			printf("module    ABI %u, up to %u devices\n", v.abi_version,
			       v.max_devices);
	}
	if (why)
		fprintf(stderr, "azbusectl version: the module: %s\n", why);
	return why ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} cmds[] = {
		{ "add", cmd_add },	{ "remove", cmd_remove },   { "list", cmd_list },
		{ "info", cmd_info },	{ "engines", cmd_engines }, { "version", cmd_version },
		{ "cache", cmd_cache },
	};
	size_t i;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 2, argv + 2);
	fprintf(stderr, "azbusectl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
