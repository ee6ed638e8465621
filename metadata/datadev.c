// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * datadev.c - a pool's data on a raw block device (azbuse-thin init --data):
 * the device's header and each shard's region of it.
 *
 * The device starts with a header block (AZB_DATADEV_HEAD bytes reserved)
 * that names the pool it belongs to; the rest is cut into one region per
 * shard. A shard numbers its chunks by their place on the device (its high
 * water starts at its region's first chunk), so a chunk's number times the
 * chunk size is its byte offset there, as in a shard's data file, and the
 * module's direct map needs no offset. Each shard's `data` is a symbolic link
 * to the device, and its DB holds its region (AZB_K_DATADEV).
 *
 * Nothing is zeroed: where a data file's new chunk is a hole that reads as
 * zeros, a new chunk of a data device holds whatever was there (another
 * volume's freed data, a plan's that a crash lost). Its mapping says which
 * sub-blocks were written since (AZB_VALID_ALL, meta.h); the rest reads as
 * zeros. (Pools made before that zeroed ahead of their high water, up to the
 * record's zeroed mark, which is kept but no longer used.)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta_internal.h"

#define DATADEV_MAGIC "AZBUSE-THINDATA"
#define DATADEV_VERSION 1
#define DATADEV_HDR_LEN 4096
/* a shard's region: at least this many chunks */
#define DATADEV_MIN_CHUNKS 64
#define DATADEV_RECORD_LEN AZB_DATADEV_RECORD_LEN

struct datadev_hdr {
	uint32_t nr_shards;
	uint64_t chunk_size;
	uint64_t pool_id;
	uint64_t region_chunks;
};

static void hdr_encode(char *b, const struct datadev_hdr *h)
{
	memset(b, 0, DATADEV_HDR_LEN);
	memcpy(b, DATADEV_MAGIC, sizeof(DATADEV_MAGIC));
	azb_put_be32(b + 16, DATADEV_VERSION);
	azb_put_be32(b + 20, h->nr_shards);
	azb_put_be64(b + 24, h->chunk_size);
	azb_put_be64(b + 32, h->pool_id);
	azb_put_be64(b + 40, h->region_chunks);
}

/* 0, or -ENOENT without the magic, -EINVAL for a version not ours. */
static int hdr_decode(const char *b, struct datadev_hdr *h)
{
	if (memcmp(b, DATADEV_MAGIC, sizeof(DATADEV_MAGIC)))
		return -ENOENT;
	if (azb_get_be32(b + 16) != DATADEV_VERSION)
		return -EINVAL;
	h->nr_shards = azb_get_be32(b + 20);
	h->chunk_size = azb_get_be64(b + 24);
	h->pool_id = azb_get_be64(b + 32);
	h->region_chunks = azb_get_be64(b + 40);
	return 0;
}

static int hdr_read(int fd, struct datadev_hdr *h)
{
	char *b = NULL;
	int ret;

	if (posix_memalign((void **)&b, DATADEV_HDR_LEN, DATADEV_HDR_LEN))
		return -ENOMEM;
	ret = pread(fd, b, DATADEV_HDR_LEN, 0) == DATADEV_HDR_LEN ? hdr_decode(b, h) : -EIO;
	free(b);
	return ret;
}

static int dev_size(int fd, uint64_t *bytes)
{
	return ioctl(fd, BLKGETSIZE64, bytes) ? -errno : 0;
}

/* The byte bounds of shard `index`'s region. */
static void region_of(const struct datadev_hdr *h, uint32_t index, uint64_t *first_chunk,
		      uint64_t *end_chunk)
{
	*first_chunk = AZB_DATADEV_HEAD / h->chunk_size + (uint64_t)index * h->region_chunks;
	*end_chunk = *first_chunk + h->region_chunks;
}

int azb_datadev_claim(const char *path, const struct azb_pool_settings *s, uint64_t *pool_id,
		      char *err, size_t errlen)
{
	struct datadev_hdr h = { .nr_shards = s->nr_shards, .chunk_size = s->chunk_size };
	uint64_t bytes, step = s->chunk_size > (1 << 20) ? s->chunk_size : (1 << 20);
	struct stat st;
	char *b = NULL;
	int fd, ret;

	/* O_EXCL: a device that is mounted or held by anyone else is refused */
	fd = open(path, O_RDWR | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		azb_seterr(err, errlen, "cannot open %s for the pool's data: %s%s", path,
			   strerror(errno), errno == EBUSY ? " (mounted or in use)" : "");
		return ret;
	}
	ret = fstat(fd, &st) ? -errno : 0;
	if (!ret && !S_ISBLK(st.st_mode)) {
		azb_seterr(err, errlen, "%s is not a block device", path);
		ret = -EINVAL;
	}
	if (!ret && (ret = dev_size(fd, &bytes)))
		azb_seterr(err, errlen, "%s: cannot read its size: %s", path, strerror(-ret));
	if (!ret) {
		ret = hdr_read(fd, &(struct datadev_hdr){ 0 });
		if (ret == -ENOENT) {
			ret = 0;
		} else if (ret == 0 || ret == -EINVAL) {
			azb_seterr(err, errlen,
				   "%s already holds an azbuse pool's data (clear its first 4 KiB "
				   "to reuse it)",
				   path);
			ret = -EEXIST;
		} else {
			azb_seterr(err, errlen, "%s: cannot read its first 4 KiB: %s", path,
				   strerror(-ret));
		}
	}
	if (!ret) {
		h.region_chunks = bytes > AZB_DATADEV_HEAD
					  ? (bytes - AZB_DATADEV_HEAD) / s->nr_shards / step *
						    step / s->chunk_size
					  : 0;
		if (h.region_chunks < DATADEV_MIN_CHUNKS) {
			azb_seterr(err, errlen, "%s is too small for %u shards of %llu-byte chunks",
				   path, s->nr_shards, (unsigned long long)s->chunk_size);
			ret = -ENOSPC;
		}
	}
	if (!ret && getrandom(&h.pool_id, sizeof(h.pool_id), 0) != sizeof(h.pool_id))
		ret = -errno;
	if (!ret && posix_memalign((void **)&b, DATADEV_HDR_LEN, DATADEV_HDR_LEN))
		ret = -ENOMEM;
	if (!ret) {
		hdr_encode(b, &h);
		if (pwrite(fd, b, DATADEV_HDR_LEN, 0) != DATADEV_HDR_LEN || fsync(fd)) {
			ret = errno ? -errno : -EIO;
			azb_seterr(err, errlen, "%s: cannot write its header: %s", path,
				   strerror(-ret));
		}
	}
	free(b);
	close(fd);
	if (!ret)
		*pool_id = h.pool_id;
	return ret;
}

void azb_datadev_unclaim(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	char *b = NULL;

	if (fd < 0)
		return;
	if (!posix_memalign((void **)&b, DATADEV_HDR_LEN, DATADEV_HDR_LEN)) {
		memset(b, 0, DATADEV_HDR_LEN);
		if (pwrite(fd, b, DATADEV_HDR_LEN, 0) == DATADEV_HDR_LEN)
			fsync(fd);
		free(b);
	}
	close(fd);
}

int azb_datadev_layout(const char *path, uint32_t index, struct azb_datadev *d, char *err,
		       size_t errlen)
{
	struct datadev_hdr h;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		azb_seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	ret = hdr_read(fd, &h);
	close(fd);
	if (ret) {
		azb_seterr(err, errlen, "%s: no pool header", path);
		return -EIO;
	}
	d->pool_id = h.pool_id;
	region_of(&h, index, &d->first_chunk, &d->end_chunk);
	d->zeroed_chunk = d->first_chunk;
	return 0;
}

void azb_datadev_encode(char *v, const struct azb_datadev *d)
{
	v[0] = AZB_VALUE_V1;
	azb_put_be64(v + 1, d->pool_id);
	azb_put_be64(v + 9, d->first_chunk);
	azb_put_be64(v + 17, d->end_chunk);
	azb_put_be64(v + 25, d->zeroed_chunk);
}

static int datadev_record_read(struct azb_shard *sh, struct azb_datadev *d, char *err,
			       size_t errlen)
{
	char k = AZB_K_DATADEV, *v;
	size_t vlen;
	int ret = azb_rdb_get(&sh->rdb, &k, 1, &v, &vlen, err, errlen);

	if (ret)
		return ret;
	if (vlen != DATADEV_RECORD_LEN || v[0] != AZB_VALUE_V1)
		ret = -EINVAL;
	else {
		d->pool_id = azb_get_be64(v + 1);
		d->first_chunk = azb_get_be64(v + 9);
		d->end_chunk = azb_get_be64(v + 17);
		d->zeroed_chunk = azb_get_be64(v + 25);
	}
	rocksdb_free(v);
	return ret;
}

int azb_datadev_open(struct azb_shard *sh, const char *path, char *err, size_t errlen)
{
	struct datadev_hdr h;
	uint64_t bytes;
	int ret = datadev_record_read(sh, &sh->dd, err, errlen);

	if (ret == -ENOENT || ret == -EINVAL) {
		azb_seterr(err, errlen,
			   "%s: %s is a block device but the shard has no region of it", sh->what,
			   path);
		return -EIO;
	}
	if (ret)
		return ret;
	ret = hdr_read(sh->data_fd, &h);
	if (!ret && (h.pool_id != sh->dd.pool_id || h.chunk_size != sh->s.chunk_size))
		ret = -ENOENT;
	if (ret) {
		azb_seterr(err, errlen,
			   "%s: %s is not this pool's data device (its header is missing or "
			   "names another pool)",
			   sh->what, path);
		return -EIO;
	}
	ret = dev_size(sh->data_fd, &bytes);
	if (!ret && bytes < sh->dd.end_chunk * sh->s.chunk_size) {
		azb_seterr(err, errlen, "%s: %s is %llu bytes, smaller than the pool made it",
			   sh->what, path, (unsigned long long)bytes);
		return -EIO;
	}
	if (ret)
		return ret;
	sh->raw = 1;
	sh->data_size = sh->dd.end_chunk * sh->s.chunk_size;
	return 0;
}

int azb_datadev_cover(struct azb_shard *sh, uint64_t chunks)
{
	if (chunks <= sh->dd.end_chunk)
		return 0;
	azb_seterr(sh->err, sizeof(sh->err),
		   "%s: out of space (its %llu chunks of the data device are used)", sh->what,
		   (unsigned long long)(sh->dd.end_chunk - sh->dd.first_chunk));
	return -ENOSPC;
}

int azb_pool_check_data(const char *dir, const struct azb_pool_settings *s, char *err,
			size_t errlen)
{
	char path[PATH_MAX];
	uint64_t pool_id = 0;

	for (uint32_t k = 0; k < s->nr_shards; k++) {
		struct datadev_hdr h;
		struct stat st;
		int fd, ret = 0;

		snprintf(path, sizeof(path), "%s/shard-%u/data", dir, k);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st)) {
			azb_seterr(err, errlen, "pool %s shard %u: cannot open %s: %s", dir, k,
				   path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -EIO;
		}
		if (S_ISBLK(st.st_mode))
			ret = hdr_read(fd, &h);
		close(fd);
		if (!S_ISBLK(st.st_mode))
			continue;
		if (!ret && (h.chunk_size != s->chunk_size || h.nr_shards != s->nr_shards ||
			     (k && h.pool_id != pool_id)))
			ret = -ENOENT;
		if (ret) {
			azb_seterr(
				err, errlen,
				"pool %s shard %u: %s is not this pool's data device (its header "
				"is missing or names another pool)",
				dir, k, path);
			return -EIO;
		}
		pool_id = h.pool_id;
	}
	return 0;
}
