// SPDX-License-Identifier: GPL-2.0
//! One Vela function: config space, BAR0 registers, BAR2 VRAM, DMA mappings.
//!
//! Every entry point here is reachable from the client (and so from the
//! guest), so nothing panics on bad input: out-of-range or malformed accesses
//! are logged and answered as hardware would (reads of zero, dropped writes)
//! or returned as errors to the transport.

use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use vfio_bindings::bindings::vfio::{
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_BAR4_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX,
};

use crate::config::ConfigSpace;
use crate::fabric::{Fabric, Port};
use crate::inject::Injection;
use crate::mem::{MemError, SysMem, Vram};
use crate::mmu::Fault;
use crate::partition::{PageRequest, Partition, Tenant};
use vela_hw::regs::{self, Counter, QueueError};

/// What a device is built from: one `--device` (or the top-level options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceOptions {
    pub vram_size: u64,
    pub serial: u32,
    pub queues: u32,
    /// Engines: each runs one command at a time, of any kind, so commands of different
    /// queues run in parallel on as many engines (`TOPOLOGY.ENGINES`).
    pub engines: u32,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            vram_size: 256 << 20,
            serial: 1,
            queues: 4,
            engines: 2,
        }
    }
}

#[derive(Debug)]
pub enum DeviceError {
    BadOptions(String),
    Mem(MemError),
    BadRegion {
        region: u32,
        offset: u64,
        len: usize,
    },
    BadIrqs(String),
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadOptions(m) => write!(f, "invalid device options: {m}"),
            Self::BadIrqs(m) => write!(f, "unsupported MSI-X SET_IRQS: {m}"),
            Self::Mem(e) => write!(f, "{e}"),
            Self::BadRegion {
                region,
                offset,
                len,
            } => {
                write!(
                    f,
                    "access of {len} bytes at {offset:#x} in region {region} is invalid"
                )
            }
        }
    }
}

impl std::error::Error for DeviceError {}

impl From<MemError> for DeviceError {
    fn from(e: MemError) -> Self {
        Self::Mem(e)
    }
}

impl From<DeviceError> for std::io::Error {
    fn from(e: DeviceError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    }
}

/// One queue's registers and progress.
#[derive(Clone, Debug, Default)]
pub struct QueueState {
    pub ring_base: u64,
    pub ring_log2: u32,
    pub context: usize,
    pub enabled: bool,
    pub head: u32,
    pub tail: u32,
    pub completed: u32,
    pub error: QueueError,
    pub error_addr: u64,
    /// Where SIGNAL writes: a DPA, never translated.
    pub fence_base: u64,
    /// A command of this queue is executing.
    pub busy: bool,
    /// Bumped by every reset, so a command that was executing when its queue
    /// was reset cannot report completion into the new incarnation.
    pub generation: u64,
    /// The command at HEAD stalled on a page request and waits for the host's answer.
    pub stall: Option<PageRequest>,
}

impl QueueState {
    pub fn slots(&self) -> u32 {
        1 << self.ring_log2.min(regs::queue::RING_LOG2_MAX)
    }

    pub(crate) fn ring_valid(&self) -> bool {
        (regs::queue::RING_LOG2_MIN..=regs::queue::RING_LOG2_MAX).contains(&self.ring_log2)
            && self.ring_base & (regs::queue::RING_ALIGN - 1) == 0
            && self.tail < self.slots()
            && self.head < self.slots()
    }

    pub(crate) fn reset(&mut self) {
        *self = Self {
            ring_base: self.ring_base,
            ring_log2: self.ring_log2,
            context: self.context,
            fence_base: self.fence_base,
            generation: self.generation.wrapping_add(1),
            ..Self::default()
        };
    }

    /// Every register to its reset value, as a global reset leaves it.
    pub(crate) fn reset_all(&mut self) {
        self.reset();
        self.ring_base = 0;
        self.ring_log2 = 0;
        self.context = 0;
        self.fence_base = 0;
    }
}

