// SPDX-License-Identifier: GPL-2.0
//! PCI configuration space of one Vela function.
//!
//! The client (QEMU's `vfio-user-pci`) forwards every config access here, so
//! this is the whole type-0 header plus the PCIe and MSI-X capabilities. BAR
//! sizing falls out of the write masks: the address bits below the BAR size
//! are not writable, so writing all-ones reads back the size mask.

use vela_hw::regs::{self};

/// Standard header offsets used here.
mod off {
    pub const VENDOR_ID: usize = 0x00;
    pub const DEVICE_ID: usize = 0x02;
    pub const COMMAND: usize = 0x04;
    pub const STATUS: usize = 0x06;
    pub const REVISION: usize = 0x08;
    pub const CLASS: usize = 0x09;
    pub const CACHE_LINE: usize = 0x0c;
    pub const LATENCY: usize = 0x0d;
    pub const BAR0: usize = 0x10;
    pub const BAR2: usize = 0x18;
    pub const BAR4: usize = 0x20;
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
    pub const SUBSYSTEM_ID: usize = 0x2e;
    pub const CAP_PTR: usize = 0x34;
    pub const INTERRUPT_LINE: usize = 0x3c;
}

/// Command register bits the function implements.
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
const COMMAND_WRITABLE: u16 = COMMAND_MEMORY | COMMAND_BUS_MASTER | (1 << 6) | (1 << 8) | (1 << 10);
const STATUS_CAP_LIST: u16 = 1 << 4;
/// Status bits 15:11 and 8 are write-one-to-clear error bits.
const STATUS_W1C: u16 = 0xf900;

const BAR_MEM_64: u32 = 0b100;
const BAR_PREFETCH: u32 = 0b1000;

/// PCIe capability (version 2, endpoint) register offsets and values.
mod pcie {
    pub const ID: u8 = 0x10;
    pub const LEN: usize = 0x3c;
    pub const FLAGS: usize = 0x02;
    pub const DEVCAP: usize = 0x04;
    pub const DEVCTL: usize = 0x08;
    pub const DEVSTA: usize = 0x0a;
    pub const LNKCAP: usize = 0x0c;
    pub const LNKCTL: usize = 0x10;
    pub const LNKSTA: usize = 0x12;
    pub const DEVCTL2: usize = 0x28;
    pub const LNKCAP2: usize = 0x2c;
    pub const LNKCTL2: usize = 0x30;

    /// Version 2, device/port type 0 (PCI Express endpoint).
    pub const FLAGS_VALUE: u16 = 0x0002;
    /// Max payload 256 bytes, role-based error reporting, FLR capable.
    pub const DEVCAP_VALUE: u32 = 0x1 | (1 << 15) | (1 << 28);
    pub const DEVCTL_FLR: u16 = 1 << 15;
    /// Default DEVCTL: relaxed ordering, no-snoop, 128-byte payload, 512-byte read requests.
    pub const DEVCTL_RESET: u16 = (1 << 4) | (1 << 11) | (2 << 12);
    /// 8 GT/s, x16.
    pub const LNKCAP_VALUE: u32 = 0x3 | (16 << 4);
    pub const LNKSTA_VALUE: u16 = 0x3 | (16 << 4);
    /// Supported speeds 2.5, 5 and 8 GT/s.
    pub const LNKCAP2_VALUE: u32 = 0b1110;
    pub const LNKCTL2_RESET: u16 = 0x3;
}

/// MSI-X capability register offsets.
mod msix {
    pub const ID: u8 = 0x11;
    pub const CONTROL: usize = 0x02;
    pub const TABLE: usize = 0x04;
    pub const PBA: usize = 0x08;
    pub const ENABLE: u16 = 1 << 15;
    pub const FUNCTION_MASK: u16 = 1 << 14;
}

/// What a config write asks the function to do beyond storing bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteEffect {
    /// Initiate Function Level Reset was written.
    pub flr: bool,
    /// BAR addresses or memory decode may have changed.
    pub bars_changed: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    OutOfRange { offset: u64, len: usize },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutOfRange { offset, len } => {
                write!(
                    f,
                    "config access of {len} bytes at {offset:#x} is outside config space"
                )
            }
        }
    }
}

