//! Fixtures shared by the benchmarks: a populated registry store in a temporary
//! directory, built through the real writer, and a large store of synthetic records
//! with their RFC 6962 tree (for proofs). Every benchmark links this crate, so every
//! one runs on the allocator `huduma-registry` ships with.

pub mod population;

/// The allocator of `huduma-registry` (see its `main.rs`), so that the figures are the
/// binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use registry_core::command::{Command, Submission};
use registry_core::demographics::Demographics;
use registry_core::event::Actor;
use registry_core::issuer::NumberIssuer;
use registry_core::keys::LogKey;
use registry_core::secrets::Secrets;
use registry_core::storage::Storage;
use registry_core::storage::presence_filter::FilteredStore;
use registry_core::storage::read_cache::{CachedStore, DEFAULT_READ_CACHE_BYTES};
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::staged::StagedStore;
use registry_core::writer::Writer;
use registry_core::{HudumaNumber, IssuanceFilters};

pub fn secrets() -> Secrets {
    Secrets::from_master([5; 32])
}

pub fn key() -> LogKey {
    LogKey::from_seed([6; 32])
}

pub fn person(i: u64) -> Demographics {
    registry_core::synthetic::distinct_person(i)
}

pub fn registration(run: &str, i: u64) -> Submission {
    Submission {
        request_id: format!("{run}-{i}"),
        actor: Actor { principal: "bench".into(), via: "BENCH".into() },
        command: Command::RegisterPerson { demographics: person(i) },
    }
}

pub fn link(run: &str, i: u64, number: HudumaNumber) -> Submission {
    Submission {
        request_id: format!("{run}-link-{i}"),
        actor: Actor { principal: "bench".into(), via: "BENCH".into() },
        command: Command::LinkAgencyRecord { number, agency: "KRA".into(), record_id: format!("P{i:09}") },
    }
}

/// A sled store and its writer in a fresh temporary directory, opened as the registry
/// opens it: behind its read cache (`store`), with the sled store itself as `sled`
/// (what the operator's verify and rebuild open, with the registry stopped).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub sled: Arc<SledStore>,
    /// The store as the registry opens it: the staged batch, the presence filter, the
    /// read cache, sled.
    pub store: Arc<dyn Storage>,
    /// The presence filter in `store`, if it has one.
    pub filter: Option<Arc<FilteredStore>>,
    pub writer: Writer,
}

pub fn fixture() -> Fixture {
    fixture_with(true)
}

/// [`fixture`], with or without the presence filter (for harnesses that compare).
pub fn fixture_with(presence_filter: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = Arc::new(SledStore::open(dir.path()).expect("open sled"));
    let cached: Arc<dyn Storage> =
        Arc::new(CachedStore::new(sled.clone(), DEFAULT_READ_CACHE_BYTES).expect("read cache"));
    let filter = presence_filter.then(|| {
        let filtered = FilteredStore::open(cached.clone()).expect("presence filter");
        filtered.wait_ready();
        Arc::new(filtered)
    });
    let beneath: Arc<dyn Storage> = match &filter {
        Some(filter) => filter.clone(),
        None => cached,
    };
    let store: Arc<dyn Storage> = Arc::new(StagedStore::new(beneath));
    let secrets = Arc::new(secrets());
    let issuer = NumberIssuer::new(secrets.number_key(), IssuanceFilters::default());
    let writer = Writer::open(Arc::clone(&store), secrets, issuer, key(), "bench.huduma.example/log").expect("writer");
    Fixture { dir, sled, store, filter, writer }
}

/// A fixture holding `persons` registrations, each linked to one KRA record;
/// returns the numbers issued.
pub fn populated(persons: u64, batch: usize) -> (Fixture, Vec<HudumaNumber>) {
    let mut f = fixture();
    let mut numbers = Vec::with_capacity(persons as usize);
    let ids: Vec<u64> = (0..persons).collect();
    for chunk in ids.chunks(batch) {
        let subs: Vec<Submission> = chunk.iter().map(|i| registration("pop", *i)).collect();
        for result in f.writer.execute_batch(&subs) {
            numbers.push(result.expect("register").number.expect("number"));
        }
    }
    for chunk in ids.chunks(batch) {
        let subs: Vec<Submission> = chunk.iter().map(|i| link("pop", *i, numbers[*i as usize])).collect();
        for result in f.writer.execute_batch(&subs) {
            result.expect("link");
        }
    }
    (f, numbers)
}

/// A sled store holding `n` synthetic 48-byte records and their tree, written
/// durably every 100,000 writes as plain inserts in order (records before the tree
/// nodes they complete). Not as atomic batches: sled 0.34's `apply_batch` of large
/// batches keeps memory far beyond its cache (it was killed at 24 GiB on the way to
/// 10 million records), plain inserts stay within it. `cache_bytes` is sled's page
/// cache (`registry_core::storage::sled_store::DEFAULT_CACHE_BYTES` is the registry's
/// default).
pub fn tree_store(n: u64, cache_bytes: u64) -> (tempfile::TempDir, SledStore) {
    use registry_core::merkle_store;
    use registry_core::storage::Tree;
    use registry_core::storage::view::View;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open_with_cache(dir.path(), cache_bytes).expect("sled");
    let mut edge = merkle_store::TreeEdge::new();
    let began = std::time::Instant::now();
    let mut view = View::new(&store);
    for seq in 0..n {
        let mut record = [0u8; 48];
        record[..8].copy_from_slice(&seq.to_be_bytes());
        view.put(Tree::Log, seq.to_be_bytes().to_vec(), &record);
        merkle_store::append(&mut view, &mut edge, seq, &record).expect("append");
        if view.pending_len() >= 100_000 {
            store.write_in_order(&view.take_batch(), true).expect("write");
            view = View::new(&store);
        }
        if seq % 1_000_000 == 999_999 {
            eprintln!("tree store: {} records in {:.0}s", seq + 1, began.elapsed().as_secs_f64());
        }
    }
    store.write_in_order(&view.take_batch(), true).expect("write");
    (dir, store)
}

/// A fast, repeatable pseudo-random sequence (xorshift64) for picking benchmark inputs.
pub fn xorshift() -> impl FnMut() -> u64 {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
