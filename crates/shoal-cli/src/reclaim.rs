//! `shoal reclaim`: return to their pools the buffers of processes that died, and free their
//! process slots (what the primary's reaper does by itself a few times a second; for groups
//! whose primary is busy, or to be sure).

use shoal::eal::Eal;

/// `shoal reclaim`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "Return the buffers of dead processes to their pools and free their slots (the primary also does it by itself)"
)]
struct Opts {
    #[command(flatten)]
    group: crate::GroupArgs,
    /// Return the objects tagged with this process-table slot first
    #[arg(long, value_name = "N")]
    slot: Option<u32>,
}

pub(crate) fn run(args: &[String]) -> i32 {
    let o: Opts = match crate::parse_cmd("reclaim", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (slot, opts) = (o.slot, o.group);
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
