// SPDX-License-Identifier: GPL-2.0

//! The accel frontend: the DRM accel device (`/dev/accel/accelN`) and its ioctls.
//!
//! It owns the uapi and nothing else: whatever touches the hardware goes through
//! [`crate::hw::Chip`].

mod driver;
mod exports;
mod file;
mod gem;
mod placement;
mod prime;
mod query;
mod queue;
mod sched;
mod submit;
mod sysmem;
mod vm;

pub(crate) use driver::{register, unbind, Hooks, VelaDevice};
