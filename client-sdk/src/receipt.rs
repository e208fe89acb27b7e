//! Offline verification: a receipt against its record's bytes and the log's published
//! keys, without the registry and without trusting the channel it came over.

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
