//! The EC2 calls the cloud backend makes, with DistZero's tags, retries
//! where retrying helps and one clear line where it does not.

use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceStateName, InstanceType, IpPermission, IpRange, ResourceType, Tag,
    TagSpecification, UserIdGroupPair,
};

use crate::error::{Error, Result};
use crate::settings::CloudSettings;

/// Every resource DistZero creates carries `distzero=1`; a cluster's also
/// `distzero.cluster=<name>`.
pub const TAG: &str = "distzero";
pub const CLUSTER_TAG: &str = "distzero.cluster";
pub const AGENT_PORTS: (i32, i32) = (7700, 7701);
/// Instances per RunInstances call.
pub const BATCH: usize = 50;

pub async fn client(cfg: &CloudSettings) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(cfg.region.clone()))
        // Standard mode retries throttling and transient errors with backoff.
        .retry_config(RetryConfig::standard().with_max_attempts(5));
    if let Some(url) = &cfg.endpoint {
        loader = loader.endpoint_url(url);
    }
    if let Some((key, secret)) = &cfg.static_credentials {
        loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
            key, secret, None, None, "distzero",
        ));
    }
    Client::new(&loader.load().await)
}

/// One line for an EC2 failure; the user's mistakes are input errors.
pub fn ec2_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    what: &str,
    e: SdkError<E, R>,
) -> Error {
    let (code, message) = match &e {
        SdkError::ServiceError(s) => (
            s.err().code().unwrap_or("").to_string(),
            s.err().message().unwrap_or("").to_string(),
        ),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            return Error::input(format!(
                "cannot reach EC2 to {what} (check AWS_ENDPOINT_URL, AWS_REGION and the network)"
            ));
        }
        other => (
            String::new(),
            format!("{other:?}").chars().take(200).collect(),
        ),
    };
    match code.as_str() {
        "InvalidAMIID.NotFound" | "InvalidAMIID.Malformed" | "InvalidAMIID.Unavailable" => {
            Error::input(format!(
                "EC2 cannot {what}: the AMI does not exist here ({code}); set DZ_EC2_AMI"
            ))
        }
        "AuthFailure"
        | "ExpiredToken"
        | "RequestExpired"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken" => Error::input(format!(
            "AWS refused the credentials ({code}) to {what}: renew or configure them"
        )),
        "UnauthorizedOperation" => {
            Error::input(format!("these AWS credentials may not {what} ({code})"))
        }
        "InvalidSubnetID.NotFound"
        | "InvalidGroup.NotFound"
        | "InvalidKeyPair.NotFound"
        | "InvalidParameterValue"
        | "InvalidInstanceType" => Error::input(format!("EC2 cannot {what}: {code}: {message}")),
        _ => Error::runtime(
            format!("EC2 cannot {what}: {code} {message}")
                .trim_end()
                .to_string(),
        ),
    }
}

fn code_of<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tags(resource: ResourceType, cluster: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(tag(TAG, "1"))
        .tags(tag(CLUSTER_TAG, cluster))
        .tags(tag("Name", &format!("dz-{cluster}")))
        .build()
}

#[derive(Clone, Copy)]
pub struct LaunchRequest<'a> {
    pub cfg: &'a CloudSettings,
    pub ami: &'a str,
    pub cluster: &'a str,
    pub count: usize,
    pub security_group: &'a str,
    pub user_data_b64: &'a str,
}

