//! Cloud mode against an emulated EC2 (moto), with containers standing in
//! for instances and booting from their real user-data.
#![cfg(all(feature = "cloud", feature = "virtual"))]

mod common;

use std::rc::Rc;

use assert_cmd::Command;
use common::cloud::{Cloud, CloudCleanup, Moto, busybox_available, cloud_settings};
use common::real::{DZ, block_local, clocks_scenario, docker_available};
use distzero::backends::cluster::{down, up};
use distzero::backends::ec2::api;
use distzero::controller::{MachineSpec, Placement, one_node_per_machine};
use distzero::node::Mode;

fn clocks(n: u32) -> (Vec<MachineSpec>, Placement) {
    one_node_per_machine(n, "clocks", "machine", &serde_json::json!({"rate": 4}))
}

/// Docker, moto and busybox (the stand-ins' shell): what booting emulated
/// instances needs.
fn ready() -> Option<Moto> {
    if !docker_available() || !busybox_available() {
        return None;
    }
    Moto::start()
}

#[test]
fn cloud_clocks_cluster_boots_from_user_data_and_recovers_from_faults() {
    let Some(moto) = ready() else { return };
    let label = "cloud-scenario";
    let _cleanup = CloudCleanup(label.into());
    let tmp = tempfile::tempdir().unwrap();
    block_local(async {
        let cloud = Rc::new(Cloud::new(tmp.path(), moto, label).await);
        let standins = tokio::task::spawn_local(cloud.clone().stand_in());
        let state = clocks_scenario(&cloud.settings, Mode::Cloud, label).await;
        // Launched in one call, tagged, and all terminated by `down`.
        assert!(state.machines.iter().all(|m| m.instance.is_some()));
        assert!(
            cloud.live_instances().await.is_empty(),
            "instances left running"
        );
        let ec2 = api::client(&cloud.settings.cloud).await;
        assert!(
            api::groups(&ec2, Some(label)).await.unwrap().is_empty(),
            "security group left behind"
        );
        standins.abort();
    });
}

#[test]
fn cloud_launch_tags_every_instance_and_opens_only_agent_ports() {
    let Some(moto) = ready() else { return };
    let label = "cloud-tags";
    let _cleanup = CloudCleanup(label.into());
    let tmp = tempfile::tempdir().unwrap();
    block_local(async {
        let cloud = Rc::new(Cloud::new(tmp.path(), moto, label).await);
        let standins = tokio::task::spawn_local(cloud.clone().stand_in());
        let (machines, placement) = clocks(3);
        let (mut ctl, state) = up(
            &cloud.settings,
            label,
            Mode::Cloud,
            &machines,
            placement,
            std::path::Path::new(DZ),
        )
        .await
        .unwrap();
        let ec2 = api::client(&cloud.settings.cloud).await;
        let instances = api::find(&ec2, Some(label)).await.unwrap();
        assert_eq!(instances.len(), 3);
        for i in &instances {
            let tags: Vec<(String, String)> = i
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                .collect();
            assert!(tags.contains(&("distzero".into(), "1".into())));
            assert!(tags.contains(&("distzero.cluster".into(), label.into())));
        }
        // One reservation: one RunInstances call for the batch.
        let described = ec2
            .describe_instances()
            .filters(
                distzero::aws_sdk_ec2::types::Filter::builder()
                    .name("tag:distzero.cluster")
                    .values(label)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(described.reservations().len(), 1);
        let groups = api::groups(&ec2, Some(label)).await.unwrap();
        assert_eq!(groups.len(), 1);
        let described = ec2
            .describe_security_groups()
            .group_ids(&groups[0])
            .send()
            .await
            .unwrap();
        let rules = described.security_groups()[0].ip_permissions();
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(
            (rules[0].from_port(), rules[0].to_port()),
            (Some(7700), Some(7701))
        );
        let cidrs: Vec<&str> = rules[0]
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip())
            .collect();
        assert_eq!(cidrs, vec!["127.0.0.1/32"], "only the controller");
        assert_eq!(
            rules[0].user_id_group_pairs()[0].group_id(),
            Some(groups[0].as_str()),
            "and the cluster itself"
        );
        // The agents answer through the control plane.
        let stats = ctl.stats().await.unwrap();
        assert_eq!(stats.nodes.len(), 3);
        down(&mut ctl, &state, &cloud.settings.tmp_dir)
            .await
            .unwrap();
        assert!(cloud.live_instances().await.is_empty());
        standins.abort();
    });
}

