// SPDX-License-Identifier: GPL-2.0

//! Errors that say which ioctl failed, with which arguments, and what the errno means there.

use std::{fmt, io, path::PathBuf};

/// The ioctls a [`crate::Device`] issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ioctl {
    Query,
    BoCreate,
    BoInfo,
    BoMmapOffset,
    VmCreate,
    VmDestroy,
    VmBind,
    VmUnbind,
    QueueCreate,
    QueueDestroy,
    Submit,
    Wait,
    GemClose,
    PrimeHandleToFd,
    PrimeFdToHandle,
}

impl Ioctl {
    pub const ALL: [Ioctl; 15] = [
        Ioctl::Query,
        Ioctl::BoCreate,
        Ioctl::BoInfo,
        Ioctl::BoMmapOffset,
        Ioctl::VmCreate,
        Ioctl::VmDestroy,
        Ioctl::VmBind,
        Ioctl::VmUnbind,
        Ioctl::QueueCreate,
        Ioctl::QueueDestroy,
        Ioctl::Submit,
        Ioctl::Wait,
        Ioctl::GemClose,
        Ioctl::PrimeHandleToFd,
        Ioctl::PrimeFdToHandle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Ioctl::Query => "DRM_IOCTL_VELA_QUERY",
            Ioctl::BoCreate => "DRM_IOCTL_VELA_BO_CREATE",
            Ioctl::BoInfo => "DRM_IOCTL_VELA_BO_INFO",
            Ioctl::BoMmapOffset => "DRM_IOCTL_VELA_BO_MMAP_OFFSET",
            Ioctl::VmCreate => "DRM_IOCTL_VELA_VM_CREATE",
            Ioctl::VmDestroy => "DRM_IOCTL_VELA_VM_DESTROY",
            Ioctl::VmBind => "DRM_IOCTL_VELA_VM_BIND",
            Ioctl::VmUnbind => "DRM_IOCTL_VELA_VM_UNBIND",
            Ioctl::QueueCreate => "DRM_IOCTL_VELA_QUEUE_CREATE",
            Ioctl::QueueDestroy => "DRM_IOCTL_VELA_QUEUE_DESTROY",
            Ioctl::Submit => "DRM_IOCTL_VELA_SUBMIT",
            Ioctl::Wait => "DRM_IOCTL_VELA_WAIT",
            Ioctl::GemClose => "DRM_IOCTL_GEM_CLOSE",
            Ioctl::PrimeHandleToFd => "DRM_IOCTL_PRIME_HANDLE_TO_FD",
            Ioctl::PrimeFdToHandle => "DRM_IOCTL_PRIME_FD_TO_HANDLE",
        }
    }

    /// What `errno` means for this ioctl according to `vela_accel.h` and `uapi.rst`, and for the
    /// PRIME ioctls the DRM core's. A lookup that found nothing is `ENOENT`, DRM's convention,
    /// which the header states for every handle and id.
    pub fn meaning(self, errno: i32) -> &'static str {
        use libc::{
            EBADF, EBUSY, EEXIST, EFAULT, EINVAL, EIO, EMFILE, ENODEV, ENOENT, ENOMEM, ENOTTY,
            EOPNOTSUPP, ETIME,
        };
        match (self, errno) {
            (_, EFAULT) => "a user pointer in the arguments is not accessible",
            (_, ENODEV) => "the device is gone (unbound or unplugged)",
            (_, ENOTTY) => "the file is not a Vela accel node (ioctl unknown to its driver)",
            (Ioctl::Query, EINVAL) => {
                "unknown query id, non-zero flags or pad, or a reply buffer smaller than the reply"
            }
            (Ioctl::BoCreate, EINVAL) => {
                "size is 0 or more than the memory domain holds, unknown flags, or VRAM_ONLY without VRAM"
            }
            (Ioctl::BoCreate, ENOMEM) => "the memory domain has not that much free space",
            (Ioctl::VmCreate, EBUSY) => "every MMU context of the device is taken (15 VMs)",
            (Ioctl::QueueCreate, EBUSY) => "the device has as many queues as it allows (64)",
            (Ioctl::Submit, EBUSY) => "the queue's ring stayed full for 5 s",
            (Ioctl::BoInfo, EINVAL) => "non-zero pad",
            (Ioctl::BoMmapOffset, EINVAL) => {
                "the buffer is not CPU_VISIBLE, is an import of another device's or exporter's \
                 dma-buf (map the dma-buf fd instead), or non-zero pad"
            }
            (Ioctl::BoInfo | Ioctl::BoMmapOffset, ENOENT) => "no buffer with this handle",
            (Ioctl::VmCreate, EINVAL) => "non-zero flags",
            (Ioctl::VmDestroy, EINVAL) => "non-zero pad",
            (Ioctl::VmDestroy, EBUSY) => {
                "the VM still has queues (destroy them first), or a destroyed queue of it still \
                 has jobs waiting for their dependencies"
            }
            (Ioctl::VmDestroy | Ioctl::QueueCreate, ENOENT) => "no VM with this id",
            (Ioctl::VmBind, EINVAL) => {
                "va, bo_offset or size not 4 KiB aligned or outside the VM or the buffer, \
                 flags without READ or with unknown bits, or non-zero pad"
            }
            (Ioctl::VmBind, EEXIST) => "the range overlaps an existing mapping of the VM",
            (Ioctl::VmBind, ENOENT) => "no VM with this id, or no buffer with this handle",
            (Ioctl::VmUnbind, ENOENT) => {
                "the range is not exactly one earlier bind of the VM (or no such VM)"
            }
            (Ioctl::VmUnbind, EINVAL) => "non-zero pad",
            (Ioctl::QueueCreate, EINVAL) => "non-zero flags or pad",
            (Ioctl::QueueDestroy, EINVAL) => "non-zero pad",
            (Ioctl::QueueDestroy | Ioctl::Submit | Ioctl::Wait, ENOENT) => "no queue with this id",
            (Ioctl::Submit, EINVAL) => {
                "command_count not in 1..=1024, more than 64 in-syncobjs, non-zero flags or pad, \
                 or a command with an unknown opcode or non-zero reserved fields"
            }
            (Ioctl::Wait, EINVAL) => {
                "a seqno never submitted on the queue, non-zero flags, or a negative timeout"
            }
            (Ioctl::Wait, ETIME) => "the timeout passed before the job completed",
            (Ioctl::Wait, EIO) => {
                "the job failed: a device error or MMU fault in it or in a job queued with it"
            }
            (Ioctl::GemClose, EINVAL) => "no buffer with this handle",
            (Ioctl::PrimeHandleToFd, ENOENT) => "no buffer with this handle",
            (Ioctl::PrimeHandleToFd, EINVAL) => "flags other than DRM_CLOEXEC | DRM_RDWR",
            (Ioctl::PrimeHandleToFd, EOPNOTSUPP) => {
                "the driver cannot export this buffer as a dma-buf"
            }
            (Ioctl::PrimeHandleToFd, EMFILE) => "the process has no free file descriptor",
            (Ioctl::PrimeFdToHandle, EBADF) => "fd is not an open file descriptor",
            (Ioctl::PrimeFdToHandle, EINVAL) => "fd is not a dma-buf",
            (Ioctl::PrimeFdToHandle, EOPNOTSUPP) => {
                "this device cannot reach the exporter's memory (no peer-to-peer path) and the \
                 buffer cannot move to system memory (VRAM_ONLY, or migration unsupported), or \
                 the driver does not import dma-bufs"
            }
            (_, ENOMEM) => "out of kernel memory",
            _ => "error not documented for this ioctl",
        }
    }
}

