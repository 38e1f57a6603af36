// SPDX-License-Identifier: GPL-2.0

//! The scheduler's software side: jobs that cannot go to a hardware queue at SUBMIT (their
//! dependencies have not signalled, or the queue has earlier jobs waiting) wait in their
//! queue's `pending` list, and work items run them in order once they can run.
//!
//! Nothing polls while jobs wait for their dependencies: the job at the head of a queue has a
//! callback on a fence it waits for (`FenceWaiter`, kernel patch 0010), which queues the
//! `kick` work item when that fence signals; the `timer` work item runs when the earliest
//! dependency deadline passes. A job that waits for a hardware queue (all are busy), or whose
//! queue yields its own, has callbacks on the last job fence of every ring instead: one of
//! them draining is what frees a hardware queue. The scheduler looks again at the next jiffy
//! only in passing (a ring without a fenced job, a hardware queue that freed up between two
//! looks, a full ring). A queue stays on the list while it has jobs
//! waiting, which keeps it (and its VM) alive after QUEUE_DESTROY until they have run.
//! Unbind stops both work items for good (`cancel_delayed_work_sync()`, kernel patch 0026: a
//! pending work item runs the module's code) and fails the jobs still waiting, which removes
//! their fence callbacks.

use kernel::{
    dma_fence::FenceCallback,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Release},
        Arc, Mutex,
    },
    time::msecs_to_jiffies,
    workqueue::{self, DelayedWork, WorkItem},
};

use super::queue::UserQueue;

/// What a queue's scheduler step left to do.
pub(crate) enum Next {
    /// No job waits.
    Done,
    /// The head job waits for a dependency, whose callback kicks the scheduler; it fails if
    /// the dependency has not signalled in this many milliseconds.
    Deps(i64),
    /// The head job waits for a hardware queue's ring to drain (or its own, to yield it),
    /// with callbacks on the rings' last job fences that kick the scheduler.
    Hw,
    /// Look again at the next step (a full ring, a hardware queue that freed up meanwhile, no
    /// memory for a callback).
    Poll,
}

/// The device's scheduler.
#[pin_data]
pub(crate) struct Sched {
    #[pin]
    state: Mutex<SchedState>,
    /// Runs the step at once, or at the next jiffy.
    #[pin]
    kick: DelayedWork<Sched, 1>,
    /// Runs the step when the earliest dependency deadline passes.
    #[pin]
    timer: DelayedWork<Sched, 2>,
    /// `state.on`, for fence callbacks, which cannot take the mutex.
    live: Atomic<bool>,
}

struct SchedState {
    /// False once unbind began: jobs are failed instead of queued.
    on: bool,
    /// Queues with jobs waiting.
    queues: KVec<Arc<UserQueue>>,
}

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self, 1> for Sched { self.kick }
    impl HasDelayedWork<Self, 2> for Sched { self.timer }
}

impl WorkItem<1> for Sched {
    type Pointer = Arc<Sched>;

    fn run(this: Arc<Sched>) {
        this.step();
    }
}

impl WorkItem<2> for Sched {
    type Pointer = Arc<Sched>;

    fn run(this: Arc<Sched>) {
        this.step();
    }
}

// The work items go on `system_long_wq`: a step may move a buffer (up to 2 s of waiting for
// its jobs), and `system_wq` and `system_unbound_wq` are deprecated in this kernel.

/// A fence callback that kicks the scheduler: a job's dependency signalled.
pub(crate) struct Kick(pub(crate) Arc<Sched>);

impl FenceCallback for Kick {
    fn signalled(&self) {
        // Possibly in an interrupt, with the fence's lock held: no mutex, only the queueing.
        // `stop` clears `live` before it removes the callbacks and cancels the work.
        if self.0.live.load(Acquire) {
            // `Err` means it is already pending, which is as good.
            let _ = workqueue::system_long().enqueue_delayed::<Arc<Sched>, 1>(self.0.clone(), 0);
        }
    }
}

