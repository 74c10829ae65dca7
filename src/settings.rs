//! The only module that reads environment variables. Values come from the
//! process environment, then from a `.env` file in the working directory
//! (see `.env.template` for every variable).

use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogstashAddr {
    pub host: String,
    pub port: u16,
}

/// Where and how cloud machines run (`--mode cloud`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloudSettings {
    /// `AWS_REGION` (default us-east-1).
    pub region: String,
    /// `AWS_ENDPOINT_URL`: an EC2 emulator such as moto instead of AWS.
    pub endpoint: Option<String>,
    /// `DZ_EC2_AMI`: the image instances boot (with the agent baked in, or
    /// any Linux with systemd plus `DZ_AGENT_URL`).
    pub ami: Option<String>,
    /// `DZ_EC2_INSTANCE_TYPE` (default t3.micro).
    pub instance_type: String,
    /// `DZ_EC2_SUBNET`: subnet to launch into (default: the region's default).
    pub subnet: Option<String>,
    /// `DZ_EC2_SECURITY_GROUP`: an existing group, checked to open only the
    /// agent ports (default: one is made per cluster).
    pub security_group: Option<String>,
    /// `DZ_EC2_KEY_NAME`: an EC2 key pair for SSH, if wanted.
    pub key_name: Option<String>,
    /// `DZ_EC2_CONTROLLER_CIDR`: who may reach the agents besides the
    /// cluster itself (default: this machine's address, /32).
    pub controller_cidr: Option<String>,
    /// `DZ_EC2_PUBLIC_IP=1`: reach agents on public addresses.
    pub public_ip: bool,
    /// `DZ_AGENT_URL` and `DZ_AGENT_SHA256`: where instances download the
    /// `dz` binary, and its checksum.
    pub agent_url: Option<String>,
    pub agent_sha256: Option<String>,
    /// `DZ_CLOUD_READY_TIMEOUT` seconds for instances to run and agents to
    /// answer (default 300).
    pub ready_timeout_s: u64,
    /// Fixed credentials (access key, secret) instead of the standard AWS
    /// chain; never read from the environment (tests and embedders set it).
    pub static_credentials: Option<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// `DZ_LOG`: a tracing filter such as `info` or `distzero=debug`.
    pub log_filter: String,
    /// `DZ_TMP_DIR`: where runs write logs and outputs (default `.tmp`).
    pub tmp_dir: PathBuf,
    /// `DZ_LOG_MESSAGES=1`: log every simulated delivery (slow).
    pub log_messages: bool,
    /// `LOGSTASH_HOST` and `LOGSTASH_PORT`: ship JSON log lines over TCP.
    pub logstash: Option<LogstashAddr>,
    /// `DZ_CLUSTER_SECRET`: shared by the controller and its agents.
    pub cluster_secret: Option<String>,
    /// `DZ_TLS`: mutual TLS on cluster traffic (unset: on in cloud mode, off
    /// in local and virtual mode).
    pub tls: Option<bool>,
    /// `DZ_TLS_CREDENTIALS`: an agent's (or a `--servers` client's) CA,
    /// certificate and key, one hex line made by the controller.
    pub tls_credentials: Option<String>,
    /// `DZ_REQUIRE_DOCKER=1`: virtual-mode tests fail instead of skipping.
    pub require_docker: bool,
    /// `DZ_REQUIRE_CLOUD=1`: cloud-mode tests fail instead of skipping.
    pub require_cloud: bool,
    /// `DZ_REQUIRE_ETCD=1`: tests that compare with etcd fail instead of skipping.
    pub require_etcd: bool,
    pub cloud: CloudSettings,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn flag(name: &str) -> Result<bool> {
    match var(name).as_deref().map(str::trim) {
        None | Some("0") | Some("false") | Some("no") => Ok(false),
        Some("1") | Some("true") | Some("yes") => Ok(true),
        Some(v) => Err(Error::input(format!("{name}={v:?}: expected 1 or 0"))),
    }
}

impl Settings {
    /// Reads `.env` (if present) and the environment.
    pub fn load() -> Result<Settings> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(Error::input(format!(".env: {e}"))),
        }
        Self::from_env()
    }

    /// Reads the environment only.
    pub fn from_env() -> Result<Settings> {
        let logstash = match (var("LOGSTASH_HOST"), var("LOGSTASH_PORT")) {
            (None, None) => None,
            (Some(host), Some(port)) => {
                let port = port.trim().parse().map_err(|_| {
                    Error::input(format!("LOGSTASH_PORT={port:?} is not a port number"))
                })?;
                Some(LogstashAddr { host, port })
            }
            _ => {
                return Err(Error::input(
                    "set both LOGSTASH_HOST and LOGSTASH_PORT, or neither",
                ));
            }
        };
        Ok(Settings {
            log_filter: var("DZ_LOG").unwrap_or_else(|| "info".into()),
            tmp_dir: var("DZ_TMP_DIR").map_or_else(|| PathBuf::from(".tmp"), PathBuf::from),
            log_messages: flag("DZ_LOG_MESSAGES")?,
            logstash,
            cluster_secret: var("DZ_CLUSTER_SECRET"),
            tls: var("DZ_TLS").map(|_| flag("DZ_TLS")).transpose()?,
            tls_credentials: var("DZ_TLS_CREDENTIALS"),
            require_docker: flag("DZ_REQUIRE_DOCKER")?,
            require_cloud: flag("DZ_REQUIRE_CLOUD")?,
            require_etcd: flag("DZ_REQUIRE_ETCD")?,
            cloud: CloudSettings {
                region: var("AWS_REGION")
                    .or_else(|| var("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into()),
                endpoint: var("AWS_ENDPOINT_URL"),
                ami: var("DZ_EC2_AMI"),
                instance_type: var("DZ_EC2_INSTANCE_TYPE").unwrap_or_else(|| "t3.micro".into()),
                subnet: var("DZ_EC2_SUBNET"),
                security_group: var("DZ_EC2_SECURITY_GROUP"),
                key_name: var("DZ_EC2_KEY_NAME"),
                controller_cidr: var("DZ_EC2_CONTROLLER_CIDR"),
                public_ip: flag("DZ_EC2_PUBLIC_IP")?,
                agent_url: var("DZ_AGENT_URL"),
                agent_sha256: var("DZ_AGENT_SHA256"),
                ready_timeout_s: match var("DZ_CLOUD_READY_TIMEOUT") {
                    Some(v) => v.trim().parse().map_err(|_| {
                        Error::input(format!(
                            "DZ_CLOUD_READY_TIMEOUT={v:?} is not a number of seconds"
                        ))
                    })?,
                    None => 300,
                },
                static_credentials: None,
            },
        })
    }
}
