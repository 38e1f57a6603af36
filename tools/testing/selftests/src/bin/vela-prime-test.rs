// SPDX-License-Identifier: GPL-2.0

//! dma-buf sharing (PRIME) between Vela devices and with other exporters, checked by data.
//!
//! The devices are told apart by PCI topology, not by minor number: A and B sit below one
//! PCIe switch upstream port (peer-to-peer through the switch), C on a root port of its own
//! (no P2P path to A). The cases:
//!
//! 1. A exports a VRAM buffer; a second open file of A imports it and gets the same object
//!    (VRAM placement, original flags, its own mapping shows A's data and vice versa).
//! 2. B imports A's buffer (P2P): COPY out of it and into it on B's engine, checked through
//!    B's and A's mappings; B's P2P_BYTES counter grew by at least the bytes copied.
//! 3. C cannot import a VRAM_ONLY buffer of A (EOPNOTSUPP); B still can, and C still works.
//! 4. A imports a udmabuf: COPY both ways, checked through the memfd's mapping.
//! 5. A imports a system dma-heap buffer: the same, with DMA_BUF_IOCTL_SYNC around CPU access.
//! 6. Revocation: B has A's buffer bound when A is unbound; a COPY from it fails cleanly
//!    (SUBMIT ENODEV or a failed job), B's own buffers still work (in a new VM, and in the
//!    same one once the revoked import is unbound), and A works after rebind. The test
//!    importer module's dynamic mapping of another buffer of A is invalidated too, and a new
//!    one is refused (ENODEV).
//! 7. Odd close orders: the dma-buf fd before the import, the exporter's file before the
//!    import, the importer's VM before the import; later imports still work.
//!
//! Every case opens the devices it uses afresh, so a case that fails leaves the next ones a
//! clean start; a step that fails ends its case with a failed check, never a panic.
//!
//! Usage: vela-prime-test [CASE...] runs only the cases named (numbers 1 to 7), for
//! development; with no argument, all of them.

use std::{
    fs,
    os::fd::AsFd,
    time::{Duration, Instant},
};

use vela_runtime::{
    Access, Buffer, BufferFlags, Command, Device, Error, Placement, Queue, Vm, WaitStatus,
};
use vela_selftests::{
    dmabuf::{self, FdMap, Udmabuf},
    get,
    importer::{Attach, Importer},
    io, p2p_topology, pattern, same,
    sharing::{check_data, local_copy_works, open, read_bo, s, vram_with},
    step, P2pTopology, PciDev, Tap,
};

const T: Duration = Duration::from_secs(20);
/// Size of the shared buffers: 64 pages, one COPY.
const LEN: u64 = 256 << 10;
const DRIVER: &str = "/sys/bus/pci/drivers/vela";
const P2P_BYTES: usize = vela_uapi::DRM_VELA_COUNTER_P2P_BYTES as usize;

/// A job of 960 FILLs of `LEN` bytes at `va` with junk, then one with `last`: long enough
/// (240 MiB of writes) that work submitted right after it would see junk if it did not wait.
fn long_fill(va: u64, junk: u32, last: u32) -> Vec<Command> {
    let mut fills: Vec<Command> = (0..960u32)
        .map(|pass| Command::fill(va, junk + pass, LEN))
        .collect();
    fills.push(Command::fill(va, last, LEN));
    fills
}

/// Runs a COPY of `LEN` bytes on `q` and records whether it completed.
fn copy_ok(t: &mut Tap, q: &Queue<'_>, from: u64, to: u64, desc: &str) {
    let r = s(q.run(&[Command::copy(from, to, LEN)], T));
    t.check(r.is_ok(), desc, format_args!("{r:?}"));
}

/// BO_INFO of an import of a foreign dma-buf: IMPORTED, no flags, at least `len` bytes, and
/// no BO_MMAP_OFFSET.
fn check_foreign_import(t: &mut Tap, bo: &Buffer<'_>, len: u64, what: &str) {
    let info = bo.info();
    t.check(
        matches!(&info, Ok(i) if i.placement == Placement::Imported
            && i.flags == BufferFlags::NONE
            && i.size >= len),
        &format!("{what}: BO_INFO says IMPORTED, flags 0, size >= {len:#x}"),
        format_args!("{info:?}"),
    );
    t.errno(
        io(bo.mmap_offset()),
        libc::EINVAL,
        &format!("{what}: BO_MMAP_OFFSET of the import is EINVAL"),
    );
}

