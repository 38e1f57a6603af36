// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <rdma/ib_user_verbs.h>

#include "rdma.h"
#include "util.h"

static int sh(const char *cmd, char *err, size_t errlen)
{
	int r = system(cmd);

	if (r != 0) {
		snprintf(err, errlen, "'%s' exited with %d", cmd, r);
		return -EIO;
	}
	return 0;
}

int rdma_setup_net(char *err, size_t errlen)
{
	struct stat st;
	int r;

	/*
	 * rxe's MTU is the netdev's minus its headers, rounded down to an IB
	 * MTU: 4200 gives 4096, a quarter of the packets of the default 1024.
	 * Under TCG each packet costs hundreds of microseconds of emulated
	 * kernel work, so this is most of what a 1 MiB transfer takes.
	 */
	r = sh("ip link set " RXE_NETDEV " mtu 4200 up", err, errlen);
	if (r)
		return r;
	/* "File exists" when a run before this one added it: fine. */
	if (system("ip -4 addr show dev " RXE_NETDEV " | grep -q 'inet 10\\.0\\.0\\.1/'"))
		r = sh("ip addr add " RXE_ADDR " dev " RXE_NETDEV, err, errlen);
	if (r)
		return r;
	if (stat("/sys/class/infiniband/" RXE_NAME, &st))
		r = sh("rdma link add " RXE_NAME " type rxe netdev " RXE_NETDEV,
		       err, errlen);
	return r;
}

static int v4_mapped(const union ibv_gid *g)
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(g->raw, prefix, sizeof(prefix));
}

static int find_gid(struct rdma *r, int tbl_len)
{
	struct ibv_gid_entry e;
	int i;

	for (i = 0; i < tbl_len; i++) {
		if (ibv_query_gid_ex(r->ctx, 1, i, &e, 0))
			continue;
		if (e.gid_type == IBV_GID_TYPE_ROCE_V2 && v4_mapped(&e.gid)) {
			r->gid_index = i;
			r->gid = e.gid;
			return 0;
		}
	}
	return -ENOENT;
}

int rdma_open(struct rdma *r, char *err, size_t errlen)
{
	struct ibv_device **list;
	struct ibv_port_attr pa;
	double deadline;
	int i, n, ret;

	memset(r, 0, sizeof(*r));
	list = ibv_get_device_list(&n);
	if (!list) {
		snprintf(err, errlen, "ibv_get_device_list: %s", strerror(errno));
		return -errno;
	}
	for (i = 0; i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), RXE_NAME))
			break;
	if (i == n) {
		ibv_free_device_list(list);
		snprintf(err, errlen, "no %s among %d RDMA devices", RXE_NAME, n);
		return -ENODEV;
	}
	r->ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	if (!r->ctx) {
		snprintf(err, errlen, "ibv_open_device: %s", strerror(errno));
		return -errno;
	}
	/* The port comes up and its GIDs appear asynchronously. */
	deadline = now() + 10;
	for (;;) {
		ret = ibv_query_port(r->ctx, 1, &pa);
		if (ret) {
			snprintf(err, errlen, "ibv_query_port: %s", strerror(ret));
			return -ret;
		}
		if (pa.state == IBV_PORT_ACTIVE && !find_gid(r, pa.gid_tbl_len))
			break;
		if (now() > deadline) {
			snprintf(err, errlen, "port state %d, no RoCE v2 IPv4 GID after 10 s",
				 pa.state);
			return -ETIMEDOUT;
		}
		usleep(100 * 1000);
	}
	r->mtu = pa.active_mtu;
	r->pd = ibv_alloc_pd(r->ctx);
	if (!r->pd) {
		snprintf(err, errlen, "ibv_alloc_pd: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

void rdma_close(struct rdma *r)
{
	if (r->pd)
		ibv_dealloc_pd(r->pd);
	if (r->ctx)
		ibv_close_device(r->ctx);
	memset(r, 0, sizeof(*r));
}

static int connect_qp(struct rdma *r, struct ibv_qp *qp, uint32_t dest_qpn)
{
	struct ibv_qp_attr a;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = 1;
	a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
			    IBV_ACCESS_REMOTE_ATOMIC;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			    IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (ret)
		return -ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = r->mtu;
	a.dest_qp_num = dest_qpn;
	a.rq_psn = 0;
	a.max_dest_rd_atomic = 4;
	a.min_rnr_timer = 1;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = r->gid;
	a.ah_attr.grh.sgid_index = r->gid_index;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = 1;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			    IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			    IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (ret)
		return -ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	/*
	 * 4.096 us * 2^19, about 2 s before a request is sent again. With 14
	 * (67 ms), the default of many tools, a 1 MiB READ under TCG was sent
	 * again and again before its responses were through, and took longer
	 * than any timeout (431 duplicate requests counted in one run).
	 */
	a.timeout = 19;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = 0;
	a.max_rd_atomic = 4;
	ret = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			    IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			    IBV_QP_MAX_QP_RD_ATOMIC);
	return -ret;
}

int qp_pair_create(struct rdma *r, struct qp_pair *p)
{
	struct ibv_qp_init_attr ia;
	int i, ret;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < 2; i++) {
		p->cq[i] = ibv_create_cq(r->ctx, 64, NULL, NULL, 0);
		if (!p->cq[i])
			goto fail;
		memset(&ia, 0, sizeof(ia));
		ia.send_cq = p->cq[i];
		ia.recv_cq = p->cq[i];
		ia.qp_type = IBV_QPT_RC;
		ia.cap.max_send_wr = 16;
		ia.cap.max_recv_wr = 16;
		ia.cap.max_send_sge = 1;
		ia.cap.max_recv_sge = 1;
		p->qp[i] = ibv_create_qp(r->pd, &ia);
		if (!p->qp[i])
			goto fail;
	}
	for (i = 0; i < 2; i++) {
		ret = connect_qp(r, p->qp[i], p->qp[1 - i]->qp_num);
		if (ret) {
			errno = -ret;
			goto fail;
		}
	}
	return 0;
fail:
	ret = -errno;
	qp_pair_destroy(p);
	return ret ? ret : -EIO;
}

