//! Running async work from a command: a current-thread tokio runtime with a
//! `LocalSet`, which capnp-rpc (not `Send`) needs.

use std::future::Future;

pub fn block_local<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime always builds");
    tokio::task::LocalSet::new().block_on(&rt, f)
}
