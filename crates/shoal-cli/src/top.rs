//! `shoal top`: a live view of a running group, refreshed every second.

use std::time::Duration;

use shoal::eal::Eal;
use shoal::telemetry::snapshot;

/// `shoal top`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "A live view of a running group, refreshed every interval"
)]
struct Opts {
    #[command(flatten)]
    group: crate::GroupArgs,
    /// Stop after N refreshes (default: until interrupted)
    #[arg(short = 'n', long, value_name = "N", value_parser = shoal_apps::args::num::<u64>)]
    iterations: Option<u64>,
    /// Time between refreshes
    #[arg(long = "interval-ms", value_name = "MS", default_value = "1000", value_parser = shoal_apps::args::millis)]
    interval: Duration,
}

pub(crate) fn run(args: &[String]) -> i32 {
    let o: Opts = match crate::parse_cmd("top", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (iterations, interval, opts) = (o.iterations, o.interval, o.group);
    let eal = match Eal::inspect(&opts.prefix) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut n = 0u64;
    loop {
        let snap = snapshot(&eal);
        let clear = if tty { "\x1b[2J\x1b[H" } else { "" };
        crate::print_out(&format!("{clear}{}\n", crate::info::render(&snap)));
        n += 1;
        if iterations.is_some_and(|max| n >= max) {
            return 0;
        }
        std::thread::sleep(interval);
        // The group may have gone away meanwhile.
        if !eal
            .processes()
            .iter()
            .any(|p| p.alive && p.proc_type == "primary")
        {
            eprintln!("the primary of {:?} has exited", opts.prefix);
            return 1;
        }
    }
}
