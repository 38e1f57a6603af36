// SPDX-License-Identifier: GPL-2.0
//! BAR0 registers (registers.rst, queues.rst, mmu.rst, interrupts.rst).
//!
//! Offsets are plain `u32` constants so they can be matched on; each register's fields are a
//! [`bitfield`](crate::bits) type named after it. [`GLOBAL`], [`QUEUE_BLOCK`],
//! [`CONTEXT_BLOCK`] and [`COUNTER_BLOCK`] describe the whole map as data, for the spec check
//! and for anyone who wants to walk it.

use crate::bits::Field;

pub const ID: u32 = 0x0000;
pub const VERSION: u32 = 0x0004;
pub const CAPS: u32 = 0x0008;
pub const DEVICE_SERIAL: u32 = 0x000c;
pub const VRAM_SIZE_LO: u32 = 0x0010;
pub const VRAM_SIZE_HI: u32 = 0x0014;
pub const TOPOLOGY: u32 = 0x0018;
pub const SCRATCH: u32 = 0x001c;
pub const TOPOLOGY2: u32 = 0x0020;
/// Partition slots (partitions.rst).
pub const TOPOLOGY3: u32 = 0x0024;
/// The PF's own queues' execution quantum, microseconds (partitions.rst, Scheduling).
pub const PF_QUANTUM: u32 = 0x0028;
pub const DEVICE_CONTROL: u32 = 0x0030;
pub const DEVICE_STATUS: u32 = 0x0034;
pub const INT_STATUS: u32 = 0x0040;
pub const INT_MASK: u32 = 0x0044;
pub const INT_TRIGGER: u32 = 0x0048;
/// Bit N: queue N is in the error state.
pub const QUEUE_ERROR_SUMMARY: u32 = 0x0050;
/// Bit N: context N holds a fault.
pub const CTX_FAULT_SUMMARY: u32 = 0x0054;
/// Counter N's low half is at `COUNTER_BASE + COUNTER_STRIDE * N`, its high half 4 bytes on.
pub const COUNTER_BASE: u32 = 0x0100;
pub const COUNTER_STRIDE: u32 = 8;
pub const COUNTER_CONTROL: u32 = 0x0180;
pub const QUEUE_BASE: u32 = 0x1000;
pub const QUEUE_STRIDE: u32 = 0x40;
pub const CTX_BASE: u32 = 0x2000;
pub const CTX_STRIDE: u32 = 0x20;
/// Partition P's host registers (PF BAR0 only) are at `PART_BASE + PART_STRIDE * P`.
pub const PART_BASE: u32 = 0x3000;
pub const PART_STRIDE: u32 = 0x40;
pub const MSIX_TABLE: u32 = 0x8000;
pub const MSIX_ENTRY_SIZE: u32 = 16;
pub const MSIX_PBA: u32 = 0x9000;

/// Most queues a device has (`TOPOLOGY.QUEUES` is 1 to 16).
pub const MAX_QUEUES: usize = 16;
/// MMU contexts, every device.
pub const NUM_CONTEXTS: usize = 16;
/// Most engines a device may have (model option `engines`).
pub const MAX_ENGINES: u32 = 8;
/// Partition slots of a partitionable function (`TOPOLOGY3.PARTITIONS`).
pub const NUM_PARTITIONS: usize = 8;

/// What `ID` reads: "VELA" as little-endian bytes.
pub const ID_VALUE: u32 = u32::from_le_bytes(*b"VELA");
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 0;
/// What `VERSION` reads.
pub const VERSION_VALUE: u32 = Version(0)
    .with_major(VERSION_MAJOR)
    .with_minor(VERSION_MINOR)
    .0;
/// What `INT_MASK` reads after reset: every source masked.
pub const INT_MASK_RESET: u32 = u32::MAX;

/// MSI-X vector of queue errors and MMU faults.
pub const VECTOR_ERROR: usize = 0;

/// MSI-X vector of queue `queue`'s completions.
pub const fn queue_vector(queue: usize) -> usize {
    queue + 1
}

