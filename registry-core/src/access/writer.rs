//! The access log's single appender: one thread that takes look-ups off a bounded
//! queue, seals and chains them, adds them to the log's own RFC 6962 tree, and commits
//! whatever queued during the last flush as one batch (group commit). A look-up is
//! answered only after its record is durable; checkpoints are signed off that path.

use std::sync::Arc;
use std::thread::JoinHandle;

use huduma_log::keys::LogKey;
use huduma_log::record::HashedRecord;
use tokio::sync::{mpsc, oneshot};

use super::record::{self, AccessEvent, AccessHeader, SealedUnder};
use crate::checkpointer::Checkpointer;
use crate::secrets::Secrets;
use crate::storage::view::{ReadError, View};
use crate::storage::{Storage, Tree};

/// Why a look-up could not be recorded (and so must not be answered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("the access log is unavailable: {0}")]
    Unavailable(String),
}

type Reply = oneshot::Sender<Result<u64, AccessError>>;

enum Job {
    /// Look-ups to record in one commit (several, from `record_all`; a batch takes no
    /// more than `max_batch`, so more are split).
    Record(Vec<(AccessEvent, Reply)>),
    RotateKey(Box<LogKey>),
}

/// The end of the access log: the next sequence number, the last record's hash and
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessHead {
    pub next_seq: u64,
    pub prev: [u8; 32],
    pub time_ms: u64,
}

/// The key of record `seq` in `log`, and of the index entry of a subject.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn subject_key(subject: &[u8; 32], seq: u64) -> Vec<u8> {
    [subject.as_slice(), &seq.to_be_bytes()].concat()
}

/// The per-person index key the record `seq` of `subject` derives; none for a look-up
/// that found nobody (the all-zero subject), which no one's index lists.
pub fn indexed_under(subject: &[u8; 32], seq: u64) -> Option<Vec<u8>> {
    (*subject != [0; 32]).then(|| subject_key(subject, seq))
}

/// Reads the end of the access log in `store`.
pub fn read_head(store: &dyn Storage) -> Result<AccessHead, ReadError> {
    let Some((key, stored)) = store.last(Tree::Log)? else {
        return Ok(AccessHead { next_seq: 0, prev: [0; 32], time_ms: 0 });
    };
    let hashed = crate::storage::view::open_record(&key, stored)?;
    let corrupt = |why: String| crate::storage::view::Corruption::new(Tree::Log, &key, why);
    let header = record::parse(hashed.bytes()).map_err(|e| corrupt(e.to_string()))?;
    if key != seq_key(header.seq) {
        return Err(corrupt("its key does not match its sequence number".into()).into());
    }
    Ok(AccessHead { next_seq: header.seq + 1, prev: *hashed.hash(), time_ms: header.time_ms })
}

/// The handle look-ups are recorded through.
pub struct AccessWriter {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// What the appender thread owns.
struct Appender {
    store: Arc<dyn Storage>,
    identity: Arc<dyn Storage>,
    secrets: Arc<Secrets>,
    key: LogKey,
    head: AccessHead,
    tree: crate::merkle_store::TreeEdge,
    checkpoints: Checkpointer,
    max_batch: usize,
    /// Set when a batch failed to land: part of it may be on disk, so nothing more is
    /// appended until a restart repairs the tail.
    failed: Option<String>,
}

fn stopped() -> AccessError {
    AccessError::Unavailable("the access log writer has stopped".into())
}

fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

impl AccessWriter {
    /// Starts the appender on the access log in `store`, sealing bodies with data keys
    /// read from the identity store's keyring.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        store: Arc<dyn Storage>,
        identity: Arc<dyn Storage>,
        secrets: Arc<Secrets>,
        key: LogKey,
        checkpoints: Checkpointer,
        queue: usize,
        max_batch: usize,
    ) -> Result<Self, super::AccessOpenError> {
        let head = read_head(&*store)?;
        let tree = crate::merkle_store::TreeEdge::load(&*store, head.next_seq)?;
        let appender = Appender {
            store,
            identity,
            secrets,
            key,
            head,
            tree,
            checkpoints,
            max_batch: max_batch.max(1),
            failed: None,
        };
        let (tx, rx) = mpsc::channel(queue.max(1));
        let thread = std::thread::Builder::new().name("huduma-access".into()).spawn(move || appender.run(rx))?;
        Ok(Self { jobs: Some(tx), thread: Some(thread) })
    }

    /// Records a look-up; returns its sequence number once it is durable.
    pub async fn record(&self, event: AccessEvent) -> Result<u64, AccessError> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(Job::Record(vec![(event, reply)])).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records several look-ups in one commit (in as many as `max_batch` makes them
    /// need) rather than one commit each; returns their sequence numbers, in order,
    /// once all are durable. An error says that some may not be.
    pub async fn record_all(&self, events: Vec<AccessEvent>) -> Result<Vec<u64>, AccessError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (looks, answers): (Vec<_>, Vec<_>) = events
            .into_iter()
            .map(|event| {
                let (reply, answer) = oneshot::channel();
                ((event, reply), answer)
            })
            .unzip();
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(Job::Record(looks)).await.map_err(|_| stopped())?;
        let mut seqs = Vec::with_capacity(answers.len());
        for answer in answers {
            seqs.push(answer.await.map_err(|_| stopped())??);
        }
        Ok(seqs)
    }

