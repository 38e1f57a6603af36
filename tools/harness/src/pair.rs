// SPDX-License-Identifier: GPL-2.0

//! The pair: RDMA between two machines' VRAM. The test VM is VM A; one more VM, VM B, boots
//! at the same time as it, with its own device model (one Vela device behind the PCIe switch
//! of its NIC), its own run directory and share, and one vCPU, so its boot overlaps the test
//! VM's run. The two NICs are joined by a QEMU datagram link over two unix sockets, which
//! needs no root. VM A runs `vela-rdma-pair --client` as the guest test `pair`, VM B
//! `--server` (rdma-tests/tests/vela-rdma-pair.c) once VM A has started it. VM B is judged
//! as the test VM is: its TAP (suite `pair-b`), its KUnit suites, its kernel log; its report
//! is merged into the run's under `pair-b`.
//!
//! `bench` boots VM B too, for the two-VM RDMA figures: when the test VM starts them (its
//! `results/rdma-pair-bench.time` appears), B boots and runs `vela-rdma-bench --serve`, the
//! server end of each perftest run in a fixed order, and the test VM runs
//! `vela-rdma-bench --pair 10.0.0.2`, the client end of the same runs
//! (rdma-tests/tests/vela-rdma-bench). B's TAP says which runs it served.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{
    guest, judge, model,
    vm::{self, Cut, Net, Shape},
    Mode, Paths,
};

/// The name that selects the pair (`make vm-test T=pair`), and VM A's guest test.
pub(crate) const PAIR: &str = "pair";

/// VM B's suite and run directory (under the test VM's).
pub(crate) const B: &str = "pair-b";

/// The NICs' MAC addresses: VM A's (the test VM's) and VM B's.
const MAC_A: &str = "52:54:00:12:34:01";
const MAC_B: &str = "52:54:00:12:34:02";

/// Each NIC's end of the datagram link, in the test VM's run directory.
const SOCK_A: &str = "net-a.sock";
const SOCK_B: &str = "net-b.sock";

/// Files the harness makes in VM B's share: VM A has started its `pair` test (B's server
/// starts then), or VM A has powered off (B stops waiting for it).
const A_READY: &str = "a-ready";
const A_GONE: &str = "a-gone";

/// How long VM B may run on after VM A powered off: the end of its server's run (its last
/// check comes after A's), the kmemleak scans and the power-off. VM B's timeout is otherwise
/// the run's: it waits through the whole of the test VM's.
const GRACE: Duration = Duration::from_secs(300);

/// How often the harness looks for VM A's start of `pair` (its `results/pair.time`).
const POLL: Duration = Duration::from_millis(500);

/// vCPUs of VM B: one, so that B and the test VM's two compete less for a 2-core host under
/// TCG (measured: Documentation/testing.rst). `VELA_PAIR_CPUS` overrides it.
const CPUS: u32 = 1;

fn cpus(env: Option<String>) -> u32 {
    env.and_then(|v| v.parse().ok())
        .filter(|&n| (1..=8).contains(&n))
        .unwrap_or(CPUS)
}

/// Whether the pair runs: in `run` (the demo) and `bench` (the two-VM RDMA figures) always,
/// in `check` when selected (a full check selects it).
pub(crate) fn wanted(mode: Mode, tests: &[guest::Test]) -> bool {
    match mode {
        Mode::Demo | Mode::Bench => true,
        Mode::Check => tests.iter().any(|(n, _)| *n == PAIR),
    }
}

/// The test VM's NIC when the pair runs: VM A's end of the link. `top` is the test VM's run
/// directory, where both sockets live.
pub(crate) fn net_a(paths: &Paths, top: &Path) -> Net {
    link(paths, top, SOCK_A, SOCK_B, MAC_A)
}

