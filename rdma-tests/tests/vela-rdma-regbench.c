// SPDX-License-Identifier: GPL-2.0
/*
 * Registration cost (make bench): ibv_reg_dmabuf_mr() of a Vela VRAM buffer
 * against ibv_reg_mr() of host memory of the same size, on rxe0. Each figure
 * is the median of several register/deregister rounds, the two kinds taking
 * turns. The baseline pins and maps user pages (ib_umem_get); the VRAM side
 * attaches the dma-buf as the NIC, pins it in VRAM, maps it for the NIC and
 * takes the exporter's kernel mapping of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rdma.h"
#include "util.h"
#include "vela.h"

#define ROUNDS	7
#define MiB	(1024ull * 1024)

static double now_us(void)
{
	return now() * 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* One size: returns 0, or -errno with a message printed. */
static int bench(struct rdma *r, struct vela_dev *d, uint64_t size)
{
	double host[ROUNDS], vram[ROUNDS];
	struct ibv_mr *mr;
	uint32_t bo;
	void *mem;
	int fd, i, ret;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	ret = vela_bo_create(d, size, DRM_VELA_BO_VRAM, &bo);
	if (!ret)
		ret = vela_bo_export(d, bo, &fd);
	if (ret) {
		munmap(mem, size);
		printf("# %llu MiB: no VRAM buffer: %s\n",
		       (unsigned long long)(size / MiB), strerror(-ret));
		return ret;
	}
	for (i = 0; i < ROUNDS; i++) {
		double t0 = now_us();

		mr = ibv_reg_mr(r->pd, mem, size, ACCESS_ALL);
		if (!mr) {
			ret = -errno;
			break;
		}
		host[i] = now_us() - t0;
		ibv_dereg_mr(mr);

		t0 = now_us();
		mr = ibv_reg_dmabuf_mr(r->pd, 0, size, 0, fd, ACCESS_ALL);
		if (!mr) {
			ret = -errno;
			break;
		}
		vram[i] = now_us() - t0;
		ibv_dereg_mr(mr);
	}
	if (!ret) {
		double h = median(host, ROUNDS), v = median(vram, ROUNDS);

		printf("registration %llu MiB: ibv_reg_dmabuf_mr of VRAM %.0f us, ibv_reg_mr of host memory %.0f us\n",
		       (unsigned long long)(size / MiB), v, h);
		printf("  ratio VRAM/host %.2f (median of %d rounds each)\n",
		       h > 0 ? v / h : 0.0, ROUNDS);
	} else {
		printf("# %llu MiB: registration failed: %s\n",
		       (unsigned long long)(size / MiB), strerror(-ret));
	}
	close(fd);
	vela_bo_close(d, bo);
	munmap(mem, size);
	return ret;
}

int main(void)
{
	static const uint64_t sizes[] = { 1 * MiB, 256 * MiB };
	struct pci_place places[8];
	struct vela_dev d;
	struct rdma r;
	char err[256];
	int n, ret = 0;
	unsigned int i;

	if (rdma_setup_net(err, sizeof(err)) || rdma_open(&r, err, sizeof(err))) {
		fprintf(stderr, "vela-rdma-regbench: %s\n", err);
		return 1;
	}
	n = vela_list(places, 8);
	if (n < 1 || vela_open_bdf(&d, places[0].bdf)) {
		fprintf(stderr, "vela-rdma-regbench: no Vela device\n");
		return 1;
	}
	printf("== Registration on rxe0, %s (%s)\n", d.bdf, d.node);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		ret |= bench(&r, &d, sizes[i]);
	vela_close(&d);
	rdma_close(&r);
	return ret ? 1 : 0;
}
