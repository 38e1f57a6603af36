// SPDX-License-Identifier: GPL-2.0

//! QUERY: argument checks and the replies, kept apart from the ioctl plumbing so KUnit can
//! drive them.

use kernel::prelude::*;
use zerocopy::IntoBytes;

use crate::{hw::Identity, uapi};

/// A reply, ready to be copied out.
pub(crate) enum Reply {
    Device(uapi::drm_vela_query_device),
    Memory(uapi::drm_vela_query_memory),
    Counters(uapi::drm_vela_query_counters),
    Limits(uapi::drm_vela_query_limits),
}

/// The memory facts QUERY_MEMORY and QUERY_LIMITS report.
pub(crate) struct MemoryFacts {
    pub(crate) vram_size: u64,
    pub(crate) vram_free: u64,
    pub(crate) system_used: u64,
}

/// What the `size` field asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SizeCheck {
    /// `size == 0`: report the size, copy nothing.
    AskedForSize,
    /// The buffer holds the reply.
    Fits,
}

/// Checks the buffer size userspace offered against the reply's.
///
/// A larger buffer is fine (a newer userspace asking an older kernel): the reply's own size is
/// written back, so userspace learns how much is valid. A smaller one is an error rather than a
/// truncated reply, which would look valid and be wrong.
pub(crate) fn size_check(offered: u32, needed: u32) -> Result<SizeCheck> {
    match offered {
        0 => Ok(SizeCheck::AskedForSize),
        n if n < needed => Err(EINVAL),
        _ => Ok(SizeCheck::Fits),
    }
}

impl Reply {
    /// Validates `args` and builds the reply it asks for.
    pub(crate) fn new(
        args: &uapi::drm_vela_query,
        id: &Identity,
        revision: u8,
        mem: impl FnOnce() -> MemoryFacts,
        counters: impl FnOnce() -> Result<[u64; crate::hw::regs::COUNTERS]>,
    ) -> Result<Self> {
        if args.flags != 0 || args.pad != 0 {
            return Err(EINVAL);
        }
        match args.query {
            uapi::drm_vela_query_id_DRM_VELA_QUERY_DEVICE => {
                Ok(Self::Device(uapi::drm_vela_query_device {
                    vendor_id: u32::from(crate::PCI_VENDOR_VELA),
                    device_id: u32::from(crate::PCI_DEVICE_VELA),
                    revision: u32::from(revision),
                    hw_version: id.hw_version(),
                    caps: u64::from(id.caps),
                    vram_size: id.vram_size,
                    serial: id.serial,
                    num_queues: u32::from(id.queues),
                    num_engines: u32::from(id.engines),
                    pad: 0,
                }))
            }
            uapi::drm_vela_query_id_DRM_VELA_QUERY_MEMORY => {
                let m = mem();
                Ok(Self::Memory(uapi::drm_vela_query_memory {
                    vram_size: m.vram_size,
                    vram_free: m.vram_free,
                    page_size: crate::hw::vram::PAGE,
                    va_size: crate::hw::mmu::KERNEL_VA_BASE,
                }))
            }
            uapi::drm_vela_query_id_DRM_VELA_QUERY_LIMITS => {
                let m = mem();
                Ok(Self::Limits(uapi::drm_vela_query_limits {
                    max_commands: uapi::DRM_VELA_MAX_COMMANDS,
                    max_in_syncobjs: uapi::DRM_VELA_MAX_IN_SYNCOBJS,
                    // Context 0 is the kernel's.
                    max_vms: (crate::hw::regs::CONTEXTS - 1) as u32,
                    max_queues: super::queue::MAX_USER_QUEUES,
                    max_vram_bo: m.vram_size,
                    max_system_bo: super::gem::SYSTEM_MAX,
                    system_budget: super::sysmem::BUDGET,
                    system_used: m.system_used,
                }))
            }
            uapi::drm_vela_query_id_DRM_VELA_QUERY_COUNTERS => {
                let mut reply = uapi::drm_vela_query_counters::default();
                for (dst, src) in reply.counters.iter_mut().zip(counters()?) {
                    *dst = src;
                }
                Ok(Self::Counters(reply))
            }
            _ => Err(EINVAL),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Device(d) => d.as_bytes(),
            Self::Memory(m) => m.as_bytes(),
            Self::Counters(c) => c.as_bytes(),
            Self::Limits(l) => l.as_bytes(),
        }
    }
}

