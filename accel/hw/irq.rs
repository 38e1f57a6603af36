// SPDX-License-Identifier: GPL-2.0

//! Interrupts. MSI-X vector 0 carries queue errors and MMU faults; vector 1 + N carries the
//! completions of queue N (`Documentation/hardware/interrupts.rst`).
//!
//! The hard handlers only acknowledge the source; the work (reading fences, failing jobs,
//! resetting queues) runs in the IRQ thread, where the queue locks may be taken.

use kernel::{
    device::{Bound, Device},
    io::{poll::read_poll_timeout, Io},
    irq::{IrqReturn, ThreadedHandler, ThreadedIrqReturn},
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    time::Delta,
};

use super::{
    regs::{self, ContextId},
    Chip,
};

/// Interrupt bookkeeping shared by the handlers and whoever waits on them.
pub(crate) struct IrqState {
    /// Completion interrupts per queue.
    pub(crate) queue: [Atomic<u64>; regs::MAX_QUEUES],
    /// Error and fault interrupts.
    pub(crate) errors: Atomic<u64>,
    /// Vector 0 saw QUEUE_ERROR or MMU_FAULT (or could not tell) since its thread last looked:
    /// the thread reads the error summaries only then. Relaying a partition's vector, the
    /// common case, then costs no register accesses of the host's own error handling.
    pub(crate) host_errors: Atomic<bool>,
}

impl IrqState {
    pub(crate) const fn new() -> Self {
        Self {
            queue: [const { Atomic::new(0) }; regs::MAX_QUEUES],
            errors: Atomic::new(0),
            host_errors: Atomic::new(false),
        }
    }
}

/// Vector 1 + N: completions of queue N.
pub(crate) struct QueueIrq {
    pub(crate) core: Arc<Chip>,
    pub(crate) queue: u32,
}

impl ThreadedHandler for QueueIrq {
    fn handle(&self, dev: &Device<Bound>) -> ThreadedIrqReturn {
        // No INT_STATUS acknowledgement: every firing of a source sends its message whether
        // or not its status bit is still set (interrupts.rst, "not coalesced by status"), so
        // a completion racing with the thread still wakes it, and one trapped register write
        // per job is saved. The vector is this queue's alone, so the status says nothing new.
        if self.core.bar0.access(dev).is_err() {
            return ThreadedIrqReturn::None;
        }
        if let Some(n) = self.core.irq.queue.get(self.queue as usize) {
            n.add(1, Relaxed);
        }
        ThreadedIrqReturn::WakeThread
    }

    fn handle_threaded(&self, _dev: &Device<Bound>) -> IrqReturn {
        if let Some(q) = self.core.queues.get(self.queue as usize) {
            q.complete(&self.core);
        }
        IrqReturn::Handled
    }
}

/// Vector 0: queue errors and MMU faults.
pub(crate) struct ErrorIrq(pub(crate) Arc<Chip>);

/// INT_STATUS bits that belong to vector 0.
pub(crate) const ERROR_SOURCES: u32 = regs::INT_STATUS::QUEUE_ERROR_MASK
    | regs::INT_STATUS::MMU_FAULT_MASK
    | regs::INT_STATUS::PARTITION_MASK;

impl ThreadedHandler for ErrorIrq {
    fn handle(&self, dev: &Device<Bound>) -> ThreadedIrqReturn {
        let Ok(bar) = self.0.bar0.access(dev) else {
            return ThreadedIrqReturn::None;
        };
        let status = bar.read(regs::INT_STATUS).into_raw();
        if status == u32::MAX {
            // All-ones: nobody answered the read. The thread finds out whether the device is
            // lost (it may sleep; this handler may not).
            self.0.irq.host_errors.store(true, Relaxed);
            return ThreadedIrqReturn::WakeThread;
        }
        let mine = status & ERROR_SOURCES;
        if mine == 0 {
            return ThreadedIrqReturn::None;
        }
        if mine & !regs::INT_STATUS::PARTITION_MASK != 0 {
            self.0.irq.host_errors.store(true, Relaxed);
        }
        bar.write_reg(regs::INT_STATUS::from_raw(mine));
        self.0.irq.errors.add(1, Relaxed);
        ThreadedIrqReturn::WakeThread
    }

    fn handle_threaded(&self, dev: &Device<Bound>) -> IrqReturn {
        let core = &self.0;
        // A lost device's summaries read all-ones, which would fail every queue with EIO.
        if core.check_lost() {
            return IrqReturn::Handled;
        }
        let Ok(bar) = core.bar0.access(dev) else {
            return IrqReturn::None;
        };
        // Partitions first: relaying a tenant's vectors should not wait for the host's own
        // error handling, which may reset queues.
        if core.partition_slots() > 0 {
            let events = core.partition_events(bar);
            if !events.is_empty() {
                for f in core.frontends.lock().iter() {
                    for e in events.iter() {
                        f.partition_event(e);
                    }
                }
            }
        }
        // Set before this thread was woken: the wake-up orders it before this read.
        if !core.irq.host_errors.xchg(false, Relaxed) {
            return IrqReturn::Handled;
        }
        let errors = bar.read(regs::QUEUE_ERROR_SUMMARY);
        let faults = bar.read(regs::CTX_FAULT_SUMMARY);
        for q in core.queues.iter() {
            let faulted = q.context().is_some_and(|c| faults.context(c));
            if errors.queue(q.id()) || faulted {
                dev_warn!(
                    dev,
                    "queue {}: {}; failing its pending jobs\n",
                    q.index,
                    if faulted {
                        "MMU fault"
                    } else {
                        "command error"
                    }
                );
                q.fail_pending(core);
            }
        }
        // The faulting queues are reset; clear the records so the contexts run again. Context
        // 0 is the kernel's copy queue's (`kqueue.rs`), which stops on its own fault: it keeps
        // translation off.
        for c in ContextId::all() {
            if faults.context(c) {
                let clear = regs::CTX_CONTROL::zeroed().with_fault_clear(true);
                bar.write(
                    regs::CTX_CONTROL::at_context(c),
                    clear.with_enable(c != ContextId::KERNEL),
                );
            }
        }
        IrqReturn::Handled
    }
}

impl Chip {
    /// Unmasks the sources the driver handles and proves that a message arrives: a triggered
    /// queue 0 event must reach [`QueueIrq`] within a second. A device whose MSI-X does not
    /// work is refused at probe rather than hanging its first job.
    pub(crate) fn enable_interrupts(&self, dev: &Device<Bound>) -> Result {
        let bar = self.bar0.access(dev)?;
        let queues = self.queues.iter().fold(0, |m, q| m | q.id().bit());
        bar.write_reg(regs::INT_STATUS::from_raw(u32::MAX));
        bar.write_reg(regs::INT_MASK::from_raw(!(queues | ERROR_SOURCES)));

        let before = self.irq.queue[0].load(Relaxed);
        bar.write_reg(regs::INT_TRIGGER::from_raw(1));
        read_poll_timeout(
            || Ok(self.irq.queue[0].load(Relaxed)),
            |&n| n != before,
            Delta::from_millis(1),
            Delta::from_millis(1000),
        )
        .inspect_err(|_| {
            dev_err!(
                dev,
                "MSI-X self-test: the triggered interrupt never arrived\n"
            )
        })?;
        Ok(())
    }

    /// Masks every source, so nothing fires while the vectors are being freed.
    pub(crate) fn disable_interrupts(&self, dev: &Device<Bound>) {
        if let Ok(bar) = self.bar0.access(dev) {
            bar.write_reg(regs::INT_MASK::from_raw(u32::MAX));
        }
    }
}
