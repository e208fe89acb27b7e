//! The phases of `verify` and `rebuild` timed apart, with the CPU time each used and
//! the memory a rebuild adds: for finding where their time goes between criterion runs
//! (`whole_store/*` in benches/core.rs holds the figures reported).
//!
//! `cargo run --release -p huduma-benches --example replay_phases -- [persons] [rounds]`
//! (defaults: 100,000 persons, each linked to one agency record; 3 rounds). Linux only
//! (reads /proc/self). `PHASES=rebuild` (or a comma-separated list of `verify-log`,
//! `fresh`, `verify`, `rebuild`, `rebuild-empty`, and `verify-disk`, `rebuild-disk`,
//! `rebuild-empty-disk` with the fresh fold in a scratch store on disk, as for a log
//! past the in-memory limit) runs only those, e.g. under `perf record`. `PEAK=disk`
//! measures the memory a rebuild adds on disk instead of in memory, `PEAK=none` not at
//! all. The store is reopened alone after it is populated, as the operator's commands
//! open it, with a page cache of `CACHE_MB` MiB (default 512, as `cache_mb`). `verify`
//! also prints how long its log check and fold took, and then its comparison.
//!
//! `ENGINE=fjall` copies the populated store, every tree, into a fjall store (with a
//! block cache of `CACHE_MB`) and runs the phases over that instead of sled: what
//! `verify` and `rebuild` would cost on a log-structured engine (a bench adapter, as
//! in `sequencer_load`; the registry serves from sled).
//!
//! `STORE=dir` keeps the populated sled store in `dir` (which must not exist yet) and,
//! when `dir` holds one already, opens it instead of populating again: at 1,000,000
//! persons populating takes longer than the phases, and two builds compared on one
//! store differ by their code alone. The store must have been populated with the same
//! `persons`; the phases that empty the projections rebuild them before they end.

use std::time::Instant;

use anyhow::Context;
use huduma_benches::{key, populated, secrets};
use registry_core::replay::{self, FoldSpace, Stage};
use registry_core::storage::fjall_store::FjallStore;
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch};
use registry_core::verify::verify_store;

/// This process's user + system CPU time so far, in seconds.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after_name = stat.rfind(')').context("unexpected /proc/self/stat")? + 2;
    let fields: Vec<&str> = stat[after_name..].split(' ').collect();
    let ticks = |i: usize| -> anyhow::Result<f64> { Ok(fields.get(i).context("short /proc/self/stat")?.parse()?) };
    // utime and stime, in clock ticks (100 per second on Linux).
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// One line of /proc/self/status (e.g. `VmHWM`, the peak resident memory).
fn status(field: &str) -> anyhow::Result<String> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with(field)).context("no such field")?;
    Ok(line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
}

fn phase<T>(name: &str, records: f64, run: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let (began, cpu) = (Instant::now(), cpu_seconds()?);
    let answer = run()?;
    let wall = began.elapsed().as_secs_f64();
    eprint!("{name}: {:.0} records/s ({wall:.2} s, {:.2} s CPU)   ", records / wall, cpu_seconds()? - cpu);
    Ok(answer)
}

/// Removes every projection entry (as a lost or wiped projection store would leave it),
/// 65,536 removals at a time: sled holds an atomic batch whole in memory several times
/// over (one batch of every entry took 24 GB at 1 M persons and was killed).
fn empty_projections(store: &dyn Storage) -> anyhow::Result<()> {
    for tree in Tree::PROJECTIONS {
        let entries = store.scan_prefix(tree, &[])?;
        if std::env::var_os("COUNT").is_some() {
            let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
            eprintln!("{tree:?}: {} keys, {bytes} bytes", entries.len());
        }
        for chunk in entries.chunks(65_536) {
            let mut batch = WriteBatch::default();
            for (key, _) in chunk {
                batch.remove(tree, key.clone());
            }
            store.write_in_order(&batch, false)?;
        }
    }
    Ok(store.flush()?)
}

/// Copies every tree of `from` into `to`, 65,536 entries a batch, then flushes `to`.
fn copy_store(from: &dyn Storage, to: &dyn Storage) -> anyhow::Result<()> {
    for tree in Tree::ALL {
        // The last key copied: the next read starts there, and skips it.
        let mut last: Option<Vec<u8>> = None;
        loop {
            let entries = from.range_from(tree, last.as_deref().unwrap_or_default(), 65_536 + 1)?;
            let mut batch = WriteBatch::default();
            for (key, value) in entries {
                if last.as_deref() != Some(key.as_slice()) {
                    last = Some(key.clone());
                    batch.put(tree, key, value);
                }
            }
            if batch.is_empty() {
                break;
            }
            to.commit_owned(batch, false)?;
        }
    }
    Ok(to.flush()?)
}

