//! Cheops on local processes, through each site's HTTP API as a user of
//! the original would reach it: the original's three-site scenarios
//! (partitioned by taking the links down, then healed) converge to what
//! the rules give with the kv backend, the failure variant too, and the
//! file scenario with the shell backend ends with identical files; bad
//! requests get 400 and the server keeps serving; the CLI exits 2 on bad
//! input.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::real::{block_local, dz_ok, dz_run};
use distzero::backends::state::ClusterState;
use distzero::drivers::cheops::cluster::api_urls;
use distzero::drivers::cheops::http::{Part, request};
use serde_json::Value;

const MATRIX: &str = r#"{"ResolutionMatrix":[
  {"Before":"set","After":"set","Result":"take-one"},
  {"Before":"set","After":"inc","Result":"take-both-keep-order"},
  {"Before":"inc","After":"set","Result":"take-both-reverse-order"}]}"#;

const FILE_MATRIX: &str = r#"{"ResolutionMatrix":[
  {"Before":"set","After":"set","Result":"take-one"},
  {"Before":"set","After":"add","Result":"take-both-keep-order"},
  {"Before":"add","After":"set","Result":"take-both-reverse-order"}]}"#;

/// A running cluster, taken down however the test ends.
struct Cluster<'a> {
    tmp: &'a Path,
    name: String,
    /// Site name to API base URL.
    urls: Vec<(String, String)>,
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        let _ = dz_run(self.tmp, &["cluster", "down", &self.name]);
    }
}

impl<'a> Cluster<'a> {
    fn up(tmp: &'a Path, name: &str, extra: &[&str]) -> Cluster<'a> {
        Cluster::up_in("local", tmp, name, extra)
    }

    fn up_in(mode: &str, tmp: &'a Path, name: &str, extra: &[&str]) -> Cluster<'a> {
        let mut args = vec![
            "cluster",
            "up",
            "--mode",
            mode,
            "--machines",
            "3",
            "--system",
            "cheops",
            "--name",
            name,
            // TIMEOUT for a cut-off site after 1.5 s instead of 20 s.
            "--config",
            r#"{"reply_timeout_ms": 1500}"#,
        ];
        args.extend_from_slice(extra);
        let out = dz_ok(tmp, &args);
        let state = ClusterState::load(tmp, name).unwrap();
        let urls = api_urls(&state);
        assert_eq!(urls.len(), 3, "{urls:?}");
        for (site, url) in &urls {
            assert!(
                out.contains(&format!("cheops site {site}: API {url}")),
                "{out}"
            );
        }
        Cluster {
            tmp,
            name: name.to_string(),
            urls,
        }
    }

    fn url(&self, i: usize) -> &str {
        &self.urls[i].1
    }

    /// Takes every link between the three machines down, or up.
    fn links(&self, verb: &str) {
        for (a, b) in [("m0", "m1"), ("m0", "m2"), ("m1", "m2")] {
            dz_ok(self.tmp, &["cluster", "fault", &self.name, verb, a, b]);
        }
    }
}

/// POSTs a multipart form; (status, body lines).
async fn post(url: &str, path: &str, fields: &[(&str, &str)]) -> (u16, Vec<String>) {
    let parts: Vec<Part> = fields.iter().map(|(k, v)| Part::text(k, v)).collect();
    let mut r = request(url, "POST", path, Some(&parts)).await.unwrap();
    let mut lines = Vec::new();
    while let Some(l) = r.line().await.unwrap() {
        lines.push(l);
    }
    (r.status, lines)
}

/// An exec's replies by site: (site, status, output).
async fn exec(
    url: &str,
    id: &str,
    kind: &str,
    command: &str,
    config: &str,
) -> Vec<(String, String, String)> {
    let fields = [
        ("sites", "n0&n1&n2"),
        ("command", command),
        ("type", kind),
        ("config", config),
    ];
    let (status, lines) = post(url, &format!("/exec/{id}"), &fields).await;
    assert_eq!(status, 200, "{lines:?}");
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("Site"), s("Status"), s("Output"))
        })
        .collect()
}

