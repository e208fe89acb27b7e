//! The sequencer: one thread that owns the [`Writer`]. Commands arrive on a bounded
//! channel (back-pressure, not an unbounded queue); whatever has queued while the last
//! batch was flushing becomes the next batch (group commit). Commits are pipelined:
//! a committer thread writes and flushes batch N while the sequencer builds N+1 on a
//! view over N's writes, and reads N+1's intent over them too; N+1 is sent only after
//! N is durable, and discarded with it if N fails. Every caller is answered only
//! after its batch is durable. Batches are committed staged
//! ([`Storage::commit_staged`]): written key by key behind their intent, so that
//! neither readers nor the next batch's build wait for them. What of
//! a command's build does not depend on the log's order is done before it is queued,
//! on the submitter's thread (`prework`), so that this one thread does only what must
//! happen in sequence.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use huduma_log::merkle::Hash;

use crate::checkpointer::Checkpointer;
use crate::command::{CommandError, Outcome, Submission};
use crate::commit_intent::CommitIntent;
use crate::event::Actor;
use crate::keys::LogKey;
use crate::prework::{Prework, Preworker};
use crate::storage::view::BatchKeys;
use crate::storage::{Intent, Storage, StorageError, WriteBatch};
use crate::writer::{Head, Writer, storage_failure};

type Reply = oneshot::Sender<Result<Outcome, CommandError>>;

enum Job {
    /// A command, with its work that does not depend on the log's order done by the
    /// submitter (see `prework`).
    Submit(Submission, Box<Prework>, Reply),
    RotateKey(LogKey, Actor, Reply),
}

/// The handle callers submit through. Cloneable senders; one writer thread.
pub struct Sequencer {
    jobs: Option<mpsc::Sender<Job>>,
    /// Does each command's order-free work on its submitter's thread.
    preworker: Preworker,
    thread: Option<JoinHandle<()>>,
    /// The size of the log that is durable, updated after each batch lands.
    durable_size: watch::Receiver<u64>,
}

fn stopped() -> CommandError {
    CommandError::Unavailable("the sequencer has stopped".into())
}

