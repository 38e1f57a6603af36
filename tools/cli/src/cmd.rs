// SPDX-License-Identifier: GPL-2.0

//! `vela alloc`, `fill`, `read` and `run`.

use std::time::{Duration, Instant};

use vela_runtime::{exec, kernels, Access, Buffer, BufferFlags, Command, Device, Queue, Vm};

use crate::args::Args;

/// Options that take no value.
pub const SWITCHES: &[&str] = &["vram", "cpu-visible", "vram-only", "system"];

/// How a command failed: bad usage (exit 2) or an error (exit 1).
#[derive(Debug)]
pub enum Fail {
    Usage(String),
    Error(String),
}

impl From<vela_runtime::Error> for Fail {
    fn from(e: vela_runtime::Error) -> Self {
        Fail::Error(e.to_string())
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Usage(s)
    }
}

pub type R = Result<(), Fail>;

/// Jobs of the CLI are small; a minute means the device or the driver is stuck.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn device(a: &Args) -> Result<Device, Fail> {
    Ok(match a.str("device") {
        Some(p) => Device::open(p)?,
        None => Device::first()?,
    })
}

fn check_known(a: &Args, known: &[&str]) -> R {
    let mut all = known.to_vec();
    all.push("device");
    let u = a.unknown(&all);
    if u.is_empty() {
        Ok(())
    } else {
        Err(Fail::Usage(format!("unknown option {}", u.join(" "))))
    }
}

fn size(a: &Args) -> Result<u64, Fail> {
    a.num("size")?
        .ok_or_else(|| Fail::Usage("--size is required".into()))
}

/// VRAM unless `--system` asks for system memory (which the driver does not support yet).
fn placement(a: &Args) -> BufferFlags {
    if a.flag("system") {
        BufferFlags::NONE
    } else {
        BufferFlags::VRAM
    }
}

