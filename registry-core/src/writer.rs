//! The writer: the only code that appends to the log. It validates each command
//! against the projections, turns it into an event, signs the record, folds it, and
//! commits a whole batch (records, projections, keyring, request index) atomically with
//! one flush. The sequencer thread owns the one `Writer`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use huduma_log::events::kind;
use huduma_number::HudumaNumber;
use serde::{Deserialize, Serialize};

use crate::PersonId;
use crate::command::{
    Command, CommandError, Outcome, Receipt, Submission, check_agency, check_identifier, check_reason,
};
use crate::commit_intent::{CommitIntent, IssuedNumbers};
use crate::dedup::blocks::Upkeep;
use crate::dedup::{OpenedAhead, Probe, Profile};
use crate::demographics::{self, Demographics};
use crate::event::{self, Actor, Event};
use crate::issuer::NumberIssuer;
use crate::keyring;
use crate::keys::LogKey;
use crate::prework::{Prework, Preworker, RegistrationPrework};
use crate::projection::fold::{self, FoldError};
use crate::projection::state::{
    self, LinkedRecord, NumberEntry, PersonEntry, PersonStatus, agency_link_key, meta, number_key, person_key,
};
use crate::projection::status_rules;
use crate::record::{self, HashedRecord, Header, RecordRef};
use crate::sealed::{Field, Sealed};
use crate::secrets::Secrets;
use crate::storage::view::{BatchKeys, ReadError, View};
use crate::storage::{Storage, Tree, WriteBatch};

/// `settings` key of the secrets fingerprint.
pub const SECRETS_FINGERPRINT: &[u8] = b"secrets_fingerprint";

/// `settings` key present in a store whose request index was keyed by
/// `Secrets::request_key` from its first record. A store without it (created before
/// 2026-12-06) may hold entries under the earlier key, the principal, 0x00 and the
/// request id in clear ([`legacy_request_key`]): a request not found under its hashed
/// key is looked for there too, so that a retry of a request first made before the
/// upgrade still gets its first answer. New entries are always hashed.
pub const REQUEST_KEYS_HASHED: &[u8] = b"request_keys_hashed";

/// Where a store created before 2026-12-06 kept a request's entry.
pub fn legacy_request_key(principal: &str, request_id: &str) -> Vec<u8> {
    [principal.as_bytes(), &[0], request_id.as_bytes()].concat()
}

/// The domain tag of the new key's consent to a rotation.
pub use crate::event::ROTATION_DOMAIN;

/// `requests` tree value: what the first request with an id did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RequestEntry {
    fingerprint: [u8; 32],
    seq: u64,
    number: Option<HudumaNumber>,
}

/// The record that a stored request-index entry (its value as stored, checksum and
/// all) answered with: what an online backup keeps an entry by (see `online_backup`).
pub fn request_answered_at(key: &[u8], stored: &[u8]) -> Result<u64, crate::storage::view::Corruption> {
    let value = crate::storage::view::open_value(Tree::Requests, key, stored)?;
    Ok(state::decode::<RequestEntry>(Tree::Requests, key, &value)?.seq)
}

/// A batch built but not yet committed.
#[derive(Debug)]
pub struct Built {
    /// Every write of the batch; empty when nothing was accepted.
    pub batch: WriteBatch,
    /// Each submission's answer, to send once `batch` is durable.
    pub results: Vec<Result<Outcome, CommandError>>,
    /// The head before the batch, to reset to if the commit fails; its `next_seq` is
    /// the batch's first record.
    pub start: Head,
    /// The numbers the batch issued, for its intent ([`CommitIntent::staging`]).
    pub issued: IssuedNumbers,
    /// The fingerprints of the batch's keys, for the batch built over it next
    /// ([`Writer::build_prepared`]'s `parent_keys`).
    pub keys: Option<BatchKeys>,
}

/// Commits a built batch whose records begin at `first_seq`, staged behind its intent
/// ([`Storage::commit_staged`]), and durably, every earlier batch being committed: the
/// intent is read here, from the store (it records what each key the batch writes held
/// before it, which readers go on seeing until the batch is durable, see
/// `commit_intent`). The sequencer, which commits a batch while it builds the next,
/// reads the next one's intent itself, over the batch in flight.
pub fn commit_built(
    store: &dyn Storage,
    batch: &Arc<WriteBatch>,
    first_seq: u64,
    issued: &IssuedNumbers,
) -> Result<(), crate::storage::StorageError> {
    let intent = CommitIntent::staging(store, None, first_seq, batch, issued)?;
    store.commit_staged(batch, &intent, true)
}

/// The answer every submission of a batch gets when storage fails to commit it.
pub fn storage_failure(count: usize, e: &crate::storage::StorageError) -> Vec<Result<Outcome, CommandError>> {
    (0..count).map(|_| Err(CommandError::Unavailable(format!("storage: {e}")))).collect()
}

/// Where the log's head stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The sequence number the next record gets (= the log's size).
    pub next_seq: u64,
    pub hash: [u8; 32],
    pub time_micros: i64,
}

/// Why the writer could not start.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("the last record is malformed: {0}")]
    Head(String),
    #[error("the log key given is not the log's current key; rotate with rotate-key instead of replacing it")]
    WrongKey,
    #[error("the master secret given is not the one this store was created with")]
    WrongSecrets,
}

