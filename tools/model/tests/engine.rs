// SPDX-License-Identifier: GPL-2.0
//! Queues, commands, interrupts, errors and resets, driven in-process through
//! BAR0 as a driver would, with the engine stepped synchronously.

use vela_hw::regs::{self, queue, Counter, QueueError};
use vela_hw::Kernel;
use vela_model::compute::{crc32c, KernelArgs};
use vela_model::device::DeviceOptions;
use vela_model::engine::vram_dpa;
use vela_model::rig::{encode, Rig, RAM_BASE};

fn rig() -> Rig {
    Rig::new(DeviceOptions {
        vram_size: 64 << 20,
        serial: 1,
        queues: 4,
        ..Default::default()
    })
    .unwrap()
}

/// A rig with queue 0 on a VRAM ring and queue 1 on a system-memory ring.
fn rig_with_queues() -> Rig {
    let r = rig();
    r.setup_queue(0, vram_dpa(0), 4, 0);
    r.setup_queue(1, RAM_BASE, 4, 0);
    r
}

const FENCE_ADDR: u64 = RAM_BASE + 0x8000;

fn status(r: &Rig, q: usize) -> u32 {
    r.qr(q, queue::STATUS)
}

fn error_code(r: &Rig, q: usize) -> u32 {
    status(r, q) >> regs::QStatus::ERROR_CODE.lo & 0xff
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn nop_and_fence_with_interrupt() {
    let r = rig_with_queues();
    for q in [0, 1] {
        r.submit(
            q,
            &[
                encode::nop(false),
                encode::fence(FENCE_ADDR, 0x1234 + q as u64, true),
            ],
        )
        .unwrap();
        r.dev.run_until_idle();
        assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), 0x1234 + q as u64);
        assert_eq!(r.qr(q, queue::HEAD), 2);
        assert_eq!(r.qr(q, queue::COMPLETED), 2);
        assert_ne!(status(&r, q) & regs::QStatus::IDLE.mask32(), 0);
        assert_eq!(r.irq_count(regs::queue_vector(q)), 1, "queue {q} vector");
        assert_ne!(r.r(regs::INT_STATUS) & (1 << q), 0);
    }
    assert_eq!(r.irq_count(0), 0);
    r.w(regs::INT_STATUS, 0x3);
    assert_eq!(r.r(regs::INT_STATUS), 0);
    assert_eq!(r.dev.counter(Counter::FencesWritten), 2);
    assert_eq!(r.dev.counter(Counter::CommandsCompleted), 4);
    assert_eq!(r.dev.counter(Counter::Doorbells), 2);
}

#[test]
fn ring_wraps() {
    let r = rig();
    r.setup_queue(0, vram_dpa(0), 2, 0);
    for i in 0..10u64 {
        r.submit(0, &[encode::fence(FENCE_ADDR, i, false)]).unwrap();
        r.dev.run_until_idle();
        assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), i);
    }
    assert_eq!(r.qr(0, queue::HEAD), 10 % 4);
    assert_eq!(r.qr(0, queue::COMPLETED), 10);
}

#[test]
fn copy_between_vram_and_system_memory() {
    let r = rig_with_queues();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    r.dpa_write(RAM_BASE + 0x10_0000, &data).unwrap();
    r.submit(
        0,
        &[
            encode::copy(RAM_BASE + 0x10_0000, vram_dpa(0x10_0003), data.len() as u64),
            encode::copy(vram_dpa(0x10_0003), vram_dpa(0x30_0000), data.len() as u64),
            encode::copy(vram_dpa(0x30_0000), RAM_BASE + 0x40_0001, data.len() as u64),
            encode::copy(0, 0, 0),
        ],
    )
    .unwrap();
    r.dev.run_until_idle();
    assert_eq!(status(&r, 0) & regs::QStatus::ERROR.mask32(), 0);
    let mut out = vec![0; data.len()];
    r.dpa_read(RAM_BASE + 0x40_0001, &mut out).unwrap();
    assert_eq!(out, data);
    assert_eq!(r.dev.counter(Counter::BytesWritten), 3 * data.len() as u64);
}

