//! Keys and certificates a test makes with openssl: a self-signed TLS certificate for the
//! loopback registry, and the key plus certificate a token server signs its tokens with.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

/// Runs openssl with `args` in `dir`, panicking with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is not installed: apt-get install -y openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed server certificate for 127.0.0.1 and localhost, and its key (PEM files).
pub struct TlsFiles {
    /// The certificate, which is also the CA a client must trust.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Makes a self-signed certificate valid for 127.0.0.1 in `dir`.
pub fn self_signed_tls(dir: &Path) -> TlsFiles {
    // CA:FALSE: certificate verifiers refuse a CA certificate used as a server certificate.
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "tls-key.pem",
            "-out",
            "tls-cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
    );
    TlsFiles {
        cert: dir.join("tls-cert.pem"),
        key: dir.join("tls-key.pem"),
    }
}

/// A P-256 key (PKCS#8 DER) and its self-signed certificate (DER, and the PEM file a
/// registry's `rootcertbundle` points at).
pub struct SigningKey {
    /// The private key as PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// The certificate as DER (what goes into a JWT `x5c` header).
    pub cert_der: Vec<u8>,
    /// The certificate as a PEM file.
    pub cert_pem: PathBuf,
}

/// Makes a token-signing key and certificate in `dir`.
pub fn signing_key(dir: &Path) -> SigningKey {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "signing-key.pem",
            "-out",
            "signing-cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=oci-conform test token issuer",
        ],
    );
    SigningKey {
        pkcs8: pem_der(&dir.join("signing-key.pem")),
        cert_der: pem_der(&dir.join("signing-cert.pem")),
        cert_pem: dir.join("signing-cert.pem"),
    }
}

/// The DER bytes of the first PEM block in a file.
fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("read PEM");
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM body is base64")
}
