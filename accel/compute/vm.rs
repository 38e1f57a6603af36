// SPDX-License-Identifier: GPL-2.0

//! GPU virtual address spaces.
//!
//! A [`Vm`] owns one MMU context and its page tables, and a `drm_gpuvm` of what is bound
//! into it, which is all a job on one of its queues (`super::queue`) can reach
//! (`Documentation/driver.rst`, GPU address spaces).

use kernel::{
    drm::gem::{self, BaseObject},
    new_mutex,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};

use super::driver::{VelaDevice, VelaDriver};
use super::gem::{Backing, VelaObject};
use super::prime::ImportState;
use crate::{
    hw::{
        best_effort,
        mmu::{self, PageTables},
        vram::PAGE,
        Chip, ContextId,
    },
    uapi,
};
use kernel::{
    dma_buf::DynamicAttachment,
    dma_resv::ResvLocked,
    drm::gpuvm::{
        DriverGpuVm, GpuVaAlloc, GpuVm, OpMap, OpMapRequest, OpMapped, OpRemap, OpRemapped,
        OpUnmap, OpUnmapped, UniqueRefGpuVm,
    },
};

/// A VM's page tables and MMU context. Shared with the VM's `drm_gpuvm_bo`s, so that a
/// buffer that moves can rewrite its page table entries in every VM it is bound in without
/// going through the VM's lock; the context is given back once the VM and every such
/// reference are gone.
#[pin_data(PinnedDrop)]
pub(crate) struct Space {
    chip: Arc<Chip>,
    context: ContextId,
    /// The innermost lock: taken under the VM's and the buffers' reservation locks.
    #[pin]
    pt: Mutex<PageTables>,
}

#[pinned_drop]
impl PinnedDrop for Space {
    fn drop(self: Pin<&mut Self>) {
        // The device stops using the context before its page tables (`pt`) are freed.
        self.chip.put_context(self.context);
    }
}

impl Space {
    /// Maps `[bo_offset, bo_offset + size)` of the buffer whose storage is `runs` (addresses
    /// and lengths in buffer order; VRAM offsets if `in_vram`, else bus addresses) at `va`.
    /// All or nothing. Entries that were already there stay cached until `invalidate`.
    fn map(
        &self,
        runs: &[(u64, u64)],
        in_vram: bool,
        va: u64,
        bo_offset: u64,
        size: u64,
        pte_flags: mmu::Access,
    ) -> Result {
        let mut pt = self.pt.lock();
        let mut pos = 0u64;
        let mut mapped = 0u64;
        let mut res = Ok(());
        for &(addr, len) in runs {
            let run_end = pos + len;
            if run_end > bo_offset && mapped < size {
                let skip = bo_offset.saturating_sub(pos);
                let n = (len - skip).min(size - mapped);
                if let Err(e) = pt.map(&self.chip, va + mapped, addr + skip, n, pte_flags, in_vram)
                {
                    res = Err(e);
                    break;
                }
                mapped += n;
            }
            pos = run_end;
        }
        if res.is_ok() && mapped != size {
            res = Err(EINVAL);
        }
        if res.is_err() {
            // Take back what was mapped so far: no half-done bind.
            best_effort("unmapping a failed bind", pt.unmap(&self.chip, va, mapped));
            best_effort(
                "invalidating a failed bind",
                self.chip.invalidate(self.context),
            );
        }
        res
    }

    /// Removes the entries of `[va, va + size)`, and the cached translations of them.
    fn unmap(&self, va: u64, size: u64) -> Result {
        let r = self.pt.lock().unmap(&self.chip, va, size);
        // The device must not use a cached translation to the buffer once it is unbound.
        self.chip.invalidate(self.context)?;
        r
    }
}

/// A VM's `drm_gpuvm` data: where its steps write.
pub(crate) struct VaSpace {
    space: Arc<Space>,
}

/// What a VM_BIND or VM_UNBIND step needs beyond the VM: the buffer's storage and access
/// flags for a map, and the preallocated `drm_gpuva`.
pub(crate) struct Step<'a> {
    runs: &'a [(u64, u64)],
    in_vram: bool,
    pte_flags: mmu::Access,
    va: Option<GpuVaAlloc<VaSpace>>,
    /// The VM is going away: its page tables are freed with it, so unmaps skip them.
    teardown: bool,
}

impl DriverGpuVm for VaSpace {
    type Driver = VelaDriver;
    type Object = gem::Object<VelaObject>;
    /// The page table entry flags of the mapping, for rewriting it when the buffer moves.
    type VaData = mmu::Access;
    /// The VM's page tables, reached from the buffer's side.
    type VmBoData = Arc<Space>;
    type SmContext<'ctx> = Step<'ctx>;

