// SPDX-License-Identifier: GPL-2.0

//! The vGPU frontend: each Vela function is a mediated-device parent whose instances are
//! VFIO devices, slices of the function for guests (`Documentation/vgpu.rst`).
//!
//! The frontend reaches the hardware only through the core ([`hw::Chip`]): it reserves a
//! VRAM range, hardware queues and MMU contexts for each instance, scrubs the range, and
//! emulates what the hardware does not provide for a guest (config space, MSI-X through
//! eventfds). The core keeps none of its objects; what the core needs from it when the device
//! is lost or goes is [`Hooks`].

mod bar0;
mod config;
mod device;
mod guest;
mod instance;

use kernel::{
    device::{Bound, Device},
    mdev, new_mutex,
    prelude::*,
    str::Formatter,
    sync::{aref::ARef, Arc, Mutex},
    workqueue::{self, WorkItem},
};

use crate::hw;

/// One type of instance (`Documentation/vgpu.rst`, Types).
pub(crate) struct VgpuType {
    /// The instance's VRAM is the function's shifted right by this.
    vram_shift: u32,
    queues: u32,
    contexts: u32,
}

const TYPES: [VgpuType; 3] = [
    VgpuType {
        vram_shift: 1,
        queues: 2,
        contexts: 2,
    },
    VgpuType {
        vram_shift: 2,
        queues: 1,
        contexts: 1,
    },
    VgpuType {
        vram_shift: 3,
        queues: 1,
        contexts: 1,
    },
];

const MDEV_TYPES: [mdev::TypeInfo; 3] = [
    mdev::TypeInfo {
        sysfs_name: c"half",
        pretty_name: c"Vela vGPU, 1/2 VRAM",
    },
    mdev::TypeInfo {
        sysfs_name: c"quarter",
        pretty_name: c"Vela vGPU, 1/4 VRAM",
    },
    mdev::TypeInfo {
        sysfs_name: c"eighth",
        pretty_name: c"Vela vGPU, 1/8 VRAM",
    },
];

/// Partition slots of a Vela function (`Documentation/hardware/partitions.rst`:
/// `TOPOLOGY3.PARTITIONS`, 8): no more instances than that.
const PARTITION_SLOTS: usize = 8;

/// What the frontend keeps per Vela function, shared by the mdev parent and the core's hooks.
#[pin_data]
pub(crate) struct Shared {
    chip: Arc<hw::Chip>,
    /// The live instances' VFIO devices, for revocation when the device is lost or goes. Also
    /// serializes the reservation of resources (creates), so `available_instances` and
    /// `create` agree.
    #[pin]
    instances: Mutex<KVec<ARef<device::Device>>>,
    /// The live instances by partition slot, for the core's interrupt thread. A leaf lock,
    /// apart from `instances`: that one is held across calls into the core (a create's scrub
    /// may wait for a reset, which takes the frontends' lock the thread holds).
    #[pin]
    by_partition: Mutex<[Option<Arc<Tenant>>; PARTITION_SLOTS]>,
}

/// An instance as the core's interrupt thread sees it: where its vectors go, and the work
/// item that serves its partition's page requests. Pinning sleeps (it may fault the page in),
/// so it does not run in the interrupt thread, which other partitions and the host's own
/// queues wait for. The instance's removal cancels the work before the module can go.
#[pin_data]
pub(crate) struct Tenant {
    dev: ARef<device::Device>,
    /// The request the work item serves next. A partition presents one at a time.
    #[pin]
    request: Mutex<Option<hw::partition::PageRequest>>,
    #[pin]
    pager: workqueue::DelayedWork<Tenant>,
}

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Tenant { self.pager }
}

impl WorkItem for Tenant {
    type Pointer = Arc<Tenant>;

    fn run(this: Arc<Tenant>) {
        let req = this.request.lock().take();
        if let Some(req) = req {
            device::VgpuDev::page_request(&this.dev, req);
        }
    }
}

impl Tenant {
    fn new(dev: ARef<device::Device>) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                dev,
                request <- new_mutex!(None),
                pager <- kernel::new_delayed_work!("vela-vgpu-pager"),
            }),
            GFP_KERNEL,
        )
    }

    /// Waits until the work is neither pending nor running: the instance is going.
    fn stop(this: &Arc<Self>) {
        workqueue::cancel_delayed_work_sync(this);
    }
}

impl Shared {
    /// Revokes every instance: no more accesses, BAR2 mappings zapped, the VMMs asked to let
    /// go. Their removal follows (mdev `remove`, or unbind).
    fn revoke_all(&self) {
        for dev in self.instances.lock().iter() {
            device::VgpuDev::revoke(dev);
        }
    }