/// Removes a directory when dropped (the populated store, when it is not kept).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(3), |a| a.parse())?;
    let began = Instant::now();
    let kept = std::env::var_os("STORE").map(std::path::PathBuf::from);
    let dir = match &kept {
        Some(kept) if kept.exists() => {
            eprintln!("reusing the store in {}", kept.display());
            kept.clone()
        }
        _ => {
            let (f, _) = populated(persons, 1024);
            // The store as the operator's commands open it: alone, with `cache_mb`'s page cache.
            let huduma_benches::Fixture { dir, sled, store, filter, writer } = f;
            drop((writer, filter, store, sled));
            eprintln!("{persons} persons registered and linked in {:.1} s", began.elapsed().as_secs_f64());
            match &kept {
                Some(kept) => {
                    std::fs::rename(dir.keep(), kept).with_context(|| format!("STORE: keeping {}", kept.display()))?;
                    kept.clone()
                }
                None => dir.keep(),
            }
        }
    };
    // Removed at the end unless kept.
    let _cleanup = kept.is_none().then(|| RemoveOnDrop(dir.clone()));
    let cache_mb: u64 = std::env::var("CACHE_MB").map_or(Ok(512), |v| v.parse())?;
    let sled = SledStore::open_with_cache(&dir, cache_mb << 20)?;
    // fjall's copy, in a temporary directory of its own (never kept).
    let fjall_dir = tempfile::tempdir()?;
    let store: Box<dyn Storage> = match std::env::var("ENGINE").as_deref() {
        Err(_) | Ok("sled") => Box::new(sled),
        Ok("fjall") => {
            let began = Instant::now();
            let fjall = FjallStore::open(&fjall_dir.path().join("fjall"), cache_mb << 20)?;
            copy_store(&sled, &fjall)?;
            drop(sled);
            eprintln!("copied into fjall in {:.1} s", began.elapsed().as_secs_f64());
            Box::new(fjall)
        }
        Ok(other) => anyhow::bail!("ENGINE: unknown engine {other:?} (known: sled, fjall)"),
    };
    let store = store.as_ref();
    let (s, genesis) = (secrets(), key().public());
    let records = (2 * persons + 1) as f64;
    let only = std::env::var("PHASES").ok();
    let runs = |name: &str| only.as_deref().is_none_or(|list| list.split(',').any(|p| p == name));
    let scratch = tempfile::tempdir()?;
    let on_disk = FoldSpace::under(scratch.path(), 0);
    for _ in 0..rounds {
        if runs("verify-log") {
            phase("verify, log only", records, || {
                Ok(verify_store(store, Some(genesis), None, &FoldSpace::IN_MEMORY, &mut |_| ())?)
            })?;
        }
        if runs("fresh") {
            phase("fresh fold", records, || Ok(replay::FreshFold::of(store, &s, None, &mut |_| ())?))?;
        }
        if runs("verify") {
            // When the comparison with the live projections began (the fold and the
            // log's check done), to time it apart.
            let mut compared_from = None;
            let began = Instant::now();
            phase("verify with projections", records, || {
                Ok(verify_store(store, Some(genesis), Some(&s), &FoldSpace::IN_MEMORY, &mut |reached| {
                    if reached.stage == Stage::Projections && compared_from.is_none() {
                        compared_from = Some(Instant::now());
                    }
                })?)
            })?;
            if let Some(from) = compared_from {
                eprint!(
                    "(log and fold {:.2} s, comparison {:.2} s)   ",
                    (from - began).as_secs_f64(),
                    from.elapsed().as_secs_f64()
                );
            }
        }
        if runs("rebuild") {
            phase("rebuild", records, || Ok(replay::rebuild(store, &s, &FoldSpace::IN_MEMORY, &mut |_| ())?))?;
        }
        if runs("rebuild-empty") {
            empty_projections(store)?;
            phase("rebuild from empty", records, || {
                Ok(replay::rebuild(store, &s, &FoldSpace::IN_MEMORY, &mut |_| ())?)
            })?;
        }
        if runs("verify-disk") {
            phase("verify with projections, on disk", records, || {
                Ok(verify_store(store, Some(genesis), Some(&s), &on_disk, &mut |_| ())?)
            })?;
        }
        if runs("rebuild-disk") {
            phase("rebuild on disk", records, || Ok(replay::rebuild(store, &s, &on_disk, &mut |_| ())?))?;
        }
        if runs("rebuild-empty-disk") {
            empty_projections(store)?;
            phase("rebuild from empty on disk", records, || Ok(replay::rebuild(store, &s, &on_disk, &mut |_| ())?))?;
        }
        eprintln!();
    }
    // The memory a rebuild adds: reset the peak to the current size, rebuild, read it.
    if std::env::var("PEAK").as_deref() == Ok("none") {
        return Ok(());
    }
    let before = status("VmRSS")?;
    std::fs::write("/proc/self/clear_refs", "5")?;
    let (space, place) = match std::env::var("PEAK").as_deref() {
        Ok("disk") => (on_disk, "on disk"),
        _ => (FoldSpace::IN_MEMORY, "in memory"),
    };
    replay::rebuild(store, &s, &space, &mut |_| ())?;
    eprintln!("resident before a rebuild {place}: {before}; peak during it: {}", status("VmHWM")?);
    Ok(())
}
