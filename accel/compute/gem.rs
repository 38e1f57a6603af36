// SPDX-License-Identifier: GPL-2.0

//! Buffer objects. A buffer's own memory is VRAM or system memory, and may move between them
//! (to serve an importer that cannot reach VRAM); userspace mappings fault in whatever backs
//! the buffer at the time. Buffers are shared as dma-bufs: exported peer-to-peer from BAR2 or
//! from system memory, and imported from other exporters (`Documentation/driver.rst`, Sharing
//! buffers).

use kernel::{
    dma_buf::{Attachment, DmaBuf, DynamicAttachment, Importer, KernelMap, Mapping, P2pRoute},
    dma_resv::{DmaResv, ResvCell, ResvLocked, Usage},
    drm::{
        gem,
        gem::{BaseObject, VmFault},
        DeviceContext,
    },
    mm::virt::VmaNew,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
    time::msecs_to_jiffies,
};

use super::{
    driver::{VelaDevice, VelaDriver},
    sysmem::SysBacking,
    vm,
};
use crate::{
    hw::{
        kqueue::Span,
        vram::{self, VramBlocks},
        BusCache, Chip,
    },
    uapi,
};

/// The largest system-memory buffer: 4 GiB.
pub(crate) const SYSTEM_MAX: u64 = 4 << 30;

/// How long a move waits for the jobs that use a buffer, and an importer's invalidation for
/// its device's jobs, before giving up (a move then fails with `EBUSY`; an invalidation
/// removes the page table entries anyway, and those jobs fault).
const IDLE_WAIT_MS: u32 = 2000;

/// Where a buffer's own bytes are.
pub(crate) enum Store {
    Vram(VramBlocks),
    System(SysBacking),
}

impl Store {
    /// The (address, length) runs in buffer order, and whether the addresses are VRAM
    /// offsets (else bus addresses).
    pub(crate) fn runs(&self) -> Result<(KVec<(u64, u64)>, bool)> {
        match self {
            Store::Vram(blocks) => {
                // Sized up front: growing a vector reallocates, which slab debugging makes slow.
                let mut runs = KVec::with_capacity(vram::runs(blocks).count(), GFP_KERNEL)?;
                for r in vram::runs(blocks) {
                    runs.push(r, GFP_KERNEL)?;
                }
                Ok((runs, true))
            }
            Store::System(sys) => Ok((sys.runs()?, false)),
        }
    }
}

/// A buffer's own memory and what depends on where it is.
pub(crate) struct LocalState {
    pub(crate) store: Store,
    /// Mappings of the system pages handed to importers: while there are any, the buffer
    /// stays in system memory.
    sys_maps: u32,
    /// Pins by importers that cannot follow a move.
    pins: u32,
    /// In system memory because it moved out of VRAM: the next job brings it back.
    moved: bool,
    /// The table for peers behind the switch, while in VRAM.
    bus: Option<BusCache>,
}

/// Buffers that may be evicted, by id (ids grow, so the first is the oldest), as object
/// addresses: an entry leaves (in [`Local`]'s drop, under the list's lock) before its object is
/// freed. A tree, so that adding and removing stay O(log n) with 100k live buffers.
pub(crate) struct Evictable {
    next: u64,
    tree: kernel::rbtree::RBTree<u64, usize>,
}

impl Evictable {
    pub(crate) fn new() -> Self {
        Self {
            next: 0,
            tree: kernel::rbtree::RBTree::new(),
        }
    }
}

/// A buffer's own memory. Guarded by the buffer's reservation lock.
pub(crate) struct Local {
    state: ResvCell<LocalState>,
    /// The dma-buf the buffer is exported as, which a move invalidates.
    export: gem::ExportLink,
    /// The eviction list (the device's), which the buffer leaves when it goes.
    evictable: Arc<Mutex<Evictable>>,
    /// The buffer's key in that list.
    evict_id: u64,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.evictable.lock().tree.remove(&self.evict_id);
    }
}

impl Local {
    /// Runs `f` on the state; `locked` must be the lock of `resv`, the buffer's reservation
    /// object.
    pub(crate) fn with<R>(
        &self,
        resv: &DmaResv,
        locked: &ResvLocked<'_>,
        f: impl FnOnce(&mut LocalState) -> R,
    ) -> Result<R> {
        // The cell binds itself to the first lock it sees: it must be the buffer's.
        if !core::ptr::eq(locked.resv(), resv) {
            return Err(EINVAL);
        }
        self.state.with(locked, f)
    }
}

