//! Workload traces: CloudScope's `timestep replica object read|write`
//! lines (whitespace-separated, gzip too), and its generator: users placed
//! on devices round-robin over locations, objects shared with
//! `conflict_prob`, accesses every bounded-normal delay, reads with
//! `read_prob`, switching objects with `object_prob`.

use std::io::{Read, Write};
use std::path::Path;

use rand::RngExt;
use rand_distr::{Distribution, Normal};

use super::settings::RunSettings;
use crate::error::{Error, Result};
use crate::rng::{DetRng, stream};
use crate::topology::Topology;

/// One access of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRow {
    pub at_ms: f64,
    /// Index of the replica (topology node).
    pub replica: usize,
    pub object: String,
    pub write: bool,
}

/// Reads a file, gunzipping it when it starts with gzip's magic bytes.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::input(format!("{}: not a readable gzip text: {e}", path.display()))
            })?;
        Ok(text)
    } else {
        String::from_utf8(bytes)
            .map_err(|_| Error::input(format!("{}: not UTF-8 text", path.display())))
    }
}

/// Writes `text`, gzipped when the path ends in `.gz`.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let io = |e| Error::io(path, e);
    if path.extension().is_some_and(|e| e == "gz") {
        let file = std::fs::File::create(path).map_err(io)?;
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        gz.write_all(text.as_bytes()).map_err(io)?;
        gz.finish().map_err(io)?;
        Ok(())
    } else {
        std::fs::write(path, text).map_err(io)
    }
}

/// A step of a trace file as CloudScope reads it: `int(float(x))`.
pub(super) fn timestep(field: &str) -> std::result::Result<f64, String> {
    let v: f64 = field
        .parse()
        .map_err(|_| format!("timestep: {field:?} is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("timestep: {field:?} is not a time (ms >= 0)"));
    }
    Ok(v.trunc())
}

/// Parses a trace; errors read `FILE:LINE: field: why`.
pub fn load(path: &Path, topology: &Topology) -> Result<Vec<TraceRow>> {
    let text = read_text(path)?;
    parse(&text, topology).map_err(|e| Error::input(format!("{}:{e}", path.display())))
}

pub fn parse(text: &str, topology: &Topology) -> std::result::Result<Vec<TraceRow>, String> {
    let mut rows = Vec::new();
    let mut last = 0.0;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0].starts_with('#') {
            continue;
        }
        let (at, replica, object, method) = match fields.as_slice() {
            [t, r, o, m] => (*t, *r, *o, *m),
            // CloudScope: three fields name no object.
            [t, r, m] => (*t, *r, "None", *m),
            _ => {
                return Err(format!(
                    "{n}: expected `timestep replica object read|write`, got {} fields",
                    fields.len()
                ));
            }
        };
        let at_ms = timestep(at).map_err(|e| format!("{n}: {e}"))?;
        if at_ms < last {
            return Err(format!(
                "{n}: timestep: {at_ms} comes before {last} (a trace is in time order)"
            ));
        }
        last = at_ms;
        let replica = topology
            .nodes
            .iter()
            .position(|x| x.name == replica)
            .ok_or_else(|| format!("{n}: replica: no node {replica:?} in the topology"))?;
        let write = match method {
            "write" => true,
            "read" => false,
            other => {
                return Err(format!(
                    "{n}: method: expected read or write, got {other:?}"
                ));
            }
        };
        rows.push(TraceRow {
            at_ms,
            replica,
            object: object.to_string(),
            write,
        });
    }
    Ok(rows)
}

/// The trace as CloudScope writes it: tab-separated, integer timesteps.
pub fn to_text(rows: &[TraceRow], topology: &Topology) -> String {
    let mut out = String::with_capacity(rows.len() * 16);
    for r in rows {
        let method = if r.write { "write" } else { "read" };
        out.push_str(&format!(
            "{}\t{}\t{}\t{method}\n",
            r.at_ms as u64, topology.nodes[r.replica].name, r.object
        ));
    }
    out
}

