// SPDX-License-Identifier: GPL-2.0
//! Compute kernels, as pure functions over host buffers. The engine reads the
//! operands through the MMU, calls these, and writes the result back.

use vela_hw::Kernel;

pub use vela_hw::cmd::KernelArgs;

/// What a kernel needs read and written, in bytes; checked before any access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Bytes read from A, B and C.
    pub inputs: [usize; 3],
    pub output: usize,
    /// Whether operands must be 4-byte aligned (all but CRC32C's input).
    pub aligned_inputs: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeError {
    TooLarge,
}

pub fn shape(kernel: Kernel, args: &KernelArgs) -> Result<Shape, ShapeError> {
    use Kernel::*;
    let n = args.count as usize;
    let elems = |e: u64| -> Result<usize, ShapeError> {
        if e > u64::from(vela_hw::compute::MAX_COUNT) {
            return Err(ShapeError::TooLarge);
        }
        Ok(e as usize * 4)
    };
    if kernel != MatmulF32 && args.count > vela_hw::compute::MAX_COUNT {
        return Err(ShapeError::TooLarge);
    }
    Ok(match kernel {
        AddF32 | MulF32 | AddU32 | MulU32 => Shape {
            inputs: [n * 4, n * 4, 0],
            output: n * 4,
            aligned_inputs: true,
        },
        FmaF32 | FmaU32 => Shape {
            inputs: [n * 4; 3],
            output: n * 4,
            aligned_inputs: true,
        },
        SumF32 | SumU32 => Shape {
            inputs: [n * 4, 0, 0],
            output: if n == 0 { 0 } else { 4 },
            aligned_inputs: true,
        },
        Crc32c => Shape {
            inputs: [n, 0, 0],
            output: if n == 0 { 0 } else { 4 },
            aligned_inputs: false,
        },
        MatmulF32 => {
            let (m, nn, k) = (u64::from(args.count), u64::from(args.n), u64::from(args.k));
            if m.saturating_mul(nn).saturating_mul(k) > vela_hw::compute::MAX_MATMUL_WORK {
                return Err(ShapeError::TooLarge);
            }
            let (a, b, d) = (elems(m * k)?, elems(k * nn)?, elems(m * nn)?);
            if m == 0 || nn == 0 || k == 0 {
                Shape {
                    inputs: [0; 3],
                    output: 0,
                    aligned_inputs: true,
                }
            } else {
                Shape {
                    inputs: [a, b, 0],
                    output: d,
                    aligned_inputs: true,
                }
            }
        }
    })
}

fn words(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

fn floats(b: &[u8]) -> impl Iterator<Item = f32> + '_ {
    words(b).map(f32::from_bits)
}

fn from_words(it: impl Iterator<Item = u32>) -> Vec<u8> {
    it.flat_map(u32::to_le_bytes).collect()
}

fn from_floats(it: impl Iterator<Item = f32>) -> Vec<u8> {
    from_words(it.map(f32::to_bits))
}

/// Compute the output bytes from the input bytes (sized as `shape` said).
pub fn run(kernel: Kernel, args: &KernelArgs, a: &[u8], b: &[u8], c: &[u8]) -> Vec<u8> {
    use Kernel::*;
    match kernel {
        AddF32 => from_floats(floats(a).zip(floats(b)).map(|(x, y)| x + y)),
        MulF32 => from_floats(floats(a).zip(floats(b)).map(|(x, y)| x * y)),
        FmaF32 => from_floats(
            floats(a)
                .zip(floats(b))
                .zip(floats(c))
                .map(|((x, y), z)| x.mul_add(y, z)),
        ),
        AddU32 => from_words(words(a).zip(words(b)).map(|(x, y)| x.wrapping_add(y))),
        MulU32 => from_words(words(a).zip(words(b)).map(|(x, y)| x.wrapping_mul(y))),
        FmaU32 => from_words(
            words(a)
                .zip(words(b))
                .zip(words(c))
                .map(|((x, y), z)| x.wrapping_mul(y).wrapping_add(z)),
        ),
        SumF32 if a.is_empty() => Vec::new(),
        SumF32 => from_floats(std::iter::once(floats(a).fold(0.0f32, |acc, x| acc + x))),
        SumU32 if a.is_empty() => Vec::new(),
        SumU32 => from_words(std::iter::once(words(a).fold(0u32, u32::wrapping_add))),
        Crc32c if a.is_empty() => Vec::new(),
        Crc32c => crc32c(args.param, a).to_le_bytes().to_vec(),
        MatmulF32 => matmul(args, a, b),
    }
}

fn matmul(args: &KernelArgs, a: &[u8], b: &[u8]) -> Vec<u8> {
    let (m, n, k) = (args.count as usize, args.n as usize, args.k as usize);
    if m == 0 || n == 0 || k == 0 {
        return Vec::new();
    }
    let a: Vec<f32> = floats(a).collect();
    let b: Vec<f32> = floats(b).collect();
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        let row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let mut acc = 0.0f32;
            for (kk, &x) in row.iter().enumerate() {
                acc += x * b[kk * n + j];
            }
            out.push(acc);
        }
    }
    from_floats(out.into_iter())
}