/// What holds a buffer's bytes.
pub(crate) enum Backing {
    /// The buffer's own memory.
    Local(Local),
    /// Another exporter's dma-buf, reached through a mapping made for this device.
    Import(Pin<KBox<DynamicAttachment<ImportState>>>),
    /// Nothing: the object is a VM's reservation object (gpuvm's `r_obj`), never seen by
    /// userspace.
    Resv,
}

/// Driver data of a GEM object.
#[pin_data]
pub(crate) struct VelaObject {
    /// DRM_VELA_BO_* creation flags (0 for imports).
    pub(crate) flags: u32,
    pub(crate) backing: Backing,
}

/// A checked BO_CREATE request, or an import.
pub(crate) struct BoArgs {
    pub(crate) flags: u32,
    pub(crate) import: Option<Pin<KBox<DynamicAttachment<ImportState>>>>,
    /// A VM's reservation object ([`Backing::Resv`]).
    pub(crate) resv_only: bool,
}

/// The exports of the driver: dma-bufs whose `ops` are these are this driver's own.
static VELA_DMABUF_OPS: gem::DmabufOps<VelaObject> = gem::DmabufOps::new();

/// An imported buffer's state: the link to the GEM object it belongs to, so that an
/// invalidation can find the object's binds (its gpuvm mappings) and remove their page table
/// entries.
pub(crate) struct ImportState {
    obj: gem::ImportLink<VelaObject>,
}

impl Importer for ImportState {
    fn invalidate_mappings(attach: &DynamicAttachment<Self>, locked: &ResvLocked<'_>) {
        // Jobs of this device that use the buffer finish first where they can: their fences
        // are in the shared reservation object.
        let _ = locked
            .resv()
            .wait(Usage::Bookkeep, false, msecs_to_jiffies(IDLE_WAIT_MS));
        attach
            .data()
            .obj
            .with_object(locked, |obj| vm::unmap_everywhere(obj, locked));
        attach.unmap(locked);
    }
}

/// A move that could not wait out the buffer's jobs, as a pin or vmap reports it.
fn not_busy(e: Error) -> Error {
    if e == EBUSY {
        EAGAIN
    } else {
        e
    }
}

/// Whether `attach`'s device reaches BAR2 peer-to-peer and can be revoked.
fn p2p_ok(chip: &Chip, attach: &Attachment) -> bool {
    attach.peer2peer()
        && attach.revocable()
        && matches!(
            chip.p2p_route(attach),
            Ok(P2pRoute::Switch | P2pRoute::HostBridge)
        )
}

impl gem::DriverObject for VelaObject {
    type Driver = VelaDriver;
    type Args = BoArgs;

    fn new<Ctx: DeviceContext>(
        dev: &VelaDevice<Ctx>,
        size: usize,
        args: Self::Args,
    ) -> impl PinInit<Self, Error> {
        let backing = match args.import {
            Some(attach) => Ok(Backing::Import(attach)),
            None if args.resv_only => Ok(Backing::Resv),
            None => {
                let store = if args.flags & uapi::DRM_VELA_BO_VRAM == 0 {
                    SysBacking::new(&dev.chip, &dev.sys_budget, size).map(Store::System)
                } else {
                    u64::try_from(size)
                        .map_err(|_| EINVAL)
                        .and_then(|size| dev.chip.vram().alloc(size, false))
                        .and_then(|blocks| {
                            // VRAM comes back from the allocator as its last owner left it
                            // (another process's buffer, a freed ring or page table): cleared
                            // before anyone can map, bind or export it, by the copy engine if
                            // it can take it, else by the CPU.
                            let chip = &dev.chip;
                            let mut spans = KVec::new();
                            for (off, len) in vram::runs(&blocks) {
                                spans.push(Span::vram(off, len), GFP_KERNEL)?;
                            }
                            // Small buffers are cleared faster by the CPU than a device round
                            // trip (borrowing a queue, a FILL, the fence) takes.
                            if size <= CPU_CLEAR_MAX || chip.kernel_queue().clear(chip, &spans).is_err() {
                                for (off, len) in vram::runs(&blocks) {
                                    chip.vram_fill(off, len, 0)?;
                                }
                            }
                            Ok(Store::Vram(blocks))
                        })
                };
                let evict_id = {
                    let mut e = dev.evictable.lock();
                    e.next += 1;
                    e.next
                };
                store.map(|store| {
                    Backing::Local(Local {
                        export: gem::ExportLink::new(),
                        state: ResvCell::new(LocalState {
                            store,
                            sys_maps: 0,
                            pins: 0,
                            moved: false,
                            bus: None,
                        }),
                        evictable: dev.evictable.clone(),
                        evict_id,
                    })
                })
            }
        };
        try_pin_init!(VelaObject {
            flags: args.flags,
            backing: backing?,
        })
    }

