//! What a scratch store costs in memory and time as it fills, on sled and on fjall:
//! why the fresh fold of a log too large for memory goes into fjall
//! (`replay::ScratchFold`; BENCHMARKS.md, "Verify and rebuild in bounded memory").
//!
//! `ENGINE=sled|fjall cargo run --release -p huduma-benches --example scratch_engines -- [keys]`
//! (default 8,000,000): inserts `keys` random 20-byte keys with 100-byte values in
//! batches of 20,000 (on sled as plain inserts: its atomic batches hold far more), reading
//! one key in seven back as the fold does, and prints the peak resident memory every
//! million keys. Both stores get a 64 MiB cache. Linux only.

use std::time::Instant;

use anyhow::Context;
use registry_core::storage::fjall_store::FjallStore;
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch};

/// The peak resident memory so far (`VmHWM` of /proc/self/status).
fn peak() -> anyhow::Result<String> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM")).context("no VmHWM")?;
    Ok(line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
}

fn key(i: u64) -> Vec<u8> {
    blake3::hash(&i.to_le_bytes()).as_bytes()[..20].to_vec()
}

fn main() -> anyhow::Result<()> {
    let keys: u64 = std::env::args().nth(1).map_or(Ok(8_000_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let cache = 64 << 20;
    let engine = std::env::var("ENGINE").unwrap_or_else(|_| "fjall".into());
    let store: Box<dyn Storage> = match engine.as_str() {
        "sled" => Box::new(SledStore::open_with_cache(&dir.path().join("sled"), cache)?),
        "fjall" => Box::new(FjallStore::open_scratch(&dir.path().join("fjall"), cache)?),
        other => anyhow::bail!("ENGINE: unknown engine {other:?} (known: sled, fjall)"),
    };
    let began = Instant::now();
    let mut batch = WriteBatch::default();
    for i in 1..=keys {
        batch.put(Tree::MatchKeys, key(i), vec![7; 100]);
        if i % 7 == 0 {
            store.get(Tree::MatchKeys, &key(i / 2))?;
        }
        if batch.len() >= 20_000 {
            store.write_in_order(&std::mem::take(&mut batch), false)?;
        }
        if i % 1_000_000 == 0 {
            eprintln!("{engine}: {i} keys in {:.1} s, peak resident {}", began.elapsed().as_secs_f64(), peak()?);
        }
    }
    store.write_in_order(&batch, false)?;
    Ok(())
}
