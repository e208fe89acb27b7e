//! The whole matrix of roles against RPCs: every role may call exactly the RPCs
//! `policy::Rpc::roles` grants it, a call without credentials or with an unknown token
//! is UNAUTHENTICATED, and health and reflection answer anyone.

use huduma_e2e::*;
use registry_server::auth::Role;
use registry_server::policy::Rpc;
use tokio_stream::StreamExt;
use tonic::Code;

/// Calls `rpc` as `bearer` with a well-formed request; returns the status code of the
/// answer (OK, or the refusal).
async fn call(server: &TestServer, bearer: Bearer, rpc: Rpc, number: &str) -> Code {
    let id = format!("{rpc:?}-{}", rand_suffix());
    let n = number.to_string();
    let record_id = format!("K-{id}");
    let record = || Some(pb::AgencyRecord { agency: "KRA".into(), record_id: record_id.clone() });
    match rpc {
        Rpc::RegisterPerson => code(server.registry(bearer).await.register_person(register_request(&id, 7)).await),
        Rpc::ReplaceNumber => code(
            server
                .registry(bearer)
                .await
                .replace_number(pb::ReplaceNumberRequest {
                    request_id: id,
                    huduma_number: n,
                    reason: pb::ReplacementReason::Lost as i32,
                    centre: "GPO-NAIROBI".into(),
                })
                .await,
        ),
        Rpc::CorrectDemographics => code(
            server
                .registry(bearer)
                .await
                .correct_demographics(pb::CorrectDemographicsRequest {
                    request_id: id,
                    huduma_number: n,
                    demographics: Some(demographics(8)),
                    centre: "GPO-NAIROBI".into(),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::RecordDeath => code(
            server
                .registry(bearer)
                .await
                .record_death(pb::RecordDeathRequest {
                    request_id: id,
                    huduma_number: n,
                    date_of_death: "2020-01-01".into(),
                    centre: "GPO-NAIROBI".into(),
                })
                .await,
        ),
        Rpc::RetractDeath => code(
            server
                .registry(bearer)
                .await
                .retract_death(pb::RetractDeathRequest {
                    request_id: id,
                    huduma_number: n,
                    reason: "matrix".into(),
                    centre: "GPO-NAIROBI".into(),
                })
                .await,
        ),
        Rpc::RevokeNumber => code(
            server
                .registry(bearer)
                .await
                .revoke_number(pb::RevokeNumberRequest {
                    request_id: id,
                    huduma_number: n,
                    reason: "matrix".into(),
                    centre: "GPO-NAIROBI".into(),
                })
                .await,
        ),
        Rpc::ReinstateNumber => code(
            server
                .registry(bearer)
                .await
                .reinstate_number(pb::ReinstateNumberRequest {
                    request_id: id,
                    huduma_number: n,
                    reason: "matrix".into(),
                    centre: "GPO-NAIROBI".into(),
                })
                .await,
        ),
        Rpc::LinkAgencyRecord => code(
            server
                .registry(bearer)
                .await
                .link_agency_record(pb::LinkAgencyRecordRequest {
                    request_id: id,
                    huduma_number: n,
                    record: record(),
                    centre: String::new(),
                })
                .await,
        ),
        Rpc::UnlinkAgencyRecord => code(
            server
                .registry(bearer)
                .await
                .unlink_agency_record(pb::UnlinkAgencyRecordRequest {
                    request_id: id,
                    huduma_number: n,
                    record: record(),
                    centre: String::new(),
                })
                .await,
        ),
        Rpc::MergeRecords => code(
            server
                .registry(bearer)
                .await
                .merge_records(pb::MergeRecordsRequest {
                    request_id: id,
                    survivor: n.clone(),
                    duplicate: n,
                    justification: "matrix".into(),
                    centre: "GPO-NAIROBI".into(),
                })
                .await,
        ),
        Rpc::UnmergeRecords => code(
            server
                .registry(bearer)
                .await
                .unmerge_records(pb::UnmergeRecordsRequest {
                    request_id: id,
                    duplicate: n,
                    justification: "matrix".into(),
                    centre: "GPO-NAIROBI".into(),
                })
                .await,
        ),
        Rpc::GetHistory => code(
            server
                .registry(bearer)
                .await
                .get_history(pb::GetHistoryRequest { huduma_number: n, purpose: "matrix".into(), ..Default::default() })
                .await,
        ),
        Rpc::ErasePersonalData => code(
            server
                .registry(bearer)
                .await
                .erase_personal_data(pb::ErasePersonalDataRequest {
                    request_id: id,
                    huduma_number: n,
                    legal_basis: "matrix".into(),
                })
                .await,
        ),
        Rpc::Resolve => code(
            server
                .resolver(bearer)
                .await
                .resolve(pb::ResolveRequest {
                    key: Some(pb::resolve_request::Key::HudumaNumber(n)),
                    purpose: "matrix".into(),
                })
                .await,
        ),
        Rpc::VerifyAttributes => code(
            server
                .resolver(bearer)
                .await
                .verify_attributes(pb::VerifyAttributesRequest {
                    key: Some(pb::PersonKey { key: Some(pb::person_key::Key::HudumaNumber(n)) }),
                    claimed: Some(demographics(7)),
                    purpose: "matrix".into(),
                })
                .await,
        ),
        Rpc::FindDuplicates => code(
            server
                .registry(bearer)
                .await
                .find_duplicates(pb::FindDuplicatesRequest {
                    demographics: Some(demographics(9)),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::ListAccesses => code(
            server
                .resolver(bearer)
                .await
                .list_accesses(pb::ListAccessesRequest { huduma_number: n, ..Default::default() })
                .await,
        ),
        Rpc::WatchChanges => {
            code(server.resolver(bearer).await.watch_changes(pb::WatchChangesRequest { from_index: 0 }).await)
        }
        Rpc::GetRecords => {
            match server
                .audit(bearer)
                .await
                .get_records(pb::GetRecordsRequest { start: 0, end: 1, ..Default::default() })
                .await
            {
                Ok(stream) => {
                    let items: Vec<_> = stream.into_inner().collect().await;
                    assert!(items.iter().all(Result::is_ok), "an authorised GetRecords streams records");
                    Code::Ok
                }
                Err(s) => s.code(),
            }
        }
        Rpc::GetVerifierKeys => {
            code(server.audit(bearer).await.get_verifier_keys(pb::GetVerifierKeysRequest::default()).await)
        }
        Rpc::GetCheckpoint => code(
            server.audit(bearer).await.get_checkpoint(pb::GetCheckpointRequest { size: 0, ..Default::default() }).await,
        ),
        Rpc::GetInclusionProof => code(
            server
                .audit(bearer)
                .await
                .get_inclusion_proof(pb::GetInclusionProofRequest { index: 0, tree_size: 1, ..Default::default() })
                .await,
        ),
        Rpc::GetConsistencyProof => code(
            server
                .audit(bearer)
                .await
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    old_size: 1,
                    new_size: 2,
                    ..Default::default()
                })
                .await,
        ),
        Rpc::Backup => {
            let name = format!("roles-{}", rand_suffix());
            match server.operations(bearer).await.backup(pb::BackupRequest { name }).await {
                Ok(stream) => {
                    let items: Vec<_> = stream.into_inner().collect().await;
                    let last = items.last().and_then(|item| item.as_ref().ok()).and_then(|p| p.stage.clone());
                    assert!(
                        matches!(last, Some(pb::backup_progress::Stage::Taken(_))),
                        "an authorised Backup ends with what it took: {items:?}"
                    );
                    Code::Ok
                }
                Err(s) => s.code(),
            }
        }
    }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.map_or_else(|s| s.code(), |_| Code::Ok)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn every_role_against_every_rpc() {
    let server = TestServer::start().await;
    // Each call targets a fresh active person, so an authorised call is not refused for
    // some other reason and every OK is a real answer.
    let mut refused = 0;
    for rpc in Rpc::ALL {
        for role in Role::ALL {
            let number = register(&server, &format!("p-{rpc:?}-{role:?}"), rand_suffix()).await;
            let before = server.log_size().await;
            let got = call(&server, Bearer::token(&server.token(role)), rpc, &number).await;
            let allowed = rpc.roles().contains(&role);
            if allowed {
                assert!(
                    !matches!(got, Code::PermissionDenied | Code::Unauthenticated),
                    "{role:?} may call {rpc:?}, got {got:?}"
                );
            } else {
                refused += 1;
                assert_eq!(got, Code::PermissionDenied, "{role:?} must not call {rpc:?}");
                assert_eq!(server.log_size().await, before, "a refused {rpc:?} by {role:?} wrote nothing");
            }
        }
        let unknown = "dev-nobody-00000000000000000000000000000000";
        assert_eq!(call(&server, Bearer::none(), rpc, "").await, Code::Unauthenticated, "{rpc:?} without a token");
        assert_eq!(call(&server, Bearer::token(unknown), rpc, "").await, Code::Unauthenticated, "{rpc:?}");
    }
    assert!(refused > 20, "the matrix refuses as well as allows ({refused} refusals)");
}

#[tokio::test]
async fn the_allowed_calls_succeed_for_their_roles() {
    let server = TestServer::start().await;
    for (role, rpc) in [
        (Role::Registrar, Rpc::RegisterPerson),
        (Role::Admin, Rpc::ErasePersonalData),
        (Role::Agency, Rpc::LinkAgencyRecord),
        (Role::Agency, Rpc::Resolve),
        (Role::Auditor, Rpc::GetRecords),
        (Role::CitizenPortal, Rpc::ListAccesses),
        (Role::Admin, Rpc::ListAccesses),
        (Role::CitizenPortal, Rpc::GetHistory),
        (Role::Auditor, Rpc::GetVerifierKeys),
    ] {
        let number = register(&server, &format!("ok-{role:?}-{rpc:?}"), rand_suffix()).await;
        assert_eq!(call(&server, Bearer::token(&server.token(role)), rpc, &number).await, Code::Ok, "{role:?} {rpc:?}");
    }
}

#[tokio::test]
async fn an_agency_touches_only_its_own_records() {
    let server = TestServer::start().await;
    let number = register(&server, "own", 1).await;
    let kra = Bearer::token(&server.token_of("kra"));
    let mut registry = server.registry(kra.clone()).await;
    let link = |agency: &str, id: &str| pb::LinkAgencyRecordRequest {
        request_id: id.into(),
        huduma_number: number.clone(),
        record: Some(pb::AgencyRecord { agency: agency.into(), record_id: "X-1".into() }),
        centre: String::new(),
    };
    let before = server.log_size().await;
    let err = registry.link_agency_record(link("NHIF", "l-1")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("KRA records only"), "{}", err.message());
    assert_eq!(server.log_size().await, before);
    registry.link_agency_record(link("KRA", "l-2")).await.unwrap();
    // NHIF links its own record; KRA sees only KRA's.
    let mut nhif = server.registry(Bearer::token(&server.token_of("nhif"))).await;
    nhif.link_agency_record(link("NHIF", "l-3")).await.unwrap();
    let mut resolver = server.resolver(kra).await;
    let seen = resolver
        .resolve(pb::ResolveRequest {
            key: Some(pb::resolve_request::Key::HudumaNumber(number.clone())),
            purpose: "tax".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let agencies: Vec<_> = seen.agency_records.iter().map(|r| r.agency.as_str()).collect();
    assert_eq!(agencies, vec!["KRA"]);
    let err = resolver
        .resolve(pb::ResolveRequest {
            key: Some(pb::resolve_request::Key::AgencyRecord(pb::AgencyRecord {
                agency: "NHIF".into(),
                record_id: "X-1".into(),
            })),
            purpose: "tax".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "KRA may not resolve NHIF's records");
}

#[tokio::test]
async fn health_and_reflection_answer_without_credentials() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "huduma.v1.Registry", "huduma.v1.Resolver", "huduma.v1.Audit"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    // Reflection v1 and v1alpha both list the services (what grpcurl asks first).
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(server.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        let Some(Ok(answer)) = answers.next().await else { panic!("no reflection answer") };
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else { panic!("not a list") };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        for wanted in ["huduma.v1.Registry", "huduma.v1.Resolver", "huduma.v1.Audit", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == wanted), "v1 lists {wanted}: {names:?}");
        }
    }
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(server.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol("huduma.v1.Resolver".into())),
        };
        let mut answers = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        let Some(Ok(answer)) = answers.next().await else { panic!("no reflection answer") };
        let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
            panic!("v1alpha answers with the file that defines the symbol")
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
}

/// Principals and agencies' policies reloaded while serving (as a SIGHUP does): a
/// withdrawn token is refused from the next call and its replacement accepted; an
/// agency's change stream goes on across a reload that leaves its access as it was,
/// and ends UNAUTHENTICATED once a reload narrows what it may see; the narrowed policy
/// applies to the next look-up; and a withdrawn agency token is refused.
#[tokio::test]
async fn a_reload_withdraws_tokens_and_streams_and_narrows_policies_while_serving() {
    let mut server = TestServer::start().await;
    let number = register(&server, "r-1", 1).await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let link = pb::LinkAgencyRecordRequest {
        request_id: "l-1".into(),
        huduma_number: number.clone(),
        record: Some(pb::AgencyRecord { agency: "KRA".into(), record_id: "K-1".into() }),
        centre: "GPO-NAIROBI".into(),
    };
    registry.link_agency_record(link).await.unwrap();
    let mut kra = server.resolver(Bearer::token(&server.token_of("kra"))).await;
    let mut changes = kra.watch_changes(pb::WatchChangesRequest { from_index: 0 }).await.unwrap().into_inner();
    assert_eq!(changes.next().await.unwrap().unwrap().kind, pb::ChangeKind::AgencyRecordLinked as i32);
    let look_up = || pb::ResolveRequest {
        key: Some(pb::resolve_request::Key::HudumaNumber(number.clone())),
        purpose: "PAYE filing".into(),
    };
    let seen = kra.resolve(look_up()).await.unwrap().into_inner();
    assert_eq!(seen.huduma_number, number);
    assert!(seen.demographics.is_some_and(|d| !d.given_name.is_empty()));

    // The registrar's token rotated: the old one is refused from the next call.
    let rotated = "rotated-registrar-token-0123456789";
    server.reload_access(|loaded| {
        let registrar = loaded.config.principals.iter_mut().find(|p| p.role == Role::Registrar).unwrap();
        registrar.token = Some(rotated.into());
    });
    let refused = registry.register_person(register_request("r-2", 2)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{}", refused.message());
    let mut registry = server.registry(Bearer::token(rotated)).await;
    registry.register_person(register_request("r-2", 2)).await.expect("the new token is in force");
    // KRA's access did not change: its stream goes on.
    let revoke = pb::RevokeNumberRequest {
        request_id: "v-1".into(),
        huduma_number: number.clone(),
        reason: "check".into(),
        centre: "GPO-NAIROBI".into(),
    };
    let revoked = registry.revoke_number(revoke).await.unwrap().into_inner().receipt.unwrap().index;
    let live =
        tokio::time::timeout(std::time::Duration::from_secs(10), changes.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((live.index, live.kind), (revoked, pb::ChangeKind::NumberRevoked as i32));

    // KRA's policy withdrawn: its stream ends, and its next look-up sees nothing personal.
    server.reload_access(|loaded| loaded.config.agencies.retain(|a| a.code != "KRA"));
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), changes.next()).await.unwrap();
    let status = ended.expect("the stream says why it ends").expect_err("ended by the reload");
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    assert!(status.message().contains("kra"), "{}", status.message());
    let narrowed = kra.resolve(look_up()).await.unwrap().into_inner();
    assert_eq!((narrowed.huduma_number.as_str(), narrowed.demographics), ("", None));

    // KRA's token withdrawn: refused.
    server.reload_access(|loaded| {
        let kra = loaded.config.principals.iter_mut().find(|p| p.name == "kra").unwrap();
        kra.token = Some("rotated-kra-token-0123456789abcdef".into());
    });
    assert_eq!(kra.resolve(look_up()).await.unwrap_err().code(), Code::Unauthenticated);
}