    const HAS_MMAP: bool = true;
    const HAS_FAULT: bool = true;

    /// Mappings fill in at fault time, from wherever the buffer is then. They are
    /// write-combined: VRAM through BAR2 wants it, and for system pages it keeps the CPU
    /// coherent with the device without cache maintenance when the buffer moves.
    fn mmap(obj: &gem::Object<Self>, vma: &VmaNew, _offset: usize) -> Result {
        if obj.flags & uapi::DRM_VELA_BO_CPU_VISIBLE == 0 {
            return Err(EINVAL);
        }
        let Backing::Local(_) = &obj.backing else {
            return Err(EINVAL);
        };
        vma.set_page_prot_wc();
        Ok(())
    }

    fn fault(obj: &gem::Object<Self>, vmf: &VmFault) -> Result {
        let Backing::Local(local) = &obj.backing else {
            return Err(EFAULT);
        };
        let chip = &obj.dev().chip;
        // A lost device's mappings are all revoked (`Chip::mark_lost`), system memory too:
        // every access faults and gets SIGBUS. VRAM inserts check again under `bound`.
        if chip.is_lost() {
            return Err(ENODEV);
        }
        let resv = obj.resv();
        let guard = resv.lock()?;
        local.with(resv, &guard, |st| -> Result {
            // The faulting page first; then, best effort, the rest of the mapping up to 2 MiB
            // on, so a linear walk takes one fault per 2 MiB rather than one per page.
            let (_, end) = vmf.vma_range();
            let first = vmf.address() & !(PAGE_SIZE - 1);
            let last = end.min(first + (2 << 20));
            let size = obj.size();
            let mut addr = first;
            while addr < last {
                let off = vmf.object_offset(addr);
                if off >= size {
                    break;
                }
                let r = insert(chip, &st.store, vmf, addr, off);
                if addr == first {
                    r?;
                }
                addr += PAGE_SIZE;
            }
            Ok(())
        })?
    }

    const DMABUF_OPS: Option<&'static gem::DmabufOps<Self>> = Some(&VELA_DMABUF_OPS);

    /// Importers that reach BAR2 peer-to-peer (and can be revoked) get VRAM; others get system
    /// memory, the buffer moving there when they map it, unless it is `VRAM_ONLY`: those
    /// importers are refused here with `EOPNOTSUPP`.
    fn dmabuf_attach(obj: &gem::Object<Self>, attach: &Attachment) -> Result {
        let Backing::Local(_) = &obj.backing else {
            return Err(EOPNOTSUPP);
        };
        let chip = &obj.dev().chip;
        if !chip.is_bound() || chip.is_lost() {
            return Err(ENODEV);
        }
        if obj.flags & uapi::DRM_VELA_BO_VRAM_ONLY != 0 && !p2p_ok(chip, attach) {
            return Err(EOPNOTSUPP);
        }
        Ok(())
    }

    /// Pinned where the importer's mappings will find it: in VRAM only for a peer that
    /// reaches it; for any other importer the buffer moves to system memory first. The
    /// dma-buf core takes `EBUSY` from a pin as an exporter bug, so a buffer still busy after
    /// the move's bounded wait answers `EAGAIN`.
    fn dmabuf_pin(obj: &gem::Object<Self>, attach: &Attachment, locked: &ResvLocked<'_>) -> Result {
        let Backing::Local(local) = &obj.backing else {
            return Err(EOPNOTSUPP);
        };
        let in_vram = local.with(obj.resv(), locked, |st| matches!(st.store, Store::Vram(_)))?;
        if in_vram && !p2p_ok(&obj.dev().chip, attach) {
            migrate(obj, locked, false).map_err(not_busy)?;
        }
        local.with(obj.resv(), locked, |st| st.pins += 1)
    }

    fn dmabuf_unpin(obj: &gem::Object<Self>, _attach: &Attachment, locked: &ResvLocked<'_>) {
        if let Backing::Local(local) = &obj.backing {
            let _ = local.with(obj.resv(), locked, |st| st.pins = st.pins.saturating_sub(1));
        }
    }