/// Offsets inside a queue's block (`QUEUE_BASE + QUEUE_STRIDE * Q`).
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

    pub const RING_LOG2_MIN: u32 = 1;
    pub const RING_LOG2_MAX: u32 = 16;
    /// One slot: the bits below `QRingBaseLo::ADDR`.
    pub const RING_ALIGN: u64 = 1 << super::QRingBaseLo::ADDR.lo;
    /// One 64-bit store: the bits below `QFenceBaseLo::ADDR`.
    pub const FENCE_ALIGN: u64 = 1 << super::QFenceBaseLo::ADDR.lo;

    /// Offset of register `off` of queue `q` in BAR0.
    pub const fn reg(q: usize, off: u32) -> u32 {
        super::QUEUE_BASE + super::QUEUE_STRIDE * q as u32 + off
    }
}

/// Offsets inside a context's block (`CTX_BASE + CTX_STRIDE * C`).
pub mod ctx {
    pub const PT_BASE_LO: u32 = 0x00;
    pub const PT_BASE_HI: u32 = 0x04;
    pub const CONTROL: u32 = 0x08;
    pub const FAULT_STATUS: u32 = 0x0c;
    pub const FAULT_ADDR_LO: u32 = 0x10;
    pub const FAULT_ADDR_HI: u32 = 0x14;

    /// Offset of register `off` of context `c` in BAR0.
    pub const fn reg(c: usize, off: u32) -> u32 {
        super::CTX_BASE + super::CTX_STRIDE * c as u32 + off
    }
}

/// Offsets inside a partition's block (`PART_BASE + PART_STRIDE * P`).
pub mod part {
    pub const CONTROL: u32 = 0x00;
    pub const STATUS: u32 = 0x04;
    pub const VRAM_BASE_LO: u32 = 0x08;
    pub const VRAM_BASE_HI: u32 = 0x0c;
    pub const VRAM_SIZE_LO: u32 = 0x10;
    pub const VRAM_SIZE_HI: u32 = 0x14;
    pub const QUEUES: u32 = 0x18;
    pub const CONTEXTS: u32 = 0x1c;
    pub const QUANTUM: u32 = 0x20;
    pub const IOVA_TABLE_LO: u32 = 0x24;
    pub const IOVA_TABLE_HI: u32 = 0x28;
    pub const IOVA_PAGES: u32 = 0x2c;
    pub const PAGE_REQ_LO: u32 = 0x30;
    pub const PAGE_REQ_HI: u32 = 0x34;
    pub const PAGE_RESP: u32 = 0x38;
    pub const VEC_PENDING: u32 = 0x3c;

    /// A partition's VRAM base and size are multiples of this (2 MiB).
    pub const VRAM_ALIGN: u64 = 2 << 20;
    /// The IOVA table's DPA is a multiple of this (4 KiB).
    pub const IOVA_TABLE_ALIGN: u64 = 4096;
    /// One IOVA table entry maps this much (4 KiB).
    pub const IOVA_PAGE_SIZE: u64 = 4096;

    /// Offset of register `off` of partition `p` in BAR0.
    pub const fn reg(p: usize, off: u32) -> u32 {
        super::PART_BASE + super::PART_STRIDE * p as u32 + off
    }
}

/// Offset of counter `c`'s low half in BAR0.
pub const fn counter_lo(c: Counter) -> u32 {
    COUNTER_BASE + COUNTER_STRIDE * c as u32
}

/// Offset of counter `c`'s high half in BAR0.
pub const fn counter_hi(c: Counter) -> u32 {
    counter_lo(c) + 4
}

bitfield! {
    /// `VERSION`.
    pub struct Version(u32) {
        /// A driver refuses a major version it does not know.
        31:16 MAJOR => major, with_major: u16;
        /// Minor versions only add registers and commands.
        15:0 MINOR => minor, with_minor: u16;
    }
}

bitfield! {
    /// `CAPS`: what the device has.
    pub struct Caps(u32) {
        /// Copy engine (COPY, FILL, FENCE, SIGNAL).
        0:0 COPY => copy, with_copy: bool;
        /// Compute engine (KERNEL).
        1:1 COMPUTE => compute, with_compute: bool;
        2:2 MMU => mmu, with_mmu: bool;
        /// Peer-to-peer to other Vela BAR2s.
        3:3 P2P => p2p, with_p2p: bool;
        /// Fault-injection hooks (model only).
        4:4 FAULT_INJECT => fault_inject, with_fault_inject: bool;
        /// The function can be partitioned (partition registers, BAR4 windows).
        5:5 PARTITIONS => partitions, with_partitions: bool;
        /// This is a partition's register window, not a whole function.
        6:6 VIRTUAL => is_virtual, with_virtual: bool;
    }
}

