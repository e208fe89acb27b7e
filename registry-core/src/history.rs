//! What a person's history shows of each record that changed them
//! ([`crate::query::Reader::history`]): the event by name, who caused it and through
//! where, why as the record states it, and the persons and numbers it names. Never what
//! the record seals (demographics, agency record ids, dates of death).

use huduma_number::HudumaNumber;

use crate::PersonId;
use crate::event::{DuplicateOverride, Event, ReplacementReason};

/// One record as a history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The event's name, as docs/LOG-FORMAT.md names it.
    pub event: &'static str,
    /// The principal who caused it and the centre or agency it came through (empty for
    /// the log's first record, which has none).
    pub principal: String,
    pub via: String,
    /// Why, as the record states it: the reason, justification or legal basis; the
    /// agency of a link or an unlink; the reason of a replacement. Empty if none.
    pub detail: String,
    /// The persons the record names (the person; a merge's or an unmerge's survivor,
    /// then duplicate).
    pub persons: Vec<PersonId>,
    /// The numbers the record names itself, as it names them: the number a
    /// registration or a replacement issued (after the one replaced), then the likely
    /// matches a registrar overrode.
    pub numbers: Vec<HudumaNumber>,
}

/// What a history shows of `event`.
pub fn shown(event: &Event) -> Shown {
    let overridden = |o: &Option<DuplicateOverride>| {
        let justification = o.as_ref().map(|o| o.justification.clone()).unwrap_or_default();
        let candidates = o.iter().flat_map(|o| o.candidates.iter().map(|c| c.number)).collect::<Vec<_>>();
        (justification, candidates)
    };
    let (event_name, actor, detail, persons, numbers) = match event {
        Event::LogInitialized(_) => ("LogInitialized", None, String::new(), Vec::new(), Vec::new()),
        Event::LogKeyRotated(e) => ("LogKeyRotated", Some(&e.actor), String::new(), Vec::new(), Vec::new()),
        Event::PersonRegistered(e) => {
            let (justification, candidates) = overridden(&e.duplicate_override);
            let numbers = std::iter::once(e.number).chain(candidates).collect();
            ("PersonRegistered", Some(&e.actor), justification, Vec::new(), numbers)
        }
        Event::NumberReplaced(e) => {
            let reason = match e.reason {
                ReplacementReason::Lost => "lost",
                ReplacementReason::Compromised => "compromised",
                ReplacementReason::Fraud => "fraud",
                ReplacementReason::Administrative => "administrative",
            };
            let numbers = vec![e.old_number, e.new_number];
            ("NumberReplaced", Some(&e.actor), reason.to_string(), vec![e.person], numbers)
        }
        Event::DemographicsCorrected(e) => {
            let (justification, candidates) = overridden(&e.duplicate_override);
            ("DemographicsCorrected", Some(&e.actor), justification, vec![e.person], candidates)
        }
        Event::AgencyRecordLinked(e) => {
            ("AgencyRecordLinked", Some(&e.actor), e.agency.clone(), vec![e.person], Vec::new())
        }
        Event::AgencyRecordUnlinked(e) => {
            ("AgencyRecordUnlinked", Some(&e.actor), e.agency.clone(), vec![e.person], Vec::new())
        }
        Event::DeathRecorded(e) => ("DeathRecorded", Some(&e.actor), String::new(), vec![e.person], Vec::new()),
        Event::DeathRetracted(e) => ("DeathRetracted", Some(&e.actor), e.reason.clone(), vec![e.person], Vec::new()),
        Event::NumberRevoked(e) => ("NumberRevoked", Some(&e.actor), e.reason.clone(), vec![e.person], Vec::new()),
        Event::NumberReinstated(e) => {
            ("NumberReinstated", Some(&e.actor), e.reason.clone(), vec![e.person], Vec::new())
        }
        Event::RecordsMerged(e) => {
            let persons = vec![e.survivor, e.duplicate];
            ("RecordsMerged", Some(&e.actor), e.justification.clone(), persons, Vec::new())
        }
        Event::PersonalDataErased(e) => {
            ("PersonalDataErased", Some(&e.actor), e.legal_basis.clone(), vec![e.person], Vec::new())
        }
        Event::RecordsUnmerged(e) => {
            let persons = vec![e.survivor, e.duplicate];
            ("RecordsUnmerged", Some(&e.actor), e.justification.clone(), persons, Vec::new())
        }
    };
    Shown {
        event: event_name,
        principal: actor.map(|a| a.principal.clone()).unwrap_or_default(),
        via: actor.map(|a| a.via.clone()).unwrap_or_default(),
        detail,
        persons,
        numbers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, OverriddenCandidate, PersonRegistered, PrivateText, RecordsMerged};
    use crate::sealed::Sealed;

    fn actor() -> Actor {
        Actor { principal: "registrar-17".into(), via: "GPO-NAIROBI".into() }
    }

    /// A registration shows its number and what it overrode, never its demographics; a
    /// link shows its agency, never the record id; a merge names both persons.
    #[test]
    fn a_history_shows_who_why_and_whom_never_what_is_sealed() {
        let number: HudumaNumber = "234567890124".parse().unwrap();
        let candidate = HudumaNumber::with_check_digit(34_567_890_123).unwrap();
        let registered = shown(&Event::PersonRegistered(PersonRegistered {
            actor: actor(),
            number,
            counter: 9,
            demographics: Sealed { nonce: [1; 24], ciphertext: b"Wanjiru Kamau".to_vec() },
            duplicate_override: Some(DuplicateOverride {
                justification: "twin".into(),
                candidates: vec![OverriddenCandidate { number: candidate, score_centi: 2100 }],
            }),
        }));
        assert_eq!(
            registered,
            Shown {
                event: "PersonRegistered",
                principal: "registrar-17".into(),
                via: "GPO-NAIROBI".into(),
                detail: "twin".into(),
                persons: Vec::new(),
                numbers: vec![number, candidate],
            }
        );
        let linked = shown(&Event::AgencyRecordLinked(crate::event::AgencyRecordLinked {
            actor: actor(),
            person: PersonId(4),
            agency: "KRA".into(),
            record_id: PrivateText::Clear("A012345678Z".into()),
        }));
        assert_eq!((linked.detail.as_str(), linked.persons.as_slice()), ("KRA", &[PersonId(4)][..]));
        assert!(!format!("{linked:?}").contains("A012345678Z"), "{linked:?}");
        let merged = shown(&Event::RecordsMerged(RecordsMerged {
            actor: actor(),
            survivor: PersonId(1),
            duplicate: PersonId(2),
            justification: "one person".into(),
        }));
        assert_eq!((merged.event, merged.persons), ("RecordsMerged", vec![PersonId(1), PersonId(2)]));
    }
}
