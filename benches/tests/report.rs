//! `benches/report` on results in the format `benches/vs-dpdk.sh` keeps: the markdown tables,
//! the SVG chart (one bar per case), the README blocks it fills, and its errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shoal_testkit::{require_tool, TempDir};

fn report() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("report")
}

fn run(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(report())
        .args(args)
        .output()
        .expect("run python3 benches/report")
}

/// A symmetric run as vs-dpdk.sh keeps it: the run's record, both configurations, one case,
/// the summary, and a line cut short.
const SYMMETRIC: &str = r#"{"meta":{"name":"symmetric","date":"2026-12-08T01:05:22Z","commit":"e1aca92","command":"PAIRS=3 benches/vs-dpdk.sh symmetric"}}
{"bench":"symmetric_mp","side":"dpdk","config":{"burst":32,"nb_mbufs":65536,"cache":256,"rx_ring":"1024 (net_null ignores it)"}}
{"bench":"symmetric_mp","side":"shoal","config":{"burst":32,"nb_mbufs":65536,"cache":256,"rx_ring":"none (net_null has no descriptor ring)"}}
{"bench":"symmetric_mp","case":"2 processes, 2 net_null ports, aggregate","unit":"pps","shoal":16037313.0,"dpdk":20555718.0,"ratio":0.780,"placement":"near","runs":[3,3]}
{"bench":"symmetric_mp", cut short
{"bench":"symmetric_mp","cases":1,"ratio_min":0.780,"ratio_median":0.780}
"#;

/// A mempool run: an owner-tag-free figure beside shoal's, two cases.
const MEMPOOL: &str = r#"{"meta":{"name":"mempool","date":"2026-12-08T01:00:00Z","commit":"abc1234","command":"benches/vs-dpdk.sh mempool"}}
{"bench": "mempool_perf", "case": "cache=512 cores=1 n_get_bulk=32 n_put_bulk=32 n_keep=128", "unit": "ns/obj", "shoal": 0.34, "placement": "any", "dpdk": 0.38, "ratio": 1.12, "untracked": 0.33, "tracking_cost_pct": 3.0, "runs": [5, 5]}
{"bench": "mempool_perf", "case": "cache=0 cores=1 n_get_bulk=4 n_put_bulk=4 n_keep=32", "unit": "ns/obj", "shoal": 6.15, "placement": "any", "dpdk": 2.54, "ratio": 0.41, "runs": [5, 5]}
{"bench": "mempool_perf", "cases": 2, "ratio_min": 0.41, "ratio_median": 0.77}
"#;

fn results(dir: &TempDir) -> PathBuf {
    let d = dir.join("results");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("symmetric.jsonl"), SYMMETRIC).unwrap();
    std::fs::write(d.join("mempool.jsonl"), MEMPOOL).unwrap();
    // A dated copy of an older run: skipped when a directory is given.
    std::fs::write(
        d.join("symmetric-2026-12-07T000000Z.jsonl"),
        SYMMETRIC.replace("0.780", "0.5"),
    )
    .unwrap();
    d
}

#[test]
fn tables_and_one_bar_per_case() {
    if !require_tool("python3") {
        return;
    }
    let dir = TempDir::new("report");
    let res = results(&dir);
    let svg = dir.join("chart.svg");
    let out = run(&["--svg", svg.to_str().unwrap(), res.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    // Benches in the order of vs-dpdk.sh's list, mempool before symmetric.
    let (m, s) = (text.find("### mempool"), text.find("### symmetric"));
    assert!(m.is_some() && s.is_some() && m < s, "{text}");
    assert!(
        text.contains("`PAIRS=3 benches/vs-dpdk.sh symmetric` (2026-12-08, e1aca92):"),
        "{text}"
    );
    assert!(text.contains("| setting | shoal | DPDK 22.11 |"), "{text}");
    assert!(text.contains("| nb_mbufs | 65536 | 65536 |"), "{text}");
    assert!(
        text.contains(
            "| 2 processes, 2 net_null ports, aggregate | near | 16.0 Mpps | 20.6 Mpps | 0.78 | 3, 3 |"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "| case | placement | shoal | shoal untracked | DPDK | ratio | runs (shoal, DPDK) |"
        ),
        "{text}"
    );
    assert!(
        text.contains("| cache=0 cores=1 n_get_bulk=4 n_put_bulk=4 n_keep=32 | any | 6.15 ns/obj | - | 2.54 ns/obj | 0.41 | 5, 5 |"),
        "{text}"
    );
    assert!(
        text.contains("2 cases: ratio min 0.41, median 0.77"),
        "{text}"
    );
    assert!(!text.contains("0.50"), "the dated copy was read: {text}");
    assert!(err.contains("not JSON, skipped"), "{err}");

    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg "), "{chart}");
    assert!(chart.trim_end().ends_with("</svg>"), "{chart}");
    let green = chart.matches("fill=\"#2e8b57\"").count();
    let red = chart.matches("fill=\"#c0392b\"").count();
    assert_eq!((green, red), (1, 2), "{chart}");
    assert!(
        chart.contains("cache 0, 1 core, bulk 4, keep 32 [any]"),
        "{chart}"
    );
    assert!(
        chart.contains(">0.78<") && chart.contains(">1.12<"),
        "{chart}"
    );
    assert!(
        chart.contains("stroke=\"black\""),
        "no line at 1.0: {chart}"
    );
}

#[test]
fn readme_blocks_are_filled_and_the_rest_kept() {
    if !require_tool("python3") {
        return;
    }
    let dir = TempDir::new("report-readme");
    let res = results(&dir);
    let readme = dir.join("README.md");
    let before =
        "# t\n\nintro\n<!-- report:symmetric -->\nold table\n<!-- /report:symmetric -->\nafter\n";
    std::fs::write(&readme, before).unwrap();
    for _ in 0..2 {
        let out = run(&[
            "--no-svg",
            "--readme",
            readme.to_str().unwrap(),
            res.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        // mempool has no block here: said, and left out.
        assert!(err.contains("no <!-- report:mempool -->"), "{err}");
    }
    let after = std::fs::read_to_string(&readme).unwrap();
    assert!(
        after.starts_with("# t\n\nintro\n<!-- report:symmetric -->\n"),
        "{after}"
    );
    assert!(
        after.ends_with("<!-- /report:symmetric -->\nafter\n"),
        "{after}"
    );
    assert!(!after.contains("old table"), "{after}");
    assert_eq!(
        after.matches("| nb_mbufs | 65536 | 65536 |").count(),
        1,
        "{after}"
    );
    assert!(!dir.join("chart.svg").exists());
}

#[test]
fn bad_input_is_one_line_and_status_2_or_1() {
    if !require_tool("python3") {
        return;
    }
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().next(),
        Some("report: unknown option --bogus"),
        "{err}"
    );
    let out = run(&["--svg"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let dir = TempDir::new("report-empty");
    let out = run(&["--no-svg", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no results"),
        "{out:?}"
    );
}
