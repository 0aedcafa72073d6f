//! The applications' own options (after `--`), parsed with clap; and [`check`], which every
//! sample runs on its whole command line before it does anything else.
//!
//! The EAL options before `--` keep DPDK's syntax and the EAL's own parser
//! ([`eal::parse_args`]); what follows `--` is an ordinary clap command, so `-p 0x3`, `-n2`,
//! `--dist=flow` and `--help` work as everywhere. A clap error becomes one line (`prog: what is
//! wrong`) followed by the usage, with exit status 2, as the EAL's own errors.

use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use shoal::eal::{self, Eal};

/// Errors are messages for the user; the app prints them with its usage and exits 2.
pub type Result<T> = std::result::Result<T, String>;

/// Parses application arguments (program name first) into `T`. `--help` prints the help and
/// exits 0; any other problem is returned as one line.
pub fn parse<T: clap::Parser>(args: &[String]) -> Result<T> {
    T::try_parse_from(args).map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            std::process::exit(0)
        }
        _ => one_line(&e),
    })
}

/// The help text of `T`, as `--help` prints it (for the EAL's `--help` and for errors).
pub fn usage<T: clap::CommandFactory>() -> String {
    T::command()
        .render_help()
        .to_string()
        .trim_end()
        .to_string()
}

/// A clap error as one line without the `error: ` prefix. A value refused by one of our value
/// parsers reads `invalid --NAME "VALUE": why`, the style of the EAL's messages.
pub fn one_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::ValueValidation {
        let s = |k| match e.get(k) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        };
        if let (Some(arg), Some(value)) = (s(ContextKind::InvalidArg), s(ContextKind::InvalidValue))
        {
            let arg = arg.split_whitespace().next().unwrap_or(&arg).to_string();
            let why = std::error::Error::source(e).map_or(String::new(), |w| format!(": {w}"));
            return format!("invalid {arg} {value:?}{why}");
        }
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Value parser: seconds, a number above 0, fractions allowed.
pub fn secs(v: &str) -> Result<Duration> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| "seconds, above 0".to_string())
}

/// Value parser: a number, decimal or hexadecimal with 0x, that fits `T`.
pub fn num<T: TryFrom<u64>>(v: &str) -> Result<T> {
    let n = parse_num(v).ok_or("not a number")?;
    T::try_from(n).map_err(|_| "out of range".to_string())
}

/// Value parser: milliseconds.
pub fn millis(v: &str) -> Result<Duration> {
    num(v).map(Duration::from_millis)
}

/// Value parser: microseconds.
pub fn micros(v: &str) -> Result<Duration> {
    num(v).map(Duration::from_micros)
}

/// Value parser: a port mask, hexadecimal with or without 0x (DPDK's `-p`); 0 is allowed here,
/// the application says what it thinks of it.
pub fn portmask(v: &str) -> Result<u64> {
    let h = v.trim_start_matches("0x").trim_start_matches("0X");
    u64::from_str_radix(h, 16).map_err(|_| "not a hexadecimal mask".to_string())
}

/// Decimal, or hexadecimal with a 0x prefix.
pub fn parse_num(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Prints `msg` and the usage, and exits 2 (the apps' answer to bad options).
pub fn usage_exit(prog: &str, usage: &str, msg: &str) -> ! {
    eprintln!("{prog}: {msg}\n\n{usage}");
    std::process::exit(2)
}

/// Checks a whole command line (program name first) before anything else happens: the EAL
/// options, every `--vdev` spec among them ([`eal::parse_args`]), then the application's own
/// options with `parse`. A problem is one line on stderr, then the usage, and exit status 2;
/// `--help` prints the usage and exits 0. Returns what `parse` made.
pub fn check<C>(args: &[String], usage: &str, parse: impl FnOnce(&[String]) -> Result<C>) -> C {
    let prog = args.first().map_or("shoal", String::as_str);
    let app = match eal::parse_args(args) {
        Ok((_, app)) => app,
        Err(e) => eal::exit_with(prog, &e, usage),
    };
    parse(&app).unwrap_or_else(|e| usage_exit(prog, usage, &e))
}

/// [`check`], then joins the group (or prints why it cannot and exits).
pub fn init<C>(
    args: Vec<String>,
    usage: &str,
    parse: impl FnOnce(&[String]) -> Result<C>,
) -> (Eal, C) {
    let cfg = check(&args, usage, parse);
    let (eal, _) = eal::init_or_exit_with(args, usage);
    (eal, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Options in the samples' style.
    #[derive(Parser, Debug)]
    #[command(name = "prog")]
    struct Sample {
        #[arg(short = 'p', value_parser = portmask)]
        portmask: Option<u64>,
        #[arg(short = 'n', value_parser = num::<u16>)]
        n: Option<u16>,
        #[arg(long)]
        dist: Option<String>,
        #[arg(long, value_parser = num::<u64>)]
        count: Option<u64>,
        #[arg(long, value_parser = secs, allow_negative_numbers = true)]
        duration: Option<Duration>,
    }

    fn sample(s: &str) -> Result<Sample> {
        let v: Vec<String> = std::iter::once("prog")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect();
        parse(&v)
    }

    #[test]
    fn parses_dpdk_sample_options() {
        let o = sample("-p 0x3 -n2 --dist=flow --count 7").unwrap();
        assert_eq!(o.portmask, Some(3));
        assert_eq!(o.n, Some(2));
        assert_eq!(o.dist.as_deref(), Some("flow"));
        assert_eq!(o.count, Some(7));
        assert_eq!(sample("-p ff").unwrap().portmask, Some(0xff));
        assert_eq!(sample("--count 0x10").unwrap().count, Some(16));
    }

    #[test]
    fn errors_are_one_line() {
        for (args, want) in [
            ("-n", "a value is required for '-n <N>'"),
            ("-n x", "invalid -n \"x\": not a number"),
            ("stray", "unexpected argument 'stray'"),
            ("-n 70000", "invalid -n \"70000\": out of range"),
            ("--bogus", "unexpected argument '--bogus'"),
        ] {
            let e = sample(args).unwrap_err();
            assert!(e.contains(want), "{args}: {e}");
            assert!(!e.contains('\n'), "{args}: {e}");
        }
        for bad in ["-1", "0", "x", "inf", "NaN", "1e300"] {
            let e = sample(&format!("--duration {bad}")).unwrap_err();
            assert!(e.starts_with("invalid --duration"), "{bad}: {e}");
        }
        let o = sample("--duration 0.5").unwrap();
        assert_eq!(o.duration, Some(Duration::from_millis(500)));
    }
}
