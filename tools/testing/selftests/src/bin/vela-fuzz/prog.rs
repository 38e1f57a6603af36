// SPDX-License-Identifier: GPL-2.0

//! Programs: sequences of typed calls over Vela's ABI whose arguments name the results of
//! earlier calls (files, buffers, VMs, queues, sync objects, dma-buf fds, jobs) or are
//! literals, good or bad. Generation and mutation keep every reference pointing backwards,
//! so any program, however mutated, can run.
//!
//! Text form (the corpus): one call a line, `OP ARG...`, where an argument is `@N` (the
//! result of call N, counted from 0) or a hexadecimal literal; `race threads` or `race fork`
//! on a line of its own makes the calls after it run at once in two threads (sharing every
//! fd) or in two processes (after a fork: same files, same GEM handles). `#` starts a comment.

use std::fmt::Write as _;

use vela_runtime::kernels::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Bo,
    Vm,
    Queue,
    Sync,
    Dmabuf,
    Job,
}

/// What a literal argument means, for picking interesting values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Num {
    Dev,
    Size,
    BoFlags,
    Zero,
    Va,
    Off,
    BindFlags,
    Timeout,
    Query,
    QSize,
    Ptr,
    Cmd,
    Len,
    Count,
    Seed,
    PrimeFlags,
    SyncFlags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Res(Kind),
    Num(Num),
}

use Kind::*;
use Slot::{Num as N, Res as R};

pub struct OpDef {
    pub name: &'static str,
    pub args: &'static [Slot],
    pub result: Option<Kind>,
    /// How often generation picks it, relative to the others.
    pub weight: u64,
}

