// SPDX-License-Identifier: GPL-2.0
//! Partitions (partitions.rst), checked by data: what a partition's queues write lands in its
//! slice and nowhere else, whatever addresses its rings, fences, tables and commands name,
//! while the other partition and the PF keep running.

use vela_hw::regs::{
    self, ctx, part, queue, IntSources, PartControl, PartError, PartStatus, QStatus, QueueError,
};
use vela_hw::{IovaEntry, Pte};
use vela_model::device::DeviceOptions;
use vela_model::engine::vram_dpa;
use vela_model::rig::{encode, Rig, RAM_BASE};

const MIB: u64 = 1 << 20;
/// The PF keeps VRAM below 16 MiB; partition 0 gets 16-24 MiB, partition 1 32-40 MiB.
const P0_BASE: u64 = 16 * MIB;
const P1_BASE: u64 = 32 * MIB;
const SLICE: u64 = 8 * MIB;
/// IOVA tables: host VRAM outside every slice.
const P0_TABLE: u64 = 60 * MIB;
const P1_TABLE: u64 = 61 * MIB;
const PAGES: u32 = 16;
/// Partition 0 owns queues 1 and 2 and contexts 1 and 2; partition 1 queue 3 and context 3.
const P0_QUEUES: u32 = 0b0110;
const P1_QUEUES: u32 = 0b1000;

fn rig() -> Rig {
    Rig::new(DeviceOptions {
        vram_size: 64 * MIB,
        queues: 6,
        ..Default::default()
    })
    .unwrap()
}

fn part_r(r: &Rig, p: usize, off: u32) -> u32 {
    r.r(part::reg(p, off))
}

fn part_w(r: &Rig, p: usize, off: u32, v: u32) {
    r.w(part::reg(p, off), v)
}

fn status(r: &Rig, p: usize) -> PartStatus {
    PartStatus(part_r(r, p, part::STATUS))
}

fn config_error(r: &Rig, p: usize) -> Option<u8> {
    let s = status(r, p);
    s.config_error().then(|| s.config_code())
}

/// Write a partition's configuration (not ENABLE).
fn configure(r: &Rig, p: usize, base: u64, size: u64, queues: u32, contexts: u32, table: u64) {
    for (off, v) in [
        (part::VRAM_BASE_LO, base as u32),
        (part::VRAM_BASE_HI, (base >> 32) as u32),
        (part::VRAM_SIZE_LO, size as u32),
        (part::VRAM_SIZE_HI, (size >> 32) as u32),
        (part::QUEUES, queues),
        (part::CONTEXTS, contexts),
        (part::IOVA_TABLE_LO, table as u32),
        (part::IOVA_TABLE_HI, (table >> 32) as u32),
        (part::IOVA_PAGES, PAGES),
    ] {
        part_w(r, p, off, v);
    }
}

fn enable(r: &Rig, p: usize) {
    part_w(r, p, part::CONTROL, PartControl::ENABLE.mask32());
}

/// The two partitions of these tests, enabled.
fn two_partitions(r: &Rig) {
    configure(r, 0, P0_BASE, SLICE, P0_QUEUES, 0b0110, vram_dpa(P0_TABLE));
    enable(r, 0);
    configure(r, 1, P1_BASE, SLICE, P1_QUEUES, 0b1000, vram_dpa(P1_TABLE));
    enable(r, 1);
    for p in 0..2 {
        assert_eq!(config_error(r, p), None, "partition {p}");
        assert!(status(r, p).enabled());
    }
}

/// Partition `p` as its guest sees it: the window in BAR4, and its slice of VRAM.
struct Guest<'a> {
    r: &'a Rig,
    p: usize,
    base: u64,
}

impl<'a> Guest<'a> {
    fn new(r: &'a Rig, p: usize) -> Self {
        let base = u64::from(part_r(r, p, part::VRAM_BASE_LO))
            | u64::from(part_r(r, p, part::VRAM_BASE_HI)) << 32;
        Self { r, p, base }
    }

    fn rd(&self, reg: u32) -> u32 {
        self.r.dev.window_read(self.p, reg)
    }

    fn wr(&self, reg: u32, v: u32) {
        self.r.dev.window_write(self.p, reg, v, u32::MAX)
    }

    fn qr(&self, n: usize, off: u32) -> u32 {
        self.rd(queue::reg(n, off))
    }

    fn qw(&self, n: usize, off: u32, v: u32) {
        self.wr(queue::reg(n, off), v)
    }

    fn cw(&self, c: usize, off: u32, v: u32) {
        self.wr(ctx::reg(c, off), v)
    }

    /// Local queue `n`: a ring at partition DPA `ring`, a fence at `fence`, context `c`.
    fn setup_queue(&self, n: usize, ring: u64, fence: u64, c: usize) {
        self.qw(n, queue::CONTROL, regs::QControl::RESET.mask32());
        self.qw(n, queue::RING_BASE_LO, ring as u32);
        self.qw(n, queue::RING_BASE_HI, (ring >> 32) as u32);
        self.qw(n, queue::RING_SIZE, 4);
        self.qw(n, queue::CONTEXT, c as u32);
        self.qw(n, queue::FENCE_BASE_LO, fence as u32);
        self.qw(n, queue::FENCE_BASE_HI, (fence >> 32) as u32);
        self.qw(n, queue::CONTROL, regs::QControl::ENABLE.mask32());
    }

