// SPDX-License-Identifier: GPL-2.0

//! One-shot execution of a compute kernel: stage the sources in fresh buffers, bind them,
//! run, read the destination back. Shared by the CLI and the guest tests.

use std::time::{Duration, Instant};

use crate::{
    kernels::KernelCall, Access, Binding, Buffer, BufferFlags, Command, Error, Queue, Result, Vm,
};

/// Byte every destination starts as, so a kernel that writes nothing is visible.
pub const DST_POISON: u8 = 0xcd;

/// What [`run_kernel`] read back.
#[derive(Debug)]
pub struct KernelRun {
    /// The destination bytes (`operand_bytes().dst` of them, at least 4).
    pub dst: Vec<u8>,
    /// Submit to completion.
    pub device_time: Duration,
}

/// Runs `call` on `queue` with the sources `a`, `b`, `c` (empty for unused ones) placed in
/// buffers created with `flags` (CPU_VISIBLE is added). The addresses in `call` are
/// replaced by the bindings' VAs.
pub fn run_kernel(
    queue: &Queue<'_>,
    flags: BufferFlags,
    call: &KernelCall,
    a: &[u8],
    b: &[u8],
    c: &[u8],
    timeout: Duration,
) -> Result<KernelRun> {
    let vm = queue.vm();
    let dev = vm.device();
    let flags = flags | BufferFlags::CPU_VISIBLE;
    let sizes = call
        .id
        .operand_bytes(u64::from(call.count), u64::from(call.n), u64::from(call.k));
    let dst_len = usize::try_from(sizes.dst.max(4))
        .map_err(|_| Error::invalid("destination size", sizes.dst.to_string()))?;
    let stage = |data: &[u8]| -> Result<Option<Buffer<'_>>> {
        if data.is_empty() {
            return Ok(None);
        }
        let bo = Buffer::create(dev, data.len() as u64, flags)?;
        bo.map()?.write(0, data)?;
        Ok(Some(bo))
    };
    let (ba, bb, bc) = (stage(a)?, stage(b)?, stage(c)?);
    let bd = Buffer::create(dev, dst_len as u64, flags)?;
    let md = bd.map()?;
    md.fill(0, md.len(), DST_POISON)?;
    let (va, vb, vc) = (
        bind_source(vm, &ba)?,
        bind_source(vm, &bb)?,
        bind_source(vm, &bc)?,
    );
    let vd = vm.bind_auto(&bd, Access::READ_WRITE)?;
    let addr = |b: &Option<Binding<'_>>| b.as_ref().map_or(0, |b| b.va());
    let mut k = *call;
    k.a = addr(&va);
    k.b = addr(&vb);
    k.c = addr(&vc);
    k.dst = vd.va();
    let t = Instant::now();
    queue.run(&[Command::kernel(&k)], timeout)?;
    let device_time = t.elapsed();
    let dst = md.read_vec(0, dst_len)?;
    Ok(KernelRun { dst, device_time })
}

fn bind_source<'a>(vm: &'a Vm<'a>, bo: &'a Option<Buffer<'a>>) -> Result<Option<Binding<'a>>> {
    bo.as_ref()
        .map(|bo| vm.bind_auto(bo, Access::READ))
        .transpose()
}
