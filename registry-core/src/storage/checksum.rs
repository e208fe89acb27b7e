//! Every stored value carries its own checksum: the value's bytes followed by the first
//! 8 bytes of their BLAKE3 hash. Reads check it, so a flipped bit on disk is reported
//! as corruption instead of being served. A log record's checksum is cut from the hash
//! the chain names it by ([`HashedRecord`]), so that it is hashed once, not twice.

use huduma_log::record::HashedRecord;

/// How many checksum bytes follow each value.
pub const CHECKSUM_LEN: usize = 8;

fn checksum(value: &[u8]) -> [u8; CHECKSUM_LEN] {
    cut(blake3::hash(value).as_bytes())
}

/// The checksum of the bytes whose BLAKE3 hash is `hash`: its first bytes.
fn cut(hash: &[u8; 32]) -> [u8; CHECKSUM_LEN] {
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&hash[..CHECKSUM_LEN]);
    out
}

/// The value with its checksum appended, ready to store.
pub fn seal(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + CHECKSUM_LEN);
    out.extend_from_slice(value);
    out.extend_from_slice(&checksum(value));
    out
}

/// [`seal`] of an owned value: its checksum appended in place (no copy when it has
/// the room).
pub fn seal_owned(value: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&value);
    seal_with(value, sum)
}

fn seal_with(mut value: Vec<u8>, sum: [u8; CHECKSUM_LEN]) -> Vec<u8> {
    value.extend_from_slice(&sum);
    value
}

/// The value inside a stored envelope, or `None` when the checksum does not match.
pub fn open(stored: &[u8]) -> Option<&[u8]> {
    let split = stored.len().checked_sub(CHECKSUM_LEN)?;
    let (value, sum) = stored.split_at(split);
    (checksum(value) == sum).then_some(value)
}

/// The value inside an envelope this process [`seal`]ed and kept in memory (a batch
/// being built or committed), its checksum cut off without checking: nothing outside
/// the process could have changed it. `None` if it is shorter than a checksum.
pub fn sealed_here(sealed: &[u8]) -> Option<&[u8]> {
    sealed.get(..sealed.len().checked_sub(CHECKSUM_LEN)?)
}

/// [`open`] of an owned envelope: the value in place (the checksum cut off), no copy.
pub fn open_owned(mut stored: Vec<u8>) -> Option<Vec<u8>> {
    let split = open(&stored)?.len();
    stored.truncate(split);
    Some(stored)
}

/// A log record sealed with its checksum, the checksum cut from the hash the record
/// carries already (the hash the chain names it by) instead of hashed again. The same
/// bytes as [`seal`] of the record's bytes.
pub fn seal_record(record: HashedRecord) -> Vec<u8> {
    let sum = cut(record.hash());
    seal_with(record.into_bytes(), sum)
}

/// [`open_owned`] of a stored log record, hashed once: the checksum is checked against
/// the record's hash, which is kept for the chain. `None` when the checksum does not
/// match.
pub fn open_record(mut stored: Vec<u8>) -> Option<HashedRecord> {
    let split = stored.len().checked_sub(CHECKSUM_LEN)?;
    let mut sum = [0u8; CHECKSUM_LEN];
    sum.copy_from_slice(&stored[split..]);
    stored.truncate(split);
    let record = HashedRecord::new(stored);
    (cut(record.hash()) == sum).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_open_round_trips_and_any_flip_is_caught(value in proptest::collection::vec(any::<u8>(), 0..200), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let stored = seal(&value);
            prop_assert_eq!(open(&stored), Some(value.as_slice()));
            prop_assert_eq!(&seal_owned(value.clone()), &stored);
            prop_assert_eq!(open_owned(stored.clone()), Some(value.clone()));
            let mut bad = stored.clone();
            let at = flip.index(bad.len());
            bad[at] ^= 1 << bit;
            prop_assert_eq!(open(&bad), None);
            prop_assert_eq!(open_owned(bad.clone()), None);
            // A log record, sealed and opened with the hash it carries, is sealed alike.
            let record = HashedRecord::new(value.clone());
            prop_assert_eq!(&seal_record(record.clone()), &stored);
            prop_assert_eq!(open_record(stored), Some(record));
            prop_assert_eq!(open_record(bad), None);
        }
    }

    #[test]
    fn too_short_is_not_a_value() {
        assert_eq!(open(&[1, 2, 3]), None);
        assert_eq!(open_record(vec![1, 2, 3]), None);
        assert_eq!(sealed_here(&[1, 2, 3]), None);
    }

    #[test]
    fn a_value_sealed_here_is_read_back_without_its_checksum() {
        assert_eq!(sealed_here(&seal(b"kamau")), Some(&b"kamau"[..]));
        assert_eq!(sealed_here(&seal(b"")), Some(&b""[..]));
    }
}
