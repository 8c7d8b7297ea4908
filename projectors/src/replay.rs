//! Rebuilding read models from the event store (DESIGN.md guarantee 8).
//!
//! [`rebuild`] is the fast path shared by every kind of replay: the log is
//! read in big batches, each event is decoded once, and every view being
//! rebuilt is folded, on one of a few worker threads, into large
//! transactions (see [`Batching`]): a document is written once per
//! transaction, however many events change it.
//!
//! - [`replay_offline`]: a stopped system's `--data DIR`: the store's log
//!   files are read in this process ([`open_log`]; the store itself, with
//!   its index, is not opened), each view is rebuilt into a new generation
//!   beside the old one, and `CURRENT` is swapped.
//! - Live: [`crate::runtime::Projector::replay_live`], behind
//!   `POST /admin/replay`, does the same while the projector keeps serving,
//!   then pauses its consumer, catches the new database up and swaps it in.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{mpsc as std_mpsc, Arc},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use domain::envelope::RecordedEvent;
use serde::Serialize;

use crate::{
    applier::{decode, Applier, Decoded, Outcome},
    layout::ViewDir,
    name::ProjectorName,
    projection::{projection_for, SharedProjection},
    source::{LogSource, SharedSource},
    viewdb::{DbOptions, ViewDb, ViewTx, WrittenKeys},
};

/// Events per read from the store.
pub const READ_BATCH: usize = 10_000;
/// When a rebuild's transaction of one view is written: after so many
/// events, or once it holds so many documents, whichever comes first. A
/// rebuild's time goes into sled writes, one per document per transaction
/// that changed it, so fewer, larger transactions are faster; the
/// documents a transaction holds, decoded, are its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Events per transaction at most.
    pub events: usize,
    /// Documents a transaction may hold.
    pub documents: usize,
}

/// Rebuilding offline: 40,000 held documents of the largest kinds (an
/// order's messages, an order with its lines and timeline) are ~70 MB.
pub const OFFLINE_BATCHING: Batching = Batching {
    events: 2_000_000,
    documents: 40_000,
};

/// Rebuilding beside a serving projector, which must stay small.
pub const LIVE_BATCHING: Batching = Batching {
    events: 50_000,
    documents: 20_000,
};

/// Streams from this version on keep their position through a rebuild.
const LONG_STREAM: u64 = 64;
/// Batches buffered between the reader, the decoder and the views.
const CHANNEL_DEPTH: usize = 2;

/// One view to rebuild: its projection and the (fresh) database to fill.
#[derive(Clone)]
pub struct Target {
    /// The read model.
    pub projection: SharedProjection,
    /// Where to build it.
    pub db: Arc<ViewDb>,
}

/// Called with (events read, events per second) as the rebuild goes.
pub type Progress = Arc<dyn Fn(u64, f64) + Send + Sync>;

/// What a rebuild did.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RebuildReport {
    /// Events read from the store.
    pub events: u64,
    /// Wall time.
    pub seconds: f64,
    /// Events read per second.
    pub events_per_second: f64,
    /// Per view: events applied and poison events skipped.
    pub views: Vec<ViewReport>,
}

/// One view's part of a rebuild.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ViewReport {
    /// The view.
    pub name: String,
    /// Events applied.
    pub applied: u64,
    /// Poison events skipped.
    pub skipped: u64,
    /// Seconds spent folding events into transactions.
    pub apply_seconds: f64,
    /// Seconds spent writing transactions (encoding and sled).
    pub commit_seconds: f64,
    /// Documents written (a document changed in several transactions counts each time).
    pub documents_written: u64,
    /// Stream positions written.
    pub positions_written: u64,
}

/// How much work a view's rebuild is, roughly, to balance workers: its CPU
/// seconds (applying plus committing, tenths) in `shop bench replay`'s
/// million-event rebuild (session 3).
fn weight(name: ProjectorName) -> u32 {
    match name {
        ProjectorName::Notifications => 27,
        ProjectorName::Customers => 18,
        ProjectorName::Orders => 11,
        ProjectorName::Recommendations => 10,
        ProjectorName::Carts => 7,
        ProjectorName::Wishlists => 5,
        ProjectorName::Sales => 5,
        ProjectorName::Catalog => 4,
        ProjectorName::Inventory => 2,
        ProjectorName::Search => 2,
    }
}

