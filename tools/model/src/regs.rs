// SPDX-License-Identifier: GPL-2.0
//! The Vela register map, command formats and page-table format.
//!
//! This module is the single source of truth the model uses, and it mirrors
//! `Documentation/hardware/` section by section: every constant here has a row
//! in a table there. Change both together; the unit tests at the bottom pin
//! the values the driver contract fixes.
//!
//! Glossary:
//! - DPA: device physical address. Bit 63 set means "local VRAM, offset in
//!   bits 62:0"; bit 63 clear means a PCI bus address (system memory through
//!   the host's DMA mappings, or a peer device's BAR2).
//! - VA: a context's virtual address, translated by the device MMU when the
//!   context has translation enabled, otherwise taken as a DPA.
//! - Slot: one 64-byte command descriptor in a ring.

/// PCI identity (fixed by `identity.rst.contract`).
pub mod pci {
    pub const VENDOR_ID: u16 = 0x1f5a;
    pub const DEVICE_ID: u16 = 0x0001;
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1f5a;
    pub const SUBSYSTEM_ID: u16 = 0x0001;
    pub const REVISION: u8 = 0x01;
    /// Processing accelerator, base class 0x12, subclass 0, prog-if 0.
    pub const CLASS_CODE: u32 = 0x12_0000;

    /// Size of BAR0, the register BAR.
    pub const BAR0_SIZE: u64 = 64 * 1024;

    /// Config space offsets of the capabilities the device implements.
    pub const CAP_PCIE: usize = 0x40;
    pub const CAP_MSIX: usize = 0x80;
    /// Full PCIe extended config space; no extended capabilities are present.
    pub const CONFIG_SIZE: usize = 4096;
}

/// BAR0 identity registers (fixed by `identity.rst.contract`).
pub const ID: u32 = 0x0000;
pub const VERSION: u32 = 0x0004;
pub const CAPS: u32 = 0x0008;
pub const DEVICE_SERIAL: u32 = 0x000c;
pub const VRAM_SIZE_LO: u32 = 0x0010;
pub const VRAM_SIZE_HI: u32 = 0x0014;
pub const TOPOLOGY: u32 = 0x0018;
pub const SCRATCH: u32 = 0x001c;

/// "VELA" as little-endian bytes.
pub const ID_VALUE: u32 = 0x414c_4556;
pub const VERSION_MAJOR: u32 = 1;
pub const VERSION_MINOR: u32 = 0;
pub const VERSION_VALUE: u32 = (VERSION_MAJOR << 16) | VERSION_MINOR;

pub mod caps {
    pub const COPY: u32 = 1 << 0;
    pub const COMPUTE: u32 = 1 << 1;
    pub const MMU: u32 = 1 << 2;
    pub const P2P: u32 = 1 << 3;
    pub const FAULT_INJECT: u32 = 1 << 4;
    pub const ALL: u32 = COPY | COMPUTE | MMU | P2P | FAULT_INJECT;
}

/// Second topology word: what a driver needs to size its tables.
pub const TOPOLOGY2: u32 = 0x0020;
pub mod topology2 {
    pub const CONTEXTS_SHIFT: u32 = 0;
    pub const VECTORS_SHIFT: u32 = 8;
    pub const VA_BITS_SHIFT: u32 = 16;
}

/// Global control: writing RESET resets the whole function except VRAM contents.
pub const DEVICE_CONTROL: u32 = 0x0030;
pub mod device_control {
    pub const RESET: u32 = 1 << 0;
}
pub const DEVICE_STATUS: u32 = 0x0034;
pub mod device_status {
    pub const READY: u32 = 1 << 0;
    pub const QUEUE_ERROR: u32 = 1 << 1;
    pub const MMU_FAULT: u32 = 1 << 2;
}

/// Interrupt sources: one bit per queue, plus the two error sources.
pub const INT_STATUS: u32 = 0x0040;
pub const INT_MASK: u32 = 0x0044;
pub const INT_TRIGGER: u32 = 0x0048;
pub mod int {
    /// Bits 15:0: queue N completion interrupt.
    pub const QUEUE_MASK: u32 = 0xffff;
    pub const QUEUE_ERROR: u32 = 1 << 16;
    pub const MMU_FAULT: u32 = 1 << 17;
    pub const VALID: u32 = QUEUE_MASK | QUEUE_ERROR | MMU_FAULT;
    pub const MASK_RESET: u32 = 0xffff_ffff;
}
/// Bit N: queue N is stopped in the error state.
pub const QUEUE_ERROR_SUMMARY: u32 = 0x0050;
/// Bit N: context N holds a recorded fault.
pub const CTX_FAULT_SUMMARY: u32 = 0x0054;

/// Counters: 64-bit, read LO first (it latches HI).
pub const COUNTER_BASE: u32 = 0x0100;
pub const COUNTER_CONTROL: u32 = 0x0180;
pub mod counter_control {
    pub const CLEAR: u32 = 1 << 0;
}

