// SPDX-License-Identifier: GPL-2.0

//! vGPU instances (`Documentation/vgpu.rst`), driven through the VFIO uAPI as a VMM would, on
//! the third Vela device (vela2, 8 queues):
//!
//! 1. sysfs: the types, their files, and `available_instances` dropping as instances are made;
//!    one more instance than fits fails with `ENOSPC`;
//! 2. a 1/2 instance through the legacy path (group, type 1 v2 container, device fd): device,
//!    region and IRQ info, config space, BAR0 identity, BAR2 through pread/pwrite and mmap,
//!    eventfd triggers, reset, and bad indexes, offsets, sizes and flags (`EINVAL`);
//! 3. a 1/4 instance through the vfio cdev and iommufd at the same time: its BAR2 is its own
//!    (the two instances' data stay apart);
//! 4. jobs on the hardware partitions behind both instances, driven through their BAR0
//!    windows as a guest driver would: a COPY inside each slice completes with the right data
//!    and its completion reaches the MSI-X eventfd of the queue's vector; a COPY aimed one byte
//!    past the slice stops that instance's queue with DMA_ERROR while the other instance's data
//!    and jobs are untouched;
//! 5. jobs on guest memory, as a VMM maps it (container for one instance, IOAS for the
//!    other): COPYs from and to read-write guest memory carry data both ways, read-only memory
//!    is read but a write to it fails, an IOVA nobody mapped or past the IOVA space fails with
//!    DMA_ERROR at that IOVA, and once the VMM unmaps memory the device no longer reaches it;
//!    then time slices: with the 1/2 instance flooding both its queues, the 1/4 instance's
//!    job and a host accel job each wait for only a few of its commands, and the flood
//!    completes; then a reset of the whole device (a hung host job): the instance keeps its
//!    VRAM and runs jobs again once its queue is set up;
//! 6. the 1/2 instance removed and made again: the new instance of the slice reads zeroes;
//! 7. removal of an open instance (from a thread): the request eventfd fires, accesses and
//!    ioctls fail with `ENODEV`, the BAR2 mapping raises SIGBUS, and the removal completes
//!    once the files are closed;
//! 8. the same for an unbind of vela.ko from vela2 with an instance open; vela2 is bound
//!    again after.

