// SPDX-License-Identifier: GPL-2.0
//! The Vela accelerator's hardware interface, as `Documentation/hardware/` specifies it: the
//! PCI identity, the BAR0 register map with typed fields, the page-table entry format, the
//! command formats and the compute kernels.
//!
//! This is the one definition the device model, the runtime, the selftests and the tools
//! share. Its tests read the spec pages' tables and compare them with these definitions
//! (`tests/spec.rs`), and compare the driver's register map in `accel/hw/regs.rs` with them
//! (`tests/driver.rs`); change the spec and this crate together.
//!
//! Glossary:
//! - DPA: device physical address. Bit 63 set means "local VRAM, offset in bits 62:0"; clear
//!   means a PCI bus address (system memory through the host's DMA mappings, or a peer's BAR2).
//! - VA: a context's virtual address, translated by the device MMU when the context has
//!   translation enabled, otherwise taken as a DPA.
//! - Slot: one 64-byte command in a ring.

#[macro_use]
pub mod bits;
pub mod cmd;
pub mod compute;
pub mod mmu;
pub mod pci;
pub mod regs;

pub use bits::Field;
pub use cmd::{Engine, Header, Opcode};
pub use compute::Kernel;
pub use mmu::{dpa, IovaEntry, Pte};
pub use regs::{Counter, FaultReason, PartError, QueueError};
