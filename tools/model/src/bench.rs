// SPDX-License-Identifier: GPL-2.0
//! `vela-model bench`: copy-engine bandwidth and submission latency, measured in-process (no
//! transport, no guest), so the numbers describe the model itself.
//!
//! Every figure is a ratio to a baseline measured in the same run, on buffers well beyond the
//! last-level cache (256 MiB each), each sample a run of copies at least [`SAMPLE`] long, and
//! [`SAMPLES`] samples reported as min / median / max:
//! - host memcpy on anonymous memory and on a memfd mapping, the memory kind VRAM is (the
//!   engine's baseline: it can do no better than the host copying that memory itself);
//! - the engine through untranslated DPAs, through 2 MiB pages and through 4 KiB pages;
//! - two queues copying at once against one, beside two host threads against one (what the
//!   host's cores and memory allow at all).

use std::time::{Duration, Instant};
use vela_hw::regs;
use vela_hw::Pte;

use crate::device::DeviceOptions;
use crate::engine::vram_dpa;
use crate::mem::{self, MemError};
use crate::rig::{encode, Rig, RigError, RAM_BASE};
use vela_hw::regs::ctx;

/// One buffer: eight times this host's 32 MiB last-level cache.
const LEN: u64 = 256 << 20;
const SAMPLE: Duration = Duration::from_millis(250);
const SAMPLES: usize = 7;

/// How long to measure: the bench's figures, or a quick pass for its unit test.
#[derive(Clone, Copy)]
pub struct Timing {
    pub sample: Duration,
    pub samples: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            sample: SAMPLE,
            samples: SAMPLES,
        }
    }
}
/// Where the page tables go: after the two buffers.
const TABLES: u64 = 2 * LEN;

/// GB/s over the samples.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl std::fmt::Display for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:6.2} GB/s (min {:5.2}, max {:5.2})",
            self.median, self.min, self.max
        )
    }
}

pub struct Report {
    pub memcpy_anon: Stat,
    pub memcpy_memfd: Stat,
    pub engine_dpa: Stat,
    pub engine_2m: Stat,
    pub engine_4k: Stat,
    pub memcpy_scattered: Stat,
    pub engine_4k_scattered: Stat,
    pub memcpy_one_thread: Stat,
    pub memcpy_two_threads: Stat,
    pub engine_one_queue: Stat,
    pub engine_two_queues: Stat,
    pub engines: u32,
    pub timing: Timing,
    pub latency_us_median: f64,
    pub latency_us_p99: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = |a: Stat, b: Stat| a.median / b.median;
        writeln!(
            f,
            "256 MiB copies, {} samples of >= {} ms each; median (min, max)",
            self.timing.samples,
            self.timing.sample.as_millis()
        )?;
        writeln!(f, "baselines (the host CPU copying):")?;
        writeln!(
            f,
            "  memcpy, anonymous memory          {}",
            self.memcpy_anon
        )?;
        writeln!(
            f,
            "  memcpy, memfd mapping (VRAM kind) {}  {:.2} x anonymous",
            self.memcpy_memfd,
            r(self.memcpy_memfd, self.memcpy_anon)
        )?;
        writeln!(
            f,
            "copy engine, VRAM -> VRAM (ratio to memcpy on the memfd mapping):"
        )?;
        writeln!(
            f,
            "  untranslated DPAs                 {}  {:.2} x",
            self.engine_dpa,
            r(self.engine_dpa, self.memcpy_memfd)
        )?;
        writeln!(
            f,
            "  through 2 MiB pages               {}  {:.2} x",
            self.engine_2m,
            r(self.engine_2m, self.memcpy_memfd)
        )?;
        writeln!(
            f,
            "  through 4 KiB pages               {}  {:.2} x",
            self.engine_4k,
            r(self.engine_4k, self.memcpy_memfd)
        )?;
        writeln!(
            f,
            "  through scattered 4 KiB pages     {}  {:.2} x memcpy page by page, same order",
            self.engine_4k_scattered,
            r(self.engine_4k_scattered, self.memcpy_scattered)
        )?;
        writeln!(
            f,
            "  (host memcpy page by page         {}  {:.2} x memcpy in one call)",
            self.memcpy_scattered,
            r(self.memcpy_scattered, self.memcpy_memfd)
        )?;
        writeln!(f, "scaling, 128 MiB copies each (aggregate bandwidth):")?;
        writeln!(
            f,
            "  host memcpy, 1 thread             {}",
            self.memcpy_one_thread
        )?;
        writeln!(
            f,
            "  host memcpy, 2 threads at once    {}  {:.2} x 1 thread (what the host allows)",
            self.memcpy_two_threads,
            r(self.memcpy_two_threads, self.memcpy_one_thread)
        )?;
        writeln!(
            f,
            "  engine, 1 queue                   {}",
            self.engine_one_queue
        )?;
        writeln!(
            f,
            "  engine, 2 queues at once          {}  {:.2} x 1 queue ({} engines)",
            self.engine_two_queues,
            r(self.engine_two_queues, self.engine_one_queue),
            self.engines
        )?;
        write!(
            f,
            "doorbell -> fence -> interrupt:     {:8.1} us median, {:.1} us p99",
            self.latency_us_median, self.latency_us_p99
        )
    }
}

