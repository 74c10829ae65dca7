//! The consistency oracle: from the records replicas made (in any mode),
//! CloudScope's series and metrics — stale reads, forked writes,
//! visibility and its latency, commit latency, dropped writes, read and
//! write latency. Global knowledge lives here, never in replicas.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeTuple, Serializer};

use crate::node::Record;
use crate::systems::consistency::{KINDS, Rec, VKey};

/// Who the replicas are, to name them in the series.
pub struct Cast<'a> {
    pub names: &'a [String],
    pub locations: &'a [String],
    pub objects: &'a [String],
}

impl Cast<'_> {
    fn name(&self, node: u32) -> &str {
        self.names.get(node as usize).map_or("?", String::as_str)
    }
    fn object(&self, o: u32) -> &str {
        self.objects.get(o as usize).map_or("?", String::as_str)
    }
    fn version(&self, k: &VKey) -> String {
        format!(
            "{}.{}.{}",
            self.object(k.object),
            k.seq,
            self.name(k.writer)
        )
    }
    fn edge(&self, parent: Option<&VKey>, k: &VKey) -> String {
        match parent {
            Some(p) => format!("{}->{}", self.version(p), self.version(k)),
            None => format!("root->{}", self.version(k)),
        }
    }
}

/// The numbers of one run (CloudScope's aggregates, under `summary.json`'s
/// names). Times in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub reads: u64,
    pub writes: u64,
    pub empty_reads: u64,
    pub missed_reads: u64,
    pub completed_reads: u64,
    pub stale_reads: u64,
    pub mean_time_staleness_ms: f64,
    pub mean_version_staleness: f64,
    pub completed_writes: u64,
    pub stale_writes: u64,
    pub forked_writes: u64,
    pub visible_writes: u64,
    pub partially_visible_writes: u64,
    pub mean_visibility: f64,
    pub committed_writes: u64,
    pub dropped_writes: u64,
    pub unforked_writes: u64,
    pub unordered_writes: u64,
    pub mean_read_latency_ms: f64,
    pub mean_write_latency_ms: f64,
    pub mean_visibility_latency_ms: f64,
    pub mean_commit_latency_ms: f64,
    pub percent_stale_reads: f64,
    pub percent_forked_writes: f64,
    pub percent_visible_writes: f64,
    pub percent_committed_writes: f64,
}

/// One tuple of a CloudScope series, kept compact (ids, not names) until
/// it is written.
#[derive(Clone, Copy, Debug)]
enum Row {
    /// `[replica, location, object, t]`
    Access { node: u32, object: u32, t: f64 },
    /// `[replica, t]`
    At { node: u32, t: f64 },
    /// `[replica, version, started, finished]`
    Latency {
        node: u32,
        key: VKey,
        started: f64,
        t: f64,
    },
    /// `[replica, t, created, latest, version]` (ordinals per object)
    Stale {
        node: u32,
        t: f64,
        created: f64,
        latest: u64,
        version: u64,
    },
    /// `[writer, parent->version, fraction, created, t]`
    Visibility {
        key: VKey,
        parent: Option<VKey>,
        fraction: f64,
        created: f64,
        t: f64,
    },
    /// `[writer, parent->version, created, t]`
    Span {
        key: VKey,
        parent: Option<VKey>,
        created: f64,
        t: f64,
    },
    /// `[replica, object, started, finished]`
    Dropped {
        node: u32,
        object: u32,
        started: f64,
        t: f64,
    },
    /// `[replica, length, tags]`
    Session { node: u32, length: f64, tags: u32 },
    /// `sent`: `[source, target, t, type]`
    Sent {
        src: u32,
        dst: u32,
        t: f64,
        kind: u8,
    },
    /// `recv`: `[target, source, t, type, delay]`
    Recv {
        dst: u32,
        src: u32,
        t: f64,
        kind: u8,
        delay: f64,
    },
}

/// Every series of a run, in the order rows were made.
#[derive(Default)]
pub struct Series {
    rows: Vec<(&'static str, Row)>,
}

impl Series {
    #[inline]
    fn put(&mut self, name: &'static str, row: Row) {
        self.rows.push((name, row));
    }

    /// The series as CloudScope's `results` object (names resolved now).
    pub fn view<'a>(&'a self, cast: &'a Cast<'a>) -> SeriesView<'a> {
        SeriesView { series: self, cast }
    }
}

pub struct SeriesView<'a> {
    series: &'a Series,
    cast: &'a Cast<'a>,
}

struct RowView<'a>(&'a Row, &'a Cast<'a>);

impl Serialize for SeriesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut names: Vec<&'static str> = self.series.rows.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        let mut map = s.serialize_map(Some(names.len()))?;
        for name in names {
            let rows: Vec<RowView<'_>> = self
                .series
                .rows
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, r)| RowView(r, self.cast))
                .collect();
            map.serialize_entry(name, &rows)?;
        }
        map.end()
    }
}

