// SPDX-License-Identifier: GPL-2.0

//! `vela-harness`: the loop every Vela test runs through.
//!
//! It starts the device model, boots the Vela test kernel under QEMU (inside the build root,
//! whose QEMU has the vfio-user client), runs the guest test list, collects TAP, KUnit results
//! and the guest's kernel log, and judges the run: any test failure or any kernel report
//! (WARN, BUG, Oops, KASAN, KFENCE, UBSAN, lockdep, kmemleak, RCU stall, hung task) fails it. The last line it prints is
//! `N passed, N failed[, N skipped]`.

mod conn;
mod guest;
mod judge;
mod model;
mod pair;
mod qemu;
mod results;
mod vm;

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::{error::ErrorKind, Args, CommandFactory, Parser, Subcommand};

/// What to do in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `make run`: load the driver and show what works.
    Demo,
    /// `make check`: every guest test.
    Check,
    /// `make bench`: the guest benchmarks (`vela bench`, `vela-prime-bench`,
    /// `vela-vgpu-bench`, `vela-rdma-bench` in one VM and, with VM B of the pair, between
    /// two).
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
    /// The test kernel's flavour (`VELA_KERNEL`, see tools/build/common.sh): its tree is
    /// `work/linux-<flavour>` and vela.ko is in `work/module-<flavour>`.
    pub(crate) kernel: String,
}

impl Paths {
    /// The test kernel's tree (tools/build/kernel.sh builds it in place).
    pub(crate) fn kernel_tree(&self) -> PathBuf {
        match std::env::var("VELA_KERNEL_TREE") {
            Ok(t) if !t.is_empty() => self.work.join(t),
            _ => self.work.join(format!("linux-{}", self.kernel)),
        }
    }

    /// The test kernel's image.
    pub(crate) fn bzimage(&self) -> PathBuf {
        self.kernel_tree().join("arch/x86/boot/bzImage")
    }

    /// The directory kbuild built vela.ko into (`MO=`): `VELA_MODULE_DIR` under `work`, as
    /// tools/build/module.sh names it.
    pub(crate) fn module_dir(&self) -> PathBuf {
        match std::env::var("VELA_MODULE_DIR") {
            Ok(d) if !d.is_empty() => self.work.join(d),
            _ => self.work.join(format!("module-{}", self.kernel)),
        }
    }

    /// Where rdma-tests/build.sh puts the RDMA tests it builds in the root (their Makefile's
    /// `O=`): `work/rdma-userspace/tests`, or `VELA_RDMA_TESTS_DIR` under `work` (a build of
    /// a work tree's tests of its own, beside the shared one).
    pub(crate) fn rdma_tests_dir(&self) -> PathBuf {
        match std::env::var("VELA_RDMA_TESTS_DIR") {
            Ok(d) if !d.is_empty() => self.work.join(d),
            _ => self.work.join("rdma-userspace/tests"),
        }
    }

    /// The path `p` (under `work`) as QEMU inside the build root sees it.
    pub(crate) fn in_root(&self, p: &std::path::Path) -> PathBuf {
        match p.strip_prefix(&self.work) {
            Ok(rest) => PathBuf::from("/cache").join(rest),
            Err(_) => p.to_path_buf(),
        }
    }
}

#[derive(Debug)]
struct Options {
    mode: Mode,
    /// What a bench runs (`--rdma`: the RDMA benchmarks only; `--vgpu`: the vGPU one only;
    /// `--prime`: vela-prime-bench only).
    benches: guest::Benches,
    /// The guest tests of a check (all of them, or those of `--tests` or `VELA_ONLY`).
    tests: Vec<guest::Test>,
    /// Extra guest test binaries (`--extra PATH`), run after the test list; for development.
    extra: Vec<PathBuf>,
    timeout: Duration,
    echo: vm::Echo,
}

const AFTER_HELP: &str = "\
Environment: VELA_CACHE (default /var/cache/vela), VELA_ACCEL (tcg|kvm, default: tcg
unless a KVM boot of this kernel was probed to work), VELA_ONLY (check: the guest tests
to run, as --tests), VELA_KEEP (keep the run directory of a passing run too),
VELA_PAIR_CPUS (vCPUs of VM B of the pair, default 1), VELA_PAIR_CORRUPT=1 (the pair's
checks expect a flipped byte: shows that they fail), VELA_MODULE_DIR and
VELA_RDMA_TESTS_DIR (where vela.ko and the RDMA tests were built, under
$VELA_CACHE/work).

Every run's results (TAP, KUnit, serial and kernel log, the verdict) are kept in
$VELA_CACHE/work/results/latest (a link to the newest of the timestamped directories).";

