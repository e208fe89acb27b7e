//! Issuance of Huduma numbers: a keyed pseudo-random permutation of the issuance
//! counter, skipping candidates that break the filters.
//!
//! The permutation is a ten-round Feistel network over the decimal domain [0, 10^11),
//! split into a 5-digit and a 6-digit half that alternate as in NIST SP 800-38G's FF1,
//! with AES-128 as the round function. Because it is a permutation, distinct counters
//! give distinct numbers: uniqueness holds by construction, without a lookup. Without
//! the key, a number reveals nothing about its counter (hence nothing about when or
//! where it was issued), and the next number cannot be guessed.
//!
//! Why not the `fpe` crate's FF1: it works over arbitrary radixes with big integers,
//! and issuance evaluates the permutation about 25 times per number (only ~4% of
//! candidates pass the filters); this fixed-width form is many times faster and
//! simple enough to check against its inverse (a test does). Candidates are evaluated
//! eight at a time ([`NumberPermutation::permute_lanes`]), their AES blocks encrypted
//! together, and taken in counter order: the same number as one by one, in half the time.
//! A candidate's drawn digits meet the filters before its check digit is computed
//! ([`IssuanceFilters::issuable`]): most break a rule there.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use huduma_number::{HudumaNumber, IssuanceFilters};

/// The size of the drawn part: 11 decimal digits.
pub const DOMAIN: u64 = 100_000_000_000;
const LEFT_DIGITS: u32 = 5;
const RIGHT_DIGITS: u32 = 6;
const ROUNDS: u8 = 10;
/// How many candidates [`NumberPermutation::permute_lanes`] evaluates together.
pub const LANES: usize = 8;

type Block = GenericArray<u8, aes::cipher::consts::U16>;

/// The keyed permutation of [0, 10^11).
#[derive(Clone)]
pub struct NumberPermutation {
    cipher: Aes128,
}

impl NumberPermutation {
    pub fn new(key: [u8; 16]) -> Self {
        Self { cipher: Aes128::new(&GenericArray::from(key)) }
    }

    /// The round function's AES input: (domain tag, round, input).
    fn round_block(round: u8, input: u64) -> Block {
        let mut block = [0u8; 16];
        block[..6].copy_from_slice(b"HUDUMA");
        block[6] = round;
        block[8..].copy_from_slice(&input.to_be_bytes());
        GenericArray::from(block)
    }

    /// The round function's output from its encrypted block, before its reduction mod
    /// 10^digits: the block's first eight bytes, big-endian.
    fn round_value(block: &Block) -> u64 {
        let mut out = [0u8; 8];
        out.copy_from_slice(&block[..8]);
        u64::from_be_bytes(out)
    }

    /// The round function: AES-128 of (domain tag, round, input) reduced mod 10^digits.
    fn round(&self, round: u8, input: u64, digits: u32) -> u64 {
        let mut block = Self::round_block(round, input);
        self.cipher.encrypt_block(&mut block);
        Self::round_value(&block) % 10u64.pow(digits)
    }

    /// [`Self::permute`] of [`LANES`] values at once: each round encrypts their blocks
    /// together, which AES-NI pipelines (issuance evaluates ~25 candidates a number).
    /// The rounds go in pairs, a 5-digit round then a 6-digit one, so that each
    /// reduction is by a constant (a multiplication, where a variable power of ten
    /// was a division: most of this function's time).
    pub fn permute_lanes(&self, xs: [u64; LANES]) -> [u64; LANES] {
        const LEFT: u64 = 10u64.pow(LEFT_DIGITS);
        const RIGHT: u64 = 10u64.pow(RIGHT_DIGITS);
        let mut a = xs.map(|x| x / RIGHT);
        let mut b = xs.map(|x| x % RIGHT);
        for pair in 0..ROUNDS / 2 {
            self.round_lanes::<LEFT>(2 * pair, &mut a, &mut b);
            self.round_lanes::<RIGHT>(2 * pair + 1, &mut a, &mut b);
        }
        std::array::from_fn(|lane| a[lane] * RIGHT + b[lane])
    }

