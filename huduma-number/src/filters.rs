//! The issuance filters: the shapes a Huduma number must not have, after MOSIP's UIN
//! filters. A candidate that breaks one is skipped, never issued.

use crate::number::{DIGITS, HudumaNumber};

/// Which filter a candidate number broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterRule {
    /// The first digit is 0 or 1.
    LeadingDigit,
    /// Three consecutive digits ascend or descend by one (`345`, `987`).
    SequentialRun,
    /// A digit is repeated within two places (`44`, `4x4`).
    RepeatedDigit,
    /// A block of two or more digits occurs twice (`48..48`).
    RepeatedBlock,
    /// The first five digits equal the last five, or the last five reversed.
    MirroredEnds,
    /// The number contains one of the restricted sequences.
    RestrictedSequence,
}

/// The filters applied to every candidate, over all 12 digits (check digit included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuanceFilters {
    /// Digit sequences that must not appear anywhere in a number.
    pub restricted: Vec<Vec<u8>>,
}

impl Default for IssuanceFilters {
    /// Restricted by default: emergency short codes (112, 911) and the keypad's
    /// middle column (2580, 0852), which read as made-up numbers.
    fn default() -> Self {
        Self { restricted: vec![vec![1, 1, 2], vec![9, 1, 1], vec![2, 5, 8, 0], vec![0, 8, 5, 2]] }
    }
}

impl IssuanceFilters {
    /// The first rule `number` breaks, or `Ok(())` when it may be issued.
    pub fn check(&self, number: HudumaNumber) -> Result<(), FilterRule> {
        check_digits(&number.digits(), &self.restricted)
    }

    /// The number that `body` (the 11 drawn digits) makes with its check digit, if it
    /// breaks no rule: what [`HudumaNumber::with_check_digit`] and then [`Self::check`]
    /// accept, found sooner. Every rule but [`FilterRule::MirroredEnds`] is broken by
    /// some run of digits, so a run within the drawn digits breaks it for the whole
    /// number; most candidates break one there (a digit repeated within two places,
    /// above all) and are refused before their check digit is computed.
    pub fn issuable(&self, body: u64) -> Option<HudumaNumber> {
        let drawn = crate::number::drawn_digits(body)?;
        check_runs(&drawn, &self.restricted).ok()?;
        let number = HudumaNumber::with_check_digit_of(body, &drawn);
        self.check(number).is_ok().then_some(number)
    }
}

fn check_digits(d: &[u8; DIGITS], restricted: &[Vec<u8>]) -> Result<(), FilterRule> {
    check_shapes(d)?;
    let (head, tail) = (&d[..5], &d[DIGITS - 5..]);
    if head == tail || head.iter().eq(tail.iter().rev()) {
        return Err(FilterRule::MirroredEnds);
    }
    check_restricted(d, restricted)
}

/// The rules that a run of digits breaks, over the digits `d` (a whole number, or its
/// first digits): if the first digits break one, so does the whole number.
fn check_runs(d: &[u8], restricted: &[Vec<u8>]) -> Result<(), FilterRule> {
    check_shapes(d)?;
    check_restricted(d, restricted)
}

/// The rules up to [`FilterRule::RepeatedBlock`], in their order, over `d` (a whole
/// number, or its first digits).
fn check_shapes(d: &[u8]) -> Result<(), FilterRule> {
    if d.first().is_some_and(|first| *first < 2) {
        return Err(FilterRule::LeadingDigit);
    }
    for w in d.windows(3) {
        let (a, b, c) = (i16::from(w[0]), i16::from(w[1]), i16::from(w[2]));
        if (b - a == 1 && c - b == 1) || (a - b == 1 && b - c == 1) {
            return Err(FilterRule::SequentialRun);
        }
    }
    let len = d.len();
    for i in 0..len.saturating_sub(1) {
        if d[i] == d[i + 1] || (i + 2 < len && d[i] == d[i + 2]) {
            return Err(FilterRule::RepeatedDigit);
        }
    }
    // Any repeated block of length >= 2 contains a repeated block of length 2, so
    // checking non-overlapping pairs is enough.
    for i in 0..len.saturating_sub(1) {
        for j in i + 2..len - 1 {
            if d[i] == d[j] && d[i + 1] == d[j + 1] {
                return Err(FilterRule::RepeatedBlock);
            }
        }
    }
    Ok(())
}

fn check_restricted(d: &[u8], restricted: &[Vec<u8>]) -> Result<(), FilterRule> {
    if restricted.iter().any(|seq| !seq.is_empty() && d.windows(seq.len()).any(|w| w == seq.as_slice())) {
        return Err(FilterRule::RestrictedSequence);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> [u8; DIGITS] {
        let mut d = [0u8; DIGITS];
        assert_eq!(s.len(), DIGITS);
        for (slot, c) in d.iter_mut().zip(s.bytes()) {
            *slot = c - b'0';
        }
        d
    }

    fn rule(s: &str) -> Result<(), FilterRule> {
        check_digits(&digits(s), &IssuanceFilters::default().restricted)
    }

    #[test]
    fn each_rule_is_caught_by_name() {
        assert_eq!(rule("135792468024"), Err(FilterRule::LeadingDigit));
        assert_eq!(rule("024681357924"), Err(FilterRule::LeadingDigit));
        assert_eq!(rule("234579135792"), Err(FilterRule::SequentialRun));
        assert_eq!(rule("298759357913"), Err(FilterRule::SequentialRun));
        assert_eq!(rule("244681357902"), Err(FilterRule::RepeatedDigit));
        assert_eq!(rule("246481357902"), Err(FilterRule::RepeatedDigit));
        assert_eq!(rule("246813579246"), Err(FilterRule::RepeatedBlock));
        assert_eq!(rule("295746347592"), Err(FilterRule::MirroredEnds));
        assert_eq!(rule("294725803617"), Err(FilterRule::RestrictedSequence));
        assert_eq!(rule("294736158392"), Ok(()));
    }

    proptest::proptest! {
        /// `issuable` accepts exactly the bodies that the check digit and then every
        /// filter accept, with the same number, over runs of consecutive bodies (about
        /// one in twenty-five passes) and past the end of the drawn range.
        #[test]
        fn issuable_is_the_check_digit_then_the_filters(
            start in 0u64..100_000_000_100,
            restricted in proptest::collection::vec(proptest::collection::vec(0u8..10, 0..4), 0..4),
        ) {
            let filters = IssuanceFilters { restricted };
            for body in start..start + 2_000 {
                let reference = HudumaNumber::with_check_digit(body).ok().filter(|n| filters.check(*n).is_ok());
                proptest::prop_assert_eq!(filters.issuable(body), reference, "body {}", body);
            }
        }
    }

    #[test]
    fn restricted_sequences_are_configurable() {
        let custom = vec![vec![7, 3, 6]];
        assert_eq!(check_digits(&digits("294736158392"), &custom), Err(FilterRule::RestrictedSequence));
        assert_eq!(check_digits(&digits("294725803617"), &[]), Ok(()));
    }
}
