//! Files of work: `huduma register --file` (everyone in a CSV or JSON Lines file
//! registered) and `huduma reconcile` (every number or agency record id in a file
//! resolved, an agency's reconciliation), each with bounded calls in flight. Their
//! results file ([`Results`]), one row per line in input order, is the point a rerun
//! resumes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use huduma_sdk::{AgencyRecord, Client, Demographics, HudumaNumber, ResolveKey};

use super::{Failure, bar, failure};

/// A results file: a header, then one row per input line in input order, its last
/// column the line's error (empty when it went through). Rows answered out of order
/// are held until every row before them is written, so the rows written are always
/// the lines done, and a rerun skips that many.
struct Results {
    path: PathBuf,
    writer: csv::Writer<std::fs::File>,
    /// Rows in the file, by earlier runs too.
    written: usize,
    /// How many of them carry an error.
    failed: u64,
    held: BTreeMap<usize, Vec<String>>,
}

impl Results {
    /// Opens `path` to go on after the rows it holds, or creates it with `header`. A
    /// last row cut short (a run killed mid-write) is cut off, to be answered again; a
    /// file with another header is not this command's results, and is refused.
    fn open(path: PathBuf, header: &[&str]) -> Result<Self, Failure> {
        let unreadable = |e: csv::Error| failure(3, format!("{}: {e}", path.display()));
        let (mut written, mut failed) = (0usize, 0u64);
        let existing = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        if existing {
            let mut reader = csv::Reader::from_path(&path).map_err(unreadable)?;
            if reader.headers().map_err(unreadable)?.iter().ne(header.iter().copied()) {
                return Err(failure(
                    3,
                    format!("{}: not the results of this command (another header)", path.display()),
                ));
            }
            // Where the rows read so far end, and where the one before the last ended.
            let (mut end, mut before_last) = (reader.position().byte(), reader.position().byte());
            let mut last_failed = false;
            let mut rows = reader.records();
            while let Some(row) = rows.next() {
                let row = match row {
                    Ok(row) if row.len() == header.len() => row,
                    // Cut short, and the last: the run that wrote it was stopped mid-row.
                    Ok(_) | Err(_) if rows.next().is_none() => break,
                    Ok(row) => return Err(failure(3, format!("{}: a row of {} fields", path.display(), row.len()))),
                    Err(e) => return Err(unreadable(e)),
                };
                written += 1;
                last_failed = row.iter().next_back().is_some_and(|error| !error.is_empty());
                failed += u64::from(last_failed);
                (before_last, end) = (end, rows.reader().position().byte());
            }
            // A last row without its line's end was cut short too (in its last field).
            if written > 0 && !ends_a_line(&path, end)? {
                written -= 1;
                failed -= u64::from(last_failed);
                end = before_last;
            }
            std::fs::OpenOptions::new().write(true).open(&path).and_then(|file| file.set_len(end))?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if !existing {
            writer.write_record(header).map_err(unreadable)?;
            writer.flush()?;
        }
        Ok(Self { path, writer, written, failed, held: BTreeMap::new() })
    }

    /// Puts `row` as row `index` (counted from the file's first), writing it and any
    /// held rows after it once every row before it is written; returns how many rows
    /// were written now.
    fn put(&mut self, index: usize, row: Vec<String>) -> Result<u64, Failure> {
        self.held.insert(index, row);
        let before = self.written;
        while let Some(row) = self.held.remove(&self.written) {
            if row.last().is_some_and(|error| !error.is_empty()) {
                self.failed += 1;
            }
            self.writer.write_record(&row).map_err(|e| failure(1, format!("{}: {e}", self.path.display())))?;
            self.written += 1;
        }
        self.writer.flush()?;
        Ok((self.written - before) as u64)
    }
}

/// Whether the byte before `at` in the file at `path` ends a line.
fn ends_a_line(path: &Path, at: u64) -> Result<bool, Failure> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(before) = at.checked_sub(1) else { return Ok(false) };
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(before))?;
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte)?;
    Ok(byte[0] == b'\n')
}

