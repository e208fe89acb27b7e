//! A backup taken while the registry serves (`Operations.Backup`): each log copied
//! into a new data directory up to its newest signed checkpoint, with what cannot be
//! derived from the records (the keyring, the request index, the signed checkpoints,
//! the store's settings), and the projections then folded afresh in the copy. Nothing
//! waits for it: it reads the live stores as any reader does, and the sequencer goes on.
//!
//! Why a copy at a checkpoint is consistent although the stores change under it:
//! - the logs, their checkpoints and the access log's index are append-only, so
//!   everything below a size already signed stays as it is while it is read;
//! - a keyring entry is written with the record that registers its person and only
//!   ever replaced (by erasure's tombstone, or a lost key's tombstone by a renewed
//!   key), never removed, so every person the copied log registers has an entry to copy
//!   (checked: as many entries as registrations). A person erased after the copy's size
//!   is copied erased: a restore never brings back what erasure destroyed; a key renewed
//!   after it is copied as the tombstone it replaced;
//! - a request-index entry is kept only if it answered with a record in the copy, so a
//!   retry after a restore never names a record the restored log lacks.
//!
//! Every record copied is checked on the way (its checksum, its sequence number, the
//! previous record's hash), and the tree the copy recomputes must have the root that
//! the checkpoint it stops at signs, under one of the log's keys: a copy is either the
//! signed history or it is refused. Until the copy is whole, its settings carry
//! [`INCOMPLETE_MARK`], which `Registry::open_dir` refuses.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use huduma_log::keys::VerifyingKey;
use huduma_log::merkle::Hash;

use crate::access::record as access_record;
use crate::merkle_store::TreeEdge;
use crate::record::RecordRef;
use crate::registry::{ACCESS_DIR, Registry};
use crate::replay::{self, CHUNK, FoldSpace, Reached};
use crate::secrets::Secrets;
use crate::storage::in_key_order::InKeyOrder;
use crate::storage::sled_store::SledStore;
use crate::storage::view::{Corruption, ReadError, open_record};
use crate::storage::{Storage, StorageError, Tree, WriteBatch, checksum};
use crate::writer::{request_answered_at, seq_key};

/// `settings` key present in a copy until the backup that writes it has finished.
pub const INCOMPLETE_MARK: &[u8] = b"online_backup_incomplete";

/// Which of a data directory's two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogName {
    Identity,
    Access,
}

impl LogName {
    pub fn name(self) -> &'static str {
        match self {
            LogName::Identity => "identity",
            LogName::Access => "access",
        }
    }
}

/// How far a backup has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupProgress {
    /// `done` of the `total` records of a log copied.
    Copying { log: LogName, done: u64, total: u64 },
    /// The projections folded afresh in the copy (as `rebuild` reports).
    Folding(Reached),
}

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakenBackup {
    /// The identity log's records copied: the size of its newest checkpoint when the
    /// backup began.
    pub records: u64,
    /// The access log's records copied, likewise.
    pub access_records: u64,
    /// Keyring entries copied (one per person the copied log registers).
    pub keys: u64,
    /// Request-index entries kept (those answered within the copied log).
    pub requests: u64,
}