/// One MMU context's registers and fault record.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContextState {
    pub pt_base: u64,
    pub enabled: bool,
    pub fault_status: u32,
    pub fault_addr: u64,
}

impl ContextState {
    pub fn faulted(&self) -> bool {
        self.fault_status & regs::CtxFaultStatus::VALID.mask32() != 0
    }
}

/// Register state behind the device lock.
pub struct State {
    pub config: ConfigSpace,
    pub scratch: u32,
    /// MSI-X vector N signals by writing to `vectors[N]` (an eventfd from SET_IRQS).
    pub vectors: Vec<Option<File>>,
    pub queues: Vec<QueueState>,
    pub contexts: [ContextState; regs::NUM_CONTEXTS],
    pub int_status: u32,
    pub int_mask: u32,
    pub counters: [u64; regs::NUM_COUNTERS],
    /// High halves latched by reads of COUNTER_LO.
    pub counter_latch: [u32; regs::NUM_COUNTERS],
    /// MSI-X table: address lo, address hi, data, vector control.
    pub msix_table: Vec<[u32; 4]>,
    /// A doorbell or recovery happened since the engine last looked.
    pub kick: bool,
    pub sched: Sched,
    pub pf_quantum: u32,
    pub partitions: [Partition; regs::NUM_PARTITIONS],
}

/// Where the scheduler is in its round-robin of tenants, and of each tenant's queues.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sched {
    /// The tenant whose turn it is (`Tenant::index`).
    pub turn: usize,
    /// Engine time the tenant used in this turn, in nanoseconds.
    pub used_ns: u64,
    /// Per tenant: the queue to look at first next time.
    pub next_queue: [usize; Tenant::COUNT],
}

impl State {
    fn new(opts: &DeviceOptions) -> Self {
        let vectors = opts.queues as usize + 1;
        Self {
            config: ConfigSpace::new(opts.vram_size, vectors as u16),
            scratch: 0,
            vectors: (0..vectors).map(|_| None).collect(),
            queues: vec![QueueState::default(); opts.queues as usize],
            contexts: [ContextState::default(); regs::NUM_CONTEXTS],
            int_status: 0,
            int_mask: regs::INT_MASK_RESET,
            counters: [0; regs::NUM_COUNTERS],
            counter_latch: [0; regs::NUM_COUNTERS],
            msix_table: vec![[0, 0, 0, 1]; vectors],
            kick: false,
            sched: Sched::default(),
            pf_quantum: 0,
            partitions: [Partition::default(); regs::NUM_PARTITIONS],
        }
    }

    pub fn count(&mut self, c: Counter, n: u64) {
        let v = &mut self.counters[c as usize];
        *v = v.wrapping_add(n);
    }

    /// Interrupt sources the PF's INT_STATUS implements: a queue a partition owns reports
    /// in the partition's window instead.
    pub fn valid_sources(&self) -> u32 {
        let queues = (1u32 << self.queues.len()) - 1;
        let owned = self
            .partitions
            .iter()
            .filter(|p| p.enabled)
            .fold(0, |m, p| m | p.queues);
        (queues & !owned) | (regs::IntSources::VALID & !regs::IntSources::QUEUES.mask32())
    }
}

pub struct Device {
    pub opts: DeviceOptions,
    pub vram: Vram,
    pub sysmem: SysMem,
    pub inject: Injection,
    pub fabric: Arc<Fabric>,
    pub port: Arc<Port>,
    state: Mutex<State>,
    pub(crate) work: Condvar,
    /// Signalled whenever a command finishes, for `quiesce`.
    pub(crate) idle: Condvar,
    pub(crate) stop: AtomicBool,
}

impl Device {
    /// A device on a fabric of its own.
    pub fn new(opts: DeviceOptions) -> Result<Arc<Self>, DeviceError> {
        Self::on_fabric(opts, &Fabric::new())
    }

