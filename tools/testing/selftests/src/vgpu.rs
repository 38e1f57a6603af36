// SPDX-License-Identifier: GPL-2.0

//! A queue of an open vGPU instance, driven as a guest driver drives its Vela function
//! (`Documentation/vgpu.rst`, `Documentation/hardware/partitions.rst`): registers through
//! BAR0, which the vgpu frontend forwards to the partition's window, and the ring and the
//! fence in the instance's VRAM slice through a mapping of BAR2.
//!
//! Local queue 0 runs on local context 0 with translation off, so every address is a DPA of
//! the partition: a VRAM DPA is an offset into the slice (bit 63 set). Jobs end with a
//! SIGNAL of a sequence number to the queue's fence, with the INTERRUPT flag, as the Vela
//! driver ends its jobs; their completion is seen on the MSI-X eventfd of the queue's vector
//! (1), or by polling the fence through the mapping. Submitting is a write of the ring slots
//! through the mapping, a read back of the last one (the spec's ordering for a VRAM ring
//! written through BAR2) and a doorbell written through the VFIO device file: trapped by the
//! kernel and forwarded to the partition's window, as a guest's doorbell would be.

use std::{
    io,
    time::{Duration, Instant},
};

use vela_hw::{
    cmd::{Command, CopyCmd, Header, SignalCmd, Slot, SIZE as SLOT_SIZE},
    dpa::VRAM,
    regs::{self as hw, ctx, queue, QControl, QStatus},
};

use crate::vfio::{EventFd, Mapping, Region, VfioDevice};

/// A COPY of `len` bytes between two offsets of the slice (VRAM DPAs of the partition), with
/// the INTERRUPT flag if `interrupt`.
pub fn copy(src: u64, dst: u64, len: u64, interrupt: bool) -> Slot {
    let mut slot = CopyCmd::new(VRAM | src, VRAM | dst, len).to_slot();
    Header::read(&slot)
        .with_interrupt(interrupt)
        .write(&mut slot);
    slot
}

/// Where a queue's ring and fence are, as offsets into the slice.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The ring's offset (64-byte aligned).
    pub ring: u64,
    /// The ring has `1 << log2_slots` slots.
    pub log2_slots: u32,
    /// The fence's offset (8-byte aligned).
    pub fence: u64,
}

/// What BAR0 says about the queue: `Q_COMPLETED`, `Q_STATUS` and `Q_ERROR_ADDR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueState {
    pub completed: u32,
    pub status: u32,
    pub error_addr: u64,
}

impl QueueState {
    /// Whether the queue stopped on an error.
    pub fn error(&self) -> bool {
        QStatus(self.status).error()
    }

    /// `Q_STATUS.ERROR_CODE`.
    pub fn error_code(&self) -> u8 {
        QStatus(self.status).error_code()
    }
}

/// How a wait learns that a job's fence was written.
#[derive(Clone, Copy)]
pub enum Completion<'e> {
    /// Sleeps in poll() on the eventfd of the queue's MSI-X vector until it fires, then reads
    /// the fence: the interrupt relayed by the host, as a guest driver is woken. A fence
    /// already written does not end the wait, the interrupt does; counts the eventfd kept
    /// from earlier jobs only make it look at the fence early and wait on.
    Eventfd(&'e EventFd),
    /// Spins on the fence through the BAR2 mapping, with no interrupt and no trap.
    Poll,
}

/// Local queue 0 of an open instance.
pub struct Queue<'a> {
    dev: &'a VfioDevice,
    bar0: Region,
    /// A mapping of BAR2 from slice offset `map_at`, holding the ring and the fence.
    map: &'a Mapping,
    map_at: u64,
    layout: Layout,
    /// The next slot to write.
    tail: u32,
    /// `Q_HEAD` as last read: the ring has room up to it.
    head: u32,
    /// The last sequence number signalled.
    seq: u64,
}