use std::{
    path::Path,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use vela_hw::{
    cmd::{Command, CopyCmd, Header},
    regs::{self as hw, ctx, queue},
};
use vela_selftests::{
    p2p_topology, pattern, same,
    vfio::{self, CdevDevice, EventFd, GroupDevice, Mdev, MdevType, Memory, Region, VfioDevice},
    Tap,
};

const EINVAL: i32 = libc::EINVAL;
const ENODEV: i32 = libc::ENODEV;
const MIB: u64 = 1 << 20;
/// How much of a slice the data checks touch.
const SPAN: usize = 256 << 10;

/// The device's VRAM, in bytes (the harness starts every device with the same size).
fn vram_size() -> u64 {
    vela_selftests::expect("VRAM_MIB").unwrap_or(256) * MIB
}

/// Sysfs: the three types with their files.
fn types(t: &mut Tap, parent: &Path) {
    for (name, pretty) in [
        ("vela-half", "Vela vGPU, 1/2 VRAM"),
        ("vela-quarter", "Vela vGPU, 1/4 VRAM"),
        ("vela-eighth", "Vela vGPU, 1/8 VRAM"),
    ] {
        let ty = MdevType::of(parent, name);
        let got = ty.attr("name");
        t.check(
            got.as_deref().ok() == Some(pretty),
            &format!("{name}: name"),
            format_args!("{got:?}"),
        );
        let api = ty.attr("device_api");
        t.check(
            api.as_deref().ok() == Some("vfio-pci"),
            &format!("{name}: device_api"),
            format_args!("{api:?}"),
        );
        let d = ty.attr("description");
        t.check(
            d.as_ref().is_ok_and(|d| d.contains("MiB VRAM")),
            &format!("{name}: description"),
            format_args!("{d:?}"),
        );
    }
}

/// Everything a VMM sees of an open 1/2 instance.
fn inspect(
    t: &mut Tap,
    d: &VfioDevice,
    slice: u64,
    queues: u32,
    contexts: u32,
    what: &str,
) -> Option<(Region, Region)> {
    let info = d.info();
    t.check(
        info.as_ref().is_ok_and(|&(f, r, i)| {
            f & vfio::DEVICE_FLAGS_PCI != 0 && f & vfio::DEVICE_FLAGS_RESET != 0 && r == 9 && i == 5
        }),
        &format!("{what}: DEVICE_GET_INFO"),
        format_args!("{info:?}"),
    );
    let bar0 = t.ok(d.region(vfio::BAR0), &format!("{what}: BAR0 info"))?;
    t.eq(
        (bar0.size, bar0.flags),
        (64 << 10, vfio::REGION_READ | vfio::REGION_WRITE),
        &format!("{what}: BAR0 is 64 KiB, read/write"),
    );
    let bar2 = t.ok(d.region(vfio::BAR2), &format!("{what}: BAR2 info"))?;
    t.eq(
        (bar2.size, bar2.flags),
        (
            slice,
            vfio::REGION_READ | vfio::REGION_WRITE | vfio::REGION_MMAP,
        ),
        &format!("{what}: BAR2 is the slice, mappable"),
    );
    let cfg = t.ok(d.region(vfio::CONFIG), &format!("{what}: config info"))?;
    t.eq(cfg.size, 4096, &format!("{what}: config is 4 KiB"));
    let bar1 = d.region(vfio::BAR1);
    t.check(
        bar1.as_ref().is_ok_and(|r| r.size == 0),
        &format!("{what}: BAR1 is empty"),
        format_args!("{bar1:?}"),
    );
    t.errno(
        d.region(vfio::NUM_REGIONS),
        EINVAL,
        &format!("{what}: region 9 is EINVAL"),
    );

    let msix = d.irq(vfio::MSIX_IRQ);
    t.check(
        msix.as_ref()
            .is_ok_and(|&(f, c)| c == queues + 1 && f & vfio::IRQ_INFO_EVENTFD != 0),
        &format!("{what}: MSI-X has queues + 1 vectors"),
        format_args!("{msix:?}"),
    );
    let req = d.irq(vfio::REQ_IRQ);
    t.check(
        req.as_ref().is_ok_and(|&(_, c)| c == 1),
        &format!("{what}: one request vector"),
        format_args!("{req:?}"),
    );
    let intx = d.irq(vfio::INTX_IRQ);
    t.check(
        intx.as_ref().is_ok_and(|&(_, c)| c == 0),
        &format!("{what}: no INTx"),
        format_args!("{intx:?}"),
    );
    t.errno(
        d.irq(vfio::NUM_IRQS),
        EINVAL,
        &format!("{what}: IRQ index 5 is EINVAL"),
    );

    // Config space.
    t.eq(
        d.read32(&cfg, 0).ok(),
        Some(0x0001_1f5a),
        &format!("{what}: config vendor/device"),
    );
    t.eq(
        d.read32(&cfg, 8).ok(),
        Some(0x1200_0001),
        &format!("{what}: config class/revision"),
    );
    t.eq(
        d.read32(&cfg, 0x34).ok().map(|v| v & 0xff),
        Some(0x40),
        &format!("{what}: capability list at 0x40"),
    );
    let _ = d.write32(&cfg, 0x18, u32::MAX);
    let _ = d.write32(&cfg, 0x1c, u32::MAX);
    let lo = d.read32(&cfg, 0x18).ok();
    let hi = d.read32(&cfg, 0x1c).ok();
    let mask = !(slice - 1);
    t.eq(
        (lo, hi),
        (Some((mask as u32) | 0xc), Some((mask >> 32) as u32)),
        &format!("{what}: BAR2 sizing"),
    );
    let _ = d.write32(&cfg, 0x10, u32::MAX);
    t.eq(
        d.read32(&cfg, 0x10).ok(),
        Some(0xffff_0000),
        &format!("{what}: BAR0 sizing"),
    );
    t.eq(
        d.read32(&cfg, 0x80)
            .ok()
            .map(|v| (v & 0xff, (v >> 16) & 0x7ff)),
        Some((0x11, queues)),
        &format!("{what}: MSI-X table size is queues + 1"),
    );
    t.eq(
        d.read32(&cfg, 0x84).ok(),
        Some(0x8000),
        &format!("{what}: MSI-X table at BAR0 + 0x8000"),
    );
    let mut whole = vec![0u8; 4096];
    let n = d.pread(&mut whole, cfg.offset);
    t.check(
        n.as_ref().is_ok_and(|&n| n == 4096),
        &format!("{what}: the whole config space in one read"),
        format_args!("{n:?}"),
    );

    // BAR0 identity.
    t.eq(
        d.read32(&bar0, 0).ok(),
        Some(0x414c_4556),
        &format!("{what}: BAR0 ID"),
    );
    let caps = d.read32(&bar0, 8).ok();
    t.check(
        caps.is_some_and(|c| c & (1 << 6) != 0 && c & 0x7 == 0x7 && c & 0x18 == 0),
        &format!("{what}: CAPS has VIRTUAL, COPY, COMPUTE, MMU and no P2P"),
        format_args!("{caps:?}"),
    );
    let vlo = d.read32(&bar0, 0x10).ok();
    let vhi = d.read32(&bar0, 0x14).ok();
    t.eq(
        (vlo, vhi),
        (Some(slice as u32), Some((slice >> 32) as u32)),
        &format!("{what}: VRAM_SIZE is the slice"),
    );
    t.eq(
        d.read32(&bar0, 0x18).ok().map(|v| v & 0xff),
        Some(queues),
        &format!("{what}: TOPOLOGY queues"),
    );
    t.eq(
        d.read32(&bar0, 0x20)
            .ok()
            .map(|v| (v & 0xff, (v >> 8) & 0xff)),
        Some((contexts, queues + 1)),
        &format!("{what}: TOPOLOGY2 contexts and vectors"),
    );
    let _ = d.write32(&bar0, 0x1c, 0x1234_5678);
    t.eq(
        d.read32(&bar0, 0x1c).ok(),
        Some(0x1234_5678),
        &format!("{what}: SCRATCH round trip"),
    );
    t.eq(
        d.read32(&bar0, 0x1000).ok(),
        Some(0),
        &format!("{what}: queue registers read 0"),
    );

    // Bad accesses.
    let mut two = [0u8; 2];
    t.errno(
        d.pread(&mut two, bar0.offset),
        EINVAL,
        &format!("{what}: 2-byte BAR0 read"),
    );
    let mut four = [0u8; 4];
    t.errno(
        d.pread(&mut four, bar0.offset + 2),
        EINVAL,
        &format!("{what}: misaligned BAR0 read"),
    );
    t.errno(
        d.pread(&mut four, bar0.offset + (64 << 10)),
        EINVAL,
        &format!("{what}: BAR0 read past the end"),
    );
    t.errno(
        d.pread(&mut four, bar2.offset + slice - 2),
        EINVAL,
        &format!("{what}: BAR2 read across the end"),
    );
    t.errno(
        d.pread(&mut four, bar2.offset + slice),
        EINVAL,
        &format!("{what}: BAR2 read past the end"),
    );
    t.errno(
        d.pread(&mut four, 9u64 << 40),
        EINVAL,
        &format!("{what}: read of region 9"),
    );
    t.errno(
        d.pwrite(&[0; 4], cfg.offset + 4096),
        EINVAL,
        &format!("{what}: config write past the end"),
    );
    t.errno(
        d.pwrite(&[0; 3], cfg.offset),
        EINVAL,
        &format!("{what}: 3-byte config write"),
    );
    t.errno(
        d.mmap(&bar0, 0, 4096).map(|_| ()),
        EINVAL,
        &format!("{what}: mmap of BAR0"),
    );
    t.errno(
        d.mmap(&bar2, slice, 4096).map(|_| ()),
        EINVAL,
        &format!("{what}: mmap past BAR2"),
    );
    t.errno(
        d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_DATA_BOOL | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ,
            0,
            1,
            &[1],
        ),
        EINVAL,
        &format!("{what}: SET_IRQS with two data types"),
    );
    t.errno(
        d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER | (1 << 9),
            vfio::MSIX_IRQ,
            0,
            1,
            &[],
        ),
        EINVAL,
        &format!("{what}: SET_IRQS with an unknown flag"),
    );
    t.errno(
        d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ,
            queues,
            2,
            &[],
        ),
        EINVAL,
        &format!("{what}: SET_IRQS past the last vector"),
    );
    t.errno(
        d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ,
            u32::MAX,
            2,
            &[],
        ),
        EINVAL,
        &format!("{what}: SET_IRQS start + count overflows"),
    );
    t.errno(
        d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::INTX_IRQ,
            0,
            1,
            &[],
        ),
        EINVAL,
        &format!("{what}: SET_IRQS on INTx"),
    );
    t.errno(
        d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_MASK,
            vfio::MSIX_IRQ,
            0,
            1,
            &[],
        ),
        EINVAL,
        &format!("{what}: SET_IRQS mask"),
    );
    t.errno(
        d.set_irqs(
            vfio::IRQ_SET_DATA_EVENTFD | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ,
            0,
            2,
            &[0xff; 4],
        ),
        EINVAL,
        &format!("{what}: SET_IRQS with argsz short of its data"),
    );

    // Eventfds: a vector fired with DATA_NONE and DATA_BOOL reaches its eventfd only.
    if let (Ok(e0), Ok(e1)) = (EventFd::new(), EventFd::new()) {
        t.ok(
            d.set_eventfds(vfio::MSIX_IRQ, 0, &[e0.fd(), e1.fd()]),
            &format!("{what}: MSI-X eventfds set"),
        );
        let _ = d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ,
            1,
            1,
            &[],
        );
        let _ = d.set_irqs(
            vfio::IRQ_SET_DATA_BOOL | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ,
            0,
            2,
            &[0, 1],
        );
        t.eq(
            (e0.take(), e1.take()),
            (0, 2),
            &format!("{what}: triggers reach vector 1's eventfd only"),
        );
        t.ok(
            d.set_eventfds(vfio::MSIX_IRQ, 0, &[-1, -1]),
            &format!("{what}: MSI-X eventfds removed"),
        );
        let _ = d.set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ,
            1,
            1,
            &[],
        );
        t.eq(
            e1.take(),
            0,
            &format!("{what}: a removed eventfd is not signalled"),
        );
    }
    t.ok(d.reset(), &format!("{what}: RESET"));
    t.eq(
        d.read32(&bar0, 0x1c).ok(),
        Some(0),
        &format!("{what}: RESET clears SCRATCH"),
    );
    Some((bar0, bar2))
}

