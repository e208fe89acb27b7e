//! Agency-scoped pseudonymous tokens: each agency sees each person through its own
//! stable token, and two agencies' tokens for one person cannot be linked without the
//! registry's secret (as MOSIP's partner tokens, Aadhaar's UID tokens and Austria's
//! sector-specific ids).
//!
//! A token is `AES-128(K_agency, person id (u64 BE) || 8 zero bytes)` in lower-case hex
//! (32 digits), with `K_agency = BLAKE3-keyed(agency token key, "huduma.registry.v1
//! agency token" || agency code)[..16]`: a keyed pseudorandom permutation rather than a
//! keyed hash, so that the registry turns an agency's token back into the person with
//! that agency's key and no index of every (agency, person) pair. A token presented by
//! another agency decrypts, under the caller's key, to a block whose last 8 bytes are
//! zero with probability 2^-64: it is simply not found.

use aes::Aes128;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};

use crate::PersonId;
use crate::secrets::Secrets;

fn cipher(secrets: &Secrets, agency: &str) -> Aes128 {
    let mut hasher = blake3::Hasher::new_keyed(secrets.agency_token_key());
    hasher.update(b"huduma.registry.v1 agency token\0");
    hasher.update(agency.as_bytes());
    let derived = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&derived.as_bytes()[..16]);
    Aes128::new(&GenericArray::from(key))
}

/// The token `agency` sees `person` by.
pub fn token(secrets: &Secrets, agency: &str, person: PersonId) -> String {
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(&person.0.to_be_bytes());
    let mut block = GenericArray::from(block);
    cipher(secrets, agency).encrypt_block(&mut block);
    block.iter().map(|b| format!("{b:02x}")).collect()
}

/// The person behind `agency`'s token; `None` for anything that is not one of its
/// tokens (another agency's, a typo, garbage).
pub fn person(secrets: &Secrets, agency: &str, token: &str) -> Option<PersonId> {
    if token.len() != 32 {
        return None;
    }
    let mut block = [0u8; 16];
    for (i, byte) in block.iter_mut().enumerate() {
        *byte = u8::from_str_radix(token.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut block = GenericArray::from(block);
    cipher(secrets, agency).decrypt_block(&mut block);
    if block[8..].iter().any(|b| *b != 0) {
        return None;
    }
    let id: [u8; 8] = block[..8].try_into().ok()?;
    Some(PersonId(u64::from_be_bytes(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_agency_unlinkable_across_and_reversible_only_by_their_agency() {
        let secrets = Secrets::from_master([4; 32]);
        let person_a = PersonId(1234);
        let kra = token(&secrets, "KRA", person_a);
        let nhif = token(&secrets, "NHIF", person_a);
        assert_eq!(kra, token(&secrets, "KRA", person_a), "stable");
        assert_ne!(kra, nhif, "each agency its own token");
        assert_eq!(kra.len(), 32);
        assert_eq!(person(&secrets, "KRA", &kra), Some(person_a));
        assert_eq!(person(&secrets, "NHIF", &kra), None, "another agency's token is nobody");
        assert_eq!(person(&secrets, "KRA", "not a token"), None);
        assert_eq!(person(&secrets, "KRA", &"zz".repeat(16)), None);
        let other_secrets = Secrets::from_master([5; 32]);
        assert_ne!(token(&other_secrets, "KRA", person_a), kra, "keyed by the registry's secret");
        // Distinct persons, distinct tokens (a permutation).
        let tokens: std::collections::HashSet<String> =
            (0..2000).map(|i| token(&secrets, "KRA", PersonId(i))).collect();
        assert_eq!(tokens.len(), 2000);
    }
}
