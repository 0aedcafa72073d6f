//! `shoal`: inspect and operate process groups.
//!
//! ```text
//! shoal info [--file-prefix P] [--json]     dump a running group (DPDK's dpdk-proc-info)
//! shoal port attach --file-prefix P VDEV     add a port to a running group (hotplug_mp)
//! ```
//!
//! Every command parses its options with clap (`shoal COMMAND --help`); `mp_server` and
//! `mp_client` take the EAL's options as the binaries do.

mod demo;
mod dumpcap;
mod info;
mod port;
mod reclaim;
mod telemetry;
mod top;
mod up;

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
  dumpcap [--file-prefix P] -i PORT[:rx|:tx][,...] -w FILE [-c COUNT] [--duration S] [-s SNAPLEN]
                                    capture a running group's ports into pcapng (dpdk-dumpcap)
  port attach|detach|list [--file-prefix P] [VDEV|PORT]
                                    attach a port from a --vdev spec, detach one, or list
                                    them, in a running group (DPDK's hotplug_mp)
  telemetry [--file-prefix P] --prometheus
                                    the group's counters in Prometheus' text format
  up FILE [--file-prefix P]         start the group FILE describes (TOML), restart what dies,
                                    stop it in order on SIGINT/SIGTERM (up --help)
  status [FILE] [--file-prefix P] [--json]
                                    the processes of a group under `shoal up`: restarts, uptime
  down [FILE] [--file-prefix P]     stop a group under `shoal up`
  mp_server, mp_client [EAL options] -- [options]
                                    the client_server_mp sample programs
  help                              this text

`shoal COMMAND --help` describes a command's options.";

fn main() {
    shoal::eal::init_logging(Some("warning"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("info") => info::run(&args[1..]),
        Some("telemetry") => telemetry::run(&args[1..]),
        Some("top") => top::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("reclaim") => reclaim::run(&args[1..]),
        Some("up") => up::run_up(&args[1..]),
        Some("status") => up::run_status(&args[1..]),
        Some("down") => up::run_down(&args[1..]),
        Some("dumpcap") => dumpcap::run(&args[1..]),
        Some("port") => port::run(&args[1..]),
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

/// `--file-prefix`, which every command that looks at a group takes.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct GroupArgs {
    /// The group's file prefix (as the EAL's --file-prefix)
    #[arg(long = "file-prefix", value_name = "P", default_value = "shoal", value_parser = file_prefix)]
    pub prefix: String,
}

/// Value parser: a file prefix the EAL would take.
fn file_prefix(p: &str) -> Result<String, String> {
    shoal::eal::check_file_prefix(p)
        .map(|()| p.to_string())
        .map_err(|_| "1-64 characters: letters, digits, - _ .".to_string())
}

/// Parses the arguments of `shoal NAME` (those after NAME) into `T`. `--help` prints the
/// command's help: `Err(0)`; a problem is one line on stderr, then the help: `Err(2)`.
pub(crate) fn parse_cmd<T: clap::Parser + clap::CommandFactory>(
    name: &str,
    args: &[String],
) -> Result<T, i32> {
    let argv = std::iter::once(format!("shoal {name}")).chain(args.iter().cloned());
    T::try_parse_from(argv).map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                print_out(&e.render().to_string());
                0
            }
            _ => {
                eprintln!(
                    "error: {}\n\n{}",
                    shoal_apps::args::one_line(&e),
                    usage_of::<T>(name)
                );
                2
            }
        }
    })
}

/// The help of `shoal NAME`.
pub(crate) fn usage_of<T: clap::CommandFactory>(name: &str) -> String {
    let help = T::command().bin_name(format!("shoal {name}")).render_help();
    help.to_string().trim_end().to_string()
}

/// Writes to stdout, ignoring a closed pipe (`shoal info | head`).
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
