//! HTTPS for the fake: a CA made at start, a server certificate it issues,
//! optionally a client CA and a client certificate for mutual TLS, and a
//! listener that completes TLS handshakes before axum sees a connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::secret::PrivateKeyPem;

/// Time a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the fake serves HTTPS (see [`FakeServerBuilder::tls`](super::FakeServerBuilder::tls)).
#[derive(Clone, Debug)]
#[must_use]
pub struct FakeTls {
    names: Vec<String>,
    require_client_cert: bool,
    expired: bool,
    tls12_only: bool,
}

impl Default for FakeTls {
    fn default() -> Self {
        FakeTls {
            names: vec!["localhost".to_string(), "127.0.0.1".to_string()],
            require_client_cert: false,
            expired: false,
            tls12_only: false,
        }
    }
}

impl FakeTls {
    /// A server certificate for `localhost` and `127.0.0.1`, no client
    /// certificate required.
    pub fn new() -> Self {
        FakeTls::default()
    }

    /// The names (DNS names or IP addresses) the server certificate is valid
    /// for, replacing the default `localhost` and `127.0.0.1`.
    pub fn names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Refuse clients that do not present a certificate issued by the fake's
    /// client CA (mutual TLS); the fake makes one such client certificate.
    pub fn require_client_cert(mut self, require: bool) -> Self {
        self.require_client_cert = require;
        self
    }

    /// Serve a server certificate whose validity ended long ago, to test
    /// how clients report it.
    pub fn expired(mut self, expired: bool) -> Self {
        self.expired = expired;
        self
    }

    /// Speak TLS 1.2 only (default: TLS 1.2 and 1.3), to test a client's
    /// minimum version.
    pub fn tls12_only(mut self, only: bool) -> Self {
        self.tls12_only = only;
        self
    }
}

/// The certificates a TLS fake made at start: what a client needs to trust
/// it and, with mutual TLS, to be trusted by it. The CA private keys are
/// never kept.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    ca_cert_pem: String,
    client: Option<ClientMaterial>,
}

#[derive(Clone, Debug)]
struct ClientMaterial {
    ca_cert_pem: String,
    cert_pem: String,
    key_pem: PrivateKeyPem,
}

impl TlsMaterial {
    /// The CA certificate (PEM) that issued the server certificate: pass it
    /// to `add_root_certificate` or `--ca-cert`.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// With mutual TLS, the CA certificate (PEM) the server trusts for client
    /// certificates.
    pub fn client_ca_cert_pem(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.ca_cert_pem.as_str())
    }

    /// With mutual TLS, a client certificate (PEM) the server accepts.
    pub fn client_cert_pem(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.cert_pem.as_str())
    }

    /// With mutual TLS, the private key (PEM) of
    /// [`client_cert_pem`](Self::client_cert_pem).
    pub fn client_key_pem(&self) -> Option<&PrivateKeyPem> {
        self.client.as_ref().map(|c| &c.key_pem)
    }
}

fn tls_error(what: &str, err: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("fake TLS: {what}: {err}"))
}

/// A CA: its certificate and the issuer that signs with its key.
fn new_ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>), std::io::Error> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_error("CA parameters", e))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Each run makes a new CA; a name of its own keeps verifiers from
    // mistaking one run's CA for another's.
    let name = format!("{name} {:08x}", fastrand::u32(..));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(|e| tls_error("CA key", e))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| tls_error("CA certificate", e))?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A leaf certificate issued by `issuer`, with its key.
fn new_leaf(
    names: &[String],
    usage: ExtendedKeyUsagePurpose,
    expired: bool,
    issuer: &Issuer<'static, KeyPair>,
) -> Result<(rcgen::Certificate, KeyPair), std::io::Error> {
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|e| tls_error("certificate names", e))?;
    let common_name = names.first().map_or("ecgridos fake client", String::as_str);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().map_err(|e| tls_error("key", e))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| tls_error("certificate", e))?;
    Ok((cert, key))
}

/// Makes the certificates and the server's TLS configuration.
pub(crate) fn make(
    tls: &FakeTls,
) -> Result<(TlsMaterial, Arc<rustls::ServerConfig>), std::io::Error> {
    let provider = crate::netconf::crypto_provider();
    let (ca_cert_pem, ca) = new_ca("ecgridos fake CA")?;
    let (server_cert, server_key) = new_leaf(
        &tls.names,
        ExtendedKeyUsagePurpose::ServerAuth,
        tls.expired,
        &ca,
    )?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| tls_error("protocol versions", e))?;
    let (builder, client) = if tls.require_client_cert {
        let (client_ca_pem, client_ca) = new_ca("ecgridos fake client CA")?;
        let (client_cert, client_key) =
            new_leaf(&[], ExtendedKeyUsagePurpose::ClientAuth, false, &client_ca)?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(client_ca_cert_der(&client_ca_pem)?)
            .map_err(|e| tls_error("client CA", e))?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_error("client verifier", e))?;
        (
            builder.with_client_cert_verifier(verifier),
            Some(ClientMaterial {
                ca_cert_pem: client_ca_pem,
                cert_pem: client_cert.pem(),
                key_pem: PrivateKeyPem::new(client_key.serialize_pem()),
            }),
        )
    } else {
        (builder.with_no_client_auth(), None)
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut config = builder
        .with_single_cert(vec![server_cert.der().clone()], key)
        .map_err(|e| tls_error("server certificate", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((
        TlsMaterial {
            ca_cert_pem,
            client,
        },
        Arc::new(config),
    ))
}

/// The DER of a PEM certificate made here.
fn client_ca_cert_der(pem: &str) -> Result<CertificateDer<'static>, std::io::Error> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| tls_error("client CA PEM", e))
}

/// Accepts TCP connections and hands axum only those that completed a TLS
/// handshake. Handshakes run in their own tasks, so a slow or silent client
/// does not hold up the others.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::AbortHandle,
}

impl TlsListener {
    pub(crate) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "fake: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "fake: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "fake: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor: task.abort_handle(),
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor task ended (aborted): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
