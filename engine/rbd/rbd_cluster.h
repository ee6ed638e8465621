/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rbd_cluster.h - what the rbd engine and azbuse-rbd share: an image named
 * POOL/IMAGE[@SNAP] with the client and ceph.conf to reach it, and the
 * connection to its cluster (librbd's cache off).
 */
#ifndef AZBUSE_RBD_CLUSTER_H
#define AZBUSE_RBD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

struct rbd_target {
	char pool[256];
	char image[256];
	char snap[256];	  /* "" unless the name had @SNAP */
	char client[128]; /* a cephx id, without "client." */
	char conf[512];	  /* ceph.conf; "" for librados' default search */
};

/*
 * Fill t from SPEC (POOL/IMAGE, IMAGE in pool "rbd", or with @SNAP when
 * with_snap), ID (NULL: admin) and CONF (NULL: the default search).
 * 0, or -EINVAL with why in err.
 */
int rbd_target_parse(struct rbd_target *t, const char *spec, bool with_snap, const char *id,
		     const char *conf, char *err, size_t err_size);

/* Connect and open t's pool; 0 or -errno (*step says which step failed). */
int rbd_cluster_connect(const struct rbd_target *t, rados_t *cluster, rados_ioctx_t *ioctx,
			const char **step);
void rbd_cluster_disconnect(rados_t cluster, rados_ioctx_t ioctx);

/*
 * Whether librbd caches the open image: rbd_cache as the image's and its
 * pool's configuration leave it, which librbd applies over ours when it
 * opens the image. 0 or -errno.
 */
int rbd_cache_enabled(rbd_image_t image, bool *on);

/* The image's size as its header holds it now (cls_rbd get_size): 0 or -errno. */
int rbd_header_size(rados_ioctx_t ioctx, const char *header_oid, uint64_t *size);

#endif