#[derive(Parser, Debug)]
#[command(
    name = "vela-harness",
    version,
    propagate_version = true,
    about = "Boots the Vela test kernel under QEMU with the device model and judges the run",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    mode: ModeArg,
}

#[derive(Subcommand, Debug)]
enum ModeArg {
    /// Boot a VM with the Vela device, load the driver, show it working
    Run(Common),
    /// Run every guest test (or those of --tests) and judge the kernel log
    #[command(after_help = format!("Guest tests, in the order they run: {}", guest::test_names()))]
    Check {
        #[command(flatten)]
        common: Common,
        /// Only these guest tests, comma-separated (probe, which loads vela.ko, is always
        /// run); overrides VELA_ONLY
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        tests: Vec<String>,
    },
    /// Run the guest benchmarks (vela bench, vela-prime-bench, vela-vgpu-bench,
    /// vela-rdma-bench in the VM and between it and VM B)
    Bench {
        #[command(flatten)]
        common: Common,
        /// Only the RDMA benchmarks (one VM, then two)
        #[arg(long)]
        rdma: bool,
        /// Only the vGPU benchmark (vela-vgpu-bench, one VM)
        #[arg(long, conflicts_with = "rdma")]
        vgpu: bool,
        /// Only the sharing and move benchmark (vela-prime-bench, one VM)
        #[arg(long, conflicts_with_all = ["rdma", "vgpu"])]
        prime: bool,
    },
    /// The soak (not part of check): probe, then vela-soak for at most --minutes; judged
    /// like a check
    Soak {
        #[command(flatten)]
        common: Common,
        /// Fuzzer calls in all
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
        /// Fuzzer processes per round
        #[arg(long, default_value_t = 8)]
        procs: u64,
        /// Stop fuzzing after this many minutes even if calls remain
        #[arg(long, default_value_t = 50)]
        minutes: u64,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// Give up on the VM after SECS seconds (a soak adds its --minutes)
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    timeout: u64,
    /// Echo the whole console (by default check echoes nothing, run and bench the guest's
    /// output and the kernel lines that matter)
    #[arg(long)]
    verbose: bool,
    /// One more guest test binary, run after the test list; repeatable (for development)
    #[arg(long, value_name = "GUEST-TEST-BIN")]
    extra: Vec<PathBuf>,
}

/// The options of the command line; `--help`, `--version` and usage errors (exit 2) end the
/// process here.
fn parse_args() -> Options {
    options(Cli::parse(), guest::only_from_env).unwrap_or_else(|e| {
        let mut cmd = Cli::command();
        cmd.build();
        let mut check = cmd.find_subcommand("check").cloned().unwrap_or(cmd);
        check.error(ErrorKind::InvalidValue, e).exit()
    })
}

/// What the parsed command line asks for; `vela_only` reads `VELA_ONLY`, which a check
/// without `--tests` uses. Errs with a message naming the bad argument.
fn options(cli: Cli, vela_only: impl FnOnce() -> Vec<String>) -> Result<Options, String> {
    let mut benches = guest::Benches::All;
    let (mode, common, tests) = match cli.mode {
        ModeArg::Run(c) => (Mode::Demo, c, Vec::new()),
        ModeArg::Check { common, tests } => {
            let picked = if tests.is_empty() {
                guest::select(&vela_only()).map_err(|e| format!("VELA_ONLY: {e}"))
            } else if tests.iter().all(|n| n.trim().is_empty()) {
                // An empty VELA_ONLY means every test; an explicit --tests must name one.
                Err("--tests: names no guest test".to_string())
            } else {
                guest::select(&tests).map_err(|e| format!("--tests: {e}"))
            };
            (Mode::Check, common, picked?)
        }
        ModeArg::Bench {
            common,
            rdma,
            vgpu,
            prime,
        } => {
            if rdma {
                benches = guest::Benches::Rdma;
            } else if vgpu {
                benches = guest::Benches::Vgpu;
            } else if prime {
                benches = guest::Benches::Prime;
            }
            (Mode::Bench, common, Vec::new())
        }
        ModeArg::Soak {
            mut common,
            calls,
            procs,
            minutes,
        } => {
            common.timeout += minutes * 60;
            // The command is built once per process, so leaking it is bounded.
            let cmd: &'static str = Box::leak(
                format!("vela-soak --calls {calls} --procs {procs} --minutes {minutes}")
                    .into_boxed_str(),
            );
            let mut tests = guest::select(&["probe".to_string()])?;
            tests.push(("soak", cmd));
            (Mode::Check, common, tests)
        }
    };
    Ok(Options {
        mode,
        benches,
        tests,
        extra: common.extra,
        timeout: Duration::from_secs(common.timeout),
        echo: if common.verbose {
            vm::Echo::All
        } else {
            match mode {
                Mode::Demo | Mode::Bench => vm::Echo::Guest,
                Mode::Check => vm::Echo::Quiet,
            }
        },
    })
}

