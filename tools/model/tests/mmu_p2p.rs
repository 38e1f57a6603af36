// SPDX-License-Identifier: GPL-2.0
//! Page walks through real tables in VRAM, faults that stop one context, and
//! peer-to-peer between two devices on one fabric.

use vela_hw::regs::{self, ctx, queue, Counter, FaultReason, QueueError};
use vela_hw::Pte;
use vela_model::device::DeviceOptions;
use vela_model::engine::vram_dpa;
use vela_model::fabric::Fabric;
use vela_model::rig::{encode, Rig, RAM_BASE};

const ROOT: u64 = 0x1_0000;
const L1: u64 = 0x1_1000;
const L0: u64 = 0x1_2000;
const VA: u64 = 0x4000_0000;
const FENCE_ADDR: u64 = RAM_BASE + 0x8000;

fn opts() -> DeviceOptions {
    DeviceOptions {
        vram_size: 64 << 20,
        serial: 1,
        queues: 4,
        ..Default::default()
    }
}

fn set_pte(r: &Rig, table: u64, index: u64, entry: u64) {
    r.dpa_write(vram_dpa(table + index * 8), &entry.to_le_bytes())
        .unwrap();
}

/// Context 1 maps:
/// - VA + 0x0000: 4 KiB RW  -> VRAM 0x10_0000
/// - VA + 0x1000: 4 KiB RO  -> system memory RAM_BASE + 0x2000
/// - VA + 0x20_0000: 2 MiB RW -> VRAM 0x20_0000
fn mmu_rig() -> Rig {
    let r = Rig::new(opts()).unwrap();
    let rw = Pte::VALID.mask() | Pte::READ.mask() | Pte::WRITE.mask();
    set_pte(&r, ROOT, 1, Pte::VALID.mask() | Pte::VRAM.mask() | L1);
    set_pte(&r, L1, 0, Pte::VALID.mask() | Pte::VRAM.mask() | L0);
    set_pte(
        &r,
        L1,
        1,
        rw | Pte::HUGE.mask() | Pte::VRAM.mask() | 0x20_0000,
    );
    set_pte(&r, L0, 0, rw | Pte::VRAM.mask() | 0x10_0000);
    set_pte(
        &r,
        L0,
        1,
        Pte::VALID.mask() | Pte::READ.mask() | (RAM_BASE + 0x2000),
    );
    r.cw(1, ctx::PT_BASE_LO, ROOT as u32);
    r.cw(1, ctx::PT_BASE_HI, (vram_dpa(ROOT) >> 32) as u32);
    r.cw(1, ctx::CONTROL, regs::CtxControl::ENABLE.mask32());
    r.setup_queue(0, vram_dpa(0), 4, 1);
    r.setup_queue(1, vram_dpa(0x400), 4, 1);
    r.setup_queue(2, vram_dpa(0x800), 4, 2);
    r
}

#[test]
fn translated_fill_and_copy_across_pages() {
    let r = mmu_rig();
    r.dpa_write(RAM_BASE + 0x2000, &[0x5a; 4096]).unwrap();
    r.submit(
        0,
        &[
            encode::fill(VA, 4096, 0x1111_1111),
            // Crosses from the RW page into the RO page as a source.
            encode::copy(VA + 0x800, VA + 0x20_0000, 4096),
            encode::fence(VA + 0x20_1000, 77, false),
        ],
    )
    .unwrap();
    r.dev.run_until_idle();
    assert_eq!(r.qr(0, queue::STATUS) & regs::QStatus::ERROR.mask32(), 0);
    assert_eq!(r.cr(1, ctx::FAULT_STATUS), 0);
    let mut out = vec![0; 4096];
    r.dpa_read(vram_dpa(0x20_0000), &mut out).unwrap();
    assert!(out[..0x800].iter().all(|&b| b == 0x11));
    assert!(out[0x800..].iter().all(|&b| b == 0x5a));
    assert_eq!(r.dpa_read_u64(vram_dpa(0x20_1000)).unwrap(), 77);
    assert!(r.dev.counter(Counter::PageWalks) >= 4);
}