/// One open instance, as the job checks drive it.
struct Slice<'a> {
    dev: &'a VfioDevice,
    bar0: &'a Region,
    /// A mapping of the slice from [`JOBS`] on.
    map: &'a vfio::Mapping,
    size: u64,
    what: &'a str,
}

/// Where the job checks put things in a slice: past the data the other checks use, in a
/// mapping of their own of `JOBS_LEN` bytes.
const JOBS: u64 = 1 << 20;
const JOBS_LEN: usize = 256 << 10;
const RING: u64 = JOBS;
const FENCE: u64 = JOBS + 0x1000;
const SRC: u64 = JOBS + 0x10000;
const DST: u64 = JOBS + 0x20000;
const JOB_LEN: usize = 16 << 10;
/// A VRAM DPA (`Documentation/hardware/mmu.rst`): in a partition, an offset into its slice.
const VRAM: u64 = 1 << 63;

impl Slice<'_> {
    fn w(&self, off: u32, v: u32) -> std::io::Result<()> {
        self.dev.write32(self.bar0, u64::from(off), v)
    }

    fn r(&self, off: u32) -> std::io::Result<u32> {
        self.dev.read32(self.bar0, u64::from(off))
    }

    /// Sets up local queue 0 on local context 0 (translation off: addresses are the
    /// partition's DPAs), its ring and fence in the slice, queue 0's interrupt unmasked.
    fn setup(&self) -> std::io::Result<()> {
        self.setup_queue(0)
    }

    /// Sets up local queue `n` (its ring and fence after queue 0's), as [`Slice::setup`].
    fn setup_queue(&self, n: usize) -> std::io::Result<()> {
        let q = |off| queue::reg(n, off);
        let (ring, fence) = (RING + 0x400 * n as u64, FENCE + 0x100 * n as u64);
        self.w(ctx::reg(0, ctx::CONTROL), 0)?;
        self.w(q(queue::CONTROL), 1 << 1)?;
        self.w(q(queue::RING_BASE_LO), ring as u32)?;
        self.w(q(queue::RING_BASE_HI), ((VRAM | ring) >> 32) as u32)?;
        self.w(q(queue::RING_SIZE), 4)?;
        self.w(q(queue::CONTEXT), 0)?;
        self.w(q(queue::FENCE_BASE_LO), fence as u32)?;
        self.w(q(queue::FENCE_BASE_HI), ((VRAM | fence) >> 32) as u32)?;
        self.w(hw::INT_MASK, !1)?;
        self.w(q(queue::CONTROL), 1)
    }

    /// Fills local queue `n`'s ring (set up fresh) with `FLOOD` COPYs of `len` bytes inside
    /// the slice and rings the doorbell once, without waiting.
    fn flood(&self, n: usize, len: u64) -> std::io::Result<()> {
        self.setup_queue(n)?;
        let ring = RING + 0x400 * n as u64;
        for i in 0..FLOOD {
            let slot = CopyCmd::new(VRAM | FLOOD_SRC, VRAM | (FLOOD_SRC + len), len).to_slot();
            self.map
                .write((ring - JOBS + 64 * u64::from(i)) as usize, &slot);
        }
        self.w(queue::reg(n, queue::DOORBELL), FLOOD)
    }

    /// Commands local queue `n` completed since its setup.
    fn completed(&self, n: usize) -> std::io::Result<u32> {
        self.r(queue::reg(n, queue::COMPLETED))
    }

    /// Puts a COPY of `JOB_LEN` bytes from `src` to `dst` (slice offsets, or beyond) with the
    /// INTERRUPT flag into slot `n` and rings the doorbell; waits up to 20 s for the queue to
    /// complete it or stop. Returns (completed, Q_STATUS, Q_ERROR_ADDR).
    fn copy(&self, n: u32, src: u64, dst: u64) -> std::io::Result<(u32, u32, u64)> {
        self.copy_dpa(n, VRAM | src, VRAM | dst)
    }

    /// As [`Slice::copy`], between any two of the partition's DPAs: a VRAM offset with bit 63,
    /// or an IOVA of guest memory without.
    fn copy_dpa(&self, n: u32, src: u64, dst: u64) -> std::io::Result<(u32, u32, u64)> {
        let mut slot = CopyCmd::new(src, dst, JOB_LEN as u64).to_slot();
        Header::read(&slot).with_interrupt(true).write(&mut slot);
        self.map
            .write((RING - JOBS + 64 * u64::from(n)) as usize, &slot);
        let q = |off| queue::reg(0, off);
        let before = self.r(q(queue::COMPLETED))?;
        self.w(q(queue::DOORBELL), n + 1)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = self.r(q(queue::COMPLETED))?;
            let status = self.r(q(queue::STATUS))?;
            // Done, or stopped: ERROR or FAULT_STOPPED.
            if done != before || status & 0b110 != 0 || Instant::now() > deadline {
                let lo = self.r(q(queue::ERROR_ADDR_LO))?;
                let hi = self.r(q(queue::ERROR_ADDR_HI))?;
                return Ok((done - before, status, (u64::from(hi) << 32) | u64::from(lo)));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Jobs on the partitions behind two open instances (item 4 of the module's comment).
fn jobs(t: &mut Tap, a: &Slice<'_>, b: &Slice<'_>, b_map: &vfio::Mapping, b_data: &[u8]) {
    let (Ok(ea), Ok(eb)) = (EventFd::new(), EventFd::new()) else {
        t.check(false, "eventfds for the jobs", "");
        return;
    };
    for (s, e, seed) in [(a, &ea, 31), (b, &eb, 32)] {
        let what = s.what;
        t.ok(
            s.dev.set_eventfds(vfio::MSIX_IRQ, 1, &[e.fd()]),
            &format!("{what}: an eventfd on vector 1 (queue 0's completions)"),
        );
        t.ok(s.setup(), &format!("{what}: queue 0 set up through BAR0"));
        let data = pattern(seed, JOB_LEN as u64);
        s.map.write((SRC - JOBS) as usize, &data);
        s.map.write((DST - JOBS) as usize, &vec![0u8; JOB_LEN]);
        let r = s.copy(0, SRC, DST);
        t.check(
            matches!(r, Ok((1, st, _)) if st & 0b10 == 0),
            &format!("{what}: a COPY inside the slice completes"),
            format_args!("{r:?}"),
        );
        t.check(
            same(&s.map.read((DST - JOBS) as usize, JOB_LEN), &data).is_ok(),
            &format!("{what}: and its data is there"),
            "",
        );
        t.check(
            e.wait(5000) && e.take() >= 1,
            &format!("{what}: its completion reaches vector 1's eventfd"),
            "",
        );
    }

    // A's COPY aimed one byte past its slice: its queue stops, B is untouched.
    let r = a.copy(1, SRC, a.size - 1);
    let (st, addr) = r.as_ref().map_or((0, 0), |&(_, st, addr)| (st, addr));
    t.check(
        st & 0b10 != 0 && (st >> 8) & 0xff == 4,
        &format!(
            "{}: a COPY past the slice stops its queue with DMA_ERROR",
            a.what
        ),
        format_args!("{r:?}"),
    );
    t.check(
        addr & !VRAM >= a.size,
        &format!("{}: Q_ERROR_ADDR is outside the slice", a.what),
        format_args!("{addr:#x}"),
    );
    t.check(
        same(&b_map.read(0, SPAN), b_data).is_ok(),
        &format!("{}: the other instance's data is untouched", b.what),
        "",
    );
    let r = b.copy(1, DST, SRC);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0),
        &format!("{}: and its next job completes", b.what),
        format_args!("{r:?}"),
    );
    // A's partition reset (VFIO_DEVICE_RESET) clears the error; B keeps running.
    let _ = a.dev.reset();
    t.eq(
        a.r(queue::reg(0, queue::STATUS)).ok().map(|s| s & 0b1010),
        Some(0),
        &format!("{}: RESET clears the queue's error and stops it", a.what),
    );
    let r = b.copy(2, SRC, DST);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0),
        &format!("{}: runs on after the other's reset", b.what),
        format_args!("{r:?}"),
    );
}

