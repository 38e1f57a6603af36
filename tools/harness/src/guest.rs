// SPDX-License-Identifier: GPL-2.0

//! What runs in the guest: a directory shared over 9p holding vela.ko, the test binaries and
//! the script the guest's init execs; results come back through the same directory.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{model, vm::DONE_MARKER, Mode, Paths};

/// The guest binaries the harness ships into the VM.
const GUEST_BINS: &[&str] = &[
    "vela",
    "vela-bar0-smoke",
    "vela-probe-test",
    "vela-query-test",
    "vela-bo-test",
    "vela-vm-test",
    "vela-submit-test",
    "vela-sched-test",
    "vela-fuzz",
    "vela-reliability-test",
    "vela-raw-roundtrip",
    "vela-syncobj-test",
    "vela-mmu-test",
    "vela-prime-test",
    "vela-evict-test",
    "vela-importer-test",
    "vela-prime-bench",
    "vela-isolation-test",
    "vela-v4l2-test",
    "vela-soak",
    "vela-devloss-test",
    "vela-vgpu-test",
    "vela-vgpu-bench",
];

/// The guest binaries of rdma-tests/tests (C, built in the root by rdma-tests/build.sh into
/// [`Paths::rdma_tests_dir`]), and the pyverbs tests' scripts it installs there
/// (rdma-tests/pyverbs). One that is missing is not shipped; its test then fails.
const RDMA_BINS: &[&str] = &[
    "vela-rdma-test",
    "vela-rdma-regbench",
    "vela-rdma-bench",
    "vela-pyverbs-test",
    "vela-pyverbs-suite",
    "pyverbs-tests.zip",
    "test_vela_dmabuf.py",
    "vela-uapi-ioctls",
    // VM A's side of the pair (`crate::pair`); VM B's is shipped by `crate::pair`, as is
    // vela-rdma-bench's server end in a bench.
    "vela-rdma-pair",
];

/// The perftest tools vela-rdma-bench runs, shipped with it wherever it goes (the bench VM, VM
/// B of a bench): this checkout's build, which rdma-tests/build.sh copies beside the tests.
/// /run/vela/bin comes before the root's /usr/local/bin on the guest's PATH, and the root's
/// perftest is whatever checkout using the same cache installed last.
const PERFTEST_BINS: &[&str] = &["ib_write_bw", "ib_read_bw", "ib_write_lat"];

