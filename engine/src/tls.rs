//! TLS: the roots a verifying client trusts (the system bundle plus an optional CA file) and
//! what a TLS failure means for the user.

use std::path::{Path, PathBuf};

use crate::config::Tls;

/// Whether an I/O error comes from the TLS layer (rustls reports through `io::Error`).
pub fn is_tls_error(e: &std::io::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    e.kind() == std::io::ErrorKind::InvalidData
        || [
            "certificate",
            "tls",
            "handshake",
            "corrupt message",
            "alert",
        ]
        .iter()
        .any(|w| text.contains(w))
}

/// A TLS failure with what the user can do about it.
pub fn reason(msg: &str) -> String {
    let hint = if msg.contains("UnknownIssuer") || msg.contains("unknown issuer") {
        " (the certificate is not signed by a trusted CA: set OCI_TLS_CA_FILE to the CA certificate, or OCI_TLS=insecure to skip verification)"
    } else if msg.contains("NotValidForName") || msg.contains("not valid for name") {
        " (the certificate does not name this host)"
    } else if msg.contains("Expired") || msg.contains("expired") {
        " (the certificate has expired)"
    } else if msg.contains("InvalidContentType") || msg.contains("corrupt message") {
        " (the server does not answer with TLS: if the registry serves plain HTTP, set OCI_TLS=disabled)"
    } else {
        ""
    };
    format!("{msg}{hint}")
}

/// The certificates of a PEM file (keys and other items are left out).
fn pem_certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
    use ureq::tls::{parse_pem, PemItem};
    parse_pem(pem)
        .filter_map(Result::ok)
        .filter_map(|i| match i {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// The TLS settings of a mode: `enabled` verifies against the system roots plus the CA file.
pub fn config(mode: Tls, ca_file: Option<&Path>) -> Result<ureq::tls::TlsConfig, String> {
    use ureq::tls::{RootCerts, TlsConfig};
    let mut b = TlsConfig::builder();
    match mode {
        Tls::Insecure => b = b.disable_verification(true),
        Tls::Enabled | Tls::Disabled => {
            let mut certs = Vec::new();
            let mut files: Vec<PathBuf> = Vec::new();
            if let Ok(f) = std::env::var("SSL_CERT_FILE") {
                files.push(f.into());
            }
            files.extend(
                [
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/etc/pki/tls/certs/ca-bundle.crt",
                    "/etc/ssl/cert.pem",
                ]
                .iter()
                .map(PathBuf::from),
            );
            for f in files.iter().filter(|f| f.exists()).take(1) {
                if let Ok(pem) = std::fs::read(f) {
                    certs.extend(pem_certificates(&pem));
                }
            }
            if let Some(ca) = ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    format!(
                        "cannot read CA file {} (tlsCAFile, OCI_TLS_CA_FILE): {e}",
                        ca.display()
                    )
                })?;
                let before = certs.len();
                certs.extend(pem_certificates(&pem));
                if certs.len() == before {
                    return Err(format!(
                        "CA file {} (tlsCAFile, OCI_TLS_CA_FILE) holds no PEM certificate",
                        ca.display()
                    ));
                }
            }
            if !certs.is_empty() {
                b = b.root_certs(RootCerts::new_with_certs(&certs));
            }
        }
    }
    Ok(b.build())
}
