// SPDX-License-Identifier: GPL-2.0

//! Vela dma-bufs in V4L2: vivid, the kernel's V4L2 test driver, imports Vela exports with
//! `V4L2_MEMORY_DMABUF` and streams through them, as a camera pipeline hands its frames to an
//! accelerator. The V4L2 ioctls are made directly, with the structs of `<linux/videodev2.h>`
//! (x86_64 layout, checked at compile time).
//!
//! For each of vivid's memory allocators present (its `allocators` module parameter: 0, the
//! default, is vb2-vmalloc; 1 is vb2-dma-contig; told apart by REQBUFS, which offers USERPTR
//! only with vb2-vmalloc), with a VRAM buffer, a system-memory buffer and a `VRAM_ONLY` one:
//!
//! - capture: the buffer is filled with a pattern through Vela's mmap and queued; vivid's
//!   webcam input (320x180 YUYV, 75% colour bars) writes a frame into it. After DQBUF, Vela's
//!   mapping shows the frame: bytesused is the format's sizeimage, the frame's bytes changed
//!   from the fill, the bottom line holds the colour bars (white at the left, black at the
//!   right, neutral chroma), and the bytes past the frame are still the fill.
//! - output: the buffer is queued on the output node and comes back from DQBUF without the
//!   ERROR flag, its data intact.
//!
//! What each importer can do with each buffer, and so what the test asserts:
//!
//! - vb2-vmalloc does not attach: QBUF calls `dma_buf_vmap()`, for which a VRAM buffer moves
//!   to system memory and stays pinned there while vivid holds it (BO_INFO says SYSTEM). A
//!   `VRAM_ONLY` buffer has no kernel mapping: QBUF fails with EFAULT (vb2-vmalloc's answer to
//!   any vmap failure). The dma-buf core WARNs when an exporter's `vmap` fails, so Vela must
//!   export such buffers without `vmap` (then `dma_buf_vmap()` says EINVAL itself); the
//!   harness fails the run on the WARN.
//! - vb2-dma-contig attaches statically with vivid's platform device, which has no
//!   peer-to-peer path: a VRAM buffer moves to system memory, a `VRAM_ONLY` one is refused at
//!   attach (QBUF EOPNOTSUPP). vb2-dma-contig also needs the pages DMA-contiguous, which a
//!   Vela buffer's (vmalloc) pages are only by chance: QBUF works (and the frame arrives) or
//!   fails with EFAULT.
//!
//! The vb2-dma-contig cases need a second vivid instance (kernel command line
//! `vivid.n_devs=2 vivid.allocators=0,1`) and are skipped without one.

use std::{
    fs::{self, File, OpenOptions},
    io,
    mem::{offset_of, size_of},
    os::{
        fd::{AsRawFd, RawFd},
        unix::fs::OpenOptionsExt,
    },
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use vela_runtime::{Buffer, BufferFlags, Device, Placement};
use vela_selftests::{get, open_device, pattern, sharing::s, step, Tap};

/// How long a frame may take to come back (vivid runs at 25 to 60 frames a second).
const FRAME_WAIT: Duration = Duration::from_secs(10);

/// The capture format: the smallest of vivid's webcam sizes.
const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;

// <linux/videodev2.h>, as 7.2 has it.

/// `struct v4l2_capability`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Capability {
    driver: [u8; 16],
    _card: [u8; 32],
    bus_info: [u8; 32],
    _version: u32,
    _capabilities: u32,
    device_caps: u32,
    _reserved: [u32; 3],
}

/// `struct v4l2_pix_format`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PixFormat {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    bytesperline: u32,
    sizeimage: u32,
    _colorspace: u32,
    _priv: u32,
    _flags: u32,
    _ycbcr_enc: u32,
    _quantization: u32,
    _xfer_func: u32,
}

/// `struct v4l2_format`: the buffer type, then the `fmt` union at offset 8 (8-aligned for the
/// pointers of `struct v4l2_window`), 200 bytes of which only `pix` is used here.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Format {
    type_: u32,
    _pad: u32,
    pix: PixFormat,
    _rest: [u8; 152],
}

