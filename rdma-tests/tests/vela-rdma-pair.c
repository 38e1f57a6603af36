// SPDX-License-Identifier: GPL-2.0
/*
 * vela-rdma-pair: RDMA between two machines' VRAM.
 *
 * Two VMs, each with a Vela device behind the PCIe switch of its NIC, their
 * NICs joined by one network (vela-harness boots them: the "pair" test).
 * Soft-RoCE (rxe) runs on each NIC; each side registers a VRAM buffer of its
 * Vela device as a dma-buf MR, and the two exchange what a connection needs
 * (QPN, GID, PSN, MTU, rkey, address) over TCP.
 *
 *   VM A (--client, 10.0.0.1)             VM B (--server, 10.0.0.2)
 *   a COPY job computes a pattern into
 *   A's VRAM; RDMA WRITE A's VRAM  ---->  B's VRAM; a COPY job reads it into
 *                                         system memory, compared byte by byte
 *                                         a COPY job computes another pattern
 *   A's VRAM  <---- RDMA READ ----------  into B's VRAM
 *   a COPY job reads it back, compared
 *
 * for 1 MiB and for a size that is not a multiple of the page (at an odd
 * offset). Each side checks its whole buffer after every transfer: what was
 * transferred, and that nothing else changed (the buffer starts filled with
 * a background by a FILL job). Each side prints TAP for its own checks.
 *
 * --explain says what happens in plain words on stderr (make run).
 * --corrupt-expected (or VELA_PAIR_CORRUPT=1 in the environment) flips one
 * byte of the data the checking side expects, to show that the checks fail.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rdma.h"
#include "tap.h"
#include "vela.h"
#include "util.h"

#define KiB		1024ull
#define MiB		(1024 * KiB)
#define BUF_LEN		(2 * MiB)	/* each side's VRAM buffer: a power of two, one run */
#define IOVA_BASE	0x7e0000000000ull
#define BACKGROUND	0x5a5a5a5au
#define PORT		18515
#define ADDR_A		"10.0.0.1"
#define ADDR_B		"10.0.0.2"
#define CONNECT_SECS	240		/* B may boot later than A */
#define PEER_SECS	180		/* the other side's longest step */

struct span {
	uint64_t off, len;
	const char *name;
};

static const struct span spans[] = {
	{ 0, 1 * MiB, "1 MiB" },
	{ 1 * MiB + 4096 + 123, 300 * KiB + 777, "300 KiB + 777 bytes at an odd offset" },
};

#define NSPANS		(sizeof(spans) / sizeof(spans[0]))
#define SETUP_CHECKS	8
#define SPAN_CHECKS_A	6
#define SPAN_CHECKS_B	3
#define END_CHECKS	2

/* What each side tells the other at the start (big-endian on the wire). */
struct conn_info {
	uint32_t qpn, psn, rkey, mtu;
	uint64_t addr, len;
	uint8_t gid[16];
};

enum msg_type { MSG_WROTE = 1, MSG_CHECKED, MSG_READY, MSG_READ, MSG_BYE, MSG_RTS };

struct msg {
	uint32_t type, span, ok, pad;
};

static bool server, explain, corrupt;
static const char *me = "VM A", *peer_name = "VM B";
static char err[256];

static struct rdma R;
static struct ibv_cq *cq;
static struct ibv_qp *qp;
static struct conn_info mine, theirs;
static int sock = -1;
static double xfer_secs;		/* how long the last post_rw() waited */

static struct vela_dev dev;
static uint32_t vbo, pat, chk;		/* VRAM; pattern and check buffers (system) */
static uint8_t *patmap, *chkmap;
static uint8_t *img;			/* what this side's VRAM buffer must hold */
static int vfd = -1;
static struct ibv_mr *mr;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	if (!explain)
		return;
	fprintf(stderr, "%s: ", me);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

static uint32_t seed_write(unsigned int i) { return 1000 + i; }
static uint32_t seed_read(unsigned int i) { return 2000 + i; }

/* ---------------------------------------------------------------- network */

static int sh(const char *cmd)
{
	int r = system(cmd);

	if (r)
		snprintf(err, sizeof(err), "'%s' exited with %d", cmd, r);
	return r ? -EIO : 0;
}