fn internal(e: impl std::fmt::Display) -> CommandError {
    CommandError::Internal(e.to_string())
}

impl From<ReadError> for CommandError {
    fn from(e: ReadError) -> Self {
        internal(e)
    }
}

impl From<FoldError> for CommandError {
    fn from(e: FoldError) -> Self {
        internal(e)
    }
}

pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn now_micros() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

fn date_of(micros: i64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN)
}

/// Reads the head of the log (the last record), or `None` for an empty log.
pub fn read_head(store: &dyn Storage) -> Result<Option<Head>, WriterError> {
    let Some((key, stored)) = store.last(Tree::Log)? else {
        return Ok(None);
    };
    let hashed = crate::storage::view::open_record(&key, stored).map_err(ReadError::from)?;
    let record = RecordRef::parse(hashed.bytes()).map_err(|e| WriterError::Head(e.to_string()))?;
    if key.as_slice() != seq_key(record.header.seq) {
        return Err(WriterError::Head("its key does not match its sequence number".into()));
    }
    Ok(Some(Head { next_seq: record.header.seq + 1, hash: *hashed.hash(), time_micros: record.header.time_micros }))
}

/// The single appender.
pub struct Writer {
    store: Arc<dyn Storage>,
    secrets: Arc<Secrets>,
    issuer: NumberIssuer,
    key: LogKey,
    head: Head,
    /// The RFC 6962 tree's right edge at `head.next_seq`; `None` if it could not be
    /// reloaded after a failed commit (appends are then refused until a restart).
    tree: Option<crate::merkle_store::TreeEdge>,
    /// Registrations scoring at least this against a registered person are refused as
    /// likely duplicates (unless overridden); `None` turns the search off.
    duplicate_threshold: Option<f32>,
    /// Whether the request index may hold entries under [`legacy_request_key`].
    legacy_request_keys: bool,
    /// When a batch's searches have their block-mates opened ahead, on a second thread.
    open_ahead: OpenAhead,
    /// How many cores the machine has (one gives no second thread to open ahead on).
    cores: usize,
    /// The persons opened ahead for the search under way (`None` between searches).
    opened_ahead: Option<OpenedAhead>,
    /// How many searches the last batch ran, and how many persons they examined.
    searched: std::cell::Cell<(u32, u64)>,
}

/// When a batch's duplicate searches have the registered persons they will likely
/// examine opened ahead on a second thread, while the batch is built
/// (`dedup::OpenedAhead`): the searches find the same candidates either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAhead {
    /// When the last batch's searches examined [`OPEN_AHEAD_FROM`] persons each or
    /// more on average (crowded blocks: a large registry's common names), and the
    /// machine has more than one core.
    WhenCrowded,
    /// For every batch of two searches or more (tests: the search must find the same).
    Always,
    Never,
}

/// The persons examined per search, on average over the last batch, from which the
/// next batch's block-mates are opened ahead ([`OpenAhead::WhenCrowded`]).
pub const OPEN_AHEAD_FROM: f64 = 8.0;

/// Opens the block-mates of each of `work`'s probes, from the batch's last command
/// backwards, into `slots` (by the command's place in the batch), through a view of
/// `store` and `parent` as the batch began; stops where the builder, at `front`, has
/// come to.
fn open_from_the_back(
    store: &dyn Storage,
    parent: Option<&WriteBatch>,
    secrets: &Secrets,
    work: Vec<(usize, Probe)>,
    floor: f32,
    slots: &[Mutex<Option<OpenedAhead>>],
    front: &AtomicUsize,
) {
    let view = View::over(store, parent);
    for (i, probe) in work.iter().rev() {
        if *i < front.load(Ordering::Acquire) {
            break;
        }
        let opened = OpenedAhead::for_probe(&view, secrets, probe, floor);
        if let Some(slot) = slots.get(*i)
            && let Ok(mut slot) = slot.lock()
        {
            *slot = Some(opened);
        }
    }
}

impl Writer {
    /// Sets the duplicate search's threshold (`None`: no search).
    pub fn set_duplicate_threshold(&mut self, threshold: Option<f32>) {
        self.duplicate_threshold = threshold;
    }

    /// Sets when a batch's searches have their block-mates opened ahead.
    pub fn set_open_ahead(&mut self, open_ahead: OpenAhead) {
        self.open_ahead = open_ahead;
    }

