// SPDX-License-Identifier: GPL-2.0
//! The hardware specification and `regs.rs` must say the same thing: this
//! reads the tables of `Documentation/hardware/*.rst` and compares every
//! offset, code and id with the model's constants, both ways.

use std::collections::BTreeMap;
use std::path::PathBuf;

use vela_model::regs::{self, cmd, ctx, queue, Counter, FaultReason, Kernel, QueueError};

fn doc(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../Documentation/hardware")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Rows of simple tables whose first column is a number and whose
/// `name_col`-th column is an UPPER_CASE name: name -> number.
fn rows(text: &str, name_col: usize) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(first), Some(name)) = (cols.first(), cols.get(name_col)) else {
            continue;
        };
        let name = name.trim_matches('`');
        let upper = name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if let (Some(n), true) = (number(first), upper && !name.is_empty()) {
            out.insert(name.to_string(), n);
        }
    }
    out
}

fn check(what: &str, documented: &BTreeMap<String, u64>, model: &[(&str, u64)]) {
    let model: BTreeMap<String, u64> = model.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    assert_eq!(
        documented, &model,
        "{what}: documentation (left) and regs.rs (right) differ"
    );
}

#[test]
fn global_registers() {
    let map = doc("registers.rst");
    let start = map.find("\nMap\n").unwrap();
    let end = map.find("\nIdentity\n").unwrap();
    let documented: BTreeMap<_, _> = rows(&map[start..end], 1);
    let model = [
        ("ID", regs::ID),
        ("VERSION", regs::VERSION),
        ("CAPS", regs::CAPS),
        ("DEVICE_SERIAL", regs::DEVICE_SERIAL),
        ("VRAM_SIZE_LO", regs::VRAM_SIZE_LO),
        ("VRAM_SIZE_HI", regs::VRAM_SIZE_HI),
        ("TOPOLOGY", regs::TOPOLOGY),
        ("SCRATCH", regs::SCRATCH),
        ("TOPOLOGY2", regs::TOPOLOGY2),
        ("DEVICE_CONTROL", regs::DEVICE_CONTROL),
        ("DEVICE_STATUS", regs::DEVICE_STATUS),
        ("INT_STATUS", regs::INT_STATUS),
        ("INT_MASK", regs::INT_MASK),
        ("INT_TRIGGER", regs::INT_TRIGGER),
        ("QUEUE_ERROR_SUMMARY", regs::QUEUE_ERROR_SUMMARY),
        ("CTX_FAULT_SUMMARY", regs::CTX_FAULT_SUMMARY),
        ("COUNTER_CONTROL", regs::COUNTER_CONTROL),
    ];
    let model: Vec<_> = model.iter().map(|(n, v)| (*n, u64::from(*v))).collect();
    check("BAR0 map", &documented, &model);
    for (text, base) in [
        ("0x0100 + 8*N", regs::COUNTER_BASE),
        ("0x1000 + 0x40*Q", regs::QUEUE_BASE),
        ("0x2000 + 0x20*C", regs::CTX_BASE),
        ("0x8000 + 16*V", regs::MSIX_TABLE),
        ("0x9000           MSI-X PBA", regs::MSIX_PBA),
    ] {
        assert!(map.contains(text), "{text}");
        assert!(
            text.starts_with(&format!("{base:#06x}")),
            "{text} vs {base:#x}"
        );
    }
    assert!(map.contains(&format!(
        "0x{:04x} + 0x{:x}*Q",
        regs::QUEUE_BASE,
        regs::QUEUE_STRIDE
    )));
    assert!(map.contains(&format!(
        "0x{:04x} + 0x{:x}*C",
        regs::CTX_BASE,
        regs::CTX_STRIDE
    )));
}

