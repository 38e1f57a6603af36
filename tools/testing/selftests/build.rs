// SPDX-License-Identifier: GPL-2.0

//! Embeds vela-fuzz's corpus (tools/testing/fuzz/corpus) in the binary, so the guest replays
//! the corpus of the commit it was built from without the repository being there.

use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "prog"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from(
        "/// The corpus: (file name, program text).\npub const CORPUS: &[(&str, &str)] = &[\n",
    );
    for p in &names {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            p.display().to_string()
        ));
    }
    out.push_str("];\n");
    let cov = dir.join("COVERAGE");
    println!("cargo:rerun-if-changed={}", cov.display());
    let recorded = fs::read_to_string(&cov).unwrap_or_default();
    out.push_str(&format!(
        "/// What replaying the corpus reached when it was grown (`COVERAGE`).\npub const RECORDED: &str = {:?};\n",
        recorded.trim()
    ));
    let dest = Path::new(&env::var("OUT_DIR").unwrap_or_default()).join("corpus.rs");
    if let Err(e) = fs::write(&dest, out) {
        panic!("write {}: {e}", dest.display());
    }
}
