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