pub struct ConfigSpace {
    bytes: Box<[u8; vela_hw::pci::CONFIG_SIZE]>,
    wmask: Box<[u8; vela_hw::pci::CONFIG_SIZE]>,
    w1c: Box<[u8; vela_hw::pci::CONFIG_SIZE]>,
    vram_size: u64,
}

impl ConfigSpace {
    /// `vram_size` must be a power of two of at least 4 KiB (checked by the caller).
    pub fn new(vram_size: u64, msix_vectors: u16) -> Self {
        let mut cs = Self {
            bytes: Box::new([0; vela_hw::pci::CONFIG_SIZE]),
            wmask: Box::new([0; vela_hw::pci::CONFIG_SIZE]),
            w1c: Box::new([0; vela_hw::pci::CONFIG_SIZE]),
            vram_size,
        };
        cs.set16(off::VENDOR_ID, vela_hw::pci::VENDOR_ID);
        cs.set16(off::DEVICE_ID, vela_hw::pci::DEVICE_ID);
        cs.bytes[off::REVISION] = vela_hw::pci::REVISION;
        cs.bytes[off::CLASS..off::CLASS + 3]
            .copy_from_slice(&vela_hw::pci::CLASS_CODE.to_le_bytes()[..3]);
        cs.set16(off::SUBSYSTEM_VENDOR_ID, vela_hw::pci::SUBSYSTEM_VENDOR_ID);
        cs.set16(off::SUBSYSTEM_ID, vela_hw::pci::SUBSYSTEM_ID);
        cs.set16(off::STATUS, STATUS_CAP_LIST);
        cs.bytes[off::CAP_PTR] = vela_hw::pci::CAP_PCIE as u8;
        cs.mask16(off::COMMAND, COMMAND_WRITABLE);
        cs.w1c[off::STATUS..off::STATUS + 2].copy_from_slice(&STATUS_W1C.to_le_bytes());
        cs.wmask[off::CACHE_LINE] = 0xff;
        cs.wmask[off::LATENCY] = 0xff;
        cs.wmask[off::INTERRUPT_LINE] = 0xff;

        // BAR0: 32-bit, non-prefetchable; the bits below its size stay zero.
        cs.mask32(off::BAR0, !(vela_hw::pci::BAR0_SIZE as u32 - 1));
        // BAR2/3: 64-bit prefetchable VRAM.
        cs.set32(off::BAR2, BAR_MEM_64 | BAR_PREFETCH);
        let bar2_mask = !(vram_size - 1);
        cs.mask32(off::BAR2, bar2_mask as u32 & !0xf);
        cs.mask32(off::BAR2 + 4, (bar2_mask >> 32) as u32);
        // BAR4: 32-bit, non-prefetchable partition windows, trapped like BAR0.
        cs.mask32(off::BAR4, !(vela_hw::pci::BAR4_SIZE as u32 - 1));

        let p = vela_hw::pci::CAP_PCIE;
        cs.bytes[p] = pcie::ID;
        cs.bytes[p + 1] = vela_hw::pci::CAP_MSIX as u8;
        cs.set16(p + pcie::FLAGS, pcie::FLAGS_VALUE);
        cs.set32(p + pcie::DEVCAP, pcie::DEVCAP_VALUE);
        cs.set16(p + pcie::DEVCTL, pcie::DEVCTL_RESET);
        cs.mask16(p + pcie::DEVCTL, 0xffff);
        cs.w1c[p + pcie::DEVSTA] = 0x0f;
        cs.set32(p + pcie::LNKCAP, pcie::LNKCAP_VALUE);
        cs.mask16(p + pcie::LNKCTL, 0x0fc3);
        cs.set16(p + pcie::LNKSTA, pcie::LNKSTA_VALUE);
        cs.mask16(p + pcie::DEVCTL2, 0x043f);
        cs.set32(p + pcie::LNKCAP2, pcie::LNKCAP2_VALUE);
        cs.set16(p + pcie::LNKCTL2, pcie::LNKCTL2_RESET);
        cs.mask16(p + pcie::LNKCTL2, 0x000f);
        debug_assert!(p + pcie::LEN <= vela_hw::pci::CAP_MSIX);

        let m = vela_hw::pci::CAP_MSIX;
        cs.bytes[m] = msix::ID;
        cs.bytes[m + 1] = 0;
        cs.set16(m + msix::CONTROL, msix_vectors.saturating_sub(1) & 0x7ff);
        cs.mask16(m + msix::CONTROL, msix::ENABLE | msix::FUNCTION_MASK);
        // BIR 0 in bits 2:0 of both offsets.
        cs.set32(m + msix::TABLE, regs::MSIX_TABLE);
        cs.set32(m + msix::PBA, regs::MSIX_PBA);
        cs
    }

