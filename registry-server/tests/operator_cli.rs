//! The operator commands as an operator runs them: one `--config FILE` for all.

use std::process::Command;

use registry_server::config::ensure_dev_config;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_huduma-registry")).args(args).output().expect("run huduma-registry");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn keygen_writes_the_key_the_config_names_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = ensure_dev_config(dir.path()).unwrap();
    let config = config.to_str().unwrap();
    let key = dir.path().join("log.key");
    let before = std::fs::read(&key).unwrap();
    let (ok, _, err) = run(&["keygen", "--config", config]);
    assert!(!ok);
    assert!(err.contains("never overwrites"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key is untouched");
    std::fs::remove_file(&key).unwrap();
    let (ok, out, err) = run(&["keygen", "--config", config]);
    assert!(ok, "{err}");
    assert!(out.contains("verifier key: dev.huduma.local/log+"), "{out}");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("PRIVATE+KEY+dev.huduma.local/log+"), "a C2SP signed-note private key");
    // The other operator commands read the same file.
    let (ok, out, err) = run(&["verify", "--config", config]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ok: 0 records verified"), "a store not yet opened has no records: {out}");
    let (ok, _, err) = run(&["rebuild", "--config", config]);
    assert!(ok, "{err}");
}

/// `check-config` checks a config as a start (or a SIGHUP reload) would, without
/// serving: a good one is summarised, a bad field or a missing key file is named.
#[test]
fn check_config_names_what_is_wrong_before_a_start_or_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = ensure_dev_config(dir.path()).unwrap();
    let path = config.to_str().unwrap();
    let (ok, out, err) = run(&["check-config", "--config", path]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("ok: {path}")), "{out}");
    assert!(out.contains("6 principals (0 with a call rate), 2 agency disclosure policies; tls: off"), "{out}");
    assert!(out.contains("log key: dev.huduma.local/log+"), "{out}");
    let text = std::fs::read_to_string(&config).unwrap();

    let rated = text.replacen("role = \"agency\"\n", "role = \"agency\"\ncalls_per_second = 0\n", 1);
    assert_ne!(rated, text);
    std::fs::write(&config, &rated).unwrap();
    let (ok, _, err) = run(&["check-config", "--config", path]);
    assert!(!ok);
    assert!(err.contains("principals[1].calls_per_second: between 1 and 100000"), "{err}");
    std::fs::write(&config, rated.replace("calls_per_second = 0", "calls_per_second = 50")).unwrap();
    let (ok, out, err) = run(&["check-config", "--config", path]);
    assert!(ok, "{err}");
    assert!(out.contains("(1 with a call rate)"), "{out}");

    std::fs::remove_file(dir.path().join("master.secret")).unwrap();
    let (ok, _, err) = run(&["check-config", "--config", path]);
    assert!(!ok);
    assert!(err.contains("master.secret"), "{err}");
}

#[test]
fn a_load_with_refused_registrations_fails_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = ensure_dev_config(dir.path()).unwrap();
    let config = config.to_str().unwrap();
    let (ok, _, err) = run(&["load", "--config", config, "--count", "20", "--run", "a"]);
    assert!(ok, "{err}");
    assert!(err.contains("ok: 20 registrations accepted, 0 refused"), "{err}");
    // The same persons under new request ids: each is a likely duplicate of itself.
    let (ok, _, err) = run(&["load", "--config", config, "--count", "20", "--run", "b"]);
    assert!(!ok, "a load that registered nobody must not succeed: {err}");
    assert!(err.contains("failed: 0 registrations accepted, 20 refused"), "{err}");
    assert!(err.contains("20 of 20 registrations were not accepted; the first: registration 0:"), "{err}");
    assert!(err.contains("duplicate"), "the reason is given: {err}");
    // Nothing refused was written.
    let (ok, out, err) = run(&["verify", "--config", config]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ok: 21 records verified"), "{out}");
}

