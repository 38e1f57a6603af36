// SPDX-License-Identifier: GPL-2.0

//! vela-fuzz: a coverage-guided, structure-aware fuzzer of Vela's ABI, and a random-argument
//! one beside it. See Documentation/testing.rst, "vela-fuzz".
//!
//! 1. The corpus (built in from tools/testing/fuzz/corpus, or `--corpus DIR`) is replayed:
//!    programs of typed calls (prog.rs) run against the devices (exec.rs), their coverage of
//!    vela.ko read through KCOV (kcov.rs).
//! 2. A guided session (`--seconds`/`--minutes`): programs of the corpus are mutated and run;
//!    one that reaches a site of vela.ko nothing reached before joins the corpus (and, with
//!    `--corpus-out DIR`, is minimized and written there).
//! 3. Meanwhile (from the session on) `--procs` processes make `--calls` random-argument
//!    calls (random.rs), each judged against the header's rules.
//!
//! Then a real job's data is read back on the devices and VRAM must return to where it was.
//! Under `make soak` a revoked mapping's SIGBUS is survived and counted (revoked.rs).
//!
//! usage: vela-fuzz [--seed S] [--calls N] [--procs P] [--seconds N | --minutes N]
//!                  [--corpus DIR] [--corpus-out DIR] [--ko PATH]

mod exec;
mod kcov;
mod prog;
mod random;
mod revoked;

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use vela_runtime::{kernels::Rng, Access, Buffer, BufferFlags, Command, Device, Queue, Vm};
use vela_selftests::{accel_node, vela_pci_devices, Tap};

use crate::{
    exec::Env,
    kcov::{Kcov, Sites},
    prog::{Gen, Prog},
};

