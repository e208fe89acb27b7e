//! The duplicate search at enrolment: who among the registered persons is likely the
//! person being registered. Each person is stored in the `match_keys` projection under
//! keyed hashes of blocking keys (name-code pairs with the birth year and month; a
//! name code with the birth date), never plaintext, each entry holding a keyed hash of
//! the birth date; a search probes the new person's keys (at the enrolment threshold
//! only the months a near date can have: a block grows with the registry, a month of
//! it twelve times slower), passes over block-mates whose birth date alone keeps them
//! below the floor, opens the demographics of the rest, and scores each
//! (Fellegi-Sunter weights, see `score`). Where the blocks are crowded, the writer has
//! each search's block-mates opened ahead on another thread ([`OpenedAhead`]).
//!
//! - `blocks`: how a block of `match_keys` is stored (chunks, one point read each).
//! - `normalise`: folding, spelling variants, phonetic codes.
//! - `score`: the profile compared, the weights, the blocking keys.
//! - `name_counts`: how many persons carry each name word (keyed hashes), so that an
//!   agreement on a common name weighs less.

pub mod blocks;
pub mod name_counts;
pub mod normalise;
pub mod score;

use std::collections::HashMap;

use huduma_number::HudumaNumber;
use serde::{Deserialize, Serialize};

use crate::PersonId;
use crate::demographics::Demographics;
use crate::projection::fold::{FoldError, block_hash, match_hash, open_demographics};
use crate::projection::state::{self, PersonEntry, PersonStatus, person_key};
use crate::secrets::Secrets;
use crate::storage::Tree;
use crate::storage::view::{ReadError, View};

pub use score::{Profile, Reach, probe_keys};

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

/// What each of a person's `match_keys` entries holds: the first 8 bytes of the keyed
/// hash of their birth date (`BLAKE3-keyed(match key, "dob" 0x1F YYYY-MM-DD)`), so
/// that a search tells block-mates born on the same or a near day from the rest
/// without opening anyone's sealed demographics.
pub fn dob_tag(secrets: &Secrets, date_of_birth: &str) -> [u8; 8] {
    let text = match score::parse_dob(date_of_birth) {
        Some(date) => dob_text(date),
        None => format!("dob\u{1f}{date_of_birth}"),
    };
    tag_of(secrets, &text)
}

fn tag_of(secrets: &Secrets, text: &str) -> [u8; 8] {
    let hash = match_hash(secrets, text);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&hash[..8]);
    tag
}

fn dob_text((year, month, day): (i32, u8, u8)) -> String {
    format!("dob\u{1f}{year:04}-{month:02}-{day:02}")
}

/// How a block-mate's birth date compares with the probe's, from its tag alone.
#[derive(Debug, Clone)]
struct DobTags {
    exact: [u8; 8],
    near: Vec<[u8; 8]>,
}

impl DobTags {
    fn of(secrets: &Secrets, profile: &Profile) -> Option<Self> {
        let (year, month, day) = profile.dob?;
        let tag = |date| tag_of(secrets, &dob_text(date));
        let mut near = vec![tag((year - 1, month, day)), tag((year + 1, month, day))];
        if month != day {
            near.push(tag((year, day, month)));
        }
        Some(Self { exact: tag((year, month, day)), near })
    }

    /// The date of birth's weight for a block-mate with this tag (what
    /// `score::dob_weight` gives their dates).
    fn weight(&self, tag: &[u8]) -> f32 {
        if tag == self.exact {
            score::weight::DOB_EXACT
        } else if self.near.iter().any(|n| n == tag) {
            score::weight::DOB_NEAR
        } else {
            score::weight::DOB_DIFFERENT
        }
    }
}

/// The persons scoring at least `floor` against `d`, best first, at most `limit`,
/// reading the projections through `view` (so a batch being built sees itself).
/// Merged and erased persons are not candidates (a merged person left the search when merged; an
/// erased one has no demographics); revoked and deceased ones are; nor is `excluded`
/// (the person a correction to `d` would be made to).
pub fn find(
    view: &View<'_>,
    secrets: &Secrets,
    d: &Demographics,
    floor: f32,
    limit: usize,
    excluded: Option<PersonId>,
) -> Result<Vec<Candidate>, FoldError> {
    Ok(find_probed(view, secrets, Probe::of(secrets, Profile::of(d)), floor, limit, None, excluded)?.candidates)
}

