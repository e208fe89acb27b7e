//! The sequencer under sustained load: `submitters` tasks each submitting registrations
//! one after another, through `Registry::submit` (group commit, pipelined committer,
//! staged commits), with batches of at most `max_batch`; prints the rate and the CPU the
//! process used per registration (both cores' worth: a rate far below what the CPU
//! per registration allows means the pipeline waits), and of it the sequencer thread's
//! (the build) and the committer's (sled inserts and flushes).
//!
//! `cargo run --release -p huduma-benches --example sequencer_load -- [submitters] [max_batch] [registrations]`
//! `[window]` (defaults 1,024, 256, 40,960 and all of them: the rate is printed per
//! window of that many registrations, as the store grows). `CACHE_MB` sets sled's page
//! cache (default 512), `NO_SEARCH=1` turns the duplicate search off, and
//! `POPULATION=kenyan` registers the dedup quality run's population (Kenyan names with
//! their real skew, `population::generate`, no planted duplicates) instead of the
//! default distinct persons, so that the search opens block-mates as a real registry's
//! does; those refused as likely duplicates (its few twins, and strangers alike in
//! name, sex and birth date where the dates are crowded) are counted, window by
//! window, not registered.
//! `OPEN_AHEAD` sets when a batch's searches have their block-mates opened ahead on
//! several threads (`crowded`, the default, `always` or `never`; `writer::OpenAhead`).
//! `CROWD=days` (with `POPULATION=kenyan`) moves every birth date into that many
//! consecutive days from 2010-01-01 (each date to the same day, so twins stay twins):
//! a date then holds as many persons as at ~31,000 / `days` times the population, so
//! that a small run's blocks are as crowded as a national registry's (113 days with
//! 200,000 persons: ~55 million).
//!
//! `ENGINE` sets what is under the registry's own layers (the staged store and the
//! presence filter): `sled` (the default, as `Registry::open_dir`), `memory` (the
//! in-memory `MemoryStore`: what the registry's own work allows when the engine costs
//! next to nothing, durability aside) or `memory-wal` (the same, each committed batch
//! also appended to a file and, when durable, `fdatasync`ed: the durable cost of an
//! engine that logs a batch sequentially and applies it in memory). The two are
//! ceilings for a cheaper engine behind `Storage`, not engines the registry could run.
//! `fjall` puts a real log-structured engine there instead (fjall 3, an LSM tree: one
//! keyspace with sled's one-byte tree tags, each batch one atomic fjall batch, fsynced
//! when durable, its block cache as large as sled's page cache): what such an engine
//! gives, measured; it is not wired for serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use huduma_benches::{key, registration, secrets};
use registry_core::command::{Command, CommandError, Submission};
use registry_core::demographics::Demographics;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::storage::fjall_store::FjallStore;
use registry_core::storage::memory::MemoryStore;
use registry_core::storage::presence_filter::FilteredStore;
use registry_core::storage::read_cache::CachedStore;
use registry_core::storage::staged::StagedStore;
use registry_core::storage::{Intent, Storage, StorageError, Tree, WriteBatch};
use registry_core::writer::OpenAhead;

/// `MemoryStore` with a write-ahead file: every committed batch is appended to it
/// (each write's tree, key and value, length-prefixed), and `fdatasync`ed when the
/// commit is durable.
struct WalStore {
    inner: MemoryStore,
    wal: std::sync::Mutex<std::fs::File>,
}

impl WalStore {
    fn append(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        use std::io::Write;
        let io = |e: std::io::Error| StorageError::Engine(e.to_string());
        let mut bytes = Vec::with_capacity(batch.len() * 64);
        for (tree, writes) in &batch.writes {
            for (key, value) in writes {
                let value = value.as_deref().unwrap_or_default();
                bytes.push(*tree as u8);
                bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
                bytes.extend_from_slice(key);
                bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
                bytes.extend_from_slice(value);
            }
        }
        let mut wal = self.wal.lock().map_err(|_| StorageError::Engine("wal lock poisoned".into()))?;
        wal.write_all(&bytes).map_err(io)?;
        if durable {
            wal.sync_data().map_err(io)?;
        }
        Ok(())
    }
}

