//! A deterministic synthetic population: the `load` command's registrations and the
//! tests' expectations are built from the same function, so a test can re-derive
//! exactly what a load run submitted.

use registry_core::command::{Command, Submission};
use registry_core::demographics::Demographics;
use registry_core::event::Actor;

/// The i-th synthetic person (never a likely duplicate of another: see
/// `registry_core::synthetic`).
pub fn person(i: u64) -> Demographics {
    registry_core::synthetic::distinct_person(i)
}

/// The request id of the i-th synthetic registration of a run tagged `run`.
pub fn request_id(run: &str, i: u64) -> String {
    format!("{run}-{i}")
}

pub fn actor() -> Actor {
    Actor { principal: "load-generator".into(), via: "LOAD".into() }
}

/// The i-th synthetic registration.
pub fn registration(run: &str, i: u64) -> Submission {
    Submission {
        request_id: request_id(run, i),
        actor: actor(),
        command: Command::RegisterPerson { demographics: person(i) },
    }
}
