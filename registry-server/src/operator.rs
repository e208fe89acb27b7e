//! The operator's commands, as library functions the binary calls: verify, rebuild,
//! rotate the log key, export the log, and the synthetic load. Each takes the loaded
//! configuration; verify, rebuild and export work on the store directly and need the
//! registry stopped (sled locks the data directory).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_core::access::verify::AccessSummary;
use registry_core::command::{CommandError, Outcome};
use registry_core::event::Actor;
use registry_core::keys::{KeyId, LogKey, VerifyingKey, note_verifier_key};
use registry_core::log_export;
use registry_core::registry::{OpenError, Registry, RegistryOptions};
use registry_core::replay::{self, Reached, ReplayError};
use registry_core::storage::StorageError;
use registry_core::storage::sled_store::SledStore;
use registry_core::verify::{VerifyError, VerifyReport, verify_store};

use crate::config::{ConfigError, Loaded, write_log_key};
use crate::synthetic;

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error(transparent)]
    Access(#[from] registry_core::access::verify::AccessVerifyError),
    #[error(transparent)]
    Query(#[from] registry_core::query::QueryError),
    #[error(transparent)]
    TailImport(#[from] registry_core::tail_import::TailImportError),
}

pub fn options(loaded: &Loaded) -> RegistryOptions {
    RegistryOptions {
        origin: loaded.config.server.origin.clone(),
        max_batch: loaded.config.server.max_batch,
        checkpoint_interval: std::time::Duration::from_millis(loaded.config.server.checkpoint_interval_ms),
        cache_bytes: loaded.config.server.cache_bytes(),
        read_cache_bytes: loaded.config.server.read_cache_bytes(),
        fold_space: loaded.config.server.fold_space(),
        ..RegistryOptions::default()
    }
}

/// Opens the identity store with the configured page cache.
fn open_identity_store(loaded: &Loaded) -> Result<SledStore, StorageError> {
    SledStore::open_with_cache(&loaded.config.server.data_dir, loaded.config.server.cache_bytes())
}

/// The most page cache a command that reads the identity store through once (`verify`,
/// `export`) is given, whatever `cache_mb` says: it reads each page once, so a larger
/// cache only holds what it will not read again. At 1,000,000 persons, `verify` ran
/// as fast with 128 MiB as with the default 512 MiB or with 2 GiB, at a peak 0.7 GB
/// lower than with 512 (1.41 against 2.12 GB; BENCHMARKS.md).
const ONE_PASS_CACHE_BYTES: u64 = 128 << 20;

/// The page cache for a command that reads the store through once, given the
/// configured one.
fn one_pass_cache_bytes(configured: u64) -> u64 {
    configured.min(ONE_PASS_CACHE_BYTES)
}

/// Opens the identity store for a command that reads it through once, with the page
/// cache [`one_pass_cache_bytes`] gives.
fn open_identity_store_for_one_pass(loaded: &Loaded) -> Result<SledStore, StorageError> {
    SledStore::open_with_cache(&loaded.config.server.data_dir, one_pass_cache_bytes(loaded.config.server.cache_bytes()))
}

/// Opens the registry (writing record 0 on first use).
pub fn open_registry(loaded: &Loaded) -> Result<Registry, OperatorError> {
    Ok(Registry::open_dir(&loaded.config.server.data_dir, loaded.secrets()?, loaded.log_key()?, options(loaded))?)
}

/// Verifies the identity log from its genesis key and the projections against a
/// fresh fold, then the access log (chain, tree, checkpoints under the log's keys,
/// per-person index). `progress(log, reached)`, `log` naming the log ("identity",
/// "access").
pub fn verify(
    loaded: &Loaded,
    genesis: Option<VerifyingKey>,
    progress: &mut dyn FnMut(&str, Reached),
) -> Result<(VerifyReport, AccessSummary), OperatorError> {
    let store: Arc<dyn registry_core::storage::Storage> = Arc::new(open_identity_store_for_one_pass(loaded)?);
    let report =
        verify_store(&*store, genesis, Some(&loaded.secrets()?), &loaded.config.server.fold_space(), &mut |reached| {
            progress("identity", reached)
        })?;
    let AccessLogStore { store: access, origin, keys } = open_access_log_store(loaded, store)?;
    let total = registry_core::access::writer::read_head(&access).map_err(registry_core::query::QueryError::from)?;
    let summary = registry_core::access::verify::verify(&access, &origin, &keys, &mut |done| {
        progress("access", Reached::log(done, total.next_seq))
    })?;
    Ok((report, summary))
}

/// After a restore: appends the records an export of the log holds past the store's
/// end, once the whole export verifies (from `genesis`) and holds the store's own
/// records (`registry_core::tail_import`), then opens the registry once, which folds
/// them into the projections. The registry must be stopped.
///
/// `access`, if given, is an export of the access log and the signed checkpoint of it
/// that vouches for its records (`huduma audit --log access records` and `checkpoint`):
/// its records past the access store's end are taken back too, checked against that
/// checkpoint under the identity log's keys.
pub fn restore_tail(
    loaded: &Loaded,
    export: &Path,
    genesis: Option<VerifyingKey>,
    access: Option<(&Path, &Path)>,
    progress: &mut dyn FnMut(&str, Reached),
) -> Result<RestoredTails, OperatorError> {
    use registry_core::tail_import::{import_access_tail, import_tail};
    let store: Arc<dyn registry_core::storage::Storage> = Arc::new(open_identity_store_for_one_pass(loaded)?);
    let identity = import_tail(&*store, export, genesis, &mut |reached| progress("identity", reached))?;
    let access = match access {
        Some((records, checkpoint)) => {
            let note = std::fs::read_to_string(checkpoint)
                .map_err(|cause| OperatorError::Io { path: checkpoint.display().to_string(), cause })?;
            let AccessLogStore { store: access, origin, keys } = open_access_log_store(loaded, store)?;
            Some(import_access_tail(&access, records, &note, &origin, &keys, &mut |reached| {
                progress("access", reached)
            })?)
        }
        None => {
            drop(store);
            None
        }
    };
    open_registry(loaded)?.close();
    Ok(RestoredTails { identity, access })
}

/// The access log's store beside an identity store, with what checks it: its origin
/// and every log key the identity log has named (they sign its checkpoints too).
struct AccessLogStore {
    store: SledStore,
    origin: String,
    keys: Vec<VerifyingKey>,
}

/// Opens the access log's store of `loaded`'s data directory, reading its origin and
/// keys from the identity store, which it then lets go.
fn open_access_log_store(
    loaded: &Loaded,
    identity: Arc<dyn registry_core::storage::Storage>,
) -> Result<AccessLogStore, OperatorError> {
    let reader = registry_core::query::Reader::new(identity, Arc::new(loaded.secrets()?));
    let keys = reader.log_keys()?.into_iter().map(|(_, key)| key).collect();
    let origin = registry_core::access::origin_for(&reader.origin()?.unwrap_or_default());
    let store = SledStore::open(&loaded.config.server.data_dir.join(registry_core::registry::ACCESS_DIR))?;
    Ok(AccessLogStore { store, origin, keys })
}

/// What `restore_tail` took back: of the identity log, and of the access log if asked.
#[derive(Debug, Clone, Copy)]
pub struct RestoredTails {
    pub identity: registry_core::tail_import::TailImported,
    pub access: Option<registry_core::tail_import::TailImported>,
}

/// Rebuilds the projections from the log; `progress` as records fold, then as each
/// projection is compared and repaired.
pub fn rebuild(loaded: &Loaded, progress: &mut dyn FnMut(Reached)) -> Result<u64, OperatorError> {
    let store = open_identity_store(loaded)?;
    Ok(replay::rebuild(&store, &loaded.secrets()?, &loaded.config.server.fold_space(), progress)?)
}

/// Undoes a batch whose commit a crash cut short, without serving
/// (`replay::recover`); `progress` while an earlier version's intent is undone with a
/// rebuild.
pub fn recover(loaded: &Loaded, progress: &mut dyn FnMut(Reached)) -> Result<replay::Recovery, OperatorError> {
    let store = open_identity_store(loaded)?;
    Ok(replay::recover(&store, &loaded.secrets()?, &loaded.config.server.fold_space(), progress)?)
}

/// Writes every record to `out` in the export format.
pub fn export(loaded: &Loaded, out: &Path) -> Result<u64, OperatorError> {
    let store = open_identity_store_for_one_pass(loaded)?;
    // Before the file is created: a refused export leaves nothing behind.
    log_export::check_exportable(&store)?;
    let io = |cause| OperatorError::Io { path: out.display().to_string(), cause };
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let count = log_export::export_log(&store, &mut file)?;
    file.flush().map_err(io)?;
    Ok(count)
}

/// What a rotation did.
pub struct Rotation {
    pub outcome: Outcome,
    pub old: KeyId,
    pub new_verifier_key: String,
}

/// Rotates the log key: a new key is written beside the old (`<log_key>.next`), the
/// rotation record is committed, then the new key replaces the old file, which is kept
/// as `<log_key>.retired-<key id>`. If this is interrupted after the commit, the
/// registry refuses the old key and the operator moves `.next` into place.
pub fn rotate_key(loaded: &Loaded, actor: Actor) -> Result<Rotation, OperatorError> {
    let key_path = &loaded.config.keys.log_key;
    let old = loaded.log_key()?;
    let beside = |suffix: String| std::path::PathBuf::from(format!("{}.{suffix}", key_path.display()));
    let next_path = beside("next".into());
    let new = LogKey::generate();
    write_log_key(&next_path, &loaded.config.server.origin, &new)?;
    let registry = open_registry(loaded)?;
    let outcome = registry.rotate_key_blocking(new.clone(), actor)?;
    registry.close();
    let retired = beside(format!("retired-{}", hex(&old.id().0)));
    let io = |cause| OperatorError::Io { path: key_path.display().to_string(), cause };
    std::fs::rename(key_path, &retired).map_err(io)?;
    std::fs::rename(&next_path, key_path).map_err(io)?;
    Ok(Rotation {
        outcome,
        old: old.id(),
        new_verifier_key: note_verifier_key(&loaded.config.server.origin, &new.public()),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Called with the index and the answer of each registration once it is durable.
pub type OnAck = Arc<dyn Fn(u64, &Outcome) + Send + Sync>;

/// What a load run achieved.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub accepted: u64,
    pub refused: u64,
    /// The first refusal (lowest index), or a submitter that stopped, when any.
    pub first_refusal: Option<String>,
    pub elapsed: Duration,
}

/// Submits `count` synthetic registrations (indices `start..start+count`) with
/// `concurrency` submitters; `on_ack(i, outcome)` is called once each is durable.
pub async fn load(
    registry: Arc<Registry>,
    run: &str,
    start: u64,
    count: u64,
    concurrency: usize,
    on_ack: OnAck,
) -> LoadReport {
    let began = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(start));
    let end = start + count;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (registry, next, on_ack, run) = (registry.clone(), next.clone(), on_ack.clone(), run.to_string());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut refused, mut first_refusal) = (0u64, 0u64, None);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= end {
                    break;
                }
                match registry.submit(synthetic::registration(&run, i)).await {
                    Ok(outcome) => {
                        accepted += 1;
                        on_ack(i, &outcome);
                    }
                    Err(e) => {
                        refused += 1;
                        tracing::warn!(i, error = %e, "registration refused");
                        first_refusal.get_or_insert((i, e.to_string()));
                    }
                }
            }
            (accepted, refused, first_refusal)
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    let mut first: Option<(u64, String)> = None;
    let mut stopped: Option<String> = None;
    for task in tasks {
        match task.await {
            Ok((a, r, theirs)) => {
                accepted += a;
                refused += r;
                if let Some((i, reason)) = theirs
                    && first.as_ref().is_none_or(|(j, _)| i < *j)
                {
                    first = Some((i, reason));
                }
            }
            // A submitter that panicked: what it had not counted is not known to be in.
            Err(e) => stopped = Some(format!("a submitter stopped: {e}")),
        }
    }
    let first_refusal = stopped.or_else(|| first.map(|(i, reason)| format!("registration {i}: {reason}")));
    LoadReport { accepted, refused, first_refusal, elapsed: began.elapsed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_pass_command_keeps_a_small_configured_cache_and_caps_a_large_one() {
        assert_eq!(one_pass_cache_bytes(16 << 20), 16 << 20);
        assert_eq!(one_pass_cache_bytes(ONE_PASS_CACHE_BYTES), ONE_PASS_CACHE_BYTES);
        assert_eq!(one_pass_cache_bytes(512 << 20), ONE_PASS_CACHE_BYTES);
        assert_eq!(one_pass_cache_bytes(1 << 40), ONE_PASS_CACHE_BYTES);
    }
}
