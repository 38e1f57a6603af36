// SPDX-License-Identifier: GPL-2.0

//! Compute kernels (Documentation/hardware/compute.rst): their ids, operand sizes, and CPU
//! reference implementations that round exactly as the device does, so results compare
//! bit for bit.

/// Kernel ids of the KERNEL command, with their operand sizes and limits.
pub use vela_hw::compute::{Kernel as KernelId, OperandBytes};

/// Most elements a kernel takes (`COUNT` limit), and the MATMUL operand limits.
pub const MAX_COUNT: u64 = vela_hw::compute::MAX_COUNT as u64;
pub const MAX_MATMUL_MNK: u64 = vela_hw::compute::MAX_MATMUL_WORK;

/// The operands of one KERNEL command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelCall {
    pub id: KernelId,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub dst: u64,
    /// Element count; M for MATMUL_F32, byte count for CRC32C.
    pub count: u32,
    pub n: u32,
    pub k: u32,
    /// CRC32C seed.
    pub param: u32,
}

impl KernelCall {
    pub fn new(id: KernelId, a: u64, b: u64, c: u64, dst: u64, count: u32) -> Self {
        Self {
            id,
            a,
            b,
            c,
            dst,
            count,
            n: 0,
            k: 0,
            param: 0,
        }
    }

    pub fn with_nk(mut self, n: u32, k: u32) -> Self {
        self.n = n;
        self.k = k;
        self
    }

    pub fn with_param(mut self, param: u32) -> Self {
        self.param = param;
        self
    }
}

fn zip2<T: Copy>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> Vec<T> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

fn zip3<T: Copy>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) -> Vec<T> {
    a.iter()
        .zip(b)
        .zip(c)
        .map(|((&x, &y), &z)| f(x, y, z))
        .collect()
}

pub fn add_f32(a: &[f32], b: &[f32]) -> Vec<f32> {
    zip2(a, b, |x, y| x + y)
}

pub fn mul_f32(a: &[f32], b: &[f32]) -> Vec<f32> {
    zip2(a, b, |x, y| x * y)
}

/// `fma(a, b, c)` with one rounding (`f32::mul_add` is the fused operation, correctly
/// rounded in software where the CPU lacks it).
pub fn fma_f32(a: &[f32], b: &[f32], c: &[f32]) -> Vec<f32> {
    zip3(a, b, c, f32::mul_add)
}

pub fn add_u32(a: &[u32], b: &[u32]) -> Vec<u32> {
    zip2(a, b, u32::wrapping_add)
}

pub fn mul_u32(a: &[u32], b: &[u32]) -> Vec<u32> {
    zip2(a, b, u32::wrapping_mul)
}

pub fn fma_u32(a: &[u32], b: &[u32], c: &[u32]) -> Vec<u32> {
    zip3(a, b, c, |x, y, z| x.wrapping_mul(y).wrapping_add(z))
}

/// Index-order sum from +0.0, each addition rounded (Rust never contracts or reassociates).
pub fn sum_f32(a: &[f32]) -> f32 {
    a.iter().fold(0.0f32, |s, &x| s + x)
}

pub fn sum_u32(a: &[u32]) -> u32 {
    a.iter().fold(0u32, |s, &x| s.wrapping_add(x))
}

const CRC32C_POLY: u32 = 0x82f6_3b78;

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut j = 0;
        while j < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ CRC32C_POLY
            } else {
                c >> 1
            };
            j += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32C_TABLE: [u32; 256] = crc32c_table();

