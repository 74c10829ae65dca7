//! Dialing a data port: TCP, then TLS when the cluster has it on, then
//! hellos proving the cluster secret both ways.

use tokio::io::ReadHalf;
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::HANDSHAKE_TIMEOUT;
use crate::runtime::auth::{self, Role};
use crate::runtime::framing::{read_frame, write_frame};
use crate::runtime::tls::{self, BoxStream, TlsContext};
use crate::wire::{Frame, Hello};

/// The halves of a data connection (TLS or plain TCP).
pub type Reader = ReadHalf<BoxStream>;
pub type Writer = WriteHalf<BoxStream>;

/// Connects to a data port (over TLS when the cluster has it on) and
/// proves the cluster secret (and checks the other side proves it); returns
/// the halves and the other side's name.
pub async fn dial(
    address: &str,
    secret: &str,
    me: &str,
    session: u64,
) -> Result<(Reader, Writer, String), String> {
    dial_with(
        address,
        secret,
        me,
        session,
        tls::for_secret(secret).as_deref(),
    )
    .await
}

/// [`dial`] with an explicit TLS context (`None`: plain TCP).
pub async fn dial_with(
    address: &str,
    secret: &str,
    me: &str,
    session: u64,
    tls: Option<&TlsContext>,
) -> Result<(Reader, Writer, String), String> {
    let stream = timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let stream = timeout(HANDSHAKE_TIMEOUT, tls::connect(tls, stream))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let nonce = auth::nonce();
    let hello = |nonce: Vec<u8>, proof: Vec<u8>| {
        Frame::Hello(Hello {
            machine: me.to_string(),
            session,
            nonce,
            proof,
        })
    };
    let shake = async {
        write_frame(&mut wr, &hello(nonce.clone(), Vec::new()))
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let Frame::Hello(theirs) = read_frame(&mut rd, &mut buf)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Err("peer answered the hello with something else".to_string());
        };
        if !auth::verify(secret, Role::Server, &nonce, &theirs.proof) {
            return Err("peer failed to prove the cluster secret".to_string());
        }
        let proof = auth::prove(secret, Role::Client, &theirs.nonce);
        write_frame(&mut wr, &hello(Vec::new(), proof))
            .await
            .map_err(|e| e.to_string())?;
        Ok(theirs.machine)
    };
    let theirs = timeout(HANDSHAKE_TIMEOUT, shake)
        .await
        .map_err(|_| "handshake timed out".to_string())??;
    Ok((rd, wr, theirs))
}
