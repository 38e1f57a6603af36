// SPDX-License-Identifier: GPL-2.0
/*
 * Registration cost (make bench): ibv_reg_dmabuf_mr() of a Vela VRAM buffer
 * against two baselines of the same size, on rxe0:
 *   - ibv_reg_mr() of host memory (anonymous, populated): pins and maps
 *     every user page (ib_umem_get);
 *   - ibv_reg_dmabuf_mr() of a system dma-heap buffer: the same dma-buf
 *     path as VRAM (attach as the NIC, pin, map, the exporter's kernel
 *     mapping), with system memory behind it.
 * The VRAM side attaches the dma-buf as the NIC, pins it in VRAM, maps it for
 * the NIC and takes the exporter's kernel mapping of it.
 *
 * Each round registers and deregisters once of each kind, the kinds taking
 * turns (host, heap, VRAM, then the other way round in the next round) so
 * that a slow moment of the host does not land on one kind only. Printed
 * per size: min/median/max of the rounds of each kind, and the ratios of the
 * medians.
 *
 *   vela-rdma-regbench [ROUNDS]     (default 7)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/dma-heap.h>

#include "rdma.h"
#include "util.h"
#include "vela.h"

#define MAX_ROUNDS	64
#define MiB		(1024ull * 1024)

enum kind { HOST, HEAP, VRAM, KINDS };

static const char *const kind_name[KINDS] = {
	[HOST] = "ibv_reg_mr of host memory",
	[HEAP] = "ibv_reg_dmabuf_mr of a system dma-heap buffer",
	[VRAM] = "ibv_reg_dmabuf_mr of VRAM",
};

struct stats {
	double min, median, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct stats stats(double *v, int n)
{
	struct stats s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

static int heap_alloc(uint64_t len, int *fd)
{
	struct dma_heap_allocation_data a = {
		.len = len,
		.fd_flags = O_RDWR | O_CLOEXEC,
	};
	int h = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);
	int r;

	if (h < 0)
		return -errno;
	r = ioctl(h, DMA_HEAP_IOCTL_ALLOC, &a);
	r = r < 0 ? -errno : 0;
	close(h);
	if (!r)
		*fd = a.fd;
	return r;
}

/* One registration of @k, timed, then its deregistration: us, or -errno. */
static double reg_once(struct rdma *r, enum kind k, void *mem, int heap_fd,
		       int vram_fd, uint64_t size)
{
	struct ibv_mr *mr;
	double t0 = now();

	if (k == HOST)
		mr = ibv_reg_mr(r->pd, mem, size, ACCESS_ALL);
	else
		mr = ibv_reg_dmabuf_mr(r->pd, 0, size, 0,
				       k == HEAP ? heap_fd : vram_fd, ACCESS_ALL);
	if (!mr)
		return -errno;
	t0 = (now() - t0) * 1e6;
	ibv_dereg_mr(mr);
	return t0;
}

static void print_us(const char *label, struct stats s)
{
	printf("  %-46s min/median/max %.0f/%.0f/%.0f us\n", label, s.min,
	       s.median, s.max);
}

/* One size: returns 0, or -errno with a message printed. */
static int bench(struct rdma *r, struct vela_dev *d, uint64_t size, int rounds)
{
	static const enum kind order[KINDS] = { HOST, HEAP, VRAM };
	double t[KINDS][MAX_ROUNDS];
	int heap_fd = -1, vram_fd = -1, i, j, ret;
	struct stats s[KINDS];
	uint32_t bo = 0;
	void *mem;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	ret = heap_alloc(size, &heap_fd);
	if (ret) {
		printf("# %llu MiB: no system dma-heap buffer: %s\n",
		       (unsigned long long)(size / MiB), strerror(-ret));
		goto out;
	}
	ret = vela_bo_create(d, size, DRM_VELA_BO_VRAM, &bo);
	if (!ret)
		ret = vela_bo_export(d, bo, &vram_fd);
	if (ret) {
		printf("# %llu MiB: no VRAM buffer: %s\n",
		       (unsigned long long)(size / MiB), strerror(-ret));
		goto out;
	}
	for (i = 0; i < rounds; i++) {
		for (j = 0; j < KINDS; j++) {
			/* ABC, then CBA: drift over the rounds hits every kind alike. */
			enum kind k = order[i % 2 ? KINDS - 1 - j : j];
			double us = reg_once(r, k, mem, heap_fd, vram_fd, size);

			if (us < 0) {
				ret = us;
				printf("# %llu MiB: %s failed: %s\n",
				       (unsigned long long)(size / MiB),
				       kind_name[k], strerror(-ret));
				goto out;
			}
			t[k][i] = us;
		}
	}
	for (j = 0; j < KINDS; j++)
		s[j] = stats(t[j], rounds);
	printf("registration %llu MiB (%d rounds of each):\n",
	       (unsigned long long)(size / MiB), rounds);
	print_us(kind_name[VRAM], s[VRAM]);
	print_us(kind_name[HOST], s[HOST]);
	print_us(kind_name[HEAP], s[HEAP]);
	printf("  ratio of medians VRAM/host %.2f, VRAM/dma-heap %.2f\n",
	       s[VRAM].median / s[HOST].median, s[VRAM].median / s[HEAP].median);
out:
	if (vram_fd >= 0)
		close(vram_fd);
	if (bo)
		vela_bo_close(d, bo);
	if (heap_fd >= 0)
		close(heap_fd);
	munmap(mem, size);
	return ret;
}

int main(int argc, char **argv)
{
	static const uint64_t sizes[] = { 1 * MiB, 256 * MiB };
	struct pci_place places[8];
	int n, rounds = 7, ret = 0;
	struct vela_dev d;
	struct rdma r;
	char err[256];
	unsigned int i;

	if (argc > 1) {
		rounds = atoi(argv[1]);
		if (rounds < 1 || rounds > MAX_ROUNDS) {
			fprintf(stderr, "usage: vela-rdma-regbench [ROUNDS (1-%d)]\n", MAX_ROUNDS);
			return 2;
		}
	}
	if (rdma_setup_net(err, sizeof(err)) || rdma_open(&r, err, sizeof(err))) {
		fprintf(stderr, "vela-rdma-regbench: %s\n", err);
		return 1;
	}
	n = vela_list(places, 8);
	if (n < 1 || vela_open_bdf(&d, places[0].bdf)) {
		fprintf(stderr, "vela-rdma-regbench: no Vela device\n");
		return 1;
	}
	printf("== Registration on rxe0, %s (%s): each kind registered and deregistered in turn\n",
	       d.bdf, d.node);
	printf("   baselines: ibv_reg_mr() pins and maps every page of host memory; a system dma-heap\n"
	       "   buffer goes the same dma-buf path as VRAM (attach, pin, map, kernel mapping)\n");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		ret |= bench(&r, &d, sizes[i], rounds);
	vela_close(&d);
	rdma_close(&r);
	return ret ? 1 : 0;
}