/// Why a backup was not taken. The copy it had begun is removed.
#[derive(Debug, thiserror::Error)]
pub enum OnlineBackupError {
    #[error("{0}: not empty: a backup is written into a new directory and never over anything")]
    NotEmpty(String),
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error(
        "the {} log has records but no signed checkpoint yet (one is signed within a second of a write): try again",
        .0.name()
    )]
    NoCheckpoint(LogName),
    #[error("the {} log's newest checkpoint (size {size}): {reason}", log.name())]
    Checkpoint { log: LogName, size: u64, reason: String },
    #[error("the {} log, record {seq}: {reason}", log.name())]
    Record { log: LogName, seq: u64, reason: String },
    #[error("the keyring: {0}")]
    Keyring(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("reading the registry's origin and keys: {0}")]
    Query(#[from] crate::query::QueryError),
    #[error("cancelled (the registry is stopping); the copy begun is removed")]
    Cancelled,
    #[error("folding the copy's projections: {0}")]
    Fold(#[from] replay::ReplayError),
}

impl From<Corruption> for OnlineBackupError {
    fn from(c: Corruption) -> Self {
        OnlineBackupError::Read(c.into())
    }
}

/// Writes a backup of the running `registry` into `out` (new, or an empty directory),
/// reporting progress; on failure, removes what it wrote.
///
/// Setting `cancel` stops it at the copy's next write (the fold in the copy included),
/// with [`OnlineBackupError::Cancelled`]: what a server does when it is stopped.
pub fn take(
    registry: &Registry,
    out: &Path,
    space: &FoldSpace,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<TakenBackup, OnlineBackupError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |cause| OnlineBackupError::Io { path: path.clone(), cause }
    };
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(OnlineBackupError::NotEmpty(out.display().to_string()));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let sources = Sources::of(registry)?;
    let taken = write_copy(&sources, out, space, cancel, progress);
    let taken = match taken {
        Err(_) if cancel.load(Ordering::Relaxed) => Err(OnlineBackupError::Cancelled),
        taken => taken,
    };
    if taken.is_err() {
        // Best effort: what remains of a failed copy is refused when opened anyway.
        if let Err(e) = std::fs::remove_dir_all(out) {
            tracing::warn!(error = %e, dir = %out.display(), "removing a failed backup's copy");
        }
    }
    taken
}

/// What a backup reads from a running registry.
pub(crate) struct Sources {
    pub identity: Arc<dyn Storage>,
    pub access: Arc<dyn Storage>,
    pub secrets: Arc<Secrets>,
    pub origin: String,
    pub access_origin: String,
    /// Every log key the identity log has named; either log's checkpoints are signed
    /// by one of them.
    pub keys: Vec<VerifyingKey>,
}

impl Sources {
    fn of(registry: &Registry) -> Result<Self, OnlineBackupError> {
        let reader = registry.reader();
        let origin = reader.origin()?.unwrap_or_default();
        let keys = reader.log_keys()?.into_iter().map(|(_, key)| key).collect();
        Ok(Self {
            identity: Arc::clone(registry.store()),
            access: Arc::clone(registry.access().reader().store()),
            secrets: Arc::clone(registry.secrets()),
            origin,
            access_origin: registry.access().origin().to_owned(),
            keys,
        })
    }
}

pub(crate) fn write_copy(
    sources: &Sources,
    out: &Path,
    space: &FoldSpace,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<TakenBackup, OnlineBackupError> {
    let copy = Cancellable { inner: SledStore::open(out)?, cancel };
    let access_copy = Cancellable { inner: SledStore::open(&out.join(ACCESS_DIR))?, cancel };
    let mut mark = WriteBatch::default();
    mark.put(Tree::Settings, INCOMPLETE_MARK.to_vec(), checksum::seal(&[1]));
    copy.commit(&mark, true)?;

    let live = &*sources.identity;
    let (records, root) = newest_checkpoint(live, LogName::Identity, &sources.origin, &sources.keys)?;
    let mut registrations = 0u64;
    copy_log(live, &copy, LogName::Identity, records, root, progress, |seq, bytes, _| {
        let record = RecordRef::parse(bytes).map_err(|e| OnlineBackupError::Record {
            log: LogName::Identity,
            seq,
            reason: e.to_string(),
        })?;
        if record.header.kind.kind == huduma_log::events::kind::PERSON_REGISTERED {
            registrations += 1;
        }
        Ok(record.header.prev_hash)
    })?;
    let keys = copy_keyring(live, &copy, records)?;
    if keys != registrations {
        return Err(OnlineBackupError::Keyring(format!(
            "{keys} entries for the {registrations} persons the first {records} records register"
        )));
    }
    let requests = copy_requests(live, &copy, records)?;

    let live_access = &*sources.access;
    let (access_records, access_root) =
        newest_checkpoint(live_access, LogName::Access, &sources.access_origin, &sources.keys)?;
    copy_log(
        live_access,
        &access_copy,
        LogName::Access,
        access_records,
        access_root,
        progress,
        |seq, bytes, batch| {
            let header = access_record::parse(bytes).map_err(|e| OnlineBackupError::Record {
                log: LogName::Access,
                seq,
                reason: e.to_string(),
            })?;
            if let Some(index) = crate::access::writer::indexed_under(&header.subject, seq) {
                batch.put(Tree::AccessBySubject, index, checksum::seal(&[]));
            }
            Ok(header.prev)
        },
    )?;
    copy_all(live_access, &access_copy, Tree::Meta)?;
    access_copy.flush()?;

    let mut folding = |reached| progress(BackupProgress::Folding(reached));
    let mut copy_space = space.clone();
    copy_space.scratch = Some(out.join(replay::SCRATCH_DIR));
    replay::rebuild(&copy, &sources.secrets, &copy_space, &mut folding)?;
    if let Some(scratch) = &copy_space.scratch
        && scratch.exists()
    {
        std::fs::remove_dir_all(scratch)
            .map_err(|cause| OnlineBackupError::Io { path: scratch.display().to_string(), cause })?;
    }

    // Last: the store's settings, and the mark of an unfinished copy removed with them.
    copy_all(live, &copy, Tree::Settings)?;
    let mut finished = WriteBatch::default();
    finished.remove(Tree::Settings, INCOMPLETE_MARK.to_vec());
    copy.commit(&finished, true)?;
    copy.flush()?;
    Ok(TakenBackup { records, access_records, keys, requests })
}

/// The copy's store, whose writes fail once `cancel` is set, so that a cancelled
/// backup stops at its next write, the fold in the copy included.
struct Cancellable<'a> {
    inner: SledStore,
    cancel: &'a AtomicBool,
}

