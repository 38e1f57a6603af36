// SPDX-License-Identifier: GPL-2.0

//! Load, probe, unbind/bind and unload/reload of vela.ko, checked through sysfs, the accel
//! node and the QUERY ioctl after every step.

use std::{fs, path::Path};

use vela_selftests::{accel_node, expect, run, vela_pci_devices, Tap};

const CYCLES: usize = 3;
const DRIVER: &str = "/sys/bus/pci/drivers/vela";

fn module_path() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/run/vela/vela.ko".into())
}

fn bound_to_vela(pci: &Path) -> bool {
    fs::read_link(pci.join("driver"))
        .map(|l| l.file_name().is_some_and(|n| n == "vela"))
        .unwrap_or(false)
}

/// Every Vela device is bound and answers QUERY with the serial the model was given.
fn all_working(devs: &[std::path::PathBuf]) -> Result<(), String> {
    for d in devs {
        if !bound_to_vela(d) {
            return Err(format!("{} not bound to vela", d.display()));
        }
        let node = accel_node(d).map_err(|e| format!("{}: {e}", d.display()))?;
        let f = fs::File::open(&node).map_err(|e| format!("{}: {e}", node.display()))?;
        let q =
            vela_uapi::query_device(&f).map_err(|e| format!("QUERY on {}: {e}", node.display()))?;
        if q.vendor_id != u32::from(vela_uapi::PCI_VENDOR_VELA) {
            return Err(format!("QUERY vendor {:#x}", q.vendor_id));
        }
    }
    Ok(())
}

/// Sum of the per-CPU counts of the /proc/interrupts line named `name`, if there is one.
fn interrupt_count(name: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/interrupts").ok()?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().last() == Some(name))?;
    Some(
        line.split_whitespace()
            .skip(1)
            .map_while(|w| w.parse::<u64>().ok())
            .sum(),
    )
}

fn main() {
    let mut t = Tap::new();
    let devs = vela_pci_devices().unwrap_or_default();
    let want = expect("DEVICES").unwrap_or(1) as usize;
    t.eq(
        devs.len(),
        want,
        "the Vela PCI functions the model serves are enumerated",
    );
    let Some(first) = devs.first().cloned() else {
        t.finish();
    };
    t.eq(
        fs::read_to_string(first.join("class"))
            .unwrap_or_default()
            .trim(),
        format!("{:#08x}", vela_hw::pci::CLASS_CODE).as_str(),
        "class is processing accelerator",
    );

    let ko = module_path();
    t.ok(run("insmod", &[&ko]), "insmod vela.ko");
    t.check(
        Path::new("/sys/module/vela").exists(),
        "module is live",
        "no /sys/module/vela",
    );
    t.check(
        devs.iter().all(|d| bound_to_vela(d)),
        "every Vela device is bound",
        "unbound device",
    );
    let node = accel_node(&first);
    t.check(
        node.is_ok(),
        "accel node registered in sysfs",
        format_args!("{node:?}"),
    );
    let is_chr = node
        .as_ref()
        .ok()
        .and_then(|n| fs::metadata(n).ok())
        .is_some_and(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()));
    t.check(
        is_chr,
        "/dev/accel/accelN is a character device",
        format_args!("{node:?}"),
    );
    let r = all_working(&devs);
    t.check(r.is_ok(), "QUERY answers after load", format_args!("{r:?}"));
    // Probe refuses a device whose MSI-X self-test interrupt does not arrive, and the message
    // must have been counted on the queue 0 vector.
    let q0 = interrupt_count("vela-queue0");
    t.check(
        q0.is_some_and(|n| n >= 1),
        "MSI-X: the self-test interrupt reached vela-queue0",
        format_args!("{q0:?}"),
    );
    let errs = interrupt_count("vela-errors");
    t.eq(
        errs,
        Some(0),
        "MSI-X: error vector registered, no error raised",
    );

    let bdf = first
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for i in 0..CYCLES {
        let unbound = fs::write(format!("{DRIVER}/unbind"), &bdf).is_ok()
            && !bound_to_vela(&first)
            && accel_node(&first).is_err();
        let rebound =
            fs::write(format!("{DRIVER}/bind"), &bdf).is_ok() && all_working(&devs).is_ok();
        t.check(
            unbound && rebound,
            &format!(
                "unbind/bind cycle {}: node goes away and comes back working",
                i + 1
            ),
            format_args!(
                "unbound {unbound} rebound {rebound}: {:?}",
                all_working(&devs)
            ),
        );
    }

    // Unbind revokes CPU mappings of VRAM: a process that keeps one and touches it after the
    // device went away gets SIGBUS instead of reaching memory the next owner will use.
    let revoked = (|| -> Result<bool, String> {
        let dev = vela_runtime::Device::open(accel_node(&first).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let flags = vela_runtime::BufferFlags::VRAM | vela_runtime::BufferFlags::CPU_VISIBLE;
        let bo = vela_runtime::Buffer::create(&dev, 4096, flags).map_err(|e| e.to_string())?;
        let map = bo.map().map_err(|e| e.to_string())?;
        map.write_u32(0, 0x1234_5678).map_err(|e| e.to_string())?;
        fs::write(format!("{DRIVER}/unbind"), &bdf).map_err(|e| e.to_string())?;
        // SAFETY: the child only reads the mapping and exits; the parent waits for it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let _ = map.read_u32(0);
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let sigbus = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS;
        drop(map);
        drop(bo);
        drop(dev);
        fs::write(format!("{DRIVER}/bind"), &bdf).map_err(|e| e.to_string())?;
        Ok(sigbus)
    })();
    t.check(
        matches!(revoked, Ok(true)),
        "unbind revokes VRAM mappings: a later access gets SIGBUS",
        format_args!("{revoked:?}"),
    );
    let r = all_working(&devs);
    t.check(
        r.is_ok(),
        "the device works again after the rebind",
        format_args!("{r:?}"),
    );

    // An open file pins the module: unloading it now would leave the file pointing at freed
    // code, so rmmod must be refused while it is open, and work once it is closed.
    if let Ok(node) = accel_node(&first) {
        if let Ok(f) = fs::File::open(&node) {
            let busy = run("rmmod", &["vela"]);
            t.check(
                busy.is_err() && Path::new("/sys/module/vela").exists(),
                "rmmod with an accel file open is refused",
                format_args!("{busy:?}"),
            );
            let q = vela_uapi::query_device(&f);
            t.check(
                q.is_ok(),
                "the open file still works after the refused rmmod",
                format_args!("{q:?}"),
            );
        } else {
            t.check(false, "open the accel node", "failed");
        }
    }

    for i in 0..CYCLES {
        let removed = run("rmmod", &["vela"]);
        let gone =
            removed.is_ok() && !Path::new("/sys/module/vela").exists() && !bound_to_vela(&first);
        let loaded = run("insmod", &[&ko]);
        let back = loaded.is_ok() && all_working(&devs).is_ok();
        t.check(
            gone && back,
            &format!(
                "rmmod/insmod cycle {}: driver leaves and comes back working",
                i + 1
            ),
            format_args!(
                "rmmod {removed:?} insmod {loaded:?} working {:?}",
                all_working(&devs)
            ),
        );
    }

    // A second insmod of a loaded module must fail cleanly, not double-register.
    let again = run("insmod", &[&ko]);
    t.check(
        again.is_err(),
        "insmod of a loaded module is refused",
        "it succeeded",
    );
    let r = all_working(&devs);
    t.check(
        r.is_ok(),
        "devices still work after the refused insmod",
        format_args!("{r:?}"),
    );
    t.finish();
}
