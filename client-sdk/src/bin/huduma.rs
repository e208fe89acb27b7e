//! `huduma`: the registrar's, agency's and auditor's CLI, built on the SDK.
//!
//! Exit codes: 0 ok; 2 usage; 3 invalid input; 4 not found; 5 refused (the person's
//! state forbids it, or it already exists); 6 not allowed (unauthenticated or
//! permission denied); 7 unavailable (after retries); 8 verification failed; 1 other.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use huduma_sdk::{AgencyRecord, Client, Demographics, Error, ReplacementReason, Sex, new_request_id};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio_stream::StreamExt;

#[derive(Parser)]
#[command(name = "huduma", version, about = "The Huduma Registry CLI: registrars, agencies and auditors")]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args)]
struct Connection {
    /// The registry's gRPC endpoint.
    #[arg(long, env = "HUDUMA_ENDPOINT", default_value = "http://127.0.0.1:50051", global = true)]
    endpoint: String,
    /// Bearer token.
    #[arg(long, env = "HUDUMA_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM), for mTLS.
    #[arg(long, global = true, requires = "key")]
    cert: Option<PathBuf>,
    /// Client key (PEM), for mTLS.
    #[arg(long, global = true, requires = "cert")]
    key: Option<PathBuf>,
    /// Deadline of each call, in seconds.
    #[arg(long, default_value_t = 10, global = true)]
    timeout: u64,
}

#[derive(Args)]
struct Person {
    #[arg(long)]
    given: Option<String>,
    #[arg(long)]
    family: Option<String>,
    #[arg(long = "other")]
    other: Vec<String>,
    /// Date of birth, YYYY-MM-DD.
    #[arg(long)]
    dob: Option<String>,
    /// female, male or intersex.
    #[arg(long)]
    sex: Option<Sex>,
    #[arg(long)]
    place: Option<String>,
}

