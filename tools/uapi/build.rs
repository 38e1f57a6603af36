// SPDX-License-Identifier: GPL-2.0

//! Generates the bindings from `uapi/drm/vela_accel.h` itself, so the Rust view of the ABI
//! cannot drift from the header; bindgen's layout tests then check every size and offset.

use std::{env, path::PathBuf};

#[derive(Debug)]
struct ZeroCopy;

impl bindgen::callbacks::ParseCallbacks for ZeroCopy {
    fn add_derives(&self, info: &bindgen::callbacks::DeriveInfo<'_>) -> Vec<String> {
        // zerocopy's IntoBytes derive refuses a struct with implicit padding, which makes every
        // uapi struct's "no hidden padding" rule a compile-time check.
        if info.name.starts_with("drm_vela_") && info.kind == bindgen::callbacks::TypeKind::Struct {
            [
                "zerocopy::FromBytes",
                "zerocopy::IntoBytes",
                "zerocopy::Immutable",
                "zerocopy::KnownLayout",
            ]
            .map(String::from)
            .to_vec()
        } else {
            vec![]
        }
    }
}

fn main() {
    let header = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../uapi/drm/vela_accel.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let bindings = bindgen::Builder::default()
        .header(header.display().to_string())
        // drm.h: libdrm's copy of the kernel's uapi header.
        .clang_arg("-I/usr/include/libdrm")
        .allowlist_file(".*vela_accel\\.h")
        .derive_default(true)
        .layout_tests(true)
        .parse_callbacks(Box::new(ZeroCopy))
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {}: {e}", header.display()));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("vela_accel.rs");
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
