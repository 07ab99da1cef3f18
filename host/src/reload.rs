//! Hot swap: watch the app file (and SIGHUP), compile a new version off the
//! accept path, and swap it in for new connections.
//!
//! - The file's *directory* is watched, not the file: an editor that writes
//!   a temporary file and renames it over the app, or `cargo build` that
//!   replaces it with a new file, leaves a watch on the old inode blind.
//!   Events are filtered by file name and debounced, so one write that
//!   arrives as several events compiles once.
//! - A version whose bytes hash to the running version is skipped.
//! - A version that does not compile or does not fit the world is refused
//!   with one error line saying why; the running version keeps serving. So
//!   is one that needs more per connection than the instance pool was sized
//!   for at start (`runtime::PoolPlan::admit`), before it compiles.
//! - Live connections keep the instance they started with; with
//!   `--drain-after`, those still on an older version are closed with 1012
//!   (service restart) that long after the swap.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use crate::metrics::SwapResult;
use crate::runtime::{Guest, Runtime, one_line, version_of};
use crate::server::Server;

/// Quiet time after the last file event before the file is read: one save
/// or build arrives as a burst of events.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Quiet time after an event that says a write is complete (the file was
/// closed after writing, or renamed into place).
pub const SETTLE: Duration = Duration::from_millis(30);

/// A change to the app file, as the watcher saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// Something happened to it (created, written to, ...); more may follow.
    Partial,
    /// A writer closed it, or it was renamed into place: likely complete.
    Complete,
}

impl Change {
    /// How long to wait for more events after this one.
    fn quiet_time(self) -> Duration {
        match self {
            Change::Partial => DEBOUNCE,
            Change::Complete => SETTLE,
        }
    }
}

/// Close code for connections drained after a swap (RFC 6455 7.4.1 as
/// extended by IANA: "Service Restart").
const SERVICE_RESTART: u16 = 1012;

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// The file (or its directory entry) changed.
    File(Change),
    /// SIGHUP.
    Signal,
}

/// Watches one app file and swaps new versions into a server.
pub struct Reloader {
    runtime: Arc<Runtime>,
    server: Arc<Server>,
    path: PathBuf,
}

impl Reloader {
    /// A reloader of `path` into `server`; see [`Reloader::spawn`].
    /// Connections still on an older version are drained after the
    /// server's `drain_after` as configured at the time of the swap.
    pub fn new(runtime: Arc<Runtime>, server: Arc<Server>, path: PathBuf) -> Self {
        Self {
            runtime,
            server,
            path,
        }
    }

    /// Start watching the file and listening for SIGHUP, on the current
    /// tokio runtime. Fails only if the directory cannot be watched.
    pub fn spawn(self) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = watch(&self.path, tx)?;
        // Registered before returning: from here on SIGHUP no longer
        // terminates the process.
        let hangup = match signal(SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reloading on file changes only");
                None
            }
        };
        tokio::spawn(self.run(watcher, rx, hangup));
        Ok(())
    }

    async fn run(
        self,
        watcher: RecommendedWatcher,
        mut events: mpsc::UnboundedReceiver<Change>,
        mut hangup: Option<Signal>,
    ) {
        // Dropping the watcher stops the watch: keep it as long as we run.
        let _watcher = watcher;
        loop {
            let trigger = tokio::select! {
                event = events.recv() => match event {
                    Some(change) => Trigger::File(change),
                    None => return,
                },
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                } => Trigger::Signal,
            };
            if let Trigger::File(mut last) = trigger {
                // Wait until the writes stop.
                while let Ok(Some(change)) =
                    tokio::time::timeout(last.quiet_time(), events.recv()).await
                {
                    last = change;
                }
            } else {
                tracing::info!("SIGHUP received; reloading {}", self.path.display());
            }
            self.reload(trigger).await;
        }
    }

    /// Read, compile and swap in the file's current content, unless it is
    /// the running version. Errors are logged; the old version stays.
    async fn reload(&self, trigger: Trigger) {
        let started = Instant::now();
        let current = self.server.guest_version();
        let runtime = self.runtime.clone();
        let path = self.path.clone();
        let skip = current.clone();
        // Compiling takes milliseconds to seconds: not on the async threads
        // that accept and serve connections.
        let loaded = tokio::task::spawn_blocking(move || load_if_new(&runtime, &path, &skip)).await;
        let guest = match loaded {
            Ok(Ok(Loaded::New(guest))) => guest,
            Ok(Ok(Loaded::Missing)) => {
                tracing::warn!(
                    app = %self.path.display(),
                    version = current,
                    "the app file is gone; still serving the old version"
                );
                return;
            }
            Ok(Ok(Loaded::Unchanged)) => {
                // Asked for explicitly: say so. On file events (a touch,
                // a rebuild to the same bytes) it is routine.
                if trigger == Trigger::Signal {
                    tracing::info!(version = current, "app file unchanged; nothing to reload");
                } else {
                    tracing::debug!(version = current, "app file unchanged; nothing to reload");
                }
                return;
            }
            Ok(Err(error)) => {
                self.count(SwapResult::Refused);
                tracing::error!(
                    app = %self.path.display(),
                    version = current,
                    "new version refused, still serving the old one: {}",
                    one_line(&error)
                );
                return;
            }
            Err(error) => {
                self.count(SwapResult::Refused);
                tracing::error!(
                    app = %self.path.display(),
                    version = current,
                    "new version refused, still serving the old one: compiling it failed: {error}"
                );
                return;
            }
        };
        let version = guest.version().to_owned();
        tracing::info!(
            app = %self.path.display(),
            from = current,
            to = version,
            ms = started.elapsed().as_millis() as u64,
            "hot swap"
        );
        self.server.swap_guest(guest);
        self.count(SwapResult::Swapped);
        // Read at each swap: SIGHUP may have changed it.
        if let Some(delay) = self.server.config().drain_after {
            let server = self.server.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                drain_old_versions(&server);
            });
        }
    }
}