/// What a share gets of [`Paths::rdma_tests_dir`]: `rdma_bins`, and with vela-rdma-bench
/// the perftest tools it runs.
fn rdma_bins_to_ship(rdma_bins: &[&'static str]) -> Vec<&'static str> {
    let mut v = rdma_bins.to_vec();
    if rdma_bins.contains(&"vela-rdma-bench") {
        v.extend_from_slice(PERFTEST_BINS);
    }
    v
}

/// KUnit suites vela.ko carries (each must report when the module loads), and those of the
/// kernel crate abstractions `rust/patches` adds (they run at boot).
pub(crate) const KUNIT_SUITES: &[&str] = &[
    "rust_kernel_dma_fence",
    "rust_kernel_dma_resv",
    "rust_kernel_dma_resv_fences",
    "rust_kernel_workqueue_cancel",
    "rust_kernel_vvec_zeroed",
    "rust_kernel_page_ref_count",
    "vela_failures",
    "vela_identity",
    "vela_query",
    "vela_bo",
    "vela_mmu",
    "vela_submit",
    "vela_vm",
    "vela_sched",
    "vela_vgpu_config",
    "vela_partition",
];

/// The guest test list: (name, command). Each prints TAP on stdout.
const CHECK_TESTS: &[Test] = &[
    // Before vela.ko loads: the test drives the device from userspace.
    ("bar0-smoke", "vela-bar0-smoke"),
    ("probe", "vela-probe-test"),
    ("query", "vela-query-test"),
    ("bo", "vela-bo-test"),
    ("vm", "vela-vm-test"),
    ("submit", "vela-submit-test"),
    // More queues than hardware queues.
    ("sched", "vela-sched-test"),
    ("syncobj", "vela-syncobj-test"),
    ("mmu", "vela-mmu-test"),
    // A job reaches only what its owner bound: the kernel's VAs and fence slots fault it.
    ("isolation", "vela-isolation-test"),
    // A fixed seed makes a failure reproducible; several processes race on one device.
    // The corpus replayed, a short coverage-guided session, and random-argument calls from
    // three processes at the same time; bounded so the suite stays within a minute on the
    // fast kernel.
    (
        "fuzz",
        "vela-fuzz --seed 1 --seconds 15 --calls 30000 --procs 3",
    ),
    // Faults injected into the model through the harness's control bridge.
    ("reliability", "vela-reliability-test"),
    // VRAM pressure: eviction to system memory and back.
    ("evict", "vela-evict-test"),
    // Vela's exports as C kernel importers use them: pinned, vmapped, revoked by a reset.
    ("importer", "vela-importer-test"),
    // Vela's exports imported into V4L2 (vivid, vb2-vmalloc and vb2-dma-contig queues):
    // frames captured into them; VRAM_ONLY refused with a clean errno, no WARN.
    ("v4l2", "vela-v4l2-test"),
    // Soft-RoCE (rxe) memory regions on dma-bufs: Vela VRAM below the NIC's switch (P2P), the
    // device on its own root port (moved to system memory), a dma-heap and a udmabuf; bad
    // input; and revocation. Before prime: it unbinds and rebinds the P2P device.
    ("rdma", "vela-rdma-test"),
    // The same from Python on rdma-core's pyverbs: a VRAM buffer made with raw ioctls,
    // registered with DmaBufMR, RDMA WRITE and READ with a host MR over rxe0; then
    // rdma-core's own pyverbs tests (test_mr, test_qp, test_device) on rxe0, where the
    // patched librxe must do no worse than Debian's. One Python process for both
    // (Documentation/testing.rst, `vela-pyverbs-test`).
    ("pyverbs", "vela-pyverbs-test all"),
    // RDMA between this VM's VRAM (it is VM A) and VM B's, a VM the harness boots with this
    // one, their NICs joined (`crate::pair`). Needs vela0 bound (rdma rebinds it) and the
    // NIC as rdma left it (rxe0 on eth0, 10.0.0.1); before prime and devloss, which unbind
    // and remove devices.
    (crate::pair::PAIR, "vela-rdma-pair --client"),
    // vGPU instances (VFIO mdevs) on vela2, driven through the VFIO uAPI as a VMM would:
    // the legacy group and container path, and the cdev with iommufd.
    ("vgpu", "vela-vgpu-test"),
    // dma-buf sharing between the devices and with udmabuf and the system dma-heap. Last: it
    // unbinds and rebinds a device.
    ("prime", "vela-prime-test"),
    // Device loss: a model process killed and devices hot-removed and added again through
    // QEMU's monitor. Last of all: it destroys devices (and brings them back).
    ("devloss", "vela-devloss-test"),
];

/// Guest tests that only run when named (`make vm-test T=fuzz-grow`), never in a full check.
/// `fuzz-grow` grows vela-fuzz's corpus: a guided session of `VELA_FUZZ_MINUTES` (default
/// 10) whose new programs land in the results directory (`fuzz-corpus/`); `make fuzz-corpus`
/// runs it and copies them into tools/testing/fuzz/corpus.
const ON_REQUEST_TESTS: &[Test] = &[(
    "fuzz-grow",
    "vela-fuzz --seed $VELA_FUZZ_SEED --minutes $VELA_FUZZ_MINUTES --corpus-out $R/fuzz-corpus",
)];

/// One guest test: (name, command).
pub(crate) type Test = (&'static str, &'static str);

/// The guest test that loads vela.ko; every selection runs it.
pub(crate) const PROBE: &str = "probe";

/// The names of [`CHECK_TESTS`], then those of [`ON_REQUEST_TESTS`], for messages.
pub(crate) fn test_names() -> String {
    let names = |l: &[Test]| l.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",");
    format!(
        "{} (only when named: {})",
        names(CHECK_TESTS),
        names(ON_REQUEST_TESTS)
    )
}

/// `VELA_ONLY`, the selection of the edit loop: comma-separated test names.
pub(crate) fn only_from_env() -> Vec<String> {
    only_from(&std::env::var("VELA_ONLY").unwrap_or_default())
}

/// The names of a comma-separated list.
pub(crate) fn only_from(list: &str) -> Vec<String> {
    list.split(',').map(str::to_string).collect()
}

/// The tests of [`CHECK_TESTS`] a `check` runs: all of them when `names` is empty, else the
/// named ones and `probe` (which loads vela.ko), in the list's order, so `probe` comes before
/// all but `bar0-smoke` (which must run before vela.ko loads). The verdict of such a run covers
/// only those tests, the KUnit suites and the kernel log. An unknown name is an error.
pub(crate) fn select(names: &[String]) -> Result<Vec<Test>, String> {
    let wanted: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(bad) = wanted.iter().find(|n| {
        !CHECK_TESTS
            .iter()
            .chain(ON_REQUEST_TESTS)
            .any(|(name, _)| name == *n)
    }) {
        return Err(format!(
            "unknown guest test '{bad}'; the tests are {}",
            test_names()
        ));
    }
    Ok(CHECK_TESTS
        .iter()
        .filter(|(name, _)| wanted.is_empty() || *name == PROBE || wanted.contains(name))
        .chain(
            ON_REQUEST_TESTS
                .iter()
                .filter(|(name, _)| wanted.contains(name)),
        )
        .copied()
        .collect())
}

fn expectations(devices: &[model::DeviceSpec]) -> String {
    // The tests compare what the driver reports with what the model was started with.
    let d = &devices[0];
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    // VELA_PAIR_CORRUPT=1: vela-rdma-pair (both VMs of the pair) expects a flipped byte.
    let corrupt = if std::env::var("VELA_PAIR_CORRUPT").is_ok_and(|v| !v.is_empty() && v != "0") {
        "export VELA_PAIR_CORRUPT=1\n"
    } else {
        ""
    };
    format!(
        "export VELA_EXPECT_VRAM_MIB={} VELA_EXPECT_SERIAL={} VELA_EXPECT_QUEUES={} VELA_EXPECT_DEVICES={}\n\
         export VELA_FUZZ_MINUTES={} VELA_FUZZ_SEED={}\n{corrupt}",
        d.vram_mib,
        d.serial,
        d.queues,
        devices.len(),
        env("VELA_FUZZ_MINUTES", 10),
        env("VELA_FUZZ_SEED", now),
    )
}

const PROLOGUE: &str = r#"#!/bin/sh
# Generated by vela-harness; exec'd by /usr/local/sbin/vela-init in the guest.
export PATH=/run/vela/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/run/vela/results
mkdir -p $R
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
# Loopback: TCP to the guest's own addresses (perftest's and the RDMA tests' connection
# setup over rxe in one VM) goes through it.
ip link set lo up 2>/dev/null || true
echo "VELA-GUEST: up, kernel $(uname -r)"
# Boot-time kmemleak reports are not ours; only what the tests leave counts.
[ -w /sys/kernel/debug/kmemleak ] && echo clear > /sys/kernel/debug/kmemleak
# Each test's TAP, exit status and start and end (seconds since boot) come back in results/.
run() {
	name=$1; shift
	echo "VELA-GUEST: test $name: $*"
	read -r t0 _ </proc/uptime
	echo "$t0" >$R/$name.time
	"$@" >$R/$name.tap 2>&1
	echo $? >$R/$name.rc
	read -r t1 _ </proc/uptime
	echo "$t0 $t1" >$R/$name.time
	cat $R/$name.tap
}
"#;

const EPILOGUE: &str = r#"
if [ -w /sys/kernel/debug/kmemleak ]; then
	# kmemleak reports only objects older than 5 s: scan, wait, scan again.
	echo scan > /sys/kernel/debug/kmemleak; sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
fi
echo "@DONE@"
sync
# Synchronous: init must not run on (and exit) while the 9p root goes away.
exec /bin/busybox poweroff -f
"#;

const DEMO: &str = r#"
echo "VELA-GUEST: the device on the PCIe switch"
lspci -nn -d 1f5a: ; lspci -tv | head -20
echo "VELA-GUEST: insmod vela.ko"
insmod /run/vela/vela.ko
ls -l /dev/accel/
vela info
echo "VELA-GUEST: a compute kernel on the device, checked against the CPU"
vela run fma_f32 --count 65536
vela run crc32c --count 1048576
vela run matmul_f32 --count 64 --n 64 --k 64
vela stats
"#;

/// The driver's benchmarks of `bench` (not with `bench --rdma`).
const BENCH_DRIVER: &str = r#"
# The device's bare round trip first, while no driver is bound: the baseline of (b).
RAW=$(vela-raw-roundtrip | tee /dev/stderr | tail -n 1)
insmod /run/vela/vela.ko
vela info
vela bench --seconds 2 --live 100000 --max-seconds 600 --raw-ns "$RAW"
# dma-buf sharing between the two devices below the switch: the export/import/bind cycle
# against a system dma-heap buffer's, P2P COPY bandwidth against local, and moves to system
# memory (for the C test importer) and back against the copy engine.
insmod /run/vela/vela_test_importer.ko
vela-prime-bench --seconds 2
"#;

/// `bench --prime`: the sharing and move figures alone (`vela-prime-bench`).
const BENCH_PRIME: &str = r#"
insmod /run/vela/vela.ko
vela info
insmod /run/vela/vela_test_importer.ko
vela-prime-bench --seconds 2
"#;

/// A vGPU instance against the host's accel path on the same device (`bench`, and alone with
/// `bench --vgpu`).
const BENCH_VGPU: &str = r#"
# A vGPU instance (VFIO mdev) driven as a guest driver would, against the host's accel path on
# the same device (Documentation/vgpu.rst, Benchmark): COPY bandwidth and submit -> fence
# latency, as ratios.
vela-vgpu-bench --seconds 4
"#;

/// `bench --rdma` and `bench --vgpu`: the driver loaded, none of its other benchmarks.
const BENCH_LOAD: &str = r#"
insmod /run/vela/vela.ko
vela info
"#;

/// The RDMA benchmarks in one VM, then (`crate::pair::bench_a`) between two.
const BENCH_RDMA: &str = r#"
# RDMA over Soft-RoCE into VRAM (Documentation/rdma.rst): perftest with a VRAM MR against a
# host-memory MR and a system dma-heap MR, and registration against ibv_reg_mr; in
# loopback in this VM, then between this VM (A) and VM B.
vela-rdma-bench
"#;

/// The RDMA bench's repetitions, from the harness's environment into both VMs' scripts (the
/// server's loops must match the client's): `VELA_RDMA_BENCH_REPS` (bandwidth runs of each
/// kind) and `VELA_RDMA_BENCH_LAT_REPS` (latency runs), each a number from 1 to 99; anything
/// else is left out, and `vela-rdma-bench` keeps its defaults.
pub(crate) fn rdma_bench_env() -> String {
    rdma_bench_env_from(|name| std::env::var(name).ok())
}

fn rdma_bench_env_from(get: impl Fn(&str) -> Option<String>) -> String {
    ["VELA_RDMA_BENCH_REPS", "VELA_RDMA_BENCH_LAT_REPS"]
        .iter()
        .filter_map(|name| {
            let n = get(name)?.trim().parse::<u32>().ok()?;
            (1..100)
                .contains(&n)
                .then(|| format!("export {name}={n}\n"))
        })
        .collect()
}

/// Which benchmarks `bench` runs in the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Benches {
    /// All of them (`make bench`).
    All,
    /// The RDMA ones only, in one VM and between two (`make bench-rdma`).
    Rdma,
    /// The vGPU one only, in one VM (`make bench-vgpu`).
    Vgpu,
    /// `vela-prime-bench` only, in one VM (`make bench-prime`).
    Prime,
}

