//! Resolve latency while the writer commits, by batch size. sled 0.34's `apply_batch`
//! takes a process-wide write lock that every read then waits on, so while the writer
//! used it the largest batch bounded the worst read stall; staged commits (plain
//! inserts behind `StagedStore`) were made to remove that stall, and this shows
//! whether they did. Percentiles need every sample, which criterion does not report,
//! hence this harness:
//!
//! `cargo run --release -p huduma-benches --example read_stall`

use std::sync::atomic::{AtomicBool, Ordering};

use huduma_benches::{populated, registration, secrets};
use registry_core::query::Reader;
use registry_core::storage::Storage;

fn main() {
    for batch in [1024usize, 256, 64] {
        let (mut f, numbers) = populated(20_000, 1024);
        let store: std::sync::Arc<dyn Storage> = f.store.clone();
        let reader = Reader::new(store, std::sync::Arc::new(secrets()));
        let stop = AtomicBool::new(false);
        let (rate, mut latencies) = std::thread::scope(|scope| {
            let resolver = scope.spawn(|| {
                let mut latencies = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 7919) % numbers.len();
                    let began = std::time::Instant::now();
                    let resolved = reader.resolve_number(numbers[i]);
                    latencies.push(began.elapsed().as_micros() as u64);
                    assert!(matches!(resolved, Ok(Some(_))));
                }
                latencies
            });
            let began = std::time::Instant::now();
            let mut written = 0u64;
            while written < 30_000 {
                let batch: Vec<_> =
                    (written..written + batch as u64).map(|i| registration("stall", 1_000_000 + i)).collect();
                for result in f.writer.execute_batch(&batch) {
                    assert!(result.is_ok());
                }
                written += batch.len() as u64;
            }
            let rate = written as f64 / began.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            (rate, resolver.join().unwrap_or_default())
        });
        latencies.sort_unstable();
        let at = |q: f64| latencies.get(((latencies.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or(0);
        println!(
            "batch {batch:>4}: {rate:>6.0} registrations/s; resolve while writing: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            at(0.5),
            at(0.99),
            at(0.999),
            at(1.0)
        );
    }
}
