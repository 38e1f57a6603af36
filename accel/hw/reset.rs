// SPDX-License-Identifier: GPL-2.0

//! Device reset: recovering from a hung queue.

use kernel::{io::Io, prelude::*, sync::atomic::Release};

use super::{best_effort, irq, program_context, queue, regs, Chip};

impl Chip {
    /// Recovers from a hung queue: a global reset (the only thing that clears a hung engine),
    /// then contexts, interrupt masks and queues are programmed again. Queue `guilty` loses its
    /// pending jobs; the other queues' pending commands run again.
    ///
    /// Importers of the device's buffers are revoked across the reset, as vfio-pci does: new
    /// mappings are refused while it runs and every existing one is invalidated first, so no
    /// importer relies on a mapping made before the device went through reset. A global
    /// reset keeps VRAM and the BARs, so nothing waits for importers' DMA to drain (a wait
    /// could include the hung job's own fence); they map again once the reset is done.
    pub(crate) fn recover(&self, guilty: u32) {
        // A device that does not answer cannot be reset: it is lost instead. One being
        // unbound is not reset either: unbind failed its jobs.
        if self.check_lost() || !self.is_bound() {
            return;
        }
        let _serial = self.recovery.lock();
        // A waiter and the watchdog may both have seen the hang: the first one recovers.
        if !matches!(
            self.queue(guilty).map(|q| q.poll(self)),
            Ok(queue::Poll::Hung)
        ) {
            return;
        }
        dev_warn!(self.pdev, "queue {} hung: resetting the device\n", guilty);
        self.resetting.store(true, Release);
        for f in self.frontends.lock().iter() {
            f.revoke_peers();
        }
        let heads: KVec<(u32, u64)> = {
            let mut v = KVec::new();
            for q in self.queues.iter() {
                if v.push(q.head(self), GFP_KERNEL).is_err() {
                    break;
                }
            }
            v
        };
        best_effort(
            "resetting the device",
            self.with_bar0(|bar| {
                bar.write_reg(regs::DEVICE_CONTROL::zeroed().with_reset(true));
                Ok(())
            }),
        );
        let ready = kernel::io::poll::read_poll_timeout(
            || self.with_bar0(|bar| Ok(bar.read(regs::DEVICE_STATUS).ready())),
            |&ready| ready,
            kernel::time::Delta::from_millis(1),
            kernel::time::Delta::from_millis(1000),
        );
        if ready.is_err() {
            dev_err!(self.pdev, "device not ready after reset\n");
        }
        // The reset disabled every partition: tenants get their slices back (their work in
        // flight is lost, as in a reset of a device's parent) before the host's queues restart.
        self.restore_partitions();
        // The owners lock is held while the contexts are written: a context freed and taken
        // again meanwhile must get its new root, not the old one, which may be freed.
        let mut owners = self.owners.lock();
        // The reset disabled every queue, the one the kernel's copies left armed too.
        owners.kernel_armed = None;
        owners.resets = owners.resets.wrapping_add(1);
        let queues = (1u32 << self.queues.len()) - 1;
        let programmed = self.with_bar0(|bar| {
            for c in regs::ContextId::all().skip(1) {
                // Partitions' contexts are their owners' to program.
                if owners.contexts & !owners.reserved_contexts & c.bit() != 0 {
                    program_context(
                        bar,
                        c,
                        owners.roots[c.index()],
                        regs::CTX_CONTROL::zeroed().with_enable(true),
                    );
                }
            }
            bar.write_reg(regs::INT_STATUS::from_raw(u32::MAX));
            bar.write_reg(regs::INT_MASK::from_raw(!(queues | irq::ERROR_SOURCES)));
            Ok(())
        });
        best_effort("programming the device after a reset", programmed);
        drop(owners);
        for (i, q) in self.queues.iter().enumerate() {
            let Some(&(head, epoch)) = heads.get(i) else {
                q.restart(self, None, true);
                continue;
            };
            q.restart(self, Some((head, epoch)), q.index == guilty);
        }
        self.resetting.store(false, Release);
    }
}
