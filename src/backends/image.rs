//! The machine image, built locally from nothing: `machine-image/Dockerfile`
//! (`FROM scratch`) with a root filesystem holding the `dz` binary and the
//! shared libraries `ldd` says it needs. The tag is a hash of the binary, so
//! a new build of `dz` makes the image stale and it is built again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const IMAGE_REPO: &str = "distzero-machine";
/// Every Docker object DistZero creates carries this label.
pub const LABEL: &str = "distzero";

const DOCKERFILE: &str = include_str!("../../machine-image/Dockerfile");

/// `distzero-machine:<first 12 hex digits of the binary's SHA-256>`.
pub fn image_tag(binary: &Path) -> Result<String> {
    let bytes = std::fs::read(binary).map_err(|e| Error::io(binary, e))?;
    let digest = Sha256::digest(&bytes);
    Ok(format!("{IMAGE_REPO}:{}", &hex::encode(digest)[..12]))
}

/// The shared libraries (and loader) a dynamic binary needs, from `ldd`.
pub fn shared_libs(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::runtime(format!("cannot run ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // glibc's ldd says "not a dynamic executable" on stderr.
    let said = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    if said.contains("not a dynamic executable") || said.contains("statically linked") {
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    if libs.is_empty() {
        return Err(Error::runtime(format!(
            "ldd found no libraries for {}",
            binary.display()
        )));
    }
    Ok(libs)
}

/// A file of an image's build context: where it goes, and its bytes.
pub struct ContextFile {
    pub name: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

impl ContextFile {
    pub fn from_path(path: &Path, name: impl Into<String>) -> Result<Self> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(ContextFile {
            name: name.into(),
            data,
            mode: 0o755,
        })
    }
}

fn tar(files: &[ContextFile]) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| Error::runtime(format!("building the image context: {e}"));
    let mut tar = tar::Builder::new(Vec::new());
    for f in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(f.data.len() as u64);
        header.set_mode(f.mode);
        header.set_cksum();
        tar.append_data(&mut header, &f.name, f.data.as_slice())
            .map_err(err)?;
    }
    tar.into_inner().map_err(err)
}

/// The libraries (and loader) a binary needs, at their own absolute paths
/// under `rootfs/`.
pub fn libraries(binary: &Path) -> Result<Vec<ContextFile>> {
    // Symlinks are followed: the image gets the real bytes under the link's name.
    shared_libs(binary)?
        .iter()
        .map(|lib| ContextFile::from_path(lib, format!("rootfs{}", lib.display())))
        .collect()
}

/// The machine image's context: the Dockerfile and `rootfs/` with the
/// binary at `/usr/local/bin/dz` and its libraries.
fn context(binary: &Path) -> Result<Vec<ContextFile>> {
    let mut files = vec![
        ContextFile {
            name: "Dockerfile".into(),
            data: DOCKERFILE.as_bytes().to_vec(),
            mode: 0o644,
        },
        ContextFile::from_path(binary, "rootfs/usr/local/bin/dz")?,
    ];
    files.extend(libraries(binary)?);
    files.extend(shell());
    Ok(files)
}

/// A static busybox from the host as the image's `/bin/sh` (its applets,
/// `cat`, `ls` and the rest, run from inside it) and an empty `/tmp`:
/// systems that run shell commands (Cheops' shell backend) need both, and
/// `FROM scratch` has neither. Without a static busybox on the host the
/// image has no shell, and such commands fail saying `sh` is missing.
fn shell() -> Vec<ContextFile> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file() && shared_libs(p).is_ok_and(|libs| libs.is_empty()));
    let Some(sh) = busybox.and_then(|p| ContextFile::from_path(p, "rootfs/bin/sh").ok()) else {
        return Vec::new();
    };
    vec![
        sh,
        ContextFile {
            name: "rootfs/tmp/.keep".into(),
            data: Vec::new(),
            mode: 0o644,
        },
    ]
}

/// Builds an image from a context holding a `Dockerfile`.
pub async fn build(docker: &Docker, tag: &str, files: &[ContextFile]) -> Result<()> {
    let labels = HashMap::from([(LABEL, "1")]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let body = bollard::body_full(bytes::Bytes::from(tar(files)?));
    let mut stream = docker.build_image(options, None, Some(body));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| Error::runtime(format!("building {tag}: {e}")))?;
        if let Some(detail) = info.error_detail {
            return Err(Error::runtime(format!(
                "building {tag}: {}",
                detail.message.unwrap_or_else(|| "unknown error".into())
            )));
        }
    }
    docker
        .inspect_image(tag)
        .await
        .map_err(|e| Error::runtime(format!("built {tag} but cannot find it: {e}")))?;
    Ok(())
}

/// Builds the image unless one for this binary exists (or `force`).
/// Returns the tag and whether it was built now.
pub async fn ensure_image(docker: &Docker, binary: &Path, force: bool) -> Result<(String, bool)> {
    let tag = image_tag(binary)?;
    if !force && docker.inspect_image(&tag).await.is_ok() {
        return Ok((tag, false));
    }
    build(docker, &tag, &context(binary)?).await?;
    Ok((tag, true))
}

/// Connects to the engine (DOCKER_HOST or the local socket) and checks it answers.
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| Error::input(format!("cannot reach Docker: {e}")))?;
    docker
        .ping()
        .await
        .map_err(|e| Error::input(format!("Docker does not answer: {e}")))?;
    Ok(docker)
}
