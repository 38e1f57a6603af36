// SPDX-License-Identifier: GPL-2.0
//! BAR0 register semantics (registers.rst). Offsets and fields come from
//! `vela_hw::regs`; this file only says what reading and writing them does.

use crate::device::{Device, State};
use crate::irq::source_vector;
use crate::partition::{nth_bit, Tenant};
use vela_hw::regs::{self, ctx, queue, Counter, QueueError};

/// Whose registers an access reaches: the PF's BAR0, or partition P's window in BAR4, which
/// has the BAR0 layout seen from inside the partition (partitions.rst, "Register window").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    Pf,
    Window(usize),
}

/// Which block of a register map a register offset falls in. Queue and context indices are
/// the device's (global) ones, whatever numbering the view uses.
enum Block {
    Queue(usize, u32),
    Context(usize, u32),
    Counter(usize, bool),
    MsixEntry(usize, usize),
    Partition(usize, u32),
    /// Registers this view does not have: read 0, writes ignored.
    Absent,
    Other,
}

fn in_array(reg: u32, base: u32, stride: u32, count: usize) -> Option<(usize, u32)> {
    let rel = reg.checked_sub(base)?;
    let idx = (rel / stride) as usize;
    (idx < count).then_some((idx, rel % stride))
}

fn block(st: &State, view: View, reg: u32) -> Block {
    let n = st.queues.len();
    if let Some((q, off)) = in_array(reg, regs::QUEUE_BASE, regs::QUEUE_STRIDE, n) {
        return st
            .view_queue(view, q)
            .map_or(Block::Absent, |q| Block::Queue(q, off));
    }
    let contexts = regs::NUM_CONTEXTS;
    if let Some((c, off)) = in_array(reg, regs::CTX_BASE, regs::CTX_STRIDE, contexts) {
        return st
            .view_context(view, c)
            .map_or(Block::Absent, |c| Block::Context(c, off));
    }
    let parts = regs::NUM_PARTITIONS;
    let host = [
        (regs::COUNTER_BASE, regs::COUNTER_STRIDE, regs::NUM_COUNTERS),
        (regs::MSIX_TABLE, regs::MSIX_ENTRY_SIZE, st.msix_table.len()),
        (regs::PART_BASE, regs::PART_STRIDE, parts),
    ];
    for (i, (base, stride, count)) in host.into_iter().enumerate() {
        let Some((idx, off)) = in_array(reg, base, stride, count) else {
            continue;
        };
        // Counters, the MSI-X table and the partition registers are the host's.
        return match (view, i) {
            (View::Window(_), _) => Block::Absent,
            (View::Pf, 0) => Block::Counter(idx, off == 4),
            (View::Pf, 1) => Block::MsixEntry(idx, off as usize / 4),
            (View::Pf, _) => Block::Partition(idx, off),
        };
    }
    Block::Other
}

impl State {
    /// The device queue behind queue block `local` of `view`, if the view has it.
    fn view_queue(&self, view: View, local: usize) -> Option<usize> {
        match view {
            View::Pf => (self.queue_owner(local) == Tenant::Pf).then_some(local),
            View::Window(p) => nth_bit(self.partitions[p].queues, local),
        }
    }

    fn view_context(&self, view: View, local: usize) -> Option<usize> {
        match view {
            View::Pf => (self.context_owner(local) == Tenant::Pf).then_some(local),
            View::Window(p) => nth_bit(self.partitions[p].contexts, local),
        }
    }

    /// (local, device) numbers of the queues the view shows.
    fn view_queues(&self, view: View) -> Vec<(usize, usize)> {
        (0..self.queues.len())
            .filter_map(|l| Some((l, self.view_queue(view, l)?)))
            .collect()
    }

    fn view_contexts(&self, view: View) -> Vec<(usize, usize)> {
        (0..regs::NUM_CONTEXTS)
            .filter_map(|l| Some((l, self.view_context(view, l)?)))
            .collect()
    }

    /// A summary register of the view: bit `local` for each item whose `on` holds.
    fn view_summary(&self, items: Vec<(usize, usize)>, on: impl Fn(usize) -> bool) -> u32 {
        items
            .into_iter()
            .filter(|&(_, g)| on(g))
            .fold(0, |acc, (l, _)| acc | 1 << l)
    }

