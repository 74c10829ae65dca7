//! `dz view` in headless Chromium (Debian's `chromium` and
//! `chromium-driver`) through WebDriver: a kv run is drawn, the slider
//! changes what is shown, a node's panel opens, a "what if" crash makes a
//! branch, a clicked message is dropped in another, the logs filter, and a
//! clocks run shows its skewed machine and a Lamport clock's picture. Screenshots of each step go to
//! `$CARGO_TARGET_TMPDIR/browser_view/`. Without Chromium the test skips
//! loudly, unless DZ_REQUIRE_BROWSER=1.

mod view_support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use view_support::{Server, kv_run, simulate};

fn find(cmds: &[&str]) -> Option<String> {
    cmds.iter()
        .map(|c| format!("/usr/bin/{c}"))
        .find(|p| Path::new(p).exists())
}

/// chromedriver in a process group of its own, so that a failed test
/// takes the browser it started down with it.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Evaluates `expr` in the page until it is truthy (10 s at most).
async fn until(c: &Client, what: &str, expr: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap();
        let truthy =
            !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
        if truthy {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({expr})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(c: &Client, body: &str) -> Value {
    c.execute(body, vec![]).await.unwrap()
}

async fn shot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

async fn seek(c: &Client, t: f64) {
    js(c, &format!("const s=document.getElementById('time'); s.value={t}; s.dispatchEvent(new Event('input'));")).await;
    until(
        c,
        "the frame",
        &format!("Math.abs(document.getElementById('ring').dataset.t - {t}) < 1e-9"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_view_kv_run() {
    let required = std::env::var("DZ_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let (Some(driver_bin), Some(chrome)) = (
        find(&["chromedriver"]),
        find(&["chromium", "chromium-browser"]),
    ) else {
        assert!(
            !required,
            "DZ_REQUIRE_BROWSER=1 but chromium / chromedriver are not installed"
        );
        eprintln!(
            "SKIPPED browser_view_kv_run: install chromium and chromium-driver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shots: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser_view");
    std::fs::create_dir_all(&shots).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = kv_run(dir.path());
    let server = Server::start(&run, &dir.path().join("tmp"));

    let port = free_port();
    let _driver = Driver(
        Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chrome, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
    );
    let mut c = None;
    for _ in 0..50 {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => {
                c = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let c = c.expect("chromedriver did not start a session");
    c.goto(&format!("{}/", server.url)).await.unwrap();

    // Machines are drawn, with messages in flight between them.
    until(
        &c,
        "six machines",
        "document.querySelectorAll('#ring g.machine').length === 6",
    )
    .await;
    seek(&c, 0.5).await;
    until(
        &c,
        "messages in flight",
        "document.querySelectorAll('#ring circle.msg').length > 0",
    )
    .await;
    let kinds = js(
        &c,
        "return [...document.querySelectorAll('#ring circle.msg')].map(m => m.dataset.kind);",
    )
    .await;
    assert!(!kinds.as_array().unwrap().is_empty());
    shot(&c, &shots, "1-machines-and-messages.png").await;

    // The slider changes what is shown: s1 is down between 1 s and 2 s, and
    // (once the re-run has sampled them) the node states move on.
    until(&c, "states", "document.getElementById('status').textContent.includes('same trace hash') || document.querySelector('#ring g.machine[data-node=\"1\"] text.state').textContent").await;
    server.wait_states(0);
    seek(&c, 0.3).await;
    let state_early = until(
        &c,
        "s2's state",
        "document.querySelector('#ring g.machine[data-node=\"1\"] text.state').textContent",
    )
    .await;
    seek(&c, 1.5).await;
    assert_eq!(js(&c, "return document.querySelector('#ring g.machine[data-node=\"0\"]').classList.contains('down');").await, true);
    shot(&c, &shots, "2-s1-crashed.png").await;
    seek(&c, 2.9).await;
    let state_late = until(
        &c,
        "s2's state",
        "document.querySelector('#ring g.machine[data-node=\"1\"] text.state').textContent",
    )
    .await;
    assert_ne!(
        state_early, state_late,
        "s2's state did not change from 0.3 s to 2.9 s"
    );
    assert_eq!(js(&c, "return document.querySelector('#ring g.machine[data-node=\"0\"]').classList.contains('down');").await, false);

    // Clicking a node opens its panel.
    c.find(Locator::Css("#ring g.machine[data-node='1'] circle.body"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let title = until(&c, "node panel", "document.getElementById('node-title') && document.getElementById('node-title').textContent").await;
    assert!(title.as_str().unwrap().contains("s2"), "{title}");
    let state = until(
        &c,
        "node state",
        "document.getElementById('node-state').textContent",
    )
    .await;
    assert!(state.as_str().unwrap().contains("view"), "{state}");
    let counters = js(
        &c,
        "return document.getElementById('node-counters').textContent;",
    )
    .await;
    assert!(counters.as_str().unwrap().contains("sent"), "{counters}");
    shot(&c, &shots, "3-node-panel.png").await;

    // What if s3 crashed at 1.5 s: a branch appears, the original is kept.
    seek(&c, 1.5).await;
    c.find(Locator::Css("#fault-kind"))
        .await
        .unwrap()
        .select_by_value("crash")
        .await
        .unwrap();
    c.find(Locator::Css("#fault-machine"))
        .await
        .unwrap()
        .select_by_value("2")
        .await
        .unwrap();
    c.find(Locator::Id("fork-btn"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&c, "the branch", "document.querySelectorAll('#runs option').length === 2 && document.getElementById('fork-status').textContent.includes('branch 1')").await;
    seek(&c, 2.0).await;
    assert_eq!(js(&c, "return document.querySelector('#ring g.machine[data-node=\"2\"]').classList.contains('down');").await, true);
    let runs = js(&c, "return document.getElementById('runs').textContent;").await;
    assert!(runs.as_str().unwrap().contains("crash s3"), "{runs}");
    shot(&c, &shots, "4-what-if-branch.png").await;

    // Click a message in flight: its panel offers "drop this message", and
    // the branch it makes has that message dropped.
    let i = until(
        &c,
        "a delivered message in flight",
        "(view.stage.inflight || []).filter(m => m.ev === 'send' && m.pair_ev === 'deliver' && document.querySelector(`#ring circle.msg[data-i=\"${m.i}\"]`)).map(m => m.i)[0]",
    )
    .await;
    js(&c, &format!("document.querySelector('#ring circle.msg[data-i=\"{i}\"]').dispatchEvent(new MouseEvent('click', {{bubbles: true}}));")).await;
    until(
        &c,
        "the message panel",
        "document.getElementById('drop-btn')",
    )
    .await;
    c.find(Locator::Id("drop-btn"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&c, "the drop branch", "document.querySelectorAll('#runs option').length === 3 && document.getElementById('fork-status').textContent.includes('branch 2')").await;
    let fate = until(
        &c,
        "the dropped message's panel",
        "document.getElementById('msg-drop') && document.getElementById('msg-drop').textContent",
    )
    .await;
    assert!(fate.as_str().unwrap().contains("chosen"), "{fate}");
    let contents = until(
        &c,
        "the message's contents",
        "document.getElementById('msg-contents') && document.getElementById('msg-contents').textContent",
    )
    .await;
    let m = server.get_json(&format!("/api/message?run=2&i={i}"));
    assert_eq!(m["pair_ev"], "drop", "{m}");
    assert!(
        contents
            .as_str()
            .unwrap()
            .starts_with(m["kind"].as_str().unwrap()),
        "{contents} vs {m}"
    );
    shot(&c, &shots, "6-drop-message.png").await;

    // Back on the original run, the logs filter by machine and text; a
    // line moves the slider.
    c.find(Locator::Css("#runs"))
        .await
        .unwrap()
        .select_by_value("0")
        .await
        .unwrap();
    until(&c, "run 0", "document.querySelector('#ring g.machine[data-node=\"2\"]') && !document.querySelector('#ring g.machine[data-node=\"2\"]').classList.contains('down')").await;
    js(&c, "document.getElementById('log-follow').checked = false;").await;
    c.find(Locator::Css("#log-machine"))
        .await
        .unwrap()
        .select_by_value("controller")
        .await
        .unwrap();
    c.find(Locator::Id("log-q"))
        .await
        .unwrap()
        .send_keys("started")
        .await
        .unwrap();
    until(&c, "filtered logs", "[...document.querySelectorAll('#logs tr.logline')].length > 0 && [...document.querySelectorAll('#logs tr.logline')].every(r => r.dataset.machine === 'controller' && r.textContent.includes('started'))").await;
    c.find(Locator::Css("#logs tr.logline"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the slider at the line",
        "parseFloat(document.getElementById('time').value) < 0.001",
    )
    .await;
    shot(&c, &shots, "5-logs.png").await;

    // Space plays: time moves on.
    seek(&c, 0.1).await;
    js(&c, "document.getElementById('time').blur(); document.dispatchEvent(new KeyboardEvent('keydown', {code: 'Space', key: ' ', bubbles: true}));").await;
    until(
        &c,
        "playing",
        "parseFloat(document.getElementById('time').value) > 0.1",
    )
    .await;

    // A clocks run: the skewed machine shows how far off its clock is, and
    // a machine's panel draws its Lamport clock and queue.
    let clocks = simulate(
        dir.path(),
        "clocks-skewed.json",
        "clocks",
        &["--duration", "2s"],
    );
    let server2 = Server::start(&clocks, &dir.path().join("tmp"));
    server2.wait_states(0);
    c.goto(&format!("{}/", server2.url)).await.unwrap();
    until(
        &c,
        "four machines",
        "document.querySelectorAll('#ring g.machine').length === 4",
    )
    .await;
    seek(&c, 1.0).await;
    let skew = until(
        &c,
        "the skew badge",
        "document.querySelector('#ring g.machine[data-node=\"2\"] text.skew') && document.querySelector('#ring g.machine[data-node=\"2\"] text.skew').textContent",
    )
    .await;
    // 250 ms offset plus 5000 ppm over 1 s.
    assert_eq!(skew, "clock +255.0 ms");
    assert_eq!(
        js(
            &c,
            "return document.querySelectorAll('#ring text.skew').length;"
        )
        .await,
        1
    );
    until(&c, "states", "view.meta && view.meta.states_ready").await;
    c.find(Locator::Css("#ring g.machine[data-node='2'] circle.body"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let lamport = until(
        &c,
        "the clock picture",
        "document.querySelector('#node-picture .lamport') && document.querySelector('#node-picture .lamport').textContent",
    )
    .await;
    assert!(
        lamport.as_str().unwrap().parse::<u64>().unwrap() > 0,
        "{lamport}"
    );
    shot(&c, &shots, "7-skewed-clock.png").await;

    // The other pictures, from states shaped as those systems' `status`:
    // a datasets tree of a root and two leaves, and a replica with one
    // version not yet visible.
    let tree = js(
        &c,
        "const t = picture('datasets', [{height: 1, parent: null, kids: [1, 2], total: 3}, \
         {height: 0, parent: 0, kids: [], total: 1}, {height: 0, parent: 0, kids: [], total: 2}], 1); \
         return [(t.match(/class=\"tnode/g) || []).length, (t.match(/<line/g) || []).length, t.includes('2 leaves')];",
    )
    .await;
    assert_eq!(tree, json!([3, 2, true]));
    let hidden = js(
        &c,
        "return (picture('consistency', [{objects: [{object: 0, held: '2.1', visible: '1.1'}, \
         {object: 1, held: '1.0', visible: '1.0'}]}], 0).match(/hidden-version/g) || []).length;",
    )
    .await;
    assert_eq!(hidden, json!(1));

    // `dz view --at 1.5` prints a URL that opens the page at 1.5 s.
    c.goto(&format!("{}/?at#t=1.5", server2.url)).await.unwrap();
    until(
        &c,
        "the page opened at 1.5 s",
        "view.meta && Math.abs(view.now - 1.5) < 1e-9 && parseFloat(document.querySelector('#time').value) === 1.5",
    )
    .await;

    c.close().await.unwrap();
    eprintln!("screenshots in {}", shots.display());
}