/// Indices of the counters; counter N sits at `COUNTER_BASE + 8 * N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    CommandsCompleted = 0,
    BytesWritten = 1,
    KernelsExecuted = 2,
    FencesWritten = 3,
    InterruptsSent = 4,
    InterruptsSuppressed = 5,
    Doorbells = 6,
    PageWalks = 7,
    MmuFaults = 8,
    QueueErrors = 9,
    DmaErrors = 10,
    P2pBytes = 11,
    Resets = 12,
}
pub const NUM_COUNTERS: usize = 13;

/// Queue register blocks.
pub const QUEUE_BASE: u32 = 0x1000;
pub const QUEUE_STRIDE: u32 = 0x40;
pub const MAX_QUEUES: usize = 16;
pub mod queue {
    pub const RING_BASE_LO: u32 = 0x00;
    pub const RING_BASE_HI: u32 = 0x04;
    pub const RING_SIZE: u32 = 0x08;
    pub const CONTEXT: u32 = 0x0c;
    pub const CONTROL: u32 = 0x10;
    pub const STATUS: u32 = 0x14;
    pub const HEAD: u32 = 0x18;
    pub const TAIL: u32 = 0x1c;
    pub const DOORBELL: u32 = 0x20;
    pub const COMPLETED: u32 = 0x24;
    pub const ERROR_ADDR_LO: u32 = 0x28;
    pub const ERROR_ADDR_HI: u32 = 0x2c;
    pub const FENCE_BASE_LO: u32 = 0x30;
    pub const FENCE_BASE_HI: u32 = 0x34;

    /// RING_SIZE bits 4:0: log2 of the number of slots.
    pub const RING_SIZE_LOG2_MASK: u32 = 0x1f;
    pub const RING_LOG2_MIN: u32 = 1;
    pub const RING_LOG2_MAX: u32 = 16;
    /// Ring base alignment: one slot.
    pub const RING_ALIGN: u64 = 64;
    /// Fence base alignment: one 64-bit store.
    pub const FENCE_ALIGN: u64 = 8;
    pub const CONTEXT_MASK: u32 = 0xf;

    pub const CONTROL_ENABLE: u32 = 1 << 0;
    pub const CONTROL_RESET: u32 = 1 << 1;

    pub const STATUS_IDLE: u32 = 1 << 0;
    pub const STATUS_ERROR: u32 = 1 << 1;
    pub const STATUS_FAULT_STOPPED: u32 = 1 << 2;
    pub const STATUS_ENABLED: u32 = 1 << 3;
    pub const STATUS_ERROR_CODE_SHIFT: u32 = 8;
}

/// Queue error codes (QUEUE_STATUS bits 15:8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum QueueError {
    #[default]
    None = 0,
    BadOpcode = 1,
    ReservedNonZero = 2,
    BadRing = 3,
    DmaError = 4,
    BadAlignment = 5,
    BadLength = 6,
    BadKernel = 7,
}

/// Context register blocks.
pub const CTX_BASE: u32 = 0x2000;
pub const CTX_STRIDE: u32 = 0x20;
pub const NUM_CONTEXTS: usize = 16;
pub mod ctx {
    pub const PT_BASE_LO: u32 = 0x00;
    pub const PT_BASE_HI: u32 = 0x04;
    pub const CONTROL: u32 = 0x08;
    pub const FAULT_STATUS: u32 = 0x0c;
    pub const FAULT_ADDR_LO: u32 = 0x10;
    pub const FAULT_ADDR_HI: u32 = 0x14;

    /// PT_BASE_LO bits 11:0 are reserved: the root table is 4 KiB aligned.
    pub const PT_BASE_LO_MASK: u32 = 0xffff_f000;

    pub const CONTROL_ENABLE: u32 = 1 << 0;
    pub const CONTROL_FAULT_CLEAR: u32 = 1 << 1;
    pub const CONTROL_INVALIDATE: u32 = 1 << 2;

    pub const FAULT_VALID: u32 = 1 << 0;
    pub const FAULT_WRITE: u32 = 1 << 1;
    pub const FAULT_OVERFLOW: u32 = 1 << 2;
    pub const FAULT_REASON_SHIFT: u32 = 8;
    pub const FAULT_LEVEL_SHIFT: u32 = 12;
    pub const FAULT_QUEUE_SHIFT: u32 = 16;
}

/// MMU fault reasons (CTX_FAULT_STATUS bits 11:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FaultReason {
    NotPresent = 1,
    WriteProtect = 2,
    ReadProtect = 3,
    AddressSize = 4,
    TableBusError = 5,
    Injected = 6,
    Reserved = 7,
}

/// MSI-X table and PBA, both in BAR0 (BIR 0).
pub const MSIX_TABLE: u32 = 0x8000;
pub const MSIX_PBA: u32 = 0x9000;
pub const MSIX_ENTRY_SIZE: u32 = 16;
/// Vector 0 signals queue errors and MMU faults; queue N uses vector N + 1.
pub const VECTOR_ERROR: usize = 0;

