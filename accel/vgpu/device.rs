// SPDX-License-Identifier: GPL-2.0

//! The VFIO device of a vGPU instance: regions, interrupts, reset and revocation
//! (`Documentation/vgpu.rst`, The VFIO device).
//!
//! Every ioctl and region access is checked in full before anything changes: unknown flags,
//! `argsz`, indexes, offsets, sizes and overflow fail with `EINVAL`. Once the instance is
//! revoked (removed while open, or the device going), everything fails with `ENODEV` and
//! BAR2 mappings fault with `SIGBUS`.

use kernel::{
    eventfd::EventFd,
    mm::virt::{flags as vm_flags, VmaNew},
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{Arc, Mutex},
    uaccess::{UserPtr, UserSlice, UserSliceReader, UserSliceWriter},
    vfio,
};

use super::{bar0::Bar0, config, guest};
use crate::hw::{self, regs::PartitionId};

/// The region index sits above this bit of a device file offset (vfio-pci's layout, which
/// VMMs do not assume: they use `VFIO_DEVICE_GET_REGION_INFO`'s offsets).
const INDEX_SHIFT: u32 = 40;

// `include/uapi/linux/vfio.h`: region and IRQ indexes of a VFIO PCI device.
pub(crate) const BAR0_INDEX: u32 = 0;
pub(crate) const BAR2_INDEX: u32 = 2;
pub(crate) const CONFIG_INDEX: u32 = 7;
pub(crate) const NUM_REGIONS: u32 = 9;
pub(crate) const MSIX_IRQ_INDEX: u32 = 2;
pub(crate) const REQ_IRQ_INDEX: u32 = 4;
pub(crate) const NUM_IRQS: u32 = 5;

const REGION_READ: u32 = 1 << 0;
const REGION_WRITE: u32 = 1 << 1;
const REGION_MMAP: u32 = 1 << 2;
const DEVICE_FLAGS_RESET: u32 = 1 << 0;
const DEVICE_FLAGS_PCI: u32 = 1 << 1;
const IRQ_INFO_EVENTFD: u32 = 1 << 0;
const IRQ_INFO_NORESIZE: u32 = 1 << 3;
const IRQ_SET_DATA_NONE: u32 = 1 << 0;
const IRQ_SET_DATA_BOOL: u32 = 1 << 1;
const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
const IRQ_SET_DATA_MASK: u32 = 0x7;
const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
const IRQ_SET_ACTION_MASK: u32 = 0x38;

// ioctl numbers: `_IO(VFIO_TYPE, VFIO_BASE + n)`, VFIO_TYPE ';', VFIO_BASE 100.
const fn vfio_io(n: u32) -> u32 {
    ((b';' as u32) << 8) | (100 + n)
}
const VFIO_DEVICE_GET_INFO: u32 = vfio_io(7);
const VFIO_DEVICE_GET_IRQ_INFO: u32 = vfio_io(9);
const VFIO_DEVICE_SET_IRQS: u32 = vfio_io(10);
const VFIO_DEVICE_RESET: u32 = vfio_io(11);

/// Accesses to BAR2 go through a bounce buffer of at most this size.
const BOUNCE: usize = 64 << 10;
/// A BAR2 fault maps up to this many bytes ahead, so a linear walk takes few faults.
const FAULT_AHEAD: usize = 64 * PAGE_SIZE;

/// What an instance's VFIO device knows: its slice of the device, and its emulated state.
#[pin_data]
pub(crate) struct VgpuDev {
    chip: Arc<hw::Chip>,
    /// The slice: VRAM offset and size (a power of two, aligned to its size).
    vram_offset: u64,
    vram_size: u64,
    queues: u32,
    /// The hardware partition behind the instance.
    partition: PartitionId,
    /// The guest pages the partition reaches.
    #[pin]
    guest: guest::GuestMemory,
    #[pin]
    state: Mutex<State>,
    /// Set once, when the instance is revoked. The fault handler inserts pages under this
    /// lock, so once revocation set it and zapped, nothing maps the slice again.
    #[pin]
    revoked: Mutex<bool>,
}

struct State {
    config: config::ConfigSpace,
    bar0: Bar0,
    /// One eventfd per MSI-X vector.
    msix: KVec<Option<EventFd>>,
    /// The request eventfd: signalled when the host wants the device back.
    req: Option<EventFd>,
}

