//! Kernel-log splat detection.
//!
//! Each console record is classified by what its message *starts* with
//! (after the timestamp, and for a few markers after a `subsystem: ` prefix
//! such as `watchdog: BUG:` or `rcu: INFO:`). Anchoring is what keeps
//! `RETBleed: WARNING: Spectre v2 mitigation ...`, `traps: ... general
//! protection fault ... in libc.so` (a userspace crash) or a test named
//! `ok 3 - BUG: handling` from counting as kernel reports.
//!
//! When the log has printk timestamps, untimestamped lines are userspace
//! output and only count for kmemleak listings and Rust panics.
//!
//! One kernel event prints several headlines (`BUG: kernel NULL pointer
//! dereference`, `Oops: ...`, `Kernel panic - not syncing: Fatal exception`),
//! so headlines are either *starts*, which always open a new finding, or
//! *follow-ups*, which fold into the finding just before them when close
//! enough. A `Call Trace:` is only a finding of its own when no report or
//! benign dump (sysrq, `NMI backtrace for cpu`, `task:` state dumps) is still
//! printing, i.e. when something called `dump_stack()` on its own.

use std::fmt;

use super::line::{records, Record};

/// What kind of kernel report a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplatKind {
    /// `WARNING: CPU: ...` from `WARN()`, or a `cut here` with no headline.
    Warning,
    /// `BUG: ...` (other than KASAN), `kernel BUG at`, lockups.
    Bug,
    /// `Oops` without a preceding `BUG:` line.
    Oops,
    GeneralProtectionFault,
    /// `Kernel panic - not syncing` not caused by an earlier report.
    Panic,
    Kasan,
    /// `BUG: KFENCE: ...`: KFENCE's sampled out-of-bounds, use-after-free and corruption reports.
    Kfence,
    Ubsan,
    /// Lockdep and RCU-lockdep `WARNING:` reports.
    Lockdep,
    Kmemleak,
    RcuStall,
    HungTask,
    /// A stack dump outside any known report or benign dump.
    CallTrace,
    /// A Rust `panicked at`, in the kernel or in a guest program.
    RustPanic,
}

impl SplatKind {
    /// Stable short name, used in `kernel-log: <name>` test names.
    pub fn name(self) -> &'static str {
        match self {
            SplatKind::Warning => "warning",
            SplatKind::Bug => "bug",
            SplatKind::Oops => "oops",
            SplatKind::GeneralProtectionFault => "general-protection-fault",
            SplatKind::Panic => "kernel-panic",
            SplatKind::Kasan => "kasan",
            SplatKind::Kfence => "kfence",
            SplatKind::Ubsan => "ubsan",
            SplatKind::Lockdep => "lockdep",
            SplatKind::Kmemleak => "kmemleak",
            SplatKind::RcuStall => "rcu-stall",
            SplatKind::HungTask => "hung-task",
            SplatKind::CallTrace => "call-trace",
            SplatKind::RustPanic => "rust-panic",
        }
    }
}

impl fmt::Display for SplatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One kernel report that fails the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: SplatKind,
    /// 1-based line in the serial log of the report's headline.
    pub line: usize,
    /// The headline and up to [`EXCERPT_FOLLOWING`] records after it, with
    /// timestamps stripped.
    pub excerpt: String,
}

const EXCERPT_FOLLOWING: usize = 20;
/// `cut here` is printed immediately before the headline it belongs to.
const CUT_HERE_REACH: usize = 3;
/// `Oops`, `kernel BUG at` and `KASAN: null-ptr-deref` follow their
/// report's first headline within a few lines (after `#PF:`/`PGD` lines).
const FOLLOW_UP_REACH: usize = 20;
/// An Oops's panic comes after the register dump, the trace and a second
/// register dump.
const PANIC_REACH: usize = 200;
/// Lockdep reports with long dependency chains print their trace last.
const TRACE_CLAIM_REACH: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Start(SplatKind),
    FollowUp(SplatKind),
    CutHere,
    CallTrace,
    /// A dump that prints stack traces without anything being wrong.
    Opener,
    /// The end of a stack trace or of a report.
    Close,
    Nothing,
}

/// Finds every kernel report in a serial log that must fail the run.
pub fn find_splats(log: &str) -> Vec<Finding> {
    let recs = records(log);
    let mut scan = Scanner {
        recs: &recs,
        findings: Vec::new(),
        last_headline: 0,
        context: None,
        closed: false,
        pending_cut: None,
    };
    let has_timestamps = recs.iter().any(|r| r.timestamped);
    for (k, rec) in recs.iter().enumerate() {
        let mark = match classify(rec.body) {
            // Userspace may print `WARNING:` or `BUG:` as it likes; from it
            // only `cat /sys/kernel/debug/kmemleak` and Rust panics count.
            mark @ Mark::Start(SplatKind::Kmemleak | SplatKind::RustPanic) => mark,
            _ if has_timestamps && !rec.timestamped => Mark::Nothing,
            mark => mark,
        };
        scan.step(k, mark);
    }
    if let Some(cut) = scan.pending_cut.take() {
        scan.open(SplatKind::Warning, cut);
    }
    scan.findings
}

