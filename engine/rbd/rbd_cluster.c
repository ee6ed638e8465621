// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * rbd_cluster.c - image names and cluster connections for the rbd engine and
 * azbuse-rbd (see rbd_cluster.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbd_cluster.h"

/* Copy [s, s + n) into dst (a buffer of size bytes): false if it does not fit or is empty. */
static bool rbd_name_copy(char *dst, size_t size, const char *s, size_t n)
{
	if (!n || n >= size)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

int rbd_target_parse(struct rbd_target *t, const char *spec, bool with_snap, const char *id,
		     const char *conf, char *err, size_t err_size)
{
	const char *slash = spec ? strchr(spec, '/') : NULL, *name, *at;

	memset(t, 0, sizeof(*t));
	if (!spec || !*spec) {
		snprintf(err, err_size, "no image: give POOL/IMAGE");
		return -EINVAL;
	}
	if (slash ? !rbd_name_copy(t->pool, sizeof(t->pool), spec, (size_t)(slash - spec))
		  : !rbd_name_copy(t->pool, sizeof(t->pool), "rbd", 3)) {
		snprintf(err, err_size, "%s: bad pool name", spec);
		return -EINVAL;
	}
	name = slash ? slash + 1 : spec;
	at = strchr(name, '@');
	if (at && !with_snap) {
		snprintf(err, err_size, "%s: give POOL/IMAGE (a snapshot is not served)", spec);
		return -EINVAL;
	}
	if (!rbd_name_copy(t->image, sizeof(t->image), name,
			   at ? (size_t)(at - name) : strlen(name)) ||
	    strchr(t->image, '/') ||
	    (at && (!rbd_name_copy(t->snap, sizeof(t->snap), at + 1, strlen(at + 1)) ||
		    strchr(t->snap, '@')))) {
		snprintf(err, err_size, "%s: give POOL/IMAGE%s", spec, with_snap ? "@SNAP" : "");
		return -EINVAL;
	}
	if (!id)
		id = "admin";
	if (!strncmp(id, "client.", 7))
		id += 7;
	if (!rbd_name_copy(t->client, sizeof(t->client), id, strlen(id)) ||
	    (conf && *conf && !rbd_name_copy(t->conf, sizeof(t->conf), conf, strlen(conf)))) {
		snprintf(err, err_size, "client id or ceph.conf path empty or too long");
		return -EINVAL;
	}
	return 0;
}

int rbd_cluster_connect(const struct rbd_target *t, rados_t *cluster, rados_ioctx_t *ioctx,
			const char **step)
{
	char name[sizeof(t->client) + 8];
	int ret;

	snprintf(name, sizeof(name), "client.%s", t->client);
	*step = "rados_create2";
	ret = rados_create2(cluster, "ceph", name, 0);
	if (ret < 0)
		return ret;
	*step = "reading the configuration";
	ret = rados_conf_read_file(*cluster, t->conf[0] ? t->conf : NULL);
	/*
	 * No librbd cache: each of a device's queues has a handle of its own,
	 * which would cache writes that another queue's handle does not see,
	 * and a worker that dies would take writes it acknowledged with it. A
	 * write completes once RADOS has it.
	 */
	if (ret >= 0) {
		*step = "turning librbd's cache off";
		ret = rados_conf_set(*cluster, "rbd_cache", "false");
	}
	if (ret >= 0) {
		*step = "connecting to the cluster";
		ret = rados_connect(*cluster);
	}
	if (ret >= 0) {
		*step = "opening the pool";
		ret = rados_ioctx_create(*cluster, t->pool, ioctx);
	}
	if (ret < 0)
		rados_shutdown(*cluster);
	return ret;
}

void rbd_cluster_disconnect(rados_t cluster, rados_ioctx_t ioctx)
{
	rados_ioctx_destroy(ioctx);
	rados_shutdown(cluster);
}

int rbd_cache_enabled(rbd_image_t image, bool *on)
{
	rbd_config_option_t *opts = NULL;
	int n = 0, ret, i;

	/* (-ERANGE with the count while the array is too small) */
	while ((ret = rbd_config_image_list(image, opts, &n)) == -ERANGE) {
		free(opts);
		opts = calloc((size_t)n, sizeof(*opts));
		if (!opts)
			return -ENOMEM;
	}
	*on = false;
	for (i = 0; !ret && i < n; i++)
		if (!strcmp(opts[i].name, "rbd_cache"))
			*on = !strcmp(opts[i].value, "true");
	if (!ret)
		rbd_config_image_list_cleanup(opts, n);
	free(opts);
	return ret;
}

int rbd_header_size(rados_ioctx_t ioctx, const char *header_oid, uint64_t *size)
{
	unsigned char in[8], out[9];	    /* le64 snap id; u8 order, le64 size */
	const uint64_t head = (uint64_t)-2; /* CEPH_NOSNAP: the image itself */
	int ret, i;

	for (i = 0; i < 8; i++)
		in[i] = (unsigned char)(head >> (8 * i));
	ret = rados_exec(ioctx, header_oid, "rbd", "get_size", (const char *)in, sizeof(in),
			 (char *)out, sizeof(out));
	if (ret < 0)
		return ret;
	if (ret != (int)sizeof(out))
		return -EBADMSG;
	*size = 0;
	for (i = 0; i < 8; i++)
		*size |= (uint64_t)out[1 + i] << (8 * i);
	return 0;
}
