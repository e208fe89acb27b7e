//! The duplicate search's blocks, as the `match_keys` projection stores them. A block
//! is everyone stored under one blocking key (its keyed hash, cut to 16 bytes); it is
//! kept as numbered chunks of at most [`CHUNK`] entries, so that a search reads a
//! block with one point read per chunk (a sled prefix scan cost four times a point
//! read) and a registration rewrites one small chunk.
//!
//! Layout (`match_keys` tree):
//! - key: block hash (16 bytes) ‖ chunk index (u32 BE), chunks numbered from 0: 20
//!   bytes, so that sled holds the key inline in its nodes (up to 22 bytes) rather
//!   than behind a pointer of its own;
//! - chunk 0's value: the block's chunk count (u32 BE), then its entries; any other
//!   chunk's value: its entries;
//! - an entry (16 bytes): person id (u64 BE) ‖ the first 8 bytes of the keyed hash of
//!   the person's birth date (`dedup::dob_tag`).
//!
//! Entries are appended in log order to the last chunk, a new chunk begun when it is
//! full. A removal takes the entry out of its chunk and leaves the chunk count as it
//! was (a chunk may be empty), except that a block whose only chunk empties is
//! removed. So the same log folds to the same bytes, live or afresh.
//!
//! A fold into a scratch store on disk (`replay::ScratchFold`) does not keep the
//! chunks as it goes ([`Upkeep::Logged`]): it logs each change in the scratch store's
//! `match_keys` under block hash (16) ‖ record (u64 BE) ‖ 0 (leave) or 1 (join), the
//! value the person id (u64 BE), or for a join the whole entry, and [`LaidOut`] lays
//! each block's changes out as chunks when the fold is compared, with the code that
//! keeps them in place.

use crate::PersonId;
use crate::storage::checksum;
use crate::storage::view::{Corruption, ReadError, View};
use crate::storage::{KeyValue, StorageError, Tree};

/// The most entries one chunk holds (a chunk value is at most 4 + 32 × 16 bytes).
pub const CHUNK: usize = 32;

/// The bytes of one entry.
const ENTRY: usize = 16;

/// A block's hash: the first 16 bytes of the keyed hash of one blocking key
/// (`projection::fold::block_hash`). Two blocking keys that shared one would only
/// share a block: the birth-date tags and the score still tell their persons apart.
pub type BlockHash = [u8; 16];

/// One person in a block: who, and the tag of their birth date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub person: PersonId,
    pub dob: [u8; 8],
}

impl Entry {
    /// The entry as a chunk (and a logged join) holds it: person id (u64 BE) ‖ tag.
    fn to_bytes(self) -> [u8; ENTRY] {
        let mut out = [0u8; ENTRY];
        out[..8].copy_from_slice(&self.person.0.to_be_bytes());
        out[8..].copy_from_slice(&self.dob);
        out
    }

    fn from_bytes(bytes: &[u8; ENTRY]) -> Self {
        let (person, dob) = bytes.split_at(8);
        Self {
            person: PersonId(u64::from_be_bytes(person.try_into().unwrap_or_default())),
            dob: dob.try_into().unwrap_or_default(),
        }
    }
}

fn chunk_key(block: &BlockHash, chunk: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(block);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// A chunk as read: the block's chunk count (chunk 0 only) and its entries.
#[derive(Clone)]
struct Chunk {
    count: Option<u32>,
    entries: Vec<Entry>,
}

impl Chunk {
    fn decode(key: &[u8], first: bool, bytes: &[u8]) -> Result<Self, Corruption> {
        let corrupt = |reason: &str| Corruption::new(Tree::MatchKeys, key, reason);
        let (count, body) = if first {
            let (head, body) = bytes.split_first_chunk::<4>().ok_or_else(|| corrupt("chunk 0 lacks its count"))?;
            let count = u32::from_be_bytes(*head);
            if count == 0 {
                return Err(corrupt("chunk 0 counts no chunks"));
            }
            (Some(count), body)
        } else {
            (None, bytes)
        };
        let (entries, rest) = body.as_chunks::<ENTRY>();
        if !rest.is_empty() || entries.len() > CHUNK {
            return Err(corrupt("a chunk's entries are not whole, or too many"));
        }
        Ok(Self { count, entries: entries.iter().map(Entry::from_bytes).collect() })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.entries.len() * ENTRY);
        if let Some(count) = self.count {
            out.extend_from_slice(&count.to_be_bytes());
        }
        for e in &self.entries {
            out.extend_from_slice(&e.to_bytes());
        }
        out
    }
}

