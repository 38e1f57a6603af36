// SPDX-License-Identifier: GPL-2.0

//! Commands (`Documentation/hardware/commands.rst`): the one definition of each command format,
//! which the kernel builds its own commands with and checks users' commands against.
//!
//! Every command is one 64-byte little-endian slot. The formats are structs of little-endian
//! fields with no padding (zerocopy's derives prove it at build time), so a slot converts to
//! and from them without a cast, and a field is where the spec's table puts it.

use kernel::{num::Bounded, prelude::*};
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a command slot.
pub(crate) const SLOT: usize = 64;

/// What a command does (header bits 7:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Opcode {
    /// Nothing (a slot to carry INTERRUPT).
    Nop = 0x00,
    /// Writes a 64-bit value to a VA.
    Fence = 0x01,
    /// Copies bytes.
    Copy = 0x02,
    /// Fills memory with a 32-bit pattern.
    Fill = 0x03,
    /// Writes a 64-bit value to the queue's fence address, by DPA.
    Signal = 0x04,
    /// Runs a compute kernel.
    Kernel = 0x10,
}

impl TryFrom<Bounded<u32, 8>> for Opcode {
    /// The opcode, when the device knows no such command.
    type Error = u32;

    fn try_from(v: Bounded<u32, 8>) -> core::result::Result<Self, u32> {
        Ok(match v.get() {
            0x00 => Self::Nop,
            0x01 => Self::Fence,
            0x02 => Self::Copy,
            0x03 => Self::Fill,
            0x04 => Self::Signal,
            0x10 => Self::Kernel,
            n => return Err(n),
        })
    }
}

impl From<Opcode> for Bounded<u32, 8> {
    fn from(op: Opcode) -> Self {
        Bounded::from(op as u8)
    }
}

kernel::bitfield! {
    /// Bytes 0-3 of every command.
    pub(crate) struct Header(u32) {
        /// Reserved, must be 0.
        31:9 reserved;
        /// Raise the queue's completion interrupt when this command completes.
        8:8 interrupt => bool;
        7:0 opcode ?=> Opcode;
    }
}

impl Header {
    /// The header of a command `op`, as the slot holds it.
    fn word(op: Opcode, interrupt: bool) -> U32 {
        U32::new(
            Header::from_raw(0)
                .with_opcode(op)
                .with_interrupt(interrupt)
                .into_raw(),
        )
    }
}

fn zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// NOP (0x00).
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct NopCommand {
    pub(crate) header: U32,
    reserved: [u8; 60],
}

/// FENCE (0x01): writes VALUE to ADDR, a VA of the queue's context.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct FenceCommand {
    pub(crate) header: U32,
    reserved0: [u8; 4],
    pub(crate) addr: U64,
    pub(crate) value: U64,
    reserved1: [u8; 40],
}

/// COPY (0x02): copies LENGTH bytes from SRC to DST.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct CopyCommand {
    pub(crate) header: U32,
    reserved0: [u8; 4],
    pub(crate) src: U64,
    pub(crate) dst: U64,
    pub(crate) length: U64,
    reserved1: [u8; 32],
}

/// FILL (0x03): stores PATTERN to every 32-bit word of `[DST, DST + LENGTH)`.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct FillCommand {
    pub(crate) header: U32,
    pub(crate) pattern: U32,
    pub(crate) dst: U64,
    pub(crate) length: U64,
    reserved: [u8; 40],
}

/// SIGNAL (0x04): writes VALUE to the queue's fence address (`Q_FENCE_BASE`), by DPA.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct SignalCommand {
    pub(crate) header: U32,
    reserved0: [u8; 12],
    pub(crate) value: U64,
    reserved1: [u8; 40],
}

/// KERNEL (0x10): runs compute kernel KERNEL_ID (`Documentation/hardware/compute.rst`).
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct KernelCommand {
    pub(crate) header: U32,
    pub(crate) kernel_id: U32,
    pub(crate) a: U64,
    pub(crate) b: U64,
    pub(crate) c: U64,
    pub(crate) dst: U64,
    pub(crate) count: U32,
    pub(crate) n: U32,
    pub(crate) k: U32,
    pub(crate) param: U32,
    reserved: [u8; 8],
}

// Each format fills a slot exactly: `transmute!` below checks it too, but this names the rule.
kernel::static_assert!(core::mem::size_of::<NopCommand>() == SLOT);
kernel::static_assert!(core::mem::size_of::<FenceCommand>() == SLOT);
kernel::static_assert!(core::mem::size_of::<CopyCommand>() == SLOT);
kernel::static_assert!(core::mem::size_of::<FillCommand>() == SLOT);
kernel::static_assert!(core::mem::size_of::<SignalCommand>() == SLOT);
kernel::static_assert!(core::mem::size_of::<KernelCommand>() == SLOT);

impl NopCommand {
    /// Whether every reserved byte is zero.
    pub(crate) fn reserved_zero(&self) -> bool {
        zero(&self.reserved)
    }
}

impl FenceCommand {
    /// Whether every reserved byte is zero.
    pub(crate) fn reserved_zero(&self) -> bool {
        zero(&self.reserved0) && zero(&self.reserved1)
    }
}

impl CopyCommand {
    /// A COPY of `length` bytes from `src` to `dst`.
    pub(crate) fn new(src: u64, dst: u64, length: u64) -> Self {
        Self {
            header: Header::word(Opcode::Copy, false),
            reserved0: [0; 4],
            src: U64::new(src),
            dst: U64::new(dst),
            length: U64::new(length),
            reserved1: [0; 32],
        }
    }

