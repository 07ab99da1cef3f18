//! `--tls-cert` / `--tls-key`: `wss://` with rustls (ring provider).
//!
//! - The certificate chain and key are PEM files, read at start: a missing,
//!   unreadable or mismatched pair stops the start with a message naming
//!   the file.
//! - Rotation: the files' directories are watched (as the app's is, see
//!   [`crate::reload`]), and SIGHUP re-reads them too; a new pair serves
//!   every new TLS handshake from then on, live connections keep theirs. A
//!   pair that does not load (say the key was written before the
//!   certificate) is logged and the old one kept; the next change retries.
//! - [`Stream`] is what the IO layer reads and writes: plain TCP or TLS.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher as _};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Quiet time after the last change in a watched directory before the
/// files are read (a rotation writes two files, often in several steps).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Why a certificate and key could not be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The certificate file could not be read or parsed.
    #[error("TLS certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file could not be read or parsed.
    #[error("TLS key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the certificate's, or not a kind rustls signs with.
    #[error("TLS key {key} does not go with certificate {cert}: {source}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// rustls refused the configuration.
    #[error("setting up TLS: {0}")]
    Config(#[from] rustls::Error),
    /// The files' directories cannot be watched.
    #[error("watching the TLS files: {0}")]
    Watch(#[from] notify::Error),
}

/// The certificate and key files, and the pair loaded from them last.
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The files' bytes behind `current`, to skip unchanged rereads.
    loaded: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl CertStore {
    /// Load the pair at `cert` and `key` (PEM: the chain, leaf first, and
    /// a PKCS#8, PKCS#1 or SEC1 private key).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = read_pair(cert, key)?;
        let pair = certified_key(cert, key, &cert_pem, &key_pem, &provider)?;
        Ok(Arc::new(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: ArcSwap::from_pointee(pair),
            loaded: Mutex::new((cert_pem, key_pem)),
        }))
    }

    /// The rustls server configuration that serves this store's pair
    /// (TLS 1.2 and 1.3, HTTP/1.1 by ALPN).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Read the files again; swap in the pair if it changed and loads.
    /// `Ok(true)`: a new pair serves from now on.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = read_pair(&self.cert, &self.key)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if loaded.0 == cert_pem && loaded.1 == key_pem {
            return Ok(false);
        }
        let pair = certified_key(&self.cert, &self.key, &cert_pem, &key_pem, &self.provider)?;
        self.current.store(Arc::new(pair));
        *loaded = (cert_pem, key_pem);
        Ok(true)
    }

    /// Reload on changes in the files' directories and on SIGHUP, for as
    /// long as the process runs (on the current tokio runtime).
    pub fn watch(self: &Arc<Self>) -> Result<(), TlsError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Any change in the directories: a Kubernetes secret rotates by
                // swapping a symlinked directory, not the files themselves.
                if event.is_ok_and(|event| !event.kind.is_access()) {
                    let _ = tx.send(());
                }
            })?;
        let mut dirs: Vec<PathBuf> = [&self.cert, &self.key]
            .iter()
            .map(|path| match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
                _ => PathBuf::from("."),
            })
            .collect();
        dirs.dedup();
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let store = self.clone();
        tokio::spawn(async move {
            let _watcher = watcher;
            loop {
                tokio::select! {
                    event = rx.recv() => {
                        if event.is_none() {
                            return;
                        }
                        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                    }
                    Some(()) = async {
                        match hangup.as_mut() {
                            Some(signal) => signal.recv().await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
                match store.reload() {
                    Ok(true) => tracing::info!(
                        cert = %store.cert.display(),
                        "TLS certificate reloaded; new connections use it"
                    ),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::error!("TLS certificate not reloaded, the old one stays: {error}");
                    }
                }
            }
        });
        Ok(())
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let cert_pem = std::fs::read(cert).map_err(|error| TlsError::Certificate {
        path: cert.to_owned(),
        reason: error.to_string(),
    })?;
    let key_pem = std::fs::read(key).map_err(|error| TlsError::Key {
        path: key.to_owned(),
        reason: error.to_string(),
    })?;
    Ok((cert_pem, key_pem))
}

/// Parse a PEM chain and key and check that they belong together.
fn certified_key(
    cert: &Path,
    key: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::Certificate {
            path: cert.to_owned(),
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_owned(),
            reason: "no PEM certificate in it (BEGIN CERTIFICATE)".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| TlsError::Key {
        path: key.to_owned(),
        reason: match error {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PEM private key in it (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .into()
            }
            other => other.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// A connection's byte stream: plain TCP, or TLS over it.
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
