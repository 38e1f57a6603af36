// SPDX-License-Identifier: GPL-2.0

//! One vGPU instance: what it holds of the device, and its creation and removal
//! (`Documentation/vgpu.rst`, Creating and removing).

use kernel::{
    mdev,
    prelude::*,
    sync::{aref::ARef, Arc},
    vfio,
};

use super::{device, guest, Shared, Tenant, VgpuType};
use crate::hw::{self, partition, regs::PartitionId, vram::VramBlocks};

/// Engine time per scheduling turn of every instance's partition: a tenant that submits
/// endless work delays others by about this much per turn (`partitions.rst`, Scheduling).
const QUANTUM_US: u32 = 2000;

/// What an instance holds of the device. Dropped last, after every file of the instance is
/// closed (so nothing maps the range any more): the range is scrubbed before it goes back
/// to the host, and the queues and contexts are given back.
struct Resources {
    chip: Arc<hw::Chip>,
    vram_offset: u64,
    vram_size: u64,
    vram: Option<VramBlocks>,
    queues: KVec<u32>,
    contexts: KVec<hw::ContextId>,
    /// The partition slot, taken at reserve and enabled once the range is scrubbed.
    partition: Option<PartitionId>,
    /// The partition's IOVA table: given back only after the partition is disabled.
    table: Option<Arc<guest::IovaTable>>,
}

impl Resources {
    /// Reserves what `ty` needs; `ENOSPC` if it does not fit.
    fn reserve(chip: &Arc<hw::Chip>, ty: &VgpuType) -> Result<Self> {
        let size = chip.identity().vram_size >> ty.vram_shift;
        let mut res = Self {
            chip: chip.clone(),
            vram_offset: 0,
            vram_size: size,
            vram: None,
            queues: KVec::with_capacity(ty.queues as usize, GFP_KERNEL)?,
            contexts: KVec::with_capacity(ty.contexts as usize, GFP_KERNEL)?,
            partition: None,
            table: None,
        };
        // Every slot taken is "does not fit", as for the other resources.
        let slot = match chip.take_partition() {
            Err(e) if e == EBUSY => return Err(ENOSPC),
            r => r?,
        };
        res.partition = Some(slot);
        // The host keeps one free queue and one free context (see `Shared::available`).
        if chip.free_queue_count() < ty.queues as usize + 1
            || chip.free_context_count() < ty.contexts as usize + 1
        {
            return Err(ENOSPC);
        }
        for _ in 0..ty.queues {
            let q = chip.take_queue().map_err(|_| ENOSPC)?;
            if let Err(e) = res.queues.push(q, GFP_KERNEL) {
                chip.put_queue(q);
                return Err(e.into());
            }
        }
        for _ in 0..ty.contexts {
            let c = chip.reserve_context().map_err(|_| ENOSPC)?;
            if let Err(e) = res.contexts.push(c, GFP_KERNEL) {
                chip.put_context(c);
                return Err(e.into());
            }
        }
        let (offset, blocks) = chip.reserve_vram_range(size)?;
        res.vram_offset = offset;
        res.vram = Some(blocks);
        res.table = Some(guest::IovaTable::new(chip)?);
        Ok(res)
    }

    /// Clears the range: no tenant sees another's data, nor the host's.
    fn scrub(&self) -> Result {
        self.chip.scrub_vram(self.vram_offset, self.vram_size)
    }

