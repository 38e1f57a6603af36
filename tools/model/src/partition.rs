// SPDX-License-Identifier: GPL-2.0
//! Partitions (partitions.rst): the host's partition registers, the enable checks, partition
//! reset and scrub, page requests and the relay of a partition's interrupts to the host.
//!
//! What a partition owns is decided here; the register window (bar0.rs), the address spaces
//! (dma.rs) and the scheduler (engine.rs) ask [`State`] who owns a queue or context and never
//! keep their own copy, so a change of owner is seen everywhere at once.

use crate::device::{ContextState, Device, State};
use vela_hw::regs::{self, part, PartError};

/// Who a queue or context works for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tenant {
    Pf,
    Part(usize),
}

impl Tenant {
    /// Tenants in scheduling order: the PF, then the partition slots.
    pub const COUNT: usize = 1 + regs::NUM_PARTITIONS;

    pub fn index(self) -> usize {
        match self {
            Self::Pf => 0,
            Self::Part(p) => 1 + p,
        }
    }

    pub fn from_index(i: usize) -> Self {
        match i {
            0 => Self::Pf,
            i => Self::Part(i - 1),
        }
    }
}

/// A stalled command's request for a page of its partition's IOVA space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// The address the access used (the page is `iova & !0xfff`).
    pub iova: u64,
    pub write: bool,
}

/// What a partition's addresses reach: a VRAM range and an IOVA table, as checked at enable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    pub vram_base: u64,
    pub vram_size: u64,
    /// Host DPA of the IOVA table.
    pub iova_table: u64,
    pub iova_pages: u64,
}

/// How a tenant's DPAs reach memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// DPAs as the rest of the spec defines them: VRAM offsets and bus addresses.
    Host,
    /// Partition-relative DPAs.
    Part(Slice),
}

/// One partition slot: the host's registers and the window's own state.
#[derive(Clone, Copy, Debug)]
pub struct Partition {
    pub enabled: bool,
    pub error: PartError,
    pub vram_base: u64,
    pub vram_size: u64,
    pub queues: u32,
    pub contexts: u32,
    pub quantum: u32,
    pub iova_table: u64,
    pub iova_pages: u32,
    /// The queue whose request `PART_PAGE_REQ` shows; other stalled queues wait their turn.
    pub presented: Option<usize>,
    pub vec_pending: u32,
    /// The window's INT_STATUS, INT_MASK and SCRATCH.
    pub int_status: u32,
    pub int_mask: u32,
    pub scratch: u32,
}

impl Default for Partition {
    fn default() -> Self {
        Self {
            enabled: false,
            error: PartError::None,
            vram_base: 0,
            vram_size: 0,
            queues: 0,
            contexts: 0,
            quantum: 0,
            iova_table: 0,
            iova_pages: 0,
            presented: None,
            vec_pending: 0,
            int_status: 0,
            int_mask: regs::INT_MASK_RESET,
            scratch: 0,
        }
    }
}

impl Partition {
    pub fn slice(&self) -> Slice {
        Slice {
            vram_base: self.vram_base,
            vram_size: self.vram_size,
            iova_table: self.iova_table,
            iova_pages: u64::from(self.iova_pages),
        }
    }

    /// Interrupt sources of the window: its queues, errors and faults (never PARTITION).
    pub fn valid_sources(&self) -> u32 {
        let queues = (1u32 << self.queues.count_ones()) - 1;
        queues | regs::IntSources::QUEUE_ERROR.mask32() | regs::IntSources::MMU_FAULT.mask32()
    }

    fn status(&self) -> u32 {
        let s = regs::PartStatus(0)
            .with_enabled(self.enabled)
            .with_page_request(self.presented.is_some())
            .with_config_error(self.error != PartError::None)
            .with_config_code(self.error.raw());
        s.bits()
    }

    fn vram_end(&self) -> Option<u64> {
        self.vram_base.checked_add(self.vram_size)
    }
}

/// The `n`-th set bit of `mask`: local queue or context `n` of a partition.
pub fn nth_bit(mask: u32, n: usize) -> Option<usize> {
    (0..32).filter(|b| mask & (1 << b) != 0).nth(n)
}

/// How many set bits of `mask` are below `bit`: the local number of global `bit`.
pub fn rank(mask: u32, bit: usize) -> usize {
    (mask & ((1u32 << bit) - 1)).count_ones() as usize
}

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

impl State {
    /// Enabled partitions other than `p`.
    fn others(&self, p: usize) -> impl Iterator<Item = &Partition> {
        self.partitions
            .iter()
            .enumerate()
            .filter(move |(i, o)| *i != p && o.enabled)
            .map(|(_, o)| o)
    }

    pub fn queue_owner(&self, q: usize) -> Tenant {
        self.partitions
            .iter()
            .position(|p| p.enabled && p.queues & (1 << q) != 0)
            .map_or(Tenant::Pf, Tenant::Part)
    }