    /// Return every register to its reset value (FLR, bus reset).
    pub fn reset(&mut self) {
        let msix_vectors = (self.get16(vela_hw::pci::CAP_MSIX + msix::CONTROL) & 0x7ff) + 1;
        *self = Self::new(self.vram_size, msix_vectors);
    }

    pub fn read(&self, offset: u64, data: &mut [u8]) -> Result<(), ConfigError> {
        let range = self.range(offset, data.len())?;
        data.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<WriteEffect, ConfigError> {
        let range = self.range(offset, data.len())?;
        let start = range.start;
        for (i, &v) in range.zip(data) {
            let w = self.wmask[i];
            self.bytes[i] = (self.bytes[i] & !w) | (v & w);
            self.bytes[i] &= !(v & self.w1c[i]);
        }
        let touches = |at: usize, len: usize| start < at + len && at < start + data.len();

        let mut effect = WriteEffect::default();
        let devctl = vela_hw::pci::CAP_PCIE + pcie::DEVCTL;
        if touches(devctl, 2) && self.get16(devctl) & pcie::DEVCTL_FLR != 0 {
            // The FLR bit always reads back as zero.
            self.set16(devctl, self.get16(devctl) & !pcie::DEVCTL_FLR);
            effect.flr = true;
        }
        effect.bars_changed = touches(off::COMMAND, 2) || touches(off::BAR0, 0x18);
        Ok(effect)
    }

    pub fn command(&self) -> u16 {
        self.get16(off::COMMAND)
    }

    /// BAR0 bus address, if memory decode is on.
    pub fn bar0(&self) -> Option<u64> {
        let addr = u64::from(self.get32(off::BAR0) & !0xf);
        (self.command() & COMMAND_MEMORY != 0).then_some(addr)
    }

    /// BAR2 bus address, if memory decode is on and the BAR has been placed.
    pub fn bar2(&self) -> Option<u64> {
        let lo = u64::from(self.get32(off::BAR2) & !0xf);
        let hi = u64::from(self.get32(off::BAR2 + 4));
        let addr = (hi << 32) | lo;
        (self.command() & COMMAND_MEMORY != 0 && addr != 0).then_some(addr)
    }

    pub fn bus_master(&self) -> bool {
        self.command() & COMMAND_BUS_MASTER != 0
    }

    pub fn msix_enabled(&self) -> bool {
        self.get16(vela_hw::pci::CAP_MSIX + msix::CONTROL) & msix::ENABLE != 0
    }

    pub fn msix_function_masked(&self) -> bool {
        self.get16(vela_hw::pci::CAP_MSIX + msix::CONTROL) & msix::FUNCTION_MASK != 0
    }

    fn range(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, ConfigError> {
        let err = ConfigError::OutOfRange { offset, len };
        let start = usize::try_from(offset).map_err(|_| ConfigError::OutOfRange { offset, len })?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > vela_hw::pci::CONFIG_SIZE {
            return Err(ConfigError::OutOfRange { offset, len });
        }
        Ok(start..end)
    }

    fn get16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn get32(&self, at: usize) -> u32 {
        let b = &self.bytes[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn set16(&mut self, at: usize, v: u16) {
        self.bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mask16(&mut self, at: usize, v: u16) {
        self.wmask[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn mask32(&mut self, at: usize, v: u32) {
        self.wmask[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd32(cs: &ConfigSpace, at: u64) -> u32 {
        let mut b = [0; 4];
        cs.read(at, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    fn wr32(cs: &mut ConfigSpace, at: u64, v: u32) -> WriteEffect {
        cs.write(at, &v.to_le_bytes()).unwrap()
    }

    #[test]
    fn identity() {
        let cs = ConfigSpace::new(256 << 20, 5);
        assert_eq!(rd32(&cs, 0), 0x0001_1f5a);
        assert_eq!(rd32(&cs, 8), 0x1200_0001);
        assert_eq!(rd32(&cs, 0x2c), 0x0001_1f5a);
        assert_eq!(rd32(&cs, 0x34) & 0xff, 0x40);
        assert_eq!(rd32(&cs, 0x3c) >> 8 & 0xff, 0, "no INTx pin");
    }

    #[test]
    fn bar_sizing_and_placement() {
        let mut cs = ConfigSpace::new(256 << 20, 5);
        assert_eq!(rd32(&cs, 0x10), 0);
        assert_eq!(rd32(&cs, 0x18), 0xc);
        wr32(&mut cs, 0x10, !0);
        assert_eq!(rd32(&cs, 0x10), 0xffff_0000, "BAR0 is 64 KiB");
        wr32(&mut cs, 0x14, !0);
        assert_eq!(rd32(&cs, 0x14), 0, "BAR1 is unimplemented");
        wr32(&mut cs, 0x18, !0);
        wr32(&mut cs, 0x1c, !0);
        assert_eq!(rd32(&cs, 0x18), 0xf000_000c);
        assert_eq!(rd32(&cs, 0x1c), 0xffff_ffff);
        let size = !(u64::from(rd32(&cs, 0x1c)) << 32 | u64::from(rd32(&cs, 0x18) & !0xf)) + 1;
        assert_eq!(size, 256 << 20);

        wr32(&mut cs, 0x10, 0xfe00_0000);
        wr32(&mut cs, 0x18, 0x1000_0000);
        let e = wr32(&mut cs, 0x1c, 0x80);
        assert!(e.bars_changed);
        assert_eq!(cs.bar2(), None, "memory decode is still off");
        wr32(
            &mut cs,
            0x04,
            u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER),
        );
        assert_eq!(cs.bar0(), Some(0xfe00_0000));
        assert_eq!(cs.bar2(), Some(0x80_1000_0000));
        wr32(&mut cs, 0x20, !0);
        assert_eq!(rd32(&cs, 0x20), 0xfff8_0000, "BAR4 is 512 KiB, 32-bit");
        assert_eq!(rd32(&cs, 0x24), 0, "BAR5 is unimplemented");
        assert!(cs.bus_master());
    }

    #[test]
    fn big_bar2_sizes_the_high_dword() {
        let mut cs = ConfigSpace::new(8 << 30, 5);
        wr32(&mut cs, 0x18, !0);
        wr32(&mut cs, 0x1c, !0);
        assert_eq!(rd32(&cs, 0x18), 0x0000_000c);
        assert_eq!(rd32(&cs, 0x1c), 0xffff_fffe);
    }

    #[test]
    fn capability_list() {
        let cs = ConfigSpace::new(1 << 20, 5);
        let pcie = rd32(&cs, 0x40);
        assert_eq!(pcie & 0xff, 0x10);
        assert_eq!(pcie >> 8 & 0xff, 0x80);
        assert_eq!(pcie >> 16, 0x0002);
        assert_ne!(rd32(&cs, 0x44) & (1 << 28), 0, "FLR capable");
        let msix = rd32(&cs, 0x80);
        assert_eq!(msix & 0xff, 0x11);
        assert_eq!(msix >> 8 & 0xff, 0, "end of list");
        assert_eq!(msix >> 16 & 0x7ff, 4, "five vectors");
        assert_eq!(rd32(&cs, 0x84), 0x8000);
        assert_eq!(rd32(&cs, 0x88), 0x9000);
        assert_eq!(rd32(&cs, 0x100), 0, "no extended capabilities");
    }

    #[test]
    fn msix_enable_and_flr() {
        let mut cs = ConfigSpace::new(1 << 20, 5);
        cs.write(0x82, &0xc000u16.to_le_bytes()).unwrap();
        assert!(cs.msix_enabled() && cs.msix_function_masked());
        let e = cs.write(0x48, &0x8000u16.to_le_bytes()).unwrap();
        assert!(e.flr);
        assert_eq!(rd32(&cs, 0x48) & 0x8000, 0);
        cs.reset();
        assert!(!cs.msix_enabled());
        assert_eq!(rd32(&cs, 0x80) >> 16 & 0x7ff, 4);
    }

    #[test]
    fn out_of_range_is_an_error() {
        let mut cs = ConfigSpace::new(1 << 20, 5);
        let mut b = [0; 4];
        assert!(cs.read(4094, &mut b).is_err());
        assert!(cs.write(u64::MAX, &b).is_err());
        assert!(cs.read(4092, &mut b).is_ok());
    }
}
