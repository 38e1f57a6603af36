// SPDX-License-Identifier: GPL-2.0

//! GPU virtual address spaces and the queues that run in them.
//!
//! A [`Vm`] owns one MMU context and its page tables, and a `drm_gpuvm` of what is bound
//! into it, which is all a job on one of its queues can reach (`Documentation/driver.rst`,
//! GPU address spaces). A [`UserQueue`] holds a hardware queue while it has one.

use kernel::{
    drm::gem::{self, BaseObject},
    new_mutex,
    prelude::*,
    sync::{aref::ARef, atomic::Relaxed, Arc, Mutex},
    time::{Delta, Instant, Monotonic},
};

use super::driver::{VelaDevice, VelaDriver};
use super::gem::{self as vgem, Backing, ImportState, VelaObject};
use super::sched::{Kick, Next, Sched};
use crate::{
    hw::{
        mmu::{self, PageTables},
        queue::{self, JobFence, SLOT},
        vram::PAGE,
        Core,
    },
    uapi,
};
use kernel::{
    dma_buf::DynamicAttachment,
    dma_fence::{Fence, FenceContext, FenceWaiter, RawFence},
    dma_resv::{ResvLocked, Usage},
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
    core: Arc<Core>,
    context: u32,
    /// The innermost lock: taken under the VM's and the buffers' reservation locks.
    #[pin]
    pt: Mutex<PageTables>,
}

#[pinned_drop]
impl PinnedDrop for Space {
    fn drop(self: Pin<&mut Self>) {
        // The device stops using the context before its page tables (`pt`) are freed.
        self.core.put_context(self.context);
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
        pte_flags: u64,
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
                if let Err(e) = pt.map(&self.core, va + mapped, addr + skip, n, pte_flags, in_vram)
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
            let _ = pt.unmap(&self.core, va, mapped);
            let _ = self.core.invalidate(self.context);
        }
        res
    }

    /// Removes the entries of `[va, va + size)`, and the cached translations of them.
    fn unmap(&self, va: u64, size: u64) -> Result {
        let r = self.pt.lock().unmap(&self.core, va, size);
        // The device must not use a cached translation to the buffer once it is unbound.
        self.core.invalidate(self.context)?;
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
    pte_flags: u64,
    va: Option<GpuVaAlloc<VaSpace>>,
    /// The VM is going away: its page tables are freed with it, so unmaps skip them.
    teardown: bool,
}

