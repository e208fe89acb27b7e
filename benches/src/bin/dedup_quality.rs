//! `huduma-dedup-quality`: how well and how fast the duplicate search works on a
//! synthetic Kenyan population with planted duplicates (`huduma_benches::population`).
//!
//! 1. Quality: every enrolment, in order, is searched against those before it with
//!    the registry's own blocking keys and scoring (`registry_core::dedup`), held in
//!    memory; precision and recall are reported for a range of thresholds (every
//!    block-mate born within a year either side scored, `Reach::Any`), and what each
//!    enrolment's search reads of the blocks (`Reach::Near`, in chunks as stored).
//! 2. Speed (`--registry`): the whole population is written into a real sled store
//!    through the writer, then `Reader::find_duplicates` at the enrolment threshold
//!    (the RegisterPerson path: keyed-hash blocks, sealed demographics opened) is timed on
//!    a sample of planted duplicates and of new persons, beside a raw sled point read
//!    measured on the same store in the same run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use huduma_benches::population::{self, Enrolment};
use registry_core::command::{Command, Submission};
use registry_core::dedup::score::{FREQUENCY, FrequencyWeights, Parts, Profile, Reach, parts, probe_keys, stored_keys};
use registry_core::event::Actor;
use registry_core::issuer::NumberIssuer;
use registry_core::query::Reader;
use registry_core::storage::Storage;
use registry_core::storage::sled_store::SledStore;
use registry_core::writer::Writer;

#[derive(Parser)]
#[command(about = "Precision, recall and speed of the duplicate search on a synthetic population")]
struct Args {
    /// Enrolments in all (originals, twins and planted duplicates).
    #[arg(long, default_value_t = 1_000_000)]
    persons: usize,
    /// The share of planted duplicates.
    #[arg(long, default_value_t = 0.02)]
    duplicates: f64,
    /// The share of originals that are twins of an earlier person (hard negatives).
    #[arg(long, default_value_t = 0.005)]
    twins: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also time the search through a real store of the whole population.
    #[arg(long)]
    registry: bool,
    /// Only time the search through the store (skip the in-memory quality run).
    #[arg(long, requires = "registry")]
    speed_only: bool,
    /// Searches timed through the store.
    #[arg(long, default_value_t = 2000)]
    sample: usize,
    /// sled's page cache for the store, in MiB (the registry's `server.cache_mb`).
    #[arg(long, default_value_t = registry_core::storage::sled_store::DEFAULT_CACHE_BYTES >> 20)]
    cache_mb: u64,
    /// Print this many false positives at the chosen threshold (for tuning).
    #[arg(long, default_value_t = 0)]
    show_false_positives: usize,
    /// Print this many planted duplicates missed at the chosen threshold.
    #[arg(long, default_value_t = 0)]
    show_misses: usize,
    /// Also measure other frequency weights beside the registry's, each given as
    /// `reference_share:max_penalty:max_bonus` (`none` for no adjustment); they run
    /// in parallel.
    #[arg(long)]
    compare_frequency: Vec<String>,
}

fn parse_weights(text: &str) -> anyhow::Result<FrequencyWeights> {
    if text == "none" {
        return Ok(FrequencyWeights::NONE);
    }
    let parts: Vec<&str> = text.split(':').collect();
    let [share, penalty, bonus] = parts.as_slice() else {
        anyhow::bail!("--compare-frequency {text}: expected reference_share:max_penalty:max_bonus");
    };
    Ok(FrequencyWeights {
        reference_share: share.parse().context("reference_share")?,
        max_penalty: penalty.parse().context("max_penalty")?,
        max_bonus: bonus.parse().context("max_bonus")?,
        ..FREQUENCY
    })
}

/// What the search found for one enrolment.
struct Outcome {
    duplicate: bool,
    /// The best score among the earlier enrolments found, and whether that best one
    /// is the person this enrolment duplicates.
    best: f32,
    best_is_truth: bool,
    /// The enrolment that scored best.
    best_id: Option<u32>,
    /// The best candidate's score, field by field.
    best_parts: Option<Parts>,
}

