// SPDX-License-Identifier: GPL-2.0

//! An open `/dev/accel/accelN` and the ioctls it serves.

use kernel::{
    drm, new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    uaccess::{UserPtr, UserSlice},
};

use super::{
    driver::{VelaDevice, VelaDriver},
    gem::{self, VelaObject},
    query,
    queue::UserQueue,
    submit,
    vm::Vm,
};
use crate::hw::queue::SLOT;
use kernel::{drm::syncobj::SyncObj, time::msecs_to_jiffies};

use crate::uapi;
use kernel::drm::gem::BaseObject;

/// Per-open-file state: the VMs and queues this file created, by id (index + 1).
#[pin_data]
pub(crate) struct File {
    #[pin]
    objects: Mutex<Objects>,
}

/// Queues are listed first so they drop first: a queue stops its hardware queue before the
/// VM it runs on can go.
struct Objects {
    queues: KVec<Option<Arc<UserQueue>>>,
    vms: KVec<Option<Arc<Vm>>>,
}

/// Puts `item` in the first free slot and returns its id.
fn insert<T>(table: &mut KVec<Option<T>>, item: T) -> Result<u32> {
    let i = match table.iter().position(Option::is_none) {
        Some(i) => {
            table[i] = Some(item);
            i
        }
        None => {
            table.push(Some(item), GFP_KERNEL)?;
            table.len() - 1
        }
    };
    u32::try_from(i + 1).map_err(|_| ENOSPC)
}

fn slot<T>(table: &mut KVec<Option<T>>, id: u32) -> Result<&mut Option<T>> {
    let i = usize::try_from(id)
        .ok()
        .and_then(|id| id.checked_sub(1))
        .ok_or(ENOENT)?;
    match table.get_mut(i) {
        Some(s) if s.is_some() => Ok(s),
        _ => Err(ENOENT),
    }
}

fn get<T: Clone>(table: &mut KVec<Option<T>>, id: u32) -> Result<T> {
    slot(table, id)?.clone().ok_or(ENOENT)
}

impl drm::file::DriverFile for File {
    type Driver = VelaDriver;

    fn open(_dev: &VelaDevice) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            try_pin_init!(Self {
                objects <- new_mutex!(Objects { queues: KVec::new(), vms: KVec::new() }),
            }),
            GFP_KERNEL,
        )
    }
}

impl File {
    /// QUERY: copies one of the device's descriptions (identity, ...) to userspace.
    pub(crate) fn query(
        dev: &VelaDevice,
        args: &mut uapi::drm_vela_query,
        _file: &drm::File<File>,
    ) -> Result<u32> {
        let chip = &dev.chip;
        let reply = query::Reply::new(
            args,
            chip.identity(),
            chip.pdev().revision_id(),
            || query::MemoryFacts {
                vram_size: chip.vram().size(),
                vram_free: chip.vram().avail(),
                system_used: dev.sys_budget.used(),
            },
            || chip.counters(),
        )?;
        let bytes = reply.as_bytes();
        let len: u32 = bytes.len().try_into()?;
        match query::size_check(args.size, len)? {
            query::SizeCheck::AskedForSize => {}
            query::SizeCheck::Fits => {
                let ptr = UserPtr::from_addr(usize::try_from(args.data)?);
                let mut out = UserSlice::new(ptr, bytes.len()).writer();
                out.write_slice(bytes)?;
            }
        }
        args.size = len;
        Ok(0)
    }

    /// BO_CREATE: allocates a buffer and returns a handle to it.
    pub(crate) fn bo_create(
        dev: &VelaDevice,
        args: &mut uapi::drm_vela_bo_create,
        file: &drm::File<File>,
    ) -> Result<u32> {
        let bo = VelaObject::create(dev, args.size, args.flags)?;
        args.handle = bo.create_handle(file)?;
        Ok(0)
    }

