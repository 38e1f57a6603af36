// SPDX-License-Identifier: GPL-2.0

//! Device loss: a device whose model process dies, and a device hot-removed through QEMU's
//! monitor, each while it has jobs pending, a CPU mapping, an export imported by a peer and an
//! import from a peer (Documentation/driver.rst, "Device loss").
//!
//! 1. B, alive, is hot-removed while a thread runs jobs on it back to back: the thread's last
//!    call fails with ENODEV, B's CPU mapping raises SIGBUS, A's P2P import of B's buffer is
//!    revoked, A's import of a C buffer keeps working and A runs jobs. B is added again, probes
//!    and shares a buffer with A peer-to-peer.
//! 2. C's model process is killed (`harness kill-model`): C's pending job fails with ENODEV
//!    within [`LOSS_BOUND`], a new SUBMIT fails with ENODEV, a read of C's CPU mapping raises
//!    SIGBUS, A's COPY out of its import of C's buffer fails cleanly, and A still runs jobs
//!    with correct data, its own buffer that C imported included. Then C is hot-removed
//!    (unbind of a device that never answers must not hang) and added again on a fresh model
//!    process (`device-add`): it probes and runs a COPY.
//!
//! A hot-remove is QEMU's `device_del` through the monitor (`harness device-del`, which
//! returns when QEMU reports the device deleted: the guest's acpiphp unbound the driver and
//! ejected the slot), and the device comes back with `device_add` on its own port. With a QEMU
//! the harness could not fix (tools/harness/src/qemu.rs) the harness refuses `device-del`;
//! then the test says so (a skipped check) and removes the function from the guest instead
//! (sysfs `remove`, see [`hot_remove`]): B comes back by a bus rescan, C as a new device on
//! the spare root port.
//!
//! Runs last in `make check`: it destroys devices (and brings them back).

use std::{
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use vela_runtime::{Access, Buffer, BufferFlags, Command, Device, Error, Queue, Vm, WaitStatus};
use vela_selftests::{
    harness, inject, p2p_topology, pattern, same,
    sharing::{local_copy_works, open, read_bo, s, vram_with},
    vela_pci_devices, PciDev, Tap,
};

const T: Duration = Duration::from_secs(20);
const LEN: u64 = 256 << 10;
/// How soon a pending job of a device whose model died must fail: the watchdog reads the
/// identity register every 500 ms while jobs are pending.
const LOSS_BOUND: Duration = Duration::from_secs(5);
/// A hot-remove or hot-add: pciehp's 5 s attention-button delay, then unbind, under TCG.
const HOTPLUG: Duration = Duration::from_secs(120);

/// The harness's name of `dev` (`vela0`, ...): the model's devices are numbered from serial 1
/// (tools/harness/src/model.rs).
fn name_of(dev: &Device) -> String {
    format!("vela{}", dev.info().serial.saturating_sub(1))
}

fn errno_of<T>(r: &vela_runtime::Result<T>) -> Option<i32> {
    r.as_ref().err().and_then(|e| e.errno())
}

/// Reads the byte at `ptr` in a child process: `Some(signal)` if the read killed it, `None` if
/// it read.
fn probe_read(ptr: *const u8) -> Result<Option<i32>, String> {
    // SAFETY: fork() has no memory-safety preconditions; the child below only reads and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: `ptr` points into a shared mapping the child inherited; a revoked one
        // raises SIGBUS, which is what is tested.
        let v = unsafe { std::ptr::read_volatile(ptr) };
        std::hint::black_box(v);
        // SAFETY: _exit() ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a live local.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    Ok(libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)))
}

/// COPYs all of `bo` (a buffer or an import of `dev`) into a fresh buffer and compares.
fn holds(dev: &Device, bo: &Buffer<'_>, want: &[u8]) -> Result<(), String> {
    let dst = vram_with(dev, &pattern(0x5eed, LEN), BufferFlags::NONE)?;
    let vm = s(Vm::create(dev))?;
    let q = s(Queue::create(&vm))?;
    let bs = s(vm.bind_auto(bo, Access::READ))?;
    let bd = s(vm.bind_auto(&dst, Access::READ_WRITE))?;
    s(q.run(&[Command::copy(bs.va(), bd.va(), LEN)], T))?;
    same(&read_bo(&dst, LEN)?, want)
}

/// A COPY out of an import whose exporter is gone must fail cleanly: SUBMIT or the bind
/// fails, or the job fails; it must not complete (it would have read revoked memory).
fn import_revoked(dev: &Device, imp: &Buffer<'_>) -> Result<String, String> {
    let dst = vram_with(dev, &pattern(0xdead, LEN), BufferFlags::NONE)?;
    let vm = s(Vm::create(dev))?;
    let q = s(Queue::create(&vm))?;
    let bd = s(vm.bind_auto(&dst, Access::READ_WRITE))?;
    let bi = match vm.bind_auto(imp, Access::READ) {
        Ok(b) => b,
        Err(e) => return Ok(format!("binding the import failed: {e}")),
    };
    match q.submit(&[Command::copy(bi.va(), bd.va(), LEN)]) {
        Err(e) => Ok(format!("SUBMIT failed: {e}")),
        Ok(job) => match job.wait(T) {
            Err(e) => Ok(format!("the job failed: {e}")),
            Ok(WaitStatus::Completed) => Err("the COPY completed: it read revoked memory".into()),
            Ok(WaitStatus::TimedOut) => Err(format!("the COPY did not end in {T:?}")),
        },
    }
}

/// How a device was hot-removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    /// QEMU's `device_del`: the device is gone from the machine.
    DeviceDel,
    /// The function's removal from the guest only: QEMU still has the device.
    Sysfs,
}