impl Caps {
    /// What the model's function reports in BAR0: every capability but VIRTUAL.
    pub const ALL: Caps = Caps(0)
        .with_copy(true)
        .with_compute(true)
        .with_mmu(true)
        .with_p2p(true)
        .with_fault_inject(true)
        .with_partitions(true);

    /// What a partition's register window reports: the engines and the MMU, marked VIRTUAL.
    /// No P2P (a partition reaches no peer BAR), no fault injection (a host knob), no
    /// partitions of its own.
    pub const WINDOW: Caps = Caps(0)
        .with_copy(true)
        .with_compute(true)
        .with_mmu(true)
        .with_virtual(true);
}

bitfield! {
    /// `TOPOLOGY`.
    pub struct Topology(u32) {
        /// Number of queues, 1 to 16.
        7:0 QUEUES => queues, with_queues: u8;
        /// Number of engines.
        15:8 ENGINES => engines, with_engines: u8;
    }
}

bitfield! {
    /// `TOPOLOGY2`: what a driver needs to size its tables.
    pub struct Topology2(u32) {
        7:0 CONTEXTS => contexts, with_contexts: u8;
        /// Queues + 1.
        15:8 VECTORS => vectors, with_vectors: u8;
        23:16 VA_BITS => va_bits, with_va_bits: u8;
    }
}

bitfield! {
    /// `TOPOLOGY3`.
    pub struct Topology3(u32) {
        /// Partition slots (8 on a partitionable function, 0 in a window).
        3:0 PARTITIONS => partitions, with_partitions: u8;
    }
}

bitfield! {
    /// `PF_QUANTUM` and `PART_QUANTUM`.
    pub struct Quantum(u32) {
        /// Microseconds of engine time per turn; 0: one command per turn.
        31:0 US => us, with_us: u32;
    }
}

bitfield! {
    /// `DEVICE_CONTROL`.
    pub struct DeviceControl(u32) {
        /// W1: global reset.
        0:0 RESET => reset, with_reset: bool;
    }
}

bitfield! {
    /// `DEVICE_STATUS`.
    pub struct DeviceStatus(u32) {
        /// The device accepts register writes; 0 during a reset.
        0:0 READY => ready, with_ready: bool;
        1:1 QUEUE_ERROR => queue_error, with_queue_error: bool;
        2:2 MMU_FAULT => mmu_fault, with_mmu_fault: bool;
    }
}

bitfield! {
    /// `INT_STATUS`, `INT_MASK` and `INT_TRIGGER`: one bit per interrupt source.
    pub struct IntSources(u32) {
        /// Bit N: queue N completed a command with the INTERRUPT flag (vector 1 + N).
        15:0 QUEUES => queues, with_queues: u16;
        /// A queue entered the error state (vector 0).
        16:16 QUEUE_ERROR => queue_error, with_queue_error: bool;
        /// A context recorded a fault (vector 0).
        17:17 MMU_FAULT => mmu_fault, with_mmu_fault: bool;
        /// A partition raised a vector or a page request (vector 0; PF only).
        18:18 PARTITION => partition, with_partition: bool;
    }
}

impl IntSources {
    /// Every source the spec defines; writes to other bits do nothing.
    pub const VALID: u32 = Self::QUEUES.mask32()
        | Self::QUEUE_ERROR.mask32()
        | Self::MMU_FAULT.mask32()
        | Self::PARTITION.mask32();

    /// The source bit of queue `q`'s completions.
    pub const fn queue(q: usize) -> u32 {
        1 << (Self::QUEUES.lo as usize + q)
    }
}

bitfield! {
    /// `QUEUE_ERROR_SUMMARY`.
    pub struct QueueErrorSummary(u32) {
        /// Bit N: queue N is in the error state.
        15:0 QUEUES => queues, with_queues: u16;
    }
}

bitfield! {
    /// `CTX_FAULT_SUMMARY`.
    pub struct CtxFaultSummary(u32) {
        /// Bit N: context N holds a fault.
        15:0 CONTEXTS => contexts, with_contexts: u16;
    }
}

