//! The version `herald --version` prints: the package version and, when
//! built from a git checkout, the commit (`-modified` with local changes).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let package = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match commit {
        Some(commit) => {
            let dirty = Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .output()
                .ok()
                .is_some_and(|o| !o.stdout.is_empty());
            let suffix = if dirty { "-modified" } else { "" };
            format!("{package} ({commit}{suffix})")
        }
        None => package,
    };
    println!("cargo:rustc-env=HERALD_VERSION={version}");
    // Rebuilt when the checked-out commit moves.
    for path in ["../../.git/HEAD", "../../.git/index"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
