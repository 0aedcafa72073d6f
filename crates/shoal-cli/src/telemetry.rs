//! `shoal telemetry`: query a group's telemetry socket.

use std::io::BufRead;

pub(crate) fn run(args: &[String]) -> i32 {
    let (opts, cmds) = match crate::parse_group_opts_and_rest(args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", crate::USAGE);
            return 2;
        }
    };
    let cmds: Vec<String> = if cmds.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else {
        cmds
    };
    for cmd in cmds {
        match shoal::telemetry::query(&opts.prefix, &cmd) {
            Ok(v) => println!("{v}"),
            Err(e) => {
                eprintln!("error: no telemetry socket for file prefix {:?} ({e}); is its primary running?", opts.prefix);
                return 1;
            }
        }
    }
    0
}
