// SPDX-License-Identifier: GPL-2.0

//! Booting the test VM: QEMU from the build root, run inside it (chroot, private mount
//! namespace), the build root itself as the guest's read-only 9p root.

use std::{
    io::{Read, Write},
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread::{self, sleep},
    time::{Duration, Instant},
};

use crate::{model, model::DeviceSpec, Paths};

/// How much of the console to echo while the VM runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Echo {
    /// Nothing (the report comes at the end).
    Quiet,
    /// Guest output and the kernel lines that matter: Vela's, and anything alarming.
    Guest,
    /// Guest output and alarming kernel lines only (the pair's demo, two VMs at once).
    Program,
    /// Every byte.
    All,
}

impl Echo {
    fn wants(self, line: &str) -> bool {
        match self {
            Echo::Quiet => false,
            Echo::All => true,
            Echo::Guest => {
                !line.starts_with('[')
                    || [
                        "vela",
                        "WARNING",
                        "BUG",
                        "Oops",
                        "panic",
                        "Call Trace",
                        "error",
                    ]
                    .iter()
                    .any(|k| line.contains(k))
            }
            // Not "panic": the command line has panic=-1.
            Echo::Program => {
                !line.starts_with('[')
                    || ["WARNING:", "BUG:", "Oops", "Kernel panic", "Call Trace"]
                        .iter()
                        .any(|k| line.contains(k))
            }
        }
    }
}

/// What the guest prints as its last line when it ran its whole test list.
pub(crate) const DONE_MARKER: &str = "VELA-GUEST-DONE";

/// The result of one boot.
pub(crate) struct Outcome {
    /// Everything the guest printed on its serial console.
    pub(crate) serial: String,
    pub(crate) timed_out: bool,
    pub(crate) finished: bool,
}

impl Outcome {
    pub(crate) fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.serial.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Mounts what QEMU needs inside the build root, then execs it there (`$3`, see
/// [`crate::qemu`]). The mounts live in a private namespace and vanish with QEMU.
const CHROOT_SCRIPT: &str = r#"
R=$1; W=$2; Q=$3; shift 3
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --bind "$W" "$R/cache"
exec chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin "$Q" "$@"
"#;

/// The accelerator QEMU uses: `tcg` or `kvm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Picks the accelerator. Some machines' `/dev/kvm` (a paravirtual KVM) cannot run a stock
/// kernel: the decompressor hangs or an instruction fails to emulate. So TCG is the default
/// and KVM is used only where a probe boot of this very kernel with KVM reached userspace and
/// powered off. The verdict is cached next to the kernel, keyed by its build stamp.
/// `VELA_ACCEL=tcg|kvm` overrides the probe.
pub(crate) fn pick_accel(paths: &Paths, run_dir: &Path) -> Accel {
    match std::env::var("VELA_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let stamp =
        std::fs::read_to_string(paths.kernel_tree().join(".vela-stamp")).unwrap_or_default();
    let cache = paths.work.join(format!("kvm-probe-{}", paths.kernel));
    if let Ok(c) = std::fs::read_to_string(&cache) {
        if let Some((s, verdict)) = c.rsplit_once(' ') {
            if s.trim() == stamp.trim() {
                return if verdict.trim() == "kvm" {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                };
            }
        }
    }
    let probe_dir = run_dir.join("kvm-probe");
    let works = std::fs::create_dir_all(probe_dir.join("share"))
        .and_then(|_| {
            std::fs::write(
                probe_dir.join("share/init.sh"),
                format!("#!/bin/sh\necho {DONE_MARKER}\nexec /bin/busybox poweroff -f\n"),
            )
        })
        .ok()
        .and_then(|_| {
            boot(
                paths,
                &probe_dir,
                &[],
                Accel::Kvm,
                crate::Mode::Check,
                // A KVM that works boots even the strict kernel to userspace in seconds; one
                // that cannot stops its vCPU and never finishes, so this is what a fresh
                // machine pays once per kernel build. A KVM slower than this only costs
                // speed: the run falls back to TCG.
                Duration::from_secs(15),
                Echo::Quiet,
                &Shape::single(),
            )
            .ok()
        })
        .is_some_and(|o| o.finished);
    let accel = if works { Accel::Kvm } else { Accel::Tcg };
    eprintln!(
        "vela-harness: KVM probe: {}",
        if works {
            "KVM works, using it"
        } else {
            "KVM cannot boot this kernel, using TCG"
        }
    );
    let _ = std::fs::write(&cache, format!("{} {}\n", stamp.trim(), accel.name()));
    accel
}

/// The NIC's network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Net {
    /// A hub port that leads nowhere: the NIC is there for Soft-RoCE loopback (the test VM
    /// when the pair does not run).
    Hub,
    /// A datagram link to another VM's NIC (the pair): QEMU sends its frames from the unix
    /// socket `local` to `remote`, where the other VM's QEMU listens, and the reverse. Needs
    /// no root, no tap device and no bridge. The paths are as QEMU (inside the build root)
    /// sees them. `mac` tells the two NICs apart.
    Dgram {
        local: String,
        remote: String,
        mac: String,
    },
}

/// What differs between the VMs the harness boots: the test VM (alone, or VM A of the pair)
/// and VM B of the pair (`crate::pair`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) cpus: u32,
    pub(crate) net: Net,
}

impl Shape {
    /// The test VM of `check`, `run` and `bench`.
    pub(crate) fn single() -> Self {
        Shape {
            cpus: 2,
            net: Net::Hub,
        }
    }

