//! `dz image build`: the machine image for virtual mode.

use super::cluster::binary;
use super::runtime::block_local;
use crate::backends::image::{connect, ensure_image};
use crate::settings::Settings;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Builds the machine image from nothing: this dz binary and the shared
    /// libraries it links, FROM scratch (see machine-image/).
    Build {
        /// Build even if an image for this binary exists.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(_settings: &Settings, c: Command) -> anyhow::Result<()> {
    let Command::Build { force } = c;
    let binary = binary()?;
    block_local(async {
        let docker = connect().await?;
        let (tag, built) = ensure_image(&docker, &binary, force).await?;
        println!("{tag} {}", if built { "built" } else { "is up to date" });
        Ok(())
    })
}
