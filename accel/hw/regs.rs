// SPDX-License-Identifier: GPL-2.0

//! BAR0 registers, as `Documentation/hardware/registers.rst` defines them.
//!
//! Every register is 32 bits wide and little-endian. The per-queue and per-context blocks are
//! reached through [`QueueId`] and [`ContextId`], whose range is checked once when they are made.

use kernel::{
    bits::bit_u32,
    io::{
        register,
        register::{Array, RegisterArrayLoc},
    },
    num::Bounded,
    prelude::*,
};

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
        0:0 copy => bool;
        /// Compute engine.
        1:1 compute => bool;
        /// Device MMU with per-context page tables.
        2:2 mmu => bool;
        /// Peer-to-peer DMA to other devices' BARs.
        3:3 p2p => bool;
        /// Fault injection controls (device models only).
        4:4 fault_inject => bool;
        /// The function can be cut into partitions ([`PartitionId`], BAR4 windows).
        5:5 partitions => bool;
        /// This is a partition's register window (a vGPU), not a whole function.
        6:6 virtual_fn => bool;
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

    /// How many partition slots the function has (0 unless `CAPS.PARTITIONS`).
    pub(crate) TOPOLOGY3(u32) @ 0x0024 {
        3:0 partitions;
    }

    /// Engine time of the PF's own queues per scheduling turn, microseconds (0: one command).
    pub(crate) PF_QUANTUM(u32) @ 0x0028 {
        31:0 us;
    }
}

