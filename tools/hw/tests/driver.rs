// SPDX-License-Identifier: GPL-2.0
//! The driver's register map (`accel/hw/regs.rs`, kernel `register!` syntax) must agree with
//! this crate: every register it declares exists in the spec at the same offset (and stride,
//! for arrays), and every field it declares covers the bits the spec gives that field.
//!
//! The file is read as text, not compiled: the parser takes what it recognises (register
//! headers `NAME(u32) @ 0x10 {`, `NAME @ 0x10 {`, arrays `[COUNT, stride = S]` or
//! `@ 0x10[COUNT; S]`, field lines `H:L name ...;`) and skips anything else, so typed field
//! forms (`as u8`, `?=> Kind`, `=> Kind`), descriptions, doc comments and attributes do not
//! upset it. A name matching no spec field is accepted when its bits are exactly a spec
//! field's (the driver may name fields its own way) or the whole register.

use std::collections::BTreeMap;
use std::path::PathBuf;

use vela_hw::regs;

#[derive(Debug, PartialEq)]
struct DriverField {
    name: String,
    hi: u32,
    lo: u32,
}

/// An array's (count if known, stride).
type Array = (Option<u64>, u64);

#[derive(Debug, PartialEq)]
struct DriverReg {
    name: String,
    offset: u64,
    /// (count, stride) of an array; the count may be a constant of the file.
    array: Option<Array>,
    fields: Vec<DriverField>,
}

