// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rbd_tool.c - azbuse-rbd: snapshots, clones, rollback and resize of the Ceph
 * RBD images that the rbd engine serves, in azbuse-thin's words.
 *
 *   azbuse-rbd [--conf FILE] [--id CLIENT] [--json] COMMAND ARGS
 *
 * A program of its own rather than azbuse-thin commands: azbuse-thin works
 * on a pool directory and its RocksDB, an RBD image lives in its cluster,
 * and loading librbd into azbuse-thin would cost every thin command. The
 * verbs, arguments and exit status are azbuse-thin's.
 *
 * Snapshots of a served image are exact to its last completed write: the
 * rbd engine runs librbd without its cache, so a completed write is in
 * RADOS before the snapshot is taken. A rollback is refused while any
 * client has the image open (azbuse, rbd-nbd, krbd): its data would change
 * under that client. A resize also changes the size of every azbuse device
 * that serves the image (found by the configurations their supervisors save
 * in /run/azbuse): a grow reaches the image first, a shrink the devices.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <rbd/librbd.h>

#include <azbuse/azbuse.h>
#include <azbuse/engine.h>

#include "rbd_cluster.h"

#define RBD_TOOL_MAX_SNAPS 1024
#define RBD_TOOL_MAX_DEVICES 64

struct rbd_tool {
	const char *conf, *id;
	bool json, yes;
	uint64_t size;
	bool have_size;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	struct rbd_target t;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("azbuse-rbd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static void usage(FILE *out)
{
	fputs("usage: azbuse-rbd [--conf FILE] [--id CLIENT] [--json] COMMAND [ARGS]\n\n"
	      "Snapshots, clones, rollback and resize of Ceph RBD images, as azbuse-thin\n"
	      "does them for thin volumes; the images an azbuse rbd device serves too.\n\n"
	      "  snapshot POOL/IMAGE SNAP              a read-only snapshot of the image\n"
	      "  list POOL/IMAGE                       its snapshots\n"
	      "  clone POOL/IMAGE@SNAP POOL/NAME       a writable clone of a snapshot\n"
	      "                                        (protected first, as RBD requires)\n"
	      "  rollback POOL/IMAGE SNAP --yes        the image goes back to the snapshot\n"
	      "                                        (refused while a client has it open)\n"
	      "  delete POOL/IMAGE@SNAP --yes          delete a snapshot (not while it has\n"
	      "                                        clones)\n"
	      "  resize POOL/IMAGE --size SIZE [--yes] grow it, or shrink it with --yes; the\n"
	      "                                        azbuse devices serving it follow\n\n"
	      "IMAGE alone is in pool rbd. Sizes take k, M, G, T suffixes. --conf and --id\n"
	      "as for `azbusectl add --engine=rbd` (default: librados' search, admin).\n"
	      "Exit status: 0 ok, 1 failed, 2 bad usage.\n",
	      out);
}

/* Connect and open the image named by spec (with_snap: it may name a snapshot). */
static int tool_open(struct rbd_tool *r, const char *spec, bool with_snap)
{
	char why[256];
	const char *step;
	int ret = rbd_target_parse(&r->t, spec, with_snap, r->id, r->conf, why, sizeof(why));

	if (ret)
		return fail("%s", why), ret;
	ret = rbd_cluster_connect(&r->t, &r->cluster, &r->ioctx, &step);
	if (ret < 0)
		return fail("%s/%s: %s: %s", r->t.pool, r->t.image, step, strerror(-ret)), ret;
	ret = rbd_open(r->ioctx, r->t.image, &r->image, NULL);
	if (ret < 0) {
		fail("%s/%s: cannot open the image: %s", r->t.pool, r->t.image, strerror(-ret));
		rbd_cluster_disconnect(r->cluster, r->ioctx);
	}
	return ret;
}

static void tool_close(struct rbd_tool *r)
{
	rbd_close(r->image);
	rbd_cluster_disconnect(r->cluster, r->ioctx);
}

static void print_result(struct rbd_tool *r, const char *what, const char *name)
{
	json_object *o;

	if (!r->json) {
		printf("%s %s\n", what, name);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "result", json_object_new_string(what));
	json_object_object_add(o, "name", json_object_new_string(name));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
}

static int cmd_snapshot(struct rbd_tool *r, int argc, char **argv)
{
	char name[800];
	int ret;

	if (argc != 2)
		return 2;
	if (tool_open(r, argv[0], false))
		return 1;
	ret = rbd_snap_create(r->image, argv[1]);
	tool_close(r);
	if (ret < 0)
		return fail("snapshot %s@%s: %s", argv[0], argv[1], strerror(-ret));
	snprintf(name, sizeof(name), "%s/%s@%s", r->t.pool, r->t.image, argv[1]);
	print_result(r, "snapshot", name);
	return 0;
}

static int cmd_list(struct rbd_tool *r, int argc, char **argv)
{
	rbd_snap_info_t *snaps = calloc(RBD_TOOL_MAX_SNAPS, sizeof(*snaps));
	int max = RBD_TOOL_MAX_SNAPS, n;
	json_object *arr = json_object_new_array();

	if (argc != 1 || !snaps) {
		free(snaps);
		json_object_put(arr);
		return snaps ? 2 : fail("out of memory");
	}
	if (tool_open(r, argv[0], false)) {
		free(snaps);
		json_object_put(arr);
		return 1;
	}
	n = rbd_snap_list(r->image, snaps, &max);
	if (n < 0) {
		tool_close(r);
		free(snaps);
		json_object_put(arr);
		return fail("listing the snapshots of %s: %s", argv[0], strerror(-n));
	}
	if (!r->json)
		printf("%-24s %8s %14s %s\n", "NAME", "ID", "SIZE", "PROTECTED");
	for (int i = 0; i < n; i++) {
		int prot = 0;

		rbd_snap_is_protected(r->image, snaps[i].name, &prot);
		if (r->json) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "name", json_object_new_string(snaps[i].name));
			json_object_object_add(o, "id", json_object_new_uint64(snaps[i].id));
			json_object_object_add(o, "size", json_object_new_uint64(snaps[i].size));
			json_object_object_add(o, "protected", json_object_new_boolean(prot));
			json_object_array_add(arr, o);
		} else {
			printf("%-24s %8" PRIu64 " %14" PRIu64 " %s\n", snaps[i].name, snaps[i].id,
			       snaps[i].size, prot ? "yes" : "no");
		}
	}
	if (r->json)
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
	json_object_put(arr);
	rbd_snap_list_end(snaps);
	free(snaps);
	tool_close(r);
	return 0;
}

