// SPDX-License-Identifier: GPL-2.0
//! BAR0 register semantics (registers.rst). Offsets and fields come from
//! `vela_hw::regs`; this file only says what reading and writing them does.

use crate::device::{Device, State};
use crate::irq::source_vector;
use vela_hw::regs::{self, ctx, queue, Counter, QueueError};

/// Which block of BAR0 a register offset falls in.
enum Block {
    Queue(usize, u32),
    Context(usize, u32),
    Counter(usize, bool),
    MsixEntry(usize, usize),
    Other,
}

fn block(st: &State, reg: u32) -> Block {
    let in_array = |base: u32, stride: u32, count: usize| {
        let rel = reg.checked_sub(base)?;
        let idx = (rel / stride) as usize;
        (idx < count).then_some((idx, rel % stride))
    };
    if let Some((q, off)) = in_array(regs::QUEUE_BASE, regs::QUEUE_STRIDE, st.queues.len()) {
        Block::Queue(q, off)
    } else if let Some((c, off)) = in_array(regs::CTX_BASE, regs::CTX_STRIDE, regs::NUM_CONTEXTS) {
        Block::Context(c, off)
    } else if let Some((n, off)) = in_array(regs::COUNTER_BASE, 8, regs::NUM_COUNTERS) {
        Block::Counter(n, off == 4)
    } else if let Some((v, off)) =
        in_array(regs::MSIX_TABLE, regs::MSIX_ENTRY_SIZE, st.msix_table.len())
    {
        Block::MsixEntry(v, off as usize / 4)
    } else {
        Block::Other
    }
}

impl Device {
    pub fn bar0_read(&self, reg: u32) -> u32 {
        let mut st = self.lock();
        let o = &self.opts;
        match block(&st, reg) {
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
            Block::Other => {}
        }
        match reg {
            regs::ID => regs::ID_VALUE,
            regs::VERSION => regs::VERSION_VALUE,
            regs::CAPS => regs::Caps::ALL.bits(),
            regs::DEVICE_SERIAL => o.serial,
            regs::VRAM_SIZE_LO => o.vram_size as u32,
            regs::VRAM_SIZE_HI => (o.vram_size >> 32) as u32,
            regs::TOPOLOGY => regs::Topology(0)
                .with_queues(o.queues as u8)
                .with_engines(o.engines as u8)
                .bits(),
            regs::SCRATCH => st.scratch,
            regs::TOPOLOGY2 => regs::Topology2(0)
                .with_contexts(regs::NUM_CONTEXTS as u8)
                .with_vectors(regs::queue_vector(o.queues as usize) as u8)
                .with_va_bits(vela_hw::mmu::VA_BITS as u8)
                .bits(),
            regs::DEVICE_STATUS => {
                let mut v = regs::DeviceStatus::READY.mask32();
                if st.queues.iter().any(|q| q.error != QueueError::None) {
                    v |= regs::DeviceStatus::QUEUE_ERROR.mask32();
                }
                if st.contexts.iter().any(|c| c.faulted()) {
                    v |= regs::DeviceStatus::MMU_FAULT.mask32();
                }
                v
            }
            regs::INT_STATUS => st.int_status,
            regs::INT_MASK => st.int_mask,
            regs::QUEUE_ERROR_SUMMARY => {
                summary(st.queues.iter().map(|q| q.error != QueueError::None))
            }
            regs::CTX_FAULT_SUMMARY => summary(st.contexts.iter().map(|c| c.faulted())),
            // PBA: pending state lives with the client's MSI-X emulation.
            _ => 0,
        }
    }

    /// `mask` selects the bytes the access carried; other bytes keep their value.
    pub fn bar0_write(&self, reg: u32, value: u32, mask: u32) {
        let mut st = self.lock();
        // A reset completes only once no command it aborts is still writing.
        let ones = value & mask;
        match block(&st, reg) {
            Block::Queue(q, queue::CONTROL) if ones & regs::QControl::RESET.mask32() != 0 => {
                st = self.quiesce(st, |i| i == q);
            }
            Block::Other
                if reg == regs::DEVICE_CONTROL
                    && ones & regs::DeviceControl::RESET.mask32() != 0 =>
            {
                st = self.quiesce(st, |_| true);
            }
            // A command holds its translations for its whole run (a copy may go through one
            // mapping for 64 MiB). INVALIDATE is complete when the write is: the context's
            // commands in flight finish first, so once the driver sees the write done no
            // access goes through a translation it removed, and it may free the memory.
            Block::Context(c, ctx::CONTROL)
                if ones & regs::CtxControl::INVALIDATE.mask32() != 0 =>
            {
                let on_context: Vec<usize> = (0..st.queues.len())
                    .filter(|&i| st.queues[i].context == c)
                    .collect();
                st = self.quiesce(st, |i| on_context.contains(&i));
            }
            _ => {}
        }
        let st = &mut *st;
        let merge = |old: u32| (old & !mask) | (value & mask);
        match block(st, reg) {
            Block::Queue(q, off) => return self.queue_write(st, q, off, merge, ones),
            Block::Context(c, off) => return self.context_write(st, c, off, merge, ones),
            Block::Counter(..) => return,
            Block::MsixEntry(v, dw) => {
                let e = &mut st.msix_table[v][dw];
                *e = if dw == 3 { merge(*e) & 1 } else { merge(*e) };
                return;
            }
            Block::Other => {}
        }
        match reg {
            regs::SCRATCH => st.scratch = merge(st.scratch),
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
        qs.enabled = true;
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
            let stopped = st.contexts[qs.context].faulted();
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

fn summary(bits: impl Iterator<Item = bool>) -> u32 {
    bits.enumerate()
        .filter(|(_, on)| *on)
        .fold(0, |acc, (i, _)| acc | 1 << i)
}