/// CRC-32C table, built at compile time from the reflected polynomial.
const CRC32C_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32C continuing from `prev` (0 for a fresh CRC).
pub fn crc32c(prev: u32, data: &[u8]) -> u32 {
    let crc = data.iter().fold(!prev, |crc, &byte| {
        CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8)
    });
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(v: &[f32]) -> Vec<u8> {
        from_floats(v.iter().copied())
    }

    fn wb(v: &[u32]) -> Vec<u8> {
        from_words(v.iter().copied())
    }

    fn args(count: u32) -> KernelArgs {
        KernelArgs {
            count,
            ..Default::default()
        }
    }

    #[test]
    fn elementwise() {
        let a = fb(&[1.0, 2.5, -3.0]);
        let b = fb(&[0.5, 2.0, 4.0]);
        let c = fb(&[1.0, 1.0, 1.0]);
        assert_eq!(
            run(Kernel::AddF32, &args(3), &a, &b, &[]),
            fb(&[1.5, 4.5, 1.0])
        );
        assert_eq!(
            run(Kernel::MulF32, &args(3), &a, &b, &[]),
            fb(&[0.5, 5.0, -12.0])
        );
        assert_eq!(
            run(Kernel::FmaF32, &args(3), &a, &b, &c),
            fb(&[1.5, 6.0, -11.0])
        );
        let a = wb(&[u32::MAX, 3]);
        let b = wb(&[2, 0x8000_0000]);
        let c = wb(&[5, 1]);
        assert_eq!(
            run(Kernel::AddU32, &args(2), &a, &b, &[]),
            wb(&[1, 0x8000_0003])
        );
        assert_eq!(
            run(Kernel::MulU32, &args(2), &a, &b, &[]),
            wb(&[u32::MAX - 1, 0x8000_0000])
        );
        assert_eq!(
            run(Kernel::FmaU32, &args(2), &a, &b, &c),
            wb(&[3, 0x8000_0001])
        );
    }

    #[test]
    fn fma_rounds_once() {
        // x*x - 1 with x = 1 + 2^-12: the product's low bits survive only when fused.
        let x = 1.0f32 + f32::EPSILON * 2048.0;
        let out = run(Kernel::FmaF32, &args(1), &fb(&[x]), &fb(&[x]), &fb(&[-1.0]));
        assert_eq!(out, fb(&[x.mul_add(x, -1.0)]));
        assert_ne!(out, fb(&[x * x - 1.0]));
    }

    #[test]
    fn reductions() {
        assert_eq!(
            run(
                Kernel::SumF32,
                &args(4),
                &fb(&[1.0, 2.0, 3.0, 0.5]),
                &[],
                &[]
            ),
            fb(&[6.5])
        );
        assert_eq!(
            run(Kernel::SumU32, &args(2), &wb(&[u32::MAX, 2]), &[], &[]),
            wb(&[1])
        );
        assert!(run(Kernel::SumU32, &args(0), &[], &[], &[]).is_empty());
        // In-order summation: 1e8 + 1 - 1e8 loses the 1.
        assert_eq!(
            run(Kernel::SumF32, &args(3), &fb(&[1e8, 1.0, -1e8]), &[], &[]),
            fb(&[0.0])
        );
    }

    #[test]
    fn crc32c_check_value_and_chaining() {
        assert_eq!(crc32c(0, b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(crc32c(0, b"1234"), b"56789"), 0xe306_9283);
        let args = KernelArgs {
            count: 9,
            param: 0,
            ..Default::default()
        };
        assert_eq!(
            run(Kernel::Crc32c, &args, b"123456789", &[], &[]),
            0xe306_9283u32.to_le_bytes()
        );
    }

    #[test]
    fn matmul_row_major() {
        // [1 2 3; 4 5 6] x [7 8; 9 10; 11 12] = [58 64; 139 154]
        let a = fb(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = fb(&[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
        let args = KernelArgs {
            count: 2,
            n: 2,
            k: 3,
            ..Default::default()
        };
        assert_eq!(
            run(Kernel::MatmulF32, &args, &a, &b, &[]),
            fb(&[58.0, 64.0, 139.0, 154.0])
        );
        let s = shape(Kernel::MatmulF32, &args).unwrap();
        assert_eq!((s.inputs, s.output), ([24, 24, 0], 16));
    }

    #[test]
    fn shapes_enforce_limits() {
        assert_eq!(
            shape(Kernel::AddF32, &args(vela_hw::compute::MAX_COUNT + 1)),
            Err(ShapeError::TooLarge)
        );
        let big = KernelArgs {
            count: 4096,
            n: 4096,
            k: 4096,
            ..Default::default()
        };
        assert_eq!(shape(Kernel::MatmulF32, &big), Err(ShapeError::TooLarge));
        let s = shape(Kernel::Crc32c, &args(5)).unwrap();
        assert_eq!((s.inputs[0], s.output, s.aligned_inputs), (5, 4, false));
        let s = shape(Kernel::SumF32, &args(0)).unwrap();
        assert_eq!(s.output, 0);
    }
}
