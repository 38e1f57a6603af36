// SPDX-License-Identifier: GPL-2.0

//! Starting the device model: one process per peer-to-peer domain. The devices behind the
//! PCIe switch share a process, so that a DMA from one to the other's BAR2 reaches it (the
//! model routes peer-to-peer inside one process); a device on a root port of its own, which
//! has no peer-to-peer path anyway, gets a process of its own, which a test may kill
//! (`harness kill-model`, see [`bridge`]) while the others keep running.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{conn, Paths};

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
            // vela2 hosts the vGPU test's instances (a 1/2 type takes two queues, and the host
            // keeps one free beside them).
            queues: if name == "vela2" { 8 } else { 4 },
            port,
        })
        .collect()
}

/// One model process and the devices it serves (indices into the topology).
struct Proc {
    child: Child,
    devices: Vec<usize>,
    control: PathBuf,
    /// The sockets it serves, by device index.
    sockets: Vec<(usize, PathBuf)>,
}

/// The running model processes; killed when dropped.
pub(crate) struct Models {
    procs: Vec<Proc>,
    devices: Vec<DeviceSpec>,
    run_dir: PathBuf,
    exe: PathBuf,
    /// How many processes were started, for fresh socket names.
    generation: u32,
    /// Devices QEMU deleted (`device-del`), whose id and port are free again.
    deleted: Vec<usize>,
    /// How many devices were hot-added, for fresh ids.
    added: u32,
}

impl Drop for Models {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// The socket of `dev` at the start of a run.
pub(crate) fn socket_path(run_dir: &Path, dev: &DeviceSpec) -> PathBuf {
    run_dir.join(format!("{}.sock", dev.name))
}

pub(crate) fn qmp_path(run_dir: &Path) -> PathBuf {
    run_dir.join("qmp.sock")
}

/// The peer-to-peer domain of a device: the switch its port is behind, or the device itself.
fn domain(dev: &DeviceSpec) -> &'static str {
    if dev.port.starts_with("sw0_") {
        "sw0"
    } else {
        dev.name
    }
}

impl Models {
    /// Starts a process serving `members` (indices into `devices`) on `sockets`, and waits
    /// until every socket is listening.
    fn spawn(&mut self, members: &[usize], sockets: Vec<(usize, PathBuf)>) -> Result<(), String> {
        let name = self.devices.get(members[0]).map(domain).unwrap_or("model");
        let control = self
            .run_dir
            .join(format!("control-{name}-{}.sock", self.generation));
        self.generation += 1;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.run_dir.join("model.log"))
            .map_err(|e| format!("model log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("model log: {e}"))?;
        let mut cmd = Command::new(&self.exe);
        for (i, sock) in &sockets {
            let d = &self.devices[*i];
            cmd.arg("--device").arg(format!(
                "socket={},vram-mib={},serial={},queues={}",
                sock.display(),
                d.vram_mib,
                d.serial,
                d.queues
            ));
        }
        // Guest tests inject faults through this socket (see `bridge`); a device_del and
        // device_add find the device again on its socket.
        cmd.arg("--control").arg(&control).arg("--reconnect");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let mut proc = Proc {
            child,
            devices: members.to_vec(),
            control,
            sockets,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !proc.sockets.iter().all(|(_, s)| s.exists()) {
            if let Ok(Some(status)) = proc.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.run_dir.join("model.log")).unwrap_or_default();
                return Err(format!("the device model exited ({status}):\n{log}"));
            }
            if Instant::now() > deadline {
                let _ = proc.child.kill();
                let _ = proc.child.wait();
                return Err("the device model did not create its sockets in 20 s".into());
            }
            sleep(Duration::from_millis(20));
        }
        self.procs.push(proc);
        Ok(())
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.name == name)
    }

    /// The live process serving device `i`.
    fn proc_of(&mut self, i: usize) -> Option<&mut Proc> {
        let pos = self
            .procs
            .iter_mut()
            .position(|p| p.devices.contains(&i) && matches!(p.child.try_wait(), Ok(None)))?;
        self.procs.get_mut(pos)
    }

    /// Where device `i` is served now (it changes when its process is started again).
    pub(crate) fn socket_of(&mut self, i: usize) -> Option<PathBuf> {
        let p = self.proc_of(i)?;
        p.sockets
            .iter()
            .find(|(d, _)| *d == i)
            .map(|(_, s)| s.clone())
    }

    /// Forwards a `[dev=N] VERB` line to the control socket of the process serving device N
    /// (N counts the VM's devices; the process knows its own as 0, 1, ...).
    fn control(&mut self, request: &str) -> String {
        let mut words = request.split_whitespace().peekable();
        let mut index = 0usize;
        if let Some(d) = words.peek().and_then(|w| w.strip_prefix("dev=")) {
            match d.parse() {
                Ok(i) => index = i,
                Err(_) => return format!("error: bad device index '{d}'\n"),
            }
            words.next();
        }
        let rest: Vec<&str> = words.collect();
        if rest == ["devices"] {
            return format!("ok {}\n", self.devices.len());
        }
        let Some(p) = self.proc_of(index) else {
            return format!("error: device {index} has no model process\n");
        };
        let local = p.devices.iter().position(|&d| d == index).unwrap_or(0);
        let line = format!("dev={local} {}", rest.join(" "));
        UnixStream::connect(&p.control)
            .and_then(|mut s| {
                writeln!(s, "{line}")?;
                let mut reply = String::new();
                BufReader::new(s).read_line(&mut reply)?;
                Ok(reply)
            })
            .unwrap_or_else(|e| format!("error: control socket: {e}\n"))
    }
}

