// SPDX-License-Identifier: GPL-2.0

//! Where a run's results are kept: `$VELA_CACHE/work/results/STAMP-MODE/`, with
//! `results/latest` pointing at the newest. Unlike the run directory (removed after a passing
//! run unless `VELA_KEEP` is set), these stay, the last [`KEEP`] of them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{judge, Mode, Paths};

/// How many runs' results are kept.
const KEEP: usize = 20;

/// The name of the link to the newest run's results.
const LATEST: &str = "latest";

/// Copies what the run produced into a new results directory and points `latest` at it:
/// each guest test's TAP, exit status and times (`NAME.tap`, `NAME.rc`, `NAME.time`), the
/// KUnit results as TAP (`kunit.tap`), the guest's serial console with the kernel log
/// (`serial.log`), the model's log, QEMU's arguments and the verdict as printed
/// (`report.txt`). Returns the directory.
pub(crate) fn keep(
    paths: &Paths,
    run_dir: &Path,
    mode: Mode,
    report: &judge::Report,
    rendered: &str,
) -> Result<PathBuf, String> {
    let top = paths.work.join("results");
    let err = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    fs::create_dir_all(&top).map_err(|e| err(&top, e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = format!("{}-{}", utc_stamp(now), mode_name(mode));
    let mut name = base.clone();
    let mut n = 1;
    while top.join(&name).exists() {
        n += 1;
        name = format!("{base}-{n}");
    }
    let dir = top.join(&name);
    fs::create_dir(&dir).map_err(|e| err(&dir, e))?;

    let results = run_dir.join("share/results");
    if let Ok(entries) = fs::read_dir(&results) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                let to = dir.join(e.file_name());
                fs::copy(e.path(), &to).map_err(|er| err(&to, er))?;
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                // A test's own output directory (vela-fuzz's grown corpus): its files.
                let sub = dir.join(e.file_name());
                fs::create_dir_all(&sub).map_err(|er| err(&sub, er))?;
                for f in fs::read_dir(e.path()).into_iter().flatten().flatten() {
                    if f.file_type().is_ok_and(|t| t.is_file()) {
                        let to = sub.join(f.file_name());
                        fs::copy(f.path(), &to).map_err(|er| err(&to, er))?;
                    }
                }
            }
        }
    }
    for f in ["serial.log", "model.log", "qemu.args"] {
        let from = run_dir.join(f);
        if from.exists() {
            fs::copy(&from, dir.join(f)).map_err(|e| err(&from, e))?;
        }
    }
    let kunit: Vec<&judge::TestResult> = report
        .results
        .iter()
        .filter(|r| r.name.starts_with("kunit/"))
        .collect();
    fs::write(dir.join("kunit.tap"), kunit_tap(&kunit)).map_err(|e| err(&dir, e))?;
    fs::write(dir.join("report.txt"), rendered).map_err(|e| err(&dir, e))?;

    point_latest(&top, &name).map_err(|e| err(&top.join(LATEST), e))?;
    prune(&top);
    Ok(top.join(LATEST))
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Demo => "run",
        Mode::Check => "check",
        Mode::Bench => "bench",
    }
}

/// KUnit's results as one flat TAP stream, each test named as the report names it.
fn kunit_tap(results: &[&judge::TestResult]) -> String {
    let mut out = format!("TAP version 13\n1..{}\n", results.len());
    for (i, r) in results.iter().enumerate() {
        let line = match r.status {
            judge::Status::Pass => format!("ok {} {}", i + 1, r.name),
            judge::Status::Fail => format!("not ok {} {}", i + 1, r.name),
            judge::Status::Skip => format!(
                "ok {} {} # SKIP {}",
                i + 1,
                r.name,
                r.detail.as_deref().unwrap_or("")
            ),
        };
        out.push_str(line.trim_end());
        out.push('\n');
        if r.status == judge::Status::Fail {
            for d in r.detail.as_deref().unwrap_or("").lines() {
                out.push_str(&format!("# {d}\n"));
            }
        }
    }
    out
}

/// Points `top/latest` at `name`, replacing the old link in one rename.
fn point_latest(top: &Path, name: &str) -> std::io::Result<()> {
    let latest = top.join(LATEST);
    let tmp = top.join(format!(".{LATEST}.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    if latest.is_dir() && !latest.is_symlink() {
        fs::remove_dir_all(&latest)?;
    }
    fs::rename(&tmp, &latest)
}

/// Removes all but the newest [`KEEP`] results directories (their names sort by time).
fn prune(top: &Path) {
    let Ok(entries) = fs::read_dir(top) else {
        return;
    };
    let mut runs: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() > 15 && n.as_bytes()[..8].iter().all(u8::is_ascii_digit))
        .collect();
    runs.sort();
    let old = runs.len().saturating_sub(KEEP);
    for n in &runs[..old] {
        let _ = fs::remove_dir_all(top.join(n));
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) of `secs` since the epoch.
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(4_102_444_799), "20991231-235959");
    }

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("vela-results-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn keeps_every_file_and_points_latest_at_it() {
        let work = tmp("work");
        let run_dir = work.join("run/1");
        fs::create_dir_all(run_dir.join("share/results")).unwrap();
        let tap = "TAP version 13\n1..1\nok 1 a\n";
        fs::write(run_dir.join("share/results/probe.tap"), tap).unwrap();
        fs::write(run_dir.join("share/results/probe.time"), "1.0 2.0\n").unwrap();
        let serial = "[    3.100000] KTAP version 1\n[    3.100001] 1..1\n\
                      [    3.100002] ok 1 vela_x # SKIP off\n";
        fs::write(run_dir.join("serial.log"), serial).unwrap();
        let report = judge::judge(serial, &[("probe".into(), tap.into())]);
        let paths = Paths {
            root: work.join("root"),
            work: work.clone(),
            bin: work.join("bin"),
            kernel: "fast".into(),
        };
        let latest = keep(&paths, &run_dir, Mode::Check, &report, "1 passed\n").unwrap();
        assert_eq!(latest, work.join("results/latest"));
        let read = |f: &str| fs::read_to_string(latest.join(f)).unwrap();
        assert_eq!(read("probe.tap"), tap);
        assert_eq!(read("probe.time"), "1.0 2.0\n");
        assert_eq!(read("serial.log"), serial);
        assert_eq!(read("report.txt"), "1 passed\n");
        assert_eq!(
            read("kunit.tap"),
            "TAP version 13\n1..1\nok 1 kunit/vela_x # SKIP off\n"
        );
        // A second run gets a directory of its own, and latest moves to it.
        let first = fs::read_link(&latest).unwrap();
        keep(&paths, &run_dir, Mode::Check, &report, "again\n").unwrap();
        assert_ne!(fs::read_link(&latest).unwrap(), first);
        assert_eq!(read("report.txt"), "again\n");
        assert!(work.join("results").join(&first).join("probe.tap").exists());
        fs::remove_dir_all(&work).unwrap();
    }

    #[test]
    fn prunes_the_oldest() {
        let top = tmp("prune");
        for i in 0..KEEP + 3 {
            fs::create_dir_all(top.join(format!("202601{:02}-000000-check", i + 1))).unwrap();
        }
        fs::create_dir_all(top.join("notes")).unwrap();
        prune(&top);
        assert!(!top.join("20260101-000000-check").exists());
        assert!(!top.join("20260103-000000-check").exists());
        assert!(top.join("20260104-000000-check").exists());
        assert!(
            top.join("notes").exists(),
            "only results directories are pruned"
        );
        fs::remove_dir_all(&top).unwrap();
    }
}
