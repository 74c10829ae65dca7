//! Length-prefixed frames on a byte stream: a 4-byte big-endian length, then
//! one Cap'n Proto frame. Oversized, truncated or malformed frames are errors
//! for the caller to close the connection on; nothing here panics on input.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::{Frame, WireError, decode_frame, encode_frame};

/// The largest frame a peer may send.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("{0}")]
    Wire(#[from] WireError),
}

/// A frame ready to write: the length prefix and the body.
pub fn frame_bytes(frame: &Frame) -> Vec<u8> {
    let body = encode_frame(frame);
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> std::io::Result<()> {
    w.write_all(&frame_bytes(frame)).await
}

/// Reads one frame; `buf` is reused between calls.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Frame, FramingError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FramingError::Closed);
        }
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FramingError::TooLarge(len));
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(decode_frame(buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Envelope;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn local_frames_cross_a_stream() {
        block(async {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            let f = Frame::Message {
                seq: 1,
                envelope: Envelope {
                    from: 0,
                    to: 1,
                    kind: 0,
                    payload: b"hi".to_vec(),
                },
            };
            write_frame(&mut a, &f).await.unwrap();
            write_frame(&mut a, &Frame::Ack(1)).await.unwrap();
            drop(a);
            let mut buf = Vec::new();
            assert_eq!(read_frame(&mut b, &mut buf).await.unwrap(), f);
            assert_eq!(read_frame(&mut b, &mut buf).await.unwrap(), Frame::Ack(1));
            assert!(matches!(
                read_frame(&mut b, &mut buf).await,
                Err(FramingError::Closed)
            ));
        });
    }

    #[test]
    fn local_oversized_frame_is_refused_before_reading_it() {
        block(async {
            let (mut a, mut b) = tokio::io::duplex(64);
            a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
            let mut buf = Vec::new();
            assert!(matches!(
                read_frame(&mut b, &mut buf).await,
                Err(FramingError::TooLarge(_))
            ));
            assert!(buf.capacity() < 1024, "no allocation for a lying length");
        });
    }
}
