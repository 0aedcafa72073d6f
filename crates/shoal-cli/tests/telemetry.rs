//! Telemetry against a live `mp_server` (run as `shoal mp_server`): DPDK's own client,
//! `dpdk-telemetry.py -f <prefix>`, unchanged; a raw SEQPACKET client sending malformed
//! requests; `shoal telemetry` and its Prometheus output read by a Prometheus parser.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use shoal_testkit::{eventually, Group, Proc};

const T: Duration = Duration::from_secs(30);
const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");
const SCRIPT: &str = "/usr/bin/dpdk-telemetry.py";
const RING: &str = "MProc_Client_RX_0";

/// One server at a time: each polls two generator ports.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[allow(unsafe_code)]
fn getuid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Where `dpdk-telemetry.py -f <prefix>` looks, computed as the script computes it.
fn dpdk_dir(prefix: &str) -> PathBuf {
    let run = match std::env::var("RUNTIME_DIRECTORY") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ if getuid() == 0 => PathBuf::from("/var/run"),
        _ => PathBuf::from(std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into())),
    };
    run.join("dpdk").join(prefix)
}

/// Removes the group's directory under DPDK's run dir even when a test fails.
struct DpdkDir(PathBuf);

impl Drop for DpdkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `mp_server` on two generator ports with one client ring, and the guard of DPDK's directory.
fn server(g: &Group) -> (Proc, DpdkDir) {
    let dir = DpdkDir(dpdk_dir(g.prefix()));
    let mut s = g.spawn(
        SHOAL,
        &[
            "mp_server",
            "-l",
            "0",
            "--no-huge",
            "-m",
            "64",
            "--vdev",
            "net_gen0,rate=200000",
            "--vdev",
            "net_gen1,rate=200000",
            "--",
            "-n",
            "1",
            "--stats-interval",
            "0",
        ],
    );
    s.wait_for("server ready", T);
    (s, dir)
}

/// Whether DPDK's script can run here; if not, the test is skipped (a failure under CI).
#[track_caller]
fn script_available() -> bool {
    if !Path::new(SCRIPT).exists() {
        shoal_testkit::skip_or_fail(&format!(
            "{SCRIPT} is missing (Debian package dpdk-dev; ci/setup.sh installs the packages of ci/apt-packages.txt)"
        ));
        return false;
    }
    shoal_testkit::require_tool("python3")
}

/// A SEQPACKET client written against the kernel directly, independent of the server's code.
struct Raw(OwnedFd);

#[allow(unsafe_code)]
impl Raw {
    fn connect(path: &Path) -> std::io::Result<Raw> {
        // SAFETY: plain syscall, no pointers.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_un is plain data; all zeroes is valid.
        let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let p = path.as_os_str().as_bytes();
        assert!(p.len() < sa.sun_path.len());
        for (d, s) in sa.sun_path.iter_mut().zip(p) {
            *d = *s as libc::c_char;
        }
        // A read never waits longer than this: a silent server fails the test, not hangs it.
        let tv = libc::timeval {
            tv_sec: 30,
            tv_usec: 0,
        };
        // SAFETY: tv is a live timeval and the length is its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        // SAFETY: sa is a valid sockaddr_un of the given size.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Raw(fd))
    }

    fn send(&self, msg: &[u8]) {
        // SAFETY: msg is valid for reads of its length.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        assert_eq!(
            n,
            msg.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Sends without waiting; false once the message cannot go (queue full, or closed).
    fn send_nowait(&self, msg: &[u8]) -> bool {
        // SAFETY: msg is valid for reads of its length.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        n == msg.len() as isize
    }

    /// One message; None when the server closed the connection.
    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n >= 0, "recv: {}", std::io::Error::last_os_error());
        buf.truncate(n as usize);
        (n > 0).then_some(buf)
    }

    fn recv_json(&self) -> Value {
        let m = self.recv().expect("an answer, not a closed connection");
        serde_json::from_slice(&m)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&m)))
    }

    fn ask(&self, req: &str) -> Value {
        self.send(req.as_bytes());
        self.recv_json()
    }
}

/// Waits (bounded) until port 0 has received packets.
fn wait_for_traffic(c: &Raw) {
    eventually("packets on port 0", T, || {
        c.ask("/ethdev/stats,0")["/ethdev/stats"]["ipackets"].as_u64() > Some(0)
    });
}