void qp_pair_destroy(struct qp_pair *p)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (p->qp[i])
			ibv_destroy_qp(p->qp[i]);
		if (p->cq[i])
			ibv_destroy_cq(p->cq[i]);
	}
	memset(p, 0, sizeof(*p));
}

int qp_state(struct qp_pair *p, int i)
{
	struct ibv_qp_init_attr ia;
	struct ibv_qp_attr a;
	int ret = ibv_query_qp(p->qp[i], &a, IBV_QP_STATE, &ia);

	return ret ? -ret : (int)a.qp_state;
}

/*
 * Seconds a work request may take: 30 (a lost packet is sent again after
 * about 2 s, up to 7 times), or VELA_RDMA_POLL_SECONDS.
 */
static double poll_seconds(void)
{
	const char *e = getenv("VELA_RDMA_POLL_SECONDS");

	return e && atof(e) > 0 ? atof(e) : 30;
}

static int poll_one(struct ibv_cq *cq, struct ibv_wc *wc)
{
	double deadline = now() + poll_seconds();
	int n;

	for (;;) {
		n = ibv_poll_cq(cq, 1, wc);
		if (n < 0)
			return -EIO;
		if (n == 1)
			return 0;
		if (now() > deadline)
			return -ETIMEDOUT;
		usleep(50);
	}
}

static int post_and_wait(struct qp_pair *p, struct ibv_send_wr *wr,
			 struct ibv_wc *wc)
{
	struct ibv_send_wr *bad;
	int ret;

	ret = ibv_post_send(p->qp[0], wr, &bad);
	if (ret)
		return -ret;
	return poll_one(p->cq[0], wc);
}

int rdma_rw(struct qp_pair *p, enum ibv_wr_opcode op,
	    const struct region *local, uint64_t loff, uint32_t len,
	    const struct region *remote, uint64_t roff, struct ibv_wc *wc)
{
	struct ibv_sge sge = {
		.addr = local->base + loff,
		.length = len,
		.lkey = local->mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 1,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
	};

	wr.wr.rdma.remote_addr = remote->base + roff;
	wr.wr.rdma.rkey = remote->mr->rkey;
	return post_and_wait(p, &wr, wc);
}

int rdma_atomic(struct qp_pair *p, enum ibv_wr_opcode op,
		const struct region *local, uint64_t loff,
		const struct region *remote, uint64_t roff,
		uint64_t compare_add, uint64_t swap, struct ibv_wc *wc)
{
	struct ibv_sge sge = {
		.addr = local->base + loff,
		.length = 8,
		.lkey = local->mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 2,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
	};

	wr.wr.atomic.remote_addr = remote->base + roff;
	wr.wr.atomic.rkey = remote->mr->rkey;
	wr.wr.atomic.compare_add = compare_add;
	wr.wr.atomic.swap = swap;
	return post_and_wait(p, &wr, wc);
}

int rdma_send(struct qp_pair *p, const struct region *src, uint64_t soff,
	      const struct region *dst, uint64_t doff, uint32_t len,
	      struct ibv_wc *send_wc, struct ibv_wc *recv_wc)
{
	struct ibv_sge rsge = {
		.addr = dst->base + doff,
		.length = len,
		.lkey = dst->mr->lkey,
	};
	struct ibv_recv_wr rwr = {
		.wr_id = 3,
		.sg_list = &rsge,
		.num_sge = 1,
	};
	struct ibv_sge ssge = {
		.addr = src->base + soff,
		.length = len,
		.lkey = src->mr->lkey,
	};
	struct ibv_send_wr swr = {
		.wr_id = 4,
		.sg_list = &ssge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	struct ibv_recv_wr *rbad;
	int ret;

	ret = ibv_post_recv(p->qp[1], &rwr, &rbad);
	if (ret)
		return -ret;
	ret = post_and_wait(p, &swr, send_wc);
	if (ret)
		return ret;
	return poll_one(p->cq[1], recv_wc);
}

int raw_dereg_mr(struct ibv_context *ctx, uint32_t handle)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_dereg_mr cmd;
	} req = {
		.hdr = {
			.command = IB_USER_VERBS_CMD_DEREG_MR,
			.in_words = sizeof(req) / 4,
			.out_words = 0,
		},
		.cmd = { .mr_handle = handle },
	};
	ssize_t n = write(ctx->cmd_fd, &req, sizeof(req));

	if (n < 0)
		return -errno;
	return n == sizeof(req) ? 0 : -EIO;
}
