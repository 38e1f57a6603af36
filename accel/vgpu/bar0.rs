// SPDX-License-Identifier: GPL-2.0

//! BAR0 of a vGPU instance: the partition's register window (`Documentation/vgpu.rst`,
//! BAR0).
//!
//! The hardware partitions (`Documentation/hardware/partitions.rst`) give every partition a
//! window in the PF's BAR4 that looks like a whole device, and every access to BAR0 will be
//! forwarded there: the hardware enforces the partition's bounds. Until the core programs
//! partitions, [`Window::Emulated`] answers the identity block from what the core knows
//! (what the window will answer, so a guest driver probes the same way) and reads 0 /
//! ignores writes everywhere else. Forwarding is [`Window::Partition`]'s arm in
//! [`Bar0::read`]/[`Bar0::write`].

use kernel::prelude::*;

use crate::hw::{self, regs};

/// CAPS bits a window reports: COPY, COMPUTE, MMU and VIRTUAL (`0x47`): no P2P, fault
/// injection or partitions.
const CAPS_MASK: u32 = 0x7;
pub(crate) const CAPS_VIRTUAL: u32 = 1 << 6;
/// TOPOLOGY2.VA_BITS of a Vela function (`registers.rst`).
const VA_BITS: u32 = 39;

const ID: u32 = 0x0000;
const VERSION: u32 = 0x0004;
const CAPS: u32 = 0x0008;
const DEVICE_SERIAL: u32 = 0x000c;
const VRAM_SIZE_LO: u32 = 0x0010;
const VRAM_SIZE_HI: u32 = 0x0014;
const TOPOLOGY: u32 = 0x0018;
const SCRATCH: u32 = 0x001c;
const TOPOLOGY2: u32 = 0x0020;
const DEVICE_STATUS: u32 = 0x0034;

/// Where the instance's BAR0 accesses go.
pub(crate) enum Window {
    /// No hardware partition yet: the identity block is emulated.
    Emulated,
}

/// The register window of one instance.
pub(crate) struct Bar0 {
    window: Window,
    /// The identity the window reports.
    version: u32,
    caps: u32,
    serial: u32,
    vram_size: u64,
    topology: u32,
    topology2: u32,
    /// The instance's own SCRATCH (emulated window only).
    scratch: u32,
}

impl Bar0 {
    pub(crate) fn new(id: &hw::Identity, vram_size: u64, queues: u32, contexts: u32) -> Self {
        Self {
            window: Window::Emulated,
            version: id.hw_version(),
            caps: (id.caps & CAPS_MASK) | CAPS_VIRTUAL,
            serial: id.serial,
            vram_size,
            topology: (queues & 0xff) | (u32::from(id.engines) << 8),
            topology2: (contexts & 0xff) | (((queues + 1) & 0xff) << 8) | (VA_BITS << 16),
            scratch: 0,
        }
    }

    /// Checks an access: 4 bytes, 4-byte aligned, inside the 64 KiB window.
    pub(crate) fn check(offset: u64, len: usize) -> Result<u32> {
        if len != 4 || offset % 4 != 0 || offset >= regs::BAR0_SIZE as u64 {
            return Err(EINVAL);
        }
        Ok(offset as u32)
    }

    pub(crate) fn read(&self, offset: u32) -> u32 {
        match self.window {
            Window::Emulated => match offset {
                ID => regs::VELA_MAGIC,
                VERSION => self.version,
                CAPS => self.caps,
                DEVICE_SERIAL => self.serial,
                VRAM_SIZE_LO => self.vram_size as u32,
                VRAM_SIZE_HI => (self.vram_size >> 32) as u32,
                TOPOLOGY => self.topology,
                SCRATCH => self.scratch,
                TOPOLOGY2 => self.topology2,
                // READY: the window accepts writes.
                DEVICE_STATUS => 1,
                // Queue, context and interrupt registers: no partition behind them yet.
                _ => 0,
            },
        }
    }

    pub(crate) fn write(&mut self, offset: u32, value: u32) {
        match self.window {
            Window::Emulated => {
                if offset == SCRATCH {
                    self.scratch = value;
                }
            }
        }
    }

    /// A reset of the instance (VFIO_DEVICE_RESET, FLR): the window's registers go back to
    /// their reset values.
    pub(crate) fn reset(&mut self) {
        self.scratch = 0;
    }
}
