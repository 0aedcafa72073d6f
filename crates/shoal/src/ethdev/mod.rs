//! Ports (DPDK's ethdev): a port table in shared memory, configured, started and stopped by
//! the primary, with `rx_burst`/`tx_burst` on a queue from any process of the group.
//!
//! Ports come from `--vdev` specs in DPDK's syntax (see [`spec`]).

pub mod pcap;
pub mod spec;

pub use spec::{DriverArgs, DriverKind, GenSize, VdevSpec, MAX_QUEUES, PORT_NAMESIZE};

/// Errors of port set-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--vdev` spec could not be parsed.
    #[error("bad --vdev {spec:?}: {why}")]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
}
