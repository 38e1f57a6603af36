// SPDX-License-Identifier: GPL-2.0
//! Random command streams, register writes and config writes against two
//! devices on one fabric: the model must neither panic nor hang. Seeded, so a
//! failure reproduces; bounded in time, so it fits in `cargo test`.

use std::time::{Duration, Instant};
use vela_hw::Opcode;
use vela_hw::Pte;

use vela_hw::regs::{self, ctx, part, queue, Counter};
use vela_hw::{Engine, Kernel};
use vela_model::compute::KernelArgs;
use vela_model::device::DeviceOptions;
use vela_model::engine::vram_dpa;
use vela_model::fabric::Fabric;
use vela_model::inject::Knob;
use vela_model::rig::{encode, Rig, RAM_BASE};
use vfio_bindings::bindings::vfio::{
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_BAR4_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX,
};

/// xorshift64*: small, deterministic, good enough to explore.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Items first, generator second: the items may themselves draw numbers.
fn pick<T: Copy>(items: &[T], rng: &mut Rng) -> T {
    items[rng.below(items.len() as u64) as usize]
}

const VRAM: u64 = 16 << 20;
const BAR2_PEER: u64 = 0x90_0000_0000;

/// Addresses that land in interesting places: VRAM, its edges, system
/// memory, the peer, nowhere, and translated VAs.
fn address(rng: &mut Rng) -> u64 {
    let base = pick(
        &[
            vram_dpa(0),
            vram_dpa(VRAM - 64),
            vram_dpa(VRAM),
            RAM_BASE,
            RAM_BASE + (16 << 20) - 8,
            BAR2_PEER,
            BAR2_PEER + VRAM - 4,
            0,
            0x4000_0000,
            1 << 39,
            u64::MAX - 16,
        ],
        rng,
    );
    base.wrapping_add(rng.below(0x3000) & !pick(&[0u64, 3, 7], rng))
}

fn count(rng: &mut Rng) -> u64 {
    pick(
        &[0, 1, 3, 4, 64, 4096, 65536, 1 << 20, 1 << 33, rng.next()],
        rng,
    )
}

fn command(rng: &mut Rng) -> [u8; vela_hw::cmd::SIZE] {
    match rng.below(8) {
        0 => encode::nop(rng.below(2) == 0),
        1 => encode::fence(address(rng), rng.next(), rng.below(2) == 0),
        2 => encode::copy(address(rng), address(rng), count(rng)),
        3 => encode::fill(address(rng), count(rng) & !3, rng.next() as u32),
        4 => {
            let k = Kernel::from_raw(rng.below(12) as u32).unwrap_or(Kernel::SumF32);
            let small = |rng: &mut Rng| pick(&[0u32, 1, 2, 7, 64, 1000, rng.next() as u32], rng);
            let args = KernelArgs {
                a: address(rng),
                b: address(rng),
                c: address(rng),
                dst: address(rng),
                count: small(rng),
                n: small(rng),
                k: small(rng),
                param: rng.next() as u32,
            };
            encode::kernel(k, &args)
        }
        _ => {
            // Random bytes, sometimes with a valid opcode to get past decode.
            let mut c = [0u8; vela_hw::cmd::SIZE];
            for b in c.iter_mut() {
                *b = rng.next() as u8;
            }
            if rng.below(2) == 0 {
                c[0] = pick(
                    &[
                        (Opcode::Nop as u8),
                        (Opcode::Fence as u8),
                        (Opcode::Copy as u8),
                        (Opcode::Fill as u8),
                        (Opcode::Kernel as u8),
                    ],
                    rng,
                );
                c[1] &= 1;
                c[2] = 0;
                c[3] = 0;
            }
            c
        }
    }
}

fn register(rng: &mut Rng) -> u32 {
    let q = rng.below(5) as u32;
    let c = rng.below(17) as u32;
    pick(
        &[
            rng.below(0x200) as u32 & !3,
            regs::QUEUE_BASE + regs::QUEUE_STRIDE * q + (rng.below(0x40) as u32 & !3),
            regs::CTX_BASE + regs::CTX_STRIDE * c + (rng.below(0x20) as u32 & !3),
            regs::MSIX_TABLE + (rng.below(0x100) as u32 & !3),
            part::reg(rng.below(9) as usize, rng.below(0x40) as u32 & !3),
            rng.below(0x1_0000) as u32 & !3,
        ],
        rng,
    )
}