/// The lines that hold something, numbered from 1, without the first of them when
/// `is_header` says it is a header; a line that could not be read is handed on.
fn content_lines<S: AsRef<str>, E>(
    lines: impl Iterator<Item = Result<S, E>>,
    is_header: impl Fn(&str) -> bool,
) -> impl Iterator<Item = Result<(usize, S), E>> {
    lines
        .enumerate()
        .map(|(i, l)| l.map(|l| (i + 1, l)))
        .filter(|l| l.as_ref().map_or(true, |(_, l)| !l.as_ref().trim().is_empty()))
        .enumerate()
        .filter(move |(at, l)| *at > 0 || l.as_ref().map_or(true, |(_, l)| !is_header(l.as_ref())))
        .map(|(_, l)| l)
}

/// One person of a bulk file, or why the line is not one.
fn parse_line(line: &str, csv: bool) -> Result<Demographics, String> {
    if csv {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
        let record = reader.records().next().ok_or("empty line")?.map_err(|e| e.to_string())?;
        let field = |i: usize| record.get(i).unwrap_or("").trim().to_string();
        if record.len() != 6 {
            return Err(format!("{} fields, expected 6", record.len()));
        }
        let other = field(2);
        Ok(Demographics {
            given_name: field(0),
            family_name: field(1),
            other_names: other.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            date_of_birth: field(3),
            sex: field(4).parse().map_err(|e| format!("sex: {e}"))?,
            place_of_birth: field(5),
        })
    } else {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Line {
            given_name: String,
            family_name: String,
            #[serde(default)]
            other_names: Vec<String>,
            date_of_birth: String,
            sex: String,
            place_of_birth: String,
        }
        let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
        Ok(Demographics {
            given_name: l.given_name,
            family_name: l.family_name,
            other_names: l.other_names,
            date_of_birth: l.date_of_birth,
            sex: l.sex.parse().map_err(|e| format!("sex: {e}"))?,
            place_of_birth: l.place_of_birth,
        })
    }
}

/// Registers every line of `file`. Request ids are `bulk-<file hash>-<line>`, so a rerun
/// (after a crash, a lost answer or Ctrl-C) returns the first answers and registers
/// nobody twice; the results file, written in input order, says how far it got.
pub async fn bulk_register(
    client: &Client,
    file: &Path,
    out: Option<PathBuf>,
    concurrency: usize,
    centre: &str,
) -> Result<(), Failure> {
    let unreadable = |e: std::io::Error| failure(3, format!("{}: {e}", file.display()));
    let csv = !file.extension().is_some_and(|e| e == "jsonl" || e == "ndjson");
    // The file is read as it goes (a campaign's file of millions takes the memory of
    // the calls in flight): hashed whole first, then its lines counted (a line that is
    // not UTF-8 is refused before anyone is registered), then registered.
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(file).map_err(unreadable)?).map_err(unreadable)?;
    let tag: String = hasher.finalize().to_hex().chars().take(16).collect();
    let people = || -> Result<_, Failure> {
        let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(unreadable)?);
        Ok(content_lines(std::io::BufRead::lines(reader), move |l| csv && l.starts_with("given_name")))
    };
    let mut total = 0u64;
    for line in people()? {
        line.map_err(unreadable)?;
        total += 1;
    }
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.results.csv", file.display())));
    let mut results = Results::open(out, &["line", "request_id", "huduma_number", "error"])?;
    let done = results.written;
    let progress = bar(total, "register");
    progress.set_position(done as u64);
    let mut iter = people()?.skip(done).enumerate();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < concurrency.max(1) {
            let Some((position, read)) = iter.next() else { break };
            let (line, content) = read.map_err(unreadable)?;
            let request_id = format!("bulk-{tag}-{line}");
            let parsed = parse_line(&content, csv);
            let (client, centre) = (client.clone(), centre.to_string());
            tasks.spawn(async move {
                let answer = match parsed {
                    Ok(d) => client.register_person(&request_id, &d, &centre).await.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("line {line}: {e}")),
                };
                (position, line, request_id, answer)
            });
        }
        let Some(joined) = tasks.join_next().await else { break };
        let (position, line, request_id, answer) = joined.map_err(|e| failure(1, e.to_string()))?;
        let (number, error) = match answer {
            Ok((number, _)) => (number.compact(), String::new()),
            Err(e) => (String::new(), e),
        };
        progress.inc(results.put(done + position, vec![line.to_string(), request_id, number, error])?);
    }
    progress.finish_and_clear();
    let (total, failed, out) = (results.written, results.failed, results.path.display());
    eprintln!("{} of {total} lines registered; results in {out}", total as u64 - failed);
    if failed > 0 { Err(failure(5, format!("{failed} lines refused (see {out})"))) } else { Ok(()) }
}