#[test]
fn fill_pattern() {
    let r = rig_with_queues();
    r.submit(0, &[encode::fill(vram_dpa(0x1000), 4096 * 3, 0xa5b6_c7d8)])
        .unwrap();
    r.dev.run_until_idle();
    let mut out = vec![0; 4096 * 3 + 4];
    r.dpa_read(vram_dpa(0x1000), &mut out).unwrap();
    assert!(out[..4096 * 3]
        .chunks(4)
        .all(|w| w == 0xa5b6_c7d8u32.to_le_bytes()));
    assert_eq!(&out[4096 * 3..], &[0; 4]);
}

#[test]
fn every_kernel() {
    let r = rig_with_queues();
    let (a, b, c, d) = (
        vram_dpa(0x10_0000),
        vram_dpa(0x20_0000),
        vram_dpa(0x30_0000),
        vram_dpa(0x40_0000),
    );
    let args = |count| KernelArgs {
        a,
        b,
        c,
        dst: d,
        count,
        ..Default::default()
    };
    let run = |k: Kernel, args: KernelArgs, out_len: usize| -> Vec<u8> {
        r.submit(0, &[encode::kernel(k, &args)]).unwrap();
        r.dev.run_until_idle();
        assert_eq!(error_code(&r, 0), 0, "{k:?}");
        let mut out = vec![0; out_len];
        r.dpa_read(d, &mut out).unwrap();
        out
    };
    r.dpa_write(a, &f32s(&[1.0, 2.0, 3.0, 4.0])).unwrap();
    r.dpa_write(b, &f32s(&[0.5, 0.25, 2.0, -1.0])).unwrap();
    r.dpa_write(c, &f32s(&[1.0, 1.0, 1.0, 1.0])).unwrap();
    assert_eq!(
        run(Kernel::AddF32, args(4), 16),
        f32s(&[1.5, 2.25, 5.0, 3.0])
    );
    assert_eq!(
        run(Kernel::MulF32, args(4), 16),
        f32s(&[0.5, 0.5, 6.0, -4.0])
    );
    assert_eq!(
        run(Kernel::FmaF32, args(4), 16),
        f32s(&[1.5, 1.5, 7.0, -3.0])
    );
    assert_eq!(run(Kernel::SumF32, args(4), 4), f32s(&[10.0]));
    // Matmul 2x2 by 2x2 over the same buffers.
    let mm = KernelArgs {
        n: 2,
        k: 2,
        ..args(2)
    };
    assert_eq!(
        run(Kernel::MatmulF32, mm, 16),
        f32s(&[4.5, -1.75, 9.5, -3.25])
    );

    r.dpa_write(a, &u32s(&[u32::MAX, 2, 3])).unwrap();
    r.dpa_write(b, &u32s(&[1, 5, 7])).unwrap();
    r.dpa_write(c, &u32s(&[10, 20, 30])).unwrap();
    assert_eq!(run(Kernel::AddU32, args(3), 12), u32s(&[0, 7, 10]));
    assert_eq!(run(Kernel::MulU32, args(3), 12), u32s(&[u32::MAX, 10, 21]));
    assert_eq!(run(Kernel::FmaU32, args(3), 12), u32s(&[9, 30, 51]));
    assert_eq!(run(Kernel::SumU32, args(3), 4), u32s(&[4]));

    r.dpa_write(a, b"123456789").unwrap();
    let crc = KernelArgs {
        param: 0,
        ..args(9)
    };
    assert_eq!(run(Kernel::Crc32c, crc, 4), 0xe306_9283u32.to_le_bytes());
    assert_eq!(crc32c(0, b"123456789"), 0xe306_9283);
    assert_eq!(r.dev.counter(Counter::KernelsExecuted), 10);
}

#[test]
fn kernel_on_aliased_destination() {
    let r = rig_with_queues();
    let a = vram_dpa(0x1000);
    r.dpa_write(a, &u32s(&[1, 2, 3])).unwrap();
    let args = KernelArgs {
        a,
        b: a,
        dst: a,
        count: 3,
        ..Default::default()
    };
    r.submit(0, &[encode::kernel(Kernel::AddU32, &args)])
        .unwrap();
    r.dev.run_until_idle();
    let mut out = [0; 12];
    r.dpa_read(a, &mut out).unwrap();
    assert_eq!(out.to_vec(), u32s(&[2, 4, 6]));
}

