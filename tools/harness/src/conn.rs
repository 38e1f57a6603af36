// SPDX-License-Identifier: GPL-2.0

//! The vfio-user connections of a model process that `harness kill-model` kills, kept open
//! across the kill so that QEMU sees the server go away as an end of file, never as a
//! connection reset.
//!
//! Why: when the last reference to a Unix stream socket goes away while its receive queue
//! still holds data, Linux sets ECONNRESET on the peer (`unix_release_sock`), and the peer's
//! next read fails with it instead of returning 0. A model killed while a request of QEMU's
//! sits unread in its socket (an MMIO access of the guest's, sent just before the kill) does
//! exactly that. QEMU 11.1's vfio-user client then aborts: `vfio_user_recv_hdr()`
//! (hw/vfio-user/proxy.c:241, inlined into `vfio_user_recv`) calls
//! `error_setg_errno(errp, errno, "failed to read header")` after `qio_channel_readv_full()`
//! has already set `*errp` ("Unable to read from socket"), and `error_setv` asserts
//! `*errp == NULL`: the VM is gone. An end of file takes its `ret == 0` branch ("failed to
//! read header: EOF"), which sets the error once, and QEMU carries on with a dead device, as
//! the device-loss test wants.
//!
//! So before the kill the harness takes a copy of the model's end of each connection
//! (`pidfd_getfd`), which keeps the socket alive when the process dies; after it, the harness
//! shuts the socket for reading (QEMU's writes now fail with EPIPE, as to a dead process),
//! reads what the model never read, answers each request found there with an ENODEV error
//! (its sender in QEMU would otherwise wait `x-msg-timeout`, 5 s, for a reply, stalling the
//! guest's MMIO access that long), shuts the socket for writing (QEMU reads the replies, then
//! an end of file) and closes it with its receive queue empty.

use std::{
    fs,
    io::{self, Read, Write},
    net::Shutdown,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::{ffi::OsStrExt, net::UnixStream},
    },
    path::{Path, PathBuf},
    time::Duration,
};

/// The vfio-user message header (`struct vfio_user_header`): id, command, size, flags, error.
const HDR: usize = 16;
const TYPE_MASK: u32 = 0xf;
const TYPE_REQUEST: u32 = 0;
const TYPE_REPLY: u32 = 1;
const NO_REPLY: u32 = 0x10;
const ERROR: u32 = 0x20;
/// Commands are numbered from 1 (VERSION); anything far above the protocol's last is not a
/// header.
const MAX_COMMAND: u16 = 0x40;

