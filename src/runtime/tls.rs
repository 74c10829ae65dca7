//! Mutual TLS for cluster traffic: each cluster has its own certificate
//! authority, made by the controller when the cluster is created and kept in
//! the cluster's record; every agent (and every controller-side client) holds
//! a certificate that CA signed. Both ends of every connection present one
//! and check the other's against the CA, so a peer from another cluster, or
//! with no certificate, is refused during the handshake.
//!
//! Agents are addressed by 127.0.0.x, container IPs or EC2 public and private
//! IPs, and an instance learns its address only after boot; so certificates
//! name one fixed server name, [`SERVER_NAME`], and what is checked is the
//! chain to the cluster's CA, not the address. Which CA signed is the trust
//! decision; the machine name is in the subject for logs.
//!
//! Contexts are [`install`]ed per cluster, keyed by its secret (which every
//! connecting API already carries): an agent's from `DZ_TLS_CREDENTIALS`,
//! the controller's from the cluster record. The data plane, the control
//! plane and the kv clients look them up; a test can pass another context
//! explicitly ([`super::transport::dial_with`], `AgentClient::connect_with`).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, LazyLock, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{Error, Result};

/// The name every cluster certificate carries and every client asks for.
pub const SERVER_NAME: &str = "dz-agent";
/// The environment variable that carries an agent's credentials (one line).
pub const CREDENTIALS_VAR: &str = "DZ_TLS_CREDENTIALS";

/// A byte stream to a peer: TLS over TCP, or plain TCP when TLS is off.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
pub type BoxStream = Box<dyn Stream>;