bitfield! {
    /// `COUNTER_CONTROL`.
    pub struct CounterControl(u32) {
        /// W1: set every counter to 0.
        0:0 CLEAR => clear, with_clear: bool;
    }
}

bitfield! {
    /// `Q_RING_BASE_LO`: the ring's DPA, bits 31:0; the ring is one slot aligned.
    pub struct QRingBaseLo(u32) {
        31:6 ADDR => addr, with_addr: u32;
    }
}

bitfield! {
    /// `Q_RING_SIZE`.
    pub struct QRingSize(u32) {
        /// The ring has 2^LOG2_SLOTS slots.
        4:0 LOG2_SLOTS => log2_slots, with_log2_slots: u8;
    }
}

bitfield! {
    /// `Q_CONTEXT`.
    pub struct QContext(u32) {
        3:0 CONTEXT => context, with_context: u8;
    }
}

bitfield! {
    /// `Q_CONTROL`.
    pub struct QControl(u32) {
        /// Run the queue.
        0:0 ENABLE => enable, with_enable: bool;
        /// W1: abort the queue.
        1:1 RESET => reset, with_reset: bool;
    }
}

bitfield! {
    /// `Q_STATUS`.
    pub struct QStatus(u32) {
        0:0 IDLE => idle, with_idle: bool;
        1:1 ERROR => error, with_error: bool;
        2:2 FAULT_STOPPED => fault_stopped, with_fault_stopped: bool;
        3:3 ENABLED => enabled, with_enabled: bool;
        /// A [`QueueError`]; 0 unless ERROR.
        15:8 ERROR_CODE => error_code, with_error_code: u8;
    }
}

bitfield! {
    /// `Q_HEAD`.
    pub struct QHead(u32) {
        /// Next slot to execute.
        15:0 SLOT => slot, with_slot: u16;
    }
}

bitfield! {
    /// `Q_TAIL` and `Q_DOORBELL`.
    pub struct QTail(u32) {
        /// Producer index.
        15:0 TAIL => tail, with_tail: u16;
    }
}

bitfield! {
    /// `Q_FENCE_BASE_LO`: the fence's DPA, bits 31:0; 8-byte aligned.
    pub struct QFenceBaseLo(u32) {
        31:3 ADDR => addr, with_addr: u32;
    }
}

bitfield! {
    /// `CTX_PT_BASE_LO`: the root table's DPA, bits 31:0; 4 KiB aligned.
    pub struct CtxPtBaseLo(u32) {
        31:12 ADDR => addr, with_addr: u32;
    }
}

bitfield! {
    /// `CTX_CONTROL`.
    pub struct CtxControl(u32) {
        /// Translate through the page tables; 0: VAs are DPAs.
        0:0 ENABLE => enable, with_enable: bool;
        /// W1: clear the fault record and restart the context's queues.
        1:1 FAULT_CLEAR => fault_clear, with_fault_clear: bool;
        /// W1: drop cached translations.
        2:2 INVALIDATE => invalidate, with_invalidate: bool;
    }
}

bitfield! {
    /// `CTX_FAULT_STATUS`.
    pub struct CtxFaultStatus(u32) {
        0:0 VALID => valid, with_valid: bool;
        /// The access was a write.
        1:1 WRITE => write, with_write: bool;
        /// More faults happened after the recorded one.
        2:2 OVERFLOW => overflow, with_overflow: bool;
        /// A [`FaultReason`].
        11:8 REASON => reason, with_reason: u8;
        /// Table level where the walk stopped.
        13:12 LEVEL => level, with_level: u8;
        /// Queue of the faulting command.
        19:16 QUEUE => queue, with_queue: u8;
    }
}

bitfield! {
    /// An MSI-X table entry's vector control word (entry + 0xc).
    pub struct MsixVectorControl(u32) {
        0:0 MASK => mask, with_mask: bool;
    }
}

bitfield! {
    /// `PART_CONTROL`.
    pub struct PartControl(u32) {
        /// Give the partition its resources and open its window.
        0:0 ENABLE => enable, with_enable: bool;
        /// W1: abort the partition's work and clear its state.
        1:1 RESET => reset, with_reset: bool;
        /// W1: zero-fill the partition's VRAM range (only while disabled).
        2:2 SCRUB => scrub, with_scrub: bool;
        /// W1: drop cached IOVA translations.
        3:3 INVALIDATE_IOVA => invalidate_iova, with_invalidate_iova: bool;
    }
}

