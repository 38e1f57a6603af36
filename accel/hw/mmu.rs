// SPDX-License-Identifier: GPL-2.0

//! Device page tables (`Documentation/hardware/mmu.rst`): three levels of 4 KiB tables with
//! 512 64-bit entries, kept in VRAM and written through the kernel's BAR2 mapping.
//!
//! Glossary: a context is one hardware address space; a VA is an address in it; a PTE is one
//! table entry; the leaf is the level 0 entry that maps a 4 KiB page.

use core::ops::{BitOr, BitOrAssign};
use kernel::prelude::*;

use super::{
    vram::{VramBlocks, PAGE},
    Chip,
};

/// VAs are 39 bits wide.
pub(crate) const VA_BITS: u32 = 39;
pub(crate) const VA_LIMIT: u64 = 1 << VA_BITS;
/// The top 1 GiB of every VM is the kernel's: binds stay below it. Nothing is mapped there
/// (queue fence slots are written by DPA, not through a VM), so a job's access to it faults;
/// the range stays reserved so the kernel can map its own things there later without moving
/// `va_size`, the uAPI's bound.
pub(crate) const KERNEL_VA_BASE: u64 = VA_LIMIT - (1 << 30);

kernel::bitfield! {
    /// A page-table entry (`Documentation/hardware/mmu.rst`, Page-table format).
    pub(crate) struct Pte(u64) {
        /// ADDR: the next-level table's or the page's address, bits 51:12.
        51:12 frame;
        /// The address is a VRAM offset; clear: a bus address.
        4:4 in_vram => bool;
        /// Level 1 only: the entry maps a 2 MiB page.
        3:3 huge => bool;
        /// Leaf: writes allowed.
        2:2 write => bool;
        /// Leaf: reads allowed.
        1:1 read => bool;
        0:0 valid => bool;
    }
}

/// Size of a huge page.
pub(crate) const HUGE_PAGE: u64 = 2 << 20;
/// The address bits an entry holds: 51:12.
const ADDR_MASK: u64 = Pte::FRAME_MASK;

/// What a mapping lets the context's commands do (the leaf's READ and WRITE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Access {
    read: bool,
    write: bool,
}

impl Access {
    /// Nothing: what a table link carries (the bits only count in a leaf).
    pub(crate) const NONE: Self = Self {
        read: false,
        write: false,
    };
}

/// Reads allowed.
pub(crate) const READ: Access = Access {
    read: true,
    write: false,
};
/// Writes allowed.
pub(crate) const WRITE: Access = Access {
    read: false,
    write: true,
};

impl BitOr for Access {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self {
            read: self.read || other.read,
            write: self.write || other.write,
        }
    }
}

impl BitOrAssign for Access {
    fn bitor_assign(&mut self, other: Self) {
        *self = *self | other;
    }
}
/// DPA bit 63: the address is a VRAM offset.
pub(crate) const DPA_VRAM: u64 = 1 << 63;

/// A 4 KiB table in VRAM.
struct Table {
    /// Which table: the level and the VA bits above what it covers.
    key: u64,
    offset: u64,
    _vram: VramBlocks,
}

/// The page tables of one context.
pub(crate) struct PageTables {
    root: Table,
    tables: KVec<Table>,
    /// The 2 MiB regions (VA >> 21) mapped by a huge level 1 entry.
    huge: KVec<u64>,
}

/// Whether `[va, va + left)` can start with a 2 MiB page at VRAM offset `offset`.
pub(crate) fn huge_fits(va: u64, offset: u64, left: u64) -> bool {
    va % HUGE_PAGE == 0 && offset % HUGE_PAGE == 0 && left >= HUGE_PAGE
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level)) & 511
}

impl Pte {
    /// A valid entry for `addr` (a VRAM offset if `in_vram`, else a bus address), of which
    /// bits 51:12 are kept, with `access`.
    fn new(addr: u64, in_vram: bool, access: Access) -> Self {
        Pte::from_raw(addr & ADDR_MASK)
            .with_valid(true)
            .with_in_vram(in_vram)
            .with_read(access.read)
            .with_write(access.write)
    }
}

