// SPDX-License-Identifier: GPL-2.0
//! An in-process driver for the model: register access, queue setup, command
//! encoding and system memory, with no transport in between. The tests, the
//! fuzz loop and the benchmark drive devices through it, the way a kernel
//! driver would through BAR0.

use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;

use vfio_bindings::bindings::vfio::{VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD};
use vm_memory::mmap::MmapRegion;
use vm_memory::FileOffset;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::compute::KernelArgs;
use crate::config::{COMMAND_BUS_MASTER, COMMAND_MEMORY};
use crate::device::{Device, DeviceOptions};
use crate::fabric::Fabric;
use crate::mem;
use vela_hw::regs::{self, queue};
use vela_hw::Kernel;

/// Where the rig's system memory sits on the bus.
pub const RAM_BASE: u64 = 0x1_0000_0000;

/// A device with its config space set up (BARs, bus master, MSI-X),
/// interrupt eventfds installed, and a block of system memory mapped for DMA.
pub struct Rig {
    pub dev: Arc<Device>,
    pub irqs: Vec<EventFd>,
    ram: MmapRegion<()>,
    pub ram_size: u64,
}

#[derive(Debug)]
pub struct RigError(pub String);

impl std::fmt::Display for RigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for RigError {}

fn rig_err(e: impl std::fmt::Display) -> RigError {
    RigError(e.to_string())
}

fn eventfd_file(e: &EventFd) -> Result<File, RigError> {
    let dup = e.try_clone().map_err(rig_err)?;
    // SAFETY: `into_raw_fd` hands over sole ownership of the duplicated descriptor.
    Ok(unsafe { File::from_raw_fd(dup.into_raw_fd()) })
}

impl Rig {
    pub fn new(opts: DeviceOptions) -> Result<Self, RigError> {
        Self::on_fabric(opts, &Fabric::new(), 0xe000_0000)
    }

    /// `bar2` is where the rig places the device's BAR2 on the bus.
    pub fn on_fabric(
        opts: DeviceOptions,
        fabric: &Arc<Fabric>,
        bar2: u64,
    ) -> Result<Self, RigError> {
        let dev = Device::on_fabric(opts, fabric).map_err(rig_err)?;
        let ram_size = 16 << 20;
        // One memfd mapped by the device and by the rig, as QEMU shares guest RAM.
        let file = mem::memfd(ram_size).map_err(rig_err)?;
        let mine = file.try_clone().map_err(rig_err)?;
        dev.dma_map(RAM_BASE, ram_size, Some(file), 0, true)
            .map_err(rig_err)?;
        let ram =
            MmapRegion::from_file(FileOffset::new(mine, 0), ram_size as usize).map_err(rig_err)?;

        let cfg = vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;
        let w32 = |off: u64, v: u32| dev.region_write(cfg, off, &v.to_le_bytes());
        w32(0x10, 0xfe00_0000).map_err(rig_err)?;
        w32(0x18, bar2 as u32).map_err(rig_err)?;
        w32(0x1c, (bar2 >> 32) as u32).map_err(rig_err)?;
        w32(0x04, u32::from(COMMAND_MEMORY | COMMAND_BUS_MASTER)).map_err(rig_err)?;
        dev.region_write(
            cfg,
            vela_hw::pci::CAP_MSIX as u64 + 2,
            &0x8000u16.to_le_bytes(),
        )
        .map_err(rig_err)?;

        let nvec = dev.msix_vectors();
        let irqs: Vec<EventFd> = (0..nvec)
            .map(|_| EventFd::new(EFD_NONBLOCK))
            .collect::<Result<_, _>>()
            .map_err(rig_err)?;
        let files = irqs
            .iter()
            .map(eventfd_file)
            .collect::<Result<Vec<_>, _>>()?;
        dev.set_msix(
            VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            0,
            nvec,
            files,
        )
        .map_err(rig_err)?;
        let rig = Self {
            dev,
            irqs,
            ram,
            ram_size,
        };
        rig.w(regs::INT_MASK, 0);
        Ok(rig)
    }

    pub fn r(&self, reg: u32) -> u32 {
        self.dev.bar0_read(reg)
    }

    pub fn w(&self, reg: u32, v: u32) {
        self.dev.bar0_write(reg, v, u32::MAX);
    }

    pub fn qr(&self, q: usize, off: u32) -> u32 {
        self.r(regs::QUEUE_BASE + regs::QUEUE_STRIDE * q as u32 + off)
    }

    pub fn qw(&self, q: usize, off: u32, v: u32) {
        self.w(regs::QUEUE_BASE + regs::QUEUE_STRIDE * q as u32 + off, v);
    }

    pub fn cr(&self, c: usize, off: u32) -> u32 {
        self.r(regs::CTX_BASE + regs::CTX_STRIDE * c as u32 + off)
    }

    pub fn cw(&self, c: usize, off: u32, v: u32) {
        self.w(regs::CTX_BASE + regs::CTX_STRIDE * c as u32 + off, v);
    }