    /// Write commands into the ring (which the test keeps in the slice) and ring the doorbell.
    fn submit(&self, n: usize, cmds: &[[u8; 64]]) {
        let ring = u64::from(self.qr(n, queue::RING_BASE_LO));
        let mut tail = self.qr(n, queue::TAIL);
        for c in cmds {
            self.vram_write(ring + u64::from(tail) * 64, c);
            tail = (tail + 1) % 16;
        }
        self.qw(n, queue::DOORBELL, tail);
    }

    fn vram_write(&self, off: u64, data: &[u8]) {
        assert!(off + data.len() as u64 <= SLICE);
        self.r.dev.vram.write(self.base + off, data).unwrap();
    }

    fn vram_read(&self, off: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.r.dev.vram.read(self.base + off, &mut b).unwrap();
        b
    }

    fn q_status(&self, n: usize) -> QStatus {
        QStatus(self.qr(n, queue::STATUS))
    }

    /// Local queue `n`'s error code and address.
    fn error(&self, n: usize) -> (u8, u64) {
        let addr = u64::from(self.qr(n, queue::ERROR_ADDR_LO))
            | u64::from(self.qr(n, queue::ERROR_ADDR_HI)) << 32;
        (self.q_status(n).error_code(), addr)
    }

    /// Run `cmds` on a fresh local queue 0 in DPA mode (context 0 without translation) and
    /// return its error.
    fn run_expecting_error(&self, cmds: &[[u8; 64]]) -> (u8, u64) {
        self.setup_queue(0, vram_dpa(0), vram_dpa(0x800), 0);
        self.submit(0, cmds);
        self.r.dev.run_until_idle();
        self.error(0)
    }
}

fn host_vram(r: &Rig, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0; len];
    r.dev.vram.read(off, &mut b).unwrap();
    b
}

fn ram(r: &Rig, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0; len];
    r.dpa_read(RAM_BASE + off, &mut b).unwrap();
    b
}

fn set_iova(r: &Rig, table: u64, page: u64, e: IovaEntry) {
    r.dev
        .vram
        .write(table + page * 8, &e.bits().to_le_bytes())
        .unwrap();
}

#[test]
fn pf_and_window_identity() {
    let r = rig();
    assert_eq!(r.r(regs::CAPS), regs::Caps::ALL.bits());
    assert_eq!(r.r(regs::CAPS), 0x3f, "PARTITIONS set, VIRTUAL clear");
    assert_eq!(r.r(regs::TOPOLOGY3), 8);
    assert_eq!(
        r.dev.window_read(0, regs::ID),
        0,
        "a disabled partition's window reads 0"
    );
    r.dev.window_write(0, regs::SCRATCH, 5, u32::MAX);
    two_partitions(&r);
    let g = Guest::new(&r, 0);
    assert_eq!(
        g.rd(regs::SCRATCH),
        0,
        "the write to the closed window was dropped"
    );
    assert_eq!(g.rd(regs::ID), regs::ID_VALUE);
    assert_eq!(g.rd(regs::VERSION), regs::VERSION_VALUE);
    assert_eq!(g.rd(regs::CAPS), 0x47, "COPY, COMPUTE, MMU, VIRTUAL");
    assert_eq!(g.rd(regs::VRAM_SIZE_LO), SLICE as u32);
    assert_eq!(g.rd(regs::VRAM_SIZE_HI), 0);
    assert_eq!(g.rd(regs::TOPOLOGY), 0x0202, "2 queues, the PF's 2 engines");
    assert_eq!(g.rd(regs::TOPOLOGY2), 39 << 16 | 3 << 8 | 2);
    assert_eq!(g.rd(regs::TOPOLOGY3), 0);
    assert_eq!(g.rd(regs::DEVICE_STATUS), 1);
    assert_eq!(Guest::new(&r, 1).rd(regs::TOPOLOGY), 0x0201);

    // Host registers do not exist in a window.
    g.wr(regs::PF_QUANTUM, 77);
    assert_eq!(g.rd(regs::PF_QUANTUM), 0);
    assert_eq!(r.r(regs::PF_QUANTUM), 0);
    g.wr(regs::MSIX_TABLE, 0x1234);
    assert_eq!(g.rd(regs::MSIX_TABLE), 0);
    assert_eq!(
        r.r(regs::MSIX_TABLE),
        0,
        "the window's write did not reach the PF's table"
    );
    assert_eq!(g.rd(regs::PART_BASE + part::VRAM_SIZE_LO), 0);
    r.qw(0, queue::DOORBELL, 0);
    assert_eq!(r.r(regs::counter_lo(regs::Counter::Doorbells)), 1);
    assert_eq!(
        g.rd(regs::counter_lo(regs::Counter::Doorbells)),
        0,
        "counters read 0"
    );

    // Local queue 0 is the PF's queue 1, which the PF no longer sees.
    g.qw(0, queue::RING_BASE_LO, 0x1000);
    assert_eq!(g.qr(0, queue::RING_BASE_LO), 0x1000);
    assert_eq!(r.qr(1, queue::RING_BASE_LO), 0);
    assert_eq!(r.qr(1, queue::STATUS), 0, "an owned queue reads as absent");
    r.qw(1, queue::RING_BASE_LO, 0x2000);
    assert_eq!(
        g.qr(0, queue::RING_BASE_LO),
        0x1000,
        "the PF's write was ignored"
    );
    assert_eq!(g.qr(2, queue::RING_BASE_LO), 0, "no local queue 2");
    r.w(ctx::reg(1, ctx::PT_BASE_LO), 0x5000);
    assert_eq!(g.rd(ctx::reg(0, ctx::PT_BASE_LO)), 0);

    // Locked while enabled.
    part_w(&r, 0, part::VRAM_BASE_LO, 0);
    part_w(&r, 0, part::QUEUES, 0b1);
    assert_eq!(part_r(&r, 0, part::VRAM_BASE_LO), P0_BASE as u32);
    assert_eq!(part_r(&r, 0, part::QUEUES), P0_QUEUES);
    part_w(&r, 0, part::QUANTUM, 250);
    assert_eq!(
        part_r(&r, 0, part::QUANTUM),
        250,
        "the quantum stays writable"
    );

    // Disable: the queue returns to the PF at its reset values, and the window closes.
    part_w(&r, 0, part::CONTROL, 0);
    assert!(!status(&r, 0).enabled());
    assert_eq!(r.qr(1, queue::RING_BASE_LO), 0);
    assert_eq!(r.qr(1, queue::STATUS), QStatus::IDLE.mask32());
    assert_eq!(g.rd(regs::ID), 0);
}

