//! `huduma`: the registrar's, agency's and auditor's CLI, built on the SDK.
//!
//! Exit codes: 0 ok; 2 usage; 3 invalid input; 4 not found; 5 refused (the person's
//! state forbids it, or it already exists); 6 not allowed (unauthenticated or
//! permission denied); 7 unavailable (after retries); 8 verification failed; 1 other.

mod audit;
mod bulk;

use std::io::Write;
use std::path::PathBuf;
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
                Some(file) => bulk::bulk_register(&client, &file, out, concurrency, &centre).await,
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
                AuditCmd::Records { out, end } => audit::download_records(&client, &out, end).await,
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