fn main() -> ExitCode {
    let opts = parse_args();
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
        kernel: std::env::var("VELA_KERNEL").unwrap_or("strict".into()),
    };
    let start = Instant::now();
    match run(&paths, &opts) {
        Ok((report, rendered, kept)) => {
            println!("{rendered}");
            eprintln!(
                "vela-harness: VM run took {:.1} s",
                start.elapsed().as_secs_f64()
            );
            match kept {
                Ok(dir) => eprintln!("vela-harness: results and logs in {}", dir.display()),
                Err(e) => eprintln!("vela-harness: cannot keep the results: {e}"),
            }
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

/// The report, as printed, and where the results were kept.
type Outcome = (judge::Report, String, Result<PathBuf, String>);

fn run(paths: &Paths, opts: &Options) -> Result<Outcome, String> {
    // With the pair (`pair.rs`), the test VM is VM A and VM B boots next to it.
    // A bench without the RDMA benchmarks (`--vgpu`) has no use for VM B.
    let pair = pair::wanted(opts.mode, &opts.tests) && opts.benches.rdma();
    // The demo's pair client is judged as a check's tests are.
    let tests = match opts.mode {
        Mode::Demo if pair => vec![pair::DEMO_TEST],
        _ => opts.tests.clone(),
    };
    let devices = model::topology(opts.mode);
    let run_dir = guest::prepare(
        paths,
        opts.mode,
        opts.benches,
        &devices,
        &tests,
        &opts.extra,
    )?;
    let accel = vm::pick_accel(paths, &run_dir);
    let shape = if pair {
        vm::Shape::single().with_net(pair::net_a(paths, &run_dir))
    } else {
        vm::Shape::single()
    };
    let vm_b = pair.then(|| {
        // Two consoles at once: B shows only what its guest prints, and alarming kernel lines.
        let echo = match opts.echo {
            vm::Echo::Guest => vm::Echo::Program,
            e => e,
        };
        pair::start_b(paths, &run_dir, opts.mode, accel, opts.timeout, echo)
    });
    let test_vm = run_test_vm(paths, opts, &run_dir, &devices, &tests, accel, &shape);
    // VM B is judged (and never left running) whatever became of the test VM.
    let report_b = vm_b.map(pair::VmB::finish);
    // Whether guest tests ran, which the table of suites is for.
    let (mut report, with_suites) = test_vm?;
    if let Some(r) = report_b {
        report.absorb(r, pair::B);
    }
    // The per-suite table (guest tests, KUnit, kernel log) before the summary.
    let rendered = if with_suites || pair {
        report.render_with_suites()
    } else {
        report.render()
    };
    let mut kept = results::keep(paths, &run_dir, opts.mode, &report, &rendered);
    if pair {
        if let Ok(dir) = &kept {
            if let Err(e) = pair::keep_into(dir, &run_dir) {
                kept = Err(e);
            }
        }
    }
    guest::cleanup(&run_dir, report.is_success());
    Ok((report, rendered, kept))
}

/// Boots the test VM with the device model and judges it; says whether guest tests ran.
fn run_test_vm(
    paths: &Paths,
    opts: &Options,
    run_dir: &std::path::Path,
    devices: &[model::DeviceSpec],
    tests: &[guest::Test],
    accel: vm::Accel,
    shape: &vm::Shape,
) -> Result<(judge::Report, bool), String> {
    let models = std::sync::Arc::new(std::sync::Mutex::new(model::start(
        paths, run_dir, devices,
    )?));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bridge = {
        let (paths, dir, models, stop) = (
            paths.clone(),
            run_dir.to_path_buf(),
            models.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || model::bridge(paths, dir, models, stop))
    };
    let outcome = vm::boot(
        paths,
        run_dir,
        devices,
        accel,
        opts.mode,
        opts.timeout,
        opts.echo,
        shape,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = bridge.join();
    drop(models);
    let outcome = outcome?;
    let taps = guest::collect(run_dir, tests, &opts.extra);
    let mut report = judge::judge(&outcome.serial, &taps);
    for (name, _) in &taps {
        if let Some(secs) = guest::seconds(run_dir, name) {
            report.set_seconds(name, secs);
        }
    }
    if outcome.timed_out {
        report.add_failure("harness", "vm/timed-out", outcome.tail(30));
    } else if !outcome.finished {
        report.add_failure("harness", "vm/unfinished", outcome.tail(30));
    }
    if opts.mode == Mode::Check {
        // The driver's KUnit suites run when vela.ko loads; if none reported, the module never
        // loaded or KUnit is off, and the run must not pass silently.
        for suite in guest::KUNIT_SUITES {
            let prefix = format!("kunit/{suite}/");
            if !report.results.iter().any(|r| r.name.starts_with(&prefix)) {
                report.add_failure(
                    "kunit",
                    &format!("kunit/{suite}"),
                    "suite did not run".into(),
                );
            }
        }
    }
    Ok((report, !taps.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &str, vela_only: &str) -> Result<Options, String> {
        let cli = Cli::try_parse_from(std::iter::once("vela-harness").chain(args.split(' ')))
            .map_err(|e| e.to_string())?;
        options(cli, || guest::only_from(vela_only))
    }

    fn names(o: &Options) -> Vec<&str> {
        o.tests.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_and_their_options() {
        let o = opts("check", "").unwrap();
        assert_eq!(o.mode, Mode::Check);
        assert_eq!(o.tests.len(), guest::select(&[]).unwrap().len());
        assert_eq!(o.timeout, Duration::from_secs(1800));
        assert_eq!(o.echo, vm::Echo::Quiet);
        assert!(o.extra.is_empty());
        let o = opts("run --timeout 60 --verbose --extra /a/x --extra /b/y", "").unwrap();
        assert_eq!(o.mode, Mode::Demo);
        assert!(o.tests.is_empty());
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert_eq!(o.echo, vm::Echo::All);
        assert_eq!(o.extra, [PathBuf::from("/a/x"), PathBuf::from("/b/y")]);
        let o = opts("bench", "").unwrap();
        assert_eq!((o.mode, o.echo), (Mode::Bench, vm::Echo::Guest));
        assert_eq!(o.benches, guest::Benches::All);
        let o = opts("bench --rdma", "").unwrap();
        assert_eq!((o.mode, o.benches), (Mode::Bench, guest::Benches::Rdma));
        assert!(opts("check --rdma", "").is_err(), "--rdma is bench's alone");
        let o = opts("bench --vgpu", "").unwrap();
        assert_eq!((o.mode, o.benches), (Mode::Bench, guest::Benches::Vgpu));
        assert!(opts("bench --vgpu --rdma", "").is_err(), "one or the other");
        let o = opts("bench --prime", "").unwrap();
        assert_eq!((o.mode, o.benches), (Mode::Bench, guest::Benches::Prime));
        assert!(opts("bench --prime --vgpu", "").is_err(), "one at a time");
        let o = opts("soak --minutes 10 --calls 5000", "prime").unwrap();
        assert_eq!(names(&o), ["probe", "soak"]);
        assert_eq!(
            o.tests[1].1,
            "vela-soak --calls 5000 --procs 8 --minutes 10"
        );
        assert_eq!(o.timeout, Duration::from_secs(1800 + 600));
    }

    #[test]
    fn test_selection() {
        assert_eq!(
            names(&opts("check --tests prime,sched", "").unwrap()),
            ["probe", "sched", "prime"]
        );
        assert_eq!(
            names(&opts("check --tests prime --tests=sched", "").unwrap()),
            ["probe", "sched", "prime"]
        );
        assert_eq!(
            names(&opts("check", "probe,isolation").unwrap()),
            ["probe", "isolation"]
        );
        // --tests wins over VELA_ONLY.
        assert_eq!(
            names(&opts("check --tests mmu", "isolation").unwrap()),
            ["probe", "mmu"]
        );
        let e = opts("check --tests prime,nope", "").unwrap_err();
        assert!(e.starts_with("--tests: unknown guest test 'nope'"), "{e}");
        let e = opts("check", "nope").unwrap_err();
        assert!(e.starts_with("VELA_ONLY: unknown guest test 'nope'"), "{e}");
        let e = opts("check --tests ,", "").unwrap_err();
        assert!(e.contains("--tests"), "{e}");
        // --tests is check's alone.
        assert!(opts("run --tests prime", "").is_err());
    }

    #[test]
    fn usage_errors_and_help() {
        for bad in [
            "",
            "nope",
            "check --bogus",
            "check --timeout x",
            "run --extra",
        ] {
            let e = Cli::try_parse_from(
                std::iter::once("vela-harness").chain(bad.split(' ').filter(|a| !a.is_empty())),
            )
            .expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
        for ok in [
            "--help",
            "--version",
            "run --help",
            "check --help",
            "bench --help",
            "bench --rdma --help",
            "check --version",
        ] {
            let e = Cli::try_parse_from(std::iter::once("vela-harness").chain(ok.split(' ')))
                .expect_err(ok);
            assert_eq!(e.exit_code(), 0, "{ok}: {e}");
        }
    }
}
