//! A log too large to fold in memory is folded in a scratch store on disk: by the
//! rebuild a registry does when it opens, by `rebuild` and by `verify` (the property
//! tests in properties.rs run every rebuild and verify both ways).

mod common;

use std::collections::BTreeMap;

use common::*;
use registry_core::command::Command;
use registry_core::projection::state::meta;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::replay::{self, FoldSpace, Reached, SCRATCH_DIR, Stage};
use registry_core::storage::memory::MemoryStore;
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch};
use registry_core::verify::verify_store;

type Projections = BTreeMap<Tree, Vec<(Vec<u8>, Vec<u8>)>>;

fn projections(store: &dyn Storage) -> Projections {
    Tree::PROJECTIONS.into_iter().map(|tree| (tree, store.scan_prefix(tree, &[]).unwrap())).collect()
}

fn register_and_link(registry: &Registry, persons: usize) {
    for i in 0..persons {
        let number = registry
            .submit_blocking(submission(format!("r-{i}"), Command::RegisterPerson { demographics: person(i) }))
            .unwrap()
            .number
            .unwrap();
        let link = Command::LinkAgencyRecord { number, agency: "KRA".into(), record_id: format!("A{i:09}") };
        registry.submit_blocking(submission(format!("l-{i}"), link)).unwrap();
    }
}

/// A registry whose projections lost their applied markers rebuilds them when it
/// opens; past its memory limit, it folds on disk: the stale scratch store a killed
/// fold left is cleared, the projections come back byte for byte, and the scratch
/// store is gone afterwards.
#[test]
fn a_registry_past_its_memory_limit_rebuilds_on_disk_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open_dir(dir.path(), secrets(), log_key(), RegistryOptions::default()).unwrap();
    register_and_link(&registry, 30);
    registry.close();
    let healthy = {
        let store = SledStore::open(dir.path()).unwrap();
        let healthy = projections(&store);
        let mut unmark = WriteBatch::default();
        for tree in Tree::PROJECTIONS {
            unmark.remove(Tree::Meta, meta::applied(tree));
        }
        // One tree's entries gone too, so that the rebuild has something to write.
        for (key, _) in store.scan_prefix(Tree::Persons, &[]).unwrap() {
            unmark.remove(Tree::Persons, key);
        }
        store.commit(&unmark, true).unwrap();
        healthy
    };
    let stale = dir.path().join(SCRATCH_DIR);
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("left-by-a-killed-fold"), b"junk").unwrap();

    let options =
        RegistryOptions { fold_space: FoldSpace { scratch: None, in_memory_up_to: 10 }, ..Default::default() };
    let registry = Registry::open_dir(dir.path(), secrets(), log_key(), options).unwrap();
    assert!(!stale.exists(), "the stale scratch store was cleared, and the new one removed after the rebuild");
    registry.close();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(projections(&store), healthy);
}

/// Checks a replay's progress: the log's records, then the projections, never going
/// back within either; the log counted against its size, the projections against
/// their number, and the last report every projection compared.
fn assert_progress_in_order(seen: &[Reached], log_size: u64) {
    let projections = Tree::PROJECTIONS.len() as u64;
    assert_eq!(seen.last(), Some(&Reached::projections(projections, projections)), "{seen:?}");
    assert!(seen.iter().any(|r| r.stage == Stage::Log), "the log stage was reported: {seen:?}");
    for step in seen {
        let expected = if step.stage == Stage::Log { log_size } else { projections };
        assert_eq!(step.total, expected, "{step:?}");
        assert!(step.done <= step.total, "{step:?}");
    }
    let order = |r: &Reached| (r.stage == Stage::Projections, r.done);
    assert!(seen.windows(2).all(|w| order(&w[0]) <= order(&w[1])), "progress went back: {seen:?}");
}

/// Verify and rebuild on disk report the fold of the log, then each projection
/// compared, in order (a rebuild every projection as it is done), and leave no scratch
/// store behind.
#[test]
fn verify_and_rebuild_on_disk_report_the_log_then_each_projection() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let registry = Registry::open(
        store.clone(),
        std::sync::Arc::new(MemoryStore::new()),
        secrets(),
        log_key(),
        RegistryOptions::default(),
    )
    .unwrap();
    register_and_link(&registry, 40);
    registry.close();
    let dir = tempfile::tempdir().unwrap();
    let on_disk = FoldSpace::under(dir.path(), 0);
    let total = replay::log_size(&*store).unwrap();

    let mut seen = Vec::new();
    let report =
        verify_store(&*store, Some(log_key().public()), Some(&secrets()), &on_disk, &mut |r| seen.push(r)).unwrap();
    assert!(report.projections_checked);
    assert_eq!(report.records, total);
    assert_progress_in_order(&seen, total);
    assert!(!dir.path().join(SCRATCH_DIR).exists());

    let mut seen = Vec::new();
    assert_eq!(replay::rebuild(&*store, &secrets(), &on_disk, &mut |r| seen.push(r)).unwrap(), total);
    assert_progress_in_order(&seen, total);
    let compared: Vec<u64> = seen.iter().filter(|r| r.stage == Stage::Projections).map(|r| r.done).collect();
    assert_eq!(compared, (0..=Tree::PROJECTIONS.len() as u64).collect::<Vec<_>>());
    assert!(!dir.path().join(SCRATCH_DIR).exists());
}
