// SPDX-License-Identifier: GPL-2.0

//! Peer-to-peer: VRAM handed to other devices' DMA through BAR2, and to the kernel's CPU
//! mappings of exports.

use core::ptr::NonNull;
use kernel::{
    dma_buf::{Attachment, BusTable, Mapping, P2pRoute},
    dma_resv::ResvLocked,
    io::Io,
    prelude::*,
    sync::Arc,
};

use super::{vram, Chip};

/// A VRAM buffer's table for peers behind the switch (`kernel::dma_buf::BusTable`), built at
/// the first such peer's map and handed to the next ones. Dropped when the buffer moves.
pub(crate) struct BusCache {
    table: Arc<BusTable>,
}

impl Chip {
    /// How the importer of `attach` reaches this device's VRAM.
    pub(crate) fn p2p_route(&self, attach: &Attachment) -> Result<P2pRoute> {
        self.with_bound_device(|dev| {
            let provider = self.p2p.as_ref().ok_or(EOPNOTSUPP)?.access(dev)?;
            Ok(attach.p2p_route(provider))
        })
    }

    /// Maps VRAM `blocks` through BAR2 for the importer of `attach` if it reaches BAR2
    /// peer-to-peer and can be revoked; `None` if not. A peer behind the switch gets the
    /// buffer's shared table (`bus`, built at the first such map); a peer through the host
    /// bridge gets a table of its own. One bound-device section for all of it, since this is
    /// on every peer's bind; the route comes from the provider's cache.
    pub(crate) fn map_vram_for_peer(
        &self,
        attach: &Attachment,
        locked: &ResvLocked<'_>,
        blocks: &vram::VramBlocks,
        bus: &mut Option<BusCache>,
    ) -> Result<Option<Mapping>> {
        let ranges =
            vram::runs_exact(blocks).map(|(off, len)| (self.vram_phys.saturating_add(off), len));
        self.with_bound_device(|dev| {
            let provider = self.p2p.as_ref().ok_or(EOPNOTSUPP)?.access(dev)?;
            if !(attach.peer2peer() && attach.revocable()) {
                return Ok(None);
            }
            match attach.p2p_route(provider) {
                P2pRoute::Switch => {
                    if bus.is_none() {
                        let mut all = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
                        for r in vram::runs_exact(blocks)
                            .map(|(off, len)| (self.vram_phys.saturating_add(off), len))
                        {
                            all.push(r, GFP_KERNEL)?;
                        }
                        match BusTable::new(provider, &all) {
                            Ok(table) => *bus = Some(BusCache { table }),
                            // Too many runs for one table page: a table per map.
                            Err(e) if e == EFBIG => {}
                            Err(e) => return Err(e),
                        }
                    }
                    if let Some(cache) = bus.as_ref() {
                        // `None` cannot happen: the route was just found to be the switch.
                        if let Some(m) = Mapping::shared(attach, locked, provider, &cache.table)? {
                            return Ok(Some(m));
                        }
                    }
                }
                P2pRoute::HostBridge => {}
                _ => return Ok(None),
            }
            Mapping::from_bar(
                attach,
                locked,
                provider,
                ranges,
                kernel::dma::DataDirection::Bidirectional,
            )
            .map(Some)
        })
    }

    /// Where VRAM bytes `[offset, offset + len)` are in the kernel's mapping of BAR2. The
    /// address is valid until the device's resources go at unbind; whoever keeps it past the
    /// BAR guard must be revoked before that (see `Exports::revoke_all`).
    pub(crate) fn vram_kernel_addr(&self, offset: u64, len: u64) -> Result<NonNull<u8>> {
        let bar = self.bar2.try_access().ok_or(ENODEV)?;
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if len == 0 || end > u64::try_from(bar.maxsize())? {
            return Err(EINVAL);
        }
        let addr = bar
            .addr()
            .checked_add(usize::try_from(offset)?)
            .ok_or(EINVAL)?;
        NonNull::new(addr as *mut u8).ok_or(EINVAL)
    }
}