/// CloudScope's object names: A..Z, AA, AB, ...
pub fn object_name(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII letters")
}

/// A normal draw, never below `floor`.
pub fn bounded_normal(rng: &mut DetRng, mean: f64, sd: f64, floor: f64) -> f64 {
    let v = match Normal::new(mean, sd) {
        Ok(n) if sd > 0.0 => n.sample(rng),
        _ => mean,
    };
    v.max(floor)
}

/// The locations of a topology in order of first appearance, with their
/// nodes.
pub fn locations(topology: &Topology) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, n) in topology.nodes.iter().enumerate() {
        let loc = n.location.clone().unwrap_or_else(|| "unknown".into());
        match out.iter_mut().find(|(l, _)| *l == loc) {
            Some((_, v)) => v.push(i),
            None => out.push((loc, vec![i])),
        }
    }
    out
}

/// Generates CloudScope's conflict workload for `s.users` users over
/// `s.max_sim_time` ms.
pub fn generate(topology: &Topology, s: &RunSettings, seed: u64) -> Vec<TraceRow> {
    let mut rng = stream(seed, "workload", 0);
    // Objects: each new one goes to the first user with room, and to each
    // other user with room with conflict_prob.
    let quota = s.max_objects_accessed;
    let mut objects: Vec<Vec<String>> = vec![Vec::new(); s.users];
    let mut next = 0;
    while objects.iter().any(|o| o.len() < quota) {
        let name = object_name(next);
        next += 1;
        let mut given = false;
        for o in objects.iter_mut().filter(|o| o.len() < quota) {
            if !given || rng.random::<f64>() < s.conflict_prob {
                o.push(name.clone());
                given = true;
            }
        }
    }
    // Devices: round-robin over locations, the last free device of each.
    let mut free = locations(topology);
    let mut devices = Vec::with_capacity(s.users);
    let mut l = 0;
    for _ in 0..s.users {
        if free.iter().all(|(_, d)| d.is_empty()) {
            free = locations(topology);
        }
        while free[l % free.len()].1.is_empty() {
            l += 1;
        }
        let at = l % free.len();
        devices.push(free[at].1.pop().expect("not empty"));
        l += 1;
    }
    let places = mobile_places(topology, s);
    let mut rows = Vec::new();
    for (u, (objs, mut device)) in objects.iter().zip(devices).enumerate() {
        let mut rng = stream(seed, "user", u as u64);
        let mut current = rng.random_range(0..objs.len());
        let mut t = 0.0;
        loop {
            t += bounded_normal(&mut rng, s.access_mean, s.access_stddev, 1.0);
            let at_ms = t.trunc();
            if at_ms > s.max_sim_time {
                break;
            }
            let write = rng.random::<f64>() >= s.read_prob;
            rows.push(TraceRow {
                at_ms,
                replica: device,
                object: objs[current].clone(),
                write,
            });
            if objs.len() > 1 && rng.random::<f64>() < s.object_prob {
                let other = rng.random_range(0..objs.len() - 1);
                current = if other >= current { other + 1 } else { other };
            }
            if s.mobile {
                device = roam(&mut rng, &places, device, s);
            }
        }
    }
    rows.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    rows
}

/// Where mobile users may go: locations not in `invalid_locations`, with
/// their devices whose type is not in `invalid_types` (CloudScope's).
fn mobile_places(topology: &Topology, s: &RunSettings) -> Vec<(String, Vec<usize>)> {
    let kind = |i: usize| topology.nodes[i].kind.as_deref().unwrap_or("storage");
    locations(topology)
        .into_iter()
        .filter(|(l, _)| !s.invalid_locations.contains(l))
        .map(|(l, d)| {
            let d = d
                .into_iter()
                .filter(|&i| !s.invalid_types.iter().any(|t| t == kind(i)))
                .collect::<Vec<_>>();
            (l, d)
        })
        .filter(|(_, d)| !d.is_empty())
        .collect()
}

