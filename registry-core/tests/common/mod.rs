//! Helpers shared by the registry-core integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use registry_core::IssuanceFilters;
use registry_core::command::{Command, Submission};
use registry_core::demographics::{Demographics, Sex};
use registry_core::event::Actor;
use registry_core::issuer::NumberIssuer;
use registry_core::keys::LogKey;
use registry_core::secrets::Secrets;
use registry_core::storage::Storage;
use registry_core::storage::memory::MemoryStore;
use registry_core::writer::Writer;

pub const ORIGIN: &str = "test.huduma.example/log";

pub fn secrets() -> Secrets {
    Secrets::from_master([42; 32])
}

pub fn log_key() -> LogKey {
    LogKey::from_seed([11; 32])
}

pub fn registrar() -> Actor {
    Actor { principal: "gpo-registrar-1".into(), via: "GPO-NAIROBI".into() }
}

const GIVEN: [&str; 8] = ["Wanjiru", "Otieno", "Achieng", "Kipchoge", "Amina", "Mutua", "Chebet", "Baraka"];
const FAMILY: [&str; 8] = ["Kamau", "Odhiambo", "Wafula", "Kiprop", "Hassan", "Mwangi", "Njoroge", "Omondi"];
const PLACES: [&str; 4] = ["Nairobi", "Kisumu", "Mombasa", "Eldoret"];

/// Plausible demographics, varied by `i`.
pub fn person(i: usize) -> Demographics {
    Demographics {
        given_name: GIVEN[i % GIVEN.len()].into(),
        family_name: FAMILY[(i / GIVEN.len()) % FAMILY.len()].into(),
        other_names: if i.is_multiple_of(3) { vec![format!("Njeri{i}")] } else { vec![] },
        date_of_birth: format!("{}-{:02}-{:02}", 1950 + i % 60, 1 + i % 12, 1 + i % 28),
        sex: [Sex::Female, Sex::Male, Sex::Intersex][i % 3],
        place_of_birth: PLACES[i % PLACES.len()].into(),
    }
}

pub fn submission(request_id: impl Into<String>, command: Command) -> Submission {
    Submission { request_id: request_id.into(), actor: registrar(), command }
}

/// A writer over a fresh in-memory store.
pub fn memory_writer() -> (Arc<MemoryStore>, Writer) {
    let store = Arc::new(MemoryStore::new());
    let dyn_store: Arc<dyn Storage> = store.clone();
    let secrets = Arc::new(secrets());
    let issuer = NumberIssuer::new(secrets.number_key(), IssuanceFilters::default());
    let writer = Writer::open(dyn_store, secrets, issuer, log_key(), ORIGIN).expect("open writer");
    (store, writer)
}