impl DriverGpuVm for VaSpace {
    type Driver = VelaDriver;
    type Object = gem::Object<VelaObject>;
    /// The page table entry flags of the mapping, for rewriting it when the buffer moves.
    type VaData = u64;
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
    pte_flags: u64,
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
    let _ = for_each_bind(bo, locked, |va| {
        let _ = va.vm_bo().data().unmap(va.addr(), va.length());
    });
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
            .and_then(|()| b.space.core.invalidate(b.space.context));
        if let Err(e) = r {
            for b in binds.iter().take(i + 1) {
                let restored = back.is_some_and(|(old, old_in_vram)| {
                    b.space
                        .map(old, old_in_vram, b.va, b.bo_offset, b.size, b.pte_flags)
                        .is_ok()
                });
                if restored {
                    let _ = b.space.core.invalidate(b.space.context);
                } else {
                    let _ = b.space.unmap(b.va, b.size);
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
    pub(crate) context: u32,
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
        let core = dev.core.clone();
        let pt = PageTables::new(&core)?;
        let context = core.take_context(pt.root_dpa())?;
        let space: Arc<Space> = Arc::pin_init(
            pin_init!(Space { core: dev.core.clone(), context, pt <- new_mutex!(pt) }),
            GFP_KERNEL,
        )
        .inspect_err(|_| core.put_context(context))?;
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
                pte_flags: 0,
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
    fn revalidate(&self, bos: &[ARef<gem::Object<VelaObject>>]) -> Result {
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
                    if vgem::wants_vram(bo, &guard) {
                        let _ = vgem::migrate(bo, &guard, true);
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
                    pte_flags: 0,
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

/// A queue created by userspace: the jobs of one VM, in order, on whichever hardware queue it
/// holds at the time.
///
/// User queues share the device's few hardware queues. A queue takes one at a SUBMIT that
/// finds it without one: a free one, else one whose holder is idle (every job it gave the
/// hardware queue is done), which loses it; else the job waits in `pending` and the
/// scheduler ([`Sched`]) gives the queue a hardware queue when a holder yields one (after
/// [`TIMESLICE_MS`] while others want one) or goes idle; SUBMIT itself never waits for one.
/// A holder keeps its hardware queue while idle, so a busy queue does not pay for a switch
/// per job. Each hold is one *run* of the
/// hardware queue (its sequence numbers start at 1); the user queue's own numbers continue
/// across runs (`base`), and the outcome of the jobs of runs that ended (all done by then)
/// is kept here for WAIT.
#[pin_data(PinnedDrop)]
pub(crate) struct UserQueue {
    core: Arc<Core>,
    vm: Arc<Vm>,
    /// The device's scheduler, which runs jobs that wait in software.
    sched: Arc<Sched>,
    /// The timeline of the queue's job fences: their sequence numbers are the queue's.
    timeline: FenceContext,
    /// Lock order: before the hardware queue holders' table (`Core::with_holders`), which
    /// only try-locks another queue's lease; before the hardware queue's and the VM's locks,
    /// and before `pending`.
    #[pin]
    lease: Mutex<Lease>,
    /// Jobs waiting in software for their dependencies (or a hardware queue), in order.
    #[pin]
    pending: Mutex<KVec<Job>>,
}

/// A job waiting in software.
struct Job {
    seqno: u64,
    commands: KVec<[u8; SLOT]>,
    /// It runs once every one of these has signalled (with an error or not).
    deps: KVec<ARef<RawFence>>,
    fence: ARef<Fence<JobFence>>,
    /// When it was submitted: dependencies that take longer than `DEP_TIMEOUT_MS` fail it.
    since: Instant<Monotonic>,
    /// At the head of the queue: the callback that kicks the scheduler when the dependency
    /// it waits for signals.
    waiter: Option<Pin<KBox<FenceWaiter<Kick>>>>,
    /// At the head of a queue that waits for a hardware queue (or for its own to drain, to
    /// yield it): callbacks on the last job fence of every hardware queue.
    hw_wait: KVec<Pin<KBox<FenceWaiter<Kick>>>>,
}

/// A user queue's hold on a hardware queue, and its sequence numbers.
struct Lease {
    /// The hardware queue and the run of it that is this queue's.
    hw: Option<(u32, u64)>,
    /// The last sequence number handed out.
    last: u64,
    /// The last job written to a hardware queue (or failed before it got there): jobs after
    /// it wait in `pending`, and the next one to run is `on_hw + 1`.
    on_hw: u64,
    /// In the current run, user sequence number = `base` + the run's own.
    base: u64,
    /// Every job up to this one belongs to a run that ended, all of whose jobs are done.
    retired: u64,
    /// Failed jobs of ended runs (user sequence numbers, inclusive ranges), oldest first.
    failed: KVec<(u64, u64)>,
    /// When the current run started.
    since: Instant<Monotonic>,
    /// The queue just gave its hardware queue up for others: it lets them look first.
    yielded: bool,
    /// The queue has a job ready to run and no hardware queue (counted in
    /// `Core::hw_waiters`).
    wants_hw: bool,
}

/// How long a queue keeps its hardware queue while others want one, before it yields.
const TIMESLICE_MS: i64 = 20;
/// Failed ranges kept per user queue for WAIT; older ones are forgotten.
const RETIRED_FAILURES_KEPT: usize = 16;

impl UserQueue {
    pub(crate) fn new(core: Arc<Core>, vm: Arc<Vm>, sched: Arc<Sched>) -> Result<Arc<Self>> {
        core.add_user_queue()?;
        let (c, v) = (core.clone(), vm.clone());
        let q = Arc::pin_init(
            pin_init!(Self {
                core: c,
                vm: v,
                sched,
                timeline: FenceContext::new(),
                pending <- new_mutex!(KVec::new()),
                lease <- new_mutex!(Lease {
                    hw: None,
                    last: 0,
                    on_hw: 0,
                    base: 0,
                    retired: 0,
                    failed: KVec::new(),
                    since: Instant::now(),
                    yielded: false,
                    wants_hw: false,
                }),
            }),
            GFP_KERNEL,
        );
        match q {
            Ok(q) => {
                vm.inner.lock().queues += 1;
                Ok(q)
            }
            Err(e) => {
                core.remove_user_queue();
                Err(e)
            }
        }
    }

    /// The address the holders' table knows this queue by.
    fn addr(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// Starts a run of hardware queue `index` (just taken for this queue) on the VM.
    fn start_run(&self, lease: &mut Lease, index: u32) -> Result<(u32, u64)> {
        let core = &*self.core;
        // Not under the VM's lock: a queue's lock is taken before reservation locks (jobs add
        // their fences), which are taken before VM locks (invalidations). The queue's fence slot
        // is not mapped into the VM: SIGNAL writes it by DPA, out of every job's reach.
        let started = core
            .queue(index)
            .and_then(|hw| hw.start(core, self.vm.context));
        match started {
            Ok(run) => {
                lease.hw = Some((index, run));
                lease.base = lease.on_hw;
                lease.since = Instant::now();
                self.want_hw(lease, false);
                Ok((index, run))
            }
            Err(e) => {
                core.put_queue(index);
                Err(e)
            }
        }
    }

    /// Ends this queue's run of hardware queue `index`: stops it (waiting a bounded time for
    /// jobs, then failing what is left) and takes the run's failures into the lease. The caller
    /// passes the hardware queue on or frees it.
    fn end_run(&self, lease: &mut Lease, index: u32, run: u64) {
        let core = &*self.core;
        if let Ok(hw) = core.queue(index) {
            hw.stop(core);
            for (lo, hi) in hw.failures(run).iter() {
                let base = lease.base;
                record_failure(lease, base + lo, base + hi);
            }
        }
        lease.hw = None;
        lease.retired = lease.on_hw;
    }

    /// A hardware queue whose holder is idle, taken over for this queue; its holder's run
    /// ends. Holders busy in a SUBMIT (lease locked) are skipped.
    fn take_idle(&self) -> Option<u32> {
        let me = self.addr();
        let core = &*self.core;
        core.with_holders(|h| {
            for i in 0..core.queues.len() {
                let holder = h.get(i);
                if holder == 0 || holder == me {
                    continue;
                }
                // SAFETY: Holders clear their entry under this lock (`put_queue`, in drop or
                // when they end a run for good) before they are freed, so while the lock is
                // held every listed holder is a live `UserQueue`.
                let other = unsafe { &*(holder as *const UserQueue) };
                let Some(mut ol) = other.lease.try_lock() else {
                    continue;
                };
                let Some((oi, orun)) = ol.hw else {
                    continue;
                };
                let idle = core
                    .queue(oi)
                    .map(|q| q.run_is_idle(core, orun))
                    .unwrap_or(false);
                if oi as usize != i || !idle {
                    continue;
                }
                other.end_run(&mut ol, oi, orun);
                h.set(i, me);
                return Some(oi);
            }
            None
        })
    }

    /// Counts the queue in `Core::hw_waiters` while it has a job ready and no hardware
    /// queue.
    fn want_hw(&self, lease: &mut Lease, on: bool) {
        if lease.wants_hw != on {
            lease.wants_hw = on;
            if on {
                self.core.hw_waiters.add(1, Relaxed);
            } else {
                self.core.hw_waiters.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Time slicing: whether the queue has held its hardware queue for [`TIMESLICE_MS`]
    /// while other queues want one. It then writes no more jobs to it: they wait in
    /// software, its ring drains, and the scheduler ends its run (`run_ready`), so that a
    /// queue whose ring never drains cannot starve the others.
    fn should_yield(&self, lease: &Lease) -> bool {
        lease.hw.is_some()
            && self.core.hw_waiters.load(Relaxed) > 0
            && lease.since.elapsed() >= Delta::from_millis(TIMESLICE_MS)
    }

    /// Queues a job; returns its sequence number and fence. Its fence goes into the
    /// reservation object of every buffer bound in the VM before the job can run, so BO_WAIT
    /// (and anyone sharing a buffer) sees it.
    ///
    /// A job whose dependencies (`deps`, and the other timelines' fences in those reservation
    /// objects: implicit sync) have all signalled, on a queue with nothing waiting in
    /// software and a hardware queue to be had at once, goes straight to it, and any error
    /// is SUBMIT's. Otherwise it waits in software and the scheduler (`Sched`) runs it once
    /// it can; errors from then on fail its fence. SUBMIT never waits for the device.
    pub(crate) fn submit(
        self: &Arc<Self>,
        commands: KVec<[u8; SLOT]>,
        mut deps: KVec<ARef<RawFence>>,
    ) -> Result<(u64, ARef<Fence<JobFence>>)> {
        let bos = self.vm.bound_objects()?;
        self.implicit_deps(&bos, &mut deps)?;
        deps.retain(|f| !f.is_signaled());
        let mut lease = self.lease.lock();
        let seqno = lease.last + 1;
        let fence = Fence::new(&self.timeline, seqno, JobFence)?;
        if deps.is_empty() && self.pending.lock().is_empty() && !self.should_yield(&lease) {
            self.vm.revalidate(&bos)?;
            if let Some(index) = self.try_hold(&mut lease) {
                publish(&bos, &fence)
                    .and_then(|()| {
                        self.core
                            .queue(index)?
                            .submit(&self.core, &commands, Some(fence.clone()))
                    })
                    .inspect_err(|&e| fence.signal_error(e))?;
                lease.last = seqno;
                lease.on_hw = seqno;
                drop(lease);
                // The job times out even if nobody waits for it.
                crate::hw::watchdog::arm(&self.core);
                return Ok((seqno, fence));
            }
        }
        // Room first, so nothing fails once the fence is published.
        self.pending.lock().reserve(1, GFP_KERNEL)?;
        publish(&bos, &fence).inspect_err(|&e| fence.signal_error(e))?;
        let job = Job {
            seqno,
            commands,
            deps,
            fence: fence.clone(),
            since: Instant::now(),
            waiter: None,
            hw_wait: KVec::new(),
        };
        self.pending.lock().push(job, GFP_KERNEL)?;
        lease.last = seqno;
        drop(lease);
        self.sched.kick(self);
        Ok((seqno, fence))
    }

    /// Implicit synchronization: the job may touch every buffer bound in its VM, so it runs
    /// after the work other timelines (other queues, other devices, importers and exporters
    /// sharing the buffer) put in their reservation objects, reads and writes alike. This
    /// queue's own jobs are skipped: they run in order anyway.
    fn implicit_deps(
        &self,
        bos: &[ARef<gem::Object<VelaObject>>],
        deps: &mut KVec<ARef<RawFence>>,
    ) -> Result {
        let own = self.timeline.id();
        for bo in bos {
            let resv = bo.resv();
            let guard = resv.lock()?;
            for f in resv.fences(&guard, Usage::Read)? {
                if f.context() != own && !f.is_signaled() {
                    deps.push(f, GFP_KERNEL)?;
                }
            }
        }
        Ok(())
    }

    /// Scheduler step: writes the jobs at the head of `pending` whose dependencies have
    /// signalled to a hardware queue, without waiting for one, and says what is left to do.
    pub(crate) fn run_ready(&self) -> Next {
        let mut lease = self.lease.lock();
        loop {
            let ready = {
                let mut pending = self.pending.lock();
                let Some(job) = pending.first_mut() else {
                    drop(pending);
                    self.want_hw(&mut lease, false);
                    return Next::Done;
                };
                let left_ms = DEP_TIMEOUT_MS - job.since.elapsed().as_millis();
                let ready = job.deps.iter().all(|f| f.is_signaled());
                if !ready && left_ms > 0 {
                    // To be told when the dependency it waits for signals.
                    if job.waiter.as_ref().is_none_or(|w| w.fence().is_signaled()) {
                        job.waiter = None;
                        // The last dependency may have signalled since `ready` was computed:
                        // no callback of this job is on it, so nothing would kick the
                        // scheduler for it before its deadline. Look again instead.
                        let Some(dep) = job.deps.iter().find(|f| !f.is_signaled()) else {
                            continue;
                        };
                        match FenceWaiter::new(dep, Kick(self.sched.clone())) {
                            Ok(w) => job.waiter = Some(w),
                            // It signalled meanwhile: look again.
                            Err(e) if e == ENOENT => continue,
                            Err(_) => return Next::Poll,
                        }
                    }
                    return Next::Deps(left_ms);
                }
                ready
            };
            if !ready {
                if !self.fail_first(&mut lease, ETIME) {
                    return Next::Poll;
                }
                continue;
            }
            if let (true, Some((i, run))) = (self.should_yield(&lease), lease.hw) {
                // Its turn is over: once its ring has drained, the hardware queue goes to
                // the others.
                if self
                    .core
                    .queue(i)
                    .is_ok_and(|q| q.run_is_idle(&self.core, run))
                {
                    self.end_run(&mut lease, i, run);
                    self.core.put_queue(i);
                    lease.yielded = true;
                    self.want_hw(&mut lease, true);
                    return Next::Poll;
                }
                return self.wait_for_hw();
            }
            if core::mem::take(&mut lease.yielded) {
                // The others look first.
                return Next::Poll;
            }
            let Ok(bos) = self.vm.bound_objects() else {
                return Next::Poll;
            };
            if self.vm.revalidate(&bos).is_err() {
                return Next::Poll;
            }
            let Some(index) = self.try_hold(&mut lease) else {
                self.want_hw(&mut lease, true);
                return self.wait_for_hw();
            };
            let Ok(hw) = self.core.queue(index) else {
                return Next::Poll;
            };
            let mut pending = self.pending.lock();
            let Some(job) = pending.first() else {
                return Next::Done;
            };
            match hw.submit(&self.core, &job.commands, Some(job.fence.clone())) {
                Ok(_) => {
                    lease.on_hw = job.seqno;
                    let _ = pending.remove(0);
                    drop(pending);
                    crate::hw::watchdog::arm(&self.core);
                }
                Err(e) if e == ENODEV => {
                    drop(pending);
                    let _ = self.fail_first(&mut lease, e);
                }
                // A full ring, say: the next step tries again.
                Err(_) => return Next::Poll,
            }
        }
    }

    /// The head job waits for a hardware queue to drain: a ring's last job fence signalling
    /// kicks the scheduler. Every hardware queue must be busy with a fenced job for that; a
    /// free or idle one (freed, or drained, since the caller looked) or one whose last job
    /// has no fence is looked at again at the next step instead.
    fn wait_for_hw(&self) -> Next {
        let core = &*self.core;
        let mut fences = KVec::new();
        for i in 0..core.queues.len() {
            let Some(f) = u32::try_from(i)
                .ok()
                .and_then(|i| core.queue(i).ok())
                .and_then(|q| q.last_fence(core))
            else {
                return Next::Poll;
            };
            if fences.push(f, GFP_KERNEL).is_err() {
                return Next::Poll;
            }
        }
        let mut waiters = KVec::new();
        for f in fences.iter() {
            match FenceWaiter::new(f, Kick(self.sched.clone())) {
                Ok(w) => {
                    if waiters.push(w, GFP_KERNEL).is_err() {
                        return Next::Poll;
                    }
                }
                // Drained meanwhile (or out of memory): the next step looks again.
                Err(_) => return Next::Poll,
            }
        }
        match self.pending.lock().first_mut() {
            Some(job) => {
                job.hw_wait = waiters;
                Next::Hw
            }
            None => Next::Done,
        }
    }

    /// Fails the first job waiting in software with `e`; its commands never run. Returns
    /// false if that has to wait for the next step.
    fn fail_first(&self, lease: &mut Lease, e: Error) -> bool {
        if let Some((i, _)) = lease.hw {
            // The run's numbering stays in step with the queue's: the failed job takes its
            // number in the run as an empty job (only the fence command).
            match self
                .core
                .queue(i)
                .and_then(|hw| hw.submit(&self.core, &[], None))
            {
                // A device that is gone: the numbering no longer matters.
                Err(err) if err != ENODEV => return false,
                _ => {}
            }
        }
        let Ok(job) = self.pending.lock().remove(0) else {
            return true;
        };
        job.fence.signal_error(e);
        lease.on_hw = job.seqno;
        record_failure(lease, job.seqno, job.seqno);
        true
    }

    /// Whether jobs wait in software.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    /// Fails every job waiting in software (the device is going away).
    pub(crate) fn fail_pending(&self, e: Error) {
        let mut lease = self.lease.lock();
        while !self.pending.lock().is_empty() {
            if !self.fail_first(&mut lease, e) {
                break;
            }
        }
        self.want_hw(&mut lease, false);
    }

    /// The hardware queue this queue runs on, taken now if one is free or idle; `None` if
    /// not (the scheduler tries again at its next step).
    fn try_hold(&self, lease: &mut Lease) -> Option<u32> {
        if let Some((i, _)) = lease.hw {
            return Some(i);
        }
        let i = self
            .core
            .take_queue(self.addr())
            .ok()
            .or_else(|| self.take_idle())?;
        self.start_run(lease, i).ok().map(|(i, _)| i)
    }

    /// Waits for job `seqno`: `EIO` if it failed, `ETIME` on timeout; `ENODEV` for a failed
    /// job once the device is lost or being removed (`Documentation/uapi.rst`).
    pub(crate) fn wait(&self, seqno: u64, timeout_ms: u64) -> Result {
        match self.wait_job(seqno, timeout_ms) {
            Err(e) if e == EIO && (self.core.is_lost() || !self.core.is_bound()) => Err(ENODEV),
            r => r,
        }
    }

    fn wait_job(&self, seqno: u64, timeout_ms: u64) -> Result {
        let (index, run, hw_seqno) = {
            let lease = self.lease.lock();
            if seqno == 0 || seqno > lease.last {
                return Err(EINVAL);
            }
            if seqno > lease.on_hw {
                // Still waiting in software: wait for its fence.
                let fence = self
                    .pending
                    .lock()
                    .iter()
                    .find(|j| j.seqno == seqno)
                    .map(|j| j.fence.clone());
                drop(lease);
                let fence = fence.ok_or(EINVAL)?;
                let raw = fence.as_raw_fence();
                raw.wait(
                    true,
                    kernel::time::msecs_to_jiffies(u32::try_from(timeout_ms).unwrap_or(u32::MAX)),
                )?;
                return match raw.error() {
                    Some(_) => Err(EIO),
                    None => Ok(()),
                };
            }
            if failed_in(&lease, seqno) {
                return Err(EIO);
            }
            match lease.hw {
                Some((i, run)) if seqno > lease.retired => (i, run, seqno - lease.base),
                _ => return retired_outcome(&lease, seqno),
            }
        };
        match self
            .core
            .queue(index)?
            .wait_in_run(&self.core, run, hw_seqno, timeout_ms)?
        {
            Some(r) => r,
            // The run ended while we waited (the queue was idle, so the job is done).
            None => retired_outcome(&self.lease.lock(), seqno),
        }
    }
}

/// Adds a job's fence to the reservation object of every buffer it may touch.
fn publish(bos: &[ARef<gem::Object<VelaObject>>], fence: &Fence<JobFence>) -> Result {
    for bo in bos {
        bo.resv().add_fence(fence.as_raw_fence(), Usage::Write)?;
    }
    Ok(())
}

/// Whether job `seqno` is in a failed range of the record.
fn failed_in(lease: &Lease, seqno: u64) -> bool {
    lease
        .failed
        .iter()
        .any(|&(lo, hi)| lo <= seqno && seqno <= hi)
}

/// Adds a failed range to the record, forgetting the oldest beyond the limit.
fn record_failure(lease: &mut Lease, lo: u64, hi: u64) {
    queue::record_failure(&mut lease.failed, RETIRED_FAILURES_KEPT, lo, hi);
}

/// The outcome of job `seqno`, which belongs to a run that ended.
fn retired_outcome(lease: &Lease, seqno: u64) -> Result {
    if failed_in(lease, seqno) {
        Err(EIO)
    } else {
        Ok(())
    }
}

/// How long a job may wait for its dependencies before it fails with `ETIME`.
const DEP_TIMEOUT_MS: i64 = 30_000;

#[pinned_drop]
impl PinnedDrop for UserQueue {
    fn drop(self: Pin<&mut Self>) {
        // Under the lease, so no one takes the hardware queue over meanwhile.
        let mut lease = self.lease.lock();
        if let Some((index, run)) = lease.hw {
            self.end_run(&mut lease, index, run);
            // Clears this queue's entry in the holders' table before it is freed.
            self.core.put_queue(index);
        }
        self.want_hw(&mut lease, false);
        drop(lease);
        self.vm.inner.lock().queues -= 1;
        self.core.remove_user_queue();
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

    #[test]
    fn failure_record() {
        let mut l = Lease {
            hw: None,
            last: 40,
            on_hw: 40,
            base: 0,
            retired: 40,
            failed: KVec::new(),
            since: Instant::now(),
            yielded: false,
            wants_hw: false,
        };
        record_failure(&mut l, 3, 5);
        record_failure(&mut l, 9, 9);
        assert!(failed_in(&l, 3) && failed_in(&l, 5) && failed_in(&l, 9));
        assert!(!failed_in(&l, 2) && !failed_in(&l, 6) && !failed_in(&l, 10));
        assert_eq!(retired_outcome(&l, 4), Err(EIO));
        assert_eq!(retired_outcome(&l, 8), Ok(()));
        // Beyond the ranges kept, the oldest merge: no failure is forgotten (a job between
        // two old failures may then read as failed, never a failed one as done).
        let kept = RETIRED_FAILURES_KEPT as u64;
        for k in 0..kept {
            record_failure(&mut l, 100 + 2 * k, 100 + 2 * k);
        }
        assert_eq!(l.failed.len(), RETIRED_FAILURES_KEPT);
        assert!(failed_in(&l, 3) && failed_in(&l, 9));
        assert!(failed_in(&l, 100) && failed_in(&l, 100 + 2 * (kept - 1)));
        assert!(!failed_in(&l, 2) && !failed_in(&l, 101 + 2 * (kept - 1)));
    }
}