/// Runs `round` (which moves `bytes`) until each sample is at least `t.sample` long.
fn measure(
    t: Timing,
    bytes: u64,
    mut round: impl FnMut() -> Result<(), RigError>,
) -> Result<Stat, RigError> {
    // Once untimed: page faults and first touches are not what is measured.
    round()?;
    let samples = t.samples.max(1);
    let mut gbps = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < t.sample || n == 0 {
            round()?;
            n += 1;
        }
        gbps.push((bytes * n) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    gbps.sort_by(f64::total_cmp);
    Ok(Stat {
        min: gbps[0],
        median: gbps[samples / 2],
        max: gbps[samples - 1],
    })
}

fn err(e: MemError) -> RigError {
    RigError(e.to_string())
}

/// A mapping of `len` bytes: anonymous, or a memfd shared mapping like VRAM.
fn region(len: u64, memfd: bool) -> Result<mem::Backing, RigError> {
    use vm_memory::mmap::MmapRegion;
    use vm_memory::FileOffset;
    let r = if memfd {
        MmapRegion::from_file(
            FileOffset::new(mem::memfd(len).map_err(err)?, 0),
            len as usize,
        )
    } else {
        MmapRegion::new(len as usize)
    };
    let r = r
        .map(std::sync::Arc::new)
        .map_err(|e| RigError(e.to_string()))?;
    fill(&r, len)?;
    Ok(r)
}

/// Writes every page first: an untouched anonymous page reads as the one shared zero page,
/// which stays in the cache, and a copy out of it measures the cache, not memory.
fn fill(m: &mem::Backing, len: u64) -> Result<(), RigError> {
    let block = vec![0x5au8; 1 << 20];
    for off in (0..len).step_by(block.len()) {
        mem::slice(m, off, block.len())
            .map_err(err)?
            .copy_from(&block[..]);
    }
    Ok(())
}

/// Host memcpy of `len` bytes from the first half of `m` to the second.
fn host_copy(m: &mem::Backing, at: u64, len: u64) -> Result<(), RigError> {
    let src = mem::slice(m, at, len as usize).map_err(err)?;
    let dst = mem::slice(m, at + 2 * len, len as usize).map_err(err)?;
    // The same routine the engine copies with.
    std::hint::black_box(src).copy_to_volatile_slice(dst);
    Ok(())
}

fn memcpy_stat(t: Timing, memfd: bool) -> Result<Stat, RigError> {
    let m = region(4 * LEN, memfd)?;
    measure(t, LEN, || host_copy(&m, 0, LEN))
}

/// Host memcpy of LEN bytes page by page, in [`scattered`] order: what a copy through
/// scattered 4 KiB pages can be at best.
fn memcpy_scattered(t: Timing) -> Result<Stat, RigError> {
    let m = region(2 * LEN, true)?;
    let page = vela_hw::mmu::PAGE_SIZE;
    measure(t, LEN, || {
        for p in 0..LEN / page {
            let src = mem::slice(&m, scattered(p) * page, page as usize).map_err(err)?;
            let dst =
                mem::slice(&m, scattered(p + LEN / page) * page, page as usize).map_err(err)?;
            std::hint::black_box(src).copy_to_volatile_slice(dst);
        }
        Ok(())
    })
}

/// `threads` host threads, each copying `len` bytes of its own at once.
fn memcpy_threads(t: Timing, threads: u64, len: u64) -> Result<Stat, RigError> {
    let m = region(4 * LEN, true)?;
    measure(t, threads * len, || {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|i| {
                    let m = &m;
                    s.spawn(move || host_copy(m, i * len, len))
                })
                .collect();
            hs.into_iter()
                .try_for_each(|h| h.join().map_err(|_| RigError("copy thread".into()))?)
        })
    })
}

