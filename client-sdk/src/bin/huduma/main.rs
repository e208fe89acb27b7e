//! `huduma`: the registrar's, agency's and auditor's CLI, built on the SDK.
//!
//! Exit codes: 0 ok; 2 usage; 3 invalid input; 4 not found; 5 refused (the person's
//! state forbids it, it already exists, or a registration is a possible duplicate); 6
//! not allowed (unauthenticated or permission denied); 7 unavailable, or over the
//! caller's call rate (after retries); 8 verification failed; 1 other.

mod audit;
mod bulk;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use huduma_sdk::{
    AgencyRecord, BackupProgress, Client, Demographics, Error, Log, ReplacementReason, Sex, new_request_id,
};
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
    /// The demographics, or the first missing flag (`command` names the subcommand, and
    /// `or` what could stand instead, in the error).
    fn demographics(self, command: &str, or: &str) -> Result<Demographics, Failure> {
        let missing = |flag: &str| failure(2, format!("{command}: --{flag} is required{or}"));
        Ok(Demographics {
            given_name: self.given.ok_or_else(|| missing("given"))?,
            family_name: self.family.ok_or_else(|| missing("family"))?,
            other_names: self.other,
            date_of_birth: self.dob.ok_or_else(|| missing("dob"))?,
            sex: self.sex.ok_or_else(|| missing("sex"))?,
            place_of_birth: self.place.ok_or_else(|| missing("place"))?,
        })
    }

    /// The attributes claimed: those given, and no others.
    fn claim(self) -> huduma_sdk::Claim {
        huduma_sdk::Claim {
            given_name: self.given,
            family_name: self.family,
            other_names: self.other,
            date_of_birth: self.dob,
            sex: self.sex,
            place_of_birth: self.place,
        }
    }
}

/// An agency record linked to or unlinked from a person.
#[derive(Args)]
struct LinkArgs {
    number: String,
    #[arg(long)]
    agency: String,
    #[arg(long)]
    record: String,
    #[arg(long, default_value = "")]
    centre: String,
    #[arg(long)]
    request_id: Option<String>,
}

/// A number's state changed for a stated reason (revoked, reinstated, a death
/// retracted).
#[derive(Args)]
struct ReasonArgs {
    number: String,
    #[arg(long)]
    reason: String,
    #[arg(long)]
    centre: String,
    #[arg(long)]
    request_id: Option<String>,
}

/// Whom a look-up names: a number, an agency's record, or the calling agency's token.
#[derive(Args)]
struct PersonKey {
    #[arg(required_unless_present_any = ["record", "agency_token"], conflicts_with_all = ["record", "agency_token"])]
    number: Option<String>,
    #[arg(long, requires = "record")]
    agency: Option<String>,
    #[arg(long, requires = "agency", conflicts_with = "agency_token")]
    record: Option<String>,
    /// Your agency's token for the person (an earlier answer's `agency_token`).
    #[arg(long)]
    agency_token: Option<String>,
}

