// SPDX-License-Identifier: GPL-2.0

//! A vGPU's reach into its guest's memory (`Documentation/vgpu.rst`, Guest memory).
//!
//! The partition reaches system memory only through its IOVA table, which the host owns. No
//! entry is valid to begin with: a guest's command that touches an IOVA stalls and the device
//! raises a page request; the frontend pins that guest page through the VFIO core (which
//! checks it against what the VMM mapped into the container or IOAS), maps it for the
//! function's DMA, writes the entry and lets the command run again. An IOVA the VMM did not map
//! is denied, and the command fails with `DMA_ERROR` in the guest alone.
//!
//! A page is unpinned when the VMM unmaps its IOVA (the VFIO core's `dma_unmap`) and when the
//! instance's last file is closed, in the order the device needs: entry cleared, cached
//! translations invalidated, then the page unmapped and unpinned.

use kernel::{
    dma::Coherent,
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    vfio,
    xarray::{self, XArray},
};

use crate::hw::{
    self,
    partition::{self, PageRequest},
    regs::PartitionId,
};

/// IOVA space of an instance: the table maps IOVAs below this many pages (512 MiB). Guest
/// memory above it is unreachable from the vGPU.
pub(crate) const IOVA_PAGES: usize = 1 << 17;

/// At most this many guest pages (256 MiB) are pinned for one instance at a time; a request
/// beyond is denied.
pub(crate) const MAX_PINNED: usize = 1 << 16;

/// The partition's IOVA table, in system memory the function reads by DMA. Shared by the
/// instance's device and its resources: it is freed only after both went, and the resources
/// go after the partition is disabled, so the function never reads a freed table.
pub(crate) struct IovaTable(Coherent<[u64]>);

impl IovaTable {
    /// An empty table of [`IOVA_PAGES`] entries (1 MiB), for the function `chip`.
    pub(crate) fn new(chip: &hw::Chip) -> Result<Arc<Self>> {
        let table = chip
            .with_bound_device(|dev| Coherent::<u64>::zeroed_slice(dev, IOVA_PAGES, GFP_KERNEL))?;
        Ok(Arc::new(Self(table), GFP_KERNEL)?)
    }

    /// The table's bus address, for `PART_IOVA_TABLE`.
    pub(crate) fn bus_address(&self) -> u64 {
        self.0.dma_handle()
    }

    fn set(&self, index: usize, entry: u64) -> Result {
        kernel::dma_write!(self.0, [try: index], entry);
        Ok(())
    }
}

struct State {
    pinned: usize,
    /// Counts unmaps: a pin made while one ran may be of a page it just took away.
    unmaps: u64,
}

/// How many pages an unmap takes out of the table before it invalidates and unpins them.
const BATCH: usize = 32;

/// The guest pages pinned for an instance.
///
/// Two locks, because the VFIO core calls `dma_unmap` under a lock of its own that its pin
/// path nests inside (type 1's `device_list_lock` is taken under its `iommu->lock`): a lock
/// that `dma_unmap` takes must not be held across a pin or an unpin.
/// - `pinning` is held by a pin from start to answer, and by the last close: a pin never
///   races a close, so no page is pinned once the device is closed. `dma_unmap` does not
///   take it.
/// - `state` (with the array) is held only briefly, to look at, add or take out pages;
///   never across a pin or an unpin.
#[pin_data]
pub(crate) struct GuestMemory {
    table: Arc<IovaTable>,
    /// Whether a file of the instance is open: pins are allowed, and a page request is still
    /// this instance's to answer (the partition goes to another tenant only after the last
    /// close).
    #[pin]
    pinning: Mutex<bool>,
    /// Pinned pages by IOVA page number, changed only with `state` locked.
    #[pin]
    pages: XArray<KBox<vfio::GuestPage>>,
    #[pin]
    state: Mutex<State>,
}

impl GuestMemory {
    pub(crate) fn new(table: Arc<IovaTable>) -> impl PinInit<Self> {
        pin_init!(Self {
            table,
            pinning <- new_mutex!(false),
            pages <- XArray::new(xarray::AllocKind::Alloc),
            state <- new_mutex!(State {
                pinned: 0,
                unmaps: 0,
            }),
        })
    }

    pub(crate) fn opened(&self) {
        *self.pinning.lock() = true;
    }

    /// The last file is being closed: every page goes back while the VFIO core still allows
    /// it, and later requests are left to the partition's reset.
    pub(crate) fn closing<T: vfio::Driver>(
        &self,
        vdev: &vfio::Device<T>,
        chip: &hw::Chip,
        p: PartitionId,
    ) {
        let mut open = self.pinning.lock();
        *open = false;
        self.unpin_range(vdev, chip, p, 0, IOVA_PAGES);
    }

    /// The VMM unmaps `[iova, iova + length)`: every page pinned in it is unpinned before this
    /// returns, as the VFIO core requires.
    pub(crate) fn unmap<T: vfio::Driver>(
        &self,
        vdev: &vfio::Device<T>,
        chip: &hw::Chip,
        p: PartitionId,
        iova: u64,
        length: u64,
    ) {
        let first = usize::try_from(iova >> 12).unwrap_or(usize::MAX);
        let end = iova.saturating_add(length).saturating_add(0xfff) >> 12;
        let end = usize::try_from(end).unwrap_or(usize::MAX).min(IOVA_PAGES);
        self.unpin_range(vdev, chip, p, first, end);
    }

