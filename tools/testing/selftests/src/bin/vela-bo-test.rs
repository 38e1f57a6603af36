// SPDX-License-Identifier: GPL-2.0

//! Buffer objects: BO_CREATE, BO_INFO, BO_MMAP_OFFSET + mmap, GEM_CLOSE. Happy paths with the
//! data read back through the mapping, page rounding, and the errno of every bad input the
//! header documents.

use std::os::fd::AsRawFd;

use libc::{EINVAL, ENOMEM};
use vela_runtime::{raw, Buffer, BufferFlags, Device, Placement};
use vela_selftests::{expect, msg, open_device, Tap, ENOENT_BAD_ID};

const VRAM: u32 = BufferFlags::VRAM.0;
const CPU: u32 = BufferFlags::CPU_VISIBLE.0;
const VONLY: u32 = BufferFlags::VRAM_ONLY.0;

fn create(dev: &Device, size: u64, flags: u32) -> std::io::Result<u32> {
    let mut a = raw::drm_vela_bo_create {
        size,
        flags,
        ..Default::default()
    };
    raw::bo_create(dev, &mut a).map(|()| a.handle)
}

fn info(dev: &Device, handle: u32, pad: u32) -> std::io::Result<raw::drm_vela_bo_info> {
    let mut a = raw::drm_vela_bo_info {
        handle,
        pad,
        ..Default::default()
    };
    raw::bo_info(dev, &mut a).map(|()| a)
}

fn mmap_offset(dev: &Device, handle: u32, pad: u32) -> std::io::Result<u64> {
    let mut a = raw::drm_vela_bo_mmap_offset {
        handle,
        pad,
        ..Default::default()
    };
    raw::bo_mmap_offset(dev, &mut a).map(|()| a.offset)
}

