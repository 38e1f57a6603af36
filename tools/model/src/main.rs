// SPDX-License-Identifier: GPL-2.0
//! `vela-model`: serve Vela devices over vfio-user. See `vela-model --help` (`cli.rs`).

use std::process::ExitCode;

fn main() -> ExitCode {
    vela_model::run::init_logging();
    match vela_model::run::main(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        // --help and --version (exit 0), usage errors (exit 2), printed by clap.
        Err(vela_model::run::RunError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("vela-model: {e}");
            ExitCode::FAILURE
        }
    }
}