    /// Programs the partition with what was reserved and enables it: from now on the device
    /// holds every access of its queues to the range, and to system memory through its IOVA
    /// table, empty to begin with (pages are pinned on request, `guest.rs`).
    fn enable(&self) -> Result<PartitionId> {
        let p = self.partition.ok_or(EINVAL)?;
        let table = self.table.as_ref().ok_or(EINVAL)?;
        let queues = self.queues.iter().fold(0u32, |m, &i| m | (1 << i));
        let contexts = self.contexts.iter().fold(0u32, |m, c| m | c.bit());
        self.chip.enable_partition(
            p,
            &partition::Config {
                vram_base: self.vram_offset,
                vram_size: self.vram_size,
                queues,
                contexts,
                quantum_us: QUANTUM_US,
                iova_table: table.bus_address(),
                iova_pages: guest::IOVA_PAGES as u32,
            },
        )?;
        Ok(p)
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        // First: the partition's queues stop, and its queues and contexts go back to the PF.
        if let Some(p) = self.partition.take() {
            self.chip.put_partition(p);
        }
        if self.vram.is_some() {
            hw::best_effort("scrubbing a vGPU's VRAM", self.scrub());
        }
        for &c in self.contexts.iter() {
            self.chip.put_context(c);
        }
        for &q in self.queues.iter() {
            self.chip.put_queue(q);
        }
        // `table` goes after this: the partition that read it is disabled.
        // `vram` goes back to the allocator after this, scrubbed.
    }
}

/// One instance: its VFIO device's registration, and what it holds of the device.
/// Fields drop in order: the registration (which waits for the last file) before the
/// resources.
pub(crate) struct Instance {
    reg: vfio::Registration<device::VgpuDev>,
    tenant: Arc<Tenant>,
    res: Resources,
    shared: Arc<Shared>,
}

impl Instance {
    pub(crate) fn create(
        shared: &Arc<Shared>,
        mdev: &mdev::MdevDevice,
        ty: &VgpuType,
    ) -> Result<Pin<KBox<Self>>> {
        let chip = &shared.chip;
        // Under the instances lock: reservations do not race with each other or with
        // `available_instances`.
        let mut instances = shared.instances.lock();
        if instances.len() >= super::PARTITION_SLOTS {
            return Err(ENOSPC);
        }
        // Everything that can fail for lack of memory comes before the registration, so that
        // nothing after it has to be undone.
        let this = KBox::<Self>::new_uninit(GFP_KERNEL)?;
        instances.reserve(1, GFP_KERNEL)?;
        let res = Resources::reserve(chip, ty)?;
        res.scrub()?;
        let partition = res.enable()?;
        let table = res.table.clone().ok_or(EINVAL)?;
        let dev = vfio::Device::new(
            mdev.as_dev(),
            device::VgpuDev::new(
                chip.clone(),
                res.vram_offset,
                res.vram_size,
                ty.queues,
                partition,
                table,
            )?,
        )?;
        let tenant = Tenant::new(dev.clone())?;
        let reg = vfio::Registration::new(dev.clone())?;
        if let Some(slot) = shared.by_partition.lock().get_mut(partition.index()) {
            *slot = Some(tenant.clone());
        }
        instances.push(dev, GFP_KERNEL)?;
        dev_info!(
            mdev.as_dev(),
            "vGPU: {} MiB of VRAM at {:#x}, queues {:?}, contexts {:?}\n",
            res.vram_size >> 20,
            res.vram_offset,
            &res.queues[..],
            &res.contexts[..]
        );
        Ok(KBox::write(
            this,
            Self {
                reg,
                tenant,
                res,
                shared: shared.clone(),
            },
        )
        .into())
    }

    /// Removes the instance: revokes it if it is open (its VMM is asked to let go, and
    /// everything it does fails from now on), waits until its last file is closed, then
    /// scrubs and frees what it held.
    pub(crate) fn remove(this: Pin<KBox<Self>>) {
        let this = Pin::into_inner(this);
        let dev: ARef<device::Device> = this.reg.device().clone();
        device::VgpuDev::revoke(&dev);
        let Self {
            reg,
            tenant,
            res,
            shared,
        } = KBox::into_inner(this);
        drop(reg);
        shared
            .instances
            .lock()
            .retain(|d| !core::ptr::eq::<device::Device>(&**d, &*dev));
        if let Some(slot) = shared.by_partition.lock().get_mut(dev.partition().index()) {
            *slot = None;
        }
        // Nothing queues the pager now; a request it still held is dropped by the reset that
        // disabling the partition is.
        Tenant::stop(&tenant);
        drop(tenant);
        drop(res);
    }
}
