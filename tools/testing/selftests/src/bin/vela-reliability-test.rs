// SPDX-License-Identifier: GPL-2.0

//! Faults injected into the device model while the driver runs real jobs: an engine hang is
//! detected, the device is reset and only the hung queue's job fails; a dropped interrupt, an
//! injected MMU fault and a failed DMA each cost exactly one job; a process that exits with
//! jobs in flight leaves a working device behind; a hung job nobody waits for is timed out by
//! the driver's watchdog. The harness fails the run on any kernel
//! report, and kmemleak scans after the test list.

use std::time::Duration;

use vela_runtime::{Access, Buffer, BufferFlags, Command, Error, Queue, Vm, WaitStatus};
use vela_selftests::{inject, open_device, Tap};

const T: Duration = Duration::from_secs(20);
const LEN: u64 = 64 << 10;

fn failed<T: std::fmt::Debug>(r: &vela_runtime::Result<T>) -> bool {
    matches!(r, Err(Error::JobFailed { .. }))
}

/// The child of step 5: queue a large job and a few small ones, leave them in flight with the
/// buffers mapped and bound, and exit without cleaning anything up.
fn exit_with_jobs() -> ! {
    let Ok(dev) = vela_runtime::Device::first() else {
        std::process::exit(2)
    };
    let run = || -> vela_runtime::Result<()> {
        let vm = Vm::create(&dev)?;
        let bo = Buffer::create(&dev, 8 << 20, BufferFlags::VRAM | BufferFlags::CPU_VISIBLE)?;
        let _map = bo.map()?;
        let bind = vm.bind_auto(&bo, Access::READ_WRITE)?;
        let q = Queue::create(&vm)?;
        q.submit(&[Command::copy(bind.at(0), bind.at(4 << 20), 4 << 20)])?;
        for _ in 0..8 {
            q.submit(&[Command::fill(bind.at(0), 0xabcd, 1 << 20)])?;
        }
        // And a job on a second queue of the VM, which waits in the kernel for the first
        // queue's jobs (implicit sync): the queue and VM outlive the process until it ran.
        let q2 = Queue::create(&vm)?;
        q2.submit(&[Command::fill(bind.at(0), 0x1234, 4096)])?;
        // Exit with everything live: the kernel must stop the queue before it frees the ring,
        // drop the bindings and mappings, and leak nothing.
        std::process::exit(0)
    };
    match run() {
        Ok(()) => std::process::exit(0),
        Err(_) => std::process::exit(1),
    }
}

