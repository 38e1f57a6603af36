// SPDX-License-Identifier: GPL-2.0

//! Interrupts. MSI-X vector 0 carries queue errors and MMU faults; vector 1 + N carries the
//! completions of queue N (`Documentation/hardware/interrupts.rst`).

use kernel::{
    device::{Bound, Device},
    io::{poll::read_poll_timeout, Io},
    irq::{Handler, IrqReturn},
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    time::Delta,
};

use super::{regs, Core};

/// Interrupt bookkeeping shared by the handlers and whoever waits on them.
pub(crate) struct IrqState {
    /// Completion interrupts of queue 0.
    pub(crate) queue0: Atomic<u64>,
    /// Error and fault interrupts.
    pub(crate) errors: Atomic<u64>,
}

impl IrqState {
    pub(crate) const fn new() -> Self {
        Self {
            queue0: Atomic::new(0),
            errors: Atomic::new(0),
        }
    }
}

/// Vector 1: completions of queue 0.
pub(crate) struct QueueIrq(pub(crate) Arc<Core>);

impl Handler for QueueIrq {
    fn handle(&self, dev: &Device<Bound>) -> IrqReturn {
        let Ok(bar) = self.0.bar0.access(dev) else {
            return IrqReturn::None;
        };
        // Acknowledge before counting: an event that lands after the write raises a new message.
        bar.write_reg(regs::INT_STATUS::from_raw(1));
        self.0.irq.queue0.add(1, Relaxed);
        IrqReturn::Handled
    }
}

/// Vector 0: queue errors and MMU faults.
pub(crate) struct ErrorIrq(pub(crate) Arc<Core>);

impl Handler for ErrorIrq {
    fn handle(&self, dev: &Device<Bound>) -> IrqReturn {
        let Ok(bar) = self.0.bar0.access(dev) else {
            return IrqReturn::None;
        };
        let status = bar.read(regs::INT_STATUS);
        let mine = status.into_raw() & ERROR_SOURCES;
        if mine == 0 {
            return IrqReturn::None;
        }
        bar.write_reg(regs::INT_STATUS::from_raw(mine));
        self.0.irq.errors.add(1, Relaxed);
        IrqReturn::Handled
    }
}

/// INT_STATUS bits that belong to vector 0.
const ERROR_SOURCES: u32 = (1 << 16) | (1 << 17);

impl Core {
    /// Unmasks the sources the driver handles and proves that a message arrives: a triggered
    /// queue 0 event must reach [`QueueIrq`] within a second. A device whose MSI-X does not
    /// work is refused at probe rather than hanging its first job.
    pub(crate) fn enable_interrupts(&self, dev: &Device<Bound>) -> Result {
        let bar = self.bar0.access(dev)?;
        bar.write_reg(regs::INT_STATUS::from_raw(u32::MAX));
        bar.write_reg(regs::INT_MASK::from_raw(!(1 | ERROR_SOURCES)));

        let before = self.irq.queue0.load(Relaxed);
        bar.write_reg(regs::INT_TRIGGER::from_raw(1));
        read_poll_timeout(
            || Ok(self.irq.queue0.load(Relaxed)),
            |&n| n != before,
            Delta::from_millis(1),
            Delta::from_millis(1000),
        )
        .inspect_err(|_| dev_err!(dev, "MSI-X self-test: the triggered interrupt never arrived\n"))?;
        Ok(())
    }

    /// Masks every source, so nothing fires while the vectors are being freed.
    pub(crate) fn disable_interrupts(&self, dev: &Device<Bound>) {
        if let Ok(bar) = self.bar0.access(dev) {
            bar.write_reg(regs::INT_MASK::from_raw(u32::MAX));
        }
    }
}
