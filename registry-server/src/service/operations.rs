//! `huduma.v1.Operations`: what operators ask of the running registry (role admin): a
//! backup taken while it serves (`registry_core::online_backup`), one at a time, into
//! a new directory under the configured `backup_dir`, cancelled if the server stops or
//! a reload withdraws the credential it was begun with (`access_control`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use registry_core::online_backup::{self, BackupProgress, LogName, OnlineBackupError, TakenBackup};
use registry_core::registry::Registry;
use registry_core::replay::FoldSpace;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::access_control::AccessControl;
use crate::auth::credential;
use crate::metrics::timed;
use crate::policy::{Rpc, authorize};
use crate::proto as pb;
use crate::proto::operations_server::Operations as OperationsRpc;
use crate::wire;

/// How often a backup's progress is sent (the last message is always sent).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

pub struct OperationsService {
    registry: Arc<Registry>,
    backup_dir: Option<PathBuf>,
    fold_space: FoldSpace,
    /// Set while a backup runs: one at a time.
    running: Arc<AtomicBool>,
    access: AccessControl,
    shutdown: watch::Receiver<bool>,
}

impl OperationsService {
    pub fn new(
        registry: Arc<Registry>,
        backup_dir: Option<PathBuf>,
        fold_space: FoldSpace,
        access: AccessControl,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self { registry, backup_dir, fold_space, running: Arc::default(), access, shutdown }
    }
}

/// A backup's name: a single directory name, safe on any file system.
fn check_name(name: &str) -> Result<(), Status> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 {
        return Err(wire::invalid("name", format!("{} characters: a backup's name has 1 to 64", name.chars().count())));
    }
    if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
        return Err(wire::invalid("name", format!("{bad:?}: only A-Z, a-z, 0-9, '.', '_' and '-' are allowed")));
    }
    if name.starts_with('.') {
        return Err(wire::invalid("name", "must not start with '.'"));
    }
    Ok(())
}

/// The claim on the one backup that may run; released when dropped.
struct Claim(Arc<AtomicBool>);