    /// A device that can reach, and be reached by, the other devices on `fabric`.
    pub fn on_fabric(opts: DeviceOptions, fabric: &Arc<Fabric>) -> Result<Arc<Self>, DeviceError> {
        if !opts.vram_size.is_power_of_two() || opts.vram_size < (1 << 20) {
            return Err(DeviceError::BadOptions(format!(
                "VRAM size {:#x} must be a power of two of at least 1 MiB",
                opts.vram_size
            )));
        }
        if opts.engines == 0 || opts.engines > regs::MAX_ENGINES {
            return Err(DeviceError::BadOptions(format!(
                "engine count {} must be 1..={}",
                opts.engines,
                regs::MAX_ENGINES
            )));
        }
        if opts.queues == 0 || opts.queues as usize > regs::MAX_QUEUES {
            return Err(DeviceError::BadOptions(format!(
                "queue count {} must be 1..={}",
                opts.queues,
                regs::MAX_QUEUES
            )));
        }
        let vram = Vram::new(opts.vram_size)?;
        let port = fabric.attach(vram.backing().clone(), opts.vram_size);
        Ok(Arc::new(Self {
            state: Mutex::new(State::new(&opts)),
            opts,
            vram,
            sysmem: SysMem::default(),
            inject: Injection::default(),
            fabric: fabric.clone(),
            port,
            work: Condvar::new(),
            idle: Condvar::new(),
            stop: AtomicBool::new(false),
        }))
    }

    pub fn msix_vectors(&self) -> u32 {
        self.opts.queues + 1
    }

