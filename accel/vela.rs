// SPDX-License-Identifier: GPL-2.0

//! Vela: a driver for the Vela PCIe accelerator.
//!
//! One module, layered as `Documentation/driver.rst` describes: [`hw`] (the core) owns the
//! device; [`compute`] (the accel frontend) turns it into `/dev/accel/accelN`.

mod compute;
mod hw;
mod uapi;

use kernel::{device::Core, pci, prelude::*, sync::aref::ARef};

/// Vela's PCI vendor ID. `pci.ids` assigns it to no one (see
/// `Documentation/hardware/pci.rst`).
pub(crate) const PCI_VENDOR_VELA: u16 = 0x1f5a;
/// The Vela accelerator's device ID.
pub(crate) const PCI_DEVICE_VELA: u16 = 0x0001;

struct VelaPciDriver;

/// What a bound device keeps alive.
struct VelaPci {
    _accel: ARef<compute::VelaDevice>,
}

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <VelaPciDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(
            pci::Vendor::from_unlisted(PCI_VENDOR_VELA),
            PCI_DEVICE_VELA as u32
        ),
        ()
    )]
);

impl pci::Driver for VelaPciDriver {
    type IdInfo = ();
    type Data<'bound> = VelaPci;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        let core = hw::Core::probe(pdev)?;
        let accel = compute::register(pdev, core)?;
        Ok(VelaPci { _accel: accel })
    }
}

kernel::module_pci_driver! {
    type: VelaPciDriver,
    name: "vela",
    authors: ["Vela developers"],
    description: "Vela PCIe accelerator",
    license: "GPL v2",
}
