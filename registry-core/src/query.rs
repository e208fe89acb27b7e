//! Look-ups served from the projections: resolve a number or an agency record to a
//! person, their status and (decrypted on the way out) their demographics. Reads go
//! straight to the store and never wait for the writer.

use std::sync::Arc;

use huduma_number::HudumaNumber;

use crate::PersonId;
use crate::demographics::Demographics;
use crate::event::Event;
use crate::keys::VerifyingKey;
use crate::projection::fold::{FoldError, keyring_entry, open_demographics_with};
use crate::projection::state::{
    self, AgencyChange, LinkedRecord, NumberEntry, PersonEntry, PersonStatus, agency_change_key, agency_link_key, meta,
    number_key, person_key,
};
use crate::secrets::Secrets;
use crate::storage::view::{Corruption, ReadError, View};
use crate::storage::{Storage, Tree};

/// The status a resolution reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResolvedStatus {
    Active,
    /// The number asked for was replaced; `current_number` is the one in force.
    Superseded,
    Revoked,
    Deceased,
    /// The person was merged into another; `current_number` is the survivor's.
    Merged,
    Erased,
}

/// What a look-up answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub person: PersonId,
    pub status: ResolvedStatus,
    /// The number in force for this person (the survivor's, after a merge).
    pub current_number: HudumaNumber,
    /// `None` once erased, or while `personal_data_lost`.
    pub demographics: Option<Demographics>,
    pub date_of_death: Option<String>,
    /// The person's entry holds personal data that no key opens: their key was lost
    /// with a data directory a backup was restored over, their registration taken back
    /// without it (`tail_import`). A correction of their demographics enrols it again.
    pub personal_data_lost: bool,
    /// The person's agency records as their entry keeps them, sealed: a look-up opens
    /// only those it shows ([`Reader::agency_records`]).
    pub agency_records: Vec<LinkedRecord>,
    /// Whose entry holds `agency_records` (the survivor, for a merged person).
    pub holder: PersonId,
}

/// A change that concerns an agency, as `WatchChanges` streams it: the stored
/// [`AgencyChange`] with the agency's record ids opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The person the record changed (the survivor, for a merge).
    pub person: PersonId,
    /// The event kind of the record (`event::kind`).
    pub kind: u16,
    /// The person's number in force after the record.
    pub number: HudumaNumber,
    /// The person's status after the record.
    pub status: PersonStatus,
    /// The agency's record ids the change concerns (linked before or after), sorted.
    pub records: Vec<String>,
}

/// Whom a look-up found, as its access record names them: the person asked for, their
/// status and the number in force. Nothing sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub person: PersonId,
    pub status: ResolvedStatus,
    pub current_number: HudumaNumber,
}

impl Resolution {
    pub fn subject(&self) -> Subject {
        Subject { person: self.person, status: self.status, current_number: self.current_number }
    }
}

/// A person found by a look-up, before anything sealed is opened.
struct Found {
    subject: Subject,
    /// The person in force (the survivor, for a merged person) and their entry (its
    /// history taken, if it is the person asked for).
    effective: PersonId,
    effective_entry: PersonEntry,
    /// The history of the person asked for (not the survivor's).
    asked_history: Vec<u64>,
}

/// One record of a person's history, as the log holds it: its index, its time and its
/// event (what the event seals stays sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    pub index: u64,
    /// Unix microseconds, as the record's header says.
    pub time_micros: i64,
    pub event: Event,
}

/// A page of a person's history ([`Reader::history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The person asked for, as they are now.
    pub subject: Subject,
    pub records: Vec<HistoryRecord>,
    /// The log index the next page starts at; `None` when this page is the last.
    pub next: Option<u64>,
}

/// Why a look-up failed, apart from "not found".
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Fold(#[from] FoldError),
}

/// How many merges a look-up follows before calling the chain corrupt.
const MAX_MERGE_HOPS: usize = 32;

/// A cheap, cloneable read handle.
#[derive(Clone)]
pub struct Reader {
    store: Arc<dyn Storage>,
    secrets: Arc<Secrets>,
    tree_cache: Arc<crate::merkle_store::TreeCache>,
}

impl Reader {
    pub fn new(store: Arc<dyn Storage>, secrets: Arc<Secrets>) -> Self {
        Self::with_tree_cache(store, secrets, Arc::default())
    }

    /// A reader sharing the tree's in-memory upper levels with others.
    pub fn with_tree_cache(
        store: Arc<dyn Storage>,
        secrets: Arc<Secrets>,
        tree_cache: Arc<crate::merkle_store::TreeCache>,
    ) -> Self {
        Self { store, secrets, tree_cache }
    }

