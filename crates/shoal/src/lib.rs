//! shoal: DPDK's multi-process packet-processing model, in Rust.
//!
//! A *primary* process creates a group's shared memory and named objects; *secondary* processes
//! attach to it and find those objects by name. Packets move between the processes of a group
//! through lock-free rings, without copies.
//!
//! | DPDK                         | shoal                     |
//! |------------------------------|---------------------------|
//! | `rte_eal_init`, EAL options  | [`eal::Eal`]              |
//! | the EAL's per-process state  | [`group::Group`]          |
//! | `rte_memzone_*`              | [`memzone::Memzone`]      |
//! | `rte_ring_*`                 | [`ring::Ring`]            |
//! | `rte_mempool_*`              | [`mempool::Mempool`]      |
//! | `rte_mbuf`, `rte_pktmbuf_*`  | [`mbuf`]                  |
//! | `rte_mp_*` (IPC)             | [`mp`]                    |
//! | `rte_eth_*`, vdev drivers    | [`ethdev`]                |
//! | `rte_ether_hdr`, hashes      | [`net`]                   |
//! | telemetry                    | [`telemetry`]             |
//!
//! The modules import only downward: `sys` < `sync` < `memory` < `mp` < `group` < `memzone` <
//! `ring`, `mempool` < `mbuf` < `ethdev` < `eal` < `telemetry` (`net` stands apart; `fault`,
//! the fault-injection sites, sits on `sys`).
//! A lower layer reaches a higher one only through what the higher one registered with the
//! [`group::Group`] (reclaimers, the pools' object kinds).
//!
//! Nothing in shared memory holds a raw pointer: shared structures refer to each other by
//! offset, so every process may map a group's memory wherever the kernel puts it (ASLR stays on).

pub mod eal;
pub mod ethdev;
pub mod fault;
pub mod group;
pub mod mbuf;
pub mod memory;
pub mod mempool;
pub mod memzone;
pub mod mp;
pub mod net;
pub mod ring;
pub mod sync;
pub(crate) mod sys;
pub mod telemetry;
