//! The Python examples (`examples/echo-py`, `examples/auth-py`), built the
//! documented way (`sh build.sh`, componentize-py from PyPI), pass the
//! checks of their Rust twins `echo` and `auth` (`support::twins`); the
//! test guest `tests/guests/sdk-py` covers the rest of the SDK (topics,
//! events, exceptions, asyncio).
//!
//! Costs are paid once per run: componentize-py is installed once (under
//! `<target>/interop`, pip's cache beside it, behind a file lock), each
//! component is built once per test process, and the host compiles each
//! (18 MB) once into a compile cache under the target dir that every test
//! host shares. Without python3 these tests SKIP (under CI they fail).

mod support;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use support::interop::{install_once, interop_dir};
use support::twins::{auth, echo};
use support::{Host, RawClient, missing_tool, op, run_checked, runs, target_dir, tell, workspace};

/// The componentize-py release `sdks/python/componentize.sh` pins.
const COMPONENTIZE_PY: &str = "0.25.1";

/// `<target>/interop/componentize-py`: a venv with componentize-py, or None
/// (SKIP) without python3.
fn componentize_venv() -> Option<PathBuf> {
    static VENV: OnceLock<Option<PathBuf>> = OnceLock::new();
    VENV.get_or_init(|| {
        if !runs("python3") {
            return missing_tool("python3", "the Python guest tests");
        }
        let requirement = format!("componentize-py=={COMPONENTIZE_PY}");
        let pip_cache = interop_dir().join("pip-cache");
        Some(install_once("componentize-py", &requirement, |venv| {
            let started = Instant::now();
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "venv"]).arg(venv);
            run_checked(cmd, "creating the componentize-py venv (python3 -m venv)");
            let mut cmd = Command::new(venv.join("bin").join("python"));
            cmd.args(["-m", "pip", "install", "--disable-pip-version-check"])
                .args(["--quiet", &requirement])
                .env("PIP_CACHE_DIR", &pip_cache);
            run_checked(cmd, &format!("pip install {requirement}"));
            tell(&format!(
                "python_guests: installed {requirement} in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }))
    })
    .clone()
}

/// `examples/NAME/dist/NAME.wasm` (or under `tests/guests`), built with its
/// `build.sh` once per test process and compiled once into the shared
/// cache; None (SKIP) without python3.
fn python_guest(name: &'static str) -> Option<PathBuf> {
    type Built = Arc<OnceLock<Option<PathBuf>>>;
    static BUILT: OnceLock<Mutex<HashMap<&'static str, Built>>> = OnceLock::new();
    let cell = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(name)
        .or_default()
        .clone();
    cell.get_or_init(|| {
        let venv = componentize_venv()?;
        let folder = ["examples", "tests/guests"]
            .iter()
            .map(|dir| workspace().join(dir).join(name))
            .find(|folder| folder.join("build.sh").exists())
            .unwrap_or_else(|| panic!("no examples/{name} or tests/guests/{name}"));
        let wasm = folder.join("dist").join(format!("{name}.wasm"));
        // The build writes into the clone: one test binary at a time.
        let lock = File::create(interop_dir().join(format!("{name}.build.lock")))
            .expect("creating the build lock");
        lock.lock().expect("locking the Python guest build");
        let _ = fs::remove_file(&wasm);
        let started = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.arg("build.sh")
            .current_dir(&folder)
            .env("WSBOX_PY_VENV", &venv);
        run_checked(cmd, &format!("building {name} (sh build.sh)"));
        let size = fs::metadata(&wasm)
            .unwrap_or_else(|e| panic!("build.sh wrote no {}: {e}", wasm.display()))
            .len();
        tell(&format!(
            "python_guests: built {name}.wasm ({:.1} MB) in {:.1} s",
            size as f64 / 1e6,
            started.elapsed().as_secs_f64()
        ));
        drop(lock);
        warm_compile_cache(&wasm);
        Some(wasm)
    })
    .clone()
}

/// The compile cache every test host here shares.
fn cache_dir() -> PathBuf {
    target_dir().join("python-guests").join("compile-cache")
}

/// Starts a host on `wasm` once and waits (as long as it takes: an 18 MB
/// component on a loaded machine takes a minute or more) until it listens,
/// so that its compiled code is in the cache before the tests' hosts start.
fn warm_compile_cache(wasm: &Path) {
    let started = Instant::now();
    let cache = cache_dir();
    let args = ["--cache-dir", cache.to_str().expect("a UTF-8 target dir")];
    drop(Host::start_path_within(
        wasm,
        &args,
        Duration::from_secs(900),
    ));
    tell(&format!(
        "python_guests: the host loaded {} in {:.1} s (compiled unless cached)",
        wasm.display(),
        started.elapsed().as_secs_f64()
    ));
}

/// A host serving the Python example `name` with the shared compile cache.
fn host(name: &'static str, args: &[&str]) -> Option<Host> {
    let wasm = python_guest(name)?;
    let cache = cache_dir();
    let mut all = vec!["--cache-dir", cache.to_str().expect("a UTF-8 target dir")];
    all.extend_from_slice(args);
    Some(Host::start_path(&wasm, &all))
}

// echo-py: the checks of tests/echo_messages.rs and tests/closing_handshake.rs.

#[tokio::test]
async fn echo_py_echoes_text_and_binary() {
    if let Some(host) = host("echo-py", &[]) {
        echo::text_and_binary_come_back(&host).await;
    }
}

#[tokio::test]
async fn echo_py_returns_a_one_mib_message_sent_in_fragments_whole() {
    if let Some(host) = host("echo-py", &[]) {
        echo::a_fragmented_mib_comes_back_whole(&host).await;
    }
}

#[tokio::test]
async fn echo_py_sends_a_burst_back_in_order() {
    if let Some(host) = host("echo-py", &[]) {
        echo::a_burst_comes_back_in_order(&host).await;
    }
}

#[tokio::test]
async fn echo_py_reads_frames_sent_with_the_handshake() {
    if let Some(host) = host("echo-py", &[]) {
        echo::frames_sent_with_the_handshake_come_back(&host).await;
    }
}

#[tokio::test]
async fn echo_py_answers_a_1000_close_then_closes_tcp() {
    if let Some(host) = host("echo-py", &[]) {
        echo::the_clients_close_is_answered_then_tcp_closed(&host).await;
    }
}

#[tokio::test]
async fn echo_py_answers_the_clients_close_and_closes_tcp() {
    let Some(host) = host("echo-py", &[]) else {
        return;
    };
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::TEXT, b"first").await;
    assert_eq!(
        client.read_frame().await.expect("an echo").payload,
        b"first"
    );
    let mut close = 4321u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"leaving");
    client.send_frame(true, op::CLOSE, &close).await;
    assert_eq!(client.expect_close().await.0, 4321);
    client.expect_eof().await;
    // The guest saw the close as a CloseRequest and returned normally: the
    // host logs the end of the connection, not a guest failure.
    let line = host.wait_for_log(&["connection finished", "close_code=4321"]);
    assert!(line.contains("closed_by=\"client\""), "{line}");
    assert!(
        !host.logs().iter().any(|l| l.contains("ERROR")),
        "a Python guest error was logged:\n{}",
        host.logs().join("\n")
    );
}

#[tokio::test]
async fn twenty_echo_py_connections_each_echo_twenty_messages() {
    if let Some(host) = host("echo-py", &[]) {
        echo::connections_at_once(&host, 20, 20).await;
    }
}

/// Resident memory of a process, from /proc (KiB).
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Opens `count` echo-py connections on a host with `--max-connections
/// max`, checks that every one echoes, and reports the resident memory each
/// costs.
async fn fill_with_echo_py(max: usize, count: usize) {
    let max_arg = max.to_string();
    let Some(host) = host("echo-py", &["--max-connections", &max_arg]) else {
        return;
    };
    // One connection first: the host's and the guest's one-off costs.
    let mut clients = vec![RawClient::connect(host.addr, "/", &[]).await];
    clients[0].send_frame(true, op::TEXT, b"warm").await;
    assert_eq!(
        clients[0].read_frame().await.expect("an echo").payload,
        b"warm"
    );
    let before = rss_kib(host.pid());
    for i in 1..count {
        let (client, head) = RawClient::handshake(host.addr, "/", &[]).await;
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "connection {} of {count} (--max-connections {max}) was refused:\n{head}\nlogs:\n{}",
            i + 1,
            host.logs().join("\n")
        );
        clients.push(client);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let text = format!("connection {i}");
        client.send_frame(true, op::TEXT, text.as_bytes()).await;
        let echo = client.read_frame().await.expect("an echo");
        assert_eq!(echo.payload, text.as_bytes(), "connection {i}");
    }
    let per_connection = (rss_kib(host.pid()).saturating_sub(before)) / (count as u64 - 1);
    tell(&format!(
        "python_guests: echo-py costs {:.1} MiB resident per connection ({count} open)",
        per_connection as f64 / 1024.0
    ));
    assert!(
        per_connection < 32 << 10,
        "echo-py costs {per_connection} KiB per connection"
    );
}

