//! The SDK against a real server: typed calls, typed errors, retries that reuse the
//! request id (proved by dropping the first answer), change streams that resume after
//! a restart, batch resolution, and offline receipt verification.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use huduma_e2e::{TestServer, register};
use huduma_sdk::client::{Transport, TransportError};
use huduma_sdk::receipt::{parse_keys, verify_receipt};
use huduma_sdk::{AgencyRecord, ChangeKind, Client, Demographics, Error, HudumaNumber, ResolveKey, Sex, Status};
use registry_server::auth::Role;
use tokio_stream::StreamExt;
use tonic::codegen::http;
use tower::ServiceExt;

async fn client(server: &TestServer, role: Role) -> Client {
    Client::connect(server.endpoint(), server.token(role)).await.expect("connect")
}

/// The harness's synthetic person `i` (never a likely duplicate of another).
fn synthetic(i: u64) -> Demographics {
    let d = huduma_e2e::demographics(i);
    Demographics {
        given_name: d.given_name,
        family_name: d.family_name,
        other_names: d.other_names,
        date_of_birth: d.date_of_birth,
        sex: if d.sex == 1 { Sex::Female } else { Sex::Male },
        place_of_birth: d.place_of_birth,
    }
}

fn wanjiru() -> Demographics {
    Demographics {
        given_name: "Wanjiru".into(),
        family_name: "Kamau".into(),
        other_names: vec!["Njeri".into()],
        date_of_birth: "1990-04-12".into(),
        sex: Sex::Female,
        place_of_birth: "Nyeri".into(),
    }
}

#[tokio::test]
async fn an_agency_resolves_links_and_meets_typed_errors() {
    let server = TestServer::start().await;
    let registrar = client(&server, Role::Registrar).await;
    let (number, receipt) = registrar.register_person("r-1", &wanjiru(), "GPO-NAIROBI").await.unwrap();
    assert!(receipt.index > 0);

    let kra = Client::connect(server.endpoint(), server.token_of("kra")).await.unwrap();
    let found = kra.resolve(number, "PIN registration").await.unwrap();
    assert_eq!((found.number, found.status), (Some(number), Status::Active));
    // KRA's policy (dev config): names and date of birth, and the number; not sex or
    // place of birth.
    let seen = found.demographics.clone().unwrap();
    assert_eq!((seen.given_name.as_deref(), seen.date_of_birth.as_deref()), (Some("Wanjiru"), Some("1990-04-12")));
    assert_eq!((seen.sex, seen.place_of_birth.as_deref()), (None, None));
    let registrar_view = registrar.resolve(number, "counter").await.unwrap();
    assert!(registrar_view.demographics.unwrap().is_all_of(&wanjiru()), "a registrar sees everything");
    assert_eq!(registrar_view.agency_token, None);
    kra.link_agency_record("l-1", &number.to_string(), &AgencyRecord::new("KRA", "A012345678Z"), "").await.unwrap();
    let by_record = kra.resolve(AgencyRecord::new("KRA", "A012345678Z"), "PIN check").await.unwrap();
    assert_eq!(by_record.current_number(), Some(number));
    assert_eq!(by_record.agency_records, vec![AgencyRecord::new("KRA", "A012345678Z")]);

    // Errors an engineer matches on.
    let mut typo = number.compact().into_bytes();
    typo[5] = if typo[5] == b'9' { b'0' } else { typo[5] + 1 };
    let typo = String::from_utf8(typo).unwrap();
    assert!(matches!(kra.resolve_number(&typo, "x").await, Err(Error::InvalidNumber(_))));
    let never = HudumaNumber::with_check_digit(23_456_789_012).unwrap();
    assert!(matches!(kra.resolve(never, "tax").await, Err(Error::NotFound(_))));
    match kra.resolve(number, "").await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "purpose"),
        other => panic!("{other:?}"),
    }
    let nhif_record = AgencyRecord::new("NHIF", "N-1");
    assert!(matches!(
        kra.link_agency_record("l-2", &number.to_string(), &nhif_record, "").await,
        Err(Error::PermissionDenied(_))
    ));
    let stranger = Client::connect(server.endpoint(), "dev-nobody-0000000000000000").await.unwrap();
    assert!(matches!(stranger.resolve(number, "x").await, Err(Error::Unauthenticated(_))));
    registrar.revoke_number("v-1", &number.to_string(), "check", "GPO-NAIROBI").await.unwrap();
    assert!(matches!(
        registrar.replace_number("x-1", &number.to_string(), huduma_sdk::ReplacementReason::Lost, "GPO").await,
        Err(Error::FailedPrecondition(_))
    ));
}

