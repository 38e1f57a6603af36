//! Deciding whether a test run passed.
//!
//! A run is judged from two inputs: the guest's whole serial log, and the
//! TAP output of each userspace suite. [`judge`] combines
//!
//! * [`find_splats`]: every kernel report in the log that must fail the run
//!   (WARN, BUG, Oops, panics, KASAN, UBSAN, lockdep, kmemleak, RCU stalls,
//!   hung tasks, Rust panics, and stack dumps nobody explained);
//! * [`parse_tap`]: per-test results of each suite's TAP 13/14 stream;
//! * [`parse_kunit`]: per-test results of the KUnit documents the kernel
//!   printed into the log, at boot or on module load;
//!
//! into a [`Report`] whose last rendered line is `N passed, N failed` (plus
//! `, N skipped` when there are any). Each splat counts as one failed test
//! named `kernel-log: <kind>`, so a run that "passes" every test while the
//! kernel warns still fails.
//!
//! # Choices
//!
//! * Log lines may carry `<N>`, `[   12.345678]` and `[  T123]`/`[    C0]`
//!   prefixes, `\r`, and userspace output the kernel console wrote into the
//!   middle of; each timestamp and `\r` starts a new record.
//! * Report markers are anchored at the start of the message, which keeps
//!   boot notes like `RETBleed: WARNING: ...` and userspace `traps: ...
//!   general protection fault` (a crashed program, whose test fails on its
//!   own) from counting.
//! * If the log has timestamps, untimestamped lines are userspace output:
//!   a script's `WARNING: ...` is not a kernel warning, though a listing of
//!   `/sys/kernel/debug/kmemleak` still counts.
//! * Not failures: `INFO: lockdep is turned off.` (lockdep switches itself
//!   off *after* a report, which is what fails the run; on its own it only
//!   says a taint disabled it), `workqueue: ... hogged CPU` (a performance
//!   hint without a stack trace), `INFO: NMI handler ... took too long`
//!   (perf sampling in a VM), and the `kasan:`/`kmemleak:`/lockdep/RAS/APEI
//!   boot banners.
//! * Failures beyond the kernel's own: a Rust `thread '...' panicked at` in a
//!   guest program, since the harness never panics on purpose.
//! * One event is one finding: `BUG: kernel NULL pointer dereference`, its
//!   `Oops` and the `Kernel panic` it causes, or a kmemleak scan's objects
//!   and count, fold together.
//! * TAP results are reported per leaf test as `suite/parent/test`; what a
//!   plan promised but never arrived fails as `suite/#N (no result)`, a
//!   stream without plan fails as `suite/(no plan)`, one without any TAP as
//!   `suite/(no TAP output)`. `not ok # TODO` counts as skipped.
//! * An empty run (no tests, no splats) is a success; whether a run had to
//!   produce tests is for the caller to decide.

mod kunit;
mod line;
mod splat;
mod tap;

use std::{fmt, time::Duration};

pub use kunit::parse_kunit;
pub use splat::{find_splats, Finding, SplatKind};
pub use tap::parse_tap;

/// Outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// `suite/parent/.../test`.
    pub name: String,
    pub status: Status,
    /// Skip reason, or for failures the test's diagnostics.
    pub detail: Option<String>,
}

impl TestResult {
    /// Places the result under `parent` in the name hierarchy; an empty
    /// name stands for the parent itself.
    fn under(mut self, parent: &str) -> Self {
        self.name = if self.name.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}/{}", self.name)
        };
        self
    }
}

/// Test counts, with each splat counted as a failed test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn new(results: &[TestResult], findings: &[Finding]) -> Self {
        let count = |status| results.iter().filter(|r| r.status == status).count();
        Summary {
            passed: count(Status::Pass),
            failed: count(Status::Fail) + findings.len(),
            skipped: count(Status::Skip),
        }
    }

    /// `N passed, N failed`, then `, N skipped` only when N > 0.
    pub fn line(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// One line of the per-suite table: a TAP suite, `kunit` or `kernel-log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteLine {
    pub name: String,
    pub summary: Summary,
    /// How long the suite ran, when known.
    pub seconds: Option<Duration>,
}

