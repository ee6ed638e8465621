// SPDX-License-Identifier: GPL-2.0
/*
 * azbuse_dev.c - device lifecycle: validate ADD parameters, build the
 * tag set, disk, rings and char device; START (add_disk); REMOVE (drain,
 * abort, tear down in reverse order); and the blk-mq operations.
 *
 * A device's memory lives as long as its char device's struct device:
 * removal drops the registry's reference, each worker's open file holds
 * one, and the release callback frees rings and slot tables last.
 */
#define pr_fmt(fmt) "azbuse: " fmt

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/idr.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "azbuse_compat.h"
#include "azbuse_int.h"

#define AZBUSE_PART_MINORS 16
/* removal fails what is left once the workers have made no progress for this long */
#define AZBUSE_REMOVE_STALL_MS 5000

/*
 * ... or once one request has been with them this long while others
 * complete: del_gendisk first writes back what the page cache holds, and
 * waits for that, with the disk still taking I/O.
 */
static unsigned int remove_stuck_ms = 60000;
module_param(remove_stuck_ms, uint, 0644);
MODULE_PARM_DESC(remove_stuck_ms,
		 "during removal, fail the workers' I/O once one request is this old (ms, 0: never)");
#define AZBUSE_MAX_TIMEOUT_MS (3600U * 1000U)

static DEFINE_MUTEX(azbuse_devs_lock); /* the registry */
static DEFINE_IDR(azbuse_devs);	       /* id -> device; NULL while being built */
static int azbuse_major;
static dev_t azbuse_cdev_base;
static struct class azbuse_class = {
	.name = "azbuse",
};

static void azbuse_remove_watchdog(struct work_struct *work);
static void azbuse_commit_rqs(struct blk_mq_hw_ctx *hctx);

static blk_status_t azbuse_queue_rq(struct blk_mq_hw_ctx *hctx, const struct blk_mq_queue_data *bd)
{
	struct azbuse_dev *dev = hctx->queue->queuedata;
	enum azbuse_direct_verdict direct = AZBUSE_DIRECT_NO;
	blk_status_t status;

	if (unlikely(READ_ONCE(dev->dead)))
		return BLK_STS_IOERR;
	/* the block layer only warns about writes to a read-only disk */
	if (unlikely((dev->info.features & AZBUSE_F_READ_ONLY) && op_is_write(req_op(bd->rq))))
		return BLK_STS_IOERR;
	if (rcu_access_pointer(dev->kcache) && azbuse_cache_try(dev, hctx, bd->rq))
		direct = AZBUSE_DIRECT_TAKEN;
	else if (dev->direct_map)
		direct = azbuse_direct_try(dev, hctx, bd->rq);
	if (direct == AZBUSE_DIRECT_TAKEN) {
		/* requests posted before this one in the batch wait for their wake-up */
		if (bd->last)
			azbuse_commit_rqs(hctx);
		return BLK_STS_OK;
	}
	if (dev->sharded)
		status = azbuse_shard_post(dev, hctx->driver_data, bd->rq, bd->last,
					   direct == AZBUSE_DIRECT_OWNER);
	else
		status = azbuse_ring_post(hctx->driver_data, bd->rq, bd->last);
	/* and the direct map's requests queued before this one */
	if (dev->direct_map && bd->last)
		azbuse_direct_kick(dev, hctx);
	return status;
}

/*
 * A request outlived io_timeout. Ending it here while a worker holds it would
 * let the tag (and its data slot) be reused under that worker, so it is only
 * counted and reported: a worker that is gone is handled by the recovery
 * window, a wedged one by whoever watches the counter (or by removal).
 */
static enum blk_eh_timer_return azbuse_timeout(struct request *rq)
{
	struct azbuse_ring *ring;

	/* the backing file's I/O ends it */
	if (azbuse_direct_active(rq->q->queuedata, rq))
		return BLK_EH_RESET_TIMER;
	ring = azbuse_rq_ring(rq->q->queuedata, rq);

	atomic64_inc(&ring->timeouts);
	pr_warn_ratelimited("azbuse%u: queue %u: request %d waited over %u ms (worker pid %d)\n",
			    ring->dev->id, ring->index, rq->tag, ring->dev->info.io_timeout_ms,
			    READ_ONCE(ring->worker_pid));
	return BLK_EH_RESET_TIMER;
}

static void azbuse_commit_rqs(struct blk_mq_hw_ctx *hctx)
{
	struct azbuse_dev *dev = hctx->queue->queuedata;

	if (dev->sharded)
		azbuse_shard_wake(dev, hctx->driver_data);
	else
		azbuse_ring_wake(hctx->driver_data);
	if (dev->direct_map)
		azbuse_direct_kick(dev, hctx);
}

/*
 * A hardware queue is its ring, except in sharded mode, where queue_rq
 * routes: there it has a bitmap of the shards it posted to since it last
 * woke them (at the batch's last request or commit_rqs).
 */
