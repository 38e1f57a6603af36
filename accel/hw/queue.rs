// SPDX-License-Identifier: GPL-2.0

//! Hardware queues (`Documentation/hardware/queues.rst`): a ring of 64-byte commands in VRAM
//! that the device consumes, and the fence slot its completions are reported in.
//!
//! Every job ends with a SIGNAL command carrying the INTERRUPT flag that writes the job's
//! sequence number to the fence slot; the queue's MSI-X vector then wakes the waiters. SIGNAL
//! reaches the slot by DPA (`Q_FENCE_BASE`), so the slot is mapped in no context and no user
//! command can forge a completion. A queue error or an MMU
//! fault fails every job pending on the queue and resets it.

use kernel::{
    dma_fence::{Fence, FenceOps, RawFence},
    io::Io,
    new_condvar, new_mutex,
    num::Bounded,
    prelude::*,
    sync::{aref::ARef, CondVar, Mutex},
    time::{msecs_to_jiffies, Delta, Instant, Jiffies, Monotonic},
};

use super::{
    best_effort,
    command::{IntoSlot, SignalCommand},
    failures::Failures,
    mmu::DPA_VRAM,
    regs::{self, ContextId, QueueId},
    vram::{self, VramBlocks, PAGE},
    Chip,
};

/// Size of a command slot.
pub(crate) use super::command::SLOT;
/// 4096 slots: 256 KiB of VRAM per active queue, room for several maximal jobs.
const LOG2_SLOTS: u32 = 12;
const SLOTS: u32 = 1 << LOG2_SLOTS;
/// How long a submitter waits for ring space before giving up with EBUSY.
const RING_FULL_TIMEOUT_MS: u32 = 5000;

/// A queue with pending jobs whose completion count has not moved for this long is hung.
pub(crate) const JOB_TIMEOUT_MS: i64 = 2000;
/// How often a waiter looks at the fence itself: a dropped interrupt costs at most this.
const POLL_MS: u32 = 50;
/// A waiter first spins this long on the fence: short jobs finish sooner than an interrupt,
/// a thread wakeup and a reschedule take.
const SPIN_US: i64 = 300;

/// The fence of one job, for sync objects.
pub(crate) struct JobFence;

impl FenceOps for JobFence {
    const DRIVER_NAME: &'static CStr = c"vela";
    const TIMELINE_NAME: &'static CStr = c"vela-queue";
}

struct Active {
    /// Fences of pending jobs that have one (its user queue's), by the run's sequence
    /// number, oldest first.
    fences: KVec<(u64, ARef<Fence<JobFence>>)>,
    context: ContextId,
    _ring: VramBlocks,
    ring_offset: u64,
    _fence: VramBlocks,
    fence_offset: u64,
    /// Next slot to write.
    tail: u32,
    /// The device's read position as last seen; it only moves forward, so free space computed
    /// from it is never overstated, and `Q_HEAD` (a trapped register) is read only when the
    /// ring looks full.
    head_seen: u32,
}

pub(crate) struct QueueState {
    active: Option<Active>,
    /// Counts the queue's runs (`start`s): a user queue holding the queue knows which run is
    /// its own, and a waiter sees when the run it waits in is over.
    run: u64,
    /// Sequence number of the last job submitted.
    submitted: u64,
    /// Every job up to this one is finished, well or not.
    completed: u64,
    /// Jobs that failed.
    failed: Failures,
    /// When `completed` last moved, or the queue went from idle to busy.
    progress: Instant<Monotonic>,
    /// Bumped whenever the ring's contents stop being what the device was working through:
    /// a start, a stop, a reset of the queue. A ring position read under one epoch means
    /// nothing under another (see `restart`).
    epoch: u64,
    /// The device is lost ([`Chip::mark_lost`]) or being unbound: failed jobs fail with
    /// `ENODEV`, not `EIO`.
    lost: bool,
}

/// How [`HwQueue::end_pending`] leaves a queue whose pending jobs it failed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// After an error or a fault: reset and enabled again, empty.
    Restart,
    /// Unbind: reset if it had work, and jobs failing from now on fail with `ENODEV`.
    Gone,
    /// The device does not answer: registers untouched, `ENODEV` from now on.
    Lost,
}

/// What the watchdog found on a queue.
pub(crate) enum Poll {
    /// Every job submitted is done.
    Idle,
    Busy,
    /// Jobs pending and no progress for [`JOB_TIMEOUT_MS`].
    Hung,
}