#[test]
fn fault_stops_only_its_context_and_resumes_after_clear() {
    let r = mmu_rig();
    r.submit(
        0,
        &[encode::fence(VA + 0x1008, 5, true), encode::nop(false)],
    )
    .unwrap();
    r.dev.run_until_idle();
    let fs = r.cr(1, ctx::FAULT_STATUS);
    assert_ne!(fs & regs::CtxFaultStatus::VALID.mask32(), 0);
    assert_ne!(fs & regs::CtxFaultStatus::WRITE.mask32(), 0);
    assert_eq!(
        fs >> regs::CtxFaultStatus::REASON.lo & 0xf,
        FaultReason::WriteProtect as u32
    );
    assert_eq!(fs >> regs::CtxFaultStatus::LEVEL.lo & 0x3, 0);
    assert_eq!(fs >> regs::CtxFaultStatus::QUEUE.lo & 0xf, 0);
    assert_eq!(r.cr(1, ctx::FAULT_ADDR_LO), (VA + 0x1008) as u32);
    assert_eq!(r.r(regs::CTX_FAULT_SUMMARY), 1 << 1);
    assert_ne!(
        r.r(regs::INT_STATUS) & regs::IntSources::MMU_FAULT.mask32(),
        0
    );
    assert_eq!(r.irq_count(regs::VECTOR_ERROR), 1);
    assert_eq!(r.qr(0, queue::HEAD), 0);
    assert_ne!(
        r.qr(0, queue::STATUS) & regs::QStatus::FAULT_STOPPED.mask32(),
        0
    );
    assert_eq!(
        r.qr(0, queue::STATUS) & regs::QStatus::ERROR.mask32(),
        0,
        "a fault is not an error"
    );

    // Queue 1 shares context 1: it is stopped too. Queue 2 (context 2, no
    // translation) runs on.
    r.submit(1, &[encode::nop(false)]).unwrap();
    r.submit(2, &[encode::fence(FENCE_ADDR, 3, false)]).unwrap();
    r.dev.run_until_idle();
    assert_eq!(r.qr(1, queue::HEAD), 0);
    assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), 3);

    // Fix the mapping, clear the fault: the faulting command runs again.
    set_pte(
        &r,
        L0,
        1,
        Pte::VALID.mask() | Pte::READ.mask() | Pte::WRITE.mask() | (RAM_BASE + 0x2000),
    );
    r.cw(
        1,
        ctx::CONTROL,
        regs::CtxControl::ENABLE.mask32()
            | regs::CtxControl::INVALIDATE.mask32()
            | regs::CtxControl::FAULT_CLEAR.mask32(),
    );
    assert_eq!(r.cr(1, ctx::FAULT_STATUS), 0);
    r.dev.run_until_idle();
    assert_eq!(r.dpa_read_u64(RAM_BASE + 0x2008).unwrap(), 5);
    assert_eq!(r.qr(0, queue::HEAD), 2);
    assert_eq!(r.qr(1, queue::HEAD), 1);
    assert_eq!(r.irq_count(regs::queue_vector(0)), 1);
}