static int azbuse_init_hctx(struct blk_mq_hw_ctx *hctx, void *driver_data, unsigned int index)
{
	struct azbuse_dev *dev = driver_data;

	if (dev->sharded) {
		hctx->driver_data = bitmap_zalloc_node(dev->nr_rings, GFP_KERNEL, hctx->numa_node);
		return hctx->driver_data ? 0 : -ENOMEM;
	}
	if (WARN_ON_ONCE(index >= dev->nr_rings))
		return -EINVAL;
	hctx->driver_data = &dev->rings[index];
	return 0;
}

static void azbuse_exit_hctx(struct blk_mq_hw_ctx *hctx, unsigned int index)
{
	/* the tag set lives in dev, so dev outlives its hardware queues */
	struct azbuse_dev *dev = hctx->queue->tag_set->driver_data;

	if (dev->sharded)
		bitmap_free(hctx->driver_data);
	hctx->driver_data = NULL;
}

static const struct blk_mq_ops azbuse_mq_ops = {
	.queue_rq = azbuse_queue_rq,
	.commit_rqs = azbuse_commit_rqs,
	.init_hctx = azbuse_init_hctx,
	.exit_hctx = azbuse_exit_hctx,
	.timeout = azbuse_timeout,
};

/*
 * No new opener once a removal has claimed the device: a removal that
 * checks for openers (azbuse_dev_remove_unused) claims it under the disk's
 * open_mutex, which is held around this call.
 */
static int azbuse_bdev_open(AZBUSE_BDEV_OPEN_ARGS)
{
	struct azbuse_dev *dev = AZBUSE_BDEV_OPEN_DISK->private_data;

	(void)mode;
	return READ_ONCE(dev->removing) ? -ENXIO : 0;
}

static const struct block_device_operations azbuse_bdev_fops = {
	.owner = THIS_MODULE,
	.open = azbuse_bdev_open,
};

static bool azbuse_reserved_zero(const struct azbuse_dev_info *info)
{
	return !memchr_inv(info->reserved, 0, sizeof(info->reserved));
}

/*
 * Sharded mode's chunk: a power of two from 4 KiB up to 2 GiB (a part must
 * fit a submission entry's 32-bit length); without sharding, none.
 */
static int azbuse_validate_shards(struct azbuse_dev_info *info)
{
	if (!(info->features & AZBUSE_F_SHARDED))
		return info->chunk_sectors || (info->features & AZBUSE_F_ROUTE_QUEUE) ? -EINVAL : 0;
	if (!is_power_of_2(info->chunk_sectors) ||
	    info->chunk_sectors < (PAGE_SIZE >> SECTOR_SHIFT) ||
	    info->chunk_sectors < (info->logical_block_size >> SECTOR_SHIFT) ||
	    info->chunk_sectors > (SZ_2G >> SECTOR_SHIFT))
		return -EINVAL;
	/* shared tags: every shard may have queue_depth requests */
	if ((u32)info->queue_depth * info->nr_queues > AZBUSE_MAX_SHARED_TAGS)
		return -EINVAL;
	return 0;
}

/* Check every field of an ADD request and fill in the defaults. */
static int azbuse_validate_info(struct azbuse_dev_info *info)
{
	u64 data_total;
	int ret;

	if (!azbuse_reserved_zero(info))
		return -EINVAL;
	if (info->features & ~AZBUSE_F_ALL)
		return -EINVAL;
	if (info->dev_id != AZBUSE_DEV_ID_ANY && info->dev_id >= AZBUSE_MAX_DEVICES)
		return -EINVAL;

	if (!info->nr_queues)
		info->nr_queues = min_t(u32, num_possible_cpus(), AZBUSE_MAX_QUEUES);
	if (info->nr_queues > AZBUSE_MAX_QUEUES)
		return -EINVAL;
	/* blk-mq would silently cap hardware queues at the CPU count; shards are not CPUs */
	if (!(info->features & AZBUSE_F_SHARDED) && info->nr_queues > nr_cpu_ids)
		return -EINVAL;
	if (!info->queue_depth)
		info->queue_depth = AZBUSE_DEF_QUEUE_DEPTH;
	if (info->queue_depth > AZBUSE_MAX_QUEUE_DEPTH)
		return -EINVAL;
	if (!info->max_io_bytes)
		info->max_io_bytes = AZBUSE_DEF_IO_BYTES;
	if (info->max_io_bytes < AZBUSE_MIN_IO_BYTES || info->max_io_bytes > AZBUSE_MAX_IO_BYTES ||
	    !IS_ALIGNED(info->max_io_bytes, PAGE_SIZE))
		return -EINVAL;

	if (!info->logical_block_size)
		info->logical_block_size = SECTOR_SIZE;
	if (!is_power_of_2(info->logical_block_size) || info->logical_block_size < SECTOR_SIZE ||
	    info->logical_block_size > PAGE_SIZE)
		return -EINVAL;
	if (!info->physical_block_size)
		info->physical_block_size = info->logical_block_size;
	if (!is_power_of_2(info->physical_block_size) ||
	    info->physical_block_size < info->logical_block_size ||
	    info->physical_block_size > SZ_64K)
		return -EINVAL;
	if (!info->size_bytes || !IS_ALIGNED(info->size_bytes, info->logical_block_size) ||
	    info->size_bytes > (U64_MAX >> 1))
		return -EINVAL;
	ret = azbuse_validate_shards(info);
	if (ret)
		return ret;
	ret = azbuse_direct_validate(info);
	if (ret)
		return ret;

	if (!info->discard_granularity)
		info->discard_granularity = info->logical_block_size;
	if (!is_power_of_2(info->discard_granularity) ||
	    info->discard_granularity < info->logical_block_size)
		return -EINVAL;
	/* sharded: a discard bigger than a chunk would only be cut into parts */
	if (!info->max_discard_sectors)
		info->max_discard_sectors = info->chunk_sectors ?: UINT_MAX >> SECTOR_SHIFT;
	if (!info->max_write_zeroes_sectors)
		info->max_write_zeroes_sectors = info->chunk_sectors ?: UINT_MAX >> SECTOR_SHIFT;
	if (!(info->features & AZBUSE_F_DISCARD) && !(info->features & AZBUSE_F_SECURE_ERASE))
		info->max_discard_sectors = 0;
	if (!(info->features & AZBUSE_F_WRITE_ZEROES))
		info->max_write_zeroes_sectors = 0;
	/* FUA means nothing without a volatile write cache */
	if (!(info->features & AZBUSE_F_WRITE_CACHE))
		info->features &= ~AZBUSE_F_FUA;

	if (!info->io_timeout_ms)
		info->io_timeout_ms = AZBUSE_DEF_IO_TIMEOUT_MS;
	if (!info->recovery_timeout_ms)
		info->recovery_timeout_ms = AZBUSE_DEF_RECOVERY_TIMEOUT_MS;
	if (info->io_timeout_ms < 100 || info->io_timeout_ms > AZBUSE_MAX_TIMEOUT_MS ||
	    info->recovery_timeout_ms > AZBUSE_MAX_TIMEOUT_MS)
		return -EINVAL;

	/* data slots are pinned kernel memory: refuse what would eat half of RAM */
	data_total = (u64)info->nr_queues * info->queue_depth * info->max_io_bytes;
	if (data_total > ((u64)totalram_pages() << PAGE_SHIFT) / 2)
		return -EINVAL;

	info->state = AZBUSE_DEV_CREATED;
	info->owner_pid = task_tgid_vnr(current);
	info->nr_hw_queues = info->nr_queues;
	if (info->features & AZBUSE_F_SHARDED)
		info->nr_hw_queues = min_t(u32, num_possible_cpus(), AZBUSE_MAX_QUEUES);
	return 0;
}