#[tokio::test]
async fn echo_py_fills_a_small_max_connections() {
    // The pool has room for max + 16 instances; 8 Python guests fit.
    fill_with_echo_py(8, 8).await;
}

// A componentize-py guest has 14 core instances; the host sizes its pool
// from the component (host/src/runtime/footprint.rs), so every one of 64
// connections gets its slots (with a fixed 8 per connection, the 46th of 64
// was refused).
#[tokio::test]
async fn echo_py_fills_a_larger_max_connections() {
    fill_with_echo_py(64, 64).await;
}

// auth-py: the checks of tests/handshake_answers.rs and
// tests/closing_handshake.rs on auth.

#[tokio::test]
async fn auth_py_rejects_a_request_without_a_token_with_401() {
    if let Some(host) = host("auth-py", &[]) {
        auth::no_token_gets_401_a_challenge_and_a_body(&host).await;
    }
}

#[tokio::test]
async fn auth_py_rejection_is_a_complete_http_response() {
    if let Some(host) = host("auth-py", &[]) {
        auth::the_rejection_is_a_complete_response(&host).await;
        // The guest's log line reached the host log.
        host.wait_for_log(&["guest: rejecting 127.0.0.1:"]);
    }
}

#[tokio::test]
async fn auth_py_answers_the_chosen_subprotocol_greets_and_echoes() {
    if let Some(host) = host("auth-py", &[]) {
        auth::the_offered_subprotocol_is_chosen(&host).await;
    }
}