    pub fn context_owner(&self, c: usize) -> Tenant {
        self.partitions
            .iter()
            .position(|p| p.enabled && p.contexts & (1 << c) != 0)
            .map_or(Tenant::Pf, Tenant::Part)
    }

    /// The queue's number as its owner sees it.
    pub fn local_queue(&self, q: usize) -> usize {
        match self.queue_owner(q) {
            Tenant::Pf => q,
            Tenant::Part(p) => rank(self.partitions[p].queues, q),
        }
    }

    /// The context `Q_CONTEXT` of queue `q` stands for, if the queue may use it: a PF queue
    /// any context no partition owns, a partition's queue one of its own (by local number).
    pub fn queue_context(&self, q: usize) -> Option<usize> {
        let local = self.queues[q].context;
        match self.queue_owner(q) {
            Tenant::Pf => (self.context_owner(local) == Tenant::Pf).then_some(local),
            Tenant::Part(p) => nth_bit(self.partitions[p].contexts, local),
        }
    }

    pub fn space(&self, t: Tenant) -> Space {
        match t {
            Tenant::Pf => Space::Host,
            Tenant::Part(p) => Space::Part(self.partitions[p].slice()),
        }
    }

    /// The first reason partition `p`'s configuration cannot be enabled (partitions.rst,
    /// "Enable checks"), in the order of the codes.
    fn enable_check(&self, p: usize, vram_size: u64, num_queues: usize) -> Result<(), PartError> {
        let me = &self.partitions[p];
        self.range_check(me, vram_size)?;
        if self
            .others(p)
            .any(|o| overlaps(me.vram_base, me.vram_size, o.vram_base, o.vram_size))
        {
            return Err(PartError::VramOverlap);
        }
        let taken = self.others(p).fold(0, |m, o| m | o.queues);
        if me.queues & (taken | !((1u32 << num_queues) - 1)) != 0 {
            return Err(PartError::QueueConflict);
        }
        if me.contexts & self.others(p).fold(0, |m, o| m | o.contexts) != 0 {
            return Err(PartError::ContextConflict);
        }
        self.iova_table_check(p, vram_size)
    }

    /// Alignment and range of the VRAM slice and the table's alignment (codes 1 and 2).
    fn range_check(&self, me: &Partition, vram_size: u64) -> Result<(), PartError> {
        if me.vram_base & (part::VRAM_ALIGN - 1) != 0
            || me.vram_size & (part::VRAM_ALIGN - 1) != 0
            || me.iova_table & (part::IOVA_TABLE_ALIGN - 1) != 0
        {
            return Err(PartError::BadAlignment);
        }
        match me.vram_end() {
            Some(end) if me.vram_size != 0 && end <= vram_size => Ok(()),
            _ => Err(PartError::BadRange),
        }
    }

    /// A table in VRAM must be whole, and no partition may reach any partition's table: a
    /// guest that could write its own table could map any host page.
    fn iova_table_check(&self, p: usize, vram_size: u64) -> Result<(), PartError> {
        let me = &self.partitions[p];
        let in_vram = |t: u64| t & vela_hw::dpa::VRAM != 0;
        let table_len = |o: &Partition| u64::from(o.iova_pages) * 8;
        if in_vram(me.iova_table) {
            let off = me.iova_table & vela_hw::dpa::OFFSET_MASK;
            let len = table_len(me);
            let whole = off.checked_add(len).is_some_and(|end| end <= vram_size);
            let reachable = std::iter::once(me)
                .chain(self.others(p))
                .any(|o| overlaps(off, len.max(1), o.vram_base, o.vram_size));
            if !whole || reachable {
                return Err(PartError::BadIovaTable);
            }
        }
        let exposes_other = self.others(p).any(|o| {
            in_vram(o.iova_table)
                && overlaps(
                    o.iova_table & vela_hw::dpa::OFFSET_MASK,
                    table_len(o).max(1),
                    me.vram_base,
                    me.vram_size,
                )
        });
        if exposes_other {
            return Err(PartError::BadIovaTable);
        }
        Ok(())
    }

    /// Queues and contexts of partition `p` to reset values, its window state cleared, its
    /// page requests dropped. The configuration stays.
    fn clear_partition(&mut self, p: usize) {
        let Partition {
            queues, contexts, ..
        } = self.partitions[p];
        for q in (0..self.queues.len()).filter(|q| queues & (1 << q) != 0) {
            self.queues[q].reset_all();
        }
        for c in (0..regs::NUM_CONTEXTS).filter(|c| contexts & (1 << c) != 0) {
            self.contexts[c] = ContextState::default();
        }
        let me = &mut self.partitions[p];
        me.presented = None;
        me.vec_pending = 0;
        me.int_status = 0;
        me.int_mask = regs::INT_MASK_RESET;
        me.scratch = 0;
    }
}