    /// The test VM when the pair runs: it is VM A, its NIC joined to VM B's (`crate::pair`).
    pub(crate) fn with_net(self, net: Net) -> Self {
        Shape { net, ..self }
    }
}

/// The NIC on the switch's third downstream port, and its network.
fn nic_args(net: &Net) -> Vec<String> {
    let (nic, netdev) = match net {
        Net::Hub => (
            "virtio-net-pci,netdev=n0,bus=sw0_dn2".to_string(),
            "hubport,id=n0,hubid=0".to_string(),
        ),
        Net::Dgram { local, remote, mac } => (
            format!("virtio-net-pci,netdev=n0,bus=sw0_dn2,mac={mac}"),
            format!(
                "dgram,id=n0,local.type=unix,local.path={local},remote.type=unix,remote.path={remote}"
            ),
        ),
    };
    vec!["-device".into(), nic, "-netdev".into(), netdev]
}

/// Two Vela slots and the NIC behind one PCIe switch (peer-to-peer distance OK), and a root
/// port of their own for a device that cannot reach the others' BARs.
fn topology_args(net: &Net) -> Vec<String> {
    [
        "pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1",
        "x3130-upstream,id=sw0_up,bus=rp0",
        "xio3130-downstream,id=sw0_dn0,bus=sw0_up,chassis=2,slot=0",
        "xio3130-downstream,id=sw0_dn1,bus=sw0_up,chassis=3,slot=0",
        "xio3130-downstream,id=sw0_dn2,bus=sw0_up,chassis=4,slot=0",
        "pcie-root-port,id=rp1,bus=pcie.0,chassis=5,slot=2",
        // Empty: where `harness device-add` puts a device whose old one cannot be deleted
        // (see `model::harness_request`). The firmware reserves it a prefetchable window for
        // a device's BAR2: acpiphp does not grow a bridge's windows.
        "pcie-root-port,id=rp2,bus=pcie.0,chassis=6,slot=3,pref64-reserve=256M",
    ]
    .iter()
    .flat_map(|d| ["-device".to_string(), d.to_string()])
    .chain(nic_args(net))
    .collect()
}

fn qemu_args(
    paths: &Paths,
    run_dir: &Path,
    devices: &[DeviceSpec],
    accel: Accel,
    mode: crate::Mode,
    shape: &Shape,
) -> Vec<String> {
    let kernel = paths.in_root(&paths.bzimage());
    let share = paths.in_root(&run_dir.join("share"));
    let cmdline = [
        "console=ttyS0",
        "root=vroot",
        "rootfstype=9p",
        // The root is the build root, read-only and unchanged while the VM runs, so the
        // guest may cache it: without cache=loose every exec read the binary and its shared
        // libraries over 9p again (seconds per exec under TCG, tens under KASAN).
        "rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose",
        "ro",
        "init=/usr/local/sbin/vela-init",
        "panic=-1",
        "no_hash_pointers",
        // The IO-APIC timer check counts ticks in a short busy loop; a TCG vCPU on a loaded
        // host misses them and the boot panics ("IO-APIC + timer doesn't work", 2 of 4
        // strict boots under load 4-11). The timer works; the check is what virtual machines
        // skip.
        "no_timer_check",
        // vivid (vela-v4l2-test): instance 0 with vb2-vmalloc, 1 with vb2-dma-contig; only
        // their video capture and output nodes.
        "vivid.n_devs=2",
        "vivid.allocators=0,1",
        "vivid.node_types=0x101,0x101",
    ]
    .join(" ");
    // Benchmarks measure the driver, not allocation debugging: with slub_debug's user
    // tracking and kmemleak every allocation saves a stack trace, which costs about 100 us
    // under TCG and dominated paths that allocate (measured on the dma-buf map path).
    // `make check` keeps both: that is where leaks and corruption are caught.
    let cmdline = if mode == crate::Mode::Bench {
        format!("{cmdline} kmemleak=off")
    } else {
        format!("{cmdline} slub_debug=FZPU")
    };
    let mut a: Vec<String> = vec![
        "-machine".into(),
        format!("q35,accel={},memory-backend=mem", accel.name()),
        "-cpu".into(),
        // No 5-level paging. With LA57, 7.2 decides KASAN's shadow bounds from the LA57
        // feature bit, which identify_cpu() clears and reads back at boot: an interrupt in
        // that window makes KASAN report a wild-memory-access in the irq's spin lock
        // (Documentation/testing.rst, "Flakes found").
        // 39 physical address bits: with 40 or more, QEMU reserves AMD's HyperTransport hole
        // (0xfd00000000-0xffffffffff) in the e820 map for an AMD-like vCPU, where the firmware
        // also puts the 64-bit PCI windows; the kernel then cannot place a hot-added or
        // rescanned device's BAR2 in them (vela-devloss-test).
        "max,phys-bits=39,la57=off".into(),
        "-smp".into(),
        shape.cpus.to_string(),
        "-m".into(),
        "2G".into(),
        "-object".into(),
        "memory-backend-memfd,id=mem,size=2G,share=on".into(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        kernel.display().to_string(),
        "-append".into(),
        cmdline,
        "-virtfs".into(),
        "local,path=/,mount_tag=vroot,security_model=none,readonly=on,multidevs=remap".into(),
        "-virtfs".into(),
        format!(
            "local,path={},mount_tag=vshare,security_model=none,multidevs=remap",
            share.display()
        ),
    ];
    // Hotplug is q35's default, ACPI hotplug (acpiphp in the guest, see vela.config).
    // The monitor, for device_del and device_add (`model::bridge`).
    a.push("-qmp".into());
    a.push(format!(
        "unix:{},server=on,wait=off",
        paths.in_root(&model::qmp_path(run_dir)).display()
    ));
    a.extend(topology_args(&shape.net));
    for d in devices {
        let sock = paths.in_root(&model::socket_path(run_dir, d));
        a.push("-device".into());
        a.push(format!(
            r#"{{"driver":"vfio-user-pci","id":"{}","bus":"{}","socket":{{"path":"{}","type":"unix"}}}}"#,
            d.name,
            d.port,
            sock.display()
        ));
    }
    a
}

/// Boots the VM and returns when it powers off or `timeout` passes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn boot(
    paths: &Paths,
    run_dir: &Path,
    devices: &[DeviceSpec],
    accel: Accel,
    mode: crate::Mode,
    timeout: Duration,
    echo: Echo,
    shape: &Shape,
) -> Result<Outcome, String> {
    boot_until(
        paths,
        run_dir,
        devices,
        accel,
        mode,
        timeout,
        echo,
        shape,
        &Cut::default(),
    )
}

/// An earlier deadline another thread may set while a VM runs: VM B of the pair gets one
/// when the test VM (VM A) has powered off (`crate::pair`).
#[derive(Default)]
pub(crate) struct Cut(Mutex<Option<Instant>>);

impl Cut {
    /// From now on the VM may run until `at` at the latest.
    pub(crate) fn at(&self, at: Instant) {
        if let Ok(mut c) = self.0.lock() {
            *c = Some(c.map_or(at, |old| old.min(at)));
        }
    }

