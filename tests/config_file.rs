//! `--config FILE` and `host config`: keys named like the flags, the
//! command line over the file, errors with file, line and key, the
//! effective configuration as TOML, and SIGHUP re-reading the file.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Host, RawClient, guest};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsbox-config-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `host ARGS...`: (exit success, stdout, stderr).
fn host(args: &[&str], dir: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("running host");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Send SIGHUP to process `pid`.
fn hangup(pid: &str) {
    let sent = Command::new("kill").args(["-HUP", pid]).status();
    assert!(sent.is_ok_and(|status| status.success()));
}

/// The status line's code of a handshake with `Origin: origin`.
async fn status_with_origin(host: &Host, origin: &str) -> String {
    let (_, head) = RawClient::handshake(host.addr, "/", &[&format!("Origin: {origin}")]).await;
    head.get(9..12).unwrap_or_default().to_owned()
}

#[test]
fn a_bad_file_stops_the_start_naming_file_line_and_key() {
    let dir = temp_dir("errors");
    for (text, expected) in [
        (
            "\nmax-frame-sise = 3\n",
            "bad.toml:2: unknown key `max-frame-sise`",
        ),
        (
            "listen = \"127.0.0.1:0\"\nmax-frame-size = \"16XB\"\n",
            "bad.toml:2: `max-frame-size`: unknown size unit",
        ),
        (
            "no-cache = \"yes\"\n",
            "bad.toml:1: `no-cache`: expected a boolean, found string",
        ),
        (
            "\n\ndeflate-level = 12\n",
            "bad.toml:3: `deflate-level`: 12 is not in 0..=9",
        ),
        ("listen = \n", "bad.toml:1: `listen`: "),
        (
            "allowed-origins = [1]\n",
            "bad.toml:1: `allowed-origins`: expected an array of strings",
        ),
        (
            "decommit-batch = 0\n",
            "bad.toml:1: `decommit-batch`: `0` is neither `auto` nor a number of regions from 1 to 1024",
        ),
        (
            "decommit-batch = \"sometimes\"\n",
            "bad.toml:1: `decommit-batch`: `sometimes` is neither `auto` nor",
        ),
        ("max_connections = 3\n", "(did you mean `max-connections`?)"),
        // Keys that go together are checked together.
        ("tls-cert = \"cert.pem\"\n", "--tls-key"),
    ] {
        std::fs::write(dir.join("bad.toml"), text).unwrap();
        let (ok, _, stderr) = host(&["serve", "app.wasm", "--config", "bad.toml"], &dir);
        assert!(!ok, "{text:?} was accepted");
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
    }
    let (ok, _, stderr) = host(&["serve", "--config", "missing.toml"], &dir);
    assert!(!ok && stderr.contains("missing.toml: "), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn host_config_prints_every_key_with_defaults_and_reads_back() {
    let dir = temp_dir("print");
    std::fs::write(
        dir.join("wsbox.toml"),
        "max-frame-size = \"1MiB\"\nallowed-origins = [\"https://a.example\"]\ndeflate = false\n",
    )
    .unwrap();
    let (ok, printed, stderr) = host(
        &[
            "config",
            "--config",
            "wsbox.toml",
            "--max-connections",
            "50",
        ],
        &dir,
    );
    assert!(ok, "{stderr}");
    let table: toml::Table = toml::from_str(&printed).expect("host config prints TOML");
    assert_eq!(table["max-frame-size"].as_str(), Some("1MiB"));
    assert_eq!(table["max-connections"].as_integer(), Some(50));
    assert_eq!(table["deflate"].as_bool(), Some(false));
    assert_eq!(table["max-message-size"].as_str(), Some("64MiB"));
    assert_eq!(table["listen"].as_str(), Some("127.0.0.1:9001"));
    assert_eq!(
        table["allowed-origins"][0].as_str(),
        Some("https://a.example")
    );
    // Keys without a value are there, commented out, with their help.
    assert!(printed.contains("\n# drain-after =\n"), "{printed}");
    assert!(
        printed.contains("# Address to listen on\nlisten = "),
        "{printed}"
    );
    // What it prints is a configuration file that gives the same output.
    std::fs::write(dir.join("printed.toml"), &printed).unwrap();
    let (ok, again, stderr) = host(&["config", "--config", "printed.toml"], &dir);
    assert!(ok, "{stderr}");
    assert_eq!(again, printed);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_command_line_wins_and_sighup_applies_what_can_change_live() {
    let dir = temp_dir("live");
    let app = dir.join("app.wasm");
    std::fs::copy(guest("echo"), &app).unwrap();
    let file = dir.join("wsbox.toml");
    std::fs::write(
        &file,
        "app = \"app.wasm\"\nallowed-origins = [\"https://a.example\"]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    // The command line's origins win over the file's.
    let other = Host::start_path(
        &app,
        &["--config", config, "--allowed-origins", "https://b.example"],
    );
    assert_eq!(status_with_origin(&other, "https://a.example").await, "403");
    assert_eq!(status_with_origin(&other, "https://b.example").await, "101");
    drop(other);

    let mut host = Host::start_path(&app, &["--config", config]);
    assert_eq!(status_with_origin(&host, "https://a.example").await, "101");
    assert_eq!(status_with_origin(&host, "https://b.example").await, "403");
    std::fs::write(
        &file,
        "app = \"app.wasm\"\nallowed-origins = [\"https://b.example\"]\n\
         max-connections = 7\nlog-level = \"debug\"\n",
    )
    .unwrap();
    let pid = host.pid().to_string();
    hangup(&pid);
    host.wait_for_log(&["configuration reloaded"]);
    host.wait_for_log(&["max-connections", "takes effect only after a restart"]);
    assert_eq!(status_with_origin(&host, "https://b.example").await, "101");
    assert_eq!(status_with_origin(&host, "https://a.example").await, "403");
    // The log level changed too: debug lines now appear.
    host.wait_for_log(&["DEBUG"]);
    // A file broken meanwhile changes nothing.
    std::fs::write(&file, "allowed-origins = 3\n").unwrap();
    hangup(&pid);
    host.wait_for_log(&["configuration not reloaded", "wsbox.toml:1"]);
    assert_eq!(status_with_origin(&host, "https://b.example").await, "101");
    assert!(host.child().try_wait().unwrap().is_none(), "the host died");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_configuration_is_what_host_config_prints() {
    let readme = std::fs::read_to_string(support::workspace().join("README.md")).unwrap();
    let section = readme
        .split("## Operating wsbox")
        .nth(1)
        .expect("README has an Operating wsbox section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section has a toml block");
    let dir = temp_dir("readme");
    std::fs::write(dir.join("wsbox.toml"), block).unwrap();
    let (ok, printed, stderr) = host(&["config", "--config", "wsbox.toml"], &dir);
    assert!(ok, "{stderr}");
    // The README marks the keys that need a restart; otherwise the same.
    let unmarked: String = block
        .lines()
        .filter(|line| *line != "# [restart to change]")
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(printed, unmarked);
    let _ = std::fs::remove_dir_all(&dir);
}