bitfield! {
    /// `PART_STATUS`.
    pub struct PartStatus(u32) {
        0:0 ENABLED => enabled, with_enabled: bool;
        1:1 SCRUBBING => scrubbing, with_scrubbing: bool;
        /// `PART_PAGE_REQ` holds a request waiting for `PART_PAGE_RESP`.
        2:2 PAGE_REQUEST => page_request, with_page_request: bool;
        /// The last ENABLE or SCRUB was refused; CONFIG_CODE says why.
        3:3 CONFIG_ERROR => config_error, with_config_error: bool;
        /// A [`PartError`].
        15:8 CONFIG_CODE => config_code, with_config_code: u8;
    }
}

bitfield! {
    /// `PART_QUEUES`.
    pub struct PartQueues(u32) {
        /// Bit N: the partition owns queue N.
        15:0 QUEUES => queues, with_queues: u16;
    }
}

bitfield! {
    /// `PART_CONTEXTS`.
    pub struct PartContexts(u32) {
        /// Bit N: the partition owns context N.
        15:0 CONTEXTS => contexts, with_contexts: u16;
    }
}

bitfield! {
    /// `PART_PAGE_REQ_LO`.
    pub struct PartPageReqLo(u32) {
        /// The request is for a write.
        0:0 WRITE => write, with_write: bool;
        /// IOVA bits 31:12 of the page.
        31:12 PAGE => page, with_page: u32;
    }
}

bitfield! {
    /// `PART_PAGE_RESP`.
    pub struct PartPageResp(u32) {
        /// W1: the entry is fixed; re-execute the command.
        0:0 RETRY => retry, with_retry: bool;
        /// W1: fail the access with DMA_ERROR.
        1:1 DENY => deny, with_deny: bool;
    }
}

bitfield! {
    /// `PART_VEC_PENDING`.
    pub struct PartVecPending(u32) {
        /// Bit V: the partition's vector V fired (local numbering).
        16:0 VECTORS => vectors, with_vectors: u32;
    }
}

spec_enum! {
    /// Why ENABLE or SCRUB was refused (`PART_STATUS.CONFIG_CODE`, partitions.rst).
    #[derive(Default)]
    pub enum PartError: u8 {
        /// No error.
        #[default]
        None = 0 => "-",
        BadAlignment = 1 => "BAD_ALIGNMENT",
        BadRange = 2 => "BAD_RANGE",
        VramOverlap = 3 => "VRAM_OVERLAP",
        QueueConflict = 4 => "QUEUE_CONFLICT",
        ContextConflict = 5 => "CONTEXT_CONFLICT",
        BadIovaTable = 6 => "BAD_IOVA_TABLE",
        Enabled = 7 => "ENABLED",
    }
}

spec_enum! {
    /// Why a queue is in the error state (`Q_STATUS.ERROR_CODE`, queues.rst).
    #[derive(Default)]
    pub enum QueueError: u8 {
        /// Not in the error state.
        #[default]
        None = 0 => "-",
        BadOpcode = 1 => "BAD_OPCODE",
        ReservedNonZero = 2 => "RESERVED",
        BadRing = 3 => "BAD_RING",
        DmaError = 4 => "DMA_ERROR",
        BadAlignment = 5 => "BAD_ALIGNMENT",
        BadLength = 6 => "BAD_LENGTH",
        BadKernel = 7 => "BAD_KERNEL",
        BadContext = 8 => "BAD_CONTEXT",
    }
}

spec_enum! {
    /// Why a translation failed (`CTX_FAULT_STATUS.REASON`, mmu.rst).
    pub enum FaultReason: u8 {
        NotPresent = 1 => "NOT_PRESENT",
        WriteProtect = 2 => "WRITE_PROTECT",
        ReadProtect = 3 => "READ_PROTECT",
        AddressSize = 4 => "ADDRESS_SIZE",
        TableBusError = 5 => "TABLE_BUS",
        Injected = 6 => "INJECTED",
        Reserved = 7 => "RESERVED_BIT",
    }
}

