// SPDX-License-Identifier: GPL-2.0

//! dma-bufs that do not come from Vela, for import tests and benchmarks: udmabuf (a dma-buf
//! over a sealed memfd) and the system dma-heap, and CPU mappings of either.

use std::{
    ffi::CStr,
    fs::OpenOptions,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    ptr::NonNull,
};

/// `struct udmabuf_create` of <linux/udmabuf.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

const UDMABUF_FLAGS_CLOEXEC: u32 = 0x01;
/// `_IOW('u', 0x42, struct udmabuf_create)`.
const UDMABUF_CREATE: u32 = (1 << 30) | (24 << 16) | ((b'u' as u32) << 8) | 0x42;

/// `struct dma_heap_allocation_data` of <linux/dma-heap.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct DmaHeapAllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}

/// `_IOWR('H', 0x0, struct dma_heap_allocation_data)`.
const DMA_HEAP_IOCTL_ALLOC: u32 = (3 << 30) | (24 << 16) | ((b'H' as u32) << 8);

/// `struct dma_buf_sync` of <linux/dma-buf.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct DmaBufSync {
    flags: u64,
}

/// `_IOW('b', 0, struct dma_buf_sync)`.
const DMA_BUF_IOCTL_SYNC: u32 = (1 << 30) | (8 << 16) | ((b'b' as u32) << 8);
pub const DMA_BUF_SYNC_READ: u64 = 1;
pub const DMA_BUF_SYNC_WRITE: u64 = 2;
pub const DMA_BUF_SYNC_RW: u64 = 3;
pub const DMA_BUF_SYNC_START: u64 = 0;
pub const DMA_BUF_SYNC_END: u64 = 4;

fn ioctl<T>(fd: &impl AsRawFd, request: u32, arg: &mut T, what: &str) -> io::Result<()> {
    // SAFETY: every caller passes the request number whose argument type is `T`.
    unsafe { vela_uapi::ioctl(fd, request, arg) }.map_err(|e| context(e, what))
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn last_error(what: &str) -> io::Error {
    context(io::Error::last_os_error(), what)
}

/// DMA_BUF_IOCTL_SYNC on a dma-buf fd: `flags` is START or END with READ, WRITE or RW.
pub fn sync(dmabuf: &impl AsRawFd, flags: u64) -> io::Result<()> {
    let mut a = DmaBufSync { flags };
    ioctl(
        dmabuf,
        DMA_BUF_IOCTL_SYNC,
        &mut a,
        &format!("DMA_BUF_IOCTL_SYNC(flags={flags:#x})"),
    )
}

/// A udmabuf: a memfd sealed against shrinking, and the dma-buf over its first `size` bytes.
pub struct Udmabuf {
    pub memfd: OwnedFd,
    pub dmabuf: OwnedFd,
    pub size: u64,
}

impl Udmabuf {
    /// memfd_create(MFD_ALLOW_SEALING), ftruncate, F_ADD_SEALS(F_SEAL_SHRINK), then
    /// UDMABUF_CREATE on /dev/udmabuf. `size` must be a multiple of the page size.
    pub fn new(size: u64) -> io::Result<Self> {
        let name: &CStr = c"vela-udmabuf";
        // SAFETY: `name` is a NUL-terminated string; the call only creates a new fd.
        let fd = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(last_error("memfd_create(MFD_ALLOW_SEALING)"));
        }
        // SAFETY: memfd_create just returned this fd and nothing else owns it.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = libc::off_t::try_from(size)
            .map_err(|_| io::Error::other(format!("udmabuf size {size:#x} too large")))?;
        // SAFETY: plain syscalls on the memfd we own.
        if unsafe { libc::ftruncate(memfd.as_raw_fd(), len) } != 0 {
            return Err(last_error(&format!("ftruncate(memfd, {size:#x})")));
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } != 0 {
            return Err(last_error("fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK)"));
        }
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/udmabuf")
            .map_err(|e| context(e, "open /dev/udmabuf"))?;
        let mut a = UdmabufCreate {
            memfd: memfd.as_raw_fd() as u32,
            flags: UDMABUF_FLAGS_CLOEXEC,
            offset: 0,
            size,
        };
        // UDMABUF_CREATE returns the new dma-buf fd as the ioctl's return value, which
        // `vela_uapi::ioctl` does not pass on: issue it directly.
        // SAFETY: UDMABUF_CREATE takes a `struct udmabuf_create`, which `UdmabufCreate` mirrors.
        let r = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                UDMABUF_CREATE as libc::c_ulong,
                &mut a as *mut UdmabufCreate,
            )
        };
        if r < 0 {
            return Err(last_error(&format!(
                "UDMABUF_CREATE(size={size:#x}) on /dev/udmabuf"
            )));
        }
        // SAFETY: the kernel just installed fd `r` for us.
        let dmabuf = unsafe { OwnedFd::from_raw_fd(r) };
        Ok(Self {
            memfd,
            dmabuf,
            size,
        })
    }
}

