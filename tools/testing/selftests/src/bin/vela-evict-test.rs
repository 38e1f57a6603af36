// SPDX-License-Identifier: GPL-2.0

//! VRAM pressure: when VRAM is full, BO_CREATE evicts idle buffers to system memory, their
//! data intact (read back through mappings made before the move); VRAM_ONLY buffers never
//! move; a job brings an evicted buffer back once VRAM is free again; and an allocation that
//! nothing can make room for fails with ENOMEM.

use std::time::Duration;

use vela_runtime::{Access, Buffer, BufferFlags, Command, Placement, Queue, Vm};
use vela_selftests::{msg, open_device, Tap};

const MIB: u64 = 1 << 20;
/// Buffer size: 2 MiB pages, and few enough buffers to fill 256 MiB quickly.
const SIZE: u64 = 16 * MIB;
const T: Duration = Duration::from_secs(60);

/// Distinct contents per buffer: the seed in every 64-bit word, mixed with the position.
fn pattern(seed: u64, len: u64) -> Vec<u8> {
    (0..len / 8)
        .flat_map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (seed << 48)).to_le_bytes())
        .collect()
}

fn placement(b: &Buffer<'_>) -> Option<Placement> {
    b.info().map(|i| i.placement).ok()
}

/// Whether every buffer holds its pattern, read through a fresh mapping.
fn intact(bufs: &[(Buffer<'_>, u64)]) -> bool {
    bufs.iter().all(|(b, seed)| {
        b.map()
            .and_then(|m| m.read_vec(0, SIZE as usize))
            .is_ok_and(|v| v == pattern(*seed, SIZE))
    })
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let vram = dev.vram_size();
    let cpu = BufferFlags::VRAM | BufferFlags::CPU_VISIBLE;

    // A VRAM_ONLY buffer first, so it would be the oldest victim if it could be one.
    let pinned_pat = pattern(1000, SIZE);
    let Some(pinned) = t.ok(
        msg(Buffer::create(&dev, SIZE, cpu | BufferFlags::VRAM_ONLY)),
        "create a VRAM_ONLY buffer",
    ) else {
        t.finish()
    };
    let Some(pmap) = t.ok(msg(pinned.map()), "map it") else {
        t.finish()
    };
    t.ok(msg(pmap.write(0, &pinned_pat)), "fill it");

    // More buffers than VRAM holds, each filled through its mapping.
    let count = vram / SIZE + 2;
    let mut bufs: Vec<(Buffer<'_>, u64)> = Vec::new();
    let mut created = true;
    for i in 0..count {
        let made = msg(Buffer::create(&dev, SIZE, cpu)).and_then(|b| {
            msg(msg(b.map())?.write(0, &pattern(i, SIZE)))?;
            Ok(b)
        });
        match made {
            Ok(b) => bufs.push((b, i)),
            Err(e) => {
                t.check(false, "create and fill buffers past the size of VRAM", e);
                created = false;
                break;
            }
        }
    }
    if created {
        t.check(
            true,
            &format!(
                "{count} buffers of 16 MiB created on {} MiB of VRAM",
                vram / MIB
            ),
            "",
        );
    }
    let evicted: Vec<usize> = (0..bufs.len())
        .filter(|&i| placement(&bufs[i].0) == Some(Placement::System))
        .collect();
    t.check(
        !evicted.is_empty(),
        "some were evicted: BO_INFO says SYSTEM",
        format_args!("{} of {}", evicted.len(), bufs.len()),
    );
    t.check(
        intact(&bufs),
        "every buffer's data is intact, read back through a mapping",
        "mismatch",
    );
    t.eq(
        placement(&pinned),
        Some(Placement::Vram),
        "the VRAM_ONLY buffer stayed in VRAM",
    );
    t.check(
        pmap.read_vec(0, SIZE as usize)
            .is_ok_and(|v| v == pinned_pat),
        "the VRAM_ONLY buffer's data is intact",
        "mismatch",
    );

    // Free VRAM by closing buffers that are still in VRAM, then use an evicted one in a job:
    // it comes back, and the job reads the right data.
    if let Some(&e) = evicted.first() {
        let (victim, victim_seed) = bufs.remove(e);
        bufs.retain(|(b, _)| placement(b) != Some(Placement::Vram));
        let dst = msg(Buffer::create(&dev, SIZE, BufferFlags::CPU_VISIBLE));
        let job = (|| -> std::io::Result<()> {
            let dst = dst?;
            let vm = msg(Vm::create(&dev))?;
            let q = msg(Queue::create(&vm))?;
            let bv = msg(vm.bind_auto(&victim, Access::READ))?;
            let bd = msg(vm.bind_auto(&dst, Access::READ_WRITE))?;
            msg(q.run(&[Command::copy(bv.va(), bd.va(), SIZE)], T))?;
            let got = msg(msg(dst.map())?.read_vec(0, SIZE as usize))?;
            if got != pattern(victim_seed, SIZE) {
                return Err(std::io::Error::other("the job read different data"));
            }
            Ok(())
        })();
        t.check(
            job.is_ok(),
            "a job reads an evicted buffer correctly",
            format_args!("{job:?}"),
        );
        t.eq(
            placement(&victim),
            Some(Placement::Vram),
            "with VRAM free again, the job brought it back: BO_INFO says VRAM",
        );
        t.check(
            intact(&[(victim, victim_seed)]),
            "its data is intact back in VRAM",
            "mismatch",
        );
    }

    // VRAM_ONLY buffers until nothing more fits: everything else is evicted to make room,
    // and then the request fails with ENOMEM, not another error.
    let mut only = Vec::new();
    let err = loop {
        match Buffer::create(&dev, SIZE, BufferFlags::VRAM | BufferFlags::VRAM_ONLY) {
            Ok(b) => only.push(b),
            Err(e) => break Some(e),
        }
        if only.len() as u64 > vram / SIZE {
            // More VRAM_ONLY buffers than VRAM holds: the check below fails.
            break None;
        }
    };
    t.eq(
        err.as_ref().and_then(|e| e.errno()),
        Some(libc::ENOMEM),
        "when nothing can be evicted, BO_CREATE fails with ENOMEM",
    );
    t.check(
        only.len() as u64 + 2 >= vram / SIZE,
        "VRAM filled with VRAM_ONLY buffers first (everything else evicted)",
        format_args!("{} buffers", only.len()),
    );
    t.check(
        intact(&bufs),
        "the evicted buffers' data is still intact",
        "mismatch",
    );
    t.finish();
}
