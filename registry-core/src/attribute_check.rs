//! Yes/no verification of claimed attributes against a person's demographics, as
//! Aadhaar's demographic authentication does: the caller learns, per attribute it
//! claimed, only whether the claim holds. Names and places compare after trimming,
//! collapsing runs of whitespace, and Unicode compatibility caseless matching (NFKC
//! with full case folding, Unicode §3.13 D146), so "WANJIRU", "wanjiru" and
//! "Ｗａｎｊｉｒｕ" are one name; other names compare as a set, in any order; dates
//! and sex compare exactly.

use crate::demographics::{Demographics, Sex};

/// What a caller claims; `None` (or an empty list) is not claimed and not answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub other_names: Vec<String>,
    pub date_of_birth: Option<String>,
    pub sex: Option<Sex>,
    pub place_of_birth: Option<String>,
}

/// One answer: the attribute's wire name and whether the claim holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeMatch {
    pub attribute: &'static str,
    pub matches: bool,
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether two names are the same after normalisation.
pub fn same_name(a: &str, b: &str) -> bool {
    caseless::compatibility_caseless_match_str(&squash(a), &squash(b))
}

fn same_name_set(actual: &[String], claimed: &[String]) -> bool {
    if actual.len() != claimed.len() {
        return false;
    }
    let mut left: Vec<&String> = actual.iter().collect();
    claimed.iter().all(|c| match left.iter().position(|a| same_name(a, c)) {
        Some(at) => {
            left.swap_remove(at);
            true
        }
        None => false,
    })
}

/// Answers each claimed attribute, in a fixed order.
pub fn check(actual: &Demographics, claim: &Claim) -> Vec<AttributeMatch> {
    let mut answers = Vec::new();
    let mut answer = |attribute, matches| answers.push(AttributeMatch { attribute, matches });
    if let Some(c) = &claim.given_name {
        answer("given_name", same_name(&actual.given_name, c));
    }
    if let Some(c) = &claim.family_name {
        answer("family_name", same_name(&actual.family_name, c));
    }
    if !claim.other_names.is_empty() {
        answer("other_names", same_name_set(&actual.other_names, &claim.other_names));
    }
    if let Some(c) = &claim.date_of_birth {
        answer("date_of_birth", actual.date_of_birth == c.trim());
    }
    if let Some(c) = claim.sex {
        answer("sex", actual.sex == c);
    }
    if let Some(c) = &claim.place_of_birth {
        answer("place_of_birth", same_name(&actual.place_of_birth, c));
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanjiru() -> Demographics {
        Demographics {
            given_name: "Wanjiru".into(),
            family_name: "Kamau".into(),
            other_names: vec!["Njeri".into(), "Wambui".into()],
            date_of_birth: "1990-04-12".into(),
            sex: Sex::Female,
            place_of_birth: "Nyeri".into(),
        }
    }

    #[test]
    fn names_match_across_case_width_and_spacing_and_nothing_else_is_said() {
        let claim = Claim {
            given_name: Some(" WANJIRU ".into()),
            family_name: Some("Ｋａｍａｕ".into()),
            other_names: vec!["wambui".into(), "NJERI".into()],
            date_of_birth: Some("1990-04-12".into()),
            sex: Some(Sex::Female),
            place_of_birth: Some("nyeri".into()),
        };
        let answers = check(&wanjiru(), &claim);
        assert_eq!(answers.len(), 6);
        assert!(answers.iter().all(|a| a.matches), "{answers:?}");
        let wrong = Claim {
            family_name: Some("Kamau Otieno".into()),
            date_of_birth: Some("1990-12-04".into()),
            ..Claim::default()
        };
        assert_eq!(
            check(&wanjiru(), &wrong),
            vec![
                AttributeMatch { attribute: "family_name", matches: false },
                AttributeMatch { attribute: "date_of_birth", matches: false },
            ],
            "only what was claimed is answered"
        );
        assert!(same_name("Straße", "STRASSE"), "full case folding");
        assert!(!check(&wanjiru(), &Claim { other_names: vec!["Njeri".into()], ..Claim::default() })[0].matches);
    }
}
