//! Minimal disclosure: what each agency may see of a person it resolves, from the
//! `[[agencies]]` policies of the config. Registrars and admins see everything; an
//! agency sees the status, its own token and records, and only the attributes (and the
//! bare Huduma number) its policy names. An agency without a policy sees nothing
//! personal.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::auth::{Principal, Role};
use crate::proto as pb;

/// A personal attribute a policy may disclose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    GivenName,
    FamilyName,
    OtherNames,
    DateOfBirth,
    Sex,
    PlaceOfBirth,
    DateOfDeath,
}

/// One agency's policy, as the config writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyPolicyConfig {
    /// The agency code (e.g. "KRA").
    pub code: String,
    /// The attributes it may see.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Whether it may see the bare Huduma number (else only its token).
    #[serde(default)]
    pub huduma_number: bool,
}

/// What one caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// `None`: everything (registrars, admins).
    attributes: Option<HashSet<Attribute>>,
    pub huduma_number: bool,
}

impl View {
    fn everything() -> Self {
        Self { attributes: None, huduma_number: true }
    }

    pub fn may_see(&self, attribute: Attribute) -> bool {
        self.attributes.as_ref().is_none_or(|a| a.contains(&attribute))
    }
}

/// Every agency's policy.
#[derive(Debug, Default)]
pub struct Disclosure {
    policies: HashMap<String, View>,
}

impl Disclosure {
    pub fn new(policies: &[AgencyPolicyConfig]) -> Self {
        let policies = policies
            .iter()
            .map(|p| {
                let view =
                    View { attributes: Some(p.attributes.iter().copied().collect()), huduma_number: p.huduma_number };
                (p.code.clone(), view)
            })
            .collect();
        Self { policies }
    }

    /// What `principal` may see.
    pub fn view_for(&self, principal: &Principal) -> View {
        match (principal.role, &principal.agency) {
            (Role::Agency, Some(agency)) => self
                .policies
                .get(agency)
                .cloned()
                .unwrap_or(View { attributes: Some(HashSet::new()), huduma_number: false }),
            (Role::Registrar | Role::Admin, _) => View::everything(),
            _ => View { attributes: Some(HashSet::new()), huduma_number: false },
        }
    }
}

/// Blanks what `view` may not see in a resolution.
pub fn redact(view: &View, response: &mut pb::ResolveResponse) {
    if !view.huduma_number {
        response.huduma_number.clear();
        response.superseded_by.clear();
    }
    if !view.may_see(Attribute::DateOfDeath) {
        response.date_of_death.clear();
    }
    if let Some(d) = &mut response.demographics {
        if !view.may_see(Attribute::GivenName) {
            d.given_name.clear();
        }
        if !view.may_see(Attribute::FamilyName) {
            d.family_name.clear();
        }
        if !view.may_see(Attribute::OtherNames) {
            d.other_names.clear();
        }
        if !view.may_see(Attribute::DateOfBirth) {
            d.date_of_birth.clear();
        }
        if !view.may_see(Attribute::Sex) {
            d.sex = pb::Sex::Unspecified as i32;
        }
        if !view.may_see(Attribute::PlaceOfBirth) {
            d.place_of_birth.clear();
        }
        let nothing = pb::Demographics { sex: pb::Sex::Unspecified as i32, ..Default::default() };
        if *d == nothing {
            response.demographics = None;
        }
    }
}
