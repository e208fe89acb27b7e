//! The `name_counts` projection: how many searchable persons carry each name word,
//! under the keyed hash of the word (`BLAKE3-keyed(match key, "name" 0x1F word)`,
//! never the word), and how many searchable persons there are. A search reads the
//! counts of the new person's own words (a few point reads) and weighs an agreement
//! on a common name down by its share (`score::FREQUENCY`): two strangers
//! share a common name far more often than a rare one.

use crate::projection::fold::match_hash;
use crate::secrets::Secrets;
use crate::storage::Tree;
use crate::storage::view::{Corruption, ReadError, View};

use super::Profile;

/// The key of the count of searchable persons.
pub const PERSONS: &[u8] = b"persons";

/// The key of a name word's count.
pub fn word_key(secrets: &Secrets, word: &str) -> Vec<u8> {
    match_hash(secrets, &format!("name\u{1f}{word}")).to_vec()
}

/// The count under `key` (0 when absent).
pub fn read(view: &View<'_>, key: &[u8]) -> Result<u64, ReadError> {
    match view.get(Tree::NameCounts, key)? {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(b) => Ok(u64::from_be_bytes(b)),
            Err(_) => Err(Corruption::new(Tree::NameCounts, key, "a count is not 8 bytes").into()),
        },
    }
}

/// Sets `profile`'s words' frequency adjustments from the counts.
pub fn weigh(view: &View<'_>, secrets: &Secrets, profile: &mut Profile) -> Result<(), ReadError> {
    let persons = read(view, PERSONS)?;
    let mut counts: Vec<(String, u64)> = Vec::new();
    for word in profile.distinct_words() {
        counts.push((word.to_string(), read(view, &word_key(secrets, word))?));
    }
    profile.weigh_by_frequency(&super::score::FREQUENCY, persons, |w| {
        counts.iter().find(|(c, _)| c == w).map_or(0, |(_, n)| *n)
    });
    Ok(())
}
