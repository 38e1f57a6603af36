// SPDX-License-Identifier: GPL-2.0

//! An open Vela accel node.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use crate::{Buffer, Error, Result};

/// What QUERY_DEVICE reports.
pub type DeviceInfo = vela_uapi::drm_vela_query_device;

/// An open `/dev/accel/accelN` that answered QUERY_DEVICE as a Vela device.
#[derive(Debug)]
pub struct Device {
    file: File,
    path: PathBuf,
    info: DeviceInfo,
    /// How many [`Buffer`]s hold each GEM handle of this file. A PRIME import of an object the
    /// file already has a handle for returns that same handle (DRM's rule), so two `Buffer`s
    /// can share one; the handle is closed when the last of them is dropped.
    handles: Mutex<HashMap<u32, usize>>,
}

impl Device {
    /// Opens `path` and checks it is a Vela device.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
        // Another accel driver's node rejects (or misreads) our ioctl number; either way the
        // answer decides whether this is ours.
        let info = vela_uapi::query_device(&file).map_err(|e| Error::NotVela {
            path: path.clone(),
            why: format!("DRM_IOCTL_VELA_QUERY(DEVICE) failed: {e}"),
        })?;
        if info.vendor_id != u32::from(vela_uapi::PCI_VENDOR_VELA) {
            return Err(Error::NotVela {
                path,
                why: format!("PCI vendor {:#06x}", info.vendor_id),
            });
        }
        Ok(Self {
            file,
            path,
            info,
            handles: Mutex::default(),
        })
    }

    /// Opens `/dev/accel/accel{index}`.
    pub fn open_index(index: u32) -> Result<Self> {
        Self::open(format!("/dev/accel/accel{index}"))
    }

    /// Every accel node, sorted by minor number.
    pub fn nodes() -> Vec<PathBuf> {
        let mut v: Vec<(u32, PathBuf)> = fs::read_dir("/dev/accel")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let n = name.strip_prefix("accel")?.parse().ok()?;
                        Some((n, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// Every Vela device that can be opened; nodes of other drivers are skipped.
    pub fn all() -> Vec<Self> {
        Self::nodes()
            .into_iter()
            .filter_map(|p| Self::open(p).ok())
            .collect()
    }

    /// The first Vela device, or `VELA_DEVICE` from the environment when it is set.
    pub fn first() -> Result<Self> {
        if let Some(p) = std::env::var_os("VELA_DEVICE") {
            return Self::open(p);
        }
        Self::all().into_iter().next().ok_or(Error::NoDevice)
    }

    /// The identity and sizes read at open.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Asks the kernel again (the identity is fixed, but this proves the node still answers).
    pub fn query(&self) -> Result<DeviceInfo> {
        vela_uapi::query_device(&self.file)
            .map_err(|e| crate::Error::ioctl(crate::Ioctl::Query, "query=DEVICE".into(), e))
    }

    /// VRAM use and the VM address-space size (QUERY_MEMORY).
    pub fn memory(&self) -> Result<vela_uapi::drm_vela_query_memory> {
        let mut reply = vela_uapi::drm_vela_query_memory::default();
        self.query_into(
            vela_uapi::drm_vela_query_id_DRM_VELA_QUERY_MEMORY,
            "MEMORY",
            &mut reply,
        )?;
        Ok(reply)
    }

    /// What one request or the device can take, and system memory in use (QUERY_LIMITS).
    pub fn limits(&self) -> Result<vela_uapi::drm_vela_query_limits> {
        let mut reply = vela_uapi::drm_vela_query_limits::default();
        self.query_into(
            vela_uapi::drm_vela_query_id_DRM_VELA_QUERY_LIMITS,
            "LIMITS",
            &mut reply,
        )?;
        Ok(reply)
    }

    /// The device's event counters, indexed by `DRM_VELA_COUNTER_*` (QUERY_COUNTERS).
    pub fn counters(&self) -> Result<[u64; 16]> {
        let mut reply = vela_uapi::drm_vela_query_counters::default();
        self.query_into(
            vela_uapi::drm_vela_query_id_DRM_VELA_QUERY_COUNTERS,
            "COUNTERS",
            &mut reply,
        )?;
        Ok(reply.counters)
    }

    fn query_into<T>(&self, id: u32, name: &str, reply: &mut T) -> Result<()> {
        let mut a = vela_uapi::drm_vela_query {
            query: id,
            size: std::mem::size_of::<T>() as u32,
            data: reply as *mut T as u64,
            ..Default::default()
        };
        vela_uapi::query(&self.file, &mut a)
            .map_err(|e| crate::Error::ioctl(crate::Ioctl::Query, format!("query={name}"), e))
    }

    /// Imports a dma-buf (of another Vela device, another open file of this one, udmabuf, a
    /// dma-heap, ...); see [`Buffer::import`].
    pub fn import(&self, dmabuf: impl AsFd) -> Result<Buffer<'_>> {
        Buffer::import(self, dmabuf)
    }

    fn handle_table(&self) -> MutexGuard<'_, HashMap<u32, usize>> {
        // Every update is one map operation; a panic elsewhere cannot leave it half done.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one more [`Buffer`] holding `handle`.
    pub(crate) fn hold_handle(&self, handle: u32) {
        *self.handle_table().entry(handle).or_insert(0) += 1;
    }

    /// Drops one holder of `handle`; true when it was the last, so the handle must be closed.
    pub(crate) fn release_handle(&self, handle: u32) -> bool {
        let mut t = self.handle_table();
        match t.get_mut(&handle) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                t.remove(&handle);
                true
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn vram_size(&self) -> u64 {
        self.info.vram_size
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

impl AsRawFd for Device {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
