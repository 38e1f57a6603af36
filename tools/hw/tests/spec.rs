// SPDX-License-Identifier: GPL-2.0
//! The spec pages and this crate must say the same thing: these tests read the tables of
//! `Documentation/hardware/*.rst` and compare every offset, field, code, id and command layout
//! with the crate's definitions, both ways.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of_val};
use std::ops::Range;
use std::path::PathBuf;

use vela_hw::bits::Field;
use vela_hw::cmd::{
    self, Command, CopyCmd, FenceCmd, FillCmd, Header, KernelCmd, NopCmd, Opcode, SignalCmd,
};
use vela_hw::regs::*;
use vela_hw::{compute, mmu, pci, Kernel, Pte};
use zerocopy::FromZeros;

fn doc(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../Documentation/hardware")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not found"));
    let len = text[start..]
        .find(to)
        .unwrap_or_else(|| panic!("{to:?} not found after {from:?}"));
    &text[start..start + len]
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn is_upper_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Rows of simple tables whose first column is a number and whose `name_col`-th column is an
/// UPPER_CASE name: name -> number.
fn rows(text: &str, name_col: usize) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(first), Some(name)) = (cols.first(), cols.get(name_col)) else {
            continue;
        };
        let name = name.trim_matches('`');
        if let (Some(n), true) = (number(first), is_upper_name(name)) {
            out.insert(name.to_string(), n);
        }
    }
    out
}

fn check<V: PartialEq + std::fmt::Debug>(
    what: &str,
    documented: &BTreeMap<String, V>,
    ours: BTreeMap<String, V>,
) {
    assert_eq!(
        documented, &ours,
        "{what}: documentation (left) and vela-hw (right) differ"
    );
}

/// A bit range as the spec writes it: `7:0` or `8`.
fn bit_range(s: &str) -> Option<(u32, u32)> {
    match s.split_once(':') {
        Some((h, l)) => Some((h.parse().ok()?, l.parse().ok()?)),
        None => s.parse().ok().map(|b| (b, b)),
    }
}

/// The rows of a "Bits  Field  Meaning" table: named fields, and the ranges marked `-`.
/// A bit range `(hi, lo)`.
type Bits = (u32, u32);

fn field_table(text: &str) -> (BTreeMap<String, Bits>, Vec<Bits>) {
    let mut named = BTreeMap::new();
    let mut unnamed = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(bits), Some(name)) = (cols.first(), cols.get(1)) else {
            continue;
        };
        let Some(range) = bit_range(bits) else {
            continue;
        };
        // `QUEUE[N]`: one bit per queue, which the crate calls QUEUES.
        let name = match name.strip_suffix("[N]") {
            Some(n) => format!("{n}S"),
            None => name.to_string(),
        };
        if name == "-" {
            unnamed.push(range);
        } else if is_upper_name(&name) {
            named.insert(name, range);
        }
    }
    (named, unnamed)
}

/// Compares a documented field table with a crate type's fields: every named field the same,
/// and the crate's other fields exactly the ranges the spec marks reserved or ignored.
fn check_fields(what: &str, table: &str, fields: &[Field]) {
    let (named, unnamed) = field_table(table);
    assert!(!named.is_empty(), "{what}: no field table found");
    let ours = fields
        .iter()
        .filter(|f| named.contains_key(f.name) || !unnamed.contains(&(f.hi, f.lo)))
        .map(|f| (f.name.to_string(), (f.hi, f.lo)))
        .collect();
    check(what, &named, ours);
}

/// The indented text under a line that starts with `heading`, up to the next line that is
/// neither blank nor indented.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .lines()
        .scan(0, |pos, l| {
            let here = *pos;
            *pos += l.len() + 1;
            Some((here, l))
        })
        .find(|(_, l)| l.starts_with(heading))
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("{heading:?} not found"));
    let body = &text[start..];
    let mut end = body.find('\n').map_or(body.len(), |n| n + 1);
    for line in body[end..].split_inclusive('\n') {
        if !(line.trim().is_empty() || line.starts_with(' ')) {
            break;
        }
        end += line.len();
    }
    &body[..end]
}

