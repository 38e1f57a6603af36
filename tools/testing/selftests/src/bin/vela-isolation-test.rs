// SPDX-License-Identifier: GPL-2.0

//! Isolation: a job reaches only what its owner bound. Written as an attacker with a job would
//! try it, from the header and `Documentation/` alone:
//!
//! - every command kind (FILL, FENCE, COPY both ways, KERNEL reading and writing, and a COPY
//!   between a peer's VRAM and the kernel's VAs) aimed at the kernel's VAs (`va_size` and up,
//!   where the queues' fence slots once were) fails that job with `EIO`, and the queue, its
//!   VM and another VM go on working;
//! - the exploit that found the hole: a job that first writes all ones where its fence slot
//!   was, then copies for a while, then writes a marker. WAIT must never report it done before
//!   the marker is there;
//! - fences stay true: a long job is never reported done by WAIT before its last write landed;
//! - VRAM a new buffer gets is cleared: nothing of the buffers (or rings, or page tables) that
//!   had it before can be read back;
//! - a VM_BIND that fails part-way (no VRAM left for a page table) leaves nothing mapped: a
//!   job touching the range faults, so the buffer's memory, freed later, stays out of reach.

use std::time::Duration;

use vela_runtime::kernels::{KernelCall, KernelId};
use vela_runtime::{Access, Buffer, BufferFlags, Command, Device, Error, Queue, Vm, WaitStatus};
use vela_selftests::{open_device, p2p_peers, Tap};

const T: Duration = Duration::from_secs(30);
const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
/// VAs are 39 bits wide (`Documentation/hardware/mmu.rst`).
const VA_LIMIT: u64 = 1 << 39;
const MARKER: u32 = 0x600d_f00d;

/// The kernel's VAs a job must not reach: the first page of the range (hardware queue 0's old
/// fence slot), the pages of the other queues' old slots, its middle and its last page; and
/// the first VA past the 39-bit space.
fn kernel_vas(va_size: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..16).map(|i| va_size + i * PAGE).collect();
    v.extend([
        va_size + (VA_LIMIT - va_size) / 2,
        VA_LIMIT - PAGE,
        VA_LIMIT,
    ]);
    v
}

fn failed(r: &vela_runtime::Result<()>) -> bool {
    matches!(r, Err(Error::JobFailed { .. }))
}

/// A small CPU-visible VRAM buffer filled with `byte`, bound read-write.
fn buffer(dev: &Device, size: u64, byte: u8) -> Option<Buffer<'_>> {
    let bo = Buffer::create(dev, size, BufferFlags::VRAM | BufferFlags::CPU_VISIBLE).ok()?;
    bo.map().ok()?.fill(0, size as usize, byte).ok()?;
    Some(bo)
}

fn all(bo: &Buffer<'_>, byte: u8) -> bool {
    bo.map()
        .and_then(|m| m.read_vec(0, bo.size() as usize))
        .is_ok_and(|v| v.iter().all(|&b| b == byte))
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let va_size = match dev.memory() {
        Ok(m) => m.va_size,
        Err(e) => {
            t.check(false, "QUERY_MEMORY", e);
            t.finish()
        }
    };
    t.check(
        va_size > 0 && va_size < VA_LIMIT && va_size % PAGE == 0,
        "va_size is a page-aligned bound below 2^39",
        format_args!("{va_size:#x}"),
    );
    let (Ok(vm), Some(bo)) = (Vm::create(&dev), buffer(&dev, 64 * 1024, 0x5a)) else {
        t.check(false, "a VM and a buffer", "failed");
        t.finish()
    };
    let (Ok(q), Ok(b)) = (Queue::create(&vm), vm.bind_auto(&bo, Access::READ_WRITE)) else {
        t.check(false, "a queue and a binding", "failed");
        t.finish()
    };
    let own = b.va();
    let vas = kernel_vas(va_size);

    // Each kind of command, at each kernel VA, on its own job.
    type Make = dyn Fn(u64) -> Command;
    let add = move |a: u64, dst: u64| {
        Command::kernel(&KernelCall::new(KernelId::AddU32, a, own, 0, dst, 64))
    };
    let kinds: [(&str, Box<Make>); 6] = [
        ("FILL", Box::new(|va| Command::fill(va, 0xffff_ffff, 64))),
        ("FENCE", Box::new(|va| Command::fence(va, u64::MAX))),
        ("COPY into", Box::new(move |va| Command::copy(own, va, 64))),
        (
            "COPY out of",
            Box::new(move |va| Command::copy(va, own, 64)),
        ),
        ("KERNEL writing", Box::new(move |va| add(own, va))),
        ("KERNEL reading", Box::new(move |va| add(va, own + 4096))),
    ];
    for (name, make) in &kinds {
        let reached: Vec<String> = vas
            .iter()
            .filter(|&&va| !failed(&q.run(&[make(va)], T)))
            .map(|va| format!("{va:#x}"))
            .collect();
        t.check(
            reached.is_empty(),
            &format!("{name} a kernel VA fails the job (EIO) at every one tried"),
            format_args!("not refused at {reached:?}"),
        );
    }
    t.check(
        all(&bo, 0x5a),
        "nothing of the kernel's VAs was copied into the job's own buffer",
        "the buffer changed",
    );
    // The fault was the job's alone: the same queue goes on.
    let r = q.run(&[Command::fill(own, MARKER, 64)], T);
    let ok = bo
        .map()
        .and_then(|m| m.read_vec(0, 4))
        .is_ok_and(|v| v == MARKER.to_le_bytes());
    t.check(
        r.is_ok() && ok,
        "the queue runs the next job after the faults",
        format_args!("{r:?}, data {ok}"),
    );

    exploit(&mut t, &dev, &q, &vm, va_size);
    honest_fences(&mut t, &dev);
    peer(&mut t, va_size);
    cleared(&mut t, &dev);
    failed_bind(&mut t, &dev);
    t.finish()
}

