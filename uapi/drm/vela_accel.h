/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * Vela accelerator userspace interface.
 *
 * Rules every ioctl follows (see Documentation/uapi.rst):
 *  - all fields are fixed-size, __u64 fields are 8-byte aligned, and every
 *    struct's size is a multiple of 8, so 32- and 64-bit userspace agree;
 *  - padding and reserved fields must be zero, and flags with bits the kernel
 *    does not know are rejected with -EINVAL, so they can be given a meaning
 *    later without breaking old binaries;
 *  - a user pointer the kernel cannot read or write is -EFAULT;
 *  - queries are extended by adding query ids, never by growing a reply;
 *  - an unknown buffer handle, VM id, queue id or sync object handle is
 *    -ENOENT, reported after every argument check that needs no object.
 */
#ifndef _UAPI_VELA_ACCEL_H_
#define _UAPI_VELA_ACCEL_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define DRM_VELA_QUERY			0x00
#define DRM_VELA_BO_CREATE		0x01
#define DRM_VELA_BO_INFO		0x02
#define DRM_VELA_BO_MMAP_OFFSET		0x03
#define DRM_VELA_VM_CREATE		0x04
#define DRM_VELA_VM_DESTROY		0x05
#define DRM_VELA_VM_BIND		0x06
#define DRM_VELA_VM_UNBIND		0x07
#define DRM_VELA_QUEUE_CREATE		0x08
#define DRM_VELA_QUEUE_DESTROY		0x09
#define DRM_VELA_SUBMIT			0x0a
#define DRM_VELA_WAIT			0x0b
#define DRM_VELA_BO_WAIT		0x0c

/**
 * enum drm_vela_query_id - What &struct drm_vela_query asks for.
 *
 * @DRM_VELA_QUERY_DEVICE: the device identity and sizes, as a
 *	&struct drm_vela_query_device.
 * @DRM_VELA_QUERY_MEMORY: VRAM use, as a &struct drm_vela_query_memory.
 * @DRM_VELA_QUERY_COUNTERS: the device's event counters, as a
 *	&struct drm_vela_query_counters.
 * @DRM_VELA_QUERY_LIMITS: what one request or one device can take, as a
 *	&struct drm_vela_query_limits.
 */
enum drm_vela_query_id {
	DRM_VELA_QUERY_DEVICE = 0,
	DRM_VELA_QUERY_MEMORY = 1,
	DRM_VELA_QUERY_COUNTERS = 2,
	DRM_VELA_QUERY_LIMITS = 3,
};

/* Capability bits of &drm_vela_query_device.caps, as the hardware reports them. */
#define DRM_VELA_CAP_COPY		(1ULL << 0)
#define DRM_VELA_CAP_COMPUTE		(1ULL << 1)
#define DRM_VELA_CAP_MMU		(1ULL << 2)
#define DRM_VELA_CAP_P2P		(1ULL << 3)
#define DRM_VELA_CAP_FAULT_INJECT	(1ULL << 4)
/* The device can be cut into hardware partitions (vGPUs, Documentation/vgpu.rst). */
#define DRM_VELA_CAP_PARTITIONS		(1ULL << 5)
/* The device is itself a partition: a vGPU instance, as a guest sees it. */
#define DRM_VELA_CAP_VIRTUAL		(1ULL << 6)

/**
 * struct drm_vela_query_device - Reply to %DRM_VELA_QUERY_DEVICE.
 *
 * @vendor_id: PCI vendor ID.
 * @device_id: PCI device ID.
 * @revision: PCI revision ID.
 * @hw_version: hardware interface version, major in bits 31:16, minor in 15:0.
 * @caps: DRM_VELA_CAP_* bits.
 * @vram_size: VRAM size in bytes.
 * @serial: the device's serial number.
 * @num_queues: number of hardware command queues.
 * @num_engines: number of engines.
 * @pad: reserved, zero.
 */
