//! How alike two persons' demographics are: a Fellegi-Sunter style score, the sum over
//! fields of log2(m/u) when a field agrees (m: how often it agrees for the same person
//! enrolled twice; u: for two different persons) and log2((1-m)/(1-u)) when it does not,
//! rounded to the weights below. Names are compared as sets (order is noise, not
//! evidence), with partial agreement for a name that sounds the same (Double Metaphone)
//! or is one typo away (Jaro-Winkler at least 0.9).
//!
//! | field | agrees | partly | disagrees |
//! |---|---:|---:|---:|
//! | given name (any of the other's names) | +6.0 exact | +3.5 sound-alike or typo | -4.0 |
//! | family name (any of the other's names) | +6.0 exact | +3.5 sound-alike or typo | -4.0 |
//! | other names (when both have some) | +1.5 one in common | | -1.0 |
//! | date of birth | +10.0 exact | +6.0 day and month swapped, or the year off by one | -6.0 |
//! | sex | +1.0 | | -4.0 |
//! | place of birth | +2.0 same or sound-alike | | -1.0 |
//!
//! The most a pair can score is 26.5.

use super::normalise::{fold, phonetic, words};
use crate::demographics::{Demographics, Sex};

/// Weights (see the module's table).
pub mod weight {
    pub const NAME_EXACT: f32 = 6.0;
    pub const NAME_CLOSE: f32 = 3.5;
    pub const NAME_DIFFERENT: f32 = -4.0;
    pub const OTHER_SHARED: f32 = 1.5;
    pub const OTHER_DIFFERENT: f32 = -1.0;
    pub const DOB_EXACT: f32 = 10.0;
    pub const DOB_NEAR: f32 = 6.0;
    pub const DOB_DIFFERENT: f32 = -6.0;
    pub const SEX_SAME: f32 = 1.0;
    pub const SEX_DIFFERENT: f32 = -4.0;
    pub const PLACE_SAME: f32 = 2.0;
    pub const PLACE_DIFFERENT: f32 = -1.0;
}

/// A person's demographics in the form the search compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub given: Vec<String>,
    pub family: Vec<String>,
    pub others: Vec<String>,
    /// Every name word once, given names first, then family, then others.
    pub names: Vec<String>,
    /// Their phonetic codes, in the same order, each once.
    pub codes: Vec<String>,
    /// (year, month, day), if the date parses.
    pub dob: Option<(i32, u8, u8)>,
    pub sex: Sex,
    pub place: String,
}

