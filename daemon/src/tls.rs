//! TLS for the listeners: rustls with the ring provider.
//!
//! The certificate comes from files the admin names (`roost tls use-files`)
//! or, by default, a self-signed one generated on first start for the host
//! name and kept in the database. Either way it sits behind a resolver that
//! can be swapped while running: [`Tls::reload`] is called on SIGHUP, when
//! the setting changes, and when the files' modification time changes, and
//! new handshakes use the new certificate without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{anyhow, Context};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::store::{self, Store};

/// Setting: the admin's certificate and key files.
pub const FILES_KEY: &str = "tls_files";
/// Setting: the generated self-signed certificate.
const SELF_SIGNED_KEY: &str = "tls_self_signed";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SelfSigned {
    hostname: String,
    cert_pem: String,
    key_pem: String,
}

/// Where the current certificate came from, to tell when to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Files {
        files: CertFiles,
        modified: Option<SystemTime>,
    },
    SelfSigned,
}

#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().expect("cert lock").clone())
    }
}

pub struct Tls {
    store: Store,
    hostname: String,
    resolver: Arc<Resolver>,
    source: RwLock<Source>,
    config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Loads the configured certificate, generating the self-signed one if
    /// none exists yet.
    pub async fn load(store: Store, hostname: &str) -> anyhow::Result<Arc<Tls>> {
        let source = wanted_source(&store)?;
        let key = load_key(&store, hostname, &source).await?;
        let resolver = Arc::new(Resolver(RwLock::new(key)));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
        Ok(Arc::new(Tls {
            store,
            hostname: hostname.to_owned(),
            resolver,
            source: RwLock::new(source),
            config: Arc::new(config),
        }))
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// Loads the certificate again if its setting or files changed. A
    /// broken new certificate is reported and the old one stays in use.
    pub async fn reload(&self) -> anyhow::Result<bool> {
        let wanted = wanted_source(&self.store)?;
        if wanted == *self.source.read().expect("source lock") {
            return Ok(false);
        }
        let key = load_key(&self.store, &self.hostname, &wanted).await?;
        *self.resolver.0.write().expect("cert lock") = key;
        *self.source.write().expect("source lock") = wanted;
        Ok(true)
    }
}

/// The source the settings and files call for right now.
fn wanted_source(store: &Store) -> anyhow::Result<Source> {
    let tx = store.read()?;
    Ok(match store::get_setting::<CertFiles>(&tx, FILES_KEY)? {
        Some(files) => Source::Files {
            modified: modified(&files),
            files,
        },
        None => Source::SelfSigned,
    })
}

/// Newest modification time of the two files.
fn modified(files: &CertFiles) -> Option<SystemTime> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    m(&files.cert).max(m(&files.key))
}

async fn load_key(
    store: &Store,
    hostname: &str,
    source: &Source,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let (cert_pem, key_pem) = match source {
        Source::Files { files, .. } => read_files(files)?,
        Source::SelfSigned => {
            let s = self_signed(store, hostname).await?;
            (s.cert_pem.into_bytes(), s.key_pem.into_bytes())
        }
    };
    Ok(Arc::new(certified_key(&cert_pem, &key_pem)?))
}

pub fn read_files(files: &CertFiles) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let cert =
        std::fs::read(&files.cert).with_context(|| format!("reading {}", files.cert.display()))?;
    let key =
        std::fs::read(&files.key).with_context(|| format!("reading {}", files.key.display()))?;
    Ok((cert, key))
}

/// Parses a PEM chain and key into what rustls serves.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the certificate PEM")?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate found in the PEM"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("parsing the key PEM")?;
    let key = ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow!("unsupported private key: {e}"))?;
    let certified = CertifiedKey::new(certs, key);
    certified
        .keys_match()
        .map_err(|e| anyhow!("the key does not belong to the certificate: {e}"))?;
    Ok(certified)
}

/// The stored self-signed certificate, made on first use or when the host
/// name changed.
async fn self_signed(store: &Store, hostname: &str) -> anyhow::Result<SelfSigned> {
    let stored: Option<SelfSigned> = store::get_setting(&store.read()?, SELF_SIGNED_KEY)?;
    if let Some(s) = stored.filter(|s| s.hostname == hostname) {
        return Ok(s);
    }
    let generated =
        rcgen::generate_simple_self_signed(vec![hostname.to_owned(), "localhost".to_owned()])?;
    let s = SelfSigned {
        hostname: hostname.to_owned(),
        cert_pem: generated.cert.pem(),
        key_pem: generated.key_pair.serialize_pem(),
    };
    let saved = s.clone();
    store
        .writer()
        .run(move |tx| store::set_setting(tx, SELF_SIGNED_KEY, &saved))
        .await?;
    tracing::info!(hostname, "generated a self-signed TLS certificate");
    Ok(s)
}
