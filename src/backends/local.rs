//! The local backend: every machine is a `dz machine` child process on
//! 127.0.0.1, in its own process group so it outlives the command that
//! started it. Crash is SIGKILL, pause is SIGSTOP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;

use super::ClusterBackend;
use super::agent_plane::{AgentMachine, AgentPlane, READY_TIMEOUT};
use super::state::{MachineRecord, infos};
use crate::controller::{ControlPlane, MachineBackend, MachineInfo, MachineSpec, MachineState};
use crate::error::{Error, Result};
use crate::node::{MachineId, Mode};
use crate::runtime::agent::Ready;
use crate::runtime::tls;

pub struct LocalBackend {
    cluster_dir: PathBuf,
    binary: PathBuf,
    secret: String,
    plane: AgentPlane,
    records: Vec<MachineRecord>,
    /// Agents this process started, to reap them.
    children: Vec<Option<Child>>,
}

impl LocalBackend {
    /// A backend for a new cluster whose files live in `cluster_dir`;
    /// `binary` is the `dz` executable the agents run.
    pub fn new(cluster_dir: PathBuf, binary: PathBuf, secret: String, epoch_ms: u64) -> Self {
        LocalBackend {
            cluster_dir,
            binary,
            plane: AgentPlane::new(secret.clone(), epoch_ms),
            secret,
            records: Vec::new(),
            children: Vec::new(),
        }
    }

    /// A backend for machines an earlier command started.
    pub fn attach(
        cluster_dir: PathBuf,
        binary: PathBuf,
        secret: String,
        epoch_ms: u64,
        records: Vec<MachineRecord>,
    ) -> Self {
        let mut b = Self::new(cluster_dir, binary, secret, epoch_ms);
        b.plane.add_recorded(&records);
        b.children.resize_with(records.len(), || None);
        b.records = records;
        b
    }

    fn cluster_name(&self) -> String {
        self.cluster_dir
            .file_name()
            .map_or("-".into(), |n| n.to_string_lossy().into_owned())
    }

    fn machine_dir(&self, name: &str) -> PathBuf {
        self.cluster_dir.join("machines").join(name)
    }

    fn start_agent(&self, name: &str, control: &str, data: &str) -> Result<Child> {
        let dir = self.machine_dir(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let out = std::fs::File::create(dir.join("agent.out")).map_err(|e| Error::io(&dir, e))?;
        let err = out.try_clone().map_err(|e| Error::io(&dir, e))?;
        Command::new(&self.binary)
            .args([
                "machine",
                "--name",
                name,
                "--control",
                control,
                "--data",
                data,
                "--mode",
                "local",
                "--cluster",
            ])
            .arg(self.cluster_name())
            .arg("--dir")
            .arg(&dir)
            .arg("--ready-file")
            .arg(&ready)
            .env("DZ_CLUSTER_SECRET", &self.secret)
            .env_remove(tls::CREDENTIALS_VAR)
            .envs(tls::agent_env(&self.secret, name)?)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::runtime(format!("cannot start {}: {e}", self.binary.display())))
    }

