// SPDX-License-Identifier: GPL-2.0
//! How an engine reaches memory while it executes one command: VA -> DPA
//! through the context's MMU, DPA -> VRAM, a peer's VRAM, or system memory.

use crate::device::Device;
use crate::mem::{self, Backing, SysMemSnapshot};
use crate::mmu::{self, Fault};
use crate::partition::{PageRequest, Slice, Space};
use vela_hw::regs::{part, FaultReason, QueueError};
use vela_hw::IovaEntry;

/// Why a command stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Error {
        code: QueueError,
        addr: u64,
    },
    Fault(Fault),
    /// A partition's access needs a page the host has not mapped yet: the command waits.
    PageRequest(PageRequest),
}

/// Where a DPA lands: (backing, offset in it, bytes available from there, via a peer).
pub type Hit = (Backing, u64, u64, bool);

/// Why a DPA reaches no memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    Unreachable,
    /// A partition's IOVA whose entry does not grant the access: the host is asked for it.
    PageRequest,
}

impl Stop {
    pub fn error(code: QueueError, addr: u64) -> Self {
        Self::Error { code, addr }
    }
}

/// Events counted while a command runs; added to the counters when it ends.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub bytes_written: u64,
    pub page_walks: u64,
    pub dma_errors: u64,
    pub p2p_bytes: u64,
}

impl Stats {
    /// Counts another access's work as this one's: one command may use two.
    pub fn add(&mut self, other: &Stats) {
        self.bytes_written += other.bytes_written;
        self.page_walks += other.page_walks;
        self.dma_errors += other.dma_errors;
        self.p2p_bytes += other.p2p_bytes;
    }
}

/// What a command's addresses go through: a snapshot of the context and of
/// the host's DMA mappings taken when the command started.
pub struct Access<'a> {
    dev: &'a Device,
    sys: SysMemSnapshot,
    space: Space,
    translate: bool,
    pt_base: u64,
    bus_master: bool,
    injected_dma_checked: bool,
    injected_fault_checked: bool,
    walks: mmu::WalkCache,
    pub stats: Stats,
}

/// A contiguous run of memory an access may touch in one go.
struct Chunk {
    backing: Backing,
    offset: u64,
    len: usize,
}

/// The longest run one host copy takes: a whole command. Runs are as long as the memory is
/// contiguous on both sides, and are copied with one memmove each: glibc picks its strategy by
/// size (above some 16 times its non-temporal threshold it copies four pages interleaved,
/// measurably faster on this host), so cutting a run into pieces (it was 64 MiB) costs
/// bandwidth (`Documentation/hardware/model.rst`, Performance).
const MAX_CHUNK: u64 = vela_hw::cmd::MAX_TRANSFER;

impl<'a> Access<'a> {
    /// `space` says what the DPAs mean: the host's, or a partition's.
    pub fn new(
        dev: &'a Device,
        space: Space,
        translate: bool,
        pt_base: u64,
        bus_master: bool,
    ) -> Self {
        Self {
            dev,
            sys: dev.sysmem.snapshot(),
            space,
            translate,
            pt_base,
            bus_master,
            injected_dma_checked: false,
            injected_fault_checked: false,
            walks: mmu::WalkCache::default(),
            stats: Stats::default(),
        }
    }

    /// Resolve a DPA of the access's space to memory.
    pub fn resolve(&self, addr: u64, write: bool) -> Result<Hit, Miss> {
        match &self.space {
            Space::Host => {
                resolve(self.dev, &self.sys, self.bus_master, addr, write).ok_or(Miss::Unreachable)
            }
            Space::Part(s) => resolve_in(self.dev, &self.sys, self.bus_master, s, addr, write),
        }
    }

    fn translate(&mut self, va: u64, write: bool) -> Result<(u64, u64), Stop> {
        if !self.injected_fault_checked {
            self.injected_fault_checked = true;
            if self.dev.inject.take_mmu_fault() {
                return Err(Stop::Fault(Fault {
                    va,
                    write,
                    reason: FaultReason::Injected,
                    level: 0,
                }));
            }
        }
        if !self.translate {
            return Ok((va, u64::MAX));
        }
        self.stats.page_walks += 1;
        let (pt_base, mut walks) = (self.pt_base, self.walks);
        // Tables are the guest's in a partition too, so they are read in the access's space;
        // a walk never raises a page request (the host pins tables up front).
        let read_pte = |a: u64| read_u64(self.resolve(a, false).ok()?);
        let t = mmu::translate_cached(va, write, pt_base, &mut walks, read_pte);
        self.walks = walks;
        let t = t.map_err(Stop::Fault)?;
        Ok((t.dpa, t.span))
    }

