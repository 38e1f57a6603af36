// SPDX-License-Identifier: GPL-2.0

//! PRIME: buffers shared as dma-bufs. Exports go to peers peer-to-peer from BAR2 when they
//! reach it and can be revoked, else from system memory (the buffer moves there); imports
//! are other exporters' dma-bufs mapped for this device (`Documentation/driver.rst`, Sharing
//! buffers). The GEM object's hooks (`gem.rs`) call in here.

use kernel::{
    dma_buf::{Attachment, DmaBuf, DynamicAttachment, Importer, KernelMap, Mapping, P2pRoute},
    dma_resv::{ResvLocked, Usage},
    drm::gem::{self, BaseObject},
    prelude::*,
    sync::aref::ARef,
    time::msecs_to_jiffies,
};

use super::{
    driver::VelaDevice,
    gem::IDLE_WAIT_MS,
    gem::{Backing, BoArgs, Local, Store, VelaObject},
    placement::migrate,
    sysmem::SysBacking,
    vm,
};
use crate::{
    hw::{best_effort, vram, Chip},
    uapi,
};

/// An imported buffer's state: the link to the GEM object it belongs to, so that an
/// invalidation can find the object's binds (its gpuvm mappings) and remove their page table
/// entries.
pub(crate) struct ImportState {
    pub(super) obj: gem::ImportLink<VelaObject>,
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

/// Drops one pin of the buffer. Fails only under another object's lock: a bug, which would
/// keep the buffer pinned for good, so it is loud.
fn drop_pin(obj: &gem::Object<VelaObject>, local: &Local, locked: &ResvLocked<'_>) {
    best_effort(
        "dropping a pin",
        local.with(obj.resv(), locked, |st| st.pins = st.pins.saturating_sub(1)),
    );
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

/// Importers that reach BAR2 peer-to-peer (and can be revoked) get VRAM; others get system
/// memory, the buffer moving there when they map it, unless it is `VRAM_ONLY`: those
/// importers are refused here with `EOPNOTSUPP`.
pub(super) fn attach(obj: &gem::Object<VelaObject>, attach: &Attachment) -> Result {
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
pub(super) fn pin(
    obj: &gem::Object<VelaObject>,
    attach: &Attachment,
    locked: &ResvLocked<'_>,
) -> Result {
    let Backing::Local(local) = &obj.backing else {
        return Err(EOPNOTSUPP);
    };
    let in_vram = local.with(obj.resv(), locked, |st| matches!(st.store, Store::Vram(_)))?;
    if in_vram && !p2p_ok(&obj.dev().chip, attach) {
        migrate(obj, locked, false).map_err(not_busy)?;
    }
    local.with(obj.resv(), locked, |st| st.pins += 1)
}

pub(super) fn unpin(obj: &gem::Object<VelaObject>, _attach: &Attachment, locked: &ResvLocked<'_>) {
    if let Backing::Local(local) = &obj.backing {
        drop_pin(obj, local, locked);
    }
}

pub(super) fn map(
    obj: &gem::Object<VelaObject>,
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
pub(super) fn vmappable(obj: &gem::Object<VelaObject>) -> bool {
    matches!(obj.backing, Backing::Local(_)) && obj.flags & uapi::DRM_VELA_BO_VRAM_ONLY == 0
}

/// The kernel's CPU mapping of a buffer is its system memory: VRAM is only reachable
/// through BAR2, whose kernel mapping goes away at unbind while an importer may keep the
/// address. So the buffer moves to system memory and is pinned there until vunmap;
/// `VRAM_ONLY` buffers have no kernel mapping (`dmabuf_vmappable` keeps vmap from being
/// asked; the check here is a backstop).
pub(super) fn vmap(obj: &gem::Object<VelaObject>, locked: &ResvLocked<'_>) -> Result<KernelMap> {
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
        Ok(map_system_pinned(sys, &mut st.pins))
    })?
}

/// Maps a buffer's whole system backing for the kernel and takes a pin (`pins` is the
/// buffer's count), which the matching vunmap drops.
fn map_system_pinned(sys: &SysBacking, pins: &mut u32) -> KernelMap {
    *pins += 1;
    // SAFETY: The memory is the buffer's whole system backing, which stays where it is while
    // pinned, and the pin just taken lasts until the matching vunmap. If the buffer goes
    // first, the dma-buf (which holds a reference) does not.
    unsafe { KernelMap::system(sys.mem.base()) }
}

/// A CPU-driven importer (Soft-RoCE) that attached as a device reaching BAR2 peer-to-peer,
/// pinned and revocable, gets the buffer's VRAM itself, through the kernel's BAR2 mapping:
/// what `dmabuf_map` gave its device, never a silent move to system memory. Unlike
/// `dmabuf_vmap`'s shared mapping this one can be taken back: unbind, reset and device
/// loss revoke every export before BAR2 goes, and the importer unmaps before its
/// invalidation returns. A buffer in system memory (the importer had no P2P path, so its
/// pin moved it there) is mapped where it is. VRAM made of more than one run has no linear
/// mapping here: `EOPNOTSUPP` (a power-of-two size is one buddy block unless VRAM is
/// fragmented).
pub(super) fn vmap_attachment(
    obj: &gem::Object<VelaObject>,
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
        match &st.store {
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
                let map = unsafe { KernelMap::io(addr) };
                st.pins += 1;
                Ok(map)
            }
            Store::System(sys) => Ok(map_system_pinned(sys, &mut st.pins)),
        }
    })?
}

pub(super) fn vunmap_attachment(
    obj: &gem::Object<VelaObject>,
    _attach: &Attachment,
    locked: &ResvLocked<'_>,
) {
    if let Backing::Local(local) = &obj.backing {
        drop_pin(obj, local, locked);
    }
}

pub(super) fn vunmap(obj: &gem::Object<VelaObject>, locked: &ResvLocked<'_>) {
    if let Backing::Local(local) = &obj.backing {
        drop_pin(obj, local, locked);
    }
}

pub(super) fn unmapped(
    obj: &gem::Object<VelaObject>,
    _attach: &Attachment,
    mapping: &Mapping,
    locked: &ResvLocked<'_>,
) {
    if let (Backing::Local(local), true) = (&obj.backing, mapping.is_pages()) {
        // Fails only under another object's lock: a bug, which would keep the buffer in
        // system memory for good, so it is loud.
        best_effort(
            "counting an unmapped export",
            local.with(obj.resv(), locked, |st| {
                st.sys_maps = st.sys_maps.saturating_sub(1)
            }),
        );
    }
}

pub(super) fn exported(obj: &gem::Object<VelaObject>, _buf: &DmaBuf) {
    obj.dev().exports.add(obj);
}

pub(super) fn released(obj: &gem::Object<VelaObject>, _buf: &DmaBuf) {
    obj.dev().exports.remove(obj);
}

pub(super) fn import(dev: &VelaDevice, buf: &DmaBuf) -> Result<ARef<gem::Object<VelaObject>>> {
    let state = ImportState {
        obj: gem::ImportLink::new(),
    };
    let attach = DynamicAttachment::new(buf, dev.chip.pdev().as_ref(), state)?;
    let obj = gem::Object::<VelaObject>::new_imported(
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
