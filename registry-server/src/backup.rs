//! `huduma-registry backup`: a copy of the data directory at rest (the identity store
//! and the access log's store beside it), taken while holding the stores' own locks so
//! that no registry can open them mid-copy, every file synced, and then checked: the
//! copy's logs must be as long as the store's were, with the same newest signed
//! checkpoints, and still produce them. The master secret and the log key live outside
//! the data directory and are not copied (they are kept apart on purpose: see
//! docs/OPERATIONS.md, "Backups").

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use registry_core::checkpointer::{self, CheckpointMismatch};
use registry_core::keys::VerifyingKey;
use registry_core::query::{QueryError, Reader};
use registry_core::registry::ACCESS_DIR;
use registry_core::replay::SCRATCH_DIR;
use registry_core::secrets::Secrets;
use registry_core::storage::StorageError;
use registry_core::storage::sled_store::{LOCK_WAIT, SledStore};

/// The file of a sled store that sled locks while the store is open.
const LOCKED_FILE: &str = "db";

/// Why a backup was not taken, or its copy does not check out.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}: there is no store there (data_dir names no data directory a registry has opened)")]
    NoStore(String),
    #[error(
        "{0}: the store is in use (a running registry holds it): this backup copies the store at rest, so stop the registry first; or have the running registry back itself up (`huduma backup NAME`, as an admin)"
    )]
    InUse(String),
    #[error(
        "the copy differs from the store: {what} {copy} in the copy, {store} in the store; the copy is not a backup"
    )]
    Differs { what: &'static str, store: u64, copy: u64 },
    #[error("{0}: not empty: a backup is written into a new directory and never over anything")]
    NotEmpty(String),
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("{dir}: the {log} log: {cause}")]
    Checkpoint { dir: String, log: &'static str, cause: CheckpointMismatch },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |cause| BackupError::Io { path: path.display().to_string(), cause }
}

/// The sizes of a data directory's two logs and of what their newest checkpoints sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub records: u64,
    pub checkpoint: u64,
    pub access_records: u64,
    pub access_checkpoint: u64,
}

/// What a backup copied, and the sizes the copy was checked to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub files: u64,
    pub bytes: u64,
    pub sizes: Sizes,
}

/// Holds the lock of the store at `dir` (the one sled takes), if there is a store,
/// waiting for it as `SledStore::open` does ([`LOCK_WAIT`]: sled lets go of it some
/// moments after a store is closed).
fn lock_store(dir: &Path) -> Result<Option<File>, BackupError> {
    let path = dir.join(LOCKED_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => return Err(BackupError::InUse(dir.display().to_string())),
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
    }
}

