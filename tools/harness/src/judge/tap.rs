//! TAP 13/14 and KTAP parsing.
//!
//! Nesting is recognised both as 4-space indentation (TAP 14, KTAP) and as
//! `# ` prefixes (kselftest's runner wraps each program's own TAP in them);
//! a `# ` line only counts as nested TAP when what follows parses as TAP,
//! so ordinary `# diagnostics` stay comments. `# Subtest: name` is accepted
//! both at the parent's indentation (TAP 14) and at the child's (KTAP).
//!
//! Results are reported for leaves only, so a suite's own `ok` line does not
//! double-count its tests; a suite that says `not ok` although all of its
//! tests passed adds one failure of its own. Whatever the plan promised but
//! never arrived (crash, timeout, `Bail out!`) counts as failed.

use std::collections::BTreeSet;

use super::line::strip_kernel_prefix;
use super::{Status, TestResult};

/// Parses a TAP stream from one suite. Lines carrying a kernel timestamp
/// are console noise interleaved into the stream and are skipped. Test names
/// are `suite/parent/.../test`.
pub fn parse_tap(suite: &str, text: &str) -> Vec<TestResult> {
    let mut parser = Parser::new(suite);
    for line in text.lines() {
        if !strip_kernel_prefix(line).1 {
            parser.feed(line);
        }
    }
    parser.finish()
}

/// How many diagnostic lines are kept to explain a failure.
const DIAG_LINES: usize = 10;

