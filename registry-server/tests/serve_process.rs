//! The `huduma-registry serve` process: SIGTERM drains in-flight calls, flushes and
//! exits 0; SIGKILL under a gRPC load loses no acknowledged registration and no
//! answered look-up; SIGHUP puts the config's principals in force, or refuses a config
//! that does not check.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_server::config::{Loaded, ensure_dev_config};
use registry_server::operator;
use registry_server::proto as pb;
use registry_server::proto::audit_client::AuditClient;
use registry_server::proto::operations_client::OperationsClient;
use registry_server::proto::registry_client::RegistryClient;
use registry_server::proto::resolver_client::ResolverClient;
use tonic::transport::Endpoint;

/// Starts `huduma-registry serve` on a free loopback port, with metrics on
/// `metrics` if given; returns it, its address and the registrar's token.
fn spawn_server(dir: &Path, metrics: Option<&str>) -> (Child, String, String) {
    let (config, _) = ensure_dev_config(dir).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let metrics_line = metrics.map(|m| format!("metrics_listen = \"{m}\"\n")).unwrap_or_default();
    let text = text
        .replace("listen = \"127.0.0.1:50051\"", "listen = \"127.0.0.1:0\"")
        .replace("metrics_listen = \"127.0.0.1:9464\"\n", &metrics_line);
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, text).unwrap();
    let token = Loaded::read(&config).unwrap().config.principals[0].token.clone().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_huduma-registry"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.err")).unwrap())
        .spawn()
        .expect("start the server");
    // Read the first line and close the pipe: the server keeps printing its help, and
    // must survive a closed stdout (it once died of EPIPE here).
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let addr =
        first.split_whitespace().find(|w| w.starts_with("127.0.0.1:")).expect("the address is printed").to_string();
    (child, addr, token)
}

/// Kills the server process if the test fails before it does (a failed test must not
/// leave a server running).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.0.to_string()]).status();
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// GET /metrics over plain HTTP/1.0.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the metrics port answers");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

type Acks = Arc<Mutex<BTreeMap<String, String>>>;