/// Page tables of local context 0 in the slice, past the data the job checks use.
const PT_L2: u64 = JOBS + 0x30000;
const PT_L1: u64 = JOBS + 0x31000;
/// Page-table entry bits (`Documentation/hardware/mmu.rst`).
const PTE_VALID: u64 = 1;
const PTE_RW: u64 = 0b110;
const PTE_HUGE: u64 = 1 << 3;
const PTE_VRAM: u64 = 1 << 4;

/// Isolation through page tables (item 4 of the module's comment): `a`'s context 0 translates
/// through tables in its slice whose 2 MiB pages map the slice's first 2 MiB, the first 2 MiB
/// past its end, and an address far beyond (where other tenants' and the host's VRAM would be
/// were addresses not the partition's). A COPY through the first carries data; through the
/// others it fails with DMA_ERROR; a root table outside the slice faults with TABLE_BUS. The
/// other instance's data and jobs, and the host's jobs, are untouched.
fn page_tables(
    t: &mut Tap,
    a: &Slice<'_>,
    b: &Slice<'_>,
    b_map: &vfio::Mapping,
    b_data: &[u8],
    host: &vela_selftests::PciDev,
) {
    let what = a.what;
    let huge = PTE_VALID | PTE_RW | PTE_HUGE | PTE_VRAM;
    let l2 = (PT_L1 | PTE_VALID | PTE_VRAM).to_le_bytes();
    let mut l1 = Vec::new();
    for page in [0, a.size, 1 << 40] {
        l1.extend_from_slice(&(page | huge).to_le_bytes());
    }
    a.map.write((PT_L2 - JOBS) as usize, &l2);
    a.map.write((PT_L1 - JOBS) as usize, &l1);
    let root = |dpa: u64| -> std::io::Result<()> {
        a.w(ctx::reg(0, ctx::PT_BASE_LO), dpa as u32)?;
        a.w(ctx::reg(0, ctx::PT_BASE_HI), ((VRAM | dpa) >> 32) as u32)?;
        a.w(ctx::reg(0, ctx::CONTROL), 1)
    };
    // `setup` turns translation off: the context is set after it.
    let _ = a.setup();
    t.ok(
        root(PT_L2),
        &format!("{what}: context 0 translates through tables in the slice"),
    );
    let data = pattern(51, JOB_LEN as u64);
    a.map.write((SRC - JOBS) as usize, &data);
    a.map.write((DST - JOBS) as usize, &vec![0u8; JOB_LEN]);
    // VA = slice offset in the first 2 MiB.
    let r = a.copy_dpa(0, SRC, DST);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b110 == 0)
            && same(&a.map.read((DST - JOBS) as usize, JOB_LEN), &data).is_ok(),
        &format!("{what}: a COPY through the page tables carries data"),
        format_args!("{r:?}"),
    );
    for (va, whither) in [(2 * MIB, "just past the slice"), (4 * MIB, "far beyond it")] {
        let _ = a.setup();
        let _ = root(PT_L2);
        let r = a.copy_dpa(0, va, DST);
        t.check(
            matches!(r, Ok((0, st, _)) if st & 0b10 != 0 && (st >> 8) & 0xff == 4),
            &format!("{what}: a read through a page of VRAM {whither} fails with DMA_ERROR"),
            format_args!("{r:?}"),
        );
        let _ = a.setup();
        let _ = root(PT_L2);
        let r = a.copy_dpa(0, SRC, va);
        t.check(
            matches!(r, Ok((0, st, _)) if st & 0b10 != 0 && (st >> 8) & 0xff == 4),
            &format!("{what}: and so does a write"),
            format_args!("{r:?}"),
        );
    }
    let _ = a.setup();
    let _ = root(a.size);
    let r = a.copy_dpa(0, SRC, DST);
    let fault = a.r(ctx::reg(0, ctx::FAULT_STATUS)).unwrap_or(0);
    t.check(
        matches!(r, Ok((0, st, _)) if st & 0b100 != 0) && fault & 1 != 0 && (fault >> 8) & 0xf == 5,
        &format!("{what}: a root table past the slice faults with TABLE_BUS"),
        format_args!("{r:?}, CTX_FAULT_STATUS {fault:#x}"),
    );
    t.check(
        same(&b_map.read(0, SPAN), b_data).is_ok(),
        &format!("{}: its data is untouched", b.what),
        "",
    );
    let r = host
        .open()
        .and_then(|d| vela_selftests::sharing::local_copy_works(&d, 52));
    t.check(
        r.is_ok(),
        "the host's accel jobs complete with their data meanwhile",
        format_args!("{r:?}"),
    );
    let r = b.copy(3, SRC, DST);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0),
        &format!("{}: and its jobs complete", b.what),
        format_args!("{r:?}"),
    );
    // The fault record and translation go with a reset of the instance.
    let _ = a.dev.reset();
}

