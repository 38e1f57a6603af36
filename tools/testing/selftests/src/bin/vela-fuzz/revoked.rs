// SPDX-License-Identifier: GPL-2.0

//! Surviving a revoked mapping, when the caller says revocations happen under the fuzzer.
//!
//! Unbinding a device revokes every CPU mapping of its VRAM and of its exports: a later access
//! gets SIGBUS, as `Documentation/uapi.rst` says it must. `make soak` unbinds devices while
//! the fuzzers map and touch buffers, so there a SIGBUS is the documented outcome, not a
//! crash. With `VELA_FUZZ_REVOKED_MAPS_OK=1` (which `vela-soak` sets, and children inherit),
//! a SIGBUS replaces the faulting page with an anonymous one, so the access completes on
//! memory nobody shares, and is counted; `vela-soak` then checks that every round that
//! counted one saw a device unbound. Without it a SIGBUS kills the fuzzer, as a fault nothing
//! revoked must.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The variable that turns it on.
pub const ENV: &str = "VELA_FUZZ_REVOKED_MAPS_OK";

static FAULTS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: an SA_SIGINFO handler gets a valid siginfo; a SIGBUS's carries the address.
    let addr = unsafe { (*info).si_addr() } as usize & !0xfff;
    // SAFETY: replaces one page at the faulting address with private anonymous memory;
    // mmap(2) is async-signal-safe. The mapping it splits belongs to the access that
    // faulted, which unmaps its whole range afterwards.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            0x1000,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        // SAFETY: nothing else can be done in a handler; the exit status says why.
        unsafe { libc::_exit(128 + libc::SIGBUS) };
    }
    FAULTS.fetch_add(1, Relaxed);
}

/// Installs the handler if [`ENV`] is `1`.
pub fn install() {
    if std::env::var(ENV).as_deref() == Ok("1") {
        install_handler();
    }
}

fn install_handler() {
    // SAFETY: a zeroed sigaction is valid; the handler only calls mmap and _exit and touches
    // an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

/// The line `vela-soak` reads: how many accesses hit a revoked mapping.
pub fn report() -> Option<String> {
    let n = FAULTS.load(Relaxed);
    (n > 0).then(|| format!("revoked-mapping faults: {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared mapping of a memfd that is then truncated faults with SIGBUS, as a revoked
    /// device mapping does: the access completes on the replacement page and is counted.
    #[test]
    fn an_access_to_a_truncated_mapping_survives_and_counts() {
        install_handler();
        // SAFETY: plain syscalls on a memfd of this test's own; the mapping is unmapped at
        // the end, and the volatile accesses stay inside it.
        unsafe {
            let fd = libc::memfd_create(c"revoked".as_ptr(), 0);
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, 0x2000), 0);
            let p = libc::mmap(
                std::ptr::null_mut(),
                0x2000,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let q = p.cast::<u64>().add(0x1000 / 8);
            q.write_volatile(7);
            assert_eq!(FAULTS.load(Relaxed), 0);
            assert_eq!(libc::ftruncate(fd, 0), 0);
            q.write_volatile(0x5a5a);
            assert_eq!(q.read_volatile(), 0x5a5a);
            assert_eq!(FAULTS.load(Relaxed), 1);
            assert_eq!(report().as_deref(), Some("revoked-mapping faults: 1"));
            libc::munmap(p, 0x2000);
            libc::close(fd);
        }
    }
}
