// SPDX-License-Identifier: GPL-2.0

//! User queues: the jobs of one VM, in order, on the hardware queues they take turns on.

use kernel::{
    dma_fence::{Fence, FenceContext, FenceWaiter, RawFence},
    dma_resv::Usage,
    drm::gem::{self, BaseObject},
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
    time::{Delta, Instant, Monotonic},
};

use super::gem::VelaObject;
use super::sched::{Kick, Next, Sched};
use super::vm::Vm;
use crate::hw::{
    failures::Failures,
    queue::{JobFence, SLOT},
    regs::MAX_QUEUES,
    Chip,
};

/// How many queues userspace may create on one device; they share the hardware queues.
pub(crate) const MAX_USER_QUEUES: u32 = 64;

/// Which user queue holds each hardware queue the accel frontend took, and how many user
/// queues want one. One per device.
#[pin_data]
pub(crate) struct HwHolders {
    #[pin]
    table: Mutex<HolderTable>,
    /// User queues with a job ready and no hardware queue: while there are any, holders give
    /// theirs up after a timeslice ([`TIMESLICE_MS`]).
    waiters: Atomic<u32>,
}

struct HolderTable {
    /// The holder of each hardware queue, by index. An entry owns a reference to the
    /// holder's state, so a listed holder is always live; the holder takes its entry out
    /// when its run ends for good ([`HwHolders::put`]).
    held: [Option<Arc<Queue>>; MAX_QUEUES],
    /// User queues that exist (see [`MAX_USER_QUEUES`]).
    user_queues: u32,
}

impl HwHolders {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                table <- new_mutex!(HolderTable {
                    held: [const { None }; MAX_QUEUES],
                    user_queues: 0,
                }),
                waiters: Atomic::new(0),
            }),
            GFP_KERNEL,
        )
    }

    /// Takes a free hardware queue for `holder`; `EBUSY` if none is free.
    fn take(&self, chip: &Chip, holder: &Arc<Queue>) -> Result<u32> {
        let mut table = self.table.lock();
        let i = chip.take_queue()?;
        match table.held.get_mut(i as usize) {
            Some(entry) => {
                *entry = Some(holder.clone());
                Ok(i)
            }
            None => {
                chip.put_queue(i);
                Err(EBUSY)
            }
        }
    }

    /// Gives hardware queue `i` back. The holder's reference goes after the lock: it may be
    /// the last one.
    fn put(&self, chip: &Chip, i: u32) {
        let previous = {
            let mut table = self.table.lock();
            chip.put_queue(i);
            table.held.get_mut(i as usize).and_then(Option::take)
        };
        drop(previous);
    }

    /// Counts a new user queue; `EBUSY` beyond [`MAX_USER_QUEUES`].
    fn add_user_queue(&self) -> Result {
        let mut table = self.table.lock();
        if table.user_queues >= MAX_USER_QUEUES {
            return Err(EBUSY);
        }
        table.user_queues += 1;
        Ok(())
    }

    fn remove_user_queue(&self) {
        let mut table = self.table.lock();
        table.user_queues = table.user_queues.saturating_sub(1);
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
///
/// Files and the scheduler hold a user queue; when the last of them lets go, the queue gives
/// its hardware queue back ([`UserQueue`]'s drop). The holders' table ([`HwHolders`]) keeps
/// only the queue's state ([`Queue`]), which it owns while listed.
pub(crate) struct UserQueue(Arc<Queue>);

/// A user queue's state: what the holders' table and the scheduler's steps work on.
#[pin_data]
pub(crate) struct Queue {
    chip: Arc<Chip>,
    /// The hardware queues' holders, shared by the device's user queues.
    holders: Arc<HwHolders>,
    vm: Arc<Vm>,
    /// The device's scheduler, which runs jobs that wait in software.
    sched: Arc<Sched>,
    /// The timeline of the queue's job fences: their sequence numbers are the queue's.
    timeline: FenceContext,
    /// Lock order: before the hardware queue holders' table ([`HwHolders`]), which only
    /// try-locks another queue's lease; before the hardware queue's and the VM's locks,
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
    /// Failed jobs of ended runs (user sequence numbers).
    failed: Failures,
    /// When the current run started.
    since: Instant<Monotonic>,
    /// The queue just gave its hardware queue up for others: it lets them look first.
    yielded: bool,
    /// The queue has a job ready to run and no hardware queue (counted in
    /// `HwHolders::waiters`).
    wants_hw: bool,
}

/// How long a queue keeps its hardware queue while others want one, before it yields.
const TIMESLICE_MS: i64 = 20;

impl UserQueue {
    pub(crate) fn new(
        chip: Arc<Chip>,
        holders: Arc<HwHolders>,
        vm: Arc<Vm>,
        sched: Arc<Sched>,
    ) -> Result<Arc<Self>> {
        holders.add_user_queue()?;
        let (h, v) = (holders.clone(), vm.clone());
        let made = Arc::pin_init(
            pin_init!(Queue {
                chip,
                holders: h,
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
                    failed: Failures::new(),
                    since: Instant::now(),
                    yielded: false,
                    wants_hw: false,
                }),
            }),
            GFP_KERNEL,
        )
        .and_then(|q| Ok(Arc::new(UserQueue(q), GFP_KERNEL)?));
        match made {
            Ok(q) => {
                vm.queue_added();
                Ok(q)
            }
            Err(e) => {
                holders.remove_user_queue();
                Err(e)
            }
        }
    }

    /// Queues a job; see [`Queue::submit`].
    pub(crate) fn submit(
        self: &Arc<Self>,
        commands: KVec<[u8; SLOT]>,
        deps: KVec<ARef<RawFence>>,
    ) -> Result<(u64, ARef<Fence<JobFence>>)> {
        let (seqno, fence, queued) = self.0.submit(commands, deps)?;
        if queued {
            self.0.sched.kick(self);
        }
        Ok((seqno, fence))
    }
}

