// SPDX-License-Identifier: GPL-2.0

//! System memory the device reaches by DMA: the backing of buffers placed outside VRAM.
//!
//! The memory is one vmalloc allocation, shared (by reference count) between the CPU side
//! (userspace mappings, copies) and its DMA mapping for the device, which is device-managed:
//! it goes away at unbind even if a buffer outlives the device.

use kernel::{
    alloc::allocator::VmallocPageIter,
    dma::DataDirection,
    new_mutex,
    page::{AsPageIter, PAGE_SIZE},
    prelude::*,
    scatterlist::{Owned, SGTable},
    sync::{Arc, Mutex},
};

use crate::hw::Chip;

/// How much system memory one device's buffers may hold: beyond it, BO_CREATE says ENOMEM
/// rather than let userspace push the machine into the OOM killer.
pub(crate) const BUDGET: u64 = 512 << 20;

/// Zeroed, page-aligned system memory.
pub(crate) struct SysMem {
    buf: VVec<u8>,
}

impl SysMem {
    /// Allocates `size` bytes (a multiple of the page size), zeroed: nothing a previous user
    /// left in the pages may reach userspace or the device.
    pub(crate) fn new(size: usize) -> Result<Arc<Self>> {
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        // No allocation-failure splat: a large request that cannot be met is an ENOMEM for the
        // caller, not a kernel problem. The allocator zeroes the pages (`__GFP_ZERO`, as
        // vzalloc): filling a vector byte by byte took 90 ms for 16 MiB in the TCG guest, 94% of
        // a buffer's move to system memory, against 10 ms for the allocation itself.
        let buf = VVec::zeroed(size, GFP_KERNEL | __GFP_NOWARN)?;
        Ok(Arc::new(Self { buf }, GFP_KERNEL)?)
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The pages, in order.
    pub(crate) fn pages(&self) -> VmallocPageIter<'_> {
        self.buf.pages()
    }

    /// Copies bytes out, from `off` on.
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) -> Result {
        let end = off.checked_add(out.len()).ok_or(EINVAL)?;
        out.copy_from_slice(self.buf.get(off..end).ok_or(EINVAL)?);
        Ok(())
    }

    /// Copies `data` in at `off`. Only for memory nothing else uses yet (a buffer's new home
    /// during a move, before anything maps it).
    pub(crate) fn write(&self, off: usize, data: &[u8]) -> Result {
        let end = off.checked_add(data.len()).ok_or(EINVAL)?;
        if end > self.buf.len() {
            return Err(EINVAL);
        }
        // SAFETY: `[off, end)` is inside the allocation (checked); the caller's memory is not
        // mapped or read by anyone else yet, so this write races with nothing.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.base().as_ptr().add(off), data.len())
        };
        Ok(())
    }

    /// Where the memory is in the kernel's address space (for `vmap` of an exported buffer).
    pub(crate) fn base(&self) -> core::ptr::NonNull<u8> {
        // A `VVec` of non-zero length has a real allocation.
        core::ptr::NonNull::new(self.buf.as_ptr().cast_mut())
            .unwrap_or(core::ptr::NonNull::dangling())
    }
}

/// What a DMA mapping owns: a reference to the memory, so the pages outlive the mapping.
pub(crate) struct SysPages(Arc<SysMem>);

impl AsPageIter for SysPages {
    type Iter<'a> = VmallocPageIter<'a>;

    fn page_iter(&mut self) -> VmallocPageIter<'_> {
        self.0.pages()
    }
}

/// What one device's buffers hold of system memory, against [`BUDGET`]. Shared by the
/// buffers (each gives its part back when it goes, which may be after unbind).
#[pin_data]
pub(crate) struct Budget {
    #[pin]
    used: Mutex<u64>,
}

impl Budget {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(pin_init!(Self { used <- new_mutex!(0) }), GFP_KERNEL)
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> u64 {
        *self.used.lock()
    }

    /// Counts `bytes` more; `ENOMEM` beyond the budget.
    fn charge(&self, bytes: u64) -> Result {
        let mut used = self.used.lock();
        *used = used
            .checked_add(bytes)
            .filter(|&u| u <= BUDGET)
            .ok_or(ENOMEM)?;
        Ok(())
    }

    fn uncharge(&self, bytes: u64) {
        let mut used = self.used.lock();
        *used = used.saturating_sub(bytes);
    }
}

/// System memory mapped for the device, counted against the device's [`Budget`].
pub(crate) struct SysBacking {
    pub(crate) mem: Arc<SysMem>,
    sgt: Pin<KBox<SGTable<Owned<SysPages>>>>,
    budget: Arc<Budget>,
}

impl SysBacking {
    pub(crate) fn new(chip: &Chip, budget: &Arc<Budget>, size: usize) -> Result<Self> {
        let bytes = u64::try_from(size)?;
        budget.charge(bytes)?;
        let made = SysMem::new(size).and_then(|mem| {
            let pages = SysPages(mem.clone());
            let sgt = chip.with_bound_device(|dev| {
                KBox::pin_init(
                    SGTable::new(dev, pages, DataDirection::Bidirectional, GFP_KERNEL),
                    GFP_KERNEL,
                )
            })?;
            Ok((mem, sgt))
        });
        match made {
            Ok((mem, sgt)) => Ok(Self {
                mem,
                sgt,
                budget: budget.clone(),
            }),
            Err(e) => {
                budget.uncharge(bytes);
                Err(e)
            }
        }
    }

    /// The device's (bus address, length) runs, in buffer order.
    pub(crate) fn runs(&self) -> Result<KVec<(u64, u64)>> {
        let mut runs = KVec::with_capacity(self.sgt.iter().count(), GFP_KERNEL)?;
        for e in self.sgt.iter() {
            runs.push((e.dma_address(), e.dma_len()), GFP_KERNEL)?;
        }
        Ok(runs)
    }
}

impl Drop for SysBacking {
    fn drop(&mut self) {
        self.budget.uncharge(self.mem.len() as u64);
    }
}