/// How a VMM maps guest memory for an instance: through its container, or its IOAS.
trait Dma {
    fn map(&self, mem: &Memory, iova: u64, write: bool) -> std::io::Result<()>;
    fn unmap(&self, iova: u64, len: u64) -> std::io::Result<u64>;
}

impl Dma for GroupDevice {
    fn map(&self, mem: &Memory, iova: u64, write: bool) -> std::io::Result<()> {
        self.map_dma(mem, iova, write)
    }
    fn unmap(&self, iova: u64, len: u64) -> std::io::Result<u64> {
        self.unmap_dma(iova, len)
    }
}

impl Dma for CdevDevice {
    fn map(&self, mem: &Memory, iova: u64, write: bool) -> std::io::Result<()> {
        self.map_dma(mem, iova, write)
    }
    fn unmap(&self, iova: u64, len: u64) -> std::io::Result<u64> {
        self.unmap_dma(iova, len)
    }
}

/// Guest memory at these IOVAs: `GUEST` read-write, `GUEST_RO` read-only, `HOLE` mapped by
/// nobody; `BEYOND` is past the instance's IOVA space (512 MiB).
const GUEST: u64 = 4 * MIB;
const GUEST_RO: u64 = 8 * MIB;
const HOLE: u64 = 16 * MIB;
const BEYOND: u64 = 512 * MIB;
const GUEST_LEN: usize = 64 << 10;

/// Whether a copy stopped the queue with DMA_ERROR at `addr`.
fn dma_error_at(r: &std::io::Result<(u32, u32, u64)>, addr: u64) -> bool {
    matches!(r, Ok((0, st, a)) if st & 0b10 != 0 && (st >> 8) & 0xff == 4 && *a == addr)
}

/// Jobs of a partition on its guest's memory (item 5 of the module's comment): the device
/// asks for each page it touches and the host pins what the VMM mapped, with the VMM's
/// permissions; what the VMM did not map, or unmapped, fails in the instance alone.
fn guest_memory(t: &mut Tap, s: &Slice<'_>, dma: &dyn Dma) {
    let what = s.what;
    let (Ok(mem), Ok(ro)) = (Memory::new(GUEST_LEN), Memory::new(GUEST_LEN)) else {
        t.check(false, &format!("{what}: guest memory"), "");
        return;
    };
    t.ok(
        dma.map(&mem, GUEST, true),
        &format!("{what}: 64 KiB of guest memory mapped read-write at 4 MiB"),
    );
    t.ok(
        dma.map(&ro, GUEST_RO, false),
        &format!("{what}: and 64 KiB read-only at 8 MiB"),
    );
    t.ok(s.setup(), &format!("{what}: queue 0 set up again"));

    let data = pattern(41, JOB_LEN as u64);
    mem.write(0, &data);
    s.map.write((DST - JOBS) as usize, &vec![0u8; JOB_LEN]);
    let r = s.copy_dpa(0, GUEST, VRAM | DST);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0),
        &format!("{what}: a COPY from guest memory into the slice completes"),
        format_args!("{r:?}"),
    );
    t.check(
        same(&s.map.read((DST - JOBS) as usize, JOB_LEN), &data).is_ok(),
        &format!("{what}: and the slice holds the guest's data"),
        "",
    );
    let back = pattern(42, JOB_LEN as u64);
    s.map.write((SRC - JOBS) as usize, &back);
    let half = (GUEST_LEN / 2) as u64;
    let r = s.copy_dpa(1, VRAM | SRC, GUEST + half);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0),
        &format!("{what}: a COPY from the slice into guest memory completes"),
        format_args!("{r:?}"),
    );
    t.check(
        same(&mem.read(half as usize, JOB_LEN), &back).is_ok(),
        &format!("{what}: and the guest's memory holds the slice's data"),
        "",
    );
    ro.write(0, &back);
    let r = s.copy_dpa(2, GUEST_RO, VRAM | DST);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0)
            && same(&s.map.read((DST - JOBS) as usize, JOB_LEN), &back).is_ok(),
        &format!("{what}: read-only guest memory is read"),
        format_args!("{r:?}"),
    );

    // Each failure stops the queue: set up again after it.
    let r = s.copy_dpa(3, VRAM | SRC, GUEST_RO);
    t.check(
        dma_error_at(&r, GUEST_RO) && ro.read(0, JOB_LEN) == back,
        &format!("{what}: a write to read-only guest memory fails with DMA_ERROR, untouched"),
        format_args!("{r:?}"),
    );
    let _ = s.setup();
    let r = s.copy_dpa(0, HOLE, VRAM | DST);
    t.check(
        dma_error_at(&r, HOLE),
        &format!("{what}: an IOVA the VMM did not map fails with DMA_ERROR"),
        format_args!("{r:?}"),
    );
    let _ = s.setup();
    let r = s.copy_dpa(0, BEYOND, VRAM | DST);
    t.check(
        matches!(r, Ok((0, st, _)) if st & 0b10 != 0 && (st >> 8) & 0xff == 4),
        &format!("{what}: an IOVA past the instance's IOVA space fails with DMA_ERROR"),
        format_args!("{r:?}"),
    );

    // Unmapped by the VMM: the host unpins, and the device no longer reaches the page it read
    // a moment ago.
    t.eq(
        dma.unmap(GUEST, GUEST_LEN as u64).ok(),
        Some(GUEST_LEN as u64),
        &format!("{what}: the VMM unmaps the read-write memory"),
    );
    let _ = s.setup();
    let r = s.copy_dpa(0, GUEST, VRAM | DST);
    t.check(
        dma_error_at(&r, GUEST),
        &format!("{what}: a COPY from it now fails with DMA_ERROR"),
        format_args!("{r:?}"),
    );
    t.eq(
        dma.unmap(GUEST_RO, GUEST_LEN as u64).ok(),
        Some(GUEST_LEN as u64),
        &format!("{what}: the VMM unmaps the read-only memory"),
    );
    let _ = s.setup();
}

