//! Answering plain HTTP requests (no WebSocket upgrade) on the WebSocket
//! port: the `--devconsole` page and `--static` files. One request per
//! connection: the answer says `Connection: close` and the connection
//! closes after it. The decisions are sans-IO, in [`crate::protocol::static_files`];
//! this module resolves paths on disk and streams files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use super::tls::Stream;

use crate::config::ServerConfig;
use crate::protocol::static_files::{
    CONSOLE_PATH, INDEX_FILE, Method, PlainRequest, ResponseHead, StaticError, Validators,
    content_type, directory_redirect, file_head, safe_path,
};

/// The built-in dev console: one self-contained page (inline CSS and JS).
const CONSOLE_HTML: &str = include_str!("devconsole.html");

/// Bytes read from a file per write to the socket.
const CHUNK: usize = 64 << 10;

/// The plain request at the front of `buf` that this server answers
/// itself: any, with `--static`; the console's path, with `--devconsole`;
/// none otherwise (the handshake's error answer stands).
pub(super) fn request(config: &ServerConfig, buf: &[u8]) -> Option<PlainRequest> {
    if config.static_dir.is_none() && !config.devconsole {
        return None;
    }
    let request = PlainRequest::parse(buf, &config.handshake_limits())?;
    let console = config.devconsole && request.path() == CONSOLE_PATH;
    (console || config.static_dir.is_some()).then_some(request)
}

/// What a plain request is answered with.
enum Reply {
    /// A complete response.
    Bytes(Vec<u8>),
    /// A head, then `len` bytes of `file`.
    File {
        head: Vec<u8>,
        file: tokio::fs::File,
        len: u64,
    },
}

/// Answer `request` (from [`request`]), then close the connection.
pub(super) async fn answer(
    config: &ServerConfig,
    stream: &mut Stream,
    request: &PlainRequest,
    id: u64,
    remote: SocketAddr,
) {
    let now = SystemTime::now();
    let head_only = request.head_only();
    let reply = if let Method::Other(_) = request.method {
        Err(StaticError::MethodNotAllowed)
    } else if config.devconsole && request.path() == CONSOLE_PATH {
        Ok(console(head_only, now))
    } else if let Some(root) = &config.static_dir {
        resolve(root, request, now).await
    } else {
        Err(StaticError::NotFound)
    };
    let reply = reply.unwrap_or_else(|error| {
        if let StaticError::Refused(reason) = error {
            tracing::info!(conn = id, %remote, target = request.target, reason, "static path refused");
        }
        Reply::Bytes(error.response(head_only, now))
    });
    let sent = match reply {
        Reply::Bytes(bytes) => stream.write_all(&bytes).await,
        Reply::File { head, file, len } => send_file(stream, &head, file, len).await,
    };
    match sent {
        Ok(()) => super::close_after_response(stream).await,
        Err(error) => tracing::debug!(conn = id, %remote, %error, "answer not sent"),
    }
    tracing::debug!(conn = id, %remote, method = ?request.method, target = request.target, "plain request answered");
}

/// The console page.
fn console(head_only: bool, now: SystemTime) -> Reply {
    let mut bytes = ResponseHead::new(200, now)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Content-Length", CONSOLE_HTML.len().to_string())
        .header("Cache-Control", "no-store")
        .to_bytes();
    if !head_only {
        bytes.extend_from_slice(CONSOLE_HTML.as_bytes());
    }
    Reply::Bytes(bytes)
}

/// Find the file `request` names under `root` and decide the answer.
///
/// The final path is canonicalized (every symlink resolved) and must lie
/// inside the canonical `root`: symlinks within the directory are
/// followed, ones leading out of it are refused. (A symlink swapped in
/// between this check and the open is not caught; whoever can write the
/// directory can serve what they like anyway.)
async fn resolve(
    root: &Path,
    request: &PlainRequest,
    now: SystemTime,
) -> Result<Reply, StaticError> {
    let safe = safe_path(request.path())?;
    let root = tokio::fs::canonicalize(root).await.map_err(|error| {
        tracing::warn!(root = %root.display(), %error, "static directory unavailable");
        StaticError::NotFound
    })?;
    let mut path = contained(&root, &root.join(&safe.relative)).await?;
    let mut metadata = tokio::fs::metadata(&path)
        .await
        .map_err(|_| StaticError::NotFound)?;
    if metadata.is_dir() {
        if !safe.directory {
            return Ok(Reply::Bytes(directory_redirect(request, now)));
        }
        path = contained(&root, &path.join(INDEX_FILE)).await?;
        metadata = tokio::fs::metadata(&path)
            .await
            .map_err(|_| StaticError::NotFound)?;
    } else if safe.directory {
        return Err(StaticError::NotFound);
    }
    // Only regular files: opening a FIFO or a device could block or never end.
    if !metadata.is_file() {
        return Err(StaticError::NotFound);
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| StaticError::NotFound)?;
    // The open file's own metadata, so length and validators match what is sent.
    let metadata = file.metadata().await.map_err(|_| StaticError::NotFound)?;
    let len = metadata.len();
    let validators = Validators::new(len, metadata.modified().ok());
    let not_modified = validators.not_modified(request);
    let head = file_head(content_type(&path), len, &validators, not_modified, now).to_bytes();
    if not_modified || request.head_only() {
        return Ok(Reply::Bytes(head));
    }
    Ok(Reply::File { head, file, len })
}

/// `path` with every symlink resolved, if it exists and lies inside `root`
/// (itself canonical).
async fn contained(root: &Path, path: &Path) -> Result<PathBuf, StaticError> {
    let canonical = tokio::fs::canonicalize(path)
        .await
        .map_err(|_| StaticError::NotFound)?;
    if canonical.starts_with(root) {
        Ok(canonical)
    } else {
        Err(StaticError::Refused("symlink leads out of the directory"))
    }
}

/// Write `head`, then stream `len` bytes of `file` (never the whole file
/// in memory). A file that shrank meanwhile ends the body early; the
/// client sees fewer bytes than `Content-Length` promised.
async fn send_file(
    stream: &mut Stream,
    head: &[u8],
    file: tokio::fs::File,
    len: u64,
) -> std::io::Result<()> {
    stream.write_all(head).await?;
    let mut body = BufReader::with_capacity(CHUNK, file.take(len));
    let sent = tokio::io::copy_buf(&mut body, stream).await?;
    if sent < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("file shrank while being sent ({sent} of {len} bytes)"),
        ));
    }
    Ok(())
}
