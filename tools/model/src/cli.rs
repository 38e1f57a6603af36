// SPDX-License-Identifier: GPL-2.0
//! Command line: `vela-model --socket PATH [--vram-mib N] [--serial N] [--queues N]`
//! and, for several devices in one process, `--device socket=PATH,vram-mib=N,serial=N`.
//!
//! Parsed with clap: `--help` and `--version` everywhere (`bench` too), errors name the bad
//! argument, and usage errors exit 2 (see [`CliError::exit`]).

use std::path::PathBuf;

use clap::{error::ErrorKind, ArgGroup, CommandFactory, Parser, Subcommand};

use crate::device::DeviceOptions;
use crate::inject::Knob;

/// The usage lines `--help` shows; the first is the contract with the test harness
/// (`Documentation/hardware/model.rst`, "Command line").
pub const USAGE: &str = "\
vela-model --socket PATH [--vram-mib N] [--serial N] [--queues N] [--engines N] [OPTIONS]
       vela-model --device socket=PATH[,vram-mib=N][,serial=N][,queues=N][,engines=N] [--device ...] [OPTIONS]
       vela-model bench [--vram-mib N] [--engines N]";

const ABOUT: &str = "Device model of the Vela PCIe accelerator, served over vfio-user.

Creates one listening vfio-user socket per device, then serves one
connection on each; exits 0 when every client has disconnected.
Devices served by one process reach each other's VRAM (peer-to-peer).
--engines (default 2, at most 8): engines per device, a host thread each; every
engine runs commands of any kind, so as many queues make progress at once.";

const AFTER_HELP: &str = "\
bench prints copy-engine VRAM->VRAM bandwidth against host memcpy and the
doorbell -> fence -> interrupt latency, measured in-process.

Environment: VELA_MODEL_LOG=error|warn|info|debug|trace (default warn).";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    pub socket: PathBuf,
    pub opts: DeviceOptions,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub devices: Vec<DeviceSpec>,
    pub control: Option<PathBuf>,
    pub inject: Vec<Knob>,
    /// Serve the next client when one disconnects, rather than exit.
    pub reconnect: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve(Args),
    Bench { vram_size: u64, engines: u32 },
}

/// A usage error, or a request for `--help` or `--version` (whose text clap prints).
#[derive(Debug)]
pub struct CliError(pub clap::Error);

impl CliError {
    /// What clap made of the command line ([`ErrorKind::DisplayHelp`] for `--help`, ...).
    pub fn kind(&self) -> ErrorKind {
        self.0.kind()
    }

    /// Prints the help, the version or the error (naming the bad argument) and exits: 0 for
    /// `--help` and `--version`, 2 for a usage error.
    pub fn exit(&self) -> ! {
        self.0.exit()
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for CliError {}

#[derive(Parser, Debug)]
#[command(
    name = "vela-model",
    version,
    about = ABOUT,
    override_usage = USAGE,
    after_help = AFTER_HELP,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
#[command(group(
    ArgGroup::new("devices")
        .args(["socket", "device"])
        .multiple(true)
        .required(true)
))]
struct Cli {
    /// Listening vfio-user socket of the device
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// VRAM (and BAR2) size in MiB, a power of two [default: 256]
    #[arg(long = "vram-mib", value_name = "N", requires = "socket", value_parser = vram_mib)]
    vram_size: Option<u64>,
    /// DEVICE_SERIAL [default: 1]
    #[arg(long, value_name = "N", requires = "socket", value_parser = u32_arg)]
    serial: Option<u32>,
    /// Number of queues, 1 to 16 [default: 4]
    #[arg(long, value_name = "N", requires = "socket", value_parser = u32_arg)]
    queues: Option<u32>,
    /// Number of engines, 1 to 8, a host thread each [default: 2]
    #[arg(long, value_name = "N", requires = "socket", value_parser = u32_arg)]
    engines: Option<u32>,
    /// One more device: socket=PATH[,vram-mib=N][,serial=N][,queues=N][,engines=N], defaults
    /// as above except serial, which defaults to the device's position + 1. Repeatable
    #[arg(long, value_name = "SPEC", value_parser = device_arg)]
    device: Vec<DeviceArg>,
    /// Control socket for fault injection and status (one line per request: [dev=N] VERB)
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Arm a fault on every device at start; repeatable. KNOB is hang-engine=copy|compute,
    /// fail-dma[=N], drop-irq[=N], corrupt-fence[=N], mmu-fault[=N]
    #[arg(long, value_name = "KNOB", value_parser = Knob::parse)]
    inject: Vec<Knob>,
    /// When a device's client disconnects (QEMU's device_del), reset the device and wait for
    /// the next client on the same socket (a device_add) rather than exit
    #[arg(long)]
    reconnect: bool,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Copy-engine bandwidth against memcpy, doorbell -> interrupt latency (in-process)
    ///
    /// Prints copy-engine VRAM->VRAM bandwidth against host memcpy and the doorbell -> fence
    /// -> interrupt latency, measured in-process on a device of its own.
    Bench {
        /// VRAM of the benchmark's device in MiB, a power of two
        #[arg(long = "vram-mib", value_name = "N", default_value = "1024", value_parser = vram_mib)]
        vram_size: u64,
        /// Engines of the benchmark's device
        #[arg(long, value_name = "N", default_value_t = DeviceOptions::default().engines, value_parser = u32_arg)]
        engines: u32,
    },
}

