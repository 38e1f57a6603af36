// SPDX-License-Identifier: GPL-2.0

//! VFIO plumbing for the tests that drive mediated devices as a VMM would: mdev types and
//! instances in sysfs, the legacy group and container path, the vfio cdev with iommufd, and
//! the device file's regions, interrupts and mappings. Raw ioctls on the uAPI of
//! `include/uapi/linux/vfio.h` and `iommufd.h`.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::fs::FileExt,
    },
    path::{Path, PathBuf},
};

const fn vfio_io(n: u64) -> u64 {
    ((b';' as u64) << 8) | (100 + n)
}
pub const VFIO_GET_API_VERSION: u64 = vfio_io(0);
pub const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
pub const VFIO_SET_IOMMU: u64 = vfio_io(2);
pub const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
pub const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
pub const VFIO_GROUP_UNSET_CONTAINER: u64 = vfio_io(5);
pub const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
pub const VFIO_DEVICE_GET_INFO: u64 = vfio_io(7);
pub const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
pub const VFIO_DEVICE_GET_IRQ_INFO: u64 = vfio_io(9);
pub const VFIO_DEVICE_SET_IRQS: u64 = vfio_io(10);
pub const VFIO_DEVICE_RESET: u64 = vfio_io(11);
pub const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
pub const VFIO_IOMMU_UNMAP_DMA: u64 = vfio_io(14);
pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = vfio_io(18);
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = vfio_io(19);
/// `_IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC)`.
pub const IOMMU_IOAS_ALLOC: u64 = ((b';' as u64) << 8) | 0x81;
/// `_IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP)`.
pub const IOMMU_IOAS_MAP: u64 = ((b';' as u64) << 8) | 0x85;
/// `_IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP)`.
pub const IOMMU_IOAS_UNMAP: u64 = ((b';' as u64) << 8) | 0x86;

pub const VFIO_API_VERSION: i32 = 0;
pub const VFIO_TYPE1V2_IOMMU: u64 = 3;
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1;

pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
pub const REGION_READ: u32 = 1 << 0;
pub const REGION_WRITE: u32 = 1 << 1;
pub const REGION_MMAP: u32 = 1 << 2;
pub const IRQ_INFO_EVENTFD: u32 = 1 << 0;
pub const IRQ_SET_DATA_NONE: u32 = 1 << 0;
pub const IRQ_SET_DATA_BOOL: u32 = 1 << 1;
pub const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
pub const IRQ_SET_ACTION_MASK: u32 = 1 << 3;
pub const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;

pub const BAR0: u32 = 0;
pub const BAR1: u32 = 1;
pub const BAR2: u32 = 2;
pub const CONFIG: u32 = 7;
pub const NUM_REGIONS: u32 = 9;
pub const INTX_IRQ: u32 = 0;
pub const MSIX_IRQ: u32 = 2;
pub const REQ_IRQ: u32 = 4;
pub const NUM_IRQS: u32 = 5;