#[tokio::test]
async fn each_agency_sees_its_own_token_and_only_what_its_policy_allows() {
    let server = TestServer::start().await;
    let registrar = client(&server, Role::Registrar).await;
    let (number, _) = registrar.register_person("r-1", &wanjiru(), "GPO-NAIROBI").await.unwrap();
    let kra = Client::connect(server.endpoint(), server.token_of("kra")).await.unwrap();
    let nhif = Client::connect(server.endpoint(), server.token_of("nhif")).await.unwrap();
    let by_kra = kra.resolve(number, "PIN registration").await.unwrap();
    let by_nhif = nhif.resolve(number, "claim").await.unwrap();
    let (kra_token, nhif_token) = (by_kra.agency_token.clone().unwrap(), by_nhif.agency_token.clone().unwrap());
    assert_ne!(kra_token, nhif_token, "two agencies, two unlinkable tokens");
    assert_eq!(kra.resolve(number, "again").await.unwrap().agency_token, Some(kra_token.clone()), "stable");
    // NHIF's policy: names, sex, date of birth; not the bare number.
    let seen = by_nhif.demographics.unwrap();
    assert_eq!((seen.sex, seen.place_of_birth.as_deref()), (Some(Sex::Female), None));
    assert_eq!(by_nhif.number, None, "the number is withheld from NHIF");
    // Each agency resolves by its own token; another's is NOT_FOUND.
    let again = nhif.resolve(ResolveKey::AgencyToken(nhif_token.clone()), "claim").await.unwrap();
    assert_eq!((again.status, again.agency_token), (Status::Active, Some(nhif_token.clone())));
    assert!(matches!(nhif.resolve(ResolveKey::AgencyToken(kra_token.clone()), "x").await, Err(Error::NotFound(_))));
    assert!(matches!(kra.resolve(ResolveKey::AgencyToken(nhif_token), "x").await, Err(Error::NotFound(_))));
    assert!(matches!(kra.resolve(ResolveKey::AgencyToken("garbage".into()), "x").await, Err(Error::NotFound(_))));
    // Yes/no verification of attributes NHIF does not see, disclosing nothing else.
    let claim = huduma_sdk::Claim {
        given_name: Some("WANJIRU".into()),
        place_of_birth: Some("Nairobi".into()),
        ..Default::default()
    };
    let (status, answers) = nhif.verify_attributes(number, &claim, "claim check").await.unwrap();
    assert_eq!(status, Status::Active);
    assert_eq!(answers, vec![("given_name".to_string(), true), ("place_of_birth".to_string(), false)]);
    assert!(matches!(
        nhif.verify_attributes(number, &claim, "").await,
        Err(Error::InvalidArgument { ref field, .. }) if field == "purpose"
    ));
    assert!(matches!(
        nhif.verify_attributes(number, &huduma_sdk::Claim::default(), "x").await,
        Err(Error::InvalidArgument { ref field, .. }) if field == "claimed"
    ));
    // A registrar has no token to resolve by.
    let err = registrar.resolve(ResolveKey::AgencyToken(kra_token), "x").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { ref field, .. } if field == "agency_token"), "{err:?}");
}

/// A transport that lets the first call reach the server, then throws its answer
/// away and reports UNAVAILABLE, as a dropped connection would.
fn dropping_first_answer(channel: tonic::transport::Channel, dropped: Arc<AtomicBool>) -> Transport {
    let service = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let (channel, dropped) = (channel.clone(), Arc::clone(&dropped));
        async move {
            let response = channel.oneshot(request).await.map_err(|e| TransportError(e.into()))?;
            if dropped.swap(true, Ordering::SeqCst) {
                return Ok(response);
            }
            // The server has committed and answered; the caller never hears it.
            let _ = http_body_util_collect(response).await;
            let lost = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", "14")
                .header("grpc-message", "connection lost (injected)")
                .body(tonic::body::Body::empty())
                .map_err(|e| TransportError(e.into()))?;
            Ok(lost)
        }
    });
    Transport::new(service)
}

