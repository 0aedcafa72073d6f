//! `shoal reclaim`: return to their pools the buffers of processes that died, and free their
//! process slots (what the primary's reaper does by itself a few times a second; for groups
//! whose primary is busy, or to be sure).

use shoal::eal::Eal;

pub(crate) fn run(args: &[String]) -> i32 {
    let mut slot: Option<u32> = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--slot" {
            match it.next().and_then(|v| v.parse().ok()) {
                Some(s) => slot = Some(s),
                None => {
                    eprintln!("error: --slot needs a slot number\n\n{}", crate::USAGE);
                    return 2;
                }
            }
        } else {
            rest.push(a.clone());
        }
    }
    let opts = match crate::parse_group_opts(&rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", crate::USAGE);
            return 2;
        }
    };
    let eal = match Eal::inspect(&opts.prefix) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut out = String::new();
    if let Some(s) = slot {
        match shoal::mempool::reclaim(&eal, s) {
            Ok(pools) => {
                let n: u32 = pools.iter().map(|(_, n)| n).sum();
                out += &format!("slot {s}: returned {n} objects");
                for (pool, n) in pools {
                    out += &format!(" ({pool}: {n})");
                }
                out += "\n";
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    }
    let reaped = eal.reap_dead();
    for p in &reaped {
        out += &format!(
            "process {} ({}, slot {}) was dead: its buffers were returned and its slot freed\n",
            p.pid, p.proc_type, p.slot
        );
    }
    if slot.is_none() && reaped.is_empty() {
        out += "no dead process found\n";
    }
    crate::print_out(&out);
    0
}