/// A flood: this many COPYs per ring (16 slots, one kept free), each copying from here to
/// right after.
const FLOOD: u32 = 15;
const FLOOD_SRC: u64 = 8 * MIB;

/// A tenant that submits endless work gets its time slice and no more
/// (`Documentation/hardware/partitions.rst`, Scheduling): with `a` keeping both of its queues
/// full of long COPYs (so every engine has its work), `b`'s job and a job of the host's own
/// accel path each finish before `a`'s flood does. The spec's bound is `a`'s quantum (2 ms,
/// shorter than one of these COPYs) plus E commands per engine, so about 2E commands of `a`
/// (E engines). `b`, driven by register writes, is checked against `FLOOD` (half the flood)
/// to leave room for what completes while the test polls. The host's job goes through the
/// accel ioctls and the host's queue scheduler, whose own latency under TCG is worth a dozen
/// or more of these COPYs, so it is checked to finish while the flood is still pending;
/// without time slices between tenants either job would wait for the whole flood. Counted in
/// commands, not time, so the checks do not depend on the speed of the host running the
/// device model.
fn time_slices(t: &mut Tap, a: &Slice<'_>, b: &Slice<'_>, host: &vela_selftests::PciDev) {
    use vela_runtime::{Access, BufferFlags, Command, Queue, Vm};
    use vela_selftests::sharing::{read_bo, vram_with};

    let engines = a.r(hw::TOPOLOGY).map_or(0, |v| (v >> 8) & 0xff);
    // Long COPYs: the larger of what fits in the slice, at most 64 MiB.
    let len = ((a.size - FLOOD_SRC) / 2).min(64 * MIB) & !(MIB - 1);
    t.diag(format_args!(
        "time slices: {engines} engines, {FLOOD} COPYs of {} MiB on each of 2 queues",
        len >> 20
    ));
    let flood = || -> std::io::Result<()> {
        a.flood(0, len)?;
        a.flood(1, len)
    };
    let done = || -> u32 { a.completed(0).unwrap_or(0) + a.completed(1).unwrap_or(0) };
    // Waited for at most FLOOD, and the flood was still going when the job came.
    let fair = |before: u32, during: u32| before + FLOOD < 2 * FLOOD && during <= FLOOD;

    // The other tenant's job.
    let _ = b.setup();
    t.ok(flood(), &format!("{}: both queues flooded", a.what));
    let before = done();
    let r = b.copy(0, SRC, DST);
    let during = done().saturating_sub(before);
    t.diag(format_args!(
        "{}: {before} done before, {during} during",
        b.what
    ));
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0),
        &format!(
            "{}: its job completes while the other tenant floods",
            b.what
        ),
        format_args!("{r:?}"),
    );
    t.check(
        fair(before, during),
        &format!(
            "{}: and waits for at most {FLOOD} of the flood's commands",
            b.what
        ),
        format_args!("{before} done before, {during} during"),
    );

    // The host's own job, on its accel path: everything but the submission made first.
    const LEN: u64 = 256 << 10;
    let want = pattern(78, LEN);
    let host_job = host.open().and_then(|dev| {
        let src = vram_with(&dev, &want, BufferFlags::NONE)?;
        let dst = vram_with(&dev, &vec![0u8; LEN as usize], BufferFlags::NONE)?;
        let e = |e: vela_runtime::Error| e.to_string();
        let vm = Vm::create(&dev).map_err(e)?;
        let q = Queue::create(&vm).map_err(e)?;
        let bs = vm.bind_auto(&src, Access::READ).map_err(e)?;
        let bd = vm.bind_auto(&dst, Access::READ_WRITE).map_err(e)?;
        let _ = flood();
        let before = done();
        q.run(
            &[Command::copy(bs.va(), bd.va(), LEN)],
            Duration::from_secs(60),
        )
        .map_err(e)?;
        let during = done().saturating_sub(before);
        same(&read_bo(&dst, LEN)?, &want)?;
        Ok((before, during))
    });
    t.check(
        host_job.is_ok(),
        "the host's accel job completes with its data while a tenant floods",
        format_args!("{host_job:?}"),
    );
    if let Ok((before, during)) = host_job {
        t.diag(format_args!("host: {before} done before, {during} during"));
        t.check(
            before + during < 2 * FLOOD,
            "the host's job completes before the flood does",
            format_args!("{before} done before, {during} during"),
        );
    }
    // And the flood gets its turns: all of it completes.
    let deadline = Instant::now() + Duration::from_secs(60);
    while done() < 2 * FLOOD && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    t.eq(
        done(),
        2 * FLOOD,
        &format!("{}: the flood completes in its turns", a.what),
    );
}

/// A reset of the whole device with instances open (`Documentation/vgpu.rst`, Status): a host
/// job on a hung copy engine times out and the driver resets the device, which disables every
/// partition; the core enables them again. The instance's VRAM and its mapping of BAR2 are
/// kept, its queue comes back at its reset values, and once set up again it runs jobs.
fn device_reset(
    t: &mut Tap,
    b: &Slice<'_>,
    b_map: &vfio::Mapping,
    b_data: &[u8],
    host: &vela_selftests::PciDev,
) {
    let Ok(dev) = host.open() else {
        t.check(false, "open the host's accel device", "");
        return;
    };
    let Some(n) = vela_selftests::model_index(&dev) else {
        t.check(false, "find the device in the model", "");
        return;
    };
    t.ok(
        vela_selftests::inject(&format!("dev={n} hang-engine=copy")),
        "inject: hang the copy engine",
    );
    let r = vela_selftests::sharing::local_copy_works(&dev, 61);
    t.check(
        r.as_ref()
            .is_err_and(|e| e.contains("EIO") || e.contains("Input/output")),
        "a host job on the hung engine fails after the timeout and reset",
        format_args!("{r:?}"),
    );
    let r = vela_selftests::sharing::local_copy_works(&dev, 62);
    t.check(
        r.is_ok(),
        "the host's jobs run after the reset",
        format_args!("{r:?}"),
    );
    t.check(
        same(&b_map.read(0, SPAN), b_data).is_ok(),
        &format!("{}: its VRAM is kept through the reset", b.what),
        "",
    );
    let st = b.r(queue::reg(0, queue::STATUS));
    t.check(
        matches!(st, Ok(s) if s & 0b1000 == 0),
        &format!(
            "{}: its queue is back at its reset value (disabled)",
            b.what
        ),
        format_args!("{st:?}"),
    );
    let _ = b.setup();
    let data = pattern(63, JOB_LEN as u64);
    b.map.write((SRC - JOBS) as usize, &data);
    let r = b.copy(0, SRC, DST);
    t.check(
        matches!(r, Ok((1, st, _)) if st & 0b10 == 0)
            && same(&b.map.read((DST - JOBS) as usize, JOB_LEN), &data).is_ok(),
        &format!("{}: set up again, it runs jobs", b.what),
        format_args!("{r:?}"),
    );
}