/// An ioctl whose argument is the struct at `arg`; the returned value, or the errno.
///
/// # Safety
///
/// `arg` must be what `req` expects on `fd` (a pointer to a large enough struct, or an
/// integer).
pub unsafe fn ioctl(fd: RawFd, req: u64, arg: usize) -> io::Result<i32> {
    // SAFETY: The caller vouches for `arg`.
    let r = unsafe { libc::ioctl(fd, req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An ioctl on a buffer of u32 words (the VFIO structs are all u32s, bar the data that
/// follows some).
pub fn ioctl_words(fd: RawFd, req: u64, words: &mut [u32]) -> io::Result<i32> {
    // SAFETY: `words` is a valid buffer as large as the struct the caller built for `req`.
    unsafe { ioctl(fd, req, words.as_mut_ptr() as usize) }
}

fn read_trim(p: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(p)?.trim().to_string())
}

/// A fresh random UUID, as text.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    if let Ok(f) = File::open("/dev/urandom") {
        let _ = f.read_at(&mut b, 0);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A type directory of an mdev parent (`.../mdev_supported_types/vela-half`).
#[derive(Clone, Debug)]
pub struct MdevType {
    pub dir: PathBuf,
}

impl MdevType {
    pub fn of(parent_sysfs: &Path, name: &str) -> Self {
        Self {
            dir: parent_sysfs.join("mdev_supported_types").join(name),
        }
    }

    pub fn attr(&self, name: &str) -> io::Result<String> {
        read_trim(&self.dir.join(name))
    }

    pub fn available(&self) -> io::Result<u64> {
        self.attr("available_instances")?
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e}")))
    }

    /// Creates an instance with a new UUID.
    pub fn create(&self) -> io::Result<Mdev> {
        let uuid = new_uuid();
        fs::write(self.dir.join("create"), &uuid)?;
        Ok(Mdev { uuid })
    }
}

/// An mdev instance.
#[derive(Clone, Debug)]
pub struct Mdev {
    pub uuid: String,
}

impl Mdev {
    pub fn sysfs(&self) -> PathBuf {
        Path::new("/sys/bus/mdev/devices").join(&self.uuid)
    }

    pub fn exists(&self) -> bool {
        self.sysfs().exists()
    }

    /// Writes its `remove` file (blocks until the instance is gone).
    pub fn remove(&self) -> io::Result<()> {
        fs::write(self.sysfs().join("remove"), "1")
    }

    /// Its IOMMU group number (`/dev/vfio/N`).
    pub fn group(&self) -> io::Result<u32> {
        let link = fs::read_link(self.sysfs().join("iommu_group"))?;
        link.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no group number"))
    }

    /// Its vfio cdev (`/dev/vfio/devices/vfioN`).
    pub fn cdev(&self) -> io::Result<PathBuf> {
        let e = fs::read_dir(self.sysfs().join("vfio-dev"))?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no vfio-dev"))??;
        Ok(Path::new("/dev/vfio/devices").join(e.file_name()))
    }
}

fn open_rw(p: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(p)
}

/// A device opened through the legacy path: group, container (type 1 v2), device fd. Field
/// order is the close order.
pub struct GroupDevice {
    pub dev: VfioDevice,
    pub group: File,
    pub container: File,
}

impl GroupDevice {
    pub fn open(m: &Mdev) -> io::Result<Self> {
        let container = open_rw(Path::new("/dev/vfio/vfio"))?;
        let cfd = container.as_raw_fd();
        // SAFETY: These ioctls take no pointer.
        let v = unsafe { ioctl(cfd, VFIO_GET_API_VERSION, 0)? };
        if v != VFIO_API_VERSION {
            return Err(io::Error::other(format!("VFIO API version {v}")));
        }
        // SAFETY: As above.
        if unsafe { ioctl(cfd, VFIO_CHECK_EXTENSION, VFIO_TYPE1V2_IOMMU as usize)? } != 1 {
            return Err(io::Error::other("no type 1 v2 IOMMU"));
        }
        let group = open_rw(&Path::new("/dev/vfio").join(m.group()?.to_string()))?;
        let gfd = group.as_raw_fd();
        let mut status = [8u32, 0];
        ioctl_words(gfd, VFIO_GROUP_GET_STATUS, &mut status)?;
        if status[1] & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(io::Error::other("group not viable"));
        }
        let cfd_arg: i32 = cfd;
        // SAFETY: The argument is a pointer to the container's fd.
        unsafe {
            ioctl(
                gfd,
                VFIO_GROUP_SET_CONTAINER,
                &cfd_arg as *const i32 as usize,
            )?
        };
        // SAFETY: The argument is an integer.
        unsafe { ioctl(cfd, VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU as usize)? };
        let name = std::ffi::CString::new(m.uuid.as_str()).map_err(io::Error::other)?;
        // SAFETY: The argument is a NUL-terminated device name.
        let fd = unsafe { ioctl(gfd, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr() as usize)? };
        // SAFETY: A new fd we own.
        let dev = VfioDevice(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Self {
            dev,
            group,
            container,
        })
    }
}

/// Splits a u64 into the two u32 words a VFIO struct holds it in (little-endian).
fn words64(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

impl GroupDevice {
    /// Maps `mem` at `iova` for the device's DMA (VFIO_IOMMU_MAP_DMA), readable, and writable
    /// if `write`.
    pub fn map_dma(&self, mem: &Memory, iova: u64, write: bool) -> io::Result<()> {
        // struct vfio_iommu_type1_dma_map: argsz, flags (READ 1, WRITE 2), vaddr, iova, size.
        let (v, i, n) = (
            words64(mem.ptr as u64),
            words64(iova),
            words64(mem.len as u64),
        );
        let flags = 1 | if write { 2 } else { 0 };
        let mut map = [32u32, flags, v[0], v[1], i[0], i[1], n[0], n[1]];
        ioctl_words(self.container.as_raw_fd(), VFIO_IOMMU_MAP_DMA, &mut map).map(|_| ())
    }

    /// Unmaps `[iova, iova + len)` (VFIO_IOMMU_UNMAP_DMA); returns the bytes unmapped.
    pub fn unmap_dma(&self, iova: u64, len: u64) -> io::Result<u64> {
        // struct vfio_iommu_type1_dma_unmap: argsz, flags, iova, size (out: unmapped).
        let (i, n) = (words64(iova), words64(len));
        let mut unmap = [24u32, 0, i[0], i[1], n[0], n[1]];
        ioctl_words(self.container.as_raw_fd(), VFIO_IOMMU_UNMAP_DMA, &mut unmap)?;
        Ok(u64::from(unmap[4]) | (u64::from(unmap[5]) << 32))
    }
}

/// A device opened through its cdev, bound to an iommufd and attached to a new IOAS. Field
/// order is the close order.
pub struct CdevDevice {
    pub dev: VfioDevice,
    pub iommufd: File,
    pub devid: u32,
    pub ioas: u32,
}

impl CdevDevice {
    pub fn open(m: &Mdev) -> io::Result<Self> {
        let dev = VfioDevice(open_rw(&m.cdev()?)?.into());
        let iommufd = open_rw(Path::new("/dev/iommu"))?;
        // struct vfio_device_bind_iommufd: argsz, flags, iommufd, out_devid, token (u64).
        let mut bind = [24u32, 0, iommufd.as_raw_fd() as u32, 0, 0, 0];
        ioctl_words(dev.fd(), VFIO_DEVICE_BIND_IOMMUFD, &mut bind)?;
        // struct iommu_ioas_alloc: size, flags, out_ioas_id.
        let mut alloc = [12u32, 0, 0];
        ioctl_words(iommufd.as_raw_fd(), IOMMU_IOAS_ALLOC, &mut alloc)?;
        // struct vfio_device_attach_iommufd_pt: argsz, flags, pt_id (pasid unused).
        let mut attach = [12u32, 0, alloc[2], 0];
        ioctl_words(dev.fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach)?;
        Ok(Self {
            dev,
            iommufd,
            devid: bind[3],
            ioas: alloc[2],
        })
    }
}

impl CdevDevice {
    /// Maps `mem` at `iova` in the device's IOAS (IOMMU_IOAS_MAP with a fixed IOVA),
    /// readable, and writable if `write`.
    pub fn map_dma(&self, mem: &Memory, iova: u64, write: bool) -> io::Result<()> {
        // struct iommu_ioas_map: size, flags (FIXED_IOVA 1, WRITEABLE 2, READABLE 4), ioas_id,
        // reserved, user_va, length, iova.
        let (v, n, i) = (
            words64(mem.ptr as u64),
            words64(mem.len as u64),
            words64(iova),
        );
        let flags = 1 | 4 | if write { 2 } else { 0 };
        let mut map = [
            40u32, flags, self.ioas, 0, v[0], v[1], n[0], n[1], i[0], i[1],
        ];
        ioctl_words(self.iommufd.as_raw_fd(), IOMMU_IOAS_MAP, &mut map).map(|_| ())
    }

    /// Unmaps `[iova, iova + len)` from the IOAS (IOMMU_IOAS_UNMAP); returns the bytes
    /// unmapped.
    pub fn unmap_dma(&self, iova: u64, len: u64) -> io::Result<u64> {
        // struct iommu_ioas_unmap: size, ioas_id, iova, length (in/out).
        let (i, n) = (words64(iova), words64(len));
        let mut unmap = [24u32, self.ioas, i[0], i[1], n[0], n[1]];
        ioctl_words(self.iommufd.as_raw_fd(), IOMMU_IOAS_UNMAP, &mut unmap)?;
        Ok(u64::from(unmap[4]) | (u64::from(unmap[5]) << 32))
    }
}

/// Anonymous memory, page aligned, standing for a guest's RAM that a VMM maps for DMA.
pub struct Memory {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Memory {
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: A new private anonymous mapping; no pointer is passed in.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        // SAFETY: Inside the mapping (asserted); the device writes it only while a job runs,
        // and the caller reads or writes it between jobs.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
    }

    pub fn read(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= self.len);
        let mut out = vec![0u8; len];
        // SAFETY: Inside the mapping (asserted).
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), out.as_mut_ptr(), len) };
        out
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: Our mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// What VFIO_DEVICE_GET_REGION_INFO says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub flags: u32,
    pub size: u64,
    pub offset: u64,
}