#[tokio::test]
async fn auth_py_answers_no_subprotocol_when_none_was_offered() {
    if let Some(host) = host("auth-py", &[]) {
        auth::no_subprotocol_without_an_offer(&host).await;
    }
}

#[tokio::test]
async fn auth_py_closes_with_4000_on_bye() {
    if let Some(host) = host("auth-py", &[]) {
        auth::bye_closes_with_4000(&host).await;
        let line = host.wait_for_log(&["connection finished", "close_code=4000"]);
        assert!(line.contains("closed_by=\"guest\""), "{line}");
    }
}

// sdk-py (tests/guests/sdk-py): the SDK beyond the examples.

#[tokio::test]
async fn sdk_py_runs_asyncio_timers_and_connection_waits_together() {
    let Some(host) = host("sdk-py", &[]) else {
        return;
    };
    let mut client = RawClient::connect(host.addr, "/aio", &[]).await;
    let mut received = Vec::new();
    // The ticker task's first tick (asyncio.sleep), then a message that the
    // main task, waiting on the connection's pollable, echoes while the
    // ticker goes on; after 500 ms without events, asyncio.timeout fires.
    while received.last().map(String::as_str) != Some("idle") {
        let text = read_text(&mut client).await;
        if text == "tick 0" {
            client.send_frame(true, op::TEXT, b"echo me").await;
        }
        received.push(text);
        assert!(received.len() <= 5, "unexpected messages: {received:?}");
    }
    let ticks: Vec<&String> = received.iter().filter(|t| t.starts_with("tick")).collect();
    assert_eq!(ticks, ["tick 0", "tick 1", "tick 2"], "{received:?}");
    assert!(received.contains(&"echo me".to_owned()), "{received:?}");
    client
        .send_frame(true, op::CLOSE, &1000u16.to_be_bytes())
        .await;
    assert_eq!(client.expect_close().await.0, 1000);
    client.expect_eof().await;
    host.wait_for_log(&["connection finished", "closed_by=\"client\""]);
    assert!(
        !host.logs().iter().any(|l| l.contains("ERROR")),
        "the asyncio guest logged an error:\n{}",
        host.logs().join("\n")
    );
}

