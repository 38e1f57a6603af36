// SPDX-License-Identifier: GPL-2.0
//! The scheduler and the engines: pick a runnable queue, fetch its command,
//! execute it without holding the register lock, then report the outcome.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::compute::{self, KernelArgs};
use crate::device::{Device, State};
use crate::dma::{Access, Stats, Stop};
use crate::partition::{Space, Tenant};
use vela_hw::cmd::{
    self, Command, CopyCmd, FenceCmd, FillCmd, Header, KernelCmd, NopCmd, Opcode, SignalCmd, Slot,
};
use vela_hw::regs::{self, Counter, QueueError};
use vela_hw::{Engine, Kernel};

/// One command taken off a ring, with the context state it runs under.
struct Job {
    queue: usize,
    generation: u64,
    tenant: Tenant,
    /// What the queue's DPAs mean: the host's, or its partition's.
    space: Space,
    context: usize,
    translate: bool,
    pt_base: u64,
    bus_master: bool,
    /// The queue's `Q_FENCE_BASE` when the command was fetched.
    fence_base: u64,
    slot: Slot,
}

/// What a completed command adds to the counters.
#[derive(Default)]
struct Done {
    interrupt: bool,
    fence: bool,
    kernel: bool,
}

fn engine_of(slot: &Slot) -> Engine {
    match Opcode::from_raw(Header::read(slot).opcode()) {
        Some(op) => op.engine(),
        None => Engine::Copy,
    }
}

impl Device {
    /// Execute commands until no queue can make progress. For tests and
    /// benchmarks that want the engine synchronous.
    pub fn run_until_idle(&self) {
        while self.step() {}
    }

    /// Run the engines, a thread each, until the handle is dropped. Each takes the next
    /// runnable queue that no other engine is busy with, so a queue's commands stay in order
    /// and different queues' commands run in parallel.
    pub fn start_engine(self: &Arc<Self>) -> EngineThread {
        self.stop.store(false, Ordering::Release);
        let handles = (0..self.opts.engines)
            .map(|_| {
                let dev = self.clone();
                std::thread::spawn(move || dev.engine_loop())
            })
            .collect();
        EngineThread {
            dev: self.clone(),
            handles,
        }
    }

    fn engine_loop(&self) {
        while !self.stop.load(Ordering::Acquire) {
            if self.step() {
                continue;
            }
            let mut st = self.lock();
            if !st.kick && !self.stop.load(Ordering::Acquire) {
                // The timeout bounds how late a hung engine notices it was unhung.
                st = match self.work.wait_timeout(st, Duration::from_millis(20)) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
            }
            st.kick = false;
        }
    }

    /// Run one command of one queue. Returns false when no queue can run.
    pub fn step(&self) -> bool {
        let job = {
            let mut st = self.lock();
            self.next_job(&mut st)
        };
        let Some(job) = job else {
            return false;
        };
        let mut access = Access::new(self, job.space, job.translate, job.pt_base, job.bus_master);
        let started = Instant::now();
        let result = execute(self, &mut access, &job);
        let took = started.elapsed();
        let mut st = self.lock();
        self.charge(&mut st, job.tenant, took);
        self.finish(&mut st, &job, result, access.stats);
        true
    }

    /// Tenants are served round-robin (partitions.rst, "Scheduling"): the one whose turn it
    /// is goes first; if it has nothing to start, the turn passes to the next that has.
    fn next_job(&self, st: &mut State) -> Option<Job> {
        for i in 0..Tenant::COUNT {
            let t = (st.sched.turn + i) % Tenant::COUNT;
            if let Some(job) = self.next_job_of(st, Tenant::from_index(t)) {
                if t != st.sched.turn {
                    st.sched.turn = t;
                    st.sched.used_ns = 0;
                }
                return Some(job);
            }
        }
        None
    }

    /// Engine time `took` counts against the tenant's turn, if it holds the turn; once it
    /// used its quantum the turn passes on. Commands are never preempted, so a turn ends at
    /// a completion: with quantum 0 every turn is one command.
    fn charge(&self, st: &mut State, tenant: Tenant, took: Duration) {
        if st.sched.turn != tenant.index() {
            return;
        }
        let quantum_us = match tenant {
            Tenant::Pf => st.pf_quantum,
            Tenant::Part(p) => st.partitions[p].quantum,
        };
        let used = st.sched.used_ns.saturating_add(took.as_nanos() as u64);
        if used >= u64::from(quantum_us) * 1000 {
            st.sched.turn = (st.sched.turn + 1) % Tenant::COUNT;
            st.sched.used_ns = 0;
        } else {
            st.sched.used_ns = used;
        }
    }