/// `/show` of a command: output by site.
async fn show(url: &str, id: &str, command: &str) -> Vec<(String, String)> {
    let fields = [("sites", "n0&n1&n2"), ("command", command)];
    let (status, lines) = post(url, &format!("/show/{id}"), &fields).await;
    assert_eq!(status, 200, "{lines:?}");
    let v: Value = serde_json::from_str(&lines.join("\n")).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(s, r)| {
            assert_eq!(r["Status"], "OK", "{v}");
            (s.clone(), r["Output"].as_str().unwrap().to_string())
        })
        .collect()
}

async fn resource(url: &str, id: &str) -> (u16, Value) {
    let mut r = request(url, "GET", &format!("/resource/{id}"), None)
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    (r.status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until every site holds the same block with a reply from every
/// site for each operation, then returns that block (request ids) and
/// each site's document.
async fn converged(c: &Cluster<'_>, id: &str) -> (Vec<String>, Vec<Value>) {
    let started = Instant::now();
    loop {
        let mut docs = Vec::new();
        for i in 0..3 {
            docs.push(resource(c.url(i), id).await.1);
        }
        let block = |d: &Value| -> Vec<String> {
            d["Operations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o["RequestId"].as_str().unwrap().to_string())
                .collect()
        };
        let first = block(&docs[0]);
        let replied = |d: &Value| {
            first.iter().all(|r| {
                ["n0", "n1", "n2"].iter().all(|s| {
                    d["Replies"][s]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["RequestId"] == r.as_str()))
                })
            })
        };
        if !first.is_empty() && docs.iter().all(|d| block(d) == first && replied(d)) {
            return (first, docs);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{id} did not converge: {docs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The reply of `site` in an exec's replies.
fn status_of(replies: &[(String, String, String)], site: &str) -> String {
    replies
        .iter()
        .find(|r| r.0 == site)
        .map(|r| r.1.clone())
        .unwrap_or_else(|| panic!("no reply from {site}: {replies:?}"))
}

/// The original's test_redis: `SET 23` everywhere, then, cut apart,
/// `SET 29` at n0 and two increments (or in the failure variant, one that
/// fails) at n1 and n2; healed. Returns the value every site converged on.
async fn redis_scenario(c: &Cluster<'_>, id: &str, failure: bool) -> String {
    let first = exec(c.url(0), id, "set", &format!("SET {id} 23"), MATRIX).await;
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.iter().all(|r| r.1 == "OK"), "{first:?}");
    c.links("link-down");
    let (second, third) = if failure {
        (format!("INCRBY {id} 12"), format!("SADD {id} error"))
    } else {
        (format!("INCRBY {id} 13"), format!("INCRBY {id} -12"))
    };
    let ops = [
        (0, "set", format!("SET {id} 29")),
        (1, "inc", second),
        (2, "inc", third.clone()),
    ];
    for (i, kind, command) in &ops {
        let replies = exec(c.url(*i), id, kind, command, "").await;
        let me = format!("n{i}");
        // Its own site answers; the two cut-off sites time out.
        let expect = if failure && *i == 2 { "KO" } else { "OK" };
        assert_eq!(status_of(&replies, &me), expect, "{replies:?}");
        for other in ["n0", "n1", "n2"].iter().filter(|s| **s != me) {
            assert_eq!(status_of(&replies, other), "TIMEOUT", "{replies:?}");
        }
    }
    c.links("link-up");
    let (block, docs) = converged(c, id).await;
    assert_eq!(block.len(), 3, "{docs:#?}");
    if failure {
        // The failing command is KO at every site, the others OK.
        for d in &docs {
            for (site, replies) in d["Replies"].as_object().unwrap() {
                for r in replies.as_array().unwrap() {
                    let want = if r["Input"] == third.as_str() {
                        "KO"
                    } else {
                        "OK"
                    };
                    assert_eq!(r["Status"], want, "{site}: {r}");
                }
            }
        }
    }
    let values = show(c.url(1), id, &format!("GET {id}")).await;
    assert_eq!(values.len(), 3);
    assert!(values.iter().all(|v| v.1 == values[0].1), "{values:?}");
    values[0].1.clone()
}

#[test]
fn local_cheops_three_sites_converge_after_a_partition_kv() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::up(tmp.path(), "ckv", &[]);
    block_local(async {
        // SET 29 replaced SET 23 (take-one); the increments follow it
        // (set→inc keep order, inc→set reverse order): 29 + 13 - 12.
        assert_eq!(redis_scenario(&c, "counter", false).await, "30");
    });
    // `cluster status` names each site's API.
    let out = dz_ok(tmp.path(), &["cluster", "status", "ckv"]);
    for (site, url) in &c.urls {
        assert!(
            out.contains(&format!("cheops site {site}: API {url}")),
            "{out}"
        );
    }
    // The CLI sees the same: one block at every site.
    let out = dz_ok(
        tmp.path(),
        &["cheops", "status", "--cluster", "ckv", "--id", "counter"],
    );
    assert!(out.contains("3 sites hold the same block"), "{out}");
}

#[test]
fn local_cheops_failure_variant_converges_kv() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::up(tmp.path(), "cfail", &[]);
    block_local(async {
        // SADD fails everywhere and changes nothing: 29 + 12.
        assert_eq!(redis_scenario(&c, "counter", true).await, "41");
    });
}

/// What a block of `echo x > f` / `echo x >> f` commands leaves in `f`.
fn file_of(commands: &[String]) -> String {
    let mut f = String::new();
    for c in commands {
        let (word, append) = match c.split_once(" >> ") {
            Some((w, _)) => (w, true),
            None => (c.split_once(" > ").unwrap().0, false),
        };
        if !append {
            f.clear();
        }
        f.push_str(word.trim_start_matches("echo "));
        f.push('\n');
    }
    f
}

#[test]
fn local_cheops_shell_file_scenario_ends_with_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::up(tmp.path(), "cshell", &["--allow-shell"]);
    let commands = shell_file_scenario(&c);
    // Each site ran in its own directory: three files, not one shared.
    let dirs = tmp.path().join("cshell/cheops");
    for site in ["n0", "n1", "n2"] {
        let f = dirs.join(site).join(hex::encode("file")).join("f");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), file_of(&commands));
    }
}