/// `struct v4l2_requestbuffers`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RequestBuffers {
    count: u32,
    type_: u32,
    memory: u32,
    capabilities: u32,
    _flags: u8,
    _reserved: [u8; 3],
}

/// `struct v4l2_buffer` on a 64-bit kernel: `struct timeval` is 16 bytes and 8-aligned, the
/// `m` union 8 bytes (for DMABUF its `__s32 fd`, the low half on little-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct V4l2Buffer {
    index: u32,
    type_: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    _pad0: u32,
    _timestamp: [i64; 2],
    _timecode: [u32; 4],
    sequence: u32,
    memory: u32,
    m: u64,
    length: u32,
    _reserved2: u32,
    _request_fd: i32,
    _pad1: u32,
}

const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
const BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
const MEMORY_DMABUF: u32 = 4;
const FIELD_NONE: u32 = 1;
const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
const CAP_VIDEO_OUTPUT: u32 = 0x0000_0002;
const CAP_STREAMING: u32 = 0x0400_0000;
const BUF_CAP_SUPPORTS_USERPTR: u32 = 1 << 1;
const BUF_CAP_SUPPORTS_DMABUF: u32 = 1 << 2;
const BUF_FLAG_ERROR: u32 = 0x0000_0040;
const PIX_FMT_YUYV: u32 = u32::from_le_bytes(*b"YUYV");

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr
}
const IOC_W: u32 = 1;
const IOC_R: u32 = 2;
const IOC_RW: u32 = 3;
const VIDIOC_QUERYCAP: u32 = ioc(IOC_R, 0, size_of::<Capability>());
const VIDIOC_G_FMT: u32 = ioc(IOC_RW, 4, size_of::<Format>());
const VIDIOC_S_FMT: u32 = ioc(IOC_RW, 5, size_of::<Format>());
const VIDIOC_REQBUFS: u32 = ioc(IOC_RW, 8, size_of::<RequestBuffers>());
const VIDIOC_QBUF: u32 = ioc(IOC_RW, 15, size_of::<V4l2Buffer>());
const VIDIOC_DQBUF: u32 = ioc(IOC_RW, 17, size_of::<V4l2Buffer>());
const VIDIOC_STREAMON: u32 = ioc(IOC_W, 18, size_of::<i32>());
const VIDIOC_STREAMOFF: u32 = ioc(IOC_W, 19, size_of::<i32>());

// Sizes, offsets and request numbers as a C program built against <linux/videodev2.h> on
// x86_64 prints them.
const _: () = {
    assert!(size_of::<Capability>() == 104);
    assert!(offset_of!(Capability, device_caps) == 88);
    assert!(size_of::<PixFormat>() == 48);
    assert!(offset_of!(PixFormat, sizeimage) == 20);
    assert!(size_of::<Format>() == 208);
    assert!(offset_of!(Format, pix) == 8);
    assert!(size_of::<RequestBuffers>() == 20);
    assert!(offset_of!(RequestBuffers, capabilities) == 12);
    assert!(size_of::<V4l2Buffer>() == 88);
    assert!(offset_of!(V4l2Buffer, _timestamp) == 24);
    assert!(offset_of!(V4l2Buffer, sequence) == 56);
    assert!(offset_of!(V4l2Buffer, m) == 64);
    assert!(offset_of!(V4l2Buffer, length) == 72);
    assert!(offset_of!(V4l2Buffer, _request_fd) == 80);
    assert!(VIDIOC_QUERYCAP == 0x8068_5600);
    assert!(VIDIOC_G_FMT == 0xc0d0_5604);
    assert!(VIDIOC_S_FMT == 0xc0d0_5605);
    assert!(VIDIOC_REQBUFS == 0xc014_5608);
    assert!(VIDIOC_QBUF == 0xc058_560f);
    assert!(VIDIOC_DQBUF == 0xc058_5611);
    assert!(VIDIOC_STREAMON == 0x4004_5612);
    assert!(VIDIOC_STREAMOFF == 0x4004_5613);
    assert!(PIX_FMT_YUYV == 0x5659_5559);
};

