// SPDX-License-Identifier: GPL-2.0

//! The watchdog: while any queue has jobs pending, every [`WATCHDOG_MS`] it reads every
//! queue's fence (a lost interrupt then delays a job's fence by at most that, waited for or
//! not) and recovers the device ([`Chip::recover`]) when a queue has made no progress for
//! [`JOB_TIMEOUT_MS`](super::queue::JOB_TIMEOUT_MS). Waiters detect hangs too; the watchdog
//! is what times out the jobs nobody waits for.
//!
//! It is a delayed work item in [`Chip`], armed by every SUBMIT and re-armed by itself while
//! work is pending. Unbind disarms it (under `watchdog_on`, so no SUBMIT arms it again) and
//! cancels it, waiting for a running tick: a pending work item runs the module's code.

use kernel::{
    sync::Arc,
    time::msecs_to_jiffies,
    workqueue::{self, WorkItem},
};

use super::{queue::Poll, Chip};

/// How often the watchdog looks while jobs are pending.
pub(crate) const WATCHDOG_MS: u32 = 500;

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Chip { self.watchdog }
}

impl WorkItem for Chip {
    type Pointer = Arc<Chip>;

    fn run(this: Arc<Chip>) {
        // Jobs are pending (or it would not run): a device that stopped answering is lost,
        // which fails them, rather than reset over and over.
        if this.check_lost() {
            return;
        }
        let mut busy = false;
        for q in this.queues.iter() {
            match q.poll(&this) {
                Poll::Idle => {}
                Poll::Busy => busy = true,
                Poll::Hung => {
                    this.recover(q.index);
                    // The other queues' jobs run again after the reset.
                    busy = true;
                }
            }
        }
        if busy {
            arm(&this);
        }
    }
}

/// Makes sure the watchdog will look in [`WATCHDOG_MS`] (a no-op if it is already pending, or
/// after unbind).
pub(crate) fn arm(core: &Arc<Chip>) {
    let on = core.watchdog_on.lock();
    if *on {
        // `Err` means it is already pending, which is as good.
        let _ =
            workqueue::system_long().enqueue_delayed(core.clone(), msecs_to_jiffies(WATCHDOG_MS));
    }
}

/// Disarms the watchdog for good and waits until it is neither pending nor running.
pub(crate) fn stop(core: &Arc<Chip>) {
    *core.watchdog_on.lock() = false;
    workqueue::cancel_delayed_work_sync(core);
}
