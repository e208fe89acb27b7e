//! Where a durable batch of registrations spends its time: building it (validate,
//! search for duplicates, seal, sign, fold) and committing it to sled, and how many
//! writes of each tree it holds (a harness for profiling, not the reported figures:
//! those are criterion's `append/*`).
//!
//! `cargo run --release -p huduma-benches --example append_steps -- [batches] [batch]`
//! (defaults: 50 batches of 1,024); `NO_SEARCH=1` turns the duplicate search off,
//! `NO_FILTER=1` the presence filter, and `POPULATION=kenyan` registers the dedup
//! quality run's population (Kenyan names with their real skew) instead of the default
//! distinct persons. Each tree's writes are counted, with the bytes of their values.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use huduma_benches::{fixture_with, registration};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let batches: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50);
    let size: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let mut f = fixture_with(std::env::var_os("NO_FILTER").is_none());
    if std::env::var_os("NO_SEARCH").is_some() {
        f.writer.set_duplicate_threshold(None);
    }
    let (mut build, mut commit, mut refused) = (Duration::ZERO, Duration::ZERO, 0);
    let mut writes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let kenyan = match std::env::var("POPULATION").as_deref() {
        Ok("kenyan") => Some(huduma_benches::population::generate((batches * size) as usize, 0.0, 0.0, 1)),
        Ok(other) => anyhow::bail!("POPULATION: unknown population {other:?} (known: kenyan)"),
        Err(_) => None,
    };
    for b in 0..batches {
        let subs: Vec<_> = (b * size..(b + 1) * size)
            .map(|i| {
                let mut s = registration("steps", i);
                if let Some(people) = &kenyan {
                    s.command = registry_core::command::Command::RegisterPerson {
                        demographics: people[i as usize].demographics.clone(),
                    };
                }
                s
            })
            .collect();
        let began = Instant::now();
        let built = f.writer.build(None, &subs);
        build += began.elapsed();
        for (tree, w) in &built.batch.writes {
            let entry = writes.entry(tree.name().to_string()).or_default();
            entry.0 += w.len();
            entry.1 += w.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>();
        }
        let began = Instant::now();
        f.store.commit(&built.batch, true)?;
        commit += began.elapsed();
        refused += built.results.iter().filter(|r| r.is_err()).count();
        if kenyan.is_none() && refused > 0 {
            anyhow::bail!("{refused} registrations were refused");
        }
    }
    if let Some(filter) = &f.filter {
        let stats = filter.stats();
        println!(
            "filter {:.2} reads skipped per registration; {} keys entered, false positives {:.3}%",
            stats.skipped as f64 / (batches * size) as f64,
            stats.entered,
            stats.false_positive_rate * 100.0
        );
    }
    blocks_read(&f, batches * size, size)?;
    if refused > 0 {
        println!("refused as likely duplicates (namesakes born the same day), counted in the rates: {refused}");
    }
    let n = (batches * size) as f64;
    println!("build  {:7.2} us/registration", build.as_secs_f64() * 1e6 / n);
    println!("commit {:7.2} us/registration", commit.as_secs_f64() * 1e6 / n);
    let (total, bytes) = writes.values().fold((0, 0), |(c, b), (wc, wb)| (c + wc, b + wb));
    println!("writes {:7.2} per registration, {:.0} bytes (keys and values)", total as f64 / n, bytes as f64 / n);
    for (tree, (count, bytes)) in writes {
        println!("  {tree:16} {:6.2} {:7.0} B", count as f64 / n, bytes as f64 / n);
    }
    Ok(())
}

/// How many `match_keys` entries the searches of `count` new registrations visit,
/// and what reading a block costs on sled alone.
fn blocks_read(f: &huduma_benches::Fixture, from: u64, count: u64) -> anyhow::Result<()> {
    use registry_core::dedup::{Profile, Reach, blocks, probe_keys};
    use registry_core::projection::fold::block_hash;
    use registry_core::storage::view::View;
    let secrets = huduma_benches::secrets();
    let view = View::new(&*f.sled);
    let (mut n, mut entries, mut nonempty) = (0usize, 0usize, 0usize);
    let began = Instant::now();
    let hashes: Vec<Vec<registry_core::dedup::blocks::BlockHash>> = (from..from + count)
        .map(|i| {
            probe_keys(&Profile::of(&huduma_benches::person(i)), Reach::Near)
                .iter()
                .map(|k| block_hash(&secrets, k))
                .collect()
        })
        .collect();
    println!("probe keys {:.2} us per registration", began.elapsed().as_secs_f64() * 1e6 / count as f64);
    let began = Instant::now();
    for probes in &hashes {
        for hash in probes {
            let mut found = 0;
            blocks::visit(&view, hash, |_| {
                found += 1;
                true
            })?;
            n += 1;
            entries += found;
            nonempty += usize::from(found > 0);
        }
    }
    let us = began.elapsed().as_secs_f64() * 1e6;
    println!(
        "blocks {:.2} per registration, {:.2} entries each, {:.0}% non-empty, {:.2} us each",
        n as f64 / count as f64,
        entries as f64 / n as f64,
        100.0 * nonempty as f64 / n as f64,
        us / n as f64
    );
    Ok(())
}
