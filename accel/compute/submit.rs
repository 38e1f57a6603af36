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

use crate::hw::queue::SLOT;

const OP_NOP: u8 = 0x00;
const OP_FENCE: u8 = 0x01;
const OP_COPY: u8 = 0x02;
const OP_FILL: u8 = 0x03;
const OP_KERNEL: u8 = 0x10;
/// Compute kernel ids 0x01 (ADD_F32) to 0x0a (MATMUL_F32), `Documentation/hardware/compute.rst`.
const KERNEL_IDS: core::ops::RangeInclusive<u32> = 0x01..=0x0a;

fn zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

fn u32_at(c: &[u8; SLOT], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&c[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Checks one command: a known opcode, and zero in every reserved header bit and byte.
pub(crate) fn check_command(c: &[u8; SLOT]) -> Result {
    let header = u32_at(c, 0);
    // Bits 31:9 are reserved; bit 8 is INTERRUPT.
    if header >> 9 != 0 {
        return Err(EINVAL);
    }
    let ok = match c[0] {
        OP_NOP => zero(&c[4..]),
        OP_FENCE => zero(&c[4..8]) && zero(&c[24..]),
        OP_COPY => zero(&c[4..8]) && zero(&c[32..]),
        OP_FILL => zero(&c[24..]),
        OP_KERNEL => KERNEL_IDS.contains(&u32_at(c, 4)) && zero(&c[56..]),
        _ => false,
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

    /// The kernel's completion signal, written by DPA past every VM: a user never gets to emit
    /// it (`Documentation/hardware/queues.rst`, Privilege), and `check_command` knows it only as
    /// an opcode it refuses.
    const OP_SIGNAL: u8 = 0x04;

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
}
