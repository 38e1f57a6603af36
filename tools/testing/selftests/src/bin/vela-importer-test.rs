// SPDX-License-Identifier: GPL-2.0

//! Vela's exports as kernel importers other than Vela see them, through the test importer
//! module (`tools/testing/importer/`), checked by data:
//!
//! 1. A static importer (one that cannot follow moves) pins the buffer: it moves to system
//!    memory for the importer's device, which has no peer-to-peer path, and stays there,
//!    even across jobs that would bring an unpinned buffer back to VRAM. After the unpin the
//!    next job brings it back, data intact. A `VRAM_ONLY` buffer refuses the static importer.
//! 2. `dma_buf_vmap()`: the kernel's mapping reads the buffer's data, the device sees what
//!    the kernel writes through it and the kernel sees what the device writes. The buffer is
//!    pinned while mapped and returns to VRAM after the vunmap.
//! 3. Reset revokes: a dynamic importer's mapping is invalidated when A resets after a hung
//!    job, and maps again afterwards; B's peer-to-peer import of another of A's buffers
//!    works after A's reset.
//! 4. Every bind follows a move: a buffer bound twice in one VM (two `drm_gpuva`s of one
//!    `drm_gpuvm_bo`) and once in another VM moves to system memory for a static importer
//!    and back to VRAM after it; after each move the CPU writes new data at the new place,
//!    and jobs in both VMs read it, and write, through every bind. A bind whose PTEs were
//!    not rewritten would reach the old place. Destroying one VM leaves the other's bind of
//!    the buffer working.
//! 5. System memory that a move left behind is used again only if nobody else holds its
//!    pages. X moves to system memory for a static importer and, unpinned, the CPU maps
//!    it and `vmsplice()` hands the first pages of that mapping to a pipe, which holds
//!    references to them. X's next job brings it back to VRAM. Y, of X's size, then moves
//!    to system memory for the importer: its data must read back whole, and the pipe must
//!    still give X's bytes. Had the driver kept X's old pages for Y's move (it keeps a
//!    move's memory for the next move out of the same size when no one else holds a page
//!    of it, `Documentation/driver.rst`), the pipe would give Y's data: another process's
//!    buffer read through a reference taken on one's own.
//!
//! Usage: vela-importer-test [CASE...] runs only the cases named (1 to 5).

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use vela_runtime::{
    Access, Buffer, BufferFlags, Command, Placement, Queue, Vm, WaitStatus, VA_END,
};
use vela_selftests::{
    get,
    importer::{Attach, Importer},
    inject, model_index, p2p_peers, pattern,
    sharing::{check_data, open, read_bo, s, vram_with},
    PciDev, Tap,
};

const T: Duration = Duration::from_secs(20);
const LEN: u64 = 256 << 10;

