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
