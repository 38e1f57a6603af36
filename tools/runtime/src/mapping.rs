// SPDX-License-Identifier: GPL-2.0

//! CPU mappings of buffers.
//!
//! VRAM is mapped write-combined through BAR2 and the device writes it behind the
//! compiler's back, so the mapping never hands out references into itself: every access is a
//! raw copy or a volatile load/store through a pointer, bounds-checked first.

use std::{marker::PhantomData, ptr::NonNull};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::{Buffer, Error, Result};

/// A shared mapping of a whole CPU-visible [`Buffer`]; unmapped on drop.
#[derive(Debug)]
pub struct Mapping<'b> {
    ptr: NonNull<u8>,
    len: usize,
    handle: u32,
    _bo: PhantomData<&'b Buffer<'b>>,
}

// SAFETY: the mapping is plain memory shared with the device; nothing in it is tied to a
// thread, and all accesses go through raw pointers with no aliasing assumptions.
unsafe impl Send for Mapping<'_> {}
// SAFETY: as above; concurrent accesses from several threads are data races on device memory
// that the caller orders, exactly as with the device itself.
unsafe impl Sync for Mapping<'_> {}

impl<'b> Mapping<'b> {
    pub(crate) fn new(bo: &'b Buffer<'b>) -> Result<Self> {
        let offset = bo.mmap_offset()?;
        let len = usize::try_from(bo.size())
            .map_err(|_| Error::invalid("mapping size", format!("{} bytes", bo.size())))?;
        let off = libc::off_t::try_from(offset)
            .map_err(|_| Error::invalid("mmap offset", format!("{offset:#x}")))?;
        // SAFETY: a new shared mapping chosen by the kernel (addr NULL), of the buffer's fake
        // offset on the device file; nothing of ours is replaced.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(bo.device()),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Mmap {
                handle: bo.handle(),
                size: bo.size(),
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| Error::Mmap {
            handle: bo.handle(),
            size: bo.size(),
            source: std::io::Error::other("mmap returned NULL"),
        })?;
        Ok(Self {
            ptr,
            len,
            handle: bo.handle(),
            _bo: PhantomData,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping's address, for callers that need raw access (benchmarks). Dereferencing
    /// it is the caller's `unsafe` business.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn range(&self, offset: usize, bytes: usize, align: usize) -> Result<*mut u8> {
        let end = offset.checked_add(bytes);
        if end.is_none_or(|e| e > self.len) {
            return Err(Error::invalid(
                "mapping range",
                format!(
                    "{bytes} bytes at offset {offset:#x} do not fit in buffer {} of {} bytes",
                    self.handle, self.len
                ),
            ));
        }
        if !offset.is_multiple_of(align) {
            return Err(Error::invalid(
                "mapping offset",
                format!("{offset:#x} is not {align}-byte aligned"),
            ));
        }
        // SAFETY: offset + bytes <= len, so the result stays inside the mapping.
        Ok(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// Copies `src` into the mapping at `offset`.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<()> {
        let dst = self.range(offset, src.len(), 1)?;
        // SAFETY: `dst` has room for src.len() bytes (checked); `src` is ordinary memory that
        // cannot overlap a device mapping we own.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// Copies bytes at `offset` out of the mapping into `dst`.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let src = self.range(offset, dst.len(), 1)?;
        // SAFETY: as in `write`, the other way round.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new vector.
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0; len];
        self.read(offset, &mut v)?;
        Ok(v)
    }

    /// Writes a slice of plain values (their little-endian in-memory bytes on this host).
    pub fn write_slice<T: IntoBytes + Immutable>(&self, offset: usize, src: &[T]) -> Result<()> {
        self.write(offset, src.as_bytes())
    }

    /// Reads plain values at `offset` into `dst`.
    pub fn read_slice<T: FromBytes + IntoBytes>(&self, offset: usize, dst: &mut [T]) -> Result<()> {
        self.read(offset, dst.as_mut_bytes())
    }

    /// Reads `count` plain values at `offset`.
    pub fn read_vec_of<T: FromBytes + IntoBytes + Clone>(
        &self,
        offset: usize,
        count: usize,
    ) -> Result<Vec<T>> {
        let mut v = vec![T::new_zeroed(); count];
        self.read_slice(offset, &mut v)?;
        Ok(v)
    }

    /// Fills `len` bytes at `offset` with `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<()> {
        let dst = self.range(offset, len, 1)?;
        // SAFETY: in bounds, as checked.
        unsafe { std::ptr::write_bytes(dst, byte, len) };
        Ok(())
    }

    /// One aligned 32-bit volatile load.
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        let p = self.range(offset, 4, 4)?;
        // SAFETY: in bounds and 4-byte aligned (the mapping is page aligned).
        Ok(unsafe { p.cast::<u32>().read_volatile() })
    }

    /// One aligned 32-bit volatile store.
    pub fn write_u32(&self, offset: usize, v: u32) -> Result<()> {
        let p = self.range(offset, 4, 4)?;
        // SAFETY: as in `read_u32`.
        unsafe { p.cast::<u32>().write_volatile(v) };
        Ok(())
    }

    /// One aligned 64-bit volatile load (a FENCE value is one 64-bit store on the device).
    pub fn read_u64(&self, offset: usize) -> Result<u64> {
        let p = self.range(offset, 8, 8)?;
        // SAFETY: in bounds and 8-byte aligned.
        Ok(unsafe { p.cast::<u64>().read_volatile() })
    }

    /// One aligned 64-bit volatile store.
    pub fn write_u64(&self, offset: usize, v: u64) -> Result<()> {
        let p = self.range(offset, 8, 8)?;
        // SAFETY: as in `read_u64`.
        unsafe { p.cast::<u64>().write_volatile(v) };
        Ok(())
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `new` mapped; no reference into it exists.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
