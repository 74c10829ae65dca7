//! A Cheops cluster on real machines: where each site's HTTP API listens
//! (chosen at `dz cluster up`, kept in the cluster record) and whether
//! shell commands may run.

use std::path::Path;

use crate::backends::state::ClusterState;
use crate::controller::Placement;
use crate::error::{Error, Result};
use crate::node::Mode;

/// The original's API port, used wherever a site has its machine alone.
pub const API_PORT: u16 = 8079;

/// Fills in each site's API address, shell permission and shell
/// directory, unless its config already names them. In local mode all
/// sites share 127.0.0.1, so each gets a free port of its own; elsewhere
/// every site listens on 8079 of its machine.
pub fn prepare(
    placement: &mut Placement,
    mode: Mode,
    allow_shell: bool,
    cluster_dir: &Path,
) -> Result<()> {
    for (spec, _) in placement.iter_mut() {
        if spec.system != "cheops" || spec.role != "site" {
            continue;
        }
        if spec.config.is_null() {
            spec.config = serde_json::json!({});
        }
        let name = spec.name.clone();
        let Some(cfg) = spec.config.as_object_mut() else {
            return Err(Error::input(format!(
                "node {name:?}: a cheops site's config is a JSON object"
            )));
        };
        if !cfg.contains_key("api") {
            let api = match mode {
                Mode::Local => format!("127.0.0.1:{}", free_port()?),
                _ => format!("0.0.0.0:{API_PORT}"),
            };
            cfg.insert("api".into(), api.into());
        }
        if allow_shell {
            cfg.insert("allow_shell".into(), true.into());
        }
        if mode == Mode::Local && !cfg.contains_key("shell_dir") {
            let dir = std::path::absolute(cluster_dir.join("cheops").join(&name))
                .map_err(|e| Error::io(cluster_dir, e))?;
            cfg.insert("shell_dir".into(), dir.to_string_lossy().into());
        }
    }
    Ok(())
}

/// A port nobody listens on now (the agent binds it a moment later).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::runtime(format!("cannot find a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::runtime(format!("cannot find a free port: {e}")))
}

/// Each site's API base URL (`http://host:port`), from the cluster record:
/// the port from the site's config, the host from its machine's address.
pub fn api_urls(state: &ClusterState) -> Vec<(String, String)> {
    state
        .nodes
        .iter()
        .filter(|n| n.spec.system == "cheops" && n.spec.role == "site")
        .filter_map(|n| {
            let api = n.spec.config.get("api")?.as_str()?;
            let port = api.rsplit_once(':')?.1;
            let machine = state.machines.get(n.machine as usize)?;
            let host = machine.data.rsplit_once(':')?.0;
            let host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
            Some((n.spec.name.clone(), format!("http://{host}:{port}")))
        })
        .collect()
}