static void azbuse_free_rings(struct azbuse_dev *dev)
{
	u32 i;

	if (dev->rings) {
		for (i = 0; i < dev->nr_rings; i++)
			azbuse_ring_free(&dev->rings[i]);
		kfree(dev->rings);
		dev->rings = NULL;
	}
	if (dev->tables) {
		for (i = 0; i < dev->nr_tables; i++)
			azbuse_table_free(&dev->tables[i]);
		kfree(dev->tables);
		dev->tables = NULL;
	}
}

/*
 * The CPUs that blk-mq maps to each queue, as a byte bitmap (bit n%8 of byte
 * n/8 = CPU n), computed once here: the tag set's map is freed at removal,
 * while a worker may still ask for its queue's CPUs.
 */
static u8 *azbuse_queue_cpu_map(struct azbuse_dev *dev, u32 queue, u32 nbytes, int *node)
{
	const struct blk_mq_queue_map *map = &dev->tag_set.map[HCTX_TYPE_DEFAULT];
	unsigned int cpu;
	u8 *bits;

	bits = kzalloc(nbytes, GFP_KERNEL);
	if (!bits)
		return NULL;
	*node = NUMA_NO_NODE;
	for_each_possible_cpu (cpu) {
		if (map->mq_map[cpu] != queue)
			continue;
		bits[cpu / 8] |= 1U << (cpu % 8);
		if (*node == NUMA_NO_NODE)
			*node = cpu_to_node(cpu);
	}
	return bits;
}

/*
 * Sharded mode: shards are spread over the online NUMA nodes in turn, and
 * each shard's worker may run on any CPU of its node.
 */
static u8 *azbuse_shard_cpu_map(u32 shard, u32 nbytes, int *node)
{
	u32 nth = shard % num_online_nodes();
	unsigned int cpu;
	int n;
	u8 *bits;

	bits = kzalloc(nbytes, GFP_KERNEL);
	if (!bits)
		return NULL;
	*node = first_online_node;
	for_each_online_node(n)
	{
		if (!nth--) {
			*node = n;
			break;
		}
	}
	for_each_cpu(cpu, cpumask_of_node(*node)) bits[cpu / 8] |= 1U << (cpu % 8);
	return bits;
}

/* Tags per slot table: a queue's depth, or in sharded mode the whole device's. */
static u32 azbuse_table_depth(const struct azbuse_dev *dev)
{
	return dev->sharded ? dev->info.queue_depth * dev->nr_rings : dev->info.queue_depth;
}