/// Leaves the store as a crash in the middle of a batch's commit does: the batch's
/// intent, then the first half of its writes.
fn cut_a_commit_short(config: &std::path::Path) -> u64 {
    use std::sync::Arc;

    use registry_core::commit_intent::CommitIntent;
    use registry_core::storage::sled_store::SledStore;
    use registry_core::storage::{INTENT_KEY, Storage, WriteBatch};

    let loaded = registry_server::config::Loaded::read(config).unwrap();
    let store: Arc<dyn Storage> = Arc::new(SledStore::open(&loaded.config.server.data_dir).unwrap());
    let secrets = Arc::new(loaded.secrets().unwrap());
    let issuer = registry_core::issuer::NumberIssuer::new(secrets.number_key(), Default::default());
    let mut writer = registry_core::writer::Writer::open(
        Arc::clone(&store),
        secrets,
        issuer,
        loaded.log_key().unwrap(),
        &loaded.config.server.origin,
    )
    .unwrap();
    let submissions: Vec<_> = (100..104).map(|i| registry_server::synthetic::registration("cut", i)).collect();
    let built = writer.build(None, &submissions);
    assert!(built.results.iter().all(Result::is_ok), "{:?}", built.results);
    let first_seq = built.start.next_seq;
    let mut intent = WriteBatch::default();
    intent.put(
        INTENT_KEY.0,
        INTENT_KEY.1.to_vec(),
        CommitIntent::of(&*store, first_seq, &built.batch).unwrap().encode(),
    );
    store.commit(&intent, true).unwrap();
    let mut half = WriteBatch::default();
    let writes = built.batch.writes.iter().flat_map(|(tree, w)| w.iter().map(move |(k, v)| (*tree, k, v)));
    for (tree, key, value) in writes.take(built.batch.len() / 2) {
        match value {
            Some(value) => half.put(tree, key.clone(), value.clone()),
            None => half.remove(tree, key.clone()),
        }
    }
    store.write_in_order(&half, true).unwrap();
    first_seq
}

