// SPDX-License-Identifier: GPL-2.0

//! `vela`: look at and use Vela accelerators from the command line.

use std::{fs, path::PathBuf, process::ExitCode};

mod args;
mod bench;
mod cmd;

fn accel_nodes() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("/dev/accel")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn caps(c: u64) -> String {
    let names = [
        (vela_uapi::DRM_VELA_CAP_COPY, "copy"),
        (vela_uapi::DRM_VELA_CAP_COMPUTE, "compute"),
        (vela_uapi::DRM_VELA_CAP_MMU, "mmu"),
        (vela_uapi::DRM_VELA_CAP_P2P, "p2p"),
        (vela_uapi::DRM_VELA_CAP_FAULT_INJECT, "fault-inject"),
    ];
    let s: Vec<&str> = names
        .iter()
        .filter(|(b, _)| c & u64::from(*b) != 0)
        .map(|(_, n)| *n)
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join(",")
    }
}

/// `vela info`: one table row per Vela device.
fn info() -> ExitCode {
    let mut rows = Vec::new();
    for node in accel_nodes() {
        let Ok(f) = fs::File::open(&node) else {
            continue;
        };
        // Other accel drivers' nodes answer QUERY with an error (or a different ioctl); skip.
        let Ok(q) = vela_uapi::query_device(&f) else {
            continue;
        };
        rows.push([
            node.display().to_string(),
            format!("{:04x}:{:04x} rev {}", q.vendor_id, q.device_id, q.revision),
            format!("{}.{}", q.hw_version >> 16, q.hw_version & 0xffff),
            q.serial.to_string(),
            format!("{} MiB", q.vram_size >> 20),
            q.num_queues.to_string(),
            q.num_engines.to_string(),
            caps(q.caps),
        ]);
    }
    if rows.is_empty() {
        eprintln!("vela: no Vela device found (is vela.ko loaded?)");
        return ExitCode::FAILURE;
    }
    let head = [
        "DEVICE", "PCI ID", "HW", "SERIAL", "VRAM", "QUEUES", "ENGINES", "CAPS",
    ];
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<0$}", w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(head.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    ExitCode::SUCCESS
}

const USAGE: &str = "\
usage: vela [--device /dev/accel/accelN] COMMAND [OPTIONS]
  info                                   list Vela devices
  stats                                  VRAM use and the device's event counters
  alloc --size N [--count C] [--system] [--cpu-visible] [--vram-only]
                                         create buffers and show what BO_INFO says
  fill  --size N [--pattern P] [--system] [--offset O] [--len L]
                                         FILL a buffer on the device, verify through a mapping
  read  --size N [--system] [--pattern P] [--offset O] [--len L]
                                         hexdump a buffer (after a device FILL with P if given)
  run KERNEL --count N [--n N] [--k K] [--param P] [--seed S] [--system]
                                         run a compute kernel on device buffers and compare
                                         with the CPU reference; KERNEL: add_f32 mul_f32
                                         fma_f32 add_u32 mul_u32 fma_u32 sum_f32 sum_u32
                                         crc32c matmul_f32
  bench [--seconds S] [--mib M] [--live N] [--max-seconds T] [--raw-ns NS]
                                         bandwidth, submit latency and allocation ratios
Sizes take K/M/G suffixes or 0x hex.";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::Args::parse(raw, cmd::SWITCHES) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vela: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sub = args.positional.first().map(String::as_str);
    let r = match sub {
        Some("info") | None => return info(),
        Some("alloc") => cmd::alloc(&args),
        Some("fill") => cmd::fill(&args),
        Some("read") => cmd::read(&args),
        Some("run") => cmd::run(&args),
        Some("bench") => bench::bench(&args),
        Some("stats") => cmd::stats(&args),
        Some("help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(cmd::Fail::Usage(format!("unknown command {other}"))),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(cmd::Fail::Usage(m)) => {
            eprintln!("vela: {m}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(cmd::Fail::Error(m)) => {
            eprintln!("vela: {m}");
            ExitCode::FAILURE
        }
    }
}