/// Reads a response to its end (so the server's answer was really produced).
async fn http_body_util_collect(response: http::Response<tonic::body::Body>) -> usize {
    use tonic::codegen::Body as _;
    let mut body = response.into_body();
    let mut bytes = 0;
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        if let Some(data) = frame.data_ref() {
            bytes += data.len();
        }
    }
    bytes
}

#[tokio::test]
async fn a_retried_registration_never_issues_two_numbers() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let dropped = Arc::new(AtomicBool::new(false));
    let registrar = Client::builder(server.endpoint())
        .token(server.token(Role::Registrar))
        .with_transport(dropping_first_answer(channel, Arc::clone(&dropped)))
        .unwrap();
    let before = server.log_size().await;
    let (number, receipt) = registrar.register_person("once", &wanjiru(), "GPO-NAIROBI").await.unwrap();
    assert!(dropped.load(Ordering::SeqCst), "the first answer was dropped, and the SDK retried");
    assert_eq!(server.log_size().await, before + 1, "one registration, not two");
    assert_eq!(receipt.index, before);
    let kra = Client::connect(server.endpoint(), server.token_of("kra")).await.unwrap();
    assert_eq!(kra.resolve(number, "check").await.unwrap().status, Status::Active);
    // Without retries the caller sees the loss as UNAVAILABLE (and may retry itself).
    let dropped = Arc::new(AtomicBool::new(false));
    let no_retry = Client::builder(server.endpoint())
        .token(server.token(Role::Registrar))
        .retry(huduma_sdk::RetryPolicy { attempts: 1, ..Default::default() })
        .with_transport(dropping_first_answer(server.channel().await, dropped))
        .unwrap();
    assert!(matches!(no_retry.register_person("twice", &synthetic(5), "GPO").await, Err(Error::Unavailable(_))));
    let (again, _) = no_retry.register_person("twice", &synthetic(5), "GPO").await.unwrap();
    assert_eq!(server.log_size().await, before + 2, "the manual retry returned the first answer");
    assert_ne!(again, number);
}

#[tokio::test]
async fn watch_changes_resumes_after_a_server_restart() {
    let mut server = TestServer::start().await;
    let number = register(&server, "p", 1).await;
    let kra = Client::builder(server.endpoint()).token(server.token_of("kra")).connect_lazy().unwrap();
    kra.link_agency_record("l-1", &number, &AgencyRecord::new("KRA", "K-1"), "").await.unwrap();
    let mut changes = kra.watch_changes(0);
    let first = changes.next().await.unwrap().unwrap();
    assert_eq!(first.kind, ChangeKind::AgencyRecordLinked);

    server.restart_same_port().await;
    let registrar = client(&server, Role::Registrar).await;
    let revoked = registrar.revoke_number("v", &number, "check", "GPO").await.unwrap().index;
    let next = tokio::time::timeout(std::time::Duration::from_secs(20), changes.next())
        .await
        .expect("the stream came back")
        .unwrap()
        .unwrap();
    assert_eq!((next.index, next.kind, next.status), (revoked, ChangeKind::NumberRevoked, Status::Revoked));
    assert!(next.index > first.index, "no change is repeated after resuming");
}

#[tokio::test]
async fn batch_resolution_answers_every_key() {
    let server = TestServer::start().await;
    let registrar = client(&server, Role::Registrar).await;
    let mut numbers = Vec::new();
    for i in 0..60u64 {
        numbers.push(registrar.register_person(&format!("b-{i}"), &synthetic(i), "GPO").await.unwrap().0);
    }
    let mut keys: Vec<ResolveKey> = numbers.iter().map(|n| ResolveKey::Number(*n)).collect();
    keys.push(ResolveKey::Number(HudumaNumber::with_check_digit(23_456_789_012).unwrap()));
    let kra = Client::connect(server.endpoint(), server.token_of("kra")).await.unwrap();
    let answers: Vec<_> = kra.resolve_batch(keys, "reconciliation", 16).collect().await;
    assert_eq!(answers.len(), 61);
    for (position, answer) in answers {
        if position == 60 {
            assert!(matches!(answer, Err(Error::NotFound(_))));
        } else {
            let found = answer.unwrap();
            assert_eq!(found.number, Some(numbers[position]));
            assert_eq!(found.demographics.unwrap().given_name, Some(synthetic(position as u64).given_name));
        }
    }
}

