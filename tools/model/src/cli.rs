// SPDX-License-Identifier: GPL-2.0
//! Command line: `vela-model --socket PATH [--vram-mib N] [--serial N] [--queues N]`
//! and, for several devices in one process, `--device socket=PATH,vram-mib=N,serial=N`.

use std::path::PathBuf;

use crate::device::DeviceOptions;
use crate::inject::Knob;

pub const USAGE: &str = "\
usage: vela-model --socket PATH [--vram-mib N] [--serial N] [--queues N] [--engines N] [OPTIONS]
       vela-model --device socket=PATH[,vram-mib=N][,serial=N][,queues=N][,engines=N] [--device ...] [OPTIONS]
       vela-model bench [--vram-mib N] [--engines N]

Creates one listening vfio-user socket per device, then serves one
connection on each; exits 0 when every client has disconnected.
Devices served by one process reach each other's VRAM (peer-to-peer).
--engines (default 2, at most 8): engines per device, a host thread each; every
engine runs commands of any kind, so as many queues make progress at once.

OPTIONS
  --control PATH   control socket for fault injection and status (one line
                   per request: [dev=N] VERB)
  --inject KNOB    arm a fault on every device at start; repeatable. KNOB is
                   hang-engine=copy|compute, fail-dma[=N], drop-irq[=N],
                   corrupt-fence[=N], mmu-fault[=N]

bench prints copy-engine VRAM->VRAM bandwidth against host memcpy and the
doorbell -> fence -> interrupt latency, measured in-process.";

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
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve(Args),
    Bench { vram_size: u64, engines: u32 },
    Help,
}

#[derive(Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for CliError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(msg.into()))
}

fn number(name: &str, v: &str) -> Result<u64, CliError> {
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| CliError(format!("{name}: '{v}' is not a number")))
}

fn u32_arg(name: &str, v: &str) -> Result<u32, CliError> {
    u32::try_from(number(name, v)?).map_err(|_| CliError(format!("{name}: {v} is too large")))
}

fn vram_mib(v: &str) -> Result<u64, CliError> {
    let mib = number("vram-mib", v)?;
    if !mib.is_power_of_two() || mib > (1 << 20) {
        return err(format!(
            "vram-mib: {mib} must be a power of two up to 1048576"
        ));
    }
    Ok(mib << 20)
}

/// `socket=PATH,vram-mib=N,serial=N,queues=N`
fn device_spec(s: &str, index: usize) -> Result<DeviceSpec, CliError> {
    let mut socket = None;
    let mut opts = DeviceOptions {
        serial: index as u32 + 1,
        ..Default::default()
    };
    for kv in s.split(',').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| CliError(format!("--device: '{kv}' is not key=value")))?;
        match k {
            "socket" => socket = Some(PathBuf::from(v)),
            "vram-mib" => opts.vram_size = vram_mib(v)?,
            "serial" => opts.serial = u32_arg("serial", v)?,
            "queues" => opts.queues = u32_arg("queues", v)?,
            "engines" => opts.engines = u32_arg("engines", v)?,
            _ => return err(format!("--device: unknown key '{k}'")),
        }
    }
    let socket = socket.ok_or_else(|| CliError("--device needs socket=PATH".into()))?;
    Ok(DeviceSpec { socket, opts })
}

fn parse_bench(mut it: impl Iterator<Item = String>) -> Result<Command, CliError> {
    let mut vram_size = 1 << 30;
    let mut engines = DeviceOptions::default().engines;
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| CliError(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--vram-mib" => vram_size = vram_mib(&value()?)?,
            "--engines" => engines = u32_arg("--engines", &value()?)?,
            "--help" | "-h" => return Ok(Command::Help),
            _ => return err(format!("bench: unknown argument '{a}'")),
        }
    }
    Ok(Command::Bench { vram_size, engines })
}

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut it = args.into_iter().peekable();
    if it.peek().map(String::as_str) == Some("bench") {
        it.next();
        return parse_bench(it);
    }
    let mut control = None;
    let mut inject = Vec::new();
    let mut top = DeviceOptions::default();
    let mut top_socket = None;
    let mut top_used = false;
    let mut extra = Vec::new();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(Command::Help);
        }
        let mut value = || -> Result<String, CliError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .ok_or_else(|| CliError(format!("{flag} needs a value"))),
            }
        };
        match flag.as_str() {
            "--socket" => top_socket = Some(PathBuf::from(value()?)),
            "--vram-mib" => {
                top.vram_size = vram_mib(&value()?)?;
                top_used = true;
            }
            "--serial" => {
                top.serial = u32_arg("--serial", &value()?)?;
                top_used = true;
            }
            "--queues" => {
                top.queues = u32_arg("--queues", &value()?)?;
                top_used = true;
            }
            "--engines" => {
                top.engines = u32_arg("--engines", &value()?)?;
                top_used = true;
            }
            "--device" => {
                let v = value()?;
                extra.push(v);
            }
            "--control" => control = Some(PathBuf::from(value()?)),
            "--inject" => inject.push(Knob::parse(&value()?).map_err(CliError)?),
            _ => return err(format!("unknown argument '{a}'\n{USAGE}")),
        }
    }
    let mut devices = Vec::new();
    match top_socket {
        Some(socket) => devices.push(DeviceSpec { socket, opts: top }),
        None if top_used => {
            return err("--vram-mib, --serial, --queues and --engines need --socket")
        }
        None => {}
    }
    for spec in &extra {
        let d = device_spec(spec, devices.len())?;
        devices.push(d);
    }
    if devices.is_empty() {
        return err(format!("no device given\n{USAGE}"));
    }
    for (i, d) in devices.iter().enumerate() {
        if devices[..i].iter().any(|o| o.socket == d.socket) {
            return err(format!("socket {} given twice", d.socket.display()));
        }
    }
    if control
        .as_ref()
        .is_some_and(|c| devices.iter().any(|d| &d.socket == c))
    {
        return err("the control socket cannot be a device socket");
    }
    Ok(Command::Serve(Args {
        devices,
        control,
        inject,
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
    }

    #[test]
    fn rejects_nonsense() {
        assert!(p("").is_err());
        assert!(p("--vram-mib 3 --socket /a").is_err());
        assert!(p("--socket").is_err());
        assert!(p("--socket /a --bogus").is_err());
        assert!(p("--device vram-mib=64").is_err());
        assert!(p("--device socket=/a --device socket=/a").is_err());
        assert!(p("--serial 1").is_err());
        assert!(p("--socket /a --inject explode").is_err());
        assert!(p("--socket /a --control /a").is_err());
        assert!(p("bench --bogus").is_err());
        assert_eq!(p("--help").unwrap(), Command::Help);
    }

    #[test]
    fn extensions() {
        match p("--socket /a --control /c --inject fail-dma=2 --inject hang-engine=copy").unwrap() {
            Command::Serve(a) => {
                assert_eq!(a.control, Some(PathBuf::from("/c")));
                assert_eq!(
                    a.inject,
                    vec![Knob::FailDma(2), Knob::Hang(crate::regs::Engine::Copy)]
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