fn read_chunk(view: &View<'_>, block: &BlockHash, chunk: u32) -> Result<Option<Chunk>, ReadError> {
    let key = chunk_key(block, chunk);
    match view.get(Tree::MatchKeys, &key)? {
        Some(bytes) => Ok(Some(Chunk::decode(&key, chunk == 0, &bytes)?)),
        None => Ok(None),
    }
}

/// A chunk the count promises but the store lacks.
fn missing(block: &BlockHash, chunk: u32) -> ReadError {
    Corruption::new(Tree::MatchKeys, &chunk_key(block, chunk), "a chunk its block counts is missing").into()
}

/// Where one block's chunks are read and written as a person joins or leaves it: the
/// store, through a view ([`InView`]), or memory, as a fold's logged changes are laid
/// out ([`Held`]). [`join`] and [`leave`] are written once against it, so that both
/// give the same chunks.
trait Chunks {
    fn block(&self) -> &BlockHash;
    fn read(&self, chunk: u32) -> Result<Option<Chunk>, ReadError>;
    fn write(&mut self, chunk: u32, value: Chunk);
    /// Removes the block's only chunk (the block is empty).
    fn remove_block(&mut self);
}

/// A block in the store, read and written through a view.
struct InView<'v, 'a> {
    view: &'v mut View<'a>,
    block: &'v BlockHash,
}

impl Chunks for InView<'_, '_> {
    fn block(&self) -> &BlockHash {
        self.block
    }
    fn read(&self, chunk: u32) -> Result<Option<Chunk>, ReadError> {
        read_chunk(self.view, self.block, chunk)
    }
    fn write(&mut self, chunk: u32, value: Chunk) {
        self.view.put(Tree::MatchKeys, chunk_key(self.block, chunk), &value.encode());
    }
    fn remove_block(&mut self) {
        self.view.remove(Tree::MatchKeys, chunk_key(self.block, 0));
    }
}

/// Appends `entry` to the block's last chunk, or begins a chunk when it is full.
fn join(chunks: &mut impl Chunks, entry: Entry) -> Result<(), ReadError> {
    let Some(mut first) = chunks.read(0)? else {
        chunks.write(0, Chunk { count: Some(1), entries: vec![entry] });
        return Ok(());
    };
    let count = first.count.unwrap_or(1);
    let last = count - 1;
    if last == 0 && first.entries.len() < CHUNK {
        first.entries.push(entry);
        chunks.write(0, first);
        return Ok(());
    }
    if last > 0 {
        let mut tail = chunks.read(last)?.ok_or_else(|| missing(chunks.block(), last))?;
        if tail.entries.len() < CHUNK {
            tail.entries.push(entry);
            chunks.write(last, tail);
            return Ok(());
        }
    }
    let next = count.checked_add(1).ok_or_else(|| {
        Corruption::new(Tree::MatchKeys, &chunk_key(chunks.block(), 0), "the block counts u32::MAX chunks")
    })?;
    chunks.write(count, Chunk { count: None, entries: vec![entry] });
    first.count = Some(next);
    chunks.write(0, first);
    Ok(())
}