#[tokio::test]
async fn receipts_verify_offline_against_the_record_and_the_published_keys() {
    let server = TestServer::start().await;
    let registrar = client(&server, Role::Registrar).await;
    let (_, receipt) = registrar.register_person("r", &wanjiru(), "GPO").await.unwrap();
    let auditor = client(&server, Role::Auditor).await;
    let keys = auditor.verifier_keys().await.unwrap();
    let public = parse_keys(&keys).unwrap();
    let record = auditor.get_records(receipt.index, receipt.index + 1).await.unwrap().next().await.unwrap().unwrap();
    verify_receipt(&receipt, &record.data, &public).expect("the receipt verifies");
    let mut tampered = record.data.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    assert!(matches!(verify_receipt(&receipt, &tampered, &public), Err(Error::Verification(_))));
    let other = huduma_log::keys::LogKey::from_seed([3; 32]).public();
    assert!(matches!(verify_receipt(&receipt, &record.data, &[other]), Err(Error::Verification(_))));
    let mut forged = receipt.clone();
    forged.index += 1;
    assert!(matches!(verify_receipt(&forged, &record.data, &public), Err(Error::Verification(_))));
}

#[tokio::test]
async fn a_number_typo_is_caught_before_any_call() {
    // Nothing listens here: a call would fail as UNAVAILABLE, so InvalidNumber proves
    // no call was made.
    let client = Client::builder("http://127.0.0.1:9").token("t-0123456789abcdef").connect_lazy().unwrap();
    let valid = HudumaNumber::with_check_digit(23_456_789_012).unwrap().compact();
    let last = valid.as_bytes()[11];
    let typo = format!("{}{}", &valid[..11], if last == b'9' { '0' } else { char::from(last + 1) });
    let err = client.resolve_number(&typo, "x").await.unwrap_err();
    assert!(matches!(err, Error::InvalidNumber(_)), "{err:?}");
}

