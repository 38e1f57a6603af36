// SPDX-License-Identifier: GPL-2.0

//! One typed function per ioctl, passing the argument struct through untouched and returning
//! the bare `io::Error`. The safe types are built on these; the selftests and the fuzzer use
//! them directly to send arguments the safe types would never produce.

use std::{io, os::fd::AsRawFd};

use vela_uapi as u;

pub use u::{
    drm_vela_bo_create, drm_vela_bo_info, drm_vela_bo_mmap_offset, drm_vela_query,
    drm_vela_query_device, drm_vela_queue_create, drm_vela_queue_destroy, drm_vela_submit,
    drm_vela_vm_bind, drm_vela_vm_create, drm_vela_vm_destroy, drm_vela_vm_unbind, drm_vela_wait,
};

/// `struct drm_gem_close` from drm.h; the uapi crate only generates vela_accel.h's types.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct drm_gem_close {
    pub handle: u32,
    pub pad: u32,
}

/// `DRM_IOW(0x09, struct drm_gem_close)`: direction write (1) in bits 31:30, size 8, type 'd'.
pub const DRM_IOCTL_GEM_CLOSE: u32 = (1 << 30) | (8 << 16) | ((b'd' as u32) << 8) | 0x09;

macro_rules! ioctl_fn {
    ($(#[$m:meta])* $name:ident, $req:ident, $ty:ty) => {
        $(#[$m])*
        pub fn $name(fd: &impl AsRawFd, arg: &mut $ty) -> io::Result<()> {
            // SAFETY: the request number is the one the header defines for this struct type.
            unsafe { u::ioctl(fd, u::$req as u32, arg) }
        }
    };
}

ioctl_fn!(
    /// `DRM_IOCTL_VELA_QUERY`.
    query, DRM_IOCTL_VELA_QUERY, drm_vela_query
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_BO_CREATE`.
    bo_create, DRM_IOCTL_VELA_BO_CREATE, drm_vela_bo_create
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_BO_INFO`.
    bo_info, DRM_IOCTL_VELA_BO_INFO, drm_vela_bo_info
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_BO_MMAP_OFFSET`.
    bo_mmap_offset, DRM_IOCTL_VELA_BO_MMAP_OFFSET, drm_vela_bo_mmap_offset
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_VM_CREATE`.
    vm_create, DRM_IOCTL_VELA_VM_CREATE, drm_vela_vm_create
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_VM_DESTROY`.
    vm_destroy, DRM_IOCTL_VELA_VM_DESTROY, drm_vela_vm_destroy
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_VM_BIND`.
    vm_bind, DRM_IOCTL_VELA_VM_BIND, drm_vela_vm_bind
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_VM_UNBIND`.
    vm_unbind, DRM_IOCTL_VELA_VM_UNBIND, drm_vela_vm_unbind
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_QUEUE_CREATE`.
    queue_create, DRM_IOCTL_VELA_QUEUE_CREATE, drm_vela_queue_create
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_QUEUE_DESTROY`.
    queue_destroy, DRM_IOCTL_VELA_QUEUE_DESTROY, drm_vela_queue_destroy
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_SUBMIT`. The kernel reads `command_count` commands at `commands`;
    /// a bad pointer there is the kernel's to catch (`EFAULT`), not a memory-safety issue here.
    submit, DRM_IOCTL_VELA_SUBMIT, drm_vela_submit
);
ioctl_fn!(
    /// `DRM_IOCTL_VELA_WAIT`.
    wait, DRM_IOCTL_VELA_WAIT, drm_vela_wait
);

/// `struct drm_prime_handle` from drm.h: the argument of both PRIME ioctls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct drm_prime_handle {
    pub handle: u32,
    /// `DRM_CLOEXEC | DRM_RDWR` at most; only HANDLE_TO_FD reads it.
    pub flags: u32,
    pub fd: i32,
}

/// drm.h's `DRM_CLOEXEC` (`O_CLOEXEC`): the dma-buf fd HANDLE_TO_FD returns is close-on-exec.
pub const DRM_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
/// drm.h's `DRM_RDWR` (`O_RDWR`): the dma-buf fd can be mapped for writing.
pub const DRM_RDWR: u32 = libc::O_RDWR as u32;

/// `DRM_IOWR(nr, size)` of drm.h: direction read|write (3) in bits 31:30, type 'd'.
const fn drm_iowr(nr: u32, size: usize) -> u32 {
    (3 << 30) | ((size as u32) << 16) | ((b'd' as u32) << 8) | nr
}

/// `DRM_IOWR(0x2d, struct drm_prime_handle)`.
pub const DRM_IOCTL_PRIME_HANDLE_TO_FD: u32 =
    drm_iowr(0x2d, std::mem::size_of::<drm_prime_handle>());
/// `DRM_IOWR(0x2e, struct drm_prime_handle)`.
pub const DRM_IOCTL_PRIME_FD_TO_HANDLE: u32 =
    drm_iowr(0x2e, std::mem::size_of::<drm_prime_handle>());

/// `DRM_IOCTL_PRIME_HANDLE_TO_FD`: exports `arg.handle` as a dma-buf; the fd comes back in
/// `arg.fd`, owned by the caller.
pub fn prime_handle_to_fd(fd: &impl AsRawFd, arg: &mut drm_prime_handle) -> io::Result<()> {
    // SAFETY: DRM_IOCTL_PRIME_HANDLE_TO_FD takes a `struct drm_prime_handle`, which
    // `drm_prime_handle` mirrors.
    unsafe { u::ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, arg) }
}

