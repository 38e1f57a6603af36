// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vela.h"

/* Where the COPY and FILL jobs bind their buffers in the device VM. */
#define VA_SRC		0x100000000ull
#define VA_DST		0x300000000ull
#define JOB_TIMEOUT_NS	(20ll * 1000 * 1000 * 1000)

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r < 0 ? -errno : 0;
}

static int is_bdf(const char *s)
{
	return strlen(s) == 12 && s[4] == ':' && s[7] == ':' && s[10] == '.';
}

int pci_place_of(const char *sysfs_path, struct pci_place *p)
{
	char real[PATH_MAX], *tok, *save = NULL;
	char last[16] = "";

	if (!realpath(sysfs_path, real))
		return -errno;
	memset(p, 0, sizeof(*p));
	for (tok = strtok_r(real, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (!is_bdf(tok))
			continue;
		if (last[0] && p->nup < 8)
			snprintf(p->up[p->nup++], sizeof(p->up[0]), "%s", last);
		snprintf(last, sizeof(last), "%s", tok);
	}
	if (!last[0])
		return -ENODEV;
	snprintf(p->bdf, sizeof(p->bdf), "%s", last);
	return 0;
}

int pci_share_bridge(const struct pci_place *a, const struct pci_place *b)
{
	int i, j;

	for (i = 0; i < a->nup; i++)
		for (j = 0; j < b->nup; j++)
			if (!strcmp(a->up[i], b->up[j]))
				return 1;
	return 0;
}

static unsigned long read_hex(const char *dir, const char *file)
{
	char path[PATH_MAX], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return ~0ul;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strtoul(buf, NULL, 16);
}

static int cmp_place(const void *a, const void *b)
{
	return strcmp(((const struct pci_place *)a)->bdf,
		      ((const struct pci_place *)b)->bdf);
}

int vela_list(struct pci_place *out, int max)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	dir = opendir("/sys/bus/pci/devices");
	if (!dir)
		return -errno;
	while ((e = readdir(dir)) && n < max) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", e->d_name);
		if (read_hex(path, "vendor") != VELA_PCI_VENDOR ||
		    read_hex(path, "device") != VELA_PCI_DEVICE)
			continue;
		if (pci_place_of(path, &out[n]) == 0)
			n++;
	}
	closedir(dir);
	qsort(out, n, sizeof(*out), cmp_place);
	return n;
}

int vela_open_bdf(struct vela_dev *d, const char *bdf)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *dir;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/accel", bdf);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir)))
		if (!strncmp(e->d_name, "accel", 5))
			break;
	if (e)
		snprintf(d->node, sizeof(d->node), "/dev/accel/%s", e->d_name);
	closedir(dir);
	if (!d->node[0])
		return -ENODEV;
	d->fd = open(d->node, O_RDWR | O_CLOEXEC);
	return d->fd < 0 ? -errno : 0;
}

void vela_close(struct vela_dev *d)
{
	if (d->fd < 0)
		return;
	if (d->have_queue) {
		struct drm_vela_queue_destroy q = { .queue_id = d->queue_id };

		xioctl(d->fd, DRM_IOCTL_VELA_QUEUE_DESTROY, &q);
	}
	if (d->have_vm) {
		struct drm_vela_vm_destroy v = { .vm_id = d->vm_id };

		xioctl(d->fd, DRM_IOCTL_VELA_VM_DESTROY, &v);
	}
	close(d->fd);
	d->fd = -1;
	d->have_vm = 0;
	d->have_queue = 0;
}

int vela_bo_create(struct vela_dev *d, uint64_t size, uint32_t flags,
		   uint32_t *handle)
{
	struct drm_vela_bo_create c = { .size = size, .flags = flags };
	int r = xioctl(d->fd, DRM_IOCTL_VELA_BO_CREATE, &c);

	if (!r)
		*handle = c.handle;
	return r;
}

