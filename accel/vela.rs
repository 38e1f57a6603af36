// SPDX-License-Identifier: GPL-2.0

//! Vela: a driver for the Vela PCIe accelerator.
//!
//! One module, layered as `Documentation/driver.rst` describes: [`hw`] (the core) owns the
//! device; [`compute`] (the accel frontend) turns it into `/dev/accel/accelN`.

mod compute;
mod hw;
mod uapi;

use kernel::{
    device::Core,
    irq, pci,
    prelude::*,
    sync::{aref::ARef, Arc},
};

/// Vela's PCI vendor ID. `pci.ids` assigns it to no one (see
/// `Documentation/hardware/pci.rst`).
pub(crate) const PCI_VENDOR_VELA: u16 = 0x1f5a;
/// The Vela accelerator's device ID.
pub(crate) const PCI_DEVICE_VELA: u16 = 0x0001;

struct VelaPciDriver;

/// What a bound device keeps alive. Fields drop in order: the interrupt handlers go before
/// the accel device's last reference.
#[pin_data]
struct VelaPci {
    core: Arc<hw::Core>,
    #[pin]
    irq_errors: irq::Registration<hw::irq::ErrorIrq>,
    #[pin]
    irq_queue0: irq::Registration<hw::irq::QueueIrq>,
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
        pin_init::pin_init_scope(move || {
            let core = hw::Core::probe(pdev)?;
            // Vector 0: errors and faults; vector 1: queue 0. The 7.2 API hands out only the
            // first and last vector of an allocation, so exactly two are asked for.
            let vectors = pdev.alloc_irq_vectors(2, 2, pci::IrqTypes::default().with(pci::IrqType::MsiX))?;
            let accel = compute::register(pdev, core.clone())?;
            let errors = hw::irq::ErrorIrq(core.clone());
            let queue0 = hw::irq::QueueIrq(core.clone());
            let selftest = core.clone();
            Ok(try_pin_init!(VelaPci {
                core,
                irq_errors <- pdev.request_irq(*vectors.start(), irq::Flags::TRIGGER_NONE, c"vela-errors", Ok::<_, Error>(errors)),
                irq_queue0 <- pdev.request_irq(*vectors.end(), irq::Flags::TRIGGER_NONE, c"vela-queue0", Ok::<_, Error>(queue0)),
                _accel: accel,
            })
            .pin_chain(move |_| selftest.enable_interrupts(pdev.as_ref())))
        })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        this.core.disable_interrupts(pdev.as_ref());
    }
}

kernel::module_pci_driver! {
    type: VelaPciDriver,
    name: "vela",
    authors: ["Vela developers"],
    description: "Vela PCIe accelerator",
    license: "GPL v2",
}
