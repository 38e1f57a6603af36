/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vela_test_importer: a dma-buf importer for tests, on /dev/vela_test_importer.
 *
 * It imports as C drivers do (RDMA's pinned memory regions, V4L2 queues, shmem-based DRM
 * drivers): a static attachment that pins, a dynamic one that counts invalidations and
 * unmaps when told to, and dma_buf_vmap() for CPU access. Tests use it to check an
 * exporter's side of the contract that Vela's own importer never exercises.
 *
 * Each open file has up to VTI_SLOTS slots; a slot holds one dma-buf reference and, with
 * VTI_ATTACH_STATIC or VTI_ATTACH_DYNAMIC, one attachment of the module's device (which has
 * no peer-to-peer path to anything). Closing the file releases every slot.
 */
#ifndef VELA_TEST_IMPORTER_H
#define VELA_TEST_IMPORTER_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define VTI_SLOTS 16

/* vti_open.flags */
#define VTI_ATTACH_STATIC	(1 << 0)
#define VTI_ATTACH_DYNAMIC	(1 << 1)

/* Takes a reference to the dma-buf `fd`; returns the slot. */
struct vti_open {
	__s32 fd;
	__u32 flags;
	__u32 slot;	/* out */
	__u32 pad;
};

/* Maps the slot's attachment (a static one pins); returns the mapping's size. */
struct vti_map {
	__u32 slot;
	__u32 pad;
	__u64 bytes;	/* out: sum of the DMA segment lengths */
	__u64 nents;	/* out */
};

struct vti_slot {
	__u32 slot;
	__u32 pad;
};

struct vti_status {
	__u32 slot;
	__u32 mapped;		/* out: a mapping is held */
	__u64 invalidations;	/* out: calls of invalidate_mappings */
	__u32 vmapped;		/* out */
	__u32 pad;
};

/* vti_rw.flags */
#define VTI_RW_WRITE	(1 << 0)

/* Copies between user memory and the slot's held kernel mapping. */
struct vti_rw {
	__u32 slot;
	__u32 flags;
	__u64 offset;
	__u64 len;
	__u64 ptr;
};

#define VTI_IOC_OPEN	_IOWR('v', 0x40, struct vti_open)
#define VTI_IOC_CLOSE	_IOW('v', 0x41, struct vti_slot)
#define VTI_IOC_MAP	_IOWR('v', 0x42, struct vti_map)
#define VTI_IOC_UNMAP	_IOW('v', 0x43, struct vti_slot)
#define VTI_IOC_STATUS	_IOWR('v', 0x44, struct vti_status)
#define VTI_IOC_VMAP	_IOW('v', 0x45, struct vti_slot)
#define VTI_IOC_VUNMAP	_IOW('v', 0x46, struct vti_slot)
#define VTI_IOC_RW	_IOW('v', 0x47, struct vti_rw)

#endif