/// What a waiter found.
enum Waited {
    Done(Result),
    /// The run the job belonged to is over (the queue was stopped or started again).
    Retired,
    /// No progress for [`JOB_TIMEOUT_MS`]: the caller resets the device.
    Hung,
}

/// What a queue is programmed with: a ring in VRAM of 2^`log2_slots` slots, a fence slot in
/// VRAM (offsets, not DPAs) and a context.
pub(crate) struct Setup {
    pub(crate) ring: u64,
    pub(crate) log2_slots: Bounded<u32, 5>,
    pub(crate) fence: u64,
    pub(crate) context: ContextId,
}

/// Points hardware queue `q` at `setup` and enables it (after a queue reset when `reset`);
/// a non-zero `tail` rings the doorbell for commands already in the ring. The one place queue
/// registers are programmed, for user queues' runs and the kernel's copies alike.
pub(crate) fn program(core: &Chip, q: QueueId, setup: &Setup, reset: bool, tail: u32) -> Result {
    let ring_dpa = DPA_VRAM | setup.ring;
    let fence_dpa = DPA_VRAM | setup.fence;
    core.with_bar0(|bar| {
        if reset {
            bar.write(
                regs::Q_CONTROL::at_queue(q),
                regs::Q_CONTROL::zeroed().with_reset(true),
            );
        }
        bar.write(
            regs::Q_RING_BASE_LO::at_queue(q),
            regs::Q_RING_BASE_LO::from_raw(ring_dpa as u32),
        );
        bar.write(
            regs::Q_RING_BASE_HI::at_queue(q),
            regs::Q_RING_BASE_HI::from_raw((ring_dpa >> 32) as u32),
        );
        bar.write(
            regs::Q_RING_SIZE::at_queue(q),
            regs::Q_RING_SIZE::zeroed().with_log2_slots(setup.log2_slots),
        );
        bar.write(
            regs::Q_CONTEXT::at_queue(q),
            regs::Q_CONTEXT::zeroed().with_context(setup.context),
        );
        bar.write(
            regs::Q_FENCE_BASE_LO::at_queue(q),
            regs::Q_FENCE_BASE_LO::from_raw(fence_dpa as u32),
        );
        bar.write(
            regs::Q_FENCE_BASE_HI::at_queue(q),
            regs::Q_FENCE_BASE_HI::from_raw((fence_dpa >> 32) as u32),
        );
        bar.write(
            regs::Q_CONTROL::at_queue(q),
            regs::Q_CONTROL::zeroed().with_enable(true),
        );
        if tail > 0 {
            bar.write(
                regs::Q_DOORBELL::at_queue(q),
                regs::Q_DOORBELL::zeroed().try_with_tail(tail)?,
            );
        }
        Ok(())
    })
}

/// One hardware queue.
#[pin_data]
pub(crate) struct HwQueue {
    pub(crate) index: u32,
    /// The queue's register block.
    id: QueueId,
    #[pin]
    state: Mutex<QueueState>,
    #[pin]
    done: CondVar,
}

impl HwQueue {
    /// Queue `index`; `EINVAL` if BAR0 has no register block for it.
    pub(crate) fn new(index: u32) -> impl PinInit<Self, Error> {
        let id = QueueId::new(index);
        try_pin_init!(Self {
            index,
            id: id?,
            state <- new_mutex!(QueueState {
                active: None,
                run: 0,
                submitted: 0,
                completed: 0,
                failed: Failures::new(),
                progress: Instant::now(),
                epoch: 0,
                lost: false,
            }),
            done <- new_condvar!(),
        }? Error)
    }

    /// The queue's register block.
    pub(crate) fn id(&self) -> QueueId {
        self.id
    }

    /// Points the queue at its ring, fence slot and context and enables it (after a queue reset
    /// when `reset`); a non-zero `tail` rings the doorbell for commands already in the ring.
    fn program(
        &self,
        core: &Chip,
        ring: u64,
        fence: u64,
        context: ContextId,
        reset: bool,
        tail: u32,
    ) -> Result {
        let setup = Setup {
            ring,
            log2_slots: Bounded::<u32, 5>::new::<LOG2_SLOTS>(),
            fence,
            context,
        };
        program(core, self.id, &setup, reset, tail)
    }