static int azbuse_alloc_rings(struct azbuse_dev *dev)
{
	u32 nbytes = DIV_ROUND_UP(nr_cpu_ids, 8);
	struct azbuse_slot_table *table;
	int node, ret;
	u32 i;
	u8 *cpus;

	dev->nr_tables = dev->sharded ? 1 : dev->nr_rings;
	dev->tables = kcalloc(dev->nr_tables, sizeof(*dev->tables), GFP_KERNEL);
	dev->rings = kcalloc(dev->nr_rings, sizeof(*dev->rings), GFP_KERNEL);
	if (!dev->tables || !dev->rings)
		return -ENOMEM;
	if (dev->sharded) {
		ret = azbuse_table_init(&dev->tables[0], azbuse_table_depth(dev),
					dev->info.max_io_bytes, NUMA_NO_NODE);
		if (ret)
			return ret;
	}
	for (i = 0; i < dev->nr_rings; i++) {
		if (dev->sharded)
			cpus = azbuse_shard_cpu_map(i, nbytes, &node);
		else
			cpus = azbuse_queue_cpu_map(dev, i, nbytes, &node);
		if (!cpus)
			return -ENOMEM;
		table = dev->sharded ? &dev->tables[0] : &dev->tables[i];
		ret = 0;
		if (!dev->sharded)
			ret = azbuse_table_init(table, azbuse_table_depth(dev),
						dev->info.max_io_bytes, node);
		if (!ret)
			ret = azbuse_ring_init(&dev->rings[i], dev, i, table, node, cpus, nbytes);
		if (ret) {
			kfree(cpus);
			return ret;
		}
	}
	return 0;
}

/* The last reference is gone: no worker, no registry entry. */
static void azbuse_dev_release(struct device *d)
{
	struct azbuse_dev *dev = container_of(d, struct azbuse_dev, cdev_dev);

	azbuse_free_rings(dev);
	azbuse_direct_free(dev);
	azbuse_cache_free(dev);
	mutex_destroy(&dev->lock);
	kfree(dev);
}

static int azbuse_init_tag_set(struct azbuse_dev *dev)
{
	struct blk_mq_tag_set *set = &dev->tag_set;
	int ret;

	set->ops = &azbuse_mq_ops;
	set->nr_hw_queues = dev->info.nr_hw_queues;
	set->queue_depth = azbuse_table_depth(dev);
	set->numa_node = NUMA_NO_NODE;
	/*
	 * No I/O scheduler unless the admin picks one: the kernel's default
	 * gives single-queue and shared-tag (sharded) devices mq-deadline,
	 * whose lock and queueing every request would pay, for a device that
	 * is RAM or a userspace engine with its own ordering.
	 */
	set->flags = AZBUSE_MQ_F_SHOULD_MERGE | BLK_MQ_F_NO_SCHED_BY_DEFAULT;
	/* a block-device backing gets its remapped bio from queue_rq, which may sleep */
	if (dev->direct_map) {
		set->cmd_size = sizeof(struct azbuse_direct_cmd);
		set->flags |= BLK_MQ_F_BLOCKING;
	}
	/* sharded: one tag space for all hardware queues, so data slots are unique */
	if (dev->sharded)
		set->flags |= BLK_MQ_F_TAG_HCTX_SHARED;
	set->driver_data = dev;
	set->timeout = msecs_to_jiffies(dev->info.io_timeout_ms);
	ret = blk_mq_alloc_tag_set(set);
	if (ret)
		return ret;
	dev->tag_set_ready = true;
	return 0;
}

static int azbuse_init_disk(struct azbuse_dev *dev)
{
	const struct azbuse_dev_info *info = &dev->info;
	struct azbuse_limits lim = {
		.logical_block_size = info->logical_block_size,
		.physical_block_size = info->physical_block_size,
		.max_hw_sectors = info->max_io_bytes >> SECTOR_SHIFT,
		.discard_granularity = info->discard_granularity,
		.max_discard_sectors =
			(info->features & AZBUSE_F_DISCARD) ? info->max_discard_sectors : 0,
		.max_secure_erase_sectors =
			(info->features & AZBUSE_F_SECURE_ERASE) ? info->max_discard_sectors : 0,
		.max_write_zeroes_sectors = info->max_write_zeroes_sectors,
		.chunk_sectors = info->chunk_sectors,
		.write_cache = info->features & AZBUSE_F_WRITE_CACHE,
		.fua = info->features & AZBUSE_F_FUA,
		.rotational = info->features & AZBUSE_F_ROTATIONAL,
	};
	struct gendisk *disk;

	disk = azbuse_alloc_disk(&dev->tag_set, &lim, dev);
	if (IS_ERR(disk))
		return PTR_ERR(disk);
	disk->major = azbuse_major;
	disk->first_minor = dev->id * AZBUSE_PART_MINORS;
	disk->minors = AZBUSE_PART_MINORS;
	disk->fops = &azbuse_bdev_fops;
	disk->private_data = dev;
	snprintf(disk->disk_name, sizeof(disk->disk_name), "azbuse%u", dev->id);
	set_capacity(disk, info->size_bytes >> SECTOR_SHIFT);
	if (info->features & AZBUSE_F_READ_ONLY)
		set_disk_ro(disk, true);
	dev->disk = disk;
	return 0;
}

static void azbuse_free_disk_and_tags(struct azbuse_dev *dev)
{
	if (dev->disk) {
		put_disk(dev->disk);
		dev->disk = NULL;
	}
	if (dev->tag_set_ready) {
		blk_mq_free_tag_set(&dev->tag_set);
		dev->tag_set_ready = false;
	}
}

