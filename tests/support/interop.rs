//! Installing the interop clients on first use, at pinned versions, under
//! `<target>/interop` (see `deflate_interop.rs` for the scheme).

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The release of Python's `websockets` the tests install.
pub const WEBSOCKETS_VERSION: &str = "17.4";

/// The cargo target dir (`<target>/release/host` is the binary under test).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_host"))
        .parent()
        .and_then(Path::parent)
        .expect("the host binary lives in <target>/<profile>/")
        .to_path_buf()
}

/// `<target>/interop`, where the clients are installed.
pub fn interop_dir() -> PathBuf {
    let dir = target_dir().join("interop");
    fs::create_dir_all(&dir).expect("creating <target>/interop");
    dir
}

/// `CI` set (to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Whether `program --version` runs.
pub fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A missing tool: fail under CI, else say SKIP (once per tool and process).
pub fn missing(tool: &str) -> Option<PathBuf> {
    assert!(
        !in_ci(),
        "{tool} is required for the interop tests when CI is set"
    );
    // Straight to stderr: libtest's capture would hide an `eprintln!`.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {tool} not found; the interop tests that need it are skipped \
         (set CI to make this an error)"
    );
    None
}

/// Run `cmd` and panic with its output unless it succeeds.
pub fn run_checked(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Under an exclusive lock on `<interop>/NAME.lock`: unless `<dir>/.ready`
/// holds `installed` (what the install makes, e.g. `websockets==17.4`),
/// remove whatever `dir` holds (a failed attempt or another version), run
/// `install`, then write `installed` to `.ready`. Readers only trust `dir`
/// once `.ready` says what they need.
pub fn install_once(name: &str, installed: &str, install: impl FnOnce(&Path)) -> PathBuf {
    let interop = interop_dir();
    let dir = interop.join(name);
    let ready = dir.join(".ready");
    let lock = File::create(interop.join(format!("{name}.lock"))).expect("creating the lock file");
    lock.lock()
        .expect("locking the install of the interop clients");
    if fs::read_to_string(&ready).ok().as_deref() != Some(installed) {
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("removing a half-made or outdated install");
        }
        install(&dir);
        fs::write(&ready, installed).expect("marking the install ready");
    }
    drop(lock);
    dir
}

/// The venv's python with `websockets` [`WEBSOCKETS_VERSION`], or None
/// (SKIP) without python3.
pub fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if !runs("python3") {
                return missing("python3");
            }
            let requirement = format!("websockets=={WEBSOCKETS_VERSION}");
            let venv = install_once("venv", &requirement, |venv| {
                let mut cmd = Command::new("python3");
                cmd.args(["-m", "venv"]).arg(venv);
                run_checked(cmd, "creating the Python venv (python3 -m venv)");
                let mut cmd = Command::new(venv.join("bin").join("python"));
                cmd.args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--quiet",
                    &requirement,
                ]);
                run_checked(cmd, &format!("pip install {requirement}"));
            });
            Some(venv.join("bin").join("python"))
        })
        .clone()
}