    fn chunk(&mut self, va: u64, len: u64, write: bool) -> Result<Chunk, Stop> {
        let (addr, span) = self.translate(va, write)?;
        let fail = || Stop::error(QueueError::DmaError, addr);
        if !self.injected_dma_checked {
            self.injected_dma_checked = true;
            if self.dev.inject.take_fail_dma() {
                self.stats.dma_errors += 1;
                return Err(fail());
            }
        }
        let (backing, offset, avail, peer) = match self.resolve(addr, write) {
            Ok(hit) => hit,
            Err(Miss::PageRequest) => {
                return Err(Stop::PageRequest(PageRequest { iova: addr, write }));
            }
            Err(Miss::Unreachable) => {
                self.stats.dma_errors += 1;
                return Err(fail());
            }
        };
        let want = len.min(avail).min(MAX_CHUNK);
        let n = self.contiguous(va, addr, span, want, write);
        if peer {
            self.stats.p2p_bytes += n;
        }
        Ok(Chunk {
            backing,
            offset,
            len: n as usize,
        })
    }

    /// How many of `want` bytes from `va` map to consecutive DPAs from `addr`,
    /// given the first page's `span`: one burst instead of one per page. A
    /// page that faults ends the run quietly; the fault is reported when the
    /// access gets there.
    fn contiguous(&mut self, va: u64, addr: u64, span: u64, want: u64, write: bool) -> u64 {
        let mut run = span.min(want);
        while run < want {
            let Some(next_va) = va.checked_add(run) else {
                break;
            };
            match self.translate(next_va, write) {
                Ok((next, next_span)) if Some(next) == addr.checked_add(run) => {
                    run = run.saturating_add(next_span).min(want);
                }
                _ => break,
            }
        }
        run
    }

    fn advance(va: u64, done: u64) -> Result<u64, Stop> {
        va.checked_add(done)
            .ok_or(Stop::error(QueueError::DmaError, va))
    }

    pub fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Stop> {
        let mut done = 0usize;
        while done < buf.len() {
            let c = self.chunk(
                Self::advance(va, done as u64)?,
                (buf.len() - done) as u64,
                false,
            )?;
            let s = mem::slice(&c.backing, c.offset, c.len)
                .map_err(|_| Stop::error(QueueError::DmaError, va))?;
            s.copy_to(&mut buf[done..done + c.len]);
            done += c.len;
        }
        Ok(())
    }

    pub fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), Stop> {
        let mut done = 0usize;
        while done < buf.len() {
            let c = self.chunk(
                Self::advance(va, done as u64)?,
                (buf.len() - done) as u64,
                true,
            )?;
            let s = mem::slice(&c.backing, c.offset, c.len)
                .map_err(|_| Stop::error(QueueError::DmaError, va))?;
            s.copy_from(&buf[done..done + c.len]);
            done += c.len;
            self.stats.bytes_written += c.len as u64;
        }
        Ok(())
    }

    pub fn copy(&mut self, src: u64, dst: u64, len: u64) -> Result<(), Stop> {
        let mut done = 0u64;
        while done < len {
            let s = self.chunk(Self::advance(src, done)?, len - done, false)?;
            let d = self.chunk(Self::advance(dst, done)?, s.len as u64, true)?;
            let n = d.len.min(s.len);
            let from = mem::slice(&s.backing, s.offset, n)
                .map_err(|_| Stop::error(QueueError::DmaError, src))?;
            let to = mem::slice(&d.backing, d.offset, n)
                .map_err(|_| Stop::error(QueueError::DmaError, dst))?;
            from.copy_to_volatile_slice(to);
            done += n as u64;
            self.stats.bytes_written += n as u64;
        }
        Ok(())
    }

    pub fn fill(&mut self, dst: u64, len: u64, pattern: u32) -> Result<(), Stop> {
        const BLOCK: usize = 64 << 10;
        let block: Vec<u8> = pattern
            .to_le_bytes()
            .iter()
            .copied()
            .cycle()
            .take(BLOCK + 4)
            .collect();
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(BLOCK as u64);
            let c = self.chunk(Self::advance(dst, done)?, want, true)?;
            let phase = (done % 4) as usize;
            let s = mem::slice(&c.backing, c.offset, c.len)
                .map_err(|_| Stop::error(QueueError::DmaError, dst))?;
            s.copy_from(&block[phase..phase + c.len]);
            done += c.len as u64;
            self.stats.bytes_written += c.len as u64;
        }
        Ok(())
    }
}

