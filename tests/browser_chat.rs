//! The chat example's page (examples/chat/www/index.html) in a real browser:
//! `host serve chat.wasm --static examples/chat/www`, and headless Chromium
//! driven by playwright-core (tests/browser/chat.mjs) as two people chatting
//! in one room. The script checks what each page shows; this test starts
//! the host, runs the script and checks that it passed.
//!
//! It needs node, npm and Debian's `chromium` (`/usr/bin/chromium`, or
//! `CHROMIUM`); playwright-core is installed from the committed lock file
//! into `<target>/browser/node` by tests/browser/install.sh (`.ci/run` runs
//! it first; here it is a quick no-op then). Without node, npm or chromium
//! the test prints SKIP and passes, unless `CI` is set: then it fails.
//!
//! A screenshot of the first person's page is left at
//! `<target>/browser/chat.png`; the test prints its path.

mod support;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Host, missing_tool, run_checked, runs, target_dir, tell};

const WHAT: &str = "the browser chat test";
/// How long the script may take, browser start included (it gives up by
/// itself after 90 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// The browser to drive: `CHROMIUM`, else Debian's.
fn chromium() -> Option<PathBuf> {
    let path =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    if path.is_file() {
        Some(path)
    } else {
        missing_tool(&format!("{} (Debian's chromium)", path.display()), WHAT)
    }
}

/// `<target>/browser/node`, holding playwright-core as the lock file pins it.
fn playwright() -> Option<PathBuf> {
    for tool in ["node", "npm"] {
        if !runs(tool) {
            return missing_tool(tool, WHAT);
        }
    }
    let dir = target_dir().join("browser").join("node");
    let mut cmd = Command::new("bash");
    cmd.arg(support::workspace().join("tests/browser/install.sh"))
        .arg(&dir);
    run_checked(cmd, "installing playwright-core (tests/browser/install.sh)");
    Some(dir)
}

#[test]
fn two_people_chat_in_the_browser() {
    let (Some(chromium), Some(modules)) = (chromium(), playwright()) else {
        return;
    };
    let www = support::workspace().join("examples/chat/www");
    let host = Host::start("chat", &["--static", www.to_str().expect("a UTF-8 path")]);
    let screenshot = target_dir().join("browser").join("chat.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut child = Command::new("node")
        .arg(support::workspace().join("tests/browser/chat.mjs"))
        .arg(format!("http://{}/", host.addr))
        .arg(&screenshot)
        .env("BROWSER_NODE_MODULES", &modules)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running node");
    // Read both pipes on threads so a chatty browser cannot block the
    // script, and wait with a deadline so a stuck one cannot hang the test.
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = stderr.join().expect("the stderr reader");
    let output = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let status = status.unwrap_or_else(|| {
        panic!(
            "chat.mjs did not finish in {} s\n{output}",
            SCRIPT_TIMEOUT.as_secs()
        )
    });

    if screenshot.is_file() {
        tell(&format!(
            "browser_chat: screenshot of the chat page: {}",
            screenshot.display()
        ));
    }
    assert!(status.success(), "chat.mjs failed ({status})\n{output}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("PASS: "),
        "chat.mjs exited 0 without its PASS line\n{output}"
    );
    for step in [
        "ok: ann sees ben join",
        "ok: ben sees ann's line under her name",
        "ok: ann sees ben leave",
        "ok: a ping adds nothing to the log",
    ] {
        assert!(
            stdout.contains(step),
            "chat.mjs did not report {step:?}\n{output}"
        );
    }
    assert!(
        screenshot.is_file(),
        "no screenshot at {}\n{output}",
        screenshot.display()
    );
}
