//! The streaming RPCs: an agency's change stream (live, resumed from an index, and
//! told of a merge undone) and an auditor's download of the exact records, verified with the published key.

use huduma_e2e::*;
use registry_server::auth::Role;
use tokio_stream::StreamExt;
use tonic::Code;

/// A registrar's request linking KRA's record `record_id` to the person with `number`.
fn kra_link(number: &str, record_id: &str) -> pb::LinkAgencyRecordRequest {
    pb::LinkAgencyRecordRequest {
        request_id: format!("link-{record_id}"),
        huduma_number: number.into(),
        record: Some(pb::AgencyRecord { agency: "KRA".into(), record_id: record_id.into() }),
        centre: "GPO-NAIROBI".into(),
    }
}

#[tokio::test]
async fn watch_changes_follows_live_and_resumes_from_an_index() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let linked = register(&server, "a", 1).await;
    let unlinked = register(&server, "b", 2).await;
    let link_index =
        registry.link_agency_record(kra_link(&linked, "K-1")).await.unwrap().into_inner().receipt.unwrap().index;

    let mut kra = server.resolver(Bearer::token(&server.token_of("kra"))).await;
    let mut changes = kra.watch_changes(pb::WatchChangesRequest { from_index: 0 }).await.unwrap().into_inner();
    let first = changes.next().await.unwrap().unwrap();
    assert_eq!((first.index, first.kind), (link_index, pb::ChangeKind::AgencyRecordLinked as i32));
    assert_eq!(
        (first.huduma_number.as_str(), first.record_ids.as_slice()),
        (linked.as_str(), &["K-1".to_string()][..])
    );

    // Live: a change to an unlinked person is not KRA's business; one to the linked is.
    let revoke = |id: &str, n: &str| pb::RevokeNumberRequest {
        request_id: id.into(),
        huduma_number: n.into(),
        reason: "check".into(),
        centre: "GPO-NAIROBI".into(),
    };
    registry.revoke_number(revoke("v-1", &unlinked)).await.unwrap();
    let revoked = registry.revoke_number(revoke("v-2", &linked)).await.unwrap().into_inner().receipt.unwrap().index;
    let live =
        tokio::time::timeout(std::time::Duration::from_secs(10), changes.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(
        (live.index, live.kind, live.status),
        (revoked, pb::ChangeKind::NumberRevoked as i32, pb::Status::Revoked as i32)
    );
    drop(changes);

    // Resume after the last index seen: only what came after.
    let reinstated = registry
        .reinstate_number(pb::ReinstateNumberRequest {
            request_id: "i-1".into(),
            huduma_number: linked.clone(),
            reason: "cleared".into(),
            centre: "GPO-NAIROBI".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .index;
    let mut resumed =
        kra.watch_changes(pb::WatchChangesRequest { from_index: revoked + 1 }).await.unwrap().into_inner();
    let next = resumed.next().await.unwrap().unwrap();
    assert_eq!((next.index, next.kind), (reinstated, pb::ChangeKind::NumberReinstated as i32));

    // NHIF has no linked person: its stream stays quiet.
    let mut nhif = server.resolver(Bearer::token(&server.token_of("nhif"))).await;
    let mut quiet = nhif.watch_changes(pb::WatchChangesRequest { from_index: 0 }).await.unwrap().into_inner();
    assert!(tokio::time::timeout(std::time::Duration::from_millis(300), quiet.next()).await.is_err());
}

/// A merge undone over gRPC: the person unmerged resolves active again, and an agency
/// whose record went back with them is told on its stream, on that person's number.
/// What may not be unmerged is refused, by status or by field, and writes nothing.
#[tokio::test]
async fn an_unmerge_gives_the_record_back_and_tells_its_agency() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let survivor = register(&server, "a", 1).await;
    let duplicate = register(&server, "b", 2).await;
    registry.link_agency_record(kra_link(&duplicate, "K-9")).await.unwrap();
    let merge = pb::MergeRecordsRequest {
        request_id: "m".into(),
        survivor: survivor.clone(),
        duplicate: duplicate.clone(),
        justification: "one person".into(),
        centre: "GPO-NAIROBI".into(),
    };
    let merged = registry.merge_records(merge).await.unwrap().into_inner().receipt.unwrap().index;
    let unmerge = |id: &str, duplicate: &str, justification: &str| pb::UnmergeRecordsRequest {
        request_id: id.into(),
        duplicate: duplicate.into(),
        justification: justification.into(),
        centre: "GPO-NAIROBI".into(),
    };

    let before = server.log_size().await;
    let answer = registry.unmerge_records(unmerge("x1", &survivor, "two persons")).await;
    refused(&server, before, answer, Code::FailedPrecondition, "unmerge").await;
    let answer = registry.unmerge_records(unmerge("x2", &duplicate, "")).await;
    refused(&server, before, answer, Code::InvalidArgument, "justification").await;
    let answer = registry.unmerge_records(unmerge("x3", "1234", "two persons")).await;
    refused(&server, before, answer, Code::InvalidArgument, "duplicate").await;

    let mut kra = server.resolver(Bearer::token(&server.token_of("kra"))).await;
    let mut changes = kra.watch_changes(pb::WatchChangesRequest { from_index: merged }).await.unwrap().into_inner();
    let first = changes.next().await.unwrap().unwrap();
    assert_eq!((first.index, first.kind), (merged, pb::ChangeKind::RecordsMerged as i32));
    let unmerged = registry
        .unmerge_records(unmerge("u", &duplicate, "two persons: fingerprints differ"))
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap()
        .index;
    let (kind, status) = (pb::ChangeKind::RecordsUnmerged as i32, pb::Status::Active as i32);
    assert_eq!(next_change(&mut changes).await, (unmerged, kind, status, duplicate.clone(), vec!["K-9".into()]));
    let resolved = resolve(&server, &duplicate).await;
    assert_eq!((resolved.status, resolved.superseded_by.as_str()), (pb::Status::Active as i32, ""));
}

/// A death recorded in error is retracted over gRPC: the refusals by code and field,
/// writing nothing; the person resolves ACTIVE with no date of death; KRA's stream
/// is told DEATH_RETRACTED on the person's number, with its record.
#[tokio::test]
async fn a_retracted_death_tells_the_agency_the_person_is_alive() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let alive = register(&server, "a", 1).await;
    registry.link_agency_record(kra_link(&alive, "K-7")).await.unwrap();
    let death = pb::RecordDeathRequest {
        request_id: "d".into(),
        huduma_number: alive.clone(),
        date_of_death: "2025-06-30".into(),
        centre: "GPO-NAIROBI".into(),
    };
    let died = registry.record_death(death).await.unwrap().into_inner().receipt.unwrap().index;
    let retract = |id: &str, number: &str, reason: &str| pb::RetractDeathRequest {
        request_id: id.into(),
        huduma_number: number.into(),
        reason: reason.into(),
        centre: "GPO-NAIROBI".into(),
    };

    let other = register(&server, "b", 2).await;
    let before = server.log_size().await;
    let answer = registry.retract_death(retract("x1", &alive, "")).await;
    refused(&server, before, answer, Code::InvalidArgument, "reason").await;
    let answer = registry.retract_death(retract("x2", "1234", "alive")).await;
    refused(&server, before, answer, Code::InvalidArgument, "huduma_number").await;
    let answer = registry.retract_death(retract("x3", &other, "alive")).await;
    refused(&server, before, answer, Code::FailedPrecondition, "retract a death").await;

    let mut kra = server.resolver(Bearer::token(&server.token_of("kra"))).await;
    let mut changes = kra.watch_changes(pb::WatchChangesRequest { from_index: died }).await.unwrap().into_inner();
    let first = changes.next().await.unwrap().unwrap();
    assert_eq!((first.index, first.kind), (died, pb::ChangeKind::DeathRecorded as i32));
    let request = retract("t", &alive, "appeared in person at the centre");
    let retracted = registry.retract_death(request).await.unwrap().into_inner().receipt.unwrap().index;
    let (kind, status) = (pb::ChangeKind::DeathRetracted as i32, pb::Status::Active as i32);
    assert_eq!(next_change(&mut changes).await, (retracted, kind, status, alive.clone(), vec!["K-7".into()]));
    let resolved = resolve(&server, &alive).await;
    assert_eq!((resolved.status, resolved.date_of_death.as_str()), (pb::Status::Active as i32, ""));
}

