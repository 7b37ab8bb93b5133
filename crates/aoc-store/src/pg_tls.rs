//! TLS to PostgreSQL on rustls (aws-lc-rs), no OpenSSL: the connector the `postgres` client
//! calls, the three ways a server certificate is checked (not at all, its chain only, its chain
//! and host name), the `tls-server-end-point` channel binding of SCRAM-SHA-256-PLUS, and
//! handshake failures explained in one plain sentence.

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::Socket;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::Digest;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Trust anchors for the server certificate and what they are called in messages.
pub(crate) struct Roots {
    store: RootCertStore,
    /// `sslrootcert /path/ca.pem` or `the system's trusted root certificates`.
    label: String,
}

impl Roots {
    /// Every certificate of a PEM file (libpq's `sslrootcert=FILE`).
    pub(crate) fn from_file(path: &Path) -> Result<Roots, String> {
        let label = format!("sslrootcert {}", path.display());
        let mut store = RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read {label}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("cannot read {label}: {e}"))?;
            store
                .add(cert)
                .map_err(|e| format!("{label}: unusable certificate: {e}"))?;
        }
        if store.is_empty() {
            return Err(format!("{label}: no PEM certificate in the file"));
        }
        Ok(Roots { store, label })
    }

    /// The platform's trusted roots (libpq's `sslrootcert=system`).
    pub(crate) fn system() -> Result<Roots, String> {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(found.certs);
        if store.is_empty() {
            let why = found
                .errors
                .first()
                .map_or_else(String::new, |e| format!(" ({e})"));
            return Err(format!(
                "sslrootcert=system: no trusted root certificate found on this system{why}"
            ));
        }
        Ok(Roots {
            store,
            label: "the system's trusted root certificates".into(),
        })
    }
}

/// How the server's certificate is checked.
pub(crate) enum Check {
    /// Not at all (libpq's `require` and `prefer` without a root certificate); the handshake
    /// signature is still verified against the certificate's key.
    Nothing,
    /// The chain up to the roots, not the host name (`verify-ca`, or `require` with roots).
    Chain(Roots),
    /// The chain and the host name (`verify-full`).
    ChainAndName(Roots),
}

/// The `postgres` client's TLS connector: one rustls configuration for every connection attempt.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    config: Arc<ClientConfig>,
    trust: Arc<str>,
}

impl MakeRustls {
    pub(crate) fn new(check: Check) -> Result<MakeRustls, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let (roots, check_name) = match check {
            Check::Nothing => (None, false),
            Check::Chain(roots) => (Some(roots), false),
            Check::ChainAndName(roots) => (Some(roots), true),
        };
        let trust: Arc<str> = roots
            .as_ref()
            .map_or("no root certificate", |r| r.label.as_str())
            .into();
        let verifier = Verifier {
            roots: roots.map(|r| r.store),
            check_name,
            algorithms,
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // What PostgreSQL 17 requires of direct TLS connections; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustls {
            config: Arc::new(config),
            trust,
        })
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = HandshakeError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, HandshakeError> {
        // Called for every connection, plain ones and Unix sockets (domain "") too: a name that
        // is no TLS server name only matters once a handshake is attempted.
        Ok(RustlsConnect {
            config: self.config.clone(),
            name: ServerName::try_from(domain.to_owned()).ok(),
            host: domain.to_owned(),
            trust: self.trust.clone(),
        })
    }
}

pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: Option<ServerName<'static>>,
    host: String,
    trust: Arc<str>,
}

type HandshakeFuture = Pin<Box<dyn Future<Output = Result<RustlsStream, HandshakeError>> + Send>>;

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = HandshakeError;
    type Future = HandshakeFuture;

    fn connect(self, stream: Socket) -> HandshakeFuture {
        Box::pin(async move {
            let Some(name) = self.name else {
                return Err(HandshakeError(format!(
                    "{:?} is not a host name or IP address a certificate can name",
                    self.host
                )));
            };
            tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await
                .map(RustlsStream)
                .map_err(|e| explain(&e, &self.host, &self.trust))
        })
    }
}

/// A failed TLS handshake, explained: the connection error's source, found again by
/// [`handshake_error`].
#[derive(Debug)]
pub(crate) struct HandshakeError(String);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HandshakeError {}

