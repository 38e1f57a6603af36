// SPDX-License-Identifier: GPL-2.0
//! The control socket: a line protocol for tests to inject faults into a
//! running model and read its state.
//!
//! Each request is one line, `[dev=N] VERB`, where VERB is a knob (see
//! `inject::Knob::parse`), `status` or `devices`. Each reply is one line that
//! starts with `ok` or `error:`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use crate::device::Device;
use crate::inject::Knob;
use vela_hw::regs::Counter;

/// Answer one request line.
pub fn handle(devices: &[Arc<Device>], line: &str) -> String {
    let mut words = line.split_whitespace().peekable();
    let mut index = 0usize;
    if let Some(d) = words.peek().and_then(|w| w.strip_prefix("dev=")) {
        match d.parse() {
            Ok(i) => index = i,
            Err(_) => return format!("error: bad device index '{d}'"),
        }
        words.next();
    }
    let Some(verb) = words.next() else {
        return "error: empty request".into();
    };
    if words.next().is_some() {
        return "error: one verb per line".into();
    }
    if verb == "devices" {
        return format!("ok {}", devices.len());
    }
    let Some(dev) = devices.get(index) else {
        return format!("error: no device {index}");
    };
    if verb == "status" {
        let c = |k| dev.counter(k);
        return format!(
            "ok serial={} {} commands={} queue-errors={} mmu-faults={} dma-errors={} interrupts={} suppressed={} p2p-bytes={} resets={}",
            dev.opts.serial,
            dev.inject.describe(),
            c(Counter::CommandsCompleted),
            c(Counter::QueueErrors),
            c(Counter::MmuFaults),
            c(Counter::DmaErrors),
            c(Counter::InterruptsSent),
            c(Counter::InterruptsSuppressed),
            c(Counter::P2pBytes),
            c(Counter::Resets),
        );
    }
    match Knob::parse(verb) {
        Ok(knob) => {
            dev.inject.apply(knob);
            dev.wake();
            "ok".into()
        }
        Err(e) => format!("error: {e}"),
    }
}

fn serve_client(devices: &[Arc<Device>], stream: UnixStream) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let reply = handle(devices, &line?);
        writeln!(out, "{reply}")?;
    }
    Ok(())
}

/// Create the control socket and serve it on a background thread.
pub fn spawn(path: &Path, devices: Vec<Arc<Device>>) -> std::io::Result<()> {
    let listener = crate::server::bind_published(path)?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(s) => {
                    if let Err(e) = serve_client(&devices, s) {
                        log::warn!("control client: {e}");
                    }
                }
                Err(e) => log::warn!("control socket: {e}"),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceOptions;
    use vela_hw::Engine;

    #[test]
    fn requests() {
        let devs = vec![
            Device::new(DeviceOptions::default()).unwrap(),
            Device::new(DeviceOptions {
                serial: 7,
                ..Default::default()
            })
            .unwrap(),
        ];
        assert_eq!(handle(&devs, "devices"), "ok 2");
        assert_eq!(handle(&devs, "dev=1 hang-engine=compute"), "ok");
        assert!(devs[1].inject.hung(Engine::Compute));
        assert!(!devs[0].inject.hung(Engine::Compute));
        assert!(handle(&devs, "dev=1 status").starts_with("ok serial=7 hang-copy=0 hang-compute=1"));
        assert_eq!(handle(&devs, "fail-dma=2"), "ok");
        assert!(handle(&devs, "status").contains("fail-dma=2"));
        assert!(handle(&devs, "dev=5 status").starts_with("error"));
        assert!(handle(&devs, "dev=x status").starts_with("error"));
        assert!(handle(&devs, "").starts_with("error"));
        assert!(handle(&devs, "explode").starts_with("error"));
        assert!(handle(&devs, "clear now").starts_with("error"));
    }
}