impl Benches {
    /// Whether the RDMA benchmarks run, the two-VM ones with VM B of the pair.
    pub(crate) fn rdma(self) -> bool {
        matches!(self, Benches::All | Benches::Rdma)
    }
}

fn extra_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A guest script: the common prologue (the `run` function, `$R`), the expectations of
/// `devices`, `body`, and the epilogue (kmemleak scans, the done marker, power off).
pub(crate) fn wrap_script(devices: &[model::DeviceSpec], body: &str) -> String {
    let mut s = String::from(PROLOGUE);
    s.push_str(&expectations(devices));
    s.push_str(body);
    s.push_str(&EPILOGUE.replace("@DONE@", DONE_MARKER));
    s
}

fn script(
    mode: Mode,
    benches: Benches,
    devices: &[model::DeviceSpec],
    tests: &[Test],
    extra: &[PathBuf],
) -> String {
    let mut s = String::from(PROLOGUE);
    s.push_str(&expectations(devices));
    match mode {
        Mode::Demo => {
            s.push_str(DEMO);
            // The pair last, its client explaining itself on the console.
            if crate::pair::wanted(mode, tests) {
                s.push_str(crate::pair::DEMO_A);
            }
        }
        Mode::Bench => {
            match benches {
                Benches::All => {
                    s.push_str(BENCH_DRIVER);
                    s.push_str(BENCH_VGPU);
                }
                Benches::Rdma => s.push_str(BENCH_LOAD),
                Benches::Vgpu => {
                    s.push_str(BENCH_LOAD);
                    s.push_str(BENCH_VGPU);
                }
                Benches::Prime => s.push_str(BENCH_PRIME),
            }
            if benches.rdma() {
                s.push_str(&rdma_bench_env());
                s.push_str(BENCH_RDMA);
                s.push_str(&crate::pair::bench_a());
            }
        }
        Mode::Check => {
            s.push_str("insmod /run/vela/vela_test_importer.ko\n");
            for (name, cmd) in tests {
                s.push_str(&format!("run {name} {cmd}\n"));
            }
        }
    }
    for e in extra {
        let name = extra_name(e);
        s.push_str(&format!("run {name} /run/vela/bin/{name}\n"));
    }
    s.push_str(&EPILOGUE.replace("@DONE@", DONE_MARKER));
    s
}