/// What a search looks a new person up by: their profile, the tags of their birth
/// date and its near dates, the hashed blocks the enrolment's reach probes, and their
/// words' `name_counts` keys. Derived from the demographics and the secrets alone, so
/// the writer derives it before a registration is sequenced (`prework::Prework`).
#[derive(Debug, Clone)]
pub struct Probe {
    profile: Profile,
    dob: Option<DobTags>,
    /// The blocks of [`Reach::Near`], hashed, in [`probe_keys`]' order.
    near: Vec<blocks::BlockHash>,
    words: Vec<(String, Vec<u8>)>,
}

impl Probe {
    pub fn of(secrets: &Secrets, profile: Profile) -> Self {
        let dob = DobTags::of(secrets, &profile);
        let near = match dob {
            Some(_) => probe_keys(&profile, Reach::Near).iter().map(|key| block_hash(secrets, key)).collect(),
            None => Vec::new(),
        };
        let words = name_counts::word_keys(secrets, &profile);
        Self { profile, dob, near, words }
    }
}

/// What one search found: the candidates, best first, and how many registered persons
/// it examined (opened, or took as opened ahead) to find them.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub candidates: Vec<Candidate>,
    pub examined: usize,
}

/// [`find`], for a caller that has the search's [`Probe`] already (the writer, which
/// derives it before the registration is sequenced), and may have opened some of the
/// persons it examines ahead ([`OpenedAhead`]). The probe is used up: its profile is
/// weighed by the name counts in place. `excluded` (a person whose correction is
/// searched for) is never a candidate, nor counted as examined, and nor is anyone a
/// registrar has judged another person than them (`PersonEntry::judged_distinct`).
pub fn find_probed(
    view: &View<'_>,
    secrets: &Secrets,
    probe: Probe,
    floor: f32,
    limit: usize,
    ahead: Option<&OpenedAhead>,
    excluded: Option<PersonId>,
) -> Result<Found, FoldError> {
    let Probe { mut profile, dob, near, words } = probe;
    let Some(dob) = &dob else { return Ok(Found { candidates: Vec::new(), examined: 0 }) };
    name_counts::weigh(view, &mut profile, &words)?;
    // A block-mate can score at most this plus its date's weight: one born on a day
    // too far from the probe's to reach `floor` is never opened.
    let best_but_dob = score::best_without_dob(&profile);
    let mut persons = block_mates(view, secrets, &profile, dob, &near, best_but_dob, floor)?;
    let judged = match excluded {
        Some(corrected) => judged_distinct(view, corrected)?,
        None => Vec::new(),
    };
    persons.retain(|person| Some(*person) != excluded && judged.binary_search(person).is_err());
    let examined = persons.len();
    let mut candidates = Vec::new();
    for person in persons {
        let opened_here;
        let opened = match ahead.and_then(|a| a.get(view, person)) {
            Some(opened) => opened,
            None => {
                opened_here = open_person(view, secrets, person)?;
                &opened_here
            }
        };
        let Some(Opened { number, profile: theirs }) = opened else { continue };
        let s = score::score(&profile, theirs);
        if s >= floor {
            candidates.push(Candidate { person, number: *number, score: s });
        }
    }
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.person.cmp(&b.person)));
    candidates.truncate(limit);
    Ok(Found { candidates, examined })
}

/// The block-mates of a probe born on a date near enough to the probe's to reach
/// `floor` at a score of at most `best_but_dob` on everything else, at most
/// [`MAX_EXAMINED`] of them, in the order the blocks hold them. Block-mates born on a
/// date the score calls different are read only where they could reach the floor
/// (not at the enrolment threshold): the blocks of the other months are then not read
/// at all.
fn block_mates(
    view: &View<'_>,
    secrets: &Secrets,
    profile: &Profile,
    dob: &DobTags,
    near: &[blocks::BlockHash],
    best_but_dob: f32,
    floor: f32,
) -> Result<Vec<PersonId>, ReadError> {
    let any: Vec<blocks::BlockHash>;
    let probed = if best_but_dob + score::weight::DOB_DIFFERENT >= floor {
        any = probe_keys(profile, Reach::Any).iter().map(|key| block_hash(secrets, key)).collect();
        &any
    } else {
        near
    };
    let mut persons: Vec<PersonId> = Vec::new();
    for block in probed {
        blocks::visit(view, block, |entry| {
            if best_but_dob + dob.weight(&entry.dob) >= floor && !persons.contains(&entry.person) {
                persons.push(entry.person);
            }
            persons.len() < MAX_EXAMINED
        })?;
        if persons.len() >= MAX_EXAMINED {
            break;
        }
    }
    Ok(persons)
}

