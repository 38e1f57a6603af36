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
    page::{AsPageIter, BorrowedPage, PAGE_SIZE},
    prelude::*,
    scatterlist::{Owned, SGTable},
    sync::{
        atomic::{Acquire, Atomic, Release},
        Arc, Mutex,
    },
    time::{msecs_to_jiffies, Delta, Instant, Monotonic},
    workqueue::{self, DelayedWork, WorkItem},
};

use crate::hw::Chip;

/// How much system memory one device's buffers may hold: beyond it, BO_CREATE says ENOMEM
/// rather than let userspace push the machine into the OOM killer.
pub(crate) const BUDGET: u64 = 512 << 20;

/// Page-aligned system memory.
///
/// Every byte is written before anything reads it: the allocator zeroes a new buffer's memory,
/// and a move's destination ([`Fill::Overwritten`]) is overwritten in full by the move before
/// it becomes a buffer's memory. So the CPU side is reached through the base pointer and
/// `size`, never through the vector's length, which is 0 for a move's destination.
pub(crate) struct SysMem {
    buf: VVec<u8>,
    size: usize,
    /// A page of it was inserted into a process's mapping (set before the insert, never
    /// cleared).
    user_mapped: Atomic<bool>,
}

/// What a new [`SysMem`] holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Zeroes: nothing a previous user left in the pages may reach userspace or the device.
    Zeroed,
    /// Whatever the pages held: only for memory that is overwritten in full before anyone
    /// else can reach it, which is what a move does with its destination
    /// (`placement::migrate`: nothing maps, binds or exports it until the copy is done, and
    /// a copy that fails drops it unread). Zeroing 16 MiB took 30-75 ms in the TCG guest, 90%
    /// of a move to system memory. Such memory may also come from [`Retired`]'s pool, holding
    /// another buffer's old bytes, under the same rule.
    Overwritten,
}

impl SysMem {
    /// Allocates `size` bytes (a multiple of the page size).
    pub(crate) fn new(size: usize, fill: Fill) -> Result<Arc<Self>> {
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        // No allocation-failure splat: a large request that cannot be met is an ENOMEM for the
        // caller, not a kernel problem. vmalloc takes the largest free blocks it can get
        // (without reclaim) before single pages, so the memory is mostly physically
        // contiguous: a 16 MiB buffer came in 3 DMA runs in the bench VM. The allocator
        // zeroes the pages (`__GFP_ZERO`, as vzalloc): filling a vector byte by byte took
        // 90 ms for 16 MiB in the TCG guest.
        let buf = match fill {
            Fill::Zeroed => VVec::zeroed(size, GFP_KERNEL | __GFP_NOWARN)?,
            Fill::Overwritten => VVec::with_capacity(size, GFP_KERNEL | __GFP_NOWARN)?,
        };
        Ok(Arc::new(
            Self {
                buf,
                size,
                user_mapped: Atomic::new(false),
            },
            GFP_KERNEL,
        )?)
    }

    pub(crate) fn len(&self) -> usize {
        self.size
    }