pub(crate) type Device = vfio::Device<VgpuDev>;

impl VgpuDev {
    pub(crate) fn new(
        chip: Arc<hw::Chip>,
        vram_offset: u64,
        vram_size: u64,
        queues: u32,
        partition: PartitionId,
        table: Arc<guest::IovaTable>,
    ) -> Result<impl PinInit<Self, Error>> {
        let vectors = queues + 1;
        let mut msix = KVec::with_capacity(vectors as usize, GFP_KERNEL)?;
        for _ in 0..vectors {
            msix.push(None, GFP_KERNEL)?;
        }
        let state = State {
            config: config::ConfigSpace::new(vram_size, u16::try_from(vectors)?)?,
            bar0: Bar0::new(chip.clone(), partition),
            msix,
            req: None,
        };
        Ok(try_pin_init!(Self {
            chip,
            vram_offset,
            vram_size,
            queues,
            partition,
            guest <- guest::GuestMemory::new(table),
            state <- new_mutex!(state),
            revoked <- new_mutex!(false),
        }))
    }

    fn vectors(&self, index: u32) -> u32 {
        match index {
            MSIX_IRQ_INDEX => self.queues + 1,
            REQ_IRQ_INDEX => 1,
            _ => 0,
        }
    }

    fn check_live(&self) -> Result {
        if *self.revoked.lock() {
            return Err(ENODEV);
        }
        Ok(())
    }

    fn region_size(&self, index: u32) -> u64 {
        match index {
            BAR0_INDEX => u64::from(config::BAR0_SIZE),
            BAR2_INDEX => self.vram_size,
            CONFIG_INDEX => config::SIZE as u64,
            _ => 0,
        }
    }

    /// Splits a file offset into a region index and an offset in it, and checks that `len`
    /// bytes from there lie inside the region.
    fn locate(&self, pos: u64, len: usize) -> Result<(u32, u64)> {
        let index = u32::try_from(pos >> INDEX_SHIFT).map_err(|_| EINVAL)?;
        let off = pos & ((1u64 << INDEX_SHIFT) - 1);
        let end = off.checked_add(len as u64).ok_or(EINVAL)?;
        if index >= NUM_REGIONS || end > self.region_size(index) {
            return Err(EINVAL);
        }
        Ok((index, off))
    }

    /// The instance goes: no access, ioctl or fault succeeds any more, its BAR2 mappings are
    /// zapped and the VMM is asked to let go (the request eventfd). Idempotent.
    pub(crate) fn revoke(dev: &Device) {
        *dev.revoked.lock() = true;
        dev.unmap_user_mappings();
        if let Some(req) = &dev.state.lock().req {
            req.signal();
        }
    }

    /// A reset of the instance: config space, the window's registers and interrupt state
    /// back to their reset values; VRAM kept.
    fn reset(&self, st: &mut State) {
        st.config.reset();
        hw::best_effort("resetting a vGPU's partition", st.bar0.reset());
    }

    /// The partition behind the instance.
    pub(crate) fn partition(&self) -> PartitionId {
        self.partition
    }

    /// Serves the partition's page request (from a work item: pinning sleeps).
    pub(crate) fn page_request(dev: &Device, req: hw::partition::PageRequest) {
        dev.guest.page_request(dev, &dev.chip, dev.partition, req);
    }

    /// Relays the partition's vectors that fired (`PART_VEC_PENDING`, bit V = vector V) to
    /// the eventfds the VMM gave for them; a vector with none is dropped, as a message to a
    /// vector a guest has not set up would be.
    pub(crate) fn relay(&self, vectors: u32) {
        let st = self.state.lock();
        for (v, e) in st.msix.iter().enumerate() {
            if vectors & (1 << v) != 0 {
                if let Some(e) = e {
                    e.signal();
                }
            }
        }
    }