#[test]
fn enable_checks_refuse_bad_configurations() {
    let r = rig();
    // Partition 0's table sits at 58 MiB, where the last case's slice would reach it.
    let p0_table = 58 * MIB;
    configure(&r, 0, P0_BASE, SLICE, P0_QUEUES, 0b0110, vram_dpa(p0_table));
    enable(&r, 0);
    assert_eq!(config_error(&r, 0), None);
    let t = vram_dpa(P1_TABLE);
    let q = 0b10_0000;
    let cases: &[(u64, u64, u32, u32, u64, PartError)] = &[
        (P1_BASE + 4096, SLICE, q, 0, t, PartError::BadAlignment),
        (P1_BASE, SLICE + 4096, q, 0, t, PartError::BadAlignment),
        (P1_BASE, SLICE, q, 0, t + 8, PartError::BadAlignment),
        (P1_BASE, 0, q, 0, t, PartError::BadRange),
        (56 * MIB, 10 * MIB, q, 0, t, PartError::BadRange),
        (22 * MIB, SLICE, q, 0, t, PartError::VramOverlap),
        (P1_BASE, SLICE, q | 0b10, 0, t, PartError::QueueConflict),
        (P1_BASE, SLICE, 1 << 6, 0, t, PartError::QueueConflict),
        (P1_BASE, SLICE, q, 0b0100, t, PartError::ContextConflict),
        (
            P1_BASE,
            SLICE,
            q,
            0,
            vram_dpa(P1_BASE),
            PartError::BadIovaTable,
        ),
        (
            P1_BASE,
            SLICE,
            q,
            0,
            vram_dpa(P0_BASE),
            PartError::BadIovaTable,
        ),
        (
            P1_BASE,
            SLICE,
            q,
            0,
            vram_dpa(64 * MIB),
            PartError::BadIovaTable,
        ),
        (56 * MIB, 4 * MIB, q, 0, t, PartError::BadIovaTable),
    ];
    for (i, &(base, size, queues, contexts, table, want)) in cases.iter().enumerate() {
        configure(&r, 1, base, size, queues, contexts, table);
        enable(&r, 1);
        assert_eq!(config_error(&r, 1), Some(want.raw()), "case {i}: {want:?}");
        assert!(!status(&r, 1).enabled(), "case {i}");
        assert_eq!(
            r.dev.window_read(1, regs::ID),
            0,
            "case {i}: the window stays closed"
        );
    }
    configure(&r, 1, P1_BASE, SLICE, q, 0b1000, t);
    enable(&r, 1);
    assert_eq!(
        config_error(&r, 1),
        None,
        "a good configuration clears the error"
    );
    assert!(status(&r, 1).enabled());
    assert_eq!(part_r(&r, 0, part::IOVA_TABLE_LO), p0_table as u32);

    // SCRUB while enabled is refused and touches nothing.
    let g = Guest::new(&r, 1);
    g.vram_write(0, &[7; 64]);
    let enable_scrub = PartControl(0).with_enable(true).with_scrub(true).bits();
    part_w(&r, 1, part::CONTROL, enable_scrub);
    assert_eq!(config_error(&r, 1), Some(PartError::Enabled.raw()));
    assert_eq!(g.vram_read(0, 64), vec![7; 64]);
}

