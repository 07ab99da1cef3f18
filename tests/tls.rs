//! `--tls-cert` / `--tls-key`: wss:// with a CA and certificates made in
//! the test, real TLS clients that trust only that CA, certificate
//! rotation without a restart, the handshake timeout covering TLS, and
//! bad files stopping the start.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use support::{Host, guest};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

/// A test CA that signs server certificates for localhost and 127.0.0.1.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "wsbox test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    /// A leaf certificate (PEM) named `name`, and its key (PEM).
    fn leaf(&self, name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A TLS client that trusts only this CA.
    fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsbox-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Write `cert` and `key` into `dir` the way rotation tools do: each to a
/// temporary file renamed over the old one, the key first.
fn install(dir: &Path, (cert, key): &(String, String)) {
    for (name, text) in [("key.pem", key), ("cert.pem", cert)] {
        let temp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, dir.join(name)).unwrap();
    }
}

fn tls_args(dir: &Path) -> Vec<String> {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    vec![
        "--tls-cert".into(),
        path("cert.pem"),
        "--tls-key".into(),
        path("key.pem"),
    ]
}

/// Open wss://localhost:PORT/ through `connector`, echo one message, and
/// return the certificate the server showed.
async fn echo_over_tls(
    host: &Host,
    connector: &TlsConnector,
    text: &str,
) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(host.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let url = format!("wss://localhost:{}/", host.addr.port());
    let (mut ws, response) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text(text)).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    shown
}

#[tokio::test]
async fn wss_echoes_and_a_rotated_certificate_serves_new_connections() {
    let dir = temp_dir("rotate");
    let pki = Pki::new();
    let first = pki.leaf("first");
    install(&dir, &first);
    let args = tls_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start("echo", &args);
    host.wait_for_log(&["listening on wss://"]);
    let connector = pki.connector();
    let shown = echo_over_tls(&host, &connector, "over tls").await;
    assert_eq!(shown.as_ref(), pem_der(&first.0).as_slice());
    // A plain ws:// client gets no WebSocket (its request is not TLS).
    let plain = tokio_tungstenite::connect_async(host.url("/")).await;
    assert!(plain.is_err(), "plain ws:// was served");

    let second = pki.leaf("second");
    install(&dir, &second);
    host.wait_for_log(&["TLS certificate reloaded"]);
    // A new client: one that resumes its TLS session sees no certificate.
    let shown = echo_over_tls(&host, &pki.connector(), "after rotation").await;
    assert_eq!(shown.as_ref(), pem_der(&second.0).as_slice());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The DER inside a one-certificate PEM.
fn pem_der(pem: &str) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Python's `websockets`, trusting only the test CA, over wss://.
const PYTHON_CLIENT: &str = r#"
import asyncio, ssl, sys
from websockets.asyncio.client import connect

async def main(url, ca):
    context = ssl.create_default_context(cafile=ca)
    async with connect(url, ssl=context) as ws:
        await ws.send("from python")
        print(await ws.recv())

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[test]
fn python_websockets_connects_over_wss() {
    let Some(python) = support::interop::python() else {
        return;
    };
    let dir = temp_dir("python");
    let pki = Pki::new();
    install(&dir, &pki.leaf("python"));
    std::fs::write(dir.join("ca.pem"), pki.ca.pem()).unwrap();
    let args = tls_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start("echo", &args);
    let output = Command::new(python)
        .args(["-c", PYTHON_CLIENT])
        .arg(format!("wss://localhost:{}/", host.addr.port()))
        .arg(dir.join("ca.pem"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "from python\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_handshake_timeout_covers_the_tls_handshake() {
    let dir = temp_dir("timeout");
    install(&dir, &Pki::new().leaf("slow"));
    let mut args = tls_args(&dir);
    args.extend(["--handshake-timeout".into(), "500ms".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start("echo", &args);
    // A client that connects and says nothing is dropped at the timeout.
    let mut silent = TcpStream::connect(host.addr).await.unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    host.wait_for_log(&["handshake timed out (TLS)"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_or_bad_files_stop_the_start_with_the_reason() {
    let dir = temp_dir("bad");
    let pki = Pki::new();
    let (cert, _) = pki.leaf("a");
    let (_, other_key) = pki.leaf("b");
    let start = |cert: &str, key: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_host"))
            .arg("serve")
            .arg(guest("echo"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(!output.status.success(), "started with {cert} {key}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("other.key"), &other_key).unwrap();
    std::fs::write(dir.join("junk.pem"), "not pem at all\n").unwrap();

    let stderr = start(&path("missing.pem"), &path("other.key"));
    assert!(
        stderr.contains("TLS certificate") && stderr.contains("missing.pem"),
        "{stderr}"
    );
    let stderr = start(&path("junk.pem"), &path("other.key"));
    assert!(stderr.contains("junk.pem: no PEM certificate"), "{stderr}");
    let stderr = start(&path("cert.pem"), &path("junk.pem"));
    assert!(stderr.contains("junk.pem: no PEM private key"), "{stderr}");
    let stderr = start(&path("cert.pem"), &path("other.key"));
    assert!(stderr.contains("does not go with certificate"), "{stderr}");
    // One without the other is a usage error.
    let output = Command::new(env!("CARGO_BIN_EXE_host"))
        .args(["serve", "app.wasm", "--tls-cert", &path("cert.pem")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key"));
    let _ = std::fs::remove_dir_all(&dir);
}