/// One `--device` as given; what it leaves out is filled in by [`DeviceArg::spec`].
#[derive(Clone, Debug)]
struct DeviceArg {
    socket: PathBuf,
    vram_size: Option<u64>,
    serial: Option<u32>,
    queues: Option<u32>,
    engines: Option<u32>,
}

impl DeviceArg {
    /// The device at `index` among all devices: its serial defaults to `index + 1`.
    fn spec(&self, index: usize) -> DeviceSpec {
        let d = DeviceOptions::default();
        DeviceSpec {
            socket: self.socket.clone(),
            opts: DeviceOptions {
                vram_size: self.vram_size.unwrap_or(d.vram_size),
                serial: self.serial.unwrap_or(index as u32 + 1),
                queues: self.queues.unwrap_or(d.queues),
                engines: self.engines.unwrap_or(d.engines),
            },
        }
    }
}

/// Decimal, or hex with `0x`.
fn number(v: &str) -> Result<u64, String> {
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| format!("'{v}' is not a number"))
}

fn u32_arg(v: &str) -> Result<u32, String> {
    u32::try_from(number(v)?).map_err(|_| format!("{v} is too large"))
}

/// A VRAM size in MiB, returned in bytes.
fn vram_mib(v: &str) -> Result<u64, String> {
    let mib = number(v)?;
    if !mib.is_power_of_two() || mib > (1 << 20) {
        return Err(format!("{mib} must be a power of two up to 1048576"));
    }
    Ok(mib << 20)
}

