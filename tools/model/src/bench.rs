// SPDX-License-Identifier: GPL-2.0
//! `vela-model bench`: copy-engine bandwidth and submission latency,
//! measured in-process (no transport, no guest), so the numbers describe
//! the model itself.

use std::time::{Duration, Instant};

use crate::device::DeviceOptions;
use crate::engine::vram_dpa;
use crate::regs::{ctx, pte};
use crate::rig::{encode, Rig, RigError, RAM_BASE};

pub struct Report {
    pub copy_gbps: f64,
    pub copy_4k_gbps: f64,
    pub memcpy_gbps: f64,
    pub memcpy_vram_gbps: f64,
    pub latency_us_median: f64,
    pub latency_us_p99: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "host memcpy (anonymous memory):  {:8.2} GB/s",
            self.memcpy_gbps
        )?;
        writeln!(
            f,
            "host memcpy inside the VRAM fd:  {:8.2} GB/s",
            self.memcpy_vram_gbps
        )?;
        writeln!(
            f,
            "copy engine VRAM->VRAM:          {:8.2} GB/s  ({:.2} x memcpy, {:.2} x memcpy in the VRAM fd)",
            self.copy_gbps,
            self.copy_gbps / self.memcpy_gbps,
            self.copy_gbps / self.memcpy_vram_gbps
        )?;
        writeln!(
            f,
            "copy engine via 4 KiB MMU pages: {:8.2} GB/s  ({:.2} x memcpy)",
            self.copy_4k_gbps,
            self.copy_4k_gbps / self.memcpy_gbps
        )?;
        write!(
            f,
            "doorbell -> fence -> interrupt:  {:8.1} us median, {:.1} us p99",
            self.latency_us_median, self.latency_us_p99
        )
    }
}

const LEN: u64 = 32 << 20;
const ROUNDS: u32 = 8;

fn gbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

fn memcpy_gbps() -> f64 {
    let src = vec![0x5au8; LEN as usize];
    let mut dst = vec![0u8; LEN as usize];
    dst.copy_from_slice(&src);
    let t = Instant::now();
    for i in 0..ROUNDS {
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst[i as usize]);
    }
    gbps(LEN * u64::from(ROUNDS), t.elapsed())
}

/// The same copy done by the host directly on the VRAM mapping: what the
/// engine could reach at best on memfd-backed memory.
fn memcpy_vram_gbps(r: &Rig) -> Result<f64, RigError> {
    let vram = r.dev.vram.backing();
    let err = |e: crate::mem::MemError| RigError(e.to_string());
    let src = crate::mem::slice(vram, 0, LEN as usize).map_err(err)?;
    let dst = crate::mem::slice(vram, LEN, LEN as usize).map_err(err)?;
    src.copy_to_volatile_slice(dst);
    let t = Instant::now();
    for _ in 0..ROUNDS {
        // Opaque to the optimiser, or it folds the identical copies into one.
        std::hint::black_box(&src).copy_to_volatile_slice(*std::hint::black_box(&dst));
    }
    Ok(gbps(LEN * u64::from(ROUNDS), t.elapsed()))
}

fn copy_gbps(r: &Rig, q: usize, src: u64, dst: u64) -> Result<f64, RigError> {
    r.submit(q, &[encode::copy(src, dst, LEN)])?;
    r.dev.run_until_idle();
    let t = Instant::now();
    for _ in 0..ROUNDS {
        r.submit(q, &[encode::copy(src, dst, LEN)])?;
        r.dev.run_until_idle();
    }
    Ok(gbps(LEN * u64::from(ROUNDS), t.elapsed()))
}

/// Context 1: identity map of VRAM [0, 2 * LEN) with 4 KiB pages, tables
/// placed after it.
fn map_4k(r: &Rig) -> Result<(), RigError> {
    let tables = 2 * LEN;
    let root = tables;
    let l1 = root + 4096;
    let l0 = l1 + 4096;
    let put = |table: u64, index: u64, entry: u64| {
        r.dpa_write(vram_dpa(table + index * 8), &entry.to_le_bytes())
    };
    put(root, 0, pte::VALID | pte::VRAM | l1)?;
    let pages = 2 * LEN / pte::PAGE_SIZE;
    for p in 0..pages {
        let table = l0 + (p / 512) * 4096;
        if p % 512 == 0 {
            put(l1, p / 512, pte::VALID | pte::VRAM | table)?;
        }
        put(
            table,
            p % 512,
            pte::VALID | pte::READ | pte::WRITE | pte::VRAM | (p * pte::PAGE_SIZE),
        )?;
    }
    r.cw(1, ctx::PT_BASE_LO, root as u32);
    r.cw(1, ctx::PT_BASE_HI, (vram_dpa(root) >> 32) as u32);
    r.cw(1, ctx::CONTROL, ctx::CONTROL_ENABLE);
    Ok(())
}

fn latency_us(r: &Rig) -> Result<(f64, f64), RigError> {
    let _engine = r.dev.start_engine();
    let fence = RAM_BASE + 0x1000;
    let mut samples = Vec::new();
    for i in 0..2000u64 {
        let t = Instant::now();
        r.submit(2, &[encode::fence(fence, i, true)])?;
        while r.irq_count(crate::regs::queue_vector(2)) == 0 {
            if t.elapsed() > Duration::from_secs(5) {
                return Err(RigError("no completion interrupt within 5 s".into()));
            }
            std::hint::spin_loop();
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Ok((at(0.5), at(0.99)))
}

pub fn run(vram_size: u64) -> Result<Report, RigError> {
    if vram_size < 4 * LEN {
        return Err(RigError(format!(
            "bench needs at least {} MiB of VRAM",
            (4 * LEN) >> 20
        )));
    }
    let r = Rig::new(DeviceOptions {
        vram_size,
        serial: 1,
        queues: 4,
    })?;
    r.setup_queue(0, vram_dpa(vram_size - 4096), 4, 0);
    r.setup_queue(1, vram_dpa(vram_size - 8192), 4, 1);
    r.setup_queue(2, RAM_BASE, 8, 0);
    map_4k(&r)?;
    let memcpy = memcpy_gbps();
    let memcpy_vram = memcpy_vram_gbps(&r)?;
    let copy = copy_gbps(&r, 0, vram_dpa(0), vram_dpa(LEN))?;
    let copy_4k = copy_gbps(&r, 1, 0, LEN)?;
    let (median, p99) = latency_us(&r)?;
    Ok(Report {
        copy_gbps: copy,
        copy_4k_gbps: copy_4k,
        memcpy_gbps: memcpy,
        memcpy_vram_gbps: memcpy_vram,
        latency_us_median: median,
        latency_us_p99: p99,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_runs() {
        let r = super::run(128 << 20).unwrap();
        assert!(r.copy_gbps > 0.0 && r.copy_4k_gbps > 0.0 && r.memcpy_gbps > 0.0);
        assert!(r.latency_us_median > 0.0 && r.latency_us_p99 >= r.latency_us_median);
    }
}