    /// Starts on an existing log (checking `key` is its current key), or writes record 0
    /// of a new log naming `origin` and `key`.
    pub fn open(
        store: Arc<dyn Storage>,
        secrets: Arc<Secrets>,
        issuer: NumberIssuer,
        key: LogKey,
        origin: &str,
    ) -> Result<Self, WriterError> {
        match read_head(&*store)? {
            Some(head) => {
                let view = View::new(&*store);
                match view.get(Tree::Settings, SECRETS_FINGERPRINT)? {
                    Some(stored) if stored != secrets.fingerprint() => return Err(WriterError::WrongSecrets),
                    Some(_) => {}
                    None => {
                        let mut view = View::new(&*store);
                        view.put(Tree::Settings, SECRETS_FINGERPRINT.to_vec(), &secrets.fingerprint());
                        store.commit(&view.take_batch(), true)?;
                    }
                }
                let current = view.get(Tree::Meta, meta::CURRENT_KEY)?;
                if current.as_deref() != Some(key.public().as_bytes().as_slice()) {
                    return Err(WriterError::WrongKey);
                }
                let tree = crate::merkle_store::TreeEdge::load(&*store, head.next_seq)?;
                let legacy_request_keys = view.get(Tree::Settings, REQUEST_KEYS_HASHED)?.is_none();
                Ok(Self::at(store, secrets, issuer, key, head, tree, legacy_request_keys))
            }
            None => {
                let head = Head { next_seq: 0, hash: [0; 32], time_micros: 0 };
                let tree = crate::merkle_store::TreeEdge::new();
                let mut writer = Self::at(store, secrets, issuer, key, head, tree, false);
                let genesis = Event::LogInitialized(event::LogInitialized {
                    origin: origin.to_string(),
                    public_key: writer.key.public().to_bytes(),
                });
                let fingerprint = writer.secrets.fingerprint();
                writer
                    .commit_alone(&genesis, |view| {
                        view.put(Tree::Settings, SECRETS_FINGERPRINT.to_vec(), &fingerprint);
                        view.put(Tree::Settings, REQUEST_KEYS_HASHED.to_vec(), &[1]);
                    })
                    .map_err(|e| WriterError::Head(e.to_string()))?;
                Ok(writer)
            }
        }
    }

    /// A writer whose log stands at `head`, the tree's edge at `tree`, with the
    /// duplicate search at its threshold.
    fn at(
        store: Arc<dyn Storage>,
        secrets: Arc<Secrets>,
        issuer: NumberIssuer,
        key: LogKey,
        head: Head,
        tree: crate::merkle_store::TreeEdge,
        legacy_request_keys: bool,
    ) -> Self {
        let tree = Some(tree);
        Self {
            store,
            secrets,
            issuer,
            key,
            head,
            tree,
            duplicate_threshold: Some(crate::dedup::THRESHOLD),
            legacy_request_keys,
            open_ahead: OpenAhead::WhenCrowded,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            opened_ahead: None,
            searched: std::cell::Cell::new((0, 0)),
        }
    }

    pub fn head(&self) -> Head {
        self.head
    }

    /// Executes a batch of submissions and commits them with one flush. Each
    /// submission gets its own answer; a refused one writes nothing.
    pub fn execute_batch(&mut self, submissions: &[Submission]) -> Vec<Result<Outcome, CommandError>> {
        let built = self.build(None, submissions);
        if built.batch.is_empty() {
            return built.results;
        }
        let began = std::time::Instant::now();
        match commit_built(&*self.store, &Arc::new(built.batch), built.start.next_seq, &built.issued) {
            Ok(()) => {
                tracing::debug!(commit_us = began.elapsed().as_micros() as u64, "batch committed");
                built.results
            }
            Err(e) => {
                self.reset(built.start);
                storage_failure(submissions.len(), &e)
            }
        }
    }

    /// Validates, signs and folds a batch without committing it: the caller commits
    /// `batch` (after `parent`, which must be committed first) and answers with
    /// `results` once it is durable, or calls [`Self::reset`] with `start` if the commit
    /// fails. The head moves past the batch at once, so the next batch can be built
    /// on top of it while this one is flushed.
    pub fn build(&mut self, parent: Option<&WriteBatch>, submissions: &[Submission]) -> Built {
        let preworker = self.preworker();
        let mut prework: Vec<Prework> = submissions.iter().map(|s| preworker.work(s)).collect();
        self.build_prepared(parent, None, submissions, &mut prework)
    }

    /// Does the work of a command that does not depend on the log's order, with this
    /// writer's secrets and search: for a caller to do ahead, on its own thread, and
    /// pass to [`Self::build_prepared`].
    pub fn preworker(&self) -> Preworker {
        Preworker::new(Arc::clone(&self.secrets), self.duplicate_threshold.is_some())
    }

