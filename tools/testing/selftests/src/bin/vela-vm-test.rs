// SPDX-License-Identifier: GPL-2.0

//! VMs, bindings and queues: VM_CREATE/DESTROY, VM_BIND/UNBIND, QUEUE_CREATE/DESTROY. Happy
//! paths, then every rule of the header: 4 KiB alignment (EINVAL), ranges inside the VM and
//! the buffer (EINVAL), overlaps (EEXIST), unbind of anything but exactly one bind (ENOENT),
//! destroy with queues (EBUSY), flags and padding (EINVAL), unknown ids.

use libc::{EBUSY, EEXIST, EINVAL, ENOENT};
use vela_runtime::{raw, Access, Buffer, BufferFlags, Device, Queue, Vm, VA_END};
use vela_selftests::{msg, open_device, Tap, ENOENT_BAD_ID};

const R: u32 = vela_uapi::DRM_VELA_BIND_READ;
const W: u32 = vela_uapi::DRM_VELA_BIND_WRITE;
const BASE: u64 = 0x40_0000;
const BO_SIZE: u64 = 64 << 10;

fn vm_create(dev: &Device, flags: u32) -> std::io::Result<u32> {
    let mut a = raw::drm_vela_vm_create { flags, vm_id: 0 };
    raw::vm_create(dev, &mut a).map(|()| a.vm_id)
}

fn vm_destroy(dev: &Device, vm_id: u32, pad: u32) -> std::io::Result<()> {
    raw::vm_destroy(dev, &mut raw::drm_vela_vm_destroy { vm_id, pad })
}

#[derive(Clone, Copy)]
struct B {
    vm: u32,
    handle: u32,
    va: u64,
    off: u64,
    size: u64,
    flags: u32,
    pad: u32,
}

fn bind(dev: &Device, b: B) -> std::io::Result<()> {
    raw::vm_bind(
        dev,
        &mut raw::drm_vela_vm_bind {
            vm_id: b.vm,
            handle: b.handle,
            va: b.va,
            bo_offset: b.off,
            size: b.size,
            flags: b.flags,
            pad: b.pad,
        },
    )
}

fn unbind(dev: &Device, vm_id: u32, va: u64, size: u64, pad: u32) -> std::io::Result<()> {
    raw::vm_unbind(
        dev,
        &mut raw::drm_vela_vm_unbind {
            vm_id,
            pad,
            va,
            size,
        },
    )
}

fn queue_create(dev: &Device, vm_id: u32, flags: u32, pad: u32) -> std::io::Result<u32> {
    let mut a = raw::drm_vela_queue_create {
        vm_id,
        flags,
        queue_id: 0,
        pad,
    };
    raw::queue_create(dev, &mut a).map(|()| a.queue_id)
}

