//! TLS distribution, the client side, as OTP's `inet_tls_dist` expects it:
//! TLS starts right after the TCP connect, with the node's host as the
//! server name; the distribution handshake then runs inside it (with
//! 4-byte prefixes, see `reframe`), and frames as usual after that.
//!
//! Everything is checked before the first connection: the files read, the
//! key matching its certificate, our certificate in its validity period.
//! What goes wrong later is told in words that name the file or the flag
//! to look at, never as a bare TLS alert.

use super::cert_v1::{self, TlsVersion};
use super::error::ConnectError;
use super::names::NodeName;
use super::stream::DistStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Where the TLS settings point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates that sign the nodes' certificates.
    pub ca: PathBuf,
    /// Our certificate and its key, for nodes that ask for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Verify the chain but not that the certificate names the host.
    pub skip_host_check: bool,
}

/// The TLS settings, read and checked.
#[derive(Clone)]
pub struct Tls {
    connector: tokio_rustls::TlsConnector,
    files: TlsFiles,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read `{}` ({setting}): {detail}", path.display())]
    Read {
        path: PathBuf,
        setting: &'static str,
        detail: String,
    },
    #[error("`{}` ({setting}) holds no {what}", path.display())]
    Empty {
        path: PathBuf,
        setting: &'static str,
        what: &'static str,
    },
    #[error("the key in `{}` does not match the certificate in `{}`", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate in `{}` (--tls-cert) {when}", path.display())]
    OutOfDate { path: PathBuf, when: &'static str },
    #[error("TLS settings: {0}")]
    Other(String),
}

impl Tls {
    /// Reads the files and builds the client configuration.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let anchors = read_certs(&files.ca, "--tls-ca")?;
        for cert in anchors.iter().cloned() {
            roots.add(cert).map_err(|e| TlsError::Read {
                path: files.ca.clone(),
                setting: "--tls-ca",
                detail: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Other(e.to_string()))?;
        let verifier = Arc::new(NodeVerifier {
            webpki,
            anchors,
            algorithms: provider.signature_verification_algorithms,
            skip_host_check: files.skip_host_check,
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Other(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&files.cert, &files.key) {
            (Some(cert_path), Some(key_path)) => {
                let chain = read_certs(cert_path, "--tls-cert")?;
                check_validity(&chain, cert_path, roots, provider.clone())?;
                let own = own_certificate(chain, cert_path, key_path, &provider)?;
                builder.with_client_cert_resolver(Arc::new(own))
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            files: files.clone(),
        })
    }

    /// Runs the TLS handshake with `node` over `stream` within `limit`.
    pub async fn connect(
        &self,
        stream: TcpStream,
        node: &NodeName,
        limit: Duration,
    ) -> Result<DistStream, ConnectError> {
        let fail = |detail: String| ConnectError::Tls {
            node: node.to_string(),
            detail,
        };
        let name = ServerName::try_from(node.host().to_owned())
            .map_err(|_| fail(format!("`{}` is not a host name TLS can use", node.host())))?;
        match tokio::time::timeout(limit, self.connector.connect(name, stream)).await {
            Ok(Ok(tls)) => Ok(DistStream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(fail(self.explain(&e, node))),
            Err(_) => Err(fail(format!(
                "no TLS handshake within {} s; does the node run TLS distribution (`-proto_dist inet_tls`)?",
                limit.as_secs_f64()
            ))),
        }
    }

    /// Words for a TLS failure, during the TLS handshake or (a node that
    /// refuses our certificate under TLS 1.3 says so after it) during the
    /// distribution handshake. `None` if `error` is not about TLS.
    pub fn explain_io(&self, error: &std::io::Error, node: &NodeName) -> Option<String> {
        let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(self.explain_tls(tls, node))
    }

    fn explain(&self, error: &std::io::Error, node: &NodeName) -> String {
        match self.explain_io(error, node) {
            Some(words) => words,
            None if matches!(
                error.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
            {
                "the node closed the connection during the TLS handshake; does it run TLS distribution (`-proto_dist inet_tls`)? A plain node closes it when its setup time is up".into()
            }
            None => error.to_string(),
        }
    }

    fn explain_tls(&self, error: &rustls::Error, node: &NodeName) -> String {
        let ca = self.files.ca.display();
        let ours = self
            .files
            .cert
            .as_deref()
            .map_or_else(String::new, |p| format!(" (`{}`)", p.display()));
        match error {
            rustls::Error::InvalidCertificate(e) => match e {
                CertificateError::UnknownIssuer => {
                    format!("the node's certificate is not signed by a CA in `{ca}` (--tls-ca)")
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the node's certificate has expired".into()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the node's certificate is not valid yet (check the clocks)".into()
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the node's certificate does not name the host `{}`; give --tls-skip-host-check to verify its chain only",
                    node.host()
                ),
                other => format!("the node's certificate is not valid: {other:?}"),
            },
            rustls::Error::AlertReceived(alert) => match alert {
                AlertDescription::CertificateRequired => {
                    "the node requires a client certificate; give --tls-cert and --tls-key".into()
                }
                AlertDescription::HandshakeFailure if self.files.cert.is_none() => {
                    "the node refused the TLS handshake; it may require a client certificate (give --tls-cert and --tls-key)".into()
                }
                AlertDescription::CertificateExpired => {
                    format!("the node says our certificate{ours} has expired")
                }
                AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied => format!(
                    "the node refused our certificate{ours} ({alert:?}); is it signed by a CA the node trusts?"
                ),
                other => format!("the node ended the TLS handshake ({other:?})"),
            },
            other => format!("TLS: {other}"),
        }
    }
}

/// All the certificates in a PEM file.
fn read_certs(
    path: &Path,
    setting: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |detail: String| TlsError::Read {
        path: path.to_owned(),
        setting,
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            setting,
            what: "PEM certificate",
        });
    }
    Ok(certs)
}

/// Refuses our own certificate out of its validity period, which the node
/// would refuse with a less helpful alert. Checked against the nodes' CA:
/// any other verdict (our certificate from another CA) is the node's to
/// give.
fn check_validity(
    chain: &[CertificateDer<'static>],
    path: &Path,
    roots: Arc<rustls::RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<(), TlsError> {
    let Some((end, intermediates)) = chain.split_first() else {
        return Ok(());
    };
    let Ok(verifier) =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build()
    else {
        return Ok(());
    };
    let when = match verifier.verify_client_cert(end, intermediates, UnixTime::now()) {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "has expired",
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => "is not valid yet",
        _ => return Ok(()),
    };
    Err(TlsError::OutOfDate {
        path: path.to_owned(),
        when,
    })
}

/// Our certificate and key, for every node that asks. The key must match
/// the certificate; anything else about our certificate is the node's to
/// judge (a version-1 certificate, which webpki does not read, included).
fn own_certificate(
    chain: Vec<CertificateDer<'static>>,
    cert_path: &Path,
    key_path: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<OwnCertificate, TlsError> {
    let unreadable = |detail: String| TlsError::Read {
        path: key_path.to_owned(),
        setting: "--tls-key",
        detail,
    };
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| unreadable(e.to_string()))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| unreadable(e.to_string()))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        }),
        // Read, or not readable by webpki: the node judges it.
        Ok(()) | Err(_) => Ok(OwnCertificate(Arc::new(certified))),
    }
}

#[derive(Debug)]
struct OwnCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for OwnCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The standard verification, but with `skip_host_check` a certificate
/// that fails only on its name is accepted. The chain is checked first,
/// so the name is the only thing skipped.
/// A version-1 certificate, which webpki does not read, is verified as
/// OTP verifies it ([`super::cert_v1`]).
#[derive(Debug)]
struct NodeVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The CA certificates of `--tls-ca`.
    anchors: Vec<CertificateDer<'static>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    skip_host_check: bool,
}

impl NodeVerifier {
    /// A handshake signature, by a version-1 certificate's key as OTP
    /// checks it, else as webpki does.
    fn verify_signature(
        &self,
        version: TlsVersion,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if cert_v1::is_v1(cert) {
            return cert_v1::verify_signature(version, message, cert, dss, &self.algorithms)
                .map(|()| HandshakeSignatureValid::assertion());
        }
        match version {
            TlsVersion::V12 => self.webpki.verify_tls12_signature(message, cert, dss),
            TlsVersion::V13 => self.webpki.verify_tls13_signature(message, cert, dss),
        }
    }
}

impl ServerCertVerifier for NodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if cert_v1::is_v1(end_entity) {
            let host = (!self.skip_host_check).then_some(server_name);
            return cert_v1::verify(end_entity, intermediates, &self.anchors, host, now)
                .map(|()| ServerCertVerified::assertion());
        }
        let verdict =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match verdict {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.skip_host_check => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(TlsVersion::V12, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(TlsVersion::V13, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
