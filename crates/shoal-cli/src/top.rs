//! `shoal top`: a live view of a running group, refreshed every second.

use std::time::Duration;

use shoal::eal::Eal;
use shoal::telemetry::snapshot;

pub(crate) fn run(args: &[String]) -> i32 {
    let mut iterations: Option<u64> = None;
    let mut interval = Duration::from_secs(1);
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" | "--iterations" => match it.next().and_then(|v| v.parse().ok()) {
                Some(n) => iterations = Some(n),
                None => return usage("--iterations needs a number"),
            },
            "--interval-ms" => match it.next().and_then(|v| v.parse().ok()) {
                Some(ms) => interval = Duration::from_millis(ms),
                None => return usage("--interval-ms needs a number"),
            },
            _ => rest.push(a.clone()),
        }
    }
    let opts = match crate::parse_group_opts(&rest) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
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

fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg}\n\n{}", crate::USAGE);
    2
}
