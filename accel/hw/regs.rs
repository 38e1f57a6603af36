// SPDX-License-Identifier: GPL-2.0

//! BAR0 registers, as `Documentation/hardware/registers.rst` defines them.
//!
//! Every register is 32 bits wide and little-endian. Only the identity block is used so far.

use kernel::io::register;

/// Size of BAR0. Accesses below it are checked at build time.
pub(crate) const BAR0_SIZE: usize = 0x10000;

/// What [`ID`] reads on a Vela device: the bytes "VELA".
pub(crate) const VELA_MAGIC: u32 = 0x414c_4556;

register! {
    /// Identifies the device: reads [`VELA_MAGIC`].
    pub(crate) ID(u32) @ 0x0000 {
        /// The magic value.
        31:0 magic;
    }

    /// Version of the register interface. The driver refuses a major version it does not know.
    pub(crate) VERSION(u32) @ 0x0004 {
        /// Incompatible interface changes.
        31:16 major;
        /// Compatible additions.
        15:0 minor;
    }

    /// What the device can do; bits not defined here read as zero.
    pub(crate) CAPS(u32) @ 0x0008 {
        /// Copy and fill engine.
        0:0 copy;
        /// Compute engine.
        1:1 compute;
        /// Device MMU with per-context page tables.
        2:2 mmu;
        /// Peer-to-peer DMA to other devices' BARs.
        3:3 p2p;
        /// Fault injection controls (device models only).
        4:4 fault_inject;
    }

    /// Serial number of this device.
    pub(crate) DEVICE_SERIAL(u32) @ 0x000c {
        31:0 serial;
    }

    /// VRAM size in bytes, bits 31:0.
    pub(crate) VRAM_SIZE_LO(u32) @ 0x0010 {
        31:0 value;
    }

    /// VRAM size in bytes, bits 63:32.
    pub(crate) VRAM_SIZE_HI(u32) @ 0x0014 {
        31:0 value;
    }

    /// How many queues and engines the device has.
    pub(crate) TOPOLOGY(u32) @ 0x0018 {
        /// Number of command queues.
        7:0 queues;
        /// Number of engines.
        15:8 engines;
    }

    /// Reads back what was last written; the reset value is zero. Used to check BAR0 access.
    pub(crate) SCRATCH(u32) @ 0x001c {
        31:0 value;
    }
}

register! {
    /// Pending interrupt sources; write 1 to clear (W1C).
    pub(crate) INT_STATUS(u32) @ 0x0040 {
        /// Queue N completed a command that carried the INTERRUPT flag (vector 1 + N).
        15:0 queues;
        /// A queue entered the error state (vector 0).
        16:16 queue_error;
        /// A context took an MMU fault (vector 0).
        17:17 mmu_fault;
    }

    /// Interrupt sources that send no message; 1 = masked. Every source is masked at reset.
    pub(crate) INT_MASK(u32) @ 0x0044 {
        15:0 queues;
        16:16 queue_error;
        17:17 mmu_fault;
    }

    /// Raises a source as if its event happened (write 1 to set); for self-tests.
    pub(crate) INT_TRIGGER(u32) @ 0x0048 {
        15:0 queues;
        16:16 queue_error;
        17:17 mmu_fault;
    }

    /// Queues in the error state, one bit per queue.
    pub(crate) QUEUE_ERROR_SUMMARY(u32) @ 0x0050 {
        15:0 queues;
    }
}