impl Device {
    /// A write to partition `p`'s `PART_CONTROL`. The caller has waited for the commands of
    /// the queues in `PART_QUEUES`, so resetting them here leaves nothing writing.
    pub(crate) fn part_control(&self, st: &mut State, p: usize, value: u32, ones: u32) {
        let c = regs::PartControl(ones);
        if c.reset() {
            self.part_reset(st, p);
        }
        let enable = regs::PartControl(value).enable();
        if enable && !st.partitions[p].enabled {
            self.part_enable(st, p);
        } else if !enable && st.partitions[p].enabled {
            // Disable implies reset; the queues and contexts go back to the PF clean.
            self.part_reset(st, p);
            st.partitions[p].enabled = false;
        }
        if c.scrub() {
            self.part_scrub(st, p);
        }
        // INVALIDATE_IOVA: the model caches no IOVA entry beyond one command, and the caller
        // waited for the partition's commands in flight; nothing is left to drop.
    }

    fn part_enable(&self, st: &mut State, p: usize) {
        st.partitions[p].error = PartError::None;
        if let Err(e) = st.enable_check(p, self.opts.vram_size, st.queues.len()) {
            log::debug!("partition {p}: enable refused: {e:?}");
            st.partitions[p].error = e;
            return;
        }
        // The queues and contexts may hold the PF's ring, fence and table addresses, which
        // would mean something else inside the partition: it starts from reset values.
        st.clear_partition(p);
        st.partitions[p].enabled = true;
        self.kick(st);
    }

    /// PART_CONTROL.RESET, the window's DEVICE_CONTROL.RESET, and ENABLE 1 -> 0.
    pub(crate) fn part_reset(&self, st: &mut State, p: usize) {
        if st.partitions[p].enabled {
            st.clear_partition(p);
        }
        st.partitions[p].presented = None;
    }

    /// Zero-fill the slice. Only a disabled partition: an enabled one is a live guest's memory.
    fn part_scrub(&self, st: &mut State, p: usize) {
        st.partitions[p].error = PartError::None;
        let me = st.partitions[p];
        let checked = if me.enabled {
            Err(PartError::Enabled)
        } else {
            st.range_check(&me, self.opts.vram_size)
        };
        if let Err(e) = checked {
            st.partitions[p].error = e;
            return;
        }
        const BLOCK: u64 = 1 << 20;
        let zeros = vec![0u8; BLOCK as usize];
        let mut off = 0;
        while off < me.vram_size {
            let n = BLOCK.min(me.vram_size - off);
            // The range was checked against VRAM_SIZE above, so this cannot fail.
            let _ = self.vram.write(me.vram_base + off, &zeros[..n as usize]);
            off += n;
        }
    }

    /// PART_PAGE_RESP: finish the presented request, then present the next stalled queue.
    fn part_respond(&self, st: &mut State, p: usize, resp: regs::PartPageResp) {
        let Some(q) = st.partitions[p].presented.take() else {
            return;
        };
        if let Some(req) = st.queues[q].stall.take() {
            if resp.deny() {
                self.queue_error(st, q, regs::QueueError::DmaError, req.iova);
            } else if resp.retry() {
                self.kick(st);
            } else {
                // Neither bit: no response; the request stays presented.
                st.queues[q].stall = Some(req);
                st.partitions[p].presented = Some(q);
                return;
            }
        }
        self.present_next(st, p);
    }

    /// A command of queue `q` (partition `p`) stalled on a page request.
    pub(crate) fn page_request(&self, st: &mut State, p: usize, q: usize, req: PageRequest) {
        st.queues[q].busy = false;
        st.queues[q].stall = Some(req);
        log::debug!("partition {p} queue {q}: page request {req:?}");
        self.present_next(st, p);
    }

    /// Queue `q` stopped waiting without an answer (it was reset or entered the error state):
    /// if its request was the one presented, present the next one instead.
    pub(crate) fn withdraw_request(&self, st: &mut State, q: usize) {
        if let Tenant::Part(p) = st.queue_owner(q) {
            if st.partitions[p].presented == Some(q) {
                st.partitions[p].presented = None;
                self.present_next(st, p);
            }
        }
    }

    /// If no request is presented, present the first stalled queue's and tell the host.
    fn present_next(&self, st: &mut State, p: usize) {
        if st.partitions[p].presented.is_some() {
            return;
        }
        let mask = st.partitions[p].queues;
        let next =
            (0..st.queues.len()).find(|&q| mask & (1 << q) != 0 && st.queues[q].stall.is_some());
        if let Some(q) = next {
            st.partitions[p].presented = Some(q);
            self.raise(st, regs::IntSources::PARTITION.mask32());
        }
    }