    fn read_bar2(&self, off: u64, mut out: UserSliceWriter) -> Result<usize> {
        let count = out.len();
        let mut buf = KVec::<u8>::with_capacity(BOUNCE + 16, GFP_KERNEL)?;
        let mut done = 0usize;
        while done < count {
            let n = (count - done).min(BOUNCE);
            let start = off + done as u64;
            // The core reads whole 64-bit words.
            let a0 = start & !7;
            let a1 = (start + n as u64 + 7) & !7;
            buf.clear();
            buf.resize((a1 - a0) as usize, 0, GFP_KERNEL)?;
            self.chip.vram_read_bytes(self.vram_offset + a0, &mut buf)?;
            let skip = (start - a0) as usize;
            out.write_slice(&buf[skip..skip + n])?;
            done += n;
        }
        Ok(count)
    }

    fn write_bar2(&self, off: u64, mut input: UserSliceReader) -> Result<usize> {
        let count = input.len();
        let mut buf = KVec::<u8>::with_capacity(BOUNCE + 16, GFP_KERNEL)?;
        let mut done = 0usize;
        while done < count {
            let n = (count - done).min(BOUNCE);
            let start = off + done as u64;
            let a0 = start & !7;
            let a1 = (start + n as u64 + 7) & !7;
            buf.clear();
            buf.resize((a1 - a0) as usize, 0, GFP_KERNEL)?;
            let skip = (start - a0) as usize;
            if skip != 0 || (n + skip) % 8 != 0 {
                // Partial words at the ends: read, modify, write.
                self.chip.vram_read_bytes(self.vram_offset + a0, &mut buf)?;
            }
            input.read_slice(&mut buf[skip..skip + n])?;
            self.chip.vram_write_bytes(self.vram_offset + a0, &buf)?;
            done += n;
        }
        Ok(count)
    }

    fn get_info(&self, arg: usize) -> Result<isize> {
        let (mut r, mut w) = UserSlice::new(UserPtr::from_addr(arg), 16).reader_writer();
        let mut b = [0u8; 16];
        r.read_slice(&mut b)?;
        if get32(&b, 0) < 16 {
            return Err(EINVAL);
        }
        put32(&mut b, 4, DEVICE_FLAGS_PCI | DEVICE_FLAGS_RESET);
        put32(&mut b, 8, NUM_REGIONS);
        put32(&mut b, 12, NUM_IRQS);
        w.write_slice(&b)?;
        Ok(0)
    }

    fn get_irq_info(&self, arg: usize) -> Result<isize> {
        let (mut r, mut w) = UserSlice::new(UserPtr::from_addr(arg), 16).reader_writer();
        let mut b = [0u8; 16];
        r.read_slice(&mut b)?;
        let index = get32(&b, 8);
        if get32(&b, 0) < 16 || index >= NUM_IRQS {
            return Err(EINVAL);
        }
        let count = self.vectors(index);
        let flags = match index {
            MSIX_IRQ_INDEX => IRQ_INFO_EVENTFD | IRQ_INFO_NORESIZE,
            REQ_IRQ_INDEX => IRQ_INFO_EVENTFD,
            _ => 0,
        };
        put32(&mut b, 4, flags);
        put32(&mut b, 12, count);
        w.write_slice(&b)?;
        Ok(0)
    }