impl PersonKey {
    /// The key, a number checked offline first.
    fn key(self) -> Result<huduma_sdk::ResolveKey, Failure> {
        match (self.number, self.agency, self.record, self.agency_token) {
            (Some(number), ..) => Ok(number.parse::<huduma_sdk::HudumaNumber>().map_err(Error::from)?.into()),
            (None, Some(agency), Some(record), _) => Ok(AgencyRecord::new(agency, record).into()),
            (None, _, _, Some(token)) => Ok(huduma_sdk::ResolveKey::AgencyToken(token)),
            _ => Err(failure(2, "name the person by a NUMBER, --agency and --record, or --agency-token")),
        }
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
        /// Register although the duplicate search refused it, saying why this is another
        /// person (recorded in the log with the candidates overridden). Not for a bulk
        /// file: each line it refused is looked at, and registered so, one at a time.
        #[arg(long, value_name = "JUSTIFICATION", conflicts_with = "file")]
        override_duplicate: Option<String>,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The registered persons most like these demographics, best first (each one found
    /// is recorded in their access log).
    Duplicates {
        #[command(flatten)]
        person: Person,
        /// At most this many (1-50).
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Leave out the person with this number: what correcting their demographics
        /// to these would be refused for.
        #[arg(long, value_name = "NUMBER")]
        excluding: Option<String>,
    },
    /// Correct a person's demographics: give all of them, as they should read. The
    /// corrected person is searched for among everyone else, as a registration is.
    Correct {
        number: String,
        #[command(flatten)]
        person: Person,
        /// Correct although the duplicate search refused it, saying why the person is
        /// not those found (recorded in the log with the candidates overridden).
        #[arg(long, value_name = "JUSTIFICATION")]
        override_duplicate: Option<String>,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Merge a duplicate enrolment into the person it duplicates: the duplicate's
    /// number then resolves as merged, to the survivor's.
    Merge {
        /// The number of the enrolment that stays.
        #[arg(long)]
        survivor: String,
        /// The number of the duplicate enrolment.
        #[arg(long)]
        duplicate: String,
        /// Why the two are one person (recorded in the log).
        #[arg(long)]
        justification: String,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Undo a mistaken merge: the duplicate's number resolves active again, with the
    /// agency records the merge moved that the survivor still holds.
    Unmerge {
        /// The number of the person merged by mistake.
        #[arg(long)]
        duplicate: String,
        /// Why they are two persons (recorded in the log).
        #[arg(long)]
        justification: String,
        #[arg(long)]
        centre: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Erase a person's personal data (admins): their data key is destroyed; the log
    /// still verifies, and the number resolves as erased.
    Erase {
        number: String,
        /// The law or order the erasure is made under (recorded in the log).
        #[arg(long)]
        legal_basis: String,
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
    Link(LinkArgs),
    /// Unlink an agency's record from a person.
    Unlink(LinkArgs),
    /// Resolve a number, an agency record (--agency and --record), or your agency's token
    /// for a person (--agency-token).
    Resolve {
        #[command(flatten)]
        person: PersonKey,
        /// Why you are looking this person up (required; recorded).
        #[arg(long)]
        purpose: String,
    },
    /// Ask whether the attributes claimed (the flags given) hold for a person, named as
    /// `resolve` names them, learning nothing else.
    VerifyAttributes {
        #[command(flatten)]
        person: PersonKey,
        #[command(flatten)]
        claim: Person,
        /// Why you are asking (required; recorded).
        #[arg(long)]
        purpose: String,
    },
    /// Resolve every line of a file (an agency's reconciliation): Huduma numbers, or with
    /// --agency that agency's record ids; a CSV row a line (number, status, the number in
    /// force, date of death, your token), resumable: rerun the same command.
    Reconcile {
        /// One key a line (a first line `huduma_number`, `record_id` or `key` is a header).
        #[arg(long)]
        file: PathBuf,
        /// The lines are this agency's record ids.
        #[arg(long)]
        agency: Option<String>,
        /// Why you are looking these persons up (required; recorded for each).
        #[arg(long)]
        purpose: String,
        /// Where results go; default FILE.results.csv.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Calls in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Have the running registry take a backup (admins): each log copied up to its
    /// newest signed checkpoint, with the keyring and the request index, into NAME under
    /// the server's backup_dir, and the projections folded in the copy, so that it opens
    /// as a data directory. Shows progress; prints what was taken.
    Backup {
        /// The backup's directory under backup_dir (A-Z a-z 0-9 . _ -); must be new.
        name: String,
    },
    /// What changed a person, oldest first: each record's event, when, who, through
    /// where and why (registrars, admins, citizen portals; recorded in their access list).
    History {
        number: String,
        /// Why you are looking (recorded in the person's access list).
        #[arg(long)]
        purpose: String,
    },
    /// Who looked a person up, newest first (citizen portals; admins also see which official).
    Accesses {
        number: String,
        /// Only look-ups at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Look-ups a page (0: the registry's default of 50).
        #[arg(long, default_value_t = 0)]
        page_size: u32,
        /// Continue from a page's `next_page_token`.
        #[arg(long, conflicts_with = "all")]
        page_token: Option<String>,
        /// Every page, to the oldest look-up.
        #[arg(long)]
        all: bool,
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
    /// Withdraw a death recorded in error: the person resolves again as they were
    /// before it (active, or revoked).
    RetractDeath(ReasonArgs),
    /// Revoke a number.
    Revoke(ReasonArgs),
    /// Reinstate a revoked number.
    Reinstate(ReasonArgs),
    /// Auditors: the log's records, keys, and its verification.
    Audit {
        /// Which log: the identity log, or the access log (every look-up of a person).
        #[arg(long, value_enum, default_value = "identity")]
        log: audit::LogName,
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
        /// The identity log's published genesis verifier key; without it the registry's
        /// first key is trusted.
        #[arg(long)]
        genesis_key: Option<String>,
        /// The access log (--log access): the state file of a verification of the identity
        /// log, whose keys, verified from its genesis key, sign the access log's
        /// checkpoints; without it the keys the registry publishes are trusted.
        #[arg(long)]
        keys_from: Option<PathBuf>,
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Print a signed checkpoint (a C2SP note): the newest, or the one at --size. Save it
    /// to verify an export offline (`audit verify --from --checkpoint`).
    Checkpoint {
        #[arg(long, default_value_t = 0)]
        size: u64,
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
            Error::FailedPrecondition(_)
            | Error::PossibleDuplicate { .. }
            | Error::AlreadyExists(_)
            | Error::OutOfRange(_) => 5,
            Error::Unauthenticated(_) | Error::PermissionDenied(_) => 6,
            Error::Unavailable(_)
            | Error::DeadlineExceeded(_)
            | Error::ResourceExhausted { .. }
            | Error::Transport(_) => 7,
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
    /// Said only when the registry holds personal data no key opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    personal_data: Option<&'static str>,
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
        Cmd::Register { person, file, out, concurrency, override_duplicate, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            match file {
                Some(file) => bulk::bulk_register(&client, &file, out, concurrency, &centre).await,
                None => {
                    let demographics = person.demographics("register", " (or --file for a bulk file)")?;
                    let request_id = id(request_id);
                    let registered = match &override_duplicate {
                        None => client.register_person(&request_id, &demographics, &centre).await,
                        Some(why) => client.register_person_overriding(&request_id, &demographics, &centre, why).await,
                    };
                    let (number, receipt) = registered.map_err(duplicate_refusal)?;
                    show(json, &Issued { huduma_number: shown_number(json, number), request_id, receipt })
                }
            }
        }
        Cmd::Duplicates { person, limit, excluding } => {
            let demographics = person.demographics("duplicates", "")?;
            if let Some(number) = &excluding {
                huduma_sdk::check_number(number)
                    .map_err(|e| failure(3, format!("--excluding: invalid Huduma number {number:?}: {e}")))?;
            }
            let client = connect(&cli.connection).await?;
            let found = match &excluding {
                None => client.find_duplicates(&demographics, limit).await?,
                Some(number) => client.find_duplicates_excluding(&demographics, limit, number).await?,
            };
            show_candidates(json, &found)
        }
        Cmd::Correct { number, person, override_duplicate, centre, request_id } => {
            let demographics = person.demographics("correct", "")?;
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let corrected = match &override_duplicate {
                None => client.correct_demographics(&request_id, &number, &demographics, &centre).await,
                Some(why) => {
                    client.correct_demographics_overriding(&request_id, &number, &demographics, &centre, why).await
                }
            };
            let receipt = corrected.map_err(duplicate_refusal)?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Merge { survivor, duplicate, justification, centre, request_id } => {
            // Two numbers: a typo is named by its flag, before any call.
            for (flag, number) in [("survivor", &survivor), ("duplicate", &duplicate)] {
                huduma_sdk::check_number(number)
                    .map_err(|e| failure(3, format!("--{flag}: invalid Huduma number {number:?}: {e}")))?;
            }
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.merge_records(&request_id, &survivor, &duplicate, &justification, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Unmerge { duplicate, justification, centre, request_id } => {
            huduma_sdk::check_number(&duplicate)
                .map_err(|e| failure(3, format!("--duplicate: invalid Huduma number {duplicate:?}: {e}")))?;
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.unmerge_records(&request_id, &duplicate, &justification, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Erase { number, legal_basis, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.erase_personal_data(&request_id, &number, &legal_basis).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::VerifyAttributes { person, claim, purpose } => {
            let key = person.key()?;
            let client = connect(&cli.connection).await?;
            let (status, matches) = client.verify_attributes(key, &claim.claim(), &purpose).await?;
            show_attributes(json, status, &matches)
        }
        Cmd::Reconcile { file, agency, purpose, out, concurrency } => {
            let client = connect(&cli.connection).await?;
            bulk::reconcile(&client, &file, agency.as_deref(), &purpose, out, concurrency).await
        }
        Cmd::Backup { name } => {
            let client = connect(&cli.connection).await?;
            let mut stream = client.backup(&name).await?;
            let mut shown: Option<(String, ProgressBar)> = None;
            while let Some(item) = stream.next().await {
                let (what, done, total) = match item? {
                    BackupProgress::Taken(taken) => {
                        if let Some((_, bar)) = shown.take() {
                            bar.finish_and_clear();
                        }
                        return show(json, &taken);
                    }
                    BackupProgress::Copying { log: Log::Identity, done, total } => {
                        ("copying the identity log", done, total)
                    }
                    BackupProgress::Copying { log: Log::Access, done, total } => {
                        ("copying the access log", done, total)
                    }
                    BackupProgress::Folding { done, total } => ("folding the copy's projections", done, total),
                };
                if shown.as_ref().is_none_or(|(shown, _)| shown != what) {
                    if let Some((_, bar)) = shown.take() {
                        bar.finish_and_clear();
                    }
                    shown = Some((what.to_owned(), bar(total, what)));
                }
                if let Some((_, bar)) = &shown {
                    bar.set_length(total);
                    bar.set_position(done);
                }
            }
            Err(failure(1, "the registry ended the backup without saying what it took"))
        }
        Cmd::History { number, purpose } => {
            let client = connect(&cli.connection).await?;
            show_history(json, &client.history(&number, &purpose).await?)
        }
        Cmd::Accesses { number, since, page_size, page_token, all } => {
            let client = connect(&cli.connection).await?;
            let mut token = page_token;
            loop {
                let page = client.list_accesses(&number, since.as_deref(), page_size, token.as_deref()).await?;
                show_accesses(json, &page)?;
                token = page.next_page_token;
                if !all || token.is_none() {
                    return Ok(());
                }
            }
        }
        Cmd::Replace { number, reason, centre, request_id } => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let (number, receipt) = client.replace_number(&request_id, &number, reason, &centre).await?;
            show(json, &Issued { huduma_number: shown_number(json, number), request_id, receipt })
        }
        Cmd::Link(LinkArgs { number, agency, record, centre, request_id }) => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt =
                client.link_agency_record(&request_id, &number, &AgencyRecord::new(agency, record), &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Unlink(LinkArgs { number, agency, record, centre, request_id }) => {
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
        Cmd::RetractDeath(ReasonArgs { number, reason, centre, request_id }) => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.retract_death(&request_id, &number, &reason, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Revoke(ReasonArgs { number, reason, centre, request_id }) => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.revoke_number(&request_id, &number, &reason, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Reinstate(ReasonArgs { number, reason, centre, request_id }) => {
            let client = connect(&cli.connection).await?;
            let request_id = id(request_id);
            let receipt = client.reinstate_number(&request_id, &number, &reason, &centre).await?;
            show(json, &Done { request_id, receipt })
        }
        Cmd::Resolve { person, purpose } => {
            let key = person.key()?;
            let client = connect(&cli.connection).await?;
            let found = client.resolve(key, &purpose).await?;
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
                    personal_data: found.personal_data_lost.then_some(
                        "lost with a data directory restored from a backup: enrol it again with `huduma correct` (every field)",
                    ),
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
        Cmd::Audit { log, command } => {
            let client = connect(&cli.connection).await?;
            match command {
                AuditCmd::Keys => show(json, &audit::on(&client, log).verifier_keys().await?),
                AuditCmd::Records { out, end } => audit::download_records(&audit::on(&client, log), &out, end).await,
                AuditCmd::Verify { from, checkpoint, genesis_key, keys_from, state } => {
                    if log == audit::LogName::Access && genesis_key.is_some() {
                        return Err(failure(
                            2,
                            "--genesis-key is the identity log's; the access log's checkpoints are signed by the \
                             identity log's keys: pass --keys-from with the state file of its verification",
                        ));
                    }
                    if log == audit::LogName::Identity && keys_from.is_some() {
                        return Err(failure(2, "--keys-from is for --log access"));
                    }
                    let sources = audit::Sources {
                        log,
                        from: from.as_deref(),
                        checkpoint: checkpoint.as_deref(),
                        genesis_key,
                        keys_from: keys_from.as_deref(),
                        state: state.as_deref(),
                    };
                    audit::verify(&client, sources, json).await
                }
                AuditCmd::Prove { index } => audit::prove(&audit::on(&client, log), index, json).await,
                AuditCmd::Checkpoint { size } => {
                    let note = audit::on(&client, log).checkpoint(size).await?;
                    if json {
                        show(true, &serde_json::json!({ "note": note }))
                    } else {
                        print!("{note}");
                        Ok(())
                    }
                }
            }
        }
    }
}

/// A duplicate candidate as printed.
#[derive(Serialize)]
struct Candidate {
    huduma_number: String,
    /// Out of 28.
    score: f64,
    /// Whether a registration scoring this is refused.
    above_threshold: bool,
}

/// A refusal for likely duplicates (of a registration or a correction), naming them
/// and how to go on; any other error as it is.
fn duplicate_refusal(e: Error) -> Failure {
    match e {
        Error::PossibleDuplicate { candidates, .. } => {
            let like: Vec<String> = candidates
                .iter()
                .map(|c| format!("{} (score {:.2})", c.number, f64::from(c.score_centi) / 100.0))
                .collect();
            let message = format!(
                "refused: a possible duplicate of {}\nif this is another person, run the command again with \
                 --override-duplicate \"<why this is another person>\"",
                like.join(", ")
            );
            Failure { code: 5, message }
        }
        e => e.into(),
    }
}

/// The candidates a duplicate search found: JSON, or a line each (best first).
fn show_candidates(json: bool, found: &[huduma_sdk::DuplicateCandidate]) -> Result<(), Failure> {
    let candidates: Vec<Candidate> = found
        .iter()
        .map(|c| Candidate {
            huduma_number: shown_number(json, c.number),
            score: f64::from(c.score_centi) / 100.0,
            above_threshold: c.above_threshold,
        })
        .collect();
    if json {
        return show(true, &candidates);
    }
    if candidates.is_empty() {
        println!("no registered person is like these demographics");
    }
    for c in candidates {
        let refused = if c.above_threshold { "a registration would be refused" } else { "" };
        println!("{}  {:>5.2}  {refused}", c.huduma_number, c.score);
    }
    Ok(())
}

/// What a verification of attributes answered: JSON, or `key  value` lines.
fn show_attributes(json: bool, status: huduma_sdk::Status, matches: &[(String, bool)]) -> Result<(), Failure> {
    #[derive(Serialize)]
    struct Verified<'a> {
        status: huduma_sdk::Status,
        attributes: BTreeMap<&'a str, bool>,
    }
    let attributes = matches.iter().map(|(attribute, holds)| (attribute.as_str(), *holds)).collect();
    if json {
        return show(true, &Verified { status, attributes });
    }
    let width = matches.iter().map(|(attribute, _)| attribute.len()).max().unwrap_or(0).max("status".len());
    println!("{:<width$}  {status:?}", "status");
    for (attribute, holds) in matches {
        println!("{attribute:<width$}  {}", if *holds { "yes" } else { "no" });
    }
    Ok(())
}

/// A page of a person's look-ups: JSON (one object a page), or a line each, newest
/// first, and how to ask for the next page.
fn show_history(json: bool, history: &huduma_sdk::History) -> Result<(), Failure> {
    if json {
        return show(true, history);
    }
    println!("{} {:?}", history.current_number, history.status);
    for e in &history.entries {
        let why = if e.detail.is_empty() { String::new() } else { format!("  \"{}\"", e.detail) };
        let by = if e.principal.is_empty() { String::new() } else { format!("{} ", e.principal) };
        println!("{:>8}  {}  {:<22} {by}via {}  {}{why}", e.index, e.time, e.event, e.via, e.numbers.join(","));
    }
    Ok(())
}

fn show_accesses(json: bool, page: &huduma_sdk::AccessPage) -> Result<(), Failure> {
    if json {
        return show(true, page);
    }
    if page.accesses.is_empty() {
        println!("no look-ups of this person recorded (in the time asked)");
    }
    for a in &page.accesses {
        if !a.readable {
            println!("{:>8}  {}  (details erased with the person's data)", a.index, a.time);
            continue;
        }
        let call = a.call.map_or_else(|| "?".to_string(), |c| format!("{c:?}"));
        // A citizen portal is not shown which official: the agency (or the role) stands.
        let who = match (a.agency.is_empty(), a.principal.is_empty()) {
            (true, true) => "the registry".to_string(),
            (true, false) => a.principal.clone(),
            (false, true) => a.agency.clone(),
            (false, false) => format!("{}/{}", a.agency, a.principal),
        };
        let by =
            if a.key_agency.is_empty() { a.key_kind.clone() } else { format!("{} ({})", a.key_kind, a.key_agency) };
        let status = a.status.map_or_else(String::new, |s| format!("{s:?}"));
        let attributes: Vec<String> = a
            .attributes
            .iter()
            .map(|(attribute, holds)| format!("{attribute}={}", if *holds { "yes" } else { "no" }))
            .collect();
        println!(
            "{:>8}  {}  {call:<16} {who} ({})  purpose: {}  by {by}  {status} {}",
            a.index,
            a.time,
            a.role,
            a.purpose,
            attributes.join(",")
        );
    }
    if let Some(token) = &page.next_page_token {
        eprintln!("more: --page-token {token}");
    }
    Ok(())
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
