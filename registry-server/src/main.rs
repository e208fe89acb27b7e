//! `huduma-registry`: the operator's binary. Serves the registry over gRPC, initialises
//! a development configuration, generates keys, verifies and rebuilds the store,
//! rotates the log key, exports the log for auditors, and drives a synthetic load.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use registry_core::event::Actor;
use registry_core::keys::{LogKey, note_verifier_key, parse_note_verifier_key};
use registry_core::replay::{Reached, Recovery};
use registry_server::config::{Loaded, ensure_dev_config, write_log_key};
use registry_server::operator;

/// mimalloc rather than glibc's malloc: the fold, the comparison of projections and the
/// sled store allocate small buffers by the million (see BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "huduma-registry", version, about = "The Huduma Registry: operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Prints to stdout, ignoring failure: a server must not die because whoever started
/// it closed its end of the pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// As `say!`, to stderr.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Where a development configuration is created when none is given.
const DEV_DIR: &str = "huduma-data";

#[derive(Subcommand)]
enum Cmd {
    /// Serve the registry over gRPC until SIGTERM or Ctrl-C (which drain in-flight
    /// calls, flush and exit 0). SIGHUP reads the config again and puts its
    /// [[principals]] and [[agencies]] in force (a config that does not check is
    /// refused, and what is in force stays). Without --config, uses (creating it on
    /// first run) a development configuration in ./huduma-data and prints its tokens.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a config as `serve` (and a SIGHUP reload) would, without serving: every
    /// field, and that the master secret and the log key it names can be read. Exits 1
    /// naming what is wrong; prints what it holds otherwise.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Create a development configuration (config with a principal of each role, log
    /// key, master secret, data dir) in DIR if there is none, open the registry once,
    /// and print how to use it.
    Init {
        #[arg(long, default_value = DEV_DIR)]
        dir: PathBuf,
    },
    /// Generate a log key file (C2SP signed-note private key) and print its verifier key.
    /// With --config, writes the key the config names (keys.log_key, named after
    /// server.origin); it never overwrites a key.
    Keygen {
        #[arg(long, conflicts_with = "out")]
        config: Option<PathBuf>,
        #[arg(long, required_unless_present = "config")]
        out: Option<PathBuf>,
        /// The key name: the log's origin (with --out).
        #[arg(long, default_value = "registry.huduma.go.ke/log")]
        name: String,
    },
    /// Verify the whole log (chain, signatures, key rotations) and the projections.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// The published genesis verifier key (name+hash+base64); without it the key in
        /// record 0 is trusted.
        #[arg(long)]
        genesis_key: Option<String>,
    },
    /// Rebuild the projections from the log: fold it afresh and patch what differs.
    Rebuild {
        #[arg(long)]
        config: PathBuf,
    },
    /// After restoring a backup: take back, from an export of the log (the auditors'
    /// download, `export`'s format), the records the lost data directory had appended
    /// past the backup, so that the log goes on as published and no number is issued
    /// twice. The whole export is verified first; the persons those records register
    /// keep their numbers, but their personal data is lost with its keys.
    RestoreTail {
        #[arg(long)]
        config: PathBuf,
        /// The export (u32 BE length + record, from record 0).
        #[arg(long)]
        from: PathBuf,
        /// The published genesis verifier key; without it the key in record 0 is trusted.
        #[arg(long)]
        genesis_key: Option<String>,
        /// An export of the access log (`huduma audit --log access records`), whose
        /// records past the backup are taken back too.
        #[arg(long, requires = "access_checkpoint")]
        access_from: Option<PathBuf>,
        /// The signed checkpoint of the access log that vouches for that export
        /// (`huduma audit --log access checkpoint`).
        #[arg(long, requires = "access_from")]
        access_checkpoint: Option<PathBuf>,
    },
    /// Undo a batch whose commit a crash cut short, without serving (the registry does
    /// the same when it starts).
    Recover {
        #[arg(long)]
        config: PathBuf,
    },
    /// Replace the log key with a fresh one, recorded in the log and signed by both.
    RotateKey {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = "operator")]
        principal: String,
    },
    /// Copy the data directory, at rest (stop the registry first), into a new directory,
    /// and check the copy: each log still produces its newest signed checkpoint. The
    /// master secret and the log key are not in it: back them up apart.
    Backup {
        #[arg(long)]
        config: PathBuf,
        /// A new (or empty) directory; restore by pointing `data_dir` at it, or by
        /// copying it into place.
        #[arg(long)]
        out: PathBuf,
    },
    /// Export every record (u32 BE length + record bytes) for auditors.
    Export {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Append synthetic registrations with concurrent submitters.
    Load {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Tag of this run: request ids are TAG-INDEX, so a rerun with the same tag
        /// returns the first answers instead of registering again.
        #[arg(long, default_value = "load")]
        run: String,
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Print `ack INDEX NUMBER SEQ` on stdout as each registration becomes durable.
        #[arg(long)]
        print_acks: bool,
    },
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template =
        format!("{what}{{msg}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// A progress callback that moves `bar`, its message naming the stage and, given,
/// the log (`(identity log)`, `(identity projections)`, `(projections)`).
fn follow(bar: &ProgressBar) -> impl FnMut(Option<&str>, Reached) + '_ {
    |log, Reached { stage, done, total }| {
        match log {
            Some(log) => bar.set_message(format!(" ({log} {})", stage.name())),
            None => bar.set_message(format!(" ({})", stage.name())),
        }
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// The published genesis key `--genesis-key` gives, if it does.
fn genesis(key: Option<String>) -> anyhow::Result<Option<registry_core::keys::VerifyingKey>> {
    key.map(|k| parse_note_verifier_key(&k).map(|(_, key)| key)).transpose().context("--genesis-key")
}

/// Prints an error as one readable line (with its causes) and exits 1, instead of
/// `anyhow`'s debug form, which prints a backtrace when RUST_BACKTRACE is set.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colour for a terminal only: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Cmd::Serve { config } => serve(config),
        Cmd::Init { dir } => init(&dir),
        Cmd::CheckConfig { config } => {
            let loaded = Loaded::read(&config)?;
            loaded.secrets()?;
            let key = loaded.log_key()?;
            let c = &loaded.config;
            let rated = c.principals.iter().filter(|p| p.calls_per_second.is_some()).count();
            println!("ok: {}", config.display());
            println!(
                "  serves {} (origin {}), data in {}",
                c.server.listen,
                c.server.origin,
                c.server.data_dir.display()
            );
            println!("  log key: {}", note_verifier_key(&c.server.origin, &key.public()));
            println!(
                "  {} principals ({rated} with a call rate), {} agency disclosure policies; tls: {}",
                c.principals.len(),
                c.agencies.len(),
                if c.server.tls.is_some() { "on" } else { "off" }
            );
            Ok(())
        }
        Cmd::Keygen { config, out, name } => {
            let (out, name) = match (config, out) {
                (Some(config), _) => {
                    let loaded = Loaded::read(&config)?;
                    (loaded.config.keys.log_key, loaded.config.server.origin)
                }
                (None, Some(out)) => (out, name),
                (None, None) => bail!("keygen needs --config or --out"),
            };
            if out.exists() {
                bail!(
                    "{} already exists: keygen never overwrites a key (use rotate-key to replace one)",
                    out.display()
                );
            }
            let key = LogKey::generate();
            write_log_key(&out, &name, &key)?;
            println!("wrote {}\nverifier key: {}", out.display(), note_verifier_key(&name, &key.public()));
            Ok(())
        }
        Cmd::Verify { config, genesis_key } => {
            let loaded = Loaded::read(&config)?;
            let genesis = genesis(genesis_key)?;
            let progress = bar(0, "verify");
            let mut moved = follow(&progress);
            let report = operator::verify(&loaded, genesis, &mut |log, reached| moved(Some(log), reached));
            progress.finish_and_clear();
            match report {
                Ok((report, access)) => {
                    println!(
                        "ok: {} records verified (chain, signatures, {} log key(s)); projections equal a fresh fold",
                        report.records,
                        report.keys.len()
                    );
                    println!(
                        "ok: access log: {} look-ups verified (chain, tree, {} signed checkpoint(s), per-person index)",
                        access.size, access.checkpoints
                    );
                    Ok(())
                }
                Err(e) => bail!("verification failed: {e}"),
            }
        }
        Cmd::Rebuild { config } => {
            let loaded = Loaded::read(&config)?;
            let progress = bar(0, "rebuild");
            let mut moved = follow(&progress);
            let folded = operator::rebuild(&loaded, &mut |reached| moved(None, reached))?;
            progress.finish_and_clear();
            println!("ok: projections rebuilt from {folded} records");
            Ok(())
        }
        Cmd::RestoreTail { config, from, genesis_key, access_from, access_checkpoint } => {
            let loaded = Loaded::read(&config)?;
            let genesis = genesis(genesis_key)?;
            let progress = bar(0, "restore-tail");
            let mut moved = follow(&progress);
            let access = access_from.as_deref().zip(access_checkpoint.as_deref());
            let restored =
                operator::restore_tail(&loaded, &from, genesis, access, &mut |log, reached| moved(Some(log), reached));
            progress.finish_and_clear();
            let restored = restored?;
            let imported = restored.identity;
            if imported.to == imported.from {
                println!(
                    "ok: the export holds nothing past the store's {} records; nothing to take back",
                    imported.from
                );
            } else {
                println!(
                    "ok: records {}..{} taken back from the export (verified whole) and folded into the projections",
                    imported.from, imported.to
                );
                if imported.keys_lost > 0 {
                    println!(
                        "note: {} person(s) registered in them keep their numbers, but their personal data is lost \
                         (their keys were not in the backup): correct their demographics (`huduma correct`) to enrol \
                         their data again; retried requests of theirs are answered as new",
                        imported.keys_lost
                    );
                }
            }
            if let Some(access) = restored.access {
                println!(
                    "ok: access log: records {}..{} taken back (chained, and vouched for by its signed checkpoint)",
                    access.from, access.to
                );
            }
            Ok(())
        }
        Cmd::Recover { config } => {
            let loaded = Loaded::read(&config)?;
            let progress = bar(0, "rebuild");
            let mut moved = follow(&progress);
            let recovery = operator::recover(&loaded, &mut |reached| moved(None, reached))?;
            progress.finish_and_clear();
            match recovery {
                Recovery::Nothing => println!("ok: no batch was cut short; nothing to undo"),
                Recovery::Undone { first_seq, records } => println!(
                    "ok: the batch from record {first_seq} on, cut short by a crash, is undone ({records} of its \
                     records had reached the disk; none of its commands had been answered)"
                ),
                Recovery::Rebuilt { first_seq, records } => println!(
                    "ok: the batch from record {first_seq} on, cut short by a crash, is undone and the projections \
                     rebuilt from {records} records"
                ),
            }
            Ok(())
        }
        Cmd::RotateKey { config, principal } => {
            let loaded = Loaded::read(&config)?;
            let rotation = operator::rotate_key(&loaded, Actor { principal, via: "OPERATOR".into() })?;
            println!(
                "ok: log key rotated at record {} (old key {:?})\nnew verifier key: {}",
                rotation.outcome.receipt.index, rotation.old, rotation.new_verifier_key
            );
            Ok(())
        }
        Cmd::Backup { config, out } => {
            let loaded = Loaded::read(&config)?;
            let progress = ProgressBar::new(0);
            let template = "backup [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})";
            if let Ok(style) = ProgressStyle::with_template(template) {
                progress.set_style(style);
            }
            let taken = registry_server::backup::backup(
                &loaded.config.server.data_dir,
                &out,
                loaded.secrets()?,
                &mut |done, total| {
                    progress.set_length(total);
                    progress.set_position(done);
                },
            )?;
            progress.finish_and_clear();
            println!(
                "ok: {} files ({:.1} MB) copied to {} and checked: the identity log's {} records produce its \
                 checkpoint at {}, the access log's {} records its checkpoint at {}. The master secret and the log \
                 key are not in it: keep them backed up apart.",
                taken.files,
                taken.bytes as f64 / 1e6,
                out.display(),
                taken.sizes.records,
                taken.sizes.checkpoint,
                taken.sizes.access_records,
                taken.sizes.access_checkpoint
            );
            Ok(())
        }
        Cmd::Export { config, out } => {
            let loaded = Loaded::read(&config)?;
            let count = operator::export(&loaded, &out)?;
            println!("ok: {count} records written to {}", out.display());
            Ok(())
        }
        Cmd::Load { config, count, concurrency, run, start, print_acks } => {
            let loaded = Loaded::read(&config)?;
            let registry = Arc::new(operator::open_registry(&loaded)?);
            let progress = if print_acks { ProgressBar::hidden() } else { bar(count, "load") };
            let ticker = progress.clone();
            let on_ack: operator::OnAck = Arc::new(move |i, outcome| {
                ticker.inc(1);
                if print_acks {
                    let number = outcome.number.map(|n| n.compact()).unwrap_or_default();
                    println!("ack {i} {number} {}", outcome.receipt.index);
                }
            });
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(operator::load(registry.clone(), &run, start, count, concurrency, on_ack));
            progress.finish_and_clear();
            if let Ok(registry) = Arc::try_unwrap(registry) {
                registry.close();
            }
            let secs = report.elapsed.as_secs_f64().max(f64::EPSILON);
            eprintln!(
                "{}: {} registrations accepted, {} refused, in {:.2}s ({:.0}/s)",
                if report.first_refusal.is_none() { "ok" } else { "failed" },
                report.accepted,
                report.refused,
                secs,
                report.accepted as f64 / secs
            );
            match report.first_refusal {
                // A load is a seeding or a measurement: a refusal is a failure of it.
                Some(first) => anyhow::bail!(
                    "{} of {count} registrations were not accepted; the first: {first}",
                    count - report.accepted
                ),
                None => Ok(()),
            }
        }
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let (config_path, created) = match config {
        Some(path) => (path, false),
        None => ensure_dev_config(std::path::Path::new(DEV_DIR))?,
    };
    let loaded = Loaded::read(&config_path)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let termination = registry_server::serve::Termination::install()?;
        let mut hangups = registry_server::serve::Hangups::install()?;
        let running = registry_server::serve::start(&loaded).await?;
        say!("huduma-registry serving huduma.v1 on {} (config {})", running.addr, config_path.display());
        if created || loaded.config.principals.iter().any(|p| p.token.as_deref().is_some_and(|t| t.starts_with("dev-")))
        {
            print_dev_help(&loaded, &running.addr.to_string(), created);
        }
        let (reloader, started, path) = (running.reloader(), loaded.config.clone(), config_path.clone());
        tokio::spawn(async move {
            loop {
                hangups.next().await;
                match registry_server::serve::reload_access(&path, &started, &reloader) {
                    Ok(done) => {
                        let r = done.reloaded;
                        tell!(
                            "reloaded {}: {} principals and {} agency policies in force",
                            path.display(),
                            r.principals,
                            r.agency_policies
                        );
                        if done.other_changes {
                            tell!("only [[principals]] and [[agencies]] are reloaded: the other changes take effect at the next start");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reload refused");
                        tell!("reload refused, the principals and policies in force are kept: {e}");
                    }
                }
            }
        });
        let stop = running.shutdown_handle();
        tokio::spawn(async move {
            termination.wait().await;
            tell!("stopping: draining calls and flushing the log");
            stop.send_replace(true);
        });
        running.wait().await?;
        tell!("stopped cleanly");
        anyhow::Ok(())
    })
}

/// Prints the development tokens and calls that work against them.
fn print_dev_help(loaded: &Loaded, addr: &str, created: bool) {
    let token = |role: registry_server::auth::Role| {
        loaded.config.principals.iter().find(|p| p.role == role).and_then(|p| p.token.clone()).unwrap_or_default()
    };
    use registry_server::auth::Role;
    if created {
        say!("created a development configuration in {DEV_DIR}/ (keys beside the data, tokens in config.toml)");
    }
    say!("principals (development bearer tokens):");
    for p in &loaded.config.principals {
        if let Some(token) = &p.token {
            let agency = p.agency.as_deref().map(|a| format!(" {a}")).unwrap_or_default();
            say!("  {:<16} {:<9}{agency:<6} {token}", p.name, p.role.name());
        }
    }
    say!(
        "\nTry it (grpcurl needs no .proto files: the server has reflection):\n  \
         grpcurl -plaintext -H 'authorization: Bearer {registrar}' \\\n    \
         -d '{{\"request_id\":\"r-1\",\"centre\":\"GPO-NAIROBI\",\"demographics\":{{\"given_name\":\"Wanjiru\",\"family_name\":\"Kamau\",\"date_of_birth\":\"1990-04-12\",\"sex\":\"FEMALE\",\"place_of_birth\":\"Nyeri\"}}}}' \\\n    \
         {addr} huduma.v1.Registry/RegisterPerson\n  \
         grpcurl -plaintext -H 'authorization: Bearer {agency}' \\\n    \
         -d '{{\"huduma_number\":\"<the number printed above>\",\"purpose\":\"tax registration\"}}' \\\n    \
         {addr} huduma.v1.Resolver/Resolve\n  \
         the same with the huduma CLI:\n  \
         export HUDUMA_ENDPOINT=http://{addr} HUDUMA_TOKEN={registrar}\n  \
         cargo run -q -p client-sdk -- register --given Wanjiru --family Kamau --dob 1990-04-12 --sex female --place Nyeri --centre GPO-NAIROBI\n  \
         HUDUMA_TOKEN={agency} cargo run -q -p client-sdk -- resolve \"<the number>\" --purpose \"tax registration\"\n  \
         cargo run -q -p client-sdk -- number check \"<the number>\"      # offline check digit\n  \
         HUDUMA_TOKEN={admin} cargo run -q -p client-sdk -- backup first   # a backup, while serving{backups}\n\
         Stop with Ctrl-C (drains calls and flushes).",
        registrar = token(Role::Registrar),
        agency = token(Role::Agency),
        admin = token(Role::Admin),
        backups =
            loaded.config.server.backup_dir.as_ref().map(|d| format!(", into {}/", d.display())).unwrap_or_default(),
    );
}

fn init(dir: &std::path::Path) -> anyhow::Result<()> {
    let (config_path, created) = ensure_dev_config(dir)?;
    let loaded = Loaded::read(&config_path)?;
    let registry = operator::open_registry(&loaded)?;
    let size = registry.reader().log_size()?;
    registry.close();
    let key = loaded.log_key()?;
    let config = config_path.display();
    println!(
        "Huduma Registry development store {} at {}\n\
         log: {size} record(s); genesis/current verifier key:\n  {}\n\n\
         Try it:\n  \
         cargo run --release -p registry-server -- serve --config {config}\n  \
         cargo run --release -p registry-server -- load --config {config} --count 20000\n  \
         cargo run --release -p registry-server -- verify --config {config}\n  \
         cargo run --release -p registry-server -- rebuild --config {config}\n  \
         cargo run --release -p registry-server -- export --config {config} --out log.bin\n",
        if created { "created" } else { "found" },
        dir.display(),
        note_verifier_key(&loaded.config.server.origin, &key.public()),
    );
    Ok(())
}