register! {
    /// Pending interrupt sources; write 1 to clear (W1C).
    pub(crate) INT_STATUS(u32) @ 0x0040 {
        /// Queue N completed a command that carried the INTERRUPT flag (vector 1 + N).
        15:0 queues;
        /// A queue entered the error state (vector 0).
        16:16 queue_error => bool;
        /// A context took an MMU fault (vector 0).
        17:17 mmu_fault => bool;
        /// A partition presented a page request or raised a vector (vector 0).
        18:18 partition => bool;
    }

    /// Interrupt sources that send no message; 1 = masked. Every source is masked at reset.
    pub(crate) INT_MASK(u32) @ 0x0044 {
        15:0 queues;
        16:16 queue_error => bool;
        17:17 mmu_fault => bool;
        18:18 partition => bool;
    }

    /// Raises a source as if its event happened (write 1 to set); for self-tests.
    pub(crate) INT_TRIGGER(u32) @ 0x0048 {
        15:0 queues;
        16:16 queue_error => bool;
        17:17 mmu_fault => bool;
        18:18 partition => bool;
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

/// Defines the index type of a family of register blocks (queues, contexts): a number below
/// `$count`, checked once where it is made, so that the blocks' registers are reached with no
/// check (and no error path) where they are used.
macro_rules! block_index {
    ($(#[$attr:meta])* $name:ident < $count:ident, $at:ident: $($reg:ident),* $(,)?) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) struct $name(u32);

        // Not every family uses every item, as with `register!`'s accessors.
        #[allow(dead_code)]
        impl $name {
            /// The block of number `index`; `EINVAL` if the device has no such block.
            pub(crate) fn new(index: u32) -> Result<Self> {
                if (index as usize) < $count {
                    Ok(Self(index))
                } else {
                    Err(EINVAL)
                }
            }

            /// Every block, in order.
            pub(crate) fn all() -> impl Iterator<Item = Self> {
                (0..$count as u32).map(Self)
            }

            /// The block's number.
            pub(crate) fn get(self) -> u32 {
                self.0
            }

            /// The block's number as an array index. The remainder never changes it (`new`
            /// checked it); it shows the compiler that it is in bounds, which the build-time
            /// checks of `Array::at` and `bit_u32` need.
            #[inline(always)]
            pub(crate) fn index(self) -> usize {
                self.0 as usize % $count
            }

            /// The block's bit in the registers that have one per block.
            #[inline(always)]
            pub(crate) fn bit(self) -> u32 {
                bit_u32(self.0 % $count as u32)
            }
        }

        $(
        #[allow(dead_code)]
        impl $reg {
            /// The location of this register in block `id`.
            #[inline(always)]
            pub(crate) fn $at(id: $name) -> RegisterArrayLoc<Self> {
                Self::at(id.index())
            }
        }
        )*
    };
}

block_index! {
    /// A queue register block, one of [`MAX_QUEUES`].
    QueueId < MAX_QUEUES, at_queue:
        Q_RING_BASE_LO,
        Q_RING_BASE_HI,
        Q_RING_SIZE,
        Q_CONTEXT,
        Q_CONTROL,
        Q_STATUS,
        Q_HEAD,
        Q_DOORBELL,
        Q_COMPLETED,
        Q_FENCE_BASE_LO,
        Q_FENCE_BASE_HI,
}

block_index! {
    /// An MMU context, one of [`CONTEXTS`]. Context 0 is the kernel's (translation off).
    ContextId < CONTEXTS, at_context:
        CTX_PT_BASE_LO,
        CTX_PT_BASE_HI,
        CTX_CONTROL,
}

block_index! {
    /// A partition slot, one of [`PARTITIONS`] (`Documentation/hardware/partitions.rst`).
    PartitionId < PARTITIONS, at_partition:
        PART_CONTROL,
        PART_STATUS,
        PART_VRAM_BASE_LO,
        PART_VRAM_BASE_HI,
        PART_VRAM_SIZE_LO,
        PART_VRAM_SIZE_HI,
        PART_QUEUES,
        PART_CONTEXTS,
        PART_QUANTUM,
        PART_IOVA_TABLE_LO,
        PART_IOVA_TABLE_HI,
        PART_IOVA_PAGES,
        PART_PAGE_REQ_LO,
        PART_PAGE_REQ_HI,
        PART_PAGE_RESP,
        PART_VEC_PENDING,
}

impl ContextId {
    /// The kernel's context: translation off, addresses are DPAs.
    pub(crate) const KERNEL: Self = Self(0);
}

// `Q_CONTEXT.CONTEXT` is 4 bits: every value it can hold is a context.
kernel::static_assert!(CONTEXTS == 1 << 4);

impl From<Bounded<u32, 4>> for ContextId {
    fn from(v: Bounded<u32, 4>) -> Self {
        Self(v.get())
    }
}

impl From<ContextId> for Bounded<u32, 4> {
    fn from(c: ContextId) -> Self {
        // As in `index`: the remainder changes nothing and shows that the value fits.
        Bounded::from_expr(c.0 % CONTEXTS as u32)
    }
}

impl QUEUE_ERROR_SUMMARY {
    /// Whether queue `q` is in the error state.
    pub(crate) fn queue(self, q: QueueId) -> bool {
        self.queues().get() & q.bit() != 0
    }
}

impl CTX_FAULT_SUMMARY {
    /// Whether context `c` holds a fault.
    pub(crate) fn context(self, c: ContextId) -> bool {
        self.contexts().get() & c.bit() != 0
    }
}

/// Why a queue entered the error state (`Q_STATUS.ERROR_CODE`,
/// `Documentation/hardware/queues.rst`, Errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum QueueError {
    /// Unknown opcode in the command header.
    BadOpcode = 1,
    /// A reserved field or flag of the command is not zero.
    Reserved = 2,
    /// Bad ring size or tail, or a slot that cannot be read.
    BadRing = 3,
    /// An operand's DPA is unreachable.
    DmaError = 4,
    /// An operand is not aligned as the command requires.
    BadAlignment = 5,
    /// A length or count above its limit or not a multiple of the element size.
    BadLength = 6,
    /// Unknown kernel id in a KERNEL command.
    BadKernel = 7,
}

impl TryFrom<Bounded<u32, 8>> for QueueError {
    /// The code, when it names no error (0: the queue is not in the error state).
    type Error = u32;

    fn try_from(v: Bounded<u32, 8>) -> core::result::Result<Self, u32> {
        Ok(match v.get() {
            1 => Self::BadOpcode,
            2 => Self::Reserved,
            3 => Self::BadRing,
            4 => Self::DmaError,
            5 => Self::BadAlignment,
            6 => Self::BadLength,
            7 => Self::BadKernel,
            n => return Err(n),
        })
    }
}

impl From<QueueError> for Bounded<u32, 8> {
    fn from(e: QueueError) -> Self {
        Bounded::from(e as u8)
    }
}

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
        3:0 context => ContextId;
    }

    /// Queue Q's control.
    pub(crate) Q_CONTROL(u32)[MAX_QUEUES, stride = 0x40] @ 0x1010 {
        /// Run the queue.
        0:0 enable => bool;
        /// Write 1: abort the queue; ENABLE, HEAD, TAIL and COMPLETED return to 0.
        1:1 reset => bool;
    }

    /// Queue Q's status.
    pub(crate) Q_STATUS(u32)[MAX_QUEUES, stride = 0x40] @ 0x1014 {
        0:0 idle => bool;
        1:1 error => bool;
        2:2 fault_stopped => bool;
        3:3 enabled => bool;
        /// Why ERROR is set; 0 otherwise.
        15:8 error_code ?=> QueueError;
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
        0:0 enable => bool;
        /// Write 1: clear the fault record and restart the context's queues.
        1:1 fault_clear => bool;
        /// Write 1: drop cached translations.
        2:2 invalidate => bool;
    }
}

