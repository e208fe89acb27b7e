//! What readers see while a batch is being committed: none of it until it is durable,
//! then all of it (`storage::staged`). A look-up never answers with a registration
//! that a crash could still undo.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use common::*;
use registry_core::command::{Command, Outcome};
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::storage::memory::MemoryStore;
use registry_core::storage::staged::StagedStore;
use registry_core::storage::{Intent, Storage, StorageError, Tree, WriteBatch};

/// An engine that, when `hold` is set, writes each staged batch whole and then waits,
/// before making it durable, for the test to let it go.
struct Gate {
    inner: MemoryStore,
    hold: AtomicBool,
    written: Mutex<Sender<()>>,
    go: Mutex<Receiver<()>>,
}

impl Storage for Gate {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(tree, key)
    }
    registry_core::forward_scans!(inner);
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.inner.commit(batch, durable)
    }
    fn commit_staged(&self, batch: &Arc<WriteBatch>, _: &Intent, durable: bool) -> Result<(), StorageError> {
        self.inner.commit(batch, false)?;
        if self.hold.load(Ordering::Acquire) {
            let _ = self.written.lock().unwrap().send(());
            let _ = self.go.lock().unwrap().recv();
        }
        if durable { self.inner.flush() } else { Ok(()) }
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

#[test]
fn a_registration_is_seen_by_no_reader_until_its_batch_is_durable() {
    let (written_tx, written) = channel();
    let (go, go_rx) = channel();
    let gate = Arc::new(Gate {
        inner: MemoryStore::new(),
        hold: AtomicBool::new(false),
        written: Mutex::new(written_tx),
        go: Mutex::new(go_rx),
    });
    let store: Arc<dyn Storage> = Arc::new(StagedStore::new(gate.clone()));
    let options = RegistryOptions { origin: ORIGIN.into(), ..RegistryOptions::default() };
    let registry = Registry::open(store, Arc::new(MemoryStore::new()), secrets(), log_key(), options).unwrap();
    let register = |i: usize| submission(format!("r{i}"), Command::RegisterPerson { demographics: person(i) });
    let first = registry.submit_blocking(register(1)).unwrap();
    let reader = registry.reader();
    let size = reader.log_size().unwrap();

    gate.hold.store(true, Ordering::Release);
    std::thread::scope(|scope| {
        // Owned here, so that a failed assertion drops it and lets the engine go on
        // (rather than leave the test waiting on the submission for ever).
        let go = go;
        let second = scope.spawn(|| registry.submit_blocking(register(2)));
        written.recv().unwrap();
        // The engine holds the whole batch, not yet durable: readers see none of it.
        assert!(gate.inner.get(Tree::Log, &size.to_be_bytes()).unwrap().is_some(), "the record is written");
        assert_eq!(reader.log_size().unwrap(), size);
        assert_eq!(reader.record(size).unwrap(), None);
        let candidates = reader.find_duplicates(&person(2), 0.0, 10, None).unwrap();
        assert!(candidates.iter().all(|c| c.person.0 < size), "a candidate from the batch in flight: {candidates:?}");
        assert!(reader.resolve_number(first.number.unwrap()).unwrap().is_some(), "earlier batches are served");

        go.send(()).unwrap();
        let second: Outcome = second.join().unwrap().unwrap();
        // Answered only once durable, and from then on served.
        assert_eq!(reader.log_size().unwrap(), size + 1);
        assert!(reader.record(size).unwrap().is_some());
        assert!(reader.resolve_number(second.number.unwrap()).unwrap().is_some());
        let candidates = reader.find_duplicates(&person(2), 0.0, 10, None).unwrap();
        assert!(candidates.iter().any(|c| c.person.0 == size), "{candidates:?}");
    });
    gate.hold.store(false, Ordering::Release);
    registry.close();
}
