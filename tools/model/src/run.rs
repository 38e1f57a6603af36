// SPDX-License-Identifier: GPL-2.0
//! Process setup: build the devices, create every socket, serve them.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use crate::cli::{self, Command};
use crate::control;
use crate::device::Device;
use crate::fabric::Fabric;
use crate::server;

#[derive(Debug)]
pub enum RunError {
    Cli(cli::CliError),
    Device(String),
    Socket(String),
    Serve(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cli(e) => write!(f, "{e}"),
            Self::Device(m) | Self::Socket(m) | Self::Serve(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `vela-model` with the arguments after the program name. `--help`, `--version` and
/// usage errors come back as [`RunError::Cli`], for the caller to [`cli::CliError::exit`] with.
pub fn main<I: IntoIterator<Item = String>>(args: I) -> Result<(), RunError> {
    let args = match cli::parse(args).map_err(RunError::Cli)? {
        Command::Bench { vram_size, engines } => {
            let report = crate::bench::run(vram_size, engines, Default::default())
                .map_err(|e| RunError::Device(e.to_string()))?;
            println!("{report}");
            return Ok(());
        }
        Command::Serve(args) => args,
    };

    let signals = block_termination_signals();
    // One fabric for the process: every device can reach every other's BAR2.
    let fabric = Fabric::new();
    let mut devices = Vec::new();
    for spec in &args.devices {
        let dev = Device::on_fabric(spec.opts.clone(), &fabric)
            .map_err(|e| RunError::Device(format!("{}: {e}", spec.socket.display())))?;
        devices.push(dev);
    }
    for knob in &args.inject {
        devices.iter().for_each(|d| d.inject.apply(*knob));
    }
    let mut servers = Vec::new();
    for (spec, dev) in args.devices.iter().zip(&devices) {
        let s = server::listen(dev, &spec.socket)
            .map_err(|e| RunError::Socket(format!("{}: {e}", spec.socket.display())))?;
        servers.push(s);
    }
    if let Some(path) = &args.control {
        control::spawn(path, devices.clone())
            .map_err(|e| RunError::Socket(format!("{}: {e}", path.display())))?;
    }
    let mut paths: Vec<PathBuf> = args.devices.iter().map(|d| d.socket.clone()).collect();
    paths.extend(args.control.clone());
    if let Some(set) = signals {
        remove_on_termination(set, paths);
    }

    let handles: Vec<_> = servers
        .into_iter()
        .zip(devices)
        .zip(&args.devices)
        .map(|((srv, dev), spec)| {
            let name = spec.socket.display().to_string();
            let reconnect = args.reconnect;
            thread::spawn(move || serve_one(&name, srv, dev, reconnect))
        })
        .collect();
    let mut failures = Vec::new();
    let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    if let Some(path) = &args.control {
        let _ = std::fs::remove_file(path);
    }
    for h in joined {
        match h {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a device thread panicked".to_string()),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(RunError::Serve(failures.join("; ")))
    }
}

/// Serves the device's clients: one, or with `reconnect` one after another, the device reset
/// in between as a hot-removed function is: a device_add after a device_del finds a device
/// fresh from power-up on the same socket (VRAM contents aside).
fn serve_one(
    name: &str,
    srv: server::Listening,
    dev: Arc<Device>,
    reconnect: bool,
) -> Result<(), String> {
    let _engine = dev.start_engine();
    loop {
        log::info!("{name}: waiting for a client");
        server::serve(&srv, dev.clone()).map_err(|e| format!("{name}: {e}"))?;
        log::info!("{name}: client disconnected");
        if !reconnect {
            return Ok(());
        }
        dev.function_reset();
        dev.sysmem.unmap_all();
        // The old client's eventfds: no interrupt may reach them.
        use vfio_bindings::bindings::vfio::{VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_NONE};
        let _ = dev.set_msix(
            VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE,
            0,
            0,
            Vec::new(),
        );
    }
}

/// Block SIGTERM and SIGINT in this thread and, by inheritance, in every
/// thread spawned after it, so that only the waiter below takes them.
fn block_termination_signals() -> Option<libc::sigset_t> {
    // SAFETY: an all-zero sigset_t is valid storage for sigemptyset, which
    // initialises it; every pointer passed below points at a live local.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let blocked = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
    };
    if !blocked {
        log::warn!("cannot block SIGTERM: sockets stay behind if the model is killed");
    }
    blocked.then_some(set)
}

/// On SIGTERM or SIGINT, remove the sockets and exit 128 + signal, so a
/// harness that kills the model leaves no socket files behind.
fn remove_on_termination(set: libc::sigset_t, paths: Vec<PathBuf>) {
    thread::spawn(move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` and `sig` are valid for the duration of the call.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            for p in &paths {
                let _ = std::fs::remove_file(p);
            }
            std::process::exit(128 + sig);
        }
    });
}

struct StderrLogger(log::LevelFilter);

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.0
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("vela-model: {}: {}", r.level(), r.args());
        }
    }

    fn flush(&self) {}
}

/// `VELA_MODEL_LOG=error|warn|info|debug|trace`, default `warn`.
pub fn init_logging() {
    let level = std::env::var("VELA_MODEL_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    let logger = Box::leak(Box::new(StderrLogger(level)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