    /// How many more instances of `ty` fit now: partition slots, hardware queues and MMU
    /// contexts (the host keeps at least one free queue for its own user queues beside
    /// what the kernel queue borrows, and one context), and VRAM. VRAM is counted by bytes
    /// free: a fragmented VRAM may still refuse the naturally aligned range with `ENOSPC`.
    fn available(&self, live: usize, ty: &VgpuType) -> u32 {
        let chip = &self.chip;
        let slots = chip
            .partition_slots()
            .min(PARTITION_SLOTS)
            .saturating_sub(live);
        // Checked: a division by zero would be a panic (no type asks for none, nor for an
        // empty slice, but nothing here proves it to the compiler).
        let per = |free: usize, each: u32| free.checked_div(each as usize).unwrap_or(0);
        let queues = per(chip.free_queue_count().saturating_sub(1), ty.queues);
        let contexts = per(chip.free_context_count().saturating_sub(1), ty.contexts);
        let vram = chip
            .vram()
            .avail()
            .checked_div(chip.identity().vram_size >> ty.vram_shift)
            .unwrap_or(0);
        let n = slots.min(queues).min(contexts).min(vram as usize);
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The mdev parent's data: the driver of one function's instances.
#[pin_data]
pub(crate) struct Vgpu {
    shared: Arc<Shared>,
}

impl mdev::Driver for Vgpu {
    type Instance = instance::Instance;
    const TYPES: &'static [mdev::TypeInfo] = &MDEV_TYPES;
    const DEVICE_API: &'static CStr = c"vfio-pci";

    fn available(parent: &Self, type_index: usize) -> u32 {
        let Some(ty) = TYPES.get(type_index) else {
            return 0;
        };
        let live = parent.shared.instances.lock().len();
        parent.shared.available(live, ty)
    }

    fn describe(parent: &Self, type_index: usize, out: &mut Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        let Some(ty) = TYPES.get(type_index) else {
            return Err(core::fmt::Error);
        };
        let mib = (parent.shared.chip.identity().vram_size >> ty.vram_shift) >> 20;
        writeln!(
            out,
            "{} MiB VRAM, {} queues, {} contexts",
            mib, ty.queues, ty.contexts
        )
    }

    fn create(
        parent: &Self,
        mdev: &mdev::MdevDevice,
        type_index: usize,
    ) -> Result<Pin<KBox<instance::Instance>>> {
        let ty = TYPES.get(type_index).ok_or(EINVAL)?;
        instance::Instance::create(&parent.shared, mdev, ty)
    }

    fn remove(_parent: &Self, instance: Pin<KBox<instance::Instance>>) {
        instance::Instance::remove(instance);
    }
}

/// The mdev parent of one function; dropping it removes every instance.
pub(crate) type Parent = Pin<KBox<mdev::Parent<Vgpu>>>;

/// Registers the function as an mdev parent. Returns it, and the hooks the core calls when the
/// device is lost or goes.
pub(crate) fn register(dev: &Device<Bound>, chip: Arc<hw::Chip>) -> Result<(Parent, Hooks)> {
    let shared = Arc::pin_init(
        try_pin_init!(Shared {
            chip,
            instances <- new_mutex!(KVec::new()),
            by_partition <- new_mutex!([const { None }; PARTITION_SLOTS]),
        }),
        GFP_KERNEL,
    )?;
    let data = shared.clone();
    let parent = KBox::pin_init(
        mdev::Parent::new(
            dev,
            &crate::THIS_MODULE,
            try_pin_init!(Vgpu { shared: data }),
        ),
        GFP_KERNEL,
    )?;
    Ok((parent, Hooks(shared)))
}

/// The first step of unbind, before the core quiesces: every instance is revoked and removed
/// (each removal waits until its VMM closes it, then scrubs its VRAM and gives back its
/// queues and contexts), and the parent goes.
pub(crate) fn unbind(parent: &Mutex<Option<Parent>>) {
    let p = parent.lock().take();
    if let Some(p) = &p {
        p.data().shared.revoke_all();
    }
    drop(p);
}

/// The hooks the core calls on the vGPU frontend ([`hw::Frontend`]).
pub(crate) struct Hooks(Arc<Shared>);

impl hw::Frontend for Hooks {
    /// The frontend exports nothing to peers (yet).
    fn revoke_peers(&self) {}

    /// The device is lost or going: instances are revoked, their BAR2 mappings zapped.
    fn unmap_cpu(&self) {
        self.0.revoke_all();
    }

    /// Relays a partition's vectors to its instance's eventfds, and hands its page request to
    /// the instance's work item, which pins the page (`Documentation/vgpu.rst`, Guest memory).
    fn partition_event(&self, event: &hw::partition::Event) {
        let tenant = {
            let slots = self.0.by_partition.lock();
            // Not an instance's: another frontend's, or one being created or removed, whose
            // queues run nothing (a removal resets the partition, which drops the request).
            let Some(tenant) = slots.get(event.partition.index()).and_then(|t| t.clone()) else {
                return;
            };
            if let Some(req) = event.request {
                *tenant.request.lock() = Some(req);
                // Under the slot's lock: once a removal cleared the slot, nothing queues the
                // work again, so cancelling it afterwards stops it for good. `Err`: already
                // pending, and it takes the request just stored. The long queue (pinning may
                // sleep): 7.2 deprecates system_wq and system_unbound_wq, and warns on their use.
                let _ = workqueue::system_long().enqueue_delayed(tenant.clone(), 0);
            }
            tenant
        };
        if event.vectors != 0 {
            tenant.dev.relay(event.vectors);
        }
    }
}