    /// Raise sources of partition `p`'s window (local numbering). Each unmasked one relays its
    /// vector to the host through PART_VEC_PENDING and the PF's PARTITION source.
    pub(crate) fn raise_in_partition(&self, st: &mut State, p: usize, sources: u32) {
        let me = &mut st.partitions[p];
        let sources = sources & me.valid_sources();
        me.int_status |= sources;
        let unmasked = sources & !me.int_mask;
        self.relay(st, p, unmasked);
    }

    /// Send the messages of partition `p`'s `sources`: to the host, which delivers them.
    pub(crate) fn relay(&self, st: &mut State, p: usize, sources: u32) {
        if sources == 0 {
            return;
        }
        let vectors = (0..32)
            .filter(|b| sources & (1 << b) != 0)
            .fold(0u32, |v, b| v | 1 << crate::irq::source_vector(b));
        st.partitions[p].vec_pending |= vectors;
        self.raise(st, regs::IntSources::PARTITION.mask32());
    }

    /// A read of partition `p`'s host block.
    pub(crate) fn part_read(&self, st: &State, p: usize, off: u32) -> u32 {
        let me = &st.partitions[p];
        let req = me.presented.and_then(|q| st.queues[q].stall);
        match off {
            part::CONTROL => u32::from(me.enabled),
            part::STATUS => me.status(),
            part::VRAM_BASE_LO => me.vram_base as u32,
            part::VRAM_BASE_HI => (me.vram_base >> 32) as u32,
            part::VRAM_SIZE_LO => me.vram_size as u32,
            part::VRAM_SIZE_HI => (me.vram_size >> 32) as u32,
            part::QUEUES => me.queues,
            part::CONTEXTS => me.contexts,
            part::QUANTUM => me.quantum,
            part::IOVA_TABLE_LO => me.iova_table as u32,
            part::IOVA_TABLE_HI => (me.iova_table >> 32) as u32,
            part::IOVA_PAGES => me.iova_pages,
            part::PAGE_REQ_LO => req.map_or(0, |r| {
                regs::PartPageReqLo(r.iova as u32 & !0xfff)
                    .with_write(r.write)
                    .bits()
            }),
            part::PAGE_REQ_HI => req.map_or(0, |r| (r.iova >> 32) as u32),
            part::VEC_PENDING => me.vec_pending,
            _ => 0,
        }
    }

    /// A write to partition `p`'s host block; `merge` applies the access's byte mask.
    pub(crate) fn part_write(
        &self,
        st: &mut State,
        p: usize,
        off: u32,
        merge: impl Fn(u32) -> u32,
        ones: u32,
    ) {
        match off {
            part::CONTROL => {
                let value = merge(u32::from(st.partitions[p].enabled));
                return self.part_control(st, p, value, ones);
            }
            part::PAGE_RESP => return self.part_respond(st, p, regs::PartPageResp(ones)),
            _ => {}
        }
        let me = &mut st.partitions[p];
        // What the enable checks accepted cannot change under a running guest.
        let locked = me.enabled;
        let lo = |v: u64| (v & !0xffff_ffff) | u64::from(merge(v as u32));
        let hi = |v: u64| (v & 0xffff_ffff) | u64::from(merge((v >> 32) as u32)) << 32;
        match off {
            part::VRAM_BASE_LO if !locked => me.vram_base = lo(me.vram_base),
            part::VRAM_BASE_HI if !locked => me.vram_base = hi(me.vram_base),
            part::VRAM_SIZE_LO if !locked => me.vram_size = lo(me.vram_size),
            part::VRAM_SIZE_HI if !locked => me.vram_size = hi(me.vram_size),
            part::QUEUES if !locked => {
                me.queues = merge(me.queues) & regs::PartQueues::QUEUES.mask32()
            }
            part::CONTEXTS if !locked => {
                me.contexts = merge(me.contexts) & regs::PartContexts::CONTEXTS.mask32()
            }
            part::IOVA_TABLE_LO if !locked => me.iova_table = lo(me.iova_table),
            part::IOVA_TABLE_HI if !locked => me.iova_table = hi(me.iova_table),
            part::IOVA_PAGES if !locked => me.iova_pages = merge(me.iova_pages),
            // Only shares engine time, so the host may retune it under a running guest.
            part::QUANTUM => me.quantum = merge(me.quantum),
            part::VEC_PENDING => me.vec_pending &= !ones,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_numbering() {
        let mask = 0b1010_0100;
        assert_eq!(nth_bit(mask, 0), Some(2));
        assert_eq!(nth_bit(mask, 2), Some(7));
        assert_eq!(nth_bit(mask, 3), None);
        assert_eq!(rank(mask, 5), 1);
        assert_eq!(rank(mask, 7), 2);
        for t in 0..Tenant::COUNT {
            assert_eq!(Tenant::from_index(t).index(), t);
        }
    }
}
