//! Proof latency over a tree of N records, sample by sample (criterion reports means;
//! this keeps every sample): builds a sled store of N synthetic records with their
//! tree, then times random inclusion and consistency proofs in rounds, printing each
//! round's p50/p99 so that a cold cache and a warm one are told apart. The second
//! argument is sled's page cache in MiB (the registry's default, 512, when absent);
//! the third, the lowest levels of the tree held in memory to measure, one after
//! another on the same store (`merkle_store::CACHED_LEVEL` when absent).
//!
//! `cargo run --release -p huduma-benches --example proof_latency -- 1000000 [512 [8,6,4]]`

use std::time::Instant;

use registry_core::merkle_store;
use registry_core::storage::{Storage, Tree};

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let cache_mb: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(registry_core::storage::sled_store::DEFAULT_CACHE_BYTES >> 20);
    let began = Instant::now();
    let (_dir, store) = huduma_benches::tree_store(n, cache_mb << 20);
    println!("built {n} records in {:.0}s with a {cache_mb} MiB page cache", began.elapsed().as_secs_f64());
    let levels: Vec<u8> = std::env::args()
        .nth(3)
        .map(|a| a.split(',').filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_else(|| vec![merkle_store::CACHED_LEVEL]);
    for level in levels {
        rounds(&store, n, level);
    }
}

fn rounds(store: &dyn Storage, n: u64, level: u8) {
    let cache = merkle_store::TreeCache::from_level(level);
    println!("tree held in memory from subtrees of 2^{level} leaves up:");
    let mut next = huduma_benches::xorshift();
    let percentile = |samples: &mut Vec<u32>, p: f64| {
        samples.sort_unstable();
        samples[((samples.len() - 1) as f64 * p) as usize]
    };
    println!("| round | inclusion p50 µs | p99 µs | consistency p50 µs | p99 µs | sled get p50 µs |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for round in 1..=6 {
        let (mut inc, mut con, mut get) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let t = Instant::now();
            merkle_store::inclusion_proof(store, &cache, next() % n, n).expect("proof");
            inc.push(t.elapsed().as_micros() as u32);
            let t = Instant::now();
            merkle_store::consistency_proof(store, &cache, 1 + next() % (n - 1), n).expect("proof");
            con.push(t.elapsed().as_micros() as u32);
            let t = Instant::now();
            store.get(Tree::Log, &(next() % n).to_be_bytes()).expect("get");
            get.push(t.elapsed().as_micros() as u32);
        }
        println!(
            "| {round} | {} | {} | {} | {} | {} |",
            percentile(&mut inc, 0.5),
            percentile(&mut inc, 0.99),
            percentile(&mut con, 0.5),
            percentile(&mut con, 0.99),
            percentile(&mut get, 0.5)
        );
    }
    println!("the tree cache held {} nodes", cache.len());
}
