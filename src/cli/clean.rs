//! `dz clean`: removes what DistZero left running, found by label or
//! record, whatever state the run that made it died in.

#[cfg(any(feature = "virtual", feature = "cloud"))]
use super::runtime::block_local;
use crate::backends::local::kill_recorded;
use crate::backends::state::ClusterState;
use crate::node::Mode;
use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    /// Which leftovers: local processes, virtual (Docker) containers and
    /// networks, or cloud instances.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Also remove the machine images (virtual mode).
    #[arg(long)]
    images: bool,
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let records: Vec<ClusterState> = ClusterState::all(&settings.tmp_dir)
        .into_iter()
        .filter(|s| s.mode == a.mode)
        .collect();
    match a.mode {
        Mode::Local => {
            let killed: usize = records.iter().map(|s| kill_recorded(&s.machines)).sum();
            println!("killed {killed} local agent processes");
        }
        Mode::Virtual => clean_virtual(a.images)?,
        Mode::Cloud => clean_cloud(settings)?,
        Mode::Simulated => {
            return Err(crate::Error::input("simulated runs leave nothing running").into());
        }
    }
    for s in &records {
        s.forget(&settings.tmp_dir)?;
        println!("forgot cluster {}", s.name);
    }
    Ok(())
}

#[cfg(feature = "virtual")]
fn clean_virtual(images: bool) -> anyhow::Result<()> {
    use crate::backends::{docker, image};
    block_local(async {
        let d = image::connect().await?;
        let removed = docker::remove_labelled(&d, None).await?;
        println!(
            "removed {} containers and {} networks",
            removed.containers.len(),
            removed.networks.len()
        );
        if images {
            let n = docker::remove_images(&d).await?;
            println!("removed {n} images");
        }
        Ok(())
    })
}

#[cfg(not(feature = "virtual"))]
fn clean_virtual(_: bool) -> anyhow::Result<()> {
    Err(crate::Error::input("this dz was built without the `virtual` feature (Docker)").into())
}

#[cfg(feature = "cloud")]
fn clean_cloud(settings: &Settings) -> anyhow::Result<()> {
    let (instances, groups) = block_local(crate::backends::ec2::reap(&settings.cloud))?;
    println!(
        "terminated {} instances, deleted {} security groups",
        instances.len(),
        groups.len()
    );
    Ok(())
}

#[cfg(not(feature = "cloud"))]
fn clean_cloud(_: &Settings) -> anyhow::Result<()> {
    Err(crate::Error::input("this dz was built without the `cloud` feature (EC2)").into())
}
