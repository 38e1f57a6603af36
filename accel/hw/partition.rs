// SPDX-License-Identifier: GPL-2.0

//! Hardware partitions (`Documentation/hardware/partitions.rst`): slices of the device a
//! frontend hands to a tenant (the vGPU frontend, to a guest).
//!
//! Isolation is the device's: every address a partition's queues use is checked against the
//! partition's own VRAM range and IOVA table, so nothing a guest writes into its window, its
//! rings or its page tables reaches outside its slice. The core only programs partitions,
//! forwards the accesses a frontend traps to their windows, hands the frontends what the
//! partitions report (vectors to relay, pages to pin), and puts enabled partitions back after
//! a global reset, which disables them all.

use kernel::{
    io::{poll::read_poll_timeout, Io},
    pci,
    prelude::*,
    time::Delta,
};

use super::{
    best_effort,
    regs::{self, PartitionId, PartitionRefusal},
    Bar0, Chip,
};

/// Size of one partition's register window in BAR4.
pub(crate) const WINDOW_SIZE: usize = 0x10000;

/// BAR4: the windows of every partition slot, window P at `P * WINDOW_SIZE`.
pub(crate) type Bar4 = pci::Bar<'static, { regs::PARTITIONS * WINDOW_SIZE }>;

/// What a partition owns, as the host programs it (`PART_*` registers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Config {
    /// VRAM range: offset and size, both multiples of [`VRAM_ALIGN`].
    pub(crate) vram_base: u64,
    pub(crate) vram_size: u64,
    /// The PF queues it owns, one bit each.
    pub(crate) queues: u32,
    /// The MMU contexts it owns, one bit each.
    pub(crate) contexts: u32,
    /// Engine time per scheduling turn, microseconds (0: one command per turn).
    pub(crate) quantum_us: u32,
    /// DPA of its IOVA table (host memory, 4 KiB aligned) and the table's entries.
    pub(crate) iova_table: u64,
    pub(crate) iova_pages: u32,
}

/// A page a partition's command waits for (`PART_PAGE_REQ`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// The IOVA of the page (4 KiB aligned).
    pub(crate) iova: u64,
    /// The access is a write.
    pub(crate) write: bool,
}

/// What a partition reported since the core last looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) partition: PartitionId,
    /// Its vectors that fired (`PART_VEC_PENDING`), to relay to the tenant.
    pub(crate) vectors: u32,
    /// A page request the frontend has not been told about yet.
    pub(crate) request: Option<PageRequest>,
}

/// An IOVA table entry (`partitions.rst`, IOVA table entry): `bus` mapped for reads, and for
/// writes if `write`. `EINVAL` for a bus address that is not 4 KiB aligned or too wide.
pub(crate) fn iova_entry(bus: u64, write: bool) -> Result<u64> {
    if bus & 0xfff != 0 || bus >> 52 != 0 {
        return Err(EINVAL);
    }
    Ok(bus | 0b11 | (u64::from(write) << 2))
}

/// The errno for a refused ENABLE or SCRUB: the caller's configuration is wrong (`EINVAL`), or
/// what it asks for is someone else's (`EBUSY`).
fn refusal_errno(code: core::result::Result<PartitionRefusal, u32>) -> Error {
    match code {
        Ok(PartitionRefusal::VramOverlap)
        | Ok(PartitionRefusal::QueueConflict)
        | Ok(PartitionRefusal::ContextConflict)
        | Ok(PartitionRefusal::Enabled) => EBUSY,
        _ => EINVAL,
    }
}

