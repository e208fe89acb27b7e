//! How alike two persons' demographics are: a Fellegi-Sunter style score, the sum over
//! fields of log2(m/u) when a field agrees (m: how often it agrees for the same person
//! enrolled twice; u: for two different persons) and log2((1-m)/(1-u)) when it does not,
//! rounded to the weights below and checked on the synthetic population
//! (BENCHMARKS.md, "Duplicate search"). A name agrees exactly, or partly when it sounds
//! the same (Double Metaphone, and not wholly unlike) or is one typo away (one edit, or
//! Jaro-Winkler at least 0.9).
//!
//! Names: each side's given and family names are looked for among the other's, and
//! the worse of the two directions counts (so a name either side has and the other
//! lacks is evidence of two persons). Found in their own roles (given with given,
//! family with family) they weigh fully; found only in other roles (names swapped,
//! an other name given as the given name) they weigh `ROLE_CHANGED` less, since clerks
//! do swap names but a son's given name is often his father's family name.
//!
//! | field | agrees | partly | disagrees |
//! |---|---:|---:|---:|
//! | given name | +6.0 exact | +3.5 sound-alike or typo | -5.5 |
//! | family name | +6.0 exact | +3.5 sound-alike or typo | -5.5 |
//! | either found only in another role | -2.0 | | |
//! | other names, when both give some | +3.0 one in common | | -3.0 |
//! | other names given by one side only | | | -2.0 |
//! | date of birth | +10.0 exact | +6.0 day and month swapped, or the year off by one | -6.0 |
//! | sex | +1.0 | | -4.0 |
//! | place of birth | +2.0 same or sound-alike | | -3.0 |
//!
//! A given or family name that agrees (exactly or partly) weighs more when it is rare
//! and less when it is common, by the searching person's counts of each of their
//! name words ([`FREQUENCY`]: log2 of 1/256 over the name's share of persons, from -4.0
//! to +2.0, so an exact re-enrolment never falls below the threshold): two strangers share Mary or Kamau far more often than a rare name, and
//! the false matches of a large registry are mostly such pairs born on one day.
//!
//! The most a pair can score is 32.0 (28.0 before the frequency adjustment).

use super::normalise::{fold, phonetic, words};
use crate::demographics::{Demographics, Sex};

/// Weights (see the module's table).
pub mod weight {
    pub const NAME_EXACT: f32 = 6.0;
    pub const NAME_CLOSE: f32 = 3.5;
    pub const NAME_DIFFERENT: f32 = -5.5;
    pub const OTHER_SHARED: f32 = 3.0;
    pub const OTHER_DIFFERENT: f32 = -3.0;
    pub const OTHER_ONE_SIDED: f32 = -2.0;
    pub const ROLE_CHANGED: f32 = -2.0;
    pub const DOB_EXACT: f32 = 10.0;
    pub const DOB_NEAR: f32 = 6.0;
    pub const DOB_DIFFERENT: f32 = -6.0;
    pub const SEX_SAME: f32 = 1.0;
    pub const SEX_DIFFERENT: f32 = -4.0;
    pub const PLACE_SAME: f32 = 2.0;
    pub const PLACE_DIFFERENT: f32 = -3.0;
}

/// One word of a name, folded, with its phonetic code, and how much an agreement on
/// it is worth beyond the table's weight because of how common it is
/// ([`FrequencyWeights`]; 0 when its frequency is not known).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub code: String,
    pub adjustment: f32,
}

/// A person's demographics in the form the search compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub given: Vec<Word>,
    pub family: Vec<Word>,
    pub others: Vec<Word>,
    /// Every distinct phonetic code of the names, given names first, then family, then
    /// others (the blocking keys' material).
    pub codes: Vec<String>,
    /// (year, month, day), if the date parses.
    pub dob: Option<(i32, u8, u8)>,
    pub sex: Sex,
    /// The place of birth, folded whole, with its phonetic code.
    pub place: Word,
}

pub(crate) fn parse_dob(text: &str) -> Option<(i32, u8, u8)> {
    let mut parts = text.split('-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((year, month, day))
}

/// How an agreement on a name is weighed by how common the name is: a name carried by
/// `reference_share` of persons weighs the table's weight; one carried by a share
/// `s` weighs `log2(reference_share / s)` more, within `-max_penalty..=max_bonus`.
/// The share is smoothed towards `reference_share` by `prior_persons` assumed
/// persons, so that a young registry's few counts do not swing the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrequencyWeights {
    pub reference_share: f64,
    pub prior_persons: f64,
    pub max_penalty: f32,
    pub max_bonus: f32,
}