/// The next frame, which must be text.
async fn read_text(client: &mut RawClient) -> String {
    let frame = client.read_frame().await.expect("a message");
    assert_eq!(frame.opcode, op::TEXT, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

#[tokio::test]
async fn sdk_py_topics_publish_deliver_to_the_guest_and_time_out() {
    let Some(host) = host("sdk-py", &[]) else {
        return;
    };
    let mut alice = RawClient::connect(host.addr, "/topics", &[]).await;
    let hello: serde_json::Value = serde_json::from_str(&read_text(&mut alice).await).unwrap();
    assert_eq!(hello["count"], 1, "{hello}");
    let alice_id = hello["id"].as_u64().expect("an id");
    let mut bob = RawClient::connect(host.addr, "/topics", &[]).await;
    let hello: serde_json::Value = serde_json::from_str(&read_text(&mut bob).await).unwrap();
    assert_eq!(hello["count"], 2, "{hello}");
    assert_ne!(hello["id"].as_u64(), Some(alice_id));

    alice.send_frame(true, op::TEXT, b"publish:hello").await;
    assert_eq!(read_text(&mut alice).await, "published to 1");
    assert_eq!(
        read_text(&mut bob).await,
        format!("room from {alice_id}: hello")
    );
    bob.send_frame(true, op::TEXT, b"wait").await;
    assert_eq!(read_text(&mut bob).await, "timeout");
}

#[tokio::test]
async fn sdk_py_misuse_raises_the_sdks_exceptions() {
    let Some(host) = host("sdk-py", &[]) else {
        return;
    };
    let mut client = RawClient::connect(host.addr, "/errors", &[]).await;
    assert_eq!(read_text(&mut client).await, "InvalidArgument");
    assert_eq!(read_text(&mut client).await, "InvalidArgument");
    client.send_frame(true, op::TEXT, b"not json").await;
    assert_eq!(read_text(&mut client).await, "InvalidData");

    let (mut client, head) = RawClient::handshake(host.addr, "/bad-subprotocol", &[]).await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert_eq!(client.read_to_end().await, b"SubprotocolNotOffered");
}

// The SDK's committed bindings are what componentize-py makes of wit/.

#[test]
fn the_python_sdk_bindings_match_the_wit() {
    let Some(venv) = componentize_venv() else {
        return;
    };
    let fresh = target_dir().join("python-guests").join("bindings");
    let _ = fs::remove_dir_all(&fresh);
    let mut cmd = Command::new(venv.join("bin").join("componentize-py"));
    cmd.current_dir(workspace())
        .args(["-d", "wit", "-w", "handler", "bindings"])
        .arg(&fresh);
    run_checked(cmd, "componentize-py bindings");
    let committed = workspace().join("sdks").join("python").join("bindings");
    let (fresh_files, committed_files) = (files_under(&fresh), files_under(&committed));
    assert_eq!(
        fresh_files.keys().collect::<Vec<_>>(),
        committed_files.keys().collect::<Vec<_>>(),
        "sdks/python/bindings lists other files than componentize-py makes; regenerate it \
         (see sdks/python/README.md)"
    );
    for (path, text) in &fresh_files {
        assert!(
            committed_files[path] == *text,
            "sdks/python/bindings/{path} is out of date with wit/; regenerate it \
             (see sdks/python/README.md)"
        );
    }
}

/// Every file under `dir` (relative path → contents), `__pycache__` aside.
fn files_under(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in fs::read_dir(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "__pycache__") {
                    stack.push(path);
                }
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn the_build_script_pins_the_componentize_py_the_tests_install() {
    let script = fs::read_to_string(
        workspace()
            .join("sdks")
            .join("python")
            .join("componentize.sh"),
    )
    .expect("reading sdks/python/componentize.sh");
    assert!(
        script.contains(&format!("COMPONENTIZE_PY_VERSION={COMPONENTIZE_PY}\n")),
        "sdks/python/componentize.sh and tests/python_guests.rs pin different componentize-py"
    );
}
