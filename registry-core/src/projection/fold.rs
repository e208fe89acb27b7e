//! Folding one event into the projections. Deterministic: the same log folds to the
//! same bytes, whether live, rebuilt or verified.

use crate::HudumaNumber;
use crate::PersonId;
use crate::dedup::Profile;
use crate::dedup::blocks::{self, BlockHash, Upkeep};
use crate::dedup::name_counts;
use crate::demographics::Demographics;
use crate::event::{DuplicateOverride, Event, PrivateText};
use crate::keyring::{self, KeyringEntry, KeyringError};
use crate::projection::state::{
    self, AgencyChange, LinkedRecord, NumberEntry, PersonEntry, PersonStatus, agency_change_key, meta, number_key,
    person_key,
};
use crate::projection::status_rules;
use crate::sealed::{DataKey, Field, Sealed};
use crate::secrets::Secrets;
use crate::storage::Tree;
use crate::storage::view::{ReadError, View};

/// Why an event could not be folded. In a log this registry wrote, only corruption or a
/// lost keyring causes one.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("person {0} has no key in the keyring and was not erased: the keyring is incomplete")]
    KeyMissing(u64),
    #[error("the sealed demographics of person {0} do not open under their key")]
    Sealed(u64),
    #[error("record {seq}: the sealed {field} of person {person} does not open under its key")]
    SealedField { seq: u64, person: u64, field: &'static str },
    #[error("record {seq}: {reason}")]
    Inconsistent { seq: u64, reason: String },
}

/// A person's keyring entry, opened; a person with no entry at all is an incomplete
/// keyring (erasure leaves a tombstone, never a gap).
pub fn keyring_entry(view: &View<'_>, secrets: &Secrets, person: PersonId) -> Result<KeyringEntry, FoldError> {
    let stored = view.get(Tree::Keyring, &person_key(person))?.ok_or(FoldError::KeyMissing(person.0))?;
    Ok(keyring::open_entry(secrets.keyring_key(), person, &stored)?)
}

/// Opens a person's demographics as the record `sealed_at` sealed them (or, with
/// [`keyring::IN_FORCE`], as the projections hold them now); `None` when the key that
/// sealed them was erased or lost.
pub fn open_demographics(
    view: &View<'_>,
    secrets: &Secrets,
    person: PersonId,
    sealed: &Sealed,
    sealed_at: u64,
) -> Result<Option<Demographics>, FoldError> {
    match keyring_entry(view, secrets, person)?.for_record(sealed_at) {
        None => Ok(None),
        Some(data_key) => open_demographics_with(&data_key, person, sealed).map(Some),
    }
}

/// Opens a person's sealed demographics with their data key, already read.
pub fn open_demographics_with(key: &DataKey, person: PersonId, sealed: &Sealed) -> Result<Demographics, FoldError> {
    let plain = sealed.open(key, person).map_err(|_| FoldError::Sealed(person.0))?;
    postcard::from_bytes(&plain).map_err(|_| FoldError::Sealed(person.0))
}

/// The record id of an agency's link event: in clear (version 1), or opened with the
/// agency's record key, which the registry always holds (version 2).
fn record_id_of(
    secrets: &Secrets,
    seq: u64,
    person: PersonId,
    agency: &str,
    record_id: &PrivateText,
) -> Result<String, FoldError> {
    let sealed = match record_id {
        PrivateText::Clear(id) => return Ok(id.clone()),
        PrivateText::Sealed(sealed) => sealed,
    };
    sealed
        .open_field(&secrets.agency_record_key(agency), person, Field::AgencyRecordId)
        .map_err(|_| FoldError::SealedField { seq, person: person.0, field: Field::AgencyRecordId.name() })
}

/// The date of a death event as the person's entry keeps it (sealed under their data
/// key, [`state::seal_date_of_death`]), from the event's date in clear (version 1) or
/// sealed (version 2); `None` once that key is erased (erasure drops the date from the
/// projections too, so the live and the rebuilt projections agree).
fn date_of_death_of(
    view: &View<'_>,
    secrets: &Secrets,
    seq: u64,
    person: PersonId,
    date: &PrivateText,
) -> Result<Option<Sealed>, FoldError> {
    let Some(key) = keyring_entry(view, secrets, person)?.for_record(seq) else { return Ok(None) };
    let date = match date {
        PrivateText::Clear(date) => date.clone(),
        PrivateText::Sealed(sealed) => sealed
            .open_field(&key, person, Field::DateOfDeath)
            .map_err(|_| FoldError::SealedField { seq, person: person.0, field: Field::DateOfDeath.name() })?,
    };
    Ok(Some(state::seal_date_of_death(&key, person, &date)))
}

