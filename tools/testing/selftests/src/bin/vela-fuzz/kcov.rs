// SPDX-License-Identifier: GPL-2.0

//! Coverage of vela.ko through KCOV.
//!
//! The sites are found in vela.ko itself: the module is a relocatable ELF object, and every
//! call the compiler inserted for `-fsanitize-coverage=trace-pc` (C) or the `sancov-module`
//! pass (Rust) is a relocation against `__sanitizer_cov_trace_pc`. KCOV records the return
//! address of that call, which is the relocation's offset plus 4 (the end of the `call rel32`)
//! in the section as the kernel loaded it (`/sys/module/vela/sections/NAME`). So the fuzzer
//! knows the number of sites it could reach (the denominator) and can drop every PC outside
//! vela.ko without any host tool.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io,
    os::fd::AsRawFd,
    path::Path,
};

/// Every coverage site of vela.ko's resident code, by the address KCOV reports for it.
pub struct Sites {
    /// Canonical PC (as KCOV writes it) -> site number.
    by_pc: HashMap<u64, u32>,
    /// Sites per section, for the report.
    pub per_section: Vec<(String, usize)>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}
fn cstr_at(b: &[u8], o: usize) -> Option<&str> {
    let s = b.get(o..)?;
    let end = s.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&s[..end]).ok()
}

struct Shdr {
    name: String,
    kind: u32,
    flags: u64,
    offset: usize,
    size: usize,
    link: usize,
    info: usize,
}

/// The coverage call sites of a relocatable x86-64 ELF object: (section name, offset of the
/// return address in that section). Init and exit code is left out: it is gone (or never
/// runs) once the module is live.
pub fn elf_sites(elf: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let bad = || "not a 64-bit little-endian relocatable ELF object".to_string();
    if elf.get(0..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(bad());
    }
    let shoff = u64_at(elf, 0x28).ok_or_else(bad)? as usize;
    let shentsize = usize::from(u16_at(elf, 0x3a).ok_or_else(bad)?);
    let shnum = usize::from(u16_at(elf, 0x3c).ok_or_else(bad)?);
    let shstrndx = usize::from(u16_at(elf, 0x3e).ok_or_else(bad)?);
    let mut raw = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let field32 = |o| u32_at(elf, h + o).ok_or_else(bad);
        let field64 = |o| u64_at(elf, h + o).ok_or_else(bad);
        raw.push((
            field32(0)? as usize,
            field32(4)?,
            field64(8)?,
            field64(24)? as usize,
            field64(32)? as usize,
            field32(40)? as usize,
            field32(44)? as usize,
        ));
    }
    let strtab_off = raw.get(shstrndx).ok_or_else(bad)?.3;
    let shdrs: Vec<Shdr> = raw
        .iter()
        .map(|&(name, kind, flags, offset, size, link, info)| Shdr {
            name: cstr_at(elf, strtab_off + name).unwrap_or("").to_string(),
            kind,
            flags,
            offset,
            size,
            link,
            info,
        })
        .collect();
    const SHT_SYMTAB: u32 = 2;
    const SHT_RELA: u32 = 4;
    const SHF_EXECINSTR: u64 = 4;
    let symtab = shdrs
        .iter()
        .find(|s| s.kind == SHT_SYMTAB)
        .ok_or("no symbol table")?;
    let symstr = shdrs.get(symtab.link).ok_or_else(bad)?.offset;
    let target = (0..symtab.size / 24)
        .find(|&i| {
            let st_name = u32_at(elf, symtab.offset + i * 24).unwrap_or(0) as usize;
            cstr_at(elf, symstr + st_name) == Some("__sanitizer_cov_trace_pc")
        })
        .ok_or("no __sanitizer_cov_trace_pc symbol: vela.ko is not instrumented for KCOV")?;
    let mut out = Vec::new();
    for rela in shdrs.iter().filter(|s| s.kind == SHT_RELA) {
        let Some(sec) = shdrs.get(rela.info) else {
            continue;
        };
        if sec.flags & SHF_EXECINSTR == 0
            || sec.name.starts_with(".init")
            || sec.name.starts_with(".exit")
        {
            continue;
        }
        for i in 0..rela.size / 24 {
            let e = rela.offset + i * 24;
            let (Some(off), Some(info)) = (u64_at(elf, e), u64_at(elf, e + 8)) else {
                return Err(bad());
            };
            if (info >> 32) as usize == target {
                out.push((sec.name.clone(), off + 4));
            }
        }
    }
    Ok(out)
}

