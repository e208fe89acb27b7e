//! `HudumaNumber`: the validated 12-digit value, its parser, printer and serde forms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use verhoeff::Verhoeff;

/// How many digits a Huduma number has, the check digit included.
pub const DIGITS: usize = 12;

/// A Huduma number whose length, digits and Verhoeff check digit are valid.
///
/// It is held as its 12-digit decimal value. Construction always validates, so a value
/// of this type never carries a typo that the check digit catches.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HudumaNumber(u64);

/// Why a string or value is not a Huduma number. Each variant names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("length: a Huduma number has 12 digits, found {found}")]
    Length { found: usize },
    #[error("non-digit: {character:?} at position {position} is not a digit, space or hyphen")]
    NonDigit { character: char, position: usize },
    #[error("check digit: the last digit does not match the Verhoeff check digit of the first 11 (a typo?)")]
    CheckDigit,
    #[error("out of range: {value} has more than 12 digits")]
    OutOfRange { value: u64 },
}

impl HudumaNumber {
    /// Builds a number from 12 digits (each 0..=9), checking the check digit.
    pub fn from_digits(digits: [u8; DIGITS]) -> Result<Self, NumberError> {
        if let Some(position) = digits.iter().position(|d| *d > 9) {
            return Err(NumberError::NonDigit { character: char::from(digits[position].wrapping_add(b'0')), position });
        }
        if !digits[..].validate_verhoeff_check_digit() {
            return Err(NumberError::CheckDigit);
        }
        Ok(Self(digits.iter().fold(0u64, |acc, d| acc * 10 + u64::from(*d))))
    }

    /// Appends the Verhoeff check digit to 11 drawn digits. `body` must be below 10^11.
    pub fn with_check_digit(body: u64) -> Result<Self, NumberError> {
        let drawn = drawn_digits(body).ok_or(NumberError::OutOfRange { value: body })?;
        Ok(Self::with_check_digit_of(body, &drawn))
    }

    /// [`Self::with_check_digit`] of `body` whose drawn digits are `drawn` (its
    /// [`drawn_digits`]), for a caller that has them already.
    pub(crate) fn with_check_digit_of(body: u64, drawn: &[u8; DIGITS - 1]) -> Self {
        let check = drawn[..].calculate_verhoeff_check_digit();
        // Eleven digits and the check digit computed for them: valid by construction.
        Self(body * 10 + u64::from(check))
    }

    /// Validates a 12-digit value, as stored.
    pub fn from_u64(value: u64) -> Result<Self, NumberError> {
        if value >= 1_000_000_000_000 {
            return Err(NumberError::OutOfRange { value });
        }
        Self::from_digits(digits_of(value))
    }

    /// The 12-digit value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The 12 digits, most significant first.
    pub fn digits(self) -> [u8; DIGITS] {
        digits_of(self.0)
    }

    /// The number without separators: `234567890123`.
    pub fn compact(self) -> String {
        format!("{:012}", self.0)
    }
}

/// The 11 drawn digits of `body`, most significant first; `None` from 10^11.
pub(crate) fn drawn_digits(body: u64) -> Option<[u8; DIGITS - 1]> {
    if body >= 100_000_000_000 {
        return None;
    }
    let mut digits = [0u8; DIGITS - 1];
    let mut rest = body;
    for slot in digits.iter_mut().rev() {
        *slot = (rest % 10) as u8;
        rest /= 10;
    }
    Some(digits)
}

fn digits_of(value: u64) -> [u8; DIGITS] {
    let mut digits = [0u8; DIGITS];
    let mut rest = value;
    for slot in digits.iter_mut().rev() {
        *slot = (rest % 10) as u8;
        rest /= 10;
    }
    digits
}

impl FromStr for HudumaNumber {
    type Err = NumberError;