/// An open video node and the buffer type it streams.
struct Node {
    file: File,
    type_: u32,
}

impl Node {
    /// Non-blocking, so that a frame that never comes is a timeout, not a hang.
    fn open(path: &Path, type_: u32) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        Ok(Self { file, type_ })
    }

    fn querycap(&self) -> io::Result<Capability> {
        let mut a = Capability::default();
        // SAFETY: VIDIOC_QUERYCAP takes a `struct v4l2_capability`.
        unsafe { vela_uapi::ioctl(&self.file, VIDIOC_QUERYCAP, &mut a) }?;
        Ok(a)
    }

    fn format(&self, request: u32, pix: PixFormat) -> io::Result<PixFormat> {
        let mut a = Format {
            type_: self.type_,
            _pad: 0,
            pix,
            _rest: [0; 152],
        };
        // SAFETY: VIDIOC_G_FMT and VIDIOC_S_FMT take a `struct v4l2_format`.
        unsafe { vela_uapi::ioctl(&self.file, request, &mut a) }?;
        Ok(a.pix)
    }

    fn g_fmt(&self) -> io::Result<PixFormat> {
        self.format(VIDIOC_G_FMT, PixFormat::default())
    }

    fn s_fmt(&self, pix: PixFormat) -> io::Result<PixFormat> {
        self.format(VIDIOC_S_FMT, pix)
    }

    /// REQBUFS for DMABUF buffers; `count` 0 frees them (and only reports the capabilities on
    /// a queue that has none).
    fn reqbufs(&self, count: u32) -> io::Result<RequestBuffers> {
        let mut a = RequestBuffers {
            count,
            type_: self.type_,
            memory: MEMORY_DMABUF,
            ..Default::default()
        };
        // SAFETY: VIDIOC_REQBUFS takes a `struct v4l2_requestbuffers`.
        unsafe { vela_uapi::ioctl(&self.file, VIDIOC_REQBUFS, &mut a) }?;
        Ok(a)
    }

    /// Queues buffer 0 as the dma-buf `fd` of `length` bytes.
    fn qbuf(
        &self,
        index: u32,
        fd: RawFd,
        length: u32,
        bytesused: u32,
        field: u32,
    ) -> io::Result<()> {
        let mut a = V4l2Buffer {
            index,
            type_: self.type_,
            bytesused,
            field,
            memory: MEMORY_DMABUF,
            m: u64::from(fd as u32),
            length,
            ..Default::default()
        };
        // SAFETY: VIDIOC_QBUF takes a `struct v4l2_buffer`.
        unsafe { vela_uapi::ioctl(&self.file, VIDIOC_QBUF, &mut a) }
    }

    /// Dequeues a buffer, waiting up to `wait` for one.
    fn dqbuf(&self, wait: Duration) -> io::Result<V4l2Buffer> {
        let end = Instant::now() + wait;
        loop {
            let mut a = V4l2Buffer {
                type_: self.type_,
                memory: MEMORY_DMABUF,
                ..Default::default()
            };
            // SAFETY: VIDIOC_DQBUF takes a `struct v4l2_buffer`.
            match unsafe { vela_uapi::ioctl(&self.file, VIDIOC_DQBUF, &mut a) } {
                Ok(()) => return Ok(a),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && Instant::now() < end => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn stream(&self, on: bool) -> io::Result<()> {
        let mut t = self.type_ as i32;
        let request = if on {
            VIDIOC_STREAMON
        } else {
            VIDIOC_STREAMOFF
        };
        // SAFETY: VIDIOC_STREAMON and VIDIOC_STREAMOFF take an `int`, the buffer type.
        unsafe { vela_uapi::ioctl(&self.file, request, &mut t) }
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A vivid video node from sysfs: `/dev/videoN` named `vivid-III-vid-cap` or `-vid-out`.
#[derive(Clone, Debug)]
struct VividNode {
    dev: PathBuf,
    inst: u32,
    output: bool,
}

fn vivid_nodes() -> io::Result<Vec<VividNode>> {
    let mut out = Vec::new();
    for e in fs::read_dir("/sys/class/video4linux")? {
        let e = e?;
        let name = fs::read_to_string(e.path().join("name")).unwrap_or_default();
        let Some((inst, kind)) = name
            .trim()
            .strip_prefix("vivid-")
            .and_then(|r| r.split_once('-'))
        else {
            continue;
        };
        let output = match kind {
            "vid-cap" => false,
            "vid-out" => true,
            _ => continue,
        };
        let Ok(inst) = inst.parse() else { continue };
        out.push(VividNode {
            dev: Path::new("/dev").join(e.file_name()),
            inst,
            output,
        });
    }
    out.sort_by_key(|n| (n.inst, n.output));
    Ok(out)
}

/// vivid's memory allocator of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alloc {
    Vmalloc,
    DmaContig,
}

impl Alloc {
    fn name(self) -> &'static str {
        match self {
            Alloc::Vmalloc => "vb2-vmalloc",
            Alloc::DmaContig => "vb2-dma-contig",
        }
    }
}

/// A vivid instance's capture and output nodes and its allocator.
struct Instance {
    inst: u32,
    cap: PathBuf,
    out: PathBuf,
    alloc: Alloc,
}

/// The Vela buffers vivid is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Vram,
    System,
    VramOnly,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Vram, Kind::System, Kind::VramOnly];

    fn flags(self) -> BufferFlags {
        match self {
            Kind::Vram => BufferFlags::VRAM | BufferFlags::CPU_VISIBLE,
            Kind::System => BufferFlags::CPU_VISIBLE,
            Kind::VramOnly => BufferFlags::VRAM | BufferFlags::VRAM_ONLY | BufferFlags::CPU_VISIBLE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Vram => "VRAM",
            Kind::System => "system-memory",
            Kind::VramOnly => "VRAM_ONLY",
        }
    }
}

