// SPDX-License-Identifier: GPL-2.0
/*
 * azbuse_main.c - module entry points and /dev/azbusectl, the control device
 * through which root adds, starts, removes and inspects azbuse devices.
 */
#define pr_fmt(fmt) "azbuse: " fmt

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "azbuse_int.h"

static void azbuse_abi_checks(void)
{
#define AZBUSE_BUILD_CHECK(cond) BUILD_BUG_ON(!(cond))
	AZBUSE_ABI_CHECKS(AZBUSE_BUILD_CHECK);
#undef AZBUSE_BUILD_CHECK
}

static int azbuse_ctl_open(struct inode *inode, struct file *file)
{
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	return 0;
}

static int azbuse_ctl_release(struct inode *inode, struct file *file)
{
	azbuse_dev_owner_gone(file);
	return 0;
}

static long azbuse_ctl_version(void __user *uarg)
{
	struct azbuse_version v = {
		.abi_version = AZBUSE_ABI_VERSION,
		.max_devices = AZBUSE_MAX_DEVICES,
		.features = AZBUSE_F_ALL,
	};

	return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
}

static long azbuse_ctl_add(struct file *file, void __user *uarg)
{
	struct azbuse_dev_info info;
	int ret;

	if (copy_from_user(&info, uarg, sizeof(info)))
		return -EFAULT;
	ret = azbuse_dev_add(&info, file);
	if (ret)
		return ret;
	if (copy_to_user(uarg, &info, sizeof(info))) {
		azbuse_dev_remove(info.dev_id);
		return -EFAULT;
	}
	return 0;
}

static long azbuse_ctl_dev_cmd(struct file *file, unsigned int cmd, void __user *uarg)
{
	struct azbuse_dev_cmd c;

	if (copy_from_user(&c, uarg, sizeof(c)))
		return -EFAULT;
	if (memchr_inv(c.reserved, 0, sizeof(c.reserved)))
		return -EINVAL;
	if (c.flags & ~(cmd == AZBUSE_CTL_REMOVE ? AZBUSE_REMOVE_IF_UNUSED : 0))
		return -EINVAL;
	if (c.dev_id >= AZBUSE_MAX_DEVICES)
		return -ENOENT;
	switch (cmd) {
	case AZBUSE_CTL_START:
		return azbuse_dev_start(c.dev_id);
	case AZBUSE_CTL_TAKEOVER:
		return azbuse_dev_takeover(c.dev_id, file);
	default:
		if (c.flags & AZBUSE_REMOVE_IF_UNUSED)
			return azbuse_dev_remove_unused(c.dev_id);
		return azbuse_dev_remove(c.dev_id);
	}
}

static long azbuse_ctl_info(void __user *uarg)
{
	struct azbuse_dev_info info;
	int ret;

	if (copy_from_user(&info, uarg, sizeof(info)))
		return -EFAULT;
	if (info.dev_id >= AZBUSE_MAX_DEVICES)
		return -ENOENT;
	ret = azbuse_dev_get_info(&info);
	if (ret)
		return ret;
	return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long azbuse_ctl_list(void __user *uarg)
{
	struct azbuse_dev_list list;
	int ret;

	if (copy_from_user(&list, uarg, sizeof(list)))
		return -EFAULT;
	ret = azbuse_dev_list(&list);
	if (ret)
		return ret;
	return copy_to_user(uarg, &list, sizeof(list)) ? -EFAULT : 0;
}

static long azbuse_ctl_queue_info(void __user *uarg)
{
	struct azbuse_queue_info qi;
	int ret;

	if (copy_from_user(&qi, uarg, sizeof(qi)))
		return -EFAULT;
	if (qi.dev_id >= AZBUSE_MAX_DEVICES)
		return -ENOENT;
	ret = azbuse_dev_queue_info(&qi);
	if (ret)
		return ret;
	return copy_to_user(uarg, &qi, sizeof(qi)) ? -EFAULT : 0;
}

static long azbuse_ctl_cache_attach(void __user *uarg)
{
	struct azbuse_cache_attach a;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	return azbuse_cache_attach(&a);
}

static long azbuse_ctl_resize(void __user *uarg)
{
	struct azbuse_dev_resize r;

	if (copy_from_user(&r, uarg, sizeof(r)))
		return -EFAULT;
	if (r.flags || memchr_inv(r.reserved, 0, sizeof(r.reserved)))
		return -EINVAL;
	if (r.dev_id >= AZBUSE_MAX_DEVICES)
		return -ENOENT;
	return azbuse_dev_resize(r.dev_id, r.size_bytes);
}

static long azbuse_ctl_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	switch (cmd) {
	case AZBUSE_CTL_VERSION:
		return azbuse_ctl_version(uarg);
	case AZBUSE_CTL_ADD:
		return azbuse_ctl_add(file, uarg);
	case AZBUSE_CTL_START:
	case AZBUSE_CTL_REMOVE:
	case AZBUSE_CTL_TAKEOVER:
		return azbuse_ctl_dev_cmd(file, cmd, uarg);
	case AZBUSE_CTL_INFO:
		return azbuse_ctl_info(uarg);
	case AZBUSE_CTL_LIST:
		return azbuse_ctl_list(uarg);
	case AZBUSE_CTL_QUEUE_INFO:
		return azbuse_ctl_queue_info(uarg);
	case AZBUSE_CTL_CACHE_ATTACH:
		return azbuse_ctl_cache_attach(uarg);
	case AZBUSE_CTL_RESIZE:
		return azbuse_ctl_resize(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations azbuse_ctl_fops = {
	.owner = THIS_MODULE,
	.open = azbuse_ctl_open,
	.release = azbuse_ctl_release,
	.unlocked_ioctl = azbuse_ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice azbuse_ctl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "azbusectl",
	.fops = &azbuse_ctl_fops,
	.mode = 0600,
};

static int __init azbuse_init(void)
{
	int ret;

	azbuse_abi_checks();
	ret = azbuse_dev_init();
	if (ret)
		return ret;
	ret = misc_register(&azbuse_ctl_misc);
	if (ret) {
		azbuse_dev_exit();
		return ret;
	}
	pr_info("loaded, ABI version %u\n", AZBUSE_ABI_VERSION);
	return 0;
}

static void __exit azbuse_exit(void)
{
	/* close the entry point first, then tear down devices and shared state */
	misc_deregister(&azbuse_ctl_misc);
	azbuse_dev_exit();
}

module_init(azbuse_init);
module_exit(azbuse_exit);

MODULE_DESCRIPTION("azbuse: block devices served by userspace workers over mmaped rings");
MODULE_AUTHOR("azbuse developers");
MODULE_LICENSE("GPL");
MODULE_VERSION("0.1");
