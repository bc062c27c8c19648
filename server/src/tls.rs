//! TLS for the page protocol and the admin API (issue #8): certificate loading, the rustls
//! configurations both sides use, and the transports built on them.
//!
//! Owns: reading the `[tls]` PEM files into a [`ServerTls`] once at start (every error names
//! the file and says what is wrong with it, never its contents); the client side
//! ([`ClientTls`]: a CA to trust and the name to verify) used by `client`, `admin_client` and the
//! bench; [`stream::TlsStream`], a rustls server connection driven by hand over a glommio
//! `TcpStream`; and [`admin_relay`], which terminates TLS in front of the admin HTTP server.
//!
//! Choices: rustls with the `ring` provider (aws-lc-rs would need cmake and clang to build);
//! TLS 1.3 only; ALPN `pagecore` on the page protocol and `http/1.1` on the admin API (a client
//! that offers no ALPN is accepted, one that offers only other protocols is refused, so a
//! client of one listener cannot talk to the other by mistake); no session resumption (no
//! tickets, no session cache: connections live long, and a cache would be state shared by all
//! cores); no client certificates (tenants authenticate with tokens in `Hello`, `auth.rs`).
//!
//! Not here: which core serves a TLS connection (`serve.rs`; the handoff carries the rustls
//! connection state along with the socket), and reloading certificates (a restart does it).

pub(crate) mod admin_relay;
pub(crate) mod stream;

use rustls::crypto::ring;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN name of the page protocol (PROTOCOL.md, "Transport").
pub const PAGE_ALPN: &[u8] = b"pagecore";
/// ALPN name the admin API speaks.
pub const ADMIN_ALPN: &[u8] = b"http/1.1";

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: io::Error },
    #[error("{what} {path}: {why}")]
    Invalid { what: &'static str, path: PathBuf, why: String },
    #[error("certificate chain {cert} and private key {key} rejected: {source}")]
    Rejected { cert: PathBuf, key: PathBuf, source: rustls::Error },
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// The server's TLS configurations, one per listener (they differ only in ALPN). Its `Debug`
/// prints nothing of the key.
pub(crate) struct ServerTls {
    pub(crate) protocol: Arc<ServerConfig>,
    pub(crate) admin: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls { .. }")
    }
}

impl ServerTls {
    /// Reads the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or SEC1
    /// PEM) and checks that they belong together.
    pub(crate) fn load(cert_file: &Path, key_file: &Path) -> Result<ServerTls, TlsError> {
        let chain = read_certs("certificate chain file", cert_file)?;
        let key = read_key(key_file)?;
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|source| TlsError::Rejected {
                cert: cert_file.to_path_buf(),
                key: key_file.to_path_buf(),
                source,
            })?;
        let with_alpn = |alpn: &[u8]| {
            let mut config = config.clone();
            config.alpn_protocols = vec![alpn.to_vec()];
            config.send_tls13_tickets = 0;
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            Arc::new(config)
        };
        Ok(ServerTls { protocol: with_alpn(PAGE_ALPN), admin: with_alpn(ADMIN_ALPN) })
    }
}

/// What a client needs to connect over TLS: the CA certificates it trusts and the name the
/// server's certificate must carry (a DNS name or an IP address).
#[derive(Clone)]
pub struct ClientTls {
    page: Arc<ClientConfig>,
    admin: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").field("server_name", &self.server_name).finish()
    }
}

impl ClientTls {
    /// Trusts every certificate in the PEM file `ca_file` and verifies the server as
    /// `server_name`.
    pub fn new(ca_file: &Path, server_name: &str) -> Result<ClientTls, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs("CA file", ca_file)? {
            roots.add(cert).map_err(|error| TlsError::Invalid {
                what: "CA file",
                path: ca_file.to_path_buf(),
                why: error.to_string(),
            })?;
        }
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| TlsError::ServerName(server_name.to_string()))?;
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("the ring provider supports TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let with_alpn = |alpn: &[u8]| {
            let mut config = config.clone();
            config.alpn_protocols = vec![alpn.to_vec()];
            Arc::new(config)
        };
        Ok(ClientTls { page: with_alpn(PAGE_ALPN), admin: with_alpn(ADMIN_ALPN), server_name })
    }

    /// The name the server's certificate is verified against.
    pub fn server_name(&self) -> String {
        self.server_name.to_str().into_owned()
    }

    /// The rustls configuration for the page protocol.
    pub fn page_config(&self) -> Arc<ClientConfig> {
        self.page.clone()
    }

    /// The rustls configuration for the admin API (HTTP/1.1).
    pub fn admin_config(&self) -> Arc<ClientConfig> {
        self.admin.clone()
    }

    /// A new page-protocol client connection (the handshake has not started).
    pub fn page_connection(&self) -> io::Result<ClientConnection> {
        ClientConnection::new(self.page.clone(), self.server_name.clone()).map_err(io::Error::other)
    }

    /// Completes the handshake over a connected blocking socket. A certificate that does not
    /// verify fails here, with rustls' reason in the error.
    pub fn connect(
        &self,
        mut tcp: TcpStream,
    ) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
        let mut connection = self.page_connection()?;
        while connection.is_handshaking() {
            connection.complete_io(&mut tcp)?;
        }
        Ok(StreamOwned::new(connection, tcp))
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |why: String| TlsError::Invalid { what, path: path.to_path_buf(), why };
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("not a valid PEM file: {error}")))?;
    if certs.is_empty() {
        return Err(invalid("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// Reads a private key. Errors say what is wrong with the file, and never quote from it.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "private key file";
    // Read first, so a missing or unreadable file gets the OS reason.
    let text = std::fs::read(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })?;
    let key = PrivateKeyDer::from_pem_slice(&text);
    key.map_err(|error| {
        let why = match error {
            pem::Error::NoItemsFound => "no PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1) found",
            _ => "not a valid PEM private key",
        };
        TlsError::Invalid { what, path: path.to_path_buf(), why: why.into() }
    })
}

#[cfg(test)]
mod tests;
