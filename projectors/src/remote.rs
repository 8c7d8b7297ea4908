//! Talking to running projectors: what `shop digest --target` and
//! `shop replay --target` do.
//!
//! A target is the base URL of one projector (`http://127.0.0.1:7101`) or,
//! for all projectors in one process, of the combined router
//! (`http://127.0.0.1:7100`), under which each projector is `/{name}`.

use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use crate::{name::ProjectorName, runtime::ReplayProgress};

/// How often a live replay's progress is asked for.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The base URL of projector `name` at `target`: the target itself when it
/// serves that one projector, else `target/{name}`.
pub fn projector_url(target: &str, name: ProjectorName, combined: bool) -> String {
    let base = target.trim_end_matches('/');
    if combined {
        format!("{base}/{name}")
    } else {
        base.to_owned()
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .context("cannot build an HTTP client")
}

#[derive(Debug, Deserialize)]
struct DigestAnswer {
    name: String,
    digest: String,
}

/// `GET {url}/digest`: the name the projector gives and its digest.
pub async fn digest(url: &str) -> anyhow::Result<(String, String)> {
    let answer: DigestAnswer = client()?
        .get(format!("{url}/digest"))
        .send()
        .await
        .with_context(|| format!("cannot reach the projector at {url}"))?
        .error_for_status()
        .with_context(|| format!("the projector at {url} refused /digest"))?
        .json()
        .await
        .context("the projector's /digest answer is not what was expected")?;
    Ok((answer.name, answer.digest))
}

/// Starts a live replay at `url` and waits for it to finish, reporting
/// progress (events read, total, events/s); returns the new digest.
pub async fn replay(
    url: &str,
    mut progress: impl FnMut(&ReplayProgressView),
) -> anyhow::Result<String> {
    let http = client()?;
    http.post(format!("{url}/admin/replay"))
        .send()
        .await
        .with_context(|| format!("cannot reach the projector at {url}"))?
        .error_for_status()
        .with_context(|| format!("the projector at {url} refused to replay"))?;
    loop {
        let state: ReplayProgressView = http
            .get(format!("{url}/admin/replay"))
            .send()
            .await
            .with_context(|| format!("lost the projector at {url}"))?
            .error_for_status()?
            .json()
            .await
            .context("the projector's replay progress is not what was expected")?;
        progress(&state);
        match state.state.as_str() {
            "done" => return state.digest.context("the replay finished without a digest"),
            "failed" => anyhow::bail!(
                "the replay failed: {}",
                state.error.unwrap_or_else(|| "no reason given".into())
            ),
            _ => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

/// [`ReplayProgress`] as read back over HTTP.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ReplayProgressView {
    /// `idle`, `running`, `done` or `failed`.
    pub state: String,
    /// Events read.
    pub processed: u64,
    /// Events to read.
    pub total: u64,
    /// Rate.
    pub events_per_second: f64,
    /// The new digest when done.
    pub digest: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<ReplayProgress> for ReplayProgressView {
    fn from(progress: ReplayProgress) -> Self {
        Self {
            state: progress.state.to_owned(),
            processed: progress.processed,
            total: progress.total,
            events_per_second: progress.events_per_second,
            digest: progress.digest,
            error: progress.error,
        }
    }
}
