// SPDX-License-Identifier: GPL-2.0

//! The random-argument phase: random and mutated arguments over every Vela ioctl, with
//! handles and ids taken from real creates, in several processes at once.
//!
//! Each call gets an expectation derived from the header alone: `Fail` when its arguments
//! break a documented rule (unknown flags, non-zero pad, bad sizes, misalignment, overlaps,
//! malformed commands, bad pointers, never-submitted seqnos, ids never created), with the
//! errnos that rule allows; `Succeed` for calls valid in every respect the header defines
//! (only ENOMEM is tolerated then); `Any` otherwise. A success where a failure is promised,
//! an undocumented errno for a broken rule, or a failure of a fully valid call is an
//! unexpected result. Each child process ends by proving the device still runs a job.

use std::{
    collections::HashMap,
    io::{self, Write},
    os::fd::AsRawFd,
    process::{Command as Proc, Stdio},
    time::Duration,
};

use libc::{EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM};
use vela_runtime::{kernels::Rng, raw, Command, Device, Queue, Vm, COMMAND_SIZE, VA_END};
use vela_selftests::{accel_node, vela_pci_devices, NoAccessPage, Tap};

const BIND_R: u32 = vela_uapi::DRM_VELA_BIND_READ;
const BIND_W: u32 = vela_uapi::DRM_VELA_BIND_WRITE;
const BO_FLAGS: u32 = vela_uapi::DRM_VELA_BO_FLAGS;
const REPLY: u32 = std::mem::size_of::<raw::drm_vela_query_device>() as u32;

#[derive(Debug)]
enum Exp {
    /// Must fail; with `Some`, with one of these errnos.
    Fail(Option<Vec<i32>>),
    Succeed,
    Any,
}

/// Collects the rules a call breaks.
#[derive(Default)]
struct Rules {
    errnos: Vec<i32>,
    any_error: bool,
}

impl Rules {
    fn breaks(&mut self, cond: bool, errno: i32) {
        if cond {
            self.errnos.push(errno);
        }
    }
    /// An id or handle this process never created (or destroyed): the header names no errno,
    /// but it cannot succeed.
    fn unknown_id(&mut self, cond: bool) {
        if cond {
            self.any_error = true;
        }
    }
    fn exp(self, fully_valid: bool) -> Exp {
        if self.any_error {
            Exp::Fail(None)
        } else if !self.errnos.is_empty() {
            Exp::Fail(Some(self.errnos))
        } else if fully_valid {
            Exp::Succeed
        } else {
            Exp::Any
        }
    }
}

#[derive(Clone, Copy)]
struct Bo {
    size: u64,
    flags: u32,
}

struct Child {
    dev: Device,
    rng: Rng,
    vram: u64,
    bos: HashMap<u32, Bo>,
    vms: Vec<u32>,
    queues: HashMap<u32, (u32, u64)>, // queue -> (vm, last seqno)
    binds: Vec<(u32, u64, u64)>,      // (vm, va, size)
    /// VMs that had a queue with jobs destroyed.
    drained: std::collections::HashSet<u32>,
    scratch: Vec<u64>,
    noaccess: Option<NoAccessPage>,
    calls: u64,
    unexpected: u64,
    failed_as_promised: u64,
    succeeded: u64,
    reports: Vec<String>,
}

fn errno(r: &io::Result<()>) -> Option<i32> {
    r.as_ref().err().and_then(|e| e.raw_os_error())
}

