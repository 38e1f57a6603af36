// SPDX-License-Identifier: GPL-2.0

//! The core: everything that touches the hardware.
//!
//! Glossary:
//! - BAR0: the register window (trapped MMIO).
//! - BAR2: the VRAM aperture; device memory the CPU and peers reach directly.
//! - Queue: a ring of commands the device fetches after a doorbell write.
//! - Engine: what executes commands (copy/fill, compute).
//!
//! The frontends (accel, vgpu) reach the device only through [`Chip`]'s methods, as
//! `Documentation/driver.rst` (The core's API) describes: its fields are private to this
//! module, and it keeps no frontend object. What a frontend must do when the device resets,
//! is lost or goes, it does in its [`Frontend`] hooks.

pub(crate) mod command;
pub(crate) mod failures;
pub(crate) mod identity;
pub(crate) mod irq;
pub(crate) mod kqueue;
pub(crate) mod mmu;
pub(crate) mod p2p;
pub(crate) mod partition;
pub(crate) mod queue;
pub(crate) mod regs;
mod reset;
pub(crate) mod vram;
pub(crate) mod watchdog;

use kernel::{
    devres::Devres,
    io::{register::Array, Io},
    new_mutex, pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Release},
        Arc, Mutex,
    },
};

pub(crate) use identity::Identity;
pub(crate) use p2p::BusCache;
pub(crate) use regs::ContextId;

/// The most the CPU moves through BAR2 under one BAR guard. The guard is an RCU read-side
/// section: a 16 MiB buffer cleared by the CPU under one guard (when the copy engine could not
/// take it) kept a grace period waiting for over 20 s under TCG with the sanitizers, and the
/// soak's RCU stall detector fired.
const BAR2_CHUNK: usize = 64 << 10;

/// BAR numbers, as the hardware spec assigns them.
const BAR_REGS: u32 = 0;
const BAR_VRAM: u32 = 2;
const BAR_PARTITIONS: u32 = 4;

pub(crate) type Bar0 = pci::Bar<'static, { regs::BAR0_SIZE }>;
/// BAR2, all of VRAM; its size is only known at runtime.
pub(crate) type Bar2 = pci::Bar<'static, 0>;

/// One Vela device, as the frontends see it.
#[pin_data]
pub(crate) struct Chip {
    pdev: ARef<pci::Device>,
    /// Revoked when the device is unbound, so a frontend that outlives the binding (an open
    /// file, say) can no longer reach the hardware.
    bar0: Devres<Bar0>,
    identity: Identity,
    irq: irq::IrqState,
    vram: vram::Vram,
    /// CPU physical address of BAR2, where VRAM offset 0 appears.
    vram_phys: u64,
    /// The kernel's mapping of VRAM, for rings, fences and page tables.
    bar2: Devres<Bar2>,
    /// The partitions' register windows, on a device that can be partitioned.
    bar4: Option<Devres<partition::Bar4>>,
    /// The hardware queues.
    queues: KVec<Pin<KBox<queue::HwQueue>>>,
    /// Which hardware queues and MMU contexts are taken, one bit each.
    #[pin]
    owners: Mutex<Owners>,
    /// Serializes device resets.
    #[pin]
    recovery: Mutex<()>,
    /// True from probe until unbind begins; see [`Chip::with_bound_device`].
    #[pin]
    bound: Mutex<bool>,
    /// `bound`, readable without the lock: exporters check it on every peer's map, under the
    /// buffer's reservation lock, which also orders it against the revocation that follows a
    /// change (unbind and reset revoke every export under that lock after clearing it).
    bound_now: Atomic<bool>,
    /// True while a reset is in progress: peers get no new mappings (see [`Chip::recover`]).
    resetting: Atomic<bool>,
    /// The device stopped answering: its registers read all-ones (a dead device model, a
    /// surprise removal). Set once, under `bound`, by [`Chip::mark_lost`]; never cleared: a
    /// device that comes back is probed again as a new one.
    lost: Atomic<bool>,
    /// The frontends' hooks ([`Frontend`]), attached at the end of probe and detached at
    /// unbind ([`Chip::detach_frontends`]). They may hold references to the frontends.
    #[pin]
    frontends: Mutex<KVec<KBox<dyn Frontend>>>,
    /// BAR2 offered to peers for peer-to-peer DMA (`None` if the kernel cannot).
    p2p: Option<Devres<pci::P2pProvider>>,
    /// Times out jobs nobody waits for (see `watchdog.rs`).
    #[pin]
    watchdog: kernel::workqueue::DelayedWork<Chip>,
    /// Whether the watchdog may be armed; cleared for good at unbind.
    #[pin]
    watchdog_on: Mutex<bool>,
    /// The kernel's copies and clears on the copy engine (buffer moves, new buffers).
    #[pin]
    kq: kqueue::KernelQueue,
}