#[tokio::test]
async fn every_look_up_appears_in_the_persons_access_list_with_its_purpose() {
    use huduma_sdk::{AccessCall, Log};
    let mut server = TestServer::start().await;
    let registrar = client(&server, Role::Registrar).await;
    let (number, _) = registrar.register_person("r-1", &wanjiru(), "GPO-NAIROBI").await.unwrap();
    let (other, _) = registrar
        .register_person("r-2", &Demographics { given_name: "Otieno".into(), ..wanjiru() }, "GPO-NAIROBI")
        .await
        .unwrap();
    let kra = Client::connect(server.endpoint(), server.token_of("kra")).await.unwrap();
    let nhif = Client::connect(server.endpoint(), server.token_of("nhif")).await.unwrap();
    let token = kra.resolve(number, "PIN registration").await.unwrap().agency_token.unwrap();
    let claim = huduma_sdk::Claim { given_name: Some("wanjiru".into()), ..Default::default() };
    nhif.verify_attributes(number, &claim, "claim check").await.unwrap();
    kra.resolve(ResolveKey::AgencyToken(token.clone()), "annual return").await.unwrap();
    kra.resolve(other, "someone else").await.unwrap();
    registrar.resolve(number, "counter service").await.unwrap();
    // Refused look-ups looked nothing up.
    assert!(kra.resolve(number, "").await.is_err());

    // The list survives a restart: each look-up was durable before it was answered.
    server.restart().await;
    let portal = client(&server, Role::CitizenPortal).await;
    let page = portal.list_accesses(&number.to_string(), None, 0, None).await.unwrap();
    let seen: Vec<(&str, &str, &str, Option<AccessCall>)> =
        page.accesses.iter().map(|a| (a.agency.as_str(), a.role.as_str(), a.purpose.as_str(), a.call)).collect();
    assert_eq!(
        seen,
        [
            ("", "registrar", "counter service", Some(AccessCall::Resolve)),
            ("KRA", "agency", "annual return", Some(AccessCall::Resolve)),
            ("NHIF", "agency", "claim check", Some(AccessCall::VerifyAttributes)),
            ("KRA", "agency", "PIN registration", Some(AccessCall::Resolve)),
        ],
        "every look-up of this person, newest first, with its purpose; none of anyone else's"
    );
    // The portal is shown which agency or role, never which official; the admin who
    // answers a complaint is shown the same look-ups with the official's account.
    assert!(page.accesses.iter().all(|a| a.principal.is_empty()), "{page:?}");
    let admin = client(&server, Role::Admin).await;
    let investigated = admin.list_accesses(&number.to_string(), None, 0, None).await.unwrap();
    let officials: Vec<&str> = investigated.accesses.iter().map(|a| a.principal.as_str()).collect();
    assert_eq!(officials, ["gpo-registrar-1", "kra", "nhif", "kra"]);
    assert_eq!(
        investigated.accesses.iter().map(|a| a.index).collect::<Vec<_>>(),
        page.accesses.iter().map(|a| a.index).collect::<Vec<_>>()
    );
    let by_token = &page.accesses[1];
    assert_eq!((by_token.agency.as_str(), by_token.key_kind.as_str()), ("KRA", "agency_token"));
    assert_eq!((by_token.key_agency.as_str(), by_token.status), ("KRA", Some(Status::Active)));
    assert_eq!(page.accesses[2].attributes, vec![("given_name".to_string(), true)]);
    assert!(page.accesses.iter().all(|a| a.readable && a.time.ends_with('Z')));
    // The portal is never shown the key's value: no token, no number.
    let shown = format!("{page:?}");
    assert!(!shown.contains(&token) && !shown.contains(&number.compact()), "{shown}");
    assert!(page.accesses.windows(2).all(|w| w[0].index > w[1].index && w[0].time >= w[1].time));

    // Paged: two, then two, then none left.
    let first = portal.list_accesses(&number.to_string(), None, 2, None).await.unwrap();
    let token_1 = first.next_page_token.clone().expect("more pages");
    let second = portal.list_accesses(&number.to_string(), None, 2, Some(&token_1)).await.unwrap();
    assert_eq!(second.next_page_token, None);
    let paged: Vec<u64> = first.accesses.iter().chain(&second.accesses).map(|a| a.index).collect();
    assert_eq!(paged, page.accesses.iter().map(|a| a.index).collect::<Vec<_>>());
    // `since` keeps the newer ones; bad arguments name their field.
    let since = &page.accesses[0].time;
    let recent = portal.list_accesses(&number.to_string(), Some(since), 0, None).await.unwrap().accesses;
    assert!(!recent.is_empty() && recent.iter().all(|a| &a.time >= since), "{recent:?}");
    let future = portal.list_accesses(&number.to_string(), Some("2999-01-01T00:00:00Z"), 0, None).await.unwrap();
    assert!(future.accesses.is_empty());
    for (since, size, token, field) in
        [(Some("yesterday"), 0, None, "since"), (None, 501, None, "page_size"), (None, 0, Some("x"), "page_token")]
    {
        match portal.list_accesses(&number.to_string(), since, size, token).await {
            Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected {field} refused, got {other:?}"),
        }
    }
    // Only a citizen portal and an admin list accesses.
    let kra = Client::connect(server.endpoint(), server.token_of("kra")).await.unwrap();
    assert!(matches!(kra.list_accesses(&number.to_string(), None, 0, None).await, Err(Error::PermissionDenied(_))));

    // The access log is an auditable log of its own: a checkpoint signed for its own
    // origin by the log key, and an inclusion proof of a look-up against it.
    let auditor = client(&server, Role::Auditor).await.on_log(Log::Access);
    let keys = auditor.verifier_keys().await.unwrap();
    assert!(keys.origin.ends_with("/access"), "{}", keys.origin);
    let public = parse_keys(&keys).unwrap();
    let note = auditor.checkpoint(0).await.unwrap();
    let checkpoint = huduma_sdk::receipt::open_checkpoint(&note, &keys.origin, &public).expect("signed");
    assert!(checkpoint.size >= 5, "every look-up is covered: {}", checkpoint.size);
    let index = page.accesses[0].index;
    let record = auditor.get_records(index, index + 1).await.unwrap().next().await.unwrap().unwrap();
    let proof = auditor.inclusion_proof(index, checkpoint.size).await.unwrap();
    huduma_sdk::receipt::verify_inclusion(&checkpoint, index, &record.data, &proof).expect("included");
    // Nothing of the look-up is readable in the record itself.
    assert!(!record.data.windows(15).any(|w| w == b"counter service"));
}