/// The files under `dir` to copy, with their sizes (paths relative to `dir`), leaving
/// out a fold's scratch store, which only a running `verify` or `rebuild` uses.
fn files_under(dir: &Path) -> Result<Vec<(PathBuf, u64)>, BackupError> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let here = dir.join(&relative);
        for entry in std::fs::read_dir(&here).map_err(io(&here))? {
            let entry = entry.map_err(io(&here))?;
            let path = relative.join(entry.file_name());
            if path == Path::new(SCRATCH_DIR) {
                continue;
            }
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                found.push((path, entry.metadata().map_err(io(&entry.path()))?.len()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Copies the data directory `data` into `out` (which must be new or empty) while
/// holding both stores' locks, syncing every file and directory; then checks that the
/// copy's logs are as long as the store's, with the same newest checkpoints, which
/// they still produce. `progress(copied, total)` hears the bytes.
pub fn backup(
    data: &Path,
    out: &Path,
    secrets: Secrets,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Backup, BackupError> {
    if !data.join(LOCKED_FILE).exists() {
        return Err(BackupError::NoStore(data.display().to_string()));
    }
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::NotEmpty(out.display().to_string()));
    }
    let secrets = Arc::new(secrets);
    // What the copy must hold; reading it checks the store as a registry's open does.
    let expected = sizes(data, &secrets).map_err(|e| match e {
        BackupError::Storage(StorageError::InUse(_)) => BackupError::InUse(data.display().to_string()),
        e => e,
    })?;
    let locks = [lock_store(data)?, lock_store(&data.join(ACCESS_DIR))?];
    let files = files_under(data)?;
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let mut copied = 0u64;
    let mut dirs = vec![out.to_path_buf()];
    for (relative, size) in &files {
        let (from, to) = (data.join(relative), out.join(relative));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
            if !dirs.iter().any(|d| d == parent) {
                dirs.push(parent.to_path_buf());
            }
        }
        std::fs::copy(&from, &to).map_err(io(&from))?;
        File::open(&to).and_then(|f| f.sync_all()).map_err(io(&to))?;
        copied += size;
        progress(copied, total);
    }
    // The directories' entries too, so that a crash just after leaves whole files.
    for dir in &dirs {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    drop(locks);
    let found = sizes(out, &secrets)?;
    let pairs = [
        ("identity log records", expected.records, found.records),
        ("identity checkpoint size", expected.checkpoint, found.checkpoint),
        ("access log records", expected.access_records, found.access_records),
        ("access checkpoint size", expected.access_checkpoint, found.access_checkpoint),
    ];
    if let Some((what, store, copy)) = pairs.into_iter().find(|(_, store, copy)| store != copy) {
        return Err(BackupError::Differs { what, store, copy });
    }
    Ok(Backup { files: files.len() as u64, bytes: total, sizes: found })
}

/// Opens the data directory `dir` and checks that each log produces its newest signed
/// checkpoint (as the registry checks when it opens): the logs' and checkpoints' sizes.
fn sizes(dir: &Path, secrets: &Arc<Secrets>) -> Result<Sizes, BackupError> {
    let at = |log: &'static str| move |cause| BackupError::Checkpoint { dir: dir.display().to_string(), log, cause };
    let store = Arc::new(SledStore::open(dir)?);
    let reader = Reader::new(Arc::clone(&store) as Arc<dyn registry_core::storage::Storage>, Arc::clone(secrets));
    let records = registry_core::replay::log_size(&*store)?;
    let origin = reader.origin()?.unwrap_or_default();
    let keys: Vec<VerifyingKey> = reader.log_keys()?.into_iter().map(|(_, key)| key).collect();
    let checkpoint = checkpointer::check_latest(&*store, records, &origin, &keys).map_err(at("identity"))?;
    // A store no registry has opened since the access log came has none yet (and
    // reading one must not make one).
    if !dir.join(ACCESS_DIR).join(LOCKED_FILE).exists() {
        return Ok(Sizes { records, checkpoint, access_records: 0, access_checkpoint: 0 });
    }
    let access = SledStore::open(&dir.join(ACCESS_DIR))?;
    let head = registry_core::access::writer::read_head(&access).map_err(QueryError::from)?;
    let access_origin = registry_core::access::origin_for(&origin);
    let access_checkpoint =
        checkpointer::check_latest(&access, head.next_seq, &access_origin, &keys).map_err(at("access"))?;
    Ok(Sizes { records, checkpoint, access_records: head.next_seq, access_checkpoint })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock a backup holds is the one sled takes: while a store is open, a backup
    /// cannot take it, and while a backup holds it, no registry can open the store.
    #[test]
    fn the_backups_lock_and_sleds_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let open = SledStore::open(dir.path()).unwrap();
        assert!(matches!(lock_store(dir.path()), Err(BackupError::InUse(_))));
        drop(open);
        let held = lock_store(dir.path()).unwrap();
        assert!(held.is_some());
        assert!(matches!(SledStore::open(dir.path()), Err(StorageError::InUse(_))));
        drop(held);
        assert!(SledStore::open(dir.path()).is_ok(), "let go with the backup");
        assert!(lock_store(&dir.path().join("none")).unwrap().is_none(), "no store, no lock");
    }
}