/// A registered person as the search compares them: their number in force and their
/// profile, unweighted.
#[derive(Debug)]
struct Opened {
    number: HudumaNumber,
    profile: Profile,
}

/// The persons a registrar has judged another person than `person` (none for a person
/// not registered).
fn judged_distinct(view: &View<'_>, person: PersonId) -> Result<Vec<PersonId>, FoldError> {
    let entry = state::read::<PersonEntry>(view, Tree::Persons, &person_key(person))?;
    Ok(entry.map(|e| e.judged_distinct).unwrap_or_default())
}

/// Opens a registered person for the search; `None` for one who is no candidate
/// (merged, erased, or without demographics).
fn open_person(view: &View<'_>, secrets: &Secrets, person: PersonId) -> Result<Option<Opened>, FoldError> {
    let Some(entry) = state::read::<PersonEntry>(view, Tree::Persons, &person_key(person))? else { return Ok(None) };
    if matches!(entry.status, PersonStatus::Merged | PersonStatus::Erased) {
        return Ok(None);
    }
    let Some(sealed) = &entry.demographics else { return Ok(None) };
    let Some(theirs) = open_demographics(view, secrets, person, sealed, crate::keyring::IN_FORCE)? else {
        return Ok(None);
    };
    Ok(Some(Opened { number: entry.current_number, profile: Profile::uncoded(&theirs) }))
}

/// The registered persons one search will likely examine, opened ahead of it on
/// another thread ([`OpenedAhead::for_probe`]): opening a block-mate (two reads, two
/// AEAD openings, their names folded and coded) is most of a search's cost once the
/// blocks are crowded, and unlike the score it does not depend on the batch's order.
/// They are opened through a view of the store and the batch in flight as the batch
/// being built began, before it wrote anything; the search takes one only while the
/// batch still has not written that person's entry or keyring entry
/// ([`OpenedAhead::get`]), so it takes exactly what it would have opened itself. Held
/// only until the search.
#[derive(Debug, Default)]
pub struct OpenedAhead {
    persons: HashMap<PersonId, Option<Opened>>,
}

impl OpenedAhead {
    /// Opens the block-mates `probe` could examine at `floor` whatever its names'
    /// frequency weights, through `view`. A person who cannot be read or opened is
    /// left out, for the search itself to meet (and report) again.
    pub fn for_probe(view: &View<'_>, secrets: &Secrets, probe: &Probe, floor: f32) -> Self {
        let Some(dob) = &probe.dob else { return Self::default() };
        let best_but_dob = score::best_without_dob_weighed_at_most(&score::FREQUENCY);
        let Ok(mates) = block_mates(view, secrets, &probe.profile, dob, &probe.near, best_but_dob, floor) else {
            return Self::default();
        };
        let persons =
            mates.into_iter().filter_map(|person| Some((person, open_person(view, secrets, person).ok()?))).collect();
        Self { persons }
    }

    /// `person` as opened ahead, if they were and `view` has not written their entry
    /// or keyring entry since.
    fn get(&self, view: &View<'_>, person: PersonId) -> Option<&Option<Opened>> {
        let opened = self.persons.get(&person)?;
        let key = person_key(person);
        (!view.writes(Tree::Persons, &key) && !view.writes(Tree::Keyring, &key)).then_some(opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tag-only weight of a block-mate's date equals the weight the score gives
    /// the dates themselves, for every kind of nearness.
    #[test]
    fn a_birth_date_tag_weighs_as_the_date_does() {
        let secrets = Secrets::from_master([7; 32]);
        let probe = Profile::of(&Demographics {
            given_name: "Wanjiru".into(),
            family_name: "Kamau".into(),
            other_names: vec![],
            date_of_birth: "1990-04-12".into(),
            sex: crate::demographics::Sex::Female,
            place_of_birth: "Nyeri".into(),
        });
        let Some(tags) = DobTags::of(&secrets, &probe) else { panic!("the probe's date parses") };
        for date in ["1990-04-12", "1990-12-04", "1989-04-12", "1991-04-12", "1990-04-13", "1992-04-12", "1990-05-12"] {
            let expected = score::dob_weight(probe.dob, score::parse_dob(date));
            assert_eq!(tags.weight(&dob_tag(&secrets, date)), expected, "{date}");
        }
    }
}
