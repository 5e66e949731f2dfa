//! Version-1 X.509 certificates, which `openssl x509 -req` (the usual
//! one-liner for a test CA, OpenSSL 3.0) makes and OTP's nodes accept,
//! but which webpki does not read at all. A node that presents one is
//! checked here as OTP's `public_key` checks it: the chain to a CA of
//! `--tls-ca`, each link's signature, each certificate's dates, and the
//! host, which a version-1 certificate can name only as its subject's
//! common name. Its handshake signatures are checked with its public key.

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::{ASN1Time, FromDer, X509Version};

/// The longest chain looked for, the node's certificate included.
const MAX_CHAIN: usize = 8;

/// Whether `der` is a version-1 certificate.
pub fn is_v1(der: &[u8]) -> bool {
    matches!(X509Certificate::from_der(der), Ok((_, c)) if c.version() == X509Version::V1)
}

/// Verifies the node's version-1 certificate `end`: it chains through
/// `intermediates` to one of `anchors`, every signature and date holds at
/// `now`, and, given a `host`, its common name names it.
pub fn verify(
    end: &[u8],
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'static>],
    host: Option<&ServerName<'_>>,
    now: UnixTime,
) -> Result<(), Error> {
    let cert = parse(end)?;
    let at = ASN1Time::from_timestamp(now.as_secs() as i64).map_err(|_| bad("the clock"))?;
    let mut current = cert.clone();
    for _ in 0..MAX_CHAIN {
        in_date(&current, at)?;
        if anchors.iter().any(|a| signs(a, &current)) {
            return match host {
                Some(host) => names(&cert, host),
                None => Ok(()),
            };
        }
        let next = intermediates
            .iter()
            .find(|i| signs(i, &current))
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        current = parse(next)?;
    }
    Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, Error> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| bad(&format!("the certificate cannot be read: {e}")))
}

fn bad(what: &str) -> Error {
    Error::General(what.to_owned())
}

/// Whether `issuer` (DER) is the issuer of `cert` and its signature holds.
fn signs(issuer: &[u8], cert: &X509Certificate<'_>) -> bool {
    let Ok((_, issuer)) = X509Certificate::from_der(issuer) else {
        return false;
    };
    issuer.subject() == cert.issuer() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn in_date(cert: &X509Certificate<'_>, at: ASN1Time) -> Result<(), Error> {
    let validity = cert.validity();
    if at < validity.not_before {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if at > validity.not_after {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// Whether the subject's common name is `host` (names compare without
/// case).
fn names(cert: &X509Certificate<'_>, host: &ServerName<'_>) -> Result<(), Error> {
    let host = match host {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => String::new(),
    };
    let named = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .any(|cn| cn.eq_ignore_ascii_case(&host));
    match named {
        true => Ok(()),
        false => Err(Error::InvalidCertificate(CertificateError::NotValidForName)),
    }
}

/// The public key of the version-1 certificate `der`.
fn public_key(der: &[u8]) -> Result<SubjectPublicKeyInfoDer<'static>, Error> {
    let cert = parse(der)?;
    Ok(SubjectPublicKeyInfoDer::from(
        cert.public_key().raw.to_vec(),
    ))
}

/// The TLS version whose handshake signature is checked.
#[derive(Debug, Clone, Copy)]
pub enum TlsVersion {
    V12,
    V13,
}

/// A handshake signature by the key of the version-1 certificate `cert`.
pub fn verify_signature(
    version: TlsVersion,
    message: &[u8],
    cert: &[u8],
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(), Error> {
    let spki = public_key(cert)?;
    match version {
        TlsVersion::V13 => {
            rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, algorithms)
                .map(|_| ())
        }
        TlsVersion::V12 => verify_tls12(message, &spki, dss, algorithms),
    }
}

/// A TLS 1.2 signature by the key `spki`: each algorithm the scheme may
/// stand for is tried, as rustls does for certificates it reads.
fn verify_tls12(
    message: &[u8],
    spki: &SubjectPublicKeyInfoDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(), Error> {
    let key = webpki::RawPublicKeyEntity::try_from(spki)
        .map_err(|e| bad(&format!("the certificate's key cannot be read: {e}")))?;
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, algs)| *algs)
        .ok_or(Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
    match candidates
        .iter()
        .any(|alg| key.verify_signature(*alg, message, dss.signature()).is_ok())
    {
        true => Ok(()),
        false => Err(Error::InvalidCertificate(CertificateError::BadSignature)),
    }
}
