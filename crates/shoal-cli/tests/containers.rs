//! Groups that span PID and mount namespaces, as containers of one pod do: a client in another
//! PID namespace (where it is pid 1, a pid that names `init` in the primary's namespace) is
//! told alive or dead by its liveness lock, never by its pid.
//!
//! Namespaces need root; without it these tests say so and pass, except in CI (`CI=true`),
//! where a missing privilege is a failure.

use std::path::PathBuf;
use std::time::Duration;

use shoal_testkit::{skip_or_fail, Group, Proc};

const T: Duration = Duration::from_secs(30);
const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// True when namespaces can be made here; otherwise the test has been skipped
/// ([`skip_or_fail`]: it fails in CI) and should return.
#[track_caller]
fn can_unshare() -> bool {
    let ok = shoal_testkit::is_root()
        && std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        skip_or_fail("creating PID namespaces needs root and unshare(1)");
    }
    ok
}

/// Generator ports at a modest rate, so that tests side by side on two CPUs stay fair.
const GEN: [&str; 4] = [
    "--vdev",
    "net_gen0,flows=64,rate=100000",
    "--vdev",
    "net_gen1,flows=64,rate=100000",
];

fn server(g: &Group, clients: usize) -> Proc {
    let n = clients.to_string();
    let mut args = vec!["mp_server", "-l", "0", "--no-huge", "-m", "64"];
    args.extend_from_slice(&GEN);
    args.extend_from_slice(&[
        "--",
        "-n",
        &n,
        "--stats-interval",
        "200",
        "--mbufs",
        "8191",
        "--client-timeout",
        "300",
    ]);
    let mut s = g.spawn(SHOAL, &args);
    s.wait_for("server ready", T);
    s
}

/// Client `id` in a PID namespace of its own (it is pid 1 there), with `/proc` remounted, killed
/// with the `unshare` process that holds the namespace.
fn client_in_pid_namespace(g: &Group, id: usize) -> Proc {
    let lcore = (id + 1).to_string();
    let ids = id.to_string();
    g.spawn(
        "unshare",
        &[
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child=SIGKILL",
            SHOAL,
            "mp_client",
            "-l",
            &lcore,
            "--proc-type=secondary",
            "--",
            "-n",
            &ids,
        ],
    )
}

/// Client `id` in its own PID *and* mount namespace, seeing nothing of the host's /dev/shm and
/// /var/run/shoal but the group's segment file and runtime directory, bind-mounted where shoal
/// looks for them (a pod whose containers share only those volumes).
fn client_in_container(g: &Group, id: usize) -> Proc {
    let rt = runtime_dir(g.prefix());
    let seg = format!("/dev/shm/shoal_{}_seg0", g.prefix());
    let script = format!(
        "set -e
         mount --make-rprivate /
         keep=$(mktemp -d)
         mkdir $keep/rt $keep/shm
         mount --bind {rt} $keep/rt
         mount --bind /dev/shm $keep/shm
         mount -t tmpfs tmpfs /var/run/shoal
         mount -t tmpfs tmpfs /dev/shm
         mkdir -p {rt}
         mount --bind $keep/rt {rt}
         touch {seg}
         mount --bind $keep/shm/shoal_{prefix}_seg0 {seg}
         echo visible: $(ls /var/run/shoal) $(ls /dev/shm)
         exec {shoal} mp_client -l {lcore} --proc-type=secondary --file-prefix {prefix} --log-level warning -- -n {id}",
        rt = rt.display(),
        prefix = g.prefix(),
        shoal = SHOAL,
        lcore = id + 1,
    );
    g.spawn_raw(
        "unshare",
        &[
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child=SIGKILL",
            "sh",
            "-c",
            &script,
        ],
    )
}

fn runtime_dir(prefix: &str) -> PathBuf {
    shoal_testkit::runtime_dir(prefix)
}

/// `shoal info`'s process lines: (pid column, alive column).
fn info_processes(g: &Group) -> Vec<(String, String)> {
    let mut info = Group::spawn_raw(g, SHOAL, &["info", "--file-prefix", g.prefix()]);
    assert_eq!(info.wait_exit(T), Some(0), "{}", info.output());
    let text = info.output();
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .filter(|w| w.len() == 6 && matches!(w[2], "primary" | "secondary"))
        .map(|w| (w[1].to_string(), w[4].to_string()))
        .collect()
}

fn final_in_use(out: &str) -> u64 {
    let l = out
        .lines()
        .find(|l| l.starts_with("Final:"))
        .unwrap_or_else(|| panic!("no Final line:\n{out}"));
    l.rsplit(' ').next().unwrap().parse().unwrap()
}

fn stats_lines(p: &mut Proc) -> usize {
    p.output()
        .lines()
        .filter(|l| l.starts_with("Client  0:"))
        .count()
}

