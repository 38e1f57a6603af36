// SPDX-License-Identifier: GPL-2.0

//! Runs programs against the devices and collects what vela.ko's code they reached.
//!
//! Every fd a program makes (device files, dma-bufs) is moved to a number at or above
//! [`FD_BASE`], and only such numbers are ever closed: racing threads close files under each
//! other, and a number reused in between then names another of the program's own files,
//! never the fuzzer's KCOV, pipes or output.

use std::{
    ffi::CString,
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

use libc::c_ulong;
use vela_runtime::{
    kernels::{KernelCall, KernelId, Rng},
    raw, Command, COMMAND_SIZE,
};

use crate::{
    kcov::{Kcov, Sites},
    prog::{Arg, Kind, Num, Op, Prog, Race, Slot},
};

pub const FD_BASE: i32 = 1000;

/// Errnos a Vela ioctl, a DRM core ioctl, a dma-buf or syncobj call may give for bad input or
/// a busy device. Anything else (a kernel-internal code such as ENOTSUPP or ERESTARTSYS
/// leaking out, EDEADLK from a lock dance) is a bug.
const EXPECTED: &[i32] = &[
    libc::EINVAL,
    libc::ENOENT,
    libc::EFAULT,
    libc::EBUSY,
    libc::EEXIST,
    libc::ENOMEM,
    libc::ETIME,
    libc::EIO,
    libc::EBADF,
    libc::EOPNOTSUPP,
    libc::ENODEV,
    libc::EAGAIN,
    libc::EINTR,
    libc::ENOSPC,
    libc::E2BIG,
    libc::EPERM,
    libc::EACCES,
    libc::ENOTTY,
    libc::ETIMEDOUT,
    libc::EOVERFLOW,
    libc::ERANGE,
    libc::ENXIO,
    libc::EMFILE,
    libc::ENFILE,
    libc::ECANCELED,
];

/// The world programs run in.
pub struct Env {
    /// Accel nodes, by PCI address order (vela0, vela1, vela2).
    pub devs: Vec<PathBuf>,
    pub sites: Option<Sites>,
    /// A mapped page nobody may access (PROT_NONE), for pointers that must fault.
    noaccess: u64,
}

impl Env {
    pub fn new(devs: Vec<PathBuf>, sites: Option<Sites>) -> std::io::Result<Self> {
        let page = vela_selftests::NoAccessPage::new()?;
        let noaccess = page.addr();
        // Mapped for the life of the process: the racing threads share the Env.
        std::mem::forget(page);
        Ok(Self {
            devs,
            sites,
            noaccess,
        })
    }
}

/// What one run of a program did.
#[derive(Default)]
pub struct Outcome {
    /// Sites of vela.ko reached (numbers into [`Sites`]), each once.
    pub sites: Vec<u32>,
    pub calls: u64,
    pub unexpected: Vec<String>,
    /// The slowest call: (seconds, call number, its name).
    pub slowest: (f64, usize, &'static str),
    /// The closes at the end, in seconds.
    pub teardown: f64,
}

/// Results of the calls: the fd, handle, id or seqno each made, while it exists.
type Table = Mutex<Vec<Option<u64>>>;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ioc<T>(fd: i32, req: u32, arg: &mut T) -> i32 {
    loop {
        // SAFETY: every caller passes the request number whose argument type is `T`; `arg` is
        // a live, exclusive `T` for the duration of the call.
        let r = unsafe { libc::ioctl(fd, req as c_ulong, arg as *mut T) };
        if r >= 0 {
            return 0;
        }
        let e = errno();
        if e != libc::EINTR {
            return e;
        }
    }
}

/// Moves `fd` to a number at or above [`FD_BASE`].
fn keep(fd: i32) -> Result<u64, i32> {
    // SAFETY: duplicates and closes an fd this thread just got from the kernel.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FD_BASE) };
    let e = errno();
    // SAFETY: as above.
    unsafe { libc::close(fd) };
    if n < 0 {
        Err(e)
    } else {
        Ok(n as u64)
    }
}

const fn drm_iowr(nr: u32, size: u32) -> u32 {
    (3 << 30) | (size << 16) | ((b'd' as u32) << 8) | nr
}
const SYNCOBJ_CREATE: u32 = drm_iowr(0xbf, 8);
const SYNCOBJ_DESTROY: u32 = drm_iowr(0xc0, 8);
const SYNCOBJ_WAIT: u32 = drm_iowr(0xc3, 40);
const SYNCOBJ_RESET: u32 = drm_iowr(0xc4, 16);
/// `_IOW('u', 0x42, struct udmabuf_create)`.
const UDMABUF_CREATE: u32 = (1 << 30) | (24 << 16) | ((b'u' as u32) << 8) | 0x42;
/// `_IOWR('H', 0x0, struct dma_heap_allocation_data)`.
const DMA_HEAP_IOCTL_ALLOC: u32 = (3 << 30) | (24 << 16) | ((b'H' as u32) << 8);
/// `_IOW('b', 0, struct dma_buf_sync)`.
const DMA_BUF_IOCTL_SYNC: u32 = (1 << 30) | (8 << 16) | ((b'b' as u32) << 8);
/// Buffers of the dma-buf sources stay small: the guest has 2 GiB for everything.
const MAX_FOREIGN: u64 = 16 << 20;
/// Waits are short: a program is many calls, and a job that cannot finish must not stall it.
const MAX_WAIT_NS: u64 = 20_000_000;

fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn timeout(v: u64) -> i64 {
    // Negative timeouts stay (they must be EINVAL); long ones are cut.
    if (v as i64) < 0 {
        v as i64
    } else {
        v.min(MAX_WAIT_NS) as i64
    }
}

/// Maps `len` bytes of `fd` at `offset`, writes a word and reads it back, unmaps.
fn touch(fd: i32, offset: u64, len: u64, sync: bool) -> i32 {
    let len = len.clamp(0x1000, 0x20_0000).next_multiple_of(0x1000) as usize;
    let p = match vela_selftests::dmabuf::map_shared_at(fd, len, offset) {
        Ok(p) => p.as_ptr().cast::<libc::c_void>(),
        Err(e) => return e.raw_os_error().unwrap_or(libc::EIO),
    };
    // DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW, then END.
    let mut s = [3u64];
    if sync {
        ioc(fd, DMA_BUF_IOCTL_SYNC, &mut s);
    }
    // SAFETY: offset 0 and `len - 8` are inside the live mapping and 8-byte aligned. The
    // buffer may be written by a job at the same time, so the value read is not checked.
    unsafe {
        let q = p.cast::<u64>();
        q.write_volatile(0x5a5a_5a5a_5a5a_5a5a);
        let _ = q.read_volatile();
        let last = p.cast::<u8>().add(len - 8).cast::<u64>();
        let _ = last.read_volatile();
    }
    if sync {
        s[0] |= 4;
        ioc(fd, DMA_BUF_IOCTL_SYNC, &mut s);
    }
    // SAFETY: unmaps what was mapped above.
    unsafe { libc::munmap(p, len) };
    0
}

fn commands(kind: u64, va: u64, len: u64, seed: u64) -> Vec<Command> {
    let len32 = len.min(u64::from(u32::MAX));
    match kind % 8 {
        0 => vec![Command::nop()],
        1 => vec![Command::fill(va & !3, seed as u32, len & !3)],
        2 => vec![Command::copy(va, va + len, len)],
        3 => vec![Command::fence(va, seed)],
        4 => {
            let id = KernelId::ALL[(seed % KernelId::ALL.len() as u64) as usize];
            let n = ((len32 / 16) as u32).max(1);
            vec![Command::kernel(
                &KernelCall::new(id, va, va, va, va + len, n).with_nk(2, 2),
            )]
        }
        5 => {
            let mut b = [0u8; COMMAND_SIZE];
            Rng::new(seed).fill_bytes(&mut b);
            vec![Command::from_bytes(b)]
        }
        6 => vec![
            Command::fill(va & !3, seed as u32, len & !3),
            Command::copy(va, va + len, len),
            Command::fence(va + len, seed),
        ],
        _ => vec![Command::nop(); 64],
    }
}

/// One thread's view of a running program.
struct Ctx<'a> {
    /// This thread's KCOV.
    env: &'a Env,
    prog: &'a Prog,
    table: &'a Table,
    scratch: Vec<u64>,
    out: Outcome,
    kcov: Option<&'a Kcov>,
    hit: Vec<bool>,
}

impl<'a> Ctx<'a> {
    fn new(
        env: &'a Env,
        prog: &'a Prog,
        table: &'a Table,
        kcov: Option<&'a Kcov>,
        nsites: usize,
    ) -> Self {
        Self {
            env,
            prog,
            table,
            scratch: vec![0; 512],
            out: Outcome::default(),
            kcov,
            hit: vec![false; nsites],
        }
    }

    fn val(&self, a: Arg) -> u64 {
        match a {
            Arg::Ref(r) => self
                .table
                .lock()
                .map_or(None, |t| t.get(r).copied().flatten())
                .unwrap_or(0),
            Arg::Lit(v) => v,
        }
    }

    /// An fd argument: a program's own fd, or a literal that names no file of the fuzzer's
    /// (only numbers at or above FD_BASE reach the kernel).
    fn fd(&self, a: Arg) -> i32 {
        let v = self.val(a) as i32;
        if v < FD_BASE {
            -1
        } else {
            v
        }
    }

    /// Takes the fd call `a` made out of the table, so only one thread closes it.
    fn take_fd(&self, a: Arg, kind: Kind) -> Option<i32> {
        let Arg::Ref(r) = a else { return None };
        if self.prog.calls[r].op.def().result != Some(kind) {
            return None;
        }
        let v = self.table.lock().ok()?.get_mut(r)?.take()?;
        (v as i32 >= FD_BASE).then_some(v as i32)
    }

    /// Runs call `i`; the result (if any) goes to the table. Returns 0 or the errno.
    fn call(&mut self, i: usize) -> i32 {
        let c = &self.prog.calls[i];
        let a = &c.args;
        let u = |j: usize| match a[j] {
            Arg::Lit(v) => v,
            Arg::Ref(_) => 0,
        };
        let (r, res): (i32, Option<u64>) = match c.op {
            Op::Open => {
                let dev = &self.env.devs[(u(0) as usize) % self.env.devs.len()];
                let Ok(path) = CString::new(dev.as_os_str().as_encoded_bytes()) else {
                    return libc::EINVAL;
                };
                // SAFETY: a NUL-terminated path; opens a new fd.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
                if fd < 0 {
                    (errno(), None)
                } else {
                    match keep(fd) {
                        Ok(n) => (0, Some(n)),
                        Err(e) => (e, None),
                    }
                }
            }
            Op::Close | Op::CloseFd => {
                let kind = if c.op == Op::Close {
                    Kind::File
                } else {
                    Kind::Dmabuf
                };
                match self.take_fd(a[0], kind) {
                    // SAFETY: an fd of this program's, taken out of the table: closed once.
                    Some(fd) => (
                        if unsafe { libc::close(fd) } == 0 {
                            0
                        } else {
                            errno()
                        },
                        None,
                    ),
                    None => (0, None),
                }
            }
            Op::BoCreate => {
                let mut x = raw::drm_vela_bo_create {
                    size: u(1),
                    flags: u(2) as u32,
                    handle: 0,
                };
                let e = ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_BO_CREATE, &mut x);
                (e, (e == 0).then_some(u64::from(x.handle)))
            }
            Op::BoInfo => {
                let mut x = raw::drm_vela_bo_info {
                    handle: self.val(a[1]) as u32,
                    pad: u(2) as u32,
                    ..Default::default()
                };
                (
                    ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_BO_INFO, &mut x),
                    None,
                )
            }
            Op::BoMmap => {
                let fd = self.fd(a[0]);
                let mut x = raw::drm_vela_bo_mmap_offset {
                    handle: self.val(a[1]) as u32,
                    pad: u(2) as u32,
                    offset: 0,
                };
                let e = ioc(fd, vela_uapi::DRM_IOCTL_VELA_BO_MMAP_OFFSET, &mut x);
                if e == 0 {
                    // A mapping larger than the buffer must fail, not fault later.
                    let _ = touch(fd, x.offset, u(3), false);
                }
                (e, None)
            }
            Op::GemClose => {
                let mut x = raw::drm_gem_close {
                    handle: self.val(a[1]) as u32,
                    pad: 0,
                };
                (ioc(self.fd(a[0]), raw::DRM_IOCTL_GEM_CLOSE, &mut x), None)
            }
            Op::VmCreate => {
                let mut x = raw::drm_vela_vm_create {
                    flags: u(1) as u32,
                    vm_id: 0,
                };
                let e = ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_VM_CREATE, &mut x);
                (e, (e == 0).then_some(u64::from(x.vm_id)))
            }
            Op::VmDestroy => {
                let mut x = raw::drm_vela_vm_destroy {
                    vm_id: self.val(a[1]) as u32,
                    pad: u(2) as u32,
                };
                (
                    ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_VM_DESTROY, &mut x),
                    None,
                )
            }
            Op::VmBind => {
                let mut x = raw::drm_vela_vm_bind {
                    vm_id: self.val(a[1]) as u32,
                    handle: self.val(a[2]) as u32,
                    va: u(3),
                    bo_offset: u(4),
                    size: u(5),
                    flags: u(6) as u32,
                    pad: u(7) as u32,
                };
                (
                    ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_VM_BIND, &mut x),
                    None,
                )
            }
            Op::VmUnbind => {
                let mut x = raw::drm_vela_vm_unbind {
                    vm_id: self.val(a[1]) as u32,
                    pad: u(4) as u32,
                    va: u(2),
                    size: u(3),
                };
                (
                    ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_VM_UNBIND, &mut x),
                    None,
                )
            }
            Op::QueueCreate => {
                let mut x = raw::drm_vela_queue_create {
                    vm_id: self.val(a[1]) as u32,
                    flags: u(2) as u32,
                    queue_id: 0,
                    pad: u(3) as u32,
                };
                let e = ioc(
                    self.fd(a[0]),
                    vela_uapi::DRM_IOCTL_VELA_QUEUE_CREATE,
                    &mut x,
                );
                (e, (e == 0).then_some(u64::from(x.queue_id)))
            }
            Op::QueueDestroy => {
                let mut x = raw::drm_vela_queue_destroy {
                    queue_id: self.val(a[1]) as u32,
                    pad: u(2) as u32,
                };
                (
                    ioc(
                        self.fd(a[0]),
                        vela_uapi::DRM_IOCTL_VELA_QUEUE_DESTROY,
                        &mut x,
                    ),
                    None,
                )
            }
            Op::Submit => {
                let cmds = commands(u(2), u(3), u(4), u(9));
                let ins = [self.val(a[5]) as u32];
                let out = self.val(a[6]) as u32;
                // 0: the commands built; anything else is taken as it is (past the vector the
                // kernel reads whatever the heap holds, or faults: both must be handled).
                let count = match u(7) {
                    0 => cmds.len() as u32,
                    n => n as u32,
                };
                let mut x = raw::drm_vela_submit {
                    queue_id: self.val(a[1]) as u32,
                    flags: u(8) as u32,
                    commands: cmds.as_ptr() as u64,
                    command_count: count,
                    in_syncobjs: if ins[0] != 0 { ins.as_ptr() as u64 } else { 0 },
                    in_syncobj_count: u32::from(ins[0] != 0),
                    out_syncobj: out,
                    ..Default::default()
                };
                let e = ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_SUBMIT, &mut x);
                (e, (e == 0).then_some(x.seqno))
            }
            Op::Wait => {
                let mut x = raw::drm_vela_wait {
                    queue_id: self.val(a[1]) as u32,
                    flags: u(4) as u32,
                    seqno: self.val(a[2]),
                    timeout_ns: timeout(u(3)),
                };
                (
                    ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_WAIT, &mut x),
                    None,
                )
            }
            Op::BoWait => {
                let mut x = vela_uapi::drm_vela_bo_wait {
                    handle: self.val(a[1]) as u32,
                    flags: u(3) as u32,
                    timeout_ns: timeout(u(2)),
                };
                (
                    ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_BO_WAIT, &mut x),
                    None,
                )
            }
            Op::Query => {
                let data = match u(3) {
                    1 => 0,
                    2 => 0x10,
                    3 => self.env.noaccess,
                    4 => 0xffff_8000_0000_0000,
                    5 => u64::MAX - 7,
                    _ => self.scratch.as_mut_ptr() as u64,
                };
                let mut x = raw::drm_vela_query {
                    query: u(1) as u32,
                    flags: u(4) as u32,
                    // The scratch buffer holds the largest reply (128 bytes) and more.
                    size: u(2) as u32,
                    pad: u(5) as u32,
                    data,
                };
                (
                    ioc(self.fd(a[0]), vela_uapi::DRM_IOCTL_VELA_QUERY, &mut x),
                    None,
                )
            }
            Op::Export => {
                let mut x = raw::drm_prime_handle {
                    handle: self.val(a[1]) as u32,
                    flags: u(2) as u32,
                    fd: -1,
                };
                match ioc(self.fd(a[0]), raw::DRM_IOCTL_PRIME_HANDLE_TO_FD, &mut x) {
                    0 => match keep(x.fd) {
                        Ok(n) => (0, Some(n)),
                        Err(e) => (e, None),
                    },
                    e => (e, None),
                }
            }
            Op::Import => {
                let mut x = raw::drm_prime_handle {
                    handle: 0,
                    flags: 0,
                    fd: self.fd(a[1]),
                };
                let e = ioc(self.fd(a[0]), raw::DRM_IOCTL_PRIME_FD_TO_HANDLE, &mut x);
                (e, (e == 0).then_some(u64::from(x.handle)))
            }
            Op::Udmabuf => match udmabuf(u(0)) {
                Ok(fd) => (0, Some(fd)),
                Err(e) => (e, None),
            },
            Op::Heap => match heap(u(0)) {
                Ok(fd) => (0, Some(fd)),
                Err(e) => (e, None),
            },
            Op::DmabufMmap => {
                let fd = self.fd(a[0]);
                (touch(fd, 0, u(1), true), None)
            }
            Op::SyncCreate => {
                let mut x = [0u32, u(1) as u32];
                let e = ioc(self.fd(a[0]), SYNCOBJ_CREATE, &mut x);
                (e, (e == 0).then_some(u64::from(x[0])))
            }
            Op::SyncDestroy => {
                let mut x = [self.val(a[1]) as u32, 0];
                (ioc(self.fd(a[0]), SYNCOBJ_DESTROY, &mut x), None)
            }
            Op::SyncWait => {
                let h = [self.val(a[1]) as u32];
                // handles, timeout_nsec (absolute), count, flags, first_signaled, pad, deadline
                let t = timeout(u(2));
                let mut x: [u64; 5] = [
                    h.as_ptr() as u64,
                    (now_ns() + t.max(0)) as u64,
                    1 | (u(3) << 32),
                    0,
                    0,
                ];
                (ioc(self.fd(a[0]), SYNCOBJ_WAIT, &mut x), None)
            }
            Op::SyncReset => {
                let h = [self.val(a[1]) as u32];
                let mut x: [u64; 2] = [h.as_ptr() as u64, 1];
                (ioc(self.fd(a[0]), SYNCOBJ_RESET, &mut x), None)
            }
            Op::Pressure => (pressure(self.fd(a[0]), u(1)), None),
        };
        if let Some(v) = res {
            let is_fd = matches!(c.op.def().result, Some(Kind::File) | Some(Kind::Dmabuf));
            if let Ok(mut t) = self.table.lock() {
                if let Some(s) = t.get_mut(i) {
                    // Both racers ran this call: the older fd would be left open (and what it
                    // holds alive) if it were only overwritten.
                    if let Some(old) = s.replace(v) {
                        if is_fd && old as i32 >= FD_BASE {
                            // SAFETY: an fd of this program's, out of the table: closed once.
                            unsafe { libc::close(old as i32) };
                        }
                    }
                }
            }
        }
        r
    }

    /// Runs calls `range`, in order starting at `start` (wrapping), judging each result.
    fn run(&mut self, range: std::ops::Range<usize>, start: usize) {
        let n = range.len();
        for k in 0..n {
            let i = range.start + (start + k) % n.max(1);
            let t0 = Instant::now();
            let e = self.call(i);
            let dt = t0.elapsed().as_secs_f64();
            if dt > self.out.slowest.0 {
                self.out.slowest = (dt, i, self.prog.calls[i].op.def().name);
            }
            self.out.calls += 1;
            self.judge(i, e);
            self.collect();
        }
    }

    fn collect(&mut self) {
        if let (Some(kcov), Some(sites)) = (self.kcov, &self.env.sites) {
            kcov.collect(sites, &mut self.hit);
        }
    }

    fn judge(&mut self, i: usize, e: i32) {
        let c = &self.prog.calls[i];
        let why = if e != 0 && !EXPECTED.contains(&e) {
            Some(format!("errno {e} ({})", vela_runtime::errno_name(e)))
        } else if e == 0 && self.nonzero_must_be_zero(i) {
            Some("succeeded with a non-zero pad or flags field".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            if self.out.unexpected.len() < 10 {
                let mut one = Prog::default();
                one.calls.push(c.clone());
                self.out
                    .unexpected
                    .push(format!("call {i} `{}`: {why}", one.to_text().trim_end()));
            } else {
                self.out.unexpected.push(String::new());
            }
        }
    }

    /// Whether a Vela ioctl's must-be-zero field (pad, or flags with no bits defined) holds
    /// something else: the header promises -EINVAL for that.
    fn nonzero_must_be_zero(&self, i: usize) -> bool {
        let c = &self.prog.calls[i];
        let vela = !matches!(
            c.op,
            Op::Open
                | Op::Close
                | Op::CloseFd
                | Op::GemClose
                | Op::Export
                | Op::Import
                | Op::Udmabuf
                | Op::Heap
                | Op::DmabufMmap
                | Op::SyncCreate
                | Op::SyncDestroy
                | Op::SyncWait
                | Op::SyncReset
                | Op::Pressure
        );
        vela && c
            .op
            .def()
            .args
            .iter()
            .zip(&c.args)
            // The fields are 32 bits wide: only what survives the cast reaches the kernel.
            .any(|(s, a)| *s == Slot::Num(Num::Zero) && matches!(a, Arg::Lit(v) if *v as u32 != 0))
    }

    fn sites(&self) -> Vec<u32> {
        self.hit
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| i as u32)
            .collect()
    }
}