    fn dmabuf_map(
        obj: &gem::Object<Self>,
        attach: &Attachment,
        locked: &ResvLocked<'_>,
        dir: kernel::dma::DataDirection,
    ) -> Result<Mapping> {
        let Backing::Local(local) = &obj.backing else {
            return Err(EOPNOTSUPP);
        };
        let chip = &obj.dev().chip;
        let resv = obj.resv();
        // A device that is gone serves no one, not even from system memory: unbind revokes
        // every importer, whatever it had mapped. A reset does the same while it runs.
        if !chip.serves_peers() {
            return Err(ENODEV);
        }
        // In VRAM: map the BAR2 ranges that hold it, for a peer that reaches them.
        let mapped = local.with(resv, locked, |st| -> Result<Option<Option<Mapping>>> {
            let Store::Vram(blocks) = &st.store else {
                return Ok(None);
            };
            if let Some(m) = st.bus.as_ref().and_then(|b| b.lookup(attach, locked)) {
                return Ok(Some(Some(m?)));
            }
            Ok(Some(chip.map_vram_for_peer(
                attach,
                locked,
                blocks,
                &mut st.bus,
            )?))
        })??;
        match mapped {
            Some(Some(m)) => return Ok(m),
            // The importer cannot reach VRAM: the buffer moves to system memory for it.
            Some(None) => migrate(obj, locked, false)?,
            None => {}
        }
        local.with(resv, locked, |st| -> Result<Mapping> {
            let Store::System(sys) = &st.store else {
                return Err(EBUSY);
            };
            // SAFETY: The pages stay with the buffer while the mapping exists: `sys_maps`
            // keeps the buffer in system memory until the mapping comes back.
            let m = unsafe { Mapping::from_pages(attach, locked, sys.mem.pages(), dir)? };
            st.sys_maps += 1;
            Ok(m)
        })?
    }

    /// `VRAM_ONLY` buffers have no kernel mapping (see `dmabuf_vmap`): their exports have no
    /// `vmap`, so `dma_buf_vmap()` refuses them with `EINVAL` itself. An error from
    /// `dmabuf_vmap` would make the dma-buf core WARN, and importers such as V4L2's
    /// vb2-vmalloc queues vmap without attaching, so `dmabuf_attach` cannot refuse them first.
    fn dmabuf_vmappable(obj: &gem::Object<Self>) -> bool {
        matches!(obj.backing, Backing::Local(_)) && obj.flags & uapi::DRM_VELA_BO_VRAM_ONLY == 0
    }

    /// The kernel's CPU mapping of a buffer is its system memory: VRAM is only reachable
    /// through BAR2, whose kernel mapping goes away at unbind while an importer may keep the
    /// address. So the buffer moves to system memory and is pinned there until vunmap;
    /// `VRAM_ONLY` buffers have no kernel mapping (`dmabuf_vmappable` keeps vmap from being
    /// asked; the check here is a backstop).
    fn dmabuf_vmap(obj: &gem::Object<Self>, locked: &ResvLocked<'_>) -> Result<KernelMap> {
        let Backing::Local(local) = &obj.backing else {
            return Err(EOPNOTSUPP);
        };
        if obj.flags & uapi::DRM_VELA_BO_VRAM_ONLY != 0 {
            return Err(EOPNOTSUPP);
        }
        migrate(obj, locked, false).map_err(not_busy)?;
        local.with(obj.resv(), locked, |st| -> Result<KernelMap> {
            let Store::System(sys) = &st.store else {
                return Err(EAGAIN);
            };
            st.pins += 1;
            // SAFETY: The memory is the buffer's whole system backing, which stays where it
            // is while pinned; the pin is dropped in `dmabuf_vunmap`. If the buffer goes
            // first, the dma-buf (which holds a reference) does not.
            Ok(unsafe { KernelMap::system(sys.mem.base()) })
        })?
    }

    const HAS_VMAP_ATTACHMENT: bool = true;

    /// A CPU-driven importer (Soft-RoCE) that attached as a device reaching BAR2 peer-to-peer,
    /// pinned and revocable, gets the buffer's VRAM itself, through the kernel's BAR2 mapping:
    /// what `dmabuf_map` gave its device, never a silent move to system memory. Unlike
    /// `dmabuf_vmap`'s shared mapping this one can be taken back: unbind, reset and device
    /// loss revoke every export before BAR2 goes, and the importer unmaps before its
    /// invalidation returns. A buffer in system memory (the importer had no P2P path, so its
    /// pin moved it there) is mapped where it is. VRAM made of more than one run has no linear
    /// mapping here: `EOPNOTSUPP` (a power-of-two size is one buddy block unless VRAM is
    /// fragmented).
    fn dmabuf_vmap_attachment(
        obj: &gem::Object<Self>,
        attach: &Attachment,
        locked: &ResvLocked<'_>,
    ) -> Result<KernelMap> {
        let Backing::Local(local) = &obj.backing else {
            return Err(EOPNOTSUPP);
        };
        let chip = &obj.dev().chip;
        if !chip.serves_peers() {
            return Err(ENODEV);
        }
        let in_vram = local.with(obj.resv(), locked, |st| matches!(st.store, Store::Vram(_)))?;
        if in_vram && !p2p_ok(chip, attach) {
            // Not this importer's placement: it maps system memory, as its pin would have.
            migrate(obj, locked, false).map_err(not_busy)?;
        }
        local.with(obj.resv(), locked, |st| -> Result<KernelMap> {
            let map = match &st.store {
                Store::Vram(blocks) => {
                    let mut runs = vram::runs(blocks);
                    let (start, mut len) = runs.next().ok_or(EINVAL)?;
                    for (off, l) in runs {
                        if off != start + len {
                            return Err(EOPNOTSUPP);
                        }
                        len += l;
                    }
                    let addr = chip.vram_kernel_addr(start, len)?;
                    // SAFETY: `addr` maps the buffer's one VRAM run, all of it, in BAR2's
                    // kernel mapping. It stays valid until the matching vunmap: the pin below
                    // keeps the buffer in that run, the dma-buf keeps the object (and so the
                    // run) alive, and BAR2's mapping goes only after unbind has revoked every
                    // export (`Exports::revoke_all`; reset and device loss revoke too), which
                    // makes this revocable importer unmap before its invalidation returns.
                    unsafe { KernelMap::io(addr) }
                }
                // SAFETY: As in `dmabuf_vmap`: the whole system backing, kept in place by the
                // pin below until `dmabuf_vunmap_attachment`.
                Store::System(sys) => unsafe { KernelMap::system(sys.mem.base()) },
            };
            st.pins += 1;
            Ok(map)
        })?
    }

