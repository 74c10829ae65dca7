//! Property tests over the frame decoder: whatever bytes arrive, decoding
//! returns a frame or an error and never panics, and every frame we encode
//! decodes to itself. (A cargo-fuzz target would need nightly; this runs in
//! every `cargo test`.)

use distzero::runtime::framing::{FramingError, MAX_FRAME, frame_bytes, read_frame};
use distzero::wire::{Envelope, Frame, Hello, decode_envelope, decode_frame, encode_frame};
use proptest::prelude::*;

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(seq, from, to, kind, payload)| Frame::Message {
                seq,
                envelope: Envelope {
                    from,
                    to,
                    kind,
                    payload
                }
            }),
        any::<u64>().prop_map(Frame::Ack),
        (
            "[a-z0-9-]{0,12}",
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(machine, session, nonce, proof)| Frame::Hello(Hello {
                machine,
                session,
                nonce,
                proof
            })),
    ]
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn local_random_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_frame(&bytes);
        let _ = decode_envelope(&bytes);
    }

    #[test]
    fn local_mutated_frames_never_panic_the_decoder(f in frame(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode_frame(&f);
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] ^= v;
        }
        let _ = decode_frame(&bytes);
    }

    #[test]
    fn local_frames_round_trip(f in frame()) {
        prop_assert_eq!(decode_frame(&encode_frame(&f)).unwrap(), f);
    }

    #[test]
    fn local_random_streams_end_in_a_frame_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        block(async {
            let mut reader = &bytes[..];
            let mut buf = Vec::new();
            for _ in 0..16 {
                match read_frame(&mut reader, &mut buf).await {
                    Ok(_) => continue,
                    Err(FramingError::TooLarge(n)) => { assert!(n > MAX_FRAME); break }
                    Err(_) => break,
                }
            }
            assert!(buf.len() <= MAX_FRAME);
        });
    }

    #[test]
    fn local_framed_streams_read_back(frames in proptest::collection::vec(frame(), 1..10)) {
        let bytes: Vec<u8> = frames.iter().flat_map(frame_bytes).collect();
        let got = block(async {
            let mut reader = &bytes[..];
            let mut buf = Vec::new();
            let mut out = Vec::new();
            while let Ok(f) = read_frame(&mut reader, &mut buf).await {
                out.push(f);
            }
            out
        });
        prop_assert_eq!(got, frames);
    }
}