fn e<T>(r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// The bytes of a FILL with `v`.
fn filled(v: u32) -> Vec<u8> {
    v.to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(LEN as usize)
        .collect()
}

fn placement(bo: &Buffer<'_>) -> Option<Placement> {
    bo.info().ok().map(|i| i.placement)
}

/// Case 1: a static importer pins the buffer in system memory.
fn case1_static(t: &mut Tap, a: &PciDev) {
    let Some(dev) = open(t, a, "A") else { return };
    let pat = pattern(11, LEN);
    let x = get!(t, vram_with(&dev, &pat, BufferFlags::NONE), "1: A buffer");
    let vm = get!(t, s(Vm::create(&dev)), "1: VM");
    let q = get!(t, s(Queue::create(&vm)), "1: queue");
    let bx = get!(t, s(vm.bind_auto(&x, Access::READ_WRITE)), "1: bind");
    let fd = get!(t, s(x.export()), "1: export");
    let imp = get!(t, e(Importer::open()), "1: open the test importer");
    let slot = get!(t, e(imp.import(&fd, Attach::Static)), "1: static attach");
    t.eq(
        placement(&x),
        Some(Placement::Vram),
        "1: attaching moves nothing",
    );
    let bytes = imp.map(slot);
    t.check(
        matches!(bytes, Ok(LEN)),
        "1: the static importer maps the whole buffer",
        format_args!("{bytes:?}"),
    );
    t.eq(
        placement(&x),
        Some(Placement::System),
        "1: pinned in system memory, which the importer's device reaches",
    );
    check_data(
        t,
        read_bo(&x, LEN),
        &pat,
        "1: A's mapping reads the data after the move",
    );
    let r = s(q.run(&[Command::fill(bx.va(), 0x5a5a_1111, LEN)], T));
    t.check(r.is_ok(), "1: A's job writes it", format_args!("{r:?}"));
    t.eq(
        placement(&x),
        Some(Placement::System),
        "1: a job does not bring a pinned buffer back to VRAM",
    );
    check_data(
        t,
        read_bo(&x, LEN),
        &filled(0x5a5a_1111),
        "1: the job's data is in the pinned pages",
    );
    t.ok(imp.close(slot), "1: unmap and detach (unpin)");
    let r = s(q.run(&[Command::fill(bx.va(), 0x5a5a_2222, LEN)], T));
    t.check(r.is_ok(), "1: A's next job", format_args!("{r:?}"));
    t.eq(
        placement(&x),
        Some(Placement::Vram),
        "1: unpinned, the next job brings the buffer back to VRAM",
    );
    check_data(
        t,
        read_bo(&x, LEN),
        &filled(0x5a5a_2222),
        "1: its data, in VRAM",
    );

    let only = get!(
        t,
        vram_with(&dev, &pat, BufferFlags::VRAM_ONLY),
        "1: A VRAM_ONLY buffer"
    );
    let fd_only = get!(t, s(only.export()), "1: export it");
    t.errno(
        imp.import(&fd_only, Attach::Static),
        libc::EOPNOTSUPP,
        "1: a static importer without a P2P path cannot attach a VRAM_ONLY buffer",
    );
    t.eq(
        placement(&only),
        Some(Placement::Vram),
        "1: which stays in VRAM",
    );
}

/// Case 2: dma_buf_vmap().
fn case2_vmap(t: &mut Tap, a: &PciDev) {
    let Some(dev) = open(t, a, "A") else { return };
    let (pat1, pat2) = (pattern(21, LEN), pattern(22, LEN));
    let x = get!(t, vram_with(&dev, &pat1, BufferFlags::NONE), "2: A buffer");
    let y = get!(
        t,
        vram_with(&dev, &pattern(23, LEN), BufferFlags::NONE),
        "2: another"
    );
    let vm = get!(t, s(Vm::create(&dev)), "2: VM");
    let q = get!(t, s(Queue::create(&vm)), "2: queue");
    let bx = get!(t, s(vm.bind_auto(&x, Access::READ_WRITE)), "2: bind");
    let by = get!(t, s(vm.bind_auto(&y, Access::READ_WRITE)), "2: bind");
    let fd = get!(t, s(x.export()), "2: export");
    let imp = get!(t, e(Importer::open()), "2: open the test importer");
    let slot = get!(t, e(imp.import(&fd, Attach::None)), "2: take the dma-buf");
    if t.ok(imp.vmap(slot), "2: dma_buf_vmap() of a VRAM buffer")
        .is_none()
    {
        return;
    }
    t.eq(
        placement(&x),
        Some(Placement::System),
        "2: it moved to system memory",
    );
    check_data(
        t,
        e(imp.read(slot, 0, LEN as usize)),
        &pat1,
        "2: the kernel mapping reads its data",
    );
    t.ok(
        imp.write(slot, 0, &pat2),
        "2: the kernel writes through the mapping",
    );
    let r = s(q.run(&[Command::copy(bx.va(), by.va(), LEN)], T));
    t.check(r.is_ok(), "2: A copies it", format_args!("{r:?}"));
    check_data(
        t,
        read_bo(&y, LEN),
        &pat2,
        "2: the device read what the kernel wrote",
    );
    let r = s(q.run(&[Command::fill(bx.va(), 0x7e7e_3333, LEN)], T));
    t.check(r.is_ok(), "2: A fills it", format_args!("{r:?}"));
    check_data(
        t,
        e(imp.read(slot, 0, LEN as usize)),
        &filled(0x7e7e_3333),
        "2: the kernel mapping sees what the device wrote",
    );
    t.eq(
        placement(&x),
        Some(Placement::System),
        "2: pinned while vmapped: jobs do not move it",
    );
    let st = imp.status(slot);
    t.check(
        matches!(st, Ok(s) if s.vmapped == 1),
        "2: the importer holds the mapping",
        format_args!("{st:?}"),
    );
    t.ok(imp.vunmap(slot), "2: dma_buf_vunmap()");
    // A VRAM_ONLY buffer has no kernel mapping: its export has no vmap, so the dma-buf core
    // refuses it itself (EINVAL) instead of WARNing on an exporter's error.
    let only = get!(
        t,
        vram_with(&dev, &pat1, BufferFlags::VRAM_ONLY),
        "2: a VRAM_ONLY buffer"
    );
    let only_fd = get!(t, s(only.export()), "2: export it");
    let only_slot = get!(t, e(imp.import(&only_fd, Attach::None)), "2: take it");
    t.errno(
        imp.vmap(only_slot),
        libc::EINVAL,
        "2: dma_buf_vmap() of a VRAM_ONLY buffer fails with EINVAL",
    );
    t.eq(
        placement(&only),
        Some(Placement::Vram),
        "2: …and it stays in VRAM",
    );
    let r = s(q.run(&[Command::copy(bx.va(), by.va(), LEN)], T));
    t.check(r.is_ok(), "2: A's next job", format_args!("{r:?}"));
    t.eq(
        placement(&x),
        Some(Placement::Vram),
        "2: after the vunmap it is back in VRAM",
    );
    check_data(
        t,
        read_bo(&y, LEN),
        &filled(0x7e7e_3333),
        "2: the job read the data",
    );
    check_data(
        t,
        read_bo(&x, LEN),
        &filled(0x7e7e_3333),
        "2: which A's mapping reads in VRAM",
    );
    t.errno(
        imp.read(slot, 0, 4096),
        libc::ENOTCONN,
        "2: no kernel mapping after the vunmap",
    );
    t.ok(imp.close(slot), "2: release the dma-buf");
}

/// Case 3: A's reset revokes its importers' mappings; they map again afterwards.
fn case3_reset(t: &mut Tap, a: &PciDev, b: &PciDev) {
    let (Some(adev), Some(bdev)) = (open(t, a, "A"), open(t, b, "B")) else {
        return;
    };
    let Some(n) = model_index(&adev) else {
        t.check(false, "3: find A in the device model", "no serial matched");
        return;
    };
    let pat = pattern(31, LEN);
    let x = get!(
        t,
        vram_with(&adev, &pat, BufferFlags::NONE),
        "3: A buffer X"
    );
    let fdx = get!(t, s(x.export()), "3: export X");
    let imp = get!(t, e(Importer::open()), "3: open the test importer");
    let slot = get!(
        t,
        e(imp.import(&fdx, Attach::Dynamic)),
        "3: dynamic attach to X"
    );
    t.check(
        matches!(imp.map(slot), Ok(LEN)),
        "3: the dynamic importer maps X",
        "",
    );

    // B reaches another of A's buffers peer-to-peer.
    let z = get!(
        t,
        vram_with(&adev, &pattern(32, LEN), BufferFlags::NONE),
        "3: A buffer Z"
    );
    let fdz = get!(t, s(z.export()), "3: export Z");
    let bz = get!(t, s(bdev.import(&fdz)), "3: B imports Z");
    let bdst = get!(
        t,
        vram_with(&bdev, &pattern(33, LEN), BufferFlags::NONE),
        "3: B buffer"
    );
    let bvm = get!(t, s(Vm::create(&bdev)), "3: B VM");
    let bq = get!(t, s(Queue::create(&bvm)), "3: B queue");
    let bbz = get!(t, s(bvm.bind_auto(&bz, Access::READ)), "3: B binds Z");
    let bbd = get!(
        t,
        s(bvm.bind_auto(&bdst, Access::READ_WRITE)),
        "3: B binds its buffer"
    );
    let r = s(bq.run(&[Command::copy(bbz.va(), bbd.va(), LEN)], T));
    t.check(
        r.is_ok(),
        "3: B copies Z before the reset",
        format_args!("{r:?}"),
    );
    check_data(t, read_bo(&bdst, LEN), &pattern(32, LEN), "3: B read Z");

    let before = get!(t, e(imp.status(slot)), "3: importer status");
    // A hung job: its waiter times out and the device resets.
    let w = get!(
        t,
        vram_with(&adev, &pattern(34, LEN), BufferFlags::NONE),
        "3: A buffer W"
    );
    let avm = get!(t, s(Vm::create(&adev)), "3: A VM");
    let aq = get!(t, s(Queue::create(&avm)), "3: A queue");
    let bw = get!(t, s(avm.bind_auto(&w, Access::READ_WRITE)), "3: A binds W");
    get!(
        t,
        e(inject(&format!("dev={n} hang-engine=copy"))),
        "3: hang A's copy engine"
    );
    let r = s(aq.submit(&[Command::fill(bw.va(), 0x3333_0000, LEN)])).and_then(|j| s(j.wait(T)));
    t.check(
        !matches!(r, Ok(WaitStatus::Completed)),
        "3: A's hung job fails after the timeout and reset",
        format_args!("{r:?}"),
    );
    let _ = inject(&format!("dev={n} clear"));
    let after = imp.status(slot);
    t.check(
        matches!(after, Ok(st) if st.invalidations > before.invalidations && st.mapped == 0),
        "3: the reset invalidated the importer's mapping, which it dropped",
        format_args!("before {before:?}, after {after:?}"),
    );
    t.check(
        matches!(imp.map(slot), Ok(LEN)),
        "3: the importer maps X again after the reset",
        "",
    );
    t.ok(imp.close(slot), "3: detach");
    check_data(t, read_bo(&x, LEN), &pat, "3: X's data survived the reset");

    let pat2 = pattern(35, LEN);
    let r = s(z.map()).and_then(|m| s(m.write(0, &pat2)));
    t.check(r.is_ok(), "3: A writes Z anew", format_args!("{r:?}"));
    let r = s(bq.run(&[Command::copy(bbz.va(), bbd.va(), LEN)], T));
    t.check(
        r.is_ok(),
        "3: B copies Z after A's reset",
        format_args!("{r:?}"),
    );
    check_data(
        t,
        read_bo(&bdst, LEN),
        &pat2,
        "3: B reads Z's new data (mapped again)",
    );
    let r = s(aq.run(&[Command::fill(bw.va(), 0x3333_1111, LEN)], T));
    t.check(r.is_ok(), "3: A runs jobs again", format_args!("{r:?}"));
    check_data(
        t,
        read_bo(&w, LEN),
        &filled(0x3333_1111),
        "3: and its data is there",
    );
}

/// The CPU writes `data` at the start of `bo`, wherever it is.
fn write_bo(t: &mut Tap, bo: &Buffer<'_>, data: &[u8]) {
    let r = s(bo.map()).and_then(|m| s(m.write(0, data)));
    t.check(
        r.is_ok(),
        "4: the CPU writes new data",
        format_args!("{r:?}"),
    );
}

/// Case 4: a move rewrites every bind of the buffer, in every VM.
fn case4_every_bind(t: &mut Tap, a: &PciDev) {
    let Some(dev) = open(t, a, "A") else { return };
    let half = LEN / 2;
    let x = get!(
        t,
        vram_with(&dev, &pattern(41, LEN), BufferFlags::NONE),
        "4: A buffer"
    );
    let sys = BufferFlags::CPU_VISIBLE;
    let d1 = get!(
        t,
        s(Buffer::create(&dev, LEN, sys)),
        "4: VM 1's destination"
    );
    let d2 = get!(
        t,
        s(Buffer::create(&dev, LEN, sys)),
        "4: VM 2's destination"
    );
    let vm1 = get!(t, s(Vm::create(&dev)), "4: VM 1");
    let vm2 = get!(t, s(Vm::create(&dev)), "4: VM 2");
    let q1 = get!(t, s(Queue::create(&vm1)), "4: queue in VM 1");
    let q2 = get!(t, s(Queue::create(&vm2)), "4: queue in VM 2");
    let whole = get!(
        t,
        s(vm1.bind_auto(&x, Access::READ_WRITE)),
        "4: bind it in VM 1"
    );
    // Its second half again, far from the allocator's VAs.
    let hi_va = VA_END - (64 << 20);
    let upper = get!(
        t,
        s(vm1.bind(&x, hi_va, half, half, Access::READ_WRITE)),
        "4: bind its second half again in VM 1"
    );
    let other = get!(t, s(vm2.bind_auto(&x, Access::READ)), "4: bind it in VM 2");
    let bd1 = get!(
        t,
        s(vm1.bind_auto(&d1, Access::READ_WRITE)),
        "4: bind VM 1's destination"
    );
    let bd2 = get!(
        t,
        s(vm2.bind_auto(&d2, Access::READ_WRITE)),
        "4: bind VM 2's destination"
    );

    // Every bind reads `want` (the whole buffer), and VM 1's second bind writes.
    let check_all = |t: &mut Tap, want: &[u8], when: &str| {
        let h = half as usize;
        let reads = [
            (&q1, whole.va(), &bd1, &d1, LEN, want, "VM 1's first bind"),
            (&q2, other.va(), &bd2, &d2, LEN, want, "VM 2's bind"),
            (
                &q1,
                upper.va(),
                &bd1,
                &d1,
                half,
                &want[h..],
                "VM 1's second bind",
            ),
        ];
        for (q, src, dst, dst_bo, len, want, bind) in reads {
            let r = s(q.run(&[Command::copy(src, dst.va(), len)], T));
            t.check(
                r.is_ok(),
                &format!("4: {when}: a copy through {bind}"),
                format_args!("{r:?}"),
            );
            check_data(
                t,
                read_bo(dst_bo, len),
                want,
                &format!("4: {when}: {bind} reads the buffer's data"),
            );
        }
    };
    let write_all = |t: &mut Tap, v: u32, when: &str| {
        let r = s(q1.run(&[Command::fill(upper.va(), v, half)], T));
        t.check(
            r.is_ok(),
            &format!("4: {when}: VM 1 writes through its second bind"),
            format_args!("{r:?}"),
        );
        let got = read_bo(&x, LEN).map(|b| b[half as usize..].to_vec());
        check_data(
            t,
            got,
            &filled(v)[..half as usize],
            &format!("4: {when}: the CPU reads what it wrote"),
        );
    };

    let fd = get!(t, s(x.export()), "4: export");
    let imp = get!(t, e(Importer::open()), "4: open the test importer");
    let slot = get!(t, e(imp.import(&fd, Attach::Static)), "4: static attach");
    let bytes = imp.map(slot);
    t.check(
        matches!(bytes, Ok(LEN)),
        "4: the importer maps it",
        format_args!("{bytes:?}"),
    );
    t.eq(
        placement(&x),
        Some(Placement::System),
        "4: it moved to system memory",
    );
    // New data at the new place: a bind still pointing at the old place reads the old data.
    let p1 = pattern(42, LEN);
    write_bo(t, &x, &p1);
    check_all(t, &p1, "in system memory");
    write_all(t, 0x4444_0001, "in system memory");

    t.ok(imp.close(slot), "4: the importer lets go");
    // VM 1's next job brings it back to VRAM; VM 2's bind follows without a job of its own.
    let r = s(q1.run(&[Command::copy(bd1.va(), bd1.va(), 4096)], T));
    t.check(r.is_ok(), "4: a job in VM 1", format_args!("{r:?}"));
    t.eq(
        placement(&x),
        Some(Placement::Vram),
        "4: which brought it back to VRAM",
    );
    let p2 = pattern(43, LEN);
    write_bo(t, &x, &p2);
    check_all(t, &p2, "back in VRAM");
    write_all(t, 0x4444_0002, "back in VRAM");

    // VM 1 goes, with two binds of the buffer; VM 2's stays.
    drop((whole, upper, bd1, q1));
    drop(vm1);
    let p3 = pattern(44, LEN);
    write_bo(t, &x, &p3);
    let r = s(q2.run(&[Command::copy(other.va(), bd2.va(), LEN)], T));
    t.check(
        r.is_ok(),
        "4: after VM 1 is gone, VM 2 copies through its bind",
        format_args!("{r:?}"),
    );
    check_data(t, read_bo(&d2, LEN), &p3, "4: and reads the buffer's data");
}

/// Bytes `vmsplice()` hands to the pipe in case 5 (within a pipe's default 64 KiB).
const SPLICED: usize = 16 << 10;

/// Case 5: a move's memory left behind is not reused while a pipe holds its pages.
fn case5_reuse(t: &mut Tap, a: &PciDev) {
    let Some(dev) = open(t, a, "A") else { return };
    let (px, py) = (pattern(51, LEN), pattern(52, LEN));
    let x = get!(t, vram_with(&dev, &px, BufferFlags::NONE), "5: buffer X");
    let y = get!(
        t,
        vram_with(&dev, &py, BufferFlags::NONE),
        "5: buffer Y, X's size"
    );
    let vm = get!(t, s(Vm::create(&dev)), "5: VM");
    let q = get!(t, s(Queue::create(&vm)), "5: queue");
    let _bx = get!(t, s(vm.bind_auto(&x, Access::READ_WRITE)), "5: bind X");
    let imp = get!(t, e(Importer::open()), "5: open the test importer");
    let fx = get!(t, s(x.export()), "5: export X");
    let slot = get!(t, e(imp.import(&fx, Attach::Static)), "5: attach X");
    t.ok(imp.map(slot), "5: the importer maps X");
    t.eq(
        placement(&x),
        Some(Placement::System),
        "5: X is in system memory",
    );
    t.ok(imp.close(slot), "5: the importer lets X go");
    let map = get!(t, s(x.map()), "5: map X");
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2() writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if !t.check(r == 0, "5: a pipe", std::io::Error::last_os_error()) {
        return;
    }
    // SAFETY: pipe2() returned these descriptors, owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let iov = libc::iovec {
        iov_base: map.as_ptr().cast(),
        iov_len: SPLICED,
    };
    // SAFETY: `iov` describes the first SPLICED bytes of X's mapping, which `map` keeps
    // mapped for the call; vmsplice() takes references to those pages for the pipe.
    let n = unsafe { libc::vmsplice(wr.as_raw_fd(), &iov, 1, 0) };
    t.eq(
        n,
        SPLICED as isize,
        "5: vmsplice() hands the first pages of X's mapping to a pipe",
    );
    let r = s(q.run(&[Command::nop()], T));
    t.check(r.is_ok(), "5: X's next job", format_args!("{r:?}"));
    t.eq(placement(&x), Some(Placement::Vram), "5: X is back in VRAM");
    // The memory X left is freed or kept by a work item after the move: let it run.
    std::thread::sleep(Duration::from_millis(500));
    let fy = get!(t, s(y.export()), "5: export Y");
    let slot = get!(t, e(imp.import(&fy, Attach::Static)), "5: attach Y");
    t.ok(imp.map(slot), "5: the importer maps Y");
    t.eq(
        placement(&y),
        Some(Placement::System),
        "5: Y moved to system memory",
    );
    check_data(t, read_bo(&y, LEN), &py, "5: Y's data after its move");
    let mut got = vec![0u8; SPLICED];
    let mut read = 0;
    while read < SPLICED {
        // SAFETY: the destination is the unfilled rest of `got`.
        let n = unsafe {
            libc::read(
                rd.as_raw_fd(),
                got[read..].as_mut_ptr().cast(),
                SPLICED - read,
            )
        };
        if n <= 0 {
            break;
        }
        read += n as usize;
    }
    check_data(
        t,
        Ok(got),
        &px[..SPLICED],
        "5: the pipe still gives X's bytes, not Y's (pages someone holds are not reused)",
    );
    t.ok(imp.close(slot), "5: the importer lets Y go");
    drop(map);
}

fn main() {
    let mut t = Tap::new();
    let (a, b) = match p2p_peers() {
        Ok(p) => p,
        Err(e) => {
            t.check(false, "find two Vela devices below one switch", e);
            t.finish();
        }
    };
    t.diag(format_args!(
        "pid {}: A {}, B {}",
        std::process::id(),
        a.bdf,
        b.bdf
    ));
    if t.ok(
        Importer::open().map(drop),
        "the test importer module is loaded",
    )
    .is_none()
    {
        t.finish();
    }
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let want = |n: &str| wanted.is_empty() || wanted.iter().any(|w| w == n);
    if want("1") {
        case1_static(&mut t, &a);
    }
    if want("2") {
        case2_vmap(&mut t, &a);
    }
    if want("3") {
        case3_reset(&mut t, &a, &b);
    }
    if want("4") {
        case4_every_bind(&mut t, &a);
    }
    if want("5") {
        case5_reuse(&mut t, &a);
    }
    t.finish();
}