    fn set_irqs(&self, arg: usize) -> Result<isize> {
        const HDR: usize = 20;
        let mut r = UserSlice::new(UserPtr::from_addr(arg), HDR).reader();
        let mut h = [0u8; HDR];
        r.read_slice(&mut h)?;
        let (argsz, flags, index, start, count) = (
            get32(&h, 0),
            get32(&h, 4),
            get32(&h, 8),
            get32(&h, 12),
            get32(&h, 16),
        );
        let data_type = flags & IRQ_SET_DATA_MASK;
        let action = flags & IRQ_SET_ACTION_MASK;
        if (argsz as usize) < HDR
            || flags & !(IRQ_SET_DATA_MASK | IRQ_SET_ACTION_MASK) != 0
            || !data_type.is_power_of_two()
            || !action.is_power_of_two()
            || index >= NUM_IRQS
        {
            return Err(EINVAL);
        }
        let max = self.vectors(index);
        let end = start.checked_add(count).ok_or(EINVAL)?;
        // Only triggers: the vectors are edge messages, nothing to mask (a VMM masks MSI-X in
        // its emulated table).
        if max == 0 || action != IRQ_SET_ACTION_TRIGGER || end > max {
            return Err(EINVAL);
        }
        if count == 0 && !(data_type == IRQ_SET_DATA_NONE && start == 0) {
            return Err(EINVAL);
        }
        let elem = match data_type {
            IRQ_SET_DATA_NONE => 0,
            IRQ_SET_DATA_BOOL => 1,
            _ => 4,
        };
        let size = elem * count as usize;
        if (argsz as usize) - HDR < size {
            return Err(EINVAL);
        }
        let mut data = KVec::<u8>::with_capacity(size, GFP_KERNEL)?;
        data.resize(size, 0, GFP_KERNEL)?;
        let data_ptr = arg.checked_add(HDR).ok_or(EINVAL)?;
        UserSlice::new(UserPtr::from_addr(data_ptr), size)
            .reader()
            .read_slice(&mut data)?;

        if data_type == IRQ_SET_DATA_EVENTFD {
            // Every fd is looked up before anything changes: one bad fd changes nothing.
            let mut fds = KVec::with_capacity(count as usize, GFP_KERNEL)?;
            for chunk in data.chunks_exact(4) {
                let fd = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                let e = match fd {
                    -1 => None,
                    fd if fd < 0 => return Err(EINVAL),
                    fd => Some(EventFd::from_fd(fd)?),
                };
                fds.push(e, GFP_KERNEL)?;
            }
            let mut st = self.state.lock();
            for (i, e) in (start..end).zip(fds) {
                let slot = match index {
                    MSIX_IRQ_INDEX => st.msix.get_mut(i as usize).ok_or(EINVAL)?,
                    _ => &mut st.req,
                };
                // The old eventfd, if any, is put here.
                *slot = e;
            }
            return Ok(0);
        }

        let mut st = self.state.lock();
        if count == 0 {
            // DATA_NONE with count 0: disable every vector of the index.
            match index {
                MSIX_IRQ_INDEX => st.msix.iter_mut().for_each(|e| *e = None),
                _ => st.req = None,
            }
            return Ok(0);
        }
        for (n, i) in (start..end).enumerate() {
            let fire = data_type == IRQ_SET_DATA_NONE || data.get(n).is_some_and(|&b| b != 0);
            let e = match index {
                MSIX_IRQ_INDEX => st.msix.get(i as usize).and_then(|e| e.as_ref()),
                _ => st.req.as_ref(),
            };
            if let (true, Some(e)) = (fire, e) {
                e.signal();
            }
        }
        Ok(0)
    }
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

impl vfio::Driver for VgpuDev {
    const NAME: &'static CStr = c"vela-vgpu";

    fn open_device(dev: &Device) -> Result {
        dev.check_live()?;
        dev.guest.opened();
        Ok(())
    }

    fn close_device(dev: &Device) {
        // While the VFIO core still lets pages go (the device is open until this returns).
        dev.guest.closing(dev, &dev.chip, dev.partition);
        // The next user starts from a reset device with no eventfds.
        let mut st = dev.state.lock();
        st.msix.iter_mut().for_each(|e| *e = None);
        st.req = None;
        dev.reset(&mut st);
    }

    fn read(dev: &Device, mut buf: UserSliceWriter, pos: u64) -> Result<usize> {
        dev.check_live()?;
        let len = buf.len();
        let (index, off) = dev.locate(pos, len)?;
        match index {
            CONFIG_INDEX => {
                // Up to 4 KiB (a VMM reads the whole space at once): not on the stack.
                let mut out = KVec::<u8>::with_capacity(len, GFP_KERNEL)?;
                out.resize(len, 0, GFP_KERNEL)?;
                dev.state.lock().config.read(off as usize, &mut out)?;
                buf.write_slice(&out)?;
                Ok(len)
            }
            BAR0_INDEX => {
                let reg = Bar0::check(off, len)?;
                let v = dev.state.lock().bar0.read(reg)?;
                buf.write_slice(&v.to_le_bytes())?;
                Ok(4)
            }
            BAR2_INDEX => dev.read_bar2(off, buf),
            _ => Err(EINVAL),
        }
    }