static int setup_net(const char *addr)
{
	char cmd[160];
	struct stat st;
	int r;

	/* As rdma_setup_net(): 4096-byte rxe packets (the peer does the same). */
	r = sh("ip link set " RXE_NETDEV " mtu 4200 up");
	if (r)
		return r;
	snprintf(cmd, sizeof(cmd),
		 "ip -4 addr show dev " RXE_NETDEV " | grep -q 'inet %s/' || ip addr add %s/24 dev " RXE_NETDEV,
		 addr, addr);
	r = sh(cmd);
	if (!r && stat("/sys/class/infiniband/" RXE_NAME, &st))
		r = sh("rdma link add " RXE_NAME " type rxe netdev " RXE_NETDEV);
	return r;
}

static int set_timeout(int fd, int secs)
{
	struct timeval tv = { .tv_sec = secs };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

/* B listens, A connects (retrying while B boots); returns the connected socket. */
static int tcp_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	double deadline = now() + CONNECT_SECS;
	int one = 1, fd, c;

	err[0] = 0;
	if (server) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1) ||
		    set_timeout(fd, CONNECT_SECS)) {
			c = -errno;
			close(fd);
			return c;
		}
		c = accept(fd, NULL, NULL);
		if (c < 0) {
			c = -errno;
			snprintf(err, sizeof(err), "%s did not connect within %d s: %s",
				 peer_name, CONNECT_SECS, strerror(-c));
		}
		close(fd);
		return c;
	}
	inet_pton(AF_INET, ADDR_B, &sa.sin_addr);
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		c = -errno;
		close(fd);
		if (now() > deadline) {
			/* Said plainly: the usual cause is that VM B never booted. */
			snprintf(err, sizeof(err),
				 "%s (" ADDR_B ") did not accept on TCP port %d within %d s (did it boot?): %s",
				 peer_name, PORT, CONNECT_SECS, strerror(-c));
			return c;
		}
		sleep(1);
	}
}

static int xfer_all(bool out, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = out ? send(sock, p, len, MSG_NOSIGNAL) : recv(sock, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= n;
	}
	return 0;
}

static int send_msg(enum msg_type type, unsigned int span, bool ok)
{
	struct msg m = { htonl(type), htonl(span), htonl(ok), 0 };

	return xfer_all(true, &m, sizeof(m));
}

/* Waits for the other side's @type for @span; its "ok" in @ok. */
static int recv_msg(enum msg_type type, unsigned int span, bool *ok)
{
	struct msg m;
	int r = xfer_all(false, &m, sizeof(m));

	if (r)
		return r;
	if (ntohl(m.type) != type || ntohl(m.span) != span) {
		snprintf(err, sizeof(err), "got message %u for span %u, want %u for %u",
			 ntohl(m.type), ntohl(m.span), type, span);
		return -EPROTO;
	}
	if (ok)
		*ok = ntohl(m.ok);
	return 0;
}

static int exchange(void)
{
	struct conn_info out = {
		.qpn = htonl(mine.qpn), .psn = htonl(mine.psn),
		.rkey = htonl(mine.rkey), .mtu = htonl(mine.mtu),
		.addr = htobe64(mine.addr), .len = htobe64(mine.len),
	};
	struct conn_info in;
	int r;

	memcpy(out.gid, mine.gid, 16);
	r = xfer_all(true, &out, sizeof(out));
	if (!r)
		r = xfer_all(false, &in, sizeof(in));
	if (r)
		return r;
	theirs.qpn = ntohl(in.qpn);
	theirs.psn = ntohl(in.psn);
	theirs.rkey = ntohl(in.rkey);
	theirs.mtu = ntohl(in.mtu);
	theirs.addr = be64toh(in.addr);
	theirs.len = be64toh(in.len);
	memcpy(theirs.gid, in.gid, 16);
	return 0;
}

/* ------------------------------------------------------------------- RDMA */

static int qp_create(void)
{
	struct ibv_qp_init_attr ia = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};

	cq = ibv_create_cq(R.ctx, 16, NULL, NULL, 0);
	if (!cq)
		return -errno;
	ia.send_cq = cq;
	ia.recv_cq = cq;
	qp = ibv_create_qp(R.pd, &ia);
	return qp ? 0 : -errno;
}