    /// Starts the queue on `context`, with a ring and a fence slot of its own. Both are kernel
    /// VRAM that no context maps: the device reaches them by DPA only.
    pub(crate) fn start(&self, core: &Chip, context: ContextId) -> Result<u64> {
        if core.is_lost() {
            return Err(ENODEV);
        }
        let fence = core.vram.alloc(PAGE, true)?;
        let fence_offset = vram::runs(&fence).next().map(|(o, _)| o).ok_or(ENOMEM)?;
        core.vram_fill(fence_offset, PAGE, 0)?;
        let ring = core.vram.alloc(u64::from(SLOTS) * SLOT as u64, true)?;
        let ring_offset = vram::runs(&ring).next().map(|(o, _)| o).ok_or(ENOMEM)?;
        let mut st = self.state.lock();
        if st.active.is_some() {
            return Err(EBUSY);
        }
        self.program(core, ring_offset, fence_offset, context, true, 0)?;
        st.active = Some(Active {
            fences: KVec::new(),
            context,
            _ring: ring,
            ring_offset,
            _fence: fence,
            fence_offset,
            tail: 0,
            head_seen: 0,
        });
        st.submitted = 0;
        st.completed = 0;
        st.failed.clear();
        st.run += 1;
        st.epoch += 1;
        Ok(st.run)
    }

    /// The fence of the last job written to the ring, while it has not signalled: it signals
    /// when the ring drains, unless more is written meanwhile. `None` if the queue is idle or
    /// not running, or its last job has no fence (a failed job's placeholder).
    pub(crate) fn last_fence(&self, core: &Chip) -> Option<ARef<RawFence>> {
        let mut st = self.state.lock();
        Self::read_fence(core, &mut st);
        let (submitted, completed) = (st.submitted, st.completed);
        let a = st.active.as_ref()?;
        match a.fences.last() {
            Some((seqno, f)) if *seqno == submitted && completed < submitted => {
                Some(f.as_raw_fence().into())
            }
            _ => None,
        }
    }

    /// Whether run `run` is the queue's current one and every job it was given is done.
    pub(crate) fn run_is_idle(&self, core: &Chip, run: u64) -> bool {
        let mut st = self.state.lock();
        Self::read_fence(core, &mut st);
        st.active.is_some() && st.run == run && st.completed >= st.submitted
    }

    /// The failed job ranges of run `run` (its own sequence numbers), if it is current.
    pub(crate) fn failures(&self, run: u64) -> Failures {
        let st = self.state.lock();
        if st.run == run {
            st.failed
        } else {
            Failures::new()
        }
    }

    /// Queues a job of `commands` (already checked) and returns its sequence number in this
    /// run. `fence` (the job's, on its user queue's timeline) signals when the job is done,
    /// with `EIO` if it failed.
    pub(crate) fn submit(
        &self,
        core: &Chip,
        commands: &[[u8; SLOT]],
        fence: Option<ARef<Fence<JobFence>>>,
    ) -> Result<u64> {
        let needed = u32::try_from(commands.len() + 1)?;
        if needed >= SLOTS {
            return Err(EINVAL);
        }
        if core.is_lost() || !core.is_bound() {
            return Err(ENODEV);
        }
        let mut st = self.state.lock();
        let deadline = msecs_to_jiffies(RING_FULL_TIMEOUT_MS);
        let mut waited: Jiffies = 0;
        let mut fresh = false;
        loop {
            let active = st.active.as_mut().ok_or(ENODEV)?;
            if fresh {
                active.head_seen = core.with_bar0(|bar| {
                    Ok(u32::from(bar.read(regs::Q_HEAD::at_queue(self.id)).slot()))
                })?;
            }
            let used = active.tail.wrapping_sub(active.head_seen) % SLOTS;
            if SLOTS - 1 - used >= needed {
                break;
            }
            if !fresh {
                fresh = true;
                continue;
            }
            if waited >= deadline {
                return Err(EBUSY);
            }
            // The ring drains as jobs complete; each completion interrupt wakes us.
            let slice = msecs_to_jiffies(10);
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
                self.done.wait_interruptible_timeout(&mut st, slice)
            {
                return Err(ERESTARTSYS);
            }
            waited += slice;
        }

        let seqno = st.submitted + 1;
        let active = st.active.as_mut().ok_or(ENODEV)?;
        // Room for the fence is made before the job is written, so nothing can fail after the
        // doorbell.
        if fence.is_some() {
            active.fences.reserve(1, GFP_KERNEL)?;
        }
        let mut tail = active.tail;
        for c in commands {
            core.vram_write_bytes(active.ring_offset + u64::from(tail) * SLOT as u64, c)?;
            tail = (tail + 1) % SLOTS;
        }
        let fence_cmd = SignalCommand::new(seqno, true).into_slot();
        core.vram_write_bytes(
            active.ring_offset + u64::from(tail) * SLOT as u64,
            &fence_cmd,
        )?;
        tail = (tail + 1) % SLOTS;
        active.tail = tail;
        // A read back of BAR2 orders the ring writes before the doorbell (queues.rst); unlike
        // a BAR0 read it does not trap.
        core.vram_read64(active.ring_offset)?;
        core.with_bar0(|bar| {
            // `tail` is a slot, below `SLOTS` (the remainder shows the compiler it fits the
            // field).
            bar.write(
                regs::Q_DOORBELL::at_queue(self.id),
                regs::Q_DOORBELL::zeroed().with_tail(Bounded::from_expr(tail % SLOTS)),
            );
            Ok(())
        })?;
        if st.completed == st.submitted {
            // The hang clock starts when the queue gets work, not when it last had some.
            st.progress = Instant::now();
        }
        st.submitted = seqno;
        if let (Some(f), Some(a)) = (fence, st.active.as_mut()) {
            // Cannot fail: the slot was reserved above.
            let _ = a.fences.push((seqno, f), GFP_ATOMIC);
        }
        Ok(seqno)
    }

