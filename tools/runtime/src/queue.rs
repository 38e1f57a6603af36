// SPDX-License-Identifier: GPL-2.0

//! Queues, submission and job completion.

use std::time::Duration;

use crate::{raw, Command, Device, Error, Ioctl, Result, Vm, MAX_COMMANDS};

/// A queue whose commands use a VM's address space; destroyed on drop (the kernel waits for
/// its jobs first).
#[derive(Debug)]
pub struct Queue<'a> {
    dev: &'a Device,
    vm: &'a Vm<'a>,
    id: u32,
}

/// How a wait ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    Completed,
    TimedOut,
}

/// A submitted job: its queue and sequence number.
#[derive(Clone, Copy, Debug)]
pub struct Job<'q> {
    queue: &'q Queue<'q>,
    seqno: u64,
}

impl<'a> Queue<'a> {
    pub fn create(vm: &'a Vm<'a>) -> Result<Self> {
        let dev = vm.device();
        let mut a = raw::drm_vela_queue_create {
            vm_id: vm.id(),
            ..Default::default()
        };
        raw::queue_create(dev, &mut a)
            .map_err(|e| Error::ioctl(Ioctl::QueueCreate, format!("vm_id={}", vm.id()), e))?;
        Ok(Self {
            dev,
            vm,
            id: a.queue_id,
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn vm(&self) -> &'a Vm<'a> {
        self.vm
    }

    /// Queues one job of 1..=1024 commands.
    pub fn submit(&self, commands: &[Command]) -> Result<Job<'_>> {
        if commands.is_empty() || commands.len() > MAX_COMMANDS {
            return Err(Error::invalid(
                "command count",
                format!(
                    "{} commands; SUBMIT takes 1..={MAX_COMMANDS}",
                    commands.len()
                ),
            ));
        }
        let mut a = raw::drm_vela_submit {
            queue_id: self.id,
            commands: commands.as_ptr() as u64,
            command_count: commands.len() as u32,
            ..Default::default()
        };
        raw::submit(self.dev, &mut a).map_err(|e| {
            let first_bad = commands.iter().position(|c| !c.is_well_formed());
            let hint = first_bad
                .map(|i| format!(" (command {i} is malformed: {:?})", commands[i]))
                .unwrap_or_default();
            Error::ioctl(
                Ioctl::Submit,
                format!(
                    "queue_id={} command_count={}{hint}",
                    self.id,
                    commands.len()
                ),
                e,
            )
        })?;
        Ok(Job {
            queue: self,
            seqno: a.seqno,
        })
    }

    /// Submits and waits up to `timeout`; a timeout is an error here.
    pub fn run(&self, commands: &[Command], timeout: Duration) -> Result<()> {
        let job = self.submit(commands)?;
        match job.wait(timeout)? {
            WaitStatus::Completed => Ok(()),
            WaitStatus::TimedOut => Err(Error::Ioctl {
                ioctl: Ioctl::Wait,
                args: format!(
                    "queue_id={} seqno={} timeout_ns={}",
                    self.id,
                    job.seqno,
                    timeout.as_nanos()
                ),
                errno: libc::ETIME,
            }),
        }
    }

    /// WAIT on any seqno of this queue.
    pub fn wait_seqno(&self, seqno: u64, timeout: Duration) -> Result<WaitStatus> {
        let timeout_ns = i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
        let mut a = raw::drm_vela_wait {
            queue_id: self.id,
            flags: 0,
            seqno,
            timeout_ns,
        };
        match raw::wait(self.dev, &mut a) {
            Ok(()) => Ok(WaitStatus::Completed),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) => Ok(WaitStatus::TimedOut),
                Some(libc::EIO) => Err(Error::JobFailed {
                    queue_id: self.id,
                    seqno,
                }),
                _ => Err(Error::ioctl(
                    Ioctl::Wait,
                    format!("queue_id={} seqno={seqno} timeout_ns={timeout_ns}", self.id),
                    e,
                )),
            },
        }
    }
}

impl Drop for Queue<'_> {
    fn drop(&mut self) {
        let mut a = raw::drm_vela_queue_destroy {
            queue_id: self.id,
            pad: 0,
        };
        let _ = raw::queue_destroy(self.dev, &mut a);
    }
}

impl<'q> Job<'q> {
    pub fn seqno(&self) -> u64 {
        self.seqno
    }

    pub fn queue(&self) -> &'q Queue<'q> {
        self.queue
    }

    /// Waits up to `timeout` (zero polls). A failed job is [`Error::JobFailed`].
    pub fn wait(&self, timeout: Duration) -> Result<WaitStatus> {
        self.queue.wait_seqno(self.seqno, timeout)
    }

    /// Whether the job is done, without blocking.
    pub fn is_done(&self) -> Result<bool> {
        Ok(self.wait(Duration::ZERO)? == WaitStatus::Completed)
    }
}