/// Spreads weighed items over `workers` groups: heaviest first, each to the
/// group with the least weight so far (greedy longest-processing-time).
pub(crate) fn balance<T>(items: Vec<(u64, T)>, workers: usize) -> Vec<Vec<T>> {
    let mut items = items;
    items.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    let mut groups: Vec<(u64, Vec<T>)> = (0..workers.max(1)).map(|_| (0, Vec::new())).collect();
    for (weight, item) in items {
        if let Some((total, group)) = groups.iter_mut().min_by_key(|(total, _)| *total) {
            *total += weight;
            group.push(item);
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// A batch of events with their decoded domain events, shared by the views.
struct Chunk {
    events: Vec<RecordedEvent>,
    decoded: Vec<Decoded>,
}

/// Rebuilds every target from the store's events `0..until`, in
/// transactions as [`OFFLINE_BATCHING`] says.
pub async fn rebuild(
    targets: Vec<Target>,
    source: SharedSource,
    until: u64,
    progress: Progress,
) -> anyhow::Result<RebuildReport> {
    rebuild_with(targets, source, until, progress, OFFLINE_BATCHING).await
}

/// Rebuilds every target from the store's events `0..until`, in
/// transactions as `batching` says.
pub async fn rebuild_with(
    targets: Vec<Target>,
    source: SharedSource,
    until: u64,
    progress: Progress,
    batching: Batching,
) -> anyhow::Result<RebuildReport> {
    let batching = Batching {
        events: batching.events.max(1),
        documents: batching.documents.max(1),
    };
    let started = Instant::now();
    let wanted: Vec<&'static str> = {
        let mut categories: Vec<&'static str> = targets
            .iter()
            .flat_map(|t| t.projection.categories().iter().copied())
            .collect();
        categories.sort_unstable();
        categories.dedup();
        categories
    };

    // Views: spread over one worker thread per core (more threads than
    // cores only add switches and allocator arenas), fed shared chunks.
    let workers_wanted = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, targets.len().max(1));
    let mut weighed = Vec::with_capacity(targets.len());
    for target in targets {
        target
            .db
            .set_homes(&target.projection.homes())
            .and_then(|()| target.db.set_layout(target.projection.layout()))
            .context("cannot record the rebuilt view's layout")?;
        weighed.push((
            u64::from(weight(target.projection.name())),
            Fold::new(target)?,
        ));
    }
    let groups = balance(weighed, workers_wanted);
    let mut senders = Vec::with_capacity(workers_wanted);
    let mut workers = Vec::with_capacity(workers_wanted);
    for (index, folds) in groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
    {
        let (sender, receiver) = std_mpsc::sync_channel::<Arc<Chunk>>(CHANNEL_DEPTH);
        senders.push(sender);
        let handle = std::thread::Builder::new()
            .name(format!("replay-{index}"))
            .spawn(move || fold_views(folds, receiver, batching))
            .context("cannot start a replay thread")?;
        workers.push(handle);
    }

    // Decoder: one thread between the reader and the views.
    let (raw_sender, mut raw_receiver) =
        tokio::sync::mpsc::channel::<Vec<RecordedEvent>>(CHANNEL_DEPTH);
    let decoder = std::thread::Builder::new()
        .name("replay-decode".into())
        .spawn(move || {
            while let Some(events) = raw_receiver.blocking_recv() {
                let decoded = events
                    .iter()
                    .map(|event| {
                        if wanted.contains(&event.category()) {
                            decode(event)
                        } else {
                            Err(String::new())
                        }
                    })
                    .collect();
                let chunk = Arc::new(Chunk { events, decoded });
                for sender in &senders {
                    if sender.send(Arc::clone(&chunk)).is_err() {
                        // A view failed; its thread reports why.
                        return;
                    }
                }
            }
        })
        .context("cannot start the replay decoder")?;

    // Reader: this task.
    let mut from = 0u64;
    let mut read_error = None;
    while from < until {
        let limit = usize::try_from(until - from)
            .unwrap_or(READ_BATCH)
            .min(READ_BATCH);
        let events = match source.read_all(from, limit).await {
            Ok(events) => events,
            Err(error) => {
                read_error = Some(anyhow::Error::new(error).context("cannot read the event store"));
                break;
            }
        };
        let Some(last) = events.last() else {
            break;
        };
        from = last.position + 1;
        if raw_sender.send(events).await.is_err() {
            break;
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        progress(from, from as f64 / elapsed);
    }
    drop(raw_sender);

    let decoder_result = tokio::task::spawn_blocking(move || decoder.join()).await;
    let mut views = Vec::new();
    let mut view_error = None;
    for worker in workers {
        let joined = tokio::task::spawn_blocking(move || worker.join())
            .await
            .context("a replay thread was cancelled")?;
        match joined {
            Ok(Ok(reports)) => views.extend(reports),
            Ok(Err(error)) => view_error = Some(error),
            Err(_) => view_error = Some(anyhow::anyhow!("a replay thread panicked")),
        }
    }
    if let Some(error) = read_error {
        return Err(error);
    }
    if let Some(error) = view_error {
        return Err(error);
    }
    if !matches!(decoder_result, Ok(Ok(()))) {
        anyhow::bail!("the replay decoder failed");
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(RebuildReport {
        events: from,
        seconds,
        events_per_second: from as f64 / seconds.max(1e-9),
        views,
    })
}

/// One view being rebuilt: its open transaction and what it did so far.
struct Fold {
    target: Target,
    applier: Applier,
    report: ViewReport,
    tx: Option<ViewTx>,
    in_tx: usize,
    /// Streams long enough that looking their version up in the store
    /// later would be slow keep a position of their own.
    long_streams: HashMap<String, u64>,
    last_position: Option<u64>,
}

impl Fold {
    fn new(target: Target) -> anyhow::Result<Self> {
        let name = target.projection.name();
        let tx = target.db.begin_rebuild(WrittenKeys::default())?;
        Ok(Self {
            applier: Applier::new(Arc::clone(&target.projection)),
            report: ViewReport {
                name: name.to_string(),
                ..ViewReport::default()
            },
            target,
            tx: Some(tx),
            in_tx: 0,
            long_streams: HashMap::new(),
            last_position: None,
        })
    }

    fn name(&self) -> ProjectorName {
        self.target.projection.name()
    }

    /// Folds one chunk in, committing when the transaction is big enough.
    fn fold(&mut self, chunk: &Chunk, batching: Batching) -> anyhow::Result<()> {
        let name = self.name();
        let mut applying = Instant::now();
        for (event, decoded) in chunk.events.iter().zip(&chunk.decoded) {
            let tx = self
                .tx
                .as_mut()
                .context("the rebuild's transaction is gone")?;
            match self
                .applier
                .apply_replayed(tx, event, decoded)
                .with_context(|| format!("cannot rebuild {name}"))?
            {
                Outcome::Applied => self.report.applied += 1,
                Outcome::Poisoned { reason } => {
                    self.report.skipped += 1;
                    tracing::error!(
                        projector = %name,
                        stream = %event.stream,
                        version = event.version,
                        %reason,
                        "skipped a poison event while rebuilding"
                    );
                }
                _ => {}
            }
            if event.version >= LONG_STREAM && self.target.projection.wants(event.category()) {
                self.long_streams
                    .insert(event.stream.clone(), event.version);
            }
            self.last_position = Some(event.position);
            self.in_tx += 1;
            if self.in_tx >= batching.events || tx.held_documents() >= batching.documents {
                self.report.apply_seconds += applying.elapsed().as_secs_f64();
                let written = self.commit(false)?;
                self.tx = Some(self.target.db.begin_rebuild(written)?);
                self.in_tx = 0;
                applying = Instant::now();
            }
        }
        self.report.apply_seconds += applying.elapsed().as_secs_f64();
        Ok(())
    }

    /// Writes the open transaction (flushed only at the end).
    fn commit(&mut self, last: bool) -> anyhow::Result<WrittenKeys> {
        let name = self.name();
        let committing = Instant::now();
        let mut tx = self
            .tx
            .take()
            .context("the rebuild's transaction is gone")?;
        if last {
            for (stream, version) in &self.long_streams {
                tx.keep_position(stream, *version);
            }
        }
        if let Some(position) = self.last_position {
            tx.set_swept(position);
        }
        let (stats, written) = tx
            .commit_unbatched()
            .with_context(|| format!("cannot write the rebuilt {name}"))?;
        self.report.documents_written += stats.documents as u64;
        self.report.positions_written += stats.positions as u64;
        // Only the last flush matters: nobody reads the database before the
        // swap, and a crash before it leaves a generation that is deleted.
        if last {
            self.target
                .db
                .flush()
                .with_context(|| format!("cannot flush the rebuilt {name}"))?;
        }
        self.report.commit_seconds += committing.elapsed().as_secs_f64();
        Ok(written)
    }
}

/// One worker thread: folds every chunk into each of its views, then
/// writes their last transactions.
fn fold_views(
    folds: Vec<Fold>,
    chunks: std_mpsc::Receiver<Arc<Chunk>>,
    batching: Batching,
) -> anyhow::Result<Vec<ViewReport>> {
    let mut folds = folds;
    for chunk in chunks {
        for fold in &mut folds {
            fold.fold(&chunk, batching)?;
        }
    }
    let mut reports = Vec::with_capacity(folds.len());
    for mut fold in folds {
        fold.commit(true)?;
        reports.push(fold.report);
    }
    Ok(reports)
}

/// The result of replaying one read model.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Replayed {
    /// The read model.
    pub name: ProjectorName,
    /// Its digest after the rebuild.
    pub digest: String,
    /// Events it applied.
    pub applied: u64,
}

/// What an offline replay did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OfflineReport {
    /// The rebuild.
    pub rebuild: RebuildReport,
    /// Each read model.
    pub replayed: Vec<Replayed>,
}

/// The event store's files under a data directory (`shop event-store`'s default layout).
pub fn store_dir(data: &Path) -> PathBuf {
    data.join("event-store")
}

/// Opens a stopped event store's log for reading (no index, nothing written).
pub fn open_log(store_dir: &Path) -> anyhow::Result<LogSource> {
    let reader = event_store::LogReader::open(store_dir).map_err(|error| match error {
        event_store::LogReaderError::StoreRunning(_) => {
            anyhow::anyhow!("{error}; replay through the running system with --target")
        }
        other => anyhow::Error::new(other).context(format!(
            "cannot read the event store in {}",
            store_dir.display()
        )),
    })?;
    Ok(LogSource::new(reader))
}

/// Checks that nobody has the live generation of `name` open.
fn ensure_not_running(
    dir: &ViewDir,
    name: ProjectorName,
    options: DbOptions,
) -> anyhow::Result<()> {
    if let Some((_, path)) = dir.current()? {
        if path.exists() {
            let db = ViewDb::open(&path, options).with_context(|| {
                format!("the {name} projector seems to be running (its database is locked); use --target")
            })?;
            drop(db);
        }
    }
    Ok(())
}

/// Rebuilds `names` from the store in `store_dir` into new generations under
/// `data`, then swaps them in. The projectors must be stopped.
pub async fn replay_offline(
    names: &[ProjectorName],
    data: &Path,
    source: SharedSource,
    options: DbOptions,
    progress: Progress,
) -> anyhow::Result<OfflineReport> {
    let store_id = source
        .store_id()
        .await
        .context("cannot read the store id")?;
    let head = source
        .head()
        .await
        .context("cannot read the store's head")?;
    let mut targets = Vec::new();
    let mut paths = Vec::new();
    for name in names {
        let dir = ViewDir::new(data, *name);
        ensure_not_running(&dir, *name, options)?;
        let path = dir.next_generation()?;
        let db = Arc::new(
            ViewDb::open(&path, options)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        db.set_store_id(store_id)?;
        targets.push(Target {
            projection: projection_for(*name),
            db,
        });
        paths.push((dir, path));
    }
    let rebuild = rebuild(targets.clone(), source, head, progress).await?;
    let mut replayed = Vec::new();
    for ((target, (dir, path)), view) in targets.into_iter().zip(paths).zip(&rebuild.views) {
        let db = target.db;
        let digest = tokio::task::spawn_blocking(move || crate::digest::digest(&db))
            .await
            .context("the digest task failed")??;
        dir.swap_to(&path)?;
        dir.remove_stale()?;
        replayed.push(Replayed {
            name: target.projection.name(),
            digest,
            applied: view.applied,
        });
    }
    Ok(OfflineReport { rebuild, replayed })
}

/// The digest of a stopped projector's view under `data` (`None` if it was never built).
pub fn digest_offline(
    name: ProjectorName,
    data: &Path,
    options: DbOptions,
) -> anyhow::Result<Option<String>> {
    let dir = ViewDir::new(data, name);
    let Some((_, path)) = dir.current()? else {
        return Ok(None);
    };
    let db = ViewDb::open(&path, options).with_context(|| {
        format!("cannot open the {name} view (is the projector running? then use --target)")
    })?;
    Ok(Some(crate::digest::digest(&db)?))
}

/// A progress bar on stderr for a rebuild of `total` events.
pub fn progress_bar(total: u64, label: &str) -> (indicatif::ProgressBar, Progress) {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    let shared = bar.clone();
    (
        bar,
        Arc::new(move |processed, _rate| shared.set_position(processed)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_gives_each_item_to_the_least_loaded_group_heaviest_first() {
        let weights = [27u64, 18, 11, 10, 7, 5, 5, 4, 2, 2];
        let groups = balance(weights.iter().map(|w| (*w, *w)).collect(), 2);
        assert_eq!(groups.len(), 2);
        let loads: Vec<u64> = groups.iter().map(|g| g.iter().sum()).collect();
        assert_eq!(loads.iter().sum::<u64>(), weights.iter().sum::<u64>());
        assert_eq!(loads, vec![46, 45]);
        assert_eq!(groups[0][0], 27, "the heaviest goes first");
        assert_eq!(groups[1][0], 18);
    }

    #[test]
    fn balance_with_one_worker_or_none_keeps_everything_in_one_group() {
        for workers in [0, 1] {
            let groups = balance(vec![(1, 'a'), (3, 'b'), (2, 'c')], workers);
            assert_eq!(groups, vec![vec!['b', 'c', 'a']]);
        }
    }
}