#[kunit_tests(vela_query)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            major: 1,
            minor: 0,
            caps: 0x1f,
            serial: 42,
            vram_size: 256 << 20,
            queues: 4,
            engines: 2,
            partitions: 0,
        }
    }

    fn args(query: u32) -> uapi::drm_vela_query {
        uapi::drm_vela_query {
            query,
            ..Default::default()
        }
    }

    #[test]
    fn device_reply_carries_identity() -> Result {
        let reply = Reply::new(
            &args(uapi::drm_vela_query_id_DRM_VELA_QUERY_DEVICE),
            &identity(),
            3,
            mem,
            no_counters,
        )?;
        let Reply::Device(d) = reply else {
            return Err(EINVAL);
        };
        assert_eq!(d.vendor_id, 0x1f5a);
        assert_eq!(d.revision, 3);
        assert_eq!(d.hw_version, 0x0001_0000);
        assert_eq!(d.vram_size, 256 << 20);
        assert_eq!(d.serial, 42);
        assert_eq!((d.num_queues, d.num_engines), (4, 2));
        assert_eq!(reply_len(), 48);
        Ok(())
    }

    fn no_counters() -> Result<[u64; crate::hw::regs::COUNTERS]> {
        Ok([7; crate::hw::regs::COUNTERS])
    }

    #[test]
    fn counters_reply() -> Result {
        let reply = Reply::new(
            &args(uapi::drm_vela_query_id_DRM_VELA_QUERY_COUNTERS),
            &identity(),
            0,
            mem,
            no_counters,
        )?;
        let Reply::Counters(c) = reply else {
            return Err(EINVAL);
        };
        assert_eq!(c.counters[12], 7);
        assert_eq!(c.counters[13], 0);
        assert_eq!(core::mem::size_of_val(&c), 128);
        Ok(())
    }

    fn mem() -> MemoryFacts {
        MemoryFacts {
            vram_size: 256 << 20,
            vram_free: 200 << 20,
            system_used: 12 << 20,
        }
    }

    #[test]
    fn limits_reply() -> Result {
        let reply = Reply::new(
            &args(uapi::drm_vela_query_id_DRM_VELA_QUERY_LIMITS),
            &identity(),
            0,
            mem,
            no_counters,
        )?;
        let Reply::Limits(l) = reply else {
            return Err(EINVAL);
        };
        assert_eq!(
            (l.max_commands, l.max_in_syncobjs, l.max_vms),
            (1024, 64, 15)
        );
        assert_eq!(l.max_queues, super::super::queue::MAX_USER_QUEUES);
        assert_eq!((l.max_vram_bo, l.max_system_bo), (256 << 20, 4 << 30));
        assert_eq!((l.system_budget, l.system_used), (512 << 20, 12 << 20));
        Ok(())
    }

    #[test]
    fn memory_reply() -> Result {
        let reply = Reply::new(
            &args(uapi::drm_vela_query_id_DRM_VELA_QUERY_MEMORY),
            &identity(),
            0,
            mem,
            no_counters,
        )?;
        let Reply::Memory(m) = reply else {
            return Err(EINVAL);
        };
        assert_eq!(
            (m.vram_size, m.vram_free, m.page_size),
            (256 << 20, 200 << 20, 4096)
        );
        assert_eq!(m.va_size, (1 << 39) - (1 << 30));
        Ok(())
    }

    fn reply_len() -> usize {
        core::mem::size_of::<uapi::drm_vela_query_device>()
    }

    #[test]
    fn rejects_unknown_query_flags_and_padding() {
        let id = identity();
        assert!(Reply::new(&args(1000), &id, 0, mem, no_counters).is_err());
        let mut a = args(uapi::drm_vela_query_id_DRM_VELA_QUERY_DEVICE);
        a.flags = 1;
        assert_eq!(Reply::new(&a, &id, 0, mem, no_counters).err(), Some(EINVAL));
        a.flags = 0;
        a.pad = 1;
        assert_eq!(Reply::new(&a, &id, 0, mem, no_counters).err(), Some(EINVAL));
    }

    #[test]
    fn size_negotiation() {
        assert_eq!(size_check(0, 48), Ok(SizeCheck::AskedForSize));
        assert_eq!(size_check(47, 48), Err(EINVAL));
        assert_eq!(size_check(48, 48), Ok(SizeCheck::Fits));
        assert_eq!(size_check(4096, 48), Ok(SizeCheck::Fits));
    }
}
