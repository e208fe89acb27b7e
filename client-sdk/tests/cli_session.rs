//! The `huduma` CLI against a real server, as registrars, agencies and auditors run it:
//! every command, its exit codes, bulk registration that resumes without registering
//! anyone twice, and an audit download that resumes and verifies.

use std::path::Path;
use std::process::Command;

use huduma_e2e::TestServer;
use registry_server::auth::Role;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `huduma` with the endpoint and token in the environment, as a user would.
async fn huduma(server: &TestServer, token: &str, args: &[&str]) -> Out {
    let (endpoint, token) = (server.endpoint(), token.to_string());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_huduma"))
            .args(&args)
            .env("HUDUMA_ENDPOINT", endpoint)
            .env("HUDUMA_TOKEN", token)
            .output()
            .expect("run huduma");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    })
    .await
    .unwrap()
}

fn json(out: &Out) -> serde_json::Value {
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_and_an_agency_at_the_command_line() {
    let server = TestServer::start().await;
    let registrar = server.token(Role::Registrar);
    let kra = server.token_of("kra");
    let person = [
        "--given",
        "Wanjiru",
        "--family",
        "Kamau",
        "--other",
        "Njeri",
        "--dob",
        "1990-04-12",
        "--sex",
        "female",
        "--place",
        "Nyeri",
        "--centre",
        "GPO-NAIROBI",
    ];
    let mut args = vec!["--json", "register"];
    args.extend(person);
    let issued = json(&huduma(&server, &registrar, &args).await);
    let number = issued["huduma_number"].as_str().unwrap().to_string();
    assert_eq!(number.len(), 12, "JSON carries the compact form: {number}");

    // The agency resolves (a table), links its record, resolves by it.
    let shown = huduma(&server, &kra, &["resolve", &number, "--purpose", "PIN registration"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("given_name") && shown.stdout.contains("Wanjiru"), "{}", shown.stdout);
    assert!(shown.stdout.contains("Active"), "{}", shown.stdout);
    let linked = huduma(&server, &kra, &["link", &number, "--agency", "KRA", "--record", "A012345678Z"]).await;
    assert_eq!(linked.code, 0, "{}", linked.stderr);
    let by_record = json(
        &huduma(&server, &kra, &["--json", "resolve", "--agency", "KRA", "--record", "A012345678Z", "--purpose", "x"])
            .await,
    );
    assert_eq!(by_record["number"].as_str().unwrap(), number);

    // Revoke; a replacement is then refused (5); reinstate; death.
    let centre = ["--centre", "GPO-NAIROBI"];
    let mut revoke = vec!["revoke", number.as_str(), "--reason", "suspected fraud"];
    revoke.extend(centre);
    assert_eq!(huduma(&server, &registrar, &revoke).await.code, 0);
    let mut replace = vec!["replace", number.as_str(), "--reason", "lost"];
    replace.extend(centre);
    let refused = huduma(&server, &registrar, &replace).await;
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    let mut reinstate = vec!["reinstate", number.as_str(), "--reason", "cleared"];
    reinstate.extend(centre);
    assert_eq!(huduma(&server, &registrar, &reinstate).await.code, 0);
    let mut replace_ok = vec!["--json", "replace", number.as_str(), "--reason", "lost"];
    replace_ok.extend(centre);
    let replaced = json(&huduma(&server, &registrar, &replace_ok).await);
    let new_number = replaced["huduma_number"].as_str().unwrap().to_string();
    let mut death = vec!["death", new_number.as_str(), "--date", "2024-02-29"];
    death.extend(centre);
    assert_eq!(huduma(&server, &registrar, &death).await.code, 0);
    // That death was recorded in error: retracted, the person resolves active with no
    // date of death, and a second retraction is refused (5). Then recorded again.
    let mut retract = vec!["retract-death", new_number.as_str(), "--reason", "appeared in person"];
    retract.extend(centre);
    let retracted = huduma(&server, &registrar, &retract).await;
    assert_eq!(retracted.code, 0, "{}", retracted.stderr);
    let alive = json(&huduma(&server, &registrar, &["--json", "resolve", &new_number, "--purpose", "check"]).await);
    assert_eq!(alive["status"], "Active", "{alive}");
    assert!(alive["date_of_death"].is_null(), "{alive}");
    let again = huduma(&server, &registrar, &retract).await;
    assert_eq!(again.code, 5, "{}", again.stderr);
    assert_eq!(huduma(&server, &registrar, &death).await.code, 0);
    let mut unlink = vec!["unlink", new_number.as_str(), "--agency", "KRA", "--record", "A012345678Z"];
    unlink.extend(centre);
    assert_eq!(huduma(&server, &registrar, &unlink).await.code, 0);

    // The agency's change stream, as lines.
    let watched = huduma(&server, &kra, &["watch", "--from", "0", "--limit", "3"]).await;
    assert_eq!(watched.code, 0, "{}", watched.stderr);
    let lines: Vec<&str> = watched.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", watched.stdout);
    assert!(lines[0].contains("AgencyRecordLinked"), "{}", lines[0]);

    // Exit codes: not found 4, invalid 3, not allowed 6, unavailable 7.
    let unknown = huduma_sdk::HudumaNumber::with_check_digit(23_456_789_012).unwrap().compact();
    assert_eq!(huduma(&server, &kra, &["resolve", &unknown, "--purpose", "x"]).await.code, 4);
    let invalid = huduma(&server, &kra, &["resolve", "1234", "--purpose", "x"]).await;
    assert_eq!(invalid.code, 3);
    assert!(invalid.stderr.contains("length"), "{}", invalid.stderr);
    let mut as_agency = vec!["register"];
    as_agency.extend(person);
    assert_eq!(huduma(&server, &kra, &as_agency).await.code, 6);
    let down = huduma(
        &server,
        &kra,
        &["--endpoint", "http://127.0.0.1:9", "--timeout", "1", "resolve", &number, "--purpose", "x"],
    )
    .await;
    assert_eq!(down.code, 7, "{}", down.stderr);
}

/// The number a `--json` registration issued.
fn issued(out: &Out) -> String {
    json(out)["huduma_number"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_searches_overrides_corrects_merges_and_unmerges_and_an_admin_erases() {
    let server = TestServer::start().await;
    let registrar = server.token(Role::Registrar);
    let admin = server.token(Role::Admin);
    let person =
        ["--given", "Akinyi", "--family", "Otieno", "--dob", "1988-11-03", "--sex", "female", "--place", "Kisumu"];
    let with = |head: &[&'static str], tail: &[&'static str]| -> Vec<&'static str> {
        head.iter().chain(person.iter()).chain(tail.iter()).copied().collect()
    };
    let centre = ["--centre", "KISUMU-HC"];
    let first = issued(&huduma(&server, &registrar, &with(&["--json", "register"], &centre)).await);

    // The same person again is refused (5), naming the candidate and the way to override.
    let size = server.log_size().await;
    let refused = huduma(&server, &registrar, &with(&["register"], &centre)).await;
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    let grouped = huduma_sdk::check_number(&first).unwrap().to_string();
    assert!(refused.stderr.contains(&format!("possible duplicate of {grouped} (score ")), "{}", refused.stderr);
    assert!(refused.stderr.contains("--override-duplicate"), "{}", refused.stderr);
    assert_eq!(server.log_size().await, size, "a refusal writes nothing");

    // The search finds the same candidate, above the threshold; another person finds none.
    let found = json(&huduma(&server, &registrar, &with(&["--json", "duplicates"], &[])).await);
    assert_eq!(found[0]["huduma_number"], first.as_str(), "{found}");
    assert_eq!(found[0]["above_threshold"], true, "{found}");
    let score = found[0]["score"].as_f64().unwrap();
    assert!(score > 0.0 && score <= 28.0, "{score}");
    let stranger = ["duplicates", "--given", "Baraka", "--family", "Mwangi", "--dob", "1950-06-30"];
    let none = huduma(&server, &registrar, &[&stranger[..], &["--sex", "male", "--place", "Nyeri"]].concat()).await;
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert!(none.stdout.contains("no registered person"), "{}", none.stdout);
    let partial = huduma(&server, &registrar, &["duplicates", "--given", "Akinyi"]).await;
    assert_eq!(partial.code, 2);
    assert!(partial.stderr.contains("--family is required"), "{}", partial.stderr);

    // Registered all the same, with a justification: a second number.
    let twin = ["--override-duplicate", "twin sister; birth certificate seen", "--centre", "KISUMU-HC"];
    let second = issued(&huduma(&server, &registrar, &with(&["--json", "register"], &twin)).await);
    assert_ne!(second, first);
    assert_eq!(server.log_size().await, size + 1);

    // The second's given name corrected: every field given, as it should read.
    let corrected = [
        "correct",
        &second,
        "--given",
        "Adhiambo",
        "--family",
        "Otieno",
        "--dob",
        "1988-11-03",
        "--sex",
        "female",
        "--place",
        "Kisumu",
        "--centre",
        "KISUMU-HC",
    ];
    assert_eq!(huduma(&server, &registrar, &corrected).await.code, 0);
    let shown = json(&huduma(&server, &registrar, &["--json", "resolve", &second, "--purpose", "check"]).await);
    assert_eq!(shown["demographics"]["given_name"], "Adhiambo", "{shown}");
    let short = huduma(&server, &registrar, &["correct", &second, "--given", "Adhiambo", "--centre", "X"]).await;
    assert_eq!(short.code, 2);
    assert!(short.stderr.contains("correct: --family is required"), "{}", short.stderr);
    // Corrected into a third registered person's demographics, the twin is refused as
    // his likely duplicate (5), naming him and the way to override; with a justification
    // it goes. The search, leaving the twin out, shows it coming.
    let baraka =
        ["--given", "Baraka", "--family", "Mwangi", "--dob", "1950-06-30", "--sex", "male", "--place", "Nyeri"];
    let third = issued(&huduma(&server, &registrar, &[&["--json", "register"][..], &baraka, &centre].concat()).await);
    let ahead: Vec<&str> = [&["--json", "duplicates"][..], &baraka, &["--excluding", second.as_str()]].concat();
    let found = json(&huduma(&server, &registrar, &ahead).await);
    let numbers: Vec<&str> = found.as_array().unwrap().iter().map(|c| c["huduma_number"].as_str().unwrap()).collect();
    assert_eq!(numbers, [third.as_str()], "{found}");
    let bad: Vec<&str> = [&["duplicates"][..], &person, &["--excluding", "1234"]].concat();
    let bad = huduma(&server, &registrar, &bad).await;
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(bad.stderr.contains("--excluding"), "{}", bad.stderr);
    let size = server.log_size().await;
    let into_baraka: Vec<&str> = [&["correct", second.as_str()][..], &baraka, &centre].concat();
    let refused = huduma(&server, &registrar, &into_baraka).await;
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    let grouped = huduma_sdk::check_number(&third).unwrap().to_string();
    assert!(refused.stderr.contains(&format!("possible duplicate of {grouped} (score ")), "{}", refused.stderr);
    assert!(refused.stderr.contains("--override-duplicate"), "{}", refused.stderr);
    assert_eq!(server.log_size().await, size, "a refusal writes nothing");
    let why = ["--override-duplicate", "namesake; the register had the wrong person's page"];
    assert_eq!(huduma(&server, &registrar, &[&into_baraka[..], &why[..]].concat()).await.code, 0);
    assert_eq!(server.log_size().await, size + 1);
    let shown = json(&huduma(&server, &registrar, &["--json", "resolve", &second, "--purpose", "check"]).await);
    assert_eq!(shown["demographics"]["given_name"], "Baraka", "{shown}");
    // Corrected back into the first's demographics: judged another person than her at
    // her registration, the twin is not refused as her duplicate again.
    let back: Vec<&str> = [&["correct", second.as_str()][..], &person, &centre].concat();
    let corrected_back = huduma(&server, &registrar, &back).await;
    assert_eq!(corrected_back.code, 0, "{}", corrected_back.stderr);
    let shown = json(&huduma(&server, &registrar, &["--json", "resolve", &second, "--purpose", "check"]).await);
    assert_eq!(shown["demographics"]["given_name"], "Akinyi", "{shown}");

    // Found to be one person after all: merged. Again is refused; a typo names its flag.
    let merge = |survivor: &str, duplicate: &str| {
        let args = ["merge", "--survivor", survivor, "--duplicate", duplicate, "--justification", "same fingerprints"];
        [&args[..], &centre].concat().into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = merge(&first, &second);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(huduma(&server, &registrar, &argv).await.code, 0);
    let merged = json(&huduma(&server, &registrar, &["--json", "resolve", &second, "--purpose", "check"]).await);
    assert_eq!((merged["status"].as_str(), merged["superseded_by"].as_str()), (Some("Merged"), Some(first.as_str())));
    assert_eq!(huduma(&server, &registrar, &argv).await.code, 5, "a merged enrolment is not merged twice");
    let mut typo = second.clone().into_bytes();
    typo[4] = if typo[4] == b'9' { b'0' } else { typo[4] + 1 };
    let args = merge(&first, std::str::from_utf8(&typo).unwrap());
    let bad = huduma(&server, &registrar, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(bad.code, 3);
    assert!(bad.stderr.contains("--duplicate") && bad.stderr.contains("check digit"), "{}", bad.stderr);

    // The merge was a mistake after all: undone, the second enrolment resolves as itself
    // again. Undoing it twice is refused (5).
    let unmerge =
        [&["unmerge", "--duplicate", &second, "--justification", "fingerprints differ"][..], &centre].concat();
    assert_eq!(huduma(&server, &registrar, &unmerge).await.code, 0);
    let unmerged = json(&huduma(&server, &registrar, &["--json", "resolve", &second, "--purpose", "check"]).await);
    assert_eq!(unmerged["status"], "Active", "{unmerged}");
    assert_eq!(unmerged["number"].as_str(), Some(second.as_str()), "{unmerged}");
    assert_eq!(huduma(&server, &registrar, &unmerge).await.code, 5, "an active person is not unmerged");
    // Its history shows the merge and its undoing, with why.
    let history = json(&huduma(&server, &registrar, &["--json", "history", &second, "--purpose", "check"]).await);
    let events: Vec<&str> = history["entries"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(events.ends_with(&["RecordsMerged", "RecordsUnmerged"]), "{history}");
    assert_eq!(history["entries"].as_array().unwrap().last().unwrap()["detail"], "fingerprints differ", "{history}");

    // Erasure is the admin's: a registrar is not allowed (6); then the number resolves as erased.
    let erase = ["erase", &first, "--legal-basis", "Data Protection Act 2019, s. 40"];
    assert_eq!(huduma(&server, &registrar, &erase).await.code, 6);
    assert_eq!(huduma(&server, &admin, &erase).await.code, 0);
    let erased = json(&huduma(&server, &registrar, &["--json", "resolve", &first, "--purpose", "check"]).await);
    assert_eq!(erased["status"], "Erased", "{erased}");
    assert!(erased["demographics"].is_null(), "{erased}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_has_the_serving_registry_back_itself_up() {
    let server = TestServer::start_with(|_, loaded| loaded.config.server.checkpoint_interval_ms = 20).await;
    let (registrar, admin) = (server.token(Role::Registrar), server.token(Role::Admin));
    let register =
        ["--json", "register", "--given", "Achieng", "--family", "Otieno", "--dob", "1988-02-29", "--sex", "female"];
    let number = issued(
        &huduma(&server, &registrar, &[&register[..], &["--place", "Kisumu", "--centre", "KSM"]].concat()).await,
    );
    server.wait_for_checkpoints().await;

    let taken = json(&huduma(&server, &admin, &["--json", "backup", "weekly-49"]).await);
    let expected = server.dir.path().join("backups").join("weekly-49");
    assert_eq!(taken["path"], expected.display().to_string(), "{taken}");
    assert_eq!(taken["records"], 2, "the log's initialisation and the registration: {taken}");
    assert_eq!(taken["keys"], 1, "{taken}");
    assert!(expected.join("access").is_dir());

    let again = huduma(&server, &admin, &["backup", "weekly-49"]).await;
    assert_eq!(again.code, 5, "refused: {}", again.stderr);
    assert!(again.stderr.contains("exists"), "{}", again.stderr);
    let bad = huduma(&server, &admin, &["backup", "weekly/49"]).await;
    assert_eq!(bad.code, 3, "invalid: {}", bad.stderr);
    assert!(bad.stderr.contains("name"), "{}", bad.stderr);
    assert_eq!(huduma(&server, &registrar, &["backup", "by-registrar"]).await.code, 6);
    assert!(!server.dir.path().join("backups").join("by-registrar").exists());
    let resolved = json(&huduma(&server, &registrar, &["--json", "resolve", &number, "--purpose", "check"]).await);
    assert_eq!(resolved["status"], "Active", "the registry served on: {resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_is_told_whose_data_a_restore_lost_and_enrols_it_again() {
    use registry_server::operator;
    let mut server = TestServer::start_with(|_, loaded| loaded.config.server.checkpoint_interval_ms = 20).await;
    let registrar = server.token(Role::Registrar);
    let first = [
        "register",
        "--given",
        "Otieno",
        "--family",
        "Odhiambo",
        "--dob",
        "1985-03-21",
        "--sex",
        "male",
        "--place",
        "Kisumu",
    ];
    issued(&huduma(&server, &registrar, &[&["--json"], &first[..], &["--centre", "GPO"]].concat()).await);
    server.wait_for_checkpoints().await;
    let taken = json(&huduma(&server, &server.token(Role::Admin), &["--json", "backup", "nightly"]).await);
    let backup_dir = std::path::PathBuf::from(taken["path"].as_str().unwrap());
    // Registered after the backup; the data directory then lost, the backup restored and
    // its tail taken back from the published log.
    let person = [
        "register",
        "--given",
        "Wanjiru",
        "--family",
        "Kamau",
        "--dob",
        "1990-05-14",
        "--sex",
        "female",
        "--place",
        "Nyeri",
    ];
    let number = issued(&huduma(&server, &registrar, &[&["--json"], &person[..], &["--centre", "GPO"]].concat()).await);
    server.stop().await;
    let export = server.dir.path().join("published.bin");
    operator::export(&server.loaded, &export).unwrap();
    let mut loaded = server.loaded.clone();
    loaded.config.server.data_dir = backup_dir.clone();
    operator::restore_tail(&loaded, &export, None, None, &mut |_, _| ()).unwrap();
    let restored = server.start_over(backup_dir).await;
    let registrar = restored.token(Role::Registrar);

    let seen = huduma(&restored, &registrar, &["resolve", &number, "--purpose", "counter"]).await;
    assert_eq!(seen.code, 0, "{}", seen.stderr);
    assert!(seen.stdout.contains("personal_data") && seen.stdout.contains("huduma correct"), "{}", seen.stdout);
    let death = ["death", &number, "--date", "2026-02-01", "--centre", "KNH"];
    let refused = huduma(&restored, &registrar, &death).await;
    assert_eq!(refused.code, 5, "refused: {}", refused.stderr);
    assert!(refused.stderr.contains("correct their demographics first"), "{}", refused.stderr);
    let corrected =
        huduma(&restored, &registrar, &[&["correct", number.as_str()], &person[1..], &["--centre", "GPO"]].concat())
            .await;
    assert_eq!(corrected.code, 0, "{}", corrected.stderr);
    let seen = json(&huduma(&restored, &registrar, &["--json", "resolve", &number, "--purpose", "counter"]).await);
    assert_eq!(
        (&seen["demographics"]["given_name"], &seen["personal_data_lost"]),
        (&"Wanjiru".into(), &false.into()),
        "{seen}"
    );
    assert_eq!(huduma(&restored, &registrar, &death).await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_verifies_attributes_and_a_citizen_portal_lists_the_look_ups() {
    let server = TestServer::start().await;
    let (registrar, kra, portal) =
        (server.token(Role::Registrar), server.token_of("kra"), server.token(Role::CitizenPortal));
    let register = [
        "--json",
        "register",
        "--given",
        "Chebet",
        "--family",
        "Kiprono",
        "--dob",
        "1995-02-14",
        "--sex",
        "female",
        "--place",
        "Eldoret",
        "--centre",
        "ELDORET-HC",
    ];
    let number = issued(&huduma(&server, &registrar, &register).await);
    assert_eq!(huduma(&server, &kra, &["link", &number, "--agency", "KRA", "--record", "P051234567X"]).await.code, 0);

    // Claims checked, names caselessly; nothing else is learnt.
    let claim = ["verify-attributes", &number, "--given", "CHEBET", "--dob", "1995-02-15", "--purpose", "loan KYC"];
    let table = huduma(&server, &kra, &claim).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(lines[0].starts_with("status") && lines[0].ends_with("Active"), "{}", table.stdout);
    assert!(lines[1].starts_with("given_name") && lines[1].ends_with("yes"), "{}", table.stdout);
    assert!(lines[2].starts_with("date_of_birth") && lines[2].ends_with("no"), "{}", table.stdout);
    assert!(!table.stdout.contains("Kiprono"), "{}", table.stdout);
    let by_record = [
        "--json",
        "verify-attributes",
        "--agency",
        "KRA",
        "--record",
        "P051234567X",
        "--family",
        "kiprono",
        "--purpose",
        "PIN check",
    ];
    let answer = json(&huduma(&server, &kra, &by_record).await);
    assert_eq!(answer, serde_json::json!({"status": "Active", "attributes": {"family_name": true}}));
    // By the agency's own token for the person, as an agency that is not shown numbers
    // names them; a number and a token together are a usage error.
    let resolved = json(&huduma(&server, &kra, &["--json", "resolve", &number, "--purpose", "PIN check"]).await);
    let token = resolved["agency_token"].as_str().unwrap().to_string();
    let by_token = ["--json", "resolve", "--agency-token", &token, "--purpose", "PIN check"];
    assert_eq!(json(&huduma(&server, &kra, &by_token).await)["number"], number.as_str());
    let claim_by_token =
        ["--json", "verify-attributes", "--agency-token", &token, "--place", "eldoret", "--purpose", "x"];
    let answer_by_token = json(&huduma(&server, &kra, &claim_by_token).await);
    assert_eq!(answer_by_token["attributes"]["place_of_birth"], true, "{answer_by_token}");
    let both = huduma(&server, &kra, &["resolve", &number, "--agency-token", &token, "--purpose", "x"]).await;
    assert_eq!(both.code, 2, "{}", both.stderr);
    let nothing = huduma(&server, &kra, &["verify-attributes", &number, "--purpose", "x"]).await;
    assert_eq!(nothing.code, 3, "{}", nothing.stderr);
    assert!(nothing.stderr.contains("claimed"), "names the field: {}", nothing.stderr);

    // The person's look-ups, newest first: one a page, every page with --all.
    let pages = huduma(&server, &portal, &["--json", "accesses", &number, "--page-size", "1", "--all"]).await;
    assert_eq!(pages.code, 0, "{}", pages.stderr);
    let pages: Vec<serde_json::Value> = pages.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let purposes: Vec<&str> = pages.iter().map(|p| p["accesses"][0]["purpose"].as_str().unwrap()).collect();
    assert_eq!(purposes, ["x", "PIN check", "PIN check", "PIN check", "loan KYC"], "newest first: {pages:?}");
    let last = pages.len() - 1;
    assert!(pages[..last].iter().all(|p| p["next_page_token"].is_string()), "{pages:?}");
    assert!(pages[last]["next_page_token"].is_null(), "{pages:?}");
    let first_page = huduma(&server, &portal, &["accesses", &number, "--page-size", "1"]).await;
    assert_eq!(first_page.code, 0, "{}", first_page.stderr);
    let shown = &first_page.stdout;
    assert!(shown.contains("VerifyAttributes") && shown.contains("purpose: x "), "{shown}");
    assert_eq!(shown.lines().count(), 1, "one page without --all: {shown}");
    // The portal is shown the agency, never which of its officials; an admin is.
    assert!(shown.contains(" KRA (agency)") && !shown.contains("KRA/kra"), "{shown}");
    let for_admin = huduma(&server, &server.token(Role::Admin), &["accesses", &number, "--page-size", "1"]).await;
    assert!(for_admin.stdout.contains(" KRA/kra (agency)"), "{}", for_admin.stdout);
    let page_token = pages[0]["next_page_token"].as_str().unwrap();
    assert!(first_page.stderr.contains(&format!("--page-token {page_token}")), "{}", first_page.stderr);
    let next = huduma(&server, &portal, &["accesses", &number, "--page-token", page_token]).await;
    assert_eq!(next.stdout.lines().count(), 4, "the rest, older: {}", next.stdout);
    assert!(next.stdout.contains("loan KYC") && !next.stdout.contains("purpose: x "), "{}", next.stdout);
    let later = huduma(&server, &portal, &["accesses", &number, "--since", "2100-01-01T00:00:00Z"]).await;
    assert!(later.stdout.starts_with("no look-ups"), "{}", later.stdout);
    let bad_time = huduma(&server, &portal, &["accesses", &number, "--since", "yesterday"]).await;
    assert_eq!(bad_time.code, 3);
    assert!(bad_time.stderr.contains("since"), "names the field: {}", bad_time.stderr);
    // Only a citizen portal and an admin may list them.
    assert_eq!(huduma(&server, &kra, &["accesses", &number]).await.code, 6);
    assert_eq!(huduma(&server, &registrar, &["accesses", &number]).await.code, 6);
}

/// The rows of a results file (CSV, after its header).
fn result_rows(text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|row| row.unwrap().iter().map(String::from).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_reconciles_a_file_of_its_records_and_resumes() {
    let server = TestServer::start().await;
    let (registrar, kra) = (server.token(Role::Registrar), server.token_of("kra"));
    let mut numbers = Vec::new();
    for i in 0..6 {
        let number = huduma_e2e::register(&server, &format!("rec-{i}"), i).await;
        let record = format!("A00{i}");
        assert_eq!(huduma(&server, &kra, &["link", &number, "--agency", "KRA", "--record", &record]).await.code, 0);
        numbers.push(number);
    }
    let death = ["death", &numbers[2], "--date", "2025-01-31", "--centre", "NYERI-HC"];
    assert_eq!(huduma(&server, &registrar, &death).await.code, 0);
    let replaced = json(
        &huduma(&server, &registrar, &["--json", "replace", &numbers[4], "--reason", "lost", "--centre", "X"]).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kra.csv");
    // A header, the six records, one KRA never linked, and a blank line.
    let lines: Vec<String> = (0..6).map(|i| format!("A00{i}")).chain(["Z999".to_string()]).collect();
    std::fs::write(&file, format!("record_id\n{}\n\n", lines.join("\n"))).unwrap();
    let args = [
        "reconcile",
        "--file",
        file.to_str().unwrap(),
        "--agency",
        "KRA",
        "--purpose",
        "quarterly",
        "--concurrency",
        "3",
    ];
    let first = huduma(&server, &kra, &args).await;
    assert_eq!(first.code, 4, "one record is not found: {}", first.stderr);
    let results = dir.path().join("kra.csv.results.csv");
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(
        text.starts_with("line,key,huduma_number,status,superseded_by,date_of_death,agency_token,error\n"),
        "{text}"
    );
    let rows = result_rows(&text);
    assert_eq!(rows.len(), 7, "{text}");
    let keys: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(keys, lines.iter().map(String::as_str).collect::<Vec<_>>(), "in input order");
    assert_eq!(rows[0][0], "2", "line numbers count the header");
    assert_eq!((rows[0][2].as_str(), rows[0][3].as_str()), (numbers[0].as_str(), "Active"));
    assert_eq!(rows[2][3], "Deceased");
    // The date of death as KRA's disclosure policy shows it (withheld or not), as resolve does.
    let one = ["--json", "resolve", "--agency", "KRA", "--record", "A002", "--purpose", "quarterly"];
    let resolved = json(&huduma(&server, &kra, &one).await);
    assert_eq!(rows[2][5], resolved["date_of_death"].as_str().unwrap_or_default(), "{resolved}");
    assert_eq!(rows[4][2], replaced["huduma_number"].as_str().unwrap(), "the number in force: {:?}", rows[4]);
    assert!(rows[..6].iter().all(|r| !r[6].is_empty() && r[7].is_empty()), "{text}");
    assert!(rows[6][7].starts_with("not found"), "{:?}", rows[6]);

    // Cut short as an interrupted run leaves it, in the middle of a row: the rerun cuts
    // the torn row off and asks only for what is missing.
    let kept: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    let torn = &text.lines().nth(4).unwrap()[..9];
    std::fs::write(&results, format!("{kept}{torn}")).unwrap();
    let portal = server.token(Role::CitizenPortal);
    let looked_up = |number: String| {
        let (server, portal) = (&server, &portal);
        async move {
            let out = huduma(server, portal, &["--json", "accesses", &number, "--all"]).await;
            out.stdout.lines().map(json_lines_count).sum::<usize>()
        }
    };
    let before = (looked_up(numbers[0].clone()).await, looked_up(numbers[5].clone()).await);
    assert_eq!(huduma(&server, &kra, &args).await.code, 4);
    assert_eq!(std::fs::read_to_string(&results).unwrap(), text, "the same rows");
    let after = (looked_up(numbers[0].clone()).await, looked_up(numbers[5].clone()).await);
    assert_eq!((after.0, after.1), (before.0, before.1 + 1), "line 2 not looked up again, line 7 once more");

    // A last row whole but for its line's end is cut off too (its last field may be short).
    let unended = text.lines().nth(4).unwrap();
    std::fs::write(&results, format!("{kept}{unended}")).unwrap();
    assert_eq!(huduma(&server, &kra, &args).await.code, 4);
    assert_eq!(std::fs::read_to_string(&results).unwrap(), text, "the same rows, each on its line");

    // A results file of something else is refused, not appended to.
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "line,request_id,huduma_number,error\n").unwrap();
    let mut elsewhere = args.to_vec();
    elsewhere.extend(["--out", other.to_str().unwrap()]);
    let refused = huduma(&server, &kra, &elsewhere).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("not the results of this command"), "{}", refused.stderr);

    // Numbers, with a typo among them: named in its row, without a call.
    let by_number = dir.path().join("numbers.txt");
    let mut typo = numbers[1].clone().into_bytes();
    typo[0] = if typo[0] == b'9' { b'1' } else { typo[0] + 1 };
    std::fs::write(&by_number, format!("{}\n{}\n", numbers[0], String::from_utf8(typo).unwrap())).unwrap();
    let out = huduma(&server, &kra, &["reconcile", "--file", by_number.to_str().unwrap(), "--purpose", "check"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let rows = result_rows(&std::fs::read_to_string(dir.path().join("numbers.txt.results.csv")).unwrap());
    assert_eq!((rows[0][3].as_str(), rows[0][7].as_str()), ("Active", ""));
    assert!(rows[1][7].contains("check digit"), "{:?}", rows[1]);
}

/// How many look-ups a page of `huduma --json accesses` holds.
fn json_lines_count(page: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(page).unwrap()["accesses"].as_array().unwrap().len()
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_registration_resumes_without_registering_anyone_twice() {
    let server = TestServer::start().await;
    let registrar = server.token(Role::Registrar);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.csv");
    let mut text = String::from("given_name,family_name,other_names,date_of_birth,sex,place_of_birth\n");
    for i in 0..20 {
        let dob = if i == 6 { "1990-02-30".to_string() } else { format!("19{:02}-0{}-1{}", 50 + i, 1 + i % 9, i % 10) };
        text.push_str(&format!(
            "Achieng{i},Odhiambo,Akinyi;Atieno,{dob},{},Kisumu\n",
            if i % 2 == 0 { "F" } else { "M" }
        ));
    }
    std::fs::write(&file, text).unwrap();
    let before = server.log_size().await;
    let args = ["register", "--file", file.to_str().unwrap(), "--centre", "KISUMU-HC", "--concurrency", "4"];
    let first = huduma(&server, &registrar, &args).await;
    assert_eq!(first.code, 5, "one line is refused: {}", first.stderr);
    let results = dir.path().join("people.csv.results.csv");
    let rows = std::fs::read_to_string(&results).unwrap();
    assert_eq!(rows.lines().count(), 21, "{rows}");
    let refused: Vec<Vec<String>> = result_rows(&rows).into_iter().filter(|r| !r[3].is_empty()).collect();
    assert_eq!(refused.len(), 1);
    assert!(refused[0][0] == "8" && refused[0][3].contains("date_of_birth"), "{:?}", refused[0]);
    assert_eq!(server.log_size().await, before + 19);
    // Request ids are named by the whole file's hash (as runs of earlier versions named
    // them, so a run they began resumes) and the line.
    let tag: String = blake3::hash(&std::fs::read(&file).unwrap()).to_hex().chars().take(16).collect();
    for row in result_rows(&rows) {
        assert_eq!(row[1], format!("bulk-{tag}-{}", row[0]), "{row:?}");
    }

    // Cut the results short, as an interrupted run leaves them, and run again.
    let kept: String = rows.lines().take(11).map(|l| format!("{l}\n")).collect();
    std::fs::write(&results, &kept).unwrap();
    let again = huduma(&server, &registrar, &args).await;
    assert_eq!(again.code, 5, "{}", again.stderr);
    assert_eq!(count_lines(&results), 21);
    assert_eq!(std::fs::read_to_string(&results).unwrap(), rows, "the same numbers, in the same order");
    assert_eq!(server.log_size().await, before + 19, "nobody was registered twice");
}

/// A file with a line that is not UTF-8 is refused before anyone in it is registered,
/// naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_registration_refuses_a_file_that_is_not_text_before_registering_anyone() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.csv");
    let mut bytes = b"Achieng,Odhiambo,,1990-01-11,F,Kisumu\n".to_vec();
    bytes.extend_from_slice(b"Otieno,Odhiambo,,1991-01-11,M,Kisumu\n");
    bytes.extend_from_slice(b"Wanjiru,Kam\xffau,,1992-01-11,F,Nyeri\n");
    std::fs::write(&file, bytes).unwrap();
    let before = server.log_size().await;
    let args = ["register", "--file", file.to_str().unwrap(), "--centre", "KISUMU-HC"];
    let out = huduma(&server, &server.token(Role::Registrar), &args).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("people.csv") && out.stderr.contains("UTF-8"), "{}", out.stderr);
    assert_eq!(server.log_size().await, before, "nobody was registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_downloads_resumes_and_verifies() {
    let server = TestServer::start().await;
    for i in 0..30 {
        huduma_e2e::register(&server, &format!("a-{i}"), i).await;
    }
    let auditor = server.token(Role::Auditor);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.bin");
    let log_arg = log.to_str().unwrap();
    let keys = json(&huduma(&server, &auditor, &["--json", "audit", "keys"]).await);
    let genesis = keys["keys"][0]["verifier_key"].as_str().unwrap().to_string();

    let full = huduma(&server, &auditor, &["audit", "records", "--out", log_arg]).await;
    assert_eq!(full.code, 0, "{}", full.stderr);
    let bytes = std::fs::read(&log).unwrap();
    // A run cut off mid-record resumes to the same bytes.
    std::fs::write(&log, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let resumed = huduma(&server, &auditor, &["audit", "records", "--out", log_arg]).await;
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(std::fs::read(&log).unwrap(), bytes);

    let verified = json(
        &huduma(&server, &auditor, &["--json", "audit", "verify", "--from", log_arg, "--genesis-key", &genesis]).await,
    );
    assert_eq!(verified["records"], 31);
    // Dropping or reordering records is named.
    let frames = split_frames(&bytes);
    let dropped: Vec<Vec<u8>> = frames.iter().enumerate().filter(|(i, _)| *i != 5).map(|(_, f)| f.clone()).collect();
    let mut reordered = frames.clone();
    reordered.swap(5, 6);
    for (name, frames) in [("dropped", dropped), ("reordered", reordered)] {
        let path = dir.path().join(format!("{name}.bin"));
        std::fs::write(&path, join_frames(&frames)).unwrap();
        let args = ["audit", "verify", "--from", path.to_str().unwrap(), "--genesis-key", &genesis];
        let out = huduma(&server, &auditor, &args).await;
        assert_eq!(out.code, 8, "{name}: {}", out.stderr);
        assert!(out.stderr.contains("record 5:"), "{name}: {}", out.stderr);
    }
    // Inclusion of one record in the newest checkpoint.
    let proved = json(&huduma(&server, &auditor, &["--json", "audit", "prove", "--index", "7"]).await);
    assert_eq!(proved["index"], 7);

    // Online, with a state file: the second run resumes where the first stopped.
    let state = dir.path().join("state.json");
    let state_arg = state.to_str().unwrap();
    let online = ["--json", "audit", "verify", "--genesis-key", &genesis, "--state", state_arg];
    let first = json(&huduma(&server, &auditor, &online).await);
    assert_eq!(first["records"], 31);
    assert_eq!(first["checkpoint_size"], 31, "the records produce the signed root");
    for i in 30..35 {
        huduma_e2e::register(&server, &format!("a-{i}"), i).await;
    }
    let mut second = json(&huduma(&server, &auditor, &online).await);
    for _ in 0..50 {
        // The newest checkpoint may trail the log by up to the signing interval.
        if second["records"] == 36 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        second = json(&huduma(&server, &auditor, &online).await);
    }
    assert_eq!((second["records"].as_u64(), second["checkpoint_size"].as_u64()), (Some(36), Some(36)));
    assert!(second["resumed_from"].as_u64().unwrap() >= 31, "resumed, and proved consistent with the last checkpoint");

    // A tampered copy is refused, naming the record.
    let mut tampered = bytes.clone();
    let mut at = 0;
    for _ in 0..10 {
        at += 4 + u32::from_be_bytes(tampered[at..at + 4].try_into().unwrap()) as usize;
    }
    tampered[at + 4 + 70] ^= 1;
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, tampered).unwrap();
    let refused =
        huduma(&server, &auditor, &["audit", "verify", "--from", bad.to_str().unwrap(), "--genesis-key", &genesis])
            .await;
    assert_eq!(refused.code, 8, "{}", refused.stderr);
    assert!(refused.stderr.contains("record 10"), "{}", refused.stderr);
    // Another genesis key is refused at record 0.
    let other = huduma_log::keys::note_verifier_key(
        "dev.huduma.local/log",
        &huduma_log::keys::LogKey::from_seed([1; 32]).public(),
    );
    let wrong = huduma(&server, &auditor, &["audit", "verify", "--from", log_arg, "--genesis-key", &other]).await;
    assert_eq!(wrong.code, 8);
    assert!(wrong.stderr.contains("record 0"), "{}", wrong.stderr);
}

/// Runs `args` until its JSON answer covers all of the access log (its newest
/// checkpoint may trail the log by up to the signing interval).
async fn verified_to_the_end(server: &TestServer, auditor: &str, args: &[&str]) -> serde_json::Value {
    let keys = json(&huduma(server, auditor, &["--json", "audit", "--log", "access", "keys"]).await);
    let size = keys["log_size"].as_u64().unwrap();
    for _ in 0..50 {
        let answer = json(&huduma(server, auditor, args).await);
        if answer["records"].as_u64() == Some(size) {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the access log's checkpoint never reached {size} records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_verifies_the_access_log_with_the_identity_logs_keys() {
    let server = TestServer::start().await;
    let (auditor, kra) = (server.token(Role::Auditor), server.token_of("kra"));
    let mut numbers = Vec::new();
    for i in 0..3 {
        numbers.push(huduma_e2e::register(&server, &format!("acc-{i}"), i).await);
    }
    for number in &numbers {
        assert_eq!(huduma(&server, &kra, &["resolve", number, "--purpose", "PIN check"]).await.code, 0);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (identity_state, access_state, export) = (path("identity.json"), path("access.json"), path("access.bin"));

    // The identity log first: its keys, verified from the genesis key, are kept.
    let identity = json(&huduma(&server, &auditor, &["--json", "audit", "verify", "--state", &identity_state]).await);
    assert_eq!(identity["log"], "identity");
    // Then the access log, its checkpoints checked with those keys.
    let online =
        ["--json", "audit", "--log", "access", "verify", "--keys-from", &identity_state, "--state", &access_state];
    let first = verified_to_the_end(&server, &auditor, &online).await;
    assert_eq!(first["log"], "access");
    assert!(first["origin"].as_str().unwrap().ends_with("/access"), "{first}");
    let size = first["records"].as_u64().unwrap();
    assert!(size >= 3, "every look-up is in it: {first}");
    assert_eq!(first["checkpoint_size"].as_u64(), Some(size));
    // Two look-ups more: the next run resumes where this one stopped.
    for number in &numbers[..2] {
        assert_eq!(huduma(&server, &kra, &["resolve", number, "--purpose", "audit trail"]).await.code, 0);
    }
    let second = verified_to_the_end(&server, &auditor, &online).await;
    assert_eq!(second["records"].as_u64(), Some(size + 2), "{second}");
    assert_eq!(second["resumed_from"].as_u64(), Some(size), "{second}");

    // Offline: a download verified against a checkpoint note, then copies altered.
    let download = huduma(&server, &auditor, &["audit", "--log", "access", "records", "--out", &export]).await;
    assert_eq!(download.code, 0, "{}", download.stderr);
    // The newest checkpoint, as the CLI prints it, is the registry's signed note exactly.
    let printed = huduma(&server, &auditor, &["audit", "--log", "access", "checkpoint"]).await;
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    let sdk = huduma_sdk::Client::connect(server.endpoint(), auditor.clone()).await.unwrap();
    let note = sdk.on_log(huduma_sdk::Log::Access).checkpoint(0).await.unwrap();
    assert_eq!(printed.stdout, note);
    let note_path = path("access.note");
    std::fs::write(&note_path, &printed.stdout).unwrap();
    let offline = |file: &str| -> Vec<String> {
        ["--json", "audit", "--log", "access", "verify", "--from", file, "--checkpoint", &note_path]
            .into_iter()
            .chain(["--keys-from", &identity_state])
            .map(String::from)
            .collect()
    };
    let args = offline(&export);
    let whole = huduma(&server, &auditor, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let signed = json(&whole)["checkpoint_size"].as_u64().unwrap();
    let frames = split_frames(&std::fs::read(&export).unwrap());
    // prev of record 2 (byte 17): the chain names it; the last record's body: the root.
    for (record, byte, named) in
        [(2usize, 17usize, "access record 2:".to_string()), (signed as usize - 1, 110, format!("checkpoint {signed}"))]
    {
        let mut altered = frames.clone();
        altered[record][byte] ^= 1;
        let file = path(&format!("altered-{record}.bin"));
        std::fs::write(&file, join_frames(&altered)).unwrap();
        let args = offline(&file);
        let out = huduma(&server, &auditor, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert_eq!(out.code, 8, "record {record} byte {byte}: {}", out.stderr);
        assert!(out.stderr.contains(&named), "names {named}: {}", out.stderr);
    }

    // A state file of one log is not taken for the other's; --genesis-key is the identity log's.
    let mixed = ["audit", "--log", "access", "verify", "--state", &identity_state];
    assert_eq!(huduma(&server, &auditor, &mixed).await.code, 3);
    let genesis = identity["keys"][0].as_str().unwrap();
    let wrong_flag = huduma(&server, &auditor, &["audit", "--log", "access", "verify", "--genesis-key", genesis]).await;
    assert_eq!(wrong_flag.code, 2, "{}", wrong_flag.stderr);
    // Keys that did not sign it are refused.
    let mut other =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&identity_state).unwrap()).unwrap();
    let stranger = huduma_log::keys::LogKey::from_seed([9; 32]).public();
    other["keys"] = serde_json::json!([huduma_log::keys::note_verifier_key("dev.huduma.local/log", &stranger)]);
    let other_state = path("other.json");
    std::fs::write(&other_state, other.to_string()).unwrap();
    let strange = ["audit", "--log", "access", "verify", "--keys-from", &other_state];
    let refused = huduma(&server, &auditor, &strange).await;
    assert_eq!(refused.code, 8, "{}", refused.stderr);
}

fn split_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        frames.push(bytes[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    frames
}

fn join_frames(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.iter().flat_map(|f| (f.len() as u32).to_be_bytes().into_iter().chain(f.iter().copied())).collect()
}

/// Two logs with the same keys and a common prefix that then diverge: the auditor who
/// verified one is shown the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_behind_a_verified_checkpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let exports = tokio::task::spawn_blocking(move || build_fork(&root)).await.unwrap();
    let key = huduma_log::keys::LogKey::from_seed([21; 32]);
    let genesis = huduma_log::keys::note_verifier_key("registry.huduma.go.ke/log", &key.public());
    let state = dir.path().join("state.json");
    let server = TestServer::start().await; // only an endpoint for the CLI; offline here
    let verify = |(log, note): &(std::path::PathBuf, std::path::PathBuf)| {
        vec![
            "--json".to_string(),
            "audit".into(),
            "verify".into(),
            "--from".into(),
            log.display().to_string(),
            "--checkpoint".into(),
            note.display().to_string(),
            "--genesis-key".into(),
            genesis.clone(),
            "--state".into(),
            state.display().to_string(),
        ]
    };
    let args_a = verify(&exports[0]);
    let a = huduma(&server, "", &args_a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(json(&a)["checkpoint_size"], 16);
    let args_b = verify(&exports[1]);
    let b = huduma(&server, "", &args_b.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(b.code, 8, "{}", b.stderr);
    assert!(b.stderr.contains("record 15:") && b.stderr.contains("forked"), "{}", b.stderr);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Builds the two logs (sync: the registry's blocking API), returns (export, note) of each.
fn build_fork(root: &Path) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    use registry_core::command::{Command, Submission};
    use registry_core::event::Actor;
    use registry_core::registry::{Registry, RegistryOptions};
    let key = huduma_log::keys::LogKey::from_seed([21; 32]);
    let secrets = || registry_core::secrets::Secrets::from_master([22; 32]);
    let options = RegistryOptions { checkpoint_interval: std::time::Duration::ZERO, ..RegistryOptions::default() };
    let open = |name: &str| {
        let path = root.join(name);
        loop {
            match Registry::open_dir(&path, secrets(), key.clone(), options.clone()) {
                Ok(registry) => break registry,
                Err(registry_core::registry::OpenError::Storage(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    let register = |registry: &Registry, tag: &str, count: u64| {
        for i in 0..count {
            let mut demographics = registry_server::synthetic::person(i);
            demographics.given_name = format!("{tag}{i}");
            let submission = Submission {
                request_id: format!("{tag}-{i}"),
                actor: Actor { principal: "fork-test".into(), via: "TEST".into() },
                command: Command::RegisterPerson { demographics },
            };
            registry.submit_blocking(submission).unwrap();
        }
    };
    let common = open("a");
    register(&common, "common", 10);
    common.close();
    copy_dir(&root.join("a"), &root.join("b"));
    let mut exports = Vec::new();
    for (name, tag) in [("a", "alpha"), ("b", "beta")] {
        let registry = open(name);
        register(&registry, tag, 5);
        let log = root.join(format!("{name}.bin"));
        let mut file = std::fs::File::create(&log).unwrap();
        registry_core::log_export::export_log(&**registry.store(), &mut file).unwrap();
        let (_, note) = registry.reader().latest_checkpoint().unwrap().unwrap();
        let note_path = root.join(format!("{name}.note"));
        std::fs::write(&note_path, note).unwrap();
        registry.close();
        exports.push((log, note_path));
    }
    exports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_registration_reads_json_lines_and_names_a_bad_line() {
    let server = TestServer::start().await;
    let registrar = server.token(Role::Registrar);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.jsonl");
    let person = |given: &str, extra: &str| {
        format!(
            r#"{{"given_name":"{given}","family_name":"Mutua","other_names":["Mwende"],"date_of_birth":"1985-07-21","sex":"female","place_of_birth":"Machakos"{extra}}}"#
        )
    };
    let lines = [person("Ndinda", ""), person("Kalekye", r#","nickname":"Kale""#), person("Mbithe", "")];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let before = server.log_size().await;
    let out =
        huduma(&server, &registrar, &["register", "--file", file.to_str().unwrap(), "--centre", "MACHAKOS-HC"]).await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    let rows = std::fs::read_to_string(dir.path().join("people.jsonl.results.csv")).unwrap();
    let refused: Vec<Vec<String>> = result_rows(&rows).into_iter().filter(|r| !r[3].is_empty()).collect();
    assert_eq!(refused.len(), 1, "{rows}");
    assert!(refused[0][0] == "2" && refused[0][3].contains("nickname"), "{:?}", refused[0]);
    assert_eq!(server.log_size().await, before + 2);
}
