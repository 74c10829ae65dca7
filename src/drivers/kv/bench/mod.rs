//! The load generator behind `dz kv-bench`: concurrent clients run a
//! workload against a target (a DistZero kv cluster, or etcd), and every
//! operation is recorded with its timing, for latency figures and for the
//! linearizability checker. Before the load, every key the workload uses
//! is read once and the reads are put in the history (marked `initial`):
//! the cluster may already hold data, and the checker must know what.

#[cfg(feature = "etcd")]
pub mod etcd;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::RngExt;

use crate::drivers::kv::remote::{KvRemote, ServerAddr};
use crate::error::{Error, Result};
use crate::rng::stream;
use crate::systems::kv::client::HistoryOp;
use crate::systems::kv::msg::{Op, Response};
use crate::systems::kv::workload::Workload;

/// Something that answers kv operations.
#[async_trait]
pub trait Target: Send {
    /// The answer, and how many sends it took.
    async fn call(&mut self, op: Op) -> Result<(Response, u32)>;

    /// How many sends the last call made, answered or not.
    fn last_tries(&self) -> u32 {
        1
    }
}

#[async_trait]
impl Target for KvRemote {
    async fn call(&mut self, op: Op) -> Result<(Response, u32)> {
        KvRemote::call(self, op).await
    }

    fn last_tries(&self) -> u32 {
        self.last_tries
    }
}

/// Where the load goes.
#[derive(Clone, Debug)]
pub enum TargetSpec {
    DistZero {
        servers: Vec<ServerAddr>,
        secret: String,
    },
    Etcd {
        address: String,
    },
}

impl TargetSpec {
    /// `etcd://host:port`.
    pub fn parse_url(url: &str) -> Result<TargetSpec> {
        match url.split_once("://") {
            Some(("etcd", address)) if !address.is_empty() => Ok(TargetSpec::Etcd {
                address: address.to_string(),
            }),
            _ => Err(Error::input(format!(
                "--target {url:?}: expected etcd://HOST:PORT (for a DistZero cluster use --cluster or --servers)"
            ))),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TargetSpec::DistZero { servers, .. } => {
                format!("DistZero kv ({} servers)", servers.len())
            }
            TargetSpec::Etcd { address } => format!("etcd at {address}"),
        }
    }

    pub async fn connect(&self) -> Result<Box<dyn Target>> {
        match self {
            TargetSpec::DistZero { servers, secret } => {
                Ok(Box::new(KvRemote::new(servers.clone(), secret.clone())))
            }
            #[cfg(feature = "etcd")]
            TargetSpec::Etcd { address } => Ok(Box::new(etcd::EtcdTarget::connect(address).await?)),
            #[cfg(not(feature = "etcd"))]
            TargetSpec::Etcd { .. } => {
                Err(Error::input("this dz was built without the `etcd` feature"))
            }
        }
    }
}

pub struct BenchRun {
    /// The initial reads, then the workload's operations.
    pub history: Vec<HistoryOp>,
    /// How long the workload ran (the initial reads aside).
    pub seconds: f64,
    /// Operations that got no answer, with why.
    pub errors: Vec<String>,
}

impl BenchRun {
    /// The workload's operations (the initial reads aside).
    pub fn load(&self) -> impl Iterator<Item = &HistoryOp> {
        self.history.iter().filter(|h| !h.initial)
    }
}

/// One call, timed from `start`; an unanswered one says why in `errors`.
async fn timed_call(
    target: &mut dyn Target,
    client: u32,
    id: u64,
    op: Op,
    start: Instant,
    errors: &mut Vec<String>,
) -> HistoryOp {
    let call_ns = start.elapsed().as_nanos() as u64;
    let result = target.call(op.clone()).await;
    let ret_ns = start.elapsed().as_nanos() as u64;
    let (ret_ns, output, tries) = match result {
        Ok((r, tries)) => (Some(ret_ns), Some(r), tries),
        Err(e) => {
            errors.push(e.to_string());
            (None, None, target.last_tries())
        }
    };
    HistoryOp {
        client,
        id,
        op,
        call_ns,
        ret_ns,
        output,
        tries,
        initial: false,
    }
}

/// Readers of the starting state at most.
const INITIAL_READERS: u32 = 16;

/// Reads every key of the workload once, before the load: as clients
/// numbered from `w.clients` on, each reading every n-th key.
async fn read_starting_state(
    spec: &TargetSpec,
    w: &Workload,
    start: Instant,
) -> Result<(Vec<HistoryOp>, Vec<String>)> {
    let readers = INITIAL_READERS.min(w.keys);
    let mut tasks = Vec::new();
    for r in 0..readers {
        let (spec, w) = (spec.clone(), w.clone());
        tasks.push(tokio::spawn(async move {
            let mut target = spec.connect().await?;
            let (mut history, mut errors) = (Vec::new(), Vec::new());
            for (id, k) in (r..w.keys).step_by(readers as usize).enumerate() {
                let op = Op::Get(w.key(k));
                let client = w.clients + r;
                let mut h =
                    timed_call(&mut *target, client, id as u64 + 1, op, start, &mut errors).await;
                h.initial = true;
                history.push(h);
            }
            Ok::<_, Error>((history, errors))
        }));
    }
    let mut history = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (h, e) = t
            .await
            .map_err(|e| Error::runtime(format!("a reader task failed: {e}")))??;
        history.extend(h);
        errors.extend(e);
    }
    Ok((history, errors))
}