#[test]
fn global_registers() {
    let map = doc("registers.rst");
    let table = between(&map, "\nMap\n", "\nIdentity\n");
    let ours = GLOBAL
        .iter()
        .filter(|r| is_upper_name(r.name))
        .map(|r| (r.name.to_string(), u64::from(r.offset)))
        .collect();
    check("BAR0 map", &rows(table, 1), ours);
    for b in BLOCKS {
        let text = format!("{:#06x} + ", b.base);
        assert!(table.contains(&text), "{}: {text}", b.name);
    }
    for (text, base) in [
        ("0x0100 + 8*N", counter_lo(Counter::CommandsCompleted)),
        ("0x0104 + 8*N", counter_hi(Counter::CommandsCompleted)),
        ("0x1000 + 0x40*Q", QUEUE_BASE),
        ("0x2000 + 0x20*C", CTX_BASE),
        ("0x3000 + 0x40*P", PART_BASE),
        ("0x8000 + 16*V", MSIX_TABLE),
        ("0x9000           MSI-X PBA", MSIX_PBA),
    ] {
        assert!(table.contains(text), "{text}");
        assert!(
            text.starts_with(&format!("{base:#06x}")),
            "{text} vs {base:#x}"
        );
    }
    assert!(table.contains(&format!("0x{QUEUE_BASE:04x} + 0x{QUEUE_STRIDE:x}*Q")));
    assert!(table.contains(&format!("0x{CTX_BASE:04x} + 0x{CTX_STRIDE:x}*C")));
    assert!(table.contains(&format!("0x{PART_BASE:04x} + 0x{PART_STRIDE:x}*P")));
    assert!(table.contains(&format!("0x{COUNTER_BASE:04x} + {COUNTER_STRIDE}*N")));
    assert!(table.contains(&format!("0x{MSIX_TABLE:04x} + {MSIX_ENTRY_SIZE}*V")));
}

#[test]
fn reset_values() {
    let map = doc("registers.rst");
    let table = between(&map, "\nMap\n", "\nIdentity\n");
    let reset = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(number)
            .unwrap_or_else(|| panic!("no reset value for {name}"))
    };
    assert_eq!(reset("ID"), u64::from(ID_VALUE));
    assert_eq!(&ID_VALUE.to_le_bytes(), b"VELA");
    assert_eq!(reset("VERSION"), u64::from(VERSION_VALUE));
    assert_eq!(reset("CAPS"), u64::from(Caps::ALL.bits()));
    assert_eq!(reset("INT_MASK"), u64::from(INT_MASK_RESET));
    assert_eq!(
        reset("DEVICE_STATUS"),
        u64::from(DeviceStatus(0).with_ready(true).bits())
    );
    assert_eq!(reset("SCRATCH"), 0);
    let id = section(&map, "ID (0x0000");
    assert!(id.contains(&format!("``{ID_VALUE:#010x}``")), "{id}");
    let v = section(&map, "VERSION (0x0004");
    assert!(v.contains(&format!("MAJOR   {VERSION_MAJOR}.")), "{v}");
    assert!(v.contains(&format!("MINOR   {VERSION_MINOR}.")), "{v}");
    let t2 = section(&map, "TOPOLOGY2 (0x0020");
    assert!(t2.contains(&format!("contexts ({NUM_CONTEXTS})")), "{t2}");
    assert!(t2.contains(&format!("width ({})", mmu::VA_BITS)), "{t2}");
    let q = section(&map, "TOPOLOGY (0x0018");
    assert!(q.contains(&format!("(1 to {MAX_QUEUES})")), "{q}");
}

#[test]
fn global_register_fields() {
    let map = doc("registers.rst");
    for (heading, fields) in [
        ("VERSION (0x0004", Version::FIELDS),
        ("CAPS (0x0008", Caps::FIELDS),
        ("TOPOLOGY (0x0018", Topology::FIELDS),
        ("TOPOLOGY2 (0x0020", Topology2::FIELDS),
        ("TOPOLOGY3 (0x0024", Topology3::FIELDS),
        ("PF_QUANTUM (0x0028", Quantum::FIELDS),
        ("DEVICE_CONTROL (0x0030", DeviceControl::FIELDS),
        ("DEVICE_STATUS (0x0034", DeviceStatus::FIELDS),
        ("COUNTER_CONTROL (0x0180", CounterControl::FIELDS),
        ("QUEUE_ERROR_SUMMARY (0x0050", QueueErrorSummary::FIELDS),
        ("CTX_FAULT_SUMMARY (0x0054", CtxFaultSummary::FIELDS),
    ] {
        check_fields(heading, section(&map, heading), fields);
        let name = heading.split(' ').next().unwrap_or_default();
        let reg = GLOBAL.iter().find(|r| r.name == name);
        assert_eq!(reg.map(|r| r.fields), Some(fields), "{name} in GLOBAL");
    }
    let irq = doc("interrupts.rst");
    check_fields(
        "interrupt sources",
        between(&irq, "\nSources\n", "\nRegisters\n"),
        IntSources::FIELDS,
    );
    for name in ["INT_STATUS", "INT_MASK", "INT_TRIGGER"] {
        let fields = find(name).map(|l| l.fields);
        assert_eq!(fields, Some(IntSources::FIELDS), "{name}");
        assert!(irq.contains(&format!(
            "{name} ({:#06x}",
            find(name).map_or(0, |l| l.offset)
        )));
    }
}

