// SPDX-License-Identifier: GPL-2.0
/*
 * azbuse_direct.c - the direct map (AZBUSE_F_DIRECT_MAP): the engine
 * publishes where each chunk of the device lives in a backing file or block
 * device, in memory it shares with the module, and the module serves reads
 * and overwrites of published chunks itself, without a round trip through a
 * worker. Everything else still goes to the rings.
 *
 * Two ways to the backing store:
 * - A block device (a raw pool's data device): queue_rq clones the
 *   request's bio onto it at the chunk's sector and submits it, in the
 *   submitter's context, as dm does (the tag set is BLK_MQ_F_BLOCKING, so
 *   queue_rq may sleep for the clone). No filesystem lies below, so nothing
 *   of the submitter's (a journal handle of ext4 above) can nest.
 * - A regular file: queue_rq only queues the request on its hardware
 *   queue's list; a kworker (one work item per hardware queue, on the
 *   device's workqueue) starts direct I/O on the file, as loop does: a
 *   filesystem's read or write must not run in the submitter's context,
 *   which may hold a journal handle or locks of the filesystem above.
 *
 * The map: a header page (struct azbuse_map_hdr), the engine's bytes, then
 * one 64-bit entry per chunk. Its pages are allocated when first touched,
 * by the engine's page faults or the module's header; a chunk whose page
 * was never touched is UNKNOWN. The pages are kept in an xarray, which the
 * submission path reads under RCU, and freed with the device.
 *
 * Grace: an I/O that found an entry holds the map's current phase (one of
 * two counters) until it ends. AZBUSE_IOC_MAP_SYNC flips the phase and
 * waits for the old counter to drain, so an engine that unpublished a chunk
 * and then syncs knows no I/O of the module still uses the old entry (the
 * two counters and the full barriers on both sides make every I/O either
 * counted in the old phase or started after the flip, when it sees the
 * unpublished entry).
 *
 * Backing files: one per ring for a sharded device (the ring that owns a
 * chunk names its file), else one. A worker sets its ring's once
 * (AZBUSE_IOC_SET_BACKING); the module holds the reference (and with it a
 * block device open) until the device is freed, so the submission path
 * reads the pointer without one.
 */
#define pr_fmt(fmt) "azbuse: " fmt

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/ioprio.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/xarray.h>

#include "azbuse_compat.h"
#include "azbuse_int.h"

#define AZBUSE_MAP_USER_MAX SZ_1M

/* For tests: hold each direct write this long before it starts (its entry already looked up). */
static unsigned int direct_write_delay_ms;
module_param(direct_write_delay_ms, uint, 0644);
MODULE_PARM_DESC(direct_write_delay_ms,
		 "testing only: delay each direct-map write this many ms after its lookup");
#define AZBUSE_MAP_MAX_CHUNKS (1ULL << 36)
/* entries looked at to send a request to its owner at once (past these: where submitted) */
#define AZBUSE_DIRECT_MAX_LOOKUPS 64
#define AZBUSE_MAP_PHYS_MASK ((1ULL << AZBUSE_MAP_PHYS_BITS) - 1)
#define AZBUSE_MAP_EPOCH_MASK ((1ULL << AZBUSE_MAP_EPOCH_BITS) - 1)

int azbuse_direct_validate(const struct azbuse_dev_info *info)
{
	u64 chunks, entries_offset;

	if (!(info->features & AZBUSE_F_DIRECT_MAP))
		return info->map_chunk_bytes || info->map_user_bytes ? -EINVAL : 0;
	if (!is_power_of_2(info->map_chunk_bytes) || info->map_chunk_bytes < PAGE_SIZE ||
	    info->map_chunk_bytes > SZ_1G || info->map_user_bytes > AZBUSE_MAP_USER_MAX)
		return -EINVAL;
	/* a chunk's backing file is its shard's: a chunk lies within one shard */
	if ((info->features & AZBUSE_F_SHARDED) &&
	    info->map_chunk_bytes > ((u64)info->chunk_sectors << SECTOR_SHIFT))
		return -EINVAL;
	chunks = DIV_ROUND_UP_ULL(info->size_bytes, info->map_chunk_bytes);
	entries_offset = PAGE_ALIGN(sizeof(struct azbuse_map_hdr) + info->map_user_bytes);
	if (chunks > AZBUSE_MAP_MAX_CHUNKS || entries_offset > U32_MAX)
		return -EINVAL;
	return 0;
}