impl Sequencer {
    /// Starts the writer thread with a queue of `queue` commands and batches of at most
    /// `max_batch`.
    pub fn start(writer: Writer, queue: usize, max_batch: usize, checkpoints: Checkpointer) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let (durable, durable_size) = watch::channel(writer.head().next_seq);
        let preworker = writer.preworker();
        let thread = std::thread::Builder::new()
            .name("huduma-sequencer".into())
            .spawn(move || run(writer, rx, max_batch.max(1), durable, checkpoints))?;
        Ok(Self { jobs: Some(tx), preworker, thread: Some(thread), durable_size })
    }

    /// Follows the durable size of the log: changes once each batch is on disk.
    pub fn durable_size(&self) -> watch::Receiver<u64> {
        self.durable_size.clone()
    }

    fn sender(&self) -> Result<&mpsc::Sender<Job>, CommandError> {
        self.jobs.as_ref().ok_or_else(stopped)
    }

    /// Submits a command and waits until it is durable (or refused).
    pub async fn submit(&self, submission: Submission) -> Result<Outcome, CommandError> {
        let (reply, answer) = oneshot::channel();
        let work = Box::new(self.preworker.work(&submission));
        self.sender()?.send(Job::Submit(submission, work, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// As [`Self::submit`], for callers outside an async runtime.
    pub fn submit_blocking(&self, submission: Submission) -> Result<Outcome, CommandError> {
        let (reply, answer) = oneshot::channel();
        let work = Box::new(self.preworker.work(&submission));
        self.sender()?.blocking_send(Job::Submit(submission, work, reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Rotates the log key (see `Writer::rotate_key`).
    pub fn rotate_key_blocking(&self, new_key: LogKey, actor: Actor) -> Result<Outcome, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.sender()?.blocking_send(Job::RotateKey(new_key, actor, reply)).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Stops accepting commands, lets the writer finish what is queued, and waits.
    pub fn shutdown(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the sequencer thread panicked");
        }
    }
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A batch being committed, and who waits for it.
struct InFlight {
    replies: Vec<Reply>,
    results: Vec<Result<Outcome, CommandError>>,
    start: Head,
    /// The log's size once this batch lands, and its tree's root then.
    end: u64,
    root: Option<Hash>,
    batch: Arc<WriteBatch>,
    /// The batch's fingerprints, for the batch built over it next.
    keys: Option<BatchKeys>,
}

/// A batch for the committer, with the intent it is committed behind.
struct ToCommit {
    batch: Arc<WriteBatch>,
    intent: Intent,
}

/// The thread that writes and flushes batches, one at a time, in order.
struct Committer {
    batches: Option<std_mpsc::Sender<ToCommit>>,
    done: std_mpsc::Receiver<Result<(), StorageError>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Committer {
    /// Stops the thread and waits, so that closing the registry releases the store.
    fn drop(&mut self) {
        self.batches = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the committer thread panicked");
        }
    }
}

impl Committer {
    fn start(store: Arc<dyn Storage>) -> std::io::Result<Self> {
        let (batches, incoming) = std_mpsc::channel::<ToCommit>();
        let (report, done) = std_mpsc::channel();
        let thread = std::thread::Builder::new().name("huduma-committer".into()).spawn(move || {
            for ToCommit { batch, intent } in incoming {
                let began = std::time::Instant::now();
                let result = store.commit_staged(&batch, &intent, true);
                metrics::histogram!("huduma_batch_writes").record(batch.len() as f64);
                metrics::histogram!("huduma_batch_commit_seconds").record(began.elapsed().as_secs_f64());
                tracing::debug!(
                    writes = batch.len(),
                    commit_us = began.elapsed().as_micros() as u64,
                    "batch committed"
                );
                if report.send(result).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { batches: Some(batches), done, thread: Some(thread) })
    }

    /// Sends a batch without waiting; pair with [`Self::wait`].
    fn send(&self, batch: Arc<WriteBatch>, intent: Intent) -> bool {
        self.batches.as_ref().is_some_and(|b| b.send(ToCommit { batch, intent }).is_ok())
    }

    fn wait(&self) -> Result<(), StorageError> {
        self.done.recv().map_err(|_| StorageError::Engine("the committer thread has stopped".into()))?
    }
}

/// Sends each submitter its answer (a submitter that gave up is not an error).
fn answer(replies: Vec<Reply>, results: Vec<Result<Outcome, CommandError>>) {
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

/// Waits for the batch in flight; answers its submitters. On failure the writer's head
/// goes back to before it (discarding anything built on top). Returns whether it held.
fn land(
    writer: &mut Writer,
    committer: &Committer,
    durable: &watch::Sender<u64>,
    checkpoints: &mut Checkpointer,
    flight: InFlight,
) -> bool {
    let InFlight { replies, results, start, end, root, batch, .. } = flight;
    let (results, ok) = match committer.wait() {
        Ok(()) => {
            durable.send_replace(end);
            if let Some(root) = root {
                checkpoints.landed(writer.key(), &**writer.store(), end, root);
            }
            (results, true)
        }
        Err(e) => {
            tracing::error!(error = %e, "batch commit failed");
            writer.reset(start);
            (storage_failure(replies.len(), &e), false)
        }
    };
    drop(batch);
    answer(replies, results);
    ok
}

/// The sequencer's loop: gather a batch, build it over the batch in flight, land the
/// one in flight, send the new one to the committer.
fn run(
    mut writer: Writer,
    mut jobs: mpsc::Receiver<Job>,
    max_batch: usize,
    durable: watch::Sender<u64>,
    mut checkpoints: Checkpointer,
) {
    let committer = match Committer::start(Arc::clone(writer.store())) {
        Ok(committer) => committer,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the committer thread");
            return;
        }
    };
    let mut in_flight: Option<InFlight> = None;
    let mut next: Option<Job> = None;
    // A batch's submissions and their prework, in buffers whose room is kept from batch
    // to batch (emptied once the batch is built): a full batch's worth is about 150 KB,
    // and gathered afresh each time its vectors grew onto fresh pages the kernel zeroed
    // (6% of this thread).
    let mut submissions: Vec<Submission> = Vec::new();
    let mut prework: Vec<Prework> = Vec::new();
    loop {
        let job = match next.take() {
            Some(job) => job,
            None if in_flight.is_some() => match jobs.try_recv() {
                Ok(job) => job,
                Err(_) => {
                    // Nothing new to overlap with: land what is in flight, sign a
                    // checkpoint of it (the log is idle), then wait.
                    if let Some(flight) = in_flight.take() {
                        land(&mut writer, &committer, &durable, &mut checkpoints, flight);
                    }
                    checkpoints.idle(writer.key(), &**writer.store());
                    continue;
                }
            },
            None => match jobs.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        match job {
            Job::RotateKey(key, actor, reply) => {
                if let Some(flight) = in_flight.take() {
                    land(&mut writer, &committer, &durable, &mut checkpoints, flight);
                }
                let result = writer.rotate_key(key, actor);
                if result.is_ok() {
                    durable.send_replace(writer.head().next_seq);
                    if let Some((size, root)) = writer.tree_head() {
                        checkpoints.landed(writer.key(), &**writer.store(), size, root);
                        checkpoints.idle(writer.key(), &**writer.store());
                    }
                }
                let _ = reply.send(result);
            }
            Job::Submit(submission, work, reply) => {
                submissions.clear();
                submissions.push(submission);
                prework.clear();
                prework.push(*work);
                let mut replies = vec![reply];
                while submissions.len() < max_batch {
                    match jobs.try_recv() {
                        Ok(Job::Submit(s, w, r)) => {
                            submissions.push(s);
                            prework.push(*w);
                            replies.push(r);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                metrics::histogram!("huduma_batch_commands").record(submissions.len() as f64);
                let parent_keys = in_flight.as_mut().and_then(|f| f.keys.take());
                let parent = in_flight.as_ref().map(|f| &*f.batch);
                let built = writer.build_prepared(parent, parent_keys, &submissions, &mut prework);
                // Built: the commands (and the personal data they carry) are not kept
                // past it, only the buffer's room.
                let commands = submissions.len();
                submissions.clear();
                // The intent is read here, over the batch in flight, while the
                // committer is still writing that batch.
                let intent = if built.batch.is_empty() {
                    Ok(Intent::default())
                } else {
                    CommitIntent::staging(&**writer.store(), parent, built.start.next_seq, &built.batch, &built.issued)
                };
                let end = writer.head().next_seq;
                let root = writer.tree_head().filter(|(size, _)| *size == end).map(|(_, root)| root);
                if let Some(flight) = in_flight.take()
                    && !land(&mut writer, &committer, &durable, &mut checkpoints, flight)
                {
                    // Built on a batch that did not land: refuse it too.
                    let e = StorageError::Engine("the previous batch failed to commit".into());
                    answer(replies, storage_failure(commands, &e));
                    continue;
                }
                if built.batch.is_empty() {
                    answer(replies, built.results);
                    continue;
                }
                let intent = match intent {
                    Ok(intent) => intent,
                    Err(e) => {
                        writer.reset(built.start);
                        answer(replies, storage_failure(commands, &e));
                        continue;
                    }
                };
                let batch = Arc::new(built.batch);
                if committer.send(Arc::clone(&batch), intent) {
                    in_flight = Some(InFlight {
                        replies,
                        results: built.results,
                        start: built.start,
                        end,
                        root,
                        batch,
                        keys: built.keys,
                    });
                } else {
                    writer.reset(built.start);
                    let e = StorageError::Engine("the committer thread has stopped".into());
                    answer(replies, storage_failure(commands, &e));
                }
            }
        }
    }
}