    fn write(dev: &Device, mut buf: UserSliceReader, pos: u64) -> Result<usize> {
        dev.check_live()?;
        let len = buf.len();
        let (index, off) = dev.locate(pos, len)?;
        match index {
            CONFIG_INDEX => {
                let mut b = [0u8; 4];
                let data = b.get_mut(..len).ok_or(EINVAL)?;
                buf.read_slice(data)?;
                let mut st = dev.state.lock();
                if st.config.write(off as usize, data)? == config::Effect::Flr {
                    dev.reset(&mut st);
                }
                Ok(len)
            }
            BAR0_INDEX => {
                let reg = Bar0::check(off, len)?;
                let mut b = [0u8; 4];
                buf.read_slice(&mut b)?;
                dev.state.lock().bar0.write(reg, u32::from_le_bytes(b))?;
                Ok(4)
            }
            BAR2_INDEX => dev.write_bar2(off, buf),
            _ => Err(EINVAL),
        }
    }

    fn ioctl(dev: &Device, cmd: u32, arg: usize) -> Result<isize> {
        dev.check_live()?;
        match cmd {
            VFIO_DEVICE_GET_INFO => dev.get_info(arg),
            VFIO_DEVICE_GET_IRQ_INFO => dev.get_irq_info(arg),
            VFIO_DEVICE_SET_IRQS => dev.set_irqs(arg),
            VFIO_DEVICE_RESET => {
                let mut st = dev.state.lock();
                dev.reset(&mut st);
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn region_info(dev: &Device, index: u32) -> Result<vfio::RegionInfo> {
        dev.check_live()?;
        if index >= NUM_REGIONS {
            return Err(EINVAL);
        }
        let flags = match index {
            BAR0_INDEX | CONFIG_INDEX => REGION_READ | REGION_WRITE,
            BAR2_INDEX => REGION_READ | REGION_WRITE | REGION_MMAP,
            _ => 0,
        };
        Ok(vfio::RegionInfo {
            size: dev.region_size(index),
            offset: u64::from(index) << INDEX_SHIFT,
            flags,
        })
    }

    fn mmap(dev: &Device, vma: &VmaNew) -> Result {
        dev.check_live()?;
        let pos = (vfio::vma_pgoff(vma) as u64)
            .checked_mul(PAGE_SIZE as u64)
            .ok_or(EINVAL)?;
        let len = vma.end() - vma.start();
        // Shared mappings only: a private copy of VRAM means nothing.
        if vma.flags() & vm_flags::SHARED == 0 {
            return Err(EINVAL);
        }
        match dev.locate(pos, len)? {
            (BAR2_INDEX, _) => {
                vma.set_page_prot_wc();
                Ok(())
            }
            _ => Err(EINVAL),
        }
    }

    fn fault(dev: &Device, fault: &vfio::VmFault<'_>) -> Result {
        let addr = fault.address() & !(PAGE_SIZE - 1);
        let (_, vma_end) = fault.vma_range();
        let pos = fault.file_offset(addr).ok_or(EFAULT)?;
        let (index, off) = dev.locate(pos, PAGE_SIZE)?;
        if index != BAR2_INDEX {
            return Err(EFAULT);
        }
        let ahead = (vma_end - addr)
            .min(FAULT_AHEAD)
            .min((dev.vram_size - off) as usize);
        let revoked = dev.revoked.lock();
        if *revoked {
            return Err(ENODEV);
        }
        dev.chip.with_bound_device(|_| {
            for page in 0..ahead / PAGE_SIZE {
                let at = (page * PAGE_SIZE) as u64;
                let pfn =
                    dev.chip.vram_phys(dev.vram_offset + off + at)? >> kernel::page::PAGE_SHIFT;
                // SAFETY: `pfn` is BAR2, device memory, inside this instance's VRAM slice,
                // which userspace owning the instance may access. Every mapping is zapped
                // before the slice goes to anyone else: `revoke` zaps it (and no fault maps
                // it again: they check `revoked` under the lock held here) before the
                // instance's registration is dropped, and the slice is freed only after that
                // (`instance.rs`); a lost or unbinding device revokes every instance
                // through the core's `unmap_cpu` hook, and `with_bound_device` refuses here
                // once unbind began.
                unsafe { fault.insert_pfn(addr + page * PAGE_SIZE, pfn as usize)? };
            }
            Ok(())
        })
    }

    fn request(dev: &Device, _count: u32) {
        if let Some(req) = &dev.state.lock().req {
            req.signal();
        }
    }

    fn dma_unmap(dev: &Device, iova: u64, length: u64) {
        dev.guest.unmap(dev, &dev.chip, dev.partition, iova, length);
    }
}