/// A PTE that points at VRAM offset `offset` with `access`.
fn pte(offset: u64, access: Access) -> Pte {
    Pte::new(offset, true, access)
}

/// A PTE that points at bus address `addr` (system memory or a peer's BAR) with `access`.
fn pte_bus(addr: u64, access: Access) -> Pte {
    Pte::new(addr, false, access)
}

/// An entry that maps nothing.
const EMPTY: Pte = Pte::from_raw(0);

impl PageTables {
    pub(crate) fn new(core: &Chip) -> Result<Self> {
        Ok(Self {
            root: Self::new_table(core, u64::MAX)?,
            tables: KVec::new(),
            huge: KVec::new(),
        })
    }

    /// DPA of the root table, for `CTX_PT_BASE`.
    pub(crate) fn root_dpa(&self) -> u64 {
        DPA_VRAM | self.root.offset
    }

    fn new_table(core: &Chip, key: u64) -> Result<Table> {
        let vram = core.vram.alloc(PAGE, true)?;
        let offset = super::vram::runs(&vram)
            .next()
            .map(|(o, _)| o)
            .ok_or(ENOMEM)?;
        // A fresh table maps nothing: the device must not see stale entries from a previous
        // owner of this VRAM.
        core.vram_fill(offset, PAGE, 0)?;
        Ok(Table {
            key,
            offset,
            _vram: vram,
        })
    }

    /// The offset of the level `level` table covering `va`, made if missing (and `create`).
    fn table(&mut self, core: &Chip, va: u64, level: u32, create: bool) -> Result<Option<u64>> {
        if level == 2 {
            return Ok(Some(self.root.offset));
        }
        let key = (u64::from(level) << 60) | (va >> (12 + 9 * (level + 1)));
        if let Some(t) = self.tables.iter().find(|t| t.key == key) {
            return Ok(Some(t.offset));
        }
        if !create {
            return Ok(None);
        }
        let Some(parent) = self.table(core, va, level + 1, true)? else {
            return Ok(None);
        };
        let t = Self::new_table(core, key)?;
        let offset = t.offset;
        self.tables.push(t, GFP_KERNEL)?;
        core.vram_write64(
            parent + 8 * index(va, level + 1),
            pte(offset, Access::NONE).into_raw(),
        )?;
        Ok(Some(offset))
    }

    /// Maps `[va, va + len)` to VRAM from `vram_offset` on, with `access` (READ, WRITE): with
    /// 2 MiB pages where both addresses are aligned and no 4 KiB table covers the region yet
    /// (one walk instead of 512), 4 KiB pages elsewhere. Adding entries where there were none
    /// needs no invalidation.
    ///
    /// Without `in_vram`, `vram_offset` is a bus address instead (the spec's VRAM = 0 entries).
    ///
    /// All or nothing: if a table cannot be had part-way, the leaves already written are
    /// cleared again before the error returns, so no entry is left that the caller does not
    /// know about (and would not clear before it frees what the entry points at).
    pub(crate) fn map(
        &mut self,
        core: &Chip,
        va: u64,
        vram_offset: u64,
        len: u64,
        access: Access,
        in_vram: bool,
    ) -> Result {
        if !in_vram && (vram_offset & !ADDR_MASK) != 0 {
            return Err(EINVAL);
        }
        let mut off = 0;
        let r = self.map_from(core, va, vram_offset, len, access, in_vram, &mut off);
        if r.is_err() {
            let _ = self.unmap(core, va, off);
        }
        r
    }