macro_rules! ops {
    ($($id:ident $name:literal [$($a:expr),*] $res:expr, $w:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Op { $($id),* }
        pub const OPS: &[(Op, OpDef)] = &[
            $((Op::$id, OpDef { name: $name, args: &[$($a),*], result: $res, weight: $w })),*
        ];
    };
}

ops! {
    Open "open" [N(Num::Dev)] Some(File), 4;
    Close "close" [R(File)] None, 1;
    BoCreate "bo_create" [R(File), N(Num::Size), N(Num::BoFlags)] Some(Bo), 10;
    BoInfo "bo_info" [R(File), R(Bo), N(Num::Zero)] None, 3;
    BoMmap "bo_mmap" [R(File), R(Bo), N(Num::Zero), N(Num::Off)] None, 4;
    GemClose "gem_close" [R(File), R(Bo)] None, 3;
    VmCreate "vm_create" [R(File), N(Num::Zero)] Some(Vm), 6;
    VmDestroy "vm_destroy" [R(File), R(Vm), N(Num::Zero)] None, 2;
    VmBind "vm_bind" [R(File), R(Vm), R(Bo), N(Num::Va), N(Num::Off), N(Num::Size),
        N(Num::BindFlags), N(Num::Zero)] None, 10;
    VmUnbind "vm_unbind" [R(File), R(Vm), N(Num::Va), N(Num::Size), N(Num::Zero)] None, 3;
    QueueCreate "queue_create" [R(File), R(Vm), N(Num::Zero), N(Num::Zero)] Some(Queue), 6;
    QueueDestroy "queue_destroy" [R(File), R(Queue), N(Num::Zero)] None, 2;
    Submit "submit" [R(File), R(Queue), N(Num::Cmd), N(Num::Va), N(Num::Len), R(Sync),
        R(Sync), N(Num::Count), N(Num::Zero), N(Num::Seed)] Some(Job), 12;
    Wait "wait" [R(File), R(Queue), R(Job), N(Num::Timeout), N(Num::Zero)] None, 5;
    BoWait "bo_wait" [R(File), R(Bo), N(Num::Timeout), N(Num::Zero)] None, 3;
    Query "query" [R(File), N(Num::Query), N(Num::QSize), N(Num::Ptr), N(Num::Zero),
        N(Num::Zero)] None, 2;
    Export "export" [R(File), R(Bo), N(Num::PrimeFlags)] Some(Dmabuf), 6;
    Import "import" [R(File), R(Dmabuf)] Some(Bo), 6;
    CloseFd "close_fd" [R(Dmabuf)] None, 2;
    Udmabuf "udmabuf" [N(Num::Size)] Some(Dmabuf), 2;
    Heap "heap" [N(Num::Size)] Some(Dmabuf), 2;
    DmabufMmap "dmabuf_mmap" [R(Dmabuf), N(Num::Off)] None, 2;
    SyncCreate "sync_create" [R(File), N(Num::SyncFlags)] Some(Sync), 4;
    SyncDestroy "sync_destroy" [R(File), R(Sync)] None, 1;
    SyncWait "sync_wait" [R(File), R(Sync), N(Num::Timeout), N(Num::SyncFlags)] None, 2;
    SyncReset "sync_reset" [R(File), R(Sync)] None, 1;
    Pressure "pressure" [R(File), N(Num::Count)] None, 1;
}

impl Op {
    pub fn def(self) -> &'static OpDef {
        &OPS[self as usize].1
    }
    fn by_name(s: &str) -> Option<Op> {
        OPS.iter().find(|(_, d)| d.name == s).map(|(o, _)| *o)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    Ref(usize),
    Lit(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub args: Vec<Arg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Race {
    Threads,
    Fork,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prog {
    pub calls: Vec<Call>,
    /// The calls from this index on run twice at once.
    pub race: Option<(usize, Race)>,
}

pub const MAX_CALLS: usize = 48;

impl Prog {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (i, c) in self.calls.iter().enumerate() {
            if let Some((at, r)) = self.race {
                if at == i {
                    let _ = writeln!(
                        s,
                        "race {}",
                        if r == Race::Fork { "fork" } else { "threads" }
                    );
                }
            }
            s.push_str(c.op.def().name);
            for a in &c.args {
                match a {
                    Arg::Ref(r) => {
                        let _ = write!(s, " @{r}");
                    }
                    Arg::Lit(v) => {
                        let _ = write!(s, " {v:#x}");
                    }
                }
            }
            s.push('\n');
        }
        s
    }

    /// Parses the text form; every reference must name an earlier call.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Prog::default();
        for (ln, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |m: &str| format!("line {}: {m}: {line}", ln + 1);
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or("");
            if name == "race" {
                let r = match words.next() {
                    Some("threads") => Race::Threads,
                    Some("fork") => Race::Fork,
                    _ => return Err(err("race threads|fork")),
                };
                p.race = Some((p.calls.len(), r));
                continue;
            }
            let op = Op::by_name(name).ok_or_else(|| err("unknown call"))?;
            let mut args = Vec::new();
            for w in words {
                args.push(if let Some(r) = w.strip_prefix('@') {
                    let r: usize = r.parse().map_err(|_| err("bad reference"))?;
                    if r >= p.calls.len() {
                        return Err(err("reference to a later call"));
                    }
                    Arg::Ref(r)
                } else {
                    let v = w.strip_prefix("0x").ok_or_else(|| err("literal not hex"))?;
                    Arg::Lit(u64::from_str_radix(v, 16).map_err(|_| err("bad literal"))?)
                });
            }
            if args.len() != op.def().args.len() {
                return Err(err("wrong number of arguments"));
            }
            p.calls.push(Call { op, args });
        }
        if p.race.is_some_and(|(at, _)| at >= p.calls.len()) {
            p.race = None;
        }
        Ok(p)
    }
}

/// Interesting values of each literal kind; generation mixes them with random bits.
fn interesting(n: Num) -> &'static [u64] {
    match n {
        Num::Dev => &[0, 0, 0, 1, 1, 2],
        Num::Size => &[
            0x1000,
            0x1000,
            0x2000,
            0x10000,
            0x10000,
            0x20_0000,
            0x10_0000,
            0x100_0000,
            0,
            1,
            0xfff,
            0x4_0000_0000,
            u64::MAX,
            0x1_0000_0000,
        ],
        Num::BoFlags => &[3, 3, 3, 1, 7, 2, 0, 5, 8, 0x8000_0000],
        Num::Zero => &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x8000_0000],
        Num::Va => &[
            0x10_0000,
            0x20_0000,
            0x40_0000,
            0x1000,
            0x7f_c000_0000,
            0x7f_bfff_f000,
            0x80_0000_0000,
            0x10_0800,
            0xffff_ffff_ffff_f000,
        ],
        Num::Off => &[0, 0, 0, 0x1000, 0x10_0000, 0x800, 0xffff_ffff_ffff_f000],
        Num::BindFlags => &[3, 3, 3, 1, 2, 0, 7],
        Num::Timeout => &[0, 0, 1000, 1_000_000, 10_000_000, u64::MAX],
        Num::Query => &[0, 1, 2, 3, 4, 0xffff_ffff],
        Num::QSize => &[0, 32, 40, 128, 8, 4096, 0xffff_ffff],
        Num::Ptr => &[0, 0, 0, 0, 1, 2, 3, 4, 5],
        Num::Cmd => &[0, 1, 1, 2, 2, 3, 4, 5, 6, 7],
        Num::Len => &[
            0x40,
            0x1000,
            0x1000,
            0x2000,
            4,
            0,
            0x10_0000,
            0x1003,
            0x1_0000_0000,
        ],
        Num::Count => &[0, 0, 0, 0, 0, 0, 1, 2, 4, 6, 0x401, 0xffff_ffff],
        Num::Seed => &[],
        Num::PrimeFlags => &[0x8_0002, 0x8_0002, 0x8_0000, 2, 0, 1, 0xffff],
        Num::SyncFlags => &[0, 0, 1, 2, 4, 0x8000],
    }
}