#[tokio::test]
async fn an_auditor_downloads_the_exact_records_and_verifies_them() {
    use registry_core::keys::parse_note_verifier_key;
    use registry_core::verify::LogVerifier;
    let server = TestServer::start().await;
    for i in 0..20 {
        register(&server, &format!("r-{i}"), i).await;
    }
    let mut audit = server.audit(Bearer::token(&server.token(Role::Auditor))).await;
    let keys = audit.get_verifier_keys(pb::GetVerifierKeysRequest::default()).await.unwrap().into_inner();
    assert_eq!(keys.log_size, 21);
    assert_eq!(keys.keys.len(), 1);
    assert!(keys.keys[0].verifier_key.starts_with(&format!("{}+", keys.origin)));
    let (_, genesis) = parse_note_verifier_key(&keys.keys[0].verifier_key).unwrap();

    let records: Vec<pb::Record> = audit
        .get_records(pb::GetRecordsRequest { start: 0, end: 0, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    assert_eq!(records.len(), 21);
    let mut verifier = LogVerifier::new(Some(genesis));
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.index, i as u64);
        verifier.push(&record.data).expect("each record chains");
    }
    let (count, _, key_ids) = verifier.finish().expect("every signature verifies");
    assert_eq!((count, key_ids.len()), (21, 1));
    // A window, and the bounds.
    let window: Vec<u64> = audit
        .get_records(pb::GetRecordsRequest { start: 5, end: 8, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().index)
        .collect()
        .await;
    assert_eq!(window, vec![5, 6, 7]);
    let err = audit.get_records(pb::GetRecordsRequest { start: 0, end: 99, ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let err = audit.get_records(pb::GetRecordsRequest { start: 9, end: 3, ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn checkpoints_and_proofs_verify_with_the_published_key() {
    use huduma_log::checkpoint::Checkpoint;
    use huduma_log::keys::parse_note_verifier_key;
    use huduma_log::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    let server = TestServer::start().await;
    let registrar = Bearer::token(&server.token(Role::Registrar));
    let mut registry = server.registry(registrar.clone()).await;
    let first = registry.register_person(register_request("r-0", 0)).await.unwrap().into_inner();
    let receipt = first.receipt.unwrap();
    for i in 1..12 {
        register(&server, &format!("r-{i}"), i).await;
    }
    let mut auditor = server.audit(Bearer::token(&server.token(Role::Auditor))).await;
    let keys = auditor.get_verifier_keys(pb::GetVerifierKeysRequest::default()).await.unwrap().into_inner();
    let (name, key) = parse_note_verifier_key(&keys.keys[0].verifier_key).unwrap();
    // The newest checkpoint is at most the interval (1 s) behind; the log is idle, so it
    // catches up at once.
    let mut checkpoint = None;
    for _ in 0..100 {
        let note = auditor
            .get_checkpoint(pb::GetCheckpointRequest { size: 0, ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .note;
        let opened = Checkpoint::open(&note, &name, &key).expect("signed by the log key");
        if opened.size == keys.log_size {
            checkpoint = Some(opened);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let checkpoint = checkpoint.expect("a checkpoint of the whole log");
    // The registrar proves its receipt's record is in the checkpointed tree.
    let mut as_registrar = server.audit(registrar).await;
    let proof = as_registrar
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            index: receipt.index,
            tree_size: checkpoint.size,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let hashes: Vec<[u8; 32]> = proof.hashes.iter().map(|h| h.as_slice().try_into().unwrap()).collect();
    let record: Vec<pb::Record> = auditor
        .get_records(pb::GetRecordsRequest { start: receipt.index, end: receipt.index + 1, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    assert!(verify_inclusion(receipt.index, checkpoint.size, &leaf_hash(&record[0].data), &hashes, &checkpoint.root));
    // A smaller checkpoint is consistent with the newest.
    let older =
        auditor.get_checkpoint(pb::GetCheckpointRequest { size: receipt.index + 1, ..Default::default() }).await;
    if let Ok(older) = older {
        let older = Checkpoint::open(&older.into_inner().note, &name, &key).unwrap();
        let proof = auditor
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: older.size,
                new_size: checkpoint.size,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<[u8; 32]> = proof.hashes.iter().map(|h| h.as_slice().try_into().unwrap()).collect();
        assert!(verify_consistency(older.size, checkpoint.size, &older.root, &checkpoint.root, &hashes));
    }
    // Bounds: named fields.
    let err = auditor
        .get_inclusion_proof(pb::GetInclusionProofRequest { index: 5, tree_size: 5, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message().starts_with("index:")), (Code::InvalidArgument, true));
    let err = auditor
        .get_consistency_proof(pb::GetConsistencyProofRequest { old_size: 1, new_size: 10_000, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let err = auditor.get_checkpoint(pb::GetCheckpointRequest { size: 9_999, ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

/// A reload that withdraws an auditor's token ends its download at the next record
/// (after what the stream had buffered): UNAUTHENTICATED, before the log's end, every
/// record sent before it in order.
#[tokio::test]
async fn a_download_ends_once_a_reload_withdraws_the_auditors_token() {
    // More records than the stream and the connection buffer ahead of the reader.
    let mut server = TestServer::start().await;
    server.fill(20_000).await;
    let size = server.log_size().await;
    let mut auditor = server.audit(Bearer::token(&server.token(Role::Auditor))).await;
    let whole = pb::GetRecordsRequest { start: 0, end: 0, ..Default::default() };
    let mut records = auditor.get_records(whole).await.unwrap().into_inner();
    assert_eq!(records.next().await.unwrap().unwrap().index, 0);
    server.reload_access(|loaded| {
        let auditor = loaded.config.principals.iter_mut().find(|p| p.role == Role::Auditor).unwrap();
        auditor.token = Some("rotated-auditor-token-0123456789".into());
    });
    let mut received = 1;
    let ended = loop {
        match records.next().await {
            Some(Ok(record)) => {
                assert_eq!(record.index, received);
                received += 1;
            }
            Some(Err(status)) => break status,
            None => panic!("the download ran to its end ({received} of {size}) after the token was withdrawn"),
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated, "{}", ended.message());
    assert!(received < size, "{received} of {size}");
}
