// SPDX-License-Identifier: GPL-2.0

//! The command line of `vela`, parsed with clap: `--help` and `--version` for every command,
//! errors that name the bad argument, exit code 2 on usage errors.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use vela_runtime::kernels::KernelId;

const AFTER_HELP: &str = "\
Without a command, vela runs info. --device works before or after the command.
Sizes and counts take K/M/G (binary) suffixes or 0x hex.";

#[derive(Parser, Debug)]
#[command(
    name = "vela",
    version,
    propagate_version = true,
    about = "Look at and use Vela accelerators",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The device to use [default: the first Vela device; info lists them all]
    #[arg(long, global = true, value_name = "/dev/accel/accelN")]
    pub device: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List Vela devices
    Info(Json),
    /// VRAM use, limits and the device's event counters
    Stats(Json),
    /// Create buffers and show what BO_INFO says
    Alloc(Alloc),
    /// FILL a buffer on the device, verify through a mapping
    Fill(Range),
    /// Hexdump a buffer (after a device FILL with --pattern if given)
    Read(Range),
    /// Run a compute kernel on device buffers and compare with the CPU reference
    Run(Run),
    /// Bandwidth, submit latency and allocation ratios
    Bench(Bench),
}

impl Cmd {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Info(_) => "info",
            Cmd::Stats(_) => "stats",
            Cmd::Alloc(_) => "alloc",
            Cmd::Fill(_) => "fill",
            Cmd::Read(_) => "read",
            Cmd::Run(_) => "run",
            Cmd::Bench(_) => "bench",
        }
    }
}

#[derive(Args, Debug, Default)]
pub struct Json {
    /// Print one JSON object instead of text (sizes in bytes)
    #[arg(long)]
    pub json: bool,
}

/// Where a buffer lives.
#[derive(Args, Debug)]
pub struct Placement {
    /// System memory instead of VRAM
    #[arg(long)]
    pub system: bool,
    /// VRAM (the default; accepted for symmetry with --system, which wins)
    #[arg(long, hide = true)]
    pub vram: bool,
}

#[derive(Args, Debug)]
pub struct Alloc {
    /// Size of each buffer in bytes
    #[arg(long, value_name = "N", value_parser = num)]
    pub size: u64,
    /// How many buffers
    #[arg(long, value_name = "C", default_value = "1", value_parser = num)]
    pub count: u64,
    #[command(flatten)]
    pub placement: Placement,
    /// Map-able by the CPU (CPU_VISIBLE)
    #[arg(long)]
    pub cpu_visible: bool,
    /// Never moved to system memory (VRAM_ONLY)
    #[arg(long)]
    pub vram_only: bool,
}

/// `fill` and `read`: a buffer and a range of it.
#[derive(Args, Debug)]
pub struct Range {
    /// Size of the buffer in bytes
    #[arg(long, value_name = "N", value_parser = num)]
    pub size: u64,
    /// 32-bit word the device FILLs with (fill: default 0xa5a55a5a; read: no FILL unless given)
    #[arg(long, value_name = "P", value_parser = word)]
    pub pattern: Option<u32>,
    #[command(flatten)]
    pub placement: Placement,
    /// Start of the range
    #[arg(long, value_name = "O", default_value = "0", value_parser = num)]
    pub offset: u64,
    /// Length of the range [default: to the end of the buffer]
    #[arg(long, value_name = "L", value_parser = num)]
    pub len: Option<u64>,
}

#[derive(Args, Debug)]
#[command(after_help = format!("KERNEL: {}", kernel_names()))]
pub struct Run {
    /// The compute kernel
    #[arg(value_name = "KERNEL", value_parser = kernel)]
    pub kernel: KernelId,
    /// Elements (M for matmul_f32)
    #[arg(long, value_name = "N", value_parser = word)]
    pub count: u32,
    /// N of matmul_f32 [default: --count]
    #[arg(long, value_name = "N", value_parser = word)]
    pub n: Option<u32>,
    /// K of matmul_f32 [default: --count]
    #[arg(long, value_name = "K", value_parser = word)]
    pub k: Option<u32>,
    /// The kernel's PARAM word
    #[arg(long, value_name = "P", default_value = "0", value_parser = word)]
    pub param: u32,
    /// Seed of the random operands
    #[arg(long, value_name = "S", default_value = "1", value_parser = num)]
    pub seed: u64,
    /// Operands in system memory instead of VRAM
    #[arg(long)]
    pub system: bool,
}

#[derive(Args, Debug)]
pub struct Bench {
    /// About how long each measurement runs, in seconds
    #[arg(long, value_name = "S", default_value = "2", value_parser = num)]
    pub seconds: u64,
    /// Size of the bandwidth test's copies in MiB (at most a quarter of VRAM)
    #[arg(long, value_name = "M", default_value = "64", value_parser = num)]
    pub mib: u64,
    /// Live VRAM buffers of the allocation test's large set
    #[arg(long, value_name = "N", default_value = "100000", value_parser = num)]
    pub live: u64,
    /// Time limit of the allocation test's large set, in seconds
    #[arg(long, value_name = "T", default_value = "300", value_parser = num)]
    pub max_seconds: u64,
    /// The device's bare doorbell -> fence round trip in ns (vela-raw-roundtrip), the baseline
    /// of (b)
    #[arg(long, value_name = "NS", value_parser = num)]
    pub raw_ns: Option<u64>,
}

fn kernel_names() -> String {
    KernelId::ALL.map(KernelId::name).join(" ")
}

fn kernel(s: &str) -> Result<KernelId, String> {
    KernelId::from_name(s).ok_or_else(|| format!("unknown kernel; one of {}", kernel_names()))
}

