//! `huduma-load`: the gRPC load generator. N concurrent clients over loopback call one
//! RPC (or a mix) against a registry server for a fixed time and report throughput and
//! p50/p99/p99.9 latency, beside two floors measured in the same run (raw Ed25519
//! signing, raw sled inserts with a flush per 1,024) so the figures survive a noisy
//! machine.
//!
//! Without `--endpoint` it starts its own server (in this process, on its own runtime,
//! in a temporary directory), so client and server share the machine's cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ed25519_dalek::Signer;
use registry_server::config::{Loaded, ensure_dev_config};
use registry_server::proto as pb;
use registry_server::proto::registry_client::RegistryClient;
use registry_server::proto::resolver_client::ResolverClient;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Resolve by number (as an agency), over the preloaded persons.
    Resolve,
    /// RegisterPerson (as a registrar).
    Register,
    /// 90% Resolve, 10% RegisterPerson.
    Mixed,
}

#[derive(Parser)]
#[command(name = "huduma-load", about = "gRPC load generator for the Huduma Registry")]
struct Args {
    #[arg(long, value_enum, default_value = "resolve")]
    rpc: Workload,
    /// Concurrent clients (each one call in flight at a time).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// How long to measure, in seconds (after the preload).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Persons registered before measuring (what Resolve looks up).
    #[arg(long, default_value_t = 20_000)]
    preload: u64,
    /// A running server (e.g. http://127.0.0.1:50051); without it one is started here.
    #[arg(long, requires_all = ["registrar_token", "agency_token"])]
    endpoint: Option<String>,
    #[arg(long)]
    registrar_token: Option<String>,
    #[arg(long)]
    agency_token: Option<String>,
    /// The self-hosted server's max_batch.
    #[arg(long, default_value_t = 256)]
    max_batch: usize,
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn demographics(i: u64) -> pb::Demographics {
    let d = huduma_benches::person(i);
    pb::Demographics {
        given_name: d.given_name,
        family_name: d.family_name,
        other_names: d.other_names,
        date_of_birth: d.date_of_birth,
        sex: if i.is_multiple_of(2) { pb::Sex::Female } else { pb::Sex::Male } as i32,
        place_of_birth: d.place_of_birth,
    }
}

/// Latencies in microseconds and the errors of one client.
#[derive(Default)]
struct Samples {
    resolve: Vec<u32>,
    register: Vec<u32>,
    errors: u64,
}

struct Target {
    channels: Vec<Channel>,
    registrar: String,
    agency: String,
}

static REQUEST: AtomicU64 = AtomicU64::new(0);

async fn register_one(target: &Target, channel: &Channel) -> Result<String, tonic::Status> {
    let i = REQUEST.fetch_add(1, Ordering::Relaxed);
    let run = std::process::id();
    let request = pb::RegisterPersonRequest {
        request_id: format!("load-{run}-{i}"),
        demographics: Some(demographics(i)),
        centre: "LOAD-GEN".into(),
        duplicate_override_justification: String::new(),
    };
    let answer = RegistryClient::new(channel.clone()).register_person(authed(request, &target.registrar)).await?;
    Ok(answer.into_inner().huduma_number)
}

async fn resolve_one(target: &Target, channel: &Channel, number: &str) -> Result<(), tonic::Status> {
    let request = pb::ResolveRequest {
        key: Some(pb::resolve_request::Key::HudumaNumber(number.to_string())),
        purpose: "load test".into(),
    };
    ResolverClient::new(channel.clone()).resolve(authed(request, &target.agency)).await.map(|_| ())
}

async fn client(
    target: Arc<Target>,
    index: usize,
    workload: Workload,
    numbers: Arc<Vec<String>>,
    until: Instant,
) -> Samples {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(index as u64);
    let channel = target.channels[index % target.channels.len()].clone();
    let mut samples = Samples::default();
    while Instant::now() < until {
        let register = match workload {
            Workload::Register => true,
            Workload::Resolve => false,
            Workload::Mixed => rng.gen_range(0..10) == 0,
        };
        let started = Instant::now();
        let ok = if register || numbers.is_empty() {
            register_one(&target, &channel).await.is_ok()
        } else {
            let number = &numbers[rng.gen_range(0..numbers.len())];
            resolve_one(&target, &channel, number).await.is_ok()
        };
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        if !ok {
            samples.errors += 1;
        } else if register {
            samples.register.push(micros);
        } else {
            samples.resolve.push(micros);
        }
    }
    samples
}

/// Raw Ed25519 signatures of 330 bytes per second, for ~`secs`.
fn floor_signing(secs: f64) -> f64 {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let message = [0x5a_u8; 330];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        std::hint::black_box(key.sign(std::hint::black_box(&message)));
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Raw sled inserts of 330 bytes per second, a flush per 1,024, for ~`secs`.
fn floor_sled(secs: f64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = sled::open(dir.path())?;
    let value = [0xa5_u8; 330];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        for _ in 0..1024 {
            db.insert(n.to_be_bytes(), &value[..])?;
            n += 1;
        }
        db.flush()?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("floors (same run): measuring raw Ed25519 signing and raw sled inserts for 1 s each...");
    let sign_rate = floor_signing(1.0);
    let sled_rate = floor_sled(1.0)?;
    println!("  ed25519 sign 330 B: {sign_rate:.0}/s; sled insert 330 B (+flush per 1,024): {sled_rate:.0}/s");

    // The server: a running one, or our own on its own runtime (2 workers).
    let server_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let _dir;
    let (endpoint, registrar, agency, running) = match &args.endpoint {
        Some(endpoint) => (
            endpoint.clone(),
            args.registrar_token.clone().unwrap_or_default(),
            args.agency_token.clone().unwrap_or_default(),
            None,
        ),
        None => {
            let dir = tempfile::tempdir()?;
            let (path, _) = ensure_dev_config(dir.path())?;
            let mut loaded = Loaded::read(&path)?;
            loaded.config.server.listen = "127.0.0.1:0".into();
            loaded.config.server.metrics_listen = None;
            loaded.config.server.max_batch = args.max_batch;
            let token = |name: &str| {
                loaded
                    .config
                    .principals
                    .iter()
                    .find(|p| p.name == name)
                    .and_then(|p| p.token.clone())
                    .unwrap_or_default()
            };
            let (registrar, agency) = (token("gpo-registrar-1"), token("kra"));
            let running = server_runtime.block_on(registry_server::serve::start(&loaded))?;
            _dir = dir;
            (format!("http://{}", running.addr), registrar, agency, Some(running))
        }
    };
    println!("server: {endpoint}{}", if running.is_some() { " (self-hosted, same process, 2 workers)" } else { "" });

    let client_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    client_runtime.block_on(async {
        let mut channels = Vec::new();
        for _ in 0..args.connections.max(1) {
            let endpoint = Endpoint::from_shared(endpoint.clone())?.tcp_nodelay(true);
            channels.push(endpoint.connect().await.context("connecting to the server")?);
        }
        let target = Arc::new(Target { channels, registrar, agency });

        // Preload persons to resolve, with the same clients.
        let preload_started = Instant::now();
        let mut numbers = Vec::with_capacity(args.preload as usize);
        let per_client = args.preload.div_ceil(args.clients.max(1) as u64);
        let mut tasks = Vec::new();
        for c in 0..args.clients.max(1) {
            let target = Arc::clone(&target);
            tasks.push(tokio::spawn(async move {
                let channel = target.channels[c % target.channels.len()].clone();
                let mut got = Vec::new();
                for _ in 0..per_client {
                    if let Ok(number) = register_one(&target, &channel).await {
                        got.push(number);
                    }
                }
                got
            }));
        }
        for task in tasks {
            numbers.extend(task.await?);
        }
        println!("preloaded {} persons in {:.1}s", numbers.len(), preload_started.elapsed().as_secs_f64());

        let numbers = Arc::new(numbers);
        let started = Instant::now();
        let until = started + Duration::from_secs(args.seconds);
        let tasks: Vec<_> = (0..args.clients.max(1))
            .map(|c| tokio::spawn(client(Arc::clone(&target), c, args.rpc, Arc::clone(&numbers), until)))
            .collect();
        let mut all = Samples::default();
        for task in tasks {
            let s = task.await?;
            all.resolve.extend(s.resolve);
            all.register.extend(s.register);
            all.errors += s.errors;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "\n{:?}: {} clients over {} connections, {:.1}s, {} errors",
            args.rpc, args.clients, args.connections, secs, all.errors
        );
        println!(
            "| rpc | calls | calls/s | p50 ms | p99 ms | p99.9 ms | calls/s ÷ signing/s | calls/s ÷ sled inserts/s |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for (name, mut samples) in [("Resolve", all.resolve), ("RegisterPerson", all.register)] {
            if samples.is_empty() {
                continue;
            }
            samples.sort_unstable();
            let rate = samples.len() as f64 / secs;
            println!(
                "| {name} | {} | {rate:.0} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} |",
                samples.len(),
                percentile(&samples, 50.0),
                percentile(&samples, 99.0),
                percentile(&samples, 99.9),
                rate / sign_rate,
                rate / sled_rate
            );
        }
        anyhow::Ok(())
    })?;
    if let Some(running) = running {
        server_runtime.block_on(running.stop())?;
    }
    Ok(())
}
