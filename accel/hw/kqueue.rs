// SPDX-License-Identifier: GPL-2.0

//! The kernel's own copies on the device: buffer moves and clears run as COPY and FILL
//! commands on the copy engine, on context 0 (translation off, so addresses are DPAs), instead
//! of the CPU copying through BAR2. Under TCG a CPU copy runs at a few percent of the engine's
//! bandwidth; on silicon it would cost a CPU and uncached BAR reads.
//!
//! The ring and fence slot are reserved at probe (a move must work when VRAM is full: that is
//! when eviction moves buffers). A hardware queue is borrowed for each run, only when one is
//! free. With no free queue, or if the device does not complete a batch in time, the caller
//! copies with the CPU.
//!
//! A run that completes leaves its queue enabled and idle on the kernel's ring, "armed", and
//! the next run takes that queue again if it is still free and only writes its commands and
//! the doorbell: programming a queue is nine trapped BAR0 writes and the reset a tenth, which
//! took 2.4-5.2 ms in the TCG guest, as long as the 16 MiB copy they started. The core
//! ([`Chip::take_queue`]) hands an armed queue to nobody else without resetting it first,
//! and a global reset disarms it. A run that fails resets its queue.
//!
//! The lock here is taken under buffers' reservation locks and never the other way round, so
//! the wait never recovers the device (recovery revokes exports, which takes reservation
//! locks): a timeout resets the borrowed queue and reports `ETIME`.

use kernel::{
    io::Io,
    new_mutex,
    num::Bounded,
    prelude::*,
    sync::Mutex,
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use super::{
    best_effort,
    command::{CopyCommand, FillCommand, IntoSlot, SignalCommand},
    mmu::DPA_VRAM,
    queue::{program, Setup, JOB_TIMEOUT_MS, SLOT},
    regs::{self, ContextId, QueueId},
    vram::{self, VramBlocks, PAGE},
    Chip,
};

/// 1024 slots (64 KiB of VRAM): batches of up to 1022 commands.
const LOG2_SLOTS: u32 = 10;
const SLOTS: usize = 1 << LOG2_SLOTS;
/// The longest sleep between two looks at the fence.
const MAX_NAP_US: i64 = 200;
/// How often a wait looks at the queue's status, besides the fence: a failed batch (a fault,
/// a reset under it) is seen this late at most, which is soon for a copy that then falls back
/// to the CPU, and a 16 MiB copy takes few such looks.
const STATUS_EVERY_US: i64 = 10_000;
/// A COPY or FILL moves at most this much (`Documentation/hardware/commands.rst`).
const MAX_LEN: u64 = 1 << 32;

/// One stretch of memory as the device addresses it with translation off.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    pub(crate) dpa: u64,
    pub(crate) len: u64,
}

impl Span {
    /// A VRAM range.
    pub(crate) fn vram(offset: u64, len: u64) -> Self {
        Self {
            dpa: DPA_VRAM | offset,
            len,
        }
    }

    /// A range of bus addresses (system memory mapped for the device).
    pub(crate) fn bus(addr: u64, len: u64) -> Self {
        Self { dpa: addr, len }
    }
}

struct Ring {
    _blocks: VramBlocks,
    ring: u64,
    fence: u64,
    /// The last value signalled, so every batch waits for a new one.
    seq: u64,
    /// The slot after the last batch's SIGNAL: the armed queue's head and tail.
    tail: u32,
}

/// The kernel's ring and fence slot, and the lock that serializes their use.
#[pin_data]
pub(crate) struct KernelQueue {
    #[pin]
    ring: Mutex<Option<Ring>>,
}

