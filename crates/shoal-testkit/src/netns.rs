//! Network namespaces and veth pairs for kernel-interface tests. Each test makes its own
//! namespace with a unique name; dropping it deletes the namespace and its interfaces.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{is_root, skip_or_fail};

/// A network namespace owned by one test.
pub struct NetNs {
    /// Its name, as `ip netns` knows it.
    pub name: String,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl NetNs {
    /// A fresh namespace, or `None` where the machine refuses (not root): then the test has
    /// been skipped ([`skip_or_fail`]) and returns.
    #[track_caller]
    pub fn new(tag: &str) -> Option<NetNs> {
        if !is_root() {
            skip_or_fail("not root; network namespaces need root");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "shoal-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = run(&["ip", "netns", "add", &name]) {
            skip_or_fail(&format!("cannot create a network namespace: {e}"));
            return None;
        }
        let ns = NetNs { name };
        let _ = ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        let _ = ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        let _ = ns.exec(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Sends the frames of capture `file` out of `iface` with tcpreplay (20 kpps), waiting
    /// until it has sent them all.
    pub fn tcpreplay(&self, iface: &str, file: &Path) -> Result<(), String> {
        tcpreplay(&self.name, iface, file)
    }

    /// A veth pair `a`/`b` inside the namespace, both up.
    pub fn veth(&self, a: &str, b: &str) -> Result<(), String> {
        self.exec(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])?;
        self.exec(&["ip", "link", "set", a, "up"])?;
        self.exec(&["ip", "link", "set", b, "up"])?;
        Ok(())
    }

    /// Moves the calling thread into the namespace (its children and the threads it starts
    /// follow it).
    pub fn enter(&self) -> Result<(), String> {
        let f = std::fs::File::open(format!("/var/run/netns/{}", self.name))
            .map_err(|e| format!("open netns: {e}"))?;
        #[allow(unsafe_code)]
        // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread's network
        // namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// A file of /sys/class/net/IFACE as seen inside the namespace (`ip netns exec` mounts
    /// the namespace's own /sys).
    pub fn read_sys(&self, iface: &str, file: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "cat"])
            .arg(format!("/sys/class/net/{iface}/{file}"))
            .output()
            .expect("cat");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Packets received on an interface in the namespace, as the kernel counts them.
    pub fn rx_packets(&self, iface: &str) -> u64 {
        self.read_sys(iface, "statistics/rx_packets")
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// [`NetNs::tcpreplay`] in the namespace named `ns`, for a thread that does not own it.
pub fn tcpreplay(ns: &str, iface: &str, file: &Path) -> Result<(), String> {
    let file = file.to_str().ok_or("capture path is not UTF-8")?;
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "tcpreplay",
        "-q",
        "-i",
        iface,
        "--pps=20000",
        file,
    ])
}