/// Case 1: a second open file of A imports A's export and gets the same object.
fn case1_self_import(t: &mut Tap, topo: &P2pTopology) {
    let (Some(a1), Some(a2)) = (open(t, &topo.a, "A"), open(t, &topo.a, "A again")) else {
        return;
    };
    let flags = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;
    let pat = pattern(1, LEN);
    let bo = get!(t, vram_with(&a1, &pat, BufferFlags::NONE), "1: A buffer");
    let fd = step!(t, s(bo.export()), "1: A exports a VRAM buffer");
    let imp = step!(t, s(a2.import(&fd)), "1: a second file of A imports it");
    let info = imp.info();
    t.check(
        matches!(&info, Ok(i) if i.placement == Placement::Vram && i.flags == flags
            && i.size == bo.size()),
        "1: the import is the original object: VRAM, VRAM|CPU_VISIBLE, same size",
        format_args!("{info:?}, exporter's size {:#x}", bo.size()),
    );
    check_data(
        t,
        read_bo(&imp, LEN),
        &pat,
        "1: the importer's own mapping shows the exporter's data",
    );
    // And the other way: a write through the importer's mapping is in the exporter's.
    let pat2 = pattern(2, LEN);
    let w = imp.map().and_then(|m| m.write(0, &pat2));
    t.check(
        w.is_ok(),
        "1: write through the importer's mapping",
        format_args!("{w:?}"),
    );
    check_data(
        t,
        read_bo(&bo, LEN),
        &pat2,
        "1: the exporter's mapping shows the importer's write",
    );

    // DRM's rule: importing into a file that already has a handle for the object returns that
    // handle (for the exporting file, the original one).
    let again = s(a1.import(&fd));
    t.check(
        matches!(&again, Ok(b) if b.handle() == bo.handle()),
        "1: the exporting file importing its own dma-buf gets its own handle back",
        format_args!(
            "{:?}, original handle {}",
            again.as_ref().map(|b| b.handle()),
            bo.handle()
        ),
    );
    drop(again);
    // The runtime counts holders of a shared handle: the original must survive that drop.
    check_data(
        t,
        read_bo(&bo, LEN),
        &pat2,
        "1: the original buffer still works after the duplicate handle is dropped",
    );
}

/// Case 2: B imports A's VRAM buffer and copies out of it and into it over P2P.
fn case2_p2p(t: &mut Tap, topo: &P2pTopology) {
    let (Some(a), Some(b)) = (open(t, &topo.a, "A"), open(t, &topo.b, "B")) else {
        return;
    };
    let pat1 = pattern(21, LEN);
    let pat2 = pattern(22, LEN);
    let src = get!(t, vram_with(&a, &pat1, BufferFlags::NONE), "2: A buffer");
    let fd = get!(t, s(src.export()), "2: A exports a VRAM buffer");
    let imp = step!(
        t,
        s(b.import(&fd)),
        "2: B imports A's buffer (peer through the switch)"
    );
    check_foreign_import(t, &imp, LEN, "2");
    let vm = get!(t, s(Vm::create(&b)), "2: B VM");
    let q = get!(t, s(Queue::create(&vm)), "2: B queue");
    let bi = get!(
        t,
        s(vm.bind_auto(&imp, Access::READ_WRITE)),
        "2: B binds the import"
    );
    let dst = get!(
        t,
        vram_with(&b, &pattern(23, LEN), BufferFlags::NONE),
        "2: B buffer"
    );
    let bd = get!(t, s(vm.bind_auto(&dst, Access::READ_WRITE)), "2: bind");
    let src2 = get!(t, vram_with(&b, &pat2, BufferFlags::NONE), "2: B buffer 2");
    let bs2 = get!(t, s(vm.bind_auto(&src2, Access::READ)), "2: bind 2");
    let before = get!(t, s(b.counters()), "2: B's counters");

    copy_ok(
        t,
        &q,
        bi.va(),
        bd.va(),
        "2: B COPYs from A's VRAM into its own",
    );
    check_data(
        t,
        read_bo(&dst, LEN),
        &pat1,
        "2: B's copy holds A's data (read through B's mapping)",
    );
    copy_ok(
        t,
        &q,
        bs2.va(),
        bi.va(),
        "2: B COPYs its own data into A's VRAM",
    );
    check_data(
        t,
        read_bo(&src, LEN),
        &pat2,
        "2: A's buffer holds B's data (read through A's mapping)",
    );
    let after = get!(t, s(b.counters()), "2: B's counters");
    let grew = after[P2P_BYTES].wrapping_sub(before[P2P_BYTES]);
    t.check(
        grew >= 2 * LEN,
        "2: B's P2P_BYTES grew by at least the bytes copied",
        format_args!("grew by {grew}, copied {}", 2 * LEN),
    );

    // Implicit sync across devices: A's long job writes the buffer; B's COPY, submitted right
    // after with no explicit dependency, waits for A's fence in the shared reservation object
    // and copies the final data, not the junk of the earlier passes.
    let avm = get!(t, s(Vm::create(&a)), "2: A VM");
    let aq = get!(t, s(Queue::create(&avm)), "2: A queue");
    let asrc = get!(
        t,
        s(avm.bind_auto(&src, Access::READ_WRITE)),
        "2: A binds its buffer"
    );
    let fills = long_fill(asrc.va(), 0xdead_0000, 0x600d_f00d);
    let job = get!(
        t,
        s(aq.submit(&fills)),
        "2: A submits 961 FILLs of its buffer (240 MiB of writes)"
    );
    copy_ok(
        t,
        &q,
        bi.va(),
        bd.va(),
        "2: B COPYs from the import right after, no explicit dependency",
    );
    let want: Vec<u8> = (0..LEN / 4)
        .flat_map(|_| 0x600d_f00du32.to_le_bytes())
        .collect();
    check_data(
        t,
        read_bo(&dst, LEN),
        &want,
        "2: B's copy holds A's final data (B waited for A's job: implicit sync)",
    );
    let r = s(job.wait(T));
    t.check(r.is_ok(), "2: A's job completed", format_args!("{r:?}"));

    // The CPU through the dma-buf fd: mmap of the exported fd, and DMA_BUF_IOCTL_SYNC waits
    // for the device's writes (A's job fence is in the buffer's reservation object).
    let fills = long_fill(asrc.va(), 0xbad0_0000, 0xcafe_d00d);
    let job = get!(t, s(aq.submit(&fills)), "2: A submits another 961 FILLs");
    let map = get!(
        t,
        FdMap::new(&fd, LEN as usize),
        "2: mmap of the exported dma-buf fd"
    );
    let synced = dmabuf::sync(&fd, dmabuf::DMA_BUF_SYNC_START | dmabuf::DMA_BUF_SYNC_READ);
    t.check(
        synced.is_ok(),
        "2: DMA_BUF_IOCTL_SYNC START|READ on it",
        format_args!("{synced:?}"),
    );
    let want: Vec<u8> = (0..LEN / 4)
        .flat_map(|_| 0xcafe_d00du32.to_le_bytes())
        .collect();
    check_data(
        t,
        map.read_vec(0, LEN as usize).map_err(|e| e.to_string()),
        &want,
        "2: after the SYNC the fd's mapping shows the job's final data",
    );
    let _ = dmabuf::sync(&fd, dmabuf::DMA_BUF_SYNC_END | dmabuf::DMA_BUF_SYNC_READ);
    let r = s(job.wait(T));
    t.check(
        r.is_ok(),
        "2: A's second job completed",
        format_args!("{r:?}"),
    );
}