struct Scanner<'r, 'a> {
    recs: &'r [Record<'a>],
    findings: Vec<Finding>,
    /// Record index of the last headline folded into the last finding.
    last_headline: usize,
    /// Record index of the report or benign dump that is still printing.
    context: Option<usize>,
    /// Whether that report's stack trace has already ended.
    closed: bool,
    pending_cut: Option<usize>,
}

impl Scanner<'_, '_> {
    fn step(&mut self, k: usize, mark: Mark) {
        if let Some(cut) = self.pending_cut {
            if matches!(mark, Mark::Start(_) | Mark::FollowUp(_)) {
                self.pending_cut = None;
            } else if k > cut + CUT_HERE_REACH {
                self.pending_cut = None;
                self.open(SplatKind::Warning, cut);
            }
        }
        match mark {
            Mark::Start(kind) => {
                let same_kind_reach = match kind {
                    // A scan lists many objects; a stall reports per CPU.
                    SplatKind::Kmemleak => Some(40),
                    SplatKind::RcuStall => Some(PANIC_REACH),
                    _ => None,
                };
                let merge = same_kind_reach.is_some_and(|reach| {
                    self.findings.last().is_some_and(|f| f.kind == kind)
                        && k - self.last_headline <= reach
                });
                if merge {
                    self.fold(k);
                } else {
                    self.open(kind, k);
                }
            }
            Mark::FollowUp(kind) => {
                let merge = !self.findings.is_empty()
                    && if kind == SplatKind::Panic {
                        k - self.last_headline <= PANIC_REACH
                    } else {
                        !self.closed && k - self.last_headline <= FOLLOW_UP_REACH
                    };
                if merge {
                    self.fold(k);
                } else {
                    self.open(kind, k);
                }
            }
            Mark::CutHere => {
                if let Some(cut) = self.pending_cut.replace(k) {
                    self.open(SplatKind::Warning, cut);
                }
            }
            Mark::CallTrace => {
                let claimed = !self.closed
                    && self
                        .context
                        .is_some_and(|start| k - start <= TRACE_CLAIM_REACH);
                if !claimed {
                    let headline = self.dump_reason(k);
                    self.open(SplatKind::CallTrace, headline);
                    self.last_headline = k;
                    self.context = Some(k);
                }
            }
            Mark::Opener => {
                self.context = Some(k);
                self.closed = false;
            }
            Mark::Close => self.closed = true,
            Mark::Nothing => {}
        }
    }

    fn open(&mut self, kind: SplatKind, k: usize) {
        let limit = (k + 1 + EXCERPT_FOLLOWING).min(self.recs.len());
        // Stop at the report's own end marker rather than show what follows.
        let end = (k + 1..limit)
            .find(|&j| is_report_end(self.recs[j].body))
            .map_or(limit, |j| j + 1);
        let excerpt = self.recs[k..end]
            .iter()
            .map(|r| r.body)
            .collect::<Vec<_>>()
            .join("\n");
        self.findings.push(Finding {
            kind,
            line: self.recs[k].line,
            excerpt: excerpt.trim_end().to_string(),
        });
        self.fold(k);
    }

    fn fold(&mut self, k: usize) {
        self.last_headline = k;
        self.context = Some(k);
        self.closed = false;
    }

    /// A bare `dump_stack()` prints `CPU: ... Comm:` and `Hardware name:`
    /// before the trace; the line before those says why it was called, which
    /// makes a better headline than `Call Trace:`.
    fn dump_reason(&self, k: usize) -> usize {
        let header = (k.saturating_sub(5)..k).rev().find(|&j| {
            let b = self.recs[j].body.trim_start();
            b.starts_with("CPU: ") && b.contains("PID: ") && b.contains("Comm: ")
        });
        match header {
            Some(h) if h > 0 && classify(self.recs[h - 1].body) == Mark::Nothing => {
                if self.recs[h - 1].body.trim().is_empty() {
                    h
                } else {
                    h - 1
                }
            }
            Some(h) => h,
            None => k,
        }
    }
}

/// The message after a `subsystem: ` prefix, e.g. `watchdog: ` or `rcu: `.
fn after_subsystem(b: &str) -> Option<&str> {
    let (head, rest) = b.split_once(": ")?;
    // At most two words, each starting like an identifier: `NMI watchdog`
    // qualifies, a TAP line such as `ok 4 - name` does not.
    let words: Vec<&str> = head.split(' ').collect();
    let plausible = head.len() <= 32
        && words.len() <= 2
        && words.iter().all(|w| {
            w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        });
    plausible.then_some(rest)
}