/// `pidfd_open(pid)`.
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `pidfd_getfd(pidfd, fd)`: a copy of descriptor `fd` of the process (close-on-exec).
fn pidfd_getfd(pidfd: &OwnedFd, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags and returns a new
    // descriptor or -1; `pidfd` is open for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is new and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Whether a socket bound at `addr` is the one published at `path`: the model binds each
/// socket under a private name, `PATH.PID~`, and then links it to PATH (vela-model's
/// `server::bind_published`); the socket keeps the address it was bound at.
fn published_at(addr: &Path, path: &Path) -> bool {
    if addr == path {
        return true;
    }
    let (addr, path) = (addr.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    addr.strip_prefix(path)
        .and_then(|rest| rest.strip_prefix(b"."))
        .and_then(|rest| rest.strip_suffix(b"~"))
        .is_some_and(|pid| !pid.is_empty() && pid.iter().all(u8::is_ascii_digit))
}

/// Copies of process `pid`'s connected Unix stream sockets published at one of `paths`: the
/// server's end of each client connection accepted on those sockets (an accepted socket has
/// its listener's address; a listener has no peer).
pub(crate) fn hold(pid: u32, paths: &[PathBuf]) -> io::Result<Vec<UnixStream>> {
    let pidfd = pidfd_open(pid)?;
    let mut held = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd"))?.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        let is_socket = fs::read_link(e.path())
            .map(|l| l.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false);
        if !is_socket {
            continue;
        }
        let Ok(copy) = pidfd_getfd(&pidfd, fd) else {
            continue;
        };
        let s = UnixStream::from(copy);
        let ours = s
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .is_some_and(|a| paths.iter().any(|p| published_at(&a, p)));
        if ours && s.peer_addr().is_ok() {
            held.push(s);
        }
    }
    Ok(held)
}

/// Ends a held connection whose server process is dead (see the module's comment); returns
/// how many requests it answered with ENODEV.
pub(crate) fn end(s: UnixStream) -> usize {
    // From here on nothing more can arrive: what is queued is all there is.
    let _ = s.shutdown(Shutdown::Read);
    let mut unread = Vec::new();
    let _ = (&s).read_to_end(&mut unread);
    let replies = error_replies(&unread);
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = (&s).write_all(&replies);
    let _ = s.shutdown(Shutdown::Write);
    replies.len() / HDR
}

/// ENODEV error replies to the requests in `unread`, those that want one; none unless
/// `unread` is a sequence of whole requests (it is not if the model died halfway through
/// reading one).
fn error_replies(unread: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = unread;
    while !rest.is_empty() {
        if rest.len() < HDR {
            return Vec::new();
        }
        let u16_at = |i: usize| u16::from_le_bytes([rest[i], rest[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let (id, command, size, flags) = (u16_at(0), u16_at(2), u32_at(4) as usize, u32_at(8));
        if size < HDR
            || size > rest.len()
            || flags & TYPE_MASK != TYPE_REQUEST
            || !(1..=MAX_COMMAND).contains(&command)
        {
            return Vec::new();
        }
        if flags & NO_REPLY == 0 {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&command.to_le_bytes());
            out.extend_from_slice(&(HDR as u32).to_le_bytes());
            out.extend_from_slice(&(TYPE_REPLY | ERROR).to_le_bytes());
            out.extend_from_slice(&(libc::ENODEV as u32).to_le_bytes());
        }
        rest = &rest[size..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn request(id: u16, command: u16, payload: usize, flags: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&command.to_le_bytes());
        m.extend_from_slice(&((HDR + payload) as u32).to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.resize(HDR + payload, 0xab);
        m
    }

    #[test]
    fn replies_to_whole_requests_that_want_one() {
        let mut unread = request(7, 9, 16, 0);
        unread.extend(request(8, 10, 8, NO_REPLY));
        let r = error_replies(&unread);
        assert_eq!(r.len(), HDR);
        assert_eq!(u16::from_le_bytes([r[0], r[1]]), 7);
        assert_eq!(u16::from_le_bytes([r[2], r[3]]), 9);
        assert_eq!(
            u32::from_le_bytes(r[8..12].try_into().unwrap()),
            TYPE_REPLY | ERROR
        );
        assert_eq!(
            u32::from_le_bytes(r[12..16].try_into().unwrap()),
            libc::ENODEV as u32
        );
        // The model read part of the first request: nothing can be trusted.
        assert!(error_replies(&unread[4..]).is_empty());
        assert!(error_replies(&unread[..unread.len() - 1]).is_empty());
        assert!(error_replies(&[]).is_empty());
    }

    #[test]
    fn knows_a_socket_by_its_private_name() {
        let p = Path::new("/run/x/vela2-1.sock");
        assert!(published_at(p, p));
        assert!(published_at(Path::new("/run/x/vela2-1.sock.4242~"), p));
        assert!(!published_at(Path::new("/run/x/vela2-1.sock.~"), p));
        assert!(!published_at(Path::new("/run/x/vela2-1.sock.42"), p));
        assert!(!published_at(Path::new("/run/x/vela2-1.sock2.42~"), p));
        assert!(!published_at(Path::new("/run/x/control-vela2-1.sock"), p));
    }

    /// A listener and one accepted connection, the client's end first.
    fn pair(tag: &str) -> (UnixStream, UnixStream, UnixListener, PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "vela-harness-conn-{tag}-{}.sock",
            std::process::id()
        ));
        let _ = fs::remove_file(&path);
        // Bound under a private name, then published, as the model does.
        let private = PathBuf::from(format!("{}.{}~", path.display(), std::process::id()));
        let l = UnixListener::bind(&private).unwrap();
        fs::hard_link(&private, &path).unwrap();
        fs::remove_file(&private).unwrap();
        let client = UnixStream::connect(&path).unwrap();
        let (server, _) = l.accept().unwrap();
        (client, server, l, path)
    }

    /// What trips QEMU: a server that dies with a request unread resets its client.
    #[test]
    fn a_server_gone_with_data_unread_resets_its_client() {
        let (mut client, server, l, path) = pair("reset");
        client.write_all(&request(1, 9, 16, 0)).unwrap();
        drop(server);
        drop(l);
        let e = client.read(&mut [0u8; 64]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
        let _ = fs::remove_file(path);
    }

    /// The same death with the connection held: the client reads an error reply to its
    /// request, then an end of file; its writes fail with EPIPE.
    #[test]
    fn a_held_connection_ends_with_replies_then_eof() {
        let (mut client, server, l, path) = pair("held");
        client.write_all(&request(5, 9, 16, 0)).unwrap();
        let held = hold(std::process::id(), std::slice::from_ref(&path)).unwrap();
        // Only the accepted end: not the listener, not the client's end.
        assert_eq!(held.len(), 1);
        drop(server);
        drop(l);
        assert_eq!(held.into_iter().map(end).sum::<usize>(), 1);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), HDR);
        assert_eq!(u16::from_le_bytes([got[0], got[1]]), 5);
        assert_eq!(
            u32::from_le_bytes(got[8..12].try_into().unwrap()),
            TYPE_REPLY | ERROR
        );
        let e = client.write_all(&request(6, 9, 0, 0)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
        let _ = fs::remove_file(path);
    }
}
