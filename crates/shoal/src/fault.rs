//! Named fault sites: places where a process can be made to die (SIGKILL, exactly as an
//! operator's `kill -9`) to prove that the group repairs every shared structure a process can
//! die inside. Built only with the `fault-injection` feature; without it [`point`] is an empty
//! inline function and costs nothing.
//!
//! `SHOAL_FAULT=<site>:<n>` in a process's environment kills it at the `n`-th pass (from 1) of
//! `site`. [`SITES`] lists every site; `crates/shoal/tests/faults.rs` walks them all.

/// Every fault site, with the step it interrupts. The multi-thread ring sites
/// (`ring.mp.*`, `ring.mc.*`, [`is_multi_thread_ring_site`]) are walked by
/// `crates/shoal/tests/ring_faults.rs`, the others by `crates/shoal/tests/faults.rs`.
pub const SITES: &[(&str, &str)] = &[
    (
        "store.take.journaled",
        "common store: a take journaled, nothing copied or tagged yet",
    ),
    (
        "store.take.tagged",
        "common store: a take's objects tagged as the taker's, count not yet moved",
    ),
    (
        "store.give.journaled",
        "common store: a return's slots written and journaled, tags not yet freed",
    ),
    (
        "store.give.tagged",
        "common store: a return's objects tagged free, count not yet moved",
    ),
    (
        "cache.filled",
        "lcore cache: objects taken from the store, cache length not yet set",
    ),
    (
        "cache.flushed",
        "lcore cache: objects given to the store, cache length not yet cleared",
    ),
    (
        "ring.send.journaled",
        "single-producer ring of mbufs: slots written and journaled, mbufs not yet in flight",
    ),
    (
        "ring.send.marked",
        "single-producer ring of mbufs: mbufs in flight, tail not yet published",
    ),
    (
        "ring.recv.journaled",
        "single-consumer ring of mbufs: receive journaled, nothing claimed yet",
    ),
    (
        "ring.recv.claimed",
        "single-consumer ring of mbufs: mbufs claimed, slots not yet given back",
    ),
    (
        "ring.mp.reserved",
        "multi-producer ring: head moved (reservation recorded), slots not yet written",
    ),
    (
        "ring.mp.written",
        "multi-producer ring of mbufs: slots written, mbufs not yet (all) in flight",
    ),
    (
        "ring.mp.ready",
        "multi-producer ring: slots written, tail not yet published",
    ),
    (
        "ring.mc.reserved",
        "multi-consumer ring: head moved (reservation recorded), values not yet read",
    ),
    (
        "ring.mc.written",
        "multi-consumer ring of mbufs: values read, mbufs not yet (all) claimed",
    ),
    (
        "ring.mc.ready",
        "multi-consumer ring: values read, tail not yet published",
    ),
    (
        "ring.mp_rts.reserved",
        "RTS multi-producer ring: head moved, slots not yet written",
    ),
    (
        "ring.mp_rts.ready",
        "RTS multi-producer ring: slots written, tail counter not yet moved",
    ),
    (
        "ring.mc_rts.reserved",
        "RTS multi-consumer ring: head moved, values not yet read",
    ),
    (
        "ring.mc_rts.ready",
        "RTS multi-consumer ring: values read, tail counter not yet moved",
    ),
    (
        "ring.mp_hts.reserved",
        "HTS multi-producer ring: head moved, slots not yet written",
    ),
    (
        "ring.mp_hts.ready",
        "HTS multi-producer ring: slots written, tail not yet published",
    ),
    (
        "ring.mc_hts.reserved",
        "HTS multi-consumer ring: head moved, values not yet read",
    ),
    (
        "ring.mc_hts.ready",
        "HTS multi-consumer ring: values read, tail not yet published",
    ),
    (
        "xdp.rx.recorded",
        "AF_XDP receive: frames copied and fill slots written, burst recorded, nothing published",
    ),
    (
        "xdp.rx.filled",
        "AF_XDP receive: fill ring published, rx ring not yet handed back",
    ),
    (
        "memzone.locked",
        "metadata lock held while reserving a memzone",
    ),
    (
        "proctable.claiming",
        "process table: slot taken (CLAIMING), lcores not yet recorded",
    ),
];

/// True for the sites of AF_XDP ports (`xdp.*`), walked by `crates/shoal/tests/ethdev_af_xdp.rs`
/// on a veth pair.
pub fn is_port_site(site: &str) -> bool {
    site.starts_with("xdp.")
}

/// True for the sites of multi-thread ring operations (`ring.mp*`, `ring.mc*`).
pub fn is_multi_thread_ring_site(site: &str) -> bool {
    site.starts_with("ring.mp") || site.starts_with("ring.mc")
}

/// A fault site: kills this process at the chosen pass when the environment asks for it.
#[cfg(feature = "fault-injection")]
#[inline(never)]
pub fn point(site: &'static str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static CHOSEN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static PASSES: AtomicU64 = AtomicU64::new(0);
    let chosen = CHOSEN.get_or_init(|| {
        let v = std::env::var("SHOAL_FAULT").ok()?;
        let (name, n) = v.rsplit_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    });
    if let Some((name, n)) = chosen {
        if name == site && PASSES.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            crate::sys::kill_self();
        }
    }
}

/// A fault site (compiled out: the `fault-injection` feature is off).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_site: &'static str) {}