/// Submit one command and return the queue's error code and error address.
fn failing(c: [u8; vela_hw::cmd::SIZE]) -> (u32, u64, Rig) {
    let r = rig_with_queues();
    r.submit(0, &[c, encode::fence(FENCE_ADDR, 1, false)])
        .unwrap();
    r.dev.run_until_idle();
    let addr =
        u64::from(r.qr(0, queue::ERROR_ADDR_LO)) | u64::from(r.qr(0, queue::ERROR_ADDR_HI)) << 32;
    (error_code(&r, 0), addr, r)
}

#[test]
fn malformed_commands_stop_the_queue() {
    let mut bad_header = encode::nop(false);
    bad_header[2] = 1;
    let mut bad_reserved = encode::fence(FENCE_ADDR, 1, false);
    bad_reserved[40] = 1;
    let mut bad_opcode = encode::nop(false);
    bad_opcode[0] = 0x7f;
    let mut bad_kernel = encode::kernel(Kernel::AddF32, &KernelArgs::default());
    bad_kernel[4] = 0x55;
    let cases = [
        (bad_header, QueueError::ReservedNonZero, 0),
        (bad_reserved, QueueError::ReservedNonZero, 0),
        (bad_opcode, QueueError::BadOpcode, 0),
        (bad_kernel, QueueError::BadKernel, 0),
        (
            encode::fence(FENCE_ADDR + 4, 1, false),
            QueueError::BadAlignment,
            FENCE_ADDR + 4,
        ),
        (
            encode::fill(vram_dpa(2), 8, 0),
            QueueError::BadAlignment,
            vram_dpa(2),
        ),
        (encode::fill(vram_dpa(0), 6, 0), QueueError::BadLength, 0),
        (encode::copy(0, 0, (1 << 32) + 1), QueueError::BadLength, 0),
        (
            encode::kernel(
                Kernel::AddF32,
                &KernelArgs {
                    count: vela_hw::compute::MAX_COUNT + 1,
                    ..Default::default()
                },
            ),
            QueueError::BadLength,
            0,
        ),
        (
            encode::copy(vram_dpa(64 << 20), vram_dpa(0), 4),
            QueueError::DmaError,
            vram_dpa(64 << 20),
        ),
        (
            encode::copy(0x10, vram_dpa(0), 4),
            QueueError::DmaError,
            0x10,
        ),
        (
            encode::fence(u64::MAX - 7, 1, false),
            QueueError::DmaError,
            u64::MAX - 7,
        ),
    ];
    for (i, (c, code, addr)) in cases.into_iter().enumerate() {
        let (got, got_addr, r) = failing(c);
        assert_eq!((got, got_addr), (code as u32, addr), "case {i}");
        assert_ne!(status(&r, 0) & regs::QStatus::ERROR.mask32(), 0);
        assert_eq!(r.qr(0, queue::HEAD), 0, "HEAD stays on the failing slot");
        assert_eq!(
            r.dpa_read_u64(FENCE_ADDR).unwrap(),
            0,
            "nothing after the error runs"
        );
        assert_eq!(r.r(regs::QUEUE_ERROR_SUMMARY), 1);
        assert_ne!(
            r.r(regs::INT_STATUS) & regs::IntSources::QUEUE_ERROR.mask32(),
            0
        );
        assert_eq!(r.irq_count(regs::VECTOR_ERROR), 1);
        // Other queues keep running.
        r.submit(1, &[encode::fence(FENCE_ADDR, 9, false)]).unwrap();
        r.dev.run_until_idle();
        assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), 9);
        // A queue reset recovers.
        r.qw(
            0,
            queue::CONTROL,
            regs::QControl::RESET.mask32() | regs::QControl::ENABLE.mask32(),
        );
        assert_eq!(
            status(&r, 0),
            regs::QStatus::IDLE.mask32() | regs::QStatus::ENABLED.mask32()
        );
        r.submit(0, &[encode::fence(FENCE_ADDR, 10, false)])
            .unwrap();
        r.dev.run_until_idle();
        assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), 10);
    }
}

