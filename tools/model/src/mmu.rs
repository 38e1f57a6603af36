// SPDX-License-Identifier: GPL-2.0
//! The device MMU's page walk: three levels of 512-entry tables, 4 KiB and
//! 2 MiB pages. The walk is a pure function of the tables it reads, so it is
//! tested without a device.

use vela_hw::regs::FaultReason;
use vela_hw::Pte;

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub dpa: u64,
    /// Bytes from the VA to the end of its page: how far the DPA stays contiguous.
    pub span: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub va: u64,
    pub write: bool,
    pub reason: FaultReason,
    pub level: u8,
}

fn next_dpa(entry: u64) -> u64 {
    let addr = entry & Pte::ADDR_MASK;
    if entry & Pte::VRAM.mask() != 0 {
        addr | vela_hw::dpa::VRAM
    } else {
        addr
    }
}

/// Where the last walks found the level 1 and level 0 tables, so that the
/// next page of a long access skips the upper levels. The specification lets
/// the device cache translations until INVALIDATE; the model keeps one of
/// these per command only, which is always within that licence.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkCache {
    /// `[level 0, level 1]`: (VA bits above the table's reach, table DPA).
    tables: [Option<(u64, u64)>; 2],
}

impl WalkCache {
    fn start(&self, va: u64, root: u64) -> (u8, u64) {
        for level in 0..2u8 {
            if let Some((tag, table)) = self.tables[level as usize] {
                if tag == va >> reach_shift(level) {
                    return (level, table);
                }
            }
        }
        (2, root)
    }
}

/// log2 of the VA range one table at `level` covers.
fn reach_shift(level: u8) -> u32 {
    12 + 9 * (u32::from(level) + 1)
}

/// Translate `va` through the tables rooted at DPA `root`. `read_pte` reads
/// one entry at a DPA and returns `None` when that DPA is unreachable.
pub fn translate(
    va: u64,
    write: bool,
    root: u64,
    read_pte: impl FnMut(u64) -> Option<u64>,
) -> Result<Translation, Fault> {
    translate_cached(va, write, root, &mut WalkCache::default(), read_pte)
}

