//! The values and key layouts of the projection trees.

use huduma_number::HudumaNumber;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::PersonId;
use crate::sealed::{DataKey, Sealed};
use crate::secrets::Secrets;
use crate::storage::Tree;
use crate::storage::view::{Corruption, ReadError, View};

/// A person's standing in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonStatus {
    Active,
    Revoked,
    Deceased,
    /// Merged into another person, who survives.
    Merged,
    /// Personal data erased; the number still resolves, to this status.
    Erased,
}

/// `persons` tree: person id -> this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonEntry {
    pub current_number: HudumaNumber,
    pub status: PersonStatus,
    pub merged_into: Option<PersonId>,
    /// The latest sealed demographics; `None` once erased.
    pub demographics: Option<Sealed>,
    /// `YYYY-MM-DD`, sealed under the person's data key ([`seal_date_of_death`]);
    /// `None` once erased.
    pub date_of_death: Option<Sealed>,
    /// For a deceased person: the status they had when their death was recorded
    /// (active or revoked), which a retraction of the death gives back. `None` for
    /// anyone else.
    pub status_before_death: Option<PersonStatus>,
    /// The person's agency records, sorted by agency and link: the person -> agency
    /// records projection, kept in the person's entry so that a look-up is point reads
    /// only.
    pub agency_records: Vec<LinkedRecord>,
    /// For a merged person: the agency records their merge moved to the survivor, so
    /// that undoing the merge knows which to take back (less any unlinked from the
    /// survivor since: one linked to them again is theirs). Empty for anyone else.
    pub moved_by_merge: Vec<LinkedRecord>,
    /// For a survivor: the persons merged into them (not unmerged since), whose
    /// `moved_by_merge` an unlink from the survivor updates.
    pub merged_in: Vec<PersonId>,
    /// The persons a registrar has judged another person than this one, sorted: those
    /// named by a duplicate search they overrode, registering or correcting either of
    /// the two, and the survivor of a merge of theirs undone. A correction of either is
    /// not searched against the other again.
    pub judged_distinct: Vec<PersonId>,
    /// The sequence numbers of the records that changed this person, oldest first (the
    /// first registered them): their history, each record read from the log when
    /// asked (`Reader::history`).
    pub history: Vec<u64>,
}

/// `numbers` tree: Huduma number -> this. A number, once issued, keeps its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberEntry {
    pub person: PersonId,
    pub superseded_by: Option<HudumaNumber>,
}

/// `agency_changes` tree: (agency, sequence number) -> this. One entry for each record
/// that changed a person linked with the agency (before or after the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyChange {
    /// The person the record changed (the survivor, for a merge).
    pub person: PersonId,
    /// The event kind of the record (`event::kind`).
    pub kind: u16,
    /// The person's number in force after the record.
    pub number: HudumaNumber,
    /// The person's status after the record.
    pub status: PersonStatus,
    /// This agency's records the change concerns (linked before or after), sorted by
    /// link.
    pub records: Vec<LinkedRecord>,
}

/// An agency's record linked to a person, as the projections keep it: the agency, the
/// record's [`Secrets::agency_link_hash`] (its `agency_links` key) and its id sealed
/// under the agency's record key, bound to the link ([`LinkedRecord::open`]), never in
/// clear. Sealed deterministically, so that a rebuild writes the same bytes, and the
/// same wherever it is kept (a person's entry, a merge's survivor, a change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedRecord {
    pub agency: String,
    pub link: [u8; 16],
    pub record_id: Sealed,
}

impl LinkedRecord {
    /// What records are sorted by: the agency, then the link.
    pub fn order(&self) -> (&str, &[u8; 16]) {
        (&self.agency, &self.link)
    }

    pub fn new(secrets: &Secrets, agency: &str, record_id: &str) -> Self {
        let link = secrets.agency_link_hash(agency, record_id);
        let record_id =
            Sealed::seal_projected(&secrets.agency_record_key(agency), &record_binding(&link), record_id.as_bytes());
        Self { agency: agency.to_string(), link, record_id }
    }

    /// The record id; a stored record that does not open is corruption of `tree`'s
    /// `key`, where it was read.
    pub fn open(&self, secrets: &Secrets, tree: Tree, key: &[u8]) -> Result<String, Corruption> {
        self.record_id.open_projected(&secrets.agency_record_key(&self.agency), &record_binding(&self.link)).map_err(
            |_| Corruption::new(tree, key, format!("a sealed record id of agency {} does not open", self.agency)),
        )
    }
}

fn record_binding(link: &[u8; 16]) -> Vec<u8> {
    [b"agency_record_id\0".as_slice(), link].concat()
}

fn date_of_death_binding(person: PersonId) -> Vec<u8> {
    [b"date_of_death\0".as_slice(), &person.0.to_be_bytes()].concat()
}

