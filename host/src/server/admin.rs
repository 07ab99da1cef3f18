//! The `--metrics-listen` port, apart from the WebSocket one: `/metrics`
//! (Prometheus / OpenMetrics text), `/healthz` (the process is up) and
//! `/readyz` (ready for connections: a guest loaded, listening, not
//! shutting down, a configured broker connected). Plain HTTP/1.1, one
//! request per connection.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Server;
use crate::metrics::Metrics;
use crate::protocol::handshake::HandshakeLimits;
use crate::protocol::static_files::{Method, PlainRequest, ResponseHead};

/// Time a scraper has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The content type of `/metrics`: the OpenMetrics text format, which
/// Prometheus negotiates and parses.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Answer requests on `listener` for as long as the process runs.
pub async fn serve(listener: TcpListener, server: Arc<Server>, metrics: Arc<Metrics>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (server, metrics) = (server.clone(), metrics.clone());
        tokio::spawn(async move { answer_one(stream, &server, &metrics).await });
    }
}

async fn answer_one(mut stream: TcpStream, server: &Server, metrics: &Metrics) {
    let limits = HandshakeLimits::default();
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < limits.max_header_bytes {
            if stream.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
        }
        Some(())
    };
    if !matches!(
        tokio::time::timeout(REQUEST_TIMEOUT, read).await,
        Ok(Some(()))
    ) {
        return;
    }
    let request = PlainRequest::parse(&buf, &limits);
    let response = respond(request.as_ref(), server.not_ready(), || metrics.encode());
    if stream.write_all(&response).await.is_ok() {
        super::close_after_response(&mut stream).await;
    }
}

/// The answer to `request` (`None`: malformed): `not_ready` is why the
/// server is not ready, if it is not; `metrics` renders `/metrics`.
fn respond(
    request: Option<&PlainRequest>,
    not_ready: Option<&str>,
    metrics: impl FnOnce() -> String,
) -> Vec<u8> {
    let now = SystemTime::now();
    let Some(request) = request else {
        return plain(400, "bad request\n", false, now);
    };
    let head_only = request.head_only();
    if let Method::Other(_) = request.method {
        return ResponseHead::new(405, now)
            .header("Allow", "GET, HEAD")
            .header("Content-Length", "0")
            .to_bytes();
    }
    match request.path() {
        "/metrics" => body(200, METRICS_CONTENT_TYPE, &metrics(), head_only, now),
        "/healthz" => plain(200, "ok\n", head_only, now),
        "/readyz" => match not_ready {
            None => plain(200, "ready\n", head_only, now),
            Some(reason) => plain(503, &format!("not ready: {reason}\n"), head_only, now),
        },
        _ => plain(404, "not found\n", head_only, now),
    }
}

fn plain(status: u16, text: &str, head_only: bool, now: SystemTime) -> Vec<u8> {
    body(status, "text/plain; charset=utf-8", text, head_only, now)
}

fn body(status: u16, content_type: &str, text: &str, head_only: bool, now: SystemTime) -> Vec<u8> {
    let mut response = ResponseHead::new(status, now)
        .header("Content-Type", content_type.to_owned())
        .header("Content-Length", text.len().to_string())
        .header("Cache-Control", "no-store")
        .to_bytes();
    if !head_only {
        response.extend_from_slice(text.as_bytes());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> PlainRequest {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
        PlainRequest::parse(raw.as_bytes(), &HandshakeLimits::default()).unwrap()
    }

    fn answer(request: Option<&PlainRequest>, not_ready: Option<&str>) -> String {
        String::from_utf8(respond(request, not_ready, || "m 1\n# EOF\n".into())).unwrap()
    }

    #[test]
    fn each_path_gets_its_answer() {
        let metrics = answer(Some(&get("/metrics")), None);
        assert!(metrics.starts_with("HTTP/1.1 200 "), "{metrics}");
        assert!(metrics.contains(METRICS_CONTENT_TYPE), "{metrics}");
        assert!(metrics.ends_with("\r\n\r\nm 1\n# EOF\n"), "{metrics}");
        assert!(answer(Some(&get("/healthz")), Some("x")).ends_with("\r\n\r\nok\n"));
        let ready = answer(Some(&get("/readyz")), None);
        assert!(ready.starts_with("HTTP/1.1 200 ") && ready.ends_with("ready\n"));
        let busy = answer(Some(&get("/readyz")), Some("shutting down"));
        assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
        assert!(busy.ends_with("not ready: shutting down\n"), "{busy}");
        assert!(answer(Some(&get("/other")), None).starts_with("HTTP/1.1 404 "));
        assert!(answer(None, None).starts_with("HTTP/1.1 400 "));
        let post = PlainRequest::parse(
            b"POST /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
            &HandshakeLimits::default(),
        );
        let post = answer(post.as_ref(), None);
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    }

    #[test]
    fn head_gets_no_body() {
        let head = PlainRequest::parse(
            b"HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
            &HandshakeLimits::default(),
        );
        let head = answer(head.as_ref(), None);
        assert!(head.contains("Content-Length: 3\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }
}