struct drm_vela_query_device {
	__u32 vendor_id;
	__u32 device_id;
	__u32 revision;
	__u32 hw_version;
	__u64 caps;
	__u64 vram_size;
	__u32 serial;
	__u32 num_queues;
	__u32 num_engines;
	__u32 pad;
};

/**
 * struct drm_vela_query_memory - Reply to %DRM_VELA_QUERY_MEMORY.
 *
 * @vram_size: VRAM size in bytes.
 * @vram_free: VRAM not allocated to buffers or to the kernel's own
 *	structures (rings, page tables), in bytes.
 * @page_size: allocation granule of buffers and binds, in bytes.
 * @va_size: usable GPU virtual address space of a VM, in bytes.
 */
struct drm_vela_query_memory {
	__u64 vram_size;
	__u64 vram_free;
	__u64 page_size;
	__u64 va_size;
};

/**
 * struct drm_vela_query_limits - Reply to %DRM_VELA_QUERY_LIMITS.
 *
 * @max_commands: commands in one SUBMIT (%DRM_VELA_MAX_COMMANDS).
 * @max_in_syncobjs: in-syncobjs in one SUBMIT (%DRM_VELA_MAX_IN_SYNCOBJS).
 * @max_vms: VMs that can exist at once on the device (MMU contexts left to
 *	userspace); one more VM_CREATE is -EBUSY.
 * @max_queues: queues that can exist at once on the device, all processes
 *	together; one more QUEUE_CREATE is -EBUSY. They share the device's
 *	hardware queues (drm_vela_query_device.num_queues).
 * @max_vram_bo: the largest VRAM buffer, in bytes.
 * @max_system_bo: the largest system-memory buffer, in bytes; above it
 *	BO_CREATE is -EINVAL. A buffer must also fit in what is left of
 *	@system_budget, which may be less.
 * @system_budget: system memory the device's buffers may hold in all
 *	(created there or evicted there), in bytes; beyond it BO_CREATE and
 *	eviction fail with -ENOMEM.
 * @system_used: system memory the device's buffers hold now, in bytes.
 */
struct drm_vela_query_limits {
	__u32 max_commands;
	__u32 max_in_syncobjs;
	__u32 max_vms;
	__u32 max_queues;
	__u64 max_vram_bo;
	__u64 max_system_bo;
	__u64 system_budget;
	__u64 system_used;
};

/* Indices of &drm_vela_query_counters.counters, as the hardware numbers them. */
#define DRM_VELA_COUNTER_COMMANDS_COMPLETED	0
#define DRM_VELA_COUNTER_BYTES_WRITTEN		1
#define DRM_VELA_COUNTER_KERNELS_EXECUTED	2
#define DRM_VELA_COUNTER_FENCES_WRITTEN		3
#define DRM_VELA_COUNTER_INTERRUPTS_SENT	4
#define DRM_VELA_COUNTER_INTERRUPTS_SUPPRESSED	5
#define DRM_VELA_COUNTER_DOORBELLS		6
#define DRM_VELA_COUNTER_PAGE_WALKS		7
#define DRM_VELA_COUNTER_MMU_FAULTS		8
#define DRM_VELA_COUNTER_QUEUE_ERRORS		9
#define DRM_VELA_COUNTER_DMA_ERRORS		10
#define DRM_VELA_COUNTER_P2P_BYTES		11
#define DRM_VELA_COUNTER_RESETS			12
#define DRM_VELA_COUNTERS			13

/**
 * struct drm_vela_query_counters - Reply to %DRM_VELA_QUERY_COUNTERS.
 *
 * Device-wide, free-running 64-bit event counters (they count every
 * process's work), indexed by DRM_VELA_COUNTER_*; entries past
 * DRM_VELA_COUNTERS read zero.
 *
 * @counters: the values.
 */
struct drm_vela_query_counters {
	__u64 counters[16];
};

