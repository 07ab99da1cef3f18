//! `--static DIR` and `--devconsole`: plain HTTP requests on the WebSocket
//! port are answered with files (or the console page), nothing outside DIR
//! is ever served, and WebSocket upgrades on the same port still work.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::{SinkExt, StreamExt};
use support::{Host, RawClient};
use tokio_tungstenite::tungstenite::Message;

/// What the file outside the served directory holds; no answer may contain it.
const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-DIRECTORY";

/// A fresh directory tree, removed when dropped:
/// `ROOT/secret` (outside) and `ROOT/www` (served).
struct Site {
    root: PathBuf,
    www: PathBuf,
}

impl Site {
    fn new() -> Site {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "wsbox-static-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let www = root.join("www");
        std::fs::create_dir_all(www.join("sub")).unwrap();
        std::fs::create_dir_all(www.join("empty")).unwrap();
        std::fs::write(root.join("secret"), SECRET).unwrap();
        let files: &[(&str, &[u8])] = &[
            ("index.html", b"<h1>home</h1>"),
            ("style.css", b"body{}"),
            ("app.js", b"console.log(1)"),
            ("app.mjs", b"export {}"),
            ("data.json", b"{}"),
            ("pic.png", b"\x89PNG"),
            ("pic.svg", b"<svg/>"),
            ("notes.txt", b"notes"),
            ("mod.wasm", b"\0asm"),
            ("font.woff2", b"wOF2"),
            ("blob.unknown", b"??"),
            ("hello world.txt", b"spaces"),
            ("sub/index.html", b"<h1>sub</h1>"),
            ("sub/page.txt", b"sub page"),
        ];
        for (name, content) in files {
            std::fs::write(www.join(name), content).unwrap();
        }
        // A symlink inside the directory to a file inside it is served; one
        // to a file (or a directory) outside it is not.
        std::os::unix::fs::symlink("index.html", www.join("inside-link.html")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), www.join("outside-link")).unwrap();
        std::os::unix::fs::symlink(&root, www.join("outside-dir")).unwrap();
        Site { root, www }
    }

    fn www(&self) -> &Path {
        &self.www
    }

    fn start(&self, extra: &[&str]) -> Host {
        let mut args = vec!["--static", self.www.to_str().unwrap()];
        args.extend_from_slice(extra);
        Host::start("echo", &args)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// An HTTP response read to EOF.
struct Response {
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {:?}", self.head))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send `METHOD TARGET` with extra header lines; read the answer to EOF
/// (every answer closes the connection).
async fn request(host: &Host, method: &str, target: &str, headers: &[&str]) -> Response {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", host.addr);
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    let (mut client, head) = RawClient::send_request(host.addr, raw.as_bytes()).await;
    let body = client.read_to_end().await;
    Response { head, body }
}

async fn get(host: &Host, target: &str) -> Response {
    request(host, "GET", target, &[]).await
}

#[tokio::test]
async fn index_html_answers_the_root_and_subdirectories() {
    let site = Site::new();
    let host = site.start(&[]);
    let root = get(&host, "/").await;
    assert_eq!(root.status(), 200, "{}", root.head);
    assert_eq!(
        root.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(root.header("Content-Length"), Some("13"));
    assert_eq!(root.header("Connection"), Some("close"));
    assert!(root.header("ETag").is_some(), "{}", root.head);
    assert!(root.header("Last-Modified").is_some(), "{}", root.head);
    assert_eq!(root.text(), "<h1>home</h1>");

    let sub = get(&host, "/sub/").await;
    assert_eq!(sub.text(), "<h1>sub</h1>");
    let page = get(&host, "/sub/page.txt?cache=bust").await;
    assert_eq!(page.text(), "sub page");
    let spaced = get(&host, "/hello%20world.txt").await;
    assert_eq!(spaced.text(), "spaces");
    let linked = get(&host, "/inside-link.html").await;
    assert_eq!(linked.status(), 200);
    assert_eq!(linked.text(), "<h1>home</h1>");
}

#[tokio::test]
async fn a_directory_without_its_slash_is_redirected() {
    let site = Site::new();
    let host = site.start(&[]);
    let moved = get(&host, "/sub?x=1").await;
    assert_eq!(moved.status(), 301, "{}", moved.head);
    assert_eq!(moved.header("Location"), Some("/sub/?x=1"));
    // A directory without index.html, and a file named like a directory.
    assert_eq!(get(&host, "/empty/").await.status(), 404);
    assert_eq!(get(&host, "/notes.txt/").await.status(), 404);
}

#[tokio::test]
async fn content_types_follow_extensions() {
    let site = Site::new();
    let host = site.start(&[]);
    for (path, expected) in [
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/app.mjs", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/pic.png", "image/png"),
        ("/pic.svg", "image/svg+xml"),
        ("/notes.txt", "text/plain; charset=utf-8"),
        ("/mod.wasm", "application/wasm"),
        ("/font.woff2", "font/woff2"),
        ("/blob.unknown", "application/octet-stream"),
    ] {
        let response = get(&host, path).await;
        assert_eq!(response.status(), 200, "{path}: {}", response.head);
        assert_eq!(response.header("Content-Type"), Some(expected), "{path}");
    }
}

#[tokio::test]
async fn missing_files_bad_escapes_and_other_methods() {
    let site = Site::new();
    let host = site.start(&[]);
    let missing = get(&host, "/nope.html").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text(), "not found\n");
    assert_eq!(get(&host, "/%zz").await.status(), 400);
    let post = request(&host, "POST", "/index.html", &["Content-Length: 0"]).await;
    assert_eq!(post.status(), 405, "{}", post.head);
    assert_eq!(post.header("Allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn head_answers_like_get_without_the_body() {
    let site = Site::new();
    let host = site.start(&[]);
    let head = request(&host, "HEAD", "/index.html", &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.header("Content-Length"), Some("13"));
    assert_eq!(
        head.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(head.body.is_empty(), "{:?}", head.text());
    let missing = request(&host, "HEAD", "/nope", &[]).await;
    assert_eq!(missing.status(), 404);
    assert!(missing.body.is_empty());
}

/// GET `/style.css` with one conditional header.
async fn get_css_if(host: &Host, condition: &str) -> Response {
    request(host, "GET", "/style.css", &[condition]).await
}

#[tokio::test]
async fn conditional_requests_get_304() {
    let site = Site::new();
    let host = site.start(&[]);
    let first = get(&host, "/style.css").await;
    let etag = first.header("ETag").unwrap().to_owned();
    let modified = first.header("Last-Modified").unwrap().to_owned();

    let by_tag = get_css_if(&host, &format!("If-None-Match: {etag}")).await;
    assert_eq!(by_tag.status(), 304, "{}", by_tag.head);
    assert!(by_tag.body.is_empty());
    assert_eq!(by_tag.header("ETag"), Some(etag.as_str()));

    let by_date = get_css_if(&host, &format!("If-Modified-Since: {modified}")).await;
    assert_eq!(by_date.status(), 304, "{}", by_date.head);
    assert!(by_date.body.is_empty());

    let other_tag = get_css_if(&host, "If-None-Match: \"other\"").await;
    assert_eq!(other_tag.status(), 200);
    assert_eq!(other_tag.text(), "body{}");
    let old_date = get_css_if(&host, "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT").await;
    assert_eq!(old_date.status(), 200);

    // A changed file gets a new tag.
    std::fs::write(site.www().join("style.css"), "body{color:red}").unwrap();
    let changed = get_css_if(&host, &format!("If-None-Match: {etag}")).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.text(), "body{color:red}");
}

#[tokio::test]
async fn large_files_arrive_whole() {
    let site = Site::new();
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(site.www().join("big.bin"), &big).unwrap();
    let host = site.start(&[]);
    let response = get(&host, "/big.bin").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.header("Content-Length"), Some("5000000"));
    assert!(
        response.body == big,
        "body differs ({} bytes)",
        response.body.len()
    );
}

#[tokio::test]
async fn no_path_leaves_the_directory() {
    let site = Site::new();
    let host = site.start(&[]);
    for attempt in [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E./secret",
        "/%2E%2E%2Fsecret",
        "/..%2fsecret",
        "/a/%5c..%5csecret",
        "/sub/../../secret",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/%00",
        "/index.html%00.txt",
        "/outside-link",
        "/outside-dir/secret",
        "/outside-dir/",
        "http://h/../secret",
    ] {
        let response = get(&host, attempt).await;
        assert!(
            matches!(response.status(), 400 | 404),
            "{attempt}: {}",
            response.head
        );
        assert!(
            !response.text().contains(SECRET),
            "{attempt} leaked the secret"
        );
    }
    host.wait_for_log(&["static path refused", "symlink leads out of the directory"]);
    host.wait_for_log(&["static path refused", "dot segment"]);
}

#[tokio::test]
async fn websocket_upgrades_still_work_on_the_same_port() {
    let site = Site::new();
    let host = site.start(&["--devconsole"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .expect("the upgrade succeeds next to --static");
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.close(None).await.unwrap();
    // A broken upgrade still gets the handshake's answer, not a file.
    let (_, head) = RawClient::send_request(
        host.addr,
        format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            host.addr
        )
        .as_bytes(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
}

#[tokio::test]
async fn a_plain_request_over_the_connection_limit_gets_503() {
    let site = Site::new();
    let host = site.start(&["--max-connections", "1"]);
    let (_ws, _) = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .unwrap();
    let busy = get(&host, "/").await;
    assert_eq!(busy.status(), 503, "{}", busy.head);
    assert_eq!(busy.header("Retry-After"), Some("1"));
}

fn assert_console(response: &Response) {
    assert_eq!(response.status(), 200, "{}", response.head);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let page = response.text();
    assert!(page.contains("wsbox dev console"), "{page}");
    assert!(page.contains("new WebSocket("), "{page}");
    // Self-contained: no external scripts, styles or images.
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
    ] {
        assert!(!page.contains(external), "the page loads {external}");
    }
}

#[tokio::test]
async fn the_devconsole_is_served_with_or_without_static() {
    let host = Host::start("echo", &["--devconsole"]);
    assert_console(&get(&host, "/__wsbox/console").await);
    assert_console(&get(&host, "/__wsbox/console?path=/chat").await);
    // Without --static, other plain requests keep today's answer.
    let other = get(&host, "/").await;
    assert_eq!(other.status(), 400);
    assert_eq!(other.text(), "missing Upgrade: websocket\n");

    let site = Site::new();
    let with_static = site.start(&["--devconsole"]);
    assert_console(&get(&with_static, "/__wsbox/console").await);
    assert_eq!(get(&with_static, "/").await.status(), 200);
}

#[tokio::test]
async fn without_the_flags_plain_requests_get_the_handshake_answers() {
    let host = Host::start("echo", &[]);
    let console = get(&host, "/__wsbox/console").await;
    assert_eq!(console.status(), 400);
    assert_eq!(console.text(), "missing Upgrade: websocket\n");
    let post = request(&host, "POST", "/", &["Content-Length: 0"]).await;
    assert_eq!(post.status(), 405);
    assert_eq!(post.header("Allow"), Some("GET"));

    // --static without --devconsole: the console path is just a file path.
    let site = Site::new();
    let with_static = site.start(&[]);
    assert_eq!(get(&with_static, "/__wsbox/console").await.status(), 404);
}

#[test]
fn a_missing_static_directory_is_refused_at_start() {
    let site = Site::new();
    for dir in [site.root.join("nope"), site.root.join("secret")] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
            .arg("serve")
            .arg(support::guest("echo"))
            .args(["--listen", "127.0.0.1:0", "--static"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--static"), "{stderr}");
        assert!(
            stderr.contains("No such file") || stderr.contains("not a directory"),
            "{stderr}"
        );
    }
}
