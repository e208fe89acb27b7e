//! `huduma register --file`: everyone in a CSV or JSON Lines file registered, with
//! bounded calls in flight; the results file, one row per line in input order, is the
//! point a rerun resumes from.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use huduma_sdk::{Client, Demographics};

use super::{Failure, bar, failure};

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
    let text = std::fs::read_to_string(file).map_err(|e| failure(3, format!("{}: {e}", file.display())))?;
    let csv = !file.extension().is_some_and(|e| e == "jsonl" || e == "ndjson");
    let tag: String = blake3::hash(text.as_bytes()).to_hex().chars().take(16).collect();
    let mut lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty()).collect();
    if csv && lines.first().is_some_and(|(_, l)| l.starts_with("given_name")) {
        lines.remove(0);
    }
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.results.csv", file.display())));
    // The results file is the progress: one row per input line, in input order.
    let (done, failed_before) = match std::fs::File::open(&out) {
        Ok(f) => {
            let mut reader = csv::Reader::from_reader(f);
            let mut rows = 0usize;
            let mut failed = 0u64;
            for row in reader.records() {
                let row = row.map_err(|e| failure(3, format!("{}: {e}", out.display())))?;
                rows += 1;
                if row.get(3).is_some_and(|e| !e.is_empty()) {
                    failed += 1;
                }
            }
            (rows, failed)
        }
        Err(_) => {
            std::fs::write(&out, "line,request_id,huduma_number,error\n")?;
            (0, 0)
        }
    };
    let mut results = std::fs::OpenOptions::new().append(true).open(&out)?;
    let progress = bar(lines.len() as u64, "register");
    progress.set_position(done as u64);
    let todo: Vec<(usize, &str)> = lines.into_iter().skip(done).collect();
    let mut failed = failed_before;
    let mut pending = BTreeMap::new();
    let mut next_to_write = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut iter = todo.iter().enumerate();
    loop {
        while tasks.len() < concurrency.max(1) {
            let Some((position, (line, content))) = iter.next() else { break };
            let request_id = format!("bulk-{tag}-{line}");
            let parsed = parse_line(content, csv);
            let (client, centre, line) = (client.clone(), centre.to_string(), *line);
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
        pending.insert(position, (line, request_id, answer));
        while let Some((line, request_id, answer)) = pending.remove(&next_to_write) {
            let row = match answer {
                Ok((number, _)) => format!("{line},{request_id},{},\n", number.compact()),
                Err(e) => {
                    failed += 1;
                    format!("{line},{request_id},,\"{}\"\n", e.replace('"', "'"))
                }
            };
            results.write_all(row.as_bytes())?;
            next_to_write += 1;
            progress.inc(1);
        }
    }
    results.flush()?;
    progress.finish_and_clear();
    let total = done + todo.len();
    eprintln!("{} of {total} lines registered; results in {}", total as u64 - failed, out.display());
    if failed > 0 { Err(failure(5, format!("{failed} lines refused (see {})", out.display()))) } else { Ok(()) }
}