    /// Resolves a number. `Ok(None)` when it was never issued.
    pub fn resolve_number(&self, number: HudumaNumber) -> Result<Option<Resolution>, QueryError> {
        let view = View::new(&*self.store);
        self.find_number(&view, number)?.map(|found| self.open(&view, found)).transpose()
    }

    /// Whom a number names (status and number in force), opening nothing sealed: what
    /// an access record needs of a person a look-up showed. `Ok(None)` when it was
    /// never issued.
    pub fn subject(&self, number: HudumaNumber) -> Result<Option<Subject>, QueryError> {
        Ok(self.find_number(&View::new(&*self.store), number)?.map(|found| found.subject))
    }

    /// Resolves an agency's record id. `Ok(None)` when no person holds it.
    pub fn resolve_agency_record(&self, agency: &str, record_id: &str) -> Result<Option<Resolution>, QueryError> {
        let view = View::new(&*self.store);
        let key = agency_link_key(&self.secrets, agency, record_id);
        let Some(person) = view.get(Tree::AgencyLinks, &key)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = person
            .as_slice()
            .try_into()
            .map_err(|_| ReadError::from(Corruption::new(Tree::AgencyLinks, &key, "not a person id")))?;
        let found = self.find_person(&view, PersonId(u64::from_be_bytes(bytes)), false)?;
        self.open(&view, found).map(Some)
    }

    /// Resolves `agency`'s token for a person (see `agency_token`). `Ok(None)` for
    /// anything that is not one of that agency's tokens of a registered person.
    pub fn resolve_agency_token(&self, agency: &str, token: &str) -> Result<Option<Resolution>, QueryError> {
        let Some(person) = crate::agency_token::person(&self.secrets, agency, token) else {
            return Ok(None);
        };
        let view = View::new(&*self.store);
        if view.get(Tree::Persons, &person_key(person))?.is_none() {
            return Ok(None);
        }
        let found = self.find_person(&view, person, false)?;
        self.open(&view, found).map(Some)
    }

    /// The registered persons scoring at least `floor` against `d`, best first (the
    /// duplicate search: see `dedup`), `excluded` left out (the person a correction
    /// to `d` would be made to, as the correction's own search leaves them).
    pub fn find_duplicates(
        &self,
        d: &Demographics,
        floor: f32,
        limit: usize,
        excluded: Option<PersonId>,
    ) -> Result<Vec<crate::dedup::Candidate>, QueryError> {
        Ok(crate::dedup::find(&View::new(&*self.store), &self.secrets, d, floor, limit, excluded)?)
    }

    /// The token `agency` sees `person` by.
    pub fn agency_token(&self, agency: &str, person: PersonId) -> String {
        crate::agency_token::token(&self.secrets, agency, person)
    }

    /// The person with `number` (any of their numbers, current or not) and a page of
    /// the records that changed them, oldest first: their registration, and every
    /// record since that named them (a merge or an unmerge on either side, a duplicate
    /// search overridden past them). The page holds at most `limit` records, from log
    /// index `from` on. `Ok(None)` when the number was never issued. Each record is
    /// read from the log, its checksum checked; only the page's records are read.
    pub fn history(&self, number: HudumaNumber, from: u64, limit: usize) -> Result<Option<HistoryPage>, QueryError> {
        // Nothing sealed is opened: a history never shows personal data.
        let Some(found) = self.find_number(&View::new(&*self.store), number)? else {
            return Ok(None);
        };
        // A person's history is kept in log order.
        let start = found.asked_history.partition_point(|&seq| seq < from);
        let rest = found.asked_history.get(start..).unwrap_or_default();
        let (page, after) = rest.split_at(limit.min(rest.len()));
        let records = page.iter().map(|&seq| self.history_record(seq)).collect::<Result<_, _>>()?;
        Ok(Some(HistoryPage { subject: found.subject, records, next: after.first().copied() }))
    }

    fn history_record(&self, seq: u64) -> Result<HistoryRecord, QueryError> {
        let key = seq.to_be_bytes();
        let corrupt = |why: String| QueryError::from(ReadError::from(Corruption::new(Tree::Log, &key, why)));
        let bytes = crate::storage::view::get_checked(&*self.store, Tree::Log, &key)?
            .ok_or_else(|| corrupt("a record of a person's history is missing".into()))?;
        let record = crate::record::RecordRef::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if record.header.seq != seq {
            return Err(corrupt(format!("holds record {}", record.header.seq)));
        }
        let event = Event::decode(record.header.kind, record.payload).map_err(|e| corrupt(e.to_string()))?;
        Ok(HistoryRecord { index: seq, time_micros: record.header.time_micros, event })
    }

