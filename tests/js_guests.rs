//! The JavaScript examples (`examples/echo-js`, `auth-js`, `chat-js`, built
//! with the SDK in `sdks/js`) pass the end-to-end checks of their Rust
//! twins (`support::twins`) through the real host.
//!
//! The components are built once per run by `sdks/js/build-examples.sh`
//! under `<target>/js-guests` (npm's install and cache there too, keyed by
//! each example's lock file; builds keyed by the sources), and every host
//! here shares one compiled-component cache, so each 12 MB component is
//! compiled once. Without node or npm these tests say SKIP (under `CI` they
//! fail).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use support::twins::{auth, chat, echo};
use support::{Host, missing_tool, run_checked, runs, target_dir, tell, workspace};

/// `<target>/js-guests`: sources, installs, components, compiled cache.
fn js_dir() -> PathBuf {
    target_dir().join("js-guests")
}

/// The host's compiled-component cache all these tests share.
fn host_cache() -> PathBuf {
    js_dir().join("host-cache")
}

/// Every JS component, or None (SKIP) without node and npm.
fn built() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            for tool in ["node", "npm"] {
                if !runs(tool) {
                    return missing_tool(tool, "the JavaScript guest tests");
                }
            }
            if !node_is_recent() {
                return missing_tool("Node ^20.19 or >= 22.12", "the JavaScript guest tests");
            }
            let started = Instant::now();
            let mut cmd = Command::new("bash");
            cmd.arg(workspace().join("sdks/js/build-examples.sh"))
                .arg(js_dir());
            run_checked(
                cmd,
                "building the JS example guests (sdks/js/build-examples.sh)",
            );
            tell(&format!(
                "js_guests: components ready in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            // Compile each component once, one after the other, so that
            // the tests starting hosts in parallel find it in the cache.
            let started = Instant::now();
            for (example, name) in COMPONENTS {
                drop(start_component(&component(example, name), &[]));
            }
            tell(&format!(
                "js_guests: components compiled (or found in the cache) in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            Some(js_dir())
        })
        .as_deref()
}

/// Whether `node` is one rolldown runs on: ^20.19 or >= 22.12 (Debian
/// 12's nodejs 18 is not).
fn node_is_recent() -> bool {
    let Ok(out) = Command::new("node").arg("--version").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    let mut parts = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major == 20 && minor >= 19) || (major == 22 && minor >= 12) || major > 22
}

/// The example folder and component name of every JS component.
const COMPONENTS: [(&str, &str); 4] = [
    ("echo-js", "echo-js"),
    ("echo-js", "echo-js-quickjs"),
    ("auth-js", "auth-js"),
    ("chat-js", "chat-js"),
];

fn component(example: &str, name: &str) -> PathBuf {
    js_dir()
        .join("src/examples")
        .join(example)
        .join("dist")
        .join(format!("{name}.wasm"))
}

fn start_component(path: &Path, args: &[&str]) -> Host {
    let cache = host_cache();
    let cache = cache.to_str().expect("a UTF-8 target dir");
    let mut all = vec!["--cache-dir", cache];
    all.extend_from_slice(args);
    Host::start_path(path, &all)
}

/// A host serving JS component `name` (of `examples/<example>`), or None
/// (SKIP) without node and npm.
fn serve(example: &str, name: &str) -> Option<Host> {
    built()?;
    Some(start_component(&component(example, name), &[]))
}

/// Runs `check` against a host serving JS component `name` (of
/// `examples/<example>`); SKIP without node and npm.
macro_rules! twin {
    ($example:literal, $name:literal, $check:expr) => {
        if let Some(host) = serve($example, $name) {
            $check(&host).await;
            // The normal end of every connection (the client's close) is
            // not a failure of the guest.
            let failed = host
                .logs()
                .into_iter()
                .filter(|l| l.contains("handler failed") || l.contains("guest failed"))
                .collect::<Vec<_>>();
            assert!(failed.is_empty(), "the guest failed: {failed:#?}");
        }
    };
}

#[tokio::test]
async fn echo_js_sends_text_and_binary_back() {
    twin!("echo-js", "echo-js", echo::text_and_binary_come_back);
}

#[tokio::test]
async fn echo_js_quickjs_sends_text_and_binary_back() {
    twin!(
        "echo-js",
        "echo-js-quickjs",
        echo::text_and_binary_come_back
    );
}

#[tokio::test]
async fn echo_js_sends_a_fragmented_mib_back_whole() {
    twin!(
        "echo-js",
        "echo-js",
        echo::a_fragmented_mib_comes_back_whole
    );
}

#[tokio::test]
async fn echo_js_quickjs_sends_a_fragmented_mib_back_whole() {
    twin!(
        "echo-js",
        "echo-js-quickjs",
        echo::a_fragmented_mib_comes_back_whole
    );
}

#[tokio::test]
async fn echo_js_serves_twenty_connections_at_once() {
    twin!("echo-js", "echo-js", |host| echo::connections_at_once(
        host, 20, 50
    ));
}

#[tokio::test]
async fn echo_js_sends_a_burst_back_in_order() {
    twin!("echo-js", "echo-js", echo::a_burst_comes_back_in_order);
}

#[tokio::test]
async fn echo_js_quickjs_sends_a_burst_back_in_order() {
    twin!(
        "echo-js",
        "echo-js-quickjs",
        echo::a_burst_comes_back_in_order
    );
}

#[tokio::test]
async fn echo_js_reads_frames_sent_with_the_handshake() {
    twin!(
        "echo-js",
        "echo-js",
        echo::frames_sent_with_the_handshake_come_back
    );
}

#[tokio::test]
async fn echo_js_answers_the_clients_close_then_closes_tcp() {
    twin!(
        "echo-js",
        "echo-js",
        echo::the_clients_close_is_answered_then_tcp_closed
    );
}

#[tokio::test]
async fn auth_js_rejects_without_a_token_with_401() {
    twin!(
        "auth-js",
        "auth-js",
        auth::no_token_gets_401_a_challenge_and_a_body
    );
}

#[tokio::test]
async fn auth_js_rejects_with_a_complete_http_response() {
    twin!(
        "auth-js",
        "auth-js",
        auth::the_rejection_is_a_complete_response
    );
}

#[tokio::test]
async fn auth_js_chooses_the_offered_subprotocol() {
    twin!(
        "auth-js",
        "auth-js",
        auth::the_offered_subprotocol_is_chosen
    );
}

#[tokio::test]
async fn auth_js_answers_no_subprotocol_without_an_offer() {
    twin!("auth-js", "auth-js", auth::no_subprotocol_without_an_offer);
}

#[tokio::test]
async fn auth_js_closes_with_4000_on_bye() {
    twin!("auth-js", "auth-js", auth::bye_closes_with_4000);
}

#[tokio::test]
async fn chat_js_members_chat_and_come_and_go() {
    twin!("chat-js", "chat-js", chat::members_chat_and_come_and_go);
}

#[tokio::test]
async fn chat_js_requires_a_nickname_and_a_room() {
    twin!(
        "chat-js",
        "chat-js",
        chat::a_nickname_and_a_room_are_required
    );
}

#[tokio::test]
async fn chat_js_pings_a_silent_member() {
    twin!("chat-js", "chat-js", chat::a_silent_member_is_pinged);
}

#[tokio::test]
async fn chat_js_answers_nonsense_with_an_error() {
    twin!(
        "chat-js",
        "chat-js",
        chat::nonsense_gets_an_error_not_a_disconnect
    );
}