static int cmd_clone(struct rbd_tool *r, int argc, char **argv)
{
	struct rbd_target dst;
	char why[256], name[600];
	rados_ioctx_t dst_ioctx;
	uint64_t features = 0;
	int prot = 0, ret;

	if (argc != 2)
		return 2;
	if (rbd_target_parse(&dst, argv[1], false, r->id, r->conf, why, sizeof(why)))
		return fail("clone: %s", why);
	if (tool_open(r, argv[0], true))
		return 1;
	if (!r->t.snap[0]) {
		tool_close(r);
		return fail("clone: give the snapshot as POOL/IMAGE@SNAP");
	}
	ret = rbd_get_features(r->image, &features);
	if (!ret && !(features & RBD_FEATURE_LAYERING))
		ret = -EOPNOTSUPP;
	if (!ret)
		ret = rbd_snap_is_protected(r->image, r->t.snap, &prot);
	if (!ret && !prot)
		ret = rbd_snap_protect(r->image, r->t.snap);
	rbd_close(r->image);
	if (!ret)
		ret = rados_ioctx_create(r->cluster, dst.pool, &dst_ioctx);
	if (!ret) {
		int order = 0;

		ret = rbd_clone(r->ioctx, r->t.image, r->t.snap, dst_ioctx, dst.image, features,
				&order);
		rados_ioctx_destroy(dst_ioctx);
	}
	rbd_cluster_disconnect(r->cluster, r->ioctx);
	if (ret == -EOPNOTSUPP)
		return fail("clone: %s has no layering feature", argv[0]);
	if (ret < 0)
		return fail("clone %s %s: %s", argv[0], argv[1], strerror(-ret));
	snprintf(name, sizeof(name), "%s/%s", dst.pool, dst.image);
	print_result(r, "clone", name);
	return 0;
}