#[test]
fn second_fault_sets_overflow() {
    let r = mmu_rig();
    r.submit(0, &[encode::fence(VA + 0x40_0000, 1, false)])
        .unwrap();
    r.dev.run_until_idle();
    let fs = r.cr(1, ctx::FAULT_STATUS);
    assert_eq!(
        fs >> regs::CtxFaultStatus::REASON.lo & 0xf,
        FaultReason::NotPresent as u32
    );
    assert_eq!(fs >> regs::CtxFaultStatus::LEVEL.lo & 0x3, 1);
    // Reset queue 0 (dropping its work) and fault again from queue 1 before clearing.
    r.qw(0, queue::CONTROL, regs::QControl::RESET.mask32());
    r.cw(
        1,
        ctx::CONTROL,
        regs::CtxControl::ENABLE.mask32() | regs::CtxControl::FAULT_CLEAR.mask32(),
    );
    r.submit(1, &[encode::copy(1 << 40, VA, 8)]).unwrap();
    r.dev.run_until_idle();
    let fs = r.cr(1, ctx::FAULT_STATUS);
    assert_eq!(
        fs >> regs::CtxFaultStatus::REASON.lo & 0xf,
        FaultReason::AddressSize as u32
    );
    assert_eq!(fs >> regs::CtxFaultStatus::QUEUE.lo & 0xf, 1);
    assert_eq!(fs & regs::CtxFaultStatus::WRITE.mask32(), 0);
    // Resubmitting on queue 1 faults again: only OVERFLOW changes.
    r.cw(1, ctx::CONTROL, regs::CtxControl::ENABLE.mask32());
    r.qw(
        1,
        queue::CONTROL,
        regs::QControl::RESET.mask32() | regs::QControl::ENABLE.mask32(),
    );
    r.submit(1, &[encode::fence(VA + 0x1000, 1, false)])
        .unwrap();
    r.dev.run_until_idle();
    assert_eq!(
        r.cr(1, ctx::FAULT_STATUS) & regs::CtxFaultStatus::OVERFLOW.mask32(),
        0,
        "stopped context runs nothing"
    );
    assert_eq!(r.dev.counter(Counter::MmuFaults), 2);
}

#[test]
fn page_tables_in_unreachable_memory_fault() {
    let r = mmu_rig();
    r.cw(3, ctx::PT_BASE_LO, 0x7000_0000);
    r.cw(3, ctx::CONTROL, regs::CtxControl::ENABLE.mask32());
    r.setup_queue(3, vram_dpa(0xc00), 2, 3);
    r.submit(3, &[encode::fence(0, 1, false)]).unwrap();
    r.dev.run_until_idle();
    let fs = r.cr(3, ctx::FAULT_STATUS);
    assert_eq!(
        fs >> regs::CtxFaultStatus::REASON.lo & 0xf,
        FaultReason::TableBusError as u32
    );
    assert_eq!(fs >> regs::CtxFaultStatus::LEVEL.lo & 0x3, 2);
}

const BAR2_A: u64 = 0x80_0000_0000;
const BAR2_B: u64 = 0x90_0000_0000;

fn pair() -> (Rig, Rig) {
    let fabric = Fabric::new();
    let a = Rig::on_fabric(opts(), &fabric, BAR2_A).unwrap();
    let b = Rig::on_fabric(
        DeviceOptions {
            serial: 2,
            ..opts()
        },
        &fabric,
        BAR2_B,
    )
    .unwrap();
    a.setup_queue(0, vram_dpa(0), 4, 0);
    (a, b)
}

#[test]
fn p2p_copy_reaches_the_peer_vram() {
    let (a, b) = pair();
    a.dpa_write(vram_dpa(0x1000), b"to the peer").unwrap();
    b.dpa_write(vram_dpa(0x3000), b"from the peer").unwrap();
    a.submit(
        0,
        &[
            encode::copy(vram_dpa(0x1000), BAR2_B + 0x2000, 11),
            encode::copy(BAR2_B + 0x3000, vram_dpa(0x4000), 13),
        ],
    )
    .unwrap();
    a.dev.run_until_idle();
    assert_eq!(a.qr(0, queue::STATUS) & regs::QStatus::ERROR.mask32(), 0);
    let mut out = [0; 11];
    b.dpa_read(vram_dpa(0x2000), &mut out).unwrap();
    assert_eq!(&out, b"to the peer");
    let mut out = [0; 13];
    a.dpa_read(vram_dpa(0x4000), &mut out).unwrap();
    assert_eq!(&out, b"from the peer");
    assert_eq!(a.dev.counter(Counter::P2pBytes), 24);
    assert_eq!(b.dev.counter(Counter::P2pBytes), 0);

    // Own BAR2 loops back to own VRAM and is not P2P.
    a.submit(0, &[encode::copy(BAR2_A + 0x1000, vram_dpa(0x5000), 11)])
        .unwrap();
    a.dev.run_until_idle();
    a.dpa_read(vram_dpa(0x5000), &mut out[..11]).unwrap();
    assert_eq!(&out[..11], b"to the peer");
    assert_eq!(a.dev.counter(Counter::P2pBytes), 24);
}

