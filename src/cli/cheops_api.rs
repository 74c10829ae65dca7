//! `dz cheops exec / show / status`: the original's CLI against a running
//! cluster, through a site's HTTP API (its address is in the cluster record).

use std::path::Path;

use crate::backends::state::ClusterState;
use crate::drivers::cheops::cluster::api_urls;
use crate::drivers::cheops::http::{HttpResponse, Part, request};
use crate::error::Error;
use crate::settings::Settings;

#[derive(clap::Args)]
pub struct ExecArgs {
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    id: String,
    /// The resource's sites, joined by '&'.
    #[arg(long)]
    sites: String,
    /// Each {path} in it is attached as a file, as the original CLI does.
    #[arg(long)]
    command: String,
    /// The operation's type (the resolution matrix is keyed by it).
    #[arg(long = "type")]
    kind: String,
    /// A file holding the resolution matrix (JSON).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// kv or shell [default: shell where the cluster allows it, else kv].
    #[arg(long)]
    backend: Option<String>,
    /// The site whose API takes it [default: the first of --sites].
    #[arg(long)]
    via: Option<String>,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    id: String,
    #[arg(long)]
    command: String,
    /// Sites to ask, joined by '&' [default: every site].
    #[arg(long)]
    sites: Option<String>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long)]
    cluster: String,
    /// A resource: its block and replies at every site [default: list the
    /// sites and their API addresses].
    #[arg(long)]
    id: Option<String>,
}

fn urls(settings: &Settings, cluster: &str) -> anyhow::Result<Vec<(String, String)>> {
    let state = ClusterState::load(&settings.tmp_dir, cluster)?;
    let urls = api_urls(&state);
    if urls.is_empty() {
        return Err(Error::input(format!(
            "cluster {cluster:?} has no cheops site with an API (start it with `dz cluster up --system cheops`)"
        ))
        .into());
    }
    Ok(urls)
}

fn split_sites(s: &str) -> Vec<String> {
    s.split('&')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Replaces each `{path}` of the command by `{basename}` and attaches the
/// file under that name, as the original CLI does.
fn attach(command: &str) -> anyhow::Result<(String, Vec<Part>)> {
    let (mut out, mut parts, mut rest) = (String::new(), Vec::new(), command);
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else {
            break;
        };
        let path = &rest[open + 1..open + len];
        out.push_str(&rest[..open]);
        let p = Path::new(path);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|_| !path.is_empty())
            .ok_or_else(|| Error::input(format!("{{{path}}} in --command names no file")))?;
        let data = std::fs::read(p).map_err(|e| {
            Error::input(format!("{{{path}}} in --command: cannot read {path}: {e}"))
        })?;
        out.push_str(&format!("{{{name}}}"));
        parts.push(Part {
            name: name.clone(),
            file: Some(name),
            data,
        });
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    Ok((out, parts))
}

/// 400 and 404 are the user's to fix (exit 2); anything else is not.
async fn refused(r: &mut HttpResponse) -> anyhow::Error {
    let body = r.text().await.unwrap_or_default();
    let line = body.lines().next().unwrap_or("").trim().to_string();
    let e = format!("HTTP {}: {line}", r.status);
    if matches!(r.status, 400 | 404) {
        Error::input(e).into()
    } else {
        Error::runtime(e).into()
    }
}

fn url_of<'a>(urls: &'a [(String, String)], site: &str) -> anyhow::Result<&'a str> {
    urls.iter()
        .find(|(s, _)| s == site)
        .map(|(_, u)| u.as_str())
        .ok_or_else(|| {
            let known: Vec<&str> = urls.iter().map(|(s, _)| s.as_str()).collect();
            Error::input(format!(
                "no site {site:?} in the cluster (sites: {})",
                known.join(", ")
            ))
            .into()
        })
}

pub fn exec(settings: &Settings, a: ExecArgs) -> anyhow::Result<()> {
    let urls = urls(settings, &a.cluster)?;
    let sites = split_sites(&a.sites);
    let via = match a.via.as_deref().or(sites.first().map(String::as_str)) {
        Some(s) => s.to_string(),
        None => return Err(Error::input("--sites is empty").into()),
    };
    let url = url_of(&urls, &via)?.to_string();
    let (command, mut parts) = attach(&a.command)?;
    parts.push(Part::text("command", &command));
    parts.push(Part::text("sites", &a.sites));
    parts.push(Part::text("type", &a.kind));
    if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(format!("--config {}: {e}", path.display())))?;
        parts.push(Part::text("config", &text));
    }
    if let Some(b) = &a.backend {
        parts.push(Part::text("backend", b));
    }
    super::runtime::block_local(async {
        let mut r = request(&url, "POST", &format!("/exec/{}", a.id), Some(&parts)).await?;
        if r.status != 200 {
            return Err(refused(&mut r).await);
        }
        let (mut i, n) = (0, sites.len());
        while let Some(line) = r.line().await? {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            i += 1;
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            println!(
                "[{i}/{n}] {} {} {}\t{}",
                s("Status"),
                s("RequestId"),
                s("Site"),
                s("Output").trim_end()
            );
        }
        Ok(())
    })
}

