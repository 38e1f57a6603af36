/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small C client of the Vela uAPI (uapi/drm/vela_accel.h) for the RDMA
 * tests: open a device, create, export and map buffers, read where a buffer
 * is, and run COPY and FILL jobs on the device's copy engine.
 *
 * Every function returns 0 or a negative errno.
 */
#ifndef VELA_RDMA_VELA_H
#define VELA_RDMA_VELA_H

#include <stdint.h>
#include <drm/drm.h>
#include "vela_accel.h"

#define VELA_PCI_VENDOR	0x1f5a
#define VELA_PCI_DEVICE	0x0001

struct vela_dev {
	int fd;
	uint32_t vm_id;
	int have_vm;
	uint32_t queue_id;
	int have_queue;
	char bdf[16];
	char node[300];
};

/* Where a PCI function sits: its bus address and the bridges above it. */
struct pci_place {
	char bdf[16];
	int nup;
	char up[8][16];		/* root port first */
};

/* Resolves /sys/bus/pci/devices/BDF (or any sysfs device path) to a place. */
int pci_place_of(const char *sysfs_path, struct pci_place *p);
/* True when the two share a bridge (a PCIe switch, or one root port). */
int pci_share_bridge(const struct pci_place *a, const struct pci_place *b);
/* The Vela functions present, sorted by bus address; returns how many (<= max). */
int vela_list(struct pci_place *out, int max);

int vela_open_bdf(struct vela_dev *d, const char *bdf);
void vela_close(struct vela_dev *d);

int vela_bo_create(struct vela_dev *d, uint64_t size, uint32_t flags,
		   uint32_t *handle);
int vela_bo_info(struct vela_dev *d, uint32_t handle,
		 struct drm_vela_bo_info *info);
/* Placement now (DRM_VELA_PLACEMENT_*), or a negative errno. */
int vela_bo_placement(struct vela_dev *d, uint32_t handle);
int vela_bo_mmap(struct vela_dev *d, uint32_t handle, uint64_t size,
		 void **map);
int vela_bo_export(struct vela_dev *d, uint32_t handle, int *dmabuf_fd);
int vela_bo_close(struct vela_dev *d, uint32_t handle);
int vela_bo_wait(struct vela_dev *d, uint32_t handle, int64_t timeout_ns);

/* DRM_VELA_QUERY_DEVICE's serial, in @serial. */
int vela_serial(struct vela_dev *d, uint32_t *serial);
/* DRM_VELA_QUERY_MEMORY's vram_free, in @free. */
int vela_vram_free(struct vela_dev *d, uint64_t *free);

/* A COPY job from one buffer's range to another's, waited for. */
int vela_copy(struct vela_dev *d, uint32_t src, uint64_t src_off,
	      uint32_t dst, uint64_t dst_off, uint64_t len);
/* A FILL job (32-bit pattern; offset and length multiples of 4), waited for. */
int vela_fill(struct vela_dev *d, uint32_t dst, uint64_t off, uint64_t len,
	      uint32_t pattern);

/*
 * Jobs that are not waited for: bind a buffer at @va of the device's VM
 * (the VM and queue are made on first use; @size gets the buffer's size),
 * build commands, submit them as one job (its @seqno), wait for a job
 * (timeout 0 polls: -ETIME while it runs), unbind.
 */
int vela_bind_at(struct vela_dev *d, uint32_t handle, uint64_t va,
		 uint64_t *size);
void vela_unbind_at(struct vela_dev *d, uint64_t va, uint64_t size);
/* A FILL command into @cmd (DRM_VELA_COMMAND_SIZE bytes). */
void vela_cmd_fill(uint8_t *cmd, uint64_t va, uint64_t len, uint32_t pattern);
int vela_submit(struct vela_dev *d, const uint8_t *cmds, uint32_t count,
		uint64_t *seqno);
int vela_wait_job(struct vela_dev *d, uint64_t seqno, int64_t timeout_ns);

#endif