/* INIT, RTR towards the other side's QP, RTS. */
static int qp_connect(void)
{
	struct ibv_qp_attr a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			    IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (ret)
		return -ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = mine.mtu < theirs.mtu ? mine.mtu : theirs.mtu;
	a.dest_qp_num = theirs.qpn;
	a.rq_psn = theirs.psn;
	a.max_dest_rd_atomic = 4;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	memcpy(a.ah_attr.grh.dgid.raw, theirs.gid, 16);
	a.ah_attr.grh.sgid_index = R.gid_index;
	a.ah_attr.grh.hop_limit = 64;
	a.ah_attr.port_num = 1;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			    IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			    IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (ret)
		return -ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	/*
	 * The local ACK timeout, 4.096 us << 20 = 4.3 s. The link is two TCG
	 * guests on a loaded host: a peer descheduled for longer than the
	 * timeout (268 ms at 16) made rxe resend its whole window, go-back-N,
	 * every timeout, into a link that drains at the peer's pace, and the
	 * ACKs stopped coming back (Documentation/rdma.rst). retry_cnt 7 is
	 * "retry for ever" to rxe; post_rw()'s deadline bounds the wait.
	 */
	a.timeout = 20;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = mine.psn;
	a.max_rd_atomic = 4;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			    IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			    IBV_QP_MAX_QP_RD_ATOMIC);
	return -ret;
}

/*
 * rxe0's non-zero port counters on one diagnostic line: what the transport
 * did (retries, duplicates, sequence errors), so that a transfer that failed
 * or took long says why in the TAP.
 */
static void counters_diag(const char *when)
{
	const char *dir = "/sys/class/infiniband/" RXE_NAME "/ports/1/hw_counters";
	char line[1024], path[512];
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (!d) {
		tap_diag("%s: %s counters: %s", when, RXE_NAME, strerror(errno));
		return;
	}
	line[0] = 0;
	while ((de = readdir(d))) {
		unsigned long long v;
		FILE *f;
		int got;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		got = fscanf(f, "%llu", &v);
		fclose(f);
		if (got == 1 && v && n < sizeof(line))
			n += snprintf(line + n, sizeof(line) - n, " %s=%llu", de->d_name, v);
	}
	closedir(d);
	tap_diag("%s: %s counters:%s", when, RXE_NAME, line[0] ? line : " all zero");
}

/*
 * The link as the guest's network stack sees it, for a transfer that did not
 * complete: the peer's neighbour entry, the NIC's packet counters and the UDP
 * errors, that is, whether packets left, arrived or stopped on the way.
 */
static void link_diag(void)
{
	char line[256];
	FILE *f = popen("ip neigh show dev " RXE_NETDEV "; ip -s link show dev " RXE_NETDEV
			"; grep '^Udp:' /proc/net/snmp", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		tap_diag("link: %s", line);
	}
	pclose(f);
}

/* The QP's state and PSNs as the verbs see them. */
static void qp_diag(void)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	if (ibv_query_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN | IBV_QP_RQ_PSN, &ia))
		tap_diag("QP %#x: ibv_query_qp failed: %s", mine.qpn, strerror(errno));
	else
		tap_diag("QP %#x: state %d, sq_psn %#x, rq_psn %#x", mine.qpn, a.qp_state,
			 a.sq_psn, a.rq_psn);
}

/* Everything above, for a transfer that did not complete or did not come. */
static void transfer_diag(const char *when)
{
	qp_diag();
	link_diag();
	counters_diag(when);
}

/* One signalled WRITE or READ between our MR and the other side's, waited for (60 s). */
static int post_rw(enum ibv_wr_opcode op, uint64_t off, uint32_t len,
		   struct ibv_wc *wc)
{
	struct ibv_sge sge = {
		.addr = mine.addr + off, .length = len, .lkey = mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = off, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
	}, *bad;
	double start = now(), deadline = start + 60;
	int n, ret;

	xfer_secs = 0;		/* a post that fails waited for nothing */
	wr.wr.rdma.remote_addr = theirs.addr + off;
	wr.wr.rdma.rkey = theirs.rkey;
	ret = ibv_post_send(qp, &wr, &bad);
	if (ret)
		return -ret;
	for (;;) {
		n = ibv_poll_cq(cq, 1, wc);
		xfer_secs = now() - start;
		if (n < 0)
			return -EIO;
		if (n == 1)
			return 0;
		if (now() > deadline)
			return -ETIMEDOUT;
		usleep(100);
	}
}