    /// Takes the pages of `[first, end)` out, a batch at a time: entries cleared, then the
    /// device's cached copies invalidated, and only then the pages unpinned, so the device
    /// never reaches a page after it is unpinned.
    fn unpin_range<T: vfio::Driver>(
        &self,
        vdev: &vfio::Device<T>,
        chip: &hw::Chip,
        p: PartitionId,
        first: usize,
        end: usize,
    ) {
        let mut next = first;
        while next < end {
            // Boxes, as the table holds them: a batch of the pages themselves took 3 KiB of
            // stack, in a path (the VMM's unmap) that already runs deep.
            let mut batch: [Option<KBox<vfio::GuestPage>>; BATCH] = [const { None }; BATCH];
            let mut n = 0;
            {
                let mut st = self.state.lock();
                st.unmaps += 1;
                if st.pinned == 0 {
                    return;
                }
                while next < end && n < BATCH {
                    let page = self.pages.lock().remove(next);
                    if let Some(page) = page {
                        hw::best_effort("clearing an IOVA entry", self.table.set(next, 0));
                        batch[n] = Some(page);
                        n += 1;
                        st.pinned -= 1;
                    }
                    next += 1;
                }
            }
            if n == 0 {
                return;
            }
            // A device that is lost or whose partition is disabled reaches nothing any more.
            hw::best_effort("invalidating a vGPU's IOVAs", chip.invalidate_iova(p));
            for page in batch.into_iter().flatten() {
                vdev.unpin_page(KBox::into_inner(page));
            }
        }
    }

    /// Serves the partition's page request: pins the page and lets the command run again, or
    /// denies it.
    pub(crate) fn page_request<T: vfio::Driver>(
        &self,
        vdev: &vfio::Device<T>,
        chip: &hw::Chip,
        p: PartitionId,
        req: PageRequest,
    ) {
        let open = self.pinning.lock();
        if !*open {
            // Closed: the partition's reset dropped the request.
            return;
        }
        let retry = self.pin(vdev, chip, p, req).is_ok();
        // Answered with `pinning` held: the instance is open, so the partition is still its.
        hw::best_effort(
            "answering a vGPU's page request",
            chip.answer_page_request(p, retry),
        );
    }

    /// Makes the entry for `req` valid with the permission it needs. Called with `pinning`
    /// held.
    fn pin<T: vfio::Driver>(
        &self,
        vdev: &vfio::Device<T>,
        chip: &hw::Chip,
        p: PartitionId,
        req: PageRequest,
    ) -> Result {
        let index = usize::try_from(req.iova >> 12)?;
        if index >= IOVA_PAGES {
            return Err(EINVAL);
        }
        let held = self.pages.lock().get(index).map(|g| g.writable());
        match held {
            // Another queue's request for the same page, already served.
            Some(writable) if writable || !req.write => return Ok(()),
            // Pinned for reads, now written: pinned again for writes.
            Some(_) => self.unpin_range(vdev, chip, p, index, index + 1),
            None => {}
        }
        let unmaps = {
            let st = self.state.lock();
            if st.pinned >= MAX_PINNED {
                return Err(ENOSPC);
            }
            st.unmaps
        };
        // Allocated before the pin, so that no failure after it can lose the page.
        let slot = KBox::<vfio::GuestPage>::new_uninit(GFP_KERNEL)?;
        // Writable when the VMM mapped it so, whatever this access is: a later write to the
        // page then needs no second request. A read-only mapping serves reads. Pinned with no
        // lock but `pinning` held: it may wait for the VMM's mmap lock, under which faults on
        // the instance's BAR2 take the core's, and for the VFIO core's locks.
        let mut page = vdev.pin_page(req.iova, true).or_else(|e| {
            if req.write {
                Err(e)
            } else {
                vdev.pin_page(req.iova, false)
            }
        })?;
        let entry = chip
            .with_bound_device(|dev| page.map_dma(dev))
            .and_then(|bus| partition::iova_entry(bus, page.writable()));
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                vdev.unpin_page(page);
                return Err(e);
            }
        };
        let page = KBox::write(slot, page);
        let stored = {
            let mut st = self.state.lock();
            if st.unmaps != unmaps {
                // An unmap ran meanwhile, perhaps of this page: not entered. RETRY asks again,
                // and a page the VMM no longer maps is then denied.
                Err(page)
            } else {
                match self.pages.lock().store(index, page, GFP_KERNEL) {
                    Ok(_) => {
                        st.pinned += 1;
                        // A new entry was not valid before: the device cached nothing for it.
                        hw::best_effort("writing an IOVA entry", self.table.set(index, entry));
                        Ok(())
                    }
                    Err(e) => Err(e.value),
                }
            }
        };
        if let Err(page) = stored {
            vdev.unpin_page(KBox::into_inner(page));
        }
        Ok(())
    }
}