/// Creates with raw flags and closes right away; the result is all that matters.
fn try_create(dev: &Device, size: u64, flags: u32) -> std::io::Result<()> {
    create(dev, size, flags).map(|h| {
        let _ = raw::gem_close(dev, h);
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn round_trip(t: &mut Tap, dev: &Device, flags: BufferFlags, what: &str) {
    let Some(bo) = t.ok(
        msg(Buffer::create(dev, 256 << 10, flags)),
        &format!("{what}: create 256 KiB"),
    ) else {
        return;
    };
    let Some(map) = t.ok(msg(bo.map()), &format!("{what}: mmap")) else {
        return;
    };
    let data = pattern(map.len(), 7);
    let ok = map.write(0, &data).is_ok() && map.read_vec(0, data.len()).is_ok_and(|v| v == data);
    t.check(
        ok,
        &format!("{what}: write then read back through the mapping"),
        "data differs",
    );
    let ok = map.write_u32(0x1004, 0xdead_beef).is_ok()
        && map.write_u64(0x2008, 0x0123_4567_89ab_cdef).is_ok()
        && map.read_u32(0x1004).ok() == Some(0xdead_beef)
        && map.read_u64(0x2008).ok() == Some(0x0123_4567_89ab_cdef)
        && map
            .read_vec(0x1000, 4)
            .is_ok_and(|v| v == data[0x1000..0x1004]);
    t.check(
        ok,
        &format!("{what}: 32/64-bit stores land where written and nowhere else"),
        "mismatch",
    );
    // A second mapping of the same buffer sees the same memory.
    let Some(map2) = t.ok(msg(bo.map()), &format!("{what}: a second mmap")) else {
        return;
    };
    t.eq(
        map2.read_u32(0x1004).ok(),
        Some(0xdead_beef),
        &format!("{what}: both mappings show the same bytes"),
    );
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let vram = dev.vram_size();
    if let Some(mib) = expect("VRAM_MIB") {
        t.eq(vram, mib << 20, "QUERY's VRAM size is the model's");
    }

    // Happy paths: every placement and what BO_INFO reports for it.
    for (flags, place, what) in [
        (VRAM | CPU, Placement::Vram, "VRAM|CPU_VISIBLE"),
        (VRAM, Placement::Vram, "VRAM"),
        (VRAM | VONLY, Placement::Vram, "VRAM|VRAM_ONLY"),
        (
            VRAM | CPU | VONLY,
            Placement::Vram,
            "VRAM|CPU_VISIBLE|VRAM_ONLY",
        ),
    ] {
        match Buffer::create(&dev, 64 << 10, BufferFlags(flags)) {
            Ok(bo) => {
                t.check(true, &format!("create {what}"), "");
                match bo.info() {
                    Ok(i) => {
                        t.check(
                            i.flags.0 == flags && i.size == 64 << 10 && i.placement == place,
                            &format!("BO_INFO of {what}: flags, size, placement"),
                            format_args!("{i:?}"),
                        );
                    }
                    Err(e) => {
                        t.check(false, &format!("BO_INFO of {what}"), e);
                    }
                }
            }
            Err(e) => {
                t.check(false, &format!("create {what}"), e);
            }
        }
    }

    // Page rounding.
    for (ask, want) in [
        (1u64, 4096u64),
        (4095, 4096),
        (4096, 4096),
        (4097, 8192),
        (12289, 16384),
    ] {
        let r = create(&dev, ask, VRAM).and_then(|h| {
            let i = info(&dev, h, 0);
            let _ = raw::gem_close(&dev, h);
            i
        });
        t.eq(
            r.map(|i| i.size).ok(),
            Some(want),
            &format!("size {ask} rounds up to {want}"),
        );
    }

    round_trip(
        &mut t,
        &dev,
        BufferFlags::VRAM | BufferFlags::CPU_VISIBLE,
        "VRAM",
    );
    // System memory: the same round trip through a mapping of the pages (write-combined, as for
    // VRAM), and BO_INFO says where the buffer lives.
    round_trip(&mut t, &dev, BufferFlags::CPU_VISIBLE, "system");
    if let Ok(bo) = Buffer::create(&dev, 64 << 10, BufferFlags::NONE) {
        t.eq(
            bo.info().map(|i| i.placement).ok(),
            Some(vela_runtime::Placement::System),
            "BO_INFO of a system buffer: placement SYSTEM",
        );
    }
    // Beyond the system-memory limit (4 GiB) is EINVAL; within it but beyond the device's
    // budget (512 MiB) is ENOMEM, and nothing is left allocated.
    t.errno(
        try_create(&dev, (4 << 30) + 4096, CPU),
        libc::EINVAL,
        "BO_CREATE system beyond 4 GiB: EINVAL",
    );
    t.errno(
        try_create(&dev, 1 << 30, 0),
        libc::ENOMEM,
        "BO_CREATE system beyond the 512 MiB budget: ENOMEM",
    );
    t.ok(
        try_create(&dev, 256 << 20, 0),
        "BO_CREATE system 256 MiB after the refused one (budget not leaked)",
    );

    // Buffers are distinct memory.
    if let (Ok(a), Ok(b)) = (Buffer::vram(&dev, 4096), Buffer::vram(&dev, 4096)) {
        t.check(
            a.handle() != b.handle(),
            "two buffers get two handles",
            a.handle(),
        );
        if let (Ok(ma), Ok(mb)) = (a.map(), b.map()) {
            let ok = ma.fill(0, 4096, 0x11).is_ok()
                && mb.fill(0, 4096, 0x22).is_ok()
                && ma
                    .read_vec(0, 4096)
                    .is_ok_and(|v| v.iter().all(|&x| x == 0x11));
            t.check(ok, "writing one buffer leaves another alone", "overlap");
        }
    }

    // A buffer of half the VRAM fits (the domain is not artificially small).
    t.ok(try_create(&dev, vram / 2, VRAM), "create half of VRAM");
    // All that is free fits in one buffer (the kernel keeps a little for its own copy ring),
    // and the whole of VRAM is more than is free: ENOMEM, not EINVAL (the domain holds it).
    let free = dev.memory().map(|m| m.vram_free / 4096 * 4096).unwrap_or(0);
    t.ok(
        try_create(&dev, free, VRAM),
        &format!("create all free VRAM, {free:#x} bytes (nothing else is big)"),
    );
    if free < vram {
        t.errno(
            try_create(&dev, vram, VRAM),
            libc::ENOMEM,
            "create all of VRAM with some of it the kernel's: ENOMEM",
        );
    }

    // Bad inputs, each with the header's errno.
    for (flags, what) in [
        (1 << 3, "unknown flag bit 3"),
        (1 << 31, "unknown flag bit 31"),
        (VRAM | CPU | (1 << 8), "known flags plus an unknown one"),
        (VONLY, "VRAM_ONLY without VRAM"),
        (VONLY | CPU, "VRAM_ONLY|CPU_VISIBLE without VRAM"),
    ] {
        t.errno(
            try_create(&dev, 4096, flags),
            EINVAL,
            &format!("BO_CREATE {what}: EINVAL"),
        );
    }
    t.errno(
        try_create(&dev, 0, VRAM),
        EINVAL,
        "BO_CREATE size 0 (VRAM): EINVAL",
    );
    t.errno(
        try_create(&dev, 0, 0),
        EINVAL,
        "BO_CREATE size 0 (system): EINVAL",
    );
    t.errno(
        try_create(&dev, u64::MAX, VRAM),
        EINVAL,
        "BO_CREATE size u64::MAX (VRAM): EINVAL",
    );
    t.errno(
        try_create(&dev, u64::MAX, 0),
        EINVAL,
        "BO_CREATE size u64::MAX (system): EINVAL",
    );
    t.errno(
        try_create(&dev, u64::MAX - 4094, CPU),
        EINVAL,
        "BO_CREATE size whose page rounding overflows: EINVAL",
    );
    t.errno(
        try_create(&dev, vram + 1, VRAM),
        EINVAL,
        "BO_CREATE VRAM size + 1 byte: EINVAL",
    );
    t.errno(
        try_create(&dev, vram + 4096, VRAM | VONLY),
        EINVAL,
        "BO_CREATE VRAM_ONLY larger than VRAM: EINVAL",
    );
    t.errno(
        try_create(&dev, vram * 2, VRAM | CPU),
        EINVAL,
        "BO_CREATE twice the VRAM: EINVAL",
    );

    // Larger than free but not than the domain: ENOMEM, and it all comes back after close.
    // VRAM_ONLY, so the kernel cannot make room by evicting the earlier ones.
    let quarter = vram / 4;
    let mut held = Vec::new();
    let first_err = loop {
        match create(&dev, quarter, VRAM | VONLY) {
            Ok(h) => held.push(h),
            Err(e) => break Some(e),
        }
        if held.len() > 8 {
            break None;
        }
    };
    t.check(
        held.len() <= 4,
        "VRAM cannot hold more than 4 quarter-VRAM buffers",
        format_args!("{} created", held.len()),
    );
    t.errno(
        first_err.map_or(Ok(()), Err),
        ENOMEM,
        "BO_CREATE beyond the free VRAM: ENOMEM",
    );
    for h in held {
        let _ = raw::gem_close(&dev, h);
    }
    t.ok(
        try_create(&dev, vram / 2, VRAM),
        "closing buffers gives their VRAM back",
    );

    // BO_INFO.
    let h = create(&dev, 4096, VRAM | CPU).unwrap_or(0);
    t.errno(
        info(&dev, h, 1).map(|_| ()),
        EINVAL,
        "BO_INFO non-zero pad: EINVAL",
    );
    t.errno(
        info(&dev, 0, 0).map(|_| ()),
        ENOENT_BAD_ID,
        "BO_INFO handle 0: ENOENT",
    );
    t.errno(
        info(&dev, 0xdead_beef, 0).map(|_| ()),
        ENOENT_BAD_ID,
        "BO_INFO unknown handle: ENOENT",
    );
    t.errno(
        info(&dev, h + 1000, 0).map(|_| ()),
        ENOENT_BAD_ID,
        "BO_INFO handle never created: ENOENT",
    );

    // BO_MMAP_OFFSET.
    t.ok(
        mmap_offset(&dev, h, 0),
        "BO_MMAP_OFFSET of a CPU_VISIBLE buffer",
    );
    t.errno(
        mmap_offset(&dev, h, 1),
        EINVAL,
        "BO_MMAP_OFFSET non-zero pad: EINVAL",
    );
    t.errno(
        mmap_offset(&dev, 0xdead_beef, 0),
        ENOENT_BAD_ID,
        "BO_MMAP_OFFSET unknown handle: ENOENT",
    );
    for (flags, what) in [(VRAM, "VRAM"), (VRAM | VONLY, "VRAM_ONLY")] {
        let r = create(&dev, 4096, flags).and_then(|h2| {
            let r = mmap_offset(&dev, h2, 0);
            let _ = raw::gem_close(&dev, h2);
            r
        });
        t.errno(
            r,
            EINVAL,
            &format!("BO_MMAP_OFFSET of a non-CPU_VISIBLE {what} buffer: EINVAL"),
        );
    }
    // mmap longer than the buffer must fail (DRM core check on the VMA size).
    if let Ok(off) = mmap_offset(&dev, h, 0) {
        // SAFETY: a new mapping at an address the kernel picks; unmapped below if it succeeds.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                dev.as_raw_fd(),
                off as libc::off_t,
            )
        };
        let failed = p == libc::MAP_FAILED;
        if !failed {
            // SAFETY: unmaps what was just mapped.
            unsafe { libc::munmap(p, 8192) };
        }
        t.check(
            failed,
            "mmap of more than the buffer's size fails",
            "mapped 8 KiB of a 4 KiB buffer",
        );
    }

    // GEM_CLOSE: the handle is gone afterwards, and twice is an error (DRM core: EINVAL).
    t.ok(raw::gem_close(&dev, h), "GEM_CLOSE");
    t.errno(
        info(&dev, h, 0).map(|_| ()),
        ENOENT_BAD_ID,
        "BO_INFO after GEM_CLOSE: ENOENT",
    );
    t.errno(raw::gem_close(&dev, h), EINVAL, "GEM_CLOSE twice: EINVAL");

    // A mapping outlives nothing it should not: close the handle while mapped, the mapping
    // keeps the memory (GEM holds a reference for the VMA).
    if let Ok(h) = create(&dev, 4096, VRAM | CPU) {
        if let Ok(off) = mmap_offset(&dev, h, 0) {
            // SAFETY: as above.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    dev.as_raw_fd(),
                    off as libc::off_t,
                )
            };
            if p != libc::MAP_FAILED {
                let _ = raw::gem_close(&dev, h);
                // SAFETY: the mapping is live (4 KiB, page aligned) until the munmap below.
                let v = unsafe {
                    p.cast::<u32>().write_volatile(0x5a5a_a5a5);
                    p.cast::<u32>().read_volatile()
                };
                // SAFETY: unmaps what was mapped above.
                unsafe { libc::munmap(p, 4096) };
                t.eq(
                    v,
                    0x5a5a_a5a5,
                    "a mapping stays usable after its handle is closed",
                );
            } else {
                t.check(
                    false,
                    "mmap for the close-while-mapped check",
                    std::io::Error::last_os_error(),
                );
            }
        }
    }
    t.finish();
}
