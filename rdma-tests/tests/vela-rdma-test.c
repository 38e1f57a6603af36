// SPDX-License-Identifier: GPL-2.0
/*
 * vela-rdma-test: Soft-RoCE (rxe) memory regions on dma-bufs, Vela VRAM
 * first, with every transfer checked by data.
 *
 * Cases (each its own number; `vela-rdma-test 1 5` runs only those, setup
 * always runs):
 *   1  WRITE, READ, SEND/RECV and ATOMIC between host memory and a VRAM
 *      dma-buf MR of the Vela device below the NIC's PCIe switch, both ways,
 *      4 KiB, 1 MiB and an unaligned 1 MiB + 777 at an odd offset; VRAM read
 *      back through the buffer's mmap and through a Vela COPY job.
 *   2  The MR and Vela jobs see each other's data; the buffer stays in VRAM.
 *   3  WRITE, READ, SEND/RECV (both ways) and ATOMIC with a system dma-heap
 *      buffer and a udmabuf, with case 1's helpers.
 *   4  The Vela device on its own root port (no P2P path from the NIC): a
 *      VRAM buffer moves to system memory with its data; VRAM_ONLY refused.
 *   5  Bad input, and closes in odd orders while an MR lives.
 *   6  Revocation: the Vela device unbound under a live MR, then rebound.
 *   7  Revocation by a device reset (a hung engine injected into the device
 *      model): the MR is revoked, the buffer and its dma-buf live on, and a
 *      new registration of the same dma-buf works.
 *      6 and 7 unbind and reset the device.
 *   8  A registration made while Vela jobs still write the buffer waits for
 *      their fences: right after it the jobs are done, and the first RDMA
 *      READ sees what the last job wrote.
 *
 * The plan comes first: every case states its number of checks, and one that
 * stops early reports what it did not reach as failures.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>

#include "rdma.h"
#include "tap.h"
#include "vela.h"
#include "util.h"

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define KiB		1024ull
#define MiB		(1024 * KiB)
#define BUF_LEN		(4 * MiB)	/* every buffer of the data cases */
/* A dma-buf MR's iova: not its offset, same offset in the page. */
#define IOVA_BASE	0x7e0000000000ull
#define GUARD		64		/* bytes around a transfer that must not change */
#define VELA_DRIVER	"/sys/bus/pci/drivers/vela"

static struct rdma R;
static struct qp_pair P;
static struct region host, host2;	/* two host-memory MRs of BUF_LEN */
static uint8_t *want;			/* expected data, BUF_LEN */
static char err[256];

static struct pci_place nic;
static char p2p_bdf[16];	/* a Vela device below the NIC's switch */
static char rp_bdf[16];		/* a Vela device with no bridge in common with it */

/* The P2P device's VRAM buffer and its MR (cases 1, 2). */
static struct vela_dev dev;
static uint32_t vbo, chk;		/* VRAM buffer; system buffer for COPY checks */
static uint8_t *vmap, *chkmap;
static int vfd = -1;
static struct region vram;

/*
 * The CPU's stores to a buffer (VRAM through a write-combined mapping) must be
 * visible before rxe or the device reads the buffer: a full fence drains the
 * write-combining buffers.
 */
static void flush_wc(void)
{
	__sync_synchronize();
}

/* Compares; on a difference says where, in @why. */
static bool same(const uint8_t *got, const uint8_t *exp, size_t len,
		 char *why, size_t whylen)
{
	size_t i;

	if (!memcmp(got, exp, len))
		return true;
	for (i = 0; i < len && got[i] == exp[i]; i++)
		;
	snprintf(why, whylen, "first difference at byte %zu of %zu: got 0x%02x, want 0x%02x",
		 i, len, got[i], exp[i]);
	return false;
}

/* The guard bytes around [off, off + len) of a region's CPU view. */
static void guard_set(uint8_t *cpu, uint64_t size, uint64_t off, uint64_t len)
{
	uint64_t lo = off > GUARD ? off - GUARD : 0;
	uint64_t hi = off + len + GUARD < size ? off + len + GUARD : size;

	memset(cpu + lo, 0x5a, off - lo);
	memset(cpu + off + len, 0x5a, hi - off - len);
	memset(cpu + off, 0, len);
	flush_wc();
}

static bool guard_ok(const uint8_t *cpu, uint64_t size, uint64_t off,
		     uint64_t len, char *why, size_t whylen)
{
	uint64_t lo = off > GUARD ? off - GUARD : 0;
	uint64_t hi = off + len + GUARD < size ? off + len + GUARD : size;
	uint64_t i;

	for (i = lo; i < hi; i++) {
		if (i == off)
			i = off + len;
		if (i < hi && cpu[i] != 0x5a) {
			snprintf(why, whylen, "byte %lld from the range's start, outside it, changed to 0x%02x",
				 (long long)i - (long long)off, cpu[i]);
			return false;
		}
	}
	return true;
}

static bool data_ok(const uint8_t *cpu, uint64_t size, uint64_t off,
		    uint64_t len, const uint8_t *exp, char *why, size_t whylen)
{
	return same(cpu + off, exp, len, why, whylen) &&
	       guard_ok(cpu, size, off, len, why, whylen);
}

static const char *wc_str(const struct ibv_wc *wc)
{
	return ibv_wc_status_str(wc->status);
}

/*
 * After a failed or lost work request the pair is in the error state, or
 * still busy with the request: a new pair, so later checks do not inherit it.
 */
static void recover_pair(void)
{
	int r;

	qp_pair_destroy(&P);
	r = qp_pair_create(&R, &P);
	if (r)
		tap_diag("a new QP pair: %s", strerror(-r));
}

/* A completion check: posted, completed, and with status SUCCESS. */
static bool wc_check(int ret, const struct ibv_wc *wc, const char *what)
{
	bool ok;

	if (ret)
		ok = tap_check(false, "%s completes (%s)", what, strerror(-ret));
	else
		ok = tap_check(wc->status == IBV_WC_SUCCESS, "%s completes with %s",
			       what, wc_str(wc));
	if (!ok)
		recover_pair();
	return ok;
}

static int host_region(struct region *r)
{
	void *p;

	if (posix_memalign(&p, 4096, BUF_LEN))
		return -ENOMEM;
	memset(p, 0, BUF_LEN);
	r->mr = ibv_reg_mr(R.pd, p, BUF_LEN, ACCESS_ALL);
	if (!r->mr)
		return -errno;
	r->base = (uintptr_t)p;
	r->len = BUF_LEN;
	r->cpu = p;
	return 0;
}

/* Registers [off, off + len) of a dma-buf at IOVA_BASE + off. */
static int dmabuf_region(struct region *r, int fd, uint64_t off, uint64_t len,
			 uint8_t *cpu)
{
	memset(r, 0, sizeof(*r));
	r->mr = ibv_reg_dmabuf_mr(R.pd, off, len, IOVA_BASE + off, fd, ACCESS_ALL);
	if (!r->mr)
		return -errno;
	/* Offsets in work requests are from the buffer's byte 0. */
	r->base = IOVA_BASE;
	r->len = off + len;
	r->cpu = cpu;
	return 0;
}

static void region_dereg(struct region *r)
{
	if (r->mr)
		ibv_dereg_mr(r->mr);
	r->mr = NULL;
}

/* ---------------------------------------------------------------- setup */

#define SETUP_CHECKS	6

static bool find_devices(void)
{
	struct pci_place v[8];
	int i, n;

	if (pci_place_of("/sys/class/net/" RXE_NETDEV "/device", &nic))
		return tap_check(false, "the NIC's PCI place: %s", strerror(errno));
	n = vela_list(v, 8);
	for (i = 0; i < n; i++) {
		int shared = pci_share_bridge(&v[i], &nic);

		tap_diag("%s: Vela below %s, %s with the NIC %s", v[i].bdf,
			 v[i].nup ? v[i].up[v[i].nup - 1] : "the host bridge",
			 shared ? "shares a bridge" : "shares no bridge", nic.bdf);
		if (shared && !p2p_bdf[0])
			snprintf(p2p_bdf, sizeof(p2p_bdf), "%s", v[i].bdf);
		if (!shared && !rp_bdf[0])
			snprintf(rp_bdf, sizeof(rp_bdf), "%s", v[i].bdf);
	}
	return tap_check(p2p_bdf[0] && rp_bdf[0],
			 "Vela devices found by PCI place: %s below the NIC's switch, %s on its own root port",
			 p2p_bdf[0] ? p2p_bdf : "none", rp_bdf[0] ? rp_bdf : "none");
}