#[test]
fn a_commit_a_crash_cut_short_is_refused_by_verify_and_export_and_undone_by_recover() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = ensure_dev_config(dir.path()).unwrap();
    let (ok, _, err) = run(&["load", "--config", config.to_str().unwrap(), "--count", "20", "--run", "a"]);
    assert!(ok, "{err}");
    let first_seq = cut_a_commit_short(&config);
    assert_eq!(first_seq, 21, "record 0 and the 20 registrations");
    let config = config.to_str().unwrap();
    let (ok, _, err) = run(&["verify", "--config", config]);
    assert!(!ok);
    assert!(err.contains("from record 21 on was cut short") && err.contains("huduma-registry recover"), "{err}");
    let out = dir.path().join("log.bin");
    let (ok, _, err) = run(&["export", "--config", config, "--out", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("from record 21 on was cut short"), "{err}");
    assert!(!out.exists(), "a refused export leaves no file behind");
    let (ok, stdout, err) = run(&["recover", "--config", config]);
    assert!(ok, "{err}");
    assert!(stdout.contains("the batch from record 21 on, cut short by a crash, is undone ("), "{stdout}");
    let (ok, stdout, err) = run(&["verify", "--config", config]);
    assert!(ok, "{err}");
    assert!(stdout.starts_with("ok: 21 records verified"), "{stdout}");
    let (ok, stdout, err) = run(&["recover", "--config", config]);
    assert!(ok, "{err}");
    assert!(stdout.contains("nothing to undo"), "{stdout}");
    let (ok, _, err) = run(&["export", "--config", config, "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
}

/// Past `fold_in_memory_max_records`, `verify` and `rebuild` fold the log in a scratch
/// store under the data directory: a stale one is cleared, and none is left behind.
#[test]
fn verify_and_rebuild_past_the_memory_limit_fold_on_disk_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = ensure_dev_config(dir.path()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("fold_in_memory_max_records = "), "the dev config names the limit:\n{text}");
    let text: String = text
        .lines()
        .map(|line| match line.starts_with("fold_in_memory_max_records") {
            true => "fold_in_memory_max_records = 5\n".to_string(),
            false => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let (ok, _, err) = run(&["load", "--config", config, "--count", "20", "--run", "a"]);
    assert!(ok, "{err}");
    let scratch = dir.path().join("data").join(registry_core::replay::SCRATCH_DIR);
    for command in ["verify", "rebuild"] {
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(scratch.join("stale"), b"left by a killed run").unwrap();
        let (ok, out, err) = run(&[command, "--config", config]);
        assert!(ok, "{command}: {err}");
        assert!(out.starts_with("ok: "), "{command}: {out}");
        assert!(!scratch.exists(), "{command} folded on disk and removed its scratch store");
    }
}

/// A copy of `config` whose `data_dir` is `data`.
fn config_over(config: &std::path::Path, data: &std::path::Path, name: &str) -> std::path::PathBuf {
    let text: String = std::fs::read_to_string(config)
        .unwrap()
        .lines()
        .map(|line| match line.starts_with("data_dir") {
            true => format!("data_dir = {:?}\n", data.display().to_string()),
            false => format!("{line}\n"),
        })
        .collect();
    let path = config.with_file_name(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Records three look-ups in the store `config` names, in process; writes the access
/// log's export and its newest signed checkpoint, as an auditor would keep them.
fn looked_up_three_times(config: &std::path::Path, export: &std::path::Path, note: &std::path::Path) {
    let loaded = registry_server::config::Loaded::read(config).unwrap();
    let registry = registry_server::operator::open_registry(&loaded).unwrap();
    for i in 0..3 {
        let look_up = registry_core::synthetic::look_up(None, "KRA", &format!("look-up {i}"));
        registry.access().record_blocking(look_up).unwrap();
    }
    let reader = registry.access().reader();
    for _ in 0..500 {
        if let Some((3, signed)) = reader.latest_checkpoint().unwrap() {
            std::fs::write(note, signed).unwrap();
            let mut out = std::fs::File::create(export).unwrap();
            registry_core::log_export::export_log(&**reader.store(), &mut out).unwrap();
            registry.close();
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no checkpoint of the three look-ups");
}

/// A development store in `dir` with 20 registrations, backed up at rest into
/// `dir/backup-1`: its config, the backup, and what `backup` said.
fn backed_up_after_20(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let (config, _) = ensure_dev_config(dir).unwrap();
    let config_arg = config.to_str().unwrap();
    let (ok, _, err) = run(&["load", "--config", config_arg, "--count", "20", "--run", "a"]);
    assert!(ok, "{err}");
    let out = dir.join("backup-1");
    let (ok, said, err) = run(&["backup", "--config", config_arg, "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    (config, out, said)
}

#[test]
fn a_backup_is_taken_at_rest_checked_and_restored_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out, said) = backed_up_after_20(dir.path());
    let config_arg = config.to_str().unwrap();
    assert!(said.starts_with("ok: ") && said.contains("the identity log's 21 records produce"), "{said}");
    assert!(said.contains("master secret"), "says what is not in it: {said}");

    // Restored: a configuration over the copy verifies, and exports the same log.
    let restored = config_over(&config, &out, "restored.toml");
    let (ok, verified, err) = run(&["verify", "--config", restored.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(verified.starts_with("ok: 21 records verified"), "{verified}");
    let export = |config: &std::path::Path, name: &str| {
        let file = dir.path().join(name);
        let (ok, _, err) = run(&["export", "--config", config.to_str().unwrap(), "--out", file.to_str().unwrap()]);
        assert!(ok, "{err}");
        std::fs::read(file).unwrap()
    };
    assert_eq!(export(&restored, "copy.bin"), export(&config, "original.bin"), "the same log, byte for byte");

    // Never over anything.
    let (ok, _, err) = run(&["backup", "--config", config_arg, "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("not empty"), "{err}");
    // Never of a store in use: a registry holding it (here, this process) is named.
    let data = dir.path().join("data");
    let held = registry_core::storage::sled_store::SledStore::open(&data).unwrap();
    let second = dir.path().join("backup-2");
    let (ok, _, err) = run(&["backup", "--config", config_arg, "--out", second.to_str().unwrap()]);
    assert!(!ok && err.contains("in use"), "{err}");
    assert!(err.contains("huduma backup NAME"), "the online backup is named: {err}");
    assert!(!second.exists(), "nothing written");
    drop(held);
    // Nor of a data directory with no store in it.
    let empty = config_over(&config, &dir.path().join("nothing-here"), "empty.toml");
    let (ok, _, err) = run(&["backup", "--config", empty.to_str().unwrap(), "--out", second.to_str().unwrap()]);
    assert!(!ok && err.contains("there is no store there"), "{err}");
}

#[test]
fn a_restored_backup_takes_back_the_lost_tail_from_the_auditors_export() {
    let dir = tempfile::tempdir().unwrap();
    let (config, out, _) = backed_up_after_20(dir.path());
    let config_arg = config.to_str().unwrap();
    // Then 30 more registrations and 3 look-ups, published in exports, and the data
    // directory lost.
    let (ok, _, err) = run(&["load", "--config", config_arg, "--count", "30", "--run", "b", "--start", "20"]);
    assert!(ok, "{err}");
    let (access_export, access_note) = (dir.path().join("access.bin"), dir.path().join("access.note"));
    looked_up_three_times(&config, &access_export, &access_note);
    let export = dir.path().join("published.bin");
    let (ok, _, err) = run(&["export", "--config", config_arg, "--out", export.to_str().unwrap()]);
    assert!(ok, "{err}");

    let restored = config_over(&config, &out, "restored.toml");
    let restored_arg = restored.to_str().unwrap();
    let loaded = registry_server::config::Loaded::read(&config).unwrap();
    let genesis =
        registry_core::keys::note_verifier_key(&loaded.config.server.origin, &loaded.log_key().unwrap().public());
    // A damaged export is refused, naming its record, and changes nothing.
    let mut bytes = std::fs::read(&export).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    let damaged = dir.path().join("damaged.bin");
    std::fs::write(&damaged, bytes).unwrap();
    let (ok, _, err) = run(&[
        "restore-tail",
        "--config",
        restored_arg,
        "--from",
        damaged.to_str().unwrap(),
        "--genesis-key",
        &genesis,
    ]);
    assert!(!ok && err.contains("record 50"), "{err}");
    let (ok, verified, err) = run(&["verify", "--config", restored_arg]);
    assert!(ok && verified.starts_with("ok: 21 records verified"), "{verified}{err}");

    let (ok, said, err) = run(&[
        "restore-tail",
        "--config",
        restored_arg,
        "--from",
        export.to_str().unwrap(),
        "--genesis-key",
        &genesis,
        "--access-from",
        access_export.to_str().unwrap(),
        "--access-checkpoint",
        access_note.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(said.starts_with("ok: records 21..51 taken back"), "{said}");
    assert!(said.contains("ok: access log: records 0..3 taken back"), "{said}");
    assert!(said.contains("30 person(s) registered in them keep their numbers"), "{said}");
    // The tail folded, it verifies and exports the published log byte for byte.
    let (ok, verified, err) = run(&["verify", "--config", restored_arg]);
    assert!(ok && verified.starts_with("ok: 51 records verified"), "{verified}{err}");
    assert!(verified.contains("access log: 3 look-ups verified"), "{verified}");
    let again = dir.path().join("again.bin");
    let (ok, _, err) = run(&["export", "--config", restored_arg, "--out", again.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(again).unwrap(), std::fs::read(&export).unwrap());
}
