// SPDX-License-Identifier: GPL-2.0

//! `vela-vgpu-bench`: what a vGPU instance costs its tenant (`Documentation/vgpu.rst`,
//! Benchmark), as ratios to the host's accel path on the same device, measured in the same
//! run (see `vela bench` for why ratios).
//!
//! The instance (a `vela-quarter` by default) is made on the device the vGPU test uses
//! (vela2, the Vela device with no peer-to-peer path) or, in a VM without one (the bench VM
//! has only the two peers), on the first Vela device; it is opened through its vfio cdev
//! and iommufd and driven as a guest driver drives its function (`vela_selftests::vgpu`):
//! ring and fence in its VRAM slice through a mapping of BAR2, the doorbell a pwrite of BAR0
//! through the VFIO device file (trapped, forwarded by the kernel to the partition's
//! window), each job a command and a SIGNAL with the INTERRUPT flag, its completion the MSI-X
//! eventfd of the queue's vector (relayed by the host's vela.ko), then the fence read
//! through BAR2.
//!
//! The baseline is the host's accel path on the same device: a process with a VM and a
//! queue of its own, the same COPY in one SUBMIT, then WAIT until the driver signals the
//! job's fence (its ring, SIGNAL and interrupt are the kernel's). Both time one job from
//! before its submission to the fence seen by the submitter; instance and host samples
//! alternate, so drift in a shared host hits both alike.
//!
//! (a) COPY bandwidth VRAM -> VRAM, one large copy per job (16 MiB): min, median and max of
//!     each side, ratio of the medians. Goal >= 0.9.
//! (b) Submit -> fence latency of a small COPY (4 KiB): min, median and max, ratio of the
//!     medians. Goal <= 1.5. The instance's wait ends when the eventfd fires, even if the
//!     fence was written sooner; the host's WAIT spins 300 us on the fence before it sleeps,
//!     as vela.ko does. For scale, the instance once more polling the fence through BAR2
//!     instead: the difference is what the interrupt's relay costs.
//!
//! The data of one copy of each size is checked on both sides. The instance is removed at
//! the end, whatever happened.
//!
//! Usage: vela-vgpu-bench [--seconds S] [--mib M] [--kib K] [--type TYPE] [--bdf BDF]

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use vela_runtime::{Access, BufferFlags, Command, Device, Queue, Vm};
use vela_selftests::bench::{us, verdict};
use vela_selftests::{
    p2p_topology, pattern, same,
    sharing::{read_bo, vram_with},
    vela_pci_devices,
    vfio::{self, CdevDevice, EventFd, Mapping, Mdev, MdevType},
    vgpu::{self, Completion, Layout},
    PciDev,
};

const TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

/// The instance's slice: the ring, its fence, the small copy's buffers, then the large
/// copy's from 2 MiB on.
const RING: u64 = 0;
const LOG2_SLOTS: u32 = 8;
const FENCE: u64 = 0x10000;
const SMALL_SRC: u64 = MIB;
const SMALL_DST: u64 = MIB + MIB / 2;
const MAX_SMALL: u64 = MIB / 2;
const BIG_SRC: u64 = 2 * MIB;

struct Opts {
    budget: Duration,
    big: u64,
    small: u64,
    ty: String,
    bdf: Option<String>,
}

