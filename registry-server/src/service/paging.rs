//! Paged answers (GetHistory, ListAccesses): the page size a request may ask for, and
//! how many of a page's items fit in one answer under the server's message limit, so
//! that no answer is too large to send however long what it pages through.

use tonic::Status;

use crate::wire;

/// A page's size when the request leaves it 0, and the most a request may ask for.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// What an answer's other fields may take beside its repeated items (numbers, a
/// status, a page token: well under this).
const RESERVED: usize = 256;

/// A request's `page_size`: 0 is [`DEFAULT_PAGE`]; more than [`MAX_PAGE`] is refused
/// by name.
pub fn page_size(asked: u32) -> Result<usize, Status> {
    match usize::try_from(asked).unwrap_or(usize::MAX) {
        0 => Ok(DEFAULT_PAGE),
        n if n <= MAX_PAGE => Ok(n),
        _ => Err(wire::invalid("page_size", format!("at most {MAX_PAGE}"))),
    }
}

/// A request's `page_token`: `None` when empty (the first page), else the number a
/// previous answer's `next_page_token` held; anything else is refused by name.
pub fn page_token(token: &str) -> Result<Option<u64>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse()
        .map(Some)
        .map_err(|_| wire::invalid("page_token", "not a token from a previous answer (pass next_page_token as is)"))
}

/// The room an answer has for its repeated items.
#[derive(Debug, Clone, Copy)]
pub struct Room(usize);

impl Room {
    /// The room in an answer of at most `max_message_bytes`.
    pub fn of(max_message_bytes: usize) -> Self {
        Self(max_message_bytes.saturating_sub(RESERVED))
    }

    /// Cuts `items` to those that fit ([`Self::fitting`]); returns the first left out,
    /// where the next page starts.
    pub fn cut<M: prost::Message>(self, items: &mut Vec<M>) -> Option<M> {
        let fitting = self.fitting(items);
        items.split_off(fitting).into_iter().next()
    }

    /// How many of `items`, from the first, fit as a repeated field (numbered under
    /// 16, as the paged answers' are): at least one, so that a page always moves on
    /// (the least limit a config may set, `config::MIN_MESSAGE_BYTES`, has room for
    /// the largest item).
    pub fn fitting<M: prost::Message>(self, items: &[M]) -> usize {
        let mut used = 0usize;
        for (taken, item) in items.iter().enumerate() {
            let len = item.encoded_len();
            // One byte of field key, the length, the message.
            used = used.saturating_add(1 + prost::length_delimiter_len(len) + len);
            if used > self.0 {
                return taken.max(1);
            }
        }
        items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto as pb;

    fn entry(detail: &str) -> pb::HistoryEntry {
        pb::HistoryEntry { index: 7, detail: detail.into(), ..Default::default() }
    }

    /// As many items as fit, encoded in an answer, stay within the limit; one more
    /// would not; and a page always holds at least one.
    #[test]
    fn a_page_fits_the_message_limit() {
        use prost::Message;
        let max = 4096;
        let entries: Vec<_> = (0..200).map(|i| entry(&"why ".repeat(i % 40))).collect();
        let taken = Room::of(max).fitting(&entries);
        assert!(0 < taken && taken < entries.len(), "{taken}");
        let answer = |n: usize| pb::GetHistoryResponse {
            current_number: "234567890123".into(),
            status: pb::Status::Merged as i32,
            entries: entries[..n].to_vec(),
            next_page_token: u64::MAX.to_string(),
        };
        assert!(answer(taken).encoded_len() <= max, "{}", answer(taken).encoded_len());
        assert!(answer(taken + 1).encoded_len() > max - RESERVED);
        assert_eq!(Room::of(max).fitting(&entries[..3]), 3, "a short page is whole");
        assert_eq!(Room::of(16).fitting(&entries[30..]), 1, "a page moves on");
        assert_eq!(Room::of(max).fitting::<pb::HistoryEntry>(&[]), 0);
    }

    /// The largest item either paged list may hold goes in an answer of its own at the
    /// least message limit a config may set.
    #[test]
    fn the_largest_item_fits_the_least_limit() {
        use crate::config::MIN_MESSAGE_BYTES;
        use prost::Message;
        let longest_reason = "\u{1F600}".repeat(registry_core::command::MAX_REASON_CHARS);
        let id = || "x".repeat(registry_core::command::MAX_ID_LEN);
        let entry = pb::HistoryEntry {
            index: u64::MAX,
            time: "2026-12-07T23:11:36.820Z".into(),
            event: "DemographicsCorrected".into(),
            principal: id(),
            via: id(),
            detail: longest_reason.clone(),
            // The person and five likely matches overridden.
            numbers: vec!["234567890123".into(); 6],
        };
        let history = pb::GetHistoryResponse {
            current_number: "234567890123".into(),
            status: pb::Status::Merged as i32,
            entries: vec![entry],
            next_page_token: u64::MAX.to_string(),
        };
        let look_up = pb::Access {
            index: u64::MAX,
            time: "2026-12-07T23:11:36.820Z".into(),
            readable: true,
            call: pb::AccessCall::VerifyAttributes as i32,
            agency: "ABCDEFGHIJKLMNOP".into(),
            principal: id(),
            role: "citizen-portal".into(),
            purpose: longest_reason,
            key_kind: "agency_record".into(),
            key_agency: "ABCDEFGHIJKLMNOP".into(),
            status: pb::Status::Deceased as i32,
            attributes: ["given_name", "family_name", "other_names", "date_of_birth", "sex", "place_of_birth"]
                .map(|attribute| pb::AttributeMatch { attribute: attribute.into(), matches: true })
                .to_vec(),
        };
        let accesses = pb::ListAccessesResponse { accesses: vec![look_up], next_page_token: u64::MAX.to_string() };
        for (what, len) in [("history", history.encoded_len()), ("look-ups", accesses.encoded_len())] {
            assert!(len <= MIN_MESSAGE_BYTES, "{what}: {len}");
        }
        // As many of them as fit, all in one answer, stay within it too.
        let room = Room::of(MIN_MESSAGE_BYTES);
        let many = vec![history.entries[0].clone(); 10];
        let fitting = room.fitting(&many);
        assert!((1..10).contains(&fitting), "{fitting}");
        let page = pb::GetHistoryResponse { entries: many[..fitting].to_vec(), ..history };
        assert!(page.encoded_len() <= MIN_MESSAGE_BYTES, "{}", page.encoded_len());
    }

    #[test]
    fn page_sizes_and_tokens() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(500).unwrap(), 500);
        let refused = page_size(501).unwrap_err();
        assert!(refused.message().contains("page_size"), "{refused:?}");
        assert_eq!((page_token("").unwrap(), page_token("42").unwrap()), (None, Some(42)));
        for bad in ["-1", " 42", "later", "18446744073709551616"] {
            let refused = page_token(bad).unwrap_err();
            assert!(refused.message().starts_with("page_token"), "{bad}: {refused:?}");
        }
    }

    /// A cut page keeps what fits and hands back the first left out.
    #[test]
    fn a_cut_hands_back_where_the_next_page_starts() {
        let mut entries: Vec<_> =
            (0..20).map(|i| pb::HistoryEntry { index: i, detail: "why".repeat(100), ..Default::default() }).collect();
        let left_out = Room::of(2048).cut(&mut entries);
        assert!(!entries.is_empty() && entries.len() < 20);
        assert_eq!(left_out.map(|e| e.index), Some(entries.len() as u64));
        let mut short = entries.clone();
        assert_eq!(Room::of(1 << 20).cut(&mut short), None);
        assert_eq!(short, entries);
    }
}