fn action(rng: &mut Rng, r: &Rig) {
    let dev = &r.dev;
    match rng.below(22) {
        0..=7 => {
            let q = rng.below(4) as usize;
            let n = 1 + rng.below(4) as usize;
            let cmds: Vec<_> = (0..n).map(|_| command(rng)).collect();
            let _ = r.submit(q, &cmds);
        }
        8..=10 => {
            let reg = register(rng);
            // Resets and FLR are rarer than other writes, but happen.
            if reg == regs::DEVICE_CONTROL && rng.below(4) != 0 {
                return;
            }
            r.w(reg, rng.next() as u32);
        }
        11 => {
            let _ = r.r(register(rng));
        }
        12 => {
            let len = pick(&[1usize, 2, 3, 4, 8], rng);
            let off = rng.below(0x1_0010);
            let mut buf = vec![0u8; len];
            let region = pick(
                &[
                    VFIO_PCI_BAR0_REGION_INDEX,
                    VFIO_PCI_BAR2_REGION_INDEX,
                    VFIO_PCI_BAR4_REGION_INDEX,
                    5,
                    9,
                ],
                rng,
            );
            let off = if region == VFIO_PCI_BAR4_REGION_INDEX {
                off * 8
            } else {
                off
            };
            let _ = dev.region_read(region, off, &mut buf);
            let _ = dev.region_write(region, off, &buf);
        }
        13 => {
            // Config writes, sparing the command register most of the time
            // so that DMA keeps happening.
            let off = pick(
                &[0x04, 0x10, 0x18, 0x1c, 0x48, 0x82, rng.below(0x1010)],
                rng,
            );
            if off == 0x04 && rng.below(4) != 0 {
                return;
            }
            let v = (rng.next() as u32).to_le_bytes();
            let len = pick(&[1usize, 2, 4], rng);
            let _ = dev.region_write(VFIO_PCI_CONFIG_REGION_INDEX, off, &v[..len]);
        }
        14 => {
            let q = rng.below(4) as usize;
            let ring = pick(
                &[
                    vram_dpa(rng.below(VRAM) & !63),
                    RAM_BASE,
                    0x1234_0000,
                    rng.next(),
                ],
                rng,
            );
            r.setup_queue(q, ring, rng.below(18) as u32, rng.below(16) as usize);
        }
        15 => {
            // Page tables: random entries in a table area of VRAM, and a context on it.
            let entry = rng.next() & (Pte::ADDR_MASK | 0x1f) | pick(&[0u64, 1 << 4, 0], rng);
            let _ = r.dpa_write(
                vram_dpa((0x8_0000 + rng.below(3 * 4096)) & !7),
                &entry.to_le_bytes(),
            );
            let c = rng.below(16) as usize;
            r.cw(
                c,
                ctx::PT_BASE_LO,
                0x8_0000 + pick(&[0u32, 0x1000, 0x2000], rng),
            );
            r.cw(c, ctx::PT_BASE_HI, 0x8000_0000);
            r.cw(c, ctx::CONTROL, rng.below(8) as u32);
        }
        16 => {
            let knob = pick(
                &[
                    Knob::Hang(Engine::Copy),
                    Knob::Hang(Engine::Compute),
                    Knob::Unhang,
                    Knob::FailDma(2),
                    Knob::DropIrq(2),
                    Knob::CorruptFence(1),
                    Knob::MmuFault(1),
                    Knob::Clear,
                ],
                rng,
            );
            dev.inject.apply(knob);
        }
        17 => {
            for q in 0..4 {
                if rng.below(2) == 0 {
                    r.qw(
                        q,
                        queue::CONTROL,
                        regs::QControl::RESET.mask32() | regs::QControl::ENABLE.mask32(),
                    );
                }
            }
            for c in 0..16 {
                r.cw(
                    c,
                    ctx::CONTROL,
                    regs::CtxControl::FAULT_CLEAR.mask32() | (rng.below(2) as u32),
                );
            }
        }
        18 => {
            let addr = pick(&[RAM_BASE, 0x2000_0000, rng.next()], rng);
            let size = pick(&[0u64, 4096, 1 << 20, u64::MAX], rng);
            dev.dma_unmap(addr, size);
            let _ = dev.dma_map(addr, size, None, 0, true);
        }
        19 => partition(rng, r),
        20 => {
            // A guest at work in its window: any register, rings and all.
            let p = rng.below(4);
            let off = p * vela_hw::pci::WINDOW_SIZE + u64::from(register(rng));
            if off % vela_hw::pci::WINDOW_SIZE == u64::from(regs::DEVICE_CONTROL)
                && rng.below(4) != 0
            {
                return;
            }
            let v = (rng.next() as u32).to_le_bytes();
            let _ = dev.region_write(VFIO_PCI_BAR4_REGION_INDEX, off, &v);
        }
        _ => {
            if rng.below(8) == 0 {
                r.w(regs::DEVICE_CONTROL, regs::DeviceControl::RESET.mask32());
            }
        }
    }
}

