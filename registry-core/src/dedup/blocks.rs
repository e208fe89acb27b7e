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

use crate::PersonId;
use crate::storage::Tree;
use crate::storage::view::{Corruption, ReadError, View};

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

fn chunk_key(block: &BlockHash, chunk: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(block);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// A chunk as read: the block's chunk count (chunk 0 only) and its entries.
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
        if body.len() % ENTRY != 0 || body.len() / ENTRY > CHUNK {
            return Err(corrupt("a chunk's entries are not whole, or too many"));
        }
        let entries = body
            .chunks_exact(ENTRY)
            .map(|e| {
                let (person, dob) = e.split_at(8);
                let person = PersonId(u64::from_be_bytes(person.try_into().unwrap_or_default()));
                Entry { person, dob: dob.try_into().unwrap_or_default() }
            })
            .collect();
        Ok(Self { count, entries })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.entries.len() * ENTRY);
        if let Some(count) = self.count {
            out.extend_from_slice(&count.to_be_bytes());
        }
        for e in &self.entries {
            out.extend_from_slice(&e.person.0.to_be_bytes());
            out.extend_from_slice(&e.dob);
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

fn write_chunk(view: &mut View<'_>, block: &BlockHash, chunk: u32, value: &Chunk) {
    view.put(Tree::MatchKeys, chunk_key(block, chunk), &value.encode());
}

/// Appends `entry` to the block (the caller adds a person to a block once).
pub fn add(view: &mut View<'_>, block: &BlockHash, entry: Entry) -> Result<(), ReadError> {
    let Some(mut first) = read_chunk(view, block, 0)? else {
        write_chunk(view, block, 0, &Chunk { count: Some(1), entries: vec![entry] });
        return Ok(());
    };
    let count = first.count.unwrap_or(1);
    let last = count - 1;
    let mut tail =
        if last == 0 { None } else { Some(read_chunk(view, block, last)?.ok_or_else(|| missing(block, last))?) };
    let target = tail.as_mut().unwrap_or(&mut first);
    if target.entries.len() < CHUNK {
        target.entries.push(entry);
        match tail {
            Some(tail) => write_chunk(view, block, last, &tail),
            None => write_chunk(view, block, 0, &first),
        }
    } else {
        let next = count.checked_add(1).ok_or_else(|| {
            Corruption::new(Tree::MatchKeys, &chunk_key(block, 0), "the block counts u32::MAX chunks")
        })?;
        write_chunk(view, block, count, &Chunk { count: None, entries: vec![entry] });
        first.count = Some(next);
        write_chunk(view, block, 0, &first);
    }
    Ok(())
}

/// Takes `person` out of the block (nothing if they are not in it).
pub fn remove(view: &mut View<'_>, block: &BlockHash, person: PersonId) -> Result<(), ReadError> {
    let Some(first) = read_chunk(view, block, 0)? else { return Ok(()) };
    let count = first.count.unwrap_or(1);
    let mut chunk = first;
    for index in 0..count {
        if index > 0 {
            chunk = read_chunk(view, block, index)?.ok_or_else(|| missing(block, index))?;
        }
        if let Some(at) = chunk.entries.iter().position(|e| e.person == person) {
            chunk.entries.remove(at);
            if count == 1 && chunk.entries.is_empty() {
                view.remove(Tree::MatchKeys, chunk_key(block, 0));
            } else {
                write_chunk(view, block, index, &chunk);
            }
            return Ok(());
        }
    }
    Ok(())
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
    use crate::storage::Storage;
    use crate::storage::memory::MemoryStore;
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