fn number(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The text without comments (line and block) and string contents, so neither can be taken
/// for syntax. Newlines are kept.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Removes `#[...]` and `#![...]` attributes (bracket-balanced).
fn strip_attributes(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let start = if b[i] == b'#' && b.get(i + 1) == Some(&b'[') {
            Some(i + 1)
        } else if b[i] == b'#' && b.get(i + 1) == Some(&b'!') && b.get(i + 2) == Some(&b'[') {
            Some(i + 2)
        } else {
            None
        };
        if let Some(open) = start {
            if let Some(close) = matching(text, open) {
                i = close + 1;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Index of the bracket closing the one at `open`.
fn matching(text: &str, open: usize) -> Option<usize> {
    let b = text.as_bytes();
    let (o, c) = match b.get(open)? {
        b'(' => (b'(', b')'),
        b'[' => (b'[', b']'),
        b'{' => (b'{', b'}'),
        _ => return None,
    };
    let mut depth = 0;
    for (i, &x) in b.iter().enumerate().skip(open) {
        if x == o {
            depth += 1;
        } else if x == c {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// `const NAME: ty = value;` items of the file whose value is a plain number.
fn constants(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for stmt in text.split(';') {
        let Some(pos) = stmt.find("const ") else {
            continue;
        };
        let rest = &stmt[pos + "const ".len()..];
        let (Some((name, _)), Some((_, value))) = (rest.split_once(':'), rest.split_once('='))
        else {
            continue;
        };
        if let Some(v) = number(value) {
            out.insert(name.trim().to_string(), v);
        }
    }
    out
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A register header: the text between the previous item and a field block's `{`.
fn header(text: &str, consts: &BTreeMap<String, u64>) -> Option<(String, u64, Option<Array>)> {
    let (before, after) = text.rsplit_once('@')?;
    // Name: the last identifier before `@`, after stripping `(u32)` and `[...]`.
    let mut name_part = before.trim().to_string();
    let mut array = None;
    if name_part.ends_with(']') {
        let open = name_part.rfind('[')?;
        array = array_spec(&name_part[open + 1..name_part.len() - 1], consts);
        name_part.truncate(open);
    }
    let name_part = name_part.trim();
    let name_part = match name_part.strip_suffix(')') {
        Some(p) => p.rsplit_once('(')?.0,
        None => name_part,
    };
    let name = name_part.split_whitespace().last()?.to_string();
    if !is_ident(&name) {
        return None;
    }
    // Offset: a number, possibly followed by `[COUNT; STRIDE]` and a description.
    let after = after.split(',').next()?.trim();
    let (off, arr) = match after.split_once('[') {
        Some((o, a)) => (o.trim(), Some(a.trim_end_matches(']'))),
        None => (after, None),
    };
    let offset = number(off)?;
    if let Some(a) = arr {
        array = array_spec(a, consts);
    }
    Some((name, offset, array))
}

/// `COUNT, stride = S` or `COUNT; S`: (count if known, stride).
fn array_spec(s: &str, consts: &BTreeMap<String, u64>) -> Option<Array> {
    let (count, stride) = s.split_once([',', ';'])?;
    let stride = stride.trim();
    let stride = stride
        .strip_prefix("stride")
        .map_or(stride, |s| s.trim_start().trim_start_matches('='));
    let count = count.trim();
    let count = number(count).or_else(|| consts.get(count).copied());
    Some((count, number(stride)?))
}

/// `H:L name ...` lines of a field block.
fn fields(block: &str) -> Vec<DriverField> {
    block
        .split(';')
        .filter_map(|item| {
            let mut words = item.split_whitespace();
            let (hi, lo) = words.next()?.split_once(':')?;
            let name = words.next()?.trim_end_matches(',');
            if !is_ident(name) {
                return None;
            }
            Some(DriverField {
                name: name.to_string(),
                hi: hi.parse().ok()?,
                lo: lo.parse().ok()?,
            })
        })
        .collect()
}

/// The text after the last `;` that is not inside brackets: the start of the current item.
fn last_item(text: &str) -> &str {
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ';' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    &text[start..]
}

fn parse(source: &str) -> Vec<DriverReg> {
    let text = strip_attributes(&strip(source));
    let consts = constants(&text);
    let mut regs = Vec::new();
    let mut at = 0;
    while let Some(pos) = text[at..].find("register!") {
        let start = at + pos + "register!".len();
        let Some(open) = text[start..].find(['(', '{', '[']).map(|o| start + o) else {
            break;
        };
        let Some(close) = matching(&text, open) else {
            break;
        };
        let body = &text[open + 1..close];
        // Items are `header { fields }`, one after the other.
        let mut from = 0;
        while let Some(b) = body[from..].find('{').map(|b| from + b) {
            let Some(e) = matching(body, b) else {
                break;
            };
            let head = last_item(&body[from..b]);
            if let Some((name, offset, array)) = header(head, &consts) {
                regs.push(DriverReg {
                    name,
                    offset,
                    array,
                    fields: fields(&body[b + 1..e]),
                });
            }
            from = e + 1;
        }
        at = close + 1;
    }
    regs
}

/// What is wrong with one driver register, if anything.
fn compare(r: &DriverReg) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(spec) = regs::find(&r.name) else {
        return vec![format!("{}: not a register of the spec", r.name)];
    };
    if r.offset != u64::from(spec.offset) {
        errors.push(format!(
            "{}: at {:#x} in the driver, {:#x} in the spec",
            r.name, r.offset, spec.offset
        ));
    }
    match r.array {
        None if spec.count > 1 => errors.push(format!(
            "{}: one register in the driver, an array of {} in the spec",
            r.name, spec.count
        )),
        Some((count, stride)) => {
            if spec.count <= 1 || stride != u64::from(spec.stride) {
                errors.push(format!(
                    "{}: stride {stride:#x} in the driver, {:#x} in the spec",
                    r.name, spec.stride
                ));
            }
            if count.is_some_and(|c| c as usize > spec.count) {
                errors.push(format!(
                    "{}: {count:?} instances in the driver, {} in the spec",
                    r.name, spec.count
                ));
            }
        }
        None => {}
    }
    for f in &r.fields {
        let named = spec
            .fields
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&f.name));
        let ok = match named {
            Some(s) => (s.hi, s.lo) == (f.hi, f.lo),
            None => {
                spec.fields.iter().any(|s| (s.hi, s.lo) == (f.hi, f.lo)) || (f.hi, f.lo) == (31, 0)
            }
        };
        if !ok {
            errors.push(format!(
                "{}.{}: bits {}:{} in the driver; spec fields {:?}",
                r.name, f.name, f.hi, f.lo, spec.fields
            ));
        }
    }
    errors
}

#[test]
fn driver_register_map_matches_the_spec() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../accel/hw/regs.rs");
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = parse(&source);
    // A parser that stopped recognising the file would pass vacuously.
    for name in ["ID", "VERSION", "CAPS"] {
        assert!(
            parsed.iter().any(|r| r.name == name),
            "{name} not found in {}: {parsed:#?}",
            path.display()
        );
    }
    let errors: Vec<String> = parsed.iter().flat_map(compare).collect();
    assert!(
        errors.is_empty(),
        "{}:\n{}",
        path.display(),
        errors.join("\n")
    );
}

#[test]
fn parser_forms() {
    let src = r#"
        use kernel::io::register;
        /// Queues.
        pub(crate) const MAX_QUEUES: usize = 16;
        register! {
            /// Doc with a { brace and a : colon.
            #[allow(dead_code)]
            pub(crate) VERSION(u32) @ 0x0004 {
                /// Major.
                31:16 major as u16;
                15:0 minor;
            }
            pub(crate) Q_STATUS(u32)[MAX_QUEUES, stride = 0x40] @ 0x1014 {
                0:0 idle as bool;
                15:8 code ?=> QueueError;
                3:3 enabled => Enabled;
            }
        }
        register!(CAPS @ 0x0008, "What the device can do" {
            0:0 copy as bool, "copy engine";
        });
        register!(CTX_CONTROL @ 0x2008[16; 0x20] {
            2:2 invalidate;
        });
        // register!(NOT_A_REGISTER @ 0x4 { 1:0 x; });
        const X: u32 = 0; // @ 0x10 { 3:0 y; }
    "#;
    let got = parse(src);
    let names: Vec<&str> = got.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["VERSION", "Q_STATUS", "CAPS", "CTX_CONTROL"]);
    assert_eq!(got[0].fields.len(), 2);
    assert_eq!(got[1].array, Some((Some(16), 0x40)));
    assert_eq!(got[1].offset, 0x1014);
    assert_eq!(
        got[1]
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.hi, f.lo))
            .collect::<Vec<_>>(),
        [("idle", 0, 0), ("code", 15, 8), ("enabled", 3, 3)]
    );
    assert_eq!(got[3].array, Some((Some(16), 0x20)));
    assert!(
        got.iter().all(|r| compare(r).is_empty()),
        "{:?}",
        got.iter().map(compare).collect::<Vec<_>>()
    );
}

#[test]
fn mismatches_are_reported() {
    let bad = parse(
        "register! {
            ID(u32) @ 0x0004 { 31:0 magic; }
            NOT_IN_SPEC(u32) @ 0x0300 { 31:0 value; }
            Q_STATUS(u32)[16, stride = 0x40] @ 0x1014 { 15:9 error_code; 7:4 mystery; }
            Q_HEAD(u32) @ 0x1018 { 15:0 slot; }
        }",
    );
    let errors: Vec<String> = bad.iter().flat_map(compare).collect();
    for want in [
        "ID: at 0x4",
        "NOT_IN_SPEC: not a register",
        "Q_STATUS.error_code",
        "Q_STATUS.mystery",
        "Q_HEAD: one register",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "{want} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), 5, "{errors:#?}");
}
