//! What `Registry::open` tells an operator while it works before serving: a rebuild of
//! the projections at opening logs how far it has got, up to the log's size.

mod common;

use common::*;
use registry_core::command::Command;
use registry_core::projection::state::meta;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch};

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
    let (registry, text) = logged(|| open(dir.path()));
    assert_eq!(registry.reader().log_size().unwrap(), size);
    registry.close();
    let progress: Vec<&str> =
        text.lines().filter(|l| l.contains("rebuilding the projections before opening")).collect();
    assert_eq!(progress.len(), 1, "one line, at the end, for so short a rebuild:\n{text}");
    assert!(progress[0].contains("before opening: done"), "{text}");
    assert!(progress[0].contains(&format!("done={size}")) && progress[0].contains(&format!("size={size}")), "{text}");
}
