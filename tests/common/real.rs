//! Helpers for tests on real machines (local processes, Docker containers).

use std::path::Path;
use std::time::Duration;

use distzero::backends::cluster::{ClusterController, down, up};
use distzero::backends::state::ClusterState;
use distzero::controller::Fault;
use distzero::drivers::clocks::experiment::{ClocksParams, collect, deployment};
use distzero::drivers::clocks::report::check_invariants;
use distzero::node::{MachineId, Mode, NodeId};
use distzero::settings::Settings;

pub const DZ: &str = env!("CARGO_BIN_EXE_dz");

/// Settings from the environment, writing under `tmp`.
pub fn settings(tmp: &Path) -> Settings {
    let mut s = Settings::from_env().expect("settings");
    s.tmp_dir = tmp.to_path_buf();
    s.logstash = None;
    s.cluster_secret = None;
    s
}

pub fn block_local<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, f)
}

pub async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs `dz` with its state under `tmp` and no inherited cluster secret:
/// (exit code, stdout, stderr).
pub fn dz_run(tmp: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(DZ)
        .env("DZ_TMP_DIR", tmp)
        .env_remove("DZ_CLUSTER_SECRET")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`dz_run`] that must succeed; returns stdout.
pub fn dz_ok(tmp: &Path, args: &[&str]) -> String {
    let (code, out, err) = dz_run(tmp, args);
    assert_eq!(code, Some(0), "{args:?}: {out}{err}");
    out
}

/// Messages delivered to each node so far.
pub async fn delivered(ctl: &mut ClusterController) -> Vec<u64> {
    let stats = ctl.stats().await.expect("stats");
    stats
        .nodes
        .iter()
        .map(|n| n.kinds.values().map(|c| c.delivered).sum())
        .collect()
}

pub async fn clock_of(ctl: &mut ClusterController, node: u32) -> u64 {
    let s = ctl.query(NodeId(node), "summary").await.expect("summary");
    s["clock"].as_u64().unwrap()
}

/// The scenario every real mode must pass: a 3-machine clocks cluster runs
/// and keeps Lamport's rules; one machine is isolated and healed, one is
/// killed and restarted; the cluster recovers each time. Returns the
/// cluster's record (for after-the-fact checks).
pub async fn clocks_scenario(settings: &Settings, mode: Mode, name: &str) -> ClusterState {
    let mut params = ClocksParams::new(vec![8.0, 8.0, 8.0]);
    // Mostly sends, so that every pair talks within a few ticks.
    params.internal_prob = 0.1;
    let (machines, nodes) = deployment(&params).unwrap();
    let (mut ctl, state) = up(settings, name, mode, &machines, nodes, Path::new(DZ))
        .await
        .expect("cluster up");
    let result = scenario_steps(&mut ctl, &params).await;
    let stopped = down(&mut ctl, &state, &settings.tmp_dir).await;
    result.unwrap_or_else(|e| panic!("{mode} scenario: {e}"));
    stopped.expect("cluster down");
    state
}

/// Polls the delivered counts until `ok` holds, for up to 10 s: real
/// machines on a loaded host are slow, not wrong.
async fn wait_for(
    ctl: &mut ClusterController,
    what: &str,
    ok: impl Fn(&[u64]) -> bool,
) -> Result<Vec<u64>, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = delivered(ctl).await;
        if ok(&d) {
            return Ok(d);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{what} (10 s): {d:?}"));
        }
        sleep_ms(100).await;
    }
}

