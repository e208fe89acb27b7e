//! The streaming RPCs: an agency's change stream (live, and resumed from an index) and
//! an auditor's download of the exact records, verified with the published key.

use huduma_e2e::*;
use registry_server::auth::Role;
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn watch_changes_follows_live_and_resumes_from_an_index() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let linked = register(&server, "a", 1).await;
    let unlinked = register(&server, "b", 2).await;
    let link = pb::LinkAgencyRecordRequest {
        request_id: "l".into(),
        huduma_number: linked.clone(),
        record: Some(pb::AgencyRecord { agency: "KRA".into(), record_id: "K-1".into() }),
        centre: "GPO-NAIROBI".into(),
    };
    let link_index = registry.link_agency_record(link).await.unwrap().into_inner().receipt.unwrap().index;

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

#[tokio::test]
async fn an_auditor_downloads_the_exact_records_and_verifies_them() {
    use registry_core::keys::parse_note_verifier_key;
    use registry_core::verify::LogVerifier;
    let server = TestServer::start().await;
    for i in 0..20 {
        register(&server, &format!("r-{i}"), i).await;
    }
    let mut audit = server.audit(Bearer::token(&server.token(Role::Auditor))).await;
    let keys = audit.get_verifier_keys(pb::GetVerifierKeysRequest {}).await.unwrap().into_inner();
    assert_eq!(keys.log_size, 21);
    assert_eq!(keys.keys.len(), 1);
    assert!(keys.keys[0].verifier_key.starts_with(&format!("{}+", keys.origin)));
    let (_, genesis) = parse_note_verifier_key(&keys.keys[0].verifier_key).unwrap();

    let records: Vec<pb::Record> = audit
        .get_records(pb::GetRecordsRequest { start: 0, end: 0 })
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
        .get_records(pb::GetRecordsRequest { start: 5, end: 8 })
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().index)
        .collect()
        .await;
    assert_eq!(window, vec![5, 6, 7]);
    let err = audit.get_records(pb::GetRecordsRequest { start: 0, end: 99 }).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let err = audit.get_records(pb::GetRecordsRequest { start: 9, end: 3 }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
