//! A small option parser for the applications' own options (after `--`), in DPDK samples' style:
//! `-p 0x3`, `-n 2`, `--dist=flow`, `--count 10`; and [`check`], which every sample runs on its
//! whole command line before it does anything else.

use std::time::Duration;

use shoal::eal::{self, Eal};

/// Errors are messages for the user; the app prints them with its usage and exits 2.
pub type Result<T> = std::result::Result<T, String>;

/// Walks application arguments.
#[derive(Debug)]
pub struct Opts {
    args: Vec<String>,
    pos: usize,
    pending: Option<String>,
}

impl Opts {
    /// `args` as returned by `Eal::init` (program name first).
    pub fn new(args: &[String]) -> Opts {
        Opts {
            args: args.iter().skip(1).cloned().collect(),
            pos: 0,
            pending: None,
        }
    }

    /// The next option name (`-p`, `--dist`), or None at the end. A value written as
    /// `--dist=flow` or `-p0x3` is kept for [`Opts::value`].
    pub fn next_opt(&mut self) -> Result<Option<String>> {
        if let Some(p) = self.pending.take() {
            return Err(format!("option takes no value: {p:?}"));
        }
        let Some(a) = self.args.get(self.pos).cloned() else {
            return Ok(None);
        };
        self.pos += 1;
        if let Some(rest) = a.strip_prefix("--") {
            if let Some((k, v)) = rest.split_once('=') {
                self.pending = Some(v.to_string());
                return Ok(Some(format!("--{k}")));
            }
            return Ok(Some(a));
        }
        if a.starts_with('-') && a.len() > 2 {
            self.pending = Some(a[2..].to_string());
            return Ok(Some(a[..2].to_string()));
        }
        if a.starts_with('-') && a.len() == 2 {
            return Ok(Some(a));
        }
        Err(format!("unexpected argument {a:?}"))
    }

    /// The value of the option just returned.
    pub fn value(&mut self, name: &str) -> Result<String> {
        if let Some(v) = self.pending.take() {
            return Ok(v);
        }
        let v = self
            .args
            .get(self.pos)
            .cloned()
            .ok_or_else(|| format!("option {name} needs a value"))?;
        self.pos += 1;
        Ok(v)
    }

    /// The value parsed as seconds: a number above 0, fractions allowed.
    pub fn secs(&mut self, name: &str) -> Result<Duration> {
        let v = self.value(name)?;
        v.parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| format!("invalid {name} {v:?} (seconds, above 0)"))
    }

    /// The value parsed as a number (decimal, or hexadecimal with 0x).
    pub fn num<T: TryFrom<u64>>(&mut self, name: &str) -> Result<T> {
        let v = self.value(name)?;
        let n = parse_num(&v).ok_or_else(|| format!("invalid number for {name}: {v:?}"))?;
        T::try_from(n).map_err(|_| format!("value out of range for {name}: {v:?}"))
    }
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

    fn opts(s: &str) -> Opts {
        let v: Vec<String> = std::iter::once("prog")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect();
        Opts::new(&v)
    }

    #[test]
    fn parses_dpdk_sample_options() {
        let mut o = opts("-p 0x3 -n2 --dist=flow --count 7");
        assert_eq!(o.next_opt().unwrap().as_deref(), Some("-p"));
        assert_eq!(o.num::<u32>("-p").unwrap(), 3);
        assert_eq!(o.next_opt().unwrap().as_deref(), Some("-n"));
        assert_eq!(o.num::<u16>("-n").unwrap(), 2);
        assert_eq!(o.next_opt().unwrap().as_deref(), Some("--dist"));
        assert_eq!(o.value("--dist").unwrap(), "flow");
        assert_eq!(o.next_opt().unwrap().as_deref(), Some("--count"));
        assert_eq!(o.num::<u64>("--count").unwrap(), 7);
        assert_eq!(o.next_opt().unwrap(), None);
    }

    #[test]
    fn errors_are_messages() {
        assert!(opts("-n").num::<u32>("-n").is_err());
        let mut o = opts("-n x");
        o.next_opt().unwrap();
        assert!(o.num::<u32>("-n").is_err());
        assert!(opts("stray").next_opt().is_err());
        let mut o = opts("-n 70000");
        o.next_opt().unwrap();
        assert!(o.num::<u16>("-n").is_err());
        for bad in ["-1", "0", "x", "inf", "NaN", "1e300"] {
            let mut o = opts(&format!("--duration {bad}"));
            o.next_opt().unwrap();
            assert!(o.secs("--duration").is_err(), "{bad}");
        }
        let mut o = opts("--duration 0.5");
        o.next_opt().unwrap();
        assert_eq!(o.secs("--duration").unwrap(), Duration::from_millis(500));
    }
}