fn gen_lit(rng: &mut Rng, n: Num) -> u64 {
    let set = interesting(n);
    if set.is_empty() || rng.below(16) == 0 {
        return rng.next_u64();
    }
    set[rng.below(set.len() as u64) as usize]
}

/// A bad value for a resource argument: no such handle, id or fd.
fn bad_res(rng: &mut Rng) -> u64 {
    [0, 0xffff_ffff, 0x7fff_0000, 999, u64::MAX][rng.below(5) as usize]
}

pub struct Gen<'a> {
    pub rng: &'a mut Rng,
}

impl Gen<'_> {
    /// Earlier calls (before `pos`) whose result is `kind`.
    fn producers(p: &Prog, pos: usize, kind: Kind) -> Vec<usize> {
        p.calls[..pos]
            .iter()
            .enumerate()
            .filter(|(_, c)| c.op.def().result == Some(kind))
            .map(|(i, _)| i)
            .collect()
    }

    fn pick_ref(&mut self, p: &Prog, pos: usize, kind: Kind, file: Option<Arg>) -> Arg {
        let all = Self::producers(p, pos, kind);
        if all.is_empty() || self.rng.below(12) == 0 {
            return Arg::Lit(bad_res(self.rng));
        }
        // Mostly an object of the file the call goes to, as real users do; sometimes another
        // file's, which must fail cleanly.
        let same: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| file.is_none() || p.calls[i].args.first() == file.as_ref())
            .collect();
        let from = if !same.is_empty() && self.rng.below(5) != 0 {
            same
        } else {
            all
        };
        // Recent objects more often: they are the ones the next calls build on.
        let i = from.len() - 1 - (self.rng.below(from.len() as u64) * self.rng.below(2)) as usize;
        Arg::Ref(from[i.min(from.len() - 1)])
    }

    /// A bind made earlier in the program: (vm argument, va, size), for unbinds and for the
    /// addresses of commands.
    fn earlier_bind(&mut self, p: &Prog, pos: usize) -> Option<(Arg, u64, u64)> {
        let binds: Vec<(Arg, u64, u64)> = p.calls[..pos]
            .iter()
            .filter(|c| c.op == Op::VmBind)
            .filter_map(|c| match (c.args[3], c.args[5]) {
                (Arg::Lit(va), Arg::Lit(size)) => Some((c.args[1], va, size)),
                _ => None,
            })
            .collect();
        if binds.is_empty() {
            None
        } else {
            Some(binds[self.rng.below(binds.len() as u64) as usize])
        }
    }

    pub fn arg(&mut self, p: &Prog, pos: usize, op: Op, idx: usize, args: &[Arg]) -> Arg {
        let slot = op.def().args[idx];
        let file = match op.def().args.first() {
            Some(R(File)) if idx > 0 => args.first().copied(),
            _ => None,
        };
        match slot {
            R(k) => {
                if matches!(op, Op::Submit) && (idx == 5 || idx == 6) && self.rng.below(2) == 0 {
                    return Arg::Lit(0);
                }
                self.pick_ref(p, pos, k, file)
            }
            N(Num::Va) if self.rng.below(3) != 0 => match self.earlier_bind(p, pos) {
                Some((_, va, size)) => {
                    let inside = self.rng.below(size.max(0x1000) / 0x1000) * 0x1000;
                    Arg::Lit(if op == Op::Submit {
                        va.wrapping_add(inside)
                    } else {
                        va
                    })
                }
                None => Arg::Lit(gen_lit(self.rng, Num::Va)),
            },
            N(n) => Arg::Lit(gen_lit(self.rng, n)),
        }
    }

    pub fn call(&mut self, p: &Prog, pos: usize) -> Call {
        let total: u64 = OPS.iter().map(|(_, d)| d.weight).sum();
        let mut x = self.rng.below(total);
        let mut op = Op::Open;
        for (o, d) in OPS {
            if x < d.weight {
                op = *o;
                break;
            }
            x -= d.weight;
        }
        // Unbind what was bound, with the same VM, mostly.
        if op == Op::VmUnbind && self.rng.below(4) != 0 {
            if let Some((vm, va, size)) = self.earlier_bind(p, pos) {
                let file = self.pick_ref(p, pos, File, None);
                return Call {
                    op,
                    args: vec![file, vm, Arg::Lit(va), Arg::Lit(size), Arg::Lit(0)],
                };
            }
        }
        let mut args = Vec::new();
        for i in 0..op.def().args.len() {
            let a = self.arg(p, pos, op, i, &args);
            args.push(a);
        }
        Call { op, args }
    }

    pub fn generate(&mut self, len: usize) -> Prog {
        let mut p = Prog::default();
        p.calls.push(Call {
            op: Op::Open,
            args: vec![Arg::Lit(0)],
        });
        while p.calls.len() < len {
            let c = self.call(&p, p.calls.len());
            p.calls.push(c);
        }
        p
    }

    /// One random change: insert, remove or replace a call, change an argument, splice in
    /// another program, or move the race point.
    pub fn mutate(&mut self, p: &mut Prog, other: Option<&Prog>) {
        let n = p.calls.len();
        match self.rng.below(12) {
            0..=2 if n < MAX_CALLS => {
                let at = self.rng.below(n as u64 + 1) as usize;
                let c = self.call(p, at);
                insert(p, at, c);
            }
            3 | 4 if n > 1 => {
                let at = self.rng.below(n as u64) as usize;
                remove(p, at, self.rng);
            }
            5 if n > 0 => {
                let at = self.rng.below(n as u64) as usize;
                p.calls[at] = self.call(p, at);
            }
            6 => match other {
                Some(o) if n + o.calls.len() <= MAX_CALLS => {
                    let base = n;
                    for c in &o.calls {
                        let args = c
                            .args
                            .iter()
                            .map(|a| match a {
                                Arg::Ref(r) => Arg::Ref(r + base),
                                l => *l,
                            })
                            .collect();
                        p.calls.push(Call { op: c.op, args });
                    }
                }
                _ => self.tweak(p),
            },
            7 => {
                p.race = match self.rng.below(3) {
                    0 => None,
                    1 if n > 1 => Some((1 + self.rng.below(n as u64 - 1) as usize, Race::Threads)),
                    _ if n > 1 => Some((1 + self.rng.below(n as u64 - 1) as usize, Race::Fork)),
                    _ => None,
                }
            }
            _ => self.tweak(p),
        }
    }

    /// Changes one argument: a new value, a bit flip, a small step, or another reference.
    fn tweak(&mut self, p: &mut Prog) {
        if p.calls.is_empty() {
            return;
        }
        let at = self.rng.below(p.calls.len() as u64) as usize;
        let op = p.calls[at].op;
        let nargs = p.calls[at].args.len();
        if nargs == 0 {
            return;
        }
        let i = self.rng.below(nargs as u64) as usize;
        let new = match (p.calls[at].args[i], self.rng.below(4)) {
            (Arg::Lit(v), 0) => Arg::Lit(v ^ (1 << self.rng.below(64))),
            (Arg::Lit(v), 1) => Arg::Lit(
                v.wrapping_add(0x1000)
                    .wrapping_sub(self.rng.below(3) * 0x1000),
            ),
            _ => {
                let args = p.calls[at].args.clone();
                self.arg(p, at, op, i, &args)
            }
        };
        p.calls[at].args[i] = new;
    }
}