/// The rows of the queue or context block table: name -> (offset, all text of the row).
fn block_rows(text: &str) -> BTreeMap<String, (u64, String)> {
    let mut out: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match (cols.first().and_then(|c| number(c)), cols.get(1)) {
            (Some(off), Some(name)) if is_upper_name(name) => {
                out.insert(name.to_string(), (off, line.to_string()));
                current = Some(name.to_string());
            }
            _ if line.starts_with(' ') && !line.trim().is_empty() => {
                if let Some((_, row)) = current.as_ref().and_then(|c| out.get_mut(c)) {
                    row.push(' ');
                    row.push_str(line.trim());
                }
            }
            _ => current = None,
        }
    }
    out
}

/// Fields a block table's row names in prose: "bit N NAME" or "bits H:L NAME".
fn prose_fields(row: &str) -> BTreeMap<String, (u32, u32)> {
    let words: Vec<&str> = row
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = BTreeMap::new();
    for w in words.windows(3) {
        if let ("bit" | "bits", Some(r), name) = (w[0], bit_range(w[1]), w[2]) {
            if is_upper_name(name) {
                out.insert(name.to_string(), r);
            }
        }
    }
    out
}

fn check_block(what: &str, text: &str, block: &Block) {
    let documented = block_rows(text);
    let offsets = documented
        .iter()
        .map(|(n, (o, _))| (n.clone(), *o))
        .collect();
    let ours = block
        .registers
        .iter()
        .map(|r| (r.name.to_string(), u64::from(r.offset)))
        .collect();
    check(what, &offsets, ours);
    for reg in block.registers {
        let row = &documented[reg.name].1;
        let named = prose_fields(row);
        let ours = reg
            .fields
            .iter()
            .filter(|f| named.contains_key(f.name))
            .map(|f| (f.name.to_string(), (f.hi, f.lo)))
            .collect();
        check(reg.name, &named, ours);
        // Fields the row does not name must still be where it says.
        for f in reg.fields {
            let text = if f.hi == f.lo {
                format!("bit {}", f.lo)
            } else {
                format!("bits {}:{}", f.hi, f.lo)
            };
            assert!(
                row.contains(&text),
                "{}.{}: {text:?} in {row:?}",
                reg.name,
                f.name
            );
        }
    }
}

#[test]
fn queue_and_context_blocks() {
    let map = doc("registers.rst");
    let q = between(&map, "\nQueue registers\n", "\nContext registers\n");
    let c = between(&map, "\nContext registers\n", "\nMSI-X table and PBA\n");
    check_block("queue block", q, &QUEUE_BLOCK);
    check_block("context block", c, &CONTEXT_BLOCK);
    assert!(q.contains(&format!("``0x{QUEUE_BASE:04x} + 0x{QUEUE_STRIDE:x} * Q``")));
    assert!(c.contains(&format!("``0x{CTX_BASE:04x} + 0x{CTX_STRIDE:x} * C``")));
    assert!(c.contains(&format!("(0 <= C < {NUM_CONTEXTS})")));

    let queues = doc("queues.rst");
    check_fields(
        "Q_STATUS",
        between(&queues, "\nQ_STATUS fields\n", "\nQ_CONTROL fields\n"),
        QStatus::FIELDS,
    );
    check_fields(
        "Q_CONTROL",
        between(&queues, "\nQ_CONTROL fields\n", "\nErrors\n"),
        QControl::FIELDS,
    );
    assert!(queues.contains(&format!(
        "``{} <= LOG2_SLOTS <= {}``",
        queue::RING_LOG2_MIN,
        queue::RING_LOG2_MAX
    )));
    assert!(queues.contains(&format!("must be {}-byte aligned", queue::RING_ALIGN)));
    assert!(queues.contains(&format!("must be {}-byte aligned", queue::FENCE_ALIGN)));

    let m = doc("mmu.rst");
    check_fields(
        "CTX_CONTROL",
        section(&m, "CTX_CONTROL"),
        CtxControl::FIELDS,
    );
    check_fields(
        "CTX_FAULT_STATUS",
        between(&m, "CTX_FAULT_STATUS layout:", "Recovery:"),
        CtxFaultStatus::FIELDS,
    );
}

