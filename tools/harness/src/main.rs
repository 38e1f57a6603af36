// SPDX-License-Identifier: GPL-2.0

//! `vela-harness`: the loop every Vela test runs through.
//!
//! It starts the device model, boots the Vela test kernel under QEMU (inside the build root,
//! whose QEMU has the vfio-user client), runs the guest test list, collects TAP, KUnit results
//! and the guest's kernel log, and judges the run: any test failure or any kernel report
//! (WARN, BUG, Oops, KASAN, lockdep, kmemleak, RCU stall) fails it. The last line it prints is
//! `N passed, N failed[, N skipped]`.

mod guest;
mod judge;
mod model;
mod vm;

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

/// What to do in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `make run`: load the driver and show what works.
    Demo,
    /// `make check`: every guest test.
    Check,
    /// `make bench`: the guest benchmarks (`vela bench`, `vela-prime-bench`).
    Bench,
}

/// Where things are; everything the build makes lives under `cache`.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    /// The build root (Debian trixie), also the guest's root file system.
    pub(crate) root: PathBuf,
    /// `$VELA_CACHE/work`, seen as `/cache` inside the build root.
    pub(crate) work: PathBuf,
    /// Directory of the host-side binaries (model, selftests).
    pub(crate) bin: PathBuf,
}

impl Paths {
    /// The path `p` (under `work`) as QEMU inside the build root sees it.
    pub(crate) fn in_root(&self, p: &std::path::Path) -> PathBuf {
        match p.strip_prefix(&self.work) {
            Ok(rest) => PathBuf::from("/cache").join(rest),
            Err(_) => p.to_path_buf(),
        }
    }
}

struct Options {
    mode: Mode,
    /// Extra guest test binaries (`--extra PATH`), run after the test list; for development.
    extra: Vec<PathBuf>,
    timeout: Duration,
    echo: vm::Echo,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: vela-harness run|check [--timeout SECS] [--verbose] [--extra GUEST-TEST-BIN]...\n\
         \n\
         run    boot a VM with the Vela device, load the driver, show it working\n\
         check  run every guest test and judge the kernel log\n\
         bench  run the guest benchmarks (vela bench, vela-prime-bench)\n\
         \n\
         Environment: VELA_CACHE (default /var/cache/vela), VELA_ACCEL (tcg|kvm, default tcg)"
    );
    ExitCode::from(2)
}

fn parse_args() -> Option<Options> {
    let mut args = std::env::args().skip(1);
    let mode = match args.next()?.as_str() {
        "run" => Mode::Demo,
        "check" => Mode::Check,
        "bench" => Mode::Bench,
        _ => return None,
    };
    let mut opts = Options {
        mode,
        extra: Vec::new(),
        timeout: Duration::from_secs(900),
        echo: match mode {
            Mode::Demo | Mode::Bench => vm::Echo::Guest,
            Mode::Check => vm::Echo::Quiet,
        },
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--timeout" => opts.timeout = Duration::from_secs(args.next()?.parse().ok()?),
            "--verbose" => opts.echo = vm::Echo::All,
            "--extra" => opts.extra.push(PathBuf::from(args.next()?)),
            _ => return None,
        }
    }
    Some(opts)
}

fn main() -> ExitCode {
    let Some(opts) = parse_args() else {
        return usage();
    };
    let cache = PathBuf::from(std::env::var("VELA_CACHE").unwrap_or("/var/cache/vela".into()));
    let bin = match std::env::current_exe() {
        Ok(exe) => exe.parent().map(PathBuf::from).unwrap_or_default(),
        Err(e) => {
            eprintln!("vela-harness: cannot find my own binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let paths = Paths {
        root: cache.join("root"),
        work: cache.join("work"),
        bin,
    };
    let start = Instant::now();
    match run(&paths, &opts) {
        Ok(report) => {
            println!("{}", report.render());
            eprintln!(
                "vela-harness: VM run took {:.1} s",
                start.elapsed().as_secs_f64()
            );
            if report.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("vela-harness: {e}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

fn run(paths: &Paths, opts: &Options) -> Result<judge::Report, String> {
    let devices = model::topology(opts.mode);
    let run_dir = guest::prepare(paths, opts.mode, &devices, &opts.extra)?;
    let accel = vm::pick_accel(paths, &run_dir);
    let models = model::start(paths, &run_dir, &devices)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bridge = {
        let (dir, stop) = (run_dir.clone(), stop.clone());
        std::thread::spawn(move || model::bridge(dir, stop))
    };
    let outcome = vm::boot(
        paths,
        &run_dir,
        &devices,
        accel,
        opts.mode,
        opts.timeout,
        opts.echo,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = bridge.join();
    drop(models);
    let outcome = outcome?;
    let taps = guest::collect(&run_dir, opts.mode, &opts.extra);
    let mut report = judge::judge(&outcome.serial, &taps);
    if outcome.timed_out {
        add_failure(&mut report, "vm/timed-out", outcome.tail(30));
    } else if !outcome.finished {
        add_failure(&mut report, "vm/unfinished", outcome.tail(30));
    }
    if opts.mode == Mode::Check {
        // The driver's KUnit suites run when vela.ko loads; if none reported, the module never
        // loaded or KUnit is off, and the run must not pass silently.
        for suite in guest::KUNIT_SUITES {
            let prefix = format!("kunit/{suite}/");
            if !report.results.iter().any(|r| r.name.starts_with(&prefix)) {
                add_failure(
                    &mut report,
                    &format!("kunit/{suite}"),
                    "suite did not run".into(),
                );
            }
        }
    }
    guest::cleanup(&run_dir, report.is_success());
    Ok(report)
}

fn add_failure(report: &mut judge::Report, name: &str, detail: String) {
    report.results.push(judge::TestResult {
        name: name.into(),
        status: judge::Status::Fail,
        detail: Some(detail),
    });
    report.summary = judge::Summary::new(&report.results, &report.findings);
}