fn link(paths: &Paths, top: &Path, local: &str, remote: &str, mac: &str) -> Net {
    let at = |s: &str| paths.in_root(&top.join(s)).display().to_string();
    Net::Dgram {
        local: at(local),
        remote: at(remote),
        mac: mac.to_string(),
    }
}

/// VM B: `cpus` vCPUs, its NIC sending to VM A's socket.
fn shape_b(paths: &Paths, top: &Path, cpus: u32) -> Shape {
    Shape {
        cpus,
        net: link(paths, top, SOCK_B, SOCK_A, MAC_B),
    }
}

/// VM B's device: `vela0`, behind the switch with the NIC, as in the test VM.
fn devices(mode: Mode) -> Vec<model::DeviceSpec> {
    model::topology(mode)
        .into_iter()
        .filter(|d| d.port.starts_with("sw0_"))
        .take(1)
        .collect()
}

/// The demo's pair client, as the test it is judged as ([`DEMO_A`] runs it).
pub(crate) const DEMO_TEST: guest::Test = (PAIR, "vela-rdma-pair --client --explain");

/// The test VM's part of the bench that VM B serves: its start (`results/NAME.time`) boots B.
pub(crate) const BENCH_TEST: &str = "rdma-pair-bench";

/// VM B's address, which `vela-rdma-bench --serve` takes (as `vela-rdma-pair --server` does).
const B_ADDR: &str = "10.0.0.2";

/// What the test VM's script of `bench` does last: the two-VM RDMA figures, after the one-VM
/// ones (whose rxe0 on eth0, 10.0.0.1, it reuses). Its start boots VM B, which serves it;
/// the client waits for B's boot (at most 300 s for the first run).
pub(crate) fn bench_a() -> String {
    format!(
        "read -r t0 _ </proc/uptime\n\
         echo \"$t0\" >$R/{BENCH_TEST}.time\n\
         vela-rdma-bench --pair {B_ADDR}\n\
         read -r t1 _ </proc/uptime\n\
         echo \"$t0 $t1\" >$R/{BENCH_TEST}.time\n"
    )
}

/// What the test VM's script of `run` does last: the demo's client, its plain words on the
/// console and its TAP (judged) into the results, timed as a test is.
pub(crate) const DEMO_A: &str = r#"
echo "VELA-GUEST: now two machines: this VM (A) and VM B, each with a Vela device behind the PCIe switch of its NIC, the NICs joined by one network; RDMA from one VM's VRAM into the other's"
echo "VELA-GUEST: VM A: vela-rdma-pair --client --explain"
read -r t0 _ </proc/uptime
echo "$t0" >$R/pair.time
vela-rdma-pair --client --explain 2>&1 >$R/pair.tap
echo $? >$R/pair.rc
read -r t1 _ </proc/uptime
echo "$t0 $t1" >$R/pair.time
"#;

/// VM B's script after the common prologue: vela.ko loads (its KUnit suites run) while VM
/// A is still busy with its other tests, then B waits for VM A to start `pair` and runs the
/// server; if VM A powers off first, B's TAP says so.
fn body_b(mode: Mode) -> String {
    if mode == Mode::Bench {
        // B boots only once the test VM has started the part it serves: no waiting. It
        // stops serving once the test VM has powered off.
        return format!(
            "insmod /run/vela/vela.ko\n\
             {}run {B} vela-rdma-bench --serve --stop-file /run/vela/{A_GONE}\n",
            guest::rdma_bench_env()
        );
    }
    let server = if mode == Mode::Demo {
        // The plain words on the console, the TAP (judged) into the results.
        format!(
            "echo \"VELA-GUEST: VM B: vela-rdma-pair --server --explain\"\n\
             read -r t0 _ </proc/uptime\n\
             vela-rdma-pair --server --explain 2>&1 >$R/{B}.tap\n\
             echo $? >$R/{B}.rc\n\
             read -r t1 _ </proc/uptime\n\
             echo \"$t0 $t1\" >$R/{B}.time\n"
        )
    } else {
        format!("run {B} vela-rdma-pair --server\n")
    };
    format!(
        "insmod /run/vela/vela.ko\n\
         echo \"VELA-GUEST: VM B waits for VM A to start its pair test\"\n\
         while [ ! -e /run/vela/{A_READY} ] && [ ! -e /run/vela/{A_GONE} ]; do sleep 1; done\n\
         if [ -e /run/vela/{A_READY} ]; then\n\
         {server}\
         else\n\
         printf 'TAP version 13\\n1..1\\nnot ok 1 - VM A powered off before it started its pair test\\n' >$R/{B}.tap\n\
         fi\n"
    )
}