/// Two clients, each pid 1 in a PID namespace of its own, forward side by side: nothing is
/// reclaimed from either, `shoal info` lists them alive, and their IPC sockets do not collide.
#[test]
fn clients_in_other_pid_namespaces_forward_and_nothing_is_reclaimed() {
    if !can_unshare() {
        return;
    }
    let g = Group::new("ns-fwd");
    let mut s = server(&g, 2);
    let mut cs = [
        client_in_pid_namespace(&g, 0),
        client_in_pid_namespace(&g, 1),
    ];
    s.wait_for("Client process 0 connected (pid 1)", T);
    s.wait_for("Client process 1 connected (pid 1)", T);
    // Three seconds of forwarding (15 statistics intervals).
    let before = stats_lines(&mut s);
    s.wait_for_nth("Client  0:", before + 15, T);
    let procs = info_processes(&g);
    assert_eq!(procs.len(), 3, "{procs:?}");
    assert!(procs.iter().all(|(_, alive)| alive == "yes"), "{procs:?}");
    assert_eq!(
        procs.iter().filter(|(pid, _)| pid == "1*").count(),
        2,
        "the clients' pids are shown as ones of another namespace: {procs:?}"
    );
    let (code, sout) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{sout}");
    assert_eq!(final_in_use(&sout), 0, "{sout}");
    for bad in ["dead process", "died", "no mbuf in flight"] {
        assert!(!sout.contains(bad), "server: {bad:?}:\n{sout}");
    }
    for (i, c) in cs.iter_mut().enumerate() {
        assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
        let cout = c.output();
        for bad in ["dead process", "died", "no mbuf in flight", "error"] {
            assert!(!cout.contains(bad), "client {i}: {bad:?}:\n{cout}");
        }
        let rx: u64 = cout
            .lines()
            .find(|l| l.starts_with(&format!("Client {i}: rx")))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no client exit line:\n{cout}"));
        assert!(rx > 0, "{cout}");
    }
}

/// The dead client was pid 1 in its namespace, and pid 1 lives in the server's namespace (its
/// init): a pid check would call the dead client alive forever.
#[test]
fn a_killed_client_in_another_pid_namespace_is_detected_though_its_pid_lives_here() {
    if !can_unshare() {
        return;
    }
    let g = Group::new("ns-kill");
    let mut s = server(&g, 1);
    let mut c = client_in_pid_namespace(&g, 0);
    s.wait_for("Client process 0 connected (pid 1)", T);
    let before = stats_lines(&mut s);
    s.wait_for_nth("Client  0:", before + 3, T);
    assert!(std::path::Path::new("/proc/1").exists());
    c.kill9();
    s.wait_for("Client process 0 (pid 1) died", T);
    // The reaper frees the slot; the process table then holds the server alone.
    // Its IPC socket goes with it.
    let deadline = std::time::Instant::now() + T;
    let sockets = || {
        std::fs::read_dir(runtime_dir(g.prefix()))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("mp_socket_"))
            .count()
    };
    while info_processes(&g).len() != 1 || sockets() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "slot or socket never freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new client with the same id, in a namespace of its own again, is taken back.
    let mut c2 = client_in_pid_namespace(&g, 0);
    s.wait_for_nth("Client process 0 connected (pid 1)", 2, T);
    let (code, sout) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{sout}");
    assert_eq!(c2.wait_exit(T), Some(0), "{}", c2.output());
    assert_eq!(
        final_in_use(&sout),
        0,
        "the killed client's buffers came back:\n{sout}"
    );
}

#[test]
fn a_killed_primary_is_noticed_by_a_client_in_another_pid_namespace() {
    if !can_unshare() {
        return;
    }
    let g = Group::new("ns-prim");
    let mut s = server(&g, 1);
    let mut c = client_in_pid_namespace(&g, 0);
    s.wait_for("Client process 0 connected (pid 1)", T);
    s.kill9();
    assert_eq!(c.wait_exit(T), Some(3), "{}", c.output());
    assert!(c.output().contains("has exited"), "{}", c.output());
}

#[test]
fn a_client_in_a_container_sharing_only_the_group_files_works_and_its_death_is_seen() {
    if !can_unshare() {
        return;
    }
    let g = Group::new("ns-box");
    let mut s = server(&g, 1);
    let mut c0 = client_in_container(&g, 0);
    let line = c0.wait_for("visible:", T);
    // Only this group's files are there.
    assert_eq!(
        line.split_whitespace().count(),
        3,
        "the container sees more than the group's files: {line}"
    );
    s.wait_for("Client process 0 connected (pid 1)", T);
    let before = stats_lines(&mut s);
    s.wait_for_nth("Client  0:", before + 10, T);
    let procs = info_processes(&g);
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert!(procs.iter().all(|(_, alive)| alive == "yes"), "{procs:?}");
    c0.kill9();
    s.wait_for("Client process 0 (pid 1) died", T);
    let (code, sout) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{sout}");
    assert_eq!(final_in_use(&sout), 0, "{sout}");
    assert!(!sout.contains("no mbuf in flight"), "{sout}");
}
