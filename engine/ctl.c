// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * ctl.c - thin wrappers around the /dev/azbusectl ioctls, returning
 * 0 or -errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <azbuse/azbuse.h>

#define C(cond) _Static_assert(cond, #cond)
AZBUSE_ABI_CHECKS(C);
#undef C

static int azb_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

int azbuse_ctl_open(void)
{
	int fd = open(AZBUSE_CTL_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int azbuse_ctl_version(int ctl, struct azbuse_version *v)
{
	memset(v, 0, sizeof(*v));
	return azb_ioctl(ctl, AZBUSE_CTL_VERSION, v);
}

int azbuse_ctl_add(int ctl, struct azbuse_dev_info *info)
{
	return azb_ioctl(ctl, AZBUSE_CTL_ADD, info);
}

static int azb_dev_cmd(int ctl, unsigned long cmd, uint32_t dev_id, uint32_t flags)
{
	struct azbuse_dev_cmd c;

	memset(&c, 0, sizeof(c));
	c.dev_id = dev_id;
	c.flags = flags;
	return azb_ioctl(ctl, cmd, &c);
}

int azbuse_ctl_start(int ctl, uint32_t dev_id)
{
	return azb_dev_cmd(ctl, AZBUSE_CTL_START, dev_id, 0);
}

int azbuse_ctl_takeover(int ctl, uint32_t dev_id)
{
	return azb_dev_cmd(ctl, AZBUSE_CTL_TAKEOVER, dev_id, 0);
}

int azbuse_ctl_cache_attach(int ctl, uint32_t dev_id, void *addr, uint64_t len)
{
	struct azbuse_cache_attach a = { .dev_id = dev_id, .addr = (uintptr_t)addr, .len = len };

	return azb_ioctl(ctl, AZBUSE_CTL_CACHE_ATTACH, &a);
}

int azbuse_ctl_resize(int ctl, uint32_t dev_id, uint64_t size_bytes)
{
	struct azbuse_dev_resize r = { .dev_id = dev_id, .size_bytes = size_bytes };

	return azb_ioctl(ctl, AZBUSE_CTL_RESIZE, &r);
}

int azbuse_ctl_remove(int ctl, uint32_t dev_id)
{
	return azb_dev_cmd(ctl, AZBUSE_CTL_REMOVE, dev_id, 0);
}

int azbuse_ctl_remove_unused(int ctl, uint32_t dev_id)
{
	return azb_dev_cmd(ctl, AZBUSE_CTL_REMOVE, dev_id, AZBUSE_REMOVE_IF_UNUSED);
}

int azbuse_ctl_info(int ctl, uint32_t dev_id, struct azbuse_dev_info *info)
{
	memset(info, 0, sizeof(*info));
	info->dev_id = dev_id;
	return azb_ioctl(ctl, AZBUSE_CTL_INFO, info);
}

int azbuse_ctl_queue_info(int ctl, uint32_t dev_id, uint16_t queue, struct azbuse_queue_info *qi)
{
	memset(qi, 0, sizeof(*qi));
	qi->dev_id = dev_id;
	qi->queue = queue;
	return azb_ioctl(ctl, AZBUSE_CTL_QUEUE_INFO, qi);
}

int azbuse_ctl_list(int ctl, uint32_t *ids, uint32_t capacity)
{
	struct azbuse_dev_list l;
	int ret;

	memset(&l, 0, sizeof(l));
	l.ids_ptr = (uintptr_t)ids;
	l.capacity = capacity;
	ret = azb_ioctl(ctl, AZBUSE_CTL_LIST, &l);
	return ret < 0 ? ret : (int)l.count;
}
