//! The process's own metrics, under their standard names (no `payment_engine_` prefix).

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// Resident memory, read at scrape time.
pub(super) struct ProcessMetrics {
    resident_memory: Gauge,
}

impl ProcessMetrics {
    /// Registers into the root registry: the names are the standard ones.
    pub(super) fn register(root: &mut Registry) -> ProcessMetrics {
        let resident_memory = Gauge::default();
        root.register_with_unit(
            "process_resident_memory",
            "Resident memory of the engine process",
            Unit::Bytes,
            resident_memory.clone(),
        );
        ProcessMetrics { resident_memory }
    }

    pub(super) fn refresh(&self) {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
    }
}

/// The resident set size, from `/proc/self/status` (Linux).
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
