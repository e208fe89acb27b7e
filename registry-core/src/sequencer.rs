//! The sequencer: one thread that owns the [`Writer`]. Commands arrive on a bounded
//! channel (back-pressure, not an unbounded queue); whatever has queued while the last
//! batch was flushing becomes the next batch (group commit); every caller is answered
//! only after its batch is durable.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::command::{CommandError, Outcome, Submission};
use crate::event::Actor;
use crate::keys::LogKey;
use crate::writer::Writer;

type Reply = oneshot::Sender<Result<Outcome, CommandError>>;

enum Job {
    Submit(Submission, Reply),
    RotateKey(LogKey, Actor, Reply),
}

/// The handle callers submit through. Cloneable senders; one writer thread.
pub struct Sequencer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

fn stopped() -> CommandError {
    CommandError::Unavailable("the sequencer has stopped".into())
}

impl Sequencer {
    /// Starts the writer thread with a queue of `queue` commands and batches of at most
    /// `max_batch`.
    pub fn start(writer: Writer, queue: usize, max_batch: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("huduma-sequencer".into())
            .spawn(move || run(writer, rx, max_batch.max(1)))?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    fn sender(&self) -> Result<&mpsc::Sender<Job>, CommandError> {
        self.jobs.as_ref().ok_or_else(stopped)
    }

    /// Submits a command and waits until it is durable (or refused).
    pub async fn submit(&self, submission: Submission) -> Result<Outcome, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.sender()?
            .send(Job::Submit(submission, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// As [`Self::submit`], for callers outside an async runtime.
    pub fn submit_blocking(&self, submission: Submission) -> Result<Outcome, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.sender()?
            .blocking_send(Job::Submit(submission, reply))
            .map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// Rotates the log key (see `Writer::rotate_key`).
    pub fn rotate_key_blocking(&self, new_key: LogKey, actor: Actor) -> Result<Outcome, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.sender()?
            .blocking_send(Job::RotateKey(new_key, actor, reply))
            .map_err(|_| stopped())?;
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

fn run(mut writer: Writer, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match jobs.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        match first {
            Job::RotateKey(key, actor, reply) => {
                let _ = reply.send(writer.rotate_key(key, actor));
            }
            Job::Submit(submission, reply) => {
                let mut submissions = vec![submission];
                let mut replies = vec![reply];
                while submissions.len() < max_batch {
                    match jobs.try_recv() {
                        Ok(Job::Submit(s, r)) => {
                            submissions.push(s);
                            replies.push(r);
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let results = writer.execute_batch(&submissions);
                tracing::debug!(batch = submissions.len(), "batch committed");
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
        }
    }
}