/// One of `set` other than `not`, uniformly (`not` itself when alone).
fn other<T: Copy + PartialEq>(rng: &mut DetRng, set: &[T], not: T) -> T {
    let rest: Vec<T> = set.iter().copied().filter(|&x| x != not).collect();
    if rest.is_empty() {
        not
    } else {
        rest[rng.random_range(0..rest.len())]
    }
}

/// CloudScope's MobileWorkload after an access: with `move_prob` the user
/// moves to another location and a device there, else with `switch_prob`
/// to another device of its location.
fn roam(
    rng: &mut DetRng,
    places: &[(String, Vec<usize>)],
    device: usize,
    s: &RunSettings,
) -> usize {
    let here = places.iter().position(|(_, d)| d.contains(&device));
    if rng.random::<f64>() < s.move_prob {
        let all: Vec<usize> = (0..places.len()).collect();
        let to = match here {
            Some(h) => other(rng, &all, h),
            None if !all.is_empty() => all[rng.random_range(0..all.len())],
            None => return device,
        };
        return other(rng, &places[to].1, device);
    }
    match here {
        Some(h) if rng.random::<f64>() < s.switch_prob => other(rng, &places[h].1, device),
        _ => device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_object_names_follow_cloudscope() {
        assert_eq!(object_name(0), "A");
        assert_eq!(object_name(25), "Z");
        assert_eq!(object_name(26), "AA");
        assert_eq!(object_name(27), "AB");
        assert_eq!(object_name(26 + 26 * 26), "AAA");
    }

    fn topo() -> Topology {
        let mut nodes = String::new();
        for (i, (loc, kind)) in [
            ("home", "desktop"),
            ("home", "laptop"),
            ("work", "desktop"),
            ("work", "backup"),
            ("cloud", "storage"),
        ]
        .iter()
        .enumerate()
        {
            nodes.push_str(&format!(
                r#"{}{{"id": "r{i}", "consistency": "eventual", "location": "{loc}", "type": "{kind}"}}"#,
                if i > 0 { "," } else { "" }
            ));
        }
        Topology::parse(&format!(r#"{{"nodes": [{nodes}]}}"#)).unwrap()
    }

    #[test]
    fn simulated_mobile_users_move_and_switch_deterministically() {
        let t = topo();
        let base = RunSettings {
            max_sim_time: 600_000.0,
            ..RunSettings::default()
        };
        let fixed = generate(&t, &base, 7);
        let devices = |rows: &[TraceRow]| {
            let mut d: Vec<usize> = rows.iter().map(|r| r.replica).collect();
            d.sort_unstable();
            d.dedup();
            d
        };
        assert_eq!(devices(&fixed).len(), 1, "without mobile a user stays put");
        let mobile = RunSettings {
            mobile: true,
            ..base.clone()
        };
        let a = generate(&t, &mobile, 7);
        assert_eq!(a, generate(&t, &mobile, 7), "same seed, same trace");
        assert_ne!(a, generate(&t, &mobile, 8));
        // Only valid places: never the cloud, never a backup device.
        assert_eq!(devices(&a), vec![0, 1, 2]);
        // Moves happen at about move_prob, switches at about
        // (1 - move_prob) * switch_prob, of accesses.
        let changes = a
            .windows(2)
            .filter(|w| w[0].replica != w[1].replica)
            .count();
        let rate = changes as f64 / (a.len() - 1) as f64;
        assert!((0.25..0.6).contains(&rate), "{rate}");
        // Never moving nor switching: the same device throughout.
        let still = RunSettings {
            move_prob: 0.0,
            switch_prob: 0.0,
            ..mobile
        };
        assert_eq!(devices(&generate(&t, &still, 7)).len(), 1);
    }
}