int vela_bo_info(struct vela_dev *d, uint32_t handle,
		 struct drm_vela_bo_info *info)
{
	memset(info, 0, sizeof(*info));
	info->handle = handle;
	return xioctl(d->fd, DRM_IOCTL_VELA_BO_INFO, info);
}

int vela_bo_placement(struct vela_dev *d, uint32_t handle)
{
	struct drm_vela_bo_info info;
	int r = vela_bo_info(d, handle, &info);

	return r ? r : (int)info.placement;
}

int vela_bo_mmap(struct vela_dev *d, uint32_t handle, uint64_t size,
		 void **map)
{
	struct drm_vela_bo_mmap_offset m = { .handle = handle };
	void *p;
	int r;

	r = xioctl(d->fd, DRM_IOCTL_VELA_BO_MMAP_OFFSET, &m);
	if (r)
		return r;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd,
		 m.offset);
	if (p == MAP_FAILED)
		return -errno;
	*map = p;
	return 0;
}

int vela_bo_export(struct vela_dev *d, uint32_t handle, int *dmabuf_fd)
{
	struct drm_prime_handle h = {
		.handle = handle,
		.flags = DRM_CLOEXEC | DRM_RDWR,
	};
	int r = xioctl(d->fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &h);

	if (!r)
		*dmabuf_fd = h.fd;
	return r;
}

int vela_bo_close(struct vela_dev *d, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	return xioctl(d->fd, DRM_IOCTL_GEM_CLOSE, &c);
}

int vela_bo_wait(struct vela_dev *d, uint32_t handle, int64_t timeout_ns)
{
	struct drm_vela_bo_wait w = { .handle = handle, .timeout_ns = timeout_ns };

	return xioctl(d->fd, DRM_IOCTL_VELA_BO_WAIT, &w);
}

int vela_serial(struct vela_dev *d, uint32_t *serial)
{
	struct drm_vela_query_device v = { 0 };
	struct drm_vela_query q = {
		.query = DRM_VELA_QUERY_DEVICE,
		.size = sizeof(v),
		.data = (uintptr_t)&v,
	};
	int r = xioctl(d->fd, DRM_IOCTL_VELA_QUERY, &q);

	if (!r)
		*serial = v.serial;
	return r;
}

int vela_vram_free(struct vela_dev *d, uint64_t *free)
{
	struct drm_vela_query_memory m = { 0 };
	struct drm_vela_query q = {
		.query = DRM_VELA_QUERY_MEMORY,
		.size = sizeof(m),
		.data = (uintptr_t)&m,
	};
	int r = xioctl(d->fd, DRM_IOCTL_VELA_QUERY, &q);

	if (!r)
		*free = m.vram_free;
	return r;
}

static int ensure_queue(struct vela_dev *d)
{
	int r;

	if (!d->have_vm) {
		struct drm_vela_vm_create v = { 0 };

		r = xioctl(d->fd, DRM_IOCTL_VELA_VM_CREATE, &v);
		if (r)
			return r;
		d->vm_id = v.vm_id;
		d->have_vm = 1;
	}
	if (!d->have_queue) {
		struct drm_vela_queue_create q = { .vm_id = d->vm_id };

		r = xioctl(d->fd, DRM_IOCTL_VELA_QUEUE_CREATE, &q);
		if (r)
			return r;
		d->queue_id = q.queue_id;
		d->have_queue = 1;
	}
	return 0;
}

static int bind(struct vela_dev *d, uint32_t handle, uint64_t va,
		uint64_t *size)
{
	struct drm_vela_bo_info info;
	struct drm_vela_vm_bind b = { 0 };
	int r = vela_bo_info(d, handle, &info);

	if (r)
		return r;
	b.vm_id = d->vm_id;
	b.handle = handle;
	b.va = va;
	b.size = info.size;
	b.flags = DRM_VELA_BIND_READ | DRM_VELA_BIND_WRITE;
	*size = info.size;
	return xioctl(d->fd, DRM_IOCTL_VELA_VM_BIND, &b);
}

