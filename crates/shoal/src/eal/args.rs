//! EAL command-line options, in DPDK's syntax: `[EAL options] -- [application options]`.

use std::path::PathBuf;

use super::Error;
use crate::group::LcoreId;
use crate::memory::MAX_LCORES;

/// `--proc-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcTypeArg {
    /// Creates the group (the default).
    #[default]
    Primary,
    /// Attaches to a running primary.
    Secondary,
    /// Secondary when a live primary holds the group's lock, primary otherwise.
    Auto,
}

/// Parsed EAL options.
#[derive(Debug, Clone, Default)]
pub struct EalArgs {
    /// `-l`, `-c` or `--lcores`: lcore ids and the CPU each runs on (None: `id mod ncpus`).
    /// Empty when none was given: the process then takes the lowest free lcore id.
    pub lcores: Vec<(LcoreId, Option<usize>)>,
    /// `--proc-type`.
    pub proc_type: ProcTypeArg,
    /// `--file-prefix` (default `shoal`).
    pub file_prefix: String,
    /// `--no-huge`.
    pub no_huge: bool,
    /// `-m MB`.
    pub memory_mb: Option<usize>,
    /// `--huge-dir`.
    pub huge_dir: Option<PathBuf>,
    /// `--vdev` specs, in order.
    pub vdevs: Vec<String>,
    /// `--log-level`, as given.
    pub log_level: Option<String>,
    /// `--no-telemetry`: no telemetry socket.
    pub no_telemetry: bool,
}

/// The EAL usage text.
pub const USAGE: &str = "\
EAL options:
  -l CORELIST            lcores to run on, e.g. 1-2 or 0,2-3
  -c COREMASK            lcores as a hexadecimal mask, e.g. 0x3
  --lcores MAP           lcore-to-CPU map, e.g. 0@1,1@0 or (0-1)@0
  --proc-type TYPE       primary (default), secondary or auto
  --file-prefix NAME     name of the process group (default: shoal)
  --no-huge              use /dev/shm with normal pages, never hugetlbfs
  -m MB                  shared memory size in megabytes (primary; default 256)
  --huge-dir DIR         hugetlbfs mount to use
  --vdev SPEC            add a virtual device, e.g. net_gen0,flows=64 (repeatable)
  --log-level LEVEL      error, warning, notice, info, debug (or 1-8; lib.eal:debug accepted)
  --no-telemetry         do not create the telemetry socket
  -n N, --no-pci, --base-virtaddr ADDR   accepted and ignored
  -h, --help             this text
Application options follow a lone `--`.";

/// Splits `args` (program name first) into EAL options and application options, and parses
/// and checks the former (every `--vdev` spec too), without joining a group. Returns the
/// options and the application's arguments (program name first).
///
/// # Errors
/// [`Error::Help`] for `-h`/`--help`, [`Error::Usage`] naming the first bad option.
pub fn parse(args: &[String]) -> Result<(EalArgs, Vec<String>), Error> {
    let prog = args.first().cloned().unwrap_or_else(|| "shoal".into());
    let (eal, app): (&[String], &[String]) = match args.iter().skip(1).position(|a| a == "--") {
        Some(i) => (&args[1..1 + i], &args[2 + i..]),
        None => (&args[1.min(args.len())..], &[]),
    };
    let mut out = EalArgs {
        file_prefix: "shoal".into(),
        ..Default::default()
    };
    let mut it = eal.iter();
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        // Short options may carry their value glued on: -l1-2, -m512.
        let (key, inline) = match (key, inline) {
            (k, None) if k.len() > 2 && !k.starts_with("--") && k.starts_with('-') => {
                (&k[..2], Some(k[2..].to_string()))
            }
            other => other,
        };
        let mut value = |name: &str| -> Result<String, Error> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Error::Usage(format!("option {name} needs a value")))
        };
        match key {
            "-h" | "--help" => return Err(Error::Help),
            "-l" => out.lcores = parse_corelist(&value("-l")?)?,
            "-c" => out.lcores = parse_coremask(&value("-c")?)?,
            "--lcores" => out.lcores = parse_lcores_map(&value("--lcores")?)?,
            "--proc-type" => {
                // Any case, as DPDK (strncasecmp).
                out.proc_type = match value("--proc-type")?.to_ascii_lowercase().as_str() {
                    "primary" => ProcTypeArg::Primary,
                    "secondary" => ProcTypeArg::Secondary,
                    "auto" => ProcTypeArg::Auto,
                    other => {
                        return Err(Error::Usage(format!(
                            "invalid --proc-type {other:?} (expected primary, secondary or auto)"
                        )))
                    }
                }
            }
            "--file-prefix" => {
                let p = value("--file-prefix")?;
                check_file_prefix(&p)?;
                out.file_prefix = p;
            }
            "--no-huge" => out.no_huge = true,
            "-m" => {
                let v = value("-m")?;
                let mb: usize = v
                    .parse()
                    .ok()
                    .filter(|&m| (4..=1 << 20).contains(&m))
                    .ok_or_else(|| {
                        Error::Usage(format!("invalid -m {v:?} (megabytes, 4 or more)"))
                    })?;
                out.memory_mb = Some(mb);
            }
            "--huge-dir" => out.huge_dir = Some(PathBuf::from(value("--huge-dir")?)),
            "--vdev" => {
                // Checked here, as DPDK's EAL fails on a device it cannot probe: a bad spec
                // stops every program before it joins a group, whether it uses ports or not.
                let v = value("--vdev")?;
                let spec =
                    crate::ethdev::spec::parse(&v).map_err(|e| Error::Usage(e.to_string()))?;
                if out
                    .vdevs
                    .iter()
                    .filter_map(|o| crate::ethdev::spec::parse(o).ok())
                    .any(|o| o.name == spec.name)
                {
                    return Err(Error::Usage(format!(
                        "two --vdev specs name the device {:?}",
                        spec.name
                    )));
                }
                if out.vdevs.len() == crate::ethdev::MAX_PORTS {
                    return Err(Error::Usage(format!(
                        "at most {} --vdev devices",
                        crate::ethdev::MAX_PORTS
                    )));
                }
                out.vdevs.push(v);
            }
            "--log-level" => out.log_level = Some(value("--log-level")?),
            "--base-virtaddr" => {
                let v = value(key)?;
                let hex = v
                    .strip_prefix("0x")
                    .or_else(|| v.strip_prefix("0X"))
                    .unwrap_or(&v);
                if hex.is_empty() || u64::from_str_radix(hex, 16).is_err() {
                    return Err(Error::Usage(format!(
                        "invalid --base-virtaddr {v:?} (a hexadecimal address, e.g. 0x100000000)"
                    )));
                }
                // Nothing in shared memory holds a pointer: any mapping address works.
                tracing::debug!(target: "shoal::eal", "ignoring {key} {v}");
            }
            "-n" | "--socket-mem" => {
                let v = value(key)?;
                tracing::debug!(target: "shoal::eal", "ignoring {key} {v}");
            }
            "--no-telemetry" => out.no_telemetry = true,
            "--no-pci" | "--no-shconf" => {
                tracing::debug!(target: "shoal::eal", "ignoring {key}");
            }
            other => {
                return Err(Error::Usage(format!("unknown EAL option {other:?}")));
            }
        }
    }
    let mut app_args = vec![prog];
    app_args.extend_from_slice(app);
    Ok((out, app_args))
}

