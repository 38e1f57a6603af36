// SPDX-License-Identifier: GPL-2.0

//! The pair: RDMA between two machines' VRAM. Two more VMs, booted at the same time after the
//! test VM (or instead of it, when only the pair was asked for), each with its own device
//! model (one Vela device behind the PCIe switch of its NIC), its own run directory and
//! share, and one vCPU. Their NICs are joined by a QEMU datagram link over two unix sockets,
//! which needs no root. VM A runs `vela-rdma-pair --client`, VM B `--server`
//! (rdma-tests/tests/vela-rdma-pair.c). Each VM is judged as the test VM is: its TAP (suite
//! `pair-a`, `pair-b`), its KUnit suites, its kernel log; the reports are merged into the
//! run's under the side's name.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    guest, judge, model,
    vm::{self, Net, Shape},
    Mode, Paths,
};

/// The name that selects the pair (`make vm-test T=pair`).
pub(crate) const PAIR: &str = "pair";

/// The most the pair's VMs may take (less when the run's `--timeout` is shorter). Measured:
/// see Documentation/testing.rst, "Two machines".
const TIMEOUT: Duration = Duration::from_secs(900);

/// vCPUs per VM of the pair: two VMs of one vCPU each on a 2-core host, rather than two of
/// two competing for the same cores under TCG (measured: Documentation/testing.rst).
/// `VELA_PAIR_CPUS` overrides it.
const CPUS: u32 = 1;

fn cpus(env: Option<String>) -> u32 {
    env.and_then(|v| v.parse().ok())
        .filter(|&n| (1..=8).contains(&n))
        .unwrap_or(CPUS)
}

/// One VM of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Side {
    /// Its suite (and run directory) name.
    pub(crate) name: &'static str,
    /// How the demo calls it.
    label: &'static str,
    /// vela-rdma-pair's role.
    role: &'static str,
    /// Its NIC's MAC address.
    mac: &'static str,
    /// Its end of the datagram link, in the run directory.
    socket: &'static str,
}

/// VM A (10.0.0.1) writes into and reads from VM B's (10.0.0.2) VRAM.
pub(crate) const SIDES: [Side; 2] = [
    Side {
        name: "pair-a",
        label: "A",
        role: "--client",
        mac: "52:54:00:12:34:01",
        socket: "net-a.sock",
    },
    Side {
        name: "pair-b",
        label: "B",
        role: "--server",
        mac: "52:54:00:12:34:02",
        socket: "net-b.sock",
    },
];

/// The tests of the test VM, and whether the pair runs: in `run` (the demo) always, in
/// `check` when selected.
pub(crate) fn split(mode: Mode, tests: &[guest::Test]) -> (Vec<guest::Test>, bool) {
    let pair = match mode {
        Mode::Demo => true,
        Mode::Check => tests.iter().any(|(n, _)| *n == PAIR),
        Mode::Bench => false,
    };
    let rest = tests.iter().filter(|(n, _)| *n != PAIR).copied().collect();
    (rest, pair)
}

/// Whether the test VM runs too: not when only the pair was asked for (`probe` comes with
/// every selection, but the pair's VMs load vela.ko and report its KUnit suites themselves).
pub(crate) fn needs_test_vm(mode: Mode, pair: bool, rest: &[guest::Test], extra: bool) -> bool {
    mode != Mode::Check || !pair || extra || rest.iter().any(|(n, _)| *n != guest::PROBE)
}

/// Each VM's device: `vela0`, behind the switch with the NIC.
fn devices(mode: Mode) -> Vec<model::DeviceSpec> {
    model::topology(mode)
        .into_iter()
        .filter(|d| d.port.starts_with("sw0_"))
        .take(1)
        .collect()
}

/// The VM of `side`: one vCPU, its NIC sending to the other side's socket. `top` is the
/// directory both sockets live in.
fn shape(paths: &Paths, top: &Path, side: &Side, cpus: u32) -> Shape {
    let other = SIDES.iter().find(|s| s.name != side.name).unwrap_or(side);
    let at = |s: &Side| paths.in_root(&top.join(s.socket)).display().to_string();
    Shape {
        cpus,
        net: Net::Dgram {
            local: at(side),
            remote: at(other),
            mac: side.mac.to_string(),
        },
    }
}

