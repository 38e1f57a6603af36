// SPDX-License-Identifier: GPL-2.0

//! The test importer module (`tools/testing/importer/vela_test_importer.h`): a kernel-side
//! dma-buf importer that attaches statically (pinning) or dynamically (counting
//! invalidations), and maps buffers into the kernel with `dma_buf_vmap()`.

use std::{
    fs::{File, OpenOptions},
    io,
    os::fd::{AsFd, AsRawFd},
};

pub const NODE: &str = "/dev/vela_test_importer";

/// How a slot attaches the module's device to the dma-buf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// No attachment: the slot only holds the dma-buf (for vmap).
    None,
    /// `dma_buf_attach()`: the exporter pins the buffer when it is mapped.
    Static,
    /// `dma_buf_dynamic_attach()` with an `invalidate_mappings` that unmaps at once.
    Dynamic,
}

#[repr(C)]
#[derive(Default)]
struct VtiOpen {
    fd: i32,
    flags: u32,
    slot: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct VtiMap {
    slot: u32,
    pad: u32,
    bytes: u64,
    nents: u64,
}

#[repr(C)]
#[derive(Default)]
struct VtiSlot {
    slot: u32,
    pad: u32,
}

/// What a slot holds (`struct vti_status`).
#[repr(C)]
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    slot: u32,
    pub mapped: u32,
    pub invalidations: u64,
    pub vmapped: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct VtiRw {
    slot: u32,
    flags: u32,
    offset: u64,
    len: u64,
    ptr: u64,
}

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'v' as u32) << 8) | nr
}
const W: u32 = 1;
const RW: u32 = 3;
const OPEN: u32 = ioc(RW, 0x40, std::mem::size_of::<VtiOpen>());
const CLOSE: u32 = ioc(W, 0x41, std::mem::size_of::<VtiSlot>());
const MAP: u32 = ioc(RW, 0x42, std::mem::size_of::<VtiMap>());
const UNMAP: u32 = ioc(W, 0x43, std::mem::size_of::<VtiSlot>());
const STATUS: u32 = ioc(RW, 0x44, std::mem::size_of::<Status>());
const VMAP: u32 = ioc(W, 0x45, std::mem::size_of::<VtiSlot>());
const VUNMAP: u32 = ioc(W, 0x46, std::mem::size_of::<VtiSlot>());
const RWIO: u32 = ioc(W, 0x47, std::mem::size_of::<VtiRw>());
const RW_WRITE: u32 = 1;

// The C header's sizes.
const _: () = assert!(std::mem::size_of::<VtiOpen>() == 16);
const _: () = assert!(std::mem::size_of::<VtiMap>() == 24);
const _: () = assert!(std::mem::size_of::<Status>() == 24);
const _: () = assert!(std::mem::size_of::<VtiRw>() == 32);

/// An open file of the test importer; its slots go when it is dropped.
pub struct Importer(File);

/// One dma-buf the importer holds.
#[derive(Clone, Copy, Debug)]
pub struct Slot(u32);

/// The error keeps its raw errno (tests compare it); `what` goes to stderr for the log.
fn ioctl<T>(f: &File, request: u32, arg: &mut T, what: &str) -> io::Result<()> {
    // SAFETY: every caller passes the request number whose argument type is `T`.
    unsafe { vela_uapi::ioctl(f, request, arg) }.inspect_err(|e| eprintln!("# {what}: {e}"))
}

impl Importer {
    pub fn open() -> io::Result<Self> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(NODE)
            .map(Self)
            .map_err(|e| io::Error::new(e.kind(), format!("{NODE}: {e}")))
    }

    /// Takes a reference to `dmabuf` and attaches as `how` says.
    pub fn import(&self, dmabuf: &impl AsFd, how: Attach) -> io::Result<Slot> {
        let flags = match how {
            Attach::None => 0,
            Attach::Static => 1,
            Attach::Dynamic => 2,
        };
        let mut a = VtiOpen {
            fd: dmabuf.as_fd().as_raw_fd(),
            flags,
            ..Default::default()
        };
        ioctl(&self.0, OPEN, &mut a, &format!("VTI_IOC_OPEN({how:?})"))?;
        Ok(Slot(a.slot))
    }

    /// Maps the attachment; returns the mapping's total DMA length.
    pub fn map(&self, s: Slot) -> io::Result<u64> {
        let mut a = VtiMap {
            slot: s.0,
            ..Default::default()
        };
        ioctl(&self.0, MAP, &mut a, "VTI_IOC_MAP")?;
        Ok(a.bytes)
    }

    fn slot_op(&self, s: Slot, request: u32, what: &str) -> io::Result<()> {
        let mut a = VtiSlot { slot: s.0, pad: 0 };
        ioctl(&self.0, request, &mut a, what)
    }

    pub fn unmap(&self, s: Slot) -> io::Result<()> {
        self.slot_op(s, UNMAP, "VTI_IOC_UNMAP")
    }

    /// Unmaps, detaches and drops the dma-buf reference.
    pub fn close(&self, s: Slot) -> io::Result<()> {
        self.slot_op(s, CLOSE, "VTI_IOC_CLOSE")
    }

    /// `dma_buf_vmap()`, held until [`Importer::vunmap`] or close.
    pub fn vmap(&self, s: Slot) -> io::Result<()> {
        self.slot_op(s, VMAP, "VTI_IOC_VMAP")
    }

    pub fn vunmap(&self, s: Slot) -> io::Result<()> {
        self.slot_op(s, VUNMAP, "VTI_IOC_VUNMAP")
    }

    pub fn status(&self, s: Slot) -> io::Result<Status> {
        let mut a = Status {
            slot: s.0,
            ..Default::default()
        };
        ioctl(&self.0, STATUS, &mut a, "VTI_IOC_STATUS")?;
        Ok(a)
    }

    /// Reads `len` bytes at `offset` through the held kernel mapping.
    pub fn read(&self, s: Slot, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        let mut a = VtiRw {
            slot: s.0,
            flags: 0,
            offset,
            len: len as u64,
            ptr: out.as_mut_ptr() as u64,
        };
        ioctl(&self.0, RWIO, &mut a, "VTI_IOC_RW(read)")?;
        Ok(out)
    }

    /// Writes `data` at `offset` through the held kernel mapping.
    pub fn write(&self, s: Slot, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut a = VtiRw {
            slot: s.0,
            flags: RW_WRITE,
            offset,
            len: data.len() as u64,
            ptr: data.as_ptr() as u64,
        };
        ioctl(&self.0, RWIO, &mut a, "VTI_IOC_RW(write)")
    }
}