/// Checks a `--file-prefix`: 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`,
/// so that it names one directory below the runtime directory and nothing else.
///
/// # Errors
/// [`Error::Usage`] naming the prefix and the rule.
pub fn check_file_prefix(p: &str) -> Result<(), Error> {
    if p.is_empty()
        || p.len() > 64
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || p.starts_with('.')
    {
        return Err(Error::Usage(format!(
            "invalid --file-prefix {p:?} (1-64 characters: letters, digits, - _ .)"
        )));
    }
    Ok(())
}

fn bad(what: &str, v: &str) -> Error {
    Error::Usage(format!("invalid {what} {v:?}"))
}

fn check_lcore(id: u32, what: &str, v: &str) -> Result<LcoreId, Error> {
    if (id as usize) < MAX_LCORES {
        Ok(LcoreId(id))
    } else {
        Err(Error::Usage(format!(
            "{what} {v:?}: lcore {id} is not below {MAX_LCORES}"
        )))
    }
}

/// `1-2`, `0,2-3`.
fn parse_ids(v: &str, what: &str) -> Result<Vec<u32>, Error> {
    let mut ids = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.parse().map_err(|_| bad(what, v))?;
        let b: u32 = b.parse().map_err(|_| bad(what, v))?;
        if a > b {
            return Err(bad(what, v));
        }
        for id in a..=b {
            check_lcore(id, what, v)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if ids.is_empty() {
        return Err(bad(what, v));
    }
    Ok(ids)
}

fn parse_corelist(v: &str) -> Result<Vec<(LcoreId, Option<usize>)>, Error> {
    Ok(parse_ids(v, "-l")?
        .into_iter()
        .map(|id| (LcoreId(id), None))
        .collect())
}

fn parse_coremask(v: &str) -> Result<Vec<(LcoreId, Option<usize>)>, Error> {
    let hex = v.trim_start_matches("0x").trim_start_matches("0X");
    let mask = u128::from_str_radix(hex, 16).map_err(|_| bad("-c", v))?;
    if mask == 0 {
        return Err(Error::Usage(format!("-c {v:?} selects no lcore")));
    }
    Ok((0..128u32)
        .filter(|i| mask & (1u128 << i) != 0)
        .map(|i| (LcoreId(i), None))
        .collect())
}

/// DPDK's `--lcores`: items `L`, `L1-L2`, `L@CPU`, `(L1,L2-L3)@CPU`, comma separated.
fn parse_lcores_map(v: &str) -> Result<Vec<(LcoreId, Option<usize>)>, Error> {
    let mut out: Vec<(LcoreId, Option<usize>)> = Vec::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        let (group, after) = if let Some(r) = rest.strip_prefix('(') {
            let end = r.find(')').ok_or_else(|| bad("--lcores", v))?;
            (&r[..end], &r[end + 1..])
        } else {
            let end = rest.find([',', '@']).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        let ids = parse_ids(group, "--lcores")?;
        let (cpu, after) = if let Some(r) = after.strip_prefix('@') {
            let r = r.strip_prefix('(').unwrap_or(r);
            let end = r.find([',', ')']).unwrap_or(r.len());
            let cpu: usize = r[..end].parse().map_err(|_| bad("--lcores", v))?;
            (Some(cpu), r[end..].trim_start_matches(')'))
        } else {
            (None, after)
        };
        for id in ids {
            if out.iter().any(|(l, _)| l.0 == id) {
                return Err(Error::Usage(format!(
                    "--lcores {v:?} names lcore {id} twice"
                )));
            }
            out.push((LcoreId(id), cpu));
        }
        rest = after.strip_prefix(',').unwrap_or(after).trim();
        if !after.is_empty() && !after.starts_with(',') {
            return Err(bad("--lcores", v));
        }
    }
    if out.is_empty() {
        return Err(bad("--lcores", v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        std::iter::once("prog")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect()
    }

    #[test]
    fn seed_server_command_parses() {
        let (eal, app) = parse(&args("-l 1-2 -n 4 -- -p 0x3 -n 2")).unwrap();
        assert_eq!(eal.lcores, vec![(LcoreId(1), None), (LcoreId(2), None)]);
        assert_eq!(app, args("-p 0x3 -n 2"));
        assert_eq!(eal.file_prefix, "shoal");
    }

    #[test]
    fn seed_client_command_parses() {
        let (eal, app) = parse(&args("-l 3 --proc-type=auto -- -n 0")).unwrap();
        assert_eq!(eal.proc_type, ProcTypeArg::Auto);
        assert_eq!(eal.lcores, vec![(LcoreId(3), None)]);
        assert_eq!(app, args("-n 0"));
    }

    #[test]
    fn glued_and_separate_values_are_equal() {
        let (a, _) = parse(&args("-l1-2 -m64 --file-prefix=x --proc-type secondary")).unwrap();
        assert_eq!(a.lcores.len(), 2);
        assert_eq!(a.memory_mb, Some(64));
        assert_eq!(a.file_prefix, "x");
        assert_eq!(a.proc_type, ProcTypeArg::Secondary);
    }

    #[test]
    fn coremask_and_lcores_map() {
        let (a, _) = parse(&args("-c 0x5")).unwrap();
        assert_eq!(a.lcores, vec![(LcoreId(0), None), (LcoreId(2), None)]);
        let (a, _) = parse(&args("--lcores 0@1,(2-3)@0,5")).unwrap();
        assert_eq!(
            a.lcores,
            vec![
                (LcoreId(0), Some(1)),
                (LcoreId(2), Some(0)),
                (LcoreId(3), Some(0)),
                (LcoreId(5), None)
            ]
        );
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for bad in [
            "--proc-type=ERROR",
            "--bogus",
            "-l",
            "-l 3-1",
            "-l 500",
            "-c 0x0",
            "-m lots",
            "--file-prefix=a/b",
            "--lcores (1",
            "--base-virtaddr=zz",
            "--base-virtaddr=0x",
            "--base-virtaddr=0x1ffffffffffffffff",
            "--file-prefix=../../etc",
            "--vdev=net_bogus0",
            "--vdev=net_null0,bogus=1",
            "--vdev=net_gen0,flows=x",
            "--vdev=net_null0 --vdev=net_null0,size=128",
        ] {
            match parse(&args(bad)) {
                Err(Error::Usage(_)) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(parse(&args("-h")), Err(Error::Help)));
    }

    #[test]
    fn vdevs_repeat_and_ignored_options_pass() {
        let (a, _) = parse(&args(
            "--vdev net_null0 --vdev=net_null1 --no-pci -n 4 --base-virtaddr 0x1000",
        ))
        .unwrap();
        assert_eq!(a.vdevs, vec!["net_null0", "net_null1"]);
        assert!(parse(&args("--base-virtaddr=7f0000000000")).is_ok());
    }

    #[test]
    fn vdev_errors_name_the_spec_and_the_problem() {
        match parse(&args("--vdev net_gen0,flows=x")) {
            Err(Error::Usage(m)) => {
                assert!(m.contains("net_gen0,flows=x") && m.contains("flows"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let many: String = (0..=crate::ethdev::MAX_PORTS)
            .map(|i| format!(" --vdev net_null{i}"))
            .collect();
        assert!(matches!(parse(&args(&many)), Err(Error::Usage(_))));
    }

    #[test]
    fn proc_type_is_matched_in_any_case() {
        for (v, want) in [
            ("PRIMARY", ProcTypeArg::Primary),
            ("Secondary", ProcTypeArg::Secondary),
            ("AUTO", ProcTypeArg::Auto),
        ] {
            let (a, _) = parse(&args(&format!("--proc-type={v}"))).unwrap();
            assert_eq!(a.proc_type, want, "{v}");
        }
    }
}
