// SPDX-License-Identifier: GPL-2.0
//! How an engine reaches memory while it executes one command: VA -> DPA
//! through the context's MMU, DPA -> VRAM, a peer's VRAM, or system memory.

use crate::device::Device;
use crate::mem::{self, Backing, SysMemSnapshot};
use crate::mmu::{self, Fault};
use vela_hw::regs::{FaultReason, QueueError};

/// Why a command stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Error { code: QueueError, addr: u64 },
    Fault(Fault),
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
    pub fn new(dev: &'a Device, translate: bool, pt_base: u64, bus_master: bool) -> Self {
        Self {
            dev,
            sys: dev.sysmem.snapshot(),
            translate,
            pt_base,
            bus_master,
            injected_dma_checked: false,
            injected_fault_checked: false,
            walks: mmu::WalkCache::default(),
            stats: Stats::default(),
        }
    }

    /// Resolve a DPA to memory: (backing, offset, bytes available, via a peer).
    pub fn resolve(&self, addr: u64, write: bool) -> Option<(Backing, u64, u64, bool)> {
        resolve(self.dev, &self.sys, self.bus_master, addr, write)
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
        let (dev, sys, bm) = (self.dev, &self.sys, self.bus_master);
        let read_pte = |a: u64| {
            let (b, off, avail, _) = resolve(dev, sys, bm, a, false)?;
            if avail < 8 {
                return None;
            }
            let mut e = [0u8; 8];
            mem::slice(&b, off, 8).ok()?.copy_to(&mut e[..]);
            Some(u64::from_le_bytes(e))
        };
        let t = mmu::translate_cached(va, write, self.pt_base, &mut self.walks, read_pte)
            .map_err(Stop::Fault)?;
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
        let Some((backing, offset, avail, peer)) = self.resolve(addr, write) else {
            self.stats.dma_errors += 1;
            return Err(fail());
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
