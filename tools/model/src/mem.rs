// SPDX-License-Identifier: GPL-2.0
//! Memory the device can reach: its own VRAM and the host's system memory.
//!
//! VRAM is a memfd so the client can map BAR2 straight into the guest; the
//! model maps the same fd, so guest CPU stores and engine DMA see one memory.
//! System memory arrives as memfd-backed DMA mappings from the client; each is
//! mapped once and looked up by bus address.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::{Arc, RwLock};

use vm_memory::mmap::MmapRegion;
use vm_memory::{FileOffset, VolatileMemory, VolatileSlice};

#[derive(Debug)]
pub enum MemError {
    Memfd(std::io::Error),
    Mmap(String),
    BadMapping { addr: u64, size: u64 },
    OutOfRange { offset: u64, len: u64 },
}

impl std::fmt::Display for MemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memfd(e) => write!(f, "cannot create VRAM memfd: {e}"),
            Self::Mmap(e) => write!(f, "cannot map memory: {e}"),
            Self::BadMapping { addr, size } => {
                write!(
                    f,
                    "DMA mapping {addr:#x}+{size:#x} has no usable fd or size"
                )
            }
            Self::OutOfRange { offset, len } => {
                write!(f, "access {offset:#x}+{len:#x} is outside the region")
            }
        }
    }
}

impl std::error::Error for MemError {}

/// One contiguous piece of mapped memory: VRAM or a DMA mapping.
pub type Backing = Arc<MmapRegion<()>>;

/// Borrow `len` bytes at `offset` of a backing as a volatile slice.
pub fn slice(
    backing: &MmapRegion<()>,
    offset: u64,
    len: usize,
) -> Result<VolatileSlice<'_>, MemError> {
    let err = MemError::OutOfRange {
        offset,
        len: len as u64,
    };
    let off = usize::try_from(offset).map_err(|_| MemError::OutOfRange {
        offset,
        len: len as u64,
    })?;
    backing.get_slice(off, len).map_err(|_| err)
}

/// A memfd of `size` bytes: what VRAM is, and what a VMM shares guest RAM as.
pub fn memfd(size: u64) -> Result<File, MemError> {
    let name = c"vela-memory";
    // SAFETY: `name` is a valid NUL-terminated string and memfd_create
    // takes no other pointers; the result is checked before use.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(MemError::Memfd(std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a fresh descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size).map_err(MemError::Memfd)?;
    Ok(file)
}

/// Device-local memory behind BAR2.
pub struct Vram {
    region: Backing,
    size: u64,
}