/// Launches `count` instances in one RunInstances call. Retries a few times
/// on insufficient capacity; other errors return at once.
pub async fn run_batch(ec2: &Client, r: &LaunchRequest<'_>) -> Result<Vec<Instance>> {
    let mut pause = Duration::from_secs(2);
    for attempt in 1..=4 {
        let mut call = ec2
            .run_instances()
            .image_id(r.ami)
            .instance_type(InstanceType::from(r.cfg.instance_type.as_str()))
            .min_count(r.count as i32)
            .max_count(r.count as i32)
            .security_group_ids(r.security_group)
            .user_data(r.user_data_b64)
            .tag_specifications(tags(ResourceType::Instance, r.cluster))
            .tag_specifications(tags(ResourceType::Volume, r.cluster));
        if let Some(s) = &r.cfg.subnet {
            call = call.subnet_id(s);
        }
        if let Some(k) = &r.cfg.key_name {
            call = call.key_name(k);
        }
        match call.send().await {
            Ok(out) => return Ok(out.instances().to_vec()),
            Err(e) if code_of(&e) == Some("InsufficientInstanceCapacity") && attempt < 4 => {
                crate::ctl_log!(
                    warn,
                    Duration::ZERO,
                    attempt,
                    "EC2 has no capacity for the instance type; retrying"
                );
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => return Err(ec2_error("launch instances", e)),
        }
    }
    unreachable!("the last attempt returns")
}

/// What carries the project's tag: one cluster's, or everything.
fn tag_filter(cluster: Option<&str>) -> Filter {
    match cluster {
        Some(c) => Filter::builder()
            .name(format!("tag:{CLUSTER_TAG}"))
            .values(c)
            .build(),
        None => Filter::builder()
            .name(format!("tag:{TAG}"))
            .values("1")
            .build(),
    }
}

/// Instances with a tag (`distzero` for all, or one cluster), in any state
/// but terminated.
pub async fn find(ec2: &Client, cluster: Option<&str>) -> Result<Vec<Instance>> {
    let filter = tag_filter(cluster);
    let states = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(
            ["pending", "running", "stopping", "stopped", "shutting-down"]
                .map(String::from)
                .to_vec(),
        ))
        .build();
    let mut out = Vec::new();
    let mut pages = ec2
        .describe_instances()
        .filters(filter)
        .filters(states)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ec2_error("describe instances", e))?;
        for r in page.reservations() {
            out.extend(r.instances().iter().cloned());
        }
    }
    Ok(out)
}

pub async fn describe(ec2: &Client, ids: &[String]) -> Result<Vec<Instance>> {
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| ec2_error("describe instances", e))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances().iter().cloned())
        .collect())
}

pub fn state(i: &Instance) -> Option<&InstanceStateName> {
    i.state().and_then(|s| s.name())
}

