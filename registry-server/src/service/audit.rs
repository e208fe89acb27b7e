//! `huduma.v1.Audit`: the log's exact bytes and its keys, for auditors.

use std::sync::Arc;

use registry_core::keys::note_verifier_key;
use registry_core::registry::Registry;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::metrics::timed;
use crate::policy::{Rpc, authorize};
use crate::proto as pb;
use crate::proto::audit_server::Audit as AuditRpc;
use crate::wire;

pub struct AuditService {
    registry: Arc<Registry>,
}

impl AuditService {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
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
            authorize(&request, Rpc::GetRecords)?;
            let r = request.into_inner();
            let size = *self.registry.durable_size().borrow();
            let end = if r.end == 0 { size } else { r.end };
            if end > size {
                return Err(Status::out_of_range(format!("end: the log has {size} records")));
            }
            if r.start > end {
                return Err(wire::invalid("start", format!("{} is after end {end}", r.start)));
            }
            let (tx, rx) = mpsc::channel(256);
            let reader = self.registry.reader();
            let start = r.start;
            tokio::task::spawn_blocking(move || {
                for index in start..end {
                    let item = match reader.record(index) {
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
            let reader = self.registry.reader();
            let log_size = *self.registry.durable_size().borrow();
            let origin = reader.origin().map_err(wire::query_error)?.unwrap_or_default();
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
}