impl Child {
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.rng.below(v.len() as u64) as usize])
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    /// Mostly a known-good value, sometimes random bits.
    fn mutate32(&mut self, good: u32) -> u32 {
        match self.rng.below(10) {
            0 => self.rng.next_u32(),
            1 => good ^ (1 << self.rng.below(32)),
            _ => good,
        }
    }

    fn mutate64(&mut self, good: u64) -> u64 {
        match self.rng.below(12) {
            0 => self.rng.next_u64(),
            1 => good ^ (1 << self.rng.below(64)),
            2 => good.wrapping_add(self.rng.below(8192)),
            _ => good,
        }
    }

    fn handle(&mut self) -> u32 {
        let known: Vec<u32> = self.bos.keys().copied().collect();
        match self.pick(&known) {
            Some(h) if !self.chance(10) => h,
            _ => self.rng.next_u32() | 0x4000_0000,
        }
    }

    fn vm(&mut self) -> u32 {
        let known = self.vms.clone();
        match self.pick(&known) {
            Some(v) if !self.chance(10) => v,
            _ => self.rng.next_u32() | 0x4000_0000,
        }
    }

    fn queue(&mut self) -> u32 {
        let known: Vec<u32> = self.queues.keys().copied().collect();
        match self.pick(&known) {
            Some(q) if !self.chance(10) => q,
            _ => self.rng.next_u32() | 0x4000_0000,
        }
    }

    /// A user pointer and whether the kernel can access `len` bytes at it.
    fn pointer(&mut self, len: u64) -> (u64, bool) {
        let good = self.scratch.as_ptr() as u64;
        let na = self.noaccess.as_ref().map_or(0, |p| p.addr());
        let fits = len <= (self.scratch.len() * 8) as u64;
        match self.rng.below(10) {
            0 => (0, false),
            1 => (0x10, false),
            2 if na != 0 => (na, false),
            3 => (0xffff_8000_0000_0000, false),
            4 => (u64::MAX - 7, false),
            _ => (good, fits),
        }
    }

    fn record(&mut self, what: &str, args: String, exp: Exp, r: &io::Result<()>) {
        self.calls += 1;
        let e = errno(r);
        let bad = match (&exp, e) {
            (Exp::Fail(_), None) => true,
            (Exp::Fail(Some(set)), Some(n)) => !set.contains(&n) && n != ENOMEM,
            (Exp::Succeed, Some(n)) => n != ENOMEM,
            _ => false,
        };
        match (&exp, e) {
            (Exp::Fail(_), Some(_)) => self.failed_as_promised += 1,
            (_, None) => self.succeeded += 1,
            _ => {}
        }
        if bad {
            self.unexpected += 1;
            if self.reports.len() < 20 {
                self.reports.push(format!(
                    "{what}({args}): expected {exp:?}, got {}",
                    match e {
                        None => "success".into(),
                        Some(n) => format!("errno {n} ({})", vela_runtime::errno_name(n)),
                    }
                ));
            }
        }
    }

    fn query(&mut self) {
        let query = self.mutate32(0);
        let flags = self.mutate32(0);
        let pad = self.mutate32(0);
        let size = match self.rng.below(4) {
            0 => 0,
            1 => self.rng.below(REPLY as u64) as u32,
            2 => self.rng.next_u32(),
            _ => REPLY,
        };
        // Valid pointers must hold the largest reply: the kernel writes up to the reply's size.
        const MAX_REPLY: u32 = std::mem::size_of::<vela_uapi::drm_vela_query_counters>() as u32;
        let (data, ok_ptr) = self.pointer(u64::from(size.min(MAX_REPLY)));
        let mut a = raw::drm_vela_query {
            query,
            flags,
            size,
            pad,
            data,
        };
        // Only pointers into `scratch` (or none) are valid; a random size past the scratch
        // buffer is never reached because the kernel writes at most the reply's size.
        // Each query id has its own reply size; unknown ids are EINVAL whatever the size.
        let reply = match query {
            0 => Some(REPLY),
            1 => Some(std::mem::size_of::<vela_uapi::drm_vela_query_memory>() as u32),
            2 => Some(MAX_REPLY),
            3 => Some(std::mem::size_of::<vela_uapi::drm_vela_query_limits>() as u32),
            _ => None,
        };
        let mut r = Rules::default();
        r.breaks(reply.is_none() || flags != 0 || pad != 0, EINVAL);
        if let Some(reply) = reply {
            r.breaks(size != 0 && size < reply, EINVAL);
            r.breaks(size >= reply && !ok_ptr, EFAULT);
        }
        let args =
            format!("query={query} flags={flags:#x} size={size} pad={pad:#x} data={data:#x}");
        let res = raw::query(&self.dev, &mut a);
        self.record("QUERY", args, r.exp(ok_ptr || size == 0), &res);
    }

    fn bo_create(&mut self) {
        let sizes = [
            4096,
            1,
            8192,
            65536,
            1 << 20,
            0,
            u64::MAX,
            self.vram + 1,
            self.vram * 2,
        ];
        let size = if self.chance(80) {
            sizes[self.rng.below(5) as usize]
        } else {
            match self.pick(&sizes) {
                Some(s) => self.mutate64(s),
                None => 0,
            }
        };
        let good = [1, 2, 3, 0, 5, 7][self.rng.below(6) as usize];
        let flags = self.mutate32(good);
        let mut r = Rules::default();
        r.breaks(flags & !BO_FLAGS != 0, EINVAL);
        r.breaks(flags & 4 != 0 && flags & 1 == 0, EINVAL);
        r.breaks(size == 0, EINVAL);
        r.breaks(size > u64::MAX - 4095, EINVAL);
        r.breaks(flags & 1 != 0 && size > self.vram, EINVAL);
        r.breaks(flags & 1 == 0 && size > 4 << 30, EINVAL);
        let mut a = raw::drm_vela_bo_create {
            size,
            flags,
            handle: 0,
        };
        let res = raw::bo_create(&self.dev, &mut a);
        // A small valid VRAM buffer must be creatable unless memory is short.
        let valid = size <= 1 << 20 && flags & 1 != 0;
        self.record(
            "BO_CREATE",
            format!("size={size:#x} flags={flags:#x}"),
            r.exp(valid),
            &res,
        );
        if res.is_ok() {
            self.bos.insert(
                a.handle,
                Bo {
                    size: size.div_ceil(4096).saturating_mul(4096),
                    flags,
                },
            );
            if self.bos.len() > 48 {
                self.gem_close_known();
            }
        }
    }

    fn gem_close_known(&mut self) {
        let known: Vec<u32> = self.bos.keys().copied().collect();
        if let Some(h) = self.pick(&known) {
            let res = raw::gem_close(&self.dev, h);
            self.record("GEM_CLOSE", format!("handle={h}"), Exp::Succeed, &res);
            self.bos.remove(&h);
        }
    }

    fn bo_info(&mut self) {
        let handle = self.handle();
        let pad = self.mutate32(0);
        let mut r = Rules::default();
        r.breaks(pad != 0, EINVAL);
        r.unknown_id(!self.bos.contains_key(&handle) && pad == 0);
        let mut a = raw::drm_vela_bo_info {
            handle,
            pad,
            ..Default::default()
        };
        let res = raw::bo_info(&self.dev, &mut a);
        self.record(
            "BO_INFO",
            format!("handle={handle} pad={pad:#x}"),
            r.exp(true),
            &res,
        );
        if res.is_ok() {
            if let Some(b) = self.bos.get(&handle).copied() {
                let ok = a.size == b.size && a.flags == b.flags;
                self.record(
                    "BO_INFO reply",
                    format!(
                        "handle={handle} size={:#x} flags={:#x}, created {:#x} {:#x}",
                        a.size, a.flags, b.size, b.flags
                    ),
                    Exp::Succeed,
                    &if ok {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(EINVAL))
                    },
                );
            }
        }
    }

    fn bo_mmap(&mut self) {
        let handle = self.handle();
        let pad = self.mutate32(0);
        let bo = self.bos.get(&handle).copied();
        let mut r = Rules::default();
        r.breaks(pad != 0, EINVAL);
        r.breaks(bo.is_some_and(|b| b.flags & 2 == 0), EINVAL);
        r.unknown_id(bo.is_none() && pad == 0);
        let mut a = raw::drm_vela_bo_mmap_offset {
            handle,
            pad,
            offset: 0,
        };
        let res = raw::bo_mmap_offset(&self.dev, &mut a);
        self.record(
            "BO_MMAP_OFFSET",
            format!("handle={handle} pad={pad:#x}"),
            r.exp(true),
            &res,
        );
        if let (Ok(()), Some(b)) = (&res, bo) {
            if self.chance(50) {
                self.touch_mapping(a.offset, b.size);
            }
        }
    }

    fn touch_mapping(&mut self, offset: u64, size: u64) {
        let len = size as usize;
        let res = match vela_selftests::dmabuf::map_shared_at(self.dev.as_raw_fd(), len, offset) {
            Err(e) => Err(e),
            Ok(p) => {
                let p = p.as_ptr().cast::<libc::c_void>();
                let v = self.rng.next_u64();
                let at = (self.rng.below(size / 8) * 8) as usize;
                // SAFETY: `at + 8 <= len`, 8-byte aligned inside the live mapping.
                let back = unsafe {
                    let q = p.cast::<u8>().add(at).cast::<u64>();
                    q.write_volatile(v);
                    q.read_volatile()
                };
                // SAFETY: unmaps what was mapped above.
                unsafe { libc::munmap(p, len) };
                if back == v {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(libc::EIO))
                }
            }
        };
        self.record(
            "mmap write/read",
            format!("offset={offset:#x} len={len}"),
            Exp::Succeed,
            &res,
        );
    }

    fn vm_create(&mut self) {
        let flags = self.mutate32(0);
        let mut a = raw::drm_vela_vm_create { flags, vm_id: 0 };
        let mut r = Rules::default();
        r.breaks(flags != 0, EINVAL);
        let res = raw::vm_create(&self.dev, &mut a);
        self.record("VM_CREATE", format!("flags={flags:#x}"), r.exp(false), &res);
        if res.is_ok() {
            self.vms.push(a.vm_id);
        }
    }

    fn vm_destroy(&mut self) {
        if self.vms.len() < 3 && self.chance(70) {
            return self.vm_create();
        }
        let vm = self.vm();
        let pad = self.mutate32(0);
        let known = self.vms.contains(&vm);
        let busy = self.queues.values().any(|(v, _)| *v == vm);
        // A destroyed queue whose jobs still wait in the kernel (for another queue's job on a
        // shared buffer, by implicit sync) still counts (uapi: VM_DESTROY), so the VM may be
        // busy without a live queue.
        let draining = self.drained.contains(&vm);
        let mut r = Rules::default();
        r.breaks(pad != 0, EINVAL);
        r.breaks(known && busy, EBUSY);
        r.unknown_id(!known && pad == 0);
        let res = raw::vm_destroy(&self.dev, &mut raw::drm_vela_vm_destroy { vm_id: vm, pad });
        self.record(
            "VM_DESTROY",
            format!("vm_id={vm} pad={pad:#x} queues={busy} draining={draining}"),
            r.exp(!draining),
            &res,
        );
        if res.is_ok() {
            self.vms.retain(|v| *v != vm);
            self.binds.retain(|b| b.0 != vm);
        }
    }

    fn vm_bind(&mut self) {
        let vm = self.vm();
        let handle = self.handle();
        let bo = self.bos.get(&handle).copied();
        let bsize = bo.map_or(4096, |b| b.size);
        let pages = bsize / 4096;
        let good_off = self.rng.below(pages) * 4096;
        let off = self.mutate64(good_off);
        let good_size = (1 + self.rng.below(pages - off.min(bsize) / 4096)) * 4096;
        let size = self.mutate64(good_size);
        let good_va = (0x100 + self.rng.below(0x400)) * 4096;
        let va = self.mutate64(good_va);
        let good_flags = [BIND_R, BIND_R | BIND_W][self.rng.below(2) as usize];
        let flags = self.mutate32(good_flags);
        let pad = self.mutate32(0);
        let end = va.checked_add(size);
        let mut r = Rules::default();
        r.breaks(
            !va.is_multiple_of(4096) || !off.is_multiple_of(4096) || !size.is_multiple_of(4096),
            EINVAL,
        );
        r.breaks(end.is_none_or(|e| e > VA_END), EINVAL);
        r.breaks(size == 0, EINVAL);
        // The buffer's own range is checked once the VM and the buffer are found.
        r.breaks(
            self.vms.contains(&vm)
                && bo.is_some()
                && off.checked_add(size).is_none_or(|e| e > bsize),
            EINVAL,
        );
        r.breaks(
            flags & !(BIND_R | BIND_W) != 0 || flags & BIND_R == 0,
            EINVAL,
        );
        r.breaks(pad != 0, EINVAL);
        let known = self.vms.contains(&vm) && bo.is_some();
        let clean = r.errnos.is_empty() && size != 0;
        let overlaps = self
            .binds
            .iter()
            .any(|&(v, a, s)| v == vm && a < va.saturating_add(size) && va < a + s);
        r.breaks(known && clean && overlaps, EEXIST);
        r.unknown_id(!known && clean);
        let mut a = raw::drm_vela_vm_bind {
            vm_id: vm,
            handle,
            va,
            bo_offset: off,
            size,
            flags,
            pad,
        };
        let res = raw::vm_bind(&self.dev, &mut a);
        let args = format!("vm={vm} handle={handle} va={va:#x} off={off:#x} size={size:#x} flags={flags:#x} pad={pad:#x}");
        self.record("VM_BIND", args, r.exp(known && clean), &res);
        if res.is_ok() {
            self.binds.push((vm, va, size));
        }
    }

    fn vm_unbind(&mut self) {
        let pick = self.pick(&self.binds.clone());
        let (vm, va, size) = match pick {
            Some((v, a, s)) if self.chance(70) => (v, self.mutate64(a), self.mutate64(s)),
            _ => (
                self.vm(),
                self.rng.below(0x500) * 4096,
                self.rng.below(16) * 4096,
            ),
        };
        let pad = self.mutate32(0);
        let exact = self.binds.iter().position(|&b| b == (vm, va, size));
        let mut r = Rules::default();
        r.breaks(pad != 0, EINVAL);
        r.breaks(exact.is_none() && self.vms.contains(&vm), ENOENT);
        r.unknown_id(!self.vms.contains(&vm) && pad == 0);
        let res = raw::vm_unbind(
            &self.dev,
            &mut raw::drm_vela_vm_unbind {
                vm_id: vm,
                pad,
                va,
                size,
            },
        );
        self.record(
            "VM_UNBIND",
            format!("vm={vm} va={va:#x} size={size:#x} pad={pad:#x}"),
            r.exp(true),
            &res,
        );
        if let (Ok(()), Some(i)) = (&res, exact) {
            self.binds.remove(i);
        }
    }

    fn queue_create(&mut self) {
        if self.queues.len() >= 4 {
            return self.queue_destroy();
        }
        let vm = self.vm();
        let flags = self.mutate32(0);
        let pad = self.mutate32(0);
        let mut r = Rules::default();
        r.breaks(flags != 0 || pad != 0, EINVAL);
        r.unknown_id(!self.vms.contains(&vm) && flags == 0 && pad == 0);
        let mut a = raw::drm_vela_queue_create {
            vm_id: vm,
            flags,
            queue_id: 0,
            pad,
        };
        let res = raw::queue_create(&self.dev, &mut a);
        // Hardware queues are shared with the other processes: a valid create may be refused.
        self.record(
            "QUEUE_CREATE",
            format!("vm={vm} flags={flags:#x} pad={pad:#x}"),
            r.exp(false),
            &res,
        );
        if res.is_ok() {
            self.queues.insert(a.queue_id, (vm, 0));
        }
    }

    fn queue_destroy(&mut self) {
        let q = self.queue();
        let pad = self.mutate32(0);
        let known = self.queues.contains_key(&q);
        let mut r = Rules::default();
        r.breaks(pad != 0, EINVAL);
        r.unknown_id(!known && pad == 0);
        let res = raw::queue_destroy(
            &self.dev,
            &mut raw::drm_vela_queue_destroy { queue_id: q, pad },
        );
        self.record(
            "QUEUE_DESTROY",
            format!("queue={q} pad={pad:#x}"),
            r.exp(true),
            &res,
        );
        if res.is_ok() {
            if let Some((vm, last)) = self.queues.remove(&q) {
                if last > 0 {
                    self.drained.insert(vm);
                }
            }
        }
    }

    fn command(&mut self, vm: u32) -> Command {
        let binds: Vec<(u32, u64, u64)> =
            self.binds.iter().copied().filter(|b| b.0 == vm).collect();
        let (va, size) = self.pick(&binds).map_or((0x10_0000, 4096), |b| (b.1, b.2));
        let a = va + self.rng.below(size / 64) * 8;
        let len = self.rng.below(size.min(4096) / 4) * 4;
        let mut c = match self.rng.below(6) {
            0 => Command::nop(),
            1 => Command::fence(a, self.rng.next_u64()),
            2 => Command::copy(va, va + size / 2, len.min(size / 2)),
            3 => Command::fill(a & !3, self.rng.next_u32(), len.min(size - (a - va)) & !3),
            4 => {
                let ids = vela_runtime::kernels::KernelId::ALL;
                let id = ids[self.rng.below(ids.len() as u64) as usize];
                Command::kernel(
                    &vela_runtime::kernels::KernelCall::new(
                        id,
                        va,
                        va,
                        va,
                        va,
                        (len / 4) as u32 / 4,
                    )
                    .with_nk(2, 2),
                )
            }
            _ => {
                let mut b = [0u8; COMMAND_SIZE];
                self.rng.fill_bytes(&mut b);
                Command::from_bytes(b)
            }
        };
        if self.chance(15) {
            let bit = self.rng.below(COMMAND_SIZE as u64 * 8) as usize;
            c.bytes_mut()[bit / 8] ^= 1 << (bit % 8);
        }
        c
    }

    fn submit(&mut self) {
        if self.queues.is_empty() || self.chance(3) {
            return self.queue_create();
        }
        let q = self.queue();
        let vm = self.queues.get(&q).map_or(0, |x| x.0);
        let n = if self.chance(95) {
            1 + self.rng.below(6) as usize
        } else {
            0
        };
        let cmds: Vec<Command> = (0..n.max(1)).map(|_| self.command(vm)).collect();
        let count = match self.rng.below(40) {
            0 => 0,
            1 => 1025,
            2 => self.rng.next_u32(),
            _ => cmds.len() as u32,
        };
        let flags = self.mutate32(0);
        let pad = self.mutate32(0);
        let scratch = self.scratch.as_ptr() as u64;
        // Pointers are either the commands, the zeroed scratch buffer (NOPs, as far as it
        // reaches), or known-bad ones; reading past the commands or the scratch buffer would
        // see whatever the heap holds, so those cases promise nothing.
        let (ptr, bad_ptr, from_cmds) = if self.chance(90) {
            (cmds.as_ptr() as u64, false, true)
        } else {
            let (p, _) = self.pointer(0);
            (p, p != scratch, false)
        };
        let in_cmds = from_cmds && count as usize <= cmds.len();
        let well_formed = in_cmds && cmds[..count as usize].iter().all(|c| c.is_well_formed());
        let mut r = Rules::default();
        r.breaks(count == 0 || count > 1024, EINVAL);
        r.breaks(flags != 0 || pad != 0, EINVAL);
        let sane = r.errnos.is_empty();
        r.breaks(sane && bad_ptr, EFAULT);
        r.breaks(sane && in_cmds && !well_formed, EINVAL);
        r.unknown_id(!self.queues.contains_key(&q) && sane && !bad_ptr);
        let mut a = raw::drm_vela_submit {
            queue_id: q,
            flags,
            commands: ptr,
            command_count: count,
            pad,
            seqno: 0,
            ..Default::default()
        };
        let res = raw::submit(&self.dev, &mut a);
        let args = format!(
            "queue={q} count={count} flags={flags:#x} pad={pad:#x} ptr={ptr:#x} bad_ptr={bad_ptr} well_formed={well_formed}"
        );
        self.record("SUBMIT", args, r.exp(false), &res);
        if res.is_ok() {
            if let Some(e) = self.queues.get_mut(&q) {
                e.1 = e.1.max(a.seqno);
            }
        }
    }

    fn wait(&mut self) {
        let q = self.queue();
        let last = self.queues.get(&q).map(|x| x.1);
        let seqno = match (last, self.rng.below(4)) {
            (Some(l), 0) => l + 1 + self.rng.below(1000),
            (Some(l), _) if l > 0 => 1 + self.rng.below(l),
            _ => self.rng.next_u64() | 1 << 40,
        };
        let flags = self.mutate32(0);
        let timeout_ns = [0, 1000, 1_000_000][self.rng.below(3) as usize];
        let mut r = Rules::default();
        r.breaks(flags != 0, EINVAL);
        r.breaks(last.is_some_and(|l| seqno > l), EINVAL);
        r.unknown_id(last.is_none() && flags == 0);
        let res = raw::wait(
            &self.dev,
            &mut raw::drm_vela_wait {
                queue_id: q,
                flags,
                seqno,
                timeout_ns,
            },
        );
        self.record(
            "WAIT",
            format!("queue={q} seqno={seqno} last={last:?} flags={flags:#x}"),
            r.exp(false),
            &res,
        );
    }

    fn step(&mut self) {
        match self.rng.below(13) {
            0 => self.query(),
            1 | 2 => self.bo_create(),
            3 => self.bo_info(),
            4 => self.bo_mmap(),
            5 => self.vm_create(),
            6 => self.vm_destroy(),
            7 | 8 => self.vm_bind(),
            9 => self.vm_unbind(),
            10 => self.queue_create(),
            11 => self.submit(),
            _ => self.wait(),
        }
    }
}