/// Case 3: C has no P2P path to A, and a VRAM_ONLY buffer cannot move: EOPNOTSUPP.
fn case3_no_path(t: &mut Tap, topo: &P2pTopology) {
    let (Some(a), Some(b), Some(c)) = (
        open(t, &topo.a, "A"),
        open(t, &topo.b, "B"),
        open(t, &topo.c, "C"),
    ) else {
        return;
    };
    let pat = pattern(31, LEN);
    let bo = get!(
        t,
        vram_with(&a, &pat, BufferFlags::VRAM_ONLY),
        "3: A VRAM_ONLY buffer"
    );
    let fd = get!(t, s(bo.export()), "3: A exports a VRAM_ONLY buffer");
    t.errno(
        io(c.import(&fd)),
        libc::EOPNOTSUPP,
        "3: C (own root port, no P2P path) cannot import it: EOPNOTSUPP",
    );
    // The same dma-buf is fine for a device that can reach it: the refusal was the path's.
    let r = (|| {
        let imp = s(b.import(&fd))?;
        let dst = vram_with(&b, &pattern(32, LEN), BufferFlags::NONE)?;
        let vm = s(Vm::create(&b))?;
        let q = s(Queue::create(&vm))?;
        let bi = s(vm.bind_auto(&imp, Access::READ))?;
        let bd = s(vm.bind_auto(&dst, Access::READ_WRITE))?;
        s(q.run(&[Command::copy(bi.va(), bd.va(), LEN)], T))?;
        same(&read_bo(&dst, LEN)?, &pat)
    })();
    t.check(
        r.is_ok(),
        "3: B imports the same dma-buf and copies A's data out of it",
        format_args!("{r:?}"),
    );
    let r = local_copy_works(&c, 33);
    t.check(
        r.is_ok(),
        "3: C still works after the refused import",
        format_args!("{r:?}"),
    );
}

/// COPY from the imported foreign dma-buf `fd` into a local buffer of A and back, checked
/// through `cpu_read`/`cpu_write` on the exporter's side.
fn two_way(
    t: &mut Tap,
    a: &Device,
    fd: impl AsFd,
    len: u64,
    cpu_write: &dyn Fn(&[u8]) -> Result<(), String>,
    cpu_read: &dyn Fn() -> Result<Vec<u8>, String>,
    what: &str,
) {
    let pat1 = pattern(41, len);
    let pat2 = pattern(42, len);
    get!(
        t,
        cpu_write(&pat1),
        &format!("{what}: CPU fills the dma-buf")
    );
    let imp = step!(t, s(a.import(fd)), &format!("{what}: A imports it"));
    check_foreign_import(t, &imp, len, what);
    let vm = get!(t, s(Vm::create(a)), &format!("{what}: VM"));
    let q = get!(t, s(Queue::create(&vm)), &format!("{what}: queue"));
    let bi = get!(
        t,
        s(vm.bind_auto(&imp, Access::READ_WRITE)),
        &format!("{what}: A binds the import")
    );
    let dst = get!(
        t,
        vram_with(a, &pattern(43, len), BufferFlags::NONE),
        &format!("{what}: A buffer")
    );
    let bd = get!(
        t,
        s(vm.bind_auto(&dst, Access::READ_WRITE)),
        &format!("{what}: bind")
    );
    let r = s(q.run(&[Command::copy(bi.va(), bd.va(), len)], T));
    t.check(
        r.is_ok(),
        &format!("{what}: A COPYs out of the import"),
        format_args!("{r:?}"),
    );
    check_data(
        t,
        read_bo(&dst, len),
        &pat1,
        &format!("{what}: A's buffer holds what the CPU wrote into the dma-buf"),
    );
    let w = dst.map().and_then(|m| m.write(0, &pat2));
    t.check(
        w.is_ok(),
        &format!("{what}: write A's buffer"),
        format_args!("{w:?}"),
    );
    let r = s(q.run(&[Command::copy(bd.va(), bi.va(), len)], T));
    t.check(
        r.is_ok(),
        &format!("{what}: A COPYs into the import"),
        format_args!("{r:?}"),
    );
    check_data(
        t,
        cpu_read(),
        &pat2,
        &format!("{what}: the CPU sees A's data in the dma-buf"),
    );
}

