// SPDX-License-Identifier: GPL-2.0

//! Buffer objects. A VRAM buffer owns its VRAM blocks from creation to its last reference;
//! userspace maps it write-combined through BAR2. Buffers are shared as dma-bufs: exported
//! peer-to-peer from BAR2, and imported from other exporters (`Documentation/driver.rst`,
//! Sharing buffers).

use kernel::{
    dma_buf::{Attachment, DmaBuf, DynamicAttachment, Importer, Mapping, P2pRoute},
    dma_resv::{ResvLocked, Usage},
    drm::{gem, gem::BaseObject, DeviceContext},
    mm::virt::VmaNew,
    page::PAGE_SIZE,
    prelude::*,
    sync::aref::ARef,
};

use super::{
    driver::{VelaDevice, VelaDriver},
    vm::ImportBinds,
};
use crate::{
    hw::{
        sysmem::SysBacking,
        vram::{self, VramBlocks},
    },
    uapi,
};

/// The largest system-memory buffer: 4 GiB.
pub(crate) const SYSTEM_MAX: u64 = 4 << 30;

/// What holds a buffer's bytes.
pub(crate) enum Backing {
    /// The device's own memory.
    Vram(VramBlocks),
    /// System memory the device reaches by DMA.
    System(SysBacking),
    /// Another exporter's dma-buf, reached through a mapping made for this device.
    Import(Pin<KBox<DynamicAttachment<ImportState>>>),
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
}

/// The exports of the driver: dma-bufs whose `ops` are these are this driver's own.
static VELA_DMABUF_OPS: gem::DmabufOps<VelaObject> = gem::DmabufOps::new();

/// How long an importer waits, when its mapping is invalidated, for this device's jobs that
/// use the buffer before it removes the device's page table entries anyway (those jobs then
/// fault, and fail).
const INVALIDATE_WAIT_MS: u32 = 2000;

/// An imported buffer's state: where it is bound, so that an invalidation can remove those
/// page table entries. Guarded by the buffer's reservation lock.
pub(crate) struct ImportState {
    pub(crate) binds: ImportBinds,
}

impl Importer for ImportState {
    fn invalidate_mappings(attach: &DynamicAttachment<Self>, locked: &ResvLocked<'_>) {
        // Jobs of this device that use the buffer finish first where they can: their fences
        // are in the shared reservation object.
        let _ = locked.resv().wait(
            Usage::Bookkeep,
            false,
            kernel::time::msecs_to_jiffies(INVALIDATE_WAIT_MS),
        );
        ImportBinds::unmap_all(attach, locked);
        attach.unmap(locked);
    }
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
            None if args.flags & uapi::DRM_VELA_BO_VRAM == 0 => {
                SysBacking::new(&dev.core, size).map(Backing::System)
            }
            None => u64::try_from(size)
                .map_err(|_| EINVAL)
                .and_then(|size| dev.core.vram.alloc(size, false))
                .map(Backing::Vram),
        };
        try_pin_init!(VelaObject {
            flags: args.flags,
            backing: backing?,
        })
    }

    const HAS_MMAP: bool = true;

    fn mmap(obj: &gem::Object<Self>, vma: &VmaNew, offset: usize) -> Result {
        if obj.flags & uapi::DRM_VELA_BO_CPU_VISIBLE == 0 {
            return Err(EINVAL);
        }
        let blocks = match &obj.backing {
            Backing::Vram(blocks) => blocks,
            Backing::System(sys) => return mmap_system(sys, vma, offset),
            Backing::Import(_) => return Err(EINVAL),
        };
        let core = &obj.dev().core;
        let (start, end) = (vma.start(), vma.end());
        let mut obj_pos: usize = 0;
        let mut addr = start;
        for (vram_off, len) in vram::runs(blocks) {
            let len = usize::try_from(len)?;
            let run_end = obj_pos.checked_add(len).ok_or(EINVAL)?;
            // The part of this run that falls inside [offset, offset + mapping length).
            if run_end > offset && addr < end {
                let skip = offset.saturating_sub(obj_pos);
                let n = (len - skip).min(end - addr);
                let phys = core.vram_phys.checked_add(vram_off).ok_or(EINVAL)?;
                let pfn = usize::try_from(phys)? / PAGE_SIZE + skip / PAGE_SIZE;
                // SAFETY: the pfns are this buffer's own VRAM inside BAR2, device memory that
                // the buffer owns until its last reference goes, and the mapping holds a
                // reference (drm_gem_vm_open/close), so the VRAM cannot be reused under it.
                unsafe { vma.remap_pfn_range_wc(addr, pfn, n)? };
                addr += n;
            }
            obj_pos = run_end;
        }
        if addr != end {
            return Err(EINVAL);
        }
        Ok(())
    }

    const DMABUF_OPS: Option<&'static gem::DmabufOps<Self>> = Some(&VELA_DMABUF_OPS);

    /// Peer-to-peer only: the importer's device must reach BAR2 (through a switch, or a host
    /// bridge the kernel trusts), handle memory without pages, and give mappings back when
    /// told to, so that unbind can revoke them. Others get `EOPNOTSUPP`: moving the buffer to
    /// system memory for them is not implemented yet (`Documentation/driver.rst`).
    fn dmabuf_attach(obj: &gem::Object<Self>, attach: &Attachment) -> Result {
        let Backing::Vram(_) = &obj.backing else {
            return Err(EOPNOTSUPP);
        };
        let core = &obj.dev().core;
        if !attach.peer2peer() || !attach.revocable() {
            return Err(EOPNOTSUPP);
        }
        match core.p2p_route(attach)? {
            P2pRoute::Switch | P2pRoute::HostBridge => Ok(()),
            P2pRoute::None => Err(EOPNOTSUPP),
        }
    }

    /// VRAM buffers never move, so a pin has nothing to hold in place.
    fn dmabuf_pin(_obj: &gem::Object<Self>, _attach: &Attachment) -> Result {
        Ok(())
    }

    fn dmabuf_map(
        obj: &gem::Object<Self>,
        attach: &Attachment,
        locked: &ResvLocked<'_>,
        _dir: kernel::dma::DataDirection,
    ) -> Result<Mapping> {
        let Backing::Vram(blocks) = &obj.backing else {
            return Err(EOPNOTSUPP);
        };
        let mut runs = KVec::new();
        for r in vram::runs(blocks) {
            runs.push(r, GFP_KERNEL)?;
        }
        obj.dev().core.map_vram_for(attach, locked, &runs)
    }

    fn dmabuf_exported(obj: &gem::Object<Self>, buf: &DmaBuf) {
        obj.dev().exports.add(buf);
    }

    fn dmabuf_released(obj: &gem::Object<Self>, buf: &DmaBuf) {
        obj.dev().exports.remove(buf);
    }

    fn import(dev: &VelaDevice, buf: &DmaBuf) -> Result<ARef<gem::Object<Self>>> {
        let state = ImportState { binds: ImportBinds::new() };
        let attach = DynamicAttachment::new(buf, dev.core.pdev.as_ref(), state)?;
        gem::Object::<Self>::new_imported(dev, buf, BoArgs { flags: 0, import: Some(attach) })
    }
}

