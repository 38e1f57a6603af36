// SPDX-License-Identifier: GPL-2.0

//! The scheduler's software side: jobs that cannot go to a hardware queue at SUBMIT (their
//! dependencies have not signalled, or the queue has earlier jobs waiting) wait in their
//! queue's `pending` list, and a delayed work item runs them in order once they can run.
//!
//! There are no fence callbacks here: while any queue has jobs waiting, the work item looks
//! every jiffy (and at once when a job is added). A queue stays on the list while it has
//! jobs waiting, which keeps it (and its VM) alive after QUEUE_DESTROY until they have run.
//! Unbind stops the work item for good (`cancel_delayed_work_sync()`, kernel patch 0019:
//! a pending work item runs the module's code) and fails the jobs still waiting.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    workqueue::{self, DelayedWork, WorkItem},
};

use super::vm::UserQueue;

/// The device's scheduler.
#[pin_data]
pub(crate) struct Sched {
    #[pin]
    state: Mutex<SchedState>,
    #[pin]
    work: DelayedWork<Sched>,
}

// SAFETY: The scheduler's state is only touched under its mutex. What it holds are user
// queues, which the ioctls of every thread already share (through `Arc`s in the files'
// tables): everything in them is behind their own locks, and the GEM objects their VMs
// reference are reference-counted with atomics and may be used and freed from any thread,
// as the DRM core does.
unsafe impl Send for Sched {}
// SAFETY: See above.
unsafe impl Sync for Sched {}

struct SchedState {
    /// False once unbind began: jobs are failed instead of queued.
    on: bool,
    /// Queues with jobs waiting.
    queues: KVec<Arc<UserQueue>>,
}

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Sched { self.work }
}

impl WorkItem for Sched {
    type Pointer = Arc<Sched>;

    fn run(this: Arc<Sched>) {
        let queues = {
            let st = this.state.lock();
            let mut v = KVec::with_capacity(st.queues.len(), GFP_KERNEL);
            if let Ok(v) = v.as_mut() {
                for q in st.queues.iter() {
                    let _ = v.push(q.clone(), GFP_KERNEL);
                }
            }
            v
        };
        let Ok(queues) = queues else {
            // Out of memory: try again at the next step.
            this.arm(1);
            return;
        };
        let mut left = false;
        for q in queues.iter() {
            if q.run_ready() {
                left = true;
            } else {
                // Off the list if it is still empty: the check is under the list's lock,
                // which `kick` takes after it adds a job, so no job is left behind.
                let mut st = this.state.lock();
                if !q.has_pending() {
                    st.queues.retain(|x| !core::ptr::eq(&**x, &**q));
                } else {
                    left = true;
                }
            }
        }
        // The last references of destroyed queues may go here, with no lock held.
        drop(queues);
        if left {
            this.arm(1);
        }
    }
}

impl Sched {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                state <- new_mutex!(SchedState { on: true, queues: KVec::new() }),
                work <- kernel::new_delayed_work!("vela-sched"),
            }),
            GFP_KERNEL,
        )
    }

    fn arm(self: &Arc<Self>, jiffies: kernel::time::Jiffies) {
        if self.state.lock().on {
            // `Err` means it is already pending, which is as good.
            let _ = workqueue::system_unbound().enqueue_delayed(self.clone(), jiffies);
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
            if !st.queues.iter().any(|x| Arc::ptr_eq(x, q)) && st.queues.push(q.clone(), GFP_KERNEL).is_err() {
                drop(st);
                q.fail_pending(ENOMEM);
                return;
            }
        }
        self.arm(0);
    }

    /// Unbind: stops the scheduler for good and fails the jobs still waiting.
    pub(crate) fn stop(self: &Arc<Self>) {
        let queues = {
            let mut st = self.state.lock();
            st.on = false;
            core::mem::take(&mut st.queues)
        };
        workqueue::cancel_delayed_work_sync(self);
        for q in queues.iter() {
            q.fail_pending(ENODEV);
        }
    }
}
