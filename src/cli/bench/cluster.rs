//! `dz bench cluster`: how fast a virtual cluster comes up (every agent
//! answering) and goes away, against the same containers started one by one
//! with `docker run` and removed with `docker rm -f`, in the same run.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::backends::agent_plane::READY_TIMEOUT;
use crate::backends::cluster::{down, new_name, up};
use crate::cli::cluster::binary;
use crate::cli::runtime::block_local;
use crate::controller::{MachineSpec, Placement, one_node_per_machine};
use crate::error::{Error, Result};
use crate::node::Mode;
use crate::runtime::auth;
use crate::runtime::client::AgentClient;
use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    /// Cluster sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "5,20")]
    machines: Vec<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Row {
    machines: u32,
    dz_ready_s: f64,
    dz_down_s: f64,
    docker_run_ready_s: f64,
    docker_rm_s: f64,
}

fn clocks_placement(n: u32) -> (Vec<MachineSpec>, Placement) {
    one_node_per_machine(n, "clocks", "machine", &serde_json::Value::Null)
}

fn docker_cli(args: &[&str]) -> Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| Error::runtime(format!("cannot run the docker CLI: {e}")))?;
    if !out.status.success() {
        return Err(Error::runtime(format!(
            "docker {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The baseline: `docker run` one container after the other, then wait
/// for each agent to answer; `docker rm -f` one after the other.
async fn baseline(n: u32, image: &str) -> Result<(f64, f64)> {
    let secret = auth::new_secret();
    let name = format!("dzb-{}", &auth::new_secret()[..6]);
    let prefix = format!(
        "10.199.{}",
        rand::RngExt::random_range(&mut rand::rng(), 0..=255u8)
    );
    docker_cli(&[
        "network",
        "create",
        "--subnet",
        &format!("{prefix}.0/24"),
        "--label",
        "distzero=1",
        "--label",
        &format!("distzero.cluster={name}"),
        &name,
    ])?;
    let start = Instant::now();
    let mut addresses = Vec::new();
    for i in 0..n {
        let ip = format!("{prefix}.{}", 10 + i);
        let container = format!("{name}-m{i}");
        docker_cli(&[
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &name,
            "--ip",
            &ip,
            "-e",
            &format!("DZ_CLUSTER_SECRET={secret}"),
            "--label",
            "distzero=1",
            "--label",
            &format!("distzero.cluster={name}"),
            image,
            "--name",
            &format!("m{i}"),
            "--control",
            "0.0.0.0:7700",
            "--data",
            "0.0.0.0:7701",
            "--dir",
            "/data",
            "--mode",
            "virtual",
        ])?;
        addresses.push(format!("{ip}:7700"));
    }
    for a in &addresses {
        AgentClient::connect_retrying(a, &secret, READY_TIMEOUT).await?;
    }
    let ready = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..n {
        docker_cli(&["rm", "-f", &format!("{name}-m{i}")])?;
    }
    let removed = start.elapsed().as_secs_f64();
    docker_cli(&["network", "rm", &name])?;
    Ok((ready, removed))
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let binary = binary()?;
    let rows = block_local(async {
        let docker = crate::backends::image::connect().await?;
        let (image, _) = crate::backends::image::ensure_image(&docker, &binary, false).await?;
        let mut rows = Vec::new();
        for &n in &a.machines {
            let (machines, placement) = clocks_placement(n);
            let name = format!("bench-{}", new_name());
            let start = Instant::now();
            let (mut ctl, state) = up(
                settings,
                &name,
                Mode::Virtual,
                &machines,
                placement,
                &binary,
            )
            .await?;
            let dz_ready_s = start.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let start = Instant::now();
            down(&mut ctl, &state, &settings.tmp_dir).await?;
            let dz_down_s = start.elapsed().as_secs_f64();
            let (docker_run_ready_s, docker_rm_s) = baseline(n, &image).await?;
            rows.push(Row {
                machines: n,
                dz_ready_s,
                dz_down_s,
                docker_run_ready_s,
                docker_rm_s,
            });
        }
        Ok::<_, Error>(rows)
    })?;
    if a.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    println!(
        "| machines | dz cluster up: all agents answering | dz cluster down | docker run one by one: all answering | docker rm -f one by one |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            r.machines, r.dz_ready_s, r.dz_down_s, r.docker_run_ready_s, r.docker_rm_s
        );
    }
    Ok(())
}
