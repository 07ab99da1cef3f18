//! Conformance: the Autobahn|Testsuite against `host serve echo.wasm`.
//!
//! Every case must be OK (INFORMATIONAL where the suite has no verdict):
//! NON-STRICT, FAILED, UNIMPLEMENTED or MISSING all fail this test. The
//! runner's exit status alone would let NON-STRICT and UNIMPLEMENTED
//! through, so the test reads the report's `index.json` itself.
//!
//! The runner lives outside this repository (`../shared/autobahn/run.sh`
//! beside the clone, or `$WSBOX_AUTOBAHN`). Where it is missing the test says
//! so and passes, except under CI (`CI` set), where it fails.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use support::Host;

fn runner() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WSBOX_AUTOBAHN") {
        return Some(PathBuf::from(path));
    }
    let beside = support::workspace().join("../shared/autobahn/run.sh");
    beside.exists().then_some(beside)
}

/// Run the suite (cases matching `cases`, minus `exclude`) and return every
/// case whose verdict is not OK/INFORMATIONAL, with the summary text.
fn run_suite(agent: &str, cases: &str, exclude: &str, fail_by_drop: bool) -> (Vec<String>, String) {
    let Some(runner) = runner() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Autobahn runner is missing (set WSBOX_AUTOBAHN to its run.sh)"
        );
        eprintln!("SKIPPED: no Autobahn runner (../shared/autobahn/run.sh or $WSBOX_AUTOBAHN)");
        return (Vec::new(), String::new());
    };
    let host = Host::start("echo", &[]);
    let reports = support::workspace().join("target").join("autobahn-reports");
    let output = Command::new("bash")
        .arg(&runner)
        .arg(format!("ws://{}", host.addr))
        .arg(cases)
        .env("AGENT", agent)
        .env("EXCLUDE", exclude)
        .env("FAIL_BY_DROP", if fail_by_drop { "1" } else { "0" })
        .env("AUTOBAHN_REPORTS", &reports)
        .output()
        .expect("running the Autobahn runner");
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("{summary}\n{}", String::from_utf8_lossy(&output.stderr));
    let index = reports.join(agent).join("index.json");
    let text = std::fs::read_to_string(&index)
        .unwrap_or_else(|error| panic!("no report at {}: {error}", index.display()));
    let report: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
        serde_json::from_str(&text).expect("index.json is JSON");
    let cases = report.get(agent).expect("the report has our agent");
    assert!(!cases.is_empty(), "the suite ran no case");
    let mut bad = Vec::new();
    for (case, result) in cases {
        let behavior = result["behavior"].as_str().unwrap_or("?");
        let close = result["behaviorClose"].as_str().unwrap_or("?");
        let fine = |verdict: &str| matches!(verdict, "OK" | "INFORMATIONAL");
        if !fine(behavior) || !fine(close) {
            bad.push(format!("{case}: {behavior} (close: {close})"));
        }
    }
    eprintln!(
        "autobahn {agent}: {} cases, {} not OK",
        cases.len(),
        bad.len()
    );
    (bad, summary)
}

#[test]
fn every_autobahn_case_is_ok() {
    let (bad, summary) = run_suite("wsbox", "*", "", false);
    assert!(
        bad.is_empty(),
        "cases not OK:\n{}\n{summary}",
        bad.join("\n")
    );
}

#[test]
fn every_case_closes_with_a_frame_not_a_dropped_connection() {
    // With FAIL_BY_DROP=1 a connection dropped without a closing handshake
    // fails its case: we always close with a frame.
    let (bad, summary) = run_suite("wsbox-fail-by-drop", "*", "12.*,13.*", true);
    assert!(
        bad.is_empty(),
        "cases not OK:\n{}\n{summary}",
        bad.join("\n")
    );
}