/// Fills VRAM, all but `slack` 64 KiB pages of it (0: 4), with VRAM_ONLY buffers the file
/// keeps until it closes: the next creates must evict idle buffers to system memory, and
/// jobs bring them back. The filler itself never moves, so the evictions are of the
/// program's (and the other fuzzers') buffers, not of the filler.
fn pressure(fd: i32, slack: u64) -> i32 {
    let slack = match slack {
        0 => 4,
        n => n.min(64),
    } * 0x10000;
    let mut m = vela_uapi::drm_vela_query_memory::default();
    let mut q = raw::drm_vela_query {
        query: vela_uapi::drm_vela_query_id_DRM_VELA_QUERY_MEMORY,
        size: std::mem::size_of_val(&m) as u32,
        data: &mut m as *mut _ as u64,
        ..Default::default()
    };
    let e = ioc(fd, vela_uapi::DRM_IOCTL_VELA_QUERY, &mut q);
    if e != 0 {
        return e;
    }
    // In pieces of at most 16 MiB, each of which fits in what was free: a create that does
    // not fit even after evicting everything evicts everything first, which takes seconds.
    let mut left = m.vram_free.saturating_sub(slack) & !0xfff;
    while left >= 0x1000 {
        let mut x = raw::drm_vela_bo_create {
            size: left.min(16 << 20),
            flags: vela_uapi::DRM_VELA_BO_VRAM | vela_uapi::DRM_VELA_BO_VRAM_ONLY,
            handle: 0,
        };
        match ioc(fd, vela_uapi::DRM_IOCTL_VELA_BO_CREATE, &mut x) {
            0 => left -= x.size,
            // Another process took the room in between.
            libc::ENOMEM => break,
            e => return e,
        }
    }
    0
}

