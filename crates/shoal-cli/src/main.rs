//! `shoal`: inspect and operate process groups.
//!
//! ```text
//! shoal info [--file-prefix P] [--json]     dump a running group (DPDK's dpdk-proc-info)
//! ```

mod demo;
mod info;
mod reclaim;
mod telemetry;
mod top;

const USAGE: &str = "\
usage: shoal COMMAND [options]

commands:
  demo [--clients N] [--duration SECS] [--kill-client] ...
                                    the main job: a server and clients forwarding generated
                                    traffic, live statistics, a summary (demo --help)
  info [--file-prefix P] [--json]   print a running group: memory, memzones, rings, mempools, processes
  top [--file-prefix P] [--iterations N] [--interval-ms MS] [--plain]
                                    a live monitor: packet and byte rates per port and per
                                    worker of every pipeline, drops by cause, ring fill, pool
                                    use, processes' liveness and CPU (plain text when stdout
                                    is not a terminal, or with --plain)
  reclaim [--file-prefix P] [--slot N]
                                    return the buffers of dead processes to their pools and
                                    free their slots (the primary also does it by itself)
  telemetry [--file-prefix P] [CMD...]
                                    query the group's telemetry socket (`/` lists commands);
                                    with no CMD, read commands from stdin, one per line
  telemetry [--file-prefix P] --prometheus
                                    the group's counters in Prometheus' text format
  mp_server, mp_client [EAL options] -- [options]
                                    the client_server_mp sample programs
  help                              this text";

fn main() {
    shoal::eal::init_logging(Some("warning"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("info") => info::run(&args[1..]),
        Some("telemetry") => telemetry::run(&args[1..]),
        Some("top") => top::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("reclaim") => reclaim::run(&args[1..]),
        // The sample server and client, so that `shoal demo` needs no other binary.
        Some(app @ ("mp_server" | "mp_client")) => {
            let argv: Vec<String> = std::iter::once(app.to_string())
                .chain(args[1..].iter().cloned())
                .collect();
            if app == "mp_server" {
                shoal_apps::server::main(argv)
            } else {
                shoal_apps::client::main(argv)
            }
        }
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("error: unknown command {other:?}\n\n{USAGE}");
            2
        }
        None => {
            eprintln!("{USAGE}");
            2
        }
    };
    std::process::exit(code);
}

/// Options common to the commands that look at a group.
pub(crate) struct GroupOpts {
    pub prefix: String,
    pub json: bool,
}

/// Parses `--file-prefix P` / `--file-prefix=P` and `--json`; anything else is an error.
pub(crate) fn parse_group_opts(args: &[String]) -> Result<GroupOpts, String> {
    let (o, rest) = parse_group_opts_and_rest(args)?;
    match rest.first() {
        Some(s) => Err(format!("unknown option {s:?}")),
        None => Ok(o),
    }
}

/// Like [`parse_group_opts`], but hands back the words that are not options. The prefix is
/// checked as the EAL checks `--file-prefix`.
pub(crate) fn parse_group_opts_and_rest(
    args: &[String],
) -> Result<(GroupOpts, Vec<String>), String> {
    let mut rest = Vec::new();
    let mut o = GroupOpts {
        prefix: "shoal".into(),
        json: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => o.json = true,
            "--file-prefix" => o.prefix = it.next().ok_or("--file-prefix needs a value")?.clone(),
            s if s.starts_with("--file-prefix=") => {
                o.prefix = s["--file-prefix=".len()..].to_string()
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s:?}")),
            s => rest.push(s.to_string()),
        }
    }
    shoal::eal::check_file_prefix(&o.prefix).map_err(|e| e.to_string())?;
    Ok((o, rest))
}

/// Writes to stdout, ignoring a closed pipe (`shoal info | head`).
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