mod corpus {
    include!(concat!(env!("OUT_DIR"), "/corpus.rs"));
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn arg_str<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

/// Coverage so far: which sites were reached.
struct Cover {
    hit: Vec<bool>,
    n: usize,
}

impl Cover {
    fn new(total: usize) -> Self {
        Self {
            hit: vec![false; total],
            n: 0,
        }
    }
    /// Adds `sites`; returns those that were new.
    fn add(&mut self, sites: &[u32]) -> Vec<u32> {
        let mut new = Vec::new();
        for &s in sites {
            if let Some(h) = self.hit.get_mut(s as usize) {
                if !*h {
                    *h = true;
                    self.n += 1;
                    new.push(s);
                }
            }
        }
        new
    }
    fn line(&self) -> String {
        let m = self.hit.len();
        format!(
            "{} of {m} sites ({:.1}%)",
            self.n,
            if m == 0 {
                0.0
            } else {
                self.n as f64 * 100.0 / m as f64
            }
        )
    }
}

/// Removes calls from `p` while it still reaches every site of `need`: blocks of calls from
/// half the program down to single calls, at most 16 runs (a run costs a fraction of a second
/// under TCG, and early in a session most programs are kept).
fn minimize(env: &Env, kcov: Option<&Kcov>, p: &Prog, need: &[u32], rng: &mut Rng) -> Prog {
    let mut best = p.clone();
    let mut runs = 0;
    let mut block = best.calls.len() / 2;
    while block > 0 && runs < 16 {
        let mut end = best.calls.len();
        while end > 0 && runs < 16 {
            let start = end.saturating_sub(block);
            let mut cand = best.clone();
            for i in (start..end).rev() {
                prog::remove(&mut cand, i, rng);
            }
            runs += 1;
            if !cand.calls.is_empty() {
                running(cand.to_text());
                let o = exec::run(env, &cand, kcov);
                if need.iter().all(|s| o.sites.contains(s)) && o.unexpected.is_empty() {
                    best = cand;
                }
            }
            end = start;
        }
        block /= 2;
    }
    best
}

/// Sizes of every device's free VRAM and used system memory, in PCI order.
fn memory(devs: &[PathBuf]) -> Vec<(u64, u64)> {
    devs.iter()
        .map(|p| {
            Device::open(p)
                .ok()
                .and_then(|d| Some((d.memory().ok()?.vram_free, d.limits().ok()?.system_used)))
                .unwrap_or((0, 0))
        })
        .collect()
}

/// A FILL on `dev` read back through a CPU mapping.
fn real_job(dev: &Path, seed: u32) -> Result<(), String> {
    let s = |e: vela_runtime::Error| e.to_string();
    let d = Device::open(dev).map_err(s)?;
    let bo =
        Buffer::create(&d, 1 << 16, BufferFlags::VRAM | BufferFlags::CPU_VISIBLE).map_err(s)?;
    let vm = Vm::create(&d).map_err(s)?;
    let b = vm.bind_auto(&bo, Access::READ_WRITE).map_err(s)?;
    let q = Queue::create(&vm).map_err(s)?;
    q.run(
        &[Command::fill(b.va(), seed, 1 << 16)],
        Duration::from_secs(30),
    )
    .map_err(s)?;
    let got = bo.map().map_err(s)?.read_vec(0, 1 << 16).map_err(s)?;
    let want: Vec<u8> = (0..1 << 14).flat_map(|_| seed.to_le_bytes()).collect();
    vela_selftests::same(&got, &want)
}

/// What the guided process is running, for the watchdog.
static CURRENT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Notes the program about to run.
fn running(text: String) {
    if let Ok(mut c) = CURRENT.lock() {
        *c = text;
    }
    STARTED.store(now_s(), std::sync::atomic::Ordering::Relaxed);
}

/// A program stuck for a minute is a hang (every wait the fuzzer makes is bounded): print it
/// with the kernel stacks and states of every vela-fuzz task, and end the test.
fn watchdog() {
    std::thread::spawn(|| loop {
        std::thread::sleep(Duration::from_secs(5));
        let t0 = STARTED.load(std::sync::atomic::Ordering::Relaxed);
        if t0 == 0 || now_s() < t0 + 60 {
            continue;
        }
        let prog = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
        let mut out = format!("# HANG: a program has run for {} s:\n", now_s() - t0);
        for l in prog.lines() {
            out.push_str(&format!("#   {l}\n"));
        }
        for p in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let dir = p.path();
            if fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "vela-fuzz") {
                for t in fs::read_dir(dir.join("task"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    let stack = fs::read_to_string(t.path().join("stack")).unwrap_or_default();
                    out.push_str(&format!("# task {}: {}\n", t.path().display(), stat.trim()));
                    for l in stack.lines() {
                        out.push_str(&format!("#     {l}\n"));
                    }
                }
            }
        }
        println!("{out}not ok 999 - no program hangs");
        std::process::exit(1);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    revoked::install();
    if let (Some(calls), Some(seed)) = (arg(&args, "--child-calls"), arg(&args, "--child-seed")) {
        std::process::exit(random::child(calls, seed));
    }
    let mut t = Tap::new();
    let calls = arg(&args, "--calls").unwrap_or(0);
    let procs = arg(&args, "--procs").unwrap_or(2).max(1);
    let seconds = arg(&args, "--seconds").unwrap_or(0) + 60 * arg(&args, "--minutes").unwrap_or(0);
    let seed = arg(&args, "--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    watchdog();
    let ko = PathBuf::from(arg_str(&args, "--ko").unwrap_or("/run/vela/vela.ko"));
    let out_dir = arg_str(&args, "--corpus-out").map(PathBuf::from);
    t.diag(format_args!(
        "seed {seed}: corpus replay, a {seconds} s guided session, {calls} random calls over {procs} processes"
    ));

    let devs: Vec<PathBuf> = vela_pci_devices()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| accel_node(p).ok())
        .collect();
    if !t.check(!devs.is_empty(), "find the Vela devices", "none bound") {
        t.finish();
    }
    let before = memory(&devs);

    // Coverage: the sites come from vela.ko itself; a kernel without KCOV (the fast one)
    // builds vela.ko without them, and only then may coverage be missing.
    let sites = Sites::load(&ko, "vela");
    let kcov = match &sites {
        Ok(s) => {
            let k = Kcov::open();
            t.check(
                k.is_ok() && s.total() > 0,
                "KCOV open and vela.ko instrumented",
                format_args!("{} sites, KCOV: {:?}", s.total(), k.as_ref().err()),
            );
            for (sec, n) in &s.per_section {
                t.diag(format_args!("vela.ko {sec}: {n} coverage sites"));
            }
            k.ok()
        }
        Err(e) => {
            let kcov_there = Path::new("/sys/kernel/debug/kcov").exists();
            if kcov_there && !e.contains("not instrumented") {
                t.check(false, "read vela.ko's coverage sites", e);
            } else {
                t.skip("coverage of vela.ko", e);
            }
            None
        }
    };
    let env = match Env::new(devs.clone(), sites.ok()) {
        Ok(e) => e,
        Err(e) => {
            t.check(false, "set up", e);
            t.finish();
        }
    };
    let total = env.sites.as_ref().map_or(0, Sites::total);
    let mut cover = Cover::new(total);
    let kc = kcov.as_ref();

    // 1. The corpus.
    let mut corpus: Vec<Prog> = Vec::new();
    let texts: Vec<(String, String)> = match arg_str(&args, "--corpus") {
        Some(dir) => {
            let mut v: Vec<(String, String)> = fs::read_dir(dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.path().extension().is_some_and(|x| x == "prog"))
                        .filter_map(|e| {
                            Some((
                                e.file_name().to_string_lossy().into_owned(),
                                fs::read_to_string(e.path()).ok()?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
        None => corpus::CORPUS
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect(),
    };
    // The hand-written seeds first, so the coverage the kept programs add shows.
    let mut texts = texts;
    texts.sort_by_key(|(n, _)| (!n.starts_with("seed-"), n.clone()));
    let seeds = texts.iter().filter(|(n, _)| n.starts_with("seed-")).count();
    let start = Instant::now();
    let mut bad: Vec<String> = Vec::new();
    let mut replay_calls = 0;
    for (k, (name, text)) in texts.iter().enumerate() {
        if k == seeds && total > 0 {
            t.diag(format_args!(
                "coverage after the {seeds} hand-written seed programs: {}",
                cover.line()
            ));
        }
        match Prog::parse(text) {
            Ok(p) => {
                running(format!("{name}\n{}", p.to_text()));
                let t0 = Instant::now();
                let o = exec::run(&env, &p, kc);
                t.diag(format_args!(
                    "{name}: {} calls in {:.2} s (slowest: call {} {} {:.3} s; closes {:.3} s)",
                    o.calls,
                    t0.elapsed().as_secs_f64(),
                    o.slowest.1,
                    o.slowest.2,
                    o.slowest.0,
                    o.teardown
                ));
                replay_calls += o.calls;
                cover.add(&o.sites);
                bad.extend(o.unexpected.iter().map(|u| format!("{name}: {u}")));
                corpus.push(p);
            }
            Err(e) => bad.push(format!("{name}: {e}")),
        }
    }
    for b in bad.iter().filter(|b| !b.is_empty()).take(10) {
        t.diag(format_args!("UNEXPECTED {b}"));
    }
    t.check(
        bad.is_empty() && !texts.is_empty(),
        &format!(
            "corpus replay: {} programs, {replay_calls} calls in {:.1} s, no unexpected result",
            texts.len(),
            start.elapsed().as_secs_f64()
        ),
        format_args!("{} unexpected", bad.len()),
    );
    let replayed = cover.n;
    if total > 0 {
        t.diag(format_args!("coverage after the corpus: {}", cover.line()));
        // COVERAGE says "N of M": what the corpus reached when it was grown. The driver
        // changes under it and timing moves a few percent between runs, so a little less is
        // fine; much less means programs stopped reaching what they were kept for (or KCOV
        // lost sites).
        let recorded: Option<usize> = corpus::RECORDED
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok());
        match recorded {
            Some(r) if arg_str(&args, "--corpus").is_none() => {
                t.check(
                    replayed > 0 && replayed * 100 >= r * 80,
                    &format!("the corpus reaches at least 80% of its recorded {r} sites"),
                    format_args!("{replayed} sites"),
                );
            }
            _ => {
                t.check(replayed > 0, "the corpus reaches vela.ko", "0 sites");
            }
        }
    }

    // The random phase runs in other processes while this one is guided; not during the
    // replay, whose eviction programs would spend seconds evicting the random fuzzers'
    // buffers.
    let kids = match (calls, std::env::current_exe()) {
        (0, _) => Vec::new(),
        (_, Ok(exe)) => random::spawn(&exe, calls, procs, seed),
        (_, Err(e)) => {
            t.check(false, "find own executable", e);
            Vec::new()
        }
    };

    // 2. The guided session.
    let mut rng = Rng::new(seed);
    if corpus.is_empty() {
        let mut g = Gen { rng: &mut rng };
        corpus.push(g.generate(12));
    }
    let start = Instant::now();
    let mut runs = 0u64;
    let mut session_calls = 0u64;
    let mut kept = 0usize;
    let mut bad: Vec<String> = Vec::new();
    let mut written = 0usize;
    let mut slow = 0;
    if let Some(d) = &out_dir {
        let _ = fs::create_dir_all(d);
    }
    while start.elapsed() < Duration::from_secs(seconds) {
        let base = corpus[rng.below(corpus.len() as u64) as usize].clone();
        let other = corpus[rng.below(corpus.len() as u64) as usize].clone();
        let mut p = base;
        {
            let mut g = Gen { rng: &mut rng };
            if g.rng.below(20) == 0 {
                let len = 4 + g.rng.below(20) as usize;
                p = g.generate(len);
            }
            for _ in 0..1 + g.rng.below(4) {
                g.mutate(&mut p, Some(&other));
            }
        }
        p.calls.truncate(prog::MAX_CALLS);
        if p.race.is_some_and(|(r, _)| r >= p.calls.len()) {
            p.race = None;
        }
        running(p.to_text());
        let t0 = Instant::now();
        let o = exec::run(&env, &p, kc);
        let dt = t0.elapsed().as_secs_f64();
        if dt > 1.0 && slow < 10 {
            slow += 1;
            t.diag(format_args!(
                "slow program ({:.2} s; call {} {} {:.3} s, closes {:.3} s):\n{}",
                dt,
                o.slowest.1,
                o.slowest.2,
                o.slowest.0,
                o.teardown,
                p.to_text()
            ));
        }
        runs += 1;
        session_calls += o.calls;
        if !o.unexpected.is_empty() {
            for u in o.unexpected.iter().filter(|u| !u.is_empty()) {
                bad.push(u.clone());
            }
            t.diag(format_args!(
                "program with an unexpected result:\n{}",
                p.to_text()
            ));
            continue;
        }
        let new = cover.add(&o.sites);
        if new.is_empty() {
            continue;
        }
        kept += 1;
        if let Some(d) = &out_dir {
            let small = minimize(&env, kc, &p, &new, &mut rng);
            let name = format!("kept-{seed:016x}-{written:04}.prog");
            let text = format!(
                "# {} new sites; kept by vela-fuzz --seed {seed}\n{}",
                new.len(),
                small.to_text()
            );
            if fs::write(d.join(&name), text).is_ok() {
                written += 1;
            }
            corpus.push(small);
        } else {
            corpus.push(p);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    for b in bad.iter().take(10) {
        t.diag(format_args!("UNEXPECTED {b}"));
    }
    t.check(
        bad.is_empty(),
        &format!(
            "guided session: {runs} programs, {session_calls} calls ({:.0} calls/s), {kept} kept, no unexpected result",
            session_calls as f64 / secs.max(0.001)
        ),
        format_args!("{} unexpected", bad.len()),
    );
    if let Some(d) = &out_dir {
        // The whole corpus as replayed now: old programs and the new ones.
        let _ = fs::write(d.join("COVERAGE"), format!("{} of {total}\n", cover.n));
        t.diag(format_args!("wrote {written} programs to {}", d.display()));
    }
    drop(kcov);
    STARTED.store(0, std::sync::atomic::Ordering::Relaxed);

    // 3. The random processes.
    random::judge(&mut t, kids);

    // The devices still run real work.
    for (i, d) in devs.iter().take(2).enumerate() {
        let r = real_job(d, 0xa5c3_0000 + i as u32);
        t.check(
            r.is_ok(),
            &format!("{} still runs a FILL whose data reads back", d.display()),
            format_args!("{r:?}"),
        );
    }
    // Everything the fuzzers made is gone once their files are closed. Queues and jobs wind
    // down asynchronously (a destroyed queue's jobs may still wait for a dependency), so give
    // them time.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut after = memory(&devs);
    while after != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = memory(&devs);
    }
    t.check(
        after == before,
        "VRAM free and system memory used return to their start values",
        format_args!("(vram_free, system_used) per device: before {before:?}, after {after:?}"),
    );
    if total > 0 {
        t.diag(format_args!(
            "coverage: {} (corpus {replayed}, session +{})",
            cover.line(),
            cover.n - replayed
        ));
    } else {
        t.diag("coverage: unavailable (no KCOV in this kernel)");
    }
    if let Some(r) = revoked::report() {
        t.diag(r);
    }
    t.finish();
}
