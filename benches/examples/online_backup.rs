//! What an online backup (`huduma backup`, `registry_core::online_backup`) costs: its
//! rate in records of the identity log a second, its copy and its fold apart, beside a
//! baseline measured in the same run: the same log's stored bytes written into a new
//! sled store in 4,096-entry batches and flushed once (raw sled writes, no checks).
//!
//! Then `restore-tail` (`registry_core::tail_import`) of the whole log's export into an
//! empty store: the export verified from the genesis key and every record appended,
//! beside the same raw sled write, alternated.
//!
//! `cargo run --release -p huduma-benches --example online_backup -- [persons] [rounds]`
//! (defaults: 100,000 persons, each linked to one agency record, so twice as many
//! records; 3 rounds, alternating baseline and backup).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use huduma_benches::{key, populated, registration, secrets};
use registry_core::online_backup::{self, BackupProgress};
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::replay::{CHUNK, FoldSpace};
use registry_core::storage::in_key_order::InKeyOrder;
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(3), |a| a.parse())?;
    eprintln!("populating {persons} persons");
    let (fixture, _) = populated(persons, 1024);
    let dir = fixture.dir;
    drop(fixture.writer);
    drop(fixture.store);
    drop(fixture.filter);
    drop(fixture.sled);
    let registry = open(dir.path())?;
    // The sequencer signs a checkpoint of the whole log once a batch lands and it idles.
    registry.submit_blocking(registration("checkpointed", persons))?;
    let size = *registry.durable_size().borrow();
    let began = Instant::now();
    while registry.reader().latest_checkpoint()?.map(|(s, _)| s) != Some(size) {
        anyhow::ensure!(began.elapsed() < Duration::from_secs(30), "no checkpoint of the whole log");
        std::thread::sleep(Duration::from_millis(10));
    }
    let records = size as f64;
    eprintln!("{size} records; {rounds} rounds");
    for round in 1..=rounds {
        let target = tempfile::tempdir()?;
        let began = Instant::now();
        raw_copy(&**registry.store(), target.path())?;
        let raw = began.elapsed().as_secs_f64();
        drop(target);

        let target = tempfile::tempdir()?;
        let out = target.path().join("backup");
        let began = Instant::now();
        let mut folding_from = None;
        let taken = online_backup::take(&registry, &out, &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |p| {
            if matches!(p, BackupProgress::Folding(_)) && folding_from.is_none() {
                folding_from = Some(began.elapsed().as_secs_f64());
            }
        })?;
        let whole = began.elapsed().as_secs_f64();
        anyhow::ensure!(taken.records == size, "the backup copied {} of {size}", taken.records);
        let copy = folding_from.unwrap_or(whole);
        println!(
            "round {round}: raw sled write {:.0} records/s ({raw:.2} s); backup {:.0} records/s ({whole:.2} s, {:.3} x raw): copy {:.0}/s ({copy:.2} s, {:.2} x raw), fold {:.0}/s ({:.2} s)",
            records / raw,
            records / whole,
            raw / whole,
            records / copy,
            raw / copy,
            records / (whole - copy),
            whole - copy,
        );
    }
    // After a restore, `restore-tail` verifies a whole export and appends what the store
    // lacks: here all of it, into an empty store (the worst case).
    let export_dir = tempfile::tempdir()?;
    let export = export_dir.path().join("log.bin");
    registry_core::log_export::export_log(&**registry.store(), &mut std::fs::File::create(&export)?)?;
    registry.close();
    let closed = SledStore::open(dir.path())?;
    for round in 1..=rounds {
        let target = tempfile::tempdir()?;
        let began = Instant::now();
        raw_copy(&closed, target.path())?;
        let raw = began.elapsed().as_secs_f64();
        drop(target);

        let target = tempfile::tempdir()?;
        let empty = SledStore::open(target.path())?;
        let began = Instant::now();
        let imported = registry_core::tail_import::import_tail(&empty, &export, Some(key().public()), &mut |_| ())?;
        let whole = began.elapsed().as_secs_f64();
        anyhow::ensure!(imported.to == size, "took back {} of {size}", imported.to);
        let held = registry_core::replay::log_size(&empty)?;
        anyhow::ensure!(held == size, "the store holds {held} of {size}");
        println!(
            "round {round}: raw sled write {:.0} records/s ({raw:.2} s); restore-tail of the whole export (verified from the genesis key, appended) {:.0} records/s ({whole:.2} s, {:.2} x raw)",
            records / raw,
            records / whole,
            raw / whole,
        );
    }
    Ok(())
}

fn open(dir: &std::path::Path) -> anyhow::Result<Registry> {
    let options = RegistryOptions { origin: "bench.huduma.example/log".into(), ..RegistryOptions::default() };
    Ok(Registry::open_dir(dir, secrets(), key(), options)?)
}

/// The baseline: the log's stored entries written into a new sled store as they are.
fn raw_copy(live: &dyn Storage, dir: &std::path::Path) -> anyhow::Result<()> {
    let copy = SledStore::open(dir)?;
    let mut batch = WriteBatch::default();
    for entry in InKeyOrder::new(live, Tree::Log, &[], CHUNK) {
        let (key, value) = entry?;
        batch.put(Tree::Log, key, value);
        if batch.len() >= CHUNK {
            copy.commit(&std::mem::take(&mut batch), false)?;
        }
    }
    copy.commit(&batch, false)?;
    copy.flush()?;
    Ok(())
}
