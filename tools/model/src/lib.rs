// SPDX-License-Identifier: GPL-2.0
//! Device model of the Vela PCIe accelerator.
//!
//! The hardware it implements is specified in `Documentation/hardware/`;
//! the register map, command and page-table formats it implements are the `vela-hw` crate.

mod bar0;
pub mod bench;
pub mod cli;
pub mod compute;
pub mod config;
pub mod control;
pub mod device;
pub mod dma;
pub mod engine;
pub mod fabric;
pub mod inject;
pub mod irq;
pub mod mem;
pub mod mmu;
pub mod partition;
pub mod rig;
pub mod run;
pub mod server;
