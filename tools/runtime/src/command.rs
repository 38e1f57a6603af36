// SPDX-License-Identifier: GPL-2.0

//! The 64-byte hardware commands of Documentation/hardware/commands.rst, encoded byte-exact
//! (little-endian, reserved bytes zero).

use std::fmt;

use vela_hw::cmd::{
    self, Command as _, CopyCmd, FenceCmd, FillCmd, Header, KernelArgs, KernelCmd, NopCmd,
};

use crate::kernels::KernelCall;

/// Bytes per command.
pub const COMMAND_SIZE: usize = vela_uapi::DRM_VELA_COMMAND_SIZE as usize;
/// Most commands one SUBMIT may carry.
pub const MAX_COMMANDS: usize = vela_uapi::DRM_VELA_MAX_COMMANDS as usize;
/// Header bit 8: raise the queue's interrupt when the command completes.
pub const FLAG_INTERRUPT: u32 = Header::INTERRUPT.mask32();

const _: () = assert!(COMMAND_SIZE == cmd::SIZE);

pub use vela_hw::Opcode;

/// One command slot. `repr(C)` over the bytes so a `&[Command]` is exactly what SUBMIT reads.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct Command {
    bytes: [u8; COMMAND_SIZE],
}

impl Command {
    fn from_slot(bytes: cmd::Slot) -> Self {
        Self { bytes }
    }

