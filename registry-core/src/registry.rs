//! `Registry`: the registry as one handle. Opening checks the log's tail, folds any
//! records the projections have not applied, and starts the sequencer; the handle
//! submits commands and hands out readers.

use std::path::Path;
use std::sync::Arc;

use huduma_number::IssuanceFilters;

use crate::access::{AccessLog, AccessOptions};
use crate::checkpointer::{self, Checkpointer};
use crate::command::{CommandError, Outcome, Submission};
use crate::event::Actor;
use crate::event::kind;
use crate::issuer::NumberIssuer;
use crate::keys::LogKey;
use crate::keys::{KeyId, VerifyingKey};
use crate::projection::state::meta;
use crate::query::Reader;
use crate::record::RecordRef;
use crate::replay::{self, FoldSpace, Reached, ReplayError};
use crate::secrets::Secrets;
use crate::sequencer::Sequencer;
use crate::storage::Storage;
use crate::storage::Tree;
use crate::storage::presence_filter::FilteredStore;
use crate::storage::read_cache::CachedStore;
use crate::storage::sled_store::SledStore;
use crate::storage::staged::StagedStore;
use crate::storage::view::ReadError;
use crate::storage::view::View;
use crate::verify::VerifyError;
use crate::writer::{Writer, WriterError};

/// How the registry runs.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The log's origin, written in record 0 (and, later, in checkpoints).
    pub origin: String,
    pub filters: IssuanceFilters,
    /// Commands queued before submitters wait.
    pub queue: usize,
    /// The most commands committed in one batch. sled 0.34 stalls every reader while a
    /// batch is applied, so this bounds the worst look-up latency under writes (see
    /// BENCHMARKS.md): 256 keeps it near 10-20 ms with no loss of throughput here.
    pub max_batch: usize,
    /// How many of the last records are re-verified on open.
    pub tail_check: u64,
    /// The newest signed checkpoint is at most about this far behind the log.
    pub checkpoint_interval: std::time::Duration,
    /// The most look-ups recorded in one access-log batch.
    pub access_max_batch: usize,
    /// Registrations scoring at least this against a registered person are refused
    /// as likely duplicates unless overridden (`None`: no duplicate search).
    pub duplicate_threshold: Option<f32>,
    /// When a batch's duplicate searches have their block-mates opened ahead, on a
    /// second thread while the batch is built (`writer::OpenAhead`).
    pub open_ahead: crate::writer::OpenAhead,
    /// sled's page cache for the identity store, in bytes. Proofs, look-ups and the
    /// duplicate search are point reads: sized to hold the store, each is a few
    /// microseconds; beyond it, each cold read costs about 20 (see BENCHMARKS.md).
    pub cache_bytes: u64,
    /// The read cache in front of the identity store, in bytes: resolves' and the
    /// writer's point reads of numbers, persons, agency links and keyring entries, as
    /// stored (sealed, checksummed). 0 turns it off. See `storage::read_cache`.
    pub read_cache_bytes: u64,
    /// Where a rebuild at opening holds its fresh fold: in memory up to a number of
    /// records, beyond it in a scratch store ([`Registry::open_dir`] puts it under the
    /// data directory when none is given).
    pub fold_space: FoldSpace,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            origin: "registry.huduma.go.ke/log".into(),
            filters: IssuanceFilters::default(),
            queue: 16_384,
            max_batch: 256,
            tail_check: 1024,
            checkpoint_interval: std::time::Duration::from_secs(1),
            access_max_batch: 1024,
            duplicate_threshold: Some(crate::dedup::THRESHOLD),
            open_ahead: crate::writer::OpenAhead::WhenCrowded,
            cache_bytes: crate::storage::sled_store::DEFAULT_CACHE_BYTES,
            read_cache_bytes: crate::storage::read_cache::DEFAULT_READ_CACHE_BYTES,
            fold_space: FoldSpace::default(),
        }
    }
}

/// Why the registry could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    ReadCache(#[from] crate::storage::read_cache::ReadCacheError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error("catching the projections up with the log: {0}")]
    Replay(#[from] ReplayError),
    #[error("the tail of the log does not verify: {0}")]
    Tail(#[from] VerifyError),
    #[error("the projections have applied record {applied} but the log ends at {size}: the log lost records")]
    ProjectionsAhead { applied: u64, size: u64 },
    #[error("starting the sequencer: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the log does not match its own signed checkpoint at size {size}: {reason}")]
    Checkpoint { size: u64, reason: String },
    #[error("opening the access log: {0}")]
    Access(#[from] crate::access::AccessOpenError),
    #[error(
        "{0} is an online backup that did not finish (the registry stopped or the copy failed mid-way): not a store; take the backup again"
    )]
    IncompleteBackup(String),
    #[error("the access log {0} is missing: this data directory had one (restore it from the same backup)")]
    AccessMissing(String),
}