impl Removal {
    fn how(self) -> &'static str {
        match self {
            Removal::DeviceDel => "device_del",
            Removal::Sysfs => "sysfs remove",
        }
    }
}

/// The prefix of the harness's answer when its QEMU cannot `device_del` a Vela device.
const UNSUPPORTED: &str = "error: unsupported: ";

/// Hot-removes `pci` (the harness's `name`): QEMU's `device_del`, which returns once QEMU
/// deleted the device (acpiphp in the guest unbound the driver and ejected the slot; not
/// pciehp, whose removal path in 7.2 trips lockdep). If the harness says its QEMU cannot, the
/// function's removal from the guest: sysfs `remove`, the same
/// `pci_stop_and_remove_bus_device` a hotplug driver calls, with the driver unbound on the
/// way. The reason for that fallback is recorded as a skipped check.
fn hot_remove(
    t: &mut Tap,
    part: u32,
    name: &str,
    pci: &PciDev,
) -> (Removal, Result<String, String>) {
    let t0 = Instant::now();
    match harness("device-del", name, HOTPLUG) {
        Ok(r) => (
            Removal::DeviceDel,
            Ok(format!("{r}, {} ms in all", t0.elapsed().as_millis())),
        ),
        Err(e) => {
            let e = e.to_string();
            let Some(why) = e.strip_prefix(UNSUPPORTED) else {
                return (Removal::DeviceDel, Err(e));
            };
            t.skip(
                &format!("{part}: {name} removed with QEMU's device_del"),
                why,
            );
            let t0 = Instant::now();
            let r = std::fs::write(pci.sysfs.join("remove"), "1")
                .map_err(|e| format!("{}/remove: {e}", pci.sysfs.display()))
                .map(|()| format!("removed in {} ms", t0.elapsed().as_millis()));
            (Removal::Sysfs, r)
        }
    }
}