fn classify(body: &str) -> Mark {
    let b = body.trim();
    if b.is_empty() {
        return Mark::Nothing;
    }
    if b.starts_with("------------[ cut here ]") {
        return Mark::CutHere;
    }
    if b.starts_with("Call Trace:") || b.starts_with("Call trace:") {
        return Mark::CallTrace;
    }
    if b == "</TASK>" || b.starts_with("---[ end trace") || b.starts_with("---[ end Kernel panic") {
        return Mark::Close;
    }
    // WARN() and lockdep never use a subsystem prefix, while boot-time CPU
    // vulnerability notes (`RETBleed: WARNING: ...`) do.
    if let Some(rest) = b.strip_prefix("WARNING: ") {
        let lockdep =
            !rest.starts_with("CPU:") && ["lock", "RCU"].iter().any(|word| rest.contains(word));
        return Mark::Start(if lockdep {
            SplatKind::Lockdep
        } else {
            SplatKind::Warning
        });
    }
    if b.starts_with("UBSAN: ") {
        return Mark::Start(SplatKind::Ubsan);
    }
    if b.starts_with("kernel BUG at ") {
        return Mark::FollowUp(SplatKind::Bug);
    }
    if b.starts_with("Oops") || b.contains("Internal error: Oops") {
        return Mark::FollowUp(if b.contains("general protection fault") {
            SplatKind::GeneralProtectionFault
        } else {
            SplatKind::Oops
        });
    }
    if b.starts_with("general protection fault") {
        return Mark::FollowUp(SplatKind::GeneralProtectionFault);
    }
    if b.starts_with("Kernel panic - not syncing") {
        return Mark::FollowUp(SplatKind::Panic);
    }
    if b.starts_with("KASAN: ") {
        // `KASAN: null-ptr-deref in range [...]` annotates a GPF.
        return if b.contains("initialized") {
            Mark::Nothing
        } else {
            Mark::FollowUp(SplatKind::Kasan)
        };
    }
    if b.starts_with("INFO: task ") && b.contains("blocked for more than") {
        return Mark::Start(SplatKind::HungTask);
    }
    let forms = [Some(b), after_subsystem(b)];
    for m in forms.into_iter().flatten() {
        if (m.starts_with("INFO: rcu") || m.starts_with("rcu_"))
            && m.contains("detected")
            && m.contains("stall")
        {
            return Mark::Start(SplatKind::RcuStall);
        }
        if m.starts_with("BUG: KASAN:") {
            return Mark::Start(SplatKind::Kasan);
        }
        if m.starts_with("BUG: KFENCE:") {
            return Mark::Start(SplatKind::Kfence);
        }
        if m.starts_with("BUG: ") || m.starts_with("Watchdog detected hard LOCKUP") {
            return Mark::Start(SplatKind::Bug);
        }
        if m.starts_with("unreferenced object 0x") || is_leak_count(m) {
            return Mark::Start(SplatKind::Kmemleak);
        }
        if m.starts_with("panicked at ") {
            return Mark::Start(SplatKind::RustPanic);
        }
    }
    if b.starts_with("thread '") && b.contains("' panicked at ") {
        return Mark::Start(SplatKind::RustPanic);
    }
    if b.starts_with("sysrq: ")
        || b.starts_with("NMI backtrace for cpu")
        || (b.starts_with("task:") && b.contains(" state:"))
    {
        return Mark::Opener;
    }
    Mark::Nothing
}

/// `---[ end trace ... ]---`, or the `=====` rule closing KASAN and
/// lockdep-style reports.
fn is_report_end(body: &str) -> bool {
    let b = body.trim();
    b.starts_with("---[ end ") || (b.len() >= 20 && b.bytes().all(|c| c == b'='))
}

