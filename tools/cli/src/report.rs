// SPDX-License-Identifier: GPL-2.0

//! What `vela info` and `vela stats` show, as text and as JSON (`--json`, one object on one
//! line, like `nvidia-smi -q -x` or `rocm-smi --json`). Both forms are built from the same
//! values; JSON gives numbers as numbers and sizes in bytes.

use serde::{ser::SerializeMap, Serialize, Serializer};
use vela_hw::regs::Version;
use vela_uapi::{drm_vela_query_device, drm_vela_query_limits, drm_vela_query_memory};

/// Capability bits and their names.
const CAPS: [(u32, &str); 7] = [
    (vela_uapi::DRM_VELA_CAP_COPY, "copy"),
    (vela_uapi::DRM_VELA_CAP_COMPUTE, "compute"),
    (vela_uapi::DRM_VELA_CAP_MMU, "mmu"),
    (vela_uapi::DRM_VELA_CAP_P2P, "p2p"),
    (vela_uapi::DRM_VELA_CAP_FAULT_INJECT, "fault-inject"),
    (vela_uapi::DRM_VELA_CAP_PARTITIONS, "partitions"),
    (vela_uapi::DRM_VELA_CAP_VIRTUAL, "virtual"),
];

/// The counters, in `DRM_VELA_COUNTER_*` order: JSON key and text label.
pub const COUNTERS: [(&str, &str); 13] = [
    ("commands_completed", "commands completed"),
    ("bytes_written", "bytes written"),
    ("kernels_executed", "kernels executed"),
    ("fences_written", "fences written"),
    ("interrupts_sent", "interrupts sent"),
    ("interrupts_suppressed", "interrupts suppressed"),
    ("doorbells", "doorbells"),
    ("page_walks", "page walks"),
    ("mmu_faults", "MMU faults"),
    ("queue_errors", "queue errors"),
    ("dma_errors", "DMA errors"),
    ("p2p_bytes", "peer-to-peer bytes"),
    ("resets", "resets"),
];

/// Names of the capability bits set in `c`.
pub fn cap_names(c: u64) -> Vec<&'static str> {
    CAPS.iter()
        .filter(|(b, _)| c & u64::from(*b) != 0)
        .map(|(_, n)| *n)
        .collect()
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct HwVersion {
    pub major: u32,
    pub minor: u32,
}

/// One row of `vela info`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub device: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub revision: u32,
    pub hw_version: HwVersion,
    pub serial: u32,
    pub vram_bytes: u64,
    pub queues: u32,
    pub engines: u32,
    /// The `DRM_VELA_CAP_*` bits.
    pub caps_mask: u64,
    pub caps: Vec<&'static str>,
}

impl DeviceRow {
    pub fn new(device: &str, q: &drm_vela_query_device) -> Self {
        Self {
            device: device.to_string(),
            vendor_id: q.vendor_id,
            device_id: q.device_id,
            revision: q.revision,
            hw_version: HwVersion {
                major: Version(q.hw_version).major().into(),
                minor: Version(q.hw_version).minor().into(),
            },
            serial: q.serial,
            vram_bytes: q.vram_size,
            queues: q.num_queues,
            engines: q.num_engines,
            caps_mask: q.caps,
            caps: cap_names(q.caps),
        }
    }

    /// The text table's cells, in [`INFO_HEAD`] order.
    pub fn cells(&self) -> [String; 8] {
        let caps = if self.caps.is_empty() {
            "-".to_string()
        } else {
            self.caps.join(",")
        };
        [
            self.device.clone(),
            format!(
                "{:04x}:{:04x} rev {}",
                self.vendor_id, self.device_id, self.revision
            ),
            format!("{}.{}", self.hw_version.major, self.hw_version.minor),
            self.serial.to_string(),
            format!("{} MiB", self.vram_bytes >> 20),
            self.queues.to_string(),
            self.engines.to_string(),
            caps,
        ]
    }
}

pub const INFO_HEAD: [&str; 8] = [
    "DEVICE", "PCI ID", "HW", "SERIAL", "VRAM", "QUEUES", "ENGINES", "CAPS",
];

