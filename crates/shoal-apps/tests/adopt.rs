//! mp_server killed under load and replaced by `mp_server --adopt`: the clients (started with
//! `--primary-grace`) keep their processes, forwarding resumes, and no buffer is lost.

use std::time::Duration;

use shoal::eal::Eal;
use shoal_apps::cs::{cli, SharedInfo};
use shoal_apps::get;
use shoal_testkit::{eventually, Group, Proc};

const T: Duration = Duration::from_secs(30);
const SERVER: &str = env!("CARGO_BIN_EXE_mp_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_mp_client");

fn server(g: &Group, extra_eal: &[&str]) -> Proc {
    let mut args: Vec<&str> = vec![
        "-l",
        "0",
        "--no-huge",
        "-m",
        "64",
        "--vdev",
        "net_gen0,flows=64,rate=200000",
        "--vdev",
        "net_gen1,flows=64,rate=200000",
    ];
    args.extend_from_slice(extra_eal);
    args.extend_from_slice(&["--", "-n", "2", "--stats-interval", "0", "--mbufs", "8191"]);
    g.spawn(SERVER, &args)
}

fn client(g: &Group, id: usize) -> Proc {
    let (lcore, ids) = ((id + 1).to_string(), id.to_string());
    let mut c = g.spawn(
        CLIENT,
        &[
            "-l",
            &lcore,
            "--proc-type=secondary",
            "--primary-grace",
            "60000",
            "--",
            "-n",
            &ids,
            "--top",
            "0",
        ],
    );
    c.wait_for(&format!("Client process {id} handling packets"), T);
    c
}

fn forwarded(info: &SharedInfo) -> u64 {
    (0..2).map(|c| get(info.client(c, cli::TX))).sum()
}

#[test]
fn a_killed_server_is_adopted_and_its_clients_keep_running_and_lose_nothing() {
    let g = Group::new("cs-adopt");
    let mut s1 = server(&g, &[]);
    s1.wait_for("server ready", T);
    let mut clients = [client(&g, 0), client(&g, 1)];
    let pids: Vec<u32> = clients.iter().map(Proc::pid).collect();
    let eal = Eal::inspect(g.prefix()).unwrap();
    let info = SharedInfo::lookup(&eal).unwrap();
    eventually("forwarding", T, || forwarded(&info) > 1000);
    s1.kill9();
    for c in clients.iter_mut() {
        c.wait_for("carrying on for up to 60000 ms", T);
    }

    // Without --adopt: refused, naming the live clients.
    let mut plain = server(&g, &[]);
    assert_eq!(plain.wait_exit(T), Some(1), "{}", plain.output());
    let out = plain.output();
    assert!(
        out.contains(&format!("pids {}, {}", pids[0], pids[1]))
            || out.contains(&format!("pids {}, {}", pids[1], pids[0])),
        "{out}"
    );
    assert!(out.contains("--adopt"), "{out}");

    let before = forwarded(&info);
    let mut s2 = server(&g, &["--adopt"]);
    s2.wait_for(
        "server ready: 2 ports, 2 clients, dist RoundRobin (adopted the group)",
        T,
    );
    let line = s2.wait_for("adopted: forwarding resumed after a pause of", T);
    assert!(line.contains("the ports dropped"), "{line}");
    for c in clients.iter_mut() {
        c.wait_for(&format!("a new primary process (pid {})", s2.pid()), T);
    }
    eventually("forwarding after the adoption", T, || {
        forwarded(&info) > before + 1000
    });
    for (c, pid) in clients.iter_mut().zip(&pids) {
        assert!(c.try_exit().is_none(), "{}", c.output());
        assert_eq!(c.pid(), *pid);
    }
    assert_eq!(get(info.client(0, cli::STARTS)), 1);
    assert_eq!(get(info.client(1, cli::STARTS)), 1);

    // A graceful stop: the clients drain and leave, every buffer is back in the pool, the
    // killed server's included.
    let (code, out) = s2.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("pool in use 0"), "{out}");
    for c in clients.iter_mut() {
        assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
    }
}

#[test]
fn a_client_whose_grace_passes_without_a_new_server_exits_3() {
    let g = Group::new("cs-grace");
    let mut s = server(&g, &[]);
    s.wait_for("server ready", T);
    let mut c = g.spawn(
        CLIENT,
        &[
            "-l",
            "1",
            "--proc-type=secondary",
            "--primary-grace",
            "300",
            "--",
            "-n",
            "0",
        ],
    );
    c.wait_for("Client process 0 handling packets", T);
    s.kill9();
    assert_eq!(c.wait_exit(T), Some(3), "{}", c.output());
    let out = c.output();
    assert!(out.contains("carrying on for up to 300 ms"), "{out}");
    assert!(
        out.contains("within 300 ms of its primary's death"),
        "{out}"
    );
}