    /// One Feistel round of [`Self::permute_lanes`], reducing mod `MODULUS`.
    #[inline(always)]
    fn round_lanes<const MODULUS: u64>(&self, round: u8, a: &mut [u64; LANES], b: &mut [u64; LANES]) {
        let mut blocks = b.map(|input| Self::round_block(round, input));
        self.cipher.encrypt_blocks(&mut blocks);
        for lane in 0..LANES {
            let c = (a[lane] + Self::round_value(&blocks[lane]) % MODULUS) % MODULUS;
            a[lane] = b[lane];
            b[lane] = c;
        }
    }

    /// The image of `x` (which must be below [`DOMAIN`]).
    pub fn permute(&self, x: u64) -> u64 {
        let mut a = x / 10u64.pow(RIGHT_DIGITS);
        let mut b = x % 10u64.pow(RIGHT_DIGITS);
        for i in 0..ROUNDS {
            let m = if i % 2 == 0 { LEFT_DIGITS } else { RIGHT_DIGITS };
            let c = (a + self.round(i, b, m)) % 10u64.pow(m);
            a = b;
            b = c;
        }
        a * 10u64.pow(RIGHT_DIGITS) + b
    }

    /// The inverse permutation: `unpermute(permute(x)) == x`.
    pub fn unpermute(&self, y: u64) -> u64 {
        let mut a = y / 10u64.pow(RIGHT_DIGITS);
        let mut b = y % 10u64.pow(RIGHT_DIGITS);
        for i in (0..ROUNDS).rev() {
            let m = if i % 2 == 0 { LEFT_DIGITS } else { RIGHT_DIGITS };
            let c = b;
            b = a;
            let f = self.round(i, b, m);
            let modulus = 10u64.pow(m);
            a = (c + modulus - f) % modulus;
        }
        a * 10u64.pow(RIGHT_DIGITS) + b
    }
}

/// Issues numbers: walks the counter from where issuance stopped to the next candidate
/// that passes the filters.
#[derive(Clone)]
pub struct NumberIssuer {
    permutation: NumberPermutation,
    filters: IssuanceFilters,
}

/// A number and the counter value that produced it; the log records both, so the next
/// issuance resumes at `counter + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    pub number: HudumaNumber,
    pub counter: u64,
}

/// The counter ran past the end of the domain: no number is left to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Huduma number space is exhausted")]
pub struct Exhausted;

impl NumberIssuer {
    pub fn new(key: [u8; 16], filters: IssuanceFilters) -> Self {
        Self { permutation: NumberPermutation::new(key), filters }
    }

