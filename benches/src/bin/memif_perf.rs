//! memif_perf: one end of a memif link, sending or receiving as fast as it can, as
//! `dpdk-testpmd --forward-mode=txonly|rxonly` does on DPDK's `net_memif`
//! (`benches/vs-dpdk-memif.sh` sets the two beside each other).
//!
//! ```text
//! memif_perf -l 1 --no-huge --vdev net_memif0,role=server,socket=S -- rx|tx|echo [SIZE]
//! ```
//! Busy-polls queue 0 of the first port on its lcore; `tx` sends SIZE-byte UDP frames
//! (default 64, FCS excluded, as testpmd's txonly), `rx` frees what it receives, `echo` sends
//! back on queue 0 what every queue receives (the peer of `shoal demo --vdev net_memif...`,
//! whose clients send on queues of their own). Prints `Rx-pps: N` / `Tx-pps: N` (testpmd's
//! words) every second, and the totals on SIGINT.

use std::time::{Duration, Instant};

use shoal::ethdev::{self, QueueId};
use shoal::mbuf::MbufBatch;

const USAGE: &str = "application options: rx|tx|echo [SIZE]";

fn main() {
    let (eal, app) = shoal::eal::init_or_exit(USAGE);
    // The application's arguments follow the program name.
    let args = app.get(1..).unwrap_or_default();
    let (tx, echo) = match args.first().map(String::as_str) {
        Some("tx") => (true, false),
        Some("rx") => (false, false),
        Some("echo") => (false, true),
        _ => {
            eprintln!("memif_perf: give rx, tx or echo\n{USAGE}");
            std::process::exit(2)
        }
    };
    let size: u16 = match args.get(1).map(|s| s.parse()) {
        None => 64,
        Some(Ok(n)) if (60..=1514).contains(&n) => n,
        Some(_) => {
            eprintln!("memif_perf: SIZE must be 60 to 1514\n{USAGE}");
            std::process::exit(2)
        }
    };
    let port = match ethdev::ports(&eal) {
        Ok(p) if !p.is_empty() => p[0].clone(),
        Ok(_) => {
            eprintln!("memif_perf: no port (give --vdev net_memif0,...)");
            std::process::exit(2)
        }
        Err(e) => {
            eprintln!("memif_perf: {e}");
            std::process::exit(1)
        }
    };
    let mut frame = vec![0u8; size as usize];
    frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    frame[6..12].copy_from_slice(&port.mac().0);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[23] = 17;
    let pool = port.pool();
    println!(
        "memif_perf ready ({})",
        if tx {
            "tx"
        } else if echo {
            "echo"
        } else {
            "rx"
        }
    );
    let q = QueueId(0);
    let mut batch = MbufBatch::new();
    let mut last = Instant::now();
    let mut last_count = 0u64;
    while !eal.should_quit() {
        if tx {
            while batch.len() < 32 {
                let Some(mut m) = pool.alloc() else { break };
                if let Some(b) = m.append(size) {
                    b.copy_from_slice(&frame);
                }
                if batch.push(m).is_err() {
                    break;
                }
            }
            port.tx_burst(q, &mut batch);
        } else if echo {
            for rq in 0..port.nb_rx_queues() {
                port.rx_burst(QueueId(rq), &mut batch, 32);
                port.tx_burst(q, &mut batch);
                // What the peer has no room for is dropped, as testpmd's io forwarding does.
                batch.clear();
            }
        } else {
            port.rx_burst(q, &mut batch, 32);
            batch.clear();
        }
        if last.elapsed() >= Duration::from_secs(1) {
            let s = port.stats();
            let count = if tx { s.opackets } else { s.ipackets };
            let pps = (count - last_count) as f64 / last.elapsed().as_secs_f64();
            println!("{}-pps: {pps:.0}", if tx { "Tx" } else { "Rx" });
            last = Instant::now();
            last_count = count;
        }
    }
    let s = port.stats();
    println!(
        "memif_perf done: rx {} tx {} rx errors {} tx errors {}",
        s.ipackets, s.opackets, s.ierrors, s.oerrors
    );
}