/// The registration of synthetic person `i` as `token`'s principal.
fn registration(token: &str, request_id: &str, i: u64) -> tonic::Request<pb::RegisterPersonRequest> {
    let d = registry_server::synthetic::person(i);
    let mut request = tonic::Request::new(pb::RegisterPersonRequest {
        request_id: request_id.into(),
        demographics: Some(pb::Demographics {
            given_name: d.given_name,
            family_name: d.family_name,
            other_names: d.other_names,
            date_of_birth: d.date_of_birth,
            sex: pb::Sex::Female as i32,
            place_of_birth: d.place_of_birth,
        }),
        centre: "KISUMU-HC".into(),
        duplicate_override_justification: String::new(),
    });
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Waits until `done` holds; fails the test after two minutes instead of hanging (a
/// load that stops making progress must not run on, filling the disk).
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Registers from `clients` concurrent clients until told to stop or the server goes;
/// records every acknowledged (request id, number).
async fn load(addr: String, token: String, clients: usize, acks: Acks) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (addr, token, acks) = (addr.clone(), token.clone(), acks.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(channel) = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await else { return };
            let mut client = RegistryClient::new(channel);
            for i in 0.. {
                let id = format!("c{c}-{i}");
                let request = registration(&token, &id, c as u64 * 10_000 + i);
                match client.register_person(request).await {
                    Ok(answer) => {
                        acks.lock().unwrap().insert(id, answer.into_inner().huduma_number);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_flushes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_port();
    let (mut child, addr, token) = spawn_server(dir.path(), Some(&metrics));
    let _guard = KillOnDrop(child.id());
    let acks: Acks = Arc::default();
    let loading = tokio::spawn(load(addr.clone(), token, 16, acks.clone()));
    wait_for("500 acknowledged registrations", || acks.lock().unwrap().len() >= 500).await;
    // An admin has the registry back itself up while the load goes on. A backup copies
    // up to the newest signed checkpoint, which may trail the acknowledgements by up to
    // a checkpoint interval: it holds at least what was signed before it was asked for.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let signed = loop {
        let signed = checkpoint_size(&addr, &dir.path().join("config.toml")).await;
        if signed >= 500 {
            break signed;
        }
        assert!(std::time::Instant::now() < deadline, "no checkpoint of 500 records signed under load in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let taken = backup(&addr, &dir.path().join("config.toml"), "under-load").await;
    assert!(taken.records >= signed, "{taken:?} holds less than the checkpoint of {signed} signed before it");
    assert!(acks.lock().unwrap().len() >= 500);
    // The Prometheus endpoint, apart from the gRPC port, counts what was served.
    let scraped = scrape(&metrics);
    for series in [
        "huduma_rpc_requests_total{rpc=\"RegisterPerson\",code=\"OK\"}",
        "huduma_rpc_duration_seconds_bucket{rpc=\"RegisterPerson\"",
        "huduma_log_size ",
        "huduma_batch_commands_count ",
        "huduma_batch_commit_seconds_bucket",
        "huduma_read_cache_hits_total ",
        "huduma_read_cache_entries ",
        "huduma_read_cache_bytes ",
        "huduma_presence_filter_ready ",
        "huduma_presence_filter_keys ",
        "huduma_backups_total{result=\"taken\"} 1",
        "huduma_backup_last_taken_timestamp_seconds ",
        &format!("huduma_backup_last_taken_records {}", taken.records),
    ] {
        assert!(scraped.contains(series), "/metrics has {series}:\n{scraped}");
    }
    // The writer's checks read through the read cache (published once a second).
    // New request ids are answered "absent" by the presence filter without a read.
    let count = |scraped: &str, series: &str| -> u64 {
        scraped
            .lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut scraped = scraped;
    while count(&scraped, "huduma_read_cache_misses_total ") == 0
        || count(&scraped, "huduma_presence_filter_skipped_reads_total ") == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no read cache misses or no reads skipped by the presence filter published:\n{scraped}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        scraped = scrape(&metrics);
    }
    signal(&child, "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    let log = std::fs::read_to_string(dir.path().join("server.err")).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "SIGTERM ends the server cleanly ({status:?}); its stderr:\n{log}");
    // Logged at info by default, in plain text to a file (no terminal colours).
    assert!(log.contains("serving huduma.v1"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a log file:\n{log}");
    loading.await.unwrap();
    check_acks(dir.path(), &acks);
    // The backup taken under load verifies whole, as a data directory of its own.
    let mut restored = Loaded::read(&dir.path().join("config.toml")).unwrap();
    restored.config.server.data_dir = taken.path.into();
    let (report, _) = operator::verify(&restored, None, &mut |_, _| ()).expect("the backup verifies");
    assert_eq!(report.records, taken.records);
    assert!(report.projections_checked);
}

/// Has the server at `addr` take a backup named `name`, as the admin of `config`;
/// returns what it took.
async fn backup(addr: &str, config: &Path, name: &str) -> pb::BackupTaken {
    use registry_server::auth::Role;
    let loaded = Loaded::read(config).unwrap();
    let admin = loaded.config.principals.iter().find(|p| p.role == Role::Admin).unwrap().token.clone().unwrap();
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut request = tonic::Request::new(pb::BackupRequest { name: name.into() });
    request.metadata_mut().insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let mut stream = OperationsClient::new(channel).backup(request).await.expect("a backup").into_inner();
    let mut last = None;
    while let Some(progress) = stream.message().await.expect("the backup streams") {
        last = progress.stage;
    }
    match last {
        Some(pb::backup_progress::Stage::Taken(taken)) => taken,
        other => panic!("the backup ended without what it took: {other:?}"),
    }
}

/// The size of the identity log's newest signed checkpoint, read as `config`'s auditor.
async fn checkpoint_size(addr: &str, config: &Path) -> u64 {
    use registry_server::auth::Role;
    let loaded = Loaded::read(config).unwrap();
    let auditor = loaded.config.principals.iter().find(|p| p.role == Role::Auditor).unwrap().token.clone().unwrap();
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut request = tonic::Request::new(pb::GetCheckpointRequest { size: 0, log: pb::LogName::Identity as i32 });
    request.metadata_mut().insert("authorization", format!("Bearer {auditor}").parse().unwrap());
    let note = AuditClient::new(channel).get_checkpoint(request).await.expect("a checkpoint").into_inner().note;
    // A C2SP checkpoint's body: the origin, then the tree size in decimal.
    note.lines().nth(1).and_then(|size| size.parse().ok()).unwrap_or_else(|| panic!("no tree size in\n{note}"))
}

/// Resolves `number` as the KRA principal from `clients` concurrent clients, each
/// look-up with its own purpose, until the server goes; records every answered purpose.
async fn look_ups(addr: String, token: String, number: String, clients: usize, answered: Arc<Mutex<Vec<String>>>) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (addr, token, number, answered) = (addr.clone(), token.clone(), number.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(channel) = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await else { return };
            let mut client = ResolverClient::new(channel);
            for i in 0.. {
                let purpose = format!("crash c{c} i{i}");
                let mut request = tonic::Request::new(pb::ResolveRequest {
                    key: Some(pb::resolve_request::Key::HudumaNumber(number.clone())),
                    purpose: purpose.clone(),
                });
                request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
                match client.resolve(request).await {
                    Ok(_) => answered.lock().unwrap().push(purpose),
                    Err(_) => return,
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_grpc_load_loses_no_acknowledged_registration_or_answered_look_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, token) = spawn_server(dir.path(), None);
    let _guard = KillOnDrop(child.id());
    let acks: Acks = Arc::default();
    let loading = tokio::spawn(load(addr.clone(), token, 32, acks.clone()));
    wait_for("a first registration", || !acks.lock().unwrap().is_empty()).await;
    let watched = acks.lock().unwrap().values().next().unwrap().clone();
    let kra = Loaded::read(&dir.path().join("config.toml")).unwrap();
    let kra = kra.config.principals.iter().find(|p| p.name == "kra").unwrap().token.clone().unwrap();
    let answered = Arc::new(Mutex::new(Vec::new()));
    let looking = tokio::spawn(look_ups(addr, kra, watched.clone(), 16, answered.clone()));
    wait_for("2,000 registrations and 2,000 look-ups", || {
        acks.lock().unwrap().len() >= 2000 && answered.lock().unwrap().len() >= 2000
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    loading.await.unwrap();
    looking.await.unwrap();
    check_acks(dir.path(), &acks);
    // Every answered look-up is in the person's access list, and the access log verifies.
    let loaded = Loaded::read(&dir.path().join("config.toml")).unwrap();
    let registry = operator::open_registry(&loaded).expect("reopen");
    let person = registry.reader().resolve_number(watched.parse().unwrap()).unwrap().unwrap().person;
    let listed = registry.access().reader().list(person, None, 0, usize::MAX - 1).unwrap();
    let purposes: std::collections::BTreeSet<String> =
        listed.entries.into_iter().filter_map(|e| e.body).map(|b| b.purpose).collect();
    let answered = answered.lock().unwrap().clone();
    for purpose in &answered {
        assert!(purposes.contains(purpose), "answered look-up {purpose:?} is in the access list");
    }
    registry.close();
    let (_, access) = operator::verify(&loaded, None, &mut |_, _| ()).expect("both logs verify");
    assert!(access.size >= answered.len() as u64);
}

/// Every acknowledged registration is in the reopened registry, answers its retried
/// request with the same number, and the log verifies.
fn check_acks(dir: &Path, acks: &Acks) {
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= 500, "{} acknowledged", acks.len());
    let loaded = Loaded::read(&dir.join("config.toml")).unwrap();
    let registry = operator::open_registry(&loaded).expect("reopen");
    let reader = registry.reader();
    for number in acks.values() {
        let resolved = reader.resolve_number(number.parse().unwrap()).unwrap();
        assert!(resolved.is_some(), "acknowledged number {number} is in the log");
    }
    let size = reader.log_size().unwrap();
    let key = loaded.log_key().unwrap().public();
    let secrets = loaded.secrets().unwrap();
    let report = registry_core::verify::verify_store(
        &**registry.store(),
        Some(key),
        Some(&secrets),
        &registry_core::replay::FoldSpace::IN_MEMORY,
        &mut |_| (),
    )
    .expect("the log and projections verify");
    assert_eq!(report.records, size);
}

/// Registers synthetic person `i` as `token`'s principal.
async fn register_one(addr: &str, token: &str, request_id: &str, i: u64) -> Result<(), tonic::Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    RegistryClient::new(channel).register_person(registration(token, request_id, 900_000 + i)).await.map(|_| ())
}

/// SIGHUP reads the config again: one that does not check is refused by name and the
/// principals in force stay; a valid one rotates the registrar's token from the next
/// call, and the server says when other sections changed (read only at a start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_principals_or_refuses_a_bad_config_and_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, token) = spawn_server(dir.path(), None);
    let _guard = KillOnDrop(child.id());
    let config = dir.path().join("config.toml");
    let stderr = || std::fs::read_to_string(dir.path().join("server.err")).unwrap_or_default();
    register_one(&addr, &token, "h-1", 1).await.expect("registered");
    let text = std::fs::read_to_string(&config).unwrap();

    // A token too short to be one: the reload is refused, naming the field.
    std::fs::write(&config, text.replace(&token, "short")).unwrap();
    signal(&child, "HUP");
    wait_for("the refused reload", || stderr().contains("reload refused")).await;
    assert!(stderr().contains("principals[0].token"), "{}", stderr());
    register_one(&addr, &token, "h-2", 2).await.expect("the token in force stays");

    // A rotated token, and a [server] change: the old token is refused from the next
    // call, the new one served; the [server] change waits for a restart.
    let rotated = "rotated-by-sighup-0123456789abcdef";
    let changed = text.replace(&token, rotated).replace("request_timeout_secs = 30", "request_timeout_secs = 31");
    assert!(changed.contains("request_timeout_secs = 31"), "{changed}");
    std::fs::write(&config, changed).unwrap();
    signal(&child, "HUP");
    wait_for("the reload", || stderr().contains("agency policies in force")).await;
    let refused = register_one(&addr, &token, "h-3", 3).await.expect_err("the old token is withdrawn");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{}", refused.message());
    register_one(&addr, rotated, "h-3", 3).await.expect("the new token is in force");
    let log = stderr();
    assert!(log.contains("reloaded ") && log.contains("6 principals and 2 agency policies in force"), "{log}");
    assert!(log.contains("take effect at the next start"), "{log}");

    signal(&child, "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr());
}