/// The open registry.
pub struct Registry {
    store: Arc<dyn Storage>,
    secrets: Arc<Secrets>,
    sequencer: Sequencer,
    tree_cache: Arc<crate::merkle_store::TreeCache>,
    access: AccessLog,
    /// The read cache `store` goes through, when `open_dir` put one there.
    read_cache: Option<Arc<CachedStore>>,
    /// The presence filter in front of `store`, when `open_dir` put one there.
    presence_filter: Option<Arc<FilteredStore>>,
}

/// The access log's store inside a data directory.
pub const ACCESS_DIR: &str = "access";

/// Settings key marking that this data directory has an access log beside it.
const ACCESS_LOG_MARK: &[u8] = b"access_log";

/// The access store's page cache: look-ups of it are by person and recent, so it
/// needs far less than the identity store.
const ACCESS_CACHE_BYTES: u64 = 128 * 1024 * 1024;

impl Registry {
    /// Opens the sled stores under `dir`: the identity log's in `dir`, the access log's
    /// in `dir/access`.
    ///
    /// Once a data directory has had an access log, a missing `access` directory is
    /// refused rather than started afresh (a backup or a copy that left it behind would
    /// otherwise silently lose every citizen's record of look-ups).
    pub fn open_dir(
        dir: &Path,
        secrets: Secrets,
        key: LogKey,
        mut options: RegistryOptions,
    ) -> Result<Self, OpenError> {
        options.fold_space.scratch.get_or_insert_with(|| dir.join(replay::SCRATCH_DIR));
        let sled = SledStore::open_with_cache(dir, options.cache_bytes)?;
        let sled: Arc<dyn Storage> = Arc::new(sled);
        let read_cache = match options.read_cache_bytes {
            0 => None,
            bytes => Some(Arc::new(CachedStore::new(Arc::clone(&sled), bytes)?)),
        };
        let store: Arc<dyn Storage> = match &read_cache {
            Some(cache) => cache.clone(),
            None => sled,
        };
        // Every write's keys enter the filter before the store.
        let presence_filter = Arc::new(FilteredStore::open(store)?);
        // Outermost, so that readers see a batch being written whole, in front of the
        // cache's entries that the batch is about to replace.
        let store: Arc<dyn Storage> = Arc::new(StagedStore::new(presence_filter.clone()));
        if View::new(&*store).get(Tree::Settings, crate::online_backup::INCOMPLETE_MARK)?.is_some() {
            return Err(OpenError::IncompleteBackup(dir.display().to_string()));
        }
        let access_dir = dir.join(ACCESS_DIR);
        let had_access_log = View::new(&*store).get(Tree::Settings, ACCESS_LOG_MARK)?.is_some();
        if had_access_log && !access_dir.exists() {
            return Err(OpenError::AccessMissing(access_dir.display().to_string()));
        }
        let access = Arc::new(SledStore::open_with_cache(&access_dir, ACCESS_CACHE_BYTES)?);
        if !had_access_log {
            let mut view = View::new(&*store);
            view.put(Tree::Settings, ACCESS_LOG_MARK.to_vec(), &[1]);
            store.commit(&view.take_batch(), true)?;
        }
        let mut registry = Self::open(store, access, secrets, key, options)?;
        registry.read_cache = read_cache;
        registry.presence_filter = Some(presence_filter);
        Ok(registry)
    }

