//! How a system's messages cross the wire. Every system message type names
//! its kinds (for per-kind counters and fault filters) and has a codec; the
//! agent ships the encoded bytes inside a Cap'n Proto envelope, and the
//! simulator can round-trip every message through the codec (`--check-wire`).

use std::fmt;

#[derive(Debug, thiserror::Error)]
#[error("cannot decode {kind} message: {reason}")]
pub struct CodecError {
    pub kind: &'static str,
    pub reason: String,
}

pub trait Message: Clone + fmt::Debug + 'static {
    /// The names of the message kinds, indexed by [`Message::kind`].
    fn kinds() -> &'static [&'static str];

    /// Index of this message's kind in [`Message::kinds`].
    fn kind(&self) -> usize;

    fn encode(&self, out: &mut Vec<u8>);

    fn decode(bytes: &[u8]) -> Result<Self, CodecError>;

    fn kind_name(&self) -> &'static str {
        Self::kinds()[self.kind()]
    }
}

/// A ready codec for serde types: compact, versionless postcard bytes.
pub fn encode_postcard<T: serde::Serialize>(value: &T, out: &mut Vec<u8>) {
    // Writing plain data into a growable Vec cannot fail.
    *out = postcard::to_extend(value, std::mem::take(out)).expect("postcard encoding into a Vec");
}

pub fn decode_postcard<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    bytes: &[u8],
) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|e| CodecError {
        kind,
        reason: e.to_string(),
    })
}

/// What `--check-wire` does to every message in the simulator: encode,
/// decode, and require that the copy prints the same, has the same kind and
/// re-encodes to the same bytes. Returns the decoded copy.
pub fn check_codec<M: Message>(msg: &M) -> Result<M, String> {
    let mut bytes = Vec::new();
    msg.encode(&mut bytes);
    let decoded = M::decode(&bytes).map_err(|e| e.to_string())?;
    if decoded.kind() != msg.kind() {
        return Err(format!(
            "codec changes the kind: {} came back as {}",
            msg.kind_name(),
            decoded.kind_name()
        ));
    }
    let (sent, got) = (format!("{msg:?}"), format!("{decoded:?}"));
    if sent != got {
        return Err(format!(
            "codec loses information: {} message {sent} came back as {got}",
            msg.kind_name()
        ));
    }
    let mut again = Vec::new();
    decoded.encode(&mut again);
    if again != bytes {
        return Err(format!(
            "codec is not stable: {} re-encodes to different bytes",
            msg.kind_name()
        ));
    }
    Ok(decoded)
}