/* The map's page at index, allocated (zeroed) if it has none yet; NULL without memory. */
static struct page *azbuse_map_page(struct azbuse_dev *dev, pgoff_t index)
{
	struct page *page = xa_load(&dev->map_pages, index), *old;

	if (page)
		return page;
	page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	if (!page)
		return NULL;
	old = xa_cmpxchg(&dev->map_pages, index, NULL, page, GFP_KERNEL);
	if (!old)
		return page;
	__free_page(page);
	return xa_is_err(old) ? NULL : old;
}

static void azbuse_direct_work(struct work_struct *work);

int azbuse_direct_init(struct azbuse_dev *dev)
{
	const struct azbuse_dev_info *info = &dev->info;
	struct azbuse_map_hdr *hdr;
	struct page *page;
	u32 i;

	if (!(info->features & AZBUSE_F_DIRECT_MAP))
		return 0;
	xa_init(&dev->map_pages);
	init_waitqueue_head(&dev->map_wq);
	mutex_init(&dev->map_sync_mutex);
	spin_lock_init(&dev->backing_lock);
	atomic_set(&dev->map_users[0], 0);
	atomic_set(&dev->map_users[1], 0);
	dev->map_chunk_shift = ilog2(info->map_chunk_bytes);
	dev->map_nr_chunks = DIV_ROUND_UP_ULL(info->size_bytes, info->map_chunk_bytes);
	dev->map_entries_offset = PAGE_ALIGN(sizeof(*hdr) + info->map_user_bytes);
	dev->map_bytes = PAGE_ALIGN(dev->map_entries_offset + dev->map_nr_chunks * sizeof(u64));
	dev->backing = kcalloc(info->nr_queues, sizeof(*dev->backing), GFP_KERNEL);
	dev->direct_queues = kcalloc(info->nr_hw_queues, sizeof(*dev->direct_queues), GFP_KERNEL);
	dev->direct_wq = alloc_workqueue("azbuse%u_direct", WQ_MEM_RECLAIM, 0, dev->id);
	if (!dev->backing || !dev->direct_queues || !dev->direct_wq)
		goto out_free;
	if (bioset_init(&dev->direct_bioset, BIO_POOL_SIZE, 0, 0))
		goto out_free;
	for (i = 0; i < info->nr_hw_queues; i++) {
		spin_lock_init(&dev->direct_queues[i].lock);
		INIT_LIST_HEAD(&dev->direct_queues[i].list);
		INIT_WORK(&dev->direct_queues[i].work, azbuse_direct_work);
	}
	dev->direct_map = true; /* from here on azbuse_direct_free() undoes it */
	page = azbuse_map_page(dev, 0);
	if (!page)
		return -ENOMEM;
	hdr = page_address(page);
	hdr->nr_chunks = dev->map_nr_chunks;
	hdr->chunk_bytes = info->map_chunk_bytes;
	hdr->entries_offset = dev->map_entries_offset;
	hdr->region_bytes = dev->map_bytes;
	hdr->user_offset = sizeof(*hdr);
	hdr->user_bytes = info->map_user_bytes;
	return 0;

out_free:
	if (dev->direct_wq)
		destroy_workqueue(dev->direct_wq);
	kfree(dev->direct_queues);
	kfree(dev->backing);
	return -ENOMEM;
}