fn device_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("VELA_DEVICE") {
        return Some(p.into());
    }
    let pci = vela_pci_devices().ok()?.into_iter().next()?;
    accel_node(&pci).ok()
}

pub fn child(calls: u64, seed: u64) -> i32 {
    let out = |s: String| {
        println!("{s}");
        let _ = io::stdout().flush();
    };
    let Some(path) = device_path() else {
        out("ERROR no Vela device".into());
        return 1;
    };
    let dev = match Device::open(&path) {
        Ok(d) => d,
        Err(e) => {
            out(format!("ERROR {e}"));
            return 1;
        }
    };
    let vram = dev.vram_size();
    let mut c = Child {
        dev,
        rng: Rng::new(seed),
        vram,
        bos: HashMap::new(),
        vms: Vec::new(),
        queues: HashMap::new(),
        binds: Vec::new(),
        drained: Default::default(),
        scratch: vec![0u64; 1024],
        noaccess: NoAccessPage::new().ok(),
        calls: 0,
        unexpected: 0,
        failed_as_promised: 0,
        succeeded: 0,
        reports: Vec::new(),
    };
    while c.calls < calls {
        c.step();
    }
    // Clean up through the ioctls (which are checked too), then prove the device still works.
    for q in c.queues.keys().copied().collect::<Vec<_>>() {
        let res = raw::queue_destroy(
            &c.dev,
            &mut raw::drm_vela_queue_destroy {
                queue_id: q,
                pad: 0,
            },
        );
        c.record(
            "QUEUE_DESTROY (cleanup)",
            format!("queue={q}"),
            Exp::Succeed,
            &res,
        );
    }
    for v in c.vms.clone() {
        // The queues' jobs that wait in the kernel keep the VM busy until they have run.
        let until = std::time::Instant::now() + Duration::from_secs(35);
        let res = loop {
            let r = raw::vm_destroy(&c.dev, &mut raw::drm_vela_vm_destroy { vm_id: v, pad: 0 });
            match r {
                Err(e) if e.raw_os_error() == Some(EBUSY) && std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r,
            }
        };
        c.record(
            "VM_DESTROY (cleanup)",
            format!("vm={v}"),
            Exp::Succeed,
            &res,
        );
    }
    for h in c.bos.keys().copied().collect::<Vec<_>>() {
        let res = raw::gem_close(&c.dev, h);
        c.record(
            "GEM_CLOSE (cleanup)",
            format!("handle={h}"),
            Exp::Succeed,
            &res,
        );
    }
    // Hardware queues are shared by every process: while the other fuzzers still hold them,
    // QUEUE_CREATE says EBUSY, so keep trying for a while before calling the device dead.
    // Contexts and hardware queues are shared by every process: while the other fuzzers still
    // hold them, VM_CREATE and QUEUE_CREATE say EBUSY, so keep trying for a while before
    // calling the device dead.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let busy = |e: &vela_runtime::Error| {
        e.errno() == Some(libc::EBUSY) && std::time::Instant::now() < deadline
    };
    let alive = loop {
        let r = Vm::create(&c.dev).and_then(|vm| {
            Queue::create(&vm).and_then(|q| q.run(&[Command::nop()], Duration::from_secs(30)))
        });
        match r {
            Err(e) if busy(&e) => std::thread::sleep(Duration::from_millis(50)),
            r => break r,
        }
    };
    for r in &c.reports {
        out(format!("UNEXPECTED {r}"));
    }
    if let Some(r) = crate::revoked::report() {
        out(r);
    }
    if let Err(e) = &alive {
        out(format!(
            "UNEXPECTED device no longer runs a job after fuzzing: {e}"
        ));
    }
    out(format!(
        "RESULT calls={} unexpected={} failed_as_promised={} succeeded={} device_alive={}",
        c.calls,
        c.unexpected,
        c.failed_as_promised,
        c.succeeded,
        alive.is_ok()
    ));
    0
}

