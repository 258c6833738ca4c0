//! The version `herald --version` prints: the package version and the
//! commit it was built from — `HERALD_BUILD_COMMIT` when set (a container
//! or package build without `.git`), else `git` when this is herald's own
//! checkout (`-modified` with local changes), else nothing.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=HERALD_BUILD_COMMIT");
    let package = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = std::env::var("HERALD_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(checkout_commit);
    let version = match commit {
        Some(commit) => format!("{package} ({commit})"),
        None => package,
    };
    println!("cargo:rustc-env=HERALD_VERSION={version}");
}

/// The commit of herald's own checkout (not of a repository that happens to
/// contain an unpacked source tree).
fn checkout_commit() -> Option<String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let root = Path::new(&manifest).join("../..").canonicalize().ok()?;
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != root {
        return None;
    }
    // Rebuilt when the checked-out commit moves (paths that exist only:
    // a missing one would make cargo rebuild every time).
    for what in ["HEAD", "index"] {
        if let Some(path) = git(&["rev-parse", "--git-path", what])
            && Path::new(&path).exists()
        {
            let path = if Path::new(&path).is_absolute() {
                path
            } else {
                root.join(&path).display().to_string()
            };
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
    Some(if dirty {
        format!("{commit}-modified")
    } else {
        commit
    })
}
