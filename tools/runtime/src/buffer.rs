// SPDX-License-Identifier: GPL-2.0

//! GEM buffer objects.

use std::{
    fmt,
    ops::BitOr,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
};

use vela_uapi as u;

use crate::{raw, Device, Error, Ioctl, Mapping, Result};

/// `DRM_VELA_BO_*` creation flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BufferFlags(pub u32);

impl BufferFlags {
    /// System memory, not mappable by the CPU.
    pub const NONE: Self = Self(0);
    pub const VRAM: Self = Self(u::DRM_VELA_BO_VRAM);
    pub const CPU_VISIBLE: Self = Self(u::DRM_VELA_BO_CPU_VISIBLE);
    pub const VRAM_ONLY: Self = Self(u::DRM_VELA_BO_VRAM_ONLY);
    /// Every flag the header defines.
    pub const ALL: Self = Self(u::DRM_VELA_BO_FLAGS);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl BitOr for BufferFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Display for BufferFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (b, n) in [
            (Self::VRAM, "VRAM"),
            (Self::CPU_VISIBLE, "CPU_VISIBLE"),
            (Self::VRAM_ONLY, "VRAM_ONLY"),
        ] {
            if self.contains(b) {
                parts.push(n.to_string());
            }
        }
        let unknown = self.0 & !u::DRM_VELA_BO_FLAGS;
        if unknown != 0 {
            parts.push(format!("{unknown:#x}"));
        }
        if parts.is_empty() {
            f.write_str("0")
        } else {
            f.write_str(&parts.join("|"))
        }
    }
}

/// Where a buffer lives now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    System,
    Vram,
    /// A dma-buf of another exporter imported into this device (another Vela device, udmabuf,
    /// a dma-heap): its flags read as 0 and it has no BO_MMAP_OFFSET.
    Imported,
    /// A value this runtime does not know (a newer kernel).
    Other(u32),
}

impl From<u32> for Placement {
    fn from(v: u32) -> Self {
        match v {
            u::DRM_VELA_PLACEMENT_SYSTEM => Placement::System,
            u::DRM_VELA_PLACEMENT_VRAM => Placement::Vram,
            u::DRM_VELA_PLACEMENT_IMPORTED => Placement::Imported,
            o => Placement::Other(o),
        }
    }
}

/// What BO_INFO reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferInfo {
    pub flags: BufferFlags,
    pub size: u64,
    pub placement: Placement,
}

/// A GEM buffer object of a [`Device`]; the handle is closed on drop (when the last `Buffer`
/// holding it goes: see [`Buffer::import`]).
#[derive(Debug)]
pub struct Buffer<'d> {
    dev: &'d Device,
    handle: u32,
    size: u64,
    flags: BufferFlags,
}

impl<'d> Buffer<'d> {
    /// Creates a buffer of at least `size` bytes (the kernel rounds up to 4 KiB).
    pub fn create(dev: &'d Device, size: u64, flags: BufferFlags) -> Result<Self> {
        let mut a = raw::drm_vela_bo_create {
            size,
            flags: flags.0,
            ..Default::default()
        };
        raw::bo_create(dev, &mut a).map_err(|e| {
            Error::ioctl(Ioctl::BoCreate, format!("size={size:#x} flags={flags}"), e)
        })?;
        dev.hold_handle(a.handle);
        let mut bo = Self {
            dev,
            handle: a.handle,
            // Until BO_INFO says otherwise, the documented rounding.
            size: crate::page_round(size).unwrap_or(size),
            flags,
        };
        // The kernel's size is the truth for mmap lengths and bind ranges.
        if let Ok(i) = bo.info() {
            bo.size = i.size;
        }
        Ok(bo)
    }

    /// Imports the dma-buf `dmabuf` into `dev` (DRM_IOCTL_PRIME_FD_TO_HANDLE); size and flags
    /// are what BO_INFO then reports.
    ///
    /// The buffer can be bound and used by commands like a local one. A foreign dma-buf
    /// (another device's, udmabuf, a dma-heap) reads as [`Placement::Imported`] with no flags
    /// and cannot be mapped through the device (map the dma-buf fd instead). A dma-buf this
    /// device exported comes back as the original object, with its placement, flags and
    /// mapping. If this open file already holds a handle for the object (it exported it, or
    /// imported it before), the kernel returns that same handle: both `Buffer`s then share it,
    /// and it is closed when the last of them is dropped.
    ///
    /// The dma-buf fd can be closed right after; the buffer keeps the memory alive.
    pub fn import(dev: &'d Device, dmabuf: impl AsFd) -> Result<Self> {
        let fd = dmabuf.as_fd().as_raw_fd();
        let mut a = raw::drm_prime_handle {
            fd,
            ..Default::default()
        };
        raw::prime_fd_to_handle(dev, &mut a).map_err(|e| {
            Error::ioctl(
                Ioctl::PrimeFdToHandle,
                format!("device={} fd={fd}", dev.path().display()),
                e,
            )
        })?;
        dev.hold_handle(a.handle);
        let mut bo = Self {
            dev,
            handle: a.handle,
            size: 0,
            flags: BufferFlags::NONE,
        };
        // On failure `bo` is dropped, which lets go of the handle.
        let i = bo.info()?;
        bo.size = i.size;
        bo.flags = i.flags;
        Ok(bo)
    }