/// A VFIO device file.
pub struct VfioDevice(pub OwnedFd);

impl VfioDevice {
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn file(&self) -> std::mem::ManuallyDrop<File> {
        // SAFETY: A borrowed view of our fd that is never closed (ManuallyDrop).
        std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(self.fd()) })
    }

    /// (flags, num_regions, num_irqs).
    pub fn info(&self) -> io::Result<(u32, u32, u32)> {
        let mut w = [24u32, 0, 0, 0, 0, 0];
        ioctl_words(self.fd(), VFIO_DEVICE_GET_INFO, &mut w)?;
        Ok((w[1], w[2], w[3]))
    }

    pub fn region(&self, index: u32) -> io::Result<Region> {
        // struct vfio_region_info: argsz, flags, index, cap_offset, size (u64), offset (u64).
        let mut w = [32u32, 0, index, 0, 0, 0, 0, 0];
        ioctl_words(self.fd(), VFIO_DEVICE_GET_REGION_INFO, &mut w)?;
        Ok(Region {
            flags: w[1],
            size: u64::from(w[4]) | (u64::from(w[5]) << 32),
            offset: u64::from(w[6]) | (u64::from(w[7]) << 32),
        })
    }

    /// (flags, count).
    pub fn irq(&self, index: u32) -> io::Result<(u32, u32)> {
        let mut w = [16u32, 0, index, 0];
        ioctl_words(self.fd(), VFIO_DEVICE_GET_IRQ_INFO, &mut w)?;
        Ok((w[1], w[3]))
    }

    /// VFIO_DEVICE_SET_IRQS with `data` after the header (argsz covers it).
    pub fn set_irqs(
        &self,
        flags: u32,
        index: u32,
        start: u32,
        count: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let mut buf = Vec::with_capacity(20 + data.len());
        for v in [(20 + data.len()) as u32, flags, index, start, count] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        buf.extend_from_slice(data);
        // SAFETY: `buf` holds a vfio_irq_set header and its data.
        unsafe { ioctl(self.fd(), VFIO_DEVICE_SET_IRQS, buf.as_mut_ptr() as usize)? };
        Ok(())
    }

    /// Sets eventfds for vectors `start..` of `index` (-1: none).
    pub fn set_eventfds(&self, index: u32, start: u32, fds: &[i32]) -> io::Result<()> {
        let data: Vec<u8> = fds.iter().flat_map(|f| f.to_le_bytes()).collect();
        self.set_irqs(
            IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
            index,
            start,
            fds.len() as u32,
            &data,
        )
    }

    pub fn reset(&self) -> io::Result<()> {
        // SAFETY: No argument.
        unsafe { ioctl(self.fd(), VFIO_DEVICE_RESET, 0)? };
        Ok(())
    }

    pub fn pread(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file().read_at(buf, offset)
    }

    pub fn pwrite(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file().write_at(buf, offset)
    }

    pub fn read32(&self, r: &Region, off: u64) -> io::Result<u32> {
        let mut b = [0u8; 4];
        let n = self.pread(&mut b, r.offset + off)?;
        if n != 4 {
            return Err(io::Error::other(format!("short read: {n}")));
        }
        Ok(u32::from_le_bytes(b))
    }

    pub fn write32(&self, r: &Region, off: u64, v: u32) -> io::Result<()> {
        let n = self.pwrite(&v.to_le_bytes(), r.offset + off)?;
        if n != 4 {
            return Err(io::Error::other(format!("short write: {n}")));
        }
        Ok(())
    }

    /// Maps `len` bytes of region `r` from `off`, shared, read and write.
    pub fn mmap(&self, r: &Region, off: u64, len: usize) -> io::Result<Mapping> {
        // SAFETY: A new shared mapping of our fd; the kernel checks the range.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.fd(),
                (r.offset + off) as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }
}