#[test]
fn partitions() {
    let p = doc("partitions.rst");
    let block = between(&p, "\nPartition registers\n", "The configuration registers");
    check_block("partition block", block, &PART_BLOCK);
    assert!(block.contains(&format!("``0x{PART_BASE:04x} + 0x{PART_STRIDE:x} * P``")));
    assert!(block.contains(&format!("(0 <= P < {NUM_PARTITIONS})")));
    check_fields(
        "PART_CONTROL",
        between(&p, "\nPART_CONTROL fields\n", "Writing ENABLE and RESET"),
        PartControl::FIELDS,
    );
    let ours = PartError::ALL
        .iter()
        .filter(|e| **e != PartError::None)
        .map(|e| (e.spec_name().to_string(), u64::from(e.raw())))
        .collect();
    check(
        "partition config errors",
        &rows(between(&p, "\nEnable checks\n", "The checks run"), 1),
        ours,
    );
    check_fields(
        "IOVA table entry",
        between(&p, "\nIOVA table entry\n", "The device may cache"),
        vela_hw::IovaEntry::FIELDS,
    );
    assert!(p.contains(&format!("(``{:#010x}``)", Caps::WINDOW.bits())));
    assert!(p.contains(&format!(
        "up to\n``TOPOLOGY3.PARTITIONS`` ({NUM_PARTITIONS})"
    )));
    assert!(p.contains(&format!(
        "BAR4 (:doc:`pci`) holds {NUM_PARTITIONS} windows of {} KiB",
        pci::WINDOW_SIZE / 1024
    )));
    assert!(p.contains("a 2 MiB aligned range") && part::VRAM_ALIGN == 2 << 20);
    assert!(p.contains("below ``PART_IOVA_PAGES * 4096``") && part::IOVA_PAGE_SIZE == 4096);
    assert!(p.contains("(4 KiB aligned)") && part::IOVA_TABLE_ALIGN == 4096);
    let map = doc("registers.rst");
    let t3 = section(&map, "TOPOLOGY3 (0x0024");
    assert!(t3.contains(&format!("({NUM_PARTITIONS} when")), "{t3}");
    let pcidoc = doc("pci.rst");
    assert!(pcidoc.contains(&format!(
        "{} KiB                    partition",
        pci::BAR4_SIZE / 1024
    )));
    assert!(pcidoc.contains(&format!(
        "BAR4 reads ``{:#010x}``",
        !(pci::BAR4_SIZE as u32 - 1)
    )));
}

#[test]
fn msix() {
    let map = doc("registers.rst");
    let t = between(&map, "\nMSI-X table and PBA\n", "reset 1)");
    assert!(t.contains(&format!(
        "``{MSIX_TABLE:#06x}`` ({MSIX_ENTRY_SIZE} bytes per vector"
    )));
    assert!(t.contains(&format!("``{MSIX_PBA:#06x}``")));
    assert!(t.contains("+0xc vector control (bit 0\nMASK"));
    assert_eq!(MsixVectorControl::MASK, Field::new("MASK", 0, 0));
    let offs: Vec<u32> = MSIX_BLOCK.registers.iter().map(|r| r.offset).collect();
    assert_eq!(offs, [0x0, 0x4, 0x8, 0xc]);
    let p = doc("pci.rst");
    assert!(p.contains(&format!("0x{MSIX_TABLE:08x} (BAR0 + {MSIX_TABLE:#x})")));
    assert!(p.contains(&format!("0x{MSIX_PBA:08x} (BAR0 + {MSIX_PBA:#x})")));
    assert_eq!(queue_vector(0), 1);
    assert!(p.contains(&format!("{VECTOR_ERROR}           errors and faults")));
}

#[test]
fn counters() {
    let map = doc("registers.rst");
    let t = between(&map, "\nCounters\n", "COUNTER_CONTROL (0x0180");
    let ours = Counter::ALL
        .iter()
        .map(|c| (c.spec_name().to_string(), u64::from(c.raw())))
        .collect();
    check("counters", &rows(t, 2), ours);
    for c in Counter::ALL {
        let off = format!("0x{:04x}", counter_lo(c));
        assert!(
            t.contains(&format!("{:<3}  {off}", c.raw())),
            "counter {c:?} at {off}"
        );
    }
}