void azbuse_direct_free(struct azbuse_dev *dev)
{
	struct page *page;
	unsigned long index;
	u32 i;

	if (!dev->direct_map)
		return;
	/* no request is left (the disk is gone), so no work or bio is in flight */
	destroy_workqueue(dev->direct_wq);
	bioset_exit(&dev->direct_bioset);
	kfree(dev->direct_queues);
	xa_for_each(&dev->map_pages, index, page) put_page(page);
	xa_destroy(&dev->map_pages);
	for (i = 0; i < dev->info.nr_queues; i++)
		if (dev->backing[i])
			fput(dev->backing[i]);
	kfree(dev->backing);
	dev->backing = NULL;
	mutex_destroy(&dev->map_sync_mutex);
	dev->direct_map = false;
}

/* ---- the engine's mapping of the map ---- */

static vm_fault_t azbuse_map_fault(struct vm_fault *vmf)
{
	struct azbuse_dev *dev = vmf->vma->vm_private_data;
	pgoff_t index = vmf->pgoff - (AZBUSE_MMAP_MAP_OFF >> PAGE_SHIFT);
	struct page *page;

	if (index >= dev->map_bytes >> PAGE_SHIFT)
		return VM_FAULT_SIGBUS;
	page = azbuse_map_page(dev, index);
	if (!page)
		return VM_FAULT_OOM;
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct azbuse_map_vm_ops = {
	.fault = azbuse_map_fault,
};

/* mmap at AZBUSE_MMAP_MAP_OFF: the whole map, shared (the vma's file keeps dev alive). */
int azbuse_direct_mmap(struct azbuse_dev *dev, struct vm_area_struct *vma)
{
	if (!dev->direct_map || vma->vm_end - vma->vm_start > dev->map_bytes ||
	    !(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	azbuse_vma_set_flags(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY);
	vma->vm_ops = &azbuse_map_vm_ops;
	vma->vm_private_data = dev;
	return 0;
}

/* ---- ioctls of an attached worker ---- */

/* The backing file slot of the chunks that ring owns. */
static u32 azbuse_backing_slot(struct azbuse_dev *dev, u32 ring)
{
	return dev->sharded ? ring : 0;
}

/* The block device of a block-device backing, or NULL (a regular file). */
static struct block_device *azbuse_backing_bdev(struct file *file)
{
	struct inode *inode = file->f_mapping->host;

	return S_ISBLK(inode->i_mode) ? I_BDEV(inode) : NULL;
}

/* What direct I/O to a regular file must be aligned to (its filesystem's disk's sector). */
static u32 azbuse_file_dio_align(struct file *file)
{
	struct super_block *sb = file_inode(file)->i_sb;
	struct kstat st = {};

	if (!vfs_getattr(&file->f_path, &st, STATX_DIOALIGN, AT_STATX_SYNC_AS_STAT) &&
	    (st.result_mask & STATX_DIOALIGN) && st.dio_offset_align)
		return st.dio_offset_align;
	return sb->s_bdev ? bdev_logical_block_size(sb->s_bdev) : SECTOR_SIZE;
}

/*
 * A regular file with direct I/O or a block device that is not this one,
 * either taking this device's blocks (a 512-byte write to a file on a disk
 * of 4 KiB sectors would fail), open for what the device does.
 */
static bool azbuse_backing_usable(struct azbuse_dev *dev, struct file *file, bool writable)
{
	umode_t mode = file_inode(file)->i_mode;
	struct block_device *bdev;

	if (!(file->f_mode & FMODE_READ) || (writable && !(file->f_mode & FMODE_WRITE)))
		return false;
	if (S_ISREG(mode))
		return (file->f_mode & FMODE_CAN_ODIRECT) && file->f_op->read_iter &&
		       file->f_op->write_iter &&
		       azbuse_file_dio_align(file) <= dev->info.logical_block_size;
	if (!S_ISBLK(mode))
		return false;
	bdev = azbuse_backing_bdev(file);
	return bdev->bd_disk != dev->disk &&
	       bdev_logical_block_size(bdev) <= dev->info.logical_block_size;
}

long azbuse_direct_set_backing(struct azbuse_ring *ring, struct azbuse_backing __user *uarg)
{
	struct azbuse_dev *dev = ring->dev;
	u32 slot = azbuse_backing_slot(dev, ring->index);
	bool writable = !(dev->info.features & AZBUSE_F_READ_ONLY);
	struct azbuse_backing b;
	struct file *file;
	long ret = 0;

	if (!dev->direct_map)
		return -EOPNOTSUPP;
	if (copy_from_user(&b, uarg, sizeof(b)))
		return -EFAULT;
	if (b.flags || memchr_inv(b.reserved, 0, sizeof(b.reserved)))
		return -EINVAL;
	file = fget(b.fd);
	if (!file)
		return -EBADF;
	if (!azbuse_backing_usable(dev, file, writable)) {
		fput(file);
		return -EINVAL;
	}
	spin_lock(&dev->backing_lock);
	if (!dev->backing[slot]) {
		/* the submission path reads it without the lock */
		smp_store_release(&dev->backing[slot], file);
		file = NULL;
	} else if (file_inode(dev->backing[slot]) != file_inode(file)) {
		ret = -EBUSY;
	}
	spin_unlock(&dev->backing_lock);
	if (file)
		fput(file);
	return ret;
}

static unsigned int azbuse_map_enter(struct azbuse_dev *dev)
{
	unsigned int phase;

	for (;;) {
		phase = READ_ONCE(dev->map_phase) & 1;
		atomic_inc(&dev->map_users[phase]);
		/* pairs with the barrier after the flip in azbuse_direct_sync() */
		smp_mb__after_atomic();
		if ((READ_ONCE(dev->map_phase) & 1) == phase)
			return phase;
		if (atomic_dec_and_test(&dev->map_users[phase]) && wq_has_sleeper(&dev->map_wq))
			wake_up(&dev->map_wq);
	}
}

static void azbuse_map_exit(struct azbuse_dev *dev, unsigned int phase)
{
	if (atomic_dec_and_test(&dev->map_users[phase]) && wq_has_sleeper(&dev->map_wq))
		wake_up(&dev->map_wq);
}

long azbuse_direct_sync(struct azbuse_dev *dev)
{
	unsigned int old;
	long ret = 0;

	if (!dev->direct_map)
		return -EOPNOTSUPP;
	if (mutex_lock_killable(&dev->map_sync_mutex))
		return -EINTR;
	old = dev->map_phase & 1;
	/*
	 * A sync killed in its wait (a worker SIGKILLed there) left the phase
	 * flipped with I/O still counted in the other one: the flip below
	 * would hand that phase to new I/O and this sync would not wait for
	 * the old. Such I/O ends first.
	 */
	if (wait_event_killable(dev->map_wq, !atomic_read(&dev->map_users[old ^ 1]))) {
		ret = -EINTR;
		goto out;
	}
	WRITE_ONCE(dev->map_phase, old ^ 1);
	/* the flip before the count: see azbuse_map_enter() */
	smp_mb();
	if (wait_event_killable(dev->map_wq, !atomic_read(&dev->map_users[old])))
		ret = -EINTR;
out:
	mutex_unlock(&dev->map_sync_mutex);
	return ret;
}

/* ---- the submission path ---- */

/* A chunk's entry (UNKNOWN where its page was never touched). */
static u64 azbuse_map_entry(struct azbuse_dev *dev, u64 chunk)
{
	u64 off = dev->map_entries_offset + chunk * sizeof(u64);
	struct page *page = xa_load(&dev->map_pages, off >> PAGE_SHIFT);

	if (!page)
		return 0;
	return READ_ONCE(*(u64 *)((char *)page_address(page) + offset_in_page(off)));
}

static u64 azbuse_map_epoch(struct azbuse_dev *dev)
{
	struct page *page = xa_load(&dev->map_pages, 0);
	struct azbuse_map_hdr *hdr = page_address(page);

	return READ_ONCE(hdr->epoch);
}

/* Whether the entry lets the module serve this op itself. */
static bool azbuse_entry_serves(struct azbuse_dev *dev, u64 entry, bool write)
{
	u64 kind = entry >> AZBUSE_MAP_KIND_SHIFT;

	if (!write)
		return kind != AZBUSE_MAP_UNKNOWN;
	return kind == AZBUSE_MAP_OWNED &&
	       ((entry >> AZBUSE_MAP_EPOCH_SHIFT) & AZBUSE_MAP_EPOCH_MASK) ==
		       (azbuse_map_epoch(dev) & AZBUSE_MAP_EPOCH_MASK);
}

/* An entry whose chunk lies past what a file offset can hold (the engine's bug): not served. */
static bool azbuse_entry_out_of_range(struct azbuse_dev *dev, u64 entry)
{
	return (entry & AZBUSE_MAP_PHYS_MASK) >> (62 - dev->map_chunk_shift);
}

/* The last reference (the submission or the I/O's completion) ends the request. */
static void azbuse_direct_put(struct azbuse_direct_cmd *cmd)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);
	struct azbuse_dev *dev = rq->q->queuedata;
	blk_status_t status = BLK_STS_OK;

	if (!atomic_dec_and_test(&cmd->ref))
		return;
	if (cmd->result != blk_rq_bytes(rq)) {
		pr_warn_ratelimited("azbuse%u: direct %s of %u bytes at %llu: %ld\n", dev->id,
				    req_op(rq) == REQ_OP_WRITE ? "write" : "read", blk_rq_bytes(rq),
				    (unsigned long long)blk_rq_pos(rq) << SECTOR_SHIFT,
				    cmd->result);
		status = cmd->result == -ENOSPC ? BLK_STS_NOSPC : BLK_STS_IOERR;
	}
	WRITE_ONCE(cmd->active, false);
	azbuse_map_exit(dev, cmd->phase);
	blk_mq_end_request(rq, status);
}

static void azbuse_direct_complete(struct kiocb *iocb, long ret)
{
	struct azbuse_direct_cmd *cmd = container_of(iocb, struct azbuse_direct_cmd, iocb);

	cmd->result = ret;
	azbuse_direct_put(cmd);
}

/* Start the direct I/O of a started request at byte pos of file. */
static void azbuse_direct_issue(struct azbuse_direct_cmd *cmd, struct request *rq,
				struct file *file, loff_t pos)
{
	bool write = req_op(rq) == REQ_OP_WRITE;
	struct bio *bio = rq->bio;
	struct req_iterator rq_iter;
	struct iov_iter iter;
	struct bio_vec tmp;
	unsigned int nr_bvec = 0;
	ssize_t ret;

	rq_for_each_bvec(tmp, rq, rq_iter) nr_bvec++;
	/* the bio may start inside its first bvec (a split): pass the offset on */
	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST,
		      __bvec_iter_bvec(bio->bi_io_vec, bio->bi_iter), nr_bvec, blk_rq_bytes(rq));
	iter.iov_offset = azbuse_bvec_iter_done(bio->bi_iter);

	memset(&cmd->iocb, 0, sizeof(cmd->iocb));
	cmd->iocb.ki_filp = file;
	cmd->iocb.ki_pos = pos;
	cmd->iocb.ki_complete = azbuse_direct_complete;
	cmd->iocb.ki_flags = IOCB_DIRECT;
	cmd->iocb.ki_ioprio = IOPRIO_PRIO_VALUE(IOPRIO_CLASS_NONE, 0);
	/* one reference for this function, one for the completion, which may come first */
	atomic_set(&cmd->ref, 2);
	if (write)
		ret = file->f_op->write_iter(&cmd->iocb, &iter);
	else
		ret = file->f_op->read_iter(&cmd->iocb, &iter);
	azbuse_direct_put(cmd);
	if (ret != -EIOCBQUEUED)
		azbuse_direct_complete(&cmd->iocb, ret);
}