    fn dmabuf_vunmap_attachment(
        obj: &gem::Object<Self>,
        _attach: &Attachment,
        locked: &ResvLocked<'_>,
    ) {
        if let Backing::Local(local) = &obj.backing {
            let _ = local.with(obj.resv(), locked, |st| st.pins = st.pins.saturating_sub(1));
        }
    }

    fn dmabuf_vunmap(obj: &gem::Object<Self>, locked: &ResvLocked<'_>) {
        if let Backing::Local(local) = &obj.backing {
            let _ = local.with(obj.resv(), locked, |st| st.pins = st.pins.saturating_sub(1));
        }
    }

    fn dmabuf_unmapped(
        obj: &gem::Object<Self>,
        _attach: &Attachment,
        mapping: &Mapping,
        locked: &ResvLocked<'_>,
    ) {
        if let (Backing::Local(local), true) = (&obj.backing, mapping.is_pages()) {
            let _ = local.with(obj.resv(), locked, |st| {
                st.sys_maps = st.sys_maps.saturating_sub(1)
            });
        }
    }

    fn dmabuf_exported(obj: &gem::Object<Self>, buf: &DmaBuf) {
        obj.dev().exports.add(buf);
    }

    fn dmabuf_released(obj: &gem::Object<Self>, buf: &DmaBuf) {
        obj.dev().exports.remove(buf);
    }

    fn import_link(&self) -> Option<&gem::ImportLink<Self>> {
        match &self.backing {
            Backing::Import(attach) => Some(&attach.data().obj),
            _ => None,
        }
    }

    fn export_link(obj: &gem::Object<Self>) -> Option<&gem::ExportLink> {
        match &obj.backing {
            Backing::Local(local) => Some(&local.export),
            _ => None,
        }
    }

    fn import(dev: &VelaDevice, buf: &DmaBuf) -> Result<ARef<gem::Object<Self>>> {
        let state = ImportState {
            obj: gem::ImportLink::new(),
        };
        let attach = DynamicAttachment::new(buf, dev.chip.pdev().as_ref(), state)?;
        let obj = gem::Object::<Self>::new_imported(
            dev,
            buf,
            BoArgs {
                flags: 0,
                import: Some(attach),
                resv_only: false,
            },
        )?;
        // The glue links the object for the importer's invalidations (`import_link`).
        Ok(obj)
    }
}

/// Maps the page at buffer offset `off` of `store` at `addr`.
fn insert(chip: &Chip, store: &Store, vmf: &VmFault, addr: usize, off: usize) -> Result {
    match store {
        Store::Vram(blocks) => {
            let mut pos = 0usize;
            for (vram_off, len) in vram::runs(blocks) {
                let len = usize::try_from(len)?;
                if off < pos + len {
                    let phys = chip.vram_phys(vram_off + u64::try_from(off - pos)?)?;
                    let pfn = usize::try_from(phys)? / PAGE_SIZE;
                    // A device that is gone may have its BAR reassigned: no new mappings of it.
                    return chip.with_bound_device(|_| {
                        // SAFETY: The pfn is this buffer's VRAM inside BAR2, device memory the
                        // buffer owns until it moves or goes; a move zaps the mappings first
                        // (`unmap_user_mappings`), and unbind zaps every mapping of the device.
                        unsafe { vmf.insert_pfn(addr, pfn) }
                    });
                }
                pos += len;
            }
            Err(EFAULT)
        }
        Store::System(sys) => {
            let page = sys.mem.pages().nth(off / PAGE_SIZE).ok_or(EFAULT)?;
            vmf.insert_page(addr, &page)
        }
    }
}