    /// The MMU context the queue runs on, while it is active.
    pub(crate) fn context(&self) -> Option<ContextId> {
        self.state.lock().active.as_ref().map(|a| a.context)
    }

    /// Reads the fence into `st`. A corrupt fence value must not complete jobs that were never
    /// submitted, so it is clamped.
    fn read_fence(core: &Chip, st: &mut QueueState) {
        if let Some(a) = st.active.as_ref() {
            if let Ok(done) = core.vram_read64(a.fence_offset) {
                let done = done.min(st.submitted);
                if done > st.completed {
                    st.completed = done;
                    st.progress = Instant::now();
                }
            }
        }
        Self::signal_fences(st);
    }

    /// Signals the dma_fences of every finished job: with `EIO` for the failed ones, `ENODEV`
    /// once the device is lost.
    fn signal_fences(st: &mut QueueState) {
        let (completed, failed) = (st.completed, &st.failed);
        let errno = if st.lost { ENODEV } else { EIO };
        let Some(a) = st.active.as_mut() else { return };
        let done = a.fences.iter().take_while(|(s, _)| *s <= completed).count();
        for _ in 0..done {
            let Ok((seqno, f)) = a.fences.remove(0) else {
                break;
            };
            if failed.contains(seqno) {
                f.signal_error(errno);
            } else {
                f.signal();
            }
        }
    }

    /// Reads the fence (signalling the fences of finished jobs, waking waiters) and says
    /// whether jobs are pending and whether the queue is hung.
    pub(crate) fn poll(&self, core: &Chip) -> Poll {
        let mut st = self.state.lock();
        Self::read_fence(core, &mut st);
        let r = if st.completed >= st.submitted {
            Poll::Idle
        } else if st.progress.elapsed() > Delta::from_millis(JOB_TIMEOUT_MS) {
            Poll::Hung
        } else {
            Poll::Busy
        };
        drop(st);
        self.done.notify_all();
        r
    }

    /// Called from the queue's interrupt thread: reads the fence and wakes waiters.
    pub(crate) fn complete(&self, core: &Chip) {
        let mut st = self.state.lock();
        Self::read_fence(core, &mut st);
        drop(st);
        self.done.notify_all();
    }

    /// The queue stopped on an error or a fault: fail what is pending and restart it empty.
    pub(crate) fn fail_pending(&self, core: &Chip) {
        self.end_pending(core, Ending::Restart);
    }

    /// The device is going (unbind begins): the queue's pending jobs are aborted (a queue
    /// reset, after which the device writes nothing for them) and fail with `ENODEV`, as do
    /// jobs that fail from now on. Nothing would complete them: the device is being removed,
    /// or unbound with no one left to take its interrupts.
    pub(crate) fn device_gone(&self, core: &Chip) {
        self.end_pending(core, Ending::Gone);
    }

    /// The device is lost ([`Chip::mark_lost`]): every pending job fails with `ENODEV` and
    /// nothing touches the registers. The ring stays as it is until the queue is stopped.
    pub(crate) fn fail_lost(&self, core: &Chip) {
        self.end_pending(core, Ending::Lost);
    }