/// Case 4: a udmabuf (system memory of a memfd).
fn case4_udmabuf(t: &mut Tap, topo: &P2pTopology) {
    let Some(a) = open(t, &topo.a, "A") else {
        return;
    };
    let u = step!(
        t,
        Udmabuf::new(LEN),
        "4: create a udmabuf over a sealed memfd"
    );
    let map = get!(t, FdMap::new(&u.memfd, LEN as usize), "4: mmap the memfd");
    let w = |d: &[u8]| map.write(0, d).map_err(|e| e.to_string());
    let r = || map.read_vec(0, LEN as usize).map_err(|e| e.to_string());
    two_way(t, &a, &u.dmabuf, LEN, &w, &r, "4 (udmabuf)");
}

/// Case 5: a system dma-heap buffer, CPU access bracketed by DMA_BUF_IOCTL_SYNC.
fn case5_dma_heap(t: &mut Tap, topo: &P2pTopology) {
    let Some(a) = open(t, &topo.a, "A") else {
        return;
    };
    let fd = step!(
        t,
        dmabuf::heap_alloc("system", LEN),
        "5: allocate from /dev/dma_heap/system"
    );
    let map = get!(t, FdMap::new(&fd, LEN as usize), "5: mmap the dma-buf");
    let synced = |flags: u64, f: &mut dyn FnMut() -> std::io::Result<()>| {
        dmabuf::sync(&fd, dmabuf::DMA_BUF_SYNC_START | flags)
            .and_then(|_| f())
            .and_then(|_| dmabuf::sync(&fd, dmabuf::DMA_BUF_SYNC_END | flags))
            .map_err(|e| e.to_string())
    };
    let w = |d: &[u8]| synced(dmabuf::DMA_BUF_SYNC_WRITE, &mut || map.write(0, d));
    let r = || {
        let mut v = Vec::new();
        synced(dmabuf::DMA_BUF_SYNC_READ, &mut || {
            v = map.read_vec(0, LEN as usize)?;
            Ok(())
        })?;
        Ok(v)
    };
    two_way(t, &a, &fd, LEN, &w, &r, "5 (dma-heap)");
}

fn write_driver(file: &str, bdf: &str) -> Result<(), String> {
    fs::write(format!("{DRIVER}/{file}"), bdf).map_err(|e| format!("{bdf} > {DRIVER}/{file}: {e}"))
}

