// SPDX-License-Identifier: GPL-2.0

//! Which jobs failed, as WAIT and the job fences report it.

use kernel::prelude::*;

/// Failed job ranges remembered; beyond that the oldest ones merge (see [`Failures::record`]).
pub(crate) const FAILURES_KEPT: usize = 16;

/// Ranges of jobs that failed (inclusive sequence numbers), oldest first.
///
/// A failure is never forgotten, since WAIT would then report a failed job done. The record
/// is a fixed array, so that recording needs no memory: it used to be a vector whose push
/// could fail for lack of memory and, with nothing recorded yet, lose the range.
#[derive(Clone, Copy)]
pub(crate) struct Failures {
    ranges: [(u64, u64); FAILURES_KEPT],
    len: usize,
}

impl Failures {
    pub(crate) const fn new() -> Self {
        Self {
            ranges: [(0, 0); FAILURES_KEPT],
            len: 0,
        }
    }

    /// Records that jobs `lo..=hi` failed. When the record is full, its two oldest ranges
    /// merge into one: the successful jobs between them then read as failed too, the safe
    /// side.
    pub(crate) fn record(&mut self, lo: u64, hi: u64) {
        if self.len == FAILURES_KEPT {
            self.ranges[0].1 = self.ranges[1].1;
            self.ranges.copy_within(2.., 1);
            self.len -= 1;
        }
        self.ranges[self.len] = (lo, hi);
        self.len += 1;
    }

    /// Whether job `seqno` failed.
    pub(crate) fn contains(&self, seqno: u64) -> bool {
        self.iter().any(|(lo, hi)| lo <= seqno && seqno <= hi)
    }

    /// The ranges, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().take(self.len).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}

#[kunit_tests(vela_failures)]
mod tests {
    use super::*;

    #[test]
    fn records_ranges() {
        let mut f = Failures::new();
        assert!(!f.contains(1));
        f.record(3, 5);
        f.record(9, 9);
        assert!(f.contains(3) && f.contains(5) && f.contains(9));
        assert!(!f.contains(2) && !f.contains(6) && !f.contains(10));
        f.clear();
        assert!(!f.contains(3) && f.len() == 0);
    }

    /// Beyond the ranges kept, the oldest merge: no failure is forgotten (a job between two
    /// old failures may then read as failed, never a failed one as done).
    #[test]
    fn never_forgets() {
        let mut f = Failures::new();
        f.record(3, 5);
        f.record(9, 9);
        let kept = FAILURES_KEPT as u64;
        for k in 0..kept {
            f.record(100 + 2 * k, 100 + 2 * k);
        }
        assert_eq!(f.len(), FAILURES_KEPT);
        assert!(f.contains(3) && f.contains(9));
        assert!(f.contains(100) && f.contains(100 + 2 * (kept - 1)));
        assert!(!f.contains(2) && !f.contains(101 + 2 * (kept - 1)));
    }

    /// The bug this type fixed: the first failure of a run, recorded when no memory can be
    /// had, was dropped and its job then read as done. Recording allocates nothing now, so
    /// the first range is kept whatever the allocator says; this fills the record as the
    /// first failure of a run would find it, right after `clear`.
    #[test]
    fn first_failure_is_kept() {
        let mut f = Failures::new();
        for k in 0..(2 * FAILURES_KEPT as u64) {
            f.record(k, k);
        }
        f.clear();
        f.record(7, 7);
        assert!(f.contains(7) && f.len() == 1);
    }
}
