//! Guest stdout and stderr, line by line into the host log.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Longest line kept before it is logged anyway, so a guest printing without
/// newlines cannot grow host memory.
const MAX_LINE: usize = 4096;

/// A guest output stream (`stdout` or `stderr`) of one connection.
pub struct GuestOutput {
    conn: u64,
    version: Arc<str>,
    stream: &'static str,
}

impl GuestOutput {
    /// Output of connection `conn`, served by guest `version`, on `stream`.
    pub fn new(conn: u64, version: &Arc<str>, stream: &'static str) -> Self {
        Self {
            conn,
            version: version.clone(),
            stream,
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            conn: self.conn,
            version: self.version.clone(),
            stream: self.stream,
            line: Vec::new(),
        })
    }
}

struct LineLogger {
    conn: u64,
    version: Arc<str>,
    stream: &'static str,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            self.line.clear();
            return;
        }
        let (conn, version, stream) = (self.conn, &*self.version, self.stream);
        if stream == "stderr" {
            tracing::warn!(conn, version, stream, "guest: {text}");
        } else {
            tracing::info!(conn, version, stream, "guest: {text}");
        }
        self.line.clear();
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        for chunk in buf.split_inclusive(|byte| *byte == b'\n') {
            self.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") || self.line.len() >= MAX_LINE {
                self.emit();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.emit();
    }
}