/// What a line of a reconciliation file names.
fn line_key(line: &str, agency: Option<&str>) -> Result<ResolveKey, huduma_sdk::Error> {
    let key = line.trim();
    Ok(match agency {
        Some(agency) => AgencyRecord::new(agency, key).into(),
        None => key.parse::<HudumaNumber>()?.into(),
    })
}

/// Resolves every line of `file` (a Huduma number, or with `agency` that agency's
/// record id) for `purpose`, each look-up recorded in the person's access log as any
/// other; a row a line in the results file, which a rerun goes on after. The file is
/// read as it goes, so an agency's millions of records take the memory of the calls in
/// flight, not of the file. Fails, when some line did not resolve, with the exit code
/// of the first such line.
pub async fn reconcile(
    client: &Client,
    file: &Path,
    agency: Option<&str>,
    purpose: &str,
    out: Option<PathBuf>,
    concurrency: usize,
) -> Result<(), Failure> {
    let unreadable = |e: std::io::Error| failure(3, format!("{}: {e}", file.display()));
    let keys = || -> Result<_, Failure> {
        let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(unreadable)?);
        let is_header = |l: &str| ["huduma_number", "record_id", "key"].contains(&l.trim());
        Ok(content_lines(std::io::BufRead::lines(reader), is_header))
    };
    let total = keys()?.count() as u64;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.results.csv", file.display())));
    let header = ["line", "key", "huduma_number", "status", "superseded_by", "date_of_death", "agency_token", "error"];
    let mut results = Results::open(out, &header)?;
    let done = results.written;
    let progress = bar(total, "reconcile");
    progress.set_position(done as u64);
    let mut lines = keys()?.skip(done).enumerate();
    let mut first_failure: Option<(usize, u8)> = None;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        while tasks.len() < concurrency.max(1) {
            let Some((at, line)) = lines.next() else { break };
            let (line, key) = line.map_err(unreadable)?;
            let (client, purpose, agency) = (client.clone(), purpose.to_string(), agency.map(String::from));
            tasks.spawn(async move {
                let answer = match line_key(&key, agency.as_deref()) {
                    Ok(k) => client.resolve(k, &purpose).await,
                    Err(e) => Err(e),
                };
                (at, line, key, answer)
            });
        }
        let Some(joined) = tasks.join_next().await else { break };
        let (at, line, key, answer) = joined.map_err(|e| failure(1, e.to_string()))?;
        let shown = |n: Option<HudumaNumber>| n.map(|n| n.compact()).unwrap_or_default();
        let cells = match answer {
            Ok(r) => vec![
                shown(r.number),
                format!("{:?}", r.status),
                shown(r.superseded_by),
                r.date_of_death.unwrap_or_default(),
                r.agency_token.unwrap_or_default(),
                String::new(),
            ],
            Err(e) => {
                let failed = Failure::from(e);
                if first_failure.is_none_or(|(first, _)| at < first) {
                    first_failure = Some((at, failed.code));
                }
                let mut cells = vec![String::new(); 5];
                cells.push(failed.message);
                cells
            }
        };
        let row = [line.to_string(), key.trim().to_string()].into_iter().chain(cells).collect();
        progress.inc(results.put(done + at, row)?);
    }
    progress.finish_and_clear();
    let (written, failed, out) = (results.written, results.failed, results.path.display());
    eprintln!("{} of {written} lines resolved; results in {out}", written as u64 - failed);
    match first_failure {
        Some((_, code)) => Err(failure(code, format!("{failed} lines not resolved (see {out})"))),
        None if failed > 0 => Err(failure(4, format!("{failed} lines not resolved (see {out})"))),
        None => Ok(()),
    }
}