fn parse_dob(text: &str) -> Option<(i32, u8, u8)> {
    let mut parts = text.split('-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((year, month, day))
}

impl Profile {
    pub fn of(d: &Demographics) -> Self {
        let given = words(&d.given_name);
        let family = words(&d.family_name);
        let others: Vec<String> = d.other_names.iter().flat_map(|n| words(n)).collect();
        let mut names: Vec<String> = Vec::new();
        for w in given.iter().chain(&family).chain(&others) {
            if !names.contains(w) {
                names.push(w.clone());
            }
        }
        let mut codes: Vec<String> = Vec::new();
        for code in names.iter().map(|w| phonetic(w)) {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        Self {
            given,
            family,
            others,
            names,
            codes,
            dob: parse_dob(&d.date_of_birth),
            sex: d.sex,
            place: fold(&d.place_of_birth),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Different,
    Close,
    Exact,
}

fn close(a: &str, b: &str) -> bool {
    phonetic(a) == phonetic(b) || strsim::jaro_winkler(a, b) >= 0.9
}

/// How well the best of `words` matches any of `names`.
fn level(words: &[String], names: &[String]) -> Level {
    let mut best = Level::Different;
    for w in words {
        for n in names {
            let l = if w == n {
                Level::Exact
            } else if close(w, n) {
                Level::Close
            } else {
                Level::Different
            };
            best = best.max(l);
        }
    }
    best
}

fn name_weight(l: Level) -> f32 {
    match l {
        Level::Exact => weight::NAME_EXACT,
        Level::Close => weight::NAME_CLOSE,
        Level::Different => weight::NAME_DIFFERENT,
    }
}

/// The score of `a` against `b` (see the module's table). Symmetric enough for
/// ranking; not a probability.
pub fn score(a: &Profile, b: &Profile) -> f32 {
    let mut total = name_weight(level(&a.given, &b.names)) + name_weight(level(&a.family, &b.names));
    if !a.others.is_empty() && !b.others.is_empty() {
        total +=
            if level(&a.others, &b.names) > Level::Different { weight::OTHER_SHARED } else { weight::OTHER_DIFFERENT };
    }
    total += match (a.dob, b.dob) {
        (Some(x), Some(y)) if x == y => weight::DOB_EXACT,
        (Some((y1, m1, d1)), Some((y2, m2, d2)))
            if (y1 == y2 && m1 == d2 && d1 == m2) || ((y1 - y2).abs() == 1 && m1 == m2 && d1 == d2) =>
        {
            weight::DOB_NEAR
        }
        _ => weight::DOB_DIFFERENT,
    };
    total += if a.sex == b.sex { weight::SEX_SAME } else { weight::SEX_DIFFERENT };
    total += if !a.place.is_empty() && (a.place == b.place || close(&a.place, &b.place)) {
        weight::PLACE_SAME
    } else {
        weight::PLACE_DIFFERENT
    };
    total
}

/// The blocking keys a person is stored under (before keyed hashing): every pair of
/// their first four name codes with the birth year, and each code with the birth date
/// written day-and-month-order-free. Two enrolments of one person share a key unless
/// both a name and the date changed (or, with only two names, a name and the year).
pub fn stored_keys(p: &Profile) -> Vec<String> {
    keys(p, &[0])
}

/// The keys a search probes: the stored ones, and the name pairs with the birth year
/// one either side (a year off by one is a common enrolment error).
pub fn probe_keys(p: &Profile) -> Vec<String> {
    keys(p, &[-1, 0, 1])
}

fn keys(p: &Profile, years: &[i32]) -> Vec<String> {
    let codes = &p.codes[..p.codes.len().min(4)];
    let mut out = Vec::new();
    let Some((year, month, day)) = p.dob else {
        return out;
    };
    for (i, a) in codes.iter().enumerate() {
        for b in &codes[i + 1..] {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            for dy in years {
                out.push(format!("p\u{1f}{lo}\u{1f}{hi}\u{1f}{}", year + dy));
            }
        }
    }
    let (lo, hi) = (month.min(day), month.max(day));
    for code in codes {
        out.push(format!("d\u{1f}{code}\u{1f}{year}-{lo:02}-{hi:02}"));
    }
    if codes.len() == 1 {
        // One name only: block on it with the year.
        for dy in years {
            out.push(format!("s\u{1f}{}\u{1f}{}", codes[0], year + dy));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(given: &str, family: &str, dob: &str) -> Demographics {
        Demographics {
            given_name: given.into(),
            family_name: family.into(),
            other_names: vec![],
            date_of_birth: dob.into(),
            sex: Sex::Female,
            place_of_birth: "Nyeri".into(),
        }
    }

    #[test]
    fn the_same_person_scores_the_most_and_strangers_the_least() {
        let a = Profile::of(&person("Wanjiru", "Kamau", "1990-04-12"));
        assert_eq!(score(&a, &a), 6.0 + 6.0 + 10.0 + 1.0 + 2.0);
        let stranger = Profile::of(&person("Achieng", "Otieno", "1971-09-30"));
        assert!(score(&a, &stranger) < 0.0);
    }

    #[test]
    fn enrolment_noise_keeps_a_high_score() {
        let a = Profile::of(&person("Wanjiru", "Kamau", "1990-04-12"));
        for noisy in [
            person("Kamau", "Wanjiru", "1990-04-12"), // names swapped
            person("WANJIRÚ", "kamau", "1990-12-04"), // case, diacritic, day and month
            person("Wanjriu", "Kamau", "1991-04-12"), // a typo, the year off by one
            person("Wanjeru", "Kamau", "1990-04-12"), // spelt as heard
        ] {
            let b = Profile::of(&noisy);
            assert!(score(&a, &b) >= 17.0, "{noisy:?}: {}", score(&a, &b));
            let stored = stored_keys(&a);
            assert!(probe_keys(&b).iter().any(|k| stored.contains(k)), "{noisy:?} shares a block");
        }
    }

    #[test]
    fn twins_score_below_one_person() {
        let a = Profile::of(&person("Wanjiru", "Kamau", "1990-04-12"));
        let twin = Profile::of(&person("Nyambura", "Kamau", "1990-04-12"));
        assert!(score(&a, &twin) < 17.0, "{}", score(&a, &twin));
    }
}
