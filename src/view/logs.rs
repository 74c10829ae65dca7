//! Every machine's JSON log lines (bunyan, as `logging.rs` writes them)
//! merged in time order. A simulated run's lines carry the virtual time
//! (`vtime_ms`); a real cluster's carry only the wall clock (`time`), taken
//! relative to the earliest line of all machines.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct LogLine {
    /// Seconds into the run.
    pub t: f64,
    pub machine: String,
    pub node: String,
    /// Bunyan level: 10 trace, 20 debug, 30 info, 40 warn, 50 error.
    pub level: u8,
    pub msg: String,
    /// The whole line, for its other fields.
    pub raw: String,
}

#[derive(Default)]
pub struct LogIndex {
    pub lines: Vec<LogLine>,
    pub files: Vec<PathBuf>,
    /// Lines that were not JSON (kept out, counted).
    pub skipped: usize,
}

pub struct Filter<'a> {
    pub machine: Option<&'a str>,
    pub node: Option<&'a str>,
    pub min_level: u8,
    pub text: Option<&'a str>,
    pub from: f64,
    pub to: f64,
}

pub fn level_number(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "trace" => 10,
        "debug" => 20,
        "info" => 30,
        "warn" => 40,
        "error" => 50,
        _ => return None,
    })
}

fn level_name(n: u8) -> &'static str {
    match n {
        0..=10 => "trace",
        11..=20 => "debug",
        21..=30 => "info",
        31..=40 => "warn",
        _ => "error",
    }
}

impl LogIndex {
    /// Reads the given files; a file's name (`paris-1.json.log`) names the
    /// machine of lines that carry none.
    pub fn open(files: &[PathBuf]) -> Result<LogIndex> {
        let mut ix = LogIndex::default();
        // Wall-clock lines wait for the earliest time of all files.
        let mut wall: Vec<(f64, LogLine)> = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            let fallback = machine_from_file(f);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match parse_line(line, &fallback) {
                    Some((Some(t), l)) => ix.lines.push(LogLine { t, ..l }),
                    Some((None, l)) => match wall_time(line) {
                        Some(w) => wall.push((w, l)),
                        None => ix.skipped += 1,
                    },
                    None => ix.skipped += 1,
                }
            }
            ix.files.push(f.clone());
        }
        if let Some(first) = wall.iter().map(|w| w.0).reduce(f64::min) {
            ix.lines
                .extend(wall.into_iter().map(|(w, l)| LogLine { t: w - first, ..l }));
        }
        ix.lines.sort_by(|a, b| a.t.total_cmp(&b.t));
        Ok(ix)
    }

    /// Lines matching `f`, from the `offset`-th match, at most `limit`, and
    /// how many match in all.
    pub fn query(&self, f: &Filter, offset: usize, limit: usize) -> (usize, Vec<Value>) {
        let start = self.lines.partition_point(|l| l.t < f.from);
        let text = f.text.map(str::to_lowercase);
        let mut total = 0;
        let mut out = Vec::new();
        for (i, l) in self.lines[start..].iter().enumerate() {
            if l.t > f.to {
                break;
            }
            if f.machine.is_some_and(|m| m != l.machine)
                || f.node.is_some_and(|n| n != l.node)
                || l.level < f.min_level
                || text
                    .as_deref()
                    .is_some_and(|q| !l.raw.to_lowercase().contains(q))
            {
                continue;
            }
            if total >= offset && out.len() < limit {
                out.push(json!({
                    "i": start + i, "t": l.t, "machine": l.machine, "node": l.node,
                    "level": level_name(l.level), "msg": l.msg, "raw": l.raw,
                }));
            }
            total += 1;
        }
        (total, out)
    }

    /// The machines named in the logs, in order of appearance.
    pub fn machines(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for l in &self.lines {
            if !seen.contains(&l.machine) {
                seen.push(l.machine.clone());
            }
        }
        seen
    }

    pub fn end(&self) -> f64 {
        self.lines.last().map_or(0.0, |l| l.t)
    }
}

fn machine_from_file(f: &Path) -> String {
    let name = f
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    name.split(".json.log")
        .next()
        .unwrap_or(&name)
        .trim_end_matches(".log")
        .to_string()
}

/// The line's fields and, if it has one, its virtual time in seconds.
fn parse_line(line: &str, fallback: &str) -> Option<(Option<f64>, LogLine)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let o = v.as_object()?;
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let vt = o.get("vtime_ms").and_then(Value::as_f64).map(|ms| ms / 1e3);
    let level = o
        .get("level")
        .and_then(|l| {
            l.as_u64()
                .map(|n| n as u8)
                .or_else(|| l.as_str().and_then(level_number))
        })
        .unwrap_or(30);
    Some((
        vt,
        LogLine {
            t: 0.0,
            machine: s("machine").unwrap_or_else(|| fallback.to_string()),
            node: s("node").unwrap_or_else(|| "-".into()),
            level,
            msg: s("msg").unwrap_or_default(),
            raw: line.to_string(),
        },
    ))
}

fn wall_time(line: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(line).ok()?;
    let s = v.get("time")?.as_str()?;
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// The log files of a directory: `*.json.log`, or failing that `*.log`.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::input(format!("{}: {e}", dir.display())))?;
    let mut all: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    all.sort();
    let name = |p: &PathBuf| {
        p.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    };
    let json: Vec<_> = all
        .iter()
        .filter(|p| name(p).ends_with(".json.log"))
        .cloned()
        .collect();
    if !json.is_empty() {
        return Ok(json);
    }
    Ok(all
        .into_iter()
        .filter(|p| name(p).ends_with(".log"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_merge_in_time_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json.log");
        let b = dir.path().join("b.json.log");
        std::fs::write(&a, "{\"time\":\"2026-01-01T00:00:02Z\",\"level\":30,\"msg\":\"late\",\"node\":\"n0\"}\nnot json\n").unwrap();
        std::fs::write(&b, "{\"time\":\"2026-01-01T00:00:01Z\",\"level\":50,\"msg\":\"early boom\",\"machine\":\"bee\"}\n").unwrap();
        let ix = LogIndex::open(&files_in(dir.path()).unwrap()).unwrap();
        assert_eq!(ix.skipped, 1);
        assert_eq!(ix.lines[0].msg, "early boom");
        assert_eq!(ix.lines[1].machine, "a");
        assert!((ix.lines[1].t - 1.0).abs() < 1e-9);
        let all = Filter {
            machine: None,
            node: None,
            min_level: 0,
            text: None,
            from: 0.0,
            to: f64::MAX,
        };
        assert_eq!(ix.query(&all, 0, 10).0, 2);
        let errors = Filter {
            min_level: 40,
            ..all
        };
        assert_eq!(ix.query(&errors, 0, 10).1[0]["msg"], "early boom");
        let text = Filter {
            text: Some("LATE"),
            min_level: 0,
            ..errors
        };
        assert_eq!(ix.query(&text, 0, 10).1[0]["machine"], "a");
    }
}