    /// Fails every job submitted and not completed, and signals their fences; what happens to
    /// the queue itself is `how`'s.
    fn end_pending(&self, core: &Chip, how: Ending) {
        let mut st = self.state.lock();
        let pending = st.completed < st.submitted;
        if how != Ending::Restart {
            st.lost = true;
        }
        if pending {
            let (lo, hi) = (st.completed + 1, st.submitted);
            st.failed.record(lo, hi);
            st.completed = st.submitted;
        }
        // A reset makes the device write nothing more for the jobs just failed. Best effort:
        // a device whose BAR is gone writes nothing anyway.
        let reset = match how {
            Ending::Restart => true,
            Ending::Gone => pending,
            Ending::Lost => false,
        };
        if reset {
            best_effort(
                "resetting a queue whose jobs failed",
                core.with_bar0(|bar| {
                    bar.write(
                        regs::Q_CONTROL::at_queue(self.id),
                        regs::Q_CONTROL::zeroed().with_reset(true),
                    );
                    if how == Ending::Restart {
                        bar.write(
                            regs::Q_CONTROL::at_queue(self.id),
                            regs::Q_CONTROL::zeroed().with_enable(true),
                        );
                    }
                    Ok(())
                }),
            );
            if let Some(a) = st.active.as_mut() {
                a.tail = 0;
                a.head_seen = 0;
            }
            st.epoch += 1;
        }
        Self::signal_fences(&mut st);
        drop(st);
        self.done.notify_all();
    }

    /// Waits for job `seqno`: Ok when it completed, EIO when it failed, ETIME on timeout. A
    /// queue that makes no progress for [`JOB_TIMEOUT_MS`] is declared hung and the device is
    /// reset ([`Chip::recover`]), which fails this queue's pending jobs.
    pub(crate) fn wait(&self, core: &Chip, seqno: u64, timeout_ms: u64) -> Result {
        let run = self.state.lock().run;
        match self.wait_in_run(core, run, seqno, timeout_ms)? {
            Some(r) => r,
            // Stopped under the waiter: `stop` failed whatever had not finished.
            None => Err(EIO),
        }
    }

    /// Like [`HwQueue::wait`], for job `seqno` of run `run`; `None` if that run is over,
    /// which happens only to an idle queue (see `UserQueue`), whose user then knows the
    /// outcome.
    pub(crate) fn wait_in_run(
        &self,
        core: &Chip,
        run: u64,
        seqno: u64,
        timeout_ms: u64,
    ) -> Result<Option<Result>> {
        let start = Instant::<Monotonic>::now();
        loop {
            match self.wait_step(core, run, seqno, timeout_ms, start)? {
                Waited::Done(r) => return Ok(Some(r)),
                Waited::Retired => return Ok(None),
                // A device that stopped answering is not reset: it is lost, which fails
                // this queue's jobs, and the next step returns.
                Waited::Hung => {
                    if core.check_lost() || !core.is_bound() {
                        // Nothing will reset it: fail what is pending.
                        self.device_gone(core);
                    } else {
                        core.recover(self.index);
                    }
                }
            }
        }
    }

    fn wait_step(
        &self,
        core: &Chip,
        run: u64,
        seqno: u64,
        timeout_ms: u64,
        start: Instant<Monotonic>,
    ) -> Result<Waited> {
        let mut st = self.state.lock();
        if st.run != run {
            return Ok(Waited::Retired);
        }
        if seqno == 0 || seqno > st.submitted {
            return Err(EINVAL);
        }
        let budget = Delta::from_millis(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
        let spin_until = Delta::from_micros(SPIN_US).min(budget);
        while start.elapsed() < spin_until && st.completed < seqno {
            Self::read_fence(core, &mut st);
            core::hint::spin_loop();
        }
        loop {
            // The lock was dropped while waiting: the queue may have started another run.
            if st.run != run {
                return Ok(Waited::Retired);
            }
            // Look at the fence ourselves too: an interrupt may have been lost.
            Self::read_fence(core, &mut st);
            if st.completed >= seqno {
                let failed = st.failed.contains(seqno);
                let errno = if st.lost { ENODEV } else { EIO };
                return Ok(Waited::Done(if failed { Err(errno) } else { Ok(()) }));
            }
            if st.active.is_none() {
                return Ok(Waited::Retired);
            }
            if st.progress.elapsed() > Delta::from_millis(JOB_TIMEOUT_MS) {
                return Ok(Waited::Hung);
            }
            let elapsed = start.elapsed();
            if elapsed >= budget {
                return Ok(Waited::Done(Err(ETIME)));
            }
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } = self
                .done
                .wait_interruptible_timeout(&mut st, msecs_to_jiffies(POLL_MS))
            {
                return Err(ERESTARTSYS);
            }
        }
    }

