// SPDX-License-Identifier: GPL-2.0
//! The vfio-user face of a device: region and IRQ tables and the backend.

use std::fs::File;
use std::mem::size_of;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vfio_bindings::bindings::vfio::{
    vfio_region_info, vfio_region_sparse_mmap_area, VFIO_IRQ_INFO_EVENTFD,
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_BAR4_REGION_INDEX,
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{
    DmaMapFlags, DmaUnmapFlags, IrqInfo, Server, ServerBackend, ServerRegion, SparseArea,
};

use crate::device::Device;

/// The transport calls into the device through this.
pub struct Backend(pub Arc<Device>);

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> std::io::Result<()> {
        self.0.region_read(region, offset, data).map_err(|e| {
            log::warn!("{e}");
            e.into()
        })
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.region_write(region, offset, data).map_err(|e| {
            log::warn!("{e}");
            e.into()
        })
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        log::debug!("DMA map {address:#x}+{size:#x} at fd offset {offset:#x}");
        let writable = flags.contains(DmaMapFlags::WRITE);
        self.0
            .dma_map(address, size, fd, offset, writable)
            .map_err(|e| {
                log::warn!("{e}");
                e.into()
            })
    }

    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        if flags.contains(DmaUnmapFlags::UNMAP_ALL) {
            self.0.sysmem.unmap_all();
        } else {
            self.0.dma_unmap(address, size);
        }
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        self.0.function_reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        if index == VFIO_PCI_ERR_IRQ_INDEX && count <= 1 {
            // The client's error-recovery hook: accepted so it can register,
            // but the device reports errors through vector 0, never here.
            return Ok(());
        }
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "only MSI-X is implemented",
            );
            return Err(e);
        }
        self.0.set_msix(flags, start, count, fds).map_err(|e| {
            log::warn!("{e}");
            e.into()
        })
    }
}

/// Regions in vfio-pci index order: the transport looks them up by position.
pub fn regions(dev: &Device) -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let mut info = vfio_region_info {
                argsz: size_of::<vfio_region_info>() as u32,
                index,
                ..Default::default()
            };
            let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
            let mut sparse_areas = Vec::new();
            let mut mmap_fd = None;
            match index {
                VFIO_PCI_BAR0_REGION_INDEX => {
                    info.flags = rw;
                    info.size = vela_hw::pci::BAR0_SIZE;
                }
                VFIO_PCI_BAR2_REGION_INDEX => {
                    info.flags = rw | VFIO_REGION_INFO_FLAG_MMAP;
                    info.size = dev.vram.size();
                    // The client maps the fd at `info.offset`; the whole BAR is one area.
                    info.offset = 0;
                    sparse_areas.push(SparseArea {
                        area: vfio_region_sparse_mmap_area {
                            offset: 0,
                            size: dev.vram.size(),
                        },
                    });
                    mmap_fd = dev.vram.fd();
                }
                // The partitions' register windows: trapped, like BAR0.
                VFIO_PCI_BAR4_REGION_INDEX => {
                    info.flags = rw;
                    info.size = vela_hw::pci::BAR4_SIZE;
                }
                VFIO_PCI_CONFIG_REGION_INDEX => {
                    info.flags = rw;
                    info.size = vela_hw::pci::CONFIG_SIZE as u64;
                }
                _ => {}
            }
            ServerRegion {
                region_info: info,
                sparse_areas,
                mmap_fd,
            }
        })
        .collect()
}

/// MSI-X, plus an error index that is never signalled: no INTx pin, no MSI.
pub fn irqs(dev: &Device) -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| match index {
            VFIO_PCI_MSIX_IRQ_INDEX => IrqInfo {
                index,
                flags: VFIO_IRQ_INFO_EVENTFD,
                count: dev.msix_vectors(),
            },
            VFIO_PCI_ERR_IRQ_INDEX => IrqInfo {
                index,
                flags: VFIO_IRQ_INFO_EVENTFD,
                count: 1,
            },
            _ => IrqInfo {
                index,
                flags: 0,
                count: 0,
            },
        })
        .collect()
}

/// A device's listening socket, whose file is removed when the model is done
/// with it.
pub struct Listening {
    server: Server,
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Create the listening socket. Separate from serving so that every socket of
/// a multi-device run exists before any client is expected to connect.
pub fn listen(dev: &Device, path: &Path) -> Result<Listening, vfio_user::Error> {
    let listener = bind_published(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => vfio_user::Error::SocketPathExists,
        _ => vfio_user::Error::SocketBind(e),
    })?;
    let server = Server::from_owned_fd(listener.into(), true, irqs(dev), regions(dev));
    Ok(Listening {
        server,
        path: path.to_path_buf(),
    })
}

/// Bind and listen under a private name, then give the socket its real name.
/// A plain bind makes the file appear before listen(2) runs, and a client that
/// waits for the file to appear (QEMU's harness does) can connect in between
/// and be refused. link(2) publishes the socket already listening, and fails
/// rather than replacing whatever holds the name.
pub fn bind_published(path: &Path) -> std::io::Result<UnixListener> {
    clear_stale_socket(path);
    let mut private = path.as_os_str().to_owned();
    private.push(format!(".{}~", std::process::id()));
    let private = PathBuf::from(private);
    let _ = std::fs::remove_file(&private);
    let listener = UnixListener::bind(&private)?;
    let published = std::fs::hard_link(&private, path);
    let _ = std::fs::remove_file(&private);
    published.map(|()| listener)
}

/// A model that was killed leaves its socket file behind, and binding over
/// it would fail: remove a socket nobody listens on. Anything else at the
/// path (a live socket, a regular file) is left for the bind to refuse.
pub fn clear_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        return;
    }
    let refused = std::os::unix::net::UnixStream::connect(path)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
    if refused && std::fs::remove_file(path).is_ok() {
        log::info!("{}: removed a stale socket", path.display());
    }
}

/// Serve one connection to completion.
pub fn serve(listening: &Listening, dev: Arc<Device>) -> Result<(), vfio_user::Error> {
    let mut backend = Backend(dev);
    listening.server.run(&mut backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceOptions;

    #[test]
    fn a_published_socket_is_already_listening_and_keeps_its_name() {
        let path = std::env::temp_dir().join(format!("vela-pub-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = bind_published(&path).unwrap();
        // Connecting the moment the name exists succeeds: no window before listen(2).
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        let dir = std::fs::read_dir(std::env::temp_dir()).unwrap();
        let private = format!("vela-pub-{}.sock.", std::process::id());
        assert!(!dir
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&private)));
        // A live socket holding the name is not replaced.
        let again = bind_published(&path).map(|_| ()).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        drop(listener);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn regions_are_sized_as_the_bars() {
        let dev = Device::new(DeviceOptions::default()).unwrap();
        let r = regions(&dev);
        let size = |i: u32| r[i as usize].region_info.size;
        assert_eq!(size(VFIO_PCI_BAR0_REGION_INDEX), 64 << 10);
        assert_eq!(size(VFIO_PCI_BAR2_REGION_INDEX), 256 << 20);
        assert_eq!(size(VFIO_PCI_BAR4_REGION_INDEX), 512 << 10);
        assert!(
            r[VFIO_PCI_BAR4_REGION_INDEX as usize].mmap_fd.is_none(),
            "trapped"
        );
        assert_eq!(size(1) + size(3) + size(5), 0);
    }
}