    /// [`Self::build`] of submissions whose [`Prework`] is done, `prework[i]` that of
    /// `submissions[i]` (a submission without one, or with one done under other
    /// secrets or with the search off, has it done here); `prework` is left empty.
    /// `parent_keys`, if given, are `parent`'s fingerprints, as its own
    /// [`Built::keys`].
    pub fn build_prepared(
        &mut self,
        parent: Option<&WriteBatch>,
        parent_keys: Option<BatchKeys>,
        submissions: &[Submission],
        prework: &mut Vec<Prework>,
    ) -> Built {
        let preworker = self.preworker();
        let start = self.head;
        let start_tree = self.tree.clone();
        let store = Arc::clone(&self.store);
        let mut view = View::over_with_keys(&*store, parent, parent_keys);
        let time = now_micros().max(self.head.time_micros);
        let began = std::time::Instant::now();
        let ahead = self.ahead_work(&preworker, prework);
        self.searched.set((0, 0));
        // Each search's block-mates, opened ahead on another thread from the batch's
        // last registration backwards while this one builds from its first: a search
        // takes what is there when it comes, and opens the rest itself.
        let slots: Vec<Mutex<Option<OpenedAhead>>> = match ahead {
            Some(_) => submissions.iter().map(|_| Mutex::default()).collect(),
            None => Vec::new(),
        };
        let front = AtomicUsize::new(0);
        let secrets = Arc::clone(&self.secrets);
        let mut prework = prework.drain(..);
        let mut results = Vec::with_capacity(submissions.len());
        let mut issued = IssuedNumbers::default();
        let abandoned = std::thread::scope(|scope| {
            let helper = ahead.map(|(floor, work)| {
                let (slots, front, secrets, store) = (&slots, &front, &*secrets, &*store);
                scope.spawn(move || open_from_the_back(store, parent, secrets, work, floor, slots, front))
            });
            let mut abandoned = None;
            for (i, submission) in submissions.iter().enumerate() {
                front.store(i + 1, Ordering::Release);
                self.opened_ahead = slots.get(i).and_then(|slot| slot.lock().ok()?.take());
                let work = preworker.reuse_or_work(prework.next(), submission);
                let result = self.execute(&mut view, submission, work, time, &mut issued);
                // What was opened ahead (personal data) is not kept past its search.
                self.opened_ahead = None;
                if let Err(CommandError::Internal(reason)) = &result {
                    abandoned = Some(reason.clone());
                    break;
                }
                results.push(result);
            }
            front.store(usize::MAX, Ordering::Release);
            // Joined here, so that a panic there costs only what it would have opened.
            if let Some(Err(_)) = helper.map(|h| h.join()) {
                tracing::error!("the thread opening block-mates ahead panicked; the searches opened them themselves");
            }
            abandoned
        });
        drop(slots);
        if let Some(reason) = abandoned {
            // A fold or read failure mid-batch leaves the view half-written: drop it all.
            tracing::error!(%reason, "batch abandoned");
            // The batch in flight below this one may not be committed yet: restore
            // the frontier from memory rather than from the store.
            self.head = start;
            self.tree = start_tree;
            let results = submissions.iter().map(|_| Err(CommandError::Internal(reason.clone()))).collect();
            return Built {
                batch: WriteBatch::default(),
                results,
                start,
                issued: IssuedNumbers::default(),
                keys: None,
            };
        }
        if self.head.next_seq > start.next_seq {
            fold::mark_applied(&mut view, self.head.next_seq - 1);
        }
        let (batch, keys) = view.take_batch_and_keys();
        tracing::debug!(
            commands = submissions.len(),
            records = self.head.next_seq - start.next_seq,
            writes = batch.len(),
            build_us = began.elapsed().as_micros() as u64,
            "batch built"
        );
        Built { batch, results, start, issued, keys }
    }

    /// The search's threshold and the probes whose block-mates are opened ahead for
    /// this batch, each with its command's place in the batch, if [`OpenAhead`] says
    /// so (the last batch's searches found their blocks crowded, or always) and the
    /// batch has two searches or more.
    fn ahead_work(&self, preworker: &Preworker, prework: &[Prework]) -> Option<(f32, Vec<(usize, Probe)>)> {
        let floor = self.duplicate_threshold?;
        let crowded = match self.open_ahead {
            OpenAhead::Never => false,
            OpenAhead::Always => true,
            OpenAhead::WhenCrowded => {
                let (searches, examined) = self.searched.get();
                self.cores > 1 && searches > 0 && examined as f64 >= OPEN_AHEAD_FROM * f64::from(searches)
            }
        };
        if !crowded {
            return None;
        }
        let work: Vec<(usize, Probe)> =
            prework.iter().enumerate().filter_map(|(i, w)| Some((i, preworker.probe_of(w)?.clone()))).collect();
        (work.len() >= 2).then_some((floor, work))
    }

    /// Moves the head back to `start` after the batch built from there (and any built
    /// on top of it) failed to commit.
    pub fn reset(&mut self, start: Head) {
        self.rewind(start);
    }