    /// Before a global reset: where the device stopped reading this queue's ring, and the
    /// epoch of the ring that position is in.
    pub(crate) fn head(&self, core: &Chip) -> (u32, u64) {
        let st = self.state.lock();
        let head = core
            .with_bar0(|bar| Ok(u32::from(bar.read(regs::Q_HEAD::at_queue(self.id)).slot())))
            .unwrap_or(0);
        (head, st.epoch)
    }

    /// After a global reset: programs the queue again. A `guilty` queue's pending jobs fail; an
    /// innocent queue's pending commands, from `head` on, move to the start of the ring and
    /// run again, so its jobs complete as if nothing happened.
    ///
    /// `head` is where the device stopped, read before the reset, with the epoch it was read
    /// in. If the queue was stopped, started for another holder or reset since, that position
    /// is in a ring that is no more: replaying from it would run slots this run never wrote
    /// (another holder's old commands, on this holder's context). Then, or without a `head`,
    /// the pending jobs fail instead.
    pub(crate) fn restart(&self, core: &Chip, head: Option<(u32, u64)>, guilty: bool) {
        let mut st = self.state.lock();
        Self::read_fence(core, &mut st);
        let Some(active) = st.active.as_ref() else {
            return;
        };
        let (ring, fence, context, tail) = (
            active.ring_offset,
            active.fence_offset,
            active.context,
            active.tail,
        );
        let head = head.and_then(|(h, epoch)| (epoch == st.epoch && h < SLOTS).then_some(h));
        let pending = head.map_or(0, |h| tail.wrapping_sub(h) % SLOTS);
        let mut new_tail = 0;
        let replay = head.filter(|_| !guilty && st.completed < st.submitted && pending > 0);
        if let Some(head) = replay {
            // Copy through a buffer: the source and destination slots may overlap.
            let mut slots = KVec::<[u8; SLOT]>::new();
            let ok = (0..pending).all(|k| {
                let from = ring + u64::from((head + k) % SLOTS) * SLOT as u64;
                let mut c = [0u8; SLOT];
                let read = c.chunks_exact_mut(8).enumerate().all(|(w, chunk)| {
                    core.vram_read64(from + 8 * w as u64)
                        .map(|v| chunk.copy_from_slice(&v.to_le_bytes()))
                        .is_ok()
                });
                read && slots.push(c, GFP_KERNEL).is_ok()
            });
            if ok {
                for (k, c) in slots.iter().enumerate() {
                    best_effort(
                        "replaying a ring after a reset",
                        core.vram_write_bytes(ring + (k * SLOT) as u64, c),
                    );
                }
                new_tail = pending;
            }
        }
        if new_tail == 0 && st.completed < st.submitted {
            let (lo, hi) = (st.completed + 1, st.submitted);
            st.failed.record(lo, hi);
            st.completed = st.submitted;
        }
        if let Some(a) = st.active.as_mut() {
            a.tail = new_tail;
            a.head_seen = 0;
        }
        st.epoch += 1;
        Self::signal_fences(&mut st);
        st.progress = Instant::now();
        best_effort(
            "restarting a queue",
            self.program(core, ring, fence, context, false, new_tail),
        );
        drop(st);
        self.done.notify_all();
    }

    /// Stops the queue: waits up to a second for its jobs, then aborts whatever is left. The
    /// device writes nothing for an aborted queue once the reset write returns, so its VRAM can
    /// be freed afterwards.
    pub(crate) fn stop(&self, core: &Chip) {
        let last = self.state.lock().submitted;
        if last > 0 {
            // Whatever the outcome, what is left is aborted below.
            let _ = self.wait(core, last, 1000);
        }
        let mut st = self.state.lock();
        best_effort(
            "resetting a stopped queue",
            core.with_bar0(|bar| {
                bar.write(
                    regs::Q_CONTROL::at_queue(self.id),
                    regs::Q_CONTROL::zeroed().with_reset(true),
                );
                Ok(())
            }),
        );
        if st.completed < st.submitted {
            let (lo, hi) = (st.completed + 1, st.submitted);
            st.failed.record(lo, hi);
            st.completed = st.submitted;
        }
        // Jobs aborted by the stop fail their fences rather than leave them unsignalled.
        Self::signal_fences(&mut st);
        st.active = None;
        st.epoch += 1;
        drop(st);
        self.done.notify_all();
    }
}
