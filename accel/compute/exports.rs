// SPDX-License-Identifier: GPL-2.0

//! The device's buffers exported as dma-bufs, which unbind and reset revoke.

use kernel::{dma_buf::DmaBuf, new_mutex, prelude::*, sync::Mutex};

/// The live dma-bufs exported from a device, by address. An entry is removed (under the lock)
/// when its dma-buf is released, before the dma-buf is freed, so while the lock is held every
/// entry is a valid dma-buf, whose reservation object (the exported object's) is valid too.
#[pin_data]
pub(crate) struct Exports {
    #[pin]
    bufs: Mutex<KVec<usize>>,
}

impl Exports {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { bufs <- new_mutex!(KVec::new()) })
    }

    pub(crate) fn add(&self, buf: &DmaBuf) {
        // Without the entry, unbind could not revoke this export; the importer then keeps
        // mapping VRAM after unbind. Allocation failure here is not reportable (the export
        // already happened), so make it loud.
        if self
            .bufs
            .lock()
            .push(core::ptr::from_ref(buf) as usize, GFP_KERNEL)
            .is_err()
        {
            pr_err!("vela: out of memory tracking a dma-buf export\n");
        }
    }

    pub(crate) fn remove(&self, buf: &DmaBuf) {
        self.bufs
            .lock()
            .retain(|b| *b != core::ptr::from_ref(buf) as usize);
    }

    /// Tells every importer of every export that its mappings are gone. The device must
    /// already refuse new mappings (`Chip::unbinding`, or a reset in progress).
    pub(crate) fn revoke_all(&self) {
        let bufs = self.bufs.lock();
        for &b in bufs.iter() {
            // SAFETY: Entries are live dma-bufs while the lock is held (see `Exports`).
            let buf = unsafe { &*(b as *const DmaBuf) };
            if let Ok(guard) = buf.resv().lock() {
                let _ = buf.invalidate_mappings(&guard);
            }
        }
    }
}
