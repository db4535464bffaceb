//! The container image `make image` writes without a container engine (`tools/image`), built
//! here from the debug binary: unpacked, it holds no shell, runs as 65532, names its source,
//! revision and version, and its entrypoint runs from its own root file system.

use std::path::Path;
use std::process::Command;

use sagekeeper_tests::process::binary;
use sagekeeper_tests::stack::repo_root;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

#[test]
fn the_image_runs_its_entrypoint_as_65532_without_a_shell_and_names_its_revision() {
    let dir = std::env::temp_dir().join(format!("sagekeeper-image-{}", std::process::id()));
    let archive = dir.join("sagekeeper.tar");
    let out = Command::new(repo_root().join("tests/stack/image.sh")).arg(binary()).arg(&archive).output().unwrap();
    assert!(out.status.success(), "image.sh: {}", String::from_utf8_lossy(&out.stderr));

    // The archive is an OCI layout: index -> manifest -> config and one layer.
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    assert!(Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&layout).status().unwrap().success());
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&layout, index["manifests"][0]["digest"].as_str().unwrap()));
    let config = json(&blob(&layout, manifest["config"]["digest"].as_str().unwrap()));
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/sagekeeper"]));
    let git = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(repo_root()).output().unwrap();
    let revision = String::from_utf8(git.stdout).unwrap().trim().to_owned();
    assert_eq!(c["Labels"]["org.opencontainers.image.revision"], revision.as_str());
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    assert!(c["Labels"]["org.opencontainers.image.source"].as_str().unwrap().starts_with("https://"));

    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let layer = blob(&layout, layers[0]["digest"].as_str().unwrap());
    assert!(Command::new("tar").arg("-xzf").arg(&layer).arg("-C").arg(&rootfs).status().unwrap().success());
    for shell in ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"] {
        assert!(!rootfs.join(shell).exists(), "the image has {shell}");
    }
    assert!(rootfs.join("etc/ssl/certs/ca-certificates.crt").exists(), "no CA certificates");

    // The entrypoint runs from the image's own files only: chrooted as 65532 when this test runs
    // as root, else through the image's own dynamic loader with only the image's libraries.
    let root = Command::new("id").arg("-u").output().unwrap();
    let run = |args: &[&str]| {
        let out = if String::from_utf8_lossy(&root.stdout).trim() == "0" {
            Command::new("chroot").arg("--userspec=65532:65532").arg(&rootfs).arg("/sagekeeper").args(args).output()
        } else {
            let loader = rootfs.join("lib64/ld-linux-x86-64.so.2");
            let libs = format!("{0}/lib/x86_64-linux-gnu:{0}/lib64", rootfs.display());
            Command::new(loader).arg("--library-path").arg(libs).arg(rootfs.join("sagekeeper")).args(args).output()
        }
        .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(&["--version"]).trim(), format!("sagekeeper {} ({revision})", env!("CARGO_PKG_VERSION")));
    let crds = run(&["crds", "--out", "-"]);
    assert_eq!(crds.matches("kind: CustomResourceDefinition").count(), sagekeeper_api::crds().len(), "{crds}");
    std::fs::remove_dir_all(dir).ok();
}