    /// BO_INFO: reports a buffer's size, flags and placement.
    pub(crate) fn bo_info(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_bo_info,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, args.handle)?;
        args.flags = bo.flags;
        args.size = bo.size().try_into()?;
        args.placement = VelaObject::placement(&bo)?;
        Ok(0)
    }

    /// BO_MMAP_OFFSET: the offset at which mmap() on this file maps a CPU-visible buffer.
    pub(crate) fn bo_mmap_offset(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_bo_mmap_offset,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, args.handle)?;
        if bo.flags & uapi::DRM_VELA_BO_CPU_VISIBLE == 0 {
            return Err(EINVAL);
        }
        args.offset = bo.create_mmap_offset()?;
        Ok(0)
    }

    fn objects(file: &drm::File<File>) -> kernel::sync::MutexGuard<'_, Objects> {
        file.inner().get_ref().objects.lock()
    }

    /// VM_CREATE: a new GPU address space with its own MMU context.
    pub(crate) fn vm_create(
        dev: &VelaDevice,
        args: &mut uapi::drm_vela_vm_create,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 {
            return Err(EINVAL);
        }
        let vm = Vm::new(dev)?;
        args.vm_id = insert(&mut Self::objects(file).vms, vm)?;
        Ok(0)
    }

    /// VM_DESTROY: drops a VM that has no queues left.
    pub(crate) fn vm_destroy(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_vm_destroy,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let mut objects = Self::objects(file);
        let s = slot(&mut objects.vms, args.vm_id)?;
        if s.as_ref().is_some_and(|vm| vm.queue_count() > 0) {
            return Err(EBUSY);
        }
        let vm = s.take();
        drop(objects);
        drop(vm);
        Ok(0)
    }

    /// VM_BIND: maps a range of a buffer into a VM.
    pub(crate) fn vm_bind(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_vm_bind,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        super::vm::check_bind_args(args.va, args.bo_offset, args.size, args.flags)?;
        let vm = get(&mut Self::objects(file).vms, args.vm_id)?;
        let bo = gem::lookup(file, args.handle)?;
        vm.bind(bo, args.va, args.bo_offset, args.size, args.flags)?;
        Ok(0)
    }

    /// VM_UNBIND: removes one earlier bind.
    pub(crate) fn vm_unbind(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_vm_unbind,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let vm = get(&mut Self::objects(file).vms, args.vm_id)?;
        vm.unbind(args.va, args.size)?;
        Ok(0)
    }

    /// QUEUE_CREATE: a queue whose jobs run in a VM.
    pub(crate) fn queue_create(
        dev: &VelaDevice,
        args: &mut uapi::drm_vela_queue_create,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 || args.pad != 0 {
            return Err(EINVAL);
        }
        let vm = get(&mut Self::objects(file).vms, args.vm_id)?;
        let queue = UserQueue::new(dev.chip.clone(), dev.holders.clone(), vm, dev.sched.clone())?;
        args.queue_id = insert(&mut Self::objects(file).queues, queue)?;
        Ok(0)
    }

    /// QUEUE_DESTROY: stops a queue, waiting a bounded time for its jobs.
    pub(crate) fn queue_destroy(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_queue_destroy,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let queue = slot(&mut Self::objects(file).queues, args.queue_id)?.take();
        // Stopping may wait for the device; do it outside the file's lock.
        drop(queue);
        Ok(0)
    }

    /// SUBMIT: checks a job's commands and queues it.
    pub(crate) fn submit(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_submit,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 || args.pad != 0 {
            return Err(EINVAL);
        }
        let count = usize::try_from(args.command_count)?;
        if count == 0 || count > uapi::DRM_VELA_MAX_COMMANDS as usize {
            return Err(EINVAL);
        }
        let nsync = usize::try_from(args.in_syncobj_count)?;
        if nsync > uapi::DRM_VELA_MAX_IN_SYNCOBJS as usize {
            return Err(EINVAL);
        }
        let mut in_handles = KVec::<u32>::with_capacity(nsync, GFP_KERNEL)?;
        if nsync > 0 {
            let ptr = UserPtr::from_addr(usize::try_from(args.in_syncobjs)?);
            let mut reader = UserSlice::new(ptr, nsync * 4).reader();
            for _ in 0..nsync {
                let mut h = [0u8; 4];
                reader.read_slice(&mut h)?;
                in_handles.push(u32::from_le_bytes(h), GFP_KERNEL)?;
            }
        }
        let mut commands = KVec::<[u8; SLOT]>::with_capacity(count, GFP_KERNEL)?;
        let ptr = UserPtr::from_addr(usize::try_from(args.commands)?);
        let mut reader = UserSlice::new(ptr, count * SLOT).reader();
        for _ in 0..count {
            let mut c = [0u8; SLOT];
            reader.read_slice(&mut c)?;
            submit::check_command(&c)?;
            commands.push(c, GFP_KERNEL)?;
        }
        // Argument errors (EFAULT, EINVAL) come before an unknown id, as in every ioctl.
        let queue = get(&mut Self::objects(file).queues, args.queue_id)?;
        let out = match args.out_syncobj {
            0 => None,
            h => Some(SyncObj::lookup(file, h)?),
        };
        let mut deps = KVec::with_capacity(in_handles.len(), GFP_KERNEL)?;
        for &h in in_handles.iter() {
            if let Some(f) = SyncObj::lookup(file, h)?.fence() {
                deps.push(f, GFP_KERNEL)?;
            }
        }
        // The job runs after its dependencies; if they have not signalled it waits in
        // software, and SUBMIT returns at once.
        let (seqno, fence) = queue.submit(commands, deps)?;
        if let Some(out) = out {
            out.replace_fence(Some(fence.as_raw_fence()));
        }
        args.seqno = seqno;
        Ok(0)
    }

    /// WAIT: waits for a job of a queue.
    pub(crate) fn wait(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_wait,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 || args.timeout_ns < 0 {
            return Err(EINVAL);
        }
        let queue = get(&mut Self::objects(file).queues, args.queue_id)?;
        let ms = u64::try_from(args.timeout_ns)?.div_ceil(1_000_000);
        queue.wait(args.seqno, ms)?;
        Ok(0)
    }

    /// BO_WAIT: waits until every job that used a buffer is done.
    pub(crate) fn bo_wait(
        _dev: &VelaDevice,
        args: &mut uapi::drm_vela_bo_wait,
        file: &drm::File<File>,
    ) -> Result<u32> {
        if args.flags != 0 || args.timeout_ns < 0 {
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, args.handle)?;
        let ms = u64::try_from(args.timeout_ns)?.div_ceil(1_000_000);
        let jiffies = msecs_to_jiffies(u32::try_from(ms).unwrap_or(u32::MAX));
        // Read usage waits for readers and writers: all of the device's jobs.
        bo.resv()
            .wait(kernel::dma_resv::Usage::Read, true, jiffies)?;
        Ok(0)
    }
}