/// The registry's frequency weights (chosen on the synthetic population, see
/// BENCHMARKS.md, "Duplicate search"). The penalty stops at 4.0 so that an exact
/// re-enrolment (two names, birth date, sex and place: 25.0, less at most 2 x 4.0)
/// still scores the threshold (17.0) however common its names are: in a registry
/// where most persons are called Wanjiru or Kamau (a county's pilot), a larger
/// penalty would let the same person enrol twice.
pub const FREQUENCY: FrequencyWeights =
    FrequencyWeights { reference_share: 1.0 / 256.0, prior_persons: 20_000.0, max_penalty: 4.0, max_bonus: 2.0 };

impl FrequencyWeights {
    /// No adjustment at all.
    pub const NONE: Self = Self { reference_share: 1.0, prior_persons: 1.0, max_penalty: 0.0, max_bonus: 0.0 };

    /// The adjustment of an agreement on a name `carrying` of `persons` persons carry.
    pub fn adjustment(&self, carrying: u64, persons: u64) -> f32 {
        let share =
            (carrying as f64 + self.prior_persons * self.reference_share) / (persons as f64 + self.prior_persons);
        ((self.reference_share / share).log2() as f32).clamp(-self.max_penalty, self.max_bonus)
    }
}

impl Word {
    /// The word as written, its phonetic code not yet worked out ([`Profile::uncoded`]).
    fn uncoded(text: String) -> Self {
        Self { text, code: String::new(), adjustment: 0.0 }
    }

    /// The word's phonetic code: as worked out, or worked out now for an uncoded word.
    fn code(&self) -> std::borrow::Cow<'_, str> {
        if self.code.is_empty() { std::borrow::Cow::Owned(phonetic(&self.text)) } else { (&*self.code).into() }
    }
}

fn uncoded(name: &str) -> Vec<Word> {
    words(name).into_iter().map(Word::uncoded).collect()
}

impl Profile {
    pub fn of(d: &Demographics) -> Self {
        let mut profile = Self::uncoded(d);
        let Self { given, family, others, place, .. } = &mut profile;
        for w in given.iter_mut().chain(family.iter_mut()).chain(others.iter_mut()).chain(std::iter::once(place)) {
            w.code = phonetic(&w.text);
        }
        let mut codes: Vec<String> = Vec::new();
        for w in profile.all() {
            if !codes.contains(&w.code) {
                codes.push(w.code.clone());
            }
        }
        profile.codes = codes;
        profile
    }

    /// [`Profile::of`] without the phonetic codes (`codes` empty, each word's code
    /// worked out only where a comparison needs it): for a registered person the
    /// search opens, whom only the score reads. Most of their words are told apart
    /// from the searching person's by their letters alone, and coding a word was a
    /// tenth of a crowded search (BENCHMARKS.md, "The duplicate search at national
    /// density"). Scores the same as [`Profile::of`].
    pub fn uncoded(d: &Demographics) -> Self {
        Self {
            given: uncoded(&d.given_name),
            family: uncoded(&d.family_name),
            others: d.other_names.iter().flat_map(|n| uncoded(n)).collect(),
            codes: Vec::new(),
            dob: parse_dob(&d.date_of_birth),
            sex: d.sex,
            place: Word::uncoded(fold(&d.place_of_birth)),
        }
    }

    /// Sets each name word's frequency adjustment from `carrying(word)`, the persons
    /// carrying it, of `persons`.
    pub fn weigh_by_frequency(
        &mut self,
        weights: &FrequencyWeights,
        persons: u64,
        mut carrying: impl FnMut(&str) -> u64,
    ) {
        for w in self.given.iter_mut().chain(&mut self.family).chain(&mut self.others) {
            w.adjustment = weights.adjustment(carrying(&w.text), persons);
        }
    }

    /// Every distinct word of the names (what a name count is kept for).
    pub fn distinct_words(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for w in self.all() {
            if !out.contains(&w.text.as_str()) {
                out.push(&w.text);
            }
        }
        out
    }

