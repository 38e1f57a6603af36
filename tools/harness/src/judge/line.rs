//! Serial-console line handling shared by the splat scanner, the KUnit
//! extractor and the TAP parser.

/// One console record: a physical line of the serial log, or a piece of
/// one when a `\r` or a second timestamped kernel message was interleaved
/// into it (the kernel console writes whenever it likes, including into the
/// middle of a half-written userspace line).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    /// 1-based physical line number in the serial log.
    pub line: usize,
    /// The message with `<N>`, timestamp and caller prefixes removed.
    pub body: &'a str,
    /// Whether the record carried a printk timestamp, i.e. came from the
    /// kernel rather than from userspace.
    pub timestamped: bool,
}

/// Splits a serial log into records.
pub(crate) fn records(log: &str) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    for (idx, phys) in log.split('\n').enumerate() {
        let line = idx + 1;
        let before = out.len();
        for seg in phys.split('\r') {
            let mut rest = seg;
            while let Some(pos) = embedded_timestamp(rest) {
                push_record(&mut out, line, &rest[..pos]);
                rest = &rest[pos..];
            }
            push_record(&mut out, line, rest);
        }
        if out.len() == before {
            // Keep blank lines so excerpts and line numbers stay faithful.
            out.push(Record {
                line,
                body: "",
                timestamped: false,
            });
        }
    }
    out
}

fn push_record<'a>(out: &mut Vec<Record<'a>>, line: usize, seg: &'a str) {
    if seg.trim().is_empty() {
        return;
    }
    let (body, timestamped) = strip_kernel_prefix(seg);
    out.push(Record {
        line,
        body: body.trim_end(),
        timestamped,
    });
}

/// Removes a leading `<N>` log level, `[   12.345678]` timestamp and
/// `[  T123]` / `[    C0]` caller id (with or without a space between the
/// last two, as `CONFIG_PRINTK_CALLER` prints them back to back). Returns the
/// message, which keeps its own indentation, and whether a timestamp was seen.
pub(crate) fn strip_kernel_prefix(s: &str) -> (&str, bool) {
    let mut rest = s;
    let mut stripped = false;
    if let Some(r) = log_level(rest) {
        rest = r;
        stripped = true;
    }
    let timestamped = match bracket(rest, |inner| is_timestamp(inner, false)) {
        Some(r) => {
            rest = r;
            stripped = true;
            true
        }
        None => false,
    };
    let caller = bracket(rest, is_caller).or_else(|| {
        rest.strip_prefix(' ')
            .filter(|_| timestamped)
            .and_then(|r| bracket(r, is_caller))
    });
    if let Some(r) = caller {
        rest = r;
        stripped = true;
    }
    if stripped {
        rest = rest.strip_prefix(' ').unwrap_or(rest);
    }
    (rest, timestamped)
}

fn log_level(s: &str) -> Option<&str> {
    let inner_end = s.strip_prefix('<')?.find('>')?;
    let inner = &s[1..1 + inner_end];
    let valid = !inner.is_empty() && inner.len() <= 3 && inner.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| &s[inner_end + 2..])
}

/// If `s` opens with `[...]` whose trimmed contents satisfy `pred`, returns
/// what follows the `]`.
fn bracket(s: &str, pred: impl Fn(&str) -> bool) -> Option<&str> {
    let end = s.strip_prefix('[')?.find(']')?;
    pred(s[1..1 + end].trim_start()).then(|| &s[end + 2..])
}

/// `12.345678`; printk always prints six fractional digits, but shortened
/// hand-written or post-processed logs exist, so the strict form is only
/// demanded when hunting for a timestamp in the middle of a line.
fn is_timestamp(inner: &str, strict: bool) -> bool {
    let Some((secs, frac)) = inner.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(secs) && digits(frac) && (!strict || frac.len() == 6)
}

fn is_caller(inner: &str) -> bool {
    let mut chars = inner.chars();
    matches!(chars.next(), Some('T' | 'C'))
        && !chars.as_str().is_empty()
        && chars.as_str().bytes().all(|b| b.is_ascii_digit())
}

/// Byte offset of a strict printk timestamp that does not start the string.
fn embedded_timestamp(s: &str) -> Option<usize> {
    s.match_indices('[')
        .map(|(pos, _)| pos)
        .filter(|&pos| pos > 0)
        .find(|&pos| bracket(&s[pos..], |inner| is_timestamp(inner, true)).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_timestamp_and_caller_variants() {
        let cases = [
            ("[   12.345678] WARNING: x", "WARNING: x", true),
            (
                "[    0.000000][    T0] Linux version",
                "Linux version",
                true,
            ),
            ("[   12.345678] [  T123] msg", "msg", true),
            ("[    3.100000][    C1]     ok 1 t", "    ok 1 t", true),
            ("<4>[    1.000000] msg", "msg", true),
            ("[    3.1]     KTAP version 1", "    KTAP version 1", true),
            ("plain userspace", "plain userspace", false),
            ("[ cut here ]", "[ cut here ]", false),
        ];
        for (input, body, ts) in cases {
            assert_eq!(strip_kernel_prefix(input), (body, ts), "{input:?}");
        }
    }

    #[test]
    fn splits_interleaved_messages() {
        let log = "ok 1 - a\r\nprogress 10%\rprogress 20%[    5.100000] BUG: x\n\n[ 1.000000] y";
        let recs = records(log);
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.line, r.body, r.timestamped))
            .collect();
        assert_eq!(
            got,
            [
                (1, "ok 1 - a", false),
                (2, "progress 10%", false),
                (2, "progress 20%", false),
                (2, "BUG: x", true),
                (3, "", false),
                (4, "y", true),
            ]
        );
    }
}
