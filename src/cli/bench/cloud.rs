//! `dz bench cloud-launch`: launching N instances up to "all running", with
//! one batched RunInstances call against one call per instance (one after
//! the other, and all at once), in one run. Meant for an emulator
//! (AWS_ENDPOINT_URL); against AWS it launches and terminates real instances.

use std::time::{Duration, Instant};

use crate::backends::ec2::api::{self, LaunchRequest};
use crate::cli::runtime::block_local;
use crate::error::{Error, Result};
use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 20)]
    instances: usize,
    #[arg(long)]
    json: bool,
}

async fn launch(
    ec2: &aws_sdk_ec2::Client,
    req: &LaunchRequest<'_>,
    calls: &[usize],
    concurrent: bool,
) -> Result<(f64, Vec<String>)> {
    let start = Instant::now();
    let mut ids = Vec::new();
    if concurrent {
        let all = calls.iter().map(|&n| async move {
            api::run_batch(ec2, &LaunchRequest { count: n, ..*req }).await
        });
        for r in futures::future::join_all(all).await {
            ids.extend(r?.iter().filter_map(|i| i.instance_id().map(String::from)));
        }
    } else {
        for &n in calls {
            let r = api::run_batch(ec2, &LaunchRequest { count: n, ..*req }).await?;
            ids.extend(r.iter().filter_map(|i| i.instance_id().map(String::from)));
        }
    }
    api::wait_running(ec2, &ids, Duration::from_secs(600)).await?;
    Ok((start.elapsed().as_secs_f64(), ids))
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let cfg = &settings.cloud;
    let ami = cfg
        .ami
        .clone()
        .ok_or_else(|| Error::input("set DZ_EC2_AMI"))?;
    let rows = block_local(async {
        let ec2 = api::client(cfg).await;
        let group = api::create_group(&ec2, cfg, "bench-launch", "127.0.0.1/32").await?;
        let req = LaunchRequest {
            cfg,
            ami: &ami,
            cluster: "bench-launch",
            count: 0,
            security_group: &group,
            user_data_b64: "",
        };
        let n = a.instances;
        let mut rows = Vec::new();
        for (label, calls, concurrent) in [
            ("one batched RunInstances call", vec![n], false),
            (
                "one call per instance, one after another",
                vec![1; n],
                false,
            ),
            ("one call per instance, all at once", vec![1; n], true),
        ] {
            let (secs, ids) = launch(&ec2, &req, &calls, concurrent).await?;
            api::terminate(&ec2, &ids).await?;
            rows.push((label, calls.len(), secs));
        }
        api::delete_group(&ec2, &group).await?;
        Ok::<_, Error>(rows)
    })?;
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(l, c, s)| serde_json::json!({"way": l, "calls": c, "seconds": s}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{} instances, from the first call to all running:",
        a.instances
    );
    println!("| way | RunInstances calls | seconds |\n|---|---:|---:|");
    for (label, calls, secs) in rows {
        println!("| {label} | {calls} | {secs:.3} |");
    }
    Ok(())
}
