//! Synthetic persons for tests, fixtures and load runs that the duplicate search never
//! takes for one another: person `i` has a birth date shared only with persons whose
//! given names sound nothing alike. (The realistic population with planted duplicates,
//! for measuring the search, is `huduma-benches`' `population`.)
//!
//! Why it holds: birth dates use days 13-28 (so no two are a day-and-month swap of
//! each other) and even years only (so none is another's "year off by one"); two
//! persons with different dates therefore score at most 9, far below the threshold.
//! The 9,216 dates repeat every 9,216 persons, and persons sharing a date have given
//! names from a list whose entries pairwise neither share a phonetic code nor are
//! close in the search's sense (one edit, or a Jaro-Winkler of 0.9) to each other or
//! to any family name (and have no other names), so they score at most 15. Distinct for the first 9,216 × (the list's length) persons.

use std::sync::OnceLock;

use crate::dedup::normalise::{phonetic, words};
use crate::demographics::{Demographics, Sex};

const GIVEN_CANDIDATES: &[&str] = &[
    "Wanjiru",
    "Otieno",
    "Achieng",
    "Kipchoge",
    "Amina",
    "Mutua",
    "Chebet",
    "Baraka",
    "Akinyi",
    "Nafula",
    "Zawadi",
    "Wambui",
    "Halima",
    "Fatuma",
    "Yusuf",
    "Ibrahim",
    "Grace",
    "Peter",
    "Joseph",
    "Esther",
    "Daniel",
    "Lucy",
    "Samuel",
    "Ruth",
    "Moses",
    "Naomi",
    "Brian",
    "Faith",
    "Dennis",
    "Mercy",
    "Kevin",
    "Joyce",
    "Collins",
    "Irene",
    "Victor",
    "Agnes",
    "Hillary",
    "Beatrice",
    "Tobias",
    "Gladys",
    "Vincent",
    "Sharon",
    "Edwin",
    "Winnie",
    "Felix",
    "Caroline",
    "Oscar",
    "Diana",
    "Eric",
    "Sylvia",
    "Isaac",
    "Pauline",
    "Abel",
    "Rebecca",
    "Duncan",
    "Harriet",
    "Godfrey",
    "Lydia",
    "Nelson",
    "Olive",
    "Quentin",
    "Teresia",
    "Ulrich",
    "Yvonne",
    "Zakayo",
    "Xavier",
    "Ombati",
    "Jepkemboi",
    "Nyaboke",
    "Kazungu",
    "Mwikali",
    "Gakii",
    "Rehema",
    "Shukuru",
    "Tumaini",
    "Upendo",
    "Imani",
    "Jabari",
    "Kassim",
    "Latifa",
    "Makena",
    "Neema",
    "Pendo",
    "Riziki",
    "Salim",
    "Taabu",
    "Waceke",
    "Yohana",
];
const FAMILY: &[&str] = &[
    "Kamau",
    "Odhiambo",
    "Wafula",
    "Kiprop",
    "Hassan",
    "Mwangi",
    "Njoroge",
    "Omondi",
    "Ochieng",
    "Kariuki",
    "Mutiso",
    "Cheruiyot",
    "Barasa",
    "Wekesa",
    "Maina",
    "Abdi",
];
const PLACES: &[&str] = &["Nairobi", "Kisumu", "Mombasa", "Eldoret", "Nakuru", "Garissa", "Kakamega", "Nyeri"];

/// Distinct birth dates per cycle: 16 days × 12 months × 48 even years.
const DATES: u64 = 16 * 12 * 48;

fn apart(a: &str, b: &str) -> bool {
    let (a, b) = (words(a).concat(), words(b).concat());
    phonetic(&a) != phonetic(&b) && !crate::dedup::score::close(&a, &b)
}

/// The given names kept: pairwise apart, and apart from every family name.
pub fn given_names() -> &'static [&'static str] {
    static KEPT: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEPT.get_or_init(|| {
        let mut kept: Vec<&'static str> = Vec::new();
        for name in GIVEN_CANDIDATES {
            if kept.iter().chain(FAMILY).all(|other| apart(name, other)) {
                kept.push(name);
            }
        }
        kept
    })
}

/// How many persons [`distinct_person`] keeps apart.
pub fn capacity() -> u64 {
    DATES * given_names().len() as u64
}

/// The `i`-th synthetic person.
pub fn distinct_person(i: u64) -> Demographics {
    let (r, q) = (i % DATES, i / DATES);
    let given = given_names();
    Demographics {
        given_name: given[(q % given.len() as u64) as usize].to_string(),
        family_name: FAMILY[(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) as usize % FAMILY.len()].to_string(),
        other_names: vec![],
        date_of_birth: format!("{}-{:02}-{:02}", 1930 + 2 * (r % 48), 1 + (r / 48) % 12, 13 + (r / 576) % 16),
        sex: [Sex::Female, Sex::Male][(i % 2) as usize],
        place_of_birth: PLACES[(i % PLACES.len() as u64) as usize].to_string(),
    }
}

/// A look-up by an agency's gateway, for tests and fixtures: found (`person`, active)
/// or not (`None`), by the agency's record id `{purpose}-record`.
pub fn look_up(person: Option<crate::PersonId>, agency: &str, purpose: &str) -> crate::access::AccessEvent {
    use crate::access::{AccessBody, AccessCall, AccessEvent, AccessOutcome, KeyUsed};
    AccessEvent {
        person,
        body: AccessBody {
            call: AccessCall::Resolve,
            principal: format!("{agency}-gateway"),
            role: "agency".into(),
            agency: agency.into(),
            purpose: purpose.into(),
            key: KeyUsed::AgencyRecord { agency: agency.into(), record_id: format!("{purpose}-record") },
            outcome: match person {
                Some(_) => AccessOutcome::Found(crate::query::ResolvedStatus::Active),
                None => AccessOutcome::NotFound,
            },
            attributes: vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::{THRESHOLD, score};

    #[test]
    fn enough_names_survive_and_persons_sharing_a_date_score_below_the_threshold() {
        assert!(given_names().len() >= 40, "{} given names kept", given_names().len());
        // Every pair of persons that share a birth date (the only pairs that could
        // score high), within the first two cycles' worth of names.
        let sharing: Vec<u64> = (0..given_names().len() as u64).map(|q| 7 + q * DATES).collect();
        for &a in &sharing {
            for &b in &sharing {
                if a != b {
                    let (pa, pb) = (distinct_person(a), distinct_person(b));
                    let s = score::score(&score::Profile::of(&pa), &score::Profile::of(&pb));
                    assert!(s < THRESHOLD, "{pa:?} vs {pb:?}: {s}");
                }
            }
        }
        // And neighbours (different dates).
        for i in 0..2000u64 {
            let s =
                score::score(&score::Profile::of(&distinct_person(i)), &score::Profile::of(&distinct_person(i + 1)));
            assert!(s < THRESHOLD, "{i}: {s}");
        }
    }

    #[test]
    fn every_synthetic_person_is_valid() {
        let today = time::Date::from_calendar_date(2026, time::Month::November, 22).unwrap_or(time::Date::MIN);
        for i in (0..capacity()).step_by(997) {
            assert!(distinct_person(i).validate(today).is_ok(), "{:?}", distinct_person(i));
        }
    }
}