/// `vela info --json`.
#[derive(Serialize, Debug)]
pub struct Info {
    pub devices: Vec<DeviceRow>,
}

/// `vela info`'s table, columns padded to their widest cell.
pub fn info_table(rows: &[DeviceRow]) -> String {
    let cells: Vec<[String; 8]> = rows.iter().map(DeviceRow::cells).collect();
    let mut w: Vec<usize> = INFO_HEAD.iter().map(|h| h.len()).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<0$}", w[i]))
            .collect();
        format!("{}\n", s.join("  ").trim_end())
    };
    let mut out = line(INFO_HEAD.to_vec());
    for r in &cells {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Memory {
    pub vram_bytes: u64,
    pub vram_free_bytes: u64,
    pub page_size_bytes: u64,
    pub va_size_bytes: u64,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_commands: u32,
    pub max_in_syncobjs: u32,
    pub max_vms: u32,
    pub max_queues: u32,
    pub max_vram_bo_bytes: u64,
    pub max_system_bo_bytes: u64,
    pub system_budget_bytes: u64,
    pub system_used_bytes: u64,
}

/// The named counters; serialized as an object in `DRM_VELA_COUNTER_*` order.
#[derive(Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; 16]);

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(COUNTERS.len()))?;
        for ((key, _), v) in COUNTERS.iter().zip(self.0) {
            m.serialize_entry(key, &v)?;
        }
        m.end()
    }
}

/// `vela stats`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct Stats {
    pub device: String,
    pub memory: Memory,
    pub limits: Limits,
    pub counters: Counters,
}

impl Stats {
    pub fn new(
        device: &str,
        m: &drm_vela_query_memory,
        l: &drm_vela_query_limits,
        counters: [u64; 16],
    ) -> Self {
        Self {
            device: device.to_string(),
            memory: Memory {
                vram_bytes: m.vram_size,
                vram_free_bytes: m.vram_free,
                page_size_bytes: m.page_size,
                va_size_bytes: m.va_size,
            },
            limits: Limits {
                max_commands: l.max_commands,
                max_in_syncobjs: l.max_in_syncobjs,
                max_vms: l.max_vms,
                max_queues: l.max_queues,
                max_vram_bo_bytes: l.max_vram_bo,
                max_system_bo_bytes: l.max_system_bo,
                system_budget_bytes: l.system_budget,
                system_used_bytes: l.system_used,
            },
            counters: Counters(counters),
        }
    }

    /// The text form, as `vela stats` has always printed it.
    pub fn text(&self) -> String {
        let (m, l) = (&self.memory, &self.limits);
        let mut out = format!(
            "{}: VRAM {} MiB, {} MiB free ({} KiB pages); VM address space {} GiB\n",
            self.device,
            m.vram_bytes >> 20,
            m.vram_free_bytes >> 20,
            m.page_size_bytes >> 10,
            m.va_size_bytes >> 30
        );
        out.push_str(&format!(
            "limits: {} commands and {} in-syncobjs per SUBMIT, {} VMs and {} queues at once; \
             system memory {} MiB used of {} MiB (buffers up to {} GiB)\n",
            l.max_commands,
            l.max_in_syncobjs,
            l.max_vms,
            l.max_queues,
            l.system_used_bytes >> 20,
            l.system_budget_bytes >> 20,
            l.max_system_bo_bytes >> 30
        ));
        for ((_, name), v) in COUNTERS.iter().zip(self.counters.0) {
            out.push_str(&format!("  {name:<22} {v}\n"));
        }
        out
    }
}

