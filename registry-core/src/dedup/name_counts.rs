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

/// The key of a name word's count: the first 16 bytes of its keyed hash (17 with the
/// tree's tag, so that sled holds it inline; two words that shared one would share a
/// count, which only weighs them a little less).
pub fn word_key(secrets: &Secrets, word: &str) -> Vec<u8> {
    match_hash(secrets, &format!("name\u{1f}{word}"))[..16].to_vec()
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

/// `profile`'s distinct words, each with the key of its count.
pub fn word_keys(secrets: &Secrets, profile: &Profile) -> Vec<(String, Vec<u8>)> {
    profile.distinct_words().into_iter().map(|word| (word.to_string(), word_key(secrets, word))).collect()
}

/// Sets `profile`'s words' frequency adjustments from the counts of `words` (the
/// profile's [`word_keys`]).
pub fn weigh(view: &View<'_>, profile: &mut Profile, words: &[(String, Vec<u8>)]) -> Result<(), ReadError> {
    let persons = read(view, PERSONS)?;
    let mut counts: Vec<(&str, u64)> = Vec::with_capacity(words.len());
    for (word, key) in words {
        counts.push((word, read(view, key)?));
    }
    profile.weigh_by_frequency(&super::score::FREQUENCY, persons, |w| {
        counts.iter().find(|(c, _)| *c == w).map_or(0, |(_, n)| *n)
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demographics::{Demographics, Sex};
    use crate::storage::memory::MemoryStore;
    use crate::storage::{Storage, Tree};

    /// The search weighs its words by the counts the fold keeps, under the same keys.
    #[test]
    fn a_common_name_weighs_less_and_a_rare_one_more() {
        let secrets = Secrets::from_master([3; 32]);
        let store = MemoryStore::new();
        let mut view = View::new(&store);
        view.put(Tree::NameCounts, PERSONS.to_vec(), &1_000_000u64.to_be_bytes());
        view.put(Tree::NameCounts, word_key(&secrets, "kamau"), &50_000u64.to_be_bytes());
        view.put(Tree::NameCounts, word_key(&secrets, "wairimu"), &3_906u64.to_be_bytes());
        store.commit(&view.take_batch(), false).unwrap();
        let mut profile = Profile::of(&Demographics {
            given_name: "Wairimu".into(),
            family_name: "Kamau".into(),
            other_names: vec!["Zawadi".into()],
            date_of_birth: "1990-04-12".into(),
            sex: Sex::Female,
            place_of_birth: "Nyeri".into(),
        });
        let words = word_keys(&secrets, &profile);
        weigh(&View::new(&store), &mut profile, &words).unwrap();
        let kamau = profile.family[0].adjustment;
        let wairimu = profile.given[0].adjustment;
        let zawadi = profile.others[0].adjustment;
        // 5% of persons: log2((1/256) / 0.05), about -3.7.
        assert!((kamau + 3.68).abs() < 0.05, "{kamau}");
        // Carried by the reference share itself: no adjustment.
        assert!(wairimu.abs() < 0.01, "{wairimu}");
        // Carried by nobody yet: the bonus's bound.
        assert_eq!(zawadi, super::super::score::FREQUENCY.max_bonus);
    }
}