/// Reports the failure of a step that has no way back (undoing a half-done change, putting
/// hardware state back during a reset or teardown) instead of dropping it. A device that is
/// gone (`ENODEV`: its BARs are revoked) makes such a step moot and is not reported.
pub(crate) fn best_effort(what: &str, r: Result) {
    if let Err(e) = r {
        if e != ENODEV {
            pr_warn!("vela: {} failed: {:?}\n", what, e);
        }
    }
}

/// Points MMU context `c` at the page table root `root` and writes its control register:
/// when a context is taken, and again for every taken context after a reset.
fn program_context(bar: &Bar0, c: regs::ContextId, root: u64, control: regs::CTX_CONTROL) {
    bar.write(
        regs::CTX_PT_BASE_LO::at_context(c),
        regs::CTX_PT_BASE_LO::from_raw(root as u32),
    );
    bar.write(
        regs::CTX_PT_BASE_HI::at_context(c),
        regs::CTX_PT_BASE_HI::from_raw((root >> 32) as u32),
    );
    bar.write(regs::CTX_CONTROL::at_context(c), control);
}

/// What the core asks of a frontend when the device changes under it. Each hook runs with
/// the frontends' list locked: it must not attach or detach frontends.
pub(crate) trait Frontend: Send + Sync {
    /// Importers of the frontend's exports lose their mappings of the device's memory: a reset
    /// is about to run, or the device is lost or going. The core already refuses peers new
    /// mappings ([`Chip::serves_peers`]) when this is called.
    fn revoke_peers(&self);

    /// The device is lost or going: CPU mappings of its memory must go (a lost device's
    /// BARs may be handed to someone else).
    fn unmap_cpu(&self);

    /// A partition reported vectors to relay or a page to pin (from vector 0's thread). Every
    /// frontend is told of every partition; each acts on those it enabled. Must not sleep for
    /// long: pinning belongs in a work item.
    fn partition_event(&self, _event: &partition::Event) {}
}

/// Allocation bitmaps of shared hardware, and what a global reset must restore.
struct Owners {
    queues: u32,
    contexts: u32,
    /// Contexts reserved for partitions ([`Chip::reserve_context`]): taken, but never
    /// programmed by the core, a reset included.
    reserved_contexts: u32,
    /// Root page table DPA of each taken context.
    roots: [u64; regs::CONTEXTS],
    /// Taken partition slots, one bit each.
    partitions: u32,
    /// Each enabled partition's configuration: what a global reset must restore.
    partition_config: [Option<partition::Config>; regs::PARTITIONS],
    /// Partitions whose pending page request the frontends were told of.
    requests_told: u32,
    /// The queue the kernel's copies left enabled on their ring (`kqueue`), if any. It is
    /// free or the kernel's own; [`Chip::take_queue`] resets it before anyone else gets it.
    kernel_armed: Option<u32>,
    /// Counts global resets, which disable every queue: a queue the kernel armed before one
    /// is armed no longer.
    resets: u64,
}