static void azbuse_direct_bio_end(struct bio *clone)
{
	struct azbuse_direct_cmd *cmd = clone->bi_private;
	struct request *rq = blk_mq_rq_from_pdu(cmd);

	cmd->result = clone->bi_status ? blk_status_to_errno(clone->bi_status) : blk_rq_bytes(rq);
	bio_put(clone);
	azbuse_direct_put(cmd);
}

/*
 * Submit a bio under a plug of its own. queue_rq may run while the
 * submitter's plug is flushed (blk_finish_plug), with that plug still
 * current: a blk-mq backing would add its request to a plug whose flush has
 * passed it, and issue it under this device's dispatch lock rather than its
 * own. The submitter's plug is put back as it was, with its time flag (the
 * scheduler forgets a plug's time only while the flag is set).
 */
static void azbuse_submit_own_plug(struct bio *bio)
{
	struct blk_plug *outer = current->plug, plug;
	bool timed = azbuse_plug_timed();

	current->plug = NULL;
	blk_start_plug(&plug);
	submit_bio_noacct(bio);
	blk_finish_plug(&plug);
	current->plug = outer;
	azbuse_plug_set_timed(timed);
}

/* Send a started request's bio to a block-device backing at byte pos. */
static void azbuse_direct_remap(struct azbuse_dev *dev, struct azbuse_direct_cmd *cmd,
				struct request *rq, struct block_device *bdev, loff_t pos)
{
	struct bio *clone;

