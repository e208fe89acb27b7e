//! The RFC 6962 tree's benchmarks, each beside its floor in the same run:
//! - tree/inclusion_proof_*, tree/consistency_proof_*: proofs from a sled store of
//!   `HUDUMA_TREE_RECORDS` records (default 10,000,000; the store is built first, with
//!   small synthetic records: a proof reads one record and subtree roots);
//! - tree/append_1024_leaves: what the tree adds to a batch of 1,024 records (leaf
//!   hashes, frontier, node writes applied to sled), beside append/register_durable_batch_1024
//!   in the same run;
//! - floor/sled_get and floor/sha256_64B.
//!
//! `cargo bench -p huduma-benches --bench tree`
//! `HUDUMA_TREE_RECORDS=1000000 cargo bench -p huduma-benches --bench tree`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use huduma_benches::{fixture, registration, tree_store};
use huduma_log::merkle::leaf_hash;
use registry_core::merkle_store;
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::view::View;
use registry_core::storage::{Storage, Tree};

fn records() -> u64 {
    std::env::var("HUDUMA_TREE_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000)
}

fn proofs(c: &mut Criterion) {
    let n = records();
    let (_dir, store) = tree_store(n, registry_core::storage::sled_store::DEFAULT_CACHE_BYTES);
    let mut g = c.benchmark_group("tree");
    g.measurement_time(Duration::from_secs(10));
    let cache = merkle_store::TreeCache::default();
    let mut next = huduma_benches::xorshift();
    let label = if n >= 1_000_000 { format!("{}m", n / 1_000_000) } else { format!("{}k", n / 1000) };
    g.bench_function(format!("inclusion_proof_{label}"), |b| {
        b.iter(|| merkle_store::inclusion_proof(&store, &cache, next() % n, n).expect("proof"))
    });
    g.bench_function(format!("consistency_proof_{label}"), |b| {
        b.iter(|| merkle_store::consistency_proof(&store, &cache, 1 + next() % (n - 1), n).expect("proof"))
    });
    g.bench_function(format!("root_{label}"), |b| b.iter(|| merkle_store::root(&store, black_box(n)).expect("root")));
    g.finish();

    let mut f = c.benchmark_group("floor");
    f.bench_function("sled_get", |b| b.iter(|| store.get(Tree::Log, &(next() % n).to_be_bytes()).expect("get")));
    let pair = [7u8; 64];
    f.bench_function("sha256_64B", |b| b.iter(|| leaf_hash(black_box(&pair))));
    f.finish();
}

fn append_share(c: &mut Criterion) {
    const BATCH: u64 = 1024;
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    // What the tree adds to a batch: 1,024 leaf hashes of 330-byte records, the
    // tree's edge, and the node and block writes applied to sled (with the batch's flush, which the
    // registration batch pays once anyway, left out).
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(dir.path()).expect("sled");
    let mut edge = merkle_store::TreeEdge::new();
    let record = vec![5u8; 330];
    g.bench_function("tree_share_of_batch_1024", |b| {
        b.iter(|| {
            let mut view = View::new(&store);
            for _ in 0..BATCH {
                let seq = edge.size();
                merkle_store::append(&mut view, &mut edge, seq, &record).expect("append");
            }
            store.commit(&view.take_batch(), false).expect("commit");
        })
    });
    let mut f = fixture();
    let mut next = 0u64;
    g.bench_function("register_durable_batch_1024", |b| {
        b.iter_batched(
            || {
                let subs: Vec<_> = (next..next + BATCH).map(|i| registration("tree", i)).collect();
                next += BATCH;
                subs
            },
            |subs| f.writer.execute_batch(&subs),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, append_share, proofs);
criterion_main!(benches);