/// Makes the run directory and fills the share.
pub(crate) fn prepare(
    paths: &Paths,
    mode: Mode,
    benches: Benches,
    devices: &[model::DeviceSpec],
    tests: &[Test],
    extra: &[PathBuf],
) -> Result<PathBuf, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let run_dir = paths
        .work
        .join("run")
        .join(format!("{}-{stamp}", std::process::id()));
    let share = Share {
        bins: GUEST_BINS,
        rdma_bins: RDMA_BINS,
        importer: true,
        script: script(mode, benches, devices, tests, extra),
    };
    fill_share(paths, &run_dir, &share, extra)?;
    Ok(run_dir)
}

/// What a VM's share holds besides vela.ko and the results directory.
pub(crate) struct Share {
    /// Binaries from the harness's own directory.
    pub(crate) bins: &'static [&'static str],
    /// Binaries from rdma-tests/build.sh's output (one that is missing is not shipped).
    pub(crate) rdma_bins: &'static [&'static str],
    /// Whether to ship `vela_test_importer.ko`.
    pub(crate) importer: bool,
    /// The script the guest's init execs (`init.sh`).
    pub(crate) script: String,
}

/// Fills `run_dir/share` (making it): vela.ko, what `share` names, the extra binaries, and
/// an empty `results/`.
pub(crate) fn fill_share(
    paths: &Paths,
    run_dir: &Path,
    share: &Share,
    extra: &[PathBuf],
) -> Result<(), String> {
    let dir = run_dir.join("share");
    let err = |what: &str, e: std::io::Error| format!("{what}: {e}");
    fs::create_dir_all(dir.join("bin")).map_err(|e| err("run dir", e))?;
    fs::create_dir_all(dir.join("results")).map_err(|e| err("run dir", e))?;
    let ko = paths.module_dir().join("accel/vela.ko");
    fs::copy(&ko, dir.join("vela.ko")).map_err(|e| err(&ko.display().to_string(), e))?;
    if share.importer {
        let importer = paths
            .module_dir()
            .join("tools/testing/importer/vela_test_importer.ko");
        fs::copy(&importer, dir.join("vela_test_importer.ko"))
            .map_err(|e| err(&importer.display().to_string(), e))?;
    }
    for b in share.bins {
        let src = paths.bin.join(b);
        fs::copy(&src, dir.join("bin").join(b)).map_err(|e| err(&src.display().to_string(), e))?;
    }
    for b in rdma_bins_to_ship(share.rdma_bins) {
        let src = paths.rdma_tests_dir().join(b);
        if src.exists() {
            fs::copy(&src, dir.join("bin").join(b))
                .map_err(|e| err(&src.display().to_string(), e))?;
        } else {
            eprintln!(
                "vela-harness: {} is missing (rdma-tests/build.sh builds it); not shipped",
                src.display()
            );
        }
    }
    for e in extra {
        fs::copy(e, dir.join("bin").join(extra_name(e)))
            .map_err(|er| err(&e.display().to_string(), er))?;
    }
    let init = dir.join("init.sh");
    fs::write(&init, &share.script).map_err(|e| err("init.sh", e))?;
    set_executable(&init)
}