    /// Accepts the 12 digits with any spaces or hyphens between them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut digits = [0u8; DIGITS];
        let mut count = 0usize;
        for (position, character) in s.chars().enumerate() {
            match character {
                ' ' | '-' => {}
                '0'..='9' => {
                    if count < DIGITS {
                        digits[count] = character as u8 - b'0';
                    }
                    count += 1;
                }
                _ => {
                    return Err(NumberError::NonDigit { character, position });
                }
            }
        }
        if count != DIGITS {
            return Err(NumberError::Length { found: count });
        }
        Self::from_digits(digits)
    }
}

impl fmt::Display for HudumaNumber {
    /// Groups of four: `2345 6789 0123`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.compact();
        write!(f, "{} {} {}", &s[0..4], &s[4..8], &s[8..12])
    }
}

impl fmt::Debug for HudumaNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HudumaNumber({self})")
    }
}

impl Serialize for HudumaNumber {
    /// Human-readable formats get the compact string; binary formats the u64.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.compact())
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for HudumaNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = String::deserialize(deserializer)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let value = u64::deserialize(deserializer)?;
            Self::from_u64(value).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid() -> impl Strategy<Value = HudumaNumber> {
        (0u64..100_000_000_000).prop_map(|body| HudumaNumber::with_check_digit(body).expect("body below 10^11"))
    }

    #[test]
    fn parses_with_or_without_separators_and_prints_grouped() {
        let n = HudumaNumber::with_check_digit(23_456_789_012).unwrap();
        let compact = n.compact();
        assert_eq!(compact.len(), 12);
        let grouped = n.to_string();
        assert_eq!(grouped, format!("{} {} {}", &compact[..4], &compact[4..8], &compact[8..]));
        let hyphens = grouped.replace(' ', "-");
        for form in [compact.as_str(), grouped.as_str(), hyphens.as_str()] {
            assert_eq!(form.parse::<HudumaNumber>(), Ok(n), "{form}");
        }
    }

    #[test]
    fn errors_name_the_rule() {
        assert_eq!("1234".parse::<HudumaNumber>(), Err(NumberError::Length { found: 4 }));
        assert_eq!(
            "2345 678A 0123".parse::<HudumaNumber>(),
            Err(NumberError::NonDigit { character: 'A', position: 8 })
        );
        let n = HudumaNumber::with_check_digit(23_456_789_012).unwrap();
        let mut wrong = n.compact().into_bytes();
        wrong[11] = b'0' + (wrong[11] - b'0' + 1) % 10;
        let err = String::from_utf8(wrong).unwrap().parse::<HudumaNumber>().unwrap_err();
        assert_eq!(err, NumberError::CheckDigit);
        assert!(err.to_string().contains("check digit"));
    }

    proptest! {
        /// A number built from its body (valid by construction, not re-validated)
        /// passes every rule of a number read back, and keeps the body as its first
        /// eleven digits.
        #[test]
        fn a_number_built_from_its_body_is_valid(body in 0u64..100_000_000_000) {
            let n = HudumaNumber::with_check_digit(body).unwrap();
            prop_assert_eq!(HudumaNumber::from_u64(n.as_u64()), Ok(n));
            prop_assert_eq!(n.as_u64() / 10, body);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_single_digit_error_is_rejected(n in valid(), position in 0usize..DIGITS, delta in 1u8..10) {
            let mut digits = n.digits();
            digits[position] = (digits[position] + delta) % 10;
            prop_assert_eq!(HudumaNumber::from_digits(digits), Err(NumberError::CheckDigit));
        }

        #[test]
        fn every_adjacent_transposition_is_rejected(n in valid(), position in 0usize..DIGITS - 1) {
            let mut digits = n.digits();
            prop_assume!(digits[position] != digits[position + 1]);
            digits.swap(position, position + 1);
            prop_assert_eq!(HudumaNumber::from_digits(digits), Err(NumberError::CheckDigit));
        }

        #[test]
        fn display_parse_and_serde_round_trip(n in valid()) {
            prop_assert_eq!(n.to_string().parse::<HudumaNumber>(), Ok(n));
            prop_assert_eq!(HudumaNumber::from_u64(n.as_u64()), Ok(n));
        }
    }
}