/// The outside test's exploit, and what must happen now: the forging FENCE faults, the job
/// fails before its copies and marker, and WAIT says so.
fn exploit(t: &mut Tap, dev: &Device, q: &Queue<'_>, vm: &Vm<'_>, va_size: u64) {
    let (Some(src), Some(dst), Some(mark)) = (
        buffer(dev, 8 * MIB, 1),
        buffer(dev, 8 * MIB, 2),
        buffer(dev, PAGE, 0),
    ) else {
        t.check(false, "exploit: buffers", "failed");
        return;
    };
    let (Ok(s), Ok(d), Ok(m)) = (
        vm.bind_auto(&src, Access::READ_WRITE),
        vm.bind_auto(&dst, Access::READ_WRITE),
        vm.bind_auto(&mark, Access::READ_WRITE),
    ) else {
        t.check(false, "exploit: bindings", "failed");
        return;
    };
    let mut job = vec![Command::fence(va_size, u64::MAX)];
    job.extend((0..256).map(|_| Command::copy(s.va(), d.va(), 8 * MIB)));
    job.push(Command::fill(m.va(), MARKER, 4));
    let r = q.submit(&job).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Err(Error::JobFailed { .. })),
        "a job that writes all ones to its old fence slot fails (EIO), not done early",
        format_args!("{r:?}"),
    );
    t.check(
        all(&mark, 0) && all(&dst, 2),
        "…and stopped at that first command: no copy, no marker",
        "the job ran on",
    );
}

/// WAIT polled with timeout 0 during a long job never says done before the job's last write.
fn honest_fences(t: &mut Tap, dev: &Device) {
    let (Ok(vm), Some(src), Some(dst), Some(mark)) = (
        Vm::create(dev),
        buffer(dev, 8 * MIB, 3),
        buffer(dev, 8 * MIB, 4),
        buffer(dev, PAGE, 0),
    ) else {
        t.check(false, "fences: VM and buffers", "failed");
        return;
    };
    let (Ok(q), Ok(s), Ok(d), Ok(m)) = (
        Queue::create(&vm),
        vm.bind_auto(&src, Access::READ_WRITE),
        vm.bind_auto(&dst, Access::READ_WRITE),
        vm.bind_auto(&mark, Access::READ_WRITE),
    ) else {
        t.check(false, "fences: queue and bindings", "failed");
        return;
    };
    let mut job: Vec<Command> = (0..64)
        .map(|_| Command::copy(s.va(), d.va(), 8 * MIB))
        .collect();
    job.push(Command::fill(m.va(), MARKER, 4));
    let Ok(j) = q.submit(&job) else {
        t.check(false, "fences: submit", "failed");
        return;
    };
    let marker = || {
        mark.map()
            .and_then(|mm| mm.read_vec(0, 4))
            .is_ok_and(|v| v == MARKER.to_le_bytes())
    };
    let start = std::time::Instant::now();
    let mut polls = 0u32;
    let verdict = loop {
        polls += 1;
        match j.wait(Duration::ZERO) {
            Ok(WaitStatus::Completed) => break Ok(marker()),
            Ok(WaitStatus::TimedOut) if start.elapsed() < T => std::thread::yield_now(),
            other => break Err(format!("{other:?}")),
        }
    };
    t.check(
        verdict == Ok(true),
        "WAIT reports a long job done only once its last write landed",
        format_args!("{verdict:?} after {polls} polls"),
    );
    t.check(
        all(&dst, 3),
        "…and its copies are all there",
        "data differs",
    );
}

