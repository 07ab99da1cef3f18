//! `host check APP.wasm`: validate a component against the world, list its
//! imports and exports, or exit 1 with the reason. Plus the on-disk cache
//! of compiled components.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use support::{Host, guest};

fn check(app: &Path) -> Output {
    check_with(app, &[])
}

fn check_with(app: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("check")
        .arg(app)
        .args(args)
        .env("NO_COLOR", "1")
        .env("XDG_CACHE_HOME", check_cache())
        .output()
        .expect("running host check")
}

/// The cache home of every `host check` here, made once.
fn check_cache() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| temp_dir("check-cache"))
}

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsbox-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Check the component `bytes` (written to a temporary file) and return
/// its stderr, asserting it was refused.
fn refused(name: &str, bytes: &[u8]) -> String {
    let dir = temp_dir(name);
    let app = dir.join("app.wasm");
    std::fs::write(&app, bytes).unwrap();
    let output = check(&app);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line of reason: {stderr}");
    assert!(stderr.contains("invalid"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    stderr
}

#[test]
fn a_valid_guest_is_listed_with_its_imports_and_exports() {
    let output = check(&guest("echo"));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("ok, fits wsbox:websocket/handler"),
        "{stdout}"
    );
    assert!(stdout.contains("imports:"), "{stdout}");
    assert!(
        stdout.contains("wsbox:websocket/websocket@0.1.2"),
        "{stdout}"
    );
    assert!(stdout.contains("[method]connection.receive"), "{stdout}");
    assert!(stdout.contains("exports:"), "{stdout}");
    assert!(stdout.contains("handle: func"), "{stdout}");
    // What one connection costs: a Rust guest is three core instances (the
    // program, and wit-component's shim and fixup modules).
    let after = |heading: &str| {
        stdout
            .split_once(heading)
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_else(|| panic!("no {heading} in {stdout}"))
    };
    let cost = after("per connection:\n");
    assert!(cost.starts_with("  linear memory at start: "), "{stdout}");
    assert!(cost.contains("  core instances: 3\n"), "{stdout}");
    // Its data is a few KiB: `--decommit-batch auto` waits for eight such
    // instances (at most 64 KiB each) before giving their pages back.
    let data = cost
        .split_once("  active data segments: ")
        .and_then(|(_, rest)| rest.split_once(" bytes\n"))
        .and_then(|(n, _)| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no data segment size in {stdout}"));
    assert!((1..=64 << 10).contains(&data), "{stdout}");
    assert!(cost.contains("  memories: 1\n"), "{stdout}");
    assert!(cost.contains("  tables: 2 ("), "{stdout}");
    let wasi = after("WASI interfaces:\n");
    let wasi: Vec<&str> = wasi.lines().take_while(|l| l.starts_with("  ")).collect();
    assert!(
        wasi.iter().any(|l| l.starts_with("  wasi:io/poll@0.2.")),
        "{stdout}"
    );
    assert!(wasi.iter().all(|l| l.starts_with("  wasi:")), "{stdout}");
    assert!(
        stdout.contains(
            "pool: 10016 connections (--max-connections 10000 + 16) × 8 core instances, \
             1 memory, 4 tables: fits\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("hot swap: fits"), "{stdout}");
}

#[test]
fn a_pool_without_spare_room_is_sized_to_exactly_what_the_guest_needs() {
    // wasmtime's per-component limits are the reservation: were its count
    // higher than ours, it would refuse the component here.
    let output = check_with(
        &guest("echo"),
        &["--pool-core-instances", "1", "--max-connections", "2"],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(
            "pool: 18 connections (--max-connections 2 + 16) × 3 core instances, 1 memory, \
             2 tables: fits\n"
        ),
        "{stdout}"
    );
}

#[test]
fn a_guest_needing_more_than_the_pool_floor_is_told_a_swap_would_be_refused() {
    let output = check_with(&guest("echo"), &["--pool-core-instances", "2"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(
            "hot swap: a host started with a smaller component refuses it: needs 3 core \
             instances per connection; the pool was sized for 2 × 10016 connections"
        ),
        "{stdout}"
    );
}

#[test]
fn a_guest_starting_with_more_memory_than_allowed_is_refused() {
    let output = check_with(&guest("echo"), &["--guest-memory", "64KiB"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("bytes of linear memory at instantiation; --guest-memory allows 65536"),
        "{stderr}"
    );
}

#[test]
fn random_bytes_are_refused() {
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let stderr = refused("check-random", &bytes);
    assert!(stderr.contains("compiling the component"), "{stderr}");
}

#[test]
fn a_core_module_is_refused() {
    let stderr = refused("check-core", b"\0asm\x01\0\0\0");
    assert!(stderr.contains("component parser"), "{stderr}");
}

#[test]
fn a_component_without_the_handle_export_is_refused() {
    // The empty component: magic, version 0x0d, layer 1.
    let stderr = refused("check-empty", b"\0asm\x0d\0\x01\0");
    assert!(stderr.contains("no export `handle`"), "{stderr}");
}

#[test]
fn a_component_with_an_unknown_import_is_refused_naming_it() {
    let bytes = std::fs::read(guest("echo")).unwrap();
    let text_bytes = String::from_utf8_lossy(&bytes).into_owned();
    assert!(text_bytes.contains("wsbox:websocket/log@0.1.2"));
    let mut changed = bytes.clone();
    let (from, to) = (b"wsbox:websocket/log@0.1.2", b"wsbox:websocket/log@0.9.1");
    let mut i = 0;
    while i + from.len() <= changed.len() {
        if &changed[i..i + from.len()] == from {
            changed[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    let stderr = refused("check-import", &changed);
    assert!(stderr.contains("wsbox:websocket/log@0.9.1"), "{stderr}");
}

#[test]
fn a_missing_file_is_refused() {
    let output = check(Path::new("/nonexistent/app.wasm"));
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("reading /nonexistent/app.wasm"));
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let cache = temp_dir("cache-dir");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    drop(Host::start("echo", &args));
    let files = walk(&cache);
    assert!(!files.is_empty(), "nothing cached in {}", cache.display());
    // A second start finds it (and leaves the same entries).
    drop(Host::start("echo", &args));
    assert_eq!(walk(&cache), files);

    let none = temp_dir("no-cache");
    let args = ["--cache-dir", none.to_str().unwrap(), "--no-cache"];
    let output = Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("serve")
        .arg(guest("echo"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "--cache-dir and --no-cache conflict"
    );
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(&none);
}

#[test]
fn perf_map_names_the_guest_functions_compiled_or_cached() {
    let cache = temp_dir("perf-map-cache");
    let cache_arg = cache.to_str().unwrap();
    // The first start compiles the guest, the second loads it from the cache.
    for start in ["compiled", "cached"] {
        let host = Host::start("echo", &["--perf-map", "--cache-dir", cache_arg]);
        let map = PathBuf::from(format!("/tmp/perf-{}.map", host.pid()));
        let text = std::fs::read_to_string(&map)
            .unwrap_or_else(|error| panic!("{start}: reading {}: {error}", map.display()));
        let _ = std::fs::remove_file(&map);
        // perf's format: start address and size in hex (the address with or
        // without 0x), then the name.
        let hex = |field: Option<&str>| {
            field.is_some_and(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).is_ok())
        };
        let functions = text
            .lines()
            .filter(|line| {
                let mut fields = line.splitn(3, ' ');
                hex(fields.next())
                    && hex(fields.next())
                    && fields
                        .next()
                        .is_some_and(|name| name.contains("::function["))
            })
            .count();
        assert!(
            functions > 10,
            "{start}: {functions} functions named:\n{text}"
        );
    }
    // Without the flag, no map.
    let host = Host::start("echo", &["--cache-dir", cache_arg]);
    let map = PathBuf::from(format!("/tmp/perf-{}.map", host.pid()));
    assert!(
        !map.exists(),
        "{} written without --perf-map",
        map.display()
    );
    let _ = std::fs::remove_dir_all(&cache);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(".stats")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
