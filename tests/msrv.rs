//! `rust-version` in Cargo.toml is the real minimum: no locked dependency needs a newer Rust
//! (a newcomer on an older toolchain is told so by cargo, not by a wall of compile errors).

use std::process::Command;

/// "1.88" or "1.88.0" as (1, 88, 0).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_rust_version() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // This machine's dependencies (the ones it has downloaded): offline, cargo cannot read the
    // manifests of crates only other platforms build (Android, Windows), and never needs to.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let about = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    let about = String::from_utf8_lossy(&about.stdout).into_owned();
    let host = about
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names its host");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", host])
        .current_dir(manifest)
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ours = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "linkgate")
        .and_then(|p| p["rust_version"].as_str())
        .expect("linkgate's rust-version");
    let resolved: std::collections::HashSet<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let newer: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| resolved.contains(id)))
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(ours)).then(|| format!("{} needs {needs}", p["name"]))
        })
        .collect();
    assert!(
        newer.is_empty(),
        "Cargo.toml says rust-version = {ours}, but {}",
        newer.join(", ")
    );
}