/// Every way a partition's queue can name memory outside its slice fails, and the other
/// partition's and the PF's data stay as they were while their jobs complete.
#[test]
fn isolation_by_data() {
    let r = rig();
    two_partitions(&r);
    let (g0, g1) = (Guest::new(&r, 0), Guest::new(&r, 1));
    // Known contents: the PF's VRAM, partition 1's slice, system memory.
    r.dev.vram.write(0x10_0000, &[0xaa; 4096]).unwrap();
    g1.vram_write(0x10_0000, &[0x22; 4096]);
    r.dpa_write(RAM_BASE, &[0x33; 4096]).unwrap();

    let dma = QueueError::DmaError.raw();
    let fill = |dst| encode::fill(dst, 4096, 0xdead_beef);
    // DPA mode: past the slice's end, at the other partition's offset, at an IOVA beyond
    // the table, at the host's bus address of system memory.
    for dst in [
        vram_dpa(SLICE),
        vram_dpa(P1_BASE - P0_BASE + 0x10_0000),
        16 * 4096,
        RAM_BASE,
    ] {
        assert_eq!(
            g0.run_expecting_error(&[fill(dst)]),
            (dma, dst),
            "FILL at {dst:#x}"
        );
    }
    // A COPY whose source is the host's VRAM by a VRAM DPA reads partition 0's own slice.
    g0.vram_write(0x20_0000, &[0x44; 4096]);
    g0.setup_queue(0, vram_dpa(0), vram_dpa(0x800), 0);
    g0.submit(
        0,
        &[encode::copy(vram_dpa(0x10_0000), vram_dpa(0x30_0000), 4096)],
    );
    g0.vram_write(0x10_0000, &[0x55; 4096]);
    r.dev.run_until_idle();
    assert_eq!(g0.q_status(0).error_code(), 0);
    assert_eq!(
        g0.vram_read(0x30_0000, 4096),
        vec![0x55; 4096],
        "its own offset 1 MiB"
    );
    // A copy that starts inside and runs past the end fails.
    let over = encode::copy(vram_dpa(0), vram_dpa(SLICE - 2048), 4096);
    assert_eq!(g0.run_expecting_error(&[over]).0, dma);

    // A ring outside the slice cannot be fetched.
    g0.setup_queue(1, vram_dpa(SLICE), vram_dpa(0x800), 0);
    g0.qw(1, queue::DOORBELL, 1);
    r.dev.run_until_idle();
    assert_eq!(g0.error(1), (QueueError::BadRing.raw(), vram_dpa(SLICE)));
    // A fence outside the slice is not written.
    g0.setup_queue(1, vram_dpa(0x1000), vram_dpa(P1_BASE - P0_BASE), 0);
    g0.submit(1, &[encode::signal(9, false)]);
    r.dev.run_until_idle();
    assert_eq!(g0.error(1), (dma, vram_dpa(P1_BASE - P0_BASE)));

    // Page tables: a root outside the slice faults TABLE_BUS; a leaf outside it is DMA_ERROR.
    g0.cw(1, ctx::PT_BASE_LO, 0);
    g0.cw(
        1,
        ctx::PT_BASE_HI,
        (vram_dpa(SLICE) >> 32) as u32 | (SLICE >> 32) as u32,
    );
    g0.wr(ctx::reg(1, ctx::PT_BASE_LO), SLICE as u32);
    g0.cw(1, ctx::CONTROL, regs::CtxControl::ENABLE.mask32());
    g0.setup_queue(1, vram_dpa(0x1000), vram_dpa(0x800), 1);
    g0.submit(1, &[fill(0x4000_0000)]);
    r.dev.run_until_idle();
    let fault = regs::CtxFaultStatus(g0.rd(ctx::reg(1, ctx::FAULT_STATUS)));
    assert!(fault.valid());
    assert_eq!(fault.reason(), regs::FaultReason::TableBusError.raw());
    assert_eq!(fault.queue(), 1, "local queue number");
    assert!(g0.q_status(1).fault_stopped());
    // Now tables inside the slice whose leaf points past its end.
    let (root, l1, l0) = (0x40_0000u64, 0x40_1000u64, 0x40_2000u64);
    let table = |e: u64| Pte(0).with_valid(true).with_vram(true).with_addr(e).bits();
    g0.vram_write(root + 8, &table(l1).to_le_bytes());
    g0.vram_write(l1, &table(l0).to_le_bytes());
    let leaf = Pte(0)
        .with_valid(true)
        .with_read(true)
        .with_write(true)
        .with_vram(true);
    g0.vram_write(l0, &leaf.with_addr(SLICE + 0x1000).bits().to_le_bytes());
    g0.vram_write(l0 + 8, &leaf.with_addr(0x50_0000).bits().to_le_bytes());
    g0.cw(1, ctx::PT_BASE_LO, root as u32);
    g0.cw(1, ctx::CONTROL, regs::CtxControl::FAULT_CLEAR.mask32() | 1);
    r.dev.run_until_idle();
    assert_eq!(g0.error(1), (dma, vram_dpa(SLICE + 0x1000)));
    // The same tables' in-slice page works.
    g0.setup_queue(1, vram_dpa(0x1000), vram_dpa(0x800), 1);
    g0.submit(1, &[encode::fill(0x4000_1000, 4096, 0x0101_0101)]);
    r.dev.run_until_idle();
    assert_eq!(g0.q_status(1).error_code(), 0);
    assert_eq!(g0.vram_read(0x50_0000, 4096), vec![1; 4096]);

    // Meanwhile partition 1 and the PF run, on their own data.
    g1.setup_queue(0, vram_dpa(0), vram_dpa(0x800), 0);
    g1.submit(
        0,
        &[
            encode::fill(vram_dpa(0x20_0000), 4096, 0x0202_0202),
            encode::signal(5, false),
        ],
    );
    r.setup_queue(0, vram_dpa(0), 4, 0);
    r.qw(0, queue::FENCE_BASE_LO, 0x800);
    r.qw(0, queue::FENCE_BASE_HI, (vram_dpa(0) >> 32) as u32);
    r.submit(0, &[encode::fill(vram_dpa(0x20_0000), 4096, 0x0303_0303)])
        .unwrap();
    r.dev.run_until_idle();
    assert_eq!(g1.q_status(0).error_code(), 0);
    assert_eq!(g1.qr(0, queue::COMPLETED), 2);
    assert_eq!(
        u64::from_le_bytes(g1.vram_read(0x800, 8).try_into().unwrap()),
        5
    );
    assert_eq!(r.qr(0, queue::COMPLETED), 1);
    assert_eq!(host_vram(&r, 0x20_0000, 4096), vec![3; 4096]);
    assert_eq!(g1.vram_read(0x20_0000, 4096), vec![2; 4096]);

    // Nothing partition 0 tried reached anyone else.
    assert_eq!(
        host_vram(&r, 0x10_0000, 4096),
        vec![0xaa; 4096],
        "the PF's VRAM"
    );
    assert_eq!(
        g1.vram_read(0x10_0000, 4096),
        vec![0x22; 4096],
        "partition 1's slice"
    );
    assert_eq!(ram(&r, 0, 4096), vec![0x33; 4096], "system memory");
    assert_eq!(
        host_vram(&r, P0_BASE + SLICE, 4096),
        vec![0; 4096],
        "just past the slice"
    );
    // Its own errors were its own: the PF saw none of them.
    assert_eq!(r.r(regs::QUEUE_ERROR_SUMMARY), 0);
    assert_eq!(r.r(regs::INT_STATUS) & IntSources::QUEUE_ERROR.mask32(), 0);
    assert_eq!(
        g0.rd(regs::QUEUE_ERROR_SUMMARY),
        0b01 | g0.rd(regs::QUEUE_ERROR_SUMMARY)
    );
}