fn set_executable(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

/// The TAP each guest test wrote, by test name: `tests` (those of a check, or the pair's
/// client in the demo), then the extra binaries. A test that never ran gets a TAP stream
/// that says so, which fails it.
pub(crate) fn collect(run_dir: &Path, tests: &[Test], extra: &[PathBuf]) -> Vec<(String, String)> {
    let results = run_dir.join("share/results");
    let mut out = Vec::new();
    for (name, _) in tests {
        let tap = fs::read_to_string(results.join(format!("{name}.tap")))
            .unwrap_or_else(|_| format!("TAP version 13\n1..1\nnot ok 1 - {name} did not run\n"));
        out.push((name.to_string(), tap));
    }
    for e in extra {
        let name = extra_name(e);
        let tap = fs::read_to_string(results.join(format!("{name}.tap")))
            .unwrap_or_else(|_| format!("TAP version 13\n1..1\nnot ok 1 - {name} did not run\n"));
        out.push((name, tap));
    }
    out
}

/// How long guest test `name` ran: the start and end the script wrote to
/// `results/NAME.time` (seconds since boot, from `/proc/uptime`).
pub(crate) fn seconds(run_dir: &Path, name: &str) -> Option<std::time::Duration> {
    let text = fs::read_to_string(run_dir.join(format!("share/results/{name}.time"))).ok()?;
    parse_time(&text)
}

fn parse_time(text: &str) -> Option<std::time::Duration> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    let (start, end) = (it.next()??, it.next()??);
    std::time::Duration::try_from_secs_f64(end - start).ok()
}

