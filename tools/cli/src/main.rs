// SPDX-License-Identifier: GPL-2.0

//! `vela`: look at and use Vela accelerators from the command line.

use std::{fs, path::PathBuf, process::ExitCode};

use clap::{error::ErrorKind, CommandFactory, Parser};

mod args;
mod bench;
mod cmd;
mod report;

use args::{Cli, Cmd};

fn accel_nodes() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("/dev/accel")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `vela info`: one table row (or JSON object) per Vela device.
fn info(json: bool) -> ExitCode {
    let mut rows = Vec::new();
    for node in accel_nodes() {
        let Ok(f) = fs::File::open(&node) else {
            continue;
        };
        // Other accel drivers' nodes answer QUERY with an error (or a different ioctl); skip.
        let Ok(q) = vela_uapi::query_device(&f) else {
            continue;
        };
        rows.push(report::DeviceRow::new(&node.display().to_string(), &q));
    }
    if rows.is_empty() {
        eprintln!("vela: no Vela device found (is vela.ko loaded?)");
        return ExitCode::FAILURE;
    }
    if json {
        println!("{}", report::json(&report::Info { devices: rows }));
    } else {
        print!("{}", report::info_table(&rows));
    }
    ExitCode::SUCCESS
}

/// A usage error found after parsing (a range outside the buffer, ...), as clap reports its
/// own: with the command's usage, and exit code 2.
fn usage_error(sub: &str, msg: &str) -> clap::Error {
    let mut cli = Cli::command();
    cli.build();
    let mut cmd = cli.find_subcommand(sub).cloned().unwrap_or(cli);
    cmd.error(ErrorKind::ValueValidation, msg)
}

fn main() -> ExitCode {
    // --help and --version exit 0; usage errors name the argument and exit 2.
    let cli = Cli::parse();
    let device = cli.device.as_deref();
    let Some(command) = cli.command else {
        return info(false);
    };
    let r = match &command {
        Cmd::Info(j) => return info(j.json),
        Cmd::Stats(j) => cmd::stats(device, j.json),
        Cmd::Alloc(a) => cmd::alloc(device, a),
        Cmd::Fill(a) => cmd::fill(device, a),
        Cmd::Read(a) => cmd::read(device, a),
        Cmd::Run(a) => cmd::run(device, a),
        Cmd::Bench(a) => bench::bench(device, a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(cmd::Fail::Usage(m)) => {
            let e = usage_error(command.name(), &m);
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
        Err(cmd::Fail::Error(m)) => {
            eprintln!("vela: {m}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_after_parsing() {
        let e = usage_error("fill", "FILL needs a 4-byte aligned --offset and --len");
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.starts_with("error: FILL needs a 4-byte aligned --offset"),
            "{text}"
        );
        assert!(text.contains("Usage: vela fill"), "{text}");
    }
}