#[test]
fn bad_context_numbers() {
    let r = rig();
    two_partitions(&r);
    let g0 = Guest::new(&r, 0);
    // Partition 0 has two contexts: local 2 does not exist.
    g0.setup_queue(0, vram_dpa(0), vram_dpa(0x800), 2);
    assert_eq!(g0.error(0), (QueueError::BadContext.raw(), 0));
    // The PF may not bind a queue to a context a partition owns.
    r.setup_queue(0, vram_dpa(0), 4, 3);
    assert_eq!(
        QStatus(r.qr(0, queue::STATUS)).error_code(),
        QueueError::BadContext.raw()
    );
    // A PF queue whose context is taken after it was enabled stops at its next command.
    part_w(&r, 1, part::CONTROL, 0);
    r.setup_queue(0, vram_dpa(0), 4, 3);
    r.w(ctx::reg(3, ctx::CONTROL), 0);
    enable(&r, 1);
    r.submit(0, &[encode::nop(false)]).unwrap();
    r.dev.run_until_idle();
    assert_eq!(
        QStatus(r.qr(0, queue::STATUS)).error_code(),
        QueueError::BadContext.raw()
    );
}

/// Partition 0's guest: local queue 0 copying 4 KiB from its slice to IOVA `iova`.
fn copy_to_iova(g: &Guest, n: usize, iova: u64) {
    g.setup_queue(
        n,
        vram_dpa(0x1000 * n as u64),
        vram_dpa(0x800 + 8 * n as u64),
        0,
    );
    g.submit(
        n,
        &[
            encode::copy(vram_dpa(0x10_0000), iova, 4096),
            encode::signal(1, false),
        ],
    );
}

