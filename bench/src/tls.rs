//! Certificates of a `--tls` run, made by the bench itself (rcgen) in a temporary directory of
//! the run (removed when the [`Certs`] are dropped): a self-signed CA and a server certificate
//! it signs, valid for 127.0.0.1 and localhost. The server is started with the server
//! certificate and key; the clients trust the CA (rtm2: `ClientConfig::tls_ca_file`; NATS:
//! `ConnectOptions::add_root_certificates`).

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The files of one run.
pub struct Certs {
    dir: PathBuf,
    /// PEM certificate of the CA (what clients trust).
    pub ca: PathBuf,
    /// PEM certificate of the server (signed by the CA).
    pub cert: PathBuf,
    /// PEM private key of the server certificate.
    pub key: PathBuf,
}

impl Certs {
    /// A fresh CA and server certificate in a new temporary directory.
    pub fn generate() -> Result<Certs, String> {
        let err = |e: &dyn std::fmt::Display| format!("TLS certificates: {e}");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("rtm2-bench-tls-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| err(&e))?;
        let certs =
            Certs { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server-key.pem"), dir };

        let ca_key = KeyPair::generate().map_err(|e| err(&e))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(&e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "rtm2-bench CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| err(&e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(|e| err(&e))?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).map_err(|e| err(&e))?;
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).map_err(|e| err(&e))?;

        std::fs::write(&certs.ca, ca_cert.pem()).map_err(|e| err(&e))?;
        std::fs::write(&certs.cert, cert.pem()).map_err(|e| err(&e))?;
        std::fs::write(&certs.key, key.serialize_pem()).map_err(|e| err(&e))?;
        Ok(certs)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
