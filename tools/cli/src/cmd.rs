// SPDX-License-Identifier: GPL-2.0

//! `vela alloc`, `fill`, `read`, `run` and `stats`.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use vela_runtime::{exec, kernels, Access, Buffer, BufferFlags, Command, Device, Queue, Vm};

use crate::args;

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

pub type R = Result<(), Fail>;

/// Jobs of the CLI are small; a minute means the device or the driver is stuck.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// `--device`, or the first Vela device.
pub fn device(path: Option<&Path>) -> Result<Device, Fail> {
    Ok(match path {
        Some(p) => Device::open(p)?,
        None => Device::first()?,
    })
}

/// VRAM unless `--system` asks for system memory.
fn placement(p: &args::Placement) -> BufferFlags {
    if p.system {
        BufferFlags::NONE
    } else {
        BufferFlags::VRAM
    }
}

pub fn alloc(dev: Option<&Path>, a: &args::Alloc) -> R {
    let (size, count) = (a.size, a.count);
    let mut flags = placement(&a.placement);
    if a.cpu_visible {
        flags = flags | BufferFlags::CPU_VISIBLE;
    }
    if a.vram_only {
        flags = flags | BufferFlags::VRAM_ONLY;
    }
    let dev = device(dev)?;
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

/// Offset and length of the range a command works on, checked against `size`.
fn range(a: &args::Range, size: u64) -> Result<(u64, u64), Fail> {
    let off = a.offset;
    let len = a.len.unwrap_or(size.saturating_sub(off));
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

/// The CPU-visible buffer `fill` and `read` work on, in the placement asked for.
fn visible_buffer<'d>(dev: &'d Device, a: &args::Range) -> Result<Buffer<'d>, Fail> {
    let flags = placement(&a.placement) | BufferFlags::CPU_VISIBLE;
    Ok(Buffer::create(dev, a.size, flags)?)
}

pub fn fill(dev: Option<&Path>, a: &args::Range) -> R {
    let pat = a.pattern.unwrap_or(0xa5a5_5a5a);
    let dev = device(dev)?;
    let bo = visible_buffer(&dev, a)?;
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

pub fn read(dev: Option<&Path>, a: &args::Range) -> R {
    let dev = device(dev)?;
    let bo = visible_buffer(&dev, a)?;
    let (off, len) = range(a, bo.size())?;
    if let Some(p) = a.pattern {
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

pub fn run(dev: Option<&Path>, a: &args::Run) -> R {
    let id = a.kernel;
    let count = u64::from(a.count);
    let (n, k) = if id == kernels::KernelId::MatmulF32 {
        (a.n.unwrap_or(a.count), a.k.unwrap_or(a.count))
    } else {
        (0, 0)
    };
    let param = a.param;
    if !id.sizes_in_limits(count, n.into(), k.into()) {
        eprintln!(
            "vela: note: these sizes exceed the device limits; expect the job to fail (BAD_LENGTH)"
        );
    }
    let sizes = id.operand_bytes(count, n.into(), k.into());
    let mut rng = kernels::Rng::new(a.seed);
    let mut gen = |bytes: u64| rng.operand(id, bytes as usize);
    let (da, db, dc) = (gen(sizes.a), gen(sizes.b), gen(sizes.c));
    let call = kernels::KernelCall::new(id, 0, 0, 0, 0, a.count)
        .with_nk(n, k)
        .with_param(param);

    let t = Instant::now();
    let want = kernels::reference(&call, &da, &db, &dc);
    let cpu = t.elapsed();

    let dev = device(dev)?;
    let vm = Vm::create(&dev)?;
    let q = Queue::create(&vm)?;
    let flags = if a.system {
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
/// the device's counters (QUERY_COUNTERS); as text or one JSON object.
pub fn stats(dev: Option<&Path>, json: bool) -> R {
    let dev = device(dev)?;
    let s = crate::report::Stats::new(
        &dev.path().display().to_string(),
        &dev.memory()?,
        &dev.limits()?,
        dev.counters()?,
    );
    if json {
        println!("{}", crate::report::json(&s));
    } else {
        print!("{}", s.text());
    }
    Ok(())
}
