// SPDX-License-Identifier: GPL-2.0
/*
 * A dma-buf importer for tests: see vela_test_importer.h for what it offers.
 *
 * It is C on purpose: it stands for the C importers (RDMA, V4L2, shmem-based DRM drivers)
 * whose use of an exporter it checks, calling the dma-buf API exactly as they do.
 */
#include <linux/device/faux.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/fs.h>
#include <linux/iosys-map.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vela_test_importer.h"

/* The largest VTI_IOC_RW, so a bounce buffer stays small. */
#define VTI_RW_MAX (16u << 20)

struct vti_slot_state {
	struct dma_buf *dmabuf;
	struct dma_buf_attachment *attach;
	bool dynamic;
	/* Under the reservation lock when dynamic, else under the file's lock. */
	struct sg_table *sgt;
	u64 invalidations;
	/* Under the file's lock. */
	struct iosys_map map;
	bool vmapped;
};

struct vti_file {
	struct mutex lock;
	struct vti_slot_state slots[VTI_SLOTS];
};

static struct faux_device *vti_fdev;

/* Called with the reservation lock held; the mapping must go in bounded time: now. */
static void vti_invalidate(struct dma_buf_attachment *attach)
{
	struct vti_slot_state *s = attach->importer_priv;

	if (s->sgt) {
		dma_buf_unmap_attachment(attach, s->sgt, DMA_BIDIRECTIONAL);
		s->sgt = NULL;
	}
	s->invalidations++;
}

static const struct dma_buf_attach_ops vti_attach_ops = {
	.allow_peer2peer = false,
	.invalidate_mappings = vti_invalidate,
};

static void vti_unmap(struct vti_slot_state *s)
{
	if (!s->attach)
		return;
	if (s->dynamic) {
		dma_resv_lock(s->dmabuf->resv, NULL);
		if (s->sgt)
			dma_buf_unmap_attachment(s->attach, s->sgt, DMA_BIDIRECTIONAL);
		s->sgt = NULL;
		dma_resv_unlock(s->dmabuf->resv);
	} else if (s->sgt) {
		dma_buf_unmap_attachment_unlocked(s->attach, s->sgt, DMA_BIDIRECTIONAL);
		s->sgt = NULL;
	}
}

static void vti_release_slot(struct vti_slot_state *s)
{
	if (!s->dmabuf)
		return;
	if (s->vmapped)
		dma_buf_vunmap_unlocked(s->dmabuf, &s->map);
	vti_unmap(s);
	if (s->attach)
		dma_buf_detach(s->dmabuf, s->attach);
	dma_buf_put(s->dmabuf);
	memset(s, 0, sizeof(*s));
}

static struct vti_slot_state *vti_get(struct vti_file *f, u32 slot)
{
	if (slot >= VTI_SLOTS || !f->slots[slot].dmabuf)
		return NULL;
	return &f->slots[slot];
}

static int vti_open_slot(struct vti_file *f, struct vti_open *a)
{
	struct vti_slot_state *s = NULL;
	struct dma_buf *dmabuf;
	u32 i;

	if (a->pad || a->flags & ~(VTI_ATTACH_STATIC | VTI_ATTACH_DYNAMIC) ||
	    a->flags == (VTI_ATTACH_STATIC | VTI_ATTACH_DYNAMIC))
		return -EINVAL;
	for (i = 0; i < VTI_SLOTS; i++) {
		if (!f->slots[i].dmabuf) {
			s = &f->slots[i];
			break;
		}
	}
	if (!s)
		return -ENOSPC;
	dmabuf = dma_buf_get(a->fd);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	s->dmabuf = dmabuf;
	s->dynamic = a->flags & VTI_ATTACH_DYNAMIC;
	if (a->flags) {
		struct dma_buf_attachment *attach;

		if (s->dynamic)
			attach = dma_buf_dynamic_attach(dmabuf, &vti_fdev->dev, &vti_attach_ops, s);
		else
			attach = dma_buf_attach(dmabuf, &vti_fdev->dev);
		if (IS_ERR(attach)) {
			dma_buf_put(dmabuf);
			memset(s, 0, sizeof(*s));
			return PTR_ERR(attach);
		}
		s->attach = attach;
	}
	a->slot = i;
	return 0;
}

static int vti_map(struct vti_file *f, struct vti_map *a)
{
	struct vti_slot_state *s = vti_get(f, a->slot);
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned int i;
	int ret = 0;

	if (!s || a->pad)
		return -EINVAL;
	if (!s->attach)
		return -ENOTCONN;
	if (s->dynamic)
		dma_resv_lock(s->dmabuf->resv, NULL);
	if (s->sgt) {
		ret = -EBUSY;
		goto out;
	}
	if (s->dynamic)
		sgt = dma_buf_map_attachment(s->attach, DMA_BIDIRECTIONAL);
	else
		sgt = dma_buf_map_attachment_unlocked(s->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto out;
	}
	s->sgt = sgt;
	a->bytes = 0;
	a->nents = sgt->nents;
	for_each_sgtable_dma_sg(sgt, sg, i)
		a->bytes += sg_dma_len(sg);
out:
	if (s->dynamic)
		dma_resv_unlock(s->dmabuf->resv);
	return ret;
}

