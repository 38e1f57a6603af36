// SPDX-License-Identifier: GPL-2.0
//! The `vela-model` binary as the harness runs it: sockets appear, clients
//! connect, the control socket answers, and the process exits 0 when every
//! client has gone.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::VFIO_PCI_BAR0_REGION_INDEX;
use vfio_user::Client;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("vela-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(mut child: Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("vela-model did not exit after the clients left");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serial(c: &mut Client) -> u32 {
    let mut b = [0; 4];
    c.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0xc, &mut b)
        .unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn contract_command_line_serves_and_exits_zero() {
    let sock = tmp("one.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_vela-model"))
        .args([
            "--socket",
            sock.to_str().unwrap(),
            "--vram-mib",
            "32",
            "--serial",
            "3",
            "--queues",
            "2",
        ])
        .spawn()
        .unwrap();
    wait_for(&sock);
    let mut c = Client::new(&sock).unwrap();
    assert_eq!(serial(&mut c), 3);
    drop(c);
    assert_eq!(wait_exit(child), 0);
    assert!(!sock.exists(), "the socket is removed on exit");
}

#[test]
fn several_devices_and_the_control_socket() {
    let (a, b, ctl) = (tmp("a.sock"), tmp("b.sock"), tmp("ctl.sock"));
    let child = Command::new(env!("CARGO_BIN_EXE_vela-model"))
        .arg("--device")
        .arg(format!("socket={},vram-mib=16,serial=10", a.display()))
        .arg("--device")
        .arg(format!("socket={},vram-mib=16,serial=11", b.display()))
        .args(["--control", ctl.to_str().unwrap(), "--inject", "drop-irq=2"])
        .spawn()
        .unwrap();
    for p in [&a, &b, &ctl] {
        wait_for(p);
    }
    let mut ca = Client::new(&a).unwrap();
    let mut cb = Client::new(&b).unwrap();
    assert_eq!((serial(&mut ca), serial(&mut cb)), (10, 11));

    let s = UnixStream::connect(&ctl).unwrap();
    let mut out = s.try_clone().unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut ask = |q: &str| {
        writeln!(out, "{q}").unwrap();
        lines.next().unwrap().unwrap()
    };
    assert_eq!(ask("devices"), "ok 2");
    assert!(ask("dev=1 status").contains("serial=11"));
    assert!(ask("status").contains("drop-irq=2"));
    assert_eq!(ask("dev=1 hang-engine=copy"), "ok");
    assert!(ask("dev=1 status").contains("hang-copy=1"));
    assert!(ask("nonsense").starts_with("error"));

    drop(ca);
    drop(cb);
    assert_eq!(wait_exit(child), 0);
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vela-model"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_fail() {
    // Usage errors exit 2 and name the bad argument.
    let (code, _, err) = run(&["--vram-mib", "3"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run(&["--socket", "/nonexistent/v.sock", "--vram-mib", "3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--vram-mib"), "{err}");
    let (code, _, err) = run(&["bench", "--bogus"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--bogus"), "{err}");
    // --help and --version print on stdout and exit 0, for bench too.
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("--socket PATH"), "{out}");
    let (code, out, _) = run(&["bench", "--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("--vram-mib"), "{out}");
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("vela-model "), "{out}");
}

#[test]
fn stale_socket_is_replaced_and_sigterm_cleans_up() {
    let sock = tmp("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists(), "a socket file left by a dead process");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vela-model"))
        .args(["--socket", sock.to_str().unwrap()])
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut c = loop {
        if let Ok(c) = Client::new(&sock) {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "model never listened"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(serial(&mut c), 1);
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(!sock.exists());
}