register! {
    /// Device-wide commands.
    pub(crate) DEVICE_CONTROL(u32) @ 0x0030 {
        /// Write 1: global reset (queues, contexts, interrupt state; VRAM and counters kept).
        0:0 reset => bool;
    }

    /// Device-wide status.
    pub(crate) DEVICE_STATUS(u32) @ 0x0034 {
        /// The device accepts register writes (0 while a reset is in progress).
        0:0 ready => bool;
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

/// Number of partition register blocks BAR0 has room for, and of windows in BAR4.
pub(crate) const PARTITIONS: usize = 8;

/// Why a partition's ENABLE or SCRUB was refused (`PART_STATUS.CONFIG_CODE`,
/// `Documentation/hardware/partitions.rst`, Enable checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PartitionRefusal {
    /// VRAM base or size not 2 MiB aligned, or the IOVA table not 4 KiB aligned.
    BadAlignment = 1,
    /// Size 0, or the range runs past VRAM.
    BadRange = 2,
    /// The range overlaps another enabled partition's.
    VramOverlap = 3,
    /// A queue does not exist or another enabled partition owns it.
    QueueConflict = 4,
    /// Another enabled partition owns a context.
    ContextConflict = 5,
    /// The IOVA table is where a partition could write it.
    BadIovaTable = 6,
    /// SCRUB while enabled, or ENABLE while scrubbing.
    Enabled = 7,
}

impl TryFrom<Bounded<u32, 8>> for PartitionRefusal {
    /// The code, when it names no refusal.
    type Error = u32;

    fn try_from(v: Bounded<u32, 8>) -> core::result::Result<Self, u32> {
        Ok(match v.get() {
            1 => Self::BadAlignment,
            2 => Self::BadRange,
            3 => Self::VramOverlap,
            4 => Self::QueueConflict,
            5 => Self::ContextConflict,
            6 => Self::BadIovaTable,
            7 => Self::Enabled,
            n => return Err(n),
        })
    }
}

impl From<PartitionRefusal> for Bounded<u32, 8> {
    fn from(e: PartitionRefusal) -> Self {
        Bounded::from(e as u8)
    }
}

register! {
    /// Partition P's control.
    pub(crate) PART_CONTROL(u32)[PARTITIONS, stride = 0x40] @ 0x3000 {
        /// 0 -> 1: check the configuration and open the window; 1 -> 0: reset and close.
        0:0 enable => bool;
        /// Write 1: abort the partition's queues, clear its contexts and interrupt state.
        1:1 reset => bool;
        /// Write 1, while disabled: zero-fill the VRAM range.
        2:2 scrub => bool;
        /// Write 1: drop cached IOVA translations (complete when the write completes).
        3:3 invalidate_iova => bool;
    }

    /// Partition P's status.
    pub(crate) PART_STATUS(u32)[PARTITIONS, stride = 0x40] @ 0x3004 {
        0:0 enabled => bool;
        1:1 scrubbing => bool;
        2:2 page_request => bool;
        3:3 config_error => bool;
        15:8 config_code ?=> PartitionRefusal;
    }

    /// Partition P's VRAM range: offset, bits 31:0 (2 MiB aligned).
    pub(crate) PART_VRAM_BASE_LO(u32)[PARTITIONS, stride = 0x40] @ 0x3008 {
        31:0 value;
    }

    /// Partition P's VRAM range: offset, bits 63:32.
    pub(crate) PART_VRAM_BASE_HI(u32)[PARTITIONS, stride = 0x40] @ 0x300c {
        31:0 value;
    }

    /// Partition P's VRAM range: size, bits 31:0 (a 2 MiB multiple).
    pub(crate) PART_VRAM_SIZE_LO(u32)[PARTITIONS, stride = 0x40] @ 0x3010 {
        31:0 value;
    }

    /// Partition P's VRAM range: size, bits 63:32.
    pub(crate) PART_VRAM_SIZE_HI(u32)[PARTITIONS, stride = 0x40] @ 0x3014 {
        31:0 value;
    }

    /// The PF queues partition P owns, one bit each.
    pub(crate) PART_QUEUES(u32)[PARTITIONS, stride = 0x40] @ 0x3018 {
        15:0 queues;
    }

    /// The contexts partition P owns, one bit each.
    pub(crate) PART_CONTEXTS(u32)[PARTITIONS, stride = 0x40] @ 0x301c {
        15:0 contexts;
    }

    /// Partition P's engine time per scheduling turn, microseconds.
    pub(crate) PART_QUANTUM(u32)[PARTITIONS, stride = 0x40] @ 0x3020 {
        31:0 us;
    }

    /// DPA of partition P's IOVA table, bits 31:0 (4 KiB aligned).
    pub(crate) PART_IOVA_TABLE_LO(u32)[PARTITIONS, stride = 0x40] @ 0x3024 {
        31:0 value;
    }

    /// DPA of partition P's IOVA table, bits 63:32 (bit 31: in VRAM).
    pub(crate) PART_IOVA_TABLE_HI(u32)[PARTITIONS, stride = 0x40] @ 0x3028 {
        31:0 value;
    }

    /// Entries in partition P's IOVA table.
    pub(crate) PART_IOVA_PAGES(u32)[PARTITIONS, stride = 0x40] @ 0x302c {
        31:0 pages;
    }

    /// Partition P's pending page request: IOVA bits 31:12, and whether it is a write.
    pub(crate) PART_PAGE_REQ_LO(u32)[PARTITIONS, stride = 0x40] @ 0x3030 {
        0:0 write => bool;
        31:12 page;
    }

    /// Partition P's pending page request: IOVA bits 63:32.
    pub(crate) PART_PAGE_REQ_HI(u32)[PARTITIONS, stride = 0x40] @ 0x3034 {
        31:0 value;
    }

    /// The host's answer to partition P's page request.
    pub(crate) PART_PAGE_RESP(u32)[PARTITIONS, stride = 0x40] @ 0x3038 {
        /// Write 1: the entry is valid now; run the command again.
        0:0 retry => bool;
        /// Write 1: fail the access with DMA_ERROR.
        1:1 deny => bool;
    }

    /// Partition P's vectors that fired since the host last looked (write 1 to clear).
    pub(crate) PART_VEC_PENDING(u32)[PARTITIONS, stride = 0x40] @ 0x303c {
        16:0 vectors;
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