    /// The body of [`PageTables::map`]; `off` says how far it got.
    #[allow(clippy::too_many_arguments)]
    fn map_from(
        &mut self,
        core: &Chip,
        va: u64,
        vram_offset: u64,
        len: u64,
        access: Access,
        in_vram: bool,
        off: &mut u64,
    ) -> Result {
        let entry = |addr: u64| {
            if in_vram {
                pte(addr, access)
            } else {
                pte_bus(addr, access)
            }
        };
        while *off < len {
            let off_now = *off;
            let v = va + off_now;
            if huge_fits(v, vram_offset + off_now, len - off_now)
                && self.table(core, v, 0, false)?.is_none()
            {
                let l1 = self.table(core, v, 1, true)?.ok_or(ENOMEM)?;
                self.huge.reserve(1, GFP_KERNEL)?;
                core.vram_write64(
                    l1 + 8 * index(v, 1),
                    entry(vram_offset + off_now).with_huge(true).into_raw(),
                )?;
                self.huge.push(v >> 21, GFP_KERNEL)?;
                *off += HUGE_PAGE;
                continue;
            }
            let l0 = self.table(core, v, 0, true)?.ok_or(ENOMEM)?;
            // A 2 MiB page mapped here before (a buffer that moved out of aligned VRAM) was
            // replaced by the table's link when the table was made: no longer a huge entry, so
            // `unmap` must not clear the link as if it were one.
            if let Some(i) = self.huge.iter().position(|&h| h == v >> 21) {
                let _ = self.huge.remove(i);
            }
            core.vram_write64(
                l0 + 8 * index(v, 0),
                entry(vram_offset + off_now).into_raw(),
            )?;
            *off += PAGE;
        }
        Ok(())
    }

    /// Clears the leaves of `[va, va + len)`. The caller invalidates the context's cached
    /// translations before it reuses what was mapped.
    pub(crate) fn unmap(&mut self, core: &Chip, va: u64, len: u64) -> Result {
        let mut off = 0;
        while off < len {
            let v = va + off;
            if v % HUGE_PAGE == 0 && len - off >= HUGE_PAGE {
                if let Some(i) = self.huge.iter().position(|&h| h == v >> 21) {
                    if let Some(l1) = self.table(core, v, 1, false)? {
                        core.vram_write64(l1 + 8 * index(v, 1), EMPTY.into_raw())?;
                    }
                    let _ = self.huge.remove(i);
                    off += HUGE_PAGE;
                    continue;
                }
            }
            if let Some(l0) = self.table(core, v, 0, false)? {
                core.vram_write64(l0 + 8 * index(v, 0), EMPTY.into_raw())?;
            }
            off += PAGE;
        }
        Ok(())
    }
}

#[kunit_tests(vela_mmu)]
mod tests {
    use super::*;

    #[test]
    fn va_indices() {
        let va = (3u64 << 30) | (5 << 21) | (7 << 12) | 0x123;
        assert_eq!((index(va, 2), index(va, 1), index(va, 0)), (3, 5, 7));
        assert_eq!(index(VA_LIMIT - 1, 2), 511);
    }

    #[test]
    fn huge_page_choice() {
        assert!(huge_fits(0, 0, HUGE_PAGE));
        assert!(huge_fits(4 * HUGE_PAGE, 2 * HUGE_PAGE, 3 * HUGE_PAGE));
        assert!(!huge_fits(PAGE, 0, 4 * HUGE_PAGE));
        assert!(!huge_fits(0, PAGE, 4 * HUGE_PAGE));
        assert!(!huge_fits(0, 0, HUGE_PAGE - PAGE));
        // VALID, READ, HUGE, VRAM: bits 0, 1, 3 and 4 (mmu.rst).
        assert_eq!(
            pte(HUGE_PAGE, READ).with_huge(true).into_raw() & 0xfff,
            0b1_1011
        );
    }

    #[test]
    fn pte_layout() {
        let e = pte(0x1234_5000, READ | WRITE);
        // VALID, READ, WRITE, VRAM: bits 0, 1, 2 and 4 (mmu.rst).
        assert_eq!(e.into_raw() & 0xfff, 0b1_0111);
        assert_eq!(e.into_raw() & ADDR_MASK, 0x1234_5000);
        assert!(e.valid() && e.read() && e.write() && e.in_vram() && !e.huge());
        // Bits that are not page-aligned never leak into the address or flags.
        assert_eq!(pte(0x1fff, Access::NONE).into_raw() & !0x1f, 0x1000);
        // A bus address: VALID and the access bits only.
        let b = pte_bus(0x8000_0000_1000, READ);
        assert_eq!(b.into_raw(), 0x8000_0000_1000 | 0b11);
        assert!(!b.in_vram());
        assert_eq!(ADDR_MASK, ((1 << 52) - 1) & !(PAGE - 1));
    }
}