/// Takes `person` out of the chunk that holds them; the chunk count stays, but a block
/// whose only chunk empties is removed.
fn leave(chunks: &mut impl Chunks, person: PersonId) -> Result<(), ReadError> {
    let Some(first) = chunks.read(0)? else { return Ok(()) };
    let count = first.count.unwrap_or(1);
    let mut chunk = first;
    for index in 0..count {
        if index > 0 {
            chunk = chunks.read(index)?.ok_or_else(|| missing(chunks.block(), index))?;
        }
        if let Some(at) = chunk.entries.iter().position(|e| e.person == person) {
            chunk.entries.remove(at);
            if count == 1 && chunk.entries.is_empty() {
                chunks.remove_block();
            } else {
                chunks.write(index, chunk);
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Appends `entry` to the block (the caller adds a person to a block once).
pub fn add(view: &mut View<'_>, block: &BlockHash, entry: Entry) -> Result<(), ReadError> {
    join(&mut InView { view, block }, entry)
}

/// Takes `person` out of the block (nothing if they are not in it).
pub fn remove(view: &mut View<'_>, block: &BlockHash, person: PersonId) -> Result<(), ReadError> {
    leave(&mut InView { view, block }, person)
}

/// How a fold keeps the blocks as persons join and leave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    /// Each change read into its chunk and written back: the blocks are whole after
    /// every record (the live store, which the duplicate search reads; a fold in
    /// memory, whose reads cost little).
    InPlace,
    /// Each change logged as it is ([`log_change`]), nothing read; [`LaidOut`] lays the
    /// changes out as chunks once the fold is done. For a fold in a scratch store on
    /// disk, whose reads back of each block's chunks were its largest cost.
    Logged,
}

/// A person joining or leaving a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Join(Entry),
    Leave(PersonId),
}

/// Applies `change` (made by record `seq`) to `block` as `upkeep` says.
pub fn apply(
    view: &mut View<'_>,
    upkeep: Upkeep,
    block: &BlockHash,
    seq: u64,
    change: Change,
) -> Result<(), ReadError> {
    match (upkeep, change) {
        (Upkeep::InPlace, Change::Join(entry)) => add(view, block, entry),
        (Upkeep::InPlace, Change::Leave(person)) => remove(view, block, person),
        (Upkeep::Logged, change) => log_change(view, block, seq, change),
    }
}

/// The bytes of a logged change's key: block hash (16) ‖ record (u64 BE) ‖ 0 for a
/// leave, 1 for a join. In key order, a block's changes come together and in the order
/// the fold made them: by record, and within one record a leave before a join (a
/// correction takes the person out of their old blocks, then puts them in the new).
const CHANGE_KEY: usize = 16 + 8 + 1;

/// Logs `change` to `block` by record `seq` in the `match_keys` tree of a fold on disk
/// (the changes only: [`LaidOut`] reads them back as chunks). A record changes a
/// person's place in a block at most once each way; a second such change is refused,
/// as its key would overwrite the first.
fn log_change(view: &mut View<'_>, block: &BlockHash, seq: u64, change: Change) -> Result<(), ReadError> {
    let mut key = Vec::with_capacity(CHANGE_KEY);
    key.extend_from_slice(block);
    key.extend_from_slice(&seq.to_be_bytes());
    let value = match change {
        Change::Leave(person) => {
            key.push(0);
            person.0.to_be_bytes().to_vec()
        }
        Change::Join(entry) => {
            key.push(1);
            entry.to_bytes().to_vec()
        }
    };
    if view.writes(Tree::MatchKeys, &key) {
        return Err(Corruption::new(Tree::MatchKeys, &key, "one record changed a block twice the same way").into());
    }
    view.put(Tree::MatchKeys, key, &value);
    Ok(())
}

/// One block held in memory while its logged changes are laid out.
struct Held {
    block: BlockHash,
    chunks: Vec<Chunk>,
}

impl Chunks for Held {
    fn block(&self) -> &BlockHash {
        &self.block
    }
    fn read(&self, chunk: u32) -> Result<Option<Chunk>, ReadError> {
        Ok(self.chunks.get(chunk as usize).cloned())
    }
    fn write(&mut self, chunk: u32, value: Chunk) {
        match self.chunks.get_mut(chunk as usize) {
            Some(held) => *held = value,
            // `join` writes a new chunk only just past the last.
            None => self.chunks.push(value),
        }
    }
    fn remove_block(&mut self) {
        self.chunks.clear();
    }
}

impl Held {
    /// The block's chunks as the store holds them (sealed), in key order.
    fn into_stored(self) -> impl Iterator<Item = KeyValue> {
        let block = self.block;
        (0u32..).zip(self.chunks).map(move |(index, chunk)| (chunk_key(&block, index), checksum::seal(&chunk.encode())))
    }

    /// Applies one logged change, as stored (sealed).
    fn apply_logged(&mut self, key: &[u8], stored: &[u8]) -> Result<(), ReadError> {
        let corrupt = |reason: &str| ReadError::from(Corruption::new(Tree::MatchKeys, key, reason));
        let value = checksum::open(stored).ok_or_else(|| corrupt("checksum mismatch"))?;
        let step = (key.len() == CHANGE_KEY).then(|| key[CHANGE_KEY - 1]);
        if let (Some(0), Ok(person)) = (step, <[u8; 8]>::try_from(value)) {
            return leave(self, PersonId(u64::from_be_bytes(person)));
        }
        if let (Some(1), Ok(entry)) = (step, <&[u8; ENTRY]>::try_from(value)) {
            return join(self, Entry::from_bytes(entry));
        }
        Err(corrupt("not a logged change"))
    }
}

/// The chunks that a fold's logged changes ([`Upkeep::Logged`]) lay out, in key order
/// and sealed as the store holds them: the same bytes as folding the changes in place
/// would have left. Reads `changes` (the fold's `match_keys` tree in key order) one
/// block at a time, holding only that block in memory.
pub struct LaidOut<I: Iterator<Item = Result<KeyValue, StorageError>>> {
    changes: std::iter::Peekable<I>,
    ready: std::vec::IntoIter<KeyValue>,
}

impl<I: Iterator<Item = Result<KeyValue, StorageError>>> LaidOut<I> {
    pub fn new(changes: I) -> Self {
        Self { changes: changes.peekable(), ready: Vec::new().into_iter() }
    }

    /// Lays out the block the next change belongs to; `None` after the last change.
    fn next_block(&mut self) -> Option<Result<Vec<KeyValue>, StorageError>> {
        let (key, stored) = match self.changes.next()? {
            Ok(change) => change,
            Err(e) => return Some(Err(e)),
        };
        let Some(block) = key.first_chunk::<16>().copied() else {
            return Some(Err(in_scratch(Corruption::new(Tree::MatchKeys, &key, "not a logged change").into())));
        };
        let mut held = Held { block, chunks: Vec::new() };
        let mut change = Ok((key, stored));
        loop {
            let applied = change.and_then(|(key, stored)| held.apply_logged(&key, &stored).map_err(in_scratch));
            if let Err(e) = applied {
                return Some(Err(e));
            }
            match self.changes.next_if(|next| next.as_ref().map_or(true, |(key, _)| key.starts_with(&block))) {
                Some(next) => change = next,
                None => return Some(Ok(held.into_stored().collect())),
            }
        }
    }
}

/// A logged change the fold's own scratch store could not give back whole.
fn in_scratch(e: ReadError) -> StorageError {
    StorageError::Engine(format!("the fold's scratch store: {e}"))
}

impl<I: Iterator<Item = Result<KeyValue, StorageError>>> Iterator for LaidOut<I> {
    type Item = Result<KeyValue, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(chunk) = self.ready.next() {
                return Some(Ok(chunk));
            }
            match self.next_block()? {
                Ok(chunks) => self.ready = chunks.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Visits the block's entries in the order they were added until `visit` returns
/// false; reads one chunk at a time, so a search that stops early reads no more.
pub fn visit(view: &View<'_>, block: &BlockHash, mut visit: impl FnMut(Entry) -> bool) -> Result<(), ReadError> {
    let Some(first) = read_chunk(view, block, 0)? else { return Ok(()) };
    let count = first.count.unwrap_or(1);
    let mut chunk = first;
    for index in 0..count {
        if index > 0 {
            chunk = read_chunk(view, block, index)?.ok_or_else(|| missing(block, index))?;
        }
        for entry in &chunk.entries {
            if !visit(*entry) {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::in_key_order::InKeyOrder;
    use crate::storage::memory::MemoryStore;
    use crate::storage::{Storage, WriteBatch};
    use proptest::prelude::*;

    fn entries(view: &View<'_>, block: &BlockHash) -> Vec<Entry> {
        let mut out = Vec::new();
        visit(view, block, |e| {
            out.push(e);
            true
        })
        .unwrap();
        out
    }

    fn entry(person: u64) -> Entry {
        Entry { person: PersonId(person), dob: person.wrapping_mul(31).to_be_bytes() }
    }

    proptest! {
        /// Whatever adds and removals a block sees, committed in batches of any size,
        /// it holds exactly the persons added and not removed, in the order added; a
        /// block emptied from one chunk leaves nothing stored.
        #[test]
        fn a_block_holds_what_was_added_and_not_removed(
            ops in proptest::collection::vec((any::<bool>(), 0u64..120), 1..400),
            batch in 1usize..50,
        ) {
            let store = MemoryStore::new();
            let block = [9u8; 16];
            let mut model: Vec<u64> = Vec::new();
            for ops in ops.chunks(batch) {
                let mut view = View::new(&store);
                for &(add_it, person) in ops {
                    if add_it && !model.contains(&person) {
                        add(&mut view, &block, entry(person)).unwrap();
                        model.push(person);
                    } else if !add_it {
                        remove(&mut view, &block, PersonId(person)).unwrap();
                        model.retain(|p| *p != person);
                    }
                }
                prop_assert_eq!(entries(&view, &block), model.iter().map(|p| entry(*p)).collect::<Vec<_>>());
                store.commit(&view.take_batch(), false).unwrap();
            }
            let view = View::new(&store);
            prop_assert_eq!(entries(&view, &block), model.iter().map(|p| entry(*p)).collect::<Vec<_>>());
            let stored = store.scan_prefix(Tree::MatchKeys, &block).unwrap();
            let only_one_chunk = stored.len() == 1;
            prop_assert!(!(model.is_empty() && only_one_chunk), "an emptied one-chunk block is removed");
        }
    }

    proptest! {
        /// Changes logged by a fold on disk and laid out afterwards give the very
        /// chunks, byte for byte, that the same changes made in place give: whatever
        /// the records (a person leaving some blocks, then joining some, as a
        /// correction does), committed in batches of any size and read back in
        /// handfuls of any size.
        #[test]
        fn logged_changes_lay_out_as_the_same_changes_in_place(
            records in proptest::collection::vec((0u64..100, 0u8..8, 0u8..8), 1..400),
            batch in 1usize..50,
            handful in 1usize..20,
        ) {
            let (in_place, logged) = (MemoryStore::new(), MemoryStore::new());
            let mut members: Vec<Vec<u64>> = vec![Vec::new(); 3];
            for (at, records) in (1u64..).step_by(batch).zip(records.chunks(batch)) {
                let (mut a, mut b) = (View::new(&in_place), View::new(&logged));
                for (seq, &(person, leaves, joins)) in (at..).zip(records) {
                    for (index, block) in members.iter_mut().enumerate() {
                        let hash = [index as u8; 16];
                        if leaves & (1 << index) != 0 {
                            let change = Change::Leave(PersonId(person));
                            apply(&mut a, Upkeep::InPlace, &hash, seq, change).unwrap();
                            apply(&mut b, Upkeep::Logged, &hash, seq, change).unwrap();
                            block.retain(|p| *p != person);
                        }
                    }
                    for (index, block) in members.iter_mut().enumerate() {
                        let hash = [index as u8; 16];
                        if joins & (1 << index) != 0 && !block.contains(&person) {
                            let change = Change::Join(entry(person));
                            apply(&mut a, Upkeep::InPlace, &hash, seq, change).unwrap();
                            apply(&mut b, Upkeep::Logged, &hash, seq, change).unwrap();
                            block.push(person);
                        }
                    }
                }
                in_place.commit(&a.take_batch(), false).unwrap();
                logged.commit(&b.take_batch(), false).unwrap();
            }
            let laid_out: Vec<KeyValue> =
                LaidOut::new(InKeyOrder::new(&logged, Tree::MatchKeys, &[], handful)).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(laid_out, in_place.scan_prefix(Tree::MatchKeys, &[]).unwrap());
        }
    }

    #[test]
    fn a_damaged_logged_change_is_reported_not_laid_out() {
        let store = MemoryStore::new();
        let mut view = View::new(&store);
        let block = [5u8; 16];
        apply(&mut view, Upkeep::Logged, &block, 1, Change::Join(entry(1))).unwrap();
        apply(&mut view, Upkeep::Logged, &block, 2, Change::Join(entry(2))).unwrap();
        let mut batch = view.take_batch();
        // The second change's value cut short, its checksum made to match.
        let key = [&block[..], &2u64.to_be_bytes(), &[1]].concat();
        batch.put(Tree::MatchKeys, key, checksum::seal(&[0, 0, 0, 0, 0, 0, 0, 2]));
        store.commit(&batch, false).unwrap();
        let laid_out: Result<Vec<KeyValue>, _> =
            LaidOut::new(InKeyOrder::new(&store, Tree::MatchKeys, &[], 8)).collect();
        let err = laid_out.unwrap_err().to_string();
        assert!(err.contains("scratch store") && err.contains("not a logged change"), "{err}");
        // The first change's stored bytes flipped: its checksum no longer matches.
        let first = [&block[..], &1u64.to_be_bytes(), &[1]].concat();
        let mut stored = store.get(Tree::MatchKeys, &first).unwrap().unwrap();
        stored[3] ^= 0x40;
        let mut batch = WriteBatch::default();
        batch.put(Tree::MatchKeys, first, stored);
        store.commit(&batch, false).unwrap();
        let laid_out: Result<Vec<KeyValue>, _> =
            LaidOut::new(InKeyOrder::new(&store, Tree::MatchKeys, &[], 8)).collect();
        assert!(laid_out.unwrap_err().to_string().contains("checksum mismatch"));
    }

    #[test]
    fn one_record_changing_a_block_twice_the_same_way_is_refused() {
        let store = MemoryStore::new();
        let mut view = View::new(&store);
        let block = [6u8; 16];
        apply(&mut view, Upkeep::Logged, &block, 3, Change::Leave(PersonId(1))).unwrap();
        let err = apply(&mut view, Upkeep::Logged, &block, 3, Change::Leave(PersonId(2))).unwrap_err();
        assert!(err.to_string().contains("one record changed a block twice"), "{err}");
        apply(&mut view, Upkeep::Logged, &block, 3, Change::Join(entry(1))).unwrap();
    }

    #[test]
    fn a_visit_that_stops_reads_no_further() {
        let store = MemoryStore::new();
        let block = [3u8; 16];
        let mut view = View::new(&store);
        for p in 0..(3 * CHUNK as u64) {
            add(&mut view, &block, entry(p)).unwrap();
        }
        let mut seen = Vec::new();
        visit(&view, &block, |e| {
            seen.push(e.person.0);
            seen.len() < 5
        })
        .unwrap();
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert_eq!(view.take_batch().writes[&Tree::MatchKeys].len(), 3, "three chunks");
    }

    #[test]
    fn a_damaged_chunk_is_named_as_corrupt() {
        let store = MemoryStore::new();
        let block = [4u8; 16];
        let mut view = View::new(&store);
        for p in 0..(CHUNK as u64 + 1) {
            add(&mut view, &block, entry(p)).unwrap();
        }
        store.commit(&view.take_batch(), false).unwrap();
        // Chunk 1 gone while chunk 0 counts two; then chunk 0 cut mid-entry.
        let mut view = View::new(&store);
        view.remove(Tree::MatchKeys, chunk_key(&block, 1));
        let err = visit(&view, &block, |_| true).unwrap_err();
        assert!(err.to_string().contains("a chunk its block counts is missing"), "{err}");
        view.put(Tree::MatchKeys, chunk_key(&block, 0), &[0, 0, 0, 1, 7, 7, 7]);
        let err = visit(&view, &block, |_| true).unwrap_err();
        assert!(err.to_string().contains("match_keys"), "{err}");
        view.put(Tree::MatchKeys, chunk_key(&block, 0), &[0, 0, 0, 0]);
        assert!(visit(&view, &block, |_| true).is_err(), "a count of no chunks");
    }
}
