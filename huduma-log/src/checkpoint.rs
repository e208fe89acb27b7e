//! Checkpoints: the C2SP `tlog-checkpoint` body (origin, tree size in decimal, base64
//! root hash, one per line) in a C2SP `signed-note` with an Ed25519 signature by the
//! log key:
//!
//! ```text
//! registry.huduma.go.ke/log
//! 1048576
//! 3Bz6cD8Xv0RSo1RtQHq7q0TwJtLrS0eCqJ2KCqC4Ays=
//!
//! — registry.huduma.go.ke/log AbCd...base64(key hash (4 bytes) || signature (64 bytes))
//! ```
//!
//! The signature covers the body exactly (through its last newline). Go's
//! `golang.org/x/mod/sumdb/note` opens these notes as they are.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::keys::{LogKey, note_key_hash};
use crate::merkle::Hash;

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a note is not a checkpoint signed by the expected key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint: {0}")]
    Format(String),
    #[error("checkpoint: no signature by {0} verifies")]
    Signature(String),
    #[error("checkpoint: origin {found:?}, expected {expected:?}")]
    Origin { found: String, expected: String },
}

fn format_error(why: impl Into<String>) -> CheckpointError {
    CheckpointError::Format(why.into())
}

impl Checkpoint {
    /// The note body: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// The signed note, signed by `key` under the key name `name` (the origin).
    pub fn sign(&self, name: &str, key: &LogKey) -> String {
        let body = self.body();
        let signature = key.sign(body.as_bytes());
        let mut blob = note_key_hash(name, &key.public()).to_be_bytes().to_vec();
        blob.extend_from_slice(&signature);
        format!("{body}\n\u{2014} {name} {}\n", B64.encode(blob))
    }

    /// Parses a note's body.
    fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| format_error("no origin line"))?;
        let size_text = lines.next().ok_or_else(|| format_error("no tree size line"))?;
        if size_text.is_empty()
            || !size_text.bytes().all(|b| b.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(format_error(format!("tree size {size_text:?} is not a decimal number")));
        }
        let size = size_text.parse().map_err(|_| format_error("tree size out of range"))?;
        let root_text = lines.next().ok_or_else(|| format_error("no root hash line"))?;
        let root: Hash = B64
            .decode(root_text)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| format_error("the root hash is not base64 of 32 bytes"))?;
        Ok(Self { origin: origin.to_string(), size, root })
    }

    /// Opens a signed note: checks it is well formed, that one of its signatures is by
    /// `key` under `name` and verifies, and that the origin is `name`.
    pub fn open(note: &str, name: &str, key: &VerifyingKey) -> Result<Self, CheckpointError> {
        let (body, signatures) =
            note.split_once("\n\n").ok_or_else(|| format_error("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        if body.chars().any(|c| c.is_control() && c != '\n') {
            return Err(format_error("control characters in the body"));
        }
        let wanted = note_key_hash(name, key);
        let mut verified = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(format_error(format!("signature line {line:?} does not start with an em dash")));
            };
            let Some((signer, blob)) = rest.split_once(' ') else {
                return Err(format_error("a signature line has no name"));
            };
            let blob = B64.decode(blob).map_err(|_| format_error("a signature is not base64"))?;
            if signer != name || blob.len() != 68 || blob[..4] != wanted.to_be_bytes() {
                continue;
            }
            let signature = Signature::from_slice(&blob[4..]).map_err(|_| format_error("bad signature bytes"))?;
            if key.verify_strict(body.as_bytes(), &signature).is_ok() {
                verified = true;
            }
        }
        if !verified {
            return Err(CheckpointError::Signature(name.to_string()));
        }
        let checkpoint = Self::parse_body(&body)?;
        if checkpoint.origin != name {
            return Err(CheckpointError::Origin { found: checkpoint.origin, expected: name.to_string() });
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_opens_and_any_change_is_refused() {
        let key = LogKey::from_seed([9; 32]);
        let name = "registry.huduma.go.ke/log";
        let checkpoint = Checkpoint { origin: name.into(), size: 1_048_576, root: [7; 32] };
        let note = checkpoint.sign(name, &key);
        assert!(note.starts_with("registry.huduma.go.ke/log\n1048576\nBwcH"), "{note}");
        assert!(note.contains("\n\n\u{2014} registry.huduma.go.ke/log "));
        assert_eq!(Checkpoint::open(&note, name, &key.public()), Ok(checkpoint.clone()));
        let other = LogKey::from_seed([8; 32]);
        assert!(matches!(Checkpoint::open(&note, name, &other.public()), Err(CheckpointError::Signature(_))));
        let bigger = note.replacen("1048576", "1048577", 1);
        assert!(matches!(Checkpoint::open(&bigger, name, &key.public()), Err(CheckpointError::Signature(_))));
        assert!(Checkpoint::open("nonsense", name, &key.public()).is_err());
        // Signed under another origin: refused by name.
        let elsewhere = Checkpoint { origin: "elsewhere/log".into(), ..checkpoint }.sign(name, &key);
        assert!(matches!(Checkpoint::open(&elsewhere, name, &key.public()), Err(CheckpointError::Origin { .. })));
    }
}