impl core::ops::Deref for UserQueue {
    type Target = Arc<Queue>;

    fn deref(&self) -> &Arc<Queue> {
        &self.0
    }
}

impl Drop for UserQueue {
    fn drop(&mut self) {
        let q = &self.0;
        // Under the lease, so no one takes the hardware queue over meanwhile.
        let mut lease = q.lease.lock();
        if let Some((index, run)) = lease.hw {
            q.end_run(&mut lease, index, run);
            // Takes the state out of the holders' table: it goes with the last reference.
            q.holders.put(&q.chip, index);
        }
        q.want_hw(&mut lease, false);
        drop(lease);
        q.vm.queue_removed();
        q.holders.remove_user_queue();
    }
}

impl Queue {
    /// Starts a run of hardware queue `index` (just taken for this queue) on the VM.
    fn start_run(&self, lease: &mut Lease, index: u32) -> Result<(u32, u64)> {
        let chip = &*self.chip;
        // Not under the VM's lock: a queue's lock is taken before reservation locks (jobs add
        // their fences), which are taken before VM locks (invalidations). The queue's fence slot
        // is not mapped into the VM: SIGNAL writes it by DPA, out of every job's reach.
        let started = chip
            .queue(index)
            .and_then(|hw| hw.start(chip, self.vm.context));
        match started {
            Ok(run) => {
                lease.hw = Some((index, run));
                lease.base = lease.on_hw;
                lease.since = Instant::now();
                self.want_hw(lease, false);
                Ok((index, run))
            }
            Err(e) => {
                self.holders.put(chip, index);
                Err(e)
            }
        }
    }

    /// Ends this queue's run of hardware queue `index`: stops it (waiting a bounded time for
    /// jobs, then failing what is left) and takes the run's failures into the lease. The caller
    /// passes the hardware queue on or frees it.
    fn end_run(&self, lease: &mut Lease, index: u32, run: u64) {
        let chip = &*self.chip;
        if let Ok(hw) = chip.queue(index) {
            hw.stop(chip);
            for (lo, hi) in hw.failures(run).iter() {
                let base = lease.base;
                lease.failed.record(base + lo, base + hi);
            }
        }
        lease.hw = None;
        lease.retired = lease.on_hw;
    }

    /// A hardware queue whose holder is idle, taken over for this queue; its holder's run
    /// ends. Holders busy in a SUBMIT (lease locked) are skipped.
    fn take_idle(self: &Arc<Self>) -> Option<u32> {
        let chip = &*self.chip;
        let mut table = self.holders.table.lock();
        for (i, held) in table.held.iter_mut().enumerate() {
            let Some(other) = held.as_ref() else {
                continue;
            };
            if Arc::ptr_eq(other, self) {
                continue;
            }
            let Some(mut ol) = other.lease.try_lock() else {
                continue;
            };
            let Some((oi, orun)) = ol.hw else {
                continue;
            };
            let idle = chip
                .queue(oi)
                .map(|q| q.run_is_idle(chip, orun))
                .unwrap_or(false);
            if oi as usize != i || !idle {
                continue;
            }
            other.end_run(&mut ol, oi, orun);
            drop(ol);
            // The entry's reference to the other queue goes after the lock: it may be the
            // last one.
            let previous = held.replace(self.clone());
            drop(table);
            drop(previous);
            return Some(oi);
        }
        None
    }