/// `DRM_IOCTL_PRIME_FD_TO_HANDLE`: imports the dma-buf `arg.fd`; the GEM handle comes back in
/// `arg.handle` (the handle this file already has for the object, if it has one).
pub fn prime_fd_to_handle(fd: &impl AsRawFd, arg: &mut drm_prime_handle) -> io::Result<()> {
    // SAFETY: as in `prime_handle_to_fd`.
    unsafe { u::ioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, arg) }
}

/// `DRM_IOCTL_GEM_CLOSE`: drops a GEM handle of this file.
pub fn gem_close(fd: &impl AsRawFd, handle: u32) -> io::Result<()> {
    let mut arg = drm_gem_close { handle, pad: 0 };
    // SAFETY: DRM_IOCTL_GEM_CLOSE takes a `struct drm_gem_close`, which `drm_gem_close` mirrors.
    unsafe { u::ioctl(fd, DRM_IOCTL_GEM_CLOSE, &mut arg) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gem_close_number_matches_drm_h() {
        // The value libdrm's drm.h gives DRM_IOCTL_GEM_CLOSE on every Linux architecture that
        // uses the generic ioctl encoding.
        assert_eq!(DRM_IOCTL_GEM_CLOSE, 0x4008_6409);
        assert_eq!(std::mem::size_of::<drm_gem_close>(), 8);
    }

    #[test]
    fn prime_numbers_match_drm_h() {
        // DRM_IOWR(0x2d / 0x2e, struct drm_prime_handle) as libdrm's drm.h gives them.
        assert_eq!(DRM_IOCTL_PRIME_HANDLE_TO_FD, 0xc00c_642d);
        assert_eq!(DRM_IOCTL_PRIME_FD_TO_HANDLE, 0xc00c_642e);
        assert_eq!(std::mem::size_of::<drm_prime_handle>(), 12);
        assert_eq!(DRM_CLOEXEC, 0o2000000);
        assert_eq!(DRM_RDWR, 2);
    }

    #[test]
    fn argument_structs_match_the_header_layout() {
        use std::mem::size_of;
        assert_eq!(size_of::<drm_vela_bo_create>(), 16);
        assert_eq!(size_of::<drm_vela_bo_info>(), 24);
        assert_eq!(size_of::<drm_vela_bo_mmap_offset>(), 16);
        assert_eq!(size_of::<drm_vela_vm_create>(), 8);
        assert_eq!(size_of::<drm_vela_vm_destroy>(), 8);
        assert_eq!(size_of::<drm_vela_vm_bind>(), 40);
        assert_eq!(size_of::<drm_vela_vm_unbind>(), 24);
        assert_eq!(size_of::<drm_vela_queue_create>(), 16);
        assert_eq!(size_of::<drm_vela_queue_destroy>(), 8);
        // 32 bytes in the first version; the sync object fields were appended (uapi.rst).
        assert_eq!(size_of::<drm_vela_submit>(), 48);
        assert_eq!(size_of::<drm_vela_wait>(), 24);
        assert_eq!(size_of::<vela_uapi::drm_vela_bo_wait>(), 16);
        assert_eq!(size_of::<vela_uapi::drm_vela_query_counters>(), 128);
    }

    #[test]
    fn ioctl_numbers_carry_their_struct_size() {
        let cases: [(u32, usize); 4] = [
            (
                u::DRM_IOCTL_VELA_VM_BIND,
                size_of_val(&drm_vela_vm_bind::default()),
            ),
            (
                u::DRM_IOCTL_VELA_SUBMIT,
                size_of_val(&drm_vela_submit::default()),
            ),
            (
                u::DRM_IOCTL_VELA_WAIT,
                size_of_val(&drm_vela_wait::default()),
            ),
            (
                u::DRM_IOCTL_VELA_BO_CREATE,
                size_of_val(&drm_vela_bo_create::default()),
            ),
        ];
        for (nr, size) in cases {
            assert_eq!(((nr >> 16) & 0x3fff) as usize, size);
        }
    }
}