/// The keyed hash that stands for one match key: `BLAKE3-keyed(match key, text)`.
pub fn match_hash(secrets: &Secrets, text: &str) -> [u8; 32] {
    *blake3::keyed_hash(secrets.match_key(), text.as_bytes()).as_bytes()
}

/// The block a blocking key names: its keyed hash, cut to 16 bytes ([`BlockHash`]).
pub fn block_hash(secrets: &Secrets, key: &str) -> BlockHash {
    let hash = match_hash(secrets, key);
    let mut block = [0u8; 16];
    block.copy_from_slice(&hash[..16]);
    block
}

/// The blocks a person is stored in (`dedup::blocks`): the hashes of their blocking
/// keys, each once, in order.
fn match_blocks(secrets: &Secrets, profile: &Profile) -> Vec<BlockHash> {
    let mut blocks: Vec<BlockHash> =
        crate::dedup::score::stored_keys(profile).iter().map(|text| block_hash(secrets, text)).collect();
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

/// What a person puts into the duplicate search: the blocks they are stored in, the
/// keyed hash of their birth date each block's entry holds, and the `name_counts`
/// keys of their distinct name words. Derived from the demographics and the person's
/// key alone, so that a replay can derive it ahead of the fold, on another thread.
pub struct MatchMaterial {
    person: PersonId,
    keys: MatchKeys,
}

/// [`MatchMaterial`] but whose it is: what the demographics alone give, so that the
/// writer derives it before the registration is sequenced and the person's id known.
#[derive(Debug, Clone)]
pub struct MatchKeys {
    blocks: Vec<BlockHash>,
    dob: [u8; 8],
    words: Vec<Vec<u8>>,
}

impl MatchKeys {
    /// The keys of demographics with this [`Profile`] and the date of birth they hold.
    pub fn of_profile(secrets: &Secrets, profile: &Profile, date_of_birth: &str) -> Self {
        let blocks = match_blocks(secrets, profile);
        let dob = crate::dedup::dob_tag(secrets, date_of_birth);
        let words = profile.distinct_words().into_iter().map(|word| name_counts::word_key(secrets, word)).collect();
        Self { blocks, dob, words }
    }
}

impl MatchMaterial {
    /// The material of `person` with these demographics (the writer has them in the
    /// clear as it registers the person; a replay opens them first).
    pub fn of(secrets: &Secrets, person: PersonId, demographics: &Demographics) -> Self {
        let keys = MatchKeys::of_profile(secrets, &Profile::of(demographics), &demographics.date_of_birth);
        Self::new(person, keys)
    }

    pub fn new(person: PersonId, keys: MatchKeys) -> Self {
        Self { person, keys }
    }
}

/// A person's [`MatchMaterial`] from their demographics as the record `sealed_at`
/// sealed them; `None` when that key was erased or lost (such a person is not
/// searchable). Reads only the keyring.
pub fn match_material(
    view: &View<'_>,
    secrets: &Secrets,
    person: PersonId,
    sealed: &Sealed,
    sealed_at: u64,
) -> Result<Option<MatchMaterial>, FoldError> {
    let Some(demographics) = open_demographics(view, secrets, person, sealed, sealed_at)? else { return Ok(None) };
    Ok(Some(MatchMaterial::of(secrets, person, &demographics)))
}

/// What folding an event needs that the projections do not hold (a registration's
/// match material, a link's record as the person's entry keeps it), derived by
/// [`prepare`] ahead of the fold, on another thread if the caller likes.
#[derive(Default)]
pub struct Prepared {
    /// A registration's match material; `None` for any other event, and for a person
    /// whose key was erased.
    registered: Option<MatchMaterial>,
    /// A link's record: its link hash and its record id sealed for the projection,
    /// from the event's record id opened; `None` for any other event.
    linked: Option<LinkedRecord>,
}

impl Prepared {
    /// What a registration's fold needs, from the person's demographics in the clear:
    /// for the writer, which has just sealed them (see [`MatchMaterial::of`]).
    pub fn registration(material: MatchMaterial) -> Self {
        Self { registered: Some(material), ..Self::default() }
    }

    /// What a link's fold needs, from its record id in the clear: for the writer, which
    /// has just sealed it into the event (so the fold need not open it again).
    pub fn link(record: LinkedRecord) -> Self {
        Self { linked: Some(record), ..Self::default() }
    }
}

/// Derives what folding `event` (record `seq`) needs but the projections do not hold.
/// Reads only the keyring.
pub fn prepare(view: &View<'_>, secrets: &Secrets, seq: u64, event: &Event) -> Result<Prepared, FoldError> {
    Ok(match event {
        Event::PersonRegistered(e) => Prepared {
            registered: match_material(view, secrets, PersonId(seq), &e.demographics, seq)?,
            ..Prepared::default()
        },
        Event::AgencyRecordLinked(e) => Prepared::link(linked_record(secrets, seq, e)?),
        _ => Prepared::default(),
    })
}

/// A link event's record as the person's entry keeps it.
fn linked_record(secrets: &Secrets, seq: u64, e: &crate::event::AgencyRecordLinked) -> Result<LinkedRecord, FoldError> {
    let record_id = record_id_of(secrets, seq, e.person, &e.agency, &e.record_id)?;
    Ok(LinkedRecord::new(secrets, &e.agency, &record_id))
}

/// Adds a person to the duplicate search (`present`: `sealed` is what the record `seq`
/// sets) or takes them out of it (`sealed` is what an earlier record set): their
/// `match_keys` entries, and their name words' and the persons' counts in
/// `name_counts`. A person whose key was erased or lost is in neither; one whose data
/// a renewed key seals again (`keyring::KeyringEntry::Renewed`) is added from then on.
fn set_match_keys(
    view: &mut View<'_>,
    secrets: &Secrets,
    seq: u64,
    person: PersonId,
    sealed: &Sealed,
    present: bool,
    upkeep: Upkeep,
) -> Result<(), FoldError> {
    let sealed_at = if present { seq } else { seq.saturating_sub(1) };
    let material = match_material(view, secrets, person, sealed, sealed_at)?;
    apply_match_material(view, seq, material, present, upkeep)
}

fn apply_match_material(
    view: &mut View<'_>,
    seq: u64,
    material: Option<MatchMaterial>,
    present: bool,
    upkeep: Upkeep,
) -> Result<(), FoldError> {
    let Some(material) = material else { return Ok(()) };
    let change = match present {
        true => blocks::Change::Join(blocks::Entry { person: material.person, dob: material.keys.dob }),
        false => blocks::Change::Leave(material.person),
    };
    for block in &material.keys.blocks {
        blocks::apply(view, upkeep, block, seq, change)?;
    }
    let delta = if present { 1 } else { -1 };
    for word in material.keys.words {
        add_to_count(view, word, delta)?;
    }
    add_to_count(view, name_counts::PERSONS.to_vec(), delta)
}

fn add_to_count(view: &mut View<'_>, key: Vec<u8>, delta: i64) -> Result<(), FoldError> {
    let count = name_counts::read(view, &key)?.saturating_add_signed(delta);
    if count == 0 {
        view.remove(Tree::NameCounts, key);
    } else {
        view.put(Tree::NameCounts, key, &count.to_be_bytes());
    }
    Ok(())
}

/// A person's entry as the fold has it so far. Read from the store once per batch
/// (the fold reads a changed person before the event, to record the agency changes,
/// and again to change them); only the fold writes persons.
fn load_person(view: &View<'_>, seq: u64, person: PersonId) -> Result<PersonEntry, FoldError> {
    let key = person_key(person);
    let stored = view.get_remembered(Tree::Persons, &key)?;
    let stored =
        stored.ok_or_else(|| FoldError::Inconsistent { seq, reason: format!("unknown person {}", person.0) })?;
    Ok(state::decode(Tree::Persons, &key, &stored).map_err(ReadError::from)?)
}

/// Refuses a number issued by an earlier record: numbers are never issued twice
/// (LOG-FORMAT.md section 6), and a log that does was not written as specified.
fn check_never_issued(view: &View<'_>, seq: u64, number: HudumaNumber) -> Result<(), FoldError> {
    match view.get(Tree::Numbers, &number_key(number))? {
        Some(_) => Err(FoldError::Inconsistent { seq, reason: format!("number {number} was issued before") }),
        None => Ok(()),
    }
}

fn store_person(view: &mut View<'_>, person: PersonId, entry: &PersonEntry) {
    view.put(Tree::Persons, person_key(person), &state::encode(entry));
}

fn put_counter(view: &mut View<'_>, counter: u64) {
    view.put(Tree::Meta, meta::NEXT_COUNTER.to_vec(), &(counter.saturating_add(1)).to_be_bytes());
}

fn update_person(
    view: &mut View<'_>,
    seq: u64,
    person: PersonId,
    change: impl FnOnce(&mut PersonEntry),
) -> Result<PersonEntry, FoldError> {
    let mut entry = load_person(view, seq, person)?;
    change(&mut entry);
    if entry.history.last() != Some(&seq) {
        entry.history.push(seq);
    }
    store_person(view, person, &entry);
    Ok(entry)
}

/// A record unlinked from `holder` is not taken back from them by an unmerge of a
/// person merged into them: it leaves the `moved_by_merge` of those persons, and of the
/// persons merged into those in turn (linked to the holder again, it is the holder's).
/// Their entries change without a history entry: the record does not name them.
fn forget_moved(
    view: &mut View<'_>,
    seq: u64,
    holder: &PersonEntry,
    agency: &str,
    link: &[u8; 16],
) -> Result<(), FoldError> {
    let mut pending = holder.merged_in.clone();
    let mut seen = std::collections::HashSet::new();
    while let Some(merged) = pending.pop() {
        if !seen.insert(merged) {
            continue;
        }
        let mut entry = load_person(view, seq, merged)?;
        let before = entry.moved_by_merge.len();
        entry.moved_by_merge.retain(|r| r.agency != agency || r.link != *link);
        if entry.moved_by_merge.len() != before {
            store_person(view, merged, &entry);
        }
        pending.extend_from_slice(&entry.merged_in);
    }
    Ok(())
}

/// Removes every agency link of a person; returns them.
fn remove_links(view: &mut View<'_>, seq: u64, person: PersonId) -> Result<Vec<LinkedRecord>, FoldError> {
    let mut moved = Vec::new();
    update_person(view, seq, person, |p| moved = std::mem::take(&mut p.agency_records))?;
    for record in &moved {
        view.remove(Tree::AgencyLinks, record.link.to_vec());
    }
    Ok(moved)
}

/// Records that a registrar judged `a` and `b` two persons: each in the other's
/// `judged_distinct`.
fn judge_distinct(view: &mut View<'_>, seq: u64, a: PersonId, b: PersonId) -> Result<(), FoldError> {
    if a == b {
        return Ok(());
    }
    for (one, other) in [(a, b), (b, a)] {
        update_person(view, seq, one, |p| {
            if let Err(at) = p.judged_distinct.binary_search(&other) {
                p.judged_distinct.insert(at, other);
            }
        })?;
    }
    Ok(())
}

/// Records that `person` was judged another person than each candidate of the
/// duplicate search their registration or correction overrode (named by their number
/// at the time).
fn judge_overridden(
    view: &mut View<'_>,
    seq: u64,
    person: PersonId,
    overridden: Option<&DuplicateOverride>,
) -> Result<(), FoldError> {
    for candidate in overridden.map_or(&[][..], |o| &o.candidates) {
        let entry: NumberEntry = state::read(view, Tree::Numbers, &number_key(candidate.number))?.ok_or_else(|| {
            FoldError::Inconsistent {
                seq,
                reason: format!("overridden candidate {} was never issued", candidate.number),
            }
        })?;
        judge_distinct(view, seq, person, entry.person)?;
    }
    Ok(())
}

fn insert_sorted(records: &mut Vec<LinkedRecord>, record: LinkedRecord) {
    if let Err(at) = records.binary_search_by(|r| r.order().cmp(&record.order())) {
        records.insert(at, record);
    }
}

/// The persons an event changes that may be linked with agencies: the event's person,
/// both sides of a merge (the survivor first), or an unmerge's duplicate. A
/// registration has no links yet.
fn linked_persons(event: &Event) -> Vec<PersonId> {
    match event {
        Event::LogInitialized(_) | Event::LogKeyRotated(_) | Event::PersonRegistered(_) => Vec::new(),
        Event::NumberReplaced(e) => vec![e.person],
        Event::DemographicsCorrected(e) => vec![e.person],
        Event::AgencyRecordLinked(e) => vec![e.person],
        Event::AgencyRecordUnlinked(e) => vec![e.person],
        Event::DeathRecorded(e) => vec![e.person],
        Event::DeathRetracted(e) => vec![e.person],
        Event::NumberRevoked(e) => vec![e.person],
        Event::NumberReinstated(e) => vec![e.person],
        Event::RecordsMerged(e) => vec![e.survivor, e.duplicate],
        Event::PersonalDataErased(e) => vec![e.person],
        // Only the duplicate: the records that go back concern them; the survivor's
        // other records do not change.
        Event::RecordsUnmerged(e) => vec![e.duplicate],
    }
}

/// Writes one `agency_changes` entry per agency linked with the changed persons before
/// or after the event, naming that agency's records concerned.
fn record_agency_changes(
    view: &mut View<'_>,
    seq: u64,
    kind: u16,
    persons: &[PersonId],
    before: &[PersonEntry],
) -> Result<(), FoldError> {
    let Some(&subject) = persons.first() else { return Ok(()) };
    let mut records: std::collections::BTreeMap<&str, std::collections::BTreeMap<[u8; 16], LinkedRecord>> =
        Default::default();
    let after: Vec<PersonEntry> = persons.iter().map(|p| load_person(view, seq, *p)).collect::<Result<_, _>>()?;
    for entry in before.iter().chain(&after) {
        for record in &entry.agency_records {
            records.entry(record.agency.as_str()).or_default().insert(record.link, record.clone());
        }
    }
    if records.is_empty() {
        return Ok(());
    }
    let subject_after = &after[0];
    let writes: Vec<(Vec<u8>, Vec<u8>)> = records
        .into_iter()
        .map(|(agency, records)| {
            let change = AgencyChange {
                person: subject,
                kind,
                number: subject_after.current_number,
                status: subject_after.status,
                records: records.into_values().collect(),
            };
            (agency_change_key(agency, seq), state::encode(&change))
        })
        .collect();
    for (key, value) in writes {
        view.put(Tree::AgencyChanges, key, &value);
    }
    Ok(())
}

/// Applies the event of record `seq` to the projections in `view`, the duplicate
/// search's blocks kept in place.
pub fn fold(view: &mut View<'_>, secrets: &Secrets, seq: u64, event: &Event) -> Result<(), FoldError> {
    let prepared = prepare(view, secrets, seq, event)?;
    fold_prepared(view, secrets, seq, event, prepared, Upkeep::InPlace)
}

/// [`fold`] of an event whose `prepared` part [`prepare`] derived ahead (for this
/// event: it is what the two have in common), the blocks kept as `upkeep` says.
pub fn fold_prepared(
    view: &mut View<'_>,
    secrets: &Secrets,
    seq: u64,
    event: &Event,
    prepared: Prepared,
    upkeep: Upkeep,
) -> Result<(), FoldError> {
    let persons = linked_persons(event);
    let before: Vec<PersonEntry> = persons.iter().map(|p| load_person(view, seq, *p)).collect::<Result<_, _>>()?;
    let kind = event.kind_version().kind;
    // What the event requires of each person's status (the writer refused a command
    // that would break it: a log that does was not written as specified).
    if let Some((person, entry)) = persons.iter().zip(&before).find(|(_, e)| !status_rules::allows(kind, e.status)) {
        return Err(FoldError::Inconsistent {
            seq,
            reason: format!(
                "person {} is {:?}, which {} does not allow",
                person.0,
                entry.status,
                crate::history::shown(event).event
            ),
        });
    }
    apply(view, secrets, seq, event, prepared, upkeep)?;
    record_agency_changes(view, seq, kind, &persons, &before)
}

fn apply(
    view: &mut View<'_>,
    secrets: &Secrets,
    seq: u64,
    event: &Event,
    prepared: Prepared,
    upkeep: Upkeep,
) -> Result<(), FoldError> {
    match event {
        Event::LogInitialized(e) => {
            view.put(Tree::Meta, meta::CURRENT_KEY.to_vec(), &e.public_key);
            view.put(Tree::Meta, meta::key_from(seq), &e.public_key);
            view.put(Tree::Meta, meta::ORIGIN.to_vec(), e.origin.as_bytes());
        }
        Event::LogKeyRotated(e) => {
            view.put(Tree::Meta, meta::CURRENT_KEY.to_vec(), &e.new_public_key);
            view.put(Tree::Meta, meta::key_from(seq + 1), &e.new_public_key);
        }
        Event::PersonRegistered(e) => {
            let person = PersonId(seq);
            check_never_issued(view, seq, e.number)?;
            view.put(Tree::Numbers, number_key(e.number), &state::encode(&NumberEntry { person, superseded_by: None }));
            let entry = PersonEntry {
                current_number: e.number,
                status: PersonStatus::Active,
                merged_into: None,
                demographics: Some(e.demographics.clone()),
                date_of_death: None,
                status_before_death: None,
                agency_records: Vec::new(),
                moved_by_merge: Vec::new(),
                merged_in: Vec::new(),
                judged_distinct: Vec::new(),
                history: vec![seq],
            };
            store_person(view, person, &entry);
            put_counter(view, e.counter);
            apply_match_material(view, seq, prepared.registered, true, upkeep)?;
            judge_overridden(view, seq, person, e.duplicate_override.as_ref())?;
        }
        Event::NumberReplaced(e) => {
            let old: NumberEntry = state::read(view, Tree::Numbers, &number_key(e.old_number))?
                .ok_or_else(|| FoldError::Inconsistent { seq, reason: "replaced number was never issued".into() })?;
            if old.person != e.person || old.superseded_by.is_some() {
                return Err(FoldError::Inconsistent {
                    seq,
                    reason: format!("number {} is not the number in force of person {}", e.old_number, e.person.0),
                });
            }
            check_never_issued(view, seq, e.new_number)?;
            view.put(
                Tree::Numbers,
                number_key(e.old_number),
                &state::encode(&NumberEntry { person: old.person, superseded_by: Some(e.new_number) }),
            );
            view.put(
                Tree::Numbers,
                number_key(e.new_number),
                &state::encode(&NumberEntry { person: e.person, superseded_by: None }),
            );
            update_person(view, seq, e.person, |p| p.current_number = e.new_number)?;
            put_counter(view, e.counter);
        }
        Event::DemographicsCorrected(e) => {
            let before = load_person(view, seq, e.person)?;
            if let Some(old) = &before.demographics {
                set_match_keys(view, secrets, seq, e.person, old, false, upkeep)?;
            }
            update_person(view, seq, e.person, |p| p.demographics = Some(e.demographics.clone()))?;
            set_match_keys(view, secrets, seq, e.person, &e.demographics, true, upkeep)?;
            judge_overridden(view, seq, e.person, e.duplicate_override.as_ref())?;
        }
        Event::AgencyRecordLinked(e) => {
            let record = match prepared.linked {
                Some(record) => record,
                None => linked_record(secrets, seq, e)?,
            };
            view.put(Tree::AgencyLinks, record.link.to_vec(), &person_key(e.person));
            update_person(view, seq, e.person, |p| insert_sorted(&mut p.agency_records, record))?;
        }
        Event::AgencyRecordUnlinked(e) => {
            let record_id = record_id_of(secrets, seq, e.person, &e.agency, &e.record_id)?;
            let link = secrets.agency_link_hash(&e.agency, &record_id);
            view.remove(Tree::AgencyLinks, link.to_vec());
            let holder = update_person(view, seq, e.person, |p| {
                p.agency_records.retain(|r| r.agency != e.agency || r.link != link)
            })?;
            forget_moved(view, seq, &holder, &e.agency, &link)?;
        }
        Event::DeathRecorded(e) => {
            let date_of_death = date_of_death_of(view, secrets, seq, e.person, &e.date_of_death)?;
            update_person(view, seq, e.person, |p| {
                p.status_before_death = Some(p.status);
                p.status = PersonStatus::Deceased;
                p.date_of_death = date_of_death;
            })?;
        }
        Event::DeathRetracted(e) => {
            let before = load_person(view, seq, e.person)?;
            // Deceased (`fold_prepared` checked the status), so the status before is kept.
            let Some(status) = before.status_before_death else {
                let reason = format!("person {} is deceased with no status before their death", e.person.0);
                return Err(FoldError::Inconsistent { seq, reason });
            };
            update_person(view, seq, e.person, |p| {
                p.status = status;
                p.status_before_death = None;
                p.date_of_death = None;
            })?;
        }
        Event::NumberRevoked(e) => {
            update_person(view, seq, e.person, |p| p.status = PersonStatus::Revoked)?;
        }
        Event::NumberReinstated(e) => {
            update_person(view, seq, e.person, |p| p.status = PersonStatus::Active)?;
        }
        Event::RecordsMerged(e) => {
            let duplicate = load_person(view, seq, e.duplicate)?;
            if let Some(sealed) = &duplicate.demographics {
                set_match_keys(view, secrets, seq, e.duplicate, sealed, false, upkeep)?;
            }
            let moved = remove_links(view, seq, e.duplicate)?;
            for record in &moved {
                view.put(Tree::AgencyLinks, record.link.to_vec(), &person_key(e.survivor));
            }
            update_person(view, seq, e.duplicate, |p| {
                p.status = PersonStatus::Merged;
                p.merged_into = Some(e.survivor);
                p.moved_by_merge = moved.clone();
            })?;
            update_person(view, seq, e.survivor, |p| {
                for record in moved {
                    insert_sorted(&mut p.agency_records, record);
                }
                p.merged_in.push(e.duplicate);
            })?;
        }
        Event::RecordsUnmerged(e) => {
            let duplicate = load_person(view, seq, e.duplicate)?;
            // Merged (`fold_prepared` checked the status), but perhaps into another.
            if duplicate.merged_into != Some(e.survivor) {
                return Err(FoldError::Inconsistent {
                    seq,
                    reason: format!("person {} is not merged into person {}", e.duplicate.0, e.survivor.0),
                });
            }
            if load_person(view, seq, e.survivor)?.status == PersonStatus::Merged {
                return Err(FoldError::Inconsistent {
                    seq,
                    reason: format!("person {} is merged since, which RecordsUnmerged does not allow", e.survivor.0),
                });
            }
            // What the merge moved and the survivor still holds goes back; a record
            // unlinked since stays unlinked, one linked to the survivor since stays theirs.
            let mut returned = Vec::new();
            update_person(view, seq, e.survivor, |p| {
                p.agency_records.retain(|r| {
                    let moved = duplicate.moved_by_merge.binary_search_by(|m| m.order().cmp(&r.order())).is_ok();
                    if moved {
                        returned.push(r.clone());
                    }
                    !moved
                });
                p.merged_in.retain(|d| *d != e.duplicate);
            })?;
            for record in &returned {
                view.put(Tree::AgencyLinks, record.link.to_vec(), &person_key(e.duplicate));
            }
            update_person(view, seq, e.duplicate, |p| {
                p.status = PersonStatus::Active;
                p.merged_into = None;
                p.moved_by_merge = Vec::new();
                p.agency_records = returned;
            })?;
            if let Some(sealed) = &duplicate.demographics {
                set_match_keys(view, secrets, seq, e.duplicate, sealed, true, upkeep)?;
            }
            judge_distinct(view, seq, e.duplicate, e.survivor)?;
        }
        Event::PersonalDataErased(e) => {
            let before = load_person(view, seq, e.person)?;
            // A merged person left the search when merged (taking them out twice would
            // count their names down twice).
            if let Some(sealed) = before.demographics.as_ref().filter(|_| before.status != PersonStatus::Merged) {
                set_match_keys(view, secrets, seq, e.person, sealed, false, upkeep)?;
            }
            remove_links(view, seq, e.person)?;
            update_person(view, seq, e.person, |p| {
                p.status = PersonStatus::Erased;
                p.demographics = None;
                p.date_of_death = None;
                p.status_before_death = None;
                // An erased person is not unmerged: what their merge moved is the
                // survivor's for good.
                p.moved_by_merge = Vec::new();
            })?;
            view.put(Tree::Keyring, person_key(e.person), &keyring::erased_entry());
        }
    }
    Ok(())
}

/// Records that every projection has applied the log up to `seq`.
pub fn mark_applied(view: &mut View<'_>, seq: u64) {
    for tree in Tree::PROJECTIONS {
        view.put(Tree::Meta, meta::applied(tree), &seq.to_be_bytes());
    }
}