    /// Every word of every name, in the order given, family, others.
    fn all(&self) -> impl Iterator<Item = &Word> + Clone {
        self.given.iter().chain(&self.family).chain(&self.others)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Different,
    Close,
    Exact,
}

/// Sound-alike (one Double Metaphone code, and not wholly unlike: Kamau and Kimeu share
/// a code), or one typo away: one letter changed, dropped, added or two swapped
/// (optimal string alignment distance 1, in words of four letters or more), or
/// Jaro-Winkler at least 0.9.
pub fn close(a: &str, b: &str) -> bool {
    close_coded(a, b, &phonetic(a), &phonetic(b))
}

fn close_coded(a: &str, b: &str, code_a: &str, code_b: &str) -> bool {
    !too_unlike(a, b, code_a == code_b) && close_measured(a, b, code_a, code_b)
}

/// Whether two words of letters a-z share too few letters to be close, whatever their
/// order: with `c` letters in common (as multisets), the optimal string alignment
/// distance is at least the longer length less `c` (an edit supplies at most one
/// missing letter), and Jaro at most (c/|a| + c/|b| + 1) / 3 (matches are common
/// letters), so Jaro-Winkler at most 0.4 + 0.6 x that (its prefix bonus is at most 0.4
/// of what Jaro lacks). Most pairs of different names are told apart here without the
/// measures, which allocate and cost most of a score (BENCHMARKS.md, "The duplicate
/// search at national density"). Words with any other character are not judged here.
fn too_unlike(a: &str, b: &str, same_code: bool) -> bool {
    let letters = |w: &str| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase());
    if !letters(a) || !letters(b) {
        return false;
    }
    let mut counts = [0i32; 26];
    for c in a.bytes() {
        counts[usize::from(c - b'a')] += 1;
    }
    let mut common = 0usize;
    for c in b.bytes() {
        let slot = &mut counts[usize::from(c - b'a')];
        if *slot > 0 {
            *slot -= 1;
            common += 1;
        }
    }
    let (len_a, len_b) = (a.len(), b.len());
    if len_a.max(len_b) - common <= 1 {
        return false;
    }
    let jaro_at_most = (common as f64 / len_a as f64 + common as f64 / len_b as f64 + 1.0) / 3.0;
    let needed = if same_code { 0.8 } else { 0.9 };
    // A margin for rounding: a pair this near the line is measured.
    0.4 + 0.6 * jaro_at_most < needed - 1e-6
}

/// [`close_coded`] by the measures themselves.
fn close_measured(a: &str, b: &str, code_a: &str, code_b: &str) -> bool {
    let (len_a, len_b) = (a.chars().count(), b.chars().count());
    // Words whose lengths differ by two or more are at least two edits apart.
    if len_a.max(len_b) >= 4 && len_a.abs_diff(len_b) <= 1 && strsim::osa_distance(a, b) <= 1 {
        return true;
    }
    let similarity = strsim::jaro_winkler(a, b);
    similarity >= 0.9 || (similarity >= 0.8 && code_a == code_b)
}

fn word_level(a: &Word, b: &Word) -> Level {
    if a.text == b.text {
        Level::Exact
    } else if too_unlike(&a.text, &b.text, true) {
        // Told apart by their letters even were they to sound alike: not coded at all.
        Level::Different
    } else if close_coded(&a.text, &b.text, &a.code(), &b.code()) {
        Level::Close
    } else {
        Level::Different
    }
}

/// Every word of one profile's names against every word of another's (each in the
/// order given, family, others), each pair compared once: a score looks most pairs up
/// many times, and comparing two words (edit distance, Jaro-Winkler) is the costly
/// part of it.
struct Levels {
    /// Row `i`, column `j`: word `i` of the first profile against word `j` of the other.
    cells: Vec<Level>,
    columns: usize,
}

impl Levels {
    fn of(a: &[&Word], b: &[&Word]) -> Self {
        let cells = a.iter().flat_map(|x| b.iter().map(move |y| word_level(x, y))).collect();
        Self { cells, columns: b.len() }
    }
}

/// One direction of a comparison: `mine`'s words against `theirs`, with the levels
/// read straight or transposed (word comparison is symmetric).
struct Side<'a> {
    mine: &'a Profile,
    theirs: &'a Profile,
    mine_words: &'a [&'a Word],
    their_words: &'a [&'a Word],
    levels: &'a Levels,
    transposed: bool,
}

impl Side<'_> {
    /// How word `i` of mine compares with word `j` of theirs.
    fn level(&self, i: usize, j: usize) -> Level {
        let at = if self.transposed { j * self.levels.columns + i } else { i * self.levels.columns + j };
        self.levels.cells.get(at).copied().unwrap_or(Level::Different)
    }

    /// The weight of the best agreement of any of my words `mine` with any of their
    /// words `among`, each agreement adjusted for how common the words are (one side's
    /// adjustment is known: the searching person's).
    fn name_weight(&self, mine: std::ops::Range<usize>, among: impl Iterator<Item = usize> + Clone) -> f32 {
        let mut best = weight::NAME_DIFFERENT;
        for i in mine {
            for j in among.clone() {
                let base = match self.level(i, j) {
                    Level::Exact => weight::NAME_EXACT,
                    Level::Close => weight::NAME_CLOSE,
                    Level::Different => continue,
                };
                best = best.max(base + self.mine_words[i].adjustment + self.their_words[j].adjustment);
            }
        }
        best
    }

    /// How well my given and family names match theirs: in their own roles (given
    /// with given, family with family), or, less surely, in any roles: two *different*
    /// words of their names (one word cannot stand for both), in whichever order
    /// matches better, at `ROLE_CHANGED` less.
    fn names_found(&self) -> f32 {
        let (my_given, my_family) = roles(self.mine);
        let (their_given, their_family) = roles(self.theirs);
        let in_role =
            self.name_weight(my_given.clone(), their_given) + self.name_weight(my_family.clone(), their_family);
        let words = self.their_words.len();
        if words == 0 {
            return 2.0 * weight::NAME_DIFFERENT;
        }
        let best_pair = |first: std::ops::Range<usize>, second: std::ops::Range<usize>| {
            let mut best = f32::MIN;
            for one in 0..words {
                let first_weight = self.name_weight(first.clone(), std::iter::once(one));
                let second_weight = if words < 2 {
                    weight::NAME_DIFFERENT
                } else {
                    self.name_weight(second.clone(), (0..words).filter(move |j| *j != one))
                };
                best = best.max(first_weight + second_weight);
            }
            best
        };
        let any_role =
            best_pair(my_given.clone(), my_family.clone()).max(best_pair(my_family, my_given)) + weight::ROLE_CHANGED;
        in_role.max(any_role)
    }

    /// Whether any of my other names is found among any of their words.
    fn other_found(&self) -> bool {
        let (_, family) = roles(self.mine);
        (family.end..self.mine_words.len())
            .any(|i| (0..self.their_words.len()).any(|j| self.level(i, j) > Level::Different))
    }
}