#[derive(Debug, PartialEq, Eq)]
enum Item<'a> {
    Version,
    Plan { count: usize, skip: Option<&'a str> },
    Result(ResultLine<'a>),
    Subtest(&'a str),
    BailOut(&'a str),
    Other(&'a str),
}

#[derive(Debug, PartialEq, Eq)]
struct ResultLine<'a> {
    ok: bool,
    number: Option<usize>,
    desc: String,
    directive: Directive<'a>,
    comment: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
enum Directive<'a> {
    None,
    Skip(&'a str),
    Todo(&'a str),
}

/// Results of one nesting level; names are relative to it.
#[derive(Default)]
struct Frame {
    /// From `# Subtest:`; the parent's result line has the final say.
    name: Option<String>,
    plan: Option<usize>,
    plan_skip: Option<String>,
    seen: BTreeSet<usize>,
    last_number: usize,
    results: Vec<TestResult>,
    diag: Vec<String>,
    /// The last result if it failed: TAP 13 producers print a failure's
    /// diagnostics after it, KTAP before, so it collects both.
    last_fail: Option<usize>,
    /// A finished child level waiting for the result line that names it.
    pending: Option<Block>,
    /// A TAP 14 `# Subtest:` at this level names the next child level.
    child_name: Option<String>,
    content: bool,
}

struct Block {
    name: Option<String>,
    results: Vec<TestResult>,
}

/// Incremental TAP parser; the KUnit extractor feeds it one kernel-log
/// document at a time.
pub(crate) struct Parser {
    root: String,
    frames: Vec<Frame>,
    out: Vec<TestResult>,
    bail: Option<String>,
    /// Missing results reported so far, so that a bail-out which cut
    /// nothing short still shows up once.
    missing: usize,
    /// Whether any TAP at all was seen.
    seen_tap: bool,
}

impl Parser {
    pub(crate) fn new(root: &str) -> Self {
        Parser {
            root: root.to_string(),
            frames: vec![Frame::default()],
            out: Vec::new(),
            bail: None,
            missing: 0,
            seen_tap: false,
        }
    }

    pub(crate) fn feed(&mut self, line: &str) {
        if self.bail.is_some() {
            return;
        }
        let (depth, item) = classify(line.trim_end());
        if let Item::Other(text) = &item {
            let text = text.trim();
            let top = self.frames.last_mut().expect("root frame");
            if !text.is_empty() {
                if let Some(i) = top.last_fail {
                    let detail = top.results[i].detail.get_or_insert_with(String::new);
                    if detail.lines().count() < DIAG_LINES {
                        if !detail.is_empty() {
                            detail.push('\n');
                        }
                        detail.push_str(text);
                    }
                }
                if top.diag.len() == DIAG_LINES {
                    top.diag.remove(0);
                }
                top.diag.push(text.to_string());
            }
            return;
        }
        self.seen_tap = true;
        if depth == 0 && item == Item::Version && self.frames[0].content {
            self.finish_doc();
        }
        if depth > 0 && item == Item::Version && self.frames.get(depth).is_some_and(|f| f.content) {
            // A new child document without its predecessor's result.
            while self.frames.len() > depth {
                self.pop();
            }
        }
        while self.frames.len() > depth + 1 {
            self.pop();
        }
        while self.frames.len() < depth + 1 {
            let name = self.frames.last_mut().and_then(|f| f.child_name.take());
            self.frames.push(Frame {
                name,
                ..Frame::default()
            });
        }
        let frame = self.frames.last_mut().expect("frame at depth");
        if !matches!(item, Item::Result(_)) {
            if let Some(child) = frame.pending.take() {
                orphan(frame, child);
            }
        }
        match item {
            Item::Version | Item::Other(_) => {}
            Item::Subtest(name) => {
                // KTAP names the level it opens with `KTAP version` just
                // before; anything with a plan or results is a parent.
                let fresh = frame.plan.is_none()
                    && frame.last_number == 0
                    && frame.name.is_none()
                    && frame.pending.is_none();
                if depth > 0 && fresh {
                    frame.name = Some(name.to_string());
                } else {
                    frame.child_name = Some(name.to_string());
                }
            }
            Item::Plan { count, skip } => {
                frame.plan = Some(count);
                frame.plan_skip = skip.map(str::to_string);
            }
            Item::Result(r) => record(frame, r),
            Item::BailOut(reason) => self.bail = Some(reason.to_string()),
        }
        if let Some(frame) = self.frames.last_mut() {
            frame.content = true;
        }
    }

    /// Whether the current document's plan is fulfilled and nothing is
    /// still open, so that later lines cannot belong to it.
    pub(crate) fn is_complete(&self) -> bool {
        let root = &self.frames[0];
        self.frames.len() == 1
            && root.pending.is_none()
            && root.plan.is_some_and(|plan| root.seen.len() >= plan)
    }

    pub(crate) fn finish(mut self) -> Vec<TestResult> {
        if self.frames[0].content || !self.seen_tap {
            self.finish_doc();
        }
        self.out
    }

    fn pop(&mut self) {
        let frame = self.frames.pop().expect("child frame");
        let name = frame.name.clone();
        let results = self.finalize(frame, false);
        let parent = self.frames.last_mut().expect("parent frame");
        if let Some(older) = parent.pending.take() {
            orphan(parent, older);
        }
        parent.pending = Some(Block { name, results });
    }

    fn finish_doc(&mut self) {
        while self.frames.len() > 1 {
            self.pop();
        }
        let root = std::mem::take(&mut self.frames[0]);
        let mut results = self.finalize(root, true);
        if let Some(reason) = &self.bail {
            if self.missing == 0 {
                let detail = format!("Bail out! {reason}").trim_end().to_string();
                results.push(failed("(bail out)", Some(detail)));
            }
        }
        for r in results {
            self.out.push(r.under(&self.root));
        }
    }

    fn finalize(&mut self, mut frame: Frame, root: bool) -> Vec<TestResult> {
        if let Some(child) = frame.pending.take() {
            orphan(&mut frame, child);
        }
        let mut results = std::mem::take(&mut frame.results);
        match frame.plan {
            Some(0) if results.is_empty() => {
                if root {
                    results.push(TestResult {
                        name: String::new(),
                        status: Status::Skip,
                        detail: frame.plan_skip.filter(|s| !s.is_empty()),
                    });
                }
            }
            Some(plan) => {
                let why = match &self.bail {
                    Some(reason) => format!("not run: Bail out! {reason}"),
                    None => format!("planned 1..{plan} but no result arrived"),
                };
                for n in (1..=plan).filter(|n| !frame.seen.contains(n)) {
                    self.missing += 1;
                    results.push(failed(&format!("#{n} (no result)"), Some(why.clone())));
                }
                if frame.seen.len() > plan {
                    let detail = format!("{} results for plan 1..{plan}", frame.seen.len());
                    results.push(failed("(extra results)", Some(detail)));
                }
            }
            // KUnit parameterised tests print no plan; their parent's result
            // line vouches for them.
            None if !root => {}
            None if results.is_empty() => results.push(failed("(no TAP output)", None)),
            None => results.push(failed(
                "(no plan)",
                Some("TAP plan missing; output may be truncated".to_string()),
            )),
        }
        results
    }
}

fn failed(name: &str, detail: Option<String>) -> TestResult {
    TestResult {
        name: name.to_string(),
        status: Status::Fail,
        detail,
    }
}

fn record(frame: &mut Frame, r: ResultLine<'_>) {
    let number = r.number.unwrap_or(frame.last_number + 1);
    frame.last_number = number;
    frame.seen.insert(number);
    let diag = std::mem::take(&mut frame.diag);
    let (status, mut detail) = match r.directive {
        Directive::Skip(reason) => (Status::Skip, non_empty(reason)),
        Directive::Todo(reason) if !r.ok => (Status::Skip, Some(format!("TODO {reason}"))),
        Directive::Todo(_) | Directive::None if r.ok => (Status::Pass, None),
        Directive::Todo(_) | Directive::None => (Status::Fail, None),
    };
    if status == Status::Fail {
        let mut lines: Vec<String> = r.comment.map(|c| format!("# {c}")).into_iter().collect();
        lines.extend(diag);
        detail = (!lines.is_empty()).then(|| lines.join("\n"));
    }
    frame.last_fail = None;
    let child = frame.pending.take();
    let name = if r.desc.is_empty() {
        child
            .as_ref()
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| format!("#{number}"))
    } else {
        r.desc
    };
    match child {
        Some(child) if !child.results.is_empty() => {
            let child_failed = child.results.iter().any(|c| c.status == Status::Fail);
            frame
                .results
                .extend(child.results.into_iter().map(|c| c.under(&name)));
            if status == Status::Fail && !child_failed {
                let detail = Some(match detail {
                    Some(d) => format!("suite failed although its tests passed\n{d}"),
                    None => "suite failed although its tests passed".to_string(),
                });
                frame.results.push(TestResult {
                    name,
                    status,
                    detail,
                });
            }
        }
        _ => {
            if status == Status::Fail {
                frame.last_fail = Some(frame.results.len());
            }
            frame.results.push(TestResult {
                name,
                status,
                detail,
            });
        }
    }
}

/// A child level that ended without a result line naming it: it takes the
/// next number so the parent's plan is not short twice, and fails unless its
/// own missing results already do.
fn orphan(frame: &mut Frame, child: Block) {
    let number = frame.last_number + 1;
    frame.last_number = number;
    frame.seen.insert(number);
    let name = child.name.unwrap_or_else(|| format!("#{number}"));
    let child_failed = child.results.iter().any(|c| c.status == Status::Fail);
    frame
        .results
        .extend(child.results.into_iter().map(|c| c.under(&name)));
    if !child_failed {
        frame.results.push(failed(
            &format!("{name} (no result)"),
            Some("subtest ended without a result line".to_string()),
        ));
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Nesting depth and meaning of one line.
fn classify(line: &str) -> (usize, Item<'_>) {
    let mut depth = 0;
    let mut rest = line;
    loop {
        if let Some(r) = rest.strip_prefix("    ") {
            depth += 1;
            rest = r;
            continue;
        }
        let item = parse_item(rest.trim_start());
        if !matches!(item, Item::Other(_)) {
            return (depth, item);
        }
        if let Some(r) = rest.strip_prefix("# ") {
            let (inner_depth, inner) = classify(r);
            if !matches!(inner, Item::Other(_)) {
                return (depth + 1 + inner_depth, inner);
            }
        }
        return (depth, item);
    }
}

fn parse_item(s: &str) -> Item<'_> {
    if s.starts_with("TAP version ") || s.starts_with("KTAP version ") {
        return Item::Version;
    }
    if let Some(reason) = s.strip_prefix("Bail out!") {
        return Item::BailOut(reason.trim());
    }
    if let Some(name) = s.strip_prefix("# Subtest:") {
        return Item::Subtest(name.trim());
    }
    if let Some(plan) = parse_plan(s) {
        return plan;
    }
    match parse_result(s) {
        Some(r) => Item::Result(r),
        None => Item::Other(s),
    }
}

fn parse_plan(s: &str) -> Option<Item<'_>> {
    let rest = s.strip_prefix("1..")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let count = rest[..end].parse().ok()?;
    let tail = rest[end..].trim();
    if tail.is_empty() {
        return Some(Item::Plan { count, skip: None });
    }
    let comment = tail.strip_prefix('#')?.trim_start();
    let skip = starts_with_word(comment, "skip").map(|_| after_first_word(comment));
    Some(Item::Plan { count, skip })
}

fn parse_result(s: &str) -> Option<ResultLine<'_>> {
    let (ok, rest) = match s.strip_prefix("not ok") {
        Some(r) => (false, r),
        None => (true, s.strip_prefix("ok")?),
    };
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let number = rest[..end].parse().ok();
    let rest = rest[end..].trim_start();
    let rest = rest
        .strip_prefix("- ")
        .or_else(|| (rest == "-").then_some(""))
        .unwrap_or(rest);
    let (desc, directive, comment) = split_directive(rest);
    Some(ResultLine {
        ok,
        number,
        desc: desc.replace("\\#", "#"),
        directive,
        comment,
    })
}

/// TAP 14: an unescaped `#` after whitespace ends the description and starts
/// a directive (`SKIP`, `TODO`, case-insensitive) or a plain comment such as
/// kselftest's `# exit=1`.
fn split_directive(s: &str) -> (&str, Directive<'_>, Option<&str>) {
    let bytes = s.as_bytes();
    let hash = (0..bytes.len()).find(|&i| {
        bytes[i] == b'#'
            && (i == 0 || (bytes[i - 1].is_ascii_whitespace() && bytes[i - 1] != b'\\'))
    });
    let Some(i) = hash else {
        return (s.trim_end(), Directive::None, None);
    };
    let desc = s[..i].trim_end();
    let after = s[i + 1..].trim();
    if starts_with_word(after, "skip").is_some() {
        (desc, Directive::Skip(after_first_word(after)), None)
    } else if starts_with_word(after, "todo").is_some() {
        (desc, Directive::Todo(after_first_word(after)), None)
    } else {
        (desc, Directive::None, non_empty_str(after))
    }
}

fn non_empty_str(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Matches `SKIP`, `skip`, `Skipped:`..., as TAP 13 allows any word that
/// begins with the directive.
fn starts_with_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    head.eq_ignore_ascii_case(word).then_some(head)
}

fn after_first_word(s: &str) -> &str {
    s.split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(results: &[TestResult]) -> Vec<(String, Status)> {
        results.iter().map(|r| (r.name.clone(), r.status)).collect()
    }

    fn named(items: &[(&str, Status)]) -> Vec<(String, Status)> {
        items.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    use Status::{Fail, Pass, Skip};

    #[test]
    fn flat_tap13_with_directives() {
        let text = "\
TAP version 13
1..6
ok 1 - open device
not ok 2 - map ring
# ring map failed: -ENOMEM
ok 3 - dma # SKIP no IOMMU
ok 4 - irq # skip: no MSI-X
not ok 5 - reset # TODO not implemented
ok 6 escaped \\# hash
";
        let r = parse_tap("vela", text);
        assert_eq!(
            summary(&r),
            named(&[
                ("vela/open device", Pass),
                ("vela/map ring", Fail),
                ("vela/dma", Skip),
                ("vela/irq", Skip),
                ("vela/reset", Skip),
                ("vela/escaped # hash", Pass),
            ])
        );
        assert_eq!(r[1].detail.as_deref(), Some("# ring map failed: -ENOMEM"));
        assert_eq!(r[2].detail.as_deref(), Some("no IOMMU"));
        assert_eq!(r[3].detail.as_deref(), Some("no MSI-X"));
    }

    #[test]
    fn missing_results_fail_by_number() {
        let text = "TAP version 13\n1..4\nok 1 a\nok 2 b\n";
        let r = parse_tap("vela", text);
        assert_eq!(
            summary(&r),
            named(&[
                ("vela/a", Pass),
                ("vela/b", Pass),
                ("vela/#3 (no result)", Fail),
                ("vela/#4 (no result)", Fail),
            ])
        );
    }

    #[test]
    fn missing_plan_and_empty_stream() {
        let r = parse_tap("vela", "TAP version 13\nok 1 a\n");
        assert_eq!(
            summary(&r),
            named(&[("vela/a", Pass), ("vela/(no plan)", Fail)])
        );
        let r = parse_tap("vela", "segmentation fault\n");
        assert_eq!(summary(&r), named(&[("vela/(no TAP output)", Fail)]));
        let r = parse_tap("vela", "");
        assert_eq!(summary(&r), named(&[("vela/(no TAP output)", Fail)]));
    }

    #[test]
    fn trailing_plan_is_accepted() {
        let r = parse_tap("vela", "TAP version 14\nok 1 a\nok 2 b\n1..2\n");
        assert_eq!(summary(&r), named(&[("vela/a", Pass), ("vela/b", Pass)]));
    }

    #[test]
    fn whole_suite_skipped() {
        let r = parse_tap("vela", "TAP version 13\n1..0 # SKIP no vela device\n");
        assert_eq!(summary(&r), named(&[("vela", Skip)]));
        assert_eq!(r[0].detail.as_deref(), Some("no vela device"));
    }

    #[test]
    fn tap14_indented_subtests() {
        let text = "\
TAP version 14
1..2
# Subtest: ring
    1..2
    ok 1 - push
    not ok 2 - pop
not ok 1 - ring
    # Subtest: irq
    1..1
    ok 1 - msi
ok 2 - irq
";
        let r = parse_tap("vela", text);
        assert_eq!(
            summary(&r),
            named(&[
                ("vela/ring/push", Pass),
                ("vela/ring/pop", Fail),
                ("vela/irq/msi", Pass),
            ])
        );
    }

    #[test]
    fn kselftest_runner_prefix_nesting() {
        let text = "\
TAP version 13
1..3
# timeout set to 45
# selftests: vela: vela_basic
# TAP version 13
# 1..3
# ok 1 open
# ok 2 ioctl # SKIP no device
# not ok 3 mmap
# # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
not ok 1 selftests: vela: vela_basic # exit=1
# selftests: vela: vela_stress
ok 2 selftests: vela: vela_stress
# selftests: vela: vela_sriov
# TAP version 13
# 1..1
# ok 1 vf_enable
not ok 3 selftests: vela: vela_sriov # exit=1
";
        let r = parse_tap("kselftest", text);
        assert_eq!(
            summary(&r),
            named(&[
                ("kselftest/selftests: vela: vela_basic/open", Pass),
                ("kselftest/selftests: vela: vela_basic/ioctl", Skip),
                ("kselftest/selftests: vela: vela_basic/mmap", Fail),
                ("kselftest/selftests: vela: vela_stress", Pass),
                ("kselftest/selftests: vela: vela_sriov/vf_enable", Pass),
                ("kselftest/selftests: vela: vela_sriov", Fail),
            ])
        );
        assert!(r[5].detail.as_deref().unwrap().contains("# exit=1"));
    }

    #[test]
    fn interleaved_kernel_lines_are_ignored() {
        let text = "\
TAP version 13
1..2
[    4.123456] vela 0000:00:04.0: queue 0 reset
ok 1 - reset
[    4.2] ok 2 - this is a kernel line, not a result
not ok 2 - irq
";
        let r = parse_tap("vela", text);
        assert_eq!(
            summary(&r),
            named(&[("vela/reset", Pass), ("vela/irq", Fail)])
        );
    }

    #[test]
    fn bail_out_fails_the_rest() {
        let text = "TAP version 13\n1..3\nok 1 a\nBail out! device vanished\nok 2 b\n";
        let r = parse_tap("vela", text);
        assert_eq!(
            summary(&r),
            named(&[
                ("vela/a", Pass),
                ("vela/#2 (no result)", Fail),
                ("vela/#3 (no result)", Fail),
            ])
        );
        assert_eq!(
            r[1].detail.as_deref(),
            Some("not run: Bail out! device vanished")
        );
        let r = parse_tap("vela", "TAP version 13\n1..1\nok 1 a\nBail out!\n");
        assert_eq!(
            summary(&r),
            named(&[("vela/a", Pass), ("vela/(bail out)", Fail)])
        );
    }

    #[test]
    fn truncated_nested_output() {
        let text = "\
TAP version 14
1..2
    # Subtest: ring
    1..3
    ok 1 push
";
        let r = parse_tap("vela", text);
        assert_eq!(
            summary(&r),
            named(&[
                ("vela/ring/push", Pass),
                ("vela/ring/#2 (no result)", Fail),
                ("vela/ring/#3 (no result)", Fail),
                ("vela/#2 (no result)", Fail),
            ])
        );
    }

    #[test]
    fn failing_suite_with_passing_tests_counts_once() {
        let text = "\
TAP version 14
1..1
    # Subtest: ring
    1..1
    ok 1 push
not ok 1 ring
";
        let r = parse_tap("vela", text);
        assert_eq!(
            summary(&r),
            named(&[("vela/ring/push", Pass), ("vela/ring", Fail)])
        );
    }

    #[test]
    fn line_classification() {
        assert_eq!(classify("    ok 1 x").0, 1);
        assert_eq!(classify("# # not ok 2 y").0, 2);
        assert_eq!(classify("    # Subtest: s"), (1, Item::Subtest("s")));
        assert_eq!(
            classify("# Totals: pass:1").1,
            Item::Other("# Totals: pass:1")
        );
        assert!(matches!(classify("okay then").1, Item::Other(_)));
        assert_eq!(
            classify("1..0 # Skipped: no hw").1,
            Item::Plan {
                count: 0,
                skip: Some("no hw")
            }
        );
    }
}
