//! Installing the interop clients on first use, at pinned versions, under
//! `<target>/interop`, each guarded by a file lock so that parallel test
//! binaries do not race, and marked ready by a file written last that names
//! the version (so changing a pin reinstalls).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{missing_tool, run_checked, runs, target_dir};

/// The release of Python's `websockets` the tests install.
pub const WEBSOCKETS_VERSION: &str = "17.4";

/// `<target>/interop`, where the clients are installed.
pub fn interop_dir() -> PathBuf {
    let dir = target_dir().join("interop");
    fs::create_dir_all(&dir).expect("creating <target>/interop");
    dir
}

/// A missing tool: fail under CI, else say SKIP.
pub fn missing(tool: &str) -> Option<PathBuf> {
    missing_tool(tool, "the interop tests that need it")
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