/// Where a profile's given and family names sit among its words (in the order given,
/// family, others).
fn roles(p: &Profile) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let given = 0..p.given.len();
    let family = given.end..given.end + p.family.len();
    (given, family)
}

/// The date of birth's weight: exact, near (day and month swapped, or the year off by
/// one), or different.
pub fn dob_weight(a: Option<(i32, u8, u8)>, b: Option<(i32, u8, u8)>) -> f32 {
    match (a, b) {
        (Some(x), Some(y)) if x == y => weight::DOB_EXACT,
        (Some((y1, m1, d1)), Some((y2, m2, d2)))
            if (y1 == y2 && m1 == d2 && d1 == m2) || ((y1 - y2).abs() == 1 && m1 == m2 && d1 == d2) =>
        {
            weight::DOB_NEAR
        }
        _ => weight::DOB_DIFFERENT,
    }
}

/// The most `a` can score against any unweighted profile (a registered person, as the
/// search opens them) on everything but the date of birth: its two names agreeing at
/// the largest of its words' adjustments.
pub fn best_without_dob(a: &Profile) -> f32 {
    let adjustment = a.all().map(|w| w.adjustment).reduce(f32::max).unwrap_or(0.0);
    2.0 * (weight::NAME_EXACT + adjustment) + weight::OTHER_SHARED + weight::SEX_SAME + weight::PLACE_SAME
}

/// The most any profile weighed by `weights` can score against an unweighted one on
/// everything but the date of birth: [`best_without_dob`] with every word at the
/// largest bonus.
pub fn best_without_dob_weighed_at_most(weights: &FrequencyWeights) -> f32 {
    2.0 * (weight::NAME_EXACT + weights.max_bonus) + weight::OTHER_SHARED + weight::SEX_SAME + weight::PLACE_SAME
}

/// The weight each field contributes to a score (see the module's table): `score` is
/// their sum. Kept apart so that a study of the weights can see which fields agreed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parts {
    /// The given and family names, with their frequency adjustments.
    pub names: f32,
    pub others: f32,
    pub dob: f32,
    pub sex: f32,
    pub place: f32,
}

impl Parts {
    pub fn total(&self) -> f32 {
        self.names + self.others + self.dob + self.sex + self.place
    }
}

/// The weight of each field of `a` against `b`.
pub fn parts(a: &Profile, b: &Profile) -> Parts {
    let (a_words, b_words): (Vec<&Word>, Vec<&Word>) = (a.all().collect(), b.all().collect());
    let levels = Levels::of(&a_words, &b_words);
    let ours =
        Side { mine: a, theirs: b, mine_words: &a_words, their_words: &b_words, levels: &levels, transposed: false };
    let theirs =
        Side { mine: b, theirs: a, mine_words: &b_words, their_words: &a_words, levels: &levels, transposed: true };
    let others = match (a.others.is_empty(), b.others.is_empty()) {
        (false, false) => {
            if ours.other_found() || theirs.other_found() {
                weight::OTHER_SHARED
            } else {
                weight::OTHER_DIFFERENT
            }
        }
        (true, true) => 0.0,
        _ => weight::OTHER_ONE_SIDED,
    };
    Parts {
        // The worse of the two directions: a name of either side missing from the
        // other is evidence of two persons.
        names: ours.names_found().min(theirs.names_found()),
        others,
        dob: dob_weight(a.dob, b.dob),
        sex: if a.sex == b.sex { weight::SEX_SAME } else { weight::SEX_DIFFERENT },
        place: if !a.place.text.is_empty() && word_level(&a.place, &b.place) > Level::Different {
            weight::PLACE_SAME
        } else {
            weight::PLACE_DIFFERENT
        },
    }
}