    /// The pages, in order.
    pub(crate) fn pages(&self) -> VmallocPageIter<'_> {
        self.buf.pages()
    }

    /// The page at `index`, for a process's mapping: from now on the memory counts as
    /// mapped by userspace ([`SysMem::reusable`]).
    pub(crate) fn page_for_user(&self, index: usize) -> Option<BorrowedPage<'_>> {
        self.user_mapped.store(true, Release);
        self.pages().nth(index)
    }

    /// Whether what is written into the memory next can be seen by nobody but its next
    /// owner. Asked only once nothing can take a new reference to its pages: no CPU mapping
    /// maps them (zapped) and no importer holds a mapping of them.
    ///
    /// A page that a process mapped may have been pinned through that mapping (an RDMA
    /// memory region registered on a buffer's CPU mapping, `O_DIRECT`, `vmsplice()`), and
    /// the pin outlives the mapping: memory that was ever mapped is reusable only if its
    /// allocation holds the only reference to each page. Memory never mapped into a process
    /// was reachable only by the driver and by importers, which the dma-buf contract holds
    /// to nothing once they unmapped (TTM's page pool reuses pages on the same terms), so it
    /// needs no look at its 4096 pages per 16 MiB, which took 1.8 ms in the TCG guest.
    fn reusable(&self) -> bool {
        !self.user_mapped() || self.pages().all(|p| p.ref_count() == 1)
    }

    /// Whether a page of it was ever inserted into a process's mapping.
    fn user_mapped(&self) -> bool {
        self.user_mapped.load(Acquire)
    }

    /// Copies bytes out, from `off` on.
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) -> Result {
        let end = off.checked_add(out.len()).ok_or(EINVAL)?;
        if end > self.size {
            return Err(EINVAL);
        }
        // SAFETY: `[off, end)` is inside the allocation (checked), whose every byte was
        // written before the memory became a buffer's (the type's invariant). The device may
        // write it concurrently only through a job the caller waited for, as with any buffer
        // the CPU reads; the copy goes through raw pointers, so no reference to it exists.
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.base().as_ptr().add(off),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` in at `off`. Only for memory nothing else uses yet (a buffer's new home
    /// during a move, before anything maps it).
    pub(crate) fn write(&self, off: usize, data: &[u8]) -> Result {
        let end = off.checked_add(data.len()).ok_or(EINVAL)?;
        if end > self.size {
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

/// System memory mapped for the device, counted against the device's [`Budget`] until it
/// goes (or is handed to [`Retired`]).
pub(crate) struct SysBacking {
    pub(crate) mem: Arc<SysMem>,
    sgt: Pin<KBox<SGTable<Owned<SysPages>>>>,
    budget: Option<Arc<Budget>>,
}

impl SysBacking {
    /// A move's destination ([`Fill::Overwritten`]): memory an earlier move left behind, if
    /// [`Retired`] kept some of this size, else new memory.
    pub(crate) fn for_move(
        chip: &Chip,
        budget: &Arc<Budget>,
        retired: &Retired,
        size: usize,
    ) -> Result<Self> {
        let Some(mut sys) = retired.take(size) else {
            return Self::new(chip, budget, size, Fill::Overwritten);
        };
        // Over the budget: dropped (freed) here, as a new allocation would have been refused.
        budget.charge(u64::try_from(size)?)?;
        sys.budget = Some(budget.clone());
        Ok(sys)
    }

    pub(crate) fn new(chip: &Chip, budget: &Arc<Budget>, size: usize, fill: Fill) -> Result<Self> {
        let bytes = u64::try_from(size)?;
        budget.charge(bytes)?;
        let made = SysMem::new(size, fill).and_then(|mem| {
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
                budget: Some(budget.clone()),
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
        self.uncharge();
    }
}

impl SysBacking {
    /// Gives the memory's part of the budget back now; dropping it later counts nothing.
    fn uncharge(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.uncharge(self.mem.len() as u64);
        }
    }
}

/// The most memory [`Retired`] keeps for reuse, per device.
const POOL_MAX: usize = 64 << 20;
/// The most allocations it keeps (each a 4 KiB-or-larger buffer's memory).
const POOL_ENTRIES: usize = 32;
/// How long kept memory waits for a move before it is freed.
const POOL_AGE_MS: u32 = 1000;

/// System memory that a move into VRAM left behind, freed or kept by a work item instead of
/// in the move: freeing 16 MiB (the vunmap, 4096 pages back to the allocator, the DMA unmap)
/// took 1.2-2.2 ms of a 4-5 ms move back in the TCG guest, and the move runs in the SUBMIT
/// that needs the buffer. The memory leaves the budget when it is retired, so the budget only
/// ever counts buffers' memory. Nothing reaches retired memory (the buffer's binds, mappings
/// and importers already point at VRAM), and unbind frees what is left.
///
/// Memory nobody else can see into ([`SysMem::reusable`]) is kept for the next move out of
/// VRAM of the same size ([`SysBacking::for_move`]), already allocated and mapped for the
/// device: allocating and DMA-mapping 16 MiB took 5-7 ms of a 9-14 ms move out in the TCG
/// guest, more than the copy. Memory never mapped into a process is kept as it is retired;
/// the work looks at the pages of the rest. At most [`POOL_MAX`] bytes in [`POOL_ENTRIES`] allocations,
/// each freed after [`POOL_AGE_MS`] unused: the kernel crate has no shrinker, so the pool
/// bounds itself.
#[pin_data]
pub(crate) struct Retired {
    #[pin]
    state: Mutex<RetiredState>,
    /// Frees or keeps what was retired.
    #[pin]
    work: DelayedWork<Retired, 0>,
    /// Frees what was kept too long.
    #[pin]
    age: DelayedWork<Retired, 1>,
}

struct RetiredState {
    /// False once unbind began: retired memory is freed at once.
    on: bool,
    list: KVec<SysBacking>,
    /// Kept for reuse, oldest first, with when each was kept.
    pool: KVec<(SysBacking, Instant<Monotonic>)>,
    /// The bytes in `pool`.
    pooled: usize,
}

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self, 0> for Retired { self.work }
    impl HasDelayedWork<Self, 1> for Retired { self.age }
}

impl WorkItem<0> for Retired {
    type Pointer = Arc<Retired>;

    fn run(this: Arc<Retired>) {
        let list = core::mem::take(&mut this.state.lock().list);
        // Freed outside the lock, so a move that retires more or takes from the pool does not
        // wait for it.
        let mut free = KVec::new();
        for sys in list {
            // Here, not in the move: the look at each page (4096 of them for 16 MiB) that
            // memory once mapped into a process needs.
            let sys = if sys.mem.reusable() {
                match this.keep(&mut this.state.lock(), sys) {
                    Some(sys) => sys,
                    None => continue,
                }
            } else {
                sys
            };
            // If the list cannot grow, `push` drops `sys`: freed here.
            let _ = free.push(sys, GFP_KERNEL);
        }
        drop(free);
    }
}

impl WorkItem<1> for Retired {
    type Pointer = Arc<Retired>;

    fn run(this: Arc<Retired>) {
        let age = Delta::from_millis(i64::from(POOL_AGE_MS));
        let mut free = KVec::new();
        {
            let mut st = this.state.lock();
            // Oldest first: the pool only grows at its end.
            while st.pool.first().is_some_and(|(_, t)| t.elapsed() >= age) {
                let Ok((sys, _)) = st.pool.remove(0) else {
                    break;
                };
                st.pooled = st.pooled.saturating_sub(sys.mem.len());
                let _ = free.push(sys, GFP_KERNEL);
            }
            if let Some((_, t)) = st.pool.first() {
                let left = age - t.elapsed();
                let ms = u32::try_from(left.as_millis()).unwrap_or(POOL_AGE_MS);
                let _ = workqueue::system_long().enqueue_delayed::<Arc<Retired>, 1>(
                    this.clone(),
                    msecs_to_jiffies(ms.clamp(1, POOL_AGE_MS)),
                );
            }
        }
        drop(free);
    }
}

impl Retired {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                state <- new_mutex!(RetiredState {
                    on: true,
                    list: KVec::new(),
                    pool: KVec::new(),
                    pooled: 0,
                }),
                work <- kernel::new_delayed_work!("vela-sysmem-retired"),
                age <- kernel::new_delayed_work!("vela-sysmem-pool-age"),
            }),
            GFP_KERNEL,
        )
    }

    /// Frees `sys` soon, or keeps it for a move, on `system_long_wq` (`system_wq` is
    /// deprecated in 7.2).
    pub(crate) fn put(self: &Arc<Self>, mut sys: SysBacking) {
        sys.uncharge();
        let mut st = self.state.lock();
        if !st.on {
            drop(st);
            drop(sys);
            return;
        }
        // Memory never mapped into a process needs no look at its pages: kept at once if the
        // pool has room, which wakes no work on the move's path (the wake-up and the work took
        // 0.2-1 ms of a move back in the TCG guest).
        let sys = if sys.mem.user_mapped() {
            Some(sys)
        } else {
            self.keep(&mut st, sys)
        };
        let Some(sys) = sys else {
            return;
        };
        // If the list cannot grow, `push` drops `sys`: freed here, as before.
        if st.list.push(sys, GFP_KERNEL).is_ok() {
            // Queued under the lock that `stop` clears `on` under, so nothing is queued after
            // `stop` cancelled the work. `Err` means it is pending already, which is as good.
            let _ = workqueue::system_long().enqueue_delayed::<Arc<Retired>, 0>(self.clone(), 0);
        }
    }

    /// Keeps `sys` in the pool if there is room, and makes sure the pool ages; gives it back
    /// otherwise. `st` is the state, locked. The caller knows `sys` to be reusable.
    fn keep(self: &Arc<Self>, st: &mut RetiredState, sys: SysBacking) -> Option<SysBacking> {
        let len = sys.mem.len();
        if !st.on
            || st.pool.len() >= POOL_ENTRIES
            || st.pooled + len > POOL_MAX
            || st.pool.reserve(1, GFP_KERNEL).is_err()
        {
            return Some(sys);
        }
        // Cannot fail: room was reserved.
        let _ = st.pool.push((sys, Instant::now()), GFP_KERNEL);
        st.pooled += len;
        // A timer, not a wake-up. `Err` means it is pending already, which is as good.
        let _ = workqueue::system_long()
            .enqueue_delayed::<Arc<Retired>, 1>(self.clone(), msecs_to_jiffies(POOL_AGE_MS));
        None
    }

    /// Kept memory of exactly `size` bytes, the most recently kept (the oldest age out); or,
    /// if none is, memory of that size retired since the work last ran, if nobody else holds
    /// a page of it: a move out that follows a move back before the work ran would otherwise
    /// allocate while the memory it could use waits to be freed.
    fn take(&self, size: usize) -> Option<SysBacking> {
        let mut st = self.state.lock();
        if let Some(i) = st.pool.iter().rposition(|(s, _)| s.mem.len() == size) {
            let (sys, _) = st.pool.remove(i).ok()?;
            st.pooled = st.pooled.saturating_sub(size);
            return Some(sys);
        }
        let i = st.list.iter().rposition(|s| s.mem.len() == size)?;
        // The look the work would have taken, under the same conditions: the move that
        // retired it zapped every CPU mapping and no importer holds its pages.
        if !st.list.get(i)?.mem.reusable() {
            return None;
        }
        st.list.remove(i).ok()
    }

    /// Unbind: frees what is retired and kept, and stops the work for good (a pending work
    /// item runs the module's code).
    pub(crate) fn stop(self: &Arc<Self>) {
        let (list, pool) = {
            let mut st = self.state.lock();
            st.on = false;
            st.pooled = 0;
            (core::mem::take(&mut st.list), core::mem::take(&mut st.pool))
        };
        drop(list);
        drop(pool);
        workqueue::cancel_delayed_work_sync::<Retired, 0>(self);
        // The first work may have kept memory and queued the second before it was cancelled.
        workqueue::cancel_delayed_work_sync::<Retired, 1>(self);
        let pool = core::mem::take(&mut self.state.lock().pool);
        drop(pool);
    }
}