/// Starts the model processes (one per peer-to-peer domain, see the module's comment) and
/// waits until every device's socket is listening.
pub(crate) fn start(
    paths: &Paths,
    run_dir: &Path,
    devices: &[DeviceSpec],
) -> Result<Models, String> {
    let mut models = Models {
        procs: Vec::new(),
        devices: devices.to_vec(),
        run_dir: run_dir.to_path_buf(),
        exe: paths.bin.join("vela-model"),
        generation: 0,
        deleted: Vec::new(),
        added: 0,
    };
    let mut domains: Vec<&'static str> = devices.iter().map(domain).collect();
    domains.dedup();
    for dom in domains {
        let members: Vec<usize> = (0..devices.len())
            .filter(|&i| domain(&devices[i]) == dom)
            .collect();
        let sockets = members
            .iter()
            .map(|&i| (i, socket_path(run_dir, &devices[i])))
            .collect();
        models.spawn(&members, sockets)?;
    }
    Ok(models)
}

/// A QMP session on QEMU's monitor socket.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn connect(path: &Path) -> Result<Self, String> {
        let s = UnixStream::connect(path).map_err(|e| format!("QMP {}: {e}", path.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        let writer = s.try_clone().map_err(|e| e.to_string())?;
        let mut q = Qmp {
            reader: BufReader::new(s),
            writer,
        };
        q.expect(Duration::from_secs(10), |l| l.contains("\"QMP\""))?;
        q.execute(r#"{"execute":"qmp_capabilities"}"#)?;
        Ok(q)
    }

    /// Reads lines until one satisfies `want`; an error reply ends the wait.
    fn expect(&mut self, within: Duration, want: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + within;
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err("QMP: the monitor closed the connection".into()),
                Ok(_) => {
                    if line.contains("\"error\"") {
                        return Err(format!("QMP: {}", line.trim()));
                    }
                    if want(&line) {
                        return Ok(line);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("QMP: {e}")),
            }
        }
        Err(format!("QMP: no answer in {} s", within.as_secs()))
    }

    fn execute(&mut self, command: &str) -> Result<String, String> {
        writeln!(self.writer, "{command}").map_err(|e| format!("QMP: {e}"))?;
        self.expect(Duration::from_secs(30), |l| l.contains("\"return\""))
    }
}

/// How long QEMU may take to remove a device after device_del: the guest's acpiphp unbinds
/// the driver and ejects the slot, under TCG.
const DEVICE_DEL_TIMEOUT: Duration = Duration::from_secs(90);

/// The empty root port of `vm::topology_args`, for devices added while their old one stays.
const SPARE_PORT: &str = "rp2";