/// In a check, VM B boots when the test VM starts the first of these tests, not with the
/// test VM: its boot then overlaps the suites just before `pair` rather than the whole run.
/// A second TCG guest from the start slowed every earlier suite on a 2-core host (the
/// strict check's guest run took 515 s with B booted at the start, `fuzz` 99 s against 55).
const B_BOOTS_AT: &[&str] = &["importer", "v4l2", "rdma", "pyverbs", PAIR];

/// The tests whose start boots VM B: in a check [`B_BOOTS_AT`]; in a bench the part B
/// serves, so that B's boot takes nothing from the test VM's other figures.
fn boots_at(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::Bench => &[BENCH_TEST],
        _ => B_BOOTS_AT,
    }
}

/// Waits until the test VM has started one of [`boots_at`] (its `run` writes
/// `results/NAME.time` first) or has powered off.
fn wait_for_overlap(top: &Path, mode: Mode, a_done: &AtomicBool) {
    let started = |name: &&str| top.join(format!("share/results/{name}.time")).exists();
    while !a_done.load(Ordering::Relaxed) && !boots_at(mode).iter().any(started) {
        thread::sleep(POLL);
    }
}

/// VM B while it runs: its thread, and what the harness tells it.
pub(crate) struct VmB {
    vm: JoinHandle<Result<vm::Outcome, String>>,
    watcher: JoinHandle<()>,
    a_done: Arc<AtomicBool>,
    cut: Arc<Cut>,
    dir: PathBuf,
    mode: Mode,
    cpus: u32,
    start: Instant,
}

/// Boots VM B in `top`/pair-b next to the test VM (whose run directory is `top`): at once for
/// `make run`, in a check or a bench once the test VM reaches [`boots_at`].
/// It waits for the test VM at most `timeout` (the run's), and [`VmB::finish`] brings that
/// forward once the test VM has powered off.
pub(crate) fn start_b(
    paths: &Paths,
    top: &Path,
    mode: Mode,
    accel: vm::Accel,
    timeout: Duration,
    echo: vm::Echo,
) -> VmB {
    let ncpus = cpus(std::env::var("VELA_PAIR_CPUS").ok());
    let dir = top.join(B);
    let a_done = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(Cut::default());
    let vm = {
        let (paths, top, dir, cut) = (paths.clone(), top.to_path_buf(), dir.clone(), cut.clone());
        let a_done = a_done.clone();
        thread::spawn(move || {
            if mode != Mode::Demo {
                wait_for_overlap(&top, mode, &a_done);
            }
            let devices = devices(mode);
            let share = guest::Share {
                bins: &["vela"],
                rdma_bins: if mode == Mode::Bench {
                    &["vela-rdma-bench"]
                } else {
                    &["vela-rdma-pair"]
                },
                importer: false,
                script: guest::wrap_script(&devices, &body_b(mode)),
            };
            guest::fill_share(&paths, &dir, &share, &[])?;
            let models = model::start(&paths, &dir, &devices)?;
            let outcome = vm::boot_until(
                &paths,
                &dir,
                &devices,
                accel,
                mode,
                timeout,
                echo,
                &shape_b(&paths, &top, ncpus),
                &cut,
            );
            drop(models);
            outcome
        })
    };
    // VM A's `run` writes results/pair.time when the test starts.
    let watcher = {
        let (ready, share, a_done) = (
            top.join(format!("share/results/{PAIR}.time")),
            dir.join("share"),
            a_done.clone(),
        );
        thread::spawn(move || {
            while !a_done.load(Ordering::Relaxed) {
                if ready.exists()
                    && fs::create_dir_all(&share).is_ok()
                    && fs::write(share.join(A_READY), "VM A started its pair test\n").is_ok()
                {
                    return;
                }
                thread::sleep(POLL);
            }
        })
    };
    VmB {
        vm,
        watcher,
        a_done,
        cut,
        dir,
        mode,
        cpus: ncpus,
        start: Instant::now(),
    }
}