static bool setup(void)
{
	struct ibv_wc wc;
	bool ok = false, data;
	int r;

	tap_case_begin("setup", SETUP_CHECKS);
	r = rdma_setup_net(err, sizeof(err));
	if (!tap_check(!r, "%s up with %s, %s added on it%s%s", RXE_NETDEV,
		       RXE_ADDR, RXE_NAME, r ? ": " : "", r ? err : ""))
		goto out;
	r = rdma_open(&R, err, sizeof(err));
	if (!tap_check(!r, "%s opens, RoCE v2 IPv4 GID found%s%s", RXE_NAME,
		       r ? ": " : "", r ? err : ""))
		goto out;
	tap_diag("GID index %d, active MTU %d", R.gid_index, 128 << R.mtu);
	r = host_region(&host);
	if (!r)
		r = host_region(&host2);
	if (!r)
		r = qp_pair_create(&R, &P);
	want = malloc(BUF_LEN);
	if (!r && !want)
		r = -ENOMEM;
	if (!tap_check(!r, "host MRs registered and a loopback RC QP pair connected%s%s",
		       r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	pattern(want, 64 * KiB, 1);
	memcpy(host.cpu, want, 64 * KiB);
	guard_set(host2.cpu, BUF_LEN, 4096, 64 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 64 * KiB, &host2, 4096, &wc);
	if (!wc_check(r, &wc, "host -> host RDMA WRITE of 64 KiB"))
		goto out;
	data = data_ok(host2.cpu, BUF_LEN, 4096, 64 * KiB, want, err, sizeof(err));
	if (!tap_check(data, "host -> host data arrived"))
		tap_diag("%s", err);
	ok = find_devices() && data;
out:
	tap_case_end();
	return ok;
}

/* ------------------------------------------------------ case 1: transfers */

struct span {
	uint64_t off, len;	/* in the VRAM buffer */
	uint64_t hoff;		/* in host memory */
};

static const struct span spans[] = {
	{ 0, 4 * KiB, 0 },
	{ 64 * KiB, 1 * MiB, 8 * KiB },
	{ 2 * MiB + 123, 1 * MiB + 777, 4 * KiB + 5 },
};

#define NSPANS		3
#define NOPS		3
/* Per op and span: host -> VRAM (3 checks), VRAM -> host (2). */
#define XFER_CHECKS	(NOPS * NSPANS * 5)
#define ATOMIC_CHECKS	13
#define UNALIGNED_CHECKS	7
#define CASE1_CHECKS	(2 + XFER_CHECKS + ATOMIC_CHECKS + UNALIGNED_CHECKS)

static const char *op_name(int op)
{
	return op == 0 ? "WRITE" : op == 1 ? "READ" : "SEND";
}

/* Moves [s->off or s->hoff, +len) from @src to @dst by @op. */
static int move(int op, const struct region *src, uint64_t soff,
		const struct region *dst, uint64_t doff, uint32_t len,
		struct ibv_wc *wc)
{
	struct ibv_wc rwc;
	int r;

	switch (op) {
	case 0:
		return rdma_rw(&P, IBV_WR_RDMA_WRITE, src, soff, len, dst, doff, wc);
	case 1:
		return rdma_rw(&P, IBV_WR_RDMA_READ, dst, doff, len, src, soff, wc);
	default:
		r = rdma_send(&P, src, soff, dst, doff, len, wc, &rwc);
		if (!r && wc->status == IBV_WC_SUCCESS &&
		    (rwc.status != IBV_WC_SUCCESS || rwc.byte_len != len)) {
			tap_diag("RECV completion: %s, %u bytes", wc_str(&rwc),
				 rwc.byte_len);
			*wc = rwc;
			if (wc->status == IBV_WC_SUCCESS)
				wc->status = IBV_WC_GENERAL_ERR;
		}
		return r;
	}
}

/* Checks [off, off + len) of the VRAM buffer through a COPY job into @chk. */
static void check_by_copy(uint64_t off, uint64_t len, const char *what)
{
	int r;

	guard_set(chkmap, BUF_LEN, off, len);
	r = vela_copy(&dev, vbo, off, chk, off, len);
	if (r) {
		tap_check(false, "%s: a Vela COPY job reads it (%s)", what,
			  strerror(-r));
		return;
	}
	if (!tap_check(data_ok(chkmap, BUF_LEN, off, len, want, err, sizeof(err)),
		       "%s: a Vela COPY job reads the same data", what))
		tap_diag("%s", err);
}

static void xfer(int op, bool to_vram, const struct span *s, uint32_t seed)
{
	const struct region *src = to_vram ? &host : &vram;
	const struct region *dst = to_vram ? &vram : &host;
	uint64_t soff = to_vram ? s->hoff : s->off;
	uint64_t doff = to_vram ? s->off : s->hoff;
	char what[128];
	struct ibv_wc wc;
	int r;

	snprintf(what, sizeof(what), "%s %s -> %s, %llu bytes at +%llu",
		 op_name(op), to_vram ? "host" : "VRAM", to_vram ? "VRAM" : "host",
		 (unsigned long long)s->len, (unsigned long long)s->off);
	pattern(want, s->len, seed);
	memcpy(src->cpu + soff, want, s->len);
	guard_set(dst->cpu, BUF_LEN, doff, s->len);
	r = move(op, src, soff, dst, doff, s->len, &wc);
	if (!wc_check(r, &wc, what)) {
		tap_check(false, "%s: data (no completion)", what);
		if (to_vram)
			tap_check(false, "%s: COPY job (no completion)", what);
		return;
	}
	if (!tap_check(data_ok(dst->cpu, BUF_LEN, doff, s->len, want,
			       err, sizeof(err)),
		       "%s: data%s", what, to_vram ? " through the buffer's mmap" : ""))
		tap_diag("%s", err);
	if (to_vram)
		check_by_copy(s->off, s->len, what);
}

static uint64_t rd64(const struct region *r, uint64_t off)
{
	uint64_t v;

	memcpy(&v, r->cpu + off, 8);
	return v;
}

static void wr64(const struct region *r, uint64_t off, uint64_t v)
{
	memcpy(r->cpu + off, &v, 8);
	flush_wc();
}

/*
 * One atomic; checks its completion, the value it returned into @local and
 * what @remote holds after it (@checks 2 or 3: without the completion check
 * when @combine).
 */
static void atomic_case(const char *what, enum ibv_wr_opcode op,
			const struct region *local, uint64_t loff,
			const struct region *remote, uint64_t roff,
			uint64_t cmp_add, uint64_t swap, uint64_t want_old,
			uint64_t want_new, bool combine)
{
	struct ibv_wc wc;
	int r;

	wr64(local, loff, 0xdeadbeefdeadbeefull);
	r = rdma_atomic(&P, op, local, loff, remote, roff, cmp_add, swap, &wc);
	if (!combine && !wc_check(r, &wc, what)) {
		tap_check(false, "%s: value returned (no completion)", what);
		tap_check(false, "%s: value left (no completion)", what);
		return;
	}
	if (combine) {
		bool ok = !r && wc.status == IBV_WC_SUCCESS &&
			  rd64(local, loff) == want_old &&
			  rd64(remote, roff) == want_new;

		tap_check(ok, "%s: completes (%s), returns %#llx and leaves %#llx (got %#llx, %#llx)",
			  what, r ? strerror(-r) : wc_str(&wc),
			  (unsigned long long)want_old, (unsigned long long)want_new,
			  (unsigned long long)rd64(local, loff),
			  (unsigned long long)rd64(remote, roff));
		if (r || wc.status != IBV_WC_SUCCESS)
			recover_pair();
		return;
	}
	tap_check(rd64(local, loff) == want_old, "%s: returns the old value %#llx (got %#llx)",
		  what, (unsigned long long)want_old,
		  (unsigned long long)rd64(local, loff));
	tap_check(rd64(remote, roff) == want_new, "%s: leaves %#llx (got %#llx)",
		  what, (unsigned long long)want_new,
		  (unsigned long long)rd64(remote, roff));
}

static void atomics(void)
{
	const uint64_t v0 = 0x0123456789abcdefull, s = 0xfeedface00c0ffeeull;
	const uint64_t h0 = 0x1111222233334444ull, t = 0x5555666677778888ull;
	const uint64_t voff = 3 * MiB + 8, hoff = 1 * MiB + 16;

	/* The remote value in VRAM; the result into host memory. */
	wr64(&vram, voff, v0);
	atomic_case("FETCH_ADD on VRAM", IBV_WR_ATOMIC_FETCH_AND_ADD, &host, hoff,
		    &vram, voff, 5, 0, v0, v0 + 5, false);
	atomic_case("CMP_SWP on VRAM, equal", IBV_WR_ATOMIC_CMP_AND_SWP, &host,
		    hoff, &vram, voff, v0 + 5, s, v0 + 5, s, false);
	atomic_case("CMP_SWP on VRAM, not equal", IBV_WR_ATOMIC_CMP_AND_SWP, &host,
		    hoff, &vram, voff, v0, t, s, s, true);
	/* The other way: the remote value in host memory, the result into VRAM. */
	wr64(&host, hoff + 64, h0);
	atomic_case("FETCH_ADD on host, result into VRAM",
		    IBV_WR_ATOMIC_FETCH_AND_ADD, &vram, voff + 64, &host, hoff + 64,
		    7, 0, h0, h0 + 7, false);
	atomic_case("CMP_SWP on host, result into VRAM", IBV_WR_ATOMIC_CMP_AND_SWP,
		    &vram, voff + 64, &host, hoff + 64, h0 + 7, t, h0 + 7, t, false);
}

/*
 * An MR on an unaligned part of the buffer: data lands where its iova says,
 * and a WRITE across its end is refused with nothing written.
 */
static void unaligned_mr(void)
{
	const uint64_t moff = 3 * 4096 + 123, mlen = 1 * MiB + 777;
	struct region m = { 0 };
	struct ibv_wc wc;
	int r, i;

	r = dmabuf_region(&m, vfd, moff, mlen, vmap);
	if (!tap_check(!r, "ibv_reg_dmabuf_mr of %llu bytes at offset %llu%s%s",
		       (unsigned long long)mlen, (unsigned long long)moff,
		       r ? ": " : "", r ? strerrorname_np(-r) : "")) {
		for (i = 1; i < UNALIGNED_CHECKS; i++)
			tap_check(false, "unaligned MR: not reached");
		return;
	}
	pattern(want, mlen, 150);
	memcpy(host.cpu + 5, want, mlen);
	guard_set(vmap, BUF_LEN, moff, mlen);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 5, mlen, &m, moff, &wc);
	if (wc_check(r, &wc, "WRITE of the whole unaligned MR")) {
		if (!tap_check(data_ok(vmap, BUF_LEN, moff, mlen, want, err, sizeof(err)),
			       "the unaligned MR's WRITE: data through the mmap"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "the unaligned MR's WRITE: data (no completion)");
	}
	guard_set(host2.cpu, BUF_LEN, 7, mlen);
	r = rdma_rw(&P, IBV_WR_RDMA_READ, &host2, 7, mlen, &m, moff, &wc);
	if (wc_check(r, &wc, "READ of the whole unaligned MR")) {
		if (!tap_check(data_ok(host2.cpu, BUF_LEN, 7, mlen, want, err, sizeof(err)),
			       "the unaligned MR's READ: data"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "the unaligned MR's READ: data (no completion)");
	}
	/* Two bytes: the MR's last and the one after it. */
	host.cpu[0] = ~want[mlen - 1];
	host.cpu[1] = 0xa5;
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 2, &m, moff + mlen - 1, &wc);
	tap_diag("WRITE across the MR's end: %s", r ? strerror(-r) : wc_str(&wc));
	tap_check(!r && wc.status != IBV_WC_SUCCESS,
		  "a WRITE across the MR's end completes with an error: %s",
		  r ? strerror(-r) : wc_str(&wc));
	tap_check(vmap[moff + mlen - 1] == want[mlen - 1] && vmap[moff + mlen] == 0x5a,
		  "it wrote nothing: the MR's last byte %#x (want %#x), the next %#x (want 0x5a)",
		  vmap[moff + mlen - 1], want[mlen - 1], vmap[moff + mlen]);
	region_dereg(&m);
	/* The refused WRITE put the QP in the error state. */
	recover_pair();
}

/* Opens the P2P device and registers a VRAM buffer of it (the first checks of case 1). */
static bool vram_mr(void)
{
	int r;

	r = vela_open_bdf(&dev, p2p_bdf);
	if (!r)
		r = vela_bo_create(&dev, BUF_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE,
				   &vbo);
	if (!r)
		r = vela_bo_mmap(&dev, vbo, BUF_LEN, (void **)&vmap);
	if (!r)
		r = vela_bo_create(&dev, BUF_LEN, DRM_VELA_BO_CPU_VISIBLE, &chk);
	if (!r)
		r = vela_bo_mmap(&dev, chk, BUF_LEN, (void **)&chkmap);
	if (!r)
		r = vela_bo_export(&dev, vbo, &vfd);
	if (!tap_check(!r, "%s (%s): a 4 MiB VRAM buffer, mapped and exported%s%s",
		       p2p_bdf, dev.node, r ? ": " : "", r ? strerror(-r) : ""))
		return false;
	r = dmabuf_region(&vram, vfd, 0, BUF_LEN, vmap);
	return tap_check(!r, "ibv_reg_dmabuf_mr of the VRAM dma-buf (iova %#llx)%s%s",
			 IOVA_BASE, r ? ": " : "", r ? strerrorname_np(-r) : "");
}

static void case1(void)
{
	int op, i, dir;

	tap_case_begin("1 transfers", CASE1_CHECKS);
	if (!vram_mr())
		goto out;
	for (op = 0; op < NOPS; op++)
		for (i = 0; i < NSPANS; i++)
			for (dir = 1; dir >= 0; dir--)
				xfer(op, dir, &spans[i], 100 + op * 10 + i * 2 + dir);
	atomics();
	unaligned_mr();
out:
	tap_case_end();
}

/* ------------------------------------------ case 2: MR and Vela jobs agree */

#define CASE2_CHECKS	14
#define PRESSURE_BO	(16 * MiB)
#define PRESSURE_MAX	32

/*
 * VRAM pressure: buffers of 16 MiB are created until one made earlier is
 * evicted to system memory (or VRAM is full); the registered buffer, pinned
 * by its importer, must stay where it is and keep working.
 */
static void pressure(void)
{
	const uint64_t off = 1 * MiB + 4096, len = 200 * KiB;
	uint32_t bo[PRESSURE_MAX];
	int n, i, evicted = -1, r = 0;
	struct ibv_wc wc;

	for (n = 0; n < PRESSURE_MAX && evicted < 0; n++) {
		r = vela_bo_create(&dev, PRESSURE_BO, DRM_VELA_BO_VRAM, &bo[n]);
		if (r)
			break;
		for (i = 0; i < n && evicted < 0; i++)
			if (vela_bo_placement(&dev, bo[i]) == DRM_VELA_PLACEMENT_SYSTEM)
				evicted = i;
	}
	tap_check(evicted >= 0, "VRAM pressure: buffer %d of %d (16 MiB each) was evicted%s%s",
		  evicted, n, r ? "; BO_CREATE: " : "", r ? strerror(-r) : "");
	pattern(want, len, 203);
	memcpy(host.cpu + off, want, len);
	guard_set(vmap, BUF_LEN, off, len);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, off, len, &vram, off, &wc);
	if (wc_check(r, &wc, "WRITE into the registered buffer under VRAM pressure")) {
		if (!tap_check(data_ok(vmap, BUF_LEN, off, len, want, err, sizeof(err)),
			       "the WRITE under pressure: data through the mmap"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "the WRITE under pressure: data (no completion)");
	}
	for (i = 0; i < n; i++)
		vela_bo_close(&dev, bo[i]);
}

static void case2(void)
{
	const uint64_t off = 512 * KiB, len = 256 * KiB;
	struct ibv_wc wc;
	int r, pl;

	tap_case_begin("2 jobs", CASE2_CHECKS);
	if (!tap_check(vram.mr != NULL, "case 1 registered the VRAM MR"))
		goto out;
	pl = vela_bo_placement(&dev, vbo);
	tap_check(pl == DRM_VELA_PLACEMENT_VRAM,
		  "BO_INFO: the registered buffer is in VRAM (placement %d)", pl);

	/* A job writes the buffer; once it is done, RDMA READ sees its data. */
	pattern(want, len, 201);
	memcpy(chkmap + off, want, len);
	flush_wc();
	r = vela_copy(&dev, chk, off, vbo, off, len);
	if (!r)
		r = vela_bo_wait(&dev, vbo, 5000000000ll);
	tap_check(!r, "a Vela COPY job writes 256 KiB of the buffer, BO_WAIT idle%s%s",
		  r ? ": " : "", r ? strerror(-r) : "");
	guard_set(host.cpu, BUF_LEN, off, len);
	r = rdma_rw(&P, IBV_WR_RDMA_READ, &host, off, len, &vram, off, &wc);
	if (wc_check(r, &wc, "RDMA READ of what the job wrote") &&
	    !tap_check(data_ok(host.cpu, BUF_LEN, off, len, want, err,
			       sizeof(err)), "RDMA READ sees the job's data"))
		tap_diag("%s", err);
	else if (r || wc.status != IBV_WC_SUCCESS)
		tap_check(false, "RDMA READ sees the job's data (no completion)");

	/* A FILL job's pattern, then RDMA READ. */
	r = vela_fill(&dev, vbo, off, len, 0xc0de5eedu);
	tap_check(!r, "a Vela FILL job writes the buffer%s%s", r ? ": " : "",
		  r ? strerror(-r) : "");
	for (r = 0; r < (int)len; r += 4)
		memcpy(want + r, &(uint32_t){ 0xc0de5eedu }, 4);
	guard_set(host.cpu, BUF_LEN, off, len);
	r = rdma_rw(&P, IBV_WR_RDMA_READ, &host, off, len, &vram, off, &wc);
	if (wc_check(r, &wc, "RDMA READ of what the FILL job wrote") &&
	    !tap_check(data_ok(host.cpu, BUF_LEN, off, len, want, err,
			       sizeof(err)), "RDMA READ sees the FILL job's pattern"))
		tap_diag("%s", err);
	else if (r || wc.status != IBV_WC_SUCCESS)
		tap_check(false, "RDMA READ sees the FILL job's pattern (no completion)");

	/* RDMA WRITE completes, then a job sees its data. */
	pattern(want, len, 202);
	memcpy(host.cpu + off, want, len);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, off, len, &vram, off, &wc);
	if (wc_check(r, &wc, "RDMA WRITE into the buffer"))
		check_by_copy(off, len, "after the WRITE's completion");
	else
		tap_check(false, "a Vela COPY job sees the WRITE (no completion)");
	pressure();
	pl = vela_bo_placement(&dev, vbo);
	tap_check(pl == DRM_VELA_PLACEMENT_VRAM,
		  "BO_INFO: still in VRAM after the jobs and the pressure (placement %d)", pl);
out:
	tap_case_end();
}

/* ------------------------------------ case 3: dma-heap and udmabuf MRs */

#define HEAP_LEN	(2 * MiB)
/* Per exporter: the buffer and its MR, 4 transfers x 2 spans x 2, 3 atomics x 3. */
#define EXP_XFERS	4
#define EXP_CHECKS	(2 + EXP_XFERS * 2 * 2 + 3 * 3)
#define CASE3_CHECKS	(2 * EXP_CHECKS)

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

static int udmabuf_alloc(uint64_t len, int *fd, int *memfd)
{
	struct udmabuf_create c = { .flags = UDMABUF_FLAGS_CLOEXEC, .size = len };
	int m, u, r;

	m = memfd_create("vela-rdma-udmabuf", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (m < 0)
		return -errno;
	if (ftruncate(m, len) || fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK)) {
		r = -errno;
		close(m);
		return r;
	}
	u = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (u < 0) {
		r = -errno;
		close(m);
		return r;
	}
	c.memfd = m;
	r = ioctl(u, UDMABUF_CREATE, &c);
	if (r < 0) {
		r = -errno;
		close(u);
		close(m);
		return r;
	}
	close(u);
	*fd = r;
	*memfd = m;
	return 0;
}

static void dmabuf_sync(int fd, bool start)
{
	struct dma_buf_sync s = {
		.flags = (start ? DMA_BUF_SYNC_START : DMA_BUF_SYNC_END) |
			 DMA_BUF_SYNC_RW,
	};

	if (fd >= 0)
		ioctl(fd, DMA_BUF_IOCTL_SYNC, &s);
}

/*
 * One exporter's atomics: the target in the dma-buf (the result into host
 * memory), then in host memory with the result landing in the dma-buf.
 */
static void exporter_atomics(const char *name, struct region *buf, int sync_fd)
{
	const uint64_t v0 = 0x0badc0de12345678ull, s = 0x7777000011112222ull;
	const uint64_t h0 = 0x2222333344445555ull;
	const uint64_t boff = HEAP_LEN - 4096 + 40, hoff = 2 * MiB + 16;
	char what[128];

	/*
	 * rxe's accesses are the CPU's, through a kernel mapping of the same
	 * pages: one CPU access window around the atomics is enough.
	 */
	dmabuf_sync(sync_fd, true);
	wr64(buf, boff, v0);
	snprintf(what, sizeof(what), "%s: FETCH_ADD on the dma-buf", name);
	atomic_case(what, IBV_WR_ATOMIC_FETCH_AND_ADD, &host, hoff, buf, boff,
		    3, 0, v0, v0 + 3, false);
	snprintf(what, sizeof(what), "%s: CMP_SWP on the dma-buf, equal", name);
	atomic_case(what, IBV_WR_ATOMIC_CMP_AND_SWP, &host, hoff, buf, boff,
		    v0 + 3, s, v0 + 3, s, false);
	wr64(&host, hoff + 64, h0);
	snprintf(what, sizeof(what), "%s: FETCH_ADD on host, result into the dma-buf", name);
	atomic_case(what, IBV_WR_ATOMIC_FETCH_AND_ADD, buf, boff + 64, &host,
		    hoff + 64, 9, 0, h0, h0 + 9, false);
	dmabuf_sync(sync_fd, false);
}

static void exporter(const char *name, bool heap)
{
	static const struct span xs[] = {
		{ 0, 4 * KiB, 12 * KiB },
		{ 123, 1 * MiB + 777, 8 * KiB + 3 },
	};
	/* WRITE host -> dma-buf, READ dma-buf -> host, SEND both ways (move()'s ops). */
	static const struct {
		int op;
		bool in;
	} xfers[EXP_XFERS] = { { 0, true }, { 1, false }, { 2, true }, { 2, false } };
	struct region buf = { 0 };
	int fd = -1, memfd = -1, r, i, t;
	int sync_fd;
	uint8_t *map = MAP_FAILED;
	char what[128];
	struct ibv_wc wc;

	r = heap ? heap_alloc(HEAP_LEN, &fd) : udmabuf_alloc(HEAP_LEN, &fd, &memfd);
	if (!r) {
		map = mmap(NULL, HEAP_LEN, PROT_READ | PROT_WRITE, MAP_SHARED,
			   heap ? fd : memfd, 0);
		if (map == MAP_FAILED)
			r = -errno;
	}
	if (!tap_check(!r, "%s: a 2 MiB dma-buf, mapped%s%s", name, r ? ": " : "",
		       r ? strerror(-r) : "")) {
		for (i = 1; i < EXP_CHECKS; i++)
			tap_check(false, "%s: not reached", name);
		goto out;
	}
	sync_fd = heap ? fd : -1;	/* the CPU maps the udmabuf's memfd */
	r = dmabuf_region(&buf, fd, 0, HEAP_LEN, map);
	if (!tap_check(!r, "%s: ibv_reg_dmabuf_mr%s%s", name, r ? ": " : "",
		       r ? strerrorname_np(-r) : "")) {
		for (i = 2; i < EXP_CHECKS; i++)
			tap_check(false, "%s: not reached", name);
		goto out;
	}
	buf.len = HEAP_LEN;
	for (t = 0; t < EXP_XFERS; t++) {
		for (i = 0; i < 2; i++) {
			const struct span *s = &xs[i];
			bool in = xfers[t].in;
			const struct region *src = in ? &host : &buf;
			const struct region *dst = in ? &buf : &host;
			uint64_t soff = in ? s->hoff : s->off;
			uint64_t doff = in ? s->off : s->hoff;
			uint64_t dsize = in ? HEAP_LEN : BUF_LEN;

			snprintf(what, sizeof(what), "%s: %s %s, %llu bytes at +%llu", name,
				 op_name(xfers[t].op),
				 in ? "host -> dma-buf" : "dma-buf -> host",
				 (unsigned long long)s->len, (unsigned long long)s->off);
			pattern(want, s->len, 300 + t * 2 + i + heap * 10);
			dmabuf_sync(sync_fd, true);
			memcpy(src->cpu + soff, want, s->len);
			guard_set(dst->cpu, dsize, doff, s->len);
			dmabuf_sync(sync_fd, false);
			r = move(xfers[t].op, src, soff, dst, doff, s->len, &wc);
			if (!wc_check(r, &wc, what)) {
				tap_check(false, "%s: data (no completion)", what);
				continue;
			}
			dmabuf_sync(sync_fd, true);
			if (!tap_check(data_ok(dst->cpu, dsize, doff, s->len, want, err,
					       sizeof(err)), "%s: data", what))
				tap_diag("%s", err);
			dmabuf_sync(sync_fd, false);
		}
	}
	exporter_atomics(name, &buf, sync_fd);
	region_dereg(&buf);
out:
	if (map != MAP_FAILED)
		munmap(map, HEAP_LEN);
	if (fd >= 0)
		close(fd);
	if (memfd >= 0)
		close(memfd);
}

static void case3(void)
{
	tap_case_begin("3 heap-udmabuf", CASE3_CHECKS);
	exporter("system dma-heap", true);
	exporter("udmabuf", false);
	tap_case_end();
}

/* --------------------------------- case 4: the device on its own root port */

#define RP_LEN		(1 * MiB)
#define CASE4_CHECKS	14

/* Registers a VRAM_ONLY buffer of device @bdf and lets it go: 0 or -errno. */
static int vram_only_registers(const char *bdf)
{
	struct region m = { 0 };
	struct vela_dev d;
	uint32_t bo;
	int fd = -1, r;

	r = vela_open_bdf(&d, bdf);
	if (!r)
		r = vela_bo_create(&d, RP_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_VRAM_ONLY, &bo);
	if (!r)
		r = vela_bo_export(&d, bo, &fd);
	if (!r)
		r = dmabuf_region(&m, fd, 0, RP_LEN, NULL);
	region_dereg(&m);
	if (fd >= 0)
		close(fd);
	vela_close(&d);
	return r;
}

static void case4(void)
{
	const uint64_t woff = 12345, wlen = 256 * KiB;
	uint32_t bo = 0, chk4 = 0, only = 0;
	uint8_t *map = NULL, *cmap = NULL;
	struct region mr = { 0 };
	struct vela_dev d;
	int fd = -1, ofd = -1, r, pl = -1, ctl;
	struct ibv_wc wc;

	tap_case_begin("4 root-port", CASE4_CHECKS);
	r = vela_open_bdf(&d, rp_bdf);
	if (!r)
		r = vela_bo_create(&d, RP_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE, &bo);
	if (!r)
		r = vela_bo_mmap(&d, bo, RP_LEN, (void **)&map);
	if (!r)
		r = vela_bo_create(&d, RP_LEN, DRM_VELA_BO_CPU_VISIBLE, &chk4);
	if (!r)
		r = vela_bo_mmap(&d, chk4, RP_LEN, (void **)&cmap);
	if (!r)
		r = vela_bo_export(&d, bo, &fd);
	if (!r)
		pl = vela_bo_placement(&d, bo);
	if (!tap_check(!r && pl == DRM_VELA_PLACEMENT_VRAM,
		       "%s (%s): a VRAM buffer (placement %d), filled by the CPU and exported%s%s",
		       rp_bdf, d.node, pl, r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	pattern(want, RP_LEN, 401);
	memcpy(map, want, RP_LEN);
	flush_wc();

	r = dmabuf_region(&mr, fd, 0, RP_LEN, map);
	if (!tap_check(!r, "ibv_reg_dmabuf_mr of a VRAM buffer the NIC cannot reach peer-to-peer%s%s",
		       r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto vram_only;
	pl = vela_bo_placement(&d, bo);
	tap_check(pl == DRM_VELA_PLACEMENT_SYSTEM,
		  "BO_INFO: the exporter moved it to system memory (placement %d)", pl);
	guard_set(host.cpu, BUF_LEN, 0, RP_LEN);
	r = rdma_rw(&P, IBV_WR_RDMA_READ, &host, 0, RP_LEN, &mr, 0, &wc);
	if (wc_check(r, &wc, "RDMA READ of the moved buffer")) {
		if (!tap_check(data_ok(host.cpu, BUF_LEN, 0, RP_LEN, want,
				       err, sizeof(err)),
			       "the CPU's data came along to system memory"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "the moved buffer's data (no completion)");
	}
	pattern(want, wlen, 402);
	memcpy(host.cpu + 3, want, wlen);
	guard_set(map, RP_LEN, woff, wlen);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 3, wlen, &mr, woff, &wc);
	if (wc_check(r, &wc, "RDMA WRITE into the moved buffer")) {
		if (!tap_check(data_ok(map, RP_LEN, woff, wlen, want, err, sizeof(err)),
			       "the WRITE's data through the exporter's mmap"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "the WRITE's data (no completion)");
	}
	guard_set(cmap, RP_LEN, woff, wlen);
	r = vela_copy(&d, bo, woff, chk4, woff, wlen);
	if (!tap_check(!r && data_ok(cmap, RP_LEN, woff, wlen, want, err, sizeof(err)),
		       "a Vela COPY job reads the WRITE's data%s%s", r ? ": " : "",
		       r ? strerror(-r) : ""))
		tap_diag("%s", err);
	pl = vela_bo_placement(&d, bo);
	tap_check(pl == DRM_VELA_PLACEMENT_SYSTEM,
		  "BO_INFO: the job left it in system memory while the MR pins it (placement %d)",
		  pl);
	r = ibv_dereg_mr(mr.mr);
	mr.mr = NULL;
	tap_check(!r, "ibv_dereg_mr: %d", r);

vram_only:
	while (tap_n_left() > 4)
		tap_check(false, "not reached (registration failed)");
	r = vela_bo_create(&d, RP_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_VRAM_ONLY, &only);
	if (!r)
		r = vela_bo_export(&d, only, &ofd);
	if (!tap_check(!r, "a VRAM_ONLY buffer, exported%s%s", r ? ": " : "",
		       r ? strerror(-r) : ""))
		goto out;
	/*
	 * The control: a VRAM_ONLY buffer of the device below the switch
	 * registers, so the refusal below is the exporter's, not one of every
	 * registration (an old librxe says EOPNOTSUPP to all of them).
	 */
	ctl = vram_only_registers(p2p_bdf);
	tap_check(!ctl, "control: a VRAM_ONLY buffer of %s (below the NIC's switch) registers%s%s",
		  p2p_bdf, ctl ? ": " : "", ctl ? strerrorname_np(-ctl) : "");
	r = dmabuf_region(&mr, ofd, 0, RP_LEN, NULL);
	tap_diag("VRAM_ONLY registration from the root-port device: %s",
		 r ? strerrorname_np(-r) : "succeeded");
	tap_errno(r != 0 && !ctl, -r, EOPNOTSUPP,
		  "ibv_reg_dmabuf_mr of a VRAM_ONLY buffer the NIC cannot reach: EOPNOTSUPP");
	region_dereg(&mr);
	pl = vela_bo_placement(&d, only);
	tap_check(pl == DRM_VELA_PLACEMENT_VRAM,
		  "BO_INFO: the VRAM_ONLY buffer stayed in VRAM (placement %d)", pl);
out:
	region_dereg(&mr);
	if (fd >= 0)
		close(fd);
	if (ofd >= 0)
		close(ofd);
	if (map)
		munmap(map, RP_LEN);
	if (cmap)
		munmap(cmap, RP_LEN);
	vela_close(&d);
	tap_case_end();
}

/* ---------------------------------------------------- case 5: bad input */

#define SMALL_LEN	(64 * KiB)
#define CASE5_CHECKS	28

/* Expects ibv_reg_dmabuf_mr to fail with @want (or @alt, when not 0). */
static void bad_reg(uint64_t off, uint64_t len, uint64_t iova, int fd,
		    int access, int want_e, int alt, const char *what)
{
	struct ibv_mr *mr = ibv_reg_dmabuf_mr(R.pd, off, len, iova, fd, access);
	int e = mr ? 0 : errno;

	if (mr)
		ibv_dereg_mr(mr);
	tap_diag("%s: %s", what, mr ? "registered" : strerrorname_np(e));
	if (alt && e == alt)
		want_e = alt;
	tap_errno(!mr, e, want_e, "%s: %s%s%s", what, strerrorname_np(want_e),
		  alt ? " or " : "", alt ? strerrorname_np(alt) : "");
}

static void case5(void)
{
	uint32_t bo = 0, bo2 = 0;
	uint8_t *map = NULL;
	struct region mr = { 0 }, mr2 = { 0 };
	struct vela_dev d, d2;
	int fd = -1, fd2 = -1, closed, memfd, r;
	uint64_t free0 = 0, free1 = 0;
	uint32_t handle;
	struct ibv_wc wc;
	double t;

	tap_case_begin("5 bad-input", CASE5_CHECKS);
	r = vela_open_bdf(&d, p2p_bdf);
	if (!r)
		r = vela_bo_create(&d, SMALL_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE, &bo);
	if (!r)
		r = vela_bo_mmap(&d, bo, SMALL_LEN, (void **)&map);
	if (!r)
		r = vela_bo_export(&d, bo, &fd);
	if (!tap_check(!r, "a 64 KiB VRAM buffer, exported%s%s", r ? ": " : "",
		       r ? strerror(-r) : ""))
		goto out;

	bad_reg(0, SMALL_LEN, IOVA_BASE, -1, ACCESS_ALL, EBADF, 0, "fd -1");
	closed = dup(fd);
	close(closed);
	bad_reg(0, SMALL_LEN, IOVA_BASE, closed, ACCESS_ALL, EBADF, 0, "a closed fd");
	memfd = memfd_create("vela-rdma-not-a-dmabuf", MFD_CLOEXEC);
	if (ftruncate(memfd, SMALL_LEN))
		tap_diag("ftruncate: %s", strerror(errno));
	bad_reg(0, SMALL_LEN, IOVA_BASE, memfd, ACCESS_ALL, EINVAL, EBADF,
		"a memfd (not a dma-buf)");
	close(memfd);
	bad_reg(0, SMALL_LEN, IOVA_BASE, d.fd, ACCESS_ALL, EINVAL, EBADF,
		"the accel fd (a DRM file, not a dma-buf)");
	bad_reg(0, SMALL_LEN + 4096, IOVA_BASE, fd, ACCESS_ALL, EINVAL, 0,
		"length past the buffer's end");
	bad_reg(SMALL_LEN - 4096, 8192, IOVA_BASE + SMALL_LEN - 4096, fd,
		ACCESS_ALL, EINVAL, 0, "offset + length past the end");
	bad_reg(~0ull & ~4095ull, 8192, IOVA_BASE, fd, ACCESS_ALL, EINVAL, 0,
		"offset + length overflowing 64 bits");
	bad_reg(0, SMALL_LEN, IOVA_BASE + 8, fd, ACCESS_ALL, EINVAL, 0,
		"iova not at the offset's place in the page");
	bad_reg(0, SMALL_LEN, IOVA_BASE, fd, IBV_ACCESS_REMOTE_WRITE, EINVAL, 0,
		"REMOTE_WRITE without LOCAL_WRITE");
	bad_reg(0, SMALL_LEN, IOVA_BASE, fd, ACCESS_ALL | IBV_ACCESS_MW_BIND,
		EINVAL, 0, "MW_BIND access");
	bad_reg(0, SMALL_LEN, IOVA_BASE, fd, ACCESS_ALL | IBV_ACCESS_ON_DEMAND,
		EINVAL, EOPNOTSUPP, "ON_DEMAND with a dma-buf");
	bad_reg(0, 0, IOVA_BASE, fd, ACCESS_ALL, EINVAL, 0, "zero length");

	/* An optional access bit means nothing to rxe's CPU copies: it is ignored. */
	r = dmabuf_region(&mr, fd, 0, SMALL_LEN, map);
	if (!r) {
		ibv_dereg_mr(mr.mr);
		mr.mr = ibv_reg_dmabuf_mr(R.pd, 0, SMALL_LEN, IOVA_BASE, fd,
					  ACCESS_ALL | IBV_ACCESS_RELAXED_ORDERING);
		r = mr.mr ? 0 : -errno;
	}
	if (!r) {
		pattern(want, 4096, 503);
		memcpy(host.cpu, want, 4096);
		guard_set(map, SMALL_LEN, 8192, 4096);
		r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 4096, &mr, 8192, &wc);
		if (!r && wc.status != IBV_WC_SUCCESS) {
			tap_diag("WRITE with RELAXED_ORDERING: %s", wc_str(&wc));
			r = -EIO;
		}
		if (r)
			recover_pair();
	}
	tap_check(!r && data_ok(map, SMALL_LEN, 8192, 4096, want, err, sizeof(err)),
		  "RELAXED_ORDERING (an optional access bit) is accepted, and a WRITE lands%s%s",
		  r ? ": " : "", r ? strerrorname_np(-r) : "");
	region_dereg(&mr);

	/* The dma-buf fd closed right after the registration: the MR holds it. */
	r = dmabuf_region(&mr, fd, 0, SMALL_LEN, map);
	close(fd);
	fd = -1;
	if (!tap_check(!r, "registered, then the dma-buf fd closed%s%s",
		       r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	pattern(want, 8 * KiB, 501);
	memcpy(host.cpu, want, 8 * KiB);
	guard_set(map, SMALL_LEN, 4096, 8 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 8 * KiB, &mr, 4096, &wc);
	if (wc_check(r, &wc, "WRITE with the dma-buf fd closed")) {
		if (!tap_check(data_ok(map, SMALL_LEN, 4096, 8 * KiB, want, err,
				       sizeof(err)), "WRITE with the fd closed: data"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "WRITE with the fd closed: data (no completion)");
	}

	/* The GEM handle and the accel fd closed while the MR lives. */
	vela_vram_free(&d, &free0);
	r = vela_open_bdf(&d2, p2p_bdf);
	if (!r)
		r = vela_bo_create(&d2, SMALL_LEN, DRM_VELA_BO_VRAM, &bo2);
	if (!r)
		r = vela_bo_export(&d2, bo2, &fd2);
	if (!r)
		r = dmabuf_region(&mr2, fd2, 0, SMALL_LEN, NULL);
	if (fd2 >= 0)
		close(fd2);
	if (!tap_check(!r, "a second file's VRAM buffer registered%s%s",
		       r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	r = vela_bo_close(&d2, bo2);
	tap_check(!r, "GEM_CLOSE of its handle while the MR lives%s%s",
		  r ? ": " : "", r ? strerror(-r) : "");
	vela_close(&d2);
	vela_vram_free(&d, &free1);
	tap_check(free1 + SMALL_LEN <= free0,
		  "the MR keeps the buffer: VRAM free %llu KiB before it, %llu KiB with only the MR left",
		  (unsigned long long)free0 / KiB, (unsigned long long)free1 / KiB);
	pattern(want, 32 * KiB, 502);
	memcpy(host.cpu, want, 32 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 32 * KiB, &mr2, 777, &wc);
	wc_check(r, &wc, "WRITE with the handle and the accel fd closed");
	guard_set(host2.cpu, BUF_LEN, 64, 32 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_READ, &host2, 64, 32 * KiB, &mr2, 777, &wc);
	wc_check(r, &wc, "READ back with the handle and the accel fd closed");
	if (!tap_check(data_ok(host2.cpu, BUF_LEN, 64, 32 * KiB, want,
			       err, sizeof(err)),
		       "the READ returns what the WRITE put there"))
		tap_diag("%s", err);
	r = ibv_dereg_mr(mr2.mr);
	mr2.mr = NULL;
	tap_check(!r, "ibv_dereg_mr of the MR that outlived its handle and file: %d", r);
	t = now();
	do {
		vela_vram_free(&d, &free1);
	} while (free1 != free0 && now() - t < 5 && !usleep(10000));
	tap_check(free1 == free0,
		  "deregistration frees the buffer: VRAM free back to %llu KiB (%llu KiB)",
		  (unsigned long long)free0 / KiB, (unsigned long long)free1 / KiB);

	/* Deregistering twice. */
	handle = mr.mr->handle;
	r = ibv_dereg_mr(mr.mr);
	mr.mr = NULL;
	tap_check(!r, "ibv_dereg_mr: %d", r);
	r = raw_dereg_mr(R.ctx, handle);
	tap_diag("DEREG_MR of handle %u again: %s", handle,
		 r ? strerrorname_np(-r) : "succeeded");
	tap_check(r == -EINVAL || r == -ENOENT,
		  "a second DEREG_MR of the same handle fails: %s (EINVAL or ENOENT)",
		  r ? strerrorname_np(-r) : "succeeded");
	r = vela_bo_export(&d, bo, &fd);
	if (!r)
		r = dmabuf_region(&mr, fd, 0, SMALL_LEN, map);
	if (!r) {
		r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 4096, &mr, 0, &wc);
		wc_check(r, &wc, "after that, a new registration and a WRITE work");
	} else {
		tap_check(false, "after that, a new registration works: %s",
			  strerrorname_np(-r));
	}
out:
	region_dereg(&mr);
	region_dereg(&mr2);
	if (fd >= 0)
		close(fd);
	if (map)
		munmap(map, SMALL_LEN);
	vela_close(&d);
	tap_case_end();
}

/* --------------------------------------------------------- case 6: revoke */

#define CASE6_CHECKS	13

/* Writes @bdf to the vela driver's @file; waits at most @secs. 0 or -errno. */
static int driver_write(const char *file, const char *bdf, int secs)
{
	double deadline = now() + secs;
	pid_t pid;
	int st;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char path[128];
		int fd;

		snprintf(path, sizeof(path), VELA_DRIVER "/%s", file);
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, bdf, strlen(bdf)) < 0)
			_exit(errno);
		_exit(0);
	}
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return WIFEXITED(st) ? -WEXITSTATUS(st) : -EINTR;
		if (now() > deadline)
			return -ETIMEDOUT;
		usleep(20 * 1000);
	}
}

static int reopen(struct vela_dev *d, const char *bdf)
{
	double deadline = now() + 10;
	int r;

	for (;;) {
		r = vela_open_bdf(d, bdf);
		if (!r || now() > deadline)
			return r;
		usleep(50 * 1000);
	}
}

static void case6(void)
{
	uint32_t bo = 0;
	uint8_t *map = NULL;
	struct region mr = { 0 };
	struct qp_pair p2 = { 0 };
	struct vela_dev d;
	int fd = -1, r, st, pl;
	bool unbound = false;
	struct ibv_wc wc;
	double t;

	tap_case_begin("6 revoke", CASE6_CHECKS);
	/* Cases 1 and 2 are done with the device. */
	region_dereg(&vram);
	if (vmap)
		munmap(vmap, BUF_LEN);
	if (chkmap)
		munmap(chkmap, BUF_LEN);
	vmap = chkmap = NULL;
	if (vfd >= 0)
		close(vfd);
	vfd = -1;
	vela_close(&dev);

	r = vela_open_bdf(&d, p2p_bdf);
	if (!r)
		r = vela_bo_create(&d, RP_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE, &bo);
	if (!r)
		r = vela_bo_mmap(&d, bo, RP_LEN, (void **)&map);
	if (!r)
		r = vela_bo_export(&d, bo, &fd);
	if (!r)
		r = dmabuf_region(&mr, fd, 0, RP_LEN, map);
	if (!tap_check(!r, "%s: a VRAM buffer registered%s%s", p2p_bdf,
		       r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	pattern(want, 64 * KiB, 601);
	memcpy(host.cpu, want, 64 * KiB);
	guard_set(map, RP_LEN, 8192, 64 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 64 * KiB, &mr, 8192, &wc);
	if (wc_check(r, &wc, "WRITE before the unbind")) {
		if (!tap_check(data_ok(map, RP_LEN, 8192, 64 * KiB, want, err,
				       sizeof(err)), "WRITE before the unbind: data"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "WRITE before the unbind: data (no completion)");
	}
	munmap(map, RP_LEN);	/* unbind revokes it; nothing touches it after */
	map = NULL;

	t = now();
	r = driver_write("unbind", p2p_bdf, 60);
	tap_diag("unbind took %.0f ms", (now() - t) * 1000);
	if (!tap_check(!r, "unbind %s with the MR registered%s%s", p2p_bdf,
		       r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	unbound = true;

	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 64 * KiB, &mr, 8192, &wc);
	tap_diag("WRITE into the revoked MR (remote): %s, vendor_err %u",
		 r ? strerror(-r) : wc_str(&wc), r ? 0 : wc.vendor_err);
	tap_check(!r && wc.status != IBV_WC_SUCCESS,
		  "WRITE into the revoked MR completes with an error: %s",
		  r ? strerror(-r) : wc_str(&wc));
	st = qp_state(&P, 0);
	tap_check(st == IBV_QPS_ERR, "the requester's QP went to the error state (%d)", st);

	r = qp_pair_create(&R, &p2);
	if (!r) {
		struct qp_pair keep = P;

		P = p2;
		r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &mr, 8192, 4096, &host2, 0, &wc);
		P = keep;
	}
	tap_diag("WRITE out of the revoked MR (local): %s, vendor_err %u",
		 r ? strerror(-r) : wc_str(&wc), r ? 0 : wc.vendor_err);
	tap_check(!r && wc.status != IBV_WC_SUCCESS,
		  "WRITE out of the revoked MR (its lkey) completes with an error: %s",
		  r ? strerror(-r) : wc_str(&wc));
	qp_pair_destroy(&p2);

	r = ibv_dereg_mr(mr.mr);
	mr.mr = NULL;
	tap_check(!r, "ibv_dereg_mr of the revoked MR: %d", r);
	close(fd);
	fd = -1;
	vela_close(&d);

	r = driver_write("bind", p2p_bdf, 60);
	if (!r)
		r = reopen(&d, p2p_bdf);
	if (!tap_check(!r, "rebind %s: its accel node comes back%s%s", p2p_bdf,
		       r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	unbound = false;
	/* The old pair is in the error state: a new one. */
	qp_pair_destroy(&P);
	r = qp_pair_create(&R, &P);
	if (!r)
		r = vela_bo_create(&d, RP_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE, &bo);
	if (!r)
		r = vela_bo_mmap(&d, bo, RP_LEN, (void **)&map);
	if (!r)
		r = vela_bo_export(&d, bo, &fd);
	if (!r)
		r = dmabuf_region(&mr, fd, 0, RP_LEN, map);
	if (!tap_check(!r, "after the rebind, a new VRAM buffer registered%s%s",
		       r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	pattern(want, 128 * KiB, 602);
	memcpy(host.cpu, want, 128 * KiB);
	guard_set(map, RP_LEN, 333, 128 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 128 * KiB, &mr, 333, &wc);
	if (wc_check(r, &wc, "WRITE after the rebind")) {
		if (!tap_check(data_ok(map, RP_LEN, 333, 128 * KiB, want, err,
				       sizeof(err)), "WRITE after the rebind: data"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "WRITE after the rebind: data (no completion)");
	}
	pl = vela_bo_placement(&d, bo);
	tap_check(pl == DRM_VELA_PLACEMENT_VRAM, "BO_INFO: in VRAM (placement %d)", pl);
out:
	region_dereg(&mr);
	if (map)
		munmap(map, RP_LEN);
	if (fd >= 0)
		close(fd);
	vela_close(&d);
	if (unbound && driver_write("bind", p2p_bdf, 60))
		tap_diag("could not bind %s again", p2p_bdf);
	tap_case_end();
}

/* ---------------------------------------------------------- case 7: reset */

#define CASE7_CHECKS	12
#define INJECT_DIR	"/run/vela/inject"

/*
 * Asks the harness to pass @verb to the device model's control socket
 * (tools/harness/src/model.rs): a request file renamed into place, so the
 * harness never reads half of one, and a reply file polled for. 0 when the
 * reply starts with "ok", else -EIO (-ETIMEDOUT after 20 s).
 */
static int inject(const char *verb)
{
	static unsigned int seq;
	char tmp[128], req[128], rep[128], buf[256] = "";
	double deadline = now() + 20;
	FILE *f;

	mkdir("/run/vela", 0755);
	mkdir(INJECT_DIR, 0755);
	snprintf(tmp, sizeof(tmp), INJECT_DIR "/new-%d-r%u", getpid(), seq);
	snprintf(req, sizeof(req), INJECT_DIR "/req-%d-r%u", getpid(), seq);
	snprintf(rep, sizeof(rep), INJECT_DIR "/rep-%d-r%u", getpid(), seq);
	seq++;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%s\n", verb);
	if (fclose(f) || rename(tmp, req))
		return -errno;
	while (now() < deadline) {
		f = fopen(rep, "r");
		if (f) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = 0;
			fclose(f);
			unlink(rep);
			if (strncmp(buf, "ok", 2))
				tap_diag("inject '%s': %s", verb, buf);
			return strncmp(buf, "ok", 2) ? -EIO : 0;
		}
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

static void case7(void)
{
	uint32_t bo = 0, victim = 0;
	uint8_t *map = NULL;
	struct region mr = { 0 }, mr2 = { 0 };
	struct vela_dev d;
	char verb[64];
	int fd = -1, r, st, pl, dev = -1;
	uint32_t serial = 0;
	struct ibv_wc wc;
	double t;

	tap_case_begin("7 reset", CASE7_CHECKS);
	r = vela_open_bdf(&d, p2p_bdf);
	if (!r)
		r = vela_serial(&d, &serial);
	/*
	 * The harness numbers the VM's devices from 0 and gives device N the
	 * serial N + 1 (tools/harness/src/model.rs, topology()); its inject
	 * requests name devices by that number.
	 */
	dev = (int)serial - 1;
	if (!r)
		r = vela_bo_create(&d, RP_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE, &bo);
	if (!r)
		r = vela_bo_create(&d, 64 * KiB, DRM_VELA_BO_VRAM, &victim);
	if (!r)
		r = vela_bo_mmap(&d, bo, RP_LEN, (void **)&map);
	if (!r)
		r = vela_bo_export(&d, bo, &fd);
	if (!r)
		r = dmabuf_region(&mr, fd, 0, RP_LEN, map);
	if (!tap_check(!r && dev >= 0, "%s (device %d): a VRAM buffer registered%s%s", p2p_bdf,
		       dev, r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	pattern(want, 64 * KiB, 701);
	memcpy(host.cpu, want, 64 * KiB);
	guard_set(map, RP_LEN, 4096, 64 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 64 * KiB, &mr, 4096, &wc);
	if (wc_check(r, &wc, "WRITE before the reset")) {
		if (!tap_check(data_ok(map, RP_LEN, 4096, 64 * KiB, want, err,
				       sizeof(err)), "WRITE before the reset: data"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "WRITE before the reset: data (no completion)");
	}

	/*
	 * A job on a hung copy engine: the driver's watchdog times it out and
	 * resets the device, which revokes every export for its duration.
	 */
	snprintf(verb, sizeof(verb), "dev=%d hang-engine=copy", dev);
	r = inject(verb);
	if (!tap_check(!r, "inject: hang device %d's copy engine%s%s", dev,
		       r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	t = now();
	r = vela_fill(&d, victim, 0, 4096, 0x77777777);
	tap_diag("the hung job's WAIT returned after %.1f s", now() - t);
	tap_check(r == -EIO, "the hung FILL fails with EIO after the timeout and reset: %s",
		  r ? strerrorname_np(-r) : "success");

	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 64 * KiB, &mr, 4096, &wc);
	tap_diag("WRITE into the MR after the reset: %s, vendor_err %u",
		 r ? strerror(-r) : wc_str(&wc), r ? 0 : wc.vendor_err);
	tap_check(!r && wc.status != IBV_WC_SUCCESS,
		  "WRITE into the MR after the reset completes with an error: %s",
		  r ? strerror(-r) : wc_str(&wc));
	st = qp_state(&P, 0);
	tap_check(st == IBV_QPS_ERR, "the requester's QP went to the error state (%d)", st);
	recover_pair();

	/* The device runs again, and the export outlived the reset. */
	r = vela_fill(&d, victim, 0, 4096, 0x12345678);
	tap_check(!r, "a FILL after the reset completes%s%s",
		  r ? ": " : "", r ? strerrorname_np(-r) : "");
	r = dmabuf_region(&mr2, fd, 0, RP_LEN, map);
	if (!tap_check(!r, "the same dma-buf registered again%s%s",
		       r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	pattern(want, 128 * KiB, 702);
	memcpy(host.cpu, want, 128 * KiB);
	guard_set(map, RP_LEN, 999, 128 * KiB);
	r = rdma_rw(&P, IBV_WR_RDMA_WRITE, &host, 0, 128 * KiB, &mr2, 999, &wc);
	if (wc_check(r, &wc, "WRITE into the new MR")) {
		if (!tap_check(data_ok(map, RP_LEN, 999, 128 * KiB, want, err,
				       sizeof(err)), "WRITE into the new MR: data"))
			tap_diag("%s", err);
	} else {
		tap_check(false, "WRITE into the new MR: data (no completion)");
	}
	pl = vela_bo_placement(&d, bo);
	tap_check(pl == DRM_VELA_PLACEMENT_VRAM, "BO_INFO: in VRAM (placement %d)", pl);
out:
	if (dev >= 0) {
		snprintf(verb, sizeof(verb), "dev=%d clear", dev);
		if (inject(verb))
			tap_diag("could not clear device %d's injected faults", dev);
	}
	region_dereg(&mr2);
	region_dereg(&mr);
	if (map)
		munmap(map, RP_LEN);
	if (fd >= 0)
		close(fd);
	vela_close(&d);
	tap_case_end();
}

/* -------------------- case 8: a registration waits for the buffer's jobs */

#define CASE8_CHECKS	6
#define BUSY_JOBS	4
#define BUSY_CMDS	512		/* FILLs of the whole buffer in each job */
#define VA_BUSY		0x100000000ull

/*
 * Jobs that write the buffer are still running when ibv_reg_dmabuf_mr()
 * starts: the registration waits for their fences (DMA_RESV_USAGE_WRITE in
 * the dma-buf's reservation object), so the first RDMA READ sees what the
 * last job wrote. The jobs fill the whole buffer BUSY_CMDS times each with
 * one pattern, and only the last command of the last job with the one READ
 * must see: a READ that ran early sees the CPU's bytes or the first pattern.
 * Each job is well under the driver's 2 s hang timeout.
 */
static void case8(void)
{
	static uint8_t cmds[BUSY_CMDS * DRM_VELA_COMMAND_SIZE];
	const uint32_t busy = 0x0f0f1e1e, last = 0xfee1600d;
	const uint64_t rlen = 1 * MiB;
	uint64_t seq = 0, size = 0;
	struct region mr = { 0 };
	struct vela_dev d;
	uint32_t bo = 0;
	uint8_t *map = NULL;
	bool bound = false;
	int fd = -1, r, j, c, polled;
	double t_sub = 0, t_reg, t0;
	struct ibv_wc wc;

	tap_case_begin("8 reg-waits", CASE8_CHECKS);
	r = vela_open_bdf(&d, p2p_bdf);
	if (!r)
		r = vela_bo_create(&d, BUF_LEN, DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE, &bo);
	if (!r)
		r = vela_bo_mmap(&d, bo, BUF_LEN, (void **)&map);
	if (!r) {
		/* The old contents, which a READ must not see. */
		pattern(want, rlen, 801);
		memcpy(map, want, rlen);
		flush_wc();
		r = vela_bo_export(&d, bo, &fd);
	}
	if (!r)
		r = vela_bind_at(&d, bo, VA_BUSY, &size);
	bound = !r;
	if (!tap_check(!r, "%s: a 4 MiB VRAM buffer, written by the CPU, exported and bound%s%s",
		       p2p_bdf, r ? ": " : "", r ? strerror(-r) : ""))
		goto out;

	t_sub = now();
	for (j = 0; j < BUSY_JOBS && !r; j++) {
		for (c = 0; c < BUSY_CMDS; c++)
			vela_cmd_fill(cmds + c * DRM_VELA_COMMAND_SIZE, VA_BUSY, BUF_LEN,
				      j == BUSY_JOBS - 1 && c == BUSY_CMDS - 1 ? last : busy);
		r = vela_submit(&d, cmds, BUSY_CMDS, &seq);
	}
	polled = r ? r : vela_wait_job(&d, seq, 0);
	if (!tap_check(!r && polled == -ETIME,
		       "%d jobs of %d FILLs of the buffer submitted, still running when the registration starts (WAIT polls: %s)",
		       BUSY_JOBS, BUSY_CMDS, polled ? strerrorname_np(-polled) : "done"))
		goto out;

	t0 = now();
	r = dmabuf_region(&mr, fd, 0, BUF_LEN, map);
	polled = vela_wait_job(&d, seq, 0);
	t_reg = now() - t0;
	tap_diag("the registration took %.0f ms, starting %.1f ms after the first SUBMIT",
		 t_reg * 1000, (t0 - t_sub) * 1000);
	if (!tap_check(!r, "ibv_reg_dmabuf_mr of the buffer the jobs write%s%s",
		       r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	tap_check(polled == 0,
		  "right after it returns, the last job is done (WAIT polls: %s): the registration waited for its fence",
		  polled ? strerrorname_np(-polled) : "done");

	for (c = 0; c < (int)rlen; c += 4)
		memcpy(want + c, &last, 4);
	guard_set(host2.cpu, BUF_LEN, 0, rlen);
	r = rdma_rw(&P, IBV_WR_RDMA_READ, &host2, 0, rlen, &mr, 0, &wc);
	if (wc_check(r, &wc, "RDMA READ of 1 MiB right after the registration")) {
		if (!tap_check(data_ok(host2.cpu, BUF_LEN, 0, rlen, want, err, sizeof(err)),
			       "the READ sees the last job's pattern %#x, not the CPU's bytes or the earlier FILLs",
			       last))
			tap_diag("%s (%#x is the earlier FILLs' pattern)", err, busy);
	} else {
		tap_check(false, "the READ's data (no completion)");
	}
out:
	if (seq) {
		r = vela_wait_job(&d, seq, 20ll * 1000 * 1000 * 1000);
		tap_diag("the jobs done %.0f ms after the first SUBMIT at the latest%s%s",
			 (now() - t_sub) * 1000, r ? ": " : "", r ? strerrorname_np(-r) : "");
	}
	if (bound)
		vela_unbind_at(&d, VA_BUSY, size);
	region_dereg(&mr);
	if (map)
		munmap(map, BUF_LEN);
	if (fd >= 0)
		close(fd);
	vela_close(&d);
	tap_case_end();
}

/* ------------------------------------------------------------------ main */

struct tcase {
	const char *name;
	int checks;
	void (*run)(void);
};

static const struct tcase cases[] = {
	{ "1 transfers", CASE1_CHECKS, case1 },
	{ "2 jobs", CASE2_CHECKS, case2 },
	{ "3 heap-udmabuf", CASE3_CHECKS, case3 },
	{ "4 root-port", CASE4_CHECKS, case4 },
	{ "5 bad-input", CASE5_CHECKS, case5 },
	{ "6 revoke", CASE6_CHECKS, case6 },
	{ "7 reset", CASE7_CHECKS, case7 },
	{ "8 reg-waits", CASE8_CHECKS, case8 },
};

#define NCASES	((int)ARRAY_SIZE(cases))

int main(int argc, char **argv)
{
	bool sel[NCASES] = { false }, any = false, ok;
	int i, n, plan = SETUP_CHECKS;
	double t0 = now();

	for (i = 1; i < argc; i++) {
		n = atoi(argv[i]);
		if (n < 1 || n > NCASES) {
			fprintf(stderr, "usage: %s [case number 1-%d]...\n", argv[0], NCASES);
			return 2;
		}
		sel[n - 1] = any = true;
	}
	for (i = 0; i < NCASES; i++) {
		if (!any)
			sel[i] = true;
		if (sel[i])
			plan += cases[i].checks;
	}
	tap_plan(plan);
	ok = setup();
	for (i = 0; i < NCASES; i++) {
		if (!sel[i])
			continue;
		if (ok) {
			double t = now();

			cases[i].run();
			tap_diag("case %s: %.1f s", cases[i].name, now() - t);
		} else {
			tap_case_begin(cases[i].name, cases[i].checks);
			tap_case_end();
		}
	}
	tap_diag("%.1f s in all", now() - t0);
	return tap_exit();
}