#[test]
fn page_requests_retry_and_deny() {
    let r = rig();
    two_partitions(&r);
    let g = Guest::new(&r, 0);
    g.vram_write(0x10_0000, &[0x5a; 4096]);
    let _ = r.irq_count(0);

    copy_to_iova(&g, 0, 0x3000);
    r.dev.run_until_idle();
    let s = g.q_status(0);
    assert!(
        !s.idle() && !s.error(),
        "stalled, not idle: {:#x}",
        s.bits()
    );
    assert!(status(&r, 0).page_request());
    let req = regs::PartPageReqLo(part_r(&r, 0, part::PAGE_REQ_LO));
    assert_eq!((req.page(), req.write()), (3, true));
    assert_eq!(part_r(&r, 0, part::PAGE_REQ_HI), 0);
    assert_ne!(r.r(regs::INT_STATUS) & IntSources::PARTITION.mask32(), 0);
    assert_eq!(r.irq_count(0), 1, "the host heard on vector 0");

    // A second queue stalls behind the first request.
    copy_to_iova(&g, 1, 0x7000);
    r.dev.run_until_idle();
    assert_eq!(
        regs::PartPageReqLo(part_r(&r, 0, part::PAGE_REQ_LO)).page(),
        3
    );

    // The host pins RAM_BASE + 0x5000 for IOVA page 3 and retries.
    set_iova(
        &r,
        P0_TABLE,
        3,
        IovaEntry::map(RAM_BASE + 0x5000, true, true),
    );
    r.w(regs::INT_STATUS, IntSources::PARTITION.mask32());
    part_w(&r, 0, part::PAGE_RESP, regs::PartPageResp::RETRY.mask32());
    assert_eq!(
        regs::PartPageReqLo(part_r(&r, 0, part::PAGE_REQ_LO)).page(),
        7,
        "the waiting request is presented next"
    );
    assert_ne!(r.r(regs::INT_STATUS) & IntSources::PARTITION.mask32(), 0);
    r.dev.run_until_idle();
    assert_eq!(g.qr(0, queue::COMPLETED), 2);
    assert_eq!(
        ram(&r, 0x5000, 4096),
        vec![0x5a; 4096],
        "the copy landed in the pinned page"
    );
    assert_eq!(ram(&r, 0x4000, 4096), vec![0; 4096]);
    assert_eq!(ram(&r, 0x6000, 4096), vec![0; 4096]);

    // A read-only page does not satisfy a write: the host denies it.
    set_iova(
        &r,
        P0_TABLE,
        7,
        IovaEntry::map(RAM_BASE + 0x8000, true, false),
    );
    part_w(&r, 0, part::PAGE_RESP, regs::PartPageResp::RETRY.mask32());
    r.dev.run_until_idle();
    assert!(
        status(&r, 0).page_request(),
        "asked again: the entry lacks WRITE"
    );
    part_w(&r, 0, part::PAGE_RESP, regs::PartPageResp::DENY.mask32());
    assert!(!status(&r, 0).page_request());
    assert_eq!(g.error(1), (QueueError::DmaError.raw(), 0x7000));
    assert_eq!(ram(&r, 0x8000, 4096), vec![0; 4096]);
    assert_eq!(g.rd(regs::QUEUE_ERROR_SUMMARY), 0b10, "local numbering");
    // A stalled queue that the guest resets gives up its request; the next one is shown.
    copy_to_iova(&g, 0, 0x9000);
    copy_to_iova(&g, 1, 0xa000);
    r.dev.run_until_idle();
    assert_eq!(
        regs::PartPageReqLo(part_r(&r, 0, part::PAGE_REQ_LO)).page(),
        9
    );
    g.qw(0, queue::CONTROL, regs::QControl::RESET.mask32());
    assert_eq!(
        regs::PartPageReqLo(part_r(&r, 0, part::PAGE_REQ_LO)).page(),
        0xa
    );
    assert!(status(&r, 0).page_request());
    part_w(&r, 0, part::PAGE_RESP, regs::PartPageResp::DENY.mask32());
    assert!(!status(&r, 0).page_request());
    assert_eq!(g.error(1), (QueueError::DmaError.raw(), 0xa000));
    // A response with nothing presented is ignored: the failed queue stays failed.
    part_w(&r, 0, part::PAGE_RESP, regs::PartPageResp::RETRY.mask32());
    r.dev.run_until_idle();
    assert_eq!(g.error(1), (QueueError::DmaError.raw(), 0xa000));
    assert_eq!(
        g.q_status(0).bits(),
        QStatus::IDLE.mask32(),
        "reset, disabled"
    );
    assert!(!status(&r, 0).page_request());
}