fn queue_destroy(dev: &Device, queue_id: u32, pad: u32) -> std::io::Result<()> {
    raw::queue_destroy(dev, &mut raw::drm_vela_queue_destroy { queue_id, pad })
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);

    // VM lifecycle.
    let v1 = t.ok(vm_create(&dev, 0), "VM_CREATE");
    let v2 = t.ok(vm_create(&dev, 0), "VM_CREATE a second VM");
    if let (Some(a), Some(b)) = (v1, v2) {
        t.check(a != b, "two VMs get two ids", a);
        t.ok(vm_destroy(&dev, a, 0), "VM_DESTROY");
        t.errno(
            vm_destroy(&dev, a, 0),
            ENOENT_BAD_ID,
            "VM_DESTROY twice: ENOENT",
        );
        t.errno(
            vm_destroy(&dev, b, 1),
            EINVAL,
            "VM_DESTROY non-zero pad: EINVAL",
        );
        t.ok(vm_destroy(&dev, b, 0), "VM_DESTROY the second VM");
    }
    t.errno(vm_create(&dev, 1), EINVAL, "VM_CREATE flags bit 0: EINVAL");
    t.errno(
        vm_create(&dev, 1 << 31),
        EINVAL,
        "VM_CREATE flags bit 31: EINVAL",
    );
    t.errno(
        vm_destroy(&dev, 0xdead_beef, 0),
        ENOENT_BAD_ID,
        "VM_DESTROY unknown id: ENOENT",
    );

    let Some(vm) = t.ok(msg(Vm::create(&dev)), "VM for the bind tests") else {
        t.finish();
    };
    let Some(bo) = t.ok(
        msg(Buffer::create(&dev, BO_SIZE, BufferFlags::VRAM)),
        "64 KiB VRAM buffer",
    ) else {
        t.finish();
    };
    let sys = Buffer::create(&dev, BO_SIZE, BufferFlags::CPU_VISIBLE).ok();
    let v = vm.id();
    let h = bo.handle();
    let whole = B {
        vm: v,
        handle: h,
        va: BASE,
        off: 0,
        size: BO_SIZE,
        flags: R | W,
        pad: 0,
    };

    // Happy paths.
    t.ok(bind(&dev, whole), "bind a whole buffer read-write");
    t.ok(unbind(&dev, v, BASE, BO_SIZE, 0), "unbind it");
    t.ok(bind(&dev, whole), "bind the same range again after unbind");
    t.ok(unbind(&dev, v, BASE, BO_SIZE, 0), "and unbind it again");
    let part = B {
        va: BASE + 0x10_0000,
        off: 0x1000,
        size: 0x2000,
        flags: R,
        ..whole
    };
    t.ok(
        bind(&dev, part),
        "bind part of a buffer read-only at an offset",
    );
    let adjacent = B {
        va: part.va + part.size,
        off: 0,
        size: 0x1000,
        ..whole
    };
    t.ok(
        bind(&dev, adjacent),
        "bind right after another mapping (touching, not overlapping)",
    );
    let below = B {
        va: part.va - 0x1000,
        off: 0,
        size: 0x1000,
        ..whole
    };
    t.ok(bind(&dev, below), "bind right before another mapping");
    let twice = B {
        va: BASE + 0x20_0000,
        ..whole
    };
    t.ok(bind(&dev, twice), "the same buffer bound at a second VA");
    if let Some(s) = &sys {
        t.ok(
            bind(
                &dev,
                B {
                    handle: s.handle(),
                    va: BASE + 0x30_0000,
                    ..whole
                },
            ),
            "bind a system-memory buffer",
        );
    }
    let top = B {
        va: VA_END - BO_SIZE,
        ..whole
    };
    t.ok(
        bind(&dev, top),
        "bind ending exactly at the top of the user VA space",
    );
    t.ok(
        unbind(&dev, v, top.va, top.size, 0),
        "unbind at the top of the VA space",
    );

    // Alignment: EINVAL.
    for (b, what) in [
        (
            B {
                va: BASE + 0x80_0001,
                ..whole
            },
            "va off by 1",
        ),
        (
            B {
                va: BASE + 0x80_0800,
                ..whole
            },
            "va 2 KiB aligned",
        ),
        (
            B {
                va: BASE + 0x80_0000,
                off: 0x800,
                size: 0x1000,
                ..whole
            },
            "bo_offset 2 KiB aligned",
        ),
        (
            B {
                va: BASE + 0x80_0000,
                size: 0x1800,
                ..whole
            },
            "size 6 KiB",
        ),
        (
            B {
                va: BASE + 0x80_0000,
                size: 1,
                ..whole
            },
            "size 1",
        ),
    ] {
        t.errno(
            bind(&dev, b),
            EINVAL,
            &format!("VM_BIND misaligned {what}: EINVAL"),
        );
    }
    // Ranges outside the buffer or the VM: EINVAL.
    for (b, what) in [
        (
            B {
                va: BASE + 0x80_0000,
                size: BO_SIZE + 0x1000,
                ..whole
            },
            "size larger than the buffer",
        ),
        (
            B {
                va: BASE + 0x80_0000,
                off: 0x1000,
                size: BO_SIZE,
                ..whole
            },
            "offset + size past the buffer's end",
        ),
        (
            B {
                va: BASE + 0x80_0000,
                off: BO_SIZE,
                size: 0x1000,
                ..whole
            },
            "offset at the buffer's end",
        ),
        (
            B {
                va: BASE + 0x80_0000,
                off: !0xfff,
                size: 0x1000,
                ..whole
            },
            "offset near u64::MAX",
        ),
        (
            B {
                va: BASE + 0x80_0000,
                off: 0x1000,
                size: !0xfff,
                ..whole
            },
            "offset + size wrapping",
        ),
        (
            B {
                va: VA_END,
                size: 0x1000,
                ..whole
            },
            "va at 2^39",
        ),
        (
            B {
                va: VA_END - 0x1000,
                ..whole
            },
            "va + size past 2^39",
        ),
        (
            B {
                va: 1 << 47,
                size: 0x1000,
                ..whole
            },
            "va at 2^47",
        ),
        (
            B {
                va: !0xfff,
                size: 0x1000,
                ..whole
            },
            "va near u64::MAX",
        ),
        (
            B {
                va: !0xfff,
                size: 0x2000,
                ..whole
            },
            "va + size wrapping",
        ),
    ] {
        t.errno(bind(&dev, b), EINVAL, &format!("VM_BIND {what}: EINVAL"));
    }
    // Flags and padding.
    for (flags, what) in [
        (0, "no access flags"),
        (W, "WRITE without READ"),
        (R | 4, "unknown flag bit 2"),
        (R | W | (1 << 31), "unknown flag bit 31"),
    ] {
        t.errno(
            bind(
                &dev,
                B {
                    va: BASE + 0x80_0000,
                    flags,
                    ..whole
                },
            ),
            EINVAL,
            &format!("VM_BIND {what}: EINVAL"),
        );
    }
    t.errno(
        bind(
            &dev,
            B {
                va: BASE + 0x80_0000,
                pad: 1,
                ..whole
            },
        ),
        EINVAL,
        "VM_BIND non-zero pad: EINVAL",
    );
    t.errno(
        bind(
            &dev,
            B {
                vm: 0xdead_beef,
                va: BASE + 0x80_0000,
                ..whole
            },
        ),
        ENOENT_BAD_ID,
        "VM_BIND unknown VM: ENOENT",
    );
    t.errno(
        bind(
            &dev,
            B {
                handle: 0xdead_beef,
                va: BASE + 0x80_0000,
                ..whole
            },
        ),
        ENOENT_BAD_ID,
        "VM_BIND unknown buffer handle: ENOENT",
    );
    // Overlaps: EEXIST.
    for (b, what) in [
        (part, "the same range again"),
        (
            B {
                va: part.va + 0x1000,
                size: 0x1000,
                ..whole
            },
            "a range inside a mapping",
        ),
        (
            B {
                va: part.va - 0x2000,
                size: 0x4000,
                ..whole
            },
            "a range starting before and ending inside",
        ),
        (
            B {
                va: part.va + 0x1000,
                size: 0x4000,
                ..whole
            },
            "a range starting inside and ending after",
        ),
        (
            B {
                va: below.va - 0x1000,
                size: 0x8000,
                ..whole
            },
            "a range covering three mappings",
        ),
    ] {
        t.errno(
            bind(&dev, b),
            EEXIST,
            &format!("VM_BIND overlapping {what}: EEXIST"),
        );
    }

    // Unbind: exactly one earlier bind, else ENOENT.
    for (va, size, what) in [
        (BASE + 0x90_0000, 0x1000, "a range never bound"),
        (part.va, 0x1000, "the first page of a mapping"),
        (part.va + 0x1000, 0x1000, "the last page of a mapping"),
        (part.va, part.size + 0x1000, "a mapping plus the next"),
        (
            below.va,
            0x1000 + part.size,
            "two adjacent mappings at once",
        ),
        (part.va - 0x1000, part.size, "a shifted range"),
    ] {
        t.errno(
            unbind(&dev, v, va, size, 0),
            ENOENT,
            &format!("VM_UNBIND {what}: ENOENT"),
        );
    }
    t.errno(
        unbind(&dev, v, part.va, part.size, 1),
        EINVAL,
        "VM_UNBIND non-zero pad: EINVAL",
    );
    t.errno(
        unbind(&dev, 0xdead_beef, part.va, part.size, 0),
        ENOENT,
        "VM_UNBIND unknown VM: ENOENT",
    );
    t.ok(
        unbind(&dev, v, part.va, part.size, 0),
        "VM_UNBIND the partial mapping",
    );
    t.errno(
        unbind(&dev, v, part.va, part.size, 0),
        ENOENT,
        "VM_UNBIND twice: ENOENT",
    );
    t.ok(bind(&dev, part), "the freed range can be bound again");

    // VMs are separate address spaces: the same VA binds in two VMs.
    if let Ok(vm2) = Vm::create(&dev) {
        t.ok(
            bind(
                &dev,
                B {
                    vm: vm2.id(),
                    ..part
                },
            ),
            "the same VA is free in another VM",
        );
        // Destroying a VM with live bindings is allowed; only queues block it.
        drop(vm2);
    }

    // Queues.
    let q = t.ok(queue_create(&dev, v, 0, 0), "QUEUE_CREATE");
    t.errno(
        queue_create(&dev, v, 1, 0),
        EINVAL,
        "QUEUE_CREATE non-zero flags: EINVAL",
    );
    t.errno(
        queue_create(&dev, v, 0, 1),
        EINVAL,
        "QUEUE_CREATE non-zero pad: EINVAL",
    );
    t.errno(
        queue_create(&dev, 0xdead_beef, 0, 0),
        ENOENT_BAD_ID,
        "QUEUE_CREATE unknown VM: ENOENT",
    );
    t.errno(
        vm_destroy(&dev, v, 0),
        EBUSY,
        "VM_DESTROY with a queue: EBUSY",
    );
    if let Some(q) = q {
        t.errno(
            queue_destroy(&dev, q, 1),
            EINVAL,
            "QUEUE_DESTROY non-zero pad: EINVAL",
        );
        t.ok(queue_destroy(&dev, q, 0), "QUEUE_DESTROY");
        t.errno(
            queue_destroy(&dev, q, 0),
            ENOENT_BAD_ID,
            "QUEUE_DESTROY twice: ENOENT",
        );
    }
    t.errno(
        queue_destroy(&dev, 0xdead_beef, 0),
        ENOENT_BAD_ID,
        "QUEUE_DESTROY unknown id: ENOENT",
    );

    // The safe wrappers: RAII unbinds and destroys in order, and the VA allocator places
    // bindings without overlap.
    let mut auto_range = None;
    {
        let b1 = vm.bind_auto(&bo, Access::READ_WRITE);
        let b2 = vm.bind_auto(&bo, Access::READ);
        match (&b1, &b2) {
            (Ok(x), Ok(y)) => {
                auto_range = Some((x.va(), x.size()));
                t.check(
                    x.va() + x.size() <= y.va() || y.va() + y.size() <= x.va(),
                    "bind_auto places two bindings apart",
                    format_args!("{:#x} {:#x}", x.va(), y.va()),
                );
            }
            _ => {
                t.check(false, "bind_auto twice", format_args!("{b1:?} {b2:?}"));
            }
        }
        let q = Queue::create(&vm);
        t.ok(msg(q.map(|_| ())), "Queue::create on the VM");
    }
    if let Some((va, size)) = auto_range {
        t.errno(
            unbind(&dev, v, va, size, 0),
            ENOENT,
            "a dropped Binding is unbound",
        );
    }
    // Everything the test bound is still there; destroying the VM releases it.
    t.ok(
        vm_destroy(&dev, v, 0),
        "VM_DESTROY with bindings but no queues",
    );
    std::mem::forget(vm);
    t.finish();
}