    /// As [`Self::record`], outside an async runtime.
    pub fn record_blocking(&self, event: AccessEvent) -> Result<u64, AccessError> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.blocking_send(Job::Record(vec![(event, reply)])).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Signs later checkpoints with `key` (after the identity log's key rotated).
    pub fn rotate_key_blocking(&self, key: LogKey) {
        if let Some(jobs) = &self.jobs
            && jobs.blocking_send(Job::RotateKey(Box::new(key))).is_err()
        {
            tracing::error!("the access log writer has stopped; its key was not rotated");
        }
    }

    /// Lets the appender finish what is queued, then stops it.
    pub fn shutdown(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the access log thread panicked");
        }
    }
}

impl Drop for AccessWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Appender {
    fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        // Only to wait for a job with a deadline (the checkpoint due next).
        let timer = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(timer) => timer,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the access log's timer; look-ups will be refused");
                return;
            }
        };
        let mut next: Option<Job> = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => match jobs.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.checkpoints.idle(&self.key, &*self.store);
                        return;
                    }
                    // Nothing queued: wait for a job, or until a checkpoint is due.
                    // Look-ups pause often and briefly; signing at every pause would
                    // put a signature on nearly every batch.
                    Err(mpsc::error::TryRecvError::Empty) => match self.checkpoints.due_in() {
                        None => match jobs.blocking_recv() {
                            Some(job) => job,
                            None => return,
                        },
                        Some(due) => match timer.block_on(async { tokio::time::timeout(due, jobs.recv()).await }) {
                            Ok(Some(job)) => job,
                            Ok(None) => {
                                self.checkpoints.idle(&self.key, &*self.store);
                                return;
                            }
                            Err(_) => {
                                self.checkpoints.idle(&self.key, &*self.store);
                                continue;
                            }
                        },
                    },
                },
            };
            match job {
                Job::RotateKey(key) => self.key = *key,
                Job::Record(mut batch) => {
                    // Joined by the jobs queued behind it, each whole, while they fit.
                    while batch.len() < self.max_batch {
                        match jobs.try_recv() {
                            Ok(Job::Record(more)) if batch.len() + more.len() <= self.max_batch => batch.extend(more),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // A job larger than a batch goes in several.
                    while batch.len() > self.max_batch {
                        let rest = batch.split_off(self.max_batch);
                        self.append(batch);
                        batch = rest;
                    }
                    self.append(batch);
                }
            }
        }
    }

    /// The key that seals a look-up of `person`: theirs while they have one.
    fn sealing_key(&self, person: Option<crate::PersonId>) -> (SealedUnder, [u8; 32]) {
        let registry = (SealedUnder::Registry, *self.secrets.access_seal_key());
        let Some(person) = person else { return registry };
        let view = View::new(&*self.identity);
        match crate::projection::fold::keyring_entry(&view, &self.secrets, person) {
            Ok(entry) => match entry.in_force() {
                Some(key) => (SealedUnder::Person, key.0),
                None => registry,
            },
            Err(e) => {
                tracing::error!(error = %e, person = person.0, "keyring entry unreadable; sealing under the registry key");
                registry
            }
        }
    }

    /// Appends one batch and answers its callers once it is durable.
    fn append(&mut self, batch: Vec<(AccessEvent, Reply)>) {
        if let Some(why) = &self.failed {
            for (_, reply) in batch {
                let _ = reply.send(Err(AccessError::Unavailable(format!("an earlier batch failed ({why}); restart"))));
            }
            return;
        }
        let began = std::time::Instant::now();
        let (head, tree) = (self.head, self.tree.clone());
        let mut view = View::new(&*self.store);
        let mut seqs = Vec::with_capacity(batch.len());
        let mut failure = None;
        for (event, _) in &batch {
            let seq = self.head.next_seq;
            let (sealed_under, key) = self.sealing_key(event.person);
            let subject = event.person.map_or([0; 32], |p| record::subject(self.secrets.access_subject_key(), p));
            let header = AccessHeader {
                seq,
                time_ms: now_ms().max(self.head.time_ms),
                prev: self.head.prev,
                subject,
                sealed_under,
            };
            // Hashed once, for the chain and for the store's checksum.
            let sealed = HashedRecord::new(record::seal(&header, &key, &event.body));
            if event.person.is_some() {
                view.put(Tree::AccessBySubject, subject_key(&subject, seq), &[]);
            }
            if let Err(e) = crate::merkle_store::append(&mut view, &mut self.tree, seq, sealed.bytes()) {
                failure = Some(e.to_string());
                break;
            }
            self.head = AccessHead { next_seq: seq + 1, prev: *sealed.hash(), time_ms: header.time_ms };
            view.put_record(seq_key(seq).to_vec(), sealed);
            seqs.push(seq);
        }
        let result = match failure {
            Some(why) => Err(why),
            // Records first, then the tree's nodes and the index (the order of `Tree`),
            // unbatched: a crash keeps a prefix, whose missing tail of derived entries
            // `repair_tail` restores on open.
            None => self.store.write_in_order(&view.take_batch(), true).map_err(|e| e.to_string()),
        };
        metrics::histogram!("huduma_access_batch_records").record(batch.len() as f64);
        metrics::histogram!("huduma_access_batch_seconds").record(began.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                let root = self.tree.root();
                self.checkpoints.landed(&self.key, &*self.store, self.head.next_seq, root);
                for ((_, reply), seq) in batch.into_iter().zip(seqs) {
                    let _ = reply.send(Ok(seq));
                }
            }
            Err(why) => {
                tracing::error!(error = %why, "access log batch failed; look-ups are refused until a restart");
                (self.head, self.tree) = (head, tree);
                self.failed = Some(why.clone());
                for (_, reply) in batch {
                    let _ = reply.send(Err(AccessError::Unavailable(why.clone())));
                }
            }
        }
    }
}
