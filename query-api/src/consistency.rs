//! Read-your-writes: consistency tokens and the bounded wait for a view to
//! include a write.
//!
//! A mutation answers the token `"<stream>@<version>"` of the stream it wrote.
//! A query given that token asks each projector it reads, and that applies
//! events of the stream's category, to answer once its position of the stream
//! reaches the version (`GET /positions?stream=&min_version=&timeout_ms=`, a
//! long poll: the projector answers after the commit that applies it), within
//! the configured bound, else `TIMEOUT`. A backend that cannot wait is asked
//! again with a growing pause up to the configured poll interval. A projector that never applies that category (the
//! carts view and an `order-…` token) has nothing to wait for.

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
    time::{Duration, Instant},
};

use futures::future::try_join_all;
use parking_lot::Mutex;

use crate::{
    backend::{Projector, ReadModels},
    error::GatewayError,
};

/// `"<stream>@<version>"`: the write a query must see.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsistencyToken {
    stream: String,
    version: u64,
}

/// Why a consistency token does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid consistency token {token:?}: expected \"<category>-<id>@<version>\"")]
pub struct InvalidToken {
    /// What was given.
    pub token: String,
}

impl ConsistencyToken {
    /// A token for `stream` at `version`.
    pub fn new(stream: impl Into<String>, version: u64) -> Self {
        Self {
            stream: stream.into(),
            version,
        }
    }

    /// The stream written.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The version the view must have applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The stream's category (`order` for `order-…`).
    pub fn category(&self) -> &str {
        self.stream
            .split_once('-')
            .map_or(self.stream.as_str(), |(category, _)| category)
    }

    /// Parses an optional GraphQL argument; a bad token is `INVALID_INPUT`.
    pub fn parse_argument(raw: Option<&str>) -> Result<Option<Self>, GatewayError> {
        raw.map(|raw| {
            raw.parse().map_err(|error: InvalidToken| {
                GatewayError::invalid("consistencyToken", error.to_string())
            })
        })
        .transpose()
    }
}

impl FromStr for ConsistencyToken {
    type Err = InvalidToken;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidToken {
            token: raw.chars().take(200).collect(),
        };
        let (stream, version) = raw.rsplit_once('@').ok_or_else(invalid)?;
        let (category, id) = stream.split_once('-').ok_or_else(invalid)?;
        let well_formed = !category.is_empty()
            && !id.is_empty()
            && category.bytes().all(|byte| byte.is_ascii_lowercase())
            && stream.len() <= 256
            && !stream.chars().any(char::is_whitespace);
        if !well_formed {
            return Err(invalid());
        }
        let version = version.parse().map_err(|_| invalid())?;
        Ok(Self::new(stream, version))
    }
}

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.stream, self.version)
    }
}

/// How long to wait and how often to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitSettings {
    /// The bound of one wait.
    pub timeout: Duration,
    /// The longest pause between two looks.
    pub poll_interval: Duration,
}

/// How many streams the gateway remembers positions of before it forgets all.
const REMEMBERED_STREAMS: usize = 20_000;
/// How many observed versions are kept per stream.
const VERSIONS_PER_STREAM: usize = 8;

/// Versions of one stream seen applied, each with the first instant it was seen.
type SeenVersions = Vec<(u64, Instant)>;

/// What the gateway has seen projectors apply: for a projector and stream,
/// the first instant each observed version was known applied. A projector's
/// position only grows, so "version `w` ≥ `v` was applied at `t`" answers any
/// later wait for `v` without asking the projector again, and tells the
/// catalog cache which entries are recent enough.
#[derive(Debug, Default)]
pub struct AppliedVersions {
    seen: Mutex<HashMap<(Projector, String), SeenVersions>>,
}

impl AppliedVersions {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The earliest instant at which `projector` was seen to have applied
    /// `stream` up to `version` or beyond.
    pub fn known(&self, projector: Projector, stream: &str, version: u64) -> Option<Instant> {
        let seen = self.seen.lock();
        seen.get(&(projector, stream.to_owned()))?
            .iter()
            .filter(|(applied, _)| *applied >= version)
            .map(|(_, at)| *at)
            .min()
    }

