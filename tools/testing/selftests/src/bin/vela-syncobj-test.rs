// SPDX-License-Identifier: GPL-2.0

//! SUBMIT with DRM sync objects: the out-syncobj gets a fence that signals when the job is
//! done (with -EIO when it failed), and a job with in-syncobjs runs only after their fences;
//! an in-syncobj that holds no fence is no dependency (the job runs at once). Implicit sync:
//! every job's fence is in the reservation object of the buffers bound in its VM, and BO_WAIT
//! waits for it.

use std::{fs::File, os::fd::AsRawFd, time::Duration};

use libc::{EFAULT, EINVAL, EIO, ENOENT, ETIME};
use vela_runtime::{raw, Access, Buffer, BufferFlags, Command, Device, Queue, Vm, WaitStatus};
use vela_selftests::{open_device, Tap};

const T: Duration = Duration::from_secs(20);

/// DRM_IOWR(nr, size) with the DRM ioctl base 'd'.
fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | (u64::from(b'd') << 8) | nr
}

fn ioctl<T>(fd: &impl AsRawFd, request: u64, arg: &mut T) -> std::io::Result<()> {
    // SAFETY: `arg` is a live, exclusive `T` of exactly the size `request` encodes.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as libc::c_ulong, arg as *mut T) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[repr(C)]
#[derive(Default)]
struct SyncobjCreate {
    handle: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct SyncobjWait {
    handles: u64,
    timeout_nsec: i64,
    count_handles: u32,
    flags: u32,
    first_signaled: u32,
    pad: u32,
    deadline_nsec: u64,
}

#[repr(C)]
#[derive(Default)]
struct SyncobjHandle {
    handle: u32,
    flags: u32,
    fd: i32,
    pad: u32,
    point: u64,
}

#[repr(C)]
struct SyncFileInfo {
    name: [u8; 32],
    status: i32,
    flags: u32,
    num_fences: u32,
    pad: u32,
    sync_fence_info: u64,
}

fn syncobj(dev: &Device) -> std::io::Result<u32> {
    let mut a = SyncobjCreate::default();
    ioctl(dev.file(), iowr(0xbf, 8), &mut a).map(|()| a.handle)
}

fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// DRM_IOCTL_SYNCOBJ_WAIT on one handle, for up to `t` (an absolute deadline to the kernel).
fn syncobj_wait(dev: &Device, h: u32, t: Duration) -> std::io::Result<()> {
    let handles = [h];
    let mut a = SyncobjWait {
        handles: handles.as_ptr() as u64,
        timeout_nsec: now_ns() + t.as_nanos() as i64,
        count_handles: 1,
        ..Default::default()
    };
    ioctl(dev.file(), iowr(0xc3, 40), &mut a)
}

/// The status of the syncobj's fence, through a sync_file: 1 signalled, 0 active, <0 error.
fn fence_status(dev: &Device, h: u32) -> std::io::Result<i32> {
    let mut a = SyncobjHandle {
        handle: h,
        flags: 1, // EXPORT_SYNC_FILE
        ..Default::default()
    };
    ioctl(dev.file(), iowr(0xc1, 24), &mut a)?;
    // SAFETY: the kernel just handed us this fd; `File` takes ownership and closes it.
    let sync_file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(a.fd) };
    let mut info = SyncFileInfo {
        name: [0; 32],
        status: 0,
        flags: 0,
        num_fences: 0,
        pad: 0,
        sync_fence_info: 0,
    };
    // SYNC_IOC_FILE_INFO = _IOWR('>', 4, struct sync_file_info)
    let req = (3u64 << 30)
        | ((std::mem::size_of::<SyncFileInfo>() as u64) << 16)
        | (u64::from(b'>') << 8)
        | 4;
    ioctl(&sync_file, req, &mut info).map(|()| info.status)
}

struct Submit<'a> {
    q: u32,
    cmds: &'a [Command],
    ins: &'a [u32],
    out: u32,
}

