// SPDX-License-Identifier: GPL-2.0

//! Vela: a driver for the Vela PCIe accelerator.
//!
//! One module, layered as `Documentation/driver.rst` describes: [`hw`] (the core) owns the
//! device; [`compute`] (the accel frontend) turns it into `/dev/accel/accelN`; [`vgpu`] (the
//! vGPU frontend) slices it into VFIO mediated devices for guests.

mod compute;
mod hw;
mod uapi;
mod vgpu;

use kernel::{
    device::Core,
    irq, new_mutex, pci,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
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
    chip: Arc<hw::Chip>,
    #[pin]
    irq_errors: irq::ThreadedRegistration<hw::irq::ErrorIrq>,
    irq_queues: KVec<Pin<KBox<irq::ThreadedRegistration<hw::irq::QueueIrq>>>>,
    accel: ARef<compute::VelaDevice>,
    /// The mdev parent of the vGPU frontend; `None` if it could not register (the function
    /// then offers no vGPUs), and after unbind took it.
    #[pin]
    vgpu: Mutex<Option<vgpu::Parent>>,
}

/// `/proc/interrupts` names of the queue vectors.
const QUEUE_IRQ_NAMES: [&CStr; 16] = [
    c"vela-queue0",
    c"vela-queue1",
    c"vela-queue2",
    c"vela-queue3",
    c"vela-queue4",
    c"vela-queue5",
    c"vela-queue6",
    c"vela-queue7",
    c"vela-queue8",
    c"vela-queue9",
    c"vela-queue10",
    c"vela-queue11",
    c"vela-queue12",
    c"vela-queue13",
    c"vela-queue14",
    c"vela-queue15",
];

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
            let chip = hw::Chip::probe(pdev)?;
            // Before any buffer: moves must find it when VRAM is full. Without it the CPU
            // copies.
            if let Err(e) = chip.kernel_queue().reserve(&chip) {
                dev_warn!(
                    pdev.as_ref(),
                    "no kernel copy queue, the CPU moves buffers: {:?}\n",
                    e
                );
            }
            let nqueues = u32::try_from(chip.queue_count())?;
            // Vector 0: errors and faults; vector 1 + N: queue N.
            let msix = pci::IrqTypes::default().with(pci::IrqType::MsiX);
            let vectors = pdev.alloc_irq_vectors(1 + nqueues, 1 + nqueues, msix)?;
            let mut irq_queues = KVec::with_capacity(chip.queue_count(), GFP_KERNEL)?;
            for q in 0..nqueues {
                let vector = pci::IrqVector::nth(&vectors, 1 + q).ok_or(EINVAL)?;
                let name = QUEUE_IRQ_NAMES.get(q as usize).ok_or(EINVAL)?;
                let handler = hw::irq::QueueIrq {
                    core: chip.clone(),
                    queue: q,
                };
                irq_queues.push(
                    KBox::pin_init(
                        pdev.request_threaded_irq(
                            vector,
                            irq::Flags::TRIGGER_NONE,
                            name,
                            Ok::<_, Error>(handler),
                        ),
                        GFP_KERNEL,
                    )?,
                    GFP_KERNEL,
                )?;
            }
            let accel = compute::register(pdev, chip.clone())?;
            let errors = hw::irq::ErrorIrq(chip.clone());
            let selftest = chip.clone();
            let hooks = compute::Hooks(accel.clone());
            Ok(try_pin_init!(VelaPci {
                chip,
                irq_errors <- pdev.request_threaded_irq(
                    *vectors.start(),
                    irq::Flags::TRIGGER_NONE,
                    c"vela-errors",
                    Ok::<_, Error>(errors),
                ),
                irq_queues,
                accel,
                vgpu <- new_mutex!(None),
            })
            .pin_chain(move |this| {
                selftest.enable_interrupts(pdev.as_ref())?;
                // The vGPU frontend is optional: without it the accel device still works.
                let vgpu_hooks = match vgpu::register(pdev.as_ref(), selftest.clone()) {
                    Ok((parent, vgpu_hooks)) => {
                        *this.vgpu.lock() = Some(parent);
                        Some(vgpu_hooks)
                    }
                    Err(e) => {
                        dev_warn!(pdev.as_ref(), "no vGPUs: {:?}\n", e);
                        None
                    }
                };
                // Last, so that a failed probe leaves no reference cycle behind (the hooks hold
                // the frontends, which hold the core); unbind takes them back.
                selftest.attach_frontend(KBox::new(hooks, GFP_KERNEL)?)?;
                if let Some(h) = vgpu_hooks {
                    selftest.attach_frontend(KBox::new(h, GFP_KERNEL)?)?;
                }
                Ok(())
            }))
        })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // vGPU instances first, while the core still runs: each is revoked, removed once its
        // VMM lets go, and its VRAM scrubbed on the copy engine.
        vgpu::unbind(&this.vgpu);
        // No new work and no new peer mappings; pending jobs fail.
        this.chip.quiesce();
        compute::unbind(&this.accel);
        // Peers and CPU mappings lose VRAM before the device's resources go (its BAR2 may be
        // handed to someone else); interrupts go off.
        this.chip.shutdown(pdev);
    }
}

kernel::module_pci_driver! {
    type: VelaPciDriver,
    name: "vela",
    authors: ["Vela developers"],
    description: "Vela PCIe accelerator",
    license: "GPL v2",
    imports_ns: ["DMA_BUF"],
}
