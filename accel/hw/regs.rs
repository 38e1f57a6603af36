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

/// Number of queue register blocks BAR0 has room for.
pub(crate) const MAX_QUEUES: usize = 16;
/// Number of MMU contexts.
pub(crate) const CONTEXTS: usize = 16;

register! {
    /// Context errors: queues stopped by an MMU fault, one bit per context.
    pub(crate) CTX_FAULT_SUMMARY(u32) @ 0x0054 {
        15:0 contexts;
    }

    /// Queue Q's ring base, bits 31:0 (a DPA; bit 63 selects VRAM).
    pub(crate) Q_RING_BASE_LO(u32)[MAX_QUEUES, stride = 0x40] @ 0x1000 {
        31:0 value;
    }

    /// Queue Q's ring base, bits 63:32.
    pub(crate) Q_RING_BASE_HI(u32)[MAX_QUEUES, stride = 0x40] @ 0x1004 {
        31:0 value;
    }

    /// Queue Q's ring size: 2^LOG2_SLOTS slots of 64 bytes.
    pub(crate) Q_RING_SIZE(u32)[MAX_QUEUES, stride = 0x40] @ 0x1008 {
        4:0 log2_slots;
    }

    /// The MMU context queue Q's commands use.
    pub(crate) Q_CONTEXT(u32)[MAX_QUEUES, stride = 0x40] @ 0x100c {
        3:0 context;
    }

    /// Queue Q's control.
    pub(crate) Q_CONTROL(u32)[MAX_QUEUES, stride = 0x40] @ 0x1010 {
        /// Run the queue.
        0:0 enable;
        /// Write 1: abort the queue; ENABLE, HEAD, TAIL and COMPLETED return to 0.
        1:1 reset;
    }

    /// Queue Q's status.
    pub(crate) Q_STATUS(u32)[MAX_QUEUES, stride = 0x40] @ 0x1014 {
        0:0 idle;
        1:1 error;
        2:2 fault_stopped;
        3:3 enabled;
        15:8 error_code;
    }

    /// Queue Q's consumer index (the slot the device reads next).
    pub(crate) Q_HEAD(u32)[MAX_QUEUES, stride = 0x40] @ 0x1018 {
        15:0 slot;
    }

    /// Queue Q's doorbell: writing the new tail starts the commands before it.
    pub(crate) Q_DOORBELL(u32)[MAX_QUEUES, stride = 0x40] @ 0x1020 {
        15:0 tail;
    }

    /// Context C's root page table, bits 31:0 (a DPA).
    pub(crate) CTX_PT_BASE_LO(u32)[CONTEXTS, stride = 0x20] @ 0x2000 {
        31:0 value;
    }

    /// Context C's root page table, bits 63:32.
    pub(crate) CTX_PT_BASE_HI(u32)[CONTEXTS, stride = 0x20] @ 0x2004 {
        31:0 value;
    }

    /// Context C's control.
    pub(crate) CTX_CONTROL(u32)[CONTEXTS, stride = 0x20] @ 0x2008 {
        /// Translate the context's addresses through its page tables.
        0:0 enable;
        /// Write 1: clear the fault record and restart the context's queues.
        1:1 fault_clear;
        /// Write 1: drop cached translations.
        2:2 invalidate;
    }
}

register! {
    /// Device-wide commands.
    pub(crate) DEVICE_CONTROL(u32) @ 0x0030 {
        /// Write 1: global reset (queues, contexts, interrupt state; VRAM and counters kept).
        0:0 reset;
    }

    /// Device-wide status.
    pub(crate) DEVICE_STATUS(u32) @ 0x0034 {
        /// The device accepts register writes (0 while a reset is in progress).
        0:0 ready;
    }

    /// Queue Q's completed-command count.
    pub(crate) Q_COMPLETED(u32)[MAX_QUEUES, stride = 0x40] @ 0x1024 {
        31:0 count;
    }

    /// Queue Q's fence location, bits 31:0: the DPA SIGNAL writes, never translated (bits 2:0
    /// are not stored).
    pub(crate) Q_FENCE_BASE_LO(u32)[MAX_QUEUES, stride = 0x40] @ 0x1030 {
        31:0 value;
    }

    /// Queue Q's fence location, bits 63:32 (bit 31: the location is in VRAM).
    pub(crate) Q_FENCE_BASE_HI(u32)[MAX_QUEUES, stride = 0x40] @ 0x1034 {
        31:0 value;
    }
}

/// Number of hardware event counters.
pub(crate) const COUNTERS: usize = 13;

register! {
    /// Counter N, bits 31:0; reading it latches the whole 64-bit value for `COUNTER_HI`.
    pub(crate) COUNTER_LO(u32)[COUNTERS, stride = 8] @ 0x0100 {
        31:0 value;
    }

    /// Counter N, bits 63:32 of the value the last `COUNTER_LO` read latched.
    pub(crate) COUNTER_HI(u32)[COUNTERS, stride = 8] @ 0x0104 {
        31:0 value;
    }
}
