// SPDX-License-Identifier: GPL-2.0

//! SUBMIT and WAIT: COPY, FILL, FENCE and every compute kernel on the device, checked against
//! the CPU reference with the data read back through mappings; the errno of every malformed
//! submission; jobs that fault (WAIT -EIO) without stopping other VMs; WAIT's polling and
//! never-submitted seqnos.

use std::time::{Duration, Instant};

use libc::{EFAULT, EINVAL, EIO, ETIME};
use vela_runtime::{
    exec,
    kernels::{self, KernelCall, KernelId, Rng},
    raw, Access, Buffer, BufferFlags, Command, Device, Queue, Vm, WaitStatus,
};
use vela_selftests::{io, msg, open_device, NoAccessPage, Tap, ENOENT_BAD_ID};

const T: Duration = Duration::from_secs(30);

fn submit_raw(
    dev: &Device,
    queue_id: u32,
    ptr: u64,
    count: u32,
    flags: u32,
    pad: u32,
) -> std::io::Result<u64> {
    let mut a = raw::drm_vela_submit {
        queue_id,
        flags,
        commands: ptr,
        command_count: count,
        pad,
        seqno: 0,
        ..Default::default()
    };
    raw::submit(dev, &mut a).map(|()| a.seqno)
}

fn submit(dev: &Device, q: u32, cmds: &[Command]) -> std::io::Result<u64> {
    submit_raw(dev, q, cmds.as_ptr() as u64, cmds.len() as u32, 0, 0)
}

fn wait_raw(
    dev: &Device,
    queue_id: u32,
    seqno: u64,
    timeout_ns: i64,
    flags: u32,
) -> std::io::Result<()> {
    raw::wait(
        dev,
        &mut raw::drm_vela_wait {
            queue_id,
            flags,
            seqno,
            timeout_ns,
        },
    )
}

fn kernel_case(t: &mut Tap, q: &Queue<'_>, rng: &mut Rng, call: KernelCall, what: &str) {
    let sz = call
        .id
        .operand_bytes(u64::from(call.count), u64::from(call.n), u64::from(call.k));
    let (a, b, c) = (
        rng.operand(call.id, sz.a as usize),
        rng.operand(call.id, sz.b as usize),
        rng.operand(call.id, sz.c as usize),
    );
    kernel_with(t, q, call, &a, &b, &c, what);
}