impl Sched {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                state <- new_mutex!(SchedState { on: true, queues: KVec::new() }),
                kick <- kernel::new_delayed_work!("vela-sched-kick"),
                timer <- kernel::new_delayed_work!("vela-sched-timer"),
                live: Atomic::new(true),
            }),
            GFP_KERNEL,
        )
    }

    /// One scheduler step over every queue with jobs waiting.
    fn step(self: &Arc<Self>) {
        let queues = {
            let st = self.state.lock();
            let mut v = KVec::new();
            v.extend_from_slice(&st.queues, GFP_KERNEL).map(|()| v)
        };
        let Ok(queues) = queues else {
            // Out of memory: try again at the next step.
            self.arm_kick(1);
            return;
        };
        let mut poll = false;
        let mut deadline: Option<i64> = None;
        for q in queues.iter() {
            match q.run_ready() {
                Next::Poll => poll = true,
                Next::Hw => {}
                Next::Deps(ms) => deadline = Some(deadline.map_or(ms, |d| d.min(ms))),
                Next::Done => {
                    // Off the list if it is still empty: the check is under the list's lock,
                    // which `kick` takes after it adds a job, so no job is left behind.
                    let mut st = self.state.lock();
                    if !q.has_pending() {
                        st.queues.retain(|x| !core::ptr::eq(&**x, &**q));
                    } else {
                        poll = true;
                    }
                }
            }
        }
        // The last references of destroyed queues may go here, with no lock held.
        drop(queues);
        if poll {
            self.arm_kick(1);
        }
        if let Some(ms) = deadline {
            // A pending timer is never later than this: deadlines come from submit times.
            let ms = u32::try_from(ms.max(0)).unwrap_or(u32::MAX);
            if self.state.lock().on {
                // `Err`: the timer is pending, and not later than this (see above).
                let _ = workqueue::system_long().enqueue_delayed::<Arc<Sched>, 2>(
                    self.clone(),
                    msecs_to_jiffies(ms).saturating_add(1),
                );
            }
        }
    }

    fn arm_kick(self: &Arc<Self>, jiffies: kernel::time::Jiffies) {
        if self.state.lock().on {
            // `Err` means it is already pending, which is as good.
            let _ =
                workqueue::system_long().enqueue_delayed::<Arc<Sched>, 1>(self.clone(), jiffies);
        }
    }

    /// `q` has a new job waiting: makes sure the scheduler looks at it.
    pub(crate) fn kick(self: &Arc<Self>, q: &Arc<UserQueue>) {
        {
            let mut st = self.state.lock();
            if !st.on {
                drop(st);
                q.fail_pending(ENODEV);
                return;
            }
            if !st.queues.iter().any(|x| Arc::ptr_eq(x, q))
                && st.queues.push(q.clone(), GFP_KERNEL).is_err()
            {
                drop(st);
                q.fail_pending(ENOMEM);
                return;
            }
        }
        self.arm_kick(0);
    }

    /// Unbind: stops the scheduler for good and fails the jobs still waiting.
    pub(crate) fn stop(self: &Arc<Self>) {
        let queues = {
            let mut st = self.state.lock();
            st.on = false;
            self.live.store(false, Release);
            core::mem::take(&mut st.queues)
        };
        // Failing the jobs drops their fence callbacks; a callback that already runs is waited
        // out, and one that runs from now on sees `live` false.
        for q in queues.iter() {
            q.fail_pending(ENODEV);
        }
        workqueue::cancel_delayed_work_sync::<Sched, 1>(self);
        workqueue::cancel_delayed_work_sync::<Sched, 2>(self);
    }
}

#[kunit_tests(vela_sched)]
mod tests {
    use super::*;
    use crate::hw::queue::JobFence;
    use kernel::dma_fence::{Fence, FenceContext, FenceWaiter};

    /// Counts its calls.
    struct Count(Arc<Atomic<u32>>);

    impl FenceCallback for Count {
        fn signalled(&self) {
            self.0.add(1, kernel::sync::atomic::Relaxed);
        }
    }

    fn counter() -> Result<Arc<Atomic<u32>>> {
        Ok(Arc::new(Atomic::new(0), GFP_KERNEL)?)
    }

    #[test]
    fn callback_runs_once_on_signal() -> Result {
        let ctx = FenceContext::new();
        let fence = Fence::new(&ctx, 1, JobFence)?;
        let n = counter()?;
        let w = FenceWaiter::new(fence.as_raw_fence(), Count(n.clone()))?;
        assert_eq!(n.load(Acquire), 0);
        fence.signal_error(EIO);
        assert_eq!(n.load(Acquire), 1);
        // Signalling is once; dropping a waiter whose callback ran is a no-op.
        fence.signal();
        drop(w);
        assert_eq!(n.load(Acquire), 1);
        Ok(())
    }

    #[test]
    fn dropped_waiter_is_not_called() -> Result {
        let ctx = FenceContext::new();
        let fence = Fence::new(&ctx, 1, JobFence)?;
        let n = counter()?;
        let w = FenceWaiter::new(fence.as_raw_fence(), Count(n.clone()))?;
        // Another waiter on the same fence stays registered.
        let m = counter()?;
        let other = FenceWaiter::new(fence.as_raw_fence(), Count(m.clone()))?;
        drop(w);
        fence.signal();
        assert_eq!(n.load(Acquire), 0);
        assert_eq!(m.load(Acquire), 1);
        drop(other);
        Ok(())
    }

    #[test]
    fn signalled_fence_says_enoent() -> Result {
        let ctx = FenceContext::new();
        let fence = Fence::new(&ctx, 1, JobFence)?;
        fence.signal();
        let n = counter()?;
        let r = FenceWaiter::new(fence.as_raw_fence(), Count(n.clone()));
        assert!(matches!(r, Err(e) if e == ENOENT));
        assert_eq!(n.load(Acquire), 0);
        Ok(())
    }
}