/**
 * struct drm_vela_query - Argument of %DRM_IOCTL_VELA_QUERY.
 *
 * @query: an &enum drm_vela_query_id; any other value is -EINVAL.
 * @flags: must be zero.
 * @size: in: size of the buffer at @data; 0 asks for the size the reply needs,
 *	which the kernel writes here without touching @data. out: bytes written.
 *	A non-zero size smaller than the reply fails with -EINVAL.
 * @pad: must be zero.
 * @data: user pointer to the reply buffer.
 */
struct drm_vela_query {
	__u32 query;
	__u32 flags;
	__u32 size;
	__u32 pad;
	__u64 data;
};

/* Flags of &drm_vela_bo_create.flags. */
/* Place the buffer in VRAM; without it, the buffer lives in system memory. */
#define DRM_VELA_BO_VRAM		(1 << 0)
/* The CPU may map the buffer (BO_MMAP_OFFSET + mmap). */
#define DRM_VELA_BO_CPU_VISIBLE		(1 << 1)
/* Never move the buffer out of VRAM (eviction, or export to a peer that cannot reach it). */
#define DRM_VELA_BO_VRAM_ONLY		(1 << 2)
#define DRM_VELA_BO_FLAGS		(DRM_VELA_BO_VRAM | DRM_VELA_BO_CPU_VISIBLE | \
					 DRM_VELA_BO_VRAM_ONLY)

/**
 * struct drm_vela_bo_create - Argument of %DRM_IOCTL_VELA_BO_CREATE.
 *
 * @size: bytes; rounded up to the 4 KiB page. 0, a size whose rounding
 *	overflows, or more than the memory domain holds (the VRAM size, or
 *	&drm_vela_query_limits.max_system_bo for system memory) is -EINVAL;
 *	more than is free is -ENOMEM. For VRAM, free counts what evicting idle
 *	buffers that may move to system memory makes free; for system memory,
 *	what is left of &drm_vela_query_limits.system_budget.
 * @flags: DRM_VELA_BO_* flags. VRAM_ONLY without VRAM is -EINVAL. Without
 *	VRAM the buffer is placed in system memory.
 * @handle: out: the GEM handle.
 *
 * A new buffer reads zeros, in either placement.
 */
struct drm_vela_bo_create {
	__u64 size;
	__u32 flags;
	__u32 handle;
};

/**
 * struct drm_vela_bo_info - Argument of %DRM_IOCTL_VELA_BO_INFO.
 *
 * @handle: the buffer; an unknown handle is -ENOENT.
 * @flags: out: its DRM_VELA_BO_* creation flags.
 * @size: out: its size in bytes (page-rounded).
 * @placement: out: where it is now, a DRM_VELA_PLACEMENT_* value.
 * @pad: must be zero.
 */
struct drm_vela_bo_info {
	__u32 handle;
	__u32 flags;
	__u64 size;
	__u32 placement;
	__u32 pad;
};

#define DRM_VELA_PLACEMENT_SYSTEM	0
#define DRM_VELA_PLACEMENT_VRAM		1
/*
 * A dma-buf of another exporter (another Vela device, udmabuf, a dma-heap)
 * imported with DRM_IOCTL_PRIME_FD_TO_HANDLE. Its flags read as 0; it has no
 * BO_MMAP_OFFSET (-EINVAL: map the dma-buf fd instead).
 */
#define DRM_VELA_PLACEMENT_IMPORTED	2

/**
 * DOC: Sharing buffers (PRIME)
 *
 * The DRM core's DRM_IOCTL_PRIME_HANDLE_TO_FD and DRM_IOCTL_PRIME_FD_TO_HANDLE
 * work on the accel node, with the DRM core's errors. HANDLE_TO_FD: an
 * unknown handle is -ENOENT, flags other than DRM_CLOEXEC and DRM_RDWR are
 * -EINVAL. FD_TO_HANDLE: an fd that is not open is -EBADF, an open file that
 * is not a dma-buf is -EINVAL, and an exporter that refuses to attach this
 * device gives its own error; a Vela exporter says -EOPNOTSUPP for a
 * VRAM_ONLY buffer the importer cannot reach peer-to-peer, and -ENODEV once
 * it is unbound.
 */

