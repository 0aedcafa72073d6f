//! IPC request and reply (DPDK's `rte_mp_request_sync`): the primary answers `greet`, a
//! secondary asks.
//!
//! ```text
//! cargo run --example ipc_request -- --file-prefix demo
//! cargo run --example ipc_request -- --file-prefix demo --proc-type=secondary
//! ```
use std::time::Duration;

use shoal::eal::{self, ProcType};
use shoal::mp::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    eal::init_logging(None);
    let (eal, _) = eal::init_or_exit("ipc_request [EAL options]");
    let mp = eal.mp().ok_or("no IPC channel")?.clone();
    if eal.proc_type() == ProcType::Primary {
        mp.action_register("greet", |msg, peer| {
            let text = format!("hello, {}", String::from_utf8_lossy(msg.param()));
            let _ = peer.reply(&Message::new(msg.name(), text.as_bytes()).unwrap());
        })?;
        println!("primary ready: answering 'greet'");
        while !eal.should_quit() {
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("primary: bye");
    } else {
        let req = Message::new("greet", format!("pid {}", std::process::id()).as_bytes())?;
        match mp.request_sync(&req, Duration::from_secs(5)) {
            Ok(r) if r.nb_received == 1 => {
                println!(
                    "secondary got: {}",
                    String::from_utf8_lossy(r.msgs[0].param())
                )
            }
            other => {
                eprintln!("secondary: no reply: {other:?}");
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