fn connect_dpdk(g: &Group) -> Raw {
    let c = Raw::connect(&dpdk_dir(g.prefix()).join("dpdk_telemetry.v2")).expect("connect");
    let hello = c.recv_json();
    assert_eq!(hello["max_output_len"], 16384, "{hello}");
    c
}

#[test]
fn dpdk_telemetry_py_reads_a_shoal_primary() {
    if !script_available() {
        return;
    }
    let _serial = serial();
    let g = Group::new("tel-py");
    let (mut srv, dir) = server(&g);
    let link = dir.0.join("dpdk_telemetry.v2");
    assert!(
        std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "{} is not a link",
        link.display()
    );
    wait_for_traffic(&connect_dpdk(&g));

    let mut py = g.spawn_raw(SCRIPT, &["-f", g.prefix()]);
    for cmd in [
        "/",
        "/info",
        "/ethdev/list",
        "/ethdev/stats,0",
        "/ring/list",
        "/mempool/info,mbuf_pool",
        "/no/such/command",
        "/help,/ethdev/stats",
    ] {
        py.send_line(cmd);
    }
    py.close_stdin();
    assert_eq!(py.wait_exit(T), Some(0), "{}", py.output());
    let out = py.output();
    let answers: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(answers.len(), 8, "{out}");

    let cmds = answers[0]["/"].as_array().expect("a list");
    for c in [
        "/",
        "/help",
        "/info",
        "/eal/params",
        "/eal/app_params",
        "/eal/lcore/list",
        "/eal/memzone_list",
        "/eal/memzone_info",
        "/ethdev/list",
        "/ethdev/info",
        "/ethdev/stats",
        "/ethdev/xstats",
        "/ethdev/link_status",
        "/ring/list",
        "/ring/info",
        "/mempool/list",
        "/mempool/info",
        "/shoal/snapshot",
        "/shoal/processes",
        "/shoal/audit",
    ] {
        assert!(cmds.contains(&json!(c)), "{c} missing from {cmds:?}");
    }
    let info = &answers[1]["/info"];
    assert_eq!(info["pid"], srv.pid(), "{info}");
    assert_eq!(info["max_output_len"], 16384);
    let version = info["version"].as_str().unwrap();
    assert!(
        version.starts_with("shoal ") && version.ends_with("(DPDK 22.11 telemetry v2)"),
        "{version}"
    );
    assert_eq!(answers[2], json!({"/ethdev/list": [0, 1]}));
    let stats = &answers[3]["/ethdev/stats"];
    assert!(stats["ipackets"].as_u64() > Some(0), "{stats}");
    for f in [
        "ipackets",
        "opackets",
        "ibytes",
        "obytes",
        "imissed",
        "ierrors",
        "oerrors",
        "rx_nombuf",
    ] {
        assert!(stats[f].is_u64(), "{f} missing from {stats}");
    }
    assert_eq!(stats["q_ipackets"].as_array().map(Vec::len), Some(16));
    assert!(
        answers[4]["/ring/list"]
            .as_array()
            .unwrap()
            .contains(&json!(RING)),
        "{}",
        answers[4]
    );
    let pool = &answers[5]["/mempool/info"];
    assert_eq!(pool["name"], "mbuf_pool", "{pool}");
    assert_eq!(pool["size"], 16383);
    assert_eq!(pool["cache_size"], 256);
    for f in [
        "pool_id",
        "flags",
        "socket_id",
        "elt_size",
        "header_size",
        "trailer_size",
        "private_data_size",
        "ops_index",
        "populated_size",
        "total_cache_count",
        "common_pool_count",
        "mz_name",
        "mz_len",
    ] {
        assert!(!pool[f].is_null(), "{f} missing from {pool}");
    }
    assert_eq!(answers[6], json!({"/no/such/command": null}));
    assert_eq!(
        answers[7],
        json!({"/help": {"/ethdev/stats": "Returns the common stats for a port. Parameters: int port_id"}})
    );

    // `-l` lists the group among the file-prefixes with a telemetry socket.
    let mut list = g.spawn_raw(SCRIPT, &["-l"]);
    assert_eq!(list.wait_exit(T), Some(0));
    assert!(
        list.output().lines().any(|l| l == g.prefix()),
        "{}",
        list.output()
    );

    // A clean stop removes the socket and the link.
    let (code, out) = srv.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link left behind"
    );
    assert!(!dir.0.exists(), "{} left behind", dir.0.display());
    let rt = shoal_testkit::runtime_dir(g.prefix());
    assert!(!rt.join("dpdk_telemetry.v2").exists());
    assert!(!rt.join("telemetry").exists());
}