/// Moves a buffer's bytes to VRAM (`to_vram`) or to system memory, with everything that
/// points at them: CPU mappings are zapped (they fault back in), importers are told to drop
/// their mappings, the PTEs of every bind are rewritten. Fails with `EBUSY` if the buffer is
/// pinned, `VRAM_ONLY` (leaving VRAM), mapped as system pages (entering VRAM), or still in
/// use after a bounded wait; `ENOMEM` if the destination is full. `locked` is the buffer's
/// reservation lock.
pub(crate) fn migrate(
    obj: &gem::Object<VelaObject>,
    locked: &ResvLocked<'_>,
    to_vram: bool,
) -> Result {
    let Backing::Local(local) = &obj.backing else {
        return Err(EINVAL);
    };
    let resv = obj.resv();
    let chip = &obj.dev().chip;
    let done = local.with(resv, locked, |st| -> Result<bool> {
        let in_vram = matches!(st.store, Store::Vram(_));
        if in_vram == to_vram {
            return Ok(true);
        }
        if st.pins > 0
            || (!to_vram && obj.flags & uapi::DRM_VELA_BO_VRAM_ONLY != 0)
            || (to_vram && st.sys_maps > 0)
        {
            return Err(EBUSY);
        }
        Ok(false)
    })??;
    if done {
        return Ok(());
    }
    resv.wait(Usage::Bookkeep, false, msecs_to_jiffies(IDLE_WAIT_MS))
        .map_err(|_| EBUSY)?;
    let size = obj.size();
    let new = if to_vram {
        Store::Vram(chip.vram().alloc(u64::try_from(size)?, false)?)
    } else {
        Store::System(SysBacking::new(chip, &obj.dev().sys_budget, size)?)
    };
    // Nothing may keep using the old place: importers remap (under this lock they cannot
    // map again before the move is done), CPU mappings fault in the new place.
    local
        .export
        .with_export(locked, |buf| buf.invalidate_mappings(locked))
        .transpose()?;
    obj.unmap_user_mappings();
    local.with(resv, locked, |st| -> Result {
        copy(chip, &st.store, &new, size)?;
        // Both lists before anything changes: a failure from here on must leave every PTE
        // pointing at the old place, which stays, or at nothing, never at the new one, which
        // is freed.
        let (runs, in_vram) = new.runs()?;
        let (old_runs, old_in_vram) = st.store.runs()?;
        let old = core::mem::replace(&mut st.store, new);
        // Its bus addresses are the old place's. Importers holding it were told to unmap.
        st.bus = None;
        if let Err(e) =
            vm::remap_everywhere(obj, locked, &runs, in_vram, Some((&old_runs, old_in_vram)))
        {
            // Put the old place back: the binds point at it again, or at nothing.
            st.store = old;
            return Err(e);
        }
        st.moved = !to_vram;
        // `old` goes here, after every PTE points elsewhere and the TLBs were invalidated.
        drop(old);
        Ok(())
    })??;
    // Only buffers in VRAM are eviction candidates.
    let mut list = obj.dev().evictable.lock();
    if to_vram {
        let addr = core::ptr::from_ref(obj) as usize;
        let _ = list
            .tree
            .try_create_and_insert(local.evict_id, addr, GFP_KERNEL);
    } else {
        list.tree.remove(&local.evict_id);
    }
    Ok(())
}

/// Makes room for `need` bytes of VRAM by moving idle buffers to system memory, oldest
/// first. Busy, pinned and system-mapped buffers stay. Returns whether that much is free
/// (which a fragmented VRAM may still not satisfy).
fn evict(dev: &VelaDevice, need: u64) -> bool {
    let chip = &dev.chip;
    let mut victims = KVec::new();
    {
        let list = dev.evictable.lock();
        // Enough candidates for twice the need, so that a few busy ones do not stop it; not
        // the whole list, which may hold 100k buffers.
        let mut candidates = 0u64;
        for (_, &obj) in list.tree.iter() {
            if candidates >= need.saturating_mul(2) {
                break;
            }
            // SAFETY: An entry leaves the list in `Local::drop`, under this lock, before the
            // object's memory is freed; so the memory is valid while the lock is held.
            if let Some(o) = unsafe { gem::Object::<VelaObject>::try_get(obj as *const _) } {
                candidates += o.size() as u64;
                if victims.push(o, GFP_KERNEL).is_err() {
                    break;
                }
            }
        }
    }
    for obj in victims.iter() {
        if chip.vram().avail() >= need {
            break;
        }
        let resv = obj.resv();
        let Ok(g) = resv.lock() else {
            continue;
        };
        // Idle only: evicting a busy buffer would mean waiting for its jobs.
        if resv.wait(Usage::Bookkeep, false, 0).is_ok() {
            let _ = migrate(obj, &g, false);
        }
    }
    // The references go here, with no lock held: one may be the last.
    drop(victims);
    chip.vram().avail() >= need
}