spec_enum! {
    /// Event counters: counter N is at [`counter_lo`].
    pub enum Counter: u32 {
        CommandsCompleted = 0 => "COMMANDS_COMPLETED",
        BytesWritten = 1 => "BYTES_WRITTEN",
        KernelsExecuted = 2 => "KERNELS_EXECUTED",
        FencesWritten = 3 => "FENCES_WRITTEN",
        InterruptsSent = 4 => "INTERRUPTS_SENT",
        InterruptsSuppressed = 5 => "INTERRUPTS_SUPPRESSED",
        Doorbells = 6 => "DOORBELLS",
        PageWalks = 7 => "PAGE_WALKS",
        MmuFaults = 8 => "MMU_FAULTS",
        QueueErrors = 9 => "QUEUE_ERRORS",
        DmaErrors = 10 => "DMA_ERRORS",
        P2pBytes = 11 => "P2P_BYTES",
        Resets = 12 => "RESETS",
    }
}

pub const NUM_COUNTERS: usize = Counter::ALL.len();

/// How software may access a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    Ro,
    /// Read and write.
    Rw,
    /// Write only; reads return nothing meaningful.
    Wo,
    /// Write 1 to act; reads 0.
    W1,
    /// Write 1 to clear.
    W1c,
    /// Write 1 to set; reads 0.
    W1s,
}

/// One register as data: its name in the spec, offset (in its block, for block registers),
/// access and fields. A register with no fields holds one 32-bit value.
#[derive(Clone, Copy, Debug)]
pub struct Register {
    pub name: &'static str,
    pub offset: u32,
    pub access: Access,
    pub fields: &'static [Field],
}

/// A repeated block of registers: instance `i` of `registers[j]` is at
/// `base + stride * i + registers[j].offset`.
#[derive(Clone, Copy, Debug)]
pub struct Block {
    pub name: &'static str,
    pub base: u32,
    pub stride: u32,
    pub count: usize,
    pub registers: &'static [Register],
}

const fn r(name: &'static str, offset: u32, access: Access, fields: &'static [Field]) -> Register {
    Register {
        name,
        offset,
        access,
        fields,
    }
}

use Access::*;

/// The registers at fixed offsets.
pub const GLOBAL: &[Register] = &[
    r("ID", ID, Ro, &[]),
    r("VERSION", VERSION, Ro, Version::FIELDS),
    r("CAPS", CAPS, Ro, Caps::FIELDS),
    r("DEVICE_SERIAL", DEVICE_SERIAL, Ro, &[]),
    r("VRAM_SIZE_LO", VRAM_SIZE_LO, Ro, &[]),
    r("VRAM_SIZE_HI", VRAM_SIZE_HI, Ro, &[]),
    r("TOPOLOGY", TOPOLOGY, Ro, Topology::FIELDS),
    r("SCRATCH", SCRATCH, Rw, &[]),
    r("TOPOLOGY2", TOPOLOGY2, Ro, Topology2::FIELDS),
    r("TOPOLOGY3", TOPOLOGY3, Ro, Topology3::FIELDS),
    r("PF_QUANTUM", PF_QUANTUM, Rw, Quantum::FIELDS),
    r("DEVICE_CONTROL", DEVICE_CONTROL, W1, DeviceControl::FIELDS),
    r("DEVICE_STATUS", DEVICE_STATUS, Ro, DeviceStatus::FIELDS),
    r("INT_STATUS", INT_STATUS, W1c, IntSources::FIELDS),
    r("INT_MASK", INT_MASK, Rw, IntSources::FIELDS),
    r("INT_TRIGGER", INT_TRIGGER, W1s, IntSources::FIELDS),
    r(
        "QUEUE_ERROR_SUMMARY",
        QUEUE_ERROR_SUMMARY,
        Ro,
        QueueErrorSummary::FIELDS,
    ),
    r(
        "CTX_FAULT_SUMMARY",
        CTX_FAULT_SUMMARY,
        Ro,
        CtxFaultSummary::FIELDS,
    ),
    r(
        "COUNTER_CONTROL",
        COUNTER_CONTROL,
        W1,
        CounterControl::FIELDS,
    ),
    r("MSI-X PBA", MSIX_PBA, Ro, &[]),
];

