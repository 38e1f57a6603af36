// SPDX-License-Identifier: GPL-2.0

//! A safe runtime over the Vela accel uAPI (`uapi/drm/vela_accel.h`).
//!
//! Every kernel object is an RAII value whose lifetime borrows what it depends on, so the
//! order the uAPI requires (queues before their VM, bindings before their VM, mappings before
//! their buffer) is enforced by the compiler rather than discovered as `-EBUSY` at run time.
//!
//! Library code never panics on bad input or kernel errors: everything fallible returns
//! [`Error`], whose message names the ioctl, its arguments, the errno and what the header
//! says that errno means for that ioctl.

mod buffer;
mod command;
mod device;
mod error;
pub mod exec;
pub mod kernels;
mod mapping;
mod queue;
pub mod raw;
mod va;
mod vm;

pub use buffer::{Buffer, BufferFlags, BufferInfo, Placement};
pub use command::{Command, Opcode, COMMAND_SIZE, FLAG_INTERRUPT, MAX_COMMANDS};
pub use device::{Device, DeviceInfo};
pub use error::{errno_name, Error, Ioctl, Result};
pub use mapping::Mapping;
pub use queue::{Job, Queue, WaitStatus};
pub use va::{VaAllocator, PAGE_SIZE, VA_BITS, VA_END, VA_START};
pub use vm::{Access, Binding, Vm};

/// Rounds `n` up to the 4 KiB page, as BO_CREATE does; `None` when that overflows.
pub fn page_round(n: u64) -> Option<u64> {
    n.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1))
}
