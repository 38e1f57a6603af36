// SPDX-License-Identifier: GPL-2.0

//! BAR0 of a vGPU instance: the partition's register window (`Documentation/vgpu.rst`,
//! BAR0).
//!
//! Every access is forwarded to the partition's window in the PF's BAR4
//! (`Documentation/hardware/partitions.rst`), which looks like a whole device from inside the
//! partition: identity (with `CAPS.VIRTUAL`), queues, contexts and interrupts in the
//! partition's own numbering. The hardware enforces the partition's bounds on whatever a guest
//! programs there, so the frontend checks only the access itself: nothing is inspected,
//! rewritten or emulated.

use kernel::{prelude::*, sync::Arc};

use crate::hw::{self, regs, regs::PartitionId};

/// The register window of one instance.
pub(crate) struct Bar0 {
    chip: Arc<hw::Chip>,
    partition: PartitionId,
}

impl Bar0 {
    pub(crate) fn new(chip: Arc<hw::Chip>, partition: PartitionId) -> Self {
        Self { chip, partition }
    }

    /// Checks an access: 4 bytes, 4-byte aligned, inside the 64 KiB window.
    pub(crate) fn check(offset: u64, len: usize) -> Result<u32> {
        if len != 4 || offset % 4 != 0 || offset >= regs::BAR0_SIZE as u64 {
            return Err(EINVAL);
        }
        Ok(offset as u32)
    }

    pub(crate) fn read(&self, offset: u32) -> Result<u32> {
        self.chip.window_read(self.partition, offset as usize)
    }

    pub(crate) fn write(&self, offset: u32, value: u32) -> Result {
        self.chip
            .window_write(self.partition, offset as usize, value)
    }

    /// A reset of the instance (VFIO_DEVICE_RESET, FLR, the last close): the partition's
    /// queues stop and clear, and its contexts, fault records and interrupt state with them;
    /// its VRAM stays, as a function reset keeps a device's memory.
    pub(crate) fn reset(&self) -> Result {
        self.chip.reset_partition(self.partition)
    }
}
