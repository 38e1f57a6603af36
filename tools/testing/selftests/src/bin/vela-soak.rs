// SPDX-License-Identifier: GPL-2.0

//! `make soak`: the fuzzer for a long time, with the device misbehaving and going away under
//! it, then proof that nothing was lost.
//!
//! Rounds of `vela-fuzz` (P processes each) run until the call budget or the time bound is
//! spent. Meanwhile one thread arms a random model fault every few seconds (engine hang, DMA
//! failure, dropped interrupt, MMU fault) on a random device, and another unbinds and rebinds
//! a random device while the fuzzers hold its files, jobs, exports and imports. Fuzzer
//! processes opened on a device that goes away see their calls fail; a round's verdict is
//! therefore not a check here (faults make valid calls fail), only that every process ran
//! to its end and was not killed. The checks that matter come after: every device's VRAM
//! free is what it was before the soak, no system memory is charged to any device, each
//! device runs a job whose data is read back, and (judged by the harness) the kernel log,
//! including the kmemleak scan at the end of the run, has no report.
//!
//! usage: vela-soak [--calls N (default 1000000)] [--procs P (default 8)]
//! [--minutes M (default 50)] [--seed S]

use std::{
    io,
    path::PathBuf,
    process::{Command as Proc, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use vela_runtime::kernels::Rng;
use vela_selftests::{inject, sharing::local_copy_works, vela_pci_devices, PciDev, Tap};

const DRIVER: &str = "/sys/bus/pci/drivers/vela";
/// Calls per fuzzer round: short enough that a device rebound mid-round is opened afresh by
/// the next round within a minute or two.
const ROUND_CALLS: u64 = 40_000;
const FAULTS: &[&str] = &[
    "hang-engine=copy",
    "hang-engine=compute",
    "fail-dma=1",
    "drop-irq=1",
    "drop-irq=3",
    "mmu-fault=1",
    "mmu-fault=2",
];

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// VRAM free and system memory charged, per device, read through a fresh open.
fn memory(d: &PciDev) -> Result<(u64, u64), String> {
    let dev = d.open()?;
    let m = dev.memory().map_err(|e| e.to_string())?;
    let l = dev.limits().map_err(|e| e.to_string())?;
    Ok((m.vram_free, l.system_used))
}

/// A copy job on `d` whose result is read back.
fn job_works(d: &PciDev, seed: u32) -> Result<(), String> {
    local_copy_works(&d.open()?, seed)
}

/// Unbinds `d` (model device `index`) from vela and binds it again, waiting for its node to
/// answer. Its faults are cleared first: probe's MSI-X self-test rightly refuses a device
/// whose interrupt is dropped, and a hung engine would fail its first kernel copy.
fn rebind(d: &PciDev, index: usize) -> io::Result<()> {
    inject(&format!("dev={index} clear"))?;
    std::fs::write(format!("{DRIVER}/unbind"), &d.bdf)?;
    thread::sleep(Duration::from_millis(500));
    std::fs::write(format!("{DRIVER}/bind"), &d.bdf)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if d.open().is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(io::Error::other("the node did not come back"))
}

struct Totals {
    faults: AtomicU64,
    fault_errors: AtomicU64,
    rebinds: AtomicU64,
    rebind_errors: AtomicU64,
    /// What the failed unbind/bind cycles said, for the diagnostics.
    why: std::sync::Mutex<Vec<String>>,
    /// When each unbind began.
    unbinds: std::sync::Mutex<Vec<Instant>>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut t = Tap::new();
    let calls = arg(&args, "--calls").unwrap_or(1_000_000);
    let procs = arg(&args, "--procs").unwrap_or(8).max(1);
    let minutes = arg(&args, "--minutes").unwrap_or(50);
    let seed = arg(&args, "--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    t.diag(format_args!(
        "{calls} calls in {procs} processes, at most {minutes} min, seed {seed}"
    ));
    let devs: Vec<PciDev> = vela_pci_devices()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| PciDev::new(p).ok())
        .collect();
    if !t.check(!devs.is_empty(), "Vela devices present", "none") {
        t.finish();
    }
    let before: Vec<Result<(u64, u64), String>> = devs.iter().map(memory).collect();
    for (d, m) in devs.iter().zip(&before) {
        t.check(
            m.is_ok(),
            &format!("{}: VRAM free and system memory before the soak", d.bdf),
            format_args!("{m:?}"),
        );
    }
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("vela-fuzz")))
        .unwrap_or_else(|| PathBuf::from("vela-fuzz"));

    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals {
        faults: AtomicU64::new(0),
        fault_errors: AtomicU64::new(0),
        rebinds: AtomicU64::new(0),
        rebind_errors: AtomicU64::new(0),
        why: std::sync::Mutex::new(Vec::new()),
        unbinds: std::sync::Mutex::new(Vec::new()),
    });
    let ndev = devs.len() as u64;
    // Held by the rebinder from clearing a device's faults until it is bound again, and by
    // the fault thread around each request, so no fault is armed on a device while it probes.
    // The model numbers devices in the order of their bus addresses, as `devs` is sorted.
    let probing = Arc::new(std::sync::Mutex::new(()));
    let faults = {
        let (stop, totals, probing) = (stop.clone(), totals.clone(), probing.clone());
        thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0xfa17);
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(1000 + rng.next_u64() % 3000));
                let verb = FAULTS[(rng.next_u64() % FAULTS.len() as u64) as usize];
                let dev = rng.next_u64() % ndev;
                let _g = probing.lock().unwrap_or_else(|p| p.into_inner());
                match inject(&format!("dev={dev} {verb}")) {
                    Ok(_) => totals.faults.fetch_add(1, Ordering::Relaxed),
                    Err(_) => totals.fault_errors.fetch_add(1, Ordering::Relaxed),
                };
            }
            // Leave no fault armed for the checks after the soak.
            for dev in 0..ndev {
                let _ = inject(&format!("dev={dev} clear"));
            }
        })
    };
    let rebinder = {
        let (stop, totals, devs) = (stop.clone(), totals.clone(), devs.clone());
        let probing = probing.clone();
        thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0xb1d);
            while !stop.load(Ordering::Relaxed) {
                // Long enough for fuzzer rounds to open the device again and build state on it.
                for _ in 0..(20 + rng.next_u64() % 20) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    thread::sleep(Duration::from_secs(1));
                }
                let i = (rng.next_u64() % devs.len() as u64) as usize;
                let _g = probing.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(mut u) = totals.unbinds.lock() {
                    u.push(Instant::now());
                }
                match rebind(&devs[i], i) {
                    Ok(()) => totals.rebinds.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if let Ok(mut w) = totals.why.lock() {
                            w.push(format!("{}: {e}", devs[i].bdf));
                        }
                        totals.rebind_errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };

    let start = Instant::now();
    let bound = Duration::from_secs(minutes * 60);
    let (mut done, mut rounds, mut killed, mut coverage) = (0u64, 0u64, 0u64, None::<String>);
    // Each round's time span and how many accesses in it hit a revoked mapping.
    let mut revoked: Vec<(Instant, Instant, u64)> = Vec::new();
    while done < calls && start.elapsed() < bound {
        let n = ROUND_CALLS.min(calls - done);
        let round_seed = seed.wrapping_add(rounds.wrapping_mul(0x9e37_79b9));
        let began = Instant::now();
        let out = Proc::new(&exe)
            // Unbinding revokes the fuzzers' mappings: a SIGBUS is then what must happen, and
            // the fuzzer survives and counts it instead of dying (vela-fuzz's revoked.rs).
            .env("VELA_FUZZ_REVOKED_MAPS_OK", "1")
            .args([
                "--calls",
                &n.to_string(),
                "--procs",
                &procs.to_string(),
                "--seed",
                &round_seed.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output();
        rounds += 1;
        done += n;
        match out {
            Ok(o) => {
                // Exit 0 or 1 is a verdict; anything else (a signal, a panic's 101) is the
                // fuzzer itself breaking.
                if !matches!(o.status.code(), Some(0 | 1)) {
                    killed += 1;
                    t.diag(format_args!(
                        "round {rounds} (seed {round_seed}): {}",
                        o.status
                    ));
                }
                let text = String::from_utf8_lossy(&o.stdout);
                let hit: u64 = text
                    .lines()
                    .filter_map(|l| l.split("revoked-mapping faults: ").nth(1))
                    .filter_map(|n| n.trim().parse::<u64>().ok())
                    .sum();
                if hit > 0 {
                    revoked.push((began, Instant::now(), hit));
                }
                if let Some(c) = text.lines().rev().find(|l| l.contains("coverage")) {
                    coverage = Some(c.trim_start_matches(['#', ' ']).to_string());
                }
            }
            Err(e) => {
                killed += 1;
                t.diag(format_args!(
                    "round {rounds}: cannot run {}: {e}",
                    exe.display()
                ));
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = faults.join();
    let _ = rebinder.join();

    t.diag(format_args!(
        "{done} calls in {rounds} rounds, {secs:.0} s: {:.0} calls/s",
        done as f64 / secs.max(1e-9)
    ));
    if let Some(c) = &coverage {
        t.diag(format_args!("last round's {c}"));
    }
    let (f, fe) = (
        totals.faults.load(Ordering::Relaxed),
        totals.fault_errors.load(Ordering::Relaxed),
    );
    let (r, re) = (
        totals.rebinds.load(Ordering::Relaxed),
        totals.rebind_errors.load(Ordering::Relaxed),
    );
    t.diag(format_args!("{f} faults armed, {r} unbind/bind cycles"));
    let unbinds = totals.unbinds.lock().map(|u| u.clone()).unwrap_or_default();
    let total_revoked: u64 = revoked.iter().map(|r| r.2).sum();
    t.diag(format_args!(
        "{total_revoked} accesses to revoked mappings (SIGBUS survived) in {} rounds",
        revoked.len()
    ));
    // A fuzzer's files are opened in its round, so only an unbind during the round revokes
    // its mappings; a SIGBUS in a round without one is a fault the driver got wrong.
    let unexplained = revoked
        .iter()
        .filter(|(from, to, _)| !unbinds.iter().any(|u| u >= from && u <= to))
        .count();
    if let Ok(w) = totals.why.lock() {
        for why in w.iter() {
            t.diag(format_args!("unbind/bind failed: {why}"));
        }
    }
    t.check(
        done >= calls || start.elapsed() >= bound,
        "the call budget or the time bound was spent",
        format_args!("{done} of {calls}"),
    );
    t.eq(
        killed,
        0,
        "every fuzzer round ran to its end (no signal, no panic)",
    );
    t.eq(
        unexplained,
        0,
        "revoked mappings were touched only in rounds during which a device was unbound",
    );
    t.check(
        f > 0 && fe == 0,
        "faults were armed, every request answered",
        format_args!("{f} armed, {fe} refused"),
    );
    t.check(
        r > 0 && re == 0,
        "devices were unbound and bound again under load, and came back",
        format_args!("{r} cycles, {re} failed"),
    );
    for (i, (d, b)) in devs.iter().zip(&before).enumerate() {
        let after = memory(d);
        if let (Ok((free0, _)), Ok((free1, sys1))) = (b, &after) {
            t.eq(
                *free1,
                *free0,
                &format!("{}: VRAM free is what it was before", d.bdf),
            );
            t.eq(*sys1, 0, &format!("{}: no system memory charged", d.bdf));
        } else {
            t.check(
                false,
                &format!("{}: memory after the soak", d.bdf),
                format_args!("{after:?}"),
            );
        }
        let j = job_works(d, i as u32 + 7);
        t.check(
            j.is_ok(),
            &format!("{}: a job's data reads back", d.bdf),
            format_args!("{j:?}"),
        );
    }
    t.finish();
}