#[test]
fn bad_ring_pointers() {
    let r = rig();
    // Ring size out of range: enabling fails.
    r.qw(0, queue::RING_SIZE, 17);
    r.qw(0, queue::CONTROL, regs::QControl::ENABLE.mask32());
    assert_eq!(error_code(&r, 0), QueueError::BadRing as u32);
    assert_eq!(status(&r, 0) & regs::QStatus::ENABLED.mask32(), 0);
    // Tail beyond the ring.
    r.setup_queue(1, vram_dpa(0), 2, 0);
    r.qw(1, queue::DOORBELL, 4);
    assert_eq!(error_code(&r, 1), QueueError::BadRing as u32);
    // Ring in unmapped memory.
    r.setup_queue(2, 0x5000_0000, 2, 0);
    r.qw(2, queue::DOORBELL, 1);
    r.dev.run_until_idle();
    assert_eq!(error_code(&r, 2), QueueError::BadRing as u32);
    assert_eq!(r.qr(2, queue::ERROR_ADDR_LO), 0x5000_0000);
    // Ring registers are frozen while enabled.
    r.setup_queue(3, vram_dpa(0x1000), 2, 0);
    r.qw(3, queue::RING_BASE_LO, 0x40);
    assert_eq!(r.qr(3, queue::RING_BASE_LO), 0x1000);
    assert_eq!(r.r(regs::QUEUE_ERROR_SUMMARY), 0b0111);
    assert_ne!(
        r.r(regs::DEVICE_STATUS) & regs::DeviceStatus::QUEUE_ERROR.mask32(),
        0
    );
}

#[test]
fn bus_master_off_blocks_system_memory() {
    let r = rig_with_queues();
    let cfg = vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;
    r.dev.region_write(cfg, 4, &2u16.to_le_bytes()).unwrap();
    r.submit(0, &[encode::fence(FENCE_ADDR, 1, true)]).unwrap();
    r.dev.run_until_idle();
    assert_eq!(error_code(&r, 0), QueueError::DmaError as u32);
    assert_eq!(r.irq_count(0), 0, "no messages without bus mastering");
}

#[test]
fn interrupt_mask_and_pending_resend() {
    let r = rig_with_queues();
    r.w(regs::INT_MASK, 1);
    r.submit(0, &[encode::nop(true)]).unwrap();
    r.dev.run_until_idle();
    assert_eq!(r.irq_count(1), 0);
    assert_eq!(r.r(regs::INT_STATUS), 1);
    r.w(regs::INT_MASK, 0);
    assert_eq!(r.irq_count(1), 1, "unmasking a pending source sends it");
    r.w(
        regs::INT_TRIGGER,
        regs::IntSources::MMU_FAULT.mask32() | (1 << 3) | (1 << 20),
    );
    assert_eq!(r.irq_count(0), 1);
    assert_eq!(r.irq_count(4), 1);
    assert_eq!(
        r.r(regs::INT_STATUS),
        1 | regs::IntSources::MMU_FAULT.mask32() | (1 << 3)
    );
    r.w(regs::INT_STATUS, u32::MAX);
    assert_eq!(r.r(regs::INT_STATUS), 0);
    assert_eq!(r.dev.counter(Counter::InterruptsSent), 3);
    assert_eq!(r.dev.counter(Counter::InterruptsSuppressed), 1);
}

#[test]
fn counters_latch_and_clear() {
    let r = rig_with_queues();
    r.submit(0, &[encode::fill(vram_dpa(0), 1 << 20, 1)])
        .unwrap();
    r.dev.run_until_idle();
    let lo = regs::COUNTER_BASE + 8 * Counter::BytesWritten as u32;
    assert_eq!(r.r(lo), 1 << 20);
    assert_eq!(r.r(lo + 4), 0);
    r.w(regs::COUNTER_CONTROL, regs::CounterControl::CLEAR.mask32());
    assert_eq!(r.r(lo), 0);
}

