// SPDX-License-Identifier: GPL-2.0
//! Commands (commands.rst) and compute kernels (compute.rst).
//!
//! Each command is a 64-byte `repr(C)` struct of little-endian fields with alignment 1, so one
//! definition both builds a slot ([`IntoBytes`]) and reads one ([`FromBytes`]) from any
//! 64 bytes. Reserved bytes are fields named `reserved*`; [`reserved_bytes`] derives their
//! ranges from the structs' layout.

use core::mem::{offset_of, size_of};
use core::ops::Range;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per command slot.
pub const SIZE: usize = 64;
/// One ring slot's bytes.
pub type Slot = [u8; SIZE];

/// Largest COPY or FILL length.
pub const MAX_TRANSFER: u64 = 1 << 32;
/// FENCE's ADDR alignment: one 64-bit store.
pub const FENCE_ALIGN: u64 = 8;
/// FILL's DST alignment and length granule: one 32-bit word.
pub const FILL_ALIGN: u64 = 4;

spec_enum! {
    /// Command opcodes (header bits 7:0).
    pub enum Opcode: u8 {
        /// Nothing; a slot to carry INTERRUPT.
        Nop = 0x00 => "NOP",
        /// 64-bit store through the context.
        Fence = 0x01 => "FENCE",
        Copy = 0x02 => "COPY",
        Fill = 0x03 => "FILL",
        /// 64-bit store to the queue's `Q_FENCE_BASE`, by DPA: the driver's only.
        Signal = 0x04 => "SIGNAL",
        Kernel = 0x10 => "KERNEL",
    }
}

/// The engine that runs a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Copy = 0,
    Compute = 1,
}

impl Opcode {
    pub const fn engine(self) -> Engine {
        match self {
            Opcode::Kernel => Engine::Compute,
            _ => Engine::Copy,
        }
    }
}

bitfield! {
    /// The first 32 bits of every command.
    pub struct Header(u32) {
        7:0 OPCODE => opcode, with_opcode: u8;
        /// Raise `INT_STATUS.QUEUE[N]` when the command completes.
        8:8 INTERRUPT => interrupt, with_interrupt: bool;
        /// Must be zero (else `RESERVED`).
        31:9 RESERVED => reserved, with_reserved: u32;
    }
}

impl Header {
    pub const fn of(op: Opcode) -> Self {
        Header(0).with_opcode(op as u8)
    }

    /// The header of `slot`.
    pub fn read(slot: &Slot) -> Self {
        Header(u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]))
    }

    /// Stores the header into `slot`.
    pub fn write(self, slot: &mut Slot) {
        slot[..4].copy_from_slice(&self.0.to_le_bytes());
    }
}

/// What every command struct has in common.
pub trait Command: FromBytes + IntoBytes + Immutable + KnownLayout + core::marker::Copy {
    const OPCODE: Opcode;
    /// Byte ranges the spec marks reserved (must be zero, else `RESERVED`). The header's
    /// reserved bits are not in them: see [`Header::RESERVED`].
    const RESERVED: &'static [Range<usize>];

    /// The command in `slot`, whatever its opcode.
    fn view(slot: &Slot) -> &Self;

    fn header(&self) -> Header;

    /// The 64 bytes of the command.
    fn to_slot(&self) -> Slot {
        let mut s = [0; SIZE];
        s.copy_from_slice(self.as_bytes());
        s
    }

    /// Whether every reserved byte is zero.
    fn reserved_is_zero(&self) -> bool {
        let b = self.as_bytes();
        Self::RESERVED
            .iter()
            .all(|r| b[r.clone()].iter().all(|&x| x == 0))
    }
}

const fn span(start: usize, len: usize) -> Range<usize> {
    start..start + len
}

macro_rules! command {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $op:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $fty:ty, )*
        }
        reserved: [$($res:ident),*];
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
        #[repr(C)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }

        impl Command for $name {
            const OPCODE: Opcode = Opcode::$op;
            const RESERVED: &'static [Range<usize>] = &[$(
                span(offset_of!($name, $res), array_len(|s: &$name| &s.$res))
            ),*];

            fn view(slot: &Slot) -> &Self {
                zerocopy::transmute_ref!(slot)
            }

            fn header(&self) -> Header {
                Header(self.header.get())
            }
        }

        const _: () = assert!(size_of::<$name>() == SIZE);
    };
}

command! {
    /// NOP: does nothing.
    pub struct NopCmd = Nop {
        pub header: U32,
        pub reserved: [u8; 60],
    }
    reserved: [reserved];
}

command! {
    /// FENCE: writes VALUE to ADDR (a VA, 8-byte aligned) as one 64-bit store, after every
    /// earlier command of the queue has completed.
    pub struct FenceCmd = Fence {
        pub header: U32,
        pub reserved0: [u8; 4],
        pub addr: U64,
        pub value: U64,
        pub reserved1: [u8; 40],
    }
    reserved: [reserved0, reserved1];
}

command! {
    /// SIGNAL: writes VALUE to the queue's `Q_FENCE_BASE`, by DPA.
    pub struct SignalCmd = Signal {
        pub header: U32,
        pub reserved0: [u8; 12],
        pub value: U64,
        pub reserved1: [u8; 40],
    }
    reserved: [reserved0, reserved1];
}

command! {
    /// COPY: LENGTH bytes (at most 2^32) from SRC to DST.
    pub struct CopyCmd = Copy {
        pub header: U32,
        pub reserved0: [u8; 4],
        pub src: U64,
        pub dst: U64,
        pub length: U64,
        pub reserved1: [u8; 32],
    }
    reserved: [reserved0, reserved1];
}