/// A number option: decimal or 0x hex, with an optional K/M/G (binary) suffix.
fn num(s: &str) -> Result<u64, String> {
    parse_num(s).ok_or_else(|| "not a number (decimal or 0x hex, optional K/M/G suffix)".into())
}

/// A number option that must fit in 32 bits.
fn word(s: &str) -> Result<u32, String> {
    let v = num(s)?;
    u32::try_from(v).map_err(|_| format!("{v:#x} is wider than 32 bits"))
}

pub fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    let (body, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s.as_str(), 1),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else {
        body.parse().ok()?
    };
    v.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use clap::{error::ErrorKind, CommandFactory};

    use super::*;

    fn p(s: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vela").chain(s.split_whitespace()))
    }

    /// A usage error (exit 2) whose message names `arg`.
    fn usage_error(s: &str, arg: &str) {
        let e = p(s).expect_err(s);
        assert_eq!(e.exit_code(), 2, "{s}: {e}");
        assert!(e.to_string().contains(arg), "{s}: {e}");
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_num("4096"), Some(4096));
        assert_eq!(parse_num("4K"), Some(4096));
        assert_eq!(parse_num("2m"), Some(2 << 20));
        assert_eq!(parse_num("0x10"), Some(16));
        assert_eq!(parse_num("1_000"), Some(1000));
        assert_eq!(parse_num("x"), None);
        assert_eq!(parse_num("99999999999G"), None);
        assert_eq!(parse_num(""), None);
    }

    #[test]
    fn options_flags_positionals() {
        let a = p("run add_f32 --count 16 --system --seed=3").unwrap();
        let Some(Cmd::Run(r)) = a.command else {
            panic!("{a:?}")
        };
        assert_eq!(r.kernel, KernelId::AddF32);
        assert_eq!((r.count, r.seed, r.param, r.n, r.k), (16, 3, 0, None, None));
        assert!(r.system);
        usage_error("alloc --size", "--size");
        usage_error("alloc --count 2", "--size");
        usage_error("alloc --size 4K --seed 3", "--seed");
        usage_error("run nope --count 1", "nope");
        usage_error("run add_f32 --count 4G", "--count");
        usage_error("fill --size 4K --pattern 0x1_0000_0000", "--pattern");
        usage_error("fill --size x", "--size");
        usage_error("bogus", "bogus");
    }

    #[test]
    fn every_command_and_default() {
        assert!(p("").unwrap().command.is_none(), "no command is info");
        let a = p("--device /dev/accel/accel1 stats --json").unwrap();
        assert_eq!(a.device, Some(PathBuf::from("/dev/accel/accel1")));
        assert!(matches!(a.command, Some(Cmd::Stats(Json { json: true }))));
        // --device after the command, as the old parser took it.
        let a = p("info --device /dev/accel/accel2").unwrap();
        assert_eq!(a.device, Some(PathBuf::from("/dev/accel/accel2")));
        assert!(matches!(a.command, Some(Cmd::Info(Json { json: false }))));
        let Some(Cmd::Alloc(a)) = p("alloc --size 4K --count 3 --cpu-visible --vram-only --vram")
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!((a.size, a.count), (4096, 3));
        assert!(a.cpu_visible && a.vram_only && a.placement.vram && !a.placement.system);
        let Some(Cmd::Fill(f)) = p("fill --size 1M --offset 0x10 --len=64 --pattern 7 --system")
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(
            (f.size, f.offset, f.len, f.pattern),
            (1 << 20, 16, Some(64), Some(7))
        );
        assert!(f.placement.system);
        let Some(Cmd::Read(r)) = p("read --size 4K").unwrap().command else {
            panic!()
        };
        assert_eq!((r.offset, r.len, r.pattern), (0, None, None));
        let Some(Cmd::Run(r)) = p("run matmul_f32 --count 64 --n 32 --k 16 --param 0x3")
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!((r.count, r.n, r.k, r.param), (64, Some(32), Some(16), 3));
    }

    #[test]
    fn bench_as_the_harness_runs_it() {
        let Some(Cmd::Bench(b)) =
            p("bench --seconds 2 --live 100000 --max-seconds 600 --raw-ns 114000")
                .unwrap()
                .command
        else {
            panic!()
        };
        assert_eq!(
            (b.seconds, b.mib, b.live, b.max_seconds, b.raw_ns),
            (2, 64, 100_000, 600, Some(114_000))
        );
        let Some(Cmd::Bench(b)) = p("bench").unwrap().command else {
            panic!()
        };
        assert_eq!(
            (b.seconds, b.mib, b.live, b.max_seconds, b.raw_ns),
            (2, 64, 100_000, 300, None)
        );
        // vela-raw-roundtrip printed nothing: the empty value is refused, as before.
        let e = Cli::try_parse_from(["vela", "bench", "--raw-ns", ""]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--raw-ns"), "{e}");
    }

    #[test]
    fn help_and_version_everywhere() {
        for sub in ["", "info", "stats", "alloc", "fill", "read", "run", "bench"] {
            for (flag, kind) in [
                ("--help", ErrorKind::DisplayHelp),
                ("--version", ErrorKind::DisplayVersion),
            ] {
                let s = format!("{sub} {flag}");
                let e = p(&s).expect_err(&s);
                assert_eq!(e.kind(), kind, "{s}");
                assert_eq!(e.exit_code(), 0, "{s}");
            }
        }
        let help = Cli::command().render_help().to_string();
        for sub in [
            "info", "stats", "alloc", "fill", "read", "run", "bench", "--device",
        ] {
            assert!(help.contains(sub), "{sub}: {help}");
        }
    }
}