    /// The next command of `tenant`'s queues, round-robin among them.
    fn next_job_of(&self, st: &mut State, tenant: Tenant) -> Option<Job> {
        if matches!(tenant, Tenant::Part(p) if !st.partitions[p].enabled) {
            return None;
        }
        let n = st.queues.len();
        let start = st.sched.next_queue[tenant.index()];
        for i in 0..n {
            let q = (start + i) % n;
            if st.queue_owner(q) != tenant || !runnable(st, q) {
                continue;
            }
            let Some(job) = self.fetch(st, q, tenant) else {
                continue;
            };
            st.sched.next_queue[tenant.index()] = (q + 1) % n;
            return Some(job);
        }
        None
    }

    /// Read the command at queue `q`'s head and mark the queue busy, or put the queue in the
    /// error state if it cannot run.
    fn fetch(&self, st: &mut State, q: usize, tenant: Tenant) -> Option<Job> {
        // Checked at every command, not only at enable: a partition enabled since may have
        // taken the context from under a PF queue.
        let Some(context) = st.queue_context(q) else {
            self.queue_error(st, q, QueueError::BadContext, 0);
            return None;
        };
        let space = st.space(tenant);
        let qs = &st.queues[q];
        let slot_dpa = qs
            .ring_base
            .wrapping_add(u64::from(qs.head) * cmd::SIZE as u64);
        let bus_master = st.config.bus_master();
        let access = Access::new(self, space, false, 0, bus_master);
        let mut slot: Slot = [0; cmd::SIZE];
        if !read_ring(&access, slot_dpa, &mut slot) {
            st.count(Counter::DmaErrors, 1);
            self.queue_error(st, q, QueueError::BadRing, slot_dpa);
            return None;
        }
        if self.inject.hung(engine_of(&slot)) {
            return None;
        }
        let qs = &mut st.queues[q];
        qs.busy = true;
        let c = st.contexts[context];
        Some(Job {
            queue: q,
            generation: qs.generation,
            tenant,
            space,
            context,
            translate: c.enabled,
            pt_base: c.pt_base,
            bus_master,
            fence_base: qs.fence_base,
            slot,
        })
    }

    fn finish(&self, st: &mut State, job: &Job, result: Result<Done, Stop>, stats: Stats) {
        st.count(Counter::BytesWritten, stats.bytes_written);
        st.count(Counter::PageWalks, stats.page_walks);
        st.count(Counter::DmaErrors, stats.dma_errors);
        st.count(Counter::P2pBytes, stats.p2p_bytes);
        let q = job.queue;
        self.idle.notify_all();
        if st.queues[q].generation != job.generation {
            // The queue was reset while the command ran: its outcome is void.
            return;
        }
        st.queues[q].busy = false;
        match result {
            Ok(done) => {
                let qs = &mut st.queues[q];
                qs.head = (qs.head + 1) & (qs.slots() - 1);
                qs.completed = qs.completed.wrapping_add(1);
                st.count(Counter::CommandsCompleted, 1);
                if done.fence {
                    st.count(Counter::FencesWritten, 1);
                }
                if done.kernel {
                    st.count(Counter::KernelsExecuted, 1);
                }
                if done.interrupt {
                    let local = st.local_queue(q);
                    self.raise_for(st, job.tenant, regs::IntSources::queue(local));
                }
            }
            Err(Stop::Error { code, addr }) => self.queue_error(st, q, code, addr),
            Err(Stop::Fault(f)) => self.record_fault(st, job.context, q, f),
            Err(Stop::PageRequest(req)) => match job.tenant {
                Tenant::Part(p) => self.page_request(st, p, q, req),
                // Host space never asks for pages; treat it as what it would be, unreachable.
                Tenant::Pf => self.queue_error(st, q, QueueError::DmaError, req.iova),
            },
        }
    }
}

/// Queue `q` has a command to start: enabled, not in error, not waiting on a fault or a
/// page request, and no engine is running its previous command.
fn runnable(st: &State, q: usize) -> bool {
    let qs = &st.queues[q];
    let faulted = st
        .queue_context(q)
        .is_some_and(|c| st.contexts[c].faulted());
    qs.enabled
        && !qs.busy
        && qs.error == QueueError::None
        && qs.stall.is_none()
        && qs.head != qs.tail
        && !faulted
}

/// Rings are addressed by DPA and never translated.
fn read_ring(access: &Access<'_>, addr: u64, slot: &mut Slot) -> bool {
    let Ok((b, off, avail, _)) = access.resolve(addr, false) else {
        return false;
    };
    if avail < cmd::SIZE as u64 {
        return false;
    }
    match crate::mem::slice(&b, off, cmd::SIZE) {
        Ok(s) => {
            s.copy_to(&mut slot[..]);
            true
        }
        Err(_) => false,
    }
}

