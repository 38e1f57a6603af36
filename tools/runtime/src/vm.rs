// SPDX-License-Identifier: GPL-2.0

//! GPU virtual address spaces and the bindings of buffers into them.

use std::{marker::PhantomData, sync::Mutex};

use vela_uapi as u;

use crate::{raw, Buffer, Device, Error, Ioctl, Result, VaAllocator, PAGE_SIZE};

/// `DRM_VELA_BIND_*` access of a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access(pub u32);

impl Access {
    pub const READ: Self = Self(u::DRM_VELA_BIND_READ);
    pub const READ_WRITE: Self = Self(u::DRM_VELA_BIND_READ | u::DRM_VELA_BIND_WRITE);
}

/// A VM: one device MMU context. Destroyed on drop, after its queues and bindings (which
/// borrow it) are gone.
#[derive(Debug)]
pub struct Vm<'d> {
    dev: &'d Device,
    id: u32,
    va: Mutex<VaAllocator>,
}

impl<'d> Vm<'d> {
    pub fn create(dev: &'d Device) -> Result<Self> {
        let mut a = raw::drm_vela_vm_create::default();
        raw::vm_create(dev, &mut a)
            .map_err(|e| Error::ioctl(Ioctl::VmCreate, "flags=0".into(), e))?;
        Ok(Self {
            dev,
            id: a.vm_id,
            va: Mutex::new(VaAllocator::default()),
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn device(&self) -> &'d Device {
        self.dev
    }

    /// Maps `[bo_offset, bo_offset + size)` of `bo` at `va`.
    pub fn bind<'a>(
        &'a self,
        bo: &'a Buffer<'a>,
        va: u64,
        bo_offset: u64,
        size: u64,
        access: Access,
    ) -> Result<Binding<'a>> {
        self.bind_raw(bo, va, bo_offset, size, access)?;
        Ok(Binding {
            vm: self,
            va,
            size,
            allocated: false,
            _bo: PhantomData,
        })
    }

    /// Maps all of `bo` at a VA the VM's allocator picks (aligned to 2 MiB for buffers of at
    /// least 2 MiB, so a kernel may use huge pages); the VA is returned to it on unbind.
    pub fn bind_auto<'a>(&'a self, bo: &'a Buffer<'a>, access: Access) -> Result<Binding<'a>> {
        let size = bo.size();
        let align = if size >= 2 << 20 { 2 << 20 } else { PAGE_SIZE };
        let va = self
            .allocator()
            .alloc(size, align)
            .ok_or(Error::VaExhausted {
                vm_id: self.id,
                size,
            })?;
        if let Err(e) = self.bind_raw(bo, va, 0, size, access) {
            self.allocator().free(va, size);
            return Err(e);
        }
        Ok(Binding {
            vm: self,
            va,
            size,
            allocated: true,
            _bo: PhantomData,
        })
    }

    fn allocator(&self) -> std::sync::MutexGuard<'_, VaAllocator> {
        // A panic while holding the lock cannot leave the free map inconsistent (every update
        // is a few map operations with no panicking code between them), so poison is ignored.
        self.va.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bind_raw(
        &self,
        bo: &Buffer<'_>,
        va: u64,
        bo_offset: u64,
        size: u64,
        access: Access,
    ) -> Result<()> {
        let mut a = raw::drm_vela_vm_bind {
            vm_id: self.id,
            handle: bo.handle(),
            va,
            bo_offset,
            size,
            flags: access.0,
            pad: 0,
        };
        raw::vm_bind(self.dev, &mut a).map_err(|e| {
            Error::ioctl(
                Ioctl::VmBind,
                format!(
                    "vm_id={} handle={} va={va:#x} bo_offset={bo_offset:#x} size={size:#x} flags={:#x}",
                    self.id,
                    bo.handle(),
                    access.0
                ),
                e,
            )
        })
    }

    fn unbind_raw(&self, va: u64, size: u64) -> Result<()> {
        let mut a = raw::drm_vela_vm_unbind {
            vm_id: self.id,
            pad: 0,
            va,
            size,
        };
        raw::vm_unbind(self.dev, &mut a).map_err(|e| {
            Error::ioctl(
                Ioctl::VmUnbind,
                format!("vm_id={} va={va:#x} size={size:#x}", self.id),
                e,
            )
        })
    }
}

impl Drop for Vm<'_> {
    fn drop(&mut self) {
        let mut a = raw::drm_vela_vm_destroy {
            vm_id: self.id,
            pad: 0,
        };
        // Borrowing guarantees no queue of ours is alive, so this cannot be EBUSY.
        let _ = raw::vm_destroy(self.dev, &mut a);
    }
}

/// A mapping of a buffer range in a VM; unbound on drop.
#[derive(Debug)]
pub struct Binding<'a> {
    vm: &'a Vm<'a>,
    va: u64,
    size: u64,
    allocated: bool,
    _bo: PhantomData<&'a Buffer<'a>>,
}

impl Binding<'_> {
    /// The GPU VA of the start of the mapping.
    pub fn va(&self) -> u64 {
        self.va
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The VA `offset` bytes into the mapping.
    pub fn at(&self, offset: u64) -> u64 {
        self.va.wrapping_add(offset)
    }

    /// Unbinds now, reporting the error that drop would swallow.
    pub fn unbind(self) -> Result<()> {
        let r = self.vm.unbind_raw(self.va, self.size);
        if r.is_ok() && self.allocated {
            self.vm.allocator().free(self.va, self.size);
        }
        std::mem::forget(self);
        r
    }
}

impl Drop for Binding<'_> {
    fn drop(&mut self) {
        // On failure the VA stays out of the allocator: reusing a range the kernel may still
        // have mapped would turn into EEXIST later.
        if self.vm.unbind_raw(self.va, self.size).is_ok() && self.allocated {
            self.vm.allocator().free(self.va, self.size);
        }
    }
}