impl Storage for Cancellable<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(tree, key)
    }

    crate::forward_scans!(inner);

    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(StorageError::Engine("the backup was cancelled".into()));
        }
        self.inner.commit(batch, durable)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

/// The size and root of a log's newest checkpoint, its signature checked.
fn newest_checkpoint(
    store: &dyn Storage,
    log: LogName,
    origin: &str,
    keys: &[VerifyingKey],
) -> Result<(u64, Hash), OnlineBackupError> {
    let Some((size, note)) = crate::checkpointer::latest(store)? else {
        // A log never written to (the access log before any look-up) is backed up empty.
        return match store.last(Tree::Log)? {
            None => Ok((0, TreeEdge::new().root())),
            Some(_) => Err(OnlineBackupError::NoCheckpoint(log)),
        };
    };
    let signed = crate::checkpointer::signed_by_any(&note, origin, keys)
        .ok_or_else(|| OnlineBackupError::Checkpoint { log, size, reason: "no log key's signature verifies".into() })?;
    if signed.size != size {
        return Err(OnlineBackupError::Checkpoint {
            log,
            size,
            reason: format!("is stored at size {size} but signs size {}", signed.size),
        });
    }
    Ok((size, signed.root))
}

/// Copies records `0..size` of a log as stored, with the tree entries they derive and
/// the checkpoints up to `size`; checks each record's checksum, sequence number and
/// chain (`each` returns the previous hash a record names, and may add what else a
/// record derives), and the recomputed root against the signed `root`.
fn copy_log(
    live: &dyn Storage,
    copy: &dyn Storage,
    log: LogName,
    size: u64,
    root: Hash,
    progress: &mut dyn FnMut(BackupProgress),
    mut each: impl FnMut(u64, &[u8], &mut WriteBatch) -> Result<[u8; 32], OnlineBackupError>,
) -> Result<(), OnlineBackupError> {
    let fail = |seq: u64, reason: String| OnlineBackupError::Record { log, seq, reason };
    let mut edge = TreeEdge::new();
    let mut batch = WriteBatch::default();
    let mut previous: Option<[u8; 32]> = None;
    let mut next = 0u64;
    for entry in InKeyOrder::new(live, Tree::Log, &seq_key(0), CHUNK) {
        if next == size {
            break;
        }
        let (key, stored) = entry?;
        if key.as_slice() != seq_key(next) {
            return Err(fail(next, "missing (the sequence has a gap)".into()));
        }
        batch.put(Tree::Log, key.clone(), stored.clone());
        let record = open_record(&key, stored).map_err(|c| fail(next, c.reason))?;
        let names = each(next, record.bytes(), &mut batch)?;
        if previous.is_some_and(|previous| previous != names) {
            return Err(fail(next, "does not name the previous record's hash".into()));
        }
        previous = Some(*record.hash());
        for (tree, key, value) in edge.push(next, record.bytes()).map_err(|c| fail(next, c.reason))? {
            batch.put(tree, key, checksum::seal(&value));
        }
        next += 1;
        if batch.len() >= CHUNK {
            copy.commit(&std::mem::take(&mut batch), false)?;
            progress(BackupProgress::Copying { log, done: next, total: size });
        }
    }
    if next < size {
        return Err(fail(next, format!("missing: the log ends before its checkpoint's size {size}")));
    }
    if edge.root() != root {
        return Err(OnlineBackupError::Checkpoint {
            log,
            size,
            reason: "the records read have another root than the one it signs".into(),
        });
    }
    for entry in InKeyOrder::new(live, Tree::Checkpoints, &[], CHUNK) {
        let (key, stored) = entry?;
        let at = <[u8; 8]>::try_from(key.as_slice()).map(u64::from_be_bytes).unwrap_or(u64::MAX);
        if at > size {
            break;
        }
        batch.put(Tree::Checkpoints, key, stored);
    }
    copy.commit(&batch, false)?;
    copy.flush()?;
    progress(BackupProgress::Copying { log, done: size, total: size });
    Ok(())
}