/// Everything [`judge`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// TAP results in input order, then KUnit results.
    pub results: Vec<TestResult>,
    /// Kernel-log splats in log order.
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// Each TAP suite in input order, then `kunit` (when KUnit reported) and `kernel-log`
    /// (one failure per splat): together they count what [`Report::summary`] counts.
    pub suites: Vec<SuiteLine>,
}

impl Report {
    /// Whether nothing failed.
    pub fn is_success(&self) -> bool {
        self.summary.failed == 0
    }

    /// Each failure with its diagnostics or log excerpt, then the summary
    /// line.
    pub fn render(&self) -> String {
        self.render_inner(false)
    }

    /// As [`Report::render`], with the per-suite table just before the summary line.
    pub fn render_with_suites(&self) -> String {
        self.render_inner(true)
    }

    /// The per-suite table: a header, then one line per suite with its counts and seconds.
    pub fn suite_table(&self) -> String {
        let w = self
            .suites
            .iter()
            .map(|s| s.name.len())
            .chain([5])
            .max()
            .unwrap_or(5);
        let mut out = format!(
            "{:<w$}  {:>6}  {:>6}  {:>7}  {:>7}\n",
            "suite", "passed", "failed", "skipped", "seconds"
        );
        for s in &self.suites {
            let secs = s
                .seconds
                .map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64()));
            out.push_str(&format!(
                "{:<w$}  {:>6}  {:>6}  {:>7}  {:>7}\n",
                s.name, s.summary.passed, s.summary.failed, s.summary.skipped, secs
            ));
        }
        out
    }

    /// Records how long suite `name` ran.
    pub fn set_seconds(&mut self, name: &str, seconds: Duration) {
        if let Some(s) = self.suites.iter_mut().find(|s| s.name == name) {
            s.seconds = Some(seconds);
        }
    }

    /// Adds a failed test that the caller found (a VM that timed out, a KUnit suite that
    /// never reported), counted in the summary and in the line of `suite`, which is added if
    /// there is none.
    pub fn add_failure(&mut self, suite: &str, name: &str, detail: String) {
        self.results.push(TestResult {
            name: name.into(),
            status: Status::Fail,
            detail: Some(detail),
        });
        self.summary = Summary::new(&self.results, &self.findings);
        match self.suites.iter_mut().find(|s| s.name == suite) {
            Some(s) => s.summary.failed += 1,
            None => self.suites.push(SuiteLine {
                name: suite.into(),
                summary: Summary {
                    failed: 1,
                    ..Summary::default()
                },
                seconds: None,
            }),
        }
    }

    /// Adds the report of another VM (the pair's): its results and suite lines named under
    /// `vm` (`kunit` becomes `VM/kunit`, a TAP suite already called `VM` keeps its name), its
    /// kernel reports with the VM named in their excerpt; the summary counts them all.
    pub fn absorb(&mut self, other: Report, vm: &str) {
        let under = |name: &str| {
            if name == vm || name.starts_with(&format!("{vm}/")) {
                name.to_string()
            } else {
                format!("{vm}/{name}")
            }
        };
        self.results.extend(other.results.into_iter().map(|mut r| {
            r.name = under(&r.name);
            r
        }));
        self.findings
            .extend(other.findings.into_iter().map(|mut f| {
                f.excerpt = format!("(in {vm}'s serial log)\n{}", f.excerpt);
                f
            }));
        self.suites.extend(other.suites.into_iter().map(|mut s| {
            s.name = under(&s.name);
            s
        }));
        self.summary = Summary::new(&self.results, &self.findings);
    }

    fn render_inner(&self, with_suites: bool) -> String {
        let mut out = String::new();
        for r in self.results.iter().filter(|r| r.status == Status::Fail) {
            out.push_str(&format!("FAIL {}\n", r.name));
            push_indented(&mut out, r.detail.as_deref().unwrap_or(""));
        }
        for f in &self.findings {
            out.push_str(&format!(
                "FAIL kernel-log: {} (serial log line {})\n",
                SplatKind::name(f.kind),
                f.line
            ));
            push_indented(&mut out, &f.excerpt);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        if with_suites && !self.suites.is_empty() {
            out.push_str(&self.suite_table());
        }
        out.push_str(&self.summary.line());
        out.push('\n');
        out
    }
}