    /// Exports the buffer as a dma-buf (DRM_IOCTL_PRIME_HANDLE_TO_FD, read-write and
    /// close-on-exec). The fd can be passed to another device's [`Buffer::import`], or to any
    /// other dma-buf importer; the buffer lives as long as the fd or an import holds it.
    pub fn export(&self) -> Result<OwnedFd> {
        let flags = raw::DRM_CLOEXEC | raw::DRM_RDWR;
        let mut a = raw::drm_prime_handle {
            handle: self.handle,
            flags,
            fd: -1,
        };
        let args = || {
            format!(
                "device={} handle={} flags=DRM_CLOEXEC|DRM_RDWR",
                self.dev.path().display(),
                self.handle
            )
        };
        raw::prime_handle_to_fd(self.dev, &mut a)
            .map_err(|e| Error::ioctl(Ioctl::PrimeHandleToFd, args(), e))?;
        if a.fd < 0 {
            return Err(Error::invalid(
                "PRIME_HANDLE_TO_FD reply",
                format!("{}: the kernel returned fd {}", args(), a.fd),
            ));
        }
        // SAFETY: the kernel just installed this fd for us and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(a.fd) })
    }

    /// A CPU-visible buffer in VRAM.
    pub fn vram(dev: &'d Device, size: u64) -> Result<Self> {
        Self::create(dev, size, BufferFlags::VRAM | BufferFlags::CPU_VISIBLE)
    }

    /// A CPU-visible buffer in system memory.
    pub fn system(dev: &'d Device, size: u64) -> Result<Self> {
        Self::create(dev, size, BufferFlags::CPU_VISIBLE)
    }

    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Size in bytes, page-rounded.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn flags(&self) -> BufferFlags {
        self.flags
    }

    pub fn device(&self) -> &'d Device {
        self.dev
    }

    pub fn info(&self) -> Result<BufferInfo> {
        let mut a = raw::drm_vela_bo_info {
            handle: self.handle,
            ..Default::default()
        };
        raw::bo_info(self.dev, &mut a)
            .map_err(|e| Error::ioctl(Ioctl::BoInfo, format!("handle={}", self.handle), e))?;
        Ok(BufferInfo {
            flags: BufferFlags(a.flags),
            size: a.size,
            placement: a.placement.into(),
        })
    }

    /// The fake offset to pass to `mmap` on the device file.
    pub fn mmap_offset(&self) -> Result<u64> {
        let mut a = raw::drm_vela_bo_mmap_offset {
            handle: self.handle,
            ..Default::default()
        };
        raw::bo_mmap_offset(self.dev, &mut a).map_err(|e| {
            Error::ioctl(
                Ioctl::BoMmapOffset,
                format!("handle={} flags={}", self.handle, self.flags),
                e,
            )
        })?;
        Ok(a.offset)
    }

    /// Maps the whole buffer into this process (it must be CPU_VISIBLE).
    pub fn map(&self) -> Result<Mapping<'_>> {
        Mapping::new(self)
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        // Nothing useful can be done about a failure here: the handle is ours and valid, so
        // only a gone device could fail it, and then the handle dies with the file anyway.
        if self.dev.release_handle(self.handle) {
            let _ = raw::gem_close(self.dev, self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_display() {
        assert_eq!(
            (BufferFlags::VRAM | BufferFlags::CPU_VISIBLE).to_string(),
            "VRAM|CPU_VISIBLE"
        );
        assert_eq!(BufferFlags(0x80).to_string(), "0x80");
        assert_eq!(BufferFlags::NONE.to_string(), "0");
        assert_eq!(BufferFlags::ALL.0, 7);
    }

    #[test]
    fn placement_from_raw() {
        assert_eq!(Placement::from(0), Placement::System);
        assert_eq!(Placement::from(1), Placement::Vram);
        assert_eq!(Placement::from(2), Placement::Imported);
        assert_eq!(Placement::from(9), Placement::Other(9));
    }
}