/// Writes the configuration registers of `p`. They ignore writes while it is enabled.
fn write_config(bar: &Bar0, p: PartitionId, c: &Config) {
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    bar.write(
        regs::PART_VRAM_BASE_LO::at_partition(p),
        regs::PART_VRAM_BASE_LO::from_raw(lo(c.vram_base)),
    );
    bar.write(
        regs::PART_VRAM_BASE_HI::at_partition(p),
        regs::PART_VRAM_BASE_HI::from_raw(hi(c.vram_base)),
    );
    bar.write(
        regs::PART_VRAM_SIZE_LO::at_partition(p),
        regs::PART_VRAM_SIZE_LO::from_raw(lo(c.vram_size)),
    );
    bar.write(
        regs::PART_VRAM_SIZE_HI::at_partition(p),
        regs::PART_VRAM_SIZE_HI::from_raw(hi(c.vram_size)),
    );
    bar.write(
        regs::PART_QUEUES::at_partition(p),
        regs::PART_QUEUES::from_raw(c.queues),
    );
    bar.write(
        regs::PART_CONTEXTS::at_partition(p),
        regs::PART_CONTEXTS::from_raw(c.contexts),
    );
    bar.write(
        regs::PART_QUANTUM::at_partition(p),
        regs::PART_QUANTUM::from_raw(c.quantum_us),
    );
    bar.write(
        regs::PART_IOVA_TABLE_LO::at_partition(p),
        regs::PART_IOVA_TABLE_LO::from_raw(lo(c.iova_table)),
    );
    bar.write(
        regs::PART_IOVA_TABLE_HI::at_partition(p),
        regs::PART_IOVA_TABLE_HI::from_raw(hi(c.iova_table)),
    );
    bar.write(
        regs::PART_IOVA_PAGES::at_partition(p),
        regs::PART_IOVA_PAGES::from_raw(c.iova_pages),
    );
}

/// Sets ENABLE and reads back whether the device took the configuration.
fn enable(bar: &Bar0, p: PartitionId) -> Result {
    bar.write(
        regs::PART_CONTROL::at_partition(p),
        regs::PART_CONTROL::zeroed().with_enable(true),
    );
    let st = bar.read(regs::PART_STATUS::at_partition(p));
    if st.enabled() {
        return Ok(());
    }
    Err(refusal_errno(st.config_code()))
}

/// A window offset a frontend may forward: inside the window, 4-byte aligned.
fn window_offset(p: PartitionId, offset: usize) -> Result<usize> {
    if offset >= WINDOW_SIZE || offset % 4 != 0 {
        return Err(EINVAL);
    }
    Ok(p.index() * WINDOW_SIZE + offset)
}

impl Chip {
    /// How many partitions the device can hold: 0 if it cannot be partitioned, or its windows
    /// could not be mapped.
    pub(crate) fn partition_slots(&self) -> usize {
        if self.bar4.is_some() {
            usize::from(self.identity.partitions)
        } else {
            0
        }
    }

    /// Takes a free partition slot, disabled. `EBUSY` if none is free, `EOPNOTSUPP` if the
    /// device has none. Given back with [`Chip::put_partition`].
    pub(crate) fn take_partition(&self) -> Result<PartitionId> {
        let slots = self.partition_slots();
        if slots == 0 {
            return Err(EOPNOTSUPP);
        }
        let mut o = self.owners.lock();
        let p = PartitionId::all()
            .take(slots)
            .find(|p| o.partitions & p.bit() == 0)
            .ok_or(EBUSY)?;
        o.partitions |= p.bit();
        o.partition_config[p.index()] = None;
        Ok(p)
    }

    /// Disables `p` if it is enabled and frees the slot.
    pub(crate) fn put_partition(&self, p: PartitionId) {
        self.disable_partition(p);
        self.owners.lock().partitions &= !p.bit();
    }

    /// Programs `p` with `config` and enables it. The device checks the configuration:
    /// `EINVAL` for a misaligned or out-of-range one, `EBUSY` when another enabled partition
    /// owns part of it. The partition's queues and contexts start from their reset values.
    pub(crate) fn enable_partition(&self, p: PartitionId, config: &Config) -> Result {
        let mut o = self.owners.lock();
        if o.partitions & p.bit() == 0 || o.partition_config[p.index()].is_some() {
            return Err(EINVAL);
        }
        self.with_bar0(|bar| {
            write_config(bar, p, config);
            enable(bar, p)
        })
        .inspect_err(|e| {
            dev_err!(
                self.pdev,
                "partition {}: the device refused its configuration: {:?}\n",
                p.get(),
                e
            )
        })?;
        o.partition_config[p.index()] = Some(*config);
        o.requests_told &= !p.bit();
        Ok(())
    }

    /// Disables `p`: its queues abort, its window closes, and its queues and contexts go back
    /// to the PF at their reset values. Its VRAM is left as it is.
    pub(crate) fn disable_partition(&self, p: PartitionId) {
        let mut o = self.owners.lock();
        if o.partition_config[p.index()].take().is_none() {
            return;
        }
        best_effort(
            "disabling a partition",
            self.with_bar0(|bar| {
                bar.write(
                    regs::PART_CONTROL::at_partition(p),
                    regs::PART_CONTROL::zeroed(),
                );
                Ok(())
            }),
        );
        o.requests_told &= !p.bit();
    }