    /// The first number whose counter is `from` or later. Candidates are evaluated
    /// [`LANES`] at a time and taken in counter order, so the answer is the one
    /// evaluating them one by one gives.
    pub fn issue_from(&self, from: u64) -> Result<Issued, Exhausted> {
        let mut start = from;
        while start < DOMAIN {
            // Past the end of the domain a lane evaluates a counter it then skips.
            let counters: [u64; LANES] = std::array::from_fn(|lane| (start + lane as u64).min(DOMAIN - 1));
            let bodies = self.permutation.permute_lanes(counters);
            for (counter, body) in (start..).zip(bodies) {
                if counter >= DOMAIN {
                    return Err(Exhausted);
                }
                if let Some(number) = self.filters.issuable(body) {
                    return Ok(Issued { number, counter });
                }
            }
            start += LANES as u64;
        }
        Err(Exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        #[test]
        fn unpermute_inverts_permute(x in 0..DOMAIN, key in any::<[u8; 16]>()) {
            let p = NumberPermutation::new(key);
            let y = p.permute(x);
            prop_assert!(y < DOMAIN);
            prop_assert_eq!(p.unpermute(y), x);
        }
    }

    proptest! {
        #[test]
        fn permuting_lanes_together_is_permuting_each(xs in any::<[u64; LANES]>(), key in any::<[u8; 16]>()) {
            let p = NumberPermutation::new(key);
            let xs = xs.map(|x| x % DOMAIN);
            prop_assert_eq!(p.permute_lanes(xs), xs.map(|x| p.permute(x)));
        }

        /// Issuing with lanes gives what the plain walk of the counter gives.
        #[test]
        fn issuance_matches_the_one_by_one_walk(from in 0..DOMAIN, key in any::<[u8; 16]>()) {
            let issuer = NumberIssuer::new(key, IssuanceFilters::default());
            prop_assert_eq!(issuer.issue_from(from).ok(), one_by_one(&issuer, from));
        }
    }

    /// The reference: each counter from `from` evaluated alone, in order.
    fn one_by_one(issuer: &NumberIssuer, from: u64) -> Option<Issued> {
        (from..DOMAIN).find_map(|counter| {
            let number = HudumaNumber::with_check_digit(issuer.permutation.permute(counter)).ok()?;
            issuer.filters.check(number).is_ok().then_some(Issued { number, counter })
        })
    }

    #[test]
    fn the_end_of_the_domain_is_reported_not_wrapped() {
        let issuer = NumberIssuer::new([3; 16], IssuanceFilters::default());
        assert_eq!(issuer.issue_from(DOMAIN), Err(Exhausted));
        // From the last counters (fewer than a full set of lanes): what the walk gives,
        // never a counter past the domain.
        for back in 1..=2 * LANES as u64 {
            assert_eq!(
                issuer.issue_from(DOMAIN - back).ok(),
                one_by_one(&issuer, DOMAIN - back),
                "from DOMAIN - {back}"
            );
        }
    }

    /// The issue's property: the first 1,000,000 numbers of one key are distinct and
    /// every one passes the filters and the check digit.
    #[test]
    fn first_million_numbers_are_distinct_filtered_and_checked() {
        let filters = IssuanceFilters::default();
        let issuer = NumberIssuer::new(*b"a fixed test key", filters.clone());
        let mut seen = HashSet::with_capacity(1_000_000);
        let mut next = 0;
        for _ in 0..1_000_000 {
            let issued = issuer.issue_from(next).unwrap();
            assert!(issued.counter >= next);
            next = issued.counter + 1;
            assert_eq!(filters.check(issued.number), Ok(()));
            assert_eq!(HudumaNumber::from_digits(issued.number.digits()), Ok(issued.number));
            assert!(seen.insert(issued.number), "{} issued twice", issued.number);
        }
    }

    #[test]
    fn different_keys_give_unrelated_sequences() {
        let a = NumberIssuer::new([1; 16], IssuanceFilters::default());
        let b = NumberIssuer::new([2; 16], IssuanceFilters::default());
        let first = |i: &NumberIssuer| {
            let mut next = 0;
            (0..50)
                .map(|_| {
                    let issued = i.issue_from(next).unwrap();
                    next = issued.counter + 1;
                    issued.number
                })
                .collect::<HashSet<_>>()
        };
        assert!(first(&a).is_disjoint(&first(&b)));
    }

    #[test]
    fn consecutive_numbers_are_not_ordered() {
        let issuer = NumberIssuer::new([9; 16], IssuanceFilters::default());
        let mut next = 0;
        let numbers: Vec<u64> = (0..200)
            .map(|_| {
                let issued = issuer.issue_from(next).unwrap();
                next = issued.counter + 1;
                issued.number.as_u64()
            })
            .collect();
        let ascending = numbers.windows(2).filter(|w| w[1] > w[0]).count();
        // A permutation that leaked order would make nearly all steps ascend.
        assert!((60..140).contains(&ascending), "{ascending} of 199 steps ascend");
    }
}
