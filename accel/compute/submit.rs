// SPDX-License-Identifier: GPL-2.0

//! SUBMIT's command checks. The device would stop the queue on a bad command; the kernel
//! refuses it up front with EINVAL, so userspace learns which job was wrong and the queue never
//! enters the error state for a malformed job.
//!
//! The checks are also the one privilege boundary the device leaves to the kernel: the ring is
//! the kernel's, and SIGNAL (the kernel's completion signal, which writes the fence slot by DPA
//! whatever the context) is not an opcode a user may submit. Everything else a user command
//! does goes through the VM's page tables, which the device enforces.

use kernel::prelude::*;

use crate::hw::command::{Command, SLOT};

/// Compute kernel ids 0x01 (ADD_F32) to 0x0a (MATMUL_F32), `Documentation/hardware/compute.rst`.
const KERNEL_IDS: core::ops::RangeInclusive<u32> = 0x01..=0x0a;

/// Checks one command: a known opcode, and zero in every reserved header bit and byte.
pub(crate) fn check_command(c: &[u8; SLOT]) -> Result {
    // Bits 31:9 of the header are reserved; bit 8 is INTERRUPT.
    let ok = match Command::parse(c)? {
        Command::Nop(nop) => nop.reserved_zero(),
        Command::Fence(fence) => fence.reserved_zero(),
        Command::Copy(copy) => copy.reserved_zero(),
        Command::Fill(fill) => fill.reserved_zero(),
        Command::Kernel(k) => KERNEL_IDS.contains(&k.kernel_id.get()) && k.reserved_zero(),
        // The kernel's completion signal (see above).
        Command::Signal => false,
    };
    if ok {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

#[kunit_tests(vela_submit)]
mod tests {
    use super::*;
    use crate::hw::command::Opcode;

    const OP_NOP: u8 = Opcode::Nop as u8;
    const OP_FENCE: u8 = Opcode::Fence as u8;
    const OP_COPY: u8 = Opcode::Copy as u8;
    const OP_FILL: u8 = Opcode::Fill as u8;
    const OP_KERNEL: u8 = Opcode::Kernel as u8;
    /// The kernel's completion signal, written by DPA past every VM: a user never gets to emit
    /// it (`Documentation/hardware/queues.rst`, Privilege), and `check_command` refuses it
    /// however well formed.
    const OP_SIGNAL: u8 = Opcode::Signal as u8;

    fn cmd(op: u8) -> [u8; SLOT] {
        let mut c = [0u8; SLOT];
        c[0] = op;
        c
    }

    #[test]
    fn accepts_every_opcode() -> Result {
        for op in [OP_NOP, OP_FENCE, OP_COPY, OP_FILL] {
            check_command(&cmd(op))?;
        }
        let mut k = cmd(OP_KERNEL);
        k[4] = 0x0a;
        check_command(&k)?;
        let mut fill = cmd(OP_FILL);
        fill[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        check_command(&fill)?;
        let mut irq = cmd(OP_FENCE);
        irq[1] = 1;
        check_command(&irq)
    }

    #[test]
    fn rejects_bad_commands() {
        assert_eq!(check_command(&cmd(0x7f)), Err(EINVAL));
        let mut reserved_header = cmd(OP_NOP);
        reserved_header[1] = 2;
        assert_eq!(check_command(&reserved_header), Err(EINVAL));
        let mut copy = cmd(OP_COPY);
        copy[40] = 1;
        assert_eq!(check_command(&copy), Err(EINVAL));
        let mut fence = cmd(OP_FENCE);
        fence[5] = 1;
        assert_eq!(check_command(&fence), Err(EINVAL));
        // The kernel's completion signal, however well formed.
        assert_eq!(check_command(&cmd(OP_SIGNAL)), Err(EINVAL));
        let mut signal = cmd(OP_SIGNAL);
        signal[16] = 0xff;
        assert_eq!(check_command(&signal), Err(EINVAL));
        // KERNEL with no id and with an unknown one.
        assert_eq!(check_command(&cmd(OP_KERNEL)), Err(EINVAL));
        let mut k = cmd(OP_KERNEL);
        k[4] = 0x0b;
        assert_eq!(check_command(&k), Err(EINVAL));
    }

    /// Only the six opcodes of `commands.rst` exist, and SIGNAL is not a user's.
    #[test]
    fn only_known_opcodes() {
        for op in 0..=u8::MAX {
            let known = [OP_NOP, OP_FENCE, OP_COPY, OP_FILL].contains(&op);
            let expected = if known { Ok(()) } else { Err(EINVAL) };
            assert_eq!(check_command(&cmd(op)), expected);
        }
    }

    /// Every byte each format reserves is checked, and no other: operands may hold anything.
    #[test]
    fn reserved_bytes_per_format() {
        // (opcode, first operand byte, end of operands), with KERNEL id 1.
        let formats: [(u8, core::ops::Range<usize>); 5] = [
            (OP_NOP, 4..4),
            (OP_FENCE, 8..24),
            (OP_COPY, 8..32),
            (OP_FILL, 4..24),
            (OP_KERNEL, 8..56),
        ];
        for (op, operands) in formats {
            for at in 1..SLOT {
                let mut c = cmd(op);
                if op == OP_KERNEL {
                    c[4] = 1;
                }
                if at == 4 && op == OP_KERNEL {
                    continue;
                }
                c[at] = 0xff;
                // Byte 1 holds INTERRUPT (bit 8) and reserved bits 15:9.
                let expected = if operands.contains(&at) {
                    Ok(())
                } else {
                    Err(EINVAL)
                };
                assert_eq!(check_command(&c), expected);
                if at == 1 {
                    c[1] = 1;
                    assert_eq!(check_command(&c), Ok(()));
                }
            }
        }
    }

    #[test]
    fn kernel_ids() {
        for id in 0..=0xffu8 {
            let mut k = cmd(OP_KERNEL);
            k[4] = id;
            let expected = if (0x01..=0x0a).contains(&id) {
                Ok(())
            } else {
                Err(EINVAL)
            };
            assert_eq!(check_command(&k), expected);
        }
        // The id is 32 bits: a high byte set is an unknown id, not id 1.
        let mut k = cmd(OP_KERNEL);
        k[4] = 1;
        k[7] = 1;
        assert_eq!(check_command(&k), Err(EINVAL));
    }

    /// The header's reserved bits 31:9, each of them.
    #[test]
    fn reserved_header_bits() {
        for bit in 9..32 {
            let mut c = cmd(OP_NOP);
            c[0..4].copy_from_slice(&(1u32 << bit).to_le_bytes());
            assert_eq!(check_command(&c), Err(EINVAL));
        }
    }
}
