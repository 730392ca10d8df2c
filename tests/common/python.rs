//! Python clients nobody here wrote (authlib, the MCP SDK), each in a venv of its own: made once
//! per requirements file in tests/python (`python3 -m venv` + `pip install -r` from PyPI) under
//! Cargo's test temp dir, and reused while that file is unchanged. No Python, no venv module or
//! no PyPI is a FAILED test with the reason, never a skip.

use super::run_ok;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// tests/python, where the scripts and their requirements files are.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// The python of the venv for `tests/python/<requirements_file_name>`, creating the venv when
/// this version of the file has none yet (the name carries a hash of the file). It is built
/// beside its final place and renamed into it, so an interrupted install is never reused.
pub fn venv_python(requirements_file_name: &str) -> PathBuf {
    let requirements = python_dir().join(requirements_file_name);
    let pins =
        std::fs::read(&requirements).unwrap_or_else(|e| panic!("{}: {e}", requirements.display()));
    let hash: String = Sha256::digest(&pins)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let stem = Path::new(requirements_file_name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("requirements");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{stem}-{hash}"));
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    let building = venv.with_extension(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    run_ok(
        Command::new("python3").arg("-m").arg("venv").arg(&building),
        INSTALL_TIMEOUT,
        "creating the venv (needs python3 with the venv module: apt-get install python3-venv)",
    );
    run_ok(
        Command::new(building.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-input", "--timeout", "60", "-r"])
            .arg(&requirements),
        INSTALL_TIMEOUT,
        &format!("installing tests/python/{requirements_file_name} from PyPI"),
    );
    // Another test run may have won the race; then its venv is as good as ours.
    if std::fs::rename(&building, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    assert!(python.exists(), "no {} after installing", python.display());
    python
}