/// Writes `data` through a mapping of BAR2 and reads it back through the mapping and pread.
fn bar2_round_trip(
    t: &mut Tap,
    d: &VfioDevice,
    bar2: &Region,
    data: &[u8],
    what: &str,
) -> Option<vfio::Mapping> {
    let m = t.ok(
        d.mmap(bar2, 0, data.len()),
        &format!("{what}: mmap of BAR2"),
    )?;
    m.write(0, data);
    let back = m.read(0, data.len());
    let r = same(&back, data);
    t.check(
        r.is_ok(),
        &format!("{what}: BAR2 mapping reads back what it wrote"),
        format_args!("{r:?}"),
    );
    let mut via = vec![0u8; data.len()];
    let n = d.pread(&mut via, bar2.offset);
    let r = n.map_err(|e| e.to_string()).and_then(|_| same(&via, data));
    t.check(
        r.is_ok(),
        &format!("{what}: pread of BAR2 sees it"),
        format_args!("{r:?}"),
    );
    // An unaligned pwrite in the middle, read back through the mapping.
    let odd = [0xa5u8; 13];
    let _ = d.pwrite(&odd, bar2.offset + 4099);
    t.eq(
        m.read(4099, 13),
        odd.to_vec(),
        &format!("{what}: unaligned pwrite seen through the mapping"),
    );
    m.write(4099, &data[4099..4112]);
    Some(m)
}

fn main() {
    let mut t = Tap::new();
    let host = match p2p_topology() {
        Ok(topo) => topo.c,
        Err(e) => {
            t.check(false, "find vela2", e);
            t.finish();
        }
    };
    let parent = host.sysfs.clone();
    t.diag(format_args!("parent {}", parent.display()));
    types(&mut t, &parent);
    let half = MdevType::of(&parent, "vela-half");
    let quarter = MdevType::of(&parent, "vela-quarter");
    let vram = vram_size();

    let (h0, q0) = (
        half.available().unwrap_or(0),
        quarter.available().unwrap_or(0),
    );
    t.check(
        h0 >= 1 && q0 >= 1,
        "a 1/2 and a 1/4 instance are available",
        format_args!("half {h0}, quarter {q0}"),
    );
    let Some(a) = t.ok(half.create(), "create a 1/2 instance") else {
        t.finish()
    };
    let h1 = half.available().unwrap_or(u64::MAX);
    let q1 = quarter.available().unwrap_or(u64::MAX);
    t.check(
        h1 < h0 && q1 < q0,
        "available_instances drops",
        format_args!("half {h0} -> {h1}, quarter {q0} -> {q1}"),
    );
    let Some(b) = t.ok(quarter.create(), "create a 1/4 instance") else {
        t.finish()
    };
    // Half and a quarter of VRAM are taken: no second 1/2 instance fits.
    t.eq(
        half.available().ok(),
        Some(0),
        "no 1/2 instance is available any more",
    );
    let extra = half.create();
    let left = extra.as_ref().map(|m| m.exists()).unwrap_or(false);
    t.errno(extra, libc::ENOSPC, "creating one anyway fails with ENOSPC");
    t.check(!left, "and leaves no instance behind", "");

    // A through the legacy path, B through the cdev, both open at once.
    let pa = pattern(1, SPAN as u64);
    let pb = pattern(2, SPAN as u64);
    let ga = match GroupDevice::open(&a) {
        Ok(g) => Some(g),
        Err(e) => {
            t.check(
                false,
                "open the 1/2 instance: group, type 1 v2 container, device fd",
                e,
            );
            None
        }
    };
    let mut map_a = None;
    let mut bar0_a = None;
    let mut bar2_a = None;
    if let Some(g) = &ga {
        t.check(
            true,
            "open the 1/2 instance: group, type 1 v2 container, device fd",
            "",
        );
        if let Some((bar0, bar2)) = inspect(&mut t, &g.dev, vram / 2, 2, 2, "group 1/2") {
            map_a = bar2_round_trip(&mut t, &g.dev, &bar2, &pa, "group 1/2");
            bar0_a = Some(bar0);
            bar2_a = Some(bar2);
        }
    }
    let cb = match CdevDevice::open(&b) {
        Ok(c) => Some(c),
        Err(e) => {
            t.check(
                false,
                "open the 1/4 instance: cdev, iommufd, IOAS attached",
                e,
            );
            None
        }
    };
    let mut map_b = None;
    let mut bar0_b = None;
    let mut bar2_b = None;
    if let Some(c) = &cb {
        t.check(
            true,
            "open the 1/4 instance: cdev, iommufd, IOAS attached",
            format_args!("devid {} ioas {}", c.devid, c.ioas),
        );
        if let Some((bar0, bar2)) = inspect(&mut t, &c.dev, vram / 4, 1, 1, "cdev 1/4") {
            bar0_b = Some(bar0);
            bar2_b = Some(bar2);
            let mut fresh = vec![0xffu8; SPAN];
            let _ = c.dev.pread(&mut fresh, bar2.offset);
            t.check(
                fresh.iter().all(|&x| x == 0),
                "a new instance's BAR2 reads zeroes",
                "",
            );
            map_b = bar2_round_trip(&mut t, &c.dev, &bar2, &pb, "cdev 1/4");
        }
    }
    if let (Some(ma), Some(mb)) = (&map_a, &map_b) {
        let ra = same(&ma.read(0, SPAN), &pa);
        let rb = same(&mb.read(0, SPAN), &pb);
        t.check(
            ra.is_ok() && rb.is_ok(),
            "the two instances' data stay apart",
            format_args!("{ra:?} {rb:?}"),
        );
    }
    let ja = ga
        .as_ref()
        .zip(bar2_a.as_ref())
        .and_then(|(g, r)| g.dev.mmap(r, JOBS, JOBS_LEN).ok());
    let jb = cb
        .as_ref()
        .zip(bar2_b.as_ref())
        .and_then(|(c, r)| c.dev.mmap(r, JOBS, JOBS_LEN).ok());
    if let (Some(g), Some(c), Some(mb), Some(ra), Some(rb), Some(ja), Some(jb)) =
        (&ga, &cb, &map_b, &bar0_a, &bar0_b, &ja, &jb)
    {
        let a = Slice {
            dev: &g.dev,
            bar0: ra,
            map: ja,
            size: vram / 2,
            what: "group 1/2",
        };
        let b = Slice {
            dev: &c.dev,
            bar0: rb,
            map: jb,
            size: vram / 4,
            what: "cdev 1/4",
        };
        jobs(&mut t, &a, &b, mb, &pb);
        page_tables(&mut t, &a, &b, mb, &pb, &host);
        guest_memory(&mut t, &a, g);
        guest_memory(&mut t, &b, c);
        time_slices(&mut t, &a, &b, &host);
        device_reset(&mut t, &b, mb, &pb, &host);
    } else {
        t.check(
            false,
            "jobs on both instances' partitions",
            "an instance is missing",
        );
    }
    // Every mapping holds its device file open, and removal waits for the last one.
    drop(ja);
    drop(jb);
    drop(map_a);
    drop(ga);

    // A removed and made again: the slice comes back scrubbed.
    t.ok(a.remove(), "remove the closed 1/2 instance");
    t.check(!a.exists(), "it is gone from sysfs", "");
    let h2 = half.available().unwrap_or(0);
    t.check(
        h2 > h1,
        "available_instances comes back",
        format_args!("half {h1} -> {h2}"),
    );
    if let Some(a2) = t.ok(half.create(), "create a 1/2 instance again") {
        match GroupDevice::open(&a2) {
            Ok(g) => {
                let bar2 = g.dev.region(vfio::BAR2);
                let mut back = vec![0xffu8; SPAN];
                let r = bar2.and_then(|r| g.dev.pread(&mut back, r.offset));
                t.check(
                    r.is_ok() && back.iter().all(|&x| x == 0),
                    "the new instance of the slice reads zeroes",
                    format_args!("{r:?}"),
                );
            }
            Err(e) => {
                t.check(false, "open the new 1/2 instance", e);
            }
        }
        t.ok(a2.remove(), "remove it");
    }

    // B removed while open: revoked, then gone once closed.
    if let (Some(c), Some(mb)) = (cb, map_b) {
        let victim = b.clone();
        revoke(&mut t, &b, c, mb, "removal", move || victim.remove());
    } else {
        let _ = b.remove();
    }

    unbind_with_open_instance(&mut t, &parent, &quarter);
    t.finish();
}

