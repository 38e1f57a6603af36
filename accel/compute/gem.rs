// SPDX-License-Identifier: GPL-2.0

//! Buffer objects. A VRAM buffer owns its VRAM blocks from creation to its last reference;
//! userspace maps it write-combined through BAR2.

use kernel::{
    drm::{gem, gem::BaseObject, DeviceContext},
    mm::virt::VmaNew,
    page::PAGE_SIZE,
    prelude::*,
    sync::aref::ARef,
};

use super::driver::{VelaDevice, VelaDriver};
use crate::{
    hw::vram::{self, VramBlocks},
    uapi,
};

/// Driver data of a GEM object.
#[pin_data]
pub(crate) struct VelaObject {
    /// DRM_VELA_BO_* creation flags.
    pub(crate) flags: u32,
    /// The VRAM backing.
    pub(crate) vram: VramBlocks,
}

/// A checked BO_CREATE request.
pub(crate) struct BoArgs {
    pub(crate) flags: u32,
}

impl gem::DriverObject for VelaObject {
    type Driver = VelaDriver;
    type Args = BoArgs;

    fn new<Ctx: DeviceContext>(
        dev: &VelaDevice<Ctx>,
        size: usize,
        args: Self::Args,
    ) -> impl PinInit<Self, Error> {
        let vram = u64::try_from(size)
            .map_err(|_| EINVAL)
            .and_then(|size| dev.core.vram.alloc(size, false));
        try_pin_init!(VelaObject {
            flags: args.flags,
            vram: vram?,
        })
    }

    const HAS_MMAP: bool = true;

    fn mmap(obj: &gem::Object<Self>, vma: &VmaNew, offset: usize) -> Result {
        if obj.flags & uapi::DRM_VELA_BO_CPU_VISIBLE == 0 {
            return Err(EINVAL);
        }
        let core = &obj.dev().core;
        let (start, end) = (vma.start(), vma.end());
        let mut obj_pos: usize = 0;
        let mut addr = start;
        for (vram_off, len) in vram::runs(&obj.vram) {
            let len = usize::try_from(len)?;
            let run_end = obj_pos.checked_add(len).ok_or(EINVAL)?;
            // The part of this run that falls inside [offset, offset + mapping length).
            if run_end > offset && addr < end {
                let skip = offset.saturating_sub(obj_pos);
                let n = (len - skip).min(end - addr);
                let phys = core.vram_phys.checked_add(vram_off).ok_or(EINVAL)?;
                let pfn = usize::try_from(phys)? / PAGE_SIZE + skip / PAGE_SIZE;
                // SAFETY: the pfns are this buffer's own VRAM inside BAR2, device memory that
                // the buffer owns until its last reference goes, and the mapping holds a
                // reference (drm_gem_vm_open/close), so the VRAM cannot be reused under it.
                unsafe { vma.remap_pfn_range_wc(addr, pfn, n)? };
                addr += n;
            }
            obj_pos = run_end;
        }
        if addr != end {
            return Err(EINVAL);
        }
        Ok(())
    }
}

impl VelaObject {
    /// Creates a buffer, checking the request as BO_CREATE documents.
    pub(crate) fn create(dev: &VelaDevice, size: u64, flags: u32) -> Result<ARef<gem::Object<Self>>> {
        check_create(size, flags, dev.core.vram.size())?;
        let size = usize::try_from(size.next_multiple_of(vram::PAGE)).map_err(|_| EINVAL)?;
        gem::Object::<Self>::new(dev, size, BoArgs { flags })
    }
}

/// BO_CREATE's argument rules, apart from the allocation, so KUnit can check them. Malformed
/// arguments are EINVAL whatever the placement; only a well-formed request for system memory
/// gets EOPNOTSUPP.
pub(crate) fn check_create(size: u64, flags: u32, vram_size: u64) -> Result {
    if flags & !uapi::DRM_VELA_BO_FLAGS != 0 {
        return Err(EINVAL);
    }
    let vram = flags & uapi::DRM_VELA_BO_VRAM != 0;
    if flags & uapi::DRM_VELA_BO_VRAM_ONLY != 0 && !vram {
        return Err(EINVAL);
    }
    if size == 0 || size.checked_next_multiple_of(vram::PAGE).is_none() {
        return Err(EINVAL);
    }
    if !vram {
        // System-memory buffers need DMA mappings made from ioctl context, which the kernel
        // crate cannot give a DRM driver yet (Documentation/driver.rst).
        return Err(EOPNOTSUPP);
    }
    if size > vram_size {
        return Err(EINVAL);
    }
    Ok(())
}

/// Looks a handle up.
pub(crate) fn lookup(
    file: &kernel::drm::File<super::file::File>,
    handle: u32,
) -> Result<ARef<gem::Object<VelaObject>>> {
    gem::Object::lookup_handle(file, handle)
}

#[kunit_tests(vela_bo)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const VRAM: u32 = uapi::DRM_VELA_BO_VRAM;

    #[test]
    fn create_rules() {
        assert_eq!(check_create(4096, VRAM, 256 * MIB), Ok(()));
        assert_eq!(check_create(256 * MIB, VRAM | uapi::DRM_VELA_BO_CPU_VISIBLE, 256 * MIB), Ok(()));
        assert_eq!(check_create(0, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(256 * MIB + 1, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(u64::MAX, VRAM, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(4096, VRAM | (1 << 31), 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(4096, uapi::DRM_VELA_BO_VRAM_ONLY, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(4096, uapi::DRM_VELA_BO_CPU_VISIBLE, 256 * MIB), Err(EOPNOTSUPP));
        assert_eq!(check_create(0, 0, 256 * MIB), Err(EINVAL));
        assert_eq!(check_create(u64::MAX, 0, 256 * MIB), Err(EINVAL));
    }
}