/// A date of death as a person's entry keeps it: sealed under their data key, bound to
/// them.
pub fn seal_date_of_death(key: &DataKey, person: PersonId, date: &str) -> Sealed {
    Sealed::seal_projected(key, &date_of_death_binding(person), date.as_bytes())
}

/// The date [`seal_date_of_death`] sealed; a date that does not open under the
/// person's key is corruption of their entry.
pub fn open_date_of_death(key: &DataKey, person: PersonId, sealed: &Sealed) -> Result<String, Corruption> {
    sealed
        .open_projected(key, &date_of_death_binding(person))
        .map_err(|_| Corruption::new(Tree::Persons, &person_key(person), "the sealed date of death does not open"))
}

/// Keys of the `meta` tree.
pub mod meta {
    /// The next issuance counter (u64 BE).
    pub const NEXT_COUNTER: &[u8] = b"next_counter";
    /// The log's current public key (32 bytes).
    pub const CURRENT_KEY: &[u8] = b"current_key";
    /// The log's origin (UTF-8).
    pub const ORIGIN: &[u8] = b"origin";
    /// `key/<seq u64 BE>`: the log key (32 bytes) in force from record `seq` on.
    pub const KEY_PREFIX: &[u8] = b"key/";
    pub fn key_from(seq: u64) -> Vec<u8> {
        let mut key = KEY_PREFIX.to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }
    /// `applied/<tree>`: the last sequence number folded into that tree (u64 BE).
    /// A tree whose layout changed gets a new marker name, so that a store from
    /// before is rebuilt: `match_keys.v6`, block hashes of 16 bytes (v5 had 32; v4 the
    /// name blocks by birth year alone; v3 no chunks, see `dedup::blocks`),
    /// `name_counts.v2`, word keys of 16 bytes (32 before); and since agency record ids
    /// and dates of death are sealed in the projections, `persons.v3` (v2: the date of
    /// death in clear, dropped at erasure), and since a merge can be undone,
    /// `persons.v4` (a merged person's entry keeps the records their merge moved, and
    /// every entry the persons judged distinct from them and the records that changed
    /// them), and since a death can be retracted, `persons.v5` (a deceased person's
    /// entry keeps the status they had before), and since a record unlinked from a
    /// survivor and linked to them again stays theirs at an unmerge, `persons.v6` (a
    /// survivor's entry names the persons merged into them),
    /// `agency_links.v2` (keyed by a keyed hash of the record, not the record id) and
    /// `agency_changes.v2`.
    pub fn applied(tree: crate::storage::Tree) -> Vec<u8> {
        match tree {
            crate::storage::Tree::MatchKeys => b"applied/match_keys.v6".to_vec(),
            crate::storage::Tree::NameCounts => b"applied/name_counts.v2".to_vec(),
            crate::storage::Tree::Persons => b"applied/persons.v6".to_vec(),
            crate::storage::Tree::AgencyLinks => b"applied/agency_links.v2".to_vec(),
            crate::storage::Tree::AgencyChanges => b"applied/agency_changes.v2".to_vec(),
            _ => format!("applied/{}", tree.name()).into_bytes(),
        }
    }
}

pub fn person_key(person: PersonId) -> Vec<u8> {
    person.0.to_be_bytes().to_vec()
}

pub fn number_key(number: HudumaNumber) -> Vec<u8> {
    number.as_u64().to_be_bytes().to_vec()
}

/// `agency_links` key of `agency`'s record `record_id`: its
/// [`Secrets::agency_link_hash`].
pub fn agency_link_key(secrets: &Secrets, agency: &str, record_id: &str) -> Vec<u8> {
    secrets.agency_link_hash(agency, record_id).to_vec()
}

/// `agency_changes` key: agency code, 0x00, sequence number (u64 BE).
pub fn agency_change_key(agency: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(agency.len() + 9);
    key.extend_from_slice(agency.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(tree: Tree, key: &[u8], bytes: &[u8]) -> Result<T, Corruption> {
    postcard::from_bytes(bytes).map_err(|e| Corruption::new(tree, key, format!("undecodable value: {e}")))
}

/// A typed read through a view.
pub fn read<T: DeserializeOwned>(view: &View<'_>, tree: Tree, key: &[u8]) -> Result<Option<T>, ReadError> {
    match view.get(tree, key)? {
        Some(bytes) => Ok(Some(decode(tree, key, &bytes)?)),
        None => Ok(None),
    }
}

pub fn read_u64(view: &View<'_>, key: &[u8]) -> Result<Option<u64>, ReadError> {
    match view.get(Tree::Meta, key)? {
        Some(bytes) => {
            let array: [u8; 8] =
                bytes.as_slice().try_into().map_err(|_| Corruption::new(Tree::Meta, key, "not a u64"))?;
            Ok(Some(u64::from_be_bytes(array)))
        }
        None => Ok(None),
    }
}