#[test]
fn queue_and_context_blocks() {
    let map = doc("registers.rst");
    let q =
        &map[map.find("\nQueue registers\n").unwrap()..map.find("\nContext registers\n").unwrap()];
    let c = &map
        [map.find("\nContext registers\n").unwrap()..map.find("\nMSI-X table and PBA\n").unwrap()];
    let model_q = [
        ("Q_RING_BASE_LO", queue::RING_BASE_LO),
        ("Q_RING_BASE_HI", queue::RING_BASE_HI),
        ("Q_RING_SIZE", queue::RING_SIZE),
        ("Q_CONTEXT", queue::CONTEXT),
        ("Q_CONTROL", queue::CONTROL),
        ("Q_STATUS", queue::STATUS),
        ("Q_HEAD", queue::HEAD),
        ("Q_TAIL", queue::TAIL),
        ("Q_DOORBELL", queue::DOORBELL),
        ("Q_COMPLETED", queue::COMPLETED),
        ("Q_ERROR_ADDR_LO", queue::ERROR_ADDR_LO),
        ("Q_ERROR_ADDR_HI", queue::ERROR_ADDR_HI),
        ("Q_FENCE_BASE_LO", queue::FENCE_BASE_LO),
        ("Q_FENCE_BASE_HI", queue::FENCE_BASE_HI),
    ];
    let model_c = [
        ("CTX_PT_BASE_LO", ctx::PT_BASE_LO),
        ("CTX_PT_BASE_HI", ctx::PT_BASE_HI),
        ("CTX_CONTROL", ctx::CONTROL),
        ("CTX_FAULT_STATUS", ctx::FAULT_STATUS),
        ("CTX_FAULT_ADDR_LO", ctx::FAULT_ADDR_LO),
        ("CTX_FAULT_ADDR_HI", ctx::FAULT_ADDR_HI),
    ];
    let widen = |m: &[(&'static str, u32)]| {
        m.iter()
            .map(|(n, v)| (*n, u64::from(*v)))
            .collect::<Vec<_>>()
    };
    check("queue block", &rows(q, 1), &widen(&model_q));
    check("context block", &rows(c, 1), &widen(&model_c));
}

#[test]
fn counters() {
    let map = doc("registers.rst");
    let t = &map[map.find("\nCounters\n").unwrap()..map.find("COUNTER_CONTROL (0x0180").unwrap()];
    let documented = rows(t, 2);
    use Counter::*;
    let all = [
        ("COMMANDS_COMPLETED", CommandsCompleted),
        ("BYTES_WRITTEN", BytesWritten),
        ("KERNELS_EXECUTED", KernelsExecuted),
        ("FENCES_WRITTEN", FencesWritten),
        ("INTERRUPTS_SENT", InterruptsSent),
        ("INTERRUPTS_SUPPRESSED", InterruptsSuppressed),
        ("DOORBELLS", Doorbells),
        ("PAGE_WALKS", PageWalks),
        ("MMU_FAULTS", MmuFaults),
        ("QUEUE_ERRORS", QueueErrors),
        ("DMA_ERRORS", DmaErrors),
        ("P2P_BYTES", P2pBytes),
        ("RESETS", Resets),
    ];
    assert_eq!(all.len(), regs::NUM_COUNTERS);
    let model: Vec<_> = all.iter().map(|(n, c)| (*n, *c as u64)).collect();
    check("counters", &documented, &model);
    for (_, c) in all {
        let off = format!("0x{:04x}", regs::COUNTER_BASE + 8 * c as u32);
        assert!(t.contains(&off), "counter {c:?} at {off}");
    }
}

#[test]
fn codes_opcodes_and_kernels() {
    let q = doc("queues.rst");
    let e = &q[q.find("\nErrors\n").unwrap()..];
    use QueueError::*;
    let errors = [
        BadOpcode,
        ReservedNonZero,
        BadRing,
        DmaError,
        BadAlignment,
        BadLength,
        BadKernel,
    ];
    let names = [
        "BAD_OPCODE",
        "RESERVED",
        "BAD_RING",
        "DMA_ERROR",
        "BAD_ALIGNMENT",
        "BAD_LENGTH",
        "BAD_KERNEL",
    ];
    let model: Vec<_> = names
        .iter()
        .zip(errors)
        .map(|(n, e)| (*n, e as u64))
        .collect();
    check("queue errors", &rows(e, 1), &model);

    let m = doc("mmu.rst");
    let f = &m[m.find("\nFaults\n").unwrap()..m.find("On a fault").unwrap()];
    use FaultReason::*;
    let reasons = [
        NotPresent,
        WriteProtect,
        ReadProtect,
        AddressSize,
        TableBusError,
        Injected,
        Reserved,
    ];
    let names = [
        "NOT_PRESENT",
        "WRITE_PROTECT",
        "READ_PROTECT",
        "ADDRESS_SIZE",
        "TABLE_BUS",
        "INJECTED",
        "RESERVED_BIT",
    ];
    let model: Vec<_> = names
        .iter()
        .zip(reasons)
        .map(|(n, r)| (*n, r as u64))
        .collect();
    check("fault reasons", &rows(f, 1), &model);

    let c = doc("commands.rst");
    let ops =
        &c[c.find("=======  ========  ===========").unwrap()..c.find("Any other opcode").unwrap()];
    let model = [
        ("NOP", cmd::NOP),
        ("FENCE", cmd::FENCE),
        ("COPY", cmd::COPY),
        ("FILL", cmd::FILL),
        ("SIGNAL", cmd::SIGNAL),
        ("KERNEL", cmd::KERNEL),
    ];
    let model: Vec<_> = model.iter().map(|(n, v)| (*n, u64::from(*v))).collect();
    check("opcodes", &rows(ops, 1), &model);

    let k = doc("compute.rst");
    let documented = rows(&k, 1);
    let names = [
        "ADD_F32",
        "MUL_F32",
        "FMA_F32",
        "ADD_U32",
        "MUL_U32",
        "FMA_U32",
        "SUM_F32",
        "SUM_U32",
        "CRC32C",
        "MATMUL_F32",
    ];
    let model: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let id = i as u32 + 1;
            let k = Kernel::from_id(id).unwrap();
            (*n, k as u64)
        })
        .collect();
    check("kernels", &documented, &model);
}