/*
 * How many clients have the image open (its header's watchers, counted once
 * per client: an rbd engine worker's object path watches beside its
 * handle), or -errno.
 */
static int image_openers(struct rbd_tool *r)
{
	rbd_image_watcher_t watchers[64];
	size_t n = 64, i, j;
	int ret = rbd_watchers_list(r->image, watchers, &n), clients = 0;

	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++) {
		for (j = 0; j < i && watchers[j].id != watchers[i].id; j++)
			;
		clients += j == i;
	}
	rbd_watchers_list_cleanup(watchers, n);
	return clients;
}

static int cmd_rollback(struct rbd_tool *r, int argc, char **argv)
{
	char name[800];
	int ret, openers;

	if (argc != 2)
		return 2;
	if (!r->yes)
		return fail("rollback discards what %s got since %s: add --yes", argv[0], argv[1]);
	if (tool_open(r, argv[0], false))
		return 1;
	/* (our own handle watches the header too) */
	openers = image_openers(r);
	if (openers > 1) {
		tool_close(r);
		return fail("%s is open by %d other client(s) (an azbuse device, rbd-nbd or krbd): "
			    "stop serving it first",
			    argv[0], openers - 1);
	}
	ret = openers < 0 ? openers : rbd_snap_rollback(r->image, argv[1]);
	tool_close(r);
	if (ret < 0)
		return fail("rollback %s to %s: %s", argv[0], argv[1], strerror(-ret));
	snprintf(name, sizeof(name), "%s/%s@%s", r->t.pool, r->t.image, argv[1]);
	print_result(r, "rollback", name);
	return 0;
}

static int cmd_delete(struct rbd_tool *r, int argc, char **argv)
{
	int prot = 0, ret;
	char name[800];

	if (argc != 1)
		return 2;
	if (!r->yes)
		return fail("delete %s: add --yes", argv[0]);
	if (tool_open(r, argv[0], true))
		return 1;
	if (!r->t.snap[0]) {
		tool_close(r);
		return fail("delete: give a snapshot as POOL/IMAGE@SNAP (images: rbd rm)");
	}
	ret = rbd_snap_is_protected(r->image, r->t.snap, &prot);
	if (!ret && prot)
		ret = rbd_snap_unprotect(r->image, r->t.snap); /* -EBUSY: it has clones */
	if (!ret)
		ret = rbd_snap_remove(r->image, r->t.snap);
	tool_close(r);
	if (ret == -EBUSY)
		return fail("delete %s: it has clones", argv[0]);
	if (ret < 0)
		return fail("delete %s: %s", argv[0], strerror(-ret));
	snprintf(name, sizeof(name), "%s/%s@%s", r->t.pool, r->t.image, r->t.snap);
	print_result(r, "delete", name);
	return 0;
}

/*
 * The azbuse devices whose saved configuration serves pool/image with the
 * rbd engine; *cached: one of them has a RAM cache.
 */
static int serving_devices(const struct rbd_target *t, uint32_t *ids, int max, bool *cached)
{
	const char *run = getenv("AZBUSE_RUN_DIR");
	char pattern[600], want[600], line[1024];
	int n = 0;
	glob_t g;

	snprintf(pattern, sizeof(pattern), "%s/azbuse*.conf", run && *run ? run : "/run/azbuse");
	snprintf(want, sizeof(want), "option=image=%s/%s", t->pool, t->image);
	*cached = false;
	if (glob(pattern, 0, NULL, &g))
		return 0;
	for (size_t i = 0; i < g.gl_pathc && n < max; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/');
		bool rbd = false, image = false, cache = false;
		unsigned id;
		FILE *f;

		if (sscanf(base ? base + 1 : g.gl_pathv[i], "azbuse%u.conf", &id) != 1)
			continue;
		f = fopen(g.gl_pathv[i], "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = '\0';
			rbd |= !strcmp(line, "engine=rbd");
			cache |= !strncmp(line, "cache=", 6) && strcmp(line, "cache=0");
			/* (IMAGE alone means pool rbd) */
			image |= !strcmp(line, want) ||
				 (!strcmp(t->pool, "rbd") && !strncmp(line, "option=image=", 13) &&
				  !strcmp(line + 13, t->image));
		}
		fclose(f);
		if (rbd && image) {
			ids[n++] = id;
			*cached |= cache;
		}
	}
	globfree(&g);
	return n;
}