/// What [`copy_entries`] does with an entry.
enum Take {
    Copy,
    /// Copy this stored value in the entry's place.
    Replace(Vec<u8>),
    Skip,
    /// Stop: no later entry (in key order) is copied.
    Stop,
}

/// Copies the entries of `tree` that `take` says to, in chunks; returns how many.
fn copy_entries(
    live: &dyn Storage,
    copy: &dyn Storage,
    tree: Tree,
    mut take: impl FnMut(&[u8], &[u8]) -> Result<Take, OnlineBackupError>,
) -> Result<u64, OnlineBackupError> {
    let mut batch = WriteBatch::default();
    let mut count = 0u64;
    for entry in InKeyOrder::new(live, tree, &[], CHUNK) {
        let (key, stored) = entry?;
        let stored = match take(&key, &stored)? {
            Take::Copy => stored,
            Take::Replace(value) => value,
            Take::Skip => continue,
            Take::Stop => break,
        };
        batch.put(tree, key, stored);
        count += 1;
        if batch.len() >= CHUNK {
            copy.commit(&std::mem::take(&mut batch), false)?;
        }
    }
    copy.commit(&batch, false)?;
    Ok(count)
}

/// Copies the keyring entries of persons `0..size` (a person's id is the sequence
/// number of the record that registered them), each checked; returns how many. A key
/// renewed by a record past `size` is copied as the tombstone it replaced: in the
/// copy, the person's key is still lost (and no store holds a renewal past its log).
fn copy_keyring(live: &dyn Storage, copy: &dyn Storage, size: u64) -> Result<u64, OnlineBackupError> {
    copy_entries(live, copy, Tree::Keyring, |key, stored| {
        let person = <[u8; 8]>::try_from(key)
            .map(u64::from_be_bytes)
            .map_err(|_| Corruption::new(Tree::Keyring, key, "not a person id"))?;
        if person >= size {
            return Ok(Take::Stop);
        }
        let entry = crate::storage::view::open_value(Tree::Keyring, key, stored)?;
        if crate::keyring::renewed_from(&entry).is_some_and(|from| from >= size) {
            return Ok(Take::Replace(checksum::seal(&crate::keyring::erased_entry())));
        }
        Ok(Take::Copy)
    })
}

/// Copies the request-index entries that answered with a record below `size`; returns
/// how many.
fn copy_requests(live: &dyn Storage, copy: &dyn Storage, size: u64) -> Result<u64, OnlineBackupError> {
    copy_entries(live, copy, Tree::Requests, |key, stored| {
        Ok(if request_answered_at(key, stored)? < size { Take::Copy } else { Take::Skip })
    })
}