#[test]
fn interrupts_are_relayed_in_local_numbering() {
    let r = rig();
    two_partitions(&r);
    let g = Guest::new(&r, 0);
    let _ = r.irq_count(0);
    g.wr(regs::INT_MASK, !IntSources::queue(1));
    g.setup_queue(1, vram_dpa(0), vram_dpa(0x800), 0);
    g.submit(1, &[encode::nop(true)]);
    r.dev.run_until_idle();
    assert_eq!(g.rd(regs::INT_STATUS), IntSources::queue(1));
    assert_eq!(
        part_r(&r, 0, part::VEC_PENDING),
        1 << 2,
        "local vector 1 + 1"
    );
    assert_eq!(
        r.r(regs::INT_STATUS),
        IntSources::PARTITION.mask32(),
        "not PF queue 2's bit"
    );
    assert_eq!(r.irq_count(0), 1);
    assert_eq!(r.irq_count(3), 0, "PF queue 2's own vector stays quiet");
    part_w(&r, 0, part::VEC_PENDING, 1 << 2);
    assert_eq!(part_r(&r, 0, part::VEC_PENDING), 0);

    // A masked source relays nothing until the guest unmasks it.
    g.setup_queue(0, vram_dpa(0x1000), vram_dpa(0x800), 5);
    assert_eq!(
        g.rd(regs::INT_STATUS) & IntSources::QUEUE_ERROR.mask32(),
        1 << 16
    );
    assert_eq!(part_r(&r, 0, part::VEC_PENDING), 0);
    g.wr(regs::INT_MASK, 0);
    assert_eq!(
        part_r(&r, 0, part::VEC_PENDING),
        1,
        "vector 0, for the pending error"
    );
    g.wr(regs::INT_TRIGGER, IntSources::PARTITION.mask32());
    assert_eq!(g.rd(regs::INT_STATUS) & IntSources::PARTITION.mask32(), 0);
}

#[test]
fn partition_reset_leaves_the_others_running() {
    let r = rig();
    two_partitions(&r);
    let (g0, g1) = (Guest::new(&r, 0), Guest::new(&r, 1));
    copy_to_iova(&g0, 0, 0x3000);
    g0.wr(regs::SCRATCH, 9);
    g0.wr(regs::INT_MASK, 0);
    g0.setup_queue(1, vram_dpa(0x4000), vram_dpa(0x800), 7);
    r.dev.run_until_idle();
    assert!(status(&r, 0).page_request());
    assert_ne!(g0.rd(regs::INT_STATUS), 0);

    g1.setup_queue(0, vram_dpa(0), vram_dpa(0x800), 0);
    r.setup_queue(0, vram_dpa(0), 4, 0);
    part_w(
        &r,
        0,
        part::CONTROL,
        PartControl(0).with_enable(true).with_reset(true).bits(),
    );
    assert!(status(&r, 0).enabled(), "still enabled");
    assert!(!status(&r, 0).page_request(), "the request is dropped");
    assert_eq!(part_r(&r, 0, part::VEC_PENDING), 0);
    for n in 0..2 {
        assert_eq!(g0.qr(n, queue::CONTROL), 0, "queue {n} disabled");
        assert_eq!(
            g0.qr(n, queue::RING_BASE_LO),
            0,
            "queue {n} at reset values"
        );
        assert_eq!(g0.q_status(n).bits(), QStatus::IDLE.mask32());
    }
    assert_eq!(g0.rd(regs::INT_STATUS), 0);
    assert_eq!(g0.rd(regs::INT_MASK), u32::MAX);
    assert_eq!(g0.rd(regs::SCRATCH), 0);

    g1.submit(0, &[encode::fill(vram_dpa(0x10_0000), 4096, 0x0606_0606)]);
    r.submit(0, &[encode::fill(vram_dpa(0x10_0000), 4096, 0x0707_0707)])
        .unwrap();
    r.dev.run_until_idle();
    assert_eq!(g1.vram_read(0x10_0000, 4096), vec![6; 4096]);
    assert_eq!(host_vram(&r, 0x10_0000, 4096), vec![7; 4096]);

    // The guest's own reset through its window is the same, and the others still run.
    g1.wr(regs::SCRATCH, 3);
    g1.wr(regs::DEVICE_CONTROL, 1);
    assert_eq!(g1.rd(regs::SCRATCH), 0);
    assert_eq!(g1.qr(0, queue::CONTROL), 0);
    assert_eq!(
        g1.rd(regs::VRAM_SIZE_LO),
        SLICE as u32,
        "configuration kept"
    );
    assert_eq!(
        r.qr(0, queue::STATUS) & QStatus::ENABLED.mask32(),
        QStatus::ENABLED.mask32()
    );

    // A global reset disables every partition.
    r.w(regs::DEVICE_CONTROL, 1);
    assert!(!status(&r, 0).enabled() && !status(&r, 1).enabled());
    assert_eq!(part_r(&r, 1, part::VRAM_BASE_LO), 0);
    assert_eq!(g1.rd(regs::ID), 0);
    assert_eq!(
        g1.vram_read(0x10_0000, 4096),
        vec![6; 4096],
        "VRAM survives"
    );
}

