// SPDX-License-Identifier: GPL-2.0

//! More queues than hardware queues: user queues take hardware queues over from idle holders.
//!
//! 1. 3 VMs with 4 queues each (12 queues on the model's 4 hardware queues): every queue
//!    FILLs its own page, all submitted before any wait; every job completes, every page
//!    holds its queue's value.
//! 2. A second round the same way; then WAIT on every first-round job again. Most queues lost
//!    their hardware queue in between, so WAIT answers from the ended run, and must still say
//!    "completed".
//! 3. A job that faults (injected MMU fault); then as many other queues as there are
//!    hardware queues start long jobs, so the faulted queue, idle, loses its hardware queue:
//!    WAIT on the faulted job still says EIO, from the ended run's record.
//! 4. The device limit: QUEUE_CREATE succeeds up to QUERY_LIMITS.max_queues queues (64) and
//!    then says EBUSY; after a QUEUE_DESTROY a queue can be created again.
//! 5. No starvation: as many child processes as there are hardware queues keep their rings
//!    busy for 14 s (two long jobs in flight at all times); a SUBMIT from another queue
//!    still runs within 5 s, because holders yield after a timeslice while others wait.
//!    Without the timeslice it would wait until they stop.
//! 6. A queue destroyed while its job waits in the kernel (for another queue's long job, by
//!    implicit sync): the job still runs afterwards.
//! 7. A job that waits in the kernel for a hardware queue, with nothing after it to wake the
//!    scheduler (no other SUBMIT, no dependency): every hardware queue is busy with a queue of
//!    its own VM, and the job runs once a ring drains. The scheduler does not poll for this:
//!    it has callbacks on the rings' last job fences.

use std::time::Duration;

use vela_runtime::{Access, Binding, Buffer, BufferFlags, Command, Queue, Vm, WaitStatus};
use vela_selftests::{inject, io, open_device, Tap};

const T: Duration = Duration::from_secs(30);
const VMS: usize = 3;
const PER_VM: usize = 4;
const PAGE: u64 = 4096;
/// The long jobs' buffer: 512 FILLs of it are 512 MiB of writes.
const BIG: u64 = 1 << 20;
/// Case 6's long job's buffer: 1023 FILLs of it are 8 GiB of writes.
const LONG: u64 = 8 << 20;

fn value(round: u32, q: usize) -> u32 {
    0x5c00_0000 | (round << 16) | q as u32
}