/// The score of `a` against `b` (see the module's table): the sum of its [`Parts`].
/// Symmetric enough for ranking; not a probability.
pub fn score(a: &Profile, b: &Profile) -> f32 {
    parts(a, b).total()
}

/// The blocking keys a person is stored under (before keyed hashing): every pair of
/// their first four name codes with the birth year and month, and each code with the
/// birth date written day-and-month-order-free (one name only: that name with the
/// year and month). Two enrolments of one person share a key unless both a name and
/// the date changed (or, with only two names, a name and the year and month: a date
/// the score calls near keeps the month or swaps it with the day, so a probe of
/// [`Reach::Near`] finds it).
pub fn stored_keys(p: &Profile) -> Vec<String> {
    let Some(dob @ (year, month, _)) = p.dob else { return Vec::new() };
    keys(p, dob, &[(year, month)])
}

/// Which block-mates a search must reach, by how their birth date may differ from
/// the probe's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Those whose date the score calls exact or near (the same, day and month
    /// swapped, or the year off by one): enough when a different date alone keeps a
    /// block-mate below the floor, as at the enrolment threshold.
    Near,
    /// Any born within a year either side, whatever the month (`FindDuplicates`'
    /// lower floor).
    Any,
}

/// The keys a search probes: the `d` keys as stored, and the name pairs (or the one
/// name) with each year and month a block-mate of that reach may have been stored
/// under. A block-mate born on the same date, or with day and month swapped, shares
/// a `d` key for each name code of a shared pair (the date is written order-free),
/// so `Near` probes the name blocks of the years either side only.
pub fn probe_keys(p: &Profile, reach: Reach) -> Vec<String> {
    let Some(dob @ (year, month, _)) = p.dob else { return Vec::new() };
    let months: Vec<(i32, u8)> = match reach {
        Reach::Near => vec![(year - 1, month), (year + 1, month)],
        Reach::Any => (year - 1..=year + 1)
            .flat_map(|y| (1..=12).chain((month > 12).then_some(month)).map(move |m| (y, m)))
            .collect(),
    };
    keys(p, dob, &months)
}