/// Pages of [0, 2 * LEN) in 4 KiB units.
const PAGES: u64 = 2 * LEN / vela_hw::mmu::PAGE_SIZE;

/// Where context 3 puts 4 KiB page `p`: a bijection of [0, PAGES) (an odd multiplier modulo a
/// power of two) that leaves no two neighbours adjacent, so every page is a run of its own.
fn scattered(p: u64) -> u64 {
    (p.wrapping_mul(4099)) % PAGES
}

/// Maps of VRAM [0, 2 * LEN): context 1 identity with 2 MiB pages, context 2 identity with
/// 4 KiB pages, context 3 with 4 KiB pages in [`scattered`] order.
fn map(r: &Rig) -> Result<(), RigError> {
    let put = |table: u64, index: u64, entry: u64| {
        r.dpa_write(vram_dpa(table + index * 8), &entry.to_le_bytes())
    };
    let huge = 2 << 20;
    let (root1, l1_1) = (TABLES, TABLES + 4096);
    put(root1, 0, Pte::VALID.mask() | Pte::VRAM.mask() | l1_1)?;
    for p in 0..2 * LEN / huge {
        let rw = Pte::VALID.mask()
            | Pte::READ.mask()
            | Pte::WRITE.mask()
            | Pte::VRAM.mask()
            | Pte::HUGE.mask();
        put(l1_1, p, rw | (p * huge))?;
    }
    let small = |root: u64, l1: u64, l0: u64, page: &dyn Fn(u64) -> u64| {
        put(root, 0, Pte::VALID.mask() | Pte::VRAM.mask() | l1)?;
        for p in 0..PAGES {
            let table = l0 + (p / 512) * 4096;
            if p % 512 == 0 {
                put(l1, p / 512, Pte::VALID.mask() | Pte::VRAM.mask() | table)?;
            }
            let rw = Pte::VALID.mask() | Pte::READ.mask() | Pte::WRITE.mask() | Pte::VRAM.mask();
            put(table, p % 512, rw | (page(p) * vela_hw::mmu::PAGE_SIZE))?;
        }
        Ok::<_, RigError>(())
    };
    let tables_4k = PAGES / 512 * 4096;
    let (root2, l1_2, l0_2) = (TABLES + 8192, TABLES + 12288, TABLES + 16384);
    small(root2, l1_2, l0_2, &|p| p)?;
    let (root3, l1_3) = (l0_2 + tables_4k, l0_2 + tables_4k + 4096);
    small(root3, l1_3, l1_3 + 4096, &scattered)?;
    for (c, root) in [(1, root1), (2, root2), (3, root3)] {
        r.cw(c, ctx::PT_BASE_LO, root as u32);
        r.cw(c, ctx::PT_BASE_HI, (vram_dpa(root) >> 32) as u32);
        r.cw(c, ctx::CONTROL, regs::CtxControl::ENABLE.mask32());
    }
    Ok(())
}

