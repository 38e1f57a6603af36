// SPDX-License-Identifier: GPL-2.0

//! Page sizes of VM_BIND, seen through the device's own PAGE_WALKS counter (QUERY_COUNTERS):
//! a buffer of whole 2 MiB pages bound at a 2 MiB-aligned VA is mapped with huge pages (a
//! handful of walks for megabytes), the same buffer at a 4 KiB-aligned VA with 4 KiB pages (one
//! walk per page), both move the right data, and unbinding a huge mapping leaves nothing
//! behind that the device can reach.

use std::time::Duration;

use vela_runtime::{Access, Buffer, BufferFlags, Command, Device, Queue, Vm};
use vela_selftests::{open_device, Tap};
use vela_uapi as u;

const T: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

fn counters(dev: &Device) -> Option<[u64; 16]> {
    let mut reply = u::drm_vela_query_counters::default();
    let mut a = u::drm_vela_query {
        query: u::drm_vela_query_id_DRM_VELA_QUERY_COUNTERS,
        size: std::mem::size_of::<u::drm_vela_query_counters>() as u32,
        data: &mut reply as *mut _ as u64,
        ..Default::default()
    };
    u::query(dev.file(), &mut a).ok().map(|()| reply.counters)
}

fn walks(dev: &Device) -> u64 {
    counters(dev).map_or(0, |c| c[u::DRM_VELA_COUNTER_PAGE_WALKS as usize])
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let c0 = counters(&dev);
    t.check(c0.is_some(), "QUERY_COUNTERS", "failed");
    if let Some(c) = c0 {
        t.check(
            c[u::DRM_VELA_COUNTERS as usize..].iter().all(|&v| v == 0),
            "counters past the last read zero",
            format_args!("{c:?}"),
        );
    }
    let flags = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;
    let (Ok(vm), Ok(bo)) = (Vm::create(&dev), Buffer::create(&dev, 4 * MIB, flags)) else {
        t.check(false, "VM and a 4 MiB buffer", "failed");
        t.finish()
    };
    let (Ok(q), Ok(map)) = (Queue::create(&vm), bo.map()) else {
        t.check(false, "queue and mapping", "failed");
        t.finish()
    };
    let pattern: Vec<u8> = (0..2 * MIB as usize)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    let copy_half = |va: u64| {
        let _ = map.write(0, &pattern);
        let _ = map.fill(2 * MIB as usize, 2 * MIB as usize, 0);
        let w0 = walks(&dev);
        let r = q.run(&[Command::copy(va, va + 2 * MIB, 2 * MIB)], T);
        let w = walks(&dev) - w0;
        let same = map
            .read_vec(2 * MIB as usize, 2 * MIB as usize)
            .is_ok_and(|v| v == pattern);
        (r.is_ok(), same, w)
    };

    // 2 MiB-aligned VA: huge pages.
    let huge_va = 1 << 32;
    let b = vm.bind(&bo, huge_va, 0, 4 * MIB, Access::READ_WRITE);
    t.check(
        b.is_ok(),
        "bind 4 MiB at a 2 MiB-aligned VA",
        format_args!("{:?}", b.as_ref().err()),
    );
    let (ok, same, w) = copy_half(huge_va);
    t.check(
        ok && same,
        "COPY 2 MiB through huge pages moves the data",
        format_args!("ok {ok} same {same}"),
    );
    t.check(
        w <= 16,
        "…with a handful of page walks (huge pages)",
        format_args!("{w} walks"),
    );
    drop(b);

    // The unbound range is gone for the device too.
    let r = q.run(&[Command::copy(huge_va, huge_va + 2 * MIB, 4096)], T);
    t.check(
        matches!(r, Err(vela_runtime::Error::JobFailed { .. })),
        "after unbind the huge mapping faults (EIO)",
        format_args!("{r:?}"),
    );

    // 4 KiB-aligned VA: 4 KiB pages, one walk per page touched.
    let small_va = (2 << 32) + 4096;
    let b = vm.bind(&bo, small_va, 0, 4 * MIB, Access::READ_WRITE);
    t.check(
        b.is_ok(),
        "bind the same buffer at a 4 KiB-aligned VA",
        format_args!("{:?}", b.as_ref().err()),
    );
    let (ok, same, w) = copy_half(small_va);
    t.check(
        ok && same,
        "COPY 2 MiB through 4 KiB pages moves the data",
        format_args!("ok {ok} same {same}"),
    );
    t.check(
        w >= 512,
        "…with a walk per 4 KiB page",
        format_args!("{w} walks"),
    );
    drop(b);

    // The counters move with the work: a submitted job rings a doorbell.
    let d0 = counters(&dev).map(|c| c[u::DRM_VELA_COUNTER_DOORBELLS as usize]);
    let r = q.run(&[Command::nop()], T);
    let d1 = counters(&dev).map(|c| c[u::DRM_VELA_COUNTER_DOORBELLS as usize]);
    t.check(
        r.is_ok() && d1 > d0,
        "DOORBELLS counts a submitted job",
        format_args!("{d0:?} -> {d1:?}"),
    );
    t.finish()
}
