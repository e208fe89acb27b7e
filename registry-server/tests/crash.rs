//! The crash test: a `huduma-registry load` process appends under load and is killed
//! with SIGKILL. After reopening, every registration it acknowledged is present, the
//! log verifies, and the projections equal a fresh fold.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use registry_core::HudumaNumber;
use registry_core::verify::verify_store;
use registry_server::config::{Loaded, ensure_dev_config};
use registry_server::{operator, synthetic};

/// Kills the load if the test fails before it does.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.0.to_string()]).status();
    }
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_registration() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = ensure_dev_config(dir.path()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_huduma-registry"))
        .args(["load", "--config"])
        .arg(&config)
        .args(["--count", "1000000", "--concurrency", "64", "--run", "crash", "--print-acks"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the load");
    let _guard = KillOnDrop(child.id());
    let stdout = child.stdout.take().expect("stdout");
    let mut acked: Vec<(u64, HudumaNumber, u64)> = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read an ack");
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0], "ack", "{line}");
        acked.push((fields[1].parse().unwrap(), fields[2].parse().unwrap(), fields[3].parse().unwrap()));
        if acked.len() == 3000 {
            child.kill().expect("SIGKILL the load");
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the load was killed, not finished");

    let loaded = Loaded::read(&config).unwrap();
    let registry = operator::open_registry(&loaded).expect("reopen after SIGKILL");
    let reader = registry.reader();
    let size = reader.log_size().unwrap();
    assert!(size > acked.len() as u64, "every acknowledged record is in the log");
    for (i, number, seq) in &acked {
        let resolved = reader.resolve_number(*number).unwrap().expect("an acknowledged number resolves");
        assert_eq!(resolved.demographics, Some(synthetic::person(*i)));
        assert_eq!(resolved.person.0, *seq);
        // The durable request index still answers the retried request with the first answer.
        let again = registry.submit_blocking(synthetic::registration("crash", *i)).unwrap();
        assert_eq!(again.number, Some(*number));
        assert_eq!(again.receipt.index, *seq);
    }
    assert_eq!(reader.log_size().unwrap(), size, "retries appended nothing");
    let report = verify_store(
        &**registry.store(),
        Some(loaded.log_key().unwrap().public()),
        Some(&loaded.secrets().unwrap()),
        &registry_core::replay::FoldSpace::IN_MEMORY,
        &mut |_| (),
    )
    .expect("the log verifies and the projections match it");
    assert_eq!(report.records, size);
    registry.close();
}