/// A mapping of a region; unmapped when dropped.
pub struct Mapping {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Mapping {
    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: Inside the mapping (asserted).
            unsafe { self.ptr.add(off + i).write_volatile(*b) };
        }
    }

    pub fn read(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= self.len);
        // SAFETY: Inside the mapping (asserted).
        (0..len)
            .map(|i| unsafe { self.ptr.add(off + i).read_volatile() })
            .collect()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: Our mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// An eventfd.
pub struct EventFd(pub OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: No pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: A new fd we own.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// The counter (0 if nothing was signalled), which reading resets.
    pub fn take(&self) -> u64 {
        let mut v = 0u64;
        // SAFETY: An 8-byte buffer, as eventfd reads require.
        let n = unsafe { libc::read(self.fd(), (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            v
        } else {
            0
        }
    }

    /// Waits up to `ms` for a signal.
    pub fn wait(&self, ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: One valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) == 1 }
    }
}

/// Reads the byte at `off` of `m` in a child process: `Some(signal)` if the read killed it,
/// `None` if it read.
pub fn probe_read(m: &Mapping, off: usize) -> io::Result<Option<i32>> {
    assert!(off < m.len);
    // SAFETY: Inside the mapping (asserted).
    let ptr = unsafe { m.ptr.add(off) };
    // SAFETY: fork() has no memory-safety preconditions; the child only reads and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: The child reads the byte (which may fault) and exits.
        unsafe {
            std::ptr::read_volatile(ptr);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: Waits for our child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if libc::WIFSIGNALED(status) {
        Some(libc::WTERMSIG(status))
    } else {
        None
    })
}