/// What QBUF of a buffer does.
enum Expect {
    Works,
    Fails(i32, &'static str),
    /// Works, or fails with this errno for the reason given.
    WorksOrFails(i32, &'static str),
}

fn expect(alloc: Alloc, kind: Kind) -> Expect {
    match (alloc, kind) {
        (Alloc::Vmalloc, Kind::VramOnly) => {
            Expect::Fails(libc::EFAULT, "EFAULT: no kernel mapping")
        }
        (Alloc::Vmalloc, _) => Expect::Works,
        (Alloc::DmaContig, Kind::VramOnly) => {
            Expect::Fails(libc::EOPNOTSUPP, "EOPNOTSUPP: attach refused, no P2P path")
        }
        (Alloc::DmaContig, _) => Expect::WorksOrFails(
            libc::EFAULT,
            "EFAULT: the pages are not DMA-contiguous, as vb2-dma-contig needs",
        ),
    }
}

/// Opens `path` and checks it is vivid's node of `type_` with streaming; finds the allocator.
fn probe(path: &Path, type_: u32) -> Result<Alloc, String> {
    let n = Node::open(path, type_).map_err(|e| format!("open {}: {e}", path.display()))?;
    let cap = n
        .querycap()
        .map_err(|e| format!("{}: VIDIOC_QUERYCAP: {e}", path.display()))?;
    let want = CAP_STREAMING
        | if type_ == BUF_TYPE_VIDEO_OUTPUT {
            CAP_VIDEO_OUTPUT
        } else {
            CAP_VIDEO_CAPTURE
        };
    if cstr(&cap.driver) != "vivid" || cap.device_caps & want != want {
        return Err(format!(
            "{}: driver {:?} ({}), device_caps {:#x}, want vivid with {want:#x}",
            path.display(),
            cstr(&cap.driver),
            cstr(&cap.bus_info),
            cap.device_caps
        ));
    }
    let rb = n
        .reqbufs(0)
        .map_err(|e| format!("{}: VIDIOC_REQBUFS(0, DMABUF): {e}", path.display()))?;
    if rb.capabilities & BUF_CAP_SUPPORTS_DMABUF == 0 {
        return Err(format!(
            "{}: REQBUFS capabilities {:#x} lack SUPPORTS_DMABUF",
            path.display(),
            rb.capabilities
        ));
    }
    Ok(if rb.capabilities & BUF_CAP_SUPPORTS_USERPTR != 0 {
        Alloc::Vmalloc
    } else {
        Alloc::DmaContig
    })
}

/// vivid's instances with both nodes, each checked and its allocator found.
fn instances(t: &mut Tap) -> Vec<Instance> {
    let nodes = match vivid_nodes() {
        Ok(n) if !n.is_empty() => n,
        r => {
            t.check(
                false,
                "vivid's video nodes are in /sys/class/video4linux",
                format_args!("{r:?}: is CONFIG_VIDEO_VIVID=y in the test kernel?"),
            );
            return Vec::new();
        }
    };
    t.diag(format_args!("vivid nodes: {nodes:?}"));
    let mut out = Vec::new();
    for cap in nodes.iter().filter(|n| !n.output) {
        let Some(o) = nodes.iter().find(|n| n.output && n.inst == cap.inst) else {
            continue;
        };
        let (a, b) = (
            probe(&cap.dev, BUF_TYPE_VIDEO_CAPTURE),
            probe(&o.dev, BUF_TYPE_VIDEO_OUTPUT),
        );
        let desc = format!(
            "vivid instance {}: {} and {} are vivid's capture and output nodes with DMABUF",
            cap.inst,
            cap.dev.display(),
            o.dev.display()
        );
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => {
                t.check(true, &desc, "");
                t.diag(format_args!("vivid instance {}: {}", cap.inst, a.name()));
                out.push(Instance {
                    inst: cap.inst,
                    cap: cap.dev.clone(),
                    out: o.dev.clone(),
                    alloc: a,
                });
            }
            r => {
                t.check(false, &desc, format_args!("{r:?}"));
            }
        }
    }
    out
}

/// Writes `data` into the buffer through its CPU mapping.
fn fill(bo: &Buffer<'_>, data: &[u8]) -> Result<(), String> {
    s(s(bo.map())?.write(0, data))
}

/// The whole buffer, through its CPU mapping.
fn read_all(bo: &Buffer<'_>) -> Result<Vec<u8>, String> {
    s(s(bo.map())?.read_vec(0, bo.size() as usize))
}

/// A Vela buffer of `kind` for a frame of `len` bytes, filled with a pattern, and its dma-buf.
fn make_buffer<'d>(
    t: &mut Tap,
    dev: &'d Device,
    kind: Kind,
    len: u32,
    seed: u32,
    what: &str,
) -> Option<(Buffer<'d>, Vec<u8>, std::os::fd::OwnedFd)> {
    let r = s(Buffer::create(dev, u64::from(len), kind.flags())).and_then(|bo| {
        let data = pattern(seed, bo.size());
        fill(&bo, &data)?;
        let fd = s(bo.export())?;
        Ok((bo, data, fd))
    });
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            t.check(
                false,
                &format!("{what}: a {} Vela buffer, filled and exported", kind.name()),
                e,
            );
            None
        }
    }
}