#[test]
fn codes() {
    let q = doc("queues.rst");
    let ours = QueueError::ALL
        .iter()
        .filter(|e| **e != QueueError::None)
        .map(|e| (e.spec_name().to_string(), u64::from(e.raw())))
        .collect();
    check(
        "queue errors",
        &rows(&q[q.find("\nErrors\n").unwrap_or(0)..], 1),
        ours,
    );
    assert!(q.contains("``ERROR_CODE`` says why") && q.contains("why ERROR is set; 0 otherwise"));

    let m = doc("mmu.rst");
    let ours = FaultReason::ALL
        .iter()
        .map(|r| (r.spec_name().to_string(), u64::from(r.raw())))
        .collect();
    check(
        "fault reasons",
        &rows(between(&m, "\nFaults\n", "On a fault"), 1),
        ours,
    );
}

#[test]
fn opcodes_and_kernels() {
    let c = doc("commands.rst");
    let ops = between(&c, "=======  ========  ===========", "Any other opcode");
    let ours = Opcode::ALL
        .iter()
        .map(|o| (o.spec_name().to_string(), u64::from(o.raw())))
        .collect();
    check("opcodes", &rows(ops, 1), ours);
    for o in Opcode::ALL {
        let engine = ops
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(o.spec_name()))
            .and_then(|l| l.split_whitespace().nth(2));
        let want = match o.engine() {
            cmd::Engine::Copy => "copy",
            cmd::Engine::Compute => "compute",
        };
        assert_eq!(engine, Some(want), "{o:?}");
    }

    let k = doc("compute.rst");
    let ours = Kernel::ALL
        .iter()
        .map(|k| (k.spec_name().to_string(), u64::from(k.raw())))
        .collect();
    check("kernels", &rows(&k, 1), ours);
    assert!(k.contains(&format!(
        "``COUNT`` is at most 2^{}",
        compute::MAX_COUNT.trailing_zeros()
    )));
    assert!(k.contains(&format!(
        "``M*N*K`` at most 2^{}",
        compute::MAX_MATMUL_WORK.trailing_zeros()
    )));
}

#[test]
fn command_header() {
    let c = doc("commands.rst");
    check_fields(
        "command header",
        between(&c, "\nHeader (bytes 0-3)\n", "=======  ========  ==="),
        Header::FIELDS,
    );
    assert!(c.contains(&format!("Every command is one {}-byte slot", cmd::SIZE)));
    assert!(c.contains(&format!(
        "at most 2^{} (else ``BAD_LENGTH``)",
        cmd::MAX_TRANSFER.trailing_zeros()
    )));
}

/// A command's layout table: (offset, size, field) rows, reserved rows apart.
/// (offset, size, name) of a command's field.
type Row = (usize, usize, String);

fn layout(c: &str, op: Opcode) -> (Vec<Row>, Vec<Range<usize>>) {
    let heading = format!("\n{} ({:#04x})\n", op.spec_name(), op.raw());
    let start = c
        .find(&heading)
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let text = &c[start + heading.len()..];
    // Up to the next section: a title line underlined with `=` only.
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| !w[1].is_empty() && w[1].chars().all(|c| c == '='))
        .unwrap_or(lines.len());
    let text = lines[..end].join("\n");
    let mut fields = Vec::new();
    let mut reserved = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(off), Some(size), Some(name)) = (
            cols.first().and_then(|c| number(c)),
            cols.get(1).and_then(|c| number(c)),
            cols.get(2),
        ) else {
            continue;
        };
        let (off, size) = (off as usize, size as usize);
        let name = name.trim_end_matches([':', ',']).to_ascii_lowercase();
        if name == "reserved" {
            reserved.push(off..off + size);
        } else {
            fields.push((off, size, name));
        }
    }
    (fields, reserved)
}

macro_rules! fields {
    ($ty:ident: $($f:ident),*) => {{
        let z = $ty::new_zeroed();
        #[allow(unused_mut)]
        let mut v = vec![("header".to_string(), offset_of!($ty, header), size_of_val(&z.header))];
        $( v.push((stringify!($f).to_string(), offset_of!($ty, $f), size_of_val(&z.$f))); )*
        v
    }};
}

