//! Where a resolve by number spends its time, step by step (a harness for profiling,
//! not the reported figures: those are criterion's `resolve/*`).
//!
//! `cargo run --release -p huduma-benches --example resolve_steps -- [persons] [rounds]`
//!
//! Each step is timed over as many look-ups as there are persons, on sled alone and
//! through the registry's read cache (warm: the default cache holds these persons).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use huduma_benches::{populated, secrets};
use registry_core::keyring::{self, KeyringEntry};
use registry_core::projection::fold::open_demographics;
use registry_core::projection::state::{self, NumberEntry, PersonEntry};
use registry_core::query::Reader;
use registry_core::storage::read_cache::CachedStore;
use registry_core::storage::view::{View, get_checked};
use registry_core::storage::{Storage, Tree};

/// Nanoseconds per call of `step` over `items`.
fn time<T>(items: &[T], mut step: impl FnMut(&T)) -> f64 {
    let began = Instant::now();
    for item in items {
        step(item);
    }
    began.elapsed().as_nanos() as f64 / items.len().max(1) as f64
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let (f, numbers) = populated(persons, 1024);
    let secrets = Arc::new(secrets());
    // The order a criterion run visits them in: a stride through the population.
    let order: Vec<_> = (0..numbers.len()).map(|i| numbers[(i * 7919) % numbers.len()]).collect();
    // A cache far smaller than the population: nearly every read misses.
    let tiny: Arc<dyn Storage> = Arc::new(CachedStore::new(f.sled.clone(), 1 << 20)?);
    for round in 0..rounds {
        println!("round {round} ({} look-ups per step)", order.len());
        let stores: [(&str, Arc<dyn Storage>); 3] =
            [("sled only", f.sled.clone()), ("1 MiB cache", tiny.clone()), ("read cache", f.store.clone())];
        for (name, store) in stores {
            let reader = Reader::new(store.clone(), secrets.clone());
            let view = View::new(&*store);
            let full = time(&order, |n| {
                black_box(reader.resolve_number(*n).ok());
            });
            let mut persons = Vec::with_capacity(order.len());
            let number = time(&order, |n| {
                if let Ok(Some(e)) = state::read::<NumberEntry>(&view, Tree::Numbers, &state::number_key(*n)) {
                    persons.push(e.person);
                }
            });
            let mut entries = Vec::with_capacity(persons.len());
            let person = time(&persons, |p| {
                if let Ok(Some(e)) = state::read::<PersonEntry>(&view, Tree::Persons, &state::person_key(*p)) {
                    entries.push((*p, e));
                }
            });
            let mut sealed_keys = Vec::with_capacity(persons.len());
            let keyring_read = time(&persons, |p| {
                if let Ok(Some(k)) = get_checked(&*store, Tree::Keyring, &state::person_key(*p)) {
                    sealed_keys.push((*p, k));
                }
            });
            let opened = time(&entries, |(p, e)| {
                if let Some(sealed) = &e.demographics {
                    black_box(open_demographics(&view, &secrets, *p, sealed, registry_core::keyring::IN_FORCE).ok());
                }
            });
            println!(
                "  {name:>11}: resolve {full:>6.0} ns = number {number:>5.0} + person {person:>5.0} + keyring read \
                 {keyring_read:>5.0} + (keyring read again, 2 opens, decode) {opened:>5.0}"
            );
            if name == "sled only" {
                let keyring_open = time(&sealed_keys, |(p, k)| {
                    black_box(keyring::open_entry(secrets.keyring_key(), *p, k).ok());
                });
                let keys: Vec<_> = sealed_keys
                    .iter()
                    .filter_map(|(p, k)| match keyring::open_entry(secrets.keyring_key(), *p, k) {
                        Ok(KeyringEntry::Key(key)) => Some((*p, key)),
                        _ => None,
                    })
                    .collect();
                let sealed_open = time(&keys.iter().zip(&entries).collect::<Vec<_>>(), |((p, key), (_, e))| {
                    if let Some(sealed) = &e.demographics {
                        black_box(sealed.open(key, *p).ok());
                    }
                });
                println!(
                    "              keyring entry opened {keyring_open:.0} ns; demographics opened {sealed_open:.0} ns"
                );
            }
        }
    }
    Ok(())
}
