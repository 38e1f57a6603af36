// SPDX-License-Identifier: GPL-2.0

//! The PCI configuration space of a vGPU instance, emulated: the Vela function's
//! (`Documentation/hardware/pci.rst`) with the instance's BAR2 size and MSI-X table size
//! (`Documentation/vgpu.rst`, Config space). No hardware is touched.

use kernel::prelude::*;

use crate::{PCI_DEVICE_VELA, PCI_VENDOR_VELA};

/// Size of the config region.
pub(crate) const SIZE: usize = 4096;

/// BAR0's size: the register window.
pub(crate) const BAR0_SIZE: u32 = 0x1_0000;

const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const BAR0: usize = 0x10;
const BAR2_LO: usize = 0x18;
const BAR2_HI: usize = 0x1c;
const PCIE: usize = 0x40;
const MSIX: usize = 0x80;
/// PCI Express Device Control, and its Initiate Function Level Reset bit.
const DEVCTL: usize = PCIE + 0x08;
const DEVCTL_FLR: u16 = 1 << 15;
const MSIX_CTL: usize = MSIX + 0x02;

/// Command bits the function implements: Memory Space, Bus Master, Parity Error Response,
/// SERR#, Interrupt Disable.
const COMMAND_WRITABLE: u16 = 0x0546;

/// What a write did besides changing bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    None,
    /// A Function Level Reset was initiated.
    Flr,
}

/// One instance's config space.
pub(crate) struct ConfigSpace {
    /// On the heap: 4 KiB by value would be copied through the stack frames of instance
    /// creation (the value, the state holding it, the initializer capturing that), which
    /// overflowed the 16 KiB kernel stack once lockdep and slab debugging unwound on top.
    bytes: KBox<[u8; SIZE]>,
    /// BAR2's size: the instance's VRAM slice, a power of two.
    bar2_size: u64,
}

impl ConfigSpace {
    /// The config space at reset for an instance with `bar2_size` bytes of VRAM and `vectors`
    /// MSI-X vectors (1 to 2048).
    pub(crate) fn new(bar2_size: u64, vectors: u16) -> Result<Self> {
        let mut c = Self {
            // Zeroed in place, never on the stack.
            bytes: KBox::init(pin_init::zeroed::<[u8; SIZE]>(), GFP_KERNEL)?,
            bar2_size,
        };
        c.fill(vectors);
        Ok(c)
    }

    /// Back to the reset values (a reset or FLR); BAR2's size stays.
    pub(crate) fn reset(&mut self) {
        let vectors = (self.get16(MSIX_CTL) & 0x7ff) + 1;
        self.bytes.fill(0);
        self.fill(vectors);
    }

    /// Writes the reset values into a zeroed space.
    fn fill(&mut self, vectors: u16) {
        self.put16(0x00, PCI_VENDOR_VELA);
        self.put16(0x02, PCI_DEVICE_VELA);
        self.put16(STATUS, 1 << 4); // Capabilities List
        self.bytes[0x08] = 0x01; // revision
        self.bytes[0x0b] = 0x12; // class: processing accelerator
        self.put32(BAR2_LO, 0xc); // 64-bit, prefetchable
        self.put16(0x2c, PCI_VENDOR_VELA);
        self.put16(0x2e, PCI_DEVICE_VELA);
        self.bytes[0x34] = PCIE as u8;
        // PCI Express capability, version 2, endpoint, FLR capable.
        self.bytes[PCIE] = 0x10;
        self.bytes[PCIE + 1] = MSIX as u8;
        self.put16(PCIE + 0x02, 0x0002);
        self.put32(PCIE + 0x04, 0x1000_8001);
        self.put16(DEVCTL, 0x2810);
        self.put32(PCIE + 0x0c, 0x0000_0103);
        self.put16(PCIE + 0x12, 0x0103);
        self.put32(PCIE + 0x2c, 0x0000_000e);
        self.put16(PCIE + 0x30, 0x0003);
        // MSI-X: table at BAR0 + 0x8000, PBA at BAR0 + 0x9000.
        self.bytes[MSIX] = 0x11;
        self.put16(MSIX_CTL, (vectors.max(1) - 1) & 0x7ff);
        self.put32(MSIX + 0x04, 0x8000);
        self.put32(MSIX + 0x08, 0x9000);
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn get16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    /// Reads `out.len()` bytes at `offset`; any length inside the region (a VMM reads the
    /// whole space at once).
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) -> Result {
        let end = offset.checked_add(out.len()).ok_or(EINVAL)?;
        let src = self.bytes.get(offset..end).ok_or(EINVAL)?;
        out.copy_from_slice(src);
        Ok(())
    }

