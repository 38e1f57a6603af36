/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * Vela accelerator userspace interface.
 *
 * Rules every ioctl follows (see Documentation/uapi.rst):
 *  - all fields are fixed-size, __u64 fields are 8-byte aligned, and every
 *    struct's size is a multiple of 8, so 32- and 64-bit userspace agree;
 *  - padding and reserved fields must be zero, and flags with bits the kernel
 *    does not know are rejected with -EINVAL, so they can be given a meaning
 *    later without breaking old binaries;
 *  - queries are extended by adding query ids, never by growing a reply.
 */
#ifndef _UAPI_VELA_ACCEL_H_
#define _UAPI_VELA_ACCEL_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define DRM_VELA_QUERY			0x00

/**
 * enum drm_vela_query_id - What &struct drm_vela_query asks for.
 *
 * @DRM_VELA_QUERY_DEVICE: the device identity and sizes, as a
 *	&struct drm_vela_query_device.
 */
enum drm_vela_query_id {
	DRM_VELA_QUERY_DEVICE = 0,
};

/* Capability bits of &drm_vela_query_device.caps, as the hardware reports them. */
#define DRM_VELA_CAP_COPY		(1ULL << 0)
#define DRM_VELA_CAP_COMPUTE		(1ULL << 1)
#define DRM_VELA_CAP_MMU		(1ULL << 2)
#define DRM_VELA_CAP_P2P		(1ULL << 3)
#define DRM_VELA_CAP_FAULT_INJECT	(1ULL << 4)

/**
 * struct drm_vela_query_device - Reply to %DRM_VELA_QUERY_DEVICE.
 *
 * @vendor_id: PCI vendor ID.
 * @device_id: PCI device ID.
 * @revision: PCI revision ID.
 * @hw_version: hardware interface version, major in bits 31:16, minor in 15:0.
 * @caps: DRM_VELA_CAP_* bits.
 * @vram_size: VRAM size in bytes.
 * @serial: the device's serial number.
 * @num_queues: number of hardware command queues.
 * @num_engines: number of engines.
 * @pad: reserved, zero.
 */
struct drm_vela_query_device {
	__u32 vendor_id;
	__u32 device_id;
	__u32 revision;
	__u32 hw_version;
	__u64 caps;
	__u64 vram_size;
	__u32 serial;
	__u32 num_queues;
	__u32 num_engines;
	__u32 pad;
};

/**
 * struct drm_vela_query - Argument of %DRM_IOCTL_VELA_QUERY.
 *
 * @query: an &enum drm_vela_query_id.
 * @flags: must be zero.
 * @size: in: size of the buffer at @data; 0 asks for the size the reply needs,
 *	which the kernel writes here without touching @data. out: bytes written.
 *	A non-zero size smaller than the reply fails with -EINVAL.
 * @pad: must be zero.
 * @data: user pointer to the reply buffer.
 */
struct drm_vela_query {
	__u32 query;
	__u32 flags;
	__u32 size;
	__u32 pad;
	__u64 data;
};

/*
 * The ioctl numbers as constants (not only macros) so that bindgen gives
 * them to Rust users, the driver among them. The enum is anonymous so the
 * constants keep their C names.
 */
enum {
	DRM_IOCTL_VELA_QUERY = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_QUERY,
					struct drm_vela_query),
};

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_VELA_ACCEL_H_ */