/// A cluster's certificate authority, as kept in its record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterCa {
    pub cert_pem: String,
    pub key_pem: String,
    /// The cluster's name, in the CA's subject.
    pub cluster: String,
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("DistZero cluster {cluster} CA"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn cert_error(e: impl std::fmt::Display) -> Error {
    Error::runtime(format!("TLS certificate: {e}"))
}

impl ClusterCa {
    /// A new CA (ECDSA P-256) for `cluster`.
    pub fn new(cluster: &str) -> Result<ClusterCa> {
        let key = KeyPair::generate().map_err(cert_error)?;
        let cert = ca_params(cluster).self_signed(&key).map_err(cert_error)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cluster: cluster.to_string(),
        })
    }

    /// A certificate for `holder` (a machine, the controller), usable as
    /// both server and client.
    pub fn issue(&self, holder: &str) -> Result<Credentials> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(cert_error)?;
        let issuer = Issuer::new(ca_params(&self.cluster), ca_key);
        let mut params =
            CertificateParams::new(vec![SERVER_NAME.to_string()]).map_err(cert_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, holder.to_string());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(cert_error)?;
        let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
        Ok(Credentials {
            ca_pem: self.cert_pem.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What one holder needs: the CA to check peers against, its certificate
/// and its key.
#[derive(Clone)]
pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

impl Credentials {
    /// One line (hex of the three PEM texts as JSON), for an environment
    /// variable or user data.
    pub fn encode(&self) -> String {
        let parts = [&self.ca_pem, &self.cert_pem, &self.key_pem];
        hex::encode(serde_json::to_vec(&parts).unwrap_or_default())
    }

    pub fn decode(line: &str) -> Result<Credentials> {
        let bad = || {
            Error::input(format!(
                "{CREDENTIALS_VAR}: not credentials from `dz` (hex of a CA certificate, a certificate and a key)"
            ))
        };
        let bytes = hex::decode(line.trim()).map_err(|_| bad())?;
        let [ca_pem, cert_pem, key_pem]: [String; 3] =
            serde_json::from_slice(&bytes).map_err(|_| bad())?;
        Ok(Credentials {
            ca_pem,
            cert_pem,
            key_pem,
        })
    }

    /// Client and server configurations (ring provider, TLS 1.3 and 1.2):
    /// both require the peer's certificate to chain to the CA.
    pub fn context(&self) -> Result<Arc<TlsContext>> {
        install_provider();
        let bad = |e: &dyn std::fmt::Display| Error::input(format!("TLS credentials: {e}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        let roots = Arc::new(roots);
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(&e))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| bad(&e))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad(&e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| bad(&e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad(&e))?;
        Ok(Arc::new(TlsContext {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            ca: None,
        }))
    }
}

/// A holder's ready TLS configurations; the controller's also holds the CA
/// to issue agents' certificates.
pub struct TlsContext {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    ca: Option<ClusterCa>,
}

impl TlsContext {
    /// The controller's context for a cluster: its own certificate and the
    /// CA, to issue agents' certificates from.
    pub fn controller(ca: &ClusterCa) -> Result<Arc<TlsContext>> {
        let ctx = ca.issue("controller")?.context()?;
        let ctx = Arc::into_inner(ctx).ok_or_else(|| Error::runtime("TLS context shared"))?;
        Ok(Arc::new(TlsContext {
            ca: Some(ca.clone()),
            ..ctx
        }))
    }

    /// TLS over a connected stream, as the side that dialed.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<BoxStream> {
        let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
        Ok(Box::new(self.connector.connect(name, tcp).await?))
    }

    /// TLS over an accepted stream; fails on a missing or foreign certificate.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<BoxStream> {
        Ok(Box::new(self.acceptor.accept(tcp).await?))
    }
}

/// Picks ring as the process's rustls provider (the AWS SDK links another),
/// so nothing depends on which one a dependency enabled.
fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Contexts by cluster secret: every API that reaches a cluster already
/// carries its secret, and a controller process (or a test binary) may
/// talk to several clusters at once.
static CONTEXTS: LazyLock<RwLock<HashMap<String, Arc<TlsContext>>>> =
    LazyLock::new(Default::default);

/// Sets (or with `None` clears) the TLS context for the cluster with
/// `secret`.
pub fn install(secret: &str, ctx: Option<Arc<TlsContext>>) {
    let mut all = CONTEXTS.write().unwrap_or_else(|p| p.into_inner());
    match ctx {
        Some(ctx) => all.insert(secret.to_string(), ctx),
        None => all.remove(secret),
    };
}

/// The TLS context for the cluster with `secret`, if its traffic is TLS.
pub fn for_secret(secret: &str) -> Option<Arc<TlsContext>> {
    CONTEXTS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(secret)
        .cloned()
}

/// Wraps a dialed stream in TLS when `tls` is set.
pub async fn connect(tls: Option<&TlsContext>, tcp: TcpStream) -> io::Result<BoxStream> {
    match tls {
        Some(t) => t.connect(tcp).await,
        None => Ok(Box::new(tcp)),
    }
}

/// Wraps an accepted stream in TLS when `tls` is set.
pub async fn accept(tls: Option<&TlsContext>, tcp: TcpStream) -> io::Result<BoxStream> {
    match tls {
        Some(t) => t.accept(tcp).await,
        None => Ok(Box::new(tcp)),
    }
}

/// The environment an agent for `machine` of the cluster with `secret`
/// starts with: a fresh certificate from the controller's CA (nothing when
/// the cluster's traffic is plain). Never logged.
pub fn agent_env(secret: &str, machine: &str) -> Result<Vec<(String, String)>> {
    match for_secret(secret).and_then(|c| c.ca.clone()) {
        Some(ca) => Ok(vec![(
            CREDENTIALS_VAR.to_string(),
            ca.issue(machine)?.encode(),
        )]),
        None => Ok(Vec::new()),
    }
}

/// Installs the controller's context for a cluster record (or none).
pub fn install_for_cluster(secret: &str, ca: Option<&ClusterCa>) -> Result<()> {
    let ctx = match ca {
        Some(ca) => Some(TlsContext::controller(ca)?),
        None => None,
    };
    install(secret, ctx);
    Ok(())
}

/// Installs the credentials from `DZ_TLS_CREDENTIALS` (an agent's, or a
/// client's given `--servers`) for the cluster with `secret`.
pub fn install_credentials(secret: &str, line: Option<&str>) -> Result<()> {
    if let Some(line) = line {
        install(secret, Some(Credentials::decode(line)?.context()?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_credentials_round_trip_through_one_line() {
        let ca = ClusterCa::new("c-test").unwrap();
        let creds = ca.issue("m0").unwrap();
        let line = creds.encode();
        assert!(!line.contains('\n'));
        let back = Credentials::decode(&line).unwrap();
        assert_eq!(back.cert_pem, creds.cert_pem);
        assert_eq!(back.key_pem, creds.key_pem);
        assert_eq!(back.ca_pem, ca.cert_pem);
        back.context().unwrap();
        assert!(Credentials::decode("zz").is_err());
        assert!(Credentials::decode(&hex::encode("-----BEGIN X-----")).is_err());
    }
}