#[test]
fn scrub_zeroes_exactly_the_slice() {
    let r = rig();
    let junk = vec![0x5c; (4 * MIB) as usize];
    for off in (0..64 * MIB).step_by(junk.len()) {
        r.dev.vram.write(off, &junk).unwrap();
    }
    configure(&r, 2, 20 * MIB, 6 * MIB, 0, 0, 0);
    part_w(&r, 2, part::CONTROL, PartControl::SCRUB.mask32());
    assert_eq!(config_error(&r, 2), None);
    assert!(!status(&r, 2).scrubbing());
    assert_eq!(host_vram(&r, 20 * MIB - 4096, 4096), vec![0x5c; 4096]);
    assert_eq!(host_vram(&r, 20 * MIB, 4096), vec![0; 4096]);
    assert!(host_vram(&r, 20 * MIB, (6 * MIB) as usize)
        .iter()
        .all(|&b| b == 0));
    assert_eq!(host_vram(&r, 26 * MIB, 4096), vec![0x5c; 4096]);
    // A range beyond VRAM is refused, not clipped.
    configure(&r, 2, 62 * MIB, 4 * MIB, 0, 0, 0);
    part_w(&r, 2, part::CONTROL, PartControl::SCRUB.mask32());
    assert_eq!(config_error(&r, 2), Some(PartError::BadRange.raw()));
    assert_eq!(host_vram(&r, 62 * MIB, 4096), vec![0x5c; 4096]);
}

/// Commands completed by (PF queue 0, partition 0 local queue 0, partition 1 local queue 0).
fn completed(r: &Rig) -> [u32; 3] {
    [
        r.qr(0, queue::COMPLETED),
        Guest::new(r, 0).qr(0, queue::COMPLETED),
        Guest::new(r, 1).qr(0, queue::COMPLETED),
    ]
}

/// Fill the rings of the PF's queue 0 and of partition 0 (15 commands each), and give
/// partition 1 `light` commands.
fn load(r: &Rig, light: usize) {
    let (g0, g1) = (Guest::new(r, 0), Guest::new(r, 1));
    let heavy: Vec<_> = (0..15)
        .map(|i| encode::fill(vram_dpa(i * 0x1_0000), 0x1_0000, 1))
        .collect();
    r.setup_queue(0, vram_dpa(0x70_0000), 4, 0);
    r.submit(0, &heavy).unwrap();
    g0.setup_queue(0, vram_dpa(0x70_0000), vram_dpa(0x800), 0);
    g0.submit(0, &heavy);
    g1.setup_queue(0, vram_dpa(0x70_0000), vram_dpa(0x800), 0);
    g1.submit(0, &vec![encode::nop(false); light]);
}

#[test]
fn a_tenant_with_endless_work_does_not_starve_the_others() {
    let r = rig();
    two_partitions(&r);
    load(&r, 3);
    // Quantum 0 everywhere: one command per turn, tenants in order.
    for _ in 0..9 {
        assert!(r.dev.step());
    }
    assert_eq!(
        completed(&r),
        [3, 3, 3],
        "every tenant got a third of the engine"
    );
    for _ in 0..6 {
        assert!(r.dev.step());
    }
    assert_eq!(completed(&r), [6, 6, 3]);
}

#[test]
fn a_quantum_keeps_the_turn() {
    let r = rig();
    two_partitions(&r);
    // Partition 0 may run a second per turn; its 15 small fills take far less.
    part_w(&r, 0, part::QUANTUM, 1_000_000);
    load(&r, 3);
    for _ in 0..18 {
        assert!(r.dev.step());
    }
    let [pf, p0, p1] = completed(&r);
    assert_eq!(p0, 15, "partition 0 ran its whole ring in one turn");
    assert_eq!(pf + p1, 3, "the others had one turn each around it");
    assert!(pf >= 1 && p1 >= 1);
}

/// The engine threads serve the PF and both partitions at once, while the host resets one
/// partition in the middle: nothing deadlocks, and the other two finish with their data.
#[test]
fn engine_threads_with_partitions() {
    let r = rig();
    two_partitions(&r);
    let _engines = r.dev.start_engine();
    let (g0, g1) = (Guest::new(&r, 0), Guest::new(&r, 1));
    let fills = |v: u32| -> Vec<_> {
        (0..15)
            .map(|i| encode::fill(vram_dpa(i * 0x1_0000), 0x1_0000, v))
            .collect()
    };
    r.setup_queue(0, vram_dpa(0x70_0000), 4, 0);
    g0.setup_queue(0, vram_dpa(0x70_0000), vram_dpa(0x800), 0);
    g1.setup_queue(0, vram_dpa(0x70_0000), vram_dpa(0x800), 0);
    r.submit(0, &fills(0x0a0a_0a0a)).unwrap();
    g0.submit(0, &fills(0x0b0b_0b0b));
    g1.submit(0, &fills(0x0c0c_0c0c));
    part_w(
        &r,
        0,
        part::CONTROL,
        PartControl(0).with_enable(true).with_reset(true).bits(),
    );
    r.wait_idle(0);
    r.wait_idle(3);
    assert_eq!(r.qr(0, queue::COMPLETED), 15);
    assert_eq!(g1.qr(0, queue::COMPLETED), 15);
    assert_eq!(host_vram(&r, 0xe_0000, 4), vec![0x0a; 4]);
    assert_eq!(g1.vram_read(0xe_0000, 4), vec![0x0c; 4]);
    assert_eq!(g0.qr(0, queue::CONTROL), 0, "partition 0's queue was reset");
}
