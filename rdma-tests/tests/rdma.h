/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Soft-RoCE plumbing for the tests: the rxe device on the guest's NIC, and a
 * pair of RC QPs on it connected to each other (loopback), through which
 * every operation goes: qp[0] posts, qp[1] is the remote side.
 */
#ifndef VELA_RDMA_RDMA_H
#define VELA_RDMA_RDMA_H

#include <stdint.h>
#include <infiniband/verbs.h>

#define RXE_NETDEV	"eth0"
#define RXE_NAME	"rxe0"
#define RXE_ADDR	"10.0.0.1/24"

struct rdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	int gid_index;
	union ibv_gid gid;
	enum ibv_mtu mtu;
};

struct qp_pair {
	struct ibv_cq *cq[2];
	struct ibv_qp *qp[2];
};

/*
 * A registered range: @base is the address of its byte 0 in work requests
 * (the buffer's VA for ibv_reg_mr, the iova for ibv_reg_dmabuf_mr); @cpu,
 * when not NULL, the CPU's view of the same byte.
 */
struct region {
	struct ibv_mr *mr;
	uint64_t base;
	uint64_t len;
	uint8_t *cpu;
};

#define ACCESS_ALL	(IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
			 IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC)

/* Brings the NIC up with an IPv4 address and adds rxe0 on it (once). */
int rdma_setup_net(char *err, size_t errlen);
/* Opens rxe0, finds its RoCE v2 IPv4 GID, allocates a PD. */
int rdma_open(struct rdma *r, char *err, size_t errlen);
void rdma_close(struct rdma *r);

int qp_pair_create(struct rdma *r, struct qp_pair *p);
void qp_pair_destroy(struct qp_pair *p);
/* The state of qp[i] (IBV_QPS_*), or -errno. */
int qp_state(struct qp_pair *p, int i);

/*
 * One RDMA WRITE, READ or ATOMIC posted on qp[0], signalled, and waited for
 * (30 s, or $VELA_RDMA_POLL_SECONDS). Returns 0 with the completion in @wc, or -errno when posting failed
 * or no completion came.
 */
int rdma_rw(struct qp_pair *p, enum ibv_wr_opcode op,
	    const struct region *local, uint64_t loff, uint32_t len,
	    const struct region *remote, uint64_t roff, struct ibv_wc *wc);
int rdma_atomic(struct qp_pair *p, enum ibv_wr_opcode op,
		const struct region *local, uint64_t loff,
		const struct region *remote, uint64_t roff,
		uint64_t compare_add, uint64_t swap, struct ibv_wc *wc);
/* A RECV posted on qp[1] into @dst, then a SEND from @src on qp[0]. */
int rdma_send(struct qp_pair *p, const struct region *src, uint64_t soff,
	      const struct region *dst, uint64_t doff, uint32_t len,
	      struct ibv_wc *send_wc, struct ibv_wc *recv_wc);

/* A raw DEREG_MR of @handle through the uverbs write interface: 0 or -errno. */
int raw_dereg_mr(struct ibv_context *ctx, uint32_t handle);

#endif
