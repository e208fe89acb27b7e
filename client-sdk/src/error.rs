//! The SDK's errors: one variant per thing an agency engineer handles differently,
//! mapped from the gRPC status the registry answered (or caught before any call).

use tonic::Code;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A Huduma number that fails its own rules (length, digits, check digit), caught
    /// before any call was made.
    #[error("invalid Huduma number: {0}")]
    InvalidNumber(#[from] huduma_number::NumberError),
    /// The registry refused a field: `field` names it, `message` says the rule.
    #[error("invalid argument: {field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// No such number, record or link.
    #[error("not found: {0}")]
    NotFound(String),
    /// Already there (e.g. the agency record is linked to another person).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The person's state forbids it (revoked, superseded, merged, deceased...).
    #[error("refused: {0}")]
    FailedPrecondition(String),
    /// The registration was refused: the duplicate search found these likely matches.
    /// Register again with a justification to override (`register_person_overriding`).
    #[error("possible duplicate: {message}")]
    PossibleDuplicate { message: String, candidates: Vec<crate::types::DuplicateCandidate> },
    /// The credentials are missing, unknown or expired.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller's role may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The registry could not be reached, or is shutting down (retried by the SDK
    /// before it is returned).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed (retried by the SDK before it is returned).
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// The caller is over the call rate the registry allows it (`retry_after`: when it
    /// may call again, as the registry said; such a refusal is retried by the SDK,
    /// waiting at least that long, before it is returned).
    #[error("resource exhausted: {message}")]
    ResourceExhausted { message: String, retry_after: Option<std::time::Duration> },
    /// Past the end (e.g. of the log).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The registry answered something this SDK cannot read.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Connecting failed (endpoint, TLS configuration).
    #[error("transport: {0}")]
    Transport(String),
    /// Offline verification failed (a receipt, a record, a key).
    #[error("verification failed: {0}")]
    Verification(String),
    /// Anything else the registry reported.
    #[error("{code:?}: {message}")]
    Other { code: Code, message: String },
}

impl Error {
    /// Whether retrying the same request (same request id) may succeed: the registry
    /// was unreachable, slow, or asked the caller to slow down.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::DeadlineExceeded(_) | Error::ResourceExhausted { retry_after: Some(_), .. }
        )
    }

    /// How long the registry asked the caller to wait before calling again, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::ResourceExhausted { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => {
                let (field, rule) = message.split_once(": ").unwrap_or(("", message.as_str()));
                Error::InvalidArgument { field: field.to_string(), message: rule.to_string() }
            }
            Code::NotFound => Error::NotFound(message),
            Code::AlreadyExists => Error::AlreadyExists(message),
            Code::FailedPrecondition => {
                match <crate::proto::FindDuplicatesResponse as prost::Message>::decode(status.details()) {
                    Ok(found) if !found.candidates.is_empty() => Error::PossibleDuplicate {
                        message,
                        candidates: found.candidates.into_iter().filter_map(crate::types::candidate_in).collect(),
                    },
                    _ => Error::FailedPrecondition(message),
                }
            }
            Code::Unauthenticated => Error::Unauthenticated(message),
            Code::PermissionDenied => Error::PermissionDenied(message),
            Code::Unavailable => Error::Unavailable(message),
            Code::DeadlineExceeded => Error::DeadlineExceeded(message),
            Code::ResourceExhausted => {
                // The registry's rate refusal says when to retry (gRPC's retry pushback);
                // a refusal without it (e.g. a message too large) is not retried.
                let retry_after = status
                    .metadata()
                    .get("grpc-retry-pushback-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .map(std::time::Duration::from_millis);
                Error::ResourceExhausted { message, retry_after }
            }
            Code::OutOfRange => Error::OutOfRange(message),
            code => Error::Other { code, message },
        }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(e: tonic::transport::Error) -> Self {
        Error::Transport(format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_an_engineer_matches_on() {
        let e = Error::from(tonic::Status::invalid_argument("huduma_number: check digit: the last digit ..."));
        assert_eq!(
            e,
            Error::InvalidArgument { field: "huduma_number".into(), message: "check digit: the last digit ...".into() }
        );
        assert!(matches!(Error::from(tonic::Status::not_found("x")), Error::NotFound(_)));
        assert!(Error::from(tonic::Status::unavailable("x")).is_retryable());
        assert!(!Error::from(tonic::Status::failed_precondition("x")).is_retryable());
        assert!(matches!(Error::from(tonic::Status::data_loss("x")), Error::Other { code: Code::DataLoss, .. }));
    }
}