/// `socket=PATH,vram-mib=N,serial=N,queues=N,engines=N`
fn device_arg(s: &str) -> Result<DeviceArg, String> {
    let mut socket = None;
    let mut d = DeviceArg {
        socket: PathBuf::new(),
        vram_size: None,
        serial: None,
        queues: None,
        engines: None,
    };
    for kv in s.split(',').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("'{kv}' is not key=value"))?;
        let key = |r: Result<u32, String>| r.map_err(|e| format!("{k}: {e}"));
        match k {
            "socket" => socket = Some(PathBuf::from(v)),
            "vram-mib" => d.vram_size = Some(vram_mib(v).map_err(|e| format!("{k}: {e}"))?),
            "serial" => d.serial = Some(key(u32_arg(v))?),
            "queues" => d.queues = Some(key(u32_arg(v))?),
            "engines" => d.engines = Some(key(u32_arg(v))?),
            _ => return Err(format!("unknown key '{k}'")),
        }
    }
    d.socket = socket.ok_or("needs socket=PATH")?;
    Ok(d)
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let argv = std::iter::once("vela-model".to_string()).chain(args);
    let cli = Cli::try_parse_from(argv).map_err(CliError)?;
    if let Some(Sub::Bench { vram_size, engines }) = cli.command {
        return Ok(Command::Bench { vram_size, engines });
    }
    let usage = |kind, msg: String| CliError(Cli::command().error(kind, msg));
    let mut devices = Vec::new();
    if let Some(socket) = cli.socket {
        let d = DeviceOptions::default();
        devices.push(DeviceSpec {
            socket,
            opts: DeviceOptions {
                vram_size: cli.vram_size.unwrap_or(d.vram_size),
                serial: cli.serial.unwrap_or(d.serial),
                queues: cli.queues.unwrap_or(d.queues),
                engines: cli.engines.unwrap_or(d.engines),
            },
        });
    }
    for arg in &cli.device {
        devices.push(arg.spec(devices.len()));
    }
    for (i, d) in devices.iter().enumerate() {
        if devices[..i].iter().any(|o| o.socket == d.socket) {
            return Err(usage(
                ErrorKind::ArgumentConflict,
                format!("socket {} given twice", d.socket.display()),
            ));
        }
    }
    if let Some(c) = &cli.control {
        if devices.iter().any(|d| &d.socket == c) {
            return Err(usage(
                ErrorKind::ArgumentConflict,
                format!(
                    "the control socket '--control {}' cannot be a device socket",
                    c.display()
                ),
            ));
        }
    }
    Ok(Command::Serve(Args {
        devices,
        control: cli.control,
        reconnect: cli.reconnect,
        inject: cli.inject,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, CliError> {
        parse(s.split_whitespace().map(String::from))
    }

    fn devices(s: &str) -> Vec<DeviceSpec> {
        match p(s).unwrap() {
            Command::Serve(a) => a.devices,
            c => panic!("{c:?}"),
        }
    }

    /// The error of a bad command line: a usage error (exit 2) whose message names `arg`.
    fn usage_error(s: &str, arg: &str) {
        let e = p(s).expect_err(s);
        assert_eq!(e.0.exit_code(), 2, "{s}: {e}");
        assert!(e.to_string().contains(arg), "{s}: {e}");
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn contract_command_line() {
        let d = devices("--socket /tmp/v.sock --vram-mib 512 --serial 7 --queues 2");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].socket, PathBuf::from("/tmp/v.sock"));
        assert_eq!(
            d[0].opts,
            DeviceOptions {
                vram_size: 512 << 20,
                serial: 7,
                queues: 2,
                ..Default::default()
            }
        );
        let d = devices("--socket /tmp/v.sock");
        assert_eq!(
            d[0].opts,
            DeviceOptions {
                vram_size: 256 << 20,
                serial: 1,
                queues: 4,
                ..Default::default()
            }
        );
        // `--name=value` and hex numbers, as before clap.
        let d = devices("--socket=/s --vram-mib=0x40 --serial 0x10 --engines 3");
        assert_eq!(d[0].opts.vram_size, 64 << 20);
        assert_eq!(d[0].opts.serial, 16);
        assert_eq!(d[0].opts.engines, 3);
    }

    #[test]
    fn several_devices() {
        let d = devices("--device socket=/a,vram-mib=64,serial=5 --device socket=/b");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].opts.vram_size, 64 << 20);
        assert_eq!(d[0].opts.serial, 5);
        assert_eq!(d[1].socket, PathBuf::from("/b"));
        assert_eq!(d[1].opts.serial, 2);
        let d = devices("--socket /a --device socket=/b,queues=8,engines=3");
        assert_eq!(d[1].opts.engines, 3);
        assert_eq!(d[0].opts.engines, 2);
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].opts.queues, 8);
        assert_eq!(d[1].opts.serial, 2);
    }

    #[test]
    fn rejects_nonsense() {
        usage_error("", "--socket");
        usage_error("--vram-mib 3 --socket /a", "--vram-mib");
        usage_error("--socket", "--socket");
        usage_error("--socket /a --bogus", "--bogus");
        usage_error("--device vram-mib=64", "--device");
        usage_error("--device socket=/a,color=red", "unknown key 'color'");
        usage_error("--device socket=/a --device socket=/a", "/a given twice");
        usage_error("--serial 1", "--socket");
        usage_error("--socket /a --queues x", "--queues");
        usage_error("--socket /a --inject explode", "--inject");
        usage_error("--socket /a --control /a", "--control");
        usage_error("bench --bogus", "--bogus");
        usage_error("bench --vram-mib 5", "--vram-mib");
        usage_error("--socket /a bench", "bench");
        for (s, kind) in [
            ("--help", ErrorKind::DisplayHelp),
            ("-h", ErrorKind::DisplayHelp),
            ("bench --help", ErrorKind::DisplayHelp),
            ("--version", ErrorKind::DisplayVersion),
            ("bench --version", ErrorKind::DisplayVersion),
        ] {
            let e = p(s).expect_err(s);
            assert_eq!(e.kind(), kind, "{s}");
            assert_eq!(e.0.exit_code(), 0, "{s}");
        }
    }

    #[test]
    fn help_shows_the_contract() {
        let help = Cli::command().render_help().to_string();
        assert!(
            help.contains("vela-model --socket PATH [--vram-mib N] [--serial N] [--queues N]"),
            "{help}"
        );
        for opt in [
            "--device",
            "--control",
            "--inject",
            "--reconnect",
            "--engines",
            "bench",
            "--version",
        ] {
            assert!(help.contains(opt), "{opt}: {help}");
        }
    }

    #[test]
    fn reconnect() {
        match p("--socket /a --reconnect").unwrap() {
            Command::Serve(a) => assert!(a.reconnect),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn extensions() {
        match p("--socket /a --control /c --inject fail-dma=2 --inject hang-engine=copy").unwrap() {
            Command::Serve(a) => {
                assert_eq!(a.control, Some(PathBuf::from("/c")));
                assert!(!a.reconnect);
                assert_eq!(
                    a.inject,
                    vec![Knob::FailDma(2), Knob::Hang(vela_hw::Engine::Copy)]
                );
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            p("bench").unwrap(),
            Command::Bench {
                vram_size: 1 << 30,
                engines: 2
            }
        );
        assert_eq!(
            p("bench --vram-mib 64 --engines 1").unwrap(),
            Command::Bench {
                vram_size: 64 << 20,
                engines: 1
            }
        );
    }
}
