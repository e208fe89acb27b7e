//! Reading the access log: one person's look-ups, newest first and paged, opened
//! with the person's data key; records, checkpoints and proofs for auditors.

use std::sync::Arc;

use huduma_log::merkle::Hash;

use super::record::{self, AccessBody, SealedUnder};
use super::writer::{seq_key, subject_key};
use crate::PersonId;
use crate::keyring::KeyringEntry;
use crate::query::{ProofFailure, QueryError};
use crate::secrets::Secrets;
use crate::storage::view::{Corruption, ReadError, View, get_checked};
use crate::storage::{Storage, Tree};

/// One look-up of a person, as listed for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessListed {
    /// The record's sequence number in the access log.
    pub index: u64,
    pub time_ms: u64,
    /// `None` when the body was sealed under the person's data key and the person's
    /// data has since been erased, or that key was lost in a restore (even once it is
    /// renewed: the renewed key opens only what was sealed under it).
    pub body: Option<AccessBody>,
}

/// A page of a person's look-ups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessPage {
    pub entries: Vec<AccessListed>,
    /// Pass as `before` for the next (older) page; `None` when this was the last.
    pub next_before: Option<u64>,
}

/// A cheap, cloneable read handle on the access log.
#[derive(Clone)]
pub struct AccessReader {
    store: Arc<dyn Storage>,
    identity: Arc<dyn Storage>,
    secrets: Arc<Secrets>,
    tree_cache: Arc<crate::merkle_store::TreeCache>,
}

impl AccessReader {
    pub fn new(store: Arc<dyn Storage>, identity: Arc<dyn Storage>, secrets: Arc<Secrets>) -> Self {
        Self { store, identity, secrets, tree_cache: Arc::default() }
    }

    /// Up to `limit` look-ups of `person` at or after `since_ms`, newest first, older
    /// than record `before` (all, if `None`).
    pub fn list(
        &self,
        person: PersonId,
        before: Option<u64>,
        since_ms: u64,
        limit: usize,
    ) -> Result<AccessPage, QueryError> {
        let subject = record::subject(self.secrets.access_subject_key(), person);
        let upper = match before {
            Some(seq) => subject_key(&subject, seq),
            // Past every sequence number of this subject.
            None => [subject.as_slice(), &[0xff; 9]].concat(),
        };
        let keys =
            self.store.range_back(Tree::AccessBySubject, &subject, &upper, limit + 1).map_err(ReadError::from)?;
        let entry = crate::projection::fold::keyring_entry(&View::new(&*self.identity), &self.secrets, person)?;
        // A renewed key does not open what was sealed under the key it replaced.
        let renewed = matches!(entry, KeyringEntry::Renewed { .. });
        let data_key = entry.in_force();
        let mut page = AccessPage::default();
        for (key, _) in keys {
            let seq =
                key.get(32..40).and_then(|s| <[u8; 8]>::try_from(s).ok()).map(u64::from_be_bytes).ok_or_else(|| {
                    ReadError::from(Corruption::new(Tree::AccessBySubject, &key, "not subject + seq"))
                })?;
            if page.entries.len() == limit {
                page.next_before = Some(seq + 1);
                break;
            }
            let bytes = self.record(seq)?.ok_or_else(|| {
                ReadError::from(Corruption::new(Tree::AccessBySubject, &key, "names a record the log lacks"))
            })?;
            let corrupt = |why: String| ReadError::from(Corruption::new(Tree::Log, &seq_key(seq), why));
            let header = record::parse(&bytes).map_err(|e| corrupt(e.to_string()))?;
            if header.subject != subject || header.seq != seq {
                return Err(corrupt("the index names a record of another person".into()).into());
            }
            if header.time_ms < since_ms {
                break;
            }
            let body = match (header.sealed_under, &data_key) {
                (SealedUnder::Registry, _) => {
                    Some(record::open(&bytes, self.secrets.access_seal_key()).map_err(|e| corrupt(e.to_string()))?)
                }
                (SealedUnder::Person, Some(key)) => match record::open(&bytes, &key.0) {
                    Ok(body) => Some(body),
                    // Sealed under the key a restore lost, before the person's data was
                    // enrolled again; the bytes are the log's (its chain and its signed
                    // tree vouch for them), only their key is gone.
                    Err(_) if renewed => None,
                    Err(e) => return Err(corrupt(e.to_string()).into()),
                },
                (SealedUnder::Person, None) => None,
            };
            page.entries.push(AccessListed { index: seq, time_ms: header.time_ms, body });
        }
        Ok(page)
    }

    /// How many records the access log holds.
    pub fn size(&self) -> Result<u64, QueryError> {
        Ok(super::writer::read_head(&*self.store)?.next_seq)
    }

    /// The stored bytes of record `seq`, checksum checked.
    pub fn record(&self, seq: u64) -> Result<Option<Vec<u8>>, QueryError> {
        Ok(get_checked(&*self.store, Tree::Log, &seq_key(seq))?)
    }

    /// The newest signed checkpoint of the access log: (tree size, signed note).
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, QueryError> {
        Ok(crate::checkpointer::latest(&*self.store)?)
    }

    /// The access log's checkpoint at exactly `size`, if one was signed.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<String>, QueryError> {
        Ok(crate::checkpointer::at(&*self.store, size)?)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofFailure> {
        crate::merkle_store::inclusion_proof(&*self.store, &self.tree_cache, index, size).map_err(ProofFailure::from)
    }

    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofFailure> {
        crate::merkle_store::consistency_proof(&*self.store, &self.tree_cache, old, new).map_err(ProofFailure::from)
    }

    /// The store this reader reads.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }
}
