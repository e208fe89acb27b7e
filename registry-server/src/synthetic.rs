//! A deterministic synthetic population: the `load` command's registrations and the
//! tests' expectations are built from the same function, so a test can re-derive
//! exactly what a load run submitted.

use registry_core::command::{Command, Submission};
use registry_core::demographics::{Demographics, Sex};
use registry_core::event::Actor;

const GIVEN: [&str; 16] = [
    "Wanjiru", "Otieno", "Achieng", "Kipchoge", "Amina", "Mutua", "Chebet", "Baraka", "Akinyi", "Kamau", "Nafula",
    "Kiprono", "Zawadi", "Omondi", "Wambui", "Hassan",
];
const FAMILY: [&str; 16] = [
    "Kamau",
    "Odhiambo",
    "Wafula",
    "Kiprop",
    "Hassan",
    "Mwangi",
    "Njoroge",
    "Omondi",
    "Ochieng",
    "Kariuki",
    "Mutiso",
    "Cheruiyot",
    "Barasa",
    "Wekesa",
    "Maina",
    "Abdi",
];
const PLACES: [&str; 8] = ["Nairobi", "Kisumu", "Mombasa", "Eldoret", "Nakuru", "Garissa", "Kakamega", "Nyeri"];

/// The i-th synthetic person.
pub fn person(i: u64) -> Demographics {
    let pick = |list: &[&str], salt: u64| {
        list[((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt) % list.len() as u64) as usize].to_string()
    };
    Demographics {
        given_name: pick(&GIVEN, 1),
        family_name: pick(&FAMILY, 2),
        other_names: vec![format!("N{i}")],
        date_of_birth: format!("{}-{:02}-{:02}", 1940 + i % 80, 1 + i % 12, 1 + (i / 12) % 28),
        sex: [Sex::Female, Sex::Male][(i % 2) as usize],
        place_of_birth: pick(&PLACES, 3),
    }
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
