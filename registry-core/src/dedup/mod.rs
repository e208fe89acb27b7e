//! The duplicate search at enrolment: who among the registered persons is likely the
//! person being registered. Each person is stored in the `match_keys` projection under
//! keyed hashes of blocking keys (name-code pairs with the birth year; a name code with
//! the birth date), never plaintext; a search probes the new person's keys, opens the
//! demographics of the persons found, and scores each (Fellegi-Sunter weights, see
//! `score`).
//!
//! - `normalise`: folding, spelling variants, phonetic codes.
//! - `score`: the profile compared, the weights, the blocking keys.

pub mod normalise;
pub mod score;

use huduma_number::HudumaNumber;
use serde::{Deserialize, Serialize};

use crate::PersonId;
use crate::demographics::Demographics;
use crate::projection::fold::{FoldError, match_hash, open_demographics};
use crate::projection::state::{self, PersonEntry, PersonStatus, person_key};
use crate::secrets::Secrets;
use crate::storage::Tree;
use crate::storage::view::View;

pub use score::{Profile, probe_keys};

/// A registration scoring at least this against a registered person is refused as a
/// likely duplicate unless the registrar overrides it. Chosen on the synthetic
/// population (BENCHMARKS.md, "Duplicate search").
pub const THRESHOLD: f32 = 17.0;

/// `FindDuplicates` reports candidates from this score up.
pub const REPORT_FLOOR: f32 = 8.0;

/// The most persons one search opens: a bound on the work a very common name and
/// birth year can cause (the best are still found: blocks are small for all but those).
pub const MAX_EXAMINED: usize = 512;

/// A registered person the search found, with their number in force and the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub person: PersonId,
    pub number: HudumaNumber,
    pub score: f32,
}

/// The blocking keys `d` is stored under, before hashing.
pub fn stored_keys(d: &Demographics) -> Vec<String> {
    score::stored_keys(&Profile::of(d))
}

/// The persons scoring at least `floor` against `d`, best first, at most `limit`,
/// reading the projections through `view` (so a batch being built sees itself).
/// Merged and erased persons are not candidates (a merged person's keys are gone; an
/// erased one has no demographics); revoked and deceased ones are.
pub fn find(
    view: &View<'_>,
    secrets: &Secrets,
    d: &Demographics,
    floor: f32,
    limit: usize,
) -> Result<Vec<Candidate>, FoldError> {
    let profile = Profile::of(d);
    let mut persons: Vec<PersonId> = Vec::new();
    for key in probe_keys(&profile) {
        let hash = match_hash(secrets, &key);
        for entry in view.scan_prefix_keys(Tree::MatchKeys, &hash)? {
            let Some(id) = entry.get(32..40).and_then(|b| <[u8; 8]>::try_from(b).ok()) else { continue };
            let person = PersonId(u64::from_be_bytes(id));
            if !persons.contains(&person) {
                persons.push(person);
            }
        }
        if persons.len() >= MAX_EXAMINED {
            break;
        }
    }
    let mut found = Vec::new();
    for person in persons.into_iter().take(MAX_EXAMINED) {
        let Some(entry) = state::read::<PersonEntry>(view, Tree::Persons, &person_key(person))? else { continue };
        if matches!(entry.status, PersonStatus::Merged | PersonStatus::Erased) {
            continue;
        }
        let Some(sealed) = &entry.demographics else { continue };
        let Some(theirs) = open_demographics(view, secrets, person, sealed)? else { continue };
        let s = score::score(&profile, &Profile::of(&theirs));
        if s >= floor {
            found.push(Candidate { person, number: entry.current_number, score: s });
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.person.cmp(&b.person)));
    found.truncate(limit);
    Ok(found)
}
