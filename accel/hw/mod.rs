// SPDX-License-Identifier: GPL-2.0

//! The core: everything that touches the hardware.
//!
//! Glossary:
//! - BAR0: the register window (trapped MMIO).
//! - BAR2: the VRAM aperture; device memory the CPU and peers reach directly.
//! - Queue: a ring of commands the device fetches after a doorbell write.
//! - Engine: what executes commands (copy/fill, compute).
//!
//! The frontends (accel, vgpu) reach the device only through [`Core`].

pub(crate) mod identity;
pub(crate) mod irq;
pub(crate) mod regs;

use kernel::{devres::Devres, io::Io, pci, prelude::*, sync::aref::ARef, sync::Arc};

pub(crate) use identity::Identity;

/// BAR numbers, as the hardware spec assigns them.
const BAR_REGS: u32 = 0;
const BAR_VRAM: u32 = 2;

pub(crate) type Bar0 = pci::Bar<'static, { regs::BAR0_SIZE }>;

/// One Vela device, as the frontends see it.
pub(crate) struct Core {
    pub(crate) pdev: ARef<pci::Device>,
    /// Revoked when the device is unbound, so a frontend that outlives the binding (an open
    /// file, say) can no longer reach the hardware.
    pub(crate) bar0: Devres<Bar0>,
    pub(crate) identity: Identity,
    pub(crate) irq: irq::IrqState,
}

impl Core {
    /// Brings a newly bound device up: enables it, maps BAR0, checks what it says it is.
    pub(crate) fn probe(pdev: &pci::Device<kernel::device::Core<'_>>) -> Result<Arc<Self>> {
        pdev.enable_device_mem()?;
        pdev.set_master();

        let bar0 = pdev.iomap_region_sized::<{ regs::BAR0_SIZE }>(BAR_REGS, c"vela-regs")?;
        let vram_start = pdev.resource_start(BAR_VRAM)?;
        let raw = identity::RawIdentity::read(&bar0);
        let identity = Identity::check(raw, pdev.resource_len(BAR_VRAM)?).inspect_err(|e| {
            dev_err!(
                pdev,
                "not a usable Vela device (id {:#x} version {:#x}): {:?}\n",
                raw.id,
                raw.version,
                e
            );
        })?;

        // A scratch round trip proves that writes reach the device, not just reads.
        let probe_value = 0x5a5a_0000 | u32::from(pdev.device_id());
        bar0.write_reg(regs::SCRATCH::from_raw(probe_value));
        if bar0.read(regs::SCRATCH).into_raw() != probe_value {
            dev_err!(pdev, "BAR0 writes do not reach the device\n");
            return Err(EIO);
        }

        dev_info!(
            pdev,
            "Vela v{}.{} serial {}: {} MiB VRAM at {:#x}, {} queues, {} engines, caps {:#x}\n",
            identity.major,
            identity.minor,
            identity.serial,
            identity.vram_size >> 20,
            vram_start,
            identity.queues,
            identity.engines,
            identity.caps
        );

        Ok(Arc::new(
            Self {
                pdev: pdev.into(),
                bar0: bar0.into_devres()?,
                identity,
                irq: irq::IrqState::new(),
            },
            GFP_KERNEL,
        )?)
    }
}