impl Claim {
    fn take(running: &Arc<AtomicBool>) -> Option<Self> {
        running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Self(Arc::clone(running)))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn progress_out(progress: BackupProgress) -> pb::BackupProgress {
    use pb::backup_progress::Stage;
    match progress {
        BackupProgress::Copying { log, done, total } => {
            let log = match log {
                LogName::Identity => pb::LogName::Identity,
                LogName::Access => pb::LogName::Access,
            };
            pb::BackupProgress { stage: Some(Stage::Copying(log as i32)), done, total }
        }
        BackupProgress::Folding(reached) => {
            pb::BackupProgress { stage: Some(Stage::Folding(true)), done: reached.done, total: reached.total }
        }
    }
}

fn taken_out(path: &std::path::Path, taken: TakenBackup) -> pb::BackupProgress {
    let taken = pb::BackupTaken {
        path: path.display().to_string(),
        records: taken.records,
        access_records: taken.access_records,
        keys: taken.keys,
        requests: taken.requests,
    };
    pb::BackupProgress {
        done: taken.records,
        total: taken.records,
        stage: Some(pb::backup_progress::Stage::Taken(taken)),
    }
}

fn backup_error(e: OnlineBackupError) -> Status {
    match e {
        OnlineBackupError::NotEmpty(_) => Status::already_exists(format!("name: {e}")),
        OnlineBackupError::NoCheckpoint(_) => Status::unavailable(e.to_string()),
        OnlineBackupError::Cancelled => Status::aborted(e.to_string()),
        OnlineBackupError::Checkpoint { .. }
        | OnlineBackupError::Record { .. }
        | OnlineBackupError::Keyring(_)
        | OnlineBackupError::Read(_) => Status::data_loss(e.to_string()),
        OnlineBackupError::Io { .. }
        | OnlineBackupError::Storage(_)
        | OnlineBackupError::Query(_)
        | OnlineBackupError::Fold(_) => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl OperationsRpc for OperationsService {
    type BackupStream = ReceiverStream<Result<pb::BackupProgress, Status>>;

    async fn backup(&self, request: Request<pb::BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        timed(Rpc::Backup, async {
            let principal = authorize(&request, Rpc::Backup)?;
            // Taken now, judged below (a stopping registry refuses first).
            let begun_with = credential(&request);
            let name = request.into_inner().name;
            check_name(&name)?;
            let dir = self.backup_dir.as_ref().ok_or_else(|| {
                Status::failed_precondition(
                    "backup_dir is not set in the server's [server] config: online backups are off",
                )
            })?;
            // Absolute, so that what the caller is told names it wherever they run.
            let out = std::path::absolute(dir.join(&name)).map_err(|e| Status::internal(format!("backup_dir: {e}")))?;
            if out.exists() {
                return Err(Status::already_exists(format!(
                    "name: {} exists: a backup is written into a new directory",
                    out.display()
                )));
            }
            let claim = Claim::take(&self.running)
                .ok_or_else(|| Status::failed_precondition("a backup is already running: one at a time"))?;
            if *self.shutdown.borrow() {
                return Err(Status::unavailable("the registry is stopping: no backup is begun"));
            }
            // Cancelled if the server stops, or if a reload withdraws the admin's
            // credential (a revoked admin's backup is not completed); watched until it ends.
            let view = self.access.current().disclosure.view_for(&principal);
            let mut grant = self.access.grant(begun_with?, Arc::clone(&principal), view);
            let cancel = Arc::new(AtomicBool::new(false));
            let withdrawn: Arc<OnceLock<String>> = Arc::default();
            let (ended, ended_rx) = oneshot::channel::<()>();
            let mut shutdown = self.shutdown.clone();
            let (on_cancel, on_withdrawal) = (Arc::clone(&cancel), Arc::clone(&withdrawn));
            let refusal = grant.status().message().to_string();
            tokio::spawn(async move {
                tokio::select! {
                    stopping = shutdown.wait_for(|stop| *stop) => {
                        if stopping.is_ok() {
                            on_cancel.store(true, Ordering::Relaxed);
                        }
                    }
                    () = grant.withdrawn() => {
                        let _ = on_withdrawal.set(refusal);
                        on_cancel.store(true, Ordering::Relaxed);
                    }
                    _ = ended_rx => {}
                }
            });
            let (tx, rx) = mpsc::channel(16);
            let registry = Arc::clone(&self.registry);
            let space = self.fold_space.clone();
            tokio::task::spawn_blocking(move || {
                let _claim = claim;
                tracing::info!(principal = %principal.name, dir = %out.display(), "online backup started");
                let began = Instant::now();
                let mut sent = began;
                let mut progress = |p: BackupProgress| {
                    if sent.elapsed() >= PROGRESS_EVERY {
                        // A caller that went away does not stop the backup.
                        let _ = tx.try_send(Ok(progress_out(p)));
                        sent = Instant::now();
                    }
                };
                let taken = online_backup::take(&registry, &out, &space, &cancel, &mut progress);
                // The registry's handle goes before the answer, so that a server stopping
                // once the stream ends finds itself the registry's only holder.
                drop(registry);
                let answer = match taken {
                    Ok(taken) => {
                        crate::metrics::backup_finished("taken", Some(taken.records));
                        tracing::info!(
                            dir = %out.display(),
                            records = taken.records,
                            access_records = taken.access_records,
                            seconds = began.elapsed().as_secs_f64(),
                            "online backup taken"
                        );
                        Ok(taken_out(&out, taken))
                    }
                    Err(e) => {
                        let cancelled = matches!(e, OnlineBackupError::Cancelled);
                        crate::metrics::backup_finished(if cancelled { "cancelled" } else { "failed" }, None);
                        match withdrawn.get().filter(|_| cancelled) {
                            Some(refusal) => {
                                tracing::warn!(dir = %out.display(), "online backup cancelled: its credential was withdrawn");
                                Err(Status::unauthenticated(format!("{refusal}; the copy begun is removed")))
                            }
                            None => {
                                tracing::error!(dir = %out.display(), error = %e, "online backup failed");
                                Err(backup_error(e))
                            }
                        }
                    }
                };
                let _ = ended.send(());
                let _ = tx.blocking_send(answer);
            });
            Ok(Response::new(ReceiverStream::new(rx)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_directory_names() {
        for good in ["nightly-2026-12-07", "a", "v1.2_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "1 to 64"),
            ("../etc", "'/'"),
            ("a/b", "'/'"),
            (".hidden", "must not start with '.'"),
            ("a b", "' '"),
            ("é", "'é'"),
        ] {
            let status = check_name(bad).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
            assert!(status.message().starts_with("name: "), "{bad}: {}", status.message());
            assert!(status.message().contains(says), "{bad}: {}", status.message());
        }
        assert!(check_name(&"x".repeat(64)).is_ok());
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[tokio::test]
    async fn a_stopping_registry_begins_no_backup() {
        use registry_core::keys::LogKey;
        use registry_core::registry::RegistryOptions;
        use registry_core::secrets::Secrets;
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open_dir(
            &dir.path().join("data"),
            Secrets::from_master([7; 32]),
            LogKey::from_seed([8; 32]),
            RegistryOptions::default(),
        )
        .unwrap();
        let (stop, stopping) = watch::channel(false);
        let backups = dir.path().join("backups");
        let config_dir = tempfile::tempdir().unwrap();
        let (config, _) = crate::config::ensure_dev_config(config_dir.path()).unwrap();
        let (access, _reloader) =
            crate::access_control::in_force(&crate::config::Loaded::read(&config).unwrap().config);
        let service =
            OperationsService::new(Arc::new(registry), Some(backups.clone()), FoldSpace::IN_MEMORY, access, stopping);
        stop.send_replace(true);
        let mut request = Request::new(pb::BackupRequest { name: "late".into() });
        let admin = crate::auth::Principal { name: "admin-1".into(), role: crate::auth::Role::Admin, agency: None };
        request.extensions_mut().insert(Arc::new(admin));
        let Err(refused) = service.backup(request).await else { panic!("a backup begun while stopping") };
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{}", refused.message());
        assert!(refused.message().contains("stopping"), "{}", refused.message());
        assert!(!backups.join("late").exists());
    }

    #[test]
    fn one_backup_at_a_time_and_the_claim_goes_with_it() {
        let running = Arc::new(AtomicBool::new(false));
        let first = Claim::take(&running).expect("none running");
        assert!(Claim::take(&running).is_none(), "a second backup while the first runs");
        drop(first);
        assert!(Claim::take(&running).is_some(), "free again once the first ends");
    }
}