async fn scenario_steps(ctl: &mut ClusterController, params: &ClocksParams) -> Result<(), String> {
    wait_for(ctl, "some node received nothing", |d| !d.contains(&0)).await?;

    // Isolation: m1 hears nothing while the others keep talking.
    ctl.inject(&Fault::Isolate {
        machine: MachineId(1),
    })
    .await
    .map_err(|e| e.to_string())?;
    sleep_ms(300).await;
    let a = delivered(ctl).await;
    sleep_ms(1200).await;
    let b = wait_for(
        ctl,
        "m0 and m2 stopped talking during m1's isolation",
        |d| d[0] > a[0] && d[2] > a[2],
    )
    .await?;
    if b[1] != a[1] {
        return Err(format!("isolated m1 still got messages: {a:?} -> {b:?}"));
    }
    ctl.inject(&Fault::Heal {
        machine: Some(MachineId(1)),
    })
    .await
    .map_err(|e| e.to_string())?;
    wait_for(ctl, "healed m1 gets nothing", |d| d[1] > b[1]).await?;

    // Kill and restart: the node comes back and its clock goes on.
    let before = clock_of(ctl, 2).await;
    ctl.inject(&Fault::Crash {
        machine: MachineId(2),
    })
    .await
    .map_err(|e| e.to_string())?;
    sleep_ms(500).await;
    if ctl.query(NodeId(2), "summary").await.is_ok() {
        return Err("a killed machine still answers".into());
    }
    ctl.inject(&Fault::Restart {
        machine: MachineId(2),
    })
    .await
    .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut after = 0;
    while after <= before && std::time::Instant::now() < deadline {
        sleep_ms(200).await;
        // Not answering yet is fine while it restarts.
        let summary = ctl.query(NodeId(2), "summary").await.ok();
        after = summary.and_then(|s| s["clock"].as_u64()).unwrap_or(0);
    }
    if after <= before {
        return Err(format!(
            "m2's clock did not go on after restart: {before} -> {after}"
        ));
    }
    wait_for(ctl, "restarted m2 receives nothing", |d| d[2] > 0).await?;
    // A restarted node's log starts again: give it time to log some events.
    sleep_ms(1500).await;

    // Lamport's rules on every machine's real log.
    for m in collect(ctl, params).await.map_err(|e| e.to_string())? {
        let bad = check_invariants(&m.name, &m.rows);
        if !bad.is_empty() {
            return Err(format!("{bad:?}"));
        }
        if m.rows.len() < 10 {
            return Err(format!("{} logged only {} events", m.name, m.rows.len()));
        }
    }
    Ok(())
}

#[cfg(feature = "virtual")]
/// Whether a Docker engine answers. Without one the caller skips, loudly,
/// unless DZ_REQUIRE_DOCKER=1, which turns the absence into a failure.
pub fn docker_available() -> bool {
    let require = Settings::from_env()
        .map(|s| s.require_docker)
        .unwrap_or(false);
    match block_local(distzero::backends::image::connect()) {
        Ok(_) => true,
        Err(e) if require => panic!("DZ_REQUIRE_DOCKER=1 but Docker is not reachable: {e}"),
        Err(e) => {
            eprintln!(
                "SKIPPED: this virtual-mode test needs a Docker engine ({e}); set DZ_REQUIRE_DOCKER=1 to fail instead"
            );
            false
        }
    }
}

/// Removes a cluster's containers and network when dropped, also when the
/// test failed half-way.
#[cfg(feature = "virtual")]
pub struct DockerCleanup(pub String);

#[cfg(feature = "virtual")]
impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = block_local(async move {
            let docker = distzero::backends::image::connect().await?;
            distzero::backends::docker::remove_labelled(&docker, Some(&name)).await
        });
    }
}

/// What of a cluster the Docker API still shows.
#[cfg(feature = "virtual")]
pub fn docker_leftovers(cluster: &str) -> distzero::backends::docker::Removed {
    block_local(async {
        let docker = distzero::backends::image::connect().await.unwrap();
        distzero::backends::docker::labelled(&docker, Some(cluster))
            .await
            .unwrap()
    })
}

#[cfg(feature = "virtual")]
/// Asserts that no container or network of the cluster remains.
pub fn assert_nothing_left(cluster: &str) {
    let left = docker_leftovers(cluster);
    assert!(
        left.containers.is_empty() && left.networks.is_empty(),
        "left behind: {left:?}"
    );
}

/// Whether process `pid` runs (a zombie does not).
pub fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}