/// The explanation of a failed handshake somewhere in `e`'s sources, if that is why it failed.
pub(crate) fn handshake_error(e: &postgres::Error) -> Option<&HandshakeError> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HandshakeError>() {
            return Some(h);
        }
        source = s.source();
    }
    None
}

fn explain(e: &io::Error, host: &str, trust: &str) -> HandshakeError {
    let rustls_error = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    HandshakeError(match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                format!("server certificate not trusted by {trust}")
            }
            CertificateError::NotValidForName => {
                format!("host name {host} does not match the server certificate")
            }
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "host name {host} does not match the server certificate (which names {})",
                presented
                    .iter()
                    .map(|n| bare_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                format!("server certificate is not valid now: {c}")
            }
            other => format!("server certificate rejected: {other}"),
        },
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the server refused the TLS handshake (alert {alert:?})")
        }
        Some(other) => format!("handshake failed: {other}"),
        None => format!("handshake failed: {e}"),
    })
}

/// `localhost` for the verifier's `DnsName("localhost")`, `10.0.0.1` for `IpAddress(10.0.0.1)`.
fn bare_name(presented: &str) -> &str {
    match (presented.find('('), presented.rfind(')')) {
        (Some(open), Some(close)) if open < close => presented[open + 1..close].trim_matches('"'),
        _ => presented,
    }
}

/// libpq's three levels of checking in one verifier: with no roots it accepts any certificate
/// (still checking that the server holds the certificate's key); with roots it verifies the
/// chain, and the host name too when asked.
#[derive(Debug)]
struct Verifier {
    roots: Option<RootCertStore>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS connection to the server.
pub(crate) struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| tls_server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

/// RFC 5929 `tls-server-end-point`: the server certificate hashed with the hash of its own
/// signature algorithm, SHA-256 for MD5 and SHA-1 (what PostgreSQL computes on its side). `None`
/// for other algorithms (RSA-PSS, EdDSA), for which the server offers no binding either.
fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    let oid = signature_algorithm(cert)?;
    let hash = match oid {
        _ if oid == ECDSA_SHA1 => 256,
        [prefix @ .., last] if prefix == RSA => match last {
            4 | 5 | 11 => 256, // md5WithRSA, sha1WithRSA, sha256WithRSA
            12 => 384,
            13 => 512,
            14 => 224,
            _ => return None,
        },
        [prefix @ .., last] if prefix == ECDSA_SHA2 => match last {
            1 => 224,
            2 => 256,
            3 => 384,
            4 => 512,
            _ => return None,
        },
        _ => return None,
    };
    Some(match hash {
        224 => sha2::Sha224::digest(cert).to_vec(),
        256 => sha2::Sha256::digest(cert).to_vec(),
        384 => sha2::Sha384::digest(cert).to_vec(),
        _ => sha2::Sha512::digest(cert).to_vec(),
    })
}

/// The OID (content bytes) of `Certificate.signatureAlgorithm`: SEQUENCE { tbsCertificate,
/// SEQUENCE { OBJECT IDENTIFIER, ... }, BIT STRING }.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, certificate, _) = der(cert)? else {
        return None;
    };
    let (0x30, _tbs, rest) = der(certificate)? else {
        return None;
    };
    let (0x30, algorithm, _) = der(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der(algorithm)? else {
        return None;
    };
    Some(oid)
}

/// One DER element: (tag, content, what follows).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_walks_to_the_signature_algorithm() {
        // SEQUENCE { SEQUENCE { INTEGER 1 }, SEQUENCE { OID 1.2.840.10045.4.3.3 }, BIT STRING }
        let cert = [
            0x30, 0x15, 0x30, 0x03, 0x02, 0x01, 0x01, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x04, 0x03, 0x03, 0x03, 0x02, 0x00, 0x00,
        ];
        assert_eq!(
            signature_algorithm(&cert),
            Some(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03][..])
        );
        // ecdsa-with-SHA384: the binding is SHA-384 of the whole certificate.
        assert_eq!(
            tls_server_end_point(&cert),
            Some(sha2::Sha384::digest(cert).to_vec())
        );
        assert_eq!(signature_algorithm(&cert[..10]), None);
        assert_eq!(der(&[0x30, 0x82, 0x01]), None);
    }

    #[test]
    fn presented_names_are_shown_bare() {
        assert_eq!(bare_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(bare_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(bare_name("odd"), "odd");
    }
}