impl<'a> Queue<'a> {
    /// The queue of `dev`, whose BAR0 is `bar0`, with its ring and fence where `layout` says:
    /// inside `map`, a mapping of BAR2 from slice offset `map_at`.
    pub fn new(
        dev: &'a VfioDevice,
        bar0: Region,
        map: &'a Mapping,
        map_at: u64,
        layout: Layout,
    ) -> io::Result<Self> {
        let inside = |off: u64, len: u64| {
            off >= map_at && off - map_at + len <= map.len as u64 && off.checked_add(len).is_some()
        };
        let slots = 1u64 << layout.log2_slots;
        if !(queue::RING_LOG2_MIN..=queue::RING_LOG2_MAX).contains(&layout.log2_slots)
            || !layout.ring.is_multiple_of(queue::RING_ALIGN)
            || !layout.fence.is_multiple_of(queue::FENCE_ALIGN)
            || !inside(layout.ring, slots * SLOT_SIZE as u64)
            || !inside(layout.fence, 8)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{layout:?} is not a ring and fence inside the mapping at {map_at:#x}"),
            ));
        }
        Ok(Self {
            dev,
            bar0,
            map,
            map_at,
            layout,
            tail: 0,
            head: 0,
            seq: 0,
        })
    }

    fn slots(&self) -> u32 {
        1 << self.layout.log2_slots
    }

    /// Writes the BAR0 register at `off` (a trapped access).
    pub fn w(&self, off: u32, v: u32) -> io::Result<()> {
        self.dev.write32(&self.bar0, u64::from(off), v)
    }

    /// Reads the BAR0 register at `off` (a trapped access).
    pub fn r(&self, off: u32) -> io::Result<u32> {
        self.dev.read32(&self.bar0, u64::from(off))
    }

    fn q(off: u32) -> u32 {
        queue::reg(0, off)
    }

    /// Sets up local queue 0 on local context 0 (translation off: addresses are the
    /// partition's DPAs) with the ring and fence of the layout, queue 0's interrupt unmasked.
    /// The fence reads 0 after it.
    pub fn setup(&mut self) -> io::Result<()> {
        let ring = VRAM | self.layout.ring;
        let fence = VRAM | self.layout.fence;
        self.w(ctx::reg(0, ctx::CONTROL), 0)?;
        self.w(Self::q(queue::CONTROL), QControl::RESET.mask32())?;
        self.w(Self::q(queue::RING_BASE_LO), ring as u32)?;
        self.w(Self::q(queue::RING_BASE_HI), (ring >> 32) as u32)?;
        self.w(Self::q(queue::RING_SIZE), self.layout.log2_slots)?;
        self.w(Self::q(queue::CONTEXT), 0)?;
        self.w(Self::q(queue::FENCE_BASE_LO), fence as u32)?;
        self.w(Self::q(queue::FENCE_BASE_HI), (fence >> 32) as u32)?;
        self.write_fence(0);
        self.w(hw::INT_MASK, !1)?;
        self.w(Self::q(queue::CONTROL), QControl::ENABLE.mask32())?;
        self.tail = 0;
        self.head = 0;
        self.seq = 0;
        Ok(())
    }

    fn at(&self, slice_off: u64) -> *mut u8 {
        let off = (slice_off - self.map_at) as usize;
        assert!(off < self.map.len);
        // SAFETY: Inside the mapping (asserted); `new` checked the ring and the fence.
        unsafe { self.map.ptr.add(off) }
    }

    /// The fence, read through the mapping.
    pub fn fence(&self) -> u64 {
        let p = self.at(self.layout.fence).cast::<u64>();
        // SAFETY: An 8-byte aligned word of the mapping (`new` checked the fence).
        u64::from_le(unsafe { p.read_volatile() })
    }

    fn write_fence(&self, v: u64) {
        let p = self.at(self.layout.fence).cast::<u64>();
        // SAFETY: As in `fence`.
        unsafe { p.write_volatile(v.to_le()) };
    }

    /// The last sequence number a job of [`Self::submit_signalled`] signals.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes `cmds` into the ring from the tail and rings the doorbell. Reads `Q_HEAD` only
    /// when the ring looks too full for them; `WouldBlock` if it is.
    pub fn submit(&mut self, cmds: &[Slot]) -> io::Result<()> {
        let slots = self.slots();
        let n = cmds.len() as u32;
        let free = |head: u32, tail: u32| (head + slots - tail - 1) % slots;
        if n >= slots {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{n} commands for a ring of {slots}"),
            ));
        }
        if free(self.head, self.tail) < n {
            self.head = self.r(Self::q(queue::HEAD))?;
            if free(self.head, self.tail) < n {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("ring full: head {} tail {}", self.head, self.tail),
                ));
            }
        }
        let mut last = std::ptr::null_mut::<u64>();
        for c in cmds {
            let p = self
                .at(self.layout.ring + u64::from(self.tail) * SLOT_SIZE as u64)
                .cast::<u64>();
            for (i, w) in c.chunks_exact(8).enumerate() {
                let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
                // SAFETY: Word `i` of a slot of the ring, inside the mapping (`new` checked the
                // ring); slots are 64-byte aligned.
                unsafe { p.add(i).write_volatile(v) };
            }
            // SAFETY: As above: the slot's last word.
            last = unsafe { p.add(SLOT_SIZE / 8 - 1) };
            self.tail = (self.tail + 1) % slots;
        }
        // The spec's ordering of a VRAM ring written through BAR2 before the doorbell: a read
        // back of BAR2.
        if !last.is_null() {
            // SAFETY: A word just written, inside the mapping.
            let _ = unsafe { last.read_volatile() };
        }
        self.w(Self::q(queue::DOORBELL), self.tail)
    }

    /// Submits `cmds` followed by a SIGNAL of the next sequence number with the INTERRUPT
    /// flag, as the Vela driver ends a job; returns that number.
    pub fn submit_signalled(&mut self, cmds: &[Slot]) -> io::Result<u64> {
        let seq = self.seq + 1;
        let mut signal = SignalCmd::new(seq).to_slot();
        Header::read(&signal)
            .with_interrupt(true)
            .write(&mut signal);
        let mut all = cmds.to_vec();
        all.push(signal);
        self.submit(&all)?;
        self.seq = seq;
        Ok(seq)
    }

    /// Waits up to `timeout` for job `seq` to complete. On a timeout, the error says what
    /// BAR0 says about the queue.
    pub fn wait(&self, seq: u64, how: Completion<'_>, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = match how {
                Completion::Eventfd(e) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    e.wait(left.as_millis().clamp(1, 1000) as i32) && {
                        e.take();
                        self.fence() >= seq
                    }
                }
                Completion::Poll => self.fence() >= seq,
            };
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let st = self.state();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "fence {} after {timeout:?}, want {seq}; queue {st:?}",
                        self.fence()
                    ),
                ));
            }
            if matches!(how, Completion::Poll) {
                std::hint::spin_loop();
            }
        }
    }

    /// `Q_COMPLETED`, `Q_STATUS` and `Q_ERROR_ADDR`.
    pub fn state(&self) -> io::Result<QueueState> {
        let completed = self.r(Self::q(queue::COMPLETED))?;
        let status = self.r(Self::q(queue::STATUS))?;
        let lo = self.r(Self::q(queue::ERROR_ADDR_LO))?;
        let hi = self.r(Self::q(queue::ERROR_ADDR_HI))?;
        Ok(QueueState {
            completed,
            status,
            error_addr: (u64::from(hi) << 32) | u64::from(lo),
        })
    }

    /// Submits `cmd` alone and polls BAR0 (every 2 ms, up to `timeout`) until the queue has
    /// completed it or stopped, as a check of a command that may fail does: the state then,
    /// with `completed` counted from before the submission.
    pub fn run_polled(&mut self, cmd: Slot, timeout: Duration) -> io::Result<QueueState> {
        let before = self.r(Self::q(queue::COMPLETED))?;
        self.submit(&[cmd])?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut st = self.state()?;
            if st.completed != before || st.error() || Instant::now() > deadline {
                st.completed = st.completed.wrapping_sub(before);
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