    fn device_status(&self, view: View) -> u32 {
        let errors = self.view_summary(self.view_queues(view), |q| {
            self.queues[q].error != QueueError::None
        });
        let faults = self.view_summary(self.view_contexts(view), |c| self.contexts[c].faulted());
        regs::DeviceStatus(0)
            .with_ready(true)
            .with_queue_error(errors != 0)
            .with_mmu_fault(faults != 0)
            .bits()
    }
}

/// What the identity registers of a view report.
struct Identity {
    caps: regs::Caps,
    vram_size: u64,
    queues: usize,
    contexts: usize,
    partitions: usize,
}

impl Device {
    fn identity(&self, st: &State, view: View) -> Identity {
        match view {
            View::Pf => Identity {
                caps: regs::Caps::ALL,
                vram_size: self.opts.vram_size,
                queues: self.opts.queues as usize,
                contexts: regs::NUM_CONTEXTS,
                partitions: regs::NUM_PARTITIONS,
            },
            View::Window(p) => {
                let me = &st.partitions[p];
                Identity {
                    caps: regs::Caps::WINDOW,
                    vram_size: me.vram_size,
                    queues: me.queues.count_ones() as usize,
                    contexts: me.contexts.count_ones() as usize,
                    partitions: 0,
                }
            }
        }
    }

    pub fn bar0_read(&self, reg: u32) -> u32 {
        self.view_read(View::Pf, reg)
    }

    /// `mask` selects the bytes the access carried; other bytes keep their value.
    pub fn bar0_write(&self, reg: u32, value: u32, mask: u32) {
        self.view_write(View::Pf, reg, value, mask)
    }

    /// A read of partition `p`'s window in BAR4. A disabled partition's window reads 0.
    pub fn window_read(&self, p: usize, reg: u32) -> u32 {
        let enabled = self.lock().partitions.get(p).is_some_and(|me| me.enabled);
        if !enabled {
            return 0;
        }
        self.view_read(View::Window(p), reg)
    }

    /// A write to partition `p`'s window in BAR4. A disabled partition's window ignores it.
    pub fn window_write(&self, p: usize, reg: u32, value: u32, mask: u32) {
        let enabled = self.lock().partitions.get(p).is_some_and(|me| me.enabled);
        if enabled {
            self.view_write(View::Window(p), reg, value, mask)
        }
    }

    fn view_read(&self, view: View, reg: u32) -> u32 {
        let mut st = self.lock();
        // The partition may have been disabled since the caller looked.
        if matches!(view, View::Window(p) if !st.partitions[p].enabled) {
            return 0;
        }
        match block(&st, view, reg) {
            Block::Queue(q, off) => return queue_read(&st, q, off),
            Block::Context(c, off) => return context_read(&st, c, off),
            Block::Counter(n, high) => {
                if high {
                    return st.counter_latch[n];
                }
                let v = st.counters[n];
                st.counter_latch[n] = (v >> 32) as u32;
                return v as u32;
            }
            Block::MsixEntry(v, dw) => return st.msix_table[v][dw],
            Block::Partition(p, off) => return self.part_read(&st, p, off),
            Block::Absent => return 0,
            Block::Other => {}
        }
        let id = self.identity(&st, view);
        let (int_status, int_mask, scratch) = match view {
            View::Pf => (st.int_status, st.int_mask, st.scratch),
            View::Window(p) => {
                let me = &st.partitions[p];
                (me.int_status, me.int_mask, me.scratch)
            }
        };
        match reg {
            regs::ID => regs::ID_VALUE,
            regs::VERSION => regs::VERSION_VALUE,
            regs::CAPS => id.caps.bits(),
            regs::DEVICE_SERIAL => self.opts.serial,
            regs::VRAM_SIZE_LO => id.vram_size as u32,
            regs::VRAM_SIZE_HI => (id.vram_size >> 32) as u32,
            regs::TOPOLOGY => regs::Topology(0)
                .with_queues(id.queues as u8)
                .with_engines(self.opts.engines as u8)
                .bits(),
            regs::SCRATCH => scratch,
            regs::TOPOLOGY2 => regs::Topology2(0)
                .with_contexts(id.contexts as u8)
                .with_vectors(regs::queue_vector(id.queues) as u8)
                .with_va_bits(vela_hw::mmu::VA_BITS as u8)
                .bits(),
            regs::TOPOLOGY3 => regs::Topology3(0)
                .with_partitions(id.partitions as u8)
                .bits(),
            regs::PF_QUANTUM if view == View::Pf => st.pf_quantum,
            regs::DEVICE_STATUS => st.device_status(view),
            regs::INT_STATUS => int_status,
            regs::INT_MASK => int_mask,
            regs::QUEUE_ERROR_SUMMARY => st.view_summary(st.view_queues(view), |q| {
                st.queues[q].error != QueueError::None
            }),
            regs::CTX_FAULT_SUMMARY => {
                st.view_summary(st.view_contexts(view), |c| st.contexts[c].faulted())
            }
            // PBA: pending state lives with the client's MSI-X emulation.
            _ => 0,
        }
    }