    /// Resets `p` alone, as a function reset: its queues abort, its contexts, fault records,
    /// interrupt state and page requests clear. Its configuration and VRAM stay.
    pub(crate) fn reset_partition(&self, p: PartitionId) -> Result {
        let mut o = self.owners.lock();
        if o.partition_config[p.index()].is_none() {
            return Err(EINVAL);
        }
        self.with_bar0(|bar| {
            bar.write(
                regs::PART_CONTROL::at_partition(p),
                regs::PART_CONTROL::zeroed()
                    .with_enable(true)
                    .with_reset(true),
            );
            Ok(())
        })?;
        o.requests_told &= !p.bit();
        Ok(())
    }

    // For the pinning of guest pages (IOVA table entries), which comes next.
    #[allow(dead_code)]
    /// Zero-fills VRAM `[base, base + size)` with the device's scrubber, through slot `p`,
    /// which must be taken and disabled; waits up to 5 s for it.
    pub(crate) fn scrub_partition(&self, p: PartitionId, base: u64, size: u64) -> Result {
        {
            let o = self.owners.lock();
            if o.partitions & p.bit() == 0 || o.partition_config[p.index()].is_some() {
                return Err(EINVAL);
            }
            let range = Config {
                vram_base: base,
                vram_size: size,
                ..Config::default()
            };
            self.with_bar0(|bar| {
                write_config(bar, p, &range);
                bar.write(
                    regs::PART_CONTROL::at_partition(p),
                    regs::PART_CONTROL::zeroed().with_scrub(true),
                );
                let st = bar.read(regs::PART_STATUS::at_partition(p));
                if st.config_error() {
                    return Err(refusal_errno(st.config_code()));
                }
                Ok(())
            })?;
        }
        // Polled without the owners lock: a scrub of a large range takes a while.
        read_poll_timeout(
            || self.with_bar0(|bar| Ok(bar.read(regs::PART_STATUS::at_partition(p)))),
            |st| !st.scrubbing(),
            Delta::from_micros(100),
            Delta::from_secs(5),
        )
        .map(|_| ())
    }

    /// Drops `p`'s cached IOVA translations: once this returns, no command of the partition
    /// uses an entry that was removed, and the pages it named may be unpinned. A disabled
    /// partition caches nothing (and is not enabled again by this).
    pub(crate) fn invalidate_iova(&self, p: PartitionId) -> Result {
        let o = self.owners.lock();
        if o.partition_config[p.index()].is_none() {
            return Ok(());
        }
        self.with_bar0(|bar| {
            bar.write(
                regs::PART_CONTROL::at_partition(p),
                regs::PART_CONTROL::zeroed()
                    .with_enable(true)
                    .with_invalidate_iova(true),
            );
            Ok(())
        })
    }

    /// Answers `p`'s page request: `retry` once its entry is valid (the command runs again),
    /// else the access fails with `DMA_ERROR` in the partition.
    pub(crate) fn answer_page_request(&self, p: PartitionId, retry: bool) -> Result {
        let mut o = self.owners.lock();
        self.with_bar0(|bar| {
            bar.write(
                regs::PART_PAGE_RESP::at_partition(p),
                regs::PART_PAGE_RESP::zeroed()
                    .with_retry(retry)
                    .with_deny(!retry),
            );
            Ok(())
        })?;
        // The next request (the same page again, if the entry did not help) is news.
        o.requests_told &= !p.bit();
        Ok(())
    }

    /// Reads the register at `offset` of `p`'s window, as its tenant would. `EINVAL` for an
    /// offset outside the window or not 4-byte aligned, `ENODEV` once the device is gone.
    pub(crate) fn window_read(&self, p: PartitionId, offset: usize) -> Result<u32> {
        let at = window_offset(p, offset)?;
        let bar = self
            .bar4
            .as_ref()
            .ok_or(ENODEV)?
            .try_access()
            .ok_or(ENODEV)?;
        bar.try_read32(at)
    }

