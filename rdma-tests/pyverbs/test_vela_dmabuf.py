#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""RDMA into Vela VRAM from Python, on rdma-core's pyverbs (TAP on stdout).

A Vela VRAM buffer is made with raw ioctls (fcntl.ioctl and struct: BO_CREATE
with VRAM | CPU_VISIBLE, BO_MMAP_OFFSET and an mmap of the accel node,
PRIME_HANDLE_TO_FD), registered with pyverbs' DmaBufMR on rxe0, and RDMA WRITE
and READ move data between it and a host MR over a loopback RC QP pair, both
with the VRAM MR as the remote and as the local side; every transfer is checked
through the buffer's mmap, the bytes around it included. BO_INFO must say VRAM
while the MR lives.

    test_vela_dmabuf.py [--corrupt-expected] [--uapi-helper PATH]

--corrupt-expected flips one byte of what the first data check expects, to
show that check failing. The ioctl numbers and layouts are computed here
(_IOWR of struct formats) and compared first with what the C compiler makes of
the header (vela-uapi-ioctls, built from uapi/drm/vela_accel.h beside this
script); a mismatch fails the run before the device is touched.
"""

import argparse
import fcntl
import mmap
import os
import struct
import subprocess
import sys
import time
import traceback

# --- ioctl encoding, as include/uapi/asm-generic/ioctl.h -------------------
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction, typ, nr, size):
    assert size < (1 << 14) and nr < 256 and typ < 256
    return (direction << 30) | (size << 16) | (typ << 8) | nr


def _iowr(typ, nr, size):
    return _ioc(_IOC_READ | _IOC_WRITE, typ, nr, size)


DRM_IOCTL_BASE = ord('d')
DRM_COMMAND_BASE = 0x40


class Struct:
    """A C struct as (field, struct format) pairs, packed without padding
    (every field of these structs is naturally aligned)."""

    def __init__(self, name, fields):
        self.name = name
        self.fields = fields
        self.fmt = '=' + ''.join(f for _, f in fields)
        self.size = struct.calcsize(self.fmt)

    def offsets(self):
        off, out = 0, {}
        for name, f in self.fields:
            out[name] = off
            off += struct.calcsize('=' + f)
        return out

    def pack(self, **kw):
        return struct.pack(self.fmt, *(kw.get(n, 0) for n, _ in self.fields))

    def unpack(self, buf):
        return dict(zip((n for n, _ in self.fields), struct.unpack(self.fmt, buf)))


BO_CREATE = Struct('drm_vela_bo_create', [('size', 'Q'), ('flags', 'I'), ('handle', 'I')])
BO_INFO = Struct('drm_vela_bo_info', [('handle', 'I'), ('flags', 'I'), ('size', 'Q'),
                                      ('placement', 'I'), ('pad', 'I')])
BO_MMAP_OFFSET = Struct('drm_vela_bo_mmap_offset',
                        [('handle', 'I'), ('pad', 'I'), ('offset', 'Q')])
PRIME_HANDLE = Struct('drm_prime_handle', [('handle', 'I'), ('flags', 'I'), ('fd', 'i')])

DRM_VELA_BO_CREATE = 0x01
DRM_VELA_BO_INFO = 0x02
DRM_VELA_BO_MMAP_OFFSET = 0x03
DRM_IOCTL_VELA_BO_CREATE = _iowr(DRM_IOCTL_BASE, DRM_COMMAND_BASE + DRM_VELA_BO_CREATE,
                                 BO_CREATE.size)
DRM_IOCTL_VELA_BO_INFO = _iowr(DRM_IOCTL_BASE, DRM_COMMAND_BASE + DRM_VELA_BO_INFO,
                               BO_INFO.size)
DRM_IOCTL_VELA_BO_MMAP_OFFSET = _iowr(DRM_IOCTL_BASE,
                                      DRM_COMMAND_BASE + DRM_VELA_BO_MMAP_OFFSET,
                                      BO_MMAP_OFFSET.size)
DRM_IOCTL_PRIME_HANDLE_TO_FD = _iowr(DRM_IOCTL_BASE, 0x2d, PRIME_HANDLE.size)
DRM_VELA_BO_VRAM = 1 << 0
DRM_VELA_BO_CPU_VISIBLE = 1 << 1
DRM_VELA_PLACEMENT_VRAM = 1
DRM_CLOEXEC = os.O_CLOEXEC
DRM_RDWR = os.O_RDWR

VELA_PCI_VENDOR = 0x1f5a
VELA_PCI_DEVICE = 0x0001

RXE = 'rxe0'
NETDEV = 'eth0'
ADDR = '10.0.0.1/24'

BO_SIZE = 1 << 20            # a power of two: one run of VRAM (Documentation/rdma.rst)
XFER = 300 * 1024 + 777      # each transfer: 75 packets of 4 KiB, an odd length
VRAM_OFF = 4096 * 37 + 13    # where in the VRAM MR it lands (iova = offset)
HOST_OFF = 4096 * 5 + 7      # where in the host MR
BACKGROUND = 0x5a
POLL_SECONDS = 30


def expected_ioctls():
    """Name -> value, as vela-uapi-ioctls prints them, from this file's own
    definitions."""
    want = {
        'DRM_IOCTL_VELA_BO_CREATE': DRM_IOCTL_VELA_BO_CREATE,
        'DRM_IOCTL_VELA_BO_INFO': DRM_IOCTL_VELA_BO_INFO,
        'DRM_IOCTL_VELA_BO_MMAP_OFFSET': DRM_IOCTL_VELA_BO_MMAP_OFFSET,
        'DRM_IOCTL_PRIME_HANDLE_TO_FD': DRM_IOCTL_PRIME_HANDLE_TO_FD,
        'DRM_VELA_BO_VRAM': DRM_VELA_BO_VRAM,
        'DRM_VELA_BO_CPU_VISIBLE': DRM_VELA_BO_CPU_VISIBLE,
        'DRM_VELA_PLACEMENT_VRAM': DRM_VELA_PLACEMENT_VRAM,
        'DRM_CLOEXEC': DRM_CLOEXEC,
        'DRM_RDWR': DRM_RDWR,
    }
    for s in (BO_CREATE, BO_INFO, BO_MMAP_OFFSET, PRIME_HANDLE):
        want[f'sizeof(struct {s.name})'] = s.size
        for field, off in s.offsets().items():
            want[f'offsetof(struct {s.name}, {field})'] = off
    return want


class Tap:
    def __init__(self, plan):
        self.plan = plan
        self.n = 0
        self.failed = 0
        print('TAP version 13')
        print(f'1..{plan}', flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print(f'# {line}', flush=True)

    def ok(self, cond, desc, why=None):
        self.n += 1
        if not cond:
            self.failed += 1
            if why:
                self.diag(why)
        print(f'{"ok" if cond else "not ok"} {self.n} - {desc}', flush=True)
        return cond

    def skip_rest(self, why):
        while self.n < self.plan:
            self.ok(False, f'not reached: {why}')


def sh(cmd):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f'{cmd}: exit {r.returncode}: {r.stderr.strip()}')


def setup_net():
    """As rdma-tests/tests/rdma.c rdma_setup_net(): eth0 up with MTU 4200 (rxe
    uses 4096-byte packets), 10.0.0.1, rxe0 on it; idempotent."""
    sh(f'ip link set {NETDEV} mtu 4200 up')
    r = subprocess.run(f'ip -4 addr show dev {NETDEV}', shell=True, capture_output=True,
                       text=True)
    if 'inet 10.0.0.1/' not in r.stdout:
        sh(f'ip addr add {ADDR} dev {NETDEV}')
    if not os.path.exists(f'/sys/class/infiniband/{RXE}'):
        sh(f'rdma link add {RXE} type rxe netdev {NETDEV}')


def roce_v2_ipv4_gid(timeout=10.0):
    """The index of rxe0's RoCE v2 IPv4-mapped GID (the port's GIDs appear
    asynchronously)."""
    base = f'/sys/class/infiniband/{RXE}/ports/1'
    deadline = time.monotonic() + timeout
    while True:
        try:
            for name in sorted(os.listdir(f'{base}/gids'), key=int):
                try:
                    with open(f'{base}/gid_attrs/types/{name}') as f:
                        typ = f.read().strip()
                    with open(f'{base}/gids/{name}') as f:
                        gid = f.read().strip()
                except OSError:
                    continue
                if typ == 'RoCE v2' and gid.startswith('0000:0000:0000:0000:0000:ffff:'):
                    return int(name), gid
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f'no RoCE v2 IPv4 GID on {RXE} after {timeout} s')
        time.sleep(0.1)


def pci_chain(path):
    """The PCI functions from the root down to the one at sysfs path."""
    return [p for p in os.path.realpath(path).split('/')
            if len(p) == 12 and p[4] == ':' and p[7] == ':' and p[10] == '.']


def vela_below_nic_switch():
    """The accel node of the Vela device that shares a bridge with the NIC
    (below the same PCIe switch: P2P reach), found by its place on the bus,
    not by minor (an earlier test's unbind can change minors)."""
    nic = pci_chain(f'/sys/class/net/{NETDEV}/device')
    nic_up = set(nic[:-1])
    found = []
    for bdf in sorted(os.listdir('/sys/bus/pci/devices')):
        d = f'/sys/bus/pci/devices/{bdf}'
        try:
            with open(f'{d}/vendor') as f:
                vendor = int(f.read(), 16)
            with open(f'{d}/device') as f:
                device = int(f.read(), 16)
        except OSError:
            continue
        if (vendor, device) != (VELA_PCI_VENDOR, VELA_PCI_DEVICE):
            continue
        if nic_up & set(pci_chain(d)[:-1]):
            found.append(bdf)
    for bdf in found:
        try:
            nodes = [n for n in os.listdir(f'/sys/bus/pci/devices/{bdf}/accel')
                     if n.startswith('accel')]
        except OSError:
            continue
        if nodes:
            return bdf, f'/dev/accel/{nodes[0]}'
    raise RuntimeError(f'no bound Vela device shares a bridge with {NETDEV} '
                       f'({"/".join(nic)}); candidates: {found}')


def ioctl(fd, req, s, **kw):
    buf = bytearray(s.pack(**kw))
    fcntl.ioctl(fd, req, buf, True)
    return s.unpack(bytes(buf))


def bo_placement(fd, handle):
    return ioctl(fd, DRM_IOCTL_VELA_BO_INFO, BO_INFO, handle=handle)['placement']


def pattern(seed, n):
    """n bytes that differ at every position from the background and from
    another seed's."""
    cycle = bytes(0xa5 if v == BACKGROUND else v
                  for v in (((i * 7 + seed) % 251) + 1 for i in range(251)))
    return (cycle * (n // len(cycle) + 1))[:n]


def first_diff(got, want):
    if got == want:
        return None
    step = 4096
    for c in range(0, max(len(got), len(want)), step):
        if got[c:c + step] != want[c:c + step]:
            for i, (a, b) in enumerate(zip(got[c:c + step], want[c:c + step]), start=c):
                if a != b:
                    return i, a, b
    return min(len(got), len(want)), None, None


def check_region(buf, off, data, size):
    """buf holds data at off and the background everywhere else; returns a
    description of the first difference, or None."""
    want = bytes([BACKGROUND]) * off + data + bytes([BACKGROUND]) * (size - off - len(data))
    got = bytes(buf[:size])
    d = first_diff(got, want)
    if d is None:
        return None
    i, a, b = d
    where = ('inside the transfer' if off <= i < off + len(data) else 'outside the transfer')
    return f'first difference at byte {i} ({where}): got {a:#04x}, want {b:#04x}'


def seconds_since_exec():
    """Seconds since this process was exec'd (Python's own start-up under TCG is most of
    what the test costs)."""
    try:
        with open('/proc/self/stat') as f:
            start = int(f.read().rpartition(')')[2].split()[19]) / os.sysconf('SC_CLK_TCK')
        with open('/proc/uptime') as f:
            return float(f.read().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return float('nan')


def main():
    started = seconds_since_exec()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corrupt-expected', action='store_true',
                    help='expect one flipped byte in the first data check')
    ap.add_argument('--uapi-helper',
                    default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         'vela-uapi-ioctls'))
    args = ap.parse_args()

    t = Tap(16)
    t.diag(f'Python started in {started:.1f} s')
    try:
        return run(t, args)
    except Exception:  # a failure of the test itself: the rest did not run
        t.diag(traceback.format_exc())
        t.skip_rest('exception above')
        return 1


def run(t, args):
    # 1. The uAPI as computed here against the header as compiled.
    r = subprocess.run([args.uapi_helper], capture_output=True, text=True)
    have = {}
    for line in r.stdout.splitlines():
        name, _, value = line.rpartition(' ')
        have[name] = int(value)
    want = expected_ioctls()
    bad = [f'{k}: header {have.get(k)}, test {v}' for k, v in want.items() if have.get(k) != v]
    if r.returncode:
        bad.insert(0, f'{args.uapi_helper}: exit {r.returncode}: {r.stderr.strip()}')
    if not t.ok(not bad, f'ioctl numbers and layouts match vela_accel.h ({len(want)} values)',
                '\n'.join(bad)):
        t.skip_rest('the test does not match the uAPI header')
        return 1

    t0 = time.monotonic()
    import pyverbs.enums as e
    from pyverbs.addr import AHAttr, GlobalRoute
    from pyverbs.cq import CQ
    from pyverbs.device import Context
    from pyverbs.mr import MR, DmaBufMR
    from pyverbs.pd import PD
    from pyverbs.qp import QP, QPAttr, QPCap, QPInitAttr
    from pyverbs.wr import SGE, SendWR
    t.diag(f'pyverbs imported in {time.monotonic() - t0:.1f} s')

    # 2. rxe0 and its GID.
    setup_net()
    gid_index, gid = roce_v2_ipv4_gid()
    ctx = Context(name=RXE)
    deadline = time.monotonic() + 10
    while ctx.query_port(1).state != e.IBV_PORT_ACTIVE:
        if time.monotonic() > deadline:
            raise RuntimeError(f'{RXE} port 1 not active after 10 s')
        time.sleep(0.1)
    port = ctx.query_port(1)
    t.ok(True, f'{RXE} on {NETDEV}: RoCE v2 IPv4 GID {gid_index} ({gid}), '
               f'active MTU {128 << port.active_mtu}')
    pd = PD(ctx)

    # 3. The VRAM buffer: create, map, export.
    bdf, node = vela_below_nic_switch()
    fd = os.open(node, os.O_RDWR | os.O_CLOEXEC)
    bo = ioctl(fd, DRM_IOCTL_VELA_BO_CREATE, BO_CREATE, size=BO_SIZE,
               flags=DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE)
    handle = bo['handle']
    off = ioctl(fd, DRM_IOCTL_VELA_BO_MMAP_OFFSET, BO_MMAP_OFFSET, handle=handle)['offset']
    vram = mmap.mmap(fd, BO_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                     offset=off)
    vram[:] = bytes([BACKGROUND]) * BO_SIZE
    dmabuf_fd = ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, PRIME_HANDLE, handle=handle,
                      flags=DRM_CLOEXEC | DRM_RDWR)['fd']
    t.ok(dmabuf_fd >= 0, f'{node} ({bdf}, below {NETDEV}\'s switch): {BO_SIZE >> 20} MiB '
                         f'VRAM | CPU_VISIBLE buffer made, mapped, exported as dma-buf fd '
                         f'{dmabuf_fd}')

    # 4. Registration, and where the buffer is while the MR lives.
    access = (e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE |
              e.IBV_ACCESS_REMOTE_READ)
    vmr = DmaBufMR(pd, BO_SIZE, access, dmabuf=dmabuf_fd, offset=0)
    t.ok(vmr.lkey != 0 or vmr.rkey != 0,
         f'DmaBufMR of the dma-buf registered (lkey {vmr.lkey:#x}, rkey {vmr.rkey:#x})')
    pl = bo_placement(fd, handle)
    t.ok(pl == DRM_VELA_PLACEMENT_VRAM, 'BO_INFO: VRAM once registered',
         f'placement {pl}')
    hmr = MR(pd, BO_SIZE, access)
    hmr.write(bytes([BACKGROUND]) * BO_SIZE, BO_SIZE)

    # 5. A loopback RC QP pair.
    cqs, qps = [], []
    for _ in range(2):
        cq = CQ(ctx, 16)
        cap = QPCap(max_send_wr=8, max_recv_wr=8, max_send_sge=1, max_recv_sge=1)
        ia = QPInitAttr(qp_type=e.IBV_QPT_RC, scq=cq, rcq=cq, cap=cap)
        qa = QPAttr(port_num=1)
        qa.qp_access_flags = access
        cqs.append(cq)
        qps.append(QP(pd, ia, qa))
    for i in range(2):
        qa = QPAttr(port_num=1, path_mtu=port.active_mtu)
        qa.ah_attr = AHAttr(port_num=1, is_global=1,
                            gr=GlobalRoute(dgid=ctx.query_gid(1, gid_index),
                                           sgid_index=gid_index))
        qa.dest_qp_num = qps[1 - i].qp_num
        qa.rq_psn = 0
        qa.sq_psn = 0
        qa.max_dest_rd_atomic = 4
        qa.max_rd_atomic = 4
        qa.min_rnr_timer = 1
        qa.timeout = 19  # about 2 s: under TCG a READ's responses take longer than 67 ms
        qa.retry_cnt = 7
        qa.rnr_retry = 7
        qps[i].to_rts(qa)
    states = [q.query(e.IBV_QP_STATE)[0].qp_state for q in qps]
    t.ok(states == [e.IBV_QPS_RTS] * 2,
         f'RC QPs {qps[0].qp_num:#x} and {qps[1].qp_num:#x} connected to each other (RTS)',
         f'states {states}')

    def transfer(op, local_mr, local_addr, remote_mr, remote_addr):
        """Posts one signalled WRITE or READ on QP 0; returns None or why it
        failed."""
        wr = SendWR(wr_id=1, opcode=op, num_sge=1,
                    sg=[SGE(local_addr, XFER, local_mr.lkey)],
                    send_flags=e.IBV_SEND_SIGNALED)
        wr.set_wr_rdma(remote_mr.rkey, remote_addr)
        t0 = time.monotonic()
        qps[0].post_send(wr)
        while True:
            n, wcs = cqs[0].poll()
            if n:
                wc = wcs[0]
                if wc.status != e.IBV_WC_SUCCESS:
                    return f'completion status {wc.status} (vendor error {wc.vendor_err})'
                t.diag(f'{XFER} bytes in {time.monotonic() - t0:.3f} s')
                return None
            if time.monotonic() - t0 > POLL_SECONDS:
                return f'no completion within {POLL_SECONDS} s'
            time.sleep(0.0005)

    def reset(dst):
        if dst == 'vram':
            vram[:] = bytes([BACKGROUND]) * BO_SIZE
        else:
            hmr.write(bytes([BACKGROUND]) * BO_SIZE, BO_SIZE)

    corrupt = args.corrupt_expected
    host_base = hmr.buf  # the host MR's iova is its address; the VRAM MR's is its offset, 0
    cases = [
        # (what, opcode, local MR, local addr, remote MR, remote addr, source, destination)
        ('RDMA WRITE host MR -> VRAM MR', e.IBV_WR_RDMA_WRITE, hmr, host_base + HOST_OFF,
         vmr, VRAM_OFF, 'host', 'vram'),
        ('RDMA READ VRAM MR -> host MR', e.IBV_WR_RDMA_READ, hmr, host_base + HOST_OFF,
         vmr, VRAM_OFF, 'vram', 'host'),
        ('RDMA WRITE from the VRAM MR (local SGE) -> host MR', e.IBV_WR_RDMA_WRITE, vmr,
         VRAM_OFF, hmr, host_base + HOST_OFF, 'vram', 'host'),
        ('RDMA READ host MR -> into the VRAM MR (local SGE)', e.IBV_WR_RDMA_READ, vmr,
         VRAM_OFF, hmr, host_base + HOST_OFF, 'host', 'vram'),
    ]
    for seed, (what, op, lmr, laddr, rmr, raddr, src, dst) in enumerate(cases, start=1):
        data = pattern(seed, XFER)
        reset('vram')
        reset('host')
        if src == 'vram':
            vram[VRAM_OFF:VRAM_OFF + XFER] = data
        else:
            hmr.write(data, XFER, HOST_OFF)
        why = transfer(op, lmr, laddr, rmr, raddr)
        t.ok(why is None, f'{what}: {XFER} bytes complete (IBV_WC_SUCCESS)', why)
        want = data
        if corrupt:
            want = bytearray(data)
            want[XFER // 2] ^= 0x01
            want = bytes(want)
            corrupt = False
        if dst == 'vram':
            d = check_region(vram, VRAM_OFF, want, BO_SIZE)
            where = f'VRAM (read through the mmap) holds the pattern at {VRAM_OFF}'
        else:
            d = check_region(hmr.read(BO_SIZE, 0), HOST_OFF, want, BO_SIZE)
            where = f'the host MR holds the pattern at {HOST_OFF}'
        t.ok(d is None, f'{what}: {where}, the rest untouched', d)

    pl = bo_placement(fd, handle)
    t.ok(pl == DRM_VELA_PLACEMENT_VRAM, 'BO_INFO: still VRAM after the transfers',
         f'placement {pl}')

    for q in qps:
        q.close()
    for c in cqs:
        c.close()
    vmr.close()
    hmr.close()
    os.close(dmabuf_fd)
    vram.close()
    os.close(fd)
    pd.close()
    ctx.close()
    t.ok(True, 'MRs deregistered, QPs, dma-buf, mapping and accel fd closed')
    return 1 if t.failed or t.n != t.plan else 0


if __name__ == '__main__':
    sys.exit(main())
