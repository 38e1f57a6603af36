// SPDX-License-Identifier: GPL-2.0

//! The DRM driver: what the accel subsystem registers.

use kernel::{drm, drm::ioctl, pci, prelude::*, sync::aref::ARef, sync::Arc};

use super::{file::File, gem::VelaObject};
use crate::hw;

pub(crate) struct VelaDriver;

/// The accel device of one Vela.
pub(crate) type VelaDevice<Ctx = drm::Registered> = drm::Device<VelaDriver, Ctx>;

/// What the accel frontend keeps per device.
#[pin_data]
pub(crate) struct VelaData {
    pub(crate) core: Arc<hw::Core>,
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

    kernel::declare_drm_ioctls! {
        uapi: crate::uapi;
        (VELA_QUERY, drm_vela_query, ioctl::RENDER_ALLOW, File::query),
    }
}

/// Registers the accel device for `core`; it is unregistered when `pdev` is unbound.
pub(crate) fn register(
    pdev: &pci::Device<kernel::device::Core<'_>>,
    core: Arc<hw::Core>,
) -> Result<ARef<VelaDevice>> {
    let data = try_pin_init!(VelaData { core });
    let drm = drm::UnregisteredDevice::<VelaDriver>::new(pdev.as_ref(), data)?;
    let drm = drm::driver::Registration::new_foreign_owned(drm, pdev.as_ref(), 0)?;
    Ok(drm.into())
}
