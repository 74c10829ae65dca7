//! Proving knowledge of the cluster secret: HMAC-SHA256 over a fresh nonce
//! and a role label, so a proof for one side or one connection is worthless
//! for any other.

use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::Sha256;

pub const NONCE_LEN: usize = 32;

/// The label a side signs with; the two sides never accept each other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that connects (a data-plane sender, the controller).
    Client,
    /// The side that accepts.
    Server,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Client => b"distzero client",
            Role::Server => b"distzero server",
        }
    }
}

pub fn nonce() -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    rand::rng().fill(&mut n[..]);
    n
}

/// A new random cluster secret, hex.
pub fn new_secret() -> String {
    hex::encode(nonce())
}

fn mac(secret: &str, role: Role, nonce: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(role.label());
    mac.update(nonce);
    mac
}

pub fn prove(secret: &str, role: Role, nonce: &[u8]) -> Vec<u8> {
    mac(secret, role, nonce).finalize().into_bytes().to_vec()
}

/// Constant-time check of a proof.
pub fn verify(secret: &str, role: Role, nonce: &[u8], proof: &[u8]) -> bool {
    nonce.len() == NONCE_LEN && mac(secret, role, nonce).verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_proofs_bind_secret_role_and_nonce() {
        let n = nonce();
        let p = prove("s3cret", Role::Client, &n);
        assert!(verify("s3cret", Role::Client, &n, &p));
        assert!(!verify("other", Role::Client, &n, &p));
        assert!(!verify("s3cret", Role::Server, &n, &p));
        assert!(!verify("s3cret", Role::Client, &nonce(), &p));
        assert!(!verify("s3cret", Role::Client, &n, &p[..31]));
        assert!(!verify(
            "s3cret",
            Role::Client,
            &n[..4],
            &prove("s3cret", Role::Client, &n[..4])
        ));
    }
}
