//! Acknowledgements between two agents: the dialing side reads them, the
//! accepting side writes them (and, for an external client, its replies).

use std::cell::Cell;
use std::rc::Rc;

use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;

use super::{ACK_INTERVAL, Reader, Writer};
use crate::runtime::framing::{read_frame, write_frame};
use crate::wire::{Envelope, Frame};

pub(super) async fn read_acks(mut rd: Reader, acked: Rc<Cell<u64>>, notify: Rc<Notify>) {
    let mut buf = Vec::new();
    while let Ok(Frame::Ack(seq)) = read_frame(&mut rd, &mut buf).await {
        acked.set(acked.get().max(seq));
        notify.notify_one();
    }
}

/// The accepting side's writer: acknowledgements, and for an external
/// client its replies.
pub(super) async fn write_back(
    mut wr: Writer,
    last: Rc<Cell<u64>>,
    mut sent: u64,
    wake: Rc<Notify>,
    mut replies: Option<mpsc::Receiver<Envelope>>,
) {
    let mut seq = 0;
    loop {
        let reply = async {
            match replies.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            env = reply => {
                let Some(envelope) = env else { return };
                seq += 1;
                if write_frame(&mut wr, &Frame::Message { seq, envelope }).await.is_err() {
                    return;
                }
            }
            _ = timeout(ACK_INTERVAL, wake.notified()) => {}
        }
        let now = last.get();
        if now != sent {
            if write_frame(&mut wr, &Frame::Ack(now)).await.is_err() {
                return;
            }
            sent = now;
        }
    }
}