    async fn wait_ready(&self, name: &str, child: &mut Child) -> Result<Ready> {
        let dir = self.machine_dir(name);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(dir.join("ready.json"))
                && let Ok(ready) = serde_json::from_str(&text)
            {
                return Ok(ready);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let out = std::fs::read_to_string(dir.join("agent.out")).unwrap_or_default();
                let last = out.lines().last().unwrap_or("no output");
                return Err(Error::runtime(format!(
                    "machine {name} exited ({status}): {last}"
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::runtime(format!(
                    "machine {name} did not start within {READY_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn signal(&mut self, m: MachineId, sig: Signal) -> Result<()> {
        let r = self.record(m)?;
        let pid = r
            .pid
            .ok_or_else(|| Error::runtime(format!("machine {} has no process", r.name)))?;
        match kill(Pid::from_raw(pid as i32), sig) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::runtime(format!(
                "cannot signal machine {}: {e}",
                r.name
            ))),
        }
    }

    fn record(&self, m: MachineId) -> Result<&MachineRecord> {
        self.records
            .get(m.0 as usize)
            .ok_or_else(|| Error::input(format!("no machine {m}")))
    }

    fn reap(&mut self, m: MachineId) {
        if let Some(Some(child)) = self.children.get_mut(m.0 as usize) {
            let _ = child.wait();
        }
        if let Some(c) = self.children.get_mut(m.0 as usize) {
            *c = None;
        }
    }
}

fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[async_trait(?Send)]
impl MachineBackend for LocalBackend {
    fn mode(&self) -> Mode {
        Mode::Local
    }

    async fn create(&mut self, specs: &[MachineSpec]) -> Result<Vec<MachineInfo>> {
        crate::controller::refuse_disk_limits(specs, "local")?;
        let first = self.records.len();
        let mut children = Vec::new();
        for spec in specs {
            children.push(self.start_agent(&spec.name, "127.0.0.1:0", "127.0.0.1:0")?);
        }
        for (spec, mut child) in specs.iter().zip(children) {
            let ready = self.wait_ready(&spec.name, &mut child).await?;
            self.records.push(MachineRecord {
                name: spec.name.clone(),
                control: ready.control.clone(),
                data: ready.data.clone(),
                state: MachineState::Running,
                pid: Some(ready.pid),
                container: None,
                instance: None,
            });
            self.plane.machines.push(AgentMachine {
                name: spec.name.clone(),
                control: ready.control,
                data: ready.data,
                client: None,
            });
            self.children.push(Some(child));
        }
        for i in first..self.records.len() {
            self.plane
                .connect(MachineId(i as u32), READY_TIMEOUT)
                .await?;
        }
        Ok(self.records[first..]
            .iter()
            .enumerate()
            .map(|(i, r)| r.info(MachineId((first + i) as u32)))
            .collect())
    }

    async fn terminate(&mut self, m: MachineId) -> Result<()> {
        self.crash(m).await?;
        self.records[m.0 as usize].state = MachineState::Terminated;
        Ok(())
    }

    async fn crash(&mut self, m: MachineId) -> Result<()> {
        self.signal(m, Signal::SIGKILL)?;
        self.reap(m);
        self.plane.disconnect(m);
        self.records[m.0 as usize].state = MachineState::Crashed;
        Ok(())
    }

    async fn restart(&mut self, m: MachineId) -> Result<()> {
        let r = self.record(m)?.clone();
        if r.pid.is_some_and(alive) && r.state != MachineState::Crashed {
            return Err(Error::input(format!(
                "machine {} is running; kill it first",
                r.name
            )));
        }
        let mut child = self.start_agent(&r.name, &r.control, &r.data)?;
        let ready = self.wait_ready(&r.name, &mut child).await?;
        self.children[m.0 as usize] = Some(child);
        let rec = &mut self.records[m.0 as usize];
        rec.pid = Some(ready.pid);
        rec.state = MachineState::Running;
        self.plane.connect(m, READY_TIMEOUT).await?;
        self.plane.respawn(m).await
    }

    async fn isolate(&mut self, m: MachineId, on: bool) -> Result<()> {
        self.plane.isolate(m, on).await
    }

    async fn pause(&mut self, m: MachineId, paused: bool) -> Result<()> {
        self.signal(
            m,
            if paused {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            },
        )?;
        self.records[m.0 as usize].state = if paused {
            MachineState::Paused
        } else {
            MachineState::Running
        };
        Ok(())
    }

    async fn list(&self) -> Result<Vec<MachineInfo>> {
        Ok(infos(&self.records))
    }

    async fn cleanup(&mut self) -> Result<()> {
        // Resume paused agents so they can hear the shutdown.
        for i in 0..self.records.len() {
            if self.records[i].state == MachineState::Paused {
                let _ = self.signal(MachineId(i as u32), Signal::SIGCONT);
            }
        }
        self.plane.shutdown_all().await;
        let deadline = Instant::now() + Duration::from_secs(3);
        for i in 0..self.records.len() {
            let m = MachineId(i as u32);
            while self.records[i].pid.is_some_and(alive) && Instant::now() < deadline {
                if let Some(Some(child)) = self.children.get_mut(i)
                    && child.try_wait().ok().flatten().is_some()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = self.signal(m, Signal::SIGKILL);
            self.reap(m);
            self.records[i].state = MachineState::Terminated;
        }
        let dir = self.cluster_dir.join("machines");
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&dir, e)),
        }
    }

    fn plane(&mut self) -> &mut dyn ControlPlane {
        &mut self.plane
    }
}

impl ClusterBackend for LocalBackend {
    fn records(&self) -> Vec<MachineRecord> {
        self.records.clone()
    }

    fn agents(&mut self) -> &mut AgentPlane {
        &mut self.plane
    }
}

/// Kills every local agent recorded under `tmp` whose process still runs.
pub fn kill_recorded(records: &[MachineRecord]) -> usize {
    let mut killed = 0;
    for r in records {
        if let Some(pid) = r.pid
            && alive(pid)
            && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// The machine directory of a local cluster, for tests and tools.
pub fn machine_dir(cluster_dir: &Path, machine: &str) -> PathBuf {
    cluster_dir.join("machines").join(machine)
}
