//! Offline verification, without the registry and without trusting the channel things
//! came over: a receipt against its record's bytes and the log's published keys; a
//! signed checkpoint; a record's inclusion in a checkpointed tree; one checkpoint's
//! consistency with a later one.

use huduma_log::VerifyingKey;
use huduma_log::keys::{KeyId, parse_note_verifier_key};
use huduma_log::record::RecordRef;

use crate::error::Error;
use crate::types::{Receipt, VerifierKeys};

/// The public keys of verifier-key strings (`name+keyid+base64`), checking each one's
/// name and key id.
pub fn parse_keys(keys: &VerifierKeys) -> Result<Vec<VerifyingKey>, Error> {
    keys.keys
        .iter()
        .map(|k| {
            let (name, key) = parse_note_verifier_key(&k.verifier_key)
                .map_err(|e| Error::Verification(format!("verifier key {:?}: {e}", k.verifier_key)))?;
            if name != keys.origin {
                return Err(Error::Verification(format!("verifier key names {name:?}, not the log {:?}", keys.origin)));
            }
            Ok(key)
        })
        .collect()
}

/// Checks that `record` is the record the receipt names (index, BLAKE3 hash and
/// signature) and that the signature verifies under the one of `keys` it names.
pub fn verify_receipt(receipt: &Receipt, record: &[u8], keys: &[VerifyingKey]) -> Result<(), Error> {
    let fail = |why: &str| Err(Error::Verification(format!("receipt for record {}: {why}", receipt.index)));
    let parsed = RecordRef::parse(record).map_err(|e| Error::Verification(format!("record: {e}")))?;
    if parsed.header.seq != receipt.index {
        return fail(&format!("the record is record {}", parsed.header.seq));
    }
    if parsed.hash() != receipt.record_hash {
        return fail("the record's BLAKE3 hash differs from the receipt's");
    }
    if parsed.signature().to_bytes() != receipt.signature {
        return fail("the record's signature differs from the receipt's");
    }
    let Some(key) = keys.iter().find(|k| KeyId::of(k) == parsed.header.key_id) else {
        return fail("signed by a key that is not among the log's published keys");
    };
    if !parsed.verify_signature(key) {
        return fail("the signature does not verify");
    }
    Ok(())
}

pub use huduma_log::checkpoint::Checkpoint;

/// Opens a signed checkpoint note with any of `keys` (the log's published keys, under
/// its origin `name`).
pub fn open_checkpoint(note: &str, name: &str, keys: &[VerifyingKey]) -> Result<Checkpoint, Error> {
    let mut last = None;
    for key in keys {
        match Checkpoint::open(note, name, key) {
            Ok(checkpoint) => return Ok(checkpoint),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Verification(last.map_or_else(|| "no keys to check the checkpoint with".into(), |e| e.to_string())))
}

/// Checks that `record` (its exact bytes) is leaf `index` of the checkpointed tree.
pub fn verify_inclusion(checkpoint: &Checkpoint, index: u64, record: &[u8], proof: &[[u8; 32]]) -> Result<(), Error> {
    let leaf = huduma_log::merkle::leaf_hash(record);
    if huduma_log::merkle::verify_inclusion(index, checkpoint.size, &leaf, proof, &checkpoint.root) {
        Ok(())
    } else {
        Err(Error::Verification(format!("record {index} is not in the tree of checkpoint {}", checkpoint.size)))
    }
}

/// Checks that `old` is a prefix of `new`: the log was only appended to in between.
pub fn verify_consistency(old: &Checkpoint, new: &Checkpoint, proof: &[[u8; 32]]) -> Result<(), Error> {
    if huduma_log::merkle::verify_consistency(old.size, new.size, &old.root, &new.root, proof) {
        Ok(())
    } else {
        Err(Error::Verification(format!(
            "checkpoint {} is not a prefix of checkpoint {}: the log was forked or rewritten",
            old.size, new.size
        )))
    }
}