pub fn alloc(a: &Args) -> R {
    check_known(a, &["size", "count", "vram", "cpu-visible", "vram-only"])?;
    let size = size(a)?;
    let count = a.num_or("count", 1)?;
    let mut flags = placement(a);
    if a.flag("cpu-visible") {
        flags = flags | BufferFlags::CPU_VISIBLE;
    }
    if a.flag("vram-only") {
        flags = flags | BufferFlags::VRAM_ONLY;
    }
    let dev = device(a)?;
    let t = Instant::now();
    let mut bos = Vec::new();
    for _ in 0..count {
        bos.push(Buffer::create(&dev, size, flags)?);
    }
    let dt = t.elapsed();
    for bo in bos.iter().take(8) {
        let i = bo.info()?;
        println!(
            "handle {:<6} size {:#x} flags {} placement {:?}",
            bo.handle(),
            i.size,
            i.flags,
            i.placement
        );
    }
    if bos.len() > 8 {
        println!("... {} more", bos.len() - 8);
    }
    println!(
        "created {count} buffer(s) of {size} bytes ({flags}) in {:.3} ms; they are freed on exit",
        dt.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Parses `--pattern` (a 32-bit word).
fn pattern(a: &Args) -> Result<Option<u32>, Fail> {
    a.num("pattern")?
        .map(|p| {
            u32::try_from(p)
                .map_err(|_| Fail::Usage(format!("--pattern {p:#x} is wider than 32 bits")))
        })
        .transpose()
}

/// Offset and length of the range a command works on, checked against `size`.
fn range(a: &Args, size: u64) -> Result<(u64, u64), Fail> {
    let off = a.num_or("offset", 0)?;
    let len = a.num_or("len", size.saturating_sub(off))?;
    if off.checked_add(len).is_none_or(|e| e > size) {
        return Err(Fail::Usage(format!(
            "range {off:#x}+{len:#x} is outside the {size:#x}-byte buffer"
        )));
    }
    Ok((off, len))
}

/// FILLs `[off, off+len)` of `bo` with `pat` on the device; returns the job's wall time.
fn device_fill(
    dev: &Device,
    bo: &Buffer<'_>,
    off: u64,
    len: u64,
    pat: u32,
) -> Result<Duration, Fail> {
    let vm = Vm::create(dev)?;
    let bind = vm.bind_auto(bo, Access::READ_WRITE)?;
    let q = Queue::create(&vm)?;
    let t = Instant::now();
    q.run(&[Command::fill(bind.at(off), pat, len)], TIMEOUT)?;
    Ok(t.elapsed())
}

pub fn fill(a: &Args) -> R {
    check_known(a, &["size", "pattern", "vram", "offset", "len"])?;
    let size = size(a)?;
    let pat = pattern(a)?.unwrap_or(0xa5a5_5a5a);
    let dev = device(a)?;
    let bo = Buffer::create(&dev, size, placement(a) | BufferFlags::CPU_VISIBLE)?;
    let (off, len) = range(a, bo.size())?;
    if !off.is_multiple_of(4) || !len.is_multiple_of(4) {
        return Err(Fail::Usage(
            "FILL needs a 4-byte aligned --offset and --len".into(),
        ));
    }
    let map = bo.map()?;
    map.fill(0, map.len(), 0)?;
    let dt = device_fill(&dev, &bo, off, len, pat)?;
    let got: Vec<u32> = map.read_vec_of(off as usize, len as usize / 4)?;
    let bad = got.iter().position(|&w| w != pat);
    let outside_ok = map.read_vec(0, off as usize)?.iter().all(|&b| b == 0)
        && map
            .read_vec((off + len) as usize, (bo.size() - off - len) as usize)?
            .iter()
            .all(|&b| b == 0);
    println!(
        "filled {len:#x} bytes at {off:#x} of a {} buffer with {pat:#010x} in {:.3} ms ({:.1} MiB/s)",
        bo.flags(),
        dt.as_secs_f64() * 1e3,
        len as f64 / (1 << 20) as f64 / dt.as_secs_f64().max(1e-9)
    );
    match (bad, outside_ok) {
        (None, true) => {
            println!("verified through the CPU mapping");
            Ok(())
        }
        (Some(i), _) => Err(Fail::Error(format!(
            "word {i} (offset {:#x}) reads {:#010x}, want {pat:#010x}",
            off + 4 * i as u64,
            got[i]
        ))),
        (None, false) => Err(Fail::Error("FILL wrote outside its range".into())),
    }
}

pub fn read(a: &Args) -> R {
    check_known(a, &["size", "pattern", "vram", "offset", "len"])?;
    let size = size(a)?;
    let dev = device(a)?;
    let bo = Buffer::create(&dev, size, placement(a) | BufferFlags::CPU_VISIBLE)?;
    let (off, len) = range(a, bo.size())?;
    if let Some(p) = pattern(a)? {
        device_fill(&dev, &bo, 0, bo.size(), p)?;
    }
    let map = bo.map()?;
    let data = map.read_vec(off as usize, len.min(1 << 20) as usize)?;
    hexdump(off, &data);
    if len > 1 << 20 {
        println!("(first 1 MiB of {len:#x} bytes shown)");
    }
    Ok(())
}

fn hexdump(base: u64, data: &[u8]) {
    let mut prev: Option<&[u8]> = None;
    let mut starred = false;
    for (i, line) in data.chunks(16).enumerate() {
        // Runs of identical lines collapse to "*", as hexdump(1) does.
        if prev == Some(line) && line.len() == 16 {
            if !starred {
                println!("*");
                starred = true;
            }
            continue;
        }
        starred = false;
        prev = Some(line);
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = line
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
            .collect();
        println!(
            "{:08x}  {:<47}  |{text}|",
            base + 16 * i as u64,
            hex.join(" ")
        );
    }
    println!("{:08x}", base + data.len() as u64);
}

pub fn run(a: &Args) -> R {
    check_known(a, &["count", "n", "k", "param", "seed", "system"])?;
    let name = a
        .positional
        .get(1)
        .ok_or_else(|| Fail::Usage("run needs a KERNEL".into()))?;
    let id = kernels::KernelId::from_name(name)
        .ok_or_else(|| Fail::Usage(format!("unknown kernel {name}")))?;
    let count = a
        .num("count")?
        .ok_or_else(|| Fail::Usage("--count is required".into()))?;
    let (n, k) = if id == kernels::KernelId::MatmulF32 {
        (a.num_or("n", count)?, a.num_or("k", count)?)
    } else {
        (0, 0)
    };
    let to32 = |what: &str, v: u64| {
        u32::try_from(v).map_err(|_| Fail::Usage(format!("--{what} {v} does not fit in 32 bits")))
    };
    let param = to32("param", a.num_or("param", 0)?)?;
    if !id.sizes_in_limits(count, n, k) {
        eprintln!(
            "vela: note: these sizes exceed the device limits; expect the job to fail (BAD_LENGTH)"
        );
    }
    let sizes = id.operand_bytes(count, n, k);
    let seed = a.num_or("seed", 1)?;
    let mut rng = kernels::Rng::new(seed);
    let mut gen = |bytes: u64| rng.operand(id, bytes as usize);
    let (da, db, dc) = (gen(sizes.a), gen(sizes.b), gen(sizes.c));
    let call = kernels::KernelCall::new(id, 0, 0, 0, 0, to32("count", count)?)
        .with_nk(to32("n", n)?, to32("k", k)?)
        .with_param(param);

    let t = Instant::now();
    let want = kernels::reference(&call, &da, &db, &dc);
    let cpu = t.elapsed();

    let dev = device(a)?;
    let vm = Vm::create(&dev)?;
    let q = Queue::create(&vm)?;
    let flags = if a.flag("system") {
        BufferFlags::NONE
    } else {
        BufferFlags::VRAM
    };
    let got = exec::run_kernel(&q, flags, &call, &da, &db, &dc, TIMEOUT)?;
    let dst_desc = if flags == BufferFlags::VRAM {
        "VRAM"
    } else {
        "system memory"
    };
    println!(
        "{id} count={count}{} in {dst_desc}: device {:.3} ms (submit to completion), CPU reference {:.3} ms",
        if id == kernels::KernelId::MatmulF32 { format!(" n={n} k={k}") } else { String::new() },
        got.device_time.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3
    );
    match want {
        None => {
            let untouched = got.dst.iter().all(|&b| b == exec::DST_POISON);
            if untouched {
                println!("result: nothing written, as the spec says for a zero size");
                Ok(())
            } else {
                Err(Fail::Error(
                    "the device wrote a destination it should have left alone".into(),
                ))
            }
        }
        Some(w) => {
            if matches!(
                id,
                kernels::KernelId::SumF32 | kernels::KernelId::SumU32 | kernels::KernelId::Crc32c
            ) {
                let v = u32::from_le_bytes([got.dst[0], got.dst[1], got.dst[2], got.dst[3]]);
                if id.is_float() {
                    println!("result: {} ({v:#010x})", f32::from_bits(v));
                } else {
                    println!("result: {v} ({v:#010x})");
                }
            }
            match kernels::first_mismatch(id, &got.dst, &w) {
                None => {
                    println!(
                        "result: matches the CPU reference bit for bit ({} bytes)",
                        w.len()
                    );
                    Ok(())
                }
                Some(i) => {
                    let word = |b: &[u8]| {
                        b.get(4 * i..4 * i + 4)
                            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                    };
                    Err(Fail::Error(format!(
                        "element {i} differs: device {:#010x?}, CPU reference {:#010x?}",
                        word(&got.dst),
                        word(&w)
                    )))
                }
            }
        }
    }
}

/// `vela stats`: VRAM use (QUERY_MEMORY), limits and system memory use (QUERY_LIMITS), and
/// the device's counters (QUERY_COUNTERS).
pub fn stats(a: &Args) -> R {
    let dev = device(a)?;
    let m = dev.memory()?;
    println!(
        "{}: VRAM {} MiB, {} MiB free ({} KiB pages); VM address space {} GiB",
        dev.path().display(),
        m.vram_size >> 20,
        m.vram_free >> 20,
        m.page_size >> 10,
        m.va_size >> 30
    );
    let l = dev.limits()?;
    println!(
        "limits: {} commands and {} in-syncobjs per SUBMIT, {} VMs and {} queues at once; \
         system memory {} MiB used of {} MiB (buffers up to {} GiB)",
        l.max_commands,
        l.max_in_syncobjs,
        l.max_vms,
        l.max_queues,
        l.system_used >> 20,
        l.system_budget >> 20,
        l.max_system_bo >> 30
    );
    let names = [
        "commands completed",
        "bytes written",
        "kernels executed",
        "fences written",
        "interrupts sent",
        "interrupts suppressed",
        "doorbells",
        "page walks",
        "MMU faults",
        "queue errors",
        "DMA errors",
        "peer-to-peer bytes",
        "resets",
    ];
    let c = dev.counters()?;
    for (name, v) in names.iter().zip(c) {
        println!("  {name:<22} {v}");
    }
    Ok(())
}
