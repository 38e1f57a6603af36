// SPDX-License-Identifier: GPL-2.0
//! `vela-model`: serve Vela devices over vfio-user. See `cli::USAGE`.

use std::process::ExitCode;

fn main() -> ExitCode {
    vela_model::run::init_logging();
    match vela_model::run::main(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vela-model: {e}");
            ExitCode::FAILURE
        }
    }
}