    fn view_write(&self, view: View, reg: u32, value: u32, mask: u32) {
        let mut st = self.lock();
        if matches!(view, View::Window(p) if !st.partitions[p].enabled) {
            return;
        }
        let ones = value & mask;
        st = self.wait_for_write(st, view, reg, ones);
        let st = &mut *st;
        let merge = |old: u32| (old & !mask) | (value & mask);
        match block(st, view, reg) {
            Block::Queue(q, off) => return self.queue_write(st, q, off, merge, ones),
            Block::Context(c, off) => return self.context_write(st, c, off, merge, ones),
            Block::Partition(p, off) => return self.part_write(st, p, off, merge, ones),
            Block::Counter(..) | Block::Absent => return,
            Block::MsixEntry(v, dw) => {
                let e = &mut st.msix_table[v][dw];
                *e = if dw == 3 { merge(*e) & 1 } else { merge(*e) };
                return;
            }
            Block::Other => {}
        }
        match view {
            View::Pf => self.pf_global_write(st, reg, merge, ones),
            View::Window(p) => self.window_global_write(st, p, reg, merge, ones),
        }
    }

    /// A reset completes only once no command it aborts is still writing, and an
    /// invalidation once no command uses what it drops: wait for those commands before the
    /// write takes effect.
    fn wait_for_write<'a>(
        &self,
        st: std::sync::MutexGuard<'a, State>,
        view: View,
        reg: u32,
        ones: u32,
    ) -> std::sync::MutexGuard<'a, State> {
        let device_reset =
            reg == regs::DEVICE_CONTROL && ones & regs::DeviceControl::RESET.mask32() != 0;
        match block(&st, view, reg) {
            Block::Queue(q, queue::CONTROL) if ones & regs::QControl::RESET.mask32() != 0 => {
                self.quiesce(st, |i| i == q)
            }
            Block::Other if device_reset => match view {
                View::Pf => self.quiesce(st, |_| true),
                View::Window(p) => {
                    let mine = st.partitions[p].queues;
                    self.quiesce(st, |i| mine & (1 << i) != 0)
                }
            },
            // A command holds its translations for its whole run (a copy may go through one
            // mapping for 64 MiB). INVALIDATE is complete when the write is: the context's
            // commands in flight finish first, so once the driver sees the write done no
            // access goes through a translation it removed, and it may free the memory.
            Block::Context(c, ctx::CONTROL)
                if ones & regs::CtxControl::INVALIDATE.mask32() != 0 =>
            {
                let on_context: Vec<usize> = (0..st.queues.len())
                    .filter(|&i| st.queue_context(i) == Some(c))
                    .collect();
                self.quiesce(st, |i| on_context.contains(&i))
            }
            // Any PART_CONTROL write may reset, enable (taking queues from the PF) or
            // invalidate: the queues it names finish their commands first.
            Block::Partition(p, regs::part::CONTROL) => {
                let mine = st.partitions[p].queues;
                self.quiesce(st, |i| mine & (1 << i) != 0)
            }
            _ => st,
        }
    }

    fn pf_global_write(&self, st: &mut State, reg: u32, merge: impl Fn(u32) -> u32, ones: u32) {
        match reg {
            regs::SCRATCH => st.scratch = merge(st.scratch),
            regs::PF_QUANTUM => st.pf_quantum = merge(st.pf_quantum),
            regs::DEVICE_CONTROL if ones & regs::DeviceControl::RESET.mask32() != 0 => {
                self.reset_locked(st)
            }
            regs::INT_STATUS => st.int_status &= !ones,
            regs::INT_MASK => {
                let old = st.int_mask;
                st.int_mask = merge(old);
                // Unmasking a source that is already pending sends its message now.
                let unmasked = old & !st.int_mask & st.int_status;
                if unmasked != 0 {
                    self.resend(st, unmasked);
                }
            }
            regs::INT_TRIGGER => self.raise(st, ones & regs::IntSources::VALID),
            regs::COUNTER_CONTROL if ones & regs::CounterControl::CLEAR.mask32() != 0 => {
                st.counters = [0; regs::NUM_COUNTERS];
            }
            _ => {}
        }
    }

    /// The window's global registers: the partition's own interrupt state and scratch, and
    /// a reset of the partition alone. Host registers (counters, PF_QUANTUM) are absent.
    fn window_global_write(
        &self,
        st: &mut State,
        p: usize,
        reg: u32,
        merge: impl Fn(u32) -> u32,
        ones: u32,
    ) {
        let me = &mut st.partitions[p];
        match reg {
            regs::SCRATCH => me.scratch = merge(me.scratch),
            regs::DEVICE_CONTROL if ones & regs::DeviceControl::RESET.mask32() != 0 => {
                self.part_reset(st, p)
            }
            regs::INT_STATUS => me.int_status &= !ones,
            regs::INT_MASK => {
                let old = me.int_mask;
                me.int_mask = merge(old);
                let unmasked = old & !me.int_mask & me.int_status;
                self.relay(st, p, unmasked);
            }
            regs::INT_TRIGGER => self.raise_in_partition(st, p, ones),
            _ => {}
        }
    }

    fn resend(&self, st: &mut State, sources: u32) {
        let mut sent = 0u64;
        for bit in (0..32).filter(|b| sources & (1 << b) != 0) {
            let vector = source_vector(bit);
            // Both error sources share vector 0: one message covers them.
            if sent & (1 << vector) == 0 {
                sent |= 1 << vector;
                self.send(st, vector);
            }
        }
    }

    fn queue_write(
        &self,
        st: &mut State,
        q: usize,
        off: u32,
        merge: impl Fn(u32) -> u32,
        ones: u32,
    ) {
        let qs = &mut st.queues[q];
        let frozen = qs.enabled;
        match off {
            queue::RING_BASE_LO if !frozen => {
                let lo = merge(qs.ring_base as u32) & !(regs::queue::RING_ALIGN as u32 - 1);
                qs.ring_base = (qs.ring_base & !0xffff_ffff) | u64::from(lo);
            }
            queue::RING_BASE_HI if !frozen => {
                let hi = merge((qs.ring_base >> 32) as u32);
                qs.ring_base = (qs.ring_base & 0xffff_ffff) | u64::from(hi) << 32;
            }
            queue::RING_SIZE if !frozen => {
                qs.ring_log2 = merge(qs.ring_log2) & regs::QRingSize::LOG2_SLOTS.mask32()
            }
            queue::CONTEXT if !frozen => {
                qs.context = (merge(qs.context as u32) & regs::QContext::CONTEXT.mask32()) as usize
            }
            queue::FENCE_BASE_LO if !frozen => {
                let lo = merge(qs.fence_base as u32) & !(queue::FENCE_ALIGN as u32 - 1);
                qs.fence_base = (qs.fence_base & !0xffff_ffff) | u64::from(lo);
            }
            queue::FENCE_BASE_HI if !frozen => {
                let hi = merge((qs.fence_base >> 32) as u32);
                qs.fence_base = (qs.fence_base & 0xffff_ffff) | u64::from(hi) << 32;
            }
            queue::CONTROL => {
                if ones & regs::QControl::RESET.mask32() != 0 {
                    qs.reset();
                    self.withdraw_request(st, q);
                }
                let enable =
                    merge(u32::from(st.queues[q].enabled)) & regs::QControl::ENABLE.mask32() != 0;
                self.set_enable(st, q, enable);
            }
            queue::TAIL => self.set_tail(st, q, merge(st.queues[q].tail), false),
            queue::DOORBELL => {
                st.count(Counter::Doorbells, 1);
                self.set_tail(st, q, merge(0), true);
            }
            _ => {}
        }
    }

    fn set_enable(&self, st: &mut State, q: usize, enable: bool) {
        let qs = &mut st.queues[q];
        if enable == qs.enabled || qs.error != QueueError::None {
            return;
        }
        if !enable {
            qs.enabled = false;
            return;
        }
        if !qs.ring_valid() {
            let base = qs.ring_base;
            self.queue_error(st, q, QueueError::BadRing, base);
            return;
        }
        if st.queue_context(q).is_none() {
            self.queue_error(st, q, QueueError::BadContext, 0);
            return;
        }
        st.queues[q].enabled = true;
        self.kick(st);
    }

    fn set_tail(&self, st: &mut State, q: usize, value: u32, doorbell: bool) {
        let qs = &mut st.queues[q];
        let tail = value & 0xffff;
        if qs.enabled && tail >= qs.slots() {
            self.queue_error(st, q, QueueError::BadRing, 0);
            return;
        }
        qs.tail = tail;
        if doorbell {
            self.kick(st);
        }
    }

    fn context_write(
        &self,
        st: &mut State,
        c: usize,
        off: u32,
        merge: impl Fn(u32) -> u32,
        ones: u32,
    ) {
        let cs = &mut st.contexts[c];
        match off {
            ctx::PT_BASE_LO => {
                let lo = merge(cs.pt_base as u32) & regs::CtxPtBaseLo::ADDR.mask32();
                cs.pt_base = (cs.pt_base & !0xffff_ffff) | u64::from(lo);
            }
            ctx::PT_BASE_HI => {
                let hi = merge((cs.pt_base >> 32) as u32);
                cs.pt_base = (cs.pt_base & 0xffff_ffff) | u64::from(hi) << 32;
            }
            ctx::CONTROL => {
                cs.enabled = merge(u32::from(cs.enabled)) & regs::CtxControl::ENABLE.mask32() != 0;
                // INVALIDATE waited above for the context's commands in flight; the next
                // command walks the tables afresh.
                if ones & regs::CtxControl::FAULT_CLEAR.mask32() != 0 {
                    cs.fault_status = 0;
                    cs.fault_addr = 0;
                    self.kick(st);
                }
            }
            _ => {}
        }
    }
}