/// `3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)`
fn is_leak_count(m: &str) -> bool {
    m.split_once(' ').is_some_and(|(n, rest)| {
        !n.is_empty()
            && n.bytes().all(|c| c.is_ascii_digit())
            && rest.starts_with("new suspected memory leak")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN_BOOT: &str = include_str!("fixtures/boot-clean.log");
    /// Snippets are planted after this many fixture lines.
    const PLANT_AFTER: usize = 60;

    fn plant(snippet: &str) -> String {
        let mut lines: Vec<&str> = CLEAN_BOOT.lines().collect();
        assert!(lines.len() > PLANT_AFTER + 5, "fixture too short");
        let tail = lines.split_off(PLANT_AFTER);
        let mut out = lines.join("\n");
        out.push('\n');
        out.push_str(snippet.trim_end());
        out.push('\n');
        out.push_str(&tail.join("\n"));
        out
    }

    /// Plants `snippet` and expects exactly one finding of `kind` whose
    /// headline is the snippet's line `headline` (0-based) and whose excerpt
    /// starts with `starts`.
    fn expect_one(snippet: &str, kind: SplatKind, headline: usize, starts: &str) {
        let findings = find_splats(&plant(snippet));
        assert_eq!(findings.len(), 1, "{kind}: {findings:#?}");
        let f = &findings[0];
        assert_eq!(f.kind, kind, "{f:#?}");
        assert_eq!(f.line, PLANT_AFTER + 1 + headline, "{f:#?}");
        assert!(f.excerpt.starts_with(starts), "{f:#?}");
        assert!(f.excerpt.lines().count() <= EXCERPT_FOLLOWING + 1);
    }

    #[test]
    fn clean_boot_has_no_findings() {
        assert_eq!(find_splats(CLEAN_BOOT), []);
    }

    #[test]
    fn clean_boot_with_crlf_and_caller_ids_has_no_findings() {
        let log = CLEAN_BOOT
            .lines()
            .map(|l| l.replacen("] ", "][    T1] ", 1))
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(find_splats(&log), []);
    }

    #[test]
    fn benign_lines_are_not_failures() {
        let benign = "\
[    0.000000] KASAN: KernelAddressSanitizer initialized
[    2.400000] INFO: lockdep is turned off.
[    2.500000] traps: vela-test[301] general protection fault ip:7f3a sp:7ffd error:0 in libc.so.6
[    2.600000] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!
ok 3 - BUG: regression test for old bug
WARNING: no vela firmware found, using defaults
BUG: this is a userspace echo
[    2.700000] mce: [Hardware Error]: Machine check events logged
";
        assert_eq!(find_splats(&plant(benign)), []);
    }

    #[test]
    fn sysrq_task_dump_is_benign() {
        let dump = "\
[   20.000000] sysrq: Show Blocked State
[   20.000100] task:kworker/0:1     state:D stack:0     pid:12    tgid:12    ppid:2      flags:0x00004000
[   20.000200] Workqueue: events vela_reset_work [vela]
[   20.000300] Call Trace:
[   20.000400]  <TASK>
[   20.000500]  __schedule+0x6a1/0x1b30
[   20.000600]  schedule+0xd9/0x3a0
[   20.000700]  vela_reset_work+0x88/0x140 [vela]
[   20.000800]  </TASK>
";
        assert_eq!(find_splats(&plant(dump)), []);
    }

    #[test]
    fn warn_with_cut_here() {
        let s = "\
[    5.100000] ------------[ cut here ]------------
[    5.100010] WARNING: CPU: 1 PID: 87 at drivers/vela/vela_core.c:412 vela_queue_submit+0x1c4/0x2b0 [vela]
[    5.100020] Modules linked in: vela(O)
[    5.100030] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[    5.100040] Tainted: [O]=OOT_MODULE
[    5.100050] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[    5.100060] RIP: 0010:vela_queue_submit+0x1c4/0x2b0 [vela]
[    5.100070] Code: 48 8b 45 00 48 85 c0 74 0c e8 5f 3a 2b e1 <0f> 0b eb 9c 90 90 90
[    5.100080] RSP: 0018:ffffc90000537c70 EFLAGS: 00010246
[    5.100090] RAX: 0000000000000000 RBX: ffff888004a1c000 RCX: 0000000000000000
[    5.100100] Call Trace:
[    5.100110]  <TASK>
[    5.100120]  ? __warn+0xa5/0x1d0
[    5.100130]  vela_ioctl+0x2f1/0x4a0 [vela]
[    5.100140]  __x64_sys_ioctl+0x130/0x1a0
[    5.100150]  do_syscall_64+0x74/0x1a0
[    5.100160]  entry_SYSCALL_64_after_hwframe+0x76/0x7e
[    5.100170]  </TASK>
[    5.100180] irq event stamp: 5212
[    5.100190] ---[ end trace 0000000000000000 ]---
";
        expect_one(
            s,
            SplatKind::Warning,
            1,
            "WARNING: CPU: 1 PID: 87 at drivers/vela",
        );
        let findings = find_splats(&plant(s));
        assert!(findings[0]
            .excerpt
            .ends_with("---[ end trace 0000000000000000 ]---"));
    }

    #[test]
    fn lone_cut_here_is_a_warning() {
        let s = "\
[    5.100000] ------------[ cut here ]------------
[    5.100010] vela: something odd
[    5.100020] vela: more
[    5.100030] vela: and more
[    5.100040] vela: done
";
        expect_one(s, SplatKind::Warning, 0, "------------[ cut here ]");
    }

    #[test]
    fn kasan_use_after_free() {
        let s = "\
[    6.200000] ==================================================================
[    6.200010] BUG: KASAN: slab-use-after-free in vela_buddy_free+0x5e/0x120 [vela]
[    6.200020] Read of size 8 at addr ffff888005b3e410 by task vela-test/91
[    6.200030]
[    6.200040] CPU: 0 UID: 0 PID: 91 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[    6.200050] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[    6.200060] Call Trace:
[    6.200070]  <TASK>
[    6.200080]  dump_stack_lvl+0x7d/0xa0
[    6.200090]  print_report+0xcf/0x630
[    6.200100]  kasan_report+0xd8/0x110
[    6.200110]  vela_buddy_free+0x5e/0x120 [vela]
[    6.200120]  </TASK>
[    6.200130]
[    6.200140] Allocated by task 91:
[    6.200150]  kasan_save_stack+0x33/0x60
[    6.200160]  vela_buddy_alloc+0x9b/0x1f0 [vela]
[    6.200170]
[    6.200180] Freed by task 91:
[    6.200190]  kasan_save_stack+0x33/0x60
[    6.200200]  kfree+0x115/0x3e0
[    6.200210]
[    6.200220] The buggy address belongs to the object at ffff888005b3e400
[    6.200230]  which belongs to the cache kmalloc-64 of size 64
[    6.200240] ==================================================================
[    6.200250] Disabling lock debugging due to kernel taint
";
        expect_one(s, SplatKind::Kasan, 1, "BUG: KASAN: slab-use-after-free");
    }

    #[test]
    fn kfence_out_of_bounds() {
        let s = "\
[    7.300000] ==================================================================
[    7.300010] BUG: KFENCE: out-of-bounds read in vela_query_fill+0x8a/0x1c0 [vela]
[    7.300020]
[    7.300030] Out-of-bounds read at 0xffff88807d9fdfff (1B left of kfence-#41):
[    7.300040]  vela_query_fill+0x8a/0x1c0 [vela]
[    7.300050]  vela_ioctl+0x2f1/0x4a0 [vela]
[    7.300060]  __x64_sys_ioctl+0x130/0x1a0
[    7.300070]
[    7.300080] kfence-#41: 0xffff88807d9fe000-0xffff88807d9fe03f, size=64, cache=kmalloc-64
[    7.300090]
[    7.300100] allocated by task 95 on cpu 1 at 7.290000s (0.010000s ago):
[    7.300110]  __kmalloc_noprof+0x1a2/0x4b0
[    7.300120]  vela_query_fill+0x41/0x1c0 [vela]
[    7.300130]
[    7.300140] CPU: 1 UID: 0 PID: 95 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[    7.300150] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[    7.300160] ==================================================================
";
        expect_one(s, SplatKind::Kfence, 1, "BUG: KFENCE: out-of-bounds read");
    }

    #[test]
    fn null_deref_oops_and_panic_are_one_finding() {
        let s = "\
[    7.000000] BUG: kernel NULL pointer dereference, address: 0000000000000010
[    7.000010] #PF: supervisor read access in kernel mode
[    7.000020] #PF: error_code(0x0000) - not-present page
[    7.000030] PGD 0 P4D 0
[    7.000040] Oops: Oops: 0000 [#1] PREEMPT SMP KASAN NOPTI
[    7.000050] CPU: 0 UID: 0 PID: 1 Comm: swapper/0 Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[    7.000060] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[    7.000070] RIP: 0010:vela_probe+0x4d/0x310 [vela]
[    7.000080] Call Trace:
[    7.000090]  <TASK>
[    7.000100]  local_pci_probe+0xdc/0x180
[    7.000110]  </TASK>
[    7.000120] Modules linked in: vela(O)
[    7.000130] CR2: 0000000000000010
[    7.000140] ---[ end trace 0000000000000000 ]---
[    7.000150] RIP: 0010:vela_probe+0x4d/0x310 [vela]
[    7.000160] Kernel panic - not syncing: Fatal exception
[    7.000170] Kernel Offset: disabled
[    7.000180] ---[ end Kernel panic - not syncing: Fatal exception ]---
";
        expect_one(s, SplatKind::Bug, 0, "BUG: kernel NULL pointer dereference");
    }

    #[test]
    fn arm64_style_oops() {
        let s = "\
[    7.000000] Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP
[    7.000010] Modules linked in: vela(O)
[    7.000020] Call trace:
[    7.000030]  vela_probe+0x4d/0x310 [vela]
[    7.000040] ---[ end trace 0000000000000000 ]---
";
        expect_one(s, SplatKind::Oops, 0, "Internal error: Oops");
    }

    #[test]
    fn kasan_general_protection_fault() {
        let s = "\
[    7.000000] Oops: general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] PREEMPT SMP KASAN NOPTI
[    7.000010] KASAN: null-ptr-deref in range [0x0000000000000010-0x0000000000000017]
[    7.000020] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[    7.000030] RIP: 0010:vela_ring_next+0x3a/0x90 [vela]
[    7.000040] Call Trace:
[    7.000050]  <TASK>
[    7.000060]  vela_ioctl+0x2f1/0x4a0 [vela]
[    7.000070]  </TASK>
[    7.000080] ---[ end trace 0000000000000000 ]---
";
        expect_one(
            s,
            SplatKind::GeneralProtectionFault,
            0,
            "Oops: general protection fault",
        );
    }

    #[test]
    fn atomic_context_bugs() {
        let sleeping = "\
[    8.000000] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:585
[    8.000010] in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 87, name: vela-test
[    8.000020] preempt_count: 1, expected: 0
[    8.000030] RCU nest depth: 0, expected: 0
[    8.000040] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[    8.000050] Call Trace:
[    8.000060]  <TASK>
[    8.000070]  __might_resched+0x2a9/0x3e0
[    8.000080]  </TASK>
";
        expect_one(sleeping, SplatKind::Bug, 0, "BUG: sleeping function called");
        let atomic = "\
[    8.000000] BUG: scheduling while atomic: vela-test/87/0x00000002
[    8.000010] Modules linked in: vela(O)
[    8.000020] Preemption disabled at:
[    8.000030] [<ffffffffc0201a4c>] vela_lock_ring+0x1c/0x40 [vela]
[    8.000040] Call Trace:
[    8.000050]  <TASK>
[    8.000060]  __schedule_bug+0xa6/0xd0
[    8.000070]  </TASK>
";
        expect_one(atomic, SplatKind::Bug, 0, "BUG: scheduling while atomic");
    }

    #[test]
    fn workqueue_lockup_with_worker_backtrace() {
        let s = "\
[   40.000000] BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 33s!
[   40.000010] Showing busy workqueues and worker pools:
[   40.000020] workqueue events: flags=0x100
[   40.000030]   pwq 0: cpus=0 node=0 flags=0x0 nice=0 active=1 refcnt=2
[   40.000040]     in-flight: 12:vela_reset_work [vela]
[   40.000050] pool 0: cpus=0 node=0 flags=0x0 nice=0 hung=33s workers=2 idle: 5
[   40.000060] Showing backtraces of running workers in stalled CPU-bound worker pools:
[   40.000070] pool 0:
[   40.000080] task:kworker/0:1     state:R  running task     stack:0     pid:12    tgid:12    ppid:2      flags:0x00004008
[   40.000090] Call Trace:
[   40.000100]  <TASK>
[   40.000110]  vela_reset_work+0x88/0x140 [vela]
[   40.000120]  </TASK>
";
        expect_one(s, SplatKind::Bug, 0, "BUG: workqueue lockup");
    }

    #[test]
    fn soft_lockup_with_subsystem_prefix() {
        let s = "\
[   30.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [vela-test:87]
[   30.000010] Modules linked in: vela(O)
[   30.000020] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O L      7.2.12-vela #1 PREEMPT(voluntary)
[   30.000030] RIP: 0010:vela_poll+0x21/0x60 [vela]
[   30.000040] Call Trace:
[   30.000050]  <TASK>
[   30.000060]  vela_ioctl+0x2f1/0x4a0 [vela]
[   30.000070]  </TASK>
";
        expect_one(s, SplatKind::Bug, 0, "watchdog: BUG: soft lockup");
    }

    #[test]
    fn ubsan_with_cut_here() {
        let s = "\
[    9.000000] ------------[ cut here ]------------
[    9.000010] UBSAN: array-index-out-of-bounds in drivers/vela/vela_ring.c:88:14
[    9.000020] index 16 is out of range for type 'u64[16]'
[    9.000030] CPU: 0 UID: 0 PID: 91 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[    9.000040] Call Trace:
[    9.000050]  <TASK>
[    9.000060]  __ubsan_handle_out_of_bounds+0xe9/0x130
[    9.000070]  vela_ring_push+0x1b2/0x1d0 [vela]
[    9.000080]  </TASK>
[    9.000090] ---[ end trace ]---
";
        expect_one(s, SplatKind::Ubsan, 1, "UBSAN: array-index-out-of-bounds");
    }

    #[test]
    fn lockdep_reports() {
        let circular = "\
[   10.000000] ======================================================
[   10.000010] WARNING: possible circular locking dependency detected
[   10.000020] 7.2.12-vela #1 Tainted: G           O
[   10.000030] ------------------------------------------------------
[   10.000040] vela-test/87 is trying to acquire lock:
[   10.000050] ffff888004a1c0e8 (&vela->ring_lock){+.+.}-{4:4}, at: vela_ring_push+0x3c/0x1d0 [vela]
[   10.000060]
[   10.000070] but task is already holding lock:
[   10.000080] ffff888004a1c0a0 (&vela->cfg_lock){+.+.}-{4:4}, at: vela_ioctl+0x5e/0x4a0 [vela]
[   10.000090]
[   10.000100] which lock already depends on the new lock.
[   10.000110]
[   10.000120] the existing dependency chain (in reverse order) is:
[   10.000130]
[   10.000140] -> #1 (&vela->ring_lock){+.+.}-{4:4}:
[   10.000150]        __mutex_lock+0x18b/0x1280
[   10.000160]        vela_reset_work+0x4f/0x140 [vela]
[   10.000170]
[   10.000180] -> #0 (&vela->cfg_lock){+.+.}-{4:4}:
[   10.000190]        __lock_acquire+0x1d57/0x3300
[   10.000200]        lock_acquire+0x1a6/0x530
[   10.000210]
[   10.000220] other info that might help us debug this:
[   10.000230]
[   10.000240]  Possible unsafe locking scenario:
[   10.000250]
[   10.000260]        CPU0                    CPU1
[   10.000270]        ----                    ----
[   10.000280]   lock(&vela->cfg_lock);
[   10.000290]                                lock(&vela->ring_lock);
[   10.000300]
[   10.000310]  *** DEADLOCK ***
[   10.000320]
[   10.000330] 1 lock held by vela-test/87:
[   10.000340]  #0: ffff888004a1c0a0 (&vela->cfg_lock){+.+.}-{4:4}, at: vela_ioctl+0x5e/0x4a0 [vela]
[   10.000350]
[   10.000360] stack backtrace:
[   10.000370] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[   10.000380] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[   10.000390] Call Trace:
[   10.000400]  <TASK>
[   10.000410]  print_circular_bug+0x2ee/0x310
[   10.000420]  </TASK>
";
        expect_one(
            circular,
            SplatKind::Lockdep,
            1,
            "WARNING: possible circular locking",
        );
        for headline in [
            "WARNING: possible recursive locking detected",
            "WARNING: inconsistent lock state",
            "WARNING: suspicious RCU usage",
        ] {
            let s = format!(
                "\
[   10.000000] ============================================
[   10.000010] {headline}
[   10.000020] 7.2.12-vela #1 Tainted: G           O
[   10.000030] --------------------------------------------
[   10.000040] stack backtrace:
[   10.000050] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[   10.000060] Call Trace:
[   10.000070]  <TASK>
[   10.000080]  dump_stack_lvl+0x7d/0xa0
[   10.000090]  </TASK>
"
            );
            expect_one(&s, SplatKind::Lockdep, 1, headline);
        }
    }

    #[test]
    fn kmemleak_objects_and_count_are_one_finding() {
        let s = "\
[   70.000000] kmemleak: unreferenced object 0xffff888005b3e400 (size 64):
[   70.000010] kmemleak:   comm \"vela-test\", pid 91, jiffies 4294939212
[   70.000020] kmemleak:   hex dump (first 32 bytes):
[   70.000030] kmemleak:     00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
[   70.000040] kmemleak:   backtrace (crc 5e1a7c3b):
[   70.000050] kmemleak:     __kmalloc_cache_noprof+0x2d4/0x3e0
[   70.000060] kmemleak:     vela_buddy_alloc+0x9b/0x1f0 [vela]
[   70.000070] kmemleak: unreferenced object 0xffff888005b3e480 (size 64):
[   70.000080] kmemleak:   comm \"vela-test\", pid 91, jiffies 4294939212
[   70.000090] kmemleak:   backtrace (crc 5e1a7c3b):
[   70.000100] kmemleak:     vela_buddy_alloc+0x9b/0x1f0 [vela]
[   70.000110] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)
";
        expect_one(s, SplatKind::Kmemleak, 0, "kmemleak: unreferenced object");
        expect_one(
            "[   70.000000] kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            SplatKind::Kmemleak,
            0,
            "kmemleak: 1 new suspected",
        );
        // `cat /sys/kernel/debug/kmemleak` output from userspace: no prefix.
        let cat = "\
unreferenced object 0xffff888005b3e400 (size 64):
  comm \"vela-test\", pid 91, jiffies 4294939212
  backtrace (crc 5e1a7c3b):
    vela_buddy_alloc+0x9b/0x1f0 [vela]
";
        expect_one(cat, SplatKind::Kmemleak, 0, "unreferenced object 0x");
    }

    #[test]
    fn rcu_stall_reports_are_one_finding() {
        let s = "\
[   50.000000] rcu: INFO: rcu_preempt self-detected stall on CPU
[   50.000010] rcu: \t1-....: (21000 ticks this GP) idle=b4c/1/0x4000000000000000 softirq=2301/2301 fqs=5250
[   50.000020] rcu: \t(t=21001 jiffies g=4113 q=312 ncpus=2)
[   50.000030] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O L      7.2.12-vela #1 PREEMPT(voluntary)
[   50.000040] RIP: 0010:vela_poll+0x21/0x60 [vela]
[   50.000050] Call Trace:
[   50.000060]  <IRQ>
[   50.000070]  rcu_sched_clock_irq+0x6f2/0x1180
[   50.000080]  </IRQ>
[   50.000090]  <TASK>
[   50.000100]  vela_ioctl+0x2f1/0x4a0 [vela]
[   50.000110]  </TASK>
[   50.000120] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[   50.000130] rcu: \t1-....: (21000 ticks this GP) idle=b4c/1/0x4000000000000000
[   50.000140] Sending NMI from CPU 0 to CPUs 1:
[   50.000150] NMI backtrace for cpu 1
[   50.000160] CPU: 1 UID: 0 PID: 87 Comm: vela-test Tainted: G           O L      7.2.12-vela #1 PREEMPT(voluntary)
[   50.000170] Call Trace:
[   50.000180]  <TASK>
[   50.000190]  vela_ioctl+0x2f1/0x4a0 [vela]
[   50.000200]  </TASK>
";
        expect_one(
            s,
            SplatKind::RcuStall,
            0,
            "rcu: INFO: rcu_preempt self-detected stall",
        );
    }

    #[test]
    fn hung_task() {
        let s = "\
[  245.000000] INFO: task vela-test:87 blocked for more than 122 seconds.
[  245.000010]       Tainted: G           O        7.2.12-vela #1
[  245.000020] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
[  245.000030] task:vela-test       state:D stack:0     pid:87    tgid:87    ppid:1      flags:0x00004002
[  245.000040] Call Trace:
[  245.000050]  <TASK>
[  245.000060]  __schedule+0x6a1/0x1b30
[  245.000070]  vela_wait_idle+0x9a/0x110 [vela]
[  245.000080]  </TASK>
[  245.000090] Showing all locks held in the system:
[  245.000100] INFO: lockdep is turned off.
";
        expect_one(s, SplatKind::HungTask, 0, "INFO: task vela-test:87 blocked");
    }

    #[test]
    fn bare_dump_stack_is_a_call_trace_finding() {
        let s = "\
[   11.000000] vela 0000:00:04.0: ring 2 stuck, dumping state
[   11.000010] CPU: 0 UID: 0 PID: 12 Comm: kworker/0:1 Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[   11.000020] Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[   11.000030] Workqueue: events vela_reset_work [vela]
[   11.000040] Call Trace:
[   11.000050]  <TASK>
[   11.000060]  dump_stack_lvl+0x7d/0xa0
[   11.000070]  vela_reset_work+0x88/0x140 [vela]
[   11.000080]  </TASK>
";
        expect_one(
            s,
            SplatKind::CallTrace,
            0,
            "vela 0000:00:04.0: ring 2 stuck",
        );
    }

    #[test]
    fn call_trace_after_a_finished_report_is_separate() {
        let s = "\
[    5.100010] WARNING: CPU: 1 PID: 87 at drivers/vela/vela_core.c:412 vela_queue_submit+0x1c4/0x2b0 [vela]
[    5.100100] Call Trace:
[    5.100110]  <TASK>
[    5.100170]  </TASK>
[    5.100190] ---[ end trace 0000000000000000 ]---
[    5.200000] CPU: 0 UID: 0 PID: 12 Comm: kworker/0:1 Tainted: G        W  O        7.2.12-vela #1 PREEMPT(voluntary)
[    5.200010] Call Trace:
[    5.200020]  <TASK>
[    5.200030]  </TASK>
";
        let kinds: Vec<_> = find_splats(&plant(s)).iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [SplatKind::Warning, SplatKind::CallTrace]);
    }

    #[test]
    fn rust_panic_is_one_finding() {
        let s = "\
[   12.000000] rust_kernel: panicked at drivers/vela/rust/ring.rs:41:9:
[   12.000010] index out of bounds: the len is 16 but the index is 16
[   12.000020] ------------[ cut here ]------------
[   12.000030] kernel BUG at rust/helpers/bug.c:7!
[   12.000040] Oops: invalid opcode: 0000 [#1] PREEMPT SMP KASAN NOPTI
[   12.000050] CPU: 0 UID: 0 PID: 91 Comm: vela-test Tainted: G           O        7.2.12-vela #1 PREEMPT(voluntary)
[   12.000060] RIP: 0010:rust_helper_BUG+0x8/0x10
[   12.000070] Call Trace:
[   12.000080]  <TASK>
[   12.000090]  rust_begin_unwind+0x5e/0x60
[   12.000100]  </TASK>
[   12.000110] ---[ end trace 0000000000000000 ]---
";
        expect_one(
            s,
            SplatKind::RustPanic,
            0,
            "rust_kernel: panicked at drivers/vela",
        );
        let user = "thread 'main' panicked at src/bin/vela-stress.rs:88:5:\nassertion failed: ok";
        expect_one(user, SplatKind::RustPanic, 0, "thread 'main' panicked at");
    }

    #[test]
    fn standalone_panic_and_kernel_bug() {
        let s = "\
[    1.000000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)
[    1.000010] CPU: 0 UID: 0 PID: 1 Comm: swapper/0 Not tainted 7.2.12-vela #1 PREEMPT(voluntary)
[    1.000020] Call Trace:
[    1.000030]  <TASK>
[    1.000040]  panic+0x1b1/0x400
[    1.000050]  </TASK>
[    1.000060] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---
";
        expect_one(s, SplatKind::Panic, 0, "Kernel panic - not syncing: VFS");
        let bug = "\
[    1.000000] ------------[ cut here ]------------
[    1.000010] kernel BUG at drivers/vela/vela_ring.c:120!
[    1.000020] Oops: invalid opcode: 0000 [#1] PREEMPT SMP KASAN NOPTI
";
        expect_one(bug, SplatKind::Bug, 1, "kernel BUG at drivers/vela");
    }

    #[test]
    fn interleaved_with_userspace_output() {
        let s = "running vela-stress ... 42%[    8.000000] BUG: scheduling while atomic: vela-test/87/0x00000002\r";
        expect_one(s, SplatKind::Bug, 0, "BUG: scheduling while atomic");
    }

    #[test]
    fn separate_reports_are_separate_findings() {
        let s = "\
[    5.100010] WARNING: CPU: 1 PID: 87 at drivers/vela/vela_core.c:412 vela_queue_submit+0x1c4/0x2b0 [vela]
[    5.100190] ---[ end trace 0000000000000000 ]---
[    5.200010] WARNING: CPU: 1 PID: 87 at drivers/vela/vela_core.c:415 vela_queue_submit+0x1e0/0x2b0 [vela]
[    5.200190] ---[ end trace 0000000000000000 ]---
[  245.000000] INFO: task vela-test:87 blocked for more than 122 seconds.
[  245.000010] INFO: task kworker/0:1:12 blocked for more than 122 seconds.
";
        let findings = find_splats(&plant(s));
        let got: Vec<_> = findings.iter().map(|f| (f.kind, f.line)).collect();
        let base = PLANT_AFTER + 1;
        assert_eq!(
            got,
            [
                (SplatKind::Warning, base),
                (SplatKind::Warning, base + 2),
                (SplatKind::HungTask, base + 4),
                (SplatKind::HungTask, base + 5),
            ]
        );
    }
}