fn push_indented(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Judges a run from the guest's serial log and each suite's TAP output,
/// given as `(suite name, TAP text)`.
pub fn judge(serial_log: &str, tap_streams: &[(String, String)]) -> Report {
    let mut results = Vec::new();
    let mut suites = Vec::new();
    for (suite, text) in tap_streams {
        let r = parse_tap(suite, text);
        suites.push(SuiteLine {
            name: suite.clone(),
            summary: Summary::new(&r, &[]),
            seconds: None,
        });
        results.extend(r);
    }
    let kunit = parse_kunit(serial_log);
    if !kunit.is_empty() {
        suites.push(SuiteLine {
            name: "kunit".into(),
            summary: Summary::new(&kunit, &[]),
            seconds: None,
        });
    }
    results.extend(kunit);
    let findings = find_splats(serial_log);
    suites.push(SuiteLine {
        name: "kernel-log".into(),
        summary: Summary::new(&[], &findings),
        seconds: None,
    });
    let summary = Summary::new(&results, &findings);
    Report {
        results,
        findings,
        summary,
        suites,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(passed: usize, failed: usize, skipped: usize) -> Summary {
        Summary {
            passed,
            failed,
            skipped,
        }
    }

    #[test]
    fn summary_line_format() {
        assert_eq!(summary(3, 0, 0).line(), "3 passed, 0 failed");
        assert_eq!(summary(0, 2, 1).line(), "0 passed, 2 failed, 1 skipped");
        assert_eq!(summary(0, 0, 0).line(), "0 passed, 0 failed");
    }

    #[test]
    fn judge_combines_tap_kunit_and_splats() {
        let serial = "\
[    3.100000] KTAP version 1
[    3.100001] 1..1
[    3.100002]     KTAP version 1
[    3.100003]     # Subtest: vela_buddy
[    3.100004]     1..2
[    3.100005]     ok 1 vela_alloc_basic
[    3.100006]     ok 2 vela_skip # SKIP not supported
[    3.100007] ok 1 vela_buddy
[    5.100010] WARNING: CPU: 1 PID: 87 at drivers/vela/vela_core.c:412 vela_queue_submit+0x1c4/0x2b0 [vela]
[    5.100020] Modules linked in: vela(O)
[    5.100190] ---[ end trace 0000000000000000 ]---
";
        let tap = vec![(
            "vela-selftests".to_string(),
            "TAP version 13\n1..2\nok 1 - open\nnot ok 2 - mmap\n# mmap: -EINVAL\n".to_string(),
        )];
        let report = judge(serial, &tap);
        assert_eq!(report.summary, summary(2, 2, 1));
        assert!(!report.is_success());
        let text = report.render();
        assert!(
            text.ends_with("\n2 passed, 2 failed, 1 skipped\n"),
            "{text}"
        );
        assert!(text.contains("FAIL vela-selftests/mmap\n"), "{text}");
        assert!(
            text.contains(
                "FAIL kernel-log: warning (serial log line 9)\n    WARNING: CPU: 1 PID: 87"
            ),
            "{text}"
        );
        assert!(text.contains("    Modules linked in: vela(O)\n"), "{text}");
    }

    #[test]
    fn suite_lines_add_up_to_the_summary() {
        let serial = "\
[    3.100000] KTAP version 1
[    3.100001] 1..1
[    3.100002]     KTAP version 1
[    3.100003]     # Subtest: vela_bo
[    3.100004]     1..1
[    3.100005]     ok 1 vela_alloc_basic
[    3.100007] ok 1 vela_bo
[    5.100010] WARNING: CPU: 1 PID: 87 at drivers/vela/vela_core.c:412 vela_queue_submit+0x1c4/0x2b0 [vela]
[    5.100190] ---[ end trace 0000000000000000 ]---
";
        let tap = vec![
            (
                "probe".to_string(),
                "TAP version 13\n1..3\nok 1 a\nnot ok 2 b\nok 3 c # SKIP no\n".to_string(),
            ),
            (
                "prime".to_string(),
                "TAP version 13\n1..2\nok 1 a\n".to_string(),
            ),
        ];
        let mut report = judge(serial, &tap);
        report.set_seconds("probe", Duration::from_millis(12_340));
        report.add_failure("kunit", "kunit/vela_sched", "suite did not run".into());
        report.add_failure("harness", "vm/timed-out", "tail".into());
        let lines: Vec<(&str, Summary)> = report
            .suites
            .iter()
            .map(|s| (s.name.as_str(), s.summary))
            .collect();
        assert_eq!(
            lines,
            [
                ("probe", summary(1, 1, 1)),
                ("prime", summary(1, 1, 0)),
                ("kunit", summary(1, 1, 0)),
                ("kernel-log", summary(0, 1, 0)),
                ("harness", summary(0, 1, 0)),
            ]
        );
        let total = lines.iter().fold(Summary::default(), |t, (_, s)| Summary {
            passed: t.passed + s.passed,
            failed: t.failed + s.failed,
            skipped: t.skipped + s.skipped,
        });
        assert_eq!(total, report.summary);
        let text = report.render_with_suites();
        assert!(
            text.ends_with(
                "\n\
                 suite       passed  failed  skipped  seconds\n\
                 probe            1       1        1     12.3\n\
                 prime            1       1        0        -\n\
                 kunit            1       1        0        -\n\
                 kernel-log       0       1        0        -\n\
                 harness          0       1        0        -\n\
                 3 passed, 5 failed, 1 skipped\n"
            ),
            "{text}"
        );
        assert!(text.starts_with("FAIL probe/b\n"), "{text}");
        assert!(
            !report.render().contains("passed  failed"),
            "render() has no table"
        );
    }

    #[test]
    fn another_vms_report_counts_under_its_name() {
        let serial = "\
[    3.100000] KTAP version 1
[    3.100001] 1..1
[    3.100002]     KTAP version 1
[    3.100003]     # Subtest: vela_bo
[    3.100004]     1..1
[    3.100005]     ok 1 vela_alloc_basic
[    3.100007] ok 1 vela_bo
[    5.100010] WARNING: CPU: 0 PID: 87 at net/core/dev.c:1 x+0x1/0x2
[    5.100190] ---[ end trace 0000000000000000 ]---
";
        let mut main = judge(
            "",
            &[("probe".to_string(), "TAP version 13\n1..1\nok 1 a\n".into())],
        );
        let mut side = judge(
            serial,
            &[(
                "pair-a".to_string(),
                "TAP version 13\n1..2\nok 1 wrote\nnot ok 2 read\n".into(),
            )],
        );
        side.set_seconds("pair-a", Duration::from_secs(20));
        side.add_failure("harness", "vm/timed-out", "tail".into());
        main.absorb(side, "pair-a");
        let names: Vec<&str> = main.results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "probe/a",
                "pair-a/wrote",
                "pair-a/read",
                "pair-a/kunit/vela_bo/vela_alloc_basic",
                "pair-a/vm/timed-out"
            ]
        );
        assert_eq!(main.summary, summary(3, 3, 0));
        let text = main.render_with_suites();
        assert!(
            text.ends_with(
                "\n\
                 suite              passed  failed  skipped  seconds\n\
                 probe                   1       0        0        -\n\
                 kernel-log              0       0        0        -\n\
                 pair-a                  1       1        0     20.0\n\
                 pair-a/kunit            1       0        0        -\n\
                 pair-a/kernel-log       0       1        0        -\n\
                 pair-a/harness          0       1        0        -\n\
                 3 passed, 3 failed\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("(in pair-a's serial log)\n    WARNING: CPU: 0"),
            "{text}"
        );
    }

    #[test]
    fn clean_run_renders_only_the_summary() {
        let tap = vec![(
            "s".to_string(),
            "TAP version 13\n1..1\nok 1 a\n".to_string(),
        )];
        let report = judge("[    0.000000] Linux version 7.2.12\n", &tap);
        assert!(report.is_success());
        assert_eq!(report.render(), "1 passed, 0 failed\n");
    }
}