/// Reject a command whose reserved bytes are not all zero. The device checks them before
/// anything else of the command.
fn reserved<C: Command>(c: &C) -> Result<&C, Stop> {
    if !c.reserved_is_zero() {
        return Err(Stop::error(QueueError::ReservedNonZero, 0));
    }
    Ok(c)
}

fn aligned(va: u64, align: u64) -> Result<(), Stop> {
    if va & (align - 1) != 0 {
        return Err(Stop::error(QueueError::BadAlignment, va));
    }
    Ok(())
}

fn execute(dev: &Device, access: &mut Access<'_>, job: &Job) -> Result<Done, Stop> {
    let s = &job.slot;
    let header = Header::read(s);
    if header.reserved() != 0 {
        return Err(Stop::error(QueueError::ReservedNonZero, 0));
    }
    let mut done = Done {
        interrupt: header.interrupt(),
        ..Done::default()
    };
    let op = Opcode::from_raw(header.opcode()).ok_or(Stop::error(QueueError::BadOpcode, 0))?;
    match op {
        Opcode::Nop => {
            reserved(NopCmd::view(s))?;
        }
        Opcode::Fence => {
            let c = reserved(FenceCmd::view(s))?;
            let (addr, mut value) = (c.addr.get(), c.value.get());
            aligned(addr, cmd::FENCE_ALIGN)?;
            if dev.inject.take_corrupt_fence() {
                value = !value;
            }
            access.write(addr, &value.to_le_bytes())?;
            done.fence = true;
        }
        Opcode::Signal => {
            let c = reserved(SignalCmd::view(s))?;
            let mut value = c.value.get();
            if dev.inject.take_corrupt_fence() {
                value = !value;
            }
            // The fence location is the driver's: reached by DPA, like the ring, and never
            // through the context's page tables, so no command of the context can reach it.
            let mut direct = Access::new(dev, job.space, false, 0, job.bus_master);
            let written = direct.write(job.fence_base, &value.to_le_bytes());
            access.stats.add(&direct.stats);
            written?;
            done.fence = true;
        }
        Opcode::Copy => {
            let c = reserved(CopyCmd::view(s))?;
            let (src, dst, len) = (c.src.get(), c.dst.get(), c.length.get());
            if len > cmd::MAX_TRANSFER {
                return Err(Stop::error(QueueError::BadLength, 0));
            }
            access.copy(src, dst, len)?;
        }
        Opcode::Fill => {
            let c = reserved(FillCmd::view(s))?;
            let (pattern, dst, len) = (c.pattern.get(), c.dst.get(), c.length.get());
            aligned(dst, cmd::FILL_ALIGN)?;
            if len > cmd::MAX_TRANSFER || len % cmd::FILL_ALIGN != 0 {
                return Err(Stop::error(QueueError::BadLength, 0));
            }
            access.fill(dst, len, pattern)?;
        }
        Opcode::Kernel => {
            let c = reserved(KernelCmd::view(s))?;
            let kernel =
                Kernel::from_raw(c.kernel_id.get()).ok_or(Stop::error(QueueError::BadKernel, 0))?;
            run_kernel(access, kernel, &c.args())?;
            done.kernel = true;
        }
    }
    Ok(done)
}

fn run_kernel(access: &mut Access<'_>, kernel: Kernel, args: &KernelArgs) -> Result<(), Stop> {
    let shape = compute::shape(kernel, args).map_err(|_| Stop::error(QueueError::BadLength, 0))?;
    let addrs = [args.a, args.b, args.c];
    for (&va, &len) in addrs.iter().zip(&shape.inputs) {
        if len > 0 && shape.aligned_inputs {
            aligned(va, 4)?;
        }
    }
    if shape.output > 0 {
        aligned(args.dst, 4)?;
    }
    let mut inputs: [Vec<u8>; 3] = Default::default();
    for ((buf, &va), &len) in inputs.iter_mut().zip(&addrs).zip(&shape.inputs) {
        *buf = vec![0; len];
        access.read(va, buf)?;
    }
    let out = compute::run(kernel, args, &inputs[0], &inputs[1], &inputs[2]);
    access.write(args.dst, &out)
}

/// The DPA of a VRAM offset, for tests and tools that build commands.
pub const fn vram_dpa(offset: u64) -> u64 {
    vela_hw::dpa::vram(offset)
}

/// Stops the device's engine threads when dropped.
pub struct EngineThread {
    dev: Arc<Device>,
    handles: Vec<JoinHandle<()>>,
}

impl Drop for EngineThread {
    fn drop(&mut self) {
        self.dev.stop.store(true, Ordering::Release);
        {
            let mut st = self.dev.lock();
            self.dev.kick(&mut st);
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
