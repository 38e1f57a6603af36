// SPDX-License-Identifier: GPL-2.0

//! Buffer objects. A buffer's own memory is VRAM or system memory, and may move between them
//! (to serve an importer that cannot reach VRAM); userspace mappings fault in whatever backs
//! the buffer at the time. Buffers are shared as dma-bufs: exported peer-to-peer from BAR2 or
//! from system memory, and imported from other exporters (`Documentation/driver.rst`, Sharing
//! buffers).

use kernel::{
    dma_buf::{Attachment, DmaBuf, DynamicAttachment, KernelMap, Mapping},
    dma_resv::{DmaResv, ResvCell, ResvLocked},
    drm::{
        gem,
        gem::{BaseObject, VmFault},
        DeviceContext,
    },
    mm::virt::VmaNew,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};

use super::{
    driver::{VelaDevice, VelaDriver},
    placement::{evict, Evictable, CPU_CLEAR_MAX},
    prime::{self, ImportState},
    sysmem::{Fill, SysBacking},
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
pub(crate) const IDLE_WAIT_MS: u32 = 2000;

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
    pub(super) sys_maps: u32,
    /// Pins by importers that cannot follow a move.
    pub(super) pins: u32,
    /// In system memory because it moved out of VRAM: the next job brings it back.
    pub(super) moved: bool,
    /// The table for peers behind the switch, while in VRAM.
    pub(super) bus: Option<BusCache>,
}

/// A buffer's own memory. Guarded by the buffer's reservation lock.
pub(crate) struct Local {
    pub(super) state: ResvCell<LocalState>,
    /// The dma-buf the buffer is exported as, which a move invalidates.
    pub(super) export: gem::ExportLink,
    /// The eviction list (the device's), which the buffer leaves when it goes.
    evictable: Arc<Mutex<Evictable>>,
    /// The buffer's key in that list.
    pub(super) evict_id: u64,
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
                    SysBacking::new(&dev.chip, &dev.sys_budget, size, Fill::Zeroed)
                        .map(Store::System)
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
                            if size <= CPU_CLEAR_MAX
                                || chip.kernel_queue().clear(chip, &spans).is_err()
                            {
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

    fn dmabuf_attach(obj: &gem::Object<Self>, attach: &Attachment) -> Result {
        prime::attach(obj, attach)
    }

    fn dmabuf_pin(obj: &gem::Object<Self>, attach: &Attachment, locked: &ResvLocked<'_>) -> Result {
        prime::pin(obj, attach, locked)
    }

    fn dmabuf_unpin(obj: &gem::Object<Self>, _attach: &Attachment, locked: &ResvLocked<'_>) {
        prime::unpin(obj, _attach, locked)
    }

    fn dmabuf_map(
        obj: &gem::Object<Self>,
        attach: &Attachment,
        locked: &ResvLocked<'_>,
        dir: kernel::dma::DataDirection,
    ) -> Result<Mapping> {
        prime::map(obj, attach, locked, dir)
    }

    fn dmabuf_vmappable(obj: &gem::Object<Self>) -> bool {
        prime::vmappable(obj)
    }

    fn dmabuf_vmap(obj: &gem::Object<Self>, locked: &ResvLocked<'_>) -> Result<KernelMap> {
        prime::vmap(obj, locked)
    }

    const HAS_VMAP_ATTACHMENT: bool = true;

    fn dmabuf_vmap_attachment(
        obj: &gem::Object<Self>,
        attach: &Attachment,
        locked: &ResvLocked<'_>,
    ) -> Result<KernelMap> {
        prime::vmap_attachment(obj, attach, locked)
    }

    fn dmabuf_vunmap_attachment(
        obj: &gem::Object<Self>,
        _attach: &Attachment,
        locked: &ResvLocked<'_>,
    ) {
        prime::vunmap_attachment(obj, _attach, locked)
    }

    fn dmabuf_vunmap(obj: &gem::Object<Self>, locked: &ResvLocked<'_>) {
        prime::vunmap(obj, locked)
    }

    fn dmabuf_unmapped(
        obj: &gem::Object<Self>,
        _attach: &Attachment,
        mapping: &Mapping,
        locked: &ResvLocked<'_>,
    ) {
        prime::unmapped(obj, _attach, mapping, locked)
    }

    fn dmabuf_exported(obj: &gem::Object<Self>, buf: &DmaBuf) {
        prime::exported(obj, buf)
    }

    fn dmabuf_released(obj: &gem::Object<Self>, buf: &DmaBuf) {
        prime::released(obj, buf)
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
        prime::import(dev, buf)
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
            let page = sys.mem.page_for_user(off / PAGE_SIZE).ok_or(EFAULT)?;
            vmf.insert_page(addr, &page)
        }
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
