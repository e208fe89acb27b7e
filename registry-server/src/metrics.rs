//! Prometheus metrics: per-RPC request counts (by status code) and latencies, the log's
//! durable size, the read cache's hits, misses and size, online backups, and (from registry-core) batch
//! sizes and commit times. Exported over
//! HTTP on `server.metrics_listen`, apart from the gRPC port.

use std::net::SocketAddr;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusBuilder;
use tonic::Status;

use crate::policy::Rpc;

/// Installs the global recorder and its `/metrics` listener. Must run inside a Tokio
/// runtime. Fails if another recorder is installed.
pub fn install(listen: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets(&[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0])
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| e.to_string())
}

/// Records one finished call.
pub fn observe(rpc: Rpc, started: Instant, code: tonic::Code) {
    let labels = [("rpc", rpc.name()), ("code", code_name(code))];
    metrics::counter!("huduma_rpc_requests_total", &labels).increment(1);
    metrics::histogram!("huduma_rpc_duration_seconds", "rpc" => rpc.name()).record(started.elapsed().as_secs_f64());
}

/// Runs a handler and records it.
pub async fn timed<T>(rpc: Rpc, handler: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    let started = Instant::now();
    let result = handler.await;
    observe(rpc, started, result.as_ref().map_or_else(Status::code, |_| tonic::Code::Ok));
    result
}

pub fn set_log_size(size: u64) {
    metrics::gauge!("huduma_log_size").set(size as f64);
}

/// Publishes the read cache's counts (`storage::read_cache`): hits and misses of its
/// point reads, and what it holds.
pub fn set_read_cache(stats: registry_core::storage::read_cache::ReadCacheStats) {
    metrics::counter!("huduma_read_cache_hits_total").absolute(stats.hits);
    metrics::counter!("huduma_read_cache_misses_total").absolute(stats.misses);
    metrics::gauge!("huduma_read_cache_entries").set(stats.entries as f64);
    metrics::gauge!("huduma_read_cache_bytes").set(stats.bytes as f64);
}

/// Publishes the presence filter's counts (`storage::presence_filter`): whether it
/// serves yet, the keys it holds and was sized for, the reads it answered without the
/// store, the times it has grown.
pub fn set_presence_filter(stats: registry_core::storage::presence_filter::FilterStats) {
    metrics::gauge!("huduma_presence_filter_ready").set(if stats.ready { 1.0 } else { 0.0 });
    metrics::gauge!("huduma_presence_filter_keys").set(stats.entered as f64);
    metrics::gauge!("huduma_presence_filter_capacity_keys").set(stats.capacity as f64);
    metrics::counter!("huduma_presence_filter_skipped_reads_total").absolute(stats.skipped);
    metrics::counter!("huduma_presence_filter_growths_total").absolute(stats.growths);
}

/// Records how an online backup ended (`taken`, `failed` or `cancelled`), and for one
/// taken, when and how many identity records it holds: what an alert on backups that
/// stopped being taken watches.
pub fn backup_finished(result: &'static str, records: Option<u64>) {
    metrics::counter!("huduma_backups_total", "result" => result).increment(1);
    if let Some(records) = records {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        metrics::gauge!("huduma_backup_last_taken_timestamp_seconds").set(now.as_secs_f64());
        metrics::gauge!("huduma_backup_last_taken_records").set(records as f64);
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A reload of the access control (SIGHUP): `applied`, or `refused` (the config did
/// not read or check; what was in force stays).
pub fn access_reloaded(result: &'static str) {
    metrics::counter!("huduma_access_reloads_total", "result" => result).increment(1);
}

/// A call refused because its principal was over its `calls_per_second`.
pub fn rate_limited(principal: &str) {
    metrics::counter!("huduma_rate_limited_total", "principal" => principal.to_string()).increment(1);
}