    /// Writes the register at `offset` of `p`'s window, as its tenant would.
    pub(crate) fn window_write(&self, p: PartitionId, offset: usize, value: u32) -> Result {
        let at = window_offset(p, offset)?;
        let bar = self
            .bar4
            .as_ref()
            .ok_or(ENODEV)?
            .try_access()
            .ok_or(ENODEV)?;
        bar.try_write32(value, at)
    }

    /// What the enabled partitions reported (vector 0 saw `INT_STATUS.PARTITION`): each one's
    /// fired vectors, cleared as they are read, and a page request the frontends were not told
    /// about yet.
    pub(crate) fn partition_events(&self, bar: &Bar0) -> KVec<Event> {
        let mut out = KVec::new();
        let mut o = self.owners.lock();
        for p in PartitionId::all() {
            if o.partition_config[p.index()].is_none() {
                continue;
            }
            let vectors = bar.read(regs::PART_VEC_PENDING::at_partition(p));
            if vectors.vectors().get() != 0 {
                bar.write(regs::PART_VEC_PENDING::at_partition(p), vectors);
            }
            let st = bar.read(regs::PART_STATUS::at_partition(p));
            let request = if st.page_request() && o.requests_told & p.bit() == 0 {
                o.requests_told |= p.bit();
                let lo = bar.read(regs::PART_PAGE_REQ_LO::at_partition(p));
                let hi = bar.read(regs::PART_PAGE_REQ_HI::at_partition(p)).into_raw();
                Some(PageRequest {
                    iova: (u64::from(hi) << 32) | (u64::from(lo.page().get()) << 12),
                    write: lo.write(),
                })
            } else {
                None
            };
            let vectors = vectors.vectors().get();
            if (vectors != 0 || request.is_some())
                && out
                    .push(
                        Event {
                            partition: p,
                            vectors,
                            request,
                        },
                        GFP_KERNEL,
                    )
                    .is_err()
            {
                // Out of memory: the request is told again next time; the vectors are lost,
                // as a dropped message would be, and the tenant's driver polls its fences.
                o.requests_told &= !p.bit();
            }
        }
        out
    }

    /// After a global reset, which disables every partition: enables again each one that was,
    /// with its configuration. Its queues and contexts start from their reset values; what the
    /// tenant had in flight is lost, as a function's work is in a reset of its parent.
    pub(crate) fn restore_partitions(&self) {
        let mut o = self.owners.lock();
        for p in PartitionId::all() {
            let Some(config) = o.partition_config[p.index()] else {
                continue;
            };
            best_effort(
                "enabling a partition after a reset",
                self.with_bar0(|bar| {
                    write_config(bar, p, &config);
                    enable(bar, p)
                }),
            );
        }
        o.requests_told = 0;
    }

    /// At unbind: disables every partition a frontend left enabled, so no tenant runs on a
    /// device the driver no longer manages.
    pub(crate) fn disable_partitions(&self) {
        for p in PartitionId::all() {
            self.disable_partition(p);
        }
    }
}

#[kunit_tests(vela_partition)]
mod tests {
    use super::*;

    #[test]
    fn iova_entries() -> Result {
        assert_eq!(iova_entry(0x1234_5000, false)?, 0x1234_5003);
        assert_eq!(iova_entry(0x1234_5000, true)?, 0x1234_5007);
        assert_eq!(iova_entry(0x1234_5008, true), Err(EINVAL));
        assert_eq!(iova_entry(1 << 52, true), Err(EINVAL));
        Ok(())
    }

    #[test]
    fn window_offsets() -> Result {
        let p = PartitionId::new(3)?;
        assert_eq!(window_offset(p, 0)?, 3 * WINDOW_SIZE);
        assert_eq!(window_offset(p, 0x1010)?, 3 * WINDOW_SIZE + 0x1010);
        assert_eq!(window_offset(p, WINDOW_SIZE), Err(EINVAL));
        assert_eq!(window_offset(p, 2), Err(EINVAL));
        Ok(())
    }

    #[test]
    fn refusals() {
        assert_eq!(refusal_errno(Ok(PartitionRefusal::VramOverlap)), EBUSY);
        assert_eq!(refusal_errno(Ok(PartitionRefusal::BadAlignment)), EINVAL);
        assert_eq!(refusal_errno(Err(0)), EINVAL);
    }
}