/// The Vela functions the guest has now, by address.
fn vela_bdfs() -> Vec<String> {
    vela_pci_devices()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// Polls until a Vela function not in `old` appears with an accel node that opens.
fn wait_new_device(old: &[String], within: Duration) -> Result<Device, String> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(bdf) = vela_bdfs().into_iter().find(|b| !old.contains(b)) {
            return wait_probed(&bdf, deadline.saturating_duration_since(Instant::now()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no new Vela device in {within:?}; have {:?}",
                vela_bdfs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until a Vela device at `bdf` has an accel node that opens.
fn wait_probed(bdf: &str, within: Duration) -> Result<Device, String> {
    let deadline = Instant::now() + within;
    let path = Path::new("/sys/bus/pci/devices").join(bdf);
    loop {
        let r = PciDev::new(&path)
            .map_err(|e| format!("{bdf}: {e}"))
            .and_then(|d| d.open());
        match r {
            Ok(dev) => return Ok(dev),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Part 2: C's model process is killed with C's job pending; then C is removed and added.
fn part2_kill(t: &mut Tap, a_dev: &PciDev, c_dev: &PciDev) {
    let Some((name, how)) = part2_lose(t, a_dev, c_dev) else {
        return;
    };
    let old = vela_bdfs();
    // After a device_del, on C's own port with C's id; else on the spare root port.
    let r = harness("device-add", &name, HOTPLUG);
    let want = if how == Removal::DeviceDel {
        "ok added {name} on "
    } else {
        "ok added "
    };
    let want = want.replace("{name}", &name);
    t.check(
        matches!(&r, Ok(m) if m.starts_with(&want)),
        &format!(
            "2: device_add of {name} on a fresh model process (after {})",
            how.how()
        ),
        format_args!("{r:?}"),
    );
    t.diag(format_args!("2: {}", r.as_deref().unwrap_or("?")));
    let t3 = Instant::now();
    let r = wait_new_device(&old, Duration::from_secs(60)).and_then(|c| local_copy_works(&c, 6));
    t.check(
        r.is_ok(),
        &format!("2: {name} probes again and runs a COPY, data checked"),
        format_args!("{r:?}"),
    );
    t.diag(format_args!(
        "2: re-added device usable {} ms after device_add returned",
        t3.elapsed().as_millis()
    ));
}

/// The loss and removal of part 2. Returns C's name and how it was removed, after closing
/// everything it had open on C (checked not to hang).
fn part2_lose(t: &mut Tap, a_dev: &PciDev, c_dev: &PciDev) -> Option<(String, Removal)> {
    let started = Instant::now();
    let removed =
        part2_lose_with_objects(t, a_dev, c_dev).map(|(name, how, at)| (name, how, at.elapsed()));
    let (name, how, closing) = removed?;
    t.check(
        closing < T,
        "2: closing C's objects and file after the removal does not hang",
        format_args!("{closing:?}"),
    );
    t.diag(format_args!(
        "2: part 1 up to here took {} ms",
        started.elapsed().as_millis()
    ));
    Some((name, how))
}

/// Returns C's name, how it was removed and when its objects started to be closed (when it
/// returns).
fn part2_lose_with_objects(
    t: &mut Tap,
    a_dev: &PciDev,
    c_dev: &PciDev,
) -> Option<(String, Removal, Instant)> {
    let (Some(a), Some(c)) = (open(t, a_dev, "A"), open(t, c_dev, "C")) else {
        return None;
    };
    let name = name_of(&c);
    let index = c.info().serial.saturating_sub(1);
    // C's buffer with a CPU mapping.
    let mapped = got(
        t,
        vram_with(&c, &pattern(1, LEN), BufferFlags::NONE),
        "2: C's buffer",
    )?;
    let map = got(t, s(mapped.map()), "2: C's buffer mapped")?;
    let setup = (|| {
        // C's buffer imported by A (through system memory: no P2P path between them).
        let cexp = vram_with(&c, &pattern(2, LEN), BufferFlags::NONE)?;
        let a_imp = s(a.import(s(cexp.export())?))?;
        holds(&a, &a_imp, &pattern(2, LEN))?;
        // A's buffer imported by C.
        let aexp = vram_with(&a, &pattern(3, LEN), BufferFlags::NONE)?;
        let c_imp = s(c.import(s(aexp.export())?))?;
        holds(&c, &c_imp, &pattern(3, LEN))?;
        Ok::<_, String>((cexp, a_imp, aexp, c_imp))
    })();
    let (_cexp, a_imp, aexp, _c_imp) = got(
        t,
        setup,
        "2: A imports a buffer of C and C one of A; data checked both ways",
    )?;
    let r = map.read_vec(0, 64);
    t.check(
        matches!(&r, Ok(v) if v[..] == pattern(1, LEN)[..64]),
        "2: C's CPU mapping reads its data",
        format_args!("{r:?}"),
    );

    // A job pending on C: its copy engine hangs (the hang is never detected: the device is
    // lost first).
    let vm = s(Vm::create(&c));
    let dst = vram_with(&c, &pattern(4, LEN), BufferFlags::NONE);
    let (Ok(vm), Ok(dst)) = (vm, dst) else {
        t.check(false, "2: C's VM and buffer", "");
        return None;
    };
    let q = s(Queue::create(&vm));
    let bd = s(vm.bind_auto(&dst, Access::READ_WRITE));
    let (Ok(q), Ok(bd)) = (q, bd) else {
        t.check(false, "2: C's queue and binding", "");
        return None;
    };
    let hung = inject(&format!("dev={index} hang-engine=copy"));
    let job = s(q.submit(&[Command::fill(bd.va(), 7, LEN)]));
    let pending = job
        .as_ref()
        .map(|j| matches!(j.wait(Duration::ZERO), Ok(WaitStatus::TimedOut)));
    t.check(
        hung.is_ok() && matches!(pending, Ok(true)),
        "2: C has a job pending (its engine hung)",
        format_args!("{hung:?} {pending:?}"),
    );

    let killed = harness("kill-model", &name, T);
    let t0 = Instant::now();
    t.check(
        killed.is_ok(),
        &format!("2: kill {name}'s model process"),
        format_args!("{killed:?}"),
    );
    t.diag(format_args!("2: {}", killed.as_deref().unwrap_or("?")));

    if let Ok(job) = &job {
        let r = job.wait(T);
        let took = t0.elapsed();
        t.check(
            errno_of(&r) == Some(libc::ENODEV) && took <= LOSS_BOUND,
            &format!("2: the pending job fails with ENODEV within {LOSS_BOUND:?}"),
            format_args!("{r:?} after {took:?}"),
        );
        t.diag(format_args!(
            "2: the pending job failed {} ms after the kill",
            took.as_millis()
        ));
    }
    let r = q.submit(&[Command::fill(bd.va(), 8, LEN)]).map(|_| ());
    t.check(
        errno_of(&r) == Some(libc::ENODEV),
        "2: a new SUBMIT on C fails with ENODEV",
        format_args!("{r:?}"),
    );
    let r = probe_read(map.as_ptr());
    t.check(
        matches!(r, Ok(Some(libc::SIGBUS))),
        "2: a read of C's CPU mapping raises SIGBUS",
        format_args!("{r:?} (Some(signal) killed the reader, None: it read)"),
    );
    let r = import_revoked(&a, &a_imp);
    t.check(
        r.is_ok(),
        "2: A's COPY out of its import of C's buffer fails cleanly (revoked)",
        format_args!("{r:?}"),
    );
    if let Ok(how) = &r {
        t.diag(format_args!("2: {how}"));
    }
    let r = local_copy_works(&a, 5);
    t.check(
        r.is_ok(),
        "2: A runs a COPY, data checked",
        format_args!("{r:?}"),
    );
    let r = holds(&a, &aexp, &pattern(3, LEN));
    t.check(
        r.is_ok(),
        "2: A's buffer that C imported still holds its data",
        format_args!("{r:?}"),
    );

    // Hot-remove the dead device with all of the above still open: unbind must not wait for
    // a device that never answers.
    let t1 = Instant::now();
    let (how, r) = hot_remove(t, 2, &name, c_dev);
    t.check(
        r.is_ok() && !c_dev.sysfs.exists(),
        &format!(
            "2: removing {name} (dead) with {} completes and the function is gone",
            how.how()
        ),
        format_args!("{r:?} after {:?}", t1.elapsed()),
    );
    t.diag(format_args!(
        "2: the removal ({}) took {} ms",
        how.how(),
        t1.elapsed().as_millis()
    ));
    // Everything of the removed device is closed on return, in the reverse order of creation.
    Some((name, how, Instant::now()))
}

/// Records whether a setup step worked and returns its value if it did.
fn got<T>(t: &mut Tap, r: Result<T, String>, desc: &str) -> Option<T> {
    match r {
        Ok(v) => {
            t.check(true, desc, "");
            Some(v)
        }
        Err(e) => {
            t.check(false, desc, e);
            None
        }
    }
}

/// What the worker thread of part 1 saw: jobs that completed, and the error that ended it.
struct Worked {
    ok: u64,
    end: Option<Error>,
    at: Instant,
}

/// Runs FILL jobs on `dev` back to back until one fails or `stop` is set.
fn worker(dev: &Device, stop: &AtomicBool) -> Worked {
    let mut ok = 0;
    let run = |ok: &mut u64| -> vela_runtime::Result<()> {
        let vm = Vm::create(dev)?;
        let bo = Buffer::create(dev, 4 << 20, BufferFlags::VRAM)?;
        let b = vm.bind_auto(&bo, Access::READ_WRITE)?;
        let q = Queue::create(&vm)?;
        let fills: Vec<Command> = (0..16u32)
            .map(|k| Command::fill(b.va(), k, 4 << 20))
            .collect();
        while !stop.load(Ordering::Relaxed) {
            q.run(&fills, T)?;
            *ok += 1;
        }
        Ok(())
    };
    let end = run(&mut ok).err();
    Worked {
        ok,
        end,
        at: Instant::now(),
    }
}

/// Part 1: B, alive, is hot-removed with jobs running; then added again.
fn part1_remove(t: &mut Tap, a_dev: &PciDev, b_dev: &PciDev, c_dev: &PciDev) {
    let Some(a) = open(t, a_dev, "A") else {
        return;
    };
    let Some((name, how, at)) = part1_lose_with_objects(t, &a, b_dev, c_dev) else {
        return;
    };
    let closing = at.elapsed();
    t.check(
        closing < T,
        "1: closing B's objects and file after the removal does not hang",
        format_args!("{closing:?}"),
    );
    if how == Removal::DeviceDel {
        part1_add(t, &a, &name);
        return;
    }
    // B is still in QEMU, alive: a rescan finds it again.
    let r = std::fs::write("/sys/bus/pci/rescan", "1");
    t.check(
        r.is_ok() && b_dev.sysfs.exists(),
        &format!("1: a bus rescan finds {name}'s function again"),
        format_args!("{r:?}, {} exists: {}", b_dev.bdf, b_dev.sysfs.exists()),
    );
    // Its BAR2 must be placed again, inside the switch's 64-bit window. In this VM that
    // window lies in a range the firmware's e820 map reserves (QEMU's AMD HyperTransport
    // hole, 0xfd00000000-0xffffffffff, with `-cpu max`), which the kernel never allocates
    // from after boot: the BAR stays unassigned and the driver refuses the device at probe
    // (EINVAL, "not a usable Vela device"), as it must. Checked only when the BAR was placed.
    let bar2 = std::fs::read_to_string(b_dev.sysfs.join("resource"))
        .ok()
        .and_then(|r| r.lines().nth(2).map(str::to_string))
        .and_then(|l| {
            let mut w = l
                .split_whitespace()
                .map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok());
            let (start, end) = (w.next()??, w.next()??);
            Some(if end > start { end - start + 1 } else { 0 })
        })
        .unwrap_or(0);
    if bar2 == 0 {
        t.skip(
            &format!("1: {name} probes again, runs a COPY and imports A's buffer"),
            "BAR2 unassigned after the rescan (the switch window is in an e820-reserved range)",
        );
        let node = b_dev.node();
        t.check(
            node.is_err(),
            &format!("1: the driver refuses {name} without its BAR2 (no accel node)"),
            format_args!("{node:?}"),
        );
        return;
    }
    let r = wait_probed(&b_dev.bdf, Duration::from_secs(60)).and_then(|b| works_with(&a, &b));
    t.check(
        r.is_ok(),
        &format!("1: {name} probes again, runs a COPY and imports A's buffer, data checked"),
        format_args!("{r:?}"),
    );
}

/// A device that came back runs a COPY and imports A's buffer peer-to-peer, data checked.
fn works_with(a: &Device, b: &Device) -> Result<(), String> {
    local_copy_works(b, 17)?;
    let src = vram_with(a, &pattern(18, LEN), BufferFlags::NONE)?;
    let imp = s(b.import(s(src.export())?))?;
    holds(b, &imp, &pattern(18, LEN))
}

/// B comes back after its device_del: QEMU adds it again on its own port (its model process
/// serves it again), the guest's acpiphp finds it, the driver probes it, and it works with A
/// peer-to-peer as before.
fn part1_add(t: &mut Tap, a: &Device, name: &str) {
    let old = vela_bdfs();
    let t0 = Instant::now();
    let r = harness("device-add", name, HOTPLUG);
    t.check(
        matches!(&r, Ok(m) if m.starts_with(&format!("ok added {name} on "))),
        &format!("1: device_add of {name} on its own port"),
        format_args!("{r:?}"),
    );
    t.diag(format_args!("1: {}", r.as_deref().unwrap_or("?")));
    let r = wait_new_device(&old, Duration::from_secs(60)).and_then(|b| {
        t.diag(format_args!(
            "1: {name} probed {} ms after device_add began",
            t0.elapsed().as_millis()
        ));
        works_with(a, &b)
    });
    t.check(
        r.is_ok(),
        &format!("1: {name} probes again, runs a COPY and imports A's buffer, data checked"),
        format_args!("{r:?}"),
    );
}

/// The removal of part 1. Returns B's name once removed, how, and when its objects started
/// to be closed (when it returns).
fn part1_lose_with_objects(
    t: &mut Tap,
    a: &Device,
    b_dev: &PciDev,
    c_dev: &PciDev,
) -> Option<(String, Removal, Instant)> {
    let (Some(b), Some(c)) = (open(t, b_dev, "B"), open(t, c_dev, "C")) else {
        return None;
    };
    let name = name_of(&b);
    let mapped = got(
        t,
        vram_with(&b, &pattern(11, LEN), BufferFlags::NONE),
        "1: B's buffer",
    )?;
    let map = got(t, s(mapped.map()), "1: B's buffer mapped")?;
    let setup = (|| {
        // B's buffer imported by A, peer-to-peer.
        let bexp = vram_with(&b, &pattern(12, LEN), BufferFlags::NONE)?;
        let a_imp = s(a.import(s(bexp.export())?))?;
        holds(a, &a_imp, &pattern(12, LEN))?;
        // A's buffer imported by B.
        let aexp = vram_with(a, &pattern(13, LEN), BufferFlags::NONE)?;
        let b_imp = s(b.import(s(aexp.export())?))?;
        holds(&b, &b_imp, &pattern(13, LEN))?;
        Ok::<_, String>((bexp, a_imp, aexp, b_imp))
    })();
    let (_bexp, a_imp, aexp, _b_imp) = got(
        t,
        setup,
        "1: A imports a buffer of B (P2P) and B one of A; data checked both ways",
    )?;
    // An import A has of the third device, which must keep working.
    let other = (|| {
        let cexp = vram_with(&c, &pattern(14, LEN), BufferFlags::NONE)?;
        let imp = s(a.import(s(cexp.export())?))?;
        holds(a, &imp, &pattern(14, LEN))?;
        Ok::<_, String>((cexp, imp))
    })();
    t.check(
        other.is_ok(),
        "1: A imports a buffer of C",
        format_args!("{:?}", other.as_ref().err()),
    );

    let stop = AtomicBool::new(false);
    let (del, worked) = std::thread::scope(|sc| {
        let w = sc.spawn(|| worker(&b, &stop));
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        let (how, del) = hot_remove(t, 1, &name, b_dev);
        let del = del.map(|r| (r, t0, Instant::now()));
        stop.store(true, Ordering::Relaxed);
        ((how, del), w.join())
    });
    let (how, del) = del;
    t.check(
        del.is_ok() && !b_dev.sysfs.exists(),
        &format!(
            "1: removing {name} (live, jobs running) with {} completes and the function is gone",
            how.how()
        ),
        format_args!("{:?}", del.as_ref().map(|d| &d.0)),
    );
    match (&del, &worked) {
        (Ok((_, t0, done)), Ok(w)) => {
            t.check(
                w.ok > 0 && w.end.as_ref().and_then(|e| e.errno()) == Some(libc::ENODEV),
                "1: B's jobs ran until the removal, whose call then failed with ENODEV",
                format_args!("{} jobs, then {:?}", w.ok, w.end),
            );
            t.diag(format_args!(
                "1: the removal took {} ms; the worker stopped {} ms after it began, after {} jobs",
                done.duration_since(*t0).as_millis(),
                w.at.saturating_duration_since(*t0).as_millis(),
                w.ok
            ));
        }
        _ => {
            t.check(
                false,
                "1: B's worker",
                format_args!("{:?}", worked.as_ref().map(|w| w.ok)),
            );
        }
    }
    let r = probe_read(map.as_ptr());
    t.check(
        matches!(r, Ok(Some(libc::SIGBUS))),
        "1: a read of B's CPU mapping raises SIGBUS",
        format_args!("{r:?}"),
    );
    let r = Vm::create(&b).map(|_| ());
    t.check(
        errno_of(&r) == Some(libc::ENODEV),
        "1: a new ioctl on B's open file fails with ENODEV",
        format_args!("{r:?}"),
    );
    let r = import_revoked(a, &a_imp);
    t.check(
        r.is_ok(),
        "1: A's COPY out of its P2P import of B's buffer fails cleanly (revoked)",
        format_args!("{r:?}"),
    );
    if let Ok(how) = &r {
        t.diag(format_args!("1: {how}"));
    }
    if let Ok((_, imp)) = &other {
        let r = holds(a, imp, &pattern(14, LEN));
        t.check(
            r.is_ok(),
            "1: A's import of C's buffer still works, data checked",
            format_args!("{r:?}"),
        );
    }
    let r = local_copy_works(a, 15);
    t.check(
        r.is_ok(),
        "1: A runs a COPY, data checked",
        format_args!("{r:?}"),
    );
    let r = holds(a, &aexp, &pattern(13, LEN));
    t.check(
        r.is_ok(),
        "1: A's buffer that B imported still holds its data",
        format_args!("{r:?}"),
    );
    let r = local_copy_works(&c, 16);
    t.check(
        r.is_ok(),
        "1: C runs a COPY, data checked",
        format_args!("{r:?}"),
    );

    drop(map);
    Some((name, how, Instant::now()))
}

fn main() {
    let mut t = Tap::new();
    match p2p_topology() {
        Ok(topo) => {
            part1_remove(&mut t, &topo.a, &topo.b, &topo.c);
            // Look again: a re-added device may sit at another address.
            match p2p_topology() {
                Ok(topo) => part2_kill(&mut t, &topo.a, &topo.c),
                Err(e) => {
                    t.check(false, "2: the topology after part 1", e);
                }
            }
        }
        Err(e) => {
            t.check(false, "find the devices", e);
        }
    }
    t.finish();
}