/// [`translate`], starting from the deepest table `cache` knows for `va`.
pub fn translate_cached(
    va: u64,
    write: bool,
    root: u64,
    cache: &mut WalkCache,
    mut read_pte: impl FnMut(u64) -> Option<u64>,
) -> Result<Translation, Fault> {
    let fault = |reason, level| Fault {
        va,
        write,
        reason,
        level,
    };
    if va >> vela_hw::mmu::VA_BITS != 0 {
        return Err(fault(FaultReason::AddressSize, 2));
    }
    let (top, mut table) = cache.start(va, root);
    for level in (0..=top).rev() {
        let index = (va >> (12 + 9 * u32::from(level))) & 0x1ff;
        let entry = read_pte(table + index * 8).ok_or(fault(FaultReason::TableBusError, level))?;
        if entry & Pte::VALID.mask() == 0 {
            return Err(fault(FaultReason::NotPresent, level));
        }
        if entry & Pte::RESERVED.mask() != 0 {
            return Err(fault(FaultReason::Reserved, level));
        }
        let huge = entry & Pte::HUGE.mask() != 0;
        let leaf = match (level, huge) {
            (1, true) => Some(vela_hw::mmu::HUGE_PAGE_SIZE),
            (0, false) => Some(vela_hw::mmu::PAGE_SIZE),
            (_, true) => return Err(fault(FaultReason::Reserved, level)),
            (_, false) => None,
        };
        let Some(page) = leaf else {
            table = next_dpa(entry);
            cache.tables[usize::from(level - 1)] = Some((va >> reach_shift(level - 1), table));
            continue;
        };
        if entry & Pte::ADDR_MASK & (page - 1) != 0 {
            return Err(fault(FaultReason::Reserved, level));
        }
        let allowed = if write {
            entry & Pte::WRITE.mask()
        } else {
            entry & Pte::READ.mask()
        };
        if allowed == 0 {
            let reason = if write {
                FaultReason::WriteProtect
            } else {
                FaultReason::ReadProtect
            };
            return Err(fault(reason, level));
        }
        let within = va & (page - 1);
        return Ok(Translation {
            dpa: next_dpa(entry) + within,
            span: page - within,
        });
    }
    // Level 0 always ends the walk above; this only satisfies the type checker.
    Err(fault(FaultReason::Reserved, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Page tables in a sparse map of DPA -> entry.
    #[derive(Default)]
    struct Tables(HashMap<u64, u64>);

    impl Tables {
        fn set(&mut self, table: u64, index: u64, entry: u64) {
            self.0.insert(table + index * 8, entry);
        }
        fn walk(&self, va: u64, write: bool) -> Result<Translation, Fault> {
            translate(va, write, ROOT, |a| {
                if a & !0xfff == BROKEN {
                    None
                } else {
                    Some(self.0.get(&a).copied().unwrap_or(0))
                }
            })
        }
    }

    const ROOT: u64 = vela_hw::dpa::VRAM | 0x1000;
    const L1: u64 = 0x2000;
    const L0: u64 = vela_hw::dpa::VRAM | 0x3000;
    const BROKEN: u64 = 0xdead_0000;
    const RW: u64 = Pte::VALID.mask() | Pte::READ.mask() | Pte::WRITE.mask();

    fn tables() -> Tables {
        let mut t = Tables::default();
        // VA 0x4000_0000.. : level 2 index 1 -> L1 in system memory.
        t.set(ROOT, 1, Pte::VALID.mask() | L1);
        // L1 index 0 -> L0 in VRAM; index 1 -> 2 MiB page at VRAM 0x60_0000.
        t.set(
            L1,
            0,
            Pte::VALID.mask() | Pte::VRAM.mask() | (L0 & Pte::ADDR_MASK),
        );
        t.set(L1, 1, RW | Pte::HUGE.mask() | Pte::VRAM.mask() | 0x60_0000);
        // L0 index 2: read-only 4 KiB page at bus address 0x9000_0000.
        t.set(L0, 2, Pte::VALID.mask() | Pte::READ.mask() | 0x9000_0000);
        // L0 index 3: write-only page in VRAM.
        t.set(
            L0,
            3,
            Pte::VALID.mask() | Pte::WRITE.mask() | Pte::VRAM.mask() | 0x5000,
        );
        t
    }

    #[test]
    fn four_kib_and_two_mib_pages() {
        let t = tables();
        let r = t.walk(0x4000_2123, false).unwrap();
        assert_eq!(
            r,
            Translation {
                dpa: 0x9000_0123,
                span: 0x1000 - 0x123
            }
        );
        let r = t.walk(0x4020_0010, true).unwrap();
        assert_eq!(
            r,
            Translation {
                dpa: vela_hw::dpa::VRAM | 0x60_0010,
                span: (2 << 20) - 0x10
            }
        );
        let r = t.walk(0x4000_3ff8, true).unwrap();
        assert_eq!(r.dpa, vela_hw::dpa::VRAM | 0x5ff8);
    }

    #[test]
    fn faults_report_reason_level_and_access() {
        let t = tables();
        let f = t.walk(0x4000_2000, true).unwrap_err();
        assert_eq!(
            (f.reason, f.level, f.write, f.va),
            (FaultReason::WriteProtect, 0, true, 0x4000_2000)
        );
        let f = t.walk(0x4000_3000, false).unwrap_err();
        assert_eq!(f.reason, FaultReason::ReadProtect);
        let f = t.walk(0x4000_4000, false).unwrap_err();
        assert_eq!((f.reason, f.level), (FaultReason::NotPresent, 0));
        let f = t.walk(0x8000_0000, false).unwrap_err();
        assert_eq!((f.reason, f.level), (FaultReason::NotPresent, 2));
        let f = t.walk(0x4040_0000, false).unwrap_err();
        assert_eq!((f.reason, f.level), (FaultReason::NotPresent, 1));
        let f = t.walk(1 << 39, false).unwrap_err();
        assert_eq!(f.reason, FaultReason::AddressSize);
    }

    #[test]
    fn cached_walks_agree_with_full_walks() {
        let t = tables();
        let mut cache = WalkCache::default();
        let mut reads = 0;
        for va in [
            0x4000_2123,
            0x4000_3ff8,
            0x4000_2000,
            0x4020_0010,
            0x4000_4000,
            0x8000_0000,
        ] {
            for write in [false, true] {
                let cached = translate_cached(va, write, ROOT, &mut cache, |a| {
                    reads += 1;
                    Some(t.0.get(&a).copied().unwrap_or(0))
                });
                assert_eq!(cached, t.walk(va, write), "{va:#x} write={write}");
            }
        }
        // 12 walks of up to 3 reads each; the cache saves the upper levels.
        assert!(reads < 24, "{reads} reads");
    }

    #[test]
    fn malformed_entries_fault() {
        let mut t = tables();
        t.set(ROOT, 2, Pte::VALID.mask() | Pte::HUGE.mask());
        assert_eq!(
            t.walk(0x8000_0000, false).unwrap_err().reason,
            FaultReason::Reserved
        );
        t.set(ROOT, 3, Pte::VALID.mask() | (1 << 7));
        assert_eq!(
            t.walk(0xc000_0000, false).unwrap_err().reason,
            FaultReason::Reserved
        );
        t.set(L1, 2, RW | Pte::HUGE.mask() | 0x1000);
        assert_eq!(
            t.walk(0x4040_0000, false).unwrap_err().reason,
            FaultReason::Reserved
        );
        t.set(ROOT, 4, Pte::VALID.mask() | BROKEN);
        let f = t.walk(0x1_0000_0000, false).unwrap_err();
        assert_eq!((f.reason, f.level), (FaultReason::TableBusError, 1));
    }
}
