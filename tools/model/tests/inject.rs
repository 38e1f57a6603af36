// SPDX-License-Identifier: GPL-2.0
//! Fault injection knobs, and the engine running on its own thread.

use std::time::{Duration, Instant};

use vela_hw::regs::{self, ctx, queue, Counter, FaultReason, QueueError};
use vela_hw::{Engine, Kernel};
use vela_model::compute::KernelArgs;
use vela_model::device::DeviceOptions;
use vela_model::engine::vram_dpa;
use vela_model::inject::Knob;
use vela_model::rig::{encode, Rig, RAM_BASE};

const FENCE_ADDR: u64 = RAM_BASE + 0x8000;

fn rig() -> Rig {
    let r = Rig::new(DeviceOptions {
        vram_size: 16 << 20,
        serial: 1,
        queues: 2,
        ..Default::default()
    })
    .unwrap();
    r.setup_queue(0, vram_dpa(0), 4, 0);
    r.setup_queue(1, vram_dpa(0x400), 4, 0);
    r
}

#[test]
fn hung_engine_stalls_its_queues_until_reset() {
    let r = rig();
    r.dev.inject.apply(Knob::Hang(Engine::Copy));
    r.submit(0, &[encode::fence(FENCE_ADDR, 1, false)]).unwrap();
    let k = KernelArgs {
        a: vram_dpa(0x1000),
        b: vram_dpa(0x1000),
        dst: vram_dpa(0x2000),
        count: 1,
        ..Default::default()
    };
    r.submit(1, &[encode::kernel(Kernel::AddU32, &k)]).unwrap();
    r.dev.run_until_idle();
    assert_eq!(r.qr(0, queue::HEAD), 0);
    assert_eq!(
        r.qr(0, queue::STATUS) & regs::QStatus::IDLE.mask32(),
        0,
        "not idle: work is stuck"
    );
    assert_eq!(r.qr(1, queue::HEAD), 1, "the compute engine still runs");
    r.w(regs::DEVICE_CONTROL, regs::DeviceControl::RESET.mask32());
    assert!(!r.dev.inject.hung(Engine::Copy));
}

#[test]
fn failed_dma_corrupt_fence_and_dropped_interrupt() {
    let r = rig();
    r.dev.inject.apply(Knob::FailDma(1));
    r.submit(0, &[encode::fence(FENCE_ADDR, 1, false)]).unwrap();
    r.dev.run_until_idle();
    assert_eq!(
        r.qr(0, queue::STATUS) >> 8 & 0xff,
        QueueError::DmaError as u32
    );
    assert_eq!(r.dev.counter(Counter::DmaErrors), 1);

    r.dev.inject.apply(Knob::CorruptFence(1));
    r.dev.inject.apply(Knob::DropIrq(1));
    r.submit(
        1,
        &[
            encode::fence(FENCE_ADDR, 0x10, true),
            encode::fence(FENCE_ADDR + 8, 0x20, true),
        ],
    )
    .unwrap();
    r.dev.run_until_idle();
    assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), !0x10);
    assert_eq!(r.dpa_read_u64(FENCE_ADDR + 8).unwrap(), 0x20);
    assert_eq!(
        r.irq_count(regs::queue_vector(1)),
        1,
        "one of two messages dropped"
    );
    assert_ne!(r.r(regs::INT_STATUS) & (1 << 1), 0);
}

#[test]
fn injected_mmu_fault_without_page_tables() {
    let r = rig();
    r.dev.inject.apply(Knob::MmuFault(1));
    r.submit(0, &[encode::fence(FENCE_ADDR, 1, false)]).unwrap();
    r.dev.run_until_idle();
    let fs = r.cr(0, ctx::FAULT_STATUS);
    assert_eq!(
        fs >> regs::CtxFaultStatus::REASON.lo & 0xf,
        FaultReason::Injected as u32
    );
    assert_ne!(
        r.r(regs::INT_STATUS) & regs::IntSources::MMU_FAULT.mask32(),
        0
    );
    r.cw(0, ctx::CONTROL, regs::CtxControl::FAULT_CLEAR.mask32());
    r.dev.run_until_idle();
    assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), 1);
}

#[test]
fn engine_thread_completes_and_interrupts() {
    let r = rig();
    let _engine = r.dev.start_engine();
    for i in 1..=50u64 {
        r.submit(
            0,
            &[
                encode::fill(vram_dpa(0x10_0000), 4096, i as u32),
                encode::fence(FENCE_ADDR, i, true),
            ],
        )
        .unwrap();
        let start = Instant::now();
        while r.irq_count(1) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no interrupt for fence {i}"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
        assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), i);
    }
    assert_eq!(r.qr(0, queue::COMPLETED), 100);
}

#[test]
fn reset_while_engine_runs_does_not_wedge() {
    let r = rig();
    let _engine = r.dev.start_engine();
    for round in 0..20 {
        r.setup_queue(0, vram_dpa(0), 4, 0);
        r.submit(
            0,
            &[
                encode::fill(vram_dpa(0x10_0000), 8 << 20, round),
                encode::fence(FENCE_ADDR, 1, false),
            ],
        )
        .unwrap();
        if round % 2 == 0 {
            r.w(regs::DEVICE_CONTROL, regs::DeviceControl::RESET.mask32());
        } else {
            r.qw(0, queue::CONTROL, regs::QControl::RESET.mask32());
        }
        assert_eq!(r.qr(0, queue::HEAD), 0);
        assert_eq!(r.qr(0, queue::STATUS) & regs::QStatus::ENABLED.mask32(), 0);
        // Once the reset has returned, nothing it aborted writes memory.
        let mut before = vec![0; 8 << 20];
        r.dpa_read(vram_dpa(0x10_0000), &mut before).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let mut after = vec![0; 8 << 20];
        r.dpa_read(vram_dpa(0x10_0000), &mut after).unwrap();
        assert!(
            before == after,
            "memory changed after reset in round {round}"
        );
    }
    // Still serving after all that.
    r.w(regs::INT_MASK, 0);
    r.setup_queue(0, vram_dpa(0), 4, 0);
    r.submit(0, &[encode::fence(FENCE_ADDR, 99, false)])
        .unwrap();
    let start = Instant::now();
    while r.dpa_read_u64(FENCE_ADDR).unwrap() != 99 {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_micros(100));
    }
}
