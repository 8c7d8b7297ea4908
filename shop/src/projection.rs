//! `shop projector NAME`, `shop replay NAME|--all` and `shop digest NAME|--all`.
//!
//! Replay and digest work on a running system (`--target URL`: a projector's
//! read API, or the combined router of every projector that `shop dev`
//! serves, told apart by its `/status`) or offline on a stopped system's
//! `--data DIR` (the projectors' databases under `DIR/projectors/`, the
//! event store's files under `DIR/event-store/` unless `--store-data`).

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use projectors::{
    remote,
    replay::{self, progress_bar},
    viewdb::DbOptions,
    ProjectorConfig, ProjectorName,
};

/// Flags of `shop projector`.
#[derive(Debug, clap::Args)]
pub struct ProjectorArgs {
    /// Which read model.
    #[arg(value_enum)]
    pub name: ProjectorName,
    #[command(flatten)]
    pub config: ProjectorConfig,
}

/// Which read models a command is about.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Which read model.
    #[arg(value_enum, required_unless_present = "all")]
    pub name: Option<ProjectorName>,
    /// Every read model.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
    /// A running system: the URL of a projector's read API (e.g.
    /// `http://127.0.0.1:7101`), or of the router serving every projector
    /// (`shop dev`, e.g. `http://127.0.0.1:7100`). Without it, the running
    /// projectors named by `SHOP_<NAME>_PROJECTOR_URL` when every selected one
    /// has such a variable (as the query API reads them), else offline on `--data`.
    #[arg(long, env = "SHOP_PROJECTOR_TARGET")]
    pub target: Option<String>,
    /// Offline: the stopped system's data directory.
    #[arg(long, env = "SHOP_DATA", default_value = "./data")]
    pub data: PathBuf,
}

impl Selection {
    fn names(&self) -> Vec<ProjectorName> {
        match (self.all, self.name) {
            (false, Some(name)) => vec![name],
            _ => ProjectorName::ALL.to_vec(),
        }
    }
}

/// Flags of `shop replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Offline: the event store's files (default: `<data>/event-store`).
    #[arg(long = "store-data", env = "SHOP_STORE_DATA")]
    pub store_data: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Flags of `shop digest`.
#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    #[command(flatten)]
    pub selection: Selection,
}

/// Runs one projector until SIGINT/SIGTERM.
pub async fn run_projector(args: ProjectorArgs) -> anyhow::Result<ExitCode> {
    let shutdown = service_runtime::shutdown::signal();
    projectors::run(args.name, args.config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The URL of each selected projector at `target`: a combined router
/// answers `/status` with every projector's status, a single projector
/// with its own.
async fn urls(
    target: &str,
    names: &[ProjectorName],
) -> anyhow::Result<Vec<(ProjectorName, String)>> {
    let base = target.trim_end_matches('/');
    let status: serde_json::Value = reqwest::get(format!("{base}/status"))
        .await
        .with_context(|| format!("cannot reach {base}"))?
        .error_for_status()
        .with_context(|| format!("{base}/status refused"))?
        .json()
        .await
        .with_context(|| format!("{base}/status is not a projector's status"))?;
    if status.get("projectors").is_some() {
        return Ok(names
            .iter()
            .map(|name| (*name, remote::projector_url(base, *name, true)))
            .collect());
    }
    let serves = status
        .get("name")
        .and_then(serde_json::Value::as_str)
        .map(ProjectorName::parse)
        .transpose()?
        .with_context(|| format!("{base}/status does not name a projector"))?;
    match names {
        [name] if *name == serves => Ok(vec![(serves, base.to_owned())]),
        _ => anyhow::bail!(
            "{base} serves only the {serves} projector; name it, or give the URL of all projectors"
        ),
    }
}

/// Without `--target`: the running projectors named by
/// `SHOP_<NAME>_PROJECTOR_URL` (the variables the query API reads), when every
/// selected projector has one; else `None` (work offline on `--data`).
fn urls_from_env(names: &[ProjectorName]) -> Option<Vec<(ProjectorName, String)>> {
    names
        .iter()
        .map(|name| {
            let variable = format!(
                "SHOP_{}_PROJECTOR_URL",
                name.as_str().to_ascii_uppercase().replace('-', "_")
            );
            std::env::var(variable)
                .ok()
                .filter(|url| !url.trim().is_empty())
                .map(|url| (*name, url.trim_end_matches('/').to_owned()))
        })
        .collect()
}

/// Where to reach the selected projectors of a running system, if anywhere.
async fn running(selection: &Selection) -> anyhow::Result<Option<Vec<(ProjectorName, String)>>> {
    let names = selection.names();
    match &selection.target {
        Some(target) => Ok(Some(urls(target, &names).await?)),
        None => Ok(urls_from_env(&names)),
    }
}

/// Rebuilds read models and swaps them in.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let names = args.selection.names();
    if let Some(running) = running(&args.selection).await? {
        for (name, url) in running {
            let bar = (!args.quiet).then(|| progress_bar(0, name.as_str()).0);
            let digest = remote::replay(&url, |progress| {
                if let Some(bar) = &bar {
                    bar.set_length(progress.total);
                    bar.set_position(progress.processed);
                }
            })
            .await
            .with_context(|| format!("replaying {name} at {url}"))?;
            if let Some(bar) = bar {
                bar.finish();
            }
            println!("{name} {digest}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let data = &args.selection.data;
    let store_dir = args
        .store_data
        .clone()
        .unwrap_or_else(|| replay::store_dir(data));
    let log = replay::open_log(&store_dir)?;
    let head = log.log_head();
    let label = if names.len() == 1 {
        names[0].to_string()
    } else {
        "all".to_owned()
    };
    let (bar, progress) = progress_bar(head, &label);
    let progress: replay::Progress = if args.quiet {
        bar.finish_and_clear();
        Arc::new(|_, _| {})
    } else {
        progress
    };
    let report =
        replay::replay_offline(&names, data, Arc::new(log), DbOptions::default(), progress).await?;
    bar.finish();
    eprintln!(
        "replayed {} events into {} read model(s) in {:.2} s ({:.0} events/s)",
        report.rebuild.events,
        report.replayed.len(),
        report.rebuild.seconds,
        report.rebuild.events_per_second
    );
    for replayed in report.replayed {
        println!("{} {}", replayed.name, replayed.digest);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `NAME DIGEST` for read models.
pub async fn digest(args: DigestArgs) -> anyhow::Result<ExitCode> {
    let names = args.selection.names();
    if let Some(running) = running(&args.selection).await? {
        for (name, url) in running {
            let (_, digest) = remote::digest(&url).await?;
            println!("{name} {digest}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    for name in names {
        let data = args.selection.data.clone();
        let digest = tokio::task::spawn_blocking(move || {
            replay::digest_offline(name, &data, DbOptions::default())
        })
        .await
        .context("the digest task failed")??
        .unwrap_or_else(projectors::digest::empty);
        println!("{name} {digest}");
    }
    Ok(ExitCode::SUCCESS)
}