    /// Moves the head back to `start` and reloads the tree's frontier there from what
    /// is committed.
    fn rewind(&mut self, start: Head) {
        self.head = start;
        self.tree = match crate::merkle_store::TreeEdge::load(&*self.store, start.next_seq) {
            Ok(tree) => Some(tree),
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the tree's frontier; appends are refused until a restart");
                None
            }
        };
    }

    /// The size of the log as built so far and the root of its RFC 6962 tree.
    pub fn tree_head(&self) -> Option<(u64, huduma_log::merkle::Hash)> {
        self.tree.as_ref().map(|t| (t.size(), t.root()))
    }

    /// The key signing new records (and checkpoints).
    pub fn key(&self) -> &LogKey {
        &self.key
    }

    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// Rotates the log key: a `LogKeyRotated` record signed by the old key, carrying the
    /// new key's consent; later records are signed by the new key.
    pub fn rotate_key(&mut self, new_key: LogKey, actor: Actor) -> Result<Outcome, CommandError> {
        check_identifier("actor.principal", &actor.principal)?;
        let mut consent = ROTATION_DOMAIN.to_vec();
        consent.extend_from_slice(self.key.public().as_bytes());
        consent.extend_from_slice(new_key.public().as_bytes());
        let event = Event::LogKeyRotated(event::LogKeyRotated {
            actor,
            new_public_key: new_key.public().to_bytes(),
            new_key_signature: new_key.sign(&consent).to_vec(),
        });
        let receipt = self.commit_alone(&event, |_| ())?;
        self.key = new_key;
        Ok(Outcome { receipt, number: None })
    }

    /// Appends one event as a batch of its own (with `extra` writes) and commits it
    /// durably; on failure the head goes back to before it.
    fn commit_alone(&mut self, event: &Event, extra: impl FnOnce(&mut View<'_>)) -> Result<Receipt, CommandError> {
        let start = self.head;
        let store = Arc::clone(&self.store);
        let mut view = View::new(&*store);
        let time = now_micros().max(self.head.time_micros);
        let receipt = match self.append(&mut view, event, time, None) {
            Ok(receipt) => receipt,
            Err(e) => {
                self.rewind(start);
                return Err(e);
            }
        };
        fold::mark_applied(&mut view, receipt.index);
        extra(&mut view);
        if let Err(e) = store.commit(&view.take_batch(), true) {
            self.rewind(start);
            return Err(CommandError::Unavailable(format!("storage: {e}")));
        }
        Ok(receipt)
    }

    /// Signs and folds one event as the next record (with what its fold needs, if the
    /// caller derived that already).
    fn append(
        &mut self,
        view: &mut View<'_>,
        event: &Event,
        time_micros: i64,
        prepared: Option<fold::Prepared>,
    ) -> Result<Receipt, CommandError> {
        let seq = self.head.next_seq;
        let header =
            Header { seq, time_micros, prev_hash: self.head.hash, key_id: self.key.id(), kind: event.kind_version() };
        let bytes = record::encode(&header, &event.encode_payload(), &self.key);
        match prepared {
            Some(prepared) => fold::fold_prepared(view, &self.secrets, seq, event, prepared, Upkeep::InPlace)?,
            None => fold::fold(view, &self.secrets, seq, event)?,
        }
        let tree = self.tree.as_mut().ok_or_else(|| internal("the tree's frontier is unavailable; restart"))?;
        crate::merkle_store::append(view, tree, seq, &bytes).map_err(|c| internal(ReadError::from(c)))?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[bytes.len() - record::SIGNATURE_LEN..]);
        // Hashed once, for the chain and for the store's checksum.
        let record = HashedRecord::new(bytes);
        let record_hash = *record.hash();
        view.put_record(seq_key(seq).to_vec(), record);
        self.head = Head { next_seq: seq + 1, hash: record_hash, time_micros };
        Ok(Receipt { index: seq, record_hash, signature })
    }

    /// Executes one submission into `view`, noting in `issued` the number it issues.
    fn execute(
        &mut self,
        view: &mut View<'_>,
        s: &Submission,
        work: Prework,
        time: i64,
        issued: &mut IssuedNumbers,
    ) -> Result<Outcome, CommandError> {
        check_identifier("request_id", &s.request_id)?;
        check_identifier("actor.principal", &s.actor.principal)?;
        check_identifier("actor.via", &s.actor.via)?;
        let request_key = self.secrets.request_key(&s.actor.principal, &s.request_id).to_vec();
        let fingerprint = work.fingerprint;
        let mut first = state::read::<RequestEntry>(view, Tree::Requests, &request_key)?;
        if first.is_none() && self.legacy_request_keys {
            let legacy = legacy_request_key(&s.actor.principal, &s.request_id);
            first = state::read::<RequestEntry>(view, Tree::Requests, &legacy)?;
        }
        if let Some(first) = first {
            if first.fingerprint != fingerprint {
                return Err(CommandError::RequestIdReused(s.request_id.clone()));
            }
            return self.replay_answer(view, &first);
        }
        let (event, number, prepared) = self.prepare(view, s, work.registration, time)?;
        let receipt = self.append(view, &event, time, prepared)?;
        match &event {
            Event::PersonRegistered(e) => issued.insert(e.number),
            Event::NumberReplaced(e) => issued.insert(e.new_number),
            _ => {}
        }
        let entry = RequestEntry { fingerprint, seq: receipt.index, number };
        view.put(Tree::Requests, request_key, &state::encode(&entry));
        Ok(Outcome { receipt, number })
    }

    fn replay_answer(&self, view: &View<'_>, first: &RequestEntry) -> Result<Outcome, CommandError> {
        let bytes = view
            .get(Tree::Log, &seq_key(first.seq))?
            .ok_or_else(|| internal(format!("request index names missing record {}", first.seq)))?;
        let record = RecordRef::parse(&bytes).map_err(internal)?;
        Ok(Outcome {
            receipt: Receipt { index: first.seq, record_hash: record.hash(), signature: record.signature().to_bytes() },
            number: first.number,
        })
    }

    /// An agency's record id as its link events carry it: sealed under the agency's
    /// record key, so that the log shows no agency's id for anyone.
    fn seal_record_id(&self, person: PersonId, agency: &str, record_id: &str) -> event::PrivateText {
        let key = self.secrets.agency_record_key(agency);
        event::PrivateText::Sealed(Sealed::seal_field(&key, person, Field::AgencyRecordId, record_id.as_bytes()))
    }

    fn issue(&self, view: &View<'_>) -> Result<crate::issuer::Issued, CommandError> {
        // Distinct by construction: a permutation of a counter that only grows. The
        // permutation's key cannot change under a store (the secrets fingerprint is
        // checked at open), so no look-up is needed here.
        let from = state::read_u64(view, meta::NEXT_COUNTER)?.unwrap_or(0);
        self.issuer.issue_from(from).map_err(internal)
    }

    /// The data key `action` seals with. An active person whose key is a tombstone was
    /// registered in records a restore took back without their keys (`tail_import`):
    /// nothing is sealed for them until their demographics are corrected, which renews
    /// it ([`Self::data_key_renewed_if_lost`]).
    fn data_key(
        &self,
        view: &View<'_>,
        person: PersonId,
        number: HudumaNumber,
        action: &'static str,
    ) -> Result<crate::sealed::DataKey, CommandError> {
        fold::keyring_entry(view, &self.secrets, person)?
            .in_force()
            .ok_or(CommandError::PersonalDataKeyLost { action, number })
    }

    /// The data key a correction of an active person's demographics seals with: theirs,
    /// or, when a restore lost it, a new one in force from this record on (what earlier
    /// records sealed under the lost key stays unreadable), written to the keyring in
    /// the same batch as the record.
    fn data_key_renewed_if_lost(
        &self,
        view: &mut View<'_>,
        person: PersonId,
    ) -> Result<crate::sealed::DataKey, CommandError> {
        if let Some(key) = fold::keyring_entry(view, &self.secrets, person)?.in_force() {
            return Ok(key);
        }
        let key = crate::sealed::DataKey::generate();
        let from_seq = self.head.next_seq;
        let entry = keyring::seal_renewed_entry(self.secrets.keyring_key(), person, &key, from_seq);
        view.put(Tree::Keyring, person_key(person), &entry);
        tracing::info!(person = person.0, from_seq, "a lost data key renewed by a correction of the demographics");
        Ok(key)
    }

    /// The duplicate search for a registration or a correction (of `corrected`, who is
    /// not their own duplicate): refuses it if another registered person scores at or
    /// above the threshold and no justification overrides that; returns what an
    /// override records.
    fn check_duplicates(
        &self,
        view: &View<'_>,
        probe: Option<Probe>,
        justification: Option<String>,
        corrected: Option<PersonId>,
    ) -> Result<Option<event::DuplicateOverride>, CommandError> {
        let (Some(threshold), Some(probe)) = (self.duplicate_threshold, probe) else { return Ok(None) };
        let ahead = self.opened_ahead.as_ref();
        let found = crate::dedup::find_probed(view, &self.secrets, probe, threshold, 5, ahead, corrected)?;
        let (searches, examined) = self.searched.get();
        self.searched.set((searches.saturating_add(1), examined.saturating_add(found.examined as u64)));
        let found = found.candidates;
        if found.is_empty() {
            return Ok(None);
        }
        let centi = |score: f32| (score * 100.0).round().clamp(0.0, u32::MAX as f32) as u32;
        match justification {
            None => Err(CommandError::PossibleDuplicate {
                candidates: found.iter().map(|c| (c.number, centi(c.score))).collect(),
            }),
            Some(justification) => Ok(Some(event::DuplicateOverride {
                justification,
                candidates: found
                    .iter()
                    .map(|c| event::OverriddenCandidate { number: c.number, score_centi: centi(c.score) })
                    .collect(),
            })),
        }
    }

    /// Validates a command against the projections and builds its event, with what
    /// its fold needs if derived here (a registration's match material, from the
    /// demographics in the clear rather than opened again). Writes nothing to the view
    /// except, for a registration, the new person's keyring entry.
    fn prepare(
        &self,
        view: &mut View<'_>,
        s: &Submission,
        registration: Option<RegistrationPrework>,
        time: i64,
    ) -> Result<(Event, Option<HudumaNumber>, Option<fold::Prepared>), CommandError> {
        let actor = s.actor.clone();
        let today = date_of(time);
        if let Command::RegisterPerson { demographics }
        | Command::RegisterPersonOverridingDuplicates { demographics, .. } = &s.command
        {
            // Prework done for another command has none (`Preworker::reuse_or_work`).
            let work = registration.unwrap_or_else(|| {
                RegistrationPrework::of(&self.secrets, demographics, self.duplicate_threshold.is_some())
            });
            let (event, number) = self.prepare_registration(view, s, demographics, work.probe, today)?;
            let material = fold::MatchMaterial::new(PersonId(self.head.next_seq), work.keys);
            return Ok((event, number, Some(fold::Prepared::registration(material))));
        }
        let (event, number) = self.prepare_change(view, s, actor, today)?;
        // A link's fold needs its record id, which the event holds sealed: it is taken
        // from the command, in the clear, instead of opened again.
        let prepared = match &s.command {
            Command::LinkAgencyRecord { agency, record_id, .. } => {
                Some(fold::Prepared::link(LinkedRecord::new(&self.secrets, agency, record_id)))
            }
            _ => None,
        };
        Ok((event, number, prepared))
    }

    /// A registration's event: the search for duplicates, the number, the person's key.
    fn prepare_registration(
        &self,
        view: &mut View<'_>,
        s: &Submission,
        demographics: &Demographics,
        probe: Option<Probe>,
        today: time::Date,
    ) -> Result<(Event, Option<HudumaNumber>), CommandError> {
        demographics.validate(today)?;
        let justification = s.command.duplicate_override()?;
        let duplicate_override = self.check_duplicates(view, probe, justification, None)?;
        let issued = self.issue(view)?;
        let person = PersonId(self.head.next_seq);
        let data_key = crate::sealed::DataKey::generate();
        let sealed = seal_demographics(&data_key, person, demographics);
        view.put(
            Tree::Keyring,
            person_key(person),
            &keyring::seal_entry(self.secrets.keyring_key(), person, &data_key),
        );
        let event = Event::PersonRegistered(event::PersonRegistered {
            actor: s.actor.clone(),
            number: issued.number,
            counter: issued.counter,
            demographics: sealed,
            duplicate_override,
        });
        Ok((event, Some(issued.number)))
    }

    /// The event of any command but a registration.
    fn prepare_change(
        &self,
        view: &mut View<'_>,
        s: &Submission,
        actor: Actor,
        today: time::Date,
    ) -> Result<(Event, Option<HudumaNumber>), CommandError> {
        Ok(match &s.command {
            Command::RegisterPerson { .. } | Command::RegisterPersonOverridingDuplicates { .. } => {
                return Err(internal("a registration is prepared by prepare_registration"));
            }
            Command::ReplaceNumber { number, reason } => {
                let (person, _) = current_person(view, *number, "replace the number", kind::NUMBER_REPLACED)?;
                let issued = self.issue(view)?;
                let event = Event::NumberReplaced(event::NumberReplaced {
                    actor,
                    person,
                    old_number: *number,
                    new_number: issued.number,
                    counter: issued.counter,
                    reason: *reason,
                });
                (event, Some(issued.number))
            }
            Command::CorrectDemographics { number, demographics }
            | Command::CorrectDemographicsOverridingDuplicates { number, demographics, .. } => {
                demographics.validate(today)?;
                let justification = s.command.duplicate_override()?;
                let (person, _) = current_person(view, *number, "correct demographics", kind::DEMOGRAPHICS_CORRECTED)?;
                // The corrected person is searched for as a registration is, among
                // everyone else: a correction must not make one person two.
                let probe = self.duplicate_threshold.map(|_| Probe::of(&self.secrets, Profile::of(demographics)));
                let duplicate_override = self.check_duplicates(view, probe, justification, Some(person))?;
                let key = self.data_key_renewed_if_lost(view, person)?;
                let sealed = seal_demographics(&key, person, demographics);
                let event = event::DemographicsCorrected { actor, person, demographics: sealed, duplicate_override };
                (Event::DemographicsCorrected(event), None)
            }
            Command::LinkAgencyRecord { number, agency, record_id } => {
                check_agency("record.agency", agency)?;
                check_identifier("record.record_id", record_id)?;
                let (person, _) = current_person(view, *number, "link a record", kind::AGENCY_RECORD_LINKED)?;
                if let Some(linked) = view.get(Tree::AgencyLinks, &agency_link_key(&self.secrets, agency, record_id))? {
                    return Err(CommandError::RecordAlreadyLinked {
                        agency: agency.clone(),
                        record_id: record_id.clone(),
                        to_this_person: linked == person_key(person),
                    });
                }
                let event = Event::AgencyRecordLinked(event::AgencyRecordLinked {
                    actor,
                    person,
                    agency: agency.clone(),
                    record_id: self.seal_record_id(person, agency, record_id),
                });
                (event, None)
            }
            Command::UnlinkAgencyRecord { number, agency, record_id } => {
                check_agency("record.agency", agency)?;
                check_identifier("record.record_id", record_id)?;
                let (person, _, _) = person_by_number(view, *number)?;
                let linked = view.get(Tree::AgencyLinks, &agency_link_key(&self.secrets, agency, record_id))?;
                if linked.as_deref() != Some(person_key(person).as_slice()) {
                    return Err(CommandError::LinkNotFound { agency: agency.clone(), record_id: record_id.clone() });
                }
                let event = Event::AgencyRecordUnlinked(event::AgencyRecordUnlinked {
                    actor,
                    person,
                    agency: agency.clone(),
                    record_id: self.seal_record_id(person, agency, record_id),
                });
                (event, None)
            }
            Command::RecordDeath { number, date_of_death } => {
                demographics::check_past_date("date_of_death", date_of_death, today)?;
                let (person, _) = current_person(view, *number, "record a death", kind::DEATH_RECORDED)?;
                let key = self.data_key(view, person, *number, "record a death")?;
                let sealed = Sealed::seal_field(&key, person, Field::DateOfDeath, date_of_death.as_bytes());
                let date_of_death = event::PrivateText::Sealed(sealed);
                let event = Event::DeathRecorded(event::DeathRecorded { actor, person, date_of_death });
                (event, None)
            }
            Command::RevokeNumber { number, reason } => {
                check_reason("reason", reason)?;
                let (person, _) = current_person(view, *number, "revoke", kind::NUMBER_REVOKED)?;
                (Event::NumberRevoked(event::NumberRevoked { actor, person, reason: reason.clone() }), None)
            }
            Command::ReinstateNumber { number, reason } => {
                check_reason("reason", reason)?;
                let (person, _) = current_person(view, *number, "reinstate", kind::NUMBER_REINSTATED)?;
                (Event::NumberReinstated(event::NumberReinstated { actor, person, reason: reason.clone() }), None)
            }
            Command::RetractDeath { number, reason } => {
                check_reason("reason", reason)?;
                let (person, _) = current_person(view, *number, "retract a death", kind::DEATH_RETRACTED)?;
                (Event::DeathRetracted(event::DeathRetracted { actor, person, reason: reason.clone() }), None)
            }
            Command::MergeRecords { survivor, duplicate, justification } => {
                check_reason("justification", justification)?;
                let (survivor_id, survivor_entry) =
                    current_person(view, *survivor, "merge into", kind::RECORDS_MERGED)?;
                let (duplicate_id, duplicate_entry) = current_person(view, *duplicate, "merge", kind::RECORDS_MERGED)?;
                if survivor_id == duplicate_id {
                    return Err(CommandError::field("duplicate", "names the same person as survivor"));
                }
                check_merge_conflicts(
                    &self.secrets,
                    (survivor_id, &survivor_entry.agency_records),
                    (duplicate_id, &duplicate_entry.agency_records),
                )?;
                let event = Event::RecordsMerged(event::RecordsMerged {
                    actor,
                    survivor: survivor_id,
                    duplicate: duplicate_id,
                    justification: justification.clone(),
                });
                (event, None)
            }
            Command::UnmergeRecords { duplicate, justification } => {
                check_reason("justification", justification)?;
                let (duplicate_id, duplicate_entry) =
                    current_person(view, *duplicate, "unmerge", kind::RECORDS_UNMERGED)?;
                let survivor_id = duplicate_entry
                    .merged_into
                    .ok_or_else(|| internal(format!("merged number {duplicate} names no survivor")))?;
                let survivor: PersonEntry = state::read(view, Tree::Persons, &person_key(survivor_id))?
                    .ok_or_else(|| internal(format!("merged number {duplicate} names a missing survivor")))?;
                // The merge's records moved on with the survivor's own merge: that merge
                // is undone first.
                if survivor.status == PersonStatus::Merged {
                    return Err(CommandError::SurvivorMergedSince {
                        duplicate: *duplicate,
                        survivor: survivor.current_number,
                    });
                }
                let event = Event::RecordsUnmerged(event::RecordsUnmerged {
                    actor,
                    survivor: survivor_id,
                    duplicate: duplicate_id,
                    justification: justification.clone(),
                });
                (event, None)
            }
            Command::ErasePersonalData { number, legal_basis } => {
                check_reason("legal_basis", legal_basis)?;
                let (person, entry, _) = person_by_number(view, *number)?;
                if !status_rules::allows(kind::PERSONAL_DATA_ERASED, entry.status) {
                    return Err(CommandError::StatusForbids { action: "erase", number: *number, status: entry.status });
                }
                let event = Event::PersonalDataErased(event::PersonalDataErased {
                    actor,
                    person,
                    legal_basis: legal_basis.clone(),
                });
                (event, None)
            }
        })
    }
}