/**
 * struct drm_vela_bo_mmap_offset - Argument of %DRM_IOCTL_VELA_BO_MMAP_OFFSET.
 *
 * @handle: a CPU_VISIBLE buffer (else -EINVAL); an unknown handle is
 *	-ENOENT.
 * @pad: must be zero.
 * @offset: out: the offset to pass to mmap() on the accel fd. The mapping
 *	is write-combined wherever the buffer is: VRAM through BAR2, system
 *	memory as its pages. A mapping larger than the buffer fails.
 */
struct drm_vela_bo_mmap_offset {
	__u32 handle;
	__u32 pad;
	__u64 offset;
};

/**
 * struct drm_vela_vm_create - Argument of %DRM_IOCTL_VELA_VM_CREATE.
 *
 * A VM is a GPU virtual address space: one device MMU context with its own
 * page tables. Work submitted on a queue of the VM reaches only what is
 * bound into it; anything else faults. The device has 15 contexts for
 * VMs, shared by every process; when all are taken this fails with -EBUSY.
 *
 * @flags: must be zero.
 * @vm_id: out: the VM.
 */
struct drm_vela_vm_create {
	__u32 flags;
	__u32 vm_id;
};

/**
 * struct drm_vela_vm_destroy - Argument of %DRM_IOCTL_VELA_VM_DESTROY.
 *
 * @vm_id: the VM. Its queues must be destroyed first (-EBUSY otherwise). A
 *	destroyed queue whose jobs still wait in the kernel for their
 *	dependencies still counts until they have gone to the device.
 * @pad: must be zero.
 */
struct drm_vela_vm_destroy {
	__u32 vm_id;
	__u32 pad;
};

/* Flags of &drm_vela_vm_bind.flags. */
#define DRM_VELA_BIND_READ		(1 << 0)
#define DRM_VELA_BIND_WRITE		(1 << 1)

/**
 * struct drm_vela_vm_bind - Argument of %DRM_IOCTL_VELA_VM_BIND.
 *
 * Maps [@bo_offset, @bo_offset + @size) of a buffer at @va. @va, @bo_offset
 * and @size must be 4 KiB aligned and @size non-zero (-EINVAL), inside the
 * VM's user address space, [0, &drm_vela_query_memory.va_size), and inside
 * the buffer (-EINVAL), and must not overlap an existing mapping (-EEXIST).
 * The VAs from va_size up (the top 1 GiB of the 39-bit space) are the
 * kernel's: no bind reaches them and nothing is mapped there, so a job's
 * command that touches one faults and the job fails (WAIT: -EIO), as for
 * any unbound VA. Argument errors are reported before unknown ids (-ENOENT),
 * except the range inside the buffer, which needs the buffer.
 *
 * @vm_id: the VM.
 * @handle: the buffer.
 * @va: GPU virtual address.
 * @bo_offset: offset into the buffer.
 * @size: bytes.
 * @flags: DRM_VELA_BIND_* access; at least READ.
 * @pad: must be zero.
 */
struct drm_vela_vm_bind {
	__u32 vm_id;
	__u32 handle;
	__u64 va;
	__u64 bo_offset;
	__u64 size;
	__u32 flags;
	__u32 pad;
};

/**
 * struct drm_vela_vm_unbind - Argument of %DRM_IOCTL_VELA_VM_UNBIND.
 *
 * Removes the mapping that starts at @va and is @size long; a range that is
 * not exactly one earlier bind is -ENOENT.
 *
 * @vm_id: the VM.
 * @pad: must be zero.
 * @va: start of the mapping.
 * @size: its size.
 */
struct drm_vela_vm_unbind {
	__u32 vm_id;
	__u32 pad;
	__u64 va;
	__u64 size;
};