pub fn show(settings: &Settings, a: ShowArgs) -> anyhow::Result<()> {
    let urls = urls(settings, &a.cluster)?;
    let sites = match &a.sites {
        Some(s) => s.clone(),
        None => urls
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join("&"),
    };
    let first = split_sites(&sites)
        .into_iter()
        .next()
        .ok_or_else(|| Error::input("--sites is empty"))?;
    let url = url_of(&urls, &first)?.to_string();
    let parts = [
        Part::text("command", &a.command),
        Part::text("sites", &sites),
    ];
    super::runtime::block_local(async {
        let mut r = request(&url, "POST", &format!("/show/{}", a.id), Some(&parts)).await?;
        if r.status != 200 {
            return Err(refused(&mut r).await);
        }
        let body: serde_json::Value = serde_json::from_str(&r.text().await?)
            .map_err(|e| Error::runtime(format!("bad answer from {url}: {e}")))?;
        for (site, v) in body.as_object().into_iter().flatten() {
            println!(
                "{site} {} {}",
                v["Status"].as_str().unwrap_or_default(),
                v["Output"].as_str().unwrap_or_default().trim_end()
            );
        }
        Ok(())
    })
}

pub fn status(settings: &Settings, a: StatusArgs) -> anyhow::Result<()> {
    let urls = urls(settings, &a.cluster)?;
    let Some(id) = a.id else {
        for (site, url) in &urls {
            println!("{site} {url}");
        }
        return Ok(());
    };
    super::runtime::block_local(async {
        let mut blocks = Vec::new();
        for (site, url) in &urls {
            let got = async {
                let mut r = request(url, "GET", &format!("/resource/{id}"), None).await?;
                let status = r.status;
                let text = r.text().await?;
                Ok::<_, Error>((status, text))
            }
            .await;
            match got {
                Ok((200, text)) => {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    let block: Vec<String> = v["Operations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|o| {
                            format!(
                                "{} {}",
                                o["Type"].as_str().unwrap_or_default(),
                                o["Command"]["Command"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    let replies = v["Replies"].as_object().map_or(0, |m| {
                        m.values().filter_map(|r| r.as_array()).map(Vec::len).sum()
                    });
                    println!(
                        "{site} backend {} block [{}] replies {replies}",
                        v["Backend"].as_str().unwrap_or_default(),
                        block.join(" ; ")
                    );
                    blocks.push(block);
                }
                Ok((404, _)) => println!("{site} does not hold {id}"),
                Ok((status, text)) => println!("{site} HTTP {status}: {}", text.trim()),
                Err(e) => println!("{site} unreachable: {e}"),
            }
        }
        match blocks.first() {
            None => Err(Error::input(format!("no site holds {id:?}")).into()),
            Some(b) if blocks.iter().all(|x| x == b) => {
                println!("{} sites hold the same block", blocks.len());
                Ok(())
            }
            Some(_) => {
                println!("the sites' blocks differ (not converged yet?)");
                Ok(())
            }
        }
    })
}

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long)]
    cluster: String,
    /// Operations for the acceptance rate.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    /// Clients sending them at once.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Operations timed one at a time until every site replied.
    #[arg(long, default_value_t = 200)]
    e2e_ops: usize,
    /// The site whose API takes them [default: the first].
    #[arg(long)]
    via: Option<String>,
}

pub fn bench(settings: &Settings, a: BenchArgs) -> anyhow::Result<()> {
    use crate::drivers::cheops::bench::{BenchOptions, run};
    let urls = urls(settings, &a.cluster)?;
    let via = a.via.clone().unwrap_or_else(|| urls[0].0.clone());
    let opts = BenchOptions {
        url: url_of(&urls, &via)?.to_string(),
        sites: urls
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join("&"),
        accepted_ops: a.ops,
        clients: a.clients,
        e2e_ops: a.e2e_ops,
    };
    let r = super::runtime::block_local(run(&opts))?;
    println!(
        "accepted by {via}: {} operations from {} clients, {:.0} ops/s",
        r.accepted_ops, r.clients, r.accepted_per_s
    );
    println!(
        "until all {} sites replied: {} operations one at a time, median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        urls.len(),
        r.e2e_ops,
        r.e2e_median_ms,
        r.e2e_p90_ms,
        r.e2e_max_ms
    );
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
