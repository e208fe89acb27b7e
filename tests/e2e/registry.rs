//! Every Registry and Resolver RPC against a real server: what each changes, what each
//! refuses (code and message naming the field), that a refusal writes nothing, that a
//! repeated request id answers the first answer, and that a restart keeps everything.

use huduma_e2e::*;
use registry_server::auth::Role;
use tonic::Code;

#[tokio::test]
async fn a_life_in_the_registry_over_grpc() {
    let mut server = TestServer::start().await;
    let registrar = Bearer::token(&server.token(Role::Registrar));
    let mut registry = server.registry(registrar.clone()).await;

    // Register; the answer carries a receipt for the record.
    let answer = registry.register_person(register_request("r-1", 1)).await.unwrap().into_inner();
    let number = answer.huduma_number.clone();
    assert_eq!(number.len(), 12);
    number.parse::<huduma_number::HudumaNumber>().expect("a valid number with its check digit");
    let receipt = answer.receipt.expect("receipt");
    assert_eq!((receipt.record_hash.len(), receipt.signature.len()), (32, 64));
    // The same request id answers the same number, and appends nothing.
    let size = server.log_size().await;
    let again = registry.register_person(register_request("r-1", 1)).await.unwrap().into_inner();
    assert_eq!(again.huduma_number, number);
    assert_eq!(server.log_size().await, size);
    let seen = resolve(&server, &number).await;
    assert_eq!(seen.status, pb::Status::Active as i32);
    assert_eq!(seen.demographics, Some(demographics(1)));

    // Correct, link, replace: the old number resolves SUPERSEDED to the new one.
    registry
        .correct_demographics(pb::CorrectDemographicsRequest {
            request_id: "c-1".into(),
            huduma_number: number.clone(),
            demographics: Some(demographics(2)),
            centre: "GPO-NAIROBI".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(resolve(&server, &number).await.demographics, Some(demographics(2)));
    registry
        .link_agency_record(pb::LinkAgencyRecordRequest {
            request_id: "l-1".into(),
            huduma_number: number.clone(),
            record: Some(pb::AgencyRecord { agency: "KRA".into(), record_id: "A012345678Z".into() }),
            centre: "GPO-NAIROBI".into(),
        })
        .await
        .unwrap();
    let replaced = registry
        .replace_number(pb::ReplaceNumberRequest {
            request_id: "x-1".into(),
            huduma_number: number.clone(),
            reason: pb::ReplacementReason::Compromised as i32,
            centre: "GPO-NAIROBI".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .new_huduma_number;
    let old = resolve(&server, &number).await;
    assert_eq!((old.status, old.superseded_by.as_str()), (pb::Status::Superseded as i32, replaced.as_str()));
    // An agency resolves by its own record id, and is told the number in force.
    let mut kra = server.resolver(Bearer::token(&server.token_of("kra"))).await;
    let by_record = kra
        .resolve(pb::ResolveRequest {
            key: Some(pb::resolve_request::Key::AgencyRecord(pb::AgencyRecord {
                agency: "KRA".into(),
                record_id: "A012345678Z".into(),
            })),
            purpose: "PIN issuance".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((by_record.huduma_number.as_str(), by_record.status), (replaced.as_str(), pb::Status::Active as i32));

    // Revoke, reinstate, death.
    let revoke = pb::RevokeNumberRequest {
        request_id: "v-1".into(),
        huduma_number: replaced.clone(),
        reason: "suspected fraud".into(),
        centre: "GPO-NAIROBI".into(),
    };
    registry.revoke_number(revoke).await.unwrap();
    assert_eq!(resolve(&server, &replaced).await.status, pb::Status::Revoked as i32);
    let before = server.log_size().await;
    let replace_revoked = registry
        .replace_number(pb::ReplaceNumberRequest {
            request_id: "x-2".into(),
            huduma_number: replaced.clone(),
            reason: pb::ReplacementReason::Lost as i32,
            centre: "GPO-NAIROBI".into(),
        })
        .await;
    refused(&server, before, replace_revoked, Code::FailedPrecondition, "Revoked").await;
    registry
        .reinstate_number(pb::ReinstateNumberRequest {
            request_id: "i-1".into(),
            huduma_number: replaced.clone(),
            reason: "cleared".into(),
            centre: "GPO-NAIROBI".into(),
        })
        .await
        .unwrap();
    registry
        .record_death(pb::RecordDeathRequest {
            request_id: "d-1".into(),
            huduma_number: replaced.clone(),
            date_of_death: "2024-02-29".into(),
            centre: "KNH-MORTUARY".into(),
        })
        .await
        .unwrap();
    let dead = resolve(&server, &replaced).await;
    assert_eq!((dead.status, dead.date_of_death.as_str()), (pb::Status::Deceased as i32, "2024-02-29"));

    // The same person enrolled again is refused as a likely duplicate, naming the
    // first enrolment; the registrar may override with a justification (recorded).
    let survivor = register(&server, "s-1", 3).await;
    let before = server.log_size().await;
    let refused = registry.register_person(register_request("s-2", 3)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
    let shown = survivor.parse::<registry_core::HudumaNumber>().unwrap().to_string();
    assert!(refused.message().contains(&shown), "{} names {shown}", refused.message());
    let details: pb::FindDuplicatesResponse = prost::Message::decode(refused.details()).unwrap();
    assert_eq!(details.candidates[0].huduma_number, survivor);
    assert!(details.candidates[0].above_threshold);
    assert_eq!(server.log_size().await, before, "a refused registration writes nothing");
    let found = registry
        .find_duplicates(pb::FindDuplicatesRequest { demographics: Some(demographics(3)), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.candidates[0].huduma_number, survivor);
    let mut overriding = register_request("s-2", 3);
    overriding.duplicate_override_justification = "legacy MPR import: kept apart until reviewed".into();
    let duplicate = registry.register_person(overriding).await.unwrap().into_inner().huduma_number;
    assert_ne!(duplicate, survivor);
    // Merge the duplicate into the survivor; then erase the survivor (admin only).
    registry
        .merge_records(pb::MergeRecordsRequest {
            request_id: "m-1".into(),
            survivor: survivor.clone(),
            duplicate: duplicate.clone(),
            justification: "same person enrolled twice".into(),
            centre: "GPO-NAIROBI".into(),
        })
        .await
        .unwrap();
    let merged = resolve(&server, &duplicate).await;
    assert_eq!((merged.status, merged.superseded_by.as_str()), (pb::Status::Merged as i32, survivor.as_str()));
    let mut admin = server.registry(Bearer::token(&server.token(Role::Admin))).await;
    admin
        .erase_personal_data(pb::ErasePersonalDataRequest {
            request_id: "e-1".into(),
            huduma_number: survivor.clone(),
            legal_basis: "Data Protection Act 2019 s.40".into(),
        })
        .await
        .unwrap();
    let erased = resolve(&server, &survivor).await;
    assert_eq!((erased.status, erased.demographics), (pb::Status::Erased as i32, None));

    // A restart keeps everything, and the same request id still answers the same.
    let size = server.log_size().await;
    server.restart().await;
    assert_eq!(server.log_size().await, size);
    assert_eq!(resolve(&server, &replaced).await.status, pb::Status::Deceased as i32);
    let mut registry = server.registry(registrar).await;
    assert_eq!(registry.register_person(register_request("r-1", 1)).await.unwrap().into_inner().huduma_number, number);
    server.stop().await;
    // And the log the server wrote verifies end to end.
    let loaded = &server.loaded;
    let (report, access) = registry_server::operator::verify(loaded, None, &mut |_, _| ()).expect("both logs verify");
    assert_eq!(report.records, size);
    assert!(access.size > 0, "the look-ups of this test were recorded");
}

/// A correction that would make one registered person into another is refused as a
/// registration is: FAILED_PRECONDITION naming the candidate, the candidates in the
/// details, nothing written, and the search recorded in the candidate's access list; a
/// justification lets it through.
#[tokio::test]
async fn a_correction_into_another_person_is_refused_naming_them_until_justified() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let amina = register(&server, "a", 40).await;
    let baraka = register(&server, "b", 41).await;
    let before = server.log_size().await;
    let correction = |id: &str, justification: &str| pb::CorrectDemographicsRequest {
        request_id: id.into(),
        huduma_number: baraka.clone(),
        demographics: Some(demographics(40)),
        centre: "GPO-NAIROBI".into(),
        duplicate_override_justification: justification.into(),
    };
    let answer = registry.correct_demographics(correction("c-1", "")).await;
    let status = refused(&server, before, answer, Code::FailedPrecondition, "possible duplicate").await;
    let shown = amina.parse::<registry_core::HudumaNumber>().unwrap().to_string();
    assert!(status.message().contains(&shown), "{} names {shown}", status.message());
    let details: pb::FindDuplicatesResponse = prost::Message::decode(status.details()).unwrap();
    assert_eq!(details.candidates.iter().map(|c| c.huduma_number.as_str()).collect::<Vec<_>>(), [amina.as_str()]);
    assert_eq!(resolve(&server, &baraka).await.demographics, Some(demographics(41)), "unchanged");
    let mut portal = server.resolver(Bearer::token(&server.token(Role::CitizenPortal))).await;
    let listed = portal
        .list_accesses(pb::ListAccessesRequest { huduma_number: amina.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.accesses.iter().any(|a| a.purpose == "duplicate search at a correction"),
        "Amina is told a correction's search showed her number: {listed:?}"
    );
    // The registrar can see the refusal coming: the search for Amina's demographics
    // leaving Baraka out finds her; leaving her out, nobody.
    let search = |excluding: &str| pb::FindDuplicatesRequest {
        demographics: Some(demographics(40)),
        limit: 0,
        excluding_huduma_number: excluding.into(),
    };
    let found = registry.find_duplicates(search(&baraka)).await.unwrap().into_inner();
    assert_eq!(found.candidates.iter().map(|c| c.huduma_number.as_str()).collect::<Vec<_>>(), [amina.as_str()]);
    let listed = portal
        .list_accesses(pb::ListAccessesRequest { huduma_number: amina.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let at_a_correction = listed.accesses.iter().filter(|a| a.purpose == "duplicate search at a correction").count();
    assert_eq!(at_a_correction, 2, "the preview is recorded as the search at a correction it is: {listed:?}");
    let found = registry.find_duplicates(search(&amina)).await.unwrap().into_inner();
    assert!(found.candidates.is_empty(), "{found:?}");
    let never = registry_core::HudumaNumber::with_check_digit(23_456_789_012).unwrap().compact();
    let unknown = registry.find_duplicates(search(&never)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{}", unknown.message());
    assert!(unknown.message().starts_with("excluding_huduma_number: "), "{}", unknown.message());
    let typo = registry.find_duplicates(search("123")).await.unwrap_err();
    assert_eq!(typo.code(), Code::InvalidArgument, "{}", typo.message());
    assert!(typo.message().starts_with("excluding_huduma_number: "), "{}", typo.message());

    let blank = registry.correct_demographics(correction("c-2", " ")).await;
    refused(&server, before, blank, Code::InvalidArgument, "duplicate_override_justification").await;

    let justified = correction("c-3", "twin sister; birth certificates seen at the centre");
    registry.correct_demographics(justified).await.expect("corrected with a justification");
    assert_eq!(server.log_size().await, before + 1);
    assert_eq!(resolve(&server, &baraka).await.demographics, Some(demographics(40)));

    // Judged two persons, they stay two: the search a correction of Baraka meets finds
    // nobody now, and a later correction of his goes through without a justification.
    let found = registry.find_duplicates(search(&baraka)).await.unwrap().into_inner();
    assert!(found.candidates.is_empty(), "{found:?}");
    let mut again = correction("c-4", "");
    again.demographics = Some(pb::Demographics { place_of_birth: "Mombasa".into(), ..demographics(40) });
    registry.correct_demographics(again).await.expect("not refused for Amina again");
}

/// A person's history over gRPC: each record that changed them, oldest first, by name,
/// with who, through where, why and the numbers concerned, and never their personal
/// data; the reading is recorded in their access list with its purpose. A citizen
/// portal may read it; a bad purpose or an unknown number is refused by name.
#[tokio::test]
async fn a_persons_history_shows_who_changed_them_and_why_and_is_recorded() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let survivor = register(&server, "a", 50).await;
    let duplicate = register(&server, "b", 51).await;
    let merge = pb::MergeRecordsRequest {
        request_id: "m".into(),
        survivor: survivor.clone(),
        duplicate: duplicate.clone(),
        justification: "one person, two enrolments".into(),
        centre: "GPO-NAIROBI".into(),
    };
    let merged = registry.merge_records(merge).await.unwrap().into_inner().receipt.unwrap().index;
    let ask = |number: &str, purpose: &str| pb::GetHistoryRequest {
        huduma_number: number.into(),
        purpose: purpose.into(),
        ..Default::default()
    };
    let history = registry.get_history(ask(&duplicate, "complaint at the counter")).await.unwrap().into_inner();
    assert_eq!((history.current_number.as_str(), history.status), (survivor.as_str(), pb::Status::Merged as i32));
    let events: Vec<&str> = history.entries.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["PersonRegistered", "RecordsMerged"]);
    let merge_entry = &history.entries[1];
    assert_eq!(merge_entry.index, merged);
    assert_eq!(
        (merge_entry.principal.as_str(), merge_entry.via.as_str(), merge_entry.detail.as_str()),
        (server.principal(Role::Registrar).name.as_str(), "GPO-NAIROBI", "one person, two enrolments")
    );
    assert_eq!(merge_entry.numbers, [survivor.clone(), duplicate.clone()]);
    assert!(merge_entry.time.ends_with('Z'), "{}", merge_entry.time);
    let given = demographics(51).given_name;
    assert!(!format!("{history:?}").contains(&given), "no personal data in a history: {history:?}");

    let mut portal = server.resolver(Bearer::token(&server.token(Role::CitizenPortal))).await;
    let listed = portal
        .list_accesses(pb::ListAccessesRequest { huduma_number: duplicate.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed
            .accesses
            .iter()
            .any(|a| a.call == pb::AccessCall::History as i32 && a.purpose == "complaint at the counter"),
        "the reading is in the person's access list: {listed:?}"
    );
    let mut portal_registry = server.registry(Bearer::token(&server.token(Role::CitizenPortal))).await;
    let own = portal_registry.get_history(ask(&survivor, "citizen's own request")).await.unwrap().into_inner();
    assert_eq!(own.entries.len(), 2, "the survivor's registration and the merge: {own:?}");
    // The citizen is shown through which centre, never which official.
    assert!(own.entries.iter().all(|e| e.principal.is_empty() && e.via == "GPO-NAIROBI"), "{own:?}");

    let before = server.log_size().await;
    refused(&server, before, registry.get_history(ask(&survivor, "")).await, Code::InvalidArgument, "purpose").await;
    let never = registry_core::HudumaNumber::with_check_digit(23_456_789_012).unwrap().compact();
    refused(&server, before, registry.get_history(ask(&never, "check")).await, Code::NotFound, "huduma_number").await;
}

/// A citizen portal is shown, in a person's history, the person's own numbers alone:
/// never the number of a likely duplicate a registrar overrode (a stranger enrolled
/// with demographics like theirs), nor that of the other side of a merge since undone.
/// A registrar sees them all; a merge in force names the same person on both sides.
#[tokio::test]
async fn a_citizen_portal_is_never_shown_another_persons_number() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let mut portal = server.registry(Bearer::token(&server.token(Role::CitizenPortal))).await;
    let amina = register(&server, "a", 60).await;
    let mut overriding = register_request("b", 60);
    overriding.duplicate_override_justification = "twins: fingerprints differ".into();
    let twin = registry.register_person(overriding).await.unwrap().into_inner().huduma_number;
    let merge = |id: &str| pb::MergeRecordsRequest {
        request_id: id.into(),
        survivor: amina.clone(),
        duplicate: twin.clone(),
        justification: "one person".into(),
        centre: "GPO-NAIROBI".into(),
    };
    registry.merge_records(merge("m-1")).await.unwrap();
    let unmerge = pb::UnmergeRecordsRequest {
        request_id: "u-1".into(),
        duplicate: twin.clone(),
        justification: "twins after all".into(),
        centre: "GPO-NAIROBI".into(),
    };
    registry.unmerge_records(unmerge).await.unwrap();
    let replace = pb::ReplaceNumberRequest {
        request_id: "r-1".into(),
        huduma_number: twin.clone(),
        reason: pb::ReplacementReason::Lost as i32,
        centre: "GPO-NAIROBI".into(),
    };
    let twin_now = registry.replace_number(replace).await.unwrap().into_inner().new_huduma_number;
    let ask = |number: &str| pb::GetHistoryRequest {
        huduma_number: number.into(),
        purpose: "own history".into(),
        ..Default::default()
    };
    let numbers = |history: &pb::GetHistoryResponse| {
        history.entries.iter().map(|e| (e.event.clone(), e.numbers.clone())).collect::<Vec<_>>()
    };
    let entry = |event: &str, numbers: &[&String]| (event.to_string(), numbers.iter().map(|n| n.to_string()).collect());

    let registrar_sees = registry.get_history(ask(&twin)).await.unwrap().into_inner();
    assert_eq!(
        numbers(&registrar_sees),
        [
            entry("PersonRegistered", &[&twin, &amina]),
            entry("RecordsMerged", &[&amina, &twin_now]),
            entry("RecordsUnmerged", &[&amina, &twin_now]),
            entry("NumberReplaced", &[&twin_now, &twin]),
        ]
    );
    let twin_sees = portal.get_history(ask(&twin_now)).await.unwrap().into_inner();
    assert_eq!(
        numbers(&twin_sees),
        [
            entry("PersonRegistered", &[&twin]),
            entry("RecordsMerged", &[&twin_now]),
            entry("RecordsUnmerged", &[&twin_now]),
            entry("NumberReplaced", &[&twin_now, &twin]),
        ]
    );
    assert!(!format!("{twin_sees:?}").contains(&amina), "{twin_sees:?}");
    let amina_sees = portal.get_history(ask(&amina)).await.unwrap().into_inner();
    assert_eq!(
        numbers(&amina_sees),
        [
            entry("PersonRegistered", &[&amina]),
            entry("PersonRegistered", &[&amina]),
            entry("RecordsMerged", &[&amina]),
            entry("RecordsUnmerged", &[&amina]),
        ]
    );
    assert!(!format!("{amina_sees:?}").contains(&twin[..]) && !format!("{amina_sees:?}").contains(&twin_now[..]));

    // Merged again, and left so: the two numbers name one person, shown on both sides.
    let mut again = merge("m-2");
    again.duplicate = twin_now.clone();
    registry.merge_records(again).await.unwrap();
    let merged_sees = portal.get_history(ask(&twin_now)).await.unwrap().into_inner();
    assert_eq!(merged_sees.current_number, amina);
    assert_eq!(numbers(&merged_sees).last(), Some(&entry("RecordsMerged", &[&amina, &twin_now])));
}

#[tokio::test]
async fn bad_requests_name_the_field_and_write_nothing() {
    let server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let number = register(&server, "base", 1).await;
    let before = server.log_size().await;

    // A typo in the number: the check digit catches it.
    let mut typo = number.clone().into_bytes();
    typo[3] = if typo[3] == b'9' { b'0' } else { typo[3] + 1 };
    let typo = String::from_utf8(typo).unwrap();
    let revoke = |n: &str| pb::RevokeNumberRequest {
        request_id: "v".into(),
        huduma_number: n.into(),
        reason: "r".into(),
        centre: "GPO-NAIROBI".into(),
    };
    refused(
        &server,
        before,
        registry.revoke_number(revoke(&typo)).await,
        Code::InvalidArgument,
        "huduma_number: check digit",
    )
    .await;
    refused(
        &server,
        before,
        registry.revoke_number(revoke("1234")).await,
        Code::InvalidArgument,
        "huduma_number: length",
    )
    .await;
    refused(
        &server,
        before,
        registry.revoke_number(revoke("")).await,
        Code::InvalidArgument,
        "huduma_number: required",
    )
    .await;
    let never = huduma_number::HudumaNumber::with_check_digit(23_456_789_012).unwrap().compact();
    refused(&server, before, registry.revoke_number(revoke(&never)).await, Code::NotFound, "never issued").await;

    // Demographics: missing, a bad date, an empty name, no sex.
    let mut request = register_request("b-1", 2);
    request.demographics = None;
    refused(&server, before, registry.register_person(request).await, Code::InvalidArgument, "demographics: required")
        .await;
    let mut request = register_request("b-2", 2);
    request.demographics.as_mut().unwrap().date_of_birth = "1990-02-30".into();
    refused(
        &server,
        before,
        registry.register_person(request).await,
        Code::InvalidArgument,
        "demographics.date_of_birth",
    )
    .await;
    let mut request = register_request("b-3", 2);
    request.demographics.as_mut().unwrap().given_name = "  ".into();
    refused(&server, before, registry.register_person(request).await, Code::InvalidArgument, "demographics.given_name")
        .await;
    let mut request = register_request("b-4", 2);
    request.demographics.as_mut().unwrap().sex = 0;
    refused(&server, before, registry.register_person(request).await, Code::InvalidArgument, "demographics.sex").await;
    let mut request = register_request("b-5", 2);
    request.demographics.as_mut().unwrap().sex = 42;
    refused(&server, before, registry.register_person(request).await, Code::InvalidArgument, "demographics.sex").await;
    let mut request = register_request("", 2);
    refused(&server, before, registry.register_person(request.clone()).await, Code::InvalidArgument, "request_id")
        .await;
    request.request_id = "b-6".into();
    request.centre = String::new();
    refused(&server, before, registry.register_person(request).await, Code::InvalidArgument, "centre").await;
    let replace = pb::ReplaceNumberRequest {
        request_id: "b-7".into(),
        huduma_number: number.clone(),
        reason: 0,
        centre: "GPO-NAIROBI".into(),
    };
    refused(&server, before, registry.replace_number(replace).await, Code::InvalidArgument, "reason").await;
    let link = |agency: &str, id: &str| pb::LinkAgencyRecordRequest {
        request_id: format!("b-{agency}-{}", id.len()),
        huduma_number: number.clone(),
        record: Some(pb::AgencyRecord { agency: agency.into(), record_id: id.into() }),
        centre: "GPO-NAIROBI".into(),
    };
    refused(
        &server,
        before,
        registry.link_agency_record(link("kra", "1")).await,
        Code::InvalidArgument,
        "record.agency",
    )
    .await;
    refused(
        &server,
        before,
        registry.link_agency_record(link("KRA", "a b")).await,
        Code::InvalidArgument,
        "record.record_id",
    )
    .await;
    // A record linked to another person is ALREADY_EXISTS.
    registry.link_agency_record(link("KRA", "K-1")).await.unwrap();
    let other = register(&server, "other", 4).await;
    let before = server.log_size().await;
    let mut steal = link("KRA", "K-1");
    steal.request_id = "steal".into();
    steal.huduma_number = other;
    refused(&server, before, registry.link_agency_record(steal).await, Code::AlreadyExists, "already linked").await;
    // A reused request id with another command.
    let reuse = register_request("base", 9);
    refused(&server, before, registry.register_person(reuse).await, Code::InvalidArgument, "request id").await;

    // Resolve: a purpose is required; an unknown number is NOT_FOUND.
    let mut resolver = server.resolver(Bearer::token(&server.token_of("kra"))).await;
    let err = resolver.resolve(by_number(&number, " ")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("purpose:"), "{}", err.message());
    let err = resolver.resolve(by_number(&never, "tax")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = resolver.resolve(pb::ResolveRequest { key: None, purpose: "tax".into() }).await.unwrap_err();
    assert_eq!((err.code(), err.message().starts_with("key:")), (Code::InvalidArgument, true));
}

#[tokio::test]
async fn oversized_and_hostile_requests_are_refused_without_writing() {
    let server = TestServer::start().await;
    register(&server, "base", 1).await;
    let before = server.log_size().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    // Over the message limit (64 KiB by default): refused before decoding.
    let mut huge = register_request("huge", 2);
    huge.demographics.as_mut().unwrap().other_names = vec!["N".repeat(1000); 100];
    let err = registry.register_person(huge).await.unwrap_err();
    assert!(matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument), "{err:?}");
    assert_eq!(server.log_size().await, before);
    // Within the limit but past the rules: names too long, too many, control characters.
    let mut long = register_request("long", 2);
    long.demographics.as_mut().unwrap().family_name = "x".repeat(5000);
    refused(&server, before, registry.register_person(long).await, Code::InvalidArgument, "demographics.family_name")
        .await;
    let mut many = register_request("many", 2);
    many.demographics.as_mut().unwrap().other_names = vec!["Njeri".into(); 50];
    refused(&server, before, registry.register_person(many).await, Code::InvalidArgument, "demographics.other_names")
        .await;
    let mut control = register_request("ctl", 2);
    control.demographics.as_mut().unwrap().place_of_birth = "Nai\u{0}robi".into();
    refused(
        &server,
        before,
        registry.register_person(control).await,
        Code::InvalidArgument,
        "demographics.place_of_birth",
    )
    .await;
    let mut id = register_request(&"i".repeat(200), 2);
    refused(&server, before, registry.register_person(id.clone()).await, Code::InvalidArgument, "request_id").await;
    id.request_id = "ok".into();
    id.centre = "GPO\nNAIROBI".into();
    refused(&server, before, registry.register_person(id).await, Code::InvalidArgument, "centre").await;
    // Garbage bytes where a protobuf message should be: the server answers, never panics.
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/huduma.v1.Registry/RegisterPerson");
    for garbage in [vec![0xff; 64], vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], b"\x12\x05hello".to_vec()] {
        let mut request = tonic::Request::new(garbage);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", server.token(Role::Registrar)).parse().unwrap());
        grpc.ready().await.unwrap();
        let answer: Result<tonic::Response<Vec<u8>>, _> = grpc.unary(request, path.clone(), RawCodec).await;
        let code = answer.map_or_else(|s| s.code(), |_| Code::Ok);
        assert!(matches!(code, Code::Internal | Code::InvalidArgument), "garbage answered {code:?}");
    }
    assert_eq!(server.log_size().await, before);
    // The server still serves.
    register(&server, "after", 3).await;
}

/// Sends and receives raw bytes, to put hostile payloads on the wire.
#[derive(Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

#[tokio::test]
async fn erasure_leaves_a_verifying_log_and_no_plaintext_in_the_data_directory() {
    let mut server = TestServer::start().await;
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let names = ["Nyambura", "Gathoni", "Wairimuwanjohi", "Othaya"];
    let mut request = register_request("erase-me", 1);
    let d = request.demographics.as_mut().unwrap();
    d.given_name = names[0].into();
    d.family_name = names[1].into();
    d.other_names = vec![names[2].into()];
    d.place_of_birth = names[3].into();
    let number = registry.register_person(request).await.unwrap().into_inner().huduma_number;
    let mut admin = server.registry(Bearer::token(&server.token(Role::Admin))).await;
    admin
        .erase_personal_data(pb::ErasePersonalDataRequest {
            request_id: "erase-1".into(),
            huduma_number: number.clone(),
            legal_basis: "Data Protection Act 2019, s. 40 (right to erasure)".into(),
        })
        .await
        .unwrap();
    let erased = resolve(&server, &number).await;
    assert_eq!((erased.status, erased.demographics), (pb::Status::Erased as i32, None));
    server.stop().await;
    registry_server::operator::verify(&server.loaded, None, &mut |_, _| ()).expect("the log verifies after erasure");
    // No byte of the data directory spells any of the names, in any case.
    let mut files = vec![server.loaded.config.server.data_dir.clone()];
    let mut read = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap().to_ascii_lowercase();
        read += bytes.len();
        for name in names {
            let needle = name.to_ascii_lowercase().into_bytes();
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{name} found in {}", path.display());
        }
    }
    assert!(read > 0, "the data directory was read");
}

/// Runs an admin's `Backup` named `name` to its end; the answer or the refusal.
async fn backup(server: &TestServer, name: &str) -> Result<Vec<pb::BackupProgress>, tonic::Status> {
    use tokio_stream::StreamExt;
    let mut operations = server.operations(Bearer::token(&server.token(Role::Admin))).await;
    let mut stream = operations.backup(pb::BackupRequest { name: name.into() }).await?.into_inner();
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item?);
    }
    Ok(items)
}

#[tokio::test]
async fn an_admin_backs_up_the_serving_registry_and_the_backup_serves_once_restored() {
    let mut server = TestServer::start_with(|_, loaded| loaded.config.server.checkpoint_interval_ms = 20).await;
    let mut numbers = Vec::new();
    for i in 0..5 {
        numbers.push(register(&server, &format!("b-{i}"), 300 + i).await);
    }
    resolve(&server, &numbers[0]).await;
    server.wait_for_checkpoints().await;
    let items = backup(&server, "nightly-1").await.expect("a backup");
    let Some(pb::backup_progress::Stage::Taken(taken)) = items.last().and_then(|p| p.stage.clone()) else {
        panic!("the last message says what was taken: {items:?}");
    };
    let expected = server.dir.path().join("backups").join("nightly-1");
    assert_eq!(taken.path, expected.display().to_string());
    assert_eq!(taken.records, server.log_size().await, "everything signed before it began");
    assert_eq!((taken.keys, taken.requests), (5, 5));
    assert_eq!(taken.access_records, 1);

    let before = server.log_size().await;
    let again = backup(&server, "nightly-1").await;
    refused(&server, before, again, Code::AlreadyExists, "name: ").await;
    let bad = backup(&server, "../outside").await;
    refused(&server, before, bad, Code::InvalidArgument, "name: '/'").await;
    let mut as_registrar = server.operations(Bearer::token(&server.token(Role::Registrar))).await;
    let registrar = as_registrar.backup(pb::BackupRequest { name: "by-a-registrar".into() }).await;
    assert_eq!(registrar.expect_err("admins only").code(), Code::PermissionDenied);
    // A registration after the backup is not in it.
    let later = register(&server, "b-later", 399).await;
    server.stop().await;

    // Restored: the same keys and secrets, the data directory the backup.
    let restored = server.start_over(expected).await;
    assert_eq!(restored.log_size().await, taken.records);
    let person = resolve(&restored, &numbers[4]).await;
    assert_eq!(person.demographics, Some(demographics(304)));
    let mut resolver = restored.resolver(Bearer::token(&restored.token(Role::Registrar))).await;
    let missing = resolver.resolve(by_number(&later, "counter service")).await.expect_err("not in the backup");
    assert_eq!(missing.code(), Code::NotFound);
    // The restored registry answers a repeated request as it first did.
    let mut registry = restored.registry(Bearer::token(&restored.token(Role::Registrar))).await;
    let replayed = registry.register_person(register_request("b-2", 302)).await.expect("replayed").into_inner();
    assert_eq!(replayed.huduma_number, numbers[2]);
}

/// A reload that withdraws the admin's token cancels the backup they began: it ends
/// UNAUTHENTICATED, and the copy begun is removed (a revoked credential's backup is
/// not completed).
#[tokio::test]
async fn a_backup_ends_once_a_reload_withdraws_the_admins_token() {
    use tokio_stream::StreamExt;
    // Enough records that the copy is still being written when the reload comes.
    let mut server = TestServer::start_with(|_, loaded| loaded.config.server.checkpoint_interval_ms = 20).await;
    server.fill(20_000).await;
    server.wait_for_checkpoints().await;
    let mut operations = server.operations(Bearer::token(&server.token(Role::Admin))).await;
    let mut stream = operations.backup(pb::BackupRequest { name: "withdrawn".into() }).await.unwrap().into_inner();
    server.reload_access(|loaded| {
        let admin = loaded.config.principals.iter_mut().find(|p| p.role == Role::Admin).unwrap();
        admin.token = Some("rotated-admin-token-0123456789abcd".into());
    });
    let ended = loop {
        match stream.next().await {
            Some(Ok(progress)) => {
                let taken = matches!(progress.stage, Some(pb::backup_progress::Stage::Taken(_)));
                assert!(!taken, "the backup was completed after the token was withdrawn");
            }
            Some(Err(status)) => break status,
            None => panic!("the stream ended without an answer"),
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated, "{}", ended.message());
    assert!(ended.message().contains("the copy begun is removed"), "{}", ended.message());
    assert!(!server.dir.path().join("backups").join("withdrawn").exists(), "the copy begun is removed");
}

#[tokio::test]
async fn without_a_backup_dir_online_backups_are_off_and_say_so() {
    let server = TestServer::start_with(|_, loaded| loaded.config.server.backup_dir = None).await;
    let before = server.log_size().await;
    let off = backup(&server, "nightly").await;
    refused(&server, before, off, Code::FailedPrecondition, "backup_dir is not set").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_mid_backup_cancels_it_removes_the_copy_and_closes_whole() {
    use pb::backup_progress::Stage;
    let mut server = TestServer::start_with(|_, loaded| loaded.config.server.checkpoint_interval_ms = 20).await;
    // A store large enough that a backup still runs when its first progress (sent no
    // sooner than 250 ms in) arrives: filled in-process, the server stopped meanwhile.
    server.fill(30_000).await;
    let size = server.log_size().await;
    server.wait_for_checkpoints().await;

    let mut operations = server.operations(Bearer::token(&server.token(Role::Admin))).await;
    let request = pb::BackupRequest { name: "interrupted".into() };
    let mut stream = operations.backup(request).await.expect("a backup begins").into_inner();
    let first = stream.message().await.expect("it streams").expect("a progress message");
    assert!(
        matches!(first.stage, Some(Stage::Copying(_) | Stage::Folding(_))),
        "the backup must still run when the server is stopped (a larger store if not): {first:?}"
    );
    let rest = tokio::spawn(async move {
        loop {
            match stream.message().await {
                Ok(Some(pb::BackupProgress { stage: Some(Stage::Taken(taken)), .. })) => return Ok(taken),
                Ok(Some(_)) => continue,
                Ok(None) => return Err(tonic::Status::unknown("the stream ended without an answer")),
                Err(status) => return Err(status),
            }
        }
    });
    server.stop().await;
    let cancelled = rest.await.unwrap().expect_err("stopped before it was taken");
    assert_eq!(cancelled.code(), Code::Aborted, "{}", cancelled.message());
    let copy = server.dir.path().join("backups").join("interrupted");
    assert!(!copy.exists(), "the unfinished copy is removed");

    // The registry closed whole: it starts again with everything, and the same backup
    // is taken to its end.
    server.restart().await;
    assert_eq!(server.log_size().await, size);
    let items = backup(&server, "interrupted").await.expect("taken after the restart");
    let Some(Stage::Taken(taken)) = items.last().and_then(|p| p.stage.clone()) else {
        panic!("the last message says what was taken: {items:?}");
    };
    assert_eq!(taken.records, size);
}

#[tokio::test]
async fn a_person_a_restore_took_back_without_their_key_is_enrolled_again_by_a_correction() {
    use registry_server::operator;
    let mut server = TestServer::start_with(|_, loaded| loaded.config.server.checkpoint_interval_ms = 20).await;
    register(&server, "k-0", 500).await;
    server.wait_for_checkpoints().await;
    backup(&server, "before").await.expect("a backup");
    let lost = register(&server, "k-1", 501).await;
    server.stop().await;
    let export = server.dir.path().join("published.bin");
    operator::export(&server.loaded, &export).expect("the log exported");

    // Restored over the backup, the tail taken back: the person keeps their number.
    let mut restored = server.loaded.clone();
    restored.config.server.data_dir = server.dir.path().join("backups").join("before");
    let tails = operator::restore_tail(&restored, &export, None, None, &mut |_, _| ()).expect("the tail taken back");
    assert_eq!(tails.identity.keys_lost, 1);
    let restored = server.start_over(restored.config.server.data_dir).await;
    let seen = resolve(&restored, &lost).await;
    assert_eq!((seen.status, seen.demographics, seen.personal_data_lost), (pb::Status::Active as i32, None, true));

    let mut registry = restored.registry(Bearer::token(&restored.token(Role::Registrar))).await;
    let death = |id: &str| pb::RecordDeathRequest {
        request_id: id.into(),
        huduma_number: lost.clone(),
        date_of_death: "2026-03-01".into(),
        centre: "KNH-MORTUARY".into(),
    };
    let before = restored.log_size().await;
    let refused_death = registry.record_death(death("d-1")).await;
    refused(&restored, before, refused_death, Code::FailedPrecondition, "correct their demographics first").await;
    registry
        .correct_demographics(pb::CorrectDemographicsRequest {
            request_id: "c-1".into(),
            huduma_number: lost.clone(),
            demographics: Some(demographics(501)),
            centre: "GPO-NAIROBI".into(),
            ..Default::default()
        })
        .await
        .expect("their data enrolled again");
    let enrolled = resolve(&restored, &lost).await;
    assert_eq!((enrolled.demographics, enrolled.personal_data_lost), (Some(demographics(501)), false));
    registry.record_death(death("d-2")).await.expect("a death, once their key is renewed");
    let dead = resolve(&restored, &lost).await;
    assert_eq!((dead.status, dead.date_of_death.as_str()), (pb::Status::Deceased as i32, "2026-03-01"));
}

/// A history, and a list of look-ups, longer than one answer may hold: each page ends
/// before the server's message limit (so it is answered, not refused as too large),
/// and following the page tokens gives every record once, in order. Each page read is
/// a look-up recorded in the person's access list. Bad page fields are refused by name.
#[tokio::test]
async fn long_histories_and_access_lists_come_in_pages_that_fit() {
    use prost::Message;
    const LIMIT: usize = registry_server::config::MIN_MESSAGE_BYTES;
    let server = TestServer::start_with(|_, loaded| loaded.config.server.max_message_bytes = LIMIT).await;
    // Long centre names and purposes, so that 50 entries or look-ups pass the limit.
    let centre = format!("GPO-NAIROBI-{}", "X".repeat(100));
    let purpose = format!("long history {}", "p".repeat(200));
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    let number = register(&server, "a", 50).await;
    let record = || Some(pb::AgencyRecord { agency: "KRA".into(), record_id: "A000000001X".into() });
    for i in 0..30 {
        let (huduma_number, centre) = (number.clone(), centre.clone());
        let link = pb::LinkAgencyRecordRequest {
            request_id: format!("l{i}"),
            huduma_number: huduma_number.clone(),
            record: record(),
            centre: centre.clone(),
        };
        registry.link_agency_record(link).await.unwrap();
        let unlink =
            pb::UnlinkAgencyRecordRequest { request_id: format!("u{i}"), huduma_number, record: record(), centre };
        registry.unlink_agency_record(unlink).await.unwrap();
    }
    let ask = |page_size: u32, page_token: &str| pb::GetHistoryRequest {
        huduma_number: number.clone(),
        purpose: purpose.clone(),
        page_size,
        page_token: page_token.into(),
    };
    // Read whole at each page size, each page within the limit.
    let mut pages_read = 0;
    for page_size in [0, 7, 1] {
        let (mut indices, mut token, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = registry.get_history(ask(page_size, &token)).await.unwrap().into_inner();
            assert!(page.encoded_len() <= LIMIT, "{}", page.encoded_len());
            assert!(!page.entries.is_empty() && page.entries.len() <= (page_size.max(1) as usize).max(50));
            assert_eq!(page.current_number, number);
            indices.extend(page.entries.iter().map(|e| e.index));
            pages += 1;
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(indices.len(), 61, "the registration, 30 links, 30 unlinks at page size {page_size}");
        assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
        if page_size == 0 {
            assert!(pages > 1, "61 entries do not fit in {LIMIT} bytes: one page would have been refused");
        } else {
            assert_eq!(pages, 61_usize.div_ceil(page_size as usize), "page size {page_size}");
        }
        pages_read += pages;
    }

    let before = server.log_size().await;
    refused(&server, before, registry.get_history(ask(501, "")).await, Code::InvalidArgument, "page_size").await;
    refused(&server, before, registry.get_history(ask(0, "later")).await, Code::InvalidArgument, "page_token").await;

    // Every page read is in the access list, itself read in pages within the limit.
    let mut portal = server.resolver(Bearer::token(&server.token(Role::CitizenPortal))).await;
    let (mut listed, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let list = pb::ListAccessesRequest {
            huduma_number: number.clone(),
            page_size: 500,
            page_token: token,
            ..Default::default()
        };
        let page = portal.list_accesses(list).await.unwrap().into_inner();
        assert!(page.encoded_len() <= LIMIT, "{}", page.encoded_len());
        listed.extend(page.accesses.iter().map(|a| (a.index, a.call, a.purpose.clone())));
        pages += 1;
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(pages > 1, "{} look-ups do not fit in {LIMIT} bytes", listed.len());
    assert!(listed.windows(2).all(|w| w[0].0 > w[1].0), "newest first, each once: {listed:?}");
    assert_eq!(listed.len(), pages_read, "{listed:?}");
    assert!(listed.iter().all(|(_, call, listed)| *call == pb::AccessCall::History as i32 && *listed == purpose));
}