    /// The number in force of a person a record names (one the projections do not hold
    /// is corruption).
    pub fn current_number(&self, person: PersonId) -> Result<HudumaNumber, QueryError> {
        Ok(self.person(&View::new(&*self.store), person)?.current_number)
    }

    fn person(&self, view: &View<'_>, person: PersonId) -> Result<PersonEntry, QueryError> {
        let key = person_key(person);
        state::read(view, Tree::Persons, &key)?
            .ok_or_else(|| ReadError::from(Corruption::new(Tree::Persons, &key, "named but missing")).into())
    }

    /// The person any of whose numbers is `number`, found ([`Self::find_person`]);
    /// `None` when it was never issued.
    fn find_number(&self, view: &View<'_>, number: HudumaNumber) -> Result<Option<Found>, QueryError> {
        let Some(entry) = state::read::<NumberEntry>(view, Tree::Numbers, &number_key(number))? else {
            return Ok(None);
        };
        self.find_person(view, entry.person, entry.superseded_by.is_some()).map(Some)
    }

    /// `found` resolved: their sealed demographics and date of death opened.
    fn open(&self, view: &View<'_>, found: Found) -> Result<Resolution, QueryError> {
        let Found { subject, effective, effective_entry, asked_history: _ } = found;
        // The data key opens the demographics and the date of death; none is read
        // for a person with neither (erased).
        let data_key = if effective_entry.demographics.is_some() || effective_entry.date_of_death.is_some() {
            keyring_entry(view, &self.secrets, effective)?.in_force()
        } else {
            None
        };
        let (mut demographics, mut date_of_death) = (None, None);
        if let Some(key) = &data_key {
            if let Some(sealed) = &effective_entry.demographics {
                demographics = Some(open_demographics_with(key, effective, sealed)?);
            }
            if let Some(sealed) = &effective_entry.date_of_death {
                date_of_death = Some(state::open_date_of_death(key, effective, sealed).map_err(ReadError::from)?);
            }
        }
        let personal_data_lost =
            data_key.is_none() && (effective_entry.demographics.is_some() || effective_entry.date_of_death.is_some());
        Ok(Resolution {
            person: subject.person,
            status: subject.status,
            current_number: subject.current_number,
            demographics,
            date_of_death,
            personal_data_lost,
            agency_records: effective_entry.agency_records,
            holder: effective,
        })
    }

    /// The person `asked` for (by a number `superseded` or not), followed along their
    /// merges to the person in force; nothing sealed is opened.
    fn find_person(&self, view: &View<'_>, asked: PersonId, superseded: bool) -> Result<Found, QueryError> {
        let mut entry = self.person(view, asked)?;
        let asked_status = entry.status;
        let asked_history = std::mem::take(&mut entry.history);
        let (effective, effective_entry) = if entry.status == PersonStatus::Merged {
            let mut id = asked;
            let mut current = entry;
            for _ in 0..MAX_MERGE_HOPS {
                match current.merged_into {
                    Some(next) if current.status == PersonStatus::Merged => {
                        id = next;
                        current = self.person(view, next)?;
                    }
                    _ => break,
                }
            }
            if current.status == PersonStatus::Merged {
                let key = person_key(asked);
                return Err(ReadError::from(Corruption::new(Tree::Persons, &key, "merge chain does not end")).into());
            }
            (id, current)
        } else {
            (asked, entry)
        };
        let status = match asked_status {
            PersonStatus::Merged => ResolvedStatus::Merged,
            _ if superseded => ResolvedStatus::Superseded,
            PersonStatus::Active => ResolvedStatus::Active,
            PersonStatus::Revoked => ResolvedStatus::Revoked,
            PersonStatus::Deceased => ResolvedStatus::Deceased,
            PersonStatus::Erased => ResolvedStatus::Erased,
        };
        let subject = Subject { person: asked, status, current_number: effective_entry.current_number };
        Ok(Found { subject, effective, effective_entry, asked_history })
    }

    /// The agency records of `resolution` that `shown(agency)` lets its caller see,
    /// opened: (agency code, record id), in the order the entry keeps them (by agency).
    /// Only these are opened: an agency's look-up opens its own records alone.
    pub fn agency_records(
        &self,
        resolution: &Resolution,
        shown: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, String)>, QueryError> {
        let key = person_key(resolution.holder);
        resolution
            .agency_records
            .iter()
            .filter(|r| shown(&r.agency))
            .map(|r| Ok((r.agency.clone(), r.open(&self.secrets, Tree::Persons, &key).map_err(ReadError::from)?)))
            .collect()
    }

    /// How many records the log holds.
    pub fn log_size(&self) -> Result<u64, QueryError> {
        Ok(crate::replay::log_size(&*self.store).map_err(ReadError::from)?)
    }