/// `_text` minus its link-time address: what KCOV subtracts from every PC (`canonicalize_ip`)
/// when the kernel is relocated.
fn kaslr_offset() -> u64 {
    use std::io::BufRead;
    const START_KERNEL: u64 = 0xffff_ffff_8100_0000;
    let Ok(f) = File::open("/proc/kallsyms") else {
        return 0;
    };
    // `_text` comes early (after the per-CPU symbols); the whole file is large and slow to
    // read under KASAN and TCG.
    io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            let mut it = l.split_whitespace();
            let addr = it.next()?;
            let _kind = it.next()?;
            (it.next()? == "_text").then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .map_or(0, |t| t.wrapping_sub(START_KERNEL))
}

impl Sites {
    /// The sites of the loaded module `module`, whose object file is `ko`.
    pub fn load(ko: &Path, module: &str) -> Result<Self, String> {
        let elf = fs::read(ko).map_err(|e| format!("{}: {e}", ko.display()))?;
        let sites = elf_sites(&elf)?;
        let kaslr = kaslr_offset();
        let mut by_pc = HashMap::new();
        let mut per_section: Vec<(String, usize)> = Vec::new();
        let mut bases: HashMap<String, u64> = HashMap::new();
        for (sec, off) in sites {
            let base = match bases.get(&sec) {
                Some(b) => *b,
                None => {
                    let path = format!("/sys/module/{module}/sections/{sec}");
                    let base = fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| {
                            u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
                        })
                        .ok_or_else(|| format!("{path}: no load address (is {module} loaded?)"))?;
                    if base == 0 {
                        return Err(format!("{path} reads 0: run as root with no_hash_pointers"));
                    }
                    bases.insert(sec.clone(), base);
                    base
                }
            };
            let n = by_pc.len() as u32;
            by_pc.insert(base.wrapping_add(off).wrapping_sub(kaslr), n);
            match per_section.iter_mut().find(|(s, _)| *s == sec) {
                Some(e) => e.1 += 1,
                None => per_section.push((sec, 1)),
            }
        }
        Ok(Self { by_pc, per_section })
    }

    pub fn total(&self) -> usize {
        self.by_pc.len()
    }

    /// The site KCOV's `pc` is, if it is one of vela.ko's.
    pub fn site(&self, pc: u64) -> Option<u32> {
        self.by_pc.get(&pc).copied()
    }
}

/// `_IOR('c', 1, unsigned long)`.
const KCOV_INIT_TRACE: libc::c_ulong = 0x8008_6301;
/// `_IO('c', 100)`.
const KCOV_ENABLE: libc::c_ulong = 0x6364;
/// `_IO('c', 101)`.
const KCOV_DISABLE: libc::c_ulong = 0x6365;
const KCOV_TRACE_PC: libc::c_ulong = 0;
/// PCs one trace holds; a program's calls between two reads stay well below it.
const WORDS: usize = 1 << 16;

/// KCOV for the calling thread: a trace buffer the kernel fills with the PCs this thread
/// reaches while enabled.
pub struct Kcov {
    file: File,
    area: *mut u64,
}

