// SPDX-License-Identifier: GPL-2.0

//! Placement: where a buffer's bytes are (VRAM or system memory), moving them, and evicting
//! idle buffers from VRAM when it runs short.

use kernel::{
    dma_resv::{ResvLocked, Usage},
    drm::gem::{self, BaseObject},
    prelude::*,
    time::msecs_to_jiffies,
};

use super::{
    driver::VelaDevice,
    gem::{Backing, Store, VelaObject, IDLE_WAIT_MS},
    sysmem::SysBacking,
    vm,
};
use crate::{
    hw::{
        kqueue::Span,
        vram::{self, VramBlocks},
        Chip,
    },
    uapi,
};

/// Buffers that may be evicted, by id (ids grow, so the first is the oldest), as object
/// addresses: an entry leaves (in [`Local`]'s drop, under the list's lock) before its object is
/// freed. A tree, so that adding and removing stay O(log n) with 100k live buffers.
pub(crate) struct Evictable {
    pub(super) next: u64,
    pub(super) tree: kernel::rbtree::RBTree<u64, usize>,
}

impl Evictable {
    pub(crate) fn new() -> Self {
        Self {
            next: 0,
            tree: kernel::rbtree::RBTree::new(),
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
        // Overwritten in full by `copy` below before the buffer, its binds or its importers
        // see it; a failed copy drops it unread.
        Store::System(SysBacking::for_move(
            chip,
            &obj.dev().sys_budget,
            &obj.dev().retired,
            size,
        )?)
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
        // `old` goes here, after every PTE points elsewhere and the TLBs were invalidated;
        // system memory is freed off this path (the move back runs in a SUBMIT).
        match old {
            Store::System(sys) => obj.dev().retired.put(sys),
            Store::Vram(blocks) => drop(blocks),
        }
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
pub(crate) fn evict(dev: &VelaDevice, need: u64) -> bool {
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
pub(crate) const CPU_CLEAR_MAX: usize = 256 << 10;

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
    let on_device =
        spans(from, size).and_then(|src| chip.kernel_queue().copy(chip, &src, &spans(to, size)?));
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