/// Waits until every instance is running; returns them in `ids` order.
pub async fn wait_running(ec2: &Client, ids: &[String], within: Duration) -> Result<Vec<Instance>> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(100);
    loop {
        let found = describe(ec2, ids).await?;
        let all_running = ids.iter().all(|id| {
            found.iter().any(|i| {
                i.instance_id() == Some(id) && state(i) == Some(&InstanceStateName::Running)
            })
        });
        if all_running {
            let mut ordered = Vec::new();
            for id in ids {
                ordered.extend(found.iter().find(|i| i.instance_id() == Some(id)).cloned());
            }
            return Ok(ordered);
        }
        if let Some(dead) = found.iter().find(|i| {
            matches!(
                state(i),
                Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
            )
        }) {
            return Err(Error::runtime(format!(
                "instance {} ended while starting",
                dead.instance_id().unwrap_or("?")
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::runtime(format!(
                "instances not running within {within:?}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(3));
    }
}

pub async fn terminate(ec2: &Client, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    ec2.terminate_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| ec2_error("terminate instances", e))?;
    Ok(())
}

/// A hard stop: the closest EC2 has to pulling the plug.
pub async fn force_stop(ec2: &Client, id: &str) -> Result<()> {
    ec2.stop_instances()
        .instance_ids(id)
        .force(true)
        .send()
        .await
        .map_err(|e| ec2_error("stop an instance", e))?;
    Ok(())
}

pub async fn start(ec2: &Client, id: &str) -> Result<()> {
    ec2.start_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| ec2_error("start an instance", e))?;
    Ok(())
}

/// The VPC of the subnet instances launch into (or the default VPC).
async fn vpc_of(ec2: &Client, cfg: &CloudSettings) -> Result<String> {
    let vpc = match &cfg.subnet {
        Some(s) => ec2
            .describe_subnets()
            .subnet_ids(s)
            .send()
            .await
            .map_err(|e| ec2_error("find the subnet", e))?
            .subnets()
            .first()
            .and_then(|s| s.vpc_id().map(String::from)),
        None => ec2
            .describe_vpcs()
            .filters(Filter::builder().name("isDefault").values("true").build())
            .send()
            .await
            .map_err(|e| ec2_error("find the default VPC", e))?
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id().map(String::from)),
    };
    vpc.ok_or_else(|| Error::input("no VPC to launch into: set DZ_EC2_SUBNET"))
}

/// The agent ports, open to `controller` and to the group itself (the
/// cluster's own machines); nothing else.
fn agent_rule(controller: &str, group: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(AGENT_PORTS.0)
        .to_port(AGENT_PORTS.1)
        .ip_ranges(
            IpRange::builder()
                .cidr_ip(controller)
                .description("DistZero controller")
                .build(),
        )
        .user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build())
        .build()
}

/// Creates the cluster's security group.
pub async fn create_group(
    ec2: &Client,
    cfg: &CloudSettings,
    cluster: &str,
    controller: &str,
) -> Result<String> {
    let vpc = vpc_of(ec2, cfg).await?;
    let id = ec2
        .create_security_group()
        .group_name(format!("dz-{cluster}"))
        .description(format!(
            "DistZero cluster {cluster}: agent ports from the controller and the cluster"
        ))
        .vpc_id(vpc)
        .tag_specifications(tags(ResourceType::SecurityGroup, cluster))
        .send()
        .await
        .map_err(|e| ec2_error("create a security group", e))?
        .group_id()
        .map(String::from)
        .ok_or_else(|| Error::runtime("EC2 created a security group without an id"))?;
    ec2.authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(agent_rule(controller, &id))
        .send()
        .await
        .map_err(|e| ec2_error("open the agent ports", e))?;
    Ok(id)
}

/// Checks a given security group opens nothing but the agent ports, and
/// those only to the controller and to itself.
pub async fn check_group(ec2: &Client, id: &str, controller: &str) -> Result<()> {
    let out = ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(|e| ec2_error("read the security group", e))?;
    let group = out
        .security_groups()
        .first()
        .ok_or_else(|| Error::input(format!("security group {id} does not exist")))?;
    let mut reaches_agents = false;
    for p in group.ip_permissions() {
        let ports = (p.from_port(), p.to_port());
        if p.ip_protocol() != Some("tcp")
            || ports.0 < Some(AGENT_PORTS.0)
            || ports.1 > Some(AGENT_PORTS.1)
        {
            return Err(Error::input(format!(
                "security group {id} opens more than the agent ports {}-{} ({:?} {:?}-{:?}); use a group of its own",
                AGENT_PORTS.0,
                AGENT_PORTS.1,
                p.ip_protocol(),
                ports.0,
                ports.1
            )));
        }
        for r in p.ip_ranges() {
            if r.cidr_ip() != Some(controller) {
                return Err(Error::input(format!(
                    "security group {id} lets {} reach the agents; only the controller ({controller}) may",
                    r.cidr_ip().unwrap_or("?")
                )));
            }
            reaches_agents = true;
        }
        if p.user_id_group_pairs()
            .iter()
            .any(|g| g.group_id() != Some(id))
        {
            return Err(Error::input(format!(
                "security group {id} admits another group to the agent ports"
            )));
        }
    }
    if !reaches_agents {
        return Err(Error::input(format!(
            "security group {id} does not let the controller ({controller}) reach ports {}-{}",
            AGENT_PORTS.0, AGENT_PORTS.1
        )));
    }
    Ok(())
}

/// DistZero's security groups (one cluster's, or all).
pub async fn groups(ec2: &Client, cluster: Option<&str>) -> Result<Vec<String>> {
    let filter = tag_filter(cluster);
    let out = ec2
        .describe_security_groups()
        .filters(filter)
        .send()
        .await
        .map_err(|e| ec2_error("list security groups", e))?;
    Ok(out
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(String::from))
        .collect())
}

/// Deletes a group, waiting (a while) for its instances to be gone.
pub async fn delete_group(ec2: &Client, id: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match ec2.delete_security_group().group_id(id).send().await {
            Ok(_) => return Ok(()),
            Err(e) if code_of(&e) == Some("InvalidGroup.NotFound") => return Ok(()),
            Err(e) if code_of(&e) == Some("DependencyViolation") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(e) => return Err(ec2_error("delete the security group", e)),
        }
    }
}

/// The address other machines and the controller reach an instance at.
pub fn address(i: &Instance, public: bool) -> Option<String> {
    if public {
        i.public_ip_address()
    } else {
        i.private_ip_address()
    }
    .map(String::from)
}

pub async fn ami_exists(ec2: &Client, ami: &str) -> Result<()> {
    let out = ec2
        .describe_images()
        .image_ids(ami)
        .send()
        .await
        .map_err(|e| ec2_error(&format!("find AMI {ami}"), e))?;
    if out.images().is_empty() {
        return Err(Error::input(format!(
            "AMI {ami} does not exist here; set DZ_EC2_AMI"
        )));
    }
    Ok(())
}
