// SPDX-License-Identifier: GPL-2.0

//! DRM_IOCTL_VELA_QUERY: the identity the driver reports is the one the model was started
//! with, and every malformed argument gets its errno.

use std::{fs::File, os::fd::AsRawFd};
use vela_hw::pci;
use vela_hw::regs::{Caps, Version, VERSION_MAJOR};

use libc::{EFAULT, EINVAL};
use vela_selftests::{accel_node, expect, vela_pci_devices, Tap};
use vela_uapi::{self as u, drm_vela_query, drm_vela_query_device};

const REPLY: u32 = std::mem::size_of::<drm_vela_query_device>() as u32;

fn device_args(data: u64, size: u32) -> drm_vela_query {
    drm_vela_query {
        query: u::drm_vela_query_id_DRM_VELA_QUERY_DEVICE,
        size,
        data,
        ..Default::default()
    }
}

/// Issues an ioctl with an arbitrary request number on a raw buffer (to test sizes and numbers
/// the uapi crate would never produce).
fn raw_ioctl(f: &File, request: u64, buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: `buf` is valid for its whole length, which the request numbers used below never
    // exceed (their size field is at most buf.len()).
    let r = unsafe { libc::ioctl(f.as_raw_fd(), request as libc::c_ulong, buf.as_mut_ptr()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn iowr(nr: u32, size: usize) -> u64 {
    (3u64 << 30) | ((size as u64) << 16) | (u64::from(b'd') << 8) | u64::from(nr)
}

fn main() {
    let mut t = Tap::new();
    let Some(pci) = vela_pci_devices().ok().and_then(|d| d.into_iter().next()) else {
        t.check(false, "a Vela device exists", "none found");
        t.finish();
    };
    let f = match accel_node(&pci).and_then(File::open) {
        Ok(f) => f,
        Err(e) => {
            t.check(false, "open /dev/accel/accelN", e);
            t.finish();
        }
    };
    t.check(true, "open /dev/accel/accelN", "");

    // Size negotiation.
    let mut a = device_args(0, 0);
    t.ok(u::query(&f, &mut a), "size 0 asks for the reply size");
    t.eq(a.size, REPLY, "reply size is reported");

    // The identity itself.
    let q = t
        .ok(u::query_device(&f), "QUERY_DEVICE")
        .unwrap_or_default();
    t.eq(q.vendor_id, u32::from(pci::VENDOR_ID), "vendor id");
    t.eq(q.device_id, u32::from(pci::DEVICE_ID), "device id");
    t.eq(
        Version(q.hw_version).major(),
        VERSION_MAJOR,
        "hardware interface major version 1",
    );
    let vram = expect("VRAM_MIB").map(|m| m << 20);
    t.eq(
        Some(q.vram_size),
        vram,
        "VRAM size is what the model was started with",
    );
    t.eq(
        Some(u64::from(q.serial)),
        expect("SERIAL"),
        "serial is the model's",
    );
    t.eq(
        Some(u64::from(q.num_queues)),
        expect("QUEUES"),
        "queue count is the model's",
    );
    t.check(q.num_engines >= 1, "at least one engine", q.num_engines);
    // The driver passes CAPS through: any bit the spec defines may be set (PARTITIONS on a
    // partitionable function, VIRTUAL in a partition's window), reserved ones never.
    let defined = u64::from(Caps::ALL.bits() | Caps::WINDOW.bits());
    t.eq(q.caps & !defined, 0, "no reserved capability bits");
    t.eq(q.pad, 0, "reply padding is zero");

    // The limits: the header's per-SUBMIT limits, the model's queues, the driver's memory
    // limits.
    let mut l = u::drm_vela_query_limits::default();
    let mut a = u::drm_vela_query {
        query: u::drm_vela_query_id_DRM_VELA_QUERY_LIMITS,
        size: std::mem::size_of::<u::drm_vela_query_limits>() as u32,
        data: &mut l as *mut _ as u64,
        ..Default::default()
    };
    t.ok(u::query(&f, &mut a), "QUERY_LIMITS");
    t.eq(
        (l.max_commands, l.max_in_syncobjs),
        (u::DRM_VELA_MAX_COMMANDS, u::DRM_VELA_MAX_IN_SYNCOBJS),
        "LIMITS: the per-SUBMIT limits are the header's",
    );
    t.eq(
        l.max_queues,
        64,
        "LIMITS: 64 queues, sharing the hardware queues",
    );
    t.eq(
        l.max_vms,
        15,
        "LIMITS: 15 VMs (16 contexts, one the kernel's)",
    );
    t.eq(
        Some(l.max_vram_bo),
        vram,
        "LIMITS: the largest VRAM buffer is all of VRAM",
    );
    t.eq(
        (l.max_system_bo, l.system_budget),
        (4 << 30, 512 << 20),
        "LIMITS: system buffers up to 4 GiB, 512 MiB in all",
    );
    t.check(
        l.system_used <= l.system_budget,
        "LIMITS: system memory in use is within the budget",
        l.system_used,
    );

    // A larger buffer gets the reply and its real size; bytes past it are untouched.
    let mut big = [0xa5u8; 64];
    let mut a = device_args(big.as_mut_ptr() as u64, big.len() as u32);
    t.ok(u::query(&f, &mut a), "a larger buffer is accepted");
    t.check(
        a.size == REPLY && big[REPLY as usize..].iter().all(|&b| b == 0xa5),
        "only the reply's bytes are written",
        format_args!("size {}", a.size),
    );

    // Malformed arguments.
    let mut reply = drm_vela_query_device::default();
    let ptr = &mut reply as *mut _ as u64;
    t.errno(
        u::query(&f, &mut device_args(ptr, REPLY - 1)),
        EINVAL,
        "short buffer: EINVAL",
    );
    let mut a = device_args(ptr, REPLY);
    a.query = 0xdead;
    t.errno(u::query(&f, &mut a), EINVAL, "unknown query id: EINVAL");
    let mut a = device_args(ptr, REPLY);
    a.flags = 1 << 31;
    t.errno(u::query(&f, &mut a), EINVAL, "unknown flag: EINVAL");
    let mut a = device_args(ptr, REPLY);
    a.pad = 1;
    t.errno(u::query(&f, &mut a), EINVAL, "non-zero padding: EINVAL");
    t.errno(
        u::query(&f, &mut device_args(0, REPLY)),
        EFAULT,
        "NULL data: EFAULT",
    );
    t.errno(
        u::query(&f, &mut device_args(0x10, REPLY)),
        EFAULT,
        "unmapped data: EFAULT",
    );
    t.errno(
        u::query(&f, &mut device_args(u64::MAX - 8, REPLY)),
        EFAULT,
        "data wrapping the address space: EFAULT",
    );

    // An ioctl number past the driver's table is refused by the DRM core.
    let mut buf = [0u8; 24];
    t.errno(
        raw_ioctl(&f, iowr(0x40 + 0x3f, 24), &mut buf),
        EINVAL,
        "unknown ioctl: EINVAL",
    );
    t.finish();
}
