// SPDX-License-Identifier: GPL-2.0

//! A small argument parser: `--name value` options, `--flag` switches and positionals. Kept
//! in-tree so the guest binary needs nothing beyond std.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Args {
    pub positional: Vec<String>,
    opts: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    /// `switches` are the options that take no value.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        switches: &[&str],
    ) -> Result<Self, String> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if let Some((k, v)) = name.split_once('=') {
                    out.opts.insert(k.to_string(), v.to_string());
                } else if switches.contains(&name) {
                    out.flags.push(name.to_string());
                } else {
                    let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                    out.opts.insert(name.to_string(), v);
                }
            } else {
                out.positional.push(a);
            }
        }
        Ok(out)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.opts.get(name).map(String::as_str)
    }

    /// A number option with an optional K/M/G (binary) suffix, decimal or 0x hex.
    pub fn num(&self, name: &str) -> Result<Option<u64>, String> {
        self.opts
            .get(name)
            .map(|v| parse_num(v).ok_or_else(|| format!("--{name}: not a number: {v}")))
            .transpose()
    }

    pub fn num_or(&self, name: &str, default: u64) -> Result<u64, String> {
        Ok(self.num(name)?.unwrap_or(default))
    }

    /// Options that were given but are not in `known`.
    pub fn unknown(&self, known: &[&str]) -> Vec<String> {
        self.opts
            .keys()
            .chain(self.flags.iter())
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| format!("--{k}"))
            .collect()
    }
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
    use super::*;

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
        let a = Args::parse(
            ["run", "add_f32", "--count", "16", "--vram", "--seed=3"].map(String::from),
            &["vram"],
        )
        .unwrap();
        assert_eq!(a.positional, vec!["run", "add_f32"]);
        assert_eq!(a.num("count").unwrap(), Some(16));
        assert_eq!(a.num("seed").unwrap(), Some(3));
        assert!(a.flag("vram"));
        assert!(a.unknown(&["count", "seed", "vram"]).is_empty());
        assert_eq!(a.unknown(&["count", "vram"]), vec!["--seed"]);
        assert!(Args::parse(["--size".to_string()], &[]).is_err());
    }
}