/// What each enrolment's search read of the blocks (its reach at the threshold,
/// `Reach::Near`), as the registry stores them (chunks of `dedup::blocks::CHUNK`
/// entries, one point read each): how the search's reads grow with the registry.
#[derive(Default)]
struct BlockReads {
    /// Chunks read by each search (its probe keys' blocks that exist).
    chunks: Vec<u32>,
    /// Entries those chunks held.
    entries: Vec<u32>,
}

impl BlockReads {
    fn report(&mut self, index: &HashMap<String, Vec<u32>>) {
        self.chunks.sort_unstable();
        self.entries.sort_unstable();
        let (chunks, entries) = (&self.chunks, &self.entries);
        let (c50, c99, cmax) = (percentile(chunks, 0.5), percentile(chunks, 0.99), percentile(chunks, 1.0));
        let (e50, e99, emax) = (percentile(entries, 0.5), percentile(entries, 0.99), percentile(entries, 1.0));
        let mut sizes: Vec<(usize, char)> =
            index.iter().map(|(k, v)| (v.len(), k.chars().next().unwrap_or('?'))).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let largest: Vec<String> = sizes.iter().take(5).map(|(n, kind)| format!("{n} ({kind})")).collect();
        println!(
            "blocks a search read: chunks median {c50}, p99 {c99}, max {cmax}; their entries median {e50}, p99 {e99}, max {emax}; {} blocks, the largest {}",
            index.len(),
            largest.join(", ")
        );
    }
}

fn quality(people: &[Enrolment], weights: &FrequencyWeights) -> (Vec<Outcome>, f64) {
    let mut reads = BlockReads::default();
    let mut index: HashMap<String, Vec<u32>> = HashMap::new();
    let mut profiles: Vec<Profile> = Vec::with_capacity(people.len());
    let mut outcomes = Vec::with_capacity(people.len());
    // Persons carrying each name word, among those enrolled so far (the registry's
    // `name_counts` projection).
    let mut carrying: HashMap<String, u64> = HashMap::new();
    let began = Instant::now();
    for (i, e) in people.iter().enumerate() {
        let p = Profile::of(&e.demographics);
        let mut query = p.clone();
        query.weigh_by_frequency(weights, i as u64, |w| carrying.get(w).copied().unwrap_or(0));
        let mut seen: Vec<u32> = Vec::new();
        // What the enrolment's search reads (its reach at the threshold).
        let (mut chunks, mut entries) = (0u32, 0u32);
        for key in probe_keys(&p, Reach::Near) {
            if let Some(ids) = index.get(&key) {
                chunks += ids.len().div_ceil(registry_core::dedup::blocks::CHUNK) as u32;
                entries += ids.len() as u32;
            }
        }
        // Every block-mate born within a year either side is scored, so that the
        // thresholds below the enrolment's are judged too.
        for key in probe_keys(&p, Reach::Any) {
            if let Some(ids) = index.get(&key) {
                for id in ids {
                    if !seen.contains(id) {
                        seen.push(*id);
                    }
                }
            }
        }
        reads.chunks.push(chunks);
        reads.entries.push(entries);
        let mut best = (f32::MIN, false);
        let mut best_id = None;
        let mut best_parts = None;
        for id in seen.iter().take(registry_core::dedup::MAX_EXAMINED) {
            let field_weights = parts(&query, &profiles[*id as usize]);
            let s = field_weights.total();
            let other = &people[*id as usize];
            let truth = e.duplicate_of == Some(*id as usize)
                || (e.duplicate_of.is_some() && other.duplicate_of == e.duplicate_of);
            if s > best.0 {
                best = (s, truth);
                best_id = Some(*id);
                best_parts = Some(field_weights);
            }
        }
        outcomes.push(Outcome {
            duplicate: e.duplicate_of.is_some(),
            best: best.0,
            best_is_truth: best.1,
            best_id,
            best_parts,
        });
        for key in stored_keys(&p) {
            index.entry(key).or_default().push(i as u32);
        }
        for w in p.distinct_words() {
            *carrying.entry(w.to_string()).or_default() += 1;
        }
        profiles.push(p);
        if (i + 1) % 200_000 == 0 {
            eprintln!("searched {} of {} ({weights:?})", i + 1, people.len());
        }
    }
    if *weights == FREQUENCY {
        let mut commonest: Vec<(&String, &u64)> = carrying.iter().collect();
        commonest.sort_by(|a, b| b.1.cmp(a.1));
        let shares: Vec<String> = commonest
            .iter()
            .take(10)
            .map(|(w, n)| format!("{w} {:.2}%", 100.0 * **n as f64 / people.len().max(1) as f64))
            .collect();
        eprintln!("commonest name words: {}", shares.join(", "));
        reads.report(&index);
    }
    (outcomes, began.elapsed().as_secs_f64() / people.len() as f64)
}

