//! `shoal up`, `status`, `down`: supervised groups of the real sample programs (`mp_server`,
//! `mp_client`, run as `shoal mp_server`/`shoal mp_client`).

use std::time::Duration;

use shoal::eal::Eal;
use shoal::mbuf::MbufPool;
use shoal_testkit::{Group, Proc, TempDir};

const T: Duration = Duration::from_secs(30);
const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// A server on two rate-limited generator ports and `clients` clients, as a group file.
fn group_file(dir: &TempDir, clients: usize, server_extra: &str, client_eal: &str) -> String {
    let mut s = format!(
        "stop_timeout_ms = 20000\n\n[primary]\nname = \"server\"\n\
         command = [\"mp_server\", \"-l\", \"0\", \"--no-huge\", \"-m\", \"64\", \"--log-level\", \"warning\", \
         \"--vdev\", \"net_gen0,rate=200000\", \"--vdev\", \"net_gen1,rate=200000\", \
         \"--\", \"-n\", \"{clients}\", \"--stats-interval\", \"0\"]\n\
         ready = \"server ready\"\nrestart = \"always\"\nbackoff_ms = 50\n{server_extra}\n"
    );
    for c in 0..clients {
        s.push_str(&format!(
            "\n[[secondary]]\nname = \"client{c}\"\n\
             command = [\"mp_client\", \"-l\", \"{}\", \"--proc-type=secondary\", \"--log-level\", \"warning\", \
             {client_eal} \"--\", \"-n\", \"{c}\", \"--top\", \"0\"]\nbackoff_ms = 100\n",
            c + 1
        ));
    }
    let path = dir.join("group.toml");
    std::fs::write(&path, s).unwrap();
    path.display().to_string()
}