impl Storage for WalStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(tree, key)
    }

    registry_core::forward_scans!(inner);

    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.append(batch, durable)?;
        self.inner.commit(batch, false)
    }

    fn write_in_order(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.commit(batch, durable)
    }

    fn commit_staged(&self, batch: &Arc<WriteBatch>, _intent: &Intent, durable: bool) -> Result<(), StorageError> {
        // A log-structured engine's batch is atomic by itself: no intent to write.
        self.commit(batch, durable)
    }

    fn flush(&self) -> Result<(), StorageError> {
        let wal = self.wal.lock().map_err(|_| StorageError::Engine("wal lock poisoned".into()))?;
        wal.sync_data().map_err(|e| StorageError::Engine(e.to_string()))
    }
}

/// Moves every birth date into `days` consecutive days from 2010-01-01, each date to
/// one day (its day number modulo `days`).
fn crowd_birth_dates(people: &mut [Demographics], days: u32) -> anyhow::Result<()> {
    use time::macros::{date, format_description};
    anyhow::ensure!(days > 0, "CROWD: at least one day");
    let format = format_description!("[year]-[month]-[day]");
    for person in people {
        let born = time::Date::parse(&person.date_of_birth, &format)?;
        let offset = born.to_julian_day().rem_euclid(days as i32);
        person.date_of_birth = (date!(2010 - 01 - 01) + time::Duration::days(offset.into())).format(&format)?;
    }
    Ok(())
}

/// The registry on `ENGINE`'s store (see the module's doc).
fn open_registry(dir: &std::path::Path, options: RegistryOptions) -> anyhow::Result<Registry> {
    let engine: Arc<dyn Storage> = match std::env::var("ENGINE").as_deref() {
        Err(_) | Ok("sled") => return Ok(Registry::open_dir(dir, secrets(), key(), options)?),
        Ok("memory") => Arc::new(MemoryStore::new()),
        Ok("memory-wal") => Arc::new(WalStore {
            inner: MemoryStore::new(),
            wal: std::sync::Mutex::new(std::fs::File::create(dir.join("wal"))?),
        }),
        Ok("fjall") => {
            // On disk, so behind the read cache as sled is.
            let fjall: Arc<dyn Storage> = Arc::new(FjallStore::open(&dir.join("fjall"), options.cache_bytes)?);
            Arc::new(CachedStore::new(fjall, options.read_cache_bytes)?)
        }
        Ok(other) => anyhow::bail!("ENGINE: unknown engine {other:?} (known: sled, memory, memory-wal, fjall)"),
    };
    // The same layers as `Registry::open_dir` (the read cache only over an engine on disk).
    let filtered: Arc<dyn Storage> = Arc::new(FilteredStore::open(engine)?);
    let store: Arc<dyn Storage> = Arc::new(StagedStore::new(filtered));
    Ok(Registry::open(store, Arc::new(MemoryStore::new()), secrets(), key(), options)?)
}

/// User and system CPU time in seconds of a `/proc` stat file.
fn stat_seconds(path: &std::path::Path) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of the whole process, of the sequencer thread (the build) and of the
/// committer thread (sled inserts and flushes).
fn cpu_seconds() -> [f64; 3] {
    let mut out = [stat_seconds(std::path::Path::new("/proc/self/stat")), 0.0, 0.0];
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let slot = if name.starts_with("huduma-sequen") {
            1
        } else if name.starts_with("huduma-commit") {
            2
        } else {
            continue;
        };
        out[slot] += stat_seconds(&task.path().join("stat"));
    }
    out
}

