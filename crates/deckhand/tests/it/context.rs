//! The build context: what is streamed to the engine, and that the engine sees exactly that.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use futures_util::StreamExt;

use crate::bed::{unique, Bed, Repo};
use deckhand::image::context::Context;

const BIG: u64 = 200 * 1024 * 1024;

fn write(root: &Path, rel: &str, contents: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, contents).unwrap();
}

/// Streams the context the way the build does and returns the archive's paths and size.
fn streamed(root: &Path, file: Option<&Path>) -> (BTreeSet<String>, usize) {
    let context = Context::prepare(root, file).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bytes = rt.block_on(async {
        let (mut stream, walker) = context.stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        walker.await.unwrap().unwrap();
        bytes
    });
    let mut archive = tar::Archive::new(bytes.as_slice());
    let paths = archive
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    (paths, bytes.len())
}

#[test]
fn ignored_files_are_not_sent_and_exceptions_are() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Dockerfile", "FROM scratch\n");
    write(root, ".dockerignore", "# build outputs\ntarget\n**/*.log\nlogs\n!logs/keep.log\nDockerfile\n.dockerignore\nsecrets/\n");
    write(root, "src/main.rs", "fn main() {}");
    write(root, "src/debug.log", "x");
    write(root, "target/debug/app", "binary");
    write(root, "logs/keep.log", "kept");
    write(root, "logs/other.txt", "dropped");
    write(root, "secrets/key", "s");
    fs::File::create(root.join("target/huge.bin"))
        .unwrap()
        .set_len(BIG)
        .unwrap();

    let (paths, size) = streamed(root, None);
    let want: BTreeSet<String> = [
        "Dockerfile",
        ".dockerignore",
        "src",
        "src/main.rs",
        "logs/keep.log",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(paths, want);
    assert!(
        size < 64 * 1024,
        "the archive is small without the ignored file: {size} bytes"
    );
}

#[test]
fn a_dockerfile_specific_ignore_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docker/app.Dockerfile", "FROM scratch\n");
    write(root, "docker/app.Dockerfile.dockerignore", "*\n!src\n");
    write(root, ".dockerignore", "src\n");
    write(root, "src/a.rs", "");
    write(root, "README.md", "");
    let (paths, _) = streamed(root, Some(&root.join("docker/app.Dockerfile")));
    // `.dockerignore` is always re-included, as the Docker CLI does.
    let want: BTreeSet<String> = [".dockerignore", "src", "src/a.rs", "docker/app.Dockerfile"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(paths, want);
}

#[test]
fn symlinks_are_sent_as_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Dockerfile", "FROM scratch\n");
    write(root, "real.txt", "r");
    std::os::unix::fs::symlink("real.txt", root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("outside")).unwrap();
    let (paths, size) = streamed(root, None);
    assert!(paths.contains("link.txt") && paths.contains("outside"));
    assert!(size < 16 * 1024, "links were not followed: {size} bytes");
}

#[test]
fn names_that_are_not_utf8_keep_their_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Dockerfile", "FROM scratch\n");
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    fs::write(root.join(name), "x").unwrap();
    let context = Context::prepare(root, None).unwrap();
    let mut bytes = Vec::new();
    context.write_archive(&mut bytes).unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let names: Vec<Vec<u8>> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect();
    assert!(names.contains(&b"caf\xe9.txt".to_vec()), "{names:?}");
}

#[test]
fn the_engine_builds_from_the_filtered_context() {
    let bed = Bed::get();
    let dockerfile = format!(
        "FROM {}\nCOPY . /ctx\nRUN test -f /ctx/keep/me.txt && test ! -e /ctx/big.bin && test ! -e /ctx/keep/drop.tmp\n",
        bed.base_image
    );
    let repo = Repo::new(&[
        ("Dockerfile", &dockerfile),
        (".dockerignore", "big.bin\n**/*.tmp\n.git\n"),
        ("keep/me.txt", "yes"),
        ("keep/drop.tmp", "no"),
    ]);
    // Untracked and ignored by git too, so the tree stays clean; Docker does not read .gitignore.
    fs::write(repo.path().join(".git/info/exclude"), "big.bin\n").unwrap();
    fs::File::create(repo.path().join("big.bin"))
        .unwrap()
        .set_len(BIG)
        .unwrap();
    let name = format!("it/{}", unique("context"));
    let run = bed.push(repo.path(), &name, &["--create-repository"]);
    run.expect_code(0);
    // The log reports what was sent: a handful of small files, not 200 MB.
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("(context:"))
        .expect("context summary logged");
    assert!(line.contains("0.0 MiB"), "{line}");
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);
}

/// Sets `path`'s mtime to `seconds` since the epoch, negative for before 1970.
fn set_mtime(path: &Path, seconds: i64) {
    use std::time::{Duration, UNIX_EPOCH};
    let t = if seconds < 0 {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    };
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn the_engine_builds_a_context_with_every_kind_of_entry() {
    let bed = Bed::get();
    let checks = [
        "test -p pipe",
        "test \"$(readlink link)\" = a.txt",
        "test \"$(stat -c %i a.txt)\" = \"$(stat -c %i d/b.txt)\"",
        "test \"$(cat old.txt)$(cat future.txt)\" = 19602300",
        "test ! -e sock",
    ];
    let dockerfile = format!(
        "FROM {}\nCOPY . /ctx\nRUN cd /ctx && {}\n",
        bed.base_image,
        checks.join(" && ")
    );
    let repo = Repo::new(&[
        ("Dockerfile", &dockerfile),
        ("a.txt", "shared"),
        ("old.txt", "1960"),
        ("future.txt", "2300"),
    ]);
    let root = repo.path();
    fs::create_dir(root.join("d")).unwrap();
    fs::hard_link(root.join("a.txt"), root.join("d/b.txt")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    // 1960 and 2300: before, a pre-1970 file made the engine reject the whole archive.
    set_mtime(&root.join("old.txt"), -315_619_200);
    set_mtime(&root.join("future.txt"), 10_413_792_000);
    fs::write(root.join(".git/info/exclude"), "d/\nlink\npipe\nsock\n").unwrap();

    let name = format!("it/{}", unique("entries"));
    bed.push(root, &name, &["--create-repository"])
        .expect_code(0);
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);
}

#[test]
fn an_outside_dockerfile_does_not_land_in_the_image() {
    let bed = Bed::get();
    let dockerfile = format!(
        "FROM {}\nCOPY . /app\nRUN test \"$(ls -A /app)\" = app.txt\n",
        bed.base_image
    );
    let repo = Repo::new(&[("ctx/app.txt", "hi"), ("build/Dockerfile", &dockerfile)]);
    let name = format!("it/{}", unique("outside-copy"));
    bed.push(
        &repo.path().join("ctx"),
        &name,
        &["--create-repository", "--file", "../build/Dockerfile"],
    )
    .expect_code(0);
    assert_eq!(bed.registry_tags(&name), vec![repo.sha.clone()]);
}