/* Reserve an id in the registry (NULL entry until the device is built). */
static int azbuse_reserve_id(u32 want)
{
	int id;

	mutex_lock(&azbuse_devs_lock);
	if (want == AZBUSE_DEV_ID_ANY)
		id = idr_alloc(&azbuse_devs, NULL, 0, AZBUSE_MAX_DEVICES, GFP_KERNEL);
	else
		id = idr_alloc(&azbuse_devs, NULL, want, want + 1, GFP_KERNEL);
	mutex_unlock(&azbuse_devs_lock);
	if (id == -ENOSPC)
		return want == AZBUSE_DEV_ID_ANY ? -ENOSPC : -EEXIST;
	return id;
}

static void azbuse_release_id(u32 id)
{
	mutex_lock(&azbuse_devs_lock);
	idr_remove(&azbuse_devs, id);
	mutex_unlock(&azbuse_devs_lock);
}

int azbuse_dev_add(struct azbuse_dev_info *info, struct file *owner)
{
	struct azbuse_dev *dev;
	int ret, id;

	ret = azbuse_validate_info(info);
	if (ret)
		return ret;
	id = azbuse_reserve_id(info->dev_id);
	if (id < 0)
		return id;
	info->dev_id = id;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev) {
		ret = -ENOMEM;
		goto out_release_id;
	}
	dev->id = id;
	dev->info = *info;
	dev->owner_file = owner;
	dev->state = AZBUSE_DEV_CREATED;
	mutex_init(&dev->lock);
	mutex_init(&dev->cache_mutex);
	INIT_DELAYED_WORK(&dev->remove_watchdog, azbuse_remove_watchdog);

	dev->nr_rings = info->nr_queues;
	dev->sharded = info->features & AZBUSE_F_SHARDED;
	dev->route_queue = info->features & AZBUSE_F_ROUTE_QUEUE;
	if (dev->sharded)
		dev->chunk_shift = ilog2(info->chunk_sectors);
	ret = azbuse_direct_init(dev);
	if (ret)
		goto out_free_direct;
	ret = azbuse_init_tag_set(dev);
	if (ret)
		goto out_free_direct;
	ret = azbuse_alloc_rings(dev);
	if (ret)
		goto out_free_rings;
	ret = azbuse_init_disk(dev);
	if (ret)
		goto out_free_rings;

	/* from here on the struct device owns dev; errors put it */
	device_initialize(&dev->cdev_dev);
	dev->cdev_dev.class = &azbuse_class;
	dev->cdev_dev.devt = MKDEV(MAJOR(azbuse_cdev_base), id);
	dev->cdev_dev.release = azbuse_dev_release;
	ret = dev_set_name(&dev->cdev_dev, "azbusec%u", id);
	if (ret)
		goto out_put_device;
	cdev_init(&dev->cdev, &azbuse_cdev_fops);
	dev->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&dev->cdev, &dev->cdev_dev);
	if (ret)
		goto out_put_device;

	mutex_lock(&azbuse_devs_lock);
	idr_replace(&azbuse_devs, dev, id);
	mutex_unlock(&azbuse_devs_lock);
	return 0;

out_put_device:
	azbuse_free_disk_and_tags(dev);
	put_device(&dev->cdev_dev);
	goto out_release_id;
out_free_rings:
	azbuse_free_rings(dev);
	azbuse_free_disk_and_tags(dev);
out_free_direct:
	azbuse_direct_free(dev);
	mutex_destroy(&dev->lock);
	kfree(dev);
out_release_id:
	azbuse_release_id(id);
	return ret;
}

struct azbuse_dev *azbuse_dev_get(u32 id)
{
	struct azbuse_dev *dev;

	mutex_lock(&azbuse_devs_lock);
	dev = idr_find(&azbuse_devs, id);
	if (dev)
		get_device(&dev->cdev_dev);
	mutex_unlock(&azbuse_devs_lock);
	return dev;
}

void azbuse_dev_put(struct azbuse_dev *dev)
{
	put_device(&dev->cdev_dev);
}

static bool azbuse_all_attached(struct azbuse_dev *dev)
{
	u32 i;

	for (i = 0; i < dev->nr_rings; i++)
		if (READ_ONCE(dev->rings[i].state) != AZBUSE_QUEUE_ATTACHED)
			return false;
	return true;
}

/*
 * add_disk failed: that gendisk may not be added again, only put. Allocate a
 * fresh one for a later START; if that fails too, the device is left with
 * no disk, which START refuses and removal copes with. dev->lock is held.
 */
static void azbuse_renew_disk(struct azbuse_dev *dev)
{
	put_disk(dev->disk);
	dev->disk = NULL;
	if (azbuse_init_disk(dev))
		pr_warn("azbuse%u: no new disk after a failed START: the device can only be "
			"removed\n",
			dev->id);
}

/*
 * Make the disk visible. Every queue must have a worker: add_disk reads the
 * partition table through them. dev->lock is held across add_disk; a removal
 * meanwhile arms its stall watchdog before waiting for the lock, so a worker
 * that wedges during the scan cannot block removal for ever.
 */
