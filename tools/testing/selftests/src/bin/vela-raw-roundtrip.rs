// SPDX-License-Identifier: GPL-2.0

//! The hardware's own job round trip, with no driver in the way: userspace programs queue 0
//! through BAR0 with a ring in VRAM, writes one FENCE, rings the doorbell and polls the fence
//! through BAR2. The median is the baseline `vela bench` compares a driver SUBMIT->WAIT with.
//! Run while vela.ko is not loaded; prints the median in nanoseconds on its last line.

use std::time::{Duration, Instant};

use vela_selftests::{
    bar::{enable, regs::*, Mapping},
    vela_pci_devices,
};

const LOG2_SLOTS: u32 = 8;
const SLOTS: u32 = 1 << LOG2_SLOTS;
const FENCE_AT: usize = 0x10000;

fn main() {
    let Some(pci) = vela_pci_devices().ok().and_then(|d| d.into_iter().next()) else {
        eprintln!("vela-raw-roundtrip: no Vela device");
        std::process::exit(1)
    };
    if pci.join("driver").exists() {
        eprintln!("vela-raw-roundtrip: a driver is bound; run it before vela.ko loads");
        std::process::exit(1)
    }
    let maps = enable(&pci).and_then(|()| {
        Ok((
            Mapping::new(&pci.join("resource0"), BAR0_SIZE)?,
            Mapping::new(&pci.join("resource2"), 1 << 20)?,
        ))
    });
    let (bar0, vram) = match maps {
        Ok(m) => m,
        Err(e) => {
            eprintln!("vela-raw-roundtrip: {e}");
            std::process::exit(1)
        }
    };
    bar0.w32(Q_CONTROL, CONTROL_RESET);
    bar0.w32(Q_RING_BASE_LO, 0);
    bar0.w32(Q_RING_BASE_HI, (VRAM >> 32) as u32);
    bar0.w32(Q_RING_SIZE, LOG2_SLOTS);
    bar0.w32(Q_CONTEXT, 0);
    bar0.w32(Q_CONTROL, CONTROL_ENABLE);
    vram.w64(FENCE_AT, 0);

    let mut samples = Vec::new();
    let mut tail = 0u32;
    let start = Instant::now();
    let mut seq = 0u64;
    while samples.len() < 20
        || (start.elapsed() < Duration::from_secs(2) && samples.len() < 100_000)
    {
        seq += 1;
        // FENCE with the INTERRUPT flag, as a driver's job ends; the interrupt itself goes
        // nowhere without a driver (masked), so this is doorbell -> fence visible.
        let slot = tail as usize * SLOT_SIZE;
        vram.w64(slot, u64::from(OP_FENCE | FLAG_INTERRUPT));
        vram.w64(slot + 8, VRAM | FENCE_AT as u64);
        vram.w64(slot + 16, seq);
        for w in 3..8 {
            vram.w64(slot + 8 * w, 0);
        }
        tail = (tail + 1) % SLOTS;
        let t = Instant::now();
        let _ = bar0.r32(0);
        bar0.w32(Q_DOORBELL, tail);
        while vram.r64(FENCE_AT) != seq {
            if t.elapsed() > Duration::from_secs(5) {
                eprintln!("vela-raw-roundtrip: the device did not write fence {seq}");
                std::process::exit(1)
            }
            std::hint::spin_loop();
        }
        samples.push(t.elapsed());
    }
    bar0.w32(Q_CONTROL, CONTROL_RESET);
    drop((bar0, vram));
    let _ = std::fs::write(pci.join("enable"), "0");
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "bare doorbell -> fence round trip: median {:.1} us over {} jobs",
        median.as_secs_f64() * 1e6,
        samples.len()
    );
    println!("{}", median.as_nanos());
}
