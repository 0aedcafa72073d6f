//! Statistics and the state of a group, gathered into one serialisable snapshot that
//! `shoal info`, `shoal top` and the telemetry sockets print; and the telemetry server, which
//! speaks DPDK's telemetry v2 protocol so that `dpdk-telemetry.py -f <prefix>` works against a
//! shoal primary (see [`Server`]).

mod commands;
mod server;

pub use server::{
    dpdk_runtime_dir, dpdk_socket_path, query, validate_command, version, Client, RegisterError,
    Registry, Server, ServerStats, MAX_CLIENTS, MAX_CMD_LEN, MAX_HELP_LEN, MAX_OUTPUT_LEN,
    MAX_REQUEST_LEN, SOCKET_NAME, STREAM_MAX_OUTPUT_LEN,
};

use serde::Serialize;

use crate::eal::{Eal, ProcessInfo};
use crate::memory::Backing;
use crate::memzone::{self, Memzone, MemzoneInfo};

/// The state of a group at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The group's name.
    pub file_prefix: String,
    /// The primary's pid.
    pub primary_pid: u32,
    /// Where the memory lives.
    pub backing: Backing,
    /// The segment file.
    pub segment: String,
    /// Bytes of shared memory.
    pub memory_bytes: usize,
    /// Bytes of the heap used by memzones.
    pub memory_used: usize,
    /// Bytes of the heap in all.
    pub heap_bytes: usize,
    /// Member holding the metadata lock (0 = free).
    pub metadata_lock_holder: crate::sync::MemberId,
    /// Dead holders' locks taken over.
    pub metadata_lock_recoveries: u64,
    /// Memzones by offset.
    pub memzones: Vec<MemzoneInfo>,
    /// Rings.
    pub rings: Vec<serde_json::Value>,
    /// Mempools.
    pub mempools: Vec<serde_json::Value>,
    /// Processes.
    pub processes: Vec<ProcessInfo>,
    /// Ports, from the port table.
    pub ports: Vec<crate::ethdev::PortInfo>,
    /// Pipelines ([`crate::dispatch`]) and their counters.
    pub pipelines: Vec<crate::dispatch::PipelineStats>,
}

/// Gathers a snapshot of the group `eal` belongs to (or inspects).
pub fn snapshot(eal: &Eal) -> Snapshot {
    let (used, heap) = memzone::usage(eal);
    let (holder, recoveries) = eal.metadata_lock_state();
    let memzones = Memzone::list(eal);
    Snapshot {
        file_prefix: eal.file_prefix().to_owned(),
        primary_pid: eal.primary_pid(),
        backing: eal.backing(),
        segment: eal.segment_path().display().to_string(),
        memory_bytes: eal.memory_len(),
        memory_used: used,
        heap_bytes: heap,
        metadata_lock_holder: holder,
        metadata_lock_recoveries: recoveries,
        rings: crate::ring::describe_all(eal.group(), &memzones),
        mempools: crate::mempool::describe_all(eal.group(), &memzones),
        memzones,
        processes: eal.processes(),
        ports: crate::ethdev::table_info(eal),
        pipelines: crate::dispatch::list(eal),
    }
}
