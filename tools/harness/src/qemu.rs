// SPDX-License-Identifier: GPL-2.0

//! The QEMU binary the VMs run, and whether `device_del` of a Vela device is safe with it.
//!
//! QEMU 11.1.3 aborts when it finalizes a deleted vfio-user-pci device that has MSI-X (every
//! Vela device): `vfio_user_instance_finalize()` (hw/vfio-user/pci.c) calls
//! `vfio_user_msix_teardown()`, which deletes the PBA region it overlaid on the PBA's BAR with
//! `memory_region_del_subregion()`. By then `object_finalize()` has already deleted the
//! device's child properties, the BAR's MemoryRegion among them, whose finalization deleted
//! its subregions, the PBA too: `assert(subregion->container == mr)` fails
//! (system/memory.c:2617). Nothing the device or
//! the command line chooses avoids it (Documentation/testing.rst, "Device loss"). The fix is
//! to drop that call, as upstream's "vfio-user: Do not delete the subregion" does.
//!
//! Rebuilding QEMU costs too much of a fresh machine's time, so the harness runs a copy of the
//! build root's binary with that one call replaced by a NOP, and only for the exact build it
//! was checked on (its build ID and the instructions around the call). Any other build runs
//! unchanged, and the harness refuses `device-del` with it rather than lose the VM.
//! `VELA_QEMU_AS_IS=1` runs the build root's binary unchanged whatever its build.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::Paths;

/// GNU build ID of Debian's qemu-system-x86 1:11.1.3+ds-2~bpo13+1 (amd64).
const BUILD_ID: &str = "810ae71aa636827f277f2f28e27aae958a1be28a";

/// File offset (equal to the address: .text is mapped at its offset) of the inlined
/// teardown's `call memory_region_del_subregion` in `vfio_user_instance_finalize`.
const CALL_AT: usize = 0x8282eb;

/// The bytes at `CALL_AT - 8`: `mov 0xcb0(%rbx,%rax,8),%rdi` (the PBA BAR's
/// MemoryRegion), the call, `mov 0xc68(%rbx),%rax` (vdev->msix, for the g_free that stays).
const AROUND: &str = "488bbcc3b00c0000e8c05f0600488b83680c0000";

/// A 5-byte NOP (`nopl 0x0(%rax,%rax,1)`) in place of the call.
const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

/// What the VMs run.
pub(crate) struct Qemu {
    /// The binary, as a path inside the build root.
    pub(crate) exe: String,
    /// Whether `device_del` of a vfio-user-pci device leaves QEMU running; why not if not.
    pub(crate) device_del: Result<(), String>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

/// The GNU build ID note's descriptor, if the binary has one.
fn build_id(elf: &[u8]) -> Option<String> {
    // namesz 4, descsz 20, type NT_GNU_BUILD_ID (3), "GNU\0".
    let head = hex("040000001400000003000000474e5500");
    let at = elf.windows(head.len()).position(|w| w == head)? + head.len();
    let id = elf.get(at..at + 20)?;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

fn prepare(paths: &Paths) -> Qemu {
    let unchanged = |why: String| Qemu {
        exe: "qemu-system-x86_64".into(),
        device_del: Err(why),
    };
    if std::env::var("VELA_QEMU_AS_IS").is_ok_and(|v| v == "1") {
        return unchanged(
            "VELA_QEMU_AS_IS=1: QEMU as the build root has it, which may abort \
             on device_del of a vfio-user-pci device"
                .into(),
        );
    }
    let src = paths.root.join("usr/bin/qemu-system-x86_64");
    let mut elf = match std::fs::read(&src) {
        Ok(b) => b,
        Err(e) => return unchanged(format!("{}: {e}", src.display())),
    };
    let id = build_id(&elf).unwrap_or_default();
    let around = hex(AROUND);
    let start = CALL_AT - 8;
    if id != BUILD_ID || elf.get(start..start + around.len()) != Some(&around[..]) {
        return unchanged(format!(
            "QEMU build {id} is not the one checked ({BUILD_ID}); it aborts on device_del of \
             a vfio-user-pci device (Documentation/testing.rst, \"Device loss\")"
        ));
    }
    elf[CALL_AT..CALL_AT + NOP5.len()].copy_from_slice(&NOP5);
    // Named as the original, so that QEMU's messages read the same.
    let dir = paths.work.join(format!("qemu/{BUILD_ID}-devdel"));
    let dst: PathBuf = dir.join("qemu-system-x86_64");
    // Written under a name of its own, then renamed: runs of other work trees share it.
    let tmp = dir.join(format!(".new-{}", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, &elf))
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        })
        .and_then(|()| std::fs::rename(&tmp, &dst));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return unchanged(format!("{}: {e}", dst.display()));
    }
    Qemu {
        exe: paths.in_root(&dst).display().to_string(),
        device_del: Ok(()),
    }
}

/// The QEMU of this run, prepared once.
pub(crate) fn get(paths: &Paths) -> &'static Qemu {
    static QEMU: OnceLock<Qemu> = OnceLock::new();
    QEMU.get_or_init(|| prepare(paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_is_read_from_its_note() {
        let mut elf = vec![0u8; 7];
        elf.extend(hex("040000001400000003000000474e5500"));
        elf.extend(hex(BUILD_ID));
        elf.extend([1, 2, 3]);
        assert_eq!(build_id(&elf).as_deref(), Some(BUILD_ID));
        assert_eq!(build_id(&elf[..20]), None);
    }

    #[test]
    fn the_patch_replaces_exactly_the_call() {
        let around = hex(AROUND);
        // The call is the 5 bytes 8 into AROUND: e8 and a 32-bit displacement.
        assert_eq!(around[8], 0xe8);
        assert_eq!(around.len(), 8 + 5 + 7);
    }
}