impl Chip {
    /// Brings a newly bound device up: enables it, maps BAR0, checks what it says it is.
    pub(crate) fn probe(pdev: &pci::Device<kernel::device::Core<'_>>) -> Result<Arc<Self>> {
        pdev.enable_device_mem()?;
        pdev.set_master();

        let bar0 = pdev.iomap_region_sized::<{ regs::BAR0_SIZE }>(BAR_REGS, c"vela-regs")?;
        let vram_start = pdev.resource_start(BAR_VRAM)?;
        let raw = identity::RawIdentity::read(&bar0);
        let identity = Identity::check(raw, pdev.resource_len(BAR_VRAM)?).inspect_err(|e| {
            dev_err!(
                pdev,
                "not a usable Vela device (id {:#x} version {:#x}): {:?}\n",
                raw.id,
                raw.version,
                e
            );
        })?;

        // A scratch round trip proves that writes reach the device, not just reads.
        let probe_value = 0x5a5a_0000 | u32::from(pdev.device_id());
        bar0.write_reg(regs::SCRATCH::from_raw(probe_value));
        if bar0.read(regs::SCRATCH).into_raw() != probe_value {
            dev_err!(pdev, "BAR0 writes do not reach the device\n");
            return Err(EIO);
        }

        dev_info!(
            pdev,
            "Vela v{}.{} serial {}: {} MiB VRAM at {:#x}, {} queues, {} engines, caps {:#x}\n",
            identity.major,
            identity.minor,
            identity.serial,
            identity.vram_size >> 20,
            vram_start,
            identity.queues,
            identity.engines,
            identity.caps
        );

        let bar2 = pdev.iomap_region(BAR_VRAM, c"vela-vram")?.into_devres()?;
        // A device that cannot map its windows still serves the host; it offers no vGPUs.
        let bar4 = if identity.partitions > 0 {
            pdev.iomap_region_sized::<{ regs::PARTITIONS * partition::WINDOW_SIZE }>(
                BAR_PARTITIONS,
                c"vela-partitions",
            )
            .and_then(|b| b.into_devres())
            .inspect_err(|e| dev_warn!(pdev, "no partitions: BAR4 not mapped: {:?}\n", e))
            .ok()
        } else {
            None
        };
        let p2p = pci::P2pProvider::new(pdev, BAR_VRAM)
            .inspect_err(|e| dev_warn!(pdev, "no peer-to-peer DMA from VRAM: {:?}\n", e))
            .ok();
        let mut queues = KVec::with_capacity(usize::from(identity.queues), GFP_KERNEL)?;
        for i in 0..u32::from(identity.queues) {
            queues.push(
                KBox::pin_init(queue::HwQueue::new(i), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        Arc::pin_init(
            try_pin_init!(Self {
                pdev: pdev.into(),
                bar0: bar0.into_devres()?,
                identity,
                irq: irq::IrqState::new(),
                vram: vram::Vram::new(identity.vram_size)?,
                vram_phys: vram_start,
                bar2,
                bar4,
                queues,
                // Context 0 is the kernel's: translation off.
                owners <- new_mutex!(Owners {
                    queues: 0,
                    contexts: 1,
                    reserved_contexts: 0,
                    roots: [0; regs::CONTEXTS],
                    partitions: 0,
                    partition_config: [None; regs::PARTITIONS],
                    requests_told: 0,
                    kernel_armed: None,
                    resets: 0,
                }),
                recovery <- new_mutex!(()),
                bound <- new_mutex!(true),
                bound_now: Atomic::new(true),
                resetting: Atomic::new(false),
                lost: Atomic::new(false),
                frontends <- new_mutex!(KVec::new()),
                p2p,
                watchdog <- kernel::new_delayed_work!("vela-watchdog"),
                kq <- kqueue::KernelQueue::new(),
                watchdog_on <- new_mutex!(true),
            }),
            GFP_KERNEL,
        )
    }
}

impl Chip {
    /// The PCI function, for what the frontends register on it and for messages.
    pub(crate) fn pdev(&self) -> &pci::Device {
        &self.pdev
    }

    /// What the device says it is.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The VRAM allocator.
    pub(crate) fn vram(&self) -> &vram::Vram {
        &self.vram
    }

    /// The CPU physical address of VRAM offset `offset` (through BAR2), for CPU mappings.
    pub(crate) fn vram_phys(&self, offset: u64) -> Result<u64> {
        if offset >= self.vram.size() {
            return Err(EINVAL);
        }
        self.vram_phys.checked_add(offset).ok_or(EINVAL)
    }

    /// The kernel's copies and clears on the copy engine.
    pub(crate) fn kernel_queue(&self) -> &kqueue::KernelQueue {
        &self.kq
    }

    /// Runs `f` with proof that the device is bound, or fails with `ENODEV` once unbind began.
    /// Unlike the BAR guards, `f` may sleep (allocate, map DMA).
    pub(crate) fn with_bound_device<R>(
        &self,
        f: impl FnOnce(&kernel::device::Device<kernel::device::Bound>) -> Result<R>,
    ) -> Result<R> {
        let bound = self.bound.lock();
        if !*bound || self.is_lost() {
            return Err(ENODEV);
        }
        // SAFETY: `bound` is cleared under this lock by `unbinding()`, which the driver's unbind
        // callback calls before the driver core releases the device's resources and marks it
        // unbound. It reads true under the lock, so the device stays bound until the lock is
        // dropped at the end of this function, after `f` returns.
        let dev = unsafe { self.pdev.as_ref().as_bound() };
        f(dev)
    }

    /// Whether unbind has not begun yet.
    pub(crate) fn is_bound(&self) -> bool {
        self.bound_now.load(Acquire)
    }

    /// Whether peers may map the device's memory: bound, not lost, and no reset in progress.
    pub(crate) fn serves_peers(&self) -> bool {
        self.is_bound() && !self.is_lost() && !self.resetting.load(Acquire)
    }

    /// Whether the device was found lost ([`Chip::mark_lost`]).
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Acquire)
    }

    /// Reads the identity register and, if it reads all-ones (no device answers: PCIe returns
    /// all-ones for a read nobody completes, and so does QEMU for a vfio-user device whose
    /// server is gone), marks the device lost. Returns whether it is lost. May sleep: not
    /// from a hard interrupt handler.
    pub(crate) fn check_lost(&self) -> bool {
        if self.is_lost() {
            return true;
        }
        let id = self.with_bar0(|bar| Ok(bar.read(regs::ID).into_raw()));
        match id {
            Ok(u32::MAX) => {
                self.mark_lost();
                true
            }
            _ => false,
        }
    }

    /// The device is gone for good: fails every pending job with `ENODEV` (and every later
    /// SUBMIT), revokes every export (peers' mappings of its VRAM, and no new ones) and has the
    /// frontend zap every CPU mapping of its buffers (faults then raise SIGBUS). Unbind, which
    /// follows when the device is removed, then finds nothing to wait for. Idempotent.
    pub(crate) fn mark_lost(&self) {
        {
            // Under `bound`: a CPU fault or a peer's map that checked the flag under this lock
            // has finished, so the zap and the revocation below see what it mapped.
            let _bound = self.bound.lock();
            if self.lost.xchg(true, Release) {
                return;
            }
        }
        dev_err!(
            self.pdev,
            "the device stopped answering (registers read all-ones): lost; its jobs fail with ENODEV\n"
        );
        for q in self.queues.iter() {
            q.fail_lost(self);
        }
        for f in self.frontends.lock().iter() {
            f.revoke_peers();
            f.unmap_cpu();
        }
    }

    /// Attaches a frontend's hooks; the last step of probe, so that a failed probe leaves no
    /// reference cycle behind (the hooks may hold the frontend, which holds the core).
    pub(crate) fn attach_frontend(&self, frontend: KBox<dyn Frontend>) -> Result {
        self.frontends.lock().push(frontend, GFP_KERNEL)?;
        Ok(())
    }

    /// The first step of unbind, before the frontends let go: the device takes no new work and
    /// serves peers no new mappings, its pending jobs fail with `ENODEV` (as a lost device's
    /// do), and the watchdog stops. A device removed because it stopped answering (its model
    /// died, then a hot-remove) is marked lost first, so that its jobs fail at once rather
    /// than time out one by one.
    pub(crate) fn quiesce(self: &Arc<Self>) {
        self.check_lost();
        *self.bound.lock() = false;
        self.bound_now.store(false, Release);
        for q in self.queues.iter() {
            q.device_gone(self);
        }
        watchdog::stop(self);
    }

    /// The last step of unbind, after the frontends let go: peers lose every mapping of VRAM
    /// (nothing may reach BAR2 once the device's resources go), interrupts go off, CPU
    /// mappings go, and the hooks, which may hold the frontends, are dropped.
    pub(crate) fn shutdown(&self, pdev: &pci::Device<kernel::device::Core<'_>>) {
        let frontends = core::mem::take(&mut *self.frontends.lock());
        for f in frontends.iter() {
            f.revoke_peers();
        }
        self.disable_partitions();
        self.disarm_kernel_queue();
        self.disable_interrupts(pdev.as_ref());
        for f in frontends.iter() {
            f.unmap_cpu();
        }
    }

    /// Runs `f` on BAR0 unless the device is gone. `f` runs under an RCU read lock: no sleeping.
    pub(crate) fn with_bar0<R>(&self, f: impl FnOnce(&Bar0) -> Result<R>) -> Result<R> {
        let bar = self.bar0.try_access().ok_or(ENODEV)?;
        f(&bar)
    }

    pub(crate) fn vram_write64(&self, offset: u64, value: u64) -> Result {
        let bar = self.bar2.try_access().ok_or(ENODEV)?;
        bar.try_write64(value, usize::try_from(offset)?)
    }

    pub(crate) fn vram_read64(&self, offset: u64) -> Result<u64> {
        let bar = self.bar2.try_access().ok_or(ENODEV)?;
        bar.try_read64(usize::try_from(offset)?)
    }

    /// Writes `bytes` (a multiple of 8 long) at `offset`, [`BAR2_CHUNK`] per BAR guard.
    pub(crate) fn vram_write_bytes(&self, offset: u64, bytes: &[u8]) -> Result {
        for (c, chunk) in bytes.chunks(BAR2_CHUNK).enumerate() {
            let bar = self.bar2.try_access().ok_or(ENODEV)?;
            let base = usize::try_from(offset)? + c * BAR2_CHUNK;
            for (i, word) in chunk.chunks_exact(8).enumerate() {
                let mut w = [0u8; 8];
                w.copy_from_slice(word);
                bar.try_write64(u64::from_le_bytes(w), base + 8 * i)?;
            }
        }
        Ok(())
    }

    /// Reads `out.len()` bytes (a multiple of 8) at `offset`, [`BAR2_CHUNK`] per BAR guard.
    pub(crate) fn vram_read_bytes(&self, offset: u64, out: &mut [u8]) -> Result {
        for (c, chunk) in out.chunks_mut(BAR2_CHUNK).enumerate() {
            let bar = self.bar2.try_access().ok_or(ENODEV)?;
            let base = usize::try_from(offset)? + c * BAR2_CHUNK;
            for (i, word) in chunk.chunks_exact_mut(8).enumerate() {
                word.copy_from_slice(&bar.try_read64(base + 8 * i)?.to_le_bytes());
            }
        }
        Ok(())
    }

    /// Writes `value` to every 8 bytes of `len` (a multiple of 8) at `offset`, [`BAR2_CHUNK`]
    /// per BAR guard.
    pub(crate) fn vram_fill(&self, offset: u64, len: u64, value: u64) -> Result {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        let mut at = offset;
        while at < end {
            let n = (end - at).min(BAR2_CHUNK as u64);
            let bar = self.bar2.try_access().ok_or(ENODEV)?;
            let base = usize::try_from(at)?;
            for i in 0..usize::try_from(n / 8)? {
                bar.try_write64(value, base + 8 * i)?;
            }
            at += n;
        }
        Ok(())
    }

    /// Takes a free hardware queue; `EBUSY` if none is free. Given back with `put_queue`.
    /// Who holds it is the caller's business: the core only hands queues out, and never one
    /// that still runs the kernel's ring with translation off: a queue the kernel's copies
    /// left armed is taken last, and reset before it is handed out.
    pub(crate) fn take_queue(&self) -> Result<u32> {
        let mut o = self.owners.lock();
        let free = |o: &Owners, i: usize| o.queues & (1 << i) == 0;
        let i = (0..self.queues.len())
            .find(|&i| free(&o, i) && o.kernel_armed != Some(i as u32))
            .or_else(|| (0..self.queues.len()).find(|&i| free(&o, i)))
            .ok_or(EBUSY)?;
        let i = u32::try_from(i)?;
        if o.kernel_armed == Some(i) {
            let q = regs::QueueId::new(i)?;
            self.with_bar0(|bar| {
                bar.write(
                    regs::Q_CONTROL::at_queue(q),
                    regs::Q_CONTROL::zeroed().with_reset(true),
                );
                Ok(())
            })?;
            o.kernel_armed = None;
        }
        o.queues |= 1 << i;
        Ok(i)
    }

    /// Resets the queue the kernel's copies left armed, if any: no queue of the device runs
    /// the kernel's ring once the driver lets it go (the next driver would not know it).
    fn disarm_kernel_queue(&self) {
        let mut o = self.owners.lock();
        // A copy running now must not arm its queue again when it hands it back.
        o.resets = o.resets.wrapping_add(1);
        if let Some(q) = o
            .kernel_armed
            .take()
            .and_then(|i| regs::QueueId::new(i).ok())
        {
            best_effort(
                "resetting the kernel queue",
                self.with_bar0(|bar| {
                    bar.write(
                        regs::Q_CONTROL::at_queue(q),
                        regs::Q_CONTROL::zeroed().with_reset(true),
                    );
                    Ok(())
                }),
            );
        }
    }

    /// Takes a free hardware queue for the kernel's copies (`kqueue`): the one they left
    /// armed if it is free (the `bool` says so; it is still programmed for the kernel's
    /// ring, as they left it), else another. The `u64` is the reset count to hand back to
    /// [`Chip::put_kernel_queue`].
    pub(crate) fn take_kernel_queue(&self) -> Result<(u32, bool, u64)> {
        let mut o = self.owners.lock();
        if let Some(i) = o.kernel_armed {
            if o.queues & (1 << i) == 0 {
                o.queues |= 1 << i;
                return Ok((i, true, o.resets));
            }
        }
        let i = (0..self.queues.len())
            .find(|&i| o.queues & (1 << i) == 0)
            .ok_or(EBUSY)?;
        o.queues |= 1 << i;
        Ok((u32::try_from(i)?, false, o.resets))
    }

    /// Gives back a queue from [`Chip::take_kernel_queue`]: left enabled and idle on the
    /// kernel's ring (`armed`), or reset. An armed queue stays armed only if no global reset
    /// ran since it was taken (`resets`).
    pub(crate) fn put_kernel_queue(&self, index: u32, armed: bool, resets: u64) {
        let mut o = self.owners.lock();
        o.queues &= !(1 << index);
        if armed && o.resets == resets {
            o.kernel_armed = Some(index);
        } else if o.kernel_armed == Some(index) {
            o.kernel_armed = None;
        }
    }

    /// How many hardware queues the device has.
    pub(crate) fn queue_count(&self) -> usize {
        self.queues.len()
    }

    pub(crate) fn queue(&self, index: u32) -> Result<&queue::HwQueue> {
        self.queues.get(index as usize).map(|q| &**q).ok_or(EINVAL)
    }

    pub(crate) fn put_queue(&self, index: u32) {
        self.owners.lock().queues &= !(1 << index);
    }

    /// Takes a free MMU context and points it at `root_dpa` with translation on.
    pub(crate) fn take_context(&self, root_dpa: u64) -> Result<ContextId> {
        let mut o = self.owners.lock();
        let c = regs::ContextId::all()
            .find(|&c| c != regs::ContextId::KERNEL && o.contexts & c.bit() == 0)
            .ok_or(EBUSY)?;
        self.with_bar0(|bar| {
            program_context(
                bar,
                c,
                root_dpa,
                regs::CTX_CONTROL::zeroed()
                    .with_enable(true)
                    .with_invalidate(true),
            );
            Ok(())
        })?;
        o.contexts |= c.bit();
        o.roots[c.index()] = root_dpa;
        Ok(c)
    }

    /// Turns the context off and frees it. Its queues must be stopped.
    pub(crate) fn put_context(&self, c: ContextId) {
        // Under the lock, like every write of a context's registers: `recover` programs the
        // contexts it finds taken, and must not point one at a root that was freed meanwhile.
        let mut o = self.owners.lock();
        best_effort(
            "turning a context off",
            self.with_bar0(|bar| {
                bar.write(
                    regs::CTX_CONTROL::at_context(c),
                    regs::CTX_CONTROL::zeroed().with_invalidate(true),
                );
                Ok(())
            }),
        );
        o.contexts &= !c.bit();
        o.reserved_contexts &= !c.bit();
    }

    /// How many hardware queues nobody has taken.
    pub(crate) fn free_queue_count(&self) -> usize {
        let o = self.owners.lock();
        (0..self.queues.len())
            .filter(|&i| o.queues & (1 << i) == 0)
            .count()
    }

    /// How many MMU contexts nobody has taken (context 0, the kernel's, is never free).
    pub(crate) fn free_context_count(&self) -> usize {
        let o = self.owners.lock();
        regs::ContextId::all()
            .filter(|&c| c != regs::ContextId::KERNEL && o.contexts & c.bit() == 0)
            .count()
    }

    /// Takes a free MMU context for a partition (a vGPU): it stays off, and the core never
    /// programs it, a reset included; the partition's owner does. `EBUSY` if none is free.
    /// Given back with `put_context`.
    pub(crate) fn reserve_context(&self) -> Result<ContextId> {
        let mut o = self.owners.lock();
        let c = regs::ContextId::all()
            .find(|&c| c != regs::ContextId::KERNEL && o.contexts & c.bit() == 0)
            .ok_or(EBUSY)?;
        o.contexts |= c.bit();
        o.reserved_contexts |= c.bit();
        o.roots[c.index()] = 0;
        Ok(c)
    }

    /// Reserves a contiguous VRAM range of `size` bytes (a power of two, at least a page),
    /// aligned to its size, for a partition: returns its offset and the blocks, which give it
    /// back when dropped. `ENOSPC` if no such range is free.
    pub(crate) fn reserve_vram_range(&self, size: u64) -> Result<(u64, vram::VramBlocks)> {
        if !size.is_power_of_two() || size < vram::PAGE {
            return Err(EINVAL);
        }
        // A contiguous power-of-two allocation is one buddy block of that order, which the
        // buddy allocator places at a multiple of its size.
        let blocks = self.vram.alloc(size, true);
        let blocks = blocks.map_err(|e| if e == ENOMEM { ENOSPC } else { e })?;
        let (offset, one) = {
            let mut runs = vram::runs(&blocks);
            let (offset, len) = runs.next().ok_or(ENOSPC)?;
            (offset, runs.next().is_none() && len == size)
        };
        if !one || offset % size != 0 {
            return Err(ENOSPC);
        }
        Ok((offset, blocks))
    }

    /// Zeroes `len` bytes of VRAM at `offset` (both multiples of 8): with the copy engine's
    /// FILL on the kernel queue, which clears hundreds of MiB in milliseconds without holding
    /// a CPU, or, when the engine cannot take it (no queue free, a reset), with the CPU through
    /// the kernel's BAR2 mapping.
    pub(crate) fn scrub_vram(&self, offset: u64, len: u64) -> Result {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if offset % 8 != 0 || len % 8 != 0 || end > self.vram.size() {
            return Err(EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        if self
            .kq
            .clear(self, &[kqueue::Span::vram(offset, len)])
            .is_ok()
        {
            return Ok(());
        }
        self.vram_fill(offset, len, 0)
    }

    /// Drops the context's cached translations (after an unmap, before the memory is reused).
    pub(crate) fn invalidate(&self, c: ContextId) -> Result {
        self.with_bar0(|bar| {
            bar.write(
                regs::CTX_CONTROL::at_context(c),
                regs::CTX_CONTROL::zeroed()
                    .with_enable(true)
                    .with_invalidate(true),
            );
            Ok(())
        })
    }
}

impl Chip {
    /// Reads the event counters (`Documentation/hardware/registers.rst`, Counters).
    pub(crate) fn counters(&self) -> Result<[u64; regs::COUNTERS]> {
        self.with_bar0(|bar| {
            let mut out = [0u64; regs::COUNTERS];
            for (n, v) in out.iter_mut().enumerate() {
                // LO first: the read latches the 64-bit value the HI read then returns.
                let lo = bar.read(regs::COUNTER_LO::at(n)).into_raw();
                let hi = bar.read(regs::COUNTER_HI::at(n)).into_raw();
                *v = (u64::from(hi) << 32) | u64::from(lo);
            }
            Ok(out)
        })
    }
}