fn submit(dev: &Device, s: Submit<'_>) -> std::io::Result<u64> {
    let mut a = raw::drm_vela_submit {
        queue_id: s.q,
        commands: s.cmds.as_ptr() as u64,
        command_count: s.cmds.len() as u32,
        in_syncobjs: if s.ins.is_empty() {
            0
        } else {
            s.ins.as_ptr() as u64
        },
        in_syncobj_count: s.ins.len() as u32,
        out_syncobj: s.out,
        ..Default::default()
    };
    raw::submit(dev, &mut a).map(|()| a.seqno)
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    const MIB: u64 = 1 << 20;
    let flags = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;
    let (Ok(vm), Ok(src), Ok(mid), Ok(dst)) = (
        Vm::create(&dev),
        Buffer::create(&dev, 16 * MIB, flags),
        Buffer::create(&dev, 16 * MIB, flags),
        Buffer::create(&dev, 16 * MIB, flags),
    ) else {
        t.check(false, "VM and buffers", "failed");
        t.finish()
    };
    let binds = (
        vm.bind_auto(&src, Access::READ_WRITE),
        vm.bind_auto(&mid, Access::READ_WRITE),
        vm.bind_auto(&dst, Access::READ_WRITE),
    );
    let (Ok(bsrc), Ok(bmid), Ok(bdst)) = binds else {
        t.check(false, "bind buffers", "failed");
        t.finish()
    };
    let (Ok(q1), Ok(q2), Ok(mmid), Ok(mdst)) =
        (Queue::create(&vm), Queue::create(&vm), mid.map(), dst.map())
    else {
        t.check(false, "queues and mappings", "failed");
        t.finish()
    };

    // 1. The out-syncobj signals when the job is done.
    // Three sync objects: one per part below.
    let (Ok(s), Ok(s1), Ok(s2)) = (syncobj(&dev), syncobj(&dev), syncobj(&dev)) else {
        t.check(false, "SYNCOBJ_CREATE", "failed");
        t.finish()
    };
    let r = submit(
        &dev,
        Submit {
            q: q1.id(),
            cmds: &[Command::fill(bmid.at(0), 0x1234_5678, 4096)],
            ins: &[],
            out: s,
        },
    );
    t.ok(r, "SUBMIT with an out-syncobj");
    t.ok(
        syncobj_wait(&dev, s, T),
        "SYNCOBJ_WAIT: the job's fence signals",
    );
    t.eq(
        mmid.read_u32(0).ok(),
        Some(0x1234_5678),
        "the job's data is there when it does",
    );
    t.eq(
        fence_status(&dev, s).ok(),
        Some(1),
        "its fence signalled without error",
    );

    // 2. Dependencies: job 1 fills `mid` in 16 commands (the engine interleaves queues a
    //    command at a time), job 2 on another queue copies `mid` to `dst` after job 1's fence.
    //    Without the dependency job 2 would copy a half-filled buffer.
    let _ = mdst.fill(0, (16 * MIB) as usize, 0);
    // 60 passes of junk, then the final pattern: long enough (about 1 GiB of writes) that
    // job 2, submitted right after, would copy junk if it did not wait.
    let mut fills: Vec<Command> = Vec::new();
    for pass in 0..60u32 {
        for i in 0..16u64 {
            fills.push(Command::fill(bmid.at(i * MIB), 0xdead_0000 + pass, MIB));
        }
    }
    for i in 0..16u64 {
        fills.push(Command::fill(bmid.at(i * MIB), 0xa5a5_0000 + i as u32, MIB));
    }
    let j1 = submit(
        &dev,
        Submit {
            q: q1.id(),
            cmds: &fills,
            ins: &[],
            out: s1,
        },
    );
    let j1 = t.ok(j1, "job 1: 976 FILLs with an out-syncobj");
    let j2 = submit(
        &dev,
        Submit {
            q: q2.id(),
            cmds: &[Command::copy(bmid.at(0), bdst.at(0), 16 * MIB)],
            ins: &[s1],
            out: 0,
        },
    );
    // SUBMIT does not wait for the dependency: job 2 waits in software, so job 1 is still
    // running when SUBMIT returns (1 GiB of writes takes the engine tens of ms).
    let j1_running =
        j1.map(|s| matches!(q1.wait_seqno(s, Duration::ZERO), Ok(WaitStatus::TimedOut)));
    t.check(
        j2.is_ok() && j1_running == Some(true),
        "job 2's SUBMIT returns while job 1 still runs (the dependency is waited for in software)",
        format_args!("{j2:?}, job 1 running: {j1_running:?}"),
    );
    let waited = j2.and_then(|seq| q2.wait_seqno(seq, T).map_err(std::io::Error::other));
    t.check(
        waited.is_ok(),
        "job 2 with job 1 as in-syncobj completes",
        format_args!("{waited:?}"),
    );
    let ok = (0..16u64).all(|i| {
        mdst.read_u32((i * MIB) as usize).ok() == Some(0xa5a5_0000 + i as u32)
            && mdst.read_u32((i * MIB + MIB - 4) as usize).ok() == Some(0xa5a5_0000 + i as u32)
    });
    t.check(
        ok,
        "job 2 saw all of job 1's writes",
        "job 2 ran before job 1 finished",
    );

    // 3. A failed job's fence signals with -EIO.
    let unbound = bdst.va() + 64 * MIB;
    let r = submit(
        &dev,
        Submit {
            q: q1.id(),
            cmds: &[Command::copy(unbound, bsrc.at(0), 64)],
            ins: &[],
            out: s2,
        },
    );
    t.ok(r, "SUBMIT a faulting job with an out-syncobj");
    t.ok(syncobj_wait(&dev, s2, T), "its fence signals");
    t.eq(fence_status(&dev, s2).ok(), Some(-EIO), "with -EIO");

    // 4. Errors, each leaving no job behind.
    let nop = [Command::nop()];
    let before = submit(
        &dev,
        Submit {
            q: q1.id(),
            cmds: &nop,
            ins: &[],
            out: 0,
        },
    )
    .unwrap_or(0);
    t.errno(
        submit(
            &dev,
            Submit {
                q: q1.id(),
                cmds: &nop,
                ins: &[],
                out: 0xdead,
            },
        ),
        ENOENT,
        "unknown out-syncobj: ENOENT",
    );
    t.errno(
        submit(
            &dev,
            Submit {
                q: q1.id(),
                cmds: &nop,
                ins: &[0xdead],
                out: 0,
            },
        ),
        ENOENT,
        "unknown in-syncobj: ENOENT",
    );
    let many = [s; 65];
    t.errno(
        submit(
            &dev,
            Submit {
                q: q1.id(),
                cmds: &nop,
                ins: &many,
                out: 0,
            },
        ),
        EINVAL,
        "65 in-syncobjs: EINVAL",
    );
    let mut a = raw::drm_vela_submit {
        queue_id: q1.id(),
        commands: nop.as_ptr() as u64,
        command_count: 1,
        in_syncobjs: 8,
        in_syncobj_count: 1,
        ..Default::default()
    };
    t.errno(
        raw::submit(&dev, &mut a),
        EFAULT,
        "unreadable in-syncobj array: EFAULT",
    );
    let after = submit(
        &dev,
        Submit {
            q: q1.id(),
            cmds: &nop,
            ins: &[],
            out: 0,
        },
    )
    .unwrap_or(0);
    t.eq(after, before + 1, "the refused SUBMITs queued nothing");

    // 5. The first version of the struct, 32 bytes with no sync object fields, still works.
    let mut old = [0u64; 4];
    old[0] = u64::from(q1.id());
    old[1] = nop.as_ptr() as u64;
    old[2] = 1;
    let r = ioctl(dev.file(), iowr(0x40 + 0x0a, 32), &mut old);
    t.check(
        r.is_ok() && old[3] == after + 1,
        "SUBMIT with the original 32-byte struct",
        format_args!("{r:?} seqno {}", old[3]),
    );

    // 6. Implicit sync: a long job's fence is in its buffers' reservation objects.
    let bo_wait = |h: u32, flags: u32, timeout_ns: i64| {
        let mut a = vela_uapi::drm_vela_bo_wait {
            handle: h,
            flags,
            timeout_ns,
        };
        ioctl(dev.file(), vela_uapi::DRM_IOCTL_VELA_BO_WAIT as u64, &mut a)
    };
    let Ok(loose) = Buffer::create(&dev, 4096, flags) else {
        t.check(false, "an unbound buffer", "failed");
        t.finish()
    };
    t.ok(bo_wait(mid.handle(), 0, 0), "BO_WAIT on an idle buffer: 0");
    let long = submit(
        &dev,
        Submit {
            q: q1.id(),
            cmds: &fills,
            ins: &[],
            out: 0,
        },
    );
    t.ok(long, "SUBMIT a long job on the VM");
    t.errno(
        bo_wait(mid.handle(), 0, 0),
        ETIME,
        "BO_WAIT polls a buffer the job uses: ETIME (busy)",
    );
    t.ok(
        bo_wait(loose.handle(), 0, 0),
        "a buffer bound nowhere is not busy",
    );
    t.ok(
        bo_wait(mid.handle(), 0, 30_000_000_000),
        "BO_WAIT until the job is done",
    );
    let done =
        (0..16u64).all(|i| mmid.read_u32((i * MIB) as usize).ok() == Some(0xa5a5_0000 + i as u32));
    t.check(
        done,
        "after BO_WAIT the CPU reads the job's final data",
        "stale data",
    );
    t.errno(
        bo_wait(mid.handle(), 1, 0),
        EINVAL,
        "BO_WAIT unknown flag: EINVAL",
    );
    t.errno(
        bo_wait(mid.handle(), 0, -1),
        EINVAL,
        "BO_WAIT negative timeout: EINVAL",
    );
    t.errno(
        bo_wait(0xdead, 0, 0),
        ENOENT,
        "BO_WAIT unknown handle: ENOENT",
    );

    // 7. Implicit sync in SUBMIT: job 2 of case 2 again, on another queue, with no
    //    in-syncobj. Job 1's fence is in `mid`'s reservation object and `mid` is bound in
    //    job 2's VM, so job 2 waits for it and copies the final data, not junk.
    let _ = mdst.fill(0, (16 * MIB) as usize, 0);
    let j1 = submit(
        &dev,
        Submit {
            q: q1.id(),
            cmds: &fills,
            ins: &[],
            out: 0,
        },
    );
    t.ok(j1, "implicit: job 1, 976 FILLs, no out-syncobj");
    let j2 = submit(
        &dev,
        Submit {
            q: q2.id(),
            cmds: &[Command::copy(bmid.at(0), bdst.at(0), 16 * MIB)],
            ins: &[],
            out: 0,
        },
    );
    let waited = j2.and_then(|seq| q2.wait_seqno(seq, T).map_err(std::io::Error::other));
    t.check(
        waited.is_ok(),
        "implicit: job 2 on another queue, no in-syncobj, completes",
        format_args!("{waited:?}"),
    );
    let ok = (0..16u64).all(|i| {
        mdst.read_u32((i * MIB) as usize).ok() == Some(0xa5a5_0000 + i as u32)
            && mdst.read_u32((i * MIB + MIB - 4) as usize).ok() == Some(0xa5a5_0000 + i as u32)
    });
    t.check(
        ok,
        "implicit: job 2 saw all of job 1's writes (it waited for the buffer's fences)",
        "job 2 ran before job 1 finished",
    );

    // 8. An in-syncobj that holds no fence (created without SIGNALED and never given one) is
    //    no dependency: SUBMIT succeeds and the job runs at once. Were it waited for, the job
    //    would still be waiting when WAIT gives up (20 s), and fail at the 30 s deadline.
    let Ok(empty) = syncobj(&dev) else {
        t.check(false, "SYNCOBJ_CREATE of an empty sync object", "failed");
        t.finish()
    };
    t.errno(
        fence_status(&dev, empty),
        EINVAL,
        "a new sync object holds no fence (sync_file export: EINVAL)",
    );
    let r = submit(
        &dev,
        Submit {
            q: q2.id(),
            cmds: &[Command::fill(bmid.at(0), 0x5eed_0008, 4096)],
            ins: &[empty],
            out: 0,
        },
    );
    let r = t.ok(r, "SUBMIT with an in-syncobj that holds no fence");
    let waited = r.map(|seq| q2.wait_seqno(seq, T));
    t.check(
        matches!(waited, Some(Ok(WaitStatus::Completed))),
        "the job does not wait for it: WAIT says it completed",
        format_args!("{waited:?}"),
    );
    t.eq(
        mmid.read_u32(0).ok(),
        Some(0x5eed_0008),
        "and its data is there",
    );
    t.finish()
}