/// `p`'s keys, born on `(year, month, day)`, its name blocks under each of `months`.
fn keys(p: &Profile, (year, month, day): (i32, u8, u8), months: &[(i32, u8)]) -> Vec<String> {
    let codes = &p.codes[..p.codes.len().min(4)];
    let mut out = Vec::new();
    for (i, a) in codes.iter().enumerate() {
        for b in &codes[i + 1..] {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            for (y, m) in months {
                out.push(format!("p\u{1f}{lo}\u{1f}{hi}\u{1f}{y}-{m:02}"));
            }
        }
    }
    let (lo, hi) = (month.min(day), month.max(day));
    for code in codes {
        out.push(format!("d\u{1f}{code}\u{1f}{year}-{lo:02}-{hi:02}"));
    }
    if codes.len() == 1 {
        // One name only: block on it with the year and month.
        for (y, m) in months {
            out.push(format!("s\u{1f}{}\u{1f}{y}-{m:02}", codes[0]));
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
            person("Wanjriu", "Kamau", "1990-04-12"), // a typo (two letters swapped)
            person("Wanjru", "Kamau", "1990-04-12"),  // a letter dropped
            person("Wanjiru", "Kamau", "1991-04-12"), // the year off by one
            person("Wanjeru", "Kamau", "1990-04-12"), // spelt as heard
        ] {
            let b = Profile::of(&noisy);
            assert!(score(&a, &b) >= crate::dedup::THRESHOLD, "{noisy:?}: {}", score(&a, &b));
            let stored = stored_keys(&a);
            assert!(probe_keys(&b, Reach::Near).iter().any(|k| stored.contains(k)), "{noisy:?} shares a block");
        }
    }

    proptest::proptest! {
        /// Whatever the names and date, a person enrolled again exactly is found (the
        /// probe shares a stored block) and scores above the threshold, however common
        /// their names are.
        #[test]
        fn a_person_always_finds_themselves(
            given in "[A-Za-z]{2,12}",
            family in "[A-Za-z]{2,12}",
            other in proptest::option::of("[A-Za-z]{2,12}"),
            year in 1900i32..2025,
            month in 1u8..=12,
            day in 1u8..=28,
            persons in 0u64..100_000_000,
            carrying in proptest::collection::vec(0.0f64..=1.0, 3),
        ) {
            let mut d = person(&given, &family, &format!("{year}-{month:02}-{day:02}"));
            d.other_names = other.into_iter().collect();
            let p = Profile::of(&d);
            let stored = stored_keys(&p);
            proptest::prop_assert!(probe_keys(&p, Reach::Near).iter().any(|k| stored.contains(k)));
            proptest::prop_assert!(score(&p, &p) >= crate::dedup::THRESHOLD);
            // The search weighs the enrolling side by how many persons carry each word.
            let mut weighed = p.clone();
            let mut share = carrying.iter().cycle();
            weighed.weigh_by_frequency(&FREQUENCY, persons, |_| {
                (share.next().copied().unwrap_or(1.0) * persons as f64) as u64
            });
            proptest::prop_assert!(score(&weighed, &p) >= crate::dedup::THRESHOLD, "{}", score(&weighed, &p));
        }
    }

    proptest::proptest! {
        /// One person's names with two birth dates: a probe of `Reach::Near` shares a
        /// stored block whenever the score calls the dates exact or near, and one of
        /// `Reach::Any` (which probes all that `Near` does) whenever the years are at
        /// most one apart, with one name, two or more.
        #[test]
        fn each_reach_finds_the_block_mates_it_promises(
            names in proptest::collection::vec(proptest::sample::select(vec!["Kamau", "Wanjiru", "Otieno", "Njeri", "Mwangi"]), 1..5),
            // Few days and months, so that near dates are common.
            (y1, m1, d1) in (1989i32..=1992, 1u8..=3, 1u8..=4),
            (y2, m2, d2) in (1989i32..=1992, 1u8..=3, 1u8..=4),
        ) {
            let with_date = |y: i32, m: u8, d: u8| {
                let mut person = person(names[0], "", &format!("{y}-{m:02}-{d:02}"));
                person.family_name = names.get(1).copied().unwrap_or_default().into();
                person.other_names = names.iter().skip(2).map(|n| n.to_string()).collect();
                Profile::of(&person)
            };
            let (stored, probe) = (with_date(y1, m1, d1), with_date(y2, m2, d2));
            let stored_keys = stored_keys(&stored);
            let shares = |reach| probe_keys(&probe, reach).iter().any(|k| stored_keys.contains(k));
            if dob_weight(probe.dob, stored.dob) >= weight::DOB_NEAR {
                proptest::prop_assert!(shares(Reach::Near), "near dates, no block shared");
            }
            if (y1 - y2).abs() <= 1 {
                proptest::prop_assert!(shares(Reach::Any), "a year apart at most, no block shared");
            }
            let any = probe_keys(&probe, Reach::Any);
            proptest::prop_assert!(probe_keys(&probe, Reach::Near).iter().all(|k| any.contains(k)));
        }
    }

    /// Weighs `p` as a search would, by made-up name counts: a word carried by
    /// `counts[(its length + shift) % counts.len()]` of `persons` (at most all of them).
    fn weigh_by_some_counts(p: &mut Profile, persons: u64, counts: &[u64], shift: usize) {
        p.weigh_by_frequency(&FREQUENCY, persons, |w| counts[(w.len() + shift) % counts.len()].min(persons));
    }

    fn arbitrary_person() -> impl proptest::strategy::Strategy<Value = Demographics> {
        use proptest::prelude::*;
        let name = || {
            proptest::sample::select(vec![
                "Kamau", "Kamu", "Kimeu", "Wanjiru", "Wanjiro", "Mwangi", "Mwangj", "John", "Jon", "Njeri", "Nyeri",
            ])
        };
        let date = proptest::sample::select(vec!["1990-04-12", "1990-12-04", "1991-04-12", "1989-04-12", "1985-01-01"]);
        (name(), name(), proptest::collection::vec(name(), 0..3), date, any::<bool>(), any::<bool>()).prop_map(
            |(given, family, others, date, female, nyeri)| Demographics {
                given_name: given.into(),
                family_name: family.into(),
                other_names: others.into_iter().map(String::from).collect(),
                date_of_birth: date.into(),
                sex: if female { Sex::Female } else { Sex::Male },
                place_of_birth: if nyeri { "Nyeri" } else { "Nairobi" }.into(),
            },
        )
    }

    proptest::proptest! {
        /// The bound the search prunes block-mates by holds for every pair: nobody
        /// scores more than `best_without_dob` plus their date's weight.
        #[test]
        fn no_pair_scores_above_the_bound_the_search_prunes_by(
            a in arbitrary_person(),
            b in arbitrary_person(),
            persons in 0u64..10_000_000,
            counts in proptest::collection::vec(0u64..1_000_000, 7),
        ) {
            let (mut a, b) = (Profile::of(&a), Profile::of(&b));
            // The searching side weighed by some name counts, as a search does.
            weigh_by_some_counts(&mut a, persons, &counts, 0);
            proptest::prop_assert!(score(&a, &b) <= best_without_dob(&a) + dob_weight(a.dob, b.dob));
        }
    }

    /// The comparison as it was written before the word pairs were compared once each
    /// (`Levels`): the plain reading of the module's rules, kept as the oracle the
    /// faster one must equal.
    mod plain {
        use super::super::*;

        fn level<'a>(words: &[Word], among: impl Iterator<Item = &'a Word> + Clone) -> Level {
            let mut best = Level::Different;
            for w in words {
                for n in among.clone() {
                    best = best.max(word_level(w, n));
                }
            }
            best
        }

        fn name_weight<'a>(words: &[Word], among: impl Iterator<Item = &'a Word> + Clone) -> f32 {
            let mut best = weight::NAME_DIFFERENT;
            for w in words {
                for n in among.clone() {
                    let base = match word_level(w, n) {
                        Level::Exact => weight::NAME_EXACT,
                        Level::Close => weight::NAME_CLOSE,
                        Level::Different => continue,
                    };
                    best = best.max(base + w.adjustment + n.adjustment);
                }
            }
            best
        }

        fn names_found(a: &Profile, b: &Profile) -> f32 {
            let in_role = name_weight(&a.given, b.given.iter()) + name_weight(&a.family, b.family.iter());
            let words: Vec<&Word> = b.all().collect();
            if words.is_empty() {
                return 2.0 * weight::NAME_DIFFERENT;
            }
            let best_pair = |first: &[Word], second: &[Word]| {
                let mut best = f32::MIN;
                for (i, one) in words.iter().enumerate() {
                    let first_weight = name_weight(first, std::iter::once(*one));
                    let rest = words.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, w)| *w);
                    let second_weight =
                        if words.len() < 2 { weight::NAME_DIFFERENT } else { name_weight(second, rest) };
                    best = best.max(first_weight + second_weight);
                }
                best
            };
            let any_role = best_pair(&a.given, &a.family).max(best_pair(&a.family, &a.given)) + weight::ROLE_CHANGED;
            in_role.max(any_role)
        }

        pub fn parts(a: &Profile, b: &Profile) -> (f32, f32) {
            let others = match (a.others.is_empty(), b.others.is_empty()) {
                (false, false) => {
                    let shared = level(&a.others, b.all()).max(level(&b.others, a.all()));
                    if shared > Level::Different { weight::OTHER_SHARED } else { weight::OTHER_DIFFERENT }
                }
                (true, true) => 0.0,
                _ => weight::OTHER_ONE_SIDED,
            };
            (names_found(a, b).min(names_found(b, a)), others)
        }
    }

    /// Names drawn so that pairs are often alike: shared words, sound-alikes, typos,
    /// one-letter words, names of several words.
    fn varied_person() -> impl proptest::strategy::Strategy<Value = Demographics> {
        use proptest::prelude::*;
        let word = || {
            proptest::sample::select(vec![
                "Kamau", "Kamu", "Kimeu", "Wanjiru", "Wanjiku", "Mwangi", "John", "Jon", "Njeri", "A", "Otieno",
            ])
        };
        let name = move || proptest::collection::vec(word(), 0..3).prop_map(|w| w.join(" "));
        (name(), name(), proptest::collection::vec(name(), 0..3)).prop_map(|(given, family, other_names)| {
            Demographics {
                given_name: given,
                family_name: family,
                other_names,
                date_of_birth: "1990-04-12".into(),
                sex: Sex::Female,
                place_of_birth: "Nyeri".into(),
            }
        })
    }

    proptest::proptest! {
        /// The names' and other names' weights equal the plain reading's for every
        /// pair, with or without frequency adjustments on either side.
        #[test]
        fn each_word_pair_compared_once_weighs_as_the_plain_reading(
            a in varied_person(),
            b in varied_person(),
            persons in 0u64..10_000_000,
            counts in proptest::collection::vec(0u64..1_000_000, 5),
            weigh_b in proptest::bool::ANY,
        ) {
            let (mut a, mut b) = (Profile::of(&a), Profile::of(&b));
            weigh_by_some_counts(&mut a, persons, &counts, 0);
            if weigh_b {
                weigh_by_some_counts(&mut b, persons, &counts, 1);
            }
            let fast = parts(&a, &b);
            proptest::prop_assert_eq!((fast.names, fast.others), plain::parts(&a, &b));
            let fast = parts(&b, &a);
            proptest::prop_assert_eq!((fast.names, fast.others), plain::parts(&b, &a));
        }
    }

    #[test]
    fn twins_score_below_one_person() {
        let a = Profile::of(&person("Wanjiru", "Kamau", "1990-04-12"));
        let twin = Profile::of(&person("Nyambura", "Kamau", "1990-04-12"));
        assert!(score(&a, &twin) < crate::dedup::THRESHOLD, "{}", score(&a, &twin));
    }

    fn with_others(mut d: Demographics, others: &[&str]) -> Demographics {
        d.other_names = others.iter().map(|o| o.to_string()).collect();
        d
    }

    #[test]
    fn names_in_their_own_roles_weigh_more_than_the_same_names_in_others() {
        let a = Profile::of(&person("Kioko", "Nzioka", "1990-04-12"));
        let swapped = Profile::of(&person("Nzioka", "Kioko", "1990-04-12"));
        assert_eq!(score(&a, &a) - score(&a, &swapped), -weight::ROLE_CHANGED);
        // The other name given as the given name (and the given name among the others).
        let b = Profile::of(&with_others(person("John", "Kamau", "1990-04-12"), &["Mwangi"]));
        let promoted = Profile::of(&with_others(person("Mwangi", "Kamau", "1990-04-12"), &["John"]));
        assert!(score(&b, &promoted) >= crate::dedup::THRESHOLD);
        assert!(score(&b, &promoted) < score(&b, &b));
    }

    #[test]
    fn a_name_on_either_side_missing_from_the_other_counts_against() {
        // Two of three names shared, the third different on each side: two persons.
        let a = Profile::of(&with_others(person("Ongeri", "Nyamweya", "1993-02-04"), &["John"]));
        let b = Profile::of(&with_others(person("John", "Ondieki", "1993-02-04"), &["Nyamweya"]));
        assert!(score(&a, &b) < crate::dedup::THRESHOLD, "{}", score(&a, &b));
        assert_eq!(score(&a, &b), score(&b, &a));
        // Other names given on one side only weigh less than none at all, and
        // different other names less again.
        let plain = Profile::of(&person("Joseph", "Katana", "2016-11-17"));
        let one_sided = Profile::of(&with_others(person("Joseph", "Katana", "2016-11-17"), &["Kazungu"]));
        let other = Profile::of(&with_others(person("Joseph", "Katana", "2016-11-17"), &["Charo"]));
        assert_eq!(score(&plain, &plain) - score(&plain, &one_sided), -weight::OTHER_ONE_SIDED);
        assert_eq!(score(&one_sided, &other), score(&plain, &plain) + weight::OTHER_DIFFERENT);
    }

    proptest::proptest! {
        /// A registered person's profile as the search opens it, its words coded only
        /// where a comparison needs it, scores as the fully coded profile does, against
        /// a searching person weighed by name counts.
        #[test]
        fn an_uncoded_profile_scores_as_a_coded_one(
            a in arbitrary_person(),
            b in arbitrary_person(),
            persons in 0u64..10_000_000,
            counts in proptest::collection::vec(0u64..1_000_000, 7),
        ) {
            let mut searching = Profile::of(&a);
            weigh_by_some_counts(&mut searching, persons, &counts, 0);
            proptest::prop_assert_eq!(parts(&searching, &Profile::of(&b)), parts(&searching, &Profile::uncoded(&b)));
            proptest::prop_assert_eq!(parts(&Profile::of(&b), &searching), parts(&Profile::uncoded(&b), &searching));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..proptest::prelude::ProptestConfig::default() })]

        /// Words told apart by their letters alone ([`too_unlike`]) are never close by
        /// the measures: the pruned comparison equals the measured one, over words of a
        /// few letters (so that near misses abound) and real names with typos.
        #[test]
        fn words_told_apart_by_their_letters_are_not_close_by_the_measures(
            a in "[a-f]{0,9}|[a-z]{1,12}|(kamau|wanjiru|otieno|njeri|mwangi|wekesa|simiyu|chepkwony)[a-z]?",
            b in "[a-f]{0,9}|[a-z]{1,12}|(kamau|wanjiru|otieno|njeri|mwangi|wekesa|simiyu|chepkwony)[a-z]?",
            same_code in proptest::bool::ANY,
        ) {
            let (code_a, code_b) = (phonetic(&a), if same_code { phonetic(&a) } else { phonetic(&b) });
            proptest::prop_assert_eq!(close_coded(&a, &b, &code_a, &code_b), close_measured(&a, &b, &code_a, &code_b));
        }
    }

    #[test]
    fn one_typo_is_close_and_a_different_name_is_not() {
        for (a, b) in [("simiyu", "simiyo"), ("omar", "omr"), ("wekesa", "wlkesa"), ("chepkwony", "cehpkwony")] {
            assert!(close(a, b), "{a} ~ {b}");
        }
        for (a, b) in [("kamau", "kimeu"), ("ali", "abi"), ("mutua", "mutuku")] {
            assert!(!close(a, b), "{a} !~ {b}");
        }
        // Different names are told apart by their letters, before any measure.
        for (a, b) in [("mary", "wanjiru"), ("kamau", "otieno"), ("njeri", "mwangi")] {
            assert!(too_unlike(a, b, false) && too_unlike(a, b, true), "{a} / {b}");
        }
    }
}
