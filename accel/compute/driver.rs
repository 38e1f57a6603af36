// SPDX-License-Identifier: GPL-2.0

//! The DRM driver: what the accel subsystem registers.

use kernel::{
    drm,
    drm::ioctl,
    new_mutex, pci,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};

use super::{
    exports::Exports,
    file::File,
    gem::VelaObject,
    placement::Evictable,
    queue::HwHolders,
    sched::Sched,
    sysmem::{Budget, Retired},
};
use crate::hw;

pub(crate) struct VelaDriver;

/// The accel device of one Vela.
pub(crate) type VelaDevice<Ctx = drm::Registered> = drm::Device<VelaDriver, Ctx>;

/// What the accel frontend keeps per device. The core ([`hw::Chip`]) keeps none of it.
#[pin_data]
pub(crate) struct VelaData {
    pub(crate) chip: Arc<hw::Chip>,
    /// Runs the jobs that wait in software.
    pub(crate) sched: Arc<Sched>,
    /// Which user queue holds each hardware queue the frontend took.
    pub(crate) holders: Arc<HwHolders>,
    /// The buffers exported as dma-bufs, which unbind, reset and loss revoke.
    #[pin]
    pub(crate) exports: Exports,
    /// The VRAM buffers that may be evicted (see [`Evictable`]).
    pub(crate) evictable: Arc<Mutex<Evictable>>,
    /// System memory held by the device's buffers.
    pub(crate) sys_budget: Arc<Budget>,
    /// System memory that moves into VRAM left behind, on its way back to the allocator.
    pub(crate) retired: Arc<Retired>,
}

const INFO: drm::DriverInfo = drm::DriverInfo {
    major: 0,
    minor: 1,
    patchlevel: 0,
    name: c"vela",
    desc: c"Vela PCIe accelerator",
};

#[vtable]
impl drm::Driver for VelaDriver {
    type Data = VelaData;
    type File = File;
    type Object<Ctx: drm::DeviceContext> = drm::gem::Object<VelaObject, Ctx>;

    const INFO: drm::DriverInfo = INFO;
    const FEAT_COMPUTE_ACCEL: bool = true;
    const FEAT_SYNCOBJ: bool = true;
    const FEAT_GEM_GPUVA: bool = true;
    // Open files pin vela.ko: rmmod fails with EBUSY while one is open.
    const OWNER: Option<&'static kernel::ThisModule> = Some(&crate::THIS_MODULE);

    kernel::declare_drm_ioctls! {
        uapi: crate::uapi;
        (VELA_QUERY, drm_vela_query, ioctl::RENDER_ALLOW, File::query),
        (VELA_BO_CREATE, drm_vela_bo_create, ioctl::RENDER_ALLOW, File::bo_create),
        (VELA_BO_INFO, drm_vela_bo_info, ioctl::RENDER_ALLOW, File::bo_info),
        (VELA_BO_MMAP_OFFSET, drm_vela_bo_mmap_offset, ioctl::RENDER_ALLOW, File::bo_mmap_offset),
        (VELA_VM_CREATE, drm_vela_vm_create, ioctl::RENDER_ALLOW, File::vm_create),
        (VELA_VM_DESTROY, drm_vela_vm_destroy, ioctl::RENDER_ALLOW, File::vm_destroy),
        (VELA_VM_BIND, drm_vela_vm_bind, ioctl::RENDER_ALLOW, File::vm_bind),
        (VELA_VM_UNBIND, drm_vela_vm_unbind, ioctl::RENDER_ALLOW, File::vm_unbind),
        (VELA_QUEUE_CREATE, drm_vela_queue_create, ioctl::RENDER_ALLOW, File::queue_create),
        (VELA_QUEUE_DESTROY, drm_vela_queue_destroy, ioctl::RENDER_ALLOW, File::queue_destroy),
        (VELA_SUBMIT, drm_vela_submit, ioctl::RENDER_ALLOW, File::submit),
        (VELA_WAIT, drm_vela_wait, ioctl::RENDER_ALLOW, File::wait),
        (VELA_BO_WAIT, drm_vela_bo_wait, ioctl::RENDER_ALLOW, File::bo_wait),
    }
}

/// Registers the accel device for `chip`; it is unregistered when `pdev` is unbound.
pub(crate) fn register(
    pdev: &pci::Device<kernel::device::Core<'_>>,
    chip: Arc<hw::Chip>,
) -> Result<ARef<VelaDevice>> {
    let data = try_pin_init!(VelaData {
        chip,
        sched: Sched::new()?,
        holders: HwHolders::new()?,
        exports <- Exports::new(),
        evictable: Arc::pin_init(new_mutex!(Evictable::new()), GFP_KERNEL)?,
        sys_budget: Budget::new()?,
        retired: Retired::new()?,
    });
    let drm = drm::UnregisteredDevice::<VelaDriver>::new(pdev.as_ref(), data)?;
    let drm = drm::driver::Registration::new_foreign_owned(drm, pdev.as_ref(), 0)?;
    Ok(drm.into())
}

/// The hooks the core calls on the accel frontend ([`hw::Frontend`]).
pub(crate) struct Hooks(pub(crate) ARef<VelaDevice>);

impl hw::Frontend for Hooks {
    fn revoke_peers(&self) {
        self.0.exports.revoke_all();
    }

    fn unmap_cpu(&self) {
        self.0.unmap_all_mappings();
    }
}

/// The accel frontend lets go of the device, between the core's `quiesce` and `shutdown`:
/// jobs that wait in software fail with `ENODEV` and the scheduler stops. Exports and CPU
/// mappings go in the core's `shutdown`, through [`Hooks`], after interrupts.
pub(crate) fn unbind(dev: &VelaDevice) {
    dev.sched.stop();
    dev.retired.stop();
}