/**
 * struct drm_vela_queue_create - Argument of %DRM_IOCTL_VELA_QUEUE_CREATE.
 *
 * Queues share the device's hardware queues: a queue takes one when it has
 * a job to run and keeps it until another queue needs it while it is idle.
 * Up to drm_vela_query_limits.max_queues queues exist at once on a device,
 * all processes together; one more fails with -EBUSY.
 *
 * @vm_id: the VM whose address space the queue's commands use.
 * @flags: must be zero.
 * @queue_id: out: the queue.
 * @pad: must be zero.
 */
struct drm_vela_queue_create {
	__u32 vm_id;
	__u32 flags;
	__u32 queue_id;
	__u32 pad;
};

/**
 * struct drm_vela_queue_destroy - Argument of %DRM_IOCTL_VELA_QUEUE_DESTROY.
 *
 * Waits up to a second for the queue's jobs on the device, then aborts the
 * rest (they fail). Jobs that still wait in the kernel for their
 * dependencies keep the queue alive and the ioctl returns at once: they go
 * to the device when they can, and the queue then waits for them in the
 * same way. The id is freed at once either way.
 *
 * @queue_id: the queue.
 * @pad: must be zero.
 */
struct drm_vela_queue_destroy {
	__u32 queue_id;
	__u32 pad;
};

/* Size of one command, as Documentation/hardware/commands.rst defines them. */
#define DRM_VELA_COMMAND_SIZE		64
/* Most commands one SUBMIT may carry. */
#define DRM_VELA_MAX_COMMANDS		1024
/* Most sync objects one SUBMIT may wait for. */
#define DRM_VELA_MAX_IN_SYNCOBJS	64

/**
 * struct drm_vela_submit - Argument of %DRM_IOCTL_VELA_SUBMIT.
 *
 * Queues one job: @command_count hardware commands (NOP, COPY, FILL, FENCE,
 * KERNEL) whose addresses are VAs of the queue's VM. The kernel checks every
 * command's opcode and reserved fields (-EINVAL; SIGNAL, opcode 0x04, is the
 * kernel's own and always refused) and appends a SIGNAL that reports the
 * job done. SIGNAL writes the queue's fence slot by device address, past
 * every VM: no command of any job can reach the slot, so a job cannot make
 * its own completion (or anyone's) look earlier than it is. The device MMU
 * keeps the job inside its VM.
 *
 * @queue_id: the queue.
 * @flags: must be zero.
 * @commands: user pointer to @command_count commands of
 *	DRM_VELA_COMMAND_SIZE bytes.
 * @command_count: 1..DRM_VELA_MAX_COMMANDS (else -EINVAL).
 * @pad: must be zero.
 * @seqno: out: the job's sequence number on its queue, for WAIT.
 * @in_syncobjs: user pointer to @in_syncobj_count DRM sync object handles
 *	(__u32); the job runs only after each one's current fence signalled.
 *	SUBMIT does not wait for them: the job waits in the kernel (at most
 *	30 s, then it fails with -ETIME on its fence). A sync object that
 *	holds no fence (created without DRM_SYNCOBJ_CREATE_SIGNALED and never
 *	given one, or reset) is no dependency: SUBMIT succeeds and the job does
 *	not wait for a fence the sync object gets later.
 * @in_syncobj_count: 0..DRM_VELA_MAX_IN_SYNCOBJS (else -EINVAL); with 0,
 *	@in_syncobjs is not read.
 * @out_syncobj: a DRM sync object handle, or 0: it gets the job's fence, which
 *	signals when the job completes, with -EIO when it failed.
 *
 * SUBMIT does not wait for the device: a job whose dependencies have not
 * signalled, or that cannot have a hardware queue at once (a free one, or
 * one whose holder is idle), waits in the kernel and runs later, in order.
 * The one wait SUBMIT may do is for room in the ring of the hardware queue
 * a job goes to at once: -EBUSY if it stays full for 5 seconds.
 *
 * The sync object fields were appended after the first version of the
 * struct: an older userspace passes a shorter struct, the DRM core zero-fills
 * the rest, and zero means no sync objects. Unknown handles are -ENOENT,
 * after every argument check.
 */