#[test]
fn cloud_failed_up_leaves_no_instance_running() {
    let Some(moto) = Moto::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = cloud_settings(tmp.path(), &moto);
    settings.cloud.ready_timeout_s = 3; // no agent will ever answer: nothing stands in
    block_local(async {
        let (machines, placement) = clocks(4);
        let err = up(
            &settings,
            "cloud-fail",
            Mode::Cloud,
            &machines,
            placement,
            std::path::Path::new(DZ),
        )
        .await
        .err()
        .expect("up must fail without agents");
        assert!(err.to_string().contains("agent"), "{err}");
        let ec2 = api::client(&settings.cloud).await;
        assert!(
            api::find(&ec2, None).await.unwrap().is_empty(),
            "a failed up left instances"
        );
        assert!(
            api::groups(&ec2, None).await.unwrap().is_empty(),
            "a failed up left its security group"
        );
    });
}

#[test]
fn cloud_reaper_terminates_leaked_instances() {
    let Some(moto) = Moto::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let settings = cloud_settings(tmp.path(), &moto);
    block_local(async {
        let ec2 = api::client(&settings.cloud).await;
        let group = api::create_group(&ec2, &settings.cloud, "leak", "127.0.0.1/32")
            .await
            .unwrap();
        for _ in 0..2 {
            let r = api::LaunchRequest {
                cfg: &settings.cloud,
                ami: "ami-12c6146b",
                cluster: "leak",
                count: 3,
                security_group: &group,
                user_data_b64: "",
            };
            api::run_batch(&ec2, &r).await.unwrap();
        }
        assert_eq!(api::find(&ec2, None).await.unwrap().len(), 6);
    });
    let out = Command::new(DZ)
        .env("DZ_TMP_DIR", tmp.path())
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .args(["clean", "--mode", "cloud"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("terminated 6 instances"));
    block_local(async {
        let ec2 = api::client(&settings.cloud).await;
        assert!(api::find(&ec2, None).await.unwrap().is_empty());
        assert!(api::groups(&ec2, None).await.unwrap().is_empty());
    });
}

#[test]
fn cloud_bad_ami_and_bad_group_are_one_clear_line() {
    let Some(moto) = Moto::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(DZ);
        cmd.env("DZ_TMP_DIR", tmp.path())
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("DZ_CLOUD_READY_TIMEOUT", "2")
            .args([
                "cluster",
                "up",
                "--mode",
                "cloud",
                "--machines",
                "2",
                "--name",
                "bad",
            ]);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("DZ_EC2_AMI"), "{err}");
    let (code, err) = run(&[("DZ_EC2_AMI", "ami-00000000deadbeef")]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("AMI") && err.contains("DZ_EC2_AMI"), "{err}");
    // A security group that lets the world in is refused.
    let settings = cloud_settings(tmp.path(), &moto);
    let open = block_local(async {
        let ec2 = api::client(&settings.cloud).await;
        let vpc = ec2.describe_vpcs().send().await.unwrap().vpcs()[0]
            .vpc_id()
            .unwrap()
            .to_string();
        let g = ec2
            .create_security_group()
            .group_name("wide-open")
            .description("x")
            .vpc_id(vpc)
            .send()
            .await
            .unwrap();
        let g = g.group_id().unwrap().to_string();
        ec2.authorize_security_group_ingress()
            .group_id(&g)
            .ip_protocol("tcp")
            .from_port(0)
            .to_port(65535)
            .cidr_ip("0.0.0.0/0")
            .send()
            .await
            .unwrap();
        g
    });
    let (code, err) = run(&[
        ("DZ_EC2_AMI", "ami-12c6146b"),
        ("DZ_EC2_SECURITY_GROUP", &open),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("opens more than the agent ports"), "{err}");
    block_local(async {
        let ec2 = api::client(&settings.cloud).await;
        assert!(
            api::find(&ec2, None).await.unwrap().is_empty(),
            "refused launches must not leave instances"
        );
    });
}