/// What the harness itself does for a guest request `harness VERB NAME`: `kill-model` kills the
/// process serving NAME (SIGKILL, as a crash would; its connections to QEMU are ended after it
/// dies, see [`conn`]); `device-del` hot-removes NAME through QMP
/// and waits until QEMU reports it gone (`DEVICE_DELETED`); `device-add` hot-adds a
/// vfio-user-pci device for NAME, first starting a model process for it if its own was killed:
/// on NAME's own port with NAME's id after a `device-del`, else (the old device is still
/// there) on the spare root port with a fresh id.
///
/// QEMU 11.1.3 as Debian builds it aborts when it finalizes a deleted vfio-user-pci device;
/// the harness runs a copy with that fixed ([`crate::qemu`]) and refuses `device-del`, with a
/// reply that says why, on any QEMU it could not fix.
fn harness_request(
    models: &Mutex<Models>,
    paths: &Paths,
    run_dir: &Path,
    verb: &str,
    name: &str,
) -> Result<String, String> {
    let mut m = models
        .lock()
        .map_err(|_| "models lock poisoned".to_string())?;
    let i = m.index(name).ok_or_else(|| format!("no device '{name}'"))?;
    let started = Instant::now();
    match verb {
        "kill-model" => {
            let p = m
                .proc_of(i)
                .ok_or_else(|| format!("{name} has no model process"))?;
            let pid = p.child.id();
            // The process dies, its connections to QEMU do not yet: QEMU 11.1 aborts if the
            // socket of a dead server resets rather than ends (crate::conn).
            let paths: Vec<PathBuf> = p.sockets.iter().map(|(_, s)| s.clone()).collect();
            let held = conn::hold(pid, &paths).unwrap_or_else(|e| {
                eprintln!("vela-harness: kill-model {name}: its connections not held ({e})");
                Vec::new()
            });
            p.child.kill().map_err(|e| format!("kill {pid}: {e}"))?;
            let _ = p.child.wait();
            let (ended, answered) = (held.len(), held.into_iter().map(conn::end).sum::<usize>());
            let served = p.devices.clone();
            let names: Vec<&str> = served.iter().map(|&d| m.devices[d].name).collect();
            Ok(format!(
                "ok killed pid {pid} serving {}; {ended} connection(s) ended, \
                 {answered} request(s) in flight answered ENODEV",
                names.join(",")
            ))
        }
        "device-del" => {
            drop(m);
            if let Err(why) = &crate::qemu::get(paths).device_del {
                return Err(format!("unsupported: {why}"));
            }
            let mut q = Qmp::connect(&qmp_path(run_dir))?;
            q.execute(&format!(
                r#"{{"execute":"device_del","arguments":{{"id":"{name}"}}}}"#
            ))?;
            let tag = format!("\"device\": \"{name}\"");
            q.expect(DEVICE_DEL_TIMEOUT, |l| {
                l.contains("DEVICE_DELETED") && l.contains(&tag)
            })?;
            if let Ok(mut m) = models.lock() {
                m.deleted.push(i);
            }
            Ok(format!(
                "ok deleted in {} ms",
                started.elapsed().as_millis()
            ))
        }
        "device-add" => {
            let sock = match m.socket_of(i) {
                Some(s) => s,
                None => {
                    let sock = run_dir.join(format!("{name}-{}.sock", m.generation));
                    m.spawn(&[i], vec![(i, sock.clone())])?;
                    sock
                }
            };
            let (id, port) = if m.deleted.contains(&i) {
                m.deleted.retain(|&d| d != i);
                (name.to_string(), m.devices[i].port)
            } else {
                m.added += 1;
                (format!("{name}-{}", m.added), SPARE_PORT)
            };
            drop(m);
            let mut q = Qmp::connect(&qmp_path(run_dir))?;
            q.execute(&format!(
                r#"{{"execute":"device_add","arguments":{{"driver":"vfio-user-pci","id":"{id}","bus":"{port}","socket":{{"path":"{}","type":"unix"}}}}}}"#,
                paths.in_root(&sock).display()
            ))?;
            Ok(format!(
                "ok added {id} on {port} in {} ms",
                started.elapsed().as_millis()
            ))
        }
        _ => Err(format!("unknown harness request '{verb}'")),
    }
}

/// Serves the guest's requests.
///
/// The guest cannot reach the host's sockets; it writes `share/inject/req-ID` (one line) and
/// waits for `rep-ID`, the one-line answer. A line `[dev=N] VERB` (Documentation/hardware/
/// model.rst) goes to the control socket of the model process serving device N; a line
/// `harness VERB NAME` is done by the harness (see [`harness_request`]). Stops when `stop` is
/// set.
pub(crate) fn bridge(
    paths: Paths,
    run_dir: PathBuf,
    models: Arc<Mutex<Models>>,
    stop: Arc<AtomicBool>,
) {
    let dir = run_dir.join("share/inject");
    let _ = std::fs::create_dir_all(&dir);
    while !stop.load(Ordering::Relaxed) {
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
            let words: Vec<&str> = request.split_whitespace().collect();
            let reply = match words.as_slice() {
                ["harness", verb, dev] => {
                    let r = harness_request(&models, &paths, &run_dir, verb, dev)
                        .unwrap_or_else(|e| format!("error: {e}"));
                    eprintln!("vela-harness: guest request '{}': {r}", request.trim());
                    format!("{r}\n")
                }
                ["harness", ..] => {
                    "error: usage: harness kill-model|device-del|device-add NAME\n".into()
                }
                _ => match models.lock() {
                    Ok(mut m) => m.control(request.trim()),
                    Err(_) => "error: models lock poisoned\n".into(),
                },
            };
            let tmp = dir.join(format!("tmp-{id}"));
            if std::fs::write(&tmp, reply).is_ok() {
                let _ = std::fs::rename(&tmp, dir.join(format!("rep-{id}")));
            }
        }
        sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_per_p2p_domain() {
        let devs = topology(crate::Mode::Check);
        let domains: Vec<&str> = devs.iter().map(domain).collect();
        // The peers behind the switch share a process (peer-to-peer DMA is routed inside
        // it); the device on its own root port has its own, which a test may kill.
        assert_eq!(domains, ["sw0", "sw0", "vela2"]);
    }
}