/// The host provisioning, resetting, scrubbing or answering one of four partitions, with
/// mostly plausible values so that windows open and their queues run.
fn partition(rng: &mut Rng, r: &Rig) {
    let p = rng.below(4) as usize;
    let w = |off, v| r.w(part::reg(p, off), v);
    match rng.below(4) {
        0 => {
            let mib = 1u64 << 20;
            let base = pick(&[0, 2 * mib, 4 * mib, rng.below(VRAM)], rng);
            let size = pick(&[2 * mib, 4 * mib, rng.next()], rng);
            let table = pick(&[vram_dpa(VRAM - 8192), RAM_BASE, rng.next()], rng);
            w(part::CONTROL, 0);
            for (off, v) in [
                (part::VRAM_BASE_LO, base),
                (part::VRAM_SIZE_LO, size),
                (part::IOVA_TABLE_LO, table),
            ] {
                w(off, v as u32);
                w(off + 4, (v >> 32) as u32);
            }
            w(part::QUEUES, rng.below(16) as u32);
            w(part::CONTEXTS, rng.next() as u32);
            w(part::IOVA_PAGES, rng.below(64) as u32);
            w(part::QUANTUM, rng.below(3) as u32);
            w(part::CONTROL, 1);
        }
        1 => w(part::CONTROL, rng.below(16) as u32),
        2 => w(part::PAGE_RESP, rng.below(4) as u32),
        _ => {
            let entry = rng.next() & !(0xfff << 52) | pick(&[RAM_BASE | 7, 0], rng);
            let _ = r.dpa_write(
                vram_dpa(VRAM - 8192 + rng.below(64) * 8),
                &entry.to_le_bytes(),
            );
        }
    }
}

#[test]
fn random_streams_neither_panic_nor_hang() {
    let budget = Duration::from_secs(4);
    let start = Instant::now();
    let mut seed = 0x5eed_0001u64;
    let mut slowest = Duration::ZERO;
    let mut rounds = 0;
    let (mut completed, mut errors, mut faults, mut opened) = (0, 0, 0, 0);
    while start.elapsed() < budget {
        let fabric = Fabric::new();
        let opts = DeviceOptions {
            vram_size: VRAM,
            serial: 1,
            queues: 4,
            ..Default::default()
        };
        let a = Rig::on_fabric(opts.clone(), &fabric, 0x80_0000_0000).unwrap();
        let b = Rig::on_fabric(opts, &fabric, BAR2_PEER).unwrap();
        for (q, ring) in [
            (0, vram_dpa(0)),
            (1, vram_dpa(0x1000)),
            (2, RAM_BASE),
            (3, RAM_BASE + 0x1000),
        ] {
            a.setup_queue(q, ring, 3, q);
            b.setup_queue(q, ring, 3, q);
        }
        let mut rng = Rng(seed);
        for _ in 0..200 {
            let r = if rng.below(4) == 0 { &b } else { &a };
            action(&mut rng, r);
            let t = Instant::now();
            r.dev.run_until_idle();
            opened += (0..4)
                .filter(|&p| r.r(part::reg(p, part::STATUS)) & 1 != 0)
                .count();
            slowest = slowest.max(t.elapsed());
            if start.elapsed() > budget {
                break;
            }
        }
        for r in [&a, &b] {
            completed += r.dev.counter(Counter::CommandsCompleted);
            errors += r.dev.counter(Counter::QueueErrors);
            faults += r.dev.counter(Counter::MmuFaults);
        }
        seed = seed.wrapping_add(0x9e37_79b9);
        rounds += 1;
    }
    eprintln!(
        "{rounds} rounds: {completed} commands completed, {errors} queue errors, {faults} faults, \
         {opened} partition-steps enabled"
    );
    assert!(rounds > 0);
    assert!(
        completed > 0 && errors > 0 && opened > 0,
        "the stream must exercise both paths, and partitions"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "one drain took {slowest:?} (seed {seed:#x})"
    );
}