    /// Whether every reserved byte is zero.
    pub(crate) fn reserved_zero(&self) -> bool {
        zero(&self.reserved0) && zero(&self.reserved1)
    }
}

impl FillCommand {
    /// A FILL of `length` bytes at `dst` with `pattern`.
    pub(crate) fn new(pattern: u32, dst: u64, length: u64) -> Self {
        Self {
            header: Header::word(Opcode::Fill, false),
            pattern: U32::new(pattern),
            dst: U64::new(dst),
            length: U64::new(length),
            reserved: [0; 40],
        }
    }

    /// Whether every reserved byte is zero.
    pub(crate) fn reserved_zero(&self) -> bool {
        zero(&self.reserved)
    }
}

impl SignalCommand {
    /// A SIGNAL of `value`, raising the queue's completion interrupt if `interrupt`.
    pub(crate) fn new(value: u64, interrupt: bool) -> Self {
        Self {
            header: Header::word(Opcode::Signal, interrupt),
            reserved0: [0; 12],
            value: U64::new(value),
            reserved1: [0; 40],
        }
    }
}

impl KernelCommand {
    /// Whether every reserved byte is zero.
    pub(crate) fn reserved_zero(&self) -> bool {
        zero(&self.reserved)
    }
}

/// A command slot, read as the format its opcode names.
pub(crate) enum Command {
    Nop(NopCommand),
    Fence(FenceCommand),
    Copy(CopyCommand),
    Fill(FillCommand),
    /// The driver's completion signal: nothing in it is read.
    Signal,
    Kernel(KernelCommand),
}

impl Command {
    /// Reads `slot`: `EINVAL` for a reserved header bit set or an opcode the device does not
    /// know (it would stop the queue with `RESERVED` or `BAD_OPCODE`).
    pub(crate) fn parse(slot: &[u8; SLOT]) -> Result<Self> {
        let nop: NopCommand = zerocopy::transmute!(*slot);
        let header = Header::from_raw(nop.header.get());
        if header.reserved() != 0 {
            return Err(EINVAL);
        }
        Ok(match header.opcode().map_err(|_| EINVAL)? {
            Opcode::Nop => Self::Nop(nop),
            Opcode::Fence => Self::Fence(zerocopy::transmute!(*slot)),
            Opcode::Copy => Self::Copy(zerocopy::transmute!(*slot)),
            Opcode::Fill => Self::Fill(zerocopy::transmute!(*slot)),
            Opcode::Signal => Self::Signal,
            Opcode::Kernel => Self::Kernel(zerocopy::transmute!(*slot)),
        })
    }
}

/// Formats that can be written into a ring slot.
pub(crate) trait IntoSlot {
    /// The command as the slot holds it.
    fn into_slot(self) -> [u8; SLOT];
}

macro_rules! into_slot {
    ($($t:ty),*) => {
        $(
        impl IntoSlot for $t {
            fn into_slot(self) -> [u8; SLOT] {
                zerocopy::transmute!(self)
            }
        }
        )*
    };
}

into_slot!(
    NopCommand,
    FenceCommand,
    CopyCommand,
    FillCommand,
    SignalCommand,
    KernelCommand
);

#[kunit_tests(vela_command)]
mod tests {
    use super::*;

    /// The kernel's commands, byte for byte as `commands.rst` lays them out.
    #[test]
    fn kernel_commands_layout() {
        let c = CopyCommand::new(0x1111, 0x2222, 0x3333).into_slot();
        assert_eq!(c[0..4], 0x02u32.to_le_bytes());
        assert_eq!(c[8..16], 0x1111u64.to_le_bytes());
        assert_eq!(c[16..24], 0x2222u64.to_le_bytes());
        assert_eq!(c[24..32], 0x3333u64.to_le_bytes());
        assert!(zero(&c[4..8]) && zero(&c[32..]));

        let f = FillCommand::new(0xdead_beef, 0x4444, 0x5555).into_slot();
        assert_eq!(f[0..4], 0x03u32.to_le_bytes());
        assert_eq!(f[4..8], 0xdead_beefu32.to_le_bytes());
        assert_eq!(f[8..16], 0x4444u64.to_le_bytes());
        assert_eq!(f[16..24], 0x5555u64.to_le_bytes());
        assert!(zero(&f[24..]));

        let s = SignalCommand::new(0x0102_0304_0506_0708, true).into_slot();
        assert_eq!(s[0..4], 0x104u32.to_le_bytes());
        assert_eq!(s[16..24], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert!(zero(&s[4..16]) && zero(&s[24..]));
        let s = SignalCommand::new(7, false).into_slot();
        assert_eq!(s[0..4], 0x04u32.to_le_bytes());
    }

    #[test]
    fn parse_round_trips() -> Result {
        let slot = CopyCommand::new(1, 2, 3).into_slot();
        let Command::Copy(c) = Command::parse(&slot)? else {
            return Err(EINVAL);
        };
        assert_eq!((c.src.get(), c.dst.get(), c.length.get()), (1, 2, 3));
        assert!(c.reserved_zero());
        let mut slot = [0u8; SLOT];
        slot[0] = 0x10;
        slot[4] = 3;
        slot[40] = 9;
        let Command::Kernel(k) = Command::parse(&slot)? else {
            return Err(EINVAL);
        };
        assert_eq!((k.kernel_id.get(), k.count.get()), (3, 9));
        Ok(())
    }
}