    /// Counts the queue in `HwHolders::waiters` while it has a job ready and no hardware
    /// queue.
    fn want_hw(&self, lease: &mut Lease, on: bool) {
        if lease.wants_hw != on {
            lease.wants_hw = on;
            if on {
                self.holders.waiters.add(1, Relaxed);
            } else {
                self.holders.waiters.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Time slicing: whether the queue has held its hardware queue for [`TIMESLICE_MS`]
    /// while other queues want one. It then writes no more jobs to it: they wait in
    /// software, its ring drains, and the scheduler ends its run (`run_ready`), so that a
    /// queue whose ring never drains cannot starve the others.
    fn should_yield(&self, lease: &Lease) -> bool {
        lease.hw.is_some()
            && self.holders.waiters.load(Relaxed) > 0
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
    /// The third value says whether the job waits in software: the caller kicks the
    /// scheduler.
    fn submit(
        self: &Arc<Self>,
        commands: KVec<[u8; SLOT]>,
        mut deps: KVec<ARef<RawFence>>,
    ) -> Result<(u64, ARef<Fence<JobFence>>, bool)> {
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
                        self.chip
                            .queue(index)?
                            .submit(&self.chip, &commands, Some(fence.clone()))
                    })
                    .inspect_err(|&e| fence.signal_error(e))?;
                lease.last = seqno;
                lease.on_hw = seqno;
                drop(lease);
                // The job times out even if nobody waits for it.
                crate::hw::watchdog::arm(&self.chip);
                return Ok((seqno, fence, false));
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
        Ok((seqno, fence, true))
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
    pub(crate) fn run_ready(self: &Arc<Self>) -> Next {
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
                    .chip
                    .queue(i)
                    .is_ok_and(|q| q.run_is_idle(&self.chip, run))
                {
                    self.end_run(&mut lease, i, run);
                    self.holders.put(&self.chip, i);
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
            let Ok(hw) = self.chip.queue(index) else {
                return Next::Poll;
            };
            let mut pending = self.pending.lock();
            let Some(job) = pending.first() else {
                return Next::Done;
            };
            match hw.submit(&self.chip, &job.commands, Some(job.fence.clone())) {
                Ok(_) => {
                    lease.on_hw = job.seqno;
                    let _ = pending.remove(0);
                    drop(pending);
                    crate::hw::watchdog::arm(&self.chip);
                }
                Err(e) if e == ENODEV => {
                    drop(pending);
                    // With the device gone its placeholder cannot fail otherwise, so the job
                    // is failed now (`fail_first` returns true).
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
        let chip = &*self.chip;
        let mut fences = KVec::new();
        for i in 0..chip.queue_count() {
            let Some(f) = u32::try_from(i)
                .ok()
                .and_then(|i| chip.queue(i).ok())
                .and_then(|q| q.last_fence(chip))
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
                .chip
                .queue(i)
                .and_then(|hw| hw.submit(&self.chip, &[], None))
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
        lease.failed.record(job.seqno, job.seqno);
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
    fn try_hold(self: &Arc<Self>, lease: &mut Lease) -> Option<u32> {
        if let Some((i, _)) = lease.hw {
            return Some(i);
        }
        let i = self
            .holders
            .take(&self.chip, self)
            .ok()
            .or_else(|| self.take_idle())?;
        self.start_run(lease, i).ok().map(|(i, _)| i)
    }

    /// Waits for job `seqno`: `EIO` if it failed, `ETIME` on timeout; `ENODEV` for a failed
    /// job once the device is lost or being removed (`Documentation/uapi.rst`).
    pub(crate) fn wait(&self, seqno: u64, timeout_ms: u64) -> Result {
        match self.wait_job(seqno, timeout_ms) {
            Err(e) if e == EIO && (self.chip.is_lost() || !self.chip.is_bound()) => Err(ENODEV),
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
            if lease.failed.contains(seqno) {
                return Err(EIO);
            }
            match lease.hw {
                Some((i, run)) if seqno > lease.retired => (i, run, seqno - lease.base),
                _ => return retired_outcome(&lease, seqno),
            }
        };
        match self
            .chip
            .queue(index)?
            .wait_in_run(&self.chip, run, hw_seqno, timeout_ms)?
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

/// The outcome of job `seqno`, which belongs to a run that ended.
fn retired_outcome(lease: &Lease, seqno: u64) -> Result {
    if lease.failed.contains(seqno) {
        Err(EIO)
    } else {
        Ok(())
    }
}

/// How long a job may wait for its dependencies before it fails with `ETIME`.
const DEP_TIMEOUT_MS: i64 = 30_000;