/// Reads the starting state, then runs the workload: `clients` concurrent
/// clients, `requests` each.
pub async fn run(
    spec: &TargetSpec,
    w: &Workload,
    seed: u64,
    done: Arc<AtomicU64>,
) -> Result<BenchRun> {
    let start = Instant::now();
    let (initial, initial_errors) = read_starting_state(spec, w, start).await?;
    let load_start = start.elapsed();
    // With a duration, clients stop sending new requests once it is over.
    let stop =
        (w.duration_ms > 0.0).then(|| load_start + Duration::from_secs_f64(w.duration_ms / 1e3));
    let mut tasks = Vec::new();
    for client in 0..w.clients {
        let (spec, w, done) = (spec.clone(), w.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut target = spec.connect().await?;
            let mut rng = stream(seed, "kv-bench", client.into());
            let mut history = Vec::with_capacity(w.requests as usize);
            let mut errors = Vec::new();
            for id in 1..=w.requests {
                if stop.is_some_and(|s| start.elapsed() >= s) {
                    break;
                }
                let op = w.op(&mut rng);
                history.push(timed_call(&mut *target, client, id, op, start, &mut errors).await);
                done.fetch_add(1, Ordering::Relaxed);
                if w.interval_ms > 0.0 {
                    let pause = rng.random_range(0.0..=w.interval_ms);
                    tokio::time::sleep(Duration::from_secs_f64(pause / 1e3)).await;
                }
            }
            Ok::<_, Error>((history, errors))
        }));
    }
    let mut history = initial;
    let mut errors = initial_errors;
    for t in tasks {
        let (h, e) = t
            .await
            .map_err(|e| Error::runtime(format!("a client task failed: {e}")))??;
        history.extend(h);
        errors.extend(e);
    }
    Ok(BenchRun {
        history,
        seconds: (start.elapsed() - load_start).as_secs_f64(),
        errors,
    })
}

/// Latency percentiles in µs of answered operations: (p50, p99, p99.9).
pub fn percentiles<'a>(ops: impl IntoIterator<Item = &'a HistoryOp>) -> (u64, u64, u64) {
    let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits");
    for op in ops {
        if let Some(ret) = op.ret_ns {
            crate::node::metrics::record(&mut h, (ret - op.call_ns) / 1000);
        }
    }
    (
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
    )
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Get(_) => "get",
        Op::Exists(_) => "exists",
        Op::Update(..) => "update",
        Op::Delete(_) => "delete",
        Op::Count => "count",
        Op::Print => "print",
    }
}

/// A CSV field: commas and line breaks would split it.
fn field(text: &str) -> String {
    text.replace([',', '\n', '\r'], " ")
}

/// `latency.csv`: one line per operation of the workload, in call order;
/// an unanswered one has no latency and the result `no answer` (the
/// complete record, values and all, is `history.jsonl`).
pub fn latency_csv<'a>(ops: impl IntoIterator<Item = &'a HistoryOp>) -> String {
    let mut ops: Vec<&HistoryOp> = ops.into_iter().collect();
    ops.sort_by_key(|o| (o.call_ns, o.client, o.id));
    let mut s = String::from(LATENCY_HEADER);
    for o in ops {
        let (latency, result) = match (o.ret_ns, &o.output) {
            (Some(r), Some(out)) => (
                ((r - o.call_ns) / 1000).to_string(),
                field(&out.to_string()),
            ),
            _ => (String::new(), "no answer".into()),
        };
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            o.call_ns / 1000,
            o.client,
            o.id,
            op_name(&o.op),
            field(o.op.key().unwrap_or("")),
            latency,
            o.tries,
            result
        ));
    }
    s
}

pub const LATENCY_HEADER: &str = "start_us,client,request,op,key,latency_us,tries,result\n";

/// `results.csv`: one line for the run.
pub fn results_csv(clients: u32, run: &BenchRun) -> String {
    let answered = run.load().filter(|o| o.ret_ns.is_some()).count();
    let (p50, p99, p999) = percentiles(run.load());
    format!(
        "clients,seconds,requests_per_s,p50_us,p99_us,p999_us\n{clients},{:.3},{:.1},{p50},{p99},{p999}\n",
        run.seconds,
        answered as f64 / run.seconds
    )
}