fn queue_read(st: &State, q: usize, off: u32) -> u32 {
    let qs = &st.queues[q];
    match off {
        queue::RING_BASE_LO => qs.ring_base as u32,
        queue::RING_BASE_HI => (qs.ring_base >> 32) as u32,
        queue::RING_SIZE => qs.ring_log2,
        queue::CONTEXT => qs.context as u32,
        queue::CONTROL => u32::from(qs.enabled),
        queue::STATUS => {
            // Q_CONTEXT may be a partition's local number: ask which context it stands for.
            let stopped = st
                .queue_context(q)
                .is_some_and(|c| st.contexts[c].faulted());
            let idle = !qs.enabled || (qs.head == qs.tail && !qs.busy);
            let mut v = (qs.error as u32) << regs::QStatus::ERROR_CODE.lo;
            for (on, bit) in [
                (idle, regs::QStatus::IDLE.mask32()),
                (qs.error != QueueError::None, regs::QStatus::ERROR.mask32()),
                (stopped, regs::QStatus::FAULT_STOPPED.mask32()),
                (qs.enabled, regs::QStatus::ENABLED.mask32()),
            ] {
                if on {
                    v |= bit;
                }
            }
            v
        }
        queue::HEAD => qs.head,
        queue::TAIL => qs.tail,
        queue::COMPLETED => qs.completed,
        queue::ERROR_ADDR_LO => qs.error_addr as u32,
        queue::ERROR_ADDR_HI => (qs.error_addr >> 32) as u32,
        queue::FENCE_BASE_LO => qs.fence_base as u32,
        queue::FENCE_BASE_HI => (qs.fence_base >> 32) as u32,
        _ => 0,
    }
}

fn context_read(st: &State, c: usize, off: u32) -> u32 {
    let cs = &st.contexts[c];
    match off {
        ctx::PT_BASE_LO => cs.pt_base as u32,
        ctx::PT_BASE_HI => (cs.pt_base >> 32) as u32,
        ctx::CONTROL => u32::from(cs.enabled),
        ctx::FAULT_STATUS => cs.fault_status,
        ctx::FAULT_ADDR_LO => cs.fault_addr as u32,
        ctx::FAULT_ADDR_HI => (cs.fault_addr >> 32) as u32,
        _ => 0,
    }
}