/// QBUF as `expect` says; whether the case goes on to stream.
fn queue(t: &mut Tap, r: io::Result<()>, expect: Expect, what: &str) -> bool {
    match expect {
        Expect::Works => t
            .ok(r, &format!("{what}: QBUF of the Vela dma-buf"))
            .is_some(),
        Expect::Fails(errno, why) => {
            t.errno(r, errno, &format!("{what}: QBUF fails with {why}"));
            false
        }
        Expect::WorksOrFails(errno, why) => {
            let refused = matches!(&r, Err(e) if e.raw_os_error() == Some(errno));
            t.check(
                r.is_ok() || refused,
                &format!("{what}: QBUF works or fails with {why}"),
                format_args!("{r:?}"),
            );
            if refused {
                t.diag(format_args!("{what}: QBUF: {r:?}"));
            }
            r.is_ok()
        }
    }
}

/// The bottom line of a 75% colour bar frame in YUYV: neutral chroma (0x80) at both ends, the
/// white bar at the left brighter than the black one at the right. Text (vivid's OSD) only
/// covers the lines near the top.
fn colour_bars(frame: &[u8], fmt: &PixFormat) -> Result<(), String> {
    let start = (fmt.height as usize - 1) * fmt.bytesperline as usize;
    let line = frame
        .get(start..start + fmt.width as usize * 2)
        .ok_or_else(|| format!("the frame has no line {}", fmt.height - 1))?;
    let (left, right) = (&line[..4], &line[line.len() - 4..]);
    let neutral = |p: &[u8]| p[1].abs_diff(0x80) <= 2 && p[3].abs_diff(0x80) <= 2;
    if neutral(left) && neutral(right) && left[0] > right[0].saturating_add(64) {
        Ok(())
    } else {
        Err(format!(
            "bottom line starts {left:02x?}, ends {right:02x?} (Y Cb Y Cr)"
        ))
    }
}

