//! The core benchmarks, each beside its floor in the same run:
//! - floor/*: raw sled insert + flush (same batch size), raw ed25519 signing, raw blake3;
//! - issue/*: the next Huduma number;
//! - append/*: durable batched registrations through the writer;
//! - resolve/*: look-ups from the projections (as an agency's: with its own records
//!   opened);
//! - access/*: look-ups recorded durably in the access log, one by one and together
//!   (a duplicate search's candidates);
//! - verify/* and rebuild/*: whole-store passes.
//!
//! `cargo bench -p huduma-benches --bench core`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use huduma_benches::{fixture, key, populated, registration, secrets};
use registry_core::query::Reader;
use registry_core::replay::{self, FoldSpace};
use registry_core::storage::read_cache::CachedStore;
use registry_core::storage::{Storage, Tree};
use registry_core::verify::verify_store;

const BATCH: usize = 1024;
const RECORD_BYTES: usize = 330;

fn floors(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor");
    g.throughput(Throughput::Elements(BATCH as u64));
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let tree = db.open_tree("raw").unwrap();
    let value = vec![7u8; RECORD_BYTES];
    let mut next = 0u64;
    g.bench_function("sled_insert_flush_batch_1024", |b| {
        b.iter(|| {
            let mut batch = sled::Batch::default();
            for _ in 0..BATCH {
                batch.insert(&next.to_be_bytes(), value.clone());
                next += 1;
            }
            tree.apply_batch(batch).unwrap();
            db.flush().unwrap();
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("sled_insert_flush_batch_1", |b| {
        b.iter(|| {
            tree.insert(next.to_be_bytes(), value.clone()).unwrap();
            next += 1;
            db.flush().unwrap();
        })
    });
    let k = key();
    let message = vec![3u8; RECORD_BYTES];
    g.bench_function("ed25519_sign_330B", |b| b.iter(|| k.sign(black_box(&message))));
    g.bench_function("blake3_330B", |b| b.iter(|| blake3::hash(black_box(&message))));
    g.finish();

    // Part of every registration: the next Huduma number (~25 evaluations of the
    // keyed permutation, since ~4% of candidates pass the filters).
    let mut g = c.benchmark_group("issue");
    g.throughput(Throughput::Elements(1));
    let issuer = registry_core::issuer::NumberIssuer::new(secrets().number_key(), Default::default());
    let mut from = 0u64;
    g.bench_function("next_number", |b| {
        b.iter(|| {
            let issued = issuer.issue_from(from).unwrap();
            from = issued.counter + 1;
            black_box(issued.number)
        })
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    let mut f = fixture();
    let mut next = 0u64;
    g.bench_function("register_durable_batch_1024", |b| {
        b.iter_batched(
            || {
                let subs: Vec<_> = (next..next + BATCH as u64).map(|i| registration("bench", i)).collect();
                next += BATCH as u64;
                subs
            },
            |subs| {
                let results = f.writer.execute_batch(&subs);
                assert!(results.iter().all(Result::is_ok));
            },
            BatchSize::PerIteration,
        )
    });
    // The real path: concurrent submitters, the sequencer's group commit, pipelined
    // with the committer thread.
    let dir = tempfile::tempdir().unwrap();
    let registry = std::sync::Arc::new(
        registry_core::registry::Registry::open_dir(dir.path(), secrets(), key(), Default::default()).unwrap(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    const SUBMISSIONS: u64 = 8192;
    g.throughput(Throughput::Elements(SUBMISSIONS));
    let mut run = 0u64;
    g.bench_function("register_sequencer_8192_by_1024_submitters", |b| {
        b.iter(|| {
            // Each iteration enrols persons of its own: the same persons again would
            // be refused as duplicates of the last iteration's.
            let first = run * SUBMISSIONS;
            run += 1;
            let tag = format!("seq{run}");
            runtime.block_on(async {
                let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let mut tasks = Vec::new();
                for _ in 0..1024 {
                    let (registry, next, tag) = (registry.clone(), next.clone(), tag.clone());
                    tasks.push(tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= SUBMISSIONS {
                                break;
                            }
                            registry.submit(registration(&tag, first + i)).await.unwrap();
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

const POPULATION: u64 = 100_000;

fn resolve_verify_rebuild(c: &mut Criterion) {
    // The 100 k-person store is built on first use, so a filter that selects none of
    // these benchmarks does not spend half a minute building it.
    let population = std::cell::OnceCell::new();
    let populated = || population.get_or_init(|| populated(POPULATION, BATCH));
    let secrets = std::sync::Arc::new(secrets());
    // As the registry opens its store: behind the read cache, whose default holds all
    // 100 k persons, so after the warm-up every look-up is a hit. Then a 1 MiB cache,
    // where nearly every read misses (the miss path with the cache's own cost), and
    // sled alone, as before the cache.
    const READERS: [&str; 3] = ["", "_read_cache_1MiB", "_sled_only"];
    let readers = std::cell::OnceCell::new();
    let readers = || {
        readers.get_or_init(|| {
            let (f, _) = populated();
            let tiny: std::sync::Arc<dyn Storage> =
                std::sync::Arc::new(CachedStore::new(f.sled.clone(), 1 << 20).expect("read cache"));
            let stores: [std::sync::Arc<dyn Storage>; 3] = [f.store.clone(), tiny, f.sled.clone()];
            stores.map(|store| Reader::new(store, secrets.clone()))
        })
    };
    let mut g = c.benchmark_group("resolve");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    for (which, suffix) in READERS.iter().enumerate() {
        g.bench_function(format!("by_number_100k_persons{suffix}"), |b| {
            let numbers = &populated().1;
            let reader = &readers()[which];
            b.iter(|| {
                i = (i + 7919) % numbers.len();
                // As KRA's look-up: the resolution, and KRA's own records opened.
                let r = reader.resolve_number(numbers[i]).unwrap().unwrap();
                black_box(reader.agency_records(&r, |agency| agency == "KRA").unwrap());
                black_box(r)
            })
        });
        g.bench_function(format!("by_agency_record_100k_persons{suffix}"), |b| {
            let count = populated().1.len();
            let reader = &readers()[which];
            b.iter(|| {
                i = (i + 7919) % count;
                let r = reader.resolve_agency_record("KRA", &format!("P{i:09}")).unwrap().unwrap();
                black_box(reader.agency_records(&r, |agency| agency == "KRA").unwrap());
                black_box(r)
            })
        });
    }
    g.finish();

    let records = 2 * POPULATION + 1;
    let mut g = c.benchmark_group("whole_store");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(records));
    // On sled itself, as the operator's verify and rebuild open it (registry stopped).
    let s = &*secrets;
    g.bench_function("verify_log_200k_records", |b| {
        let f = &populated().0;
        b.iter(|| verify_store(&*f.sled, Some(key().public()), None, &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap())
    });
    g.bench_function("verify_log_and_projections_200k_records", |b| {
        let f = &populated().0;
        b.iter(|| verify_store(&*f.sled, Some(key().public()), Some(s), &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap())
    });
    g.bench_function("rebuild_healthy_200k_records", |b| {
        let f = &populated().0;
        b.iter(|| replay::rebuild(&*f.sled, s, &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap())
    });
    g.bench_function("rebuild_from_empty_projections_200k_records", |b| {
        let f = &populated().0;
        b.iter_batched(
            || {
                // Remove every projection entry (not measured).
                let mut batch = registry_core::storage::WriteBatch::default();
                for tree in Tree::PROJECTIONS {
                    for (key, _) in f.sled.scan_prefix(tree, &[]).unwrap() {
                        batch.remove(tree, key);
                    }
                }
                f.sled.commit(&batch, true).unwrap();
            },
            |()| replay::rebuild(&*f.sled, s, &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// A refused registration's five candidates, each a look-up recorded durably before the
/// refusal is answered: awaited one by one (a commit each), or recorded together (one).
fn access(c: &mut Criterion) {
    const FOUND: usize = 5;
    let mut g = c.benchmark_group("access");
    g.throughput(Throughput::Elements(FOUND as u64));
    let dir = tempfile::tempdir().unwrap();
    let registry =
        registry_core::registry::Registry::open_dir(dir.path(), secrets(), key(), Default::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let looks = || (0..FOUND).map(|i| registry_core::synthetic::look_up(None, "KRA", &format!("p{i}")));
    g.bench_function("record_5_one_by_one", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for event in looks() {
                    registry.access().record(event).await.unwrap();
                }
            })
        })
    });
    g.bench_function("record_5_together", |b| {
        b.iter(|| runtime.block_on(registry.access().record_all(looks().collect())).unwrap())
    });
    g.finish();
    registry.close();
}

criterion_group!(benches, floors, append, access, resolve_verify_rebuild);
criterion_main!(benches);