impl fmt::Display for Ioctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The symbolic name of an errno, for messages.
pub fn errno_name(errno: i32) -> &'static str {
    use libc::{
        EACCES, EAGAIN, EBADF, EBUSY, EEXIST, EFAULT, EINTR, EINVAL, EIO, EMFILE, ENODEV, ENOENT,
        ENOMEM, ENOSPC, ENOTTY, ENXIO, EOPNOTSUPP, EOVERFLOW, EPERM, ERANGE, ETIME, ETIMEDOUT,
    };
    match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EINTR => "EINTR",
        EIO => "EIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        EINVAL => "EINVAL",
        ENOTTY => "ENOTTY",
        ENOSPC => "ENOSPC",
        ERANGE => "ERANGE",
        ETIME => "ETIME",
        ETIMEDOUT => "ETIMEDOUT",
        EOVERFLOW => "EOVERFLOW",
        ENXIO => "ENXIO",
        EMFILE => "EMFILE",
        EOPNOTSUPP => "EOPNOTSUPP",
        _ => "E?",
    }
}

/// Everything the runtime can fail with.
#[derive(Debug)]
pub enum Error {
    /// An ioctl returned an error.
    Ioctl {
        ioctl: Ioctl,
        /// The arguments that mattered, as `name=value` pairs.
        args: String,
        errno: i32,
    },
    /// A job failed on the device (WAIT returned `EIO`).
    JobFailed { queue_id: u32, seqno: u64 },
    /// Opening a device node failed.
    Open { path: PathBuf, source: io::Error },
    /// The node answered, but is not a Vela device.
    NotVela { path: PathBuf, why: String },
    /// No Vela device was found under `/dev/accel`.
    NoDevice,
    /// `mmap` of a buffer failed.
    Mmap {
        handle: u32,
        size: u64,
        source: io::Error,
    },
    /// An argument the runtime checks before it reaches the kernel.
    InvalidArgument { what: &'static str, detail: String },
    /// A VM has no free virtual address range of the requested size.
    VaExhausted { vm_id: u32, size: u64 },
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn ioctl(ioctl: Ioctl, args: String, e: io::Error) -> Self {
        Error::Ioctl {
            ioctl,
            args,
            errno: e.raw_os_error().unwrap_or(0),
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what,
            detail: detail.into(),
        }
    }

    /// The errno behind the error, if one is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Ioctl { errno, .. } => Some(*errno),
            Error::JobFailed { .. } => Some(libc::EIO),
            Error::Open { source, .. } | Error::Mmap { source, .. } => source.raw_os_error(),
            Error::InvalidArgument { .. } => Some(libc::EINVAL),
            Error::VaExhausted { .. } => Some(libc::ENOSPC),
            Error::NotVela { .. } | Error::NoDevice => Some(libc::ENODEV),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Ioctl { ioctl, args, errno } => write!(
                f,
                "{ioctl}({args}) failed with {} ({}): {}",
                errno_name(*errno),
                io::Error::from_raw_os_error(*errno),
                ioctl.meaning(*errno)
            ),
            Error::JobFailed { queue_id, seqno } => write!(
                f,
                "job {seqno} on queue {queue_id} failed on the device (WAIT returned EIO: {})",
                Ioctl::Wait.meaning(libc::EIO)
            ),
            Error::Open { path, source } => write!(f, "cannot open {}: {source}", path.display()),
            Error::NotVela { path, why } => {
                write!(f, "{} is not a Vela device: {why}", path.display())
            }
            Error::NoDevice => f.write_str("no Vela device under /dev/accel (is vela.ko loaded?)"),
            Error::Mmap {
                handle,
                size,
                source,
            } => write!(f, "mmap of buffer {handle} ({size} bytes) failed: {source}"),
            Error::InvalidArgument { what, detail } => write!(f, "invalid {what}: {detail}"),
            Error::VaExhausted { vm_id, size } => write!(
                f,
                "VM {vm_id} has no free GPU virtual address range of {size:#x} bytes"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open { source, .. } | Error::Mmap { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e.errno() {
            Some(n) => io::Error::new(io::Error::from_raw_os_error(n).kind(), e.to_string()),
            None => io::Error::other(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_ioctl_args_errno_and_meaning() {
        let e = Error::Ioctl {
            ioctl: Ioctl::VmBind,
            args: "vm_id=3 va=0x1000".into(),
            errno: libc::EEXIST,
        };
        let s = e.to_string();
        assert!(s.starts_with("DRM_IOCTL_VELA_VM_BIND(vm_id=3 va=0x1000) failed with EEXIST"));
        assert!(s.contains("overlaps an existing mapping"), "{s}");
        assert_eq!(e.errno(), Some(libc::EEXIST));
    }

    #[test]
    fn documented_errnos_have_specific_meanings() {
        let documented = [
            (Ioctl::Query, libc::EINVAL),
            (Ioctl::BoCreate, libc::EINVAL),
            (Ioctl::BoCreate, libc::ENOMEM),
            (Ioctl::BoMmapOffset, libc::EINVAL),
            (Ioctl::VmDestroy, libc::EBUSY),
            (Ioctl::VmBind, libc::EINVAL),
            (Ioctl::VmBind, libc::EEXIST),
            (Ioctl::VmUnbind, libc::ENOENT),
            (Ioctl::Submit, libc::EINVAL),
            (Ioctl::Submit, libc::EFAULT),
            (Ioctl::Wait, libc::ETIME),
            (Ioctl::Wait, libc::EIO),
            (Ioctl::Wait, libc::EINVAL),
            (Ioctl::PrimeHandleToFd, libc::ENOENT),
            (Ioctl::PrimeFdToHandle, libc::EOPNOTSUPP),
            (Ioctl::PrimeFdToHandle, libc::EINVAL),
        ];
        for (i, e) in documented {
            let m = i.meaning(e);

            assert_ne!(m, "error not documented for this ioctl", "{i} {e}");
        }
        assert!(Ioctl::Wait.meaning(libc::EIO).contains("MMU fault"));
        assert!(Ioctl::VmDestroy.meaning(libc::EBUSY).contains("queues"));
    }

    #[test]
    fn every_ioctl_has_a_distinct_name() {
        let mut names: Vec<_> = Ioctl::ALL.iter().map(|i| i.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Ioctl::ALL.len());
    }

    #[test]
    fn job_failure_maps_to_eio() {
        let e = Error::JobFailed {
            queue_id: 1,
            seqno: 7,
        };
        assert_eq!(e.errno(), Some(libc::EIO));
        let io: io::Error = e.into();
        assert!(io.to_string().contains("job 7 on queue 1"));
    }
}
