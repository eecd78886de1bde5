//! The container image: the Dockerfile's runtime stage, built on the bed's engine with local
//! base images (a glibc root made from this machine's libraries, and the busybox base for the
//! build stage), runs `deckhand --version` as the unprivileged user.

use std::path::Path;
use std::process::Command;

use crate::bed::{docker, Bed};

/// Copies `file` into `root` at the same path (following symlinks).
fn copy_into(root: &Path, file: &str) {
    let target = root.join(file.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(file, &target).unwrap_or_else(|e| panic!("copy {file}: {e}"));
}

/// A runtime base like distroless/cc: the C libraries `binary` links to, CA certificates.
fn glibc_base(binary: &str, tag: &str) {
    let root = tempfile::tempdir().unwrap();
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            copy_into(root.path(), p);
        }
    }
    copy_into(root.path(), "/etc/ssl/certs/ca-certificates.crt");
    let tar = root.path().with_extension("tar");
    let status = Command::new("tar")
        .args([
            "-C",
            root.path().to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    docker(&["import", tar.to_str().unwrap(), tag]);
    let _ = std::fs::remove_file(tar);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_image_runs_deckhand_as_an_unprivileged_user() {
    let bed = Bed::get();
    let binary = env!("CARGO_BIN_EXE_deckhand");
    let base = format!("deckhand-test/glibc:{}", crate::bed::unique("v"));
    glibc_base(binary, &base);

    let context = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile"),
        context.path().join("Dockerfile"),
    )
    .unwrap();
    std::fs::create_dir(context.path().join("prebuilt")).unwrap();
    std::fs::copy(binary, context.path().join("prebuilt/deckhand")).unwrap();

    let tag = format!("deckhand-test/deckhand:{}", crate::bed::unique("v"));
    let engine = deckhand::image::engine::connect().await.unwrap();
    let spec = deckhand::image::build::BuildSpec {
        tags: vec![tag.clone()],
        build_args: [
            ("BUILD_IMAGE".to_string(), bed.base_image.clone()),
            ("RUNTIME_IMAGE".to_string(), base.clone()),
        ]
        .into(),
        target: Some("runtime".into()),
        ..Default::default()
    };
    let prepared = deckhand::image::context::Context::prepare(context.path(), None).unwrap();
    deckhand::image::build::build(
        &deckhand::report::Reporter::plain(),
        &engine,
        prepared,
        &spec,
    )
    .await
    .expect("the Dockerfile builds");

    let tag2 = tag.clone();
    let version = tokio::task::spawn_blocking(move || {
        docker(&["run", "--rm", "--network", "none", &tag2, "--version"])
    })
    .await
    .unwrap();
    assert!(version.starts_with("deckhand "), "{version}");
    let user = docker(&["inspect", "--format", "{{.Config.User}}", &tag]);
    assert_eq!(user.trim(), "65532:65532");
    let entrypoint = docker(&["inspect", "--format", "{{json .Config.Entrypoint}}", &tag]);
    assert_eq!(entrypoint.trim(), r#"["/usr/local/bin/deckhand"]"#);
}
