// SPDX-License-Identifier: GPL-2.0

//! The device's buffers exported as dma-bufs, which unbind, reset and device loss revoke.

use kernel::{
    drm::gem::{self, BaseObject},
    new_mutex,
    prelude::*,
    sync::{aref::ARef, Mutex},
};

use super::gem::{Backing, VelaObject};
use crate::hw::best_effort;

/// The device's objects that are exported now. An entry is added when the dma-buf is made
/// and removed when it is released; the reference it holds is one the dma-buf holds too, so
/// it keeps nothing alive that the export does not.
#[pin_data]
pub(crate) struct Exports {
    #[pin]
    objs: Mutex<KVec<ARef<gem::Object<VelaObject>>>>,
}

impl Exports {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { objs <- new_mutex!(KVec::new()) })
    }

    pub(crate) fn add(&self, obj: &gem::Object<VelaObject>) {
        // Without the entry, unbind could not revoke this export; the importer then keeps
        // mapping VRAM after unbind. Allocation failure here is not reportable (the export
        // already happened), so make it loud.
        if self.objs.lock().push(obj.into(), GFP_KERNEL).is_err() {
            pr_err!("vela: out of memory tracking a dma-buf export\n");
        }
    }

    pub(crate) fn remove(&self, obj: &gem::Object<VelaObject>) {
        let gone = {
            let mut objs = self.objs.lock();
            let at = objs.iter().position(|o| core::ptr::eq(&**o, obj));
            at.and_then(|i| objs.remove(i).ok())
        };
        // The reference goes with no lock held.
        drop(gone);
    }

    /// Tells every importer of every export that its mappings are gone. The device must
    /// already refuse new mappings (`Chip::quiesce`, or a reset in progress).
    pub(crate) fn revoke_all(&self) {
        let objs = self.objs.lock();
        for obj in objs.iter() {
            let Backing::Local(local) = &obj.backing else {
                continue;
            };
            // Without an acquire context the lock cannot fail, and the invalidation only
            // fails under another object's lock: a failure here is a bug, so it is loud.
            match obj.resv().lock() {
                Ok(guard) => {
                    let revoked = local
                        .export
                        .with_export(&guard, |buf| buf.invalidate_mappings(&guard));
                    if let Some(r) = revoked {
                        best_effort("revoking an export", r);
                    }
                }
                Err(e) => best_effort("locking an export to revoke it", Err(e)),
            }
        }
    }
}
