// SPDX-License-Identifier: GPL-2.0

//! An open `/dev/accel/accelN` and the ioctls it serves.

use kernel::{
    drm,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

use super::{
    driver::{VelaDevice, VelaDriver},
    query,
};
use crate::uapi;

/// Per-open-file state.
pub(crate) struct File;

impl drm::file::DriverFile for File {
    type Driver = VelaDriver;

    fn open(_dev: &VelaDevice) -> Result<Pin<KBox<Self>>> {
        Ok(KBox::new(Self, GFP_KERNEL)?.into())
    }
}

impl File {
    /// QUERY: copies one of the device's descriptions (identity, ...) to userspace.
    pub(crate) fn query(
        dev: &VelaDevice,
        args: &mut uapi::drm_vela_query,
        _file: &drm::File<File>,
    ) -> Result<u32> {
        let reply = query::Reply::new(args, &dev.core.identity, dev.core.pdev.revision_id())?;
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
}
