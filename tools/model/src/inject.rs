// SPDX-License-Identifier: GPL-2.0
//! Fault injection: knobs a reliability test turns through model options or
//! the control socket. Engines consult them while executing, without taking
//! the register lock, so they are atomics.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use vela_hw::Engine;

#[derive(Default)]
pub struct Injection {
    hang: [AtomicBool; 2],
    fail_dma: AtomicU32,
    drop_irq: AtomicU32,
    corrupt_fence: AtomicU32,
    mmu_fault: AtomicU32,
}

/// One injection request, as written after `--inject` or on the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    /// The engine stops making progress until a global reset, FLR or `Unhang`.
    Hang(Engine),
    Unhang,
    /// The next N commands that touch memory fail with DMA_ERROR.
    FailDma(u32),
    /// The next N interrupt messages are not sent.
    DropIrq(u32),
    /// The next N FENCE commands write the bitwise NOT of their value.
    CorruptFence(u32),
    /// The next N commands that translate an address fault (reason INJECTED).
    MmuFault(u32),
    /// Turn every knob off.
    Clear,
}

impl Knob {
    /// `hang-engine=copy|compute`, `unhang`, `fail-dma[=N]`, `drop-irq[=N]`,
    /// `corrupt-fence[=N]`, `mmu-fault[=N]`, `clear`; N defaults to 1.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (k, v) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        let count = || -> Result<u32, String> {
            v.map_or(Ok(1), |v| {
                v.parse().map_err(|_| format!("{k}: '{v}' is not a count"))
            })
        };
        Ok(match k {
            "hang-engine" => match v {
                Some("copy") => Self::Hang(Engine::Copy),
                Some("compute") => Self::Hang(Engine::Compute),
                _ => return Err("hang-engine needs =copy or =compute".into()),
            },
            "unhang" => Self::Unhang,
            "fail-dma" => Self::FailDma(count()?),
            "drop-irq" => Self::DropIrq(count()?),
            "corrupt-fence" => Self::CorruptFence(count()?),
            "mmu-fault" => Self::MmuFault(count()?),
            "clear" => Self::Clear,
            _ => return Err(format!("unknown injection '{k}'")),
        })
    }
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

impl Injection {
    pub fn apply(&self, knob: Knob) {
        match knob {
            Knob::Hang(e) => self.hang[e as usize].store(true, Ordering::Release),
            Knob::Unhang => self.unhang(),
            Knob::FailDma(n) => self.fail_dma.store(n, Ordering::Release),
            Knob::DropIrq(n) => self.drop_irq.store(n, Ordering::Release),
            Knob::CorruptFence(n) => self.corrupt_fence.store(n, Ordering::Release),
            Knob::MmuFault(n) => self.mmu_fault.store(n, Ordering::Release),
            Knob::Clear => {
                self.unhang();
                for c in [
                    &self.fail_dma,
                    &self.drop_irq,
                    &self.corrupt_fence,
                    &self.mmu_fault,
                ] {
                    c.store(0, Ordering::Release);
                }
            }
        }
    }

    /// Resets recover a hung engine; one-shot knobs stay armed.
    pub fn unhang(&self) {
        self.hang
            .iter()
            .for_each(|h| h.store(false, Ordering::Release));
    }

    pub fn hung(&self, e: Engine) -> bool {
        self.hang[e as usize].load(Ordering::Acquire)
    }

    pub fn take_fail_dma(&self) -> bool {
        take(&self.fail_dma)
    }

    pub fn take_drop_irq(&self) -> bool {
        take(&self.drop_irq)
    }

    pub fn take_corrupt_fence(&self) -> bool {
        take(&self.corrupt_fence)
    }

    pub fn take_mmu_fault(&self) -> bool {
        take(&self.mmu_fault)
    }

    pub fn describe(&self) -> String {
        let l = |c: &AtomicU32| c.load(Ordering::Acquire);
        format!(
            "hang-copy={} hang-compute={} fail-dma={} drop-irq={} corrupt-fence={} mmu-fault={}",
            u8::from(self.hung(Engine::Copy)),
            u8::from(self.hung(Engine::Compute)),
            l(&self.fail_dma),
            l(&self.drop_irq),
            l(&self.corrupt_fence),
            l(&self.mmu_fault)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_consume() {
        assert_eq!(
            Knob::parse("hang-engine=copy"),
            Ok(Knob::Hang(Engine::Copy))
        );
        assert_eq!(Knob::parse("fail-dma"), Ok(Knob::FailDma(1)));
        assert_eq!(Knob::parse("drop-irq=3"), Ok(Knob::DropIrq(3)));
        assert!(Knob::parse("hang-engine").is_err());
        assert!(Knob::parse("fail-dma=x").is_err());
        assert!(Knob::parse("explode").is_err());
        let i = Injection::default();
        i.apply(Knob::DropIrq(2));
        assert!(i.take_drop_irq() && i.take_drop_irq() && !i.take_drop_irq());
        i.apply(Knob::Hang(Engine::Compute));
        assert!(i.hung(Engine::Compute) && !i.hung(Engine::Copy));
        i.apply(Knob::Clear);
        assert!(!i.hung(Engine::Compute));
    }
}
