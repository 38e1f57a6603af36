// SPDX-License-Identifier: GPL-2.0

//! A first-fit allocator of GPU virtual address ranges, for placing bindings in a VM.

use std::collections::BTreeMap;

/// Bind granularity (VM_BIND wants va, offset and size 4 KiB aligned).
pub const PAGE_SIZE: u64 = 4096;
/// Width of a device VA (Documentation/hardware/mmu.rst).
pub const VA_BITS: u32 = 39;
/// End of the VA space.
/// End of a VM's user address space: the top 1 GiB of the 39-bit space is the kernel's
/// (QUERY_MEMORY reports it as `va_size`).
pub const VA_END: u64 = (1 << VA_BITS) - (1 << 30);
/// Where the runtime starts placing bindings: the first 2 MiB stay unmapped so that a NULL or
/// small-integer address in a command faults instead of hitting a buffer.
pub const VA_START: u64 = 2 << 20;

/// Free ranges of `[start, end)`, kept merged.
#[derive(Clone, Debug)]
pub struct VaAllocator {
    /// start -> length of each free range.
    free: BTreeMap<u64, u64>,
    start: u64,
    end: u64,
}

impl Default for VaAllocator {
    fn default() -> Self {
        Self::new(VA_START, VA_END)
    }
}

impl VaAllocator {
    /// Manages `[start, end)`, both rounded inward to pages.
    pub fn new(start: u64, end: u64) -> Self {
        let start = crate::page_round(start).unwrap_or(!(PAGE_SIZE - 1));
        let end = end & !(PAGE_SIZE - 1);
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end - start);
        }
        Self { free, start, end }
    }

    /// A free range of `size` bytes (rounded up to pages) aligned to `align` (a power of two,
    /// at least a page); `None` if none is left or the arguments are unusable.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let size = crate::page_round(size)?;
        let align = align.max(PAGE_SIZE);
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let (start, len, va) = self.free.iter().find_map(|(&s, &l)| {
            let va = s.checked_add(align - 1)? & !(align - 1);
            let end = va.checked_add(size)?;
            (end <= s + l).then_some((s, l, va))
        })?;
        self.free.remove(&start);
        if va > start {
            self.free.insert(start, va - start);
        }
        let tail = start + len - (va + size);
        if tail > 0 {
            self.free.insert(va + size, tail);
        }
        Some(va)
    }

    /// Returns `[va, va + size)` (size rounded up to pages). Ranges outside the managed space
    /// or overlapping free space are refused (returns false) rather than corrupting the map.
    pub fn free(&mut self, va: u64, size: u64) -> bool {
        let Some(size) = crate::page_round(size) else {
            return false;
        };
        let Some(end) = va.checked_add(size) else {
            return false;
        };
        if size == 0 || va < self.start || end > self.end || !va.is_multiple_of(PAGE_SIZE) {
            return false;
        }
        let prev = self.free.range(..=va).next_back().map(|(&s, &l)| (s, l));
        let next = self.free.range(va..).next().map(|(&s, &l)| (s, l));
        if prev.is_some_and(|(s, l)| s + l > va) || next.is_some_and(|(s, _)| s < end) {
            return false;
        }
        let mut new_start = va;
        let mut new_len = size;
        if let Some((s, l)) = prev.filter(|(s, l)| s + l == va) {
            self.free.remove(&s);
            new_start = s;
            new_len += l;
        }
        if let Some((s, l)) = next.filter(|(s, _)| *s == end) {
            self.free.remove(&s);
            new_len += l;
        }
        self.free.insert(new_start, new_len);
        true
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }

    /// Number of separate free ranges (fragmentation).
    pub fn free_ranges(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_page_aligned_and_disjoint() {
        let mut a = VaAllocator::new(0x10000, 0x100000);
        let x = a.alloc(1, 0).unwrap();
        let y = a.alloc(0x2000, 0).unwrap();
        assert_eq!(x, 0x10000);
        assert_eq!(y, 0x11000);
        assert_eq!(a.free_bytes(), 0x100000 - 0x10000 - 0x3000);
    }

    #[test]
    fn honours_alignment_and_keeps_the_gap() {
        let mut a = VaAllocator::new(0x1000, 0x1000000);
        let x = a.alloc(0x1000, 0x200000).unwrap();
        assert_eq!(x, 0x200000);
        // The gap below the aligned block is still usable.
        assert_eq!(a.alloc(0x1000, 0).unwrap(), 0x1000);
    }

    #[test]
    fn free_merges_neighbours() {
        let mut a = VaAllocator::new(0, 0x10000);
        let v: Vec<u64> = (0..16).map(|_| a.alloc(0x1000, 0).unwrap()).collect();
        assert!(a.alloc(0x1000, 0).is_none());
        for (i, va) in v.iter().enumerate() {
            if i % 2 == 0 {
                assert!(a.free(*va, 0x1000));
            }
        }
        assert_eq!(a.free_ranges(), 8);
        for (i, va) in v.iter().enumerate() {
            if i % 2 == 1 {
                assert!(a.free(*va, 0x1000));
            }
        }
        assert_eq!(a.free_ranges(), 1);
        assert_eq!(a.alloc(0x10000, 0), Some(0));
    }

    #[test]
    fn refuses_double_free_and_foreign_ranges() {
        let mut a = VaAllocator::new(0x1000, 0x10000);
        let x = a.alloc(0x2000, 0).unwrap();
        assert!(a.free(x, 0x2000));
        assert!(!a.free(x, 0x2000));
        assert!(!a.free(0, 0x1000));
        assert!(!a.free(0xf000, 0x2000));
        assert!(!a.free(u64::MAX - 0xfff, 0x1000));
        assert_eq!(a.free_bytes(), 0xf000);
    }

    #[test]
    fn rejects_unusable_requests() {
        let mut a = VaAllocator::default();
        assert_eq!(a.alloc(0, 0), None);
        assert_eq!(a.alloc(u64::MAX, 0), None);
        assert_eq!(a.alloc(0x1000, 0x3000), None);
        assert_eq!(a.alloc(VA_END, 0), None);
        let big = a.alloc(1 << 30, 1 << 30).unwrap();
        assert_eq!(big % (1 << 30), 0);
        assert!(big + (1 << 30) <= VA_END);
    }
}