/// What the guest script of `side` does after the common prologue. `corrupt` asks
/// vela-rdma-pair to expect a flipped byte (`VELA_PAIR_CORRUPT`, to see its checks fail).
fn body(mode: Mode, side: &Side, corrupt: bool) -> String {
    let mut s = String::new();
    if corrupt {
        s.push_str("export VELA_PAIR_CORRUPT=1\n");
    }
    s.push_str("insmod /run/vela/vela.ko\n");
    let (name, role) = (side.name, side.role);
    if mode == Mode::Demo {
        // The plain words on the console, the TAP (judged) into the results.
        s.push_str(&format!(
            "echo \"VELA-GUEST: VM {}: vela-rdma-pair {role} --explain\"\n\
             read -r t0 _ </proc/uptime\n\
             vela-rdma-pair {role} --explain 2>&1 >$R/{name}.tap\n\
             echo $? >$R/{name}.rc\n\
             read -r t1 _ </proc/uptime\n\
             echo \"$t0 $t1\" >$R/{name}.time\n",
            side.label
        ));
    } else {
        s.push_str(&format!("run {name} vela-rdma-pair {role}\n"));
    }
    s
}

/// Boots both VMs of the pair in `top`/pair-a and `top`/pair-b and judges each: one report per
/// side, in [`SIDES`]' order.
pub(crate) fn run(
    paths: &Paths,
    top: &Path,
    mode: Mode,
    accel: vm::Accel,
    timeout: Duration,
    echo: vm::Echo,
) -> Vec<(Side, judge::Report)> {
    let timeout = timeout.min(TIMEOUT);
    let devices = devices(mode);
    let ncpus = cpus(std::env::var("VELA_PAIR_CPUS").ok());
    let corrupt = std::env::var("VELA_PAIR_CORRUPT").is_ok_and(|v| !v.is_empty() && v != "0");
    let start = std::time::Instant::now();
    let outcomes: Vec<Result<vm::Outcome, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = SIDES
            .iter()
            .map(|side| {
                let devices = &devices;
                s.spawn(move || {
                    let dir = top.join(side.name);
                    let share = guest::Share {
                        bins: &["vela"],
                        rdma_bins: &["vela-rdma-pair"],
                        importer: false,
                        script: guest::wrap_script(devices, &body(mode, side, corrupt)),
                    };
                    guest::fill_share(paths, &dir, &share, &[])?;
                    let models = model::start(paths, &dir, devices)?;
                    let outcome = vm::boot(
                        paths,
                        &dir,
                        devices,
                        accel,
                        mode,
                        timeout,
                        echo,
                        &shape(paths, top, side, ncpus),
                    );
                    drop(models);
                    outcome
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the VM's thread panicked".into()))
            })
            .collect()
    });
    eprintln!(
        "vela-harness: the pair's two VMs ({ncpus} vCPU each) took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    SIDES
        .iter()
        .zip(outcomes)
        .map(|(side, o)| (*side, judge_side(side, &top.join(side.name), mode, o)))
        .collect()
}

/// Judges one VM of the pair as the test VM is judged: its TAP, KUnit and kernel log, a
/// timeout or an unfinished script, and (in `check`) KUnit suites that never reported.
fn judge_side(
    side: &Side,
    dir: &Path,
    mode: Mode,
    outcome: Result<vm::Outcome, String>,
) -> judge::Report {
    let tap = fs::read_to_string(dir.join(format!("share/results/{}.tap", side.name)))
        .unwrap_or_else(|_| {
            format!(
                "TAP version 13\n1..1\nnot ok 1 - {} did not run\n",
                side.name
            )
        });
    let taps = [(side.name.to_string(), tap)];
    let mut report = match &outcome {
        Ok(o) => judge::judge(&o.serial, &taps),
        Err(_) => judge::judge("", &taps),
    };
    if let Some(secs) = guest::seconds(dir, side.name) {
        report.set_seconds(side.name, secs);
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

/// Copies each side's results (TAP, exit status, times), serial log, model log and QEMU
/// arguments from the run directory `top` into `kept/pair-a` and `kept/pair-b`.
pub(crate) fn keep_into(kept: &Path, top: &Path) -> Result<(), String> {
    for side in &SIDES {
        let from = top.join(side.name);
        let to = kept.join(side.name);
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

    #[test]
    fn the_two_nics_send_to_each_other() {
        let top = Path::new("/c/work/run/7-1");
        let [a, b] = SIDES.map(|s| shape(&paths(), top, &s, 1));
        assert_eq!((a.cpus, b.cpus), (1, 1));
        assert_eq!(cpus(None), 1);
        assert_eq!(cpus(Some("2".into())), 2);
        assert_eq!(cpus(Some("0".into())), 1);
        assert_eq!(cpus(Some("x".into())), 1);
        let Net::Dgram {
            local: al,
            remote: ar,
            mac: am,
        } = a.net
        else {
            panic!("A has no datagram link: {:?}", a.net)
        };
        let Net::Dgram {
            local: bl,
            remote: br,
            mac: bm,
        } = b.net
        else {
            panic!("B has no datagram link: {:?}", b.net)
        };
        // As QEMU in the build root sees them (work is /cache there).
        assert_eq!(al, "/cache/run/7-1/net-a.sock");
        assert_eq!(bl, "/cache/run/7-1/net-b.sock");
        assert_eq!((ar, br), (bl, al));
        assert_ne!(am, bm);
        assert_eq!(am, "52:54:00:12:34:01");
        assert_eq!(bm, "52:54:00:12:34:02");
    }

    #[test]
    fn each_vm_has_one_vela_behind_the_nics_switch() {
        for mode in [Mode::Check, Mode::Demo] {
            let d = devices(mode);
            assert_eq!(d.len(), 1);
            assert_eq!((d[0].name, d[0].port), ("vela0", "sw0_dn0"));
        }
    }

    #[test]
    fn scripts_run_the_client_and_the_server() {
        let [a, b] = SIDES;
        assert_eq!(
            body(Mode::Check, &a, false),
            "insmod /run/vela/vela.ko\nrun pair-a vela-rdma-pair --client\n"
        );
        let s = body(Mode::Check, &b, true);
        assert!(s.starts_with("export VELA_PAIR_CORRUPT=1\n"), "{s}");
        assert!(s.ends_with("run pair-b vela-rdma-pair --server\n"), "{s}");
        let demo = body(Mode::Demo, &b, false);
        assert!(
            demo.contains("vela-rdma-pair --server --explain 2>&1 >$R/pair-b.tap\n"),
            "{demo}"
        );
        assert!(demo.contains(">$R/pair-b.time"), "{demo}");
        let full = guest::wrap_script(&devices(Mode::Check), &body(Mode::Check, &a, false));
        assert!(full.contains("VELA_EXPECT_DEVICES=1\n"), "{full}");
        assert!(full.contains(crate::vm::DONE_MARKER), "{full}");
    }

    #[test]
    fn when_the_pair_and_the_test_vm_run() {
        let sel = |n: &[&str]| {
            guest::select(&n.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let (rest, pair) = split(Mode::Check, &sel(&["pair"]));
        assert!(pair);
        assert_eq!(rest, sel(&["probe"]));
        assert!(!needs_test_vm(Mode::Check, pair, &rest, false));
        assert!(needs_test_vm(Mode::Check, pair, &rest, true), "--extra");
        let (rest, pair) = split(Mode::Check, &sel(&["pair", "prime"]));
        assert!(pair && needs_test_vm(Mode::Check, pair, &rest, false));
        assert!(!rest.iter().any(|(n, _)| *n == PAIR));
        // A full check: everything, the pair after the test VM.
        let (rest, pair) = split(Mode::Check, &sel(&[]));
        assert!(pair && needs_test_vm(Mode::Check, pair, &rest, false));
        let (rest, pair) = split(Mode::Check, &sel(&["prime"]));
        assert!(!pair && needs_test_vm(Mode::Check, pair, &rest, false));
        assert_eq!(split(Mode::Demo, &[]), (vec![], true));
        assert!(needs_test_vm(Mode::Demo, true, &[], false));
        assert_eq!(split(Mode::Bench, &[]), (vec![], false));
    }

    #[test]
    fn a_side_that_never_ran_fails() {
        let r = judge_side(
            &SIDES[0],
            Path::new("/nonexistent"),
            Mode::Check,
            Err("no model".into()),
        );
        assert!(!r.is_success());
        assert!(r.results.iter().any(|t| t.name == "vm/not-started"));
        assert!(r.results.iter().any(|t| t.name.starts_with("pair-a/")));
        assert!(r.results.iter().any(|t| t.name == "kunit/vela_bo"));
    }
}