#[test]
fn raw_seqpacket_client_survives_malformed_requests() {
    let _serial = serial();
    let g = Group::new("tel-raw");
    let (mut srv, dir) = server(&g);
    let path = dir.0.join("dpdk_telemetry.v2");
    let c = Raw::connect(&path).expect("connect through DPDK's path");
    let hello = c.recv_json();
    let keys: Vec<&String> = hello.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["max_output_len", "pid", "version"], "{hello}");
    assert_eq!(hello["pid"], srv.pid());
    assert!(hello["version"]
        .as_str()
        .unwrap()
        .ends_with("(DPDK 22.11 telemetry v2)"));

    // Not UTF-8: null, and the connection goes on.
    c.send(b"/ethdev/list,\xff\xfe");
    assert_eq!(c.recv_json(), json!({"/ethdev/list": null}));
    c.send(b"\xff/x");
    let v = c.recv_json();
    assert_eq!(v.as_object().map(|m| m.len()), Some(1), "{v}");
    assert!(v.as_object().unwrap().values().all(Value::is_null), "{v}");
    // Longer than a request may be (1023 bytes): null.
    let long = format!("/{}", "a".repeat(4000));
    c.send(long.as_bytes());
    assert_eq!(c.recv_json(), json!({ &long[..56]: null }));
    // A command of 56 bytes or more is unknown, as in DPDK.
    let long_cmd = format!("/{}", "b".repeat(60));
    assert_eq!(c.ask(&long_cmd), json!({ &long_cmd[..56]: null }));
    // Bad or missing parameters.
    for req in [
        "/ethdev/stats",
        "/ethdev/stats,x",
        "/ethdev/stats,9",
        "/eal/memzone_info,99",
    ] {
        let cmd = req.split(',').next().unwrap();
        assert_eq!(c.ask(req), json!({ cmd: null }), "{req}");
    }
    assert_eq!(c.ask("/help,/nope"), json!({"/help": null}));
    assert_eq!(c.ask("/ring/info,nope"), json!({"/ring/info": {}}));
    // Still serving.
    assert_eq!(c.ask("/ethdev/list"), json!({"/ethdev/list": [0, 1]}));
    let ring = c.ask(&format!("/ring/info,{RING}"));
    assert_eq!(ring["/ring/info"]["producer_type"], "SP", "{ring}");
    assert_eq!(ring["/ring/info"]["mask"], "0xfff", "{ring}");
    let audit = c.ask("/shoal/audit,mbuf_pool");
    assert_eq!(audit["/shoal/audit"]["ok"], true, "{audit}");
    let procs = c.ask("/shoal/processes");
    assert_eq!(procs["/shoal/processes"][0]["alive"], true, "{procs}");
    // Every answer fits DPDK's limit.
    c.send(b"/shoal/snapshot");
    let snap = c.recv().unwrap();
    assert!(snap.len() < 16384);
    serde_json::from_slice::<Value>(&snap).expect("valid JSON even when cut");
    let t = c.ask("/shoal/telemetry");
    assert!(
        t["/shoal/telemetry"]["malformed"].as_u64() >= Some(3),
        "{t}"
    );

    // Ten clients at once; the eleventh is accepted and closed without a greeting.
    let others: Vec<Raw> = (0..9).map(|_| connect_dpdk(&g)).collect();
    let extra = Raw::connect(&path).expect("accepted");
    assert_eq!(extra.recv(), None, "an eleventh client was served");
    drop(others);
    // Once the others have gone, a new client is served (the server notices in its own time).
    eventually("a client served after the others left", T, || {
        let again = Raw::connect(&path).expect("connect");
        again
            .recv()
            .is_some_and(|hello| serde_json::from_slice::<Value>(&hello).is_ok())
    });
    assert_eq!(c.ask("/ethdev/list"), json!({"/ethdev/list": [0, 1]}));
    // A client that asks and never reads holds nothing up: the server still stops cleanly.
    let hog = connect_dpdk(&g);
    let sent = (0..100_000)
        .take_while(|_| hog.send_nowait(b"/shoal/snapshot"))
        .count();
    assert!(
        sent < 100_000,
        "the server read everything and answered nothing?"
    );
    let (code, out) = srv.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn shoal_telemetry_answers_and_prints_prometheus_text() {
    use prometheus_parse::{LineInfo, Scrape, Value as P};
    let _serial = serial();
    let g = Group::new("tel-prom");
    let (mut srv, _dir) = server(&g);
    wait_for_traffic(&connect_dpdk(&g));

    let mut q = g.spawn_raw(
        SHOAL,
        &[
            "telemetry",
            "--file-prefix",
            g.prefix(),
            "/ethdev/list",
            "/nope",
        ],
    );
    assert_eq!(q.wait_exit(T), Some(0), "{}", q.output());
    assert_eq!(q.output(), "{\"/ethdev/list\":[0,1]}\n{\"/nope\":null}");
    let mut q = g.spawn_raw(SHOAL, &["telemetry", "--file-prefix", g.prefix()]);
    q.send_line("/mempool/list");
    q.close_stdin();
    assert_eq!(q.wait_exit(T), Some(0), "{}", q.output());
    assert_eq!(q.output(), "{\"/mempool/list\":[\"mbuf_pool\"]}");

    let mut p = g.spawn_raw(
        SHOAL,
        &["telemetry", "--file-prefix", g.prefix(), "--prometheus"],
    );
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
    let text = p.output();
    // Every line is a comment the format knows or a sample (the parser skips what it cannot read).
    for l in text.lines() {
        assert!(
            matches!(
                LineInfo::parse(l),
                LineInfo::Doc { .. } | LineInfo::Type { .. } | LineInfo::Sample { .. }
            ),
            "not exposition format: {l:?}"
        );
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let find = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .unwrap_or_else(|| panic!("no {name}{{{}={:?}}} in:\n{text}", label.0, label.1))
            .value
            .clone()
    };
    match find("shoal_port_rx_packets_total", ("port", "0")) {
        P::Counter(v) => assert!(v > 0.0, "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        find("shoal_port_link_up", ("name", "net_gen1")),
        P::Gauge(1.0)
    );
    assert_eq!(
        find("shoal_mempool_size", ("pool", "mbuf_pool")),
        P::Gauge(16383.0)
    );
    assert_eq!(
        find("shoal_ring_capacity", ("ring", RING)),
        P::Gauge(4095.0)
    );
    assert_eq!(
        find("shoal_process_alive", ("pid", &srv.pid().to_string())),
        P::Gauge(1.0)
    );
    for s in &scrape.samples {
        assert!(
            scrape.docs.contains_key(&s.metric),
            "no HELP for {}",
            s.metric
        );
    }
    let (code, out) = srv.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");

    // No primary: a clear error and status 1.
    let mut p = g.spawn_raw(
        SHOAL,
        &["telemetry", "--file-prefix", g.prefix(), "--prometheus"],
    );
    assert_eq!(p.wait_exit(T), Some(1));
    assert!(p.output().contains("no telemetry socket"), "{}", p.output());
}

#[test]
fn a_killed_primarys_link_is_removed_by_the_next_primary() {
    let _serial = serial();
    let live = Group::new("tel-live");
    let (mut alive, alive_dir) = server(&live);
    let a = Group::new("tel-dead");
    let (mut dead, dead_dir) = server(&a);
    let link = dead_dir.0.join("dpdk_telemetry.v2");
    dead.kill9();
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "a SIGKILLed primary cannot remove its link"
    );
    let b = Group::new("tel-next");
    let (mut next, next_dir) = server(&b);
    assert!(std::fs::symlink_metadata(&link).is_err(), "stale link kept");
    assert!(!dead_dir.0.exists(), "{} kept", dead_dir.0.display());
    assert!(next_dir.0.join("dpdk_telemetry.v2").exists());
    // A live primary's link stays, and nobody connected to it to find out.
    let c = connect_dpdk(&live);
    let t = c.ask("/shoal/telemetry");
    assert_eq!(t["/shoal/telemetry"]["connections"], 1, "{t}");
    drop(c);
    for s in [&mut next, &mut alive] {
        let (code, out) = s.stop(libc::SIGINT, T);
        assert_eq!(code, Some(0), "{out}");
    }
    drop(alive_dir);
}