int azbuse_dev_start(u32 id)
{
	struct azbuse_dev *dev = azbuse_dev_get(id);
	int ret = 0;

	if (!dev)
		return -ENOENT;
	mutex_lock(&dev->lock);
	if (READ_ONCE(dev->removing))
		ret = -ENODEV;
	else if (dev->state != AZBUSE_DEV_CREATED)
		ret = -EALREADY;
	else if (!dev->disk)
		ret = -ENODEV;
	else if (!azbuse_all_attached(dev))
		ret = -EBUSY;
	else {
		ret = add_disk(dev->disk);
		if (ret)
			azbuse_renew_disk(dev);
	}
	if (!ret)
		WRITE_ONCE(dev->state, AZBUSE_DEV_LIVE);
	mutex_unlock(&dev->lock);
	azbuse_dev_put(dev);
	return ret;
}

/*
 * A new supervisor takes over a live device (its old one died): it becomes
 * the owner that INFO reports, and its control file the one whose closing
 * detaches the cache it attaches (azbuse_dev_owner_gone), as the first
 * supervisor's did. Its workers then attach to the queues, whose requests
 * waited within the recovery window.
 */
int azbuse_dev_takeover(u32 id, struct file *owner)
{
	struct azbuse_dev *dev = azbuse_dev_get(id);
	int ret = 0;

	if (!dev)
		return -ENOENT;
	mutex_lock(&dev->lock);
	if (READ_ONCE(dev->removing))
		ret = -ENODEV;
	else if (dev->state != AZBUSE_DEV_LIVE)
		ret = -EINVAL;
	else
		WRITE_ONCE(dev->info.owner_pid, task_tgid_vnr(current));
	mutex_unlock(&dev->lock);
	if (!ret) {
		mutex_lock(&azbuse_devs_lock); /* (owner_gone reads it under the registry lock) */
		dev->owner_file = owner;
		mutex_unlock(&azbuse_devs_lock);
		/* the old supervisor's cache is not the new one's: it attaches its own */
		azbuse_cache_detach(dev);
	}
	azbuse_dev_put(dev);
	return ret;
}

/*
 * RESIZE: a new size, checked as ADD checks it, and the disk's capacity
 * with a uevent. Refused on a device with a direct map, which would serve
 * the part of a chunk past the old end from the backing chunk.
 *
 * START holds dev->lock across add_disk, whose partition scan waits for the
 * workers; a worker may resize (an engine that follows its store's size),
 * so RESIZE never waits for the lock of a device not yet live: -EAGAIN,
 * and the caller tries again once the device is.
 */
int azbuse_dev_resize(u32 id, u64 size_bytes)
{
	struct azbuse_dev *dev = azbuse_dev_get(id);
	int ret = 0;

	if (!dev)
		return -ENOENT;
	if (!mutex_trylock(&dev->lock)) {
		if (READ_ONCE(dev->state) != AZBUSE_DEV_LIVE) {
			azbuse_dev_put(dev);
			return -EAGAIN;
		}
		mutex_lock(&dev->lock);
	}
	if (READ_ONCE(dev->removing) || !dev->disk)
		ret = -ENODEV;
	else if (dev->direct_map)
		ret = -EOPNOTSUPP;
	else if (!size_bytes || !IS_ALIGNED(size_bytes, dev->info.logical_block_size) ||
		 size_bytes > (U64_MAX >> 1))
		ret = -EINVAL;
	else {
		WRITE_ONCE(dev->info.size_bytes, size_bytes);
		if (dev->state == AZBUSE_DEV_LIVE)
			set_capacity_and_notify(dev->disk, size_bytes >> SECTOR_SHIFT);
		else
			set_capacity(dev->disk, size_bytes >> SECTOR_SHIFT);
	}
	mutex_unlock(&dev->lock);
	azbuse_dev_put(dev);
	return ret;
}

static u64 azbuse_progress(struct azbuse_dev *dev)
{
	u64 done = 0;
	u32 i;

	for (i = 0; i < dev->nr_rings; i++)
		done += READ_ONCE(dev->rings[i].requests) + atomic64_read(&dev->rings[i].failed);
	return done;
}

/* No more I/O: tell the workers, fail everything still in flight. */
static void azbuse_dev_kill(struct azbuse_dev *dev)
{
	u32 i;

	WRITE_ONCE(dev->dead, true);
	for (i = 0; i < dev->nr_rings; i++)
		azbuse_ring_mark_dead(&dev->rings[i]);
	for (i = 0; i < dev->nr_rings; i++)
		azbuse_ring_abort(&dev->rings[i], BLK_STS_IOERR);
}

/* When the oldest request still with the workers was posted (ktime ns; U64_MAX: none). */
static u64 azbuse_oldest_posted(struct azbuse_dev *dev)
{
	u64 oldest = U64_MAX;
	u32 t, i;

	for (t = 0; t < dev->nr_tables; t++) {
		struct azbuse_slot_table *table = &dev->tables[t];

		for (i = 0; table->slots && i < table->nr; i++) {
			struct azbuse_slot *slot = &table->slots[i];
			u64 w = atomic64_read_acquire(&slot->word), posted;

			if (AZBUSE_SLOT_STATE(w) != AZBUSE_SLOT_PENDING &&
			    AZBUSE_SLOT_STATE(w) != AZBUSE_SLOT_INFLIGHT)
				continue;
			posted = READ_ONCE(slot->posted_ns);
			/* the time is the request's if the slot did not move on meanwhile */
			smp_rmb();
			if (atomic64_read(&slot->word) == w)
				oldest = min(oldest, posted);
		}
	}
	return oldest;
}