fn udmabuf(size: u64) -> Result<u64, i32> {
    if size > MAX_FOREIGN {
        return Err(libc::E2BIG);
    }
    // SAFETY: a NUL-terminated name; creates a new fd.
    let memfd = unsafe {
        libc::memfd_create(
            c"vela-fuzz".as_ptr(),
            libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC,
        )
    };
    if memfd < 0 {
        return Err(errno());
    }
    let r = (|| {
        // SAFETY: plain syscalls on the memfd made above.
        if unsafe { libc::ftruncate(memfd, size as libc::off_t) } != 0 {
            return Err(errno());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(memfd, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } != 0 {
            return Err(errno());
        }
        // SAFETY: opens a new fd.
        let dev = unsafe { libc::open(c"/dev/udmabuf".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if dev < 0 {
            return Err(errno());
        }
        // memfd, flags (CLOEXEC), offset, size
        let mut x: [u64; 3] = [memfd as u64 | (1 << 32), 0, size];
        // SAFETY: UDMABUF_CREATE returns a new fd or fails; `x` is its 24-byte argument.
        let fd = unsafe { libc::ioctl(dev, UDMABUF_CREATE as c_ulong, x.as_mut_ptr()) };
        let e = errno();
        // SAFETY: closes the fd opened above.
        unsafe { libc::close(dev) };
        if fd < 0 {
            Err(e)
        } else {
            keep(fd)
        }
    })();
    // SAFETY: the udmabuf holds the memfd's pages; the memfd itself is no longer needed.
    unsafe { libc::close(memfd) };
    r
}

fn heap(size: u64) -> Result<u64, i32> {
    if size > MAX_FOREIGN {
        return Err(libc::E2BIG);
    }
    // SAFETY: opens a new fd.
    let dev = unsafe {
        libc::open(
            c"/dev/dma_heap/system".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if dev < 0 {
        return Err(errno());
    }
    // len, fd, fd_flags, heap_flags
    let mut x: [u64; 3] = [size, ((libc::O_RDWR | libc::O_CLOEXEC) as u64) << 32, 0];
    let e = ioc(dev, DMA_HEAP_IOCTL_ALLOC, &mut x);
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(dev) };
    if e != 0 {
        return Err(e);
    }
    keep((x[1] & 0xffff_ffff) as i32)
}

/// Runs `prog` once: the calls before the race point in this thread, the rest at once in two
/// threads or two processes; then closes every fd the program still holds (which frees all
/// it made). `kcov` is this thread's KCOV, if coverage is on.
pub fn run(env: &Env, prog: &Prog, kcov: Option<&Kcov>) -> Outcome {
    let table: Table = Mutex::new(vec![None; prog.calls.len()]);
    let nsites = env.sites.as_ref().map_or(0, Sites::total);
    let n = prog.calls.len();
    let (split, race) = match prog.race {
        Some((at, r)) if at < n => (at, Some(r)),
        _ => (n, None),
    };
    if let Some(k) = kcov {
        k.reset();
    }
    let mut main = Ctx::new(env, prog, &table, kcov, nsites);
    main.run(0..split, 0);
    match race {
        None => {}
        Some(Race::Threads) => {
            let other = std::thread::scope(|s| {
                let h = s.spawn(|| {
                    let k = if nsites > 0 { Kcov::open().ok() } else { None };
                    let mut ctx = Ctx::new(env, prog, &table, k.as_ref(), nsites);
                    // From the middle: the two threads work on different objects at first,
                    // then on each other's.
                    ctx.run(split..n, (n - split) / 2);
                    ctx.out.sites = ctx.sites();
                    ctx.out
                });
                main.run(split..n, 0);
                h.join().ok()
            });
            if let Some(o) = other {
                merge(&mut main, o);
            }
        }
        Some(Race::Fork) => {
            if let Some(o) = fork_run(&mut main, split..n) {
                merge(&mut main, o);
            }
        }
    }
    // Everything the program made hangs off its files and dma-bufs.
    let t0 = Instant::now();
    if let Ok(mut t) = table.lock() {
        for (i, c) in prog.calls.iter().enumerate() {
            if matches!(c.op.def().result, Some(Kind::File) | Some(Kind::Dmabuf)) {
                if let Some(fd) = t[i].take() {
                    if fd as i32 >= FD_BASE {
                        // SAFETY: an fd of this program's, taken out of the table: closed once.
                        unsafe { libc::close(fd as i32) };
                    }
                }
            }
        }
    }
    main.out.teardown = t0.elapsed().as_secs_f64();
    // What the closes reached (the release paths) counts too.
    main.collect();
    main.out.sites = main.sites();
    main.out
}

fn merge(main: &mut Ctx<'_>, o: Outcome) {
    main.out.calls += o.calls;
    main.out.unexpected.extend(o.unexpected);
    for s in o.sites {
        if let Some(h) = main.hit.get_mut(s as usize) {
            *h = true;
        }
    }
}

/// The race in two processes: the child runs the calls from `range.start` on its own KCOV
/// and sends back (through a pipe) the sites it reached and what went wrong, then exits;
/// the parent runs them too, from the other end, at the same time.
fn fork_run(main: &mut Ctx<'_>, range: std::ops::Range<usize>) -> Option<Outcome> {
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for the two fds.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: the fuzzer's main thread forks with no other thread of its own running (thread
    // races are joined before); the child only makes syscalls and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the read end is the parent's.
        unsafe { libc::close(p[0]) };
        let nsites = main.hit.len();
        let k = if nsites > 0 { Kcov::open().ok() } else { None };
        let mut ctx = Ctx::new(main.env, main.prog, main.table, k.as_ref(), nsites);
        let len = range.len();
        ctx.run(range, len / 2);
        let mut msg = format!("calls {}\n", ctx.out.calls);
        for u in ctx.out.unexpected.iter().filter(|u| !u.is_empty()) {
            msg.push_str(&format!("unexpected {u}\n"));
        }
        let sites: Vec<String> = ctx.sites().iter().map(u32::to_string).collect();
        msg.push_str(&format!("sites {}\n", sites.join(" ")));
        let mut b = msg.as_bytes();
        while !b.is_empty() {
            // SAFETY: writes from a live buffer to our pipe end.
            let w = unsafe { libc::write(p[1], b.as_ptr().cast(), b.len()) };
            if w <= 0 {
                break;
            }
            b = &b[w as usize..];
        }
        drop(ctx);
        drop(k);
        // SAFETY: ends the child without running the parent's exit handlers or destructors.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: the write end is the child's.
    unsafe { libc::close(p[1]) };
    if pid < 0 {
        // SAFETY: the read end made above.
        unsafe { libc::close(p[0]) };
        return None;
    }
    main.run(range, 0);
    let mut text = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // SAFETY: reads into a live buffer from our pipe end.
        let r = unsafe { libc::read(p[0], buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 || Instant::now() > deadline {
            break;
        }
        text.extend_from_slice(&buf[..r as usize]);
    }
    // SAFETY: the read end made above; the child is reaped next.
    unsafe { libc::close(p[0]) };
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let mut o = Outcome::default();
    let text = String::from_utf8_lossy(&text);
    for l in text.lines() {
        if let Some(c) = l.strip_prefix("calls ") {
            o.calls = c.parse().unwrap_or(0);
        } else if let Some(u) = l.strip_prefix("unexpected ") {
            o.unexpected.push(format!("(forked child) {u}"));
        } else if let Some(s) = l.strip_prefix("sites ") {
            o.sites = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
        }
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        o.unexpected.push(format!(
            "forked child died (wait status {status:#x}): a signal from a mapping or a crash"
        ));
    }
    Some(o)
}