impl KernelQueue {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { ring <- new_mutex!(None) })
    }

    /// Reserves the ring and fence slot (at probe, while VRAM is empty). Without them every
    /// copy goes to the CPU.
    pub(crate) fn reserve(&self, core: &Chip) -> Result {
        let blocks = core.vram.alloc((SLOTS * SLOT) as u64 + PAGE, true)?;
        let ring = vram::runs(&blocks).next().map(|(o, _)| o).ok_or(ENOMEM)?;
        let fence = ring + (SLOTS * SLOT) as u64;
        core.vram_fill(fence, PAGE, 0)?;
        *self.ring.lock() = Some(Ring {
            _blocks: blocks,
            ring,
            fence,
            seq: 0,
            tail: 0,
        });
        Ok(())
    }

    /// Copies `src` to `dst` (the same total length) on the device.
    pub(crate) fn copy(&self, core: &Chip, src: &[Span], dst: &[Span]) -> Result {
        let total = |s: &[Span]| s.iter().map(|s| s.len).sum::<u64>();
        if total(src) != total(dst) {
            return Err(EINVAL);
        }
        let mut cmds = KVec::new();
        let (mut si, mut di, mut so, mut doff) = (0usize, 0usize, 0u64, 0u64);
        while let (Some(s), Some(d)) = (src.get(si), dst.get(di)) {
            let n = (s.len - so).min(d.len - doff).min(MAX_LEN);
            if n > 0 {
                cmds.push(
                    CopyCommand::new(s.dpa + so, d.dpa + doff, n).into_slot(),
                    GFP_KERNEL,
                )?;
            }
            so += n;
            doff += n;
            if so == s.len {
                si += 1;
                so = 0;
            }
            if doff == d.len {
                di += 1;
                doff = 0;
            }
        }
        self.run(core, &cmds)
    }

    /// Fills `dst` with zeros on the device.
    pub(crate) fn clear(&self, core: &Chip, dst: &[Span]) -> Result {
        let mut cmds = KVec::new();
        for d in dst {
            let mut off = 0;
            while off < d.len {
                let n = (d.len - off).min(MAX_LEN - PAGE);
                cmds.push(FillCommand::new(0, d.dpa + off, n).into_slot(), GFP_KERNEL)?;
                off += n;
            }
        }
        self.run(core, &cmds)
    }

    /// Runs `cmds` in batches on a borrowed hardware queue.
    fn run(&self, core: &Chip, cmds: &[[u8; SLOT]]) -> Result {
        let mut guard = self.ring.lock();
        let Some(ring) = &mut *guard else {
            return Err(ENODEV);
        };
        let (index, mut armed, resets) = core.take_kernel_queue()?;
        let r = QueueId::new(index).and_then(|q| {
            let r = cmds.chunks(SLOTS - 2).try_for_each(|batch| {
                let r = Self::batch(core, ring, q, batch, armed);
                // Programmed for the ring now, and idle if the batch completed.
                armed = r.is_ok();
                r
            });
            if r.is_err() {
                // Handed back idle and reset: nothing of ours runs once the reset write
                // returns.
                best_effort(
                    "resetting the kernel queue",
                    core.with_bar0(|bar| {
                        bar.write(
                            regs::Q_CONTROL::at_queue(q),
                            regs::Q_CONTROL::zeroed().with_reset(true),
                        );
                        Ok(())
                    }),
                );
            }
            r
        });
        core.put_kernel_queue(index, armed && r.is_ok(), resets);
        r
    }

    /// Runs one batch on queue `q`: `armed` if the queue is enabled and idle on the ring at
    /// `ring.tail`, else it is programmed from slot 0.
    fn batch(
        core: &Chip,
        ring: &mut Ring,
        q: QueueId,
        batch: &[[u8; SLOT]],
        armed: bool,
    ) -> Result {
        ring.seq += 1;
        let seq = ring.seq;
        // Completion is the fence reading exactly `seq`, from 0: a value left by an earlier
        // batch (a corrupt fence writes ~VALUE, which is above any sequence number) must not
        // pass for this batch's, since callers rely on a completed copy having written every
        // byte of its destination (a move's destination is not cleared first). The queue runs
        // nothing of ours once an earlier batch returned, so nothing writes the slot after
        // this store.
        core.vram_write64(ring.fence, 0)?;
        // A programmed queue starts at slot 0 (a reset clears HEAD and TAIL).
        let mut tail = if armed { ring.tail } else { 0 };
        let signal = SignalCommand::new(seq, false).into_slot();
        // At most SLOTS - 1 slots: the ring cannot fill.
        for c in Iterator::chain(batch.iter(), [&signal]) {
            core.vram_write_bytes(ring.ring + u64::from(tail) * SLOT as u64, c)?;
            tail = (tail + 1) % SLOTS as u32;
        }
        // Ordered before the doorbell: a BAR2 read back (queues.rst).
        core.vram_read64(ring.ring)?;
        if armed {
            core.with_bar0(|bar| {
                bar.write(
                    regs::Q_DOORBELL::at_queue(q),
                    regs::Q_DOORBELL::zeroed().try_with_tail(tail)?,
                );
                Ok(())
            })?;
        } else {
            // Context 0: translation off, the kernel's.
            let setup = Setup {
                ring: ring.ring,
                log2_slots: Bounded::<u32, 5>::new::<LOG2_SLOTS>(),
                fence: ring.fence,
                context: ContextId::KERNEL,
            };
            program(core, q, &setup, true, tail)?;
        }
        ring.tail = tail;
        let start = Instant::<Monotonic>::now();
        // Short batches finish in microseconds. Naps grow to at most MAX_NAP_US, so a copy
        // is seen done at most that long after it is: growing to 2 ms (as before) made a
        // 16 MiB copy that took 2.6 ms look like 4.5 ms.
        let mut nap_us: i64 = 20;
        let mut next_status = Delta::from_micros(STATUS_EVERY_US);
        loop {
            match core.vram_read64(ring.fence)? {
                0 => {}
                v if v == seq => return Ok(()),
                // The SIGNAL ran but wrote something else: a corrupt fence. Whether the copy
                // before it is whole is then not known, so it does not count as done.
                _ => return Err(ETIME),
            }
            // A queue error, a fault, or a reset under us (a user queue's hang): the batch will
            // not complete. Looked at every STATUS_EVERY_US, not at every nap: the fence is
            // in BAR2, which the CPU reads directly, but Q_STATUS is a trapped BAR0 read, and
            // under TCG each one is a round trip through the device model that takes a host
            // core from the engine thread doing the copy.
            let elapsed = start.elapsed();
            if elapsed >= next_status {
                let failed = core.with_bar0(|bar| {
                    let st = bar.read(regs::Q_STATUS::at_queue(q));
                    Ok(st.error() || st.fault_stopped() || !st.enabled())
                })?;
                if failed || elapsed > Delta::from_millis(JOB_TIMEOUT_MS) {
                    return Err(ETIME);
                }
                next_status = elapsed + Delta::from_micros(STATUS_EVERY_US);
            }
            fsleep(Delta::from_micros(nap_us));
            nap_us = (nap_us * 2).min(MAX_NAP_US);
        }
    }
}