/// Kills whatever a supervisor killed by the test harness left running, and its state.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let dir = shoal::eal::runtime_dir(&self.0).with_file_name(format!(".up-{}", self.0));
        if let Ok(text) = std::fs::read_to_string(dir.join("state.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                for p in v["processes"].as_array().into_iter().flatten() {
                    if let Some(pid) = p["pid"].as_u64().filter(|p| *p > 0) {
                        let _ = shoal::eal::send_signal(pid as u32, libc::SIGKILL);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn status(g: &Group) -> serde_json::Value {
    let mut s = g.spawn_raw(SHOAL, &["status", "--file-prefix", g.prefix(), "--json"]);
    assert_eq!(s.wait_exit(T), Some(0), "{}", s.output());
    serde_json::from_str(&s.output()).unwrap_or_else(|e| panic!("{e}: {}", s.output()))
}

fn proc_of<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {st}"))
}

fn down(g: &Group, up: &mut Proc) -> String {
    let mut d = g.spawn_raw(SHOAL, &["down", "--file-prefix", g.prefix()]);
    assert_eq!(d.wait_exit(T), Some(0), "{}", d.output());
    assert_eq!(up.wait_exit(T), Some(0), "{}", up.output());
    up.output()
}

#[test]
fn a_client_killed_under_up_is_restarted_with_its_id_and_no_buffer_is_lost() {
    let g = Group::new("up-kill");
    let _c = Cleanup(g.prefix().to_owned());
    let dir = TempDir::new("up-kill");
    let file = group_file(&dir, 2, "", "");
    let mut up = g.spawn_raw(SHOAL, &["up", &file, "--file-prefix", g.prefix()]);
    up.wait_for("[client0] Client process 0 handling packets", T);
    up.wait_for("[client1] Client process 1 handling packets", T);
    let eal = Eal::inspect(g.prefix()).expect("inspect the group");
    let pool = MbufPool::lookup(&eal, "mbuf_pool").expect("mbuf_pool");

    let st = status(&g);
    assert_eq!(st["supervised"], true, "{st}");
    let victim = proc_of(&st, "client1")["pid"].as_u64().unwrap() as u32;
    let other = proc_of(&st, "client0")["pid"].as_u64().unwrap();
    shoal::eal::send_signal(victim, libc::SIGKILL).unwrap();
    up.wait_for("client1 (secondary) ended: signal 9 (SIGKILL) after", T);
    let line = up.wait_for("client1 (secondary) ended", T);
    assert!(line.ends_with("restarting in 100 ms"), "{line}");
    up.wait_for("client1 (secondary) restarted (restart 1)", T);
    up.wait_for_nth("[client1] Client process 1 handling packets", 2, T);

    let st = status(&g);
    let c1 = proc_of(&st, "client1");
    assert_eq!(c1["restarts"], 1, "{st}");
    assert_eq!(c1["state"], "running", "{st}");
    assert_ne!(c1["pid"].as_u64().unwrap() as u32, victim, "{st}");
    assert_eq!(c1["last_exit"], "signal 9 (SIGKILL)", "{st}");
    assert_eq!(proc_of(&st, "client0")["pid"], other, "{st}");
    assert_eq!(proc_of(&st, "client0")["restarts"], 0, "{st}");
    assert_eq!(proc_of(&st, "server")["restarts"], 0, "{st}");

    let out = down(&g, &mut up);
    // Secondaries first, the primary last.
    let at = |pat: &str| {
        out.find(pat)
            .unwrap_or_else(|| panic!("no {pat:?} in:\n{out}"))
    };
    assert!(at("client0 (secondary) stopped: exit status 0") < at("server (primary) stopped"));
    assert!(at("client1 (secondary) stopped: exit status 0") < at("server (primary) stopped"));
    at("server (primary) stopped: exit status 0");
    // Every buffer is back: the killed client's were returned by the reaper, what was left in
    // the rings by the server on its stop.
    assert!(out.contains("pool in use 0"), "{out}");
    assert_eq!(pool.in_use_count(), 0, "{out}");
}

#[test]
fn a_killed_primary_is_restarted_and_its_secondaries_follow() {
    let g = Group::new("up-primary");
    let _c = Cleanup(g.prefix().to_owned());
    let dir = TempDir::new("up-primary");
    let file = group_file(&dir, 1, "adopt = false", "");
    let mut up = g.spawn_raw(SHOAL, &["up", &file, "--file-prefix", g.prefix()]);
    up.wait_for("[client0] Client process 0 handling packets", T);
    let server = proc_of(&status(&g), "server")["pid"].as_u64().unwrap() as u32;
    shoal::eal::send_signal(server, libc::SIGKILL).unwrap();
    up.wait_for("server (primary) ended: signal 9 (SIGKILL)", T);
    // Without adoption the client exits (status 3) and comes back once the new server is ready.
    up.wait_for("client0 (secondary) ended: exit status 3", T);
    up.wait_for("server (primary) restarted (restart 1)", T);
    up.wait_for_nth("server (primary) ready", 2, T);
    up.wait_for("client0 (secondary) restarted (restart 1)", T);
    up.wait_for_nth("[client0] Client process 0 handling packets", 2, T);
    let out = up.output();
    assert!(
        out.find("server (primary) ready after").unwrap()
            < out.find("client0 (secondary) restarted").unwrap(),
        "{out}"
    );
    let st = status(&g);
    assert_eq!(proc_of(&st, "server")["restarts"], 1, "{st}");
    assert_eq!(proc_of(&st, "server")["state"], "running", "{st}");
    down(&g, &mut up);
}

#[test]
fn a_killed_primary_is_restarted_with_adopt_and_its_clients_keep_running() {
    let g = Group::new("up-adopt");
    let _c = Cleanup(g.prefix().to_owned());
    let dir = TempDir::new("up-adopt");
    let file = group_file(&dir, 2, "", "\"--primary-grace\", \"60000\",");
    let mut up = g.spawn_raw(SHOAL, &["up", &file, "--file-prefix", g.prefix()]);
    up.wait_for("[client0] Client process 0 handling packets", T);
    up.wait_for("[client1] Client process 1 handling packets", T);
    let eal = Eal::inspect(g.prefix()).expect("inspect the group");
    let pool = MbufPool::lookup(&eal, "mbuf_pool").expect("mbuf_pool");
    let st = status(&g);
    let server = proc_of(&st, "server")["pid"].as_u64().unwrap() as u32;
    let clients: Vec<u64> = ["client0", "client1"]
        .iter()
        .map(|n| proc_of(&st, n)["pid"].as_u64().unwrap())
        .collect();
    shoal::eal::send_signal(server, libc::SIGKILL).unwrap();
    up.wait_for("server (primary) ended: signal 9 (SIGKILL)", T);
    up.wait_for("server (primary) restarted (restart 1)", T);
    up.wait_for(
        "[server] server ready: 2 ports, 2 clients, dist RoundRobin (adopted the group)",
        T,
    );
    up.wait_for("[server] adopted: forwarding resumed after a pause of", T);
    let st = status(&g);
    for (n, pid) in ["client0", "client1"].iter().zip(&clients) {
        let c = proc_of(&st, n);
        assert_eq!(c["pid"].as_u64().unwrap(), *pid, "{st}");
        assert_eq!(c["restarts"], 0, "{st}");
    }
    let out = down(&g, &mut up);
    assert!(!out.contains("client0 (secondary) ended"), "{out}");
    assert!(out.contains("pool in use 0"), "{out}");
    assert_eq!(pool.in_use_count(), 0, "{out}");
}

#[test]
fn without_adoption_secondaries_that_outlive_their_primary_are_stopped_before_the_restart() {
    let g = Group::new("up-noadopt");
    let _c = Cleanup(g.prefix().to_owned());
    let dir = TempDir::new("up-noadopt");
    let file = group_file(&dir, 1, "adopt = false", "\"--primary-grace\", \"600000\",");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("stop_timeout_ms = 20000", "stop_timeout_ms = 1000");
    std::fs::write(&file, text).unwrap();
    let mut up = g.spawn_raw(SHOAL, &["up", &file, "--file-prefix", g.prefix()]);
    up.wait_for("[client0] Client process 0 handling packets", T);
    let server = proc_of(&status(&g), "server")["pid"].as_u64().unwrap() as u32;
    shoal::eal::send_signal(server, libc::SIGKILL).unwrap();
    up.wait_for(
        "secondaries of the dead primary still run; stopping them",
        T,
    );
    up.wait_for("client0 (secondary) stopped", T);
    up.wait_for("server (primary) restarted (restart 1)", T);
    up.wait_for("client0 (secondary) restarted (restart 1)", T);
    up.wait_for_nth("[client0] Client process 0 handling packets", 2, T);
    let out = up.output();
    assert!(!out.contains("(adopted the group)"), "{out}");
    down(&g, &mut up);
}

#[test]
fn a_process_that_keeps_failing_is_given_up_and_a_failed_primary_stops_the_group() {
    let g = Group::new("up-fail");
    let _c = Cleanup(g.prefix().to_owned());
    let dir = TempDir::new("up-fail");
    let path = dir.join("g.toml");
    std::fs::write(
        &path,
        "[primary]\nname = \"p\"\ncommand = [\"/bin/sh\", \"-c\", \"echo start; exit 7\"]\n\
         restart = \"on-failure\"\nbackoff_ms = 10\nbackoff_max_ms = 40\nmax_restarts_per_minute = 3\n",
    )
    .unwrap();
    let mut up = g.spawn_raw(
        SHOAL,
        &["up", path.to_str().unwrap(), "--file-prefix", g.prefix()],
    );
    assert_eq!(up.wait_exit(T), Some(1), "{}", up.output());
    let out = up.output();
    for want in [
        "p (primary) ended: exit status 7 after",
        "restarting in 10 ms",
        "restarting in 20 ms",
        "restarting in 40 ms",
        "p (primary) restarted (restart 3)",
        "restarted 3 times within a minute already: giving up",
        "stopping the group",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(out.matches("[p] start").count(), 4, "{out}");
}

#[test]
fn a_second_up_is_refused_and_status_and_down_say_when_no_group_is_up() {
    let g = Group::new("up-twice");
    let _c = Cleanup(g.prefix().to_owned());
    let dir = TempDir::new("up-twice");
    let file = group_file(&dir, 1, "", "");
    let mut up = g.spawn_raw(SHOAL, &["up", &file, "--file-prefix", g.prefix()]);
    up.wait_for("[client0] Client process 0 handling packets", T);
    let mut again = g.spawn_raw(SHOAL, &["up", &file, "--file-prefix", g.prefix()]);
    assert_eq!(again.wait_exit(T), Some(1), "{}", again.output());
    assert!(
        again.output().contains("is already up (shoal up pid"),
        "{}",
        again.output()
    );
    let mut text = g.spawn_raw(SHOAL, &["status", "--file-prefix", g.prefix()]);
    assert_eq!(text.wait_exit(T), Some(0));
    let text = text.output();
    for want in [
        "NAME",
        "server",
        "client0",
        "primary",
        "secondary",
        "running",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    down(&g, &mut up);
    for cmd in ["status", "down"] {
        let mut p = g.spawn_raw(SHOAL, &[cmd, "--file-prefix", g.prefix()]);
        assert_eq!(p.wait_exit(T), Some(1), "{cmd}: {}", p.output());
        assert!(
            p.output().contains("no group is up with file prefix"),
            "{cmd}: {}",
            p.output()
        );
    }
}

#[test]
fn bad_group_files_and_arguments_are_refused_with_status_2() {
    let dir = TempDir::new("up-bad");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[primary]\ncommand = [\"x\"]\nrestart = \"sometimes\"\n",
    )
    .unwrap();
    let g = Group::new("up-bad");
    for (args, want) in [
        (vec!["up"], "needs a group file"),
        (vec!["up", bad.to_str().unwrap()], "unknown variant"),
        (vec!["up", "/nonexistent/g.toml"], "No such file"),
        (vec!["status", "--bogus"], "unknown option"),
        (vec!["down", "--timeout", "-1"], "invalid --timeout"),
        (
            vec!["up", "x.toml", "--file-prefix", "a/b"],
            "invalid --file-prefix",
        ),
    ] {
        let mut p = g.spawn_raw(SHOAL, &args);
        assert_eq!(p.wait_exit(T), Some(2), "{args:?}: {}", p.output());
        assert!(p.output().contains(want), "{args:?}: {}", p.output());
    }
}

#[test]
fn the_shipped_example_group_file_is_valid() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/client_server.toml"
    );
    let g = Group::new("up-example");
    let mut p = g.spawn_raw(SHOAL, &["up", example, "--check"]);
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
    let out = p.output();
    assert!(out.contains("file prefix \"cs\""), "{out}");
    assert!(out.contains("mp_server -l 0"), "{out}");
    assert_eq!(out.matches("mp_client").count(), 2, "{out}");
}

#[test]
fn a_killed_supervisor_leaves_its_group_running_and_status_says_it_is_unsupervised() {
    let g = Group::new("up-orphan");
    let _c = Cleanup(g.prefix().to_owned());
    let dir = TempDir::new("up-orphan");
    let file = group_file(&dir, 1, "", "");
    let mut up = g.spawn_raw(SHOAL, &["up", &file, "--file-prefix", g.prefix()]);
    up.wait_for("[client0] Client process 0 handling packets", T);
    up.kill9();
    let st = status(&g);
    assert_eq!(st["supervised"], false, "{st}");
    let server = proc_of(&st, "server")["pid"].as_u64().unwrap() as u32;
    let mut text = g.spawn_raw(SHOAL, &["status", "--file-prefix", g.prefix()]);
    assert_eq!(text.wait_exit(T), Some(0));
    assert!(text.output().contains("NOT RUNNING"), "{}", text.output());
    let mut d = g.spawn_raw(SHOAL, &["down", "--file-prefix", g.prefix()]);
    assert_eq!(d.wait_exit(T), Some(1), "{}", d.output());
    // The group lives on without its supervisor.
    assert!(Eal::inspect(g.prefix()).is_ok(), "server {server} gone");
}