/// One JSON object on one line.
pub fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain structs of numbers and strings serialize")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn fake_device() -> drm_vela_query_device {
        drm_vela_query_device {
            vendor_id: 0x1f5a,
            device_id: 1,
            revision: 1,
            hw_version: 0x0001_0002,
            caps: 0b1_1011,
            vram_size: 256 << 20,
            serial: 7,
            num_queues: 4,
            num_engines: 2,
            ..Default::default()
        }
    }

    #[test]
    fn info_json_shape() {
        let info = Info {
            devices: vec![DeviceRow::new("/dev/accel/accel0", &fake_device())],
        };
        let text = json(&info);
        assert!(!text.contains('\n'), "one line: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"devices": [{
                "device": "/dev/accel/accel0",
                "vendor_id": 0x1f5a,
                "device_id": 1,
                "revision": 1,
                "hw_version": {"major": 1, "minor": 2},
                "serial": 7,
                "vram_bytes": 268435456u64,
                "queues": 4,
                "engines": 2,
                "caps_mask": 27,
                "caps": ["copy", "compute", "p2p", "fault-inject"],
            }]})
        );
    }

    #[test]
    fn info_text_is_the_table() {
        let rows = [DeviceRow::new("/dev/accel/accel0", &fake_device())];
        assert_eq!(
            info_table(&rows),
            "DEVICE             PCI ID           HW   SERIAL  VRAM     QUEUES  ENGINES  CAPS\n\
             /dev/accel/accel0  1f5a:0001 rev 1  1.2  7       256 MiB  4       2        \
             copy,compute,p2p,fault-inject\n"
        );
        let none = DeviceRow::new(
            "/dev/accel/accel1",
            &drm_vela_query_device {
                caps: 0,
                ..fake_device()
            },
        );
        assert_eq!(none.cells()[7], "-");
    }

    fn fake_stats() -> Stats {
        let m = drm_vela_query_memory {
            vram_size: 256 << 20,
            vram_free: 200 << 20,
            page_size: 4096,
            va_size: 1 << 39,
        };
        let l = drm_vela_query_limits {
            max_commands: 1024,
            max_in_syncobjs: 64,
            max_vms: 15,
            max_queues: 64,
            max_vram_bo: 128 << 20,
            max_system_bo: 1 << 30,
            system_budget: 512 << 20,
            system_used: 3 << 20,
        };
        let mut c = [0u64; 16];
        for (i, v) in c.iter_mut().enumerate() {
            *v = 100 + i as u64;
        }
        Stats::new("/dev/accel/accel0", &m, &l, c)
    }

    #[test]
    fn stats_json_shape() {
        let text = json(&fake_stats());
        assert!(!text.contains('\n'), "one line: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["device"], "/dev/accel/accel0");
        assert_eq!(
            v["memory"],
            json!({"vram_bytes": 268435456u64, "vram_free_bytes": 209715200u64,
                   "page_size_bytes": 4096, "va_size_bytes": 549755813888u64})
        );
        assert_eq!(
            v["limits"],
            json!({"max_commands": 1024, "max_in_syncobjs": 64, "max_vms": 15,
                   "max_queues": 64, "max_vram_bo_bytes": 134217728u64,
                   "max_system_bo_bytes": 1073741824u64, "system_budget_bytes": 536870912u64,
                   "system_used_bytes": 3145728u64})
        );
        // Every counter the text shows, by name, in uAPI order, as numbers.
        let counters = v["counters"].as_object().unwrap();
        assert_eq!(counters.len(), COUNTERS.len());
        for (i, (key, _)) in COUNTERS.iter().enumerate() {
            assert_eq!(counters[*key], json!(100 + i as u64), "{key}");
        }
        assert!(text.find("\"commands_completed\"") < text.find("\"resets\""));
    }

    #[test]
    fn stats_text_as_before() {
        let text = fake_stats().text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "/dev/accel/accel0: VRAM 256 MiB, 200 MiB free (4 KiB pages); VM address space 512 GiB"
        );
        assert_eq!(
            lines[1],
            "limits: 1024 commands and 64 in-syncobjs per SUBMIT, 15 VMs and 64 queues at once; \
             system memory 3 MiB used of 512 MiB (buffers up to 1 GiB)"
        );
        assert_eq!(lines[2], "  commands completed     100");
        assert_eq!(lines[14], "  resets                 112");
        assert_eq!(lines.len(), 15);
    }
}