/* During removal: if the workers stopped making progress, give up on them. */
static void azbuse_remove_watchdog(struct work_struct *work)
{
	struct azbuse_dev *dev =
		container_of(to_delayed_work(work), struct azbuse_dev, remove_watchdog);
	u64 now = azbuse_progress(dev), oldest = azbuse_oldest_posted(dev);
	u64 stuck_ns = (u64)READ_ONCE(remove_stuck_ms) * NSEC_PER_MSEC;
	bool stuck = stuck_ns && oldest != U64_MAX && ktime_get_ns() - oldest > stuck_ns;

	if (now != dev->remove_progress && !stuck) {
		dev->remove_progress = now;
		schedule_delayed_work(&dev->remove_watchdog,
				      msecs_to_jiffies(AZBUSE_REMOVE_STALL_MS));
		return;
	}
	if (stuck)
		pr_warn("azbuse%u: a request has been with the workers for over %u ms during "
			"removal: failing their I/O\n",
			dev->id, READ_ONCE(remove_stuck_ms));
	else
		pr_warn("azbuse%u: workers made no progress for %u ms during removal: failing "
			"their I/O\n",
			dev->id, AZBUSE_REMOVE_STALL_MS);
	azbuse_dev_kill(dev);
}

/*
 * Tear a device down; the caller has set dev->removing and holds a reference.
 * A live disk is deleted first, while the workers still serve: del_gendisk
 * writes back what filesystems hold and waits for every request, so nothing
 * acknowledged is lost on a clean removal. The watchdog fails the requests of
 * workers that stall. Then the workers are told, the rest is failed, the tag
 * set freed and the char device removed.
 */
static void azbuse_dev_teardown(struct azbuse_dev *dev)
{
	bool was_live;

	dev->remove_progress = azbuse_progress(dev);
	schedule_delayed_work(&dev->remove_watchdog, msecs_to_jiffies(AZBUSE_REMOVE_STALL_MS));

	mutex_lock(&dev->lock);
	was_live = dev->state == AZBUSE_DEV_LIVE;
	WRITE_ONCE(dev->state, AZBUSE_DEV_DYING);
	mutex_unlock(&dev->lock);

	if (was_live)
		del_gendisk(dev->disk);
	cancel_delayed_work_sync(&dev->remove_watchdog);
	azbuse_dev_kill(dev);
	azbuse_free_disk_and_tags(dev);
	azbuse_cache_detach(dev);
	cdev_device_del(&dev->cdev, &dev->cdev_dev);
}

/*
 * Take a device out of the registry for removal; NULL if it is not there
 * (or, with want set, if the id is no longer want's).
 */
static struct azbuse_dev *azbuse_dev_claim_for_removal(u32 id, struct azbuse_dev *want, int *err)
{
	struct azbuse_dev *dev;

	mutex_lock(&azbuse_devs_lock);
	dev = idr_find(&azbuse_devs, id);
	if (want && dev != want)
		dev = NULL;
	if (!dev)
		*err = -ENOENT;
	else if (READ_ONCE(dev->removing))
		*err = -EBUSY;
	else
		WRITE_ONCE(dev->removing, true);
	if (dev && !*err)
		get_device(&dev->cdev_dev);
	mutex_unlock(&azbuse_devs_lock);
	return *err ? NULL : dev;
}

/* Remove a device claimed with dev->removing set and a reference held. */
static void azbuse_dev_remove_claimed(struct azbuse_dev *dev)
{
	azbuse_dev_teardown(dev);
	azbuse_release_id(dev->id);
	put_device(&dev->cdev_dev); /* the claim's */
	put_device(&dev->cdev_dev); /* the registry's */
}

int azbuse_dev_remove(u32 id)
{
	struct azbuse_dev *dev;
	int err = 0;

	dev = azbuse_dev_claim_for_removal(id, NULL, &err);
	if (!dev)
		return err;
	azbuse_dev_remove_claimed(dev);
	return 0;
}

/*
 * REMOVE with AZBUSE_REMOVE_IF_UNUSED, as dmsetup remove: refused while the
 * disk has an opener (a mount, a process, a partition's). The check and the
 * claim are made under the disk's open_mutex, so no open slips in between
 * (azbuse_bdev_open); lock order dev->lock, open_mutex, registry lock, as
 * START's add_disk. A START in progress (dev->lock held) counts as a use.
 */
