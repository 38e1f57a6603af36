// SPDX-License-Identifier: GPL-2.0

//! GEM objects. The DRM core needs an object type before any buffer ioctl exists; buffers in
//! VRAM and system memory come with the accel core.

use kernel::{drm::gem, drm::DeviceContext, prelude::*};

use super::driver::{VelaDevice, VelaDriver};

/// Driver data of a GEM object.
#[pin_data]
pub(crate) struct VelaObject {}

impl gem::DriverObject for VelaObject {
    type Driver = VelaDriver;
    type Args = ();

    fn new<Ctx: DeviceContext>(
        _dev: &VelaDevice<Ctx>,
        _size: usize,
        _args: Self::Args,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(VelaObject {})
    }
}