fn seal_demographics(key: &crate::sealed::DataKey, person: PersonId, demographics: &Demographics) -> Sealed {
    let plain = postcard::to_allocvec(demographics).unwrap_or_default();
    Sealed::seal(key, person, &plain)
}

/// The person a number names, whatever its state.
fn person_by_number(
    view: &View<'_>,
    number: HudumaNumber,
) -> Result<(PersonId, PersonEntry, NumberEntry), CommandError> {
    let entry: NumberEntry =
        state::read(view, Tree::Numbers, &number_key(number))?.ok_or(CommandError::NumberNotFound(number))?;
    let person: PersonEntry = state::read(view, Tree::Persons, &person_key(entry.person))?
        .ok_or_else(|| internal(format!("number {number} names a missing person")))?;
    Ok((entry.person, person, entry))
}

/// The person a number names, refusing a superseded number or a status an event of
/// `event_kind` does not allow ([`status_rules`]).
fn current_person(
    view: &View<'_>,
    number: HudumaNumber,
    action: &'static str,
    event_kind: u16,
) -> Result<(PersonId, PersonEntry), CommandError> {
    let (person, entry, number_entry) = person_by_number(view, number)?;
    if entry.status != PersonStatus::Merged && number_entry.superseded_by.is_some() {
        return Err(CommandError::NumberSuperseded { number, current: entry.current_number });
    }
    if !status_rules::allows(event_kind, entry.status) {
        return Err(CommandError::StatusForbids { action, number, status: entry.status });
    }
    Ok((person, entry))
}

/// Refuses a merge where the duplicate holds a record of an agency for which the
/// survivor holds other records only.
fn check_merge_conflicts(
    secrets: &Secrets,
    (survivor, survivor_links): (PersonId, &[LinkedRecord]),
    (duplicate, duplicate_links): (PersonId, &[LinkedRecord]),
) -> Result<(), CommandError> {
    for record in duplicate_links {
        let mut held = survivor_links.iter().filter(|r| r.agency == record.agency);
        let Some(survivor_record) = held.clone().next() else { continue };
        if held.any(|r| r.link == record.link) {
            continue;
        }
        let open = |record: &LinkedRecord, person: PersonId| {
            record.open(secrets, Tree::Persons, &person_key(person)).map_err(|c| internal(ReadError::from(c)))
        };
        return Err(CommandError::MergeConflict {
            agency: record.agency.clone(),
            survivor_record: open(survivor_record, survivor)?,
            duplicate_record: open(record, duplicate)?,
        });
    }
    Ok(())
}