pub const QUEUE_BLOCK: Block = Block {
    name: "queue",
    base: QUEUE_BASE,
    stride: QUEUE_STRIDE,
    count: MAX_QUEUES,
    registers: &[
        r(
            "Q_RING_BASE_LO",
            queue::RING_BASE_LO,
            Rw,
            QRingBaseLo::FIELDS,
        ),
        r("Q_RING_BASE_HI", queue::RING_BASE_HI, Rw, &[]),
        r("Q_RING_SIZE", queue::RING_SIZE, Rw, QRingSize::FIELDS),
        r("Q_CONTEXT", queue::CONTEXT, Rw, QContext::FIELDS),
        r("Q_CONTROL", queue::CONTROL, Rw, QControl::FIELDS),
        r("Q_STATUS", queue::STATUS, Ro, QStatus::FIELDS),
        r("Q_HEAD", queue::HEAD, Ro, QHead::FIELDS),
        r("Q_TAIL", queue::TAIL, Rw, QTail::FIELDS),
        r("Q_DOORBELL", queue::DOORBELL, Wo, QTail::FIELDS),
        r("Q_COMPLETED", queue::COMPLETED, Ro, &[]),
        r("Q_ERROR_ADDR_LO", queue::ERROR_ADDR_LO, Ro, &[]),
        r("Q_ERROR_ADDR_HI", queue::ERROR_ADDR_HI, Ro, &[]),
        r(
            "Q_FENCE_BASE_LO",
            queue::FENCE_BASE_LO,
            Rw,
            QFenceBaseLo::FIELDS,
        ),
        r("Q_FENCE_BASE_HI", queue::FENCE_BASE_HI, Rw, &[]),
    ],
};

pub const CONTEXT_BLOCK: Block = Block {
    name: "context",
    base: CTX_BASE,
    stride: CTX_STRIDE,
    count: NUM_CONTEXTS,
    registers: &[
        r("CTX_PT_BASE_LO", ctx::PT_BASE_LO, Rw, CtxPtBaseLo::FIELDS),
        r("CTX_PT_BASE_HI", ctx::PT_BASE_HI, Rw, &[]),
        r("CTX_CONTROL", ctx::CONTROL, Rw, CtxControl::FIELDS),
        r(
            "CTX_FAULT_STATUS",
            ctx::FAULT_STATUS,
            Ro,
            CtxFaultStatus::FIELDS,
        ),
        r("CTX_FAULT_ADDR_LO", ctx::FAULT_ADDR_LO, Ro, &[]),
        r("CTX_FAULT_ADDR_HI", ctx::FAULT_ADDR_HI, Ro, &[]),
    ],
};

pub const PART_BLOCK: Block = Block {
    name: "partition",
    base: PART_BASE,
    stride: PART_STRIDE,
    count: NUM_PARTITIONS,
    registers: &[
        r("PART_CONTROL", part::CONTROL, Rw, PartControl::FIELDS),
        r("PART_STATUS", part::STATUS, Ro, PartStatus::FIELDS),
        r("PART_VRAM_BASE_LO", part::VRAM_BASE_LO, Rw, &[]),
        r("PART_VRAM_BASE_HI", part::VRAM_BASE_HI, Rw, &[]),
        r("PART_VRAM_SIZE_LO", part::VRAM_SIZE_LO, Rw, &[]),
        r("PART_VRAM_SIZE_HI", part::VRAM_SIZE_HI, Rw, &[]),
        r("PART_QUEUES", part::QUEUES, Rw, PartQueues::FIELDS),
        r("PART_CONTEXTS", part::CONTEXTS, Rw, PartContexts::FIELDS),
        r("PART_QUANTUM", part::QUANTUM, Rw, Quantum::FIELDS),
        r("PART_IOVA_TABLE_LO", part::IOVA_TABLE_LO, Rw, &[]),
        r("PART_IOVA_TABLE_HI", part::IOVA_TABLE_HI, Rw, &[]),
        r("PART_IOVA_PAGES", part::IOVA_PAGES, Rw, &[]),
        r(
            "PART_PAGE_REQ_LO",
            part::PAGE_REQ_LO,
            Ro,
            PartPageReqLo::FIELDS,
        ),
        r("PART_PAGE_REQ_HI", part::PAGE_REQ_HI, Ro, &[]),
        r("PART_PAGE_RESP", part::PAGE_RESP, Wo, PartPageResp::FIELDS),
        r(
            "PART_VEC_PENDING",
            part::VEC_PENDING,
            W1c,
            PartVecPending::FIELDS,
        ),
    ],
};