    /// Interrupts delivered on `vector` since the last call.
    pub fn irq_count(&self, vector: usize) -> u64 {
        self.irqs
            .get(vector)
            .and_then(|e| e.read().ok())
            .unwrap_or(0)
    }

    /// Program queue `q` with a ring at DPA `ring` of `1 << log2` slots, bound
    /// to context `ctx`, and enable it.
    pub fn setup_queue(&self, q: usize, ring: u64, log2: u32, ctx: usize) {
        self.qw(q, queue::CONTROL, regs::QControl::RESET.mask32());
        self.qw(q, queue::RING_BASE_LO, ring as u32);
        self.qw(q, queue::RING_BASE_HI, (ring >> 32) as u32);
        self.qw(q, queue::RING_SIZE, log2);
        self.qw(q, queue::CONTEXT, ctx as u32);
        self.qw(q, queue::CONTROL, regs::QControl::ENABLE.mask32());
    }

    /// Write commands at the queue's tail and ring the doorbell.
    pub fn submit(&self, q: usize, cmds: &[[u8; vela_hw::cmd::SIZE]]) -> Result<(), RigError> {
        let ring = u64::from(self.qr(q, queue::RING_BASE_LO))
            | u64::from(self.qr(q, queue::RING_BASE_HI)) << 32;
        let slots = 1u32 << self.qr(q, queue::RING_SIZE);
        let mut tail = self.qr(q, queue::TAIL);
        for c in cmds {
            self.dpa_write(ring + u64::from(tail) * vela_hw::cmd::SIZE as u64, c)?;
            tail = (tail + 1) % slots;
        }
        self.qw(q, queue::DOORBELL, tail);
        Ok(())
    }

    /// Blocks until queue `q` has executed everything submitted to it (the engines run on
    /// their own threads), without spinning: a waiting core is one an engine could use.
    pub fn wait_idle(&self, q: usize) {
        let mut st = self.dev.lock();
        while {
            let qs = &st.queues[q];
            qs.enabled && qs.error == regs::QueueError::None && (qs.head != qs.tail || qs.busy)
        } {
            st = match self.dev.idle.wait(st) {
                Ok(g) => g,
                Err(e) => e.into_inner(),
            };
        }
    }

    /// Write bytes at a DPA the rig can reach: VRAM or its system memory.
    pub fn dpa_write(&self, addr: u64, data: &[u8]) -> Result<(), RigError> {
        if addr & vela_hw::dpa::VRAM != 0 {
            return self
                .dev
                .vram
                .write(addr & vela_hw::dpa::OFFSET_MASK, data)
                .map_err(rig_err);
        }
        let off = addr
            .checked_sub(RAM_BASE)
            .ok_or_else(|| RigError(format!("{addr:#x} is not rig memory")))?;
        mem::slice(&self.ram, off, data.len())
            .map_err(rig_err)?
            .copy_from(data);
        Ok(())
    }

    pub fn dpa_read(&self, addr: u64, data: &mut [u8]) -> Result<(), RigError> {
        if addr & vela_hw::dpa::VRAM != 0 {
            return self
                .dev
                .vram
                .read(addr & vela_hw::dpa::OFFSET_MASK, data)
                .map_err(rig_err);
        }
        let off = addr
            .checked_sub(RAM_BASE)
            .ok_or_else(|| RigError(format!("{addr:#x} is not rig memory")))?;
        mem::slice(&self.ram, off, data.len())
            .map_err(rig_err)?
            .copy_to(data);
        Ok(())
    }

    pub fn dpa_read_u64(&self, addr: u64) -> Result<u64, RigError> {
        let mut b = [0; 8];
        self.dpa_read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Command encoders: the slots vela-hw's command structs lay out.
pub mod encode {
    use super::*;
    use vela_hw::cmd::{
        Command, CopyCmd, FenceCmd, FillCmd, Header, KernelCmd, NopCmd, SignalCmd, Slot,
    };

    fn with_interrupt(mut slot: Slot, interrupt: bool) -> Slot {
        Header::read(&slot)
            .with_interrupt(interrupt)
            .write(&mut slot);
        slot
    }

    pub fn nop(interrupt: bool) -> Slot {
        with_interrupt(NopCmd::new().to_slot(), interrupt)
    }

    pub fn fence(addr: u64, value: u64, interrupt: bool) -> Slot {
        with_interrupt(FenceCmd::new(addr, value).to_slot(), interrupt)
    }

    /// The driver's completion signal: VALUE to the queue's `Q_FENCE_BASE`.
    pub fn signal(value: u64, interrupt: bool) -> Slot {
        with_interrupt(SignalCmd::new(value).to_slot(), interrupt)
    }

    pub fn copy(src: u64, dst: u64, len: u64) -> Slot {
        CopyCmd::new(src, dst, len).to_slot()
    }

    pub fn fill(dst: u64, len: u64, pattern: u32) -> Slot {
        FillCmd::new(dst, pattern, len).to_slot()
    }

    pub fn kernel(k: Kernel, a: &KernelArgs) -> Slot {
        KernelCmd::new(k.raw(), a).to_slot()
    }
}
