/* SPDX-License-Identifier: GPL-2.0 */
/*
 * azbuse_compat.h - every kernel API difference between the versions azbuse
 * builds against (Debian 12's 6.1, bookworm-backports' 6.12, sid's 7.2 and
 * experimental's 7.3: tests/kmod-newest.sh), in one place.
 */
#ifndef AZBUSE_COMPAT_H
#define AZBUSE_COMPAT_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/version.h>

/* Block limits the driver asks for, independent of how the kernel takes them. */
struct azbuse_limits {
	unsigned int logical_block_size;
	unsigned int physical_block_size;
	unsigned int max_hw_sectors;
	unsigned int max_discard_sectors;
	unsigned int discard_granularity;
	unsigned int max_write_zeroes_sectors;
	unsigned int max_secure_erase_sectors;
	unsigned int chunk_sectors;
	bool write_cache;
	bool fua;
	bool rotational;
};

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
/* 6.11+: limits and features go to blk_mq_alloc_disk in a struct queue_limits. */
static inline struct gendisk *azbuse_alloc_disk(struct blk_mq_tag_set *set,
						const struct azbuse_limits *al, void *queuedata)
{
	struct queue_limits lim = {
		.logical_block_size = al->logical_block_size,
		.physical_block_size = al->physical_block_size,
		.max_hw_sectors = al->max_hw_sectors,
		.max_segments = USHRT_MAX,
		.max_segment_size = UINT_MAX,
		.max_hw_discard_sectors = al->max_discard_sectors,
		.discard_granularity = al->discard_granularity,
		.max_write_zeroes_sectors = al->max_write_zeroes_sectors,
		.max_secure_erase_sectors = al->max_secure_erase_sectors,
		.chunk_sectors = al->chunk_sectors,
	};

	if (al->write_cache)
		lim.features |= BLK_FEAT_WRITE_CACHE;
	if (al->fua)
		lim.features |= BLK_FEAT_FUA;
	if (al->rotational)
		lim.features |= BLK_FEAT_ROTATIONAL;
	return blk_mq_alloc_disk(set, &lim, queuedata);
}
#else
/* 6.1: allocate, then set each limit and queue flag on the queue. */
static inline struct gendisk *azbuse_alloc_disk(struct blk_mq_tag_set *set,
						const struct azbuse_limits *al, void *queuedata)
{
	struct gendisk *disk = blk_mq_alloc_disk(set, queuedata);
	struct request_queue *q;

	if (IS_ERR(disk))
		return disk;
	q = disk->queue;
	blk_queue_logical_block_size(q, al->logical_block_size);
	blk_queue_physical_block_size(q, al->physical_block_size);
	blk_queue_max_hw_sectors(q, al->max_hw_sectors);
	blk_queue_max_segments(q, USHRT_MAX);
	blk_queue_max_segment_size(q, UINT_MAX);
	if (al->max_discard_sectors) {
		blk_queue_max_discard_sectors(q, al->max_discard_sectors);
		q->limits.discard_granularity = al->discard_granularity;
	}
	blk_queue_max_write_zeroes_sectors(q, al->max_write_zeroes_sectors);
	if (al->max_secure_erase_sectors)
		blk_queue_max_secure_erase_sectors(q, al->max_secure_erase_sectors);
	if (al->chunk_sectors)
		blk_queue_chunk_sectors(q, al->chunk_sectors);
	blk_queue_write_cache(q, al->write_cache, al->fua);
	if (al->rotational)
		blk_queue_flag_clear(QUEUE_FLAG_NONROT, q);
	else
		blk_queue_flag_set(QUEUE_FLAG_NONROT, q);
	return disk;
}
#endif

/* 6.5+: a block device's open gets the gendisk and a blk_mode_t. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define AZBUSE_BDEV_OPEN_ARGS struct gendisk *disk, blk_mode_t mode
#define AZBUSE_BDEV_OPEN_DISK disk
#else
#define AZBUSE_BDEV_OPEN_ARGS struct block_device *bdev, fmode_t mode
#define AZBUSE_BDEV_OPEN_DISK bdev->bd_disk
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
static inline void azbuse_vma_set_flags(struct vm_area_struct *vma, unsigned long flags)
{
	vm_flags_set(vma, flags);
}
#else
static inline void azbuse_vma_set_flags(struct vm_area_struct *vma, unsigned long flags)
{
	vma->vm_flags |= flags;
}
#endif

/*
 * 6.9+: a plug caches the time for I/O stamps, and PF_BLOCK_TS tells the
 * scheduler to forget it. Code that swaps current->plug keeps the flag true
 * to the plug put back.
 */
#ifdef PF_BLOCK_TS
static inline bool azbuse_plug_timed(void)
{
	return current->flags & PF_BLOCK_TS;
}

static inline void azbuse_plug_set_timed(bool timed)
{
	if (timed)
		current->flags |= PF_BLOCK_TS;
}
#else
static inline bool azbuse_plug_timed(void)
{
	return false;
}

static inline void azbuse_plug_set_timed(bool timed)
{
}
#endif

/*
 * 6.14 removed BLK_MQ_F_SHOULD_MERGE (an enum, not a macro): every tag set
 * but passthrough ones merges since, without asking.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
#define AZBUSE_MQ_F_SHOULD_MERGE 0
#else
#define AZBUSE_MQ_F_SHOULD_MERGE BLK_MQ_F_SHOULD_MERGE
#endif

/*
 * How far into its current bvec an iterator is: 7.3 renamed bvec_iter's
 * bi_bvec_done to bi_offset.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 3, 0)
#define azbuse_bvec_iter_done(iter) ((iter).bi_offset)
#else
#define azbuse_bvec_iter_done(iter) ((iter).bi_bvec_done)
#endif

#endif /* AZBUSE_COMPAT_H */