/// Whether a buffer that moved out of VRAM may come back now.
pub(crate) fn wants_vram(obj: &gem::Object<VelaObject>, locked: &ResvLocked<'_>) -> bool {
    match &obj.backing {
        Backing::Local(local) => local
            .with(obj.resv(), locked, |st| {
                st.moved && st.sys_maps == 0 && st.pins == 0
            })
            .unwrap_or(false),
        Backing::Import(_) | Backing::Resv => false,
    }
}

/// Copies `size` bytes from `from` to `to` with the CPU.
/// Up to this size a new VRAM buffer is cleared by the CPU through BAR2: below it a device
/// round trip costs more than the writes (`vela bench` (c) went from 3,400 to 573 creations
/// per second of 4 KiB buffers when every clear went to the engine).
const CPU_CLEAR_MAX: usize = 256 << 10;

/// The device's view of `size` bytes of a store, for the kernel's copy engine.
fn spans(store: &Store, size: usize) -> Result<KVec<Span>> {
    let (runs, in_vram) = store.runs()?;
    let mut left = u64::try_from(size)?;
    let mut out = KVec::with_capacity(runs.len(), GFP_KERNEL)?;
    for (addr, len) in runs.iter().copied() {
        let n = len.min(left);
        if n == 0 {
            break;
        }
        out.push(
            if in_vram {
                Span::vram(addr, n)
            } else {
                Span::bus(addr, n)
            },
            GFP_KERNEL,
        )?;
        left -= n;
    }
    Ok(out)
}

/// Copies a buffer's contents between places: on the device's copy engine, or with the CPU
/// when the engine cannot take it (no free hardware queue, a timeout, no kernel ring).
fn copy(chip: &Chip, from: &Store, to: &Store, size: usize) -> Result {
    let on_device = spans(from, size).and_then(|src| chip.kernel_queue().copy(chip, &src, &spans(to, size)?));
    if on_device.is_ok() {
        return Ok(());
    }
    const CHUNK: usize = 64 << 10;
    let mut buf = KVec::from_elem(0u8, CHUNK, GFP_KERNEL)?;
    let mut off = 0usize;
    while off < size {
        let n = CHUNK.min(size - off);
        read(chip, from, off, &mut buf[..n])?;
        write(chip, to, off, &buf[..n])?;
        off += n;
    }
    Ok(())
}

/// The VRAM offset of buffer offset `off`, and how many bytes are contiguous from there.
fn vram_at(blocks: &VramBlocks, off: usize) -> Result<(u64, usize)> {
    let mut pos = 0usize;
    for (vram_off, len) in vram::runs(blocks) {
        let len = usize::try_from(len)?;
        if off < pos + len {
            return Ok((vram_off + u64::try_from(off - pos)?, pos + len - off));
        }
        pos += len;
    }
    Err(EINVAL)
}

fn read(chip: &Chip, store: &Store, off: usize, out: &mut [u8]) -> Result {
    match store {
        Store::Vram(blocks) => {
            let mut done = 0;
            while done < out.len() {
                let (at, n) = vram_at(blocks, off + done)?;
                let n = n.min(out.len() - done);
                chip.vram_read_bytes(at, &mut out[done..done + n])?;
                done += n;
            }
            Ok(())
        }
        Store::System(sys) => sys.mem.read(off, out),
    }
}

fn write(chip: &Chip, store: &Store, off: usize, data: &[u8]) -> Result {
    match store {
        Store::Vram(blocks) => {
            let mut done = 0;
            while done < data.len() {
                let (at, n) = vram_at(blocks, off + done)?;
                let n = n.min(data.len() - done);
                chip.vram_write_bytes(at, &data[done..done + n])?;
                done += n;
            }
            Ok(())
        }
        Store::System(sys) => sys.mem.write(off, data),
    }
}