pub const COUNTER_BLOCK: Block = Block {
    name: "counter",
    base: COUNTER_BASE,
    stride: COUNTER_STRIDE,
    count: NUM_COUNTERS,
    registers: &[r("COUNTER_LO", 0, Ro, &[]), r("COUNTER_HI", 4, Ro, &[])],
};

pub const MSIX_BLOCK: Block = Block {
    name: "MSI-X table",
    base: MSIX_TABLE,
    stride: MSIX_ENTRY_SIZE,
    // One vector per queue plus the error vector.
    count: MAX_QUEUES + 1,
    registers: &[
        r("MSIX_ADDR_LO", 0x0, Rw, &[]),
        r("MSIX_ADDR_HI", 0x4, Rw, &[]),
        r("MSIX_DATA", 0x8, Rw, &[]),
        r("MSIX_VECTOR_CONTROL", 0xc, Rw, MsixVectorControl::FIELDS),
    ],
};

pub const BLOCKS: &[Block] = &[
    COUNTER_BLOCK,
    QUEUE_BLOCK,
    CONTEXT_BLOCK,
    PART_BLOCK,
    MSIX_BLOCK,
];

/// Where a register sits in BAR0: its offset (of instance 0, for block registers), and the
/// stride and count of its block (0 and 1 for a global register).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub offset: u32,
    pub stride: u32,
    pub count: usize,
    pub register: &'static str,
    pub fields: &'static [Field],
}

/// Finds a register by its spec name.
pub fn find(name: &str) -> Option<Location> {
    if let Some(g) = GLOBAL.iter().find(|g| g.name == name) {
        return Some(Location {
            offset: g.offset,
            stride: 0,
            count: 1,
            register: g.name,
            fields: g.fields,
        });
    }
    BLOCKS.iter().find_map(|b| {
        let reg = b.registers.iter().find(|r| r.name == name)?;
        Some(Location {
            offset: b.base + reg.offset,
            stride: b.stride,
            count: b.count,
            register: reg.name,
            fields: reg.fields,
        })
    })
}

// The blocks must not overlap one another or the global registers.
const _: () = {
    assert!(COUNTER_BASE + COUNTER_STRIDE * NUM_COUNTERS as u32 <= COUNTER_CONTROL);
    assert!(COUNTER_CONTROL < QUEUE_BASE);
    assert!(QUEUE_BASE + QUEUE_STRIDE * MAX_QUEUES as u32 <= CTX_BASE);
    assert!(CTX_BASE + CTX_STRIDE * NUM_CONTEXTS as u32 <= PART_BASE);
    assert!(PART_BASE + PART_STRIDE * NUM_PARTITIONS as u32 <= MSIX_TABLE);
    assert!(part::VEC_PENDING < PART_STRIDE);
    assert!(TOPOLOGY2 < TOPOLOGY3 && PF_QUANTUM < DEVICE_CONTROL);
    assert!(MSIX_TABLE + MSIX_ENTRY_SIZE * (MAX_QUEUES as u32 + 1) <= MSIX_PBA);
    assert!(MSIX_PBA as u64 + 8 <= crate::pci::BAR0_SIZE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values() {
        assert_eq!(ID_VALUE, 0x414c_4556);
        assert_eq!(VERSION_VALUE, 0x0001_0000);
        assert_eq!(Caps::ALL.bits(), 0x3f);
        assert_eq!(Caps::WINDOW.bits(), 0x47);
        assert_eq!(IntSources::VALID, 0x7_ffff);
        assert_eq!(queue::RING_ALIGN, 64);
        assert_eq!(queue::FENCE_ALIGN, 8);
    }

    #[test]
    fn every_register_is_found_once() {
        let mut seen = std::collections::BTreeSet::new();
        for name in GLOBAL.iter().map(|r| r.name).chain(
            BLOCKS
                .iter()
                .flat_map(|b| b.registers.iter().map(|r| r.name)),
        ) {
            assert!(seen.insert(name), "{name} twice");
            assert!(find(name).is_some(), "{name}");
        }
        assert_eq!(find("Q_STATUS").map(|l| l.offset), Some(0x1014));
        assert_eq!(find("COUNTER_HI").map(|l| l.offset), Some(0x104));
        assert_eq!(find("PART_VEC_PENDING").map(|l| l.offset), Some(0x303c));
    }
}