/// The floors, measured in the same run: raw Ed25519 signing of 330 bytes (per
/// second, one core) and raw sled inserts of 330-byte values, 1,024 a batch, each
/// batch flushed (per second).
fn floors() -> anyhow::Result<(f64, f64)> {
    let k = key();
    let message = vec![3u8; 330];
    let began = std::time::Instant::now();
    let signatures = 20_000;
    for _ in 0..signatures {
        std::hint::black_box(k.sign(std::hint::black_box(&message)));
    }
    let signing = signatures as f64 / began.elapsed().as_secs_f64();
    let dir = tempfile::tempdir()?;
    let db = sled::open(dir.path())?;
    let tree = db.open_tree("raw")?;
    let began = std::time::Instant::now();
    let batches = 40u64;
    for b in 0..batches {
        let mut batch = sled::Batch::default();
        for i in 0..1024u64 {
            batch.insert(&(b * 1024 + i).to_be_bytes(), message.clone());
        }
        tree.apply_batch(batch)?;
        db.flush()?;
    }
    let sled_rate = (batches * 1024) as f64 / began.elapsed().as_secs_f64();
    Ok((signing, sled_rate))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let submitters: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let max_batch: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);
    let total: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(40_960);
    let dir = tempfile::tempdir()?;
    let mut options = RegistryOptions { max_batch, ..RegistryOptions::default() };
    if let Some(mb) = std::env::var("CACHE_MB").ok().and_then(|v| v.parse::<u64>().ok()) {
        options.cache_bytes = mb << 20;
    }
    if std::env::var_os("NO_SEARCH").is_some() {
        options.duplicate_threshold = None;
    }
    options.open_ahead = match std::env::var("OPEN_AHEAD").as_deref() {
        Err(_) | Ok("crowded") => OpenAhead::WhenCrowded,
        Ok("always") => OpenAhead::Always,
        Ok("never") => OpenAhead::Never,
        Ok(other) => anyhow::bail!("OPEN_AHEAD: unknown setting {other:?} (known: crowded, always, never)"),
    };
    let registry = Arc::new(open_registry(dir.path(), options)?);
    // The warm-up's persons come after the measured ones'.
    let warm = max_batch as u64 * 4;
    let population: Option<Arc<Vec<Demographics>>> = match std::env::var("POPULATION").as_deref() {
        Ok("kenyan") => Some(Arc::new(
            huduma_benches::population::generate((total + warm) as usize, 0.0, 0.005, 1)
                .into_iter()
                .map(|e| e.demographics)
                .collect(),
        )),
        Ok(other) => anyhow::bail!("POPULATION: unknown population {other:?} (known: kenyan)"),
        Err(_) => None,
    };
    let population = match std::env::var("CROWD").ok().map(|v| v.parse::<u32>()).transpose()? {
        Some(days) => {
            let Some(people) = population else { anyhow::bail!("CROWD: needs POPULATION=kenyan") };
            let mut people = Arc::unwrap_or_clone(people);
            crowd_birth_dates(&mut people, days)?;
            Some(Arc::new(people))
        }
        None => population,
    };
    let submission = move |tag: &str, i: u64| -> Submission {
        match &population {
            Some(people) => {
                let at = if tag == "warm" { total + (i - (1 << 40)) } else { i };
                let mut s = registration(tag, i);
                s.command = Command::RegisterPerson { demographics: people[at as usize].clone() };
                s
            }
            None => registration(tag, i),
        }
    };
    let submission = Arc::new(submission);
    let refused = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Runtime::new()?;
    let (signing, sled_rate) = floors()?;
    println!("floors before: ed25519 signing {signing:.0}/s, sled insert+flush (batch 1,024) {sled_rate:.0}/s");
    // A warm-up of one batch's worth, then the measured run.
    // Persons of their own each (the same index is the same person, refused as a duplicate).
    let window = args.next().map(|a| a.parse()).transpose()?.unwrap_or(total);
    let mut runs = vec![("warm", 1u64 << 40, warm, false)];
    runs.extend((0..total.div_ceil(window)).map(|w| ("load", w * window, window.min(total - w * window), true)));
    for (tag, first, count, measured) in runs {
        let (cpu, began, refused_before) = (cpu_seconds(), std::time::Instant::now(), refused.load(Ordering::Relaxed));
        runtime.block_on(async {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..submitters {
                let (registry, next, submission, refused) =
                    (registry.clone(), next.clone(), submission.clone(), refused.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok::<_, anyhow::Error>(());
                        }
                        match registry.submit(submission(tag, first + i)).await {
                            Ok(_) => {}
                            Err(CommandError::PossibleDuplicate { .. }) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }));
            }
            for task in tasks {
                task.await??;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        if !measured {
            continue;
        }
        {
            let seconds = began.elapsed().as_secs_f64();
            let now = cpu_seconds();
            let per = |i: usize| (now[i] - cpu[i]) * 1e6 / count as f64;
            let refused_here = refused.load(Ordering::Relaxed) - refused_before;
            println!(
                "{submitters} submitters, max_batch {max_batch}, persons {first}..{}: {:.0} registrations/s ({:.3} x signing); CPU {:.0} us per registration ({:.2} cores busy): build {:.0}, commit {:.0}; refused as likely duplicates {refused_here}",
                first + count,
                count as f64 / seconds,
                count as f64 / seconds / signing,
                per(0),
                (now[0] - cpu[0]) / seconds,
                per(1),
                per(2)
            );
        }
    }
    if refused.load(Ordering::Relaxed) > 0 {
        println!("refused as likely duplicates, counted in the rates: {}", refused.load(Ordering::Relaxed));
    }
    drop(registry);
    let (signing, sled_rate) = floors()?;
    println!("floors after: ed25519 signing {signing:.0}/s, sled insert+flush (batch 1,024) {sled_rate:.0}/s");
    Ok(())
}