/* ------------------------------------------------------------------- Vela */

/* The Vela device below the NIC's switch (the one rxe reaches peer-to-peer). */
static int find_vela(char bdf[16])
{
	struct pci_place nic, v[8];
	int i, n;

	if (pci_place_of("/sys/class/net/" RXE_NETDEV "/device", &nic))
		return -ENODEV;
	n = vela_list(v, 8);
	for (i = 0; i < n; i++)
		if (pci_share_bridge(&v[i], &nic)) {
			memcpy(bdf, v[i].bdf, sizeof(v[i].bdf));
			return 0;
		}
	return -ENODEV;
}

/* Writes @seed's pattern into [off, off + len) of the VRAM buffer: the CPU
 * into the pattern buffer (system memory), a COPY job from there into VRAM. */
static int compute_into_vram(const struct span *s, uint32_t seed)
{
	int r;

	pattern(patmap + s->off, s->len, seed);
	__sync_synchronize();
	r = vela_copy(&dev, pat, s->off, vbo, s->off, s->len);
	if (!r)
		pattern(img + s->off, s->len, seed);
	return r;
}

/*
 * The device's check: a COPY job of the whole VRAM buffer into the check
 * buffer (system memory), compared byte by byte with what it must hold.
 */
static bool device_check(const char *what)
{
	/* The one Vela device of each VM is the harness's vela0. */
	size_t i;
	int r;

	memset(chkmap, 0xee, BUF_LEN);
	__sync_synchronize();
	r = vela_copy(&dev, vbo, 0, chk, 0, BUF_LEN);
	if (r)
		return tap_check(false, "%s: a COPY job of vela0 (%s) reads the VRAM buffer (%s)",
				 what, dev.bdf, strerror(-r));
	if (!memcmp(chkmap, img, BUF_LEN))
		return tap_check(true, "%s: a COPY job of vela0 (%s) reads the whole VRAM buffer (%llu bytes) into system memory: byte by byte as expected, the background around it unchanged",
				 what, dev.bdf, BUF_LEN);
	for (i = 0; i < BUF_LEN && chkmap[i] == img[i]; i++)
		;
	tap_diag("first difference at byte %zu of the buffer: got 0x%02x, want 0x%02x",
		 i, chkmap[i], img[i]);
	/* Later checks report only differences of their own. */
	memcpy(img, chkmap, BUF_LEN);
	return tap_check(false, "%s: a COPY job of vela0 (%s) reads the VRAM buffer back as expected",
			 what, dev.bdf);
}

/* The received data's expected image; --corrupt-expected spoils one byte of it. */
static void expect_received(const struct span *s, uint32_t seed)
{
	pattern(img + s->off, s->len, seed);
	if (corrupt) {
		img[s->off + s->len / 2] ^= 0x01;
		tap_diag("--corrupt-expected: byte %llu of the expected data flipped",
			 (unsigned long long)(s->off + s->len / 2));
	}
}

static bool bo_in_vram(const char *when)
{
	int p = vela_bo_placement(&dev, vbo);

	return tap_check(p == DRM_VELA_PLACEMENT_VRAM,
			 "BO_INFO says VRAM %s (placement %d)", when, p);
}

/* ------------------------------------------------------------------ cases */