impl Kcov {
    /// Opens KCOV and enables it for the calling thread (KCOV follows the task, so each thread
    /// needs its own).
    pub fn open() -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/sys/kernel/debug/kcov")?;
        let fd = file.as_raw_fd();
        // SAFETY: KCOV_INIT_TRACE takes the buffer size in words by value.
        if unsafe { libc::ioctl(fd, KCOV_INIT_TRACE, WORDS as libc::c_ulong) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: maps the trace buffer KCOV_INIT_TRACE just sized; nothing else aliases it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                WORDS * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let k = Self {
            file,
            area: p.cast(),
        };
        // SAFETY: KCOV_ENABLE takes the trace mode by value.
        if unsafe { libc::ioctl(fd, KCOV_ENABLE, KCOV_TRACE_PC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        k.reset();
        Ok(k)
    }

    /// Starts a new trace.
    pub fn reset(&self) {
        // SAFETY: word 0 of the live mapping is the count, written by this thread's kernel
        // entries only; volatile because the kernel writes it behind the compiler's back.
        unsafe { self.area.write_volatile(0) };
    }

    /// Adds the sites reached since the last reset to `hit`, resets, and says how many were
    /// new to `hit`.
    pub fn collect(&self, sites: &Sites, hit: &mut [bool]) -> usize {
        // SAFETY: as in `reset`; the count never exceeds the buffer (KCOV stops there).
        let n = unsafe { self.area.read_volatile() } as usize;
        let n = n.min(WORDS - 1);
        let mut new = 0;
        for i in 0..n {
            // SAFETY: 1 + i < WORDS, inside the mapping.
            let pc = unsafe { self.area.add(1 + i).read_volatile() };
            if let Some(s) = sites.site(pc) {
                if let Some(h) = hit.get_mut(s as usize) {
                    if !*h {
                        *h = true;
                        new += 1;
                    }
                }
            }
        }
        self.reset();
        new
    }
}

impl Drop for Kcov {
    fn drop(&mut self) {
        // SAFETY: disables tracing of this thread and unmaps the buffer mapped in `open`.
        unsafe {
            libc::ioctl(self.file.as_raw_fd(), KCOV_DISABLE, 0);
            libc::munmap(self.area.cast(), WORDS * 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal relocatable object: .text, .rela.text with two calls to the coverage hook and
    /// one to something else, a symbol table and the string tables.
    fn object() -> Vec<u8> {
        let mut shstr = b"\0.text\0.rela.text\0.symtab\0.strtab\0.shstrtab\0.init.text\0".to_vec();
        shstr.resize(64, 0);
        let mut strtab = b"\0__sanitizer_cov_trace_pc\0memcpy\0".to_vec();
        strtab.resize(40, 0);
        let mut symtab = vec![0u8; 24 * 3];
        symtab[24..28].copy_from_slice(&1u32.to_le_bytes());
        symtab[48..52].copy_from_slice(&26u32.to_le_bytes());
        let rela_entry = |off: u64, sym: u64| {
            let mut e = off.to_le_bytes().to_vec();
            e.extend_from_slice(&((sym << 32) | 4).to_le_bytes());
            e.extend_from_slice(&(-4i64).to_le_bytes());
            e
        };
        let mut rela = rela_entry(0x11, 1);
        rela.extend(rela_entry(0x21, 2));
        rela.extend(rela_entry(0x31, 1));
        let mut init_rela = rela_entry(0x1, 1);
        init_rela.truncate(24);
        let text = vec![0u8; 0x40];
        // Layout: header, then the blobs, then the section headers.
        let mut elf = vec![0u8; 64];
        elf[0..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let mut place = |b: &[u8]| {
            let o = elf.len();
            elf.extend_from_slice(b);
            o
        };
        let o_text = place(&text);
        let o_rela = place(&rela);
        let o_sym = place(&symtab);
        let o_str = place(&strtab);
        let o_shstr = place(&shstr);
        let o_init = place(&text);
        let o_init_rela = place(&init_rela);
        let shoff = elf.len();
        let sh = |name: u32, kind: u32, flags: u64, off: usize, size: usize, link: u32, info| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h[40..44].copy_from_slice(&link.to_le_bytes());
            h[44..48].copy_from_slice(&(info as u32).to_le_bytes());
            h
        };
        let headers = [
            sh(0, 0, 0, 0, 0, 0, 0),
            sh(1, 1, 6, o_text, text.len(), 0, 0),
            sh(7, 4, 0, o_rela, rela.len(), 3, 1),
            sh(18, 2, 0, o_sym, symtab.len(), 4, 0),
            sh(26, 3, 0, o_str, strtab.len(), 0, 0),
            sh(34, 3, 0, o_shstr, shstr.len(), 0, 0),
            sh(44, 1, 6, o_init, text.len(), 0, 0),
            sh(7, 4, 0, o_init_rela, init_rela.len(), 3, 6),
        ];
        for h in &headers {
            elf.extend_from_slice(h);
        }
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&5u16.to_le_bytes());
        elf
    }

    #[test]
    fn finds_the_coverage_calls_of_resident_code() {
        let sites = elf_sites(&object()).unwrap();
        assert_eq!(
            sites,
            vec![(".text".to_string(), 0x15), (".text".to_string(), 0x35)]
        );
    }

    #[test]
    fn an_uninstrumented_object_says_so() {
        let mut elf = object();
        let at = elf
            .windows(24)
            .position(|w| w == b"__sanitizer_cov_trace_pc")
            .unwrap();
        elf[at] = b'X';
        assert!(elf_sites(&elf).unwrap_err().contains("not instrumented"));
        assert!(elf_sites(b"not an elf").is_err());
    }
}