impl VelaObject {
    /// Creates a buffer, checking the request as BO_CREATE documents. When VRAM is full, idle
    /// buffers are evicted to system memory to make room, once.
    pub(crate) fn create(
        dev: &VelaDevice,
        size: u64,
        flags: u32,
    ) -> Result<ARef<gem::Object<Self>>> {
        check_create(size, flags, dev.chip.vram().size())?;
        let bytes = size.next_multiple_of(vram::PAGE);
        let size = usize::try_from(bytes).map_err(|_| EINVAL)?;
        let in_vram = flags & uapi::DRM_VELA_BO_VRAM != 0;
        let obj = match gem::Object::<Self>::new(
            dev,
            size,
            BoArgs {
                flags,
                import: None,
                resv_only: false,
            },
        ) {
            Err(e) if e == ENOMEM && in_vram => {
                evict(dev, bytes);
                gem::Object::<Self>::new(
                    dev,
                    size,
                    BoArgs {
                        flags,
                        import: None,
                        resv_only: false,
                    },
                )?
            }
            r => r?,
        };
        if in_vram && flags & uapi::DRM_VELA_BO_VRAM_ONLY == 0 {
            if let Backing::Local(local) = &obj.backing {
                let addr = core::ptr::from_ref::<gem::Object<Self>>(&obj) as usize;
                // Not being on the list only means never being evicted.
                let _ = dev.evictable.lock().tree.try_create_and_insert(
                    local.evict_id,
                    addr,
                    GFP_KERNEL,
                );
            }
        }
        Ok(obj)
    }

    /// A VM's reservation object: a GEM object with nothing behind it, for gpuvm.
    pub(crate) fn resv_object(dev: &VelaDevice) -> Result<ARef<gem::Object<Self>>> {
        gem::Object::<Self>::new(
            dev,
            PAGE_SIZE,
            BoArgs {
                flags: 0,
                import: None,
                resv_only: true,
            },
        )
    }

    /// The buffer's placement, as BO_INFO reports it.
    pub(crate) fn placement(obj: &gem::Object<Self>) -> Result<u32> {
        match &obj.backing {
            Backing::Import(_) => Ok(uapi::DRM_VELA_PLACEMENT_IMPORTED),
            Backing::Resv => Err(EINVAL),
            Backing::Local(local) => {
                let g = obj.resv().lock()?;
                local.with(obj.resv(), &g, |st| match st.store {
                    Store::Vram(_) => uapi::DRM_VELA_PLACEMENT_VRAM,
                    Store::System(_) => uapi::DRM_VELA_PLACEMENT_SYSTEM,
                })
            }
        }
    }
}

/// BO_CREATE's argument rules, apart from the allocation, so KUnit can check them.
pub(crate) fn check_create(size: u64, flags: u32, vram_size: u64) -> Result {
    if flags & !uapi::DRM_VELA_BO_FLAGS != 0 {
        return Err(EINVAL);
    }
    let vram = flags & uapi::DRM_VELA_BO_VRAM != 0;
    if flags & uapi::DRM_VELA_BO_VRAM_ONLY != 0 && !vram {
        return Err(EINVAL);
    }
    if size == 0 || size.checked_next_multiple_of(vram::PAGE).is_none() {
        return Err(EINVAL);
    }
    if size > if vram { vram_size } else { SYSTEM_MAX } {
        return Err(EINVAL);
    }
    Ok(())
}

/// Looks a handle up.
pub(crate) fn lookup(
    file: &kernel::drm::File<super::file::File>,
    handle: u32,
) -> Result<ARef<gem::Object<VelaObject>>> {
    gem::Object::lookup_handle(file, handle)
}

#[kunit_tests(vela_bo)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const VRAM: u32 = uapi::DRM_VELA_BO_VRAM;

    #[test]
    fn create_rules() {
        assert_eq!(check_create(4096, VRAM, 256 * MIB), Ok(()));
        assert_eq!(
            check_create(256 * MIB, VRAM | uapi::DRM_VELA_BO_CPU_VISIBLE, 256 * MIB),
            Ok(())
        );
        assert_eq!(check_create(0, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(256 * MIB + 1, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(u64::MAX, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(4096, VRAM | (1 << 31), 256 * MIB), Err(EINVAL));
        assert_eq!(
            check_create(4096, uapi::DRM_VELA_BO_VRAM_ONLY, 256 * MIB),
            Err(EINVAL)
        );
        // System memory: its own limit, not VRAM's.
        assert_eq!(
            check_create(4096, uapi::DRM_VELA_BO_CPU_VISIBLE, 256 * MIB),
            Ok(())
        );
        assert_eq!(check_create(512 * MIB, 0, 256 * MIB), Ok(()));
        assert_eq!(check_create(SYSTEM_MAX, 0, 256 * MIB), Ok(()));
        assert_eq!(check_create(SYSTEM_MAX + 4096, 0, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(0, 0, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(u64::MAX, 0, 256 * MIB), Err(EINVAL));
    }
}