impl Serialize for RowView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.1;
        macro_rules! tuple {
            ($($v:expr),+) => {{
                let mut t = s.serialize_tuple(0 $(+ { let _ = &$v; 1 })+)?;
                $(t.serialize_element(&$v)?;)+
                t.end()
            }};
        }
        match *self.0 {
            Row::Access { node, object, t } => {
                let loc = c.locations.get(node as usize).map_or("", String::as_str);
                tuple!(c.name(node), loc, c.object(object), t)
            }
            Row::At { node, t } => tuple!(c.name(node), t),
            Row::Latency {
                node,
                key,
                started,
                t,
            } => {
                tuple!(c.name(node), c.version(&key), started, t)
            }
            Row::Stale {
                node,
                t,
                created,
                latest,
                version,
            } => {
                tuple!(c.name(node), t, created, latest, version)
            }
            Row::Visibility {
                key,
                parent,
                fraction,
                created,
                t,
            } => tuple!(
                c.name(key.writer),
                c.edge(parent.as_ref(), &key),
                fraction,
                created,
                t
            ),
            Row::Span {
                key,
                parent,
                created,
                t,
            } => {
                tuple!(
                    c.name(key.writer),
                    c.edge(parent.as_ref(), &key),
                    created,
                    t
                )
            }
            Row::Dropped {
                node,
                object,
                started,
                t,
            } => {
                tuple!(c.name(node), c.object(object), started, t)
            }
            Row::Session { node, length, tags } => tuple!(c.name(node), length, tags),
            Row::Sent { src, dst, t, kind } => tuple!(c.name(src), c.name(dst), t, kind_name(kind)),
            Row::Recv {
                dst,
                src,
                t,
                kind,
                delay,
            } => tuple!(c.name(dst), c.name(src), t, kind_name(kind), delay),
        }
    }
}

fn kind_name(kind: u8) -> &'static str {
    KINDS.get(kind as usize).copied().unwrap_or("?")
}

