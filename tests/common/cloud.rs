//! An emulated cloud for cloud-mode tests: a moto server plays the EC2 API,
//! and every instance it "launches" is stood in for by a Docker container at
//! the instance's private address, booting from the instance's real
//! user-data (downloading `dz` over HTTP and checking its SHA-256). EC2
//! stops, starts and terminations are mirrored on the containers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use distzero::aws_sdk_ec2::types::InstanceStateName;
use distzero::backends::ec2::api;
use distzero::backends::image::{self, ContextFile};
use distzero::bollard::Docker;
use distzero::bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkingConfig,
};
use distzero::bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use distzero::settings::Settings;
use sha2::{Digest, Sha256};

use super::real::{DZ, block_local, settings};

const CLUSTER_LABEL: &str = "distzero.cluster";

/// A moto server on a free port; stopped when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto_server, or returns None (skipping loudly) when it is not
    /// installed, unless DZ_REQUIRE_CLOUD=1 makes that a failure.
    pub fn start() -> Option<Moto> {
        let require = Settings::from_env()
            .map(|s| s.require_cloud)
            .unwrap_or(false);
        let port = free_port();
        let start = |program: &str, pre: &[&str]| {
            Command::new(program)
                .args(pre)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let module_available = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let spawned = if module_available {
            start("python3", &["-m", "moto.server"])
        } else {
            start("moto_server", &[])
        };
        let child = match spawned {
            Ok(c) => c,
            Err(e) if require => panic!(
                "DZ_REQUIRE_CLOUD=1 but moto_server cannot start: {e} (pip install 'moto[server]')"
            ),
            Err(e) => {
                eprintln!(
                    "SKIPPED: this cloud-mode test needs moto_server ({e}); pip install 'moto[server]', or set DZ_REQUIRE_CLOUD=1 to fail instead"
                );
                return None;
            }
        };
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }
}

/// Whether /bin/busybox is there for stand-in instances; when it is not,
/// skips loudly, unless DZ_REQUIRE_CLOUD=1 makes that a failure.
pub fn busybox_available() -> bool {
    if Path::new(BUSYBOX).exists() {
        return true;
    }
    let require = Settings::from_env()
        .map(|s| s.require_cloud)
        .unwrap_or(false);
    assert!(
        !require,
        "DZ_REQUIRE_CLOUD=1 but {BUSYBOX} is missing (apt-get install busybox-static)"
    );
    eprintln!(
        "SKIPPED: stand-in instances need {BUSYBOX}; apt-get install busybox-static, or set DZ_REQUIRE_CLOUD=1 to fail instead"
    );
    false
}

const BUSYBOX: &str = "/bin/busybox";

/// Settings pointing the cloud backend at `moto`.
pub fn cloud_settings(tmp: &Path, moto: &Moto) -> Settings {
    let mut s = settings(tmp);
    s.cloud.endpoint = Some(moto.url.clone());
    s.cloud.region = "us-east-1".into();
    s.cloud.ami = Some("ami-12c6146b".into());
    s.cloud.static_credentials = Some(("testing".into(), "testing".into()));
    s.cloud.ready_timeout_s = 60;
    s
}

/// Serves one file over HTTP on every interface; returns its port.
fn serve_file(path: &Path) -> u16 {
    let data = std::fs::read(path).unwrap();
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut req = [0u8; 2048];
                let _ = conn.read(&mut req);
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    data.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&data);
            });
        }
    });
    port
}

/// An image that boots a user-data script: busybox, and the shared
/// libraries `dz` needs, on nothing.
async fn standin_image(docker: &Docker) -> String {
    let tag = "distzero-standin:test";
    if docker.inspect_image(tag).await.is_ok() {
        return tag.into();
    }
    let mut files = vec![
        ContextFile {
            name: "Dockerfile".into(),
            data: b"FROM scratch\nCOPY rootfs/ /\n".to_vec(),
            mode: 0o644,
        },
        ContextFile::from_path(Path::new(BUSYBOX), "rootfs/bin/busybox")
            .expect("busybox-static is installed"),
        ContextFile {
            name: "rootfs/tmp/.keep".into(),
            data: Vec::new(),
            mode: 0o644,
        },
    ];
    files.extend(image::libraries(Path::new(DZ)).unwrap());
    image::build(docker, tag, &files)
        .await
        .expect("standin image");
    tag.into()
}

/// The emulated cloud of one test.
pub struct Cloud {
    pub settings: Settings,
    pub moto: Moto,
    pub label: String,
    docker: Docker,
    network: String,
    image: String,
}