/// A child of case 5: keeps one queue's ring busy for `secs` seconds.
fn hog(secs: u64) -> ! {
    let run = || -> vela_runtime::Result<()> {
        let dev = vela_runtime::Device::first()?;
        let vm = Vm::create(&dev)?;
        let bo = Buffer::create(&dev, 8 << 20, BufferFlags::VRAM)?;
        let b = vm.bind_auto(&bo, Access::READ_WRITE)?;
        let q = Queue::create(&vm)?;
        let job: Vec<Command> = (0..64u32)
            .map(|k| Command::fill(b.va(), k, 8 << 20))
            .collect();
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        let mut prev = q.submit(&job)?.seqno();
        while std::time::Instant::now() < end {
            let next = q.submit(&job)?.seqno();
            q.wait_seqno(prev, T)?;
            prev = next;
        }
        q.wait_seqno(prev, T)?;
        Ok(())
    };
    std::process::exit(if run().is_ok() { 0 } else { 1 })
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--hog") {
        hog(args.next().and_then(|s| s.parse().ok()).unwrap_or(1));
    }
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let hw_queues = dev.info().num_queues as usize;
    t.check(
        VMS * PER_VM > hw_queues,
        "more queues than hardware queues",
        format_args!("{} queues, {hw_queues} hardware queues", VMS * PER_VM),
    );
    let flags = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;
    let vms: Vec<Vm> = (0..VMS).filter_map(|_| Vm::create(&dev).ok()).collect();
    let bos: Vec<Buffer> = (0..VMS)
        .filter_map(|_| Buffer::create(&dev, PAGE * PER_VM as u64, flags).ok())
        .collect();
    if vms.len() != VMS || bos.len() != VMS {
        t.check(false, "VMs and buffers", "VM_CREATE or BO_CREATE failed");
        t.finish();
    }
    let binds: Vec<Binding> = vms
        .iter()
        .zip(&bos)
        .filter_map(|(vm, bo)| vm.bind_auto(bo, Access::READ_WRITE).ok())
        .collect();
    let queues: Vec<Queue> = vms
        .iter()
        .flat_map(|vm| (0..PER_VM).filter_map(move |_| Queue::create(vm).ok()))
        .collect();
    if binds.len() != VMS || queues.len() != VMS * PER_VM {
        t.check(false, "binds and queues", "VM_BIND or QUEUE_CREATE failed");
        t.finish();
    }
    t.check(true, "12 queues created on 3 VMs", "");
    let page_va = |q: usize| binds[q / PER_VM].at(PAGE * (q % PER_VM) as u64);
    let word = |q: usize| -> Option<u32> {
        let m = bos[q / PER_VM].map().ok()?;
        m.read_u32(PAGE as usize * (q % PER_VM)).ok()
    };

    // 1 and 2: two rounds, every job submitted before any wait.
    let mut first = Vec::new();
    for round in 1..=2u32 {
        let start = std::time::Instant::now();
        let mut seqnos = Vec::new();
        for (q, queue) in queues.iter().enumerate() {
            let r = queue.submit(&[Command::fill(page_va(q), value(round, q), PAGE)]);
            match r {
                Ok(job) => seqnos.push(Some(job.seqno())),
                Err(e) => {
                    t.check(false, &format!("round {round}: SUBMIT on queue {q}"), e);
                    seqnos.push(None);
                }
            }
        }
        let all_done = queues.iter().zip(&seqnos).all(|(queue, s)| {
            s.is_some_and(|s| matches!(queue.wait_seqno(s, T), Ok(WaitStatus::Completed)))
        });
        let took = start.elapsed();
        t.check(
            all_done,
            &format!("round {round}: every queue's job completes"),
            format_args!("{seqnos:?}"),
        );
        // Twelve one-page FILLs chained by implicit sync take well under a second. A job whose
        // dependency signals without its scheduler being kicked (a lost wakeup) runs only at
        // the 30 s dependency deadline: a liveness bound, not a performance figure.
        t.check(
            took < Duration::from_secs(15),
            &format!("round {round}: no job waited for its dependency deadline"),
            format_args!("took {took:?}"),
        );
        let wrong: Vec<usize> = (0..queues.len())
            .filter(|&q| word(q) != Some(value(round, q)))
            .collect();
        t.check(
            wrong.is_empty(),
            &format!("round {round}: every page holds its queue's value"),
            format_args!("wrong on queues {wrong:?}"),
        );
        if round == 1 {
            first = seqnos;
        }
    }
    let again = queues.iter().zip(&first).all(|(queue, s)| {
        s.is_some_and(|s| matches!(queue.wait_seqno(s, T), Ok(WaitStatus::Completed)))
    });
    t.check(
        again,
        "WAIT on the first round's jobs still says completed (most ran in ended runs)",
        format_args!("{first:?}"),
    );

    // 3. A failed job keeps its outcome across a change of hardware queue.
    t.ok(inject("mmu-fault=1"), "inject: fault the next command");
    let bad = queues[0].submit(&[Command::fill(page_va(0), 1, PAGE)]);
    let bad = bad.map(|j| j.seqno());
    let r = bad
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|&s| queues[0].wait_seqno(s, T).map_err(|e| e.to_string()));
    t.check(r.is_err(), "the faulted job fails", format_args!("{r:?}"));
    // As many other queues as there are hardware queues each start a long job: while they
    // all run, every hardware queue is theirs, so queue 0 (idle) lost its hold.
    let big: Vec<Buffer> = (0..VMS)
        .filter_map(|_| Buffer::create(&dev, BIG, BufferFlags::VRAM).ok())
        .collect();
    let big_binds: Vec<Binding> = vms
        .iter()
        .zip(&big)
        .filter_map(|(vm, bo)| vm.bind_auto(bo, Access::READ_WRITE).ok())
        .collect();
    if big_binds.len() != VMS {
        t.check(false, "big buffers", "BO_CREATE or VM_BIND failed");
        t.finish();
    }
    let long = |q: usize| -> Vec<Command> {
        (0..512u32)
            .map(|k| Command::fill(big_binds[q / PER_VM].va(), k, BIG))
            .collect()
    };
    let jobs: Vec<_> = (1..=hw_queues)
        .map(|q| queues[q].submit(&long(q)).map(|j| j.seqno()))
        .collect();
    t.check(
        jobs.iter().all(|j| j.is_ok()),
        "then other queues start long jobs on every hardware queue",
        format_args!("{jobs:?}"),
    );
    if let Ok(s) = bad {
        let r = queues[0].wait_seqno(s, T);
        t.check(
            r.is_err(),
            "WAIT on the faulted job, whose run ended, still says it failed",
            format_args!("{r:?}"),
        );
    }
    let long_ok = jobs.iter().enumerate().all(|(k, j)| {
        j.as_ref()
            .is_ok_and(|&s| matches!(queues[k + 1].wait_seqno(s, T), Ok(WaitStatus::Completed)))
    });
    t.check(long_ok, "the long jobs complete", "");
    let r = queues[0].run(&[Command::fill(page_va(0), value(3, 0), PAGE)], T);
    t.check(
        r.is_ok(),
        "the faulted queue runs its next job",
        format_args!("{r:?}"),
    );
    t.eq(word(0), Some(value(3, 0)), "with its data");
    let _ = inject("clear");

    // 4. The device's queue limit.
    let limit = dev.limits().map(|l| l.max_queues as usize).unwrap_or(0);
    t.eq(limit, 64, "QUERY_LIMITS: 64 queues");
    let mut extra = Vec::new();
    let mut refused = None;
    while extra.len() + queues.len() <= limit {
        match Queue::create(&vms[extra.len() % VMS]) {
            Ok(q) => extra.push(q),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    t.eq(
        extra.len() + queues.len(),
        limit,
        "QUEUE_CREATE succeeds up to the limit",
    );
    t.check(
        refused.as_ref().and_then(|e| e.errno()) == Some(libc::EBUSY),
        "one more QUEUE_CREATE says EBUSY",
        format_args!("{refused:?}"),
    );
    drop(extra.pop());
    let r = io(Queue::create(&vms[0]));
    t.check(
        r.is_ok(),
        "after a QUEUE_DESTROY a queue can be created again",
        format_args!("{:?}", r.as_ref().err()),
    );
    drop(r);
    drop(extra);

    // 5. Queues that never go idle do not starve the others.
    let exe = std::env::current_exe().unwrap_or_default();
    let hogs: Vec<_> = (0..hw_queues)
        .filter_map(|_| {
            std::process::Command::new(&exe)
                .args(["--hog", "14"])
                .env("VELA_DEVICE", dev.path())
                .spawn()
                .ok()
        })
        .collect();
    t.eq(hogs.len(), hw_queues, "5: a busy child per hardware queue");
    std::thread::sleep(Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let r = queues[0].run(&[Command::fill(page_va(0), value(5, 0), PAGE)], T);
    let took = started.elapsed();
    t.check(
        r.is_ok() && took < Duration::from_secs(5),
        "5: another queue's job runs within 5 s while every ring is kept busy",
        format_args!("{r:?} after {took:?}"),
    );
    t.eq(word(0), Some(value(5, 0)), "5: with its data");
    let ok = hogs
        .into_iter()
        .map(|mut c| c.wait().is_ok_and(|s| s.success()))
        .filter(|&ok| ok)
        .count();
    t.eq(ok, hw_queues, "5: the busy children's jobs all complete");

    // 6. QUEUE_DESTROY with a job waiting in the kernel.
    let buf = Buffer::create(&dev, 2 * BIG, flags);
    let (Ok(buf), Ok(qa), Ok(qb)) = (buf, Queue::create(&vms[0]), Queue::create(&vms[0])) else {
        t.check(
            false,
            "6: a buffer and two queues",
            "BO_CREATE or QUEUE_CREATE failed",
        );
        t.finish()
    };
    let Ok(long_bo) = Buffer::create(&dev, LONG, BufferFlags::VRAM) else {
        t.check(false, "6: the long job's buffer", "BO_CREATE failed");
        t.finish()
    };
    let (Ok(bb), Ok(lb)) = (
        vms[0].bind_auto(&buf, Access::READ_WRITE),
        vms[0].bind_auto(&long_bo, Access::READ_WRITE),
    ) else {
        t.check(false, "6: bind", "VM_BIND failed");
        t.finish()
    };
    // 8 GiB of writes: the check below must find it still running. 512 MiB took
    // about 50 ms, and a starved guest once took longer than that between the two
    // submits. The first FILL makes the long job a writer of `buf`.
    let long: Vec<Command> = std::iter::once(Command::fill(bb.va(), 0, PAGE))
        .chain((1..1024u32).map(|k| Command::fill(lb.va(), k, LONG)))
        .collect();
    let ja = qa.submit(&long).map(|j| j.seqno());
    // Same VM: the job depends on the long job's fence in the buffers' reservation objects.
    let jb = qb
        .submit(&[Command::fill(bb.at(BIG), 0x600d_0006, PAGE)])
        .map(|j| j.seqno());
    let waiting = jb
        .as_ref()
        .map(|&s| matches!(qb.wait_seqno(s, Duration::ZERO), Ok(WaitStatus::TimedOut)));
    t.check(
        ja.is_ok() && matches!(waiting, Ok(true)),
        "6: a job waits in the kernel for another queue's long job",
        format_args!("{ja:?} {waiting:?}"),
    );
    drop(qb);
    let r = ja.map(|s| qa.wait_seqno(s, T));
    t.check(
        r.is_ok(),
        "6: the long job completes",
        format_args!("{r:?}"),
    );
    let read = || buf.map().ok()?.read_u32(BIG as usize).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while read() != Some(0x600d_0006) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    t.eq(
        read(),
        Some(0x600d_0006),
        "6: the destroyed queue's waiting job ran anyway",
    );
    drop(qa);
    case7_hw_wait(&mut t, &dev, hw_queues);
    t.finish()
}

/// Case 7: a job waiting for a hardware queue runs when a ring drains.
fn case7_hw_wait(t: &mut Tap, dev: &vela_runtime::Device, hw_queues: usize) {
    // Own VMs and buffers, so that no job depends on another by implicit sync.
    let setup = || -> vela_runtime::Result<_> {
        let vm = Vm::create(dev)?;
        let bo = Buffer::create(dev, 8 << 20, BufferFlags::VRAM | BufferFlags::CPU_VISIBLE)?;
        Ok((vm, bo))
    };
    let mut owners = Vec::new();
    for _ in 0..=hw_queues {
        match setup() {
            Ok(o) => owners.push(o),
            Err(e) => {
                t.check(false, "7: VMs and buffers", e);
                return;
            }
        }
    }
    let binds: Vec<_> = owners
        .iter()
        .filter_map(|(vm, bo)| vm.bind_auto(bo, Access::READ_WRITE).ok())
        .collect();
    let queues: Vec<_> = owners
        .iter()
        .filter_map(|(vm, _)| Queue::create(vm).ok())
        .collect();
    if binds.len() != owners.len() || queues.len() != owners.len() {
        t.check(
            false,
            "7: binds and queues",
            "VM_BIND or QUEUE_CREATE failed",
        );
        return;
    }
    // About 2 GiB of writes per ring: long enough for the last SUBMIT to find them all busy.
    let long: Vec<Vec<Command>> = binds
        .iter()
        .map(|b| {
            (0..256u32)
                .map(|k| Command::fill(b.va(), k, 8 << 20))
                .collect()
        })
        .collect();
    let busy: Vec<_> = (0..hw_queues)
        .map(|i| queues[i].submit(&long[i]).map(|j| j.seqno()))
        .collect();
    let w = hw_queues;
    let job = queues[w].submit(&[Command::fill(binds[w].va(), 0x600d_0007, PAGE)]);
    let submitted = std::time::Instant::now();
    let seqno = job.as_ref().map(|j| j.seqno()).ok();
    let waiting = seqno.map(|s| queues[w].wait_seqno(s, Duration::ZERO));
    t.check(
        busy.iter().all(|b| b.is_ok()) && matches!(waiting, Some(Ok(WaitStatus::TimedOut))),
        "7: every ring busy; another queue's job waits in the kernel for one",
        format_args!("{busy:?} {waiting:?}"),
    );
    let r = seqno.map(|s| queues[w].wait_seqno(s, T));
    let took = submitted.elapsed();
    let long_done = busy.iter().enumerate().any(|(i, b)| {
        b.as_ref().is_ok_and(|&s| {
            matches!(
                queues[i].wait_seqno(s, Duration::ZERO),
                Ok(WaitStatus::Completed)
            )
        })
    });
    t.check(
        matches!(r, Some(Ok(WaitStatus::Completed))) && took < Duration::from_secs(15),
        "7: it runs once a ring drains, with nothing else to wake the scheduler",
        format_args!("{r:?} after {took:?}"),
    );
    t.check(
        long_done,
        "7: a long job was done by then (its ring drained first)",
        "",
    );
    let word = owners[w].1.map().ok().and_then(|m| m.read_u32(0).ok());
    t.eq(word, Some(0x600d_0007), "7: with its data");
}