    /// Writes `data` (1, 2 or 4 bytes, naturally aligned) at `offset`: read-only bits keep
    /// their value, BARs take their size masks.
    pub(crate) fn write(&mut self, offset: usize, data: &[u8]) -> Result<Effect> {
        let len = data.len();
        if !matches!(len, 1 | 2 | 4) || offset % len != 0 || offset + len > SIZE {
            return Err(EINVAL);
        }
        let mut effect = Effect::None;
        // Apply byte by byte through the dword that holds them, so each register's rule sees
        // the merged value.
        let dword = offset & !3;
        let mut cur = [0u8; 4];
        cur.copy_from_slice(&self.bytes[dword..dword + 4]);
        let mut new = cur;
        new[offset - dword..offset - dword + len].copy_from_slice(data);
        let old = u32::from_le_bytes(cur);
        let val = u32::from_le_bytes(new);
        let lo16 = |v: u32| (v & 0xffff) as u16;
        let hi16 = |v: u32| (v >> 16) as u16;
        let merged: u32 = match dword {
            // Command: writable bits; Status: W1C bits the device never sets, so unchanged.
            COMMAND => {
                let cmd = (lo16(old) & !COMMAND_WRITABLE) | (lo16(val) & COMMAND_WRITABLE);
                u32::from(cmd) | (old & 0xffff_0000)
            }
            // Cache line size, latency timer writable; header type and BIST read-only.
            0x0c => (old & 0xffff_0000) | (val & 0xffff),
            BAR0 => val & !(BAR0_SIZE - 1),
            BAR2_LO => (val & !((self.bar2_size.saturating_sub(1)) as u32) & !0xf) | 0xc,
            BAR2_HI => val & !((self.bar2_size.saturating_sub(1) >> 32) as u32),
            // Interrupt line writable; pin, min grant, max latency read-only.
            0x3c => (old & !0xff) | (val & 0xff),
            // Device Control (bit 15 FLR is W1 and reads 0); Device Status W1C, never set.
            d if d == DEVCTL => {
                let ctl = lo16(val);
                if ctl & DEVCTL_FLR != 0 && offset - dword < 2 {
                    effect = Effect::Flr;
                }
                u32::from(ctl & !DEVCTL_FLR) | (old & 0xffff_0000)
            }
            // Link Control bits 11:6 and 1:0.
            d if d == PCIE + 0x10 => {
                u32::from((lo16(old) & !0x0fc3) | (lo16(val) & 0x0fc3)) | (old & 0xffff_0000)
            }
            // Device Control 2 bits 10 and 5:0.
            d if d == PCIE + 0x28 => {
                u32::from((lo16(old) & !0x043f) | (lo16(val) & 0x043f)) | (old & 0xffff_0000)
            }
            // Link Control 2 bits 3:0.
            d if d == PCIE + 0x30 => {
                u32::from((lo16(old) & !0x000f) | (lo16(val) & 0x000f)) | (old & 0xffff_0000)
            }
            // MSI-X Message Control: Function Mask and Enable writable.
            d if d == MSIX => {
                let ctl = (hi16(old) & !0xc000) | (hi16(val) & 0xc000);
                (u32::from(ctl) << 16) | (old & 0xffff)
            }
            // Everything else is read-only.
            _ => old,
        };
        if effect == Effect::Flr {
            self.reset();
        } else {
            self.put32(dword, merged);
        }
        Ok(effect)
    }
}

#[kunit_tests(vela_vgpu_config)]
mod tests {
    use super::*;

    fn dword(c: &ConfigSpace, at: usize) -> u32 {
        let mut b = [0u8; 4];
        assert_eq!(c.read(at, &mut b), Ok(()));
        u32::from_le_bytes(b)
    }

    #[test]
    fn identity_and_bar_sizing() -> Result {
        let mut c = ConfigSpace::new(64 << 20, 3)?;
        assert_eq!(dword(&c, 0), 0x0001_1f5a);
        assert_eq!(dword(&c, 0x08), 0x1200_0001);
        c.write(0x10, &u32::MAX.to_le_bytes())?;
        assert_eq!(dword(&c, 0x10), 0xffff_0000);
        c.write(0x18, &u32::MAX.to_le_bytes())?;
        assert_eq!(dword(&c, 0x18), 0xfc00_000c);
        c.write(0x1c, &u32::MAX.to_le_bytes())?;
        assert_eq!(dword(&c, 0x1c), u32::MAX);
        // MSI-X table size is vectors - 1.
        assert_eq!(dword(&c, 0x80) >> 16, 2);
        Ok(())
    }

    #[test]
    fn read_only_and_bad_accesses() -> Result {
        let mut c = ConfigSpace::new(32 << 20, 2)?;
        c.write(0x00, &[0, 0])?;
        assert_eq!(dword(&c, 0), 0x0001_1f5a);
        c.write(0x04, &[0xff, 0xff])?;
        assert_eq!(dword(&c, 0x04) & 0xffff, 0x0546);
        assert_eq!(c.write(0x05, &[0, 0]), Err(EINVAL));
        assert_eq!(c.write(0x04, &[0, 0, 0]), Err(EINVAL));
        assert_eq!(c.write(4094, &[0, 0, 0, 0]), Err(EINVAL));
        let mut b = [0u8; 8];
        assert_eq!(c.read(4092, &mut b), Err(EINVAL));
        // FLR resets the command register.
        c.write(0x48, &[0, 0x80])?;
        assert_eq!(dword(&c, 0x04) & 0xffff, 0);
        Ok(())
    }
}
