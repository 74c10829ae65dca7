//! Logs: `tracing` events as bunyan JSON lines in a file under `.tmp/`, and
//! optionally shipped to logstash over TCP (`json_lines`). Every line
//! carries the mode as a default field; framework and node lines add the
//! machine, the node and the (virtual) time.
//!
//! The logstash sink never blocks the caller: lines go through a bounded
//! queue to a background thread, and what does not fit, or cannot be sent
//! while logstash is unreachable, is counted as dropped.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::error::{Error, Result};
use crate::node::Mode;
use crate::settings::{LogstashAddr, Settings};

/// Lines waiting for logstash before new ones are dropped.
const LOGSTASH_QUEUE: usize = 8192;

pub struct LogConfig {
    /// The log file to write (its directory is created).
    pub file: PathBuf,
    /// Add to an existing file (an agent restarting) instead of starting anew.
    pub append: bool,
    /// Fields on every line besides the mode (an agent's cluster).
    pub fields: Vec<(String, String)>,
    pub mode: Mode,
    pub filter: String,
    pub logstash: Option<LogstashAddr>,
}

impl LogConfig {
    pub fn new(file: impl Into<PathBuf>, mode: Mode, settings: &Settings) -> Self {
        LogConfig {
            file: file.into(),
            append: false,
            fields: Vec::new(),
            mode,
            filter: settings.log_filter.clone(),
            logstash: settings.logstash.clone(),
        }
    }
}

/// Keeps logging alive; dropping it flushes the file and gives logstash a
/// moment to drain.
pub struct LogGuard {
    _file: WorkerGuard,
    logstash: Option<Arc<SinkCounters>>,
}

impl LogGuard {
    /// Lines logstash did not get (queue full or unreachable).
    pub fn logstash_dropped(&self) -> u64 {
        self.logstash
            .as_ref()
            .map_or(0, |c| c.dropped.load(Ordering::Relaxed))
    }

    pub fn logstash_sent(&self) -> u64 {
        self.logstash
            .as_ref()
            .map_or(0, |c| c.sent.load(Ordering::Relaxed))
    }
}

impl LogGuard {
    /// Waits (up to two seconds) for queued lines to reach logstash.
    pub fn drain(&self) {
        if let Some(c) = &self.logstash {
            let deadline = Instant::now() + Duration::from_secs(2);
            while c.queued.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// One line for the user about logstash, if it is configured.
    pub fn logstash_report(&self) -> Option<String> {
        self.drain();
        self.logstash.as_ref()?;
        Some(format!(
            "logstash: {} lines sent, {} dropped",
            self.logstash_sent(),
            self.logstash_dropped()
        ))
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.drain();
    }
}

/// Installs the process-wide subscriber. Fails if the file cannot be
/// created; if a subscriber is already installed (tests), keeps that one.
pub fn init(cfg: &LogConfig) -> Result<LogGuard> {
    let dir = cfg.file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(cfg.append)
        .truncate(!cfg.append)
        .open(&cfg.file)
        .map_err(|e| Error::io(&cfg.file, e))?;
    let (file_writer, file_guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_new(&cfg.filter)
        .map_err(|e| Error::input(format!("DZ_LOG={:?}: {e}", cfg.filter)))?;
    let mut fields = HashMap::from([("mode".to_string(), serde_json::json!(cfg.mode.as_str()))]);
    for (k, v) in &cfg.fields {
        fields.insert(k.clone(), serde_json::json!(v));
    }
    let file_layer =
        BunyanFormattingLayer::with_default_fields("distzero".into(), file_writer, fields.clone());
    let (logstash_layer, counters) = match &cfg.logstash {
        Some(addr) => {
            let sink = LogstashSink::start(addr.clone());
            let counters = sink.counters.clone();
            (
                Some(BunyanFormattingLayer::with_default_fields(
                    "distzero".into(),
                    sink,
                    fields,
                )),
                Some(counters),
            )
        }
        None => (None, None),
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(JsonStorageLayer)
        .with(file_layer)
        .with(logstash_layer);
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(LogGuard {
        _file: file_guard,
        logstash: counters,
    })
}

#[derive(Default)]
struct SinkCounters {
    queued: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// A `MakeWriter` whose writers hand each finished line to the sender
/// thread without waiting.
#[derive(Clone)]
struct LogstashSink {
    tx: SyncSender<Vec<u8>>,
    counters: Arc<SinkCounters>,
}

impl LogstashSink {
    fn start(addr: LogstashAddr) -> Self {
        let (tx, rx) = sync_channel(LOGSTASH_QUEUE);
        let counters = Arc::new(SinkCounters::default());
        let c = counters.clone();
        std::thread::Builder::new()
            .name("logstash".into())
            .spawn(move || ship(addr, rx, c))
            .expect("spawning the logstash thread");
        LogstashSink { tx, counters }
    }
}

/// Sends queued lines, reconnecting with backoff; while logstash is down,
/// lines are counted as dropped rather than held.
fn ship(addr: LogstashAddr, rx: Receiver<Vec<u8>>, c: Arc<SinkCounters>) {
    let mut conn: Option<TcpStream> = None;
    let mut next_try = Instant::now();
    for line in rx {
        c.queued.fetch_sub(1, Ordering::Relaxed);
        if conn.is_none() && Instant::now() >= next_try {
            conn = connect(&addr);
            if conn.is_none() {
                next_try = Instant::now() + Duration::from_secs(1);
            }
        }
        let ok = conn.as_mut().is_some_and(|s| s.write_all(&line).is_ok());
        if ok {
            c.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            conn = None;
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn connect(addr: &LogstashAddr) -> Option<TcpStream> {
    let sock = (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .ok()?
        .next()?;
    let s = TcpStream::connect_timeout(&sock, Duration::from_millis(500)).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(s)
}

pub struct LineWriter {
    buf: Vec<u8>,
    sink: LogstashSink,
}

impl Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let c = &self.sink.counters;
        c.queued.fetch_add(1, Ordering::Relaxed);
        match self.sink.tx.try_send(std::mem::take(&mut self.buf)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                c.queued.fetch_sub(1, Ordering::Relaxed);
                c.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for LogstashSink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            buf: Vec::new(),
            sink: self.clone(),
        }
    }
}

/// Logs a controller line with the same fields node lines carry.
#[macro_export]
macro_rules! ctl_log {
    ($level:ident, $vtime:expr, $($arg:tt)+) => {
        ::tracing::$level!(machine = "controller", node = "-", vtime_ms = $vtime.as_secs_f64() * 1e3, $($arg)+)
    };
}