fn check_layout<C: Command>(c: &str, ours: Vec<(String, usize, usize)>) {
    let (fields, reserved) = layout(c, C::OPCODE);
    let documented: BTreeMap<String, (usize, usize)> =
        fields.into_iter().map(|(o, s, n)| (n, (o, s))).collect();
    let ours = ours.into_iter().map(|(n, o, s)| (n, (o, s))).collect();
    check(C::OPCODE.spec_name(), &documented, ours);
    assert_eq!(
        reserved,
        C::RESERVED,
        "{} reserved bytes",
        C::OPCODE.spec_name()
    );
    // Every byte is a field or reserved, once.
    let mut covered = [0u8; cmd::SIZE];
    for r in documented.values().map(|&(o, s)| o..o + s).chain(reserved) {
        for b in r {
            covered[b] += 1;
        }
    }
    assert!(
        covered.iter().all(|&n| n == 1),
        "{}: {covered:?}",
        C::OPCODE.spec_name()
    );
}

#[test]
fn command_layouts() {
    let c = doc("commands.rst");
    check_layout::<NopCmd>(&c, fields!(NopCmd:));
    check_layout::<FenceCmd>(&c, fields!(FenceCmd: addr, value));
    check_layout::<SignalCmd>(&c, fields!(SignalCmd: value));
    check_layout::<CopyCmd>(&c, fields!(CopyCmd: src, dst, length));
    check_layout::<FillCmd>(&c, fields!(FillCmd: pattern, dst, length));
    check_layout::<KernelCmd>(
        &c,
        fields!(KernelCmd: kernel_id, a, b, c, dst, count, n, k, param),
    );
    for op in Opcode::ALL {
        assert_eq!(cmd::reserved_bytes(op), layout(&c, op).1.as_slice());
    }
}

#[test]
fn page_tables() {
    let m = doc("mmu.rst");
    check_fields(
        "page-table entry",
        between(&m, "\nPage-table format\n", "- A level 2 entry"),
        Pte::FIELDS,
    );
    assert!(m.contains(&format!("VAs are {} bits wide", mmu::VA_BITS)));
    assert!(m.contains(&format!(
        "Each table is 4 KiB: {} little-endian 64-bit entries",
        mmu::ENTRIES
    )));
    let va = between(&m, "\nAddress format\n", "\nPage-table format\n");
    for level in 0..mmu::LEVELS {
        let lo = 12 + mmu::INDEX_BITS * level;
        let text = format!("{}:{lo}      index into the level {level} table", lo + 8);
        assert!(va.contains(&text), "{text}");
        assert_eq!(mmu::index(1 << lo, level), 1);
    }
    assert_eq!(mmu::PAGE_SIZE, 4096);
    assert_eq!(mmu::HUGE_PAGE_SIZE, 2 << 20);
}

#[test]
fn pci_identity() {
    let p = doc("pci.rst");
    let t = between(&p, "\nIdentity\n", "**Why vendor");
    let value = |label: &str| {
        t.lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l[label.len()..].split_whitespace().next())
            .and_then(number)
            .unwrap_or_else(|| panic!("{label}"))
    };
    assert_eq!(value("Vendor ID"), u64::from(pci::VENDOR_ID));
    assert_eq!(value("Device ID"), u64::from(pci::DEVICE_ID));
    assert_eq!(value("Revision ID"), u64::from(pci::REVISION));
    assert_eq!(value("Class code"), u64::from(pci::CLASS_CODE));
    assert_eq!(
        value("Subsystem vendor ID"),
        u64::from(pci::SUBSYSTEM_VENDOR_ID)
    );
    assert_eq!(value("Subsystem ID"), u64::from(pci::SUBSYSTEM_ID));
    assert_eq!(value("Header type"), u64::from(pci::HEADER_TYPE));
    assert_eq!(value("Interrupt pin"), u64::from(pci::INTERRUPT_PIN));
    assert!(p.contains(&format!("Capabilities pointer {:#04x}", pci::CAP_PCIE)));
    assert!(p.contains(&format!("PCI Express capability ({:#04x})", pci::CAP_PCIE)));
    assert!(p.contains(&format!("MSI-X capability ({:#04x})", pci::CAP_MSIX)));
    assert!(p.contains(&format!("{} KiB", pci::BAR0_SIZE / 1024)));
    assert!(p.contains(&format!(
        "full {} KiB PCIe configuration",
        pci::CONFIG_SIZE / 1024
    )));
    assert!(p.contains("two, at least 1 MiB)") && pci::BAR2_MIN_SIZE == 1 << 20);
}