/// vivid captures one frame into a Vela buffer of `kind`.
fn capture(t: &mut Tap, dev: &Device, vi: &Instance, kind: Kind, seed: u32) {
    let what = format!("{} capture into a {} buffer", vi.alloc.name(), kind.name());
    let n = get!(
        t,
        Node::open(&vi.cap, BUF_TYPE_VIDEO_CAPTURE),
        &format!("{what}: open {}", vi.cap.display())
    );
    let want = PixFormat {
        width: WIDTH,
        height: HEIGHT,
        pixelformat: PIX_FMT_YUYV,
        field: FIELD_NONE,
        ..Default::default()
    };
    let fmt = get!(t, n.s_fmt(want), &format!("{what}: S_FMT"));
    if !t.check(
        fmt.width == WIDTH
            && fmt.height == HEIGHT
            && fmt.pixelformat == PIX_FMT_YUYV
            && fmt.bytesperline >= WIDTH * 2
            && fmt.sizeimage >= fmt.bytesperline * HEIGHT,
        &format!("{what}: S_FMT gives {WIDTH}x{HEIGHT} YUYV"),
        format_args!("{fmt:?}"),
    ) {
        return;
    }
    let Some((bo, data, fd)) = make_buffer(t, dev, kind, fmt.sizeimage, seed, &what) else {
        return;
    };
    let rb = get!(t, n.reqbufs(1), &format!("{what}: REQBUFS(DMABUF)"));
    if !t.check(
        rb.count >= 1,
        &format!("{what}: REQBUFS gives buffers"),
        format_args!("count {}", rb.count),
    ) {
        return;
    }
    let q = n.qbuf(0, fd.as_raw_fd(), bo.size() as u32, 0, fmt.field);
    if !queue(t, q, expect(vi.alloc, kind), &what) {
        return;
    }
    step!(t, n.stream(true), &format!("{what}: STREAMON"));
    let b = step!(t, n.dqbuf(FRAME_WAIT), &format!("{what}: DQBUF a frame"));
    t.check(
        b.index == 0 && b.flags & BUF_FLAG_ERROR == 0 && b.bytesused == fmt.sizeimage,
        &format!(
            "{what}: buffer 0, no ERROR flag, bytesused is sizeimage ({})",
            fmt.sizeimage
        ),
        format_args!("{b:?}"),
    );
    let got = get!(t, read_all(&bo), &format!("{what}: read the buffer back"));
    let frame = fmt.sizeimage as usize;
    let changed = got[..frame]
        .iter()
        .zip(&data[..frame])
        .filter(|(g, d)| g != d)
        .count();
    t.check(
        changed * 10 >= frame * 9,
        &format!("{what}: Vela's mapping shows the frame vivid wrote"),
        format_args!("only {changed} of {frame} bytes differ from the fill"),
    );
    t.check(
        colour_bars(&got, &fmt).is_ok(),
        &format!("{what}: the frame holds vivid's colour bars"),
        format_args!("{:?}", colour_bars(&got, &fmt)),
    );
    t.check(
        got[frame..] == data[frame..],
        &format!("{what}: the bytes past the frame are untouched"),
        format_args!(
            "{} of {} differ",
            got[frame..]
                .iter()
                .zip(&data[frame..])
                .filter(|(g, d)| g != d)
                .count(),
            got.len() - frame
        ),
    );
    if kind == Kind::Vram {
        let info = bo.info();
        t.check(
            matches!(&info, Ok(i) if i.placement == Placement::System),
            &format!("{what}: in system memory while vivid holds it"),
            format_args!("{info:?}"),
        );
    }
    step!(t, n.stream(false), &format!("{what}: STREAMOFF"));
    t.ok(
        n.reqbufs(0).map(|_| ()),
        &format!("{what}: REQBUFS(0) lets the buffer go"),
    );
}