	/* the bioset's mempool: with GFP_NOIO this waits rather than fails */
	clone = bio_alloc_clone(bdev, rq->bio, GFP_NOIO, &dev->direct_bioset);
	atomic_set(&cmd->ref, 1);
	if (!clone) {
		cmd->result = -ENOMEM;
		azbuse_direct_put(cmd);
		return;
	}
	clone->bi_iter.bi_sector = pos >> SECTOR_SHIFT;
	/* the backing may wait for its resources: the submitter's NOWAIT was for this device */
	clone->bi_opf &= ~REQ_NOWAIT;
	clone->bi_end_io = azbuse_direct_bio_end;
	clone->bi_private = cmd;
	azbuse_submit_own_plug(clone);
}

/* A hardware queue's kworker: start the direct I/O of every request queued so far. */
static void azbuse_direct_work(struct work_struct *work)
{
	struct azbuse_direct_queue *dq = container_of(work, struct azbuse_direct_queue, work);
	struct azbuse_direct_cmd *cmd;
	struct blk_plug plug;
	struct request *rq;
	LIST_HEAD(list);

	spin_lock(&dq->lock);
	list_splice_init(&dq->list, &list);
	spin_unlock(&dq->lock);
	blk_start_plug(&plug);
	while (!list_empty(&list)) {
		rq = list_first_entry(&list, struct request, queuelist);
		list_del_init(&rq->queuelist);
		cmd = blk_mq_rq_to_pdu(rq);
		if (req_op(rq) == REQ_OP_WRITE && READ_ONCE(direct_write_delay_ms))
			msleep(READ_ONCE(direct_write_delay_ms));
		azbuse_direct_issue(cmd, rq, cmd->file, cmd->pos);
		cond_resched();
	}
	blk_finish_plug(&plug);
}