/// Maps system memory pages, cached (the device's DMA is coherent with the CPU caches).
fn mmap_system(sys: &SysBacking, vma: &VmaNew, offset: usize) -> Result {
    let first = offset / PAGE_SIZE;
    let count = (vma.end() - vma.start()) / PAGE_SIZE;
    if first.checked_add(count).is_none_or(|end| end * PAGE_SIZE > sys.mem.len()) {
        return Err(EINVAL);
    }
    let mixed = vma.set_mixedmap();
    for (i, page) in sys.mem.pages().skip(first).take(count).enumerate() {
        mixed.vm_insert_page(vma.start() + i * PAGE_SIZE, &page)?;
    }
    Ok(())
}

impl VelaObject {
    /// Creates a buffer, checking the request as BO_CREATE documents.
    pub(crate) fn create(dev: &VelaDevice, size: u64, flags: u32) -> Result<ARef<gem::Object<Self>>> {
        check_create(size, flags, dev.core.vram.size())?;
        let size = usize::try_from(size.next_multiple_of(vram::PAGE)).map_err(|_| EINVAL)?;
        gem::Object::<Self>::new(dev, size, BoArgs { flags, import: None })
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
        assert_eq!(check_create(256 * MIB, VRAM | uapi::DRM_VELA_BO_CPU_VISIBLE, 256 * MIB), Ok(()));
        assert_eq!(check_create(0, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(256 * MIB + 1, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(u64::MAX, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(4096, VRAM | (1 << 31), 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(4096, uapi::DRM_VELA_BO_VRAM_ONLY, 256 * MIB), Err(EINVAL));
        // System memory: its own limit, not VRAM's.
        assert_eq!(check_create(4096, uapi::DRM_VELA_BO_CPU_VISIBLE, 256 * MIB), Ok(()));
        assert_eq!(check_create(512 * MIB, 0, 256 * MIB), Ok(()));
        assert_eq!(check_create(SYSTEM_MAX, 0, 256 * MIB), Ok(()));
        assert_eq!(check_create(SYSTEM_MAX + 4096, 0, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(0, 0, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(u64::MAX, 0, 256 * MIB), Err(EINVAL));
    }
}