    /// Opens the registry on an identity store and an access store.
    pub fn open(
        store: Arc<dyn Storage>,
        access_store: Arc<dyn Storage>,
        secrets: Secrets,
        key: LogKey,
        options: RegistryOptions,
    ) -> Result<Self, OpenError> {
        let secrets = Arc::new(secrets);
        // A batch a crash cut short: undone before anything else reads the store.
        let size = crate::writer::read_head(&*store)?.map_or(0, |h| h.next_seq);
        let began = std::time::Instant::now();
        let rebuilding = "rebuilding the projections";
        let space = &options.fold_space;
        match replay::recover(&*store, &secrets, space, &mut periodic_progress(rebuilding, began))? {
            replay::Recovery::Nothing => {}
            replay::Recovery::Undone { first_seq, records } => tracing::warn!(
                first = first_seq,
                records,
                "the last batch's commit was cut short (a crash): undone; none of its commands had been answered"
            ),
            replay::Recovery::Rebuilt { first_seq, records } => {
                log_finished(rebuilding, size, records, began);
                tracing::warn!(
                    first = first_seq,
                    records,
                    "the last batch's commit was cut short (a crash), under an earlier version's intent: undone, and the projections rebuilt"
                );
            }
        }
        let size = crate::writer::read_head(&*store)?.map_or(0, |h| h.next_seq);
        if size > 0 {
            check_tail(&*store, size, options.tail_check)?;
            let applied = replay::applied(&*store)?;
            match applied {
                Some(applied) if applied >= size => {
                    return Err(OpenError::ProjectionsAhead { applied, size });
                }
                Some(applied) if applied + 1 < size => {
                    tracing::warn!(applied, size, "projections behind the log; folding the tail");
                    with_logged_progress("folding the log's tail", size, |progress| {
                        let mut folded = |done| progress(Reached::log(done, size));
                        replay::fold_log(&*store, &*store, &secrets, applied + 1, &mut folded)
                    })?;
                    store.flush()?;
                }
                None => {
                    // Empty projections, or a rebuild that was interrupted: rebuild.
                    tracing::warn!("projections not marked as applied; rebuilding them from the log");
                    with_logged_progress("rebuilding the projections", size, |progress| {
                        replay::rebuild(&*store, &secrets, space, progress)
                    })?;
                }
                Some(_) => {}
            }
        }
        let issuer = NumberIssuer::new(secrets.number_key(), options.filters.clone());
        let mut writer = Writer::open(Arc::clone(&store), Arc::clone(&secrets), issuer, key, &options.origin)?;
        writer.set_duplicate_threshold(options.duplicate_threshold);
        writer.set_open_ahead(options.open_ahead);
        let reader = Reader::new(Arc::clone(&store), Arc::clone(&secrets));
        let origin = reader.origin().map_err(|e| OpenError::Checkpoint { size: 0, reason: e.to_string() })?;
        let signed = check_last_checkpoint(&reader, writer.head().next_seq)?;
        let origin = origin.unwrap_or_else(|| options.origin.clone());
        let keys: Vec<VerifyingKey> = reader
            .log_keys()
            .map_err(|e| OpenError::Checkpoint { size: 0, reason: e.to_string() })?
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        let access_options = AccessOptions {
            origin: crate::access::origin_for(&origin),
            queue: options.queue,
            max_batch: options.access_max_batch,
            checkpoint_interval: options.checkpoint_interval,
            tail_check: options.tail_check,
        };
        let access = AccessLog::open(
            access_store,
            Arc::clone(&store),
            Arc::clone(&secrets),
            writer.key().clone(),
            &keys,
            access_options,
        )?;
        let checkpoints = Checkpointer::new(origin, "identity", options.checkpoint_interval, signed);
        let sequencer = Sequencer::start(writer, options.queue, options.max_batch, checkpoints)?;
        Ok(Self {
            store,
            secrets,
            sequencer,
            tree_cache: Arc::default(),
            access,
            read_cache: None,
            presence_filter: None,
        })
    }

    pub async fn submit(&self, submission: Submission) -> Result<Outcome, CommandError> {
        self.sequencer.submit(submission).await
    }

    pub fn submit_blocking(&self, submission: Submission) -> Result<Outcome, CommandError> {
        self.sequencer.submit_blocking(submission)
    }

    /// Rotates the log key; the access log signs its later checkpoints with it too.
    pub fn rotate_key_blocking(&self, new_key: LogKey, actor: Actor) -> Result<Outcome, CommandError> {
        let outcome = self.sequencer.rotate_key_blocking(new_key.clone(), actor)?;
        self.access.rotate_key_blocking(new_key);
        Ok(outcome)
    }

    /// The citizen's access log.
    pub fn access(&self) -> &AccessLog {
        &self.access
    }

    /// Follows the durable size of the log (for streams that wait for new records).
    pub fn durable_size(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sequencer.durable_size()
    }

    pub fn reader(&self) -> Reader {
        Reader::with_tree_cache(Arc::clone(&self.store), Arc::clone(&self.secrets), Arc::clone(&self.tree_cache))
    }

    /// The secrets the registry was opened with.
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The read cache's counts, when the store has one (see `storage::read_cache`).
    pub fn read_cache_stats(&self) -> Option<crate::storage::read_cache::ReadCacheStats> {
        self.read_cache.as_ref().map(|cache| cache.stats())
    }