fn kernel_with(
    t: &mut Tap,
    q: &Queue<'_>,
    call: KernelCall,
    a: &[u8],
    b: &[u8],
    c: &[u8],
    what: &str,
) {
    let want = kernels::reference(&call, a, b, c);
    match exec::run_kernel(q, BufferFlags::VRAM, &call, a, b, c, T) {
        Ok(run) => match want {
            Some(w) => {
                let bad = kernels::first_mismatch(call.id, &run.dst, &w);
                t.check(
                    bad.is_none(),
                    what,
                    format_args!("first differing element {bad:?}"),
                );
            }
            None => {
                t.check(
                    run.dst.iter().all(|&x| x == exec::DST_POISON),
                    what,
                    "the destination was written",
                );
            }
        },
        Err(e) => {
            t.check(false, what, e);
        }
    }
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let Some(vm) = t.ok(msg(Vm::create(&dev)), "VM_CREATE") else {
        t.finish()
    };
    let Some(q) = t.ok(msg(Queue::create(&vm)), "QUEUE_CREATE") else {
        t.finish()
    };
    let qid = q.id();
    const SZ: u64 = 256 << 10;
    // One buffer in VRAM, one in system memory: copies between them cross the bus.
    let (Ok(vbo), Ok(sbo)) = (Buffer::vram(&dev, SZ), Buffer::system(&dev, SZ)) else {
        t.check(false, "create a VRAM and a system buffer", "failed");
        t.finish();
    };
    let (Ok(vmap), Ok(smap)) = (vbo.map(), sbo.map()) else {
        t.check(false, "map both buffers", "failed");
        t.finish();
    };
    let (Ok(vb), Ok(sb)) = (
        vm.bind_auto(&vbo, Access::READ_WRITE),
        vm.bind_auto(&sbo, Access::READ_WRITE),
    ) else {
        t.check(false, "bind both buffers", "failed");
        t.finish();
    };
    t.check(true, "two VRAM buffers created, mapped and bound", "");

    // FENCE.
    let _ = smap.write_u64(0, 0);
    t.ok(
        msg(q.run(&[Command::fence(sb.at(0), 0x0123_4567_89ab_cdef)], T)),
        "FENCE job completes",
    );
    t.eq(
        smap.read_u64(0).ok(),
        Some(0x0123_4567_89ab_cdef),
        "FENCE value in the second buffer",
    );
    t.ok(
        msg(q.run(&[Command::fence(vb.at(8), 42)], T)),
        "FENCE into VRAM",
    );
    t.eq(vmap.read_u64(8).ok(), Some(42), "FENCE value in VRAM");

    // FILL, with the bytes around the range untouched.
    let _ = vmap.fill(0, SZ as usize, 0);
    t.ok(
        msg(q.run(&[Command::fill(vb.at(0x1000), 0xa5a5_5a5a, 0x8000)], T)),
        "FILL job completes",
    );
    let got: Vec<u32> = vmap.read_vec_of(0x1000, 0x2000).unwrap_or_default();
    t.check(
        got.iter().all(|&w| w == 0xa5a5_5a5a) && got.len() == 0x2000,
        "FILL pattern in every word",
        "mismatch",
    );
    let around = vmap.read_u32(0xffc).ok() == Some(0) && vmap.read_u32(0x9000).ok() == Some(0);
    t.check(
        around,
        "FILL writes nothing outside its range",
        "neighbour written",
    );
    t.ok(
        msg(q.run(&[Command::fill(vb.at(0x20000), 1, 0)], T)),
        "FILL of length 0 completes",
    );

    // COPY in every direction, at odd alignment.
    let mut rng = Rng::new(7);
    let mut data = vec![0u8; 0x10000];
    rng.fill_bytes(&mut data);
    let _ = vmap.write(0, &data);
    let _ = smap.fill(0, SZ as usize, 0);
    t.ok(
        msg(q.run(&[Command::copy(vb.at(0), sb.at(0), 0x10000)], T)),
        "COPY VRAM -> second buffer",
    );
    t.check(
        smap.read_vec(0, 0x10000).is_ok_and(|v| v == data),
        "COPY VRAM -> second buffer data",
        "differs",
    );
    t.ok(
        msg(q.run(&[Command::copy(sb.at(0), vb.at(0x20000), 0x10000)], T)),
        "COPY second buffer -> VRAM",
    );
    t.check(
        vmap.read_vec(0x20000, 0x10000).is_ok_and(|v| v == data),
        "COPY second buffer -> VRAM data",
        "differs",
    );
    t.ok(
        msg(q.run(&[Command::copy(vb.at(0), vb.at(0x30000), 0x10000)], T)),
        "COPY VRAM -> VRAM",
    );
    t.check(
        vmap.read_vec(0x30000, 0x10000).is_ok_and(|v| v == data),
        "COPY VRAM -> VRAM data",
        "differs",
    );
    let _ = smap.fill(0x20000, 0x1000, 0xee);
    t.ok(
        msg(q.run(&[Command::copy(vb.at(3), sb.at(0x20005), 1001)], T)),
        "COPY at odd addresses",
    );
    let v = smap.read_vec(0x20000, 0x1000).unwrap_or_default();
    t.check(
        v.len() == 0x1000
            && v[5..1006] == data[3..1004]
            && v[..5].iter().chain(&v[1006..]).all(|&b| b == 0xee),
        "odd COPY moves exactly its bytes",
        "differs",
    );

    // One job, several commands, in order: FILL, COPY of the filled range, FENCE.
    let _ = smap.write_u64(0x30000, 0);
    let job = [
        Command::fill(vb.at(0x40000), 0x1357_9bdf, 0x1000),
        Command::copy(vb.at(0x40000), sb.at(0x31000), 0x1000),
        Command::fence(sb.at(0x30000), 3),
    ];
    t.ok(msg(q.run(&job, T)), "FILL, COPY, FENCE in one job");
    let ok = smap.read_u64(0x30000).ok() == Some(3)
        && smap
            .read_vec_of::<u32>(0x31000, 0x400)
            .is_ok_and(|v| v.iter().all(|&w| w == 0x1357_9bdf));
    t.check(
        ok,
        "commands of a job run in order",
        "COPY saw stale data or FENCE missing",
    );
    let nops = vec![Command::nop(); vela_runtime::MAX_COMMANDS];
    t.ok(msg(q.run(&nops, T)), "a job of 1024 NOPs");

    // Seqnos grow; WAIT on an old completed job returns at once; timeout 0 polls.
    let s1 = submit(&dev, qid, &[Command::nop()]);
    let s2 = submit(&dev, qid, &[Command::nop()]);
    if let (Ok(a), Ok(b)) = (&s1, &s2) {
        t.check(b > a, "seqnos increase", format_args!("{a} then {b}"));
        t.ok(
            wait_raw(&dev, qid, *b, T.as_nanos() as i64, 0),
            "WAIT the later job",
        );
        t.ok(
            wait_raw(&dev, qid, *a, 0, 0),
            "WAIT timeout 0 on a completed job: 0",
        );
    } else {
        t.check(false, "submit two NOP jobs", format_args!("{s1:?} {s2:?}"));
    }
    // A big FILL gives a window in which a poll may see it unfinished.
    if let Ok(big) = Buffer::create(&dev, 32 << 20, BufferFlags::VRAM) {
        if let Ok(bb) = vm.bind_auto(&big, Access::READ_WRITE) {
            let cmds: Vec<Command> = (0..8)
                .map(|_| Command::fill(bb.va(), 7, 32 << 20))
                .collect();
            match q.submit(&cmds) {
                Ok(job) => {
                    let t0 = Instant::now();
                    let first = job.wait(Duration::ZERO);
                    let poll_time = t0.elapsed();
                    t.check(
                        matches!(first, Ok(WaitStatus::Completed | WaitStatus::TimedOut)),
                        "WAIT timeout 0 answers 0 or ETIME",
                        format_args!("{first:?}"),
                    );
                    t.check(
                        poll_time < Duration::from_millis(200),
                        "WAIT timeout 0 does not block",
                        format_args!("{poll_time:?}"),
                    );
                    let mut polls = 0;
                    let done = loop {
                        match job.wait(Duration::ZERO) {
                            Ok(WaitStatus::Completed) => break true,
                            Ok(WaitStatus::TimedOut) if t0.elapsed() < T => polls += 1,
                            _ => break false,
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    };
                    t.check(
                        done,
                        "polling with timeout 0 sees the job complete",
                        format_args!("{polls} polls"),
                    );
                    t.diag(format_args!(
                        "{polls} polls saw the 256 MiB FILL job unfinished"
                    ));
                }
                Err(e) => {
                    t.check(false, "submit a long job", e);
                }
            }
        }
    }
    // ETIME with a short timeout: a job stuck behind a long one is still running 1 us later.
    // (Not guaranteed on a fast device, so only ETIME or 0 are accepted, never another errno.)
    if let Ok(s) = submit(&dev, qid, &[Command::nop()]) {
        let r = wait_raw(&dev, qid, s, 1000, 0);
        t.check(
            r.is_ok() || r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(ETIME),
            "WAIT 1 us timeout answers 0 or ETIME",
            format_args!("{r:?}"),
        );
        let _ = wait_raw(&dev, qid, s, T.as_nanos() as i64, 0);
    }

    // Every compute kernel against the CPU reference.
    let mut rng = Rng::new(0x5eed);
    for id in KernelId::ALL {
        let call = match id {
            KernelId::MatmulF32 => KernelCall::new(id, 0, 0, 0, 0, 17).with_nk(13, 19),
            KernelId::Crc32c => KernelCall::new(id, 0, 0, 0, 0, 4099),
            _ => KernelCall::new(id, 0, 0, 0, 0, 4099),
        };
        kernel_case(
            &mut t,
            &q,
            &mut rng,
            call,
            &format!("{id} matches the CPU reference"),
        );
    }
    kernel_case(
        &mut t,
        &q,
        &mut rng,
        KernelCall::new(KernelId::AddF32, 0, 0, 0, 0, 1 << 16),
        "add_f32 of 64Ki elements",
    );
    kernel_case(
        &mut t,
        &q,
        &mut rng,
        KernelCall::new(KernelId::MatmulF32, 0, 0, 0, 0, 64).with_nk(64, 64),
        "matmul_f32 64x64x64",
    );
    kernel_case(
        &mut t,
        &q,
        &mut rng,
        KernelCall::new(KernelId::Crc32c, 0, 0, 0, 0, 1000).with_param(0x1234_5678),
        "crc32c continuing from a seed",
    );
    kernel_with(
        &mut t,
        &q,
        KernelCall::new(KernelId::Crc32c, 0, 0, 0, 0, 9),
        b"123456789",
        &[],
        &[],
        "crc32c(\"123456789\") = 0xe3069283",
    );
    for id in [
        KernelId::AddF32,
        KernelId::SumU32,
        KernelId::SumF32,
        KernelId::Crc32c,
    ] {
        kernel_case(
            &mut t,
            &q,
            &mut rng,
            KernelCall::new(id, 0, 0, 0, 0, 0),
            &format!("{id} with COUNT 0 writes nothing"),
        );
    }
    kernel_case(
        &mut t,
        &q,
        &mut rng,
        KernelCall::new(KernelId::MatmulF32, 0, 0, 0, 0, 4).with_nk(0, 4),
        "matmul_f32 with N 0 writes nothing",
    );
    // IEEE corner cases: NaN, infinities, signed zeros, subnormals (not flushed).
    let special: Vec<f32> = vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        f32::MIN_POSITIVE / 2.0,
        -f32::MIN_POSITIVE / 3.0,
        f32::MAX,
        f32::MIN,
        1.0,
        f32::EPSILON,
        1.0 + f32::EPSILON,
        -1.0,
        3.0e-39,
        1.5,
        f32::from_bits(1),
    ];
    let a: Vec<u8> = special.iter().flat_map(|x| x.to_le_bytes()).collect();
    let b: Vec<u8> = special.iter().rev().flat_map(|x| x.to_le_bytes()).collect();
    let c: Vec<u8> = special
        .iter()
        .map(|x| -x * 0.5)
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let n = special.len() as u32;
    for id in [KernelId::AddF32, KernelId::MulF32, KernelId::FmaF32] {
        kernel_with(
            &mut t,
            &q,
            KernelCall::new(id, 0, 0, 0, 0, n),
            &a,
            &b,
            &c,
            &format!("{id} on NaN, inf, -0 and subnormals"),
        );
    }
    // DST may alias a source (the engine reads all sources before writing).
    {
        let xs: Vec<u32> = (0..1024u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        let ys: Vec<u32> = (0..1024u32).map(|i| i ^ 0xffff).collect();
        let want = kernels::add_u32(&xs, &ys);
        // Inside the 256 KiB buffer: a write past its end would fail and leave stale data.
        let staged =
            vmap.write_slice(0x3c000, &xs).is_ok() && vmap.write_slice(0x3d000, &ys).is_ok();
        t.check(
            staged,
            "stage the aliasing operands",
            "write through the mapping failed",
        );
        let call = KernelCall::new(
            KernelId::AddU32,
            vb.at(0x3c000),
            vb.at(0x3d000),
            0,
            vb.at(0x3c000),
            1024,
        );
        t.ok(
            msg(q.run(&[Command::kernel(&call)], T)),
            "add_u32 with DST = A completes",
        );
        t.check(
            vmap.read_vec_of::<u32>(0x3c000, 1024)
                .is_ok_and(|v| v == want),
            "add_u32 with DST = A is right",
            "differs",
        );
    }

    // Malformed submissions: EINVAL / EFAULT / unknown queue, and nothing of them runs.
    let nop = [Command::nop()];
    let p = nop.as_ptr() as u64;
    t.errno(
        submit_raw(&dev, 0xdead_beef, p, 1, 0, 0),
        ENOENT_BAD_ID,
        "SUBMIT unknown queue: ENOENT",
    );
    t.errno(
        submit_raw(&dev, qid, p, 0, 0, 0),
        EINVAL,
        "SUBMIT zero commands: EINVAL",
    );
    t.errno(
        submit_raw(&dev, qid, nops.as_ptr() as u64, 1025, 0, 0),
        EINVAL,
        "SUBMIT 1025 commands: EINVAL",
    );
    t.errno(
        submit_raw(&dev, qid, nops.as_ptr() as u64, u32::MAX, 0, 0),
        EINVAL,
        "SUBMIT 2^32-1 commands: EINVAL",
    );
    t.errno(
        submit_raw(&dev, qid, p, 1, 1, 0),
        EINVAL,
        "SUBMIT non-zero flags: EINVAL",
    );
    t.errno(
        submit_raw(&dev, qid, p, 1, 0, 1),
        EINVAL,
        "SUBMIT non-zero pad: EINVAL",
    );
    t.errno(
        submit_raw(&dev, qid, 0, 1, 0, 0),
        EFAULT,
        "SUBMIT NULL commands: EFAULT",
    );
    t.errno(
        submit_raw(&dev, qid, 0x10, 1, 0, 0),
        EFAULT,
        "SUBMIT unmapped commands: EFAULT",
    );
    t.errno(
        submit_raw(&dev, qid, u64::MAX - 63, 1, 0, 0),
        EFAULT,
        "SUBMIT commands at the top of the address space: EFAULT",
    );
    if let Ok(page) = NoAccessPage::new() {
        t.errno(
            submit_raw(&dev, qid, page.addr(), 1, 0, 0),
            EFAULT,
            "SUBMIT commands in a PROT_NONE page: EFAULT",
        );
        // The first command readable, the second in a no-access page right after it: two
        // anonymous pages with the second made PROT_NONE.
        // SAFETY: a fresh private anonymous mapping of two pages, owned here.
        let pair = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        // SAFETY: changes the protection of the second page of the mapping made above.
        let guarded = pair != libc::MAP_FAILED
            && unsafe { libc::mprotect(pair.cast::<u8>().add(4096).cast(), 4096, libc::PROT_NONE) }
                == 0;
        t.check(
            guarded,
            "map a page followed by a no-access page",
            "mmap/mprotect failed",
        );
        if guarded {
            // A zero-filled page: its last slot reads as a NOP.
            t.errno(
                submit_raw(&dev, qid, pair as u64 + 4096 - 64, 2, 0, 0),
                EFAULT,
                "SUBMIT commands running into an unmapped page: EFAULT",
            );
        }
        if pair != libc::MAP_FAILED {
            // SAFETY: unmaps the two pages mapped above.
            unsafe { libc::munmap(pair, 8192) };
        }
    }
    let mut bad: Vec<(Command, &str)> = Vec::new();
    for op in [0x04u8, 0x0f, 0x11, 0x7f, 0xff] {
        let mut b = [0u8; 64];
        b[0] = op;
        bad.push((Command::from_bytes(b), "unknown opcode"));
    }
    let mut c = Command::nop();
    c.bytes_mut()[1] = 0x02;
    bad.push((c, "header bit 9"));
    let mut c = Command::fence(sb.at(0), 1);
    c.bytes_mut()[3] = 0x80;
    bad.push((c, "header bit 31"));
    for (cmd, byte, what) in [
        (Command::nop(), 63, "NOP reserved byte 63"),
        (Command::nop(), 4, "NOP reserved byte 4"),
        (Command::fence(sb.at(0), 1), 4, "FENCE reserved byte 4"),
        (Command::fence(sb.at(0), 1), 24, "FENCE reserved byte 24"),
        (
            Command::copy(sb.at(0), sb.at(64), 8),
            4,
            "COPY reserved byte 4",
        ),
        (
            Command::copy(sb.at(0), sb.at(64), 8),
            32,
            "COPY reserved byte 32",
        ),
        (Command::fill(sb.at(0), 1, 8), 24, "FILL reserved byte 24"),
        (
            Command::kernel(&KernelCall::new(
                KernelId::AddU32,
                sb.at(0),
                sb.at(0),
                0,
                sb.at(0),
                1,
            )),
            56,
            "KERNEL reserved byte 56",
        ),
        (
            Command::kernel(&KernelCall::new(
                KernelId::AddU32,
                sb.at(0),
                sb.at(0),
                0,
                sb.at(0),
                1,
            )),
            63,
            "KERNEL reserved byte 63",
        ),
    ] {
        let mut c = cmd;
        c.bytes_mut()[byte] = 0x01;
        bad.push((c, what));
    }
    for (cmd, what) in &bad {
        t.errno(
            submit(&dev, qid, &[*cmd]),
            EINVAL,
            &format!("SUBMIT {what}: EINVAL"),
        );
    }
    // A bad command anywhere rejects the whole job: the FILL before it never runs.
    let _ = smap.write_u32(0x3f000, 0);
    let mut cmds = vec![Command::fill(sb.at(0x3f000), 0xbad, 4)];
    cmds.extend(std::iter::repeat_n(Command::nop(), 4));
    cmds.push(bad[0].0);
    t.errno(
        submit(&dev, qid, &cmds),
        EINVAL,
        "SUBMIT with the 6th command malformed: EINVAL",
    );
    let _ = q.run(&nop, T);
    t.eq(
        smap.read_u32(0x3f000).ok(),
        Some(0),
        "no command of a rejected job ran",
    );

    // WAIT arguments.
    let last = submit(&dev, qid, &nop).unwrap_or(0);
    let _ = wait_raw(&dev, qid, last, T.as_nanos() as i64, 0);
    t.errno(
        wait_raw(&dev, qid, last + 1000, 0, 0),
        EINVAL,
        "WAIT a seqno never submitted: EINVAL",
    );
    t.errno(
        wait_raw(&dev, qid, u64::MAX, 0, 0),
        EINVAL,
        "WAIT seqno u64::MAX: EINVAL",
    );
    t.errno(
        wait_raw(&dev, qid, last, 0, 1),
        EINVAL,
        "WAIT non-zero flags: EINVAL",
    );
    t.errno(
        wait_raw(&dev, 0xdead_beef, last, 0, 0),
        ENOENT_BAD_ID,
        "WAIT unknown queue: ENOENT",
    );

    // Faults: a command touching an unbound VA fails its job (EIO), and only its VM's work.
    let Ok(vm2) = Vm::create(&dev) else {
        t.check(false, "second VM", "failed");
        t.finish()
    };
    let Ok(q2) = Queue::create(&vm2) else {
        t.check(false, "queue on the second VM", "failed");
        t.finish()
    };
    let Ok(bo2) = Buffer::vram(&dev, 4096) else {
        t.check(false, "buffer for the second VM", "failed");
        t.finish()
    };
    let Ok(b2) = vm2.bind_auto(&bo2, Access::READ_WRITE) else {
        t.check(false, "bind in the second VM", "failed");
        t.finish()
    };
    let m2 = bo2.map().ok();
    {
        let Ok(fvm) = Vm::create(&dev) else {
            t.check(false, "faulting VM", "failed");
            t.finish()
        };
        let Ok(fq) = Queue::create(&fvm) else {
            t.check(false, "faulting queue", "failed");
            t.finish()
        };
        let Ok(fbo) = Buffer::vram(&dev, 4096) else {
            t.check(false, "faulting buffer", "failed");
            t.finish()
        };
        let Ok(fb) = fvm.bind_auto(&fbo, Access::READ) else {
            t.check(false, "read-only bind", "failed");
            t.finish()
        };
        let unbound = fb.va() + 0x10_0000;
        let r = fq
            .submit(&[Command::copy(unbound, fb.va(), 64)])
            .and_then(|j| j.wait(T));
        t.errno(
            io(r),
            EIO,
            "COPY from an unbound VA: the job fails, WAIT EIO",
        );
        // The header fails the faulting job and those queued with it; the queue is reset and
        // what is submitted afterwards runs.
        let r = fq.submit(&[Command::nop()]).and_then(|j| j.wait(T));
        t.ok(msg(r), "a job submitted after the failure completes");
        let r = q2.run(&[Command::fence(b2.va(), 99)], T);
        t.ok(msg(r), "a job of another VM completes after the fault");
        t.eq(
            m2.as_ref().and_then(|m| m.read_u64(0).ok()),
            Some(99),
            "and its FENCE landed",
        );
        t.ok(msg(q.run(&nop, T)), "the first VM's queue still runs");
        // Writes through a read-only binding fault too (fresh queue: the old one is failed).
        drop(fq);
        if let Ok(fq) = Queue::create(&fvm) {
            let r = fq
                .submit(&[Command::fill(fb.va(), 1, 64)])
                .and_then(|j| j.wait(T));
            t.errno(io(r), EIO, "FILL through a read-only binding: WAIT EIO");
        }
        // Device-checked errors fail the job; a kernel may also refuse them up front.
        if let Ok(fq) = Queue::create(&fvm) {
            for (cmd, what) in [
                (
                    Command::fill(fb.va() + 2, 1, 64),
                    "FILL to a misaligned address",
                ),
                (
                    Command::copy(fb.va(), fb.va() + 2048, (1 << 32) + 1),
                    "COPY longer than 2^32",
                ),
            ] {
                let r = fq.submit(&[cmd]).and_then(|j| j.wait(T));
                let e = io(r).err().and_then(|e| e.raw_os_error());
                t.check(
                    e == Some(EIO) || e == Some(EINVAL),
                    &format!("{what}: EINVAL at SUBMIT or EIO at WAIT"),
                    format_args!("{e:?}"),
                );
            }
        }
        if let Ok(fq) = Queue::create(&fvm) {
            let mut k = Command::kernel(&KernelCall::new(
                KernelId::AddU32,
                fb.va(),
                fb.va(),
                0,
                fb.va(),
                1,
            ));
            k.bytes_mut()[4] = 0x0b;
            let r = fq.submit(&[k]).and_then(|j| j.wait(T));
            let e = io(r).err().and_then(|e| e.raw_os_error());
            t.check(
                e == Some(EIO) || e == Some(EINVAL),
                "unknown kernel id: EINVAL at SUBMIT or EIO at WAIT",
                format_args!("{e:?}"),
            );
        };
    }
    drop((b2, m2));
    t.ok(
        msg(q2.run(&[Command::nop()], T)),
        "the other VM's queue still runs after the faulting VM is gone",
    );
    drop((vb, sb));
    t.finish();
}