#[test]
fn global_reset_and_flr() {
    let r = rig_with_queues();
    r.w(regs::SCRATCH, 5);
    r.submit(0, &[encode::nop(false)]).unwrap();
    r.dev.vram.write(0x100, b"keep").unwrap();
    r.w(regs::DEVICE_CONTROL, regs::DeviceControl::RESET.mask32());
    assert_eq!(
        r.r(regs::DEVICE_STATUS) & regs::DeviceStatus::READY.mask32(),
        1
    );
    assert_eq!(r.r(regs::SCRATCH), 0);
    assert_eq!(r.r(regs::INT_MASK), u32::MAX);
    assert_eq!(r.qr(0, queue::RING_BASE_HI), 0);
    assert_eq!(r.qr(0, queue::TAIL), 0);
    assert_eq!(status(&r, 0), regs::QStatus::IDLE.mask32());
    r.dev.run_until_idle();
    assert_eq!(
        r.dev.counter(Counter::CommandsCompleted),
        0,
        "queued work is dropped"
    );
    assert_eq!(r.dev.counter(Counter::Resets), 1);
    let mut keep = [0; 4];
    r.dev.vram.read(0x100, &mut keep).unwrap();
    assert_eq!(&keep, b"keep");

    r.dev.function_reset();
    let cfg = vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;
    let mut b = [0; 4];
    r.dev.region_read(cfg, 0x18, &mut b).unwrap();
    assert_eq!(u32::from_le_bytes(b), 0xc, "FLR clears BARs");
    assert_eq!(
        r.dev.counter(Counter::Resets),
        1,
        "FLR clears counters, then counts itself"
    );
}

#[test]
fn read_only_system_memory_refuses_writes() {
    let r = rig_with_queues();
    let ro = 0x2_0000_0000u64;
    let file = vela_model::mem::memfd(1 << 20).unwrap();
    r.dev.dma_map(ro, 1 << 20, Some(file), 0, false).unwrap();
    r.submit(
        0,
        &[
            encode::copy(ro, vram_dpa(0x1000), 64),
            encode::fence(ro + 8, 1, false),
        ],
    )
    .unwrap();
    r.dev.run_until_idle();
    assert_eq!(r.qr(0, queue::HEAD), 1, "reading is fine");
    assert_eq!(error_code(&r, 0), QueueError::DmaError as u32);
    assert_eq!(r.qr(0, queue::ERROR_ADDR_LO), (ro + 8) as u32);
}

/// With two engines a second queue's command runs while the first queue's long one is still
/// executing; with one engine it waits for it. TOPOLOGY reports the engine count.
///
/// A round counts only when the long command was seen running before the second queue got
/// its command (a loaded host may finish it first); with one engine no round may overlap, with
/// two every counted round must (the fill runs for tens of milliseconds, and the second engine
/// only has to take one FENCE meanwhile).
#[test]
fn engines_run_different_queues_in_parallel() {
    const FILL: u64 = 448 << 20;
    for engines in [1u32, 2] {
        let r = Rig::new(DeviceOptions {
            vram_size: 512 << 20,
            queues: 2,
            engines,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.r(regs::TOPOLOGY) >> 8 & 0xff, engines);
        r.setup_queue(0, vram_dpa(0), 4, 0);
        r.setup_queue(1, RAM_BASE, 4, 0);
        let _engine = r.dev.start_engine();
        let (mut counted, mut overlapped) = (0, 0);
        for i in 0..8u64 {
            r.submit(0, &[encode::fill(vram_dpa(32 << 20), FILL, i as u32)])
                .unwrap();
            let seen = loop {
                let st = r.dev.lock();
                let q = &st.queues[0];
                if q.busy {
                    break true;
                }
                if q.head == q.tail {
                    break false;
                }
                drop(st);
                std::thread::yield_now();
            };
            if seen {
                r.submit(1, &[encode::fence(FENCE_ADDR, i + 1, false)])
                    .unwrap();
                r.wait_idle(1);
                counted += 1;
                if r.dev.lock().queues[0].busy {
                    overlapped += 1;
                }
                assert_eq!(r.dpa_read_u64(FENCE_ADDR).unwrap(), i + 1);
            }
            r.wait_idle(0);
        }
        assert!(counted > 0, "never saw the long command running");
        if engines == 1 {
            assert_eq!(overlapped, 0, "one engine ran two commands at once");
        } else {
            assert_eq!(overlapped, counted, "the second queue waited for the first");
        }
    }
}