    /// The stored bytes of record `seq`, checksum checked.
    pub fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, QueryError> {
        Ok(crate::storage::view::get_checked(&*self.store, Tree::Log, &seq.to_be_bytes())?)
    }

    /// Up to `limit` changes that concern `agency`, from sequence number `from` on, in
    /// log order.
    pub fn agency_changes(&self, agency: &str, from: u64, limit: usize) -> Result<Vec<(u64, Change)>, QueryError> {
        let mut prefix = agency.as_bytes().to_vec();
        prefix.push(0);
        let start = agency_change_key(agency, from);
        let stored = self.store.range_from(Tree::AgencyChanges, &start, limit).map_err(ReadError::from)?;
        let mut changes = Vec::with_capacity(stored.len());
        for (key, value) in stored {
            let Some(seq_bytes) = key.strip_prefix(prefix.as_slice()) else { break };
            let seq: [u8; 8] = seq_bytes
                .try_into()
                .map_err(|_| ReadError::from(Corruption::new(Tree::AgencyChanges, &key, "not agency + sequence")))?;
            let value = crate::storage::view::open_value(Tree::AgencyChanges, &key, &value).map_err(ReadError::from)?;
            let stored: AgencyChange = state::decode(Tree::AgencyChanges, &key, &value).map_err(ReadError::from)?;
            let mut records = stored
                .records
                .iter()
                .map(|r| r.open(&self.secrets, Tree::AgencyChanges, &key))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ReadError::from)?;
            records.sort();
            let change = Change {
                person: stored.person,
                kind: stored.kind,
                number: stored.number,
                status: stored.status,
                records,
            };
            changes.push((u64::from_be_bytes(seq), change));
        }
        Ok(changes)
    }

    /// The log's origin, as record 0 names it.
    pub fn origin(&self) -> Result<Option<String>, QueryError> {
        let view = View::new(&*self.store);
        let Some(bytes) = view.get(Tree::Meta, meta::ORIGIN)? else { return Ok(None) };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ReadError::from(Corruption::new(Tree::Meta, meta::ORIGIN, "not UTF-8")).into())
    }

    /// Every log key with the sequence number it signs from, oldest first.
    pub fn log_keys(&self) -> Result<Vec<(u64, VerifyingKey)>, QueryError> {
        let stored = self.store.scan_prefix(Tree::Meta, meta::KEY_PREFIX).map_err(ReadError::from)?;
        let mut keys = Vec::with_capacity(stored.len());
        for (key, value) in stored {
            let value = crate::storage::view::open_value(Tree::Meta, &key, &value).map_err(ReadError::from)?;
            let corrupt = || ReadError::from(Corruption::new(Tree::Meta, &key, "not a sequence number and a key"));
            let seq: [u8; 8] = key[meta::KEY_PREFIX.len()..].try_into().map_err(|_| corrupt())?;
            let public: [u8; 32] = value.as_slice().try_into().map_err(|_| corrupt())?;
            keys.push((u64::from_be_bytes(seq), VerifyingKey::from_bytes(&public).map_err(|_| corrupt())?));
        }
        Ok(keys)
    }

    /// The store this reader reads.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The newest signed checkpoint: (tree size, signed note).
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, QueryError> {
        Ok(crate::checkpointer::latest(&*self.store)?)
    }

    /// The signed checkpoint at exactly `size`, if one was signed.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<String>, QueryError> {
        Ok(crate::checkpointer::at(&*self.store, size)?)
    }

    /// The root of the tree of the first `size` records.
    pub fn tree_root(&self, size: u64) -> Result<huduma_log::merkle::Hash, QueryError> {
        Ok(crate::merkle_store::root(&*self.store, size)?)
    }

    /// The inclusion proof of record `index` in the tree of `size` records.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<huduma_log::merkle::Hash>, ProofFailure> {
        crate::merkle_store::inclusion_proof(&*self.store, &self.tree_cache, index, size).map_err(ProofFailure::from)
    }

    /// The consistency proof from the tree of `old` records to that of `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<huduma_log::merkle::Hash>, ProofFailure> {
        crate::merkle_store::consistency_proof(&*self.store, &self.tree_cache, old, new).map_err(ProofFailure::from)
    }
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProofFailure {
    /// The sizes or index asked for do not make a proof.
    #[error("{0}")]
    Range(String),
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl From<huduma_log::merkle::ProofError<ReadError>> for ProofFailure {
    fn from(e: huduma_log::merkle::ProofError<ReadError>) -> Self {
        match e {
            huduma_log::merkle::ProofError::Range(why) => ProofFailure::Range(why),
            huduma_log::merkle::ProofError::Source(read) => ProofFailure::Read(read),
        }
    }
}