fn report(outcomes: &[Outcome]) {
    let duplicates = outcomes.iter().filter(|o| o.duplicate).count();
    println!(
        "| threshold | flagged | true positives | false positives | precision | recall | best match is the original |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut best_at_recall: Option<(f32, f64, f64)> = None;
    for step in 0..=24 {
        let t = 10.0 + 0.5 * step as f32;
        let flagged: Vec<&Outcome> = outcomes.iter().filter(|o| o.best >= t).collect();
        let tp = flagged.iter().filter(|o| o.duplicate).count();
        let fp = flagged.len() - tp;
        let right = flagged.iter().filter(|o| o.duplicate && o.best_is_truth).count();
        let marker = if (t - registry_core::dedup::THRESHOLD).abs() < f32::EPSILON { " (chosen)" } else { "" };
        let (precision, recall) = (tp as f64 / flagged.len().max(1) as f64, tp as f64 / duplicates.max(1) as f64);
        println!(
            "| {t:.1}{marker} | {} | {tp} | {fp} | {precision:.4} | {recall:.4} | {:.4} |",
            flagged.len(),
            right as f64 / tp.max(1) as f64,
        );
        if recall >= 0.95 && best_at_recall.is_none_or(|(_, p, _)| precision > p) {
            best_at_recall = Some((t, precision, recall));
        }
    }
    // Precision exactly where recall first reaches 0.95, ranking by best score.
    let mut ranked: Vec<&Outcome> = outcomes.iter().collect();
    ranked.sort_by(|a, b| b.best.total_cmp(&a.best));
    let needed = (0.95 * duplicates as f64).ceil() as usize;
    let mut tp = 0;
    for (k, o) in ranked.iter().enumerate() {
        tp += usize::from(o.duplicate);
        if tp >= needed && needed > 0 {
            println!("precision at recall 0.95: {:.4} (score {:.2})", tp as f64 / (k + 1) as f64, o.best);
            break;
        }
    }
    match best_at_recall {
        Some((t, p, r)) => println!("best precision at recall >= 0.95: {p:.4} (recall {r:.4}, threshold {t:.1})"),
        None => println!("no threshold reaches recall 0.95"),
    }
}

/// The most precision any scoring of the same comparisons could reach at recall 0.95:
/// the best candidates' comparisons grouped into cells (the names' weight to the half
/// point, with its frequency adjustment; the other names', birth date's, sex's and
/// place's outcomes), every cell's own share of true duplicates known (an oracle), and
/// the purest cells flagged first until 95% of the duplicates are. Within a cell no
/// scoring of these fields can tell a duplicate from a stranger. Optimistic: each
/// enrolment is judged on the candidate the registry's scoring ranked best, and small
/// cells' shares are known exactly.
fn oracle_bound(outcomes: &[Outcome]) -> Option<(f64, usize)> {
    let duplicates = outcomes.iter().filter(|o| o.duplicate).count();
    let mut cells: HashMap<[i32; 5], (u64, u64)> = HashMap::new();
    for o in outcomes {
        let Some(p) = o.best_parts else { continue };
        let key = [p.names, p.others, p.dob, p.sex, p.place].map(|w| (w * 2.0).round() as i32);
        let cell = cells.entry(key).or_default();
        if o.duplicate {
            cell.0 += 1;
        } else {
            cell.1 += 1;
        }
    }
    let count = cells.len();
    let mut ranked: Vec<(u64, u64)> = cells.into_values().collect();
    ranked.sort_by(|a, b| {
        let purity = |(t, f): &(u64, u64)| *t as f64 / (*t + *f) as f64;
        purity(b).total_cmp(&purity(a)).then(b.0.cmp(&a.0))
    });
    let needed = 0.95 * duplicates as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    for (t, f) in ranked {
        let (t, f) = (t as f64, f as f64);
        if tp + t >= needed {
            // The last cell flagged in part: its share of it.
            let part = (needed - tp) / t;
            return Some(((needed) / (needed + fp + part * f), count));
        }
        tp += t;
        fp += f;
    }
    None
}

/// Two persons alike on everything but their other names and place of birth.
fn alike(a: &registry_core::demographics::Demographics, b: &registry_core::demographics::Demographics) -> bool {
    let fold = registry_core::dedup::normalise::words;
    let mut x = [fold(&a.given_name), fold(&a.family_name)].concat();
    let mut y = [fold(&b.given_name), fold(&b.family_name)].concat();
    x.sort();
    y.sort();
    x == y && a.date_of_birth == b.date_of_birth && a.sex == b.sex
}

/// The `p` quantile of `sorted` (the default of `T` when it is empty).
fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

fn speed(people: &[Enrolment], sample: usize, seed: u64, cache_mb: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SledStore::open_with_cache(dir.path(), cache_mb << 20)?);
    let dyn_store: Arc<dyn Storage> = store.clone();
    let secrets = Arc::new(huduma_benches::secrets());
    let issuer = NumberIssuer::new(secrets.number_key(), Default::default());
    let mut writer = Writer::open(dyn_store.clone(), secrets.clone(), issuer, huduma_benches::key(), "dedup.bench/log")
        .context("open the writer")?;
    // The store is built without the search (the population holds its planted
    // duplicates); the index it builds is the same.
    writer.set_duplicate_threshold(None);
    let began = Instant::now();
    let actor = Actor { principal: "bench".into(), via: "BENCH".into() };
    for (n, chunk) in people.chunks(1024).enumerate() {
        let subs: Vec<Submission> = chunk
            .iter()
            .enumerate()
            .map(|(k, e)| Submission {
                request_id: format!("p-{}", n * 1024 + k),
                actor: actor.clone(),
                command: Command::RegisterPerson { demographics: e.demographics.clone() },
            })
            .collect();
        for result in writer.execute_batch(&subs) {
            result.context("register")?;
        }
        if (n + 1) % 100 == 0 {
            eprintln!("stored {} persons in {:.0}s", (n + 1) * 1024, began.elapsed().as_secs_f64());
        }
    }
    drop(writer);
    // Half the queries through sled alone, half through the presence filter in front
    // of it as the registry opens its store (alternate queries, so neither half warms
    // the page cache for the other).
    let began = Instant::now();
    let filtered = registry_core::storage::presence_filter::FilteredStore::open(dyn_store.clone())?;
    filtered.wait_ready();
    let scan = began.elapsed().as_secs_f64();
    let filtered = Arc::new(filtered);
    let readers = [Reader::new(dyn_store.clone(), secrets.clone()), Reader::new(filtered.clone(), secrets)];
    // Queries: planted duplicates (their own demographics) and new persons.
    let fresh = population::generate(sample, 0.0, 0.0, seed + 1000);
    let dups: Vec<&Enrolment> = people.iter().filter(|e| e.duplicate_of.is_some()).take(sample / 2).collect();
    let queries: Vec<_> =
        dups.iter().map(|e| &e.demographics).chain(fresh.iter().take(sample / 2).map(|e| &e.demographics)).collect();
    let mut times = [Vec::with_capacity(queries.len()), Vec::with_capacity(queries.len())];
    let mut found = 0usize;
    for (i, d) in queries.iter().enumerate() {
        let t = Instant::now();
        let candidates = readers[i % 2].find_duplicates(d, registry_core::dedup::THRESHOLD, 5, None)?;
        times[i % 2].push(t.elapsed().as_secs_f64() * 1e6);
        found += usize::from(!candidates.is_empty());
    }
    let stats = filtered.stats();
    println!(
        "presence filter: {} keys read at open in {scan:.1} s; {} reads skipped in {} searches; false positives {:.3}%",
        stats.entered,
        stats.skipped,
        times[1].len(),
        stats.false_positive_rate * 100.0
    );
    let [mut times, mut with_filter] = times;
    with_filter.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    // The floor: a raw point read of the same store.
    let mut next = huduma_benches::xorshift();
    let reads = 20_000;
    let t = Instant::now();
    for _ in 0..reads {
        let seq = next() % people.len() as u64 + 1;
        store.get(registry_core::storage::Tree::Persons, &seq.to_be_bytes())?;
    }
    let read_us = t.elapsed().as_secs_f64() * 1e6 / reads as f64;
    println!(
        "search through the store of {} persons ({cache_mb} MiB page cache), sled alone, {} queries ({found} of all found a candidate): median {:.0} us, p90 {:.0} us, p99 {:.0} us; raw sled point read {:.2} us (median = {:.0} reads)",
        people.len(),
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        read_us,
        percentile(&times, 0.5) / read_us
    );
    println!(
        "  the same through the presence filter, {} queries: median {:.0} us, p90 {:.0} us, p99 {:.0} us (median = {:.0} reads)",
        with_filter.len(),
        percentile(&with_filter, 0.5),
        percentile(&with_filter, 0.9),
        percentile(&with_filter, 0.99),
        percentile(&with_filter, 0.5) / read_us
    );
    // FindDuplicates: its lower floor reaches block-mates born on any date of the years
    // either side, so it probes every month of them (`dedup::Reach::Any`).
    let mut listing = Vec::with_capacity(queries.len());
    for d in &queries {
        let t = Instant::now();
        readers[1].find_duplicates(d, registry_core::dedup::REPORT_FLOOR, 20, None)?;
        listing.push(t.elapsed().as_secs_f64() * 1e6);
    }
    listing.sort_by(f64::total_cmp);
    println!(
        "  FindDuplicates (floor {}) through the presence filter, {} queries: median {:.0} us, p90 {:.0} us, p99 {:.0} us",
        registry_core::dedup::REPORT_FLOOR,
        listing.len(),
        percentile(&listing, 0.5),
        percentile(&listing, 0.9),
        percentile(&listing, 0.99)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t = Instant::now();
    let people = population::generate(args.persons, args.duplicates, args.twins, args.seed);
    eprintln!("generated {} enrolments in {:.1}s", people.len(), t.elapsed().as_secs_f64());
    if args.speed_only {
        return speed(&people, args.sample, args.seed, args.cache_mb);
    }
    let others: Vec<FrequencyWeights> =
        args.compare_frequency.iter().map(|t| parse_weights(t)).collect::<anyhow::Result<_>>()?;
    let ((outcomes, per_search), compared) = std::thread::scope(|scope| {
        let handles: Vec<_> = others.iter().map(|w| (w, scope.spawn(|| quality(&people, w)))).collect();
        let main = quality(&people, &FREQUENCY);
        let compared: Vec<_> = handles.into_iter().map(|(w, h)| (w, h.join())).collect();
        (main, compared)
    });
    for (weights, result) in compared {
        let Ok((outcomes, _)) = result else { anyhow::bail!("the run with {weights:?} panicked") };
        println!("with frequency weights {weights:?}:");
        report(&outcomes);
    }
    println!("with the registry's frequency weights {FREQUENCY:?}:");
    println!(
        "population: {} enrolments, {} planted duplicates, {} twins (seed {}); in-memory search {:.1} us each",
        people.len(),
        people.iter().filter(|e| e.duplicate_of.is_some()).count(),
        people.iter().filter(|e| e.twin_of.is_some()).count(),
        args.seed,
        per_search * 1e6
    );
    report(&outcomes);
    match oracle_bound(&outcomes) {
        Some((precision, cells)) => println!(
            "the most any scoring of these comparisons reaches (an oracle over {cells} cells of field outcomes): precision {precision:.4} at recall 0.95"
        ),
        None => println!("the oracle: recall 0.95 is out of reach (duplicates never scored)"),
    }
    let threshold = registry_core::dedup::THRESHOLD;
    let indistinguishable = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.duplicate && o.best >= threshold)
        .filter(|(i, o)| o.best_id.is_some_and(|id| alike(&people[*i].demographics, &people[id as usize].demographics)))
        .count();
    println!(
        "false positives at the chosen threshold whose match has the same given and family names (in either order), date of birth and sex: {indistinguishable}"
    );
    let twins_flagged = outcomes
        .iter()
        .enumerate()
        .filter(|(i, o)| people[*i].twin_of.is_some() && !o.duplicate && o.best >= threshold)
        .count();
    println!(
        "twins flagged at the chosen threshold (false positives the registrar overrides): {twins_flagged} of {}",
        people.iter().filter(|e| e.twin_of.is_some()).count()
    );
    let unblocked = outcomes.iter().filter(|o| o.duplicate && o.best_id.is_none()).count();
    println!("planted duplicates that share no block with anyone (never scored): {unblocked}");
    for (i, o) in
        outcomes.iter().enumerate().filter(|(_, o)| !o.duplicate && o.best >= threshold).take(args.show_false_positives)
    {
        let other = o.best_id.map(|id| &people[id as usize]);
        eprintln!(
            "FP {:.1}: {:?} (twin_of {:?})\n   vs {:?}",
            o.best,
            people[i].demographics,
            people[i].twin_of,
            other.map(|e| &e.demographics)
        );
    }
    for (i, o) in outcomes.iter().enumerate().filter(|(_, o)| o.duplicate && o.best < threshold).take(args.show_misses)
    {
        let truth = people[i].duplicate_of.map(|of| &people[of].demographics);
        eprintln!("MISS {:.1}: {:?}\n   of {:?}", o.best, people[i].demographics, truth);
    }
    if args.registry {
        speed(&people, args.sample, args.seed, args.cache_mb)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(duplicate: bool, names: f32) -> Outcome {
        let parts = Parts { names, others: 0.0, dob: 10.0, sex: 1.0, place: 2.0 };
        Outcome { duplicate, best: parts.total(), best_is_truth: duplicate, best_id: Some(0), best_parts: Some(parts) }
    }

    /// 100 duplicates: 90 alone in a pure cell, 10 in a cell with 10 strangers. Recall
    /// 0.95 needs 5 of the mixed cell's 10: precision 95 / (95 + 5).
    #[test]
    fn the_oracle_flags_the_purest_cells_first_and_the_last_in_part() {
        let mut outcomes: Vec<Outcome> = (0..90).map(|_| outcome(true, 12.0)).collect();
        outcomes.extend((0..10).map(|_| outcome(true, 4.0)));
        outcomes.extend((0..10).map(|_| outcome(false, 4.0)));
        // Strangers never scored cannot be flagged.
        outcomes.push(Outcome {
            duplicate: false,
            best: f32::MIN,
            best_is_truth: false,
            best_id: None,
            best_parts: None,
        });
        let (precision, cells) = oracle_bound(&outcomes).unwrap();
        assert_eq!(cells, 2);
        assert!((precision - 0.95).abs() < 1e-9, "{precision}");
    }

    #[test]
    fn the_oracle_says_when_recall_is_out_of_reach() {
        let mut outcomes: Vec<Outcome> = (0..90).map(|_| outcome(true, 12.0)).collect();
        outcomes.extend((0..10).map(|_| Outcome {
            duplicate: true,
            best: f32::MIN,
            best_is_truth: false,
            best_id: None,
            best_parts: None,
        }));
        assert_eq!(oracle_bound(&outcomes), None);
    }
}