    /// The earlier of `deadline` and the cut.
    fn apply(&self, deadline: Instant) -> Instant {
        match self.0.lock().map(|c| *c) {
            Ok(Some(c)) => c.min(deadline),
            _ => deadline,
        }
    }
}

/// [`boot`], and the VM is also stopped at the time `cut` is given, if that comes first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn boot_until(
    paths: &Paths,
    run_dir: &Path,
    devices: &[DeviceSpec],
    accel: Accel,
    mode: crate::Mode,
    timeout: Duration,
    echo: Echo,
    shape: &Shape,
    cut: &Cut,
) -> Result<Outcome, String> {
    let args = qemu_args(paths, run_dir, devices, accel, mode, shape);
    let qemu = crate::qemu::get(paths);
    let line = std::iter::once(qemu.exe.clone()).chain(args.iter().cloned());
    std::fs::write(
        run_dir.join("qemu.args"),
        line.collect::<Vec<_>>().join("\n"),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-euc",
            CHROOT_SCRIPT,
            "sh",
        ])
        .arg(&paths.root)
        .arg(&paths.work)
        .arg(&qemu.exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;

    let serial = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut readers = Vec::new();
    let streams: [(Option<Box<dyn Read + Send>>, Echo); 2] = [
        (child.stdout.take().map(|s| Box::new(s) as _), echo),
        (child.stderr.take().map(|s| Box::new(s) as _), Echo::All),
    ];
    for (stream, echo) in streams {
        let Some(mut stream) = stream else { continue };
        let serial = Arc::clone(&serial);
        readers.push(thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = serial.lock() {
                    s.extend_from_slice(&buf[..n]);
                }
                for &b in &buf[..n] {
                    line.push(b);
                    if b == b'\n' {
                        let text = String::from_utf8_lossy(&line).replace('\r', "");
                        if echo.wants(&text) {
                            let _ = std::io::stdout().write_all(text.as_bytes());
                            let _ = std::io::stdout().flush();
                        }
                        line.clear();
                    }
                }
            }
        }));
    }

    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > cut.apply(deadline) => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            Ok(None) => sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for QEMU: {e}")),
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let bytes = serial.lock().map(|s| s.clone()).unwrap_or_default();
    let serial = String::from_utf8_lossy(&bytes).replace('\r', "");
    let _ = std::fs::write(run_dir.join("serial.log"), &serial);
    let finished = serial.lines().any(|l| l.trim_end() == DONE_MARKER);
    Ok(Outcome {
        serial,
        timed_out,
        finished,
    })
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

    /// The value that follows each `flag` in `args`.
    fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn what_each_echo_shows() {
        let vela = "[    1.0] vela 0000:03:00.0: Vela v1.0";
        let warn = "[    2.0] WARNING: CPU: 0 PID: 1 at x";
        let boring = "[    3.0] virtio_net virtio0 eth0: link up";
        let guest = "VM A: RDMA WRITE of 1 MiB";
        let cmdline = "[    0.0] Kernel command line: console=ttyS0 panic=-1";
        let shown = |e: Echo| [vela, warn, boring, guest, cmdline].map(|l| e.wants(l));
        assert_eq!(shown(Echo::Quiet), [false; 5]);
        assert_eq!(shown(Echo::All), [true; 5]);
        assert_eq!(shown(Echo::Guest), [true, true, false, true, true]);
        assert_eq!(shown(Echo::Program), [false, true, false, true, false]);
    }

    #[test]
    fn the_single_vm_keeps_its_hub_and_two_cpus() {
        let a = qemu_args(
            &paths(),
            Path::new("/c/work/run/1"),
            &model::topology(crate::Mode::Check),
            Accel::Tcg,
            crate::Mode::Check,
            &Shape::single(),
        );
        assert_eq!(values(&a, "-smp"), ["2"]);
        assert_eq!(values(&a, "-netdev"), ["hubport,id=n0,hubid=0"]);
        let nics: Vec<&str> = values(&a, "-device")
            .into_iter()
            .filter(|d| d.starts_with("virtio-net-pci"))
            .collect();
        assert_eq!(nics, ["virtio-net-pci,netdev=n0,bus=sw0_dn2"]);
        assert!(values(&a, "-qmp")[0].starts_with("unix:/cache/run/1/qmp.sock"));
    }

    #[test]
    fn a_cut_only_brings_the_deadline_forward() {
        let now = Instant::now();
        let later = now + Duration::from_secs(100);
        let cut = Cut::default();
        assert_eq!(cut.apply(later), later);
        cut.at(now + Duration::from_secs(10));
        assert_eq!(cut.apply(later), now + Duration::from_secs(10));
        assert_eq!(cut.apply(now), now, "never later than the timeout");
        cut.at(now + Duration::from_secs(50));
        assert_eq!(
            cut.apply(later),
            now + Duration::from_secs(10),
            "the earliest cut"
        );
    }

    #[test]
    fn a_dgram_nic_has_its_mac_and_both_sockets() {
        let shape = Shape {
            cpus: 1,
            net: Net::Dgram {
                local: "/cache/run/1/net-a.sock".into(),
                remote: "/cache/run/1/net-b.sock".into(),
                mac: "52:54:00:12:34:01".into(),
            },
        };
        let a = qemu_args(
            &paths(),
            Path::new("/c/work/run/1/pair-a"),
            &[],
            Accel::Tcg,
            crate::Mode::Check,
            &shape,
        );
        assert_eq!(values(&a, "-smp"), ["1"]);
        assert_eq!(
            values(&a, "-netdev"),
            [
                "dgram,id=n0,local.type=unix,local.path=/cache/run/1/net-a.sock,\
              remote.type=unix,remote.path=/cache/run/1/net-b.sock"
            ]
        );
        assert!(values(&a, "-device")
            .contains(&"virtio-net-pci,netdev=n0,bus=sw0_dn2,mac=52:54:00:12:34:01"));
        // The NIC stays behind the switch, with the Vela slots.
        assert!(values(&a, "-device")
            .contains(&"xio3130-downstream,id=sw0_dn2,bus=sw0_up,chassis=4,slot=0"));
    }
}
