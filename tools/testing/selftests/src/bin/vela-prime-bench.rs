// SPDX-License-Identifier: GPL-2.0

//! `vela-prime-bench`: the cost of dma-buf sharing between two Vela devices, as ratios to
//! baselines measured in the same run (see `vela bench` for why ratios).
//!
//! A and B are the two devices below one PCIe switch (found by PCI topology, as in
//! vela-prime-test).
//!
//! (a) One sharing cycle of a VRAM buffer of A into B: A's PRIME_HANDLE_TO_FD (export), B's
//!     PRIME_FD_TO_HANDLE (import: the attach), VM_BIND (the map), VM_UNBIND, GEM_CLOSE
//!     (the detach) and close() of the dma-buf fd; against the same cycle on a system
//!     dma-heap buffer of the same size. The heap buffer is allocated once, outside the
//!     loop (allocation is the heap's page allocator, not sharing), so the cycle both sides
//!     run is import + bind + unbind + GEM_CLOSE (attach, map, unmap, detach): that ratio is
//!     held to the goal, <= 1.0. The full Vela cycle, with A's export and the close of its
//!     fd on top (two syscalls the heap buffer has no counterpart for), is printed against
//!     the same baseline too. Raw ioctls, so nothing but the named calls is timed. Both cycles alternate, one of each
//!     per round, so drift in the machine hits both alike; medians are reported.
//! (b) Copy-engine bandwidth of B reading A's VRAM through the switch (COPY from the imported
//!     buffer into a B buffer) against B copying between two of its own buffers, same size
//!     (16 MiB by default); SUBMIT to WAIT of one COPY, medians, alternating. The data of one
//!     P2P copy is checked, and B's P2P_BYTES counter must grow by the bytes copied, so the
//!     path measured is the peer-to-peer one.
//!
//! (c) Moves of a VRAM buffer of A, against A's copy engine copying the same size VRAM ->
//!     VRAM (SUBMIT to WAIT of one COPY on a user queue): to system memory, when a static
//!     importer without a P2P path (the test importer module, `vela_test_importer.ko`) maps
//!     it (the map ioctl's time, less the same map of a buffer already in system memory), and
//!     back, when A's next job uses it (that job's SUBMIT to WAIT, less a NOP job's). The
//!     driver copies on the same engine (its kernel queue), so each ratio is the engine's copy
//!     against the whole move: allocating and DMA-mapping the destination (or taking the
//!     system memory an earlier move left, which the driver keeps), the copy and its wait,
//!     the PTE rewrites, handing the old place on to be freed or kept (goal >= 0.8). Each
//!     figure is the median with the min and max bandwidth of its samples; ratios are of
//!     medians. Skipped, with a note, when the importer module is not loaded.
//!
//! Usage: vela-prime-bench [--seconds S] [--cycle-kib K] [--mib M]

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::ExitCode,
    time::{Duration, Instant},
};

use vela_runtime::{raw, Access, Buffer, BufferFlags, Command, Device, Queue, Vm};
use vela_selftests::bench::{us, verdict};
use vela_selftests::importer::{Attach, Importer};
use vela_selftests::{dmabuf, p2p_peers};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Where the cycle binds, in the VM it owns (nothing else is bound there).
const CYCLE_VA: u64 = 1 << 32;
const P2P_BYTES: usize = vela_uapi::DRM_VELA_COUNTER_P2P_BYTES as usize;

struct Opts {
    budget: Duration,
    cycle_bytes: u64,
    copy_bytes: u64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        budget: Duration::from_secs(2),
        cycle_bytes: 1 << 20,
        copy_bytes: 16 << 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> Result<u64, String> {
            let v = args.next().ok_or(format!("{a} needs a value"))?;
            v.parse().map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--seconds" => o.budget = Duration::from_secs(num()?.max(1)),
            "--cycle-kib" => o.cycle_bytes = num()?.max(4) << 10,
            "--mib" => o.copy_bytes = num()?.max(1) << 20,
            _ => {
                return Err(format!(
                    "unknown argument {a}\nusage: vela-prime-bench [--seconds S] \
                     [--cycle-kib K] [--mib M]"
                ))
            }
        }
    }
    Ok(o)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (min, median, max).