    /// Records that at `at`, `projector` had applied `stream` up to `version`.
    pub fn note(&self, projector: Projector, stream: &str, version: u64, at: Instant) {
        let mut seen = self.seen.lock();
        if seen.len() >= REMEMBERED_STREAMS && !seen.contains_key(&(projector, stream.to_owned())) {
            seen.clear();
        }
        let versions = seen.entry((projector, stream.to_owned())).or_default();
        if versions
            .iter()
            .any(|(applied, first)| *applied >= version && *first <= at)
        {
            return;
        }
        versions.push((version, at));
        versions.sort_unstable();
        if versions.len() > VERSIONS_PER_STREAM {
            versions.remove(0);
        }
    }
}

/// Waits until every projector of `reads` that applies the token's category
/// has applied the token's version. Answers an instant after which anything
/// read from those views includes the write (a catalog cache entry read
/// after it is recent enough).
pub async fn wait_for(
    read_models: &dyn ReadModels,
    applied: &AppliedVersions,
    reads: &[Projector],
    token: &ConsistencyToken,
    settings: WaitSettings,
) -> Result<Instant, GatewayError> {
    let started = Instant::now();
    let deadline = started + settings.timeout;
    let relevant = reads
        .iter()
        .copied()
        .filter(|projector| projector.consumes(token.category()));
    let bounds = try_join_all(relevant.map(|projector| async move {
        if let Some(at) = applied.known(projector, token.stream(), token.version()) {
            return Ok(at);
        }
        let mut pause = Duration::from_millis(2).min(settings.poll_interval);
        loop {
            // A long poll: the projector answers once it has the version, or at the deadline.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let position = read_models
                .wait_for_position(projector, token.stream(), token.version(), remaining)
                .await?;
            let now = Instant::now();
            if let Some(version) = position {
                applied.note(projector, token.stream(), version, now);
                if version >= token.version() {
                    return Ok(now);
                }
            }
            if now >= deadline {
                metrics::counter!("query_api_consistency_timeouts_total", "projector" => projector.as_str())
                    .increment(1);
                return Err(GatewayError::Timeout {
                    service: projector.to_string(),
                    message: format!(
                        "the {projector} view did not include {token} within {} ms",
                        settings.timeout.as_millis()
                    ),
                });
            }
            // Answered early without the version (a backend that cannot
            // wait): a poll interval, not a synchronisation.
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(settings.poll_interval);
        }
    }))
    .await?;
    metrics::histogram!("query_api_consistency_wait_seconds")
        .record(started.elapsed().as_secs_f64());
    // Nothing to wait for: any read from now on will do.
    Ok(bounds.into_iter().max().unwrap_or(started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_into_stream_and_version() {
        let token: ConsistencyToken = "order-5d1c@3".parse().unwrap();
        assert_eq!(token.stream(), "order-5d1c");
        assert_eq!(token.version(), 3);
        assert_eq!(token.category(), "order");
        assert_eq!(token.to_string(), "order-5d1c@3");
        let sku: ConsistencyToken = "product-SKU-1@0".parse().unwrap();
        assert_eq!(sku.stream(), "product-SKU-1");
    }

    #[test]
    fn a_version_seen_applied_answers_waits_for_it_and_any_earlier_one() {
        let applied = AppliedVersions::new();
        let early = Instant::now();
        let late = early + Duration::from_secs(1);
        applied.note(Projector::Catalog, "product-A", 3, late);
        applied.note(Projector::Catalog, "product-A", 1, early);
        assert_eq!(
            applied.known(Projector::Catalog, "product-A", 1),
            Some(early)
        );
        assert_eq!(
            applied.known(Projector::Catalog, "product-A", 2),
            Some(late)
        );
        assert_eq!(applied.known(Projector::Catalog, "product-A", 4), None);
        assert_eq!(applied.known(Projector::Search, "product-A", 1), None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for raw in [
            "",
            "order",
            "order@3",
            "order-1@",
            "order-1@x",
            "-1@2",
            "Order-1@2",
            "order-1@-1",
        ] {
            assert!(raw.parse::<ConsistencyToken>().is_err(), "{raw}");
        }
    }
}
