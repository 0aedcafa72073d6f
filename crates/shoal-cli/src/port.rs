//! `shoal port attach|detach|list`: ports added to and removed from a running group (DPDK's
//! `hotplug_mp` example). The command joins the group as a secondary and asks the primary
//! over IPC ([`shoal::hotplug`]); the primary probes or removes the port, and every process of
//! the group sees the change.

use shoal::eal::{self, Eal};
use shoal::ethdev::PortId;

/// `shoal port`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "Attach, detach or list the ports of a running group (DPDK's hotplug_mp)",
    after_help = "Example: shoal port attach --file-prefix P 'net_ring1'; shoal port list --file-prefix P; shoal port detach --file-prefix P 2"
)]
struct Opts {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Probe a port from a --vdev spec in the primary (rte_dev_probe)
    Attach {
        #[command(flatten)]
        group: crate::GroupArgs,
        /// The device, as the EAL's --vdev takes it (e.g. net_ring1, net_pcap1,rx_pcap=in.pcap)
        #[arg(value_name = "VDEV")]
        spec: String,
    },
    /// Remove a port (rte_dev_remove); its number is not used again
    Detach {
        #[command(flatten)]
        group: crate::GroupArgs,
        /// The port number
        #[arg(value_name = "PORT", value_parser = shoal_apps::args::num::<u16>)]
        port: u16,
    },
    /// List the group's ports
    List {
        #[command(flatten)]
        group: crate::GroupArgs,
    },
}

pub(crate) fn run(args: &[String]) -> i32 {
    let o: Opts = match crate::parse_cmd("port", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let prefix = match &o.cmd {
        Cmd::Attach { group, spec } => {
            // A spec the EAL would refuse is refused here, before the group is joined.
            if let Err(e) = shoal::ethdev::spec::parse(spec) {
                eprintln!("error: {e}");
                return 2;
            }
            group.prefix.clone()
        }
        Cmd::Detach { group, .. } | Cmd::List { group } => group.prefix.clone(),
    };
    match joined(&prefix, |eal| act(eal, &o.cmd)) {
        Ok(Ok(text)) => {
            crate::print_out(&text);
            0
        }
        Ok(Err((code, e))) => {
            eprintln!("shoal port: {e}");
            code
        }
        Err(e) => {
            eprintln!("shoal port: {e}");
            1
        }
    }
}

/// Runs `f` as a secondary of group `prefix`.
fn joined<T>(prefix: &str, f: impl FnOnce(&Eal) -> T) -> Result<T, String> {
    // The highest lcore id, out of the applications' way (they count from 0), on the last CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lcore = format!("{}@{}", shoal::memory::MAX_LCORES - 1, cpus - 1);
    let argv: Vec<String> = [
        "shoal-port",
        "--proc-type=secondary",
        "--lcores",
        &lcore,
        "--file-prefix",
        prefix,
        "--log-level",
        "error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    eal::setup_process(&argv);
    let (eal, _) = Eal::init(argv).map_err(|e| e.to_string())?;
    let r = f(&eal);
    eal.leave();
    Ok(r)
}

/// Does the command; an error carries its exit status (2: a wrong argument).
fn act(eal: &Eal, cmd: &Cmd) -> Result<String, (i32, String)> {
    let code = |e: shoal::hotplug::Error| match e {
        shoal::hotplug::Error::BadArgument(_) => (2, e.to_string()),
        _ => (1, e.to_string()),
    };
    match cmd {
        Cmd::Attach { spec, .. } => {
            let (id, name) = shoal::hotplug::attach(eal, spec).map_err(code)?;
            Ok(format!("attached port {id} ({name})\n"))
        }
        Cmd::Detach { port, .. } => {
            let (id, name) = shoal::hotplug::detach(eal, PortId(*port)).map_err(code)?;
            Ok(format!("detached port {id} ({name})\n"))
        }
        Cmd::List { .. } => {
            let mut text = String::new();
            for p in shoal::ethdev::table_info(eal) {
                text += &format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    p.id, p.name, p.driver, p.state, p.mac
                );
            }
            Ok(text)
        }
    }
}