    fn sm_step_map<'op, 'ctx>(
        &mut self,
        op: OpMap<'op, Self>,
        step: &mut Step<'ctx>,
    ) -> Result<OpMapped<'op, Self>> {
        let va = step.va.take().ok_or(EINVAL)?;
        self.space.map(
            step.runs,
            step.in_vram,
            op.addr(),
            op.gem_offset(),
            op.length(),
            step.pte_flags,
        )?;
        Ok(op.insert(va, step.pte_flags))
    }

    fn sm_step_unmap<'op, 'ctx>(
        &mut self,
        op: OpUnmap<'op, Self>,
        step: &mut Step<'ctx>,
    ) -> Result<OpUnmapped<'op, Self>> {
        if !step.teardown {
            self.space.unmap(op.va().addr(), op.va().length())?;
        }
        let (done, _removed) = op.remove();
        Ok(done)
    }

    fn sm_step_remap<'op, 'ctx>(
        &mut self,
        _op: OpRemap<'op, Self>,
        _step: &mut Step<'ctx>,
    ) -> Result<OpRemapped<'op, Self>> {
        // VM_BIND refuses overlaps and VM_UNBIND takes whole mappings, so nothing is ever
        // split.
        Err(EINVAL)
    }
}

/// One bind of a buffer, as a move needs it.
struct BindAt {
    space: Arc<Space>,
    va: u64,
    size: u64,
    bo_offset: u64,
    pte_flags: mmu::Access,
}

/// Calls `f` on every mapping of `bo`, in every VM, under gpuvm's per-object gpuva lock.
/// `locked` is `bo`'s reservation lock, under which binds of it are made and removed, so the
/// walk sees them all.
fn for_each_bind(
    bo: &gem::Object<VelaObject>,
    locked: &ResvLocked<'_>,
    f: impl FnMut(&kernel::drm::gpuvm::GpuVa<VaSpace>),
) -> Result {
    if !core::ptr::eq(locked.resv(), bo.resv()) {
        return Err(EINVAL);
    }
    // SAFETY: Vela maps its buffers only in `GpuVm<VaSpace>`s (`Vm::new`).
    unsafe { GpuVm::<VaSpace>::for_each_va_of(bo, f) };
    Ok(())
}

/// Every bind of `bo`, in every VM; the list stays true while `locked` is held.
fn binds_of(bo: &gem::Object<VelaObject>, locked: &ResvLocked<'_>) -> Result<KVec<BindAt>> {
    let mut out = KVec::new();
    let mut res = Ok(());
    for_each_bind(bo, locked, |va| {
        if res.is_ok() {
            let b = BindAt {
                space: va.vm_bo().data().clone(),
                va: va.addr(),
                size: va.length(),
                bo_offset: va.gem_offset(),
                pte_flags: *va.data(),
            };
            res = out.push(b, GFP_KERNEL).map_err(Error::from);
        }
    })?;
    res.map(|()| out)
}

/// Removes every page table entry of the buffer, in every VM (the exporter is moving or
/// revoking it). The binds stay: the next job on a VM maps the buffer again.
///
/// Unmaps inside the walk rather than from a collected list: collecting allocates, and a
/// failed allocation must not leave entries pointing at memory the exporter takes back. The
/// page-table lock nests inside the gpuva lock the walk holds (`Documentation/driver.rst`,
/// lock order).
pub(crate) fn unmap_everywhere(bo: &gem::Object<VelaObject>, locked: &ResvLocked<'_>) {
    let walked = for_each_bind(bo, locked, |va| {
        best_effort(
            "unmapping an invalidated import",
            va.vm_bo().data().unmap(va.addr(), va.length()),
        );
    });
    best_effort("walking an invalidated import's binds", walked);
}

