//! Every stored value carries its own checksum: the value's bytes followed by the first
//! 8 bytes of their BLAKE3 hash. Reads check it, so a flipped bit on disk is reported
//! as corruption instead of being served.

/// How many checksum bytes follow each value.
pub const CHECKSUM_LEN: usize = 8;

fn checksum(value: &[u8]) -> [u8; CHECKSUM_LEN] {
    let hash = blake3::hash(value);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&hash.as_bytes()[..CHECKSUM_LEN]);
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
pub fn seal_owned(mut value: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&value);
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
            prop_assert_eq!(open_owned(bad), None);
        }
    }

    #[test]
    fn too_short_is_not_a_value() {
        assert_eq!(open(&[1, 2, 3]), None);
        assert_eq!(sealed_here(&[1, 2, 3]), None);
    }

    #[test]
    fn a_value_sealed_here_is_read_back_without_its_checksum() {
        assert_eq!(sealed_here(&seal(b"kamau")), Some(&b"kamau"[..]));
        assert_eq!(sealed_here(&seal(b"")), Some(&b""[..]));
    }
}