/// The 64-bit little-endian word at the start of a hit, if it is all there.
fn read_u64((b, off, avail, _): Hit) -> Option<u64> {
    if avail < 8 {
        return None;
    }
    let mut e = [0u8; 8];
    mem::slice(&b, off, 8).ok()?.copy_to(&mut e[..]);
    Some(u64::from_le_bytes(e))
}

/// Partition-relative routing (partitions.rst): a VRAM DPA is an offset into the slice, a
/// system DPA an IOVA translated through the slice's table to system memory, never to a peer.
fn resolve_in(
    dev: &Device,
    sys: &SysMemSnapshot,
    bus_master: bool,
    s: &Slice,
    addr: u64,
    write: bool,
) -> Result<Hit, Miss> {
    if addr & vela_hw::dpa::VRAM != 0 {
        let off = addr & vela_hw::dpa::OFFSET_MASK;
        // The enable checks put the slice inside VRAM, so base + off is too.
        if off >= s.vram_size {
            return Err(Miss::Unreachable);
        }
        let backing = dev.vram.backing().clone();
        return Ok((backing, s.vram_base + off, s.vram_size - off, false));
    }
    let page = addr / part::IOVA_PAGE_SIZE;
    if page >= s.iova_pages {
        return Err(Miss::Unreachable);
    }
    // The table is host memory, addressed by the host's DPA (a system one is not checked at
    // enable, so its end may wrap: that entry is unreachable).
    let entry = s
        .iova_table
        .checked_add(page * 8)
        .and_then(|at| resolve(dev, sys, bus_master, at, false))
        .and_then(read_u64)
        .map(IovaEntry)
        .ok_or(Miss::Unreachable)?;
    if entry.bits() & IovaEntry::RESERVED_MASK != 0 {
        return Err(Miss::Unreachable);
    }
    let allowed = if write { entry.write() } else { entry.read() };
    if !entry.valid() || !allowed {
        return Err(Miss::PageRequest);
    }
    let within = addr % part::IOVA_PAGE_SIZE;
    let bus = (entry.bits() & IovaEntry::ADDR_MASK) | within;
    let (m, off) = mem::lookup(sys, bus)
        .filter(|(m, _)| bus_master && (m.writable || !write))
        .ok_or(Miss::Unreachable)?;
    // One entry maps one page: the next page goes through its own entry.
    let avail = (m.size - off).min(part::IOVA_PAGE_SIZE - within);
    Ok((m.backing.clone(), off, avail, false))
}

/// DPA routing, as p2p.rst describes: VRAM, then peer BAR2 windows, then
/// system memory; bus addresses need bus mastering.
fn resolve(
    dev: &Device,
    sys: &SysMemSnapshot,
    bus_master: bool,
    addr: u64,
    write: bool,
) -> Option<(Backing, u64, u64, bool)> {
    if addr & vela_hw::dpa::VRAM != 0 {
        let off = addr & vela_hw::dpa::OFFSET_MASK;
        let size = dev.vram.size();
        return (off < size).then(|| (dev.vram.backing().clone(), off, size - off, false));
    }
    if !bus_master {
        return None;
    }
    let own = dev.port.id;
    let peer = dev.fabric.route(addr, |hit| {
        hit.map(|h| (h.backing().clone(), h.offset, h.avail, h.port.id != own))
    });
    peer.or_else(|| {
        let (m, off) = mem::lookup(sys, addr)?;
        (m.writable || !write).then(|| (m.backing.clone(), off, m.size - off, false))
    })
}
