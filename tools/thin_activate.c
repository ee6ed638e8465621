// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * thin_activate.c - azbuse-thin activate and deactivate: which volumes of a
 * pool are served as devices, recorded in the pool (AZB_VOL_F_ACTIVE) so
 * that a boot brings them back (azbuse-pool@.service runs `activate --all
 * --foreground`). A volume is served by running `azbusectl add any
 * --engine=thin`: the first device of a pool starts its daemon, the next
 * ones join it. udev names each /dev/azbuse/POOL/VOLUME (60-azbuse.rules),
 * POOL being the last component of the pool's directory.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef AZBUSE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <azbuse/azbuse.h>

#include "thin_tool.h"

#ifndef AZBUSE_SBIN_AZBUSECTL
#define AZBUSE_SBIN_AZBUSECTL "/usr/local/sbin/azbusectl"
#endif

#define THIN_ACTIVATE_MAX 256

/* azbusectl: beside this tool in a build tree (tools/, the full tool in tools/libexec), else
 * installed. */
static void azbusectl_path(char *path, size_t len)
{
	char self[PATH_MAX], *dir;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		dir = dirname(self);
		snprintf(path, len, "%s/azbusectl", dir);
		if (!access(path, X_OK))
			return;
		snprintf(path, len, "%s/../azbusectl", dir);
		if (!access(path, X_OK))
			return;
	}
	snprintf(path, len, "%s", AZBUSE_SBIN_AZBUSECTL);
}