/// A principal with `calls_per_second` gets that many calls at once, then
/// RESOURCE_EXHAUSTED naming its rate and when to retry; other principals are not held
/// to it; and with its default retry policy the SDK waits as asked and retries, so each
/// of its calls succeeds, only later.
#[tokio::test]
async fn a_principal_over_its_call_rate_is_told_when_to_retry_and_the_sdk_waits_as_asked() {
    use huduma_sdk::RetryPolicy;
    let server = TestServer::start_with(|_, loaded| {
        let kra = loaded.config.principals.iter_mut().find(|p| p.name == "kra").unwrap();
        kra.calls_per_second = Some(5);
        let nhif = loaded.config.principals.iter_mut().find(|p| p.name == "nhif").unwrap();
        nhif.calls_per_second = Some(1);
    })
    .await;
    let number: HudumaNumber = register(&server, "r-1", 1).await.parse().unwrap();
    let once = RetryPolicy { attempts: 1, ..RetryPolicy::default() };
    let kra = Client::builder(server.endpoint()).token(server.token_of("kra")).retry(once).connect().await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(kra.resolve(number, "PAYE filing").await);
    }
    assert!(answers[..5].iter().all(Result::is_ok), "a burst of its rate: {:?}", &answers[..5]);
    let refused = answers.iter().find_map(|a| a.as_ref().err()).expect("20 calls at once are over 5 a second");
    let Error::ResourceExhausted { message, retry_after } = refused else { panic!("{refused:?}") };
    assert!(message.contains("kra is over its rate of 5 calls a second"), "{message}");
    let wait = retry_after.expect("the refusal says when to retry");
    assert!(wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_millis(200), "{wait:?}");

    let registrar = client(&server, Role::Registrar).await;
    for _ in 0..20 {
        registrar.resolve(number, "counter").await.expect("the registrar has no rate");
    }
    // One call a second: each call after the first is refused, and this policy's
    // backoff alone (at most 20 ms, two retries) would give up long before the second
    // it is told to wait.
    let quick = RetryPolicy {
        attempts: 3,
        initial_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(20),
    };
    let patient =
        Client::builder(server.endpoint()).token(server.token_of("nhif")).retry(quick).connect().await.unwrap();
    for i in 0..3 {
        patient.resolve(number, "claim").await.unwrap_or_else(|e| panic!("look-up {i}: {e}"));
    }
}

/// A history longer than one answer may hold: `history` reads it whole, page by page,
/// each record once and in order; `history_page` reads one page and says where the
/// next starts.
#[tokio::test]
async fn a_long_history_is_read_whole_page_by_page() {
    let limit = registry_server::config::MIN_MESSAGE_BYTES;
    let server = TestServer::start_with(|_, loaded| loaded.config.server.max_message_bytes = limit).await;
    let registrar = client(&server, Role::Registrar).await;
    let (number, _) = registrar.register_person("r-1", &wanjiru(), "GPO-NAIROBI").await.unwrap();
    let number = number.to_string();
    let record = AgencyRecord { agency: "KRA".into(), record_id: "A000000001X".into() };
    // Through a centre with a long name, so that fewer than 50 entries fill an answer.
    let centre = format!("GPO-NAIROBI-{}", "X".repeat(100));
    for i in 0..30 {
        registrar.link_agency_record(&format!("l{i}"), &number, &record, &centre).await.unwrap();
        registrar.unlink_agency_record(&format!("u{i}"), &number, &record, &centre).await.unwrap();
    }
    let whole = registrar.history(&number, "long history").await.unwrap();
    assert_eq!((whole.entries.len(), whole.next_page_token.as_deref()), (61, None));
    assert!(whole.entries.windows(2).all(|w| w[0].index < w[1].index));
    assert_eq!(whole.entries.first().map(|e| e.event.as_str()), Some("PersonRegistered"));
    assert!(whole.entries[1..].iter().all(|e| e.detail == "KRA"), "{whole:?}");

    let first = registrar.history_page(&number, "one page", 10, None).await.unwrap();
    assert_eq!(first.entries, whole.entries[..10]);
    let second = registrar.history_page(&number, "one page", 10, first.next_page_token.as_deref()).await.unwrap();
    assert_eq!(second.entries, whole.entries[10..20]);
    let error = registrar.history_page(&number, "one page", 501, None).await.unwrap_err();
    assert!(matches!(&error, Error::InvalidArgument { field, .. } if field == "page_size"), "{error:?}");
}