impl VmB {
    /// Once the test VM has powered off: tells VM B (which stops waiting, if it still is),
    /// gives it [`GRACE`] to finish, and judges it.
    pub(crate) fn finish(self) -> judge::Report {
        self.a_done.store(true, Ordering::Relaxed);
        let _ = self.watcher.join();
        let _ = fs::write(self.dir.join("share").join(A_GONE), "VM A powered off\n");
        self.cut.at(Instant::now() + GRACE);
        let outcome = self
            .vm
            .join()
            .unwrap_or_else(|_| Err("VM B's thread panicked".into()));
        eprintln!(
            "vela-harness: VM B of the pair ({} vCPU) ran {:.1} s",
            self.cpus,
            self.start.elapsed().as_secs_f64()
        );
        judge_b(&self.dir, self.mode, outcome)
    }
}

/// Judges VM B as the test VM is judged: its TAP, KUnit and kernel log, a timeout or an
/// unfinished script, and (in `check`) KUnit suites that never reported.
fn judge_b(dir: &Path, mode: Mode, outcome: Result<vm::Outcome, String>) -> judge::Report {
    let tap = fs::read_to_string(dir.join(format!("share/results/{B}.tap")))
        .unwrap_or_else(|_| format!("TAP version 13\n1..1\nnot ok 1 - {B} did not run\n"));
    let taps = [(B.to_string(), tap)];
    let mut report = match &outcome {
        Ok(o) => judge::judge(&o.serial, &taps),
        Err(_) => judge::judge("", &taps),
    };
    if let Some(secs) = guest::seconds(dir, B) {
        report.set_seconds(B, secs);
    }
    match outcome {
        Ok(o) if o.timed_out => report.add_failure("harness", "vm/timed-out", o.tail(30)),
        Ok(o) if !o.finished => report.add_failure("harness", "vm/unfinished", o.tail(30)),
        Ok(_) => {}
        Err(e) => report.add_failure("harness", "vm/not-started", e),
    }
    if mode == Mode::Check {
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
    report
}

/// Copies VM B's results (TAP, exit status, times), serial log, model log and QEMU
/// arguments from the test VM's run directory `top` into `kept/pair-b`.
pub(crate) fn keep_into(kept: &Path, top: &Path) -> Result<(), String> {
    {
        let from = top.join(B);
        let to = kept.join(B);
        fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        let results = fs::read_dir(from.join("share/results"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path());
        let logs = ["serial.log", "model.log", "qemu.args"].map(|f| from.join(f));
        for f in results.chain(logs).filter(|p| p.is_file()) {
            let dest: PathBuf = to.join(f.file_name().unwrap_or_default());
            fs::copy(&f, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Paths {
        Paths {
            root: "/c/root".into(),
            work: "/c/work".into(),
            bin: "/c/bin".into(),
            kernel: "fast".into(),
        }
    }

    fn dgram(net: Net) -> (String, String, String) {
        match net {
            Net::Dgram { local, remote, mac } => (local, remote, mac),
            n => panic!("no datagram link: {n:?}"),
        }
    }

    #[test]
    fn the_test_vm_and_vm_b_send_to_each_other() {
        let top = Path::new("/c/work/run/7-1");
        let (al, ar, am) = dgram(net_a(&paths(), top));
        let b = shape_b(&paths(), top, 1);
        assert_eq!(b.cpus, 1);
        let (bl, br, bm) = dgram(b.net);
        // As QEMU in the build root sees them (work is /cache there).
        assert_eq!(al, "/cache/run/7-1/net-a.sock");
        assert_eq!(bl, "/cache/run/7-1/net-b.sock");
        assert_eq!((ar, br), (bl, al));
        assert_ne!(am, bm);
        assert_eq!(am, "52:54:00:12:34:01");
        assert_eq!(bm, "52:54:00:12:34:02");
        assert_eq!(cpus(None), 1);
        assert_eq!(cpus(Some("2".into())), 2);
        assert_eq!(cpus(Some("0".into())), 1);
        assert_eq!(cpus(Some("x".into())), 1);
    }

    #[test]
    fn the_test_vm_with_the_pair_is_vm_a() {
        let top = Path::new("/c/work/run/7-1");
        let shape = Shape::single().with_net(net_a(&paths(), top));
        assert_eq!(
            shape.cpus,
            Shape::single().cpus,
            "A keeps the test VM's vCPUs"
        );
        assert_eq!(dgram(shape.net).2, MAC_A);
    }

    #[test]
    fn vm_b_has_one_vela_behind_the_nics_switch() {
        for mode in [Mode::Check, Mode::Demo] {
            let d = devices(mode);
            assert_eq!(d.len(), 1);
            assert_eq!((d[0].name, d[0].port), ("vela0", "sw0_dn0"));
        }
    }

    #[test]
    fn vm_b_waits_for_vm_a_then_serves() {
        let s = body_b(Mode::Check);
        assert!(s.starts_with("insmod /run/vela/vela.ko\n"), "{s}");
        let wait = s.find("while [ ! -e /run/vela/a-ready ] && [ ! -e /run/vela/a-gone ]");
        let serve = s.find("run pair-b vela-rdma-pair --server\n");
        assert!(wait.is_some() && serve.is_some() && wait < serve, "{s}");
        assert!(
            s.contains(
                "not ok 1 - VM A powered off before it started its pair test\\n' >$R/pair-b.tap\n"
            ),
            "{s}"
        );
        let demo = body_b(Mode::Demo);
        assert!(
            demo.contains("vela-rdma-pair --server --explain 2>&1 >$R/pair-b.tap\n"),
            "{demo}"
        );
        assert!(demo.contains(">$R/pair-b.time"), "{demo}");
        assert!(DEMO_A.contains("vela-rdma-pair --client --explain 2>&1 >$R/pair.tap\n"));
        // VM A's start, which the harness watches for, comes before the client.
        let started = DEMO_A.find("echo \"$t0\" >$R/pair.time");
        let client = DEMO_A.find("vela-rdma-pair --client --explain 2>&1");
        assert!(started.is_some() && started < client);
        let full = guest::wrap_script(&devices(Mode::Check), &s);
        assert!(full.contains("VELA_EXPECT_DEVICES=1\n"), "{full}");
        assert!(full.contains(crate::vm::DONE_MARKER), "{full}");
    }

    #[test]
    fn when_the_pair_runs() {
        let sel = |n: &[&str]| {
            guest::select(&n.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert!(wanted(Mode::Check, &sel(&["pair"])));
        assert!(wanted(Mode::Check, &sel(&[])), "a full check");
        assert!(wanted(Mode::Check, &sel(&["rdma", "pair"])));
        assert!(!wanted(Mode::Check, &sel(&["prime"])));
        assert!(wanted(Mode::Demo, &[]));
        assert!(wanted(Mode::Bench, &[]), "the two-VM RDMA figures");
    }

    #[test]
    fn in_a_bench_vm_b_boots_for_the_two_vm_figures_and_serves_them() {
        assert_eq!(boots_at(Mode::Bench), [BENCH_TEST]);
        assert_eq!(
            boots_at(Mode::Check),
            B_BOOTS_AT,
            "a check's B is as before"
        );
        let s = body_b(Mode::Bench);
        assert_eq!(
            s,
            "insmod /run/vela/vela.ko\n\
             run pair-b vela-rdma-bench --serve --stop-file /run/vela/a-gone\n"
        );
        // The test VM marks its start, which boots B, before its client runs.
        let a = bench_a();
        let started = a.find("echo \"$t0\" >$R/rdma-pair-bench.time\n");
        let client = a.find("vela-rdma-bench --pair 10.0.0.2\n");
        assert!(started.is_some() && started < client, "{a}");
        assert!(
            a.ends_with("echo \"$t0 $t1\" >$R/rdma-pair-bench.time\n"),
            "{a}"
        );
        let full = guest::wrap_script(&devices(Mode::Bench), &s);
        assert!(full.contains("VELA_EXPECT_DEVICES=1\n"), "{full}");
    }

    #[test]
    fn a_bench_vm_b_boots_when_the_test_vm_starts_the_two_vm_figures() {
        let top = std::env::temp_dir().join(format!("vela-pair-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        fs::create_dir_all(top.join("share/results")).unwrap();
        let a_done = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (top, a_done) = (top.clone(), a_done.clone());
            thread::spawn(move || wait_for_overlap(&top, Mode::Bench, &a_done))
        };
        // What boots a check's B does not boot a bench's.
        fs::write(top.join("share/results/rdma.time"), "1.0\n").unwrap();
        thread::sleep(POLL * 2);
        assert!(!waiter.is_finished());
        fs::write(top.join("share/results/rdma-pair-bench.time"), "9.0\n").unwrap();
        for _ in 0..20 {
            if waiter.is_finished() {
                break;
            }
            thread::sleep(POLL);
        }
        assert!(waiter.is_finished());
        let _ = waiter.join();
        let _ = fs::remove_dir_all(&top);
    }

    #[test]
    fn vm_b_that_never_ran_fails() {
        let r = judge_b(
            Path::new("/nonexistent"),
            Mode::Check,
            Err("no model".into()),
        );
        assert!(!r.is_success());
        assert!(r.results.iter().any(|t| t.name == "vm/not-started"));
        assert!(r.results.iter().any(|t| t.name.starts_with("pair-b/")));
        assert!(r.results.iter().any(|t| t.name == "kunit/vela_bo"));
    }

    #[test]
    fn vm_b_is_told_when_vm_a_starts_the_pair_and_when_it_is_gone() {
        // No QEMU here: VM B's thread fails to start (no vela.ko), the watcher and the
        // files it makes are what is tested.
        let top = std::env::temp_dir().join(format!("vela-pair-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        fs::create_dir_all(top.join("share/results")).unwrap();
        let p = Paths {
            root: top.join("root"),
            work: top.clone(),
            bin: top.join("bin"),
            kernel: "none".into(),
        };
        let b = start_b(
            &p,
            &top,
            Mode::Check,
            vm::Accel::Tcg,
            Duration::from_secs(5),
            vm::Echo::Quiet,
        );
        thread::sleep(POLL * 2);
        assert!(
            !top.join("pair-b/share/a-ready").exists(),
            "A has not started yet"
        );
        fs::write(top.join("share/results/pair.time"), "12.0\n").unwrap();
        let ready = top.join("pair-b/share/a-ready");
        for _ in 0..20 {
            if ready.exists() {
                break;
            }
            thread::sleep(POLL);
        }
        assert!(ready.exists());
        let r = b.finish();
        assert!(top.join("pair-b/share/a-gone").exists());
        assert!(
            r.results.iter().any(|t| t.name == "vm/not-started"),
            "{r:?}"
        );
        let _ = fs::remove_dir_all(&top);
    }
}