    /// The presence filter's counts, when the store has one (see
    /// `storage::presence_filter`).
    pub fn presence_filter_stats(&self) -> Option<crate::storage::presence_filter::FilterStats> {
        self.presence_filter.as_ref().map(|filter| filter.stats())
    }

    /// Waits until the presence filter has read the keys stored before the open (it
    /// serves from then on; until then every read goes to the store).
    pub fn wait_for_presence_filter(&self) {
        if let Some(filter) = &self.presence_filter {
            filter.wait_ready();
        }
    }

    /// Stops the sequencer after it has committed what was queued.
    pub fn close(mut self) {
        self.sequencer.shutdown();
        self.access.shutdown();
    }
}

/// Checks the identity log against its newest checkpoint (see `checkpointer::check_latest`).
fn check_last_checkpoint(reader: &Reader, size: u64) -> Result<u64, OpenError> {
    let fail = |e: crate::query::QueryError| OpenError::Checkpoint { size: 0, reason: e.to_string() };
    let origin = reader.origin().map_err(fail)?.unwrap_or_default();
    let keys: Vec<VerifyingKey> = reader.log_keys().map_err(fail)?.into_iter().map(|(_, key)| key).collect();
    checkpointer::check_latest(&**reader.store(), size, &origin, &keys)
        .map_err(|e| OpenError::Checkpoint { size: e.size, reason: e.reason })
}

/// How often the work done while opening is logged.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A progress callback for work `Registry::open` does before it serves (a rebuild or
/// a fold of the log's tail: minutes at national scale), logging how far it has got
/// (the stage, log or projections, and how far into it) at most every
/// [`PROGRESS_EVERY`], so an operator watching the log sees it move.
fn periodic_progress(what: &'static str, began: std::time::Instant) -> impl FnMut(Reached) {
    let mut last = began;
    move |Reached { stage, done, total }| {
        let now = std::time::Instant::now();
        if now.duration_since(last) >= PROGRESS_EVERY {
            last = now;
            let seconds = format!("{:.1}", now.duration_since(began).as_secs_f64());
            tracing::info!(stage = stage.name(), done, total, seconds, "{what} before opening");
        }
    }
}

/// The last line of such work: `done` records folded.
fn log_finished(what: &'static str, size: u64, done: u64, began: std::time::Instant) {
    let seconds = format!("{:.1}", began.elapsed().as_secs_f64());
    tracing::info!(done, size, seconds, "{what} before opening: done");
}

/// Runs such work with its progress logged, and a last line when it is done; `work`
/// returns the records it has folded.
fn with_logged_progress<E>(
    what: &'static str,
    size: u64,
    work: impl FnOnce(&mut dyn FnMut(Reached)) -> Result<u64, E>,
) -> Result<u64, E> {
    let began = std::time::Instant::now();
    let done = work(&mut periodic_progress(what, began))?;
    log_finished(what, size, done, began);
    Ok(done)
}

/// Re-verifies the last `count` records' chain and signatures. The chain from the
/// start is `verify`'s job; this catches a torn or altered tail before serving.
fn check_tail(store: &dyn Storage, size: u64, count: u64) -> Result<(), OpenError> {
    let from = size.saturating_sub(count.max(1));
    let view = View::new(store);
    let current_key = view
        .get(Tree::Meta, meta::CURRENT_KEY)?
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok());
    let mut previous: Option<[u8; 32]> = None;
    replay::for_each_record(store, from, |seq, hashed| {
        let record =
            RecordRef::parse(hashed.bytes()).map_err(|e| ReplayError::Record { seq, reason: e.to_string() })?;
        if let Some(previous) = previous
            && record.header.prev_hash != previous
        {
            return Err(ReplayError::Record { seq, reason: "does not name the previous record's hash".into() });
        }
        if seq + 1 == size
            && let Some(key) = &current_key
        {
            let by_current = record.header.key_id == KeyId::of(key);
            // A rotation record is signed by the key before the one now in force; the
            // full `verify` checks it.
            let is_rotation = record.header.kind.kind == kind::LOG_KEY_ROTATED;
            if (by_current && !record.verify_signature(key)) || (!by_current && !is_rotation) {
                return Err(ReplayError::Record { seq, reason: "the last record's signature does not verify".into() });
            }
        }
        previous = Some(*hashed.hash());
        Ok(())
    })?;
    Ok(())
}