fn spread(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    let mid = median(v);
    let lo = v.first().copied().unwrap_or_default();
    let hi = v.last().copied().unwrap_or_default();
    (lo, mid, hi)
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// The steps of one cycle and the time each took.
#[derive(Default)]
struct Steps {
    names: Vec<&'static str>,
    times: Vec<Vec<Duration>>,
}

impl Steps {
    fn record(&mut self, i: usize, name: &'static str, d: Duration) {
        if self.names.len() <= i {
            self.names.push(name);
            self.times.push(Vec::new());
        }
        self.times[i].push(d);
    }

    fn breakdown(&mut self) -> String {
        let names = self.names.clone();
        names
            .iter()
            .zip(self.times.iter_mut())
            .map(|(n, t)| format!("{n} {:.1}", us(median(t))))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Import `fd` into `b`, bind it at CYCLE_VA in `vm`, unbind, GEM_CLOSE; each step timed into
/// `steps` from index `first`.
fn import_bind_close(
    b: &Device,
    vm: &Vm<'_>,
    fd: i32,
    size: u64,
    steps: &mut Steps,
    first: usize,
) -> Result<(), String> {
    let mut t = Instant::now();
    let mut lap = |steps: &mut Steps, i: usize, name| {
        let now = Instant::now();
        steps.record(first + i, name, now - t);
        t = now;
    };
    let mut p = raw::drm_prime_handle {
        fd,
        ..Default::default()
    };
    raw::prime_fd_to_handle(b, &mut p).map_err(|e| err("PRIME_FD_TO_HANDLE on B", e))?;
    lap(steps, 0, "import");
    let mut bind = raw::drm_vela_vm_bind {
        vm_id: vm.id(),
        handle: p.handle,
        va: CYCLE_VA,
        bo_offset: 0,
        size,
        flags: Access::READ_WRITE.0,
        pad: 0,
    };
    let r = raw::vm_bind(b, &mut bind).map_err(|e| err("VM_BIND of the import", e));
    lap(steps, 1, "bind");
    let r = r.and_then(|_| {
        let mut u = raw::drm_vela_vm_unbind {
            vm_id: vm.id(),
            pad: 0,
            va: CYCLE_VA,
            size,
        };
        raw::vm_unbind(b, &mut u).map_err(|e| err("VM_UNBIND of the import", e))
    });
    lap(steps, 2, "unbind");
    let c = raw::gem_close(b, p.handle).map_err(|e| err("GEM_CLOSE of the import", e));
    lap(steps, 3, "close");
    r.and(c)
}

fn bench_cycle(a: &Device, b: &Device, size: u64, budget: Duration) -> Result<f64, String> {
    let src = Buffer::create(a, size, BufferFlags::VRAM).map_err(|e| err("A buffer", e))?;
    let size = src.size();
    let heap = dmabuf::heap_alloc("system", size).map_err(|e| e.to_string())?;
    let vm = Vm::create(b).map_err(|e| err("B VM", e))?;
    let (mut vela, mut base) = (Steps::default(), Steps::default());
    let (mut vela_total, mut base_total) = (Vec::new(), Vec::new());
    let mut vela_same = Vec::new();
    let start = Instant::now();
    // The first round is a warm-up (and proves both cycles work); it is not counted.
    let mut round = 0u64;
    while round < 21 || (start.elapsed() < budget && round < 100_000) {
        let t = Instant::now();
        let mut p = raw::drm_prime_handle {
            handle: src.handle(),
            flags: raw::DRM_CLOEXEC | raw::DRM_RDWR,
            fd: -1,
        };
        raw::prime_handle_to_fd(a, &mut p).map_err(|e| err("PRIME_HANDLE_TO_FD on A", e))?;
        // SAFETY: the kernel just installed this fd for us; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(p.fd) };
        let exported = t.elapsed();
        let mut steps = Steps::default();
        import_bind_close(b, &vm, fd.as_raw_fd(), size, &mut steps, 0)?;
        let c = Instant::now();
        drop(fd);
        let closed = c.elapsed();
        let total = t.elapsed();

        let h = Instant::now();
        let mut hsteps = Steps::default();
        import_bind_close(b, &vm, heap.as_raw_fd(), size, &mut hsteps, 0)?;
        let htotal = h.elapsed();

        if round > 0 {
            vela.record(0, "export", exported);
            for (i, (n, t)) in steps.names.iter().zip(&steps.times).enumerate() {
                vela.record(i + 1, n, t[0]);
            }
            vela.record(5, "close(fd)", closed);
            vela_total.push(total);
            vela_same.push(total.saturating_sub(exported + closed));
            for (i, (n, t)) in hsteps.names.iter().zip(&hsteps.times).enumerate() {
                base.record(i, n, t[0]);
            }
            base_total.push(htotal);
        }
        round += 1;
    }
    let n = vela_total.len();
    let (v, h) = (median(&mut vela_total), median(&mut base_total));
    let ratio = v.as_secs_f64() / h.as_secs_f64().max(1e-12);
    // The same steps on both sides: the heap buffer was exported (allocated) once.
    let same = median(&mut vela_same);
    let same_ratio = same.as_secs_f64() / h.as_secs_f64().max(1e-12);
    println!(
        "(a) sharing cycle of a {} KiB buffer into B, median of {n}:\n    \
         A's VRAM: export+import+bind+unbind+close+close(fd) {:.1} us ({} us)\n    \
         system dma-heap: import+bind+unbind+close {:.1} us ({} us)\n    \
         the same cycle (import+bind+unbind+close) on A's VRAM: {:.1} us, ratio {same_ratio:.2}, goal <= 1.0: {}\n    \
         with A's export and close(fd) on top: ratio {ratio:.2}",
        size >> 10,
        us(v),
        vela.breakdown(),
        us(h),
        base.breakdown(),
        us(same),
        verdict(same_ratio <= 1.0),
    );
    Ok(same_ratio)
}

fn gb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e9 / d.as_secs_f64().max(1e-12)
}

fn bench_p2p(a: &Device, b: &Device, size: u64, budget: Duration) -> Result<f64, String> {
    let flags = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;
    let pat: Vec<u8> = (0..size).map(|i| (i * 131 + 17) as u8).collect();
    let on_a = Buffer::create(a, size, flags).map_err(|e| err("A buffer", e))?;
    on_a.map()
        .and_then(|m| m.write(0, &pat))
        .map_err(|e| err("fill A's buffer", e))?;
    let fd = on_a.export().map_err(|e| err("export", e))?;
    let imp = b.import(&fd).map_err(|e| err("import into B", e))?;
    let local = Buffer::create(b, size, flags).map_err(|e| err("B buffer", e))?;
    let dst = Buffer::create(b, size, flags).map_err(|e| err("B buffer", e))?;
    let vm = Vm::create(b).map_err(|e| err("B VM", e))?;
    let q = Queue::create(&vm).map_err(|e| err("B queue", e))?;
    let bind = |bo| {
        vm.bind_auto(bo, Access::READ_WRITE)
            .map_err(|e| err("VM_BIND", e))
    };
    let (bi, bl, bd) = (bind(&imp)?, bind(&local)?, bind(&dst)?);
    let copy = |from: u64| -> Result<Duration, String> {
        let t = Instant::now();
        q.run(&[Command::copy(from, bd.va(), size)], TIMEOUT)
            .map_err(|e| err("COPY", e))?;
        Ok(t.elapsed())
    };
    let p2p_bytes = || {
        b.counters()
            .map(|c| c[P2P_BYTES])
            .map_err(|e| err("QUERY", e))
    };

    // One checked P2P copy first: the bytes must be A's, and B must count them as P2P.
    let before = p2p_bytes()?;
    copy(bi.va())?;
    let got = dst
        .map()
        .and_then(|m| m.read_vec(0, size as usize))
        .map_err(|e| err("read B's buffer", e))?;
    if got != pat {
        return Err("the P2P COPY did not deliver A's data".into());
    }
    let grew = p2p_bytes()? - before;
    if grew < size {
        return Err(format!(
            "B's P2P_BYTES grew by {grew} for a {size}-byte copy from A: not a P2P path"
        ));
    }
    copy(bl.va())?;

    let (mut p2p, mut loc) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while p2p.len() < 5 || (start.elapsed() < budget && p2p.len() < 10_000) {
        p2p.push(copy(bi.va())?);
        loc.push(copy(bl.va())?);
    }
    let n = p2p.len();
    let (p, l) = (spread(&mut p2p), spread(&mut loc));
    let (pg, lg) = (gb_s(size, p.1), gb_s(size, l.1));
    let ratio = pg / lg.max(1e-12);
    println!(
        "(b) COPY on B, {} MiB, median (its time, min-max) of {n} each (SUBMIT to WAIT):\n    \
         from A's VRAM through the switch {pg:.2} GB/s ({:.2} ms, {:.2}-{:.2}); B local -> \
         local {lg:.2} GB/s ({:.2} ms, {:.2}-{:.2}; the baseline); ratio {ratio:.2}",
        size >> 20,
        ms(p.1),
        ms(p.0),
        ms(p.2),
        ms(l.1),
        ms(l.0),
        ms(l.2),
    );
    Ok(ratio)
}

fn bench_moves(a: &Device, size: u64, budget: Duration) -> Result<(), String> {
    let Ok(imp) = Importer::open() else {
        println!("(c) moves: skipped, vela_test_importer.ko is not loaded");
        return Ok(());
    };
    let flags = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;
    let bo = Buffer::create(a, size, flags).map_err(|e| err("A buffer", e))?;
    let src = Buffer::create(a, size, flags).map_err(|e| err("A buffer", e))?;
    let sys = Buffer::create(a, size, BufferFlags::CPU_VISIBLE).map_err(|e| err("A buffer", e))?;
    let vm = Vm::create(a).map_err(|e| err("A VM", e))?;
    let q = Queue::create(&vm).map_err(|e| err("A queue", e))?;
    let bind = |bo| {
        vm.bind_auto(bo, Access::READ_WRITE)
            .map_err(|e| err("VM_BIND", e))
    };
    let (bb, bs) = (bind(&bo)?, bind(&src)?);
    let fd = bo.export().map_err(|e| err("export", e))?;
    let sys_fd = sys.export().map_err(|e| err("export", e))?;
    let slot = imp
        .import(&fd, Attach::Static)
        .map_err(|e| err("importer attach", e))?;
    let sys_slot = imp
        .import(&sys_fd, Attach::Static)
        .map_err(|e| err("importer attach", e))?;
    let job = |cmds: &[Command]| -> Result<Duration, String> {
        let t = Instant::now();
        q.run(cmds, TIMEOUT).map_err(|e| err("job", e))?;
        Ok(t.elapsed())
    };
    let timed = |f: &dyn Fn() -> std::io::Result<u64>| -> Result<Duration, String> {
        let t = Instant::now();
        f().map_err(|e| err("importer map", e))?;
        Ok(t.elapsed())
    };
    job(&[Command::copy(bs.va(), bb.va(), size)])?;
    let (mut engine, mut out, mut back) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    while engine.len() < 3 || (start.elapsed() < budget && engine.len() < 1000) {
        engine.push(job(&[Command::copy(bs.va(), bb.va(), size)])?);
        // Out: the map pins the buffer in system memory, moving it there.
        let moved = timed(&|| imp.map(slot))?;
        let still = timed(&|| imp.map(sys_slot))?;
        out.push(moved.saturating_sub(still));
        imp.unmap(slot).map_err(|e| err("importer unmap", e))?;
        imp.unmap(sys_slot).map_err(|e| err("importer unmap", e))?;
        // Back: the next job of A's VM brings it into VRAM before it runs.
        let moving = job(&[Command::nop()])?;
        let nop = job(&[Command::nop()])?;
        back.push(moving.saturating_sub(nop));
    }
    let n = engine.len();
    let (e, o, b) = (spread(&mut engine), spread(&mut out), spread(&mut back));
    // Min and max as times: a difference of two noisy samples can come out near 0, which no
    // bandwidth shows honestly.
    let fmt = |(lo, mid, hi): (Duration, Duration, Duration)| {
        format!(
            "{:.2} GB/s ({:.2} ms, {:.2}-{:.2})",
            gb_s(size, mid),
            ms(mid),
            ms(lo),
            ms(hi)
        )
    };
    let (eg, og, bg) = (gb_s(size, e.1), gb_s(size, o.1), gb_s(size, b.1));
    let (ro, rb) = (og / eg.max(1e-12), bg / eg.max(1e-12));
    println!(
        "(c) moves of a {} MiB VRAM buffer of A, median (its time, min-max) of {n} each:\n    \
         A's copy engine VRAM -> VRAM on a user queue, SUBMIT to WAIT {} (the baseline);\n    \
         to system memory for a static importer (its map, less a map of a buffer already \
         there) {}, ratio {ro:.2}, goal >= 0.8: {}\n    \
         back into VRAM for A's next job (its SUBMIT to WAIT, less a NOP job's) {}, ratio \
         {rb:.2}, goal >= 0.8: {}",
        size >> 20,
        fmt(e),
        fmt(o),
        verdict(ro >= 0.8),
        fmt(b),
        verdict(rb >= 0.8),
    );
    Ok(())
}

fn run(o: &Opts) -> Result<(), String> {
    let (pa, pb) = p2p_peers()?;
    let a = pa.open()?;
    let b = pb.open()?;
    println!(
        "vela-prime-bench: A {} ({}), B {} ({}), below one PCIe switch; about {} s per measurement",
        pa.bdf,
        a.path().display(),
        pb.bdf,
        b.path().display(),
        o.budget.as_secs()
    );
    bench_cycle(&a, &b, o.cycle_bytes, o.budget)?;
    bench_p2p(&a, &b, o.copy_bytes, o.budget)?;
    bench_moves(&a, o.copy_bytes, o.budget)?;
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vela-prime-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("vela-prime-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
