// SPDX-License-Identifier: GPL-2.0

//! The hardware without a driver: userspace maps BAR0 and BAR2 through sysfs, programs
//! queue 0 with a ring in VRAM, and checks that a COPY moves the data, a FENCE with the
//! INTERRUPT flag lands and raises the queue's interrupt, and a bad command stops the queue
//! with the documented error until it is reset. Runs before vela.ko is loaded.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use vela_selftests::{
    bar::{enable, regs::*, Mapping},
    vela_pci_devices, Tap,
};

// VRAM layout of the test.
const RING: usize = 0;
const SRC: usize = 0x1_0000;
const DST: usize = 0x2_0000;
const FENCE: usize = 0x3_0000;
const LEN: usize = 8192;

fn counter(bar0: &Mapping, n: usize) -> u64 {
    // The LO read latches the 64-bit value for the HI read.
    let lo = bar0.r32(COUNTER_LO + COUNTER_STRIDE * n);
    let hi = bar0.r32(COUNTER_LO + COUNTER_STRIDE * n + 4);
    (u64::from(hi) << 32) | u64::from(lo)
}

fn slot(vram: &Mapping, index: usize, words: &[u64; 8]) {
    for (i, w) in words.iter().enumerate() {
        vram.w64(RING + index * SLOT_SIZE + i * 8, *w);
    }
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(1));
    }
    cond()
}