    /// The lock is never held across a panic in model code, but a poisoned
    /// lock must not take the device down either: keep serving.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn region_read(
        &self,
        region: u32,
        offset: u64,
        data: &mut [u8],
    ) -> Result<(), DeviceError> {
        let len = data.len();
        let bad = || DeviceError::BadRegion {
            region,
            offset,
            len,
        };
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                self.lock().config.read(offset, data).map_err(|_| bad())
            }
            // A 64-bit access is two 32-bit ones, low dword first.
            VFIO_PCI_BAR0_REGION_INDEX if len == 8 && offset & 7 == 0 => {
                let (lo, hi) = data.split_at_mut(4);
                self.region_read(region, offset, lo)?;
                self.region_read(region, offset + 4, hi)
            }
            VFIO_PCI_BAR0_REGION_INDEX => {
                let (reg, len) = bar0_access(offset, len).ok_or_else(bad)?;
                let v = self.bar0_read(reg);
                let shift = (offset % 4) * 8;
                data.copy_from_slice(&(v >> shift).to_le_bytes()[..len]);
                Ok(())
            }
            VFIO_PCI_BAR2_REGION_INDEX => self.vram.read(offset, data).map_err(|_| bad()),
            VFIO_PCI_BAR4_REGION_INDEX if len == 8 && offset & 7 == 0 => {
                let (lo, hi) = data.split_at_mut(4);
                self.region_read(region, offset, lo)?;
                self.region_read(region, offset + 4, hi)
            }
            VFIO_PCI_BAR4_REGION_INDEX => {
                let (p, reg, len) = bar4_access(offset, len).ok_or_else(bad)?;
                let v = self.window_read(p, reg);
                let shift = (offset % 4) * 8;
                data.copy_from_slice(&(v >> shift).to_le_bytes()[..len]);
                Ok(())
            }
            _ => Err(bad()),
        }
    }

    pub fn region_write(&self, region: u32, offset: u64, data: &[u8]) -> Result<(), DeviceError> {
        let bad = || DeviceError::BadRegion {
            region,
            offset,
            len: data.len(),
        };
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                let mut st = self.lock();
                let effect = st.config.write(offset, data).map_err(|_| bad())?;
                if effect.flr {
                    let mut st = self.quiesce(st, |_| true);
                    self.function_reset_locked(&mut st);
                } else if effect.bars_changed {
                    self.port.set_bar2(st.config.bar2());
                }
                Ok(())
            }
            VFIO_PCI_BAR0_REGION_INDEX if data.len() == 8 && offset & 7 == 0 => {
                self.region_write(region, offset, &data[..4])?;
                self.region_write(region, offset + 4, &data[4..])
            }
            VFIO_PCI_BAR0_REGION_INDEX => {
                let (reg, _) = bar0_access(offset, data.len()).ok_or_else(bad)?;
                let (value, mask) = byte_enable(offset, data);
                self.bar0_write(reg, value, mask);
                Ok(())
            }
            VFIO_PCI_BAR2_REGION_INDEX => self.vram.write(offset, data).map_err(|_| bad()),
            VFIO_PCI_BAR4_REGION_INDEX if data.len() == 8 && offset & 7 == 0 => {
                self.region_write(region, offset, &data[..4])?;
                self.region_write(region, offset + 4, &data[4..])
            }
            VFIO_PCI_BAR4_REGION_INDEX => {
                let (p, reg, _) = bar4_access(offset, data.len()).ok_or_else(bad)?;
                let (value, mask) = byte_enable(offset, data);
                self.window_write(p, reg, value, mask);
                Ok(())
            }
            _ => Err(bad()),
        }
    }

    /// Global reset (DEVICE_CONTROL.RESET): BAR0 state to reset values; VRAM
    /// keeps its contents, config space and counters are untouched.
    pub fn reset(&self) {
        let mut st = self.quiesce(self.lock(), |_| true);
        self.reset_locked(&mut st);
    }

    /// Function level reset (FLR, or the client's DEVICE_RESET): the global
    /// reset plus config space, counters and the MSI-X table.
    pub fn function_reset(&self) {
        let mut st = self.quiesce(self.lock(), |_| true);
        self.function_reset_locked(&mut st);
    }

    /// Wait until no command of the selected queues is executing, so that a
    /// reset of them is complete when it returns: nothing it aborted writes
    /// memory afterwards. The engine never starts a command while the lock
    /// is held, and a hung engine has none in flight, so this ends.
    pub(crate) fn quiesce<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        selected: impl Fn(usize) -> bool,
    ) -> MutexGuard<'a, State> {
        while st
            .queues
            .iter()
            .enumerate()
            .any(|(i, q)| q.busy && selected(i))
        {
            st = match self.idle.wait(st) {
                Ok(g) => g,
                Err(e) => e.into_inner(),
            };
        }
        st
    }

    fn function_reset_locked(&self, st: &mut State) {
        st.config.reset();
        self.port.set_bar2(None);
        st.counters = [0; regs::NUM_COUNTERS];
        st.msix_table.iter_mut().for_each(|e| *e = [0, 0, 0, 1]);
        self.reset_locked(st);
    }

    pub(crate) fn reset_locked(&self, st: &mut State) {
        for q in &mut st.queues {
            q.reset_all();
        }
        // Every partition is disabled and forgets its configuration: after a global reset
        // the host provisions from scratch, and no queue keeps a tenant's addresses.
        st.partitions = [Partition::default(); regs::NUM_PARTITIONS];
        st.pf_quantum = 0;
        st.contexts = [ContextState::default(); regs::NUM_CONTEXTS];
        st.int_status = 0;
        st.int_mask = regs::INT_MASK_RESET;
        st.scratch = 0;
        st.kick = false;
        st.sched = Sched::default();
        self.inject.unhang();
        st.count(Counter::Resets, 1);
    }

    pub(crate) fn queue_error(&self, st: &mut State, q: usize, code: QueueError, addr: u64) {
        let queue = &mut st.queues[q];
        queue.error = code;
        queue.error_addr = addr;
        queue.busy = false;
        queue.stall = None;
        self.withdraw_request(st, q);
        log::debug!("queue {q}: error {code:?} at {addr:#x}");
        st.count(Counter::QueueErrors, 1);
        let owner = st.queue_owner(q);
        self.raise_for(st, owner, regs::IntSources::QUEUE_ERROR.mask32());
    }

    pub(crate) fn record_fault(&self, st: &mut State, context: usize, queue: usize, f: Fault) {
        // A partition's fault record names its queue by the partition's own number.
        let local = st.local_queue(queue);
        let c = &mut st.contexts[context];
        if c.faulted() {
            c.fault_status |= regs::CtxFaultStatus::OVERFLOW.mask32();
        } else {
            c.fault_status = regs::CtxFaultStatus::VALID.mask32()
                | if f.write {
                    regs::CtxFaultStatus::WRITE.mask32()
                } else {
                    0
                }
                | (f.reason as u32) << regs::CtxFaultStatus::REASON.lo
                | u32::from(f.level) << regs::CtxFaultStatus::LEVEL.lo
                | (local as u32 & 0xf) << regs::CtxFaultStatus::QUEUE.lo;
            c.fault_addr = f.va;
        }
        log::debug!("context {context}: fault {f:?} from queue {queue}");
        st.count(Counter::MmuFaults, 1);
        let owner = st.context_owner(context);
        self.raise_for(st, owner, regs::IntSources::MMU_FAULT.mask32());
    }

    /// Raise `sources` (in the tenant's own numbering) where the tenant sees them: the PF's
    /// INT_STATUS, or a partition's window.
    pub(crate) fn raise_for(&self, st: &mut State, tenant: Tenant, sources: u32) {
        match tenant {
            Tenant::Pf => self.raise(st, sources),
            Tenant::Part(p) => self.raise_in_partition(st, p, sources),
        }
    }

    /// Wake the engine: new work, or work that may have become runnable.
    pub(crate) fn kick(&self, st: &mut State) {
        st.kick = true;
        self.work.notify_all();
    }

    /// Wake the engine from outside (the control socket unhung an engine).
    pub fn wake(&self) {
        let mut st = self.lock();
        self.kick(&mut st);
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.lock().counters[c as usize]
    }

    pub fn dma_map(
        &self,
        addr: u64,
        size: u64,
        fd: Option<File>,
        offset: u64,
        writable: bool,
    ) -> Result<(), DeviceError> {
        match fd {
            // A mapping the model cannot use is memory the device cannot
            // reach (its DMA there fails), not a reason to fail the client.
            Some(file) => {
                if let Err(e) = self.sysmem.map(addr, size, file, offset, writable) {
                    log::warn!("DMA map {addr:#x}+{size:#x}: {e}; the device cannot reach it");
                }
                Ok(())
            }
            // Without an fd the client would expect DMA_READ/DMA_WRITE
            // messages, which the transport cannot send: such memory is unreachable.
            None => {
                log::debug!(
                    "DMA map {addr:#x}+{size:#x} without an fd: not reachable by the device"
                );
                Ok(())
            }
        }
    }

    pub fn dma_unmap(&self, addr: u64, size: u64) {
        self.sysmem.unmap(addr, size);
    }
}

