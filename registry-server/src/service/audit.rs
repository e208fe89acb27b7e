//! `huduma.v1.Audit`: the exact bytes, keys, checkpoints and proofs of the identity log
//! and of the access log, for auditors.

use std::sync::Arc;

use registry_core::keys::note_verifier_key;
use registry_core::registry::Registry;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::access_control::AccessControl;
use crate::auth::credential;
use crate::metrics::timed;
use crate::policy::{Rpc, authorize};
use crate::proto as pb;
use crate::proto::audit_server::Audit as AuditRpc;
use crate::wire;

pub struct AuditService {
    registry: Arc<Registry>,
    access: AccessControl,
}

impl AuditService {
    pub fn new(registry: Arc<Registry>, access: AccessControl) -> Self {
        Self { registry, access }
    }

    /// The log a request names.
    fn log(&self, field: &str, value: i32) -> Result<AuditedLog, Status> {
        match pb::LogName::try_from(value) {
            Ok(pb::LogName::Identity) => Ok(AuditedLog::Identity(self.registry.reader())),
            Ok(pb::LogName::Access) => Ok(AuditedLog::Access(self.registry.access().reader())),
            Err(_) => Err(wire::invalid(field, format!("{value} is not a value of huduma.v1.LogName"))),
        }
    }
}

/// One of the two logs, read the same way.
#[derive(Clone)]
enum AuditedLog {
    Identity(registry_core::query::Reader),
    Access(registry_core::access::AccessReader),
}

type Hashes = Vec<[u8; 32]>;

impl AuditedLog {
    /// How many records an auditor may read: the durable end of the log.
    fn size(&self, registry: &Registry) -> Result<u64, Status> {
        match self {
            AuditedLog::Identity(_) => Ok(*registry.durable_size().borrow()),
            AuditedLog::Access(reader) => reader.size().map_err(wire::query_error),
        }
    }

