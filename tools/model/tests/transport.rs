// SPDX-License-Identifier: GPL-2.0
//! The device over a real vfio-user socket, driven by the crate's own client
//! the way QEMU drives it: region info, config space, BAR0, BAR2 through the
//! handed-over fd.

use std::path::PathBuf;
use std::thread;

use vela_model::device::{Device, DeviceOptions};
use vela_model::server;
use vfio_bindings::bindings::vfio::{
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_REGION_INFO_FLAG_MMAP,
};
use vfio_user::Client;
use vm_memory::mmap::MmapRegion;
use vm_memory::VolatileMemory;

fn socket_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("vela-{name}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn rd32(c: &mut Client, region: u32, off: u64) -> u32 {
    let mut b = [0; 4];
    c.region_read(region, off, &mut b).unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn serves_config_bar0_and_mappable_vram() {
    let path = socket_path("transport");
    let dev = Device::new(DeviceOptions {
        vram_size: 16 << 20,
        serial: 9,
        queues: 2,
        ..Default::default()
    })
    .unwrap();
    let srv = server::listen(&dev, &path).unwrap();
    let d = dev.clone();
    let t = thread::spawn(move || server::serve(&srv, d));

    let mut c = Client::new(&path).unwrap();
    assert_eq!(rd32(&mut c, VFIO_PCI_CONFIG_REGION_INDEX, 0), 0x0001_1f5a);
    assert_eq!(rd32(&mut c, VFIO_PCI_BAR0_REGION_INDEX, 0), 0x414c_4556);
    assert_eq!(rd32(&mut c, VFIO_PCI_BAR0_REGION_INDEX, 0xc), 9);
    c.region_write(VFIO_PCI_BAR0_REGION_INDEX, 0x1c, &5u32.to_le_bytes())
        .unwrap();
    assert_eq!(rd32(&mut c, VFIO_PCI_BAR0_REGION_INDEX, 0x1c), 5);

    let bar2 = c.region(VFIO_PCI_BAR2_REGION_INDEX).unwrap();
    assert_eq!(bar2.size, 16 << 20);
    assert_ne!(bar2.flags & VFIO_REGION_INFO_FLAG_MMAP, 0);
    assert_eq!(bar2.sparse_areas.len(), 1);
    assert_eq!(bar2.sparse_areas[0].size, 16 << 20);
    let fo = bar2.file_offset.clone().expect("BAR2 fd handed over");
    let map = MmapRegion::<()>::from_file(fo, 16 << 20).unwrap();
    map.get_slice(0x1000, 4).unwrap().copy_from(&[1u8, 2, 3, 4]);
    let mut b = [0; 4];
    dev.vram.read(0x1000, &mut b).unwrap();
    assert_eq!(
        b,
        [1, 2, 3, 4],
        "client's mapping and device VRAM are one memory"
    );

    drop(c);
    t.join().unwrap().unwrap();
}

#[test]
fn dma_and_msix_over_the_socket() {
    use std::os::fd::AsRawFd;
    use vela_hw::regs::{self, queue};
    use vela_model::engine::vram_dpa;
    use vela_model::rig::encode;
    use vfio_bindings::bindings::vfio::{
        VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX,
    };
    use vmm_sys_util::eventfd::EventFd;

    let path = socket_path("dma");
    let dev = Device::new(DeviceOptions {
        vram_size: 16 << 20,
        serial: 1,
        queues: 1,
        ..Default::default()
    })
    .unwrap();
    let srv = server::listen(&dev, &path).unwrap();
    let d = dev.clone();
    let _engine = dev.start_engine();
    let t = thread::spawn(move || server::serve(&srv, d));
    let mut c = Client::new(&path).unwrap();

    // Guest RAM: a memfd, as QEMU's memory-backend-memfd.
    let ram = vela_model::mem::Vram::new(1 << 20).unwrap();
    let gpa = 0x4000_0000u64;
    c.dma_map(0, gpa, 1 << 20, ram.fd().unwrap()).unwrap();

    let cfg = VFIO_PCI_CONFIG_REGION_INDEX;
    let bar0 = VFIO_PCI_BAR0_REGION_INDEX;
    c.region_write(cfg, 0x04, &6u16.to_le_bytes()).unwrap();
    c.region_write(cfg, 0x82, &0x8000u16.to_le_bytes()).unwrap();
    let irq = EventFd::new(0).unwrap();
    c.set_irqs(
        VFIO_PCI_MSIX_IRQ_INDEX,
        VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        1,
        1,
        &[irq.as_raw_fd()],
    )
    .unwrap();

    let w = |c: &mut Client, reg: u32, v: u32| {
        c.region_write(bar0, u64::from(reg), &v.to_le_bytes())
            .unwrap()
    };
    let qreg = |off: u32| regs::QUEUE_BASE + off;
    dev.vram
        .write(0, &encode::fence(gpa + 0x100, 0xfeed, true))
        .unwrap();
    w(&mut c, regs::INT_MASK, 0);
    w(
        &mut c,
        qreg(queue::RING_BASE_HI),
        (vram_dpa(0) >> 32) as u32,
    );
    w(&mut c, qreg(queue::RING_SIZE), 2);
    w(
        &mut c,
        qreg(queue::CONTROL),
        regs::QControl::ENABLE.mask32(),
    );
    w(&mut c, qreg(queue::DOORBELL), 1);

    assert_eq!(irq.read().unwrap(), 1, "completion interrupt on vector 1");
    let mut fence = [0; 8];
    ram.read(0x100, &mut fence).unwrap();
    assert_eq!(u64::from_le_bytes(fence), 0xfeed);

    drop(c);
    t.join().unwrap().unwrap();
}