static bool setup(void)
{
	const char *addr = server ? ADDR_B : ADDR_A;
	char bdf[16] = "", gid[INET6_ADDRSTRLEN];
	bool ok = false;
	int r;

	tap_case_begin("setup", SETUP_CHECKS);
	say("bringing up eth0 as %s and Soft-RoCE (rxe0) on it", addr);
	r = setup_net(addr);
	if (!tap_check(!r, "%s up with %s/24, %s added on it%s%s", RXE_NETDEV, addr,
		       RXE_NAME, r ? ": " : "", r ? err : ""))
		goto out;
	r = rdma_open(&R, err, sizeof(err));
	if (!r)
		r = qp_create();
	if (!tap_check(!r, "%s opens with a RoCE v2 IPv4 GID, an RC QP created%s%s",
		       RXE_NAME, r ? ": " : "", r ? (R.ctx ? strerror(-r) : err) : ""))
		goto out;
	inet_ntop(AF_INET6, R.gid.raw, gid, sizeof(gid));
	tap_diag("GID index %d (%s), MTU %d", R.gid_index, gid, 128 << R.mtu);

	/* Connected first: a side that fails later closes it, and the other stops waiting. */
	say(server ? "waiting for VM A on TCP port %d" : "connecting to VM B (" ADDR_B ") on TCP port %d",
	    PORT);
	sock = tcp_connect();
	r = sock < 0 ? sock : set_timeout(sock, PEER_SECS);
	if (!tap_check(!r, "TCP connection to %s%s%s", peer_name, r ? ": " : "",
		       r ? (sock < 0 && err[0] ? err : strerror(-r)) : ""))
		goto out;

	r = find_vela(bdf);
	if (!r)
		r = vela_open_bdf(&dev, bdf);
	if (!r)
		r = vela_bo_create(&dev, BUF_LEN, DRM_VELA_BO_VRAM, &vbo);
	if (!r)
		r = vela_bo_create(&dev, BUF_LEN, DRM_VELA_BO_CPU_VISIBLE, &pat);
	if (!r)
		r = vela_bo_mmap(&dev, pat, BUF_LEN, (void **)&patmap);
	if (!r)
		r = vela_bo_create(&dev, BUF_LEN, DRM_VELA_BO_CPU_VISIBLE, &chk);
	if (!r)
		r = vela_bo_mmap(&dev, chk, BUF_LEN, (void **)&chkmap);
	img = malloc(BUF_LEN);
	if (!r && !img)
		r = -ENOMEM;
	if (!r) {
		/* The background every check expects outside what was transferred. */
		r = vela_fill(&dev, vbo, 0, BUF_LEN, BACKGROUND);
		memset(img, 0x5a, BUF_LEN);
	}
	if (!tap_check(!r, "Vela %s below the NIC's switch: a 2 MiB VRAM buffer filled by a FILL job, pattern and check buffers in system memory%s%s",
		       bdf[0] ? bdf : "(none)", r ? ": " : "", r ? strerror(-r) : ""))
		goto out;

	r = vela_bo_export(&dev, vbo, &vfd);
	if (!r) {
		mr = ibv_reg_dmabuf_mr(R.pd, 0, BUF_LEN, IOVA_BASE, vfd,
				       IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
				       IBV_ACCESS_REMOTE_READ);
		if (!mr)
			r = -errno;
	}
	if (!tap_check(!r, "the VRAM buffer exported and registered with ibv_reg_dmabuf_mr (iova %#llx)%s%s",
		       IOVA_BASE, r ? ": " : "", r ? strerrorname_np(-r) : ""))
		goto out;
	say("a 2 MiB buffer in vela0's VRAM (%s), registered with rxe0 as a dma-buf MR (rkey %#x): it stays in VRAM",
	    bdf, mr->rkey);
	if (!bo_in_vram("once the MR is registered"))
		goto out;

	mine.qpn = qp->qp_num;
	srand48(getpid() ^ (long)now());
	mine.psn = lrand48() & 0xffffff;
	mine.rkey = mr->rkey;
	mine.mtu = R.mtu;
	mine.addr = IOVA_BASE;
	mine.len = BUF_LEN;
	memcpy(mine.gid, R.gid.raw, 16);
	r = exchange();
	if (!tap_check(!r, "QPN, GID, PSN, MTU, rkey and address exchanged with %s%s%s",
		       peer_name, r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	inet_ntop(AF_INET6, theirs.gid, gid, sizeof(gid));
	tap_diag("%s: QPN %#x, GID %s, PSN %#x, rkey %#x, address %#llx, %llu bytes",
		 peer_name, theirs.qpn, gid, theirs.psn, theirs.rkey,
		 (unsigned long long)theirs.addr, (unsigned long long)theirs.len);
	r = theirs.len < BUF_LEN ? -EINVAL : qp_connect();
	/*
	 * Neither side sends before both are in RTS: a request that reaches a
	 * QP still in INIT is dropped, and only the retransmit timer recovers it.
	 */
	if (!r)
		r = send_msg(MSG_RTS, 0, true);
	if (!r)
		r = recv_msg(MSG_RTS, 0, NULL);
	ok = tap_check(!r, "QP %#x connected to %s's QP %#x (RTS), and %s's to ours%s%s", mine.qpn,
		       peer_name, theirs.qpn, peer_name, r ? ": " : "",
		       r ? (r == -EPROTO ? err : strerror(-r)) : "");
	say("connected: my QP %#x <-> %s's QP %#x", mine.qpn, peer_name, theirs.qpn);
out:
	tap_case_end();
	return ok;
}

/*
 * The spans return whether the link still works: a wrong byte fails its check
 * and the next span still runs; a failed job, transfer or message ends the
 * run (the socket closes, and the other side stops waiting).
 */

/* VM A: a pattern computed into its VRAM and written into B's; B's pattern read back. */
static bool span_client(unsigned int i)
{
	const struct span *s = &spans[i];
	char what[96];
	struct ibv_wc wc;
	bool alive = false, peer_ok = false, ok;
	int r;

	snprintf(what, sizeof(what), "span %u (%s)", i, s->name);
	tap_case_begin(what, SPAN_CHECKS_A);
	say("computing %s into vela0's VRAM (a COPY job on vela0 from a pattern in system memory)...",
	    s->name);
	r = compute_into_vram(s, seed_write(i));
	if (!tap_check(!r, "a COPY job computes the pattern into VRAM%s%s",
		       r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	say("RDMA WRITE of %s from vela0's VRAM into VM B's VRAM, over the network...", s->name);
	r = post_rw(IBV_WR_RDMA_WRITE, s->off, s->len, &wc);
	if (!tap_check(!r && wc.status == IBV_WC_SUCCESS,
		       "RDMA WRITE from the VRAM MR into %s's VRAM MR completes: %s (%.2f s)",
		       peer_name, r ? strerror(-r) : ibv_wc_status_str(wc.status), xfer_secs)) {
		transfer_diag("after the WRITE");
		goto out;
	}
	r = send_msg(MSG_WROTE, i, true);
	if (!r)
		r = recv_msg(MSG_CHECKED, i, &peer_ok);
	say("VM B says its vela0 checked it: %s", r ? "no answer" : peer_ok ? "ok" : "MISMATCH");
	if (!tap_check(!r && peer_ok, "%s's device found the data in its VRAM%s%s",
		       peer_name, r ? ": " : "", r ? strerror(-r) : "") && r)
		goto out;
	r = recv_msg(MSG_READY, i, NULL);
	if (!tap_check(!r, "%s computed a pattern into its VRAM%s%s", peer_name,
		       r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	say("RDMA READ of %s from VM B's VRAM into vela0's VRAM...", s->name);
	r = post_rw(IBV_WR_RDMA_READ, s->off, s->len, &wc);
	if (!tap_check(!r && wc.status == IBV_WC_SUCCESS,
		       "RDMA READ from %s's VRAM MR into the VRAM MR completes: %s (%.2f s)",
		       peer_name, r ? strerror(-r) : ibv_wc_status_str(wc.status), xfer_secs)) {
		transfer_diag("after the READ");
		goto out;
	}
	expect_received(s, seed_read(i));
	ok = device_check("what the READ brought from VM B");
	say("vela0 checked what the READ brought (a COPY job into system memory, compared byte by byte): %s",
	    ok ? "ok" : "MISMATCH");
	alive = !send_msg(MSG_READ, i, ok);
out:
	tap_case_end();
	return alive;
}

/* VM B: checks what A wrote, then computes what A reads. */
static bool span_server(unsigned int i)
{
	const struct span *s = &spans[i];
	char what[96];
	bool alive = false, good;
	int r;

	snprintf(what, sizeof(what), "span %u (%s)", i, s->name);
	tap_case_begin(what, SPAN_CHECKS_B);
	say("waiting for VM A's RDMA WRITE of %s...", s->name);
	r = recv_msg(MSG_WROTE, i, NULL);
	if (r) {
		tap_check(false, "%s wrote (%s)", peer_name, r == -EPROTO ? err : strerror(-r));
		transfer_diag("waiting for the WRITE");
		goto out;
	}
	expect_received(s, seed_write(i));
	good = device_check("what VM A's WRITE brought");
	say("vela0 checked what VM A wrote into its VRAM (a COPY job into system memory, compared byte by byte): %s",
	    good ? "ok" : "MISMATCH");
	if (send_msg(MSG_CHECKED, i, good))
		goto out;
	say("computing another pattern (%s) into vela0's VRAM for VM A to read...", s->name);
	r = compute_into_vram(s, seed_read(i));
	if (!tap_check(!r, "a COPY job computes another pattern into VRAM%s%s",
		       r ? ": " : "", r ? strerror(-r) : ""))
		goto out;
	r = send_msg(MSG_READY, i, true);
	if (!r)
		r = recv_msg(MSG_READ, i, &good);
	tap_check(!r && good, "%s read it and its device found it in its VRAM%s%s",
		  peer_name, r ? ": " : "", r ? strerror(-r) : "");
	alive = !r;
out:
	tap_case_end();
	return alive;
}

static void end(void)
{
	int r;

	tap_case_begin("end", END_CHECKS);
	bo_in_vram("after the transfers, the MR still registered");
	/* Each side deregisters only when the other is done with its MR. */
	r = send_msg(MSG_BYE, 0, true);
	if (!r)
		r = recv_msg(MSG_BYE, 0, NULL);
	if (r)
		tap_diag("goodbye: %s", strerror(-r));
	r = ibv_dereg_mr(mr);
	mr = NULL;
	tap_check(!r, "the dma-buf MR deregisters%s%s", r ? ": " : "", r ? strerror(r) : "");
	tap_case_end();
}

static void usage(void)
{
	fprintf(stderr, "usage: vela-rdma-pair --server|--client [--explain] [--corrupt-expected]\n"
		"  --server   VM B (" ADDR_B "): waits for VM A, checks what it writes\n"
		"  --client   VM A (" ADDR_A "): writes into VM B's VRAM and reads from it\n");
}

int main(int argc, char **argv)
{
	bool role = false, alive;
	int ret;
	unsigned int i;
	const char *e;

	for (i = 1; i < (unsigned int)argc; i++) {
		if (!strcmp(argv[i], "--server")) {
			server = true;
			role = true;
		} else if (!strcmp(argv[i], "--client")) {
			role = true;
		} else if (!strcmp(argv[i], "--explain")) {
			explain = true;
		} else if (!strcmp(argv[i], "--corrupt-expected")) {
			corrupt = true;
		} else if (!strcmp(argv[i], "--help")) {
			usage();
			return 0;
		} else {
			usage();
			return 2;
		}
	}
	if (!role) {
		usage();
		return 2;
	}
	e = getenv("VELA_PAIR_CORRUPT");
	if (e && *e && strcmp(e, "0"))
		corrupt = true;
	if (server) {
		me = "VM B";
		peer_name = "VM A";
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	tap_plan(SETUP_CHECKS + NSPANS * (server ? SPAN_CHECKS_B : SPAN_CHECKS_A) + END_CHECKS);
	tap_diag("%s (%s), RDMA between two machines' VRAM", me,
		 server ? "server, " ADDR_B : "client, " ADDR_A);
	alive = setup();
	for (i = 0; i < NSPANS; i++) {
		if (alive) {
			alive = server ? span_server(i) : span_client(i);
		} else {
			tap_case_begin("span", server ? SPAN_CHECKS_B : SPAN_CHECKS_A);
			tap_case_end();
		}
		if (!alive && sock >= 0) {
			/* The other side stops waiting. */
			close(sock);
			sock = -1;
		}
	}
	if (alive) {
		end();
	} else {
		tap_case_begin("end", END_CHECKS);
		tap_case_end();
	}
	if (mr)
		ibv_dereg_mr(mr);
	if (sock >= 0)
		close(sock);
	if (vfd >= 0)
		close(vfd);
	if (qp)
		ibv_destroy_qp(qp);
	if (cq)
		ibv_destroy_cq(cq);
	rdma_close(&R);
	vela_close(&dev);
	counters_diag("at the end");
	ret = tap_exit();
	say(ret ? "FAILED (see the TAP)" : "done: every byte arrived where it should");
	return ret;
}