impl Person {
    /// The demographics, or the first missing flag.
    fn demographics(self) -> Result<Demographics, Failure> {
        let missing = |flag: &str| failure(2, format!("register: --{flag} is required (or --file for a bulk file)"));
        Ok(Demographics {
            given_name: self.given.ok_or_else(|| missing("given"))?,
            family_name: self.family.ok_or_else(|| missing("family"))?,
            other_names: self.other,
            date_of_birth: self.dob.ok_or_else(|| missing("dob"))?,
            sex: self.sex.ok_or_else(|| missing("sex"))?,
            place_of_birth: self.place.ok_or_else(|| missing("place"))?,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Register a person (or, with --file, everyone in a CSV or JSON Lines file).
    Register {
        #[command(flatten)]
        person: Person,
        /// Bulk: a .csv (given_name,family_name,other_names,date_of_birth,sex,place_of_birth;
        /// other names separated by ';') or .jsonl file. Resumable: rerun the same command.
        #[arg(long, conflicts_with = "given")]
        file: Option<PathBuf>,
        /// Bulk: where results go (line,request_id,huduma_number,error); default FILE.results.csv.
        #[arg(long, requires = "file")]
        out: Option<PathBuf>,
        /// Bulk: calls in flight.
        #[arg(long, default_value_t = 32, requires = "file")]
        concurrency: usize,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Replace a number (lost, compromised, fraud, administrative).
    Replace {
        number: String,
        #[arg(long)]
        reason: ReplacementReason,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Link an agency's record to a person.
    Link {
        number: String,
        #[arg(long)]
        agency: String,
        #[arg(long)]
        record: String,
        #[arg(long, default_value = "")]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Unlink an agency's record from a person.
    Unlink {
        number: String,
        #[arg(long)]
        agency: String,
        #[arg(long)]
        record: String,
        #[arg(long, default_value = "")]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Resolve a number, or an agency record (--agency and --record).
    Resolve {
        #[arg(required_unless_present = "record")]
        number: Option<String>,
        #[arg(long, requires = "record")]
        agency: Option<String>,
        #[arg(long, requires = "agency")]
        record: Option<String>,
        /// Why you are looking this person up (required; recorded).
        #[arg(long)]
        purpose: String,
    },
    /// Follow changes to your agency's linked persons (resumes after disconnects).
    Watch {
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many changes.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Record a death.
    Death {
        number: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Revoke a number.
    Revoke {
        number: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Reinstate a revoked number.
    Reinstate {
        number: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Auditors: the log's records, keys, and its verification.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Huduma numbers, offline.
    Number {
        #[command(subcommand)]
        command: NumberCmd,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// The log's origin and keys (C2SP verifier-key form).
    Keys,
    /// Download records into FILE (u32 BE length + record bytes, as
    /// `huduma-registry export` writes). Resumable: rerun to continue.
    Records {
        #[arg(long)]
        out: PathBuf,
        /// Stop before this index (default: the end of the log now).
        #[arg(long, default_value_t = 0)]
        end: u64,
    },
    /// Verify the whole log: order, BLAKE3 chain, every signature, key rotations from
    /// the genesis key, and that the records produce the root of the registry's newest
    /// signed checkpoint. Reads --from FILE (with --checkpoint NOTE), or downloads.
    /// With --state, resumes from the last verified checkpoint and proves the new one
    /// consistent with it.
    Verify {
        #[arg(long)]
        from: Option<PathBuf>,
        /// A signed checkpoint note to verify the records against (offline).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The published genesis verifier key; without it the registry's first key is trusted.
        #[arg(long)]
        genesis_key: Option<String>,
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Prove that record INDEX is in the registry's newest signed checkpoint.
    Prove {
        #[arg(long)]
        index: u64,
    },
}

#[derive(Subcommand)]
enum NumberCmd {
    /// Check a number's length, digits and check digit without calling the registry.
    Check { number: String },
}

/// A failure, with the exit code that says what happened.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidNumber(_) | Error::InvalidArgument { .. } => 3,
            Error::NotFound(_) => 4,
            Error::FailedPrecondition(_) | Error::AlreadyExists(_) | Error::OutOfRange(_) => 5,
            Error::Unauthenticated(_) | Error::PermissionDenied(_) => 6,
            Error::Unavailable(_) | Error::DeadlineExceeded(_) | Error::Transport(_) => 7,
            Error::Verification(_) => 8,
            _ => 1,
        };
        Failure { code, message: e.to_string() }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure { code: 1, message: e.to_string() }
    }
}

fn failure(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(failure(1, e.to_string())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn connect(c: &Connection) -> Result<Client, Failure> {
    let mut builder = Client::builder(c.endpoint.clone()).timeout(Duration::from_secs(c.timeout));
    if let Some(token) = &c.token {
        builder = builder.token(token.clone());
    }
    if let Some(ca) = &c.ca {
        builder = builder.ca_certificate(std::fs::read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&c.cert, &c.key) {
        builder = builder.identity(std::fs::read(cert)?, std::fs::read(key)?);
    }
    Ok(builder.connect_lazy()?)
}

/// Prints a value as JSON, or as `key  value` lines.
fn show<T: Serialize>(json: bool, value: &T) -> Result<(), Failure> {
    let value = serde_json::to_value(value).map_err(|e| failure(1, e.to_string()))?;
    if json {
        println!("{value}");
        return Ok(());
    }
    let serde_json::Value::Object(map) = value else {
        println!("{value}");
        return Ok(());
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (key, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        };
        println!("{key:<width$}  {text}");
    }
    Ok(())
}

/// A number as printed: grouped in tables (`2345 6789 0123`), compact in JSON.
fn shown_number(json: bool, number: huduma_sdk::HudumaNumber) -> String {
    if json { number.compact() } else { number.to_string() }
}

#[derive(Serialize)]
struct Issued {
    huduma_number: String,
    request_id: String,
    receipt: huduma_sdk::Receipt,
}

#[derive(Serialize)]
struct Done {
    request_id: String,
    receipt: huduma_sdk::Receipt,
}

#[derive(Serialize)]
struct Shown {
    huduma_number: Option<String>,
    status: huduma_sdk::Status,
    superseded_by: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    other_names: Option<String>,
    date_of_birth: Option<String>,
    sex: Option<Sex>,
    place_of_birth: Option<String>,
    date_of_death: Option<String>,
    agency_token: Option<String>,
    agency_records: String,
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    let id = |given: Option<String>| given.unwrap_or_else(new_request_id);
    match cli.command {
        Cmd::Number { command: NumberCmd::Check { number } } => match huduma_sdk::check_number(&number) {
            Ok(n) => {
                println!("valid: {n}");
                Ok(())
            }
            Err(e) => Err(failure(3, format!("invalid Huduma number {number:?}: {e}"))),
        },
        Cmd::Register { person, file, out, concurrency, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            match file {
                Some(file) => bulk_register(&client, &file, out, concurrency, &centre).await,
                None => {
                    let demographics = person.demographics()?;
                    let request_id = id(request_id);
                    let (number, receipt) = client.register_person(&request_id, &demographics, &centre).await?;
                    show(json, &Issued { huduma_number: shown_number(json, number), request_id, receipt })
                }
            }
        }
        Cmd::Replace { number, reason, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let (number, receipt) = client.replace_number(&request_id, &number, reason, &centre).await?;
            show(json, &Issued { huduma_number: shown_number(json, number), request_id, receipt })
        }
        Cmd::Link { number, agency, record, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt =
                client.link_agency_record(&request_id, &number, &AgencyRecord::new(agency, record), &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Unlink { number, agency, record, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt =
                client.unlink_agency_record(&request_id, &number, &AgencyRecord::new(agency, record), &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Death { number, date, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.record_death(&request_id, &number, &date, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Revoke { number, reason, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.revoke_number(&request_id, &number, &reason, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Reinstate { number, reason, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.reinstate_number(&request_id, &number, &reason, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Resolve { number, agency, record, purpose } => {
            let client = connect(&cli.connection).await?;
            let found = match (number, agency, record) {
                (Some(number), _, _) => client.resolve_number(&number, &purpose).await?,
                (None, Some(agency), Some(record)) => {
                    client.resolve(AgencyRecord::new(agency, record), &purpose).await?
                }
                _ => return Err(failure(2, "resolve needs a NUMBER, or --agency and --record")),
            };
            if json {
                return show(true, &found);
            }
            let d = found.demographics.as_ref();
            show(
                false,
                &Shown {
                    huduma_number: found.number.map(|n| n.to_string()),
                    status: found.status,
                    superseded_by: found.superseded_by.map(|n| n.to_string()),
                    given_name: d.and_then(|d| d.given_name.clone()),
                    family_name: d.and_then(|d| d.family_name.clone()),
                    other_names: d.map(|d| d.other_names.join(" ")).filter(|o| !o.is_empty()),
                    date_of_birth: d.and_then(|d| d.date_of_birth.clone()),
                    sex: d.and_then(|d| d.sex),
                    place_of_birth: d.and_then(|d| d.place_of_birth.clone()),
                    date_of_death: found.date_of_death.clone(),
                    agency_token: found.agency_token.clone(),
                    agency_records: found
                        .agency_records
                        .iter()
                        .map(|r| format!("{}/{}", r.agency, r.record_id))
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            )
        }
        Cmd::Watch { from, limit } => {
            let client = connect(&cli.connection).await?;
            let mut changes = client.watch_changes(from);
            let mut seen = 0u64;
            while let Some(change) = changes.next().await {
                let change = change?;
                if json {
                    show(true, &change)?;
                } else {
                    println!(
                        "{:>10}  {:<22} {}  {:<10} {}",
                        change.index,
                        format!("{:?}", change.kind),
                        change
                            .number
                            .map_or_else(|| change.agency_token.clone().unwrap_or_default(), |n| n.to_string()),
                        format!("{:?}", change.status),
                        change.record_ids.join(",")
                    );
                }
                std::io::stdout().flush()?;
                seen += 1;
                if limit.is_some_and(|l| seen >= l) {
                    break;
                }
            }
            Ok(())
        }
        Cmd::Audit { command } => {
            let client = connect(&cli.connection).await?;
            match command {
                AuditCmd::Keys => show(json, &client.verifier_keys().await?),
                AuditCmd::Records { out, end } => download_records(&client, &out, end).await,
                AuditCmd::Verify { from, checkpoint, genesis_key, state } => {
                    let (from, checkpoint, state) = (from.as_deref(), checkpoint.as_deref(), state.as_deref());
                    audit::verify(&client, from, genesis_key, checkpoint, state, json).await
                }
                AuditCmd::Prove { index } => audit::prove(&client, index, json).await,
            }
        }
    }
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    let template = format!("{what} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
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
async fn bulk_register(
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

/// Downloads records into `out` (export format), continuing after the complete records
/// it already holds.
async fn download_records(client: &Client, out: &Path, end: u64) -> Result<(), Failure> {
    let held = audit::read_export(out).unwrap_or_default();
    // Drop a torn last frame, if a previous run was cut off mid-write.
    let complete: u64 = held.iter().map(|r| 4 + r.len() as u64).sum();
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(out) {
        f.set_len(complete)?;
    }
    let start = held.len() as u64;
    let keys = client.verifier_keys().await?;
    let end = if end == 0 { keys.log_size } else { end };
    let progress = bar(end, "download");
    progress.set_position(start);
    let mut file = std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(out)?);
    if start < end {
        let mut records = client.get_records(start, end).await?;
        while let Some(record) = records.next().await {
            let record = record?;
            let len = u32::try_from(record.data.len()).map_err(|_| failure(8, "a record over 4 GiB"))?;
            file.write_all(&len.to_be_bytes())?;
            file.write_all(&record.data)?;
            progress.inc(1);
        }
    }
    file.flush()?;
    progress.finish_and_clear();
    eprintln!("{end} records in {} ({} downloaded now)", out.display(), end.saturating_sub(start));
    Ok(())
}

mod audit {
    //! `huduma audit verify`: the chain, signatures and keys, and that the records
    //! produce the root the registry signed; from a file or a download; resumable
    //! through a state file that keeps the last verified checkpoint, from which each
    //! run proves consistency to the new one.

    use std::path::Path;

    use huduma_log::VerifyingKey;
    use huduma_log::chain::ChainVerifier;
    use huduma_log::keys::{note_verifier_key, parse_note_verifier_key};
    use huduma_log::merkle::{Frontier, Hash, leaf_hash};
    use huduma_sdk::Client;
    use huduma_sdk::receipt::{Checkpoint, open_checkpoint, verify_consistency};
    use serde::{Deserialize, Serialize};
    use tokio_stream::StreamExt;

    use super::{Failure, bar, failure, show};

    /// What a previous run verified.
    #[derive(Serialize, Deserialize)]
    struct State {
        origin: String,
        size: u64,
        head_hash: String,
        last_time: i64,
        keys: Vec<String>,
        /// The tree's right edge at `size`: (level, hex hash), largest first.
        tree_edge: Vec<(u8, String)>,
        /// The last checkpoint verified (a signed note), if any.
        checkpoint: Option<String>,
    }

    /// The records of an export file (u32 BE length + bytes); a torn last frame is left out.
    pub fn read_export(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
        let bytes = std::fs::read(path)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while at + 4 <= bytes.len() {
            let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
            let Some(end) = at.checked_add(4 + len).filter(|e| *e <= bytes.len()) else { break };
            records.push(bytes[at + 4..end].to_vec());
            at = end;
        }
        Ok(records)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Option<Hash> {
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        bytes.try_into().ok()
    }

    /// The size a note claims, before its signature can be checked (its key may be one
    /// the chain has not reached yet).
    fn claimed_size(note: &str) -> Result<u64, Failure> {
        note.lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| failure(8, "the checkpoint has no tree size line"))
    }

    #[derive(Serialize)]
    struct Verified {
        origin: String,
        records: u64,
        head_hash: String,
        tree_root: String,
        checkpoint_size: Option<u64>,
        keys: Vec<String>,
        resumed_from: u64,
    }

    pub async fn verify(
        client: &Client,
        from: Option<&Path>,
        genesis_key: Option<String>,
        checkpoint_file: Option<&Path>,
        state_path: Option<&Path>,
        json: bool,
    ) -> Result<(), Failure> {
        let bad_key = |e: huduma_log::keys::KeyError| failure(3, format!("--genesis-key: {e}"));
        let published = genesis_key.map(|k| parse_note_verifier_key(&k)).transpose().map_err(bad_key)?;
        let state: Option<State> = match state_path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)?;
                Some(serde_json::from_str(&text).map_err(|e| failure(3, format!("{}: {e}", p.display())))?)
            }
            _ => None,
        };
        let file_records = from.map(read_export).transpose()?;
        let online = file_records.is_none();
        let (mut origin, genesis) = match (&published, &file_records) {
            (Some((name, key)), _) => (name.clone(), Some(*key)),
            (None, Some(_)) => (String::new(), None),
            (None, None) => {
                let keys = client.verifier_keys().await?;
                let first = keys.keys.first().ok_or_else(|| failure(8, "the registry publishes no key"))?;
                eprintln!(
                    "warning: trusting the registry's own genesis key; pass --genesis-key to trust the published one"
                );
                let (_, key) = parse_note_verifier_key(&first.verifier_key)
                    .map_err(|e| failure(8, format!("the registry's key: {e}")))?;
                (keys.origin, Some(key))
            }
        };
        if origin.is_empty()
            && let Some(s) = &state
        {
            origin = s.origin.clone();
        }
        // The checkpoint to verify up to: the registry's newest, or the one given.
        let note = match (checkpoint_file, online) {
            (Some(path), _) => Some(std::fs::read_to_string(path)?),
            (None, true) => Some(client.checkpoint(0).await?),
            (None, false) => None,
        };
        let target = match (&note, &file_records) {
            (Some(note), _) => claimed_size(note)?,
            (None, Some(records)) => records.len() as u64,
            (None, None) => 0,
        };
        let (mut verifier, mut tree) = match &state {
            Some(s) => {
                let keys: Vec<VerifyingKey> = s
                    .keys
                    .iter()
                    .map(|k| parse_note_verifier_key(k).map(|(_, key)| key))
                    .collect::<Result<_, _>>()
                    .map_err(|e| failure(3, format!("state keys: {e}")))?;
                if let (Some(g), Some(first)) = (genesis, keys.first())
                    && g != *first
                {
                    return Err(failure(8, "the state file starts from another genesis key"));
                }
                let head = unhex(&s.head_hash).ok_or_else(|| failure(3, "state head_hash is not 32 bytes of hex"))?;
                let edge: Option<Vec<(u8, Hash)>> =
                    s.tree_edge.iter().map(|(l, h)| unhex(h).map(|h| (*l, h))).collect();
                let tree = edge
                    .and_then(|edge| Frontier::from_edge(s.size, edge))
                    .ok_or_else(|| failure(3, "state tree_edge does not fit its size"))?;
                (ChainVerifier::resume(s.size, head, s.last_time, keys), tree)
            }
            None => (ChainVerifier::new(genesis), Frontier::new()),
        };
        let resumed_from = verifier.next_seq();
        if target < resumed_from {
            return Err(failure(
                8,
                format!(
                    "the log offered ends at {target}, before the {resumed_from} records verified before (rolled back)"
                ),
            ));
        }
        // The record before the resume point must still be the one verified then: a
        // registry that rewrote or forked history behind the state is caught here.
        if let Some(s) = &state
            && s.size > 0
        {
            let previous = match &file_records {
                Some(records) => records.get((s.size - 1) as usize).cloned(),
                None => {
                    let mut stream = client.get_records(s.size - 1, s.size).await?;
                    stream.next().await.transpose()?.map(|r| r.data)
                }
            };
            let previous =
                previous.ok_or_else(|| failure(8, format!("record {}: missing (the log shrank)", s.size - 1)))?;
            if hex(&huduma_log::record::hash(&previous)) != s.head_hash {
                return Err(failure(
                    8,
                    format!(
                        "record {}: differs from the one verified before (history was rewritten or forked)",
                        s.size - 1
                    ),
                ));
            }
        }
        let chain_failure = |e: huduma_log::chain::ChainError| failure(8, format!("verification failed: {e}"));
        let progress = bar(target, "verify");
        progress.set_position(resumed_from);
        match &file_records {
            Some(records) => {
                for record in records.iter().take(target as usize).skip(resumed_from as usize) {
                    verifier.push(record).map_err(chain_failure)?;
                    tree.push(leaf_hash(record));
                    progress.inc(1);
                }
                if (records.len() as u64) < target {
                    return Err(failure(
                        8,
                        format!("record {}: missing (the checkpoint covers {target})", records.len()),
                    ));
                }
            }
            None => {
                if resumed_from < target {
                    let mut stream = client.get_records(resumed_from, target).await?;
                    while let Some(record) = stream.next().await {
                        let record = record?;
                        verifier.push(&record.data).map_err(chain_failure)?;
                        tree.push(leaf_hash(&record.data));
                        progress.inc(1);
                    }
                }
            }
        }
        progress.finish_and_clear();
        let last_time = verifier.last_time();
        let summary = verifier.finish().map_err(chain_failure)?;
        if summary.records != target {
            return Err(failure(8, format!("record {}: missing (expected {target} records)", summary.records)));
        }
        // The records must produce the root the registry signed, and the last
        // checkpoint verified must be a prefix of this one.
        let checkpoint = match &note {
            Some(note) => {
                let checkpoint = open_checkpoint(note, &origin, &summary.keys)?;
                if checkpoint.root != tree.root() {
                    return Err(failure(
                        8,
                        format!("checkpoint {}: the records do not produce the root it signs", checkpoint.size),
                    ));
                }
                if let Some(old_note) = state.as_ref().and_then(|s| s.checkpoint.as_ref()) {
                    let old = open_checkpoint(old_note, &origin, &summary.keys)?;
                    let proof = if online {
                        client.consistency_proof(old.size, checkpoint.size).await?
                    } else {
                        // Offline the records are all here: recompute the old root instead.
                        let records = file_records.as_deref().unwrap_or_default();
                        let mut prefix = Frontier::new();
                        records.iter().take(old.size as usize).for_each(|r| drop(prefix.push(leaf_hash(r))));
                        if prefix.root() != old.root {
                            return Err(failure(8, format!("checkpoint {}: the log was forked behind it", old.size)));
                        }
                        Vec::new()
                    };
                    if online {
                        verify_consistency(&old, &checkpoint, &proof)?;
                    }
                }
                Some(checkpoint)
            }
            None => None,
        };
        let keys: Vec<String> = summary.keys.iter().map(|k| note_verifier_key(&origin, k)).collect();
        if let Some(p) = state_path {
            let next = State {
                origin: origin.clone(),
                size: summary.records,
                head_hash: hex(&summary.head_hash),
                last_time,
                keys: keys.clone(),
                tree_edge: tree.edge().iter().map(|(l, h)| (*l, hex(h))).collect(),
                checkpoint: note.clone().or_else(|| state.as_ref().and_then(|s| s.checkpoint.clone())),
            };
            let text = serde_json::to_string_pretty(&next).map_err(|e| failure(1, e.to_string()))?;
            std::fs::write(p, text)?;
        }
        show(
            json,
            &Verified {
                origin,
                records: summary.records,
                head_hash: hex(&summary.head_hash),
                tree_root: hex(&tree.root()),
                checkpoint_size: checkpoint.map(|c: Checkpoint| c.size),
                keys,
                resumed_from,
            },
        )
    }

    /// `huduma audit prove --index N`: the record's inclusion in the newest checkpoint.
    pub async fn prove(client: &Client, index: u64, json: bool) -> Result<(), Failure> {
        let keys = client.verifier_keys().await?;
        let public = huduma_sdk::receipt::parse_keys(&keys)?;
        let note = client.checkpoint(0).await?;
        let checkpoint = open_checkpoint(&note, &keys.origin, &public)?;
        let mut records = client.get_records(index, index + 1).await?;
        let record =
            records.next().await.transpose()?.ok_or_else(|| failure(4, format!("record {index}: not in the log")))?;
        let proof = client.inclusion_proof(index, checkpoint.size).await?;
        huduma_sdk::receipt::verify_inclusion(&checkpoint, index, &record.data, &proof)?;
        #[derive(Serialize)]
        struct Proved {
            index: u64,
            checkpoint_size: u64,
            tree_root: String,
            proof_hashes: usize,
        }
        show(
            json,
            &Proved {
                index,
                checkpoint_size: checkpoint.size,
                tree_root: hex(&checkpoint.root),
                proof_hashes: proof.len(),
            },
        )
    }
}
