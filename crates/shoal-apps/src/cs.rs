//! client_server_mp's shared names (DPDK's `shared/common.h`). The server is a distributor and
//! each client a worker of the pipeline [`PIPELINE`] ([`shoal::dispatch`]), whose counters are
//! the library's (memzone `PL_MProc`, read with [`shoal::dispatch::list`]).

/// Most clients a server serves.
pub const MAX_CLIENTS: usize = 16;
/// The packet pool (DPDK's name).
pub const MBUF_POOL_NAME: &str = "mbuf_pool";
/// The pipeline the server distributes (DPDK's prefix of the sample's names).
pub const PIPELINE: &str = "MProc";
/// Default client ring size (the lesson's 4096).
pub const RING_SIZE: u32 = 4096;

/// A client's receive ring: `MProc_Client_RX_<id>` (DPDK's name).
pub fn client_ring_name(id: usize) -> String {
    format!("MProc_Client_RX_{id}")
}