/// An access's bytes as a 32-bit value and byte mask in place: narrow writes merge into the
/// current value, as a byte-enable would.
fn byte_enable(offset: u64, data: &[u8]) -> (u32, u32) {
    let len = data.len();
    let shift = (offset % 4) * 8;
    let mut bytes = [0u8; 4];
    bytes[..len].copy_from_slice(data);
    let value = u32::from_le_bytes(bytes) << shift;
    let mask = if len == 4 {
        u32::MAX
    } else {
        ((1u32 << (len * 8)) - 1) << shift
    };
    (value, mask)
}

/// Split a BAR4 access into its window, the register in it and the length: each window is
/// decoded as BAR0 is.
fn bar4_access(offset: u64, len: usize) -> Option<(usize, u32, usize)> {
    if offset >= vela_hw::pci::BAR4_SIZE {
        return None;
    }
    let window = (offset / vela_hw::pci::WINDOW_SIZE) as usize;
    let (reg, len) = bar0_access(offset % vela_hw::pci::WINDOW_SIZE, len)?;
    Some((window, reg, len))
}

/// Split a BAR0 access into its aligned register and length. Accesses must be
/// 1, 2 or 4 bytes and must not cross a register boundary.
fn bar0_access(offset: u64, len: usize) -> Option<(u32, usize)> {
    if offset >= vela_hw::pci::BAR0_SIZE
        || !matches!(len, 1 | 2 | 4)
        || (offset % 4) as usize + len > 4
    {
        return None;
    }
    Some(((offset & !3) as u32, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn dev() -> Arc<Device> {
        Device::new(DeviceOptions::default()).unwrap()
    }

    fn rd(d: &Device, region: u32, off: u64) -> u32 {
        let mut b = [0; 4];
        d.region_read(region, off, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    fn wr(d: &Device, region: u32, off: u64, v: u32) {
        d.region_write(region, off, &v.to_le_bytes()).unwrap();
    }

    #[test]
    fn identity_registers() {
        let d = Device::new(DeviceOptions {
            vram_size: 8 << 30,
            serial: 42,
            queues: 3,
            ..Default::default()
        })
        .unwrap();
        let bar0 = VFIO_PCI_BAR0_REGION_INDEX;
        assert_eq!(rd(&d, bar0, 0x00), 0x414c_4556);
        assert_eq!(rd(&d, bar0, 0x04), 0x0001_0000);
        assert_eq!(rd(&d, bar0, 0x08), 0x3f);
        assert_eq!(rd(&d, bar0, 0x24), 8, "TOPOLOGY3: 8 partition slots");
        assert_eq!(rd(&d, bar0, 0x0c), 42);
        assert_eq!(rd(&d, bar0, 0x10), 0);
        assert_eq!(rd(&d, bar0, 0x14), 2);
        assert_eq!(rd(&d, bar0, 0x18), 0x0203);
        assert_eq!(rd(&d, bar0, 0x1c), 0);
    }

    #[test]
    fn scratch_read_write_and_narrow_access() {
        let d = dev();
        let bar0 = VFIO_PCI_BAR0_REGION_INDEX;
        wr(&d, bar0, 0x1c, 0xdead_beef);
        assert_eq!(rd(&d, bar0, 0x1c), 0xdead_beef);
        d.region_write(bar0, 0x1d, &[0x11]).unwrap();
        assert_eq!(rd(&d, bar0, 0x1c), 0xdead_11ef);
        let mut two = [0; 2];
        d.region_read(bar0, 0x1e, &mut two).unwrap();
        assert_eq!(u16::from_le_bytes(two), 0xdead);
        wr(&d, bar0, 0x00, 0);
        assert_eq!(rd(&d, bar0, 0x00), 0x414c_4556, "ID is read-only");
        d.reset();
        assert_eq!(rd(&d, bar0, 0x1c), 0);
    }

    #[test]
    fn bad_bar0_accesses_are_errors_not_panics() {
        let d = dev();
        let bar0 = VFIO_PCI_BAR0_REGION_INDEX;
        let mut b = [0; 8];
        assert!(
            d.region_read(bar0, 4, &mut b).is_err(),
            "unaligned 64-bit access"
        );
        assert!(d.region_read(bar0, 0, &mut b[..3]).is_err());
        assert!(
            d.region_read(bar0, 0, &mut b[..]).is_ok(),
            "aligned 64-bit access splits"
        );
        assert_eq!(&b[..4], b"VELA");
        assert!(d.region_read(bar0, 0x1_0000, &mut b[..4]).is_err());
        assert!(d.region_read(bar0, 0x3, &mut b[..2]).is_err());
        assert!(d.region_write(bar0, u64::MAX, &b[..4]).is_err());
        assert!(d.region_read(5, 0, &mut b[..4]).is_err());
    }

    #[test]
    fn config_space_bar_sizing_through_the_region() {
        let d = dev();
        let cfg = VFIO_PCI_CONFIG_REGION_INDEX;
        assert_eq!(rd(&d, cfg, 0), 0x0001_1f5a);
        wr(&d, cfg, 0x18, !0);
        wr(&d, cfg, 0x1c, !0);
        assert_eq!(rd(&d, cfg, 0x18), 0xf000_000c);
        assert_eq!(rd(&d, cfg, 0x1c), 0xffff_ffff);
        wr(&d, cfg, 0x10, !0);
        assert_eq!(rd(&d, cfg, 0x10), 0xffff_0000);
    }

    #[test]
    fn vram_through_the_region() {
        let d = dev();
        let bar2 = VFIO_PCI_BAR2_REGION_INDEX;
        wr(&d, bar2, 0x10_0000, 0x1234_5678);
        assert_eq!(rd(&d, bar2, 0x10_0000), 0x1234_5678);
        let mut b = [0; 4];
        d.vram.read(0x10_0000, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(b), 0x1234_5678);
        assert!(d.region_read(bar2, 256 << 20, &mut b).is_err());
    }

    #[test]
    fn partition_windows_through_bar4() {
        let d = dev();
        let (bar0, bar4) = (VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR4_REGION_INDEX);
        let window = vela_hw::pci::WINDOW_SIZE;
        assert_eq!(rd(&d, bar4, window), 0, "a closed window reads 0");
        let part1 = |off| u64::from(regs::part::reg(1, off));
        wr(&d, bar0, part1(regs::part::VRAM_BASE_LO), 4 << 20);
        wr(&d, bar0, part1(regs::part::VRAM_SIZE_LO), 2 << 20);
        wr(&d, bar0, part1(regs::part::QUEUES), 0b1000);
        wr(&d, bar0, part1(regs::part::CONTROL), 1);
        assert_eq!(
            rd(&d, bar0, part1(regs::part::STATUS)),
            1,
            "enabled, no error"
        );
        assert_eq!(rd(&d, bar4, window), regs::ID_VALUE, "window 1 at 64 KiB");
        assert_eq!(rd(&d, bar4, 0), 0, "window 0 stays closed");
        assert_eq!(rd(&d, bar4, window + 0x10), 2 << 20);
        let mut b = [0; 8];
        d.region_read(bar4, window + 0x08, &mut b).unwrap();
        assert_eq!(
            u64::from_le_bytes(b),
            1 << 32 | 0x47,
            "CAPS, then DEVICE_SERIAL"
        );
        wr(&d, bar4, window + 0x1c, 0x1234_5678);
        d.region_write(bar4, window + 0x1d, &[0xab]).unwrap();
        assert_eq!(
            rd(&d, bar4, window + 0x1c),
            0x1234_ab78,
            "narrow writes merge"
        );
        assert_eq!(rd(&d, bar0, 0x1c), 0, "the window's SCRATCH is its own");
        assert!(d
            .region_read(bar4, vela_hw::pci::BAR4_SIZE, &mut b[..4])
            .is_err());
        assert!(d.region_read(bar4, window + 2, &mut b[..4]).is_err());
    }

    #[test]
    fn flr_resets_registers() {
        let d = dev();
        wr(&d, VFIO_PCI_BAR0_REGION_INDEX, 0x1c, 7);
        wr(&d, VFIO_PCI_CONFIG_REGION_INDEX, 0x04, 0x6);
        d.region_write(VFIO_PCI_CONFIG_REGION_INDEX, 0x48, &0x8000u16.to_le_bytes())
            .unwrap();
        assert_eq!(rd(&d, VFIO_PCI_BAR0_REGION_INDEX, 0x1c), 0);
        assert_eq!(rd(&d, VFIO_PCI_CONFIG_REGION_INDEX, 0x04) & 0xffff, 0);
    }

    #[test]
    fn rejects_bad_options() {
        assert!(Device::new(DeviceOptions {
            vram_size: 3 << 20,
            ..Default::default()
        })
        .is_err());
        assert!(Device::new(DeviceOptions {
            queues: 0,
            ..Default::default()
        })
        .is_err());
        assert!(Device::new(DeviceOptions {
            queues: 17,
            ..Default::default()
        })
        .is_err());
        for engines in [0, regs::MAX_ENGINES + 1] {
            assert!(Device::new(DeviceOptions {
                engines,
                ..Default::default()
            })
            .is_err());
        }
    }
}