static int vti_status(struct vti_file *f, struct vti_status *a)
{
	struct vti_slot_state *s = vti_get(f, a->slot);

	if (!s || a->pad)
		return -EINVAL;
	if (s->dynamic)
		dma_resv_lock(s->dmabuf->resv, NULL);
	a->mapped = !!s->sgt;
	a->invalidations = s->invalidations;
	if (s->dynamic)
		dma_resv_unlock(s->dmabuf->resv);
	a->vmapped = s->vmapped;
	return 0;
}

static int vti_rw(struct vti_file *f, struct vti_rw *a)
{
	struct vti_slot_state *s = vti_get(f, a->slot);
	void __user *u = u64_to_user_ptr(a->ptr);
	u64 end;
	void *bounce;
	int ret = 0;

	if (!s || a->flags & ~VTI_RW_WRITE)
		return -EINVAL;
	if (!s->vmapped)
		return -ENOTCONN;
	if (!a->len || a->len > VTI_RW_MAX || check_add_overflow(a->offset, a->len, &end) ||
	    end > s->dmabuf->size)
		return -EINVAL;
	bounce = kvmalloc(a->len, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	if (a->flags & VTI_RW_WRITE) {
		if (copy_from_user(bounce, u, a->len))
			ret = -EFAULT;
		else
			iosys_map_memcpy_to(&s->map, a->offset, bounce, a->len);
	} else {
		iosys_map_memcpy_from(bounce, &s->map, a->offset, a->len);
		if (copy_to_user(u, bounce, a->len))
			ret = -EFAULT;
	}
	kvfree(bounce);
	return ret;
}

static long vti_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct vti_file *f = file->private_data;
	void __user *uarg = (void __user *)arg;
	union {
		struct vti_open open;
		struct vti_map map;
		struct vti_slot slot;
		struct vti_status status;
		struct vti_rw rw;
	} a;
	struct vti_slot_state *s;
	unsigned int size = _IOC_SIZE(cmd);
	long ret;

	switch (cmd) {
	case VTI_IOC_OPEN:
	case VTI_IOC_CLOSE:
	case VTI_IOC_MAP:
	case VTI_IOC_UNMAP:
	case VTI_IOC_STATUS:
	case VTI_IOC_VMAP:
	case VTI_IOC_VUNMAP:
	case VTI_IOC_RW:
		break;
	default:
		return -ENOTTY;
	}
	if (size > sizeof(a) || copy_from_user(&a, uarg, size))
		return -EFAULT;

	mutex_lock(&f->lock);
	switch (cmd) {
	case VTI_IOC_OPEN:
		ret = vti_open_slot(f, &a.open);
		break;
	case VTI_IOC_MAP:
		ret = vti_map(f, &a.map);
		break;
	case VTI_IOC_STATUS:
		ret = vti_status(f, &a.status);
		break;
	case VTI_IOC_RW:
		ret = vti_rw(f, &a.rw);
		break;
	default:
		s = vti_get(f, a.slot.slot);
		ret = 0;
		if (!s || a.slot.pad) {
			ret = -EINVAL;
		} else if (cmd == VTI_IOC_CLOSE) {
			vti_release_slot(s);
		} else if (cmd == VTI_IOC_UNMAP) {
			vti_unmap(s);
		} else if (cmd == VTI_IOC_VMAP) {
			if (s->vmapped)
				ret = -EBUSY;
			else
				ret = dma_buf_vmap_unlocked(s->dmabuf, &s->map);
			if (!ret)
				s->vmapped = true;
		} else if (cmd == VTI_IOC_VUNMAP) {
			if (s->vmapped)
				dma_buf_vunmap_unlocked(s->dmabuf, &s->map);
			else
				ret = -ENOTCONN;
			s->vmapped = false;
		}
		break;
	}
	mutex_unlock(&f->lock);

	if (!ret && (_IOC_DIR(cmd) & _IOC_READ) && copy_to_user(uarg, &a, size))
		ret = -EFAULT;
	return ret;
}

static int vti_fopen(struct inode *inode, struct file *file)
{
	struct vti_file *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return -ENOMEM;
	mutex_init(&f->lock);
	file->private_data = f;
	return 0;
}

static int vti_frelease(struct inode *inode, struct file *file)
{
	struct vti_file *f = file->private_data;
	int i;

	for (i = 0; i < VTI_SLOTS; i++)
		vti_release_slot(&f->slots[i]);
	mutex_destroy(&f->lock);
	kfree(f);
	return 0;
}

static const struct file_operations vti_fops = {
	.owner = THIS_MODULE,
	.open = vti_fopen,
	.release = vti_frelease,
	.unlocked_ioctl = vti_ioctl,
};

static struct miscdevice vti_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vela_test_importer",
	.fops = &vti_fops,
	.mode = 0600,
};

static int __init vti_init(void)
{
	int ret;

	vti_fdev = faux_device_create("vela_test_importer", NULL, NULL);
	if (!vti_fdev)
		return -ENODEV;
	/* A device with no IOMMU and a 64-bit mask: mappings are plain bus addresses. */
	ret = dma_coerce_mask_and_coherent(&vti_fdev->dev, DMA_BIT_MASK(64));
	if (!ret)
		ret = misc_register(&vti_misc);
	if (ret)
		faux_device_destroy(vti_fdev);
	return ret;
}

static void __exit vti_exit(void)
{
	misc_deregister(&vti_misc);
	faux_device_destroy(vti_fdev);
}

module_init(vti_init);
module_exit(vti_exit);
MODULE_DESCRIPTION("dma-buf importer for Vela's tests");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("DMA_BUF");