/// Removes the run directory of a passing run unless VELA_KEEP is set; a failing run's is kept
/// for a look at serial.log and the model's log.
pub(crate) fn cleanup(run_dir: &Path, passed: bool) {
    if passed && std::env::var_os("VELA_KEEP").is_none() {
        let _ = fs::remove_dir_all(run_dir);
    } else {
        eprintln!("vela-harness: kept {}", run_dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tests: &[Test]) -> Vec<&str> {
        tests.iter().map(|(n, _)| *n).collect()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selection() {
        assert_eq!(select(&[]).unwrap(), CHECK_TESTS.to_vec());
        assert_eq!(select(&strings(&[""])).unwrap(), CHECK_TESTS.to_vec());
        // probe comes in by itself, and first.
        assert_eq!(
            names(&select(&strings(&["prime", "sched"])).unwrap()),
            ["probe", "sched", "prime"]
        );
        assert_eq!(
            names(&select(&strings(&["probe", "isolation"])).unwrap()),
            ["probe", "isolation"]
        );
        // bar0-smoke still runs before vela.ko loads.
        assert_eq!(
            names(&select(&strings(&["evict", "bar0-smoke"])).unwrap()),
            ["bar0-smoke", "probe", "evict"]
        );
        let e = select(&strings(&["prime", "nope"])).unwrap_err();
        assert!(e.contains("'nope'") && e.contains("sched"), "{e}");
    }

    #[test]
    fn check_script_runs_the_selection_and_times_each_test() {
        let devices = model::topology(Mode::Check);
        let tests = select(&strings(&["sched"])).unwrap();
        let s = script(Mode::Check, Benches::All, &devices, &tests, &[]);
        assert!(
            s.contains("run probe vela-probe-test\nrun sched vela-sched-test\n"),
            "{s}"
        );
        assert!(!s.contains("vela-prime-test"), "{s}");
        assert!(s.contains("$R/$name.time"), "{s}");
        let all = script(
            Mode::Check,
            Benches::All,
            &devices,
            &select(&[]).unwrap(),
            &[],
        );
        for (name, cmd) in CHECK_TESTS {
            assert!(all.contains(&format!("run {name} {cmd}\n")), "{name}");
        }
    }

    #[test]
    fn on_request_tests_run_only_when_named() {
        let all = select(&[]).unwrap();
        assert!(!all.iter().any(|(n, _)| *n == "fuzz-grow"));
        let grow = select(&strings(&["fuzz-grow"])).unwrap();
        let names: Vec<&str> = grow.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["probe", "fuzz-grow"]);
        let devices = model::topology(Mode::Check);
        let s = script(Mode::Check, Benches::All, &devices, &grow, &[]);
        assert!(s.contains("export VELA_FUZZ_MINUTES="), "{s}");
        assert!(s.contains("--corpus-out $R/fuzz-corpus"), "{s}");
    }

    #[test]
    fn rdma_runs_before_the_tests_that_unbind_and_remove() {
        let pos = |n: &str| CHECK_TESTS.iter().position(|(name, _)| *name == n);
        assert!(pos("rdma") < pos("prime") && pos("rdma") < pos("devloss"));
        assert!(pos("rdma").is_some());
        let s = script(
            Mode::Check,
            Benches::All,
            &model::topology(Mode::Check),
            &select(&strings(&["rdma"])).unwrap(),
            &[],
        );
        assert!(s.contains("run rdma vela-rdma-test\n"), "{s}");
    }

    #[test]
    fn the_pair_runs_after_rdma_and_before_the_tests_that_unbind_and_remove() {
        let pos = |n: &str| CHECK_TESTS.iter().position(|(name, _)| *name == n);
        let pair = pos(crate::pair::PAIR);
        assert!(pair.is_some());
        assert!(
            pos("rdma") < pair,
            "rdma leaves rxe0 on eth0 with A's address"
        );
        assert!(pair < pos("prime") && pair < pos("devloss"));
        assert!(RDMA_BINS.contains(&"vela-rdma-pair"));
        // T=pair: the test VM loads vela.ko (probe) and runs the client.
        let s = script(
            Mode::Check,
            Benches::All,
            &model::topology(Mode::Check),
            &select(&strings(&["pair"])).unwrap(),
            &[],
        );
        assert!(
            s.contains("run probe vela-probe-test\nrun pair vela-rdma-pair --client\n"),
            "{s}"
        );
        // The demo shows it last; without the pair (bench) nothing of it.
        let pair = select(&strings(&["pair"])).unwrap();
        let a = &pair[1..];
        let demo = script(
            Mode::Demo,
            Benches::All,
            &model::topology(Mode::Demo),
            a,
            &[],
        );
        assert!(demo.ends_with(&format!(
            "{}{}",
            crate::pair::DEMO_A,
            EPILOGUE.replace("@DONE@", DONE_MARKER)
        )));
        let demo = script(
            Mode::Demo,
            Benches::All,
            &model::topology(Mode::Demo),
            &[],
            &[],
        );
        assert!(
            demo.contains(crate::pair::DEMO_A),
            "run always shows the pair"
        );
        let bench = script(
            Mode::Bench,
            Benches::All,
            &model::topology(Mode::Bench),
            &[],
            &[],
        );
        assert!(
            !bench.contains("vela-rdma-pair"),
            "the bench's pair is vela-rdma-bench's"
        );
    }

    #[test]
    fn bench_runs_the_rdma_figures_in_one_vm_then_two() {
        let devices = model::topology(Mode::Bench);
        let all = script(Mode::Bench, Benches::All, &devices, &[], &[]);
        let one = all.find("\nvela-rdma-bench\n");
        let two = all.find(&crate::pair::bench_a());
        let driver = all.find("vela-prime-bench --seconds 2\n");
        assert!(driver.is_some() && driver < one && one < two, "{all}");
        assert!(all.contains("vela bench --seconds 2"), "{all}");
        let rdma = script(Mode::Bench, Benches::Rdma, &devices, &[], &[]);
        assert!(
            !rdma.contains("vela bench") && !rdma.contains("vela-prime-bench"),
            "{rdma}"
        );
        let insmod = rdma.find("insmod /run/vela/vela.ko\n");
        let one = rdma.find("\nvela-rdma-bench\n");
        assert!(insmod.is_some() && insmod < one, "{rdma}");
        assert!(rdma.contains(&crate::pair::bench_a()), "{rdma}");
        assert!(!rdma.contains("vela-vgpu-bench"), "{rdma}");
        assert!(RDMA_BINS.contains(&"vela-rdma-bench"));
        // vela-rdma-bench brings this checkout's perftest tools, in the bench VM and in VM B.
        for bins in [RDMA_BINS, &["vela-rdma-bench"]] {
            let shipped = rdma_bins_to_ship(bins);
            for t in PERFTEST_BINS {
                assert!(shipped.contains(t), "{t} not shipped with {bins:?}");
            }
        }
        assert_eq!(rdma_bins_to_ship(&["vela-rdma-pair"]), ["vela-rdma-pair"]);
    }

    #[test]
    fn bench_runs_the_vgpu_figures_after_the_driver_s_and_alone() {
        let devices = model::topology(Mode::Bench);
        let all = script(Mode::Bench, Benches::All, &devices, &[], &[]);
        let prime = all.find("vela-prime-bench --seconds 2\n");
        let vgpu = all.find("\nvela-vgpu-bench --seconds 4\n");
        let rdma = all.find("\nvela-rdma-bench\n");
        assert!(prime.is_some() && prime < vgpu && vgpu < rdma, "{all}");
        let only = script(Mode::Bench, Benches::Vgpu, &devices, &[], &[]);
        let insmod = only.find("insmod /run/vela/vela.ko\n");
        let vgpu = only.find("\nvela-vgpu-bench --seconds 4\n");
        assert!(insmod.is_some() && insmod < vgpu, "{only}");
        assert!(
            !only.contains("vela bench")
                && !only.contains("vela-prime-bench")
                && !only.contains("vela-rdma-bench")
                && !only.contains(&crate::pair::bench_a()),
            "{only}"
        );
        assert!(!Benches::Vgpu.rdma() && Benches::All.rdma() && Benches::Rdma.rdma());
        assert!(!Benches::Prime.rdma());
        let prime = script(Mode::Bench, Benches::Prime, &devices, &[], &[]);
        let importer = prime.find("insmod /run/vela/vela_test_importer.ko\n");
        let bench = prime.find("\nvela-prime-bench --seconds 2\n");
        assert!(importer.is_some() && importer < bench, "{prime}");
        assert!(
            !prime.contains("vela bench")
                && !prime.contains("vela-vgpu-bench")
                && !prime.contains("vela-rdma-bench"),
            "{prime}"
        );
        assert!(GUEST_BINS.contains(&"vela-vgpu-bench"));
    }

    #[test]
    fn a_collected_test_that_never_ran_fails() {
        let taps = collect(Path::new("/nonexistent"), &[("pair", "x")], &[]);
        assert_eq!(taps.len(), 1);
        assert!(taps[0].1.contains("not ok 1 - pair did not run"));
    }

    #[test]
    fn pyverbs_and_its_suite_run_in_a_check_before_pair_and_prime() {
        let pos = |n: &str| CHECK_TESTS.iter().position(|(name, _)| *name == n);
        assert!(pos("pyverbs").is_some() && pos("pyverbs") < pos(crate::pair::PAIR));
        assert!(pos("pair") < pos("prime"));
        assert!(RDMA_BINS.contains(&"vela-pyverbs-test"));
        assert!(RDMA_BINS.contains(&"pyverbs-tests.zip"));
        assert!(select(&[])
            .unwrap()
            .contains(&("pyverbs", "vela-pyverbs-test all")));
        let s = script(
            Mode::Check,
            Benches::All,
            &model::topology(Mode::Check),
            &select(&strings(&["pyverbs"])).unwrap(),
            &[],
        );
        assert!(s.contains("run pyverbs vela-pyverbs-test all\n"), "{s}");
        assert!(select(&strings(&["pyverbs-suite"])).is_err());
    }

    #[test]
    fn rdma_bench_repetitions_reach_the_guest_only_as_small_numbers() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            rdma_bench_env_from(move |n| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(env(&[]), "");
        assert_eq!(
            env(&[
                ("VELA_RDMA_BENCH_REPS", "1"),
                ("VELA_RDMA_BENCH_LAT_REPS", " 9")
            ]),
            "export VELA_RDMA_BENCH_REPS=1\nexport VELA_RDMA_BENCH_LAT_REPS=9\n"
        );
        assert_eq!(
            env(&[
                ("VELA_RDMA_BENCH_REPS", "0"),
                ("VELA_RDMA_BENCH_LAT_REPS", "3; reboot")
            ]),
            ""
        );
        assert_eq!(env(&[("VELA_RDMA_BENCH_REPS", "100")]), "");
    }

    #[test]
    fn test_times() {
        assert_eq!(
            parse_time("12.50 15.75\n"),
            Some(std::time::Duration::from_millis(3250))
        );
        assert_eq!(parse_time("12.50\n"), None, "a test that never ended");
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("15 12"), None);
    }
}