/// CRC-32C of `data` continuing from `seed` (the previous result; 0 to start).
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    let mut c = !seed;
    for &b in data {
        c = CRC32C_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// `A (m x k) x B (k x n)`, row-major; each product and each addition rounded separately,
/// summed over k in increasing order from +0.0. Short inputs give `None`.
pub fn matmul_f32(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Option<Vec<f32>> {
    if a.len() < m.checked_mul(k)? || b.len() < k.checked_mul(n)? {
        return None;
    }
    let mut out = vec![0.0f32; m.checked_mul(n)?];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for kk in 0..k {
                let p = a[i * k + kk] * b[kk * n + j];
                s += p;
            }
            out[i * n + j] = s;
        }
    }
    Some(out)
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn floats(b: &[u8]) -> Vec<f32> {
    words(b).into_iter().map(f32::from_bits).collect()
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
}

/// What the device writes at DST for `call` given the source bytes (little-endian), or
/// `None` when it writes nothing (a zero count or dimension) or a source is too short.
pub fn reference(call: &KernelCall, a: &[u8], b: &[u8], c: &[u8]) -> Option<Vec<u8>> {
    let count = call.count as usize;
    let sz = call
        .id
        .operand_bytes(u64::from(call.count), u64::from(call.n), u64::from(call.k));
    let fits = |have: &[u8], need: u64| (have.len() as u64) >= need;
    if !fits(a, sz.a) || !fits(b, sz.b) || !fits(c, sz.c) {
        return None;
    }
    let (a, b, c) = (
        &a[..sz.a as usize],
        &b[..sz.b as usize],
        &c[..sz.c as usize],
    );
    if count == 0 {
        return None;
    }
    Some(match call.id {
        KernelId::AddF32 => f32_bytes(&add_f32(&floats(a), &floats(b))),
        KernelId::MulF32 => f32_bytes(&mul_f32(&floats(a), &floats(b))),
        KernelId::FmaF32 => f32_bytes(&fma_f32(&floats(a), &floats(b), &floats(c))),
        KernelId::AddU32 => u32_bytes(&add_u32(&words(a), &words(b))),
        KernelId::MulU32 => u32_bytes(&mul_u32(&words(a), &words(b))),
        KernelId::FmaU32 => u32_bytes(&fma_u32(&words(a), &words(b), &words(c))),
        KernelId::SumF32 => sum_f32(&floats(a)).to_bits().to_le_bytes().to_vec(),
        KernelId::SumU32 => sum_u32(&words(a)).to_le_bytes().to_vec(),
        KernelId::Crc32c => crc32c(call.param, a).to_le_bytes().to_vec(),
        KernelId::MatmulF32 => {
            let (n, k) = (call.n as usize, call.k as usize);
            if n == 0 || k == 0 {
                return None;
            }
            f32_bytes(&matmul_f32(&floats(a), &floats(b), count, n, k)?)
        }
    })
}

/// Compares a device result with the reference: bit-exact, except that any NaN matches any
/// NaN for f32 kernels (the spec leaves NaN payloads unspecified). Returns the index of the
/// first differing element.
pub fn first_mismatch(id: KernelId, got: &[u8], want: &[u8]) -> Option<usize> {
    if got.len() != want.len() {
        return Some(got.len().min(want.len()) / 4);
    }
    let g = words(got);
    let w = words(want);
    g.iter().zip(&w).position(|(&x, &y)| {
        if id.is_float() && f32::from_bits(x).is_nan() && f32::from_bits(y).is_nan() {
            false
        } else {
            x != y
        }
    })
}

/// A small deterministic generator (xorshift64*) for test data, so device runs are
/// reproducible from a seed without a dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (n > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Finite f32 in [-8, 8) with a varied mantissa: sums and products round, but never
    /// overflow, so a rounding difference is visible.
    pub fn f32(&mut self) -> f32 {
        (self.next_u32() as f32 / 4_294_967_296.0) * 16.0 - 8.0
    }

    pub fn fill_bytes(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }

    /// Source bytes suited to `id`: f32 values for float kernels, random words otherwise.
    pub fn operand(&mut self, id: KernelId, bytes: usize) -> Vec<u8> {
        if id.is_float() {
            (0..bytes / 4)
                .flat_map(|_| self.f32().to_bits().to_le_bytes())
                .collect()
        } else {
            let mut v = vec![0; bytes];
            self.fill_bytes(&mut v);
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_spec_table() {
        let want = [
            ("add_f32", 1),
            ("mul_f32", 2),
            ("fma_f32", 3),
            ("add_u32", 4),
            ("mul_u32", 5),
            ("fma_u32", 6),
            ("sum_f32", 7),
            ("sum_u32", 8),
            ("crc32c", 9),
            ("matmul_f32", 10),
        ];
        for (name, id) in want {
            let k = KernelId::from_name(name).unwrap();
            assert_eq!(k as u32, id);
            assert_eq!(KernelId::from_u32(id), Some(k));
        }
        assert_eq!(KernelId::from_name("MATMUL-F32"), Some(KernelId::MatmulF32));
        assert_eq!(KernelId::from_u32(0), None);
        assert_eq!(KernelId::from_u32(0x0b), None);
    }

    #[test]
    fn crc32c_check_value_and_continuation() {
        assert_eq!(crc32c(0, b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(0, b""), 0);
        let part = crc32c(0, b"1234");
        assert_eq!(crc32c(part, b"56789"), 0xe306_9283);
        // RFC 3720 B.4: 32 bytes of zeros and of 0xff.
        assert_eq!(crc32c(0, &[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(0, &[0xffu8; 32]), 0x62a8_ab43);
    }

    #[test]
    fn u32_kernels_wrap() {
        assert_eq!(add_u32(&[u32::MAX, 1], &[2, 2]), vec![1, 3]);
        assert_eq!(mul_u32(&[0x1_0001], &[0x1_0001]), vec![0x0002_0001]);
        assert_eq!(fma_u32(&[0x8000_0000], &[2], &[5]), vec![5]);
        assert_eq!(sum_u32(&[u32::MAX, u32::MAX, 3]), 1);
    }

    #[test]
    fn fma_rounds_once() {
        // a*b = 1 - 2^-46 exactly; rounded alone it is 1.0 and adding -1 gives 0, fused
        // it keeps the low bits.
        let a = 1.0 + f32::EPSILON;
        let b = 1.0 - f32::EPSILON;
        let fused = fma_f32(&[a], &[b], &[-1.0])[0];
        assert_eq!(fused, -(f32::EPSILON * f32::EPSILON));
        assert_eq!(mul_f32(&[a], &[b])[0] - 1.0, 0.0);
    }

    #[test]
    fn sum_f32_is_index_order() {
        // Order matters: 1e8 + 1 + ... loses the ones, the other order would not.
        let v = [1.0e8f32, 1.0, 1.0, 1.0, 1.0, -1.0e8];
        assert_eq!(sum_f32(&v), 0.0);
        assert_eq!(sum_f32(&[]), 0.0);
        assert!(
            sum_f32(&[-0.0]).to_bits() == 0,
            "starts from +0.0: -0.0 + +0.0 = +0.0"
        );
        assert!(sum_f32(&[f32::NAN, 1.0]).is_nan());
    }

    #[test]
    fn matmul_small() {
        // [1 2 3; 4 5 6] x [7 8; 9 10; 11 12] = [58 64; 139 154]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        assert_eq!(
            matmul_f32(&a, &b, 2, 2, 3).unwrap(),
            vec![58.0, 64.0, 139.0, 154.0]
        );
        assert!(matmul_f32(&a, &b, 3, 2, 3).is_none());
    }

    #[test]
    fn matmul_does_not_fuse() {
        let e = f32::EPSILON;
        // Unfused: (1+e)(1-e) rounds to 1, plus -1 (1 x 1 via k=2 with b2 = 1) gives 0.
        let r = matmul_f32(&[1.0 + e, -1.0], &[1.0 - e, 1.0], 1, 1, 2).unwrap();
        assert_eq!(r, vec![0.0]);
    }

    #[test]
    fn reference_dispatch_and_zero_count() {
        let a = u32_bytes(&[1, 2, 3]);
        let b = u32_bytes(&[10, 20, 30]);
        let call = KernelCall::new(KernelId::AddU32, 0, 0, 0, 0, 3);
        assert_eq!(
            reference(&call, &a, &b, &[]).unwrap(),
            u32_bytes(&[11, 22, 33])
        );
        let sum = KernelCall::new(KernelId::SumU32, 0, 0, 0, 0, 3);
        assert_eq!(reference(&sum, &a, &[], &[]).unwrap(), 6u32.to_le_bytes());
        let zero = KernelCall::new(KernelId::SumU32, 0, 0, 0, 0, 0);
        assert_eq!(reference(&zero, &a, &[], &[]), None);
        let short = KernelCall::new(KernelId::AddU32, 0, 0, 0, 0, 4);
        assert_eq!(reference(&short, &a, &b, &[]), None);
        let crc = KernelCall::new(KernelId::Crc32c, 0, 0, 0, 0, 9);
        assert_eq!(
            reference(&crc, b"123456789", &[], &[]).unwrap(),
            0xe306_9283u32.to_le_bytes()
        );
        let mm = KernelCall::new(KernelId::MatmulF32, 0, 0, 0, 0, 1).with_nk(0, 1);
        assert_eq!(reference(&mm, &f32_bytes(&[1.0]), &[], &[]), None);
    }

    #[test]
    fn operand_sizes() {
        let s = KernelId::MatmulF32.operand_bytes(2, 3, 4);
        assert_eq!((s.a, s.b, s.c, s.dst), (32, 48, 0, 24));
        assert_eq!(KernelId::Crc32c.operand_bytes(5, 0, 0).a, 5);
        assert_eq!(KernelId::FmaU32.operand_bytes(5, 0, 0).c, 20);
        assert_eq!(KernelId::SumF32.operand_bytes(5, 0, 0).dst, 4);
        assert!(KernelId::AddF32.sizes_in_limits(1 << 24, 0, 0));
        assert!(!KernelId::AddF32.sizes_in_limits((1 << 24) + 1, 0, 0));
        assert!(KernelId::MatmulF32.sizes_in_limits(1 << 10, 1 << 8, 1 << 10));
        assert!(!KernelId::MatmulF32.sizes_in_limits(1 << 12, 1 << 12, 1 << 12));
    }

    #[test]
    fn nan_payloads_are_not_compared() {
        let got = f32_bytes(&[1.0, f32::from_bits(0x7fc0_0001)]);
        let want = f32_bytes(&[1.0, f32::NAN]);
        assert_eq!(first_mismatch(KernelId::AddF32, &got, &want), None);
        assert_eq!(first_mismatch(KernelId::AddU32, &got, &want), Some(1));
        let off = f32_bytes(&[1.0, 2.0]);
        assert_eq!(first_mismatch(KernelId::AddF32, &off, &want), Some(1));
    }

    #[test]
    fn rng_is_deterministic() {
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        assert_eq!(a.next_u64(), b.next_u64());
        assert!((0..1000).all(|_| (-8.0..8.0).contains(&a.f32())));
    }
}
