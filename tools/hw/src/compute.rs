// SPDX-License-Identifier: GPL-2.0
//! Compute kernels (compute.rst): ids, operands and limits.

use core::fmt;

/// Most elements (`COUNT`) a kernel takes; also the limit of each MATMUL_F32 operand.
pub const MAX_COUNT: u32 = 1 << 24;
/// Most `M * N * K` of one MATMUL_F32.
pub const MAX_MATMUL_WORK: u64 = 1 << 28;

spec_enum! {
    /// Kernel ids of the KERNEL command.
    pub enum Kernel: u32 {
        AddF32 = 0x01 => "ADD_F32",
        MulF32 = 0x02 => "MUL_F32",
        FmaF32 = 0x03 => "FMA_F32",
        AddU32 = 0x04 => "ADD_U32",
        MulU32 = 0x05 => "MUL_U32",
        FmaU32 = 0x06 => "FMA_U32",
        SumF32 = 0x07 => "SUM_F32",
        SumU32 = 0x08 => "SUM_U32",
        Crc32c = 0x09 => "CRC32C",
        MatmulF32 = 0x0a => "MATMUL_F32",
    }
}

/// Byte sizes of a kernel's operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperandBytes {
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub dst: u64,
}

impl Kernel {
    pub fn from_u32(v: u32) -> Option<Self> {
        Self::from_raw(v)
    }

    /// Lower-case name (`add_f32`, `crc32c`, ...), as tools print it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::AddF32 => "add_f32",
            Kernel::MulF32 => "mul_f32",
            Kernel::FmaF32 => "fma_f32",
            Kernel::AddU32 => "add_u32",
            Kernel::MulU32 => "mul_u32",
            Kernel::FmaU32 => "fma_u32",
            Kernel::SumF32 => "sum_f32",
            Kernel::SumU32 => "sum_u32",
            Kernel::Crc32c => "crc32c",
            Kernel::MatmulF32 => "matmul_f32",
        }
    }

    /// Parses a name, case-insensitively, with `-` or `_`.
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether elements are f32 (else u32; CRC32C reads bytes).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Kernel::AddF32 | Kernel::MulF32 | Kernel::FmaF32 | Kernel::SumF32 | Kernel::MatmulF32
        )
    }

    /// How many of A, B, C the kernel reads.
    pub fn sources(self) -> usize {
        match self {
            Kernel::FmaF32 | Kernel::FmaU32 => 3,
            Kernel::SumF32 | Kernel::SumU32 | Kernel::Crc32c => 1,
            _ => 2,
        }
    }

    /// Operand sizes in bytes for `count` (M for MATMUL) and `n`, `k` (MATMUL only).
    pub fn operand_bytes(self, count: u64, n: u64, k: u64) -> OperandBytes {
        let e = 4u64;
        match self {
            Kernel::SumF32 | Kernel::SumU32 => OperandBytes {
                a: count * e,
                b: 0,
                c: 0,
                dst: e,
            },
            Kernel::Crc32c => OperandBytes {
                a: count,
                b: 0,
                c: 0,
                dst: 4,
            },
            Kernel::MatmulF32 => OperandBytes {
                a: count * k * e,
                b: k * n * e,
                c: 0,
                dst: count * n * e,
            },
            Kernel::FmaF32 | Kernel::FmaU32 => OperandBytes {
                a: count * e,
                b: count * e,
                c: count * e,
                dst: count * e,
            },
            _ => OperandBytes {
                a: count * e,
                b: count * e,
                c: 0,
                dst: count * e,
            },
        }
    }

    /// Whether the device accepts these sizes (else the command fails with BAD_LENGTH).
    pub fn sizes_in_limits(self, count: u64, n: u64, k: u64) -> bool {
        let max = u64::from(MAX_COUNT);
        match self {
            Kernel::MatmulF32 => {
                count * k <= max
                    && k * n <= max
                    && count * n <= max
                    && count.saturating_mul(n).saturating_mul(k) <= MAX_MATMUL_WORK
            }
            _ => count <= max,
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Kernel;

    #[test]
    fn names_are_the_spec_names_in_lower_case() {
        for k in Kernel::ALL {
            assert_eq!(k.name().to_ascii_uppercase(), k.spec_name());
            assert_eq!(Kernel::from_name(k.spec_name()), Some(k));
        }
    }
}