/*
 * queue_rq: serve a READ or WRITE from the map if its entry allows (TAKEN:
 * ended or on its way; only one bio within one chunk, without FUA or
 * PREFLUSH). OWNER: an entry says only the chunk's owner can serve it (a
 * write of a chunk not owned in the current epoch, a read of an unknown
 * one), so a sharded device posts it to the owner's ring at once instead of
 * to the submitting queue's (a request lies within one shard's stripe). NO:
 * the rings as usual (the submitting queue's worker may serve it from the
 * map).
 */
enum azbuse_direct_verdict azbuse_direct_try(struct azbuse_dev *dev, struct blk_mq_hw_ctx *hctx,
					     struct request *rq)
{
	struct azbuse_direct_cmd *cmd = blk_mq_rq_to_pdu(rq);
	bool write = req_op(rq) == REQ_OP_WRITE;
	struct azbuse_direct_queue *dq;
	struct block_device *bdev;
	u64 pos = blk_rq_pos(rq) << SECTOR_SHIFT, first, last, chunk, entry = 0;
	u32 len = blk_rq_bytes(rq), slot = 0;
	struct azbuse_ring *ring;
	struct file *file;
	unsigned int phase;

	WRITE_ONCE(cmd->active, false);
	if ((!write && req_op(rq) != REQ_OP_READ) || !len)
		return AZBUSE_DIRECT_NO;
	first = pos >> dev->map_chunk_shift;
	last = (pos + len - 1) >> dev->map_chunk_shift;
	if (last >= dev->map_nr_chunks)
		return AZBUSE_DIRECT_NO;
	phase = azbuse_map_enter(dev);
	for (chunk = first; chunk <= last && chunk - first < AZBUSE_DIRECT_MAX_LOOKUPS; chunk++) {
		entry = azbuse_map_entry(dev, chunk);
		if (!azbuse_entry_serves(dev, entry, write)) {
			azbuse_map_exit(dev, phase);
			return AZBUSE_DIRECT_OWNER;
		}
	}
	/* the module's own I/O: one chunk, one bio, no FUA or PREFLUSH, a backing file */
	if (dev->sharded)
		div_u64_rem(blk_rq_pos(rq) >> dev->chunk_shift, dev->nr_rings, &slot);
	file = smp_load_acquire(&dev->backing[slot]);
	if (!file || first != last || (rq->cmd_flags & (REQ_FUA | REQ_PREFLUSH)) || !rq->bio ||
	    rq->bio != rq->biotail || azbuse_entry_out_of_range(dev, entry)) {
		azbuse_map_exit(dev, phase);
		return AZBUSE_DIRECT_NO;
	}
	ring = dev->sharded ? &dev->rings[hctx->queue_num % dev->nr_rings] : hctx->driver_data;
	atomic64_inc(&ring->direct);
	cmd->phase = phase;
	WRITE_ONCE(cmd->active, true);
	blk_mq_start_request(rq);
	if ((entry >> AZBUSE_MAP_KIND_SHIFT) == AZBUSE_MAP_ZERO) {
		azbuse_zero_rq(rq);
		cmd->result = len;
		atomic_set(&cmd->ref, 1);
		azbuse_direct_put(cmd);
		return AZBUSE_DIRECT_TAKEN;
	}
	cmd->file = file;
	cmd->pos = ((entry & AZBUSE_MAP_PHYS_MASK) << dev->map_chunk_shift) +
		   (pos & (dev->info.map_chunk_bytes - 1));
	bdev = azbuse_backing_bdev(file);
	if (bdev) {
		if (write && READ_ONCE(direct_write_delay_ms))
			msleep(READ_ONCE(direct_write_delay_ms));
		azbuse_direct_remap(dev, cmd, rq, bdev, cmd->pos);
		return AZBUSE_DIRECT_TAKEN;
	}
	dq = &dev->direct_queues[hctx->queue_num];
	spin_lock(&dq->lock);
	list_add_tail(&rq->queuelist, &dq->list);
	spin_unlock(&dq->lock);
	/* the kworker starts once per batch (azbuse_direct_kick), like a ring's wake-up */
	return AZBUSE_DIRECT_TAKEN;
}

/* The batch's last request (or commit_rqs): start the kworker on what the batch queued. */
void azbuse_direct_kick(struct azbuse_dev *dev, struct blk_mq_hw_ctx *hctx)
{
	struct azbuse_direct_queue *dq = &dev->direct_queues[hctx->queue_num];
	bool queued;

	spin_lock(&dq->lock);
	queued = !list_empty(&dq->list);
	spin_unlock(&dq->lock);
	if (queued)
		queue_work(dev->direct_wq, &dq->work);
}

/* Is rq's I/O the module's own (the timeout handler leaves it to the backing file)? */
bool azbuse_direct_active(struct azbuse_dev *dev, struct request *rq)
{
	return dev->direct_map &&
	       READ_ONCE(((struct azbuse_direct_cmd *)blk_mq_rq_to_pdu(rq))->active);
}