static int resize_devices(const uint32_t *ids, int n, uint64_t size)
{
	int ctl = azbuse_ctl_open(), failed = 0;

	if (ctl < 0)
		return fail("cannot open " AZBUSE_CTL_DEVICE ": %s", strerror(-ctl));
	for (int i = 0; i < n; i++) {
		int ret, tries;

		/* (-EAGAIN: the device is starting; its scan is short) */
		for (tries = 0;
		     (ret = azbuse_ctl_resize(ctl, ids[i], size)) == -EAGAIN && tries < 100;
		     tries++)
			usleep(100 * 1000);
		if (ret)
			failed = fail("azbuse%u: cannot resize: %s", ids[i], strerror(-ret));
	}
	close(ctl);
	return failed;
}

static int cmd_resize(struct rbd_tool *r, int argc, char **argv)
{
	uint32_t ids[RBD_TOOL_MAX_DEVICES];
	uint64_t old = 0;
	bool cached;
	int n, ret;

	if (argc != 1 || !r->have_size)
		return 2;
	if (!r->size || r->size % 512)
		return fail("--size must be a positive multiple of 512 bytes");
	if (tool_open(r, argv[0], false))
		return 1;
	ret = rbd_get_size(r->image, &old);
	if (!ret && r->size < old && !r->yes) {
		tool_close(r);
		return fail("shrinking %s discards its data past %" PRIu64 " bytes: add --yes",
			    argv[0], r->size);
	}
	n = serving_devices(&r->t, ids, RBD_TOOL_MAX_DEVICES, &cached);
	if (!ret && r->size < old && cached) {
		tool_close(r);
		/* (it would keep blocks past the new end, and serve them after a grow) */
		return fail("%s is served behind a RAM cache: remove the device, shrink the image, "
			    "serve it again",
			    argv[0]);
	}
	/* a device never reaches past the image: shrink it first, grow it last */
	if (!ret && r->size < old && resize_devices(ids, n, r->size))
		ret = -EIO;
	if (!ret)
		ret = rbd_resize(r->image, r->size);
	tool_close(r);
	if (ret < 0)
		return fail("resize %s: %s", argv[0], strerror(-ret));
	if (r->size > old && resize_devices(ids, n, r->size))
		return 1;
	print_result(r, "resize", argv[0]);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "conf", required_argument, NULL, 'c' },
					      { "id", required_argument, NULL, 'i' },
					      { "json", no_argument, NULL, 'j' },
					      { "yes", no_argument, NULL, 'y' },
					      { "size", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	static const struct {
		const char *name;
		int (*run)(struct rbd_tool *r, int argc, char **argv);
	} cmds[] = { { "snapshot", cmd_snapshot }, { "list", cmd_list },
		     { "clone", cmd_clone },	   { "rollback", cmd_rollback },
		     { "delete", cmd_delete },	   { "resize", cmd_resize } };
	struct rbd_tool r = { 0 };
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			r.conf = optarg;
			break;
		case 'i':
			r.id = optarg;
			break;
		case 'j':
			r.json = true;
			break;
		case 'y':
			r.yes = true;
			break;
		case 's':
			if (azbuse_parse_size(optarg, &r.size)) {
				fail("bad --size %s", optarg);
				return 2;
			}
			r.have_size = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	/* (getopt put the options, wherever they were, before the command and its arguments) */
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[optind], cmds[i].name))
			continue;
		ret = cmds[i].run(&r, argc - optind - 1, argv + optind + 1);
		if (ret == 2) {
			fprintf(stderr, "azbuse-rbd %s: bad arguments\n", cmds[i].name);
			usage(stderr);
		}
		return ret;
	}
	fail("no command %s", argv[optind]);
	usage(stderr);
	return 2;
}
