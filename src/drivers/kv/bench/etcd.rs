//! etcd as a kv-bench target, through etcd's gRPC API (the `etcdserverpb.KV`
//! service). The few messages used are written out here with prost, so no
//! protobuf compiler is needed to build.

use std::time::Duration;

use async_trait::async_trait;
use tonic::client::Grpc;
use tonic::transport::Channel;

use super::Target;
use crate::error::{Error, Result};
use crate::systems::kv::msg::{Op, Response};

#[derive(Clone, PartialEq, prost::Message)]
struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    range_end: Vec<u8>,
    #[prost(bool, tag = "9")]
    count_only: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RangeResponse {
    #[prost(message, repeated, tag = "2")]
    kvs: Vec<KeyValue>,
    #[prost(int64, tag = "4")]
    count: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {}

#[derive(Clone, PartialEq, prost::Message)]
struct DeleteRangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeleteRangeResponse {
    #[prost(int64, tag = "2")]
    deleted: i64,
}

pub struct EtcdTarget {
    grpc: Grpc<Channel>,
}

fn grpc_err(e: impl std::fmt::Display) -> Error {
    Error::runtime(format!("etcd: {e}"))
}

impl EtcdTarget {
    /// `address` is host:port of etcd's client endpoint.
    pub async fn connect(address: &str) -> Result<EtcdTarget> {
        let channel = Channel::from_shared(format!("http://{address}"))
            .map_err(|e| Error::input(format!("etcd address {address:?}: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .map_err(|e| Error::runtime(format!("cannot reach etcd at {address}: {e}")))?;
        Ok(EtcdTarget {
            grpc: Grpc::new(channel),
        })
    }

    async fn unary<Q, R>(&mut self, path: &'static str, req: Q) -> Result<R>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc.ready().await.map_err(grpc_err)?;
        let codec = tonic_prost::ProstCodec::default();
        let path = http::uri::PathAndQuery::from_static(path);
        let reply = self
            .grpc
            .unary(tonic::Request::new(req), path, codec)
            .await
            .map_err(grpc_err)?;
        Ok(reply.into_inner())
    }

    async fn range(
        &mut self,
        key: &[u8],
        range_end: &[u8],
        count_only: bool,
    ) -> Result<RangeResponse> {
        let req = RangeRequest {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
            count_only,
        };
        self.unary("/etcdserverpb.KV/Range", req).await
    }
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

#[async_trait]
impl Target for EtcdTarget {
    async fn call(&mut self, op: Op) -> Result<(Response, u32)> {
        let r = match op {
            Op::Get(k) => {
                let mut r = self.range(k.as_bytes(), b"", false).await?;
                match r.kvs.pop() {
                    Some(kv) => Response::Value(text(kv.value)),
                    None => Response::NotFound,
                }
            }
            Op::Exists(k) => Response::Bool(self.range(k.as_bytes(), b"", true).await?.count > 0),
            Op::Update(k, v) => {
                let req = PutRequest {
                    key: k.into_bytes(),
                    value: v.into_bytes(),
                };
                let _: PutResponse = self.unary("/etcdserverpb.KV/Put", req).await?;
                Response::Ok
            }
            Op::Delete(k) => {
                let req = DeleteRangeRequest {
                    key: k.into_bytes(),
                };
                let r: DeleteRangeResponse =
                    self.unary("/etcdserverpb.KV/DeleteRange", req).await?;
                if r.deleted > 0 {
                    Response::Ok
                } else {
                    Response::NotFound
                }
            }
            // Every key: from "\0" to the end of the key space.
            Op::Count => Response::Count(self.range(b"\0", b"\0", true).await?.count as u64),
            Op::Print => {
                let r = self.range(b"\0", b"\0", false).await?;
                Response::Pairs(
                    r.kvs
                        .into_iter()
                        .map(|kv| (text(kv.key), text(kv.value)))
                        .collect(),
                )
            }
        };
        Ok((r, 1))
    }
}