#[test]
fn p2p_through_page_tables_and_decode_off() {
    let (a, b) = pair();
    // Context 1 of A maps VA 0 onto B's BAR2 + 0x10_0000 (a bus address).
    set_pte(&a, ROOT, 0, Pte::VALID.mask() | Pte::VRAM.mask() | L1);
    set_pte(&a, L1, 0, Pte::VALID.mask() | Pte::VRAM.mask() | L0);
    set_pte(
        &a,
        L0,
        0,
        Pte::VALID.mask() | Pte::READ.mask() | Pte::WRITE.mask() | (BAR2_B + 0x10_0000),
    );
    a.cw(1, ctx::PT_BASE_LO, ROOT as u32);
    a.cw(1, ctx::PT_BASE_HI, (vram_dpa(ROOT) >> 32) as u32);
    a.cw(1, ctx::CONTROL, regs::CtxControl::ENABLE.mask32());
    a.setup_queue(1, vram_dpa(0x400), 4, 1);
    a.submit(1, &[encode::fill(0x10, 16, 0xfeed_f00d)]).unwrap();
    a.dev.run_until_idle();
    let mut out = [0; 4];
    b.dpa_read(vram_dpa(0x10_0010), &mut out).unwrap();
    assert_eq!(u32::from_le_bytes(out), 0xfeed_f00d);

    // B turns memory decode off: its window disappears from the fabric.
    let cfg = vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;
    b.dev.region_write(cfg, 4, &4u16.to_le_bytes()).unwrap();
    a.submit(0, &[encode::fill(BAR2_B, 4, 1)]).unwrap();
    a.dev.run_until_idle();
    assert_eq!(
        a.qr(0, queue::STATUS) >> 8 & 0xff,
        QueueError::DmaError as u32
    );
    // A range running off the end of the peer's window stops at the edge.
    b.dev.region_write(cfg, 4, &6u16.to_le_bytes()).unwrap();
    a.qw(
        0,
        queue::CONTROL,
        regs::QControl::RESET.mask32() | regs::QControl::ENABLE.mask32(),
    );
    a.submit(0, &[encode::fill(BAR2_B + (64 << 20) - 8, 16, 1)])
        .unwrap();
    a.dev.run_until_idle();
    assert_eq!(
        a.qr(0, queue::ERROR_ADDR_LO) as u64,
        (BAR2_B + (64 << 20)) & 0xffff_ffff
    );
}

/// SIGNAL writes the fence location by DPA while the queue's context translates, and no command
/// of that context reaches the location unless the context maps it.
#[test]
fn signal_bypasses_translation_and_translated_commands_cannot_reach_the_fence() {
    let r = mmu_rig();
    let fence = vram_dpa(0x30_0000);
    r.qw(0, queue::CONTROL, regs::QControl::RESET.mask32());
    r.qw(0, queue::FENCE_BASE_LO, fence as u32 | 0x7);
    r.qw(0, queue::FENCE_BASE_HI, (fence >> 32) as u32);
    r.qw(0, queue::CONTROL, regs::QControl::ENABLE.mask32());
    // Bits 2:0 are not stored: the location is 8-byte aligned.
    assert_eq!(r.qr(0, queue::FENCE_BASE_LO), fence as u32);
    // Ignored while the queue is enabled.
    r.qw(0, queue::FENCE_BASE_LO, 0x1000);
    assert_eq!(r.qr(0, queue::FENCE_BASE_LO), fence as u32);

    r.submit(0, &[encode::fill(VA, 4096, 7), encode::signal(41, true)])
        .unwrap();
    r.dev.run_until_idle();
    assert_eq!(r.qr(0, queue::STATUS) & regs::QStatus::ERROR.mask32(), 0);
    assert_eq!(r.dpa_read_u64(fence).unwrap(), 41);
    assert_eq!(r.dev.counter(Counter::FencesWritten), 1);
    assert!(r.irq_count(regs::queue_vector(0)) >= 1);

    // The same DPA as a VA of the context: unmapped, so the FENCE faults and writes nothing.
    let fence_va = fence & vela_hw::dpa::OFFSET_MASK;
    r.submit(0, &[encode::fence(fence_va, u64::MAX, false)])
        .unwrap();
    r.dev.run_until_idle();
    let status = r.cr(1, ctx::FAULT_STATUS);
    assert_ne!(status & regs::CtxFaultStatus::VALID.mask32(), 0);
    assert_eq!(
        (status >> regs::CtxFaultStatus::REASON.lo) & 0xf,
        FaultReason::NotPresent as u32
    );
    assert_eq!(r.dpa_read_u64(fence).unwrap(), 41);
}

