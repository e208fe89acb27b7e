//! What `Registry::open` tells an operator while it works before serving: a rebuild of
//! the projections at opening logs how far it has got, up to the log's size.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use registry_core::command::Command;
use registry_core::projection::state::meta;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch};

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn open(dir: &std::path::Path) -> Registry {
    let options = RegistryOptions { origin: ORIGIN.into(), ..RegistryOptions::default() };
    Registry::open_dir(dir, secrets(), log_key(), options).expect("open registry")
}

#[test]
fn a_rebuild_at_opening_logs_its_progress_to_the_log_size() {
    let dir = tempfile::tempdir().unwrap();
    let size = {
        let registry = open(dir.path());
        for i in 0..5 {
            let s = submission(format!("r-{i}"), Command::RegisterPerson { demographics: person(i) });
            registry.submit_blocking(s).unwrap();
        }
        let size = registry.reader().log_size().unwrap();
        registry.close();
        size
    };
    // As a rebuild cut short leaves the store: no projection marked as applied.
    {
        let store = SledStore::open(dir.path()).unwrap();
        let mut unmark = WriteBatch::default();
        for tree in Tree::PROJECTIONS {
            unmark.remove(Tree::Meta, meta::applied(tree));
        }
        store.commit(&unmark, true).unwrap();
    }
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
    let registry = tracing::subscriber::with_default(subscriber, || open(dir.path()));
    assert_eq!(registry.reader().log_size().unwrap(), size);
    registry.close();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let progress: Vec<&str> =
        text.lines().filter(|l| l.contains("rebuilding the projections before opening")).collect();
    assert_eq!(progress.len(), 1, "one line at the end of so short a rebuild:\n{text}");
    assert!(progress[0].contains(&format!("done={size}")) && progress[0].contains(&format!("size={size}")), "{text}");
}
