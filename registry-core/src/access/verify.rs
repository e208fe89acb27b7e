//! Verifying the access log end to end: sequence continuity, the BLAKE3 chain, times
//! that never go back, the stored tree nodes against a recomputed tree, every signed
//! checkpoint against the recomputed root, and the per-person index against the
//! records. Bodies are not opened: none of this needs a secret.

use huduma_log::access::AccessChain;
use huduma_log::keys::VerifyingKey;
use huduma_log::merkle::Hash;

use crate::merkle_store::{EntryState, TreeEdge};

use super::writer::{indexed_under, seq_key};
use crate::storage::in_key_order::InKeyOrder;
use crate::storage::view::{ReadError, open_record, open_value};
use crate::storage::{Storage, Tree};

/// How many entries one read takes.
const CHUNK: usize = 4096;

/// What a verified access log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSummary {
    pub size: u64,
    pub root: Hash,
    /// How many signed checkpoints were checked against the recomputed tree.
    pub checkpoints: u64,
}

/// The first thing wrong with the access log.
#[derive(Debug, thiserror::Error)]
pub enum AccessVerifyError {
    #[error("access record {seq}: {reason}")]
    Record { seq: u64, reason: String },
    #[error("access checkpoint at size {size}: {reason}")]
    Checkpoint { size: u64, reason: String },
    #[error("access index: {0}")]
    Index(String),
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl From<crate::storage::StorageError> for AccessVerifyError {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::Read(e.into())
    }
}

/// Walks the stored checkpoints in size order alongside the records.
struct Checkpoints<'a> {
    stored: InKeyOrder<'a>,
    /// The next checkpoint's size and note, read ahead.
    next: Option<(u64, String)>,
}

impl<'a> Checkpoints<'a> {
    fn new(store: &'a dyn Storage) -> Self {
        Self { stored: InKeyOrder::new(store, Tree::Checkpoints, &[], CHUNK), next: None }
    }

    /// The next checkpoint's size and note, reading ahead as needed.
    fn peek(&mut self) -> Result<Option<&(u64, String)>, AccessVerifyError> {
        if self.next.is_none()
            && let Some(entry) = self.stored.next()
        {
            let (key, value) = entry?;
            let size = <[u8; 8]>::try_from(key.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| AccessVerifyError::Index("a checkpoint key is not a tree size".into()))?;
            let note = String::from_utf8(open_value(Tree::Checkpoints, &key, &value).map_err(ReadError::from)?)
                .map_err(|_| AccessVerifyError::Checkpoint { size, reason: "not UTF-8".into() })?;
            self.next = Some((size, note));
        }
        Ok(self.next.as_ref())
    }
}

/// Verifies the access log in `store`; its checkpoints must be signed for `origin` by
/// one of `keys`. `progress` hears the number of records checked.
pub fn verify(
    store: &dyn Storage,
    origin: &str,
    keys: &[VerifyingKey],
    progress: &mut dyn FnMut(u64),
) -> Result<AccessSummary, AccessVerifyError> {
    let mut tree = TreeEdge::new();
    let mut chain = AccessChain::new();
    let mut subjects = 0u64;
    let mut checked = 0u64;
    let mut checkpoints = Checkpoints::new(store);
    let mut check_signed = |tree: &TreeEdge, checkpoints: &mut Checkpoints<'_>| -> Result<(), AccessVerifyError> {
        while let Some((size, note)) = checkpoints.peek()? {
            if *size > tree.size() {
                break;
            }
            let size = *size;
            let fail = |reason: String| AccessVerifyError::Checkpoint { size, reason };
            if size < tree.size() {
                return Err(fail("stored out of order, or of a size the log skipped".into()));
            }
            let signed = crate::checkpointer::signed_by_any(note, origin, keys)
                .ok_or_else(|| fail(format!("no log key's signature for {origin} verifies")))?;
            if signed.size != size || signed.root != tree.root() {
                return Err(fail("its root is not the recomputed root of the log (history was rewritten)".into()));
            }
            checked += 1;
            checkpoints.next = None;
        }
        Ok(())
    };
    for entry in InKeyOrder::new(store, Tree::Log, &seq_key(0), CHUNK) {
        let (key, value) = entry?;
        let seq = tree.size();
        let fail = |reason: String| AccessVerifyError::Record { seq, reason };
        if key != seq_key(seq) {
            return Err(fail(format!("missing: the next stored key is {}", crate::storage::view::hex(&key))));
        }
        let hashed = open_record(&key, value).map_err(|e| fail(e.to_string()))?;
        let bytes = hashed.bytes();
        let header = chain.push_hashed(bytes, hashed.hash()).map_err(|e| fail(e.reason))?;
        if let Some(index_key) = indexed_under(&header.subject, seq) {
            subjects += 1;
            match store.get(Tree::AccessBySubject, &index_key)? {
                None => return Err(fail("the per-person index lacks it".into())),
                Some(v) => {
                    open_value(Tree::AccessBySubject, &index_key, &v).map_err(|e| fail(e.to_string()))?;
                }
            }
        }
        // Checkpoints of the tree before this record are checked once its chain link
        // held, so an altered record is named by the chain where it can be.
        check_signed(&tree, &mut checkpoints)?;
        let entries = tree.push(seq, bytes).map_err(|e| fail(e.to_string()))?;
        let nodes_key = crate::merkle_store::nodes_key(seq);
        if !entries.iter().any(|(t, _, _)| *t == Tree::MerkleNodes)
            && store.get(Tree::MerkleNodes, &nodes_key)?.is_some()
        {
            return Err(fail("tree nodes are stored for it, but it completes no subtree".into()));
        }
        for entry in &entries {
            match crate::merkle_store::entry_state(store, entry)? {
                EntryState::Stored => {}
                // Blocks are an index the appender began writing after the first
                // access logs: proofs read an absent one's nodes instead.
                EntryState::Missing if entry.0 == Tree::MerkleBlocks => {}
                EntryState::Missing | EntryState::Differs => {
                    return Err(fail(format!(
                        "the {} entry stored for it differs from the one recomputed from the log",
                        entry.0.name()
                    )));
                }
            }
        }
        if tree.size().is_multiple_of(CHUNK as u64) {
            progress(tree.size());
        }
    }
    check_signed(&tree, &mut checkpoints)?;
    if let Some((size, _)) = checkpoints.peek()? {
        return Err(AccessVerifyError::Checkpoint {
            size: *size,
            reason: format!("signed for more records than the log holds ({})", tree.size()),
        });
    }
    let mut indexed = 0u64;
    for entry in InKeyOrder::new(store, Tree::AccessBySubject, &[], CHUNK) {
        entry?;
        indexed += 1;
    }
    if indexed != subjects {
        return Err(AccessVerifyError::Index(format!(
            "{indexed} entries for {subjects} records that found a person (entries naming no record)"
        )));
    }
    progress(tree.size());
    Ok(AccessSummary { size: tree.size(), root: tree.root(), checkpoints: checked })
}
