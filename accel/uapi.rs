// SPDX-License-Identifier: GPL-2.0

//! The ioctl ABI of `uapi/drm/vela_accel.h`, as bindgen reads it at build time.

#![allow(
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    unreachable_pub,
    clippy::all
)]

include!(env!("VELA_UAPI_GENERATED"));