    fn put_u32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        if let Some(s) = self.bytes.get(off..off + 4) {
            b.copy_from_slice(s);
        }
        u32::from_le_bytes(b)
    }

    pub fn get_u64(&self, off: usize) -> u64 {
        let mut b = [0; 8];
        if let Some(s) = self.bytes.get(off..off + 8) {
            b.copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    }

    /// NOP: does nothing.
    pub fn nop() -> Self {
        Self::from_slot(NopCmd::new().to_slot())
    }

    /// FENCE: one 64-bit store of `value` at `addr` (8-byte aligned) after every earlier
    /// command of the queue completed.
    pub fn fence(addr: u64, value: u64) -> Self {
        Self::from_slot(FenceCmd::new(addr, value).to_slot())
    }

    /// COPY: `len` bytes (at most 2^32) from `src` to `dst`, any alignment.
    pub fn copy(src: u64, dst: u64, len: u64) -> Self {
        Self::from_slot(CopyCmd::new(src, dst, len).to_slot())
    }

    /// FILL: `pattern` into every 32-bit word of `[dst, dst + len)`; `dst` 4-byte aligned,
    /// `len` a multiple of 4 and at most 2^32.
    pub fn fill(dst: u64, pattern: u32, len: u64) -> Self {
        Self::from_slot(FillCmd::new(dst, pattern, len).to_slot())
    }

    /// KERNEL: runs a compute kernel (see [`crate::kernels`]).
    pub fn kernel(k: &KernelCall) -> Self {
        let args = KernelArgs {
            a: k.a,
            b: k.b,
            c: k.c,
            dst: k.dst,
            count: k.count,
            n: k.n,
            k: k.k,
            param: k.param,
        };
        Self::from_slot(KernelCmd::new(k.id.raw(), &args).to_slot())
    }

    /// Sets the INTERRUPT flag.
    pub fn with_interrupt(mut self) -> Self {
        let h = self.get_u32(0) | FLAG_INTERRUPT;
        self.put_u32(0, h);
        self
    }

    /// Any 64 bytes, for tests that must send what the builders never produce.
    pub fn from_bytes(bytes: [u8; COMMAND_SIZE]) -> Self {
        Self { bytes }
    }

    pub fn as_bytes(&self) -> &[u8; COMMAND_SIZE] {
        &self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8; COMMAND_SIZE] {
        &mut self.bytes
    }

    pub fn opcode(&self) -> Option<Opcode> {
        Opcode::from_raw(Header::read(&self.bytes).opcode())
    }

    /// Whether the command passes the checks SUBMIT documents: a known opcode other than
    /// SIGNAL (the driver's own, see queues.rst), header bits 31:9 zero and every reserved byte
    /// zero. (What the device checks on top, alignment, lengths and kernel ids, makes the job
    /// fail instead.)
    pub fn is_well_formed(&self) -> bool {
        matches!(cmd::well_formed(&self.bytes), Ok(op) if op != Opcode::Signal)
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command(")?;
        for (i, w) in self.bytes.chunks(8).enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            let mut b = [0; 8];
            b.copy_from_slice(w);
            write!(f, "{:016x}", u64::from_le_bytes(b))?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{KernelCall, KernelId};

    fn expect(c: Command, words: [u64; 8]) {
        let mut want = [0u8; 64];
        for (i, w) in words.iter().enumerate() {
            want[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(c.as_bytes(), &want, "{c:?}");
        assert!(c.is_well_formed());
    }

    #[test]
    fn size_and_layout() {
        assert_eq!(std::mem::size_of::<Command>(), 64);
        assert_eq!(std::mem::align_of::<Command>(), 8);
        assert_eq!(std::mem::size_of::<[Command; 3]>(), 192);
    }

    #[test]
    fn nop() {
        expect(Command::nop(), [0; 8]);
        expect(
            Command::nop().with_interrupt(),
            [0x100, 0, 0, 0, 0, 0, 0, 0],
        );
    }

    #[test]
    fn fence() {
        let c = Command::fence(0x1234_5678_9000, 0xdead_beef_cafe_f00d);
        expect(
            c,
            [0x01, 0x1234_5678_9000, 0xdead_beef_cafe_f00d, 0, 0, 0, 0, 0],
        );
        assert_eq!(&c.as_bytes()[..4], &[0x01, 0, 0, 0]);
        assert_eq!(
            &c.as_bytes()[8..16],
            &[0x00, 0x90, 0x78, 0x56, 0x34, 0x12, 0, 0]
        );
        expect(
            c.with_interrupt(),
            [
                0x101,
                0x1234_5678_9000,
                0xdead_beef_cafe_f00d,
                0,
                0,
                0,
                0,
                0,
            ],
        );
    }

    #[test]
    fn copy() {
        expect(
            Command::copy(0x20_0000, 0x40_0001, 1 << 32),
            [0x02, 0x20_0000, 0x40_0001, 1 << 32, 0, 0, 0, 0],
        );
    }

    #[test]
    fn fill() {
        let c = Command::fill(0x30_0000, 0xa5a5_5a5a, 0x1000);
        // PATTERN shares the first word with the header: bytes 4..8.
        expect(c, [0xa5a5_5a5a_0000_0003, 0x30_0000, 0x1000, 0, 0, 0, 0, 0]);
        assert_eq!(&c.as_bytes()[..8], &[3, 0, 0, 0, 0x5a, 0x5a, 0xa5, 0xa5]);
    }

    #[test]
    fn kernel() {
        let k = KernelCall {
            id: KernelId::MatmulF32,
            a: 0x1000,
            b: 0x2000,
            c: 0x3000,
            dst: 0x4000,
            count: 7,
            n: 9,
            k: 11,
            param: 0xffff_fffe,
        };
        expect(
            Command::kernel(&k),
            [
                0x0000_000a_0000_0010,
                0x1000,
                0x2000,
                0x3000,
                0x4000,
                (9 << 32) | 7,
                (0xffff_fffe << 32) | 11,
                0,
            ],
        );
        let crc =
            Command::kernel(&KernelCall::new(KernelId::Crc32c, 0x10, 0, 0, 0x20, 9).with_param(5));
        assert_eq!(crc.get_u32(4), 0x09);
        assert_eq!(crc.get_u32(52), 5);
    }

    #[test]
    fn well_formedness_matches_the_reserved_fields() {
        let mut c = Command::nop();
        c.bytes_mut()[63] = 1;
        assert!(!c.is_well_formed(), "reserved byte of NOP");
        let mut c = Command::fence(0x1000, 1);
        c.bytes_mut()[4] = 1;
        assert!(!c.is_well_formed(), "FENCE bytes 4..8 are reserved");
        let mut c = Command::fill(0x1000, 1, 4);
        c.bytes_mut()[24] = 1;
        assert!(!c.is_well_formed(), "FILL bytes 24.. are reserved");
        let mut c = Command::kernel(&KernelCall::new(KernelId::AddF32, 0, 0, 0, 0, 0));
        c.bytes_mut()[56] = 1;
        assert!(!c.is_well_formed(), "KERNEL bytes 56.. are reserved");
        let mut c = Command::copy(0, 0, 0);
        c.bytes_mut()[2] = 0x02;
        assert!(!c.is_well_formed(), "header bit 17");
        let mut c = Command::copy(0, 0, 0);
        c.bytes_mut()[1] = 0x02;
        assert!(!c.is_well_formed(), "header bit 9");
        assert!(!Command::from_bytes([0x7f; 64]).is_well_formed());
        let mut b = [0; 64];
        b[0] = 0x04;
        assert!(!Command::from_bytes(b).is_well_formed(), "opcode 0x04");
        assert!(Command::copy(0, 0, 0).with_interrupt().is_well_formed());
    }
}
