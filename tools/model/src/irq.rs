// SPDX-License-Identifier: GPL-2.0
//! Interrupt delivery: INT_STATUS sources become MSI-X messages, which the
//! model sends by writing the vector's eventfd (installed by SET_IRQS).

use std::fs::File;

use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
};

use crate::device::{Device, DeviceError, State};
use vela_hw::regs::{self, Counter};

impl Device {
    /// Raise interrupt sources: set their status bits and send the messages
    /// of the unmasked ones (see interrupts.rst, "Message rules").
    pub(crate) fn raise(&self, st: &mut State, sources: u32) {
        let sources = sources & st.valid_sources();
        st.int_status |= sources;
        for bit in (0..32).filter(|b| sources & (1 << b) != 0) {
            if st.int_mask & (1 << bit) != 0 {
                st.count(Counter::InterruptsSuppressed, 1);
            } else {
                self.send(st, source_vector(bit));
            }
        }
    }

    /// Send one MSI-X message. Masking inside the MSI-X capability (function
    /// mask, per-vector mask, PBA) belongs to the client, which emulates the
    /// table; the device checks what it can see: enable and bus master.
    pub(crate) fn send(&self, st: &mut State, vector: usize) {
        let deliverable = st.config.msix_enabled() && st.config.bus_master();
        let fd = st.vectors.get(vector).and_then(|v| v.as_ref());
        match fd {
            Some(fd) if deliverable && !self.inject.take_drop_irq() => {
                signal(fd);
                st.count(Counter::InterruptsSent, 1);
            }
            _ => st.count(Counter::InterruptsSuppressed, 1),
        }
    }

    /// VFIO_DEVICE_SET_IRQS for the MSI-X index: install or remove eventfds.
    ///
    /// QEMU sends a run of valid eventfds with one fd per vector, and a run of
    /// vectors to disable with no fds at all; DATA_NONE with count 0 disables
    /// every vector, with a count it fires those vectors (a loopback test).
    pub fn set_msix(
        &self,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> Result<(), DeviceError> {
        let bad = || {
            DeviceError::BadIrqs(format!(
                "flags {flags:#x} start {start} count {count} fds {}",
                fds.len()
            ))
        };
        let mut st = self.lock();
        let n = st.vectors.len();
        let (start, count) = (start as usize, count as usize);
        if flags & VFIO_IRQ_SET_ACTION_TRIGGER == 0 {
            // MASK/UNMASK do not apply to MSI-X.
            return Err(bad());
        }
        if flags & VFIO_IRQ_SET_DATA_NONE != 0 && count == 0 {
            st.vectors.iter_mut().for_each(|v| *v = None);
            return Ok(());
        }
        let end = start
            .checked_add(count)
            .filter(|&e| e <= n)
            .ok_or_else(bad)?;
        if flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 {
            if fds.is_empty() {
                st.vectors[start..end].iter_mut().for_each(|v| *v = None);
            } else if fds.len() == count {
                for (slot, fd) in st.vectors[start..end].iter_mut().zip(fds) {
                    *slot = Some(fd);
                }
            } else {
                return Err(bad());
            }
            return Ok(());
        }
        if flags & VFIO_IRQ_SET_DATA_NONE != 0 {
            for v in start..end {
                self.send(&mut st, v);
            }
            return Ok(());
        }
        Err(bad())
    }
}

/// Write to an MSI-X eventfd. A full eventfd counter only means the
/// interrupt is already pending, so errors are not interesting.
pub fn signal(mut fd: &File) {
    use std::io::Write;
    let _ = fd.write(&1u64.to_le_bytes());
}

/// The MSI-X vector of an INT_STATUS bit.
pub(crate) fn source_vector(bit: u32) -> usize {
    if regs::IntSources::QUEUES.mask32() & (1 << bit) != 0 {
        regs::queue_vector(bit as usize)
    } else {
        regs::VECTOR_ERROR
    }
}
