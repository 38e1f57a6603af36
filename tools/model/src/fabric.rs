// SPDX-License-Identifier: GPL-2.0
//! The PCIe fabric shared by the devices of one process.
//!
//! Each device publishes where its BAR2 sits on the bus (learned from its
//! config space, as a switch routes by programmed BARs) so that a peer's DMA
//! to that window lands in its VRAM.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::mem::Backing;

/// One device's VRAM as seen from the fabric.
pub struct Port {
    pub id: usize,
    vram: Backing,
    size: u64,
    /// BAR2 bus address, or `NO_WINDOW` while the BAR is unset or decode is off.
    bar2: AtomicU64,
}

const NO_WINDOW: u64 = u64::MAX;

impl Port {
    pub fn set_bar2(&self, addr: Option<u64>) {
        self.bar2
            .store(addr.unwrap_or(NO_WINDOW), Ordering::Release);
    }

    pub fn bar2(&self) -> Option<u64> {
        Some(self.bar2.load(Ordering::Acquire)).filter(|&a| a != NO_WINDOW)
    }
}

/// Where a bus address lands in some device's VRAM.
pub struct PeerHit<'a> {
    pub port: &'a Port,
    pub offset: u64,
    pub avail: u64,
}

impl PeerHit<'_> {
    pub fn backing(&self) -> &Backing {
        &self.port.vram
    }
}

#[derive(Default)]
pub struct Fabric {
    ports: RwLock<Vec<Arc<Port>>>,
}

impl Fabric {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn attach(&self, vram: Backing, size: u64) -> Arc<Port> {
        let mut ports = self.ports.write().unwrap_or_else(|e| e.into_inner());
        let port = Arc::new(Port {
            id: ports.len(),
            vram,
            size,
            bar2: AtomicU64::new(NO_WINDOW),
        });
        ports.push(port.clone());
        port
    }

    /// Run `f` on the device whose BAR2 window holds `addr`, if any.
    pub fn route<R>(&self, addr: u64, f: impl FnOnce(Option<PeerHit<'_>>) -> R) -> R {
        let ports = self.ports.read().unwrap_or_else(|e| e.into_inner());
        let hit = ports.iter().find_map(|p| {
            let base = p.bar2()?;
            let offset = addr.checked_sub(base).filter(|&o| o < p.size)?;
            Some(PeerHit {
                port: p,
                offset,
                avail: p.size - offset,
            })
        });
        f(hit)
    }
}