impl Cloud {
    /// A VPC and subnet in moto, a Docker network with the same addresses,
    /// the `dz` binary served over HTTP. `label` marks the test's containers.
    pub async fn new(tmp: &Path, moto: Moto, label: &str) -> Cloud {
        let docker = image::connect()
            .await
            .expect("cloud tests stand in for instances with Docker");
        let mut settings = cloud_settings(tmp, &moto);
        let ec2 = api::client(&settings.cloud).await;
        let prefix = format!(
            "10.{}.{}",
            100 + rand::random::<u8>() % 100,
            rand::random::<u8>()
        );
        let vpc = ec2
            .create_vpc()
            .cidr_block(format!("{prefix}.0/16"))
            .send()
            .await
            .unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("{prefix}.0/24"))
            .send()
            .await
            .unwrap();
        settings.cloud.subnet = Some(subnet.subnet().unwrap().subnet_id().unwrap().to_string());
        let network = format!("dzs-{label}");
        // What a crashed earlier run of this test may have left.
        let _ = distzero::backends::docker::remove_labelled(&docker, Some(label)).await;
        let status = Command::new("docker")
            .args([
                "network",
                "create",
                "--subnet",
                &format!("{prefix}.0/24"),
                "--gateway",
                &format!("{prefix}.1"),
            ])
            .args([
                "--label",
                "distzero=1",
                "--label",
                &format!("{CLUSTER_LABEL}={label}"),
                &network,
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "docker network for the emulated subnet");
        let port = serve_file(Path::new(DZ));
        let sha = hex::encode(Sha256::digest(std::fs::read(DZ).unwrap()));
        settings.cloud.agent_url = Some(format!("http://{prefix}.1:{port}/dz"));
        settings.cloud.agent_sha256 = Some(sha);
        let image = standin_image(&docker).await;
        Cloud {
            settings,
            moto,
            label: label.into(),
            docker,
            network,
            image,
        }
    }

    /// Mirrors the EC2 API's instances on containers until cancelled.
    pub async fn stand_in(self: std::rc::Rc<Self>) {
        let ec2 = api::client(&self.settings.cloud).await;
        let mut known: HashMap<String, bool> = HashMap::new(); // id -> container running
        loop {
            let instances = api::find(&ec2, None).await.unwrap_or_default();
            let mut seen = Vec::new();
            for i in &instances {
                let (Some(id), Some(ip)) = (i.instance_id(), i.private_ip_address()) else {
                    continue;
                };
                seen.push(id.to_string());
                let name = format!("dzs-{}-{id}", self.label);
                let state = api::state(i).cloned();
                let running = known.get(id).copied();
                match (state, running) {
                    (Some(InstanceStateName::Pending | InstanceStateName::Running), None) => {
                        self.boot(&ec2, id, ip, &name).await;
                        known.insert(id.to_string(), true);
                    }
                    (
                        Some(InstanceStateName::Pending | InstanceStateName::Running),
                        Some(false),
                    ) => {
                        let _ = self.docker.start_container(&name, None).await;
                        known.insert(id.to_string(), true);
                    }
                    (
                        Some(InstanceStateName::Stopping | InstanceStateName::Stopped),
                        Some(true),
                    ) => {
                        let kill = KillContainerOptionsBuilder::default()
                            .signal("SIGKILL")
                            .build();
                        let _ = self.docker.kill_container(&name, Some(kill)).await;
                        known.insert(id.to_string(), false);
                    }
                    _ => {}
                }
            }
            for id in known
                .keys()
                .filter(|id| !seen.contains(id))
                .cloned()
                .collect::<Vec<_>>()
            {
                let force = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = self
                    .docker
                    .remove_container(&format!("dzs-{}-{id}", self.label), Some(force))
                    .await;
                known.remove(&id);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn boot(&self, ec2: &distzero::aws_sdk_ec2::Client, id: &str, ip: &str, name: &str) {
        let attr = ec2
            .describe_instance_attribute()
            .instance_id(id)
            .attribute("userData".into())
            .send()
            .await
            .unwrap();
        let user_data = attr
            .user_data()
            .and_then(|u| u.value())
            .unwrap_or("")
            .to_string();
        // The script as the instance got it, decoded inside the container.
        let _ = base64::engine::general_purpose::STANDARD
            .decode(&user_data)
            .expect("user-data is base64");
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(vec!["/bin/busybox".into()]),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                "/bin/busybox --install -s /bin && echo \"$DZ_USER_DATA\" | base64 -d > /user-data.sh && exec sh /user-data.sh".into(),
            ]),
            env: Some(vec![format!("DZ_USER_DATA={user_data}")]),
            labels: Some(HashMap::from([
                ("distzero".to_string(), "1".to_string()),
                (CLUSTER_LABEL.to_string(), self.label.clone()),
            ])),
            host_config: Some(HostConfig { network_mode: Some(self.network.clone()), ..Default::default() }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.network.clone(),
                    EndpointSettings {
                        ipam_config: Some(EndpointIpamConfig { ipv4_address: Some(ip.into()), ..Default::default() }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .expect("standin container");
        self.docker
            .start_container(name, None)
            .await
            .expect("standin start");
    }

    /// Instances of the project still not terminated, per moto.
    pub async fn live_instances(&self) -> Vec<String> {
        let ec2 = api::client(&self.settings.cloud).await;
        api::find(&ec2, None)
            .await
            .unwrap()
            .iter()
            .filter_map(|i| i.instance_id().map(String::from))
            .collect()
    }
}

/// Removes the test's standin containers and network, also on failure.
pub struct CloudCleanup(pub String);

impl Drop for CloudCleanup {
    fn drop(&mut self) {
        let label = self.0.clone();
        let _ = block_local(async move {
            let docker = image::connect().await?;
            distzero::backends::docker::remove_labelled(&docker, Some(&label)).await
        });
    }
}
