//! The `huduma number check` command, run as a user would.

use std::process::Command;

fn check(number: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_huduma")).args(["number", "check", number]).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_valid_number_passes_in_any_spelling_and_a_typo_is_named() {
    let n = huduma_sdk::HudumaNumber::with_check_digit(29_473_615_839).unwrap();
    for spelling in [n.compact(), n.to_string(), n.to_string().replace(' ', "-")] {
        let (code, out, _) = check(&spelling);
        assert_eq!(code, Some(0), "{spelling}");
        assert_eq!(out.trim(), format!("valid: {n}"));
    }
    let mut typo = n.compact().into_bytes();
    typo[3] = if typo[3] == b'9' { b'0' } else { typo[3] + 1 };
    let (code, _, err) = check(std::str::from_utf8(&typo).unwrap());
    assert_eq!(code, Some(3));
    assert!(err.contains("check digit"), "{err}");
    let (code, _, err) = check("1234");
    assert_eq!(code, Some(3));
    assert!(err.contains("length"), "{err}");
}