/// A peer's VRAM, imported and bound, is no bridge to the kernel's VAs either way.
fn peer(t: &mut Tap, va_size: u64) {
    // The test VM always has two devices behind one switch.
    let (a, b) = match p2p_peers() {
        Ok(p) => p,
        Err(e) => {
            t.check(false, "P2P: two peers", e);
            return;
        }
    };
    let (Ok(da), Ok(db)) = (a.open(), b.open()) else {
        t.check(false, "P2P: open both devices", "failed");
        return;
    };
    let Some(theirs) = buffer(&db, 64 * 1024, 0x77) else {
        t.check(false, "P2P: peer buffer", "failed");
        return;
    };
    let Ok(fd) = theirs.export() else {
        t.check(false, "P2P: export", "failed");
        return;
    };
    let (Ok(vm), Ok(imported)) = (Vm::create(&da), da.import(&fd)) else {
        t.check(false, "P2P: VM and import", "failed");
        return;
    };
    let (Ok(q), Ok(bi)) = (
        Queue::create(&vm),
        vm.bind_auto(&imported, Access::READ_WRITE),
    ) else {
        t.check(false, "P2P: queue and binding", "failed");
        return;
    };
    let into = q.run(&[Command::copy(bi.va(), va_size, 4096)], T);
    let out = q.run(&[Command::copy(va_size, bi.va(), 4096)], T);
    t.check(
        failed(&into) && failed(&out),
        "P2P: a COPY between a peer's VRAM and a kernel VA fails the job (EIO)",
        format_args!("into {into:?}, out of {out:?}"),
    );
    t.check(
        all(&theirs, 0x77),
        "…and the peer's buffer is untouched",
        "it changed",
    );
    let r = q.run(&[Command::fill(bi.va(), MARKER, 64)], T);
    t.check(
        r.is_ok() && !all(&theirs, 0x77),
        "…and the queue still writes the peer's VRAM it was given",
        format_args!("{r:?}"),
    );
}

/// Buffers created over VRAM that other buffers filled and freed read back as zeros.
fn cleared(t: &mut Tap, dev: &Device) {
    const N: usize = 8;
    let size = 4 * MIB;
    let dirty: Vec<_> = (0..N).filter_map(|_| buffer(dev, size, 0xa5)).collect();
    t.check(dirty.len() == N, "cleared: buffers filled", "failed");
    drop(dirty);
    let fresh: Vec<_> = (0..N)
        .filter_map(|_| {
            Buffer::create(dev, size, BufferFlags::VRAM | BufferFlags::CPU_VISIBLE).ok()
        })
        .collect();
    let leaked = fresh.iter().filter(|b| !all(b, 0)).count();
    t.check(
        fresh.len() == N && leaked == 0,
        "a new VRAM buffer reads zeros, not what the freed ones held",
        format_args!("{leaked} of {} buffers hold old data", fresh.len()),
    );
}

/// VRAM_ONLY buffers (which nothing evicts) until not even a page is left.
fn exhaust(dev: &Device) -> Vec<Buffer<'_>> {
    let mut held = Vec::new();
    let mut size = 64 * MIB;
    while size >= PAGE {
        match Buffer::create(dev, size, BufferFlags::VRAM | BufferFlags::VRAM_ONLY) {
            Ok(b) => held.push(b),
            Err(_) => size /= 2,
        }
    }
    held
}

/// A bind that runs out of VRAM for a page table half-way is taken back whole.
fn failed_bind(t: &mut Tap, dev: &Device) {
    let flags = BufferFlags::VRAM | BufferFlags::VRAM_ONLY | BufferFlags::CPU_VISIBLE;
    let (Ok(vm), Ok(small), Ok(big)) = (
        Vm::create(dev),
        Buffer::create(dev, PAGE, flags),
        Buffer::create(dev, 4 * MIB + PAGE, flags),
    ) else {
        t.check(false, "failed bind: VM and buffers", "failed");
        return;
    };
    let Ok(q) = Queue::create(&vm) else {
        t.check(false, "failed bind: queue", "failed");
        return;
    };
    // The table for [0, 2 MiB) exists from then on (tables are not freed); the ones above it
    // are what the big bind must allocate.
    let pre = vm
        .bind(&small, 0, 0, PAGE, Access::READ_WRITE)
        .and_then(|b| b.unbind());
    t.check(
        pre.is_ok(),
        "failed bind: a first bind makes the low table",
        format_args!("{pre:?}"),
    );
    // The queue takes its hardware queue (a ring in VRAM) now, while there is VRAM for it.
    let nop = q.run(&[Command::nop()], T);
    t.check(
        nop.is_ok(),
        "failed bind: the queue runs",
        format_args!("{nop:?}"),
    );
    let held = exhaust(dev);
    let va = PAGE;
    let r = vm.bind(&big, va, 0, big.size(), Access::READ_WRITE);
    let errno = r.as_ref().err().and_then(|e| e.errno());
    t.check(
        errno == Some(libc::ENOMEM),
        "a VM_BIND that finds no VRAM for a page table fails with ENOMEM",
        format_args!("{:?}", r.as_ref().map(|b| b.va())),
    );
    drop(r);
    let fill = q.run(&[Command::fill(va, MARKER, PAGE)], T);
    t.check(
        failed(&fill),
        "…and leaves nothing mapped: a job writing the range faults (EIO)",
        format_args!("{fill:?}"),
    );
    t.check(all(&big, 0), "…and the buffer was not written", "it was");
    drop(held);
    let b = vm.bind(&big, va, 0, big.size(), Access::READ_WRITE);
    let fill = q.run(&[Command::fill(va, MARKER, PAGE)], T);
    t.check(
        b.is_ok() && fill.is_ok() && !all(&big, 0),
        "with VRAM back the same bind works and the job writes the buffer",
        format_args!("{:?} {fill:?}", b.as_ref().err()),
    );
}
