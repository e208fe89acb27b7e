//! What of a command's build does not depend on the log's order, worked out before
//! the sequencer takes the command up: on the submitter's own thread (in
//! `Sequencer::submit`), so that the one sequencer thread does only what must happen
//! in sequence (BENCHMARKS.md, "What the engine costs"). All of it comes from the
//! command and the secrets alone: the request's fingerprint and, for a registration,
//! the duplicate search's probe and the new person's match keys.
//!
//! The writer takes a command's [`Prework`] as given and derives whatever is missing
//! itself (or all of it, for work done under other secrets or with the search off:
//! `Preworker::reuse_or_work`), so a command submitted without it (`Writer::build`)
//! is built the same.

use std::sync::Arc;

use crate::command::{Command, Submission};
use crate::dedup::{Probe, Profile};
use crate::demographics::Demographics;
use crate::projection::fold::MatchKeys;
use crate::secrets::Secrets;

/// A command's work done ahead of its sequencing.
pub struct Prework {
    /// The fingerprint of the secrets it was done with ([`Secrets::fingerprint`]).
    pub(crate) secrets: [u8; 16],
    /// A keyed hash of the actor and the command (see [`fingerprint`]).
    pub(crate) fingerprint: [u8; 32],
    /// A registration's probe and match keys; `None` for any other command.
    pub(crate) registration: Option<RegistrationPrework>,
}

/// A registration's part of its [`Prework`].
pub(crate) struct RegistrationPrework {
    /// What the duplicate search looks the person up by; `None` with the search off.
    pub(crate) probe: Option<Probe>,
    /// The blocks, birth-date tag and name-count keys the person is folded under.
    pub(crate) keys: MatchKeys,
}

impl RegistrationPrework {
    /// The work of registering a person with these demographics.
    pub(crate) fn of(secrets: &Secrets, demographics: &Demographics, search: bool) -> Self {
        // The names folded and coded once, for the search and for the person's blocks.
        let profile = Profile::of(demographics);
        let keys = MatchKeys::of_profile(secrets, &profile, &demographics.date_of_birth);
        let probe = search.then(|| Probe::of(secrets, profile));
        Self { probe, keys }
    }
}

/// Does a command's [`Prework`], with the writer's secrets and its duplicate search
/// on or off (`Writer::preworker`). Cheap to clone: one per submitter if need be.
#[derive(Clone)]
pub struct Preworker {
    secrets: Arc<Secrets>,
    fingerprint: [u8; 16],
    search: bool,
}

impl Preworker {
    pub(crate) fn new(secrets: Arc<Secrets>, search: bool) -> Self {
        Self { fingerprint: secrets.fingerprint(), secrets, search }
    }

    /// `work` as done ahead, if it is what this preworker does for `s` (under the
    /// same secrets, and with the search's probe wherever the search is on); else
    /// the work done here.
    pub(crate) fn reuse_or_work(&self, work: Option<Prework>, s: &Submission) -> Prework {
        match work {
            Some(w)
                if w.secrets == self.fingerprint
                    && w.registration.as_ref().is_none_or(|r| r.probe.is_some() || !self.search) =>
            {
                w
            }
            _ => self.work(s),
        }
    }

    /// The duplicate search's probe in `work`, if it is one this preworker would reuse
    /// ([`Self::reuse_or_work`]).
    pub(crate) fn probe_of<'w>(&self, work: &'w Prework) -> Option<&'w Probe> {
        if work.secrets != self.fingerprint {
            return None;
        }
        work.registration.as_ref()?.probe.as_ref()
    }

    /// The command's work that does not depend on the log's order.
    pub fn work(&self, s: &Submission) -> Prework {
        let registration = match &s.command {
            Command::RegisterPerson { demographics }
            | Command::RegisterPersonOverridingDuplicates { demographics, .. } => {
                Some(RegistrationPrework::of(&self.secrets, demographics, self.search))
            }
            _ => None,
        };
        Prework { secrets: self.fingerprint, fingerprint: fingerprint(&self.secrets, s), registration }
    }
}

/// A keyed hash of the actor and command, so that a reused request id with a
/// different command is caught without storing the command (or its personal data).
pub(crate) fn fingerprint(secrets: &Secrets, s: &Submission) -> [u8; 32] {
    let bytes = postcard::to_allocvec(&(&s.actor, &s.command)).unwrap_or_default();
    let mut hasher = blake3::Hasher::new_keyed(secrets.match_key());
    hasher.update(b"huduma.registry.v1.request\0");
    hasher.update(&bytes);
    *hasher.finalize().as_bytes()
}
