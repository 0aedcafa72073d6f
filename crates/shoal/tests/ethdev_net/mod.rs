//! Network namespaces and veth pairs for kernel-interface tests. Each test makes its own
//! namespace with a unique name; dropping it deletes the namespace and its interfaces.
#![allow(unsafe_code)] // setns(2) to move the test thread into the namespace
#![allow(dead_code)]

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace owned by one test.
pub struct NetNs {
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
    /// A fresh namespace, or `None` (with the reason printed) where the machine refuses.
    pub fn new(tag: &str) -> Option<NetNs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIP: not root; network namespace tests need root");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "shoal-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = run(&["ip", "netns", "add", &name]) {
            println!("SKIP: cannot create a network namespace: {e}");
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

/// True when a program can be run.
pub fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty())
}
