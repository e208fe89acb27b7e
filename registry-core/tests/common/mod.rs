//! Helpers shared by the registry-core integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use registry_core::IssuanceFilters;
use registry_core::command::{Command, Submission};
use registry_core::demographics::Demographics;
use registry_core::event::Actor;
use registry_core::issuer::NumberIssuer;
use registry_core::keys::LogKey;
use registry_core::secrets::Secrets;
use registry_core::storage::Storage;
use registry_core::storage::memory::MemoryStore;
use registry_core::writer::Writer;

pub const ORIGIN: &str = "test.huduma.example/log";

pub fn secrets() -> Secrets {
    Secrets::from_master([42; 32])
}

pub fn log_key() -> LogKey {
    LogKey::from_seed([11; 32])
}

pub fn registrar() -> Actor {
    Actor { principal: "gpo-registrar-1".into(), via: "GPO-NAIROBI".into() }
}

/// Plausible demographics, varied by `i`, never likely duplicates of one another.
pub fn person(i: usize) -> Demographics {
    registry_core::synthetic::distinct_person(i as u64)
}

pub fn submission(request_id: impl Into<String>, command: Command) -> Submission {
    Submission { request_id: request_id.into(), actor: registrar(), command }
}

/// A writer over a fresh in-memory store.
pub fn memory_writer() -> (Arc<MemoryStore>, Writer) {
    let store = Arc::new(MemoryStore::new());
    let writer = writer_over(store.clone());
    (store, writer)
}

/// A writer over any store (the tests' secrets, log key and origin).
pub fn writer_over(store: Arc<dyn Storage>) -> Writer {
    let secrets = Arc::new(secrets());
    let issuer = NumberIssuer::new(secrets.number_key(), IssuanceFilters::default());
    Writer::open(store, secrets, issuer, log_key(), ORIGIN).expect("open writer")
}

/// A log sink a test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with what it logs on this thread captured; returns its result and the log.
pub fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = captured.0.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    (out, text)
}

/// The whole store verified from the test log key, projections included (folded in
/// memory).
pub fn verify_whole(
    store: &dyn Storage,
) -> Result<registry_core::verify::VerifyReport, registry_core::verify::VerifyError> {
    registry_core::verify::verify_store(
        store,
        Some(log_key().public()),
        Some(&secrets()),
        &registry_core::replay::FoldSpace::IN_MEMORY,
        &mut |_| (),
    )
}
