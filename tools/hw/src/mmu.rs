// SPDX-License-Identifier: GPL-2.0
//! Device physical addresses, virtual addresses and page-table entries (overview.rst, mmu.rst).

/// Device physical addresses: bit 63 set means local VRAM, offset in bits 62:0; clear means a
/// PCI bus address (system memory or a peer's BAR2).
pub mod dpa {
    pub const VRAM: u64 = 1 << 63;
    pub const OFFSET_MASK: u64 = !VRAM;

    /// The DPA of a VRAM offset.
    pub const fn vram(offset: u64) -> u64 {
        offset | VRAM
    }
}

/// Virtual address width; bits 63:39 of a VA must be zero.
pub const VA_BITS: u32 = 39;
/// Table levels: the walk starts at level 2.
pub const LEVELS: u32 = 3;
pub const PAGE_SIZE: u64 = 4096;
/// What a HUGE level-1 entry maps.
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;
/// Entries per 4 KiB table.
pub const ENTRIES: usize = 512;
/// VA bits each level indexes with.
pub const INDEX_BITS: u32 = 9;

/// The index into the table of `level` (2, 1 or 0) that `va` selects.
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + INDEX_BITS * level)) as usize) & (ENTRIES - 1)
}

bitfield! {
    /// A page-table entry: 64-bit little-endian, 512 to a table.
    pub struct Pte(u64) {
        /// The entry is used; when clear every other bit is free for software.
        0:0 VALID => valid, with_valid: bool;
        /// Leaf: reads allowed.
        1:1 READ => read, with_read: bool;
        /// Leaf: writes allowed.
        2:2 WRITE => write, with_write: bool;
        /// Level 1 only: the entry maps a 2 MiB page.
        3:3 HUGE => huge, with_huge: bool;
        /// ADDR is a VRAM offset; clear: a bus address.
        4:4 VRAM => vram, with_vram: bool;
        /// Must be zero (else a RESERVED_BIT fault).
        11:5 RESERVED => reserved, with_reserved: u8;
        /// Bits 51:12 of the next table's or the page's address, in place.
        51:12 ADDR => addr_bits, with_addr_bits: u64;
        /// Ignored by the device, free for software.
        63:52 SOFTWARE => software, with_software: u16;
    }
}

impl Pte {
    /// Bits 51:12 of an address, where an entry holds them.
    pub const ADDR_MASK: u64 = Self::ADDR.mask();

    /// The table or page address the entry holds, in place (bits 51:12).
    pub const fn addr(self) -> u64 {
        self.0 & Self::ADDR_MASK
    }

    /// The entry with its address set to `addr`'s bits 51:12.
    #[must_use]
    pub const fn with_addr(self, addr: u64) -> Self {
        Self((self.0 & !Self::ADDR_MASK) | (addr & Self::ADDR_MASK))
    }

    /// The DPA the entry's address stands for: with VRAM set, a VRAM DPA.
    pub const fn dpa(self) -> u64 {
        if self.vram() {
            self.addr() | dpa::VRAM
        } else {
            self.addr()
        }
    }
}

bitfield! {
    /// A partition's IOVA table entry (partitions.rst): 64-bit little-endian, one per 4 KiB
    /// page of the partition's system-memory address space.
    pub struct IovaEntry(u64) {
        /// The entry maps a page; clear: an access raises a page request.
        0:0 VALID => valid, with_valid: bool;
        1:1 READ => read, with_read: bool;
        2:2 WRITE => write, with_write: bool;
        /// Must be zero (else the access fails with DMA_ERROR).
        11:3 RESERVED => reserved, with_reserved: u16;
        /// Bits 51:12 of the page's bus address, in place.
        51:12 ADDR => addr_bits, with_addr_bits: u64;
        /// Must be zero (else the access fails with DMA_ERROR).
        63:52 RESERVED_HIGH => reserved_high, with_reserved_high: u16;
    }
}

impl IovaEntry {
    /// Bits 51:12 of the bus address, where the entry holds them.
    pub const ADDR_MASK: u64 = Self::ADDR.mask();
    /// Bits that must be zero.
    pub const RESERVED_MASK: u64 = Self::RESERVED.mask() | Self::RESERVED_HIGH.mask();

    /// A valid entry mapping bus page `addr` with the given permissions.
    pub const fn map(addr: u64, read: bool, write: bool) -> Self {
        Self((addr & Self::ADDR_MASK) | 1 | (read as u64) << 1 | (write as u64) << 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_layout() {
        let e = Pte(0)
            .with_valid(true)
            .with_read(true)
            .with_vram(true)
            .with_addr(0x1234_5000 | 0xfff);
        assert_eq!(e.bits(), 0x1234_5013);
        assert_eq!(e.dpa(), dpa::VRAM | 0x1234_5000);
        assert_eq!(Pte::ADDR_MASK, 0x000f_ffff_ffff_f000);
        assert_eq!(Pte::RESERVED.mask(), 0x7f << 5);
        assert_eq!(index(0x4020_1000, 2), 1);
        assert_eq!(index(0x4020_1000, 1), 1);
        assert_eq!(index(0x4020_1000, 0), 1);
    }

    #[test]
    fn iova_entry_layout() {
        let e = IovaEntry::map(0x1_2345_6fff, true, false);
        assert_eq!(e.bits(), 0x1_2345_6003);
        assert!(e.valid() && e.read() && !e.write());
        assert_eq!(IovaEntry::RESERVED_MASK, 0xfff0_0000_0000_0ff8);
    }
}