/// Unbinds vela.ko from the parent while an instance is open and mapped, then binds it again.
fn unbind_with_open_instance(t: &mut Tap, parent: &Path, quarter: &MdevType) {
    let Some(m) = t.ok(quarter.create(), "create a 1/4 instance to unbind under") else {
        return;
    };
    let c = match CdevDevice::open(&m) {
        Ok(c) => c,
        Err(e) => {
            t.check(false, "open it through its cdev", e);
            let _ = m.remove();
            return;
        }
    };
    let Some(map) = c
        .dev
        .region(vfio::BAR2)
        .and_then(|r| c.dev.mmap(&r, 0, 4096))
        .ok()
    else {
        t.check(false, "map its BAR2", "");
        return;
    };
    map.write(0, &[1, 2, 3, 4]);
    let bdf = parent
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unbind_bdf = bdf.clone();
    revoke(t, &m, c, map, "unbind", move || {
        std::fs::write("/sys/bus/pci/drivers/vela/unbind", &unbind_bdf)
    });
    let bound = std::fs::write("/sys/bus/pci/drivers/vela/bind", &bdf);
    t.ok(bound, "vela2 bound again");
    t.check(
        parent.join("mdev_supported_types/vela-quarter").exists(),
        "its vGPU types are back",
        "",
    );
}

/// Runs `go` (a removal of `m`, or an unbind of its parent) from a thread while `c` has `m`
/// open and mapped: `m` is revoked at once, and `go` completes once `c` is closed.
fn revoke(
    t: &mut Tap,
    m: &Mdev,
    c: CdevDevice,
    map: vfio::Mapping,
    what: &str,
    go: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) {
    let Ok(req) = EventFd::new() else {
        t.check(false, "an eventfd", "");
        return;
    };
    t.ok(
        c.dev.set_eventfds(vfio::REQ_IRQ, 0, &[req.fd()]),
        &format!("{what}: request eventfd set"),
    );
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let remover = thread::spawn(move || {
        let r = go();
        let _ = tx.send(());
        r
    });
    t.check(
        req.wait(20_000),
        &format!("{what}: the request eventfd fires"),
        "",
    );
    thread::sleep(Duration::from_millis(200));
    t.check(
        rx.try_recv().is_err(),
        &format!("{what}: waits while the device is open"),
        "",
    );
    let bar0 = Region {
        flags: 0,
        size: 64 << 10,
        offset: 0,
    };
    t.errno(
        c.dev.read32(&bar0, 0),
        ENODEV,
        &format!("{what}: BAR0 read of the revoked instance is ENODEV"),
    );
    t.errno(
        c.dev.info(),
        ENODEV,
        &format!("{what}: DEVICE_GET_INFO of the revoked instance is ENODEV"),
    );
    t.errno(
        c.dev.region(vfio::BAR2),
        ENODEV,
        &format!("{what}: GET_REGION_INFO of the revoked instance is ENODEV"),
    );
    let sig = vfio::probe_read(&map, 0);
    t.eq(
        sig.ok(),
        Some(Some(libc::SIGBUS)),
        &format!("{what}: its BAR2 mapping raises SIGBUS"),
    );
    drop(map);
    drop(c);
    let done = rx.recv_timeout(Duration::from_secs(60)).is_ok();
    t.check(
        done,
        &format!("{what}: completes once the files are closed"),
        format_args!("{:?}", start.elapsed()),
    );
    let r = remover.join();
    t.check(
        matches!(r, Ok(Ok(()))),
        &format!("{what}: the sysfs write succeeded"),
        format_args!("{r:?}"),
    );
    t.check(
        !m.exists(),
        &format!("{what}: the revoked instance is gone"),
        "",
    );
}