pub const fn queue_vector(queue: usize) -> usize {
    queue + 1
}

/// Device physical addresses.
pub mod dpa {
    pub const VRAM: u64 = 1 << 63;
    pub const OFFSET_MASK: u64 = !VRAM;
}

/// Command descriptors: 64 bytes, little-endian.
pub mod cmd {
    pub const SIZE: usize = 64;

    pub const OPCODE_MASK: u32 = 0xff;
    pub const FLAG_INTERRUPT: u32 = 1 << 8;
    pub const HEADER_RESERVED: u32 = !(OPCODE_MASK | FLAG_INTERRUPT);

    pub const NOP: u8 = 0x00;
    pub const FENCE: u8 = 0x01;
    pub const COPY: u8 = 0x02;
    pub const FILL: u8 = 0x03;
    pub const SIGNAL: u8 = 0x04;
    pub const KERNEL: u8 = 0x10;

    /// Largest COPY or FILL in one command.
    pub const MAX_TRANSFER: u64 = 1 << 32;
    /// Largest element count of an element-wise or reduction kernel.
    pub const MAX_ELEMENTS: u32 = 1 << 24;
    /// Largest M * N * K of one MATMUL_F32.
    pub const MAX_MATMUL_WORK: u64 = 1 << 28;
}

/// Compute kernels (KERNEL command, dword 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kernel {
    AddF32 = 0x01,
    MulF32 = 0x02,
    FmaF32 = 0x03,
    AddU32 = 0x04,
    MulU32 = 0x05,
    FmaU32 = 0x06,
    SumF32 = 0x07,
    SumU32 = 0x08,
    Crc32c = 0x09,
    MatmulF32 = 0x0a,
}

impl Kernel {
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0x01 => Self::AddF32,
            0x02 => Self::MulF32,
            0x03 => Self::FmaF32,
            0x04 => Self::AddU32,
            0x05 => Self::MulU32,
            0x06 => Self::FmaU32,
            0x07 => Self::SumF32,
            0x08 => Self::SumU32,
            0x09 => Self::Crc32c,
            0x0a => Self::MatmulF32,
            _ => return None,
        })
    }
}

/// Engines, as counted in TOPOLOGY bits 15:8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Copy = 0,
    Compute = 1,
}
/// Most engines a device may have (model option `engines`).
pub const MAX_ENGINES: u32 = 8;

/// Page-table entries: 64-bit, 512 per 4 KiB table, three levels.
pub mod pte {
    pub const VALID: u64 = 1 << 0;
    pub const READ: u64 = 1 << 1;
    pub const WRITE: u64 = 1 << 2;
    /// Level-1 leaf mapping a 2 MiB page.
    pub const HUGE: u64 = 1 << 3;
    /// Target (next table or page) is in local VRAM, not on the bus.
    pub const VRAM: u64 = 1 << 4;
    /// Bits 11:5 must be zero.
    pub const RESERVED_LOW: u64 = 0x7f << 5;
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

    pub const VA_BITS: u32 = 39;
    pub const LEVELS: u32 = 3;
    pub const PAGE_SIZE: u64 = 4096;
    pub const HUGE_PAGE_SIZE: u64 = 2 << 20;
}

// The register blocks must not overlap; checked when the model is built.
const _: () = {
    let queues_end = QUEUE_BASE + QUEUE_STRIDE * MAX_QUEUES as u32;
    let ctx_end = CTX_BASE + CTX_STRIDE * NUM_CONTEXTS as u32;
    assert!(COUNTER_BASE + 8 * NUM_COUNTERS as u32 <= COUNTER_CONTROL);
    assert!(COUNTER_CONTROL < QUEUE_BASE);
    assert!(queues_end <= CTX_BASE);
    assert!(ctx_end <= MSIX_TABLE);
    assert!(MSIX_TABLE + MSIX_ENTRY_SIZE * (MAX_QUEUES as u32 + 1) <= MSIX_PBA);
    assert!(MSIX_PBA as u64 + 8 <= pci::BAR0_SIZE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_values_are_pinned() {
        assert_eq!(pci::VENDOR_ID, 0x1f5a);
        assert_eq!(pci::DEVICE_ID, 0x0001);
        assert_eq!(pci::CLASS_CODE, 0x120000);
        assert_eq!(&ID_VALUE.to_le_bytes(), b"VELA");
        assert_eq!(VERSION_VALUE, 0x0001_0000);
        assert_eq!(
            [
                ID,
                VERSION,
                CAPS,
                DEVICE_SERIAL,
                VRAM_SIZE_LO,
                VRAM_SIZE_HI,
                TOPOLOGY,
                SCRATCH
            ],
            [0x00, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c]
        );
        assert_eq!(caps::ALL, 0x1f);
    }
}