command! {
    /// FILL: PATTERN into every 32-bit word of `[DST, DST + LENGTH)`.
    pub struct FillCmd = Fill {
        pub header: U32,
        pub pattern: U32,
        pub dst: U64,
        pub length: U64,
        pub reserved: [u8; 40],
    }
    reserved: [reserved];
}

command! {
    /// KERNEL: runs compute kernel KERNEL_ID (compute.rst).
    pub struct KernelCmd = Kernel {
        pub header: U32,
        pub kernel_id: U32,
        pub a: U64,
        pub b: U64,
        pub c: U64,
        pub dst: U64,
        /// Element count; M for MATMUL_F32, bytes for CRC32C.
        pub count: U32,
        pub n: U32,
        pub k: U32,
        /// CRC32C seed.
        pub param: U32,
        pub reserved: [u8; 8],
    }
    reserved: [reserved];
}

impl NopCmd {
    pub const fn new() -> Self {
        Self {
            header: U32::new(Header::of(Opcode::Nop).0),
            reserved: [0; 60],
        }
    }
}

impl Default for NopCmd {
    fn default() -> Self {
        Self::new()
    }
}

impl FenceCmd {
    pub const fn new(addr: u64, value: u64) -> Self {
        Self {
            header: U32::new(Header::of(Opcode::Fence).0),
            reserved0: [0; 4],
            addr: U64::new(addr),
            value: U64::new(value),
            reserved1: [0; 40],
        }
    }
}

impl SignalCmd {
    pub const fn new(value: u64) -> Self {
        Self {
            header: U32::new(Header::of(Opcode::Signal).0),
            reserved0: [0; 12],
            value: U64::new(value),
            reserved1: [0; 40],
        }
    }
}

impl CopyCmd {
    pub const fn new(src: u64, dst: u64, length: u64) -> Self {
        Self {
            header: U32::new(Header::of(Opcode::Copy).0),
            reserved0: [0; 4],
            src: U64::new(src),
            dst: U64::new(dst),
            length: U64::new(length),
            reserved1: [0; 32],
        }
    }
}

impl FillCmd {
    pub const fn new(dst: u64, pattern: u32, length: u64) -> Self {
        Self {
            header: U32::new(Header::of(Opcode::Fill).0),
            pattern: U32::new(pattern),
            dst: U64::new(dst),
            length: U64::new(length),
            reserved: [0; 40],
        }
    }
}

/// The operands of a KERNEL command, by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelArgs {
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub dst: u64,
    pub count: u32,
    pub n: u32,
    pub k: u32,
    pub param: u32,
}

impl KernelCmd {
    pub const fn new(kernel_id: u32, x: &KernelArgs) -> Self {
        Self {
            header: U32::new(Header::of(Opcode::Kernel).0),
            kernel_id: U32::new(kernel_id),
            a: U64::new(x.a),
            b: U64::new(x.b),
            c: U64::new(x.c),
            dst: U64::new(x.dst),
            count: U32::new(x.count),
            n: U32::new(x.n),
            k: U32::new(x.k),
            param: U32::new(x.param),
            reserved: [0; 8],
        }
    }

    pub fn args(&self) -> KernelArgs {
        KernelArgs {
            a: self.a.get(),
            b: self.b.get(),
            c: self.c.get(),
            dst: self.dst.get(),
            count: self.count.get(),
            n: self.n.get(),
            k: self.k.get(),
            param: self.param.get(),
        }
    }
}

/// The length of a `[u8; N]` field, named through an accessor so the struct's declaration
/// stays the only place that says it.
const fn array_len<S, const N: usize>(_: fn(&S) -> &[u8; N]) -> usize {
    N
}

/// Reserved byte ranges of `op`'s command.
pub const fn reserved_bytes(op: Opcode) -> &'static [Range<usize>] {
    match op {
        Opcode::Nop => NopCmd::RESERVED,
        Opcode::Fence => FenceCmd::RESERVED,
        Opcode::Signal => SignalCmd::RESERVED,
        Opcode::Copy => CopyCmd::RESERVED,
        Opcode::Fill => FillCmd::RESERVED,
        Opcode::Kernel => KernelCmd::RESERVED,
    }
}

/// Whether byte `i` of `op`'s command has a meaning (the header's four bytes included).
pub fn uses_byte(op: Opcode, i: usize) -> bool {
    i < SIZE && !reserved_bytes(op).iter().any(|r| r.contains(&i))
}

/// Whether `slot` passes the format checks the device makes before it executes anything: a
/// known opcode, header bits 31:9 zero and every reserved byte zero. Operand checks
/// (alignment, lengths, kernel ids) come after.
pub fn well_formed(slot: &Slot) -> Result<Opcode, FormatError> {
    // The device looks at the header's reserved bits before the opcode.
    let h = Header::read(slot);
    if h.reserved() != 0 {
        return Err(FormatError::Reserved);
    }
    let op = Opcode::from_raw(h.opcode()).ok_or(FormatError::BadOpcode)?;
    if !reserved_bytes(op)
        .iter()
        .all(|r| slot[r.clone()].iter().all(|&b| b == 0))
    {
        return Err(FormatError::Reserved);
    }
    Ok(op)
}

/// Why a slot is not a well-formed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    BadOpcode,
    Reserved,
}