    fn record(&self, index: u64) -> Result<Option<Vec<u8>>, registry_core::query::QueryError> {
        match self {
            AuditedLog::Identity(reader) => reader.record(index),
            AuditedLog::Access(reader) => reader.record(index),
        }
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, registry_core::query::QueryError> {
        match self {
            AuditedLog::Identity(reader) => reader.latest_checkpoint(),
            AuditedLog::Access(reader) => reader.latest_checkpoint(),
        }
    }

    fn checkpoint_at(&self, size: u64) -> Result<Option<String>, registry_core::query::QueryError> {
        match self {
            AuditedLog::Identity(reader) => reader.checkpoint_at(size),
            AuditedLog::Access(reader) => reader.checkpoint_at(size),
        }
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Hashes, registry_core::query::ProofFailure> {
        match self {
            AuditedLog::Identity(reader) => reader.inclusion_proof(index, size),
            AuditedLog::Access(reader) => reader.inclusion_proof(index, size),
        }
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Hashes, registry_core::query::ProofFailure> {
        match self {
            AuditedLog::Identity(reader) => reader.consistency_proof(old, new),
            AuditedLog::Access(reader) => reader.consistency_proof(old, new),
        }
    }
}

#[tonic::async_trait]
impl AuditRpc for AuditService {
    type GetRecordsStream = ReceiverStream<Result<pb::Record, Status>>;

    async fn get_records(
        &self,
        request: Request<pb::GetRecordsRequest>,
    ) -> Result<Response<Self::GetRecordsStream>, Status> {
        timed(Rpc::GetRecords, async {
            let principal = authorize(&request, Rpc::GetRecords)?;
            let view = self.access.current().disclosure.view_for(&principal);
            let mut grant = self.access.grant(credential(&request)?, principal, view);
            let r = request.into_inner();
            let log = self.log("log", r.log)?;
            let size = log.size(&self.registry)?;
            let end = if r.end == 0 { size } else { r.end };
            if end > size {
                return Err(Status::out_of_range(format!("end: the log has {size} records")));
            }
            if r.start > end {
                return Err(wire::invalid("start", format!("{} is after end {end}", r.start)));
            }
            let (tx, rx) = mpsc::channel(256);
            let start = r.start;
            tokio::task::spawn_blocking(move || {
                for index in start..end {
                    // A download of the whole log takes a while: a reload that
                    // withdraws the auditor's credential ends it at the next record.
                    if grant.is_withdrawn() {
                        let _ = tx.blocking_send(Err(grant.status()));
                        return;
                    }
                    let item = match log.record(index) {
                        Ok(Some(data)) => Ok(pb::Record { index, data }),
                        Ok(None) => Err(Status::data_loss(format!("record {index} is missing from the log"))),
                        Err(e) => Err(wire::query_error(e)),
                    };
                    let failed = item.is_err();
                    if tx.blocking_send(item).is_err() || failed {
                        return;
                    }
                }
            });
            Ok(Response::new(ReceiverStream::new(rx)))
        })
        .await
    }

    async fn get_verifier_keys(
        &self,
        request: Request<pb::GetVerifierKeysRequest>,
    ) -> Result<Response<pb::GetVerifierKeysResponse>, Status> {
        timed(Rpc::GetVerifierKeys, async {
            authorize(&request, Rpc::GetVerifierKeys)?;
            let log = self.log("log", request.into_inner().log)?;
            let reader = self.registry.reader();
            let log_size = log.size(&self.registry)?;
            let origin = match log {
                AuditedLog::Identity(_) => reader.origin().map_err(wire::query_error)?.unwrap_or_default(),
                AuditedLog::Access(_) => self.registry.access().origin().to_string(),
            };
            let keys = reader
                .log_keys()
                .map_err(wire::query_error)?
                .into_iter()
                .map(|(from_index, key)| pb::VerifierKey { verifier_key: note_verifier_key(&origin, &key), from_index })
                .collect();
            Ok(Response::new(pb::GetVerifierKeysResponse { origin, keys, log_size }))
        })
        .await
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        timed(Rpc::GetCheckpoint, async {
            authorize(&request, Rpc::GetCheckpoint)?;
            let r = request.into_inner();
            let size = r.size;
            let reader = self.log("log", r.log)?;
            let note = if size == 0 {
                reader.latest_checkpoint().map_err(wire::query_error)?.map(|(_, note)| note)
            } else {
                reader.checkpoint_at(size).map_err(wire::query_error)?
            };
            let note = note.ok_or_else(|| {
                let latest = reader.latest_checkpoint().ok().flatten().map_or(0, |(at, _)| at);
                Status::not_found(format!("size: no checkpoint was signed at {size}; the newest is at {latest}"))
            })?;
            Ok(Response::new(pb::Checkpoint { note }))
        })
        .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::Proof>, Status> {
        timed(Rpc::GetInclusionProof, async {
            authorize(&request, Rpc::GetInclusionProof)?;
            let r = request.into_inner();
            let log = self.log("log", r.log)?;
            let size = log.size(&self.registry)?;
            if r.tree_size > size {
                return Err(Status::out_of_range(format!("tree_size: the log has {size} records")));
            }
            if r.index >= r.tree_size {
                return Err(wire::invalid("index", format!("{} is not below tree_size {}", r.index, r.tree_size)));
            }
            let proof = log.inclusion_proof(r.index, r.tree_size).map_err(proof_error)?;
            Ok(Response::new(pb::Proof { hashes: proof.into_iter().map(|h| h.to_vec()).collect() }))
        })
        .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::Proof>, Status> {
        timed(Rpc::GetConsistencyProof, async {
            authorize(&request, Rpc::GetConsistencyProof)?;
            let r = request.into_inner();
            let log = self.log("log", r.log)?;
            let size = log.size(&self.registry)?;
            if r.new_size > size {
                return Err(Status::out_of_range(format!("new_size: the log has {size} records")));
            }
            if r.old_size > r.new_size {
                return Err(wire::invalid("old_size", format!("{} is past new_size {}", r.old_size, r.new_size)));
            }
            let proof = log.consistency_proof(r.old_size, r.new_size).map_err(proof_error)?;
            Ok(Response::new(pb::Proof { hashes: proof.into_iter().map(|h| h.to_vec()).collect() }))
        })
        .await
    }
}

fn proof_error(e: registry_core::query::ProofFailure) -> Status {
    match e {
        registry_core::query::ProofFailure::Range(why) => Status::invalid_argument(why),
        registry_core::query::ProofFailure::Read(read) => wire::query_error(read.into()),
    }
}
