// SPDX-License-Identifier: GPL-2.0

//! `vela bench`: three ratios measured in one run, each against a baseline measured in the
//! same run on the same machine, so they compare across hosts (TCG or KVM) where absolute
//! numbers do not.
//!
//! (a) CPU write bandwidth into a mapped VRAM buffer (write-combined through BAR2) over
//!     memcpy into anonymous memory of the same size. Goal >= 0.8.
//! (b) No-op job latency, SUBMIT of one NOP then WAIT, over two BO_INFO ioctls. BO_INFO is
//!     the baseline because it is the cheapest ioctl that still goes through the DRM ioctl
//!     path with a handle lookup, and two of them are the same number of user/kernel round
//!     trips as SUBMIT + WAIT: the ratio is what the job path itself (ring write, doorbell,
//!     device, fence interrupt, wakeup) costs over bare ioctl overhead.
//! (c) VRAM buffer create+destroy rate, and the mean cost of one create+destroy with 100k
//!     live VRAM buffers over the same with 1k live. Goal <= 2 (the allocator scales).

use std::{
    hint::black_box,
    io::Write,
    time::{Duration, Instant},
};

use vela_runtime::{raw, Buffer, BufferFlags, Command, Device, Queue, Vm};

use crate::{
    args,
    cmd::{device, Fail, R, TIMEOUT},
};

fn gib_s(bytes: f64, t: Duration) -> f64 {
    bytes / (1u64 << 30) as f64 / t.as_secs_f64().max(1e-9)
}

/// Repeats `f` (copying `bytes` each time) until `budget` passes, at least 3 times, after one
/// untimed warm-up that also faults every page in. Returns bytes per second as GiB/s.
fn bandwidth(bytes: usize, budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut n = 0u64;
    while n < 3 || t.elapsed() < budget {
        f();
        n += 1;
    }
    gib_s(bytes as f64 * n as f64, t.elapsed())
}

struct Anon {
    ptr: *mut u8,
    len: usize,
}

