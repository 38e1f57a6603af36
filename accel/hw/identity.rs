// SPDX-License-Identifier: GPL-2.0

//! The device's identity, read once at probe and checked before anything else touches it.

use kernel::{
    io::{Io, Mmio},
    prelude::*,
};

use super::regs::{self, VELA_MAGIC};

/// The register interface major version this driver speaks.
pub(crate) const SUPPORTED_MAJOR: u16 = 1;

/// The identity registers exactly as read, before any check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawIdentity {
    pub(crate) id: u32,
    pub(crate) version: u32,
    pub(crate) caps: u32,
    pub(crate) serial: u32,
    pub(crate) vram_lo: u32,
    pub(crate) vram_hi: u32,
    pub(crate) topology: u32,
    pub(crate) topology3: u32,
}

/// A checked identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) major: u16,
    pub(crate) minor: u16,
    pub(crate) caps: u32,
    pub(crate) serial: u32,
    pub(crate) vram_size: u64,
    pub(crate) queues: u8,
    pub(crate) engines: u8,
    /// Partition slots (`TOPOLOGY3`); 0 unless `CAPS.PARTITIONS`.
    pub(crate) partitions: u8,
}

impl RawIdentity {
    /// Reads the identity block from BAR0.
    pub(crate) fn read(bar: &Mmio<{ regs::BAR0_SIZE }>) -> Self {
        Self {
            id: bar.read(regs::ID).into_raw(),
            version: bar.read(regs::VERSION).into_raw(),
            caps: bar.read(regs::CAPS).into_raw(),
            serial: bar.read(regs::DEVICE_SERIAL).into_raw(),
            vram_lo: bar.read(regs::VRAM_SIZE_LO).into_raw(),
            vram_hi: bar.read(regs::VRAM_SIZE_HI).into_raw(),
            topology: bar.read(regs::TOPOLOGY).into_raw(),
            topology3: bar.read(regs::TOPOLOGY3).into_raw(),
        }
    }
}

impl Identity {
    /// Checks a raw identity: the magic, a major version this driver knows, and sizes the rest
    /// of the driver can rely on (VRAM a non-zero power of two no larger than the BAR that
    /// exposes it, at least one queue and one engine, no more queues than BAR0 has register
    /// blocks for).
    ///
    /// `bar2_len` is the length of the VRAM BAR as the PCI core sized it.
    pub(crate) fn check(raw: RawIdentity, bar2_len: u64) -> Result<Self> {
        if raw.id != VELA_MAGIC {
            return Err(ENODEV);
        }
        let version = regs::VERSION::from_raw(raw.version);
        let major: u16 = version.major().get().try_into()?;
        let minor: u16 = version.minor().get().try_into()?;
        if major != SUPPORTED_MAJOR {
            return Err(ENOTSUPP);
        }
        let vram_size = (u64::from(raw.vram_hi) << 32) | u64::from(raw.vram_lo);
        if vram_size == 0 || !vram_size.is_power_of_two() || vram_size > bar2_len {
            return Err(EINVAL);
        }
        let topology = regs::TOPOLOGY::from_raw(raw.topology);
        let queues: u8 = topology.queues().get().try_into()?;
        let engines: u8 = topology.engines().get().try_into()?;
        if queues == 0 || engines == 0 || usize::from(queues) > regs::MAX_QUEUES {
            return Err(EINVAL);
        }
        // More slots than BAR0 has blocks for would be a device this driver does not know:
        // it uses the ones it knows.
        let partitions = if regs::CAPS::from_raw(raw.caps).partitions() {
            let n = regs::TOPOLOGY3::from_raw(raw.topology3).partitions().get();
            n.min(regs::PARTITIONS as u32) as u8
        } else {
            0
        };
        Ok(Self {
            major,
            minor,
            caps: raw.caps,
            serial: raw.serial,
            vram_size,
            queues,
            engines,
            partitions,
        })
    }

    /// The interface version as userspace sees it: major in bits 31:16, minor in 15:0.
    pub(crate) fn hw_version(&self) -> u32 {
        regs::VERSION::zeroed()
            .with_major(self.major)
            .with_minor(self.minor)
            .into_raw()
    }
}

#[kunit_tests(vela_identity)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn good() -> RawIdentity {
        RawIdentity {
            id: VELA_MAGIC,
            version: 0x0001_0002,
            caps: 0x1f,
            serial: 7,
            vram_lo: (256 * MIB) as u32,
            vram_hi: 0,
            topology: 0x0204,
            topology3: 8,
        }
    }

    #[test]
    fn decodes_fields() -> Result {
        let id = Identity::check(good(), 256 * MIB)?;
        assert_eq!(id.major, 1);
        assert_eq!(id.minor, 2);
        assert_eq!(id.hw_version(), 0x0001_0002);
        assert_eq!(id.vram_size, 256 * MIB);
        assert_eq!(id.queues, 4);
        assert_eq!(id.engines, 2);
        assert_eq!(id.serial, 7);
        // TOPOLOGY3 counts only with CAPS.PARTITIONS.
        assert_eq!(id.partitions, 0);
        Ok(())
    }

    #[test]
    fn partition_slots() -> Result {
        let raw = RawIdentity {
            caps: 0x3f,
            ..good()
        };
        assert_eq!(Identity::check(raw, 256 * MIB)?.partitions, 8);
        let raw = RawIdentity {
            caps: 0x3f,
            topology3: 0xf,
            ..good()
        };
        assert_eq!(Identity::check(raw, 256 * MIB)?.partitions, 8);
        Ok(())
    }

    #[test]
    fn vram_above_4g_uses_high_word() -> Result {
        let raw = RawIdentity {
            vram_lo: 0,
            vram_hi: 2,
            ..good()
        };
        assert_eq!(Identity::check(raw, 8 << 30)?.vram_size, 8 << 30);
        Ok(())
    }

    #[test]
    fn rejects_wrong_magic() {
        let raw = RawIdentity {
            id: 0xffff_ffff,
            ..good()
        };
        assert_eq!(Identity::check(raw, 256 * MIB), Err(ENODEV));
    }

    #[test]
    fn rejects_unknown_major() {
        let raw = RawIdentity {
            version: 0x0002_0000,
            ..good()
        };
        assert_eq!(Identity::check(raw, 256 * MIB), Err(ENOTSUPP));
    }

    #[test]
    fn rejects_bad_vram_sizes() {
        for (lo, hi, bar) in [
            (0, 0, 256 * MIB),
            (3 * MIB as u32, 0, 256 * MIB),
            (0, 1, 256 * MIB),
        ] {
            let raw = RawIdentity {
                vram_lo: lo,
                vram_hi: hi,
                ..good()
            };
            assert_eq!(Identity::check(raw, bar), Err(EINVAL));
        }
    }

    #[test]
    fn rejects_no_queues_or_engines() {
        // 17 queues: one more than BAR0 has register blocks for.
        for topology in [0x0200, 0x0004, 0, 0x0211] {
            let raw = RawIdentity { topology, ..good() };
            assert_eq!(Identity::check(raw, 256 * MIB), Err(EINVAL));
        }
    }
}
