// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * args.c - the device command line shared by azbusectl add and every
 * engine program built with azbuse_main(): parse it into device options,
 * check the engine's options, and launch the supervisor in the background
 * (returning once the device is ready) or in the foreground.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define AZB_LOG_DIR "/run/azbuse"

static int azb_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!text || !*text || text[0] == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int azb_add_option(struct azbuse_args *a, const char *key, const char *value)
{
	if (a->nr_options >= sizeof(a->options) / sizeof(a->options[0])) {
		snprintf(a->error, sizeof(a->error), "too many options");
		return -E2BIG;
	}
	a->options[a->nr_options].key = key;
	a->options[a->nr_options].value = value;
	a->nr_options++;
	return 0;
}

/* "--name=value" or "--name value": the value, advancing *i as needed. */
static const char *azb_arg_value(int argc, char **argv, int *i, const char *name)
{
	const char *arg = argv[*i];
	size_t n = strlen(name);

	if (strncmp(arg, name, n))
		return NULL;
	if (arg[n] == '=')
		return arg + n + 1;
	if (arg[n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static bool azb_is_flag(const char *arg, const char *name)
{
	return !strcmp(arg, name);
}

struct azb_num_opt {
	const char *name;
	uint32_t min, max;
	uint32_t *dst;
};

static int azb_parse_one(int argc, char **argv, int *i, struct azbuse_args *a)
{
	struct azbuse_device_opts *o = &a->opts;
	uint32_t queues = 0, depth = 0, shards = 0;
	const struct azb_num_opt nums[] = {
		{ "--block-size", 512, 4096, &o->logical_block_size },
		{ "--io-timeout", 100, 3600000, &o->io_timeout_ms },
		{ "--recovery-timeout", 1, 3600000, &o->recovery_timeout_ms },
		{ "--poll-us", 0, 1000000, &o->poll_us },
		{ "--queues", 1, AZBUSE_MAX_QUEUES, &queues },
		{ "--shards", 1, AZBUSE_MAX_QUEUES, &shards },
		{ "--depth", 1, AZBUSE_MAX_QUEUE_DEPTH, &depth },
	};
	const char *arg = argv[*i], *v;
	uint64_t bytes;
	size_t k;

	if (azb_is_flag(arg, "--foreground")) {
		a->foreground = true;
		return 0;
	}
	if (azb_is_flag(arg, "--json")) {
		a->json = true;
		return 0;
	}
	if (azb_is_flag(arg, "--recover")) {
		o->recover = true;
		return 0;
	}
	if (azb_is_flag(arg, "--read-only")) {
		o->read_only = true;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--engine"))) {
		a->engine = v;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--size"))) {
		if (azbuse_parse_size(v, &bytes) || !bytes) {
			snprintf(a->error, sizeof(a->error), "bad --size '%s' (e.g. 512M, 1G)", v);
			return -EINVAL;
		}
		o->size_bytes = bytes;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--cache"))) {
		if (azbuse_parse_size(v, &bytes) || bytes < (1ULL << 20)) {
			snprintf(a->error, sizeof(a->error), "bad --cache '%s' (e.g. 512M, 2G)", v);
			return -EINVAL;
		}
		o->cache_bytes = bytes;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--cache-mode"))) {
		enum azc_mode mode;

		if (azc_mode_parse(v, &mode)) {
			snprintf(a->error, sizeof(a->error),
				 "bad --cache-mode '%s' (writethrough, writeback, writearound or "
				 "passthrough)",
				 v);
			return -EINVAL;
		}
		o->cache_mode = (uint8_t)mode;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--cache-policy"))) {
		enum azc_policy policy;

		if (azc_policy_parse(v, &policy)) {
			snprintf(a->error, sizeof(a->error),
				 "bad --cache-policy '%s' (s3fifo or lru)", v);
			return -EINVAL;
		}
		o->cache_policy = (uint8_t)policy;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--trace"))) {
		o->trace_path = v;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--pin"))) {
		if (!strcmp(v, "node"))
			o->pin = AZBUSE_PIN_NODE;
		else if (!strcmp(v, "cpus"))
			o->pin = AZBUSE_PIN_CPUS;
		else if (!strcmp(v, "none"))
			o->pin = AZBUSE_PIN_NONE;
		else {
			snprintf(a->error, sizeof(a->error), "bad --pin '%s' (node, cpus or none)",
				 v);
			return -EINVAL;
		}
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--sched"))) {
		if (!strcmp(v, "batch"))
			o->sched = AZBUSE_SCHED_BATCH;
		else if (!strcmp(v, "normal"))
			o->sched = AZBUSE_SCHED_NORMAL;
		else {
			snprintf(a->error, sizeof(a->error), "bad --sched '%s' (batch or normal)",
				 v);
			return -EINVAL;
		}
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--route"))) {
		if (strcmp(v, "chunk") && strcmp(v, "queue")) {
			snprintf(a->error, sizeof(a->error), "bad --route '%s' (chunk or queue)",
				 v);
			return -EINVAL;
		}
		o->route_queue = !strcmp(v, "queue");
		o->route_chosen = true;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--shard-chunk"))) {
		if (azbuse_parse_size(v, &bytes) || bytes < 4096 || bytes > (1ULL << 31) ||
		    (bytes & (bytes - 1))) {
			snprintf(a->error, sizeof(a->error),
				 "bad --shard-chunk '%s' (a power of two, 4k to 2G)", v);
			return -EINVAL;
		}
		o->shard_chunk_bytes = (uint32_t)bytes;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "--max-io"))) {
		if (azbuse_parse_size(v, &bytes) || bytes < AZBUSE_MIN_IO_BYTES ||
		    bytes > AZBUSE_MAX_IO_BYTES || bytes % 4096) {
			snprintf(a->error, sizeof(a->error),
				 "bad --max-io '%s' (4k to 4M, a multiple of 4k)", v);
			return -EINVAL;
		}
		o->max_io_bytes = (uint32_t)bytes;
		return 0;
	}
	for (k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
		if (!(v = azb_arg_value(argc, argv, i, nums[k].name)))
			continue;
		if (azb_parse_u32(v, nums[k].min, nums[k].max, nums[k].dst)) {
			snprintf(a->error, sizeof(a->error), "bad %s '%s' (%u to %u)", nums[k].name,
				 v, nums[k].min, nums[k].max);
			return -EINVAL;
		}
		if (nums[k].dst == &o->logical_block_size &&
		    (o->logical_block_size & (o->logical_block_size - 1))) {
			snprintf(a->error, sizeof(a->error),
				 "bad --block-size '%s' (512, 1024, 2048 or 4096)", v);
			return -EINVAL;
		}
		if (queues)
			o->nr_queues = (uint16_t)queues;
		if (shards)
			o->nr_shards = (uint16_t)shards;
		if (depth)
			o->queue_depth = (uint16_t)depth;
		return 0;
	}
	if ((v = azb_arg_value(argc, argv, i, "-o"))) {
		char *eq = strchr(v, '=');

		if (!eq || eq == v) {
			snprintf(a->error, sizeof(a->error), "bad -o '%s' (want KEY=VALUE)", v);
			return -EINVAL;
		}
		*eq = '\0';
		return azb_add_option(a, v, eq + 1);
	}
	/* --KEY VALUE: an engine option, checked against the engine later */
	if (!strncmp(arg, "--", 2) && arg[2]) {
		char *key = argv[*i] + 2;
		char *eq = strchr(key, '=');

		if (eq) {
			*eq = '\0';
			return azb_add_option(a, key, eq + 1);
		}
		if (*i + 1 >= argc) {
			snprintf(a->error, sizeof(a->error), "option '%s' needs a value", arg);
			return -EINVAL;
		}
		return azb_add_option(a, key, argv[++*i]);
	}
	snprintf(a->error, sizeof(a->error), "unexpected argument '%s'", arg);
	return -EINVAL;
}

void azbuse_print_device_options(FILE *out)
{
	fprintf(out,
		"  --size SIZE           device size (512M, 1G, 1T)\n"
		"  --queues N            worker processes (default: one per CPU)\n"
		"  --depth N             requests in flight per queue (default %u)\n"
		"  --shards N            sharded: N workers, worker i owns every chunk c\n"
		"                        with c %% N == i, whichever CPU submits\n"
		"  --shard-chunk SIZE    sharded mode's chunk (default 1M, power of two)\n"
		"  --route chunk|queue   sharded: a read or write goes to its chunk's shard,\n"
		"                        or to the worker of the queue it was submitted on,\n"
		"                        which serves it or hands it on (default: the\n"
		"                        engine's choice; chunk for most, queue for thin)\n"
		"  --max-io SIZE         largest request (default %uk)\n"
		"  --block-size N        logical block size (512, 1024, 2048 or 4096)\n"
		"  --read-only           refuse writes\n"
		"  --cache SIZE          a RAM cache of SIZE in front of the engine, shared by\n"
		"                        its workers (hits never reach the engine)\n"
		"  --cache-mode MODE     writethrough (default), writeback, writearound or "
		"passthrough\n"
		"  --cache-policy P      s3fifo (default: scan-resistant) or lru\n"
		"  --poll-us N           poll up to N us (in COMMIT) for new requests before\n"
		"                        sleeping, while they come that fast; a lone request's\n"
		"                        submitter waits as long to end it itself (default %u;\n"
		"                        0: never poll)\n"
		"  --pin node|cpus|none  where workers run (default node: the queue's NUMA node)\n"
		"  --sched batch|normal  worker scheduling (default batch: a worker woken by\n"
		"                        a request does not preempt the submitter, so it\n"
		"                        takes the whole batch when the submitter waits)\n"
		"  --trace FILE          append one line per request as the engine gets it\n"
		"  --io-timeout MS       report requests held longer than this\n"
		"  --recovery-timeout MS how long requests wait for a restarted worker\n"
		"  --recover             take over the live device ID whose supervisor died,\n"
		"                        with the engine and options it was added with\n"
		"  --foreground          stay attached (for systemd); default: daemonise\n"
		"  --json                print the result as JSON\n"
		"  -o KEY=VALUE, --KEY VALUE  engine option\n",
		AZBUSE_DEF_QUEUE_DEPTH, AZBUSE_DEF_IO_BYTES >> 10, AZBUSE_DEF_POLL_US);
}

int azbuse_parse_device_args(int argc, char **argv, struct azbuse_args *a)
{
	int i, ret;

	memset(a, 0, sizeof(*a));
	azbuse_device_opts_init(&a->opts);
	for (i = 0; i < argc; i++) {
		const char *arg = argv[i];
		uint32_t id;

		if (i == 0 && arg[0] != '-') {
			if (!strcmp(arg, "any"))
				continue;
			if (azb_parse_u32(arg, 0, AZBUSE_MAX_DEVICES - 1, &id)) {
				snprintf(a->error, sizeof(a->error),
					 "bad device id '%s' (0 to %u, or 'any')", arg,
					 AZBUSE_MAX_DEVICES - 1);
				return -EINVAL;
			}
			a->opts.dev_id = id;
			continue;
		}
		ret = azb_parse_one(argc, argv, &i, a);
		if (ret)
			return ret;
	}
	a->opts.options = a->options;
	a->opts.nr_options = a->nr_options;
	return 0;
}

/*
 * --recover: the device's saved engine and options replace any given on the
 * command line; only --foreground and --json are kept.
 */
int azbuse_load_recover_args(struct azbuse_args *a)
{
	bool foreground = a->foreground, json = a->json;
	uint32_t id = a->opts.dev_id;
	int ret;

	if (id == AZBUSE_DEV_ID_ANY) {
		snprintf(a->error, sizeof(a->error), "--recover needs the device id");
		return -EINVAL;
	}
	memset(a, 0, sizeof(*a));
	azbuse_device_opts_init(&a->opts);
	ret = azbuse_conf_load(id, a);
	a->foreground = foreground;
	a->json = json;
	return ret;
}

int azbuse_check_engine_options(const struct azbuse_engine_ops *ops, const struct azbuse_args *a,
				char *err, size_t err_size)
{
	size_t i, k;

	for (i = 0; i < a->nr_options; i++) {
		bool known = false;

		for (k = 0; ops->option_keys && ops->option_keys[k]; k++)
			known |= !strcmp(ops->option_keys[k], a->options[i].key);
		if (!known) {
			snprintf(err, err_size, "engine %s has no option '%s'", ops->name,
				 a->options[i].key);
			return -EINVAL;
		}
	}
	return 0;
}

/* The daemon's stdio: nothing in, its log out. */
static void azb_daemon_stdio(void)
{
	char path[PATH_MAX];
	int in, log;

	mkdir(AZB_LOG_DIR, 0755);
	snprintf(path, sizeof(path), AZB_LOG_DIR "/supervisor-%d.log", (int)getpid());
	in = open("/dev/null", O_RDONLY);
	log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (in >= 0) {
		dup2(in, STDIN_FILENO);
		close(in);
	}
	if (log >= 0) {
		dup2(log, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
		close(log);
	}
}

/* Who serves device id: child, or the pool's daemon that the device joined. */
static pid_t azb_serving_pid(uint32_t id, pid_t child)
{
	struct azbuse_dev_info info;
	int ctl = azbuse_ctl_open();
	pid_t pid = child;

	if (ctl >= 0 && !azbuse_ctl_info(ctl, id, &info) && info.owner_pid > 0)
		pid = info.owner_pid;
	if (ctl >= 0)
		close(ctl);
	return pid;
}

/* Parent side: wait for "OK <id>" or "ERR <message>" from the daemon. */
static int azb_wait_ready(int fd, pid_t child, bool json)
{
	char buf[600];
	size_t len = 0;
	ssize_t n;
	int status;

	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += n;
		if (memchr(buf, '\n', len))
			break;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!strncmp(buf, "OK ", 3)) {
		if (json)
			printf("{\"device\": \"" AZBUSE_BLOCK_PREFIX "%s\", \"id\": %s, "
			       "\"supervisor_pid\": %d}\n",
			       buf + 3, buf + 3, (int)azb_serving_pid((uint32_t)atoi(buf + 3), child));
		else
			printf(AZBUSE_BLOCK_PREFIX "%s\n", buf + 3);
		return 0;
	}
	if (!strncmp(buf, "ERR ", 4))
		fprintf(stderr, "azbuse: %s\n", buf + 4);
	else
		fprintf(stderr, "azbuse: the supervisor died before the device was ready\n");
	waitpid(child, &status, 0);
	return 1;
}

int azbuse_launch(const struct azbuse_engine_ops *ops, struct azbuse_args *a)
{
	int pipefd[2];
	pid_t pid;
	int ret;

	if (a->foreground) {
		ret = azbuse_run(ops, &a->opts);
		return ret ? 1 : 0;
	}
	if (pipe2(pipefd, O_CLOEXEC)) {
		perror("azbuse: pipe");
		return 1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("azbuse: fork");
		return 1;
	}
	if (pid == 0) {
		close(pipefd[0]);
		setsid();
		azb_daemon_stdio();
		a->opts.ready_fd = pipefd[1];
		_exit(azbuse_run(ops, &a->opts) ? 1 : 0);
	}
	close(pipefd[1]);
	ret = azb_wait_ready(pipefd[0], pid, a->json);
	close(pipefd[0]);
	return ret;
}