/// Allocates `len` bytes from the dma-heap `heap` (`/dev/dma_heap/NAME`), read-write and
/// close-on-exec.
pub fn heap_alloc(heap: &str, len: u64) -> io::Result<OwnedFd> {
    let path = format!("/dev/dma_heap/{heap}");
    let dev = OpenOptions::new()
        .read(true)
        .open(&path)
        .map_err(|e| context(e, &format!("open {path}")))?;
    let mut a = DmaHeapAllocationData {
        len,
        fd: 0,
        fd_flags: (libc::O_RDWR | libc::O_CLOEXEC) as u32,
        heap_flags: 0,
    };
    ioctl(
        &dev,
        DMA_HEAP_IOCTL_ALLOC,
        &mut a,
        &format!("DMA_HEAP_IOCTL_ALLOC(len={len:#x}) on {path}"),
    )?;
    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(a.fd as i32) })
}

/// A new read-write shared mapping of the first `len` bytes of `fd`; the caller unmaps it.
pub fn map_shared(fd: impl AsFd, len: usize) -> io::Result<NonNull<u8>> {
    map_shared_at(fd.as_fd().as_raw_fd(), len, 0)
        .map_err(|e| io::Error::new(e.kind(), format!("mmap of {len} bytes: {e}")))
}

/// A new read-write shared mapping of `len` bytes of the file `fd` names, at `offset`; the
/// caller unmaps it. `fd` is raw so that a fuzzer may pass one that is not open.
pub fn map_shared_at(fd: i32, len: usize, offset: u64) -> io::Result<NonNull<u8>> {
    let off =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a new shared mapping chosen by the kernel; nothing of ours is replaced. A bad
    // fd or offset makes the call fail, nothing else.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            off,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// A shared read-write mapping of the first `len` bytes of a file (a memfd or a dma-buf);
/// unmapped on drop. Accesses are copies through raw pointers: a device may write the memory
/// behind the compiler's back.
pub struct FdMap {
    ptr: NonNull<u8>,
    len: usize,
}

impl FdMap {
    pub fn new(fd: impl AsFd, len: usize) -> io::Result<Self> {
        Ok(Self {
            ptr: map_shared(fd, len)?,
            len,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, n: usize) -> io::Result<()> {
        if offset.checked_add(n).is_none_or(|e| e > self.len) {
            return Err(io::Error::other(format!(
                "{n} bytes at {offset:#x} do not fit a mapping of {} bytes",
                self.len
            )));
        }
        Ok(())
    }

    pub fn write(&self, offset: usize, src: &[u8]) -> io::Result<()> {
        self.check(offset, src.len())?;
        // SAFETY: in bounds (checked); `src` is ordinary memory that cannot overlap the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len())
        };
        Ok(())
    }

    pub fn read_vec(&self, offset: usize, n: usize) -> io::Result<Vec<u8>> {
        self.check(offset, n)?;
        let mut v = vec![0u8; n];
        // SAFETY: as in `write`, the other way round.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), v.as_mut_ptr(), n) };
        Ok(v)
    }
}

impl Drop for FdMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
