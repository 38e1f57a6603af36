//! KUnit results from the kernel log.
//!
//! KUnit prints one KTAP document per run: one at boot for built-in suites
//! and one per module load for modular suites, each starting with an
//! unindented `KTAP version 1`. A document ends at the next such header,
//! once its plan is fulfilled, or at the end of the log (a crash mid-suite
//! then shows up as missing results). When the log has printk timestamps
//! only timestamped records are considered, so userspace TAP sharing the
//! serial console can't be mistaken for KUnit's.

use super::line::records;
use super::tap::Parser;
use super::TestResult;

/// Root of KUnit test names: `kunit/<suite>/<test>[/<param>]`.
const ROOT: &str = "kunit";

/// Extracts every KUnit test result from a serial log.
pub fn parse_kunit(serial_log: &str) -> Vec<TestResult> {
    let recs = records(serial_log);
    let kernel_only = recs.iter().any(|r| r.timestamped);
    let mut results = Vec::new();
    let mut doc: Option<Parser> = None;
    // KUnit prints an empty document (`1..0`, no directive) at boot when no built-in suite
    // exists. That is no test at all, not a skipped one.
    let mut empty_doc = false;
    let finish = |p: Parser, empty: bool, results: &mut Vec<TestResult>| {
        if !empty {
            results.extend(p.finish());
        }
    };
    for rec in recs.iter().filter(|r| r.timestamped || !kernel_only) {
        if rec.body.starts_with("KTAP version ") {
            if let Some(done) = doc.take() {
                finish(done, empty_doc, &mut results);
            }
            doc = Some(Parser::new(ROOT));
            empty_doc = false;
        } else if doc.is_some() && rec.body.trim_end() == "1..0" {
            empty_doc = true;
        }
        if let Some(parser) = doc.as_mut() {
            parser.feed(rec.body);
            if parser.is_complete() {
                if let Some(done) = doc.take() {
                    finish(done, empty_doc, &mut results);
                }
            }
        }
    }
    if let Some(done) = doc {
        finish(done, empty_doc, &mut results);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::super::Status::{self, Fail, Pass, Skip};
    use super::*;

    fn summary(results: &[TestResult]) -> Vec<(String, Status)> {
        results.iter().map(|r| (r.name.clone(), r.status)).collect()
    }

    fn named(items: &[(&str, Status)]) -> Vec<(String, Status)> {
        items.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn empty_boot_document_is_no_test() {
        let log = "[    9.6] KTAP version 1\n[    9.6] 1..0\n[   10.0] random: crng init done\n";
        assert!(parse_kunit(log).is_empty());
    }

    #[test]
    fn example_from_kernel_log() {
        let log = "\
[    3.1] KTAP version 1
[    3.1] 1..1
[    3.1]     KTAP version 1
[    3.1]     # Subtest: vela_buddy
[    3.1]     # module: vela
[    3.1]     1..3
[    3.1]     ok 1 vela_alloc_basic
[    3.1]     not ok 2 vela_alloc_full
[    3.1]     ok 3 vela_skip # SKIP not supported
[    3.1] # vela_buddy: pass:1 fail:1 skip:1 total:3
[    3.1] # Totals: pass:1 fail:1 skip:1 total:3
[    3.1] not ok 1 vela_buddy
";
        let r = parse_kunit(log);
        assert_eq!(
            summary(&r),
            named(&[
                ("kunit/vela_buddy/vela_alloc_basic", Pass),
                ("kunit/vela_buddy/vela_alloc_full", Fail),
                ("kunit/vela_buddy/vela_skip", Skip),
            ])
        );
        assert_eq!(r[2].detail.as_deref(), Some("not supported"));
    }

    #[test]
    fn boot_and_module_documents_amid_other_output() {
        let log = "\
[    0.900000][    T1] KTAP version 1
[    0.900001][    T1] 1..2
[    0.900002][    T1]     KTAP version 1
[    0.900003][    T1]     # Subtest: vela_ring
[    0.900004][    T1]     1..2
[    0.900005][   T42]     # vela_ring_wrap: EXPECTATION FAILED at drivers/vela/ring_test.c:57
[    0.900006][   T42]     Expected head == 0, but
[    0.900007][   T42]         head == 16 (0x10)
[    0.900008][    T1]     not ok 1 vela_ring_wrap
[    0.900009][    C0] random: crng init done
[    0.900010][    T1]         KTAP version 1
[    0.900011][    T1]         # Subtest: vela_ring_params
[    0.900012][    T1]         ok 1 size-16
[    0.900013][    T1]         ok 2 size-4096
[    0.900014][    T1]     # vela_ring_params: pass:2 fail:0 skip:0 total:2
[    0.900015][    T1]     ok 2 vela_ring_params
[    0.900016][    T1] # vela_ring: pass:1 fail:1 skip:0 total:2
[    0.900017][    T1] not ok 1 vela_ring
[    0.900018][    T1]     KTAP version 1
[    0.900019][    T1]     # Subtest: vela_cfg
[    0.900020][    T1]     1..0
[    0.900021][    T1] ok 2 vela_cfg # SKIP no config space
TAP version 13
1..1
ok 1 userspace test that is not KUnit
[    4.000000][  T301] KTAP version 1
[    4.000001][  T301] 1..1
[    4.000002][  T301]     KTAP version 1
[    4.000003][  T301]     # Subtest: vela_buddy
[    4.000004][  T301]     1..1
[    4.000005][  T301]     ok 1 vela_alloc_basic
[    4.000006][  T301] ok 1 vela_buddy
[    4.100000][    T1] ok 7 - stray kernel line after the document
";
        let r = parse_kunit(log);
        assert_eq!(
            summary(&r),
            named(&[
                ("kunit/vela_ring/vela_ring_wrap", Fail),
                ("kunit/vela_ring/vela_ring_params/size-16", Pass),
                ("kunit/vela_ring/vela_ring_params/size-4096", Pass),
                ("kunit/vela_cfg", Skip),
                ("kunit/vela_buddy/vela_alloc_basic", Pass),
            ])
        );
        let detail = r[0].detail.as_deref().unwrap();
        assert!(
            detail.starts_with("# vela_ring_wrap: EXPECTATION FAILED"),
            "{detail}"
        );
        assert!(detail.contains("head == 16"), "{detail}");
    }

    #[test]
    fn crash_mid_suite_fails_the_rest() {
        let log = "\
[    3.100000] KTAP version 1
[    3.100001] 1..1
[    3.100002]     KTAP version 1
[    3.100003]     # Subtest: vela_buddy
[    3.100004]     1..3
[    3.100005]     ok 1 vela_alloc_basic
[    3.100006] BUG: kernel NULL pointer dereference, address: 0000000000000010
";
        let r = parse_kunit(log);
        assert_eq!(
            summary(&r),
            named(&[
                ("kunit/vela_buddy/vela_alloc_basic", Pass),
                ("kunit/vela_buddy/#2 (no result)", Fail),
                ("kunit/vela_buddy/#3 (no result)", Fail),
            ])
        );
    }

    #[test]
    fn header_without_plan_fails() {
        let r =
            parse_kunit("[    3.100000] KTAP version 1\n[    3.2] Kernel panic - not syncing: x\n");
        assert_eq!(summary(&r), named(&[("kunit/(no TAP output)", Fail)]));
    }

    #[test]
    fn no_kunit_no_results() {
        assert_eq!(
            parse_kunit("[    0.000000] Linux version 7.2.12\nok 1 - x\n"),
            []
        );
        assert_eq!(parse_kunit(""), []);
    }
}
