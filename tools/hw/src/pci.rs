// SPDX-License-Identifier: GPL-2.0
//! The PCI function (pci.rst): identity, BARs, capabilities.

pub const VENDOR_ID: u16 = 0x1f5a;
pub const DEVICE_ID: u16 = 0x0001;
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1f5a;
pub const SUBSYSTEM_ID: u16 = 0x0001;
pub const REVISION: u8 = 0x01;
/// Processing accelerator: base class 0x12, subclass 0, prog-if 0.
pub const CLASS_CODE: u32 = 0x12_0000;
pub const HEADER_TYPE: u8 = 0x00;
/// No INTx: MSI-X only.
pub const INTERRUPT_PIN: u8 = 0;

/// BAR0, the registers: 32-bit, non-prefetchable.
pub const BAR0_SIZE: u64 = 64 * 1024;
/// BAR4, the partitions' register windows: 32-bit, non-prefetchable, one window of
/// [`WINDOW_SIZE`] per partition slot, each laid out as BAR0 (partitions.rst).
pub const BAR4_SIZE: u64 = WINDOW_SIZE * crate::regs::NUM_PARTITIONS as u64;
/// One partition's register window: the size of BAR0.
pub const WINDOW_SIZE: u64 = BAR0_SIZE;
/// Smallest VRAM, hence BAR2, size; BAR2 is a power of two.
pub const BAR2_MIN_SIZE: u64 = 1 << 20;

/// Config space offsets of the capabilities the device implements.
pub const CAP_PCIE: usize = 0x40;
pub const CAP_MSIX: usize = 0x80;
/// Full PCIe config space; no extended capabilities are present.
pub const CONFIG_SIZE: usize = 4096;