static void unbind(struct vela_dev *d, uint64_t va, uint64_t size)
{
	struct drm_vela_vm_unbind u = { .vm_id = d->vm_id, .va = va, .size = size };

	xioctl(d->fd, DRM_IOCTL_VELA_VM_UNBIND, &u);
}

static void put64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static void put32(uint8_t *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

int vela_submit(struct vela_dev *d, const uint8_t *cmds, uint32_t count,
		uint64_t *seqno)
{
	struct drm_vela_submit s = { 0 };
	int r;

	r = ensure_queue(d);
	if (r)
		return r;
	s.queue_id = d->queue_id;
	s.commands = (uintptr_t)cmds;
	s.command_count = count;
	r = xioctl(d->fd, DRM_IOCTL_VELA_SUBMIT, &s);
	if (!r)
		*seqno = s.seqno;
	return r;
}

int vela_wait_job(struct vela_dev *d, uint64_t seqno, int64_t timeout_ns)
{
	struct drm_vela_wait w = {
		.queue_id = d->queue_id,
		.seqno = seqno,
		.timeout_ns = timeout_ns,
	};

	return xioctl(d->fd, DRM_IOCTL_VELA_WAIT, &w);
}

/* Submits one command and waits for the job. */
static int run_one(struct vela_dev *d, const uint8_t *cmd)
{
	uint64_t seqno;
	int r;

	r = vela_submit(d, cmd, 1, &seqno);
	if (r)
		return r;
	return vela_wait_job(d, seqno, JOB_TIMEOUT_NS);
}

int vela_copy(struct vela_dev *d, uint32_t src, uint64_t src_off,
	      uint32_t dst, uint64_t dst_off, uint64_t len)
{
	uint8_t cmd[DRM_VELA_COMMAND_SIZE] = { 0 };
	uint64_t src_size, dst_size = 0, dst_va = VA_DST;
	int r;

	r = ensure_queue(d);
	if (r)
		return r;
	r = bind(d, src, VA_SRC, &src_size);
	if (r)
		return r;
	if (dst == src) {
		dst_va = VA_SRC;
	} else {
		r = bind(d, dst, VA_DST, &dst_size);
		if (r)
			goto out_src;
	}
	put32(cmd, 0x02);		/* COPY */
	put64(cmd + 8, VA_SRC + src_off);
	put64(cmd + 16, dst_va + dst_off);
	put64(cmd + 24, len);
	r = run_one(d, cmd);
	if (dst != src)
		unbind(d, VA_DST, dst_size);
out_src:
	unbind(d, VA_SRC, src_size);
	return r;
}

void vela_cmd_fill(uint8_t *cmd, uint64_t va, uint64_t len, uint32_t pattern)
{
	memset(cmd, 0, DRM_VELA_COMMAND_SIZE);
	put32(cmd, 0x03);		/* FILL */
	put32(cmd + 4, pattern);
	put64(cmd + 8, va);
	put64(cmd + 16, len);
}

int vela_bind_at(struct vela_dev *d, uint32_t handle, uint64_t va,
		 uint64_t *size)
{
	int r = ensure_queue(d);

	return r ? r : bind(d, handle, va, size);
}

void vela_unbind_at(struct vela_dev *d, uint64_t va, uint64_t size)
{
	unbind(d, va, size);
}

int vela_fill(struct vela_dev *d, uint32_t dst, uint64_t off, uint64_t len,
	      uint32_t pattern)
{
	uint8_t cmd[DRM_VELA_COMMAND_SIZE];
	uint64_t size;
	int r;

	r = ensure_queue(d);
	if (r)
		return r;
	r = bind(d, dst, VA_DST, &size);
	if (r)
		return r;
	vela_cmd_fill(cmd, VA_DST + off, len, pattern);
	r = run_one(d, cmd);
	unbind(d, VA_DST, size);
	return r;
}