/// One COPY of `len` bytes on each queue of `qs` at once; returns when all are done.
fn engine_round(r: &Rig, qs: &[(usize, u64, u64)], len: u64) -> Result<(), RigError> {
    for &(q, src, dst) in qs {
        r.submit(q, &[encode::copy(src, dst, len)])?;
    }
    for &(q, ..) in qs {
        r.wait_idle(q);
    }
    Ok(())
}

fn latency_us(r: &Rig) -> Result<(f64, f64), RigError> {
    let fence = RAM_BASE + 0x1000;
    let mut samples = Vec::new();
    for i in 0..2000u64 {
        let t = Instant::now();
        r.submit(4, &[encode::fence(fence, i, true)])?;
        while r.irq_count(vela_hw::regs::queue_vector(4)) == 0 {
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

pub fn run(vram_size: u64, engines: u32, t: Timing) -> Result<Report, RigError> {
    if vram_size < 4 * LEN {
        return Err(RigError(format!(
            "bench needs at least {} MiB of VRAM",
            (4 * LEN) >> 20
        )));
    }
    let r = Rig::new(DeviceOptions {
        vram_size,
        queues: 6,
        engines,
        ..Default::default()
    })?;
    // Rings at the top of VRAM: queue 0 untranslated, 1 and 3 through 2 MiB pages, 2 through
    // 4 KiB pages, 4 (latency) in system memory.
    r.setup_queue(0, vram_dpa(vram_size - 4096), 4, 0);
    r.setup_queue(1, vram_dpa(vram_size - 8192), 4, 1);
    r.setup_queue(2, vram_dpa(vram_size - 12288), 4, 2);
    r.setup_queue(3, vram_dpa(vram_size - 16384), 4, 1);
    r.setup_queue(4, RAM_BASE, 8, 0);
    r.setup_queue(5, vram_dpa(vram_size - 20480), 4, 3);
    map(&r)?;
    fill(r.dev.vram.backing(), 2 * LEN)?;

    let memcpy_anon = memcpy_stat(t, false)?;
    let memcpy_memfd = memcpy_stat(t, true)?;
    let memcpy_scattered = memcpy_scattered(t)?;
    let half = LEN / 2;
    let memcpy_one_thread = memcpy_threads(t, 1, half)?;
    let memcpy_two_threads = memcpy_threads(t, 2, half)?;

    let _engine = r.dev.start_engine();
    let engine_dpa = measure(t, LEN, || {
        engine_round(&r, &[(0, vram_dpa(0), vram_dpa(LEN))], LEN)
    })?;
    let engine_2m = measure(t, LEN, || engine_round(&r, &[(1, 0, LEN)], LEN))?;
    let engine_4k = measure(t, LEN, || engine_round(&r, &[(2, 0, LEN)], LEN))?;
    let engine_4k_scattered = measure(t, LEN, || engine_round(&r, &[(5, 0, LEN)], LEN))?;
    let engine_one_queue = measure(t, half, || engine_round(&r, &[(1, 0, LEN)], half))?;
    let engine_two_queues = measure(t, 2 * half, || {
        engine_round(&r, &[(1, 0, LEN), (3, half, LEN + half)], half)
    })?;
    let (median, p99) = latency_us(&r)?;
    Ok(Report {
        memcpy_anon,
        memcpy_memfd,
        engine_dpa,
        engine_2m,
        engine_4k,
        memcpy_scattered,
        engine_4k_scattered,
        memcpy_one_thread,
        memcpy_two_threads,
        engine_one_queue,
        engine_two_queues,
        engines,
        timing: t,
        latency_us_median: median,
        latency_us_p99: p99,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_runs() {
        let quick = super::Timing {
            sample: std::time::Duration::ZERO,
            samples: 1,
        };
        let r = super::run(1 << 30, 2, quick).unwrap();
        assert!(r.engine_2m.median > 0.0 && r.engine_4k.median > 0.0);
        assert!(r.memcpy_memfd.min <= r.memcpy_memfd.max);
        assert!(r.latency_us_median > 0.0 && r.latency_us_p99 >= r.latency_us_median);
    }
}