/// Points every bind of the buffer, in every VM, at its storage `runs`.
///
/// All or nothing, since the caller frees `runs` when this fails: the binds already moved
/// (and the one that failed) go back to `back`, the storage they had, or where that cannot be
/// had either, to nothing (a job touching them faults). No entry is left pointing at `runs`.
pub(crate) fn remap_everywhere(
    bo: &gem::Object<VelaObject>,
    locked: &ResvLocked<'_>,
    runs: &[(u64, u64)],
    in_vram: bool,
    back: Option<(&[(u64, u64)], bool)>,
) -> Result {
    let binds = binds_of(bo, locked)?;
    for (i, b) in binds.iter().enumerate() {
        // The old translations must not outlive the old place.
        let r = b
            .space
            .map(runs, in_vram, b.va, b.bo_offset, b.size, b.pte_flags)
            .and_then(|()| b.space.chip.invalidate(b.space.context));
        if let Err(e) = r {
            for b in binds.iter().take(i + 1) {
                let restored = back.is_some_and(|(old, old_in_vram)| {
                    b.space
                        .map(old, old_in_vram, b.va, b.bo_offset, b.size, b.pte_flags)
                        .is_ok()
                });
                if restored {
                    best_effort(
                        "invalidating a restored bind",
                        b.space.chip.invalidate(b.space.context),
                    );
                } else {
                    best_effort(
                        "unmapping a bind that could not move",
                        b.space.unmap(b.va, b.size),
                    );
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// The DMA ranges of an import's mapping, each a whole number of pages.
fn import_runs(
    attach: &DynamicAttachment<ImportState>,
    locked: &ResvLocked<'_>,
) -> Result<KVec<(u64, u64)>> {
    let sgt = attach.map(locked)?;
    let mut runs = KVec::with_capacity(sgt.iter().count(), GFP_KERNEL)?;
    for e in sgt.iter() {
        let (addr, len) = (e.dma_address(), e.dma_len());
        if addr % PAGE != 0 || len % PAGE != 0 {
            return Err(EINVAL);
        }
        runs.push((addr, len), GFP_KERNEL)?;
    }
    Ok(runs)
}

/// Where `bo`'s bytes are for the device now: (runs, whether they are VRAM offsets).
fn bo_runs(
    bo: &gem::Object<VelaObject>,
    locked: &ResvLocked<'_>,
) -> Result<(KVec<(u64, u64)>, bool)> {
    match &bo.backing {
        Backing::Local(local) => local.with(bo.resv(), locked, |st| st.store.runs())?,
        Backing::Import(attach) => Ok((import_runs(attach, locked)?, false)),
        Backing::Resv => Err(EINVAL),
    }
}

struct VmInner {
    /// The VM's mappings. Lock order: after the buffers' reservation locks, before the
    /// page tables' lock; no reservation lock is taken under it (gpuvm takes the VM's own
    /// to add a buffer, in `obtain`, and to free unused `drm_gpuvm_bo`s).
    gpuvm: UniqueRefGpuVm<VaSpace>,
    /// Queues created on this VM and not destroyed yet.
    queues: u32,
}

/// A GPU address space: its mappings are a `drm_gpuvm` whose steps write the page tables.
#[pin_data(PinnedDrop)]
pub(crate) struct Vm {
    space: Arc<Space>,
    pub(crate) context: ContextId,
    /// For what gpuvm does outside the VM's lock (`obtain`, `deferred_cleanup`).
    shared: ARef<GpuVm<VaSpace>>,
    #[pin]
    inner: Mutex<VmInner>,
}

/// VM_BIND's argument rules that need no object: access flags, alignment, and the range
/// inside the VM's user address space. Checked before any id is looked up.
pub(crate) fn check_bind_args(va: u64, bo_offset: u64, size: u64, flags: u32) -> Result {
    const ACCESS: u32 = uapi::DRM_VELA_BIND_READ | uapi::DRM_VELA_BIND_WRITE;
    if flags & !ACCESS != 0 || flags & uapi::DRM_VELA_BIND_READ == 0 {
        return Err(EINVAL);
    }
    if size == 0 || va % PAGE != 0 || bo_offset % PAGE != 0 || size % PAGE != 0 {
        return Err(EINVAL);
    }
    let va_end = va.checked_add(size).ok_or(EINVAL)?;
    bo_offset.checked_add(size).ok_or(EINVAL)?;
    if va_end > mmu::KERNEL_VA_BASE {
        return Err(EINVAL);
    }
    Ok(())
}

/// The rest of VM_BIND's rules, once the buffer is known.
pub(crate) fn check_bind(va: u64, bo_offset: u64, size: u64, flags: u32, bo_size: u64) -> Result {
    check_bind_args(va, bo_offset, size, flags)?;
    if bo_offset + size > bo_size {
        return Err(EINVAL);
    }
    Ok(())
}

impl Vm {
    pub(crate) fn new(dev: &VelaDevice) -> Result<Arc<Self>> {
        let chip = dev.chip.clone();
        let pt = PageTables::new(&chip)?;
        let context = chip.take_context(pt.root_dpa())?;
        let space: Arc<Space> = Arc::pin_init(
            pin_init!(Space { chip: dev.chip.clone(), context, pt <- new_mutex!(pt) }),
            GFP_KERNEL,
        )
        .inspect_err(|_| chip.put_context(context))?;
        // The VM's reservation object, which gpuvm needs to guard its list of the buffers
        // bound in it. Every buffer has its own, so to gpuvm every buffer is external.
        let r_obj = VelaObject::resv_object(dev)?;
        let gpuvm = GpuVm::new::<Error, _>(
            c"vela-vm",
            dev,
            &*r_obj,
            0..mmu::KERNEL_VA_BASE,
            0..0,
            VaSpace {
                space: space.clone(),
            },
        )?;
        let shared = ARef::from(&*gpuvm);
        Arc::pin_init(
            try_pin_init!(Self {
                space,
                context,
                shared,
                inner <- new_mutex!(VmInner { gpuvm, queues: 0 }),
            }),
            GFP_KERNEL,
        )
    }

    /// Maps `[bo_offset, bo_offset + size)` of `bo` at `va`.
    pub(crate) fn bind(
        &self,
        bo: ARef<gem::Object<VelaObject>>,
        va: u64,
        bo_offset: u64,
        size: u64,
        flags: u32,
    ) -> Result {
        check_bind(va, bo_offset, size, flags, u64::try_from(bo.size())?)?;
        if matches!(bo.backing, Backing::Resv) {
            return Err(EINVAL);
        }
        let mut pte_flags = mmu::READ;
        if flags & uapi::DRM_VELA_BIND_WRITE != 0 {
            pte_flags |= mmu::WRITE;
        }
        // Before any lock: it takes the VM's reservation lock.
        let vm_bo = self.shared.obtain(&bo, self.space.clone())?;
        let va_alloc = GpuVaAlloc::new(GFP_KERNEL)?;
        let res = (|| -> Result {
            // Under the buffer's reservation lock the buffer cannot move, and binds of it are
            // made and removed only under it: its PTEs and its list of mappings agree.
            let resv = bo.resv();
            let guard = resv.lock()?;
            let (runs, in_vram) = bo_runs(&bo, &guard)?;
            let mut inner = self.inner.lock();
            if inner.gpuvm.find_first(va, size).is_some() {
                return Err(EEXIST);
            }
            let mut step = Step {
                runs: &runs,
                in_vram,
                pte_flags,
                va: Some(va_alloc),
                teardown: false,
            };
            inner.gpuvm.sm_map(OpMapRequest {
                addr: va,
                range: size,
                gem_offset: bo_offset,
                vm_bo: &vm_bo,
                context: &mut step,
            })
        })();
        // A failed bind leaves an unused `drm_gpuvm_bo`; it goes here, with no lock held.
        drop(vm_bo);
        self.shared.deferred_cleanup();
        res
    }

    /// Removes the mapping that is exactly `[va, va + size)`.
    pub(crate) fn unbind(&self, va: u64, size: u64) -> Result {
        let bo: ARef<gem::Object<VelaObject>> = {
            let inner = self.inner.lock();
            ARef::from(inner.gpuvm.find(va, size).ok_or(ENOENT)?.obj())
        };
        let res = (|| -> Result {
            let _guard = bo.resv().lock()?;
            let mut inner = self.inner.lock();
            // Another unbind may have been first.
            match inner.gpuvm.find(va, size) {
                Some(m) if core::ptr::eq(m.obj(), &*bo) => {}
                _ => return Err(ENOENT),
            }
            let mut step = Step {
                runs: &[],
                in_vram: false,
                pte_flags: mmu::Access::NONE,
                va: None,
                teardown: false,
            };
            inner.gpuvm.sm_unmap(va, size, &mut step)
        })();
        // The mapping's reference to the buffer goes here, and then ours (`bo`), which may be
        // the last: both with no lock held.
        self.shared.deferred_cleanup();
        res
    }

    /// Before a job of this VM runs: maps again the imported buffers whose mappings the
    /// exporter invalidated (`ENODEV` if an exporter revoked one), and brings buffers that
    /// moved out of VRAM back when nothing keeps them out (best effort: if VRAM is short they
    /// stay where they are, which the device reaches just as well). Every bind of such a
    /// buffer, in every VM, follows.
    pub(crate) fn revalidate(&self, bos: &[ARef<gem::Object<VelaObject>>]) -> Result {
        for bo in bos {
            let resv = bo.resv();
            let guard = resv.lock()?;
            match &bo.backing {
                Backing::Import(attach) => {
                    if attach.is_mapped(&guard) {
                        continue;
                    }
                    let runs = match import_runs(attach, &guard) {
                        Ok(runs) => runs,
                        // Revoked for good (the exporter is gone): its PTEs stay unmapped, so
                        // a job that touches it faults and fails, and the VM's other work
                        // goes on.
                        Err(e) if e == ENODEV => continue,
                        Err(e) => return Err(e),
                    };
                    remap_everywhere(bo, &guard, &runs, false, None)?;
                }
                Backing::Local(_) => {
                    if super::placement::wants_vram(bo, &guard) {
                        // Best effort, as said above: a buffer that stays is reached as well.
                        let _ = super::placement::migrate(bo, &guard, true);
                    }
                }
                Backing::Resv => {}
            }
        }
        Ok(())
    }

    pub(crate) fn queue_count(&self) -> u32 {
        self.inner.lock().queues
    }

    /// Counts a user queue created on the VM (VM_DESTROY refuses a VM with queues).
    pub(crate) fn queue_added(&self) {
        self.inner.lock().queues += 1;
    }

    pub(crate) fn queue_removed(&self) {
        let mut inner = self.inner.lock();
        inner.queues = inner.queues.saturating_sub(1);
    }

    /// The buffers bound in the VM, each once: what a job on the VM may touch.
    pub(crate) fn bound_objects(&self) -> Result<KVec<ARef<gem::Object<VelaObject>>>> {
        let inner = self.inner.lock();
        let mut out: KVec<ARef<gem::Object<VelaObject>>> = KVec::new();
        let mut res = Ok(());
        inner.gpuvm.for_each_va(|m| {
            let obj = m.obj();
            if res.is_ok() && !out.iter().any(|o| core::ptr::eq(&**o, obj)) {
                res = out.push(ARef::from(obj), GFP_KERNEL).map_err(Error::from);
            }
        });
        res.map(|()| out)
    }
}

#[pinned_drop]
impl PinnedDrop for Vm {
    fn drop(self: Pin<&mut Self>) {
        // Every mapping goes, each under its buffer's reservation lock (so that a move of the
        // buffer, which rewrites its mappings, does not see it half gone). Every queue of the
        // VM is stopped by now (each holds a reference to it), so the PTEs can stay: the page
        // tables go with `space`.
        loop {
            let next = {
                let inner = self.inner.lock();
                inner
                    .gpuvm
                    .find_first(0, mmu::KERNEL_VA_BASE)
                    .map(|m| (ARef::from(m.obj()), m.addr(), m.length()))
            };
            let Some((bo, va, size)) = next else {
                break;
            };
            let unmapped = bo.resv().lock().and_then(|_guard| {
                let mut step = Step {
                    runs: &[],
                    in_vram: false,
                    pte_flags: mmu::Access::NONE,
                    va: None,
                    teardown: true,
                };
                self.inner.lock().gpuvm.sm_unmap(va, size, &mut step)
            });
            self.shared.deferred_cleanup();
            drop(bo);
            if unmapped.is_err() {
                break;
            }
        }
    }
}

#[kunit_tests(vela_vm)]
mod tests {
    use super::*;

    const R: u32 = uapi::DRM_VELA_BIND_READ;
    const RW: u32 = uapi::DRM_VELA_BIND_READ | uapi::DRM_VELA_BIND_WRITE;

    #[test]
    fn bind_rules() {
        assert_eq!(check_bind(0x10_0000, 0, 0x1000, RW, 0x1000), Ok(()));
        assert_eq!(check_bind(0, 0x1000, 0x1000, R, 0x2000), Ok(()));
        // Alignment.
        assert_eq!(check_bind(0x10_0800, 0, 0x1000, RW, 0x1000), Err(EINVAL));
        assert_eq!(check_bind(0, 0x800, 0x1000, RW, 0x2000), Err(EINVAL));
        assert_eq!(check_bind(0, 0, 0x1800, RW, 0x2000), Err(EINVAL));
        // Sizes and ranges.
        assert_eq!(check_bind(0, 0, 0, RW, 0x1000), Err(EINVAL));
        assert_eq!(check_bind(0, 0x1000, 0x1000, RW, 0x1000), Err(EINVAL));
        assert_eq!(
            check_bind(u64::MAX & !0xfff, 0, 0x2000, RW, 0x2000),
            Err(EINVAL)
        );
        assert_eq!(
            check_bind_args(0, u64::MAX & !0xfff, 0x2000, RW),
            Err(EINVAL)
        );
        assert_eq!(
            check_bind(mmu::KERNEL_VA_BASE, 0, 0x1000, RW, 0x1000),
            Err(EINVAL)
        );
        // Access flags.
        assert_eq!(
            check_bind(0, 0, 0x1000, uapi::DRM_VELA_BIND_WRITE, 0x1000),
            Err(EINVAL)
        );
        assert_eq!(check_bind(0, 0, 0x1000, RW | 4, 0x1000), Err(EINVAL));
    }
}
