//! Hands the linker `linkgate.order` (written by `tools/order.sh`): the functions that start-up
//! and the request paths run are placed together, so the kernel maps far fewer of the binary's
//! pages (idle RSS, BENCHMARKS.md). Only where the linker is rust-lld, the default for this
//! target since Rust 1.90; elsewhere, or with `LINKGATE_NO_ORDER` set, the link is as before.
//! `LINKGATE_MAP=FILE` also writes the linker's map (`tools/order.sh` reads it).
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=linkgate.order");
    println!("cargo:rerun-if-env-changed=LINKGATE_NO_ORDER");
    println!("cargo:rerun-if-env-changed=LINKGATE_MAP");
    let target = std::env::var("TARGET").unwrap_or_default();
    let custom_linker = std::env::var_os("RUSTC_LINKER").is_some();
    if target != "x86_64-unknown-linux-gnu" || custom_linker || !rust_lld_is_default() {
        return;
    }
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("linkgate.order");
    if order.exists() && std::env::var_os("LINKGATE_NO_ORDER").is_none() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if let Some(map) = std::env::var_os("LINKGATE_MAP") {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,-Map={}",
            map.to_string_lossy()
        );
    }
}

/// Whether rustc is 1.90 or later, which links this target with its own rust-lld.
fn rust_lld_is_default() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&output.stdout);
    let mut numbers = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