fn fill<'q>(q: &'q Queue<'q>, va: u64, v: u32) -> vela_runtime::Result<vela_runtime::Job<'q>> {
    q.submit(&[Command::fill(va, v, 4096)])
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--exit-with-jobs") {
        exit_with_jobs();
    }
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let flags = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;
    let (Ok(vm_a), Ok(vm_b)) = (Vm::create(&dev), Vm::create(&dev)) else {
        t.check(false, "two VMs", "VM_CREATE failed");
        t.finish()
    };
    let (Ok(bo_a), Ok(bo_b)) = (
        Buffer::create(&dev, LEN, flags),
        Buffer::create(&dev, LEN, flags),
    ) else {
        t.check(false, "two buffers", "BO_CREATE failed");
        t.finish()
    };
    let (Ok(a), Ok(b)) = (
        vm_a.bind_auto(&bo_a, Access::READ_WRITE),
        vm_b.bind_auto(&bo_b, Access::READ_WRITE),
    ) else {
        t.check(false, "bind the buffers", "VM_BIND failed");
        t.finish()
    };
    let (Ok(qa), Ok(qb), Ok(ma), Ok(mb)) = (
        Queue::create(&vm_a),
        Queue::create(&vm_b),
        bo_a.map(),
        bo_b.map(),
    ) else {
        t.check(false, "queues and mappings", "failed");
        t.finish()
    };
    let word = |m: &vela_runtime::Mapping<'_>, at: usize| m.read_u32(at).ok();

    // 1. Engine hang: the waiter's queue times out, the device resets, the other VM's job,
    //    stuck behind the same hung engine, is replayed and completes.
    t.ok(inject("hang-engine=copy"), "inject: hang the copy engine");
    let (ja, jb) = (
        fill(&qa, a.at(0), 0x1111_1111),
        fill(&qb, b.at(0), 0x2222_2222),
    );
    match (ja, jb) {
        (Ok(ja), Ok(jb)) => {
            let r = ja.wait(T);
            t.check(
                failed(&r),
                "hung job: WAIT fails (EIO) after the timeout and reset",
                format_args!("{r:?}"),
            );
            let r = jb.wait(T);
            t.check(
                matches!(r, Ok(WaitStatus::Completed)),
                "the other VM's job completes after the reset",
                format_args!("{r:?}"),
            );
            t.eq(word(&mb, 0), Some(0x2222_2222), "and its data is there");
        }
        (ja, jb) => {
            t.check(
                false,
                "submit on both queues",
                format_args!("{:?} {:?}", ja.err(), jb.err()),
            );
        }
    }
    let r = fill(&qa, a.at(0), 0x3333_3333).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Ok(WaitStatus::Completed)),
        "the hung queue runs again after the reset",
        format_args!("{r:?}"),
    );
    t.eq(
        word(&ma, 0),
        Some(0x3333_3333),
        "its new job's data is there",
    );

    // 2. A dropped interrupt delays nothing for long: the waiter polls the fence.
    t.ok(inject("drop-irq=1"), "inject: drop the next interrupt");
    let r = fill(&qa, a.at(4096), 0x4444_4444).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Ok(WaitStatus::Completed)),
        "a job whose interrupt was dropped completes",
        format_args!("{r:?}"),
    );
    t.eq(word(&ma, 4096), Some(0x4444_4444), "with its data");

    // 3. An injected MMU fault fails that job only.
    t.ok(inject("mmu-fault=1"), "inject: fault the next command");
    let r = fill(&qa, a.at(8192), 0x5555_5555).and_then(|j| j.wait(T));
    t.check(
        failed(&r),
        "the faulting job fails (EIO)",
        format_args!("{r:?}"),
    );
    let r = fill(&qb, b.at(8192), 0x6666_6666).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Ok(WaitStatus::Completed)),
        "another VM is not disturbed",
        format_args!("{r:?}"),
    );
    let r = fill(&qa, a.at(8192), 0x7777_7777).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Ok(WaitStatus::Completed)),
        "the faulted queue runs its next job",
        format_args!("{r:?}"),
    );
    t.eq(word(&ma, 8192), Some(0x7777_7777), "with its data");

    // 4. A failed DMA fails that job only.
    t.ok(inject("fail-dma=1"), "inject: fail the next DMA");
    let r = fill(&qa, a.at(12288), 1).and_then(|j| j.wait(T));
    t.check(
        failed(&r),
        "the job whose DMA failed fails (EIO)",
        format_args!("{r:?}"),
    );
    let r = fill(&qa, a.at(12288), 0x8888_8888).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Ok(WaitStatus::Completed)),
        "the queue runs its next job",
        format_args!("{r:?}"),
    );

    // 5. A process that exits with a job in flight, its buffers mapped and bound.
    // The child must use this very device (the one the faults went to), not whichever Vela
    // node has the lowest minor.
    let child = std::process::Command::new(std::env::current_exe().unwrap_or_default())
        .arg("--exit-with-jobs")
        .env("VELA_DEVICE", dev.path())
        .status();
    t.check(
        child.as_ref().is_ok_and(|s| s.success()),
        "a child exits with jobs in flight",
        format_args!("{child:?}"),
    );
    let r = fill(&qb, b.at(0), 0x9999_9999).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Ok(WaitStatus::Completed)),
        "the device still runs jobs afterwards",
        format_args!("{r:?}"),
    );

    // 6. A hang nobody waits for: the watchdog times the job out and resets the device on
    //    its own, so a process that never waits cannot leave the engine hung.
    let resets = || {
        inject("status").ok().and_then(|r| {
            r.split_whitespace()
                .find_map(|w| w.strip_prefix("resets=")?.parse::<u64>().ok())
        })
    };
    let before = resets();
    t.ok(inject("hang-engine=copy"), "inject: hang the copy engine");
    let job = fill(&qa, a.at(16384), 0xaaaa_aaaa);
    t.check(job.is_ok(), "submit a job and do not wait for it", "");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut after = resets();
    while after <= before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = resets();
    }
    t.check(
        matches!((before, after), (Some(b), Some(a)) if a > b),
        "the watchdog resets the device with nobody waiting",
        format_args!("model resets before {before:?}, after {after:?}"),
    );
    let r = job.and_then(|j| j.wait(T));
    t.check(
        failed(&r),
        "the job nobody waited for failed (EIO)",
        format_args!("{r:?}"),
    );
    let r = fill(&qa, a.at(16384), 0xbbbb_bbbb).and_then(|j| j.wait(T));
    t.check(
        matches!(r, Ok(WaitStatus::Completed)),
        "the queue runs again",
        format_args!("{r:?}"),
    );
    t.eq(word(&ma, 16384), Some(0xbbbb_bbbb), "with its data");

    let _ = inject("clear");
    t.finish()
}