#[test]
fn signal_checks_reserved_fields_and_an_unreachable_fence() {
    let r = mmu_rig();
    let mut bad = encode::signal(1, false);
    bad[8] = 1;
    r.submit(1, &[bad]).unwrap();
    r.dev.run_until_idle();
    assert_ne!(r.qr(1, queue::STATUS) & regs::QStatus::ERROR.mask32(), 0);
    assert_eq!(
        (r.qr(1, queue::STATUS) >> regs::QStatus::ERROR_CODE.lo) & 0xff,
        QueueError::ReservedNonZero as u32
    );
    // Queue 2 never had a fence base: bus address 0 is not mapped system memory.
    r.submit(2, &[encode::signal(1, false)]).unwrap();
    r.dev.run_until_idle();
    assert_eq!(
        (r.qr(2, queue::STATUS) >> regs::QStatus::ERROR_CODE.lo) & 0xff,
        QueueError::DmaError as u32
    );
    // A global reset clears the fence base; a queue reset keeps it.
    r.qw(1, queue::CONTROL, regs::QControl::RESET.mask32());
    r.qw(1, queue::FENCE_BASE_LO, 0x4000);
    r.qw(1, queue::CONTROL, regs::QControl::RESET.mask32());
    assert_eq!(r.qr(1, queue::FENCE_BASE_LO), 0x4000);
    r.w(regs::DEVICE_CONTROL, regs::DeviceControl::RESET.mask32());
    r.dev.run_until_idle();
    assert_eq!(r.qr(1, queue::FENCE_BASE_LO), 0);
}

/// INVALIDATE completes only once the context's command in flight is done with its
/// translations: after the write, nothing started before it is still running.
#[test]
fn invalidate_waits_for_the_context_s_command_in_flight() {
    let r = mmu_rig();
    // 28 MiB more through huge pages: a FILL long enough to be caught running.
    for k in 2..16 {
        let rw = Pte::VALID.mask()
            | Pte::READ.mask()
            | Pte::WRITE.mask()
            | Pte::HUGE.mask()
            | Pte::VRAM.mask();
        set_pte(&r, L1, k, rw | (k << 21));
    }
    let _engine = r.dev.start_engine();
    let mut caught = 0;
    for _ in 0..20 {
        r.submit(0, &[encode::fill(VA + 0x40_0000, 28 << 20, 9)])
            .unwrap();
        // Until the FILL runs or is over (a loaded host may not show it running).
        let running = loop {
            let st = r.dev.lock();
            let q = &st.queues[0];
            if q.busy || q.head == q.tail {
                break q.busy;
            }
            drop(st);
            std::thread::yield_now();
        };
        if running {
            caught += 1;
        }
        r.cw(
            1,
            ctx::CONTROL,
            regs::CtxControl::ENABLE.mask32() | regs::CtxControl::INVALIDATE.mask32(),
        );
        assert!(
            !r.dev.lock().queues[0].busy,
            "a command of the context still ran after INVALIDATE completed"
        );
        r.wait_idle(0);
    }
    assert!(caught > 0, "never saw a command in flight");
}