/// Copies a whole (small) tree as stored.
fn copy_all(live: &dyn Storage, copy: &dyn Storage, tree: Tree) -> Result<(), OnlineBackupError> {
    let mut batch = WriteBatch::default();
    for (key, stored) in live.scan_prefix(tree, &[])? {
        batch.put(tree, key, stored);
    }
    copy.commit(&batch, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Submission};
    use crate::event::Actor;
    use crate::keys::LogKey;
    use crate::registry::RegistryOptions;
    use crate::storage::memory::MemoryStore;
    use crate::{HudumaNumber, PersonId};

    fn secrets() -> Secrets {
        Secrets::from_master([42; 32])
    }

    fn key() -> LogKey {
        LogKey::from_seed([11; 32])
    }

    fn open(dir: &Path) -> Registry {
        Registry::open_dir(dir, secrets(), key(), RegistryOptions::default()).unwrap()
    }

    #[test]
    fn a_key_renewed_past_the_copy_is_copied_as_the_tombstone_it_replaced() {
        use crate::keyring::{KeyringEntry, erased_entry, open_entry, seal_entry, seal_renewed_entry};
        use crate::sealed::DataKey;
        let secrets = secrets();
        let live = MemoryStore::new();
        let (kept, renewed) = (DataKey::generate(), DataKey::generate());
        let mut batch = WriteBatch::default();
        let entry = |person: u64, value: Vec<u8>| (crate::projection::state::person_key(PersonId(person)), value);
        for (key, value) in [
            entry(1, seal_entry(secrets.keyring_key(), PersonId(1), &kept)),
            entry(2, erased_entry()),
            entry(3, seal_renewed_entry(secrets.keyring_key(), PersonId(3), &renewed, 10)),
        ] {
            batch.put(Tree::Keyring, key, checksum::seal(&value));
        }
        live.commit(&batch, true).unwrap();
        let copied = |size: u64| {
            let copy = MemoryStore::new();
            assert_eq!(copy_keyring(&live, &copy, size).unwrap(), 3);
            let stored = copy.get(Tree::Keyring, &crate::projection::state::person_key(PersonId(3))).unwrap().unwrap();
            open_entry(secrets.keyring_key(), PersonId(3), checksum::open(&stored).unwrap()).unwrap()
        };
        assert_eq!(copied(10), KeyringEntry::Erased, "renewed by record 10, which a copy of 10 records lacks");
        assert_eq!(copied(11), KeyringEntry::Renewed { key: DataKey(renewed.0), from_seq: 10 });
    }

    fn submit(registry: &Registry, id: &str, command: Command) -> Option<HudumaNumber> {
        let actor = Actor { principal: "registrar".into(), via: "GPO-NAIROBI".into() };
        registry.submit_blocking(Submission { request_id: id.into(), actor, command }).unwrap().number
    }

    /// Every entry of `store`, copied into memory.
    fn copied(store: &dyn Storage) -> Arc<MemoryStore> {
        let memory = MemoryStore::new();
        let mut batch = WriteBatch::default();
        for tree in Tree::ALL {
            for (key, value) in store.scan_prefix(tree, &[]).unwrap() {
                batch.put(tree, key, value);
            }
        }
        memory.commit(&batch, true).unwrap();
        Arc::new(memory)
    }

    /// A registry of three persons (a checkpoint at its 4 records, record 0 being the
    /// log's initialisation), then person 2 erased in record 4 with its checkpoint
    /// taken away: the stores as a backup finds them when the erasure lands after the
    /// newest checkpoint it copies to. Returns the sources and person 2's number.
    fn erased_after_the_checkpoint(dir: &Path) -> (Sources, HudumaNumber) {
        let registry = open(dir);
        let numbers: Vec<_> = (0..3)
            .map(|i| {
                let demographics = crate::synthetic::distinct_person(i);
                submit(&registry, &format!("r-{i}"), Command::RegisterPerson { demographics }).unwrap()
            })
            .collect();
        registry.close();
        let registry = open(dir);
        let erase = Command::ErasePersonalData { number: numbers[2], legal_basis: "DPA 2019 s.40".into() };
        submit(&registry, "erase", erase);
        registry.close();
        let registry = open(dir);
        let mut sources = Sources::of(&registry).unwrap();
        sources.identity = copied(&*sources.identity);
        sources.access = copied(&*sources.access);
        registry.close();
        let mut after = WriteBatch::default();
        after.remove(Tree::Checkpoints, 5u64.to_be_bytes().to_vec());
        sources.identity.commit(&after, true).unwrap();
        assert_eq!(crate::checkpointer::latest(&*sources.identity).unwrap().map(|(size, _)| size), Some(4));
        (sources, numbers[2])
    }

    #[test]
    fn a_person_erased_after_the_checkpoint_copied_to_is_copied_erased_and_the_copy_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (sources, erased) = erased_after_the_checkpoint(dir.path());
        let out = tempfile::tempdir().unwrap();
        let taken =
            write_copy(&sources, out.path(), &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |_| ()).unwrap();
        assert_eq!((taken.records, taken.keys), (4, 3));
        let restored = open(out.path());
        let person = restored.reader().resolve_number(erased).unwrap().unwrap();
        // The erasure is not in the copy's log, but the key it destroyed is not either.
        assert_eq!(person.status, crate::query::ResolvedStatus::Active);
        assert_eq!(person.demographics, None);
        let first = restored.reader().resolve_number(submit_number(&restored, 0)).unwrap().unwrap();
        assert_eq!(first.demographics, Some(crate::synthetic::distinct_person(0)));
        let report = crate::verify::verify_store(
            &**restored.store(),
            Some(key().public()),
            Some(&secrets()),
            &FoldSpace::IN_MEMORY,
            &mut |_| (),
        );
        assert!(report.is_ok(), "{report:?}");
        restored.close();
    }

    /// Alters record `seq` of `store` and seals it again, so that its checksum holds.
    fn alter_record(store: &dyn Storage, seq: u64, alter: impl FnOnce(&mut Vec<u8>)) {
        let key = seq_key(seq);
        let stored = store.get(Tree::Log, &key).unwrap().unwrap();
        let mut bytes = checksum::open(&stored).unwrap().to_vec();
        alter(&mut bytes);
        let mut batch = WriteBatch::default();
        batch.put(Tree::Log, key.to_vec(), checksum::seal(&bytes));
        store.commit(&batch, true).unwrap();
    }

    /// The number the copy answers request `r-{i}` with (a replayed answer).
    fn submit_number(registry: &Registry, i: u64) -> HudumaNumber {
        let demographics = crate::synthetic::distinct_person(i);
        submit(registry, &format!("r-{i}"), Command::RegisterPerson { demographics }).unwrap()
    }

    #[test]
    fn a_record_altered_in_the_live_store_is_named_and_nothing_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (sources, _) = erased_after_the_checkpoint(dir.path());
        // Record 2's link to record 1 altered, and sealed again: its checksum holds, the
        // chain does not.
        alter_record(&*sources.identity, 2, |bytes| bytes[20] ^= 1);
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("copy");
        match take_from(&sources, &out) {
            Err(OnlineBackupError::Record { log: LogName::Identity, seq: 2, reason }) => {
                assert!(reason.contains("previous record's hash"), "{reason}")
            }
            other => panic!("expected record 2 named, got {other:?}"),
        }
        assert!(!out.exists(), "a failed copy is removed");
    }

    #[test]
    fn the_last_record_altered_is_caught_by_the_signed_root() {
        let dir = tempfile::tempdir().unwrap();
        let (sources, _) = erased_after_the_checkpoint(dir.path());
        // Record 3, the last the checkpoint covers: no later record's link names it.
        alter_record(&*sources.identity, 3, |bytes| {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        });
        let out = tempfile::tempdir().unwrap();
        match write_copy(&sources, out.path(), &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |_| ()) {
            Err(OnlineBackupError::Checkpoint { log: LogName::Identity, size: 4, reason }) => {
                assert!(reason.contains("another root"), "{reason}")
            }
            other => panic!("expected the checkpoint's root to refuse it, got {other:?}"),
        }
    }

    #[test]
    fn a_keyring_missing_a_registered_person_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (sources, _) = erased_after_the_checkpoint(dir.path());
        let mut batch = WriteBatch::default();
        batch.remove(Tree::Keyring, crate::projection::state::person_key(PersonId(1)));
        sources.identity.commit(&batch, true).unwrap();
        let out = tempfile::tempdir().unwrap();
        match write_copy(&sources, out.path(), &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |_| ()) {
            Err(OnlineBackupError::Keyring(why)) => assert!(why.contains("2 entries for the 3 persons"), "{why}"),
            other => panic!("expected the keyring refused, got {other:?}"),
        }
    }

    /// [`take`]'s handling of its target around [`write_copy`], from given sources.
    fn take_from(sources: &Sources, out: &Path) -> Result<TakenBackup, OnlineBackupError> {
        std::fs::create_dir_all(out).unwrap();
        let taken = write_copy(sources, out, &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |_| ());
        if taken.is_err() {
            std::fs::remove_dir_all(out).unwrap();
        }
        taken
    }
}