const USAGE: &str =
    "usage: vela-vgpu-bench [--seconds S] [--mib M] [--kib K] [--type TYPE] [--bdf BDF]";

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        budget: Duration::from_secs(4),
        big: 16 * MIB,
        small: 4 << 10,
        ty: "vela-quarter".into(),
        bdf: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        let num = |v: String| -> Result<u64, String> {
            v.parse().map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--seconds" => o.budget = Duration::from_secs(num(val()?)?.max(1)),
            "--mib" => o.big = num(val()?)?.max(1) * MIB,
            "--kib" => o.small = (num(val()?)?.max(1) << 10).min(MAX_SMALL),
            "--type" => o.ty = val()?,
            "--bdf" => o.bdf = Some(val()?),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The device: `--bdf`, else the vGPU test's vela2, else the first Vela device.
fn pick(o: &Opts) -> Result<PciDev, String> {
    let at = |p: &std::path::Path| PciDev::new(p).map_err(|e| format!("{}: {e}", p.display()));
    if let Some(bdf) = &o.bdf {
        return at(&std::path::Path::new("/sys/bus/pci/devices").join(bdf));
    }
    if let Ok(t) = p2p_topology() {
        return Ok(t.c);
    }
    let first = vela_pci_devices()
        .map_err(|e| format!("listing PCI devices: {e}"))?
        .into_iter()
        .next()
        .ok_or("no Vela device")?;
    at(&first)
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// min, median, max.
fn spread(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    v.sort();
    let n = v.len();
    if n == 0 {
        return Default::default();
    }
    (v[0], v[n / 2], v[n - 1])
}

fn gib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / d.as_secs_f64().max(1e-9)
}

/// An instance, removed when dropped (after every file of it is closed: a removal waits for
/// them).
struct Instance(Option<Mdev>);

impl Instance {
    fn remove(mut self) -> Result<(), String> {
        match self.0.take() {
            Some(m) => m.remove().map_err(|e| err("removing the instance", e)),
            None => Ok(()),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            let _ = m.remove();
        }
    }
}

fn main() -> ExitCode {
    let r = parse().and_then(|o| {
        let pci = pick(&o)?;
        let host = pci.open()?;
        let ty = MdevType::of(&pci.sysfs, &o.ty);
        let avail = ty.available().map_err(|e| err(&o.ty, e))?;
        if avail == 0 {
            return Err(format!("{}: no {} instance available", pci.bdf, o.ty));
        }
        let m = ty
            .create()
            .map_err(|e| err(&format!("creating a {}", o.ty), e))?;
        println!(
            "vela-vgpu-bench on {} ({}, {} MiB VRAM): a {} instance ({}) against the host's \
             accel path; each measurement about {} s, instance and host samples alternating",
            pci.bdf,
            host.path().display(),
            host.vram_size() >> 20,
            o.ty,
            m.uuid,
            o.budget.as_secs()
        );
        let inst = Instance(Some(m.clone()));
        let r = measure(&o, &host, &m);
        let removed = inst.remove();
        if removed.is_ok() {
            println!("    instance {} removed", m.uuid);
        }
        r.and(removed)
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vela-vgpu-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `data` at slice offset `off` of `map` (a mapping from offset 0).
fn put(map: &Mapping, off: u64, data: &[u8]) {
    assert!(off as usize + data.len() <= map.len);
    // SAFETY: Inside the mapping (asserted); `data` is ordinary memory, not the mapping.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), map.ptr.add(off as usize), data.len()) };
}

/// `len` bytes at slice offset `off` of `map`.
fn get(map: &Mapping, off: u64, len: u64) -> Vec<u8> {
    assert!((off + len) as usize <= map.len);
    let mut v = vec![0u8; len as usize];
    // SAFETY: Inside the mapping (asserted), into a buffer of our own.
    unsafe { std::ptr::copy_nonoverlapping(map.ptr.add(off as usize), v.as_mut_ptr(), v.len()) };
    v
}

/// One job on the instance's queue: `cmd` and a SIGNAL, from before the submission until
/// the fence is seen.
fn inst_job(
    q: &mut vgpu::Queue<'_>,
    ev: &EventFd,
    cmd: vela_hw::cmd::Slot,
    how: Completion<'_>,
) -> Result<Duration, String> {
    // A relayed interrupt of an earlier job must not wake this one.
    ev.take();
    let t = Instant::now();
    let seq = q
        .submit_signalled(&[cmd])
        .map_err(|e| err("instance submit", e))?;
    q.wait(seq, how, TIMEOUT)
        .map_err(|e| err("instance wait", e))?;
    let d = t.elapsed();
    if matches!(how, Completion::Poll) {
        // Its interrupt is still relayed: let it land before the next job.
        if ev.wait(1000) {
            ev.take();
        }
    }
    Ok(d)
}

/// The same job on the host's accel path: SUBMIT, then WAIT.
fn host_job(q: &Queue<'_>, cmd: Command) -> Result<Duration, String> {
    let t = Instant::now();
    q.run(&[cmd], TIMEOUT).map_err(|e| err("host job", e))?;
    Ok(t.elapsed())
}

fn measure(o: &Opts, host: &Device, m: &Mdev) -> Result<(), String> {
    // The instance, opened as a VMM does with the vfio cdev.
    let c = CdevDevice::open(m).map_err(|e| err("opening the instance's vfio cdev", e))?;
    let bar0 = c.dev.region(vfio::BAR0).map_err(|e| err("BAR0", e))?;
    let bar2 = c.dev.region(vfio::BAR2).map_err(|e| err("BAR2", e))?;
    let slice = bar2.size;
    let big = o.big.min((slice.saturating_sub(BIG_SRC) / 2) & !(MIB - 1));
    if big == 0 {
        return Err(format!("a {} MiB slice is too small", slice >> 20));
    }
    if big < o.big {
        println!(
            "    the {} MiB slice holds two {} MiB buffers, not {} MiB ones",
            slice >> 20,
            big >> 20,
            o.big >> 20
        );
    }
    let small = o.small;
    let big_dst = BIG_SRC + big;
    let map = c
        .dev
        .mmap(&bar2, 0, (big_dst + big) as usize)
        .map_err(|e| err("mapping BAR2", e))?;
    let ev = EventFd::new().map_err(|e| err("eventfd", e))?;
    c.dev
        .set_eventfds(vfio::MSIX_IRQ, 1, &[ev.fd()])
        .map_err(|e| err("an eventfd on vector 1", e))?;
    let layout = Layout {
        ring: RING,
        log2_slots: LOG2_SLOTS,
        fence: FENCE,
    };
    let mut q = vgpu::Queue::new(&c.dev, bar0, &map, 0, layout).map_err(|e| err("queue", e))?;
    q.setup()
        .map_err(|e| err("queue 0 set up through BAR0", e))?;

    // The host's accel path on the same device.
    let hbig = pattern(41, big);
    let hsmall = pattern(42, small);
    let hs = vram_with(host, &hbig, BufferFlags::NONE)?;
    let hd = vram_with(host, &vec![0u8; big as usize], BufferFlags::NONE)?;
    let hss = vram_with(host, &hsmall, BufferFlags::NONE)?;
    let hsd = vram_with(host, &vec![0u8; small as usize], BufferFlags::NONE)?;
    let vm = Vm::create(host).map_err(|e| err("host VM", e))?;
    let hq = Queue::create(&vm).map_err(|e| err("host queue", e))?;
    let bind = |b, a| vm.bind_auto(b, a).map_err(|e| err("host bind", e));
    let (bs, bd) = (bind(&hs, Access::READ)?, bind(&hd, Access::READ_WRITE)?);
    let (bss, bsd) = (bind(&hss, Access::READ)?, bind(&hsd, Access::READ_WRITE)?);
    let host_big = Command::copy(bs.va(), bd.va(), big);
    let host_small = Command::copy(bss.va(), bsd.va(), small);
    let inst_big = vgpu::copy(BIG_SRC, big_dst, big, false);
    let inst_small = vgpu::copy(SMALL_SRC, SMALL_DST, small, false);

    // One copy of each size on each side, its data checked (and a warm-up).
    let ibig = pattern(43, big);
    let ismall = pattern(44, small);
    put(&map, BIG_SRC, &ibig);
    put(&map, SMALL_SRC, &ismall);
    let evc = Completion::Eventfd(&ev);
    for (cmd, dst, want, what) in [
        (inst_big, big_dst, &ibig, "the instance's large copy"),
        (inst_small, SMALL_DST, &ismall, "the instance's small copy"),
    ] {
        inst_job(&mut q, &ev, cmd, evc)?;
        same(&get(&map, dst, want.len() as u64), want).map_err(|e| err(what, e))?;
    }
    for (cmd, dst, want, what) in [
        (host_big, &hd, &hbig, "the host's large copy"),
        (host_small, &hsd, &hsmall, "the host's small copy"),
    ] {
        host_job(&hq, cmd)?;
        same(&read_bo(dst, want.len() as u64)?, want).map_err(|e| err(what, e))?;
    }

    // (a) bandwidth: rounds of one instance and one host copy, in turns first.
    let (mut ib, mut hb) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let mut round = 0u64;
    while round < 5 || (start.elapsed() < o.budget && round < 100_000) {
        if round.is_multiple_of(2) {
            ib.push(inst_job(&mut q, &ev, inst_big, evc)?);
            hb.push(host_job(&hq, host_big)?);
        } else {
            hb.push(host_job(&hq, host_big)?);
            ib.push(inst_job(&mut q, &ev, inst_big, evc)?);
        }
        round += 1;
    }
    let (n_ib, n_hb) = (ib.len(), hb.len());
    let (imin, imed, imax) = spread(&mut ib);
    let (hmin, hmed, hmax) = spread(&mut hb);
    let ratio = gib_s(big, imed) / gib_s(big, hmed);
    println!(
        "(a) COPY bandwidth VRAM->VRAM, {} MiB per job, submit -> fence: instance {:.2} GiB/s \
         median (min {:.2}, max {:.2}; {n_ib} jobs), host {:.2} GiB/s (min {:.2}, max {:.2}; \
         {n_hb} jobs); ratio {ratio:.3}, goal >= 0.9: {}",
        big >> 20,
        gib_s(big, imed),
        gib_s(big, imax),
        gib_s(big, imin),
        gib_s(big, hmed),
        gib_s(big, hmax),
        gib_s(big, hmin),
        verdict(ratio >= 0.9)
    );

    // (b) latency: rounds of the instance on its eventfd, the instance polling, the host, the
    // order rotating.
    let (mut ie, mut ip, mut hl) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    let mut round = 0usize;
    while round < 20 || (start.elapsed() < o.budget && round < 100_000) {
        for k in 0..3 {
            match (round + k) % 3 {
                0 => ie.push(inst_job(&mut q, &ev, inst_small, evc)?),
                1 => ip.push(inst_job(&mut q, &ev, inst_small, Completion::Poll)?),
                _ => hl.push(host_job(&hq, host_small)?),
            }
        }
        round += 1;
    }
    let n = hl.len();
    let (emin, emed, emax) = spread(&mut ie);
    let (pmin, pmed, pmax) = spread(&mut ip);
    let (lmin, lmed, lmax) = spread(&mut hl);
    let ratio = emed.as_secs_f64() / lmed.as_secs_f64().max(1e-12);
    println!(
        "(b) submit -> fence latency of a {} KiB COPY: instance (MSI-X eventfd) {:.1} us median \
         (min {:.1}, max {:.1}), host (SUBMIT + WAIT) {:.1} us (min {:.1}, max {:.1}); {n} jobs \
         each; ratio {ratio:.2}, goal <= 1.5: {}",
        small >> 10,
        us(emed),
        us(emin),
        us(emax),
        us(lmed),
        us(lmin),
        us(lmax),
        verdict(ratio <= 1.5)
    );
    println!(
        "    the instance polling its fence through BAR2 instead: {:.1} us median (min {:.1}, \
         max {:.1}), ratio {:.2} to the host",
        us(pmed),
        us(pmin),
        us(pmax),
        pmed.as_secs_f64() / lmed.as_secs_f64().max(1e-12)
    );
    println!(
        "    baseline: the host's accel path on the same device: a VM and queue of this \
         process, the same COPY by SUBMIT, then WAIT (vela.ko's 300 us spin on the fence, \
         then its interrupt); the instance: ring and fence in its slice through BAR2, the \
         doorbell a pwrite of the VFIO device (trapped), the wait its MSI-X eventfd firing \
         (relayed by the host's vela.ko)"
    );
    Ok(())
}