/// vivid takes a Vela buffer of `kind` as an output frame and gives it back.
fn output(t: &mut Tap, dev: &Device, vi: &Instance, kind: Kind, seed: u32) {
    let what = format!("{} output from a {} buffer", vi.alloc.name(), kind.name());
    let n = get!(
        t,
        Node::open(&vi.out, BUF_TYPE_VIDEO_OUTPUT),
        &format!("{what}: open {}", vi.out.display())
    );
    let fmt = get!(t, n.g_fmt(), &format!("{what}: G_FMT"));
    if !t.check(
        fmt.sizeimage > 0,
        &format!("{what}: G_FMT has a size"),
        format_args!("{fmt:?}"),
    ) {
        return;
    }
    // vivid's output keeps the newest queued buffer as the frame on display and gives back
    // only older ones: two buffers, so the first comes back.
    let Some((bo, data, fd)) = make_buffer(t, dev, kind, fmt.sizeimage, seed, &what) else {
        return;
    };
    let Some((bo2, _, fd2)) =
        make_buffer(t, dev, kind, fmt.sizeimage, seed.wrapping_add(0x100), &what)
    else {
        return;
    };
    let rb = get!(t, n.reqbufs(2), &format!("{what}: REQBUFS(DMABUF)"));
    if !t.check(
        rb.count >= 2,
        &format!("{what}: REQBUFS gives buffers"),
        format_args!("count {}", rb.count),
    ) {
        return;
    }
    let q = n.qbuf(
        0,
        fd.as_raw_fd(),
        bo.size() as u32,
        fmt.sizeimage,
        fmt.field,
    );
    if !queue(t, q, expect(vi.alloc, kind), &what) {
        return;
    }
    let q2 = n.qbuf(
        1,
        fd2.as_raw_fd(),
        bo2.size() as u32,
        fmt.sizeimage,
        fmt.field,
    );
    step!(t, q2, &format!("{what}: QBUF a second buffer"));
    step!(t, n.stream(true), &format!("{what}: STREAMON"));
    let b = step!(
        t,
        n.dqbuf(FRAME_WAIT),
        &format!("{what}: DQBUF the frame back")
    );
    t.check(
        b.index == 0 && b.flags & BUF_FLAG_ERROR == 0,
        &format!("{what}: buffer 0, no ERROR flag"),
        format_args!("{b:?}"),
    );
    let got = read_all(&bo);
    t.check(
        matches!(&got, Ok(g) if *g == data),
        &format!("{what}: the buffer's data is intact"),
        format_args!("{:?}", got.map(|g| vela_selftests::same(&g, &data))),
    );
    step!(t, n.stream(false), &format!("{what}: STREAMOFF"));
    t.ok(
        n.reqbufs(0).map(|_| ()),
        &format!("{what}: REQBUFS(0) lets the buffer go"),
    );
}

fn main() {
    let mut t = Tap::new();
    let dev = open_device(&mut t);
    let all = instances(&mut t);
    let mut seed = 0x7642_0000;
    for alloc in [Alloc::Vmalloc, Alloc::DmaContig] {
        // The harness boots with vivid.n_devs=2 vivid.allocators=0,1: both must be there.
        let Some(vi) = all.iter().find(|i| i.alloc == alloc) else {
            t.check(
                false,
                &format!("a vivid instance with {}", alloc.name()),
                "none found",
            );
            continue;
        };
        t.diag(format_args!("{}: vivid instance {}", alloc.name(), vi.inst));
        for kind in Kind::ALL {
            seed += 1;
            capture(&mut t, &dev, vi, kind, seed);
            seed += 1;
            output(&mut t, &dev, vi, kind, seed);
        }
    }
    t.finish();
}