impl Anon {
    fn new(len: usize) -> Result<Self, Fail> {
        // SAFETY: a fresh private anonymous mapping; nothing is replaced.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Fail::Error(format!(
                "mmap of {len} anonymous bytes: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(Self { ptr: p.cast(), len })
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: unmaps what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

fn bench_bandwidth(dev: &Device, mib: u64, budget: Duration) -> Result<f64, Fail> {
    let size = (mib << 20).min(dev.vram_size() / 4).max(1 << 20) as usize;
    let src: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
    let bo = Buffer::create(
        dev,
        size as u64,
        BufferFlags::VRAM | BufferFlags::CPU_VISIBLE,
    )?;
    let map = bo.map()?;
    let vram = bandwidth(size, budget, || {
        // SAFETY: the mapping is `size` bytes (the buffer is at least that large) and cannot
        // overlap `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), map.as_ptr(), size) };
        black_box(map.as_ptr());
    });
    let anon = Anon::new(size)?;
    let sys = bandwidth(size, budget, || {
        // SAFETY: as above, into our anonymous mapping of `size` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), anon.ptr, size) };
        black_box(anon.ptr);
    });
    let ratio = vram / sys;
    println!(
        "(a) CPU write bandwidth: mapped VRAM {vram:.2} GiB/s, anonymous memory {sys:.2} GiB/s \
         ({} MiB copies); ratio {ratio:.3}, goal >= 0.8: {}",
        size >> 20,
        verdict(ratio >= 0.8)
    );
    Ok(ratio)
}

fn bench_latency(dev: &Device, budget: Duration, raw_ns: Option<u64>) -> Result<f64, Fail> {
    let vm = Vm::create(dev)?;
    let q = Queue::create(&vm)?;
    let probe = Buffer::create(dev, 4096, BufferFlags::VRAM)?;
    let nop = [Command::nop()];
    q.run(&nop, TIMEOUT)?;
    let mut jobs = Vec::new();
    let t = Instant::now();
    while jobs.len() < 10 || (t.elapsed() < budget && jobs.len() < 100_000) {
        let s = Instant::now();
        q.run(&nop, TIMEOUT)?;
        jobs.push(s.elapsed());
    }
    let mut base = Vec::new();
    let t = Instant::now();
    while base.len() < 10 || (t.elapsed() < budget && base.len() < 100_000) {
        let s = Instant::now();
        for _ in 0..2 {
            let mut a = raw::drm_vela_bo_info {
                handle: probe.handle(),
                ..Default::default()
            };
            raw::bo_info(dev, &mut a).map_err(|e| Fail::Error(format!("BO_INFO: {e}")))?;
        }
        base.push(s.elapsed());
    }
    let (n_jobs, n_base) = (jobs.len(), base.len());
    let (j, b) = (median(&mut jobs), median(&mut base));
    let ratio = j.as_secs_f64() / b.as_secs_f64().max(1e-12);
    println!(
        "(b) no-op SUBMIT->WAIT latency: median {:.1} us over {n_jobs} jobs; baseline 2x BO_INFO \
         median {:.2} us over {n_base}; ratio {ratio:.1}",
        j.as_secs_f64() * 1e6,
        b.as_secs_f64() * 1e6
    );
    // The baseline the issue names: the device's bare doorbell -> fence round trip, measured by
    // vela-raw-roundtrip on the same device before the driver was loaded.
    if let Some(raw) = raw_ns.filter(|&n| n > 0) {
        let raw = Duration::from_nanos(raw);
        let r = j.as_secs_f64() / raw.as_secs_f64();
        println!(
            "    vs the bare doorbell -> fence round trip {:.1} us: ratio {r:.2}, goal <= 2: {}",
            raw.as_secs_f64() * 1e6,
            verdict(r <= 2.0)
        );
    }
    Ok(ratio)
}

/// Adds live 4 KiB VRAM buffers up to `to`; false when time or VRAM ran out first.
fn grow<'d>(
    dev: &'d Device,
    live: &mut Vec<Buffer<'d>>,
    to: u64,
    start: Instant,
    max: Duration,
) -> Result<bool, Fail> {
    while (live.len() as u64) < to {
        if start.elapsed() > max {
            return Ok(false);
        }
        match Buffer::create(dev, 4096, BufferFlags::VRAM) {
            Ok(b) => live.push(b),
            Err(e) if e.errno() == Some(libc::ENOMEM) => {
                println!("    VRAM full (ENOMEM) at {} live buffers", live.len());
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        if live.len().is_multiple_of(10_000) {
            eprint!(
                "\r    growing the live set: {} / {to} ({:.0} s)",
                live.len(),
                start.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    }
    Ok(true)
}

/// Mean time of `n` create+destroy pairs of 4 KiB VRAM buffers.
fn create_destroy(dev: &Device, n: usize) -> Result<Duration, Fail> {
    let t = Instant::now();
    for _ in 0..n {
        drop(Buffer::create(dev, 4096, BufferFlags::VRAM)?);
    }
    Ok(t.elapsed() / n.max(1) as u32)
}

fn bench_alloc(
    dev: &Device,
    live_target: u64,
    budget: Duration,
    max: Duration,
) -> Result<(), Fail> {
    let t = Instant::now();
    let mut n = 0u64;
    while n < 100 || t.elapsed() < budget {
        drop(Buffer::create(dev, 4096, BufferFlags::VRAM)?);
        n += 1;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!("(c) VRAM buffer create+destroy: {rate:.0}/s ({n} pairs of 4 KiB)");

    // Leave a quarter of VRAM free so the measured creates never hit a full domain.
    let capacity = dev.vram_size() / 4096 * 3 / 4;
    let target = live_target.min(capacity);
    if target < live_target {
        println!(
            "    VRAM holds {capacity} spare 4 KiB buffers; measuring with {target} live instead of {live_target}"
        );
    }
    let small = 1000u64.min(target / 2).max(1);
    const PAIRS: usize = 2000;
    let mut live = Vec::with_capacity(target as usize);
    let start = Instant::now();
    grow(dev, &mut live, small, start, max)?;
    let at_small = live.len();
    let c_small = create_destroy(dev, PAIRS)?;
    let complete = grow(dev, &mut live, target, start, max)?;
    eprintln!();
    let at_big = live.len();
    let c_big = create_destroy(dev, PAIRS)?;
    let ratio = c_big.as_secs_f64() / c_small.as_secs_f64().max(1e-12);
    println!(
        "    create+destroy with {at_small} live: {:.1} us; with {at_big} live: {:.1} us; \
         ratio {ratio:.2}, goal <= 2: {}{}",
        c_small.as_secs_f64() * 1e6,
        c_big.as_secs_f64() * 1e6,
        verdict(ratio <= 2.0),
        if complete {
            String::new()
        } else {
            format!(" (live set stopped at {at_big} of {target}: time limit or VRAM)")
        }
    );
    let t = Instant::now();
    drop(live);
    println!(
        "    closing {at_big} buffers took {:.2} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn bench(dev: Option<&std::path::Path>, a: &args::Bench) -> R {
    let secs = a.seconds;
    let budget = Duration::from_secs(secs.max(1)) / 2;
    let max = Duration::from_secs(a.max_seconds);
    let dev = device(dev)?;
    println!(
        "vela bench on {} ({} MiB VRAM); each measurement about {secs} s",
        dev.path().display(),
        dev.vram_size() >> 20
    );
    bench_bandwidth(&dev, a.mib, budget)?;
    bench_latency(&dev, budget, a.raw_ns)?;
    bench_alloc(&dev, a.live, budget * 2, max)?;
    Ok(())
}
