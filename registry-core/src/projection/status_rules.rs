//! What each event requires of the status of the persons it names (docs/LOG-FORMAT.md
//! section 6, "A person's status"): one table, read by the writer, which refuses a
//! command whose event would break it, and by the fold, which refuses a log that
//! breaks it (a log not written by the registry as specified).

use huduma_log::events::kind;

use super::state::PersonStatus;

/// Whether an event of `kind` may name a person whose status is `status`. For a merge,
/// both persons; for an unmerge, the duplicate (the survivor must not be merged, which
/// the writer and the fold check beside it). Kinds that name no person allow any.
pub fn allows(kind: u16, status: PersonStatus) -> bool {
    use PersonStatus::{Active, Deceased, Erased, Merged, Revoked};
    match kind {
        kind::NUMBER_REPLACED
        | kind::DEMOGRAPHICS_CORRECTED
        | kind::AGENCY_RECORD_LINKED
        | kind::NUMBER_REVOKED
        | kind::RECORDS_MERGED => status == Active,
        kind::DEATH_RECORDED => matches!(status, Active | Revoked),
        kind::DEATH_RETRACTED => status == Deceased,
        kind::NUMBER_REINSTATED => status == Revoked,
        kind::RECORDS_UNMERGED => status == Merged,
        kind::PERSONAL_DATA_ERASED => status != Erased,
        // AgencyRecordUnlinked requires nothing of the status; the rest name no person.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table as LOG-FORMAT.md states it, status by status.
    #[test]
    fn each_event_allows_the_statuses_the_format_states() {
        use PersonStatus::{Active, Deceased, Erased, Merged, Revoked};
        let all = [Active, Revoked, Deceased, Merged, Erased];
        let allowed = |k: u16| all.into_iter().filter(|s| allows(k, *s)).collect::<Vec<_>>();
        assert_eq!(allowed(kind::NUMBER_REPLACED), [Active]);
        assert_eq!(allowed(kind::DEMOGRAPHICS_CORRECTED), [Active]);
        assert_eq!(allowed(kind::AGENCY_RECORD_LINKED), [Active]);
        assert_eq!(allowed(kind::AGENCY_RECORD_UNLINKED), all);
        assert_eq!(allowed(kind::DEATH_RECORDED), [Active, Revoked]);
        assert_eq!(allowed(kind::DEATH_RETRACTED), [Deceased]);
        assert_eq!(allowed(kind::NUMBER_REVOKED), [Active]);
        assert_eq!(allowed(kind::NUMBER_REINSTATED), [Revoked]);
        assert_eq!(allowed(kind::RECORDS_MERGED), [Active]);
        assert_eq!(allowed(kind::RECORDS_UNMERGED), [Merged]);
        assert_eq!(allowed(kind::PERSONAL_DATA_ERASED), [Active, Revoked, Deceased, Merged]);
    }
}