fn main() {
    let mut t = Tap::new();
    let Some(pci) = vela_pci_devices().ok().and_then(|d| d.into_iter().next()) else {
        t.check(false, "a Vela device exists", "none");
        t.finish();
    };
    t.check(
        !pci.join("driver").exists(),
        "no driver bound (the test owns the device)",
        "bound",
    );
    t.ok(enable(&pci), "enable memory decoding and bus mastering");
    let (bar0, vram) = match (
        Mapping::new(&pci.join("resource0"), BAR0_SIZE),
        Mapping::new(&pci.join("resource2"), 1 << 20),
    ) {
        (Ok(b), Ok(v)) => (b, v),
        (b, v) => {
            t.check(
                false,
                "map BAR0 and BAR2",
                format_args!("{:?} {:?}", b.err(), v.err()),
            );
            t.finish();
        }
    };
    t.eq(bar0.r32(ID), ID_VALUE, "BAR0 ID reads VELA");

    bar0.w32(COUNTER_CONTROL, 1);
    bar0.w32(INT_STATUS, u32::MAX);
    // Masked: no MSI-X vector is set up without a driver, so the interrupt shows in INT_STATUS
    // and in the INTERRUPTS_SUPPRESSED counter.
    bar0.w32(INT_MASK, u32::MAX);

    // Source pattern in VRAM, written by the CPU straight through BAR2.
    for i in (0..LEN).step_by(8) {
        vram.w64(
            SRC + i,
            0x0123_4567_89ab_cdef ^ (i as u64).wrapping_mul(0x9e37_79b9),
        );
        vram.w64(DST + i, 0);
    }
    vram.w64(FENCE, 0);

    // 16-slot ring at VRAM offset 0, context 0 (no translation: addresses are DPAs).
    bar0.w32(Q_CONTROL, CONTROL_RESET);
    bar0.w32(Q_RING_BASE_LO, RING as u32);
    bar0.w32(Q_RING_BASE_HI, (VRAM >> 32) as u32);
    bar0.w32(Q_RING_SIZE, 4);
    bar0.w32(Q_CONTEXT, 0);
    bar0.w32(Q_CONTROL, CONTROL_ENABLE);
    slot(
        &vram,
        0,
        &[
            u64::from(OP_COPY),
            VRAM | SRC as u64,
            VRAM | DST as u64,
            LEN as u64,
            0,
            0,
            0,
            0,
        ],
    );
    slot(
        &vram,
        1,
        &[
            u64::from(OP_FENCE | FLAG_INTERRUPT),
            VRAM | FENCE as u64,
            0x5eed_f00d,
            0,
            0,
            0,
            0,
            0,
        ],
    );
    // Reading BAR0 back orders the BAR2 writes before the doorbell (queues.rst, Submitting).
    let _ = bar0.r32(0);
    bar0.w32(Q_DOORBELL, 2);

    let fenced = wait_for(|| vram.r64(FENCE) == 0x5eed_f00d);
    t.check(
        fenced,
        "FENCE value lands in VRAM",
        format_args!("fence {:#x}", vram.r64(FENCE)),
    );
    let same = (0..LEN)
        .step_by(8)
        .all(|i| vram.r64(DST + i) == vram.r64(SRC + i));
    t.check(
        same,
        "COPY moved 8 KiB VRAM -> VRAM intact",
        "destination differs",
    );
    t.eq(bar0.r32(Q_HEAD), 2, "HEAD advanced past both commands");
    t.eq(bar0.r32(Q_COMPLETED), 2, "COMPLETED counts both commands");
    t.check(
        bar0.r32(INT_STATUS) & 1 != 0,
        "the FENCE raised INT_STATUS.QUEUE[0]",
        format_args!("{:#x}", bar0.r32(INT_STATUS)),
    );
    t.eq(
        counter(&bar0, CNT_COMMANDS_COMPLETED),
        2,
        "COMMANDS_COMPLETED counter",
    );
    t.eq(
        counter(&bar0, CNT_FENCES_WRITTEN),
        1,
        "FENCES_WRITTEN counter",
    );
    t.eq(counter(&bar0, CNT_DOORBELLS), 1, "DOORBELLS counter");
    t.check(
        counter(&bar0, CNT_INTERRUPTS_SUPPRESSED) >= 1,
        "the masked interrupt was counted",
        counter(&bar0, CNT_INTERRUPTS_SUPPRESSED),
    );
    bar0.w32(INT_STATUS, 1);
    t.eq(
        bar0.r32(INT_STATUS) & 1,
        0,
        "INT_STATUS is write-1-to-clear",
    );

    // A bad opcode stops the queue with BAD_OPCODE and the error interrupt.
    slot(&vram, 2, &[0x7f, 0, 0, 0, 0, 0, 0, 0]);
    let _ = bar0.r32(0);
    bar0.w32(Q_DOORBELL, 3);
    let stopped = wait_for(|| bar0.r32(Q_STATUS) & STATUS_ERROR != 0);
    let status = bar0.r32(Q_STATUS);
    t.check(
        stopped && error_code(status) == QueueError::BadOpcode as u8,
        "bad opcode: queue error BAD_OPCODE",
        format_args!("status {status:#x}"),
    );
    t.eq(bar0.r32(Q_HEAD), 2, "HEAD stays on the bad slot");
    t.check(
        bar0.r32(INT_STATUS) & INT_QUEUE_ERROR != 0,
        "QUEUE_ERROR interrupt raised",
        format_args!("{:#x}", bar0.r32(INT_STATUS)),
    );
    t.eq(
        bar0.r32(QUEUE_ERROR_SUMMARY) & 1,
        1,
        "QUEUE_ERROR_SUMMARY names queue 0",
    );
    t.eq(counter(&bar0, CNT_QUEUE_ERRORS), 1, "QUEUE_ERRORS counter");

    // Reset brings it back: a fresh submission works.
    bar0.w32(Q_CONTROL, CONTROL_RESET);
    t.eq(
        bar0.r32(Q_STATUS) & STATUS_ERROR,
        0,
        "RESET clears the error",
    );
    vram.w64(FENCE, 0);
    slot(
        &vram,
        0,
        &[u64::from(OP_FENCE), VRAM | FENCE as u64, 7, 0, 0, 0, 0, 0],
    );
    bar0.w32(Q_CONTROL, CONTROL_ENABLE);
    let _ = bar0.r32(0);
    bar0.w32(Q_DOORBELL, 1);
    t.check(
        wait_for(|| vram.r64(FENCE) == 7),
        "the queue runs again after RESET",
        format_args!("fence {:#x}", vram.r64(FENCE)),
    );

    bar0.w32(Q_CONTROL, CONTROL_RESET);
    bar0.w32(INT_STATUS, u32::MAX);
    drop((bar0, vram));
    let _ = std::fs::write(pci.join("enable"), "0");
    t.finish();
}