/// Inserts `c` before call `at`, renumbering the references after it.
pub fn insert(p: &mut Prog, at: usize, c: Call) {
    for later in &mut p.calls[at..] {
        for a in &mut later.args {
            if let Arg::Ref(r) = a {
                if *r >= at {
                    *r += 1;
                }
            }
        }
    }
    p.calls.insert(at, c);
    if let Some((r, _)) = &mut p.race {
        if *r > at {
            *r += 1;
        }
    }
}

/// Removes call `at`; references to it become bad literals, later ones are renumbered.
pub fn remove(p: &mut Prog, at: usize, rng: &mut Rng) {
    p.calls.remove(at);
    for later in &mut p.calls[at..] {
        for a in &mut later.args {
            match a {
                Arg::Ref(r) if *r == at => *a = Arg::Lit(bad_res(rng)),
                Arg::Ref(r) if *r > at => *r -= 1,
                _ => {}
            }
        }
    }
    if let Some((r, _)) = &mut p.race {
        if *r > at {
            *r -= 1;
        }
    }
    if p.race.is_some_and(|(r, _)| r >= p.calls.len() || r == 0) {
        p.race = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs_point_back(p: &Prog) -> bool {
        p.calls.iter().enumerate().all(|(i, c)| {
            c.args.len() == c.op.def().args.len()
                && c.args.iter().all(|a| match a {
                    Arg::Ref(r) => *r < i,
                    Arg::Lit(_) => true,
                })
        }) && p.race.is_none_or(|(r, _)| r > 0 && r < p.calls.len())
    }

    #[test]
    fn text_round_trips() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let mut g = Gen { rng: &mut rng };
            let mut p = g.generate(12);
            g.mutate(&mut p, None);
            let back = Prog::parse(&p.to_text()).unwrap();
            assert_eq!(back, p, "{}", p.to_text());
        }
    }

    #[test]
    fn mutation_keeps_references_backwards() {
        let mut rng = Rng::new(1);
        let mut g = Gen { rng: &mut rng };
        let other = g.generate(10);
        let mut p = g.generate(10);
        for _ in 0..5000 {
            g.mutate(&mut p, Some(&other));
            assert!(refs_point_back(&p), "{}", p.to_text());
            assert!(p.calls.len() <= MAX_CALLS + other.calls.len());
            if p.calls.len() > MAX_CALLS {
                p.calls.truncate(MAX_CALLS);
                p.race = None;
            }
        }
    }

    #[test]
    fn parse_rejects_forward_references_and_unknown_calls() {
        assert!(Prog::parse("open 0x0\nbo_create @1 0x1000 0x3\n").is_err());
        assert!(Prog::parse("frobnicate @0\n").is_err());
        assert!(Prog::parse("open 0x0 0x1\n").is_err());
        assert!(Prog::parse("open 10\n").is_err());
        let p = Prog::parse("# c\nopen 0x0\nrace fork\nbo_create @0 0x1000 0x3 # x\n").unwrap();
        assert_eq!(p.race, Some((1, Race::Fork)));
        assert_eq!(p.calls[1].args[0], Arg::Ref(0));
    }
}
