// SPDX-License-Identifier: GPL-2.0
/*
 * What the C compiler makes of uapi/drm/vela_accel.h and drm.h: the ioctl
 * numbers, flags and struct layouts that test_vela_dmabuf.py computes itself
 * with struct and _IOWR, one "NAME VALUE" per line. The test compares the two
 * before it touches the device, so a header change it does not follow fails
 * loudly instead of passing garbage to the driver.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>

#include <drm.h>
#include "vela_accel.h"

#define V(x) printf("%s %llu\n", #x, (unsigned long long)(x))
#define S(s) printf("sizeof(struct %s) %zu\n", #s, sizeof(struct s))
#define O(s, f) printf("offsetof(struct %s, %s) %zu\n", #s, #f, offsetof(struct s, f))

int main(void)
{
	V(DRM_IOCTL_VELA_BO_CREATE);
	V(DRM_IOCTL_VELA_BO_INFO);
	V(DRM_IOCTL_VELA_BO_MMAP_OFFSET);
	V(DRM_IOCTL_PRIME_HANDLE_TO_FD);
	V(DRM_VELA_BO_VRAM);
	V(DRM_VELA_BO_CPU_VISIBLE);
	V(DRM_VELA_PLACEMENT_VRAM);
	V(DRM_CLOEXEC);
	V(DRM_RDWR);
	S(drm_vela_bo_create);
	O(drm_vela_bo_create, size);
	O(drm_vela_bo_create, flags);
	O(drm_vela_bo_create, handle);
	S(drm_vela_bo_info);
	O(drm_vela_bo_info, handle);
	O(drm_vela_bo_info, flags);
	O(drm_vela_bo_info, size);
	O(drm_vela_bo_info, placement);
	O(drm_vela_bo_info, pad);
	S(drm_vela_bo_mmap_offset);
	O(drm_vela_bo_mmap_offset, handle);
	O(drm_vela_bo_mmap_offset, pad);
	O(drm_vela_bo_mmap_offset, offset);
	S(drm_prime_handle);
	O(drm_prime_handle, handle);
	O(drm_prime_handle, flags);
	O(drm_prime_handle, fd);
	return 0;
}
