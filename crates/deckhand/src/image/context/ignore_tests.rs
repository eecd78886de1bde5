//! Walk-level tests of the ignore rules: a real tree on disk, the archive's entries listed.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Context;

fn write(root: &Path, rel: &[u8], contents: &[u8]) {
    let p = root.join(OsStr::from_bytes(rel));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, contents).unwrap();
}

/// The archive's entry paths, as bytes, without a trailing `/`.
fn listed(root: &Path, file: Option<&Path>) -> BTreeSet<Vec<u8>> {
    let mut bytes = Vec::new();
    Context::prepare(root, file)
        .unwrap()
        .write_archive(&mut bytes)
        .unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path_bytes().into_owned();
            path.strip_suffix(b"/").map(<[u8]>::to_vec).unwrap_or(path)
        })
        .collect()
}

fn set(paths: &[&[u8]]) -> BTreeSet<Vec<u8>> {
    paths.iter().map(|p| p.to_vec()).collect()
}

/// (the .dockerignore, the files, what is sent)
type Case = (
    &'static [u8],
    &'static [&'static [u8]],
    &'static [&'static [u8]],
);

const CASES: &[Case] = &[
    // `!docs` is never tried on `docs`: the guide stays out
    (
        b"**/*.md\n!docs\n",
        &[b"docs/guide.md", b"docs/a.txt"],
        &[b"docs", b"docs/a.txt"],
    ),
    // `**/build` is skipped for the excluded `build`: the kept file is sent, without its dir
    (
        b"build\n!build/keep.txt\n**/build\n",
        &[b"build/keep.txt", b"build/other.txt", b"src/build"],
        &[b"build/keep.txt", b"src"],
    ),
    // `/!keep` is an exception; the build files are always sent
    (
        b"*\n/!keep\n",
        &[b"keep", b"other", b"dir/keep"],
        &[b"keep"],
    ),
    // an ignore file and file names that are not UTF-8
    (
        b"caf\xE9*\nold\xFF\n",
        &[
            b"caf\xE9.txt",
            "café.txt".as_bytes(),
            b"old\xFF",
            b"old\xFE",
        ],
        &["café.txt".as_bytes(), b"old\xFE"],
    ),
    // an excluded directory is entered only for an exception written inside it
    (
        b"vendor\nlogs\n!logs/keep.log\n!*/x\n",
        &[b"vendor/x", b"logs/keep.log", b"logs/a.log"],
        &[b"logs/keep.log"],
    ),
];

#[test]
fn sends_what_docker_sends() {
    for (ignore, files, sent) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, b"Dockerfile", b"FROM scratch\n");
        write(root, b".dockerignore", ignore);
        for f in *files {
            write(root, f, b"x");
        }
        let mut want = set(sent);
        want.insert(b"Dockerfile".to_vec());
        want.insert(b".dockerignore".to_vec());
        assert_eq!(
            listed(root, None),
            want,
            "{:?}",
            String::from_utf8_lossy(ignore)
        );
    }
}

#[test]
fn the_dockerfile_is_sent_where_docker_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, b"docs/Dockerfile", b"FROM scratch\n");
    write(root, b"src/Dockerfile", b"FROM scratch\n");
    write(root, b".dockerignore", b"**/Dockerfile\n!docs\n");
    let sent = listed(root, Some(&root.join("docs/Dockerfile")));
    assert_eq!(
        sent,
        set(&[b".dockerignore", b"docs", b"docs/Dockerfile", b"src"])
    );
}

#[test]
fn a_dockerfile_specific_ignore_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, b"docker/app.Dockerfile", b"FROM scratch\n");
    write(
        root,
        b"docker/app.Dockerfile.dockerignore",
        b"secret\n*/*.dockerignore\n",
    );
    write(root, b".dockerignore", b"src\n");
    write(root, b"secret", b"x");
    write(root, b"src/main.rs", b"x");
    let sent = listed(root, Some(&root.join("docker/app.Dockerfile")));
    assert_eq!(
        sent,
        set(&[
            b".dockerignore",
            b"docker",
            b"docker/app.Dockerfile",
            b"src",
            b"src/main.rs",
        ])
    );
}

#[test]
fn the_ignore_file_is_sent_with_a_dockerfile_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ctx");
    write(&root, b".dockerignore", b"*\n");
    write(&root, b"src/main.rs", b"x");
    write(dir.path(), b"Dockerfile", b"FROM scratch\n");
    let sent = listed(&root, Some(&dir.path().join("Dockerfile")));
    assert!(sent.contains(&b".dockerignore"[..]), "{sent:?}");
    assert!(!sent.contains(&b"src"[..]), "{sent:?}");
}

#[test]
fn an_ignore_file_beside_a_dockerfile_with_a_non_utf8_name_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, b"d\xE9.Dockerfile", b"FROM scratch\n");
    write(root, b"d\xE9.Dockerfile.dockerignore", b"secret\n");
    write(root, b"secret", b"x");
    let sent = listed(
        root,
        Some(&root.join(OsStr::from_bytes(b"d\xE9.Dockerfile"))),
    );
    assert!(!sent.contains(&b"secret"[..]), "{sent:?}");
    assert!(sent.contains(&b"d\xE9.Dockerfile"[..]), "{sent:?}");
}

#[test]
fn a_pattern_go_cannot_compile_fails_the_walk_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, b"Dockerfile", b"FROM scratch\n");
    write(root, b".dockerignore", b"# x\n[z-a]*\n");
    let context = Context::prepare(root, None).unwrap();
    let err = context.write_archive(Vec::new()).unwrap_err().to_string();
    assert!(err.contains(".dockerignore:2:"), "{err}");
    assert!(err.contains("[z-a]*"), "{err}");
}

#[test]
fn a_pattern_docker_refuses_is_an_error_before_the_walk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, b"Dockerfile", b"FROM scratch\n");
    write(root, b".dockerignore", b"ok\n[\n");
    let err = Context::prepare(root, None).unwrap_err().to_string();
    assert!(err.contains(".dockerignore:2:"), "{err}");
    assert!(err.contains("Fix or remove that line"), "{err}");
}

#[test]
fn a_line_too_long_for_docker_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, b"Dockerfile", b"FROM scratch\n");
    let mut ignore = b"ok\n".to_vec();
    ignore.extend(std::iter::repeat_n(b'a', 70_000));
    write(root, b".dockerignore", &ignore);
    let err = Context::prepare(root, None).unwrap_err().to_string();
    assert!(err.contains(".dockerignore:2: the line is longer"), "{err}");
}