struct Made {
    at: f64,
    ordinal: u64,
    parent: Option<VKey>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn mean(sum: f64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { sum / n as f64 }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// CloudScope's series (`results` of its results file) and the metrics.
/// `records` must be in time order; `replicas` is N, the number of
/// replicas a version must reach to be visible.
pub fn analyze(records: &[Record], replicas: usize) -> Result<(Series, Metrics), String> {
    let mut series = Series::default();
    let mut m = Metrics::default();
    let mut made: FxHashMap<VKey, Made> = FxHashMap::default();
    // Per object: the latest version made anywhere, and how many so far.
    let mut latest: FxHashMap<u32, (VKey, u64)> = FxHashMap::default();
    let mut children: FxHashMap<VKey, Vec<VKey>> = FxHashMap::default();
    let mut dropped: FxHashSet<VKey> = FxHashSet::default();
    let mut holders: FxHashMap<VKey, u32> = FxHashMap::default();
    let mut held: FxHashSet<(VKey, u32)> = FxHashSet::default();
    let mut committed: FxHashSet<VKey> = FxHashSet::default();
    let (mut staleness_t, mut staleness_v) = (0.0, 0.0);
    let (mut write_lat, mut vis_lat, mut commit_lat) = (0.0, 0.0, 0.0);

    for r in records {
        let rec: Rec = postcard::from_bytes(&r.bytes)
            .map_err(|e| format!("record of node {} at {} ns: {e}", r.node.0, r.at_ns))?;
        let (node, t) = (r.node.0, ms(r.at_ns));
        match rec {
            Rec::Access { object, write } => {
                if write {
                    m.writes += 1;
                } else {
                    m.reads += 1;
                }
                let name = if write { "write" } else { "read" };
                series.put(name, Row::Access { node, object, t });
            }
            Rec::Read { object, version } => match version {
                None => {
                    m.empty_reads += 1;
                    series.put("empty reads", Row::At { node, t });
                }
                Some(key) => {
                    m.completed_reads += 1;
                    series.put(
                        "read latency",
                        Row::Latency {
                            node,
                            key,
                            started: t,
                            t,
                        },
                    );
                    if let (Some(&(newest, count)), Some(v)) = (latest.get(&object), made.get(&key))
                        && newest != key
                    {
                        m.stale_reads += 1;
                        staleness_t += t - v.at;
                        staleness_v += (count - v.ordinal) as f64;
                        let created = v.at;
                        let version = v.ordinal;
                        series.put(
                            "stale reads",
                            Row::Stale {
                                node,
                                t,
                                created,
                                latest: count,
                                version,
                            },
                        );
                    }
                }
            },
            Rec::MissedRead { .. } => {
                m.missed_reads += 1;
                series.put("missed reads", Row::At { node, t });
            }
            Rec::Write(v) => {
                let k = v.key;
                let entry = latest.entry(k.object).or_insert((k, 0));
                let ordinal = entry.1 + 1;
                if let Some(p) = v.parent {
                    if entry.0 != p {
                        m.stale_writes += 1;
                        let (created, version) =
                            made.get(&p).map_or((0.0, 0), |x| (x.at, x.ordinal));
                        let latest = entry.1;
                        series.put(
                            "stale writes",
                            Row::Stale {
                                node: p.writer,
                                t,
                                created,
                                latest,
                                version,
                            },
                        );
                    }
                    let kids = children.entry(p).or_default();
                    if kids.iter().any(|c| !dropped.contains(c)) {
                        m.forked_writes += 1;
                        series.put("forked writes", Row::At { node: p.writer, t });
                    }
                    kids.push(k);
                }
                *entry = (k, ordinal);
                made.insert(
                    k,
                    Made {
                        at: t,
                        ordinal,
                        parent: v.parent,
                    },
                );
            }
            Rec::WriteDone { key, started_ns } => {
                m.completed_writes += 1;
                let started = ms(started_ns);
                write_lat += t - started;
                series.put(
                    "write latency",
                    Row::Latency {
                        node,
                        key,
                        started,
                        t,
                    },
                );
            }
            Rec::WriteDropped {
                object,
                key,
                started_ns,
            } => {
                m.dropped_writes += 1;
                dropped.extend(key);
                series.put("dropped writes", Row::At { node, t });
                let started = ms(started_ns);
                series.put(
                    "dropped write latency",
                    Row::Dropped {
                        node,
                        object,
                        started,
                        t,
                    },
                );
            }
            Rec::Holds(key) => {
                if !held.insert((key, node)) {
                    continue;
                }
                let n = holders.entry(key).or_insert(0);
                *n += 1;
                let Some(v) = made.get(&key) else { continue };
                let (parent, created) = (v.parent, v.at);
                if *n > 1 {
                    let fraction = f64::from(*n) / replicas as f64;
                    series.put(
                        "visibility",
                        Row::Visibility {
                            key,
                            parent,
                            fraction,
                            created,
                            t,
                        },
                    );
                }
                if *n as usize == replicas {
                    m.visible_writes += 1;
                    vis_lat += t - created;
                    series.put(
                        "visibility latency",
                        Row::Span {
                            key,
                            parent,
                            created,
                            t,
                        },
                    );
                }
            }
            Rec::Committed(key) => {
                if committed.insert(key)
                    && let Some(v) = made.get(&key)
                {
                    m.committed_writes += 1;
                    commit_lat += t - v.at;
                    let (parent, created) = (v.parent, v.at);
                    series.put(
                        "commit latency",
                        Row::Span {
                            key,
                            parent,
                            created,
                            t,
                        },
                    );
                }
            }
            Rec::Unforked(k) => {
                m.unforked_writes += 1;
                series.put("unforked writes", Row::At { node: k.writer, t });
            }
            Rec::Unordered(k) => {
                m.unordered_writes += 1;
                series.put("unordered writes", Row::At { node: k.writer, t });
            }
            Rec::TagAcquired { .. } => series.put("tag size", Row::At { node, t }),
            Rec::SessionEnded { length_ns, tags } => {
                let length = ms(length_ns);
                series.put("session length", Row::Session { node, length, tags })
            }
            Rec::Sent { to, kind } => series.put(
                "sent",
                Row::Sent {
                    src: node,
                    dst: to,
                    t,
                    kind,
                },
            ),
            Rec::Recv {
                from,
                kind,
                sent_ns,
            } => series.put(
                "recv",
                Row::Recv {
                    dst: node,
                    src: from,
                    t,
                    kind,
                    delay: t - ms(sent_ns),
                },
            ),
        }
    }
    let versions = made.len() as u64;
    let mut vis_sum = 0.0;
    for k in made.keys() {
        let n = holders.get(k).copied().unwrap_or(0);
        vis_sum += f64::from(n) / replicas.max(1) as f64;
        if n >= 2 && (n as usize) < replicas {
            m.partially_visible_writes += 1;
        }
    }
    m.mean_visibility = mean(vis_sum, versions);
    m.mean_time_staleness_ms = mean(staleness_t, m.stale_reads);
    m.mean_version_staleness = mean(staleness_v, m.stale_reads);
    // Every protocol reads locally, at once.
    m.mean_read_latency_ms = 0.0;
    m.mean_write_latency_ms = mean(write_lat, m.completed_writes);
    m.mean_visibility_latency_ms = mean(vis_lat, m.visible_writes);
    m.mean_commit_latency_ms = mean(commit_lat, m.committed_writes);
    m.percent_stale_reads = pct(m.stale_reads, m.reads);
    m.percent_forked_writes = pct(m.forked_writes, m.writes);
    m.percent_visible_writes = pct(m.visible_writes, m.writes);
    m.percent_committed_writes = pct(m.committed_writes, m.writes);
    Ok((series, m))
}
