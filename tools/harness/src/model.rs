// SPDX-License-Identifier: GPL-2.0

//! Starting the device model: one process serving every Vela device of the VM, so that a DMA
//! from one device to a peer's BAR2 reaches the peer (peer-to-peer, as a PCIe switch routes it).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::Paths;

/// One Vela device of the test VM.
#[derive(Clone, Debug)]
pub(crate) struct DeviceSpec {
    pub(crate) name: &'static str,
    pub(crate) vram_mib: u64,
    pub(crate) serial: u32,
    pub(crate) queues: u32,
    /// PCIe port the device sits on (see `vm::topology_args`).
    pub(crate) port: &'static str,
}

/// The devices of the test VM: two behind one PCIe switch (peers: DMA between them is routed
/// through the switch), and one on a root port of its own (no peer-to-peer path to the
/// others). Tests that use one device take `vela0`, the first by PCI address. The guest tests
/// get the same values through the environment and check that the driver reports them.
/// Benchmarks get 1 GiB of VRAM, so that 100k live 4 KiB buffers fit.
pub(crate) fn topology(mode: crate::Mode) -> Vec<DeviceSpec> {
    let vram_mib = if mode == crate::Mode::Bench {
        1024
    } else {
        256
    };
    // Benchmarks use the two peers only: a third device's model threads would compete for
    // the host's two cores with what is measured.
    let ports: &[(&'static str, &'static str)] = if mode == crate::Mode::Bench {
        &[("vela0", "sw0_dn0"), ("vela1", "sw0_dn1")]
    } else {
        &[("vela0", "sw0_dn0"), ("vela1", "sw0_dn1"), ("vela2", "rp1")]
    };
    ports
        .iter()
        .copied()
        .zip(1..)
        .map(|((name, port), serial)| DeviceSpec {
            name,
            vram_mib,
            serial,
            queues: 4,
            port,
        })
        .collect()
}

/// The running model; killed when dropped.
pub(crate) struct Models {
    child: Child,
}

impl Drop for Models {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn socket_path(run_dir: &Path, dev: &DeviceSpec) -> PathBuf {
    run_dir.join(format!("{}.sock", dev.name))
}

pub(crate) fn control_path(run_dir: &Path) -> PathBuf {
    run_dir.join("control.sock")
}

/// Forwards fault-injection requests from the guest to the model's control socket.
///
/// The guest cannot reach the host's sockets; it writes `share/inject/req-ID` (one line,
/// `[dev=N] VERB` as in Documentation/hardware/model.rst) and waits for `rep-ID`, the model's
/// one-line answer. Stops when `stop` is set.
pub(crate) fn bridge(run_dir: PathBuf, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{BufRead, BufReader, Write};
    let dir = run_dir.join("share/inject");
    let _ = std::fs::create_dir_all(&dir);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix("req-") else {
                continue;
            };
            let request = std::fs::read_to_string(e.path()).unwrap_or_default();
            let _ = std::fs::remove_file(e.path());
            let reply = std::os::unix::net::UnixStream::connect(control_path(&run_dir))
                .and_then(|mut s| {
                    writeln!(s, "{}", request.trim())?;
                    let mut line = String::new();
                    BufReader::new(s).read_line(&mut line)?;
                    Ok(line)
                })
                .unwrap_or_else(|e| format!("error: control socket: {e}\n"));
            let tmp = dir.join(format!("tmp-{id}"));
            if std::fs::write(&tmp, reply).is_ok() {
                let _ = std::fs::rename(&tmp, dir.join(format!("rep-{id}")));
            }
        }
        sleep(Duration::from_millis(20));
    }
}

/// Starts the model and waits until every device's socket is listening.
pub(crate) fn start(
    paths: &Paths,
    run_dir: &Path,
    devices: &[DeviceSpec],
) -> Result<Models, String> {
    let exe = paths.bin.join("vela-model");
    let log = File::create(run_dir.join("model.log")).map_err(|e| format!("model log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| format!("model log: {e}"))?;
    let mut cmd = Command::new(&exe);
    for d in devices {
        cmd.arg("--device").arg(format!(
            "socket={},vram-mib={},serial={},queues={}",
            socket_path(run_dir, d).display(),
            d.vram_mib,
            d.serial,
            d.queues
        ));
    }
    // Guest tests inject faults through this socket (see `bridge`).
    cmd.arg("--control").arg(control_path(run_dir));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let mut models = Models { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !devices.iter().all(|d| socket_path(run_dir, d).exists()) {
        if let Ok(Some(status)) = models.child.try_wait() {
            let log = std::fs::read_to_string(run_dir.join("model.log")).unwrap_or_default();
            return Err(format!("the device model exited ({status}):\n{log}"));
        }
        if Instant::now() > deadline {
            return Err("the device model did not create its sockets in 20 s".into());
        }
        sleep(Duration::from_millis(20));
    }
    Ok(models)
}
