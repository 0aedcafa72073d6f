//! A mempool of mbufs shared by two processes: the primary fills packets, the secondary
//! reads them and frees them, and they come back to the primary's pool.
//!
//! ```text
//! cargo run --example mbuf_pass -- --file-prefix demo
//! cargo run --example mbuf_pass -- --file-prefix demo --proc-type=secondary
//! ```
use std::time::{Duration, Instant};

use shoal::eal::{self, ProcType};
use shoal::mbuf::{MbufPool, MbufRing};
use shoal::ring::RingConfig;

const N: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    eal::init_logging(None);
    let (eal, _) = eal::init_or_exit("mbuf_pass [EAL options]");
    let ok = if eal.proc_type() == ProcType::Primary {
        let pool = MbufPool::create(&eal, "pass_pool", 511, 0, 0, 2048)?;
        let ring = MbufRing::create(&eal, "pass_ring", RingConfig::new(128))?;
        for i in 0..N {
            let mut m = pool.alloc().ok_or("pool empty")?;
            let text = format!("packet {i}");
            m.append(text.len() as u16)
                .ok_or("no room in the mbuf")?
                .copy_from_slice(text.as_bytes());
            ring.enqueue(m).map_err(|_| "ring full")?;
        }
        println!(
            "primary ready: {N} mbufs in flight, pool in use {}",
            pool.in_use_count()
        );
        // The secondary frees what it reads: the buffers come back to this pool.
        let deadline = Instant::now() + Duration::from_secs(30);
        while pool.in_use_count() > 0 && Instant::now() < deadline && !eal.should_quit() {
            std::thread::sleep(Duration::from_millis(5));
        }
        println!(
            "primary: pool in use {} after the secondary read them",
            pool.in_use_count()
        );
        pool.in_use_count() == 0
    } else {
        let ring = MbufRing::lookup(&eal, "pass_ring")?;
        let mut read = 0;
        while read < N && !eal.should_quit() && !eal.primary_died() {
            match ring.dequeue() {
                Some(m) => {
                    if read == 0 || read == N - 1 {
                        println!("secondary read {:?}", String::from_utf8_lossy(m.data()));
                    }
                    read += 1; // dropping `m` returns it to its pool
                }
                None => std::thread::yield_now(),
            }
        }
        println!("secondary: read and freed {read} mbufs");
        read == N
    };
    std::process::exit(if ok { 0 } else { 1 });
}
