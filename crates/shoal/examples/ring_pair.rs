//! Two processes sharing a ring: the primary sends numbers, the secondary doubles them and
//! sends them back.
//!
//! ```text
//! cargo run --example ring_pair -- --file-prefix demo              # primary: waits for a peer
//! cargo run --example ring_pair -- --file-prefix demo --proc-type=secondary
//! ```
use std::time::{Duration, Instant};

use shoal::eal::{self, ProcType};
use shoal::ring::{Ring, RingConfig};

const N: u64 = 1000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    eal::init_logging(None);
    let (eal, _) = eal::init_or_exit("ring_pair [EAL options]");
    let result = if eal.proc_type() == ProcType::Primary {
        let to_peer = Ring::<u64>::create(&eal, "pair_out", &RingConfig::new(1024))?;
        let back = Ring::<u64>::create(&eal, "pair_back", &RingConfig::new(1024))?;
        let (mut tx, mut rx) = (
            to_peer.producer().ok_or("ring producer side taken")?,
            back.consumer().ok_or("ring consumer side taken")?,
        );
        println!("primary ready: sending {N} numbers");
        let (mut sent, mut got, mut sum) = (0u64, 0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(30);
        while got < N && Instant::now() < deadline && !eal.should_quit() {
            if sent < N && tx.enqueue(sent).is_ok() {
                sent += 1;
            }
            while let Some(v) = rx.dequeue() {
                sum += v;
                got += 1;
            }
            std::thread::yield_now();
        }
        println!(
            "primary: {got} answers, sum {sum} (expected {})",
            N * (N - 1)
        );
        got == N && sum == N * (N - 1)
    } else {
        let from = Ring::<u64>::lookup(&eal, "pair_out")?;
        let back = Ring::<u64>::lookup(&eal, "pair_back")?;
        let (mut rx, mut tx) = (
            from.consumer().ok_or("ring consumer side taken")?,
            back.producer().ok_or("ring producer side taken")?,
        );
        let mut n = 0;
        while n < N && !eal.should_quit() && !eal.primary_died() {
            if let Some(v) = rx.dequeue() {
                while tx.enqueue(v * 2).is_err() {
                    std::thread::yield_now();
                }
                n += 1;
            } else {
                std::thread::yield_now();
            }
        }
        println!("secondary: doubled {n} numbers");
        n == N
    };
    std::process::exit(if result { 0 } else { 1 });
}
