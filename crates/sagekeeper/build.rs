//! Records the git revision the binary is built from, for `sagekeeper --version`:
//! `SAGEKEEPER_REVISION` when set (a build from a source archive), else `git rev-parse`, else
//! `unknown`. Rebuilt when HEAD moves.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SAGEKEEPER_REVISION");
    let revision = std::env::var("SAGEKEEPER_REVISION").ok().filter(|r| !r.is_empty()).or_else(|| {
        // HEAD, the branch it names, and packed refs: a commit or a checkout changes one of them.
        for path in ["HEAD", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]).filter(|p| std::path::Path::new(p).exists()) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
            && let Some(p) = git(&["rev-parse", "--git-path", &branch]).filter(|p| std::path::Path::new(p).exists())
        {
            println!("cargo:rerun-if-changed={p}");
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    println!("cargo:rustc-env=SAGEKEEPER_REVISION={}", revision.as_deref().unwrap_or("unknown"));
}