impl Reloader {
    fn count(&self, result: SwapResult) {
        if let Some(metrics) = self.server.metrics() {
            metrics.guest_swapped(result);
        }
    }
}

/// Close (1012) every connection not on the version now serving.
fn drain_old_versions(server: &Server) {
    let current = server.guest_version();
    let closed = server.close_connections(
        |version| version != current,
        SERVICE_RESTART,
        "service restart",
    );
    if closed > 0 {
        tracing::info!(
            connections = closed,
            version = current,
            "closed connections still on an older version (1012)"
        );
    }
}

/// Read `path` and, unless it hashes to `current`, compile and link it.
fn load_if_new(runtime: &Runtime, path: &Path, current: &str) -> anyhow::Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    if version_of(&bytes) == current {
        return Ok(Loaded::Unchanged);
    }
    let guest = runtime.load_bytes(&bytes)?;
    Ok(Loaded::New(guest))
}

/// What reading the app file found.
enum Loaded {
    /// A new version, compiled and linked.
    New(Guest),
    /// The version already serving.
    Unchanged,
    /// No file (moved away or deleted, perhaps to be replaced).
    Missing,
}

/// Watch the directory of `path` (not recursively) and send on `tx` every
/// change that may have changed the file at `path`.
fn watch(path: &Path, tx: mpsc::UnboundedSender<Change>) -> anyhow::Result<RecommendedWatcher> {
    let name: OsString = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?
        .to_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if let Some(change) = change_of(&event, &name) {
                    let _ = tx.send(change);
                }
            }
            Err(error) => tracing::warn!(%error, "watching the app file"),
        })
        .context("starting the file watcher")?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    Ok(watcher)
}

/// What `event` did to the file named `name`, if it may have changed its
/// content: created, written, renamed onto, or closed after writing. Reads
/// (our own, among others) and removals are not changes to load.
fn change_of(event: &notify::Event, name: &OsString) -> Option<Change> {
    let change = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
            Change::Complete
        }
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
            Change::Partial
        }
        EventKind::Access(_) | EventKind::Remove(_) => return None,
    };
    event
        .paths
        .iter()
        .any(|path| path.file_name() == Some(name.as_os_str()))
        .then_some(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RemoveKind};

    fn event(kind: EventKind, paths: &[&str]) -> notify::Event {
        let mut event = notify::Event::new(kind);
        for path in paths {
            event = event.add_path(PathBuf::from(path));
        }
        event
    }

    #[test]
    fn only_changes_to_the_app_file_count() {
        let name = OsString::from("app.wasm");
        let change = |kind, paths: &[&str]| change_of(&event(kind, paths), &name);
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(change(create, &["/d/app.wasm"]), Some(Change::Partial));
        assert_eq!(change(create, &["/d/other.wasm"]), None);
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(change(write, &["/d/app.wasm"]), Some(Change::Partial));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(
            change(rename, &["/d/.app.wasm.tmp", "/d/app.wasm"]),
            Some(Change::Complete)
        );
        let renamed_away = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(
            change(renamed_away, &["/d/app.wasm"]),
            Some(Change::Partial)
        );
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(change(closed, &["/d/app.wasm"]), Some(Change::Complete));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(change(read, &["/d/app.wasm"]), None);
        let removed = EventKind::Remove(RemoveKind::File);
        assert_eq!(change(removed, &["/d/app.wasm"]), None);
    }
}