impl Vram {
    pub fn new(size: u64) -> Result<Self, MemError> {
        let file = memfd(size)?;
        let len = usize::try_from(size).map_err(|_| MemError::OutOfRange {
            offset: 0,
            len: size,
        })?;
        let region = MmapRegion::from_file(FileOffset::new(file, 0), len)
            .map_err(|e| MemError::Mmap(e.to_string()))?;
        Ok(Self {
            region: Arc::new(region),
            size,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The memfd the client maps as BAR2.
    pub fn fd(&self) -> Option<RawFd> {
        self.region.file_offset().map(|f| f.file().as_raw_fd())
    }

    pub fn backing(&self) -> &Backing {
        &self.region
    }

    pub fn read(&self, offset: u64, data: &mut [u8]) -> Result<(), MemError> {
        slice(&self.region, offset, data.len())?.copy_to(data);
        Ok(())
    }

    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), MemError> {
        slice(&self.region, offset, data.len())?.copy_from(data);
        Ok(())
    }
}

/// One DMA mapping of system memory handed over by the client.
#[derive(Clone)]
pub struct DmaMapping {
    pub addr: u64,
    pub size: u64,
    pub backing: Backing,
    /// The client allowed device writes (DMA_MAP WRITE flag).
    pub writable: bool,
}

/// The host's DMA mappings for one device, keyed by bus address.
///
/// Readers take a snapshot (an `Arc`), so an engine in the middle of a
/// command keeps its mappings alive even if the client unmaps them.
#[derive(Default)]
pub struct SysMem {
    maps: RwLock<Arc<Vec<DmaMapping>>>,
}

pub type SysMemSnapshot = Arc<Vec<DmaMapping>>;

impl SysMem {
    /// Map `size` bytes of `file` at `file_offset` as bus range `addr`. A
    /// read-only mapping is mapped read-only, so device writes to it are
    /// refused rather than faulting the model.
    pub fn map(
        &self,
        addr: u64,
        size: u64,
        file: File,
        file_offset: u64,
        writable: bool,
    ) -> Result<(), MemError> {
        let len = usize::try_from(size).map_err(|_| MemError::BadMapping { addr, size })?;
        if len == 0 || addr.checked_add(size).is_none() {
            return Err(MemError::BadMapping { addr, size });
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let fo = Some(FileOffset::new(file, file_offset));
        let region = MmapRegion::build(fo, len, prot, libc::MAP_SHARED)
            .map_err(|e| MemError::Mmap(e.to_string()))?;
        let mapping = DmaMapping {
            addr,
            size,
            backing: Arc::new(region),
            writable,
        };
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<DmaMapping> = maps
            .iter()
            .filter(|m| !overlaps(m.addr, m.size, addr, size))
            .cloned()
            .collect();
        next.push(mapping);
        next.sort_by_key(|m| m.addr);
        *maps = Arc::new(next);
        Ok(())
    }

    pub fn unmap(&self, addr: u64, size: u64) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        let next: Vec<DmaMapping> = maps
            .iter()
            .filter(|m| !overlaps(m.addr, m.size, addr, size))
            .cloned()
            .collect();
        *maps = Arc::new(next);
    }

    pub fn unmap_all(&self) {
        *self.maps.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Vec::new());
    }

    pub fn snapshot(&self) -> SysMemSnapshot {
        self.maps.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Find the mapping holding `addr`, and the offset of `addr` in it.
pub fn lookup(maps: &[DmaMapping], addr: u64) -> Option<(&DmaMapping, u64)> {
    let idx = maps.partition_point(|m| m.addr <= addr).checked_sub(1)?;
    let m = &maps[idx];
    let off = addr - m.addr;
    (off < m.size).then_some((m, off))
}

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest_ram(size: u64) -> File {
        memfd(size).unwrap()
    }

    #[test]
    fn vram_read_write() {
        let v = Vram::new(1 << 20).unwrap();
        v.write(4096, b"hello").unwrap();
        let mut b = [0; 5];
        v.read(4096, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        assert!(v.read((1 << 20) - 2, &mut b).is_err());
        assert!(v.write(u64::MAX, &b).is_err());
    }

    #[test]
    fn sysmem_lookup_and_unmap() {
        let s = SysMem::default();
        s.map(0x10_0000, 0x10_0000, guest_ram(0x20_0000), 0x10_0000, true)
            .unwrap();
        let snap = s.snapshot();
        assert!(lookup(&snap, 0xf_ffff).is_none());
        let (m, off) = lookup(&snap, 0x10_0010).unwrap();
        assert_eq!((off, m.size - off), (0x10, 0xf_fff0));
        assert!(lookup(&snap, 0x20_0000).is_none());
        s.unmap(0x10_0000, 0x10_0000);
        assert!(lookup(&s.snapshot(), 0x10_0010).is_none());
        assert!(
            lookup(&snap, 0x10_0010).is_some(),
            "old snapshots stay valid"
        );
        assert!(s.map(0, 0, guest_ram(4096), 0, true).is_err());
        s.map(0, 4096, guest_ram(4096), 0, false).unwrap();
        assert!(!lookup(&s.snapshot(), 8).unwrap().0.writable);
        s.unmap_all();
        assert!(lookup(&s.snapshot(), 8).is_none());
    }
}
