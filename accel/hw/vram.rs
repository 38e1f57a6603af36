// SPDX-License-Identifier: GPL-2.0

//! The VRAM allocator: a buddy allocator over the device's memory, in 4 KiB chunks.

use kernel::{
    gpu::buddy::{
        AllocatedBlocks, GpuBuddy, GpuBuddyAllocFlags, GpuBuddyAllocMode, GpuBuddyParams,
    },
    prelude::*,
    ptr::Alignment,
    sizes::{SZ_2M, SZ_4K},
};

/// The smallest unit of VRAM: the device MMU's small page.
pub(crate) const PAGE: u64 = SZ_4K as u64;

pub(crate) struct Vram {
    buddy: GpuBuddy,
}

/// VRAM blocks owned by one user (a buffer, a ring, a page table); freed on drop.
pub(crate) type VramBlocks = Pin<KBox<AllocatedBlocks>>;

impl Vram {
    pub(crate) fn new(size: u64) -> Result<Self> {
        Ok(Self {
            buddy: GpuBuddy::new(GpuBuddyParams {
                base_offset: 0,
                size,
                chunk_size: Alignment::new::<SZ_4K>(),
            })?,
        })
    }

    /// Allocates `size` bytes (a multiple of [`PAGE`]). `contiguous` asks for one run, which
    /// rings and page tables need. Running out of VRAM is `ENOMEM`, whatever the allocator
    /// calls it.
    pub(crate) fn alloc(&self, size: u64, contiguous: bool) -> Result<VramBlocks> {
        if size == 0 || size % PAGE != 0 || size > self.buddy.size() {
            return Err(EINVAL);
        }
        // Sizes made of whole 2 MiB pages get 2 MiB blocks, which are 2 MiB aligned, so the
        // device MMU can map them with huge pages.
        let min_block = if size % (2 << 20) == 0 {
            Alignment::new::<SZ_2M>()
        } else {
            Alignment::new::<SZ_4K>()
        };
        let flags = if contiguous {
            GpuBuddyAllocFlags::from(kernel::gpu::buddy::GpuBuddyAllocFlag::Contiguous)
        } else {
            GpuBuddyAllocFlags::default()
        };
        KBox::pin_init(
            self.buddy
                .alloc_blocks(GpuBuddyAllocMode::Simple, size, min_block, flags),
            GFP_KERNEL,
        )
        .map_err(|e| if e == ENOSPC { ENOMEM } else { e })
    }

    pub(crate) fn size(&self) -> u64 {
        self.buddy.size()
    }

    pub(crate) fn avail(&self) -> u64 {
        self.buddy.avail()
    }
}

/// The (VRAM offset, length) runs of an allocation, in the order the buffer uses them.
pub(crate) fn runs(blocks: &AllocatedBlocks) -> impl Iterator<Item = (u64, u64)> + '_ {
    blocks.iter().map(|b| (b.offset(), b.size()))
}

/// [`runs`] with its length known up front, for consumers that size a table first.
pub(crate) fn runs_exact(
    blocks: &AllocatedBlocks,
) -> impl ExactSizeIterator<Item = (u64, u64)> + '_ {
    Counted {
        left: runs(blocks).count(),
        it: runs(blocks),
    }
}

struct Counted<I> {
    left: usize,
    it: I,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.it.next()?;
        self.left = self.left.saturating_sub(1);
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}