struct drm_vela_submit {
	__u32 queue_id;
	__u32 flags;
	__u64 commands;
	__u32 command_count;
	__u32 pad;
	__u64 seqno;
	__u64 in_syncobjs;
	__u32 in_syncobj_count;
	__u32 out_syncobj;
};

/**
 * struct drm_vela_wait - Argument of %DRM_IOCTL_VELA_WAIT.
 *
 * Waits until job @seqno of the queue is done. Returns 0 when it completed,
 * -ETIME when @timeout_ns passed first, -EIO when the job failed (a device
 * error or an MMU fault in it or in a job queued with it, or dependencies
 * that took more than 30 s), and -EINVAL for a seqno never submitted.
 * Unknown VM and queue ids are -ENOENT in every ioctl. Failures are kept as
 * ranges of sequence numbers; past 16 the oldest merge, so an old job between
 * two failures may read -EIO, but a failed job never reads 0.
 *
 * @queue_id: the queue.
 * @flags: must be zero.
 * @seqno: the job.
 * @timeout_ns: relative timeout; 0 polls, negative is -EINVAL.
 */
struct drm_vela_wait {
	__u32 queue_id;
	__u32 flags;
	__u64 seqno;
	__s64 timeout_ns;
};

/**
 * struct drm_vela_bo_wait - Argument of %DRM_IOCTL_VELA_BO_WAIT.
 *
 * Waits until every job that used the buffer is done: every SUBMIT adds its
 * job's fence to the reservation object (dma_resv) of each buffer bound in
 * the queue's VM, before the job starts. For the CPU before it reads a
 * mapping, and for anyone that shares the buffer. Returns 0 when idle, -ETIME
 * when @timeout_ns passed first (0 polls).
 *
 * @handle: the buffer; an unknown handle is -ENOENT.
 * @flags: must be zero.
 * @timeout_ns: relative timeout; negative is -EINVAL.
 */
struct drm_vela_bo_wait {
	__u32 handle;
	__u32 flags;
	__s64 timeout_ns;
};

/*
 * The ioctl numbers (not only macros) so that bindgen gives
 * them to Rust users, the driver among them. The enum is anonymous so the
 * constants keep their C names.
 */
enum {
	DRM_IOCTL_VELA_QUERY = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_QUERY,
					struct drm_vela_query),
	DRM_IOCTL_VELA_BO_CREATE = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_BO_CREATE,
					    struct drm_vela_bo_create),
	DRM_IOCTL_VELA_BO_INFO = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_BO_INFO,
					  struct drm_vela_bo_info),
	DRM_IOCTL_VELA_BO_MMAP_OFFSET = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_BO_MMAP_OFFSET,
						 struct drm_vela_bo_mmap_offset),
	DRM_IOCTL_VELA_VM_CREATE = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_VM_CREATE,
					    struct drm_vela_vm_create),
	DRM_IOCTL_VELA_VM_DESTROY = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_VM_DESTROY,
					     struct drm_vela_vm_destroy),
	DRM_IOCTL_VELA_VM_BIND = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_VM_BIND,
					  struct drm_vela_vm_bind),
	DRM_IOCTL_VELA_VM_UNBIND = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_VM_UNBIND,
					    struct drm_vela_vm_unbind),
	DRM_IOCTL_VELA_QUEUE_CREATE = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_QUEUE_CREATE,
					       struct drm_vela_queue_create),
	DRM_IOCTL_VELA_QUEUE_DESTROY = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_QUEUE_DESTROY,
						struct drm_vela_queue_destroy),
	DRM_IOCTL_VELA_SUBMIT = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_SUBMIT,
					 struct drm_vela_submit),
	DRM_IOCTL_VELA_WAIT = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_WAIT,
				       struct drm_vela_wait),
	DRM_IOCTL_VELA_BO_WAIT = DRM_IOWR(DRM_COMMAND_BASE + DRM_VELA_BO_WAIT,
					  struct drm_vela_bo_wait),
};

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_VELA_ACCEL_H_ */