/* Run azbusectl with args; its first output line into out (if not NULL). Its exit status. */
static int run_azbusectl(const char *const *args, char *out, size_t out_len)
{
	char path[PATH_MAX + 16];
	const char *argv[16];
	int pipefd[2], status, i;
	pid_t pid;

	azbusectl_path(path, sizeof(path));
	argv[0] = path;
	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	if (pipe(pipefd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (!pid) {
		close(pipefd[0]);
		dup2(pipefd[1], STDOUT_FILENO);
		close(pipefd[1]);
		execv(path, (char *const *)argv);
		fprintf(stderr, "azbuse-thin: cannot run %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	if (out && out_len) {
		FILE *f = fdopen(pipefd[0], "r");

		out[0] = '\0';
		if (f && fgets(out, (int)out_len, f))
			out[strcspn(out, "\n")] = '\0';
		if (f)
			fclose(f);
		else
			close(pipefd[0]);
	} else {
		close(pipefd[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The name udev gives the pool's devices: the last component of its directory. */
static void pool_name(const struct thin_ctx *c, char *name, size_t len)
{
	char real[PATH_MAX];

	if (!realpath(c->dir, real))
		snprintf(real, sizeof(real), "%s", c->dir);
	snprintf(name, len, "%s", basename(real));
}

struct active_list {
	char names[THIN_ACTIVATE_MAX][AZB_NAME_MAX + 1];
	unsigned nr;
};

static int collect_active(const struct azb_volume *v, void *arg)
{
	struct active_list *l = arg;

	if (!(v->flags & AZB_VOL_F_ACTIVE))
		return 0;
	if (l->nr == THIN_ACTIVATE_MAX)
		return -E2BIG;
	snprintf(l->names[l->nr++], AZB_NAME_MAX + 1, "%s", v->name);
	return 0;
}

/* The volumes the pool records as active. */
static int recorded_active(const struct thin_ctx *c, struct active_list *l)
{
	struct azb_pool *pool;
	char err[512] = "";
	int ret;

	l->nr = 0;
	if (thin_pool_open_ro(c, &pool))
		return 1;
	ret = azb_pool_list(pool, collect_active, l, err, sizeof(err));
	azb_pool_close(pool);
	if (ret)
		return thin_fail(c, "cannot list the active volumes: %s",
				 err[0] ? err : strerror(-ret));
	return 0;
}

/* Record NAME as active or not (through the daemon if the pool is served). */
static int record_active(const struct thin_ctx *c, const char *name, bool active)
{
	struct azb_pool *pool;
	char err[512];
	int ret;

	if (thin_pool_open(c, &pool))
		return 1;
	ret = azb_pool_set_active(pool, name, active, err, sizeof(err));
	azb_pool_close(pool);
	return ret ? thin_fail(c, "%s", err) : 0;
}

/* The device serving NAME now, or NULL. */
static const struct thin_device *served_now(const struct thin_ctx *c, struct thin_served *s,
					    const char *name)
{
	pid_t holder = 0;

	azb_pool_held_by(c->dir, &holder);
	thin_find_served(c->dir, holder, s);
	return thin_served_volume(s, name);
}

static void print_activated(const struct thin_ctx *c, const char *name, const char *dev,
			    bool already, json_object *list)
{
	char pname[NAME_MAX + 1], link[PATH_MAX];
	json_object *one;

	pool_name(c, pname, sizeof(pname));
	snprintf(link, sizeof(link), "/dev/azbuse/%s/%s", pname, name);
	if (!c->json) {
		printf("%s %s on %s (%s)\n", name, already ? "is already served" : "activated", dev,
		       link);
		return;
	}
	one = tj_object();
	tj_str(one, "volume", name);
	tj_str(one, "device", dev);
	tj_str(one, "link", link);
	tj_bool(one, "already", already);
	tj_append(list, one);
}

/* Serve NAME unless it is: 0, or 1 (printed). */
static int serve_volume(const struct thin_ctx *c, const char *name, json_object *list)
{
	const char *args[] = { "add", "any", "--engine=thin", "--pool", c->dir, "--volume",
			       name,  NULL };
	const struct thin_device *d;
	struct thin_served s;
	char out[256], dev[64];

	d = served_now(c, &s, name);
	if (d) {
		snprintf(dev, sizeof(dev), AZBUSE_BLOCK_PREFIX "%u", d->id);
		print_activated(c, name, dev, true, list);
		return 0;
	}
	if (run_azbusectl(args, out, sizeof(out)))
		return thin_fail(c, "%s: azbusectl add failed (see above)", name);
	print_activated(c, name, out, false, list);
	return 0;
}

/* Tell systemd the pool's devices are up (run by azbuse-pool@.service). */
static void notify_ready(unsigned nr, pid_t daemon)
{
#ifdef AZBUSE_HAVE_SYSTEMD
	sd_notifyf(0, "READY=1\nMAINPID=%d\nSTATUS=%u volume(s) served", (int)daemon, nr);
#else
	(void)nr;
	(void)daemon;
#endif
}

/*
 * --all --foreground (the boot unit): this process becomes the pool's
 * daemon, serving the first recorded volume; a child waits for it and adds
 * the others (they join it), then tells systemd that all are ready.
 */
static int activate_foreground(const struct thin_ctx *c, const struct active_list *l)
{
	const char *args[] = { "add",	   "any",	"--engine=thin", "--pool", c->dir,
			       "--volume", l->names[0], "--foreground",	 NULL };
	char path[PATH_MAX + 16];
	const char *argv[16];
	pid_t daemon = getpid(), helper;
	int i;

	helper = fork();
	if (helper < 0)
		return thin_fail(c, "cannot fork: %s", strerror(errno));
	if (!helper) {
		json_object *list = c->json ? tj_array() : NULL;
		struct thin_served s;
		unsigned k, waited;
		int failed = 0;

		/* the first device is up once the daemon serves it */
		for (waited = 0; !served_now(c, &s, l->names[0]) && waited < 120000; waited += 100)
			usleep(100000);
		for (k = 1; k < l->nr; k++)
			failed |= serve_volume(c, l->names[k], list);
		if (c->json)
			failed |= tj_print(list, "azbuse-thin activate");
		notify_ready(l->nr, daemon);
		_exit(failed);
	}
	azbusectl_path(path, sizeof(path));
	argv[0] = path;
	for (i = 0; args[i]; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	fflush(stdout);
	execv(path, (char *const *)argv);
	return thin_fail(c, "cannot run %s: %s", path, strerror(errno));
}

/* Under --json, the volumes activated (list) once all were: ret, or 1. */
static int print_list(const struct thin_ctx *c, json_object *list, int ret)
{
	if (!ret && c->json)
		return tj_print(list, "azbuse-thin");
	json_object_put(list);
	return ret;
}

int thin_activate_one(const struct thin_ctx *c, const char *name)
{
	json_object *list = c->json ? tj_array() : NULL;
	int ret = record_active(c, name, true);

	if (!ret)
		ret = serve_volume(c, name, list);
	return print_list(c, list, ret);
}

int thin_cmd_activate(struct thin_ctx *c, const struct thin_args *a)
{
	bool all = thin_arg(a, "--all"), foreground = thin_arg(a, "--foreground");
	json_object *list = NULL;
	struct active_list *l;
	unsigned k;
	int ret = 0;

	if (all == (a->nr_pos == 1))
		return thin_bad_usage(c, "give a volume, or --all");
	if (foreground && !all)
		return thin_bad_usage(c, "--foreground goes with --all");
	if (!all)
		return thin_activate_one(c, a->pos[0]);
	l = calloc(1, sizeof(*l));
	if (!l)
		return thin_fail(c, "out of memory");
	ret = recorded_active(c, l);
	if (!ret && foreground && l->nr) {
		ret = activate_foreground(c, l);
		free(l);
		return ret;
	}
	if (!ret && foreground)
		notify_ready(0, getpid());
	if (c->json)
		list = tj_array();
	for (k = 0; !ret && k < l->nr; k++)
		ret = serve_volume(c, l->names[k], list);
	if (!ret && !c->json && !l->nr)
		printf("no volume of pool %s is recorded as active\n", c->dir);
	free(l);
	return print_list(c, list, ret);
}

/* Stop serving NAME (if served): 0, or 1 (printed). */
static int unserve_volume(const struct thin_ctx *c, const char *name, bool force)
{
	const struct thin_device *d;
	struct thin_served s;
	char id[16];
	const char *args[] = { "remove", id, force ? "--force" : NULL, NULL };

	d = served_now(c, &s, name);
	if (!d) {
		if (!c->json)
			printf("%s was not served\n", name);
		return 0;
	}
	snprintf(id, sizeof(id), "%u", d->id);
	if (run_azbusectl(args, NULL, 0))
		return thin_fail(c, "%s: azbusectl remove %u failed (see above)", name, d->id);
	if (!c->json)
		printf("%s deactivated (" AZBUSE_BLOCK_PREFIX "%u removed)\n", name, d->id);
	return 0;
}

/* Under --json, how many volumes were deactivated: 0, or 1. */
static int print_deactivated(const struct thin_ctx *c, unsigned nr)
{
	json_object *doc;

	if (!c->json)
		return 0;
	doc = thin_json_doc(c);
	tj_u64(doc, "deactivated", nr);
	return tj_print(doc, "azbuse-thin");
}

int thin_cmd_deactivate(struct thin_ctx *c, const struct thin_args *a)
{
	bool all = thin_arg(a, "--all"), force = thin_arg(a, "--force");
	struct active_list *l;
	struct thin_served s;
	unsigned k;
	int ret = 0;

	if (all == (a->nr_pos == 1))
		return thin_bad_usage(c, "give a volume, or --all");
	if (!all) {
		ret = unserve_volume(c, a->pos[0], force);
		if (!ret)
			ret = record_active(c, a->pos[0], false);
		return ret ? ret : print_deactivated(c, 1);
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return thin_fail(c, "out of memory");
	ret = recorded_active(c, l);
	/* and whatever else of the pool is served */
	served_now(c, &s, "");
	for (k = 0; !ret && k < s.nr && l->nr < THIN_ACTIVATE_MAX; k++) {
		unsigned j;

		for (j = 0; j < l->nr && strcmp(l->names[j], s.dev[k].volume); j++)
			;
		if (j == l->nr)
			snprintf(l->names[l->nr++], AZB_NAME_MAX + 1, "%s", s.dev[k].volume);
	}
	for (k = 0; !ret && k < l->nr; k++) {
		ret = unserve_volume(c, l->names[k], force);
		if (!ret)
			ret = record_active(c, l->names[k], false);
	}
	if (!ret)
		ret = print_deactivated(c, l->nr);
	free(l);
	return ret;
}