/// The same in Docker containers: each runs the command with the image's
/// shell (a static busybox), the API on port 8079 of each container.
#[cfg(feature = "virtual")]
#[test]
fn virtual_cheops_shell_file_scenario_ends_with_identical_files() {
    if !common::real::docker_available() {
        return;
    }
    let name = "cheops-virtual";
    let _cleanup = common::real::DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::up_in("virtual", tmp.path(), name, &["--allow-shell"]);
    assert!(
        c.urls.iter().all(|(_, u)| u.ends_with(":8079")),
        "{:?}",
        c.urls
    );
    shell_file_scenario(&c);
    drop(c);
    common::real::assert_nothing_left(name);
}

/// `echo init > f` everywhere; cut apart, three concurrent commands; healed,
/// every site holds the block and the file it gives. The block's commands.
fn shell_file_scenario(c: &Cluster<'_>) -> Vec<String> {
    block_local(async {
        let first = exec(c.url(0), "file", "set", "echo init > f", FILE_MATRIX).await;
        assert!(first.iter().all(|r| r.1 == "OK"), "{first:?}");
        c.links("link-down");
        for (i, kind, command) in [
            (0, "add", "echo left >> f"),
            (1, "set", "echo middle > f"),
            (2, "add", "echo right >> f"),
        ] {
            let replies = exec(c.url(i), "file", kind, command, "").await;
            assert_eq!(status_of(&replies, &format!("n{i}")), "OK", "{replies:?}");
        }
        c.links("link-up");
        let (_, docs) = converged(c, "file").await;
        let commands: Vec<String> = docs[0]["Operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["Command"]["Command"].as_str().unwrap().to_string())
            .collect();
        // `echo middle > f` superseded `echo init > f`; both appends follow.
        assert_eq!(commands.len(), 3, "{commands:?}");
        assert_eq!(commands[0], "echo middle > f", "{commands:?}");
        let files = show(c.url(0), "file", "cat f").await;
        assert_eq!(files.len(), 3);
        for (site, content) in &files {
            assert_eq!(content, &file_of(&commands), "{site}");
        }
        commands
    })
}

#[test]
fn local_cheops_bad_requests_get_400_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cluster::up(tmp.path(), "cbad", &[]);
    let url = c.url(0).to_string();
    block_local(async {
        let ok = [
            ("sites", "n0&n1&n2"),
            ("command", "SET k 1"),
            ("type", "set"),
        ];
        // The good request with field `k` replaced by `v` (dropped if empty).
        let with = |k: &'static str, v: &'static str| -> Vec<(&'static str, &'static str)> {
            let mut f: Vec<(&str, &str)> = ok.iter().filter(|f| f.0 != k).copied().collect();
            if !v.is_empty() {
                f.push((k, v));
            }
            f
        };
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (with("type", ""), "missing type"),
            (with("sites", ""), "empty site list"),
            (with("sites", "n1&n2"), "Site is not in locations"),
            (with("sites", "n0&zz"), "unknown site \"zz\""),
            (
                with("config", "{\"ResolutionMatrix\": 3"),
                "malformed config",
            ),
            (with("command", ""), "missing command"),
            (with("backend", "shell"), "--allow-shell"),
        ];
        for (fields, why) in cases {
            let (status, lines) = post(&url, "/exec/k", &fields).await;
            assert_eq!(status, 400, "{fields:?}: {lines:?}");
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(lines[0].contains(why), "{fields:?}: {lines:?}");
        }
        let (status, lines) = post(&url, "/show/k", &[("command", "GET k")]).await;
        assert_eq!((status, lines.len()), (400, 1), "{lines:?}");
        assert_eq!(resource(&url, "nothing").await.0, 404);
        // Still serving: a good request is taken and answered by all.
        let replies = exec(&url, "k", "set", "SET k 1", "").await;
        assert_eq!(replies.len(), 3, "{replies:?}");
        assert!(replies.iter().all(|r| r.1 == "OK"), "{replies:?}");
        assert_eq!(resource(&url, "k").await.0, 200);
    });
    // The CLI: bad input is one line on stderr and exit 2.
    let dz = |args: &[&str]| dz_run(tmp.path(), args);
    let base = ["cheops", "exec", "--cluster", "cbad", "--id", "k"];
    for (extra, why) in [
        (
            &["--sites", "n0", "--command", "SET k 2"][..],
            "required arguments",
        ),
        (
            &[
                "--sites",
                "n1&n2",
                "--command",
                "SET k 2",
                "--type",
                "set",
                "--via",
                "n0",
            ],
            "Site is not in locations",
        ),
        (
            &[
                "--sites",
                "n0",
                "--command",
                "cat {missing.txt}",
                "--type",
                "set",
            ],
            "missing.txt",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (code, _, err) = dz(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(why), "{err}");
    }
    let out = dz_ok(
        tmp.path(),
        &[
            "cheops",
            "exec",
            "--cluster",
            "cbad",
            "--id",
            "k",
            "--sites",
            "n0&n1&n2",
            "--command",
            "INCRBY k 4",
            "--type",
            "inc",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (i, l) in lines.iter().enumerate() {
        assert!(l.starts_with(&format!("[{}/3] OK ", i + 1)), "{out}");
        assert!(l.ends_with("\t5"), "{out}");
    }
    // The live feed: the resource now, then again once an operation lands.
    block_local(async {
        let mut feed = request(&url, "GET", "/changes/k", None).await.unwrap();
        assert_eq!(feed.status, 200);
        let ops = |line: &str| {
            let v: Value = serde_json::from_str(line).unwrap();
            v["Operations"].as_array().unwrap().len()
        };
        assert_eq!(ops(&feed.line().await.unwrap().unwrap()), 2);
        exec(&url, "k", "inc", "INCRBY k 1", "").await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), feed.line())
                .await
                .expect("a change within 10 s")
                .unwrap()
                .unwrap();
            if ops(&line) == 3 {
                break;
            }
        }
    });
}