/// A child process running its share of the calls.
pub struct Kid {
    i: u64,
    calls: u64,
    seed: u64,
    proc: io::Result<std::process::Child>,
}

/// Starts `procs` children sharing `total` calls, seeded from `seed`.
pub fn spawn(exe: &std::path::Path, total: u64, procs: u64, seed: u64) -> Vec<Kid> {
    let mut kids = Vec::new();
    for i in 0..procs {
        let calls = total / procs + u64::from(i < total % procs);
        let s = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let proc = Proc::new(exe)
            .args([
                "--child-calls",
                &calls.to_string(),
                "--child-seed",
                &s.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        kids.push(Kid {
            i,
            calls,
            seed: s,
            proc,
        });
    }
    kids
}

/// Waits for the children and records one check each.
pub fn judge(t: &mut Tap, kids: Vec<Kid>) {
    for Kid {
        i,
        calls,
        seed: s,
        proc: r,
    } in kids
    {
        let desc = format!("random process {i} (seed {s}): {calls} calls");
        let out = match r.and_then(|c| c.wait_with_output()) {
            Ok(o) => o,
            Err(e) => {
                t.check(false, &desc, format_args!("spawn/wait failed: {e}"));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text.lines().filter(|l| !l.starts_with("RESULT")) {
            t.diag(format_args!("process {i}: {l}"));
        }
        let result = text.lines().find_map(|l| l.strip_prefix("RESULT "));
        let field = |name: &str| {
            result.and_then(|r| {
                r.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                    .map(str::to_string)
            })
        };
        let ran: Option<u64> = field("calls").and_then(|v| v.parse().ok());
        let unexpected: Option<u64> = field("unexpected").and_then(|v| v.parse().ok());
        let alive = field("device_alive");
        // Only a complete report of a cleanly exited child can pass.
        let ok = out.status.success()
            && ran.is_some_and(|n| n >= calls)
            && unexpected == Some(0)
            && alive.as_deref() == Some("true");
        t.check(
            ok,
            &format!("{desc}, no unexpected result"),
            format_args!(
                "exit {:?}, ran {ran:?}, unexpected {unexpected:?}, device alive {alive:?}",
                out.status
            ),
        );
        if let Some(r) = result {
            t.diag(format_args!("process {i}: {r}"));
        }
    }
}