/// Polls until `d` has an accel node that opens (udev-less: devtmpfs creates it at register).
fn wait_for_node(d: &PciDev) -> Result<Device, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match d.open() {
            Ok(dev) => return Ok(dev),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Case 6: the exporter goes away while B has its buffer bound.
fn case6_revocation(t: &mut Tap, topo: &P2pTopology) {
    let unbound = revoke(t, topo);
    if unbound {
        // Rebind whatever happened above, so the rest of the run has its device back.
        let r = write_driver("bind", &topo.a.bdf).and_then(|_| wait_for_node(&topo.a));
        t.check(
            r.is_ok(),
            "6: rebind A: its accel node comes back",
            format_args!("{:?}", r.as_ref().err()),
        );
        let Ok(a) = r else { return };
        let bo = s(Buffer::vram(&a, LEN));
        t.check(
            bo.is_ok(),
            "6: A creates a buffer after the rebind",
            format_args!("{bo:?}"),
        );
        drop(bo);
        let w = local_copy_works(&a, 64);
        t.check(
            w.is_ok(),
            "6: A runs a COPY with correct data after the rebind",
            format_args!("{w:?}"),
        );
    }
}

/// The part of case 6 while A is unbound. Returns whether A was unbound (and needs a rebind).
fn revoke(t: &mut Tap, topo: &P2pTopology) -> bool {
    let (Some(a), Some(b)) = (open(t, &topo.a, "A"), open(t, &topo.b, "B")) else {
        return false;
    };
    let pat = pattern(61, LEN);
    let run = || -> Result<_, String> {
        let src = vram_with(&a, &pat, BufferFlags::NONE)?;
        let fd = s(src.export())?;
        Ok((src, fd))
    };
    // A keeps its handle (and file) open through the unbind.
    let (_src, fd) = match run() {
        Ok(v) => v,
        Err(e) => {
            t.check(false, "6: A exports a buffer", e);
            return false;
        }
    };
    let imp = match s(b.import(&fd)) {
        Ok(i) => i,
        Err(e) => {
            t.check(false, "6: B imports A's buffer", e);
            return false;
        }
    };
    let setup = || -> Result<_, String> {
        let vm = s(Vm::create(&b))?;
        let dst = vram_with(&b, &pattern(62, LEN), BufferFlags::NONE)?;
        let own = vram_with(&b, &pattern(63, LEN), BufferFlags::NONE)?;
        Ok((vm, dst, own))
    };
    let (vm, dst, own) = match setup() {
        Ok(v) => v,
        Err(e) => {
            t.check(false, "6: B's VM and buffers", e);
            return false;
        }
    };
    let binds = (|| {
        Ok::<_, String>((
            s(Queue::create(&vm))?,
            s(vm.bind_auto(&imp, Access::READ))?,
            s(vm.bind_auto(&dst, Access::READ_WRITE))?,
            s(vm.bind_auto(&own, Access::READ))?,
        ))
    })();
    let (q, bi, bd, bo) = match binds {
        Ok(v) => v,
        Err(e) => {
            t.check(false, "6: B binds the import and its buffers", e);
            return false;
        }
    };
    let r = s(q.run(&[Command::copy(bi.va(), bd.va(), LEN)], T))
        .and_then(|_| same(&read_bo(&dst, LEN)?, &pat));
    t.check(
        r.is_ok(),
        "6: before the unbind, B copies A's data out of the import",
        format_args!("{r:?}"),
    );

    // A C importer (the test module) has another of A's buffers mapped, dynamically: it gets
    // system pages, which unbind revokes as well.
    let c_side = (|| {
        let other = vram_with(&a, &pattern(67, LEN), BufferFlags::NONE)?;
        let fd = s(other.export())?;
        let vti = Importer::open().map_err(|e| e.to_string())?;
        let slot = vti
            .import(&fd, Attach::Dynamic)
            .map_err(|e| e.to_string())?;
        vti.map(slot).map_err(|e| e.to_string())?;
        let before = vti.status(slot).map_err(|e| e.to_string())?;
        Ok::<_, String>((other, fd, vti, slot, before))
    })();
    t.check(
        c_side.is_ok(),
        "6: the test importer maps another of A's buffers",
        format_args!("{:?}", c_side.as_ref().err()),
    );

    // And a job of A's own that waits in the kernel (by implicit sync, for a long job of
    // another queue of its VM) when A goes: unbind fails it rather than wait for it.
    let a_vm = s(Vm::create(&a));
    let a_big = s(Buffer::create(&a, 1 << 20, BufferFlags::VRAM));
    let a_side = match (&a_vm, &a_big) {
        (Ok(vm), Ok(big)) => (|| {
            let q1 = s(Queue::create(vm))?;
            let q2 = s(Queue::create(vm))?;
            let b = s(vm.bind_auto(big, Access::READ_WRITE))?;
            let long: Vec<Command> = (0..1000u32)
                .map(|k| Command::fill(b.va(), k, 1 << 20))
                .collect();
            s(q1.submit(&long))?;
            let j = s(q2.submit(&[Command::fill(b.va(), 1, 4096)]))?.seqno();
            let waiting = matches!(q2.wait_seqno(j, Duration::ZERO), Ok(WaitStatus::TimedOut));
            Ok::<_, String>((waiting, q2, q1, b))
        })(),
        _ => Err("A's VM or buffer".to_string()),
    };
    t.check(
        matches!(a_side, Ok((true, ..))),
        "6: A has a job waiting in the kernel",
        format_args!("{:?}", a_side.as_ref().map(|x| x.0)),
    );

    let r = write_driver("unbind", &topo.a.bdf);
    if !t.check(
        r.is_ok() && topo.a.node().is_err(),
        "6: unbind A while B has its buffer bound",
        format_args!("{r:?}, node {:?}", topo.a.node()),
    ) {
        return r.is_ok();
    }
    let outcome = match q.submit(&[Command::copy(bi.va(), bd.va(), LEN)]) {
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok("SUBMIT returned ENODEV".to_string()),
        Err(e) => Err(format!("SUBMIT failed, but not with ENODEV: {e}")),
        Ok(job) => match job.wait(T) {
            Err(Error::JobFailed { .. }) => Ok("the job failed (WAIT returned EIO)".into()),
            Err(e) => Ok(format!("WAIT returned an error: {e}")),
            Ok(WaitStatus::Completed) => Err("the job completed: it read revoked memory".into()),
            Ok(WaitStatus::TimedOut) => Err(format!("the job did not end in {T:?}")),
        },
    };
    t.check(
        outcome.is_ok(),
        "6: a COPY from the revoked import fails cleanly (SUBMIT ENODEV or a failed job)",
        format_args!("{outcome:?}"),
    );
    if let Ok(how) = &outcome {
        t.diag(format_args!("6: {how}"));
    }
    if let Ok((_other, _fd, vti, slot, before)) = &c_side {
        let after = vti.status(*slot);
        t.check(
            matches!(after, Ok(st) if st.invalidations > before.invalidations && st.mapped == 0),
            "6: unbind invalidated the C importer's mapping, which it dropped",
            format_args!("before {before:?}, after {after:?}"),
        );
        t.errno(
            vti.map(*slot),
            libc::ENODEV,
            "6: and refuses it a new mapping (ENODEV)",
        );
    }
    // B's own buffers, in the same VM: reset the destination, COPY B's buffer into it.
    let want = pattern(63, LEN);
    let local_copy = || {
        s(dst.map().and_then(|m| m.write(0, &pattern(66, LEN))))?;
        s(q.run(&[Command::copy(bo.va(), bd.va(), LEN)], T))?;
        same(&read_bo(&dst, LEN)?, &want)
    };
    // The revoked import stays bound, unmapped: the VM's other work goes on.
    let r = local_copy();
    t.check(
        r.is_ok(),
        "6: with the revoked import still bound, a local COPY on the same queue works",
        format_args!("{r:?}"),
    );
    let r = local_copy_works(&b, 65);
    t.check(
        r.is_ok(),
        "6: B's own buffers work in a new VM: a local COPY, data checked",
        format_args!("{r:?}"),
    );
    let r = s(bi.unbind());
    t.check(
        r.is_ok(),
        "6: B unbinds the revoked import",
        format_args!("{r:?}"),
    );
    let r = local_copy();
    t.check(
        r.is_ok(),
        "6: then the same queue runs a local COPY, data checked",
        format_args!("{r:?}"),
    );
    // Everything is closed here while A is away, in reverse order of creation: B's bindings,
    // queue, buffers, VM and import, then the dma-buf fd, then A's handle and file on the
    // unplugged device.
    true
}

/// Export of a fresh A buffer, import into B, COPY out, check.
fn fresh_share_works(topo: &P2pTopology, seed: u32) -> Result<(), String> {
    let a = topo.a.open()?;
    let b = topo.b.open()?;
    let pat = pattern(seed, LEN);
    let src = vram_with(&a, &pat, BufferFlags::NONE)?;
    let imp = s(b.import(s(src.export())?))?;
    let dst = vram_with(&b, &pattern(seed + 1, LEN), BufferFlags::NONE)?;
    let vm = s(Vm::create(&b))?;
    let q = s(Queue::create(&vm))?;
    let bi = s(vm.bind_auto(&imp, Access::READ))?;
    let bd = s(vm.bind_auto(&dst, Access::READ_WRITE))?;
    s(q.run(&[Command::copy(bi.va(), bd.va(), LEN)], T))?;
    same(&read_bo(&dst, LEN)?, &pat)
}

/// COPYs all of `imp` into a fresh buffer of its device in a fresh VM and compares.
fn import_holds(imp: &Buffer<'_>, want: &[u8]) -> Result<(), String> {
    let dev = imp.device();
    let vm = s(Vm::create(dev))?;
    let q = s(Queue::create(&vm))?;
    let dst = vram_with(dev, &pattern(79, LEN), BufferFlags::NONE)?;
    let bi = s(vm.bind_auto(imp, Access::READ))?;
    let bd = s(vm.bind_auto(&dst, Access::READ_WRITE))?;
    s(q.run(&[Command::copy(bi.va(), bd.va(), LEN)], T))?;
    same(&read_bo(&dst, LEN)?, want)
}

/// Case 7: closing things in orders a careful program would not.
fn case7_close_orders(t: &mut Tap, topo: &P2pTopology) {
    let Some(b) = open(t, &topo.b, "B") else {
        return;
    };

    // (a) The dma-buf fd goes first: the import keeps the buffer.
    let r = (|| {
        let a = topo.a.open()?;
        let pat = pattern(71, LEN);
        let src = vram_with(&a, &pat, BufferFlags::NONE)?;
        let fd = s(src.export())?;
        let imp = s(b.import(&fd))?;
        drop(fd);
        import_holds(&imp, &pat)
    })();
    t.check(
        r.is_ok(),
        "7a: dma-buf fd closed before the import: the import still holds A's data",
        format_args!("{r:?}"),
    );

    // (b) The exporter's handle and file go first: the import keeps A's VRAM alive.
    let r = (|| {
        let pat = pattern(72, LEN);
        let (imp, fd) = {
            let a = topo.a.open()?;
            let src = vram_with(&a, &pat, BufferFlags::NONE)?;
            let fd = s(src.export())?;
            (s(b.import(&fd))?, fd)
            // A's buffer handle and A's file are closed here.
        };
        drop(fd);
        // Whatever A allocates now must not get the imported buffer's memory.
        let a = topo.a.open()?;
        let _other = vram_with(&a, &pattern(73, LEN), BufferFlags::NONE)?;
        import_holds(&imp, &pat)
    })();
    t.check(
        r.is_ok(),
        "7b: exporter's file closed before the import: the import still holds A's data",
        format_args!("{r:?}"),
    );

    // (c) The importer's VM goes while the import is bound in it.
    let r = (|| {
        let a = topo.a.open()?;
        let pat = pattern(74, LEN);
        let src = vram_with(&a, &pat, BufferFlags::NONE)?;
        let imp = s(b.import(s(src.export())?))?;
        {
            let vm = s(Vm::create(&b))?;
            let bi = s(vm.bind_auto(&imp, Access::READ))?;
            // Leave the binding to VM_DESTROY: the kernel must drop its hold on the import.
            std::mem::forget(bi);
        }
        import_holds(&imp, &pat)
    })();
    t.check(
        r.is_ok(),
        "7c: VM destroyed with the import bound: the import still works in a new VM",
        format_args!("{r:?}"),
    );

    let r = fresh_share_works(topo, 75);
    t.check(
        r.is_ok(),
        "7: after all that, a fresh export of A imported by B has A's data",
        format_args!("{r:?}"),
    );
}

/// Case 8: C, which cannot reach A's VRAM, imports a buffer that is not VRAM_ONLY: the buffer
/// moves to system memory for it, with its data, while A keeps using it (a CPU mapping made
/// before the move, a bind made before it) and B, which had it mapped peer-to-peer, is told to
/// drop that mapping and maps the new place at its next job. When C lets go, A's next job
/// brings the buffer back into VRAM, data intact.
fn case8_migration(t: &mut Tap, topo: &P2pTopology) {
    let (Some(a), Some(b), Some(c)) = (
        open(t, &topo.a, "A"),
        open(t, &topo.b, "B"),
        open(t, &topo.c, "C"),
    ) else {
        return;
    };
    let pat1 = pattern(81, LEN);
    let pat2 = pattern(82, LEN);
    let pat3 = pattern(83, LEN);
    let src = get!(t, vram_with(&a, &pat1, BufferFlags::NONE), "8: A buffer");
    let amap = get!(t, s(src.map()), "8: A maps it before the move");
    let avm = get!(t, s(Vm::create(&a)), "8: A VM");
    let aq = get!(t, s(Queue::create(&avm)), "8: A queue");
    let abi = get!(
        t,
        s(avm.bind_auto(&src, Access::READ_WRITE)),
        "8: A binds it before the move"
    );
    let fd = get!(t, s(src.export()), "8: A exports it");

    // B maps it peer-to-peer first.
    let bimp = get!(t, s(b.import(&fd)), "8: B imports it");
    let bvm = get!(t, s(Vm::create(&b)), "8: B VM");
    let bq = get!(t, s(Queue::create(&bvm)), "8: B queue");
    let bbi = get!(
        t,
        s(bvm.bind_auto(&bimp, Access::READ_WRITE)),
        "8: B binds it (P2P)"
    );
    let bdst = get!(
        t,
        vram_with(&b, &pattern(84, LEN), BufferFlags::NONE),
        "8: B buffer"
    );
    let bbd = get!(t, s(bvm.bind_auto(&bdst, Access::READ_WRITE)), "8: bind");

    // C imports and maps it: the move.
    let cimp = step!(
        t,
        s(c.import(&fd)),
        "8: C (no P2P path) imports a buffer that is not VRAM_ONLY"
    );
    let cvm = get!(t, s(Vm::create(&c)), "8: C VM");
    let cq = get!(t, s(Queue::create(&cvm)), "8: C queue");
    let cbi = step!(
        t,
        s(cvm.bind_auto(&cimp, Access::READ_WRITE)),
        "8: C binds it (the buffer moves to system memory)"
    );
    t.eq(
        src.info().map(|i| i.placement).ok(),
        Some(Placement::System),
        "8: A's BO_INFO says SYSTEM after the move",
    );
    let cdst = get!(
        t,
        vram_with(&c, &pattern(85, LEN), BufferFlags::NONE),
        "8: C buffer"
    );
    let cbd = get!(t, s(cvm.bind_auto(&cdst, Access::READ_WRITE)), "8: bind");
    copy_ok(
        t,
        &cq,
        cbi.va(),
        cbd.va(),
        "8: C COPYs out of the moved buffer",
    );
    check_data(
        t,
        read_bo(&cdst, LEN),
        &pat1,
        "8: C's copy holds A's data (moved intact)",
    );
    check_data(
        t,
        s(amap.read_vec(0, LEN as usize)),
        &pat1,
        "8: A's mapping from before the move reads the moved data",
    );

    // A's device writes it through its old bind (the PTEs follow the move); C sees it.
    let asrc2 = get!(t, vram_with(&a, &pat2, BufferFlags::NONE), "8: A buffer 2");
    let abs2 = get!(t, s(avm.bind_auto(&asrc2, Access::READ_WRITE)), "8: bind 2");
    copy_ok(
        t,
        &aq,
        abs2.va(),
        abi.va(),
        "8: A COPYs into it through the bind made before the move",
    );
    copy_ok(t, &cq, cbi.va(), cbd.va(), "8: C COPYs it out again");
    check_data(
        t,
        read_bo(&cdst, LEN),
        &pat2,
        "8: C sees what A's device wrote",
    );
    check_data(
        t,
        s(amap.read_vec(0, LEN as usize)),
        &pat2,
        "8: A's CPU mapping sees what A's device wrote",
    );

    // B was told to drop its P2P mapping; its next job maps the new place.
    copy_ok(
        t,
        &bq,
        bbi.va(),
        bbd.va(),
        "8: B COPYs from it after the move (remapped)",
    );
    check_data(
        t,
        read_bo(&bdst, LEN),
        &pat2,
        "8: B's copy holds the current data",
    );

    // The CPU writes through A's old mapping; C's device reads it.
    let r = s(amap.write(0, &pat3));
    t.check(
        r.is_ok(),
        "8: A's CPU writes through its mapping",
        format_args!("{r:?}"),
    );
    copy_ok(t, &cq, cbi.va(), cbd.va(), "8: C COPYs it out a third time");
    check_data(
        t,
        read_bo(&cdst, LEN),
        &pat3,
        "8: C sees what A's CPU wrote",
    );

    // C and B let go: A's next job brings the buffer back into VRAM.
    drop(cbi);
    drop(cbd);
    drop(cq);
    drop(cvm);
    drop(cimp);
    drop(cdst);
    drop(bbi);
    drop(bbd);
    drop(bq);
    drop(bvm);
    drop(bimp);
    drop(bdst);
    copy_ok(
        t,
        &aq,
        abi.va(),
        abs2.va(),
        "8: A runs a job with it after the importers let go",
    );
    t.eq(
        src.info().map(|i| i.placement).ok(),
        Some(Placement::Vram),
        "8: the job brought it back: BO_INFO says VRAM",
    );
    check_data(
        t,
        s(amap.read_vec(0, LEN as usize)),
        &pat3,
        "8: A's mapping reads the same data back in VRAM",
    );
    drop(fd);
}

/// Case 9: eviction while an importer holds a mapping. B maps A's buffer peer-to-peer; then
/// A's VRAM fills up, so BO_CREATE on A evicts the buffer (the oldest idle one) to system
/// memory: B's mapping is invalidated, B's next job maps the new place, and the data is
/// intact on both sides.
fn case9_eviction(t: &mut Tap, topo: &P2pTopology) {
    let (Some(a), Some(b)) = (open(t, &topo.a, "A"), open(t, &topo.b, "B")) else {
        return;
    };
    let pat = pattern(91, LEN);
    let src = get!(t, vram_with(&a, &pat, BufferFlags::NONE), "9: A buffer");
    let fd = get!(t, s(src.export()), "9: A exports it");
    let imp = get!(t, s(b.import(&fd)), "9: B imports it");
    let vm = get!(t, s(Vm::create(&b)), "9: B VM");
    let q = get!(t, s(Queue::create(&vm)), "9: B queue");
    let bi = get!(
        t,
        s(vm.bind_auto(&imp, Access::READ)),
        "9: B binds it (P2P)"
    );
    let dst = get!(
        t,
        vram_with(&b, &pattern(92, LEN), BufferFlags::NONE),
        "9: B buffer"
    );
    let bd = get!(t, s(vm.bind_auto(&dst, Access::READ_WRITE)), "9: bind");
    copy_ok(
        t,
        &q,
        bi.va(),
        bd.va(),
        "9: B copies from it before the eviction",
    );

    // Fill A's VRAM: 16 MiB buffers until A's buffer has been evicted.
    let mut filler = Vec::new();
    let mut evicted = false;
    for _ in 0..(a.vram_size() / (16 << 20) + 4) {
        match s(Buffer::create(&a, 16 << 20, BufferFlags::VRAM)) {
            Ok(f) => filler.push(f),
            Err(e) => {
                t.diag(format_args!("9: filling A's VRAM stopped: {e}"));
                break;
            }
        }
        if src.info().map(|i| i.placement).ok() == Some(Placement::System) {
            evicted = true;
            break;
        }
    }
    t.check(
        evicted,
        "9: filling A's VRAM evicts the exported buffer to system memory",
        format_args!("{} filler buffers", filler.len()),
    );
    let _ = s(dst.map()).and_then(|m| s(m.write(0, &pattern(93, LEN))));
    copy_ok(
        t,
        &q,
        bi.va(),
        bd.va(),
        "9: B copies from it after the eviction (its mapping was invalidated and remapped)",
    );
    check_data(
        t,
        read_bo(&dst, LEN),
        &pat,
        "9: B's copy holds A's data after the eviction",
    );
    check_data(
        t,
        read_bo(&src, LEN),
        &pat,
        "9: A's mapping reads the same data in system memory",
    );
    drop(filler);
}

fn main() {
    let mut t = Tap::new();
    let topo = match p2p_topology() {
        Ok(topo) => topo,
        Err(e) => {
            t.check(
                false,
                "find A and B below one switch, C on its own root port",
                e,
            );
            t.finish();
        }
    };
    t.check(
        true,
        "find A and B below one switch, C on its own root port",
        "",
    );
    // The pid ties kmemleak's reports ("comm ..., pid N") to this run.
    t.diag(format_args!(
        "pid {}: A {} ({:?}), B {} ({:?}), C {} ({:?})",
        std::process::id(),
        topo.a.bdf,
        topo.a.node().ok(),
        topo.b.bdf,
        topo.b.node().ok(),
        topo.c.bdf,
        topo.c.node().ok()
    ));
    let cases: [fn(&mut Tap, &P2pTopology); 9] = [
        case1_self_import,
        case2_p2p,
        case3_no_path,
        case4_udmabuf,
        case5_dma_heap,
        case6_revocation,
        case7_close_orders,
        case8_migration,
        case9_eviction,
    ];
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for (i, case) in cases.iter().enumerate() {
        let n = (i + 1).to_string();
        if wanted.is_empty() || wanted.contains(&n) {
            case(&mut t, &topo);
        } else {
            t.skip(&format!("case {n}"), "not selected on the command line");
        }
    }
    t.finish();
}