int azbuse_dev_remove_unused(u32 id)
{
	struct azbuse_dev *dev = azbuse_dev_get(id), *claimed = NULL;
	struct gendisk *disk;
	int err = 0;

	if (!dev)
		return -ENOENT;
	if (!mutex_trylock(&dev->lock)) {
		azbuse_dev_put(dev);
		return -EBUSY;
	}
	disk = dev->state == AZBUSE_DEV_LIVE ? dev->disk : NULL;
	if (disk)
		mutex_lock(&disk->open_mutex);
	if (disk && disk_openers(disk))
		err = -EBUSY;
	else
		claimed = azbuse_dev_claim_for_removal(id, dev, &err); /* (its id, if reused: not) */
	if (disk)
		mutex_unlock(&disk->open_mutex);
	mutex_unlock(&dev->lock);
	azbuse_dev_put(dev);
	if (!claimed)
		return err;
	azbuse_dev_remove_claimed(claimed);
	return 0;
}

int azbuse_dev_get_info(struct azbuse_dev_info *info)
{
	struct azbuse_dev *dev = azbuse_dev_get(info->dev_id);

	if (!dev)
		return -ENOENT;
	/* no dev->lock: INFO must answer while START sits in add_disk */
	*info = dev->info;
	info->state = READ_ONCE(dev->state);
	azbuse_dev_put(dev);
	return 0;
}

int azbuse_dev_queue_info(struct azbuse_queue_info *qi)
{
	struct azbuse_dev *dev;
	int ret = 0;

	dev = azbuse_dev_get(qi->dev_id);
	if (!dev)
		return -ENOENT;
	if (qi->queue >= dev->nr_rings)
		ret = -EINVAL;
	else
		azbuse_ring_fill_info(&dev->rings[qi->queue], qi);
	azbuse_dev_put(dev);
	return ret;
}

int azbuse_dev_list(struct azbuse_dev_list *list)
{
	u32 __user *uids = u64_to_user_ptr(list->ids_ptr);
	struct azbuse_dev *dev;
	u32 *ids, n = 0;
	int id, ret = 0;

	if (memchr_inv(list->reserved, 0, sizeof(list->reserved)))
		return -EINVAL;
	if (list->capacity > AZBUSE_MAX_DEVICES)
		list->capacity = AZBUSE_MAX_DEVICES;
	ids = kcalloc(AZBUSE_MAX_DEVICES, sizeof(*ids), GFP_KERNEL);
	if (!ids)
		return -ENOMEM;
	mutex_lock(&azbuse_devs_lock);
	idr_for_each_entry (&azbuse_devs, dev, id)
		ids[n++] = id;
	mutex_unlock(&azbuse_devs_lock);
	list->count = n;
	if (list->capacity && copy_to_user(uids, ids, min(n, list->capacity) * sizeof(*ids)))
		ret = -EFAULT;
	kfree(ids);
	return ret;
}

/*
 * The control file that added devices is closed: remove those it never
 * started. Each is claimed under the registry lock, so the device removed is
 * the one that was found, whatever happens to its id meanwhile.
 */
void azbuse_dev_owner_gone(struct file *owner)
{
	struct azbuse_dev *dev, *found;
	bool claimed;
	int id;

	for (;;) {
		found = NULL;
		claimed = false;
		mutex_lock(&azbuse_devs_lock);
		idr_for_each_entry (&azbuse_devs, dev, id) {
			if (dev->owner_file != owner)
				continue;
			dev->owner_file = NULL; /* (not found again) */
			get_device(&dev->cdev_dev);
			if (READ_ONCE(dev->state) == AZBUSE_DEV_CREATED && !dev->removing) {
				WRITE_ONCE(dev->removing, true);
				claimed = true;
			}
			found = dev;
			break;
		}
		mutex_unlock(&azbuse_devs_lock);
		if (!found)
			return;
		/*
		 * Its cache went with it: the next supervisor's workers serve
		 * reads. (Outside the registry lock: a grace period and an unpin
		 * of the whole region, which every ctl ioctl would wait for.)
		 */
		azbuse_cache_detach(found);
		if (claimed)
			azbuse_dev_remove_claimed(found);
		else
			put_device(&found->cdev_dev);
	}
}

void azbuse_dev_remove_all(void)
{
	struct azbuse_dev *dev;
	int id;

	for (;;) {
		mutex_lock(&azbuse_devs_lock);
		id = 0;
		dev = idr_get_next(&azbuse_devs, &id);
		mutex_unlock(&azbuse_devs_lock);
		if (!dev)
			break;
		azbuse_dev_remove(id);
	}
}

int azbuse_dev_init(void)
{
	int ret;

	ret = register_blkdev(0, "azbuse");
	if (ret < 0)
		return ret;
	azbuse_major = ret;
	ret = alloc_chrdev_region(&azbuse_cdev_base, 0, AZBUSE_MAX_DEVICES, "azbusec");
	if (ret)
		goto out_unregister_blkdev;
	ret = class_register(&azbuse_class);
	if (ret)
		goto out_unregister_chrdev;
	return 0;

out_unregister_chrdev:
	unregister_chrdev_region(azbuse_cdev_base, AZBUSE_MAX_DEVICES);
out_unregister_blkdev:
	unregister_blkdev(azbuse_major, "azbuse");
	return ret;
}

void azbuse_dev_exit(void)
{
	azbuse_dev_remove_all();
	class_unregister(&azbuse_class);
	unregister_chrdev_region(azbuse_cdev_base, AZBUSE_MAX_DEVICES);
	unregister_blkdev(azbuse_major, "azbuse");
	idr_destroy(&azbuse_devs);
}
